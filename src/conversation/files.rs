//! `/files`: a person's saved files, newest first, ten per page, with `Previous` and `Next`
//! buttons that edit the same message. Each page is checked against the bucket: a file whose
//! object someone deleted there is forgotten and not listed. Admins may list everyone's files
//! with `/files all`.

use super::{ask, texts, Conversation};
use crate::actors::store::{FilesPage, ForgetMissingFile};
use crate::actors::worker::Outcome;
use crate::domain::chat::{Button, Event, Keyboard, Press};
use crate::store::FileEntry;

/// Files per page.
pub const PAGE: u64 = 10;

/// The largest page number whose offset (`page × PAGE`) is a valid SQL integer.
const LAST_POSSIBLE_PAGE: u64 = i64::MAX as u64 / PAGE - 1;
/// Refusal of `/files all` to someone who is not an admin.
pub const ADMINS_ONLY: &str = "[files] Only the configured admins can list everyone's files.";
/// Rounds of forgetting deleted objects before a page is shown anyway.
const CHECK_ROUNDS: usize = 5;

/// `callback_data` of a page button.
pub fn page_data(all: bool, page: u64) -> String {
    format!("{}:{page}", if all { "fa" } else { "fl" })
}

/// One line of the list.
fn line(n: u64, f: &FileEntry, all: bool) -> String {
    let when = crate::util::clock::iso8601_millis(f.saved_at * 1000);
    let when = format!("{} {} UTC", &when[..10], &when[11..16]);
    let name: String = f.key.chars().take(120).collect();
    let cut = if name.len() < f.key.len() { "…" } else { "" };
    let owner = if all {
        format!(" — {} {}", f.platform, f.user_id)
    } else {
        String::new()
    };
    format!(
        "{n}. {name}{cut} — {} — {when}{owner}",
        texts::human_bytes(f.bytes)
    )
}

impl Conversation {
    /// `/files` (or `/files all`).
    pub(super) async fn files_command(&self, ev: &Event, args: &str) -> Outcome {
        let all = args.eq_ignore_ascii_case("all");
        if all && !self.is_admin(ev.person) {
            self.reply(ev, ADMINS_ONLY).await?;
            return Ok("/files all refused: not an admin".into());
        }
        let (text, keyboard, shown) = self.files_page(ev, all, 0).await?;
        self.send(ev, &text, (!keyboard.is_empty()).then_some(&keyboard))
            .await
            .map_err(super::reply_error)?;
        Ok(format!("/files: page 1 with {shown} files"))
    }

    /// `Previous` / `Next` pressed.
    pub(super) async fn files_press(
        &self,
        ev: &Event,
        press: &Press,
        all: bool,
        page: u64,
    ) -> Outcome {
        if all && !self.is_admin(ev.person) {
            self.answer(ev, press, ADMINS_ONLY).await;
            return Ok("files page press refused: not an admin".into());
        }
        let Some(message_id) = press.message_id else {
            self.answer(ev, press, texts::NOT_OURS).await;
            return Ok("files page press without a message".into());
        };
        let (text, keyboard, shown) = self.files_page(ev, all, page).await?;
        self.answer(ev, press, "").await;
        if let Err(e) = self
            .deps
            .chat
            .edit(
                ev.chat,
                message_id,
                &text,
                (!keyboard.is_empty()).then_some(&keyboard),
            )
            .await
        {
            if !e.not_modified {
                return Err(super::reply_error(e));
            }
        }
        Ok(format!("/files: page {} with {shown} files", page + 1))
    }

    /// The text and buttons of one page, and how many files it shows.
    async fn files_page(
        &self,
        ev: &Event,
        all: bool,
        page: u64,
    ) -> Result<(String, Keyboard, usize), crate::actors::worker::HandlerError> {
        let owner = (!all).then_some(ev.person);
        // A button's number comes from the chat and may be forged: past the last page it shows
        // the last page, and no page number makes an offset the store cannot take.
        let mut page = page.min(LAST_POSSIBLE_PAGE);
        let mut unchecked = false;
        let (mut files, mut total) = (Vec::new(), 0);
        for round in 0..CHECK_ROUNDS {
            let request = FilesPage {
                owner,
                offset: page * PAGE,
                limit: PAGE,
            };
            (files, total) = ask(&self.deps.store, request).await?;
            if files.is_empty() && page > 0 {
                // The list shrank under this page: show the last one.
                page = total.saturating_sub(1) / PAGE;
                continue;
            }
            let keys = files.iter().map(|f| f.key.clone()).collect();
            let found = match self.objects_exist(keys, false).await {
                Ok(found) => found,
                Err(e) => {
                    log::warn!(
                        "chat_id={} /files: the bucket could not be checked ({e}); listing unchecked",
                        ev.chat
                    );
                    unchecked = true;
                    break;
                }
            };
            let forgotten = self.forget_gone(&files, &found).await?;
            if forgotten == 0 {
                break;
            }
            if round + 1 == CHECK_ROUNDS {
                unchecked = true;
            }
        }
        let text = page_text(all, page, &files, total, unchecked);
        let mut row = Vec::new();
        if page > 0 && !files.is_empty() {
            row.push(Button::new(texts::PREVIOUS, page_data(all, page - 1)));
        }
        if (page + 1) * PAGE < total {
            row.push(Button::new(texts::NEXT, page_data(all, page + 1)));
        }
        let keyboard = if row.is_empty() { vec![] } else { vec![row] };
        Ok((text, keyboard, files.len()))
    }

    /// Forgets the files of a page whose objects are gone (unless being renamed); answers how
    /// many were forgotten.
    async fn forget_gone(
        &self,
        files: &[FileEntry],
        found: &[bool],
    ) -> Result<usize, crate::actors::worker::HandlerError> {
        let gone: Vec<&FileEntry> = files
            .iter()
            .zip(found)
            .filter(|(_, exists)| !**exists)
            .map(|(f, _)| f)
            .collect();
        let mut forgotten = 0;
        for f in gone {
            // A file being renamed may be missing under its old key for a moment: kept.
            if ask(&self.deps.store, ForgetMissingFile(f.id)).await? {
                log::info!(
                    "{:?} is no longer in the bucket (deleted outside the service): forgotten",
                    f.key
                );
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

/// The text of one page of the list.
fn page_text(all: bool, page: u64, files: &[FileEntry], total: u64, unchecked: bool) -> String {
    let whose = if all { "All files" } else { "Your files" };
    if files.is_empty() {
        if all {
            "[files] No files are saved yet.".to_string()
        } else {
            "[files] You have no saved files yet. Send me a document to save one.".to_string()
        }
    } else {
        let first = page * PAGE + 1;
        let last = page * PAGE + files.len() as u64;
        let mut text = format!("[files] {whose}, newest first ({first}–{last} of {total}):");
        for (i, f) in files.iter().enumerate() {
            text.push('\n');
            text.push_str(&line(first + i as u64, f, all));
        }
        if unchecked {
            text.push_str("\n(The storage could not be checked just now.)");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_size_and_date() {
        let f = FileEntry {
            id: 1,
            key: "отчёт.pdf".into(),
            platform: "telegram".into(),
            user_id: 7,
            bytes: 2048,
            saved_at: 1_763_800_000,
        };
        assert_eq!(
            line(3, &f, false),
            "3. отчёт.pdf — 2.0 KB — 2025-11-22 08:26 UTC"
        );
        assert!(line(3, &f, true).ends_with(" — telegram 7"));
        assert_eq!(page_data(false, 2), "fl:2");
        assert_eq!(page_data(true, 0), "fa:0");
    }
}
