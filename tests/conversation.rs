//! The documents conversation end to end: ownership of names, rename, `/files`, `/help`,
//! against the fake Telegram and a real S3 server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use tg_ingest::bot::texts;
use tg_ingest::obs::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    tg: FakeTelegram,
    s3: TestS3,
    service: Option<TestService>,
    data: tempfile::TempDir,
    extra: Vec<(String, String)>,
}

impl Harness {
    fn start(extra: &[(&str, &str)]) -> Self {
        let tg = FakeTelegram::start(TOKEN);
        let s3 = TestS3::start();
        let data = tempfile::tempdir().unwrap();
        let mut h = Self {
            tg,
            s3,
            service: None,
            data,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        h.restart();
        h
    }

    /// Stops the service (if running) and starts it again on the same data.
    fn restart(&mut self) {
        self.service = None;
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let env = service_env(&self.tg, &self.s3, self.data.path(), &extra);
        self.service = Some(TestService::start(settings_from(env)));
    }

    /// Sends a text and waits for the reply that contains `marker`.
    fn say(&self, user: i64, text: &str, marker: &str) -> String {
        let before = self.tg.texts_to(user).len();
        self.tg.push(support::text(&self.tg, user, text));
        self.reply_after(user, before, marker)
    }

    /// The first message after the first `before` ones that contains `marker`.
    fn reply_after(&self, user: i64, before: usize, marker: &str) -> String {
        let mut found = None;
        wait_until(WAIT, marker, || {
            found = self.tg.texts_to(user)[before.min(self.tg.texts_to(user).len())..]
                .iter()
                .find(|t| t.contains(marker))
                .cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// Sends a document and waits until it is saved; returns the saved message (its id and
    /// keyboard).
    fn send_doc(&self, user: i64, file_id: &str, name: &str, bytes: &[u8]) -> Sent {
        self.tg
            .add_file(file_id, FileBody::Bytes(Arc::new(bytes.to_vec())));
        let before = self.tg.messages_to(user).len();
        self.tg.push(document(
            &self.tg,
            user,
            file_id,
            Some(name),
            bytes.len() as u64,
        ));
        let mut saved = None;
        wait_until(WAIT, "[document has been saved]", || {
            saved = self.tg.messages_to(user)[before..]
                .iter()
                .find(|m| m.text.contains("[document has been saved]"))
                .cloned();
            saved.is_some()
        });
        saved.unwrap()
    }

    /// Presses a button of a bot message in `user`'s chat.
    fn press(&self, user: i64, message_id: i64, data: &str) {
        let nonce = self.tg.next_user_message_id() as u64;
        self.tg.push(private_press(user, message_id, data, nonce));
    }
}

fn rename_data(saved: &Sent) -> String {
    assert_eq!(saved.keyboard.len(), 1, "{:?}", saved.keyboard);
    let (label, data) = &saved.keyboard[0][0];
    assert_eq!(label, "Rename");
    data.clone()
}

#[test]
fn rename_by_button_keeps_the_bytes_and_the_extension() {
    let h = Harness::start(&[]);
    let bytes = random_bytes(200_000, 7);
    h.say(21, "hi", "[greeting]");
    let saved = h.send_doc(21, "r-1", "Отчёт за май.pdf", &bytes);
    assert!(saved.text.contains("«Отчёт за май.pdf»"), "{}", saved.text);
    h.press(21, saved.message_id, &rename_data(&saved));
    let asked = h.reply_after(21, 0, "[rename]");
    assert!(
        asked.contains("«Отчёт за май.pdf»") && asked.contains(".pdf"),
        "{asked}"
    );
    let done = h.say(21, "Итоги мая", "[document has been renamed]");
    assert!(
        done.contains("«Отчёт за май.pdf»") && done.contains("«Итоги мая.pdf»"),
        "{done}"
    );
    assert_eq!(h.s3.keys(), ["Итоги мая.pdf"]);
    assert_eq!(h.s3.get("Итоги мая.pdf").unwrap(), bytes);
    assert_eq!(
        h.s3.sha256_meta("Итоги мая.pdf").as_deref(),
        Some(sha256_hex(&bytes).as_str()),
        "the metadata travels with the copy"
    );
    // The rename is over: a text is a text again.
    h.say(21, "thanks", "[document is required]");
}

#[test]
fn rename_command_refuses_a_taken_name_and_waits_for_another() {
    let h = Harness::start(&[]);
    h.say(22, "hi", "[greeting]");
    h.send_doc(22, "t-1", "a.txt", b"first");
    h.send_doc(22, "t-2", "b.txt", b"second");
    let asked = h.say(22, "/rename", "[rename]");
    assert!(asked.contains("«b.txt»"), "the file saved last: {asked}");
    let refused = h.say(22, "a.txt", "is taken");
    assert!(refused.starts_with("[rename]"), "{refused}");
    let done = h.say(22, "c.txt", "[document has been renamed]");
    assert!(
        done.contains("«b.txt»") && done.contains("«c.txt»"),
        "{done}"
    );
    assert_eq!(h.s3.keys(), ["a.txt", "c.txt"]);
    assert_eq!(h.s3.get("a.txt").unwrap(), b"first");
    assert_eq!(h.s3.get("c.txt").unwrap(), b"second");
    // `/rename <name>` renames at once.
    h.say(22, "/rename d", "[document has been renamed]");
    assert_eq!(h.s3.keys(), ["a.txt", "d.txt"]);
}

#[test]
fn cancel_and_a_document_both_end_a_pending_rename() {
    let h = Harness::start(&[]);
    h.say(23, "hi", "[greeting]");
    h.send_doc(23, "c-1", "keep.txt", b"keep");
    h.say(23, "/rename", "[rename]");
    let cancelled = h.say(23, "/cancel", "[rename cancelled]");
    assert!(cancelled.contains("«keep.txt»"), "{cancelled}");
    h.say(23, "new name", "[document is required]");
    h.say(23, "/rename", "[rename]");
    h.send_doc(23, "c-2", "other.txt", b"other");
    // The document ended the rename: the next text is not a name.
    h.say(23, "new name", "[document is required]");
    assert_eq!(h.s3.keys(), ["keep.txt", "other.txt"]);
}

#[test]
fn a_rename_waiting_for_its_name_survives_a_restart() {
    let mut h = Harness::start(&[]);
    h.say(24, "hi", "[greeting]");
    h.send_doc(24, "s-1", "before.csv", b"a,b\n1,2\n");
    h.say(24, "/rename", "[rename]");
    h.restart();
    h.say(24, "after", "[document has been renamed]");
    assert_eq!(h.s3.keys(), ["after.csv"]);
}

#[test]
fn two_people_sending_the_same_name_get_two_objects() {
    let h = Harness::start(&[]);
    h.say(25, "hi", "[greeting]");
    h.say(26, "hi", "[greeting]");
    h.send_doc(25, "n-1", "plan.docx", b"from 25");
    let second = h.send_doc(26, "n-2", "plan.docx", b"from 26");
    assert!(second.text.contains("«plan (2).docx»"), "{}", second.text);
    assert_eq!(h.s3.keys(), ["plan (2).docx", "plan.docx"]);
    assert_eq!(h.s3.get("plan.docx").unwrap(), b"from 25");
    // The owner sending the name again replaces their own file.
    let again = h.send_doc(25, "n-3", "plan.docx", b"from 25, v2");
    assert!(again.text.contains("«plan.docx»") && !again.text.contains("(2)"));
    assert_eq!(h.s3.get("plan.docx").unwrap(), b"from 25, v2");
    assert_eq!(h.s3.get("plan (2).docx").unwrap(), b"from 26");
    // And a third person gets the next number.
    h.say(27, "hi", "[greeting]");
    let third = h.send_doc(27, "n-4", "plan.docx", b"from 27");
    assert!(third.text.contains("«plan (3).docx»"), "{}", third.text);
}

#[test]
fn an_object_someone_put_in_the_bucket_is_not_replaced() {
    let h = Harness::start(&[]);
    let bucket = h.s3.target().bucket().unwrap();
    block_on(bucket.put_object("theirs.bin", b"not ours")).unwrap();
    h.say(28, "hi", "[greeting]");
    let saved = h.send_doc(28, "f-1", "theirs.bin", b"mine");
    assert!(saved.text.contains("«theirs (2).bin»"), "{}", saved.text);
    assert_eq!(h.s3.get("theirs.bin").unwrap(), b"not ours");
    assert_eq!(h.s3.get("theirs (2).bin").unwrap(), b"mine");
}

#[test]
fn only_the_owner_can_press_rename() {
    let h = Harness::start(&[]);
    h.say(29, "hi", "[greeting]");
    let saved = h.send_doc(29, "o-1", "private.txt", b"secret");
    let data = rename_data(&saved);
    h.say(30, "hi", "[greeting]");
    let texts_before = h.tg.texts_to(30).len();
    h.press(30, saved.message_id, &data);
    wait_until(WAIT, "the refusal", || {
        h.tg.answers()
            .iter()
            .any(|(_, t)| t.contains("Only the person who sent this file"))
    });
    assert_eq!(
        h.tg.texts_to(30).len(),
        texts_before,
        "no [rename] for a stranger"
    );
    h.say(30, "stolen.txt", "[document is required]");
    assert_eq!(h.s3.keys(), ["private.txt"]);
}

#[test]
fn files_are_listed_ten_per_page_and_checked_against_the_bucket() {
    let h = Harness::start(&[]);
    h.say(31, "hi", "[greeting]");
    h.say(31, "/files", "You have no saved files yet");
    for i in 1..=25 {
        h.send_doc(31, &format!("l-{i}"), &format!("file-{i:02}.txt"), b"x");
    }
    h.say(32, "hi", "[greeting]");
    h.send_doc(32, "l-other", "someone-else.txt", b"y");
    let first = h.say(31, "/files", "[files]");
    assert!(first.contains("(1–10 of 25)"), "{first}");
    assert!(
        first.contains("1. file-25.txt — 1 B — "),
        "newest first: {first}"
    );
    assert!(!first.contains("someone-else"), "{first}");
    let list =
        h.tg.messages_to(31)
            .into_iter()
            .rev()
            .find(|m| m.text.contains("[files]"))
            .unwrap();
    let next = |page: &[Vec<(String, String)>]| {
        page.iter()
            .flatten()
            .find(|(label, _)| label.contains("Next"))
            .map(|(_, data)| data.clone())
    };
    let prev = |page: &[Vec<(String, String)>]| {
        page.iter()
            .flatten()
            .find(|(label, _)| label.contains("Previous"))
            .map(|(_, data)| data.clone())
    };
    assert!(prev(&list.keyboard).is_none());
    h.press(31, list.message_id, &next(&list.keyboard).unwrap());
    let shown = |part: &str| {
        wait_until(WAIT, part, || {
            h.tg.text_of(31, list.message_id)
                .is_some_and(|t| t.contains(part))
        })
    };
    shown("(11–20 of 25)");
    let keyboard = h.tg.keyboard(31, list.message_id);
    h.press(31, list.message_id, &next(&keyboard).unwrap());
    shown("(21–25 of 25)");
    let keyboard = h.tg.keyboard(31, list.message_id);
    assert!(next(&keyboard).is_none(), "{keyboard:?}");
    let last = h.tg.text_of(31, list.message_id).unwrap();
    assert!(last.contains("25. file-01.txt"), "{last}");
    h.press(31, list.message_id, &prev(&keyboard).unwrap());
    shown("(11–20 of 25)");
    // An object deleted behind the bot's back is not listed any more.
    h.s3.delete("file-25.txt");
    let after = h.say(31, "/files", "(1–10 of 24)");
    assert!(
        !after.contains("file-25.txt") && after.contains("1. file-24.txt"),
        "{after}"
    );
    // A renamed file shows its new name.
    h.say(31, "/rename", "[rename]");
    h.say(31, "renamed-24", "[document has been renamed]");
    let renamed = h.say(31, "/files", "(1–10 of 24)");
    assert!(renamed.contains("renamed-24.txt"), "{renamed}");
}

#[test]
fn files_all_is_for_admins_only() {
    let h = Harness::start(&[("TG_INGEST__BUTTON__ADMINS", "41")]);
    h.say(41, "hi", "[greeting]");
    h.say(42, "hi", "[greeting]");
    h.send_doc(41, "a-1", "admin.txt", b"a");
    h.send_doc(42, "a-2", "user.txt", b"u");
    let refused = h.say(42, "/files all", "[files]");
    assert!(refused.contains("Only the configured admins"), "{refused}");
    let all = h.say(41, "/files all", "[files]");
    assert!(all.contains("(1–2 of 2)"), "{all}");
    assert!(
        all.contains("user.txt — 1 B") && all.contains("telegram 42"),
        "{all}"
    );
}

#[test]
fn help_lists_the_commands_and_the_menu_is_set_at_start() {
    let h = Harness::start(&[]);
    wait_until(WAIT, "setMyCommands", || !h.tg.commands().is_empty());
    assert_eq!(h.tg.commands(), ["files", "rename", "cancel", "help"]);
    let greeting = h.say(43, "/start", "[greeting]");
    assert_eq!(greeting, texts::GREETING);
    let help = h.say(43, "/help", "/files");
    for command in ["/rename", "/cancel", "/help"] {
        assert!(help.contains(command), "{help}");
    }
    let help = h.say(43, "/start", "/files");
    assert_eq!(help, texts::HELP);
}

#[test]
fn a_rename_waits_out_an_s3_outage() {
    let mut h = Harness::start(&[]);
    if h.s3.skips_unless_in_process("the test stops the S3 server") {
        return;
    }
    h.say(33, "hi", "[greeting]");
    h.send_doc(33, "o-1", "up.txt", b"kept");
    h.say(33, "/rename", "[rename]");
    h.s3.stop();
    let before = h.tg.texts_to(33).len();
    h.tg.push(support::text(&h.tg, 33, "down"));
    let metrics = h.service.as_ref().unwrap().metrics.clone();
    wait_until(WAIT, "S3 tried during the outage", || {
        Metrics::get(&metrics.object_retries) >= 2
    });
    h.s3.restart();
    let done = h.reply_after(33, before, "[document has been renamed]");
    assert!(done.contains("«down.txt»"), "{done}");
    assert_eq!(h.s3.keys(), ["down.txt"]);
    assert_eq!(h.s3.get("down.txt").unwrap(), b"kept");
}
