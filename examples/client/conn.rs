//! The connection: the [`Client`] state machine, its socket, and the run loop.
//!
//! [`Conn::pump`] is the run loop of the crate's documentation, and the only place that calls
//! [`Client::poll_event`]: after every input and every command, drain the events until there
//! are none, then drain [`Client::poll_transmit`] and write. Everything else here reads the
//! socket when the queue of events runs dry and folds the events into results.
//!
//! Notices are written as they arrive (through a small buffer, flushed before every read of
//! the socket and before a statement's results are printed), never kept. After Terminate the
//! connection waits at most [`TERMINATE_WAIT`] for the server to close. An ErrorResponse
//! during start-up longer than libpq's 30,000 bytes, which the state machine (as libpq) takes
//! for a protocol-2.0 error, is read again here as a 3.0 ErrorResponse and shown, up to
//! [`STARTUP_CAPTURE`] bytes of it.
//!
//! Limitations: one host (no lists), no Unix sockets, no GSSAPI, no client certificates, no
//! environment variables (`PGHOST`...), and writes are blocking, so a pipeline whose answers
//! exceed the socket buffers while requests are still being written could stall (until the
//! socket timeout); a few hundred statements are far below that.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use pgproto::trace::Tracer;
use pgproto::{
    AuthMethod, BackendMessage, Bind, Client, ClientEvent, RequestId, Target, UsageError,
};

use super::conninfo::{ConnInfo, DEFAULT_TIMEOUT};

/// How long the connection waits for the server to close after Terminate, at most.
pub(crate) const TERMINATE_WAIT: Duration = Duration::from_secs(1);

/// The bytes received during start-up that are kept, at most, to show an ErrorResponse that
/// the state machine took for a protocol-2.0 error.
pub(crate) const STARTUP_CAPTURE: usize = 64 * 1024;
use super::results::{
    io_err, DriverError, Notification, Outcome, ServerError, Statement, StatementResult,
};
use super::tls::{is_disconnect, is_timeout, Stream, TlsSetup};

fn open_tcp(info: &ConnInfo, timeout: Duration) -> Result<(TcpStream, SocketAddr), DriverError> {
    let addrs: Vec<SocketAddr> = (info.host.as_str(), info.port)
        .to_socket_addrs()
        .map_err(io_err("cannot resolve host"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, info.connect_timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(io_err("set_nodelay"))?;
                tcp.set_read_timeout(Some(timeout))
                    .map_err(io_err("set_read_timeout"))?;
                tcp.set_write_timeout(Some(timeout))
                    .map_err(io_err("set_write_timeout"))?;
                return Ok((tcp, addr));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DriverError::Io {
        context: "cannot connect to the server",
        source: last.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
    })
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// A connection: the [`Client`] state machine and its socket.
pub(crate) struct Conn {
    client: Client,
    stream: Stream,
    info: ConnInfo,
    tls: Option<TlsSetup>,
    addr: SocketAddr,
    events: VecDeque<ClientEvent>,
    error: Option<pgproto::Error>,
    fatal: Option<ServerError>,
    eof: bool,
    write_broken: bool,
    terminated: bool,
    wbuf: Vec<u8>,
    rbuf: Box<[u8]>,
    notices: io::BufWriter<Box<dyn Write>>,
    /// What start-up received, up to [`STARTUP_CAPTURE`] bytes (`None` once connected).
    startup_bytes: Option<Vec<u8>>,
    notifications: Vec<Notification>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Connects with a libpq keyword/value connection string, tracing the connection's messages
/// with `tracer` if there is one; notices are written to `notices` as they arrive.
pub(crate) fn connect(
    conninfo: &str,
    tracer: Option<Tracer>,
    notices: Box<dyn Write>,
) -> Result<Conn, DriverError> {
    Conn::connect(ConnInfo::parse(conninfo)?, tracer, notices)
}

impl Conn {
    /// Connects and runs the start-up to ReadyForQuery; `tracer` sees every message from the
    /// first start-up packet on.
    pub(crate) fn connect(
        info: ConnInfo,
        tracer: Option<Tracer>,
        notices: Box<dyn Write>,
    ) -> Result<Self, DriverError> {
        let mut client = Client::new(info.client_config())?;
        if let Some(t) = tracer {
            client.set_tracer(t);
        }
        let tls = TlsSetup::new(&info)?;
        let (tcp, addr) = open_tcp(&info, DEFAULT_TIMEOUT)?;
        let mut conn = Self {
            client,
            stream: Stream::Plain(tcp),
            tls,
            addr,
            events: VecDeque::new(),
            error: None,
            fatal: None,
            eof: false,
            write_broken: false,
            terminated: false,
            wbuf: Vec::new(),
            rbuf: vec![0; 64 * 1024].into_boxed_slice(),
            notices: io::BufWriter::new(notices),
            startup_bytes: Some(Vec::new()),
            notifications: Vec::new(),
            info,
        };
        if conn.info.direct_tls {
            conn.start_tls(true)?;
        }
        conn.pump()?;
        loop {
            let event = match conn.next_event() {
                Ok(e) => e,
                Err(DriverError::Protocol(pgproto::Error::LegacyServer { message })) => {
                    return Err(conn.long_startup_error().unwrap_or(DriverError::Protocol(
                        pgproto::Error::LegacyServer { message },
                    )))
                }
                Err(e) => return Err(e),
            };
            match event {
                ClientEvent::SslResponse { accepted: true } => conn.start_tls(false)?,
                // A server that speaks only protocol 2.0 refused the 3.x start-up: a new
                // connection, as libpq 13 did.
                ClientEvent::FallbackToV2 { .. } => conn.reconnect()?,
                ClientEvent::AuthenticationRequest(a) => {
                    return Err(DriverError::UnsupportedAuth(format!("{a:?}")))
                }
                ClientEvent::Notice(n) => conn.notice(&ServerError::from_fields(&n)),
                ClientEvent::Connected { .. } => {
                    conn.startup_bytes = None;
                    conn.flush_notices();
                    return Ok(conn);
                }
                _ => {}
            }
        }
    }

    /// Drops the connection and opens a new one to the same address, for the fallback to
    /// protocol 2.0.
    fn reconnect(&mut self) -> Result<(), DriverError> {
        let (tcp, addr) = open_tcp(&self.info, DEFAULT_TIMEOUT)?;
        self.stream = Stream::Plain(tcp);
        self.addr = addr;
        self.eof = false;
        self.write_broken = false;
        self.wbuf.clear();
        self.client.reconnected()?;
        self.pump()
    }

    /// The ErrorResponse behind a "protocol 2.0" error during start-up, if the bytes are a
    /// 3.0 ErrorResponse after all (a length word libpq finds too long, over 30,000, but one
    /// that a 3.0 message may have), read up to [`STARTUP_CAPTURE`] bytes and shown.
    fn long_startup_error(&mut self) -> Option<DriverError> {
        let mut seen = self.startup_bytes.take()?;
        let start = seen.iter().position(|&b| b == b'E')?;
        seen.drain(..start);
        let len = u32::from_be_bytes(seen.get(1..5)?.try_into().ok()?) as usize;
        let plausible = (8..=0x3fff_ffff).contains(&len)
            && seen
                .get(5)
                .is_some_and(|c| b"SVCMDHPpqWsctdnFLR".contains(c));
        if !plausible {
            return None;
        }
        // The rest of the message, up to the cap (the socket timeout bounds the wait).
        let want = (1 + len).min(STARTUP_CAPTURE);
        while seen.len() < want {
            let room = (want - seen.len()).min(self.rbuf.len());
            match self.stream.read(&mut self.rbuf[..room]) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&self.rbuf[..n]),
            }
        }
        let end = seen.len().min(1 + len);
        let cut = end < 1 + len;
        ServerError::from_body(&seen[5..end], cut).map(DriverError::Server)
    }

    /// Writes a notice (or an error the server sent outside any request).
    fn notice(&mut self, n: &ServerError) {
        let _ = writeln!(self.notices, "{}:  {}", n.severity, n.message);
    }

    /// Writes out the notices written so far.
    pub(crate) fn flush_notices(&mut self) {
        let _ = self.notices.flush();
    }

    /// The TLS handshake, then `tls_established` with the channel-binding hash.
    fn start_tls(&mut self, direct: bool) -> Result<(), DriverError> {
        if let Some(e) = &self.error {
            return Err(DriverError::Protocol(e.clone()));
        }
        let setup = self
            .tls
            .clone()
            .ok_or_else(|| DriverError::Tls("TLS requested without a TLS setup".into()))?;
        self.flush()?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(DriverError::Tls("TLS started twice".into()));
        };
        let tls = setup.handshake(tcp, direct)?;
        let hash = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| pgproto::auth::tls_server_end_point(c).ok());
        self.stream = Stream::Tls(Box::new(tls));
        self.client.tls_established(hash)?;
        self.pump()
    }

    // ---- access ----

    /// Takes the notifications received so far.
    pub(crate) fn take_notifications(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.notifications)
    }

    /// The lines `--verbose` prints once connected.
    pub(crate) fn verbose_lines(&self) -> Vec<String> {
        let auth = self.client.auth_method().unwrap_or(AuthMethod::None);
        vec![
            format!("protocol {}", self.client.protocol_version()),
            format!("auth {}", auth.name()),
            format!("tls {}", if self.client.is_tls() { "on" } else { "off" }),
            format!(
                "cancel key {} bytes",
                self.client
                    .backend_key()
                    .map_or(0, |k| k.secret_key().len())
            ),
        ]
    }

    // ---- the run loop ----

    /// Drains the state machine's events into the queue, then its bytes into the write buffer
    /// (written out when it grows large, or before the next read). Call after every command.
    pub(crate) fn pump(&mut self) -> Result<(), DriverError> {
        if self.error.is_none() {
            loop {
                match self.client.poll_event() {
                    Ok(Some(e)) => self.events.push_back(e.into_owned()),
                    Ok(None) => break,
                    Err(e) => {
                        self.error = Some(e);
                        break;
                    }
                }
            }
        }
        while let Some(b) = self.client.poll_transmit() {
            self.wbuf.extend_from_slice(&b);
        }
        if self.wbuf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered bytes. A server that went away is not an error here: its last
    /// words (a FATAL error, then end of file) are read next.
    pub(crate) fn flush(&mut self) -> Result<(), DriverError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.write_broken || self.eof {
            self.wbuf.clear();
            return Ok(());
        }
        let r = self
            .stream
            .write_all(&self.wbuf)
            .and_then(|()| self.stream.flush());
        self.wbuf.clear();
        match r {
            Ok(()) => Ok(()),
            Err(e) if is_disconnect(&e) => {
                self.write_broken = true;
                Ok(())
            }
            Err(e) if is_timeout(&e) => Err(DriverError::Timeout),
            Err(e) => Err(DriverError::Io {
                context: "write to server",
                source: e,
            }),
        }
    }

    /// Reads once from the socket and feeds the state machine.
    fn read_some(&mut self) -> Result<(), DriverError> {
        self.flush_notices();
        let n = match self.stream.read(&mut self.rbuf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) if is_disconnect(&e) => 0,
            Err(e) if is_timeout(&e) => return Err(DriverError::Timeout),
            Err(e) => {
                return Err(DriverError::Io {
                    context: "read from server",
                    source: e,
                })
            }
        };
        if n == 0 {
            self.eof = true;
            self.client.receive_eof();
        } else {
            if let Some(seen) = &mut self.startup_bytes {
                let room = STARTUP_CAPTURE.saturating_sub(seen.len()).min(n);
                seen.extend_from_slice(&self.rbuf[..room]);
            }
            self.client.receive(&self.rbuf[..n]);
        }
        self.pump()
    }

    fn fail(&self, e: &pgproto::Error) -> DriverError {
        match (e, &self.fatal) {
            (pgproto::Error::UnexpectedEof { .. }, Some(f)) => DriverError::Server(f.clone()),
            _ => DriverError::Protocol(e.clone()),
        }
    }

    /// The next event, reading from the server as needed.
    pub(crate) fn next_event(&mut self) -> Result<ClientEvent, DriverError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                if let ClientEvent::Response {
                    message: BackendMessage::ErrorResponse(f),
                    ..
                }
                | ClientEvent::UnsolicitedError(f) = &e
                {
                    let err = ServerError::from_fields(f);
                    if err.is_fatal() {
                        self.fatal = Some(err);
                    }
                }
                return Ok(e);
            }
            if let Some(e) = &self.error {
                return Err(self.fail(e));
            }
            self.pump()?;
            if !self.events.is_empty() || self.error.is_some() {
                continue;
            }
            if self.eof {
                return Err(DriverError::Closed);
            }
            self.flush()?;
            self.read_some()?;
        }
    }

    /// Writes notices out as they arrive; keeps notifications, which are printed after the
    /// results of their statement (as psql does).
    fn stash(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Notification(n) => self.notifications.push(Notification {
                process_id: n.process_id(),
                channel: String::from_utf8_lossy(n.channel()).into_owned(),
                payload: String::from_utf8_lossy(n.payload()).into_owned(),
            }),
            ClientEvent::Notice(f) | ClientEvent::UnsolicitedError(f) => {
                self.notice(&ServerError::from_fields(&f))
            }
            _ => {}
        }
    }

    // ---- queries ----

    /// Like [`Conn::query`], feeding COPY FROM STDIN from `input`.
    pub(crate) fn query_with_input(
        &mut self,
        sql: &str,
        input: &mut dyn Read,
    ) -> Result<Outcome, DriverError> {
        self.run_query(sql, Some(input))
    }

    fn run_query(
        &mut self,
        sql: &str,
        mut input: Option<&mut dyn Read>,
    ) -> Result<Outcome, DriverError> {
        let id = self.client.query(sql)?;
        self.pump()?;
        let mut out = Outcome::default();
        let mut cur: Option<StatementResult> = None;
        loop {
            let (request, message) = match self.next_event()? {
                ClientEvent::Response { request, message } => (request, message),
                ClientEvent::Skipped { .. } => continue,
                other => {
                    self.stash(other);
                    continue;
                }
            };
            if request != id {
                continue;
            }
            if let BackendMessage::ReadyForQuery(s) = message {
                out.status = Some(s);
                self.flush_notices();
                return Ok(out);
            }
            self.result_message(message, &mut out, &mut cur, &mut input)?;
        }
    }

    /// Folds one response message into `out`.
    fn result_message(
        &mut self,
        message: BackendMessage,
        out: &mut Outcome,
        cur: &mut Option<StatementResult>,
        input: &mut Option<&mut dyn Read>,
    ) -> Result<(), DriverError> {
        use BackendMessage as B;
        match message {
            B::RowDescription(rd) => {
                cur.get_or_insert_with(Default::default).columns = Some(
                    rd.fields()
                        .map(|f| String::from_utf8_lossy(f.name).into_owned())
                        .collect(),
                );
            }
            B::NoData => {
                cur.get_or_insert_with(Default::default);
            }
            B::DataRow(row) => {
                // Values are checked as they are read: a malformed one fails the statement.
                let values = row
                    .columns()
                    .map(|c| c.map(|c| c.map(<[u8]>::to_vec)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| DriverError::Protocol(e.into()))?;
                cur.get_or_insert_with(Default::default).rows.push(values)
            }
            B::CommandComplete(c) => {
                let mut r = cur.take().unwrap_or_default();
                r.tag = Some(String::from_utf8_lossy(c.tag()).into_owned());
                out.results.push(r);
            }
            B::EmptyQueryResponse | B::PortalSuspended => {
                out.results.push(cur.take().unwrap_or_default());
            }
            B::ErrorResponse(f) => {
                *cur = None;
                out.error = Some(ServerError::from_fields(&f));
            }
            B::CopyInResponse(_) => {
                *cur = None;
                self.send_copy(input.take())?;
            }
            B::CopyOutResponse(_) | B::CopyBothResponse(_) => {
                let r = cur.get_or_insert_with(Default::default);
                r.is_copy_out = true;
            }
            B::CopyData(d) => cur
                .get_or_insert_with(Default::default)
                .copy_out
                .extend_from_slice(d.data()),
            _ => {}
        }
        Ok(())
    }

    /// Streams `input` as CopyData, then CopyDone; CopyFail without input or on a read error.
    fn send_copy(&mut self, input: Option<&mut dyn Read>) -> Result<(), DriverError> {
        let Some(input) = input else {
            if self.client.protocol_version() == pgproto::ProtocolVersion::V2_0 {
                // 2.0 has no CopyFail: no data, then the end marker.
                self.client.copy_done()?;
            } else {
                self.client
                    .copy_fail("COPY FROM STDIN is not supported here")?;
            }
            return self.pump();
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.client.copy_fail(&format!("cannot read input: {e}"))?;
                    return self.pump();
                }
            };
            if self.client.copy_data(&buf[..n]).is_err() {
                // The server ended the COPY already (an error): what it said comes next.
                return self.pump();
            }
            self.pump()?;
        }
        if self.client.copy_done().is_ok() {
            self.pump()?;
        }
        Ok(())
    }

    /// Sends every statement as Parse/Bind/Describe/Execute with its own Sync and hands each
    /// statement's outcome to `done`, in order, as soon as its ReadyForQuery arrives. COPY FROM
    /// STDIN reads `input`.
    ///
    /// The statements are pipelined: written before their answers are read, in batches. A batch
    /// ends after a statement that may be a COPY ([`may_be_copy`]): during COPY FROM STDIN the
    /// server reads nothing but the copy's data (it ignores Sync, and ends the session on any
    /// other message), so nothing may follow such a statement on the wire until its COPY is over.
    pub(crate) fn pipeline(
        &mut self,
        statements: &[Statement],
        input: &mut dyn Read,
        done: &mut dyn FnMut(Outcome, Vec<Notification>) -> Result<(), DriverError>,
    ) -> Result<(), DriverError> {
        let mut rest = statements;
        while !rest.is_empty() {
            let n = rest
                .iter()
                .position(|s| may_be_copy(&s.sql))
                .map_or(rest.len(), |i| i + 1);
            let (batch, tail) = rest.split_at(n);
            self.pipeline_batch(batch, input, done)?;
            rest = tail;
        }
        Ok(())
    }

    /// One batch of [`Conn::pipeline`]: everything is written, then the answers are read.
    fn pipeline_batch(
        &mut self,
        statements: &[Statement],
        input: &mut dyn Read,
        done: &mut dyn FnMut(Outcome, Vec<Notification>) -> Result<(), DriverError>,
    ) -> Result<(), DriverError> {
        let mut owner: HashMap<RequestId, usize> = HashMap::new();
        for (i, s) in statements.iter().enumerate() {
            let values: Vec<Option<&[u8]>> = s
                .params
                .iter()
                .map(|p| p.as_deref().map(str::as_bytes))
                .collect();
            let bind = Bind::new("", "", &[], &values, &[]).map_err(UsageError::from)?;
            let ids = [
                self.client.parse("", &s.sql, &[])?,
                self.client.bind(&bind)?,
                self.client.describe(Target::Portal, "")?,
                self.client.execute("", 0)?,
                self.client.sync()?,
            ];
            for id in ids {
                owner.insert(id, i);
            }
            self.pump()?;
        }
        self.flush()?;
        // Statements end in order: `outcome` is the one whose answers come now.
        let mut next = 0;
        let mut outcome = Outcome::default();
        let mut current: Option<StatementResult> = None;
        while next < statements.len() {
            match self.next_event()? {
                ClientEvent::Response { request, message } => {
                    if owner.get(&request) != Some(&next) {
                        continue;
                    }
                    if let BackendMessage::ReadyForQuery(s) = message {
                        outcome.status = Some(s);
                        current = None;
                        next += 1;
                        self.flush_notices();
                        let notifications = self.take_notifications();
                        done(std::mem::take(&mut outcome), notifications)?;
                        continue;
                    }
                    let mut input: Option<&mut dyn Read> = Some(&mut *input);
                    self.result_message(message, &mut outcome, &mut current, &mut input)?;
                }
                ClientEvent::Skipped { request } => {
                    if owner.get(&request) == Some(&next) {
                        outcome.skipped += 1;
                    }
                }
                other => self.stash(other),
            }
        }
        Ok(())
    }

    /// Sends Terminate and waits, at most [`TERMINATE_WAIT`], for the server to close (libpq
    /// does not wait at all; a short wait lets the server close first, cleanly).
    pub(crate) fn terminate(&mut self) -> Result<(), DriverError> {
        if self.terminated {
            return Ok(());
        }
        self.terminated = true;
        self.client.terminate()?;
        self.pump()?;
        self.flush()?;
        self.stream.set_read_timeout(TERMINATE_WAIT);
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        let done = loop {
            match self.next_event() {
                Ok(ClientEvent::Closed) | Err(DriverError::Closed | DriverError::Timeout) => {
                    break Ok(())
                }
                Ok(other) => self.stash(other),
                Err(e) => break Err(e),
            }
        };
        self.flush_notices();
        done
    }
}

/// Whether `sql` may be a COPY: its first keyword, after white space and comments, is `COPY`.
/// Only a COPY statement can start a COPY (a function cannot, and COPY has no other form).
pub(crate) fn may_be_copy(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if rest.starts_with("/*") {
            rest = skip_block_comment(rest);
        } else {
            break;
        }
    }
    let word = rest.get(..4).unwrap_or_default();
    let after = rest[word.len()..].chars().next();
    word.eq_ignore_ascii_case("copy")
        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// What follows the block comment `/* ... */` at the start of `s` (comments nest in SQL).
fn skip_block_comment(s: &str) -> &str {
    let mut depth = 0usize;
    let mut i = 0;
    let b = s.as_bytes();
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &s[i..];
                }
            }
            _ => i += 1,
        }
    }
    ""
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.terminated && self.client.is_ready() {
            self.terminated = true;
            if self.client.terminate().is_ok() {
                let _ = self.pump();
                let _ = self.flush();
            }
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_copy;

    #[test]
    fn copy_statements_end_a_batch() {
        for sql in [
            "COPY t FROM STDIN",
            "  copy t TO STDOUT",
            "COPY(SELECT 1) TO STDOUT",
            "-- load\nCopy t FROM STDIN",
            "/* a /* nested */ comment */\n\tCOPY t FROM STDIN",
        ] {
            assert!(may_be_copy(sql), "{sql}");
        }
        for sql in [
            "SELECT 'COPY'",
            "copyright",
            "copy_t",
            "CREATE TABLE copy (a int)",
            "-- COPY t FROM STDIN",
            "/* COPY */ SELECT 1",
            "/* unterminated COPY",
            "",
            "é",
        ] {
            assert!(!may_be_copy(sql), "{sql}");
        }
    }
}
