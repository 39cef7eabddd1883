//! A pace for requests: at most `per_sec` turns a second, handed out in order and evenly spaced
//! (no bursts), for a caller that must stay under a provider's request rate.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Hands out turns at most `per_sec` a second. Shared by the tasks of one thread.
#[derive(Debug)]
pub struct Pace {
    every: Duration,
    next: Cell<Option<Instant>>,
}

impl Pace {
    /// A pace of `per_sec` turns a second (at least one).
    pub fn new(per_sec: u32) -> Self {
        Self {
            every: Duration::from_secs(1) / per_sec.max(1),
            next: Cell::new(None),
        }
    }

    /// The instant of the next turn, booked for the caller.
    pub fn book(&self, now: Instant) -> Instant {
        let at = self.next.get().map_or(now, |next| next.max(now));
        self.next.set(Some(at + self.every));
        at
    }

    /// Waits for the caller's turn.
    pub async fn turn(&self) {
        let now = Instant::now();
        let at = self.book(now);
        if at > now {
            actix_rt::time::sleep(at - now).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_spaced_evenly_and_idle_time_is_not_saved_up() {
        let pace = Pace::new(4);
        let t0 = Instant::now();
        let turns: Vec<Duration> = (0..5).map(|_| pace.book(t0) - t0).collect();
        assert_eq!(
            turns,
            [0, 250, 500, 750, 1000].map(Duration::from_millis),
            "five turns at once are spread over a second"
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            pace.book(later),
            later,
            "after a pause the next turn is now"
        );
        assert_eq!(
            pace.book(later),
            later + Duration::from_millis(250),
            "and no burst follows it"
        );
    }
}
