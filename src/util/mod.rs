//! Utilities with no knowledge of the product: the clock and retry delays.
//!
//! May import: nothing of the crate.

pub mod backoff;
pub mod clock;
