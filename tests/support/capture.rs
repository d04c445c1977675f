//! Decoding one recorded connection for `tests/codec_captures.rs`: the bytes a client sent and the
//! bytes the server sent.
//!
//! The test's own copy of the decoding half of the `inspect` example (`examples/inspect/`),
//! without the one-line descriptions; the example itself is tested as a process. It uses only
//! the public API of `pgproto` and std.
//!
//! # How the two streams interpret each other
//!
//! Some bytes cannot be decoded from their own stream alone:
//!
//! - The server answers SSLRequest with a single byte `S` or `N`, and GSSENCRequest with `G` or
//!   `N`. Every SSLRequest and GSSENCRequest in the client's start-up packets makes the server
//!   decoder expect that byte ([`BackendDecoder::expect_ssl_response`],
//!   [`BackendDecoder::expect_gssenc_response`]). A server that does not understand the request
//!   may answer with an ErrorResponse instead, which is decoded as such.
//! - A `p` message is a PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse
//!   depending on what the server asked for: the k-th `p` answers the k-th Authentication request
//!   that expects an answer (CleartextPassword and MD5Password: PasswordMessage; SASL:
//!   SASLInitialResponse; SASLContinue: SASLResponse; GSS, SSPI and GSSContinue: GSSResponse).
//!   A `p` with no such request is decoded as an untyped authentication response.
//! - BackendKeyData's key length depends on the protocol version: the StartupMessage's version,
//!   lowered by a NegotiateProtocolVersion if the server sends one.
//!
//! So decoding goes in three steps: the client's start-up packets (asking the server stream for
//! the answer to each SSLRequest and GSSENCRequest as it comes), then the whole server stream,
//! then the rest of the client stream with the authentication requests collected.
//!
//! # Encryption
//!
//! When the server accepts SSLRequest (`S`) or GSSENCRequest (`G`), everything after the
//! request in the client stream and after the answer in the server stream is encrypted. Decoding
//! stops there, successfully, with [`End::Encrypted`]. The same holds for a client that starts a
//! TLS handshake directly (PostgreSQL 17's `sslnegotiation=direct`): a TLS handshake record
//! (bytes `0x16 0x03`) where a start-up packet should begin. No start-up packet can begin with
//! those bytes, because its length would exceed every start-up packet limit.

// Each user of this shared file uses a different part of it.
#![allow(dead_code)]

use bytes::BytesMut;
use pgproto::{
    AuthResponseKind, Authentication, BackendDecoder, BackendMessage, DecodeError, Encode,
    FrontendDecoder, FrontendMessage, ProtocolVersion,
};

/// Bytes handed to a decoder at a time, as a network read would.
const CHUNK: usize = 64 * 1024;

/// Characters of text shown before a detail is cut.
const TEXT_MAX: usize = 60;

/// The first bytes of a TLS handshake record (content type 22, major version 3).
const TLS_RECORD: [u8; 2] = [0x16, 0x03];

/// One decoded message and where its bytes are in the file.
#[derive(Debug, Clone)]
pub(crate) struct Decoded<M> {
    /// The offset of the message's first byte in the file.
    pub(crate) offset: usize,
    /// The message's length on the wire, type byte and length word included.
    pub(crate) len: usize,
    /// The message.
    pub(crate) message: M,
}

/// How a stream's decoding ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte was decoded.
    Complete,
    /// Encryption begins at `offset`; the bytes from there on were not decoded.
    Encrypted {
        /// The offset of the first encrypted byte.
        offset: usize,
        /// `"TLS"` or `"GSSAPI encryption"`.
        what: &'static str,
    },
    /// The file ends inside the message that starts at `offset`.
    Truncated {
        /// The offset of the cut-off message.
        offset: usize,
        /// The bytes of it present.
        have: usize,
        /// Its full length, when the length word is present.
        need: Option<u64>,
    },
    /// The bytes at `offset` do not decode.
    Error {
        /// The offset of the message that failed.
        offset: usize,
        /// Why.
        reason: String,
    },
}

/// The decoded messages of one direction of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Stream<M> {
    /// The messages in order.
    pub(crate) messages: Vec<Decoded<M>>,
    /// How decoding ended.
    pub(crate) end: End,
    /// The length of the file.
    pub(crate) len: usize,
}

impl<M: Message> Stream<M> {
    /// The bytes of the decoded messages (the whole file when decoding was complete).
    pub(crate) fn decoded_bytes(&self) -> usize {
        self.messages.iter().map(|d| d.len).sum()
    }

    /// Re-encodes every message and compares the bytes with `data`, the file this stream was
    /// decoded from. Returns the offset of the first message that differs, and how.
    pub(crate) fn check(&self, data: &[u8]) -> Result<(), (usize, String)> {
        let mut out = BytesMut::new();
        for d in &self.messages {
            out.clear();
            d.message.encode(&mut out);
            let name = d.message.name();
            let original = data.get(d.offset..d.offset + d.len).unwrap_or_default();
            if out[..] != *original {
                let at = out
                    .iter()
                    .zip(original)
                    .position(|(a, b)| a != b)
                    .unwrap_or(out.len().min(original.len()));
                return Err((
                    d.offset,
                    format!(
                        "re-encoded {name} differs from the original: {} bytes instead of {}, \
                         first difference at byte {at}",
                        out.len(),
                        original.len()
                    ),
                ));
            }
            if d.message.encoded_len() != out.len() {
                return Err((
                    d.offset,
                    format!(
                        "{name}: encoded_len() says {} but encode() wrote {} bytes",
                        d.message.encoded_len(),
                        out.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Both directions of one connection, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// What the client sent.
    pub(crate) client: Stream<FrontendMessage<'static>>,
    /// What the server sent.
    pub(crate) server: Stream<BackendMessage<'static>>,
    /// The version the StartupMessage asked for, if there was one.
    pub(crate) requested_version: Option<ProtocolVersion>,
    /// The version in force at the end: the requested one, or the one NegotiateProtocolVersion
    /// lowered it to.
    pub(crate) version: ProtocolVersion,
}

/// What the two decoders have in common, for [`Side`].
trait Pull {
    type Msg;
    fn push(&mut self, data: &[u8]);
    fn pull(&mut self) -> Result<Option<Self::Msg>, DecodeError>;
    fn buffered(&self) -> usize;
    /// The full length of the frame starting at `rest`, if its header is there.
    fn frame_len(&self, rest: &[u8]) -> Option<u64>;
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

impl Pull for FrontendDecoder {
    type Msg = FrontendMessage<'static>;
    fn push(&mut self, data: &[u8]) {
        self.receive(data);
    }
    fn pull(&mut self) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
        self.next()
    }
    fn buffered(&self) -> usize {
        self.buffered_len()
    }
    fn frame_len(&self, rest: &[u8]) -> Option<u64> {
        if self.in_startup() {
            be32(rest).map(u64::from)
        } else {
            be32(rest.get(1..)?).map(|n| u64::from(n) + 1)
        }
    }
}

impl Pull for BackendDecoder {
    type Msg = BackendMessage<'static>;
    fn push(&mut self, data: &[u8]) {
        self.receive(data);
    }
    fn pull(&mut self) -> Result<Option<BackendMessage<'static>>, DecodeError> {
        let m = self.next()?;
        // A DataRow's values are checked as they are read: read them all, so that a damaged
        // row is a decoding failure like any other.
        if let Some(BackendMessage::DataRow(row)) = &m {
            row.columns().try_for_each(|c| c.map(drop))?;
        }
        Ok(m)
    }
    fn buffered(&self) -> usize {
        self.buffered_len()
    }
    fn frame_len(&self, rest: &[u8]) -> Option<u64> {
        be32(rest.get(1..)?).map(|n| u64::from(n) + 1)
    }
}

/// One direction being decoded: the file, its decoder, and what came out so far.
struct Side<'a, D: Pull> {
    data: &'a [u8],
    fed: usize,
    dec: D,
    stream: Stream<D::Msg>,
    done: bool,
}

impl<'a, D: Pull> Side<'a, D> {
    fn new(data: &'a [u8], dec: D) -> Self {
        Self {
            data,
            fed: 0,
            dec,
            stream: Stream {
                messages: Vec::new(),
                end: End::Complete,
                len: data.len(),
            },
            done: false,
        }
    }

    /// The offset of the next undecoded byte.
    fn offset(&self) -> usize {
        self.fed - self.dec.buffered()
    }

    /// Whether the undecoded bytes start with `prefix` (at least one byte of it, if the file
    /// ends first).
    fn next_starts_with(&self, prefix: &[u8]) -> bool {
        let rest = self.data.get(self.offset()..).unwrap_or_default();
        !rest.is_empty() && rest.iter().zip(prefix).all(|(a, b)| a == b)
    }

    /// Decodes and records the next message; `None` once the stream has ended (see
    /// `stream.end` for how).
    fn next(&mut self) -> Option<&D::Msg> {
        if self.done {
            return None;
        }
        loop {
            let offset = self.offset();
            match self.dec.pull() {
                Ok(Some(message)) => {
                    let len = self.offset() - offset;
                    self.stream.messages.push(Decoded {
                        offset,
                        len,
                        message,
                    });
                    return self.stream.messages.last().map(|d| &d.message);
                }
                Ok(None) if self.fed < self.data.len() => {
                    let end = self.data.len().min(self.fed + CHUNK);
                    self.dec.push(&self.data[self.fed..end]);
                    self.fed = end;
                }
                Ok(None) => {
                    self.done = true;
                    let have = self.dec.buffered();
                    if have > 0 {
                        self.stream.end = End::Truncated {
                            offset,
                            have,
                            need: self.dec.frame_len(&self.data[offset..]),
                        };
                    }
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    self.stream.end = End::Error {
                        offset,
                        reason: e.to_string(),
                    };
                    return None;
                }
            }
        }
    }

    /// Ends the stream at the next undecoded byte: what follows is encrypted.
    fn encrypted(&mut self, what: &'static str) {
        if !self.done {
            self.done = true;
            self.stream.end = End::Encrypted {
                offset: self.offset(),
                what,
            };
        }
    }
}

/// Which `p` message answers an authentication request, if the request expects one.
pub(crate) fn response_kind(a: &Authentication) -> Option<AuthResponseKind> {
    match a {
        Authentication::CleartextPassword | Authentication::Md5Password { .. } => {
            Some(AuthResponseKind::Password)
        }
        Authentication::Sasl(_) => Some(AuthResponseKind::SaslInitial),
        Authentication::SaslContinue(_) => Some(AuthResponseKind::Sasl),
        Authentication::Gss | Authentication::Sspi | Authentication::GssContinue(_) => {
            Some(AuthResponseKind::Gss)
        }
        _ => None,
    }
}

/// Decodes both directions of one connection. Never panics: bytes that do not decode end their
/// stream with [`End::Error`].
pub(crate) fn decode(client: &[u8], server: &[u8]) -> Connection {
    let mut c = Side::new(client, FrontendDecoder::new());
    let mut s = Side::new(server, BackendDecoder::new());
    let mut requested_version = None;

    // 1. The client's start-up packets. Each SSLRequest or GSSENCRequest is answered from the
    //    server stream before the next packet, since an accepted one means encryption follows.
    while c.dec.in_startup() && !c.done {
        if c.next_starts_with(&TLS_RECORD) {
            // A direct TLS handshake instead of a start-up packet. The server answers with its
            // own handshake, unless it does not support direct TLS.
            c.encrypted("TLS");
            if s.next_starts_with(&TLS_RECORD) {
                s.encrypted("TLS");
            }
            break;
        }
        let ssl = match c.next() {
            None => break,
            Some(FrontendMessage::SslRequest) => true,
            Some(FrontendMessage::GssEncRequest) => false,
            Some(FrontendMessage::Startup(m)) => {
                requested_version = Some(m.version());
                continue;
            }
            Some(_) => continue,
        };
        if ssl {
            s.dec.expect_ssl_response();
        } else {
            s.dec.expect_gssenc_response();
        }
        let accepted = matches!(
            s.next(),
            Some(
                BackendMessage::SslResponse { accepted: true }
                    | BackendMessage::GssEncResponse { accepted: true }
            )
        );
        if accepted {
            let what = if ssl { "TLS" } else { "GSSAPI encryption" };
            c.encrypted(what);
            s.encrypted(what);
        }
    }

    // 2. The whole server stream, following the protocol version and collecting the
    //    authentication requests that expect an answer.
    let mut version = requested_version.unwrap_or(ProtocolVersion::V3_0);
    s.dec.set_protocol_version(version);
    let mut auth = Vec::new();
    loop {
        let lowered = match s.next() {
            None => break,
            Some(BackendMessage::Authentication(a)) => {
                auth.extend(response_kind(a));
                None
            }
            Some(BackendMessage::NegotiateProtocolVersion(n)) => {
                let offered = n.newest_version();
                (offered.major == version.major && offered.minor < version.minor).then_some(offered)
            }
            Some(_) => None,
        };
        if let Some(v) = lowered {
            version = v;
            s.dec.set_protocol_version(version);
        }
    }

    // 3. The rest of the client stream, each `p` typed by the request it answers.
    let mut answered = 0;
    loop {
        c.dec.expect_auth_response(auth.get(answered).copied());
        match c.next() {
            None => break,
            Some(m) if m.tag() == Some(b'p') => answered += 1,
            Some(_) => {}
        }
    }

    Connection {
        client: c.stream,
        server: s.stream,
        requested_version,
        version,
    }
}

/// A decoded message of either direction.
pub(crate) trait Message: Encode {
    /// The message's name as in the PostgreSQL documentation.
    fn name(&self) -> &'static str;
}

impl Message for FrontendMessage<'_> {
    fn name(&self) -> &'static str {
        Self::name(self)
    }
}

impl Message for BackendMessage<'_> {
    fn name(&self) -> &'static str {
        Self::name(self)
    }
}
