use super::super::test_store as store;

fn journal(s: &mut super::Store, rows: &[(i64, i64)]) {
    let rows: Vec<_> = rows
        .iter()
        .map(|&(id, chat)| (id, "{}", Some(chat), None))
        .collect();
    s.journal_dated(&rows).unwrap();
}

/// The ids of the updates `holder` may work, up to `limit`.
fn ids(s: &super::Store, holder: &str, limit: usize) -> Vec<i64> {
    let listed = s.claimed_updates(holder, limit).unwrap();
    listed.into_iter().map(|(id, _)| id).collect()
}

#[test]
fn a_chat_is_worked_by_one_holder_and_its_updates_come_in_order() {
    let (mut s, _d) = store();
    journal(&mut s, &[(1, 10), (2, 20), (3, 10), (4, 30), (5, 20)]);
    // Oldest waiting update first: chats 10 and 20 go to a, 30 to b, nothing is left.
    let mut a = s.claim_chats("a", 60_000, 2).unwrap();
    a.sort_unstable();
    assert_eq!(a, [10, 20]);
    assert_eq!(s.claim_chats("b", 60_000, 5).unwrap(), [30]);
    assert!(s.claim_chats("c", 60_000, 5).unwrap().is_empty());
    assert_eq!(ids(&s, "a", 10), [1, 2, 3, 5]);
    assert_eq!(ids(&s, "a", 2), [1, 2]);
    assert_eq!(ids(&s, "b", 10), [4]);
    let entries = s.journal_entries(&[5, 1, 99]).unwrap();
    let got: Vec<_> = entries.iter().map(|e| (e.update_id, e.attempts)).collect();
    assert_eq!(
        got,
        [(1, 0), (5, 0)],
        "in order, unknown ids left out, not charged"
    );

    // A new update of a claimed chat is its holder's.
    journal(&mut s, &[(6, 30)]);
    assert!(s.claim_chats("a", 60_000, 5).unwrap().is_empty());
    assert_eq!(ids(&s, "b", 10), [4, 6]);

    // A chat is released once its journal is empty, and then anyone may take it.
    s.finish(&[4]).unwrap();
    assert_eq!(s.release_idle_claims("b").unwrap(), 0, "6 is left");
    s.finish(&[6]).unwrap();
    assert_eq!(s.release_idle_claims("b").unwrap(), 1);
    journal(&mut s, &[(7, 30)]);
    assert_eq!(s.claim_chats("c", 60_000, 5).unwrap(), [30]);
    assert_eq!(
        s.journal_entries(&[7]).unwrap()[0].attempts,
        0,
        "a released chat is taken without a charge"
    );
    assert_eq!(s.renew_claims("a", 60_000).unwrap(), 2);
    // A new process under a's name takes its chats over, charging their oldest updates.
    assert_eq!(s.adopt_claims("a").unwrap(), 2);
    let attempts: Vec<_> = s
        .journal_entries(&[1, 2, 3, 5])
        .unwrap()
        .iter()
        .map(|e| e.attempts)
        .collect();
    assert_eq!(attempts, [1, 1, 0, 0]);
    s.release_claims("a").unwrap();
    assert_eq!(s.renew_claims("a", 60_000).unwrap(), 0);
    let mut free = s.claim_chats("c", 60_000, 5).unwrap();
    free.sort_unstable();
    assert_eq!(free, [10, 20], "a clean stop frees the chats at once");
}

#[test]
fn an_update_journaled_again_after_it_finished_is_dropped_not_worked() {
    use super::Sql;
    let (mut s, _d) = store();
    journal(&mut s, &[(1, 10), (2, 10)]);
    assert_eq!(s.claim_chats("a", 60_000, 5).unwrap(), [10]);
    s.finish(&[1]).unwrap();
    // The race a repeated delivery can win on PostgreSQL, written directly.
    s.db.exec(
        "INSERT INTO journal (update_id, raw, attempts, received_at, chat_id) VALUES (1, '{}', 0, 0, 10)",
        &[],
    )
    .unwrap();
    assert_eq!(ids(&s, "a", 10), [2], "a finished update is not listed");
    assert_eq!(
        s.claimed_work("b", 10).unwrap(),
        (vec![], 0),
        "not b's chat"
    );
    assert_eq!(s.claimed_work("a", 10).unwrap(), (vec![(2, 10)], 1));
    assert_eq!(
        s.journal_len().unwrap(),
        1,
        "the finished row left the journal"
    );
}

#[test]
fn a_long_backlog_in_one_chat_neither_hides_other_chats_nor_fills_a_listing() {
    let (mut s, _d) = store();
    let rows: Vec<(i64, i64)> = (1..=300).map(|id| (id, 10)).collect();
    journal(&mut s, &rows);
    journal(&mut s, &[(301, 20), (302, 30), (303, 10)]);
    assert_eq!(s.claim_chats("a", 60_000, 1).unwrap(), [10], "oldest first");
    let mut others = s.claim_chats("b", 60_000, 5).unwrap();
    others.sort_unstable();
    assert_eq!(
        others,
        [20, 30],
        "found behind 301 updates of a claimed chat"
    );
    let listed = ids(&s, "a", 1_000);
    assert_eq!(listed.len(), super::PER_CHAT, "a chat's oldest, no more");
    assert_eq!(listed[0], 1);
    assert_eq!(*listed.last().unwrap(), super::PER_CHAT as i64);
    // b's two chats are listed together, each in its order.
    assert_eq!(ids(&s, "b", 1_000), [301, 302]);
}

#[test]
fn a_replica_takes_its_share_of_the_waiting_chats() {
    let (mut s, _d) = store();
    let rows: Vec<(i64, i64)> = (1..=10).map(|i| (i, 100 + i)).collect();
    journal(&mut s, &rows);
    for r in ["a", "b", "c"] {
        s.renew_claims(r, 60_000).unwrap();
    }
    assert_eq!(
        s.claim_chats("a", 60_000, 50).unwrap().len(),
        4,
        "10 chats, 3 replicas"
    );
    assert!(
        s.claim_chats("a", 60_000, 50).unwrap().is_empty(),
        "a has its share"
    );
    assert_eq!(s.claim_chats("b", 60_000, 50).unwrap().len(), 4);
    assert_eq!(
        s.claim_chats("c", 60_000, 1).unwrap().len(),
        1,
        "its own limit"
    );
    assert_eq!(
        s.claim_chats("c", 60_000, 50).unwrap().len(),
        1,
        "the last one"
    );
    // c stops: the two live replicas share its chats.
    s.release_claims("c").unwrap();
    assert_eq!(
        s.claim_chats("a", 60_000, 50).unwrap().len(),
        1,
        "5 each now"
    );
    assert_eq!(s.claim_chats("b", 60_000, 50).unwrap().len(), 1);
}

#[test]
fn the_chats_of_a_holder_whose_claims_ran_out_are_taken_over_with_a_charge() {
    let (mut s, _d) = store();
    journal(&mut s, &[(1, 10), (2, 10), (3, 20)]);
    assert_eq!(
        s.claim_chats("dead", -1, 1).unwrap(),
        [10],
        "ran out at once"
    );
    assert_eq!(s.claim_chats("live", 60_000, 5).unwrap().len(), 2);
    let entries = s.journal_entries(&[1, 2, 3]).unwrap();
    let attempts: Vec<_> = entries.iter().map(|e| e.attempts).collect();
    assert_eq!(
        attempts,
        [1, 0, 0],
        "only the oldest update of the chat taken over is charged"
    );
    assert_eq!(
        s.renew_claims("dead", 60_000).unwrap(),
        0,
        "it lost chat 10"
    );
    assert!(ids(&s, "dead", 10).is_empty());
    assert_eq!(ids(&s, "live", 10), [1, 2, 3]);
}

#[test]
fn outbox_items_are_claimed_by_one_holder_until_its_claim_runs_out() {
    let (mut s, _d) = store();
    for key in ["k1", "k2", "k3"] {
        s.outbox_put("airtable", key, key).unwrap();
    }
    let keys = |items: Vec<crate::store::OutboxItem>| -> Vec<String> {
        items.into_iter().map(|i| i.key).collect()
    };
    assert_eq!(
        keys(s.outbox_claim("airtable", 2, ("a", 60_000)).unwrap()),
        ["k1", "k2"]
    );
    assert_eq!(
        keys(s.outbox_claim("airtable", 5, ("b", 60_000)).unwrap()),
        ["k3"]
    );
    assert!(s
        .outbox_claim("airtable", 5, ("c", 60_000))
        .unwrap()
        .is_empty());
    // Its own undelivered items are offered to a holder again.
    let again = s.outbox_claim("airtable", 5, ("a", 60_000)).unwrap();
    assert_eq!(keys(again.clone()), ["k1", "k2"]);
    s.outbox_delivered(&[again[0].id], false).unwrap();
    // b's claim runs out: its item goes to c; a's undelivered one stays a's.
    s.outbox_claim("airtable", 5, ("b", -1)).unwrap();
    assert_eq!(
        keys(s.outbox_claim("airtable", 5, ("c", 60_000)).unwrap()),
        ["k3"]
    );
    // A clean stop hands a's item over at once.
    s.release_claims("a").unwrap();
    assert_eq!(
        keys(s.outbox_claim("airtable", 5, ("b", 60_000)).unwrap()),
        ["k2"]
    );
    // The unclaimed reading still sees every pending item.
    assert_eq!(keys(s.outbox_pending("airtable", 5).unwrap()), ["k2", "k3"]);
}
