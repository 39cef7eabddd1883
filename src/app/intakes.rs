//! The launch's second half: the claims (with replicas), the replay (without), the intakes
//! that hand journaled updates to them, and the HTTP endpoints.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::checks::set_webhook;
use super::shutdown::StopPool;
use super::{Ground, StartupError};
use crate::actors::claims::{hand_over, ClaimActor, Claimant};
use crate::actors::fence::ClaimFence;
use crate::actors::guard;
use crate::actors::pool::{Dispatch, WorkerPool};
use crate::actors::store::{StoreActor, TakeReplay};
use crate::clients::s3::S3Target;
use crate::clients::telegram::User;
use crate::clients::vk::Pace;
use crate::config::{Settings, TelegramMode};
use crate::intake::http::HttpEndpoints;
use crate::intake::poller::{PollLease, PollerActor};
use crate::intake::vk_poller::VkPollerActor;
use crate::obs::metrics::Metrics;

/// With replicas, starts this replica's chat claims. They have a connection of their own, so
/// their rounds never wait behind the workers' statements (nor the workers behind them).
pub(super) fn start_claims(
    g: &Ground,
    pool: &Addr<WorkerPool>,
    fence: Option<Arc<ClaimFence>>,
) -> Result<(Arbiter, Option<Addr<ClaimActor>>), StartupError> {
    let arbiter = Arbiter::new();
    let Some(holder) = g.replica.clone() else {
        return Ok((arbiter, None));
    };
    let settings = &g.settings;
    let own = crate::store::Store::open_configured(settings)?;
    let store = guard::start(
        &arbiter.handle(),
        "StoreActor",
        g.metrics.clone(),
        move |_| StoreActor::new(own),
    );
    let me = Claimant {
        holder,
        ttl: g.claim_ttl,
        max_chats: 32 * settings.workers,
        max_attempts: settings.max_attempts,
    };
    let (pool, m) = (pool.clone().recipient(), g.metrics.clone());
    // Journal writes of every replica are announced on PostgreSQL.
    let notices = settings.store.is_postgres().then(|| {
        (
            settings.store.url.expose().to_string(),
            crate::store::db::PgLimits::from_settings(&settings.store),
        )
    });
    let claims = guard::start(
        &Arbiter::current(),
        "ClaimActor",
        g.metrics.clone(),
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
    );
    Ok((arbiter, Some(claims)))
}

/// The start-up line: which bots run, how many workers, where documents go, which store.
pub(super) fn log_started(settings: &Settings, bot: Option<&User>, target: &S3Target) {
    let telegram_line = match bot {
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
}

/// Starts the Telegram poller; replicas on a shared store poll under a lease.
fn start_poller(g: &Ground, front: &Recipient<Dispatch>) -> Addr<PollerActor> {
    let settings = &g.settings;
    let (tg, dispatch, sinks, m) = (
        (settings.telegram.clone(), settings.security.clone()),
        front.clone(),
        (g.store.clone().recipient(), g.store.clone().recipient()),
        g.metrics.clone(),
    );
    let lease = g.replica.clone().map(|holder| {
        log::info!(
            "replica {holder}: polling Telegram only while holding the poller lease ({} s)",
            settings.store.lease_secs
        );
        (
            g.store.clone(),
            holder,
            Duration::from_secs(settings.store.lease_secs),
        )
    });
    guard::start(
        &Arbiter::current(),
        "PollerActor",
        g.metrics.clone(),
        move |_| {
            let poller = PollerActor::new(tg.clone(), dispatch.clone(), sinks.clone(), m.clone());
            let Some((store, holder, ttl)) = lease.clone() else {
                return poller;
            };
            poller.with_lease(PollLease { store, holder, ttl })
        },
    )
}

/// The intakes that run, and the HTTP endpoints.
pub(super) struct Started {
    pub(super) poller: Option<Addr<PollerActor>>,
    pub(super) vk_poller: Option<Addr<VkPollerActor>>,
    pub(super) http: Option<HttpEndpoints>,
    /// Set at a stop: webhook deliveries are refused and readiness fails.
    pub(super) closing: Arc<AtomicBool>,
    pub(super) webhook_watch: Option<Arc<AtomicBool>>,
}

/// Starts the Telegram intake (a poller, or the webhook), the VK poller and the HTTP
/// endpoints; they hand journaled updates to `front`.
pub(super) async fn start_intakes(
    g: &Ground,
    telegram: bool,
    vk_pace: &Pace,
    front: &Recipient<Dispatch>,
    target: &S3Target,
    pool: &Addr<WorkerPool>,
) -> Result<Started, StartupError> {
    let settings = &g.settings;
    let webhook = settings.telegram.mode == TelegramMode::Webhook && telegram;
    let poller = (telegram && !webhook).then(|| start_poller(g, front));
    let vk_poller = settings.vk.enabled.then(|| {
        super::vk::start_poller(
            settings,
            vk_pace,
            (front.clone(), g.store.clone(), g.metrics.clone()),
            g.replica.clone().map(|holder| (holder, g.claim_ttl)),
        )
    });
    let closing = Arc::new(AtomicBool::new(false));
    let intakes = Intakes {
        polling: poller.is_some(),
        webhook,
        telegram,
        vk: vk_poller.is_some(),
    };
    let mut http = start_http(g, target, intakes, front, &closing)?;
    let webhook_watch = match webhook {
        true => Some(start_webhook(g, &mut http, pool).await?),
        false => None,
    };
    Ok(Started {
        poller,
        vk_poller,
        http,
        closing,
        webhook_watch,
    })
}

/// Which intakes run, for readiness and the webhook endpoint.
#[derive(Clone, Copy)]
struct Intakes {
    polling: bool,
    webhook: bool,
    telegram: bool,
    vk: bool,
}

/// Serves `/healthz`, `/readyz`, `/metrics` and, in webhook mode, the webhook on `http.listen`.
fn start_http(
    g: &Ground,
    target: &S3Target,
    intakes: Intakes,
    front: &Recipient<Dispatch>,
    closing: &Arc<AtomicBool>,
) -> Result<Option<HttpEndpoints>, StartupError> {
    let settings = &g.settings;
    if settings.http.listen.is_empty() {
        return Ok(None);
    }
    let tg = &settings.telegram;
    let quiet = |wait: u64, timeout: u64| Duration::from_secs(wait + timeout + 30);
    let telegram_within = if intakes.polling {
        Some(quiet(tg.poll_timeout_secs, tg.request_timeout_secs))
    } else if intakes.telegram {
        // Webhook mode: stamped by deliveries and by each getWebhookInfo check.
        Some(quiet(
            2 * tg.webhook.check_interval_secs,
            tg.request_timeout_secs,
        ))
    } else {
        None
    };
    let readiness = crate::intake::http::Readiness {
        store: g.store.clone(),
        target: target.clone(),
        metrics: g.metrics.clone(),
        telegram_within,
        vk_within: intakes
            .vk
            .then(|| quiet(settings.vk.wait, settings.vk.request_timeout_secs)),
        closing: closing.clone(),
    };
    let webhook = intakes.webhook.then(|| {
        let intake = crate::intake::webhook::WebhookIntake {
            secret: tg.webhook.secret_token.clone(),
            max_body: (tg.webhook.max_body_kib as usize).saturating_mul(1024),
            security: settings.security.clone(),
            store: g.store.clone(),
            pool: front.clone(),
            metrics: g.metrics.clone(),
            closing: closing.clone(),
        };
        (tg.webhook.path.clone(), intake)
    });
    let listen = settings.http.listen.clone();
    HttpEndpoints::start(&listen, readiness, webhook)
        .map(Some)
        .map_err(|source| StartupError::Http { listen, source })
}

/// Hands the updates a previous run left in the journal to the pool, before any polling, or
/// moves them aside when they have been attempted too often (e.g. they crashed the process).
pub(super) async fn replay(
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

/// In webhook mode: sets the webhook (stopping what was started if Telegram does not take it)
/// and starts the watch that checks it stays set.
async fn start_webhook(
    g: &Ground,
    http: &mut Option<HttpEndpoints>,
    pool: &Addr<WorkerPool>,
) -> Result<Arc<AtomicBool>, StartupError> {
    if let Err(e) = set_webhook(&g.settings).await {
        if let Some(http) = http.take() {
            http.stop().await;
        }
        pool.do_send(StopPool);
        return Err(e);
    }
    Ok(crate::intake::webhook::watch(
        g.settings.telegram.clone(),
        g.store.clone(),
        g.metrics.clone(),
    ))
}
