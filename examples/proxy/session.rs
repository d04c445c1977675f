//! One client connection: the log-in ([`crate::login`]), then the run loop that moves the
//! client's requests to an upstream connection and its answers back.
//!
//! The run loop waits on four things at once: bytes from the client, bytes from the upstream
//! connection, room to write to either. It reads from the client only while what waits to be
//! written (either way) is under [`HIGH_WATER`] and fewer than [`PIPELINE_DEPTH`] requests are in
//! flight, and from upstream only while what waits for the client is under [`HIGH_WATER`]: a
//! slow reader on either side slows the other down instead of growing a buffer. The wait is one
//! hand-written poll ([`Session::poll_io`]) over the connections' readiness, not a `select!`
//! of futures built and dropped on every turn: the turn is the proxy's most frequent work.
//!
//! In transaction mode a request that needs no statement renaming goes upstream as it came,
//! followed only by a count of the requests that end with a ReadyForQuery ([`crate::quick`]);
//! the others go through the `Server` state machine, the statement rewriting and the
//! correlator. In session mode the client takes a connection when it first sends something and
//! keeps it; from then on frames pass through undecoded ([`crate::direct`]).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use pgproto::pooler::{Action, ClientStatements, CorrelatorEvent, Rewrite, Route, StatementNote};
use pgproto::protocol::Request;
use pgproto::{
    BackendKeyData, ErrorFields, FramePiece, FrontendMessage, Server, ServerEvent, SuspendedServer,
    Target, TransactionStatus,
};
use tokio::net::TcpStream;

use crate::direct::{exchange, Direct, Outcome};
use crate::io::{Conn, Wakes, CLIENT, UPSTREAM};
use crate::login;
use crate::params;
use crate::park::IdleWait;
use crate::pool::Lease;
use crate::quick;
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
    /// Idle for [`PARK_AFTER`](crate::park::PARK_AFTER) on a plain socket: to be parked (see
    /// [`crate::park`]).
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
    let Some(session) = Box::pin(login::login(tcp, &shared)).await else {
        return;
    };
    drive(Box::new(session)).await;
}

/// Serves a parked session again, its socket readable (see [`crate::park`]).
pub(crate) async fn resume(quiet: Box<Quiet>, tcp: std::net::TcpStream) {
    drive(Box::new(quiet.resume(Conn::from_std(tcp)))).await;
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
        let Some(parking) = &shared.parking else {
            continue;
        };
        match session.quiet() {
            Ok((quiet, Some(tcp))) => return parking.park(quiet, tcp),
            // The socket could not leave the runtime: the connection is closed.
            Ok((quiet, None)) => session = Box::new(quiet.resume(Conn::Closed)),
            // Not idle after all (it cannot happen: the run loop parks only an idle session,
            // whose `Server` has nothing in flight): it waits again.
            Err(s) => session = s,
        }
    }
}

/// A parked session: what a logged-in client keeps while it is quiet, its `Server` suspended
/// (about 200 bytes, where a [`Session`] takes 550; see [`Session::quiet`]).
pub(crate) struct Quiet {
    shared: Arc<Shared>,
    server: SuspendedServer,
    statements: ClientStatements,
    after_error: bool,
    wanted: Vec<(String, String)>,
}

impl Quiet {
    /// The session again, on `conn`.
    fn resume(self, conn: Conn) -> Session {
        Session {
            shared: self.shared,
            server: self.server.resume(),
            statements: self.statements,
            conn,
            client_eof: false,
            after_error: self.after_error,
            wanted: self.wanted,
            idle: None,
            work: None,
        }
    }
}

/// A logged-in client. Idle, it is this and nothing more; what an active session needs (the
/// upstream connection, the buffers) is in [`Work`], allocated while it is active.
pub(crate) struct Session {
    shared: Arc<Shared>,
    server: Server,
    statements: ClientStatements,
    conn: Conn,
    client_eof: bool,
    /// The `Server` forwarded an ErrorResponse and no ReadyForQuery since: after an error in
    /// an extended query it skips what the client sends until Sync, which the quick path must
    /// then leave to it.
    after_error: bool,
    /// The tracked parameters' values the client asked for (see [`params`]).
    wanted: Vec<(String, String)>,
    /// Its waits on the idle clock; made at its first wait after it logged in or came back
    /// from parking, dropped when it parks (a parked session holds nothing it does not need).
    idle: Option<IdleWait>,
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
    /// Transaction mode: requests of the quick path are in flight ([`crate::quick`]).
    quick: bool,
    /// The client's bytes in `cbuf` wait for the quick path's requests to be answered, then go
    /// to the `Server`, and the client is not read meanwhile (bytes in `cbuf` without `held`
    /// wait for the rest of a batch, with the client read).
    held: bool,
    /// Which connection woke the run loop.
    wakes: Wakes,
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
        self.lease.is_none()
            && self.to_client.is_empty()
            && self.to_upstream.is_empty()
            && self.cbuf.is_empty()
    }
}

impl Session {
    /// A client just logged in: `server` past its start-up, `wanted` the tracked parameters'
    /// values it asked for.
    pub(crate) fn new(
        shared: Arc<Shared>,
        server: Server,
        conn: Conn,
        wanted: Vec<(String, String)>,
    ) -> Self {
        Self {
            shared,
            server,
            statements: ClientStatements::default(),
            conn,
            client_eof: false,
            after_error: false,
            wanted,
            idle: None,
            work: None,
        }
    }

    /// The session packed for parking, with its socket taken from the runtime (`None` if that
    /// failed); the session unchanged if its `Server` is not idle.
    fn quiet(self: Box<Self>) -> Result<(Box<Quiet>, Option<std::net::TcpStream>), Box<Self>> {
        let Self {
            shared,
            server,
            statements,
            mut conn,
            client_eof,
            after_error,
            wanted,
            idle,
            work,
        } = *self;
        match server.suspend() {
            Ok(server) => {
                let quiet = Box::new(Quiet {
                    shared,
                    server,
                    statements,
                    after_error,
                    wanted,
                });
                Ok((quiet, conn.take_plain()))
            }
            Err(server) => Err(Box::new(Self {
                shared,
                server,
                statements,
                conn,
                client_eof,
                after_error,
                wanted,
                idle,
                work,
            })),
        }
    }

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
            // for `PARK_AFTER` (the shared clock tells, see [`crate::park`]); until then its
            // buffers stay, ready for a client that goes on at once (as most do). A TLS stream
            // drops them at once and waits.
            if self.shared.parking.is_some() && matches!(self.conn, Conn::Plain(_)) {
                let clock = &self.shared.idle_clock;
                let idle = &*self.idle.get_or_insert_with(IdleWait::default);
                let mut waiting = clock.wait_from(idle);
                let mut ready = std::pin::pin!(self.conn.ready());
                let woke = std::future::poll_fn(|cx| match ready.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(Some(r)),
                    Poll::Pending if clock.due(&mut waiting, idle, cx.waker()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                })
                .await;
                idle.end();
                match woke {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return End::Client,
                    None => {
                        self.idle = None;
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
        work.wakes.begin(cx);
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
                if let Poll::Ready(r) = work.wakes.poll_read(cx, UPSTREAM, up, &mut work.ubuf) {
                    return Poll::Ready(Io::Upstream(r));
                }
            }
        }
        let read_client = !*client_eof
            && !work.held
            && below
            && work.to_upstream.len() < HIGH_WATER
            && (work.direct.is_some()
                || server.in_flight() < PIPELINE_DEPTH
                    && work.lease.as_ref().is_none_or(|l| {
                        l.upstream.correlator.len() < PIPELINE_DEPTH
                            && l.upstream.batches.len() < PIPELINE_DEPTH
                    }));
        if read_client {
            waiting = true;
            if let Poll::Ready(r) = work.wakes.poll_read(cx, CLIENT, conn, &mut work.cbuf) {
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
                if work.quick {
                    // The client left with requests in flight: nothing more to do.
                    return Err(End::Client);
                }
                self.server.receive(&work.cbuf);
                work.cbuf.clear();
                work.held = false;
                self.server.receive_eof();
            }
            Ok(_) => {
                if self.shared.mode == Mode::Transaction && !self.quick_client().await? {
                    return Ok(());
                }
                let work = self.work.get_or_insert_with(Box::default);
                self.server.receive(&work.cbuf);
                work.cbuf.clear();
            }
        }
        self.client_input().await
    }

    /// Transaction mode: hands what it can of the client's bytes to the quick path
    /// ([`crate::quick`]). `true` when the `Server` takes all of them now; otherwise what is
    /// left (a frame not all there, or bytes held) waits in the read buffer.
    async fn quick_client(&mut self) -> Result<bool, End> {
        let work = self.work.get_or_insert_with(Box::default);
        let server_busy = self.server.in_flight() > 0 || self.server.buffered_len() > 0;
        // The correlator's requests (of the `Server` path) come first.
        let correlated = work
            .lease
            .as_ref()
            .is_some_and(|l| !l.upstream.correlator.is_empty() || l.upstream.correlator.in_frame());
        if !work.quick && (server_busy || self.after_error || correlated) {
            return Ok(true);
        }
        let discarding = work
            .lease
            .as_ref()
            .is_some_and(|l| l.upstream.batches.discarding());
        let take = quick::scan(
            &work.cbuf,
            &self.shared.config.limits,
            work.quick,
            discarding,
        );
        if !work.quick && (take.len == 0 || work.lease.is_none() && !take.needs_connection) {
            return Ok(true);
        }
        if take.len > 0 {
            if work.lease.is_none() {
                let pid = self.pid();
                let Self {
                    shared,
                    conn,
                    work,
                    wanted,
                    ..
                } = self;
                let work = work.get_or_insert_with(Box::default);
                take_connection(shared, conn, work, wanted, pid, true).await?;
            }
            let Some(Work {
                lease: Some(l),
                cbuf,
                to_upstream,
                quick,
                ..
            }) = self.work.as_deref_mut()
            else {
                return Ok(true);
            };
            quick::forward(cbuf, take.len, to_upstream, &mut l.upstream.batches);
            *quick = true;
        }
        self.work.get_or_insert_with(Box::default).held = take.hold;
        Ok(false)
    }

    /// Transaction mode, quick requests in flight: routes what the upstream server sent; once
    /// they are all answered, gives the connection back if it is idle, and the `Server` the
    /// bytes held meanwhile.
    async fn quick_upstream(&mut self) -> Result<(), End> {
        let Self { work, wanted, .. } = self;
        let Some(Work {
            lease: Some(l),
            ubuf,
            to_client,
            quick,
            ..
        }) = work.as_deref_mut()
        else {
            return Ok(());
        };
        let up = &mut l.upstream;
        match quick::upstream(up, ubuf, to_client, wanted) {
            Ok(false) => {}
            Ok(true) => {
                up.broken = true;
                return Err(End::Flush);
            }
            Err(e) => {
                up.broken = true;
                return Err(fatal("08P01", &format!("upstream server: {e}")));
            }
        }
        if !up.batches.is_done() || up.relay.in_frame() {
            return Ok(());
        }
        *quick = false;
        self.release_if_idle().await;
        // What the quick path did not take (a frame it cannot take, the start of a batch it
        // would wait for) goes to the `Server`: the client may be waiting for its answers.
        let work = self.work.get_or_insert_with(Box::default);
        work.held = false;
        if !work.cbuf.is_empty() {
            self.server.receive(&work.cbuf);
            work.cbuf.clear();
            return self.client_input().await;
        }
        Ok(())
    }

    /// Transaction mode: gives the connection back once it is idle (nothing in flight, no
    /// transaction open).
    async fn release_if_idle(&mut self) {
        let pid = self.pid();
        let Some(Work {
            lease: lease @ Some(_),
            ..
        }) = self.work.as_deref_mut()
        else {
            return;
        };
        // Not after an error the `Server` forwarded until a ReadyForQuery: the correlator's
        // queue may be empty, but the connection skips what it gets until a Sync.
        let idle = !self.after_error && lease.as_ref().is_some_and(|l| l.upstream.idle());
        if self.shared.mode != Mode::Transaction || !idle {
            return;
        }
        let l = lease.take();
        self.shared.route_cancels(pid, None).await;
        if let Some(l) = l {
            self.shared.pool.release(l);
        }
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
        if self.work.as_ref().is_some_and(|w| w.quick) {
            return self.quick_upstream().await;
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
        if let Some(set) = params::set_query(
            &self.wanted,
            self.shared.pool.told(),
            &lease.upstream.params,
        ) {
            let done = crate::timer::timeout(Duration::from_secs(5), exchange(&mut lease, &set));
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
        work.wakes.disarm(UPSTREAM);
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
        let direct = work.as_ref().is_some_and(|w| w.direct.is_some() || w.quick);
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
        let work = &mut **work.get_or_insert_with(Box::default);
        loop {
            // Nothing in flight before this message (which the poll hands out).
            let alone = server.in_flight() == 0;
            let event = match server.poll_event() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => {
                    move_output(server, &mut work.to_client);
                    return Err(End::Flush);
                }
            };
            let m = match event {
                ServerEvent::Message(m) => m,
                ServerEvent::Terminate | ServerEvent::Closed => return Err(End::Client),
                _ => return Err(fatal("08P01", "unexpected message")),
            };
            if work.lease.is_none() {
                // What needs no upstream connection, when nothing else is in flight.
                match &m {
                    FrontendMessage::Flush => continue,
                    FrontendMessage::Sync if alone => {
                        drop(m);
                        server
                            .ready_for_query(TransactionStatus::Idle)
                            .map_err(|e| fatal("XX000", &e.to_string()))?;
                        continue;
                    }
                    FrontendMessage::Close(c)
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
                take_connection(shared, conn, work, wanted, pid, false).await?;
            }
            let Some(l) = work.lease.as_mut() else {
                continue;
            };
            let up = &mut l.upstream;
            let mut rewrite = Rewrite {
                registry: &shared.registry,
                client: statements,
                upstream: &mut up.statements,
            };
            if let Err(e) = rewrite.message(&m, &mut work.to_upstream, &mut up.correlator) {
                return Err(fatal("53400", &e.to_string()));
            }
            drop(m);
            while let Some(e) = up.correlator.poll_event() {
                settle(e, server, &mut rewrite)?;
            }
        }
        move_output(server, &mut work.to_client);
        Ok(())
    }

    /// Routes what the upstream connection sent; gives the connection back once it is idle
    /// (transaction mode).
    async fn upstream_input(&mut self) -> Result<(), End> {
        let Self {
            shared,
            server,
            statements,
            work,
            wanted,
            after_error,
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
                match piece.header().tag() {
                    // The client's own values now (after a SET, or the proxy's).
                    b'S' => params::record_reported(wanted, body),
                    b'Z' => up.status = body.first().copied().unwrap_or_default(),
                    _ => {}
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
                match piece.header().tag() {
                    b'E' => *after_error = true,
                    b'Z' => *after_error = false,
                    _ => {}
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
        self.release_if_idle().await;
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
            // After an error the `Server` forwarded, the server may skip what comes until a
            // Sync: the next client's requests would be skipped.
            if clean && !self.after_error && lease.upstream.reusable() {
                if self.shared.mode == Mode::Session {
                    let reset = crate::timer::timeout(
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

/// Takes a connection from the pool for the client (what the client waits for goes out
/// first): the cancels of session `pid` go there from now on, and it gets the client's
/// parameters (`wanted`) before anything else, followed by the quick path's [`Batches`]
/// (`quick`) or by the correlator.
///
/// [`Batches`]: crate::quick::Batches
async fn take_connection(
    shared: &Shared,
    conn: &mut Conn,
    work: &mut Work,
    wanted: &[(String, String)],
    pid: i32,
    quick: bool,
) -> Result<(), End> {
    if !work.to_client.is_empty() && conn.write_all(&mut work.to_client).await.is_err() {
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
    if let Some(set) = params::set_query(wanted, shared.pool.told(), &up.params) {
        // The client's parameters first; the answers are not the client's.
        work.to_upstream.extend_from_slice(&set);
        if quick {
            up.batches.own_query();
        } else {
            up.correlator
                .push(Request::Query, Action::Skip, StatementNote::None);
        }
    }
    work.lease = Some(l);
    // The pool's check of the connection registered a waker of its own.
    work.wakes.disarm(UPSTREAM);
    Ok(())
}

/// Writes what waits for the client, within 5 s.
async fn flush_client(conn: &mut Conn, to_client: &mut BytesMut) -> std::io::Result<()> {
    crate::timer::timeout(Duration::from_secs(5), conn.write_all(to_client))
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
