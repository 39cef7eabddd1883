//! The neutral chat vocabulary: what the conversation receives (events) and the small
//! interface through which it answers ([`ChatPort`]). Telegram and VK are adapters that turn
//! their updates into [`Event`]s and implement [`ChatPort`]; no platform type appears here.

use futures_util::future::LocalBoxFuture;

/// A chat network the bot runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Telegram Bot API.
    Telegram,
    /// VK Bots Long Poll API.
    Vk,
}

impl Platform {
    /// The name stored with a person's records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Vk => "vk",
        }
    }
}

/// A person on a platform: the same number on two platforms is two people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Person {
    /// Their platform.
    pub platform: Platform,
    /// Their id there.
    pub user: i64,
}

/// Something a person did in a chat with the bot.
#[derive(Debug, Clone)]
pub struct Event {
    /// Who did it.
    pub person: Person,
    /// The chat it happened in.
    pub chat: i64,
    /// Identifies the event across replays (e.g. `telegram:<update_id>`).
    pub reference: String,
    /// The person's message, when the event is one (replies quote it).
    pub message_id: Option<i64>,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event the conversation tells apart.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// Plain text.
    Text(String),
    /// A `/command`, lowercased, without its slash or bot name, and the text after it.
    Command {
        /// The command's name.
        name: String,
        /// The rest of the text, trimmed.
        args: String,
    },
    /// A file sent as a document.
    Document(IncomingDocument),
    /// A picture sent as a photo (not a document).
    Photo,
    /// Any other message (a sticker, a voice note, ...), named for the log.
    Other(String),
    /// A press on one of the bot's buttons.
    Press(Press),
}

/// A document as the platform announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingDocument {
    /// The platform's reference to download it by.
    pub file: String,
    /// The file name the sender's app gave it.
    pub name: Option<String>,
    /// The platform's stable id of the file, if any.
    pub unique_id: Option<String>,
    /// Announced MIME type.
    pub mime_type: Option<String>,
    /// Announced size in bytes.
    pub size: Option<u64>,
}

/// A press on an inline or keyboard button.
#[derive(Debug, Clone)]
pub struct Press {
    /// The platform's id of the press (to answer it).
    pub id: String,
    /// The button's data.
    pub data: String,
    /// The bot message the button belongs to.
    pub message_id: Option<i64>,
}

/// One button: what it shows and what a press on it sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// Label.
    pub label: String,
    /// Data of a press (at most 64 bytes).
    pub data: String,
}

impl Button {
    /// A button.
    pub fn new(label: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            data: data.into(),
        }
    }
}

/// Rows of buttons under a message; an empty keyboard removes the buttons.
pub type Keyboard = Vec<Vec<Button>>;

/// A failed call to the chat platform.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ChatError {
    /// What went wrong (never containing a secret).
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
    /// An edit that changed nothing (harmless).
    pub not_modified: bool,
}

/// How a message answers an event.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The event answered (its reference).
    pub event: &'a str,
    /// The person's message to quote, if any.
    pub quote: Option<i64>,
    /// Buttons under the message.
    pub keyboard: Option<&'a Keyboard>,
}

/// The platform-neutral way to talk back to a person.
pub trait ChatPort {
    /// Sends a message (quoting `reply_to` when given), returns its id. `event` is the
    /// reference of the event being answered: a platform that de-duplicates sends (VK's
    /// `random_id`) derives its key from it and the text, so a replayed reply arrives once.
    fn send<'a>(
        &'a self,
        chat: i64,
        text: &'a str,
        reply: Reply<'a>,
    ) -> LocalBoxFuture<'a, Result<i64, ChatError>>;

    /// Replaces a message's text and buttons (no keyboard: no buttons). Tried once.
    fn edit<'a>(
        &'a self,
        chat: i64,
        message_id: i64,
        text: &'a str,
        keyboard: Option<&'a Keyboard>,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>>;

    /// Answers a button press (stops the client's spinner, shows `text` briefly).
    fn answer<'a>(
        &'a self,
        chat: i64,
        press: &'a Press,
        text: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>>;

    /// Whether the event in hand in `chat` may still have effects (start an upload, write a
    /// row): with replicas, not once another replica took the chat over. Yes by default.
    fn still_ours(&self, _chat: i64) -> LocalBoxFuture<'_, Result<(), ChatError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Splits `/name@bot args` into a lowercased name and its arguments. Commands addressed to
/// another bot (`/name@other`) are not ours and give `None`.
pub fn parse_command(text: &str, bot_username: Option<&str>) -> Option<(String, String)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (head, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let (name, to) = match head.split_once('@') {
        Some((name, to)) => (name, Some(to)),
        None => (head, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    if let (Some(to), Some(me)) = (to, bot_username) {
        if !to.eq_ignore_ascii_case(me) {
            return None;
        }
    }
    Some((name.to_ascii_lowercase(), args.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_with_their_arguments() {
        let p = |t| parse_command(t, Some("ingest_bot"));
        assert_eq!(p("/files"), Some(("files".into(), "".into())));
        assert_eq!(p("/Files all "), Some(("files".into(), "all".into())));
        assert_eq!(
            p("/files@ingest_bot all"),
            Some(("files".into(), "all".into()))
        );
        assert_eq!(p("/files@other_bot"), None);
        assert_eq!(p("files"), None);
        assert_eq!(p("/"), None);
        assert_eq!(p("/../etc"), None);
        assert_eq!(p("/отчёт.pdf"), None);
    }
}
