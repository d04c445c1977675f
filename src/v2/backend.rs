//! The messages a protocol-2.0 backend sends.
//!
//! Most carry no length word: each is a type byte and fields whose own layout says where they
//! end (a NUL, a count, a length). [`crate::v2::BackendDecoder`] finds their ends; the types here
//! hold them once found and write them back byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_value_len, Encode};
use crate::error::{DecodeError, EncodeError, Tag};
use crate::v2::common::{CopyLine, Text, COPY_END};
use crate::v2::rows::{AsciiRow, BinaryRow, RowDescription};

/// Type bytes of protocol-2.0 backend messages, named as in the 2.0 documentation.
pub mod tag {
    /// Every Authentication message.
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// BinaryRow.
    pub const BINARY_ROW: u8 = b'B';
    /// CompletedResponse.
    pub const COMPLETED_RESPONSE: u8 = b'C';
    /// CopyInResponse.
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// CopyOutResponse.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// CursorResponse.
    pub const CURSOR_RESPONSE: u8 = b'P';
    /// AsciiRow.
    pub const ASCII_ROW: u8 = b'D';
    /// EmptyQueryResponse.
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    /// ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// FunctionResultResponse and FunctionVoidResponse.
    pub const FUNCTION_RESPONSE: u8 = b'V';
    /// NoticeResponse.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// NotificationResponse.
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';
}

/// The name of the message a type byte starts, for error reports.
pub(crate) fn name(t: u8) -> &'static str {
    match t {
        tag::AUTHENTICATION => "Authentication",
        tag::BACKEND_KEY_DATA => "BackendKeyData",
        tag::BINARY_ROW => "BinaryRow",
        tag::COMPLETED_RESPONSE => "CompletedResponse",
        tag::COPY_IN_RESPONSE => "CopyInResponse",
        tag::COPY_OUT_RESPONSE => "CopyOutResponse",
        tag::CURSOR_RESPONSE => "CursorResponse",
        tag::ASCII_ROW => "AsciiRow",
        tag::EMPTY_QUERY_RESPONSE => "EmptyQueryResponse",
        tag::ERROR_RESPONSE => "ErrorResponse",
        tag::FUNCTION_RESPONSE => "FunctionResultResponse",
        tag::NOTICE_RESPONSE => "NoticeResponse",
        tag::NOTIFICATION_RESPONSE => "NotificationResponse",
        tag::READY_FOR_QUERY => "ReadyForQuery",
        tag::ROW_DESCRIPTION => "RowDescription",
        _ => "message",
    }
}

/// Whether a type byte's messages may be long (rows, errors, notices, notifications, function
/// results: [`Limits::backend_large`](crate::Limits::backend_large)); the others are bounded by
/// [`Limits::backend_small`](crate::Limits::backend_small).
pub(crate) fn is_large(t: u8) -> bool {
    matches!(
        t,
        tag::ROW_DESCRIPTION
            | tag::ASCII_ROW
            | tag::BINARY_ROW
            | tag::ERROR_RESPONSE
            | tag::NOTICE_RESPONSE
            | tag::NOTIFICATION_RESPONSE
            | tag::FUNCTION_RESPONSE
    )
}

/// An authentication request of protocol 2.0 (`R`, then an Int32 code and the code's data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// Code 0: authenticated.
    Ok,
    /// Code 1: a Kerberos V4 exchange is required.
    KerberosV4,
    /// Code 2: a Kerberos V5 exchange is required.
    KerberosV5,
    /// Code 3: a cleartext password is required.
    CleartextPassword,
    /// Code 4: a password encrypted with crypt(3) and this 2-byte salt is required.
    CryptPassword {
        /// The salt.
        salt: [u8; 2],
    },
    /// Code 5: an MD5-encrypted password with this 4-byte salt is required.
    Md5Password {
        /// The salt.
        salt: [u8; 4],
    },
    /// Code 6: an SCM credential message is required (Unix-domain sockets).
    ScmCredential,
}

impl Authentication {
    /// The Int32 code.
    pub fn code(self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::KerberosV4 => 1,
            Self::KerberosV5 => 2,
            Self::CleartextPassword => 3,
            Self::CryptPassword { .. } => 4,
            Self::Md5Password { .. } => 5,
            Self::ScmCredential => 6,
        }
    }

    /// How many bytes of data follow `code`; `None` for a code protocol 2.0 does not define
    /// (its length is unknown).
    pub(crate) fn data_len(code: i32) -> Option<usize> {
        match code {
            0..=3 | 6 => Some(0),
            4 => Some(2),
            5 => Some(4),
            _ => None,
        }
    }

    /// The message's name as in the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "AuthenticationOk",
            Self::KerberosV4 => "AuthenticationKerberosV4",
            Self::KerberosV5 => "AuthenticationKerberosV5",
            Self::CleartextPassword => "AuthenticationCleartextPassword",
            Self::CryptPassword { .. } => "AuthenticationCryptPassword",
            Self::Md5Password { .. } => "AuthenticationMD5Password",
            Self::ScmCredential => "AuthenticationSCMCredential",
        }
    }

    fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Authentication");
        let code = r.i32("authentication code")?;
        let a = match code {
            0 => Self::Ok,
            1 => Self::KerberosV4,
            2 => Self::KerberosV5,
            3 => Self::CleartextPassword,
            4 => {
                let s = r.take(2, "salt")?;
                Self::CryptPassword { salt: [s[0], s[1]] }
            }
            5 => {
                let s = r.take(4, "salt")?;
                Self::Md5Password {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            6 => Self::ScmCredential,
            other => {
                return Err(DecodeError::InvalidValue {
                    message: "Authentication",
                    field: "authentication code",
                    value: other.into(),
                })
            }
        };
        r.finish()?;
        Ok(a)
    }

    fn encode_body(self, out: &mut BytesMut) {
        out.put_i32(self.code());
        match self {
            Self::CryptPassword { salt } => out.put_slice(&salt),
            Self::Md5Password { salt } => out.put_slice(&salt),
            _ => {}
        }
    }
}

/// BackendKeyData (`K`): the process ID and the 4-byte secret key a CancelRequest must quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKeyData {
    /// The backend's process ID.
    pub process_id: i32,
    /// The secret key, as sent (an Int32 on the wire).
    pub secret_key: [u8; 4],
}

/// NotificationResponse (`A`), 2.0 layout: the notifying backend's process ID and the channel
/// name (no payload: a 2.0 server drops it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationResponse {
    /// The process ID of the notifying backend.
    pub process_id: i32,
    /// The channel (condition) name.
    pub channel: Text,
}

/// The value of a FunctionResultResponse: any bytes (binary format), whose length fits the
/// Int32 before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionResult(Bytes);

impl FunctionResult {
    /// A result value; fails with [`EncodeError::OutOfRange`] when longer than an Int32 length
    /// allows.
    ///
    /// ```
    /// use pgproto::v2::FunctionResult;
    /// assert_eq!(FunctionResult::new([0, 0, 0, 4]).unwrap().as_bytes(), [0, 0, 0, 4]);
    /// ```
    pub fn new(value: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let v = value.as_ref();
        check_value_len("function result", v.len())?;
        Ok(Self(Bytes::copy_from_slice(v)))
    }

    /// The value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as shared storage.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// A message a protocol-2.0 backend sends.
///
/// [`Encode`] writes it as on the wire; [`crate::v2::BackendDecoder`] reads it back, so that
/// `decode(encode(m)) == m` and `encode(decode(b)) == b`.
///
/// ```
/// use bytes::BytesMut;
/// use pgproto::v2::{BackendMessage, Text};
/// use pgproto::Encode;
///
/// let mut out = BytesMut::new();
/// BackendMessage::CompletedResponse(Text::new("SELECT 1").unwrap()).encode(&mut out);
/// BackendMessage::ReadyForQuery.encode(&mut out);
/// assert_eq!(&out[..], b"CSELECT 1\0Z");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// An authentication request or AuthenticationOk.
    Authentication(Authentication),
    /// The cancel key.
    BackendKeyData(BackendKeyData),
    /// CursorResponse (`P`): a result follows; the cursor's name, `blank` for a plain SELECT.
    CursorResponse(Text),
    /// RowDescription (`T`): the fields of the rows that follow.
    RowDescription(RowDescription),
    /// AsciiRow (`D`): a row in text form.
    AsciiRow(AsciiRow),
    /// BinaryRow (`B`): a row of a binary cursor.
    BinaryRow(BinaryRow),
    /// CompletedResponse (`C`): a statement finished; its command tag.
    CompletedResponse(Text),
    /// EmptyQueryResponse (`I`, then an empty string): the query string was empty.
    EmptyQueryResponse,
    /// ErrorResponse (`E`): one string, as the server wrote it (PostgreSQL 7.4 to 13: the
    /// severity, two spaces, the message, a newline: `ERROR:  division by zero\n`).
    ErrorResponse(Text),
    /// NoticeResponse (`N`): one string, as ErrorResponse.
    NoticeResponse(Text),
    /// NotificationResponse (`A`).
    NotificationResponse(NotificationResponse),
    /// ReadyForQuery (`Z`): no transaction status in 2.0.
    ReadyForQuery,
    /// CopyInResponse (`G`): the frontend now sends CopyDataRows.
    CopyInResponse,
    /// CopyOutResponse (`H`): CopyDataRows follow, raw lines without a type byte.
    CopyOutResponse,
    /// One row of the CopyDataRows stream after CopyOutResponse.
    CopyDataRow(CopyLine),
    /// The line `\.` that ends the CopyDataRows stream.
    CopyDataEnd,
    /// FunctionResultResponse (`V`, `G`, the value, `0`).
    FunctionResultResponse(FunctionResult),
    /// FunctionVoidResponse (`V`, `0`).
    FunctionVoidResponse,
    /// The one-byte answer to SSLRequest: `S` (accepted) or `N`.
    SslResponse {
        /// Whether the server will do TLS.
        accepted: bool,
    },
}

impl BackendMessage {
    /// The type byte; `None` for the untagged ones (CopyDataRows, the SSL answer).
    pub fn tag(&self) -> Option<u8> {
        Some(match self {
            Self::Authentication(_) => tag::AUTHENTICATION,
            Self::BackendKeyData(_) => tag::BACKEND_KEY_DATA,
            Self::CursorResponse(_) => tag::CURSOR_RESPONSE,
            Self::RowDescription(_) => tag::ROW_DESCRIPTION,
            Self::AsciiRow(_) => tag::ASCII_ROW,
            Self::BinaryRow(_) => tag::BINARY_ROW,
            Self::CompletedResponse(_) => tag::COMPLETED_RESPONSE,
            Self::EmptyQueryResponse => tag::EMPTY_QUERY_RESPONSE,
            Self::ErrorResponse(_) => tag::ERROR_RESPONSE,
            Self::NoticeResponse(_) => tag::NOTICE_RESPONSE,
            Self::NotificationResponse(_) => tag::NOTIFICATION_RESPONSE,
            Self::ReadyForQuery => tag::READY_FOR_QUERY,
            Self::CopyInResponse => tag::COPY_IN_RESPONSE,
            Self::CopyOutResponse => tag::COPY_OUT_RESPONSE,
            Self::FunctionResultResponse(_) | Self::FunctionVoidResponse => tag::FUNCTION_RESPONSE,
            Self::CopyDataRow(_) | Self::CopyDataEnd | Self::SslResponse { .. } => return None,
        })
    }

    /// The message's name as in the 2.0 documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authentication(a) => a.name(),
            Self::FunctionVoidResponse => "FunctionVoidResponse",
            Self::CopyDataRow(_) => "CopyDataRows",
            Self::CopyDataEnd => "CopyDataRows end marker",
            Self::SslResponse { .. } => "SSL response",
            m => name(m.tag().unwrap_or(0)),
        }
    }

    /// Decodes a tagged message whose bytes after the type byte are `body` (framed by the
    /// decoder); `columns` is the field count of the last RowDescription, for rows.
    pub(crate) fn decode(tag: u8, body: &Bytes, columns: Option<u16>) -> Result<Self, DecodeError> {
        let text = |field| -> Result<Text, DecodeError> {
            let mut r = Reader::new(body, name(tag));
            let t = r.cstr(field)?;
            r.finish()?;
            Ok(Text::from_checked(t))
        };
        let empty = |message| Reader::new(body, message).finish();
        Ok(match tag {
            tag::AUTHENTICATION => Self::Authentication(Authentication::decode(body)?),
            tag::BACKEND_KEY_DATA => {
                let mut r = Reader::new(body, "BackendKeyData");
                let process_id = r.i32("process ID")?;
                let k = r.take(4, "secret key")?;
                let secret_key = [k[0], k[1], k[2], k[3]];
                r.finish()?;
                Self::BackendKeyData(BackendKeyData {
                    process_id,
                    secret_key,
                })
            }
            tag::CURSOR_RESPONSE => Self::CursorResponse(text("cursor name")?),
            tag::ROW_DESCRIPTION => Self::RowDescription(RowDescription::decode(body)?),
            tag::ASCII_ROW | tag::BINARY_ROW => {
                let message = name(tag);
                let count = columns.ok_or(DecodeError::MissingRowDescription { message })?;
                if tag == tag::ASCII_ROW {
                    Self::AsciiRow(AsciiRow::decode(body, count)?)
                } else {
                    Self::BinaryRow(BinaryRow::decode(body, count)?)
                }
            }
            tag::COMPLETED_RESPONSE => Self::CompletedResponse(text("command tag")?),
            tag::EMPTY_QUERY_RESPONSE => {
                // An empty string: its NUL and nothing else (libpq refuses anything else).
                let mut r = Reader::new(body, "EmptyQueryResponse");
                let b = r.u8("unused string")?;
                if b != 0 {
                    return Err(DecodeError::InvalidValue {
                        message: "EmptyQueryResponse",
                        field: "unused string",
                        value: b.into(),
                    });
                }
                r.finish()?;
                Self::EmptyQueryResponse
            }
            tag::ERROR_RESPONSE => Self::ErrorResponse(text("message")?),
            tag::NOTICE_RESPONSE => Self::NoticeResponse(text("message")?),
            tag::NOTIFICATION_RESPONSE => {
                let mut r = Reader::new(body, "NotificationResponse");
                let process_id = r.i32("process ID")?;
                let channel = Text::from_checked(r.cstr("condition name")?);
                r.finish()?;
                Self::NotificationResponse(NotificationResponse {
                    process_id,
                    channel,
                })
            }
            tag::READY_FOR_QUERY => {
                empty("ReadyForQuery")?;
                Self::ReadyForQuery
            }
            tag::COPY_IN_RESPONSE => {
                empty("CopyInResponse")?;
                Self::CopyInResponse
            }
            tag::COPY_OUT_RESPONSE => {
                empty("CopyOutResponse")?;
                Self::CopyOutResponse
            }
            tag::FUNCTION_RESPONSE => {
                let mut r = Reader::new(body, "FunctionResultResponse");
                match r.u8("result indicator")? {
                    b'0' => {
                        r.finish()?;
                        Self::FunctionVoidResponse
                    }
                    b'G' => {
                        let len = r.i32("result length")?;
                        let n = usize::try_from(len).map_err(|_| DecodeError::InvalidCount {
                            message: "FunctionResultResponse",
                            field: "result length",
                            count: len.into(),
                        })?;
                        let value = r.bytes(n, "result value")?;
                        let end = r.u8("terminator")?;
                        if end != b'0' {
                            return Err(DecodeError::InvalidValue {
                                message: "FunctionResultResponse",
                                field: "terminator",
                                value: end.into(),
                            });
                        }
                        r.finish()?;
                        Self::FunctionResultResponse(FunctionResult(value))
                    }
                    other => {
                        return Err(DecodeError::InvalidValue {
                            message: "FunctionResultResponse",
                            field: "result indicator",
                            value: other.into(),
                        })
                    }
                }
            }
            other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
        })
    }
}

impl Encode for BackendMessage {
    fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        if let Some(t) = self.tag() {
            out.put_u8(t);
        }
        match self {
            Self::Authentication(a) => a.encode_body(out),
            Self::BackendKeyData(k) => {
                out.put_i32(k.process_id);
                out.put_slice(&k.secret_key);
            }
            Self::CursorResponse(t)
            | Self::CompletedResponse(t)
            | Self::ErrorResponse(t)
            | Self::NoticeResponse(t) => put_text(out, t),
            Self::RowDescription(d) => out.put_slice(d.raw()),
            Self::AsciiRow(r) => out.put_slice(r.raw()),
            Self::BinaryRow(r) => out.put_slice(r.raw()),
            Self::EmptyQueryResponse => out.put_u8(0),
            Self::NotificationResponse(n) => {
                out.put_i32(n.process_id);
                put_text(out, &n.channel);
            }
            Self::ReadyForQuery | Self::CopyInResponse | Self::CopyOutResponse => {}
            Self::CopyDataRow(l) => out.put_slice(l.as_bytes()),
            Self::CopyDataEnd => out.put_slice(COPY_END),
            Self::FunctionResultResponse(v) => {
                out.put_u8(b'G');
                // INVARIANT: FunctionResult::new checked that the length fits an Int32.
                out.put_i32(v.0.len() as i32);
                out.put_slice(&v.0);
                out.put_u8(b'0');
            }
            Self::FunctionVoidResponse => out.put_u8(b'0'),
            Self::SslResponse { accepted } => out.put_u8(if *accepted { b'S' } else { b'N' }),
        }
    }

    fn encoded_len(&self) -> usize {
        let body = match self {
            Self::Authentication(a) => 4 + Authentication::data_len(a.code()).unwrap_or(0),
            Self::BackendKeyData(_) => 8,
            Self::CursorResponse(t)
            | Self::CompletedResponse(t)
            | Self::ErrorResponse(t)
            | Self::NoticeResponse(t) => t.wire_len(),
            Self::RowDescription(d) => d.raw().len(),
            Self::AsciiRow(r) => r.raw().len(),
            Self::BinaryRow(r) => r.raw().len(),
            Self::EmptyQueryResponse => 1,
            Self::NotificationResponse(n) => 4 + n.channel.wire_len(),
            Self::ReadyForQuery | Self::CopyInResponse | Self::CopyOutResponse => 0,
            Self::CopyDataRow(l) => l.as_bytes().len(),
            Self::CopyDataEnd => COPY_END.len(),
            Self::FunctionResultResponse(v) => 6 + v.0.len(),
            Self::FunctionVoidResponse => 1,
            Self::SslResponse { .. } => 1,
        };
        body + usize::from(self.tag().is_some())
    }
}

/// Writes a string and its NUL.
pub(crate) fn put_text(out: &mut BytesMut, t: &Text) {
    out.put_slice(t.as_bytes());
    out.put_u8(0);
}

/// A copy line read by the decoder (cut at its newline): the end marker or a row.
pub(crate) fn copy_line(line: Bytes) -> BackendMessage {
    if line == COPY_END {
        BackendMessage::CopyDataEnd
    } else {
        BackendMessage::CopyDataRow(CopyLine::from_checked(line))
    }
}
