//! `AirtableActor`: delivers the rows in the durable `airtable` outbox.
//!
//! It sends batches of up to `batch_size` rows as idempotent upserts, never faster than
//! `requests_per_sec` counted over every replica on the store (each request takes a turn of
//! the base's rate in the store, [`RateTurn`]). After a `429` every replica pauses
//! `rate_limited_wait_secs`; on 5xx and network
//! errors it retries forever with capped backoff and jitter. Answers that prove the settings
//! wrong (401, 403, 404) pause delivery with an error in the log and keep every row: they are
//! delivered once the token, base or table is fixed. Answers about the rows themselves (400,
//! 413, 422) move the row to the dead letters with the error; a batch refused so is retried
//! row by row so only the bad row is set aside. It drains shortly after being
//! kicked ([`FlushOutbox`]; the short linger lets presses that arrive together share a batch)
//! and every second.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;

use super::store::{HoldRate, RateTurn};
use super::store::{OutboxDelivered, OutboxFailed, PendingOutbox, StoreActor};
use crate::clients::airtable::{AirtableClient, AirtableError};
use crate::config::AirtableSettings;
use crate::domain::button::AIRTABLE_OUTBOX;
use crate::obs::metrics::Metrics;
use crate::store::OutboxItem;
use crate::util::backoff::Backoff;

/// New rows are waiting: deliver them now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushOutbox;

/// How long a kick waits so that rows arriving together go in one batch.
const LINGER: Duration = Duration::from_millis(250);

/// How long after claiming rows a request for them may still start. A claim lasts at least
/// 3 s (`store.lease_secs`): rows are sent well within it, never by two replicas. A turn of
/// the rate further off pauses delivery instead.
const SEND_WINDOW: Duration = Duration::from_secs(1);

/// How a drain ended.
enum Drained {
    /// Nothing is left.
    Empty,
    /// Delivery must pause this long.
    Pause(Duration),
}

/// The Airtable writer.
pub struct AirtableActor {
    client: Rc<AirtableClient>,
    store: Addr<StoreActor>,
    batch_size: usize,
    interval: Duration,
    rate: Arc<str>,
    rate_limited_wait: Duration,
    backoff: Backoff,
    last_request: Rc<std::cell::Cell<Option<Instant>>>,
    draining: bool,
    lingering: bool,
    paused_until: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl AirtableActor {
    /// A writer for the table in `settings`.
    pub fn new(
        settings: &AirtableSettings,
        store: Addr<StoreActor>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client: Rc::new(AirtableClient::new(settings)),
            store,
            batch_size: settings.batch_size,
            // A little under the limit, so a window of one second never holds one too many.
            interval: Duration::from_secs_f64(1.05 / settings.requests_per_sec),
            // Airtable counts requests per base.
            rate: format!("airtable:{}", settings.base_id).into(),
            rate_limited_wait: Duration::from_secs(settings.rate_limited_wait_secs),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
            last_request: Rc::default(),
            draining: false,
            lingering: false,
            paused_until: None,
            metrics,
        }
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.lingering || self.paused_until.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        self.draining = true;
        fail::fail_point!("airtable.drain");
        let job = Delivery {
            client: self.client.clone(),
            store: self.store.clone(),
            batch_size: self.batch_size,
            interval: self.interval,
            rate: self.rate.clone(),
            last_request: self.last_request.clone(),
            metrics: self.metrics.clone(),
        };
        ctx.spawn(job.run().into_actor(self).map(|outcome, act, ctx| {
            act.draining = false;
            match outcome {
                Ok(Drained::Empty) => {
                    act.backoff.reset();
                    act.paused_until = None;
                }
                Ok(Drained::Pause(wait)) => act.pause(wait, ctx),
                Err(e) if e.is_rate_limited() => {
                    log::warn!(
                        "Airtable: rate limit reached (429); pausing {} s",
                        act.rate_limited_wait.as_secs()
                    );
                    // The limit is the base's: the other replicas pause too.
                    act.store.do_send(HoldRate {
                        name: act.rate.clone(),
                        ms: act.rate_limited_wait.as_millis() as i64,
                    });
                    act.pause(act.rate_limited_wait, ctx);
                }
                Err(e) if e.pauses_sink() => {
                    let wait = act.backoff.next_delay();
                    log::error!(
                        "Airtable refuses the configured token, base or table ({e}); rows are kept and delivery pauses, next try in {:.1} s: fix the airtable settings",
                        wait.as_secs_f64()
                    );
                    act.pause(wait, ctx);
                }
                Err(e) => {
                    let wait = act.backoff.next_delay();
                    log::warn!("Airtable: {e}; retrying in {:.1} s", wait.as_secs_f64());
                    act.pause(wait, ctx);
                }
            }
        }));
    }

    fn pause(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        self.paused_until = Some(Instant::now() + wait);
        ctx.run_later(wait, |act, ctx| {
            act.paused_until = None;
            act.drain(ctx);
        });
    }
}

impl Supervised for AirtableActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // A pause Telegram or Airtable asked for stays; the drain in flight was dropped.
        self.draining = false;
        self.lingering = false;
    }
}

impl Actor for AirtableActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.drain(ctx));
        self.drain(ctx);
    }
}

impl Handler<FlushOutbox> for AirtableActor {
    type Result = ();

    fn handle(&mut self, _: FlushOutbox, ctx: &mut Context<Self>) {
        if self.lingering {
            return;
        }
        self.lingering = true;
        ctx.run_later(LINGER, |act, ctx| {
            act.lingering = false;
            act.drain(ctx);
        });
    }
}

/// One drain of the outbox, detached from the actor.
struct Delivery {
    client: Rc<AirtableClient>,
    store: Addr<StoreActor>,
    batch_size: usize,
    interval: Duration,
    rate: Arc<str>,
    last_request: Rc<std::cell::Cell<Option<Instant>>>,
    metrics: Arc<Metrics>,
}

impl Delivery {
    /// Delivers batches until the outbox is empty or a retryable error stops it.
    async fn run(self) -> Result<Drained, AirtableError> {
        loop {
            let items = match self
                .store
                .send(PendingOutbox {
                    kind: AIRTABLE_OUTBOX,
                    limit: self.batch_size,
                })
                .await
            {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    log::error!("Airtable: cannot read the outbox: {e}");
                    return Ok(Drained::Pause(Duration::from_secs(5)));
                }
                Err(_) => return Ok(Drained::Pause(Duration::from_secs(5))),
            };
            if items.is_empty() {
                return Ok(Drained::Empty);
            }
            let window = Instant::now() + SEND_WINDOW;
            if let Err(wait) = self.turn(window).await {
                return Ok(Drained::Pause(wait));
            }
            match self.send(&items).await {
                Ok(()) => self.delivered(&items),
                Err(e) if e.is_permanent() && items.len() > 1 => {
                    log::warn!(
                        "Airtable refused a batch of {} rows ({e}); sending them one by one",
                        items.len()
                    );
                    for item in &items {
                        if let Err(wait) = self.turn(window).await {
                            return Ok(Drained::Pause(wait));
                        }
                        match self.send(std::slice::from_ref(item)).await {
                            Ok(()) => self.delivered(std::slice::from_ref(item)),
                            Err(e) if e.is_permanent() => self.dead(item, &e),
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.is_permanent() => self.dead(&items[0], &e),
                Err(e) => {
                    for item in &items {
                        self.store.do_send(OutboxFailed {
                            id: item.id,
                            reason: e.to_string(),
                            dead: false,
                        });
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Waits for the next turn of the base's rate, shared by every replica through the store
    /// (spaced by this replica alone while the store does not answer). `Err(wait)`: the turn
    /// comes after `deadline`, too late for the rows claimed; delivery pauses that long.
    async fn turn(&self, deadline: Instant) -> Result<(), Duration> {
        let shared = self
            .store
            .send(RateTurn {
                name: self.rate.clone(),
                interval_ms: self.interval.as_millis() as i64,
            })
            .await;
        let now = Instant::now();
        let alone = || {
            self.last_request.get().map_or(Duration::ZERO, |last| {
                (last + self.interval).saturating_duration_since(now)
            })
        };
        let wait = match shared {
            Ok(Ok(ms)) => Duration::from_millis(ms as u64),
            Ok(Err(e)) => {
                log::debug!("Airtable: no shared turn ({e}); spacing this replica's requests");
                alone()
            }
            Err(_) => alone(),
        };
        if now + wait > deadline {
            return Err(wait);
        }
        actix_rt::time::sleep(wait).await;
        self.last_request.set(Some(Instant::now()));
        Ok(())
    }

    /// One request (its turn of the rate taken).
    async fn send(&self, items: &[OutboxItem]) -> Result<(), AirtableError> {
        let records: Vec<Value> = items
            .iter()
            .map(|i| serde_json::from_str(&i.payload).unwrap_or(Value::Null))
            .collect();
        let result = self.client.upsert(&records).await;
        self.metrics.airtable_answered(match &result {
            Ok(_) => Some(200),
            Err(AirtableError::Api { status, .. }) => Some(*status),
            Err(AirtableError::Network(_)) => None,
        });
        if matches!(&result, Err(AirtableError::Api { status: 429, .. })) {
            self.metrics.api_rate_limited("airtable", "upsert");
        }
        result
    }

    fn delivered(&self, items: &[OutboxItem]) {
        Metrics::incr(&self.metrics.airtable_requests);
        self.metrics
            .airtable_rows
            .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
        log::info!(
            "Airtable: {} row(s) written: {}",
            items.len(),
            items
                .iter()
                .map(|i| i.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.store.do_send(OutboxDelivered {
            ids: items.iter().map(|i| i.id).collect(),
            keep_payload: false,
        });
    }

    fn dead(&self, item: &OutboxItem, e: &AirtableError) {
        Metrics::incr(&self.metrics.airtable_dead_letters);
        log::error!(
            "Airtable will not take row {} ({e}); moved to the dead letters. Fix the table or settings; retrying cannot heal this",
            item.key
        );
        self.store.do_send(OutboxFailed {
            id: item.id,
            reason: e.to_string(),
            dead: true,
        });
    }
}
