//! Wiring: start-up checks, then the actors, in one place that the binary and the tests share.

pub mod admin;
mod etl;
mod vk;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::airtable::AirtableActor;
use crate::actors::archive::ArchiveActor;
use crate::actors::claims::{hand_over, ClaimActor, Claimant, StopClaims};
use crate::actors::etl_scheduler::EtlSchedulerActor;
use crate::actors::guard;
use crate::actors::objects::ObjectsPort;
use crate::actors::pool::{Dispatch, DrainPool, WorkerPool};
use crate::actors::store::{StoreActor, StoreStats, TakeReplay, WriteFinished};
use crate::actors::store_chat::ReleaseClaims;
use crate::actors::uploader::S3UploaderActor;
use crate::actors::worker::{HandlerFactory, WorkerDeps};
use crate::bot::{Bot, BotDeps};
use crate::clients::airtable::{AirtableClient, AirtableError};
use crate::clients::s3::{S3Target, StorageError};
use crate::clients::telegram::ratelimit::RateLimiter;
use crate::clients::telegram::{TelegramClient, TelegramError, User};
use crate::clients::vk::{Pace, VkClient, VkError};
use crate::config::{AirtableSettings, Settings, TelegramMode};
use crate::embedded_s3::{EmbeddedS3, EmbeddedS3Error};
use crate::intake::poller::{PollLease, PollerActor, StopPolling};
use crate::obs::metrics::Metrics;
use crate::store::StoreError;
use crate::util::backoff::Backoff;

use self::etl::etl_target;
pub use self::etl::run_etl;

/// Why the service did not start. Each text is one line saying what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The embedded S3 server could not start.
    #[error(transparent)]
    EmbeddedS3(#[from] EmbeddedS3Error),
    /// The bucket is missing, refused or unreachable.
    #[error("start-up check failed: {0}")]
    Storage(#[from] StorageError),
    /// Telegram rejected the token.
    #[error("start-up check failed: Telegram rejected the bot token (getMe answered {code} {description}); check telegram.token")]
    InvalidToken {
        /// HTTP code.
        code: u16,
        /// Telegram's description.
        description: String,
    },
    /// The durable store could not be opened.
    #[error("start-up failed: {0}")]
    Store(#[from] StoreError),
    /// The store actor did not answer.
    #[error("start-up failed: the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// Airtable refused the token or does not know the table.
    #[error("start-up check failed: Airtable table `{table}` in base {base} is not usable: {source}; check the airtable settings")]
    Airtable {
        /// Base id.
        base: String,
        /// Table.
        table: String,
        /// The error.
        source: AirtableError,
    },
    /// The ETL failed.
    #[error("ETL failed: {0}")]
    Etl(String),
    /// VK refused the community token.
    #[error("start-up check failed: VK rejected the community token ({detail}); check vk.token")]
    VkToken {
        /// VK's message.
        detail: String,
    },
    /// The token does not serve the community.
    #[error("start-up check failed: VK community {group} is not usable with this token ({detail}); check vk.group_id and vk.token")]
    VkGroup {
        /// The configured community.
        group: i64,
        /// VK's error.
        detail: String,
    },
    /// The community's Bots Long Poll API is off.
    #[error("start-up check failed: the Bots Long Poll API of VK community {group} cannot be used: {missing}; turn it on in Manage community → API usage → Bots Long Poll API, with the event type message_new")]
    VkLongPoll {
        /// The configured community.
        group: i64,
        /// What is off.
        missing: &'static str,
    },
    /// VK could not be reached or answered an error.
    #[error("start-up check failed: VK API at {api_url} is not usable: {source}")]
    Vk {
        /// Base URL from settings.
        api_url: String,
        /// The last error.
        source: VkError,
    },
    /// Telegram did not take the webhook.
    #[error("start-up check failed: Telegram did not take the webhook {url}: {detail}; check telegram.webhook.url (a public https:// URL on port 443, 80, 88 or 8443 that reaches http.listen) and telegram.webhook.secret_token")]
    Webhook {
        /// The configured URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP endpoints could not listen.
    #[error("start-up failed: cannot serve HTTP on {listen}: {source}; check http.listen")]
    Http {
        /// The address.
        listen: String,
        /// The error.
        source: std::io::Error,
    },
    /// Telegram could not be reached or answered an error.
    #[error("start-up check failed: Telegram Bot API at {api_url} is not usable: {source}")]
    Telegram {
        /// Base URL from settings.
        api_url: String,
        /// The last error.
        source: TelegramError,
    },
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
    shutdown_deadline: Duration,
    target: S3Target,
    /// The ledger of this process's multipart uploads (as its uploader's first start).
    uploads: crate::actors::uploader::transfer::Ledger,
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

impl Checked {
    /// Opens the store and starts every actor; answers the running service.
    pub async fn launch(self, hook: Option<FactoryHook>) -> Result<Service, StartupError> {
        let Checked {
            settings,
            target,
            embedded,
            bot,
            vk_pace,
        } = self;
        let metrics = Arc::new(Metrics::default());
        let store = crate::store::Store::open_configured(&settings)?;
        // Replicas on a shared store split the journal by chat claims and the outboxes by item
        // claims, under this process's name.
        let replica = settings
            .store
            .is_postgres()
            .then(|| settings.store.replica_name());
        let claim_ttl = Duration::from_secs(settings.store.lease_secs);
        let store_arbiter = Arbiter::new();
        let store = {
            let replica = replica.clone();
            guard::start(
                &store_arbiter.handle(),
                "StoreActor",
                metrics.clone(),
                move |_| match replica {
                    Some(holder) => {
                        StoreActor::new(store).claiming(holder, claim_ttl.as_millis() as i64)
                    }
                    None => StoreActor::new(store),
                },
            )
        };
        let settings = Arc::new(settings);
        let limiter = RateLimiter::shared(&settings.telegram.rate_limit);
        let uploader_arbiter = Arbiter::new();
        let bucket = target.bucket()?;
        // Multipart uploads are this replica's, of this start: a start aborts only its own
        // leftovers and those of replicas that stopped, never another live replica's.
        let owner = crate::store::UploadOwner {
            replica: replica.clone().unwrap_or_else(|| "local".into()),
            incarnation: format!("{:016x}", rand::random::<u64>()),
        };
        let uploads = crate::actors::uploader::transfer::Ledger {
            store: store.clone(),
            owner: crate::store::UploadOwner {
                replica: owner.replica.clone(),
                incarnation: format!("{}.0", owner.incarnation),
            },
        };
        abort_leftover_uploads(&uploads, &target, false).await;
        let uploader = {
            let (tg, s3, metrics) = (
                settings.telegram.clone(),
                settings.s3.clone(),
                metrics.clone(),
            );
            let (store, limiter, target) = (store.clone(), limiter.clone(), target.clone());
            let vk = settings
                .vk
                .enabled
                .then(|| (vk::client_config(&settings), vk_pace.clone()));
            let m = metrics.clone();
            let m2 = metrics.clone();
            guard::start(
                &uploader_arbiter.handle(),
                "S3UploaderActor",
                m,
                move |_| {
                    let telegram = TelegramClient::new(&tg)
                        .with_limiter(limiter)
                        .with_metrics(metrics.clone());
                    let uploader = S3UploaderActor::new(
                        telegram,
                        (target, bucket),
                        store,
                        (&tg, &s3),
                        metrics,
                    )
                    .owned_by(owner);
                    match vk.clone() {
                        Some((config, pace)) => {
                            uploader.with_vk(VkClient::new(config, pace).with_metrics(m2.clone()))
                        }
                        None => uploader,
                    }
                },
            )
        };
        let airtable_arbiter = Arbiter::new();
        let airtable = settings.airtable.is_configured().then(|| {
            let (at, store, metrics) = (settings.airtable.clone(), store.clone(), metrics.clone());
            let m = metrics.clone();
            guard::start(&airtable_arbiter.handle(), "AirtableActor", m, move |_| {
                AirtableActor::new(&at, store, metrics)
            })
        });
        let archive_arbiter = Arbiter::new();
        let etl_arbiter = Arbiter::new();
        let mut etl_scheduler = None;
        let archive = if settings.archive.is_enabled() {
            let raw = target.with_bucket(&settings.archive.raw_bucket).bucket()?;
            let keep_days = settings.archive.local_copy_days;
            let store = store.clone();
            let etl = etl_target(
                &target,
                &settings,
                embedded.is_some(),
                Some(store.clone().recipient()),
            )?;
            let (ar, etl_store) = (settings.archive.clone(), store.clone());
            let etl_replica = replica.clone();
            let em = metrics.clone();
            etl_scheduler = Some(guard::start(
                &etl_arbiter.handle(),
                "EtlSchedulerActor",
                metrics.clone(),
                move |_| {
                    let scheduler = EtlSchedulerActor::new(etl, ar, Some(etl_store), em.clone());
                    match etl_replica {
                        Some(holder) => scheduler.with_lease(holder, claim_ttl),
                        None => scheduler,
                    }
                },
            ));
            log::info!(
                "archive on for chats {:?}: raw bucket `{}`, enriched bucket `{}`, daily ETL at {} (UTC{:+03}:{:02})",
                settings.archive.chats,
                settings.archive.raw_bucket,
                settings.archive.enriched_bucket,
                settings.archive.etl_at,
                settings.archive.utc_offset_minutes / 60,
                settings.archive.utc_offset_minutes.abs() % 60
            );
            Some(
                guard::start(
                    &archive_arbiter.handle(),
                    "ArchiveActor",
                    metrics.clone(),
                    move |_| ArchiveActor::new(raw, store, keep_days),
                )
                .recipient(),
            )
        } else {
            None
        };
        // With replicas, the workers ask the claims before each update of a claimed chat, and
        // the bots before each effect of one.
        let fence = replica
            .is_some()
            .then(|| Arc::new(crate::actors::fence::ClaimFence::default()));
        let deps = BotDeps {
            fence: fence.clone(),
            objects: ObjectsPort::of(&uploader),
            uploader: uploader.recipient(),
            archive,
            store: store.clone(),
            limiter,
            airtable: airtable.map(Addr::recipient),
            bot_username: bot.as_ref().and_then(|b| b.username.clone()),
            metrics: metrics.clone(),
            vk: settings
                .vk
                .enabled
                .then(|| (vk::client_config(&settings), vk_pace.clone())),
        };
        let factory = Bot::factory(settings.clone(), deps);
        let factory = match hook {
            Some(hook) => hook(factory),
            None => factory,
        };
        let worker_deps = WorkerDeps {
            store: store.clone(),
            max_attempts: settings.max_attempts,
            queue_limit: settings.worker_queue_limit,
            metrics: metrics.clone(),
            fence: fence.clone(),
        };
        let pool = WorkerPool::start(settings.workers, factory, worker_deps);
        // One process works its whole journal: first what the previous run left. Replicas on
        // a shared store work the chats they claim instead, the leftovers included.
        // The claims have a connection of their own, so their rounds never wait behind the
        // workers' statements (nor the workers behind them).
        let claims_arbiter = Arbiter::new();
        let claims = match replica.clone() {
            Some(holder) => {
                let own = crate::store::Store::open_configured(&settings)?;
                let store = guard::start(
                    &claims_arbiter.handle(),
                    "StoreActor",
                    metrics.clone(),
                    move |_| StoreActor::new(own),
                );
                let me = Claimant {
                    holder,
                    ttl: claim_ttl,
                    max_chats: 32 * settings.workers,
                    max_attempts: settings.max_attempts,
                };
                let (pool, m) = (pool.clone().recipient(), metrics.clone());
                // Journal writes of every replica are announced on PostgreSQL.
                let notices = settings.store.is_postgres().then(|| {
                    (
                        settings.store.url.expose().to_string(),
                        crate::store::db::PgLimits::from_settings(&settings.store),
                    )
                });
                Some(guard::start(
                    &Arbiter::current(),
                    "ClaimActor",
                    metrics.clone(),
                    move |_| {
                        let actor = ClaimActor::new(me, store, pool, m);
                        let actor = match notices {
                            Some((url, limits)) => actor.with_notices(url, limits),
                            None => actor,
                        };
                        match fence {
                            Some(fence) => actor.with_fence(fence),
                            None => actor,
                        }
                    },
                ))
            }
            None => None,
        };
        if claims.is_none() {
            replay(&store, &pool, settings.max_attempts, &metrics).await?;
        }
        // Where the intakes hand journaled updates.
        let front: Recipient<Dispatch> = match &claims {
            Some(claims) => claims.clone().recipient(),
            None => pool.clone().recipient(),
        };
        let telegram_line = match &bot {
            Some(bot) => format!(
                "Telegram bot @{} (id {}) via {}{}",
                bot.username.as_deref().unwrap_or("?"),
                bot.id,
                settings.telegram.api_url,
                match settings.telegram.download_limit() {
                    Some(limit) => format!(" (cloud mode: documents up to {limit} bytes)"),
                    None => " (local Bot API server: no download limit)".to_string(),
                }
            ),
            None => "no Telegram bot".to_string(),
        };
        log::info!(
            "tg-ingest started: {telegram_line}, {}, workers={}, S3 endpoint {} bucket `{}`, store {}",
            if settings.vk.enabled {
                format!("VK community {}", settings.vk.group_id)
            } else {
                "no VK bot".to_string()
            },
            settings.workers,
            target.endpoint,
            target.bucket,
            settings.store_name()
        );
        for warning in settings.warnings() {
            log::warn!("settings: {warning}");
        }
        let webhook_mode = settings.telegram.mode == TelegramMode::Webhook;
        let poller = (bot.is_some() && !webhook_mode).then(|| {
            let (tg, dispatch, sinks, m) = (
                (settings.telegram.clone(), settings.security.clone()),
                front.clone(),
                (store.clone().recipient(), store.clone().recipient()),
                metrics.clone(),
            );
            // Replicas on a shared store poll under a lease.
            let lease = replica.clone().map(|holder| {
                log::info!(
                    "replica {holder}: polling Telegram only while holding the poller lease ({} s)",
                    settings.store.lease_secs
                );
                (
                    store.clone(),
                    holder,
                    Duration::from_secs(settings.store.lease_secs),
                )
            });
            guard::start(
                &Arbiter::current(),
                "PollerActor",
                metrics.clone(),
                move |_| {
                    let poller =
                        PollerActor::new(tg.clone(), dispatch.clone(), sinks.clone(), m.clone());
                    let Some((store, holder, ttl)) = lease.clone() else {
                        return poller;
                    };
                    poller.with_lease(PollLease { store, holder, ttl })
                },
            )
        });
        let vk_poller = settings.vk.enabled.then(|| {
            vk::start_poller(
                &settings,
                &vk_pace,
                (front.clone(), store.clone(), metrics.clone()),
                replica.clone().map(|holder| (holder, claim_ttl)),
            )
        });
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let http = if settings.http.listen.is_empty() {
            None
        } else {
            let tg = &settings.telegram;
            let quiet = |wait: u64, timeout: u64| Duration::from_secs(wait + timeout + 30);
            let telegram_within = if poller.is_some() {
                Some(quiet(tg.poll_timeout_secs, tg.request_timeout_secs))
            } else if bot.is_some() {
                // Webhook mode: stamped by deliveries and by each getWebhookInfo check.
                Some(quiet(
                    2 * tg.webhook.check_interval_secs,
                    tg.request_timeout_secs,
                ))
            } else {
                None
            };
            let readiness = crate::intake::http::Readiness {
                store: store.clone(),
                target: target.clone(),
                metrics: metrics.clone(),
                telegram_within,
                vk_within: vk_poller
                    .is_some()
                    .then(|| quiet(settings.vk.wait, settings.vk.request_timeout_secs)),
                closing: closing.clone(),
            };
            let webhook = (webhook_mode && bot.is_some()).then(|| {
                let intake = crate::intake::webhook::WebhookIntake {
                    secret: tg.webhook.secret_token.clone(),
                    max_body: (tg.webhook.max_body_kib as usize).saturating_mul(1024),
                    security: settings.security.clone(),
                    store: store.clone(),
                    pool: front.clone(),
                    metrics: metrics.clone(),
                    closing: closing.clone(),
                };
                (tg.webhook.path.clone(), intake)
            });
            let listen = settings.http.listen.clone();
            Some(
                crate::intake::http::HttpEndpoints::start(&listen, readiness, webhook)
                    .map_err(|source| StartupError::Http { listen, source })?,
            )
        };
        let webhook_watch = if webhook_mode && bot.is_some() {
            if let Err(e) = set_webhook(&settings).await {
                if let Some(http) = http {
                    http.stop().await;
                }
                pool.do_send(StopPool);
                return Err(e);
            }
            Some(crate::intake::webhook::watch(
                settings.telegram.clone(),
                store.clone(),
                metrics.clone(),
            ))
        } else {
            None
        };
        // Tests hold the launch here (`FAILPOINTS=service.launch=return(MS)`), without blocking
        // the runtime, to stop the service while its actors already run.
        if fail::has_failpoints() {
            let hold = fail::eval("service.launch", |ms| ms.and_then(|ms| ms.parse().ok()));
            if let Some(ms) = hold.flatten() {
                actix_rt::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        Ok(Service {
            http_addr: http.as_ref().map(|h| h.addr),
            http,
            closing,
            webhook_watch,
            metrics,
            s3_endpoint: target.endpoint.clone(),
            target,
            uploads,
            bot,
            poller,
            vk_poller,
            pool,
            claims: claims.zip(replica),
            store,
            shutdown_deadline: Duration::from_secs(settings.shutdown_deadline_secs),
            _etl_scheduler: etl_scheduler,
            uploader_arbiter,
            arbiters: vec![
                airtable_arbiter,
                archive_arbiter,
                etl_arbiter,
                store_arbiter,
                claims_arbiter,
            ],
            _embedded: embedded,
        })
    }
}

impl Service {
    /// Sizes of the journal and the poison list.
    pub async fn store_stats(&self) -> Option<(u64, u64)> {
        self.store.send(StoreStats).await.ok()?.ok()
    }

    /// Stops polling, lets in-flight work finish within the shutdown deadline, then stops the
    /// actors. Unfinished updates stay in the journal for the next start.
    pub async fn stop(mut self) {
        // Webhook deliveries are answered 503 from now on (Telegram sends them again later)
        // and readiness fails; the endpoints stay up while in-flight work drains.
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(watch) = &self.webhook_watch {
            watch.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(poller) = &self.poller {
            let _ = poller.send(StopPolling).await;
        }
        if let Some(poller) = &self.vk_poller {
            let _ = poller.send(StopPolling).await;
        }
        if let Some((claims, _)) = &self.claims {
            let _ = claims.send(StopClaims).await;
        }
        let drained =
            actix_rt::time::timeout(self.shutdown_deadline, self.pool.send(DrainPool)).await;
        if let (Ok(_), Some((_, holder))) = (&drained, &self.claims) {
            // Everything this replica took on is done: its chats and outbox items go to the
            // other replicas at once. Otherwise its claims run out and the chats are taken
            // over with their unfinished updates charged.
            let _ = self.store.send(WriteFinished).await;
            match self.store.send(ReleaseClaims(holder.clone())).await {
                Ok(Ok(())) => log::info!("replica {holder} released its chat and outbox claims"),
                Ok(Err(e)) => log::warn!(
                    "cannot release this replica's claims ({e}); they run out by themselves"
                ),
                Err(e) => log::warn!(
                    "store unavailable ({e}); this replica's claims run out by themselves"
                ),
            }
        }
        if drained.is_err() {
            log::warn!(
                "in-flight work did not finish within {} s; it stays in the journal and is replayed at the next start",
                self.shutdown_deadline.as_secs()
            );
            // Stop the uploads where they are, then abort their multipart uploads on the server.
            self.uploader_arbiter.stop();
            let _ = actix_rt::time::timeout(
                Duration::from_secs(10),
                abort_leftover_uploads(&self.uploads, &self.target, true),
            )
            .await;
        } else {
            // Aborts that failed earlier (S3 was down) are tried once more before the process
            // goes, not left for the next start.
            let _ = actix_rt::time::timeout(
                Duration::from_secs(5),
                abort_leftover_uploads(&self.uploads, &self.target, false),
            )
            .await;
        }
        // The finished updates waiting for their batch are written before the store stops.
        let _ = self.store.send(WriteFinished).await;
        if let Some((journal, poison)) = self.store_stats().await {
            log::info!("journal holds {journal} unfinished updates; poison list holds {poison}");
        }
        if let Some(http) = self.http.take() {
            http.stop().await;
        }
        self.pool.do_send(StopPool);
        self.uploader_arbiter.stop();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        log::info!("tg-ingest stopped");
    }

    /// Runs until `shutdown` resolves, then stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        log::info!("shutdown requested");
        self.stop().await;
    }
}

/// Checks the bot token (`getMe`), removes any webhook so polling works, and sets the command
/// menu; answers the bot's own user.
async fn check_telegram(settings: &Settings) -> Result<User, StartupError> {
    let telegram = TelegramClient::new(&settings.telegram);
    let attempts = settings.telegram.startup_attempts.max(1);
    let api_url = settings.telegram.api_url.clone();
    let telegram_error = |source: TelegramError| match source {
        TelegramError::Api {
            code: code @ (401 | 404),
            description,
            ..
        } => StartupError::InvalidToken { code, description },
        source => StartupError::Telegram {
            api_url: api_url.clone(),
            source,
        },
    };
    let bot = retry(
        "Telegram getMe",
        attempts,
        TelegramError::is_retryable,
        || telegram.get_me(),
    )
    .await
    .map_err(telegram_error)?;
    if settings.telegram.mode == TelegramMode::Polling {
        // getUpdates does not work while a webhook is set: switching back to polling removes it
        // (updates waiting for delivery are kept).
        retry(
            "Telegram deleteWebhook",
            attempts,
            TelegramError::is_retryable,
            || telegram.delete_webhook(),
        )
        .await
        .map_err(telegram_error)?;
    }
    // The command menu is a convenience: a failure is logged, not fatal.
    if let Err(e) = telegram
        .set_my_commands(crate::conversation::texts::COMMANDS)
        .await
    {
        log::warn!("Telegram setMyCommands failed (the command menu stays as it was): {e}");
    }
    Ok(bot)
}

/// Sets the webhook (`setWebhook` with the URL, secret and update kinds) and confirms it with
/// `getWebhookInfo`.
async fn set_webhook(settings: &Settings) -> Result<(), StartupError> {
    let tg = &settings.telegram;
    let telegram = TelegramClient::new(tg);
    let attempts = tg.startup_attempts.max(1);
    let failed = |detail: String| StartupError::Webhook {
        url: tg.webhook.url.clone(),
        detail,
    };
    retry(
        "Telegram setWebhook",
        attempts,
        TelegramError::is_retryable,
        || {
            telegram.set_webhook(
                &tg.webhook.url,
                &tg.webhook.secret_token,
                &tg.allowed_updates,
                tg.webhook.max_connections,
            )
        },
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    let info = retry(
        "Telegram getWebhookInfo",
        attempts,
        TelegramError::is_retryable,
        || telegram.get_webhook_info(),
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    if info.url != tg.webhook.url {
        return Err(failed(format!(
            "getWebhookInfo reports {:?} after setWebhook",
            info.url
        )));
    }
    log::info!(
        "Telegram webhook set: deliveries to {} (served on {}{}), max_connections={}, {} updates pending",
        tg.webhook.url,
        settings.http.listen,
        tg.webhook.path,
        info.max_connections.unwrap_or(tg.webhook.max_connections),
        info.pending_update_count
    );
    Ok(())
}

/// Aborts the multipart uploads this process must abort: its own leftovers and failed aborts,
/// those of replicas that stopped, and with `mine_too` (at a shutdown deadline) its own.
async fn abort_leftover_uploads(
    ledger: &crate::actors::uploader::transfer::Ledger,
    target: &S3Target,
    mine_too: bool,
) {
    match crate::actors::uploader::transfer::sweep(ledger, target, mine_too).await {
        Ok((0, 0)) => {}
        Ok((aborted, 0)) => {
            log::info!("aborted {aborted} unfinished multipart uploads left open")
        }
        Ok((aborted, left)) => log::warn!(
            "aborted {aborted} unfinished multipart uploads; {left} could not be aborted and are tried again by the uploader (or the next start)"
        ),
        Err(e) => log::warn!("could not abort unfinished multipart uploads: {e}"),
    }
}

/// `tg-ingest post-button`: posts the "go" button to a chat and returns its message id.
pub async fn post_button(
    settings: &Settings,
    chat_id: i64,
    text: Option<&str>,
    label: Option<&str>,
) -> Result<i64, StartupError> {
    crate::install_tls_provider();
    let telegram = TelegramClient::new(&settings.telegram);
    let key = crate::domain::button::ButtonKey::from_token(settings.telegram.token.expose());
    let text = text.unwrap_or(&settings.button.text);
    let label = label.unwrap_or(&settings.button.label);
    crate::domain::button::post_button(&telegram, &key, chat_id, text, label)
        .await
        .map_err(|source| match source {
            TelegramError::Api {
                code: code @ (401 | 404),
                description,
                ..
            } => StartupError::InvalidToken { code, description },
            source => StartupError::Telegram {
                api_url: settings.telegram.api_url.clone(),
                source,
            },
        })
}

/// With Airtable configured, checks token, base and table once; without, warns that rows wait.
async fn check_airtable(settings: &AirtableSettings) -> Result<(), StartupError> {
    if !settings.is_configured() {
        log::warn!(
            "Airtable is not configured (airtable.base_id is empty): button presses are kept in the outbox until it is"
        );
        return Ok(());
    }
    let client = AirtableClient::new(settings);
    let checked = retry(
        "Airtable check",
        3,
        |e: &AirtableError| !e.is_permanent(),
        || client.check(),
    )
    .await;
    match checked {
        Ok(()) => {
            log::info!(
                "Airtable table `{}` in base {} is reachable",
                settings.table,
                settings.base_id
            );
            Ok(())
        }
        Err(source) if source.proves_settings_wrong() => Err(StartupError::Airtable {
            base: settings.base_id.clone(),
            table: settings.table.clone(),
            source,
        }),
        Err(e) => {
            log::warn!(
                "Airtable is not available at start-up ({e}); starting anyway: button presses wait in the outbox and are written when Airtable answers"
            );
            Ok(())
        }
    }
}

/// Hands the updates a previous run left in the journal to the pool, before any polling, or
/// moves them aside when they have been attempted too often (e.g. they crashed the process).
async fn replay(
    store: &Addr<StoreActor>,
    pool: &Addr<WorkerPool>,
    max_attempts: u32,
    metrics: &Metrics,
) -> Result<(), StartupError> {
    const PAGE: usize = 500;
    let started = std::time::Instant::now();
    let (mut count, mut replayed, mut after) = (0, 0, None);
    let target = pool.clone().recipient();
    loop {
        let entries = store
            .send(TakeReplay { after, limit: PAGE })
            .await
            .map_err(|e| StartupError::StoreUnavailable(e.to_string()))?
            .map_err(|e| StartupError::StoreUnavailable(e.to_string()))?;
        let Some(last) = entries.last() else {
            break;
        };
        after = Some(last.update_id);
        count += entries.len();
        for entry in entries {
            if hand_over(store, &target, entry, max_attempts, metrics).await {
                replayed += 1;
                Metrics::incr(&metrics.updates_replayed);
            }
        }
    }
    if count == 0 {
        return Ok(());
    }
    log::info!(
        "replayed {replayed} of {count} journaled updates from the previous run in {} ms",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Stops the worker pool.
#[derive(Message)]
#[rtype(result = "()")]
struct StopPool;

impl Handler<StopPool> for WorkerPool {
    type Result = ();

    fn handle(&mut self, _: StopPool, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Who asks for the S3 target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    /// The service: it runs the embedded server on `s3.embedded.listen`.
    Serve,
    /// `tg-ingest etl`: it uses the running service's embedded server when there is one
    /// (never a second server over the same directory), else one of its own on a free port.
    ServeOrJoin,
}

/// The S3 target from settings, starting the embedded server when no endpoint is configured.
async fn storage_target(
    settings: &mut Settings,
    mode: Embedded,
) -> Result<(S3Target, Option<EmbeddedS3>), StartupError> {
    if !settings.s3.endpoint.is_empty() {
        return Ok((
            S3Target::from_settings(&settings.s3, &settings.s3.endpoint),
            None,
        ));
    }
    let e = settings.s3.embedded.clone();
    let dir = settings.embedded_s3_dir();
    let secret_file = settings.embedded_secret_file();
    let (secret, source) = crate::embedded_s3::resolve_secret(e.secret_key.expose(), &secret_file)
        .map_err(|source| EmbeddedS3Error::DataDir {
            dir: secret_file.display().to_string(),
            source,
        })?;
    let listen = match mode {
        Embedded::Serve => e.listen.clone(),
        Embedded::ServeOrJoin => "127.0.0.1:0".to_string(),
    };
    let (endpoint, server) = match EmbeddedS3::start(&dir, &listen, &e.access_key, &secret) {
        Ok(server) => (server.endpoint.clone(), Some(server)),
        Err(EmbeddedS3Error::Busy { .. }) if mode == Embedded::ServeOrJoin => {
            let running = running_server_address(&e.listen).ok_or_else(|| {
                StartupError::EmbeddedS3(EmbeddedS3Error::Busy {
                    dir: format!(
                        "{} on a port chosen at start-up; give s3.embedded.listen a fixed port",
                        dir.display()
                    ),
                })
            })?;
            log::info!("using the running service's embedded S3 server at {running}");
            (format!("http://{running}"), None)
        }
        Err(err) => return Err(err.into()),
    };
    settings.s3.max_key_bytes = settings
        .s3
        .max_key_bytes
        .min(embedded_key_limit(&settings.s3.bucket));
    settings.s3.path_style = true;
    settings.s3.access_key = crate::Secret::new(e.access_key.clone());
    settings.s3.secret_key = crate::Secret::new(secret);
    let target = S3Target::from_settings(&settings.s3, &endpoint);
    target.ensure_bucket().await?;
    if server.is_some() {
        let secret = match source {
            crate::embedded_s3::SecretSource::Settings => {
                "as set in s3.embedded.secret_key".to_string()
            }
            crate::embedded_s3::SecretSource::File => {
                format!("in {}", secret_file.display())
            }
        };
        log::info!(
            "embedded S3 server at {endpoint} over {}; bucket `{}`, region `{}`, access key `{}`, secret key {secret}",
            dir.display(),
            settings.s3.bucket,
            settings.s3.region,
            e.access_key
        );
    }
    Ok((target, server))
}

/// Where a running service's embedded server can be reached from this machine: its listen
/// address, with a wildcard address replaced by loopback (none when its port was chosen at
/// start-up).
fn running_server_address(listen: &str) -> Option<std::net::SocketAddr> {
    let mut addr: std::net::SocketAddr = listen.parse().ok().or_else(|| {
        listen
            .strip_prefix("localhost:")
            .and_then(|p| format!("127.0.0.1:{p}").parse().ok())
    })?;
    if addr.port() == 0 {
        return None;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// Creates (embedded server) or checks (configured endpoint) the raw and enriched buckets.
async fn archive_buckets(
    target: &S3Target,
    settings: &Settings,
    embedded: bool,
) -> Result<(), StartupError> {
    for bucket in [
        &settings.archive.raw_bucket,
        &settings.archive.enriched_bucket,
    ] {
        let t = target.with_bucket(bucket);
        if embedded {
            t.ensure_bucket().await?;
        } else {
            let attempts = settings.s3.startup_attempts.max(1);
            retry(
                "S3 bucket check",
                attempts,
                StorageError::is_retryable,
                || t.check_bucket(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Longest key the embedded server can store: it keeps each object as one file (name at most
/// 255 bytes) and its metadata in a file named after the base64 of bucket and key plus about
/// 74 bytes of fixed text.
pub fn embedded_key_limit(bucket: &str) -> usize {
    let bucket_b64 = bucket.len().div_ceil(3) * 4;
    255usize.saturating_sub(74 + bucket_b64) * 3 / 4
}

/// Calls `f` up to `attempts` times while its error is retryable, backing off between calls.
async fn retry<T, E, F, Fut>(
    what: &str,
    attempts: u32,
    retryable: fn(&E) -> bool,
    mut f: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && backoff.attempts() + 1 < attempts => {
                let delay = backoff.next_delay();
                log::warn!(
                    "{what} failed: {e}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                actix_rt::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}
