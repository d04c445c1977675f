//! The client's protocol-2.0 session, for servers from PostgreSQL 6.4 to 13.
//!
//! ```text
//!  (fallback) AwaitReconnect ──reconnected──┐
//!  new ──SSLRequest──▶ AwaitSslResponse ──'S'──▶ AwaitTls ──tls_established──┐
//!   │                        └──'N' (not required)───────────────────────────────┤
//!   └──────────────────────────────────────────────────StartupPacket────────────▼
//!                                                                           AwaitAuth
//!        R(Cleartext|MD5) ▶ PasswordPacket ▶ PasswordSent ─R(Ok)─┐   R(Ok) ──────┤
//!                                                                 ▼              ▼
//!                                       AwaitReady: BackendKeyData, NoticeResponse; ReadyForQuery
//!                                                                 ▼
//!                  Ready: Query / FunctionCall, answered in order per [`crate::protocol::v2`]
//! ```
//!
//! The answers are handed out as the 3.0 messages that mean the same
//! ([`crate::v2::error_fields`], [`crate::v2::row_description_v3`], ...): a driver reads 2.0
//! results as it reads 3.0 ones. CursorResponse, which has no 3.0 counterpart, is checked and
//! dropped (libpq ignores it too). ReadyForQuery carries no transaction status in 2.0: the
//! client derives it from the command tags and errors, as libpq 13 does (`BEGIN` and
//! `START TRANSACTION` begin a block, `COMMIT` and `ROLLBACK` end it, an error inside one
//! fails it).

use std::collections::VecDeque;

use bytes::BytesMut;

use super::config::{AuthMethod, ChannelBindingPolicy, ClientConfig, Encryption};
use super::pipeline::RequestId;
use super::ClientEvent;
use crate::auth::md5;
use crate::codec::Encode;
use crate::error::{AuthError, EncodeError, Error, UsageError};
use crate::message::backend::{BackendKeyData, BackendMessage as Message3, NotificationResponse};
use crate::message::common::{Format, ProtocolVersion, TransactionStatus};
use crate::message::frontend::FunctionCall as FunctionCall3;
use crate::protocol::v2::{self as table, Answer, CopyStream, Next, Request, Stage};
use crate::v2::{
    error_fields, response_v3, Authentication, BackendDecoder, BackendMessage, FrontendMessage,
    FunctionCall, PasswordPacket, StartupPacket, Text, COPY_END,
};

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitReconnect,
    AwaitSslResponse,
    AwaitTls,
    AwaitAuth,
    PasswordSent,
    AwaitReady,
    Ready,
    Terminating,
    Closed,
}

/// A protocol-2.0 connection, from its first packet to its end.
#[derive(Debug)]
pub(crate) struct Session {
    config: ClientConfig,
    pub(crate) decoder: BackendDecoder,
    state: State,
    requests: VecDeque<(RequestId, Request)>,
    stage: Stage,
    next_id: u64,
    pub(crate) status: TransactionStatus,
    /// During COPY FROM STDIN: whether the data sent so far ends a line.
    at_line_start: bool,
    pub(crate) method: Option<AuthMethod>,
    pub(crate) key: Option<BackendKeyData>,
    pub(crate) tls: bool,
}

impl Session {
    /// A session that starts at once: SSLRequest or the StartupPacket is queued.
    pub(crate) fn new(config: ClientConfig, out: &mut BytesMut) -> Result<Self, UsageError> {
        let mut s = Self::fallback(config)?;
        s.start(out)?;
        Ok(s)
    }

    /// A session that starts once the I/O layer has opened a new connection
    /// ([`Session::reconnected`]), after a server refused the 3.x start-up in 2.0's way.
    pub(crate) fn fallback(config: ClientConfig) -> Result<Self, UsageError> {
        if matches!(
            config.encryption,
            Encryption::Gss { .. } | Encryption::DirectSsl
        ) {
            return Err(UsageError::InvalidConfig {
                reason: "protocol 2.0 has neither GSSAPI encryption nor direct TLS",
            });
        }
        let s = Self {
            decoder: BackendDecoder::with_limits(config.limits),
            config,
            state: State::AwaitReconnect,
            requests: VecDeque::new(),
            stage: Stage::Start,
            next_id: 0,
            status: TransactionStatus::Idle,
            at_line_start: true,
            method: None,
            key: None,
            tls: false,
        };
        // A bad user or database fails here, not once the server answers.
        s.startup_packet()?;
        Ok(s)
    }

    fn startup_packet(&self) -> Result<StartupPacket, UsageError> {
        let c = &self.config;
        Ok(StartupPacket::new(
            ProtocolVersion::V2_0,
            c.database.as_deref().unwrap_or_default(),
            &c.user,
            c.options.as_deref().unwrap_or_default(),
        )?)
    }

    /// Queues the first packet: SSLRequest, or the StartupPacket.
    fn start(&mut self, out: &mut BytesMut) -> Result<(), UsageError> {
        if let Encryption::Ssl { .. } = self.config.encryption {
            FrontendMessage::SslRequest.encode(out);
            self.decoder.expect_ssl_response();
            self.state = State::AwaitSslResponse;
        } else {
            self.startup_packet()?.encode(out);
            self.state = State::AwaitAuth;
        }
        Ok(())
    }

    /// The I/O layer opened the new connection a fallback asked for.
    pub(crate) fn reconnected(&mut self, out: &mut BytesMut) -> Result<(), UsageError> {
        if self.state != State::AwaitReconnect {
            return Err(UsageError::NotAllowed {
                command: "report a new connection",
                state: self.state_name(),
            });
        }
        self.decoder = BackendDecoder::with_limits(self.config.limits);
        self.start(out)
    }

    /// The I/O layer finished the TLS handshake after `S`.
    pub(crate) fn tls_established(
        &mut self,
        out: &mut BytesMut,
    ) -> Result<(), Result<UsageError, Error>> {
        if self.state != State::AwaitTls {
            return Err(Ok(UsageError::NotAllowed {
                command: "establish TLS",
                state: self.state_name(),
            }));
        }
        let len = self.decoder.buffered_len();
        if len > 0 {
            return Err(Err(Error::BufferedBeforeEncryption { what: "SSL", len }));
        }
        self.tls = true;
        self.startup_packet().map_err(Ok)?.encode(out);
        self.state = State::AwaitAuth;
        Ok(())
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            State::AwaitReconnect => "waiting for a new connection (falling back to protocol 2.0)",
            State::AwaitSslResponse => "waiting for the answer to SSLRequest",
            State::AwaitTls => "waiting for the TLS handshake",
            State::AwaitAuth => "waiting for an authentication request (protocol 2.0)",
            State::PasswordSent => "authenticating with a password (protocol 2.0)",
            State::AwaitReady => "waiting for the server to become ready (protocol 2.0)",
            State::Ready if self.stage == Stage::CopyIn => "copying data to the server",
            State::Ready if self.requests.is_empty() => "idle (protocol 2.0)",
            State::Ready => "waiting for responses (protocol 2.0)",
            State::Terminating => "terminating",
            State::Closed => "closed",
        }
    }

    /// Whether start-up is over and requests may be sent.
    pub(crate) fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The number of requests waiting for their answer.
    pub(crate) fn pending(&self) -> usize {
        self.requests.len()
    }

    // ---- input ----

    /// Decodes and handles at most one message; `Ok(false)` when more input is needed.
    pub(crate) fn step(
        &mut self,
        eof: bool,
        out: &mut BytesMut,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<bool, Error> {
        if matches!(self.state, State::AwaitTls | State::AwaitReconnect) {
            return if eof && self.state == State::AwaitTls {
                Err(Error::UnexpectedEof {
                    state: self.state_name(),
                })
            } else {
                Ok(false)
            };
        }
        let Some(m) = self.decoder.next()? else {
            return self.at_end(eof, events);
        };
        match self.state {
            State::Ready | State::Terminating => self.answer(m, events)?,
            _ => self.startup(m, out, events)?,
        }
        Ok(true)
    }

    fn at_end(&mut self, eof: bool, events: &mut VecDeque<ClientEvent>) -> Result<bool, Error> {
        if !eof {
            return Ok(false);
        }
        if self.decoder.buffered_len() > 0 {
            return Err(Error::UnexpectedEof {
                state: "receiving a message",
            });
        }
        match self.state {
            State::Terminating => {
                self.state = State::Closed;
                events.push_back(ClientEvent::Closed);
                Ok(true)
            }
            State::Closed => Ok(false),
            _ => Err(Error::UnexpectedEof {
                state: self.state_name(),
            }),
        }
    }

    fn unexpected(&self, m: &BackendMessage) -> Error {
        Error::UnexpectedMessage {
            state: self.state_name(),
            message: m.name(),
        }
    }

    fn startup(
        &mut self,
        m: BackendMessage,
        out: &mut BytesMut,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        use BackendMessage as B;
        match (self.state, m) {
            (State::AwaitSslResponse, B::SslResponse { accepted }) => {
                let required = matches!(self.config.encryption, Encryption::Ssl { required: true });
                if accepted {
                    // CVE-2021-23222: nothing may follow the answer before encryption begins.
                    let len = self.decoder.buffered_len();
                    if len > 0 {
                        return Err(Error::BufferedBeforeEncryption { what: "SSL", len });
                    }
                    self.state = State::AwaitTls;
                } else if required {
                    return Err(Error::EncryptionRefused { what: "SSL" });
                } else {
                    self.startup_packet()
                        .map_err(|e| cannot_send("StartupPacket", e))?
                        .encode(out);
                    self.state = State::AwaitAuth;
                }
                events.push_back(ClientEvent::SslResponse { accepted });
            }
            (State::AwaitSslResponse, B::ErrorResponse(_)) => {
                return Err(Error::EncryptionRequestRejected { what: "SSL" })
            }
            (_, B::ErrorResponse(t)) => {
                return Err(Error::Server(error_fields(t.as_bytes(), false)))
            }
            (_, B::NoticeResponse(t)) => {
                events.push_back(ClientEvent::Notice(error_fields(t.as_bytes(), true)))
            }
            (State::AwaitAuth, B::Authentication(a)) => self.auth_request(a, out, events)?,
            (State::PasswordSent, B::Authentication(Authentication::Ok)) => {
                self.authenticated(events)?
            }
            (State::AwaitReady, B::BackendKeyData(k)) if self.key.is_none() => {
                // INVARIANT: a 4-byte key is within BackendKeyData's 4 to 256.
                if let Ok(k) = BackendKeyData::new(k.process_id, k.secret_key) {
                    self.key = Some(k.clone());
                    events.push_back(ClientEvent::BackendKeyData(k));
                }
            }
            (State::AwaitReady, B::ReadyForQuery) => {
                self.state = State::Ready;
                self.status = TransactionStatus::Idle;
                events.push_back(ClientEvent::Connected {
                    status: TransactionStatus::Idle,
                });
            }
            (_, m) => return Err(self.unexpected(&m)),
        }
        Ok(())
    }

    fn allow(&self, method: AuthMethod, what: &'static str) -> Result<(), AuthError> {
        if !self.config.require_auth.allows(method) {
            return Err(AuthError::MethodNotAllowed {
                method: method.require_auth_name(),
            });
        }
        if self.config.channel_binding == ChannelBindingPolicy::Require {
            return Err(AuthError::ChannelBindingUnavailable { reason: what });
        }
        Ok(())
    }

    fn auth_request(
        &mut self,
        a: Authentication,
        out: &mut BytesMut,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        let password = || {
            self.config
                .password
                .as_deref()
                .ok_or(AuthError::MissingPassword)
        };
        let packet = match a {
            Authentication::Ok => {
                self.method = Some(AuthMethod::None);
                return self.authenticated(events);
            }
            Authentication::CleartextPassword => {
                self.allow(
                    AuthMethod::Password,
                    "the server requested a cleartext password",
                )?;
                self.method = Some(AuthMethod::Password);
                PasswordPacket::new(password()?).map_err(|_| AuthError::Unsupported {
                    method: "cleartext with a password containing NUL",
                })?
            }
            Authentication::Md5Password { salt } => {
                self.allow(AuthMethod::Md5, "the server requested MD5 authentication")?;
                self.method = Some(AuthMethod::Md5);
                let hash = md5::password_hash(self.config.user.as_bytes(), password()?, salt);
                PasswordPacket::new(hash).map_err(|_| AuthError::TooLong)?
            }
            Authentication::CryptPassword { .. } => {
                return Err(AuthError::Unsupported {
                    method: "crypt (protocol 2.0 servers before PostgreSQL 8.4)",
                }
                .into())
            }
            Authentication::KerberosV4 => {
                return Err(AuthError::Unsupported {
                    method: "Kerberos V4",
                }
                .into())
            }
            Authentication::KerberosV5 => {
                return Err(AuthError::Unsupported {
                    method: "Kerberos V5",
                }
                .into())
            }
            Authentication::ScmCredential => {
                return Err(AuthError::Unsupported {
                    method: "SCM credential",
                }
                .into())
            }
        };
        packet.encode(out);
        self.state = State::PasswordSent;
        Ok(())
    }

    /// AuthenticationOk: checks the policy, then waits for ReadyForQuery.
    fn authenticated(&mut self, events: &mut VecDeque<ClientEvent>) -> Result<(), Error> {
        let method = self.method.unwrap_or(AuthMethod::None);
        if !self.config.require_auth.allows(method) {
            return Err(AuthError::Incomplete {
                required: "an authentication method allowed by require_auth",
            }
            .into());
        }
        if self.config.channel_binding == ChannelBindingPolicy::Require {
            return Err(AuthError::Incomplete {
                required: "SCRAM-SHA-256-PLUS with channel binding",
            }
            .into());
        }
        self.state = State::AwaitReady;
        events.push_back(ClientEvent::Authenticated { method });
        Ok(())
    }

    /// A message after start-up.
    fn answer(
        &mut self,
        m: BackendMessage,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        match m {
            BackendMessage::NoticeResponse(t) => {
                events.push_back(ClientEvent::Notice(error_fields(t.as_bytes(), true)));
                return Ok(());
            }
            BackendMessage::NotificationResponse(n) => {
                let n = NotificationResponse::from_bytes(n.process_id, n.channel.as_bytes(), b"");
                events.push_back(ClientEvent::Notification(n));
                return Ok(());
            }
            _ => {}
        }
        let Some(&(id, request)) = self.requests.front() else {
            return match m {
                BackendMessage::ErrorResponse(t) => {
                    events.push_back(ClientEvent::UnsolicitedError(error_fields(
                        t.as_bytes(),
                        false,
                    )));
                    Ok(())
                }
                m => Err(self.unexpected(&m)),
            };
        };
        let next = Answer::of(&m).and_then(|a| table::next(request, self.stage, a));
        let Some(next) = next else {
            return Err(self.unexpected(&m));
        };
        self.track_status(&m);
        // (An error during COPY FROM STDIN moves the request out of CopyIn: the data stream is
        // over, and the connection with it, as the FATAL error that follows says.)
        match next {
            Next::Stay => {}
            Next::Go(stage) => self.stage = stage,
            Next::Done => {
                self.requests.pop_front();
                self.stage = Stage::Start;
            }
        }
        let message = match response_v3(m) {
            Some(Message3::ReadyForQuery(_)) => Message3::ReadyForQuery(self.status),
            Some(message) => message,
            None => return Ok(()),
        };
        events.push_back(ClientEvent::Response {
            request: id,
            message,
        });
        Ok(())
    }

    /// libpq 13's `checkXactStatus`: the transaction status a 2.0 server does not report.
    fn track_status(&mut self, m: &BackendMessage) {
        match m {
            BackendMessage::CompletedResponse(t) => match t.as_bytes() {
                b"BEGIN" | b"START TRANSACTION" => self.status = TransactionStatus::InTransaction,
                b"COMMIT" | b"ROLLBACK" => self.status = TransactionStatus::Idle,
                _ => {}
            },
            BackendMessage::ErrorResponse(_) if self.status == TransactionStatus::InTransaction => {
                self.status = TransactionStatus::Failed
            }
            _ => {}
        }
    }

    // ---- commands ----

    fn check_command(&self, command: &'static str) -> Result<(), UsageError> {
        match self.state {
            State::Ready if self.stage == Stage::CopyIn => Err(UsageError::NotAllowed {
                command,
                state: "copying data to the server",
            }),
            State::Ready => Ok(()),
            State::Terminating | State::Closed => Err(UsageError::Closed),
            _ => Err(UsageError::NotAllowed {
                command,
                state: "starting up",
            }),
        }
    }

    fn register(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.requests.push_back((id, request));
        id
    }

    /// Sends a Query.
    pub(crate) fn query(&mut self, sql: &str, out: &mut BytesMut) -> Result<RequestId, UsageError> {
        self.check_command("send Query")?;
        FrontendMessage::Query(Text::new(sql)?).encode(out);
        Ok(self.register(Request::Query))
    }

    /// Sends a FunctionCall: 2.0 passes arguments and the result in binary only.
    pub(crate) fn function_call(
        &mut self,
        call: &FunctionCall3,
        out: &mut BytesMut,
    ) -> Result<RequestId, UsageError> {
        self.check_command("send FunctionCall")?;
        let binary = call.arg_formats().iter().all(|f| f == Format::Binary)
            && (call.args().is_empty() || !call.arg_formats().is_empty())
            && call.result_format() == Format::Binary;
        if !binary {
            return Err(UsageError::NotAllowed {
                command: "send a FunctionCall with text arguments or result",
                state: "using protocol 2.0 (binary only)",
            });
        }
        let args: Vec<Option<&[u8]>> = call.args().iter().collect();
        FrontendMessage::FunctionCall(FunctionCall::new(call.function(), &args)?).encode(out);
        Ok(self.register(Request::FunctionCall))
    }

    fn copy_sending(&self, command: &'static str) -> Result<(), UsageError> {
        match self.state {
            State::Ready if self.stage == Stage::CopyIn => Ok(()),
            State::Terminating | State::Closed => Err(UsageError::Closed),
            _ => Err(UsageError::NotAllowed {
                command,
                state: "not in COPY FROM STDIN",
            }),
        }
    }

    /// Sends COPY data as it is (2.0 has no framing: lines of text).
    pub(crate) fn copy_data(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), UsageError> {
        self.copy_sending("send COPY data")?;
        if let Some(&last) = data.last() {
            out.extend_from_slice(data);
            self.at_line_start = last == b'\n';
        }
        Ok(())
    }

    /// Ends the COPY data with `\.` on a line of its own.
    pub(crate) fn copy_done(&mut self, out: &mut BytesMut) -> Result<(), UsageError> {
        self.copy_sending("end COPY data")?;
        self.end_copy_data(out);
        Ok(())
    }

    fn end_copy_data(&mut self, out: &mut BytesMut) {
        if !self.at_line_start {
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(COPY_END);
        self.at_line_start = true;
        if let Some(stage) = table::next_frontend(self.stage, CopyStream::End) {
            self.stage = stage;
        }
    }

    /// Sends Terminate.
    pub(crate) fn terminate(&mut self, out: &mut BytesMut) -> Result<(), UsageError> {
        if matches!(self.state, State::Terminating | State::Closed) {
            return Err(UsageError::Closed);
        }
        FrontendMessage::Terminate.encode(out);
        self.state = State::Terminating;
        Ok(())
    }
}

fn cannot_send(message: &'static str, e: UsageError) -> Error {
    Error::CannotSend {
        message,
        reason: match e {
            UsageError::Encode(e) => e,
            _ => EncodeError::OutOfRange {
                field: message,
                reason: "the configuration cannot be sent",
            },
        },
    }
}
