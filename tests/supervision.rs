//! Every actor runs under a supervisor: with a failpoint that makes each of them panic once,
//! the service keeps serving and nothing is lost. (Failpoints are process-wide, so this file
//! holds one test.)

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_airtable::FakeAirtable;
use support::*;
use tg_ingest::etl::marker_key;
use tg_ingest::obs::metrics::Metrics;
use tg_ingest::util::clock::Day;

const WAIT: Duration = Duration::from_secs(60);
const GROUP: i64 = -100_777;
const ACTORS: [&str; 6] = [
    "poller.poll",
    "store.journal",
    "uploader.upload",
    "airtable.drain",
    "archive.drain",
    "etl.pass",
];

#[test]
fn each_actor_panicking_once_loses_nothing() {
    for point in ACTORS {
        fail::cfg(point, "1*panic(failpoint)").unwrap();
    }
    let (tg, s3, at, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        FakeAirtable::start(),
        tempfile::tempdir().unwrap(),
    );
    let raw = s3.create_bucket("raw");
    let enriched = s3.create_bucket("enriched");
    let mut vars = service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
            ("TG_INGEST__ARCHIVE__RECHECK_SECS", "1"),
        ],
    );
    vars.extend(at.env());
    vars.push(("TG_INGEST__ARCHIVE__CHATS".into(), GROUP.to_string()));
    vars.push(("TG_INGEST__ARCHIVE__RAW_BUCKET".into(), raw.clone()));
    vars.push((
        "TG_INGEST__ARCHIVE__ENRICHED_BUCKET".into(),
        enriched.clone(),
    ));
    let settings = settings_from(vars);
    let button = actix_rt::System::new()
        .block_on(tg_ingest::app::post_button(&settings, -9400, None, None))
        .unwrap();
    let service = TestService::start(settings);

    let bytes = random_bytes(200_000, 3);
    tg.add_file("doc", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    tg.push(text(&tg, 61, "hi"));
    tg.push(document(
        &tg,
        61,
        "doc",
        Some("kept.bin"),
        bytes.len() as u64,
    ));
    tg.push(press(
        -9400,
        button,
        62,
        Some("ivan"),
        &tg.button_data(-9400, button).unwrap(),
    ));
    let now = tg_ingest::util::clock::now_millis() / 1000;
    let yesterday = Day::of(now, -180).prev();
    let noon = yesterday.0 * 86_400 + 180 * 60 + 12 * 3600;
    for i in 0..5 {
        let id = 40_000 + i;
        tg.push_raw(
            id,
            json!({"update_id": id, "message": {"message_id": id, "date": noon + i,
                "chat": {"id": GROUP, "type": "supergroup", "title": "Team"},
                "from": {"id": 5, "is_bot": false, "first_name": "A"}, "text": "x"}}),
        );
    }

    wait_until(WAIT, "greeting and saved reply", || {
        tg.texts_to(61)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    assert_eq!(s3.get("kept.bin").unwrap(), bytes);
    wait_until(WAIT, "the Airtable row", || at.rows().len() == 1);
    wait_until(WAIT, "yesterday compacted with its 5 messages", || {
        s3.get_in(&enriched, &marker_key("telegram", yesterday))
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|m| m["rows"] == 5)
    });
    assert_eq!(s3.keys_in(&raw).len(), 5);
    assert_eq!(
        Metrics::get(&service.metrics.actor_restarts),
        ACTORS.len() as u64,
        "each actor restarted once"
    );
    // /metrics names them: one restart for each actor.
    for actor in [
        "PollerActor",
        "StoreActor",
        "S3UploaderActor",
        "AirtableActor",
        "ArchiveActor",
        "EtlSchedulerActor",
    ] {
        let restarts = service
            .metrics
            .families
            .actor_restarts
            .get(&tg_ingest::obs::metrics::ActorName { actor })
            .map(|c| c.get());
        assert_eq!(restarts, Some(1), "{actor}");
    }
    let texts = tg.texts_to(61);
    let count = |marker: &str| texts.iter().filter(|t| t.contains(marker)).count();
    assert_eq!(count("[greeting]"), 1, "{texts:?}");
    // The upload the uploader dropped is tried again: its `[document]` notice may repeat, the
    // saved reply does not.
    assert_eq!(count("[document has been saved]"), 1, "{texts:?}");
    for point in ACTORS {
        fail::remove(point);
    }
}
