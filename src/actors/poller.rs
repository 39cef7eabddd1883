//! `PollerActor`: the one and only caller of `getUpdates` for the bot token.
//!
//! It fetches a batch, hands every update to the worker pool and moves its offset past an
//! update only after the pool has accepted it, so an update is confirmed to Telegram (by the
//! next `getUpdates`) only once it has been handed over. It does no business logic. Only one
//! `getUpdates` call is ever in flight: the next poll is scheduled when the previous one ends.
//! Errors and suspiciously quick empty answers back off; `retry_after` is honoured.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::pool::Dispatch;
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::settings::TelegramSettings;
use crate::telegram::{IncomingUpdate, TelegramClient, TelegramError};

/// Polls once; the actor sends it to itself.
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

/// Stops polling after the current call; answered when no call is in flight any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPolling;

/// What one poll achieved.
enum PollOutcome {
    /// Updates fetched (possibly none) and the offset after those handed over.
    Fetched {
        count: usize,
        handed_over: usize,
        next_offset: i64,
        elapsed: Duration,
        refused: bool,
    },
    /// The call failed.
    Failed(TelegramError),
}

/// The long-polling loop.
pub struct PollerActor {
    telegram: Rc<TelegramClient>,
    settings: TelegramSettings,
    target: Recipient<Dispatch>,
    offset: i64,
    backoff: Backoff,
    stopping: bool,
    polling: bool,
    metrics: Arc<Metrics>,
}

impl PollerActor {
    /// A poller that hands updates to `target`, starting at `offset` (0 = whatever Telegram holds).
    pub fn new(
        settings: TelegramSettings,
        target: Recipient<Dispatch>,
        offset: i64,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            telegram: Rc::new(TelegramClient::new(&settings)),
            settings,
            target,
            offset,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            stopping: false,
            polling: false,
            metrics,
        }
    }

    /// How long to wait before the next poll, and what to log about it.
    fn next_delay(&mut self, outcome: &PollOutcome) -> Duration {
        match outcome {
            PollOutcome::Fetched { refused: true, .. } => self.backoff.next_delay(),
            PollOutcome::Fetched { count, elapsed, .. } => {
                let quick = *elapsed < Duration::from_secs(self.settings.poll_timeout_secs) / 2;
                if *count == 0 && quick {
                    let delay = self.backoff.next_delay();
                    log::warn!(
                        "getUpdates returned no updates after {} ms instead of waiting up to {} s; polling again in {} ms",
                        elapsed.as_millis(),
                        self.settings.poll_timeout_secs,
                        delay.as_millis()
                    );
                    delay
                } else {
                    self.backoff.reset();
                    Duration::ZERO
                }
            }
            PollOutcome::Failed(e) => {
                if let Some(wait) = e.retry_after() {
                    log::warn!(
                        "getUpdates: Telegram asks to wait {} s (429); waiting",
                        wait.as_secs()
                    );
                    return wait;
                }
                let delay = self.backoff.next_delay();
                match e.code() {
                    Some(409) => log::error!(
                        "getUpdates: 409 Conflict: another instance is polling this bot token or a webhook is set ({e}); retrying in {:.1} s",
                        delay.as_secs_f64()
                    ),
                    Some(401) => log::error!(
                        "getUpdates: Telegram rejects the bot token ({e}); retrying in {:.1} s",
                        delay.as_secs_f64()
                    ),
                    _ => log::warn!("getUpdates failed: {e}; retrying in {:.1} s", delay.as_secs_f64()),
                }
                delay
            }
        }
    }
}

/// Fetches one batch and hands its updates over in order, stopping at the first refusal.
async fn poll_once(
    telegram: Rc<TelegramClient>,
    target: Recipient<Dispatch>,
    offset: i64,
    limit: u32,
    allowed: Vec<String>,
    metrics: Arc<Metrics>,
) -> PollOutcome {
    let started = Instant::now();
    let raws = match telegram.get_updates(offset, limit, &allowed).await {
        Ok(raws) => raws,
        Err(e) => return PollOutcome::Failed(e),
    };
    let elapsed = started.elapsed();
    let count = raws.len();
    let mut next_offset = offset;
    let mut handed_over = 0;
    let mut refused = false;
    for raw in raws {
        let update = match IncomingUpdate::parse(raw) {
            Ok(u) => Arc::new(u),
            Err(e) => {
                log::error!(
                    "getUpdates returned an update without a readable update_id ({e}); skipped"
                );
                continue;
            }
        };
        let id = update.update_id;
        if id < next_offset {
            log::debug!("update_id={id} was already handed over; skipped");
            continue;
        }
        match target.send(Dispatch(update)).await {
            Ok(Ok(())) => {
                Metrics::incr(&metrics.updates_dispatched);
                next_offset = id + 1;
                handed_over += 1;
            }
            Ok(Err(e)) => {
                log::error!("{e}; it will be fetched again");
                refused = true;
                break;
            }
            Err(e) => {
                log::error!(
                    "worker pool unavailable for update_id={id} ({e}); it will be fetched again"
                );
                refused = true;
                break;
            }
        }
    }
    PollOutcome::Fetched {
        count,
        handed_over,
        next_offset,
        elapsed,
        refused,
    }
}

impl Actor for PollerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            "polling started: timeout={} s, limit={}, allowed_updates={:?}",
            self.settings.poll_timeout_secs,
            self.settings.poll_limit,
            self.settings.allowed_updates
        );
        ctx.notify(Poll);
    }
}

impl Handler<Poll> for PollerActor {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Context<Self>) {
        if self.stopping || self.polling {
            return;
        }
        self.polling = true;
        let fut = poll_once(
            self.telegram.clone(),
            self.target.clone(),
            self.offset,
            self.settings.poll_limit,
            self.settings.allowed_updates.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            act.polling = false;
            if let PollOutcome::Fetched {
                count,
                handed_over,
                next_offset,
                ..
            } = &outcome
            {
                act.offset = *next_offset;
                if *count > 0 {
                    log::debug!("fetched {count} updates, handed over {handed_over}, offset now {next_offset}");
                }
            }
            if act.stopping {
                ctx.stop();
                return;
            }
            let delay = act.next_delay(&outcome);
            if delay.is_zero() {
                ctx.notify(Poll);
            } else {
                ctx.notify_later(Poll, delay);
            }
        }));
    }
}

impl Handler<StopPolling> for PollerActor {
    type Result = ();

    fn handle(&mut self, _: StopPolling, ctx: &mut Context<Self>) {
        self.stopping = true;
        if !self.polling {
            ctx.stop();
        }
        log::info!("polling stops; next offset {}", self.offset);
    }
}
