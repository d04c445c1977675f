//! Raw protocol bytes for differential tests (`tests/live_differential.rs`): frontend messages
//! built by hand (so they can be malformed on purpose), a blocking connection that may switch to
//! TLS (rustls, no certificate check), and a reader that turns whatever the server answers into
//! a comparable summary.
//!
//! The summary keeps what the protocol fixes and drops what may differ between two correct
//! servers: message types; the severity and SQLSTATE of ErrorResponse and NoticeResponse; the
//! single byte answering SSLRequest and GSSENCRequest; the version and option names of
//! NegotiateProtocolVersion; the cancel key's length; the authentication request code; the
//! transaction status of ReadyForQuery; column counts of RowDescription, DataRow, COPY
//! responses and parameter counts of ParameterDescription; the command tag's first word; and
//! whether the server closed the connection. A run of ParameterStatus messages counts as one
//! (servers report different parameters), and message texts, parameter values and key bytes
//! are ignored.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

// ---------------------------------------------------------------------------------------------
// Frontend messages, by hand
// ---------------------------------------------------------------------------------------------

/// A tagged message: `tag`, a length word counting itself, `body`.
pub(crate) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An untagged start-up packet: a length word counting itself, `body`.
pub(crate) fn packet(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32 + 4).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// `s` with its NUL.
pub(crate) fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// SSLRequest.
pub(crate) fn ssl_request() -> Vec<u8> {
    packet(&80_877_103i32.to_be_bytes())
}

/// GSSENCRequest.
pub(crate) fn gss_request() -> Vec<u8> {
    packet(&80_877_104i32.to_be_bytes())
}

/// CancelRequest for `pid` with `key` (any length, so malformed ones too).
pub(crate) fn cancel_request(pid: i32, key: &[u8]) -> Vec<u8> {
    let mut body = 80_877_102i32.to_be_bytes().to_vec();
    body.extend_from_slice(&pid.to_be_bytes());
    body.extend_from_slice(key);
    packet(&body)
}

/// StartupMessage for protocol `major.minor` with `params` (key, value pairs).
pub(crate) fn startup(major: u16, minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = major.to_be_bytes().to_vec();
    body.extend_from_slice(&minor.to_be_bytes());
    for (k, v) in params {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    packet(&body)
}

/// Query.
pub(crate) fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

/// Parse of `sql` as statement `name` with parameter type OIDs `types`.
pub(crate) fn parse(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    msg(b'P', &body)
}

/// Bind of statement `stmt` to portal `portal` with text parameters, text results.
pub(crate) fn bind(portal: &str, stmt: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(cstr(stmt));
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    msg(b'B', &body)
}

/// Execute of `portal`, at most `max_rows` rows (0: all).
pub(crate) fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    msg(b'E', &body)
}

/// Describe of a statement (`b'S'`) or portal (`b'P'`).
pub(crate) fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    msg(b'D', &body)
}

/// Close of a statement (`b'S'`) or portal (`b'P'`).
pub(crate) fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    msg(b'C', &body)
}

/// Sync.
pub(crate) fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

/// Flush.
pub(crate) fn flush() -> Vec<u8> {
    msg(b'H', &[])
}

/// Terminate.
pub(crate) fn terminate() -> Vec<u8> {
    msg(b'X', &[])
}

/// CopyData.
pub(crate) fn copy_data(data: &[u8]) -> Vec<u8> {
    msg(b'd', data)
}

/// CopyDone.
pub(crate) fn copy_done() -> Vec<u8> {
    msg(b'c', &[])
}

/// CopyFail.
pub(crate) fn copy_fail(reason: &str) -> Vec<u8> {
    msg(b'f', &cstr(reason))
}

/// The bytes of a real TLS ClientHello (what a client sends first in a handshake).
pub(crate) fn client_hello() -> Vec<u8> {
    let mut conn = ClientConnection::new(tls_config(), server_name()).expect("rustls client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write ClientHello");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// TLS without certificate checks (the servers under test use throwaway certificates)
// ---------------------------------------------------------------------------------------------

fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut config = super::any_cert::client_config();
    // PostgreSQL's ALPN name, which direct TLS requires.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Arc::new(config)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

// ---------------------------------------------------------------------------------------------
// The connection and the answer summary
// ---------------------------------------------------------------------------------------------

/// How long to wait for more bytes after a ReadyForQuery or a CopyInResponse (the server is then
/// waiting for us), and otherwise.
const QUIET_AFTER_READY: Duration = Duration::from_millis(150);
const QUIET_OTHERWISE: Duration = Duration::from_millis(1500);

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// A connection under test, and the summary of what it received so far.
pub(crate) struct Wire {
    stream: Stream,
    buf: Vec<u8>,
    closed: bool,
    /// The summary: one token per message or event.
    pub(crate) tokens: Vec<String>,
}

impl Wire {
    /// Connects to `addr`.
    pub(crate) fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        tcp.set_nodelay(true).expect("nodelay");
        Self {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            closed: false,
            tokens: Vec::new(),
        }
    }

    /// Writes `bytes` in one write (a write to a closed connection is recorded, not fatal).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        };
        if r.is_err() {
            self.note("<write failed>");
        }
    }

    /// Runs a TLS handshake on the connection (after an `S`, or first thing for direct TLS).
    pub(crate) fn start_tls(&mut self) {
        let Stream::Plain(tcp) = &self.stream else {
            panic!("TLS twice");
        };
        let mut tcp = tcp.try_clone().expect("clone socket");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut conn = ClientConnection::new(tls_config(), server_name()).expect("rustls client");
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                self.note("<TLS handshake failed>");
                self.closed = true;
                return;
            }
        }
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        self.stream = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
        self.note(&format!(
            "<TLS, ALPN {}>",
            alpn.map_or("none".into(), |a| String::from_utf8_lossy(&a).into_owned())
        ));
    }

    fn note(&mut self, token: &str) {
        self.tokens.push(token.to_string());
    }

    /// One read with `timeout`: `Some(n)` bytes (0 at end of stream), `None` on timeout.
    fn read_some(&mut self, timeout: Duration) -> Option<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let r = match &mut self.stream {
            Stream::Plain(s) => {
                s.set_read_timeout(Some(timeout)).expect("timeout");
                s.read(&mut chunk)
            }
            Stream::Tls(s) => {
                s.sock.set_read_timeout(Some(timeout)).expect("timeout");
                s.read(&mut chunk)
            }
        };
        match r {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            // Reset, or TLS without close_notify: the server is gone all the same.
            Err(_) => Some(0),
        }
    }

    /// Reads the one-byte answer to SSLRequest or GSSENCRequest; anything else is read as
    /// messages.
    pub(crate) fn answer_byte(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.buf.is_empty() && !self.closed {
            match self.read_some(Duration::from_millis(200)) {
                Some(0) => self.closed = true,
                Some(_) => {}
                None if Instant::now() > deadline => {
                    self.note("<no answer>");
                    return;
                }
                None => {}
            }
        }
        match self.buf.first() {
            Some(&b @ (b'S' | b'N' | b'G')) => {
                self.buf.remove(0);
                self.note(&format!("answer '{}'", b as char));
            }
            Some(_) => self.answer(),
            None => self.note("<closed>"),
        }
    }

    /// Reads messages until the server closes, or has been quiet for a while.
    pub(crate) fn answer(&mut self) {
        loop {
            while let Some(token) = self.next_message() {
                let parameter_run = token == "ParameterStatus*"
                    && self.tokens.last().is_some_and(|t| t == "ParameterStatus*");
                if !parameter_run {
                    self.tokens.push(token);
                }
            }
            if self.closed {
                if !self.buf.is_empty() {
                    let n = self.buf.len();
                    self.buf.clear();
                    self.note(&format!("<{n} stray bytes>"));
                }
                self.note("<closed>");
                return;
            }
            let waiting = self
                .tokens
                .last()
                .is_some_and(|t| t.starts_with("ReadyForQuery") || t.starts_with("CopyIn"));
            let quiet = if waiting {
                QUIET_AFTER_READY
            } else {
                QUIET_OTHERWISE
            };
            match self.read_some(quiet) {
                Some(0) => self.closed = true,
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Whether the server has closed the connection (as far as we have read).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next whole message in the buffer, summarised.
    fn next_message(&mut self) -> Option<String> {
        let tag = *self.buf.first()?;
        if self.buf.len() < 5 {
            return None;
        }
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        // Protocol 2.0's error format: 'E', text, NUL, without a length word.
        if tag == b'E' && self.buf[1].is_ascii_uppercase() {
            let end = self.buf.iter().position(|&b| b == 0)?;
            self.buf.drain(..=end);
            return Some("ErrorResponse(protocol 2.0 format)".into());
        }
        if len < 4 {
            let n = self.buf.len();
            self.buf.clear();
            return Some(format!("<garbage: {n} bytes>"));
        }
        let total = 1 + len as usize;
        if self.buf.len() < total {
            return None;
        }
        let frame: Vec<u8> = self.buf.drain(..total).collect();
        Some(summarise(tag, &frame[5..]))
    }
}

fn i16_at(b: &[u8], at: usize) -> i64 {
    b.get(at..at + 2)
        .map_or(-1, |s| i64::from(i16::from_be_bytes([s[0], s[1]])))
}

fn i32_at(b: &[u8], at: usize) -> i64 {
    b.get(at..at + 4).map_or(-1, |s| {
        i64::from(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    })
}

/// The NUL-terminated strings of `b`.
fn strings(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Severity (the untranslated `V` field, else `S`) and SQLSTATE of an error or notice body.
fn fields(body: &[u8]) -> String {
    let (mut severity, mut localized, mut code) = (None, None, None);
    for field in body.split(|&c| c == 0) {
        let Some((&kind, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'V' => severity = Some(value),
            b'S' => localized = Some(value),
            b'C' => code = Some(value),
            _ => {}
        }
    }
    format!(
        "{} {}",
        severity.or(localized).unwrap_or_default(),
        code.unwrap_or_default()
    )
}

fn summarise(tag: u8, body: &[u8]) -> String {
    match tag {
        b'R' => format!("Authentication({})", i32_at(body, 0)),
        b'S' => "ParameterStatus*".into(),
        b'K' => format!("BackendKeyData(key {} bytes)", body.len().saturating_sub(4)),
        b'Z' => format!(
            "ReadyForQuery({})",
            body.first().map_or('?', |&b| b as char)
        ),
        b'E' => format!("ErrorResponse({})", fields(body)),
        b'N' => format!("NoticeResponse({})", fields(body)),
        b'v' => {
            let version = i32_at(body, 0);
            let names = strings(body.get(8..).unwrap_or(&[]));
            let names: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            format!(
                "NegotiateProtocolVersion({}.{}, {} options {names:?})",
                version >> 16,
                version & 0xffff,
                i32_at(body, 4)
            )
        }
        b'T' => format!("RowDescription({} columns)", i16_at(body, 0)),
        b'D' => format!("DataRow({} columns)", i16_at(body, 0)),
        b't' => format!("ParameterDescription({} parameters)", i16_at(body, 0)),
        b'C' => {
            let tag = strings(body).into_iter().next().unwrap_or_default();
            let word = tag.split(' ').next().unwrap_or_default().to_string();
            format!("CommandComplete({word})")
        }
        b'G' | b'H' | b'W' => {
            let name = match tag {
                b'G' => "CopyInResponse",
                b'H' => "CopyOutResponse",
                _ => "CopyBothResponse",
            };
            format!(
                "{name}(format {}, {} columns)",
                body.first().copied().unwrap_or(9),
                i16_at(body, 1)
            )
        }
        b'd' => "CopyData".into(),
        b'c' => "CopyDone".into(),
        b'1' => "ParseComplete".into(),
        b'2' => "BindComplete".into(),
        b'3' => "CloseComplete".into(),
        b'n' => "NoData".into(),
        b's' => "PortalSuspended".into(),
        b'I' => "EmptyQueryResponse".into(),
        b'A' => "NotificationResponse".into(),
        b'V' => "FunctionCallResponse".into(),
        other => format!("<message {:?}>", other as char),
    }
}
