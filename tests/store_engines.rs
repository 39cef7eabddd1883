//! The store's SQL interface on both engines: the same statements, the same values, the same
//! transactions on SQLite and on a real PostgreSQL server; the PostgreSQL schema applied once by
//! replicas starting together; a lost connection reported, not hidden.

mod support;

use std::time::{Duration, Instant};

use support::pg::TestPostgres;
use tg_ingest::store::db::{DbError, Postgres, Sql, Sqlite, Val};
use tg_ingest::store::pg_schema;

/// What every engine must do alike.
fn exercise(db: &impl Sql, id_column: &str) {
    db.batch(&format!(
        "CREATE TABLE items (id {id_column}, kind TEXT NOT NULL, key TEXT NOT NULL,
             n BIGINT, note TEXT, UNIQUE (kind, key))"
    ))
    .unwrap();
    let put = "INSERT INTO items (kind, key, n, note) VALUES ($1, $2, $3, $4)
               ON CONFLICT (kind, key) DO NOTHING RETURNING id";
    let first = db
        .query(
            put,
            &[Val::from("a"), "ключ/1".into(), i64::MAX.into(), Val::Null],
        )
        .unwrap();
    assert_eq!(first.len(), 1);
    let id = first[0].i64(0).unwrap();
    // The same key again: nothing inserted, nothing returned.
    assert!(db
        .query(put, &[Val::from("a"), "ключ/1".into(), 1.into(), Val::Null])
        .unwrap()
        .is_empty());
    assert_eq!(
        db.exec(
            "INSERT INTO items (kind, key, n, note) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &["a".into(), "k2".into(), (-5i64).into(), "x".into()]
        )
        .unwrap(),
        1
    );
    // Parameters used out of order and twice.
    let rows = db
        .query(
            "SELECT key, n, note FROM items WHERE kind = $2 AND (n = $1 OR n < $1) ORDER BY id",
            &[i64::MAX.into(), "a".into()],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].text(0).unwrap(), "ключ/1");
    assert_eq!(rows[0].i64(1).unwrap(), i64::MAX);
    assert_eq!(rows[0].opt_text(2).unwrap(), None);
    assert_eq!(rows[1].i64(1).unwrap(), -5);
    assert!(matches!(rows[0].i64(2), Err(DbError::Type { .. })));
    let counts = db
        .first(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE note IS NULL), MAX(n), MIN(id) FROM items",
            &[],
        )
        .unwrap()
        .unwrap();
    assert_eq!(counts.i64(0).unwrap(), 2);
    assert_eq!(counts.i64(1).unwrap(), 1);
    assert_eq!(counts.i64(2).unwrap(), i64::MAX);
    assert_eq!(counts.i64(3).unwrap(), id);
    assert!(db
        .exists("SELECT 1 FROM items WHERE key = $1", &["k2".into()])
        .unwrap());
    // A failed transaction leaves nothing; a successful one keeps everything.
    let failed: Result<(), DbError> = db.transaction(|db| {
        db.exec("UPDATE items SET n = n + 1 WHERE key = $1", &["k2".into()])?;
        db.exec(
            "INSERT INTO items (kind, key) VALUES ($1, $2)",
            &["a".into(), Val::Null],
        )?;
        Ok(())
    });
    assert!(failed.is_err(), "a NULL key is refused");
    let n = db
        .first("SELECT n FROM items WHERE key = $1", &["k2".into()])
        .unwrap()
        .unwrap();
    assert_eq!(n.i64(0).unwrap(), -5, "rolled back");
    db.transaction(|db| {
        db.exec("UPDATE items SET n = n + 1 WHERE key = $1", &["k2".into()])?;
        db.exec(
            "UPDATE items SET note = $2 WHERE key = $1",
            &["k2".into(), Val::from(Some("y"))],
        )
    })
    .unwrap();
    let row = db
        .first("SELECT n, note FROM items WHERE key = $1", &["k2".into()])
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.i64(0).unwrap(), row.text(1).unwrap()),
        (-4, "y".into())
    );
}

#[test]
fn the_same_statements_behave_alike_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Sqlite(rusqlite::Connection::open(dir.path().join("t.db")).unwrap());
    exercise(&sqlite, "INTEGER PRIMARY KEY AUTOINCREMENT");

    let pg = TestPostgres::start();
    let postgres = Postgres::connect(&pg.url).unwrap();
    exercise(&postgres, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");
}

#[test]
fn replicas_starting_together_apply_each_migration_once() {
    let pg = TestPostgres::start();
    // Connected first, then released together: the three migrations run at the same time.
    let barrier = std::sync::Barrier::new(3);
    let runs: Vec<(Vec<i64>, Instant, Instant)> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let db = Postgres::connect(&pg.url).unwrap();
                    barrier.wait();
                    let started = Instant::now();
                    let applied = pg_schema::migrate(&db).unwrap();
                    (applied, started, Instant::now())
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let last_start = runs.iter().map(|r| r.1).max().unwrap();
    let first_end = runs.iter().map(|r| r.2).min().unwrap();
    assert!(
        last_start < first_end,
        "the three migrations did not overlap"
    );
    let mut all: Vec<i64> = runs.into_iter().flat_map(|r| r.0).collect();
    all.sort();
    let expected: Vec<i64> = pg_schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        all, expected,
        "each migration applied by exactly one replica"
    );
    let db = Postgres::connect(&pg.url).unwrap();
    assert!(pg_schema::migrate(&db).unwrap().is_empty());
    for table in [
        "journal",
        "done",
        "poison",
        "greeted_people",
        "outbox",
        "open_uploads",
        "files",
        "pending_renames",
        "moves",
        "vk_events",
        "vk_state",
        "archive_days",
        "intake_seen",
    ] {
        assert!(
            db.exists(
                "SELECT 1 FROM information_schema.tables WHERE table_name = $1",
                &[table.into()]
            )
            .unwrap(),
            "{table}"
        );
    }
    // The identity columns hand out ids as AUTOINCREMENT does.
    let id = db
        .query(
            "INSERT INTO outbox (kind, key, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &["airtable".into(), "k".into(), "{}".into(), 1.into()],
        )
        .unwrap();
    assert_eq!(id[0].i64(0).unwrap(), 1);
}

#[test]
fn a_lost_postgresql_connection_is_reported_then_opened_again_but_never_inside_a_transaction() {
    let pg = TestPostgres::start();
    let db = Postgres::connect(&pg.url).unwrap();
    db.batch("CREATE TABLE t (n BIGINT NOT NULL)").unwrap();
    assert!(db.exists("SELECT 1", &[]).unwrap());
    pg.stop();
    let err = db.exists("SELECT 1", &[]).unwrap_err();
    assert!(matches!(err, DbError::Postgres(_)), "{err}");
    assert!(db.is_closed());
    pg.restart();
    // The next statement opens the connection again.
    assert!(db.exists("SELECT 1", &[]).unwrap());
    assert!(!db.is_closed());

    // A transaction cut by a restart fails as a whole: its second statement does not run on
    // a new connection outside it.
    let cut: Result<(), DbError> = db.transaction(|db| {
        db.exec("INSERT INTO t (n) VALUES ($1)", &[1.into()])?;
        pg.stop();
        pg.restart();
        db.exec("INSERT INTO t (n) VALUES ($1)", &[2.into()])?;
        Ok(())
    });
    let err = cut.unwrap_err();
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    let rows = db.query("SELECT n FROM t", &[]).unwrap();
    assert!(rows.is_empty(), "nothing of the cut transaction: {rows:?}");
    db.transaction(|db| db.exec("INSERT INTO t (n) VALUES ($1)", &[3.into()]))
        .unwrap();
    assert_eq!(db.query("SELECT n FROM t", &[]).unwrap().len(), 1);

    let refused = Postgres::connect("postgres://postgres@127.0.0.1:1/postgres");
    assert!(matches!(refused, Err(DbError::Postgres(_))));
}

/// `sslmode=require` (and `verify-*`) connects over TLS and verifies the server's certificate:
/// against `sslrootcert` when given, else the public roots (which do not know the test CA).
#[test]
fn tls_to_postgresql_verifies_the_server() {
    let (pg, ca) = TestPostgres::start_with_tls();
    let ssl = |db: &Postgres| {
        db.first(
            "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
    };
    let with = |query: &str| format!("{}?{query}", pg.url.replace("postgres@", "postgres:pw@"));
    for mode in ["require", "verify-ca", "verify-full"] {
        let db = Postgres::connect(&with(&format!(
            "sslmode={mode}&sslrootcert={}",
            ca.display()
        )))
        .unwrap();
        assert_eq!(ssl(&db), 1, "{mode}: over TLS");
    }
    let plain = Postgres::connect(&with("sslmode=disable")).unwrap();
    assert_eq!(ssl(&plain), 0);
    assert_eq!(
        ssl(&Postgres::connect(&pg.url).unwrap()),
        0,
        "no sslmode: as before"
    );

    // The public roots do not vouch for the test CA.
    let refused = Postgres::connect(&with("sslmode=require"))
        .err()
        .unwrap()
        .to_string();
    assert!(refused.contains("certificate"), "{refused}");
    eprintln!("store_engines: without sslrootcert: {refused}");
    assert!(!refused.contains("pw"), "no password in {refused}");
    // A file without certificates, an unknown mode.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let refused = Postgres::connect(&with(&format!(
        "sslmode=require&sslrootcert={}",
        empty.path().display()
    )))
    .err()
    .unwrap()
    .to_string();
    assert!(refused.contains("no certificate"), "{refused}");
    let refused = Postgres::connect(&with("sslmode=sometimes"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("sslmode=sometimes is not one of"),
        "{refused}"
    );
    // The store over TLS: migrated and usable.
    let store = tg_ingest::store::Store::connect(&with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.display()
    )))
    .unwrap();
    assert_eq!(store.journal_len().unwrap(), 0);
}

#[test]
fn a_silently_dropped_connection_is_noticed_dropped_and_replaced() {
    use support::proxy::SilentProxy;
    use tg_ingest::store::db::PgLimits;
    use tg_ingest::store::Store;
    let pg = TestPostgres::start();
    let proxy = SilentProxy::start(pg.port);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let limits = PgLimits {
        statement_timeout: Duration::from_secs(2),
        keepalive_idle: Duration::from_secs(2),
        tcp_user_timeout: Duration::from_secs(3),
    };
    let mut store = Store::connect_with(&url, limits).unwrap();
    store.journal(&[(1, "{}")]).unwrap();
    let before = proxy.connections();
    proxy.silence_existing();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let answer = store.journal(&[(2, "{}")]);
        let _ = tx.send((answer.map_err(|e| e.to_string()), started.elapsed(), store));
    });
    let (answer, took, mut store) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a call on a silent connection returns within 30 s");
    let err = answer.expect_err("the silent connection cannot answer");
    println!("a call on a silent connection failed after {took:.1?}: {err}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(err.contains("no answer within 7 s"), "{err}");
    // The next call opens a new connection and works; the journal is as it was.
    assert_eq!(store.journal(&[(2, "{}")]).unwrap(), [2]);
    assert_eq!(store.journal_len().unwrap(), 2);
    assert!(proxy.connections() > before, "a new connection was opened");
}

#[test]
fn a_rename_and_a_new_document_never_reserve_the_same_name() {
    use tg_ingest::store::{KeyClaim, MoveStart, SavedFile, Store};
    let pg = TestPostgres::start();
    let mut renamer = Store::connect(&pg.url).unwrap();
    let mut sender = Store::connect(&pg.url).unwrap();
    // A pause between a name's check and its reservation, where the other could slip in.
    fail::cfg("store.name_checked", "sleep(30)").unwrap();
    let mut collisions = Vec::new();
    let (mut moves, mut claims) = (0, 0);
    for i in 0..50 {
        renamer
            .record_saved_file(&SavedFile {
                key: format!("source-{i}.pdf"),
                platform: "telegram".into(),
                user_id: 1,
                chat_id: 1,
                bytes: 10,
                sha256: "00".repeat(32),
                file_id: format!("F{i}"),
                file_unique_id: None,
            })
            .unwrap();
        let file = renamer.latest_file("telegram", 1).unwrap().unwrap().id;
        let name = format!("x-{i}.pdf");
        let (moved, claimed) = std::thread::scope(|s| {
            let moving = s.spawn(|| {
                renamer
                    .begin_move(&format!("t:m{i}"), ("telegram", 1), file, &name)
                    .unwrap()
            });
            let claiming = s.spawn(|| {
                sender
                    .claim_key(&KeyClaim {
                        event: format!("t:d{i}"),
                        platform: "telegram".into(),
                        user_id: 2,
                        chat_id: 2,
                        wanted: name.clone(),
                        max_bytes: 1024,
                    })
                    .unwrap()
            });
            (moving.join().unwrap(), claiming.join().unwrap())
        });
        let moved = matches!(moved, MoveStart::Begun(_));
        moves += usize::from(moved);
        claims += usize::from(claimed.key == name);
        if moved && claimed.key == name {
            collisions.push(name);
        }
    }
    fail::remove("store.name_checked");
    println!("50 races: the rename took the name {moves} times, the new document {claims} times");
    assert!(collisions.is_empty(), "both reserved {collisions:?}");
    assert_eq!(moves + claims, 50, "each name went to exactly one of them");
}
