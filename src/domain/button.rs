//! The "go" button (capability B): posting it, recognising presses on our own buttons, and the
//! Airtable row a press becomes.
//!
//! A button's `callback_data` is `go:<nonce>:<mac>`, where the MAC is an HMAC-SHA256 of the
//! chat id and nonce under a key derived from the bot token. The service recognises its own
//! buttons from that alone, without other state, and a forged or foreign button fails the check.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::clients::telegram::{TelegramClient, TelegramError, User};
use crate::config::AirtableSettings;
use crate::util::clock::iso8601_millis;

/// The outbox that holds rows for Airtable.
pub const AIRTABLE_OUTBOX: &str = "airtable";

/// Texts shown to whoever presses.
pub mod texts {
    /// The first press of a button.
    pub const RECORDED: &str = "Recorded, thank you!";
    /// A later press of the same button.
    pub const ALREADY_RECORDED: &str = "Already recorded.";
    /// A press on a button this service did not post.
    pub const NOT_OURS: &str = "This button is not from this bot.";
    /// /go from someone who is not an admin.
    pub const ADMINS_ONLY: &str = "Only the configured admins can post the button.";
}

/// Signs and checks `callback_data`.
#[derive(Clone)]
pub struct ButtonKey {
    key: Vec<u8>,
}

impl ButtonKey {
    /// A key derived from the bot token (so it never needs its own setting).
    pub fn from_token(token: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"tg-ingest button key")
            .expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, chat_id: i64, nonce: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("go:{chat_id}:{nonce}").as_bytes());
        mac.finalize().into_bytes()[..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `callback_data` for a new button in `chat_id` (at most 64 bytes).
    pub fn callback_data(&self, chat_id: i64, nonce: u64) -> String {
        let nonce = format!("{nonce:016x}");
        format!("go:{nonce}:{}", self.mac(chat_id, &nonce))
    }

    /// Whether `data` is a button this service posted in `chat_id`.
    pub fn verify(&self, chat_id: i64, data: &str) -> bool {
        let mut parts = data.split(':');
        let (Some("go"), Some(nonce), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        nonce.len() == 16 && constant_time_eq(mac.as_bytes(), self.mac(chat_id, nonce).as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Posts a message with the button; returns its message id.
pub async fn post_button(
    telegram: &TelegramClient,
    key: &ButtonKey,
    chat_id: i64,
    text: &str,
    label: &str,
) -> Result<i64, TelegramError> {
    let data = key.callback_data(chat_id, rand::random());
    telegram
        .send_button(chat_id, text, label, &data)
        .await
        .map(|m| m.message_id)
}

/// The name written for whoever pressed: `@username`'s name, else first and last name, else
/// the user id.
pub fn display_username(user: &User) -> String {
    if let Some(name) = user.username.as_deref().filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    let full = format!(
        "{} {}",
        user.first_name,
        user.last_name.as_deref().unwrap_or("")
    );
    let full = full.trim();
    if full.is_empty() {
        user.id.to_string()
    } else {
        full.to_string()
    }
}

/// The Airtable fields for a press in `chat_id` by `user` at `pressed_at_ms`.
pub fn row_fields(
    settings: &AirtableSettings,
    chat_id: i64,
    user: &User,
    pressed_at_ms: i64,
) -> Value {
    let f = &settings.fields;
    let mut fields = Map::new();
    fields.insert(f.chat_id.clone(), json!(chat_id.to_string()));
    fields.insert(f.username.clone(), json!(display_username(user)));
    fields.insert(f.triggered_at.clone(), json!(iso8601_millis(pressed_at_ms)));
    fields.insert(f.event_type.clone(), json!(settings.event_type));
    fields.insert(f.reporter_name.clone(), json!(settings.reporter_name));
    Value::Object(fields)
}

/// Whether a press's data belongs to the go button (signed or forged: the check comes later).
pub fn is_go_data(data: &str) -> bool {
    data.starts_with("go:")
}

/// Whether `text` is the /go command for this bot (`/go` or `/go@<bot>`).
pub fn is_go_command(text: &str, bot_username: Option<&str>) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    match first.split_once('@') {
        None => first == "/go",
        Some((cmd, to)) => cmd == "/go" && bot_username.is_some_and(|b| b.eq_ignore_ascii_case(to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(username: Option<&str>, first: &str, last: Option<&str>) -> User {
        User {
            id: 42,
            is_bot: false,
            first_name: first.into(),
            last_name: last.map(Into::into),
            username: username.map(Into::into),
        }
    }

    #[test]
    fn own_buttons_verify_and_forged_ones_do_not() {
        let key = ButtonKey::from_token("123:abc");
        let data = key.callback_data(-100, 7);
        assert!(data.len() <= 64, "{}", data.len());
        assert!(key.verify(-100, &data));
        assert!(!key.verify(-101, &data), "bound to its chat");
        assert!(
            !ButtonKey::from_token("123:other").verify(-100, &data),
            "bound to the bot"
        );
        let mut forged = data.clone();
        forged.replace_range(3..4, if &data[3..4] == "0" { "1" } else { "0" });
        assert!(!key.verify(-100, &forged));
        for junk in [
            "",
            "go",
            "go:1:2",
            "go::",
            "like",
            "go:0000000000000007:zz:extra",
        ] {
            assert!(!key.verify(-100, junk), "{junk}");
        }
    }

    #[test]
    fn usernames_fall_back_sensibly() {
        assert_eq!(display_username(&user(Some("ann"), "Ann", None)), "ann");
        assert_eq!(
            display_username(&user(None, "Анна", Some("Иванова"))),
            "Анна Иванова"
        );
        assert_eq!(display_username(&user(None, "Ann", None)), "Ann");
        assert_eq!(display_username(&user(None, "", None)), "42");
    }

    #[test]
    fn go_command_is_recognised() {
        assert!(is_go_command("/go", Some("mybot")));
        assert!(is_go_command("/go now", None));
        assert!(is_go_command("/go@MyBot", Some("mybot")));
        assert!(!is_go_command("/go@otherbot", Some("mybot")));
        assert!(!is_go_command("/gone", Some("mybot")));
        assert!(!is_go_command("go", Some("mybot")));
    }
}
