//! Benchmarks of the document bot, printed as figures (not timed tests).
//!
//! `cargo bench --bench ingest` runs both:
//! - text: updates handled per second end to end against the fake Telegram server
//!   (`workers = 4`), then p50/p99 latency from an update being queued to its reply while
//!   updates arrive at a steady rate;
//! - document: a 1 GiB document streamed by the real binary (default settings, local Bot API
//!   mode) from the fake Telegram file endpoint into S3, in MB/s, as a ratio to an 8-way
//!   parallel multipart upload of the same bytes, in parts of the same size, to the same server
//!   (rust-s3 on a multi-threaded runtime), and the binary's peak RSS.
//!
//! - recovery: how long a start takes to replay and answer 1,000 updates left in the journal
//!   by a previous run;
//! - etl: `BENCH_ETL_MESSAGES` (default 100,000) group messages of one day go through the
//!   service, which archives them; then `tg-ingest etl --date` turns the day into Parquet,
//!   once on the service's data directory (the archive's local copies) and once on an empty
//!   one (every object fetched from S3): rows per second and the process's peak RSS.
//!   `BENCH_ETL_LAYOUT=segments` archives them in the segments layout; `BENCH_ETL_CHATS`
//!   (default 1) spreads them over that many archived chats.
//!
//! - backlog: the binary starts with 200,000 text updates and 50 documents of 20 MB waiting:
//!   the time to handle them all and the process's peak RSS (target: 150 MiB or less).
//!
//! - store: the text throughput of one process on SQLite and on PostgreSQL (a server started
//!   for the run), `BENCH_STORE_UPDATES` (default 5,000) updates from 500 chats each, with the
//!   CPU time of the process and of the PostgreSQL server.
//!
//! - replicas: 1, 2 and 3 replicas of the binary on one PostgreSQL store (a server started for
//!   the run) and one S3 server: `BENCH_REPLICA_TEXTS` (default 6,000) texts from 500 chats,
//!   then `BENCH_REPLICA_ARCHIVED` (default 6,000) messages of 50 archived group chats (one
//!   raw object each); updates/s and archived messages/s, with the CPU time of the replicas,
//!   of this process (the fakes, and the in-process S3 server unless TG_INGEST_TEST_S3_ENDPOINT
//!   names one) and of the PostgreSQL server.
//!
//! - claims: three replicas on one PostgreSQL store; one archived chat has
//!   `BENCH_CLAIMS_BACKLOG` (default 200,000) updates journaled before they start, and 50
//!   ordinary chats each send a text a second for `BENCH_CLAIMS_SECS` (default 30) s. Prints
//!   claim rounds per second (all replicas), the PostgreSQL server's CPU, the backlog handled
//!   meanwhile, and the p50/p99 latency of the ordinary chats' replies.
//!
//! - import: `tg-ingest import` of a Telegram Desktop export of `BENCH_IMPORT_MIB` (default
//!   1024) MiB in the `BENCH_IMPORT_LAYOUT` (default segments) layout: messages per second and
//!   the process's peak RSS.
//!
//! `cargo bench --bench ingest -- text` (or `document`, `recovery`, `etl`, `backlog`, `store`,
//! `replicas`, `claims`, `import`) runs one. `BENCH_UPDATES` (default 20000) and `BENCH_DOC_MIB` (default 1024) change the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::pin::Pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use support::fake_telegram::pattern_byte;
use support::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = args.is_empty();
    if all || args.iter().any(|a| a == "text") {
        bench_text();
    }
    if all || args.iter().any(|a| a == "document") {
        bench_document();
    }
    if all || args.iter().any(|a| a == "recovery") {
        bench_recovery();
    }
    if all || args.iter().any(|a| a == "etl") {
        bench_etl();
    }
    if all || args.iter().any(|a| a == "backlog") {
        bench_backlog();
    }
    if all || args.iter().any(|a| a == "store") {
        bench_store();
    }
    if all || args.iter().any(|a| a == "replicas") {
        bench_replicas();
    }
    if all || args.iter().any(|a| a == "claims") {
        bench_claims();
    }
    if all || args.iter().any(|a| a == "import") {
        bench_import();
    }
}

/// Writes a Telegram Desktop export of about `mib` MiB: one supergroup, messages of text
/// parts, 100,000 a day. Answers the file's size and its message count.
fn write_export(path: &std::path::Path, mib: u64) -> (u64, u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    write!(out, "{{\n \"name\": \"Big team\",\n \"type\": \"private_supergroup\",\n \"id\": 777000,\n \"messages\": [").unwrap();
    let (target, mut written, mut n) = (mib << 20, 0u64, 0u64);
    let start = 1_790_000_000i64;
    while written < target {
        n += 1;
        // In time order, as the app exports: 100,000 messages a day.
        let date = start + n as i64 * 86_400 / 100_000;
        let m = serde_json::json!({
            "id": n, "type": "message", "date": "2026-09-21T12:00:00", "date_unixtime": date.to_string(),
            "from": "Member", "from_id": format!("user{}", 1000 + n % 300),
            "text": ["message number ", {"type": "bold", "text": n.to_string()}, " with some words in it, about as long as a chat line"],
            "text_entities": [{"type": "plain", "text": "message number "}, {"type": "bold", "text": n.to_string()}]
        });
        let line = format!("{}\n  {m}", if n == 1 { "" } else { "," });
        written += line.len() as u64;
        out.write_all(line.as_bytes()).unwrap();
    }
    out.write_all(b"\n ]\n}\n").unwrap();
    out.flush().unwrap();
    (std::fs::metadata(path).unwrap().len(), n)
}

/// `tg-ingest import` of a large export (`BENCH_IMPORT_MIB`, default 1024) in the segments
/// layout (`BENCH_IMPORT_LAYOUT`), against TG_INGEST_TEST_S3_ENDPOINT or the embedded server:
/// messages per second and the process's peak RSS.
fn bench_import() {
    let mib = env_or("BENCH_IMPORT_MIB", 1024);
    let layout = std::env::var("BENCH_IMPORT_LAYOUT").unwrap_or_else(|_| "segments".into());
    let data = tempfile::tempdir().unwrap();
    let export = data.path().join("result.json");
    let (bytes, n) = write_export(&export, mib);
    let external = std::env::var("TG_INGEST_TEST_S3_ENDPOINT").is_ok_and(|e| !e.is_empty());
    let mut vars: Vec<(String, String)> = vec![
        ("TG_INGEST__TELEGRAM__TOKEN".into(), TOKEN.into()),
        (
            "TG_INGEST__DATA_DIR".into(),
            data.path().display().to_string(),
        ),
        ("TG_INGEST__ARCHIVE__CHATS".into(), "-1000000777000".into()),
        ("TG_INGEST__ARCHIVE__LAYOUT".into(), layout.clone()),
        (
            "TG_INGEST__S3__EMBEDDED__LISTEN".into(),
            "127.0.0.1:0".into(),
        ),
    ];
    let _s3 = external.then(|| {
        let s3 = TestS3::start();
        vars.extend(s3.env());
        vars.push((
            "TG_INGEST__ARCHIVE__RAW_BUCKET".into(),
            s3.create_bucket("raw"),
        ));
        vars.push((
            "TG_INGEST__ARCHIVE__ENRICHED_BUCKET".into(),
            s3.create_bucket("enriched"),
        ));
        s3
    });
    let server = if external {
        "S3 server at TG_INGEST_TEST_S3_ENDPOINT"
    } else {
        "embedded S3 server"
    };
    let export_arg = export.display().to_string();
    let (summary, took, peak) = run_sampled(&vars, &["import", "--export", &export_arg]);
    let summary = summary.expect("import failed");
    assert!(summary.contains(&format!(" {n} messages")), "{summary}");
    println!(
        "import ({server}, {layout} layout): a {:.0} MiB export of {n} messages (read twice) in {:.1} s = {:.0} messages/s, {:.1} MiB/s; peak RSS {:.1} MiB; {}",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        bytes as f64 / 1048576.0 / took.as_secs_f64(),
        peak,
        summary.lines().next().unwrap_or("")
    );
}

/// Three replicas work a 200,000-update backlog of one archived chat while 50 ordinary chats
/// talk: what claim rounds cost PostgreSQL, and what the ordinary chats wait.
fn bench_claims() {
    use tg_ingest::store::db::{Postgres, Sql};
    let backlog = env_or("BENCH_CLAIMS_BACKLOG", 200_000) as i64;
    let secs = env_or("BENCH_CLAIMS_SECS", 30) as usize;
    let pg = support::pg::TestPostgres::start();
    let tg = FakeTelegram::start(TOKEN);
    tg.record_calls(false);
    let s3 = TestS3::start();
    let raw = s3.create_bucket("raw");
    let enriched = s3.create_bucket("enriched");
    let big_chat = -100_777i64;

    // The backlog, older than anything the ordinary chats send (lower update ids).
    let started = Instant::now();
    let mut store = tg_ingest::store::Store::connect(&pg.url).unwrap();
    let noon = 1_795_262_400i64; // 2026-11-21 12:00 UTC
    let bodies: Vec<(i64, String)> = (1..=backlog)
        .map(|id| {
            let body = serde_json::json!({"update_id": id, "message": {
                "message_id": id,
                "chat": {"id": big_chat, "type": "supergroup", "title": "Busy"},
                "date": noon,
                "from": {"id": 7000 + id % 40, "is_bot": false, "first_name": "Name"},
                "text": format!("archived message {id}"),
            }});
            (id, body.to_string())
        })
        .collect();
    for chunk in bodies.chunks(5_000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(id, raw)| (*id, raw.as_str(), Some(big_chat), Some(noon)))
            .collect();
        store.journal_dated(&rows).unwrap();
    }
    drop(bodies);
    println!(
        "claims: {backlog} updates of one archived chat journaled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let archive_chats = big_chat.to_string();
    let children: Vec<ChildGuard> = (0..3)
        .map(|i| {
            let (id, listen) = (format!("r{i}"), format!("127.0.0.1:{}", ports[i]));
            let vars = service_env(
                &tg,
                &s3,
                dirs[i].path(),
                &[
                    ("TG_INGEST__STORE__URL", pg.url.as_str()),
                    ("TG_INGEST__STORE__REPLICA_ID", id.as_str()),
                    ("TG_INGEST__HTTP__LISTEN", listen.as_str()),
                    ("TG_INGEST__WORKERS", "4"),
                    ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
                    ("TG_INGEST__ARCHIVE__CHATS", archive_chats.as_str()),
                    ("TG_INGEST__ARCHIVE__RAW_BUCKET", raw.as_str()),
                    ("TG_INGEST__ARCHIVE__ENRICHED_BUCKET", enriched.as_str()),
                    ("TG_INGEST__ARCHIVE__CATCH_UP_DAYS", "0"),
                ],
            );
            spawn_binary(&vars, &dirs[i].path().join("replica.log"))
        })
        .collect();
    let addrs: Vec<std::net::SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    for addr in &addrs {
        wait_until(Duration::from_secs(60), "replica ready", || {
            std::net::TcpStream::connect(addr).is_ok() && http_get(*addr, "/readyz").0 == 200
        });
    }
    let rounds = || -> u64 {
        addrs
            .iter()
            .map(|addr| {
                let (_, body) = http_get(*addr, "/metrics");
                body.lines()
                    .filter(|l| l.starts_with("tg_ingest_claim_rounds_total "))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>() as u64
            })
            .sum()
    };
    let db = Postgres::connect(&pg.url).unwrap();
    let left = || -> i64 {
        db.first(
            &format!("SELECT COUNT(*) FROM journal WHERE chat_id = {big_chat}"),
            &[],
        )
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
    };
    // The first claims taken, then the window starts.
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let (pg_before, replicas_before) = (cpu_secs(&postgres_pids()), cpu_secs(&pids));
    let (rounds_before, left_before) = (rounds(), left());
    tg.take_latencies();
    let start = Instant::now();
    let people = 50i64;
    let sent_before = tg.sent_count();
    let total = secs * people as usize;
    let interval = Duration::from_secs(1).div_f64(people as f64);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let user = 60_000 + i as i64 % people;
        // Above the backlog's ids, as updates arriving after it are.
        let body = text(&tg, user, "hello");
        if i == 0 {
            let mut update = body;
            update["update_id"] = serde_json::json!(backlog + 1_000_000);
            tg.push_raw(backlog + 1_000_000, update);
        } else {
            tg.push(body);
        }
    }
    // Every reply, or what came within two minutes more (the figures say how many).
    let deadline = Instant::now() + Duration::from_secs(120);
    while tg.sent_count() < sent_before + total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (pg_cpu, replicas_cpu) = (
        cpu_secs(&postgres_pids()) - pg_before,
        cpu_secs(&pids) - replicas_before,
    );
    let (rounds_n, left_after) = (rounds() - rounds_before, left());
    let answered = tg.sent_count() - sent_before;
    let mut lat = tg.take_latencies();
    lat.sort();
    println!(
        "claims: 3 replicas, {secs} s of 50 ordinary chats (1 text/s each) beside a {backlog}-update archived backlog: \
         {:.0} claim rounds/s (all replicas), PostgreSQL CPU {:.0}%, replicas CPU {:.0}% (of one core; {} cores), \
         backlog handled {:.0}/s ({left_after} left)",
        rounds_n as f64 / elapsed,
        pg_cpu / elapsed * 100.0,
        replicas_cpu / elapsed * 100.0,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        (left_before - left_after) as f64 / elapsed,
    );
    println!(
        "claims: ordinary texts answered: {answered} of {total} within 2 min of the last; latency of {} of them: p50 = {:.1} ms, p99 = {:.1} ms, max = {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Idle: the backlog taken away, nothing arrives; what do the replicas cost then?
    db.batch("DELETE FROM journal").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let idle_secs = 20.0;
    let (pg_before, rounds_before) = (cpu_secs(&postgres_pids()), rounds());
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    println!(
        "claims: idle, 3 replicas: {:.1} claim rounds/s (all replicas), PostgreSQL CPU {:.1}%",
        (rounds() - rounds_before) as f64 / idle_secs,
        (cpu_secs(&postgres_pids()) - pg_before) / idle_secs * 100.0
    );
    for mut child in children {
        sigterm(&child);
        let _ = wait_exit(&mut child, Duration::from_secs(60));
    }
}

/// Delivered archive objects in the PostgreSQL store at `url`.
fn archived_in(db: &tg_ingest::store::db::Postgres) -> u64 {
    use tg_ingest::store::db::Sql;
    let row = db
        .first(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'archive' AND delivered_at IS NOT NULL",
            &[],
        )
        .unwrap()
        .unwrap();
    row.i64(0).unwrap() as u64
}

/// 1, 2 and 3 replicas of the binary: texts per second, then archived messages per second.
fn bench_replicas() {
    use tg_ingest::store::db::{Postgres, Sql};
    let texts = env_or("BENCH_REPLICA_TEXTS", 6_000) as usize;
    let archived = env_or("BENCH_REPLICA_ARCHIVED", 6_000) as i64;
    let pg = support::pg::TestPostgres::start();
    let chats: Vec<String> = (0..50).map(|c| (-100_500 - c).to_string()).collect();
    let archive_chats = chats.join(",");
    for n in 1..=3usize {
        // A database of its own for each run.
        let admin = Postgres::connect(&pg.url).unwrap();
        admin
            .batch(&format!("CREATE DATABASE replicas{n}"))
            .unwrap();
        let url = format!("{}/replicas{n}", pg.url.rsplit_once('/').unwrap().0);
        let tg = FakeTelegram::start(TOKEN);
        tg.record_calls(false);
        let s3 = TestS3::start();
        let raw = s3.create_bucket("raw");
        let enriched = s3.create_bucket("enriched");
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut children: Vec<std::process::Child> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let id = format!("r{i}");
                let vars = service_env(
                    &tg,
                    &s3,
                    dir.path(),
                    &[
                        ("TG_INGEST__STORE__URL", url.as_str()),
                        ("TG_INGEST__STORE__REPLICA_ID", id.as_str()),
                        ("TG_INGEST__WORKERS", "4"),
                        ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
                        ("TG_INGEST__ARCHIVE__CHATS", archive_chats.as_str()),
                        ("TG_INGEST__ARCHIVE__RAW_BUCKET", raw.as_str()),
                        ("TG_INGEST__ARCHIVE__ENRICHED_BUCKET", enriched.as_str()),
                        ("TG_INGEST__ARCHIVE__CATCH_UP_DAYS", "0"),
                    ],
                );
                spawn_service(vars)
            })
            .collect();
        let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
        let store = tg_ingest::store::Store::connect(&url).unwrap();
        wait_until(Duration::from_secs(60), "a replica polls", || {
            store
                .lease("telegram-poller")
                .unwrap()
                .is_some_and(|l| l.remaining_ms > 0)
        });
        let me = std::process::id();
        // A SeaweedFS server (TG_INGEST_TEST_S3_ENDPOINT) is counted with this process.
        let cpu = || {
            let fakes = cpu_secs(&[me]) + cpu_secs(&pids_named("weed"));
            (cpu_secs(&pids), fakes, cpu_secs(&postgres_pids()))
        };
        let report = |what: &str, count: f64, elapsed: f64, before: (f64, f64, f64)| {
            let after = cpu();
            println!(
                "replicas: {n} replica(s): {what} {:.0}/s ({count} in {elapsed:.2} s); CPU: replicas {:.0}%, \
                 fakes and S3 server {:.0}%, PostgreSQL server {:.0}% (of one core; the machine has {} cores)",
                count / elapsed,
                (after.0 - before.0) / elapsed * 100.0,
                (after.1 - before.1) / elapsed * 100.0,
                (after.2 - before.2) / elapsed * 100.0,
                std::thread::available_parallelism().map_or(0, |p| p.get())
            );
        };

        let bodies: Vec<_> = (0..texts)
            .map(|i| text(&tg, 40_000 + (i % 500) as i64, "hello"))
            .collect();
        let before = cpu();
        let started = Instant::now();
        tg.push_many(bodies);
        wait_until(Duration::from_secs(600), "all replies", || {
            tg.sent_count() >= texts
        });
        report(
            "texts",
            texts as f64,
            started.elapsed().as_secs_f64(),
            before,
        );

        let noon = 1_795_262_400i64; // 2026-11-21 12:00 UTC
        let before = cpu();
        let started = Instant::now();
        for i in 0..archived {
            let chat = -100_500 - i % 50;
            tg.push_raw(
                1_000_000 + i,
                serde_json::json!({"update_id": 1_000_000 + i, "message": {
                    "message_id": i + 1,
                    "chat": {"id": chat, "type": "supergroup", "title": "Team"},
                    "date": noon + i,
                    "from": {"id": 7000 + i % 40, "is_bot": false, "first_name": "Name"},
                    "text": format!("archived message {i}"),
                }}),
            );
        }
        let db = Postgres::connect(&url).unwrap();
        wait_until(Duration::from_secs(600), "all archived", || {
            std::thread::sleep(Duration::from_millis(100));
            archived_in(&db) >= archived as u64
        });
        report(
            "archived messages",
            archived as f64,
            started.elapsed().as_secs_f64(),
            before,
        );
        for child in &mut children {
            // SAFETY: signalling a child process this bench started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in &mut children {
            let _ = child.wait();
        }
    }
}

/// CPU seconds (user + system) of the processes whose `stat` files `pids` name.
fn cpu_secs(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which ends with the last ')'.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

/// The PostgreSQL server's processes (all run as the `postgres` user here).
fn postgres_pids() -> Vec<u32> {
    pids_named("postgres")
}

/// The processes whose command is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// One process handling a backlog of texts on SQLite, then on PostgreSQL.
fn bench_store() {
    let n = env_or("BENCH_STORE_UPDATES", 5_000) as usize;
    let pg = support::pg::TestPostgres::start();
    for engine in ["SQLite", "PostgreSQL"] {
        let tg = FakeTelegram::start(TOKEN);
        tg.record_calls(false);
        let s3 = TestS3::start();
        let data = tempfile::tempdir().unwrap();
        let mut extra = vec![
            ("TG_INGEST__WORKERS", "4"),
            ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "10"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ];
        if engine == "PostgreSQL" {
            extra.push(("TG_INGEST__STORE__URL", pg.url.as_str()));
        }
        let _service =
            TestService::start(settings_from(service_env(&tg, &s3, data.path(), &extra)));
        let bodies: Vec<_> = (0..n)
            .map(|i| text(&tg, 30_000 + (i % 500) as i64, "hello"))
            .collect();
        let me = std::process::id();
        let (cpu_before, pg_before) = (cpu_secs(&[me]), cpu_secs(&postgres_pids()));
        let started = Instant::now();
        tg.push_many(bodies);
        wait_until(Duration::from_secs(600), "all replies", || {
            tg.sent_count() >= n
        });
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_secs(&[me]) - cpu_before;
        let pg_cpu = cpu_secs(&postgres_pids()) - pg_before;
        println!(
            "store: {engine}, one process: {n} texts from 500 chats in {elapsed:.2} s = {:.0} updates/s; \
             CPU: service and fakes {:.0}%, PostgreSQL server {:.0}% (of one core)",
            n as f64 / elapsed,
            cpu / elapsed * 100.0,
            pg_cpu / elapsed * 100.0
        );
    }
}

/// The real binary (default settings, rate limits off) meets a backlog: `BENCH_BACKLOG_UPDATES`
/// (default 200,000) text updates from 1,000 chats and `BENCH_BACKLOG_DOCS` (default 50)
/// documents of 20 MB from as many users (first, downloading at about 5 MB/s each), all waiting
/// when it starts. Prints the time to handle
/// everything and the process's peak RSS (target: 150 MiB or less).
fn bench_backlog() {
    let n = env_or("BENCH_BACKLOG_UPDATES", 200_000) as usize;
    let docs = env_or("BENCH_BACKLOG_DOCS", 50) as i64;
    const DOC: u64 = 20_000_000;
    let tg = FakeTelegram::start(TOKEN);
    tg.record_calls(false);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let users = 1000;
    let mut bodies: Vec<_> = (0..n)
        .map(|i| text(&tg, 10_000 + (i % users) as i64, "hello"))
        .collect();
    // The documents come first, all at once, and download at about 5 MB/s each, so they are
    // all on their way together while the texts pour in behind them.
    let mut all: Vec<_> = (0..docs)
        .map(|d| {
            let id = format!("doc{d}");
            tg.add_file(&id, FileBody::Pattern(DOC));
            document(&tg, 50_000 + d, &id, Some(&format!("{id}.bin")), DOC)
        })
        .collect();
    all.append(&mut bodies);
    tg.set_file_pace(Some(Duration::from_millis(50)));
    tg.push_many(all);
    let started = Instant::now();
    let mut child = spawn_service(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    ));
    let saved = |tg: &FakeTelegram| {
        (0..docs)
            .filter(|d| {
                tg.texts_to(50_000 + d)
                    .iter()
                    .any(|t| t.contains("[document has been saved]"))
            })
            .count() as i64
    };
    wait_until(Duration::from_secs(1800), "backlog handled", || {
        tg.pending_updates() == 0 && tg.sent_count() >= n && saved(&tg) == docs
    });
    let took = started.elapsed();
    let rss = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "backlog: {n} text updates from {users} chats and {docs} documents of 20 MB, all waiting at \
         start, handled in {:.1} s by the binary (default settings, rate limits off); \
         service peak RSS {:.1} MiB (target <= 150 MiB)",
        took.as_secs_f64(),
        rss as f64 / 1024.0
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn bench_text() {
    let n = env_or("BENCH_UPDATES", 20_000) as usize;
    let tg = FakeTelegram::start(TOKEN);
    tg.record_calls(false);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    let settings = settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__WORKERS", "4"),
            ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "10"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ],
    ));
    let _service = TestService::start(settings);
    let users = 1000;

    // Throughput: a backlog of n updates from `users` chats.
    let bodies: Vec<_> = (0..n)
        .map(|i| text(&tg, 10_000 + (i % users) as i64, "hello"))
        .collect();
    let started = Instant::now();
    tg.push_many(bodies);
    wait_until(Duration::from_secs(600), "all replies", || {
        tg.sent_count() >= n
    });
    let elapsed = started.elapsed();
    let rate = n as f64 / elapsed.as_secs_f64();
    tg.take_latencies();
    println!(
        "text: {n} updates from {users} chats handled end to end in {:.2} s = {rate:.0} updates/s (workers=4, rate limits off)",
        elapsed.as_secs_f64()
    );

    // Latency: updates arriving steadily at half the measured rate for about 5 s.
    let paced = (rate / 2.0).clamp(100.0, 20_000.0);
    let count = (paced * 5.0) as usize;
    let before = tg.sent_count();
    let interval = Duration::from_secs_f64(1.0 / paced);
    let start = Instant::now();
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tg.push(text(&tg, 20_000 + (i % users) as i64, "hello"));
    }
    wait_until(Duration::from_secs(120), "paced replies", || {
        tg.sent_count() >= before + count
    });
    let mut lat = tg.take_latencies();
    lat.sort();
    println!(
        "text: latency from update to reply at {paced:.0} updates/s over {count} updates: p50 = {:.1} ms, p99 = {:.1} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
}

/// An `AsyncRead` producing the same bytes as the fake's generated files.
struct PatternReader {
    pos: u64,
    len: u64,
}

impl tokio::io::AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.len - self.pos);
        let start = self.pos;
        let bytes: Vec<u8> = (start..start + n).map(pattern_byte).collect();
        buf.put_slice(&bytes);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Uploads `len` pattern bytes as `key` in parts of `part` bytes, `ways` parts at once, on a
/// multi-threaded runtime (each part generated where it is sent).
fn parallel_multipart(bucket: &s3::Bucket, key: &str, len: u64, part: u64, ways: usize) {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let upload = bucket
            .initiate_multipart_upload(key, "application/octet-stream")
            .await
            .unwrap();
        let id = upload.upload_id;
        let count = len.div_ceil(part);
        let mut parts: Vec<s3::serde_types::Part> = futures_util::stream::iter(0..count)
            .map(|n| {
                let (bucket, key, id) = (bucket.clone(), key.to_string(), id.clone());
                tokio::spawn(async move {
                    let start = n * part;
                    let mut reader = PatternReader {
                        pos: start,
                        len: (start + part).min(len),
                    };
                    let mut bytes = Vec::with_capacity(part as usize);
                    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
                        .await
                        .unwrap();
                    bucket
                        .put_multipart_chunk(
                            bytes,
                            &key,
                            n as u32 + 1,
                            &id,
                            "application/octet-stream",
                        )
                        .await
                        .unwrap()
                })
            })
            .buffer_unordered(ways)
            .map(Result::unwrap)
            .collect()
            .await;
        parts.sort_by_key(|p| p.part_number);
        bucket
            .complete_multipart_upload(key, &id, parts)
            .await
            .unwrap();
    });
}

/// The service binary as a child process (warnings on this terminal), so its memory can be read.
fn spawn_service(env: Vec<(String, String)>) -> std::process::Child {
    Command::new(binary())
        .env_clear()
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn bench_document() {
    let mib = env_or("BENCH_DOC_MIB", 1024);
    let len = mib * 1024 * 1024;
    let tg = FakeTelegram::start(TOKEN);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();

    // Baseline: an 8-way parallel multipart upload of the same bytes.
    let bucket = s3.target().bucket().unwrap();
    let part = 8 * 1024 * 1024;
    let started = Instant::now();
    parallel_multipart(&bucket, "baseline.bin", len, part, 8);
    let baseline = started.elapsed();
    let baseline_rate = len as f64 / 1e6 / baseline.as_secs_f64();
    block_on(bucket.delete_object("baseline.bin")).unwrap();

    // The service binary, its own process, so its memory can be read.
    tg.add_file("gib", FileBody::Pattern(len));
    let mut child = spawn_service(service_env(
        &tg,
        &s3,
        data.path(),
        &[("TG_INGEST__TELEGRAM__LOCAL_BOT_API", "true")],
    ));
    tg.push(text(&tg, 77, "hi"));
    wait_until(Duration::from_secs(60), "service up", || {
        tg.texts_to(77).len() == 1
    });
    let started = Instant::now();
    tg.push(document(&tg, 77, "gib", Some("one-gib.bin"), len));
    wait_until(Duration::from_secs(900), "document saved", || {
        tg.texts_to(77)
            .iter()
            .any(|t| t.contains("[document has been saved]"))
    });
    let took = started.elapsed();
    let rss = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let rate = len as f64 / 1e6 / took.as_secs_f64();

    // The stored object is checked byte for byte as a stream.
    let stored = block_on(async {
        let mut stream = bucket.get_object_stream("one-gib.bin").await.unwrap();
        let mut pos = 0u64;
        let mut same = true;
        use futures_util::StreamExt;
        while let Some(chunk) = stream.bytes.next().await {
            let chunk = chunk.unwrap();
            same &= chunk
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(pos + i as u64));
            pos += chunk.len() as u64;
        }
        (pos, same)
    });
    assert_eq!(stored, (len, true), "stored object differs");
    println!(
        "document: {mib} MiB from the fake Telegram file endpoint into S3 in {:.2} s = {rate:.1} MB/s; \
         8-way parallel multipart upload of the same bytes to the same server: {:.2} s = {baseline_rate:.1} MB/s; \
         ratio {:.2}; service peak RSS {:.1} MiB",
        took.as_secs_f64(),
        baseline.as_secs_f64(),
        rate / baseline_rate,
        rss as f64 / 1024.0
    );
}

fn bench_recovery() {
    const N: usize = 1000;
    let tg = FakeTelegram::start(TOKEN);
    tg.record_calls(false);
    let s3 = TestS3::start();
    let data = tempfile::tempdir().unwrap();
    {
        let mut store = tg_ingest::store::Store::open(&data.path().join("state.db")).unwrap();
        let raws: Vec<(i64, String)> = (0..N)
            .map(|i| {
                let mut body = text(&tg, 30_000 + (i % 100) as i64, "left over");
                body["update_id"] = serde_json::json!(i as i64 + 1);
                (i as i64 + 1, body.to_string())
            })
            .collect();
        let rows: Vec<(i64, &str)> = raws.iter().map(|(id, raw)| (*id, raw.as_str())).collect();
        store.journal(&rows).unwrap();
        assert_eq!(store.journal_len().unwrap(), N as u64);
    }
    let settings = settings_from(service_env(
        &tg,
        &s3,
        data.path(),
        &[
            ("TG_INGEST__WORKERS", "4"),
            ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ],
    ));
    let started = Instant::now();
    let service = TestService::start(settings);
    let up = started.elapsed();
    wait_until(
        Duration::from_secs(300),
        "replayed updates answered",
        || tg.sent_count() >= N,
    );
    let answered = started.elapsed();
    let db = data.path().join("state.db");
    wait_until(Duration::from_secs(60), "journal empty", || {
        tg_ingest::store::Store::open(&db)
            .unwrap()
            .journal_len()
            .unwrap()
            == 0
    });
    let emptied = started.elapsed();
    drop(service);
    println!(
        "recovery: start with {N} journaled updates: service up (checks + replay dispatched) in {:.0} ms, \
         all {N} answered after {:.0} ms, journal empty after {:.0} ms",
        up.as_secs_f64() * 1e3,
        answered.as_secs_f64() * 1e3,
        emptied.as_secs_f64() * 1e3
    );
}

/// Raw objects of the archive outbox in `data_dir` that S3 has stored.
fn archived_count(data_dir: &std::path::Path) -> u64 {
    let db = rusqlite::Connection::open(data_dir.join("state.db")).unwrap();
    db.query_row(
        "SELECT count(*) FROM outbox WHERE kind = 'archive' AND delivered_at IS NOT NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Runs `tg-ingest etl --date` over `data_dir`; returns its summary line, seconds and peak RSS.
fn run_etl_command(vars: &[(String, String)], day: &str) -> (String, Duration, f64) {
    let (summary, took, peak) = run_sampled(vars, &["etl", "--date", day]);
    assert!(summary.is_some(), "etl failed");
    (summary.unwrap_or_default(), took, peak)
}

/// Runs the binary with `args`, sampling its peak RSS every 10 ms; answers its stdout (`None`
/// when it failed), its wall time and the peak in MiB.
fn run_sampled(vars: &[(String, String)], args: &[&str]) -> (Option<String>, Duration, f64) {
    let mut child = Command::new(binary())
        .env_clear()
        .envs(vars.iter().cloned())
        .env("RUST_LOG", "info")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (
        output.status.success().then_some(stdout),
        took,
        peak as f64 / 1024.0,
    )
}

fn bench_etl() {
    let n = env_or("BENCH_ETL_MESSAGES", 100_000) as i64;
    let tg = FakeTelegram::start(TOKEN);
    tg.record_calls(false);
    let data = tempfile::tempdir().unwrap();
    let chats = env_or("BENCH_ETL_CHATS", 1) as i64;
    let chat_ids: Vec<i64> = (0..chats).map(|c| -100_777 - c).collect();
    let chat_list = chat_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let noon = 1_795_262_400i64; // 2026-11-21 12:00 UTC
    let layout = std::env::var("BENCH_ETL_LAYOUT").unwrap_or_else(|_| "messages".into());
    let extra = [
        ("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false"),
        ("TG_INGEST__ARCHIVE__CATCH_UP_DAYS", "0"),
        ("TG_INGEST__ARCHIVE__CHATS", chat_list.as_str()),
        ("TG_INGEST__ARCHIVE__LAYOUT", layout.as_str()),
        // A segment at least every second: the run measures intake, not the wait for the
        // last segment (60 s by default).
        ("TG_INGEST__ARCHIVE__SEGMENT__MAX_SECS", "1"),
    ];
    // With TG_INGEST_TEST_S3_ENDPOINT, that server; otherwise the embedded one, as a
    // deployment with only a bot token runs it (its files live in the data directory).
    let external = std::env::var("TG_INGEST_TEST_S3_ENDPOINT").is_ok_and(|e| !e.is_empty());
    let s3 = external.then(TestS3::start);
    let env_for = |dir: &std::path::Path| -> Vec<(String, String)> {
        match &s3 {
            Some(s3) => {
                let mut vars = service_env(&tg, s3, dir, &extra);
                vars.push((
                    "TG_INGEST__ARCHIVE__RAW_BUCKET".into(),
                    format!("{}-raw", s3.bucket),
                ));
                vars.push((
                    "TG_INGEST__ARCHIVE__ENRICHED_BUCKET".into(),
                    format!("{}-enriched", s3.bucket),
                ));
                vars
            }
            None => {
                let mut vars: Vec<(String, String)> = [
                    ("TG_INGEST__TELEGRAM__TOKEN", tg.token.as_str()),
                    ("TG_INGEST__TELEGRAM__API_URL", tg.url.as_str()),
                    ("TG_INGEST__TELEGRAM__POLL_TIMEOUT_SECS", "1"),
                    ("TG_INGEST__S3__EMBEDDED__LISTEN", "127.0.0.1:0"),
                ]
                .iter()
                .chain(extra.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                vars.push(("TG_INGEST__DATA_DIR".into(), dir.display().to_string()));
                vars
            }
        }
    };
    if let Some(s3) = &s3 {
        s3.create_bucket("raw");
        s3.create_bucket("enriched");
    }
    let vars = env_for(data.path());
    let server = if external {
        "S3 server at TG_INGEST_TEST_S3_ENDPOINT"
    } else {
        "embedded S3 server"
    };
    // The day's messages arrive through the service, which archives each one.
    let service = TestService::start(settings_from(vars.clone()));
    let started = Instant::now();
    for i in 0..n {
        let mut m = serde_json::json!({
            "message_id": i + 1,
            "chat": {"id": chat_ids[(i % chats) as usize], "type": "supergroup", "title": "Team"},
            "date": noon + i % 30_000,
        });
        if i % 10 != 0 {
            m["text"] = serde_json::json!(format!("message number {i} with some words in it"));
        }
        if i % 7 != 0 {
            m["from"] = serde_json::json!({"id": 1000 + i % 50, "is_bot": false, "first_name": "Name", "username": "user"});
        }
        tg.push_raw(
            1_000_000 + i,
            serde_json::json!({"update_id": 1_000_000 + i, "message": m}),
        );
    }
    wait_until(Duration::from_secs(1200), "every message archived", || {
        std::thread::sleep(Duration::from_millis(500));
        archived_count(data.path()) >= n as u64
    });
    let archived = started.elapsed();
    drop(service);
    println!(
        "etl ({server}, {layout} layout, {chats} chats): {n} group messages received and archived to the raw bucket by the service in {:.1} s = {:.0} messages/s",
        archived.as_secs_f64(),
        n as f64 / archived.as_secs_f64()
    );

    let (summary, took, peak) = run_etl_command(&vars, "2026-11-21");
    assert!(summary.contains(&format!("{n} rows")), "{summary}");
    println!(
        "etl ({server}): {n} raw messages -> Parquet, on the service's data directory (local copies): {:.2} s = {:.0} rows/s; \
         peak RSS (sampled every 10 ms) {peak:.1} MiB; {summary}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
    );

    if !external {
        // The embedded server's files are in the data directory: nothing to read elsewhere.
        return;
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let cold = env_for(elsewhere.path());
    let (summary, took, peak) = run_etl_command(&cold, "2026-11-21");
    assert!(summary.contains(&format!("{n} rows")), "{summary}");
    println!(
        "etl ({server}): {n} raw messages -> Parquet, on an empty data directory (every object fetched from S3): {:.2} s = {:.0} rows/s; \
         peak RSS {peak:.1} MiB; {summary}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
    );
}
