//! The actors. Each file holds one actor and the messages it handles.

pub mod airtable;
pub mod archive;
pub mod claims;
pub mod etl_scheduler;
pub mod fence;
pub mod guard;
pub mod objects;
pub mod pool;
pub mod store;
pub mod uploader;
pub mod worker;
