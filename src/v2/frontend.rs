//! The messages a protocol-2.0 frontend sends: the start-up packets (a length word first, as in
//! 3.0), the PasswordPacket (the same), and the query-phase messages (a type byte, no length
//! word).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_cstr, check_value_len, Encode};
use crate::error::{DecodeError, EncodeError, Tag};
use crate::message::common::ProtocolVersion;
use crate::message::startup::{encode_request, CancelRequest, SSL_REQUEST_CODE};
use crate::v2::backend::put_text;
use crate::v2::common::{CopyLine, Text, COPY_END};

/// Type bytes of protocol-2.0 frontend messages.
pub mod tag {
    /// Query.
    pub const QUERY: u8 = b'Q';
    /// FunctionCall.
    pub const FUNCTION_CALL: u8 = b'F';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';
}

/// The name of the message a type byte starts, for error reports.
pub(crate) fn name(t: u8) -> &'static str {
    match t {
        tag::QUERY => "Query",
        tag::FUNCTION_CALL => "FunctionCall",
        tag::TERMINATE => "Terminate",
        _ => "message",
    }
}

/// The length of a StartupPacket, its length word included.
pub const STARTUP_PACKET_LEN: usize = 296;

/// The fixed-size string fields of a StartupPacket: name, offset after the version word, size.
const FIELDS: [(&str, usize, usize); 5] = [
    ("database", 0, 64),
    ("user", 64, 32),
    ("options", 96, 64),
    ("unused", 160, 64),
    ("tty", 224, 64),
];

/// StartupPacket, protocol 2.0: 296 bytes (the length word, the version, then the database,
/// user, options, unused and tty fields, each a fixed-size string: NUL-padded, without a NUL
/// when it fills its field).
///
/// The fields are kept as sent, padding included, so a packet re-encodes byte for byte.
///
/// ```
/// use pgproto::v2::StartupPacket;
/// use pgproto::{Encode, ProtocolVersion};
///
/// let p = StartupPacket::new(ProtocolVersion::V2_0, "shop", "alice", "").unwrap();
/// assert_eq!(p.user(), b"alice");
/// assert_eq!(p.database(), b"shop");
/// assert_eq!(p.encoded_len(), 296);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupPacket {
    version: ProtocolVersion,
    /// The 288 bytes after the version word.
    fields: Bytes,
}

impl StartupPacket {
    /// A packet for `version` (2.x) with the database (empty: the server uses the user name),
    /// user and backend options; the unused and tty fields are empty.
    ///
    /// Fails with [`EncodeError::OutOfRange`] for a version whose major is not 2 or a field
    /// longer than its size (database 64, user 32, options 64 bytes), or
    /// [`EncodeError::InteriorNul`] for a NUL.
    pub fn new(
        version: ProtocolVersion,
        database: impl AsRef<[u8]>,
        user: impl AsRef<[u8]>,
        options: impl AsRef<[u8]>,
    ) -> Result<Self, EncodeError> {
        if version.major != 2 {
            return Err(EncodeError::OutOfRange {
                field: "protocol version",
                reason: "a StartupPacket carries a 2.x version",
            });
        }
        let mut fields = BytesMut::zeroed(STARTUP_PACKET_LEN - 8);
        for (i, value) in [database.as_ref(), user.as_ref(), options.as_ref()]
            .into_iter()
            .enumerate()
        {
            let (field, at, size) = FIELDS[i];
            check_cstr(field, value)?;
            if value.len() > size {
                return Err(EncodeError::OutOfRange {
                    field,
                    reason: "longer than its fixed-size field",
                });
            }
            fields[at..at + value.len()].copy_from_slice(value);
        }
        Ok(Self {
            version,
            fields: fields.freeze(),
        })
    }

    /// The protocol version requested.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    fn field(&self, i: usize) -> &[u8] {
        let (_, at, size) = FIELDS[i];
        let f = self.fields.get(at..at + size).unwrap_or_default();
        &f[..memchr::memchr(0, f).unwrap_or(f.len())]
    }

    /// The database name (empty: the user name is used).
    pub fn database(&self) -> &[u8] {
        self.field(0)
    }

    /// The user name.
    pub fn user(&self) -> &[u8] {
        self.field(1)
    }

    /// Command-line options for the backend.
    pub fn options(&self) -> &[u8] {
        self.field(2)
    }

    /// The unused field.
    pub fn unused(&self) -> &[u8] {
        self.field(3)
    }

    /// The debugging tty (ignored by servers).
    pub fn tty(&self) -> &[u8] {
        self.field(4)
    }

    /// A packet read as PostgreSQL 7.4 to 13 read one: the bytes after the version word,
    /// zero-filled when the packet is short and cut when it is long (the decoder, by contrast,
    /// wants the 296 bytes the 2.0 documentation gives).
    pub(crate) fn lenient(version: ProtocolVersion, rest: &[u8]) -> Self {
        let mut fields = BytesMut::zeroed(STARTUP_PACKET_LEN - 8);
        let n = rest.len().min(fields.len());
        fields[..n].copy_from_slice(&rest[..n]);
        Self {
            version,
            fields: fields.freeze(),
        }
    }

    /// Decodes a whole start-up packet (length word included) whose code is a 2.x version.
    pub(crate) fn decode(packet: &Bytes) -> Result<Self, DecodeError> {
        if packet.len() != STARTUP_PACKET_LEN {
            return Err(DecodeError::InvalidLength {
                message: "StartupPacket",
                len: packet.len() as i64,
            });
        }
        let mut r = Reader::new(packet, "StartupPacket");
        r.take(4, "length")?;
        let version = ProtocolVersion::from_code(r.u32("version")?);
        let fields = r.rest();
        Ok(Self { version, fields })
    }
}

impl Encode for StartupPacket {
    fn encode(&self, out: &mut BytesMut) {
        out.reserve(STARTUP_PACKET_LEN);
        out.put_i32(STARTUP_PACKET_LEN as i32);
        out.put_u32(self.version.code());
        out.put_slice(&self.fields);
    }

    fn encoded_len(&self) -> usize {
        STARTUP_PACKET_LEN
    }
}

/// PasswordPacket: a length word, then the password (cleartext, or encrypted as the
/// authentication request asked) and its NUL.
///
/// ```
/// use pgproto::v2::PasswordPacket;
/// use pgproto::Encode;
/// use bytes::BytesMut;
///
/// let mut out = BytesMut::new();
/// PasswordPacket::new("secret").unwrap().encode(&mut out);
/// assert_eq!(&out[..], b"\0\0\0\x0bsecret\0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPacket(Text);

impl PasswordPacket {
    /// A PasswordPacket; fails with [`EncodeError::InteriorNul`] for a NUL.
    pub fn new(password: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        Text::new(password).map(Self)
    }

    /// The password as sent.
    pub fn password(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Decodes a whole packet, length word included.
    pub(crate) fn decode(packet: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(packet, "PasswordPacket");
        r.take(4, "length")?;
        let p = r.cstr("password")?;
        r.finish()?;
        Ok(Self(Text::from_checked(p)))
    }
}

impl Encode for PasswordPacket {
    fn encode(&self, out: &mut BytesMut) {
        out.put_i32(self.encoded_len() as i32);
        put_text(out, &self.0);
    }

    fn encoded_len(&self) -> usize {
        4 + self.0.wire_len()
    }
}

/// FunctionCall (`F`), 2.0 layout: an unused string, the function's OID, an Int32 argument
/// count, and each argument as an Int32 length (not counting itself) and its bytes, in binary
/// format. PostgreSQL 7.4 to 13 read a length of -1 as NULL.
///
/// ```
/// use pgproto::v2::FunctionCall;
///
/// let f = FunctionCall::new(1317, &[Some(&b"abcd"[..])]).unwrap();
/// assert_eq!(f.function_oid(), 1317);
/// assert_eq!(f.args().collect::<Vec<_>>(), [Some(&b"abcd"[..])]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    unused: Text,
    function_oid: u32,
    args: Vec<Option<Bytes>>,
}

impl FunctionCall {
    /// A call of function `function_oid` with `args` (`None`: NULL); the unused string is
    /// empty, as libpq sends it.
    ///
    /// Fails with [`EncodeError::TooMany`] for more than `i32::MAX` arguments or
    /// [`EncodeError::OutOfRange`] for one too long for its Int32 length.
    pub fn new(function_oid: u32, args: &[Option<&[u8]>]) -> Result<Self, EncodeError> {
        if args.len() > i32::MAX as usize {
            return Err(EncodeError::TooMany {
                field: "arguments",
                count: args.len(),
                max: i32::MAX as usize,
            });
        }
        for a in args.iter().flatten() {
            check_value_len("argument", a.len())?;
        }
        Ok(Self {
            unused: Text::default(),
            function_oid,
            args: args.iter().map(|a| a.map(Bytes::copy_from_slice)).collect(),
        })
    }

    /// The function's OID.
    pub fn function_oid(&self) -> u32 {
        self.function_oid
    }

    /// The arguments, `None` for NULL.
    pub fn args(&self) -> impl ExactSizeIterator<Item = Option<&[u8]>> {
        self.args.iter().map(|a| a.as_deref())
    }

    /// The unused string (libpq sends it empty).
    pub fn unused(&self) -> &[u8] {
        self.unused.as_bytes()
    }

    fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "FunctionCall");
        let unused = Text::from_checked(r.cstr("unused string")?);
        let function_oid = r.u32("function OID")?;
        let n = r.i32("argument count")?;
        let count = usize::try_from(n).map_err(|_| DecodeError::InvalidCount {
            message: "FunctionCall",
            field: "argument count",
            count: n.into(),
        })?;
        r.ensure_count(count, 4, "argument count")?;
        let mut args = Vec::with_capacity(count);
        for _ in 0..count {
            args.push(r.nullable("argument")?);
        }
        r.finish()?;
        Ok(Self {
            unused,
            function_oid,
            args,
        })
    }

    fn body_len(&self) -> usize {
        self.unused.wire_len()
            + 8
            + self
                .args
                .iter()
                .map(|a| 4 + a.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }
}

/// A message a protocol-2.0 frontend sends.
///
/// ```
/// use bytes::BytesMut;
/// use pgproto::v2::{FrontendMessage, Text};
/// use pgproto::Encode;
///
/// let mut out = BytesMut::new();
/// FrontendMessage::Query(Text::new("SELECT 1").unwrap()).encode(&mut out);
/// FrontendMessage::Terminate.encode(&mut out);
/// assert_eq!(&out[..], b"QSELECT 1\0X");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// The StartupPacket.
    Startup(StartupPacket),
    /// SSLRequest (the same 8 bytes as in 3.0).
    SslRequest,
    /// CancelRequest (the same 16 bytes as in 3.0: the key is 4 bytes).
    CancelRequest(CancelRequest),
    /// PasswordPacket, in answer to an authentication request.
    Password(PasswordPacket),
    /// Query (`Q`): one or more SQL statements.
    Query(Text),
    /// FunctionCall (`F`).
    FunctionCall(FunctionCall),
    /// One row of the CopyDataRows stream after CopyInResponse.
    CopyDataRow(CopyLine),
    /// The line `\.` that ends the CopyDataRows stream.
    CopyDataEnd,
    /// Terminate (`X`).
    Terminate,
}

impl FrontendMessage {
    /// The message's name as in the 2.0 documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Startup(_) => "StartupPacket",
            Self::SslRequest => "SSLRequest",
            Self::CancelRequest(_) => "CancelRequest",
            Self::Password(_) => "PasswordPacket",
            Self::Query(_) => "Query",
            Self::FunctionCall(_) => "FunctionCall",
            Self::CopyDataRow(_) => "CopyDataRows",
            Self::CopyDataEnd => "CopyDataRows end marker",
            Self::Terminate => "Terminate",
        }
    }

    /// Decodes a tagged message whose bytes after the type byte are `body`.
    pub(crate) fn decode(tag: u8, body: &Bytes) -> Result<Self, DecodeError> {
        Ok(match tag {
            tag::QUERY => {
                let mut r = Reader::new(body, "Query");
                let q = r.cstr("query string")?;
                r.finish()?;
                Self::Query(Text::from_checked(q))
            }
            tag::FUNCTION_CALL => Self::FunctionCall(FunctionCall::decode(body)?),
            tag::TERMINATE => {
                Reader::new(body, "Terminate").finish()?;
                Self::Terminate
            }
            other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
        })
    }
}

impl Encode for FrontendMessage {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Startup(p) => p.encode(out),
            Self::SslRequest => encode_request(out, SSL_REQUEST_CODE),
            Self::CancelRequest(c) => c.encode(out),
            Self::Password(p) => p.encode(out),
            Self::Query(q) => {
                out.reserve(1 + q.wire_len());
                out.put_u8(tag::QUERY);
                put_text(out, q);
            }
            Self::FunctionCall(f) => {
                out.reserve(1 + f.body_len());
                out.put_u8(tag::FUNCTION_CALL);
                put_text(out, &f.unused);
                out.put_u32(f.function_oid);
                // INVARIANT: FunctionCall::new checked both counts and lengths against i32.
                out.put_i32(f.args.len() as i32);
                for a in &f.args {
                    match a {
                        Some(v) => {
                            out.put_i32(v.len() as i32);
                            out.put_slice(v);
                        }
                        None => out.put_i32(-1),
                    }
                }
            }
            Self::CopyDataRow(l) => out.put_slice(l.as_bytes()),
            Self::CopyDataEnd => out.put_slice(COPY_END),
            Self::Terminate => out.put_u8(tag::TERMINATE),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Startup(p) => p.encoded_len(),
            Self::SslRequest => 8,
            Self::CancelRequest(c) => c.encoded_len(),
            Self::Password(p) => p.encoded_len(),
            Self::Query(q) => 1 + q.wire_len(),
            Self::FunctionCall(f) => 1 + f.body_len(),
            Self::CopyDataRow(l) => l.as_bytes().len(),
            Self::CopyDataEnd => COPY_END.len(),
            Self::Terminate => 1,
        }
    }
}
