//! Shared test support: the fake Telegram server, a real S3 server, the service under test and
//! condition waits.
#![allow(dead_code)]

pub mod archive;
pub mod fake_airtable;
pub mod fake_telegram;
pub mod fake_vk;
pub mod pg;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tg_ingest::app::{FactoryHook, Service, StartupError};
use tg_ingest::clients::s3::S3Target;
use tg_ingest::config::{Settings, Sources};
use tg_ingest::embedded_s3::EmbeddedS3;
use tg_ingest::obs::metrics::Metrics;
use tg_ingest::Secret;

#[allow(unused_imports)]
pub use fake_telegram::{pattern_byte, Delivery, FakeTelegram, Fault, FileBody, Sent, Webhook};

/// An actix-web server on 127.0.0.1 (a free port) in its own thread, sharing `state` with its
/// handlers; stopped when dropped.
pub struct HttpFake {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpFake {
    /// Starts the server with `routes` and `workers` worker threads.
    pub fn start<T: Send + Sync + 'static>(
        state: Arc<T>,
        workers: usize,
        routes: fn(&mut actix_web::web::ServiceConfig),
    ) -> Self {
        use actix_web::{web, App, HttpServer};
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let data = web::Data::from(state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                        .configure(routes)
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        Self {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpFake {
    fn drop(&mut self) {
        block_on(self.handle.clone().stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The token the fake accepts in tests.
pub const TOKEN: &str = "123456:TEST-token-abcdef";

/// Waits until `cond` holds, checking every 20 ms; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that a counter reaches exactly `expected`. Counters move a moment after what the
/// fakes see (a worker counts an update handled after its reply was answered; a row is counted
/// after Airtable's answer was read), so this waits up to 10 s for the count first.
pub fn assert_count(counter: &std::sync::atomic::AtomicU64, expected: u64, what: &str) {
    wait_until(Duration::from_secs(10), what, || {
        Metrics::get(counter) >= expected
    });
    assert_eq!(Metrics::get(counter), expected, "{what}");
}

/// A runtime for one-off S3 calls from test code.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// A real S3 server for a test: SeaweedFS (or any server) when `TG_INGEST_TEST_S3_ENDPOINT`
/// is set, otherwise the in-process s3s-fs server. Each test gets its own bucket.
pub struct TestS3 {
    /// Endpoint URL.
    pub endpoint: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// The test's bucket.
    pub bucket: String,
    server: Option<EmbeddedS3>,
    dir: tempfile::TempDir,
}

impl TestS3 {
    /// Starts (or connects to) the server and creates a fresh bucket.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bucket = format!(
            "t{}-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::SeqCst),
            Instant::now().elapsed().subsec_nanos() % 1000
        );
        let (endpoint, access_key, secret_key, server) =
            match std::env::var("TG_INGEST_TEST_S3_ENDPOINT") {
                Ok(endpoint) if !endpoint.is_empty() => (
                    endpoint,
                    std::env::var("TG_INGEST_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "k".into()),
                    std::env::var("TG_INGEST_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "s".into()),
                    None,
                ),
                _ => {
                    let server = EmbeddedS3::start(
                        &dir.path().join("s3"),
                        "127.0.0.1:0",
                        "test-access",
                        "test-secret",
                    )
                    .unwrap();
                    (
                        server.endpoint.clone(),
                        "test-access".into(),
                        "test-secret".into(),
                        Some(server),
                    )
                }
            };
        let s3 = Self {
            endpoint,
            access_key,
            secret_key,
            bucket,
            server,
            dir,
        };
        block_on(s3.target().ensure_bucket()).unwrap();
        s3
    }

    /// Whether the test must be skipped because it needs the in-process server (which it
    /// stops, restarts or injects faults into); says so in the test's output when it is.
    pub fn skips_unless_in_process(&self, why: &str) -> bool {
        if !self.is_embedded() {
            eprintln!("skipped on {}: {why}", self.endpoint);
            return true;
        }
        false
    }

    /// Whether this is the in-process server (which the test may stop and restart).
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the in-process server (connections are cut), as an S3 outage.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts the in-process server again on the same address and data.
    pub fn restart(&mut self) {
        let listen = self.endpoint.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match EmbeddedS3::start(
                &self.dir.path().join("s3"),
                &listen,
                &self.access_key,
                &self.secret_key,
            ) {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restarting S3: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot restart S3: {e}"),
            }
        }
    }

    /// The target for this bucket.
    pub fn target(&self) -> S3Target {
        S3Target {
            endpoint: self.endpoint.clone(),
            region: "eu-central-1".into(),
            bucket: self.bucket.clone(),
            access_key: Secret::new(self.access_key.clone()),
            secret_key: Secret::new(self.secret_key.clone()),
            path_style: true,
            request_timeout: Duration::from_secs(60),
        }
    }

    /// An object's bytes, or `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_in(&self.bucket, key)
    }

    /// An object's bytes in another bucket of the same server.
    pub fn get_in(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let bucket = self.target().with_bucket(bucket).bucket().unwrap();
        match block_on(bucket.get_object(key)) {
            Ok(r) if r.status_code() == 200 => Some(r.bytes().to_vec()),
            _ => None,
        }
    }

    /// The `x-amz-meta-sha256` metadata of an object.
    pub fn sha256_meta(&self, key: &str) -> Option<String> {
        let bucket = self.target().bucket().unwrap();
        let (head, _) = block_on(bucket.head_object(key)).ok()?;
        head.metadata?.get("sha256").cloned()
    }

    /// Multipart uploads the server holds open in any bucket (the in-process server keeps one
    /// `.upload-<id>.json` file per open upload) or in this test's bucket (external servers).
    pub fn open_uploads(&self) -> usize {
        if self.is_embedded() {
            let dir = self.dir.path().join("s3");
            return std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| {
                            let name = e.file_name();
                            let name = name.to_string_lossy();
                            name.starts_with(".upload-") && name.ends_with(".json")
                        })
                        .count()
                })
                .unwrap_or(0);
        }
        // rust-s3 cannot read SeaweedFS's answer (no StorageClass), so the listing is read raw
        // through a presigned `GET /?uploads`.
        let bucket = self.target().bucket().unwrap();
        let query = std::collections::HashMap::from([("uploads".to_string(), String::new())]);
        let url = block_on(bucket.presign_get("/", 60, Some(query))).unwrap();
        let body = actix_rt::System::new().block_on(async move {
            let mut response = awc::Client::new().get(url).send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.body().limit(16 << 20).await.unwrap()
        });
        String::from_utf8_lossy(&body).matches("<UploadId>").count()
    }

    /// Deletes an object behind the service's back.
    pub fn delete(&self, key: &str) {
        let bucket = self.target().bucket().unwrap();
        block_on(bucket.delete_object(key)).unwrap();
    }

    /// All keys in the bucket.
    pub fn keys(&self) -> Vec<String> {
        self.keys_in(&self.bucket)
    }

    /// All keys in another bucket of the same server.
    pub fn keys_in(&self, bucket: &str) -> Vec<String> {
        let bucket = self.target().with_bucket(bucket).bucket().unwrap();
        let pages = block_on(bucket.list(String::new(), None)).unwrap();
        let mut keys: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.contents.into_iter().map(|o| o.key))
            .collect();
        keys.sort();
        keys
    }

    /// Creates another bucket on the same server; returns its name.
    pub fn create_bucket(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.bucket);
        block_on(self.target().with_bucket(&name).ensure_bucket()).unwrap();
        name
    }

    /// Whether listing the bucket fails (the server is down).
    pub fn keys_unavailable(&self) -> bool {
        let bucket = self.target().bucket().unwrap();
        block_on(bucket.list(String::new(), None)).is_err()
    }

    /// Environment variables pointing the service at this bucket.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TG_INGEST__S3__ENDPOINT".into(), self.endpoint.clone()),
            ("TG_INGEST__S3__BUCKET".into(), self.bucket.clone()),
            ("TG_INGEST__S3__ACCESS_KEY".into(), self.access_key.clone()),
            ("TG_INGEST__S3__SECRET_KEY".into(), self.secret_key.clone()),
        ]
    }
}

/// Environment variables for the service against `tg` and `s3`, plus `extra`.
pub fn service_env(
    tg: &FakeTelegram,
    s3: &TestS3,
    data_dir: &Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars = vec![
        ("TG_INGEST__TELEGRAM__TOKEN".to_string(), tg.token.clone()),
        ("TG_INGEST__TELEGRAM__API_URL".into(), tg.url.clone()),
        ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS".into(), "1".into()),
        ("TG_INGEST__TELEGRAM__STARTUP_ATTEMPTS".into(), "2".into()),
        ("TG_INGEST__S3__STARTUP_ATTEMPTS".into(), "2".into()),
        ("TG_INGEST__DATA_DIR".into(), data_dir.display().to_string()),
        ("TG_INGEST__WORKERS".into(), "2".into()),
    ];
    vars.extend(s3.env());
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

/// Settings built the way the binary builds them, from the given variables.
pub fn settings_from(vars: Vec<(String, String)>) -> Settings {
    Settings::load(&Sources {
        env_vars: vars,
        ..Sources::default()
    })
    .unwrap()
}

/// The service running in-process on its own actix system; stopped when dropped.
pub struct TestService {
    /// The service's counters.
    pub metrics: Arc<Metrics>,
    /// Where its HTTP endpoints listen, if they do.
    pub http_addr: Option<std::net::SocketAddr>,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestService {
    /// Starts the service; panics if start-up fails.
    pub fn start(settings: Settings) -> Self {
        Self::try_start(settings, None).unwrap()
    }

    /// Starts the service with a hook on its handler factory.
    pub fn try_start(settings: Settings, hook: Option<FactoryHook>) -> Result<Self, StartupError> {
        let _ = env_logger::builder().is_test(true).try_init();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            let started = system.block_on(Service::start_with(settings, hook));
            match started {
                Ok(service) => {
                    let started = (
                        service.metrics.clone(),
                        service.http_addr,
                        actix_rt::System::current(),
                    );
                    tx.send(Ok(started)).unwrap();
                    let _keep = service;
                    let _ = system.run();
                }
                Err(e) => tx.send(Err(e)).unwrap(),
            }
        });
        match rx.recv().unwrap() {
            Ok((metrics, http_addr, system)) => Ok(Self {
                metrics,
                http_addr,
                system,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A user's private text message.
pub fn text(tg: &FakeTelegram, user: i64, text: &str) -> Value {
    json!({"message": {
        "message_id": tg.next_user_message_id(),
        "from": {"id": user, "is_bot": false, "first_name": format!("User{user}"), "username": format!("user{user}")},
        "chat": {"id": user, "type": "private", "first_name": format!("User{user}")},
        "date": 1_763_800_000,
        "text": text
    }})
}

/// A user's private message with a document.
pub fn document(
    tg: &FakeTelegram,
    user: i64,
    file_id: &str,
    name: Option<&str>,
    size: u64,
) -> Value {
    let mut doc = json!({"file_id": file_id, "file_unique_id": format!("uniq{file_id}"), "mime_type": "application/pdf", "file_size": size});
    if let Some(name) = name {
        doc["file_name"] = json!(name);
    }
    json!({"message": {
        "message_id": tg.next_user_message_id(),
        "from": {"id": user, "is_bot": false, "first_name": format!("User{user}")},
        "chat": {"id": user, "type": "private"},
        "date": 1_763_800_000,
        "document": doc
    }})
}

/// A user's private message with a photo.
pub fn photo(tg: &FakeTelegram, user: i64) -> Value {
    json!({"message": {
        "message_id": tg.next_user_message_id(),
        "from": {"id": user, "is_bot": false, "first_name": format!("User{user}")},
        "chat": {"id": user, "type": "private"},
        "date": 1_763_800_000,
        "photo": [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90, "file_size": 1000}]
    }})
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The service binary as a child process with the given variables, its log in `log`.
pub fn spawn_binary(vars: &[(String, String)], log: &Path) -> ChildGuard {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    std::process::Command::new(binary())
        .env_clear()
        .envs(vars.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .map(ChildGuard)
        .unwrap()
}

/// Sends SIGTERM to a child.
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit, at most `timeout`; returns its exit code.
pub fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the service did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Number of updates in the journal of the store in `data_dir`.
pub fn journal_len(data_dir: &Path) -> u64 {
    tg_ingest::store::Store::open(&data_dir.join("state.db"))
        .unwrap()
        .journal_len()
        .unwrap()
}

/// A press on the button of `message_id` in group `chat` by `user`, with `data`.
pub fn press(chat: i64, message_id: i64, user: i64, username: Option<&str>, data: &str) -> Value {
    let mut from = json!({"id": user, "is_bot": false, "first_name": format!("First{user}"), "last_name": "Last"});
    if let Some(u) = username {
        from["username"] = json!(u);
    }
    json!({"callback_query": {
        "id": format!("q{user}-{message_id}-{}", random_bytes(4, user as u64 ^ message_id as u64).iter().map(|b| format!("{b:02x}")).collect::<String>()),
        "from": from,
        "message": {"message_id": message_id, "chat": {"id": chat, "type": "supergroup", "title": "Team"}, "date": 1_763_800_000, "text": "Press"},
        "chat_instance": "42",
        "data": data
    }})
}

/// `n` pseudo-random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Path of the service binary built for the tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tg-ingest"))
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                queue.push(path);
            } else if std::fs::read(&path)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                found.push(path);
            }
        }
    }
    found
}

/// Reads one number from the store in `data_dir` (read-only, beside the running service); 0
/// when the store or the table does not exist yet.
fn store_number(data_dir: &Path, sql: &str, kind: &str) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(db) = rusqlite::Connection::open_with_flags(data_dir.join("state.db"), flags) else {
        return 0;
    };
    db.query_row(sql, [kind], |r| r.get::<_, Option<i64>>(0))
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Items of the outbox `kind` still waiting for delivery.
pub fn outbox_pending(data_dir: &Path, kind: &str) -> i64 {
    store_number(
        data_dir,
        "SELECT COUNT(*) FROM outbox WHERE kind = ?1 AND delivered_at IS NULL AND dead_reason IS NULL",
        kind,
    )
}

/// The most failed deliveries of any item of the outbox `kind`.
pub fn outbox_max_attempts(data_dir: &Path, kind: &str) -> i64 {
    store_number(
        data_dir,
        "SELECT MAX(attempts) FROM outbox WHERE kind = ?1",
        kind,
    )
}

/// Whether the service in `data_dir` is idle: nothing journaled, nothing waiting in the
/// outbox `kind`. Once it holds, no further effect can come from the updates sent so far.
pub fn settled(data_dir: &Path, kind: &str) -> bool {
    journal_len(data_dir) == 0 && outbox_pending(data_dir, kind) == 0
}

/// A press in the private chat of `user` on the bot's message `message_id`, with `data`;
/// `nonce` makes the press id unique.
pub fn private_press(user: i64, message_id: i64, data: &str, nonce: u64) -> Value {
    json!({"callback_query": {
        "id": format!("pq{user}-{message_id}-{nonce}"),
        "from": {"id": user, "is_bot": false, "first_name": format!("User{user}")},
        "message": {"message_id": message_id, "chat": {"id": user, "type": "private"}, "date": 1_763_800_000, "text": "saved"},
        "chat_instance": "7",
        "data": data
    }})
}

/// SHA-256 of `bytes`, lowercase hex (as the service stores it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST url` with a JSON `body` and, when given, the webhook secret header; answers the status
/// and the body, or the error when no answer came. Plain HTTP only.
pub fn http_post(url: &str, secret: Option<&str>, body: &[u8]) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("not an http:// URL"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: std::net::SocketAddr = host
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(std::io::Error::other)?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(secret) = secret {
        request.push_str(&format!("X-Telegram-Bot-Api-Secret-Token: {secret}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on a local HTTP server; answers the status and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}
