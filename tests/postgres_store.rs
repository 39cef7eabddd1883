//! The service on a PostgreSQL store: the same behaviour as on SQLite, its state kept across
//! restarts in the server, and an outage of the server ridden out: readiness fails, nothing is
//! confirmed to Telegram meanwhile, and the work goes on once the server is back.

mod support;

use std::time::Duration;

use support::pg::TestPostgres;
use support::*;

const WAIT: Duration = Duration::from_secs(40);

fn env(
    tg: &FakeTelegram,
    s3: &TestS3,
    pg: &TestPostgres,
    data: &std::path::Path,
) -> Vec<(String, String)> {
    service_env(
        tg,
        s3,
        data,
        &[
            ("TG_INGEST__STORE__URL", pg.url.as_str()),
            ("TG_INGEST__HTTP__LISTEN", "127.0.0.1:0"),
        ],
    )
}

#[test]
fn the_service_runs_on_postgresql_and_keeps_its_state_across_restarts() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(env(&tg, &s3, &pg, data.path())));
    tg.push(text(&tg, 31, "hello"));
    wait_until(WAIT, "greeting", || tg.texts_to(31).len() == 1);
    let bytes = random_bytes(150_000, 4);
    tg.add_file(
        "pg-doc",
        FileBody::Bytes(std::sync::Arc::new(bytes.clone())),
    );
    tg.push(document(
        &tg,
        31,
        "pg-doc",
        Some("pg.bin"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "stored", || {
        s3.get("pg.bin").is_some_and(|b| b == bytes)
    });
    wait_until(WAIT, "saved reply", || {
        tg.texts_to(31)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    drop(service);
    assert!(
        !data.path().join("state.db").exists(),
        "nothing is kept in data_dir"
    );

    // Another process on the same server: the person was greeted, their file is listed.
    let _service = TestService::start(settings_from(env(&tg, &s3, &pg, data.path())));
    tg.push(text(&tg, 31, "again"));
    tg.push(text(&tg, 31, "/files"));
    wait_until(WAIT, "two replies", || tg.texts_to(31).len() >= 5);
    let texts = tg.texts_to(31);
    assert_eq!(
        texts.iter().filter(|t| t.contains("[greeting]")).count(),
        1,
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("[document is required]")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("pg.bin")), "{texts:?}");
}

#[test]
fn a_postgresql_outage_fails_readiness_and_the_work_goes_on_after_it() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let data = tempfile::tempdir().unwrap();
    // The password given as a URL parameter, as libpq allows (the test server trusts anyone, so
    // it is sent but not needed).
    const PASSWORD: &str = "pg-password-in-query-7f3a";
    let url = format!("{}?password={PASSWORD}", pg.url);
    let mut vars = env(&tg, &s3, &pg, data.path());
    for (k, v) in vars.iter_mut() {
        if k == "TG_INGEST__STORE__URL" {
            *v = url.clone();
        }
    }
    let service = TestService::start(settings_from(vars));
    let addr = service.http_addr.unwrap();
    wait_until(WAIT, "ready", || http_get(addr, "/readyz").0 == 200);
    pg.stop();
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store:"), "{body}");
    assert!(
        !body.contains(PASSWORD),
        "/readyz shows the password: {body}"
    );
    assert!(
        !body.contains("postgres://"),
        "/readyz shows the connection string: {body}"
    );
    // Sent while the store is down: fetched, not journaled, so not confirmed; fetched again.
    tg.push(text(&tg, 41, "during the outage"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(tg.texts_to(41).is_empty());
    assert_eq!(tg.pending_updates(), 1, "not confirmed to Telegram");
    pg.restart();
    wait_until(WAIT, "ready again", || http_get(addr, "/readyz").0 == 200);
    wait_until(WAIT, "handled after the outage", || {
        tg.texts_to(41).len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tg.texts_to(41).len(), 1, "once");
}
