use super::*;
use crate::clients::telegram::ByteStream;
use bytes::Bytes;
use sha2::Sha256;

fn chunks(sizes: &[usize]) -> ByteStream {
    let mut n = 0u8;
    let items: Vec<Result<Bytes, TelegramError>> = sizes
        .iter()
        .map(|&s| {
            let v: Vec<u8> = (0..s)
                .map(|_| {
                    n = n.wrapping_add(1);
                    n
                })
                .collect();
            Ok(Bytes::from(v))
        })
        .collect();
    stream::iter(items).boxed_local()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn run(sizes: &[usize], part: usize) -> Vec<Vec<u8>> {
    block_on(rechunk(chunks(sizes), part).try_collect()).unwrap()
}

#[test]
fn parts_have_the_exact_size_and_keep_every_byte() {
    let parts = run(&[3, 10, 1, 7], 5);
    assert_eq!(
        parts.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 1]
    );
    let flat: Vec<u8> = parts.concat();
    assert_eq!(flat, (1..=21).collect::<Vec<u8>>());
}

#[test]
fn exact_multiple_has_no_empty_tail() {
    let parts = run(&[4, 4], 4);
    assert_eq!(parts.len(), 2);
    assert!(run(&[], 4).is_empty());
}

fn verify(sizes: &[usize], expected: &[(u64, &'static str)]) -> Result<Vec<Bytes>, TelegramError> {
    let tally = Rc::new(RefCell::new(Tally::default()));
    block_on(verified(chunks(sizes), expected.to_vec(), tally).try_collect())
}

#[test]
fn a_short_or_long_download_fails_and_an_exact_one_passes() {
    assert!(verify(&[3, 4], &[(7, "Content-Length"), (7, "file_size")]).is_ok());
    assert!(verify(&[3, 4], &[]).is_ok());
    match verify(&[3], &[(7, "Content-Length")]) {
        Err(TelegramError::Incomplete {
            received: 3,
            expected: 7,
            basis: "Content-Length",
        }) => {}
        other => panic!("{other:?}"),
    }
    match verify(&[3, 4, 1], &[(7, "file_size")]) {
        Err(TelegramError::Incomplete {
            received: 8,
            expected: 7,
            basis: "file_size",
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(verify(&[3, 4], &[(7, "Content-Length"), (8, "file_size")]).is_err());
}

#[test]
fn a_hostile_content_type_falls_back_to_octet_stream() {
    assert_eq!(
        safe_content_type(Some("application/pdf")),
        "application/pdf"
    );
    assert_eq!(
        safe_content_type(Some("text/plain\r\nx-amz-acl: public-read")),
        "application/octet-stream"
    );
    assert_eq!(safe_content_type(Some("")), "application/octet-stream");
    assert_eq!(safe_content_type(None), "application/octet-stream");
}

#[test]
fn the_tally_hashes_every_byte() {
    let tally = Rc::new(RefCell::new(Tally::default()));
    let _: Vec<Bytes> =
        block_on(verified(chunks(&[2, 1]), vec![], tally.clone()).try_collect()).unwrap();
    let t = tally.borrow();
    assert_eq!(t.bytes, 3);
    assert_eq!(
        hex(&t.sha.clone().finalize()),
        hex(&Sha256::digest([1u8, 2, 3]))
    );
}
