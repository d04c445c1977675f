//! The client's start-up phase: encryption negotiation, protocol version negotiation,
//! authentication and the wait for the first ReadyForQuery.
//!
//! ```text
//!  new ──SSLRequest──▶ AwaitSslResponse ──'S'──▶ AwaitTls ──tls_established──┐
//!   │                        └──'N' (not required)──────────────────────────────┤
//!   ├──GSSENCRequest──▶ AwaitGssResponse ──'G'──▶ AwaitGss ──gss_established──┤
//!   │                        └──'N' (not required)──────────────────────────────┤
//!   ├──(direct TLS)──▶ AwaitDirectTls ──tls_established─────────────────────────┤
//!   └──────────────────────────────────────────────StartupMessage──────────────▼
//!                                                                          AwaitAuth
//!        R(password|md5) ▶ PasswordSent ─┐   R(SASL) ▶ Scram ─SASLContinue▶ ─SASLFinal▶ ─┐
//!        R(GSS|SSPI|other SASL) ▶ External ─────────────────────────────────────────────┤
//!        R(Ok) ──────────────────────────────────────────── (policy checked) ───────────▼
//!                                                                          AwaitReady
//!                         ParameterStatus, BackendKeyData, NoticeResponse ──▶ (stay)
//!                         ReadyForQuery ──▶ connected
//! ```
//!
//! An ErrorResponse anywhere in start-up ends the connection with [`Error::Server`].

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::config::{AuthMethod, ChannelBindingPolicy, ClientConfig, Encryption};
use super::ClientEvent;
use crate::auth::md5;
use crate::auth::{ChannelBinding, ScramClient};
use crate::codec::Encode;
use crate::decoder::BackendDecoder;
use crate::error::{AuthError, EncodeError, Error, UsageError};
use crate::message::auth::Authentication;
use crate::message::backend::{BackendKeyData, BackendMessage, NegotiateProtocolVersion};
use crate::message::common::{ProtocolVersion, TransactionStatus};
use crate::message::frontend::{
    FrontendMessage, PasswordMessage, SaslInitialResponse, SaslResponse,
};
use crate::message::startup::StartupMessage;

/// libpq's limit on the length of an error message from a protocol-2.0 server.
const MAX_LEGACY_ERROR: usize = 30_000;

/// Where the start-up is.
#[derive(Debug)]
enum State {
    AwaitSslResponse,
    AwaitTls,
    AwaitGssResponse,
    AwaitGss,
    AwaitDirectTls,
    AwaitAuth,
    PasswordSent,
    Scram(Box<ScramClient>, ScramStep),
    External,
    AwaitReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScramStep {
    /// SASLInitialResponse sent; expecting SASLContinue.
    SentFirst,
    /// SASLResponse sent; expecting SASLFinal.
    SentFinal,
    /// The server's signature verified; expecting AuthenticationOk.
    Verified,
}

/// What start-up hands to the connected client.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) version: ProtocolVersion,
    pub(crate) method: AuthMethod,
    pub(crate) backend_key: Option<BackendKeyData>,
    pub(crate) params: super::params::Params,
    pub(crate) status: TransactionStatus,
    pub(crate) tls: bool,
}

/// The start-up sub-machine.
#[derive(Debug)]
pub(crate) struct Startup {
    config: ClientConfig,
    state: State,
    version: ProtocolVersion,
    negotiated: bool,
    method: Option<AuthMethod>,
    backend_key: Option<BackendKeyData>,
    params: super::params::Params,
    tls: bool,
    end_point: Option<Vec<u8>>,
}

impl Startup {
    /// Where a tracer set now starts (see `Client::set_tracer`): whether the frontend still
    /// sends start-up packets, and whether the server's next byte answers an SSLRequest
    /// (`Some(true)`) or a GSSENCRequest (`Some(false)`). `out_empty`: every queued byte was
    /// handed out.
    pub(crate) fn trace_position(&self, out_empty: bool) -> (bool, Option<bool>) {
        match self.state {
            State::AwaitSslResponse => (true, out_empty.then_some(true)),
            State::AwaitGssResponse => (true, out_empty.then_some(false)),
            State::AwaitTls | State::AwaitGss | State::AwaitDirectTls => (true, None),
            // The StartupMessage is still queued.
            State::AwaitAuth => (!out_empty, None),
            _ => (false, None),
        }
    }

    /// Checks the configuration and queues the first bytes.
    pub(crate) fn new(
        config: ClientConfig,
        decoder: &mut BackendDecoder,
        out: &mut BytesMut,
    ) -> Result<Self, UsageError> {
        let max = config.max_protocol_version;
        let min = config.min_protocol_version;
        let supported =
            |v: ProtocolVersion| v == ProtocolVersion::V3_0 || v == ProtocolVersion::V3_2;
        // A minimum of 2.0 allows the fallback to 2.0 (`Client` starts a 2.0-only session
        // itself, without this sub-machine).
        if !supported(max) || !(supported(min) || min == ProtocolVersion::V2_0) || min > max {
            return Err(UsageError::InvalidConfig {
                reason: "protocol versions must be 2.0, 3.0 or 3.2, with min <= max",
            });
        }
        let mut s = Self {
            state: State::AwaitAuth,
            version: max,
            negotiated: false,
            method: None,
            backend_key: None,
            params: super::params::Params::default(),
            tls: false,
            end_point: None,
            config,
        };
        // Build the StartupMessage now, so that a bad parameter fails here.
        let startup = s.startup_message()?;
        decoder.set_protocol_version(max);
        match s.config.encryption {
            Encryption::None => {
                startup.encode(out);
                s.state = State::AwaitAuth;
            }
            Encryption::Ssl { .. } => {
                FrontendMessage::SslRequest.encode(out);
                decoder.expect_ssl_response();
                s.state = State::AwaitSslResponse;
            }
            Encryption::Gss { .. } => {
                FrontendMessage::GssEncRequest.encode(out);
                decoder.expect_gssenc_response();
                s.state = State::AwaitGssResponse;
            }
            Encryption::DirectSsl => s.state = State::AwaitDirectTls,
        }
        Ok(s)
    }

    fn startup_message(&self) -> Result<StartupMessage, UsageError> {
        let c = &self.config;
        let mut params: Vec<(&str, &str)> = vec![("user", c.user.as_str())];
        for (k, v) in [
            ("database", &c.database),
            ("application_name", &c.application_name),
            ("options", &c.options),
            ("replication", &c.replication),
        ] {
            if let Some(v) = v {
                params.push((k, v.as_str()));
            }
        }
        params.extend(c.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(StartupMessage::new(self.version, params)?)
    }

    /// The configuration, for a fallback to protocol 2.0.
    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            State::AwaitSslResponse => "waiting for the answer to SSLRequest",
            State::AwaitTls => "waiting for the TLS handshake",
            State::AwaitGssResponse => "waiting for the answer to GSSENCRequest",
            State::AwaitGss => "waiting for GSSAPI encryption",
            State::AwaitDirectTls => "waiting for the direct TLS handshake",
            State::AwaitAuth => "waiting for an authentication request",
            State::PasswordSent => "authenticating with a password",
            State::Scram(..) => "authenticating with SCRAM",
            State::External => "authenticating (external mechanism)",
            State::AwaitReady => "waiting for the server to become ready",
        }
    }

    /// Whether the I/O layer is doing a handshake, during which nothing may be decoded.
    pub(crate) fn blocks_input(&self) -> bool {
        matches!(
            self.state,
            State::AwaitTls | State::AwaitGss | State::AwaitDirectTls
        )
    }

    /// A protocol-2.0 server answers a StartupMessage it cannot parse with `E` and a
    /// NUL-terminated text, without a length word. libpq recognises it by a length word that no
    /// real ErrorResponse could have, and so do we. `None`: not such an error.
    pub(crate) fn check_legacy_error(
        &self,
        decoder: &BackendDecoder,
        eof: bool,
    ) -> Option<Result<bool, Error>> {
        if !matches!(self.state, State::AwaitAuth) {
            return None;
        }
        let buf = decoder.peek();
        if buf.first() != Some(&b'E') || buf.len() < 5 {
            return None;
        }
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if (8..=MAX_LEGACY_ERROR as i32).contains(&len) {
            return None;
        }
        let text = &buf[1..];
        let end = memchr::memchr(0, text);
        if end.is_none() && !eof && text.len() < MAX_LEGACY_ERROR {
            return Some(Ok(false));
        }
        let text = &text[..end.unwrap_or(text.len()).min(MAX_LEGACY_ERROR)];
        let message = String::from_utf8_lossy(text).trim_end().to_string();
        Some(Err(Error::LegacyServer { message }))
    }

    /// The I/O layer finished a TLS (`tls`) or GSSAPI handshake.
    pub(crate) fn encryption_established(
        &mut self,
        tls: bool,
        end_point: Option<Vec<u8>>,
        decoder: &mut BackendDecoder,
        out: &mut BytesMut,
    ) -> Result<(), Result<UsageError, Error>> {
        let what = if tls { "SSL" } else { "GSSAPI" };
        match (&self.state, tls) {
            (State::AwaitTls | State::AwaitDirectTls, true) | (State::AwaitGss, false) => {}
            _ => {
                return Err(Ok(UsageError::NotAllowed {
                    command: if tls {
                        "establish TLS"
                    } else {
                        "establish GSSAPI encryption"
                    },
                    state: self.state_name(),
                }))
            }
        }
        let len = decoder.buffered_len();
        if len > 0 {
            return Err(Err(Error::BufferedBeforeEncryption { what, len }));
        }
        self.tls = tls;
        self.end_point = end_point;
        self.send_startup(out).map_err(Ok)?;
        Ok(())
    }

    fn send_startup(&mut self, out: &mut BytesMut) -> Result<(), UsageError> {
        self.startup_message()?.encode(out);
        self.state = State::AwaitAuth;
        Ok(())
    }

    /// Sends a response the application computed for an external mechanism.
    pub(crate) fn external_response(
        &mut self,
        message: &FrontendMessage,
        out: &mut BytesMut,
    ) -> Result<(), UsageError> {
        let fits = matches!(
            message,
            FrontendMessage::GssResponse(_)
                | FrontendMessage::SaslInitialResponse(_)
                | FrontendMessage::SaslResponse(_)
        );
        if !matches!(self.state, State::External) || !fits {
            return Err(UsageError::NotAllowed {
                command: "send this authentication response",
                state: self.state_name(),
            });
        }
        message.encode(out);
        Ok(())
    }

    /// Handles one message. Returns `Some` when start-up is complete.
    pub(crate) fn handle(
        &mut self,
        msg: BackendMessage,
        decoder: &mut BackendDecoder,
        out: &mut BytesMut,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<Option<Done>, Error> {
        use BackendMessage as B;
        let unexpected = |s: &Self, m: &BackendMessage| Error::UnexpectedMessage {
            state: s.state_name(),
            message: m.name(),
        };
        match (&mut self.state, msg) {
            (State::AwaitSslResponse, B::SslResponse { accepted })
            | (State::AwaitGssResponse, B::GssEncResponse { accepted }) => {
                let ssl = matches!(self.state, State::AwaitSslResponse);
                let what = if ssl { "SSL" } else { "GSSAPI" };
                let required = match self.config.encryption {
                    Encryption::Ssl { required } | Encryption::Gss { required } => required,
                    _ => false,
                };
                if accepted {
                    // CVE-2021-23222: nothing may follow the answer before encryption begins.
                    let len = decoder.buffered_len();
                    if len > 0 {
                        return Err(Error::BufferedBeforeEncryption { what, len });
                    }
                    self.state = if ssl {
                        State::AwaitTls
                    } else {
                        State::AwaitGss
                    };
                } else if required {
                    return Err(Error::EncryptionRefused { what });
                } else {
                    self.send_startup(out).map_err(|e| Error::CannotSend {
                        message: "StartupMessage",
                        reason: match e {
                            UsageError::Encode(e) => e,
                            _ => EncodeError::OutOfRange {
                                field: "StartupMessage",
                                reason: "the configuration cannot be sent",
                            },
                        },
                    })?;
                }
                events.push_back(if ssl {
                    ClientEvent::SslResponse { accepted }
                } else {
                    ClientEvent::GssEncResponse { accepted }
                });
            }
            (State::AwaitSslResponse, B::ErrorResponse(_)) => {
                return Err(Error::EncryptionRequestRejected { what: "SSL" })
            }
            (State::AwaitGssResponse, B::ErrorResponse(_)) => {
                return Err(Error::EncryptionRequestRejected { what: "GSSAPI" })
            }
            (_, B::ErrorResponse(f)) => return Err(Error::Server(f)),
            (State::AwaitAuth | State::AwaitReady, B::NegotiateProtocolVersion(n)) => {
                self.negotiate(&n, decoder, events)?
            }
            (State::AwaitAuth, B::Authentication(a)) => self.auth_request(a, out, events)?,
            (State::PasswordSent, B::Authentication(Authentication::Ok)) => {
                self.authenticated(events)?
            }
            (State::Scram(scram, step), B::Authentication(a)) => match (*step, a) {
                (ScramStep::SentFirst, Authentication::SaslContinue(data)) => {
                    let reply = scram.handle_server_first(&data).map_err(AuthError::Scram)?;
                    SaslResponse::new(Bytes::from(reply))
                        .map_err(|_| AuthError::TooLong)?
                        .encode(out);
                    *step = ScramStep::SentFinal;
                }
                (ScramStep::SentFinal, Authentication::SaslFinal(data)) => {
                    scram.handle_server_final(&data).map_err(AuthError::Scram)?;
                    *step = ScramStep::Verified;
                }
                (ScramStep::Verified, Authentication::Ok) => self.authenticated(events)?,
                (_, Authentication::Ok) => {
                    // Mutual authentication: the server must prove it knows the password.
                    return Err(AuthError::Incomplete {
                        required: "the SCRAM exchange, with the server's signature",
                    }
                    .into());
                }
                (_, other) => return Err(unexpected(self, &B::Authentication(other))),
            },
            (State::External, B::Authentication(Authentication::Ok)) => {
                self.authenticated(events)?
            }
            (
                State::External,
                B::Authentication(
                    a @ (Authentication::GssContinue(_)
                    | Authentication::SaslContinue(_)
                    | Authentication::SaslFinal(_)),
                ),
            ) => events.push_back(ClientEvent::AuthenticationRequest(a)),
            (
                State::AwaitAuth | State::PasswordSent | State::Scram(..) | State::External,
                B::NoticeResponse(f),
            )
            | (State::AwaitReady, B::NoticeResponse(f)) => events.push_back(ClientEvent::Notice(f)),
            (State::AwaitReady, B::ParameterStatus(p)) => {
                self.params.set(&p);
                events.push_back(ClientEvent::ParameterStatus(p));
            }
            (State::AwaitReady, B::BackendKeyData(k)) => {
                if self.backend_key.is_some() {
                    return Err(unexpected(self, &B::BackendKeyData(k)));
                }
                // Copied, so the key does not keep the whole receive buffer alive.
                self.backend_key = Some(
                    BackendKeyData::new(k.process_id(), k.secret_key()).map_err(|_| {
                        Error::UnexpectedMessage {
                            state: "reading BackendKeyData",
                            message: "BackendKeyData",
                        }
                    })?,
                );
                events.push_back(ClientEvent::BackendKeyData(k));
            }
            (State::AwaitReady, B::ReadyForQuery(status)) => {
                events.push_back(ClientEvent::Connected { status });
                return Ok(Some(Done {
                    version: self.version,
                    method: self.method.unwrap_or(AuthMethod::None),
                    backend_key: self.backend_key.take(),
                    params: std::mem::take(&mut self.params),
                    status,
                    tls: self.tls,
                }));
            }
            (_, m) => return Err(unexpected(self, &m)),
        }
        Ok(None)
    }

    fn negotiate(
        &mut self,
        n: &NegotiateProtocolVersion,
        decoder: &mut BackendDecoder,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        let fail = |reason| Err(Error::ProtocolNegotiation { reason });
        if self.negotiated {
            return fail("NegotiateProtocolVersion sent twice");
        }
        self.negotiated = true;
        let requested = self.version;
        // The field is a whole version word, `major << 16 | minor`, whatever the documentation's
        // "newest minor version" suggests: PostgreSQL sends PG_PROTOCOL(3, x) and libpq reads it
        // so (15 answers a 3.2 request with 0x00030000).
        let code = n.newest_version_code();
        if code >> 16 != 3 {
            return fail("the server offered a protocol version other than 3.x");
        }
        let minor = code & 0xffff;
        let requested_options: Vec<&str> = self
            .config
            .params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.as_str())
            .collect();
        for opt in n.unrecognized() {
            if !opt.starts_with(b"_pq_.") {
                return fail("the server named an unrecognised option not starting with _pq_.");
            }
            if !requested_options.iter().any(|r| r.as_bytes() == opt) {
                return fail("the server named an option the client did not request");
            }
        }
        if minor > i32::from(requested.minor) {
            return fail("the server offered a version above the one requested");
        }
        if minor == 1 {
            return fail("the server offered protocol 3.1, which does not exist");
        }
        if minor == i32::from(requested.minor) && n.unrecognized_count() == 0 {
            return fail("the server negotiated without changing anything");
        }
        let version = ProtocolVersion {
            major: 3,
            minor: minor as u16,
        };
        if version < self.config.min_protocol_version {
            return fail("the server's version is below min_protocol_version");
        }
        self.version = version;
        decoder.set_protocol_version(version);
        events.push_back(ClientEvent::ProtocolNegotiated {
            version,
            unrecognized: n.unrecognized().map(Bytes::copy_from_slice).collect(),
        });
        Ok(())
    }

    fn allow(&self, method: AuthMethod) -> Result<(), AuthError> {
        if self.config.require_auth.allows(method) {
            Ok(())
        } else {
            Err(AuthError::MethodNotAllowed {
                method: method.require_auth_name(),
            })
        }
    }

    fn password(&self) -> Result<&[u8], AuthError> {
        self.config
            .password
            .as_deref()
            .ok_or(AuthError::MissingPassword)
    }

    fn no_binding_allowed(&self, what: &'static str) -> Result<(), AuthError> {
        if self.config.channel_binding == ChannelBindingPolicy::Require {
            Err(AuthError::ChannelBindingUnavailable { reason: what })
        } else {
            Ok(())
        }
    }

    fn auth_request(
        &mut self,
        a: Authentication,
        out: &mut BytesMut,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        match a {
            Authentication::Ok => {
                self.method = Some(AuthMethod::None);
                return self.authenticated(events);
            }
            Authentication::CleartextPassword => {
                self.allow(AuthMethod::Password)?;
                self.no_binding_allowed("the server requested a cleartext password")?;
                let m =
                    PasswordMessage::new(self.password()?).map_err(|_| AuthError::Unsupported {
                        method: "cleartext with a password containing NUL",
                    })?;
                m.encode(out);
                self.method = Some(AuthMethod::Password);
                self.state = State::PasswordSent;
            }
            Authentication::Md5Password { salt } => {
                self.allow(AuthMethod::Md5)?;
                self.no_binding_allowed("the server requested MD5 authentication")?;
                let hash = md5::password_hash(self.config.user.as_bytes(), self.password()?, salt);
                PasswordMessage::new(hash.as_bytes())
                    .map_err(|_| AuthError::TooLong)?
                    .encode(out);
                self.method = Some(AuthMethod::Md5);
                self.state = State::PasswordSent;
            }
            Authentication::Sasl(mechs) => {
                let plus_offered = mechs.contains("SCRAM-SHA-256-PLUS");
                let can_bind = self.tls
                    && self.end_point.is_some()
                    && self.config.channel_binding != ChannelBindingPolicy::Disable;
                if plus_offered && can_bind {
                    self.allow(AuthMethod::ScramSha256Plus)?;
                    let cb = self.end_point.clone().unwrap_or_default();
                    self.start_scram(
                        "SCRAM-SHA-256-PLUS",
                        ChannelBinding::TlsServerEndPoint(cb),
                        out,
                    )?;
                    self.method = Some(AuthMethod::ScramSha256Plus);
                } else if mechs.contains("SCRAM-SHA-256") {
                    self.allow(AuthMethod::ScramSha256)?;
                    if self.config.channel_binding == ChannelBindingPolicy::Require {
                        return Err(AuthError::ChannelBindingUnavailable {
                            reason: if !self.tls {
                                "the connection is not encrypted with TLS"
                            } else if self.end_point.is_none() {
                                "the TLS layer gave no certificate hash"
                            } else {
                                "the server does not offer SCRAM-SHA-256-PLUS"
                            },
                        }
                        .into());
                    }
                    // 'y': we could bind but the server did not offer PLUS; a server that did
                    // offer it will see the downgrade.
                    let binding = if can_bind {
                        ChannelBinding::SupportedButNotUsed
                    } else {
                        ChannelBinding::None
                    };
                    self.start_scram("SCRAM-SHA-256", binding, out)?;
                    self.method = Some(AuthMethod::ScramSha256);
                } else if mechs.contains("OAUTHBEARER") {
                    self.allow(AuthMethod::OAuthBearer)?;
                    self.no_binding_allowed("the server requested OAUTHBEARER")?;
                    self.method = Some(AuthMethod::OAuthBearer);
                    self.state = State::External;
                    events.push_back(ClientEvent::AuthenticationRequest(Authentication::Sasl(
                        mechs,
                    )));
                } else {
                    return Err(AuthError::NoMechanism.into());
                }
            }
            Authentication::Gss | Authentication::Sspi => {
                let method = if a == Authentication::Gss {
                    AuthMethod::Gss
                } else {
                    AuthMethod::Sspi
                };
                self.allow(method)?;
                self.no_binding_allowed("the server requested GSSAPI or SSPI authentication")?;
                self.method = Some(method);
                self.state = State::External;
                events.push_back(ClientEvent::AuthenticationRequest(a));
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
            other => {
                return Err(Error::UnexpectedMessage {
                    state: self.state_name(),
                    message: other.name(),
                })
            }
        }
        Ok(())
    }

    fn start_scram(
        &mut self,
        mechanism: &str,
        binding: ChannelBinding,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let password = self.password()?.to_vec();
        let mut scram = ScramClient::new(&password, binding)
            .with_min_iterations(self.config.min_scram_iterations)
            .with_max_iterations(self.config.max_scram_iterations);
        if let Some(n) = &self.config.scram_nonce {
            scram = scram.with_nonce(n).map_err(AuthError::Scram)?;
        }
        let first = scram.client_first().map_err(AuthError::Scram)?;
        SaslInitialResponse::new(mechanism, Some(&first))
            .map_err(|_| AuthError::TooLong)?
            .encode(out);
        self.state = State::Scram(Box::new(scram), ScramStep::SentFirst);
        Ok(())
    }

    /// AuthenticationOk: checks the policy, then waits for the server to become ready.
    fn authenticated(&mut self, events: &mut VecDeque<ClientEvent>) -> Result<(), Error> {
        let method = self.method.unwrap_or(AuthMethod::None);
        if !self.config.require_auth.allows(method) {
            return Err(AuthError::Incomplete {
                required: "an authentication method allowed by require_auth",
            }
            .into());
        }
        if self.config.channel_binding == ChannelBindingPolicy::Require
            && method != AuthMethod::ScramSha256Plus
        {
            return Err(AuthError::Incomplete {
                required: "SCRAM-SHA-256-PLUS with channel binding",
            }
            .into());
        }
        self.state = State::AwaitReady;
        events.push_back(ClientEvent::Authenticated { method });
        Ok(())
    }
}
