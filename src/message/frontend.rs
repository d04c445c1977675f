//! Messages a frontend (client) sends, and their decoding by type byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{
    check_body, check_count, check_cstr, empty, put_cstr, put_cstr_to, tagged, Encode,
};
use crate::error::{DecodeError, EncodeError, Tag};
use crate::message::common::{Format, FormatCodes, ProtocolVersion, Target, Values};
use crate::message::layout::{empty_layout, BindLayout, ExecuteLayout, ParseLayout, TargetLayout};
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
    /// Bind.
    BIND = b'B', "Bind", Large;
    /// Close.
    CLOSE = b'C', "Close", Small;
    /// CopyData.
    COPY_DATA = b'd', "CopyData", Large;
    /// CopyDone.
    COPY_DONE = b'c', "CopyDone", Small;
    /// CopyFail.
    COPY_FAIL = b'f', "CopyFail", Small;
    /// Describe.
    DESCRIBE = b'D', "Describe", Small;
    /// Execute.
    EXECUTE = b'E', "Execute", Small;
    /// Flush.
    FLUSH = b'H', "Flush", Small;
    /// FunctionCall.
    FUNCTION_CALL = b'F', "FunctionCall", Large;
    /// Parse.
    PARSE = b'P', "Parse", Large;
    /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse.
    PASSWORD = b'p', "authentication response", Auth;
    /// Query.
    QUERY = b'Q', "Query", Large;
    /// Sync.
    SYNC = b'S', "Sync", Small;
    /// Terminate.
    TERMINATE = b'X', "Terminate", Small;
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

impl UntypedAuthResponse {
    /// Decodes the body as the given kind of authentication response; fails with the
    /// [`DecodeError`] of a PasswordMessage or SASLInitialResponse body that is malformed
    /// (SASLResponse and GSSResponse bodies are raw bytes and always decode).
    pub fn decode_as(&self, kind: AuthResponseKind) -> Result<FrontendMessage, DecodeError> {
        decode_auth(kind, &self.data)
    }
}

/// SASLInitialResponse: the chosen mechanism and the optional initial client response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitialResponse {
    mechanism: Bytes,
    data: Option<Bytes>,
}

impl SaslInitialResponse {
    /// A SASLInitialResponse; `data` is `None` when the mechanism sends no initial response.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `mechanism` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word.
    pub fn new(mechanism: &str, data: Option<Bytes>) -> Result<Self, EncodeError> {
        check_cstr("mechanism", mechanism.as_bytes())?;
        check_body(
            "SASLInitialResponse",
            mechanism.len() + 5 + data.as_ref().map_or(0, |d| d.len()),
        )?;
        Ok(Self {
            mechanism: Bytes::copy_from_slice(mechanism.as_bytes()),
            data,
        })
    }

    /// The mechanism name, such as `SCRAM-SHA-256`.
    pub fn mechanism(&self) -> &[u8] {
        &self.mechanism
    }

    /// The initial response, if any.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "SASLInitialResponse");
        let mechanism = r.cstr("mechanism")?;
        let data = r.nullable("initial response")?;
        r.finish()?;
        Ok(Self { mechanism, data })
    }
}

impl Encode for SaslInitialResponse {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::PASSWORD, self.encoded_len() - 5, |out| {
            put_cstr(out, &self.mechanism);
            match &self.data {
                None => out.put_i32(-1),
                Some(d) => {
                    out.put_i32(d.len() as i32);
                    out.put_slice(d);
                }
            }
        });
    }

    fn encoded_len(&self) -> usize {
        5 + self.mechanism.len() + 1 + 4 + self.data.as_ref().map_or(0, |d| d.len())
    }
}

/// Parse: creates a prepared statement from a query string, optionally fixing parameter types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    pub(crate) name: Bytes,
    pub(crate) query: Bytes,
    pub(crate) param_types: Bytes,
}

impl Parse {
    /// A Parse message; `param_types` are type OIDs (0 leaves a type unspecified).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` or `query` contains NUL,
    /// [`EncodeError::TooMany`] on more than 65,535 types, or [`EncodeError::TooLong`] when the
    /// message would not fit its length word.
    ///
    /// ```
    /// use pgproto::Parse;
    /// let p = Parse::new("s1", "SELECT $1::int4", &[23]).unwrap();
    /// assert_eq!(p.param_types().collect::<Vec<_>>(), [23]);
    /// ```
    pub fn new(name: &str, query: &str, param_types: &[u32]) -> Result<Self, EncodeError> {
        check_cstr("statement name", name.as_bytes())?;
        check_cstr("query string", query.as_bytes())?;
        check_count("parameter types", param_types.len())?;
        check_body(
            "Parse",
            name.len() + query.len() + 4 + param_types.len() * 4,
        )?;
        let mut t = BytesMut::with_capacity(param_types.len() * 4);
        for oid in param_types {
            t.put_u32(*oid);
        }
        Ok(Self {
            name: Bytes::copy_from_slice(name.as_bytes()),
            query: Bytes::copy_from_slice(query.as_bytes()),
            param_types: t.freeze(),
        })
    }

    /// The prepared statement's name (empty for the unnamed statement).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The query string.
    pub fn query(&self) -> &[u8] {
        &self.query
    }

    /// The parameter type OIDs given.
    pub fn param_types(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.param_types
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Appends a Parse of these values to `out` directly, without building a [`Parse`] first:
    /// the same checks as [`Parse::new`], and on error nothing is written.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::{Encode, Parse};
    /// let mut out = BytesMut::new();
    /// Parse::encode_values(&mut out, "s1", "SELECT $1::int4", &[23]).unwrap();
    /// let mut want = BytesMut::new();
    /// Parse::new("s1", "SELECT $1::int4", &[23]).unwrap().encode(&mut want);
    /// assert_eq!(out, want);
    /// ```
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        name: &str,
        query: &str,
        param_types: &[u32],
    ) -> Result<(), EncodeError> {
        check_cstr("statement name", name.as_bytes())?;
        check_cstr("query string", query.as_bytes())?;
        let count = check_count("parameter types", param_types.len())?;
        let body = name.len() + query.len() + 4 + param_types.len() * 4;
        check_body("Parse", body)?;
        tagged_fields!(out, tag::PARSE, body, |out| {
            put_cstr_to(out, name.as_bytes());
            put_cstr_to(out, query.as_bytes());
            out.put_u16(count);
            for oid in param_types {
                out.put_u32(*oid);
            }
        });
        Ok(())
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let l = ParseLayout::read(body)?;
        Ok(Self {
            name: l.name.share(body),
            query: l.query.share(body),
            param_types: l.param_types.share(body),
        })
    }
}

impl Encode for Parse {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::PARSE, self.encoded_len() - 5, |out| {
            put_cstr(out, &self.name);
            put_cstr(out, &self.query);
            out.put_u16((self.param_types.len() / 4) as u16);
            out.put_slice(&self.param_types);
        });
    }

    fn encoded_len(&self) -> usize {
        5 + self.name.len() + self.query.len() + 2 + 2 + self.param_types.len()
    }
}

/// Bind: creates a portal from a prepared statement and parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub(crate) portal: Bytes,
    pub(crate) statement: Bytes,
    pub(crate) param_formats: FormatCodes,
    pub(crate) params: Values,
    pub(crate) result_formats: FormatCodes,
}

impl Bind {
    /// A Bind message. Fails with [`EncodeError::InteriorNul`] when `portal` or `statement`
    /// contains NUL, or [`EncodeError::TooLong`] when the message would not fit its length word.
    ///
    /// ```
    /// use pgproto::{Bind, Format, FormatCodes, Values};
    /// let b = Bind::new(
    ///     "",
    ///     "s1",
    ///     FormatCodes::new(&[Format::Binary]).unwrap(),
    ///     Values::new([Some(&[0, 0, 0, 7][..]), None]).unwrap(),
    ///     FormatCodes::default(),
    /// )
    /// .unwrap();
    /// assert_eq!(b.params().iter().collect::<Vec<_>>(), [Some(&[0, 0, 0, 7][..]), None]);
    /// ```
    pub fn new(
        portal: &str,
        statement: &str,
        param_formats: FormatCodes,
        params: Values,
        result_formats: FormatCodes,
    ) -> Result<Self, EncodeError> {
        check_cstr("portal name", portal.as_bytes())?;
        check_cstr("statement name", statement.as_bytes())?;
        let m = Self {
            portal: Bytes::copy_from_slice(portal.as_bytes()),
            statement: Bytes::copy_from_slice(statement.as_bytes()),
            param_formats,
            params,
            result_formats,
        };
        check_body("Bind", m.encoded_len() - 5)?;
        Ok(m)
    }

    /// The destination portal (empty for the unnamed portal).
    pub fn portal(&self) -> &[u8] {
        &self.portal
    }

    /// The source prepared statement (empty for the unnamed statement).
    pub fn statement(&self) -> &[u8] {
        &self.statement
    }

    /// The parameter format codes.
    pub fn param_formats(&self) -> &FormatCodes {
        &self.param_formats
    }

    /// The parameter values.
    pub fn params(&self) -> &Values {
        &self.params
    }

    /// The result-column format codes.
    pub fn result_formats(&self) -> &FormatCodes {
        &self.result_formats
    }

    /// Appends a Bind of these values to `out` directly, without building a [`Bind`] (and its
    /// [`FormatCodes`] and [`Values`]) first: the checks of those constructors, with the same
    /// errors, and on error nothing is written. `None` is NULL.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::{Bind, Encode, Format, FormatCodes, Values};
    /// let mut out = BytesMut::new();
    /// let params = [Some(&[0, 0, 0, 7][..]), None];
    /// Bind::encode_values(&mut out, "", "s1", &[Format::Binary], &params, &[]).unwrap();
    /// let bind = Bind::new(
    ///     "",
    ///     "s1",
    ///     FormatCodes::new(&[Format::Binary]).unwrap(),
    ///     Values::new(params).unwrap(),
    ///     FormatCodes::default(),
    /// )
    /// .unwrap();
    /// let mut want = BytesMut::new();
    /// bind.encode(&mut want);
    /// assert_eq!(out, want);
    /// ```
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        portal: &str,
        statement: &str,
        param_formats: &[Format],
        params: &[Option<&[u8]>],
        result_formats: &[Format],
    ) -> Result<(), EncodeError> {
        // The checks of `Bind::new(portal, statement, FormatCodes::new(param_formats)?,
        // Values::new(params)?, FormatCodes::new(result_formats)?)`, in that order.
        let param_format_count = check_count("formats", param_formats.len())?;
        let values_len = Values::check_lens(params)?;
        let param_count = check_count("values", params.len())?;
        let result_format_count = check_count("formats", result_formats.len())?;
        check_cstr("portal name", portal.as_bytes())?;
        check_cstr("statement name", statement.as_bytes())?;
        let body = portal.len()
            + statement.len()
            + 2
            + (2 + param_formats.len() * 2)
            + (2 + values_len)
            + (2 + result_formats.len() * 2);
        check_body("Bind", body)?;
        tagged_fields!(out, tag::BIND, body, |out| {
            put_cstr_to(out, portal.as_bytes());
            put_cstr_to(out, statement.as_bytes());
            out.put_u16(param_format_count);
            for f in param_formats {
                out.put_i16(f.code());
            }
            out.put_u16(param_count);
            for v in params {
                match v {
                    None => out.put_i32(-1),
                    Some(v) => {
                        out.put_i32(v.len() as i32);
                        out.put_slice(v);
                    }
                }
            }
            out.put_u16(result_format_count);
            for f in result_formats {
                out.put_i16(f.code());
            }
        });
        Ok(())
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let l = BindLayout::read(body)?;
        Ok(Self {
            portal: l.portal.share(body),
            statement: l.statement.share(body),
            param_formats: FormatCodes::from_checked(l.param_formats.share(body)),
            params: Values::from_checked(l.param_count, l.params.share(body)),
            result_formats: FormatCodes::from_checked(l.result_formats.share(body)),
        })
    }
}

impl Encode for Bind {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::BIND, self.encoded_len() - 5, |out| {
            put_cstr(out, &self.portal);
            put_cstr(out, &self.statement);
            self.param_formats.put(out);
            self.params.put(out);
            self.result_formats.put(out);
        });
    }

    fn encoded_len(&self) -> usize {
        5 + self.portal.len()
            + self.statement.len()
            + 2
            + self.param_formats.wire_len()
            + self.params.wire_len()
            + self.result_formats.wire_len()
    }
}

macro_rules! target_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            pub(crate) target: Target,
            pub(crate) name: Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $label, " of a prepared statement or portal.")]
            ///
            /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
            /// [`EncodeError::TooLong`] when the message would not fit its length word.
            pub fn new(target: Target, name: &str) -> Result<Self, EncodeError> {
                check_cstr("name", name.as_bytes())?;
                check_body($label, name.len() + 2)?;
                Ok(Self { target, name: Bytes::copy_from_slice(name.as_bytes()) })
            }

            /// Whether a statement or a portal is meant.
            pub fn target(&self) -> Target {
                self.target
            }

            /// Its name (empty for the unnamed one).
            pub fn name(&self) -> &[u8] {
                &self.name
            }

            #[doc = concat!("Appends a ", $label, " to `out` directly, without building a [`", stringify!($name), "`]")]
            #[doc = concat!("first: the same checks as [`", stringify!($name), "::new`], and on error nothing is written.")]
            #[inline]
            pub fn encode_values(out: &mut BytesMut, target: Target, name: &str) -> Result<(), EncodeError> {
                check_cstr("name", name.as_bytes())?;
                check_body($label, name.len() + 2)?;
                tagged(out, $tag, name.len() + 2, |out| {
                    out.put_u8(target.byte());
                    put_cstr(out, name.as_bytes());
                });
                Ok(())
            }

            pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
                let l = TargetLayout::read(body, $label)?;
                Ok(Self { target: l.target, name: l.name.share(body) })
            }
        }

        impl Encode for $name {
            fn encode(&self, out: &mut BytesMut) {
                tagged(out, $tag, self.name.len() + 2, |out| {
                    out.put_u8(self.target.byte());
                    put_cstr(out, &self.name);
                });
            }

            fn encoded_len(&self) -> usize {
                self.name.len() + 7
            }
        }
    };
}

target_message!(
    /// Describe: asks for the description of a prepared statement or portal.
    Describe, tag::DESCRIBE, "Describe"
);
target_message!(
    /// Close: closes a prepared statement or portal.
    Close, tag::CLOSE, "Close"
);

/// Execute: runs a portal, returning at most `max_rows` rows (0 for no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    pub(crate) portal: Bytes,
    pub(crate) max_rows: i32,
}

impl Execute {
    /// An Execute message. Fails with [`EncodeError::InteriorNul`] when `portal` contains NUL,
    /// or [`EncodeError::TooLong`] when the message would not fit its length word.
    pub fn new(portal: &str, max_rows: i32) -> Result<Self, EncodeError> {
        check_cstr("portal name", portal.as_bytes())?;
        check_body("Execute", portal.len() + 5)?;
        Ok(Self {
            portal: Bytes::copy_from_slice(portal.as_bytes()),
            max_rows,
        })
    }

    /// The portal (empty for the unnamed portal).
    pub fn portal(&self) -> &[u8] {
        &self.portal
    }

    /// The row limit; 0 means none.
    pub fn max_rows(&self) -> i32 {
        self.max_rows
    }

    /// Appends an Execute to `out` directly, without building an [`Execute`] first: the same
    /// checks as [`Execute::new`], and on error nothing is written.
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        portal: &str,
        max_rows: i32,
    ) -> Result<(), EncodeError> {
        check_cstr("portal name", portal.as_bytes())?;
        check_body("Execute", portal.len() + 5)?;
        tagged(out, tag::EXECUTE, portal.len() + 5, |out| {
            put_cstr(out, portal.as_bytes());
            out.put_i32(max_rows);
        });
        Ok(())
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let l = ExecuteLayout::read(body)?;
        Ok(Self {
            portal: l.portal.share(body),
            max_rows: l.max_rows,
        })
    }
}

impl Encode for Execute {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::EXECUTE, self.portal.len() + 5, |out| {
            put_cstr(out, &self.portal);
            out.put_i32(self.max_rows);
        });
    }

    fn encoded_len(&self) -> usize {
        self.portal.len() + 10
    }
}

/// FunctionCall: calls a function by OID (the legacy fast-path interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    function: u32,
    arg_formats: FormatCodes,
    args: Values,
    result_format: Format,
}

impl FunctionCall {
    /// A FunctionCall message; fails with [`EncodeError::TooLong`] when the arguments do not fit
    /// one message.
    pub fn new(
        function: u32,
        arg_formats: FormatCodes,
        args: Values,
        result_format: Format,
    ) -> Result<Self, EncodeError> {
        let m = Self {
            function,
            arg_formats,
            args,
            result_format,
        };
        check_body("FunctionCall", m.encoded_len() - 5)?;
        Ok(m)
    }

    /// The function's OID.
    pub fn function(&self) -> u32 {
        self.function
    }

    /// The argument format codes.
    pub fn arg_formats(&self) -> &FormatCodes {
        &self.arg_formats
    }

    /// The arguments.
    pub fn args(&self) -> &Values {
        &self.args
    }

    /// The format wanted for the result.
    pub fn result_format(&self) -> Format {
        self.result_format
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "FunctionCall");
        let function = r.u32("function OID")?;
        let arg_formats = FormatCodes::decode(&mut r, "FunctionCall", "argument formats")?;
        let n = r.u16("argument count")?;
        let args = Values::decode_counted(&mut r, n, "FunctionCall", "arguments")?;
        let code = r.i16("result format")?;
        let result_format = Format::from_code(code).ok_or(DecodeError::InvalidValue {
            message: "FunctionCall",
            field: "result format",
            value: code.into(),
        })?;
        r.finish()?;
        Ok(Self {
            function,
            arg_formats,
            args,
            result_format,
        })
    }
}

impl Encode for FunctionCall {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, tag::FUNCTION_CALL, self.encoded_len() - 5, |out| {
            out.put_u32(self.function);
            self.arg_formats.put(out);
            self.args.put(out);
            out.put_i16(self.result_format.code());
        });
    }

    fn encoded_len(&self) -> usize {
        5 + 4 + self.arg_formats.wire_len() + self.args.wire_len() + 2
    }
}

/// Every message a frontend can send, start-up packets included.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
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
    PasswordMessage(PasswordMessage),
    /// SASLInitialResponse (`p` answering AuthenticationSASL).
    SaslInitialResponse(SaslInitialResponse),
    /// SASLResponse (`p` answering AuthenticationSASLContinue).
    SaslResponse(SaslResponse),
    /// GSSResponse (`p` during GSSAPI or SSPI authentication).
    GssResponse(GssResponse),
    /// A `p` message decoded without knowing its kind.
    UntypedAuthResponse(UntypedAuthResponse),
    /// Query.
    Query(Query),
    /// Parse.
    Parse(Parse),
    /// Bind.
    Bind(Bind),
    /// Describe.
    Describe(Describe),
    /// Execute.
    Execute(Execute),
    /// Close.
    Close(Close),
    /// Sync.
    Sync,
    /// Flush.
    Flush,
    /// FunctionCall.
    FunctionCall(FunctionCall),
    /// CopyData.
    CopyData(CopyData),
    /// CopyDone.
    CopyDone,
    /// CopyFail.
    CopyFail(CopyFail),
    /// Terminate.
    Terminate,
}

impl FrontendMessage {
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

    /// Decodes a tagged frame's body. `auth` says which message a `p` frame is; with `None` it
    /// becomes [`FrontendMessage::UntypedAuthResponse`].
    ///
    /// Fails with [`DecodeError::UnknownTag`] for a type byte no frontend message has, or with
    /// the [`DecodeError`] of a body that does not decode as its message.
    pub fn decode(
        tag_byte: u8,
        body: &Bytes,
        auth: Option<AuthResponseKind>,
    ) -> Result<Self, DecodeError> {
        let empty_body = |message: &'static str, m: Self| empty_layout(body, message).map(|()| m);
        Ok(match tag_byte {
            tag::QUERY => Self::Query(Query::decode(body)?),
            tag::PARSE => Self::Parse(Parse::decode(body)?),
            tag::BIND => Self::Bind(Bind::decode(body)?),
            tag::DESCRIBE => Self::Describe(Describe::decode(body)?),
            tag::EXECUTE => Self::Execute(Execute::decode(body)?),
            tag::CLOSE => Self::Close(Close::decode(body)?),
            tag::SYNC => return empty_body("Sync", Self::Sync),
            tag::FLUSH => return empty_body("Flush", Self::Flush),
            tag::FUNCTION_CALL => Self::FunctionCall(FunctionCall::decode(body)?),
            tag::COPY_DATA => Self::CopyData(CopyData::decode(body)),
            tag::COPY_DONE => return empty_body("CopyDone", Self::CopyDone),
            tag::COPY_FAIL => Self::CopyFail(CopyFail::decode(body)?),
            tag::TERMINATE => return empty_body("Terminate", Self::Terminate),
            tag::PASSWORD => match auth {
                None => Self::UntypedAuthResponse(UntypedAuthResponse::decode(body)),
                Some(kind) => decode_auth(kind, body)?,
            },
            other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
        })
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

fn decode_auth(kind: AuthResponseKind, body: &Bytes) -> Result<FrontendMessage, DecodeError> {
    Ok(match kind {
        AuthResponseKind::Password => {
            FrontendMessage::PasswordMessage(PasswordMessage::decode(body)?)
        }
        AuthResponseKind::SaslInitial => {
            FrontendMessage::SaslInitialResponse(SaslInitialResponse::decode(body)?)
        }
        AuthResponseKind::Sasl => FrontendMessage::SaslResponse(SaslResponse::decode(body)),
        AuthResponseKind::Gss => FrontendMessage::GssResponse(GssResponse::decode(body)),
    })
}

impl Encode for FrontendMessage {
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
