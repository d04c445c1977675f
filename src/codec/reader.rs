//! A cursor over one message body, in the manner of PostgreSQL's `pq_getmsg*` routines.
//!
//! Every read is bounds-checked and reports the message and field it was reading when the body
//! runs out. Slices come back as `Bytes` that share the frame's storage (no copy) or as plain
//! `&[u8]` borrowed from it.

use bytes::Bytes;

use crate::error::DecodeError;

/// Where a field lies in a message body: a byte range small enough to copy freely (a body is
/// less than 2 GiB, so offsets fit 32 bits). Checking a body once yields spans, and both the
/// borrowed views and the owned messages are cut from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span from `start` to `end`.
    #[inline]
    pub(crate) fn between(start: u32, end: u32) -> Self {
        Self { start, end }
    }

    /// The range as indices.
    #[inline]
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The bytes of `body` in the span; `body` must be the body the span was read from.
    #[inline]
    pub(crate) fn of(self, body: &[u8]) -> &[u8] {
        // INVARIANT: spans come from reading `body`; `get` keeps this panic-free anyway.
        body.get(self.range()).unwrap_or_default()
    }

    /// A shared slice of `body` in the span.
    #[inline]
    pub(crate) fn share(self, body: &Bytes) -> Bytes {
        if self.start == self.end {
            Bytes::new()
        } else {
            body.slice(self.range())
        }
    }
}

/// A bounds-checked cursor over a message body held as a plain slice: every check of a body
/// is written once, here and in the `layout` functions built on it, and serves both the
/// borrowing decoders and the owned ones.
#[derive(Clone)]
pub(crate) struct SliceReader<'a> {
    body: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> SliceReader<'a> {
    /// Starts reading `body`, the bytes after the type byte and length word of `message`.
    #[inline]
    pub(crate) fn new(body: &'a [u8], message: &'static str) -> Self {
        Self {
            body,
            pos: 0,
            message,
        }
    }

    /// Bytes not yet read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    /// The current offset into the body.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            field,
        }
    }

    #[inline]
    fn span(start: usize, end: usize) -> Span {
        // INVARIANT: a body is at most i32::MAX bytes long, so offsets fit 32 bits.
        Span::between(start as u32, end as u32)
    }

    /// Takes the next `n` bytes as a borrowed slice.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let Some(s) = self.peek_rest().get(..n) else {
            return Err(self.truncated(field));
        };
        self.pos += n;
        Ok(s)
    }

    /// The bytes not yet read, without reading them.
    #[inline]
    pub(crate) fn peek_rest(&self) -> &'a [u8] {
        self.body.get(self.pos..).unwrap_or_default()
    }

    /// Where the bytes read since offset `start` lie.
    #[inline]
    pub(crate) fn span_from(&self, start: usize) -> Span {
        Self::span(start, self.pos)
    }

    /// Takes the next `n` bytes, returning where they lie.
    #[inline]
    pub(crate) fn take_span(&mut self, n: usize, field: &'static str) -> Result<Span, DecodeError> {
        let start = self.pos;
        self.take(n, field)?;
        Ok(Self::span(start, self.pos))
    }

    /// Reads `N` bytes as an array.
    #[inline]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let Some((a, _)) = self
            .body
            .get(self.pos..)
            .and_then(<[u8]>::split_first_chunk::<N>)
        else {
            return Err(self.truncated(field));
        };
        self.pos += N;
        Ok(*a)
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian Int16.
    #[inline]
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian Int16 that the protocol uses as an unsigned count.
    #[inline]
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian Int32.
    #[inline]
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian Int32 that the protocol uses as an unsigned value (an OID).
    #[inline]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian Int64.
    #[inline]
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian Int64 that the protocol uses as an unsigned value (an LSN).
    #[inline]
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// The name of the message being read, for errors raised by the caller.
    #[inline]
    pub(crate) fn message(&self) -> &'static str {
        self.message
    }

    /// Reads a NUL-terminated string whose NUL lies inside the body; returns it without the NUL.
    #[inline]
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let span = self.cstr_span(field)?;
        Ok(&self.body[span.range()])
    }

    /// Reads a NUL-terminated string, returning where it lies (without the NUL).
    #[inline]
    pub(crate) fn cstr_span(&mut self, field: &'static str) -> Result<Span, DecodeError> {
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let Some(end) = find_nul(rest) else {
            return Err(DecodeError::MissingNul {
                message: self.message,
                field,
            });
        };
        let start = self.pos;
        self.pos += end + 1;
        Ok(Self::span(start, start + end))
    }

    /// Reads an Int32 length followed by that many bytes; a length of -1 is `None`.
    /// Any other negative length is an error.
    #[inline]
    pub(crate) fn nullable(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.i32(field)?;
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::InvalidCount {
                message: self.message,
                field,
                count: n.into(),
            }),
            n => self.take(n as usize, field).map(Some),
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what remains,
    /// before anything is read or allocated for them (pgwire's `ensure_count`).
    #[inline]
    pub(crate) fn ensure_count(
        &self,
        count: usize,
        min_size: usize,
        field: &'static str,
    ) -> Result<(), DecodeError> {
        if count.saturating_mul(min_size) > self.remaining() {
            return Err(DecodeError::InvalidCount {
                message: self.message,
                field,
                count: count as i64,
            });
        }
        Ok(())
    }

    /// Takes everything that remains.
    #[inline]
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.body.get(self.pos..).unwrap_or_default();
        self.pos = self.body.len();
        s
    }

    /// Ends the read: fails if any byte is left over (PostgreSQL's `pq_getmsgend`).
    #[inline]
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes {
                message: self.message,
                extra,
            }),
        }
    }
}

/// The offset of the first NUL in `s`. Names are often a few bytes long (or empty): a scan of
/// the first words in place finds those without the call into `memchr`, which wins on longer
/// text.
#[inline]
pub(crate) fn find_nul(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const WORDS: usize = 3;
    let mut at = 0;
    let mut rest = s;
    for _ in 0..WORDS {
        let Some((w, tail)) = rest.split_first_chunk::<8>() else {
            // Fewer than 8 bytes left.
            return rest.iter().position(|&b| b == 0).map(|i| at + i);
        };
        // The classic test for a zero byte in a word: the lowest flagged byte is the first
        // zero (flags above it may be false, below it cannot be).
        let w = u64::from_le_bytes(*w);
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
        rest = tail;
    }
    memchr::memchr(0, rest).map(|i| at + i)
}

/// A bounds-checked cursor over a message body held as `Bytes`: the reads of [`SliceReader`],
/// with the slices that outlive the read shared from the frame's storage (no copy).
pub(crate) struct Reader<'a> {
    r: SliceReader<'a>,
    body: &'a Bytes,
}

impl<'a> Reader<'a> {
    /// Starts reading `body`, the bytes after the type byte and length word of `message`.
    pub(crate) fn new(body: &'a Bytes, message: &'static str) -> Self {
        Self {
            r: SliceReader::new(body, message),
            body,
        }
    }

    /// The slice reader underneath, for checks written against it.
    pub(crate) fn slices(&mut self) -> &mut SliceReader<'a> {
        &mut self.r
    }

    /// A shared slice of the body where `span` (read from this body) lies.
    pub(crate) fn share(&self, span: Span) -> Bytes {
        span.share(self.body)
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.r.remaining()
    }

    /// The current offset into the body.
    pub(crate) fn position(&self) -> usize {
        self.r.position()
    }

    /// Takes the next `n` bytes as a borrowed slice.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        self.r.take(n, field)
    }

    /// Takes the next `n` bytes as a shared `Bytes` slice.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let span = self.r.take_span(n, field)?;
        Ok(self.share(span))
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.r.u8(field)
    }

    /// Reads a big-endian Int16 that the protocol uses as an unsigned count.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.r.u16(field)
    }

    /// Reads a big-endian Int32.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.r.i32(field)
    }

    /// Reads a big-endian Int32 that the protocol uses as an unsigned value (an OID).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.r.u32(field)
    }

    /// Reads a NUL-terminated string whose NUL lies inside the body; returns it without the NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let span = self.r.cstr_span(field)?;
        Ok(self.share(span))
    }

    /// Skips a NUL-terminated string, returning it as a borrowed slice without the NUL.
    pub(crate) fn cstr_slice(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        self.r.cstr(field)
    }

    /// Reads an Int32 length followed by that many bytes; a length of -1 is `None`.
    /// Any other negative length is an error.
    pub(crate) fn nullable(&mut self, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
        let Some(v) = self.r.nullable(field)? else {
            return Ok(None);
        };
        let end = self.r.position();
        Ok(Some(self.slice_between(end - v.len(), end)))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what remains,
    /// before anything is read or allocated for them (pgwire's `ensure_count`).
    pub(crate) fn ensure_count(
        &self,
        count: usize,
        min_size: usize,
        field: &'static str,
    ) -> Result<(), DecodeError> {
        self.r.ensure_count(count, min_size, field)
    }

    /// Takes everything that remains as a shared `Bytes` slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.r.position();
        self.r.rest();
        self.slice_between(start, self.r.position())
    }

    /// A shared slice of the body between two offsets previously observed with
    /// [`Reader::position`].
    pub(crate) fn slice_between(&self, start: usize, end: usize) -> Bytes {
        self.body.slice(start..end)
    }

    /// Ends the read: fails if any byte is left over (PostgreSQL's `pq_getmsgend`).
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        self.r.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_nul() {
        for len in 0..80 {
            for nul in 0..=len {
                let mut s: Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8).collect();
                if nul < len {
                    s[nul] = 0;
                    // A 0x01 after the NUL (the false-positive case of the word test).
                    if nul + 1 < len {
                        s[nul + 1] = 1;
                    }
                }
                let want = s.iter().position(|&b| b == 0);
                assert_eq!(find_nul(&s), want, "{s:?}");
                // Bytes with the high bit set, and a 0x80 after the NUL.
                let t: Vec<u8> = s
                    .iter()
                    .map(|&b| if b == 0 { 0 } else { b | 0x80 })
                    .collect();
                assert_eq!(find_nul(&t), want, "{t:?}");
            }
        }
    }

    #[test]
    fn reads_and_reports_fields() {
        let body = Bytes::from_static(b"\x00\x01\xff\xff\xff\xffab\0\x00\x00\x00\x02xy");
        let mut r = Reader::new(&body, "Test");
        assert_eq!(r.slices().i16("a").unwrap(), 1);
        assert_eq!(r.i32("b").unwrap(), -1);
        assert_eq!(&r.cstr("c").unwrap()[..], b"ab");
        assert_eq!(r.nullable("d").unwrap().as_deref(), Some(&b"xy"[..]));
        r.finish().unwrap();
    }

    #[test]
    fn errors_name_message_and_field() {
        let body = Bytes::from_static(b"abc");
        let mut r = Reader::new(&body, "Test");
        assert_eq!(
            r.cstr("name"),
            Err(DecodeError::MissingNul {
                message: "Test",
                field: "name"
            })
        );
        assert_eq!(
            r.i32("n"),
            Err(DecodeError::Truncated {
                message: "Test",
                field: "n"
            })
        );
        let body = Bytes::from_static(b"\xff\xff\xff\xfe");
        let mut r = Reader::new(&body, "Test");
        assert!(matches!(
            r.nullable("v"),
            Err(DecodeError::InvalidCount { count: -2, .. })
        ));
        let body = Bytes::from_static(b"x");
        let r = Reader::new(&body, "Test");
        assert_eq!(
            r.finish(),
            Err(DecodeError::TrailingBytes {
                message: "Test",
                extra: 1
            })
        );
    }
}
