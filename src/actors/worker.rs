//! `WorkerActor`: runs the business logic for the updates routed to it.
//!
//! Updates of one chat are handled one after another, in the order they arrived; updates of
//! different chats run concurrently. A panic while handling an update is caught: the update is
//! logged and dropped, the worker stops, and its supervisor restarts it with its queues intact,
//! so the service keeps going.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};

use super::uploader::UploadProgress;
use crate::metrics::Metrics;
use crate::telegram::IncomingUpdate;

/// One update for this worker to handle. Answered once the update is queued.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleUpdate(pub Arc<IncomingUpdate>);

/// What handling an update did, for the log line.
pub type Outcome = Result<String, HandlerError>;

/// A handling failure that was dealt with (logged) but did not finish the job.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// The business logic a worker runs. One instance per worker, living on its thread.
pub trait UpdateHandler {
    /// Handles one update; resolves to a short description of what was done.
    fn handle(
        self: Rc<Self>,
        update: Arc<IncomingUpdate>,
        progress: Recipient<UploadProgress>,
    ) -> LocalBoxFuture<'static, Outcome>;

    /// Shows upload progress to the user.
    fn on_progress(self: Rc<Self>, progress: UploadProgress) -> LocalBoxFuture<'static, ()>;
}

/// Builds a worker's handler on the worker's own thread.
pub type HandlerFactory = Arc<dyn Fn(usize) -> Rc<dyn UpdateHandler> + Send + Sync>;

/// A worker of the pool.
pub struct WorkerActor {
    id: usize,
    handler: Rc<dyn UpdateHandler>,
    /// Updates waiting, per chat.
    queues: HashMap<i64, VecDeque<Arc<IncomingUpdate>>>,
    /// The update being handled, per chat.
    busy: HashMap<i64, Arc<IncomingUpdate>>,
    metrics: Arc<Metrics>,
}

impl WorkerActor {
    /// A worker with the given id and handler.
    pub fn new(id: usize, handler: Rc<dyn UpdateHandler>, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            handler,
            queues: HashMap::new(),
            busy: HashMap::new(),
            metrics,
        }
    }

    /// Starts the next queued update of `chat` unless one is running.
    fn pump(&mut self, chat: i64, ctx: &mut Context<Self>) {
        if self.busy.contains_key(&chat) {
            return;
        }
        let Some(queue) = self.queues.get_mut(&chat) else {
            return;
        };
        let Some(update) = queue.pop_front() else {
            self.queues.remove(&chat);
            return;
        };
        self.busy.insert(chat, update.clone());
        let handler = self.handler.clone();
        let progress = ctx.address().recipient();
        let work = {
            let update = update.clone();
            async move { handler.handle(update, progress).await }
        };
        let guarded = AssertUnwindSafe(work).catch_unwind();
        ctx.spawn(guarded.into_actor(self).map(move |result, act, ctx| {
            act.finished(chat, &update, result, ctx);
        }));
    }

    fn finished(
        &mut self,
        chat: i64,
        update: &IncomingUpdate,
        result: std::thread::Result<Outcome>,
        ctx: &mut Context<Self>,
    ) {
        self.busy.remove(&chat);
        Metrics::incr(&self.metrics.updates_handled);
        match result {
            Ok(Ok(action)) => log::info!(
                "update_id={} chat_id={chat} kind={}: {action}",
                update.update_id,
                update.kind()
            ),
            Ok(Err(e)) => {
                Metrics::incr(&self.metrics.handler_errors);
                log::error!(
                    "update_id={} chat_id={chat} kind={}: failed: {e}",
                    update.update_id,
                    update.kind()
                );
            }
            Err(panic) => {
                Metrics::incr(&self.metrics.worker_panics);
                log::error!(
                    "worker {} panicked while handling update_id={} chat_id={chat}: {}; restarting the worker",
                    self.id,
                    update.update_id,
                    panic_message(&*panic)
                );
                ctx.stop();
                return;
            }
        }
        self.pump(chat, ctx);
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic".to_string()
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let chats: Vec<i64> = self.queues.keys().copied().collect();
        for chat in chats {
            self.pump(chat, ctx);
        }
    }
}

impl Supervised for WorkerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        Metrics::incr(&self.metrics.worker_restarts);
        // Work cut short by the stop goes back to the front of its chat's queue.
        let interrupted: Vec<(i64, Arc<IncomingUpdate>)> = self.busy.drain().collect();
        for (chat, update) in interrupted {
            self.queues.entry(chat).or_default().push_front(update);
        }
        log::warn!("worker {} restarted by its supervisor", self.id);
    }
}

impl Handler<HandleUpdate> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: HandleUpdate, ctx: &mut Context<Self>) {
        let chat = msg.0.chat_id().unwrap_or(0);
        self.queues.entry(chat).or_default().push_back(msg.0);
        self.pump(chat, ctx);
    }
}

impl Handler<UploadProgress> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: UploadProgress, ctx: &mut Context<Self>) {
        let work = AssertUnwindSafe(self.handler.clone().on_progress(msg)).catch_unwind();
        ctx.spawn(
            work.map(|r| {
                if let Err(panic) = r {
                    log::error!("progress display panicked: {}", panic_message(&*panic));
                }
            })
            .into_actor(self),
        );
    }
}
