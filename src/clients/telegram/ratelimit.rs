//! Outgoing limits for Telegram calls: message rates per chat, per group and overall, and the
//! waits Telegram itself asks for (`retry_after`).
//!
//! Each rate is a token bucket kept as a "theoretical arrival time" (GCRA): a send may go at
//! `tat - (burst - 1) * interval` at the earliest, and each send moves `tat` on by one interval.
//! A message first waits for its own chat's slot and only then takes a slot of the global
//! limit, so a message waiting for a busy group never holds back messages to other chats.
//! A `429` teaches the limiter a hold on its chat: every further call to that chat (messages,
//! edits, `getFile`, downloads) waits until the hold ends, even with the rates switched off.
//! One limiter is shared by every actor that calls Telegram, so the limits hold process-wide.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RateLimitSettings;

#[derive(Debug, Clone, Copy)]
struct Limit {
    interval: Duration,
    burst: u32,
}

impl Limit {
    fn per_sec(rate: f64, burst: u32) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            burst: burst.max(1),
        }
    }

    /// Earliest time a send may go, given the bucket's arrival time.
    fn earliest(&self, tat: Instant) -> Instant {
        tat.checked_sub(self.interval * (self.burst - 1))
            .unwrap_or(tat)
    }
}

/// The limiter's state.
#[derive(Debug)]
pub struct RateLimiter {
    rates: bool,
    per_chat: Limit,
    per_group: Limit,
    global: Limit,
    global_tat: Option<Instant>,
    chats: HashMap<i64, Instant>,
    holds: HashMap<i64, Instant>,
}

/// The limiter shared by every Telegram client of the process.
pub type SharedLimiter = Arc<Mutex<RateLimiter>>;

impl RateLimiter {
    /// A shared limiter from settings; with `enabled = false` only `retry_after` holds apply.
    pub fn shared(settings: &RateLimitSettings) -> SharedLimiter {
        let rate = |r: f64| if r > 0.0 { r } else { 1.0 };
        Arc::new(Mutex::new(Self {
            rates: settings.enabled,
            per_chat: Limit::per_sec(rate(settings.per_chat_per_sec), settings.per_chat_burst),
            per_group: Limit::per_sec(
                rate(settings.per_group_per_min) / 60.0,
                settings.per_group_burst,
            ),
            global: Limit::per_sec(rate(settings.global_per_sec), settings.global_burst),
            global_tat: None,
            chats: HashMap::new(),
            holds: HashMap::new(),
        }))
    }

    /// A shared limiter that applies only `retry_after` holds.
    pub fn holds_only() -> SharedLimiter {
        Self::shared(&RateLimitSettings {
            enabled: false,
            per_chat_per_sec: 1.0,
            per_chat_burst: 1,
            per_group_per_min: 20.0,
            per_group_burst: 1,
            global_per_sec: 30.0,
            global_burst: 1,
        })
    }

    /// How long calls to `chat` must still wait because Telegram asked for it.
    pub fn held_for(&self, chat: i64, now: Instant) -> Duration {
        self.holds
            .get(&chat)
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Holds every call to `chat` until `now + wait` (a `429` with `retry_after`).
    pub fn hold(&mut self, chat: i64, wait: Duration, now: Instant) {
        let until = now + wait;
        let entry = self.holds.entry(chat).or_insert(until);
        *entry = (*entry).max(until);
        if self.holds.len() > 10_000 {
            self.holds.retain(|_, t| *t > now);
        }
    }

    /// Reserves `chat`'s next message slot (negative ids are groups and channels) and returns
    /// how long to wait for it. The global slot is taken separately, when the wait is over.
    pub fn reserve_chat(&mut self, chat: i64, now: Instant) -> Duration {
        let held = self.held_for(chat, now);
        if !self.rates {
            return held;
        }
        let limit = if chat < 0 {
            self.per_group
        } else {
            self.per_chat
        };
        let tat = self.chats.get(&chat).copied().unwrap_or(now);
        let at = now.max(limit.earliest(tat)).max(now + held);
        self.chats.insert(chat, tat.max(at) + limit.interval);
        if self.chats.len() > 100_000 {
            self.chats.retain(|_, tat| *tat > now);
        }
        at - now
    }

    /// Reserves a slot of the global limit for a message about to be sent.
    pub fn reserve_global(&mut self, now: Instant) -> Duration {
        if !self.rates {
            return Duration::ZERO;
        }
        let tat = self.global_tat.unwrap_or(now);
        let at = now.max(self.global.earliest(tat));
        self.global_tat = Some(tat.max(at) + self.global.interval);
        at - now
    }
}

fn locked<T>(limiter: &SharedLimiter, f: impl FnOnce(&mut RateLimiter) -> T) -> T {
    match limiter.lock() {
        Ok(mut l) => f(&mut l),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// Waits for a slot for one message to `chat`: first the chat's own, then the global one.
pub async fn acquire(limiter: &SharedLimiter, chat: i64) {
    let wait = locked(limiter, |l| l.reserve_chat(chat, Instant::now()));
    if !wait.is_zero() {
        actix_rt::time::sleep(wait).await;
    }
    let wait = locked(limiter, |l| l.reserve_global(Instant::now()));
    if !wait.is_zero() {
        actix_rt::time::sleep(wait).await;
    }
}

/// Waits out a hold on `chat` (for calls that are not messages: `getFile`, downloads).
pub async fn wait_hold(limiter: &SharedLimiter, chat: i64) {
    let wait = locked(limiter, |l| l.held_for(chat, Instant::now()));
    if !wait.is_zero() {
        actix_rt::time::sleep(wait).await;
    }
}

/// Teaches the limiter a `retry_after` for `chat`.
pub fn learn_hold(limiter: &SharedLimiter, chat: i64, wait: Duration) {
    locked(limiter, |l| l.hold(chat, wait, Instant::now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(
        chat: f64,
        chat_burst: u32,
        group_per_min: f64,
        global: f64,
        global_burst: u32,
    ) -> RateLimiter {
        let s = RateLimitSettings {
            enabled: true,
            per_chat_per_sec: chat,
            per_chat_burst: chat_burst,
            per_group_per_min: group_per_min,
            per_group_burst: 1,
            global_per_sec: global,
            global_burst,
        };
        Arc::try_unwrap(RateLimiter::shared(&s))
            .unwrap()
            .into_inner()
            .unwrap()
    }

    #[test]
    fn one_chat_gets_its_burst_then_one_per_second() {
        let mut l = limiter(1.0, 3, 20.0, 1000.0, 1000);
        let t = Instant::now();
        let waits: Vec<u128> = (0..5).map(|_| l.reserve_chat(7, t).as_millis()).collect();
        assert_eq!(waits, [0, 0, 0, 1000, 2000]);
    }

    #[test]
    fn groups_get_twenty_a_minute() {
        let mut l = limiter(1.0, 3, 20.0, 1000.0, 1000);
        let t = Instant::now();
        assert_eq!(l.reserve_chat(-100, t), Duration::ZERO);
        assert_eq!(l.reserve_chat(-100, t).as_millis(), 3000);
    }

    #[test]
    fn the_global_limit_spans_chats() {
        let mut l = limiter(1.0, 1, 20.0, 30.0, 30);
        let t = Instant::now();
        let waits: Vec<Duration> = (0..31)
            .map(|chat| l.reserve_chat(chat, t) + l.reserve_global(t))
            .collect();
        assert!(waits[..30].iter().all(|w| w.is_zero()));
        assert!(waits[30] >= Duration::from_millis(33), "{:?}", waits[30]);
    }

    #[test]
    fn a_message_waiting_for_its_group_does_not_hold_other_chats() {
        let mut l = limiter(1.0, 1, 20.0, 30.0, 1);
        let t = Instant::now();
        assert!(l.reserve_chat(-5, t).is_zero());
        assert!(l.reserve_global(t).is_zero());
        // The group's next message waits 3 s for its own slot, and takes no global slot yet.
        assert_eq!(l.reserve_chat(-5, t).as_millis(), 3000);
        // Another chat only waits one global interval.
        let other = l.reserve_chat(9, t) + l.reserve_global(t);
        assert!(other <= Duration::from_millis(34), "{other:?}");
    }

    #[test]
    fn time_refills_the_bucket() {
        let mut l = limiter(1.0, 1, 20.0, 1000.0, 1000);
        let t = Instant::now();
        assert!(l.reserve_chat(1, t).is_zero());
        assert!(l.reserve_chat(1, t + Duration::from_secs(2)).is_zero());
    }

    #[test]
    fn a_hold_delays_only_its_chat_even_with_rates_off() {
        let mut l = Arc::try_unwrap(RateLimiter::holds_only())
            .unwrap()
            .into_inner()
            .unwrap();
        let t = Instant::now();
        l.hold(7, Duration::from_secs(3), t);
        assert_eq!(l.reserve_chat(7, t).as_secs(), 3);
        assert_eq!(l.held_for(7, t + Duration::from_secs(1)).as_secs(), 2);
        assert!(l.reserve_chat(8, t).is_zero());
        assert!(l.reserve_chat(7, t + Duration::from_secs(3)).is_zero());
        // A shorter hold never shortens a longer one.
        l.hold(8, Duration::from_secs(5), t);
        l.hold(8, Duration::from_secs(1), t);
        assert_eq!(l.held_for(8, t).as_secs(), 5);
    }
}
