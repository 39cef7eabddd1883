//! `EtlSchedulerActor`: keeps the daily Parquet files complete.
//!
//! A pass runs at start-up, every `archive.recheck_secs` and at `archive.etl_at` (local time of
//! the archive's zone). It looks at the last `archive.catch_up_days` days and at every day the
//! store reports stale (raw objects stored after its last compaction). A day is compacted only
//! when nothing for it is still on its way (journaled updates of archived chats dated that day,
//! or objects waiting in the archive outbox); otherwise the next pass looks again. A day is
//! compacted when it has raw data but no `_SUCCESS` marker, or when it is stale. The passes at
//! start-up and at `etl_at` are thorough: they also list each day's raw objects and compact it
//! again when they differ from those its marker records (another writer, an import, a restore)
//! or its Parquet file is gone. Runs of one day never overlap, and passes never overlap.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use super::store::StoreActor;
use super::store::{DayCompacted, DayPending, GetDayState, StaleDays};
use super::store::{ReleaseLease, TakeLease};
use crate::config::ArchiveSettings;
use crate::domain::archive::ARCHIVE_OUTBOX;
use crate::etl::{day_prefix, has_raw_data, read_marker, run_day, EtlReport, EtlTarget};
use crate::store::DayState;
use crate::util::clock::Day;

/// Runs the ETL for one day now (also used by tests and operators through the actor).
#[derive(Message)]
#[rtype(result = "Result<EtlReport, String>")]
pub struct RunEtl(pub Day);

/// What a pass needs, shared by the actor and its passes.
struct Shared {
    target: EtlTarget,
    store: Option<Addr<StoreActor>>,
    settings: ArchiveSettings,
    /// Days being compacted right now.
    running: RefCell<HashSet<Day>>,
    /// Where runs are counted.
    metrics: std::sync::Arc<crate::obs::metrics::Metrics>,
    /// With replicas: this replica's name and how long the ETL lease lasts.
    lease: Option<(String, Duration)>,
}

/// The lease a replica holds while it runs a pass, so passes never overlap across replicas.
pub const ETL_LEASE: &str = "etl";

/// The scheduler.
pub struct EtlSchedulerActor {
    shared: Rc<Shared>,
    etl_minute: u32,
    pass_running: Rc<RefCell<bool>>,
    /// A thorough pass was asked for while another pass ran: it runs right after.
    thorough_waiting: bool,
}

impl EtlSchedulerActor {
    /// A scheduler for `target` with the archive's settings; `store` knows which days are
    /// stale or still have data on the way (without it, every day counts as settled).
    pub fn new(
        target: EtlTarget,
        settings: ArchiveSettings,
        store: Option<Addr<StoreActor>>,
        metrics: std::sync::Arc<crate::obs::metrics::Metrics>,
    ) -> Self {
        Self {
            etl_minute: settings.etl_minute().unwrap_or(5),
            shared: Rc::new(Shared {
                target,
                store,
                settings,
                running: RefCell::new(HashSet::new()),
                metrics,
                lease: None,
            }),
            pass_running: Rc::new(RefCell::new(false)),
            thorough_waiting: false,
        }
    }

    /// With replicas on a shared store: a pass runs only while this replica (`holder`) holds
    /// the ETL lease, renewed every third of `ttl` while the pass runs and released after it.
    /// Which days need compacting is in the shared store, so a day compacted by one replica
    /// is not compacted again by the next.
    pub fn with_lease(mut self, holder: String, ttl: Duration) -> Self {
        if let Some(shared) = Rc::get_mut(&mut self.shared) {
            shared.lease = Some((holder, ttl));
        }
        self
    }

    fn schedule_daily(&self, ctx: &mut Context<Self>) {
        let wait = until_local_minute(self.shared.now_local_secs(), self.etl_minute);
        log::info!("ETL: next daily run in {} min", wait.as_secs() / 60);
        ctx.run_later(wait, |act, ctx| {
            act.pass(ctx, true);
            act.schedule_daily(ctx);
        });
    }

    /// Starts a pass unless one is running (here, or on another replica); a thorough pass
    /// also compares each day with a listing of the raw bucket.
    fn pass(&mut self, ctx: &mut Context<Self>, thorough: bool) {
        if self.pass_running.replace(true) {
            self.thorough_waiting |= thorough;
            return;
        }
        let (shared, flag) = (self.shared.clone(), self.pass_running.clone());
        ctx.spawn(
            async move {
                shared.leased_pass(thorough).await;
                flag.replace(false);
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                if std::mem::take(&mut act.thorough_waiting) {
                    act.pass(ctx, true);
                }
            }),
        );
    }
}

impl Shared {
    fn now_local_secs(&self) -> i64 {
        crate::util::clock::now_millis().div_euclid(1000)
            + i64::from(self.settings.utc_offset_minutes) * 60
    }

    /// A pass, under the ETL lease when there are replicas.
    async fn leased_pass(&self, thorough: bool) {
        let (Some((holder, ttl)), Some(store)) = (&self.lease, &self.store) else {
            return self.pass(thorough).await;
        };
        let take = || TakeLease {
            name: ETL_LEASE,
            holder: holder.clone(),
            ttl_ms: ttl.as_millis() as i64,
        };
        match store.send(take()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                log::debug!("ETL: another replica runs a pass; skipping this one");
                return;
            }
            Ok(Err(e)) => {
                return log::warn!("ETL: cannot take the ETL lease ({e}); skipping this pass")
            }
            Err(e) => return log::warn!("ETL: store unavailable ({e}); skipping this pass"),
        }
        // Renewed while the pass runs.
        let renew = {
            let (store, take) = (store.clone(), take());
            let every = (*ttl / 3).max(Duration::from_millis(200));
            async move {
                loop {
                    actix_rt::time::sleep(every).await;
                    let again = TakeLease {
                        name: take.name,
                        holder: take.holder.clone(),
                        ttl_ms: take.ttl_ms,
                    };
                    if !matches!(store.send(again).await, Ok(Ok(Some(_)))) {
                        log::warn!("ETL: the ETL lease could not be renewed; another replica may start a pass");
                    }
                }
            }
        };
        futures_util::pin_mut!(renew);
        let pass = self.pass(thorough);
        futures_util::pin_mut!(pass);
        futures_util::future::select(pass, renew).await;
        let release = ReleaseLease {
            name: ETL_LEASE,
            holder: holder.clone(),
        };
        let _ = store.send(release).await;
    }

    async fn pass(&self, thorough: bool) {
        fail::fail_point!("etl.pass");
        let today = Day(self.now_local_secs().div_euclid(86_400));
        let mut days: BTreeSet<Day> = (1..=i64::from(self.settings.catch_up_days))
            .map(|n| Day(today.0 - n))
            .collect();
        if let Some(store) = &self.store {
            match store.send(StaleDays).await {
                Ok(Ok(stale)) => days.extend(stale.iter().filter_map(|d| Day::parse(d))),
                Ok(Err(e)) => log::warn!("ETL: cannot read the stale days: {e}"),
                Err(e) => log::warn!("ETL: store unavailable: {e}"),
            }
        }
        for day in days.into_iter().filter(|d| *d < today) {
            match self.is_due(day, thorough).await {
                Ok(Some(why)) => {
                    log::info!("ETL {day}: {why}; compacting it");
                    if let Err(e) = self.run(day).await {
                        log::error!("ETL {day} failed: {e}; the next pass tries again");
                    }
                }
                Ok(None) => {}
                Err(e) => log::warn!("ETL {day}: cannot check the day: {e}"),
            }
        }
    }

    /// Why `day` should be compacted now, or `None`. A thorough check (at start-up and at
    /// `etl_at`) also lists the day's raw objects and compares them with its marker.
    async fn is_due(&self, day: Day, thorough: bool) -> Result<Option<String>, String> {
        if self.running.borrow().contains(&day) {
            return Ok(None);
        }
        let Some(state) = self.settled_state(day).await? else {
            log::info!(
                "ETL {day}: messages of the day are still on their way; waiting for the next pass"
            );
            return Ok(None);
        };
        if state.compacted_at.is_some() && state.is_stale() {
            return Ok(Some("raw objects arrived after its last compaction".into()));
        }
        let t = &self.target;
        let Some(marker) = read_marker(&t.enriched, &t.prefix, day)
            .await
            .map_err(|e| e.to_string())?
        else {
            let raw = has_raw_data(&t.raw, &t.prefix, day)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(raw.then(|| "raw data without a marker".into()));
        };
        if state.compacted_at.is_none() && state.touched_at.is_some() {
            // Compacted elsewhere (the etl command, an earlier version) before this service
            // stored objects for it.
            return Ok(Some("raw objects arrived after its marker".into()));
        }
        if !thorough {
            return Ok(None);
        }
        let differs = crate::etl::marker::differs(
            &t.raw,
            &t.enriched,
            &t.prefix,
            day,
            &marker,
            t.list_page_keys,
        );
        differs.await.map_err(|e| e.to_string())
    }

    /// What the store knows of `day`, or `None` while messages of the day are still on their
    /// way (journaled, or waiting in the archive outbox). Without a store, every day is settled.
    async fn settled_state(&self, day: Day) -> Result<Option<DayState>, String> {
        let Some(store) = &self.store else {
            return Ok(Some(DayState::default()));
        };
        let offset = i64::from(self.settings.utc_offset_minutes) * 60;
        let start = day.0 * 86_400 - offset;
        let pending = DayPending {
            outbox: ARCHIVE_OUTBOX,
            day_prefix: day_prefix(&self.target.prefix, day),
            start,
            end: start + 86_400,
            chats: self.settings.chats.clone(),
        };
        let pending = store.send(pending).await.map_err(|e| e.to_string())?;
        if pending.map_err(|e| e.to_string())? {
            return Ok(None);
        }
        store
            .send(GetDayState(day.to_string()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
            .map(Some)
    }

    /// Compacts `day` unless it is being compacted; records the compaction in the store.
    async fn run(&self, day: Day) -> Result<EtlReport, String> {
        if !self.running.borrow_mut().insert(day) {
            return Err(format!("the ETL of {day} is already running"));
        }
        let started = crate::util::clock::now_millis();
        let result = run_day(&self.target, day, &|_, _| {}).await;
        self.running.borrow_mut().remove(&day);
        self.metrics
            .etl_finished(result.as_ref().ok().map(|report| report.rows));
        let report = result.map_err(|e| e.to_string())?;
        if let Some(store) = &self.store {
            let recorded = DayCompacted {
                day: day.to_string(),
                started_millis: started,
            };
            if !matches!(store.send(recorded).await, Ok(Ok(()))) {
                log::warn!(
                    "ETL {day}: could not record the compaction; the next pass may repeat it"
                );
            }
        }
        Ok(report)
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

impl Supervised for EtlSchedulerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The pass and the runs in flight were dropped; the next pass looks at their days again.
        self.pass_running = Rc::new(RefCell::new(false));
        self.thorough_waiting = false;
        self.shared.running.borrow_mut().clear();
    }
}

impl Actor for EtlSchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.pass(ctx, true);
        let every = Duration::from_secs(self.shared.settings.recheck_secs.max(1));
        ctx.run_interval(every, |act, ctx| act.pass(ctx, false));
        self.schedule_daily(ctx);
    }
}

impl Handler<RunEtl> for EtlSchedulerActor {
    type Result = ResponseFuture<Result<EtlReport, String>>;

    fn handle(&mut self, msg: RunEtl, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move { shared.run(msg.0).await })
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
