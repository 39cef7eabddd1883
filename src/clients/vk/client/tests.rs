use super::*;

#[test]
fn the_envelope_gives_the_response_or_a_typed_error() {
    assert_eq!(
        parse_envelope("m", 200, br#"{"response": 5}"#).unwrap(),
        Value::from(5)
    );
    let e = parse_envelope(
        "m",
        200,
        br#"{"error": {"error_code": 5, "error_msg": "User authorization failed"}}"#,
    )
    .unwrap_err();
    assert!(e.is_authorization() && !e.is_retryable(), "{e}");
    let flood = parse_envelope(
        "m",
        200,
        br#"{"error": {"error_code": 9, "error_msg": "Flood"}}"#,
    )
    .unwrap_err();
    assert!(flood.is_retryable() && flood.rate_limited_for().is_some());
    let too_many = parse_envelope(
        "m",
        200,
        br#"{"error": {"error_code": 6, "error_msg": "Too many"}}"#,
    )
    .unwrap_err();
    assert_eq!(too_many.rate_limited_for(), Some(Duration::from_secs(1)));
    assert!(matches!(
        parse_envelope("m", 502, b"<html>bad gateway</html>").unwrap_err(),
        VkError::Http { status: 502, .. }
    ));
    assert!(matches!(
        parse_envelope("m", 200, b"{\"resp").unwrap_err(),
        VkError::InvalidJson { .. }
    ));
}

#[test]
fn random_ids_are_stable_and_distinct() {
    assert_eq!(random_id("vk:12:reply"), random_id("vk:12:reply"));
    assert_ne!(random_id("vk:12:reply"), random_id("vk:12:saved"));
    assert!(random_id("x") >= 0);
}

#[test]
fn urls_lose_their_query_in_errors() {
    assert_eq!(
        without_query("failed: https://vk.com/doc1_2?hash=abc&dl=x"),
        "failed: https://vk.com/doc1_2?[…]"
    );
}

#[actix_rt::test]
async fn the_pace_spaces_calls() {
    let pace = Pace::per_sec(20);
    let started = Instant::now();
    for _ in 0..5 {
        pace.slot().await;
    }
    // Five calls at 20 per second: the fifth goes 4 × 50 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(195),
        "{:?}",
        started.elapsed()
    );
}
