//! libpq connection strings: `host=db port=5433 sslmode=require` or
//! `postgresql://alice@db:5433/shop?sslmode=require`, read as libpq 18 reads them
//! (`PQconninfoParse`), and the [`ClientConfig`] they describe.
//!
//! Pure parsing: nothing here reads the environment (`PGHOST`, `PGUSER`, ...), a service file
//! or a password file, and nothing connects. The keywords that concern the socket and TLS layers
//! (`host`, `port`, `sslrootcert`, `connect_timeout`, ...) are the application's to read with
//! [`ConnInfo::get`]; [`ConnInfo::client_config`] maps those the state machine needs.
//!
//! ```
//! use pgproto::conninfo::ConnInfo;
//!
//! let info = ConnInfo::parse("postgresql://alice:s%40cret@db.example:5433/shop?sslmode=require")?;
//! assert_eq!(info.get("host"), Some("db.example"));
//! assert_eq!(info.get("port"), Some("5433"));
//! assert_eq!(info.get("password"), Some("s@cret"));
//! let config = info.client_config()?;
//! assert_eq!(config.user, "alice");
//! assert_eq!(config.database.as_deref(), Some("shop"));
//!
//! let info = ConnInfo::parse("user=bob dbname='my db' application_name=report")?;
//! assert_eq!(info.get("dbname"), Some("my db"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod uri;

use crate::client::{ChannelBindingPolicy, ClientConfig, Encryption, RequireAuth};
use crate::ProtocolVersion;

/// Every keyword libpq 18 knows (`PQconndefaults`); any other is refused, as libpq refuses it.
pub const KEYWORDS: [&str; 50] = [
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "krbsrvname",
    "load_balance_hosts",
    "max_protocol_version",
    "min_protocol_version",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_issuer",
    "oauth_scope",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requirepeer",
    "scram_client_key",
    "scram_server_key",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
];

/// Why a connection string was refused; the messages are libpq's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// A keyword with no `=` after it.
    #[error("missing \"=\" after \"{0}\" in connection info string")]
    MissingEquals(String),
    /// A quoted value with no closing quote.
    #[error("unterminated quoted string in connection info string")]
    UnterminatedQuote,
    /// A keyword libpq does not know.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),
    /// A URI query parameter libpq does not know.
    #[error("invalid URI query parameter: \"{0}\"")]
    InvalidUriParameter(String),
    /// A URI that does not follow libpq's grammar (the text says where).
    #[error("{0}")]
    InvalidUri(String),
    /// A value the state machine cannot take (for [`ConnInfo::client_config`]).
    #[error("invalid {keyword} value: \"{value}\"")]
    InvalidValue {
        /// The keyword.
        keyword: &'static str,
        /// The value given.
        value: String,
    },
    /// No `user` (libpq would take the operating system's user name; this crate reads no
    /// environment: set one).
    #[error("no user name given")]
    NoUser,
    /// `min_protocol_version` above `max_protocol_version`.
    #[error("min_protocol_version is greater than max_protocol_version")]
    ProtocolRange,
    /// `sslnegotiation=direct` with an `sslmode` that does not require TLS.
    #[error("sslnegotiation=direct needs sslmode=require, verify-ca or verify-full")]
    DirectNeedsTls,
}

/// A parsed connection string: the keywords it sets, with their values (a keyword set twice
/// keeps the later value, as in libpq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    options: Vec<(&'static str, String)>,
}

impl ConnInfo {
    /// Parses a connection string: a URI if it starts with `postgresql://` or `postgres://`,
    /// keyword/value pairs otherwise (whitespace-separated `keyword = value`, values optionally
    /// in single quotes, `\` escaping the next character).
    ///
    /// Fails, as libpq does, on a keyword without `=`, an unterminated quote, an unknown
    /// keyword or URI query parameter, or a URI that does not follow libpq's grammar; and,
    /// unlike libpq, which takes any bytes, on a percent-encoded URI part that does not decode
    /// to UTF-8 (values here are text).
    pub fn parse(s: &str) -> Result<Self, ConnInfoError> {
        let mut info = Self::default();
        if let Some(scheme) = ["postgresql://", "postgres://"]
            .into_iter()
            .find(|p| s.starts_with(p))
        {
            uri::parse(scheme, &s[scheme.len()..], &mut info)?;
        } else {
            for (k, v) in pairs(s)? {
                info.set(&k, v)?;
            }
        }
        Ok(info)
    }

    /// Sets `keyword` (one of [`KEYWORDS`]) to `value`; fails on an unknown keyword. As in
    /// libpq, the old keyword `requiressl` sets `sslmode` (`1`: `require`, else `prefer`).
    pub fn set(&mut self, keyword: &str, value: String) -> Result<(), ConnInfoError> {
        let (keyword, value) = if keyword == "requiressl" {
            let mode = if value.starts_with('1') {
                "require"
            } else {
                "prefer"
            };
            ("sslmode", mode.to_owned())
        } else {
            (keyword, value)
        };
        let Some(k) = KEYWORDS.iter().find(|k| **k == keyword) else {
            return Err(ConnInfoError::InvalidOption(keyword.to_owned()));
        };
        match self.options.iter_mut().find(|(o, _)| o == k) {
            Some((_, v)) => *v = value,
            None => self.options.push((k, value)),
        }
        Ok(())
    }

    /// The value of `keyword`, if the string sets it.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| *k == keyword)
            .map(|(_, v)| v.as_str())
    }

    /// The keywords the string sets and their values, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.options.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The state machine's configuration: `user` (required), `dbname`, `password`,
    /// `application_name`, `options`, `replication`, `channel_binding`, `require_auth`,
    /// `min_protocol_version` and `max_protocol_version` (`2.0`, `3.0`, `3.2` or `latest`),
    /// and the encryption `sslmode` and `sslnegotiation` ask for (`disable` and `allow`: none,
    /// `prefer`: TLS if the server accepts it, `require`, `verify-ca`, `verify-full`: TLS or
    /// fail; certificates are the TLS layer's to check). Defaults are libpq 18's.
    ///
    /// Fails on a value libpq would refuse for these keywords, a missing user, a
    /// `min_protocol_version` above `max_protocol_version`, or `sslnegotiation=direct` without
    /// an `sslmode` that requires TLS.
    pub fn client_config(&self) -> Result<ClientConfig, ConnInfoError> {
        let invalid = |keyword: &'static str, value: &str| ConnInfoError::InvalidValue {
            keyword,
            value: value.to_owned(),
        };
        let user = self
            .get("user")
            .filter(|u| !u.is_empty())
            .ok_or(ConnInfoError::NoUser)?;
        let mut c = ClientConfig::new(user);
        let text = |k: &str| self.get(k).map(str::to_owned);
        c.database = text("dbname");
        c.password = self.get("password").map(|p| p.as_bytes().to_vec());
        c.application_name = text("application_name");
        c.options = text("options");
        c.replication = text("replication");
        if let Some(v) = self.get("channel_binding") {
            c.channel_binding = match v {
                "disable" => ChannelBindingPolicy::Disable,
                "prefer" => ChannelBindingPolicy::Prefer,
                "require" => ChannelBindingPolicy::Require,
                _ => return Err(invalid("channel_binding", v)),
            };
        }
        if let Some(v) = self.get("require_auth") {
            c.require_auth = v
                .parse::<RequireAuth>()
                .map_err(|_| invalid("require_auth", v))?;
        }
        let version = |keyword: &'static str, default| match self.get(keyword) {
            None => Ok(default),
            Some("2.0") => Ok(ProtocolVersion::V2_0),
            Some("3.0") => Ok(ProtocolVersion::V3_0),
            Some("3.2" | "latest") => Ok(ProtocolVersion::V3_2),
            Some(v) => Err(invalid(keyword, v)),
        };
        c.min_protocol_version = version("min_protocol_version", ProtocolVersion::V3_0)?;
        c.max_protocol_version = version("max_protocol_version", ProtocolVersion::V3_0)?;
        if c.min_protocol_version > c.max_protocol_version {
            return Err(ConnInfoError::ProtocolRange);
        }
        let sslmode = self.get("sslmode").unwrap_or("prefer");
        let required = match sslmode {
            "disable" | "allow" => None,
            "prefer" => Some(false),
            "require" | "verify-ca" | "verify-full" => Some(true),
            v => return Err(invalid("sslmode", v)),
        };
        let direct = match self.get("sslnegotiation") {
            None | Some("postgres") => false,
            Some("direct") => true,
            Some(v) => return Err(invalid("sslnegotiation", v)),
        };
        c.encryption = match (required, direct) {
            (None, false) => Encryption::None,
            (Some(required), false) => Encryption::Ssl { required },
            (Some(true), true) => Encryption::DirectSsl,
            (_, true) => return Err(ConnInfoError::DirectNeedsTls),
        };
        Ok(c)
    }
}

/// The keyword/value form of the settings, every value quoted (`host='db' port='5433'`): text
/// that [`ConnInfo::parse`] (and libpq) reads back to the same settings.
///
/// ```
/// use pgproto::conninfo::ConnInfo;
/// let info = ConnInfo::parse("postgresql://alice@db/it's")?;
/// assert_eq!(info.to_string(), r"user='alice' host='db' dbname='it\'s'");
/// assert_eq!(ConnInfo::parse(&info.to_string())?, info);
/// # Ok::<(), pgproto::conninfo::ConnInfoError>(())
/// ```
impl std::fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}='")?;
            for c in v.chars() {
                if c == '\\' || c == '\'' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("'")?;
        }
        Ok(())
    }
}

/// Splits keyword/value text into pairs, as libpq does: whitespace around `=` is skipped
/// (after `=` too, so `a= b=c` sets `a` to `b=c`), a value in single quotes may hold
/// whitespace, and `\` takes the next character literally (a final lone `\` is dropped).
fn pairs(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| is_space(*c)).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !is_space(*c)) {
            key.push(c);
        }
        skip_space(&mut chars);
        if chars.next() != Some('=') {
            return Err(ConnInfoError::MissingEquals(key));
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConnInfoError::UnterminatedQuote),
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !is_space(*c)) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// C's `isspace` in the "C" locale, which libpq's parser uses.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> Result<ClientConfig, ConnInfoError> {
        ConnInfo::parse(s).unwrap().client_config()
    }

    #[test]
    fn maps_the_keywords_the_state_machine_takes() {
        let c = config(
            "user=alice dbname=shop password=pw application_name=app options='-c x=1' \
             replication=database channel_binding=require require_auth=scram-sha-256 \
             min_protocol_version=3.0 max_protocol_version=latest sslmode=verify-full \
             sslnegotiation=direct",
        )
        .unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.database.as_deref(), Some("shop"));
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.options.as_deref(), Some("-c x=1"));
        assert_eq!(c.replication.as_deref(), Some("database"));
        assert_eq!(c.channel_binding, ChannelBindingPolicy::Require);
        assert_eq!(c.require_auth, "scram-sha-256".parse().unwrap());
        assert_eq!(c.min_protocol_version, ProtocolVersion::V3_0);
        assert_eq!(c.max_protocol_version, ProtocolVersion::V3_2);
        assert_eq!(c.encryption, Encryption::DirectSsl);
    }

    #[test]
    fn defaults_are_libpq_18s() {
        let c = config("user=a").unwrap();
        assert_eq!(c.database, None);
        assert_eq!(c.channel_binding, ChannelBindingPolicy::Prefer);
        assert_eq!(c.min_protocol_version, ProtocolVersion::V3_0);
        assert_eq!(c.max_protocol_version, ProtocolVersion::V3_0);
        assert_eq!(c.encryption, Encryption::Ssl { required: false });
    }

    #[test]
    fn sslmode_chooses_the_encryption() {
        for (mode, want) in [
            ("disable", Encryption::None),
            ("allow", Encryption::None),
            ("prefer", Encryption::Ssl { required: false }),
            ("require", Encryption::Ssl { required: true }),
            ("verify-ca", Encryption::Ssl { required: true }),
            ("verify-full", Encryption::Ssl { required: true }),
        ] {
            let c = config(&format!("user=a sslmode={mode}")).unwrap();
            assert_eq!(c.encryption, want, "{mode}");
        }
    }

    #[test]
    fn refuses_what_the_state_machine_cannot_take() {
        let bad = |s: &str| config(s).unwrap_err().to_string();
        assert_eq!(bad("dbname=x"), "no user name given");
        assert_eq!(bad("user="), "no user name given");
        assert_eq!(bad("user=a sslmode=on"), "invalid sslmode value: \"on\"");
        assert_eq!(
            bad("user=a channel_binding=yes"),
            "invalid channel_binding value: \"yes\""
        );
        assert_eq!(
            bad("user=a max_protocol_version=3.1"),
            "invalid max_protocol_version value: \"3.1\""
        );
        assert_eq!(
            bad("user=a require_auth=kerberos"),
            "invalid require_auth value: \"kerberos\""
        );
        assert_eq!(
            bad("user=a min_protocol_version=3.2"),
            "min_protocol_version is greater than max_protocol_version"
        );
        assert_eq!(
            bad("user=a sslnegotiation=direct"),
            "sslnegotiation=direct needs sslmode=require, verify-ca or verify-full"
        );
        assert_eq!(
            bad("user=a sslnegotiation=sideways"),
            "invalid sslnegotiation value: \"sideways\""
        );
    }

    #[test]
    fn a_keyword_set_twice_keeps_the_later_value_in_its_first_place() {
        let info = ConnInfo::parse("user=a dbname=d user=b").unwrap();
        assert_eq!(
            info.iter().collect::<Vec<_>>(),
            [("user", "b"), ("dbname", "d")]
        );
    }
}
