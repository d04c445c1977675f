//! The client role: the frontend side of the protocol as a state machine.
//!
//! [`Client`] takes the bytes a server sends and the application's commands, and gives back
//! events and the bytes to send. It owns the protocol's rules: the start-up and encryption
//! handshake, authentication (cleartext, MD5 and SCRAM-SHA-256(-PLUS) computed inside; GSS, SSPI
//! and OAUTHBEARER passed through), version negotiation, and matching each response to the
//! request it answers, through pipelines, errors and COPY.
//!
//! # The run loop
//!
//! After every input ([`Client::receive`], [`Client::receive_eof`], [`Client::tls_established`])
//! and every command ([`Client::query`], [`Client::parse`], ...), the application MUST drain
//! [`Client::poll_event`] until it returns `Ok(None)`, then drain [`Client::poll_transmit`] and
//! write those bytes to the server.

mod config;
mod input;
mod params;
mod pipeline;
mod startup;
mod trace;
mod v2;

use bytes::{Bytes, BytesMut};

pub use config::{
    AuthMethod, ChannelBindingPolicy, ClientConfig, Encryption, RequireAuth, RequireAuthParseError,
};
pub use pipeline::RequestId;

use crate::codec::Encode;
use crate::conn::Core;
use crate::decoder::{BackendDecoder, BackendLent};
use crate::error::{EncodeError, Error, UsageError};
use crate::message::auth::Authentication;
use crate::message::backend::{
    BackendKeyData, BackendMessage, NotificationResponse, ParameterStatus,
};
use crate::message::common::{ProtocolVersion, Target, TransactionStatus};
use crate::message::fields::ErrorFields;
use crate::message::frontend::{
    Bind, Close, CopyData, CopyFail, Describe, Execute, FrontendMessage, FunctionCall, Parse, Query,
};
use crate::message::rows::DataRow;
use crate::message::startup::CancelRequest;
use crate::protocol::{self, Answer, CopyStream, Next, Stage};
use pipeline::{Kind, Pending, Pipeline};
use startup::Startup;

/// What the client tells the application.
///
/// [`Client::poll_event`] returns `ClientEvent<BackendMessage<'_>>`: a response's DataRow or
/// CopyData borrows the client's receive buffer until the next call on the client, so a result
/// set streams through without an allocation per row. [`ClientEvent::into_owned`] gives the
/// owned form, `ClientEvent` (that is, `ClientEvent<BackendMessage<'static>>`), for applications that
/// keep events.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent<M = BackendMessage<'static>> {
    /// The server answered SSLRequest. If `accepted`, the I/O layer MUST now perform the TLS
    /// handshake and then call [`Client::tls_established`]; until then the client sends and
    /// accepts nothing.
    SslResponse {
        /// Whether the server will do TLS.
        accepted: bool,
    },
    /// The server answered GSSENCRequest. If `accepted`, the I/O layer MUST now establish GSSAPI
    /// encryption and then call [`Client::gss_established`].
    GssEncResponse {
        /// Whether the server will do GSSAPI encryption.
        accepted: bool,
    },
    /// The server asks for an authentication step this crate does not compute itself (GSSAPI,
    /// SSPI, or a SASL mechanism other than SCRAM). The application answers with
    /// [`Client::send_auth_response`].
    AuthenticationRequest(Authentication),
    /// The server negotiated the protocol down: the session continues with this version.
    ProtocolNegotiated {
        /// The version in force from now on.
        version: ProtocolVersion,
        /// The protocol options (`_pq_.`) the server did not recognise.
        unrecognized: Vec<Bytes>,
    },
    /// Authentication succeeded.
    Authenticated {
        /// How.
        method: AuthMethod,
    },
    /// A run-time parameter's value (at start-up, or after it changed).
    ParameterStatus(ParameterStatus),
    /// The key needed to cancel queries on this connection.
    BackendKeyData(BackendKeyData),
    /// Start-up is complete: the connection is ready for queries.
    Connected {
        /// The transaction status (normally idle).
        status: TransactionStatus,
    },
    /// A notice or warning from the server.
    Notice(ErrorFields),
    /// A NOTIFY on a channel this session listens to.
    Notification(NotificationResponse),
    /// A response to a request. `message` is one of the response messages (ParseComplete,
    /// RowDescription, DataRow, CommandComplete, ErrorResponse, CopyInResponse, CopyData,
    /// ReadyForQuery...). An ErrorResponse here ends the request; ReadyForQuery ends a Query, a
    /// Sync or a FunctionCall.
    Response {
        /// The request answered.
        request: RequestId,
        /// The response.
        message: M,
    },
    /// The server discarded this request, because an earlier request in the same pipeline failed
    /// (everything up to the next Sync is skipped).
    Skipped {
        /// The request skipped.
        request: RequestId,
    },
    /// An ErrorResponse when no request was in flight (for example, the server shutting down),
    /// or a FATAL (or PANIC) one where the request in flight allows no error (for example
    /// right after a Query's ERROR, when the server ends the session): the connection's end
    /// usually follows.
    UnsolicitedError(ErrorFields),
    /// The connection ended cleanly: the server closed it after Terminate.
    Closed,
    /// The server answered the 3.x start-up with an error in protocol 2.0's format (a server
    /// older than PostgreSQL 7.4, or one that speaks only 2.0), and
    /// [`ClientConfig::min_protocol_version`] allows 2.0. As libpq up to 13 did, the client
    /// falls back: the I/O layer MUST close this connection, open a new one to the same server
    /// and call [`Client::reconnected`]; the client then starts again with protocol 2.0
    /// (SSLRequest if configured, then the 2.0 StartupPacket). Without the fallback, the same
    /// answer fails the connection with [`Error::LegacyServer`].
    FallbackToV2 {
        /// The server's error text, with invalid UTF-8 replaced.
        message: String,
    },
}

impl<M> ClientEvent<M> {
    /// The same event with its response message (if any) mapped by `f`.
    pub fn map_message<N>(self, f: impl FnOnce(M) -> N) -> ClientEvent<N> {
        use ClientEvent as E;
        match self {
            Self::Response { request, message } => E::Response {
                request,
                message: f(message),
            },
            Self::SslResponse { accepted } => E::SslResponse { accepted },
            Self::GssEncResponse { accepted } => E::GssEncResponse { accepted },
            Self::AuthenticationRequest(a) => E::AuthenticationRequest(a),
            Self::ProtocolNegotiated {
                version,
                unrecognized,
            } => E::ProtocolNegotiated {
                version,
                unrecognized,
            },
            Self::Authenticated { method } => E::Authenticated { method },
            Self::ParameterStatus(p) => E::ParameterStatus(p),
            Self::BackendKeyData(k) => E::BackendKeyData(k),
            Self::Connected { status } => E::Connected { status },
            Self::Notice(f) => E::Notice(f),
            Self::Notification(n) => E::Notification(n),
            Self::Skipped { request } => E::Skipped { request },
            Self::UnsolicitedError(f) => E::UnsolicitedError(f),
            Self::Closed => E::Closed,
            Self::FallbackToV2 { message } => E::FallbackToV2 { message },
        }
    }
}

impl ClientEvent<BackendMessage<'_>> {
    /// The event, owned: a borrowed DataRow or CopyData is copied out of the receive buffer.
    pub fn into_owned(self) -> ClientEvent {
        self.map_message(BackendMessage::into_owned)
    }
}

/// Where the connection is; each phase carries the state only it has.
#[derive(Debug)]
enum Phase {
    /// Start-up: encryption, authentication, and waiting for the first ReadyForQuery.
    Startup(Box<Startup>),
    /// Connected.
    Ready(Session),
    /// Terminate was sent; the server will close (responses to earlier requests may still come).
    Terminating(Session),
    /// A protocol-2.0 session, from its first packet to its end (see `v2.rs`).
    V2(Box<v2::Session>),
    /// The connection is over.
    Closed,
}

impl Phase {
    fn session(&self) -> Option<&Session> {
        match self {
            Self::Ready(s) | Self::Terminating(s) => Some(s),
            _ => None,
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            Self::Ready(s) | Self::Terminating(s) => Some(s),
            _ => None,
        }
    }
}

/// The state of a connected session: the requests in flight.
#[derive(Debug, Default)]
struct Session {
    pipeline: Pipeline,
    /// Where the request at the front of the pipeline is (see [`crate::protocol`]).
    stage: Stage,
    /// The column count each DataRow must have.
    columns: crate::columns::Columns,
    scratch: Vec<RequestId>,
}

impl Session {
    fn state_name(&self) -> &'static str {
        if self.stage.in_copy() {
            self.stage.name()
        } else if self.pipeline.is_empty() {
            "idle"
        } else {
            "waiting for responses"
        }
    }

    /// Reports the requests the server discards after an extended-query error.
    fn discard(&mut self, events: &mut std::collections::VecDeque<ClientEvent>) {
        self.scratch.clear();
        self.pipeline.discard_until_sync(&mut self.scratch);
        for id in self.scratch.drain(..) {
            events.push_back(ClientEvent::Skipped { request: id });
        }
    }
}

/// The frontend state machine: one connection to a server, seen from the client.
///
/// Its methods come in four groups, in this order below:
///
/// - **getters**: [`transaction_status`](Self::transaction_status),
///   [`protocol_version`](Self::protocol_version), [`parameter`](Self::parameter),
///   [`backend_key`](Self::backend_key), [`cancel_request`](Self::cancel_request),
///   [`pending_requests`](Self::pending_requests), [`is_ready`](Self::is_ready), ...;
/// - **input**: [`receive`](Self::receive), [`receive_eof`](Self::receive_eof),
///   [`tls_established`](Self::tls_established), [`gss_established`](Self::gss_established);
/// - **commands**: [`query`](Self::query), [`parse`](Self::parse), [`bind`](Self::bind),
///   [`describe`](Self::describe), [`execute`](Self::execute), [`close`](Self::close),
///   [`sync`](Self::sync), [`flush`](Self::flush), [`function_call`](Self::function_call),
///   [`copy_data`](Self::copy_data), [`copy_done`](Self::copy_done),
///   [`copy_fail`](Self::copy_fail), [`send_auth_response`](Self::send_auth_response),
///   [`terminate`](Self::terminate); each returns the [`RequestId`] its responses will carry
///   (where the server answers it) or a [`UsageError`], and sends nothing on error;
/// - **output**: [`poll_event`](Self::poll_event), then [`poll_transmit`](Self::poll_transmit).
///
/// After every input and every command, drain `poll_event` until `Ok(None)`, then
/// `poll_transmit` (see the [crate documentation](crate#the-run-loop)). Requests may be
/// pipelined: every response names the request it answers, and requests the server skips after
/// an error (until the next Sync) are reported as [`ClientEvent::Skipped`].
///
/// A request that may turn into COPY FROM STDIN (a Query or an Execute) MUST NOT have requests
/// other than Sync pipelined behind it: PostgreSQL reads nothing but COPY data during the copy,
/// ignores Sync (the client sends those Syncs again when the copy ends, see
/// [`Client::copy_done`]) and ends the session on anything else, with ERROR then FATAL 08P01.
/// libpq refuses COPY in pipeline mode for that reason.
///
/// Every DataRow is checked against what announced it, as libpq does: the RowDescription of its
/// result set (or of the Describe of the portal sent right before its Execute), or else the
/// first row of the result. A row of another column count, or one that nothing announced, fails
/// the connection with [`Error::UnexpectedFieldCount`].
///
/// ```
/// use pgproto::{Client, ClientConfig, ClientEvent};
///
/// let mut client = Client::new(ClientConfig::new("alice")).unwrap();
/// let startup = client.poll_transmit().unwrap(); // the StartupMessage
/// assert_eq!(&startup[4..8], &[0, 3, 0, 0]);
/// // A trusting server: AuthenticationOk, then ReadyForQuery (idle).
/// client.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
/// let mut events = Vec::new();
/// while let Some(e) = client.poll_event().unwrap() {
///     events.push(e.into_owned());
/// }
/// assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
/// let q = client.query("SELECT 1").unwrap();
/// assert!(client.poll_transmit().is_some());
/// # let _ = q;
/// ```
#[derive(Debug)]
pub struct Client {
    core: Core<BackendDecoder, ClientEvent>,
    phase: Phase,
    status: Option<TransactionStatus>,
    version: ProtocolVersion,
    auth_method: Option<AuthMethod>,
    backend_key: Option<BackendKeyData>,
    /// Parameter names and values, stored compactly (they outlive the frames they came in).
    params: params::Params,
    tls: bool,
    /// The request that a DataRow arriving now would answer, when nothing else (a queued event,
    /// an error, COPY, start-up) stands in the way: the row fast path of `poll_event`. Kept up to
    /// date by every change of the pipeline's front and of the phase.
    row_request: Option<RequestId>,
    /// The column count of a DataRow for `row_request` (see `src/columns.rs`).
    row_columns: u16,
}

/// What one step of the machine came to.
enum Step {
    /// Something was handled; step again.
    Again,
    /// More input is needed.
    Wait,
    /// A response to hand to the application.
    Deliver(RequestId, BackendLent),
}

impl Client {
    /// A client that will start the connection described by `config`. The first bytes to send
    /// (SSLRequest, GSSENCRequest or StartupMessage) are queued at once, except with
    /// [`Encryption::DirectSsl`], where the TLS handshake comes first.
    ///
    /// With [`ClientConfig::max_protocol_version`] 2.0 (and the minimum 2.0 too), the client
    /// speaks protocol 2.0 from the start: SSLRequest if configured, then the 2.0 StartupPacket
    /// (see [`crate::v2`] for what 2.0 does differently, and [`ClientEvent::FallbackToV2`] for
    /// the fallback a minimum of 2.0 allows).
    ///
    /// Fails if the configuration cannot be sent: a NUL inside a parameter, protocol versions
    /// other than 2.0, 3.0 and 3.2 (or a minimum above the maximum), or over 2.0 a user, database
    /// or options longer than the StartupPacket's fields (32, 64, 64 bytes), GSSAPI encryption or
    /// direct TLS.
    pub fn new(config: ClientConfig) -> Result<Self, UsageError> {
        let mut core = Core::new(BackendDecoder::with_limits(config.limits));
        let (phase, version) = if config.max_protocol_version == ProtocolVersion::V2_0 {
            if config.min_protocol_version != ProtocolVersion::V2_0 {
                return Err(UsageError::InvalidConfig {
                    reason: "protocol versions must be 2.0, 3.0 or 3.2, with min <= max",
                });
            }
            let session = v2::Session::new(config, &mut core.out)?;
            (Phase::V2(Box::new(session)), ProtocolVersion::V2_0)
        } else {
            let startup = Startup::new(config, &mut core.decoder, &mut core.out)?;
            (Phase::Startup(Box::new(startup)), ProtocolVersion::V3_0)
        };
        Ok(Self {
            core,
            phase,
            status: None,
            version,
            auth_method: None,
            backend_key: None,
            params: params::Params::default(),
            tls: false,
            row_request: None,
            row_columns: 0,
        })
    }

    // ---- (A) getters ----

    /// The transaction status from the last ReadyForQuery; `None` before start-up completes.
    pub fn transaction_status(&self) -> Option<TransactionStatus> {
        match &self.phase {
            // 2.0 does not report it: derived from command tags and errors, as libpq 13 does.
            Phase::V2(s) if s.is_ready() => Some(s.status),
            Phase::V2(_) => None,
            _ => self.status,
        }
    }

    /// The protocol version in force.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// How the server authenticated us, once it has.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        match &self.phase {
            Phase::V2(s) if s.is_ready() => s.method,
            Phase::V2(_) => None,
            _ => self.auth_method,
        }
    }

    /// The cancel key the server sent.
    pub fn backend_key(&self) -> Option<&BackendKeyData> {
        match &self.phase {
            Phase::V2(s) => s.key.as_ref(),
            _ => self.backend_key.as_ref(),
        }
    }

    /// The last reported value of a run-time parameter (`server_version`, `client_encoding`...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// Whether start-up has completed and the connection is usable.
    pub fn is_ready(&self) -> bool {
        let ready = match &self.phase {
            Phase::Ready(_) => true,
            Phase::V2(s) => s.is_ready(),
            _ => false,
        };
        ready && self.core.error.is_none()
    }

    /// Whether the transport is encrypted with TLS (as reported by the I/O layer).
    pub fn is_tls(&self) -> bool {
        match &self.phase {
            Phase::V2(s) => s.tls,
            _ => self.tls,
        }
    }

    /// The number of requests waiting for their answer.
    pub fn pending_requests(&self) -> usize {
        if let Phase::V2(s) = &self.phase {
            return s.pending();
        }
        self.phase.session().map_or(0, |s| s.pipeline.len())
    }

    /// The number of ReadyForQuery messages still expected.
    pub fn pending_sync_points(&self) -> usize {
        if let Phase::V2(s) = &self.phase {
            // Every 2.0 request ends with ReadyForQuery.
            return s.pending();
        }
        self.phase.session().map_or(0, |s| s.pipeline.sync_points())
    }

    /// Whether bytes are waiting in [`Client::poll_transmit`].
    pub fn wants_write(&self) -> bool {
        !self.core.out.is_empty()
    }

    /// Bytes received and not yet decoded (messages are decoded lazily, by `poll_event`): never
    /// more than was given to `receive`. Nothing more is buffered once an error has occurred.
    pub fn buffered_len(&self) -> usize {
        match &self.phase {
            Phase::V2(s) => s.decoder.buffered_len(),
            _ => self.core.decoder.buffered_len(),
        }
    }

    /// A CancelRequest for this connection, to send on a new connection to the same server; `None`
    /// until the server has sent its key.
    pub fn cancel_request(&self) -> Option<CancelRequest> {
        let k = self.backend_key()?;
        CancelRequest::new(k.process_id(), k.secret_key()).ok()
    }

    // ---- (B) input ----

    /// Buffers bytes received from the server. Never fails: problems surface from
    /// [`Client::poll_event`].
    pub fn receive(&mut self, data: &[u8]) {
        if let Phase::V2(s) = &mut self.phase {
            if self.core.error.is_none() {
                s.decoder.receive(data);
            }
            return;
        }
        let closed = matches!(self.phase, Phase::Closed);
        self.core.receive(data, closed);
    }

    /// The I/O layer opened the new connection that [`ClientEvent::FallbackToV2`] asked for
    /// (and dropped the old one): the client starts again with protocol 2.0, queuing SSLRequest
    /// or the 2.0 StartupPacket.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the client is waiting for that connection,
    /// and with [`UsageError::Closed`] after a connection error.
    pub fn reconnected(&mut self) -> Result<(), UsageError> {
        if self.core.error.is_some() {
            return Err(UsageError::Closed);
        }
        let Phase::V2(s) = &mut self.phase else {
            return Err(UsageError::NotAllowed {
                command: "report a new connection",
                state: self.state_name(),
            });
        };
        // What was queued for the old connection is dropped with it.
        let mut out = BytesMut::new();
        s.reconnected(&mut out)?;
        self.core.eof = false;
        self.core.out = out;
        Ok(())
    }

    /// Records that the server closed the connection.
    pub fn receive_eof(&mut self) {
        self.core.eof = true;
    }

    /// The I/O layer finished the TLS handshake (after [`ClientEvent::SslResponse`] accepted it,
    /// or first of all with [`Encryption::DirectSsl`]). `server_end_point` is the
    /// tls-server-end-point channel-binding data: the hash of the server's certificate (RFC 5929),
    /// or `None` if it is not available.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the client is waiting for this handshake;
    /// unencrypted bytes already received are not reported here but end the connection with
    /// [`Error::BufferedBeforeEncryption`], returned by [`Client::poll_event`].
    pub fn tls_established(&mut self, server_end_point: Option<Vec<u8>>) -> Result<(), UsageError> {
        if let Phase::V2(s) = &mut self.phase {
            return match s.tls_established(&mut self.core.out) {
                Ok(()) => Ok(()),
                Err(Ok(e)) => Err(e),
                Err(Err(e)) => {
                    self.core.error = Some(Box::new(e));
                    Ok(())
                }
            };
        }
        let Phase::Startup(s) = &mut self.phase else {
            return Err(UsageError::NotAllowed {
                command: "establish TLS",
                state: self.state_name(),
            });
        };
        match s.encryption_established(
            true,
            server_end_point,
            &mut self.core.decoder,
            &mut self.core.out,
        ) {
            Ok(()) => {
                self.tls = true;
                Ok(())
            }
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => {
                self.core.error = Some(Box::new(e));
                Ok(())
            }
        }
    }

    /// The I/O layer established GSSAPI encryption after [`ClientEvent::GssEncResponse`].
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the client is waiting for GSSAPI encryption;
    /// unencrypted bytes already received end the connection as in
    /// [`Client::tls_established`].
    pub fn gss_established(&mut self) -> Result<(), UsageError> {
        let Phase::Startup(s) = &mut self.phase else {
            return Err(UsageError::NotAllowed {
                command: "establish GSSAPI encryption",
                state: self.state_name(),
            });
        };
        match s.encryption_established(false, None, &mut self.core.decoder, &mut self.core.out) {
            Ok(()) => Ok(()),
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => {
                self.core.error = Some(Box::new(e));
                Ok(())
            }
        }
    }

    // ---- (C) commands ----

    fn check_command(&self, command: &'static str) -> Result<(), UsageError> {
        if self.core.error.is_some() {
            return Err(UsageError::Closed);
        }
        match self.phase {
            Phase::Ready(_) => {}
            Phase::Closed | Phase::Terminating(_) => return Err(UsageError::Closed),
            Phase::V2(_) => {
                return Err(UsageError::NotAllowed {
                    command,
                    state: "using protocol 2.0, which has no extended query protocol",
                })
            }
            Phase::Startup(_) => {
                return Err(UsageError::NotAllowed {
                    command,
                    state: "starting up",
                })
            }
        }
        if self.stage().frontend_sending() {
            return Err(UsageError::NotAllowed {
                command,
                state: "copying data to the server",
            });
        }
        Ok(())
    }

    /// The 2.0 session and the output buffer, if the connection speaks 2.0 (checked for a
    /// connection error first).
    fn v2_session(&mut self) -> Result<Option<(&mut v2::Session, &mut BytesMut)>, UsageError> {
        match &mut self.phase {
            Phase::V2(_) if self.core.error.is_some() => Err(UsageError::Closed),
            Phase::V2(s) => Ok(Some((s, &mut self.core.out))),
            _ => Ok(None),
        }
    }

    fn request(&mut self, kind: Kind, msg: &dyn Encode) -> RequestId {
        msg.encode(&mut self.core.out);
        self.register(kind)
    }

    /// Like `request`, for a message `encode` writes straight into the output buffer (no
    /// message built, no allocation); `encode` writes nothing when it fails.
    fn request_encoded(
        &mut self,
        kind: Kind,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<RequestId, UsageError> {
        self.request_portal(kind, "", encode)
    }

    /// Like `request_encoded`, for a Describe or an Execute of `portal`.
    fn request_portal(
        &mut self,
        kind: Kind,
        portal: &str,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<RequestId, UsageError> {
        encode(&mut self.core.out)?;
        Ok(self.register_portal(kind, portal))
    }

    /// Allocates the id of a request just written and queues what it expects.
    fn register(&mut self, kind: Kind) -> RequestId {
        self.register_portal(kind, "")
    }

    /// `register`, for a request that names `portal` (a Describe or an Execute).
    fn register_portal(&mut self, kind: Kind, portal: &str) -> RequestId {
        let Some(session) = self.phase.session_mut() else {
            // `check_command` let it through: only a connected session gets here.
            return RequestId(0);
        };
        let id = session.pipeline.allocate();
        let described = session.columns.sent(kind, portal.as_bytes());
        if !session.pipeline.push(Pending {
            id,
            kind,
            described,
        }) {
            self.core
                .events
                .push_back(ClientEvent::Skipped { request: id });
        }
        self.update_row_request();
        id
    }

    /// Sends a simple Query (one or more statements).
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server, or
    /// with [`UsageError::Encode`] when `sql` contains NUL or is too long for one message.
    pub fn query(&mut self, sql: &str) -> Result<RequestId, UsageError> {
        if let Some((s, out)) = self.v2_session()? {
            return s.query(sql, out);
        }
        self.check_command("send Query")?;
        self.request_encoded(Kind::Query, |out| Query::encode_str(out, sql))
    }

    /// Sends Parse: prepares `sql` as statement `name` (empty for the unnamed statement).
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server, or
    /// with [`UsageError::Encode`] when `name` or `sql` contains NUL, `param_types` has more
    /// than 65,535 entries, or the message is too long.
    pub fn parse(
        &mut self,
        name: &str,
        sql: &str,
        param_types: &[u32],
    ) -> Result<RequestId, UsageError> {
        self.check_command("send Parse")?;
        self.request_encoded(Kind::Parse, |out| {
            Parse::encode_values(out, name, sql, param_types)
        })
    }

    /// Sends Bind.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, or with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server (the
    /// message itself was checked when it was built).
    pub fn bind(&mut self, bind: &Bind) -> Result<RequestId, UsageError> {
        self.check_command("send Bind")?;
        Ok(self.request(Kind::Bind, bind))
    }

    /// Sends Describe of a statement or portal.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server, or
    /// with [`UsageError::Encode`] when `name` contains NUL or is too long for one message.
    pub fn describe(&mut self, target: Target, name: &str) -> Result<RequestId, UsageError> {
        self.check_command("send Describe")?;
        let kind = match target {
            Target::Statement => Kind::DescribeStatement,
            Target::Portal => Kind::DescribePortal,
        };
        self.request_portal(kind, name, |out| Describe::encode_values(out, target, name))
    }

    /// Sends Execute: runs `portal`, returning at most `max_rows` rows (0 for all).
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server, or
    /// with [`UsageError::Encode`] when `portal` contains NUL or is too long for one message.
    pub fn execute(&mut self, portal: &str, max_rows: i32) -> Result<RequestId, UsageError> {
        self.check_command("send Execute")?;
        self.request_portal(Kind::Execute, portal, |out| {
            Execute::encode_values(out, portal, max_rows)
        })
    }

    /// Sends Close of a statement or portal.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server, or
    /// with [`UsageError::Encode`] when `name` contains NUL or is too long for one message.
    pub fn close(&mut self, target: Target, name: &str) -> Result<RequestId, UsageError> {
        self.check_command("send Close")?;
        self.request_encoded(Kind::Close, |out| Close::encode_values(out, target, name))
    }

    /// Sends Sync: ends an extended-query pipeline segment; answered by ReadyForQuery.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, or with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server.
    pub fn sync(&mut self) -> Result<RequestId, UsageError> {
        self.check_command("send Sync")?;
        Ok(self.request(Kind::Sync, &FrontendMessage::Sync))
    }

    /// Sends Flush: asks the server to send what it has buffered. No response of its own.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, or with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server.
    pub fn flush(&mut self) -> Result<(), UsageError> {
        self.check_command("send Flush")?;
        FrontendMessage::Flush.encode(&mut self.core.out);
        Ok(())
    }

    /// Sends a FunctionCall.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error or Terminate, or with
    /// [`UsageError::NotAllowed`] during start-up or while copying data to the server (the
    /// message itself was checked when it was built).
    pub fn function_call(&mut self, call: &FunctionCall) -> Result<RequestId, UsageError> {
        if let Some((s, out)) = self.v2_session()? {
            return s.function_call(call, out);
        }
        self.check_command("send FunctionCall")?;
        Ok(self.request(Kind::FunctionCall, call))
    }

    fn copy_sending(&self) -> Result<(), UsageError> {
        if self.core.error.is_some() {
            return Err(UsageError::Closed);
        }
        if self.stage().frontend_sending() {
            return Ok(());
        }
        Err(UsageError::NotAllowed {
            command: "send COPY data",
            state: if self.stage().in_copy() {
                "in COPY without a client data stream"
            } else {
                "not in COPY"
            },
        })
    }

    /// Sends CopyData during COPY FROM STDIN or CopyBoth.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error, or with
    /// [`UsageError::NotAllowed`] unless a COPY FROM STDIN or CopyBoth is under way and the
    /// client has not yet ended its data stream; or with [`UsageError::Encode`] when
    /// `data` is too long for one message.
    pub fn copy_data(&mut self, data: &[u8]) -> Result<(), UsageError> {
        if let Some((s, out)) = self.v2_session()? {
            return s.copy_data(data, out);
        }
        self.copy_sending()?;
        CopyData::new(Bytes::copy_from_slice(data))?.encode(&mut self.core.out);
        Ok(())
    }

    /// Sends one replication message in a CopyData during CopyBoth (a standby status update,
    /// hot standby feedback; see [`crate::replication`]) or COPY FROM STDIN: what
    /// [`Client::copy_data`] sends, written without building the payload first.
    ///
    /// Fails as [`Client::copy_data`] does.
    ///
    /// ```
    /// use pgproto::replication::{Lsn, StandbyStatusUpdate, Timestamp};
    /// # let mut client = pgproto::Client::new(pgproto::ClientConfig::new("u")).unwrap();
    /// let lsn = Lsn::new(0x300_0000);
    /// let reply = StandbyStatusUpdate::new(lsn, lsn, lsn, Timestamp::EPOCH, false);
    /// // Not in CopyBoth yet: refused, nothing sent.
    /// assert!(client.copy_payload(&reply).is_err());
    /// ```
    pub fn copy_payload(
        &mut self,
        message: &impl crate::replication::Payload,
    ) -> Result<(), UsageError> {
        self.copy_sending()?;
        message.encode_copy_data(&mut self.core.out);
        Ok(())
    }

    /// Sends CopyDone: the client's data is complete.
    ///
    /// After COPY FROM STDIN, it also sends again every Sync queued right behind the request that
    /// started the COPY: the server ignored them during the copy (drivers send Parse, Bind,
    /// Execute and Sync before they know the statement is a COPY), and each is then answered by
    /// its ReadyForQuery as usual. libpq sends a Sync after CopyDone in that case too. When the
    /// server fails the COPY while the client is still sending, the client sends those Syncs as
    /// soon as [`Client::poll_event`] hands out the ErrorResponse, and the COPY is over: no more
    /// COPY data may be sent.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error, or with
    /// [`UsageError::NotAllowed`] unless a COPY FROM STDIN or CopyBoth is under way and the
    /// client has not yet ended its data stream (with CopyDone or CopyFail).
    pub fn copy_done(&mut self) -> Result<(), UsageError> {
        if let Some((s, out)) = self.v2_session()? {
            return s.copy_done(out);
        }
        self.copy_sending()?;
        FrontendMessage::CopyDone.encode(&mut self.core.out);
        self.set_client_copy_done();
        Ok(())
    }

    /// Sends CopyFail: aborts COPY FROM STDIN with `message`. The Syncs the server ignored
    /// during the copy are sent again, as after [`Client::copy_done`].
    ///
    /// Fails with [`UsageError::Closed`] after a connection error, or with
    /// [`UsageError::NotAllowed`] unless a COPY FROM STDIN or CopyBoth is under way and the
    /// client has not yet ended its data stream; or with [`UsageError::Encode`] when
    /// `message` contains NUL or is too long for one message.
    pub fn copy_fail(&mut self, message: &str) -> Result<(), UsageError> {
        if self.v2_session()?.is_some() {
            return Err(UsageError::NotAllowed {
                command: "send CopyFail",
                state: "using protocol 2.0, which has no CopyFail",
            });
        }
        self.copy_sending()?;
        CopyFail::new(message)?.encode(&mut self.core.out);
        self.set_client_copy_done();
        Ok(())
    }

    fn set_client_copy_done(&mut self) {
        if let Some(session) = self.phase.session_mut() {
            if session.stage == Stage::CopyIn {
                session.pipeline.resend_ignored_syncs(&mut self.core.out);
            }
            if let Some(stage) = protocol::next_frontend(session.stage, CopyStream::CopyDone) {
                session.stage = stage;
            }
        }
    }

    /// Answers an [`ClientEvent::AuthenticationRequest`] with a GSSResponse,
    /// SASLInitialResponse or SASLResponse that the application computed.
    ///
    /// Fails with [`UsageError::Closed`] after a connection error, or with
    /// [`UsageError::NotAllowed`] unless the client is waiting for the application's answer to
    /// an [`ClientEvent::AuthenticationRequest`] and `message` is one of those three kinds.
    pub fn send_auth_response(&mut self, message: &FrontendMessage) -> Result<(), UsageError> {
        if self.core.error.is_some() {
            return Err(UsageError::Closed);
        }
        let Phase::Startup(s) = &mut self.phase else {
            return Err(UsageError::NotAllowed {
                command: "send an authentication response",
                state: self.state_name(),
            });
        };
        s.external_response(message, &mut self.core.out)
    }

    /// Sends Terminate. The server then closes the connection, which the I/O layer reports with
    /// [`Client::receive_eof`].
    ///
    /// Fails with [`UsageError::Closed`] once Terminate was sent or [`Client::poll_event`] has
    /// returned an error; it is allowed in every other state, start-up and COPY included.
    pub fn terminate(&mut self) -> Result<(), UsageError> {
        if let Some((s, out)) = self.v2_session()? {
            return s.terminate(out);
        }
        if matches!(self.phase, Phase::Closed | Phase::Terminating(_)) {
            return Err(UsageError::Closed);
        }
        FrontendMessage::Terminate.encode(&mut self.core.out);
        let session = match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Ready(s) => s,
            // During start-up nothing is in flight.
            _ => Session::default(),
        };
        self.phase = Phase::Terminating(session);
        Ok(())
    }

    /// Frees the memory of empty buffers and queues, so that an idle connection holds little
    /// more than its parameters and key. Call it when the connection goes idle (for example
    /// in a pooler, after ReadyForQuery); the buffers grow again when needed.
    pub fn release_buffers(&mut self) {
        self.core.release_buffers();
        if let Phase::V2(s) = &mut self.phase {
            s.decoder.release_buffer();
        }
        if let Some(session) = self.phase.session_mut() {
            session.scratch = Vec::new();
            session.pipeline.shrink();
            session.columns.shrink();
        }
    }

    // ---- (D) output ----

    /// The bytes to send to the server, whole messages only; `None` when there are none. The
    /// output buffer keeps its memory for the next messages: [`Client::release_buffers`] frees
    /// it.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.core.poll_transmit()
    }

    /// The row fast path, beside [`Client::poll_event`]: the next DataRow and the request it
    /// answers, when the next message is a whole DataRow of the announced width for the request
    /// in flight and no event is queued before it; `None` in every other case, with nothing
    /// consumed, and [`Client::poll_event`] hands out whatever comes next (rows included, and
    /// the error a row of the wrong width is). The intended loop drains rows with this and
    /// everything else with `poll_event`, as [`BackendDecoder::next_data_row`] and
    /// [`BackendDecoder::next_ref`] do for the decoder; the event is two words smaller than
    /// `poll_event`'s, which is what makes it faster. The row borrows the receive buffer until
    /// the next call that takes `&mut self`; its values are checked as they are read
    /// ([`crate::Columns`]).
    ///
    /// ```
    /// use pgproto::{BackendMessage, Client, ClientConfig, ClientEvent};
    ///
    /// let mut client = Client::new(ClientConfig::new("alice"))?;
    /// # while client.poll_transmit().is_some() {}
    /// client.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I"); // AuthenticationOk, ReadyForQuery
    /// while client.poll_event()?.is_some() {}
    /// let q = client.query("SELECT 'a'")?;
    /// // RowDescription (one text column), two DataRows, CommandComplete, ReadyForQuery.
    /// client.receive(b"T\0\0\0\x1a\0\x01a\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0");
    /// client.receive(b"D\0\0\0\x0b\0\x01\0\0\0\x01xD\0\0\0\x0b\0\x01\0\0\0\x01y");
    /// client.receive(b"C\0\0\0\x0dSELECT 2\0Z\0\0\0\x05I");
    /// let mut rows = Vec::new();
    /// loop {
    ///     while let Some((request, row)) = client.poll_row() {
    ///         assert_eq!(request, q);
    ///         for value in row.columns() {
    ///             rows.push(value?.map(<[u8]>::to_vec));
    ///         }
    ///     }
    ///     match client.poll_event()? {
    ///         None => break,
    ///         // A row `poll_row` left (for example the first of a result whose width nothing
    ///         // announced).
    ///         Some(ClientEvent::Response { message: BackendMessage::DataRow(row), .. }) => {
    ///             for value in row.columns() {
    ///                 rows.push(value?.map(<[u8]>::to_vec));
    ///             }
    ///         }
    ///         Some(_) => {} // RowDescription, CommandComplete, ReadyForQuery...
    ///     }
    /// }
    /// assert_eq!(rows, [Some(b"x".to_vec()), Some(b"y".to_vec())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn poll_row(&mut self) -> Option<(RequestId, DataRow<'_>)> {
        let request = self.row_request?;
        let (at, end, count) = self.core.decoder.take_row_of(Some(self.row_columns))?;
        Some((request, self.core.decoder.row_view(at, end, count)))
    }

    /// The next event, `Ok(None)` when more input is needed. Events decoded before an error are
    /// delivered first; then the error, from this and every later call.
    ///
    /// A response's DataRow or CopyData borrows the receive buffer until the next call that
    /// takes `&mut self`; [`ClientEvent::into_owned`] keeps it longer.
    #[inline]
    pub fn poll_event(&mut self) -> Result<Option<ClientEvent<BackendMessage<'_>>>, Error> {
        // The row fast path: a whole DataRow for the request in flight, nothing queued.
        if let Some(request) = self.row_request {
            if let Some((at, end, count)) = self.core.decoder.take_row() {
                if count != self.row_columns {
                    return Err(self.fail_row(count));
                }
                return Ok(Some(ClientEvent::Response {
                    request,
                    message: BackendMessage::DataRow(self.core.decoder.row_view(at, end, count)),
                }));
            }
        }
        self.poll_event_general()
    }

    fn poll_event_general(&mut self) -> Result<Option<ClientEvent<BackendMessage<'_>>>, Error> {
        loop {
            if let Some(e) = self.core.events.pop_front() {
                self.update_row_request();
                return Ok(Some(e));
            }
            if let Some(e) = &self.core.error {
                return Err((**e).clone());
            }
            let step = self.step();
            self.update_row_request();
            match step {
                Ok(Step::Again) => {}
                Ok(Step::Wait) => return Ok(None),
                Ok(Step::Deliver(request, lent)) => {
                    return Ok(Some(ClientEvent::Response {
                        request,
                        message: self.core.decoder.view(lent),
                    }))
                }
                Err(e) => {
                    self.phase = Phase::Closed;
                    self.core.error = Some(Box::new(e));
                    self.row_request = None;
                }
            }
        }
    }

    /// A DataRow on the fast path has the wrong number of columns: the connection fails.
    #[cold]
    #[inline(never)]
    fn fail_row(&mut self, count: u16) -> Error {
        let e = Error::UnexpectedFieldCount {
            expected: Some(self.row_columns),
            received: count,
        };
        self.phase = Phase::Closed;
        self.core.error = Some(Box::new(e.clone()));
        self.row_request = None;
        e
    }

    /// Where the request at the front of the pipeline is; `Start` outside a session.
    fn stage(&self) -> Stage {
        self.phase.session().map_or(Stage::Start, |s| s.stage)
    }

    /// Recomputes the row fast path's request, and the column count its rows must have, after
    /// any change of state.
    #[inline]
    fn update_row_request(&mut self) {
        let row = match (self.phase.session(), &self.core.error) {
            (Some(session), None)
                if session.stage == Stage::Start && self.core.events.is_empty() =>
            {
                session
                    .pipeline
                    .front()
                    .filter(|p| matches!(p.kind, Kind::Query | Kind::Execute))
                    .and_then(|p| Some((p.id, session.columns.known(p.id.0)?)))
            }
            _ => None,
        };
        self.row_request = row.map(|(id, _)| id);
        self.row_columns = row.map_or(0, |(_, n)| n);
    }

    fn state_name(&self) -> &'static str {
        match &self.phase {
            Phase::Startup(s) => s.state_name(),
            Phase::V2(s) => s.state_name(),
            Phase::Ready(session) => session.state_name(),
            Phase::Terminating(_) => "terminating",
            Phase::Closed => "closed",
        }
    }
}

/// Whether an ErrorResponse ends the session (severity FATAL or PANIC).
fn is_fatal(fields: &ErrorFields) -> bool {
    matches!(
        fields.severity_nonlocalized().or(fields.severity()),
        Some(b"FATAL" | b"PANIC")
    )
}
