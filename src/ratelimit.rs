//! Outgoing rate limits for Telegram sends and edits: per chat, per group and overall.
//!
//! Each limit is a token bucket kept as a "theoretical arrival time" (GCRA): a send may go at
//! `tat - burst * interval` at the earliest, and each send moves `tat` on by one interval.
//! One limiter is shared by every actor that sends, so the limits hold for the whole process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::settings::RateLimitSettings;

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
    per_chat: Limit,
    per_group: Limit,
    global: Limit,
    global_tat: Option<Instant>,
    chats: HashMap<i64, Instant>,
}

/// A limiter shared across threads; `None` when limits are off.
pub type SharedLimiter = Option<Arc<Mutex<RateLimiter>>>;

impl RateLimiter {
    /// A limiter from settings, or `None` when disabled.
    pub fn shared(settings: &RateLimitSettings) -> SharedLimiter {
        settings.enabled.then(|| {
            Arc::new(Mutex::new(Self {
                per_chat: Limit::per_sec(settings.per_chat_per_sec, settings.per_chat_burst),
                per_group: Limit::per_sec(
                    settings.per_group_per_min / 60.0,
                    settings.per_group_burst,
                ),
                global: Limit::per_sec(settings.global_per_sec, settings.global_burst),
                global_tat: None,
                chats: HashMap::new(),
            }))
        })
    }

    /// Reserves a slot for one message to `chat` (negative ids are groups and channels) and
    /// returns how long to wait before sending it.
    pub fn reserve(&mut self, chat: i64, now: Instant) -> Duration {
        let chat_limit = if chat < 0 {
            self.per_group
        } else {
            self.per_chat
        };
        let chat_tat = self.chats.get(&chat).copied().unwrap_or(now);
        let global_tat = self.global_tat.unwrap_or(now);
        let at = now
            .max(chat_limit.earliest(chat_tat))
            .max(self.global.earliest(global_tat));
        self.chats
            .insert(chat, chat_tat.max(at) + chat_limit.interval);
        self.global_tat = Some(global_tat.max(at) + self.global.interval);
        if self.chats.len() > 100_000 {
            self.chats.retain(|_, tat| *tat > now);
        }
        at - now
    }
}

/// Waits for a slot for one message to `chat`, if limits are on.
pub async fn acquire(limiter: &SharedLimiter, chat: i64) {
    let Some(limiter) = limiter else {
        return;
    };
    let wait = match limiter.lock() {
        Ok(mut l) => l.reserve(chat, Instant::now()),
        Err(poisoned) => poisoned.into_inner().reserve(chat, Instant::now()),
    };
    if !wait.is_zero() {
        actix_rt::time::sleep(wait).await;
    }
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
        Arc::try_unwrap(RateLimiter::shared(&s).unwrap())
            .unwrap()
            .into_inner()
            .unwrap()
    }

    #[test]
    fn one_chat_gets_its_burst_then_one_per_second() {
        let mut l = limiter(1.0, 3, 20.0, 1000.0, 1000);
        let t = Instant::now();
        let waits: Vec<u128> = (0..5).map(|_| l.reserve(7, t).as_millis()).collect();
        assert_eq!(waits, [0, 0, 0, 1000, 2000]);
    }

    #[test]
    fn groups_get_twenty_a_minute() {
        let mut l = limiter(1.0, 3, 20.0, 1000.0, 1000);
        let t = Instant::now();
        assert_eq!(l.reserve(-100, t), Duration::ZERO);
        assert_eq!(l.reserve(-100, t).as_millis(), 3000);
    }

    #[test]
    fn the_global_limit_spans_chats() {
        let mut l = limiter(1.0, 1, 20.0, 30.0, 30);
        let t = Instant::now();
        let waits: Vec<Duration> = (0..31).map(|chat| l.reserve(chat, t)).collect();
        assert!(waits[..30].iter().all(|w| w.is_zero()));
        assert!(waits[30] >= Duration::from_millis(33), "{:?}", waits[30]);
    }

    #[test]
    fn time_refills_the_bucket() {
        let mut l = limiter(1.0, 1, 20.0, 1000.0, 1000);
        let t = Instant::now();
        assert!(l.reserve(1, t).is_zero());
        assert!(l.reserve(1, t + Duration::from_secs(2)).is_zero());
    }
}
