//! `tg-ingest import`: a Telegram Desktop export (`result.json`) into the raw archive, so the
//! history from before the bot joined is compacted and queried like the rest.
//!
//! The file is read twice, as a stream ([`read`]): first to check it whole (a file that is not
//! JSON, or not an export, imports nothing), then to write. A message without id or date is
//! reported with its position and left out; the rest is imported. Messages become updates
//! shaped like the Bot API's ([`convert`]) with `tg_ingest_source: "import"`, written in the
//! archive's layout under keys that follow from the chat and message ids alone ([`write`]):
//! importing the same export again writes nothing new.

pub mod convert;
pub mod read;
pub mod write;

use std::collections::BTreeSet;
use std::path::Path;

use self::convert::{id_and_date, to_update, ExportChat};
use self::read::{read_export, Event, Position};
use self::write::{Imported, Writer};
use crate::util::clock::Day;

pub use self::write::ImportTarget;

/// Why an import could not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened.
    #[error("{path}: {detail}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        detail: String,
    },
    /// The file is not a readable export; nothing was imported.
    #[error("{path}: {detail}; nothing was imported")]
    NotAnExport {
        /// The file.
        path: String,
        /// What is wrong, and where.
        detail: String,
    },
    /// Writing to the raw bucket failed part way.
    #[error("{0}")]
    Write(String),
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Chats imported.
    pub chats: u64,
    /// Messages imported (written now, or already there).
    pub messages: u64,
    /// Objects written now.
    pub written: u64,
    /// Objects already in the raw bucket with the same bytes.
    pub unchanged: u64,
    /// Messages left out, with their position and why.
    pub left_out: Vec<String>,
    /// Days that got messages.
    pub days: BTreeSet<Day>,
    /// Keys of the objects written now.
    pub keys: Vec<String>,
}

/// Checks the export whole: the chats it holds (`--chat-id` picks one) and the messages to
/// leave out. A whole account's export with several chats needs `chat_id`.
fn check(path: &Path, chat_id: Option<i64>) -> Result<(u64, Vec<String>), ImportError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ImportError::Open {
        path: name.clone(),
        detail: e.to_string(),
    })?;
    let (mut picked, mut left_out, mut skipped) = (0, Vec::new(), 0);
    let mut on = |event: Event| {
        match event {
            Event::Chat(Some(_)) => picked += 1,
            Event::Chat(None) => skipped += 1,
            Event::Message(entry, at) => {
                if let Err(why) = id_and_date(&entry) {
                    left_out.push(format!("{at}: {why}"));
                }
            }
        }
        Ok(())
    };
    let not_export = |detail: String| ImportError::NotAnExport {
        path: name.clone(),
        detail,
    };
    read_export(file, chat_id, &mut on).map_err(|e| not_export(e.to_string()))?;
    if picked == 0 {
        return Err(not_export(format!(
            "no chat with id {} among its {skipped} chats",
            chat_id.unwrap_or_default()
        )));
    }
    if picked > 1 && chat_id.is_none() {
        return Err(not_export(format!(
            "it holds {picked} chats: pick one with --chat-id"
        )));
    }
    Ok((picked, left_out))
}

/// Imports the export at `path` (only the chat `chat_id`, when given) into `target`.
pub async fn import(
    target: &ImportTarget,
    path: &Path,
    chat_id: Option<i64>,
) -> Result<ImportReport, ImportError> {
    let (chats, left_out) = check(path, chat_id)?;
    for line in &left_out {
        log::warn!("import: {}: {line}; left out", path.display());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Imported>(1024);
    let (file, chat_id_) = (path.to_path_buf(), chat_id);
    let reader = std::thread::spawn(move || {
        let input = std::fs::File::open(&file).map_err(|e| e.to_string())?;
        let mut chat: Option<ExportChat> = None;
        let mut on = |event: Event| send(&tx, &mut chat, event);
        read_export(input, chat_id_, &mut on)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let mut writer = Writer::new(target);
    let written = writer.run(rx).await;
    let read = reader
        .join()
        .unwrap_or_else(|_| Err("the export reader stopped".into()));
    let mut report = written.map_err(ImportError::Write)?;
    read.map_err(|e| ImportError::Write(format!("reading {}: {e}", path.display())))?;
    report.chats = chats;
    report.left_out = left_out;
    Ok(report)
}

/// Converts one event of the reader and sends it to the writer.
fn send(
    tx: &tokio::sync::mpsc::Sender<Imported>,
    chat: &mut Option<ExportChat>,
    event: Event,
) -> Result<(), String> {
    let (entry, at): (serde_json::Value, Position) = match event {
        Event::Chat(c) => {
            *chat = c;
            return Ok(());
        }
        Event::Message(entry, at) => (entry, at),
    };
    let Some(chat) = chat.as_ref() else {
        return Ok(());
    };
    let Ok((message_id, date)) = id_and_date(&entry) else {
        return Ok(()); // reported by the check
    };
    let update = to_update(chat, &entry).map_err(|e| format!("{at}: {e}"))?;
    let item = Imported {
        chat: chat.id,
        message_id,
        date,
        payload: update.to_string(),
    };
    tx.blocking_send(item)
        .map_err(|_| "the writer stopped".to_string())
}
