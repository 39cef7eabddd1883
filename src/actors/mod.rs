//! The actors. Each file (or folder) holds one actor and the messages it handles; `store/`
//! groups the `StoreActor`'s messages by concern, `fence` is what the workers ask before each
//! update of a claimed chat.
//!
//! May import: `util`, `obs`, `config`, `clients`, `embedded_s3`, `domain`, `store`, `etl`.

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
