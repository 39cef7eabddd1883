//! `PollerActor`: the one and only caller of `getUpdates` for the bot token.
//!
//! It fetches a batch, writes it to the journal (`JournalBatch` to the store) and only then
//! moves its offset past it, so an update is confirmed to Telegram (by the next `getUpdates`)
//! only once it is stored durably; then it hands the new updates to the worker pool. An update
//! journaled or finished before is not handed over again. It does no business logic. Only one
//! `getUpdates` call is ever in flight: the next poll is scheduled when the previous one ends.
//! Errors and suspiciously quick empty answers back off; `retry_after` is honoured.

mod fetch;
mod lease;

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::pool::Dispatch;
use crate::actors::store::JournalBatch;
use crate::actors::store::{NoteIntake, ReleaseLease};
use crate::clients::telegram::{TelegramClient, TelegramError};
use crate::config::{SecuritySettings, TelegramSettings};
use crate::obs::metrics::Metrics;
use crate::util::backoff::Backoff;

use self::fetch::poll_once;
use self::lease::leased_round;
pub use self::lease::{PollLease, POLLER_LEASE};

/// How often a successful poll is written to the store (for `tg-ingest status`).
pub const NOTE_EVERY: Duration = Duration::from_secs(10);

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

/// Where fetched updates go.
struct Sinks {
    target: Recipient<Dispatch>,
    journal: Recipient<JournalBatch>,
    note: Recipient<NoteIntake>,
    security: SecuritySettings,
    metrics: Arc<Metrics>,
}

/// The long-polling loop.
pub struct PollerActor {
    telegram: Rc<TelegramClient>,
    settings: TelegramSettings,
    sinks: Rc<Sinks>,
    offset: i64,
    backoff: Backoff,
    stopping: bool,
    polling: bool,
    lease: Option<Rc<PollLease>>,
    /// The fencing token of the lease this replica holds, if any.
    term: Option<i64>,
    /// Who holds the lease, as last seen by a standby (to log changes once).
    seen_holder: Option<String>,
}

impl PollerActor {
    /// A poller that journals updates through `journal` and hands new ones to `target`.
    /// Updates `security` refuses are never journaled: they go to `target` at once, to be
    /// refused there, and nothing of theirs is written to disk.
    pub fn new(
        (settings, security): (TelegramSettings, SecuritySettings),
        target: Recipient<Dispatch>,
        (journal, note): (Recipient<JournalBatch>, Recipient<NoteIntake>),
        metrics: Arc<Metrics>,
    ) -> Self {
        let telegram = TelegramClient::new(&settings).with_metrics(metrics.clone());
        Self {
            telegram: Rc::new(telegram),
            settings,
            sinks: Rc::new(Sinks {
                target,
                journal,
                note,
                security,
                metrics,
            }),
            offset: 0,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            stopping: false,
            polling: false,
            lease: None,
            term: None,
            seen_holder: None,
        }
    }

    /// Polls only while holding `lease`. The long-poll timeout and the HTTP timeout of
    /// `getUpdates` are each cut to a third of the lease, so a poll started right after a
    /// renewal ends before the lease could pass to another replica.
    pub fn with_lease(mut self, lease: PollLease) -> Self {
        let third = (lease.ttl.as_secs() / 3).max(1);
        self.settings.poll_timeout_secs = self.settings.poll_timeout_secs.min(third);
        self.settings.request_timeout_secs = self.settings.request_timeout_secs.min(third);
        let metrics = self.sinks.metrics.clone();
        // A standby until the lease is taken.
        metrics.standby.store(true, Ordering::Relaxed);
        self.telegram = Rc::new(TelegramClient::new(&self.settings).with_metrics(metrics));
        self.lease = Some(Rc::new(lease));
        self
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
                self.sinks.metrics.api_retry("telegram", "getUpdates");
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

impl Supervised for PollerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The poll in flight was dropped before its offset moved: the next poll fetches its
        // updates again, and the journal hands over those it did not store yet.
        self.polling = false;
        self.backoff.reset();
    }
}

impl Actor for PollerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
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
        fail::fail_point!("poller.poll");
        self.polling = true;
        if let Some(lease) = self.lease.clone() {
            let round = leased_round(
                lease,
                self.term,
                (self.telegram.clone(), self.sinks.clone()),
                self.offset,
                (
                    self.settings.poll_limit,
                    self.settings.allowed_updates.clone(),
                ),
            );
            ctx.spawn(
                round
                    .into_actor(self)
                    .map(|round, act, ctx| act.after_round(round, ctx)),
            );
            return;
        }
        let fut = poll_once(
            self.telegram.clone(),
            self.sinks.clone(),
            self.offset,
            self.settings.poll_limit,
            self.settings.allowed_updates.clone(),
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
                // Idle from now on; the actor ends with the system.
                return;
            }
            act.poll_after(&outcome, ctx);
        }));
    }
}

impl Handler<StopPolling> for PollerActor {
    type Result = ();

    fn handle(&mut self, _: StopPolling, _: &mut Context<Self>) {
        // No poll starts after this one; a poll in flight hands its batch over and ends there.
        self.stopping = true;
        log::info!("polling stops; next offset {}", self.offset);
        if !self.polling {
            self.release();
        }
    }
}

impl PollerActor {
    /// Ends this replica's lease (a clean stop), so another takes over at once.
    fn release(&mut self) {
        if let (Some(lease), Some(_)) = (&self.lease, self.term.take()) {
            lease.store.do_send(ReleaseLease {
                name: POLLER_LEASE,
                holder: lease.holder.clone(),
            });
            log::info!("poller lease released by replica {}", lease.holder);
        }
    }

    /// Schedules the next poll after `outcome` (at once, or after a backoff or a wait).
    fn poll_after(&mut self, outcome: &PollOutcome, ctx: &mut Context<Self>) {
        let delay = self.next_delay(outcome);
        if delay.is_zero() {
            ctx.notify(Poll);
        } else {
            ctx.notify_later(Poll, delay);
        }
    }
}
