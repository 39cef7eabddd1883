//! Replicas of the binary on one PostgreSQL store: exactly one polls (the poller lease's
//! holder); when it is killed another takes over within the lease time, replays what the dead
//! one left in the journal, and nothing is lost; two replicas never poll at once.

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
    // again by the replica that replays the journal. Only the first 100 texts (pushed before
    // the kill) can be.
    assert!(extra <= 2 * USERS as usize, "{extra} extra replies");
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
         {:.1} s later with a {LEASE_SECS} s lease; 200 texts from {USERS} people answered, {extra} again",
        takeover.as_secs_f64()
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
