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

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Deserialize;

use super::poller::{PollLease, StopPolling};
use crate::actors::pool::Dispatch;
use crate::actors::store::{JournalBatch, StoreActor};
use crate::actors::store_chat::{ReleaseLease, SetVkTs, TakeLease, VkIds, VkTs};
use crate::actors::worker::Job;
use crate::clients::vk::{LongPollServer, PollAnswer, VkClient, VkError};
use crate::domain::inbound::IncomingUpdate;
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

/// Opens a session starting where `resume` says.
async fn open_session(
    client: &VkClient,
    store: &Addr<StoreActor>,
    resume: Resume,
) -> Result<LongPollServer, Outcome> {
    let mut session = client
        .long_poll_server()
        .await
        .map_err(|e| Failure::vk(None, &e))?;
    let saved = match resume {
        Resume::Ts(ts) => Some(ts),
        Resume::Fresh => None,
        Resume::Saved => match store.send(VkTs()).await {
            Ok(Ok(ts)) => ts,
            Ok(Err(e)) => return Err(Failure::other(None, e.to_string())),
            Err(e) => return Err(Failure::other(None, format!("store unavailable: {e}"))),
        },
    };
    if let Some(ts) = saved {
        session.ts = ts;
    }
    log::info!("VK long poll: session open at ts {}", session.ts);
    Ok(session)
}

/// A VK failure, worded for the log.
fn describe(e: &VkError) -> String {
    if e.is_authorization() {
        format!("VK refuses the community token ({e}): check vk.token")
    } else {
        e.to_string()
    }
}

/// The `event_id` of a raw event (or, for one without, a digest of its bytes).
fn event_id(raw: &serde_json::value::RawValue) -> String {
    #[derive(Deserialize)]
    struct Id {
        #[serde(default)]
        event_id: String,
    }
    match serde_json::from_str::<Id>(raw.get()) {
        Ok(Id { event_id }) if !event_id.is_empty() => event_id,
        _ => format!("raw:{:x}", crate::clients::vk::random_id(raw.get())),
    }
}

/// One long poll: fetch, journal, save `ts`, hand over.
async fn poll_once(
    client: Rc<VkClient>,
    sinks: Rc<VkSinks>,
    session: Option<LongPollServer>,
    resume: Resume,
) -> Outcome {
    let mut session = match session {
        Some(s) => s,
        None => match open_session(&client, &sinks.store, resume).await {
            Ok(s) => s,
            Err(failed) => return failed,
        },
    };
    let answer = client.check(&session).await;
    if answer.is_ok() {
        Metrics::stamp(&sinks.metrics.vk_intake_ok_ms);
        if Metrics::note_due(&sinks.metrics.intake_noted_ms[1], super::poller::NOTE_EVERY) {
            sinks
                .store
                .do_send(crate::actors::store_chat::NoteIntake("vk"));
        }
    }
    let (ts, raws) = match answer {
        Ok(PollAnswer::Events { ts, updates }) => (ts, updates),
        Ok(PollAnswer::NewTs(ts)) => {
            log::warn!(
                "VK long poll: failed 1, the event history is out of date; going on from ts {ts} (events before it may be lost)"
            );
            session.ts = ts.clone();
            if let Err(e) = save_ts(&sinks.store, &ts).await {
                return Failure::other(Some(session), e);
            }
            return Outcome::Done(session);
        }
        Ok(PollAnswer::KeyExpired) => {
            log::info!("VK long poll: failed 2, the key expired; getting a new one");
            return Outcome::Renew(Resume::Ts(session.ts));
        }
        Ok(PollAnswer::SessionLost) => {
            log::warn!("VK long poll: failed 3, the session is lost; getting a new key and ts");
            return Outcome::Renew(Resume::Fresh);
        }
        Err(e) => return Failure::vk(Some(session), &e),
    };
    if raws.is_empty() {
        session.ts = ts;
        return Outcome::Done(session);
    }
    let ids: Vec<String> = raws.iter().map(|r| event_id(r)).collect();
    let journal_ids = match sinks.store.send(VkIds(ids)).await {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return Failure::other(Some(session), e.to_string()),
        Err(e) => return Failure::other(Some(session), format!("store unavailable: {e}")),
    };
    let mut batch = Vec::with_capacity(raws.len());
    for (raw, id) in raws.iter().zip(journal_ids) {
        match IncomingUpdate::from_vk(id, raw) {
            Ok(u) => {
                sinks.metrics.received("vk", u.kind());
                batch.push(Arc::new(u));
            }
            Err(e) => log::error!("VK long poll: an event could not be wrapped ({e}); skipped"),
        }
    }
    let count = batch.len();
    let fresh = match sinks.store.send(JournalBatch(batch)).await {
        Ok(Ok(fresh)) => fresh,
        Ok(Err(e)) => {
            let why = format!("cannot journal {count} VK events ({e}); they will be fetched again");
            return Failure::other(Some(session), why);
        }
        Err(e) => {
            let why = format!("store unavailable ({e}); {count} VK events will be fetched again");
            return Failure::other(Some(session), why);
        }
    };
    // The events are durable: VK may now move on.
    session.ts = ts.clone();
    if let Err(e) = save_ts(&sinks.store, &ts).await {
        log::warn!("VK long poll: {e}; the next start may fetch these events again");
    }
    for update in fresh {
        let id = update.update_id;
        match sinks.target.send(Dispatch(Job {
            update,
            attempts: 0,
            journaled: true,
        })).await {
            Ok(Ok(())) => Metrics::incr(&sinks.metrics.updates_dispatched),
            Ok(Err(e)) => log::error!("{e}; it stays in the journal for the next start"),
            Err(e) => log::error!(
                "worker pool unavailable for VK event {id} ({e}); it stays in the journal for the next start"
            ),
        }
    }
    Outcome::Done(session)
}

async fn save_ts(store: &Addr<StoreActor>, ts: &str) -> Result<(), String> {
    match store.send(SetVkTs(ts.to_string())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot save the long-poll ts: {e}")),
        Err(e) => Err(format!("store unavailable: {e}")),
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
