//! Utilities with no knowledge of the product: the clock and retry delays.
//!
//! May import: nothing of the crate.

pub mod backoff;
pub mod clock;
pub mod pace;

/// `bytes` as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
