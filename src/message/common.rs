//! Small value types shared by several messages: format codes, transaction status, protocol
//! versions, describe/close targets, and the lazily read lists of format codes and values.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::{SliceReader, Span};
use crate::codec::{check_count, check_value_len, MAX_BODY};
use crate::error::{DecodeError, EncodeError};

/// A value format code: text (0) or binary (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Format code 0.
    #[default]
    Text,
    /// Format code 1.
    Binary,
}

impl Format {
    /// The wire code.
    pub fn code(self) -> i16 {
        match self {
            Self::Text => 0,
            Self::Binary => 1,
        }
    }

    /// The format for a wire code, if the protocol defines it.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(Self::Text),
            1 => Some(Self::Binary),
            _ => None,
        }
    }
}

/// The transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block; queries are rejected until it ends.
    Failed,
}

impl TransactionStatus {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }

    /// The status for a wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A protocol version, `major.minor`, as carried by StartupMessage (`major << 16 | minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// The major version (3 for every version this crate speaks).
    pub major: u16,
    /// The minor version.
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 2.0 (PostgreSQL 6.4 to 7.3; accepted by servers up to PostgreSQL 13): see
    /// [`crate::v2`].
    pub const V2_0: Self = Self { major: 2, minor: 0 };
    /// Protocol 3.0 (PostgreSQL 7.4 and later).
    pub const V3_0: Self = Self { major: 3, minor: 0 };
    /// Protocol 3.2 (PostgreSQL 18 and later): variable-length cancel keys.
    pub const V3_2: Self = Self { major: 3, minor: 2 };

    /// The 32-bit wire form.
    pub fn code(self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }

    /// The version for a 32-bit wire code.
    pub fn from_code(code: u32) -> Self {
        Self {
            major: (code >> 16) as u16,
            minor: code as u16,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a Describe or Close message refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }

    #[inline]
    pub(crate) fn decode(
        r: &mut SliceReader<'_>,
        message: &'static str,
    ) -> Result<Self, DecodeError> {
        match r.u8("kind")? {
            b'S' => Ok(Self::Statement),
            b'P' => Ok(Self::Portal),
            other => Err(DecodeError::InvalidValue {
                message,
                field: "kind",
                value: other.into(),
            }),
        }
    }
}

/// The wire form of values after their count (each an Int32 length, -1 for NULL, and that many
/// bytes), checked as a message requires: what `DataRow::new` builds a row from.
///
/// Fails with [`EncodeError::OutOfRange`] when a value, or all of them together, would not fit
/// one message, or with [`EncodeError::TooMany`] on more than 65,535 values.
pub(crate) fn values_raw<'v, I>(values: I) -> Result<(u16, Bytes), EncodeError>
where
    I: IntoIterator<Item = Option<&'v [u8]>>,
{
    let mut b = BytesMut::new();
    let mut count = 0usize;
    for v in values {
        count += 1;
        if let Some(v) = v {
            check_value_len("value", v.len())?;
        }
        put_value(&mut b, v);
        if b.len() > MAX_BODY {
            return Err(EncodeError::OutOfRange {
                field: "values",
                reason: "longer than a message allows",
            });
        }
    }
    let count = check_count("values", count)?;
    Ok((count, b.freeze()))
}

/// The wire length of `values` after their count, checked as [`values_raw`] checks them.
#[inline]
pub(crate) fn check_lens(values: &[Option<&[u8]>]) -> Result<usize, EncodeError> {
    let mut len = 0usize;
    for v in values {
        len += 4;
        if let Some(v) = v {
            check_value_len("value", v.len())?;
            len += v.len();
        }
        if len > MAX_BODY {
            return Err(EncodeError::OutOfRange {
                field: "values",
                reason: "longer than a message allows",
            });
        }
    }
    Ok(len)
}

/// Writes one value: its length word (-1 for NULL) and its bytes. The length was checked.
#[inline]
pub(crate) fn put_value(out: &mut impl BufMut, value: Option<&[u8]>) {
    match value {
        None => out.put_i32(-1),
        Some(v) => {
            // INVARIANT: callers checked the length (check_lens, check_value_len, check_body).
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
    }
}

/// Writes a list of values (Int16 count, then each value), checking each length as it goes
/// (the one pass of [`tagged_measured`](crate::codec::tagged_measured) frames, which checks the
/// total): fails with [`EncodeError::OutOfRange`] on a value longer than an Int32 length
/// allows, having written part of the list (the frame is dropped then).
#[inline]
pub(crate) fn put_values_checked(
    out: &mut BytesMut,
    count: u16,
    values: &[Option<&[u8]>],
) -> Result<(), EncodeError> {
    out.put_u16(count);
    for v in values {
        match v {
            None => {
                out.put_i32(-1);
            }
            Some(v) => {
                check_value_len("value", v.len())?;
                // INVARIANT: checked just above.
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
        }
    }
    Ok(())
}

/// Writes a list of values (Int16 count, then each value); the count and lengths are checked
/// first.
#[inline]
pub(crate) fn put_values(out: &mut impl BufMut, count: u16, values: &[Option<&[u8]>]) {
    out.put_u16(count);
    for v in values {
        put_value(out, *v);
    }
}

/// Writes a list of format codes (Int16 count, then the codes); the count is checked first.
#[inline]
pub(crate) fn put_formats(out: &mut impl BufMut, count: u16, formats: &[Format]) {
    out.put_u16(count);
    for f in formats {
        out.put_i16(f.code());
    }
}

/// A list of format codes as it stands on the wire (Int16 codes, after their count), read in
/// place from the message that holds it ([`Bind::param_formats`](crate::Bind::param_formats),
/// [`CopyResponse::column_formats`](crate::CopyResponse::column_formats), ...), checked when
/// that message was decoded or built so that iteration cannot fail. Messages are built from
/// plain `&[Format]` slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FormatCodes<'a> {
    raw: &'a [u8],
}

impl<'a> FormatCodes<'a> {
    /// Reads and checks an Int16 count and that many format codes, returning where the codes
    /// lie.
    #[inline]
    pub(crate) fn check(
        r: &mut SliceReader<'_>,
        message: &'static str,
        field: &'static str,
    ) -> Result<Span, DecodeError> {
        let n = r.u16(field)? as usize;
        r.ensure_count(n, 2, field)?;
        let start = r.position();
        let raw = r.take(n * 2, field)?;
        for c in raw.chunks_exact(2) {
            let code = i16::from_be_bytes([c[0], c[1]]);
            if Format::from_code(code).is_none() {
                return Err(DecodeError::InvalidValue {
                    message,
                    field,
                    value: code.into(),
                });
            }
        }
        Ok(r.span_from(start))
    }

    /// A view of codes already checked to be 0 or 1, two bytes each.
    #[inline]
    pub(crate) fn from_checked(raw: &'a [u8]) -> Self {
        Self { raw }
    }

    /// The number of codes.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len() / 2
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The codes in order.
    #[inline]
    pub fn iter(&self) -> FormatIter<'a> {
        FormatIter {
            codes: self.raw.chunks_exact(2),
        }
    }

    /// The format that applies to value `index` of `count`, following the protocol's rule:
    /// no codes means text for all, one code applies to all, otherwise one code each.
    pub fn for_index(&self, index: usize) -> Format {
        match self.len() {
            0 => Format::Text,
            1 => self.iter().next().unwrap_or_default(),
            _ => self.iter().nth(index).unwrap_or_default(),
        }
    }
}

impl<'a> IntoIterator for FormatCodes<'a> {
    type Item = Format;
    type IntoIter = FormatIter<'a>;

    fn into_iter(self) -> FormatIter<'a> {
        self.iter()
    }
}

/// An iterator over format codes.
#[derive(Debug, Clone)]
pub struct FormatIter<'a> {
    codes: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for FormatIter<'_> {
    type Item = Format;

    #[inline]
    fn next(&mut self) -> Option<Format> {
        // INVARIANT: checked at decode or construction to be 0 or 1.
        self.codes.next().map(|c| {
            if c[1] == 1 {
                Format::Binary
            } else {
                Format::Text
            }
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.codes.size_hint()
    }
}

impl ExactSizeIterator for FormatIter<'_> {}

/// A list of length-prefixed values (for each an Int32 length, -1 for NULL, and that many bytes)
/// read in place from the message that holds it ([`Bind::params`](crate::Bind::params),
/// [`FunctionCall::args`](crate::FunctionCall::args)), checked when that message was decoded or
/// built. Iterating allocates nothing. Messages are built from plain `&[Option<&[u8]>]` slices
/// (`None` is NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Values<'a> {
    count: u16,
    raw: &'a [u8],
}

impl<'a> Values<'a> {
    /// Reads and checks `count` values, returning where they lie.
    #[inline]
    pub(crate) fn check_counted(
        r: &mut SliceReader<'_>,
        count: u16,
        message: &'static str,
        field: &'static str,
    ) -> Result<Span, DecodeError> {
        let len = check_values(r.peek_rest(), count, message, field)?;
        r.take_span(len, field)
    }

    /// A view of `count` values whose bytes `raw` were already checked.
    #[inline]
    pub(crate) fn from_checked(count: u16, raw: &'a [u8]) -> Self {
        Self { count, raw }
    }

    /// The number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no values.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values in order; `None` is NULL.
    #[inline]
    pub fn iter(&self) -> ValuesIter<'a> {
        ValuesIter::new(self.raw, self.count)
    }

    /// The raw bytes after the count: each value's length word and bytes.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl<'a> IntoIterator for Values<'a> {
    type Item = Option<&'a [u8]>;
    type IntoIter = ValuesIter<'a>;

    fn into_iter(self) -> ValuesIter<'a> {
        self.iter()
    }
}

/// An iterator over length-prefixed values; `None` is NULL.
#[derive(Debug, Clone)]
pub struct ValuesIter<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> ValuesIter<'a> {
    /// Iterates over `count` values in `raw`, which must already have been checked.
    #[inline]
    pub(crate) fn new(raw: &'a [u8], count: u16) -> Self {
        Self {
            rest: raw,
            left: count,
        }
    }
}

impl<'a> Iterator for ValuesIter<'a> {
    type Item = Option<&'a [u8]>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        // INVARIANT: the bytes were checked at decode time: each length is -1 or fits. The
        // checked split keeps this panic-free anyway; a negative length, read as unsigned,
        // never fits, so NULL takes the second branch.
        let (head, tail) = self.rest.split_first_chunk::<4>()?;
        let len = i32::from_be_bytes(*head);
        self.left -= 1;
        match tail.split_at_checked(len as u32 as usize) {
            Some((value, rest)) => {
                self.rest = rest;
                Some(Some(value))
            }
            None => {
                self.rest = tail;
                Some(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for ValuesIter<'_> {}

/// Checks `count` length-prefixed values at the start of `raw` (Int32 length, -1 for NULL, then
/// that many bytes) and returns how many bytes they take: the one check behind Bind's and
/// FunctionCall's values and DataRow's columns. A count that cannot fit is refused before
/// anything is read (pgwire's `ensure_count`), and a value running past the end is reported
/// where it starts.
#[inline]
pub(crate) fn check_values(
    raw: &[u8],
    count: u16,
    message: &'static str,
    field: &'static str,
) -> Result<usize, DecodeError> {
    if count as usize * 4 > raw.len() {
        return Err(DecodeError::InvalidCount {
            message,
            field,
            count: count.into(),
        });
    }
    // Walk the length words by narrowing a slice: one load and one add per value.
    let mut rest = raw;
    for _ in 0..count {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(DecodeError::Truncated { message, field });
        };
        let len = i32::from_be_bytes(*len);
        // One comparison for a value that fits: a negative length, read as unsigned, is
        // larger than any body, so NULL (-1) and bad lengths take the second branch.
        rest = if let Some(tail) = tail.get(len as u32 as usize..) {
            tail
        } else if len == -1 {
            tail
        } else if len < 0 {
            return Err(DecodeError::InvalidCount {
                message,
                field,
                count: len.into(),
            });
        } else {
            return Err(DecodeError::Truncated { message, field });
        };
    }
    Ok(raw.len() - rest.len())
}

/// Checks an optional text field as UTF-8.
pub(crate) fn utf8<'a>(field: &'static str, b: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { field })
}
