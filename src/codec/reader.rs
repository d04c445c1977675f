//! A cursor over one message body, in the manner of PostgreSQL's `pq_getmsg*` routines.
//!
//! Every read is bounds-checked and reports the message and field it was reading when the body
//! runs out. Slices come back as `Bytes` that share the frame's storage (no copy) or as plain
//! `&[u8]` borrowed from it.

use bytes::Bytes;

use crate::error::DecodeError;

/// A bounds-checked cursor over a message body.
pub(crate) struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading `body`, the bytes after the type byte and length word of `message`.
    pub(crate) fn new(body: &'a Bytes, message: &'static str) -> Self {
        Self {
            body,
            pos: 0,
            message,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    /// The current offset into the body.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            field,
        }
    }

    /// Takes the next `n` bytes as a borrowed slice.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.truncated(field));
        }
        let s = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes the next `n` bytes as a shared `Bytes` slice.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n, field)?;
        Ok(self.body.slice(start..self.pos))
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// Reads a big-endian Int16.
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian Int16 that the protocol uses as an unsigned count.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian Int32.
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian Int32 that the protocol uses as an unsigned value (an OID).
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a NUL-terminated string whose NUL lies inside the body; returns it without the NUL.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let rest = &self.body[self.pos..];
        let Some(end) = memchr::memchr(0, rest) else {
            return Err(DecodeError::MissingNul {
                message: self.message,
                field,
            });
        };
        let s = self.body.slice(self.pos..self.pos + end);
        self.pos += end + 1;
        Ok(s)
    }

    /// Skips a NUL-terminated string, returning it as a borrowed slice without the NUL.
    pub(crate) fn cstr_slice(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.body[self.pos..];
        let Some(end) = memchr::memchr(0, rest) else {
            return Err(DecodeError::MissingNul {
                message: self.message,
                field,
            });
        };
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    /// Reads an Int32 length followed by that many bytes; a length of -1 is `None`.
    /// Any other negative length is an error.
    pub(crate) fn nullable(&mut self, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
        let len = self.i32(field)?;
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::InvalidCount {
                message: self.message,
                field,
                count: n.into(),
            }),
            n => self.bytes(n as usize, field).map(Some),
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what remains,
    /// before anything is read or allocated for them (pgwire's `ensure_count`).
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

    /// Takes everything that remains as a shared `Bytes` slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let s = self.body.slice(self.pos..);
        self.pos = self.body.len();
        s
    }

    /// A shared slice of the body between two offsets previously observed with
    /// [`Reader::position`].
    pub(crate) fn slice_between(&self, start: usize, end: usize) -> Bytes {
        self.body.slice(start..end)
    }

    /// Ends the read: fails if any byte is left over (PostgreSQL's `pq_getmsgend`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_fields() {
        let body = Bytes::from_static(b"\x00\x01\xff\xff\xff\xffab\0\x00\x00\x00\x02xy");
        let mut r = Reader::new(&body, "Test");
        assert_eq!(r.i16("a").unwrap(), 1);
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
