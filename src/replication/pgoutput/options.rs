//! The options of the pgoutput plugin, which decide what the server may send.

use std::fmt;

use crate::error::UsageError;

/// The `streaming` option: whether large in-progress transactions are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Streaming {
    /// Not streamed: a transaction is sent whole when it commits (the default).
    #[default]
    Off,
    /// Streamed (protocol version 2 and later).
    On,
    /// Streamed with the extra information parallel apply needs, the abort LSN and timestamp of
    /// Stream Abort (protocol version 4 and later, PostgreSQL 16 and later).
    Parallel,
}

impl Streaming {
    /// The option's value: `off`, `on` or `parallel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Parallel => "parallel",
        }
    }

    /// The setting a value names: `parallel`, or a PostgreSQL boolean (`on`, `off`, `true`,
    /// `false`, `yes`, `no`, `1`, `0`, any case).
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("parallel") {
            return Some(Self::Parallel);
        }
        parse_bool(value).map(|on| if on { Self::On } else { Self::Off })
    }
}

impl fmt::Display for Streaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `origin` option (PostgreSQL 16 and later): which changes to send by their origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OriginFilter {
    /// Every change, whatever its origin (the default).
    #[default]
    Any,
    /// Only changes that have no origin.
    None,
}

impl OriginFilter {
    /// The option's value: `any` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::None => "none",
        }
    }
}

/// A PostgreSQL boolean as `parse_bool` reads it.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The options of a pgoutput session: what `START_REPLICATION ... LOGICAL` asks for, and so
/// what the messages that come back may be. Decoding ([`PgOutputDecoder`](super::PgOutputDecoder))
/// refuses what these options rule out.
///
/// ```
/// use pgproto::replication::pgoutput::{PgOutputOptions, Streaming};
///
/// let options = PgOutputOptions::new(4, ["pub1"])?
///     .with_streaming(Streaming::Parallel)?
///     .with_two_phase(true)?
///     .with_messages(true);
/// assert_eq!(
///     options.to_command_options(),
///     r#""proto_version" '4', "publication_names" '"pub1"', "messages" 'true', "streaming" 'parallel', "two_phase" 'true'"#
/// );
/// // Streaming needs protocol version 2, parallel streaming 4, two-phase 3.
/// assert!(PgOutputOptions::new(1, ["p"])?.with_streaming(Streaming::On).is_err());
/// # Ok::<(), pgproto::UsageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOutputOptions {
    proto_version: u32,
    publications: Vec<String>,
    binary: bool,
    messages: bool,
    streaming: Streaming,
    two_phase: bool,
    origin: Option<OriginFilter>,
}

impl PgOutputOptions {
    /// Options for protocol version `proto_version` (1 to 4) and the given publications, every
    /// other option off. Fails with [`UsageError::InvalidConfig`] for another version or no
    /// publication.
    pub fn new<I, S>(proto_version: u32, publications: I) -> Result<Self, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !(1..=4).contains(&proto_version) {
            return Err(UsageError::InvalidConfig {
                reason: "pgoutput proto_version must be 1, 2, 3 or 4",
            });
        }
        let publications: Vec<String> = publications.into_iter().map(Into::into).collect();
        if publications.is_empty() {
            return Err(UsageError::InvalidConfig {
                reason: "pgoutput needs at least one publication",
            });
        }
        Ok(Self {
            proto_version,
            publications,
            binary: false,
            messages: false,
            streaming: Streaming::Off,
            two_phase: false,
            origin: None,
        })
    }

    /// Asks for values in binary format where the type allows it (`binary`).
    pub fn with_binary(mut self, on: bool) -> Self {
        self.binary = on;
        self
    }

    /// Asks for logical decoding messages (`messages`).
    pub fn with_messages(mut self, on: bool) -> Self {
        self.messages = on;
        self
    }

    /// Asks for streamed transactions (`streaming`). Fails with [`UsageError::InvalidConfig`]
    /// when the protocol version is too old (`on` needs 2, `parallel` needs 4).
    pub fn with_streaming(mut self, streaming: Streaming) -> Result<Self, UsageError> {
        match streaming {
            Streaming::On if self.proto_version < 2 => Err(UsageError::InvalidConfig {
                reason: "pgoutput streaming needs proto_version 2 or later",
            }),
            Streaming::Parallel if self.proto_version < 4 => Err(UsageError::InvalidConfig {
                reason: "pgoutput streaming = parallel needs proto_version 4",
            }),
            _ => {
                self.streaming = streaming;
                Ok(self)
            }
        }
    }

    /// Asks for two-phase transactions to be sent at PREPARE (`two_phase`). Fails with
    /// [`UsageError::InvalidConfig`] when the protocol version is below 3.
    pub fn with_two_phase(mut self, on: bool) -> Result<Self, UsageError> {
        if on && self.proto_version < 3 {
            return Err(UsageError::InvalidConfig {
                reason: "pgoutput two_phase needs proto_version 3 or later",
            });
        }
        self.two_phase = on;
        Ok(self)
    }

    /// Asks for changes by origin (`origin`, PostgreSQL 16 and later); `None` leaves the option
    /// out (the server's default, `any`).
    pub fn with_origin(mut self, origin: Option<OriginFilter>) -> Self {
        self.origin = origin;
        self
    }

    /// The protocol version.
    pub fn proto_version(&self) -> u32 {
        self.proto_version
    }

    /// The publications.
    pub fn publications(&self) -> &[String] {
        &self.publications
    }

    /// Whether binary values were asked for.
    pub fn binary(&self) -> bool {
        self.binary
    }

    /// Whether logical decoding messages were asked for.
    pub fn messages(&self) -> bool {
        self.messages
    }

    /// The streaming setting.
    pub fn streaming(&self) -> Streaming {
        self.streaming
    }

    /// Whether two-phase transactions were asked for.
    pub fn two_phase(&self) -> bool {
        self.two_phase
    }

    /// The origin filter, if one is sent.
    pub fn origin(&self) -> Option<OriginFilter> {
        self.origin
    }

    /// Whether Stream Abort carries its LSN and timestamp (protocol version 4 with
    /// `streaming = parallel`).
    pub fn abort_info(&self) -> bool {
        self.proto_version >= 4 && self.streaming == Streaming::Parallel
    }

    /// The options as `(name, value)` pairs, in the order [`to_command_options`] writes them;
    /// options at their default are left out, except `proto_version` and
    /// `publication_names`.
    ///
    /// [`to_command_options`]: PgOutputOptions::to_command_options
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let names = self
            .publications
            .iter()
            .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(",");
        let mut v = vec![
            ("proto_version", self.proto_version.to_string()),
            ("publication_names", names),
        ];
        if self.binary {
            v.push(("binary", "true".into()));
        }
        if self.messages {
            v.push(("messages", "true".into()));
        }
        if self.streaming != Streaming::Off {
            v.push(("streaming", self.streaming.as_str().into()));
        }
        if self.two_phase {
            v.push(("two_phase", "true".into()));
        }
        if let Some(o) = self.origin {
            v.push(("origin", o.as_str().into()));
        }
        v
    }

    /// The option list of `START_REPLICATION ... LOGICAL` (without the parentheses): each name
    /// double-quoted, each value a string literal.
    pub fn to_command_options(&self) -> String {
        self.to_pairs()
            .iter()
            .map(|(k, v)| format!("\"{k}\" '{}'", v.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The options a `START_REPLICATION ... LOGICAL` command gave the plugin, read as pgoutput
    /// reads them. Fails with [`UsageError::InvalidConfig`] on an option pgoutput does not know,
    /// a bad value, or a combination it refuses.
    ///
    /// ```
    /// use pgproto::replication::pgoutput::{PgOutputOptions, Streaming};
    /// let o = PgOutputOptions::from_pairs([
    ///     ("proto_version", Some("2")),
    ///     ("publication_names", Some("a, \"B c\"")),
    ///     ("streaming", Some("on")),
    /// ])?;
    /// assert_eq!(o.publications(), ["a", "B c"]);
    /// assert_eq!(o.streaming(), Streaming::On);
    /// # Ok::<(), pgproto::UsageError>(())
    /// ```
    pub fn from_pairs<'s, I>(pairs: I) -> Result<Self, UsageError>
    where
        I: IntoIterator<Item = (&'s str, Option<&'s str>)>,
    {
        let bad = |reason| UsageError::InvalidConfig { reason };
        let mut version = None;
        let mut publications = None;
        let (mut binary, mut messages, mut two_phase) = (false, false, false);
        let mut streaming = Streaming::Off;
        let mut origin = None;
        for (name, value) in pairs {
            // A boolean option given without a value means true.
            let flag = |v: Option<&str>| v.map_or(Some(true), parse_bool);
            match name.to_ascii_lowercase().as_str() {
                "proto_version" => {
                    version = Some(
                        value
                            .and_then(|v| v.trim().parse::<u32>().ok())
                            .ok_or(bad("invalid proto_version"))?,
                    )
                }
                "publication_names" => {
                    publications = Some(
                        split_identifiers(value.unwrap_or(""))
                            .ok_or(bad("invalid publication_names"))?,
                    )
                }
                "binary" => binary = flag(value).ok_or(bad("invalid binary value"))?,
                "messages" => messages = flag(value).ok_or(bad("invalid messages value"))?,
                "two_phase" => two_phase = flag(value).ok_or(bad("invalid two_phase value"))?,
                "streaming" => {
                    streaming = value
                        .map_or(Some(Streaming::On), Streaming::parse)
                        .ok_or(bad("invalid streaming value"))?
                }
                "origin" => {
                    origin = Some(match value.map(str::to_ascii_lowercase).as_deref() {
                        Some("any") => OriginFilter::Any,
                        Some("none") => OriginFilter::None,
                        _ => return Err(bad("invalid origin value")),
                    })
                }
                _ => return Err(bad("unknown pgoutput option")),
            }
        }
        let version = version.ok_or(bad("proto_version option missing"))?;
        let publications = publications.ok_or(bad("publication_names option missing"))?;
        Self::new(version, publications)?
            .with_streaming(streaming)?
            .with_two_phase(two_phase)
            .map(|o| {
                o.with_binary(binary)
                    .with_messages(messages)
                    .with_origin(origin)
            })
    }
}

/// Splits a comma-separated list of identifiers as PostgreSQL's `SplitIdentifierString` does:
/// bare names are folded to lower case, double-quoted ones kept (with `""` for a quote).
fn split_identifiers(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    '"' => break,
                    c => name.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                name.extend(c.to_lowercase());
                chars.next();
            }
        }
        if name.is_empty() {
            return None;
        }
        out.push(name);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_lists() {
        assert_eq!(
            split_identifiers("a,B , \"C d\",\"e\"\"f\"").unwrap(),
            ["a", "b", "C d", "e\"f"]
        );
        assert_eq!(split_identifiers(""), None);
        assert_eq!(split_identifiers("a,"), None);
        assert_eq!(split_identifiers("\"a"), None);
        assert_eq!(split_identifiers("a b"), None);
    }

    #[test]
    fn options_round_trip_through_pairs() {
        let o = PgOutputOptions::new(3, ["p1", "Q\"2"])
            .unwrap()
            .with_binary(true)
            .with_streaming(Streaming::On)
            .unwrap()
            .with_two_phase(true)
            .unwrap()
            .with_origin(Some(OriginFilter::None));
        let pairs = o.to_pairs();
        let back =
            PgOutputOptions::from_pairs(pairs.iter().map(|(k, v)| (*k, Some(v.as_str())))).unwrap();
        assert_eq!(back, o);
        assert!(PgOutputOptions::from_pairs([("publication_names", Some("p"))]).is_err());
        assert!(PgOutputOptions::from_pairs([
            ("proto_version", Some("3")),
            ("publication_names", Some("p")),
            ("streaming", Some("parallel")),
        ])
        .is_err());
        assert!(PgOutputOptions::new(5, ["p"]).is_err());
        assert!(PgOutputOptions::new(1, Vec::<String>::new()).is_err());
    }
}
