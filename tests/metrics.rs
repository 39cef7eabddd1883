//! `/metrics`: the exposition parses as Prometheus text (and as strict OpenMetrics when
//! Python's `prometheus_client` is installed, as in CI), names start with `tg_ingest_`, no label
//! names a chat or a person, and the counters move as updates are handled.

mod support;

use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use support::fake_airtable::{AirtableFault, FakeAirtable};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn scrape(addr: std::net::SocketAddr) -> (String, Scrape) {
    let (status, text) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("Prometheus text");
    (text, parsed)
}

/// The value of the sample `name` with exactly the labels `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

/// Checks the text with the strict OpenMetrics parser of Python's `prometheus_client`, when it is
/// installed (CI installs it; elsewhere the check is skipped unless `CI` is set).
fn strict_check(text: &str) {
    use std::io::Write;
    let probe = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install prometheus_client (pip) for the strict OpenMetrics check"
        );
        eprintln!("prometheus_client is not installed: strict OpenMetrics check skipped");
        return;
    }
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nprint(len(list(p(sys.stdin.read()))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "strict OpenMetrics parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(families >= 20, "{families} families");
}

#[test]
fn metrics_parse_and_move_as_updates_are_handled() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let at = FakeAirtable::start();
    let data = tempfile::tempdir().unwrap();
    let mut env = service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__HTTP__LISTEN", "127.0.0.1:0"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ],
    );
    env.extend(at.env());
    let settings = settings_from(env);
    let service = TestService::start(settings.clone());
    let addr = service.http_addr.unwrap();

    for user in [11, 12, 13] {
        tg.push(text(&tg, user, "hello"));
        tg.push(text(&tg, user, "again"));
    }
    wait_until(WAIT, "six replies", || {
        [11, 12, 13]
            .iter()
            .map(|u| tg.texts_to(*u).len())
            .sum::<usize>()
            == 6
    });
    let message = [("source", "telegram_polling"), ("kind", "message")];
    let handled_ok = [("kind", "message"), ("outcome", "ok")];
    wait_until(WAIT, "six handled", || {
        value(
            &scrape(addr).1,
            "tg_ingest_updates_handled_total",
            &handled_ok,
        ) == Some(6.0)
    });
    let (exposition, first) = scrape(addr);
    strict_check(&exposition);
    assert!(exposition.ends_with("# EOF\n"));
    for sample in &first.samples {
        assert!(sample.metric.starts_with("tg_ingest_"), "{}", sample.metric);
        for key in sample.labels.keys() {
            assert!(
                !["chat", "chat_id", "user", "user_id", "username"].contains(&key.as_str()),
                "{} has the label {key}",
                sample.metric
            );
        }
    }
    assert_eq!(
        value(&first, "tg_ingest_updates_received_total", &message),
        Some(6.0)
    );
    assert_eq!(
        value(
            &first,
            "tg_ingest_update_handling_seconds_count",
            &[("kind", "message")]
        ),
        Some(6.0)
    );
    assert_eq!(value(&first, "tg_ingest_journal_updates", &[]), Some(0.0));
    assert_eq!(value(&first, "tg_ingest_poison_updates", &[]), Some(0.0));
    // The poller's successes reach the store, for `tg-ingest status`.
    let status = tg_ingest::store::Store::open(&data.path().join("state.db"))
        .unwrap()
        .status()
        .unwrap();
    assert_eq!(status.intakes.len(), 1, "{:?}", status.intakes);
    assert_eq!(status.intakes[0].0, "telegram_polling");
    assert_eq!(
        value(&first, "tg_ingest_uploads_total", &[("outcome", "ok")]),
        Some(0.0)
    );

    // A document: uploads, bytes and the duration histogram move.
    let bytes = random_bytes(200_000, 3);
    tg.add_file("m-doc", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    tg.push(document(
        &tg,
        11,
        "m-doc",
        Some("m.bin"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "stored", || s3.get("m.bin").is_some());
    wait_until(WAIT, "upload counted", || {
        value(
            &scrape(addr).1,
            "tg_ingest_uploads_total",
            &[("outcome", "ok")],
        ) == Some(1.0)
    });
    let (_, second) = scrape(addr);
    assert_eq!(
        value(&second, "tg_ingest_uploaded_bytes_total", &[]),
        Some(200_000.0)
    );
    assert_eq!(
        value(&second, "tg_ingest_upload_duration_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&second, "tg_ingest_updates_received_total", &message),
        Some(7.0)
    );

    // Flood control on a send: a 429 and a retry counted for sendMessage.
    tg.inject_send([Fault::RetryAfter(1)]);
    tg.push(text(&tg, 14, "hi"));
    wait_until(WAIT, "reply after the 429", || tg.texts_to(14).len() == 1);
    let (_, third) = scrape(addr);
    let send = [("api", "telegram"), ("method", "sendMessage")];
    assert_eq!(
        value(&third, "tg_ingest_api_rate_limited_total", &send),
        Some(1.0)
    );
    assert_eq!(
        value(&third, "tg_ingest_api_retries_total", &send),
        Some(1.0)
    );

    // Airtable requests by status: a 503, then the row written with 200.
    at.inject([AirtableFault::Status(503)]);
    let msg = actix_rt::System::new()
        .block_on(tg_ingest::app::post_button(&settings, -1001, None, None))
        .unwrap();
    let data_ = tg.button_data(-1001, msg).unwrap();
    tg.push(press(-1001, msg, 501, Some("anna"), &data_));
    wait_until(WAIT, "row written", || at.rows().len() == 1);
    // A row is counted by status when Airtable answers, and leaves the outbox a moment later.
    wait_until(
        WAIT,
        "both requests counted, the row out of the outbox",
        || {
            let s = scrape(addr).1;
            value(&s, "tg_ingest_outbox_pending", &[("outbox", "airtable")]) == Some(0.0)
                && value(
                    &s,
                    "tg_ingest_airtable_requests_total",
                    &[("status", "503")],
                ) == Some(1.0)
                && value(
                    &s,
                    "tg_ingest_airtable_requests_total",
                    &[("status", "200")],
                ) == Some(1.0)
        },
    );
    let (_, fourth) = scrape(addr);
    assert_eq!(
        value(
            &fourth,
            "tg_ingest_updates_handled_total",
            &[("kind", "callback_query"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &fourth,
            "tg_ingest_outbox_pending",
            &[("outbox", "airtable")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &fourth,
            "tg_ingest_outbox_dead_letters",
            &[("outbox", "airtable")]
        ),
        Some(0.0)
    );
}
