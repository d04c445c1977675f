//! One client connection: the log-in (TLS, authentication, the upstream server's parameters, a
//! cancel key), then the run loop that moves the client's requests to an upstream connection
//! and its answers back.
//!
//! The run loop waits on four things at once: bytes from the client, bytes from the upstream
//! connection, room to write to either. It reads from the client only while what waits to be
//! written (either way) is under [`HIGH_WATER`] and fewer than [`PIPELINE_DEPTH`] requests are in
//! flight, and from upstream only while what waits for the client is under [`HIGH_WATER`]: a
//! slow reader on either side slows the other down instead of growing a buffer. The wait is one
//! hand-written poll ([`Session::poll_io`]) over the connections' readiness, not a `select!`
//! of futures built and dropped on every turn: the turn is the proxy's most frequent work.
//!
//! In transaction mode every message goes through the `Server` state machine, the statement
//! rewriting and the correlator. In session mode the client takes a connection when it first
//! sends something and keeps it; from then on frames pass through undecoded ([`crate::direct`]).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use pgproto::pooler::{Action, ClientStatements, CorrelatorEvent, Rewrite, Route, StatementNote};
use pgproto::protocol::Request;
use pgproto::{
    BackendKeyData, ErrorFields, FramePiece, FrontendMessageRef, Server, ServerEvent, Target,
    TransactionStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::direct::{exchange, Direct, Outcome};
use crate::io::Conn;
use crate::params;
use crate::park::PARK_AFTER;
use crate::pool::Lease;
use crate::server_tls::Prefixed;
use crate::{Mode, Shared};

/// Requests of one client handed out before the first is answered.
pub(crate) const PIPELINE_DEPTH: usize = 256;

/// Bytes waiting to be written (either way) above which a session stops reading.
const HIGH_WATER: usize = 256 * 1024;

/// Why a session ends.
enum End {
    /// The client left (Terminate, end of file, an error on its socket).
    Client,
    /// Tell the client this FATAL error, then close.
    Fatal(ErrorFields),
    /// The state machine queued its own FATAL error (a protocol violation): flush and close.
    Flush,
    /// Idle for [`PARK_AFTER`] on a plain socket: to be parked (see [`crate::park`]).
    Park,
}

fn fatal(code: &str, message: &str) -> End {
    End::Fatal(ErrorFields::simple("FATAL", code, message))
}

/// Serves one client connection until it ends.
pub(crate) async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    // The log-in and the end are boxed: their futures (a TLS handshake, a connection to the
    // upstream server) are large, and an idle session should not carry their room.
    let Some(session) = Box::pin(login(tcp, &shared)).await else {
        return;
    };
    drive(Box::new(session)).await;
}

/// Serves a parked session again, its socket readable (see [`crate::park`]).
pub(crate) async fn resume(mut session: Box<Session>, tcp: std::net::TcpStream) {
    session.conn = Conn::from_std(tcp);
    drive(session).await;
}

/// Runs a logged-in session until it ends or is parked. The session is boxed: the task of a
/// session holds only the run loop's own state.
async fn drive(mut session: Box<Session>) {
    loop {
        let end = session.run().await;
        if !matches!(end, End::Park) {
            return Box::pin(session.finish(end)).await;
        }
        // `run` parks only a plain socket, and only with a parking thread.
        let shared = session.shared.clone();
        match (session.conn.take_plain(), &shared.parking) {
            (Some(tcp), Some(parking)) => return parking.park(session, tcp),
            // The socket could not leave the runtime: the connection is closed.
            (None, _) => {}
            (Some(tcp), None) => session.conn = Conn::from_std(tcp),
        }
    }
}

/// The socket during log-in.
enum LoginStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
    Gone,
}

impl LoginStream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(b).await,
            Self::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Self::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(b).await,
            Self::Tls(s) => s.read(b).await,
            Self::Gone => Ok(0),
        }
    }

    /// Closes the connection cleanly (in TLS, with close_notify, which libpq waits for after
    /// a cancel request).
    async fn shutdown(&mut self) {
        let _ = match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
            Self::Gone => Ok(()),
        };
    }

    /// The TLS handshake, reading `prefix` first (the start of a direct TLS handshake that the
    /// state machine received).
    async fn start_tls(
        &mut self,
        tls: &crate::server_tls::Tls,
        prefix: bytes::Bytes,
        direct: bool,
    ) -> Option<()> {
        let Self::Plain(tcp) = std::mem::replace(self, Self::Gone) else {
            return None;
        };
        match tls.accept(Prefixed::new(prefix, tcp), direct).await {
            Ok(crate::server_tls::Stream::Tls(t)) => {
                *self = Self::Tls(t);
                Some(())
            }
            _ => None,
        }
    }
}

/// Writes what the state machine queued.
async fn flush(server: &mut Server, stream: &mut LoginStream) -> Option<()> {
    while let Some(b) = server.poll_transmit() {
        stream.write_all(&b).await.ok()?;
    }
    Some(())
}

/// The log-in: encryption, the StartupMessage, authentication, the upstream server's parameters
/// and the cancel key. `None` when the connection ended there (a cancel request, a failed
/// log-in, a client that left).
async fn login(tcp: TcpStream, shared: &Arc<Shared>) -> Option<Session> {
    let mut server = Server::new(shared.config.clone());
    let mut stream = LoginStream::Plain(tcp);
    let mut buf = vec![0u8; 8192];
    let mut database = String::new();
    let mut wanted = Vec::new();
    loop {
        flush(&mut server, &mut stream).await?;
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            server.receive_eof();
        } else {
            server.receive(&buf[..n]);
        }
        loop {
            let event = match server.poll_event() {
                Ok(Some(e)) => e.into_owned(),
                Ok(None) => break,
                Err(_) => {
                    // A FATAL error is queued (unless the client must get nothing).
                    let _ = flush(&mut server, &mut stream).await;
                    return None;
                }
            };
            match event {
                ServerEvent::SslRequest => {
                    let accept = shared.tls.is_some();
                    server.accept_ssl(accept).ok()?;
                    flush(&mut server, &mut stream).await?;
                    if let Some(tls) = &shared.tls {
                        stream.start_tls(tls, bytes::Bytes::new(), false).await?;
                        server.tls_established(tls.end_point.clone()).ok()?;
                    }
                }
                ServerEvent::DirectTls => {
                    let tls = shared.tls.as_ref()?;
                    let prefix = server.take_buffered();
                    stream.start_tls(tls, prefix, true).await?;
                    server.tls_established(tls.end_point.clone()).ok()?;
                }
                ServerEvent::GssEncRequest => server.accept_gssenc(false).ok()?,
                ServerEvent::CancelRequest(c) => {
                    shared.cancel(&c).await;
                    stream.shutdown().await;
                    return None;
                }
                ServerEvent::Startup { message, .. } => {
                    let user = String::from_utf8_lossy(message.param("user").unwrap_or_default());
                    database = message
                        .param("database")
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| user.clone().into_owned());
                    for (name, value) in message.params() {
                        if let Some(name) = params::tracked(name) {
                            params::record(&mut wanted, name, &String::from_utf8_lossy(value));
                        }
                    }
                    server.authenticate(shared.auth_for(&user)).ok()?;
                }
                ServerEvent::Authenticated => {
                    return finish_login(server, stream, shared, &database, wanted).await;
                }
                _ => return None,
            }
        }
        if n == 0 {
            return None;
        }
    }
}

/// After AuthenticationOk: the database check (FATAL 3D000 as PostgreSQL), the upstream
/// server's parameters, the cancel key, ReadyForQuery.
async fn finish_login(
    mut server: Server,
    mut stream: LoginStream,
    shared: &Arc<Shared>,
    database: &str,
    wanted: Vec<(String, String)>,
) -> Option<Session> {
    if database != shared.database {
        let text = format!("database \"{database}\" does not exist");
        server
            .reject(&ErrorFields::simple("FATAL", "3D000", &text))
            .ok()?;
        let _ = flush(&mut server, &mut stream).await;
        return None;
    }
    let params = match shared.pool.params().await {
        Ok(p) => p,
        Err(e) => {
            let text = format!("could not connect to the upstream server: {e}");
            server
                .reject(&ErrorFields::simple("FATAL", "08006", &text))
                .ok()?;
            let _ = flush(&mut server, &mut stream).await;
            return None;
        }
    };
    for (name, value) in &params {
        // The upstream user's own session values are the proxy's business, not the client's;
        // the tracked parameters the client asked for are reported with its values, which its
        // upstream connections will be given.
        if name == "session_authorization" || name == "is_superuser" {
            continue;
        }
        let value = wanted
            .iter()
            .find(|(n, _)| n == name)
            .map_or(value.as_str(), |(_, v)| v.as_str());
        server.parameter_status(name, value).ok()?;
    }
    server
        .parameter_status("session_authorization", server.user().to_string().as_str())
        .ok()?;
    let Some(key) = shared.issue_key(server.protocol_version()) else {
        let _ = server.reject(&ErrorFields::simple("FATAL", "XX000", "no cancel key"));
        let _ = flush(&mut server, &mut stream).await;
        return None;
    };
    server.finish_startup(Some(key)).ok()?;
    flush(&mut server, &mut stream).await?;
    // An idle session keeps no buffer.
    server.release_buffers();
    let conn = match stream {
        LoginStream::Plain(tcp) => Conn::plain(tcp),
        LoginStream::Tls(tls) => Conn::tls(tls),
        LoginStream::Gone => return None,
    };
    Some(Session {
        shared: shared.clone(),
        server,
        statements: ClientStatements::default(),
        conn,
        client_eof: false,
        wanted,
        work: None,
    })
}

/// A logged-in client. Idle, it is this and nothing more; what an active session needs (the
/// upstream connection, the buffers) is in [`Work`], allocated while it is active.
pub(crate) struct Session {
    shared: Arc<Shared>,
    server: Server,
    statements: ClientStatements,
    conn: Conn,
    client_eof: bool,
    /// The tracked parameters' values the client asked for (see [`params`]).
    wanted: Vec<(String, String)>,
    work: Option<Box<Work>>,
}

/// An active session's share.
#[derive(Default)]
struct Work {
    /// The upstream connection serving the client, while one does.
    lease: Option<Lease>,
    /// Read buffers.
    cbuf: BytesMut,
    ubuf: BytesMut,
    /// Bytes waiting to be written.
    to_client: BytesMut,
    to_upstream: BytesMut,
    /// Session mode, once the client has its connection: frames pass through undecoded.
    direct: Option<Direct>,
}

/// What the run loop's wait ([`Session::poll_io`]) saw first.
enum Io {
    /// Some bytes were written (either way).
    Wrote,
    /// A read from the client: some bytes, end of file (0) or an error.
    Client(std::io::Result<usize>),
    /// A read from upstream.
    Upstream(std::io::Result<usize>),
    /// Writing to the client failed.
    ClientGone,
    /// Writing upstream failed.
    UpstreamWrite(std::io::Error),
    /// Nothing can move any more.
    Stuck,
}

impl Work {
    fn idle(&self) -> bool {
        self.lease.is_none() && self.to_client.is_empty() && self.to_upstream.is_empty()
    }
}

impl Session {
    /// The process ID of the client's cancel key.
    fn pid(&self) -> i32 {
        self.server
            .backend_key()
            .map_or(0, BackendKeyData::process_id)
    }

    /// The run loop, until the session ends.
    async fn run(&mut self) -> End {
        loop {
            // Idle (just logged in, back from parking, or between transactions): wait for the
            // client with a small future. A plain socket is parked off the runtime once idle
            // for [`PARK_AFTER`]; until then its buffers stay, ready for a client that goes
            // on at once (as most do). A TLS stream drops them at once and waits.
            if self.shared.parking.is_some() && matches!(self.conn, Conn::Plain(_)) {
                match tokio::time::timeout(PARK_AFTER, self.conn.ready()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return End::Client,
                    Err(_) => {
                        self.work = None;
                        self.server.release_buffers();
                        return End::Park;
                    }
                }
            } else {
                self.work = None;
                self.server.release_buffers();
                if self.conn.ready().await.is_err() {
                    return End::Client;
                }
            }
            if let Some(end) = Box::pin(self.active()).await {
                return end;
            }
        }
    }

    /// Until the session is idle again (`None`) or over.
    async fn active(&mut self) -> Option<End> {
        if self.shared.mode == Mode::Session && self.work.as_ref().is_none_or(|w| w.lease.is_none())
        {
            if let Err(end) = self.start_direct().await {
                return Some(end);
            }
        }
        loop {
            let io = std::future::poll_fn(|cx| self.poll_io(cx)).await;
            let done = match io {
                Io::Wrote => Ok(()),
                Io::Client(r) => self.client_read(r).await,
                Io::Upstream(Ok(0)) => {
                    Err(self.upstream_lost("the upstream server closed the connection"))
                }
                Io::Upstream(Err(e)) | Io::UpstreamWrite(e) => {
                    Err(self.upstream_lost(&format!("upstream connection: {e}")))
                }
                Io::Upstream(Ok(_)) => self.upstream_read().await,
                Io::ClientGone | Io::Stuck => Err(End::Client),
            };
            if let Err(end) = done.and_then(|()| self.write_now()) {
                return Some(end);
            }
            let idle = self.work.as_ref().is_none_or(|w| w.idle())
                && self.server.buffered_len() == 0
                && !self.client_eof;
            if idle {
                // Back to the small wait, which drops the buffers if the wait is long.
                return None;
            }
        }
    }

    /// One turn of the run loop's waiting: writes what waits to be written, then reads from
    /// upstream or from the client, each only while there is room for what it brings (see
    /// the module's doc). Ready with the first thing that happened.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Io> {
        let Self {
            server,
            conn,
            work,
            client_eof,
            ..
        } = self;
        let work = work.get_or_insert_with(Box::default);
        let mut waiting = false;
        if !work.to_client.is_empty() || conn.unflushed() {
            waiting = true;
            if let Poll::Ready(r) = conn.poll_write(cx, &mut work.to_client) {
                return Poll::Ready(r.map_or(Io::ClientGone, |()| Io::Wrote));
            }
        }
        let below = work.to_client.len() < HIGH_WATER;
        if let Some(l) = &mut work.lease {
            let up = &mut l.upstream.conn;
            if !work.to_upstream.is_empty() || up.unflushed() {
                waiting = true;
                if let Poll::Ready(r) = up.poll_write(cx, &mut work.to_upstream) {
                    return Poll::Ready(r.map_or_else(Io::UpstreamWrite, |()| Io::Wrote));
                }
            }
            if below {
                waiting = true;
                if let Poll::Ready(r) = up.poll_read(cx, &mut work.ubuf) {
                    return Poll::Ready(Io::Upstream(r));
                }
            }
        }
        let read_client = !*client_eof
            && below
            && work.to_upstream.len() < HIGH_WATER
            && (work.direct.is_some() || server.in_flight() < PIPELINE_DEPTH);
        if read_client {
            waiting = true;
            if let Poll::Ready(r) = conn.poll_read(cx, &mut work.cbuf) {
                return Poll::Ready(Io::Client(r));
            }
        }
        if waiting {
            Poll::Pending
        } else {
            // Nothing can move (the client ended, nothing is pending): the end.
            Poll::Ready(Io::Stuck)
        }
    }

    /// What the client sent (0 bytes or an error: it ended).
    async fn client_read(&mut self, read: std::io::Result<usize>) -> Result<(), End> {
        let work = self.work.get_or_insert_with(Box::default);
        if let Some(direct) = &mut work.direct {
            if !matches!(read, Ok(n) if n > 0) {
                self.client_eof = true;
                return Err(End::Client);
            }
            return match direct.client(&mut work.cbuf, &mut work.to_upstream) {
                Outcome::Going => Ok(()),
                Outcome::Terminated => Err(End::Client),
                Outcome::Invalid(e) => Err(fatal("08P01", &e)),
                Outcome::GoingAway | Outcome::Broken(_) => Ok(()),
            };
        }
        match read {
            Ok(0) | Err(_) => {
                self.client_eof = true;
                self.server.receive_eof();
            }
            Ok(_) => {
                self.server.receive(&work.cbuf);
                work.cbuf.clear();
            }
        }
        self.client_input().await
    }

    /// What the upstream server sent.
    async fn upstream_read(&mut self) -> Result<(), End> {
        if let Some(Work {
            direct: Some(direct),
            lease: Some(lease),
            ubuf,
            to_client,
            ..
        }) = self.work.as_deref_mut()
        {
            return match direct.upstream(lease, ubuf, to_client, &mut self.wanted) {
                Outcome::Going | Outcome::Terminated | Outcome::Invalid(_) => Ok(()),
                Outcome::GoingAway => Err(End::Flush),
                Outcome::Broken(e) => Err(fatal("08P01", &format!("upstream server: {e}"))),
            };
        }
        self.upstream_input().await?;
        self.client_input().await
    }

    /// Session mode: takes a connection for the client's session (with the client's
    /// parameters), and from then on passes frames through (see [`crate::direct`]).
    async fn start_direct(&mut self) -> Result<(), End> {
        let pid = self.pid();
        let mut lease = Box::pin(self.shared.pool.acquire()).await.map_err(|e| {
            fatal(
                "08006",
                &format!("could not connect to the upstream server: {e}"),
            )
        })?;
        if let Some(set) = params::set_query(&self.wanted, &lease.upstream.params) {
            let done = tokio::time::timeout(Duration::from_secs(5), exchange(&mut lease, &set));
            if !matches!(done.await, Ok(Ok(()))) {
                lease.upstream.broken = true;
                return Err(fatal(
                    "08006",
                    "server connection lost while setting the client's parameters",
                ));
            }
        }
        self.shared
            .route_cancels(pid, lease.upstream.key.clone())
            .await;
        let work = self.work.get_or_insert_with(Box::default);
        work.lease = Some(lease);
        work.direct = Some(Direct::new(self.shared.config.limits));
        self.server.release_buffers();
        Ok(())
    }

    /// Writes to both sides what can be written without waiting, sparing the run loop a turn.
    fn write_now(&mut self) -> Result<(), End> {
        let Some(work) = self.work.as_deref_mut() else {
            return Ok(());
        };
        if let Some(l) = work.lease.as_mut() {
            if let Err(e) = l.upstream.conn.write_now(&mut work.to_upstream) {
                return Err(self.upstream_lost(&format!("upstream connection: {e}")));
            }
        }
        if self.conn.write_now(&mut work.to_client).is_err() {
            return Err(End::Client);
        }
        Ok(())
    }

    /// An upstream connection that failed: the client gets FATAL 08006 (unless it is in the
    /// middle of a frame passed through, after which it can read nothing: it gets what came,
    /// then the end).
    fn upstream_lost(&mut self, why: &str) -> End {
        let work = self.work.as_deref_mut();
        let direct = work.as_ref().is_some_and(|w| w.direct.is_some());
        let lease = work.and_then(|w| w.lease.as_mut());
        let mid_frame = direct && Direct::mid_frame(lease.as_deref());
        if let Some(l) = lease {
            l.upstream.broken = true;
        }
        if mid_frame {
            return End::Flush;
        }
        fatal("08006", &format!("server connection lost: {why}"))
    }

    /// Hands the client's messages on: to the upstream connection (taking one from the pool if
    /// need be), or answered here when no connection is needed.
    async fn client_input(&mut self) -> Result<(), End> {
        let pid = self.pid();
        let Self {
            shared,
            server,
            statements,
            conn,
            work,
            wanted,
            ..
        } = self;
        let Work {
            lease,
            to_client,
            to_upstream,
            ..
        } = &mut **work.get_or_insert_with(Box::default);
        loop {
            // Nothing in flight before this message (which the poll hands out).
            let alone = server.in_flight() == 0;
            let event = match server.poll_event() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => {
                    move_output(server, to_client);
                    return Err(End::Flush);
                }
            };
            let m = match event {
                ServerEvent::Message(m) => m,
                ServerEvent::Terminate | ServerEvent::Closed => return Err(End::Client),
                _ => return Err(fatal("08P01", "unexpected message")),
            };
            if lease.is_none() {
                // What needs no upstream connection, when nothing else is in flight.
                match &m {
                    FrontendMessageRef::Flush => continue,
                    FrontendMessageRef::Sync if alone => {
                        drop(m);
                        server
                            .ready_for_query(TransactionStatus::Idle)
                            .map_err(|e| fatal("XX000", &e.to_string()))?;
                        continue;
                    }
                    FrontendMessageRef::Close(c)
                        if alone && c.target() == Target::Statement && !c.name().is_empty() =>
                    {
                        statements.remove(c.name());
                        drop(m);
                        server
                            .close_complete()
                            .map_err(|e| fatal("XX000", &e.to_string()))?;
                        continue;
                    }
                    _ => {}
                }
                // A connection is needed: what the client waits for goes out first.
                if !to_client.is_empty() && conn.write_all(to_client).await.is_err() {
                    return Err(End::Client);
                }
                let mut l = Box::pin(shared.pool.acquire()).await.map_err(|e| {
                    fatal(
                        "08006",
                        &format!("could not connect to the upstream server: {e}"),
                    )
                })?;
                shared.route_cancels(pid, l.upstream.key.clone()).await;
                let up = &mut l.upstream;
                if let Some(set) = params::set_query(wanted, &up.params) {
                    // The client's parameters first; the answers are not the client's.
                    to_upstream.extend_from_slice(&set);
                    up.correlator
                        .push(Request::Query, Action::Skip, StatementNote::None);
                }
                *lease = Some(l);
            }
            let Some(l) = lease.as_mut() else {
                continue;
            };
            let up = &mut l.upstream;
            let mut rewrite = Rewrite {
                registry: &shared.registry,
                client: statements,
                upstream: &mut up.statements,
            };
            if let Err(e) = rewrite.message(&m, to_upstream, &mut up.correlator) {
                return Err(fatal("53400", &e.to_string()));
            }
            drop(m);
            while let Some(e) = up.correlator.poll_event() {
                settle(e, server, &mut rewrite)?;
            }
        }
        move_output(server, to_client);
        Ok(())
    }

    /// Routes what the upstream connection sent; gives the connection back once it is idle
    /// (transaction mode).
    async fn upstream_input(&mut self) -> Result<(), End> {
        let pid = self.pid();
        let Self {
            shared,
            server,
            statements,
            work,
            wanted,
            ..
        } = self;
        let Some(Work {
            lease: Some(l),
            to_client,
            ubuf,
            ..
        }) = work.as_deref_mut()
        else {
            return Ok(());
        };
        let up = &mut l.upstream;
        up.relay.receive(ubuf);
        ubuf.clear();
        loop {
            let piece = match up.relay.next_piece() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    up.broken = true;
                    return Err(fatal("08P01", &format!("upstream server: {e}")));
                }
            };
            if let Some(body) = piece.body() {
                observe(
                    piece.header().tag(),
                    body,
                    &mut up.params,
                    &mut up.statements,
                );
                if piece.header().tag() == b'S' {
                    // The client's own values now (after a SET, or the proxy's).
                    params::record_reported(wanted, body);
                }
            }
            // An ErrorResponse with nothing in flight is a FATAL error: the server is going
            // away (pg_terminate_backend, a shutdown). The client gets it, then the end.
            let going_away =
                piece.is_first() && piece.header().tag() == b'E' && up.correlator.is_empty();
            let route = match up.correlator.route(&piece) {
                Ok(r) => r,
                Err(e) => {
                    up.broken = true;
                    return Err(fatal("08P01", &format!("upstream server: {e}")));
                }
            };
            if route == Route::Forward {
                if let Err(e) = server.forward(&piece) {
                    up.broken = true;
                    return Err(fatal("08P01", &format!("upstream server: {e}")));
                }
            }
            if going_away {
                up.broken = true;
                move_output(server, to_client);
                return Err(End::Flush);
            }
            let mut rewrite = Rewrite {
                registry: &shared.registry,
                client: statements,
                upstream: &mut up.statements,
            };
            while let Some(e) = up.correlator.poll_event() {
                settle(e, server, &mut rewrite)?;
            }
        }
        move_output(server, to_client);
        if shared.mode == Mode::Transaction
            && up.correlator.is_idle()
            && up.relay.buffered_len() == 0
        {
            shared.route_cancels(pid, None).await;
            if let Some(Work {
                lease: lease @ Some(_),
                ..
            }) = work.as_deref_mut()
            {
                if let Some(l) = lease.take() {
                    shared.pool.release(l);
                }
            }
        }
        Ok(())
    }

    /// The end: the client is told why (if it is still there), the upstream connection goes
    /// back to the pool if it is reusable (after `DISCARD ALL` in session mode), the cancel key
    /// is forgotten.
    async fn finish(mut self, end: End) {
        let pid = self.pid();
        let mut work = self.work.take().unwrap_or_default();
        match end {
            End::Client | End::Park => {}
            End::Fatal(fields) => {
                move_output(&mut self.server, &mut work.to_client);
                if self.server.fatal(&fields).is_ok() {
                    move_output(&mut self.server, &mut work.to_client);
                }
                let _ = flush_client(&mut self.conn, &mut work.to_client).await;
            }
            End::Flush => {
                move_output(&mut self.server, &mut work.to_client);
                let _ = flush_client(&mut self.conn, &mut work.to_client).await;
            }
        }
        self.conn.shutdown().await;
        drop(self.conn);
        self.shared.route_cancels(pid, None).await;
        self.shared.forget_key(pid);
        if let Some(mut lease) = work.lease.take() {
            let clean = match work.direct.take() {
                Some(direct) => direct.settle(&mut lease, work.to_upstream.len()),
                None => true,
            };
            if clean && lease.upstream.reusable() {
                if self.shared.mode == Mode::Session {
                    let reset = tokio::time::timeout(
                        Duration::from_secs(5),
                        exchange(&mut lease, b"Q\0\0\0\x10DISCARD ALL\0"),
                    );
                    if !matches!(reset.await, Ok(Ok(()))) {
                        return;
                    }
                }
                self.shared.pool.release(lease);
            }
        }
    }
}

/// Writes what waits for the client, within 5 s.
async fn flush_client(conn: &mut Conn, to_client: &mut BytesMut) -> std::io::Result<()> {
    tokio::time::timeout(Duration::from_secs(5), conn.write_all(to_client))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Moves the state machine's output to the client's write buffer.
fn move_output(server: &mut Server, to_client: &mut BytesMut) {
    while let Some(b) = server.poll_transmit() {
        to_client.extend_from_slice(&b);
    }
}

/// One correlator event: a synthesized answer goes to the client, a finished request updates the
/// statement maps.
fn settle(
    event: CorrelatorEvent<StatementNote>,
    server: &mut Server,
    rewrite: &mut Rewrite<'_>,
) -> Result<(), End> {
    match event {
        CorrelatorEvent::Synthesized(bytes) => {
            let piece = FramePiece::whole(&bytes).map_err(|e| fatal("XX000", &e.to_string()))?;
            server
                .forward(&piece)
                .map_err(|e| fatal("XX000", &e.to_string()))?;
        }
        CorrelatorEvent::Finished { data, outcome, .. } => rewrite.finished(data, outcome),
    }
    Ok(())
}

/// What the proxy learns from a whole frame as it passes: parameter values, and the statements
/// a `DISCARD ALL` or `DEALLOCATE ALL` removed.
pub(crate) fn observe(
    tag: u8,
    body: &[u8],
    params: &mut Vec<(String, String)>,
    statements: &mut pgproto::pooler::UpstreamStatements,
) {
    match tag {
        b'S' => {
            let mut parts = body.split(|b| *b == 0);
            if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                let name = String::from_utf8_lossy(name);
                params::record(params, &name, &String::from_utf8_lossy(value));
            }
        }
        b'C' => statements.after_command(body.strip_suffix(b"\0").unwrap_or(body)),
        _ => {}
    }
}
