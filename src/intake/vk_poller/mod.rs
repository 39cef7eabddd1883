//! `VkPollerActor`: the VK intake, the one long-poll client of the community's Bots Long Poll
//! API.
//!
//! It opens a session (`groups.getLongPollServer`), resuming from the `ts` saved after the last
//! journaled batch, then asks `{server}?act=a_check&key=…&ts=…&wait=…`. Each batch of events is
//! given journal ids (an event VK delivers twice keeps its id), written to the journal, and only
//! then is the new `ts` saved and the new events handed to the worker pool, so an event is never
//! lost between VK and the journal; after a crash the journal replays it. `failed: 1` takes the
//! new `ts` (VK says events before it may be lost, which is logged), `failed: 2` gets a new key,
//! `failed: 3` a new key and `ts`. One poll is in flight at a time; errors back off, VK's rate
//! limits (6, 9) wait, and a refused token (5) is logged as an error on every try.
//!
//! With replicas on a shared store only the replica holding the VK lease polls (taken or
//! renewed before every poll, each poll a third of the lease at most); a new holder resumes
//! from the `ts` the previous one saved.

mod fetch;

use self::fetch::{describe, poll_once};

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::poller::{PollLease, StopPolling};
use crate::actors::pool::Dispatch;
use crate::actors::store::StoreActor;
use crate::actors::store::{ReleaseLease, TakeLease};
use crate::clients::vk::{LongPollServer, VkClient, VkError};
use crate::obs::metrics::Metrics;
use crate::util::backoff::Backoff;

/// Polls once; the actor sends it to itself.
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

/// What one poll did.
enum Outcome {
    /// Events journaled and handed over (possibly none); the session to go on with.
    Done(LongPollServer),
    /// The session must be renewed, going on from `Resume`.
    Renew(Resume),
    /// A failure; the session (if any) is kept.
    Failed(Failure),
}

/// A failed poll.
struct Failure {
    /// The session to go on with, if it is still good.
    session: Option<LongPollServer>,
    /// What failed.
    why: String,
    /// The wait VK's rate limits ask for, if any.
    wait: Option<Duration>,
    /// Whether an operator must act (VK refuses the token): logged as an error.
    loud: bool,
}

impl Failure {
    fn other(session: Option<LongPollServer>, why: impl Into<String>) -> Outcome {
        Outcome::Failed(Self {
            session,
            why: why.into(),
            wait: None,
            loud: false,
        })
    }

    fn vk(session: Option<LongPollServer>, e: &VkError) -> Outcome {
        Outcome::Failed(Self {
            session,
            why: describe(e),
            wait: e.rate_limited_for(),
            loud: e.is_authorization(),
        })
    }
}

/// Where a new session starts.
#[derive(Debug, Clone)]
enum Resume {
    /// From the `ts` saved after the last journaled batch (at start-up), else VK's.
    Saved,
    /// From this `ts` (a new key for the same history).
    Ts(String),
    /// From VK's new `ts` (the session was lost).
    Fresh,
}

/// Where events go.
pub struct VkSinks {
    /// The worker pool.
    pub target: Recipient<Dispatch>,
    /// The store (journal, ids, `ts`).
    pub store: Addr<StoreActor>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// The name of the VK poller's lease.
pub const VK_LEASE: &str = "vk-poller";

/// The VK long-polling loop.
pub struct VkPollerActor {
    client: Rc<VkClient>,
    sinks: Rc<VkSinks>,
    session: Option<LongPollServer>,
    /// Where the next session starts.
    resume: Resume,
    backoff: Backoff,
    stopping: bool,
    polling: bool,
    lease: Option<Rc<PollLease>>,
    /// The fencing token of the VK lease this replica holds, if any.
    term: Option<i64>,
}

impl VkPollerActor {
    /// A poller using `client`, journaling through the store and handing events to `target`.
    pub fn new(client: VkClient, sinks: VkSinks) -> Self {
        Self {
            client: Rc::new(client),
            sinks: Rc::new(sinks),
            session: None,
            resume: Resume::Saved,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            stopping: false,
            polling: false,
            lease: None,
            term: None,
        }
    }

    /// Polls only while holding the VK lease (the client's long-poll wait and timeout must
    /// already be within a third of it).
    pub fn with_lease(mut self, lease: PollLease) -> Self {
        self.lease = Some(Rc::new(lease));
        self
    }

    /// Ends this replica's VK lease (a clean stop), so another replica polls at once.
    fn release(&mut self) {
        if let (Some(lease), Some(_)) = (&self.lease, self.term.take()) {
            lease.store.do_send(ReleaseLease {
                name: VK_LEASE,
                holder: lease.holder.clone(),
            });
            log::info!("VK lease released by replica {}", lease.holder);
        }
    }

    /// Takes or renews the lease, then polls; a standby looks again a little later.
    fn leased_poll(&mut self, lease: Rc<PollLease>, ctx: &mut Context<Self>) {
        self.polling = true;
        let take = TakeLease {
            name: VK_LEASE,
            holder: lease.holder.clone(),
            ttl_ms: lease.ttl.as_millis() as i64,
        };
        let store = lease.store.clone();
        ctx.spawn(async move { store.send(take).await }.into_actor(self).map(
            move |taken, act, ctx| {
                act.polling = false;
                let recheck = (lease.ttl / 10).clamp(Duration::from_millis(200), Duration::from_secs(1));
                match taken {
                    Ok(Ok(Some(token))) => {
                        if act.term != Some(token) {
                            log::info!(
                                "replica {} holds the VK lease (token {token}); polling VK from the saved ts",
                                lease.holder
                            );
                            act.session = None;
                            act.resume = Resume::Saved;
                            act.term = Some(token);
                        }
                        if !act.stopping {
                            act.poll(ctx);
                        }
                    }
                    Ok(Ok(None)) => {
                        // The intake is healthy: the replica holding the lease polls.
                        Metrics::stamp(&act.sinks.metrics.vk_intake_ok_ms);
                        if act.term.take().is_some() {
                            log::warn!(
                                "replica {} lost the VK lease; it polls VK no more until it takes the lease again",
                                lease.holder
                            );
                        }
                        ctx.notify_later(Poll, recheck);
                    }
                    Ok(Err(e)) => {
                        act.term = None;
                        let delay = act.backoff.next_delay();
                        log::error!("VK lease: store unavailable ({e}); not polling VK, trying again in {:.1} s", delay.as_secs_f64());
                        ctx.notify_later(Poll, delay);
                    }
                    Err(e) => {
                        act.term = None;
                        log::error!("VK lease: store unavailable ({e})");
                        ctx.notify_later(Poll, recheck);
                    }
                }
            },
        ));
    }
}

impl Supervised for VkPollerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The poll in flight was dropped before its ts was saved: the next one asks again.
        self.polling = false;
        self.backoff.reset();
    }
}

impl Actor for VkPollerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.stopping {
            log::info!("VK long polling started");
            ctx.notify(Poll);
        }
    }
}

impl Handler<Poll> for VkPollerActor {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Context<Self>) {
        if self.stopping || self.polling {
            return;
        }
        match self.lease.clone() {
            Some(lease) => self.leased_poll(lease, ctx),
            None => self.poll(ctx),
        }
    }
}

impl VkPollerActor {
    /// One long poll, then the next is scheduled.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        self.polling = true;
        let fut = poll_once(
            self.client.clone(),
            self.sinks.clone(),
            self.session.take(),
            self.resume.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            act.polling = false;
            let delay = match outcome {
                Outcome::Done(session) => {
                    act.resume = Resume::Ts(session.ts.clone());
                    act.session = Some(session);
                    act.backoff.reset();
                    Duration::ZERO
                }
                Outcome::Renew(resume) => {
                    act.resume = resume;
                    Duration::ZERO
                }
                Outcome::Failed(f) => {
                    act.session = f.session;
                    let delay = f.wait.unwrap_or_else(|| act.backoff.next_delay());
                    let secs = delay.as_secs_f64();
                    if f.loud {
                        log::error!("VK long poll: {}; retrying in {secs:.1} s", f.why);
                    } else {
                        log::warn!("VK long poll: {}; retrying in {secs:.1} s", f.why);
                    }
                    delay
                }
            };
            if act.stopping {
                act.release();
                return;
            }
            if delay.is_zero() {
                ctx.notify(Poll);
            } else {
                ctx.notify_later(Poll, delay);
            }
        }));
    }
}

impl Handler<StopPolling> for VkPollerActor {
    type Result = ();

    fn handle(&mut self, _: StopPolling, _: &mut Context<Self>) {
        self.stopping = true;
        log::info!("VK long polling stops");
        if !self.polling {
            self.release();
        }
    }
}
