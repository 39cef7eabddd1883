//! Reading a Telegram Desktop export as a stream: the export is one JSON document (a chat's
//! `{name, type, id, messages: [...]}`, or a whole account's `{chats: {list: [...]}}`), read
//! message by message so a file of any size is read in bounded memory. Each message is handed
//! out with its position: its index in its chat's `messages` and the line it ends on.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::rc::Rc;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::convert::ExportChat;

/// Where a message is in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Its index in its chat's `messages` (0 is the first).
    pub index: u64,
    /// The line of the file it ends on (1 is the first).
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message #{} (line {})", self.index + 1, self.line)
    }
}

/// What the reader hands out.
pub enum Event {
    /// A chat's messages begin (`None`: a chat the `--chat-id` did not pick, skipped).
    Chat(Option<ExportChat>),
    /// One exported message of the current chat.
    Message(Value, Position),
}

/// Counts the lines of what it passes on (serde_json reads it a byte at a time).
struct Lines<R> {
    inner: R,
    newlines: Rc<Cell<u64>>,
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let found = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        self.newlines.set(self.newlines.get() + found);
        Ok(n)
    }
}

/// The reader's state, shared by the visitors.
struct Walk<'f> {
    chat_id: Option<i64>,
    newlines: Rc<Cell<u64>>,
    on: &'f mut dyn FnMut(Event) -> Result<(), String>,
    chats: u64,
}

/// Reads `input` to its end, handing out every chat and message to `on`; stops at the first
/// error of `on`. With `chat_id`, only the chat with that id (Bot API or bare) is handed out,
/// and it names the chat of an export that does not say its id.
pub fn read_export(
    input: impl Read,
    chat_id: Option<i64>,
    on: &mut dyn FnMut(Event) -> Result<(), String>,
) -> Result<u64, serde_json::Error> {
    let newlines = Rc::new(Cell::new(0));
    let reader = Lines {
        inner: std::io::BufReader::with_capacity(1 << 16, input),
        newlines: newlines.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut walk = Walk {
        chat_id,
        newlines,
        on,
        chats: 0,
    };
    serde::Deserializer::deserialize_map(&mut de, ChatVisitor(&mut walk))?;
    de.end()?;
    if walk.chats == 0 {
        return Err(serde_json::Error::custom(
            "not a Telegram Desktop export: it has no `messages` (nor `chats.list`)",
        ));
    }
    Ok(walk.chats)
}

/// A chat object (or the top of the file): `name`, `type`, `id`, `messages`, and for a whole
/// account's export `chats.list`.
struct ChatVisitor<'w, 'f>(&'w mut Walk<'f>);

#[derive(Default)]
struct Head {
    name: Option<String>,
    kind: Option<String>,
    id: Option<i64>,
}

impl<'de> Visitor<'de> for ChatVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram Desktop export (an object with `messages`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut head = Head::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => head.name = map.next_value::<Option<String>>()?,
                "type" => head.kind = map.next_value::<Option<String>>()?,
                "id" => head.id = map.next_value::<Option<i64>>()?,
                "messages" => {
                    let chat = self.0.pick(&head).map_err(A::Error::custom)?;
                    (self.0.on)(Event::Chat(chat.clone())).map_err(A::Error::custom)?;
                    self.0.chats += 1;
                    map.next_value_seed(Messages {
                        walk: &mut *self.0,
                        keep: chat.is_some(),
                    })?;
                }
                "chats" => map.next_value_seed(Chats(&mut *self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

impl Walk<'_> {
    /// The chat whose messages follow, or `None` when `--chat-id` picks another.
    fn pick(&self, head: &Head) -> Result<Option<ExportChat>, String> {
        let kind = head.kind.as_deref().unwrap_or("");
        let named = head
            .id
            .map(|id| ExportChat::from_export(id, kind, head.name.clone()));
        match (self.chat_id, named) {
            (Some(want), Some(chat)) if chat.id == want || head.id == Some(want) => Ok(Some(chat)),
            (Some(_), Some(_)) => Ok(None),
            (Some(want), None) => {
                let mut chat = ExportChat::from_export(want, kind, head.name.clone());
                chat.id = want;
                Ok(Some(chat))
            }
            (None, Some(chat)) => Ok(Some(chat)),
            (None, None) => {
                Err("the export does not name its chat before its messages: give --chat-id".into())
            }
        }
    }
}

/// `chats`: `{about, list: [chat, …]}`.
struct Chats<'w, 'f>(&'w mut Walk<'f>);

impl<'de> DeserializeSeed<'de> for Chats<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Chats<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`chats` with a `list`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "list" {
                map.next_value_seed(ChatList(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `chats.list`: the chats of a whole account's export.
struct ChatList<'w, 'f>(&'w mut Walk<'f>);

impl<'de> DeserializeSeed<'de> for ChatList<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChatList<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chats")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(OneChat(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One chat of `chats.list`.
struct OneChat<'w, 'f>(&'w mut Walk<'f>);

impl<'de> DeserializeSeed<'de> for OneChat<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(ChatVisitor(self.0))
    }
}

/// A chat's `messages`, handed out one by one (or skipped, for a chat not picked).
struct Messages<'w, 'f> {
    walk: &'w mut Walk<'f>,
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for Messages<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Messages<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.keep {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut index = 0;
        while let Some(entry) = seq.next_element::<Value>()? {
            let position = Position {
                index,
                line: self.walk.newlines.get() + 1,
            };
            (self.walk.on)(Event::Message(entry, position)).map_err(A::Error::custom)?;
            index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str, chat_id: Option<i64>) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        read_export(json.as_bytes(), chat_id, &mut |e| {
            seen.push(match e {
                Event::Chat(c) => format!("chat {:?}", c.map(|c| c.id)),
                Event::Message(m, p) => format!("{} at {p}", m["id"]),
            });
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(seen)
    }

    #[test]
    fn a_chat_export_is_read_message_by_message_with_positions() {
        let json = "{\n \"name\": \"Team\",\n \"type\": \"private_supergroup\",\n \"id\": 77,\n \"messages\": [\n  {\"id\": 1},\n  {\"id\": 2}\n ]\n}";
        assert_eq!(
            read(json, None).unwrap(),
            [
                "chat Some(-1000000000077)",
                "1 at message #1 (line 6)",
                "2 at message #2 (line 7)"
            ]
        );
    }

    #[test]
    fn an_account_export_gives_the_chat_asked_for() {
        let json = r#"{"about": "x", "chats": {"about": "y", "list": [
            {"name": "A", "type": "personal_chat", "id": 5, "messages": [{"id": 1}]},
            {"name": "B", "type": "public_supergroup", "id": 6, "messages": [{"id": 2}, {"id": 3}]}]}}"#;
        assert_eq!(
            read(json, Some(-1_000_000_000_006)).unwrap(),
            [
                "chat None",
                "chat Some(-1000000000006)",
                "2 at message #1 (line 3)",
                "3 at message #2 (line 3)"
            ]
        );
    }

    #[test]
    fn bad_files_say_where() {
        let err = read(
            "{\"id\": 1, \"type\": \"private_group\",\n\"messages\": [{\"id\": 1},\n{\"id\": 2",
            None,
        )
        .unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let err = read("[1, 2]", None).unwrap_err();
        assert!(err.contains("Telegram Desktop export"), "{err}");
        let err = read(r#"{"about": "nothing"}"#, None).unwrap_err();
        assert!(err.contains("no `messages`"), "{err}");
        let err = read(r#"{"messages": [{"id": 1}]}"#, None).unwrap_err();
        assert!(err.contains("--chat-id"), "{err}");
        assert_eq!(
            read(r#"{"messages": [{"id": 1}]}"#, Some(-100)).unwrap(),
            ["chat Some(-100)", "1 at message #1 (line 1)"]
        );
    }
}
