//! `PollerActor`: the one and only caller of `getUpdates` for the bot token.
//!
//! It fetches a batch, writes it to the journal (`JournalBatch` to the store) and only then
//! moves its offset past it, so an update is confirmed to Telegram (by the next `getUpdates`)
//! only once it is stored durably; then it hands the new updates to the worker pool. An update
//! journaled or finished before is not handed over again. It does no business logic. Only one
//! `getUpdates` call is ever in flight: the next poll is scheduled when the previous one ends.
//! Errors and suspiciously quick empty answers back off; `retry_after` is honoured.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::pool::Dispatch;
use crate::actors::store::{JournalBatch, StoreActor};
use crate::actors::store_chat::{
    NoteIntake, PollerOffset, ReadLease, ReleaseLease, SavePollerOffset, TakeLease,
};
use crate::actors::worker::Job;
use crate::clients::telegram::{TelegramClient, TelegramError};
use crate::config::{SecuritySettings, TelegramSettings};
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;
use crate::util::backoff::Backoff;

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

/// The name of the poller's lease and saved offset.
pub const POLLER_LEASE: &str = "telegram-poller";

/// Polling under a lease, when replicas share one store: only the replica holding the lease
/// polls, each poll starts right after the lease was renewed and ends (HTTP timeout included)
/// well before the lease would expire, and the offset is saved under the lease's fencing
/// token, so the next holder resumes there and two replicas never poll at once.
pub struct PollLease {
    /// The shared store.
    pub store: Addr<StoreActor>,
    /// This replica's name.
    pub holder: String,
    /// How long a lease lasts.
    pub ttl: Duration,
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

/// What one round under a lease did.
enum Round {
    /// Another replica holds the lease (who, and for how much longer, if known).
    Standby(Option<(String, i64)>),
    /// The store could not be asked.
    StoreFailed(String),
    /// This replica polled.
    Polled {
        token: i64,
        new_term: bool,
        start: i64,
        outcome: PollOutcome,
        kept: bool,
    },
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

/// Fetches one batch, journals it, then hands the new updates over in order.
async fn poll_once(
    telegram: Rc<TelegramClient>,
    sinks: Rc<Sinks>,
    offset: i64,
    limit: u32,
    allowed: Vec<String>,
) -> PollOutcome {
    let started = Instant::now();
    let raws = match telegram.get_updates(offset, limit, &allowed).await {
        Ok(raws) => raws,
        Err(e) => return PollOutcome::Failed(e),
    };
    let elapsed = started.elapsed();
    Metrics::stamp(&sinks.metrics.telegram_intake_ok_ms);
    if Metrics::note_due(&sinks.metrics.intake_noted_ms[0], NOTE_EVERY) {
        sinks.note.do_send(NoteIntake("telegram_polling"));
    }
    let count = raws.len();
    let mut batch = Vec::with_capacity(count);
    let mut next_offset = offset;
    for raw in raws {
        match IncomingUpdate::parse(raw) {
            Ok(u) => {
                sinks.metrics.received("telegram_polling", u.kind());
                next_offset = next_offset.max(u.update_id + 1);
                batch.push(Arc::new(u));
            }
            Err(e) => log::error!(
                "getUpdates returned an update without a readable update_id ({e}); skipped"
            ),
        }
    }
    let fetched = |next_offset, refused| PollOutcome::Fetched {
        count,
        handed_over: 0,
        next_offset,
        elapsed,
        refused,
    };
    if batch.is_empty() {
        return fetched(next_offset, false);
    }
    // Updates the allowlists refuse are handed over without being journaled.
    let (batch, turned_away): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|u| crate::domain::inbound::admitted(&sinks.security, u));
    let fresh = if batch.is_empty() {
        Vec::new()
    } else {
        match sinks.journal.send(JournalBatch(batch)).await {
            Ok(Ok(fresh)) => fresh,
            Ok(Err(e)) => {
                log::error!("cannot journal {count} updates ({e}); they will be fetched again");
                return fetched(offset, true);
            }
            Err(e) => {
                log::error!("store unavailable ({e}); {count} updates will be fetched again");
                return fetched(offset, true);
            }
        }
    };
    let mut handed_over = 0;
    let mut ordered: Vec<_> = fresh.into_iter().map(|u| (u, true)).collect();
    ordered.extend(turned_away.into_iter().map(|u| (u, false)));
    ordered.sort_by_key(|(u, _)| u.update_id);
    for (update, journaled) in ordered {
        let id = update.update_id;
        let job = Job {
            update,
            attempts: 0,
            journaled,
        };
        match sinks.target.send(Dispatch(job)).await {
            Ok(Ok(())) => {
                Metrics::incr(&sinks.metrics.updates_dispatched);
                handed_over += 1;
            }
            Ok(Err(e)) => log::error!("{e}; it stays in the journal for the next start"),
            Err(e) => log::error!("worker pool unavailable for update_id={id} ({e}); it stays in the journal for the next start"),
        }
    }
    PollOutcome::Fetched {
        count,
        handed_over,
        next_offset,
        elapsed,
        refused: false,
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

    /// Schedules what follows a round under the lease.
    fn after_round(&mut self, round: Round, ctx: &mut Context<Self>) {
        self.polling = false;
        let lease = match &self.lease {
            Some(lease) => lease.clone(),
            None => return,
        };
        let recheck = (lease.ttl / 3).max(Duration::from_millis(200));
        match round {
            Round::Standby(seen) => {
                self.sinks.metrics.standby.store(true, Ordering::Relaxed);
                // Try again just after the holder's lease would run out (at most every third
                // of a lease), so a dead holder is replaced about one lease after its last
                // renewal.
                let recheck = seen.as_ref().map_or(recheck, |(_, remaining)| {
                    let after = Duration::from_millis((*remaining).max(0) as u64 + 100);
                    after.min(recheck)
                });
                let holder = seen.map(|(holder, _)| holder);
                if self.term.take().is_some() {
                    log::warn!(
                        "replica {} lost the poller lease to {}; it polls no more until it takes the lease again",
                        lease.holder,
                        holder.as_deref().unwrap_or("another replica")
                    );
                } else if holder != self.seen_holder {
                    log::info!(
                        "standby: replica {} holds the poller lease; this replica ({}) takes over if it lapses",
                        holder.as_deref().unwrap_or("?"),
                        lease.holder
                    );
                }
                self.seen_holder = holder;
                // The intake is healthy: the replica holding the lease polls.
                Metrics::stamp(&self.sinks.metrics.telegram_intake_ok_ms);
                if !self.stopping {
                    ctx.notify_later(Poll, recheck);
                }
            }
            Round::StoreFailed(e) => {
                // Without the store no lease can be proven: poll no more until it answers.
                self.term = None;
                self.sinks.metrics.standby.store(true, Ordering::Relaxed);
                let delay = self.backoff.next_delay();
                log::error!(
                    "poller lease: store unavailable ({e}); not polling, trying again in {:.1} s",
                    delay.as_secs_f64()
                );
                if !self.stopping {
                    ctx.notify_later(Poll, delay);
                }
            }
            Round::Polled {
                token,
                new_term,
                start,
                outcome,
                kept,
            } => {
                if new_term {
                    log::info!("replica {} polls from offset {start}", lease.holder);
                }
                self.term = Some(token);
                self.seen_holder = Some(lease.holder.clone());
                self.sinks.metrics.standby.store(!kept, Ordering::Relaxed);
                if let PollOutcome::Fetched { next_offset, .. } = &outcome {
                    self.offset = *next_offset;
                }
                if !kept {
                    log::warn!(
                        "replica {} could not save the offset under its lease (token {token}); the lease passed on",
                        lease.holder
                    );
                    self.term = None;
                }
                if self.stopping {
                    self.release();
                    return;
                }
                self.poll_after(&outcome, ctx);
            }
        }
    }
}

/// One round under the lease: take or renew it, then (holding it) poll once and save the
/// offset under its token.
async fn leased_round(
    lease: Rc<PollLease>,
    term: Option<i64>,
    (telegram, sinks): (Rc<TelegramClient>, Rc<Sinks>),
    offset: i64,
    (limit, allowed): (u32, Vec<String>),
) -> Round {
    let take = TakeLease {
        name: POLLER_LEASE,
        holder: lease.holder.clone(),
        ttl_ms: lease.ttl.as_millis() as i64,
    };
    let token = match lease.store.send(take).await {
        Ok(Ok(Some(token))) => token,
        Ok(Ok(None)) => {
            let holder = match lease.store.send(ReadLease(POLLER_LEASE)).await {
                Ok(Ok(Some(state))) => Some((state.holder, state.remaining_ms)),
                _ => None,
            };
            return Round::Standby(holder);
        }
        Ok(Err(e)) => return Round::StoreFailed(e.to_string()),
        Err(e) => return Round::StoreFailed(e.to_string()),
    };
    let new_term = term != Some(token);
    if new_term {
        log::info!(
            "replica {} holds the poller lease (token {token})",
            lease.holder
        );
    }
    let start = if new_term {
        match lease.store.send(PollerOffset(POLLER_LEASE)).await {
            Ok(Ok(saved)) => saved.unwrap_or(0).max(offset),
            Ok(Err(e)) => return Round::StoreFailed(e.to_string()),
            Err(e) => return Round::StoreFailed(e.to_string()),
        }
    } else {
        offset
    };
    let outcome = poll_once(telegram, sinks, start, limit, allowed).await;
    let kept = match &outcome {
        PollOutcome::Fetched { next_offset, .. } if *next_offset != start => {
            let save = SavePollerOffset {
                name: POLLER_LEASE,
                offset: *next_offset,
                holder: lease.holder.clone(),
                token,
            };
            matches!(lease.store.send(save).await, Ok(Ok(true)))
        }
        _ => true,
    };
    Round::Polled {
        token,
        new_term,
        start,
        outcome,
        kept,
    }
}
