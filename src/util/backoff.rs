//! Capped exponential backoff with jitter, for retrying calls to outside services.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `cap`, each randomised to 50–100 % of its value.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the next one until the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let factor = rand::thread_rng().gen_range(0.5..=1.0);
        ceiling.mul_f64(factor)
    }

    /// The upper bound of the next delay, without jitter.
    pub fn ceiling(&self) -> Duration {
        let exp = self.attempt.min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// Number of delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let expected = [100, 200, 400, 800, 1000, 1000];
        for ms in expected {
            let ceiling = Duration::from_millis(ms);
            assert_eq!(b.ceiling(), ceiling);
            let d = b.next_delay();
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} vs {ceiling:?}");
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
