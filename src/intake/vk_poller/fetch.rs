//! One long poll of the VK intake: open a session if needed, fetch, journal, save `ts`, hand
//! the new events over.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use serde::Deserialize;

use super::{Failure, Outcome, Resume, VkSinks};
use crate::actors::pool::Dispatch;
use crate::actors::store::{JournalBatch, StoreActor};
use crate::actors::store::{SetVkTs, VkIds, VkTs};
use crate::actors::worker::Job;
use crate::clients::vk::{LongPollServer, PollAnswer, VkClient, VkError};
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;

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
pub(super) fn describe(e: &VkError) -> String {
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
pub(super) async fn poll_once(
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
        if Metrics::note_due(
            &sinks.metrics.intake_noted_ms[1],
            crate::intake::poller::NOTE_EVERY,
        ) {
            sinks.store.do_send(crate::actors::store::NoteIntake("vk"));
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
    let fresh = match journal_events(&sinks, &raws).await {
        Ok(fresh) => fresh,
        Err(why) => return Failure::other(Some(session), why),
    };
    // The events are durable: VK may now move on.
    session.ts = ts.clone();
    if let Err(e) = save_ts(&sinks.store, &ts).await {
        log::warn!("VK long poll: {e}; the next start may fetch these events again");
    }
    hand_over(&sinks, fresh).await;
    Outcome::Done(session)
}

async fn save_ts(store: &Addr<StoreActor>, ts: &str) -> Result<(), String> {
    match store.send(SetVkTs(ts.to_string())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot save the long-poll ts: {e}")),
        Err(e) => Err(format!("store unavailable: {e}")),
    }
}

/// Gives the events journal ids (an event VK delivers twice keeps its id) and journals them;
/// answers those not journaled before, or why they could not be.
async fn journal_events(
    sinks: &VkSinks,
    raws: &[Box<serde_json::value::RawValue>],
) -> Result<Vec<Arc<IncomingUpdate>>, String> {
    let ids: Vec<String> = raws.iter().map(|r| event_id(r)).collect();
    let journal_ids = match sinks.store.send(VkIds(ids)).await {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("store unavailable: {e}")),
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
    match sinks.store.send(JournalBatch(batch)).await {
        Ok(Ok(fresh)) => Ok(fresh),
        Ok(Err(e)) => Err(format!(
            "cannot journal {count} VK events ({e}); they will be fetched again"
        )),
        Err(e) => Err(format!(
            "store unavailable ({e}); {count} VK events will be fetched again"
        )),
    }
}

/// Hands the newly journaled events to the workers, in order.
async fn hand_over(sinks: &VkSinks, fresh: Vec<Arc<IncomingUpdate>>) {
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
}
