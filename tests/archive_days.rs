//! The archive's days against what the buckets hold: a day whose raw objects changed behind the
//! service's back (another writer, an import, a restore) or whose output was deleted is
//! compacted again; and the compacted days answer the documented DuckDB queries.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::archive::*;
use support::*;
use tg_ingest::etl::{marker_key, parquet_key, run_day};
use tg_ingest::util::clock::{now_millis, Day};

const WAIT: Duration = Duration::from_secs(30);

fn delete_in(s3: &TestS3, bucket: &str, key: &str) {
    let bucket = s3.target().with_bucket(bucket).bucket().unwrap();
    block_on(bucket.delete_object(key)).unwrap();
}

fn marker_objects(s3: &TestS3, b: &Buckets, day: Day) -> Option<u64> {
    let bytes = s3.get_in(&b.enriched, &marker_key("telegram", day))?;
    serde_json::from_slice::<Value>(&bytes).ok()?["source_objects"].as_u64()
}

#[test]
fn a_day_changed_in_the_bucket_is_compacted_again_at_start_up_and_at_etl_at() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let log = data.path().join("service.log");
    let (b, mut vars) = archive_env(&s3);
    let offset = -180;
    let now = now_millis() / 1000;
    let day = Day::of(now, offset).prev().prev();
    let noon = day.0 * 86_400 - i64::from(offset) * 60 + 12 * 3600;
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let update = |i: i64| group_update(40_000 + i, GROUP, noon + i, Some("kept"), true);
    put_raw(
        &s3,
        &b,
        &settings.archive,
        &(0..10).map(update).collect::<Vec<_>>(),
    );
    // Compacted earlier, elsewhere (the etl command on another machine).
    let first = block_on(run_day(&etl_target(&s3, &b, data.path()), day, &|_, _| {})).unwrap();
    assert_eq!(first.rows, 10);
    // Another writer adds a message to the compacted day.
    put_raw(&s3, &b, &settings.archive, &[update(10)]);

    // The daily run: the next whole minute at least 20 s away (local time of the archive).
    // Taken now (the setup above can take seconds on a loaded machine), to the millisecond.
    let local_ms = now_millis() + i64::from(offset) * 60_000;
    let at = (local_ms / 1000 + 20 + 59) / 60 * 60;
    let etl_at = Instant::now() + Duration::from_millis((at * 1000 - local_ms) as u64);
    let (h, m) = (at.rem_euclid(86_400) / 3600, at.rem_euclid(3600) / 60);
    vars.push((
        "TG_INGEST__ARCHIVE__ETL_AT".into(),
        format!("{h:02}:{m:02}"),
    ));
    vars.push(("TG_INGEST__ARCHIVE__RECHECK_SECS".into(), "3600".into()));
    let mut env = service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    );
    env.extend(vars);
    let child = spawn_binary(&env, &log);
    let logged = |needle: &str| std::fs::read_to_string(&log).unwrap().contains(needle);
    wait_until(WAIT, "the start-up pass compacts the changed day", || {
        marker_objects(&s3, &b, day) == Some(11)
    });
    assert!(logged(&format!(
        "ETL {day}: its raw objects differ from those its marker records (10 then, 11 now); compacting it"
    )));
    wait_until(WAIT, "the compaction logged", || {
        logged(&format!("ETL {day}: 11 objects"))
    });

    // Its Parquet file is deleted, and one more message arrives from elsewhere.
    delete_in(&s3, &b.enriched, &parquet_key("telegram", day));
    put_raw(&s3, &b, &settings.archive, &[update(11)]);
    assert!(
        Instant::now() + Duration::from_secs(2) < etl_at,
        "the bucket changed after etl_at; the test proves nothing"
    );
    wait_until(
        Duration::from_secs(120),
        "the daily run compacts it",
        || marker_objects(&s3, &b, day) == Some(12),
    );
    assert!(
        Instant::now() + Duration::from_millis(1500) >= etl_at,
        "compacted before etl_at: by a pass that should not have listed the bucket; log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(logged(&format!(
        "ETL {day}: its Parquet file is missing; compacting it"
    )));
    let rows = read_parquet(
        s3.get_in(&b.enriched, &parquet_key("telegram", day))
            .unwrap(),
    );
    assert_eq!(i64s(&rows, "update_id").len(), 12);
    sigterm(&child);
    let mut child = child;
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
}

/// A reply, a forward from a channel, a photo in an album with a caption, an edit.
fn day_of_threads(noon: i64) -> Vec<Value> {
    let chat = json!({"id": GROUP, "type": "supergroup", "title": "Team", "is_forum": true});
    let from = |id: i64| json!({"id": id, "is_bot": false, "first_name": format!("U{id}")});
    let message = |id: i64, extra: Value| {
        let mut m =
            json!({"message_id": id, "chat": chat, "date": noon + id, "from": from(id % 3)});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    vec![
        json!({"update_id": 501, "message": message(1, json!({"text": "release?", "message_thread_id": 7}))}),
        json!({"update_id": 502, "message": message(2, json!({"text": "tomorrow", "message_thread_id": 7,
            "reply_to_message": message(1, json!({"text": "release?"}))}))}),
        json!({"update_id": 503, "message": message(3, json!({"text": "see this",
            "forward_origin": {"type": "channel", "date": noon - 50, "chat": {"id": -1_009_000, "type": "channel"}, "message_id": 4}}))}),
        json!({"update_id": 504, "message": message(4, json!({"caption": "the board", "media_group_id": "77",
            "photo": [{"file_id": "s", "file_unique_id": "AQs", "file_size": 900, "width": 90, "height": 90},
                      {"file_id": "l", "file_unique_id": "AQl", "file_size": 90_000, "width": 900, "height": 900}]}))}),
        json!({"update_id": 505, "edited_message": message(2, json!({"text": "tomorrow 10:00", "edit_date": noon + 60, "message_thread_id": 7}))}),
    ]
}

/// The ```sql block of docs/archive.md that follows its DuckDB marker line, split into
/// statements.
fn documented_duckdb_queries() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/archive.md")).unwrap();
    let (_, rest) = doc
        .split_once("<!-- duckdb queries -->")
        .expect("docs/archive.md has its DuckDB queries");
    let block = rest
        .split("```sql")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .split(';')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .collect()
}

const DUCKDB: &str = r#"
import duckdb, json, sys
root, queries = sys.argv[1], json.load(open(sys.argv[2]))
con = duckdb.connect()
out = []
for q in queries:
    q = q.replace("s3://acme-telegram-enriched", root)
    out.append([[str(v) if v is not None else None for v in row] for row in con.execute(q).fetchall()])
print(json.dumps(out))
"#;

#[test]
fn compacted_days_answer_the_documented_duckdb_queries() {
    if std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .map_or(true, |s| !s.success())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Python's duckdb (pip install duckdb)"
        );
        eprintln!("skipped: Python's duckdb is not installed (pip install duckdb)");
        return;
    }
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    let (day1, day2) = (
        Day::parse("2026-11-20").unwrap(),
        Day::parse("2026-11-21").unwrap(),
    );
    put_raw(&s3, &b, &settings.archive, &day_of_threads(NOON - 86_400));
    let quiet: Vec<Value> = (0..3)
        .map(|i| group_update(600 + i, GROUP, NOON + i, Some("quiet day"), true))
        .collect();
    put_raw(&s3, &b, &settings.archive, &quiet);
    let target = etl_target(&s3, &b, data.path());
    let local = data.path().join("lake");
    for day in [day1, day2] {
        block_on(run_day(&target, day, &|_, _| {})).unwrap();
        let key = parquet_key("telegram", day);
        let path = local.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, s3.get_in(&b.enriched, &key).unwrap()).unwrap();
    }
    let queries = documented_duckdb_queries();
    let file = data.path().join("queries.json");
    std::fs::write(&file, serde_json::to_vec(&queries).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-c", DUCKDB])
        .arg(&local)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), 5, "{queries:?}");
    // Messages per day (the edit is a row of its own).
    assert_eq!(
        results[0],
        json!([["2026-11-20", "5", "4"], ["2026-11-21", "3", "3"]])
    );
    // Replies joined to the messages they answer.
    assert_eq!(results[1], json!([["2", "tomorrow", "1", "release?"]]));
    // Media rows with their kind and file.
    assert_eq!(
        results[2],
        json!([["4", "photo", "AQl", null, "the board", "77"]])
    );
    // Where forwards came from.
    assert_eq!(results[3], json!([["channel", "-1009000", "1"]]));
    // The busiest threads.
    assert_eq!(results[4], json!([[format!("{GROUP}"), "7", "2"]]));
}
