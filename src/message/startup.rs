//! The untagged start-up packets a frontend sends first: StartupMessage, SSLRequest,
//! GSSENCRequest and CancelRequest. They carry no type byte; they are told apart by the 32-bit
//! code after the length word.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_body, check_cstr, put_cstr, Encode};
use crate::error::{DecodeError, EncodeError};
use crate::message::common::ProtocolVersion;

/// The CancelRequest code: 1234 in the high 16 bits, 5678 in the low.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// The SSLRequest code: 1234 in the high 16 bits, 5679 in the low.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// The GSSENCRequest code: 1234 in the high 16 bits, 5680 in the low.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// The shortest cancel key (and the only length in protocol 3.0).
pub const MIN_CANCEL_KEY_LEN: usize = 4;
/// The longest cancel key protocol 3.2 allows.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// StartupMessage: the protocol version and the session parameters (`user`, `database`,
/// `options`, `replication`, run-time parameters and `_pq_.` protocol options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    version: ProtocolVersion,
    params: Vec<(Bytes, Bytes)>,
}

impl StartupMessage {
    /// A StartupMessage for `version` with the parameters in order. Names must be non-empty;
    /// neither names nor values may contain NUL.
    ///
    /// Fails with [`EncodeError::OutOfRange`] for a major version other than 3 or an empty
    /// name, [`EncodeError::InteriorNul`] for a NUL, or [`EncodeError::TooLong`] when the
    /// packet would not fit its length word.
    ///
    /// ```
    /// use pgproto::{ProtocolVersion, StartupMessage};
    /// let m = StartupMessage::new(ProtocolVersion::V3_2, [("user", "alice"), ("database", "shop")]).unwrap();
    /// assert_eq!(m.param("user"), Some(&b"alice"[..]));
    /// ```
    pub fn new<K, V, I>(version: ProtocolVersion, params: I) -> Result<Self, EncodeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        I: IntoIterator<Item = (K, V)>,
    {
        if version.major != 3 {
            return Err(EncodeError::OutOfRange {
                field: "protocol version",
                reason: "a StartupMessage carries a 3.x version",
            });
        }
        let mut out = Vec::new();
        let mut len = 8 + 1;
        for (k, v) in params {
            let (k, v) = (k.as_ref(), v.as_ref());
            check_cstr("parameter name", k)?;
            check_cstr("parameter value", v)?;
            if k.is_empty() {
                return Err(EncodeError::OutOfRange {
                    field: "parameter name",
                    reason: "empty (an empty name ends the list)",
                });
            }
            len += k.len() + v.len() + 2;
            out.push((Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)));
        }
        check_body("StartupMessage", len)?;
        Ok(Self {
            version,
            params: out,
        })
    }

    /// A message of parameters known to be valid (no NUL, no empty name), for any version:
    /// how a [`Server`](crate::Server) reports a protocol-2.0 StartupPacket.
    pub(crate) fn from_parts(version: ProtocolVersion, params: Vec<(Bytes, Bytes)>) -> Self {
        Self { version, params }
    }

    /// The protocol version requested.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The parameters in the order sent.
    pub fn params(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.params.iter().map(|(k, v)| (&k[..], &v[..]))
    }

    /// The value of the parameter called `name`; if it is sent more than once, the last one,
    /// which is the one PostgreSQL uses (a proxy that authenticates one value and forwards the
    /// packet must not disagree with the server about who logs in).
    ///
    /// ```
    /// use pgproto::{ProtocolVersion, StartupMessage};
    /// let m = StartupMessage::new(ProtocolVersion::V3_0, [("user", "mallory"), ("user", "alice")])
    ///     .unwrap();
    /// assert_eq!(m.param("user"), Some(&b"alice"[..]));
    /// ```
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    /// The parameters whose names start with `_pq_.`: protocol options.
    pub fn protocol_options(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.params().filter(|(k, _)| k.starts_with(b"_pq_."))
    }

    pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "StartupMessage");
        r.take(8, "version")?;
        let mut params = Vec::new();
        loop {
            if r.remaining() == 0 {
                return Err(DecodeError::Truncated {
                    message: "StartupMessage",
                    field: "terminator",
                });
            }
            let name = r.cstr("parameter name")?;
            if name.is_empty() {
                break;
            }
            let value = r.cstr("parameter value")?;
            params.push((name, value));
        }
        r.finish()?;
        Ok(Self { version, params })
    }
}

impl Encode for StartupMessage {
    fn encode(&self, out: &mut BytesMut) {
        let len = self.encoded_len();
        out.reserve(len);
        out.put_i32(len as i32);
        out.put_u32(self.version.code());
        for (k, v) in &self.params {
            put_cstr(out, k);
            put_cstr(out, v);
        }
        out.put_u8(0);
    }

    fn encoded_len(&self) -> usize {
        8 + self
            .params
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
            + 1
    }
}

/// CancelRequest: asks the server to cancel the query running on another connection, identified
/// by its process ID and secret key (4 bytes in protocol 3.0, 4 to 256 bytes in 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    process_id: i32,
    secret_key: Bytes,
}

impl CancelRequest {
    /// A CancelRequest; the key must be 4 to 256 bytes long ([`EncodeError::OutOfRange`]
    /// otherwise).
    ///
    /// ```
    /// use pgproto::CancelRequest;
    /// assert!(CancelRequest::new(42, [1, 2, 3, 4]).is_ok());
    /// assert!(CancelRequest::new(42, [1, 2, 3]).is_err());
    /// ```
    pub fn new(process_id: i32, secret_key: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        let key = secret_key.as_ref();
        check_key(key)?;
        Ok(Self {
            process_id,
            secret_key: Bytes::copy_from_slice(key),
        })
    }

    /// The process ID of the backend to cancel.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// The secret key.
    pub fn secret_key(&self) -> &[u8] {
        &self.secret_key
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let key_len = body.len().saturating_sub(12);
        if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key_len) || body.len() < 12 {
            return Err(DecodeError::InvalidLength {
                message: "CancelRequest",
                len: body.len() as i64,
            });
        }
        let mut r = Reader::new(body, "CancelRequest");
        r.take(8, "code")?;
        let process_id = r.i32("process ID")?;
        let secret_key = r.rest();
        Ok(Self {
            process_id,
            secret_key,
        })
    }
}

impl Encode for CancelRequest {
    fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_i32(self.encoded_len() as i32);
        out.put_u32(CANCEL_REQUEST_CODE);
        out.put_i32(self.process_id);
        out.put_slice(&self.secret_key);
    }

    fn encoded_len(&self) -> usize {
        12 + self.secret_key.len()
    }
}

/// Checks a cancel key's length (4 to 256 bytes).
pub(crate) fn check_key(key: &[u8]) -> Result<(), EncodeError> {
    if (MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
        Ok(())
    } else {
        Err(EncodeError::OutOfRange {
            field: "secret key",
            reason: "must be 4 to 256 bytes",
        })
    }
}

/// A start-up packet whose code is neither a 3.x protocol version nor a known request: protocol
/// 2.0 or an unknown major version. The server answers it with an error; the body is kept so
/// that the packet re-encodes exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedStartup {
    version: ProtocolVersion,
    body: Bytes,
}

impl UnsupportedStartup {
    /// The version (or request code) the packet carries.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The bytes after the version word.
    pub fn body(&self) -> &[u8] {
        &self.body[8..]
    }

    pub(crate) fn decode(version: ProtocolVersion, body: Bytes) -> Self {
        Self { version, body }
    }

    /// A packet with `version` and the given bytes after the version word.
    ///
    /// `version` must not be a 3.x version or a request code (those are other packets):
    /// [`EncodeError::OutOfRange`] otherwise, and [`EncodeError::TooLong`] when `rest` does
    /// not fit the length word.
    pub fn new(version: ProtocolVersion, rest: &[u8]) -> Result<Self, EncodeError> {
        let code = version.code();
        if version.major == 3
            || code == CANCEL_REQUEST_CODE
            || code == SSL_REQUEST_CODE
            || code == GSSENC_REQUEST_CODE
        {
            return Err(EncodeError::OutOfRange {
                field: "protocol version",
                reason: "3.x versions and request codes are other start-up packets",
            });
        }
        check_body("start-up packet", rest.len() + 8)?;
        let mut b = BytesMut::with_capacity(8 + rest.len());
        b.put_i32((8 + rest.len()) as i32);
        b.put_u32(version.code());
        b.put_slice(rest);
        Ok(Self {
            version,
            body: b.freeze(),
        })
    }
}

impl Encode for UnsupportedStartup {
    fn encode(&self, out: &mut BytesMut) {
        out.put_i32(self.body.len() as i32);
        out.put_slice(&self.body[4..]);
    }

    fn encoded_len(&self) -> usize {
        self.body.len()
    }
}

/// Encodes an 8-byte request packet (SSLRequest, GSSENCRequest).
pub(crate) fn encode_request(out: &mut BytesMut, code: u32) {
    out.put_i32(8);
    out.put_u32(code);
}
