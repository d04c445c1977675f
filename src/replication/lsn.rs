//! Write-ahead log locations (`pg_lsn`).

use std::fmt;
use std::str::FromStr;

/// A location in the write-ahead log (PostgreSQL's `XLogRecPtr`, SQL type `pg_lsn`): a byte
/// position in the WAL stream, written as two hexadecimal halves (`16/B374D848`).
///
/// ```
/// use pgproto::replication::Lsn;
///
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(lsn.as_u64(), 0x16_B374_D848);
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert_eq!(Lsn::new(0x1_0000_0000 + 0x28).to_string(), "1/28");
/// assert_eq!(lsn + 8, Lsn::new(0x16_B374_D850));
/// assert_eq!(Lsn::INVALID.to_string(), "0/0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(u64);

impl Lsn {
    /// `0/0`, PostgreSQL's `InvalidXLogRecPtr`: no location.
    pub const INVALID: Self = Self(0);

    /// The location `value` bytes into the WAL stream.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The byte position.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether this is `0/0`.
    pub const fn is_invalid(self) -> bool {
        self.0 == 0
    }

    /// The number of the WAL segment this location lies in, for segments of `segment_size`
    /// bytes (a power of two, 16 MiB by default); `None` if `segment_size` is 0.
    ///
    /// ```
    /// use pgproto::replication::Lsn;
    /// let lsn: Lsn = "1/2000028".parse().unwrap();
    /// assert_eq!(lsn.segment(16 << 20), Some(0x102));
    /// assert_eq!(lsn.segment_offset(16 << 20), Some(0x28));
    /// ```
    pub fn segment(self, segment_size: u64) -> Option<u64> {
        self.0.checked_div(segment_size)
    }

    /// The offset of this location inside its WAL segment; `None` if `segment_size` is 0.
    pub fn segment_offset(self, segment_size: u64) -> Option<u64> {
        self.0.checked_rem(segment_size)
    }

    /// `self - earlier` in bytes, or 0 when `earlier` is later.
    pub fn bytes_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> Self {
        lsn.0
    }
}

impl std::ops::Add<u64> for Lsn {
    type Output = Self;

    /// The location `bytes` later, saturating at the largest location.
    fn add(self, bytes: u64) -> Self {
        Self(self.0.saturating_add(bytes))
    }
}

impl fmt::Display for Lsn {
    /// PostgreSQL's `%X/%X`: upper-case hexadecimal halves without leading zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
    }
}

/// A text that is not an LSN (two groups of 1 to 8 hexadecimal digits around a `/`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {input:?}: expected two groups of 1 to 8 hexadecimal digits around a '/'")]
pub struct ParseLsnError {
    input: String,
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    /// Parses `X/X` as `pg_lsn` does: 1 to 8 hexadecimal digits (either case) on each side.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError { input: s.into() };
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                None
            } else {
                u32::from_str_radix(h, 16).ok()
            }
        };
        let (hi, lo) = (half(hi).ok_or_else(err)?, half(lo).ok_or_else(err)?);
        Ok(Self((u64::from(hi) << 32) | u64::from(lo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        for (text, value) in [
            ("0/0", 0),
            ("0/1", 1),
            ("16/B374D848", 0x16_B374_D848),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
            ("1/0", 1 << 32),
        ] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.as_u64(), value);
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/0000abcd".parse::<Lsn>().unwrap().as_u64(), 0xabcd);
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "1//1",
            "x/1",
            "123456789/0",
            "1/2/3",
            " 1/2",
            "1/+2",
            "-1/2",
        ] {
            let e = bad.parse::<Lsn>().unwrap_err();
            assert!(e.to_string().starts_with("invalid LSN"), "{bad}: {e}");
        }
    }

    #[test]
    fn arithmetic() {
        let lsn = Lsn::new(u64::MAX - 1);
        assert_eq!(lsn + 5, Lsn::new(u64::MAX));
        assert_eq!(Lsn::new(10).bytes_since(Lsn::new(4)), 6);
        assert_eq!(Lsn::new(4).bytes_since(Lsn::new(10)), 0);
        assert_eq!(Lsn::new(5).segment(0), None);
        assert!(Lsn::INVALID.is_invalid());
    }
}
