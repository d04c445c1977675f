//! The fields of ErrorResponse and NoticeResponse.
//!
//! A body is a list of (code byte, string) pairs ended by a zero byte. Codes this crate does not
//! know are kept, never dropped: the protocol says new ones may be added.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_body, check_cstr, put_cstr};
use crate::error::{DecodeError, EncodeError};
use crate::message::common::utf8;

/// The code byte of an error or notice field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldCode {
    /// `S`: severity, possibly localized (ERROR, FATAL, PANIC, WARNING, NOTICE, ...).
    Severity,
    /// `V`: severity, never localized (PostgreSQL 9.6 and later).
    SeverityNonLocalized,
    /// `C`: the SQLSTATE code.
    Code,
    /// `M`: the primary message.
    Message,
    /// `D`: detail.
    Detail,
    /// `H`: hint.
    Hint,
    /// `P`: cursor position in the query string (decimal, 1-based, in characters).
    Position,
    /// `p`: position in an internally generated command.
    InternalPosition,
    /// `q`: the internally generated command.
    InternalQuery,
    /// `W`: context (a call stack traceback).
    Where,
    /// `s`: schema name.
    Schema,
    /// `t`: table name.
    Table,
    /// `c`: column name.
    Column,
    /// `d`: data type name.
    DataType,
    /// `n`: constraint name.
    Constraint,
    /// `F`: source file.
    File,
    /// `L`: source line.
    Line,
    /// `R`: source routine.
    Routine,
    /// A code this crate does not know.
    Unknown(u8),
}

impl FieldCode {
    /// The code for a byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            b'S' => Self::Severity,
            b'V' => Self::SeverityNonLocalized,
            b'C' => Self::Code,
            b'M' => Self::Message,
            b'D' => Self::Detail,
            b'H' => Self::Hint,
            b'P' => Self::Position,
            b'p' => Self::InternalPosition,
            b'q' => Self::InternalQuery,
            b'W' => Self::Where,
            b's' => Self::Schema,
            b't' => Self::Table,
            b'c' => Self::Column,
            b'd' => Self::DataType,
            b'n' => Self::Constraint,
            b'F' => Self::File,
            b'L' => Self::Line,
            b'R' => Self::Routine,
            other => Self::Unknown(other),
        }
    }

    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Severity => b'S',
            Self::SeverityNonLocalized => b'V',
            Self::Code => b'C',
            Self::Message => b'M',
            Self::Detail => b'D',
            Self::Hint => b'H',
            Self::Position => b'P',
            Self::InternalPosition => b'p',
            Self::InternalQuery => b'q',
            Self::Where => b'W',
            Self::Schema => b's',
            Self::Table => b't',
            Self::Column => b'c',
            Self::DataType => b'd',
            Self::Constraint => b'n',
            Self::File => b'F',
            Self::Line => b'L',
            Self::Routine => b'R',
            Self::Unknown(b) => b,
        }
    }
}

/// One field of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorField<'a> {
    /// The field's code.
    pub code: FieldCode,
    /// The field's value, as sent (the server's encoding, usually UTF-8).
    pub value: &'a [u8],
}

/// The body of an ErrorResponse or NoticeResponse: checked once, read without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// The (code, string, NUL) runs, without the final terminator.
    raw: Bytes,
}

impl ErrorFields {
    /// Fields from (code, value) pairs. A code of zero is refused (it ends the list), and so is a
    /// NUL inside a value.
    ///
    /// ```
    /// use pgproto::{ErrorFields, FieldCode};
    /// let e = ErrorFields::new([
    ///     (FieldCode::Severity, "ERROR"),
    ///     (FieldCode::Code, "42P01"),
    ///     (FieldCode::Message, "relation \"t\" does not exist"),
    /// ])
    /// .unwrap();
    /// assert_eq!(e.code(), Some(&b"42P01"[..]));
    /// ```
    pub fn new<I, V>(fields: I) -> Result<Self, EncodeError>
    where
        I: IntoIterator<Item = (FieldCode, V)>,
        V: AsRef<[u8]>,
    {
        let mut b = BytesMut::new();
        for (code, value) in fields {
            if code.byte() == 0 {
                return Err(EncodeError::OutOfRange {
                    field: "field code",
                    reason: "zero ends the field list",
                });
            }
            let v = value.as_ref();
            check_cstr("field value", v)?;
            b.put_u8(code.byte());
            put_cstr(&mut b, v);
        }
        check_body("ErrorResponse", b.len() + 1)?;
        Ok(Self { raw: b.freeze() })
    }

    /// The usual fields of an error or notice: severity (as `S` and `V`), SQLSTATE (`C`) and
    /// message (`M`). It cannot fail: a NUL byte in any of the texts, which the wire cannot
    /// carry, is replaced by a space (and a text over 400 MiB is cut short).
    ///
    /// ```
    /// use pgproto::ErrorFields;
    /// let e = ErrorFields::simple("ERROR", "42P01", "relation \"t\" does not exist");
    /// assert_eq!(e.code(), Some(&b"42P01"[..]));
    /// assert_eq!(e.severity_nonlocalized(), Some(&b"ERROR"[..]));
    /// ```
    pub fn simple(severity: &str, sqlstate: &str, message: &str) -> Self {
        let mut b =
            BytesMut::with_capacity(severity.len() * 2 + sqlstate.len() + message.len() + 8);
        for (code, text) in [
            (FieldCode::Severity, severity),
            (FieldCode::SeverityNonLocalized, severity),
            (FieldCode::Code, sqlstate),
            (FieldCode::Message, message),
        ] {
            b.put_u8(code.byte());
            // Each text is capped so the whole body always fits its length word.
            let text = &text.as_bytes()[..text.len().min(crate::codec::MAX_BODY / 5)];
            for &c in text {
                b.put_u8(if c == 0 { b' ' } else { c });
            }
            b.put_u8(0);
        }
        Self { raw: b.freeze() }
    }

    pub(crate) fn decode(body: &Bytes, message: &'static str) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, message);
        loop {
            if r.u8("field code")? == 0 {
                break;
            }
            r.cstr_slice("field value")?;
        }
        let end = r.position() - 1;
        r.finish()?;
        Ok(Self {
            raw: body.slice(..end),
        })
    }

    /// Every field in the order sent, unknown codes included.
    pub fn iter(&self) -> ErrorFieldsIter<'_> {
        ErrorFieldsIter { rest: &self.raw }
    }

    /// The value of the first field with `code`.
    pub fn get(&self, code: FieldCode) -> Option<&[u8]> {
        self.iter().find(|f| f.code == code).map(|f| f.value)
    }

    /// `S`: the (possibly localized) severity.
    pub fn severity(&self) -> Option<&[u8]> {
        self.get(FieldCode::Severity)
    }

    /// `V`, falling back to `S`: the severity in English.
    pub fn severity_nonlocalized(&self) -> Option<&[u8]> {
        self.get(FieldCode::SeverityNonLocalized)
            .or_else(|| self.severity())
    }

    /// `C`: the SQLSTATE.
    pub fn code(&self) -> Option<&[u8]> {
        self.get(FieldCode::Code)
    }

    /// `M`: the primary message.
    pub fn message(&self) -> Option<&[u8]> {
        self.get(FieldCode::Message)
    }

    /// `M` as UTF-8, or an empty string when absent; fails with [`DecodeError::InvalidUtf8`]
    /// when it is not UTF-8.
    pub fn message_str(&self) -> Result<&str, DecodeError> {
        utf8("message", self.message().unwrap_or_default())
    }

    /// `D`: detail.
    pub fn detail(&self) -> Option<&[u8]> {
        self.get(FieldCode::Detail)
    }

    /// `H`: hint.
    pub fn hint(&self) -> Option<&[u8]> {
        self.get(FieldCode::Hint)
    }

    pub(crate) fn body_len(&self) -> usize {
        self.raw.len() + 1
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_slice(&self.raw);
        out.put_u8(0);
    }
}

/// An iterator over error or notice fields.
#[derive(Debug, Clone)]
pub struct ErrorFieldsIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ErrorFieldsIter<'a> {
    type Item = ErrorField<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&code, tail) = self.rest.split_first()?;
        // INVARIANT: checked at decode or construction: every value has its NUL.
        let end = memchr::memchr(0, tail)?;
        self.rest = &tail[end + 1..];
        Some(ErrorField {
            code: FieldCode::from_byte(code),
            value: &tail[..end],
        })
    }
}
