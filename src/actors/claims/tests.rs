use super::*;

#[test]
fn a_listing_cut_short_forgets_no_update_in_flight_past_its_end() {
    let mut in_flight: HashSet<i64> = [1, 2, 50, 60].into();
    // Cut at three: 1 and 2 finished (not listed, before the last), 60 past the cut.
    let fresh = settle(&mut in_flight, &[(3, 10), (50, 20), (55, 20)], 3, 100);
    assert_eq!(fresh, [3, 55]);
    assert_eq!(in_flight, [3, 50, 55, 60].into());
    // A listing that was not cut shows every update left.
    let fresh = settle(&mut in_flight, &[(50, 20), (70, 30)], 3, 100);
    assert_eq!(fresh, [70]);
    assert_eq!(in_flight, [50, 70].into());
    // The in-flight limit.
    let fresh = settle(&mut in_flight, &[(50, 20), (70, 30), (80, 30)], 10, 2);
    assert!(fresh.is_empty());
}
