use super::*;

#[test]
fn a_write_is_answered_only_after_it_is_synced_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in ["synced", "unsyncable"] {
        std::fs::create_dir(dir.path().join(bucket)).unwrap();
    }
    let server =
        crate::embedded_s3::EmbeddedS3::start(dir.path(), "127.0.0.1:0", "k", "sync-test").unwrap();
    // A failing fsync (as on a dying disk) for one bucket only: failpoints are process-wide.
    fail::cfg("embedded_s3.sync", "return(unsyncable)").unwrap();
    let put = |bucket: &str, key: &str| {
        let region = s3::Region::Custom {
            region: "eu-central-1".into(),
            endpoint: server.endpoint.clone(),
        };
        let creds =
            s3::creds::Credentials::new(Some("k"), Some("sync-test"), None, None, None).unwrap();
        let bucket = s3::Bucket::new(bucket, region, creds)
            .unwrap()
            .with_path_style();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(bucket.put_object(key, b"stored bytes"))
            .map(|r| r.status_code())
    };
    assert_eq!(put("synced", "docs/a.pdf").unwrap(), 200);
    let refused = put("unsyncable", "docs/a.pdf");
    fail::remove("embedded_s3.sync");
    assert!(
        refused.is_err(),
        "a write whose sync failed must not be answered as stored: {refused:?}"
    );
}

#[test]
fn only_plain_prefix_folders_are_walked() {
    assert_eq!(
        prefix_dir("telegram/context_date=2026-11-21/"),
        Some(PathBuf::from("telegram/context_date=2026-11-21"))
    );
    assert_eq!(prefix_dir("telegram/cont"), Some(PathBuf::from("telegram")));
    assert_eq!(prefix_dir("doc"), Some(PathBuf::new()));
    assert_eq!(prefix_dir("../other/"), None);
    assert_eq!(prefix_dir("a/./b/"), None);
    assert_eq!(prefix_dir("/abs/"), None);
    assert_eq!(prefix_dir("a//b/"), None);
}

#[test]
fn the_walk_stays_in_the_folder_and_keeps_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for key in [
        "t/d=1/a.json",
        "t/d=1/b.json",
        "t/d=2/c.json",
        "t/d=10/e.json",
    ] {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"{}").unwrap();
    }
    let mut keys: Vec<String> = walk(root, &root.join("t"), "t/d=1")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    assert_eq!(keys, ["t/d=1/a.json", "t/d=1/b.json", "t/d=10/e.json"]);
    assert!(walk(root, &root.join("missing"), "missing/")
        .unwrap()
        .is_empty());
}

#[test]
fn pages_follow_on_after_the_last_key_and_carry_recorded_etags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for key in ["t/d=1/a.json", "t/d=1/b.json", "t/d=1/c.json"] {
        let path = root.join("bkt").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, key).unwrap();
    }
    let info = format!(
        ".bucket-{}.object-{}.internal.json",
        URL_SAFE_NO_PAD.encode("bkt"),
        URL_SAFE_NO_PAD.encode("t/d=1/b.json")
    );
    std::fs::write(root.join(info), br#"{"e_tag":"0123abcd"}"#).unwrap();
    let dir_of = prefix_dir("t/d=1/").unwrap();
    let (page, next) = list_page(root, "bkt", &dir_of, "t/d=1/", None, 2).unwrap();
    let keys: Vec<_> = page.iter().filter_map(|o| o.key.clone()).collect();
    assert_eq!(keys, ["t/d=1/a.json", "t/d=1/b.json"]);
    assert_eq!(next.as_deref(), Some("t/d=1/b.json"));
    assert_eq!(page[0].e_tag, None);
    assert_eq!(page[1].e_tag, Some(ETag::Strong("0123abcd".into())));
    assert_eq!(page[1].size, Some(12));
    let (rest, next) = list_page(root, "bkt", &dir_of, "t/d=1/", next.as_deref(), 2).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].key.as_deref(), Some("t/d=1/c.json"));
    assert_eq!(next, None);
}
