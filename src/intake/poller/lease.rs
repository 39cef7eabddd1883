//! Polling under a lease, when replicas share one store: only the holder polls, and the
//! offset is saved under the lease's fencing token.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;

use super::fetch::poll_once;
use super::{Poll, PollOutcome, PollerActor, Sinks};
use crate::actors::store::StoreActor;
use crate::actors::store::{PollerOffset, ReadLease, SavePollerOffset, TakeLease};
use crate::clients::telegram::TelegramClient;
use crate::obs::metrics::Metrics;

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

/// What one round under a lease did.
pub(super) enum Round {
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
    /// Schedules what follows a round under the lease.
    pub(super) fn after_round(&mut self, round: Round, ctx: &mut Context<Self>) {
        self.polling = false;
        let lease = match &self.lease {
            Some(lease) => lease.clone(),
            None => return,
        };
        match round {
            Round::Standby(seen) => self.standby(&lease, seen, ctx),
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

    /// Another replica holds the lease (`seen`: who, and for how much longer): wait for it.
    fn standby(&mut self, lease: &PollLease, seen: Option<(String, i64)>, ctx: &mut Context<Self>) {
        let recheck = (lease.ttl / 3).max(Duration::from_millis(200));
        self.sinks.metrics.standby.store(true, Ordering::Relaxed);
        // Try again just after the holder's lease would run out (at most every third of a
        // lease), so a dead holder is replaced about one lease after its last renewal.
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
}

/// One round under the lease: take or renew it, then (holding it) poll once and save the
/// offset under its token.
pub(super) async fn leased_round(
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
