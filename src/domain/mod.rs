//! The product's own rules, free of any store or actor: what the journal holds (an update of
//! either platform) and who may be served, S3 key naming, the go button's signed data, archive
//! naming, and the neutral chat vocabulary the conversation speaks.
//!
//! May import: `util`, `obs`, `config`, `clients` (the platforms' update types).

pub mod archive;
pub mod button;
pub mod chat;
pub mod inbound;
pub mod keys;
pub mod segment;
