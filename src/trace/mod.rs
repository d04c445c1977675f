//! Protocol traces in libpq's `PQtrace` format.
//!
//! When a driver, server or proxy misbehaves, the first thing to look at is the message trace,
//! and the format PostgreSQL developers read is libpq's. This module writes it, for both roles:
//! one line per message, `F` for what the frontend sent and `B` for what the backend sent, the
//! length word, the message's name and its fields as libpq 18.6's `fe-trace.c` renders them:
//!
//! ```text
//! F	33	StartupMessage	 3 0 "user" "alice" "database" "app"
//! B	23	AuthenticationSASL	 "SCRAM-SHA-256" ""
//! F	54	SASLInitialResponse	 "SCRAM-SHA-256" 32 'n,,n=,r=XlMCC5uqjy0I7W92yRToPJzs'
//! B	8	AuthenticationOk
//! B	12	BackendKeyData	 18813 '\xfb\xad\\xed'
//! B	5	ReadyForQuery	 I
//! F	41	Parse	 "" "select $1::int, $2::bytea" 2 21 17
//! F	30	Bind	 "" "" 2 1 1 2 2 '\x00\x05' 2 '\x00\xff' 1 0
//! F	4	Sync
//! B	21	DataRow	 2 1 '5' 6 '\x00ff'
//! ```
//!
//! Unlike libpq, which cannot show all of its own start-up, a trace here has every message:
//! the start-up packets, the one-byte answers to SSLRequest and GSSENCRequest
//! (`B	1	SSLResponse	 N`), every authentication request including AuthenticationOk, and
//! an ErrorResponse that ends authentication.
//!
//! # Turning it on
//!
//! A [`Tracer`] takes the application's [`TraceSink`] (where the lines go; any
//! `FnMut(&[u8]) + Send` closure is one) and, if it wants timestamps, the time: the crate reads
//! no clock and writes no file. Give it to a machine before its first input and output to see
//! the whole connection:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use pgproto::trace::{TraceFlags, Tracer};
//! use pgproto::{Client, ClientConfig};
//!
//! let lines = Arc::new(Mutex::new(Vec::<String>::new()));
//! let sink = Arc::clone(&lines);
//! let mut client = Client::new(ClientConfig::new("alice"))?;
//! client.set_tracer(
//!     Tracer::new(move |line: &[u8]| {
//!         sink.lock().unwrap().push(String::from_utf8_lossy(line).into_owned())
//!     })
//!     .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS),
//! );
//! let _startup = client.poll_transmit();
//! client.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
//! while client.poll_event()?.is_some() {}
//! assert_eq!(
//!     *lines.lock().unwrap(),
//!     [
//!         "F\t20\tStartupMessage\t 3 0 \"user\" \"alice\"",
//!         "B\t8\tAuthenticationOk",
//!         "B\t5\tReadyForQuery\t I",
//!     ]
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Server::set_tracer`](crate::Server::set_tracer) is the same for the backend role. A
//! tracer costs nothing until it is set: the machines check for one once per `receive` and
//! once per `poll_transmit`, never per message. With one set, each direction keeps at most
//! [`Tracer::max_message_len`] bytes of the message it is reading (1 MiB by default); a longer
//! message's line is cut there and says so.
//!
//! Recorded connections are traced the same way (feed each direction's bytes to
//! [`Tracer::frontend`] and [`Tracer::backend`]), and single frames with a [`Formatter`].
//!
//! # Where this differs from libpq 18.6
//!
//! - libpq does not trace AuthenticationOk, nor an ErrorResponse (or anything else) that ends
//!   the connection during authentication; they are traced here.
//! - libpq leaves the salt of AuthenticationMD5Password unread and then prints a second line,
//!   `mismatched message length: consumed 8, expected 12`; here the salt is consumed and the
//!   message keeps to its one line (`B	12	AuthenticationMD5Password`, as in libpq).
//! - Some lines libpq 18.6 has the code for but never prints itself (CancelRequest: libpq does
//!   not trace its cancel connections; GSSENCResponse `G`; FunctionCall, which psycopg cannot
//!   send) are rendered as that code renders them: the formatter is checked against libpq's
//!   `fe-trace.c` itself on generated messages of every kind (`tests/live_trace_oracle.rs`).
//! - On a malformed message libpq reads past its end; this stops at the end, and adds libpq's
//!   `mismatched message length` line.
//! - Timestamps are libpq's format (`2025-01-31 12:34:56.789012`) of the time the sink gives,
//!   in the UTC offset it gives; libpq uses local time.

// The examples show real trace lines, whose fields are separated by tabs.
#![allow(clippy::tabs_in_doc_comments)]

mod format;
mod stream;
mod time;

pub use format::{Formatter, LengthMismatch};
pub use stream::{Tracer, DEFAULT_MAX_MESSAGE_LEN};
pub use time::Timestamp;

use std::fmt;
use std::ops::BitOr;

/// libpq's trace flags (`PQsetTraceFlags`), with the same bits.
///
/// ```
/// use pgproto::trace::TraceFlags;
///
/// let f = TraceFlags::SUPPRESS_TIMESTAMPS | TraceFlags::REGRESS_MODE;
/// assert!(f.contains(TraceFlags::REGRESS_MODE));
/// assert_eq!(f.bits(), 3);
/// assert_eq!(TraceFlags::from_bits_truncate(0xff), f);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// `PQTRACE_SUPPRESS_TIMESTAMPS`: lines start with `F` or `B`, without the time.
    pub const SUPPRESS_TIMESTAMPS: Self = Self(1);
    /// `PQTRACE_REGRESS_MODE`: hide what changes from run to run (see [`Formatter::new`]).
    pub const REGRESS_MODE: Self = Self(2);

    /// No flag: timestamps on, nothing hidden (libpq's default after `PQtrace`).
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags of both.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// libpq's integer value.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The flags of a libpq integer value; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> Self {
        Self(bits & 3)
    }
}

impl BitOr for TraceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.contains(Self::SUPPRESS_TIMESTAMPS) {
            names.push("SUPPRESS_TIMESTAMPS");
        }
        if self.contains(Self::REGRESS_MODE) {
            names.push("REGRESS_MODE");
        }
        write!(f, "TraceFlags({})", names.join(" | "))
    }
}

/// Which side sent a message: the first field of every line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the frontend (the client): `F`.
    Frontend,
    /// Sent by the backend (the server): `B`.
    Backend,
}

impl Direction {
    /// `b'F'` or `b'B'`.
    pub const fn letter(self) -> u8 {
        match self {
            Self::Frontend => b'F',
            Self::Backend => b'B',
        }
    }

    /// The other side.
    pub const fn other(self) -> Self {
        match self {
            Self::Frontend => Self::Backend,
            Self::Backend => Self::Frontend,
        }
    }
}

/// Where trace lines go, and where their time comes from.
///
/// Every `FnMut(&[u8]) + Send` closure is a sink without a clock. A sink that wants timestamps
/// implements [`TraceSink::now`].
///
/// ```
/// use pgproto::trace::{TraceSink, Timestamp};
///
/// /// Lines with a fixed time, for a test.
/// struct Fixed(Vec<String>);
///
/// impl TraceSink for Fixed {
///     fn line(&mut self, line: &[u8]) {
///         self.0.push(String::from_utf8_lossy(line).into_owned());
///     }
///     fn now(&mut self) -> Option<Timestamp> {
///         Some(Timestamp::new(0, 42))
///     }
/// }
/// ```
pub trait TraceSink {
    /// One line, without its newline. Message fields are written raw, as libpq writes them,
    /// so a line is bytes, not necessarily UTF-8, and may hold tabs or newlines from strings.
    fn line(&mut self, line: &[u8]);

    /// The time to print before the next line, unless the tracer's flags include
    /// [`TraceFlags::SUPPRESS_TIMESTAMPS`]; `None` (the default) prints none.
    fn now(&mut self) -> Option<Timestamp> {
        None
    }
}

impl<F: FnMut(&[u8])> TraceSink for F {
    fn line(&mut self, line: &[u8]) {
        self(line);
    }
}

#[cfg(test)]
mod tests;
