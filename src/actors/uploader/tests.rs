use super::*;
use crate::clients::s3::StorageError;
use crate::clients::telegram::TelegramError;

#[test]
fn each_kind_of_failure_has_its_own_budget() {
    let mut b = Budgets::default();
    let tg = UploadError::Telegram(TelegramError::Api {
        method: "download",
        code: 500,
        description: String::new(),
    });
    let s3 = UploadError::from(StorageError::Request {
        op: "put",
        key: "k".into(),
        status: Some(503),
        transport: false,
        detail: String::new(),
    });
    let none = Duration::ZERO;
    let long = Duration::from_secs(60);
    assert!(!b.allows(&tg, none, long), "the Telegram budget is spent");
    assert!(b.allows(&s3, none, long), "the S3 budget is separate");
    let permanent = UploadError::Telegram(TelegramError::Api {
        method: "getFile",
        code: 400,
        description: "Bad Request: invalid file_id".into(),
    });
    assert!(!b.allows(&permanent, long, long));
    assert!(!b.allows(&UploadError::TooBig, long, long));
    let denied = UploadError::from(StorageError::Request {
        op: "put",
        key: "k".into(),
        status: Some(403),
        transport: false,
        detail: "AccessDenied".into(),
    });
    assert!(
        b.allows(&denied, none, none),
        "a refused credential pauses the upload; no budget runs out"
    );
    let client_side = UploadError::from(StorageError::Request {
        op: "put",
        key: "k".into(),
        status: None,
        transport: false,
        detail: "invalid header value".into(),
    });
    assert!(
        !b.allows(&client_side, long, long),
        "a request that could not be built fails this item"
    );
    assert!(b.allows(&UploadError::Unavailable, long, long));
    let lost = |op: &'static str, detail: &str| {
        UploadError::from(StorageError::Request {
            op,
            key: "k".into(),
            status: Some(404),
            transport: false,
            detail: detail.into(),
        })
    };
    assert!(
        b.allows(
            &lost("upload part", "<Code>NoSuchUpload</Code>"),
            long,
            long
        ),
        "a multipart upload aborted under the upload: the attempt starts over"
    );
    assert!(b.allows(&lost("complete multipart upload", "404"), long, long));
    assert!(b.allows(&lost("upload part copy", "NoSuchUpload"), long, long));
    assert!(!b.allows(&lost("put", "NoSuchBucket"), long, long));
    assert!(!b.allows(
        &lost("upload part", "<Code>NoSuchBucket</Code>"),
        long,
        long
    ));
}

#[test]
fn user_texts_say_what_failed() {
    let short = UploadError::Telegram(TelegramError::Incomplete {
        received: 5,
        expected: 10,
        basis: "Content-Length",
    });
    assert!(short.user_text().contains("ended early (5 of 10 bytes)"));
    let wait = UploadError::Telegram(TelegramError::RetryAfter {
        method: "getFile",
        seconds: 3,
    });
    assert_eq!(wait.retry_after(), Some(Duration::from_secs(3)));
    assert!(wait.user_text().contains("wait 3 s"));
}
