//! Messages a frontend (client) sends, and their decoding by type byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{
    check_body, check_count, check_cstr, empty, frame_body, put_cstr, tagged, Encode,
};
use crate::error::{DecodeError, EncodeError, Tag};
use crate::message::common::{
    check_lens, put_formats, put_value, put_values, Format, FormatCodes, ProtocolVersion, Values,
};
pub use crate::message::extended::{Bind, Close, Describe, Execute, Parse};
use crate::message::layout::{FunctionCallLayout, SaslInitialLayout};
use crate::message::payload::Payload;
use crate::message::startup::{
    encode_request, CancelRequest, StartupMessage, UnsupportedStartup, GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
};

type_bytes! {
    /// Type bytes of frontend messages, named as in the PostgreSQL documentation, with the size
    /// class of each (the length limits of [`Limits`](crate::Limits): PostgreSQL's
    /// `PQ_LARGE_MESSAGE_LIMIT` for Query, Parse, Bind, CopyData and FunctionCall,
    /// `PG_MAX_AUTH_TOKEN_LENGTH` for the authentication responses, `PQ_SMALL_MESSAGE_LIMIT` for
    /// the rest).
    ///
    /// The same byte can mean a different message in the other direction (`D` is Describe here and
    /// DataRow from the backend), so these live apart from [`crate::backend_tag`].
    mod tag;
    enum FrontendMessage;
    /// Bind.
    BIND = b'B', "Bind", Large => Bind(Bind);
    /// Close.
    CLOSE = b'C', "Close", Small => Close(Close);
    /// CopyData.
    COPY_DATA = b'd', "CopyData", Large => CopyData(CopyData);
    /// CopyDone.
    COPY_DONE = b'c', "CopyDone", Small => CopyDone;
    /// CopyFail.
    COPY_FAIL = b'f', "CopyFail", Small => CopyFail(CopyFail);
    /// Describe.
    DESCRIBE = b'D', "Describe", Small => Describe(Describe);
    /// Execute.
    EXECUTE = b'E', "Execute", Small => Execute(Execute);
    /// Flush.
    FLUSH = b'H', "Flush", Small => Flush;
    /// FunctionCall.
    FUNCTION_CALL = b'F', "FunctionCall", Large => FunctionCall(FunctionCall);
    /// Parse.
    PARSE = b'P', "Parse", Large => Parse(Parse);
    /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse (decoded by the kind
    /// the receiver expects: see [`AuthResponseKind`](crate::AuthResponseKind)).
    PASSWORD = b'p', "authentication response", Auth;
    /// Query.
    QUERY = b'Q', "Query", Large => Query(Query);
    /// Sync.
    SYNC = b'S', "Sync", Small => Sync;
    /// Terminate.
    TERMINATE = b'X', "Terminate", Small => Terminate;
}

/// Which message a `p` frame is. The wire does not say: it depends on the authentication request
/// the server sent last, so the receiver must supply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResponseKind {
    /// PasswordMessage (answers AuthenticationCleartextPassword or AuthenticationMD5Password).
    Password,
    /// SASLInitialResponse (answers AuthenticationSASL).
    SaslInitial,
    /// SASLResponse (answers AuthenticationSASLContinue).
    Sasl,
    /// GSSResponse (answers AuthenticationGSS, AuthenticationSSPI, AuthenticationGSSContinue).
    Gss,
}

text_message!(
    /// Query: a simple-protocol query string, possibly holding several statements.
    Query, tag::QUERY, "Query", sql, "query string"
);
text_message!(
    /// CopyFail: aborts a COPY FROM STDIN with an error message.
    CopyFail, tag::COPY_FAIL, "CopyFail", message, "error message"
);
text_message!(
    /// PasswordMessage: a cleartext or MD5-hashed password.
    PasswordMessage, tag::PASSWORD, "PasswordMessage", password, "password"
);

raw_message!(
    /// SASLResponse: SASL mechanism data after the initial response.
    SaslResponse, tag::PASSWORD, "SASLResponse"
);
raw_message!(
    /// GSSResponse: GSSAPI or SSPI token data.
    GssResponse, tag::PASSWORD, "GSSResponse"
);
raw_message!(
    /// An authentication response (`p`) decoded without knowing which kind it is. The raw body
    /// passes through unchanged, which is what a proxy that does not take part in authentication
    /// needs. Use [`AuthResponseKind`] to decode it as the specific message.
    UntypedAuthResponse, tag::PASSWORD, "authentication response"
);
raw_message!(
    /// CopyData: part of a COPY data stream (frontend or backend).
    CopyData, b'd', "CopyData"
);

impl UntypedAuthResponse<'_> {
    /// Decodes the body as the given kind of authentication response; fails with the
    /// [`DecodeError`] of a PasswordMessage or SASLInitialResponse body that is malformed
    /// (SASLResponse and GSSResponse bodies are raw bytes and always decode).
    pub fn decode_as(&self, kind: AuthResponseKind) -> Result<FrontendMessage<'_>, DecodeError> {
        decode_auth(kind, self.data.borrow())
    }
}

body_message!(
    /// SASLInitialResponse: the chosen mechanism and the optional initial client response.
    SaslInitialResponse,
    "SASLInitialResponse",
    SaslInitialLayout,
    tag::PASSWORD,
    SaslInitialLayout::read
);

impl<'a> SaslInitialResponse<'a> {
    /// A SASLInitialResponse; `data` is `None` when the mechanism sends no initial response.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `mechanism` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word.
    pub fn new(
        mechanism: &str,
        data: Option<&[u8]>,
    ) -> Result<SaslInitialResponse<'static>, EncodeError> {
        let body = frame_body(10 + mechanism.len() + data.map_or(0, <[u8]>::len), |out| {
            SaslInitialResponse::encode_values(out, mechanism, data)
        })?;
        SaslInitialResponse::built(body)
    }

    /// Appends a SASLInitialResponse to `out`: the one way it is written. The checks of
    /// [`SaslInitialResponse::new`]; on error nothing is written.
    pub fn encode_values(
        out: &mut BytesMut,
        mechanism: &str,
        data: Option<&[u8]>,
    ) -> Result<(), EncodeError> {
        check_cstr("mechanism", mechanism.as_bytes())?;
        let len = mechanism.len() + 5 + data.map_or(0, <[u8]>::len);
        check_body("SASLInitialResponse", len)?;
        tagged(out, tag::PASSWORD, len, |out| {
            put_cstr(out, mechanism.as_bytes());
            put_value(out, data);
        });
        Ok(())
    }

    /// The mechanism name, such as `SCRAM-SHA-256`.
    pub fn mechanism(&self) -> &[u8] {
        self.layout.mechanism.of(self.body.as_slice())
    }

    /// The initial response, if any.
    pub fn data(&self) -> Option<&[u8]> {
        let body = self.body.as_slice();
        self.layout.data.map(|d| d.of(body))
    }
}

body_message!(
    /// FunctionCall: calls a function by OID (the legacy fast-path interface).
    FunctionCall,
    "FunctionCall",
    FunctionCallLayout,
    tag::FUNCTION_CALL,
    FunctionCallLayout::read
);

impl<'a> FunctionCall<'a> {
    /// A FunctionCall message of these arguments (`None` is NULL).
    ///
    /// Fails with [`EncodeError::TooMany`] on more than 65,535 formats or arguments,
    /// [`EncodeError::OutOfRange`] when an argument does not fit a message, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word.
    pub fn new(
        function: u32,
        arg_formats: &[Format],
        args: &[Option<&[u8]>],
        result_format: Format,
    ) -> Result<FunctionCall<'static>, EncodeError> {
        let format_count = check_count("formats", arg_formats.len())?;
        let args_len = check_lens(args)?;
        let arg_count = check_count("values", args.len())?;
        let len = 4 + 2 + arg_formats.len() * 2 + 2 + args_len + 2;
        check_body("FunctionCall", len)?;
        let body = frame_body(5 + len, |out| {
            tagged(out, tag::FUNCTION_CALL, len, |out| {
                out.put_u32(function);
                put_formats(out, format_count, arg_formats);
                put_values(out, arg_count, args);
                out.put_i16(result_format.code());
            });
            Ok(())
        })?;
        FunctionCall::built(body)
    }

    /// The function's OID.
    pub fn function(&self) -> u32 {
        self.layout.function
    }

    /// The argument format codes.
    pub fn arg_formats(&self) -> FormatCodes<'_> {
        FormatCodes::from_checked(self.layout.arg_formats.of(self.body.as_slice()))
    }

    /// The arguments, read in place.
    pub fn args(&self) -> Values<'_> {
        Values::from_checked(
            self.layout.arg_count,
            self.layout.args.of(self.body.as_slice()),
        )
    }

    /// The format wanted for the result.
    pub fn result_format(&self) -> Format {
        self.layout.result_format
    }
}

/// Every message a frontend can send, start-up packets included: borrowed from a decoder's
/// buffer (`FrontendMessage<'buf>`, what [`FrontendDecoder::next_ref`] and
/// [`Server::poll_event`] lend) or owned (`FrontendMessage<'static>`, what
/// [`FrontendDecoder::next`] returns and [`FrontendMessage::into_owned`] makes of any of them).
///
/// [`FrontendDecoder::next_ref`]: crate::FrontendDecoder::next_ref
/// [`FrontendDecoder::next`]: crate::FrontendDecoder::next
/// [`Server::poll_event`]: crate::Server::poll_event
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// StartupMessage (untagged).
    Startup(StartupMessage),
    /// SSLRequest (untagged).
    SslRequest,
    /// GSSENCRequest (untagged).
    GssEncRequest,
    /// CancelRequest (untagged).
    CancelRequest(CancelRequest),
    /// A start-up packet for a protocol version other than 3.x (untagged).
    UnsupportedStartup(UnsupportedStartup),
    /// PasswordMessage (`p` during password authentication).
    PasswordMessage(PasswordMessage<'a>),
    /// SASLInitialResponse (`p` answering AuthenticationSASL).
    SaslInitialResponse(SaslInitialResponse<'a>),
    /// SASLResponse (`p` answering AuthenticationSASLContinue).
    SaslResponse(SaslResponse<'a>),
    /// GSSResponse (`p` during GSSAPI or SSPI authentication).
    GssResponse(GssResponse<'a>),
    /// A `p` message decoded without knowing its kind.
    UntypedAuthResponse(UntypedAuthResponse<'a>),
    /// Query.
    Query(Query<'a>),
    /// Parse.
    Parse(Parse<'a>),
    /// Bind.
    Bind(Bind<'a>),
    /// Describe.
    Describe(Describe<'a>),
    /// Execute.
    Execute(Execute<'a>),
    /// Close.
    Close(Close<'a>),
    /// Sync.
    Sync,
    /// Flush.
    Flush,
    /// FunctionCall.
    FunctionCall(FunctionCall<'a>),
    /// CopyData.
    CopyData(CopyData<'a>),
    /// CopyDone.
    CopyDone,
    /// CopyFail.
    CopyFail(CopyFail<'a>),
    /// Terminate.
    Terminate,
}

/// Applies `$e` to the message inside every variant that holds one with a body, `$keep` to the
/// start-up packets (which are always owned), and gives the empty variants back as they are.
macro_rules! each_body {
    ($self:expr, $m:ident => $e:expr, $s:ident => $keep:expr) => {
        match $self {
            FrontendMessage::Startup($s) => FrontendMessage::Startup($keep),
            FrontendMessage::SslRequest => FrontendMessage::SslRequest,
            FrontendMessage::GssEncRequest => FrontendMessage::GssEncRequest,
            FrontendMessage::CancelRequest($s) => FrontendMessage::CancelRequest($keep),
            FrontendMessage::UnsupportedStartup($s) => FrontendMessage::UnsupportedStartup($keep),
            FrontendMessage::PasswordMessage($m) => FrontendMessage::PasswordMessage($e),
            FrontendMessage::SaslInitialResponse($m) => FrontendMessage::SaslInitialResponse($e),
            FrontendMessage::SaslResponse($m) => FrontendMessage::SaslResponse($e),
            FrontendMessage::GssResponse($m) => FrontendMessage::GssResponse($e),
            FrontendMessage::UntypedAuthResponse($m) => FrontendMessage::UntypedAuthResponse($e),
            FrontendMessage::Query($m) => FrontendMessage::Query($e),
            FrontendMessage::Parse($m) => FrontendMessage::Parse($e),
            FrontendMessage::Bind($m) => FrontendMessage::Bind($e),
            FrontendMessage::Describe($m) => FrontendMessage::Describe($e),
            FrontendMessage::Execute($m) => FrontendMessage::Execute($e),
            FrontendMessage::Close($m) => FrontendMessage::Close($e),
            FrontendMessage::Sync => FrontendMessage::Sync,
            FrontendMessage::Flush => FrontendMessage::Flush,
            FrontendMessage::FunctionCall($m) => FrontendMessage::FunctionCall($e),
            FrontendMessage::CopyData($m) => FrontendMessage::CopyData($e),
            FrontendMessage::CopyDone => FrontendMessage::CopyDone,
            FrontendMessage::CopyFail($m) => FrontendMessage::CopyFail($e),
            FrontendMessage::Terminate => FrontendMessage::Terminate,
        }
    };
}

impl<'a> FrontendMessage<'a> {
    /// The message's name as in the PostgreSQL documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Startup(_) => "StartupMessage",
            Self::SslRequest => "SSLRequest",
            Self::GssEncRequest => "GSSENCRequest",
            Self::CancelRequest(_) => "CancelRequest",
            Self::UnsupportedStartup(_) => "UnsupportedStartup",
            Self::PasswordMessage(_) => "PasswordMessage",
            Self::SaslInitialResponse(_) => "SASLInitialResponse",
            Self::SaslResponse(_) => "SASLResponse",
            Self::GssResponse(_) => "GSSResponse",
            Self::UntypedAuthResponse(_) => "AuthenticationResponse",
            // Every other message is named by its type byte, as declared in `tag`.
            other => name(other.tag().unwrap_or(0)),
        }
    }

    /// The type byte, or `None` for the untagged start-up packets.
    pub fn tag(&self) -> Option<u8> {
        Some(match self {
            Self::Startup(_)
            | Self::SslRequest
            | Self::GssEncRequest
            | Self::CancelRequest(_)
            | Self::UnsupportedStartup(_) => return None,
            Self::PasswordMessage(_)
            | Self::SaslInitialResponse(_)
            | Self::SaslResponse(_)
            | Self::GssResponse(_)
            | Self::UntypedAuthResponse(_) => tag::PASSWORD,
            Self::Query(_) => tag::QUERY,
            Self::Parse(_) => tag::PARSE,
            Self::Bind(_) => tag::BIND,
            Self::Describe(_) => tag::DESCRIBE,
            Self::Execute(_) => tag::EXECUTE,
            Self::Close(_) => tag::CLOSE,
            Self::Sync => tag::SYNC,
            Self::Flush => tag::FLUSH,
            Self::FunctionCall(_) => tag::FUNCTION_CALL,
            Self::CopyData(_) => tag::COPY_DATA,
            Self::CopyDone => tag::COPY_DONE,
            Self::CopyFail(_) => tag::COPY_FAIL,
            Self::Terminate => tag::TERMINATE,
        })
    }

    /// The message, owned: whatever it borrows is copied (an owned message is returned as it
    /// is, without a copy).
    pub fn into_owned(self) -> FrontendMessage<'static> {
        each_body!(self, m => m.into_owned(), s => s)
    }

    /// The message, borrowed from `self` (start-up packets, which are always owned, are
    /// cloned).
    pub fn as_borrowed(&self) -> FrontendMessage<'_> {
        each_body!(self, m => m.as_borrowed(), s => s.clone())
    }

    /// Decodes a tagged frame's body, borrowing it. `auth` says which message a `p` frame is;
    /// with `None` it becomes [`FrontendMessage::UntypedAuthResponse`]. Call
    /// [`FrontendMessage::into_owned`] to keep the message beyond `body`.
    ///
    /// Fails with [`DecodeError::UnknownTag`] for a type byte no frontend message has, or with
    /// the [`DecodeError`] of a body that does not decode as its message.
    ///
    /// ```
    /// use pgproto::{frontend_tag, FrontendMessage};
    /// let m = FrontendMessage::decode(frontend_tag::QUERY, b"SELECT 1\0", None).unwrap();
    /// let FrontendMessage::Query(q) = &m else { unreachable!() };
    /// assert_eq!(q.sql(), b"SELECT 1");
    /// ```
    pub fn decode(
        tag_byte: u8,
        body: &'a [u8],
        auth: Option<AuthResponseKind>,
    ) -> Result<Self, DecodeError> {
        Self::decode_payload(tag_byte, body.into(), auth)
    }

    /// [`FrontendMessage::decode`] of a body held as a [`Payload`]: the one decoding path, for
    /// borrowed and shared bodies alike.
    #[inline]
    pub(crate) fn decode_payload(
        tag_byte: u8,
        body: Payload<'a>,
        auth: Option<AuthResponseKind>,
    ) -> Result<Self, DecodeError> {
        let body = match decode_declared(tag_byte, body) {
            Ok(m) => return m,
            Err(body) => body,
        };
        match tag_byte {
            tag::PASSWORD => match auth {
                None => Ok(Self::UntypedAuthResponse(
                    UntypedAuthResponse::from_checked(body),
                )),
                Some(kind) => decode_auth(kind, body),
            },
            other => Err(DecodeError::UnknownTag { tag: Tag(other) }),
        }
    }

    /// Decodes a whole untagged start-up packet, length word included.
    ///
    /// Fails with [`DecodeError::InvalidLength`] when the packet is shorter than 8 bytes or an
    /// SSLRequest or GSSENCRequest is not exactly 8, or with the [`DecodeError`] of a malformed
    /// CancelRequest or 3.x StartupMessage; other versions decode as
    /// [`FrontendMessage::UnsupportedStartup`].
    pub fn decode_startup(packet: &Bytes) -> Result<Self, DecodeError> {
        if packet.len() < 8 {
            return Err(DecodeError::InvalidLength {
                message: "start-up packet",
                len: packet.len() as i64,
            });
        }
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let exact8 = |message: &'static str, m: Self| {
            if packet.len() == 8 {
                Ok(m)
            } else {
                Err(DecodeError::InvalidLength {
                    message,
                    len: packet.len() as i64,
                })
            }
        };
        match code {
            SSL_REQUEST_CODE => exact8("SSLRequest", Self::SslRequest),
            GSSENC_REQUEST_CODE => exact8("GSSENCRequest", Self::GssEncRequest),
            crate::message::startup::CANCEL_REQUEST_CODE => {
                Ok(Self::CancelRequest(CancelRequest::decode(packet)?))
            }
            _ => {
                let version = ProtocolVersion::from_code(code);
                if version.major == 3 {
                    Ok(Self::Startup(StartupMessage::decode(version, packet)?))
                } else {
                    Ok(Self::UnsupportedStartup(UnsupportedStartup::decode(
                        version,
                        packet.clone(),
                    )))
                }
            }
        }
    }
}

fn decode_auth(
    kind: AuthResponseKind,
    body: Payload<'_>,
) -> Result<FrontendMessage<'_>, DecodeError> {
    Ok(match kind {
        AuthResponseKind::Password => {
            FrontendMessage::PasswordMessage(PasswordMessage::decode_payload(body)?)
        }
        AuthResponseKind::SaslInitial => {
            FrontendMessage::SaslInitialResponse(SaslInitialResponse::decode_payload(body)?)
        }
        AuthResponseKind::Sasl => FrontendMessage::SaslResponse(SaslResponse::from_checked(body)),
        AuthResponseKind::Gss => FrontendMessage::GssResponse(GssResponse::from_checked(body)),
    })
}

impl Encode for FrontendMessage<'_> {
    #[inline]
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Startup(m) => m.encode(out),
            Self::SslRequest => encode_request(out, SSL_REQUEST_CODE),
            Self::GssEncRequest => encode_request(out, GSSENC_REQUEST_CODE),
            Self::CancelRequest(m) => m.encode(out),
            Self::UnsupportedStartup(m) => m.encode(out),
            Self::PasswordMessage(m) => m.encode(out),
            Self::SaslInitialResponse(m) => m.encode(out),
            Self::SaslResponse(m) => m.encode(out),
            Self::GssResponse(m) => m.encode(out),
            Self::UntypedAuthResponse(m) => m.encode(out),
            Self::Query(m) => m.encode(out),
            Self::Parse(m) => m.encode(out),
            Self::Bind(m) => m.encode(out),
            Self::Describe(m) => m.encode(out),
            Self::Execute(m) => m.encode(out),
            Self::Close(m) => m.encode(out),
            Self::Sync => empty(out, tag::SYNC),
            Self::Flush => empty(out, tag::FLUSH),
            Self::FunctionCall(m) => m.encode(out),
            Self::CopyData(m) => m.encode(out),
            Self::CopyDone => empty(out, tag::COPY_DONE),
            Self::CopyFail(m) => m.encode(out),
            Self::Terminate => empty(out, tag::TERMINATE),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Startup(m) => m.encoded_len(),
            Self::SslRequest | Self::GssEncRequest => 8,
            Self::CancelRequest(m) => m.encoded_len(),
            Self::UnsupportedStartup(m) => m.encoded_len(),
            Self::PasswordMessage(m) => m.encoded_len(),
            Self::SaslInitialResponse(m) => m.encoded_len(),
            Self::SaslResponse(m) => m.encoded_len(),
            Self::GssResponse(m) => m.encoded_len(),
            Self::UntypedAuthResponse(m) => m.encoded_len(),
            Self::Query(m) => m.encoded_len(),
            Self::Parse(m) => m.encoded_len(),
            Self::Bind(m) => m.encoded_len(),
            Self::Describe(m) => m.encoded_len(),
            Self::Execute(m) => m.encoded_len(),
            Self::Close(m) => m.encoded_len(),
            Self::Sync | Self::Flush | Self::CopyDone | Self::Terminate => 5,
            Self::FunctionCall(m) => m.encoded_len(),
            Self::CopyData(m) => m.encoded_len(),
            Self::CopyFail(m) => m.encoded_len(),
        }
    }
}
