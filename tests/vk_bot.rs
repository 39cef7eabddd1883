//! The bot on VK end to end: the real actors (and, for kill -9, the real binary) against the
//! fake VK API and a real S3 server.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_vk::{FakeVk, VK_GROUP, VK_TOKEN};
use support::*;
use tg_ingest::app::StartupError;
use tg_ingest::bot::texts;

const WAIT: Duration = Duration::from_secs(20);

/// Settings variables for a VK-only service against `vk` and `s3`, plus `extra`.
fn vk_env(
    vk: &FakeVk,
    s3: &TestS3,
    data: &std::path::Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("TG_INGEST__VK__ENABLED".into(), "true".into()),
        ("TG_INGEST__VK__TOKEN".into(), VK_TOKEN.into()),
        ("TG_INGEST__VK__GROUP_ID".into(), VK_GROUP.to_string()),
        ("TG_INGEST__VK__API_URL".into(), vk.api_url.clone()),
        ("TG_INGEST__VK__WAIT".into(), "1".into()),
        ("TG_INGEST__VK__STARTUP_ATTEMPTS".into(), "2".into()),
        ("TG_INGEST__S3__STARTUP_ATTEMPTS".into(), "2".into()),
        ("TG_INGEST__DATA_DIR".into(), data.display().to_string()),
        ("TG_INGEST__WORKERS".into(), "2".into()),
    ];
    vars.extend(s3.env());
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

/// Waits until the service opened its long-poll session (VK delivers only later events to it).
fn polling(vk: &FakeVk) {
    wait_until(WAIT, "a long-poll session", || vk.keys_issued() >= 1);
}

struct Harness {
    vk: FakeVk,
    s3: TestS3,
    _service: TestService,
    _data: tempfile::TempDir,
}

fn harness() -> Harness {
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(vk_env(&vk, &s3, data.path(), &[])));
    polling(&vk);
    Harness {
        vk,
        s3,
        _service: service,
        _data: data,
    }
}

impl Harness {
    /// Sends a text from `user` and waits for a reply containing `marker`.
    fn say(&self, user: i64, text: &str, marker: &str) -> String {
        let before = self.vk.texts_to(user).len();
        self.vk.push_message(user, text, json!([]));
        self.reply_after(user, before, marker)
    }

    fn reply_after(&self, user: i64, before: usize, marker: &str) -> String {
        let mut found = None;
        wait_until(WAIT, marker, || {
            let texts = self.vk.texts_to(user);
            found = texts[before.min(texts.len())..]
                .iter()
                .find(|t| t.contains(marker))
                .cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// Sends a document and waits until it is saved; answers the confirmation.
    fn send_doc(&self, user: i64, title: &str, bytes: &[u8]) -> support::fake_vk::VkSent {
        let before = self.vk.sent_to(user).len();
        let attachment = self.vk.doc_attachment(user, title, bytes);
        self.vk.push_message(user, "", attachment);
        let mut saved = None;
        wait_until(WAIT, "[document has been saved]", || {
            saved = self.vk.sent_to(user)[before..]
                .iter()
                .find(|m| m.text.contains("[document has been saved]"))
                .cloned();
            saved.is_some()
        });
        saved.unwrap()
    }
}

/// The data of the first button of a message's keyboard.
fn button_data(keyboard: &Option<Value>) -> String {
    let k = keyboard.as_ref().expect("a keyboard");
    assert_eq!(k["inline"], true);
    let action = &k["buttons"][0][0]["action"];
    assert_eq!(action["type"], "callback");
    let payload: Value = serde_json::from_str(action["payload"].as_str().unwrap()).unwrap();
    payload["d"].as_str().unwrap().to_string()
}

#[test]
fn greeting_document_required_and_photo() {
    let h = harness();
    assert_eq!(h.say(101, "hello", "[greeting]"), texts::GREETING);
    assert_eq!(
        h.say(101, "what now?", "[document is required]"),
        texts::DOCUMENT_REQUIRED
    );
    let before = h.vk.texts_to(101).len();
    h.vk.push_message(
        101,
        "",
        json!([{"type": "photo", "photo": {"id": 1, "owner_id": 101}}]),
    );
    let photo = h.reply_after(101, before, "[document is required]");
    assert_eq!(photo, texts::PHOTO_IS_NOT_A_DOCUMENT);
    assert!(h.s3.keys().is_empty());
}

#[test]
fn a_document_with_a_cyrillic_title_is_saved_byte_identical() {
    let h = harness();
    h.say(102, "hi", "[greeting]");
    let bytes = random_bytes(700_000, 5);
    let saved = h.send_doc(102, "Памятка наставника_KTS.pdf", &bytes);
    assert!(
        saved.text.contains("«Памятка наставника_KTS.pdf»"),
        "{}",
        saved.text
    );
    assert_eq!(button_data(&saved.keyboard).split(':').next(), Some("rn"));
    let texts = h.vk.texts_to(102);
    assert!(
        texts.iter().any(|t| t.starts_with("[document] Receiving")),
        "{texts:?}"
    );
    assert_eq!(h.s3.keys(), ["Памятка наставника_KTS.pdf"]);
    assert_eq!(h.s3.get("Памятка наставника_KTS.pdf").unwrap(), bytes);
    assert_eq!(
        h.s3.sha256_meta("Памятка наставника_KTS.pdf"),
        Some(sha256_hex(&bytes))
    );
}

#[test]
fn two_people_in_parallel_each_in_order_within_the_rate_limit() {
    let h = harness();
    // Each download takes about 0.4 s (four chunks, 100 ms apart).
    h.vk.set_doc_pace(Some(Duration::from_millis(100)));
    for user in [103, 104] {
        h.vk.push_message(user, "hi", json!([]));
    }
    for n in 0..3u64 {
        for user in [103, 104] {
            let bytes = random_bytes(200_000, n * 1000 + user as u64);
            let attachment =
                h.vk.doc_attachment(user, &format!("{user}-{n}.txt"), &bytes);
            h.vk.push_message(user, "", attachment);
        }
    }
    let saved = |user: i64| -> Vec<support::fake_vk::VkSent> {
        h.vk.sent_to(user)
            .into_iter()
            .filter(|m| m.text.contains("[document has been saved]"))
            .collect()
    };
    for user in [103, 104] {
        wait_until(WAIT, "three documents saved each", || {
            saved(user).len() == 3
        });
        assert_eq!(h.vk.texts_to(user)[0], texts::GREETING);
        // In the order they were sent: the names show it.
        let names: Vec<bool> = saved(user)
            .iter()
            .enumerate()
            .map(|(n, m)| m.text.contains(&format!("«{user}-{n}.txt»")))
            .collect();
        assert_eq!(names, [true, true, true], "{:?}", saved(user));
    }
    // In parallel: the second download began while the first was still streaming (each takes
    // at least 300 ms); one after the other they would start 300 ms or more apart.
    let downloads = h.vk.call_times("download");
    assert_eq!(downloads.len(), 6);
    assert!(
        downloads[1] - downloads[0] < Duration::from_millis(300),
        "the two people were served one after the other: {:?} between the first downloads",
        downloads[1] - downloads[0]
    );
    // The same name from two people: two objects.
    h.send_doc(103, "plan.txt", b"from 103");
    let second = h.send_doc(104, "plan.txt", b"from 104");
    assert!(second.text.contains("«plan (2).txt»"), "{}", second.text);
    assert!(
        h.vk.max_calls_per_second() <= 20,
        "{} VK calls in one second",
        h.vk.max_calls_per_second()
    );
    assert_eq!(h.vk.max_concurrent_polls(), 1);
}

#[test]
fn rename_by_button_and_command_and_the_file_list() {
    let h = harness();
    h.say(105, "hi", "[greeting]");
    let saved = h.send_doc(105, "draft.txt", b"words");
    h.vk.push_press(105, saved.cmid, json!({"d": button_data(&saved.keyboard)}));
    let asked = h.reply_after(105, 0, "[rename]");
    assert!(asked.contains("«draft.txt»"), "{asked}");
    wait_until(WAIT, "the press answered", || !h.vk.answers().is_empty());
    h.say(105, "final", "[document has been renamed]");
    assert_eq!(h.s3.keys(), ["final.txt"]);
    h.say(105, "/rename last", "[document has been renamed]");
    assert_eq!(h.s3.keys(), ["last.txt"]);
    assert_eq!(h.s3.get("last.txt").unwrap(), b"words");
    for n in 0..11 {
        h.send_doc(105, &format!("f{n:02}.txt"), b"x");
    }
    let list = h.say(105, "/files", "[files]");
    assert!(
        list.contains("(1–10 of 12)") && list.contains("1. f10.txt"),
        "{list}"
    );
    let message =
        h.vk.sent_to(105)
            .into_iter()
            .rev()
            .find(|m| m.text.contains("[files]"))
            .unwrap();
    h.vk.push_press(
        105,
        message.cmid,
        json!({"d": button_data(&message.keyboard)}),
    );
    wait_until(WAIT, "page 2", || {
        h.vk.sent_to(105)
            .iter()
            .any(|m| m.cmid == message.cmid && m.text.contains("(11–12 of 12)"))
    });
}

#[test]
fn an_expired_key_is_renewed_and_failed_1_moves_on() {
    let h = harness();
    h.say(106, "hi", "[greeting]");
    let keys = h.vk.keys_issued();
    h.vk.inject_poll_failures([2]);
    wait_until(WAIT, "a new key", || h.vk.keys_issued() > keys);
    h.say(106, "after a new key", "[document is required]");
    // failed 1 skips to VK's newest ts (events before it may be lost, as VK documents), and
    // failed 3 gets a new key and ts: the intake goes on after both.
    let keys = h.vk.keys_issued();
    h.vk.inject_poll_failures([1, 3]);
    wait_until(WAIT, "failed 1 and 3 answered", || {
        h.vk.pending_poll_failures() == 0 && h.vk.keys_issued() > keys
    });
    h.say(106, "after failed 1 and 3", "[document is required]");
}

#[test]
fn start_up_refuses_a_bad_token_a_wrong_group_and_a_disabled_long_poll() {
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let start = |extra: &[(&str, &str)]| {
        TestService::try_start(settings_from(vk_env(&vk, &s3, data.path(), extra)), None)
    };
    let err = start(&[("TG_INGEST__VK__TOKEN", "vk1.a.wrong")])
        .err()
        .unwrap();
    assert!(matches!(err, StartupError::VkToken { .. }), "{err}");
    let line = err.to_string();
    assert!(line.contains("VK rejected the community token") && line.contains("vk.token"));
    assert!(
        !line.contains("vk1.a.wrong") && !line.contains('\n'),
        "{line}"
    );
    let err = start(&[("TG_INGEST__VK__GROUP_ID", "78")]).err().unwrap();
    assert!(
        matches!(err, StartupError::VkGroup { group: 78, .. }),
        "{err}"
    );
    vk.set_long_poll(true, false);
    let err = start(&[]).err().unwrap();
    assert!(err.to_string().contains("message_new"), "{err}");
    vk.set_long_poll(false, true);
    let err = start(&[]).err().unwrap();
    assert!(matches!(err, StartupError::VkLongPoll { .. }), "{err}");
}

#[test]
fn the_binary_exits_non_zero_on_a_bad_vk_token() {
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let vars = vk_env(
        &vk,
        &s3,
        data.path(),
        &[("TG_INGEST__VK__TOKEN", "vk1.a.wrong")],
    );
    let mut child = spawn_binary(&vars, &log);
    let code = wait_exit(&mut child, Duration::from_secs(30));
    assert!(matches!(code, Some(c) if c != 0), "{code:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("VK rejected the community token"), "{text}");
    assert!(!text.contains("vk1.a.wrong"), "the token is never logged");
}

#[test]
fn telegram_and_vk_run_together_and_their_users_are_different_people() {
    let vk = FakeVk::start();
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let mut vars = vk_env(&vk, &s3, data.path(), &[]);
    vars.extend(service_env(&tg, &s3, data.path(), &[]));
    let _service = TestService::start(settings_from(vars));
    polling(&vk);
    tg.push(text(&tg, 107, "hi"));
    wait_until(WAIT, "Telegram greeting", || tg.texts_to(107).len() == 1);
    // VK user 107 is someone else: greeted too.
    vk.push_message(107, "hi", json!([]));
    wait_until(WAIT, "VK greeting", || vk.texts_to(107).len() == 1);
    assert_eq!(tg.texts_to(107), [texts::GREETING]);
    assert_eq!(vk.texts_to(107), [texts::GREETING]);
    tg.add_file(
        "t-1",
        FileBody::Bytes(std::sync::Arc::new(b"telegram".to_vec())),
    );
    tg.push(document(&tg, 107, "t-1", Some("same.txt"), 8));
    wait_until(WAIT, "Telegram saved", || {
        tg.texts_to(107)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    let attachment = vk.doc_attachment(107, "same.txt", b"vk");
    vk.push_message(107, "", attachment);
    wait_until(WAIT, "VK saved", || {
        vk.texts_to(107)
            .iter()
            .any(|t| t.contains("[document has been saved] «same (2).txt»"))
    });
    assert_eq!(s3.get("same.txt").unwrap(), b"telegram");
    assert_eq!(s3.get("same (2).txt").unwrap(), b"vk");
}

#[test]
fn kill_9_mid_document_replays_without_a_second_delivered_reply() {
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let vars = vk_env(&vk, &s3, data.path(), &[]);
    let mut child = spawn_binary(&vars, &log);
    polling(&vk);
    vk.push_message(108, "hi", json!([]));
    wait_until(WAIT, "greeting", || vk.texts_to(108).len() == 1);
    // 2 MiB served 64 KiB every 100 ms: about 3 s of download to kill it in.
    vk.set_doc_pace(Some(Duration::from_millis(100)));
    let bytes = random_bytes(2 * 1024 * 1024, 9);
    let attachment = vk.doc_attachment(108, "slow.bin", &bytes);
    vk.push_message(108, "", attachment);
    wait_until(WAIT, "[document]", || {
        vk.texts_to(108)
            .iter()
            .any(|t| t.starts_with("[document] Receiving"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    vk.set_doc_pace(None);
    let mut child = spawn_binary(&vars, &log);
    wait_until(Duration::from_secs(60), "saved after the restart", || {
        vk.texts_to(108)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    let texts = vk.texts_to(108);
    let acks = texts
        .iter()
        .filter(|t| t.starts_with("[document] Receiving") || t.starts_with("[document] Received"))
        .count();
    assert_eq!(
        acks, 1,
        "the replayed acknowledgement was not delivered twice: {texts:?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains("[greeting]")).count(),
        1,
        "{texts:?}"
    );
    assert_eq!(s3.get("slow.bin").unwrap(), bytes);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
}

#[test]
fn a_document_download_that_fails_is_retried_and_flood_control_waits() {
    let h = harness();
    h.say(109, "hi", "[greeting]");
    // Two failed downloads (VK's file servers answer 5xx now and then), then the file.
    h.vk.inject_doc_faults([500, 502]);
    // And flood control on the next two sends: VK asks to slow down; the replies still go.
    h.vk.inject_errors(
        "messages.send",
        [(9, "Flood control"), (6, "Too many requests per second")],
    );
    let bytes = random_bytes(50_000, 3);
    let saved = h.send_doc(109, "retried.bin", &bytes);
    assert!(saved.text.contains("«retried.bin»"), "{}", saved.text);
    assert_eq!(h.s3.get("retried.bin").unwrap(), bytes);
    // One acknowledgement (edited to show the retries and the end), one confirmation.
    let texts = h.vk.texts_to(109);
    let acks = texts
        .iter()
        .filter(|t| t.starts_with("[document] Rece"))
        .count();
    assert_eq!(acks, 1, "{texts:?}");
    let ack =
        h.vk.sent_to(109)
            .into_iter()
            .find(|m| m.text.starts_with("[document] Rece"))
            .unwrap();
    assert!(
        ack.edits >= 2,
        "the retries were shown: {} edits",
        ack.edits
    );
    // Each failed download was tried again after a wait (1 s, then 2 s, less up to half).
    let downloads = h.vk.call_times("download");
    assert_eq!(downloads.len(), 3, "two failures, then the file");
    for (n, pair) in downloads.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(500),
            "download retry {} came {gap:?} after the failure",
            n + 1
        );
    }
    // Flood control (9) asks for 5 s, too many requests (6) for 1 s: the acknowledgement's
    // retries waited that long (the first send was the greeting).
    let sends = h.vk.call_times("messages.send");
    assert!(sends.len() >= 4, "{} sends", sends.len());
    assert!(
        sends[2] - sends[1] >= Duration::from_millis(4900),
        "after flood control the send came again {:?} later",
        sends[2] - sends[1]
    );
    assert!(
        sends[3] - sends[2] >= Duration::from_millis(950),
        "after too many requests the send came again {:?} later",
        sends[3] - sends[2]
    );
}

#[test]
fn a_document_vk_will_not_hand_over_is_reported() {
    let h = harness();
    h.say(110, "hi", "[greeting]");
    h.vk.inject_doc_faults([404]);
    let attachment = h.vk.doc_attachment(110, "gone.pdf", b"never");
    h.vk.push_message(110, "", attachment);
    let sorry = h.reply_after(110, 1, "could not be saved");
    assert!(
        sorry.contains("«gone.pdf»") && sorry.contains("HTTP 404"),
        "{sorry}"
    );
    assert!(h.s3.keys().is_empty());
    // The name was given back: the next document of that name takes it.
    let saved = h.send_doc(110, "gone.pdf", b"now");
    assert!(
        saved.text.contains("«gone.pdf»") && !saved.text.contains("(2)"),
        "{}",
        saved.text
    );
}

#[test]
fn a_token_refused_while_polling_is_logged_as_an_error_and_polling_goes_on() {
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    vk.inject_errors(
        "groups.getLongPollServer",
        [
            (
                5,
                "User authorization failed: access_token was given to another ip address.",
            ),
            (9, "Flood control"),
        ],
    );
    let vars = vk_env(&vk, &s3, data.path(), &[]);
    let mut child = spawn_binary(&vars, &log);
    polling(&vk);
    vk.push_message(111, "hi", json!([]));
    wait_until(WAIT, "greeting", || vk.texts_to(111).len() == 1);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let refused = text
        .lines()
        .find(|l| l.contains("VK refuses the community token"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(refused.contains("ERROR"), "{refused}");
    assert!(text.contains("Flood control"), "{text}");
    assert!(!text.contains(VK_TOKEN), "the token is never logged");
}
