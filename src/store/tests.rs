use super::test_store as store;
use super::*;

#[test]
fn a_transaction_whose_work_panics_or_fails_is_rolled_back() {
    let (s, dir) = store();
    let insert = "INSERT INTO greeted_people (platform, user_id, at) VALUES ('telegram', $1, 0)";
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = s.db.transaction(|db| {
            db.exec(insert, vals![1])?;
            panic!("a fault in the middle of a transaction");
            #[allow(unreachable_code)]
            Ok(())
        });
    }));
    assert!(panicked.is_err(), "the work panicked");
    let failed: Result<(), DbError> = s.db.transaction(|db| {
        db.exec(insert, vals![2])?;
        Err(DbError::Postgres("the work failed".into()))
    });
    assert!(failed.is_err());
    // The connection is outside any transaction: a new one begins and commits on its own.
    s.db.transaction(|db| db.exec(insert, vals![3])).unwrap();
    drop(s);
    let s = dir.open();
    assert!(
        !s.is_greeted("telegram", 1).unwrap(),
        "the panicked write is gone"
    );
    assert!(
        !s.is_greeted("telegram", 2).unwrap(),
        "the failed write is gone"
    );
    assert!(
        s.is_greeted("telegram", 3).unwrap(),
        "the next transaction committed"
    );
}

#[test]
fn a_failed_connection_names_no_password() {
    let url = "postgres://tg@127.0.0.1:1/tg?password=pw-in-the-query-91&connect_timeout=2";
    let err = Store::connect(url)
        .err()
        .expect("nothing listens on port 1");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pw-in-the-query-91"), "{text}");
}

#[test]
fn journal_then_finish_then_redelivery_is_ignored() {
    let (mut s, _d) = store();
    assert_eq!(s.journal(&[(1, "{}"), (2, "{}")]).unwrap(), [1, 2]);
    assert_eq!(
        s.journal(&[(2, "{}"), (3, "{}")]).unwrap(),
        [3],
        "journaled once"
    );
    s.finish(&[1, 2]).unwrap();
    assert_eq!(s.journal_len().unwrap(), 1);
    assert!(
        s.journal(&[(1, "{}")]).unwrap().is_empty(),
        "finished is not journaled again"
    );
    assert_eq!(
        s.journal(&[(9, "{}"), (8, "{}"), (9, "{}")]).unwrap(),
        [9, 8],
        "in the order given, each once"
    );
}

#[test]
fn finishing_hundreds_at_once_takes_them_all_out_of_the_journal() {
    let (mut s, _d) = store();
    let rows: Vec<(i64, String)> = (1..=250)
        .map(|id| (id, format!("{{\"n\":{id}}}")))
        .collect();
    let rows: Vec<(i64, &str)> = rows.iter().map(|(id, raw)| (*id, raw.as_str())).collect();
    assert_eq!(s.journal(&rows).unwrap().len(), 250);
    let mut ids: Vec<i64> = (1..=250).collect();
    ids.push(7); // twice in one batch
    s.finish(&ids[..240]).unwrap();
    assert_eq!(s.journal_len().unwrap(), 10);
    let mut rest = ids[240..].to_vec();
    rest.push(245); // twice in one call
    s.finish(&rest).unwrap();
    assert_eq!(s.journal_len().unwrap(), 0);
    assert!(
        s.journal(&rows).unwrap().is_empty(),
        "all remembered as done"
    );
}

#[test]
fn a_journaled_batch_survives_power_loss_right_after_it_returns() {
    super::powerloss::register();
    let (dir, after) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut s =
        Store::open_with_vfs(&dir.path().join("state.db"), Some(super::powerloss::VFS)).unwrap();
    s.set_greeted("telegram", 1).unwrap();
    s.journal_dated(&[(10, "{}", Some(5), Some(1)), (11, "{}", Some(5), Some(1))])
        .unwrap();
    s.set_greeted("telegram", 2).unwrap();
    // The power goes out: nothing is closed, only what reached the disk is left.
    super::powerloss::survivors(dir.path(), after.path());
    std::mem::forget(s);
    let mut s = Store::open(&after.path().join("state.db")).unwrap();
    assert_eq!(
        s.take_for_replay()
            .unwrap()
            .iter()
            .map(|e| e.update_id)
            .collect::<Vec<_>>(),
        [10, 11],
        "the batch confirmed to Telegram next is on disk"
    );
    assert!(
        s.is_greeted("telegram", 1).unwrap(),
        "what was committed before the batch is on disk too"
    );
    assert!(
        !s.is_greeted("telegram", 2).unwrap(),
        "a later commit that was never synced is lost (the simulation is real)"
    );
}

#[test]
fn replays_charge_only_the_oldest_update_of_each_chat() {
    let (mut s, dir) = store();
    let rows = [(1, -5), (2, 7), (3, -5), (4, 7), (5, -5)];
    let rows: Vec<_> = rows
        .iter()
        .map(|&(id, chat)| (id, "{}", Some(chat), Some(1)))
        .collect();
    s.journal_dated(&rows).unwrap();
    drop(s);
    let mut last = Vec::new();
    for _ in 0..10 {
        let mut s = dir.open();
        last = s
            .take_for_replay()
            .unwrap()
            .iter()
            .map(|e| (e.update_id, e.attempts))
            .collect();
    }
    assert_eq!(
        last,
        [(1, 10), (2, 10), (3, 0), (4, 0), (5, 0)],
        "ten restarts charge each chat's oldest update, never the ones waiting behind it"
    );
}

#[test]
fn replay_returns_unfinished_in_order_and_counts_attempts() {
    let (mut s, dir) = store();
    s.journal(&[(5, "{\"a\":5}"), (4, "{\"a\":4}")]).unwrap();
    s.finish(&[5]).unwrap();
    drop(s);
    let mut s = dir.open();
    let replay = s.take_for_replay().unwrap();
    assert_eq!(
        replay,
        [JournalEntry {
            update_id: 4,
            raw: "{\"a\":4}".into(),
            attempts: 1
        }]
    );
    assert_eq!(s.record_attempt(4).unwrap(), 2);
}

#[test]
fn poison_moves_an_update_aside() {
    let (mut s, _d) = store();
    s.journal(&[(9, "{}")]).unwrap();
    s.poison(9, "panicked: boom", 3).unwrap();
    assert_eq!(s.journal_len().unwrap(), 0);
    let p = s.poisoned().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].update_id, p[0].attempts), (9, 3));
    assert!(p[0].reason.contains("boom"));
}

#[test]
fn greeted_users_are_remembered_across_opens() {
    let (mut s, dir) = store();
    assert!(!s.is_greeted("telegram", 7).unwrap());
    s.set_greeted("telegram", 7).unwrap();
    drop(s);
    let s = dir.open();
    assert!(s.is_greeted("telegram", 7).unwrap());
    assert!(!s.is_greeted("telegram", 8).unwrap());
    assert!(!s.is_greeted("vk", 7).unwrap(), "another platform's user 7");
}

#[test]
fn an_older_stores_greetings_and_saved_files_are_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE greeted (user_id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
         INSERT INTO greeted VALUES (7, 1);
         CREATE TABLE saved_files (key TEXT PRIMARY KEY, platform TEXT NOT NULL,
             user_id INTEGER NOT NULL, chat_id INTEGER NOT NULL, bytes INTEGER NOT NULL,
             sha256 TEXT NOT NULL, file_id TEXT NOT NULL, file_unique_id TEXT,
             saved_at INTEGER NOT NULL);
         INSERT INTO saved_files VALUES ('a.pdf', 'telegram', 7, 7, 3, 'ab', 'F', NULL, 5);",
    )
    .unwrap();
    drop(old);
    let s = Store::open(&path).unwrap();
    assert!(s.is_greeted("telegram", 7).unwrap());
    let file = s.latest_file("telegram", 7).unwrap().unwrap();
    assert_eq!(
        (file.key.as_str(), file.bytes, file.saved_at),
        ("a.pdf", 3, 5)
    );
    drop(s);
    // Opening again changes nothing.
    let s = Store::open(&path).unwrap();
    assert_eq!(s.files_page(None, 0, 10).unwrap().1, 1);
}
