//! Decoding one recorded connection: the bytes a client sent and the bytes the server sent.
//!
//! The `inspect` example's decoding and listing (`main.rs` beside this file runs it). It uses
//! only the public API of `pgproto` and std.
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

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;

use bytes::BytesMut;
use pgproto::{
    AuthResponseKind, Authentication, BackendDecoder, BackendMessage, DecodeError, Encode,
    ErrorFields, Format, FormatCodes, FrontendDecoder, FrontendMessage, ProtocolVersion, Target,
    TransactionStatus, Values,
};

/// Bytes handed to a decoder at a time, as a network read would.
const CHUNK: usize = 64 * 1024;

/// Characters of text shown before a detail is cut.
pub(crate) const TEXT_MAX: usize = 60;

/// The first bytes of a TLS handshake record (content type 22, major version 3).
pub(crate) const TLS_RECORD: [u8; 2] = [0x16, 0x03];

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
pub(crate) trait Pull {
    type Msg;
    fn push(&mut self, data: &[u8]);
    fn pull(&mut self) -> Result<Option<Self::Msg>, DecodeError>;
    fn buffered(&self) -> usize;
    /// The full length of the frame starting at `rest`, if its header is there.
    fn frame_len(&self, rest: &[u8]) -> Option<u64>;
}

pub(crate) fn be32(b: &[u8]) -> Option<u32> {
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
pub(crate) struct Side<'a, D: Pull> {
    data: &'a [u8],
    fed: usize,
    pub(crate) dec: D,
    pub(crate) stream: Stream<D::Msg>,
    done: bool,
}

impl<'a, D: Pull> Side<'a, D> {
    pub(crate) fn new(data: &'a [u8], dec: D) -> Self {
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
    pub(crate) fn next_starts_with(&self, prefix: &[u8]) -> bool {
        let rest = self.data.get(self.offset()..).unwrap_or_default();
        !rest.is_empty() && rest.iter().zip(prefix).all(|(a, b)| a == b)
    }

    /// Decodes and records the next message; `None` once the stream has ended (see
    /// `stream.end` for how).
    pub(crate) fn next(&mut self) -> Option<&D::Msg> {
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
    pub(crate) fn encrypted(&mut self, what: &'static str) {
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

// ---------------------------------------------------------------------------------------------
// Short one-line descriptions

/// A decoded message of either direction: its documented name, a one-line detail, its bytes.
pub(crate) trait Message: Encode {
    /// The message's name as in the PostgreSQL documentation.
    fn name(&self) -> &'static str;
    /// A short description on one line, without control characters.
    fn detail(&self) -> String;
}

/// Whether a character must be escaped to keep the output on one line and unambiguous.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Appends `b` as escaped text, at most `max` characters; returns whether it was cut.
fn push_escaped(s: &mut String, b: &[u8], max: usize, quoted: bool) -> bool {
    let mut n = 0;
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if n == max {
                return true;
            }
            n += 1;
            match c {
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\\' => s.push_str("\\\\"),
                '"' if quoted => s.push_str("\\\""),
                c if c.is_ascii_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c if needs_escape(c) => {
                    let _ = write!(s, "\\u{{{:x}}}", c as u32);
                }
                c => s.push(c),
            }
        }
        for byte in chunk.invalid() {
            if n == max {
                return true;
            }
            n += 1;
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    false
}

/// `b` in double quotes, escaped, cut after `max` characters (then followed by `...`).
pub(crate) fn quote(b: &[u8], max: usize) -> String {
    let mut s = String::from("\"");
    let cut = push_escaped(&mut s, b, max, true);
    s.push('"');
    if cut {
        s.push_str("...");
    }
    s
}

/// `b` bare when it is a plain word, otherwise quoted.
pub(crate) fn word(b: &[u8], max: usize) -> String {
    let plain = !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\');
    if plain {
        String::from_utf8_lossy(b).into_owned()
    } else {
        quote(b, max)
    }
}

/// `b` escaped without quotes (free text at the end of a line).
pub(crate) fn bare(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    if push_escaped(&mut s, b, max, false) {
        s.push_str("...");
    }
    s
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `b` in hexadecimal, cut after `max` bytes (then followed by `...`).
pub(crate) fn hex(b: &[u8], max: usize) -> String {
    let mut s = String::from("0x");
    for byte in b.iter().take(max) {
        let _ = write!(s, "{byte:02x}");
    }
    if b.len() > max {
        s.push_str("...");
    }
    s
}

/// A list of values: the first few, each cut short; text ones quoted, binary ones in hex; NULL
/// for `None`.
fn values(v: Values<'_>, formats: FormatCodes<'_>) -> String {
    let mut items: Vec<String> = v
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, v)| match (v, formats.for_index(i)) {
            (None, _) => "NULL".to_owned(),
            (Some(b), Format::Text) => quote(b, 20),
            (Some(b), Format::Binary) => hex(b, 16),
        })
        .collect();
    if v.len() > 6 {
        items.push("...".to_owned());
    }
    items.join(", ")
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Text => "text",
        Format::Binary => "binary",
    }
}

fn formats(f: FormatCodes<'_>) -> String {
    f.iter().map(format_name).collect::<Vec<_>>().join(",")
}

fn target(t: Target, name: &[u8]) -> String {
    let what = match t {
        Target::Statement => "statement",
        Target::Portal => "portal",
    };
    format!("{what} {}", quote(name, TEXT_MAX))
}

fn fields_summary(f: &ErrorFields) -> String {
    let mut s = String::new();
    if let Some(sev) = f.severity_nonlocalized() {
        s.push_str(&word(sev, 20));
    }
    if let Some(code) = f.code() {
        s.push(' ');
        s.push_str(&word(code, 10));
    }
    if let Some(m) = f.message() {
        s.push(' ');
        s.push_str(&quote(m, 80));
    }
    s.trim_start().to_owned()
}

impl Message for FrontendMessage<'_> {
    fn name(&self) -> &'static str {
        Self::name(self)
    }

    fn detail(&self) -> String {
        match self {
            Self::Startup(m) => {
                let mut s = format!("version {}", m.version());
                for (k, v) in m.params() {
                    let _ = write!(s, " {}={}", word(k, 40), word(v, TEXT_MAX));
                }
                s
            }
            Self::CancelRequest(m) => format!(
                "pid {}, {}",
                m.process_id(),
                plural(m.secret_key().len(), "key byte", "key bytes")
            ),
            Self::UnsupportedStartup(m) => format!(
                "version {}, {}",
                m.version(),
                plural(m.body().len() + 8, "byte", "bytes")
            ),
            Self::PasswordMessage(m) => {
                // Passwords are not shown; say what kind it is.
                let p = m.password();
                if p.len() == 35 && p.starts_with(b"md5") {
                    "MD5 hash".to_owned()
                } else {
                    format!("cleartext, {}", plural(p.len(), "byte", "bytes"))
                }
            }
            Self::SaslInitialResponse(m) => match m.data() {
                Some(d) => format!("{} {}", word(m.mechanism(), 40), quote(d, TEXT_MAX)),
                None => format!("{}, no initial response", word(m.mechanism(), 40)),
            },
            Self::SaslResponse(m) => quote(m.data(), TEXT_MAX),
            Self::GssResponse(m) => plural(m.data().len(), "byte", "bytes"),
            Self::UntypedAuthResponse(m) => format!(
                "{}, answering no authentication request",
                plural(m.data().len(), "byte", "bytes")
            ),
            Self::Query(m) => quote(m.sql(), TEXT_MAX),
            Self::Parse(m) => {
                let mut s = format!(
                    "statement {} {}",
                    quote(m.name(), TEXT_MAX),
                    quote(m.query(), TEXT_MAX)
                );
                if m.param_types().len() > 0 {
                    let t: Vec<String> = m.param_types().map(|t| t.to_string()).collect();
                    let _ = write!(s, " types {}", t.join(","));
                }
                s
            }
            Self::Bind(m) => {
                let mut s = format!(
                    "portal {} statement {}, {}",
                    quote(m.portal(), TEXT_MAX),
                    quote(m.statement(), TEXT_MAX),
                    plural(m.params().len(), "param", "params")
                );
                if !m.params().is_empty() {
                    let _ = write!(s, " ({})", values(m.params(), m.param_formats()));
                }
                if !m.param_formats().is_empty() {
                    let _ = write!(s, ", param formats {}", formats(m.param_formats()));
                }
                if !m.result_formats().is_empty() {
                    let _ = write!(s, ", result formats {}", formats(m.result_formats()));
                }
                s
            }
            Self::Describe(m) => target(m.target(), m.name()),
            Self::Close(m) => target(m.target(), m.name()),
            Self::Execute(m) => match m.max_rows() {
                0 => format!("portal {}, all rows", quote(m.portal(), TEXT_MAX)),
                n => format!("portal {}, at most {n} rows", quote(m.portal(), TEXT_MAX)),
            },
            Self::FunctionCall(m) => {
                let mut s = format!(
                    "function {}, {}",
                    m.function(),
                    plural(m.args().len(), "arg", "args")
                );
                if !m.args().is_empty() {
                    let _ = write!(s, " ({})", values(m.args(), m.arg_formats()));
                }
                let _ = write!(s, ", result {}", format_name(m.result_format()));
                s
            }
            Self::CopyData(m) => format!(
                "{} {}",
                plural(m.data().len(), "byte", "bytes"),
                quote(m.data(), TEXT_MAX)
            ),
            Self::CopyFail(m) => quote(m.message(), TEXT_MAX),
            _ => String::new(),
        }
    }
}

impl Message for BackendMessage<'_> {
    fn name(&self) -> &'static str {
        Self::name(self)
    }

    fn detail(&self) -> String {
        match self {
            Self::SslResponse { accepted: true } => "S (accepted)".to_owned(),
            Self::SslResponse { accepted: false } => "N (refused)".to_owned(),
            Self::GssEncResponse { accepted: true } => "G (accepted)".to_owned(),
            Self::GssEncResponse { accepted: false } => "N (refused)".to_owned(),
            Self::Authentication(a) => match a {
                Authentication::Md5Password { salt } => format!(
                    "salt {:02x}{:02x}{:02x}{:02x}",
                    salt[0], salt[1], salt[2], salt[3]
                ),
                Authentication::Sasl(m) => {
                    let names: Vec<String> = m.iter().map(|n| word(n, 40)).collect();
                    format!("mechanisms {}", names.join(","))
                }
                Authentication::SaslContinue(d) | Authentication::SaslFinal(d) => {
                    quote(d, TEXT_MAX)
                }
                Authentication::GssContinue(d) => plural(d.len(), "byte", "bytes"),
                _ => String::new(),
            },
            Self::BackendKeyData(m) => format!(
                "pid {}, {}",
                m.process_id(),
                plural(m.secret_key().len(), "key byte", "key bytes")
            ),
            Self::CommandComplete(m) => bare(m.tag(), TEXT_MAX),
            Self::CopyData(m) => format!(
                "{} {}",
                plural(m.data().len(), "byte", "bytes"),
                quote(m.data(), TEXT_MAX)
            ),
            Self::CopyInResponse(m) | Self::CopyOutResponse(m) | Self::CopyBothResponse(m) => {
                let mut s = format!(
                    "{}, {}",
                    format_name(m.format()),
                    plural(m.column_formats().len(), "column", "columns")
                );
                if m.column_formats().iter().any(|f| f != m.format()) {
                    let _ = write!(s, " ({})", formats(m.column_formats()));
                }
                s
            }
            Self::DataRow(m) => {
                let mut items: Vec<String> = m
                    .columns()
                    .take(6)
                    .map_while(Result::ok) // checked when decoded
                    .map(|v| v.map_or_else(|| "NULL".to_owned(), |b| quote(b, 20)))
                    .collect();
                if m.len() > 6 {
                    items.push("...".to_owned());
                }
                let cols = plural(m.len(), "column", "columns");
                if items.is_empty() {
                    cols
                } else {
                    format!("{cols}: {}", items.join(", "))
                }
            }
            Self::ErrorResponse(f) | Self::NoticeResponse(f) => fields_summary(f),
            Self::FunctionCallResponse(v) => match v {
                None => "NULL".to_owned(),
                Some(b) => format!("{} {}", plural(b.len(), "byte", "bytes"), quote(b, 20)),
            },
            Self::NegotiateProtocolVersion(m) => {
                let mut s = format!("newest version {}", m.newest_version());
                if m.unrecognized_count() > 0 {
                    let names: Vec<String> = m.unrecognized().map(|o| word(o, 40)).collect();
                    let _ = write!(s, ", unrecognized {}", names.join(","));
                }
                s
            }
            Self::NotificationResponse(m) => format!(
                "pid {} channel {} payload {}",
                m.process_id(),
                quote(m.channel(), TEXT_MAX),
                quote(m.payload(), TEXT_MAX)
            ),
            Self::ParameterDescription(m) => {
                let t: Vec<String> = m.types().map(|t| t.to_string()).collect();
                let n = plural(t.len(), "param", "params");
                if t.is_empty() {
                    n
                } else {
                    format!("{n}, type oids {}", t.join(","))
                }
            }
            Self::ParameterStatus(m) => {
                format!("{}={}", word(m.name(), 40), word(m.value(), TEXT_MAX))
            }
            Self::ReadyForQuery(t) => match t {
                TransactionStatus::Idle => "I (idle)",
                TransactionStatus::InTransaction => "T (in transaction)",
                TransactionStatus::Failed => "E (failed transaction)",
            }
            .to_owned(),
            Self::RowDescription(m) => {
                let mut names: Vec<String> = m.fields().take(8).map(|f| word(f.name, 30)).collect();
                if m.len() > 8 {
                    names.push("...".to_owned());
                }
                let n = plural(m.len(), "field", "fields");
                if names.is_empty() {
                    n
                } else {
                    format!("{n}: {}", names.join(", "))
                }
            }
            _ => String::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command line

/// The usage line.
pub(crate) const USAGE: &str =
    "usage: inspect [--check] [--allow-truncated] [--trace] CLIENT_STREAM SERVER_STREAM";

/// Runs the `inspect` command line with `args` (without the program name), writing the listing
/// to `out` and diagnostics to `err`. Returns the exit status: 0 success, 1 a stream that does
/// not decode (or re-encode), 2 bad usage or an unreadable file.
pub(crate) fn run(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut check = false;
    let mut allow_truncated = false;
    let mut trace = false;
    let mut paths = Vec::new();
    let mut flags_done = false;
    for a in args {
        match a.to_str() {
            Some("--check") if !flags_done => check = true,
            Some("--allow-truncated") if !flags_done => allow_truncated = true,
            Some("--trace") if !flags_done => trace = true,
            Some("--help" | "-h") if !flags_done => {
                let _ = writeln!(out, "{USAGE}");
                return 0;
            }
            Some("--") if !flags_done => flags_done = true,
            Some(f) if !flags_done && f.starts_with('-') && f.len() > 1 => {
                let _ = writeln!(err, "inspect: unknown option {f}\n{USAGE}");
                return 2;
            }
            _ => paths.push(a),
        }
    }
    let [client_path, server_path] = paths[..] else {
        let _ = writeln!(
            err,
            "inspect: expected two files, got {}\n{USAGE}",
            paths.len()
        );
        return 2;
    };
    let read = |p: &OsString, err: &mut dyn Write| match std::fs::read(p) {
        Ok(b) => Some(b),
        Err(e) => {
            let _ = writeln!(err, "inspect: cannot read {}: {e}", p.to_string_lossy());
            None
        }
    };
    let (Some(client), Some(server)) = (read(client_path, err), read(server_path, err)) else {
        return 2;
    };

    // Protocol 2.0 (a 2.0 StartupPacket), or a 3.x start-up a 2.0 server refused.
    if let Some(legacy) = crate::v2::decode(&client, &server) {
        return legacy.run(out, err, &client, &server, check, allow_truncated);
    }
    let conn = decode(&client, &server);
    if trace {
        crate::trace::print(out, &conn, &client, &server);
        let mut ok = report(err, "client", &conn.client, &client, check, allow_truncated);
        ok &= report(err, "server", &conn.server, &server, check, allow_truncated);
        return i32::from(!ok);
    }
    let nested = crate::replication::nested(&conn, check);
    // Write errors on stdout (a closed pipe) are ignored: the exit status still tells.
    list(out, 'C', &conn.client, &nested.client);
    list(out, 'S', &conn.server, &nested.server);
    let _ = writeln!(
        out,
        "client: {} messages, {} bytes; server: {} messages, {} bytes",
        conn.client.messages.len(),
        conn.client.decoded_bytes(),
        conn.server.messages.len(),
        conn.server.decoded_bytes()
    );

    let mut ok = report(err, "client", &conn.client, &client, check, allow_truncated);
    ok &= report(err, "server", &conn.server, &server, check, allow_truncated);
    for (side, offset, reason) in &nested.errors {
        let _ = writeln!(err, "error: {side} stream at offset {offset}: {reason}");
        ok = false;
    }
    i32::from(!ok)
}

/// Prints one line per message, and after a CopyData the lines of the replication messages
/// inside it (`nested`, by message index).
pub(crate) fn list<M: Message>(
    out: &mut dyn Write,
    side: char,
    stream: &Stream<M>,
    nested: &std::collections::HashMap<usize, Vec<String>>,
) {
    for (i, d) in stream.messages.iter().enumerate() {
        let detail = d.message.detail();
        let _ = if detail.is_empty() {
            writeln!(out, "{side} {} {}", d.offset, d.message.name())
        } else {
            writeln!(out, "{side} {} {} {detail}", d.offset, d.message.name())
        };
        for line in nested.get(&i).into_iter().flatten() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Reports how a stream ended and, with `check`, whether it re-encodes; returns whether it is
/// acceptable.
pub(crate) fn report<M: Message>(
    err: &mut dyn Write,
    side: &str,
    stream: &Stream<M>,
    data: &[u8],
    check: bool,
    allow_truncated: bool,
) -> bool {
    let mut ok = true;
    if check {
        if let Err((offset, reason)) = stream.check(data) {
            let _ = writeln!(err, "error: {side} stream at offset {offset}: {reason}");
            ok = false;
        }
    }
    match &stream.end {
        End::Complete => {}
        End::Encrypted { offset, what } => {
            let _ = writeln!(
                err,
                "note: {side} stream: {what} begins at offset {offset}; the remaining {} bytes \
                 are encrypted and not decoded",
                stream.len - offset
            );
        }
        End::Truncated { offset, have, need } => {
            let size = match need {
                Some(n) => format!("{have} of {n} bytes present"),
                None => format!("only {have} bytes present, the length word is incomplete"),
            };
            if allow_truncated {
                let _ = writeln!(
                    err,
                    "note: {side} stream at offset {offset}: the final message is cut off by the \
                     end of the file ({size}); ignored (--allow-truncated)"
                );
            } else {
                let _ = writeln!(
                    err,
                    "error: {side} stream at offset {offset}: the final message is cut off by \
                     the end of the file ({size})"
                );
                ok = false;
            }
        }
        End::Error { offset, reason } => {
            let _ = writeln!(err, "error: {side} stream at offset {offset}: {reason}");
            ok = false;
        }
    }
    ok
}
