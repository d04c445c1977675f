//! What a [`Server`](crate::Server) announces, and how it authenticates a connection.

use crate::auth::ScramVerifier;
use crate::limits::Limits;
use crate::message::common::ProtocolVersion;

/// How to authenticate one connection, chosen by the application after the StartupMessage
/// (for example from its user table), and passed to
/// [`Server::authenticate`](crate::Server::authenticate).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerAuth {
    /// No password: AuthenticationOk at once.
    Trust,
    /// AuthenticationCleartextPassword, checked against a stored secret: a SCRAM verifier or an
    /// MD5 hash as in `pg_authid.rolpassword`, or `None` for an unknown user (always fails).
    Password {
        /// The stored secret.
        stored: Option<String>,
    },
    /// AuthenticationMD5Password, checked against a stored `md5...` hash; `None` for an unknown
    /// user (the exchange runs and fails like a wrong password).
    Md5 {
        /// The stored hash.
        stored: Option<String>,
    },
    /// SCRAM-SHA-256, and SCRAM-SHA-256-PLUS too when the connection uses TLS and the I/O layer
    /// gave the certificate hash. `None` runs a doomed exchange that fails at the same point as
    /// a wrong password, so that user names do not leak.
    Scram {
        /// The user's verifier.
        verifier: Option<ScramVerifier>,
    },
    /// AuthenticationGSS: the tokens are passed to the application as events.
    Gss,
    /// AuthenticationSSPI: the tokens are passed to the application as events.
    Sspi,
    /// AuthenticationSASL with these mechanisms (for example OAUTHBEARER), computed by the
    /// application.
    Sasl {
        /// Mechanism names, in order of preference.
        mechanisms: Vec<String>,
    },
}

/// The server's configuration.
///
/// ```
/// use pgproto::ServerConfig;
/// let mut config = ServerConfig::default();
/// config.set_parameter("server_version", "17.2");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Limits on received message sizes (PostgreSQL's by default).
    pub limits: Limits,
    /// The newest protocol version to accept: 3.2 (default), 3.0, or 2.0 to behave as a server
    /// older than PostgreSQL 7.4 (a 3.x StartupMessage is answered with an error in 2.0's
    /// format, which makes libpq up to 13 fall back to 2.0).
    pub max_protocol_version: ProtocolVersion,
    /// The oldest protocol version to accept: 3.0 (default, as PostgreSQL 14 and later), or 2.0
    /// to serve 2.0 StartupPackets as PostgreSQL 7.4 to 13 did (see
    /// [`Server`](crate::Server)).
    pub min_protocol_version: ProtocolVersion,
    /// The ParameterStatus messages sent after authentication, in order. `application_name`
    /// and `session_authorization` are filled from the StartupMessage unless set here; every
    /// other value is sent as configured, whatever the client asked for.
    pub parameters: Vec<(String, String)>,
    /// The secret behind doomed SCRAM exchanges for unknown users: it must stay the same for the
    /// life of the server (so the fake salt of a user name does not change between attempts).
    /// Random by default; share one value across the `Server`s of a process.
    pub mock_auth_secret: [u8; 32],
    /// The iteration count announced in doomed SCRAM exchanges (match your real verifiers).
    pub mock_auth_iterations: u32,
    /// The length of the cancel key sent to 3.2 clients (4 to 256; PostgreSQL sends 32). 3.0
    /// clients always get 4 bytes.
    pub cancel_key_len: usize,
    /// The source of the cancel keys and process IDs: fills the buffer with random bytes and
    /// returns `false` if it could not, which fails the connection (FATAL XX000) rather than
    /// handing out a guessable key. The operating system's source ([`os_random`]) by default;
    /// tests inject their own.
    pub random: fn(&mut [u8]) -> bool,
    /// Who ends the start-up once authentication succeeds: the machine at once (the default),
    /// or the application, which may first send its own parameters, notices or a FATAL error
    /// and choose the cancel key (see [`StartupEnd`]).
    pub startup_end: StartupEnd,
    /// How many requests (Query, Parse, Bind, Describe, Execute, Close, Sync, FunctionCall)
    /// [`Server::poll_event`](crate::Server::poll_event) hands out before the first of them is
    /// answered. 1 (the default) is a PostgreSQL backend's one request at a time; a proxy sets
    /// more, to forward a client's pipeline as it arrives (see
    /// [`Server`](crate::Server#requests-in-flight)). 0 counts as 1.
    pub pipeline_depth: usize,
}

/// Who ends a [`Server`](crate::Server)'s start-up once authentication has succeeded.
///
/// ```
/// use pgproto::{ServerConfig, StartupEnd};
/// let mut config = ServerConfig::default();
/// config.startup_end = StartupEnd::Application;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartupEnd {
    /// AuthenticationOk, the configured [`ServerConfig::parameters`], a random BackendKeyData
    /// and ReadyForQuery are queued at once.
    #[default]
    Automatic,
    /// AuthenticationOk is queued and the machine waits for the application, which may send
    /// ParameterStatus ([`Server::parameter_status`](crate::Server::parameter_status)) and
    /// NoticeResponse ([`Server::notice`](crate::Server::notice)), or refuse the session with
    /// a FATAL error ([`Server::reject`](crate::Server::reject), as PostgreSQL's 3D000 for a
    /// database that does not exist), then ends the start-up with
    /// [`Server::finish_startup`](crate::Server::finish_startup), choosing the cancel key or
    /// not. Nothing of [`ServerConfig::parameters`] is sent by the machine in this mode.
    Application,
}

/// The operating system's random source (`getrandom`): the default [`ServerConfig::random`].
pub fn os_random(buf: &mut [u8]) -> bool {
    getrandom::fill(buf).is_ok()
}

impl Default for ServerConfig {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        // Without entropy the secret stays zero: doomed exchanges still fail, but their salts
        // become predictable. There is no better fallback without a clock.
        let _ = getrandom::fill(&mut secret);
        let parameters = [
            ("server_version", "18.0"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "off"),
            ("default_transaction_read_only", "off"),
            ("in_hot_standby", "off"),
            ("scram_iterations", "4096"),
        ];
        Self {
            limits: Limits::default(),
            max_protocol_version: ProtocolVersion::V3_2,
            min_protocol_version: ProtocolVersion::V3_0,
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mock_auth_secret: secret,
            mock_auth_iterations: crate::auth::DEFAULT_ITERATIONS,
            cancel_key_len: 32,
            random: os_random,
            startup_end: StartupEnd::Automatic,
            pipeline_depth: 1,
        }
    }
}

impl ServerConfig {
    /// Sets (or adds) a parameter reported after authentication.
    pub fn set_parameter(&mut self, name: &str, value: &str) {
        match self.parameters.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.parameters.push((name.to_string(), value.to_string())),
        }
    }
}
