//! Finding where a protocol-2.0 message ends, resumably.
//!
//! A 2.0 message has no length word: its end is where its fields' own layout says (a NUL, a
//! count of fields, a length per value). The scan reads the fields as far as the buffer goes and
//! remembers where it stopped ([`Progress`]), so that bytes arriving one at a time cost linear
//! time in all: a string's NUL is searched for from where the last search ended, a row's values
//! from the first one not yet complete. Every size is checked against the limit as soon as it
//! is known, before the bytes it announces are buffered, and a string or line that has not
//! ended fails as soon as it passes the limit.

use crate::error::{DecodeError, Tag};
use crate::limits::Limits;
use crate::v2::backend::{is_large, name as backend_name, tag as btag, Authentication};
use crate::v2::frontend::{name as frontend_name, tag as ftag};
use crate::v2::rows::{bit, bitmap_len, value_len};

/// How far the scan of the message at the head of the buffer has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Offset (from the message's first byte) of the next field to read.
    at: usize,
    /// Where the search for a terminator that starts at `at` goes on.
    seek: usize,
    /// The step of the message's layout.
    step: u8,
    /// Fields (or arguments) read so far.
    done: u32,
    /// How many there are, once read.
    count: u32,
}

/// A scan of `buf` (which starts with the message) under a size limit.
struct Scan<'a> {
    buf: &'a [u8],
    p: &'a mut Progress,
    /// Bytes at the start that do not count against the limit (the type byte).
    base: usize,
    max: u32,
    message: &'static str,
}

impl Scan<'_> {
    fn too_long(&self, len: usize) -> DecodeError {
        DecodeError::TooLong {
            message: self.message,
            len: len as u64,
            max: self.max,
        }
    }

    /// Checks that a message reaching `end` is within the limit; whether it is buffered.
    fn need(&self, end: usize) -> Result<bool, DecodeError> {
        if end - self.base > self.max as usize {
            return Err(self.too_long(end - self.base));
        }
        Ok(self.buf.len() >= end)
    }

    /// The offset of the first `byte` at or after `p.at`, if buffered; a message still
    /// without it where the limit ends fails. Only the bytes within the limit are searched, so
    /// the error is the same however the bytes arrive: the message is `max + 1` bytes or more.
    fn find(&mut self, byte: u8) -> Result<Option<usize>, DecodeError> {
        // A terminator at `limit_end` or later would make the message longer than `max`.
        let limit_end = self.base + self.max as usize;
        let from = self.p.seek.max(self.p.at);
        let window_end = self.buf.len().min(limit_end);
        let found = self
            .buf
            .get(from..window_end)
            .and_then(|w| memchr::memchr(byte, w));
        if let Some(i) = found {
            self.p.seek = from + i;
            return Ok(Some(from + i));
        }
        self.p.seek = window_end.max(from);
        if self.buf.len() >= limit_end {
            return Err(self.too_long(self.max as usize + 1));
        }
        Ok(None)
    }

    /// Reads a NUL-terminated string at `p.at`; whether it is complete.
    fn cstr(&mut self) -> Result<bool, DecodeError> {
        match self.find(0)? {
            Some(nul) => {
                self.p.at = nul + 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads `n` bytes at `p.at`; whether they are there.
    fn fixed(&mut self, n: usize) -> Result<bool, DecodeError> {
        let end = self.p.at + n;
        if self.need(end)? {
            self.p.at = end;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn i32_at(&self, at: usize) -> i32 {
        // INVARIANT: callers read only bytes `need` or `fixed` found buffered.
        let b = &self.buf[at..at + 4];
        i32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Reads an Int32 length at `p.at` and the value it announces (`len(word)` bytes; `None`
    /// is an invalid word); whether both are there.
    fn counted(
        &mut self,
        field: &'static str,
        len: impl Fn(i32) -> Option<usize>,
    ) -> Result<bool, DecodeError> {
        let at = self.p.at;
        if !self.need(at + 4)? {
            return Ok(false);
        }
        let word = self.i32_at(at);
        let n = len(word).ok_or(DecodeError::InvalidCount {
            message: self.message,
            field,
            count: word.into(),
        })?;
        let end = at + 4 + n;
        if self.need(end)? {
            self.p.at = end;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// The length of the backend message at the head of `buf` (not empty), once it is all there.
/// `columns` is the field count of the last RowDescription (for rows).
pub(crate) fn backend_message(
    buf: &[u8],
    p: &mut Progress,
    columns: Option<u16>,
    limits: &Limits,
) -> Result<Option<usize>, DecodeError> {
    let t = buf[0];
    let max = if is_large(t) {
        limits.backend_large
    } else {
        limits.backend_small
    };
    if p.at == 0 {
        p.at = 1;
    }
    let mut s = Scan {
        buf,
        p,
        base: 1,
        max,
        message: backend_name(t),
    };
    let done = match t {
        btag::CURSOR_RESPONSE
        | btag::COMPLETED_RESPONSE
        | btag::ERROR_RESPONSE
        | btag::NOTICE_RESPONSE => s.cstr()?,
        // An empty string: one NUL (the decoder refuses anything else, as libpq does).
        btag::EMPTY_QUERY_RESPONSE => s.fixed(1)?,
        btag::READY_FOR_QUERY | btag::COPY_IN_RESPONSE | btag::COPY_OUT_RESPONSE => true,
        btag::BACKEND_KEY_DATA => s.fixed(8)?,
        btag::NOTIFICATION_RESPONSE => {
            if s.p.step == 0 {
                if !s.fixed(4)? {
                    return Ok(None);
                }
                s.p.step = 1;
            }
            s.cstr()?
        }
        btag::AUTHENTICATION => {
            if s.p.step == 0 {
                if !s.fixed(4)? {
                    return Ok(None);
                }
                let code = s.i32_at(1);
                let n = Authentication::data_len(code).ok_or(DecodeError::InvalidValue {
                    message: "Authentication",
                    field: "authentication code",
                    value: code.into(),
                })?;
                s.p.count = n as u32;
                s.p.step = 1;
            }
            s.fixed(s.p.count as usize)?
        }
        btag::ROW_DESCRIPTION => {
            if s.p.step == 0 {
                if !s.fixed(2)? {
                    return Ok(None);
                }
                s.p.count = u16::from_be_bytes([buf[1], buf[2]]).into();
                s.p.step = 1;
            }
            while s.p.done < s.p.count {
                // A name, then the type OID, size and modifier.
                let Some(nul) = s.find(0)? else {
                    return Ok(None);
                };
                if !s.need(nul + 11)? {
                    return Ok(None);
                }
                s.p.at = nul + 11;
                s.p.done += 1;
            }
            true
        }
        btag::ASCII_ROW | btag::BINARY_ROW => {
            let count = columns.ok_or(DecodeError::MissingRowDescription {
                message: backend_name(t),
            })?;
            let binary = t == btag::BINARY_ROW;
            if s.p.step == 0 {
                if !s.fixed(bitmap_len(count))? {
                    return Ok(None);
                }
                s.p.step = 1;
            }
            let bitmap = &buf[1..1 + bitmap_len(count)];
            while s.p.done < u32::from(count) {
                if bit(bitmap, s.p.done as usize)
                    && !s.counted("field length", |len| value_len(len, binary))?
                {
                    return Ok(None);
                }
                s.p.done += 1;
            }
            true
        }
        btag::FUNCTION_RESPONSE => {
            if s.p.step == 0 {
                if !s.fixed(1)? {
                    return Ok(None);
                }
                match buf[1] {
                    b'0' => return Ok(Some(2)),
                    b'G' => s.p.step = 1,
                    other => {
                        return Err(DecodeError::InvalidValue {
                            message: "FunctionResultResponse",
                            field: "result indicator",
                            value: other.into(),
                        })
                    }
                }
            }
            if s.p.step == 1 {
                if !s.counted("result length", |len| usize::try_from(len).ok())? {
                    return Ok(None);
                }
                s.p.step = 2;
            }
            // The closing `0`.
            s.fixed(1)?
        }
        other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
    };
    Ok(done.then_some(s.p.at))
}

/// The length of the tagged frontend message at the head of `buf` (not empty), once it is all
/// there.
pub(crate) fn frontend_message(
    buf: &[u8],
    p: &mut Progress,
    limits: &Limits,
) -> Result<Option<usize>, DecodeError> {
    let t = buf[0];
    if p.at == 0 {
        p.at = 1;
    }
    let mut s = Scan {
        buf,
        p,
        base: 1,
        max: limits.frontend_large,
        message: frontend_name(t),
    };
    let done = match t {
        ftag::QUERY => s.cstr()?,
        ftag::TERMINATE => true,
        ftag::FUNCTION_CALL => {
            if s.p.step == 0 {
                // The unused string.
                if !s.cstr()? {
                    return Ok(None);
                }
                s.p.step = 1;
            }
            if s.p.step == 1 {
                // The function OID and the argument count.
                if !s.need(s.p.at + 8)? {
                    return Ok(None);
                }
                let n = s.i32_at(s.p.at + 4);
                s.p.count = u32::try_from(n).map_err(|_| DecodeError::InvalidCount {
                    message: "FunctionCall",
                    field: "argument count",
                    count: n.into(),
                })?;
                s.p.at += 8;
                s.p.step = 2;
            }
            while s.p.done < s.p.count {
                // -1 is NULL: no bytes follow.
                let len = |n: i32| {
                    if n == -1 {
                        Some(0)
                    } else {
                        usize::try_from(n).ok()
                    }
                };
                if !s.counted("argument length", len)? {
                    return Ok(None);
                }
                s.p.done += 1;
            }
            true
        }
        other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
    };
    Ok(done.then_some(s.p.at))
}

/// The length of the CopyDataRows line at the head of `buf`, newline included, once it is all
/// there; a line longer than `max` fails.
pub(crate) fn line(buf: &[u8], p: &mut Progress, max: u32) -> Result<Option<usize>, DecodeError> {
    let mut s = Scan {
        buf,
        p,
        base: 0,
        max,
        message: "CopyDataRows",
    };
    Ok(s.find(b'\n')?.map(|nl| nl + 1))
}

/// The length of the length-prefixed packet at the head of `buf` (a start-up packet or a
/// PasswordPacket), once it is all there: `min` to `max` bytes, length word included.
pub(crate) fn packet(
    buf: &[u8],
    min: usize,
    max: u32,
    message: &'static str,
) -> Result<Option<usize>, DecodeError> {
    let Some(h) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len < min as i32 {
        return Err(DecodeError::InvalidLength {
            message,
            len: len.into(),
        });
    }
    if len as u32 > max {
        return Err(DecodeError::TooLong {
            message,
            len: len as u64,
            max,
        });
    }
    Ok((buf.len() >= len as usize).then_some(len as usize))
}
