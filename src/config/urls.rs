//! Connection URLs shown without their passwords, and the passwords they hold (to keep out of
//! every log line).

/// `url` without its password, for messages and logs: the password of the user part
/// (`postgres://user:password@host`), of a `password=` URL parameter, and of a `password=` pair of
/// a `key=value` connection string are each shown as `[redacted]`.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    };
    // `password=…` anywhere: a URL parameter (ended by `&` or `#`) or a connection-string
    // pair (ended by a space, or quoted).
    let mut from = 0;
    while let Some(found) = out[from..].to_ascii_lowercase().find("password=") {
        let at = from + found;
        let before = out[..at].chars().next_back();
        let value = at + "password=".len();
        from = value;
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &out[value..];
        let len = if let Some(quoted) = rest.strip_prefix('\'') {
            // A quoted value ends at the next unescaped quote.
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end
        } else {
            rest.find(['&', '#', ' ', '\t']).unwrap_or(rest.len())
        };
        out.replace_range(value..value + len, "[redacted]");
        from = value + "[redacted]".len();
    }
    out
}

/// The passwords `url` holds (user part, `password=` parameters or pairs), as written and
/// percent-decoded, to keep out of every log line.
pub fn url_passwords(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    if let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) {
        if at > scheme {
            if let Some((_, password)) = url[scheme + 3..at].split_once(':') {
                raw.push(password);
            }
        }
    }
    let lower = url.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password=") {
        let value = from + found + "password=".len();
        from = value;
        let rest = &url[value..];
        let end = rest.find(['&', '#', ' ', '\t']).unwrap_or(rest.len());
        raw.push(rest[..end].trim_matches('\''));
    }
    let mut found = Vec::new();
    for password in raw.into_iter().filter(|p| !p.is_empty()) {
        found.push(password.to_string());
        let decoded = percent_decode(password);
        if decoded != password {
            found.push(decoded);
        }
    }
    found
}

/// `%XX` sequences of a URL part decoded (others kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        if let (b'%', Some(hex)) = (bytes[i], hex) {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(hex[0]) * 16 + digit(hex[1]));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_is_shown_without_any_of_its_passwords() {
        let cases = [
            (
                "postgres://tg:pw-user-part@db:5432/tg",
                "postgres://tg@db:5432/tg",
            ),
            (
                "postgres://tg@db/tg?password=pw-query&sslmode=require",
                "postgres://tg@db/tg?password=[redacted]&sslmode=require",
            ),
            (
                "postgres://tg@db/tg?sslmode=require&PASSWORD=pw-upper#frag",
                "postgres://tg@db/tg?sslmode=require&PASSWORD=[redacted]#frag",
            ),
            (
                "host=db user=tg password=pw-pair dbname=tg",
                "host=db user=tg password=[redacted] dbname=tg",
            ),
            (
                "host=db password='pw quoted \\' still' dbname=tg",
                "host=db password=[redacted] dbname=tg",
            ),
            // A parameter that only ends in "password" is not one.
            (
                "postgres://db/tg?oldpassword=x",
                "postgres://db/tg?oldpassword=x",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert_eq!(
            url_passwords("postgres://tg:p%40ss@db/tg?password=pw-query"),
            ["p%40ss", "p@ss", "pw-query"]
        );
        assert!(url_passwords("postgres://tg@db/tg").is_empty());
    }
}
