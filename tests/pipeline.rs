//! The actor pipeline under failure: worker panics and restarts, polling errors and flood
//! control, and the start-up checks of the real binary.

mod support;

use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use support::*;
use tg_ingest::actors::uploader::UploadProgress;
use tg_ingest::actors::worker::{HandlerFactory, Outcome, UpdateHandler};
use tg_ingest::app::FactoryHook;
use tg_ingest::domain::inbound::IncomingUpdate;
use tg_ingest::obs::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(20);

/// Wraps the real bot and panics on the text "boom": an injected worker failure.
struct PanicsOnBoom(Rc<dyn UpdateHandler>);

impl UpdateHandler for PanicsOnBoom {
    fn handle(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> LocalBoxFuture<'static, Outcome> {
        let boom = update
            .update
            .message
            .as_ref()
            .and_then(|m| m.text.as_deref())
            == Some("boom");
        let inner = self.0.clone();
        Box::pin(async move {
            if boom {
                panic!("injected failure");
            }
            inner.handle(update, progress).await
        })
    }

    fn on_progress(self: Rc<Self>, p: UploadProgress) -> LocalBoxFuture<'static, ()> {
        self.0.clone().on_progress(p)
    }
}

fn panicking_hook() -> FactoryHook {
    Box::new(|inner: HandlerFactory| -> HandlerFactory {
        Arc::new(move |id| Rc::new(PanicsOnBoom(inner(id))) as Rc<dyn UpdateHandler>)
    })
}

#[test]
fn a_panic_fails_only_its_own_update_and_the_worker_goes_on() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let settings = settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__WORKERS", "2"),
            ("TG_INGEST__MAX_ATTEMPTS", "3"),
        ],
    ));
    let service = TestService::try_start(settings, Some(panicking_hook())).unwrap();
    // Users 30 and 32 share a worker; 31 is on the other one. User 32's document is still
    // downloading (6.4 s at this pace) while "boom" panics on all three of its attempts.
    tg.add_file("slow", FileBody::Pattern(16 << 20));
    tg.set_file_pace(Some(Duration::from_millis(100)));
    tg.push(document(&tg, 32, "slow", Some("slow.bin"), 16 << 20));
    wait_until(WAIT, "the download under way", || {
        tg.texts_to(32).iter().any(|t| t.contains("[document]"))
    });
    tg.push(text(&tg, 30, "boom"));
    tg.push(text(&tg, 30, "hello"));
    tg.push(text(&tg, 31, "hi"));
    wait_until(WAIT, "boom moved aside", || {
        Metrics::get(&service.metrics.updates_poisoned) == 1
    });
    assert!(
        !tg.texts_to(32)
            .iter()
            .any(|t| t.contains("[document has been saved]")),
        "the panics came while the document was still on its way"
    );
    wait_until(WAIT, "replies and the document saved", || {
        tg.texts_to(30).len() == 1
            && tg.texts_to(31).len() == 1
            && tg
                .texts_to(32)
                .iter()
                .any(|t| t.contains("[document has been saved]"))
    });
    assert!(tg.texts_to(30)[0].contains("[greeting]"));
    // "boom" panicked on each of its three attempts, then was moved aside; it did not block
    // the message after it in its chat, and the worker was never restarted: the document of
    // the other chat on it was fetched once and acknowledged once.
    assert_eq!(Metrics::get(&service.metrics.worker_panics), 3);
    assert_eq!(Metrics::get(&service.metrics.worker_restarts), 0);
    assert_eq!(
        tg.calls("getFile").len(),
        1,
        "the document was fetched once"
    );
    let acks = tg.texts_to(32);
    assert_eq!(
        acks.iter().filter(|t| t.contains("[document]")).count(),
        1,
        "{acks:?}"
    );
    assert_eq!(s3.keys().len(), 1);
    tg.set_file_pace(None);
    tg.push(text(&tg, 30, "again"));
    wait_until(WAIT, "the worker keeps serving the chat", || {
        tg.texts_to(30).len() == 2
    });
    assert!(tg.texts_to(30)[1].contains("[document is required]"));
}

#[test]
fn retry_after_on_get_updates_is_honoured() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    tg.inject([Fault::RetryAfter(2)]);
    let _service = TestService::start(settings_from(service_env(&tg, &s3, data.path(), &[])));
    tg.push(text(&tg, 40, "hi"));
    wait_until(WAIT, "greeting", || tg.texts_to(40).len() == 1);
    let polls = tg.calls("getUpdates");
    let gap = polls[1].at - polls[0].at;
    assert!(
        gap >= Duration::from_millis(1950),
        "second poll after {gap:?}"
    );
    assert!(gap < Duration::from_secs(4), "second poll after {gap:?}");
}

#[test]
fn errors_and_instant_empty_answers_back_off_and_polls_never_overlap() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    tg.inject([
        Fault::Status(500, "Internal Server Error"),
        Fault::Garbage,
        Fault::Status(409, "Conflict: terminated by other getUpdates request"),
        Fault::EmptyAtOnce,
        Fault::EmptyAtOnce,
    ]);
    let started = Instant::now();
    let _service = TestService::start(settings_from(service_env(&tg, &s3, data.path(), &[])));
    for user in 50..60 {
        tg.push(text(&tg, user, "hi"));
    }
    wait_until(WAIT, "all greeted", || {
        (50..60).all(|u| tg.texts_to(u).len() == 1)
    });
    let polls = tg.calls("getUpdates");
    // Five failing answers, each followed by a growing pause rather than an immediate retry.
    let gaps: Vec<Duration> = polls
        .windows(2)
        .take(5)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(100)),
        "{gaps:?}"
    );
    assert!(gaps[3] > gaps[0], "backoff grows: {gaps:?}");
    assert!(
        polls.len() < 40,
        "{} polls in {:?}",
        polls.len(),
        started.elapsed()
    );
    assert_eq!(tg.max_concurrent_polls(), 1);
    // The webhook is deleted once at start, before polling.
    let webhook = tg.calls("deleteWebhook");
    assert_eq!(webhook.len(), 1);
    assert!(webhook[0].at < polls[0].at);
    // Offsets only move forward.
    let offsets: Vec<i64> = polls
        .iter()
        .map(|c| c.params["offset"].as_i64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert_eq!(polls[0].params["timeout"], 1);
    assert!(polls[0].params["allowed_updates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == "message"));
}

#[test]
fn many_updates_from_many_chats_are_each_answered_once_and_confirmed() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__WORKERS", "4")],
    )));
    let mut bodies = Vec::new();
    for round in 0..5 {
        for user in 100..140 {
            bodies.push(text(&tg, user, &format!("message {round}")));
        }
    }
    tg.push_many(bodies);
    wait_until(WAIT, "200 replies", || tg.sent_count() == 200);
    for user in 100..140 {
        let r = tg.texts_to(user);
        assert_eq!(r.len(), 5);
        assert!(r[0].contains("[greeting]"));
        assert!(r[1..].iter().all(|t| t.contains("[document is required]")));
    }
    wait_until(WAIT, "all confirmed", || tg.pending_updates() == 0);
    assert_count(&service.metrics.updates_handled, 200, "200 counted handled");
    assert_eq!(tg.max_concurrent_polls(), 1);
}

/// Runs the binary with the given variables; returns its exit code and standard error.
fn run_binary(vars: Vec<(String, String)>) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(binary())
        .env_clear()
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // A binary that hangs is killed at the deadline and fails the test instead of hanging it.
    let code = wait_exit(&mut child, Duration::from_secs(30));
    (code, std::fs::read_to_string(&stderr).unwrap_or_default())
}

#[test]
fn an_invalid_token_ends_start_up_with_a_clear_error() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let mut vars = service_env(&tg, &s3, data.path(), &[]);
    vars.push((
        "TG_INGEST__TELEGRAM__TOKEN".into(),
        "999:WRONG-token".into(),
    ));
    let (code, stderr) = run_binary(vars);
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("Telegram rejected the bot token"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("WRONG-token"),
        "the token leaked: {stderr}"
    );
    assert!(tg.calls("getUpdates").is_empty());
}

#[test]
fn a_missing_bucket_ends_start_up_with_a_clear_error() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let mut vars = service_env(&tg, &s3, data.path(), &[]);
    vars.push(("TG_INGEST__S3__BUCKET".into(), "no-such-bucket-here".into()));
    let (code, stderr) = run_binary(vars);
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("`no-such-bucket-here` does not exist"),
        "{stderr}"
    );
    assert!(errors[0].contains(&s3.endpoint), "{stderr}");
    assert!(
        tg.calls("getMe").is_empty(),
        "no Telegram call before storage is checked"
    );
}

/// The service's settings with the Bot API at a port nobody listens on; also answers the port.
fn telegram_unreachable(
    tg: &FakeTelegram,
    s3: &TestS3,
    data: &std::path::Path,
    extra: &[(&str, &str)],
) -> (Vec<(String, String)>, std::net::SocketAddr) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut vars = service_env(tg, s3, data, extra);
    vars.push((
        "TG_INGEST__TELEGRAM__API_URL".into(),
        format!("http://{closed}"),
    ));
    (vars, closed)
}

#[test]
fn unreachable_services_end_start_up_after_a_bounded_retry() {
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let tg = FakeTelegram::start(TOKEN);
    let (vars, closed) = telegram_unreachable(&tg, &s3, data.path(), &[]);
    let started = Instant::now();
    let (code, stderr) = run_binary(vars);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Telegram Bot API at http://{closed} is not usable"
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    let mut vars = service_env(&tg, &s3, data.path(), &[]);
    vars.push(("TG_INGEST__S3__ENDPOINT".into(), format!("http://{closed}")));
    let (code, stderr) = run_binary(vars);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("S3 endpoint http://{closed} is unreachable")),
        "{stderr}"
    );
}

#[test]
fn sigterm_during_start_up_ends_it_at_once_with_exit_0() {
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let tg = FakeTelegram::start(TOKEN);
    // Telegram unreachable and retried for minutes: start-up is still going on when the stop
    // comes.
    let (vars, _) = telegram_unreachable(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__STARTUP_ATTEMPTS", "100")],
    );
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&vars, &log);
    wait_until(WAIT, "start-up retrying getMe", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("retrying"))
    });
    let asked = Instant::now();
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("shutdown requested during the start-up checks"),
        "{text}"
    );
}

#[test]
fn sigterm_while_the_actors_start_waits_for_them_and_stops_gracefully() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let mut vars = service_env(&tg, &s3, data.path(), &[]);
    // The checks pass; the launch is held for 2 s after every actor was started.
    vars.push(("FAILPOINTS".into(), "service.launch=return(2000)".into()));
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&vars, &log);
    wait_until(WAIT, "the actors started", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("tg-ingest started"))
    });
    sigterm(&child);
    let sent = Instant::now();
    let before = std::fs::read_to_string(&log).unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    let waited = sent.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    // The signal landed inside the held launch: the hold had not ended when it was sent, and
    // the stop began only once it did.
    assert!(!before.contains("launch held"), "{before}");
    let held = text
        .find("launch held 2000 ms")
        .expect("the launch was held");
    let requested = text.find("shutdown requested").expect("a graceful stop");
    assert!(held < requested, "{text}");
    assert!(
        waited >= Duration::from_millis(1000),
        "exited {waited:?} after the signal: the launch was not waited for"
    );
    // Not given up half-started: the stop came through the graceful path.
    assert!(!text.contains("during the start-up checks"), "{text}");
    assert!(text.contains("tg-ingest stopped"), "{text}");
}

#[test]
fn invalid_settings_name_the_key_and_exit_2() {
    let (code, stderr) = run_binary(vec![
        ("TG_INGEST__TELEGRAM__TOKEN".into(), TOKEN.into()),
        ("TG_INGEST__WORKERS".into(), "0".into()),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid setting `workers`"), "{stderr}");
}

#[test]
fn with_only_a_token_the_service_runs_on_embedded_storage() {
    let tg = FakeTelegram::start(TOKEN);
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary())
        .env_clear()
        .env("TG_INGEST__TELEGRAM__TOKEN", TOKEN)
        .env("TG_INGEST__TELEGRAM__API_URL", &tg.url)
        .env("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "1")
        .env("TG_INGEST__DATA_DIR", data.path())
        .env(
            "TG_INGEST__S3__EMBEDDED__LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.path().join("service.log")).unwrap())
        .spawn()
        .unwrap();
    let bytes = random_bytes(50_000, 7);
    tg.add_file("e1", FileBody::Bytes(Arc::new(bytes.clone())));
    tg.push(document(
        &tg,
        60,
        "e1",
        Some("embedded.txt"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "saved", || {
        tg.texts_to(60)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    // The secret was generated into the data directory on this first start; the log says
    // where it is and never what it is.
    let secret = std::fs::read_to_string(data.path().join("s3-secret")).unwrap();
    assert!(secret.len() >= 32, "{secret:?}");
    let log = std::fs::read_to_string(data.path().join("service.log")).unwrap();
    let secret_file = data.path().join("s3-secret");
    assert!(
        log.contains(&format!("secret key in {}", secret_file.display())),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret is in the log: {log}");
    // The object is reachable with any S3 client using the access key and that secret.
    let target = tg_ingest::clients::s3::S3Target {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "eu-central-1".into(),
        bucket: "tg-ingest".into(),
        access_key: tg_ingest::Secret::new("tg-ingest"),
        secret_key: tg_ingest::Secret::new(secret),
        path_style: true,
        request_timeout: Duration::from_secs(10),
    };
    let got = block_on(async {
        target
            .bucket()
            .unwrap()
            .get_object("embedded.txt")
            .await
            .unwrap()
    });
    assert_eq!(got.bytes().as_ref(), bytes.as_slice());
    // A long name is cut to what the embedded server can hold, and still stored.
    let long = format!("{}.txt", "a".repeat(300));
    let limit = tg_ingest::app::embedded_key_limit("tg-ingest");
    assert_eq!(limit, 126);
    let cut = format!("{}.txt", "a".repeat(limit - 4));
    tg.add_file("e2", FileBody::Bytes(Arc::new(bytes.clone())));
    tg.push(document(&tg, 60, "e2", Some(&long), bytes.len() as u64));
    wait_until(WAIT, "long name saved", || {
        tg.texts_to(60)
            .iter()
            .filter(|t| t.contains("[document has been saved]"))
            .count()
            == 2
    });
    let got = block_on(async { target.bucket().unwrap().get_object(&cut).await.unwrap() });
    assert_eq!(got.status_code(), 200);
    assert_eq!(got.bytes().as_ref(), bytes.as_slice());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_full_worker_makes_the_poller_wait_and_the_backlog_stays_out_of_memory() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__WORKERS", "1"),
            ("TG_INGEST__WORKER_QUEUE_LIMIT", "5"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ],
    )));
    tg.push(text(&tg, 80, "hi"));
    wait_until(WAIT, "greeting", || tg.texts_to(80).len() == 1);
    // A document that takes about 3 s holds its chat; 50 messages queue up behind it.
    tg.add_file("slow", FileBody::Pattern(8 << 20));
    tg.set_file_pace(Some(Duration::from_millis(100)));
    tg.push(document(&tg, 80, "slow", Some("slow.bin"), 8 << 20));
    wait_until(WAIT, "the download under way", || {
        tg.texts_to(80).len() == 2
    });
    let polls = tg.calls("getUpdates").len();
    tg.push_many(
        (0..50)
            .map(|i| text(&tg, 80, &format!("waiting {i}")))
            .collect(),
    );
    wait_until(WAIT, "the worker full", || {
        Metrics::get(&service.metrics.updates_dispatched) >= 2 + 5
    });
    // The worker holds 5 waiting updates (plus the one it is offered); the poller waits for it
    // instead of fetching on, so the rest stay with Telegram and in the journal.
    assert!(
        !tg.texts_to(80)
            .iter()
            .any(|t| t.contains("[document has been saved]")),
        "still downloading"
    );
    assert!(Metrics::get(&service.metrics.updates_dispatched) <= 2 + 5 + 1);
    assert!(
        tg.calls("getUpdates").len() <= polls + 1,
        "no poll while the worker is full"
    );
    tg.set_file_pace(None);
    wait_until(Duration::from_secs(60), "everything answered", || {
        tg.texts_to(80).len() == 3 + 50
    });
    wait_until(WAIT, "every update finished", || {
        journal_len(data.path()) == 0
    });
}
