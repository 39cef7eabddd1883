//! What the log says at the default level: the service's story, no library noise; and the
//! JSON format for log collectors.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary on its embedded S3 server without `RUST_LOG`, sends a greeting and a
/// document, stops it, and returns its log.
fn run_and_log(extra: &[(&str, &str)]) -> String {
    let tg = FakeTelegram::start(TOKEN);
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("service.log");
    let mut vars = vec![
        ("TG_INGEST__TELEGRAM__TOKEN".to_string(), tg.token.clone()),
        ("TG_INGEST__TELEGRAM__API_URL".into(), tg.url.clone()),
        ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS".into(), "1".into()),
        (
            "TG_INGEST__DATA_DIR".into(),
            data.path().display().to_string(),
        ),
        (
            "TG_INGEST__S3__EMBEDDED__LISTEN".into(),
            "127.0.0.1:0".into(),
        ),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let bytes = random_bytes(6 * 1024 * 1024, 9);
    tg.add_file("doc1", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    let mut child = spawn_binary(&vars, &log);
    tg.push(text(&tg, 31, "hi"));
    tg.push(document(
        &tg,
        31,
        "doc1",
        Some("log.bin"),
        bytes.len() as u64,
    ));
    wait_until(WAIT, "the document saved", || {
        tg.texts_to(31)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn the_default_log_has_no_library_lines() {
    let log = run_and_log(&[]);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 4, "{log}");
    for line in &lines {
        // `[time LEVEL target] message`
        let target = line
            .strip_prefix('[')
            .and_then(|l| l.split(']').next())
            .and_then(|head| head.split_whitespace().nth(2));
        assert!(
            target.is_some_and(|t| t.starts_with("tg_ingest")),
            "a line that is not the service's: {line}\n{log}"
        );
    }
    assert!(log.contains("upload finished"), "{log}");
    assert!(!log.contains(TOKEN));
}

#[test]
fn the_json_log_is_one_object_per_line_with_ids() {
    let log = run_and_log(&[("TG_INGEST__LOG__FORMAT", "json")]);
    let mut with_update = 0;
    let mut with_chat = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{log}"));
        for field in ["time", "level", "target", "message"] {
            assert!(v[field].is_string(), "{field} missing: {line}");
        }
        assert!(v["target"].as_str().unwrap().starts_with("tg_ingest"));
        with_update += usize::from(v["update_id"].is_i64());
        with_chat += usize::from(v["chat_id"].as_i64() == Some(31));
    }
    assert!(with_update >= 2, "{log}");
    assert!(with_chat >= 2, "{log}");
}
