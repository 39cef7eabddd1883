//! The segments layout of the raw archive: many messages of one chat and day per object, each
//! message in exactly one segment, also across a `kill -9` between a segment's PUT and its
//! record; the PUT rate cap; and the ETL over segments and days that mix both layouts.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use support::archive::*;
use support::*;
use tg_ingest::config::SegmentCompression;
use tg_ingest::domain::segment::{segment_bytes, segment_key, segment_lines, Member};
use tg_ingest::etl::{parquet_key, run_day};
use tg_ingest::util::clock::{now_millis, Day};

const WAIT: Duration = Duration::from_secs(60);
const OTHER: i64 = -100_501;

/// The updates in each segment: update id → (segment, chat).
fn segment_members(objects: &BTreeMap<String, Vec<u8>>) -> Vec<(i64, String, i64)> {
    let mut found = Vec::new();
    for (key, body) in objects {
        assert!(key.ends_with(".ndjson.zst"), "not a segment: {key}");
        let lines = segment_lines(key, body).unwrap();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let u: Value = serde_json::from_slice(line).unwrap();
            found.push((
                u["update_id"].as_i64().unwrap(),
                key.clone(),
                u["message"]["chat"]["id"].as_i64().unwrap(),
            ));
        }
    }
    found
}

fn yesterday_noon() -> (Day, i64) {
    let offset = -180;
    let day = Day::of(now_millis() / 1000, offset).prev();
    (day, day.0 * 86_400 - i64::from(offset) * 60 + 12 * 3600)
}

fn segments_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        (
            "TG_INGEST__ARCHIVE__LAYOUT".to_string(),
            "segments".to_string(),
        ),
        ("TG_INGEST__ARCHIVE__SEGMENT__MAX_SECS".into(), "1".into()),
    ];
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

#[test]
fn each_message_is_in_exactly_one_segment_of_its_chat_and_the_etl_reads_them() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, mut vars) = archive_env(&s3);
    // About 40 updates a segment, so the size limit makes several per chat.
    vars.extend(segments_env(&[(
        "TG_INGEST__ARCHIVE__SEGMENT__MAX_BYTES",
        "10000",
    )]));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let (day, noon) = yesterday_noon();
    for i in 0..400 {
        let chat = if i % 3 == 0 { OTHER } else { GROUP };
        tg.push_raw(
            1 + i,
            group_update(1 + i, chat, noon + i, Some("in a segment"), true),
        );
    }
    let _service = TestService::start(settings);
    wait_until(WAIT, "every message stored", || {
        segment_members(&raw_objects(&s3, &b)).len() >= 400 && settled(data.path(), "archive")
    });
    let objects = raw_objects(&s3, &b);
    let members = segment_members(&objects);
    let mut ids: Vec<i64> = members.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=400).collect::<Vec<_>>(),
        "each message once, none lost"
    );
    let mut chats_of: HashMap<&str, Vec<i64>> = HashMap::new();
    for (_, key, chat) in &members {
        chats_of.entry(key).or_default().push(*chat);
    }
    assert!(
        chats_of.values().all(|c| c.iter().all(|x| *x == c[0])),
        "a segment holds one chat"
    );
    assert!(
        objects.len() >= 8 && objects.len() <= 40,
        "{} objects for 400 messages of 2 chats",
        objects.len()
    );
    assert!(objects
        .keys()
        .all(|k| k.contains(&format!("context_date={day}/"))));

    let report = block_on(run_day(&etl_target(&s3, &b, data.path()), day, &|_, _| {})).unwrap();
    assert_eq!(
        (
            report.source_objects,
            report.segments,
            report.rows,
            report.duplicates
        ),
        (objects.len() as u64, objects.len() as u64, 400, 0)
    );
    let rows = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    assert_eq!(i64s(&rows, "update_id").len(), 400);
}

#[test]
fn a_segment_written_but_not_recorded_before_kill_9_is_written_again_the_same() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let log = data.path().join("service.log");
    let (b, mut vars) = archive_env(&s3);
    vars.extend(segments_env(&[]));
    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(vars.iter().cloned());
    let (_, noon) = yesterday_noon();
    for i in 0..120 {
        tg.push_raw(
            1 + i,
            group_update(1 + i, GROUP, noon + i, Some("once"), true),
        );
    }
    // Each segment's record waits 30 s after its PUT: the kill lands in between.
    let mut held = env.clone();
    held.push((
        "FAILPOINTS".into(),
        "archive.segment_written=sleep(30000)".into(),
    ));
    let mut child = spawn_binary(&held, &log);
    wait_until(WAIT, "a segment written", || !s3.keys_in(&b.raw).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let before = raw_objects(&s3, &b);
    let sealed_unrecorded = tg_number(
        data.path(),
        "SELECT COUNT(*) FROM outbox WHERE segment IS NOT NULL AND delivered_at IS NULL",
    );
    assert!(sealed_unrecorded > 0, "the kill came after the record");

    let mut child = spawn_binary(&env, &log);
    wait_until(WAIT, "every message stored", || {
        settled(data.path(), "archive")
    });
    let after = raw_objects(&s3, &b);
    for (key, body) in &before {
        assert_eq!(
            after.get(key),
            Some(body),
            "{key} written again with other bytes"
        );
    }
    let members = segment_members(&after);
    let mut ids: Vec<i64> = members.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=120).collect::<Vec<_>>(),
        "each message in one segment"
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
}

fn tg_number(data: &std::path::Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(data.join("state.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn puts_to_the_raw_bucket_keep_to_the_cap() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, mut vars) = archive_env(&s3);
    vars.push(("TG_INGEST__ARCHIVE__MAX_PUTS_PER_SEC".into(), "20".into()));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let (_, noon) = yesterday_noon();
    for i in 0..70 {
        tg.push_raw(
            1 + i,
            group_update(1 + i, GROUP, noon + i, Some("paced"), true),
        );
    }
    let started = std::time::Instant::now();
    let _service = TestService::start(settings);
    wait_until(WAIT, "every message stored", || {
        s3.keys_in(&b.raw).len() == 70
    });
    let took = started.elapsed();
    // Each object's Last-Modified second: no second may hold more than the cap.
    let bucket = s3.target().with_bucket(&b.raw).bucket().unwrap();
    let pages = block_on(bucket.list("telegram/".into(), None)).unwrap();
    let mut per_second: BTreeMap<String, usize> = BTreeMap::new();
    for o in pages.iter().flat_map(|p| &p.contents) {
        // `YYYY-MM-DDTHH:MM:SS`, whatever precision the server gives.
        let second = o.last_modified.chars().take(19).collect();
        *per_second.entry(second).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    eprintln!("70 PUTs at 20/s took {took:?}; per second: {per_second:?}");
    assert!(
        busiest <= 21,
        "{busiest} PUTs in one second: {per_second:?}"
    );
    assert!(
        took >= Duration::from_secs(3),
        "70 PUTs at 20 a second took {took:?}"
    );
}

#[test]
fn the_etl_reads_a_day_that_mixes_both_layouts_and_both_compressions_and_skips_a_broken_segment() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let day = Day::parse("2026-11-21").unwrap();
    let updates: Vec<Value> = (0..30)
        .map(|i| group_update(100 + i, GROUP, NOON + i, Some("mixed"), true))
        .collect();
    // 0..10 per message; 8..20 in a zstd segment (8 and 9 twice); 20..30 in a gzip one.
    put_raw(&s3, &b, &settings.archive, &updates[..10]);
    let bucket = s3.target().with_bucket(&b.raw).bucket().unwrap();
    for (range, compression) in [
        (8..20, SegmentCompression::Zstd),
        (20..30, SegmentCompression::Gzip),
    ] {
        let keys: Vec<String> = updates[range.clone()]
            .iter()
            .map(|u| key_of(&settings.archive, u))
            .collect();
        let payloads: Vec<String> = updates[range.clone()]
            .iter()
            .map(Value::to_string)
            .collect();
        let members: Vec<Member> = (0..keys.len())
            .map(|i| Member {
                id: range.start as i64 + i as i64,
                key: &keys[i],
                payload: &payloads[i],
            })
            .collect();
        let key = segment_key(&members, GROUP, compression);
        let bytes = segment_bytes(&members, compression).unwrap();
        block_on(bucket.put_object(&key, &bytes)).unwrap();
    }
    // A segment cut off in transit (or not zstd at all) is skipped and logged, not fatal.
    block_on(bucket.put_object(
        "telegram/context_date=2026-11-21/20261121120100_segment_-100500_90-99.ndjson.zst",
        b"\x28\xb5\x2f\xfd truncated",
    ))
    .unwrap();
    let report = block_on(run_day(&etl_target(&s3, &b, data.path()), day, &|_, _| {})).unwrap();
    assert_eq!(
        (
            report.source_objects,
            report.segments,
            report.rows,
            report.duplicates,
            report.skipped
        ),
        (13, 3, 30, 2, 1)
    );
    let rows = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    let mut ids: Vec<i64> = i64s(&rows, "update_id").into_iter().flatten().collect();
    ids.sort_unstable();
    assert_eq!(ids, (100..130).collect::<Vec<_>>());
}

#[test]
fn an_s3_outage_delays_segments_but_writes_each_message_once() {
    let (tg, mut s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    if s3.skips_unless_in_process("the test stops the S3 server during an outage") {
        return;
    }
    let (b, mut vars) = archive_env(&s3);
    vars.extend(segments_env(&[]));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let _service = TestService::start(settings);
    s3.stop();
    let (_, noon) = yesterday_noon();
    for i in 0..80 {
        let chat = if i % 2 == 0 { OTHER } else { GROUP };
        tg.push_raw(
            1 + i,
            group_update(1 + i, chat, noon + i, Some("during the outage"), true),
        );
    }
    wait_until(WAIT, "all confirmed", || tg.pending_updates() == 0);
    wait_until(WAIT, "segments tried and failed during the outage", || {
        outbox_max_attempts(data.path(), "archive") >= 2
    });
    let sealed = tg_number(
        data.path(),
        "SELECT COUNT(DISTINCT segment) FROM outbox WHERE segment IS NOT NULL AND delivered_at IS NULL",
    );
    assert!(
        sealed >= 2,
        "both chats' segments sealed and waiting: {sealed}"
    );
    s3.restart();
    wait_until(WAIT, "every message stored after the outage", || {
        settled(data.path(), "archive") && !s3.keys_in(&b.raw).is_empty()
    });
    let members = segment_members(&raw_objects(&s3, &b));
    let mut ids: Vec<i64> = members.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=80).collect::<Vec<_>>(),
        "each message once, none lost"
    );
    assert_eq!(
        raw_objects(&s3, &b).len() as i64,
        sealed,
        "the segments sealed during the outage are the ones written"
    );
}
