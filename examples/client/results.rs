//! What the server answers, as plain data: errors (the driver's and the server's) and the
//! results of statements.

use std::fmt;
use std::io;

use pgproto::{ErrorFields, TransactionStatus, UsageError};

/// An ErrorResponse or NoticeResponse, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerError {
    /// `ERROR`, `FATAL`, `NOTICE`... (the non-localized severity when the server sent it).
    pub(crate) severity: String,
    /// The SQLSTATE.
    pub(crate) code: String,
    /// The primary message.
    pub(crate) message: String,
    /// The detail, if any.
    pub(crate) detail: Option<String>,
}

impl ServerError {
    /// The fields of an ErrorResponse or NoticeResponse, as text.
    pub(crate) fn from_fields(f: &ErrorFields) -> Self {
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        Self {
            severity: text(f.severity_nonlocalized().or(f.severity()))
                .unwrap_or_else(|| "ERROR".into()),
            code: text(f.code()).unwrap_or_default(),
            message: text(f.message()).unwrap_or_default(),
            detail: text(f.detail()),
        }
    }

    /// An ErrorResponse's body, possibly cut short (`cut`: the text of the last field is
    /// incomplete and marked so); `None` without severity or message.
    pub(crate) fn from_body(body: &[u8], cut: bool) -> Option<Self> {
        let mut fields: Vec<(u8, String)> = Vec::new();
        let mut rest = body;
        while let Some((&code, after)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let (value, next, ended) = match memchr::memchr(0, after) {
                Some(i) => (&after[..i], &after[i + 1..], true),
                None => (after, &after[after.len()..], false),
            };
            let mut text = String::from_utf8_lossy(value).into_owned();
            if !ended && cut {
                text.push_str(" [cut short]");
            }
            fields.push((code, text));
            rest = next;
        }
        let get = |c: u8| fields.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone());
        Some(Self {
            severity: get(b'V').or_else(|| get(b'S'))?,
            code: get(b'C').unwrap_or_default(),
            message: get(b'M')?,
            detail: get(b'D'),
        })
    }

    /// Whether the server ends the session after this error.
    pub(crate) fn is_fatal(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }
}

impl fmt::Display for ServerError {
    /// `SEVERITY:  SQLSTATE: message`, or over protocol 2.0 (no SQLSTATE) the server's text,
    /// `SEVERITY:  message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{}:  {}", self.severity, self.message)
        } else {
            write!(f, "{}:  {}: {}", self.severity, self.code, self.message)
        }
    }
}

/// A NOTIFY received (a NotificationResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The notifying backend's process ID.
    pub(crate) process_id: i32,
    /// The channel.
    pub(crate) channel: String,
    /// The payload (always empty over protocol 2.0).
    pub(crate) payload: String,
}

impl fmt::Display for Notification {
    /// What psql prints for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Asynchronous notification \"{}\"", self.channel)?;
        if !self.payload.is_empty() {
            write!(f, " with payload \"{}\"", self.payload)?;
        }
        write!(
            f,
            " received from server process with PID {}.",
            self.process_id
        )
    }
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// The connection string is invalid.
    #[error("invalid connection string: {0}")]
    Config(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// TLS could not be set up or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The state machine failed the connection (start-up errors, authentication, protocol
    /// violations, the server closing the connection).
    #[error("{0}")]
    Protocol(pgproto::Error),
    /// The state machine refused a command.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The server answered with an error (a query's, or the FATAL one that ended the session).
    #[error("{0}")]
    Server(ServerError),
    /// The server sent nothing for the socket timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The server asked for an authentication method this driver does not implement.
    #[error("unsupported authentication request: {0}")]
    UnsupportedAuth(String),
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

/// A field value: `None` for NULL.
pub(crate) type Value = Option<Vec<u8>>;

/// The result of one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatementResult {
    /// Column names, when the statement returns rows (RowDescription).
    pub(crate) columns: Option<Vec<String>>,
    /// The rows.
    pub(crate) rows: Vec<Vec<Value>>,
    /// The command tag (`SELECT 3`, `INSERT 0 1`...); `None` after EmptyQueryResponse or
    /// PortalSuspended.
    pub(crate) tag: Option<String>,
    /// COPY TO STDOUT data, concatenated.
    pub(crate) copy_out: Vec<u8>,
    /// Whether this was COPY TO STDOUT.
    pub(crate) is_copy_out: bool,
}

/// What a simple Query, or one Sync-terminated extended segment, gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// One result per completed statement.
    pub(crate) results: Vec<StatementResult>,
    /// The error that ended it, if any.
    pub(crate) error: Option<ServerError>,
    /// How many requests the server skipped after the error (extended protocol only).
    pub(crate) skipped: usize,
    /// The transaction status from its ReadyForQuery.
    pub(crate) status: Option<TransactionStatus>,
}

/// A statement for the extended protocol, with text parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The SQL, with `$1`, `$2`... for parameters.
    pub(crate) sql: String,
    /// Parameter values in text format; `None` for NULL.
    pub(crate) params: Vec<Option<String>>,
}

impl Statement {
    /// A statement without parameters.
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }
}
