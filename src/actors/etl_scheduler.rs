//! `EtlSchedulerActor`: runs the ETL for the previous day every day at `archive.etl_at` (local
//! time of the archive's zone) and, at start-up, catches up the days of the last
//! `archive.catch_up_days` that have raw data but no `_SUCCESS` marker.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::clock::Day;
use crate::etl::{has_marker, has_raw_data, run_day, EtlReport, EtlTarget};

/// Runs the ETL for one day now (also used by tests and operators through the actor).
#[derive(Message)]
#[rtype(result = "Result<EtlReport, String>")]
pub struct RunEtl(pub Day);

/// The scheduler.
pub struct EtlSchedulerActor {
    target: Rc<EtlTarget>,
    offset_minutes: i32,
    etl_minute: u32,
    catch_up_days: u32,
}

impl EtlSchedulerActor {
    /// A scheduler for `target` in a zone `offset_minutes` east of UTC.
    pub fn new(
        target: EtlTarget,
        offset_minutes: i32,
        etl_minute: u32,
        catch_up_days: u32,
    ) -> Self {
        Self {
            target: Rc::new(target),
            offset_minutes,
            etl_minute,
            catch_up_days,
        }
    }

    fn now_local_secs(&self) -> i64 {
        crate::clock::now_millis().div_euclid(1000) + i64::from(self.offset_minutes) * 60
    }

    /// Time until the next run.
    fn until_next_run(&self) -> Duration {
        until_local_minute(self.now_local_secs(), self.etl_minute)
    }

    fn schedule(&self, ctx: &mut Context<Self>) {
        let wait = self.until_next_run();
        log::info!("ETL: next daily run in {} min", wait.as_secs() / 60);
        ctx.run_later(wait, |act, ctx| {
            let yesterday = Day(act.now_local_secs().div_euclid(86_400)).prev();
            let target = act.target.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = run_day(&target, yesterday, &|_, _| {}).await {
                        log::error!("ETL {yesterday} failed: {e}; it is retried at the next start-up catch-up or run");
                    }
                }
                .into_actor(act),
            );
            act.schedule(ctx);
        });
    }
}

/// Time from `now_local_secs` (seconds since the epoch, shifted to local time) until the next
/// `minute` after local midnight; a full day when that minute is now.
fn until_local_minute(now_local_secs: i64, minute: u32) -> Duration {
    let local = now_local_secs.rem_euclid(86_400);
    let at = i64::from(minute) * 60;
    let wait = (at - local).rem_euclid(86_400);
    Duration::from_secs(if wait == 0 { 86_400 } else { wait as u64 })
}

impl Actor for EtlSchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let today = Day(self.now_local_secs().div_euclid(86_400));
        let target = self.target.clone();
        let days: Vec<Day> = (1..=i64::from(self.catch_up_days))
            .rev()
            .map(|n| Day(today.0 - n))
            .collect();
        ctx.spawn(
            async move {
                for day in days {
                    let pending = match (
                        has_raw_data(&target.raw, &target.prefix, day).await,
                        has_marker(&target.enriched, &target.prefix, day).await,
                    ) {
                        (Ok(raw), Ok(marker)) => raw && !marker,
                        (Err(e), _) | (_, Err(e)) => {
                            log::warn!("ETL catch-up: cannot check {day}: {e}");
                            false
                        }
                    };
                    if pending {
                        log::info!("ETL catch-up: {day} has raw data but no marker; processing it");
                        if let Err(e) = run_day(&target, day, &|_, _| {}).await {
                            log::error!("ETL catch-up of {day} failed: {e}");
                        }
                    }
                }
            }
            .into_actor(self),
        );
        self.schedule(ctx);
    }
}

impl Handler<RunEtl> for EtlSchedulerActor {
    type Result = ResponseFuture<Result<EtlReport, String>>;

    fn handle(&mut self, msg: RunEtl, _: &mut Context<Self>) -> Self::Result {
        let target = self.target.clone();
        Box::pin(async move {
            run_day(&target, msg.0, &|_, _| {})
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_is_at_the_local_minute_today_or_tomorrow() {
        let midnight = 20_000 * 86_400;
        assert_eq!(
            until_local_minute(midnight, 5),
            Duration::from_secs(300),
            "00:00 -> 00:05"
        );
        assert_eq!(
            until_local_minute(midnight + 6 * 60, 5),
            Duration::from_secs(86_400 - 60),
            "00:06 -> 00:05 tomorrow"
        );
        assert_eq!(
            until_local_minute(midnight + 5 * 60, 5),
            Duration::from_secs(86_400),
            "exactly at the minute -> a day later"
        );
        assert_eq!(
            until_local_minute(-86_400 + 23 * 3600, 0),
            Duration::from_secs(3600),
            "before the epoch too"
        );
    }
}
