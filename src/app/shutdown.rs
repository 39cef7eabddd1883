//! A stop, written once as a value: the ordered steps and their deadlines, which
//! [`Service::stop`] runs and the tests read.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;

use super::Service;
use crate::actors::claims::StopClaims;
use crate::actors::pool::{DrainPool, WorkerPool};
use crate::actors::store::ReleaseClaims;
use crate::actors::store::WriteFinished;
use crate::actors::uploader::ledger::{sweep, Ledger};
use crate::clients::s3::S3Target;
use crate::intake::poller::StopPolling;

/// One step of a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Webhook deliveries are answered 503 (Telegram sends them again later), readiness fails
    /// and the webhook watch stops; the endpoints stay up while in-flight work drains.
    Close,
    /// The Telegram and VK pollers take no more updates.
    StopPolling,
    /// With replicas, the claims hand no more updates to the workers.
    StopClaims,
    /// In-flight work finishes, within the deadline; what does not stays in the journal.
    Drain,
    /// With replicas and a full drain: the finished updates are written and this replica's
    /// chats and outbox items go to the others at once (otherwise its claims run out).
    ReleaseClaims,
    /// After a drain that ran out: the uploader stops where it is and this process's multipart
    /// uploads are aborted on the server.
    AbortUploads,
    /// After a full drain: aborts that failed earlier (S3 was down) are tried once more
    /// before the process goes, not left for the next start.
    RetryAborts,
    /// The finished updates waiting for their batch are written before the store stops.
    WriteFinished,
    /// The HTTP endpoints stop.
    StopHttp,
    /// The worker pool, the uploader and the other actors' threads stop.
    StopActors,
}

/// The steps of a stop, in order, each with the time it may take (none: it is not bounded
/// here, its messages answer at once or the actor is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// The steps in the order they run.
    pub steps: Vec<(Step, Option<Duration>)>,
}

impl Shutdown {
    /// The stop of the service, with `deadline` (`shutdown_deadline_secs`) for in-flight work.
    pub fn plan(deadline: Duration) -> Self {
        Shutdown {
            steps: vec![
                (Step::Close, None),
                (Step::StopPolling, None),
                (Step::StopClaims, None),
                (Step::Drain, Some(deadline)),
                (Step::ReleaseClaims, None),
                (Step::AbortUploads, Some(Duration::from_secs(10))),
                (Step::RetryAborts, Some(Duration::from_secs(5))),
                (Step::WriteFinished, None),
                (Step::StopHttp, None),
                (Step::StopActors, None),
            ],
        }
    }

    /// The deadline of `step`, if the plan has one for it.
    pub fn deadline(&self, step: Step) -> Option<Duration> {
        self.steps.iter().find(|(s, _)| *s == step)?.1
    }
}

impl Service {
    /// Stops polling, lets in-flight work finish within the shutdown deadline, then stops the
    /// actors: the steps of [`Shutdown::plan`], in order. Unfinished updates stay in the
    /// journal for the next start.
    pub async fn stop(mut self) {
        let mut drained = true;
        for (step, deadline) in self.shutdown.steps.clone() {
            self.run_step(step, deadline, &mut drained).await;
        }
        log::info!("tg-ingest stopped");
    }

    async fn run_step(&mut self, step: Step, deadline: Option<Duration>, drained: &mut bool) {
        let bounded = deadline.unwrap_or(Duration::MAX);
        match step {
            Step::Close => {
                self.closing.store(true, Ordering::SeqCst);
                if let Some(watch) = &self.webhook_watch {
                    watch.store(true, Ordering::SeqCst);
                }
            }
            Step::StopPolling => {
                if let Some(poller) = &self.poller {
                    let _ = poller.send(StopPolling).await;
                }
                if let Some(poller) = &self.vk_poller {
                    let _ = poller.send(StopPolling).await;
                }
            }
            Step::StopClaims => {
                if let Some((claims, _)) = &self.claims {
                    let _ = claims.send(StopClaims).await;
                }
            }
            Step::Drain => {
                *drained = actix_rt::time::timeout(bounded, self.pool.send(DrainPool))
                    .await
                    .is_ok();
                if !*drained {
                    log::warn!(
                        "in-flight work did not finish within {} s; it stays in the journal and is replayed at the next start",
                        bounded.as_secs()
                    );
                }
            }
            Step::ReleaseClaims => {
                if let (true, Some((_, holder))) = (*drained, &self.claims) {
                    self.release_claims(holder.clone()).await;
                }
            }
            Step::AbortUploads if !*drained => {
                self.uploader_arbiter.stop();
                let sweep = abort_leftover_uploads(&self.uploads, &self.target, true);
                let _ = actix_rt::time::timeout(bounded, sweep).await;
            }
            Step::RetryAborts if *drained => {
                let sweep = abort_leftover_uploads(&self.uploads, &self.target, false);
                let _ = actix_rt::time::timeout(bounded, sweep).await;
            }
            Step::AbortUploads | Step::RetryAborts => {}
            Step::WriteFinished => {
                let _ = self.store.send(WriteFinished).await;
                if let Some((journal, poison)) = self.store_stats().await {
                    log::info!(
                        "journal holds {journal} unfinished updates; poison list holds {poison}"
                    );
                }
            }
            Step::StopHttp => {
                if let Some(http) = self.http.take() {
                    http.stop().await;
                }
            }
            Step::StopActors => {
                self.pool.do_send(StopPool);
                self.uploader_arbiter.stop();
                for arbiter in &self.arbiters {
                    arbiter.stop();
                }
            }
        }
    }

    /// Everything this replica took on is done: its chats and outbox items go to the other
    /// replicas at once. Otherwise its claims run out and the chats are taken over with their
    /// unfinished updates charged.
    async fn release_claims(&self, holder: String) {
        let _ = self.store.send(WriteFinished).await;
        match self.store.send(ReleaseClaims(holder.clone())).await {
            Ok(Ok(())) => log::info!("replica {holder} released its chat and outbox claims"),
            Ok(Err(e)) => {
                log::warn!("cannot release this replica's claims ({e}); they run out by themselves")
            }
            Err(e) => {
                log::warn!("store unavailable ({e}); this replica's claims run out by themselves")
            }
        }
    }
}

/// Aborts the multipart uploads this process must abort: its own leftovers and failed aborts,
/// those of replicas that stopped, and with `mine_too` (at a shutdown deadline) its own.
pub(super) async fn abort_leftover_uploads(ledger: &Ledger, target: &S3Target, mine_too: bool) {
    match sweep(ledger, target, mine_too).await {
        Ok((0, 0)) => {}
        Ok((aborted, 0)) => {
            log::info!("aborted {aborted} unfinished multipart uploads left open")
        }
        Ok((aborted, left)) => log::warn!(
            "aborted {aborted} unfinished multipart uploads; {left} could not be aborted and are tried again by the uploader (or the next start)"
        ),
        Err(e) => log::warn!("could not abort unfinished multipart uploads: {e}"),
    }
}

/// Stops the worker pool.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct StopPool;

impl Handler<StopPool> for WorkerPool {
    type Result = ();

    fn handle(&mut self, _: StopPool, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_drained_before_claims_are_released_and_stores_stop_last() {
        let plan = Shutdown::plan(Duration::from_secs(7));
        let at = |step| plan.steps.iter().position(|(s, _)| *s == step).unwrap();
        assert!(at(Step::Close) < at(Step::StopPolling));
        assert!(at(Step::StopPolling) < at(Step::Drain));
        assert!(at(Step::StopClaims) < at(Step::Drain));
        assert!(at(Step::Drain) < at(Step::ReleaseClaims));
        assert!(at(Step::Drain) < at(Step::AbortUploads));
        assert!(at(Step::WriteFinished) < at(Step::StopActors));
        assert!(at(Step::StopHttp) < at(Step::StopActors));
        assert_eq!(plan.deadline(Step::Drain), Some(Duration::from_secs(7)));
        assert_eq!(
            plan.deadline(Step::AbortUploads),
            Some(Duration::from_secs(10))
        );
        assert_eq!(plan.steps.len(), 10);
    }
}
