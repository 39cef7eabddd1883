//! What the bot says. The bracketed markers are part of the product's contract; text after a
//! marker is free.

use std::time::Duration;

/// Reply to a person's first message.
pub const GREETING: &str =
    "[greeting] Hello! Send me a file as a document and I will save it to S3. \
     /files lists your files, /rename renames the last one, /help tells more.";
/// Reply to a later message without a document.
pub const DOCUMENT_REQUIRED: &str =
    "[document is required] Please send a file as a document (use the paperclip, then \"File\").";
/// Reply to a photo sent as a photo.
pub const PHOTO_IS_NOT_A_DOCUMENT: &str =
    "[document is required] A photo is not a document: please send the picture as a file.";
/// Reply to a person who is not on the allowlist.
pub const NOT_ALLOWED: &str = "Sorry, this bot is private and cannot serve you.";
/// `/start` after the greeting, and `/help`.
pub const HELP: &str =
    "I save every file you send me as a document to S3, under the file's own name.\n\
     \n\
     /files — your saved files, newest first (/files all: everyone's, for admins)\n\
     /rename — give the file you saved last a new name\n\
     /cancel — keep the name while I wait for a new one\n\
     /help — this message\n\
     \n\
     Each saved file also gets a Rename button. A name someone else's file already has is \
     numbered: report.pdf becomes report (2).pdf.";
/// The label of the rename button.
pub const RENAME_BUTTON: &str = "Rename";
/// Labels of the file list's page buttons.
pub const PREVIOUS: &str = "« Previous";
/// See [`PREVIOUS`].
pub const NEXT: &str = "Next »";
/// A press on a button this bot did not make (or no longer knows).
pub const NOT_OURS: &str = "This button is not from this bot.";

/// The command menu: `(command, description)`.
pub const COMMANDS: &[(&str, &str)] = &[
    ("files", "Your saved files"),
    ("rename", "Rename the file you saved last"),
    ("cancel", "Keep the name (stop a rename)"),
    ("help", "What this bot does"),
];

/// The acknowledgement of a document.
pub fn receiving(key: &str, size: Option<u64>) -> String {
    let size = size.map_or(String::new(), |s| format!(" ({})", human_bytes(s)));
    format!("[document] Receiving «{key}»{size}…")
}

/// The confirmation of a stored document; names the key it took when the wanted one was
/// someone else's.
pub fn saved(key: &str, wanted: &str, bytes: u64) -> String {
    let renamed = if key == wanted {
        String::new()
    } else {
        format!(" Another file is already called «{wanted}», so this one is «{key}».")
    };
    format!(
        "[document has been saved] «{key}» ({}) is stored in S3.{renamed}",
        human_bytes(bytes)
    )
}

/// The question a rename asks.
pub fn rename_asked(key: &str) -> String {
    let keep = match crate::domain::keys::extension(key) {
        Some(ext) => format!(" Without an extension, «{ext}» is kept."),
        None => String::new(),
    };
    format!("[rename] Send me the new name for «{key}».{keep} /cancel keeps the name.")
}

/// A rename's new name that cannot be used; the bot waits for another.
pub fn rename_refused(name: &str, why: &str) -> String {
    format!("[rename] «{name}» {why}. Send another name, or /cancel.")
}

/// A finished rename.
pub fn renamed(from: &str, to: &str) -> String {
    format!("[document has been renamed] «{from}» is now «{to}».")
}

/// A cancelled rename.
pub fn rename_cancelled(key: &str) -> String {
    format!("[rename cancelled] «{key}» keeps its name.")
}

/// The progress line shown while a file is stored.
pub fn progress(name: &str, bytes: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(total) => format!(
            "[document] Receiving «{name}»: {}% ({} of {})",
            (bytes.min(total) * 100 / total),
            human_bytes(bytes),
            human_bytes(total)
        ),
        None => format!("[document] Receiving «{name}»: {}", human_bytes(bytes)),
    }
}

/// The progress line shown while a failed attempt waits for its retry.
pub fn retrying(name: &str, attempt: u32, reason: &str, next_in: Duration) -> String {
    format!(
        "[document] Receiving «{name}»: attempt {attempt} failed ({reason}). Trying again in {} s…",
        next_in.as_secs_f64().ceil() as u64
    )
}

/// The refusal of a document over the download limit.
pub fn too_big(name: &str, size: Option<u64>, limit: u64) -> String {
    let size = size.map_or(String::new(), |s| format!(" is {} and", human_bytes(s)));
    format!(
        "[document] «{name}»{size} is over the {} limit of the chat platform's bot downloads, so it was not saved. \
         Send a smaller file (the service can take larger ones when it runs with a local Bot API server).",
        human_bytes(limit)
    )
}

/// Bytes in 1024-based units labelled KB, MB, GB, as the chat apps show file sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_verbatim() {
        assert!(GREETING.starts_with("[greeting]"));
        assert!(DOCUMENT_REQUIRED.starts_with("[document is required]"));
        assert!(PHOTO_IS_NOT_A_DOCUMENT.contains("[document is required]"));
        assert!(saved("a", "a", 1).starts_with("[document has been saved]"));
        assert!(
            rename_asked("a.pdf").starts_with("[rename]")
                && rename_asked("a.pdf").contains("«.pdf»")
        );
        assert!(renamed("a", "b").starts_with("[document has been renamed]"));
        assert!(rename_cancelled("a").starts_with("[rename cancelled]"));
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(40 * 1024 * 1024), "40.0 MB");
        assert_eq!(human_bytes(20_971_520), "20.0 MB");
        assert_eq!(human_bytes(1_073_741_824), "1.0 GB");
    }

    #[test]
    fn progress_shows_percent() {
        assert_eq!(
            progress("a.pdf", 10 * 1024 * 1024, Some(40 * 1024 * 1024)),
            "[document] Receiving «a.pdf»: 25% (10.0 MB of 40.0 MB)"
        );
        assert_eq!(
            progress("a.pdf", 5, None),
            "[document] Receiving «a.pdf»: 5 B"
        );
    }

    #[test]
    fn a_taken_name_is_explained() {
        assert_eq!(
            saved("r (2).pdf", "r.pdf", 2048),
            "[document has been saved] «r (2).pdf» (2.0 KB) is stored in S3. Another file is already called «r.pdf», so this one is «r (2).pdf»."
        );
    }
}
