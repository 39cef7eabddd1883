use super::*;

fn member(id: i64, update_id: i64, payload: &str) -> Member<'_> {
    let key = Box::leak(
        format!("telegram/context_date=2026-11-21/20261121090000_{update_id:012}.json")
            .into_boxed_str(),
    );
    Member { id, key, payload }
}

#[test]
fn the_same_members_give_the_same_key_and_bytes() {
    let p = [
        r#"{"update_id":1,"message":{"chat":{"id":-5},"text":"a"}}"#,
        "{\"update_id\":2,\n\"message\":{\"chat\":{\"id\":-5},\"text\":\"b\\nc\"}}",
    ];
    let members = [member(10, 1, p[0]), member(11, 2, p[1])];
    for compression in [SegmentCompression::Zstd, SegmentCompression::Gzip] {
        let key = segment_key(&members, -5, compression);
        let bytes = segment_bytes(&members, compression).unwrap();
        assert_eq!(key, segment_key(&members, -5, compression));
        assert_eq!(bytes, segment_bytes(&members, compression).unwrap());
        assert!(is_segment(&key));
        let lines = segment_lines(&key, &bytes).unwrap();
        let lines: Vec<serde_json::Value> = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            2,
            "a newline between tokens does not split an update"
        );
        assert_eq!(lines[1]["message"]["text"], "b\nc");
    }
    assert_eq!(
        segment_key(&members, -5, SegmentCompression::Zstd),
        "telegram/context_date=2026-11-21/20261121090000_segment_-5_10-11.ndjson.zst"
    );
}

#[test]
fn the_chat_is_read_from_any_message_kind() {
    assert_eq!(
        chat_of(
            r#"{"update_id":1,"edited_channel_post":{"chat":{"id":-9,"type":"channel"},"x":[1]}}"#
        ),
        Some(-9)
    );
    assert_eq!(chat_of(r#"{"update_id":1,"poll":{}}"#), None);
    assert_eq!(chat_of("not json"), None);
}

#[test]
fn members_are_split_at_the_size_limit_and_the_rest_waits() {
    let payload = "x".repeat(99); // 100 bytes a line
    let members: Vec<Member> = (0..7).map(|i| member(i, i, &payload)).collect();
    let (full, rest) = split_by_size(&members, 300);
    assert_eq!(full.iter().map(|s| s.len()).collect::<Vec<_>>(), [3, 3]);
    assert_eq!(rest.len(), 1);
    let big = "y".repeat(1000);
    let members = [
        member(1, 1, &payload),
        member(2, 2, &big),
        member(3, 3, &payload),
    ];
    let (full, rest) = split_by_size(&members, 300);
    assert_eq!(
        full.iter()
            .map(|s| s.iter().map(|m| m.id).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [vec![1], vec![2]],
        "an update larger than the limit is a segment of its own"
    );
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), [3]);
}
