//! Logging through `env_logger`, with every registered secret removed from every line, so a
//! token that reaches a log call by any path (a URL in an error, a panic message, a library's
//! debug output) is printed as `[redacted]`.

use std::sync::RwLock;

use log::{Log, Metadata, Record};

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a value that must never be printed. Short values are ignored (they would mangle
/// ordinary text and are no secret).
pub fn redact(secret: &str) {
    if secret.len() < 6 {
        return;
    }
    if let Ok(mut s) = SECRETS.write() {
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a secret containing another is removed whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }
}

/// `text` with every registered secret replaced.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else {
        return text.into();
    };
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return text.into();
    }
    let mut out = text.to_string();
    for s in secrets.iter() {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out.into()
}

struct Redacting {
    inner: env_logger::Logger,
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

/// Installs the logger (`RUST_LOG`, default `info`) and a panic hook that logs panics through
/// it, so panic messages are scrubbed too.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Redacting { inner })).is_ok() {
        log::set_max_level(max);
    }
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
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
}
