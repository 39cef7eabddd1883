//! The supervised pool of `WorkerActor`s and the router in front of it.
//!
//! Each worker runs on its own arbiter (thread) under a `Supervisor`. Updates are routed by
//! chat id, so one chat always goes to the same worker and stays in order.

use actix::prelude::*;

use super::worker::{Drain, HandleUpdate, HandlerFactory, Job, WorkerActor, WorkerDeps};

/// Hands one journaled update to the pool; answered once a worker has queued it.
#[derive(Message)]
#[rtype(result = "Result<(), DispatchError>")]
pub struct Dispatch(pub Job);

/// Stops every worker from starting updates; answered when all in-flight work is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainPool;

/// The pool could not take the update (it is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("worker {worker} did not accept update {update_id}: {reason}")]
pub struct DispatchError {
    /// Worker index.
    pub worker: usize,
    /// The update.
    pub update_id: i64,
    /// Mailbox error.
    pub reason: String,
}

/// Routes updates to workers by chat.
pub struct WorkerPool {
    workers: Vec<Addr<WorkerActor>>,
    _arbiters: Vec<Arbiter>,
}

impl WorkerPool {
    /// Starts `size` supervised workers, each on its own arbiter, with handlers from `factory`.
    pub fn start(size: usize, factory: HandlerFactory, deps: WorkerDeps) -> Addr<Self> {
        let mut arbiters = Vec::with_capacity(size);
        let mut workers = Vec::with_capacity(size);
        for id in 0..size {
            let arbiter = Arbiter::new();
            let factory = factory.clone();
            let deps = deps.clone();
            let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                WorkerActor::new(id, factory(id), deps)
            });
            workers.push(addr);
            arbiters.push(arbiter);
        }
        Self {
            workers,
            _arbiters: arbiters,
        }
        .start()
    }

    /// Index of the worker that owns `chat`.
    pub fn route(chat: i64, size: usize) -> usize {
        (chat.unsigned_abs() % size as u64) as usize
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        for arbiter in &self._arbiters {
            arbiter.stop();
        }
    }
}

impl Handler<Dispatch> for WorkerPool {
    type Result = ResponseFuture<Result<(), DispatchError>>;

    fn handle(&mut self, msg: Dispatch, _: &mut Context<Self>) -> Self::Result {
        let chat = msg.0.update.chat_id().unwrap_or(0);
        let index = Self::route(chat, self.workers.len());
        let worker = self.workers[index].clone();
        let update_id = msg.0.update.update_id;
        Box::pin(async move {
            worker
                .send(HandleUpdate(msg.0))
                .await
                .map_err(|e| DispatchError {
                    worker: index,
                    update_id,
                    reason: e.to_string(),
                })
        })
    }
}

impl Handler<DrainPool> for WorkerPool {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: DrainPool, _: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self.workers.iter().map(|w| w.send(Drain)).collect();
        Box::pin(async move {
            for d in drains {
                let _ = d.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_covers_negative_ids() {
        assert_eq!(
            WorkerPool::route(-1001234567890, 4),
            WorkerPool::route(-1001234567890, 4)
        );
        assert!(WorkerPool::route(i64::MIN, 3) < 3);
        let hit: std::collections::HashSet<usize> =
            (0..100).map(|c| WorkerPool::route(c, 4)).collect();
        assert_eq!(hit.len(), 4);
    }
}
