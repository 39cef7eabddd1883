//! Naming of S3 objects: a document is stored at the bucket root under the name the sender's
//! app gave it, made safe where that name would be a bad key; a name another person's object
//! holds is numbered (`name (2).ext`), and a rename keeps the extension when none is given.

use crate::domain::chat::IncomingDocument;

/// Longest extension kept when a name has to be shortened.
const MAX_EXTENSION_BYTES: usize = 16;

/// The object key for a document: its file name, sanitised, or a generated name from its
/// stable id and MIME type. The result is never empty, never contains `/`, `\` or control
/// characters, is not `.` or `..`, and fits in `max_bytes` bytes.
pub fn document_key(doc: &IncomingDocument, max_bytes: usize) -> String {
    let generated = || generated_name(doc);
    let name = match doc.name.as_deref() {
        Some(name) => sanitize(name),
        None => String::new(),
    };
    let name = if name.is_empty() || name == "." || name == ".." {
        generated()
    } else {
        name
    };
    truncate_keeping_extension(&name, max_bytes)
}

/// Replaces path separators and control characters, trims surrounding white space, and
/// turns leading dots into underscores so no key is hidden or relative.
pub fn sanitize(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            // Unicode direction overrides make names display differently from what they are.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '_',
            c => c,
        })
        .collect();
    let trimmed = replaced.trim();
    if trimmed == "." || trimmed == ".." {
        return trimmed.to_string();
    }
    let dots = trimmed.len() - trimmed.trim_start_matches('.').len();
    format!("{}{}", "_".repeat(dots), &trimmed[dots..])
}

/// The key a rename asks for: the new name sanitised like a file name, with the old key's
/// extension when the new name has none. `None` when nothing usable is left.
pub fn rename_key(new_name: &str, old_key: &str, max_bytes: usize) -> Option<String> {
    let name = sanitize(new_name);
    if name.is_empty() || name == "." || name == ".." || name.chars().all(|c| c == '_') {
        return None;
    }
    let name = match (extension(&name), extension(old_key)) {
        (None, Some(ext)) => format!("{name}{ext}"),
        _ => name,
    };
    Some(truncate_keeping_extension(&name, max_bytes))
}

/// The `n`th free-name candidate for `key`: `key` itself for 1, then `stem (n).ext`, shortened
/// to `max_bytes` by cutting the stem.
pub fn numbered(key: &str, n: u32, max_bytes: usize) -> String {
    if n <= 1 {
        return key.to_string();
    }
    let ext = extension(key).unwrap_or("");
    let stem = &key[..key.len() - ext.len()];
    let suffix = format!(" ({n}){ext}");
    let mut end = stem.len().min(max_bytes.saturating_sub(suffix.len()));
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &stem[..end])
}

/// The extension of a name, dot included: a short alphanumeric suffix after a dot that is
/// not the first character.
pub fn extension(name: &str) -> Option<&str> {
    let dot = name.rfind('.').filter(|i| *i > 0)?;
    let ext = &name[dot..];
    (ext.len() > 1
        && ext.len() <= MAX_EXTENSION_BYTES
        && ext[1..].chars().all(|c| c.is_alphanumeric()))
    .then_some(ext)
}

/// A name for a document that came without one.
fn generated_name(doc: &IncomingDocument) -> String {
    let stem: String = doc
        .unique_id
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let stem = if stem.is_empty() {
        "unnamed".to_string()
    } else {
        stem
    };
    let ext = doc
        .mime_type
        .as_deref()
        .and_then(extension_for_mime)
        .unwrap_or("bin");
    format!("document_{stem}.{ext}")
}

/// A file extension for common MIME types.
fn extension_for_mime(mime: &str) -> Option<&'static str> {
    Some(match mime.split(';').next()?.trim() {
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/json" => "json",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/html" => "html",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/mpeg" => "mp3",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        _ => return None,
    })
}

/// Shortens `name` to at most `max` bytes on a character boundary, keeping a short extension.
fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() <= MAX_EXTENSION_BYTES && e.len() < max / 2)
        .unwrap_or("");
    let budget = max - ext.len();
    let mut end = budget.min(name.len() - ext.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &name[..end], ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: Option<&str>) -> IncomingDocument {
        IncomingDocument {
            file: "F".into(),
            unique_id: Some("AgADuniq".into()),
            name: name.map(str::to_string),
            mime_type: Some("application/pdf".into()),
            size: Some(1),
        }
    }

    #[test]
    fn taken_names_are_numbered_before_the_extension() {
        assert_eq!(numbered("report.pdf", 1, 1024), "report.pdf");
        assert_eq!(numbered("report.pdf", 2, 1024), "report (2).pdf");
        assert_eq!(numbered("archive.tar.gz", 3, 1024), "archive.tar (3).gz");
        assert_eq!(numbered("README", 2, 1024), "README (2)");
        assert_eq!(numbered("отчёт.xlsx", 10, 1024), "отчёт (10).xlsx");
        let long = format!("{}.pdf", "ж".repeat(600));
        let key = numbered(&long, 2, 1024);
        assert!(key.len() <= 1024 && key.ends_with(" (2).pdf"), "{key}");
    }

    #[test]
    fn a_rename_keeps_the_extension_when_none_is_given() {
        assert_eq!(
            rename_key("summary", "a.pdf", 1024).as_deref(),
            Some("summary.pdf")
        );
        assert_eq!(
            rename_key("summary.txt", "a.pdf", 1024).as_deref(),
            Some("summary.txt")
        );
        assert_eq!(
            rename_key(" ../x ", "a.pdf", 1024).as_deref(),
            Some("___x.pdf")
        );
        assert_eq!(
            rename_key("v1.2 final", "a.pdf", 1024).as_deref(),
            Some("v1.2 final.pdf")
        );
        assert_eq!(
            rename_key("notes", "README", 1024).as_deref(),
            Some("notes")
        );
        assert_eq!(rename_key("   ", "a.pdf", 1024), None);
        assert_eq!(rename_key("..", "a.pdf", 1024), None);
        assert_eq!(rename_key("/", "a.pdf", 1024), None);
    }

    #[test]
    fn unicode_names_are_kept() {
        assert_eq!(
            document_key(&doc(Some("Памятка наставника_KTS.pdf")), 1024),
            "Памятка наставника_KTS.pdf"
        );
        assert_eq!(
            document_key(&doc(Some("отчёт 📊 2026.xlsx")), 1024),
            "отчёт 📊 2026.xlsx"
        );
    }

    #[test]
    fn traversal_and_separators_are_neutralised() {
        assert_eq!(
            document_key(&doc(Some("../../etc/passwd")), 1024),
            "___.._etc_passwd"
        );
        assert_eq!(
            document_key(&doc(Some("/abs/path.txt")), 1024),
            "_abs_path.txt"
        );
        assert_eq!(document_key(&doc(Some("a\\b.txt")), 1024), "a_b.txt");
        assert_eq!(
            document_key(&doc(Some("..")), 1024),
            "document_AgADuniq.pdf"
        );
        assert_eq!(document_key(&doc(Some(".hidden")), 1024), "_hidden");
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(
            document_key(&doc(Some("a\0b\nc\u{7f}.txt")), 1024),
            "a_b_c_.txt"
        );
        assert_eq!(
            document_key(&doc(Some("evil\u{202E}fdp.exe")), 1024),
            "evil_fdp.exe"
        );
    }

    #[test]
    fn missing_or_blank_names_are_generated() {
        assert_eq!(document_key(&doc(None), 1024), "document_AgADuniq.pdf");
        assert_eq!(
            document_key(&doc(Some("   ")), 1024),
            "document_AgADuniq.pdf"
        );
        let mut d = doc(None);
        d.mime_type = None;
        d.unique_id = None;
        assert_eq!(document_key(&d, 1024), "document_unnamed.bin");
        d.unique_id = Some("AgADuniq".into());
        assert_eq!(document_key(&d, 1024), "document_AgADuniq.bin");
    }

    #[test]
    fn long_names_fit_and_keep_their_extension() {
        let long = format!("{}.pdf", "ж".repeat(2000));
        let key = document_key(&doc(Some(&long)), 1024);
        assert!(key.len() <= 1024, "{}", key.len());
        assert!(key.ends_with(".pdf"));
        assert!(key.starts_with("жж"));
        let key = document_key(&doc(Some(&long)), 255);
        assert!(key.len() <= 255 && key.ends_with(".pdf"));
        let no_ext = "x".repeat(3000);
        assert_eq!(document_key(&doc(Some(&no_ext)), 1024).len(), 1024);
    }
}
