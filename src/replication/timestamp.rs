//! PostgreSQL timestamps (`TimestampTz`): microseconds since 2000-01-01 00:00:00 UTC.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds between the Unix epoch (1970-01-01) and the PostgreSQL epoch (2000-01-01).
const UNIX_TO_PG_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_0000_03_01_TO_UNIX: i64 = 719_468;

/// A point in time as the replication protocol carries it (PostgreSQL's `TimestampTz`):
/// microseconds since 2000-01-01 00:00:00 UTC, negative before. `i64::MAX` and `i64::MIN` are
/// PostgreSQL's `infinity` and `-infinity`.
///
/// The text form is the one `timestamptz` has under `DateStyle=ISO` and `TimeZone=UTC`.
///
/// ```
/// use pgproto::replication::Timestamp;
///
/// let t = Timestamp::from_micros(0);
/// assert_eq!(t.to_string(), "2000-01-01 00:00:00+00");
/// let t: Timestamp = "2024-02-29 13:14:15.5+00".parse().unwrap();
/// assert_eq!(t.to_unix_micros(), 1_709_212_455_500_000);
/// assert_eq!(t.to_string(), "2024-02-29 13:14:15.5+00");
/// assert_eq!(Timestamp::INFINITY.to_string(), "infinity");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 2000-01-01 00:00:00 UTC, the PostgreSQL epoch.
    pub const EPOCH: Self = Self(0);
    /// PostgreSQL's `infinity`.
    pub const INFINITY: Self = Self(i64::MAX);
    /// PostgreSQL's `-infinity`.
    pub const NEG_INFINITY: Self = Self(i64::MIN);

    /// The time `micros` microseconds after 2000-01-01 00:00:00 UTC (as on the wire).
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC (as on the wire).
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The time `micros` microseconds after the Unix epoch, saturating at the infinities.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros.saturating_sub(UNIX_TO_PG_MICROS))
    }

    /// Microseconds since the Unix epoch, saturating.
    pub const fn to_unix_micros(self) -> i64 {
        self.0.saturating_add(UNIX_TO_PG_MICROS)
    }

    /// A system time, to the microsecond (the crate never reads a clock: pass
    /// `SystemTime::now()` to stamp a standby status update).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use pgproto::replication::Timestamp;
    /// let t = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_secs(946_684_800));
    /// assert_eq!(t, Timestamp::EPOCH);
    /// ```
    pub fn from_system_time(time: SystemTime) -> Self {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Self::from_unix_micros(micros)
    }

    /// The system time this is, `None` for the infinities or outside `SystemTime`'s range.
    pub fn to_system_time(self) -> Option<SystemTime> {
        if self == Self::INFINITY || self == Self::NEG_INFINITY {
            return None;
        }
        let unix = i128::from(self.0) + i128::from(UNIX_TO_PG_MICROS);
        let d = Duration::from_micros(u64::try_from(unix.unsigned_abs()).ok()?);
        if unix >= 0 {
            UNIX_EPOCH.checked_add(d)
        } else {
            UNIX_EPOCH.checked_sub(d)
        }
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + DAYS_0000_03_01_TO_UNIX;
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

/// The day counted from 1970-01-01 of a proleptic Gregorian date (`days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - DAYS_0000_03_01_TO_UNIX
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, trailing zeros of the fraction dropped, ` BC` after
    /// years before 1; `infinity` and `-infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::INFINITY {
            return f.write_str("infinity");
        }
        if *self == Self::NEG_INFINITY {
            return f.write_str("-infinity");
        }
        let unix = i128::from(self.0) + i128::from(UNIX_TO_PG_MICROS);
        // INVARIANT: |unix| / MICROS_PER_DAY is far below i64::MAX.
        let days = unix.div_euclid(i128::from(MICROS_PER_DAY)) as i64;
        let in_day = unix.rem_euclid(i128::from(MICROS_PER_DAY)) as i64;
        let (year, month, day) = civil_from_days(days);
        let secs = in_day / 1_000_000;
        let micros = in_day % 1_000_000;
        let (shown_year, bc) = if year <= 0 {
            (1 - year, " BC")
        } else {
            (year, "")
        };
        write!(
            f,
            "{shown_year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if micros != 0 {
            let mut frac = format!("{micros:06}");
            while frac.ends_with('0') {
                frac.pop();
            }
            write!(f, ".{frac}")?;
        }
        write!(f, "+00{bc}")
    }
}

/// A text that is not a timestamp in the form [`Timestamp`] prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]|Z][ BC]")]
pub struct ParseTimestampError {
    input: String,
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    /// Parses `YYYY-MM-DD HH:MM:SS[.f]` (or with a `T`), an optional offset (`+HH`, `-HH:MM`,
    /// `Z`; none means UTC), an optional ` BC`, and `infinity` / `-infinity`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| ParseTimestampError { input: s.into() })
    }
}

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    let (d, rest) = (s.get(..n)?, s.get(n..)?);
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, rest))
}

fn parse(s: &str) -> Option<Timestamp> {
    match s {
        "infinity" => return Some(Timestamp::INFINITY),
        "-infinity" => return Some(Timestamp::NEG_INFINITY),
        _ => {}
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let year_len = s.find('-')?;
    if !(4..=7).contains(&year_len) {
        return None;
    }
    let (year, s) = digits(s, year_len)?;
    let (month, s) = digits(s.strip_prefix('-')?, 2)?;
    let (day, s) = digits(s.strip_prefix('-')?, 2)?;
    let s = s.strip_prefix(' ').or_else(|| s.strip_prefix('T'))?;
    let (hour, s) = digits(s, 2)?;
    let (minute, s) = digits(s.strip_prefix(':')?, 2)?;
    let (second, mut s) = digits(s.strip_prefix(':')?, 2)?;
    let mut micros = 0;
    if let Some(rest) = s.strip_prefix('.') {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&n) {
            return None;
        }
        let (f, rest) = digits(rest, n)?;
        micros = f * 10_i64.pow(6 - n as u32);
        s = rest;
    }
    let offset_secs = match s {
        "" | "Z" => 0,
        _ => {
            let sign = match s.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, rest) = digits(&s[1..], 2)?;
            let m = match rest {
                "" => 0,
                _ => {
                    digits(rest.strip_prefix(':')?, 2)
                        .filter(|(_, r)| r.is_empty())?
                        .0
                }
            };
            if h > 15 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let (month, day) = (u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    let year = if bc { 1 - year } else { year };
    if year_len > 4 && year < 10_000 && !bc
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
        || bc && year > 0
    {
        return None;
    }
    let secs = i128::from(days_from_civil(year, month, day)) * 86_400
        + i128::from(hour * 3600 + minute * 60 + second - offset_secs);
    let micros = secs * 1_000_000 + i128::from(micros) - i128::from(UNIX_TO_PG_MICROS);
    let micros = i64::try_from(micros).ok()?;
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    Some(Timestamp(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        for (text, micros) in [
            ("2000-01-01 00:00:00+00", 0),
            ("1999-12-31 23:59:59.999999+00", -1),
            ("2000-01-01 00:00:00.000001+00", 1),
            ("2024-02-29 13:14:15.5+00", 762_527_655_500_000),
            ("1970-01-01 00:00:00+00", -UNIX_TO_PG_MICROS),
            ("0001-01-01 00:00:00+00", -63_082_281_600_000_000),
            ("0001-12-31 00:00:00+00 BC", -63_082_368_000_000_000),
            ("infinity", i64::MAX),
            ("-infinity", i64::MIN),
        ] {
            let t: Timestamp = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.as_micros(), micros, "{text}");
            assert_eq!(t.to_string(), text);
        }
        let t: Timestamp = "2024-02-29T15:14:15.5+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-02-29 13:14:15.5+00");
        let t: Timestamp = "2024-02-29 13:14:15Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-02-29 13:14:15+00");
        for bad in [
            "",
            "2024-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 00:00:00.",
            "2024-01-01 00:00:00.1234567",
            "2024-01-01 00:00:00+",
            "2024-01-01",
            "24-01-01 00:00:00",
            "02024-01-01 00:00:00",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_printed_timestamp_parses_back() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = Timestamp(x as i64);
            let text = t.to_string();
            assert_eq!(text.parse::<Timestamp>(), Ok(t), "{text}");
        }
        for m in [i64::MAX - 1, i64::MIN + 1, 0] {
            let t = Timestamp(m);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
    }

    #[test]
    fn system_time() {
        let t = Timestamp::from_unix_micros(1_700_000_000_123_456);
        let st = t.to_system_time().unwrap();
        assert_eq!(Timestamp::from_system_time(st), t);
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(Timestamp::from_system_time(before).to_unix_micros(), -5);
        assert_eq!(Timestamp::INFINITY.to_system_time(), None);
    }
}
