//! `ClaimActor`: with replicas on one store, the journal's way to this replica's worker pool.
//!
//! The intakes (the poller, webhook deliveries, the VK poller) only write updates to the
//! journal; every replica then works the chats it claims ([`crate::store`]'s chat claims):
//! in rounds, it gives up chats with nothing left, claims a few more that no live replica
//! holds, and hands their journaled updates to its pool in order, each once. A chat's updates
//! thus go to one replica at a time and one worker there, oldest first; different chats
//! spread over the replicas (each claims at most its share of the chats waiting, and holds at
//! most `32 × workers`). Claims are renewed every third of their lifetime; those of a
//! replica that died run out and its chats go on elsewhere. Updates the allowlists refuse are
//! not journaled: they go to the pool at once.
//!
//! Rounds follow events, not a clock: new journal rows (this replica's intake, and on
//! PostgreSQL every replica's, through `LISTEN`), updates finished here (once half of what
//! was handed over is done), renewals. Events less than [`MIN_GAP`] apart share a round. A
//! round that brings nothing sets the next unprompted one further off, up to [`IDLE_LONGEST`]
//! (which only catches claims that ran out unnoticed).

mod handover;
mod renewal;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::fence::ClaimFence;
use super::fence::Worked;
use super::pool::{Dispatch, DispatchError};
use super::store::StoreActor;
use super::store::{ClaimRound, JournalEntries};
use crate::obs::metrics::Metrics;
use crate::util::backoff::Backoff;

pub use self::handover::hand_over;
use self::handover::settle;

/// Most journaled updates listed per round.
const LIST: usize = 1000;
/// Most updates handed to the pool and not yet finished.
const IN_FLIGHT: usize = 500;
/// Least time between the starts of two rounds: events closer together share one.
pub const MIN_GAP: Duration = Duration::from_millis(20);
/// The first unprompted round after one that brought nothing.
const IDLE_FIRST: Duration = Duration::from_millis(50);
/// The longest wait for an unprompted round (each idle round doubles the wait up to this).
pub const IDLE_LONGEST: Duration = Duration::from_secs(2);

/// Stops starting rounds (a clean stop); answered at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopClaims;

/// Runs a round now (the timer of an unprompted round, or one put off by [`MIN_GAP`]).
#[derive(Message)]
#[rtype(result = "()")]
struct Round;

/// Work may be waiting: journal rows were written (by any replica), claims were given up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkArrived;

/// What this replica is.
pub struct Claimant {
    /// This replica's name in the claims.
    pub holder: String,
    /// How long a claim lasts.
    pub ttl: Duration,
    /// Most chats held at once.
    pub max_chats: usize,
    /// Attempts before an update is moved aside.
    pub max_attempts: u32,
}

/// The claims of this replica.
pub struct ClaimActor {
    me: Arc<Claimant>,
    fence: Arc<ClaimFence>,
    store: Addr<StoreActor>,
    pool: Recipient<Dispatch>,
    metrics: Arc<Metrics>,
    /// Updates handed to the pool that were still journaled at the last round.
    in_flight: HashSet<i64>,
    /// Chats with journaled updates this replica held at the last round.
    held: usize,
    /// Once `in_flight` less `done_since` is down to this many, a round hands over more.
    low_water: usize,
    /// Updates of `in_flight` the workers finished since the last round started.
    done_since: usize,
    running: bool,
    again: bool,
    stopping: bool,
    /// When the last round started.
    last_start: Option<Instant>,
    /// The next round already set, and when it is due.
    timer: Option<(SpawnHandle, Instant)>,
    /// The wait before the next unprompted round.
    idle: Duration,
    backoff: Backoff,
    /// Where to hear of journal writes of every replica (PostgreSQL), once started.
    notices: Option<(String, crate::store::db::PgLimits)>,
    listener: Option<crate::store::db::Listener>,
}

impl ClaimActor {
    /// The claims of `me`, handing updates to `pool`.
    pub fn new(
        me: Claimant,
        store: Addr<StoreActor>,
        pool: Recipient<Dispatch>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            me: Arc::new(me),
            fence: Arc::default(),
            store,
            pool,
            metrics,
            in_flight: HashSet::new(),
            held: 0,
            low_water: 0,
            done_since: 0,
            running: false,
            again: false,
            stopping: false,
            last_start: None,
            timer: None,
            idle: IDLE_FIRST,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
            notices: None,
            listener: None,
        }
    }

    /// Hears of the journal writes of every replica through PostgreSQL's `LISTEN` on the store
    /// at `url`, so a chat waiting is claimed at once by whichever replica has room.
    pub fn with_notices(mut self, url: String, limits: crate::store::db::PgLimits) -> Self {
        self.notices = Some((url, limits));
        self
    }

    /// Something happened that may bring work: a round now, or as soon as [`MIN_GAP`] allows;
    /// the unprompted rounds start again from their shortest wait.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        self.idle = IDLE_FIRST;
        if self.running {
            self.again = true;
            return;
        }
        let due = self.last_start.map_or_else(Instant::now, |t| t + MIN_GAP);
        self.round_at(due, ctx);
    }

    /// Sets the next round for `due` unless one is set sooner.
    fn round_at(&mut self, due: Instant, ctx: &mut Context<Self>) {
        if let Some((handle, at)) = self.timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = due.saturating_duration_since(Instant::now());
        let handle = ctx.notify_later(Round, wait);
        self.timer = Some((handle, due));
    }

    /// Keeps `fence` (shared with the workers) up to date instead of a fence of its own.
    pub fn with_fence(mut self, fence: Arc<ClaimFence>) -> Self {
        self.fence = fence;
        self
    }

    fn ttl_ms(&self) -> i64 {
        self.me.ttl.as_millis() as i64
    }

    /// Starts a round unless one is running (then another follows it).
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if self.running {
            self.again = true;
            return;
        }
        if let Some((handle, _)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.running = true;
        self.again = false;
        self.last_start = Some(Instant::now());
        self.done_since = 0;
        Metrics::incr(&self.metrics.claim_rounds);
        let want = self.me.max_chats.saturating_sub(self.held);
        let ask = ClaimRound {
            holder: self.me.holder.clone(),
            ttl_ms: self.ttl_ms(),
            want,
            limit: LIST,
        };
        let store = self.store.clone();
        let read_at = Instant::now();
        ctx.spawn(
            async move {
                store
                    .send(ask)
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            .into_actor(self)
            .then(move |listed, act, _| {
                if let Ok(listed) = &listed {
                    act.fence
                        .listed(read_at, listed.iter().map(|(_, chat)| *chat).collect());
                }
                let fresh = listed.map(|listed| act.take_listing(listed));
                let hand = act.hand_over(fresh.clone().unwrap_or_default());
                async move { (fresh.map(|f| !f.is_empty()), hand.await) }.into_actor(act)
            })
            .map(|(outcome, not_taken), act, ctx| {
                for id in not_taken {
                    act.in_flight.remove(&id);
                }
                act.running = false;
                act.low_water = act.in_flight.len() / 2;
                let pause = match outcome {
                    Ok(brought) => {
                        act.backoff.reset();
                        let pause = act.idle;
                        if !brought {
                            act.idle = (act.idle * 2).min(IDLE_LONGEST);
                        }
                        pause
                    }
                    Err(e) => {
                        let wait = act.backoff.next_delay();
                        log::error!(
                            "chat claims: store unavailable ({e}); trying again in {:.1} s",
                            wait.as_secs_f64()
                        );
                        act.again = false;
                        wait
                    }
                };
                if act.again {
                    act.wake(ctx);
                } else {
                    act.round_at(Instant::now() + pause, ctx);
                }
            }),
        );
    }

    /// Takes in a round's listing: forgets the updates finished since, and answers those to
    /// hand over now (in order, within the in-flight limit), marking them in flight.
    fn take_listing(&mut self, listed: Vec<(i64, i64)>) -> Vec<i64> {
        self.held = listed
            .iter()
            .map(|(_, chat)| *chat)
            .collect::<HashSet<_>>()
            .len();
        settle(&mut self.in_flight, &listed, LIST, IN_FLIGHT)
    }

    /// Reads the updates and hands them to the pool in order; answers those not handed over.
    fn hand_over(&self, ids: Vec<i64>) -> impl std::future::Future<Output = Vec<i64>> + 'static {
        let (store, pool, metrics) = (self.store.clone(), self.pool.clone(), self.metrics.clone());
        let max_attempts = self.me.max_attempts;
        async move {
            if ids.is_empty() {
                return ids;
            }
            let entries = match store.send(JournalEntries(ids.clone())).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    log::error!("chat claims: cannot read journaled updates ({e})");
                    return ids;
                }
                Err(e) => {
                    log::error!("chat claims: store unavailable ({e})");
                    return ids;
                }
            };
            let mut not_taken = Vec::new();
            for entry in entries {
                let id = entry.update_id;
                if !hand_over(&store, &pool, entry, max_attempts, &metrics).await {
                    not_taken.push(id);
                }
            }
            not_taken
        }
    }
}

impl Supervised for ClaimActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The round in flight was dropped. The updates handed over are still with the workers:
        // `in_flight` stays, so none is handed over twice.
        self.running = false;
        self.timer = None;
    }
}

impl Handler<Round> for ClaimActor {
    type Result = ();

    fn handle(&mut self, _: Round, ctx: &mut Context<Self>) {
        self.timer = None;
        self.round(ctx);
    }
}

impl Handler<WorkArrived> for ClaimActor {
    type Result = ();

    fn handle(&mut self, _: WorkArrived, ctx: &mut Context<Self>) {
        self.wake(ctx);
    }
}

impl Handler<Worked> for ClaimActor {
    type Result = ();

    /// Once half of what was handed over is done (or all of it), a round hands over more.
    /// Updates a worker left unhandled may be handed over again.
    fn handle(&mut self, worked: Worked, ctx: &mut Context<Self>) {
        match worked {
            // `in_flight` itself changes only with a round's listing: one read before this
            // update's end was written may still list it.
            Worked::Done(id) => {
                if self.in_flight.contains(&id) {
                    self.done_since += 1;
                    if self.in_flight.len().saturating_sub(self.done_since) <= self.low_water {
                        self.wake(ctx);
                    }
                }
            }
            Worked::Left(ids) => {
                for id in ids {
                    self.in_flight.remove(&id);
                }
                self.wake(ctx);
            }
        }
    }
}

impl Handler<Dispatch> for ClaimActor {
    type Result = ResponseFuture<Result<(), DispatchError>>;

    /// A journaled update starts a round (it is handed over by the replica holding its chat);
    /// one that was not journaled goes to the pool at once.
    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) -> Self::Result {
        if msg.0.journaled {
            self.wake(ctx);
            return Box::pin(async { Ok(()) });
        }
        let pool = self.pool.clone();
        let update_id = msg.0.update.update_id;
        Box::pin(async move {
            pool.send(msg).await.map_err(|e| DispatchError {
                worker: 0,
                update_id,
                reason: e.to_string(),
            })?
        })
    }
}

impl Handler<StopClaims> for ClaimActor {
    type Result = ();

    fn handle(&mut self, _: StopClaims, _: &mut Context<Self>) {
        self.stopping = true;
    }
}

#[cfg(test)]
mod tests;
