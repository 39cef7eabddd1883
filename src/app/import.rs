//! Wiring of `tg-ingest import`: the raw bucket in the archive's layout, and the store (when
//! this data directory has one, or PostgreSQL is configured) told which days got messages, so
//! the service's next ETL pass compacts them, however old they are.

use std::path::Path;

use super::{archive_buckets, storage_target, Embedded, StartupError};
use crate::config::Settings;
use crate::etl::import::{import, ImportReport, ImportTarget};
use crate::etl::LIST_PAGE_KEYS;

/// Imports the export at `path` (the chat `chat_id` of it, when given) into the raw archive.
pub async fn run_import(
    mut settings: Settings,
    path: &Path,
    chat_id: Option<i64>,
) -> Result<ImportReport, StartupError> {
    crate::install_tls_provider();
    let is_embedded = settings.s3.endpoint.is_empty();
    let (target, _server) = storage_target(&mut settings, Embedded::ServeOrJoin).await?;
    archive_buckets(&target, &settings, is_embedded).await?;
    let ar = &settings.archive;
    if let Some(chat) = chat_id.filter(|c| !ar.chats.contains(c)) {
        log::warn!(
            "import: chat {chat} is not in archive.chats; its messages are imported all the same"
        );
    }
    let into = ImportTarget {
        raw: target.with_bucket(&ar.raw_bucket).bucket()?,
        prefix: ar.prefix.clone(),
        utc_offset_minutes: ar.utc_offset_minutes,
        layout: ar.layout,
        segment: ar.segment.clone(),
        max_puts_per_sec: ar.max_puts_per_sec,
        list_page_keys: LIST_PAGE_KEYS,
    };
    let report = import(&into, path, chat_id).await?;
    if !report.keys.is_empty() && (settings.store.is_postgres() || settings.store_path().exists()) {
        let mut store = crate::store::Store::open_configured(&settings)?;
        store.days_touched(&report.keys, crate::util::clock::now_millis())?;
        log::info!(
            "import: {} days marked for the service's next ETL pass in {}",
            report.days.len(),
            settings.store_name()
        );
    }
    Ok(report)
}
