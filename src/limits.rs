//! Per-message length limits, checked against the length word before any body is buffered.
//!
//! The defaults are PostgreSQL's own. The server (`postgres.c`, `SocketBackend`) allows up to
//! `PQ_LARGE_MESSAGE_LIMIT` (1 GiB - 2) for Query, Parse, Bind, CopyData and FunctionCall and
//! `PQ_SMALL_MESSAGE_LIMIT` (10,000) for the rest; start-up packets up to
//! `MAX_STARTUP_PACKET_LENGTH` (10,000); authentication responses up to
//! `PG_MAX_AUTH_TOKEN_LENGTH` (65,535). libpq treats any backend message over 30,000 bytes as lost
//! synchronisation unless it is RowDescription, DataRow, CopyData, FunctionCallResponse,
//! ErrorResponse, NoticeResponse or NotificationResponse.

use crate::message::{backend, frontend};

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

/// The class of every frontend type byte.
pub(crate) const FRONTEND_CLASS: [Class; 256] = {
    let mut t = [Class::Unknown; 256];
    use frontend::tag::*;
    let small = [
        CLOSE, COPY_DONE, COPY_FAIL, DESCRIBE, EXECUTE, FLUSH, SYNC, TERMINATE,
    ];
    let mut i = 0;
    while i < small.len() {
        t[small[i] as usize] = Class::Small;
        i += 1;
    }
    let large = [QUERY, PARSE, BIND, COPY_DATA, FUNCTION_CALL];
    let mut i = 0;
    while i < large.len() {
        t[large[i] as usize] = Class::Large;
        i += 1;
    }
    t[PASSWORD as usize] = Class::Auth;
    t
};

/// The class of every backend type byte.
pub(crate) const BACKEND_CLASS: [Class; 256] = {
    let mut t = [Class::Unknown; 256];
    use backend::tag::*;
    let small = [
        AUTHENTICATION,
        BACKEND_KEY_DATA,
        BIND_COMPLETE,
        CLOSE_COMPLETE,
        COMMAND_COMPLETE,
        COPY_DONE,
        COPY_IN_RESPONSE,
        COPY_OUT_RESPONSE,
        COPY_BOTH_RESPONSE,
        EMPTY_QUERY_RESPONSE,
        NEGOTIATE_PROTOCOL_VERSION,
        NO_DATA,
        PARAMETER_STATUS,
        PARSE_COMPLETE,
        PORTAL_SUSPENDED,
        READY_FOR_QUERY,
    ];
    let mut i = 0;
    while i < small.len() {
        t[small[i] as usize] = Class::Small;
        i += 1;
    }
    // ParameterDescription is not long in libpq, but a statement may have 65,535 parameters
    // (262,142 bytes), so it is treated as long here.
    let large = [
        PARAMETER_DESCRIPTION,
        ROW_DESCRIPTION,
        DATA_ROW,
        COPY_DATA,
        FUNCTION_CALL_RESPONSE,
        ERROR_RESPONSE,
        NOTICE_RESPONSE,
        NOTIFICATION_RESPONSE,
    ];
    let mut i = 0;
    while i < large.len() {
        t[large[i] as usize] = Class::Large;
        i += 1;
    }
    t
};

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
