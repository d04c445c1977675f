//! Per-message length limits, checked against the length word before any body is buffered.
//!
//! The defaults are PostgreSQL's own. The server (`postgres.c`, `SocketBackend`) allows up to
//! `PQ_LARGE_MESSAGE_LIMIT` (1 GiB - 2) for Query, Parse, Bind, CopyData and FunctionCall and
//! `PQ_SMALL_MESSAGE_LIMIT` (10,000) for the rest; start-up packets up to
//! `MAX_STARTUP_PACKET_LENGTH` (10,000); authentication responses up to
//! `PG_MAX_AUTH_TOKEN_LENGTH` (65,535). libpq treats any backend message over 30,000 bytes as lost
//! synchronisation unless it is RowDescription, DataRow, CopyData, FunctionCallResponse,
//! ErrorResponse, NoticeResponse or NotificationResponse.

/// Length limits, in bytes of the length word (which counts itself but not the type byte).
///
/// ```
/// use pgproto::Limits;
/// let strict = Limits { frontend_large: 64 * 1024 * 1024, ..Limits::default() };
/// assert_eq!(strict.frontend_small, 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Untagged start-up packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
    pub startup: u32,
    /// Frontend messages other than the large and authentication ones.
    pub frontend_small: u32,
    /// Query, Parse, Bind, CopyData and FunctionCall.
    pub frontend_large: u32,
    /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse.
    pub frontend_auth: u32,
    /// Backend messages other than the large ones.
    pub backend_small: u32,
    /// RowDescription, DataRow, CopyData, FunctionCallResponse, ErrorResponse, NoticeResponse,
    /// NotificationResponse and ParameterDescription.
    pub backend_large: u32,
}

/// PostgreSQL's `PQ_LARGE_MESSAGE_LIMIT`: `MaxAllocSize - 1`.
pub const LARGE_MESSAGE_LIMIT: u32 = 0x3fff_fffe;

impl Default for Limits {
    fn default() -> Self {
        Self {
            startup: 10_000,
            frontend_small: 10_000,
            frontend_large: LARGE_MESSAGE_LIMIT,
            frontend_auth: 65_535,
            backend_small: 30_000,
            backend_large: LARGE_MESSAGE_LIMIT,
        }
    }
}

/// The size class of a type byte in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Unknown,
    Small,
    Large,
    Auth,
}

impl Limits {
    #[inline]
    pub(crate) fn frontend(&self, class: Class) -> u32 {
        match class {
            Class::Small | Class::Unknown => self.frontend_small,
            Class::Large => self.frontend_large,
            Class::Auth => self.frontend_auth,
        }
    }

    #[inline]
    pub(crate) fn backend(&self, class: Class) -> u32 {
        match class {
            Class::Large => self.backend_large,
            _ => self.backend_small,
        }
    }
}
