//! Nothing lost, nothing twice: the real binary killed with SIGKILL and restarted, stopped with
//! SIGTERM mid-upload, and run through S3 and Telegram outages.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::*;

/// A small deterministic random source for the kill schedule.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn message_id(body: &Value) -> (i64, i64) {
    let m = &body["message"];
    (
        m["chat"]["id"].as_i64().unwrap(),
        m["message_id"].as_i64().unwrap(),
    )
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_stores_each_document_once() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let vars = service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
            ("TG_INGEST__MAX_ATTEMPTS", "20"),
            ("TG_INGEST__S3__PART_SIZE_MIB", "5"),
        ],
    );
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);

    // 200 texts and 20 documents from 5 users, in a shuffled but per-user natural order.
    let users: Vec<i64> = (500..505).collect();
    let mut bodies = Vec::new();
    let mut documents = HashMap::new();
    for (n, user) in users.iter().cycle().take(220).enumerate() {
        if n % 11 == 5 {
            let name = format!("doc-{n}.bin");
            let bytes = random_bytes(100_000 + 300_000 * (n % 4) + (n % 3) * 4_000_000, n as u64);
            tg.add_file(&name, FileBody::Bytes(Arc::new(bytes.clone())));
            bodies.push(document(&tg, *user, &name, Some(&name), bytes.len() as u64));
            documents.insert(name, bytes);
        } else {
            bodies.push(text(&tg, *user, &format!("message {n}")));
        }
    }
    assert_eq!(documents.len(), 20);
    let expected: Vec<(i64, i64)> = bodies.iter().map(message_id).collect();

    let mut child = spawn_binary(&vars, &log);
    let mut polls_before_start = 0;
    let pusher = bodies;
    let started = Instant::now();
    let mut kills = 0;
    let mut pushed = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(400 + rng.below(800));
    while pushed < pusher.len() || kills < 5 {
        if pushed < pusher.len() {
            tg.push(pusher[pushed].clone());
            pushed += 1;
        }
        // A kill lands only once the current start polls: one during start-up would kill
        // nothing in flight.
        let running = tg.calls("getUpdates").len() > polls_before_start;
        if kills < 5 && Instant::now() >= next_kill && running {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            polls_before_start = tg.calls("getUpdates").len();
            child = spawn_binary(&vars, &log);
            next_kill = Instant::now() + Duration::from_millis(300 + rng.below(900));
        }
        std::thread::sleep(Duration::from_millis(15));
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "schedule overran"
        );
    }

    wait_until(Duration::from_secs(180), "every message answered", || {
        expected
            .iter()
            .all(|(chat, id)| tg.replied_to(*chat).contains(id))
    });
    wait_until(Duration::from_secs(60), "every document saved", || {
        s3.keys().len() >= documents.len()
    });
    // The last kill can come after everything was answered: stop the last start once it runs.
    wait_until(Duration::from_secs(30), "the last start polling", || {
        tg.calls("getUpdates").len() > polls_before_start
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));

    let mut names: Vec<String> = documents.keys().cloned().collect();
    names.sort();
    assert_eq!(s3.keys(), names, "exactly the documents, each once");
    for (name, bytes) in &documents {
        assert_eq!(&s3.get(name).unwrap(), bytes, "{name}");
    }
    assert_eq!(journal_len(data.path()), 0, "journal empty at the end");
    assert_eq!(
        s3.open_uploads(),
        0,
        "no multipart upload left open on the server after the kills"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    let replayed: u64 = log_text
        .lines()
        .filter_map(|l| l.split("replayed ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .sum();
    let replies: usize = users.iter().map(|u| tg.texts_to(*u).len()).sum();
    println!(
        "crash test (seed {seed}): {kills} kills survived, {replayed} updates replayed, {} updates, \
         {replies} replies ({} beyond one per update), 0 objects duplicated, 0 lost, in {:.1} s",
        expected.len(),
        // Each text gets one reply (the first a greeting), each document two.
        replies.saturating_sub(expected.len() + documents.len()),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(kills, 5);
    // The kills hit work in flight: later starts found it in the journal and replayed it.
    assert!(
        replayed > 0,
        "no start replayed anything: the kills hit nothing in flight"
    );
}

#[test]
fn sigterm_during_a_multipart_upload_exits_0_after_saving_it() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let vars = service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
            ("TG_INGEST__SHUTDOWN_DEADLINE_SECS", "8"),
            ("TG_INGEST__S3__PARTS_IN_FLIGHT", "1"),
            ("TG_INGEST__S3__PART_SIZE_MIB", "5"),
        ],
    );
    // A paced download (about 2 s for 16 MiB, four parts), so the SIGTERM surely comes
    // mid-upload and the drain, not luck, decides whether the document is saved before the
    // exit.
    let len = 16 * 1024 * 1024;
    tg.add_file("sixteen", FileBody::Pattern(len));
    tg.set_file_pace(Some(Duration::from_millis(30)));
    let mut child = spawn_binary(&vars, &log);
    tg.push(text(&tg, 70, "hi"));
    wait_until(Duration::from_secs(30), "greeting", || {
        tg.texts_to(70).len() == 1
    });
    tg.push(document(&tg, 70, "sixteen", Some("sixteen.bin"), len));
    wait_until(Duration::from_secs(30), "upload started", || {
        tg.texts_to(70).len() == 2
    });
    assert!(
        s3.get("sixteen.bin").is_none(),
        "still on its way at SIGTERM"
    );
    let stop = Instant::now();
    sigterm(&child);
    let code = wait_exit(&mut child, Duration::from_secs(20));
    let took = stop.elapsed();
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(&log).unwrap());
    assert!(
        took < Duration::from_secs(10),
        "exit took {took:?}, deadline 8 s"
    );
    // No restart: the drain finished the upload and its confirmation before the exit.
    let stored = s3.get("sixteen.bin").unwrap_or_else(|| {
        panic!(
            "not saved before the exit: {}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    assert_eq!(stored.len() as u64, len);
    assert!(stored
        .iter()
        .enumerate()
        .all(|(i, b)| *b == support::fake_telegram::pattern_byte(i as u64)));
    assert!(tg
        .texts_to(70)
        .iter()
        .any(|t| t.contains("[document has been saved]")));
    assert_eq!(journal_len(data.path()), 0);
    println!("SIGTERM during a 16 MiB upload: exit 0 after {took:?}, saved before the exit");
}

#[test]
fn an_s3_outage_of_30_s_delays_documents_but_loses_none() {
    let tg = FakeTelegram::start(TOKEN);
    let mut s3 = TestS3::start();
    if s3.skips_unless_in_process("the outage is staged by stopping the in-process server") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let service = TestService::start(settings_from(service_env(&tg, &s3, data.path(), &[])));
    let docs: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            (
                format!("outage-{i}.bin"),
                random_bytes(200_000 + i * 5_000_000, i as u64),
            )
        })
        .collect();
    for (name, bytes) in &docs {
        tg.add_file(name, FileBody::Bytes(Arc::new(bytes.clone())));
    }
    for user in [80, 81] {
        tg.push(text(&tg, user, "hi"));
    }
    wait_until(Duration::from_secs(20), "greetings", || {
        tg.texts_to(80).len() == 1 && tg.texts_to(81).len() == 1
    });
    s3.stop();
    let down = Instant::now();
    for (i, (name, bytes)) in docs.iter().enumerate() {
        tg.push(document(
            &tg,
            80 + (i as i64 % 2),
            name,
            Some(name),
            bytes.len() as u64,
        ));
    }
    std::thread::sleep(Duration::from_secs(30));
    assert!(s3.keys_unavailable());
    s3.restart();
    println!("S3 was down for {:.1} s", down.elapsed().as_secs_f64());
    wait_until(Duration::from_secs(90), "all documents saved", || {
        [80, 81]
            .iter()
            .map(|u| {
                tg.texts_to(*u)
                    .iter()
                    .filter(|t| t.contains("[document has been saved]"))
                    .count()
            })
            .sum::<usize>()
            == docs.len()
    });
    for (name, bytes) in &docs {
        assert_eq!(&s3.get(name).unwrap(), bytes, "{name}");
    }
    assert!(tg
        .texts_to(80)
        .iter()
        .chain(tg.texts_to(81).iter())
        .all(|t| !t.contains("could not be saved")));
    assert_eq!(
        tg_ingest::obs::metrics::Metrics::get(&service.metrics.uploads_completed),
        docs.len() as u64
    );
}

#[test]
fn document_is_acknowledged_at_once_while_s3_is_down_and_only_once() {
    let tg = FakeTelegram::start(TOKEN);
    let mut s3 = TestS3::start();
    if s3.skips_unless_in_process("the outage is staged by stopping the in-process server") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    // S3 is waited for 2 s per attempt, so the documents' handling fails and is retried while
    // it is down: each retry must find the acknowledgement sent before.
    let service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__S3__RETRY_FOR_SECS", "2")],
    )));
    let users = [83, 84, 85];
    let docs: Vec<(i64, String, Vec<u8>)> = users
        .iter()
        .map(|&u| (u, format!("ack-{u}.bin"), random_bytes(150_000, u as u64)))
        .collect();
    for (user, name, bytes) in &docs {
        tg.add_file(name, FileBody::Bytes(Arc::new(bytes.clone())));
        tg.push(text(&tg, *user, "hi"));
    }
    wait_until(Duration::from_secs(20), "greetings", || {
        users.iter().all(|u| tg.texts_to(*u).len() == 1)
    });
    s3.stop();
    let down = Instant::now();
    for (user, name, bytes) in &docs {
        tg.push(document(&tg, *user, name, Some(name), bytes.len() as u64));
    }
    let acknowledged = |u: i64| {
        tg.texts_to(u)
            .iter()
            .filter(|t| t.starts_with("[document] "))
            .count()
    };
    wait_until(
        Duration::from_secs(2),
        "[document] for all three within 2 s",
        || users.iter().all(|u| acknowledged(*u) == 1),
    );
    println!(
        "three [document] replies {:.2} s after the documents, S3 down",
        down.elapsed().as_secs_f64()
    );
    wait_until(
        Duration::from_secs(20),
        "handling retried during the outage",
        || tg_ingest::obs::metrics::Metrics::get(&service.metrics.handler_errors) >= 3,
    );
    s3.restart();
    wait_until(Duration::from_secs(60), "all saved", || {
        users.iter().all(|u| {
            tg.texts_to(*u)
                .iter()
                .any(|t| t.contains("[document has been saved]"))
        })
    });
    for (user, name, bytes) in &docs {
        assert_eq!(&s3.get(name).unwrap(), bytes, "{name}");
        assert_eq!(
            acknowledged(*user),
            1,
            "one [document] despite the retries: {:?}",
            tg.texts_to(*user)
        );
    }
}

#[test]
fn telegram_500_and_429_bursts_are_ridden_out_without_loss() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let _service = TestService::start(settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    )));
    tg.inject(
        (0..4)
            .map(|_| Fault::Status(500, "Internal Server Error"))
            .chain([Fault::RetryAfter(1)]),
    );
    tg.inject_send(
        (0..6)
            .map(|_| Fault::Status(502, "Bad Gateway"))
            .chain([Fault::RetryAfter(1), Fault::RetryAfter(1)])
            .chain((0..3).map(|_| Fault::Status(500, "Internal Server Error"))),
    );
    let bodies: Vec<Value> = (0..30)
        .map(|i| text(&tg, 90 + i % 3, &format!("m{i}")))
        .collect();
    let expected: Vec<(i64, i64)> = bodies.iter().map(message_id).collect();
    tg.push_many(bodies);
    wait_until(Duration::from_secs(90), "every message answered", || {
        expected
            .iter()
            .all(|(chat, id)| tg.replied_to(*chat).contains(id))
    });
    let attempts = tg.calls("sendMessage").len();
    assert!(attempts >= 30 + 11, "{attempts} sendMessage calls");
    wait_until(Duration::from_secs(10), "journal empty", || {
        journal_len(data.path()) == 0
    });
}

#[test]
fn the_token_never_appears_in_the_logs() {
    let token = "987654:SECRET-visible-token-zz";
    let tg = FakeTelegram::start(token);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let mut vars = service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    );
    vars.push(("RUST_LOG".into(), "debug".into()));
    let bytes = random_bytes(10_000, 3);
    tg.add_file("t1", FileBody::Bytes(Arc::new(bytes)));
    tg.inject([Fault::Status(500, "Internal Server Error"), Fault::Garbage]);
    tg.inject_send([Fault::Status(502, "Bad Gateway")]);
    let mut child = spawn_binary(&vars, &log);
    tg.push(text(&tg, 95, "hi"));
    tg.push(document(&tg, 95, "t1", Some("t.bin"), 10_000));
    // A document whose file is gone: the download from the token-bearing URL fails.
    tg.add_file("missing", FileBody::Local(data.path().join("no-such-file")));
    tg.push(document(&tg, 95, "missing", Some("gone.bin"), 10));
    wait_until(Duration::from_secs(60), "replies", || {
        let r = tg.texts_to(95);
        r.iter().any(|t| t.contains("[document has been saved]"))
            && r.iter().any(|t| t.contains("could not be saved"))
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "debug logging was on");
    assert!(text.contains("update_id="), "the scenario ran");
    assert!(
        !text.contains("SECRET-visible-token-zz"),
        "token leaked:\n{text}"
    );
}
