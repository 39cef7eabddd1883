//! `tg-ingest import`: a Telegram Desktop export into the raw archive, in both layouts; running
//! it twice writes nothing new; bad exports are refused or reported by position; the days it
//! touched are compacted by the service's next pass, however old they are.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::archive::*;
use support::*;
use tg_ingest::etl::{marker_key, parquet_key};
use tg_ingest::util::clock::Day;

/// The chat's Bot API id (the export says 4242, a supergroup).
const CHAT: i64 = -1_000_000_004_242;
/// 2025-03-10 12:00:00 UTC.
const OLD_NOON: i64 = 1_741_608_000;

/// An export of 40 messages over two days; the 18th has no date. Answers the file's text and
/// the line the 18th ends on.
fn export_text() -> (String, usize) {
    let mut lines = vec![
        "{".to_string(),
        " \"name\": \"Old team\",".into(),
        " \"type\": \"private_supergroup\",".into(),
        " \"id\": 4242,".into(),
        " \"messages\": [".into(),
    ];
    let mut bad_line = 0;
    for i in 1..=40i64 {
        let date = OLD_NOON + (i - 1) * 1800; // 20 hours: two local days
        let mut m = json!({"id": i, "type": "message", "date": "2025-03-10T12:00:00",
            "date_unixtime": date.to_string(), "from": format!("U{}", i % 4), "from_id": format!("user{}", 100 + i % 4),
            "text": ["plain and ", {"type": "bold", "text": "bold"}]});
        if i == 18 {
            m.as_object_mut().unwrap().remove("date_unixtime");
            m.as_object_mut().unwrap().remove("date");
            bad_line = lines.len() + 1;
        }
        if i == 5 {
            m["photo"] = json!("photos/photo_5.jpg");
            m["width"] = json!(640);
            m["height"] = json!(480);
        }
        if i == 6 {
            m["reply_to_message_id"] = json!(5);
        }
        let comma = if i < 40 { "," } else { "" };
        lines.push(format!("  {m}{comma}"));
    }
    lines.push(" ]".into());
    lines.push("}".into());
    (lines.join("\n"), bad_line)
}

fn import(
    env: &[(String, String)],
    file: &std::path::Path,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(env.iter().cloned())
        .arg("import")
        .arg("--export")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn imported_in(layout: &str) {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, mut vars) = archive_env(&s3);
    vars.push(("TG_INGEST__ARCHIVE__LAYOUT".into(), layout.into()));
    let settings = settings_with(&tg, &s3, data.path(), &vars);
    // The service ran here before: its store is in the data directory.
    drop(TestService::start(settings.clone()));
    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(vars.iter().cloned());
    let (text, bad_line) = export_text();
    let file = data.path().join("result.json");
    std::fs::write(&file, text).unwrap();

    let (code, out, err) = import(&env, &file, &[]);
    assert_eq!(code, Some(2), "some messages left out: {out}\n{err}");
    assert!(
        err.contains(&format!("message #18 (line {bad_line}): no date")),
        "the bad message is named by its position: {err}"
    );
    assert!(out.contains("39 messages of 1 chat(s)"), "{out}");
    let first = raw_objects(&s3, &b);
    assert!(first
        .keys()
        .all(|k| k.contains(&format!("_import_{CHAT}_"))));
    let expected_objects = if layout == "messages" { 39 } else { 2 };
    assert_eq!(first.len(), expected_objects, "{:?}", first.keys());
    assert!(
        out.contains(&format!(
            "{expected_objects} objects written, 0 already there"
        )),
        "{out}"
    );

    // Again: nothing new is written.
    let (code, out, _) = import(&env, &file, &[]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains(&format!(
            "0 objects written, {expected_objects} already there"
        )),
        "{out}"
    );
    assert_eq!(raw_objects(&s3, &b), first);

    // The bot saw message 7 live as well: the Parquet keeps the live one only.
    let mut live = group_update(900, CHAT, OLD_NOON + 6 * 1800, Some("seen live"), true);
    live["message"]["message_id"] = json!(7);
    let mut archive = settings.archive.clone();
    archive.chats.push(CHAT);
    put_raw(&s3, &b, &archive, &[live]);

    // The next pass of the service compacts both days, though they are far in the past.
    let days: Vec<Day> = ["2025-03-10", "2025-03-11"]
        .iter()
        .map(|d| Day::parse(d).unwrap())
        .collect();
    let _service = TestService::start(settings);
    let mut rows = Vec::new();
    wait_until(Duration::from_secs(60), "both days compacted", || {
        days.iter().all(|d| {
            s3.get_in(&b.enriched, &marker_key("telegram", *d))
                .is_some()
        })
    });
    let mut sources = Vec::new();
    for day in &days {
        let batches = read_parquet(
            s3.get_in(&b.enriched, &parquet_key("telegram", *day))
                .unwrap(),
        );
        rows.extend(i64s(&batches, "message_id").into_iter().flatten());
        sources.extend(strings(&batches, "source").into_iter().flatten());
        let texts = strings(&batches, "text");
        assert!(texts
            .iter()
            .flatten()
            .all(|t| t == "plain and bold" || t == "seen live"));
    }
    rows.sort_unstable();
    let mut want: Vec<i64> = (1..=40).filter(|i| *i != 18).collect();
    want.sort_unstable();
    assert_eq!(
        rows, want,
        "each message once: the live message 7 stands for its import"
    );
    assert_eq!(sources.iter().filter(|s| *s == "bot").count(), 1);
    assert_eq!(sources.iter().filter(|s| *s == "import").count(), 38);
}

#[test]
fn an_export_is_imported_once_in_the_messages_layout_and_compacted_by_the_next_pass() {
    imported_in("messages");
}

#[test]
fn an_export_is_imported_once_in_the_segments_layout_and_compacted_by_the_next_pass() {
    imported_in("segments");
}

#[test]
fn a_file_that_is_not_an_export_imports_nothing_and_says_where() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let (b, vars) = archive_env(&s3);
    let mut env = service_env(&tg, &s3, data.path(), &[]);
    env.extend(vars);
    let (text, _) = export_text();
    // Cut in the middle of the 30th message: the first 29 must not be imported.
    let cut: String = text.lines().take(34).collect::<Vec<_>>().join("\n");
    let truncated = cut[..cut.len() - 20].to_string();
    for (name, body, says) in [
        ("cut.json", truncated.as_str(), "line 34"),
        ("array.json", "[1, 2, 3]", "a Telegram Desktop export"),
        ("other.json", "{\"about\": \"x\"}", "no `messages`"),
    ] {
        let file = data.path().join(name);
        std::fs::write(&file, body).unwrap();
        let (code, _, err) = import(&env, &file, &[]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(
            err.contains(says) && err.contains("nothing was imported"),
            "{name}: {err}"
        );
    }
    assert!(s3.keys_in(&b.raw).is_empty());
    let _ = Value::Null;
}
