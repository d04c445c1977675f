//! What a [`Client`](crate::Client) asks for at start-up, and the policy it holds the server to.

use crate::limits::Limits;
use crate::message::common::ProtocolVersion;

/// How the connection is to be encrypted before the StartupMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// No encryption request: the StartupMessage goes first (libpq `sslmode=disable`).
    #[default]
    None,
    /// Send SSLRequest. With `required`, a refusal fails the connection (`sslmode=require` and
    /// stricter); without, the client continues in plaintext (`sslmode=prefer`).
    Ssl {
        /// Whether a refusal is fatal.
        required: bool,
    },
    /// Send GSSENCRequest. With `required`, a refusal fails the connection.
    Gss {
        /// Whether a refusal is fatal.
        required: bool,
    },
    /// Direct TLS (PostgreSQL 17 and later, libpq `sslnegotiation=direct`): the I/O layer
    /// performs the TLS handshake first, with ALPN `postgresql`, then calls
    /// [`Client::tls_established`](crate::Client::tls_established).
    DirectSsl,
}

/// Whether to use SCRAM channel binding (libpq `channel_binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBindingPolicy {
    /// Never use channel binding.
    Disable,
    /// Use it when the transport is TLS and the server offers SCRAM-SHA-256-PLUS.
    #[default]
    Prefer,
    /// Require SCRAM-SHA-256-PLUS: any other outcome fails the connection, including a server
    /// that skips authentication.
    Require,
}

/// An authentication method, as named by libpq's `require_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// No authentication exchange: the server sent AuthenticationOk at once (`trust`).
    None,
    /// Cleartext password.
    Password,
    /// MD5-hashed password.
    Md5,
    /// SCRAM-SHA-256 without channel binding.
    ScramSha256,
    /// SCRAM-SHA-256-PLUS (channel binding with tls-server-end-point).
    ScramSha256Plus,
    /// GSSAPI.
    Gss,
    /// SSPI.
    Sspi,
    /// SASL OAUTHBEARER.
    OAuthBearer,
}

impl AuthMethod {
    /// The name used by `require_auth` (SCRAM-SHA-256-PLUS counts as `scram-sha-256`).
    pub fn require_auth_name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Password => "password",
            Self::Md5 => "md5",
            Self::ScramSha256 | Self::ScramSha256Plus => "scram-sha-256",
            Self::Gss => "gss",
            Self::Sspi => "sspi",
            Self::OAuthBearer => "oauth",
        }
    }

    /// A short name: trust, password, md5, scram-sha-256, scram-sha-256-plus, gss, sspi, oauth.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "trust",
            Self::ScramSha256Plus => "scram-sha-256-plus",
            other => other.require_auth_name(),
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::None => 1,
            Self::Password => 2,
            Self::Md5 => 4,
            Self::ScramSha256 | Self::ScramSha256Plus => 8,
            Self::Gss => 16,
            Self::Sspi => 32,
            Self::OAuthBearer => 64,
        }
    }
}

/// libpq's `require_auth`: which authentication methods the server may use.
///
/// ```
/// use pgproto::{AuthMethod, RequireAuth};
/// let r: RequireAuth = "scram-sha-256,none".parse().unwrap();
/// assert!(r.allows(AuthMethod::ScramSha256Plus));
/// assert!(r.allows(AuthMethod::None));
/// assert!(!r.allows(AuthMethod::Md5));
/// let r: RequireAuth = "!password,!md5".parse().unwrap();
/// assert!(!r.allows(AuthMethod::Password));
/// assert!(r.allows(AuthMethod::None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireAuth {
    allowed: u8,
}

impl Default for RequireAuth {
    fn default() -> Self {
        Self::any()
    }
}

impl RequireAuth {
    /// Every method allowed (the default).
    pub fn any() -> Self {
        Self { allowed: 0x7f }
    }

    /// Whether `method` is allowed.
    pub fn allows(self, method: AuthMethod) -> bool {
        self.allowed & method.bit() != 0
    }

    /// Whether the server may skip authentication entirely.
    pub fn allows_none(self) -> bool {
        self.allows(AuthMethod::None)
    }
}

/// A `require_auth` value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid require_auth value: {0}")]
pub struct RequireAuthParseError(String);

impl std::str::FromStr for RequireAuth {
    type Err = RequireAuthParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut positive = 0u8;
        let mut negative = 0u8;
        for item in s.split(',').map(str::trim) {
            let (neg, name) = match item.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, item),
            };
            let bit = match name {
                "none" => AuthMethod::None.bit(),
                "password" => AuthMethod::Password.bit(),
                "md5" => AuthMethod::Md5.bit(),
                "scram-sha-256" => AuthMethod::ScramSha256.bit(),
                "gss" => AuthMethod::Gss.bit(),
                "sspi" => AuthMethod::Sspi.bit(),
                "oauth" => AuthMethod::OAuthBearer.bit(),
                _ => return Err(RequireAuthParseError(item.to_string())),
            };
            if neg {
                negative |= bit;
            } else {
                positive |= bit;
            }
        }
        // As in libpq, a list may not mix positive and negative entries.
        match (positive, negative) {
            (0, 0) => Err(RequireAuthParseError(s.to_string())),
            (p, 0) => Ok(Self { allowed: p }),
            (0, n) => Ok(Self { allowed: 0x7f & !n }),
            _ => Err(RequireAuthParseError(s.to_string())),
        }
    }
}

/// The start-up request and policy of a [`Client`](crate::Client).
///
/// ```
/// use pgproto::{ClientConfig, Encryption, ProtocolVersion};
/// let mut config = ClientConfig::new("alice");
/// config.database = Some("shop".into());
/// config.password = Some(b"secret".to_vec());
/// config.encryption = Encryption::Ssl { required: true };
/// config.max_protocol_version = ProtocolVersion::V3_2;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The user name (required).
    pub user: String,
    /// The database; the server defaults it to the user name.
    pub database: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `options`: command-line arguments for the backend.
    pub options: Option<String>,
    /// `replication`: `true`, `database`, or unset for a normal connection.
    pub replication: Option<String>,
    /// Other run-time parameters to send, and `_pq_.` protocol options.
    pub params: Vec<(String, String)>,
    /// The password, for cleartext, MD5 and SCRAM authentication.
    pub password: Option<Vec<u8>>,
    /// The lowest protocol version to accept (libpq `min_protocol_version`). Default 3.0. With
    /// 2.0, a server that answers the 3.x start-up with a protocol-2.0 error is reconnected to
    /// with 2.0, as libpq up to 13 did ([`ClientEvent::FallbackToV2`](crate::ClientEvent)).
    pub min_protocol_version: ProtocolVersion,
    /// The version to request (libpq `max_protocol_version`). Default 3.0, as libpq. With 2.0
    /// (the minimum must be 2.0 too), the client speaks protocol 2.0 from the start
    /// ([`crate::v2`]).
    pub max_protocol_version: ProtocolVersion,
    /// How to encrypt the connection.
    pub encryption: Encryption,
    /// Channel-binding policy.
    pub channel_binding: ChannelBindingPolicy,
    /// Which authentication methods the server may use.
    pub require_auth: RequireAuth,
    /// The highest SCRAM iteration count to accept from a server, so that a hostile server cannot
    /// make the client spin. Default [`DEFAULT_MAX_ITERATIONS`](crate::auth::DEFAULT_MAX_ITERATIONS)
    /// (600,000; PostgreSQL's default count is 4,096).
    pub max_scram_iterations: u32,
    /// The lowest SCRAM iteration count to accept, checked before the proof is sent, so that a
    /// hostile server cannot get a proof that is cheap to brute-force. Default
    /// [`DEFAULT_MIN_ITERATIONS`](crate::auth::DEFAULT_MIN_ITERATIONS) (4,096, RFC 7677's
    /// minimum); lower it for a server whose `scram_iterations` is set lower.
    pub min_scram_iterations: u32,
    /// Limits on received message sizes.
    pub limits: Limits,
    /// A fixed SCRAM client nonce, for deterministic tests. `None` (the default) draws 18 random
    /// bytes from the operating system.
    pub scram_nonce: Option<String>,
}

impl ClientConfig {
    /// A configuration for `user` with every other setting at its default.
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            database: None,
            application_name: None,
            options: None,
            replication: None,
            params: Vec::new(),
            password: None,
            min_protocol_version: ProtocolVersion::V3_0,
            max_protocol_version: ProtocolVersion::V3_0,
            encryption: Encryption::None,
            channel_binding: ChannelBindingPolicy::Prefer,
            require_auth: RequireAuth::any(),
            max_scram_iterations: crate::auth::DEFAULT_MAX_ITERATIONS,
            min_scram_iterations: crate::auth::DEFAULT_MIN_ITERATIONS,
            limits: Limits::default(),
            scram_nonce: None,
        }
    }
}
