//! The server's start-up phase: encryption requests, the StartupMessage and version
//! negotiation, and authentication.
//!
//! ```text
//!  AwaitPacket ──SSLRequest──▶ AwaitSslDecision ──accept_ssl(true)──▶ AwaitTls ──tls_established──┐
//!      │   ▲                         └──accept_ssl(false): 'N'──────────────────────────────────────┤
//!      │   └────────────────────────────────────────────────────────────────────────────────────────┘
//!      ├──GSSENCRequest──▶ AwaitGssDecision ──▶ AwaitGss ──gss_established──▶ AwaitPacket
//!      ├──TLS record first (0x16)──▶ AwaitDirectTls ──tls_established──▶ AwaitPacket
//!      ├──CancelRequest──▶ Cancelled (event; nothing is ever sent; any further byte is an error, EOF closes)
//!      └──StartupMessage──▶ AwaitAuthDecision ──authenticate(..)──▶ Password | Scram | External
//!                                                  ──▶ AuthenticationOk, ParameterStatus..., BackendKeyData,
//!                                                      ReadyForQuery ──▶ ready
//!                                                  ──▶ (StartupEnd::Application) AuthenticationOk ──▶ AwaitStartupEnd
//!                                                      ──parameter_status, notice..., finish_startup──▶ ready
//!                                                      ──reject (FATAL)──▶ closed
//! ```

use bytes::Bytes;

use super::config::ServerAuth;
use crate::auth::{md5, verify_cleartext, ScramMechanism, ScramServer};
use crate::message::frontend::AuthResponseKind;

/// Where the start-up is.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting for a start-up packet.
    AwaitPacket,
    /// SSLRequest received; the application must call `accept_ssl`.
    AwaitSslDecision,
    /// GSSENCRequest received; the application must call `accept_gssenc`.
    AwaitGssDecision,
    /// 'S' sent; the I/O layer does the TLS handshake.
    AwaitTls,
    /// 'G' sent; the I/O layer sets up GSSAPI encryption.
    AwaitGss,
    /// The client began with a TLS handshake (direct SSL).
    AwaitDirectTls,
    /// StartupMessage received; the application must call `authenticate` or `reject`.
    AwaitAuthDecision,
    /// AuthenticationCleartextPassword or AuthenticationMD5Password sent.
    Password(PasswordCheck),
    /// AuthenticationSASL sent for SCRAM.
    Scram {
        server: Box<ScramServer>,
        plus_offered: bool,
        step: ScramStep,
    },
    /// GSS, SSPI or another SASL mechanism, handled by the application.
    External(AuthResponseKind),
    /// A CancelRequest was received: nothing more may come but EOF.
    Cancelled,
    /// AuthenticationOk sent ([`StartupEnd::Application`](super::StartupEnd)): the application
    /// sends parameters or notices, then `finish_startup` (or `reject`).
    AwaitStartupEnd,
}

/// How a received password is checked.
#[derive(Debug)]
pub(crate) enum PasswordCheck {
    Cleartext {
        stored: Option<String>,
    },
    Md5 {
        stored: Option<String>,
        salt: [u8; 4],
    },
}

impl PasswordCheck {
    pub(crate) fn verify(&self, user: &[u8], password: &[u8]) -> bool {
        match self {
            Self::Cleartext { stored: Some(s) } => verify_cleartext(s, user, password),
            Self::Md5 {
                stored: Some(s),
                salt,
            } => md5::verify(s, *salt, password),
            _ => false,
        }
    }
}

/// The SCRAM exchange's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramStep {
    AwaitInitial,
    AwaitFinal,
}

impl State {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::AwaitPacket => "waiting for a start-up packet",
            Self::AwaitSslDecision => "deciding on SSLRequest",
            Self::AwaitGssDecision => "deciding on GSSENCRequest",
            Self::AwaitTls => "waiting for the TLS handshake",
            Self::AwaitGss => "waiting for GSSAPI encryption",
            Self::AwaitDirectTls => "waiting for the direct TLS handshake",
            Self::AwaitAuthDecision => "deciding how to authenticate",
            Self::Password(_) => "waiting for a password",
            Self::Scram { .. } => "authenticating with SCRAM",
            Self::External(_) => "authenticating (external mechanism)",
            Self::Cancelled => "after a CancelRequest",
            Self::AwaitStartupEnd => "finishing start-up (AuthenticationOk sent)",
        }
    }

    /// Whether the machine waits for the application or the I/O layer, not for the client.
    pub(crate) fn blocks_input(&self) -> bool {
        matches!(
            self,
            Self::AwaitSslDecision
                | Self::AwaitGssDecision
                | Self::AwaitTls
                | Self::AwaitGss
                | Self::AwaitDirectTls
                | Self::AwaitAuthDecision
                | Self::AwaitStartupEnd
        )
    }

    /// Whether authentication has not begun yet (the configuration may still change).
    pub(crate) fn before_auth(&self) -> bool {
        matches!(
            self,
            Self::AwaitPacket
                | Self::AwaitSslDecision
                | Self::AwaitGssDecision
                | Self::AwaitTls
                | Self::AwaitGss
                | Self::AwaitDirectTls
                | Self::AwaitAuthDecision
        )
    }
}

/// Starts an authentication exchange: the request to send and the next state.
pub(crate) fn begin(
    auth: ServerAuth,
    user: &[u8],
    tls_end_point: Option<&[u8]>,
    mock_secret: &[u8],
    mock_iterations: u32,
) -> Result<(crate::Authentication, Option<State>), crate::auth::ScramError> {
    use crate::Authentication as A;
    Ok(match auth {
        ServerAuth::Trust => (A::Ok, None),
        ServerAuth::Password { stored } => (
            A::CleartextPassword,
            Some(State::Password(PasswordCheck::Cleartext { stored })),
        ),
        ServerAuth::Md5 { stored } => {
            let mut salt = [0u8; 4];
            getrandom::fill(&mut salt).map_err(|e| crate::auth::ScramError::Random {
                reason: e.to_string(),
            })?;
            (
                A::Md5Password { salt },
                Some(State::Password(PasswordCheck::Md5 { stored, salt })),
            )
        }
        ServerAuth::Scram { verifier } => {
            let plus_offered = tls_end_point.is_some();
            let names: &[&str] = if plus_offered {
                &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
            } else {
                &["SCRAM-SHA-256"]
            };
            let server = match verifier {
                Some(v) => ScramServer::new(v),
                None => ScramServer::doomed(user, mock_secret, mock_iterations),
            };
            (
                // INVARIANT: fixed, valid mechanism names.
                A::Sasl(crate::SaslMechanisms::new(names).map_err(|_| {
                    crate::auth::ScramError::Malformed {
                        message: "mechanism list",
                        reason: "invalid",
                    }
                })?),
                Some(State::Scram {
                    server: Box::new(server),
                    plus_offered,
                    step: ScramStep::AwaitInitial,
                }),
            )
        }
        ServerAuth::Gss => (A::Gss, Some(State::External(AuthResponseKind::Gss))),
        ServerAuth::Sspi => (A::Sspi, Some(State::External(AuthResponseKind::Gss))),
        ServerAuth::Sasl { mechanisms } => (
            A::Sasl(crate::SaslMechanisms::new(&mechanisms).map_err(|_| {
                crate::auth::ScramError::Malformed {
                    message: "mechanism list",
                    reason: "a name is empty or contains NUL",
                }
            })?),
            Some(State::External(AuthResponseKind::SaslInitial)),
        ),
    })
}

/// The mechanism a SASLInitialResponse names, if it is one of ours and was offered.
pub(crate) fn scram_mechanism(
    name: &[u8],
    plus_offered: bool,
) -> Result<ScramMechanism, crate::auth::ScramError> {
    match ScramMechanism::from_name(name) {
        Some(m @ ScramMechanism::ScramSha256Plus) if !plus_offered => {
            Err(crate::auth::ScramError::MechanismNotOffered { mechanism: m })
        }
        Some(m) => Ok(m),
        None => Err(crate::auth::ScramError::Malformed {
            message: "SASLInitialResponse",
            reason: "unknown SASL mechanism",
        }),
    }
}

/// The old protocol-2.0 error format: 'E', then the text with its NUL, no length word.
pub(crate) fn legacy_error(text: &str) -> Bytes {
    let mut v = Vec::with_capacity(text.len() + 2);
    v.push(b'E');
    v.extend_from_slice(text.as_bytes());
    v.push(0);
    Bytes::from(v)
}
