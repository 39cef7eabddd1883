//! Messages of the `StoreActor` about archive days (see [`crate::store::DayState`]): the
//! archive reports the days it stored objects for; the ETL scheduler asks which days are stale
//! or still have data on the way, and reports compactions.

use std::sync::Arc;

use actix::prelude::*;

use super::StoreActor;
use crate::store::{DayState, StoreError};

/// Raw objects with these keys were stored now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DaysTouched(pub Vec<String>);

/// A day was compacted from a listing that started at `started_millis`.
#[derive(Message)]
#[rtype(result = "Result<(), Arc<StoreError>>")]
pub struct DayCompacted {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// When the listing started.
    pub started_millis: i64,
}

/// What is known of one day.
#[derive(Message)]
#[rtype(result = "Result<DayState, Arc<StoreError>>")]
pub struct GetDayState(pub String);

/// Days that got raw objects after their last compaction.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, Arc<StoreError>>")]
pub struct StaleDays;

/// Whether anything for a day is still on its way to the raw bucket.
#[derive(Message)]
#[rtype(result = "Result<bool, Arc<StoreError>>")]
pub struct DayPending {
    /// The archive outbox.
    pub outbox: &'static str,
    /// `<prefix>/context_date=YYYY-MM-DD/`.
    pub day_prefix: String,
    /// First second of the day (Unix).
    pub start: i64,
    /// First second of the next day.
    pub end: i64,
    /// The archived chats.
    pub chats: Vec<i64>,
}

impl Handler<DaysTouched> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: DaysTouched, _: &mut Context<Self>) {
        let now = crate::util::clock::now_millis();
        if let Err(e) = self.store_mut().days_touched(&msg.0, now) {
            log::error!("cannot record the days of stored raw objects: {e}");
        }
    }
}

impl Handler<DayCompacted> for StoreActor {
    type Result = Result<(), Arc<StoreError>>;

    fn handle(&mut self, msg: DayCompacted, _: &mut Context<Self>) -> Self::Result {
        self.store_mut()
            .day_compacted(&msg.day, msg.started_millis)
            .map_err(Arc::new)
    }
}

impl Handler<GetDayState> for StoreActor {
    type Result = Result<DayState, Arc<StoreError>>;

    fn handle(&mut self, msg: GetDayState, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().day_state(&msg.0).map_err(Arc::new)
    }
}

impl Handler<StaleDays> for StoreActor {
    type Result = Result<Vec<String>, Arc<StoreError>>;

    fn handle(&mut self, _: StaleDays, _: &mut Context<Self>) -> Self::Result {
        self.store_mut().stale_days().map_err(Arc::new)
    }
}

impl Handler<DayPending> for StoreActor {
    type Result = Result<bool, Arc<StoreError>>;

    fn handle(&mut self, msg: DayPending, _: &mut Context<Self>) -> Self::Result {
        self.store_mut()
            .day_pending(msg.outbox, &msg.day_prefix, msg.start, msg.end, &msg.chats)
            .map_err(Arc::new)
    }
}
