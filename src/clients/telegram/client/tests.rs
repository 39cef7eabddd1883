use std::path::Path;

use super::*;

#[test]
fn only_regular_files_under_the_root_are_read_from_a_local_server() {
    let (root_dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = root_dir.path();
    std::fs::create_dir(root.join("documents")).unwrap();
    std::fs::write(root.join("documents/file_1.pdf"), b"ok").unwrap();
    std::fs::write(outside.path().join("state.db"), b"secret").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("state.db"),
        root.join("documents/file_2.pdf"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
    let fifo = std::ffi::CString::new(root.join("documents/pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let read = |p: &Path| open_local_file(root, p);
    assert!(read(&root.join("documents/file_1.pdf")).is_ok());
    for (path, why) in [
        (outside.path().join("state.db"), "not under"),
        (Path::new("/proc/self/environ").to_path_buf(), "not under"),
        (root.join("documents/../../state.db"), "not under"),
        (root.join("documents/file_2.pdf"), "symbolic link"),
        (root.join("linked/state.db"), "symbolic link"),
        (root.join("documents"), "not a regular file"),
        (root.join("documents/pipe"), "not a regular file"),
        (root.to_path_buf(), "not under"),
    ] {
        match read(&path) {
            Err(e @ TelegramError::LocalFileRefused { .. }) => {
                assert!(!e.is_retryable());
                assert!(e.to_string().contains(why), "{}: {e}", path.display());
            }
            other => panic!("{} was not refused: {other:?}", path.display()),
        }
    }
    assert!(
        matches!(
            read(&root.join("documents/gone.pdf")),
            Err(TelegramError::Network { .. })
        ),
        "a file not there yet is worth another try"
    );
}

#[test]
fn envelope_ok_with_result() {
    let me: Option<User> = parse_envelope(
        "getMe",
        200,
        br#"{"ok":true,"result":{"id":1,"is_bot":true,"first_name":"b","username":"bot","extra":1}}"#,
    )
    .unwrap();
    assert_eq!(me.unwrap().username.as_deref(), Some("bot"));
}

#[test]
fn envelope_null_result_is_success() {
    let r: Option<IgnoredAny> =
        parse_envelope("editMessageText", 200, br#"{"ok":true,"result":null}"#).unwrap();
    assert!(r.is_none());
}

#[test]
fn envelope_api_error() {
    let err = parse_envelope::<User>(
        "getMe",
        401,
        br#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    )
    .unwrap_err();
    assert_eq!(err.code(), Some(401));
    assert!(!err.is_retryable());
    assert_eq!(err.to_string(), "Telegram getMe failed: 401 Unauthorized");
}

#[test]
fn envelope_retry_after() {
    let err = parse_envelope::<User>(
        "getUpdates",
        429,
        br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
    )
    .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(err.is_retryable());
}

#[test]
fn envelope_garbage_is_invalid_json() {
    let err = parse_envelope::<User>("getUpdates", 502, b"<html>Bad Gateway</html>").unwrap_err();
    assert!(matches!(
        err,
        TelegramError::InvalidJson { status: 502, .. }
    ));
    assert!(err.is_retryable());
}

#[test]
fn not_modified_is_recognised() {
    let err = parse_envelope::<IgnoredAny>(
        "editMessageText",
        400,
        br#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}"#,
    )
    .unwrap_err();
    assert!(err.is_not_modified());
}
