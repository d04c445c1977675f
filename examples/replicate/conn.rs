//! One connection: the [`Client`] state machine, its socket (plain or TLS, set up by the
//! `client` example's `conninfo.rs` and `tls.rs`), and the run loop.
//!
//! [`Conn::pump`] is the run loop of the crate's documentation and the only place that calls
//! [`Client::poll_event`]: after every input and every command, drain the events (kept owned)
//! until there are none, then drain [`Client::poll_transmit`] into the write buffer. Reads wait
//! at most the time the caller gives, so a replication loop can send its status updates on
//! time.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use pgproto::replication::Payload;
use pgproto::{BackendMessage, Client, ClientEvent};

use crate::conninfo::{ConnInfo, DEFAULT_TIMEOUT};
use crate::results::{io_err, DriverError, ServerError};
use crate::tls::{is_disconnect, is_timeout, Stream, TlsSetup};

/// The rows of one result set, text values (`None` is NULL).
pub(crate) type Rows = Vec<Vec<Option<Vec<u8>>>>;

/// A connection to a server.
pub(crate) struct Conn {
    client: Client,
    stream: Stream,
    /// The socket under `stream`, to change its read timeout.
    tcp: TcpStream,
    events: VecDeque<ClientEvent>,
    error: Option<pgproto::Error>,
    fatal: Option<ServerError>,
    eof: bool,
    wbuf: Vec<u8>,
    rbuf: Box<[u8]>,
}

/// How a Query that may start a COPY went.
pub(crate) enum Started {
    /// The COPY began (CopyBothResponse or CopyOutResponse); the result sets before it.
    Copy(Vec<Rows>),
    /// The command ended without a COPY, with these result sets.
    Done(Vec<Rows>),
}

/// What came during a COPY.
pub(crate) enum CopyEvent {
    /// A CopyData payload.
    Data(bytes::Bytes),
    /// The server's CopyDone.
    Done,
    /// Nothing within the wait.
    Idle,
}

fn open_tcp(info: &ConnInfo) -> Result<TcpStream, DriverError> {
    let addrs: Vec<SocketAddr> = (info.host.as_str(), info.port)
        .to_socket_addrs()
        .map_err(io_err("cannot resolve host"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, info.connect_timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(io_err("set_nodelay"))?;
                tcp.set_read_timeout(Some(DEFAULT_TIMEOUT))
                    .map_err(io_err("set_read_timeout"))?;
                tcp.set_write_timeout(Some(DEFAULT_TIMEOUT))
                    .map_err(io_err("set_write_timeout"))?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DriverError::Io {
        context: "cannot connect to the server",
        source: last.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
    })
}

impl Conn {
    /// Connects as `info` says, with `replication` (`true`, `database`) when given, and runs
    /// the start-up to ReadyForQuery.
    pub(crate) fn connect(info: &ConnInfo, replication: Option<&str>) -> Result<Self, DriverError> {
        let mut config = info.client_config();
        config.replication = replication.map(str::to_string);
        let tls = TlsSetup::new(info)?;
        let tcp = open_tcp(info)?;
        let mut conn = Self {
            client: Client::new(config)?,
            stream: Stream::Plain(tcp.try_clone().map_err(io_err("clone socket"))?),
            tcp,
            events: VecDeque::new(),
            error: None,
            fatal: None,
            eof: false,
            wbuf: Vec::new(),
            rbuf: vec![0; 64 * 1024].into_boxed_slice(),
        };
        if info.direct_tls {
            conn.start_tls(tls.as_ref(), true)?;
        }
        conn.pump()?;
        loop {
            match conn.next_event(None)? {
                Some(ClientEvent::SslResponse { accepted: true }) => {
                    conn.start_tls(tls.as_ref(), false)?
                }
                Some(ClientEvent::AuthenticationRequest(a)) => {
                    return Err(DriverError::UnsupportedAuth(format!("{a:?}")))
                }
                Some(ClientEvent::Connected { .. }) => return Ok(conn),
                _ => {}
            }
        }
    }

    fn start_tls(&mut self, setup: Option<&TlsSetup>, direct: bool) -> Result<(), DriverError> {
        let setup = setup.ok_or_else(|| DriverError::Tls("TLS without a TLS setup".into()))?;
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

    /// A run-time parameter the server reported (`server_version`...).
    pub(crate) fn parameter(&self, name: &str) -> Option<&str> {
        self.client.parameter(name)
    }

    /// The server's major version (`server_version_num / 10000`), 0 if unknown.
    pub(crate) fn server_major(&self) -> u32 {
        self.parameter("server_version")
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    // ---- the run loop ----

    /// Drains the state machine's events into the queue, then its bytes into the write buffer.
    fn pump(&mut self) -> Result<(), DriverError> {
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
        Ok(())
    }

    /// Writes what is buffered.
    pub(crate) fn flush(&mut self) -> Result<(), DriverError> {
        if self.wbuf.is_empty() || self.eof {
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
            Err(e) if is_disconnect(&e) => Ok(()), // its last words are read next
            Err(e) => Err(DriverError::Io {
                context: "write to server",
                source: e,
            }),
        }
    }

    /// The next event, reading from the server for at most `wait` (`None`: the socket
    /// timeout, then an error); `Ok(None)` when `wait` passed with nothing.
    pub(crate) fn next_event(
        &mut self,
        wait: Option<Duration>,
    ) -> Result<Option<ClientEvent>, DriverError> {
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
                return Ok(Some(e));
            }
            if let Some(e) = &self.error {
                return Err(match (e, &self.fatal) {
                    (pgproto::Error::UnexpectedEof { .. }, Some(f)) => {
                        DriverError::Server(f.clone())
                    }
                    _ => DriverError::Protocol(e.clone()),
                });
            }
            if self.eof {
                return Err(DriverError::Closed);
            }
            self.flush()?;
            self.tcp
                .set_read_timeout(Some(
                    wait.unwrap_or(DEFAULT_TIMEOUT)
                        .max(Duration::from_millis(1)),
                ))
                .map_err(io_err("set_read_timeout"))?;
            let n = match self.stream.read(&mut self.rbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_disconnect(&e) => 0,
                Err(e) if is_timeout(&e) => {
                    return match wait {
                        Some(_) => Ok(None),
                        None => Err(DriverError::Timeout),
                    }
                }
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
            self.pump()?;
        }
    }

    /// The next response message, waiting as long as the socket timeout allows.
    fn next_response(&mut self) -> Result<BackendMessage<'static>, DriverError> {
        loop {
            match self.next_event(None)? {
                Some(ClientEvent::Response { message, .. }) => return Ok(message),
                Some(ClientEvent::UnsolicitedError(f)) => {
                    return Err(DriverError::Server(ServerError::from_fields(&f)))
                }
                _ => {}
            }
        }
    }

    // ---- commands ----

    /// Sends a simple Query that may start a COPY; returns when the COPY began or, without
    /// one, at ReadyForQuery. A server error fails it (after its ReadyForQuery).
    pub(crate) fn start(&mut self, sql: &str) -> Result<Started, DriverError> {
        self.client.query(sql)?;
        self.pump()?;
        let mut sets = Vec::new();
        let mut error = None;
        loop {
            match self.next_response()? {
                BackendMessage::CopyBothResponse(_) | BackendMessage::CopyOutResponse(_) => {
                    return Ok(Started::Copy(sets))
                }
                BackendMessage::CopyInResponse(_) => {
                    self.client
                        .copy_fail("COPY FROM STDIN is not supported here")?;
                    self.pump()?;
                }
                BackendMessage::RowDescription(_) => sets.push(Rows::new()),
                BackendMessage::DataRow(r) => {
                    let row = r
                        .columns()
                        .map(|v| v.map(|v| v.map(<[u8]>::to_vec)))
                        .collect::<Result<_, _>>()
                        .map_err(|e| DriverError::Protocol(e.into()))?;
                    if let Some(set) = sets.last_mut() {
                        set.push(row);
                    }
                }
                BackendMessage::ErrorResponse(f) => error = Some(ServerError::from_fields(&f)),
                BackendMessage::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(DriverError::Server(e)),
                        None => Ok(Started::Done(sets)),
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs a simple Query that starts no COPY; returns its result sets.
    pub(crate) fn query(&mut self, sql: &str) -> Result<Vec<Rows>, DriverError> {
        match self.start(sql)? {
            Started::Done(sets) => Ok(sets),
            Started::Copy(_) => Err(DriverError::Config(format!(
                "unexpected COPY in answer to {sql}"
            ))),
        }
    }

    /// The next thing during a COPY, waiting at most `wait`. An ErrorResponse fails it.
    pub(crate) fn copy_event(&mut self, wait: Duration) -> Result<CopyEvent, DriverError> {
        loop {
            match self.next_event(Some(wait))? {
                None => return Ok(CopyEvent::Idle),
                Some(ClientEvent::Response { message, .. }) => match message {
                    BackendMessage::CopyData(d) => return Ok(CopyEvent::Data(d.into_data())),
                    BackendMessage::CopyDone => return Ok(CopyEvent::Done),
                    BackendMessage::ErrorResponse(f) => {
                        return Err(DriverError::Server(ServerError::from_fields(&f)))
                    }
                    _ => {}
                },
                Some(ClientEvent::UnsolicitedError(f)) => {
                    return Err(DriverError::Server(ServerError::from_fields(&f)))
                }
                Some(_) => {}
            }
        }
    }

    /// Sends one replication message in a CopyData, at once.
    pub(crate) fn send(&mut self, message: &impl Payload) -> Result<(), DriverError> {
        self.client.copy_payload(message)?;
        self.pump()?;
        self.flush()
    }

    /// Ends the client's side of a CopyBoth.
    pub(crate) fn copy_done(&mut self) -> Result<(), DriverError> {
        self.client.copy_done()?;
        self.pump()?;
        self.flush()
    }

    /// After a COPY: the result sets up to ReadyForQuery (BASE_BACKUP's end position, the next
    /// timeline after a timeline's CopyBoth). CopyData still in flight is skipped.
    pub(crate) fn finish(&mut self) -> Result<Vec<Rows>, DriverError> {
        let mut sets = Vec::new();
        let mut error = None;
        loop {
            match self.next_response()? {
                BackendMessage::RowDescription(_) => sets.push(Rows::new()),
                BackendMessage::DataRow(r) => {
                    let row = r
                        .columns()
                        .map(|v| v.map(|v| v.map(<[u8]>::to_vec)))
                        .collect::<Result<_, _>>()
                        .map_err(|e| DriverError::Protocol(e.into()))?;
                    if let Some(set) = sets.last_mut() {
                        set.push(row);
                    }
                }
                BackendMessage::ErrorResponse(f) => error = Some(ServerError::from_fields(&f)),
                BackendMessage::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(DriverError::Server(e)),
                        None => Ok(sets),
                    }
                }
                _ => {}
            }
        }
    }

    /// Sends Terminate and closes.
    pub(crate) fn terminate(mut self) {
        if self.client.terminate().is_ok() {
            let _ = self.pump();
            let _ = self.flush();
        }
    }
}

/// The text of a column of a row, as UTF-8.
pub(crate) fn text(row: &[Option<Vec<u8>>], i: usize) -> Option<String> {
    row.get(i)?
        .as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
