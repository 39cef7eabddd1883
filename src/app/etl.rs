//! Wiring of the daily ETL for the service's scheduler and for the `tg-ingest etl` command.

use actix::prelude::*;

use super::{archive_buckets, storage_target, Embedded, StartupError};
use crate::actors::store::StoreActor;
use crate::clients::s3::S3Target;
use crate::config::Settings;
use crate::etl::ReadOutboxPayloads;
use crate::etl::{run_day, EtlReport, EtlTarget, LIST_PAGE_KEYS};
use crate::util::clock::Day;

/// Listing page size asked of the embedded server: it walks its whole folder for every page,
/// so fewer, larger pages list a big day much faster.
const EMBEDDED_LIST_PAGE_KEYS: usize = 50_000;

/// The ETL's buckets, scratch directory and, if given, the store's copies of archived objects.
pub(super) fn etl_target(
    target: &S3Target,
    settings: &Settings,
    embedded: bool,
    local: Option<Recipient<ReadOutboxPayloads>>,
) -> Result<EtlTarget, StartupError> {
    Ok(EtlTarget {
        raw: target.with_bucket(&settings.archive.raw_bucket).bucket()?,
        enriched: target
            .with_bucket(&settings.archive.enriched_bucket)
            .bucket()?,
        prefix: settings.archive.prefix.clone(),
        tmp_dir: settings.data_dir.join("tmp"),
        rows_per_group: settings.archive.rows_per_group,
        compression: settings.archive.parquet_compression,
        list_page_keys: if embedded {
            EMBEDDED_LIST_PAGE_KEYS
        } else {
            LIST_PAGE_KEYS
        },
        local,
    })
}

/// `tg-ingest etl`: runs the ETL for each day from `from` to `to` (inclusive), reporting
/// progress as `(day index, day count, objects done, objects in the day)`.
///
/// When the data directory holds a store (the service ran here), the archive's local copies
/// are read from it; otherwise every object is fetched from S3.
pub async fn run_etl(
    mut settings: Settings,
    from: Day,
    to: Day,
    progress: &dyn Fn(usize, usize, u64, u64),
) -> Result<Vec<EtlReport>, StartupError> {
    crate::install_tls_provider();
    // In embedded mode: the running service's server, or one of its own on a free port when
    // the service is not running; never a second server over the same directory.
    let is_embedded = settings.s3.endpoint.is_empty();
    let (target, _server) = storage_target(&mut settings, Embedded::ServeOrJoin).await?;
    archive_buckets(&target, &settings, is_embedded).await?;
    let store_path = settings.store_path();
    let store_arbiter = Arbiter::new();
    let local = if settings.store.is_postgres() || store_path.exists() {
        let store = crate::store::Store::open_configured(&settings)?;
        log::info!(
            "ETL: reading the archive's local copies from {}",
            settings.store_name()
        );
        let store =
            StoreActor::start_in_arbiter(&store_arbiter.handle(), move |_| StoreActor::new(store));
        Some(store.recipient())
    } else {
        log::info!(
            "ETL: no store at {}; every object is fetched from S3",
            store_path.display()
        );
        None
    };
    let etl = etl_target(&target, &settings, is_embedded, local)?;
    let reports = run_days(&etl, from, to, progress).await;
    store_arbiter.stop();
    reports
}

/// Runs the ETL for each day from `from` to `to`, stopping at the first failure.
async fn run_days(
    etl: &EtlTarget,
    from: Day,
    to: Day,
    progress: &dyn Fn(usize, usize, u64, u64),
) -> Result<Vec<EtlReport>, StartupError> {
    let days: Vec<Day> = (from.0..=to.0).map(Day).collect();
    let mut reports = Vec::with_capacity(days.len());
    for (i, day) in days.iter().enumerate() {
        let report = run_day(etl, *day, &|done, total| {
            progress(i, days.len(), done, total)
        })
        .await
        .map_err(|e| StartupError::Etl(e.to_string()))?;
        progress(
            i + 1,
            days.len(),
            report.source_objects,
            report.source_objects,
        );
        reports.push(report);
    }
    Ok(reports)
}
