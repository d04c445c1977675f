//! An idle session packed into what it needs between requests ([`SuspendedServer`]).

use std::sync::Arc;

use crate::columns::Columns;
use crate::conn::Core;
use crate::decoder::FrontendDecoder;
use crate::message::backend::BackendKeyData;
use crate::message::common::ProtocolVersion;
use crate::trace::Tracer;
use crate::{ServerConfig, TransactionStatus};

use super::{Phase, Server, Serving};

/// An idle [`Server`] packed into the few fields a session keeps between requests: its
/// configuration, user, protocol version, cancel key, transaction status and counters, and
/// its tracer if it has one; none of the buffers, queues and per-request state of a `Server`
/// (about a quarter of its size, and no heap beyond what those fields own).
///
/// For a program that holds many idle client connections, as a pooler does: a session whose
/// client has gone quiet is [suspended](Server::suspend), kept like this while it waits, and
/// [resumed](SuspendedServer::resume) when the client sends again. The resumed `Server`
/// behaves exactly as the one suspended would have (every later message is decoded, checked
/// and answered the same way).
///
/// ```
/// use pgproto::{Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus};
///
/// let mut server = Server::new(ServerConfig::default());
/// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
/// while let Some(event) = server.poll_event()? {
///     if let ServerEvent::Startup { .. } = event {
///         server.authenticate(ServerAuth::Trust)?;
///     }
/// }
/// while server.poll_transmit().is_some() {} // AuthenticationOk ... ReadyForQuery
///
/// // Idle: suspended while the client is quiet.
/// let idle = server.suspend().expect("idle");
/// assert!(std::mem::size_of_val(&idle) < std::mem::size_of::<Server>() / 3);
/// assert_eq!(idle.user(), "alice");
///
/// // The client sends a query: the session goes on.
/// let mut server = idle.resume();
/// server.receive(b"Q\0\0\0\x0dSELECT 1\0");
/// assert!(matches!(server.poll_event()?, Some(ServerEvent::Message(_))));
/// server.command_complete("SELECT 0")?;
/// server.ready_for_query(TransactionStatus::Idle)?;
/// assert_eq!(
///     server.poll_transmit().unwrap(),
///     &b"C\0\0\0\x0dSELECT 0\0Z\0\0\0\x05I"[..]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SuspendedServer {
    config: Arc<ServerConfig>,
    user: Box<str>,
    backend_key: Option<BackendKeyData>,
    discarded: u64,
    /// `Serving::requests`.
    requests: u64,
    /// `Serving::columns`, kept only when the last request was a Describe of a portal (an
    /// Execute of that portal may still come, and its rows must match the description).
    columns: Option<Box<Columns>>,
    trace: Option<Box<Tracer>>,
    version: ProtocolVersion,
    tls: bool,
    status: TransactionStatus,
}

impl Server {
    /// Packs the session into a [`SuspendedServer`] if it is idle: past start-up (protocol
    /// 3.x), nothing received and not yet handed out, no request in flight, nothing waiting in
    /// [`Server::poll_transmit`], not discarding messages after an error, no frame being
    /// forwarded in pieces, not failed or closed. Otherwise returns the `Server` unchanged, in
    /// `Err`. (A protocol-2.0 session is never suspended.)
    ///
    /// A proxy calls it when its client has been quiet for a while, and
    /// [`SuspendedServer::resume`] when the client's socket is readable again.
    #[allow(clippy::result_large_err)] // the value given, unchanged, as `Rc::try_unwrap` does
    pub fn suspend(mut self) -> Result<SuspendedServer, Self> {
        let idle = self.core.error.is_none()
            && !self.core.eof
            && self.core.events.is_empty()
            && self.core.out.is_empty()
            && self.core.decoder.buffered_len() == 0
            && matches!(&self.phase, Phase::Ready(q) if q.current.is_none()
                && q.behind.is_empty()
                && q.forwarding == 0
                && !q.ignore_till_sync);
        if !idle {
            return Err(self);
        }
        let Phase::Ready(q) = &mut self.phase else {
            return Err(self);
        };
        let columns = std::mem::take(&mut q.columns);
        Ok(SuspendedServer {
            requests: q.requests,
            columns: columns.describing().then(|| Box::new(columns)),
            trace: self.core.trace.take(),
            config: self.config,
            user: self.user,
            backend_key: self.backend_key,
            discarded: self.discarded,
            version: self.version,
            tls: self.tls,
            status: self.status,
        })
    }
}

impl SuspendedServer {
    /// The `Server` again, as it was suspended (its buffers empty: they grow when needed).
    pub fn resume(self) -> Server {
        let mut decoder = FrontendDecoder::after_startup(self.config.limits);
        decoder.skip_malformed_bodies();
        let mut core = Core::new(decoder);
        core.trace = self.trace;
        Server {
            config: self.config,
            core,
            phase: Phase::Ready(Serving {
                requests: self.requests,
                columns: self.columns.map(|c| *c).unwrap_or_default(),
                ..Serving::default()
            }),
            version: self.version,
            tls: self.tls,
            user: self.user,
            backend_key: self.backend_key,
            discarded: self.discarded,
            status: self.status,
        }
    }

    /// The user name from the StartupMessage (as [`Server::user`]).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The cancel key sent to the client (as [`Server::backend_key`]).
    pub fn backend_key(&self) -> Option<&BackendKeyData> {
        self.backend_key.as_ref()
    }

    /// The protocol version of the session (as [`Server::protocol_version`]).
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The transaction status last sent in ReadyForQuery (as
    /// [`Server::transaction_status`]).
    pub fn transaction_status(&self) -> TransactionStatus {
        self.status
    }
}
