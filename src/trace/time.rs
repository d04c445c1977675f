//! The time in front of a trace line, in libpq's format.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A moment as libpq prints it before a trace line: `2025-01-31 12:34:56.789012`.
///
/// The crate reads no clock: the application's [`TraceSink`](super::TraceSink) hands one of
/// these to the tracer. libpq prints local time; the offset from UTC is the application's to
/// give ([`Timestamp::with_utc_offset`]), UTC when it gives none.
///
/// ```
/// use pgproto::trace::Timestamp;
///
/// let t = Timestamp::new(1_738_326_896, 789_012);
/// assert_eq!(t.to_string(), "2025-01-31 12:34:56.789012");
/// assert_eq!(t.with_utc_offset(3600).to_string(), "2025-01-31 13:34:56.789012");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    unix_seconds: i64,
    micros: u32,
    utc_offset: i32,
}

impl Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC and microseconds into that second (values of a
    /// million and more are taken as 999,999).
    pub fn new(unix_seconds: i64, micros: u32) -> Self {
        Self {
            unix_seconds,
            micros: micros.min(999_999),
            utc_offset: 0,
        }
    }

    /// The same moment, printed as the local time of a zone `seconds` east of UTC.
    pub fn with_utc_offset(self, seconds: i32) -> Self {
        Self {
            utc_offset: seconds,
            ..self
        }
    }

    /// A [`SystemTime`] the application read, in UTC. Times before 1970 count back from it.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use pgproto::trace::Timestamp;
    ///
    /// let t = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_micros(1_500_000));
    /// assert_eq!(t.to_string(), "1970-01-01 00:00:01.500000");
    /// ```
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::new(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_micros(),
            ),
            Err(e) => {
                let d = e.duration();
                let mut secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut micros = d.subsec_micros();
                if micros > 0 {
                    secs -= 1;
                    micros = 1_000_000 - micros;
                }
                Self::new(secs, micros)
            }
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.unix_seconds.saturating_add(i64::from(self.utc_offset));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.micros
        )
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
