//! libpq connection strings (`host=... port=... sslmode=require`, or `postgresql://` URIs), read
//! by `pgproto::conninfo` as libpq reads them, and what the socket and TLS layers take from
//! them.

use std::time::Duration;

use pgproto::conninfo;
use pgproto::{ClientConfig, Encryption};

use super::results::DriverError;

/// The default socket timeout: no read or write waits longer.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// libpq tries plaintext first; this driver only does that.
    Allow,
    /// TLS if the server accepts it, certificate not verified (unless `sslrootcert` is set).
    Prefer,
    /// TLS, certificate not verified (unless `sslrootcert` is set).
    Require,
    /// TLS, certificate chain verified against `sslrootcert`, host name not checked.
    VerifyCa,
    /// TLS, certificate chain and host name verified.
    VerifyFull,
}

/// A parsed libpq connection string: what the socket and TLS layers take from it, and the state
/// machine's configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// `host` (or `hostaddr`; default `localhost`).
    pub(crate) host: String,
    /// `port` (default 5432).
    pub(crate) port: u16,
    /// `user` (default: the `USER` environment variable).
    #[allow(dead_code)] // read by the proxy example, which shares this file
    pub(crate) user: String,
    /// `dbname`.
    #[allow(dead_code)] // read by the proxy example
    pub(crate) dbname: Option<String>,
    /// `sslmode` (default `prefer`).
    pub(crate) sslmode: SslMode,
    /// `sslrootcert`: a PEM file of trusted certificates.
    pub(crate) sslrootcert: Option<String>,
    /// `sslnegotiation=direct`.
    pub(crate) direct_tls: bool,
    /// `connect_timeout` (default 30 s; 0 also means the default).
    pub(crate) connect_timeout: Duration,
    /// The state machine's configuration (`pgproto::conninfo::ConnInfo::client_config`).
    config: ClientConfig,
}

/// The keywords this client honours; libpq knows more (`sslcert`, `keepalives`, ...), and a
/// string that sets one of those is refused rather than silently ignored.
const HONOURED: [&str; 17] = [
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslnegotiation",
    "channel_binding",
    "require_auth",
    "min_protocol_version",
    "max_protocol_version",
    "application_name",
    "options",
    "replication",
    "connect_timeout",
];

impl ConnInfo {
    /// Parses a libpq connection string (keyword/value or `postgresql://` URI) with
    /// `pgproto::conninfo`, which reads it as libpq 18 does; the user defaults to the `USER`
    /// environment variable, as libpq's to the operating system's user name.
    pub(crate) fn parse(s: &str) -> Result<Self, DriverError> {
        let config_error = |e: conninfo::ConnInfoError| DriverError::Config(e.to_string());
        let mut parsed = conninfo::ConnInfo::parse(s).map_err(config_error)?;
        for (k, v) in parsed.iter() {
            let honoured = HONOURED.contains(&k) || (k == "gssencmode" && v == "disable");
            if !honoured {
                return Err(DriverError::Config(format!(
                    "connection option \"{k}\" is not supported by this client"
                )));
            }
        }
        if parsed.get("user").is_none() {
            if let Ok(user) = std::env::var("USER") {
                parsed.set("user", user).map_err(config_error)?;
            }
        }
        // Checks every value the state machine takes (sslmode included).
        let config = parsed.client_config().map_err(config_error)?;
        let bad = |k: &str, v: &str| DriverError::Config(format!("invalid {k} value: \"{v}\""));
        let port = match parsed.get("port") {
            None => 5432,
            Some(v) => v.parse().map_err(|_| bad("port", v))?,
        };
        let mut connect_timeout = DEFAULT_TIMEOUT;
        if let Some(v) = parsed.get("connect_timeout") {
            let secs: u64 = v.parse().map_err(|_| bad("connect_timeout", v))?;
            if secs > 0 {
                connect_timeout = Duration::from_secs(secs.max(2));
            }
        }
        let sslmode = match parsed.get("sslmode").unwrap_or("prefer") {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            _ => SslMode::VerifyFull,
        };
        let text = |k: &str| parsed.get(k).map(str::to_owned);
        Ok(Self {
            host: text("host")
                .or_else(|| text("hostaddr"))
                .unwrap_or_else(|| "localhost".into()),
            port,
            user: config.user.clone(),
            dbname: config.database.clone(),
            sslmode,
            sslrootcert: text("sslrootcert"),
            direct_tls: config.encryption == Encryption::DirectSsl,
            connect_timeout,
            config,
        })
    }

    /// Whether a server refusing TLS fails the connection.
    #[allow(dead_code)] // used by the proxy example
    pub(crate) fn tls_required(&self) -> bool {
        matches!(
            self.sslmode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether TLS is attempted at all.
    pub(crate) fn tls_wanted(&self) -> bool {
        !matches!(self.sslmode, SslMode::Disable | SslMode::Allow)
    }

    /// The state machine's configuration.
    pub(crate) fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }
}
