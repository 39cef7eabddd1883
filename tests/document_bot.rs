//! Capability A end to end: the real actors against the fake Telegram and a real S3 server.

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
    service: TestService,
    _data: tempfile::TempDir,
}

fn harness(extra: &[(&str, &str)]) -> Harness {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(service_env(&tg, &s3, data.path(), extra)));
    Harness {
        tg,
        s3,
        service,
        _data: data,
    }
}

#[test]
fn first_message_is_greeted_then_a_document_is_required() {
    let h = harness(&[]);
    h.tg.push(text(&h.tg, 11, "hello"));
    wait_until(WAIT, "greeting", || h.tg.texts_to(11).len() == 1);
    h.tg.push(text(&h.tg, 11, "what now?"));
    h.tg.push(text(&h.tg, 11, "and now?"));
    wait_until(WAIT, "two more replies", || h.tg.texts_to(11).len() == 3);
    assert_eq!(
        h.tg.texts_to(11),
        [
            texts::GREETING,
            texts::DOCUMENT_REQUIRED,
            texts::DOCUMENT_REQUIRED
        ]
    );
    assert!(h.tg.texts_to(11)[0].contains("[greeting]"));
    assert!(h.tg.texts_to(11)[1].contains("[document is required]"));
    assert!(h.s3.keys().is_empty());
}

#[test]
fn a_photo_is_not_a_document() {
    let h = harness(&[]);
    h.tg.push(text(&h.tg, 12, "hi"));
    h.tg.push(photo(&h.tg, 12));
    wait_until(WAIT, "two replies", || h.tg.texts_to(12).len() == 2);
    let replies = h.tg.texts_to(12);
    assert!(replies[1].contains("[document is required]"), "{replies:?}");
    assert!(h.tg.calls("getFile").is_empty());
    assert!(h.s3.keys().is_empty());
}

#[test]
fn a_document_with_a_cyrillic_name_is_saved_at_the_bucket_root() {
    let h = harness(&[]);
    let bytes = random_bytes(300_000, 1);
    h.tg.add_file("doc-1", FileBody::Bytes(Arc::new(bytes.clone())));
    h.tg.push(text(&h.tg, 13, "hi"));
    h.tg.push(document(
        &h.tg,
        13,
        "doc-1",
        Some("Памятка наставника_KTS.pdf"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "saved reply", || h.tg.texts_to(13).len() == 3);
    let replies = h.tg.texts_to(13);
    assert!(replies[0].contains("[greeting]"));
    assert!(
        replies[1].contains("[document]") && !replies[1].contains("saved"),
        "{replies:?}"
    );
    assert!(
        replies[2].contains("[document has been saved]"),
        "{replies:?}"
    );
    assert_eq!(h.s3.keys(), ["Памятка наставника_KTS.pdf"]);
    assert_eq!(h.s3.get("Памятка наставника_KTS.pdf").unwrap(), bytes);
}

#[test]
fn a_document_as_the_first_message_is_greeted_and_saved() {
    let h = harness(&[]);
    let bytes = random_bytes(1000, 9);
    h.tg.add_file("first", FileBody::Bytes(Arc::new(bytes.clone())));
    h.tg.push(document(&h.tg, 19, "first", None, bytes.len() as u64));
    wait_until(WAIT, "three replies", || h.tg.texts_to(19).len() == 3);
    let replies = h.tg.texts_to(19);
    assert!(replies[0].contains("[greeting]"));
    assert!(replies[2].contains("[document has been saved]"));
    assert_eq!(h.s3.get("document_uniqfirst.pdf").unwrap(), bytes);
}

#[test]
fn two_users_are_served_in_parallel_and_each_in_order() {
    let h = harness(&[("TG_INGEST__WORKERS", "2")]);
    // Downloads of about a second each (8 chunks, 100 ms apart): one after the other they
    // could not overlap.
    let (len_a, len_b) = (2_000_000u64, 1_500_000u64);
    h.tg.add_file("a", FileBody::Pattern(len_a));
    h.tg.add_file("b", FileBody::Pattern(len_b));
    h.tg.set_file_pace(Some(Duration::from_millis(100)));
    // Users 20 and 21 land on different workers of two.
    for user in [20, 21] {
        h.tg.push(text(&h.tg, user, "hi"));
    }
    h.tg.push(document(&h.tg, 20, "a", Some("a report.pdf"), len_a));
    h.tg.push(document(&h.tg, 21, "b", Some("b report.pdf"), len_b));
    for user in [20, 21] {
        h.tg.push(text(&h.tg, user, "thanks"));
    }
    wait_until(WAIT, "four replies each", || {
        h.tg.texts_to(20).len() == 4 && h.tg.texts_to(21).len() == 4
    });
    for user in [20, 21] {
        let r = h.tg.texts_to(user);
        assert!(r[0].contains("[greeting]"), "{r:?}");
        assert!(r[1].contains("[document]"), "{r:?}");
        assert!(r[2].contains("[document has been saved]"), "{r:?}");
        assert!(r[3].contains("[document is required]"), "{r:?}");
    }
    // In parallel: each download started before the other document was saved.
    let fetched = |file: &str| {
        h.tg.calls("download")
            .iter()
            .find(|c| c.params["file_id"] == file)
            .map(|c| c.at)
            .unwrap()
    };
    let saved = |chat: i64| {
        h.tg.calls("sendMessage")
            .iter()
            .find(|c| {
                c.params["chat_id"] == chat
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("[document has been saved]"))
            })
            .map(|c| c.at)
            .unwrap()
    };
    assert!(
        fetched("a") < saved(21) && fetched("b") < saved(20),
        "the two documents were stored one after the other"
    );
    let pattern = |len: u64| (0..len).map(pattern_byte).collect::<Vec<u8>>();
    assert_eq!(h.s3.get("a report.pdf").unwrap(), pattern(len_a));
    assert_eq!(h.s3.get("b report.pdf").unwrap(), pattern(len_b));
}

#[test]
fn a_local_server_naming_a_file_outside_its_root_gets_nothing_uploaded() {
    let (root, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h = harness(&[
        ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
        (
            "TG_INGEST__TELEGRAM__LOCAL_FILES_ROOT",
            root.path().to_str().unwrap(),
        ),
    ]);
    h.tg.set_local_mode(true);
    let secret = elsewhere.path().join("credentials.env");
    std::fs::write(&secret, b"S3_SECRET=do-not-upload").unwrap();
    let link = root.path().join("innocent.pdf");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    h.tg.add_file("outside", FileBody::Local(secret));
    h.tg.add_file("link", FileBody::Local(link));
    h.tg.push(document(&h.tg, 17, "outside", Some("a.pdf"), 23));
    h.tg.push(document(&h.tg, 17, "link", Some("b.pdf"), 23));
    wait_until(WAIT, "both refused", || {
        h.tg.texts_to(17)
            .iter()
            .filter(|t| t.contains("could not be saved"))
            .count()
            == 2
    });
    assert!(h.s3.keys().is_empty(), "{:?}", h.s3.keys());
    assert_eq!(
        h.tg.calls("getFile").len(),
        2,
        "refused at once, not retried"
    );
}

#[test]
fn a_40_mb_document_streams_through_multipart_with_a_local_bot_api() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(&[
        ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
        ("TG_INGEST__TELEGRAM__PROGRESS_INTERVAL_MS", "1"),
        (
            "TG_INGEST__TELEGRAM__LOCAL_FILES_ROOT",
            dir.path().to_str().unwrap(),
        ),
    ]);
    h.tg.set_local_mode(true);
    let path = dir.path().join("big.bin");
    let bytes = random_bytes(40 * 1024 * 1024, 4);
    std::fs::write(&path, &bytes).unwrap();
    h.tg.add_file("big", FileBody::Local(path));
    h.tg.push(text(&h.tg, 14, "hi"));
    h.tg.push(document(
        &h.tg,
        14,
        "big",
        Some("big.bin"),
        bytes.len() as u64,
    ));
    wait_until(Duration::from_secs(120), "saved reply", || {
        h.tg.texts_to(14)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    assert_eq!(h.s3.get("big.bin").unwrap(), bytes);
    let m = &h.service.metrics;
    assert_eq!(Metrics::get(&m.multipart_uploads), 1);
    assert_eq!(Metrics::get(&m.parts_uploaded), 5, "40 MiB in 8 MiB parts");
    let edits = h.tg.sent_to(14, "editMessageText");
    assert!(!edits.is_empty(), "progress was shown");
    assert!(edits.iter().all(|e| e.contains("[document]")), "{edits:?}");
    assert!(edits.iter().any(|e| e.contains('%')), "{edits:?}");
}

#[test]
fn an_oversized_document_is_refused_before_any_download_in_cloud_mode() {
    let h = harness(&[]);
    h.tg.add_file("huge", FileBody::Pattern(25 * 1024 * 1024));
    h.tg.push(text(&h.tg, 15, "hi"));
    h.tg.push(document(
        &h.tg,
        15,
        "huge",
        Some("huge.zip"),
        25 * 1024 * 1024,
    ));
    wait_until(WAIT, "refusal", || h.tg.texts_to(15).len() == 2);
    let refusal = &h.tg.texts_to(15)[1];
    assert!(
        refusal.contains("not saved") && refusal.contains("20"),
        "{refusal}"
    );
    assert!(h.tg.calls("getFile").is_empty());
    assert!(h.s3.keys().is_empty());
}

#[test]
fn unknown_and_malformed_updates_are_skipped_without_blocking_the_next() {
    let h = harness(&[]);
    h.tg.push(serde_json::json!({"poll": {"id": "1", "question": "?"}}));
    h.tg.push(serde_json::json!({"message": {"message_id": "not a number"}}));
    h.tg.push(serde_json::json!({"edited_message": {"message_id": 5, "chat": {"id": 16, "type": "private"}, "date": 1, "text": "x"}}));
    h.tg.push(text(&h.tg, 16, "hi"));
    wait_until(WAIT, "greeting after odd updates", || {
        h.tg.texts_to(16).len() == 1
    });
    assert!(h.tg.texts_to(16)[0].contains("[greeting]"));
    wait_until(WAIT, "all confirmed", || h.tg.pending_updates() == 0);
    assert_count(
        &h.service.metrics.updates_handled,
        4,
        "four updates counted handled",
    );
}
