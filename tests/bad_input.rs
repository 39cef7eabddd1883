//! A corpus of odd and broken input fed through the fake `getUpdates`: each case has an
//! expected outcome, none crashes the service or loses the updates after it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;
use tg_ingest::obs::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn odd_and_broken_updates_each_get_their_expected_outcome() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__S3__MAX_KEY_BYTES", "120"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ],
    )));
    let mut pushed = 0u64;
    let mut push = |body| {
        tg.push(body);
        pushed += 1;
    };

    // Unknown update kinds and malformed bodies: logged and skipped.
    push(json!({"poll": {"id": "1", "question": "?", "options": []}}));
    push(json!({"my_chat_member": {"chat": {"id": 1, "type": "private"}}}));
    push(
        json!({"message": {"message_id": 1, "chat": {"id": 300, "type": "private"}, "date": 1, "text": 123}}),
    );
    push(json!({"message": {"message_id": 2, "date": 1, "text": "no chat"}}));
    // A private message without `from`: served by its chat id.
    push(
        json!({"message": {"message_id": tg.next_user_message_id(), "chat": {"id": 301, "type": "private"}, "date": 1, "text": "hi"}}),
    );
    // Odd file names and a missing one, all from user 302.
    push(text(&tg, 302, "hi"));
    let names: Vec<(Option<String>, String)> = vec![
        (None, "document_uniqnoname.pdf".into()),
        (Some("../../etc/passwd".into()), "___.._etc_passwd".into()),
        (Some("/abs/name.txt".into()), "_abs_name.txt".into()),
        (Some("nul\0byte.txt".into()), "nul_byte.txt".into()),
        (Some("📄 отчёт.pdf".into()), "📄 отчёт.pdf".into()),
        (
            Some(format!("{}.pdf", "я".repeat(2000))),
            format!("{}.pdf", "я".repeat(58)),
        ),
    ];
    for (i, (name, _)) in names.iter().enumerate() {
        let file_id = if name.is_none() {
            "noname".to_string()
        } else {
            format!("odd{i}")
        };
        tg.add_file(
            &file_id,
            FileBody::Bytes(Arc::new(random_bytes(1000 + i, i as u64))),
        );
        push(document(
            &tg,
            302,
            &file_id,
            name.as_deref(),
            1000 + i as u64,
        ));
    }
    // Empty and huge texts, and a document over the download limit, from user 303.
    push(text(&tg, 303, "hi"));
    push(text(&tg, 303, ""));
    push(text(&tg, 303, &"x".repeat(100_000)));
    push(document(
        &tg,
        303,
        "too-big",
        Some("big.iso"),
        3_000_000_000,
    ));
    // One answer of getUpdates that is not JSON.
    tg.inject([Fault::Garbage]);
    // The update after all of that is still served.
    push(text(&tg, 399, "still there?"));

    wait_until(WAIT, "the last update answered", || {
        tg.texts_to(399).len() == 1
    });
    wait_until(WAIT, "every document answered", || {
        tg.texts_to(302)
            .iter()
            .filter(|t| t.contains("[document has been saved]"))
            .count()
            == names.len()
    });
    wait_until(WAIT, "user 303 answered", || tg.texts_to(303).len() == 4);
    wait_until(WAIT, "all confirmed", || tg.pending_updates() == 0);

    assert!(tg.texts_to(399)[0].contains("[greeting]"));
    assert_eq!(tg.texts_to(301).len(), 1);
    assert!(tg.texts_to(301)[0].contains("[greeting]"));
    assert!(tg.texts_to(300).is_empty(), "malformed message is skipped");
    let mut expected: Vec<String> = names.iter().map(|(_, key)| key.clone()).collect();
    expected.sort();
    assert_eq!(s3.keys(), expected);
    for (i, (_, key)) in names.iter().enumerate() {
        assert_eq!(
            s3.get(key).unwrap(),
            random_bytes(1000 + i, i as u64),
            "{key}"
        );
    }
    let r303 = tg.texts_to(303);
    assert!(r303[1].contains("[document is required]"), "{r303:?}");
    assert!(r303[2].contains("[document is required]"), "{r303:?}");
    assert!(r303[3].contains("not saved"), "{r303:?}");
    assert_count(
        &service.metrics.updates_handled,
        pushed,
        "every update counted handled",
    );
    assert_eq!(Metrics::get(&service.metrics.updates_poisoned), 0);
}

#[test]
fn users_off_the_allowlist_get_a_polite_refusal_and_nothing_is_stored() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let _service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__SECURITY__ALLOWED_USER_IDS", "310,311")],
    )));
    let words = "an-intruders-private-words-4711";
    tg.add_file("x", FileBody::Bytes(Arc::new(vec![1, 2, 3])));
    tg.push(document(&tg, 312, "x", Some("intruder.bin"), 3));
    tg.push(text(&tg, 312, words));
    tg.push(text(&tg, 310, "hi"));
    wait_until(WAIT, "all answered", || {
        tg.texts_to(312).len() == 2 && tg.texts_to(310).len() == 1
    });
    assert!(
        tg.texts_to(312).iter().all(|t| t.contains("private")),
        "{:?}",
        tg.texts_to(312)
    );
    assert!(tg.texts_to(310)[0].contains("[greeting]"));
    assert!(tg.calls("getFile").is_empty());
    assert!(s3.keys().is_empty());
    // Nothing of theirs was ever written to the data directory: not journaled, not even for
    // a moment (a deleted row would linger in the store's files).
    for needle in [words, "intruder.bin"] {
        let found = files_containing(data.path(), needle.as_bytes());
        assert!(found.is_empty(), "{needle:?} was written to {found:?}");
    }
}

#[test]
fn the_max_file_size_setting_refuses_larger_documents() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let _service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__SECURITY__MAX_FILE_BYTES", "1000")],
    )));
    tg.add_file("small", FileBody::Bytes(Arc::new(vec![7; 1000])));
    tg.add_file("large", FileBody::Bytes(Arc::new(vec![7; 1001])));
    tg.push(document(&tg, 320, "large", Some("large.bin"), 1001));
    tg.push(document(&tg, 320, "small", Some("small.bin"), 1000));
    wait_until(WAIT, "answers", || {
        tg.texts_to(320)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    let r = tg.texts_to(320);
    assert!(
        r.iter()
            .any(|t| t.contains("large.bin") && t.contains("not saved")),
        "{r:?}"
    );
    assert_eq!(s3.keys(), ["small.bin"]);
}
