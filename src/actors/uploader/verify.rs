//! The bytes on their way: counted and hashed against the length announced, and cut into
//! parts of one size.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::clients::telegram::{ByteStream, TelegramError};

/// Bytes counted and hashed while they stream through.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) bytes: u64,
    pub(super) sha: Sha256,
}

/// Checks the byte count against every announced length while hashing the bytes.
pub(super) fn verified(
    input: ByteStream,
    expected: Vec<(u64, &'static str)>,
    tally: Rc<RefCell<Tally>>,
) -> ByteStream {
    stream::try_unfold(
        (input, expected, tally),
        |(mut input, expected, tally)| async move {
            match input.try_next().await? {
                Some(chunk) => {
                    let received = {
                        let mut t = tally.borrow_mut();
                        t.bytes += chunk.len() as u64;
                        t.sha.update(&chunk);
                        t.bytes
                    };
                    if let Some(&(n, basis)) = expected.iter().find(|(n, _)| received > *n) {
                        return Err(TelegramError::Incomplete {
                            received,
                            expected: n,
                            basis,
                        });
                    }
                    Ok(Some((chunk, (input, expected, tally))))
                }
                None => {
                    let received = tally.borrow().bytes;
                    match expected.iter().find(|(n, _)| received != *n) {
                        Some(&(n, basis)) => Err(TelegramError::Incomplete {
                            received,
                            expected: n,
                            basis,
                        }),
                        None => Ok(None),
                    }
                }
            }
        },
    )
    .boxed_local()
}

/// Re-cuts a byte stream into parts of exactly `size` bytes (the last may be shorter).
pub fn rechunk(
    input: ByteStream,
    size: usize,
) -> impl Stream<Item = Result<Vec<u8>, TelegramError>> {
    // State: the input, bytes read but not yet placed in a part, and whether the input ended.
    stream::try_unfold(
        (input, None::<bytes::Bytes>, false),
        move |(mut input, mut carry, ended)| async move {
            if ended {
                return Ok(None);
            }
            let mut part = Vec::with_capacity(size);
            loop {
                let chunk = match carry.take() {
                    Some(c) => c,
                    None => match input.try_next().await? {
                        Some(c) => c,
                        None if part.is_empty() => return Ok(None),
                        None => return Ok(Some((part, (input, None, true)))),
                    },
                };
                let room = size - part.len();
                if chunk.len() <= room {
                    part.extend_from_slice(&chunk);
                } else {
                    part.extend_from_slice(&chunk[..room]);
                    carry = Some(chunk.slice(room..));
                }
                if part.len() == size {
                    return Ok(Some((part, (input, carry, false))));
                }
            }
        },
    )
}
