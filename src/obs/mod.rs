//! Observability: the log format and its scrubber of secrets, and the metrics `/metrics`
//! renders.
//!
//! May import: `util`.

pub mod logging;
pub mod metrics;
