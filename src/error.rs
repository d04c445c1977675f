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
    #[error("{message} of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The message the length belongs to.
        message: &'static str,
        /// The length word as received.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The body ended before a field was complete.
    #[error("{message} is truncated in field {field}")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// Bytes were left over after the last field of the body.
    #[error("{message} has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A string field has no NUL terminator inside the body.
    #[error("{message} field {field} is missing its NUL terminator")]
    MissingNul {
        /// The message being decoded.
        message: &'static str,
        /// The string field.
        field: &'static str,
    },
    /// A count or length is negative or larger than the bytes that remain.
    #[error("{message} field {field} has invalid count {count}")]
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
    #[error("{message} field {field} has invalid value {value}")]
    InvalidValue {
        /// The message being decoded.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The value as received.
        value: i64,
    },
    /// A start-up packet carries a request code or protocol version this crate does not know.
    #[error("unsupported start-up code {code:#010x} ({major}.{minor})", major = code >> 16, minor = code & 0xffff)]
    UnknownStartupCode {
        /// The 32-bit code (protocol version or request code).
        code: u32,
    },
    /// A message arrived where the protocol forbids more input (after a CancelRequest).
    #[error("unexpected data after {message}")]
    DataAfterEnd {
        /// The message that ended the stream.
        message: &'static str,
    },
    /// A text field is not valid UTF-8 (returned only by the `as_str`-style accessors).
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
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
    #[error("{message} would be {len} bytes, more than the protocol's maximum")]
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
