//! libpq keyword/value connection strings (`host=... port=... sslmode=require`), parsed into
//! the state machine's configuration and what the socket and TLS layers need.

use std::time::Duration;

use pgproto::{ChannelBindingPolicy, ClientConfig, Encryption, ProtocolVersion, RequireAuth};

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

/// A parsed libpq keyword/value connection string.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// `host` (default `localhost`).
    pub(crate) host: String,
    /// `port` (default 5432).
    pub(crate) port: u16,
    /// `user` (default: the `USER` environment variable).
    pub(crate) user: String,
    /// `password`.
    pub(crate) password: Option<String>,
    /// `dbname`.
    pub(crate) dbname: Option<String>,
    /// `sslmode` (default `prefer`).
    pub(crate) sslmode: SslMode,
    /// `sslrootcert`: a PEM file of trusted certificates.
    pub(crate) sslrootcert: Option<String>,
    /// `sslnegotiation=direct`.
    pub(crate) direct_tls: bool,
    /// `channel_binding` (default `prefer`).
    pub(crate) channel_binding: ChannelBindingPolicy,
    /// `require_auth`.
    pub(crate) require_auth: RequireAuth,
    /// `min_protocol_version` (default 3.0; 2.0 allows the fallback to protocol 2.0).
    pub(crate) min_protocol_version: ProtocolVersion,
    /// `max_protocol_version` (default 3.0, as libpq 18; 2.0 speaks protocol 2.0 at once).
    pub(crate) max_protocol_version: ProtocolVersion,
    /// `application_name`.
    pub(crate) application_name: Option<String>,
    /// `options`.
    pub(crate) options: Option<String>,
    /// `replication`.
    pub(crate) replication: Option<String>,
    /// `connect_timeout` (default 30 s; 0 also means the default).
    pub(crate) connect_timeout: Duration,
}

/// Splits a libpq keyword/value string into pairs: `key = value` separated by whitespace,
/// values optionally single-quoted, `\` escaping the next character (quoted or not).
pub(crate) fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, DriverError> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DriverError::Config(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(DriverError::Config(
                            "unterminated quoted string in connection info string".into(),
                        ))
                    }
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn parse_version(key: &str, v: &str) -> Result<ProtocolVersion, DriverError> {
    match v {
        "2.0" => Ok(ProtocolVersion::V2_0),
        "3.0" => Ok(ProtocolVersion::V3_0),
        "3.2" | "latest" => Ok(ProtocolVersion::V3_2),
        _ => Err(DriverError::Config(format!(
            "invalid {key} value: \"{v}\" (2.0, 3.0, 3.2 or latest)"
        ))),
    }
}

impl ConnInfo {
    /// Parses a libpq keyword/value connection string.
    pub(crate) fn parse(s: &str) -> Result<Self, DriverError> {
        let mut info = Self {
            host: "localhost".into(),
            port: 5432,
            user: std::env::var("USER").unwrap_or_default(),
            password: None,
            dbname: None,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            direct_tls: false,
            channel_binding: ChannelBindingPolicy::Prefer,
            require_auth: RequireAuth::any(),
            min_protocol_version: ProtocolVersion::V3_0,
            max_protocol_version: ProtocolVersion::V3_0,
            application_name: None,
            options: None,
            replication: None,
            connect_timeout: DEFAULT_TIMEOUT,
        };
        let bad = |k: &str, v: &str| DriverError::Config(format!("invalid {k} value: \"{v}\""));
        for (k, v) in parse_pairs(s)? {
            match k.as_str() {
                "host" | "hostaddr" => info.host = v,
                "port" => info.port = v.parse().map_err(|_| bad(&k, &v))?,
                "user" => info.user = v,
                "password" => info.password = Some(v),
                "dbname" => info.dbname = Some(v),
                "sslmode" => {
                    info.sslmode = match v.as_str() {
                        "disable" => SslMode::Disable,
                        "allow" => SslMode::Allow,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "sslrootcert" => info.sslrootcert = Some(v),
                "sslnegotiation" => {
                    info.direct_tls = match v.as_str() {
                        "postgres" => false,
                        "direct" => true,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "channel_binding" => {
                    info.channel_binding = match v.as_str() {
                        "disable" => ChannelBindingPolicy::Disable,
                        "prefer" => ChannelBindingPolicy::Prefer,
                        "require" => ChannelBindingPolicy::Require,
                        _ => return Err(bad(&k, &v)),
                    }
                }
                "require_auth" => {
                    info.require_auth =
                        v.parse().map_err(|e| DriverError::Config(format!("{e}")))?
                }
                "min_protocol_version" => info.min_protocol_version = parse_version(&k, &v)?,
                "max_protocol_version" => info.max_protocol_version = parse_version(&k, &v)?,
                "application_name" => info.application_name = Some(v),
                "options" => info.options = Some(v),
                "replication" => info.replication = Some(v),
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| bad(&k, &v))?;
                    if secs > 0 {
                        info.connect_timeout = Duration::from_secs(secs.max(2));
                    }
                }
                "gssencmode" if v == "disable" => {}
                _ => {
                    return Err(DriverError::Config(format!(
                        "invalid connection option \"{k}\""
                    )))
                }
            }
        }
        if info.user.is_empty() {
            return Err(DriverError::Config("no user given".into()));
        }
        if info.direct_tls && !info.tls_required() {
            return Err(DriverError::Config(
                "sslnegotiation=direct needs sslmode=require, verify-ca or verify-full".into(),
            ));
        }
        if info.min_protocol_version > info.max_protocol_version {
            return Err(DriverError::Config(
                "min_protocol_version is greater than max_protocol_version".into(),
            ));
        }
        Ok(info)
    }

    /// Whether a server refusing TLS fails the connection.
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

    /// The encryption the state machine is to negotiate.
    pub(crate) fn encryption(&self) -> Encryption {
        if !self.tls_wanted() {
            Encryption::None
        } else if self.direct_tls {
            Encryption::DirectSsl
        } else {
            Encryption::Ssl {
                required: self.tls_required(),
            }
        }
    }

    /// The state machine's configuration.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.user.clone());
        c.database = self.dbname.clone();
        c.password = self.password.as_ref().map(|p| p.as_bytes().to_vec());
        c.application_name = self.application_name.clone();
        c.options = self.options.clone();
        c.replication = self.replication.clone();
        c.encryption = self.encryption();
        c.channel_binding = self.channel_binding;
        c.require_auth = self.require_auth;
        c.min_protocol_version = self.min_protocol_version;
        c.max_protocol_version = self.max_protocol_version;
        c
    }
}
