//! Stored means stored: byte counts verified, SHA-256 recorded, retries the user can see, no
//! multipart upload left open, and Telegram's `retry_after` honoured on every call.

mod support;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::fake_telegram::pattern_byte;
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn vars(
    tg: &FakeTelegram,
    s3: &TestS3,
    data: &std::path::Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut base = vec![
        ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ("TG_INGEST__TELEGRAM__PROGRESS_INTERVAL_MS", "0"),
        ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
        ("TG_INGEST__S3__PART_SIZE_MIB", "5"),
    ];
    base.extend_from_slice(extra);
    service_env(tg, s3, data, &base)
}

/// The fake Telegram, a real S3 server and a data directory.
fn fakes() -> (FakeTelegram, TestS3, tempfile::TempDir) {
    (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    )
}

/// Multipart uploads the service has recorded as open in its store. (Between the server
/// creating an upload and the service recording it lies one round trip; a crash exactly then
/// is what the bucket's lifecycle rule is for.)
fn recorded_uploads(data: &std::path::Path) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(db) = rusqlite::Connection::open_with_flags(data.join("state.db"), flags) else {
        return 0;
    };
    db.query_row("SELECT COUNT(*) FROM open_uploads", [], |r| r.get(0))
        .unwrap_or(0)
}

fn saved(tg: &FakeTelegram, chat: i64) -> usize {
    tg.texts_to(chat)
        .iter()
        .filter(|t| t.contains("[document has been saved]"))
        .count()
}

#[test]
fn a_download_cut_short_is_retried_visibly_and_stored_whole_with_its_sha256() {
    let (tg, s3, data) = fakes();
    let service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    let len = 12 * MIB;
    tg.add_file("cut", FileBody::Pattern(len));
    tg.inject_method("download", [Fault::CutShort, Fault::CutShort]);
    tg.push(document(&tg, 41, "cut", Some("cut.bin"), len));
    wait_until(WAIT, "saved", || saved(&tg, 41) == 1);
    let bytes = pattern(len);
    let stored = s3.get("cut.bin").unwrap();
    assert!(
        stored == bytes,
        "the whole file, not {} bytes",
        stored.len()
    );
    assert_eq!(s3.sha256_meta("cut.bin"), Some(sha256_hex(&bytes)));
    assert_eq!(tg.calls("download").len(), 3);
    let edits = tg.sent_to(41, "editMessageText");
    assert!(
        edits
            .iter()
            .any(|t| t.contains("attempt 1 failed") && t.contains("ended early")),
        "the progress message says what failed: {edits:?}"
    );
    assert!(
        edits.iter().any(|t| t.contains("attempt 2 failed")),
        "{edits:?}"
    );
    assert_eq!(
        s3.open_uploads(),
        0,
        "the cut attempts' multipart uploads were aborted"
    );
    drop(service);
    let store = tg_ingest::store::Store::open(&data.path().join("state.db")).unwrap();
    let record = store.saved_file("cut.bin").unwrap().unwrap();
    assert_eq!((record.bytes, record.user_id), (len, 41));
    assert_eq!(record.sha256, sha256_hex(&bytes));
}

#[test]
fn a_download_that_stays_wrong_ends_with_the_failure_reply_and_the_chat_moves_on() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__DOWNLOAD_RETRY_FOR_SECS", "3")],
    )));
    tg.add_file("short", FileBody::Pattern(300 * 1024));
    tg.add_file("long", FileBody::Pattern(7 * MIB));
    tg.inject_method("download", std::iter::repeat_n(Fault::CutShort, 50));
    let started = Instant::now();
    tg.push(document(&tg, 42, "short", Some("short.bin"), 300 * 1024));
    tg.push(text(&tg, 42, "still there?"));
    wait_until(WAIT, "the failure reply, then the next reply", || {
        tg.texts_to(42).len() == 4
    });
    let texts = tg.texts_to(42);
    assert!(texts[2].contains("could not be saved"), "{texts:?}");
    assert!(texts[3].contains("[document is required]"), "{texts:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // A body longer than getFile's file_size fails the same way.
    tg.with_cleared_method_faults("download");
    tg.inject_method("download", std::iter::repeat_n(Fault::Longer, 50));
    tg.push(document(&tg, 42, "long", Some("long.bin"), 7 * MIB));
    wait_until(WAIT, "the second failure reply", || {
        tg.texts_to(42)
            .iter()
            .filter(|t| t.contains("could not be saved"))
            .count()
            == 2
    });
    assert_eq!(saved(&tg, 42), 0);
    assert!(s3.keys().is_empty(), "{:?}", s3.keys());
    assert_eq!(s3.open_uploads(), 0);
}

#[test]
fn a_small_document_carries_its_sha256_in_one_put() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    let bytes = random_bytes(100_000, 5);
    tg.add_file("small", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    tg.push(document(
        &tg,
        43,
        "small",
        Some("small.txt"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "saved", || saved(&tg, 43) == 1);
    assert_eq!(s3.sha256_meta("small.txt"), Some(sha256_hex(&bytes)));
}

/// The gap between the call of `method` that got the 429 and the next call of it.
fn gap_after_429(tg: &FakeTelegram, method: &str) -> Duration {
    let calls = tg.calls(method);
    assert!(calls.len() >= 2, "{method}: {} calls", calls.len());
    calls[1].at.duration_since(calls[0].at)
}

#[test]
fn retry_after_on_get_file_and_the_download_is_waited_out() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    tg.add_file("f", FileBody::Pattern(1000));
    tg.inject_method("getFile", [Fault::RetryAfter(2)]);
    tg.inject_method("download", [Fault::RetryAfter(2)]);
    tg.push(document(&tg, 44, "f", Some("f.bin"), 1000));
    wait_until(WAIT, "saved", || saved(&tg, 44) == 1);
    for method in ["getFile", "download"] {
        let gap = gap_after_429(&tg, method);
        assert!(
            gap >= Duration::from_millis(1950),
            "{method}: next call after {gap:?}"
        );
    }
}

#[test]
fn retry_after_on_sends_and_edits_holds_that_chat_only() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    // editMessageText: the progress edits of a paced 20 MiB download come about once a second.
    tg.add_file("big", FileBody::Pattern(20 * MIB));
    tg.set_file_pace(Some(Duration::from_millis(50)));
    tg.inject_method("editMessageText", [Fault::RetryAfter(3)]);
    tg.push(document(&tg, 45, "big", Some("big.bin"), 20 * MIB));
    wait_until(WAIT, "saved", || saved(&tg, 45) == 1);
    let gap = gap_after_429(&tg, "editMessageText");
    assert!(
        gap >= Duration::from_millis(2950),
        "next edit after {gap:?}"
    );
    // sendMessage: the reply waits, another chat's does not.
    tg.inject_method("sendMessage", [Fault::RetryAfter(2)]);
    let sent = Instant::now();
    tg.push(text(&tg, 46, "hi"));
    wait_until(WAIT, "the first attempt", || {
        tg.calls("sendMessage").iter().any(|c| c.at > sent)
    });
    tg.push(text(&tg, 47, "hi"));
    wait_until(WAIT, "both greetings", || {
        tg.texts_to(46).len() == 1 && tg.texts_to(47).len() == 1
    });
    let at = |chat: i64| {
        tg.calls("sendMessage")
            .into_iter()
            .filter(|c| c.params["chat_id"] == chat && c.at > sent)
            .map(|c| c.at)
            .collect::<Vec<_>>()
    };
    let (c46, c47) = (at(46), at(47));
    assert_eq!(c46.len(), 2);
    assert!(c46[1].duration_since(c46[0]) >= Duration::from_millis(1950));
    assert!(c47[0] < c46[1], "another chat is not held");
}

#[test]
fn kill_9_during_a_multipart_upload_leaves_no_open_upload_after_the_next_start() {
    let (tg, s3, data) = fakes();
    let log = data.path().join("service.log");
    let v = vars(&tg, &s3, data.path(), &[]);
    tg.add_file("slow", FileBody::Pattern(30 * MIB));
    tg.set_file_pace(Some(Duration::from_millis(40)));
    let mut child = spawn_binary(&v, &log);
    tg.push(document(&tg, 48, "slow", Some("slow.bin"), 30 * MIB));
    wait_until(WAIT, "a multipart upload open and recorded", || {
        s3.open_uploads() == 1 && recorded_uploads(data.path()) == 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s3.open_uploads(), 1, "the killed run left its upload open");
    tg.set_file_pace(None);
    let mut child = spawn_binary(&v, &log);
    wait_until(Duration::from_secs(60), "saved after the restart", || {
        saved(&tg, 48) == 1
    });
    wait_until(WAIT, "no open upload", || s3.open_uploads() == 0);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("aborted 1 unfinished multipart uploads"),
        "{text}"
    );
    assert_eq!(s3.get("slow.bin").unwrap().len() as u64, 30 * MIB);
}

#[test]
fn kill_9_between_creating_a_multipart_upload_and_recording_it_leaves_nothing_open() {
    let (tg, s3, data) = fakes();
    let log = data.path().join("service.log");
    let mut v = vars(&tg, &s3, data.path(), &[]);
    tg.add_file("gap", FileBody::Pattern(12 * MIB));
    // The server has created the upload; the process stops there before recording its id.
    v.push((
        "FAILPOINTS".into(),
        "upload.after_create=sleep(60000)".into(),
    ));
    let mut child = spawn_binary(&v, &log);
    tg.push(document(&tg, 52, "gap", Some("gap.bin"), 12 * MIB));
    wait_until(WAIT, "the upload created on the server", || {
        s3.open_uploads() == 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s3.open_uploads(), 1, "the killed run left its upload open");
    v.pop();
    let mut child = spawn_binary(&v, &log);
    wait_until(WAIT, "saved after the restart", || saved(&tg, 52) == 1);
    wait_until(WAIT, "no open upload, listed by the server", || {
        s3.open_uploads() == 0
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("left unrecorded by a process that stopped"),
        "the unrecorded upload was found by its intent: {text}"
    );
    assert_eq!(s3.get("gap.bin").unwrap(), pattern(12 * MIB));
}

#[test]
fn a_shutdown_whose_deadline_runs_out_aborts_its_multipart_upload() {
    let (tg, s3, data) = fakes();
    let log = data.path().join("service.log");
    let v = vars(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__SHUTDOWN_DEADLINE_SECS", "0")],
    );
    tg.add_file("slow", FileBody::Pattern(30 * MIB));
    tg.set_file_pace(Some(Duration::from_millis(40)));
    let mut child = spawn_binary(&v, &log);
    tg.push(document(&tg, 49, "slow", Some("slow.bin"), 30 * MIB));
    wait_until(WAIT, "a multipart upload open and recorded", || {
        s3.open_uploads() == 1 && recorded_uploads(data.path()) == 1
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
    assert_eq!(
        s3.open_uploads(),
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[test]
fn an_s3_outage_during_a_multipart_upload_leaves_no_open_upload() {
    let (tg, mut s3, data) = fakes();
    if s3.skips_unless_in_process("only the in-process server can be stopped by the test") {
        return;
    }
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&vars(&tg, &s3, data.path(), &[]), &log);
    tg.add_file("slow", FileBody::Pattern(30 * MIB));
    tg.set_file_pace(Some(Duration::from_millis(40)));
    tg.push(document(&tg, 50, "slow", Some("slow.bin"), 30 * MIB));
    wait_until(WAIT, "a multipart upload open and recorded", || {
        s3.open_uploads() == 1 && recorded_uploads(data.path()) == 1
    });
    // The server goes away, and when it is back it refuses aborts for a while (503).
    fail::cfg("embedded_s3.abort", &format!("return({})", s3.bucket)).unwrap();
    s3.stop();
    wait_until(WAIT, "the failure seen", || {
        tg.sent_to(50, "editMessageText")
            .iter()
            .any(|t| t.contains("storage is unavailable"))
    });
    std::thread::sleep(Duration::from_secs(8));
    s3.restart();
    tg.set_file_pace(None);
    wait_until(Duration::from_secs(90), "saved", || saved(&tg, 50) == 1);
    assert_eq!(s3.get("slow.bin").unwrap().len() as u64, 30 * MIB);
    assert_eq!(
        s3.open_uploads(),
        1,
        "the failed attempt's upload is still open"
    );
    // Aborts work again, and the service is stopped at once: the abort must not wait for
    // the next start.
    fail::remove("embedded_s3.abort");
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
    assert_eq!(
        s3.open_uploads(),
        0,
        "no multipart upload left open on the server after the stop: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(recorded_uploads(data.path()), 0, "none left recorded");
}

#[test]
fn a_hostile_mime_type_is_stored_as_octet_stream_at_once() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    let bytes = random_bytes(50_000, 8);
    tg.add_file("mime", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    let mut update = document(&tg, 51, "mime", Some("mime.txt"), bytes.len() as u64);
    update["message"]["document"]["mime_type"] = "text/plain\r\nx-amz-acl: public-read".into();
    tg.push(update);
    wait_until(Duration::from_secs(10), "saved without retries", || {
        saved(&tg, 51) == 1
    });
    assert!(s3.get("mime.txt").unwrap() == bytes);
    assert_eq!(tg.calls("download").len(), 1, "stored on the first attempt");
}

#[test]
fn a_user_who_blocked_the_bot_still_has_the_document_stored_once() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(&tg, &s3, data.path(), &[])));
    let bytes = random_bytes(70_000, 9);
    tg.add_file("blk", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    // The greeting, the [document] acknowledgement and the confirmation are all refused.
    let blocked = Fault::Status(403, "Forbidden: bot was blocked by the user");
    tg.inject_method("sendMessage", [blocked.clone(), blocked.clone(), blocked]);
    tg.push(document(
        &tg,
        52,
        "blk",
        Some("blocked.pdf"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "stored and finished", || {
        s3.get("blocked.pdf").is_some() && journal_len(data.path()) == 0
    });
    assert!(s3.get("blocked.pdf").unwrap() == bytes);
    assert_eq!(tg.calls("getFile").len(), 1, "stored once");
    assert!(tg.texts_to(52).is_empty(), "nothing could be sent");
}

#[test]
fn a_confirmation_telegram_keeps_refusing_never_repeats_the_upload() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__SEND_RETRY_FOR_SECS", "2")],
    )));
    let bytes = random_bytes(60_000, 10);
    tg.add_file("conf", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    // The greeting and the acknowledgement go out; the confirmation meets Telegram failing
    // for longer than the send budget.
    tg.inject_text_faults(
        "[document has been saved]",
        std::iter::repeat_n(Fault::Status(502, "Bad Gateway"), 200),
    );
    tg.push(document(
        &tg,
        53,
        "conf",
        Some("confirm.pdf"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "stored and finished", || {
        s3.get("confirm.pdf").is_some() && journal_len(data.path()) == 0
    });
    assert_eq!(tg.calls("getFile").len(), 1, "downloaded once");
    assert_eq!(tg.calls("download").len(), 1, "downloaded once");
    let acks = tg.texts_to(53);
    assert_eq!(
        acks.iter().filter(|t| t.contains("[document]")).count(),
        1,
        "{acks:?}"
    );
}

#[test]
fn s3_refusing_the_credentials_pauses_the_upload_and_keeps_the_document() {
    let (tg, s3, data) = fakes();
    if s3.skips_unless_in_process("refusals are injected into the in-process S3 server only") {
        return;
    }
    let _service = TestService::start(settings_from(vars(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__S3__RETRY_FOR_SECS", "1")],
    )));
    let bytes = random_bytes(80_000, 11);
    tg.add_file("deny", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    // Process-wide failpoint, scoped to this test's bucket.
    fail::cfg("embedded_s3.deny", &format!("return({})", s3.bucket)).unwrap();
    tg.push(document(
        &tg,
        54,
        "deny",
        Some("denied.pdf"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "three refused attempts, shown to the user", || {
        tg.sent_to(54, "editMessageText")
            .iter()
            .any(|t| t.contains("attempt 3 failed") && t.contains("HTTP 403"))
    });
    // Far past the 1 s budget for S3 failures: the document is still waiting, not given up.
    assert!(
        !tg.texts_to(54)
            .iter()
            .any(|t| t.contains("could not be saved")),
        "{:?}",
        tg.texts_to(54)
    );
    fail::remove("embedded_s3.deny");
    wait_until(WAIT, "saved once the credentials work", || {
        saved(&tg, 54) == 1
    });
    assert!(s3.get("denied.pdf").unwrap() == bytes);
}

#[test]
fn no_more_documents_are_stored_at_once_than_the_cap() {
    let (tg, s3, data) = fakes();
    let _service = TestService::start(settings_from(vars(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__S3__MAX_CONCURRENT_UPLOADS", "1")],
    )));
    tg.add_file("one", FileBody::Pattern(6 * MIB));
    tg.add_file("two", FileBody::Pattern(6 * MIB));
    tg.set_file_pace(Some(Duration::from_millis(80)));
    tg.push(document(&tg, 55, "one", Some("one.bin"), 6 * MIB));
    tg.push(document(&tg, 56, "two", Some("two.bin"), 6 * MIB));
    let acknowledged = |chat: i64| {
        tg.texts_to(chat)
            .iter()
            .any(|t| t.starts_with("[document] "))
    };
    wait_until(WAIT, "both acknowledged", || {
        acknowledged(55) && acknowledged(56)
    });
    wait_until(WAIT, "one download under way", || {
        tg.calls("download").len() == 1
    });
    assert_eq!(
        saved(&tg, 55) + saved(&tg, 56),
        0,
        "the first is still on its way"
    );
    // Paced to the end (about 2 s each): the fake counts the downloads streaming at once.
    wait_until(WAIT, "both saved", || saved(&tg, 55) + saved(&tg, 56) == 2);
    assert_eq!(tg.calls("download").len(), 2);
    assert_eq!(
        tg.max_concurrent_downloads(),
        1,
        "the second was stored while the first was"
    );
}

#[test]
fn an_upload_created_whose_answer_was_lost_is_aborted_not_left_open() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    if s3.skips_unless_in_process("the lost answer is injected by the in-process S3 server") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    // The server creates the first multipart upload but its answer says 500.
    fail::cfg(
        "embedded_s3.create_lost",
        &format!("1*return({})", s3.bucket),
    )
    .unwrap();
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&vars(&tg, &s3, data.path(), &[]), &log);
    tg.add_file("lost", FileBody::Pattern(16 * MIB));
    tg.push(document(&tg, 51, "lost", Some("lost.bin"), 16 * MIB));
    wait_until(WAIT, "saved", || saved(&tg, 51) == 1);
    fail::remove("embedded_s3.create_lost");
    assert_eq!(s3.get("lost.bin").unwrap().len() as u64, 16 * MIB);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("attempt 1 failed"),
        "the lost answer was hit: {text}"
    );
    assert_eq!(
        s3.open_uploads(),
        0,
        "the upload the server created for the failed attempt is aborted: {text}"
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
    assert_eq!(recorded_uploads(data.path()), 0, "none left recorded");
}
