//! One poll: fetch a batch with `getUpdates`, journal it, then hand the new updates over in
//! order (those the allowlists refuse go over without being journaled).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::{PollOutcome, Sinks, NOTE_EVERY};
use crate::actors::pool::Dispatch;
use crate::actors::store::JournalBatch;
use crate::actors::store::NoteIntake;
use crate::actors::worker::Job;
use crate::clients::telegram::TelegramClient;
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;

/// Fetches one batch, journals it, then hands the new updates over in order.
pub(super) async fn poll_once(
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
    let (batch, next_offset) = parse(&sinks, raws, offset);
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
    PollOutcome::Fetched {
        count,
        handed_over: hand_over(&sinks, fresh, turned_away).await,
        next_offset,
        elapsed,
        refused: false,
    }
}

/// The updates of a batch that have an `update_id`, and the offset past them.
fn parse(
    sinks: &Sinks,
    raws: Vec<Box<serde_json::value::RawValue>>,
    offset: i64,
) -> (Vec<Arc<IncomingUpdate>>, i64) {
    let mut batch = Vec::with_capacity(raws.len());
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
    (batch, next_offset)
}

/// Hands the journaled updates and those turned away to the workers, in update order;
/// answers how many were taken.
async fn hand_over(
    sinks: &Sinks,
    fresh: Vec<Arc<IncomingUpdate>>,
    turned_away: Vec<Arc<IncomingUpdate>>,
) -> usize {
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
    handed_over
}
