//! `/healthz` and `/readyz`: readiness follows the store, the bucket and the intake.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn readiness_goes_503_while_s3_is_down_and_200_after() {
    let tg = FakeTelegram::start(TOKEN);
    let mut s3 = TestS3::start();
    if s3.skips_unless_in_process("the test stops the S3 server") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let env = service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__HTTP__LISTEN", "127.0.0.1:0")],
    );
    let service = TestService::start(settings_from(env));
    let addr = service.http_addr.expect("the HTTP endpoints listen");
    assert_eq!(http_get(addr, "/healthz").0, 200);
    wait_until(WAIT, "ready", || http_get(addr, "/readyz").0 == 200);
    assert!(http_get(addr, "/readyz").1.contains("\"ready\":true"));
    s3.stop();
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"ready\":false") && body.contains("bucket:"),
        "{body}"
    );
    assert_eq!(http_get(addr, "/healthz").0, 200, "alive while not ready");
    s3.restart();
    wait_until(WAIT, "ready again", || http_get(addr, "/readyz").0 == 200);
}

/// A service with an HTTP endpoint, its getUpdates failing `faults` times.
fn service_with_failing_polls(
    tg: &FakeTelegram,
    s3: &TestS3,
    data: &std::path::Path,
    faults: usize,
) -> TestService {
    tg.inject(std::iter::repeat_n(
        Fault::Status(500, "Internal Server Error"),
        faults,
    ));
    let env = service_env(tg, s3, data, &[("TG_INGEST__HTTP__LISTEN", "127.0.0.1:0")]);
    TestService::start(settings_from(env))
}

#[test]
fn an_intake_that_never_polled_is_not_ready() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    // Every getUpdates fails: the intake never succeeds.
    let service = service_with_failing_polls(&tg, &s3, data.path(), 1000);
    let addr = service.http_addr.unwrap();
    // Asked only once the intake had its chances: three polls, all failed.
    wait_until(WAIT, "three failed getUpdates", || {
        tg.calls("getUpdates").len() >= 3
    });
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("no successful Telegram getUpdates yet"),
        "{body}"
    );
}

#[test]
fn the_same_intake_without_faults_becomes_ready() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = service_with_failing_polls(&tg, &s3, data.path(), 0);
    let addr = service.http_addr.unwrap();
    wait_until(WAIT, "ready without faults", || {
        http_get(addr, "/readyz").0 == 200
    });
    assert!(!tg.calls("getUpdates").is_empty());
}
