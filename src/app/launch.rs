//! The launch after the checks: the store, then the actors group by group (uploader, Airtable,
//! archive and ETL, workers, claims, intakes, HTTP), each on the thread it runs on.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::etl::etl_target;
use super::intakes::{log_started, replay, start_claims, start_intakes};
use super::shutdown::{abort_leftover_uploads, Shutdown};
use super::{vk, Checked, FactoryHook, Ground, Service, StartupError};
use crate::actors::airtable::AirtableActor;
use crate::actors::archive::{ArchiveActor, FlushArchive};
use crate::actors::etl_scheduler::EtlSchedulerActor;
use crate::actors::fence::ClaimFence;
use crate::actors::guard;
use crate::actors::objects::ObjectsPort;
use crate::actors::pool::{Dispatch, WorkerPool};
use crate::actors::store::StoreActor;
use crate::actors::uploader::ledger::Ledger;
use crate::actors::uploader::S3UploaderActor;
use crate::actors::worker::WorkerDeps;
use crate::bot::{Bot, BotDeps};
use crate::clients::s3::S3Target;
use crate::clients::telegram::ratelimit::{RateLimiter, SharedLimiter};
use crate::clients::telegram::TelegramClient;
use crate::clients::vk::{Pace, VkClient};
use crate::config::Settings;
use crate::obs::metrics::Metrics;
use crate::store::UploadOwner;

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
        let (store_arbiter, g) = start_store(settings)?;
        let settings = g.settings.clone();
        let limiter = RateLimiter::shared(&settings.telegram.rate_limit);
        let (uploader_arbiter, uploader, uploads) =
            start_uploader(&g, &target, &limiter, &vk_pace).await?;
        let (airtable_arbiter, airtable) = start_airtable(&g);
        let (archive_arbiter, etl_arbiter, etl_scheduler, archive) =
            start_archive(&g, &target, embedded.is_some())?;
        // With replicas, the workers ask the claims before each update of a claimed chat, and
        // the bots before each effect of one.
        let fence = g.replica.is_some().then(|| Arc::new(ClaimFence::default()));
        let deps = BotDeps {
            fence: fence.clone(),
            objects: ObjectsPort::of(&uploader),
            uploader: uploader.recipient(),
            archive,
            store: g.store.clone(),
            limiter,
            airtable: airtable.map(Addr::recipient),
            bot_username: bot.as_ref().and_then(|b| b.username.clone()),
            metrics: g.metrics.clone(),
            vk: vk_client(&settings, &vk_pace),
        };
        let pool = start_workers(&g, deps, hook, fence.clone());
        let (claims_arbiter, claims) = start_claims(&g, &pool, fence)?;
        // One process works its whole journal: first what the previous run left. Replicas on
        // a shared store work the chats they claim instead, the leftovers included.
        if claims.is_none() {
            replay(&g.store, &pool, settings.max_attempts, &g.metrics).await?;
        }
        // Where the intakes hand journaled updates.
        let front: Recipient<Dispatch> = match &claims {
            Some(claims) => claims.clone().recipient(),
            None => pool.clone().recipient(),
        };
        log_started(&settings, bot.as_ref(), &target);
        let intake = start_intakes(&g, bot.is_some(), &vk_pace, &front, &target, &pool).await?;
        hold_for_tests().await;
        Ok(Service {
            http_addr: intake.http.as_ref().map(|h| h.addr),
            http: intake.http,
            closing: intake.closing,
            webhook_watch: intake.webhook_watch,
            metrics: g.metrics,
            s3_endpoint: target.endpoint.clone(),
            target,
            uploads,
            bot,
            poller: intake.poller,
            vk_poller: intake.vk_poller,
            pool,
            claims: claims.zip(g.replica),
            store: g.store,
            shutdown: Shutdown::plan(Duration::from_secs(settings.shutdown_deadline_secs)),
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

/// With the VK bot on: how to reach VK, and the pace shared by every caller.
fn vk_client(settings: &Settings, pace: &Pace) -> Option<(crate::clients::vk::VkConfig, Pace)> {
    settings
        .vk
        .enabled
        .then(|| (vk::client_config(settings), pace.clone()))
}

/// Starts the worker pool with the bot (wrapped by `hook` in tests).
fn start_workers(
    g: &Ground,
    deps: BotDeps,
    hook: Option<FactoryHook>,
    fence: Option<Arc<ClaimFence>>,
) -> Addr<WorkerPool> {
    let settings = &g.settings;
    let factory = Bot::factory(settings.clone(), deps);
    let factory = match hook {
        Some(hook) => hook(factory),
        None => factory,
    };
    let worker_deps = WorkerDeps {
        store: g.store.clone(),
        max_attempts: settings.max_attempts,
        queue_limit: settings.worker_queue_limit,
        metrics: g.metrics.clone(),
        fence,
    };
    WorkerPool::start(settings.workers, factory, worker_deps)
}

/// Tests hold the launch here (`FAILPOINTS=service.launch=return(MS)`), without blocking the
/// runtime, to stop the service while its actors already run.
async fn hold_for_tests() {
    if fail::has_failpoints() {
        let hold = fail::eval("service.launch", |ms| ms.and_then(|ms| ms.parse().ok()));
        if let Some(ms) = hold.flatten() {
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            log::info!("launch held {ms} ms (service.launch failpoint)");
        }
    }
}

/// Opens the store and starts its actor on a thread of its own.
fn start_store(settings: Settings) -> Result<(Arbiter, Ground), StartupError> {
    let metrics = Arc::new(Metrics::default());
    let store = crate::store::Store::open_configured(&settings)?;
    // Replicas on a shared store split the journal by chat claims and the outboxes by item
    // claims, under this process's name.
    let replica = settings
        .store
        .is_postgres()
        .then(|| settings.store.replica_name());
    let claim_ttl = Duration::from_secs(settings.store.lease_secs);
    let arbiter = Arbiter::new();
    let store = {
        let (replica, archive) = (replica.clone(), settings.archive.clone());
        guard::start(
            &arbiter.handle(),
            "StoreActor",
            metrics.clone(),
            move |_| {
                let actor = StoreActor::new(store).archiving(archive);
                match replica {
                    Some(holder) => actor.claiming(holder, claim_ttl.as_millis() as i64),
                    None => actor,
                }
            },
        )
    };
    let ground = Ground {
        settings: Arc::new(settings),
        metrics,
        store,
        replica,
        claim_ttl,
    };
    Ok((arbiter, ground))
}

/// Starts the uploader on its own thread, after aborting the multipart uploads earlier runs
/// left open; answers it with the ledger of this process's uploads.
async fn start_uploader(
    g: &Ground,
    target: &S3Target,
    limiter: &SharedLimiter,
    vk_pace: &Pace,
) -> Result<(Arbiter, Addr<S3UploaderActor>, Ledger), StartupError> {
    let settings = &g.settings;
    let arbiter = Arbiter::new();
    let bucket = target.bucket()?;
    // Multipart uploads are this replica's, of this start: a start aborts only its own
    // leftovers and those of replicas that stopped, never another live replica's.
    let owner = UploadOwner {
        replica: g.replica.clone().unwrap_or_else(|| "local".into()),
        incarnation: format!("{:016x}", rand::random::<u64>()),
    };
    let uploads = Ledger {
        store: g.store.clone(),
        owner: UploadOwner {
            replica: owner.replica.clone(),
            incarnation: format!("{}.0", owner.incarnation),
        },
    };
    abort_leftover_uploads(&uploads, target, false).await;
    let (tg, s3, metrics) = (
        settings.telegram.clone(),
        settings.s3.clone(),
        g.metrics.clone(),
    );
    let (store, limiter, target) = (g.store.clone(), limiter.clone(), target.clone());
    let vk = vk_client(settings, vk_pace);
    let m = metrics.clone();
    let uploader = guard::start(
        &arbiter.handle(),
        "S3UploaderActor",
        g.metrics.clone(),
        move |_| {
            let telegram = TelegramClient::new(&tg)
                .with_limiter(limiter)
                .with_metrics(metrics.clone());
            let uploader =
                S3UploaderActor::new(telegram, (target, bucket), store, (&tg, &s3), metrics)
                    .owned_by(owner);
            match vk.clone() {
                Some((config, pace)) => {
                    uploader.with_vk(VkClient::new(config, pace).with_metrics(m.clone()))
                }
                None => uploader,
            }
        },
    );
    Ok((arbiter, uploader, uploads))
}

/// With Airtable configured, starts the actor that writes the outbox's rows.
fn start_airtable(g: &Ground) -> (Arbiter, Option<Addr<AirtableActor>>) {
    let arbiter = Arbiter::new();
    let airtable = g.settings.airtable.is_configured().then(|| {
        let (at, store, metrics) = (
            g.settings.airtable.clone(),
            g.store.clone(),
            g.metrics.clone(),
        );
        guard::start(
            &arbiter.handle(),
            "AirtableActor",
            g.metrics.clone(),
            move |_| AirtableActor::new(&at, store, metrics),
        )
    });
    (arbiter, airtable)
}

/// The archive's threads (the raw writer, the ETL scheduler), the scheduler, and where the bots
/// flush the archive.
type ArchiveGroup = (
    Arbiter,
    Arbiter,
    Option<Addr<EtlSchedulerActor>>,
    Option<Recipient<FlushArchive>>,
);

/// With the archive on, starts the raw archive's writer and the daily ETL's scheduler.
fn start_archive(
    g: &Ground,
    target: &S3Target,
    embedded: bool,
) -> Result<ArchiveGroup, StartupError> {
    let (archive_arbiter, etl_arbiter) = (Arbiter::new(), Arbiter::new());
    let settings = &g.settings;
    if !settings.archive.is_enabled() {
        return Ok((archive_arbiter, etl_arbiter, None, None));
    }
    let raw = target.with_bucket(&settings.archive.raw_bucket).bucket()?;
    let writing = settings.archive.clone();
    let store = g.store.clone();
    let etl = etl_target(target, settings, embedded, Some(store.clone().recipient()))?;
    let (ar, etl_store) = (settings.archive.clone(), store.clone());
    let (etl_replica, claim_ttl, em) = (g.replica.clone(), g.claim_ttl, g.metrics.clone());
    let scheduler = guard::start(
        &etl_arbiter.handle(),
        "EtlSchedulerActor",
        g.metrics.clone(),
        move |_| {
            let scheduler = EtlSchedulerActor::new(etl, ar, Some(etl_store), em.clone());
            match etl_replica {
                Some(holder) => scheduler.with_lease(holder, claim_ttl),
                None => scheduler,
            }
        },
    );
    log::info!(
        "archive on for chats {:?}: raw bucket `{}`, enriched bucket `{}`, daily ETL at {} (UTC{:+03}:{:02})",
        settings.archive.chats,
        settings.archive.raw_bucket,
        settings.archive.enriched_bucket,
        settings.archive.etl_at,
        settings.archive.utc_offset_minutes / 60,
        settings.archive.utc_offset_minutes.abs() % 60
    );
    let archive = guard::start(
        &archive_arbiter.handle(),
        "ArchiveActor",
        g.metrics.clone(),
        move |_| ArchiveActor::new(raw, store, &writing),
    );
    Ok((
        archive_arbiter,
        etl_arbiter,
        Some(scheduler),
        Some(archive.recipient()),
    ))
}
