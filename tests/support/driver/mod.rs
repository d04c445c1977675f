//! A blocking `std::net` driver for [`pgproto::Client`], with TLS from rustls, for the live
//! tests (`tests/live_client.rs`).
//!
//! It began as the `client` example's driver and keeps what the tests need beyond the example's
//! command line: statements with parameters, COPY in and out, notifications, cancellation,
//! the start-up events, timeouts. It parses a libpq connection string (`conninfo.rs`), opens
//! the socket, performs the TLS handshake when the state machine asks for it (`tls.rs`), and
//! runs the run loop of the crate's documentation (`Conn::pump`): after every input and every
//! command, drain [`Client::poll_event`] until it returns `Ok(None)`, then drain
//! [`Client::poll_transmit`] and write.

#![allow(dead_code)]

mod conninfo;
mod results;
mod tls;

// Not every test binary that includes the driver parses connection strings itself.
#[allow(unused_imports)]
pub(crate) use conninfo::{ConnInfo, DEFAULT_TIMEOUT};
pub(crate) use results::{
    DriverError, Notification, Outcome, ServerError, Statement, StatementResult,
};

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgproto::{
    AuthMethod, BackendMessage, Bind, CancelRequest, Client, ClientEvent, Encode, FrontendMessage,
    RequestId, Target, UsageError,
};

use self::results::io_err;
use self::tls::{is_disconnect, is_timeout, Stream, TlsSetup};

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
    timeout: Duration,
    events: VecDeque<ClientEvent>,
    error: Option<pgproto::Error>,
    fatal: Option<ServerError>,
    eof: bool,
    write_broken: bool,
    terminated: bool,
    wbuf: Vec<u8>,
    rbuf: Box<[u8]>,
    notifications: VecDeque<Notification>,
    notices: Vec<ServerError>,
    startup_events: Vec<ClientEvent>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Connects with a libpq keyword/value connection string.
pub(crate) fn connect(conninfo: &str) -> Result<Conn, DriverError> {
    Conn::connect(ConnInfo::parse(conninfo)?)
}

impl Conn {
    /// Connects and runs the start-up to ReadyForQuery.
    pub(crate) fn connect(info: ConnInfo) -> Result<Self, DriverError> {
        let client = Client::new(info.client_config())?;
        let tls = TlsSetup::new(&info)?;
        let (tcp, addr) = open_tcp(&info, DEFAULT_TIMEOUT)?;
        let mut conn = Self {
            client,
            stream: Stream::Plain(tcp),
            tls,
            addr,
            timeout: DEFAULT_TIMEOUT,
            events: VecDeque::new(),
            error: None,
            fatal: None,
            eof: false,
            write_broken: false,
            terminated: false,
            wbuf: Vec::new(),
            rbuf: vec![0; 64 * 1024].into_boxed_slice(),
            notifications: VecDeque::new(),
            notices: Vec::new(),
            startup_events: Vec::new(),
            info,
        };
        if conn.info.direct_tls {
            conn.start_tls(true)?;
        }
        conn.pump()?;
        loop {
            let event = conn.next_event()?;
            conn.startup_events.push(event.clone());
            match event {
                ClientEvent::SslResponse { accepted: true } => conn.start_tls(false)?,
                // A server that speaks only protocol 2.0 refused the 3.x start-up: a new
                // connection, as libpq 13 did.
                ClientEvent::FallbackToV2 { .. } => conn.reconnect()?,
                ClientEvent::AuthenticationRequest(a) => {
                    return Err(DriverError::UnsupportedAuth(format!("{a:?}")))
                }
                ClientEvent::Notice(n) => conn.notices.push(ServerError::from_fields(&n)),
                ClientEvent::Connected { .. } => return Ok(conn),
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

    /// The state machine (for its getters).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The state machine, to send commands directly; call [`Conn::pump`] after each.
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The parsed connection string.
    pub(crate) fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every event of the start-up, in order.
    pub(crate) fn startup_events(&self) -> &[ClientEvent] {
        &self.startup_events
    }

    /// The backend's process id, from its BackendKeyData.
    pub(crate) fn backend_pid(&self) -> Option<i32> {
        self.client.backend_key().map(|k| k.process_id())
    }

    /// Takes the notices and warnings received so far.
    pub(crate) fn take_notices(&mut self) -> Vec<ServerError> {
        std::mem::take(&mut self.notices)
    }

    /// The socket timeout for reads and writes.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> Result<(), DriverError> {
        self.timeout = timeout;
        self.apply_read_timeout(timeout)?;
        if let Some(tcp) = self.stream.tcp() {
            tcp.set_write_timeout(Some(timeout))
                .map_err(io_err("set_write_timeout"))?;
        }
        Ok(())
    }

    fn apply_read_timeout(&self, timeout: Duration) -> Result<(), DriverError> {
        if let Some(tcp) = self.stream.tcp() {
            tcp.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
                .map_err(io_err("set_read_timeout"))?;
        }
        Ok(())
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

    /// Keeps the asynchronous events (notifications, notices) for later.
    fn stash(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Notification(n) => self.notifications.push_back(Notification {
                process_id: n.process_id(),
                channel: String::from_utf8_lossy(n.channel()).into_owned(),
                payload: String::from_utf8_lossy(n.payload()).into_owned(),
            }),
            ClientEvent::Notice(f) => self.notices.push(ServerError::from_fields(&f)),
            ClientEvent::UnsolicitedError(f) => self.notices.push(ServerError::from_fields(&f)),
            _ => {}
        }
    }

    // ---- queries ----

    /// Sends a simple Query and collects everything up to its ReadyForQuery. A server error is
    /// in the outcome; the result is an error only when the connection failed. COPY FROM STDIN
    /// is refused with CopyFail; COPY TO STDOUT data is collected.
    pub(crate) fn query(&mut self, sql: &str) -> Result<Outcome, DriverError> {
        self.run_query(sql, None)
    }

    /// Like [`Conn::query`], feeding COPY FROM STDIN from `input`.
    pub(crate) fn query_with_input(
        &mut self,
        sql: &str,
        input: &mut dyn Read,
    ) -> Result<Outcome, DriverError> {
        self.run_query(sql, Some(input))
    }

    /// A simple Query's rows (of every statement in it) as text; a server error as
    /// [`DriverError::Server`].
    pub(crate) fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, DriverError> {
        Ok(self.query(sql)?.into_result()?.text_rows())
    }

    /// Runs COPY ... FROM STDIN with `data`; returns the number of rows copied.
    pub(crate) fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, DriverError> {
        let mut input = data;
        let out = self.run_query(sql, Some(&mut input))?.into_result()?;
        Ok(out.results.last().and_then(|r| r.tag_rows()).unwrap_or(0))
    }

    /// Runs COPY ... TO STDOUT; returns the data.
    pub(crate) fn copy_out(&mut self, sql: &str) -> Result<Vec<u8>, DriverError> {
        let out = self.run_query(sql, None)?.into_result()?;
        Ok(out.results.into_iter().flat_map(|r| r.copy_out).collect())
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

    /// Sends every statement as Parse/Bind/Describe/Execute with its own Sync, all before
    /// reading, then collects one outcome per statement.
    pub(crate) fn pipeline(
        &mut self,
        statements: &[Statement],
    ) -> Result<Vec<Outcome>, DriverError> {
        let mut owner: HashMap<RequestId, usize> = HashMap::new();
        let mut outcomes = vec![Outcome::default(); statements.len()];
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
        let mut current: Vec<Option<StatementResult>> = vec![None; statements.len()];
        let mut remaining = statements.len();
        let mut no_input: Option<&mut dyn Read> = None;
        while remaining > 0 {
            match self.next_event()? {
                ClientEvent::Response { request, message } => {
                    let Some(&i) = owner.get(&request) else {
                        continue;
                    };
                    if let BackendMessage::ReadyForQuery(s) = message {
                        outcomes[i].status = Some(s);
                        remaining -= 1;
                        continue;
                    }
                    self.result_message(message, &mut outcomes[i], &mut current[i], &mut no_input)?;
                }
                ClientEvent::Skipped { request } => {
                    if let Some(&i) = owner.get(&request) {
                        outcomes[i].skipped += 1;
                    }
                }
                other => self.stash(other),
            }
        }
        Ok(outcomes)
    }

    // ---- notifications and cancellation ----

    /// Waits up to `timeout` for a NOTIFY. Must not be called with a request in flight.
    pub(crate) fn wait_for_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Notification>, DriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                self.stash(e);
            }
            if let Some(n) = self.notifications.pop_front() {
                return Ok(Some(n));
            }
            if let Some(e) = &self.error {
                return Err(self.fail(e));
            }
            if self.eof {
                return Err(DriverError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.flush()?;
            self.apply_read_timeout(left)?;
            let r = self.read_some();
            self.apply_read_timeout(self.timeout)?;
            match r {
                Ok(()) => {}
                Err(DriverError::Timeout) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// What is needed to cancel this connection's query from elsewhere (another thread).
    pub(crate) fn canceller(&self) -> Option<Canceller> {
        Some(Canceller {
            request: self.client.cancel_request()?,
            info: self.info.clone(),
            tls: self.tls.clone(),
            addr: self.addr,
        })
    }

    /// Sends Terminate and waits (briefly) for the server to close.
    pub(crate) fn terminate(&mut self) -> Result<(), DriverError> {
        if self.terminated {
            return Ok(());
        }
        self.terminated = true;
        self.client.terminate()?;
        self.pump()?;
        self.flush()?;
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        loop {
            match self.next_event() {
                Ok(ClientEvent::Closed) | Err(DriverError::Closed) => return Ok(()),
                Ok(other) => self.stash(other),
                Err(e) => return Err(e),
            }
        }
    }
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

/// Cancels a connection's running query: sends its CancelRequest on a new connection to the
/// same server, with the same encryption (SSLRequest first unless `sslmode=disable`, direct TLS
/// with `sslnegotiation=direct`), as libpq 17's cancel API.
#[derive(Debug, Clone)]
pub(crate) struct Canceller {
    request: CancelRequest,
    info: ConnInfo,
    tls: Option<TlsSetup>,
    addr: SocketAddr,
}

impl Canceller {
    /// Sends the request and waits for the server to close the cancel connection.
    pub(crate) fn cancel(&self) -> Result<(), DriverError> {
        let mut tcp = TcpStream::connect_timeout(&self.addr, self.info.connect_timeout)
            .map_err(io_err("cannot connect to the server"))?;
        tcp.set_read_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(io_err("set_read_timeout"))?;
        tcp.set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(io_err("set_write_timeout"))?;
        let mut bytes = BytesMut::new();
        self.request.encode(&mut bytes);
        let mut stream = match (&self.tls, self.info.direct_tls) {
            (Some(tls), true) => Stream::Tls(Box::new(tls.handshake(tcp, true)?)),
            (Some(tls), false) => {
                let mut req = BytesMut::new();
                FrontendMessage::SslRequest.encode(&mut req);
                tcp.write_all(&req).map_err(io_err("send SSLRequest"))?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer)
                    .map_err(io_err("read SSLRequest answer"))?;
                match answer[0] {
                    b'S' => Stream::Tls(Box::new(tls.handshake(tcp, false)?)),
                    b'N' if !self.info.tls_required() => Stream::Plain(tcp),
                    b'N' => {
                        return Err(DriverError::Protocol(pgproto::Error::EncryptionRefused {
                            what: "SSL",
                        }))
                    }
                    _ => {
                        return Err(DriverError::Protocol(
                            pgproto::Error::EncryptionRequestRejected { what: "SSL" },
                        ))
                    }
                }
            }
            (None, _) => Stream::Plain(tcp),
        };
        stream
            .write_all(&bytes)
            .and_then(|()| stream.flush())
            .map_err(io_err("send CancelRequest"))?;
        // The server closes the connection once it has handled the request.
        let mut sink = [0u8; 256];
        loop {
            match stream.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if is_disconnect(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("wait for the server to close")(e)),
            }
        }
    }
}
