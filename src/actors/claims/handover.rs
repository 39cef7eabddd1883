//! Handing journaled updates over: which of a listing go now (each once), and one update to
//! the pool or, attempted too often or unreadable, to the poison list.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::pool::Dispatch;
use crate::actors::store::{MoveToPoison, StoreActor};
use crate::actors::worker::Job;
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;
use crate::store::JournalEntry;

/// Takes in a listing of journaled updates (in order, cut at `limit`): forgets the updates
/// in flight that it shows finished, and answers those to hand over now, at most `most` in
/// flight in all, marking them in flight. An update in flight missing from a listing that was
/// cut is finished only if it comes before the listing's last (a later one may be past the
/// cut): forgetting it early would hand it over twice.
pub(super) fn settle(
    in_flight: &mut HashSet<i64>,
    listed: &[(i64, i64)],
    limit: usize,
    most: usize,
) -> Vec<i64> {
    let ids: HashSet<i64> = listed.iter().map(|(id, _)| *id).collect();
    let cut_after = (listed.len() >= limit)
        .then(|| listed.last().map(|(id, _)| *id))
        .flatten();
    in_flight.retain(|id| ids.contains(id) || cut_after.is_some_and(|last| *id > last));
    let room = most.saturating_sub(in_flight.len());
    let fresh: Vec<i64> = listed
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !in_flight.contains(id))
        .take(room)
        .collect();
    in_flight.extend(&fresh);
    fresh
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
