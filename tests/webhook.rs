//! Webhook mode against the fake Telegram, which delivers pending updates by POST with the
//! secret header and retries any answer other than 2xx.

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use support::*;
use tg_ingest::app::StartupError;
use tg_ingest::store::Store;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "webhook-secret_0123456789";

/// The settings of webhook mode on `port`.
fn webhook_vars(port: u16) -> Vec<(String, String)> {
    [
        ("TG_INGEST__TELEGRAM__MODE", "webhook".to_string()),
        ("TG_INGEST__HTTP__LISTEN", format!("127.0.0.1:{port}")),
        (
            "TG_INGEST__TELEGRAM__WEBHOOK__URL",
            format!("http://127.0.0.1:{port}/telegram/webhook"),
        ),
        (
            "TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN",
            SECRET.to_string(),
        ),
        (
            "TG_INGEST__TELEGRAM__WEBHOOK__CHECK_INTERVAL_SECS",
            "1".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn env(tg: &FakeTelegram, s3: &TestS3, data: &Path, port: u16) -> Vec<(String, String)> {
    let mut vars = service_env(tg, s3, data, &[]);
    vars.extend(webhook_vars(port));
    vars
}

fn poisoned(data: &Path) -> Vec<(i64, String)> {
    Store::open(&data.join("state.db"))
        .unwrap()
        .poison_items()
        .unwrap()
        .into_iter()
        .map(|p| (p.update_id, p.reason))
        .collect()
}

fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/telegram/webhook")
}

#[test]
fn webhook_updates_are_handled_end_to_end_and_a_repeated_delivery_once() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = TestService::start(settings_from(env(&tg, &s3, data.path(), port)));
    let hook = tg.webhook().expect("setWebhook was called");
    assert_eq!(hook.url, hook_url(port));
    assert_eq!(hook.secret.as_deref(), Some(SECRET));
    assert_eq!(hook.max_connections, 40);
    assert!(hook.allowed_updates.is_some());
    assert_eq!(tg.calls("getWebhookInfo").len(), 1, "confirmed at start");

    tg.push(text(&tg, 501, "hello"));
    wait_until(WAIT, "greeting", || tg.texts_to(501).len() == 1);
    assert!(tg.texts_to(501)[0].contains("[greeting]"));

    // A document, downloaded and stored as in polling mode.
    let bytes = random_bytes(300_000, 7);
    assert_eq!(bytes.len(), 300_000);
    tg.add_file(
        "wh-doc",
        FileBody::Bytes(std::sync::Arc::new(bytes.clone())),
    );
    tg.push(document(
        &tg,
        501,
        "wh-doc",
        Some("report.pdf"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "document stored", || {
        s3.get("report.pdf").is_some_and(|b| b == bytes)
    });
    wait_until(WAIT, "saved reply", || {
        tg.texts_to(501)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });

    // Telegram sends an update again when our 200 does not reach it: handled once.
    tg.redeliver(1);
    let id = tg.push(text(&tg, 502, "once"));
    wait_until(WAIT, "reply", || tg.texts_to(502).len() == 1);
    wait_until(WAIT, "both deliveries answered", || {
        tg.deliveries().iter().filter(|d| d.update_id == id).count() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        tg.texts_to(502).len(),
        1,
        "the repeated delivery is not handled again"
    );
    assert!(
        tg.deliveries().iter().all(|d| d.status == 200),
        "{:?}",
        tg.deliveries()
    );
    assert!(
        tg.calls("getUpdates").is_empty(),
        "no polling in webhook mode"
    );
    wait_until(WAIT, "journal empty", || journal_len(data.path()) == 0);
    let status = Store::open(&data.path().join("state.db"))
        .unwrap()
        .status()
        .unwrap();
    assert_eq!(status.intakes[0].0, "telegram_webhook");

    // Readiness: the webhook check and the deliveries count as a healthy intake.
    let addr = service.http_addr.unwrap();
    wait_until(WAIT, "ready", || http_get(addr, "/readyz").0 == 200);
    let (_, metrics) = http_get(addr, "/metrics");
    assert!(
        metrics.contains(
            "tg_ingest_updates_received_total{source=\"telegram_webhook\",kind=\"message\"} 4"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tg_ingest_webhook_deliveries_total{status=\"200\"} 4"),
        "{metrics}"
    );
}

#[test]
fn a_wrong_or_missing_secret_is_401_and_a_body_that_is_not_an_update_goes_to_the_poison_list() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = TestService::start(settings_from(env(&tg, &s3, data.path(), port)));
    let url = hook_url(port);
    let update = json!({"update_id": 77, "message": {
        "message_id": 1, "date": 1_763_800_000, "text": "hi",
        "from": {"id": 601, "is_bot": false, "first_name": "A"},
        "chat": {"id": 601, "type": "private"}}});
    let body = serde_json::to_vec(&update).unwrap();
    for secret in [Some("wrong-secret"), None, Some(""), Some(&SECRET[1..])] {
        let (status, _) = http_post(&url, secret, &body).unwrap();
        assert_eq!(status, 401, "secret {secret:?}");
    }
    assert_eq!(journal_len(data.path()), 0);
    assert!(poisoned(data.path()).is_empty());
    assert_eq!(
        service.metrics.webhook_unauthorized.load(Ordering::Relaxed),
        4
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(tg.texts_to(601).is_empty(), "nothing handled");

    // Not JSON, and JSON without update_id: kept with the reason, answered 200.
    assert_eq!(http_post(&url, Some(SECRET), b"garbage{").unwrap().0, 200);
    assert_eq!(
        http_post(&url, Some(SECRET), br#"{"message":{}}"#)
            .unwrap()
            .0,
        200
    );
    let kept = poisoned(data.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|(_, r)| r.contains("not JSON")), "{kept:?}");
    assert!(
        kept.iter().any(|(_, r)| r.contains("update_id")),
        "{kept:?}"
    );
    // Too large: kept (cut) with the reason.
    let big = format!(
        "{{\"update_id\": 5, \"pad\": \"{}\"}}",
        "x".repeat(1100 * 1024)
    );
    assert_eq!(
        http_post(&url, Some(SECRET), big.as_bytes()).unwrap().0,
        200
    );
    assert!(poisoned(data.path())
        .iter()
        .any(|(_, r)| r.contains("max_body_kib")));
    // `poison retry` leaves them (there is nothing to handle).
    assert_eq!(
        Store::open(&data.path().join("state.db"))
            .unwrap()
            .poison_retry(None)
            .unwrap(),
        0
    );

    // The right secret: handled.
    assert_eq!(http_post(&url, Some(SECRET), &body).unwrap().0, 200);
    wait_until(WAIT, "greeting", || tg.texts_to(601).len() == 1);
    // The same update again: 200, not handled twice.
    assert_eq!(http_post(&url, Some(SECRET), &body).unwrap().0, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tg.texts_to(601).len(), 1);
}

#[test]
fn a_webhook_telegram_refuses_is_a_start_up_error() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut vars = env(&tg, &s3, data.path(), port);
    vars.push((
        "TG_INGEST__TELEGRAM__WEBHOOK__URL".into(),
        "http://bot.example.com/telegram/webhook".into(),
    ));
    let err = match TestService::try_start(settings_from(vars), None) {
        Err(e) => e,
        Ok(_) => panic!("started with a webhook Telegram refuses"),
    };
    assert!(matches!(err, StartupError::Webhook { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("HTTPS URL must be provided"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // The port is free again: the endpoints were stopped.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port released");
}

#[test]
fn switching_back_to_polling_deletes_the_webhook_and_pending_updates_are_polled() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = TestService::start(settings_from(env(&tg, &s3, data.path(), port)));
    assert!(tg.webhook().is_some());
    drop(service);
    // Sent while nothing listens: Telegram keeps it pending and retries.
    tg.push(text(&tg, 701, "while switching"));
    wait_until(WAIT, "a failed delivery", || {
        tg.deliveries().iter().any(|d| d.status == 0)
    });
    let polling = service_env(&tg, &s3, data.path(), &[]);
    let _service = TestService::start(settings_from(polling));
    assert!(tg.webhook().is_none(), "deleteWebhook at start");
    wait_until(WAIT, "handled by polling", || tg.texts_to(701).len() == 1);
    assert!(!tg.calls("getUpdates").is_empty());
}

#[test]
fn killed_after_the_journal_write_before_the_200_the_update_is_handled_once_after_restart() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let port = free_port();
    let vars = env(&tg, &s3, data.path(), port);
    let mut paused = vars.clone();
    paused.push(("FAILPOINTS".into(), "webhook.journaled=pause".into()));
    paused.push(("RUST_LOG".into(), "info".into()));
    let mut child = spawn_binary(&paused, &log);
    wait_until(WAIT, "webhook set", || tg.webhook().is_some());
    let id = tg.push(text(&tg, 801, "crash me"));
    wait_until(WAIT, "journaled", || journal_len(data.path()) == 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(tg.texts_to(801).is_empty(), "paused before handing it over");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        tg.deliveries()
            .iter()
            .all(|d| d.update_id != id || d.status != 200),
        "never confirmed"
    );
    let mut child = spawn_binary(&vars, &log);
    wait_until(WAIT, "handled after the restart", || {
        tg.texts_to(801).len() == 1
    });
    wait_until(WAIT, "confirmed", || {
        tg.deliveries()
            .iter()
            .any(|d| d.update_id == id && d.status == 200)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        tg.texts_to(801).len(),
        1,
        "handled once: {:?}",
        tg.texts_to(801)
    );
    wait_until(WAIT, "journal empty", || journal_len(data.path()) == 0);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, WAIT), Some(0));
}

#[test]
fn on_sigterm_deliveries_get_503_while_work_drains_then_the_process_exits_0() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let port = free_port();
    let mut vars = env(&tg, &s3, data.path(), port);
    vars.push(("TG_INGEST__SHUTDOWN_DEADLINE_SECS".into(), "30".into()));
    let mut child = spawn_binary(&vars, &log);
    wait_until(WAIT, "webhook set", || tg.webhook().is_some());
    // A document whose download takes a few seconds keeps a worker busy.
    tg.set_file_pace(Some(Duration::from_millis(300)));
    let len = 3 * 1024 * 1024;
    tg.add_file("slow-doc", FileBody::Pattern(len));
    tg.push(document(&tg, 901, "slow-doc", Some("slow.bin"), len));
    wait_until(WAIT, "upload under way", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("upload started"))
    });
    sigterm(&child);
    let url = hook_url(port);
    let body = serde_json::to_vec(&json!({"update_id": 9_999, "message": {
        "message_id": 1, "date": 1_763_800_000, "text": "late",
        "from": {"id": 902, "is_bot": false, "first_name": "B"},
        "chat": {"id": 902, "type": "private"}}}))
    .unwrap();
    wait_until(WAIT, "503 while draining", || {
        matches!(http_post(&url, Some(SECRET), &body), Ok((503, _)))
    });
    assert!(
        s3.get("slow.bin").is_none(),
        "the 503 came while the upload was still draining"
    );
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), Some(0));
    let expected: Vec<u8> = (0..len).map(pattern_byte).collect();
    assert_eq!(
        s3.get("slow.bin"),
        Some(expected),
        "drained before the exit"
    );
}
