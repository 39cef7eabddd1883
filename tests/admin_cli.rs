//! The admin commands of the binary on a store with poison updates and dead letters: status,
//! list, retry (the retried update is handled at the next start), drop.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;
use tg_ingest::store::Store;

/// Runs `tg-ingest <args>` on the store in `data`; answers (exit code, stdout).
fn admin(data: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(binary())
        .env_clear()
        .env("TG_INGEST__TELEGRAM__TOKEN", TOKEN)
        .env("TG_INGEST__DATA_DIR", data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn poison_and_dead_letters_are_listed_retried_and_dropped() {
    let data = tempfile::tempdir().unwrap();
    let text = r#"{"update_id":50,"message":{"message_id":1,"date":1763800000,"from":{"id":7,"is_bot":false,"first_name":"U"},"chat":{"id":7,"type":"private"},"text":"hello"}}"#;
    {
        let mut s = Store::open(&data.path().join("state.db")).unwrap();
        s.journal_dated(&[
            (50, text, Some(7), Some(1_763_800_000)),
            (51, "{}", None, None),
        ])
        .unwrap();
        s.poison(50, "reply failed: Telegram was down", 5).unwrap();
        s.poison(51, "malformed", 5).unwrap();
        let row = r#"{"fields":{"chat_id":"-5","username":"anna","triggered_at":"2026-11-24T05:00:00.000Z","event_type":"button_press","reporter_name":"qa-team"}}"#;
        s.outbox_put("airtable", "-5:9", row).unwrap();
        let row = s.outbox_pending("airtable", 1).unwrap()[0].id;
        s.outbox_failed(row, "422 INVALID_VALUE_FOR_COLUMN", true)
            .unwrap();
    }
    let (code, status) = admin(data.path(), &["status"]);
    assert_eq!(code, 0, "{status}");
    assert!(status.contains("poison: 2 updates"), "{status}");
    assert!(
        status.contains("outbox airtable: 0 pending, 1 dead letters"),
        "{status}"
    );
    assert!(status.contains("last ETL: never"), "{status}");
    assert!(status.contains("last poll: never"), "{status}");
    Store::open(&data.path().join("state.db"))
        .unwrap()
        .note_intake("telegram_polling")
        .unwrap();
    let (_, status) = admin(data.path(), &["status"]);
    let today = tg_ingest::util::clock::iso8601_millis(tg_ingest::util::clock::now_millis());
    assert!(
        status.contains(&format!("last Telegram getUpdates: {}", &today[..10])),
        "{status}"
    );

    let (_, list) = admin(data.path(), &["poison", "list"]);
    assert!(
        list.contains("50\tattempts=5") && list.contains("Telegram was down"),
        "{list}"
    );
    assert!(!list.contains("hello"), "raw JSON only with --raw");
    let (_, raw) = admin(data.path(), &["poison", "list", "--raw"]);
    assert!(raw.contains("\"text\":\"hello\""), "{raw}");
    // A change names what it applies to.
    let (code, _) = admin(data.path(), &["poison", "retry"]);
    assert_eq!(code, 2);
    let (code, out) = admin(data.path(), &["poison", "retry", "--id", "50"]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "1 updates moved back to the journal; the service handles them at its next start"
        )
    );
    let (_, out) = admin(data.path(), &["poison", "drop", "--all"]);
    assert!(out.starts_with("1 poisoned updates deleted"), "{out}");

    let (_, dead) = admin(data.path(), &["dead-letters", "list"]);
    assert!(
        dead.contains("airtable\t") && dead.contains("key=-5:9"),
        "{dead}"
    );
    let (_, out) = admin(
        data.path(),
        &["dead-letters", "retry", "--kind", "airtable", "--all"],
    );
    assert!(
        out.starts_with("1 dead letters of airtable are pending again"),
        "{out}"
    );
    let (_, status) = admin(data.path(), &["status"]);
    assert!(
        status.contains("poison: 0 updates") && status.contains("journal: 1 unfinished"),
        "{status}"
    );
    assert!(
        status.contains("outbox airtable: 1 pending, 0 dead letters"),
        "{status}"
    );

    // The retried update is handled at the next start, and the retried row is delivered.
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let at = support::fake_airtable::FakeAirtable::start();
    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(at.env());
    let _service = TestService::start(settings_from(env));
    wait_until(
        Duration::from_secs(20),
        "the retried update answered",
        || tg.texts_to(7).iter().any(|t| t.contains("[greeting]")),
    );
    wait_until(Duration::from_secs(20), "the retried row written", || {
        at.rows().len() == 1
    });
    assert_eq!(at.rows()[0].fields["username"], "anna");
}
