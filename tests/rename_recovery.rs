//! Renames under faults and at size: a crash between the server-side copy and the deletion of
//! the old key is completed on replay, and a large object is renamed with a multipart copy
//! whose bytes never pass through the service. (Own binary: the failpoint is process-wide.)

mod support;

use std::time::Duration;

use support::*;
use tg_ingest::obs::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(30);

fn start(
    tg: &FakeTelegram,
    s3: &TestS3,
    data: &std::path::Path,
    extra: &[(&str, &str)],
) -> TestService {
    TestService::start(settings_from(service_env(tg, s3, data, extra)))
}

fn wait_for(tg: &FakeTelegram, user: i64, marker: &str) -> String {
    let mut found = None;
    wait_until(WAIT, marker, || {
        found = tg.texts_to(user).into_iter().find(|t| t.contains(marker));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_crash_between_copy_and_delete_is_completed_on_replay() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let service = start(&tg, &s3, data.path(), &[]);
    let bytes = random_bytes(300_000, 11);
    tg.add_file("x-1", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    tg.push(text(&tg, 51, "hi"));
    tg.push(document(
        &tg,
        51,
        "x-1",
        Some("draft.bin"),
        bytes.len() as u64,
    ));
    wait_for(&tg, 51, "[document has been saved]");
    tg.push(text(&tg, 51, "/rename"));
    wait_for(&tg, 51, "[rename]");
    // Every attempt now stops right after the copy, as a crash there would.
    fail::cfg("rename.after_copy", "return").unwrap();
    tg.push(text(&tg, 51, "final"));
    wait_until(WAIT, "the copy", || s3.keys() == ["draft.bin", "final.bin"]);
    drop(service);
    fail::remove("rename.after_copy");
    let _service = start(&tg, &s3, data.path(), &[]);
    let done = wait_for(&tg, 51, "[document has been renamed]");
    assert!(
        done.contains("«draft.bin»") && done.contains("«final.bin»"),
        "{done}"
    );
    wait_until(WAIT, "the old key deleted", || s3.keys() == ["final.bin"]);
    assert_eq!(s3.get("final.bin").unwrap(), bytes);
    // The store follows: the file is listed under its new name.
    tg.push(text(&tg, 51, "/files"));
    let list = wait_for(&tg, 51, "[files]");
    assert!(
        list.contains("final.bin") && !list.contains("draft.bin"),
        "{list}"
    );
}

#[test]
fn a_listing_while_a_rename_waits_for_its_last_step_keeps_the_file() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    // 61 is an admin: `/files all` lists everyone's files.
    let _service = start(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__BUTTON__ADMINS", "61")],
    );
    let bytes = random_bytes(200_000, 12);
    tg.add_file("w-1", FileBody::Bytes(std::sync::Arc::new(bytes.clone())));
    tg.push(text(&tg, 52, "hi"));
    tg.push(document(
        &tg,
        52,
        "w-1",
        Some("waiting.bin"),
        bytes.len() as u64,
    ));
    wait_for(&tg, 52, "[document has been saved]");
    tg.push(text(&tg, 52, "/rename"));
    wait_for(&tg, 52, "[rename]");
    // Each attempt now stops after the old key is deleted, before the store learns the new
    // one: the object is only under the new key, the file still under the old one.
    fail::cfg("rename.after_delete", "return").unwrap();
    tg.push(text(&tg, 52, "renamed"));
    wait_until(WAIT, "copied and deleted", || s3.keys() == ["renamed.bin"]);
    tg.push(text(&tg, 61, "hi"));
    tg.push(text(&tg, 61, "/files all"));
    let list = wait_for(&tg, 61, "[files]");
    assert!(list.contains("waiting.bin"), "listed while renamed: {list}");
    fail::remove("rename.after_delete");
    wait_for(&tg, 52, "[document has been renamed]");
    tg.push(text(&tg, 52, "/files"));
    let mine = wait_for(&tg, 52, "[files] Your files");
    assert!(
        mine.contains("renamed.bin") && mine.contains("(1–1 of 1)"),
        "the file is kept under its new name: {mine}"
    );
}

#[test]
fn a_40_mib_object_is_renamed_server_side_in_parts() {
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    // Objects over 16 MiB are copied in parts of 8 MiB.
    let service = start(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__S3__SINGLE_COPY_MAX_MIB", "16"),
            ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
        ],
    );
    tg.record_calls(true);
    const SIZE: u64 = 40 * 1024 * 1024;
    tg.add_file("big-1", FileBody::Pattern(SIZE));
    tg.push(text(&tg, 52, "hi"));
    tg.push(document(&tg, 52, "big-1", Some("video.mp4"), SIZE));
    wait_for(&tg, 52, "[document has been saved]");
    let sha = s3.sha256_meta("video.mp4").expect("sha256 metadata");
    tg.push(text(&tg, 52, "/rename holiday"));
    // Five part copies: on a loaded CI machine SeaweedFS once took longer than the usual 30 s.
    wait_until(
        Duration::from_secs(90),
        "[document has been renamed]",
        || {
            tg.texts_to(52)
                .iter()
                .any(|t| t.contains("[document has been renamed]"))
        },
    );
    assert_eq!(s3.keys(), ["holiday.mp4"]);
    assert_eq!(
        tg.calls("download").len(),
        1,
        "the file was downloaded once, for the upload; the rename moved no bytes"
    );
    assert_eq!(tg.calls("getFile").len(), 1);
    let stored = s3.get("holiday.mp4").unwrap();
    assert_eq!(stored.len() as u64, SIZE);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64)),
        "the copy holds the same bytes"
    );
    assert_eq!(s3.sha256_meta("holiday.mp4"), Some(sha));
    assert_eq!(s3.open_uploads(), 0, "the multipart copy was completed");
    let m = &service.metrics;
    assert_eq!(Metrics::get(&m.objects_copied), 1);
    assert_eq!(Metrics::get(&m.copy_parts), 5, "40 MiB in parts of 8 MiB");
}
