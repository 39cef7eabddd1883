//! Replicas of the binary on one PostgreSQL store: exactly one polls (the poller lease's
//! holder), and when it is killed another takes over within the lease time; two replicas never
//! poll at once. The journal is worked by chat claims: each chat's updates are handled by one
//! replica at a time in order, the chats spread over all replicas, the chats of a replica
//! killed while holding them go on elsewhere, and a PostgreSQL restart only pauses the work.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::pg::TestPostgres;
use support::*;
use tg_ingest::store::Store;

const WAIT: Duration = Duration::from_secs(60);
const LEASE_SECS: u64 = 3;
const USERS: i64 = 50;

fn holder(store: &Store) -> Option<(String, i64)> {
    store
        .lease("telegram-poller")
        .unwrap()
        .filter(|l| l.remaining_ms > 0)
        .map(|l| (l.holder, l.token))
}

fn replies(tg: &FakeTelegram) -> HashMap<i64, usize> {
    (0..USERS)
        .map(|u| (1000 + u, tg.texts_to(1000 + u).len()))
        .collect()
}

/// Three replicas of the binary on `pg`, each with its HTTP endpoints on a port of its own.
struct Replicas {
    children: Vec<Option<ChildGuard>>,
    logs: Vec<std::path::PathBuf>,
    ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Replicas {
    fn start(tg: &FakeTelegram, s3: &TestS3, pg: &TestPostgres, extra: &[(&str, &str)]) -> Self {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let lease = LEASE_SECS.to_string();
        let logs: Vec<_> = dirs.iter().map(|d| d.path().join("replica.log")).collect();
        let children = (0..3)
            .map(|i| {
                let (id, listen) = (format!("r{i}"), format!("127.0.0.1:{}", ports[i]));
                let mut vars = vec![
                    ("TG_INGEST__STORE__URL", pg.url.as_str()),
                    ("TG_INGEST__STORE__LEASE_SECS", lease.as_str()),
                    ("TG_INGEST__STORE__REPLICA_ID", id.as_str()),
                    ("TG_INGEST__HTTP__LISTEN", listen.as_str()),
                    ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
                    ("RUST_LOG", "info"),
                ];
                vars.extend_from_slice(extra);
                Some(spawn_binary(
                    &service_env(tg, s3, dirs[i].path(), &vars),
                    &logs[i],
                ))
            })
            .collect();
        let replicas = Self {
            children,
            logs,
            ports,
            _dirs: dirs,
        };
        // Every replica up before the test starts (a late one would join the work late).
        for i in 0..replicas.ports.len() {
            let addr = replicas.addr(i);
            wait_until(WAIT, "replica ready", || {
                std::net::TcpStream::connect(addr).is_ok() && http_get(addr, "/readyz").0 == 200
            });
        }
        replicas
    }

    /// The address of replica `i`'s HTTP endpoints.
    fn addr(&self, i: usize) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.ports[i]).parse().unwrap()
    }

    /// The sum of every sample of the metric `name` on replica `i` (all label values).
    fn metric(&self, i: usize, name: &str) -> u64 {
        let (status, body) = http_get(self.addr(i), "/metrics");
        assert_eq!(status, 200);
        body.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Updates replica `i` handled (all kinds and outcomes).
    fn handled(&self, i: usize) -> u64 {
        self.metric(i, "tg_ingest_updates_handled_total")
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    /// Stops every replica still running with SIGTERM; each must exit 0.
    fn stop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            sigterm(child);
            assert_eq!(wait_exit(child, WAIT), Some(0));
        }
    }
}

/// The chats `holder` claims that have journaled updates.
fn chats_of(store: &Store, holder: &str) -> std::collections::BTreeSet<i64> {
    store
        .claimed_updates(holder, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, chat)| chat)
        .collect()
}

/// The chats `holder` claims with at least five journaled updates left (a second of work).
fn busy_chats(store: &Store, holder: &str) -> usize {
    let mut left: HashMap<i64, usize> = HashMap::new();
    for (_, chat) in store.claimed_updates(holder, 10_000).unwrap() {
        *left.entry(chat).or_default() += 1;
    }
    left.values().filter(|n| **n >= 5).count()
}

/// Three replicas answering five replies a second per chat, `per_user` texts from each of
/// `people` pushed at once (each chat's backlog takes about three seconds), and a replica that
/// does not poll holding at least two chats with work left: the one a test stops.
struct Backlog {
    tg: FakeTelegram,
    replicas: Replicas,
    store: Store,
    /// The standby's name and index.
    victim: String,
    index: usize,
    _s3: TestS3,
    _pg: TestPostgres,
}

impl Backlog {
    fn start(per_user: i64, people: i64) -> Self {
        let tg = FakeTelegram::start(TOKEN);
        let s3 = TestS3::start();
        let pg = TestPostgres::start();
        let replicas = Replicas::start(
            &tg,
            &s3,
            &pg,
            &[
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "true"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__PER_CHAT_PER_SEC", "5"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__PER_CHAT_BURST", "1"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__GLOBAL_PER_SEC", "1000"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__GLOBAL_BURST", "1000"),
            ],
        );
        let store = Store::connect(&pg.url).unwrap();
        wait_until(WAIT, "a replica holds the poller lease", || {
            holder(&store).is_some()
        });
        let (poller, _) = holder(&store).unwrap();
        let mut bodies = Vec::new();
        for round in 0..per_user {
            for u in 0..people {
                bodies.push(text(&tg, 1000 + u, &format!("text {round}")));
            }
        }
        tg.push_many(bodies);
        let mut victim = None;
        // Its workers have its chats' updates (it handled one), not only its claims.
        wait_until(
            WAIT,
            "a standby replica working chats with work left",
            || {
                victim = (0..3)
                    .map(|i| format!("r{i}"))
                    .filter(|r| *r != poller)
                    .find(|r| {
                        busy_chats(&store, r) >= 2 && replicas.handled(r[1..].parse().unwrap()) >= 1
                    });
                victim.is_some()
            },
        );
        let victim = victim.unwrap();
        let index = victim[1..].parse().unwrap();
        Self {
            tg,
            replicas,
            store,
            victim,
            index,
            _s3: s3,
            _pg: pg,
        }
    }
}

/// The user messages each sent message of `chat` replies to, in the order they were sent,
/// repeats of the same one in a row counted once.
fn reply_order(tg: &FakeTelegram, chat: i64) -> Vec<i64> {
    let mut order: Vec<i64> = Vec::new();
    for sent in tg.messages_to(chat) {
        if sent.method != "sendMessage" {
            continue;
        }
        if let Some(to) = sent.reply_to {
            if order.last() != Some(&to) {
                order.push(to);
            }
        }
    }
    order
}

#[test]
fn one_replica_polls_and_another_takes_over_within_the_lease_when_it_is_killed() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let lease = LEASE_SECS.to_string();
    let env = |i: usize| {
        let id = format!("r{i}");
        service_env(
            &tg,
            &s3,
            dirs[i].path(),
            &[
                ("TG_INGEST__STORE__URL", pg.url.as_str()),
                ("TG_INGEST__STORE__LEASE_SECS", lease.as_str()),
                ("TG_INGEST__STORE__REPLICA_ID", id.as_str()),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
                ("RUST_LOG", "info"),
            ],
        )
    };
    let logs: Vec<_> = dirs.iter().map(|d| d.path().join("replica.log")).collect();
    let mut children: Vec<Option<ChildGuard>> = (0..3)
        .map(|i| Some(spawn_binary(&env(i), &logs[i])))
        .collect();
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "a replica holds the poller lease", || {
        holder(&store).is_some()
    });
    let (first, first_token) = holder(&store).unwrap();

    // 100 texts from 50 people, then the polling replica is killed mid-stream.
    for round in 0..2 {
        for u in 0..USERS {
            tg.push(text(&tg, 1000 + u, &format!("text {round}")));
        }
    }
    wait_until(WAIT, "half of them answered", || {
        replies(&tg).values().sum::<usize>() >= 50
    });
    let victim: usize = first[1..].parse().unwrap();
    let mut dead = children[victim].take().unwrap();
    dead.kill().unwrap();
    let killed_at = Instant::now();
    let _ = dead.wait();
    // The chats it held with work left: only their update in hand can be answered twice.
    let held = chats_of(&store, &first);
    for round in 2..4 {
        for u in 0..USERS {
            tg.push(text(&tg, 1000 + u, &format!("text {round}")));
        }
    }
    wait_until(WAIT, "another replica holds the lease", || {
        holder(&store).is_some_and(|(h, _)| h != first)
    });
    let takeover = killed_at.elapsed();
    let (second, second_token) = holder(&store).unwrap();
    assert!(
        second_token > first_token,
        "a new term: {first_token} → {second_token}"
    );

    wait_until(WAIT, "every text answered", || {
        replies(&tg).values().all(|n| *n >= 4)
    });
    std::thread::sleep(Duration::from_secs(1));
    let counts = replies(&tg);
    let extra: usize = counts.values().map(|n| n - 4).sum();
    assert_eq!(tg.max_concurrent_polls(), 1, "never two getUpdates at once");
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    assert!(store.poisoned().unwrap().is_empty());
    // An update the killed replica had replied to but not yet recorded as finished is answered
    // again by the replica that takes its chat over: at most the one in hand, of a chat it held.
    let twice: Vec<(i64, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 4)
        .map(|(chat, n)| (*chat, *n))
        .collect();
    assert!(
        twice.iter().all(|(chat, n)| *n == 5 && held.contains(chat)),
        "answered again beyond the update in hand of a chat the victim held ({held:?}): {twice:?}"
    );
    assert!(
        extra <= held.len(),
        "{extra} extra replies, {} chats held",
        held.len()
    );
    let polled_by: Vec<usize> = (0..3)
        .filter(|i| {
            std::fs::read_to_string(&logs[*i])
                .unwrap_or_default()
                .contains("holds the poller lease (token")
        })
        .collect();
    assert_eq!(
        polled_by.len(),
        2,
        "the first holder and its successor only: {polled_by:?}; {second}'s log: {}",
        std::fs::read_to_string(&logs[second[1..].parse::<usize>().unwrap()]).unwrap_or_default()
    );
    eprintln!(
        "replicas: {first} polled (token {first_token}), killed; {second} took over (token {second_token}) \
         {:.1} s later with a {LEASE_SECS} s lease; 200 texts from {USERS} people answered, {extra} again \
         (the victim held {} chats with work left)",
        takeover.as_secs_f64(),
        held.len()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECS + 1),
        "takeover took {takeover:?}"
    );
    for child in children.iter_mut().flatten() {
        sigterm(child);
        assert_eq!(wait_exit(child, WAIT), Some(0));
    }
}

/// 2,000 texts and 30 documents from 50 people, pushed at once to three replicas: every
/// update is answered exactly once and every document stored once, each chat's replies come
/// in the order of its messages, and every replica handles a share.
#[test]
fn three_replicas_share_the_chats_and_keep_each_chats_order() {
    const TEXTS_PER_USER: i64 = 40;
    const DOCS: i64 = 30;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let mut replicas = Replicas::start(&tg, &s3, &pg, &[]);
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "a replica holds the poller lease", || {
        holder(&store).is_some()
    });
    let mut sent: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut docs = Vec::new();
    let mut bodies = Vec::new();
    for round in 0..TEXTS_PER_USER {
        for u in 0..USERS {
            let user = 1000 + u;
            let body = text(&tg, user, &format!("text {round}"));
            sent.entry(user)
                .or_default()
                .push(body["message"]["message_id"].as_i64().unwrap());
            bodies.push(body);
            if round == 20 && u < DOCS {
                let (file, name) = (format!("doc-{u}"), format!("spread-{u}.bin"));
                let bytes = random_bytes(40_000 + 1000 * u as usize, u as u64);
                tg.add_file(&file, FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
                let body = document(&tg, user, &file, Some(&name), bytes.len() as u64);
                sent.entry(user)
                    .or_default()
                    .push(body["message"]["message_id"].as_i64().unwrap());
                bodies.push(body);
                docs.push((user, name, bytes));
            }
        }
    }
    let started = Instant::now();
    tg.push_many(bodies);
    let total = (USERS * TEXTS_PER_USER + DOCS) as usize;
    wait_until(Duration::from_secs(180), "every message answered", || {
        sent.iter()
            .all(|(user, ids)| tg.replied_to(*user).len() == ids.len())
    });
    let elapsed = started.elapsed();
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    std::thread::sleep(Duration::from_millis(500));

    for (user, ids) in &sent {
        // Exactly once: one reply per text (the greeting or the reminder), and each user
        // message replied to in the order it was sent.
        let texts = tg.texts_to(*user);
        let reminders = texts
            .iter()
            .filter(|t| t.contains("[document is required]"))
            .count();
        let greetings = texts.iter().filter(|t| t.contains("[greeting]")).count();
        assert_eq!(greetings, 1, "chat {user}: {texts:?}");
        assert_eq!(reminders as i64, TEXTS_PER_USER - 1, "chat {user}");
        assert_eq!(
            reply_order(&tg, *user),
            *ids,
            "chat {user}: replies out of order"
        );
    }
    for (user, name, bytes) in &docs {
        assert!(
            s3.get(name).is_some_and(|b| b == *bytes),
            "{name} stored byte for byte"
        );
        let saved = tg
            .texts_to(*user)
            .iter()
            .filter(|t| t.contains("[document has been saved]"))
            .count();
        assert_eq!(saved, 1, "chat {user}: one saved reply");
    }
    let stored = s3
        .keys()
        .iter()
        .filter(|k| k.starts_with("spread-"))
        .count();
    assert_eq!(stored, DOCS as usize, "each document stored under one key");
    assert_eq!(tg.max_concurrent_polls(), 1, "never two getUpdates at once");
    assert!(store.poisoned().unwrap().is_empty());
    let shares: Vec<u64> = (0..3).map(|i| replicas.handled(i)).collect();
    assert_eq!(
        shares.iter().sum::<u64>(),
        total as u64,
        "each update handled once: {shares:?}"
    );
    for (i, share) in shares.iter().enumerate() {
        assert!(
            *share >= total as u64 / 10,
            "replica r{i} handled {share} of {total} ({shares:?}); its log: {}",
            replicas.log(i)
        );
    }
    eprintln!(
        "replicas: {total} updates from {USERS} people answered in {:.1} s ({:.0}/s), handled {shares:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    replicas.stop();
}

/// A replica killed while it holds chats: its claims run out within the lease time and
/// another replica answers the rest of those chats; nothing is lost.
#[test]
fn the_chats_of_a_replica_killed_while_holding_them_go_on_elsewhere() {
    const PER_USER: i64 = 15;
    const PEOPLE: i64 = 24;
    let Backlog {
        tg,
        mut replicas,
        store,
        victim,
        index,
        // Held to the end: the S3 server and PostgreSQL.
        _s3,
        _pg,
    } = Backlog::start(PER_USER, PEOPLE);
    let mut dead = replicas.children[index].take().unwrap();
    dead.kill().unwrap();
    let killed_at = Instant::now();
    let _ = dead.wait();
    // The chats it held when it died (it may have claimed more since it was picked).
    let chats = chats_of(&store, &victim);
    assert!(!chats.is_empty());
    let before: HashMap<i64, usize> = chats.iter().map(|c| (*c, tg.texts_to(*c).len())).collect();
    wait_until(WAIT, "the killed replica's chats answered on", || {
        chats.iter().any(|c| tg.texts_to(*c).len() > before[c])
    });
    let resumed = killed_at.elapsed();
    wait_until(Duration::from_secs(120), "every text answered", || {
        (0..PEOPLE).all(|u| tg.replied_to(1000 + u).len() == PER_USER as usize)
    });
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    assert!(store.poisoned().unwrap().is_empty());
    assert!(
        store.claimed_updates(&victim, 10).unwrap().is_empty(),
        "the dead replica holds nothing with work left"
    );
    let again: usize = (0..PEOPLE)
        .map(|u| tg.texts_to(1000 + u).len() - PER_USER as usize)
        .sum();
    eprintln!(
        "replicas: {victim} killed holding {} chats; they were answered on {:.1} s later \
         (lease {LEASE_SECS} s); {again} texts answered twice",
        chats.len(),
        resumed.as_secs_f64()
    );
    // At most the update in hand in each of its chats can be answered twice.
    assert!(again <= chats.len(), "{again} repeated replies");
    assert!(
        resumed <= Duration::from_secs(LEASE_SECS + 2),
        "resumed after {resumed:?}"
    );
    replicas.stop();
}

/// PostgreSQL stops under three replicas and starts again: they are not ready meanwhile, then
/// reconnect and go on; nothing is lost or answered twice.
#[test]
fn replicas_reconnect_after_a_postgresql_restart() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let mut replicas = Replicas::start(&tg, &s3, &pg, &[]);
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "a replica holds the poller lease", || {
        holder(&store).is_some()
    });
    for u in 0..USERS {
        tg.push(text(&tg, 1000 + u, "before"));
    }
    wait_until(WAIT, "answered before the restart", || {
        replies(&tg).values().all(|n| *n == 1)
    });
    drop(store);
    pg.stop();
    for u in 0..USERS {
        tg.push(text(&tg, 1000 + u, "after"));
    }
    let first = replicas.addr(0);
    wait_until(WAIT, "not ready while the store is down", || {
        http_get(first, "/readyz").0 == 503
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        replies(&tg).values().all(|n| *n == 1),
        "nothing is answered without the store"
    );
    pg.restart();
    wait_until(WAIT, "answered after the restart", || {
        replies(&tg).values().all(|n| *n >= 2)
    });
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(replies(&tg).values().all(|n| *n == 2), "{:?}", replies(&tg));
    assert_eq!(tg.max_concurrent_polls(), 1);
    for i in 0..3 {
        let addr = replicas.addr(i);
        wait_until(WAIT, "ready again", || http_get(addr, "/readyz").0 == 200);
    }
    replicas.stop();
}

/// Webhook mode: every replica accepts deliveries (a load balancer in front sends each to any
/// of them, a repeated one to another). Each update is handled once, in its chat's order.
#[test]
fn in_webhook_mode_every_replica_accepts_deliveries() {
    const SECRET: &str = "replica-secret_42";
    const PEOPLE: i64 = 30;
    const PER_USER: i64 = 10;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    // One public URL for all of them, as behind a load balancer.
    let public = format!("http://127.0.0.1:{}/telegram/webhook", free_port());
    let mut replicas = Replicas::start(
        &tg,
        &s3,
        &pg,
        &[
            ("TG_INGEST__TELEGRAM__MODE", "webhook"),
            ("TG_INGEST__TELEGRAM__WEBHOOK__URL", public.as_str()),
            ("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN", SECRET),
            ("TG_INGEST__TELEGRAM__WEBHOOK__CHECK_INTERVAL_SECS", "1"),
        ],
    );
    let urls: Vec<String> = replicas
        .ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/telegram/webhook"))
        .collect();
    let mut update_id = 5000;
    let mut sent: HashMap<i64, Vec<i64>> = HashMap::new();
    for round in 0..PER_USER {
        for u in 0..PEOPLE {
            let user = 2000 + u;
            update_id += 1;
            let body = text(&tg, user, &format!("hook {round}"));
            let message_id = body["message"]["message_id"].as_i64().unwrap();
            sent.entry(user).or_default().push(message_id);
            let mut update = body;
            update["update_id"] = serde_json::json!(update_id);
            let bytes = serde_json::to_vec(&update).unwrap();
            let to = update_id as usize % 3;
            assert_eq!(http_post(&urls[to], Some(SECRET), &bytes).unwrap().0, 200);
            // Delivered again, to another replica.
            let again = (to + 1) % 3;
            assert_eq!(
                http_post(&urls[again], Some(SECRET), &bytes).unwrap().0,
                200
            );
        }
    }
    wait_until(WAIT, "every text answered", || {
        sent.iter()
            .all(|(user, ids)| tg.replied_to(*user).len() == ids.len())
    });
    let store = Store::connect(&pg.url).unwrap();
    let t0 = Instant::now();
    while store.journal_len().unwrap() != 0 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(100));
    }
    if store.journal_len().unwrap() != 0 {
        for r in ["r0", "r1", "r2"] {
            eprintln!(
                "DEBUG {r} holds {:?}",
                store.claimed_updates(r, 100).unwrap()
            );
        }
        eprintln!(
            "DEBUG logs:\n{}\n{}\n{}",
            replicas.log(0),
            replicas.log(1),
            replicas.log(2)
        );
        panic!("journal not empty");
    }
    std::thread::sleep(Duration::from_millis(500));
    for (user, ids) in &sent {
        assert_eq!(
            tg.texts_to(*user).len(),
            ids.len(),
            "chat {user}: once each"
        );
        assert_eq!(reply_order(&tg, *user), *ids, "chat {user}: in order");
    }
    assert_eq!(
        tg.max_concurrent_polls(),
        0,
        "no replica polls in webhook mode"
    );
    let shares: Vec<u64> = (0..3).map(|i| replicas.handled(i)).collect();
    assert_eq!(shares.iter().sum::<u64>(), (PEOPLE * PER_USER) as u64);
    assert!(
        shares.iter().all(|n| *n > 0),
        "every replica handled some: {shares:?}"
    );
    eprintln!(
        "replicas: webhook mode, {} deliveries (each twice) handled {shares:?}",
        PEOPLE * PER_USER
    );
    replicas.stop();
}

/// Three replicas on the fake Airtable, with `extra` settings and two rows a request: posts
/// `presses` go buttons in six groups, presses each once when a replica polls, and answers
/// the replicas and when the presses were pushed.
fn press_buttons_on_replicas(
    (tg, s3, pg): (&FakeTelegram, &TestS3, &TestPostgres),
    at: &support::fake_airtable::FakeAirtable,
    extra: &[(&str, &str)],
    presses: i64,
) -> (Replicas, Instant) {
    let at_env = at.env();
    let mut vars: Vec<(&str, &str)> = at_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Two rows a request make enough requests to keep all three replicas sending.
    vars.push(("TG_INGEST__AIRTABLE__BATCH_SIZE", "2"));
    vars.extend_from_slice(extra);
    let replicas = Replicas::start(tg, s3, pg, &vars);
    let dir = tempfile::tempdir().unwrap();
    let mut env = service_env(tg, s3, dir.path(), &[]);
    env.extend(at_env.clone());
    let settings = settings_from(env);
    // A button is pressed once: one button per press.
    let buttons: Vec<(i64, i64, String)> = actix_rt::System::new().block_on(async {
        let mut buttons = Vec::new();
        for n in 0..presses {
            let chat = -1001 - n % 6;
            let message = tg_ingest::app::post_button(&settings, chat, None, None)
                .await
                .unwrap();
            buttons.push((chat, message, tg.button_data(chat, message).unwrap()));
        }
        buttons
    });
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "a replica holds the poller lease", || {
        holder(&store).is_some()
    });
    let started = Instant::now();
    for (user, (chat, message, data)) in buttons.iter().enumerate() {
        tg.push(press(*chat, *message, 3000 + user as i64, Some("u"), data));
    }
    wait_until(WAIT, "every press a row", || {
        at.rows().len() == presses as usize
    });
    (replicas, started)
}

/// Go-button presses on three replicas: the Airtable outbox is drained by all of them, each
/// row sent once (item claims), within Airtable's rate limit shared by the replicas.
#[test]
fn the_airtable_outbox_is_drained_by_all_replicas_without_double_sends() {
    use support::fake_airtable::FakeAirtable;
    const PRESSES: i64 = 60;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let at = FakeAirtable::start();
    // Airtable allows 5 requests a second per base, counted over the replicas. Each replica
    // keeps the default `requests_per_sec = 5`: the replicas take turns of one shared rate.
    let (mut replicas, started) = press_buttons_on_replicas((&tg, &s3, &pg), &at, &[], PRESSES);
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(at.rows().len(), PRESSES as usize);
    assert_eq!(
        at.records_taken(),
        PRESSES as usize,
        "no row was sent twice"
    );
    assert_eq!(at.rate_violations(), 0, "the shared rate limit held");
    let senders: Vec<u64> = (0..3)
        .map(|i| replicas.metric(i, "tg_ingest_airtable_rows_total"))
        .collect();
    assert_eq!(senders.iter().sum::<u64>(), PRESSES as u64, "{senders:?}");
    assert!(
        senders.iter().filter(|&&n| n > 0).count() >= 2,
        "the outbox is drained by more than one replica: {senders:?}"
    );
    eprintln!(
        "replicas: {PRESSES} presses written to Airtable in {:.1} s, rows sent per replica {senders:?}, {} requests",
        elapsed.as_secs_f64(),
        at.writes()
    );
    replicas.stop();
}

/// A 429 to one replica pauses the Airtable delivery of all three: the limit, and the pause
/// Airtable asks for after it, are the base's. Requests whose turn was given before the 429
/// was known may still go (at most a second's worth); none goes after that until the pause
/// is over, and none is refused.
#[test]
fn a_429_pauses_the_airtable_delivery_of_every_replica() {
    use support::fake_airtable::{AirtableFault, FakeAirtable};
    const PRESSES: i64 = 40;
    const PAUSE: Duration = Duration::from_secs(4);
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let at = FakeAirtable::start();
    at.inject([AirtableFault::Status(429)]);
    let (mut replicas, _) = press_buttons_on_replicas(
        (&tg, &s3, &pg),
        &at,
        &[("TG_INGEST__AIRTABLE__RATE_LIMITED_WAIT_SECS", "4")],
        PRESSES,
    );
    let answers = at.answers();
    let refused = answers[0];
    assert_eq!(refused.1, 429, "{answers:?}");
    let since: Vec<(f64, u16)> = answers[1..]
        .iter()
        .map(|(t, s)| (t.duration_since(refused.0).as_secs_f64(), *s))
        .collect();
    let during: Vec<&(f64, u16)> = since
        .iter()
        .filter(|(t, _)| (1.5..PAUSE.as_secs_f64() - 0.1).contains(t))
        .collect();
    eprintln!(
        "replicas: requests after the 429 (s, status): {:?}",
        &since[..since.len().min(12)]
    );
    assert!(
        during.is_empty(),
        "no replica sends during the pause: {during:?}"
    );
    assert!(
        since.iter().all(|(_, status)| *status == 200) && at.rate_violations() == 0,
        "one 429 leads to no other: {since:?}"
    );
    assert_eq!(
        at.records_taken(),
        PRESSES as usize,
        "no row was sent twice"
    );
    replicas.stop();
}

/// VK on three replicas: only the holder of the VK lease long-polls; when it is killed another
/// resumes from the saved `ts` within the lease time, and every message is answered.
#[test]
fn vk_is_polled_by_one_replica_and_another_takes_over_when_it_is_killed() {
    use support::fake_vk::{FakeVk, VK_GROUP, VK_TOKEN};
    const PEOPLE: i64 = 20;
    let tg = FakeTelegram::start(TOKEN);
    let vk = FakeVk::start();
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let group = VK_GROUP.to_string();
    let mut replicas = Replicas::start(
        &tg,
        &s3,
        &pg,
        &[
            ("TG_INGEST__VK__ENABLED", "true"),
            ("TG_INGEST__VK__TOKEN", VK_TOKEN),
            ("TG_INGEST__VK__GROUP_ID", group.as_str()),
            ("TG_INGEST__VK__API_URL", vk.api_url.as_str()),
            ("TG_INGEST__VK__WAIT", "1"),
        ],
    );
    let store = Store::connect(&pg.url).unwrap();
    let vk_holder = |store: &Store| {
        store
            .lease("vk-poller")
            .unwrap()
            .filter(|l| l.remaining_ms > 0)
            .map(|l| (l.holder, l.token))
    };
    wait_until(WAIT, "a replica holds the VK lease", || {
        vk_holder(&store).is_some() && vk.keys_issued() >= 1
    });
    let (first, first_token) = vk_holder(&store).unwrap();
    let answered = |n: usize| (0..PEOPLE).all(|u| vk.texts_to(500 + u).len() >= n);
    for u in 0..PEOPLE {
        vk.push_message(500 + u, "first", serde_json::json!([]));
    }
    wait_until(WAIT, "the first messages answered", || answered(1));
    let index: usize = first[1..].parse().unwrap();
    let mut dead = replicas.children[index].take().unwrap();
    dead.kill().unwrap();
    let killed_at = Instant::now();
    let _ = dead.wait();
    for u in 0..PEOPLE {
        vk.push_message(500 + u, "second", serde_json::json!([]));
    }
    wait_until(WAIT, "another replica holds the VK lease", || {
        vk_holder(&store).is_some_and(|(h, _)| h != first)
    });
    let takeover = killed_at.elapsed();
    let (second, second_token) = vk_holder(&store).unwrap();
    assert!(second_token > first_token);
    wait_until(WAIT, "the second messages answered", || answered(2));
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    std::thread::sleep(Duration::from_millis(500));
    let extra: usize = (0..PEOPLE).map(|u| vk.texts_to(500 + u).len() - 2).sum();
    assert_eq!(vk.max_concurrent_polls(), 1, "never two long polls at once");
    let polled: Vec<usize> = (0..3)
        .filter(|i| replicas.log(*i).contains("holds the VK lease (token"))
        .collect();
    assert_eq!(polled.len(), 2, "the first holder and its successor only");
    eprintln!(
        "replicas: VK lease {first} (token {first_token}) killed; {second} (token {second_token}) polled VK {:.1} s later; \
         {} messages from {PEOPLE} people answered, {extra} again",
        takeover.as_secs_f64(),
        2 * PEOPLE
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECS + 2),
        "{takeover:?}"
    );
    // The killed replica may have answered a message without recording it finished: at most
    // one per chat, and only among the first messages.
    assert!(extra <= PEOPLE as usize, "{extra} repeated answers");
    replicas.stop();
}

/// The daily ETL on three replicas: a finished day of archived group messages is compacted
/// once, by whichever replica holds the ETL lease, though every replica looks every second.
#[test]
fn a_day_is_compacted_once_across_replicas() {
    use tg_ingest::etl::marker_key;
    use tg_ingest::util::clock::Day;
    const GROUP: i64 = -100_600;
    const MESSAGES: i64 = 300;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let (raw, enriched) = (s3.create_bucket("raw"), s3.create_bucket("enriched"));
    let group = GROUP.to_string();
    let mut replicas = Replicas::start(
        &tg,
        &s3,
        &pg,
        &[
            ("TG_INGEST__ARCHIVE__CHATS", group.as_str()),
            ("TG_INGEST__ARCHIVE__RAW_BUCKET", raw.as_str()),
            ("TG_INGEST__ARCHIVE__ENRICHED_BUCKET", enriched.as_str()),
            ("TG_INGEST__ARCHIVE__RECHECK_SECS", "1"),
        ],
    );
    let offset = -180; // archive.utc_offset_minutes by default
    let now = tg_ingest::util::clock::now_millis() / 1000;
    let yesterday = Day::of(now, offset).prev();
    let noon = yesterday.0 * 86_400 - i64::from(offset) * 60 + 12 * 3600;
    for i in 0..MESSAGES {
        let id = 50_000 + i;
        tg.push_raw(
            id,
            serde_json::json!({"update_id": id, "message": {
                "message_id": i + 1,
                "chat": {"id": GROUP, "type": "supergroup", "title": "Team"},
                "date": noon + i,
                "from": {"id": 7000 + i % 7, "is_bot": false, "first_name": "Name"},
                "text": format!("message {i}"),
            }}),
        );
    }
    let marker = || -> Option<serde_json::Value> {
        let bytes = s3.get_in(&enriched, &marker_key("telegram", yesterday))?;
        serde_json::from_slice(&bytes).ok()
    };
    wait_until(WAIT, "yesterday compacted", || {
        marker().is_some_and(|m| m["rows"] == MESSAGES)
    });
    // Every replica passes over the day several times more.
    std::thread::sleep(Duration::from_secs(4));
    let runs: Vec<u64> = (0..3)
        .map(|i| replicas.metric(i, "tg_ingest_etl_runs_total"))
        .collect();
    assert_eq!(runs.iter().sum::<u64>(), 1, "one ETL run in all: {runs:?}");
    let compacting: usize = (0..3)
        .map(|i| replicas.log(i).matches("; compacting it").count())
        .sum();
    assert_eq!(compacting, 1);
    eprintln!("replicas: {MESSAGES} archived messages of {yesterday} compacted once; runs per replica {runs:?}");
    replicas.stop();
}

#[test]
fn a_replica_starting_while_another_uploads_or_copies_leaves_it_alone() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let lease = LEASE_SECS.to_string();
    // Multipart in parts of 5 MiB; a renamed object over 5 MiB is copied in parts, each held
    // 1.5 s by the first two replicas, so the copy is still open when another replica starts.
    let start = |id: &str, failpoints: &str| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("replica.log");
        let mut vars = service_env(
            &tg,
            &s3,
            dir.path(),
            &[
                ("TG_INGEST__STORE__URL", pg.url.as_str()),
                ("TG_INGEST__STORE__LEASE_SECS", lease.as_str()),
                ("TG_INGEST__STORE__REPLICA_ID", id),
                ("TG_INGEST__S3__PART_SIZE_MIB", "5"),
                ("TG_INGEST__S3__SINGLE_COPY_MAX_MIB", "5"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
                ("RUST_LOG", "info"),
            ],
        );
        if !failpoints.is_empty() {
            vars.push(("FAILPOINTS".into(), failpoints.into()));
        }
        (spawn_binary(&vars, &log), log, dir)
    };
    let first = [
        start("r0", "copy.part=sleep(1500)"),
        start("r1", "copy.part=sleep(1500)"),
    ];
    const LEN: u64 = 15 * 1024 * 1024;
    let expected: Vec<u8> = (0..LEN).map(pattern_byte).collect();
    tg.add_file("big", FileBody::Pattern(LEN));
    // About 6 s of download: 60 pieces of 256 KiB, 100 ms apart.
    tg.set_file_pace(Some(Duration::from_millis(100)));
    tg.push(text(&tg, 2001, "hi"));
    wait_until(WAIT, "greeting", || tg.texts_to(2001).len() == 1);
    tg.push(document(&tg, 2001, "big", Some("big.bin"), LEN));
    wait_until(WAIT, "the upload open", || s3.open_uploads() >= 1);
    let late = start("r2", "");
    wait_until(WAIT, "the late replica up", || {
        std::fs::read_to_string(&late.1).is_ok_and(|l| l.contains("tg-ingest started"))
    });
    let saved = |marker: &str| {
        tg.texts_to(2001)
            .iter()
            .filter(|t| t.contains(marker))
            .count()
    };
    wait_until(WAIT, "saved", || saved("[document has been saved]") == 1);
    assert_eq!(s3.get("big.bin").unwrap(), expected, "byte-identical");
    assert_eq!(saved("could not be saved"), 0, "{:?}", tg.texts_to(2001));
    tg.set_file_pace(None);

    // A multipart copy (the rename) in flight while yet another replica starts.
    tg.push(text(&tg, 2001, "/rename"));
    wait_until(WAIT, "asked for the name", || saved("[rename]") == 1);
    tg.push(text(&tg, 2001, "moved"));
    wait_until(WAIT, "the copy open", || s3.open_uploads() >= 1);
    let later = start("r3", "");
    wait_until(WAIT, "renamed", || {
        saved("[document has been renamed]") == 1
    });
    assert_eq!(
        s3.get("moved.bin").unwrap(),
        expected,
        "byte-identical copy"
    );
    assert_eq!(s3.keys(), ["moved.bin"]);
    wait_until(WAIT, "no multipart upload left open", || {
        s3.open_uploads() == 0
    });
    for (_, log, _) in first.iter().chain([&late, &later]) {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !log.contains("multipart upload aborted"),
            "no replica aborted an upload: {log}"
        );
        assert!(
            !log.contains("attempt 1 failed") && !log.contains("S3 copy:"),
            "no upload or copy attempt was lost: {log}"
        );
    }
    for (mut child, _, _) in first.into_iter().chain([late, later]) {
        sigterm(&child);
        assert_eq!(wait_exit(&mut child, WAIT), Some(0));
    }
}

#[test]
fn a_replica_whose_database_connections_go_silent_notices_reconnects_and_goes_on() {
    use support::proxy::SilentProxy;
    const PEOPLE: i64 = 12;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    let proxy = SilentProxy::start(pg.port);
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let lease = LEASE_SECS.to_string();
    // r0 reaches PostgreSQL directly, r1 through the proxy. Calls are bounded at 2 + 5 s.
    let spawn = |id: &str, url: &str| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("replica.log");
        let vars = service_env(
            &tg,
            &s3,
            dir.path(),
            &[
                ("TG_INGEST__STORE__URL", url),
                ("TG_INGEST__STORE__LEASE_SECS", lease.as_str()),
                ("TG_INGEST__STORE__REPLICA_ID", id),
                ("TG_INGEST__STORE__STATEMENT_TIMEOUT_SECS", "2"),
                // Five replies a second per chat: chats stay busy long enough for both
                // replicas' rounds to take their share.
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "true"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__PER_CHAT_PER_SEC", "5"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__PER_CHAT_BURST", "1"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__GLOBAL_PER_SEC", "1000"),
                ("TG_INGEST__TELEGRAM__RATE_LIMIT__GLOBAL_BURST", "1000"),
                ("RUST_LOG", "info"),
            ],
        );
        (spawn_binary(&vars, &log), log, dir)
    };
    let replicas = [spawn("r0", &pg.url), spawn("r1", &through_proxy)];
    let store = Store::connect(&pg.url).unwrap();
    let send_round = |round: i64| {
        let bodies = (0..PEOPLE)
            .map(|u| text(&tg, 1000 + u, &format!("text {round}")))
            .collect();
        tg.push_many(bodies);
    };
    send_round(0);
    wait_until(WAIT, "first round answered", || {
        (0..PEOPLE).all(|u| tg.replied_to(1000 + u).len() == 1)
    });
    // r0 may have answered them all while r1 was still starting: the silence must find r1
    // running (a start-up whose store goes silent fails, as it should).
    wait_until(WAIT, "r1 started", || {
        std::fs::read_to_string(&replicas[1].1).is_ok_and(|l| l.contains("tg-ingest started"))
    });
    let before = proxy.connections();
    proxy.silence_existing();
    let silenced = Instant::now();
    for round in 1..=4 {
        send_round(round);
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until(Duration::from_secs(30), "r1 reconnected", || {
        proxy.connections() > before
    });
    let reconnected = silenced.elapsed();
    wait_until(Duration::from_secs(90), "every text answered", || {
        (0..PEOPLE).all(|u| tg.replied_to(1000 + u).len() == 5)
    });
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    assert!(store.poisoned().unwrap().is_empty());
    assert_eq!(tg.pending_updates(), 0);
    // What r1 handles after reconnecting is printed (the share it gets depends on timing).
    let handled_by_r1 = || {
        std::fs::read_to_string(&replicas[1].1)
            .unwrap_or_default()
            .matches("kind=message: ")
            .count()
    };
    let again: usize = (0..PEOPLE).map(|u| tg.texts_to(1000 + u).len() - 5).sum();
    // New people: their chats are shared between the two live replicas again.
    let r1_before = handled_by_r1();
    let bodies = (0..PEOPLE)
        .flat_map(|u| (0..5).map(move |n| (u, n)))
        .map(|(u, n)| text(&tg, 3000 + u, &format!("later {n}")))
        .collect();
    tg.push_many(bodies);
    wait_until(Duration::from_secs(60), "later texts answered", || {
        (0..PEOPLE).all(|u| tg.replied_to(3000 + u).len() == 5)
    });
    let log = std::fs::read_to_string(&replicas[1].1).unwrap_or_default();
    eprintln!(
        "replicas: r1's connections went silent; it reconnected {:.1} s later; {again} texts answered twice; r1 handled {} updates after",
        reconnected.as_secs_f64(),
        handled_by_r1() - r1_before
    );
    assert!(log.contains("no answer within 7 s"), "r1 noticed: {log}");
    assert!(reconnected <= Duration::from_secs(30), "{reconnected:?}");
    assert!(again <= PEOPLE as usize, "{again} repeated replies");
    for (mut child, log, _) in replicas {
        sigterm(&child);
        // A stop may meet a connection that went silent (up to 7 s per call before it is
        // replaced), on a machine loaded by the other tests.
        let code = wait_exit(&mut child, Duration::from_secs(90));
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(code, Some(0), "{}", &log[log.len().saturating_sub(4000)..]);
    }
}

#[test]
fn a_replica_paused_past_its_claims_leaves_their_queued_updates_to_the_new_holders() {
    const PER_USER: i64 = 15;
    const PEOPLE: i64 = 24;
    let Backlog {
        tg,
        mut replicas,
        store,
        victim,
        index,
        // Held to the end: the S3 server and PostgreSQL.
        _s3,
        _pg,
    } = Backlog::start(PER_USER, PEOPLE);
    let pid = replicas.children[index].as_ref().unwrap().id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let chats = chats_of(&store, &victim);
    assert!(!chats.is_empty());
    let before: HashMap<i64, usize> = chats.iter().map(|c| (*c, tg.texts_to(*c).len())).collect();
    // Paused past its claims: the others take its chats over and answer on.
    wait_until(WAIT, "the paused replica's chats answered on", || {
        chats.iter().all(|c| tg.texts_to(*c).len() > before[c] + 1)
    });
    signal("-CONT");
    wait_until(Duration::from_secs(120), "every text answered", || {
        (0..PEOPLE).all(|u| tg.replied_to(1000 + u).len() == PER_USER as usize)
    });
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    // Time for the resumed replica to answer anything it still would.
    std::thread::sleep(Duration::from_secs(2));
    assert!(store.poisoned().unwrap().is_empty());
    let again: HashMap<i64, usize> = (0..PEOPLE)
        .map(|u| (1000 + u, tg.texts_to(1000 + u).len() - PER_USER as usize))
        .filter(|(_, n)| *n > 0)
        .collect();
    let log = replicas.log(index);
    eprintln!(
        "replicas: {victim} paused holding {} chats; texts answered twice per chat: {again:?}",
        chats.len()
    );
    assert!(
        again.values().all(|n| *n <= 1),
        "at most the update in hand per chat is answered twice: {again:?}"
    );
    assert!(
        again.keys().all(|c| chats.contains(c)),
        "only the paused replica's chats: {again:?}"
    );
    assert!(
        log.contains("no longer held by this replica"),
        "the resumed replica dropped its queued updates: {log}"
    );
    replicas.stop();
}

#[test]
fn a_replica_that_loses_a_chat_while_an_update_is_in_hand_sends_nothing_more_for_it() {
    use tg_ingest::store::db::{Postgres, Sql};
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let pg = TestPostgres::start();
    // Each replica holds its first message back 4 s: the update stays in hand that long.
    let mut replicas = Replicas::start(
        &tg,
        &s3,
        &pg,
        &[("FAILPOINTS", "conversation.send=1*sleep(4000)")],
    );
    let db = Postgres::connect(&pg.url).unwrap();
    let holder_of = |chat: i64| -> Option<String> {
        db.first(
            "SELECT holder FROM chat_claims WHERE chat_id = $1",
            &[chat.into()],
        )
        .unwrap()
        .map(|r| r.text(0).unwrap())
    };
    const CHAT: i64 = 3001;
    tg.push(text(&tg, CHAT, "hello"));
    let mut holder = None;
    wait_until(WAIT, "the chat claimed", || {
        holder = holder_of(CHAT);
        holder.is_some()
    });
    let holder = holder.unwrap();
    // The update is in hand there; another replica takes the chat over (as it would after the
    // holder's claim ran out).
    std::thread::sleep(Duration::from_millis(500));
    let other = ["r0", "r1", "r2"]
        .into_iter()
        .find(|r| *r != holder)
        .unwrap();
    db.exec(
        "UPDATE chat_claims SET holder = $1, token = token + 1 WHERE chat_id = $2",
        &[other.into(), CHAT.into()],
    )
    .unwrap();
    wait_until(WAIT, "the new holder answered", || {
        !tg.texts_to(CHAT).is_empty()
    });
    let store = Store::connect(&pg.url).unwrap();
    wait_until(WAIT, "journal empty", || store.journal_len().unwrap() == 0);
    // The first holder's wait is over by now, and then some.
    std::thread::sleep(Duration::from_secs(5));
    let index: usize = holder[1..].parse().unwrap();
    let log = replicas.log(index);
    eprintln!("replicas: {holder} lost chat {CHAT} with its update in hand; {other} took it over; answers: {:?}", tg.texts_to(CHAT));
    assert_eq!(
        tg.texts_to(CHAT).len(),
        1,
        "answered once, by the new holder"
    );
    assert!(
        log.contains("the chat was taken over while this update was in hand"),
        "{log}"
    );
    assert!(store.poisoned().unwrap().is_empty());
    replicas.stop();
}
