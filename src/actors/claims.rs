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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::pool::{Dispatch, DispatchError};
use super::store::{MoveToPoison, StoreActor};
use super::store_chat::{AdoptClaims, ClaimRound, JournalEntries, RenewClaims};
use super::worker::Job;
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::store::JournalEntry;
use crate::telegram::IncomingUpdate;

/// Most journaled updates listed per round.
const LIST: usize = 1000;
/// Most updates handed to the pool and not yet finished.
const IN_FLIGHT: usize = 500;
/// Pause between rounds while there is work.
const BUSY_ROUND: Duration = Duration::from_millis(10);
/// Pause between rounds while idle (new updates also start a round at once).
const IDLE_ROUND: Duration = Duration::from_millis(100);

/// What this replica may do with a claimed chat's updates now, as its workers ask before
/// starting each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The chat is this replica's, confirmed by a renewal recent enough: work on it.
    Held,
    /// Another replica holds the chat (it took it over while this one could not renew, or
    /// this one gave it up): its queued updates are left to that replica.
    Lost,
    /// The last renewal is too old to be sure (the process was paused, the store is slow):
    /// wait for the next one.
    Unconfirmed,
}

/// The chats this replica holds as far as it knows, and until when that is sure: kept by the
/// [`ClaimActor`] from its renewals and rounds, asked by the workers before each update of a
/// claimed chat, so a replica that lost chats (paused past its claims, cut off from the store)
/// stops working them at once instead of answering their queued updates a second time.
#[derive(Debug, Default)]
pub struct ClaimFence {
    state: std::sync::Mutex<FenceState>,
}

#[derive(Debug, Default)]
struct FenceState {
    held: HashSet<i64>,
    /// Until when the claims are sure to be this replica's (a renewal's start plus most of
    /// their lifetime).
    sure_until: Option<Instant>,
    /// When the store was read for the `held` in force: an older read never replaces it.
    read_at: Option<Instant>,
}

impl ClaimFence {
    /// Where this replica stands with `chat`.
    pub fn standing(&self, chat: i64) -> Standing {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.held.contains(&chat) {
            Standing::Lost
        } else if state.sure_until.is_some_and(|t| Instant::now() < t) {
            Standing::Held
        } else {
            Standing::Unconfirmed
        }
    }

    /// A renewal begun at `read_at` found these chats held, each for `ttl` from then.
    fn renewed(&self, read_at: Instant, held: HashSet<i64>, ttl: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A margin for the clocks: the store's expiry runs from its own, later, reading.
        let sure = read_at + ttl.saturating_sub(ttl / 10);
        state.sure_until = Some(state.sure_until.map_or(sure, |t| t.max(sure)));
        if state.read_at.is_none_or(|at| read_at >= at) {
            state.held = held;
            state.read_at = Some(read_at);
        }
    }

    /// A round begun at `read_at` listed these chats as held (with work left).
    fn listed(&self, read_at: Instant, chats: HashSet<i64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.read_at.is_none_or(|at| read_at >= at) {
            state.held = chats;
            state.read_at = Some(read_at);
        }
    }
}

/// Stops starting rounds (a clean stop); answered at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopClaims;

/// Runs a round now.
#[derive(Message)]
#[rtype(result = "()")]
struct Round;

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
    running: bool,
    again: bool,
    stopping: bool,
    backoff: Backoff,
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
            running: false,
            again: false,
            stopping: false,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
        }
    }

    /// Keeps `fence` (shared with the workers) up to date instead of a fence of its own.
    pub fn with_fence(mut self, fence: Arc<ClaimFence>) -> Self {
        self.fence = fence;
        self
    }

    fn ttl_ms(&self) -> i64 {
        self.me.ttl.as_millis() as i64
    }

    /// Starts a round unless one is running (then another follows it at once).
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if self.running {
            self.again = true;
            return;
        }
        self.running = true;
        self.again = false;
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
                let pause = match outcome {
                    Ok(busy) => {
                        act.backoff.reset();
                        if busy || act.held > 0 {
                            BUSY_ROUND
                        } else {
                            IDLE_ROUND
                        }
                    }
                    Err(e) => {
                        let wait = act.backoff.next_delay();
                        log::error!(
                            "chat claims: store unavailable ({e}); trying again in {:.1} s",
                            wait.as_secs_f64()
                        );
                        wait
                    }
                };
                if act.again {
                    act.round(ctx);
                } else {
                    ctx.notify_later(Round, pause);
                }
            }),
        );
    }

    /// Takes in a round's listing: forgets the updates finished since, and answers those to
    /// hand over now (in order, within the in-flight limit), marking them in flight.
    fn take_listing(&mut self, listed: Vec<(i64, i64)>) -> Vec<i64> {
        let ids: HashSet<i64> = listed.iter().map(|(id, _)| *id).collect();
        self.in_flight.retain(|id| ids.contains(id));
        self.held = listed
            .iter()
            .map(|(_, chat)| *chat)
            .collect::<HashSet<_>>()
            .len();
        let room = IN_FLIGHT.saturating_sub(self.in_flight.len());
        let fresh: Vec<i64> = listed
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !self.in_flight.contains(id))
            .take(room)
            .collect();
        self.in_flight.extend(&fresh);
        fresh
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

/// Hands one journaled update to the pool, or moves it aside when it was attempted
/// `max_attempts` times already (it may be what stopped the processes that handled it) or is
/// not readable; answers whether the pool took it.
pub async fn hand_over(
    store: &Addr<StoreActor>,
    pool: &Recipient<Dispatch>,
    entry: JournalEntry,
    max_attempts: u32,
    metrics: &Metrics,
) -> bool {
    let id = entry.update_id;
    let poison = |reason: String| {
        Metrics::incr(&metrics.updates_poisoned);
        store.do_send(MoveToPoison {
            update_id: id,
            reason,
            attempts: entry.attempts,
        });
    };
    if entry.attempts >= max_attempts {
        log::error!(
            "update_id={id} moved to the poison list: the service stopped {} times while handling it",
            entry.attempts
        );
        poison(format!(
            "interrupted {} times (crash or shutdown) while handling it",
            entry.attempts
        ));
        return false;
    }
    let parsed = serde_json::value::RawValue::from_string(entry.raw)
        .map_err(|e| e.to_string())
        .and_then(|raw| IncomingUpdate::parse(raw).map_err(|e| e.to_string()));
    let update = match parsed {
        Ok(update) => update,
        Err(e) => {
            log::error!("update_id={id} in the journal is not readable ({e}); moved aside");
            poison(format!("journal entry is not readable: {e}"));
            return false;
        }
    };
    let job = Job {
        update: Arc::new(update),
        attempts: entry.attempts,
        journaled: true,
    };
    match pool.send(Dispatch(job)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            log::error!("{e}; it stays in the journal");
            false
        }
        Err(e) => {
            log::error!(
                "worker pool unavailable for update_id={id} ({e}); it stays in the journal"
            );
            false
        }
    }
}

impl Actor for ClaimActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let renew_every = (self.me.ttl / 3).max(Duration::from_millis(200));
        ctx.run_interval(renew_every, |act, ctx| {
            let renew = RenewClaims {
                holder: act.me.holder.clone(),
                ttl_ms: act.ttl_ms(),
            };
            let (store, fence, ttl) = (act.store.clone(), act.fence.clone(), act.me.ttl);
            let read_at = Instant::now();
            ctx.spawn(
                async move {
                    match store.send(renew).await {
                        Ok(Ok(held)) => fence.renewed(read_at, held.into_iter().collect(), ttl),
                        Ok(Err(e)) => log::error!("chat claims: cannot renew this replica's claims ({e}); they run out unless the store answers again"),
                        Err(_) => {}
                    }
                }
                .into_actor(act),
            );
        });
        let (store, me, fence) = (self.store.clone(), self.me.clone(), self.fence.clone());
        let counted = RenewClaims {
            holder: me.holder.clone(),
            ttl_ms: self.ttl_ms(),
        };
        let read_at = Instant::now();
        ctx.spawn(
            async move {
                // Counted among the live replicas before the first claim.
                if let Ok(Ok(held)) = store.send(counted).await {
                    fence.renewed(read_at, held.into_iter().collect(), me.ttl);
                }
                match store.send(AdoptClaims(me.holder.clone())).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => log::info!(
                        "replica {}: {n} chats claimed by an earlier process of this name are worked on again",
                        me.holder
                    ),
                    Ok(Err(e)) => log::warn!("chat claims: cannot adopt earlier claims ({e})"),
                    Err(e) => log::warn!("chat claims: store unavailable ({e})"),
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| act.round(ctx)),
        );
        log::info!(
            "replica {}: working the journal by chat claims (at most {} chats at once, claims last {} s)",
            self.me.holder,
            self.me.max_chats,
            self.me.ttl.as_secs()
        );
    }
}

impl Supervised for ClaimActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The round in flight was dropped. The updates handed over are still with the workers:
        // `in_flight` stays, so none is handed over twice.
        self.running = false;
    }
}

impl Handler<Round> for ClaimActor {
    type Result = ();

    fn handle(&mut self, _: Round, ctx: &mut Context<Self>) {
        self.round(ctx);
    }
}

impl Handler<Dispatch> for ClaimActor {
    type Result = ResponseFuture<Result<(), DispatchError>>;

    /// A journaled update starts a round (it is handed over by the replica holding its chat);
    /// one that was not journaled goes to the pool at once.
    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) -> Self::Result {
        if msg.0.journaled {
            self.round(ctx);
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
