//! Messages a backend (server) sends, and their decoding by type byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_body, check_count, check_cstr, empty, put_cstr, tagged, Encode};
use crate::error::{DecodeError, EncodeError, Tag};
use crate::message::auth::Authentication;
use crate::message::common::{
    put_value, utf8, Format, FormatCodes, ProtocolVersion, TransactionStatus,
};
use crate::message::fields::ErrorFields;
use crate::message::frontend::CopyData;
use crate::message::payload::Payload;
use crate::message::rows::{DataRow, ParameterDescription, RowDescription};
use crate::message::startup::{check_key, MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};

type_bytes! {
    /// Type bytes of backend messages, named as in the PostgreSQL documentation, with the size
    /// class of each (the length limits of [`Limits`](crate::Limits)). ParameterDescription is
    /// not long in libpq, but a statement may have 65,535 parameters (262,142 bytes), so it is
    /// long here.
    mod tag;
    enum BackendMessage;
    /// Every Authentication message.
    AUTHENTICATION = b'R', "Authentication", Small;
    /// BackendKeyData.
    BACKEND_KEY_DATA = b'K', "BackendKeyData", Small;
    /// BindComplete.
    BIND_COMPLETE = b'2', "BindComplete", Small => BindComplete;
    /// CloseComplete.
    CLOSE_COMPLETE = b'3', "CloseComplete", Small => CloseComplete;
    /// CommandComplete.
    COMMAND_COMPLETE = b'C', "CommandComplete", Small => CommandComplete(CommandComplete);
    /// CopyData.
    COPY_DATA = b'd', "CopyData", Large => CopyData(CopyData);
    /// CopyDone.
    COPY_DONE = b'c', "CopyDone", Small => CopyDone;
    /// CopyInResponse.
    COPY_IN_RESPONSE = b'G', "CopyInResponse", Small;
    /// CopyOutResponse.
    COPY_OUT_RESPONSE = b'H', "CopyOutResponse", Small;
    /// CopyBothResponse.
    COPY_BOTH_RESPONSE = b'W', "CopyBothResponse", Small;
    /// DataRow.
    DATA_ROW = b'D', "DataRow", Large => DataRow(DataRow);
    /// EmptyQueryResponse.
    EMPTY_QUERY_RESPONSE = b'I', "EmptyQueryResponse", Small => EmptyQueryResponse;
    /// ErrorResponse.
    ERROR_RESPONSE = b'E', "ErrorResponse", Large;
    /// FunctionCallResponse.
    FUNCTION_CALL_RESPONSE = b'V', "FunctionCallResponse", Large;
    /// NegotiateProtocolVersion.
    NEGOTIATE_PROTOCOL_VERSION = b'v', "NegotiateProtocolVersion", Small;
    /// NoData.
    NO_DATA = b'n', "NoData", Small => NoData;
    /// NoticeResponse.
    NOTICE_RESPONSE = b'N', "NoticeResponse", Large;
    /// NotificationResponse.
    NOTIFICATION_RESPONSE = b'A', "NotificationResponse", Large;
    /// ParameterDescription.
    PARAMETER_DESCRIPTION = b't', "ParameterDescription", Large;
    /// ParameterStatus.
    PARAMETER_STATUS = b'S', "ParameterStatus", Small;
    /// ParseComplete.
    PARSE_COMPLETE = b'1', "ParseComplete", Small => ParseComplete;
    /// PortalSuspended.
    PORTAL_SUSPENDED = b's', "PortalSuspended", Small => PortalSuspended;
    /// ReadyForQuery.
    READY_FOR_QUERY = b'Z', "ReadyForQuery", Small;
    /// RowDescription.
    ROW_DESCRIPTION = b'T', "RowDescription", Large;
}

text_message!(
    /// CommandComplete: a command finished; the tag says which and how many rows.
    CommandComplete, tag::COMMAND_COMPLETE, "CommandComplete", tag, "command tag"
);

impl CommandComplete<'_> {
    /// The row count at the end of the tag (`INSERT 0 5`, `SELECT 3`, `COPY 10`...), if any.
    pub fn rows(&self) -> Option<u64> {
        let t = self.tag();
        let last = t.rsplit(|b| *b == b' ').next()?;
        if last.is_empty() || last.len() == t.len() || !last.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(last).ok()?.parse().ok()
    }
}

/// BackendKeyData (`K`): the process ID and secret key a CancelRequest must quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendKeyData {
    process_id: i32,
    secret_key: Bytes,
}

impl BackendKeyData {
    /// BackendKeyData; the key must be 4 bytes for protocol 3.0 peers and 4 to 256 for 3.2.
    ///
    /// Fails with [`EncodeError::OutOfRange`] when the key is shorter than 4 or longer than 256
    /// bytes (a 3.0 peer's 4-byte rule is not checked here).
    pub fn new(process_id: i32, secret_key: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let key = secret_key.as_ref();
        check_key(key)?;
        Ok(Self {
            process_id,
            secret_key: Bytes::copy_from_slice(key),
        })
    }

    /// The backend's process ID.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// The secret key.
    pub fn secret_key(&self) -> &[u8] {
        &self.secret_key
    }

    pub(crate) fn decode(body: &Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let key_len = body.len().saturating_sub(4);
        let ok = if version.minor >= 2 {
            (MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key_len)
        } else {
            key_len == MIN_CANCEL_KEY_LEN
        };
        if !ok || body.len() < 4 {
            return Err(DecodeError::InvalidLength {
                message: "BackendKeyData",
                len: body.len() as i64 + 4,
            });
        }
        let mut r = Reader::new(body, "BackendKeyData");
        let process_id = r.i32("process ID")?;
        Ok(Self {
            process_id,
            secret_key: r.rest(),
        })
    }
}

impl Encode for BackendKeyData {
    fn encode(&self, out: &mut BytesMut) {
        tagged(
            out,
            tag::BACKEND_KEY_DATA,
            4 + self.secret_key.len(),
            |out| {
                out.put_i32(self.process_id);
                out.put_slice(&self.secret_key);
            },
        );
    }

    fn encoded_len(&self) -> usize {
        9 + self.secret_key.len()
    }
}

/// A body that ends with two NUL-terminated strings, after a fixed-size prefix of `P` bytes: the
/// body as on the wire and the position of the first NUL, one shared buffer instead of one per
/// field, so the messages that hold it stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TwoStrings<const P: usize> {
    raw: Bytes,
    split: u32,
}

impl<const P: usize> TwoStrings<P> {
    fn new(prefix: [u8; P], first: &[u8], second: &[u8]) -> Self {
        let mut raw = BytesMut::with_capacity(P + first.len() + second.len() + 2);
        raw.put_slice(&prefix);
        put_cstr(&mut raw, first);
        put_cstr(&mut raw, second);
        Self {
            raw: raw.freeze(),
            split: (P + first.len()) as u32,
        }
    }

    /// Reads the two strings after the prefix (already read from `r`); they must end the body.
    fn read(
        mut r: Reader<'_>,
        body: &Bytes,
        first: &'static str,
        second: &'static str,
    ) -> Result<Self, DecodeError> {
        let a = r.cstr(first)?;
        r.cstr(second)?;
        r.finish()?;
        Ok(Self {
            raw: body.clone(),
            split: (P + a.len()) as u32,
        })
    }

    fn prefix(&self) -> &[u8] {
        &self.raw[..P]
    }

    fn first(&self) -> &[u8] {
        &self.raw[P..self.split as usize]
    }

    fn second(&self) -> &[u8] {
        &self.raw[self.split as usize + 1..self.raw.len() - 1]
    }
}

/// ParameterStatus (`S`): the current value of a run-time parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    strings: TwoStrings<0>,
}

impl ParameterStatus {
    /// A ParameterStatus; neither string may contain NUL.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when one does, or [`EncodeError::TooLong`] when
    /// they do not fit one message.
    pub fn new(name: &str, value: &str) -> Result<Self, EncodeError> {
        check_cstr("name", name.as_bytes())?;
        check_cstr("value", value.as_bytes())?;
        check_body("ParameterStatus", name.len() + value.len() + 2)?;
        Ok(Self {
            strings: TwoStrings::new([], name.as_bytes(), value.as_bytes()),
        })
    }

    /// The parameter's name.
    pub fn name(&self) -> &[u8] {
        self.strings.first()
    }

    /// Its value.
    pub fn value(&self) -> &[u8] {
        self.strings.second()
    }

    /// The name as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn name_str(&self) -> Result<&str, DecodeError> {
        utf8("name", self.name())
    }

    /// The value as UTF-8; fails with [`DecodeError::InvalidUtf8`] if it is not.
    pub fn value_str(&self) -> Result<&str, DecodeError> {
        utf8("value", self.value())
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let r = Reader::new(body, "ParameterStatus");
        let strings = TwoStrings::read(r, body, "name", "value")?;
        Ok(Self { strings })
    }
}

impl Encode for ParameterStatus {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::PARAMETER_STATUS, self.strings.raw.len(), |out| {
            out.put_slice(&self.strings.raw);
        });
    }

    fn encoded_len(&self) -> usize {
        self.strings.raw.len() + 5
    }
}

/// NotificationResponse (`A`): a NOTIFY on a channel this session listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationResponse {
    /// The process ID, then the channel and the payload.
    strings: TwoStrings<4>,
}

impl NotificationResponse {
    /// A NotificationResponse; neither string may contain NUL.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when one does, or [`EncodeError::TooLong`] when
    /// they do not fit one message.
    pub fn new(process_id: i32, channel: &str, payload: &str) -> Result<Self, EncodeError> {
        check_cstr("channel", channel.as_bytes())?;
        check_cstr("payload", payload.as_bytes())?;
        check_body("NotificationResponse", channel.len() + payload.len() + 6)?;
        Ok(Self {
            strings: TwoStrings::new(
                process_id.to_be_bytes(),
                channel.as_bytes(),
                payload.as_bytes(),
            ),
        })
    }

    /// A NotificationResponse of strings known to hold no NUL (read up to one).
    pub(crate) fn from_bytes(process_id: i32, channel: &[u8], payload: &[u8]) -> Self {
        Self {
            strings: TwoStrings::new(process_id.to_be_bytes(), channel, payload),
        }
    }

    /// The notifying backend's process ID.
    pub fn process_id(&self) -> i32 {
        let p = self.strings.prefix();
        i32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    /// The channel name.
    pub fn channel(&self) -> &[u8] {
        self.strings.first()
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.strings.second()
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "NotificationResponse");
        r.i32("process ID")?;
        let strings = TwoStrings::read(r, body, "channel", "payload")?;
        Ok(Self { strings })
    }
}

impl Encode for NotificationResponse {
    fn encode(&self, out: &mut BytesMut) {
        tagged(
            out,
            tag::NOTIFICATION_RESPONSE,
            self.strings.raw.len(),
            |out| {
                out.put_slice(&self.strings.raw);
            },
        );
    }

    fn encoded_len(&self) -> usize {
        5 + self.strings.raw.len()
    }
}

/// NegotiateProtocolVersion (`v`): the newest protocol version the server supports for the
/// requested major version, and the `_pq_.` options it did not recognise.
///
/// The documentation calls the first field the "newest minor protocol version", but PostgreSQL
/// sends a whole version word, `major << 16 | minor` (15 answers a 3.2 request with
/// `00 03 00 00`), and libpq reads it so. This type keeps the word as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion {
    newest_version: i32,
    count: u32,
    options: Bytes,
}

impl NegotiateProtocolVersion {
    /// A NegotiateProtocolVersion message; `newest_version` is the version word
    /// (`ProtocolVersion::code`), as PostgreSQL sends it.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when an option name contains NUL, or
    /// [`EncodeError::TooLong`] when the names do not fit one message.
    pub fn new<I, S>(newest_version: i32, unrecognized: I) -> Result<Self, EncodeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut b = BytesMut::new();
        let mut count = 0u32;
        for o in unrecognized {
            check_cstr("option", o.as_ref())?;
            put_cstr(&mut b, o.as_ref());
            count += 1;
        }
        check_body("NegotiateProtocolVersion", b.len() + 8)?;
        Ok(Self {
            newest_version,
            count,
            options: b.freeze(),
        })
    }

    /// The version word as sent.
    pub fn newest_version_code(&self) -> i32 {
        self.newest_version
    }

    /// The newest version the server supports, read from the version word. A server that sends
    /// a bare minor number gives major version 0 here.
    pub fn newest_version(&self) -> ProtocolVersion {
        ProtocolVersion::from_code(self.newest_version as u32)
    }

    /// The protocol options the server did not recognise.
    pub fn unrecognized(&self) -> impl Iterator<Item = &[u8]> {
        self.options.split(|b| *b == 0).take(self.count as usize)
    }

    /// The number of unrecognised options.
    pub fn unrecognized_count(&self) -> usize {
        self.count as usize
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "NegotiateProtocolVersion");
        let newest_version = r.i32("newest version")?;
        let count = r.i32("option count")?;
        if count < 0 {
            return Err(DecodeError::InvalidCount {
                message: "NegotiateProtocolVersion",
                field: "option count",
                count: count.into(),
            });
        }
        r.ensure_count(count as usize, 1, "options")?;
        let start = r.position();
        for _ in 0..count {
            r.cstr_slice("option")?;
        }
        let options = r.slice_between(start, r.position());
        r.finish()?;
        Ok(Self {
            newest_version,
            count: count as u32,
            options,
        })
    }
}

impl Encode for NegotiateProtocolVersion {
    fn encode(&self, out: &mut BytesMut) {
        tagged(
            out,
            tag::NEGOTIATE_PROTOCOL_VERSION,
            self.options.len() + 8,
            |out| {
                out.put_i32(self.newest_version);
                out.put_u32(self.count);
                out.put_slice(&self.options);
            },
        );
    }

    fn encoded_len(&self) -> usize {
        self.options.len() + 13
    }
}

/// The body of CopyInResponse, CopyOutResponse and CopyBothResponse: the overall format and the
/// per-column formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResponse {
    pub(crate) format: Format,
    /// The column format codes as on the wire, after their count (checked).
    pub(crate) column_formats: Bytes,
}

impl CopyResponse {
    /// A copy response: `format` overall and one code per column.
    ///
    /// Fails with [`EncodeError::TooMany`] on more than 65,535 column formats.
    pub fn new(format: Format, column_formats: &[Format]) -> Result<Self, EncodeError> {
        check_count("formats", column_formats.len())?;
        let mut codes = BytesMut::with_capacity(column_formats.len() * 2);
        for f in column_formats {
            codes.put_i16(f.code());
        }
        Ok(Self {
            format,
            column_formats: codes.freeze(),
        })
    }

    /// The overall COPY format (text or binary).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The per-column formats.
    pub fn column_formats(&self) -> FormatCodes<'_> {
        FormatCodes::from_checked(&self.column_formats)
    }

    pub(crate) fn decode(body: &Bytes, message: &'static str) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, message);
        let code = r.u8("format")?;
        let format = Format::from_code(code.into()).ok_or(DecodeError::InvalidValue {
            message,
            field: "format",
            value: code.into(),
        })?;
        let codes = FormatCodes::check(r.slices(), message, "column formats")?;
        let column_formats = r.share(codes);
        r.finish()?;
        Ok(Self {
            format,
            column_formats,
        })
    }

    fn put(&self, out: &mut BytesMut, tag_byte: u8) {
        tagged(out, tag_byte, 3 + self.column_formats.len(), |out| {
            out.put_u8(self.format.code() as u8);
            // INVARIANT: the count was checked (built) or read as an Int16 (decoded).
            out.put_u16((self.column_formats.len() / 2) as u16);
            out.put_slice(&self.column_formats);
        });
    }

    fn encoded_len(&self) -> usize {
        8 + self.column_formats.len()
    }
}

/// Every message a backend can send.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// The single byte answering SSLRequest: `S` (accepted) or `N` (refused).
    SslResponse {
        /// Whether the server will do TLS.
        accepted: bool,
    },
    /// The single byte answering GSSENCRequest: `G` (accepted) or `N` (refused).
    GssEncResponse {
        /// Whether the server will do GSSAPI encryption.
        accepted: bool,
    },
    /// Any Authentication message (`R`).
    Authentication(Authentication),
    /// BackendKeyData.
    BackendKeyData(BackendKeyData),
    /// BindComplete.
    BindComplete,
    /// CloseComplete.
    CloseComplete,
    /// CommandComplete.
    CommandComplete(CommandComplete<'a>),
    /// CopyData.
    CopyData(CopyData<'a>),
    /// CopyDone.
    CopyDone,
    /// CopyInResponse.
    CopyInResponse(CopyResponse),
    /// CopyOutResponse.
    CopyOutResponse(CopyResponse),
    /// CopyBothResponse.
    CopyBothResponse(CopyResponse),
    /// DataRow.
    DataRow(DataRow<'a>),
    /// EmptyQueryResponse.
    EmptyQueryResponse,
    /// ErrorResponse.
    ErrorResponse(ErrorFields),
    /// FunctionCallResponse: the result, `None` for NULL.
    FunctionCallResponse(Option<Bytes>),
    /// NegotiateProtocolVersion.
    NegotiateProtocolVersion(NegotiateProtocolVersion),
    /// NoData.
    NoData,
    /// NoticeResponse.
    NoticeResponse(ErrorFields),
    /// NotificationResponse.
    NotificationResponse(NotificationResponse),
    /// ParameterDescription.
    ParameterDescription(ParameterDescription),
    /// ParameterStatus.
    ParameterStatus(ParameterStatus),
    /// ParseComplete.
    ParseComplete,
    /// PortalSuspended.
    PortalSuspended,
    /// ReadyForQuery.
    ReadyForQuery(TransactionStatus),
    /// RowDescription.
    RowDescription(RowDescription),
}

impl<'a> BackendMessage<'a> {
    /// The type byte, or `None` for the single-byte answers to SSLRequest and GSSENCRequest.
    pub fn tag(&self) -> Option<u8> {
        Some(match self {
            Self::SslResponse { .. } | Self::GssEncResponse { .. } => return None,
            Self::Authentication(_) => tag::AUTHENTICATION,
            Self::BackendKeyData(_) => tag::BACKEND_KEY_DATA,
            Self::BindComplete => tag::BIND_COMPLETE,
            Self::CloseComplete => tag::CLOSE_COMPLETE,
            Self::CommandComplete(_) => tag::COMMAND_COMPLETE,
            Self::CopyData(_) => tag::COPY_DATA,
            Self::CopyDone => tag::COPY_DONE,
            Self::CopyInResponse(_) => tag::COPY_IN_RESPONSE,
            Self::CopyOutResponse(_) => tag::COPY_OUT_RESPONSE,
            Self::CopyBothResponse(_) => tag::COPY_BOTH_RESPONSE,
            Self::DataRow(_) => tag::DATA_ROW,
            Self::EmptyQueryResponse => tag::EMPTY_QUERY_RESPONSE,
            Self::ErrorResponse(_) => tag::ERROR_RESPONSE,
            Self::FunctionCallResponse(_) => tag::FUNCTION_CALL_RESPONSE,
            Self::NegotiateProtocolVersion(_) => tag::NEGOTIATE_PROTOCOL_VERSION,
            Self::NoData => tag::NO_DATA,
            Self::NoticeResponse(_) => tag::NOTICE_RESPONSE,
            Self::NotificationResponse(_) => tag::NOTIFICATION_RESPONSE,
            Self::ParameterDescription(_) => tag::PARAMETER_DESCRIPTION,
            Self::ParameterStatus(_) => tag::PARAMETER_STATUS,
            Self::ParseComplete => tag::PARSE_COMPLETE,
            Self::PortalSuspended => tag::PORTAL_SUSPENDED,
            Self::ReadyForQuery(_) => tag::READY_FOR_QUERY,
            Self::RowDescription(_) => tag::ROW_DESCRIPTION,
        })
    }

    /// The message's name as in the PostgreSQL documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SslResponse { .. } => "SSLResponse",
            Self::GssEncResponse { .. } => "GSSENCResponse",
            Self::Authentication(a) => a.name(),
            // Every other message is named by its type byte, as declared in `tag`.
            other => name(other.tag().unwrap_or(0)),
        }
    }

    /// The message, owned: a borrowed DataRow, CopyData or CommandComplete is copied (an
    /// owned message is returned as it is, without a copy).
    pub fn into_owned(self) -> BackendMessage<'static> {
        match self {
            Self::DataRow(m) => BackendMessage::DataRow(m.into_owned()),
            Self::CopyData(m) => BackendMessage::CopyData(m.into_owned()),
            Self::CommandComplete(m) => BackendMessage::CommandComplete(m.into_owned()),
            Self::SslResponse { accepted } => BackendMessage::SslResponse { accepted },
            Self::GssEncResponse { accepted } => BackendMessage::GssEncResponse { accepted },
            Self::Authentication(m) => BackendMessage::Authentication(m),
            Self::BackendKeyData(m) => BackendMessage::BackendKeyData(m),
            Self::BindComplete => BackendMessage::BindComplete,
            Self::CloseComplete => BackendMessage::CloseComplete,
            Self::CopyDone => BackendMessage::CopyDone,
            Self::CopyInResponse(m) => BackendMessage::CopyInResponse(m),
            Self::CopyOutResponse(m) => BackendMessage::CopyOutResponse(m),
            Self::CopyBothResponse(m) => BackendMessage::CopyBothResponse(m),
            Self::EmptyQueryResponse => BackendMessage::EmptyQueryResponse,
            Self::ErrorResponse(m) => BackendMessage::ErrorResponse(m),
            Self::FunctionCallResponse(m) => BackendMessage::FunctionCallResponse(m),
            Self::NegotiateProtocolVersion(m) => BackendMessage::NegotiateProtocolVersion(m),
            Self::NoData => BackendMessage::NoData,
            Self::NoticeResponse(m) => BackendMessage::NoticeResponse(m),
            Self::NotificationResponse(m) => BackendMessage::NotificationResponse(m),
            Self::ParameterDescription(m) => BackendMessage::ParameterDescription(m),
            Self::ParameterStatus(m) => BackendMessage::ParameterStatus(m),
            Self::ParseComplete => BackendMessage::ParseComplete,
            Self::PortalSuspended => BackendMessage::PortalSuspended,
            Self::ReadyForQuery(m) => BackendMessage::ReadyForQuery(m),
            Self::RowDescription(m) => BackendMessage::RowDescription(m),
        }
    }

    /// The message, borrowed from `self` (the messages that are always owned are cloned).
    pub fn as_borrowed(&self) -> BackendMessage<'_> {
        match self {
            Self::DataRow(m) => BackendMessage::DataRow(m.as_borrowed()),
            Self::CopyData(m) => BackendMessage::CopyData(m.as_borrowed()),
            Self::CommandComplete(m) => BackendMessage::CommandComplete(m.as_borrowed()),
            Self::SslResponse { accepted } => BackendMessage::SslResponse {
                accepted: *accepted,
            },
            Self::GssEncResponse { accepted } => BackendMessage::GssEncResponse {
                accepted: *accepted,
            },
            Self::Authentication(m) => BackendMessage::Authentication(m.clone()),
            Self::BackendKeyData(m) => BackendMessage::BackendKeyData(m.clone()),
            Self::BindComplete => BackendMessage::BindComplete,
            Self::CloseComplete => BackendMessage::CloseComplete,
            Self::CopyDone => BackendMessage::CopyDone,
            Self::CopyInResponse(m) => BackendMessage::CopyInResponse(m.clone()),
            Self::CopyOutResponse(m) => BackendMessage::CopyOutResponse(m.clone()),
            Self::CopyBothResponse(m) => BackendMessage::CopyBothResponse(m.clone()),
            Self::EmptyQueryResponse => BackendMessage::EmptyQueryResponse,
            Self::ErrorResponse(m) => BackendMessage::ErrorResponse(m.clone()),
            Self::FunctionCallResponse(m) => BackendMessage::FunctionCallResponse(m.clone()),
            Self::NegotiateProtocolVersion(m) => {
                BackendMessage::NegotiateProtocolVersion(m.clone())
            }
            Self::NoData => BackendMessage::NoData,
            Self::NoticeResponse(m) => BackendMessage::NoticeResponse(m.clone()),
            Self::NotificationResponse(m) => BackendMessage::NotificationResponse(m.clone()),
            Self::ParameterDescription(m) => BackendMessage::ParameterDescription(m.clone()),
            Self::ParameterStatus(m) => BackendMessage::ParameterStatus(m.clone()),
            Self::ParseComplete => BackendMessage::ParseComplete,
            Self::PortalSuspended => BackendMessage::PortalSuspended,
            Self::ReadyForQuery(m) => BackendMessage::ReadyForQuery(*m),
            Self::RowDescription(m) => BackendMessage::RowDescription(m.clone()),
        }
    }

    /// Decodes a tagged frame's body, borrowing it. `version` is the protocol version in force,
    /// which decides how long a BackendKeyData key may be. DataRow, CopyData and
    /// CommandComplete borrow `body`; the other messages are decoded into owned values. Call
    /// [`BackendMessage::into_owned`] to keep the message beyond `body`.
    ///
    /// Fails with [`DecodeError::UnknownTag`] for a type byte no backend message has, or with
    /// the [`DecodeError`] of the body that does not decode as its message.
    ///
    /// ```
    /// use pgproto::{backend_tag, BackendMessage, ProtocolVersion, TransactionStatus};
    /// let m = BackendMessage::decode(backend_tag::READY_FOR_QUERY, b"I", ProtocolVersion::V3_0);
    /// assert_eq!(m.unwrap(), BackendMessage::ReadyForQuery(TransactionStatus::Idle));
    /// ```
    pub fn decode(
        tag_byte: u8,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        Self::decode_payload(tag_byte, body.into(), version)
    }

    /// [`BackendMessage::decode`] of a body held as a [`Payload`]: the one decoding path, for
    /// borrowed and shared bodies alike.
    pub(crate) fn decode_payload(
        tag_byte: u8,
        body: Payload<'a>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let body = match decode_declared(tag_byte, body) {
            Ok(m) => return m,
            Err(body) => body,
        };
        // The rest decode into owned values, from shared bytes (copied if borrowed).
        let body = &body.into_shared();
        Ok(match tag_byte {
            tag::AUTHENTICATION => Self::Authentication(Authentication::decode(body)?),
            tag::BACKEND_KEY_DATA => Self::BackendKeyData(BackendKeyData::decode(body, version)?),
            tag::COPY_IN_RESPONSE => {
                Self::CopyInResponse(CopyResponse::decode(body, "CopyInResponse")?)
            }
            tag::COPY_OUT_RESPONSE => {
                Self::CopyOutResponse(CopyResponse::decode(body, "CopyOutResponse")?)
            }
            tag::COPY_BOTH_RESPONSE => {
                Self::CopyBothResponse(CopyResponse::decode(body, "CopyBothResponse")?)
            }
            tag::ERROR_RESPONSE => Self::ErrorResponse(ErrorFields::decode(body, "ErrorResponse")?),
            tag::FUNCTION_CALL_RESPONSE => {
                let mut r = Reader::new(body, "FunctionCallResponse");
                let v = r.nullable("result")?;
                r.finish()?;
                Self::FunctionCallResponse(v)
            }
            tag::NEGOTIATE_PROTOCOL_VERSION => {
                Self::NegotiateProtocolVersion(NegotiateProtocolVersion::decode(body)?)
            }
            tag::NOTICE_RESPONSE => {
                Self::NoticeResponse(ErrorFields::decode(body, "NoticeResponse")?)
            }
            tag::NOTIFICATION_RESPONSE => {
                Self::NotificationResponse(NotificationResponse::decode(body)?)
            }
            tag::PARAMETER_DESCRIPTION => {
                Self::ParameterDescription(ParameterDescription::decode(body)?)
            }
            tag::PARAMETER_STATUS => Self::ParameterStatus(ParameterStatus::decode(body)?),
            tag::READY_FOR_QUERY => {
                let mut r = Reader::new(body, "ReadyForQuery");
                let b = r.u8("transaction status")?;
                r.finish()?;
                Self::ReadyForQuery(TransactionStatus::from_byte(b).ok_or(
                    DecodeError::InvalidValue {
                        message: "ReadyForQuery",
                        field: "transaction status",
                        value: b.into(),
                    },
                )?)
            }
            tag::ROW_DESCRIPTION => Self::RowDescription(RowDescription::decode(body)?),
            other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
        })
    }
}

impl Encode for BackendMessage<'_> {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::SslResponse { accepted } => out.put_u8(if *accepted { b'S' } else { b'N' }),
            Self::GssEncResponse { accepted } => out.put_u8(if *accepted { b'G' } else { b'N' }),
            Self::Authentication(m) => m.encode(out),
            Self::BackendKeyData(m) => m.encode(out),
            Self::BindComplete => empty(out, tag::BIND_COMPLETE),
            Self::CloseComplete => empty(out, tag::CLOSE_COMPLETE),
            Self::CommandComplete(m) => m.encode(out),
            Self::CopyData(m) => m.encode(out),
            Self::CopyDone => empty(out, tag::COPY_DONE),
            Self::CopyInResponse(m) => m.put(out, tag::COPY_IN_RESPONSE),
            Self::CopyOutResponse(m) => m.put(out, tag::COPY_OUT_RESPONSE),
            Self::CopyBothResponse(m) => m.put(out, tag::COPY_BOTH_RESPONSE),
            Self::DataRow(m) => m.encode(out),
            Self::EmptyQueryResponse => empty(out, tag::EMPTY_QUERY_RESPONSE),
            Self::ErrorResponse(f) => {
                tagged(out, tag::ERROR_RESPONSE, f.body_len(), |out| f.put(out))
            }
            Self::FunctionCallResponse(v) => {
                tagged(
                    out,
                    tag::FUNCTION_CALL_RESPONSE,
                    4 + v.as_ref().map_or(0, |v| v.len()),
                    |out| put_value(out, v.as_deref()),
                );
            }
            Self::NegotiateProtocolVersion(m) => m.encode(out),
            Self::NoData => empty(out, tag::NO_DATA),
            Self::NoticeResponse(f) => {
                tagged(out, tag::NOTICE_RESPONSE, f.body_len(), |out| f.put(out))
            }
            Self::NotificationResponse(m) => m.encode(out),
            Self::ParameterDescription(m) => m.encode(out),
            Self::ParameterStatus(m) => m.encode(out),
            Self::ParseComplete => empty(out, tag::PARSE_COMPLETE),
            Self::PortalSuspended => empty(out, tag::PORTAL_SUSPENDED),
            Self::ReadyForQuery(s) => out.put_slice(&[tag::READY_FOR_QUERY, 0, 0, 0, 5, s.byte()]),
            Self::RowDescription(m) => m.encode(out),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::SslResponse { .. } | Self::GssEncResponse { .. } => 1,
            Self::Authentication(m) => m.encoded_len(),
            Self::BackendKeyData(m) => m.encoded_len(),
            Self::BindComplete
            | Self::CloseComplete
            | Self::CopyDone
            | Self::EmptyQueryResponse
            | Self::NoData
            | Self::ParseComplete
            | Self::PortalSuspended => 5,
            Self::CommandComplete(m) => m.encoded_len(),
            Self::CopyData(m) => m.encoded_len(),
            Self::CopyInResponse(m) | Self::CopyOutResponse(m) | Self::CopyBothResponse(m) => {
                m.encoded_len()
            }
            Self::DataRow(m) => m.encoded_len(),
            Self::ErrorResponse(f) | Self::NoticeResponse(f) => f.body_len() + 5,
            Self::FunctionCallResponse(v) => 9 + v.as_ref().map_or(0, |v| v.len()),
            Self::NegotiateProtocolVersion(m) => m.encoded_len(),
            Self::NotificationResponse(m) => m.encoded_len(),
            Self::ParameterDescription(m) => m.encoded_len(),
            Self::ParameterStatus(m) => m.encoded_len(),
            Self::ReadyForQuery(_) => 6,
            Self::RowDescription(m) => m.encoded_len(),
        }
    }
}
