//! Error types of the codec.
//!
//! Every error names the message and, where one applies, the field that was wrong, so that a
//! log line is enough to find the offending bytes. Messages are lowercase and carry no trailing
//! period.

use std::fmt;

/// A message tag as it appears on the wire, printed as a character when it is printable ASCII.
///
/// ```
/// use pgproto::Tag;
/// assert_eq!(Tag(b'D').to_string(), "'D'");
/// assert_eq!(Tag(0x01).to_string(), "0x01");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub u8);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// A malformed frame or message body.
///
/// Returned by the framers ([`crate::BackendDecoder`], [`crate::FrontendDecoder`]) and by every
/// `decode` function. Once a framer has returned one, it returns the same error again on every
/// later call: the byte stream has lost its framing and cannot be trusted.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type byte names no message that may arrive in this direction and phase.
    #[error("unknown message type {tag}")]
    UnknownTag {
        /// The type byte received.
        tag: Tag,
    },
    /// The length word is below the message's minimum (4 for tagged messages, 8 for start-up
    /// packets).
    #[error("invalid length {len} for {message}")]
    InvalidLength {
        /// The message the length belongs to.
        message: &'static str,
        /// The length word as received.
        len: i64,
    },
    /// The length word is above the configured limit for this message type.
    #[error("length {len} of {message} exceeds the limit of {max} bytes")]
    TooLong {
        /// The message the length belongs to.
        message: &'static str,
        /// The length word as received.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The body ended before a field was complete.
    #[error("truncated {message}: field {field} is incomplete")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// Bytes were left over after the last field of the body.
    #[error("unexpected trailing bytes after {message}: {extra}")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A string field has no NUL terminator inside the body.
    #[error("missing NUL terminator in field {field} of {message}")]
    MissingNul {
        /// The message being decoded.
        message: &'static str,
        /// The string field.
        field: &'static str,
    },
    /// A count or length is negative or larger than the bytes that remain.
    #[error("invalid count {count} in field {field} of {message}")]
    InvalidCount {
        /// The message being decoded.
        message: &'static str,
        /// The count field.
        field: &'static str,
        /// The count as received.
        count: i64,
    },
    /// A field holds a value the protocol does not define (a format code, a transaction status,
    /// an authentication code...).
    #[error("invalid value {value} in field {field} of {message}")]
    InvalidValue {
        /// The message being decoded.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The value as received.
        value: i64,
    },
    /// A message arrived where the protocol forbids more input (after a CancelRequest).
    #[error("unexpected data after {message}")]
    DataAfterEnd {
        /// The message that ended the stream.
        message: &'static str,
    },
    /// A protocol-2.0 row (AsciiRow or BinaryRow) arrived before any RowDescription: its field
    /// count, and so its length, is unknown.
    #[error("{message} before any RowDescription")]
    MissingRowDescription {
        /// The row message.
        message: &'static str,
    },
    /// A text field is not valid UTF-8 (returned only by the `as_str`-style accessors).
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// The first byte of a message carried inside CopyData (streaming replication, BASE_BACKUP,
    /// pgoutput) names no message of that kind.
    #[error("unknown {kind} message type {tag}")]
    UnknownSubmessage {
        /// The kind of message expected ("streaming replication", "pgoutput", ...).
        kind: &'static str,
        /// The type byte received.
        tag: Tag,
    },
    /// A well-formed message that the negotiated context does not allow (a pgoutput message of a
    /// newer protocol version, a streamed-transaction message without `streaming`, a Stream
    /// Start inside a stream...).
    #[error("unexpected {message}: {reason}")]
    NotAllowed {
        /// The message.
        message: &'static str,
        /// Why not.
        reason: &'static str,
    },
}

/// An invalid value given to a message constructor: something that cannot be encoded.
///
/// Constructors check their inputs so that encoding never fails and never produces bytes the peer
/// would reject as malformed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string field contains a NUL byte, which would end it early on the wire.
    #[error("field {field} contains a NUL byte")]
    InteriorNul {
        /// The field.
        field: &'static str,
    },
    /// A list has more entries than its 16-bit count can express.
    #[error("field {field} has {count} entries, more than {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// The number of entries given.
        count: usize,
        /// The largest count the field can carry.
        max: usize,
    },
    /// The encoded message would be longer than its 32-bit length word allows.
    #[error("encoded {message} would be {len} bytes, more than the protocol's maximum")]
    TooLong {
        /// The message.
        message: &'static str,
        /// The length it would have.
        len: usize,
    },
    /// A field's value is outside the range the protocol allows (for example a cancel key shorter
    /// than 4 or longer than 256 bytes).
    #[error("field {field} is out of range: {reason}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The ways a session can fail. Fatal and sticky: once a state machine has returned one, it
/// returns the same error from every later call, and the connection must be closed (after
/// flushing any bytes still queued for sending).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that do not form a valid message.
    #[error("invalid message from peer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a valid message at a point where the protocol does not allow it.
    #[error("unexpected {message} while {state}")]
    UnexpectedMessage {
        /// What the machine was doing.
        state: &'static str,
        /// The message's name.
        message: &'static str,
    },
    /// The server sent a DataRow whose column count is not the announced one (client role):
    /// announced by the RowDescription of the result set, by the answer to a Describe of the
    /// portal sent right before the Execute, or else by the result's first row. `expected` is
    /// `None` when nothing announced rows: a DataRow before any RowDescription, or after NoData.
    /// libpq's "unexpected field count in "D" message" and "server sent data ("D" message)
    /// without prior row description".
    #[error("unexpected field count in DataRow: {received}, expected {}", expected_columns(.expected))]
    UnexpectedFieldCount {
        /// The announced column count; `None` if no RowDescription announced rows.
        expected: Option<u16>,
        /// The DataRow's column count.
        received: u16,
    },
    /// The peer closed the connection at a point where the protocol does not allow it.
    #[error("connection closed by peer while {state}")]
    UnexpectedEof {
        /// What the machine was doing.
        state: &'static str,
    },
    /// The server refused the connection during start-up (an ErrorResponse before
    /// ReadyForQuery, or a FATAL error later).
    #[error("server error: {}", crate::error::summary(.0))]
    Server(crate::ErrorFields),
    /// The server refused SSL or GSSAPI encryption that the configuration requires.
    #[error("server refused {what} encryption, which is required")]
    EncryptionRefused {
        /// "SSL" or "GSSAPI".
        what: &'static str,
    },
    /// The server answered an SSLRequest or GSSENCRequest with an ErrorResponse. Its text is not
    /// reported: nothing from the server can be trusted before encryption is in place.
    #[error("server answered the {what} request with an error (text withheld: not yet trusted)")]
    EncryptionRequestRejected {
        /// "SSL" or "GSSAPI".
        what: &'static str,
    },
    /// Bytes arrived after the answer to an SSLRequest or GSSENCRequest, before encryption
    /// began: they could have been injected by a man in the middle (CVE-2021-23222 and
    /// CVE-2021-23214).
    #[error("{len} unencrypted bytes received before {what} encryption began")]
    BufferedBeforeEncryption {
        /// "SSL" or "GSSAPI".
        what: &'static str,
        /// How many bytes were waiting.
        len: usize,
    },
    /// Authentication failed, or the server's authentication did not meet the policy.
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// The server's NegotiateProtocolVersion broke the negotiation rules.
    #[error("invalid protocol negotiation: {reason}")]
    ProtocolNegotiation {
        /// What was wrong.
        reason: &'static str,
    },
    /// A message this side had to send could not be encoded (for example a StartupMessage built
    /// from a configuration that cannot be sent, or a NegotiateProtocolVersion listing too
    /// many options).
    #[error("could not send {message}: {reason}")]
    CannotSend {
        /// The message.
        message: &'static str,
        /// Why.
        reason: EncodeError,
    },
    /// The system's random source failed while the server generated something secret (the
    /// cancel key): the connection cannot go on safely (server role; SQLSTATE XX000).
    #[error("could not generate random {what}: the system's random source failed")]
    Entropy {
        /// What was being generated.
        what: &'static str,
    },
    /// The client asked for a protocol version the server does not speak: a major version
    /// other than 2 or 3, 2.0 unless [`ServerConfig::min_protocol_version`](crate::ServerConfig)
    /// allows it, or 3.x when the server speaks only 2.0.
    #[error("unsupported frontend protocol {version}")]
    UnsupportedProtocol {
        /// The version requested.
        version: crate::ProtocolVersion,
    },
    /// A server that speaks only protocol 2.0 answered the 3.x start-up with an error in that
    /// protocol's format. (With [`ClientConfig::min_protocol_version`](crate::ClientConfig) 2.0
    /// the client falls back instead: [`ClientEvent::FallbackToV2`](crate::ClientEvent).)
    #[error("server error (protocol 2.0): {message}")]
    LegacyServer {
        /// The error text, with invalid UTF-8 replaced.
        message: String,
    },
}

/// Why authentication failed or was refused by the client's policy.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server asked for a method that `require_auth` does not allow.
    #[error("server requested {method} authentication, which require_auth does not allow")]
    MethodNotAllowed {
        /// The method the server asked for.
        method: &'static str,
    },
    /// The server completed authentication without the exchange that the policy requires
    /// (`require_auth` or `channel_binding=require`).
    #[error("server did not complete the required authentication ({required})")]
    Incomplete {
        /// What was required.
        required: &'static str,
    },
    /// Channel binding is required, but the server or the transport does not offer it.
    #[error("channel binding required, but {reason}")]
    ChannelBindingUnavailable {
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The client's password did not match (server role).
    #[error("password does not match")]
    PasswordMismatch,
    /// The StartupMessage names no user (server role; PostgreSQL's text and SQLSTATE 28000).
    #[error("no PostgreSQL user name specified in startup packet")]
    MissingUser,
    /// The server asked for a password and none is configured.
    #[error("server requested a password, but none was given")]
    MissingPassword,
    /// The server asked for a method this crate does not implement.
    #[error("unsupported authentication method: {method}")]
    Unsupported {
        /// The method.
        method: &'static str,
    },
    /// The server offered no SASL mechanism this client can use.
    #[error("no usable SASL mechanism offered")]
    NoMechanism,
    /// The SCRAM exchange failed (for example, the server's signature did not verify).
    #[error(transparent)]
    Scram(#[from] crate::auth::ScramError),
    /// An authentication message would be too long to send.
    #[error("authentication response too long")]
    TooLong,
}

/// A command the application gave that the protocol does not allow now. It does not affect
/// the connection: the machine's state is unchanged.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The command is not allowed in the current state.
    #[error("cannot {command} while {state}")]
    NotAllowed {
        /// What was attempted.
        command: &'static str,
        /// What the machine is doing.
        state: &'static str,
    },
    /// The connection has failed or been closed; no command can be sent.
    #[error("connection is closed")]
    Closed,
    /// The configuration is inconsistent.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A DataRow whose column count is not the one the result announced (a RowDescription, or
    /// for an Execute the answer to a Describe of its portal just before it, or the result's
    /// first row): the peer would refuse it, as libpq does ([`Error::UnexpectedFieldCount`]).
    #[error("cannot send a DataRow of {received} columns: expected {}", expected_columns(.expected))]
    FieldCount {
        /// The announced column count; `None` if nothing announced rows.
        expected: Option<u16>,
        /// The DataRow's column count.
        received: u16,
    },
}

/// "SEVERITY SQLSTATE: message" for an error's display, with invalid UTF-8 replaced; without a
/// SQLSTATE (protocol 2.0), "SEVERITY: message".
pub(crate) fn summary(f: &crate::ErrorFields) -> String {
    let msg = String::from_utf8_lossy(f.message().unwrap_or_default());
    let sev = String::from_utf8_lossy(f.severity_nonlocalized().unwrap_or(b"ERROR"));
    match f.code() {
        Some(code) => format!("{sev} {}: {msg}", String::from_utf8_lossy(code)),
        None => format!("{sev}: {msg}"),
    }
}

/// The expected column count of [`Error::UnexpectedFieldCount`] and [`UsageError::FieldCount`],
/// as text.
fn expected_columns(expected: &Option<u16>) -> String {
    match expected {
        Some(n) => n.to_string(),
        None => "none (no RowDescription before it)".into(),
    }
}
