//! Calendar arithmetic for timestamps written to outside systems (UTC, proleptic Gregorian).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The civil date (year, month 1–12, day 1–31) of a day number counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO 8601 in UTC with milliseconds and `Z`, as Airtable's "date and time" fields take it:
/// `2026-11-21T07:00:00.000Z`.
pub fn iso8601_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The day number (from 1970-01-01) of a civil date; the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A calendar day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The day of a Unix time in a zone `offset_minutes` east of UTC (negative for west).
    pub fn of(unix_secs: i64, offset_minutes: i32) -> Self {
        Self((unix_secs + i64::from(offset_minutes) * 60).div_euclid(86_400))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let day = Self(days_from_civil(y, m, d));
        // Rejects 2026-02-30 and the like by round-tripping.
        (civil_from_days(day.0) == (y, m, d)).then_some(day)
    }

    /// The day before.
    pub fn prev(self) -> Self {
        Self(self.0 - 1)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// `YYYYmmddHHMMSS` of a Unix time in a zone `offset_minutes` east of UTC.
pub fn compact_local_time(unix_secs: i64, offset_minutes: i32) -> String {
    let local = unix_secs + i64::from(offset_minutes) * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_795_244_400_000),
            "2026-11-21T07:00:00.000Z"
        );
        assert_eq!(iso8601_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn days_round_trip_across_leap_years() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }
    #[test]
    fn days_parse_print_and_shift_by_zone() {
        let day = Day::parse("2026-11-21").unwrap();
        assert_eq!(day.to_string(), "2026-11-21");
        assert_eq!(day.prev().to_string(), "2026-11-20");
        assert_eq!(Day::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        for bad in ["2026-02-30", "2026-13-01", "26-11-21", "2026-11-21x", ""] {
            assert!(Day::parse(bad).is_none(), "{bad}");
        }
        // 2026-11-22 02:30 UTC is still the 21st at UTC-03:00.
        let t = 1_795_314_600;
        assert_eq!(Day::of(t, 0).to_string(), "2026-11-22");
        assert_eq!(Day::of(t, -180).to_string(), "2026-11-21");
        assert_eq!(compact_local_time(t, -180), "20261121233000");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
