//! Value types both directions of protocol 2.0 share: a checked string and a line of
//! CopyDataRows.

use bytes::Bytes;

use crate::codec::{check_body, check_cstr};
use crate::error::{DecodeError, EncodeError};
use crate::message::common::utf8;

/// The line that ends a CopyDataRows stream, in both directions: a backslash, a period and a
/// newline.
pub const COPY_END: &[u8] = b"\\.\n";

/// A string field of a 2.0 message: any bytes but NUL, which ends it on the wire (a query, a
/// command tag, an error text, a cursor name...). Built with [`Text::new`], which checks.
///
/// ```
/// use pgproto::v2::Text;
///
/// let t = Text::new("SELECT 1").unwrap();
/// assert_eq!(t.as_bytes(), b"SELECT 1");
/// assert!(Text::new("a\0b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// A string; fails with [`EncodeError::InteriorNul`] if it contains NUL, or
    /// [`EncodeError::TooLong`] if it is longer than a message may be.
    pub fn new(text: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let t = text.as_ref();
        check_cstr("string", t)?;
        check_body("string", t.len() + 1)?;
        Ok(Self(Bytes::copy_from_slice(t)))
    }

    /// A string already checked (read up to its NUL).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        Self(b)
    }

    /// The bytes, without the NUL that ends them on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as shared storage.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The text as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    ///
    /// ```
    /// use pgproto::v2::Text;
    /// assert_eq!(Text::new("COPY 2").unwrap().as_str().unwrap(), "COPY 2");
    /// ```
    pub fn as_str(&self) -> Result<&str, DecodeError> {
        utf8("string", &self.0)
    }

    /// The number of bytes on the wire: the text and its NUL.
    pub(crate) fn wire_len(&self) -> usize {
        self.0.len() + 1
    }
}

/// One row of a CopyDataRows stream: a line of COPY text data, its final newline included.
/// It has no other newline and does not end with the end marker: `\.` before the newline,
/// its backslash not escaped by another (PostgreSQL reads that as the end of the data, the
/// bytes before it as the last row).
///
/// The last row may also come without a newline, directly followed by `\.` on the same line,
/// which is how libpq sends data that does not end with a newline: a frontend decoder
/// hands such a row out on its own, then [`FrontendMessage::CopyDataEnd`](crate::v2::FrontendMessage).
/// [`CopyLine::last`] builds one.
///
/// ```
/// use pgproto::v2::CopyLine;
///
/// let l = CopyLine::new("1\tapple\n").unwrap();
/// assert_eq!(l.as_bytes(), b"1\tapple\n");
/// assert!(CopyLine::new("no newline").is_err());
/// assert!(CopyLine::new("two\nlines\n").is_err());
/// assert!(CopyLine::new("\\.\n").is_err()); // the end marker
/// assert!(CopyLine::new("x\\.\n").is_err()); // the last row, then the end marker
/// assert!(CopyLine::new("x\\\\.\n").is_ok()); // an escaped backslash, then a period
/// assert!(CopyLine::last("no newline").is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CopyLine(Bytes);

impl CopyLine {
    /// A line; fails with [`EncodeError::OutOfRange`] unless it ends with its only newline and
    /// is not the end marker.
    pub fn new(line: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let l = line.as_ref();
        if l.last() != Some(&b'\n') || memchr::memchr(b'\n', l) != Some(l.len() - 1) {
            return Err(EncodeError::OutOfRange {
                field: "COPY line",
                reason: "must end with its only newline",
            });
        }
        if ends_with_marker(l) {
            return Err(EncodeError::OutOfRange {
                field: "COPY line",
                reason: "ends with the end-of-data marker",
            });
        }
        check_body("COPY line", l.len())?;
        Ok(Self(Bytes::copy_from_slice(l)))
    }

    /// The last row of a frontend's COPY data without its newline: encoded, the end marker
    /// [`COPY_END`] must follow it directly. Fails with [`EncodeError::OutOfRange`] for an
    /// empty row, one with a newline, or one that ends with an unescaped backslash (which
    /// would escape the marker's).
    pub fn last(row: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let l = row.as_ref();
        if l.is_empty()
            || memchr::memchr(b'\n', l).is_some()
            || backslashes_before(l, l.len()) % 2 == 1
        {
            return Err(EncodeError::OutOfRange {
                field: "COPY line",
                reason: "a last row must be non-empty, without newline, not ending in a backslash",
            });
        }
        check_body("COPY line", l.len())?;
        Ok(Self(Bytes::copy_from_slice(l)))
    }

    /// Whether this is a last row without its newline ([`CopyLine::last`]).
    pub fn is_last(&self) -> bool {
        self.0.last() != Some(&b'\n')
    }

    /// A line already checked (cut at its newline, not the end marker).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        Self(b)
    }

    /// The line, its newline included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The line as shared storage.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// How many backslashes come right before offset `at` of `s`.
fn backslashes_before(s: &[u8], at: usize) -> usize {
    s[..at].iter().rev().take_while(|&&b| b == b'\\').count()
}

/// Whether a line (its newline included) ends with the end marker: `\.` before the newline,
/// the backslash not escaped by another, as PostgreSQL's COPY text reader sees it.
pub(crate) fn ends_with_marker(line: &[u8]) -> bool {
    line.len() >= COPY_END.len()
        && line.ends_with(b".\n")
        && backslashes_before(line, line.len() - 2) % 2 == 1
}
