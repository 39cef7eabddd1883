//! `StoreActor`: the only owner of the durable [`Store`]. It runs on its own arbiter, so its
//! blocking SQLite calls never stall the other actors.
//!
//! Its messages are grouped by concern: `journal` (updates from intake to finish), `intake`
//! (VK ids and `ts`, status), `claims` (leases and chat claims of replicas), `files` (uploads,
//! saved files, keys, renames), `people` (greetings, acknowledgements), `outbox` and `days`.

use actix::prelude::*;

use crate::store::{Store, StoreError};

/// Declares a request to the store: the message, its answer and the store call answering it.
macro_rules! store_request {
    ($(#[$doc:meta])* $name:ident ( $($t:tt)* ) -> $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        $(#[$doc])*
        pub struct $name($($t)*);
        store_request!(@impl $name, $answer, |$store, $msg| $call);
    };
    ($(#[$doc:meta])* $name:ident { $($t:tt)* } -> $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        $(#[$doc])*
        pub struct $name { $($t)* }
        store_request!(@impl $name, $answer, |$store, $msg| $call);
    };
    (@impl $name:ident, $answer:ty, |$store:ident, $msg:ident| $call:expr) => {
        impl Message for $name {
            type Result = Result<$answer, Arc<StoreError>>;
        }

        impl Handler<$name> for StoreActor {
            type Result = Result<$answer, Arc<StoreError>>;

            fn handle(&mut self, $msg: $name, _: &mut Context<Self>) -> Self::Result {
                let $store: &mut Store = self.store_mut();
                $call.map_err(Arc::new)
            }
        }
    };
}

mod claims;
mod days;
mod files;
mod intake;
mod journal;
mod outbox;
mod people;

pub use self::claims::*;
pub use self::days::*;
pub use self::files::*;
pub use self::intake::*;
pub use self::journal::*;
pub use self::outbox::*;
pub use self::people::*;

/// The store's actor.
pub struct StoreActor {
    store: Store,
    /// Updates reported finished and not yet written: written together a moment later, in
    /// one transaction, so a busy store (PostgreSQL above all) spends one commit on many.
    finished: Vec<i64>,
    /// With replicas on one store: this replica's name and how long its claims last. Outbox
    /// items are then claimed one by one before delivery, so two replicas never send the same.
    claimant: Option<(String, i64)>,
    /// With the archive on: updates that need nothing but the archive are queued for the raw
    /// bucket when they are journaled, instead of going to a worker.
    archive: Option<crate::config::ArchiveSettings>,
}

/// How long finished updates wait to be written together.
pub(super) const FINISH_BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// How long finished updates wait after the store failed to write them.
pub(super) const FINISH_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl StoreActor {
    /// Wraps an opened store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            finished: Vec::new(),
            claimant: None,
            archive: None,
        }
    }

    /// Claims outbox items for `holder` (for `ttl_ms`, renewed by [`RenewClaims`]) before
    /// handing them out for delivery.
    ///
    /// [`RenewClaims`]: super::store::RenewClaims
    pub fn claiming(mut self, holder: String, ttl_ms: i64) -> Self {
        self.claimant = Some((holder, ttl_ms));
        self
    }

    /// Queues the updates that need nothing but the archive of `settings` at intake (see
    /// [`crate::domain::archive::archive_only`]).
    pub fn archiving(mut self, settings: crate::config::ArchiveSettings) -> Self {
        self.archive = Some(settings).filter(|a| a.is_enabled());
        self
    }

    /// Writes the finished updates waiting; answers whether they are written. When the store
    /// fails (PostgreSQL restarting), they are kept for the next try: an update finished but
    /// left in the journal would be handled again.
    fn write_finished(&mut self) -> bool {
        if self.finished.is_empty() {
            return true;
        }
        match self.store.finish(&self.finished) {
            Ok(()) => {
                self.finished.clear();
                true
            }
            Err(e) => {
                log::error!(
                    "cannot mark {} updates finished ({e}); trying again in {} ms",
                    self.finished.len(),
                    FINISH_RETRY.as_millis()
                );
                false
            }
        }
    }

    /// Writes the finished updates now, and again later until they are written.
    fn flush_finished(&mut self, ctx: &mut Context<Self>) {
        if !self.write_finished() {
            ctx.run_later(FINISH_RETRY, |act, ctx| act.flush_finished(ctx));
        }
    }

    /// The store, for handlers declared beside other actors' messages.
    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        let _ = self.write_finished();
    }

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(std::time::Duration::from_secs(3600), |act, _| {
            match act.store.prune_done() {
                Ok(0) => {}
                Ok(n) => log::debug!("forgot {n} finished update ids older than a week"),
                Err(e) => log::warn!("cannot forget old finished update ids: {e}"),
            }
        });
    }
}

impl Supervised for StoreActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // A transaction cut short by a panic was rolled back when it was dropped.
        log::warn!("store restarted");
    }
}

pub(super) fn logged(what: &str, r: Result<(), StoreError>) {
    if let Err(e) = r {
        log::error!("{what}: {e}");
    }
}
