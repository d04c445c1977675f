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

    /// Whether the server ends the session after this error.
    pub(crate) fn is_fatal(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:  {}: {}", self.severity, self.code, self.message)
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

impl DriverError {
    /// The SQLSTATE, for server errors (including start-up errors from the state machine).
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Server(e) => Some(&e.code),
            Self::Protocol(pgproto::Error::Server(f)) => {
                f.code().and_then(|c| std::str::from_utf8(c).ok())
            }
            _ => None,
        }
    }
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

impl StatementResult {
    /// The rows as text (invalid UTF-8 replaced).
    pub(crate) fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect()
            })
            .collect()
    }

    /// The row count of the command tag (`INSERT 0 5` gives 5).
    pub(crate) fn tag_rows(&self) -> Option<u64> {
        self.tag.as_deref()?.rsplit(' ').next()?.parse().ok()
    }
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

impl Outcome {
    /// The rows of every result, as text.
    pub(crate) fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        self.results.iter().flat_map(|r| r.text_rows()).collect()
    }

    /// The error as a `Result`.
    pub(crate) fn into_result(self) -> Result<Self, DriverError> {
        match self.error {
            Some(e) => Err(DriverError::Server(e)),
            None => Ok(self),
        }
    }
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

    /// Adds a parameter.
    pub(crate) fn param(mut self, v: Option<&str>) -> Self {
        self.params.push(v.map(str::to_string));
        self
    }
}

/// A NOTIFY received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The notifying backend's process id.
    pub(crate) process_id: i32,
    /// The channel.
    pub(crate) channel: String,
    /// The payload.
    pub(crate) payload: String,
}
