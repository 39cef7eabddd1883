use super::*;

fn with_vars(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(&Sources {
        env_vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Sources::default()
    })
}

const TOKEN: (&str, &str) = ("TG_INGEST__TELEGRAM__TOKEN", "123:secret-token");

#[test]
fn defaults_need_only_a_token() {
    let s = with_vars(&[TOKEN]).unwrap();
    assert_eq!(s.workers, 4);
    assert_eq!(s.telegram.poll_timeout_secs, 60);
    assert_eq!(s.telegram.token.expose(), "123:secret-token");
    assert!(s.s3.endpoint.is_empty());
    assert_eq!(s.telegram.download_limit(), Some(20 * 1024 * 1024));
}

#[test]
fn a_vk_only_deployment_needs_no_telegram_token() {
    let vk = [
        ("TG_INGEST__VK__ENABLED", "true"),
        ("TG_INGEST__VK__TOKEN", "vk1.a.community"),
        ("TG_INGEST__VK__GROUP_ID", "42"),
    ];
    let s = with_vars(&vk).unwrap();
    assert!(!s.telegram_enabled() && s.vk.enabled);
    assert_eq!(s.vk.api_url, "https://api.vk.com/method");
    assert_eq!((s.vk.api_version.as_str(), s.vk.wait), ("5.199", 25));
    let err = with_vars(&[vk[0], vk[1]]).unwrap_err().to_string();
    assert!(err.contains("vk.group_id"), "{err}");
    let err = with_vars(&[vk[0]]).unwrap_err().to_string();
    assert!(err.contains("vk.token"), "{err}");
    let both = with_vars(&[vk[0], vk[1], vk[2], TOKEN]).unwrap();
    assert!(both.telegram_enabled() && both.vk.enabled);
    assert!(both.warnings().is_empty());
    // Telegram's allowlists do not restrict VK: said at start.
    for list in [
        "TG_INGEST__SECURITY__ALLOWED_USER_IDS",
        "TG_INGEST__SECURITY__ALLOWED_CHAT_IDS",
    ] {
        let s = with_vars(&[vk[0], vk[1], vk[2], TOKEN, (list, "5")]).unwrap();
        let warnings = s.warnings();
        assert_eq!(warnings.len(), 1, "{list}: {warnings:?}");
        assert!(
            warnings[0].contains("VK bot serves every person"),
            "{warnings:?}"
        );
    }
}

#[test]
fn webhook_mode_needs_a_listen_address_a_url_and_a_valid_secret() {
    let s = with_vars(&[TOKEN]).unwrap();
    assert_eq!(s.telegram.mode, TelegramMode::Polling);
    assert_eq!(s.telegram.webhook.path, "/telegram/webhook");
    assert_eq!(s.telegram.webhook.max_connections, 40);
    let full = [
        TOKEN,
        ("TG_INGEST__TELEGRAM__MODE", "webhook"),
        ("TG_INGEST__HTTP__LISTEN", "0.0.0.0:8080"),
        (
            "TG_INGEST__TELEGRAM__WEBHOOK__URL",
            "https://bot.example.com/hook",
        ),
        ("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN", "Abc_123-xyz"),
    ];
    let s = with_vars(&full).unwrap();
    assert_eq!(s.telegram.mode, TelegramMode::Webhook);
    assert_eq!(
        format!("{:?}", s.telegram.webhook.secret_token),
        "[redacted]"
    );
    let without = |key: &str| {
        let vars: Vec<_> = full.iter().copied().filter(|(k, _)| *k != key).collect();
        with_vars(&vars).unwrap_err().to_string()
    };
    assert!(without("TG_INGEST__HTTP__LISTEN").contains("http.listen"));
    assert!(without("TG_INGEST__TELEGRAM__WEBHOOK__URL").contains("telegram.webhook.url"));
    assert!(without("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN")
        .contains("telegram.webhook.secret_token"));
    let mut bad = full.to_vec();
    bad.push(("TG_INGEST__TELEGRAM__WEBHOOK__SECRET_TOKEN", "has space"));
    let err = with_vars(&bad).unwrap_err().to_string();
    assert!(
        err.contains("telegram.webhook.secret_token") && !err.contains("has space"),
        "{err}"
    );
    let mut clash = full.to_vec();
    clash.push(("TG_INGEST__TELEGRAM__WEBHOOK__PATH", "/metrics"));
    assert!(with_vars(&clash)
        .unwrap_err()
        .to_string()
        .contains("telegram.webhook.path"));
    let err = with_vars(&[("TG_INGEST__TELEGRAM__MODE", "push")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("mode") || err.contains("push"), "{err}");
}

#[test]
fn a_postgresql_store_needs_an_s3_server_and_its_url_stays_secret() {
    let pg = (
        "TG_INGEST__STORE__URL",
        "postgres://tg:pw-secret@db:5432/tg",
    );
    let err = with_vars(&[TOKEN, pg]).unwrap_err().to_string();
    assert!(
        err.contains("s3.endpoint") && err.contains("replicas cannot share"),
        "{err}"
    );
    let s = with_vars(&[
        TOKEN,
        pg,
        ("TG_INGEST__S3__ENDPOINT", "http://seaweedfs:8333"),
    ])
    .unwrap();
    assert!(s.store.is_postgres());
    assert_eq!(s.store_name(), "postgres://tg@db:5432/tg");
    assert!(!format!("{s:?}").contains("pw-secret"));
    let err = with_vars(&[
        TOKEN,
        ("TG_INGEST__STORE__URL", "mysql://db"),
        ("TG_INGEST__S3__ENDPOINT", "http://seaweedfs:8333"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("store.url"), "{err}");
    assert!(!with_vars(&[TOKEN]).unwrap().store.is_postgres());
}

#[test]
fn missing_token_names_the_key() {
    let err = with_vars(&[]).unwrap_err().to_string();
    assert!(err.contains("telegram.token"), "{err}");
}

#[test]
fn environment_overrides_nested_keys() {
    let s = with_vars(&[
        TOKEN,
        ("TG_INGEST__WORKERS", "7"),
        ("TG_INGEST__S3__BUCKET", "docs-bucket"),
        ("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true"),
        (
            "TG_INGEST__TELEGRAM__ALLOWED_UPDATES",
            "message,callback_query",
        ),
        ("TG_INGEST__SECURITY__ALLOWED_USER_IDS", "5,-7"),
    ])
    .unwrap();
    assert_eq!(s.workers, 7);
    assert_eq!(s.s3.bucket, "docs-bucket");
    assert_eq!(s.telegram.download_limit(), None);
    assert_eq!(s.telegram.allowed_updates, ["message", "callback_query"]);
    assert_eq!(s.security.allowed_user_ids, [5, -7]);
}

#[test]
fn id_lists_take_one_or_many_ids() {
    let s = with_vars(&[
        TOKEN,
        ("TG_INGEST__ARCHIVE__CHATS", "-100500"),
        ("TG_INGEST__BUTTON__ADMINS", "42"),
        ("TG_INGEST__SECURITY__ALLOWED_CHAT_IDS", "1, 2,-100500"),
    ])
    .unwrap();
    assert_eq!(s.archive.chats, [-100500]);
    assert_eq!(s.button.admins, [42]);
    assert_eq!(s.security.allowed_chat_ids, [1, 2, -100500]);
    assert!(s.warnings().is_empty(), "no VK bot: nothing to warn of");
    assert!(with_vars(&[TOKEN, ("TG_INGEST__BUTTON__ADMINS", "1,x")]).is_err());
    let err = with_vars(&[
        TOKEN,
        ("TG_INGEST__ARCHIVE__CHATS", "-100500"),
        ("TG_INGEST__SECURITY__ALLOWED_CHAT_IDS", "1"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("archive.chats"),
        "an archived chat must be allowed: {err}"
    );
}

#[test]
fn wrong_type_and_range_name_the_key() {
    let err = with_vars(&[TOKEN, ("TG_INGEST__WORKERS", "many")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("workers"), "{err}");
    let err = with_vars(&[TOKEN, ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "0")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("telegram.poll_timeout_secs"), "{err}");
}

#[test]
fn environment_file_layer_applies() {
    let dir = std::env::temp_dir().join(format!("tg-ingest-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("staging.toml"),
        "workers = 2\n[s3]\nbucket = \"stage-docs\"\n",
    )
    .unwrap();
    let s = Settings::load(&Sources {
        settings_dir: Some(dir.clone()),
        environment: Some("staging".into()),
        env_vars: vec![(TOKEN.0.into(), TOKEN.1.into())],
        ..Sources::default()
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(s.workers, 2);
    assert_eq!(s.s3.bucket, "stage-docs");
}

#[test]
fn secrets_never_print() {
    let s = with_vars(&[TOKEN, ("TG_INGEST__S3__SECRET_KEY", "s3-very-secret")]).unwrap();
    let shown = format!("{s:?} {}", s.telegram.token);
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(!shown.contains("s3-very-secret"), "{shown}");
    assert!(shown.contains("[redacted]"));
}
