//! Decoding a recorded protocol-2.0 connection, and the 3.x start-up a 2.0-only server refused.
//!
//! A client stream whose start-up packet (after any SSLRequest) carries version 2.x is a 2.0
//! connection. 2.0 has no length words, so the streams must interpret each other more than in
//! 3.0: after the client's start-up packets, the whole server stream is decoded first (its
//! decoder follows RowDescription and CopyOutResponse by itself), noting whether a password
//! was asked for and, for each request (each ReadyForQuery after the first), how many
//! CopyInResponses it got; then the rest of the client stream, which sends a PasswordPacket
//! when asked, and after each such request that many blocks of COPY data, each ended by `\.`.
//!
//! A 3.x StartupMessage answered by `E` and a text (no length word: the 2.0 error format, as a
//! server older than 7.4 answers, which makes libpq 13 fall back to 2.0) is decoded with the
//! client's packets as 3.x and the server's bytes as 2.0.

use std::io::Write;

use pgproto::v2::{
    Authentication as Auth2, BackendDecoder as Backend2, BackendMessage as B2,
    FrontendDecoder as Frontend2, FrontendMessage as F2,
};
use pgproto::{DecodeError, FrontendDecoder, FrontendMessage, SSL_REQUEST_CODE};

use crate::streams::{
    be32, hex, list, plural, quote, report, word, Message, Pull, Side, Stream, TEXT_MAX,
};

/// A connection in which protocol 2.0 speaks.
pub(crate) enum Legacy {
    /// A 2.0 session.
    V2 {
        client: Stream<F2>,
        server: Stream<B2>,
    },
    /// A 3.x start-up refused in 2.0's format.
    Refused {
        client: Stream<FrontendMessage<'static>>,
        server: Stream<B2>,
    },
}

impl Pull for Frontend2 {
    type Msg = F2;
    fn push(&mut self, data: &[u8]) {
        self.receive(data);
    }
    fn pull(&mut self) -> Result<Option<F2>, DecodeError> {
        self.next()
    }
    fn buffered(&self) -> usize {
        self.buffered_len()
    }
    fn frame_len(&self, rest: &[u8]) -> Option<u64> {
        // Only the start-up packets (and PasswordPacket) have a length word.
        if self.in_startup() {
            be32(rest).map(u64::from)
        } else {
            None
        }
    }
}

impl Pull for Backend2 {
    type Msg = B2;
    fn push(&mut self, data: &[u8]) {
        self.receive(data);
    }
    fn pull(&mut self) -> Result<Option<B2>, DecodeError> {
        self.next()
    }
    fn buffered(&self) -> usize {
        self.buffered_len()
    }
    fn frame_len(&self, _: &[u8]) -> Option<u64> {
        None
    }
}

/// The version codes of the client's start-up packets: how many SSLRequests come first, and
/// the code of the packet after them.
fn startup_codes(client: &[u8]) -> (usize, Option<u32>) {
    let mut at = 0;
    let mut ssl = 0;
    loop {
        let (Some(len), Some(code)) = (
            client.get(at..).and_then(be32),
            client.get(at + 4..).and_then(be32),
        ) else {
            return (ssl, None);
        };
        if code == SSL_REQUEST_CODE && len == 8 {
            ssl += 1;
            at += 8;
        } else {
            return (ssl, Some(code));
        }
    }
}

/// Decodes the connection if protocol 2.0 speaks in it; `None` for a 3.x connection.
pub(crate) fn decode(client: &[u8], server: &[u8]) -> Option<Legacy> {
    let (ssl, code) = startup_codes(client);
    match code? >> 16 {
        2 => Some(decode_v2(client, server)),
        3 => {
            // The answers to the SSLRequests (`N`: otherwise the rest is encrypted), then `E`
            // and an upper-case letter where a length word would be.
            let answers = server.get(..ssl)?;
            let rest = server.get(ssl..)?;
            let legacy = answers.iter().all(|&b| b == b'N')
                && rest.first() == Some(&b'E')
                && rest.get(1).is_some_and(u8::is_ascii_uppercase);
            legacy.then(|| refused(client, server))
        }
        _ => None,
    }
}

fn decode_v2(client: &[u8], server: &[u8]) -> Legacy {
    let mut c = Side::new(client, Frontend2::new());
    let mut s = Side::new(server, Backend2::new());
    // 1. The client's start-up packets, each SSLRequest answered from the server stream.
    let mut session = false;
    loop {
        match c.next() {
            Some(F2::SslRequest) => {
                s.dec.expect_ssl_response();
                if let Some(B2::SslResponse { accepted: true }) = s.next() {
                    c.encrypted("TLS");
                    s.encrypted("TLS");
                    break;
                }
            }
            Some(F2::Startup(_)) => {
                session = true;
                break;
            }
            _ => break,
        }
    }
    if session {
        // 2. The whole server stream.
        let mut password = false;
        let mut copies = Vec::new();
        let (mut ready, mut current) = (false, 0usize);
        while let Some(m) = s.next() {
            match m {
                B2::Authentication(
                    Auth2::CleartextPassword
                    | Auth2::CryptPassword { .. }
                    | Auth2::Md5Password { .. },
                ) => password = true,
                B2::CopyInResponse => current += 1,
                B2::ReadyForQuery => {
                    if ready {
                        copies.push(current);
                    }
                    ready = true;
                    current = 0;
                }
                _ => {}
            }
        }
        if current > 0 {
            copies.push(current);
        }
        // 3. The rest of the client stream.
        if password {
            c.dec.expect_password();
        }
        let mut request = 0;
        loop {
            match c.next() {
                None => break,
                Some(F2::Query(_) | F2::FunctionCall(_)) => {
                    for _ in 0..copies.get(request).copied().unwrap_or(0) {
                        c.dec.expect_copy_in();
                        while let Some(m) = c.next() {
                            if *m == F2::CopyDataEnd {
                                break;
                            }
                        }
                    }
                    request += 1;
                }
                Some(_) => {}
            }
        }
    } else {
        while s.next().is_some() {}
    }
    Legacy::V2 {
        client: c.stream,
        server: s.stream,
    }
}

fn refused(client: &[u8], server: &[u8]) -> Legacy {
    let mut c = Side::new(client, FrontendDecoder::new());
    let mut s = Side::new(server, Backend2::new());
    while let Some(m) = c.next() {
        if *m == FrontendMessage::SslRequest {
            s.dec.expect_ssl_response();
            s.next();
        }
    }
    while s.next().is_some() {}
    Legacy::Refused {
        client: c.stream,
        server: s.stream,
    }
}

impl Legacy {
    /// Lists both streams and reports on them, as `streams::run` does for 3.x; the exit status.
    pub(crate) fn run(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        client: &[u8],
        server: &[u8],
        check: bool,
        allow_truncated: bool,
    ) -> i32 {
        let _ = writeln!(
            err,
            "note: {}",
            match self {
                Self::V2 { .. } => "protocol 2.0 (a 2.0 StartupPacket)",
                Self::Refused { .. } => {
                    "a 3.x start-up refused with an error in protocol 2.0's format"
                }
            }
        );
        let (c, s, ok) = match self {
            Self::V2 {
                client: c,
                server: s,
            } => {
                list(out, 'C', c, &Default::default());
                list(out, 'S', s, &Default::default());
                let ok = report(err, "client", c, client, check, allow_truncated);
                (c.messages.len(), c.decoded_bytes(), ok)
            }
            Self::Refused {
                client: c,
                server: s,
            } => {
                list(out, 'C', c, &Default::default());
                list(out, 'S', s, &Default::default());
                let ok = report(err, "client", c, client, check, allow_truncated);
                (c.messages.len(), c.decoded_bytes(), ok)
            }
        };
        let server_stream = match self {
            Self::V2 { server, .. } | Self::Refused { server, .. } => server,
        };
        let _ = writeln!(
            out,
            "client: {c} messages, {s} bytes; server: {} messages, {} bytes",
            server_stream.messages.len(),
            server_stream.decoded_bytes()
        );
        let ok = ok & report(err, "server", server_stream, server, check, allow_truncated);
        i32::from(!ok)
    }
}

impl Message for F2 {
    fn name(&self) -> &'static str {
        Self::name(self)
    }

    fn detail(&self) -> String {
        match self {
            Self::Startup(p) => format!(
                "version {} database={} user={} options={}",
                p.version(),
                word(p.database(), TEXT_MAX),
                word(p.user(), 40),
                word(p.options(), TEXT_MAX)
            ),
            Self::CancelRequest(m) => format!(
                "pid {}, {}",
                m.process_id(),
                plural(m.secret_key().len(), "key byte", "key bytes")
            ),
            Self::Password(p) => {
                // Passwords are not shown; say what kind it is.
                let p = p.password();
                if p.len() == 35 && p.starts_with(b"md5") {
                    "MD5 hash".to_owned()
                } else {
                    format!("cleartext, {}", plural(p.len(), "byte", "bytes"))
                }
            }
            Self::Query(q) => quote(q.as_bytes(), TEXT_MAX),
            Self::FunctionCall(f) => {
                let args: Vec<String> = f
                    .args()
                    .take(6)
                    .map(|a| a.map_or_else(|| "NULL".to_owned(), |b| hex(b, 16)))
                    .collect();
                format!(
                    "function {}, {} ({})",
                    f.function_oid(),
                    plural(f.args().len(), "arg", "args"),
                    args.join(", ")
                )
            }
            Self::CopyDataRow(l) if l.is_last() => format!(
                "{} {}, the end marker follows on its line",
                plural(l.as_bytes().len(), "byte", "bytes"),
                quote(l.as_bytes(), TEXT_MAX)
            ),
            Self::CopyDataRow(l) => format!(
                "{} {}",
                plural(l.as_bytes().len(), "byte", "bytes"),
                quote(l.as_bytes(), TEXT_MAX)
            ),
            _ => String::new(),
        }
    }
}

impl Message for B2 {
    fn name(&self) -> &'static str {
        Self::name(self)
    }

    fn detail(&self) -> String {
        match self {
            Self::SslResponse { accepted: true } => "S (accepted)".to_owned(),
            Self::SslResponse { accepted: false } => "N (refused)".to_owned(),
            Self::Authentication(Auth2::Md5Password { salt }) => format!("salt {}", hex(salt, 4)),
            Self::Authentication(Auth2::CryptPassword { salt }) => format!("salt {}", hex(salt, 2)),
            Self::BackendKeyData(k) => format!("pid {}, 4 key bytes", k.process_id),
            Self::CursorResponse(t) => word(t.as_bytes(), TEXT_MAX),
            Self::CompletedResponse(t) => word(t.as_bytes(), TEXT_MAX),
            Self::ErrorResponse(t) | Self::NoticeResponse(t) => quote(t.as_bytes(), 80),
            Self::NotificationResponse(n) => format!(
                "pid {} channel {}",
                n.process_id,
                quote(n.channel.as_bytes(), TEXT_MAX)
            ),
            Self::RowDescription(d) => {
                let mut names: Vec<String> = d.fields().take(8).map(|f| word(f.name, 30)).collect();
                if d.len() > 8 {
                    names.push("...".to_owned());
                }
                let n = plural(d.len(), "field", "fields");
                if names.is_empty() {
                    n
                } else {
                    format!("{n}: {}", names.join(", "))
                }
            }
            Self::AsciiRow(r) => row(r.len(), r.columns(), |b| quote(b, 20)),
            Self::BinaryRow(r) => row(r.len(), r.columns(), |b| hex(b, 16)),
            Self::CopyDataRow(l) => format!(
                "{} {}",
                plural(l.as_bytes().len(), "byte", "bytes"),
                quote(l.as_bytes(), TEXT_MAX)
            ),
            Self::FunctionResultResponse(v) => format!(
                "{} {}",
                plural(v.as_bytes().len(), "byte", "bytes"),
                hex(v.as_bytes(), 16)
            ),
            _ => String::new(),
        }
    }
}

/// A row's first values, `NULL` for NULL.
fn row<'a>(
    len: usize,
    values: impl Iterator<Item = Option<&'a [u8]>>,
    show: impl Fn(&[u8]) -> String,
) -> String {
    let mut items: Vec<String> = values
        .take(6)
        .map(|v| v.map_or_else(|| "NULL".to_owned(), &show))
        .collect();
    if len > 6 {
        items.push("...".to_owned());
    }
    let cols = plural(len, "column", "columns");
    if items.is_empty() {
        cols
    } else {
        format!("{cols}: {}", items.join(", "))
    }
}
