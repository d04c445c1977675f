//! The server role: the backend side of the protocol as a state machine.
//!
//! [`Server`] takes the bytes a client sends and the application's answers, and gives back
//! events and the bytes to send. It keeps the protocol's rules: the encryption and start-up
//! handshake with version negotiation, authentication (trust, cleartext, MD5 and
//! SCRAM-SHA-256(-PLUS) verified inside; GSS, SSPI and other SASL mechanisms passed through),
//! one request answered at a time in order, ReadyForQuery closing each Query and Sync,
//! PostgreSQL's discard-until-Sync after an extended-query error, and COPY.
//!
//! # The run loop
//!
//! After every input ([`Server::receive`], [`Server::receive_eof`], [`Server::tls_established`])
//! and every answer ([`Server::data_row`], [`Server::ready_for_query`], ...), the application
//! MUST drain [`Server::poll_event`] until it returns `Ok(None)`, then drain
//! [`Server::poll_transmit`] and write those bytes to the client.
//!
//! # One request at a time (by default)
//!
//! Like a PostgreSQL backend, the machine hands out the next frontend message only once the
//! previous one is answered (a proxy raises [`ServerConfig::pipeline_depth`] to have a pipeline
//! handed out as it arrives, see [`Server`]): Parse by ParseComplete, Bind by BindComplete, Describe by
//! RowDescription or NoData, Execute by CommandComplete, EmptyQueryResponse or PortalSuspended,
//! Close by CloseComplete, Query, Sync and FunctionCall by ReadyForQuery; any of them by
//! ErrorResponse. While a message waits for its answer, `poll_event` returns `Ok(None)`.
//! After an ErrorResponse to an extended-query message, the machine itself discards messages
//! until Sync, as PostgreSQL does ([`Server::discarded`] counts them).

mod answers;
mod config;
mod control;
mod forward;
mod input;
mod startup;
mod suspend;
mod trace;
mod v2;

use bytes::Bytes;

pub use config::{os_random, ServerAuth, ServerConfig, StartupEnd};
pub use suspend::SuspendedServer;

use crate::codec::Encode;
use crate::columns::Columns;
use crate::conn::Core;
use crate::decoder::{FrontendDecoder, FrontendLent, Layout};
use crate::error::{AuthError, DecodeError, Error, UsageError};
use crate::message::auth::Authentication;
use crate::message::backend::{
    BackendKeyData, BackendMessage, NegotiateProtocolVersion, NotificationResponse, ParameterStatus,
};
use crate::message::common::{ProtocolVersion, TransactionStatus};
use crate::message::fields::ErrorFields;
use crate::message::frontend::tag as ftag;
use crate::message::frontend::{AuthResponseKind, FrontendMessage};
use crate::message::startup::{CancelRequest, StartupMessage};
use crate::protocol::{self, CopyStream, Request, Stage};
use startup::{ScramStep, State};

/// What the server tells the application.
///
/// [`Server::poll_event`] returns `ServerEvent<FrontendMessage<'_>>`: the messages of a query
/// (Parse, Bind, Describe, Execute, Close, Sync, Flush, Query, CopyData) borrow the server's
/// receive buffer until the next call on the server (one message type either way: borrowed
/// or owned is only its lifetime), so a pipeline is served without an
/// allocation per message. [`ServerEvent::into_owned`] gives the owned form, `ServerEvent`
/// (that is, `ServerEvent<FrontendMessage<'static>>`), for applications that keep events.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent<M = FrontendMessage<'static>> {
    /// The client asks for TLS. The application MUST answer with [`Server::accept_ssl`].
    SslRequest,
    /// The client asks for GSSAPI encryption. The application MUST answer with
    /// [`Server::accept_gssenc`].
    GssEncRequest,
    /// The client began with a TLS handshake (direct SSL, PostgreSQL 17 and later). The I/O layer
    /// MUST take the bytes with [`Server::take_buffered`], perform TLS (checking ALPN
    /// `postgresql`), then call [`Server::tls_established`].
    DirectTls,
    /// A CancelRequest. The connection ends after it.
    CancelRequest(CancelRequest),
    /// The StartupMessage. The application MUST answer with [`Server::authenticate`] or
    /// [`Server::reject`].
    Startup {
        /// The message as sent.
        message: StartupMessage,
        /// The protocol version the session will use (after negotiation).
        version: ProtocolVersion,
    },
    /// A GSS, SSPI or external SASL token for the application to check; it answers with
    /// [`Server::auth_continue`], [`Server::auth_succeeded`] or [`Server::reject`].
    AuthResponse(Box<FrontendMessage<'static>>),
    /// Authentication succeeded; the parameters, cancel key and first ReadyForQuery are queued.
    Authenticated,
    /// A frontend message to answer (Query, Parse, Bind, Describe, Execute, Close, Sync, Flush,
    /// FunctionCall, or CopyData, CopyDone, CopyFail during COPY FROM STDIN).
    Message(M),
    /// The client sent Terminate. The connection is over.
    Terminate,
    /// The client closed the connection.
    Closed,
    /// A message whose body did not decode, answered by the machine itself as PostgreSQL 18
    /// answers it: ERROR 08P01, then for a Query or a Sync ReadyForQuery (status `E` if a
    /// transaction block was open, else `I`), for an extended-query message the discard until
    /// Sync. There is nothing to answer, but like any error it aborts the application's
    /// transaction: an explicit block is now failed (answer the next Sync with
    /// [`TransactionStatus::Failed`]), an implicit one is rolled back. (A malformed message
    /// while a request is being answered, or of another type, ends the connection instead.)
    Refused(DecodeError),
}

impl<M> ServerEvent<M> {
    /// The same event with its frontend message (if any) mapped by `f`.
    pub fn map_message<N>(self, f: impl FnOnce(M) -> N) -> ServerEvent<N> {
        use ServerEvent as E;
        match self {
            Self::Message(m) => E::Message(f(m)),
            Self::SslRequest => E::SslRequest,
            Self::GssEncRequest => E::GssEncRequest,
            Self::DirectTls => E::DirectTls,
            Self::CancelRequest(c) => E::CancelRequest(c),
            Self::Startup { message, version } => E::Startup { message, version },
            Self::AuthResponse(m) => E::AuthResponse(m),
            Self::Authenticated => E::Authenticated,
            Self::Terminate => E::Terminate,
            Self::Closed => E::Closed,
            Self::Refused(e) => E::Refused(e),
        }
    }
}

impl ServerEvent<FrontendMessage<'_>> {
    /// The event, owned: a borrowed message is copied out of the receive buffer.
    pub fn into_owned(self) -> ServerEvent {
        self.map_message(FrontendMessage::into_owned)
    }
}

/// What one step of the machine came to.
enum Step {
    /// Something was handled; step again.
    Again,
    /// More input, or an answer from the application, is needed.
    Wait,
    /// A message to hand to the application.
    Deliver(FrontendLent),
    /// A message of a protocol-2.0 session to hand to the application (see `v2.rs`).
    DeliverV2,
}

/// The frontend message being answered and where its answer is (see [`crate::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    request: Request,
    stage: Stage,
    /// The request's number, which tells it apart for `columns` (`Serving::requests` when it
    /// was handed out).
    id: u64,
    /// An Execute whose portal the request just before it described.
    described: bool,
}

impl Current {
    fn name(self) -> &'static str {
        match (self.stage, self.request) {
            (Stage::CopyIn | Stage::CopyInDone, _) => "in COPY FROM STDIN",
            (Stage::CopyOut | Stage::CopyOutDone, _) => "in COPY TO STDOUT",
            (s, _) if s.in_copy() => "in CopyBoth",
            (_, Request::Query) => "answering Query",
            (_, Request::Parse) => "answering Parse",
            (_, Request::Bind) => "answering Bind",
            (_, Request::DescribeStatement | Request::DescribePortal) => "answering Describe",
            (_, Request::Execute) => "answering Execute",
            (_, Request::Close) => "answering Close",
            (_, Request::Sync) => "answering Sync",
            (_, Request::FunctionCall) => "answering FunctionCall",
        }
    }
}

/// Where the connection is; each phase carries the state only it has.
#[derive(Debug)]
enum Phase {
    /// Encryption, the StartupMessage and authentication.
    Startup(Box<StartupData>),
    /// Serving requests.
    Ready(Serving),
    /// A protocol-2.0 session, from its StartupPacket on (see `v2.rs`).
    V2(Box<v2::Session>),
    /// Over.
    Closed,
}

/// The state of the query phase.
#[derive(Debug, Default)]
struct Serving {
    /// The request being answered, if any.
    current: Option<Current>,
    /// After an error in an extended-query request: messages are discarded until Sync.
    ignore_till_sync: bool,
    /// Requests handed out behind `current`, in order, none answered yet (only with a
    /// [`ServerConfig::pipeline_depth`] above 1).
    // INVARIANT: empty whenever `current` is `None`.
    behind: std::collections::VecDeque<Current>,
    /// The bytes of a frame forwarded in pieces still to come (see `Server::forward`); no other
    /// message may be sent until they have been.
    forwarding: u64,
    /// How many requests have been handed out: the number that tells them apart for `columns`.
    requests: u64,
    /// The column count the application's DataRows must have (`src/columns.rs`).
    columns: Columns,
}

impl Serving {
    /// Notes a request handed out: its kind, and the portal a Describe or an Execute names. It
    /// is the one being answered, or waits behind it (pipelining).
    #[inline]
    fn start(&mut self, request: Request, portal: &[u8]) {
        self.requests += 1;
        let c = Current {
            request,
            stage: Stage::Start,
            id: self.requests,
            described: self.columns.sent(request, portal),
        };
        if self.current.is_none() {
            self.current = Some(c);
        } else {
            self.behind.push_back(c);
        }
    }
}

#[derive(Debug)]
struct StartupData {
    state: State,
    first_packet: bool,
    ssl_done: bool,
    gss_done: bool,
    startup: Option<StartupMessage>,
    /// The tls-server-end-point channel-binding data, once TLS is established with it.
    end_point: Option<Vec<u8>>,
}

/// The backend state machine: one connection from a client, seen from the server.
///
/// Its methods come in four groups:
///
/// - **getters**: [`user`](Self::user), [`protocol_version`](Self::protocol_version),
///   [`backend_key`](Self::backend_key), [`transaction_status`](Self::transaction_status),
///   [`discarded`](Self::discarded), [`is_ready`](Self::is_ready), ...;
/// - **input**: [`receive`](Self::receive), [`receive_eof`](Self::receive_eof),
///   [`take_buffered`](Self::take_buffered), [`tls_established`](Self::tls_established),
///   [`gss_established`](Self::gss_established);
/// - **answers**: during start-up [`accept_ssl`](Self::accept_ssl),
///   [`accept_gssenc`](Self::accept_gssenc), [`authenticate`](Self::authenticate),
///   [`auth_continue`](Self::auth_continue), [`auth_succeeded`](Self::auth_succeeded),
///   [`reject`](Self::reject); to a request [`parse_complete`](Self::parse_complete),
///   [`bind_complete`](Self::bind_complete), [`parameter_description`](Self::parameter_description),
///   [`row_description`](Self::row_description), [`no_data`](Self::no_data),
///   [`data_row`](Self::data_row), [`command_complete`](Self::command_complete),
///   [`empty_query_response`](Self::empty_query_response),
///   [`portal_suspended`](Self::portal_suspended), [`close_complete`](Self::close_complete),
///   [`error_response`](Self::error_response), [`function_call_response`](Self::function_call_response),
///   the COPY answers, [`ready_for_query`](Self::ready_for_query); at any time after start-up
///   [`notice`](Self::notice), [`notification`](Self::notification),
///   [`parameter_status`](Self::parameter_status), [`fatal`](Self::fatal). Each is checked
///   against the request being answered ([`crate::protocol`]); a refused one returns a
///   [`UsageError`] and sends nothing;
/// - **output**: [`poll_event`](Self::poll_event), then [`poll_transmit`](Self::poll_transmit).
///
/// After every input and every answer, drain `poll_event` until `Ok(None)`, then
/// `poll_transmit` (see the [crate documentation](crate#the-run-loop)). Like a backend, the
/// machine hands out one request at a time by default: `poll_event` returns `Ok(None)` until
/// the message it handed out is answered (see [Requests in flight](#requests-in-flight) for
/// more).
///
/// With [`ServerConfig::min_protocol_version`] 2.0, a 2.0 StartupPacket is served as
/// PostgreSQL 7.4 to 13 served one: the application sees the same events and gives the same
/// answers, and the machine speaks 2.0 on the wire (CursorResponse and a 2.0 RowDescription for
/// [`row_description`](Self::row_description), AsciiRow for [`data_row`](Self::data_row),
/// errors and notices as one text, no ParameterStatus, ...; the whole mapping is in the
/// documentation of [`crate::v2`]). With
/// [`ServerConfig::max_protocol_version`] 2.0 as well, a 3.x StartupMessage is answered with an
/// error in 2.0's format, as a server older than 7.4 did, which makes libpq up to 13 reconnect
/// with 2.0.
///
/// ```
/// use pgproto::{Server, ServerAuth, ServerConfig, ServerEvent};
///
/// let mut server = Server::new(ServerConfig::default());
/// // A StartupMessage for user "alice", protocol 3.0.
/// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
/// let Some(ServerEvent::Startup { message, .. }) = server.poll_event().unwrap() else { panic!() };
/// assert_eq!(message.param("user"), Some(&b"alice"[..]));
/// server.authenticate(ServerAuth::Trust).unwrap();
/// assert_eq!(server.poll_event().unwrap(), Some(ServerEvent::Authenticated));
/// let bytes = server.poll_transmit().unwrap(); // AuthenticationOk ... ReadyForQuery
/// assert_eq!(&bytes[..9], b"R\0\0\0\x08\0\0\0\0");
/// ```
///
/// # Requests in flight
///
/// With a [`ServerConfig::pipeline_depth`] above 1, `poll_event` hands out up to that many
/// requests before the first is answered, as they arrive: what a proxy needs to forward a
/// client's pipeline upstream without waiting for each answer. The answers (typed, or frames
/// passed through with [`Server::forward`]) are matched to the queue of requests in flight in
/// order, each checked against the request at its front ([`crate::protocol`]); ReadyForQuery
/// ends a Query, Sync or FunctionCall; after an ErrorResponse to an extended-query message the
/// requests handed out behind it are dropped up to the next Sync (the backend skips them and
/// answers none), and if no Sync was handed out yet, the machine discards what comes until one
/// arrives, as with one request at a time. Syncs handed out before a COPY FROM STDIN began are
/// dropped when it begins (the backend ignores them). [`Server::in_flight`] counts the queue.
///
/// # Start-up under the application's control
///
/// With [`StartupEnd::Application`], authentication ends with AuthenticationOk alone: the
/// application then sends the parameters it wants ([`Server::parameter_status`]), notices, or a
/// FATAL error ([`Server::reject`]), and ends the start-up with [`Server::finish_startup`],
/// choosing the cancel key. [`Server::configure`] replaces the configuration once the
/// StartupMessage is known (per user or database).
#[derive(Debug)]
pub struct Server {
    config: std::sync::Arc<ServerConfig>,
    core: Core<FrontendDecoder, ServerEvent>,
    phase: Phase,
    version: ProtocolVersion,
    tls: bool,
    user: Box<str>,
    backend_key: Option<BackendKeyData>,
    discarded: u64,
    status: TransactionStatus,
}

impl Error {
    /// The SQLSTATE a server reports to the client for this error: `08P01` (protocol violation)
    /// for malformed or misplaced messages, `54000` for a message over its size limit, `28P01` or
    /// `28000` for failed authentication, `08006` for a lost connection.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Self::Decode(DecodeError::TooLong { .. }) => "54000",
            Self::Auth(AuthError::Scram(e)) => e.sqlstate().unwrap_or("28000"),
            Self::Auth(AuthError::PasswordMismatch) => "28P01",
            Self::Auth(_) => "28000",
            Self::UnexpectedEof { .. } => "08006",
            Self::UnsupportedProtocol { .. } => "0A000",
            Self::Entropy { .. } => "XX000",
            _ => "08P01",
        }
    }
}

impl Server {
    /// A server for one connection, waiting for the client's first packet. Pass an
    /// `Arc<ServerConfig>` to share one configuration between connections.
    pub fn new(config: impl Into<std::sync::Arc<ServerConfig>>) -> Self {
        let config = config.into();
        let limits = config.limits;
        Self {
            config,
            core: Core::new({
                let mut d = FrontendDecoder::with_limits(limits);
                d.skip_malformed_bodies();
                d
            }),
            phase: Phase::Startup(Box::new(StartupData {
                state: State::AwaitPacket,
                first_packet: true,
                ssl_done: false,
                gss_done: false,
                startup: None,
                end_point: None,
            })),
            version: ProtocolVersion::V3_0,
            tls: false,
            user: "".into(),
            backend_key: None,
            discarded: 0,
            status: TransactionStatus::Idle,
        }
    }

    // ---- (A) getters ----

    /// The protocol version of the session.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The user name from the StartupMessage.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The cancel key sent to the client, once authenticated.
    pub fn backend_key(&self) -> Option<&BackendKeyData> {
        self.backend_key.as_ref()
    }

    /// Whether the I/O layer reported TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether start-up is over and queries are being served.
    pub fn is_ready(&self) -> bool {
        let ready = match &self.phase {
            Phase::Ready(_) => true,
            Phase::V2(s) => Self::v2_is_ready(s),
            _ => false,
        };
        ready && self.core.error.is_none()
    }

    /// The number of messages discarded after extended-query errors (and Flush or Sync during
    /// COPY FROM STDIN, which PostgreSQL ignores).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// The transaction status last sent in ReadyForQuery.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.status
    }

    /// Whether bytes are waiting in [`Server::poll_transmit`].
    pub fn wants_write(&self) -> bool {
        !self.core.out.is_empty()
    }

    /// Bytes received and not yet decoded (messages are decoded lazily, by `poll_event`): never
    /// more than was given to `receive`. Nothing more is buffered once an error has occurred.
    pub fn buffered_len(&self) -> usize {
        self.v2_buffered()
            .unwrap_or_else(|| self.core.decoder.buffered_len())
    }

    // ---- (B) input ----

    /// Buffers bytes received from the client.
    pub fn receive(&mut self, data: &[u8]) {
        if self.v2_receive(data) {
            return;
        }
        let closed = matches!(self.phase, Phase::Closed);
        self.core.receive(data, closed);
    }

    /// Records that the client closed the connection.
    pub fn receive_eof(&mut self) {
        self.core.eof = true;
    }

    /// Takes bytes received but not yet decoded: after [`ServerEvent::DirectTls`], the start of
    /// the client's TLS handshake, for the TLS library.
    pub fn take_buffered(&mut self) -> Bytes {
        self.core.decoder.take_buffered()
    }

    /// The I/O layer finished the TLS handshake. `server_end_point` is the tls-server-end-point
    /// channel-binding data (the hash of the server's certificate); with it, SCRAM-SHA-256-PLUS is
    /// offered.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the server is waiting for the TLS handshake,
    /// and with [`UsageError::Closed`] once the connection has failed or been closed;
    /// unencrypted bytes already received are not reported here but end the connection with
    /// [`Error::BufferedBeforeEncryption`], returned by [`Server::poll_event`].
    pub fn tls_established(&mut self, server_end_point: Option<Vec<u8>>) -> Result<(), UsageError> {
        self.encryption_established(true)?;
        self.tls = true;
        if let Phase::Startup(s) = &mut self.phase {
            s.end_point = server_end_point;
        }
        Ok(())
    }

    /// The I/O layer established GSSAPI encryption.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the server is waiting for GSSAPI
    /// encryption, and with [`UsageError::Closed`] once the connection has failed or been closed;
    /// unencrypted bytes already received end the connection as in [`Server::tls_established`].
    pub fn gss_established(&mut self) -> Result<(), UsageError> {
        self.encryption_established(false)
    }

    fn encryption_established(&mut self, tls: bool) -> Result<(), UsageError> {
        let Phase::Startup(s) = &mut self.phase else {
            return Err(self.not_allowed("establish encryption"));
        };
        match (&s.state, tls) {
            (State::AwaitTls | State::AwaitDirectTls, true) | (State::AwaitGss, false) => {}
            _ => return Err(self.not_allowed("establish encryption")),
        }
        s.state = State::AwaitPacket;
        // CVE-2021-23214: bytes that came before encryption began may have been injected.
        let len = self.core.decoder.buffered_len();
        if len > 0 {
            let what = if tls { "SSL" } else { "GSSAPI" };
            self.fail(Error::BufferedBeforeEncryption { what, len }, false);
        }
        Ok(())
    }

    // ---- (C) answers: start-up ----

    fn not_allowed(&self, command: &'static str) -> UsageError {
        if self.core.error.is_some() || matches!(self.phase, Phase::Closed) {
            return UsageError::Closed;
        }
        UsageError::NotAllowed {
            command,
            state: self.state_name(),
        }
    }

    fn startup_state(&mut self, command: &'static str) -> Result<&mut StartupData, UsageError> {
        let err = self.not_allowed(command);
        match &mut self.phase {
            Phase::Startup(s) if self.core.error.is_none() => Ok(s),
            _ => Err(err),
        }
    }

    /// Answers SSLRequest: `S` (the I/O layer then does TLS and calls
    /// [`Server::tls_established`]) or `N`.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless an SSLRequest awaits its answer, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed. If `accept` and bytes
    /// already follow the request, the connection ends with [`Error::BufferedBeforeEncryption`],
    /// returned by [`Server::poll_event`].
    pub fn accept_ssl(&mut self, accept: bool) -> Result<(), UsageError> {
        self.accept_encryption(accept, true)
    }

    /// Answers GSSENCRequest: `G` (the I/O layer then sets up GSSAPI encryption and calls
    /// [`Server::gss_established`]) or `N`.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless a GSSENCRequest awaits its answer, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed; bytes that already
    /// follow an accepted request end the connection as in [`Server::accept_ssl`].
    pub fn accept_gssenc(&mut self, accept: bool) -> Result<(), UsageError> {
        self.accept_encryption(accept, false)
    }

    fn accept_encryption(&mut self, accept: bool, ssl: bool) -> Result<(), UsageError> {
        let s = self.startup_state(if ssl {
            "answer SSLRequest"
        } else {
            "answer GSSENCRequest"
        })?;
        match (&s.state, ssl) {
            (State::AwaitSslDecision, true) | (State::AwaitGssDecision, false) => {}
            _ => return Err(self.not_allowed("answer an encryption request")),
        }
        let m = if ssl {
            BackendMessage::SslResponse { accepted: accept }
        } else {
            BackendMessage::GssEncResponse { accepted: accept }
        };
        s.state = match (accept, ssl) {
            (true, true) => State::AwaitTls,
            (true, false) => State::AwaitGss,
            _ => State::AwaitPacket,
        };
        // Once encryption began one way, the other is no longer on offer (PostgreSQL's
        // ssl_done/gss_done).
        if accept {
            s.ssl_done = true;
            s.gss_done = true;
        }
        m.encode(&mut self.core.out);
        // CVE-2021-23214: the client must wait for our answer before it sends anything more.
        // Bytes already here were not encrypted (and may have been injected). As PostgreSQL:
        // after `N` they get FATAL 08P01 in plaintext; after `S` or `G` the client expects a
        // handshake, so the connection just ends.
        let len = self.core.decoder.buffered_len();
        if len > 0 {
            let what = if ssl { "SSL" } else { "GSSAPI" };
            self.fail(Error::BufferedBeforeEncryption { what, len }, !accept);
        }
        Ok(())
    }

    /// Answers the StartupMessage with an authentication method.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless the StartupMessage awaits this answer, and
    /// with [`UsageError::Closed`] once the connection has failed or been closed. If the random
    /// number generator fails, the connection ends with [`Error::Auth`] instead, returned by
    /// [`Server::poll_event`].
    pub fn authenticate(&mut self, auth: ServerAuth) -> Result<(), UsageError> {
        if self.v2_serving().is_some() {
            return self.v2_authenticate(auth);
        }
        let end_point = match &self.phase {
            Phase::Startup(s) if self.tls => s.end_point.clone(),
            _ => None,
        };
        let secret = self.config.mock_auth_secret;
        let iterations = self.config.mock_auth_iterations;
        let user = self.user.clone();
        let s = self.startup_state("authenticate")?;
        if !matches!(s.state, State::AwaitAuthDecision) {
            return Err(self.not_allowed("authenticate"));
        }
        match startup::begin(
            auth,
            user.as_bytes(),
            end_point.as_deref(),
            &secret,
            iterations,
        ) {
            Ok((request, next)) => match next {
                None => self.authenticated(),
                Some(state) => {
                    if let State::Password(_) = &state {
                        self.core
                            .decoder
                            .expect_auth_response(Some(AuthResponseKind::Password));
                    } else if let State::Scram { .. } = &state {
                        self.core
                            .decoder
                            .expect_auth_response(Some(AuthResponseKind::SaslInitial));
                    } else if let State::External(kind) = &state {
                        self.core.decoder.expect_auth_response(Some(*kind));
                    }
                    if let Phase::Startup(s) = &mut self.phase {
                        s.state = state;
                    }
                    BackendMessage::Authentication(request).encode(&mut self.core.out);
                }
            },
            Err(e) => self.fail(Error::Auth(AuthError::Scram(e)), true),
        }
        Ok(())
    }

    /// Continues an external (GSS, SSPI, SASL) exchange with the next challenge:
    /// AuthenticationGSSContinue, AuthenticationSASLContinue or AuthenticationSASLFinal.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless an external exchange (begun by
    /// [`Server::authenticate`] with GSS, SSPI or SASL) is under way and `request` is one of
    /// those three, and with [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn auth_continue(&mut self, request: Authentication) -> Result<(), UsageError> {
        let s = self.startup_state("continue authentication")?;
        let State::External(kind) = &mut s.state else {
            return Err(self.not_allowed("continue authentication"));
        };
        if !matches!(
            request,
            Authentication::GssContinue(_)
                | Authentication::SaslContinue(_)
                | Authentication::SaslFinal(_)
        ) {
            return Err(self.not_allowed("send this authentication request"));
        }
        if *kind == AuthResponseKind::SaslInitial {
            *kind = AuthResponseKind::Sasl;
            self.core
                .decoder
                .expect_auth_response(Some(AuthResponseKind::Sasl));
        }
        BackendMessage::Authentication(request).encode(&mut self.core.out);
        Ok(())
    }

    /// Ends an external exchange successfully.
    ///
    /// Fails with [`UsageError::NotAllowed`] unless an external exchange is under way, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn auth_succeeded(&mut self) -> Result<(), UsageError> {
        let s = self.startup_state("finish authentication")?;
        if !matches!(s.state, State::External(_)) {
            return Err(self.not_allowed("finish authentication"));
        }
        self.authenticated();
        Ok(())
    }

    /// Refuses the connection during start-up with a FATAL ErrorResponse (for example 28000,
    /// 3D000), then closes.
    ///
    /// Fails with [`UsageError::NotAllowed`] after start-up (use [`Server::fatal`] then), and
    /// with [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn reject(&mut self, fields: &ErrorFields) -> Result<(), UsageError> {
        if self.v2_serving() == Some(false) && self.core.error.is_none() {
            self.v2_fatal(fields);
            return Ok(());
        }
        self.startup_state("reject the connection")?;
        BackendMessage::ErrorResponse(fields.clone()).encode(&mut self.core.out);
        self.core.decoder.expect_auth_response(None);
        self.phase = Phase::Closed;
        Ok(())
    }

    /// Authentication succeeded: AuthenticationOk, the parameters, the key, ReadyForQuery (or,
    /// with [`StartupEnd::Application`], AuthenticationOk alone).
    fn authenticated(&mut self) {
        if self.config.startup_end == StartupEnd::Application {
            let Phase::Startup(s) = &mut self.phase else {
                return;
            };
            s.startup = None;
            s.state = State::AwaitStartupEnd;
            self.core.decoder.expect_auth_response(None);
            BackendMessage::Authentication(Authentication::Ok).encode(&mut self.core.out);
            self.core.events.push_back(ServerEvent::Authenticated);
            return;
        }
        // The cancel key first: without entropy, anyone could cancel this session's queries, so
        // the connection fails before anything is sent.
        let Some(key) = self.random_key() else {
            return;
        };
        let Phase::Startup(s) = &mut self.phase else {
            return;
        };
        let startup = s.startup.take();
        self.core.decoder.expect_auth_response(None);
        BackendMessage::Authentication(Authentication::Ok).encode(&mut self.core.out);
        let param = |name: &str| {
            startup
                .as_ref()
                .and_then(|m| m.param(name))
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        };
        let mut params = self.config.parameters.clone();
        let mut set_default = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                if !params.iter().any(|(k, _)| k == name) {
                    params.push((name.to_string(), v));
                }
            }
        };
        set_default(
            "application_name",
            param("application_name").or(Some(String::new())),
        );
        set_default("session_authorization", Some(self.user.to_string()));
        for (k, v) in &params {
            if let Ok(m) = ParameterStatus::new(k, v) {
                m.encode(&mut self.core.out);
            }
        }
        self.send_key_and_ready(key);
        self.core.events.push_back(ServerEvent::Authenticated);
    }

    /// A random cancel key of the configured length (4 bytes before protocol 3.2); `None`, and
    /// the connection failed, when the random source fails.
    fn random_key(&mut self) -> Option<BackendKeyData> {
        let key_len = if self.version >= ProtocolVersion::V3_2 {
            self.config.cancel_key_len.clamp(4, 256)
        } else {
            4
        };
        let mut key = vec![0u8; key_len];
        let mut pid = [0u8; 4];
        if !(self.config.random)(&mut key) || !(self.config.random)(&mut pid) {
            self.fail(Error::Entropy { what: "cancel key" }, true);
            return None;
        }
        let pid = i32::from_be_bytes(pid) & 0x7fff_ffff;
        BackendKeyData::new(pid, &key).ok()
    }

    /// The end of start-up: BackendKeyData, ReadyForQuery, and the query phase.
    fn send_key_and_ready(&mut self, key: BackendKeyData) {
        key.encode(&mut self.core.out);
        self.backend_key = Some(key);
        BackendMessage::ReadyForQuery(TransactionStatus::Idle).encode(&mut self.core.out);
        self.phase = Phase::Ready(Serving::default());
    }

    // ---- (C) answers: any time after start-up ----

    fn after_startup(&self, command: &'static str) -> Result<(), UsageError> {
        if matches!(&self.phase, Phase::Ready(q) if q.forwarding == 0) && self.core.error.is_none()
        {
            Ok(())
        } else {
            Err(self.not_allowed(command))
        }
    }

    /// As [`Server::after_startup`], and also after AuthenticationOk while the application ends
    /// the start-up ([`StartupEnd::Application`]).
    fn after_auth(&self, command: &'static str) -> Result<(), UsageError> {
        match &self.phase {
            Phase::Startup(s)
                if matches!(s.state, State::AwaitStartupEnd) && self.core.error.is_none() =>
            {
                Ok(())
            }
            _ => self.after_startup(command),
        }
    }

    /// NoticeResponse, at any time after start-up, and after AuthenticationOk when the
    /// application ends the start-up ([`StartupEnd::Application`]).
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up (before AuthenticationOk) and
    /// while a frame is forwarded in pieces ([`Server::forward`]), and with
    /// [`UsageError::Closed`] once the connection has failed or been closed.
    pub fn notice(&mut self, fields: &ErrorFields) -> Result<(), UsageError> {
        if self.v2_serving() == Some(true) && self.core.error.is_none() {
            self.v2_notice(fields);
            return Ok(());
        }
        self.after_auth("send NoticeResponse")?;
        BackendMessage::NoticeResponse(fields.clone()).encode(&mut self.core.out);
        Ok(())
    }

    /// NotificationResponse, at any time after start-up.
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up, and with
    /// [`UsageError::Closed`] once the connection has failed or been closed;
    /// with [`UsageError::Encode`] when `channel` or `payload` contains NUL or the message is
    /// too long.
    pub fn notification(
        &mut self,
        process_id: i32,
        channel: &str,
        payload: &str,
    ) -> Result<(), UsageError> {
        if self.v2_serving() == Some(true) && self.core.error.is_none() {
            // 2.0 carries no payload.
            return self.v2_notification(process_id, channel);
        }
        self.after_startup("send NotificationResponse")?;
        NotificationResponse::new(process_id, channel, payload)?.encode(&mut self.core.out);
        Ok(())
    }

    /// ParameterStatus, at any time after start-up (for example after `SET`), and after
    /// AuthenticationOk when the application ends the start-up ([`StartupEnd::Application`]:
    /// for a proxy, the upstream server's parameters).
    ///
    /// Fails with [`UsageError::NotAllowed`] during start-up (before AuthenticationOk) and
    /// while a frame is forwarded in pieces ([`Server::forward`]), and with
    /// [`UsageError::Closed`] once the connection has failed or been closed;
    /// with [`UsageError::Encode`] when `name` or `value` contains NUL or the message is too
    /// long.
    pub fn parameter_status(&mut self, name: &str, value: &str) -> Result<(), UsageError> {
        if self.v2_serving() == Some(true) && self.core.error.is_none() {
            // 2.0 has no ParameterStatus: nothing to send.
            return Ok(());
        }
        self.after_auth("send ParameterStatus")?;
        ParameterStatus::new(name, value)?.encode(&mut self.core.out);
        Ok(())
    }

    /// Sends a FATAL ErrorResponse and ends the connection (for example on shutdown or after a
    /// cancel that terminates the session).
    ///
    /// Fails with [`UsageError::Closed`] once the connection has failed or been closed, and
    /// with [`UsageError::NotAllowed`] in the middle of a frame forwarded in pieces
    /// ([`Server::forward`]: the client could not read what follows); it is allowed in every
    /// other state.
    pub fn fatal(&mut self, fields: &ErrorFields) -> Result<(), UsageError> {
        if self.core.error.is_some() || matches!(self.phase, Phase::Closed) {
            return Err(UsageError::Closed);
        }
        if self.v2_serving().is_some() {
            self.v2_fatal(fields);
            return Ok(());
        }
        if matches!(&self.phase, Phase::Ready(q) if q.forwarding != 0) {
            return Err(self.not_allowed("send a FATAL error"));
        }
        BackendMessage::ErrorResponse(fields.clone()).encode(&mut self.core.out);
        self.phase = Phase::Closed;
        Ok(())
    }

    /// Frees the memory of empty buffers and queues, so that an idle connection holds almost
    /// nothing. Call it when the connection goes idle; the buffers grow again when needed.
    pub fn release_buffers(&mut self) {
        self.core.release_buffers();
        if let Phase::Ready(q) = &mut self.phase {
            q.columns.shrink();
        }
        if let Phase::V2(s) = &mut self.phase {
            s.decoder.release_buffer();
        }
    }

    // ---- (D) output ----

    /// The bytes to send to the client, whole messages only; `None` when there are none. The
    /// output buffer keeps its memory for the next messages: [`Server::release_buffers`] frees
    /// it.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.core.poll_transmit()
    }

    /// The next event, `Ok(None)` when the machine needs more input or an answer from the
    /// application. After a protocol violation, a FATAL ErrorResponse is queued for
    /// [`Server::poll_transmit`] and the error is returned from this and every later call.
    ///
    /// A message borrows the receive buffer until the next call that takes `&mut self`: read
    /// what the answer needs from it, then answer. [`ServerEvent::into_owned`] keeps it longer.
    pub fn poll_event(&mut self) -> Result<Option<ServerEvent<FrontendMessage<'_>>>, Error> {
        if let Some(lent) = self.next_request() {
            return Ok(Some(ServerEvent::Message(self.core.decoder.view(lent))));
        }
        self.poll_event_general()
    }

    /// The request fast path, beside [`Server::poll_event`]: the next message, when it starts a
    /// request (Parse, Bind, Describe, Close, Execute, Sync or Query), is whole and well formed,
    /// no request is being answered, no event is queued and nothing is being discarded until
    /// Sync; `None` in every other case, with nothing consumed, and [`Server::poll_event`]
    /// hands out whatever comes next (such messages included). The intended loop answers
    /// messages from this and drains `poll_event` when it has none, as
    /// [`FrontendDecoder::next_ref`] serves a proxy; the answer is a bare message, not an event,
    /// which is what makes it faster. The message borrows the receive buffer until the next call
    /// that takes `&mut self`.
    ///
    /// ```
    /// use pgproto::{FrontendMessage, Server, ServerAuth, ServerConfig, TransactionStatus};
    ///
    /// let mut server = Server::new(ServerConfig::default());
    /// server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0"); // StartupMessage
    /// server.poll_event()?; // Startup
    /// server.authenticate(ServerAuth::Trust)?;
    /// while server.poll_event()?.is_some() {}
    /// server.receive(b"Q\0\0\0\x0dSELECT 1\0");
    /// let mut answered = 0;
    /// loop {
    ///     while let Some(message) = server.poll_message() {
    ///         let FrontendMessage::Query(q) = message else { unreachable!() };
    ///         assert_eq!(q.sql(), b"SELECT 1");
    ///         server.empty_query_response()?; // (a real server would run it)
    ///         server.ready_for_query(TransactionStatus::Idle)?;
    ///         answered += 1;
    ///     }
    ///     match server.poll_event()? {
    ///         None => break,
    ///         Some(_event) => {} // anything else: Terminate, COPY data, a Flush...
    ///     }
    /// }
    /// assert_eq!(answered, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn poll_message(&mut self) -> Option<FrontendMessage<'_>> {
        let lent = self.next_request()?;
        Some(self.core.decoder.view(lent))
    }

    /// The fast path of both polls: no request being answered, nothing queued, no discard until
    /// Sync, and a whole, well-formed message that starts a request next in the buffer; it is
    /// taken and its request started.
    #[inline]
    fn next_request(&mut self) -> Option<FrontendLent> {
        let Phase::Ready(q) = &mut self.phase else {
            return None;
        };
        if q.current.is_some()
            || q.ignore_till_sync
            || !self.core.events.is_empty()
            || self.core.error.is_some()
        {
            return None;
        }
        let (lent, portal) = self.core.decoder.advance_request()?;
        q.start(
            request_of(&lent.layout),
            self.core.decoder.buffered_bytes(portal),
        );
        Some(lent)
    }

    fn poll_event_general(&mut self) -> Result<Option<ServerEvent<FrontendMessage<'_>>>, Error> {
        loop {
            if let Some(e) = self.core.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(e) = &self.core.error {
                return Err((**e).clone());
            }
            match self.step() {
                Ok(Step::Again) => {}
                Ok(Step::Wait) => return Ok(None),
                Ok(Step::Deliver(lent)) => {
                    return Ok(Some(ServerEvent::Message(self.core.decoder.view(lent))))
                }
                Ok(Step::DeliverV2) => return Ok(Some(ServerEvent::Message(self.v2_view()))),
                Err(e) => self.fail(e, true),
            }
        }
    }

    /// Records a fatal error; with `tell`, queues a FATAL ErrorResponse naming it first.
    fn fail(&mut self, e: Error, tell: bool) {
        // A cancel connection gets no answer, whatever follows the CancelRequest: PostgreSQL
        // just closes it.
        let silent = matches!(&self.phase, Phase::Startup(s) if matches!(s.state, State::Cancelled))
                // A length out of range: of a CancelRequest (a key of the wrong length;
                // PostgreSQL never writes to a cancel connection), of a start-up packet (for
                // example a TLS ClientHello sent after an `N`), or of any message: PostgreSQL
                // only logs "invalid length of startup packet" or "invalid message length" and
                // closes.
                || matches!(
                    &e,
                    Error::Decode(DecodeError::InvalidLength { .. } | DecodeError::TooLong { .. })
                );
        if tell && !silent && !matches!(e, Error::UnexpectedEof { .. }) {
            let message = match &e {
                Error::Auth(a @ AuthError::MissingUser) => a.to_string(),
                Error::Auth(_) => {
                    format!("password authentication failed for user \"{}\"", self.user)
                }
                other => other.to_string(),
            };
            let fields = ErrorFields::simple("FATAL", e.sqlstate(), &message);
            if matches!(self.phase, Phase::V2(_)) {
                v2::fatal_v2(&mut self.core.out, &fields);
            } else {
                BackendMessage::ErrorResponse(fields).encode(&mut self.core.out);
            }
        }
        self.phase = Phase::Closed;
        self.core.error = Some(Box::new(e));
    }

    fn state_name(&self) -> &'static str {
        match &self.phase {
            Phase::Startup(s) => s.state.name(),
            Phase::Ready(q) if q.forwarding != 0 => "forwarding a frame in pieces",
            Phase::Ready(q) => q.current.map_or("idle", Current::name),
            Phase::V2(s) => Self::v2_state_name(s),
            Phase::Closed => "closed",
        }
    }
}

/// The request that a Parse, Bind, Describe, Close, Execute, Sync or Query message opens (the
/// only layouts this is asked about; Query is the answer for the rest).
#[inline]
fn request_of(layout: &Layout) -> Request {
    match layout {
        Layout::Parse(_) => Request::Parse,
        Layout::Bind(_) => Request::Bind,
        Layout::Describe(d) => match d.target {
            crate::Target::Statement => Request::DescribeStatement,
            crate::Target::Portal => Request::DescribePortal,
        },
        Layout::Execute(_) => Request::Execute,
        Layout::Close(_) => Request::Close,
        Layout::Sync => Request::Sync,
        _ => Request::Query,
    }
}
