//! Logging through `env_logger`, with every registered secret removed from every line, so a
//! token that reaches a log call by any path (a URL in an error, a panic message, a library's
//! debug output) is printed as `[redacted]`.
//!
//! Without `RUST_LOG` the service logs at `info` and every library at `warn`, so the log tells
//! the service's story. `log.format = "json"` writes one JSON object per line for collectors.

use std::io::Write;
use std::sync::RwLock;

use log::{Log, Metadata, Record};
use serde::Deserialize;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,tg_ingest=info";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// How each log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL target] message`.
    #[default]
    Text,
    /// `{"time":…,"level":…,"target":…,"message":…,"update_id":…,"chat_id":…}`.
    Json,
}

/// Registers a value that must never be printed. Short values are ignored (they would mangle
/// ordinary text and are no secret).
pub fn redact(secret: &str) {
    if secret.len() < 6 {
        return;
    }
    // A writer that panicked cannot have left the list half-changed (a push, then a sort), so
    // a poisoned lock is used as it is: the list must keep working.
    let mut s = SECRETS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
        // Longest first, so a secret containing another is removed whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// `text` with every registered secret replaced.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    // Fails closed: a poisoned lock still scrubs (a panic elsewhere must not let secrets out).
    let secrets = SECRETS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return text.into();
    }
    let mut out = text.to_string();
    for s in secrets.iter() {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out.into()
}

/// The integer after `name=` in a log message (`update_id=42`), if the message names one.
pub fn field(message: &str, name: &str) -> Option<i64> {
    let pattern = format!("{name}=");
    let mut rest = message;
    while let Some(at) = rest.find(&pattern) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + pattern.len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = after
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map_or(after.len(), |(i, _)| i);
        if let Ok(v) = after[..end].parse() {
            return Some(v);
        }
    }
    None
}

/// One log line as a JSON object (without the newline).
pub fn json_line(time: &str, level: log::Level, target: &str, message: &str) -> String {
    let mut line = serde_json::json!({
        "time": time,
        "level": level.as_str(),
        "target": target,
        "message": message,
    });
    for name in ["update_id", "chat_id"] {
        if let Some(v) = field(message, name) {
            line[name] = v.into();
        }
    }
    line.to_string()
}

struct Redacting {
    inner: env_logger::Logger,
    format: LogFormat,
}

impl Log for Redacting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        let text = record.args().to_string();
        let clean = scrub(&text);
        if self.format == LogFormat::Json {
            let time = crate::util::clock::iso8601_millis(crate::util::clock::now_millis());
            let line = json_line(&time, record.level(), record.target(), &clean);
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return;
        }
        self.inner.log(
            &Record::builder()
                .args(format_args!("{clean}"))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger (`RUST_LOG`, else [`DEFAULT_FILTER`]) in `format`, and a panic hook
/// that logs panics through it, so panic messages are scrubbed too. Only the first call in a
/// process installs anything.
pub fn init(format: LogFormat) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER))
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Redacting { inner, format })).is_ok() {
        log::set_max_level(max);
        std::panic::set_hook(Box::new(|info| {
            log::error!("panic: {info}");
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed() {
        redact("123456:ABCDEF-secret");
        assert_eq!(
            scrub("GET /bot123456:ABCDEF-secret/getMe failed"),
            "GET /bot[redacted]/getMe failed"
        );
        assert_eq!(scrub("nothing here"), "nothing here");
        redact("abc");
        assert_eq!(scrub("abc"), "abc", "short values are not secrets");
    }

    #[test]
    fn the_scrubber_still_scrubs_after_a_panic_poisoned_its_list() {
        redact("poison-test-secret-1");
        let poisoner = std::thread::spawn(|| {
            let _held = SECRETS
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            panic!("a panic while the list is held");
        });
        assert!(poisoner.join().is_err());
        assert!(SECRETS.is_poisoned(), "the test poisons the lock");
        assert_eq!(scrub("a poison-test-secret-1 b"), "a [redacted] b");
        redact("poison-test-secret-2");
        assert_eq!(scrub("poison-test-secret-2"), "[redacted]");
    }

    #[test]
    fn ids_are_read_from_the_message() {
        let m = "update_id=42 chat_id=-1001 kind=message: greeted";
        assert_eq!(field(m, "update_id"), Some(42));
        assert_eq!(field(m, "chat_id"), Some(-1001));
        assert_eq!(field("xupdate_id=5 update_id=6", "update_id"), Some(6));
        assert_eq!(field("no ids", "chat_id"), None);
        assert_eq!(field("chat_id=abc", "chat_id"), None);
    }

    #[test]
    fn a_json_line_has_every_field() {
        let line = json_line(
            "2026-11-23T10:00:00.000Z",
            log::Level::Warn,
            "tg_ingest::bot",
            "update_id=7 chat_id=-5: \"quoted\"",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "tg_ingest::bot");
        assert_eq!(v["message"], "update_id=7 chat_id=-5: \"quoted\"");
        assert_eq!(v["update_id"], 7);
        assert_eq!(v["chat_id"], -5);
        assert_eq!(v["time"], "2026-11-23T10:00:00.000Z");
    }
}
