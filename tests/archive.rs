//! Capability C: the raw archive of group messages and the daily Parquet ETL, against a real
//! S3 server, read back with the `parquet` crate.

mod support;

use std::time::Duration;

use arrow::array::{Array, BooleanArray};
use arrow::datatypes::DataType;
use serde_json::{json, Value};
use support::archive::*;
use support::*;
use tg_ingest::config::Settings;
use tg_ingest::etl::{marker_key, parquet_key, run_day};
use tg_ingest::util::clock::Day;

const WAIT: Duration = Duration::from_secs(30);

/// The service running with two archived chats, and what the tests look at.
struct Archiving {
    tg: FakeTelegram,
    s3: TestS3,
    data: tempfile::TempDir,
    b: Buckets,
    vars: Vec<(String, String)>,
    settings: Settings,
    _service: TestService,
}

impl Archiving {
    fn start() -> Self {
        let (tg, s3, data) = (
            FakeTelegram::start(TOKEN),
            TestS3::start(),
            tempfile::tempdir().unwrap(),
        );
        let (b, vars) = archive_env(&s3);
        let settings = settings_with(&tg, &s3, data.path(), &vars);
        let _service = TestService::start(settings.clone());
        Self {
            tg,
            s3,
            data,
            b,
            vars,
            settings,
            _service,
        }
    }
}

#[test]
fn group_messages_are_archived_verbatim_once_each_in_the_local_day() {
    use support::proxy::SilentProxy;
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let late = 1_795_314_600; // 2026-11-22 02:30 UTC = 2026-11-21 23:30 at UTC-03:00
    let updates = [
        group_update(5001, GROUP, NOON, Some("hello"), true),
        group_update(5002, GROUP, NOON + 60, None, true),
        group_update(5003, -100_501, late, Some("near midnight"), false),
    ];
    // Queued before the start, so the first getUpdates delivers all of them: the same update
    // twice in one batch, and a chat that is not archived.
    for u in &updates {
        tg.push_raw(u["update_id"].as_i64().unwrap(), u.clone());
    }
    tg.push_raw(5001, updates[0].clone());
    tg.push_raw(
        5004,
        group_update(5004, -999, NOON, Some("not archived"), true),
    );
    // S3 is reached through a proxy that counts the PUTs: a second PUT of one message would
    // overwrite its key, so the bucket alone could not show it.
    let port: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = SilentProxy::start(port);
    let mut settings = settings_with(&tg, &s3, data.path(), &vars);
    settings.s3.endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let _service = TestService::start(settings.clone());
    wait_until(WAIT, "three raw objects", || s3.keys_in(&b.raw).len() == 3);
    wait_until(WAIT, "every update handled, nothing left to store", || {
        settled(data.path(), "archive")
    });
    let keys = s3.keys_in(&b.raw);
    assert_eq!(keys.len(), 3, "{keys:?}");
    let puts = proxy.sent_count(&format!("PUT /{}/", b.raw));
    assert_eq!(puts, 3, "one PUT per archived message, none for the repeat");
    for u in &updates {
        let key = key_of(&settings.archive, u);
        assert_eq!(
            s3.get_in(&b.raw, &key).unwrap(),
            serde_json::to_vec(u).unwrap(),
            "{key} byte-identical"
        );
    }
    assert!(
        keys.contains(
            &"telegram/context_date=2026-11-21/20261121233000_000000005003.json".to_string()
        ),
        "{keys:?}"
    );
    assert!(
        tg.texts_to(GROUP).is_empty(),
        "archived chats get no replies"
    );
}

#[test]
fn an_s3_outage_delays_archived_messages_but_loses_none() {
    let (tg, mut s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    if s3.skips_unless_in_process("the test stops the S3 server during an outage") {
        return;
    }
    let (b, vars) = archive_env(&s3);
    let _service = TestService::start(settings_with(&tg, &s3, data.path(), &vars));
    s3.stop();
    for id in 0..5 {
        tg.push_raw(
            6000 + id,
            group_update(6000 + id, GROUP, NOON + id, Some("during the outage"), true),
        );
    }
    wait_until(WAIT, "all confirmed", || tg.pending_updates() == 0);
    wait_until(WAIT, "stores tried and failed during the outage", || {
        outbox_max_attempts(data.path(), "archive") >= 3
    });
    s3.restart();
    wait_until(Duration::from_secs(60), "objects after the outage", || {
        s3.keys_in(&b.raw).len() == 5
    });
}

#[test]
fn etl_writes_one_parquet_with_the_exact_schema_and_values() {
    let (s3, data) = (TestS3::start(), tempfile::tempdir().unwrap());
    let (b, _) = archive_env(&s3);
    let archive = settings_from(vec![
        ("TG_INGEST__TELEGRAM__TOKEN".into(), TOKEN.into()),
        ("TG_INGEST__ARCHIVE__CHATS".into(), GROUP.to_string()),
    ])
    .archive;
    let day = Day::parse("2026-11-21").unwrap();
    let mut updates = vec![
        group_update(3, GROUP, NOON + 30, Some("third"), true),
        group_update(1, GROUP, NOON, Some("first"), true),
        group_update(2, GROUP, NOON + 10, None, false),
    ];
    // The same update stored a second time under another name.
    let dup = updates[0].clone();
    updates.push(json!({"update_id": 4, "poll": {"id": "x"}}));
    put_raw(&s3, &b, &archive, &updates[..3]);
    let bucket = s3.target().with_bucket(&b.raw).bucket().unwrap();
    block_on(bucket.put_object(
        "telegram/context_date=2026-11-21/20261121090040_copy.json",
        dup.to_string().as_bytes(),
    ))
    .unwrap();
    block_on(bucket.put_object(
        "telegram/context_date=2026-11-21/20261121090050_poll.json",
        updates[3].to_string().as_bytes(),
    ))
    .unwrap();

    let target = etl_target(&s3, &b, data.path());
    let report = block_on(run_day(&target, day, &|_, _| {})).unwrap();
    assert_eq!(
        (
            report.source_objects,
            report.rows,
            report.duplicates,
            report.skipped
        ),
        (5, 3, 1, 1)
    );
    let batches = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    let schema = batches[0].schema();
    let expected = [
        ("message_id", DataType::Int64),
        ("user_id", DataType::Int64),
        ("user_is_bot", DataType::Boolean),
        ("user_first_name", DataType::Utf8),
        ("chat_id", DataType::Int64),
        ("chat_type", DataType::Utf8),
        ("text", DataType::Utf8),
        ("date", DataType::Int64),
    ];
    for (i, (name, ty)) in expected.iter().enumerate() {
        assert_eq!(schema.field(i).name(), name);
        assert_eq!(schema.field(i).data_type(), ty);
    }
    assert_eq!(
        i64s(&batches, "update_id"),
        [Some(1), Some(2), Some(3)],
        "sorted by date"
    );
    assert_eq!(i64s(&batches, "message_id"), [Some(10), Some(20), Some(30)]);
    assert_eq!(
        i64s(&batches, "user_id"),
        [Some(8), None, Some(10)],
        "from-less row has no user"
    );
    assert_eq!(i64s(&batches, "chat_id"), [Some(GROUP); 3]);
    assert_eq!(
        i64s(&batches, "date"),
        [Some(NOON), Some(NOON + 10), Some(NOON + 30)]
    );
    assert_eq!(
        strings(&batches, "text"),
        [Some("first".into()), None, Some("third".into())]
    );
    assert_eq!(
        strings(&batches, "user_first_name"),
        [Some("Name1".into()), None, Some("Name3".into())]
    );
    assert_eq!(
        strings(&batches, "chat_type"),
        vec![Some("supergroup".to_string()); 3]
    );
    let photo = batches[0]
        .column_by_name("has_photo")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap()
        .clone();
    assert!(photo.value(1) && !photo.value(0));
    let marker: Value = serde_json::from_slice(
        &s3.get_in(&b.enriched, &marker_key("telegram", day))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(marker["rows"], 3);
    assert_eq!(marker["source_objects"], 5);

    // Re-running the day replaces the output with the same rows.
    let again = block_on(run_day(&target, day, &|_, _| {})).unwrap();
    assert_eq!(again.rows, 3);
    let batches2 = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    assert_eq!(i64s(&batches2, "update_id"), i64s(&batches, "update_id"));
    assert_eq!(strings(&batches2, "text"), strings(&batches, "text"));
    let day_keys: Vec<String> = s3
        .keys_in(&b.enriched)
        .into_iter()
        .filter(|k| k.contains("2026-11-21"))
        .collect();
    assert_eq!(
        day_keys.len(),
        2,
        "one Parquet file and the marker: {day_keys:?}"
    );
}

#[test]
fn etl_handles_a_day_of_3000_objects_and_an_empty_day() {
    let (s3, data) = (TestS3::start(), tempfile::tempdir().unwrap());
    let (b, _) = archive_env(&s3);
    let archive = settings_from(vec![
        ("TG_INGEST__TELEGRAM__TOKEN".into(), TOKEN.into()),
        ("TG_INGEST__ARCHIVE__CHATS".into(), GROUP.to_string()),
    ])
    .archive;
    let updates: Vec<Value> = (0..3000)
        .map(|i| group_update(10_000 + i, GROUP, NOON + i, Some("m"), i % 2 == 0))
        .collect();
    put_raw(&s3, &b, &archive, &updates);
    let target = etl_target(&s3, &b, data.path());
    let day = Day::parse("2026-11-21").unwrap();
    let report = block_on(run_day(&target, day, &|_, _| {})).unwrap();
    assert_eq!((report.source_objects, report.rows), (3000, 3000));
    let batches = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    let ids = i64s(&batches, "update_id");
    assert_eq!(ids.len(), 3000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(batches.len() >= 3, "written in row groups of 1000");

    let empty = day.prev();
    let report = block_on(run_day(&target, empty, &|_, _| {})).unwrap();
    assert_eq!(
        (
            report.source_objects,
            report.rows,
            report.parquet_key.clone()
        ),
        (0, 0, None)
    );
    assert!(s3
        .get_in(&b.enriched, &parquet_key("telegram", empty))
        .is_none());
    let marker: Value = serde_json::from_slice(
        &s3.get_in(&b.enriched, &marker_key("telegram", empty))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(marker["rows"], 0);
}

#[test]
fn the_scheduler_catches_up_a_missed_day_at_start_up() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let now = tg_ingest::util::clock::now_millis() / 1000;
    let two_days_ago = now - 2 * 86_400;
    let updates: Vec<Value> = (0..20)
        .map(|i| {
            group_update(
                20_000 + i,
                GROUP,
                two_days_ago - 3600 + i,
                Some("old"),
                true,
            )
        })
        .collect();
    let missed_day = Day::of(two_days_ago - 3600, settings.archive.utc_offset_minutes);
    put_raw(&s3, &b, &settings.archive, &updates);
    let service = TestService::start(settings);
    wait_until(WAIT, "marker of the missed day", || {
        s3.get_in(&b.enriched, &marker_key("telegram", missed_day))
            .is_some()
    });
    let batches = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", missed_day))
            .unwrap(),
    );
    assert_eq!(i64s(&batches, "update_id").len(), 20);
    // The run shows in the metrics: its rows and when it succeeded.
    let families = &service.metrics.families;
    wait_until(WAIT, "ETL run counted", || {
        families.etl_last_rows.get() == 20
    });
    assert!(families.etl_last_success.get() >= now);
}

#[test]
fn the_etl_command_backfills_a_range_of_days() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let updates: Vec<Value> = (0..10)
        .map(|i| group_update(30_000 + i, GROUP, NOON + i * 86_400, Some("daily"), true))
        .collect();
    put_raw(&s3, &b, &settings.archive, &updates[..3]);
    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(vars);
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(env)
        .args(["etl", "--from", "2026-11-20", "--to", "2026-11-24"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(stdout.contains("2026-11-20: 0 objects, 0 rows"), "{stdout}");
    assert!(stdout.contains("2026-11-21: 1 objects, 1 rows"), "{stdout}");
    for day in [
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
        "2026-11-23",
        "2026-11-24",
    ] {
        assert!(
            s3.get_in(
                &b.enriched,
                &marker_key("telegram", Day::parse(day).unwrap())
            )
            .is_some(),
            "{day}"
        );
    }
}

/// Runs `tg-ingest etl --date` with `env`; returns the day's `_SUCCESS` marker.
fn etl_command(s3: &TestS3, b: &Buckets, env: &[(String, String)], day: &str) -> Value {
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(env.iter().cloned())
        .args(["etl", "--date", day])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let marker = s3
        .get_in(
            &b.enriched,
            &marker_key("telegram", Day::parse(day).unwrap()),
        )
        .unwrap();
    serde_json::from_slice(&marker).unwrap()
}

#[test]
fn the_etl_reads_local_copies_but_s3_stays_the_truth() {
    let Archiving {
        tg,
        s3,
        data,
        b,
        vars,
        settings,
        _service,
    } = Archiving::start();
    // 2026-09-21: outside the scheduler's catch-up window, so only the command below runs it.
    let when = NOON - 61 * 86_400;
    let updates: Vec<Value> = (0..40)
        .map(|i| group_update(40_000 + i, GROUP, when + i, Some(&format!("m{i}")), true))
        .collect();
    for u in &updates {
        tg.push_raw(u["update_id"].as_i64().unwrap(), u.clone());
    }
    wait_until(WAIT, "40 raw objects", || s3.keys_in(&b.raw).len() == 40);
    // The bucket is the truth: one object is rewritten there and another deleted.
    let bucket = s3.target().with_bucket(&b.raw).bucket().unwrap();
    let mut changed = updates[5].clone();
    changed["message"]["text"] = json!("changed in S3");
    block_on(bucket.put_object(
        key_of(&settings.archive, &updates[5]),
        changed.to_string().as_bytes(),
    ))
    .unwrap();
    block_on(bucket.delete_object(key_of(&settings.archive, &updates[9]))).unwrap();

    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(vars.clone());
    let warm = etl_command(&s3, &b, &env, "2026-09-21");
    assert_eq!(
        (&warm["rows"], &warm["read_locally"], &warm["fetched"]),
        (&json!(39), &json!(38), &json!(1)),
        "{warm}"
    );
    let day = Day::parse("2026-09-21").unwrap();
    let rows = |s3: &TestS3| {
        let batches = read_parquet(
            s3.get_in(&b.enriched, &parquet_key("telegram", day))
                .unwrap(),
        );
        (i64s(&batches, "update_id"), strings(&batches, "text"))
    };
    let (ids, texts) = rows(&s3);
    assert_eq!(ids.len(), 39);
    assert!(
        !ids.contains(&Some(40_009)),
        "a deleted object is not read from its copy"
    );
    assert_eq!(texts[5].as_deref(), Some("changed in S3"));

    // Without the store (another machine), every object is fetched, with the same result.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut env = service_env(&tg, &s3, elsewhere.path(), &[]);
    env.extend(vars);
    let cold = etl_command(&s3, &b, &env, "2026-09-21");
    assert_eq!(
        (&cold["rows"], &cold["read_locally"], &cold["fetched"]),
        (&json!(39), &json!(0), &json!(39)),
        "{cold}"
    );
    assert_eq!(rows(&s3), (ids, texts));
}

#[test]
fn a_non_admin_go_in_an_archived_chat_gets_no_reply() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, mut vars) = archive_env(&s3);
    vars.push(("TG_INGEST__BUTTON__ADMINS".into(), "42".into()));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let _service = TestService::start(settings);
    let mut refused = group_update(6001, GROUP, NOON, Some("/go"), true);
    refused["message"]["from"]["id"] = json!(44);
    let mut admin = group_update(6002, GROUP, NOON + 1, Some("/go"), true);
    admin["message"]["from"]["id"] = json!(42);
    tg.push_raw(6001, refused);
    tg.push_raw(6002, admin);
    // One chat's updates are handled in order: once the admin's button is posted, the refused
    // /go before it has been handled.
    wait_until(WAIT, "the admin's button", || {
        !tg.texts_to(GROUP).is_empty()
    });
    wait_until(WAIT, "both messages archived", || {
        s3.keys_in(&b.raw).len() == 2
    });
    let texts = tg.texts_to(GROUP);
    assert_eq!(texts.len(), 1, "only the button, no refusal: {texts:?}");
    assert!(
        !texts[0].contains(tg_ingest::domain::button::texts::ADMINS_ONLY),
        "{texts:?}"
    );
}

#[test]
fn archived_messages_are_queued_at_intake_and_only_commands_reach_a_worker() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, mut vars) = archive_env(&s3);
    vars.push(("TG_INGEST__BUTTON__ADMINS".into(), "42".into()));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let service = TestService::start(settings);
    for i in 0..60 {
        let mut u = group_update(7000 + i, GROUP, NOON + i, Some("chatter"), true);
        if i == 30 {
            u["message"]["text"] = json!("/go");
            u["message"]["from"]["id"] = json!(42);
        }
        if i % 10 == 1 {
            u["edited_message"] = u["message"].take();
            u.as_object_mut().unwrap().remove("message");
        }
        tg.push_raw(7000 + i, u);
    }
    wait_until(WAIT, "every message archived", || {
        s3.keys_in(&b.raw).len() == 60
    });
    wait_until(WAIT, "the admin's button", || {
        !tg.texts_to(GROUP).is_empty()
    });
    let dispatched = service
        .metrics
        .updates_dispatched
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dispatched, 1, "only the /go went to a worker");
    assert_eq!(journal_len(data.path()), 0, "nothing left in the journal");
}

/// Archive outbox items not yet delivered, read from the store beside a running service.
fn outbox_waiting(data: &std::path::Path) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(db) = rusqlite::Connection::open_with_flags(data.join("state.db"), flags) else {
        return 0;
    };
    db.query_row(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'archive' AND delivered_at IS NULL",
        [],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_day_is_compacted_only_when_complete_and_again_after_a_late_edit() {
    let (tg, mut s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    if s3.skips_unless_in_process("the test stops S3 to hold the archive outbox") {
        return;
    }
    let log = data.path().join("service.log");
    let (b, mut vars) = archive_env(&s3);
    vars.push(("TG_INGEST__ARCHIVE__RECHECK_SECS".into(), "2".into()));
    let env = {
        let mut v = service_env(
            &tg,
            &s3,
            data.path(),
            &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
        );
        v.extend(vars.iter().cloned());
        v
    };
    let offset = -180;
    let now = tg_ingest::util::clock::now_millis() / 1000;
    let yesterday = Day::of(now, offset).prev();
    let noon = yesterday.0 * 86_400 - i64::from(offset) * 60 + 12 * 3600;
    let mut child = spawn_binary(&env, &log);
    wait_until(WAIT, "started", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("tg-ingest started"))
    });
    s3.stop();
    for i in 0..500 {
        let id = 30_000 + i;
        tg.push_raw(
            id,
            group_update(id, GROUP, noon + i, Some("busy day"), true),
        );
    }
    wait_until(WAIT, "archive writes waiting", || {
        outbox_waiting(data.path()) >= 200
    });
    child.kill().unwrap();
    child.wait().unwrap();
    s3.restart();
    let mut child = spawn_binary(&env, &log);
    let marker = || -> Option<Value> {
        let bytes = s3.get_in(&b.enriched, &marker_key("telegram", yesterday))?;
        serde_json::from_slice(&bytes).ok()
    };
    let complete = |n: u64| marker().is_some_and(|m| m["rows"] == n && m["source_objects"] == n);
    // Every compaction of the day is logged with its count: while the outbox drained, none
    // may have written a day short of its 500 messages.
    let compactions = |log: &str| -> Vec<u64> {
        let head = format!("ETL {yesterday}: ");
        log.lines()
            .filter_map(|line| line.split_once(&head))
            .filter_map(|(_, rest)| rest.split_once(" objects ("))
            .filter_map(|(n, _)| n.parse().ok())
            .collect()
    };
    let mut short = Vec::new();
    wait_until(Duration::from_secs(60), "yesterday compacted whole", || {
        if let Some(m) = marker().filter(|m| m["source_objects"] != 500) {
            short.push(m);
        }
        complete(500)
    });
    let logged = || compactions(&std::fs::read_to_string(&log).unwrap());
    // The marker is written just before the compaction is logged.
    wait_until(WAIT, "the compaction logged", || logged().contains(&500));
    let counts = logged();
    assert!(short.is_empty(), "markers of an incomplete day: {short:?}");
    assert!(
        !counts.is_empty() && counts.iter().all(|n| *n == 500),
        "compactions of yesterday while its messages were still on the way: {counts:?}"
    );
    assert_eq!(s3.keys_in(&b.raw).len(), 500);
    let rows = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", yesterday))
            .unwrap(),
    );
    assert_eq!(i64s(&rows, "update_id").len(), 500);
    // A late edit of yesterday's message reaches its day's Parquet without a command.
    let mut edit = group_update(31_000, GROUP, noon, Some("edited later"), true);
    edit["edited_message"] = edit["message"].take();
    edit["edited_message"]["edit_date"] = json!(now);
    edit.as_object_mut().unwrap().remove("message");
    tg.push_raw(31_000, edit);
    wait_until(Duration::from_secs(60), "the edit in the Parquet", || {
        complete(501)
    });
    wait_until(WAIT, "the recompaction logged", || logged().contains(&501));
    let after = logged();
    assert!(
        after.iter().all(|n| *n == 500 || *n == 501),
        "the late edit compacts the day again, whole: {after:?}"
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
}

#[test]
fn the_etl_command_beside_a_running_embedded_service_uses_its_server() {
    let (tg, data) = (FakeTelegram::start(TOKEN), tempfile::tempdir().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env: Vec<(String, String)> = [
        ("TG_INGEST__TELEGRAM__TOKEN", TOKEN.to_string()),
        ("TG_INGEST__TELEGRAM__API_URL", tg.url.clone()),
        ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "1".into()),
        ("TG_INGEST__DATA_DIR", data.path().display().to_string()),
        (
            "TG_INGEST__S3__EMBEDDED__LISTEN",
            format!("127.0.0.1:{port}"),
        ),
        ("TG_INGEST__ARCHIVE__CHATS", GROUP.to_string()),
        ("TG_INGEST__ARCHIVE__RAW_BUCKET", "raw".into()),
        ("TG_INGEST__ARCHIVE__ENRICHED_BUCKET", "enriched".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let log = data.path().join("service.log");
    let _service = spawn_binary(&env, &log);
    wait_until(WAIT, "the service polling", || {
        tg.calls("getUpdates").len() >= 2
    });
    // A write of the running server still in progress.
    let in_progress = data.path().join("s3/.tmp.999999.internal.part");
    std::fs::write(&in_progress, b"half an object").unwrap();
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(env.iter().cloned())
        .args(["etl", "--date", "2026-11-21"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "using the running service's embedded S3 server at 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        in_progress.exists(),
        "a second server over the directory cleaned up the running one's temporary file"
    );
    assert!(data
        .path()
        .join("s3/enriched/telegram/context_date=2026-11-21/_SUCCESS")
        .exists());
}
