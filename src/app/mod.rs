//! Wiring: the start-up checks, then the actors, in one place that the binary and the tests
//! share; and the stop, as an ordered plan.
//!
//! `checks` asks the outside services, `embedded` finds or starts the S3 server, `launch` starts
//! the actors group by group, `shutdown` stops them; `etl` and `admin` serve the subcommands.
//! This is the top layer: it may import every other.

pub mod admin;
mod checks;
mod embedded;
mod errors;
mod etl;
mod import;
mod intakes;
mod launch;
pub mod shutdown;
mod vk;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::claims::ClaimActor;
use crate::actors::etl_scheduler::EtlSchedulerActor;
use crate::actors::pool::WorkerPool;
use crate::actors::store::{StoreActor, StoreStats};
use crate::actors::worker::HandlerFactory;
use crate::clients::s3::{S3Target, StorageError};
use crate::clients::telegram::User;
use crate::clients::vk::Pace;
use crate::config::Settings;
use crate::embedded_s3::EmbeddedS3;
use crate::intake::poller::PollerActor;
use crate::obs::metrics::Metrics;

pub use self::checks::post_button;
use self::checks::{archive_buckets, check_airtable, check_telegram, retry};
pub use self::embedded::embedded_key_limit;
use self::embedded::{storage_target, Embedded};
pub use self::errors::StartupError;
pub use self::etl::run_etl;
pub use self::import::run_import;
use self::shutdown::Shutdown;

/// What every group of actors is started with.
struct Ground {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    store: Addr<StoreActor>,
    /// With replicas on a shared store: this replica's name.
    replica: Option<String>,
    claim_ttl: Duration,
}

/// The running service: its actors and the embedded S3 server, if any.
pub struct Service {
    /// Counters of what the service did.
    pub metrics: Arc<Metrics>,
    /// The endpoint the service stores into.
    pub s3_endpoint: String,
    /// The Telegram bot's own user, from `getMe` (none in a VK-only deployment).
    pub bot: Option<User>,
    /// Where `/healthz` and `/readyz` are served, if they are.
    pub http_addr: Option<std::net::SocketAddr>,
    http: Option<crate::intake::http::HttpEndpoints>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    webhook_watch: Option<Arc<std::sync::atomic::AtomicBool>>,
    poller: Option<Addr<PollerActor>>,
    vk_poller: Option<Addr<crate::intake::vk_poller::VkPollerActor>>,
    pool: Addr<WorkerPool>,
    /// With replicas: this replica's chat claims and its name.
    claims: Option<(Addr<ClaimActor>, String)>,
    store: Addr<StoreActor>,
    shutdown: Shutdown,
    target: S3Target,
    /// The ledger of this process's multipart uploads (as its uploader's first start).
    uploads: crate::actors::uploader::ledger::Ledger,
    /// Held so the scheduler's supervisor can restart it (an actor nobody addresses is not).
    _etl_scheduler: Option<Addr<EtlSchedulerActor>>,
    /// The uploader's thread, stopped first when a shutdown deadline runs out.
    uploader_arbiter: Arbiter,
    arbiters: Vec<Arbiter>,
    _embedded: Option<EmbeddedS3>,
}

/// Replaces the handler factory (tests wrap the document bot to inject failures).
pub type FactoryHook = Box<dyn FnOnce(HandlerFactory) -> HandlerFactory + Send>;

/// The outcome of the start-up checks: nothing has been taken in and no actor runs yet, so
/// giving it up (a stop asked for while unreachable services were retried) loses nothing.
pub struct Checked {
    settings: Settings,
    target: S3Target,
    embedded: Option<EmbeddedS3>,
    bot: Option<User>,
    vk_pace: Pace,
}

impl Service {
    /// Runs the start-up checks and starts all actors with the document bot.
    pub async fn start(settings: Settings) -> Result<Self, StartupError> {
        Self::start_with(settings, None).await
    }

    /// As [`Service::start`], letting the caller wrap the handler factory.
    pub async fn start_with(
        settings: Settings,
        hook: Option<FactoryHook>,
    ) -> Result<Self, StartupError> {
        Self::check(settings).await?.launch(hook).await
    }

    /// The start-up checks (retried within their `startup_attempts`): the bucket, the archive
    /// buckets, the Telegram bot, the VK community and the Airtable table.
    pub async fn check(mut settings: Settings) -> Result<Checked, StartupError> {
        crate::install_tls_provider();
        let (target, embedded) = storage_target(&mut settings, Embedded::Serve).await?;
        let attempts = settings.s3.startup_attempts.max(1);
        retry(
            "S3 bucket check",
            attempts,
            StorageError::is_retryable,
            || target.check_bucket(),
        )
        .await?;
        if settings.archive.is_enabled() {
            archive_buckets(&target, &settings, embedded.is_some()).await?;
        }

        let bot = if settings.telegram_enabled() {
            Some(check_telegram(&settings).await?)
        } else {
            log::info!("telegram.token is empty: the Telegram bot does not run");
            None
        };
        let vk_pace = Pace::per_sec(vk::VK_CALLS_PER_SEC);
        if settings.vk.enabled {
            let name = vk::check(&settings, &vk_pace).await?;
            log::info!(
                "VK bot on for community {} «{name}» (API {} v{})",
                settings.vk.group_id,
                settings.vk.api_url,
                settings.vk.api_version
            );
        }
        check_airtable(&settings.airtable).await?;
        Ok(Checked {
            settings,
            target,
            embedded,
            bot,
            vk_pace,
        })
    }
}

impl Service {
    /// Sizes of the journal and the poison list.
    pub async fn store_stats(&self) -> Option<(u64, u64)> {
        self.store.send(StoreStats).await.ok()?.ok()
    }

    /// Runs until `shutdown` resolves, then stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        log::info!("shutdown requested");
        self.stop().await;
    }
}
