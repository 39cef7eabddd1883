use super::super::test_store as store;
use super::*;

fn claim(event: &str, user: i64, wanted: &str) -> KeyClaim {
    KeyClaim {
        event: event.into(),
        platform: "telegram".into(),
        user_id: user,
        chat_id: user,
        wanted: wanted.into(),
        max_bytes: 1024,
    }
}

fn saved(key: &str, user: i64) -> SavedFile {
    SavedFile {
        key: key.into(),
        platform: "telegram".into(),
        user_id: user,
        chat_id: user,
        bytes: 5_000_000_000,
        sha256: "ab".repeat(32),
        file_id: "F1".into(),
        file_unique_id: Some("U1".into()),
    }
}

#[test]
fn saved_files_are_recorded_by_key() {
    let (mut s, _d) = store();
    let mut f = saved("a.pdf", 7);
    s.record_saved_file(&f).unwrap();
    assert_eq!(s.saved_file("a.pdf").unwrap(), Some(f.clone()));
    f.bytes = 3;
    s.record_saved_file(&f).unwrap();
    assert_eq!(s.saved_file("a.pdf").unwrap().unwrap().bytes, 3);
    assert_eq!(s.saved_file("b.pdf").unwrap(), None);
}

#[test]
fn another_persons_name_is_numbered_and_ones_own_is_replaced() {
    let (mut s, _d) = store();
    let a = s.claim_key(&claim("t:1", 1, "r.pdf")).unwrap();
    assert_eq!(
        a,
        ClaimedKey {
            key: "r.pdf".into(),
            unknown: true
        }
    );
    // Before the first upload finished, another person sends the same name.
    let b = s.claim_key(&claim("t:2", 2, "r.pdf")).unwrap();
    assert_eq!(b.key, "r (2).pdf");
    s.record_saved_file(&saved("r.pdf", 1)).unwrap();
    s.record_saved_file(&saved("r (2).pdf", 2)).unwrap();
    // The owner sends the same name again: their own file is replaced.
    let again = s.claim_key(&claim("t:3", 1, "r.pdf")).unwrap();
    assert_eq!(
        again,
        ClaimedKey {
            key: "r.pdf".into(),
            unknown: false
        }
    );
    // A third person gets the next free number; a replay gets the same key.
    assert_eq!(
        s.claim_key(&claim("t:4", 3, "r.pdf")).unwrap().key,
        "r (3).pdf"
    );
    assert_eq!(
        s.claim_key(&claim("t:4", 3, "r.pdf")).unwrap().key,
        "r (3).pdf"
    );
    assert_eq!(
        s.claim_key(&claim("t:2", 2, "r.pdf")).unwrap().key,
        "r (2).pdf"
    );
}

#[test]
fn a_foreign_object_and_a_failed_upload_change_the_claims() {
    let (mut s, _d) = store();
    let first = s.claim_key(&claim("t:1", 1, "x.bin")).unwrap();
    s.mark_foreign(&first.key, "t:1").unwrap();
    assert_eq!(
        s.claim_key(&claim("t:1", 1, "x.bin")).unwrap().key,
        "x (2).bin"
    );
    s.release_claim("t:1").unwrap();
    assert_eq!(
        s.claim_key(&claim("t:9", 1, "x.bin")).unwrap().key,
        "x (2).bin"
    );
    assert!(s.key_is_taken("x.bin").unwrap());
    assert_eq!(
        s.files_page(None, 0, 10).unwrap().1,
        0,
        "unsaved claims are not listed"
    );
}

#[test]
fn pages_are_newest_first_per_owner() {
    let (mut s, _d) = store();
    for i in 0..5 {
        s.record_saved_file(&saved(&format!("{i}.txt"), 1)).unwrap();
    }
    s.record_saved_file(&saved("other.txt", 2)).unwrap();
    let (page, total) = s.files_page(Some(("telegram", 1)), 1, 2).unwrap();
    assert_eq!(total, 5);
    let keys: Vec<_> = page.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["3.txt", "2.txt"]);
    assert_eq!(s.latest_file("telegram", 1).unwrap().unwrap().key, "4.txt");
    assert_eq!(s.files_page(None, 0, 100).unwrap().1, 6);
    s.forget_file(page[0].id).unwrap();
    assert_eq!(s.files_page(Some(("telegram", 1)), 0, 10).unwrap().1, 4);
}
