//! Malformed input, table-driven: each hand-made frame must fail with the exact `DecodeError`,
//! naming the message and the field, whether it arrives whole or one byte at a time, through
//! every decoding entry point; and every error prints as a lowercase message without a final
//! period.

mod common;

use bytes::Bytes;
use common::{frame, startup_packet, Body};
use pgproto::{
    AuthResponseKind, BackendDecoder, BackendMessage, Bind, Columns, DataRow, DecodeError,
    Describe, Execute, FrontendDecoder, FrontendMessage, Limits, Parse, ProtocolVersion, Tag,
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE,
};

/// Where the bytes are fed.
#[derive(Debug, Clone, Copy)]
enum Ctx {
    /// A backend decoder, protocol 3.0.
    Be30,
    /// A backend decoder, protocol 3.2.
    Be32,
    /// A backend decoder expecting the answer to SSLRequest.
    BeSsl,
    /// A backend decoder expecting the answer to GSSENCRequest.
    BeGss,
    /// A fresh frontend decoder (start-up packets).
    FeStartup,
    /// A frontend decoder after start-up, `p` decoded as the given kind.
    Fe(Option<AuthResponseKind>),
}

use Ctx::*;

fn truncated(message: &'static str, field: &'static str) -> DecodeError {
    DecodeError::Truncated { message, field }
}
fn missing_nul(message: &'static str, field: &'static str) -> DecodeError {
    DecodeError::MissingNul { message, field }
}
fn trailing(message: &'static str, extra: usize) -> DecodeError {
    DecodeError::TrailingBytes { message, extra }
}
fn count(message: &'static str, field: &'static str, count: i64) -> DecodeError {
    DecodeError::InvalidCount {
        message,
        field,
        count,
    }
}
fn value(message: &'static str, field: &'static str, value: i64) -> DecodeError {
    DecodeError::InvalidValue {
        message,
        field,
        value,
    }
}
fn length(message: &'static str, len: i64) -> DecodeError {
    DecodeError::InvalidLength { message, len }
}

struct Case {
    name: &'static str,
    ctx: Ctx,
    bytes: Vec<u8>,
    want: DecodeError,
}

fn case(name: &'static str, ctx: Ctx, bytes: Vec<u8>, want: DecodeError) -> Case {
    Case {
        name,
        ctx,
        bytes,
        want,
    }
}

fn b() -> Body {
    Body::new()
}

const PW: Ctx = Fe(Some(AuthResponseKind::Password));
const SASL_INIT: Ctx = Fe(Some(AuthResponseKind::SaslInitial));

fn cases() -> Vec<Case> {
    let v30 = 3 << 16;
    vec![
        // --- truncated fixed-size fields ---
        case(
            "Authentication without its code",
            Be30,
            frame(b'R', &[0, 0, 0]),
            truncated("Authentication", "code"),
        ),
        case(
            "AuthenticationMD5Password with a 2-byte salt",
            Be30,
            frame(b'R', &b().i32(5).raw(&[1, 2]).build()),
            truncated("Authentication", "salt"),
        ),
        case(
            "NotificationResponse with a 2-byte process ID",
            Be30,
            frame(b'A', &[0, 0]),
            truncated("NotificationResponse", "process ID"),
        ),
        case(
            "NegotiateProtocolVersion with a 2-byte count",
            Be30,
            frame(b'v', &b().i32(0).raw(&[0, 0]).build()),
            truncated("NegotiateProtocolVersion", "option count"),
        ),
        case(
            "FunctionCallResponse with a 3-byte length",
            Be30,
            frame(b'V', &[0, 0, 0]),
            truncated("FunctionCallResponse", "result"),
        ),
        case(
            "FunctionCallResponse value shorter than its length",
            Be30,
            frame(b'V', &b().i32(10).raw(b"abc").build()),
            truncated("FunctionCallResponse", "result"),
        ),
        case(
            "DataRow with a 1-byte count",
            Be30,
            frame(b'D', &[0]),
            truncated("DataRow", "column count"),
        ),
        case(
            "DataRow value shorter than its length",
            Be30,
            frame(b'D', &b().i16(1).i32(5).raw(b"ab").build()),
            truncated("DataRow", "column value"),
        ),
        case(
            "DataRow second length cut short",
            Be30,
            frame(b'D', &b().i16(2).i32(3).raw(b"abc").raw(&[0, 0, 0]).build()),
            truncated("DataRow", "column value"),
        ),
        case(
            "ReadyForQuery with an empty body",
            Be30,
            frame(b'Z', &[]),
            truncated("ReadyForQuery", "transaction status"),
        ),
        case(
            "RowDescription field cut short",
            Be30,
            frame(b'T', &b().i16(1).cstr(b"abcdefghij").raw(&[0; 10]).build()),
            truncated("RowDescription", "field"),
        ),
        case(
            "RowDescription without its count",
            Be30,
            frame(b'T', &[0]),
            truncated("RowDescription", "field count"),
        ),
        case(
            "CopyInResponse without its column count",
            Be30,
            frame(b'G', &[0]),
            truncated("CopyInResponse", "column formats"),
        ),
        case(
            "Execute with a 2-byte row limit",
            Fe(None),
            frame(b'E', &b().cstr(b"").raw(&[0, 0]).build()),
            truncated("Execute", "row limit"),
        ),
        case(
            "FunctionCall with a 2-byte OID",
            Fe(None),
            frame(b'F', &[0, 0]),
            truncated("FunctionCall", "function OID"),
        ),
        case(
            "FunctionCall without its result format",
            Fe(None),
            frame(b'F', &b().u32(1).i16(0).i16(0).build()),
            truncated("FunctionCall", "result format"),
        ),
        case(
            "Bind without result formats",
            Fe(None),
            frame(b'B', &b().cstr(b"").cstr(b"").i16(0).i16(0).build()),
            truncated("Bind", "result formats"),
        ),
        case(
            "Bind parameter shorter than its length",
            Fe(None),
            frame(
                b'B',
                &b().cstr(b"")
                    .cstr(b"")
                    .i16(0)
                    .i16(1)
                    .i32(9)
                    .raw(b"abc")
                    .i16(0)
                    .build(),
            ),
            truncated("Bind", "parameter values"),
        ),
        case(
            "Describe with an empty body",
            Fe(None),
            frame(b'D', &[]),
            truncated("Describe", "kind"),
        ),
        case(
            "SASLInitialResponse with a 2-byte length",
            SASL_INIT,
            frame(b'p', &b().cstr(b"SCRAM-SHA-256").raw(&[0, 0]).build()),
            truncated("SASLInitialResponse", "initial response"),
        ),
        case(
            "SASLInitialResponse data shorter than its length",
            SASL_INIT,
            frame(
                b'p',
                &b().cstr(b"SCRAM-SHA-256").i32(10).raw(b"abc").build(),
            ),
            truncated("SASLInitialResponse", "initial response"),
        ),
        // --- missing NUL terminators ---
        case(
            "Query without NUL",
            Fe(None),
            frame(b'Q', b"SELECT 1"),
            missing_nul("Query", "query string"),
        ),
        case(
            "Parse without NUL after the name",
            Fe(None),
            frame(b'P', b"stmt"),
            missing_nul("Parse", "statement name"),
        ),
        case(
            "Parse without NUL after the query",
            Fe(None),
            frame(b'P', b"s\0SELECT 1"),
            missing_nul("Parse", "query string"),
        ),
        case(
            "Bind without NUL after the portal",
            Fe(None),
            frame(b'B', b"portal"),
            missing_nul("Bind", "portal name"),
        ),
        case(
            "Describe without NUL",
            Fe(None),
            frame(b'D', b"Sname"),
            missing_nul("Describe", "name"),
        ),
        case(
            "Close without NUL",
            Fe(None),
            frame(b'C', b"Pname"),
            missing_nul("Close", "name"),
        ),
        case(
            "CopyFail without NUL",
            Fe(None),
            frame(b'f', b"oops"),
            missing_nul("CopyFail", "error message"),
        ),
        case(
            "PasswordMessage without NUL",
            PW,
            frame(b'p', b"secret"),
            missing_nul("PasswordMessage", "password"),
        ),
        case(
            "SASLInitialResponse without NUL",
            SASL_INIT,
            frame(b'p', b"SCRAM"),
            missing_nul("SASLInitialResponse", "mechanism"),
        ),
        case(
            "ParameterStatus without NUL after the name",
            Be30,
            frame(b'S', b"client_encoding"),
            missing_nul("ParameterStatus", "name"),
        ),
        case(
            "ParameterStatus without NUL after the value",
            Be30,
            frame(b'S', b"client_encoding\0UTF8"),
            missing_nul("ParameterStatus", "value"),
        ),
        case(
            "CommandComplete without NUL",
            Be30,
            frame(b'C', b"SELECT 1"),
            missing_nul("CommandComplete", "command tag"),
        ),
        case(
            "NotificationResponse payload without NUL",
            Be30,
            frame(b'A', &b().i32(1).cstr(b"chan").raw(b"payload").build()),
            missing_nul("NotificationResponse", "payload"),
        ),
        case(
            "RowDescription name without NUL",
            Be30,
            frame(b'T', &b().i16(1).raw(&[b'a'; 30]).build()),
            missing_nul("RowDescription", "field name"),
        ),
        case(
            "NoticeResponse value without NUL",
            Be30,
            frame(b'N', b"Mhello"),
            missing_nul("NoticeResponse", "field value"),
        ),
        case(
            "NegotiateProtocolVersion option without NUL",
            Be30,
            frame(
                b'v',
                &b().i32(0).i32(2).cstr(b"_pq_.a").raw(b"_pq_").build(),
            ),
            missing_nul("NegotiateProtocolVersion", "option"),
        ),
        case(
            "StartupMessage value without NUL",
            FeStartup,
            startup_packet(v30, b"user\0alice"),
            missing_nul("StartupMessage", "parameter value"),
        ),
        // --- lists without their final terminator ---
        case(
            "ErrorResponse without final terminator",
            Be30,
            frame(b'E', b"SERROR\0Mboom\0"),
            truncated("ErrorResponse", "field code"),
        ),
        case(
            "ErrorResponse with an empty body",
            Be30,
            frame(b'E', b""),
            truncated("ErrorResponse", "field code"),
        ),
        case(
            "SASL mechanism list without terminator",
            Be30,
            frame(b'R', &b().i32(10).cstr(b"SCRAM-SHA-256").build()),
            truncated("AuthenticationSASL", "terminator"),
        ),
        case(
            "SASL mechanism list with no mechanism at all",
            Be30,
            frame(b'R', &b().i32(10).build()),
            truncated("AuthenticationSASL", "terminator"),
        ),
        case(
            "SASL mechanism without NUL",
            Be30,
            frame(b'R', &b().i32(10).raw(b"SCRAM").build()),
            missing_nul("Authentication", "mechanism"),
        ),
        case(
            "StartupMessage without terminator",
            FeStartup,
            startup_packet(v30, b"user\0alice\0"),
            truncated("StartupMessage", "terminator"),
        ),
        case(
            "StartupMessage with no parameters and no terminator",
            FeStartup,
            startup_packet(v30, b""),
            truncated("StartupMessage", "terminator"),
        ),
        // --- trailing bytes ---
        case(
            "ReadyForQuery with a trailing byte",
            Be30,
            frame(b'Z', b"IX"),
            trailing("ReadyForQuery", 1),
        ),
        case(
            "Sync with a body",
            Fe(None),
            frame(b'S', b"\0"),
            trailing("Sync", 1),
        ),
        case(
            "Flush with a body",
            Fe(None),
            frame(b'H', b"abc"),
            trailing("Flush", 3),
        ),
        case(
            "CopyDone with a body",
            Fe(None),
            frame(b'c', b"a"),
            trailing("CopyDone", 1),
        ),
        case(
            "Terminate with a body",
            Fe(None),
            frame(b'X', b"ab"),
            trailing("Terminate", 2),
        ),
        case(
            "Query with bytes after its NUL",
            Fe(None),
            frame(b'Q', b"SELECT 1\0;"),
            trailing("Query", 1),
        ),
        case(
            "Execute with a trailing byte",
            Fe(None),
            frame(b'E', &b().cstr(b"").i32(0).u8(1).build()),
            trailing("Execute", 1),
        ),
        case(
            "Parse with a trailing byte",
            Fe(None),
            frame(b'P', &b().cstr(b"").cstr(b"").i16(0).u8(1).build()),
            trailing("Parse", 1),
        ),
        case(
            "PasswordMessage with bytes after its NUL",
            PW,
            frame(b'p', b"pw\0x"),
            trailing("PasswordMessage", 1),
        ),
        case(
            "SASLInitialResponse with bytes after the data",
            SASL_INIT,
            frame(b'p', &b().cstr(b"SCRAM-SHA-256").i32(1).raw(b"ab").build()),
            trailing("SASLInitialResponse", 1),
        ),
        case(
            "DataRow with trailing bytes",
            Be30,
            frame(b'D', &b().i16(0).raw(b"abc").build()),
            trailing("DataRow", 3),
        ),
        case(
            "ParseComplete with a body",
            Be30,
            frame(b'1', b"x"),
            trailing("ParseComplete", 1),
        ),
        case(
            "BindComplete with a body",
            Be30,
            frame(b'2', b"xy"),
            trailing("BindComplete", 2),
        ),
        case(
            "CloseComplete with a body",
            Be30,
            frame(b'3', b"x"),
            trailing("CloseComplete", 1),
        ),
        case(
            "NoData with a body",
            Be30,
            frame(b'n', b"x"),
            trailing("NoData", 1),
        ),
        case(
            "EmptyQueryResponse with a body",
            Be30,
            frame(b'I', b"x"),
            trailing("EmptyQueryResponse", 1),
        ),
        case(
            "PortalSuspended with a body",
            Be30,
            frame(b's', b"x"),
            trailing("PortalSuspended", 1),
        ),
        case(
            "backend CopyDone with a body",
            Be30,
            frame(b'c', b"x"),
            trailing("CopyDone", 1),
        ),
        case(
            "AuthenticationOk with a trailing byte",
            Be30,
            frame(b'R', &b().i32(0).u8(0).build()),
            trailing("Authentication", 1),
        ),
        case(
            "ErrorResponse with bytes after its terminator",
            Be30,
            frame(b'E', b"SERROR\0\0xy"),
            trailing("ErrorResponse", 2),
        ),
        case(
            "StartupMessage with bytes after its terminator",
            FeStartup,
            startup_packet(v30, b"user\0a\0\0xy"),
            trailing("StartupMessage", 2),
        ),
        case(
            "CopyOutResponse with a trailing byte",
            Be30,
            frame(b'H', &b().i8(0).i16(0).u8(0).build()),
            trailing("CopyOutResponse", 1),
        ),
        // --- counts ---
        case(
            "DataRow count larger than the body",
            Be30,
            frame(b'D', &b().i16(3).i32(-1).i32(-1).build()),
            count("DataRow", "column value", 3),
        ),
        case(
            "DataRow count of 65535 with an empty body",
            Be30,
            frame(b'D', &b().i16(-1).build()),
            count("DataRow", "column value", 65_535),
        ),
        case(
            "DataRow value length -2",
            Be30,
            frame(b'D', &b().i16(1).i32(-2).build()),
            count("DataRow", "column value", -2),
        ),
        case(
            "DataRow value length i32::MIN",
            Be30,
            frame(b'D', &b().i16(1).i32(i32::MIN).build()),
            count("DataRow", "column value", i32::MIN.into()),
        ),
        case(
            "Bind parameter length -3",
            Fe(None),
            frame(
                b'B',
                &b().cstr(b"").cstr(b"").i16(0).i16(1).i32(-3).i16(0).build(),
            ),
            count("Bind", "parameter values", -3),
        ),
        case(
            "Bind parameter count larger than the body",
            Fe(None),
            frame(
                b'B',
                &b().cstr(b"").cstr(b"").i16(0).i16(100).i32(-1).build(),
            ),
            count("Bind", "parameter values", 100),
        ),
        case(
            "Bind format count larger than the body",
            Fe(None),
            frame(b'B', &b().cstr(b"").cstr(b"").i16(10).i16(0).build()),
            count("Bind", "parameter formats", 10),
        ),
        case(
            "FunctionCall argument length -2",
            Fe(None),
            frame(b'F', &b().u32(1).i16(0).i16(1).i32(-2).i16(0).build()),
            count("FunctionCall", "arguments", -2),
        ),
        case(
            "Parse type count larger than the body",
            Fe(None),
            frame(b'P', &b().cstr(b"").cstr(b"").i16(3).u32(23).build()),
            count("Parse", "parameter types", 3),
        ),
        case(
            "ParameterDescription count larger than the body",
            Be30,
            frame(b't', &b().i16(2).u32(23).build()),
            count("ParameterDescription", "parameter types", 2),
        ),
        case(
            "RowDescription count larger than the body",
            Be30,
            frame(b'T', &b().i16(5).cstr(b"a").raw(&[0; 18]).build()),
            count("RowDescription", "fields", 5),
        ),
        case(
            "NegotiateProtocolVersion count -1",
            Be30,
            frame(b'v', &b().i32(0).i32(-1).build()),
            count("NegotiateProtocolVersion", "option count", -1),
        ),
        case(
            "NegotiateProtocolVersion count larger than the body",
            Be30,
            frame(b'v', &b().i32(0).i32(10).cstr(b"_pq_.a").build()),
            count("NegotiateProtocolVersion", "options", 10),
        ),
        case(
            "NegotiateProtocolVersion count larger than the options sent",
            Be30,
            frame(b'v', &b().i32(0).i32(5).cstr(b"_pq_.a").build()),
            missing_nul("NegotiateProtocolVersion", "option"),
        ),
        case(
            "NegotiateProtocolVersion count i32::MAX",
            Be30,
            frame(b'v', &b().i32(0).i32(i32::MAX).build()),
            count("NegotiateProtocolVersion", "options", i32::MAX.into()),
        ),
        case(
            "FunctionCallResponse length -2",
            Be30,
            frame(b'V', &b().i32(-2).build()),
            count("FunctionCallResponse", "result", -2),
        ),
        case(
            "SASLInitialResponse length -2",
            SASL_INIT,
            frame(b'p', &b().cstr(b"SCRAM-SHA-256").i32(-2).build()),
            count("SASLInitialResponse", "initial response", -2),
        ),
        case(
            "CopyBothResponse format count larger than the body",
            Be30,
            frame(b'W', &b().i8(1).i16(4).i16(1).build()),
            count("CopyBothResponse", "column formats", 4),
        ),
        // --- values the protocol does not define ---
        case(
            "Bind with parameter format 2",
            Fe(None),
            frame(
                b'B',
                &b().cstr(b"").cstr(b"").i16(1).i16(2).i16(0).i16(0).build(),
            ),
            value("Bind", "parameter formats", 2),
        ),
        case(
            "Bind with result format -1",
            Fe(None),
            frame(
                b'B',
                &b().cstr(b"")
                    .cstr(b"")
                    .i16(0)
                    .i16(0)
                    .i16(2)
                    .i16(1)
                    .i16(-1)
                    .build(),
            ),
            value("Bind", "result formats", -1),
        ),
        case(
            "FunctionCall with argument format 3",
            Fe(None),
            frame(b'F', &b().u32(1).i16(1).i16(3).i16(0).i16(0).build()),
            value("FunctionCall", "argument formats", 3),
        ),
        case(
            "FunctionCall with result format 5",
            Fe(None),
            frame(b'F', &b().u32(1).i16(0).i16(0).i16(5).build()),
            value("FunctionCall", "result format", 5),
        ),
        case(
            "Describe of kind X",
            Fe(None),
            frame(b'D', b"Xname\0"),
            value("Describe", "kind", 88),
        ),
        case(
            "Close of kind Z",
            Fe(None),
            frame(b'C', b"Zname\0"),
            value("Close", "kind", 90),
        ),
        case(
            "RowDescription with format 7",
            Be30,
            frame(
                b'T',
                &b().i16(1)
                    .cstr(b"id")
                    .u32(0)
                    .i16(0)
                    .u32(23)
                    .i16(4)
                    .i32(-1)
                    .i16(7)
                    .build(),
            ),
            value("RowDescription", "format", 7),
        ),
        case(
            "ReadyForQuery with status X",
            Be30,
            frame(b'Z', b"X"),
            value("ReadyForQuery", "transaction status", 88),
        ),
        case(
            "ReadyForQuery with status i",
            Be30,
            frame(b'Z', b"i"),
            value("ReadyForQuery", "transaction status", 105),
        ),
        case(
            "Authentication code 99",
            Be30,
            frame(b'R', &b().i32(99).build()),
            value("Authentication", "code", 99),
        ),
        case(
            "Authentication code 1",
            Be30,
            frame(b'R', &b().i32(1).build()),
            value("Authentication", "code", 1),
        ),
        case(
            "Authentication code 4 (crypt, long gone)",
            Be30,
            frame(b'R', &b().i32(4).build()),
            value("Authentication", "code", 4),
        ),
        case(
            "Authentication code -1",
            Be30,
            frame(b'R', &b().i32(-1).build()),
            value("Authentication", "code", -1),
        ),
        case(
            "CopyInResponse with overall format 2",
            Be30,
            frame(b'G', &b().i8(2).i16(0).build()),
            value("CopyInResponse", "format", 2),
        ),
        case(
            "CopyOutResponse with column format 3",
            Be30,
            frame(b'H', &b().i8(1).i16(2).i16(1).i16(3).build()),
            value("CopyOutResponse", "column formats", 3),
        ),
        // --- cancel keys and fixed-length start-up packets ---
        case(
            "BackendKeyData with a 5-byte key under 3.0",
            Be30,
            frame(b'K', &b().i32(1).raw(&[9; 5]).build()),
            length("BackendKeyData", 13),
        ),
        case(
            "BackendKeyData with a 32-byte key under 3.0",
            Be30,
            frame(b'K', &b().i32(1).raw(&[9; 32]).build()),
            length("BackendKeyData", 40),
        ),
        case(
            "BackendKeyData with a 3-byte key under 3.0",
            Be30,
            frame(b'K', &b().i32(1).raw(&[9; 3]).build()),
            length("BackendKeyData", 11),
        ),
        case(
            "BackendKeyData with a 300-byte key under 3.2",
            Be32,
            frame(b'K', &b().i32(1).raw(&[9; 300]).build()),
            length("BackendKeyData", 308),
        ),
        case(
            "BackendKeyData with a 257-byte key under 3.2",
            Be32,
            frame(b'K', &b().i32(1).raw(&[9; 257]).build()),
            length("BackendKeyData", 265),
        ),
        case(
            "BackendKeyData with a 3-byte key under 3.2",
            Be32,
            frame(b'K', &b().i32(1).raw(&[9; 3]).build()),
            length("BackendKeyData", 11),
        ),
        case(
            "BackendKeyData with only a process ID",
            Be32,
            frame(b'K', &b().i32(1).build()),
            length("BackendKeyData", 8),
        ),
        case(
            "BackendKeyData with an empty body",
            Be32,
            frame(b'K', &[]),
            length("BackendKeyData", 4),
        ),
        case(
            "CancelRequest with a 3-byte key",
            FeStartup,
            startup_packet(CANCEL_REQUEST_CODE, &b().i32(1).raw(&[9; 3]).build()),
            length("CancelRequest", 15),
        ),
        case(
            "CancelRequest with a 257-byte key",
            FeStartup,
            startup_packet(CANCEL_REQUEST_CODE, &b().i32(1).raw(&[9; 257]).build()),
            length("CancelRequest", 269),
        ),
        case(
            "CancelRequest without a process ID",
            FeStartup,
            startup_packet(CANCEL_REQUEST_CODE, &[0, 0]),
            length("CancelRequest", 10),
        ),
        case(
            "SSLRequest with length 12",
            FeStartup,
            startup_packet(SSL_REQUEST_CODE, &[0; 4]),
            length("SSLRequest", 12),
        ),
        case(
            "GSSENCRequest with length 9",
            FeStartup,
            startup_packet(GSSENC_REQUEST_CODE, &[0]),
            length("GSSENCRequest", 9),
        ),
        // --- wrong place, wrong time ---
        case(
            "bytes after a CancelRequest",
            FeStartup,
            [
                startup_packet(CANCEL_REQUEST_CODE, &b().i32(1).raw(&[9; 4]).build()),
                vec![0],
            ]
            .concat(),
            DecodeError::DataAfterEnd {
                message: "CancelRequest",
            },
        ),
        case(
            "a StartupMessage after a CancelRequest",
            FeStartup,
            [
                startup_packet(CANCEL_REQUEST_CODE, &b().i32(1).raw(&[9; 32]).build()),
                startup_packet(v30, b"user\0a\0\0"),
            ]
            .concat(),
            DecodeError::DataAfterEnd {
                message: "CancelRequest",
            },
        ),
        case(
            "bytes after an unsupported start-up packet",
            FeStartup,
            [startup_packet(2 << 16, &[0; 8]), vec![b'Q']].concat(),
            DecodeError::DataAfterEnd {
                message: "an unsupported start-up packet",
            },
        ),
        case(
            "an unexpected byte where an SSL response is expected",
            BeSsl,
            b"X".to_vec(),
            DecodeError::UnknownTag { tag: Tag(b'X') },
        ),
        case(
            "G where an SSL response is expected",
            BeSsl,
            b"G".to_vec(),
            DecodeError::UnknownTag { tag: Tag(b'G') },
        ),
        case(
            "S where a GSSENC response is expected",
            BeGss,
            b"S".to_vec(),
            DecodeError::UnknownTag { tag: Tag(b'S') },
        ),
        case(
            "a backend tag sent by a frontend",
            Fe(None),
            frame(b'Z', b"I"),
            DecodeError::UnknownTag { tag: Tag(b'Z') },
        ),
        case(
            "a frontend tag sent by a backend",
            Be30,
            frame(b'Q', b"SELECT 1\0"),
            DecodeError::UnknownTag { tag: Tag(b'Q') },
        ),
        case(
            "a NUL tag",
            Be30,
            vec![0],
            DecodeError::UnknownTag { tag: Tag(0) },
        ),
    ]
}

fn backend(ctx: Ctx) -> BackendDecoder {
    let mut d = BackendDecoder::new();
    match ctx {
        Be30 => {}
        Be32 => d.set_protocol_version(ProtocolVersion::V3_2),
        BeSsl => d.expect_ssl_response(),
        BeGss => d.expect_gssenc_response(),
        _ => unreachable!(),
    }
    d
}

fn frontend(ctx: Ctx) -> FrontendDecoder {
    match ctx {
        FeStartup => FrontendDecoder::new(),
        Fe(kind) => {
            let mut d = FrontendDecoder::after_startup(Limits::default());
            d.expect_auth_response(kind);
            d
        }
        _ => unreachable!(),
    }
}

/// Feeds `chunks`, draining after each. Returns how many messages came before the first error
/// and the error; checks the error is sticky (a decoder's) or that decoding carries on (a
/// DataRow value's, found as it was read).
fn drain<M>(
    chunks: &[&[u8]],
    mut feed: impl FnMut(&[u8]),
    mut next: impl FnMut() -> Result<Option<M>, DecodeError>,
) -> (usize, Option<DecodeError>) {
    let mut n = 0;
    for c in chunks {
        feed(c);
        loop {
            match next() {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(e) if read_as_values(&e) => {
                    // The row's frame was whole: the decoder carries on after it.
                    assert_eq!(next().err(), None, "a bad value stopped the decoder");
                    return (n, Some(e));
                }
                Err(e) => {
                    assert_eq!(next().err(), Some(e.clone()), "not sticky");
                    feed(b"more");
                    assert_eq!(next().err(), Some(e.clone()), "not sticky after more input");
                    return (n, Some(e));
                }
            }
        }
    }
    (n, None)
}

/// Reads every value of a row, as an application does: DataRow values are checked as they are
/// read, so a malformed value is reported here, with the same error a decoder would give.
fn read_values(mut columns: Columns<'_>) -> Result<(), DecodeError> {
    columns.try_for_each(|c| c.map(drop))
}

/// Whether `e` is the error of a DataRow value, found as the values are read rather than by the
/// decoder (so not sticky).
fn read_as_values(e: &DecodeError) -> bool {
    match *e {
        DecodeError::Truncated { message, field } => {
            (message, field) == ("DataRow", "column value")
        }
        DecodeError::TrailingBytes { message, .. } => message == "DataRow",
        DecodeError::InvalidCount { message, count, .. } => message == "DataRow" && count < 0,
        _ => false,
    }
}

/// How many whole messages precede the bad one in a case.
fn good_before(c: &Case) -> usize {
    match &c.want {
        DecodeError::DataAfterEnd { .. } => 1,
        _ => 0,
    }
}

#[test]
fn malformed_inputs_fail_with_the_exact_error() {
    let mut failures = Vec::new();
    for c in cases() {
        let whole: Vec<&[u8]> = vec![&c.bytes];
        let bytewise: Vec<&[u8]> = c.bytes.chunks(1).collect();
        for (how, chunks) in [("whole", &whole), ("byte by byte", &bytewise)] {
            let results = match c.ctx {
                Be30 | Be32 | BeSsl | BeGss => {
                    let d = std::cell::RefCell::new(backend(c.ctx));
                    let owned = drain(
                        chunks,
                        |b| d.borrow_mut().receive(b),
                        || match d.borrow_mut().next()? {
                            Some(BackendMessage::DataRow(row)) => {
                                read_values(row.columns()).map(Some)
                            }
                            other => Ok(other.map(drop)),
                        },
                    );
                    let d = std::cell::RefCell::new(backend(c.ctx));
                    let borrowed = drain(
                        chunks,
                        |b| d.borrow_mut().receive(b),
                        || match d.borrow_mut().next_ref()? {
                            Some(BackendMessage::DataRow(row)) => {
                                read_values(row.columns()).map(Some)
                            }
                            other => Ok(other.map(drop)),
                        },
                    );
                    // The row loop: `next_data_row` first; it must leave a bad row in place
                    // for `next_ref` to report.
                    let d = std::cell::RefCell::new(backend(c.ctx));
                    let rows = drain(
                        chunks,
                        |b| d.borrow_mut().receive(b),
                        || {
                            let mut d = d.borrow_mut();
                            if let Some(row) = d.next_data_row() {
                                return read_values(row.columns()).map(Some);
                            }
                            match d.next_ref()? {
                                Some(BackendMessage::DataRow(row)) => {
                                    read_values(row.columns()).map(Some)
                                }
                                other => Ok(other.map(drop)),
                            }
                        },
                    );
                    vec![
                        ("next", owned),
                        ("next_ref", borrowed),
                        ("next_data_row", rows),
                    ]
                }
                FeStartup | Fe(_) => {
                    let d = std::cell::RefCell::new(frontend(c.ctx));
                    let owned = drain(
                        chunks,
                        |b| d.borrow_mut().receive(b),
                        || d.borrow_mut().next(),
                    );
                    let d = std::cell::RefCell::new(frontend(c.ctx));
                    let borrowed = drain(
                        chunks,
                        |b| d.borrow_mut().receive(b),
                        || d.borrow_mut().next_ref().map(|r| r.map(|_| ())),
                    );
                    vec![("next", owned), ("next_ref", borrowed)]
                }
            };
            for (entry, got) in results {
                let want = (good_before(&c), Some(c.want.clone()));
                if got != want {
                    failures.push(format!(
                        "{} ({how}, {entry}): got {got:?}, want {want:?}",
                        c.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The one-frame decoding functions report the same errors as the stream decoders.
#[test]
fn frame_decoders_agree_with_stream_decoders() {
    for c in cases() {
        let body = || Bytes::copy_from_slice(&c.bytes[5..]);
        let got = match c.ctx {
            Be30 | Be32
                if c.bytes.len() >= 5 && !matches!(c.want, DecodeError::UnknownTag { .. }) =>
            {
                let version = match c.ctx {
                    Be32 => ProtocolVersion::V3_2,
                    _ => ProtocolVersion::V3_0,
                };
                if c.bytes[0] == b'D' {
                    let by_ref = DataRow::decode(&c.bytes[5..]);
                    let by_ref = by_ref.and_then(|row| read_values(row.columns()));
                    assert_eq!(by_ref.err(), Some(c.want.clone()), "{}", c.name);
                }
                match BackendMessage::decode(c.bytes[0], &body(), version) {
                    Ok(BackendMessage::DataRow(row)) => read_values(row.columns()).err(),
                    other => other.err(),
                }
            }
            Fe(kind) if c.bytes.len() >= 5 && !matches!(c.want, DecodeError::UnknownTag { .. }) => {
                let b = &c.bytes[5..];
                let by_ref = match c.bytes[0] {
                    b'P' => Parse::decode(b).err(),
                    b'B' => Bind::decode(b).err(),
                    b'D' => Describe::decode(b).err(),
                    b'E' => Execute::decode(b).err(),
                    _ => Some(c.want.clone()),
                };
                assert_eq!(by_ref, Some(c.want.clone()), "{}", c.name);
                FrontendMessage::decode(c.bytes[0], &body(), kind).err()
            }
            FeStartup if !matches!(c.want, DecodeError::DataAfterEnd { .. }) => {
                FrontendMessage::decode_startup(&Bytes::copy_from_slice(&c.bytes)).err()
            }
            _ => continue,
        };
        assert_eq!(got, Some(c.want.clone()), "{}", c.name);
    }
}

#[test]
fn backend_key_data_key_lengths_by_version() {
    for len in [4usize, 5, 32, 255, 256] {
        let bytes = frame(b'K', &b().i32(7).raw(&vec![3; len]).build());
        let mut d = backend(Be32);
        d.receive(&bytes);
        let Ok(Some(BackendMessage::BackendKeyData(k))) = d.next() else {
            panic!("{len}-byte key refused under 3.2");
        };
        assert_eq!(k.process_id(), 7);
        assert_eq!(k.secret_key(), &vec![3; len][..]);
        let mut d = backend(Be30);
        d.receive(&bytes);
        if len == 4 {
            assert!(matches!(
                d.next(),
                Ok(Some(BackendMessage::BackendKeyData(_)))
            ));
        } else {
            assert_eq!(d.next(), Err(length("BackendKeyData", len as i64 + 8)));
        }
    }
    // The version can change mid-stream, as it does after NegotiateProtocolVersion.
    let mut d = BackendDecoder::new();
    d.set_protocol_version(ProtocolVersion::V3_2);
    d.receive(&frame(b'K', &b().i32(1).raw(&[1; 32]).build()));
    assert!(matches!(
        d.next(),
        Ok(Some(BackendMessage::BackendKeyData(_)))
    ));
    d.set_protocol_version(ProtocolVersion::V3_0);
    d.receive(&frame(b'K', &b().i32(1).raw(&[1; 32]).build()));
    assert_eq!(d.next(), Err(length("BackendKeyData", 40)));
}

#[test]
fn error_response_where_an_ssl_answer_is_expected() {
    let body = b()
        .u8(b'S')
        .cstr(b"FATAL")
        .u8(b'C')
        .cstr(b"08P01")
        .u8(b'M')
        .cstr(b"unsupported")
        .u8(0)
        .build();
    for ctx in [BeSsl, BeGss] {
        let bytes = frame(b'E', &body);
        // Whole, byte by byte, and through next_ref.
        let mut d = backend(ctx);
        d.receive(&bytes);
        let Ok(Some(BackendMessage::ErrorResponse(e))) = d.next() else {
            panic!("not an ErrorResponse");
        };
        assert_eq!(e.code(), Some(&b"08P01"[..]));
        assert_eq!(e.severity(), Some(&b"FATAL"[..]));
        assert_eq!(d.next(), Ok(None));

        let mut d = backend(ctx);
        let mut got = Vec::new();
        for byte in &bytes {
            d.receive(&[*byte]);
            while let Some(m) = d.next().unwrap() {
                got.push(m);
            }
        }
        assert!(
            matches!(&got[..], [BackendMessage::ErrorResponse(_)]),
            "{got:?}"
        );

        let mut d = backend(ctx);
        d.receive(&bytes);
        assert!(matches!(
            d.next_ref(),
            Ok(Some(BackendMessage::ErrorResponse(_)))
        ));
    }
    // S / N / G / N are single bytes; anything after them is framed normally.
    let mut d = backend(BeSsl);
    d.receive(b"N");
    d.receive(&frame(b'Z', b"I"));
    assert_eq!(
        d.next(),
        Ok(Some(BackendMessage::SslResponse { accepted: false }))
    );
    assert_eq!(
        d.next(),
        Ok(Some(BackendMessage::ReadyForQuery(
            pgproto::TransactionStatus::Idle
        )))
    );
    // After 'S' the TLS handshake bytes stay buffered, untouched, for the caller to take.
    let mut d = backend(BeSsl);
    d.receive(b"S\x16\x03\x01\x02\x00");
    assert_eq!(
        d.next(),
        Ok(Some(BackendMessage::SslResponse { accepted: true }))
    );
    assert_eq!(&d.take_buffered()[..], b"\x16\x03\x01\x02\x00");
}

// ---------------------------------------------------------------------------------------------
// Display: lowercase first, no final period
// ---------------------------------------------------------------------------------------------

fn check_display(e: &DecodeError) {
    let s = e.to_string();
    let first = s.chars().next().expect("empty message");
    assert!(!first.is_uppercase(), "starts with a capital: {s:?}");
    assert!(!s.ends_with('.'), "ends with a period: {s:?}");
    assert!(
        !s.ends_with(' ') && !s.starts_with(' '),
        "stray space: {s:?}"
    );
}

#[test]
fn every_decode_error_displays_lowercase_without_period() {
    let all = [
        DecodeError::UnknownTag { tag: Tag(b'Q') },
        DecodeError::UnknownTag { tag: Tag(0) },
        length("ReadyForQuery", 3),
        length("start-up packet", -1),
        DecodeError::TooLong {
            message: "CommandComplete",
            len: 40_000,
            max: 30_000,
        },
        truncated("DataRow", "column value"),
        trailing("ReadyForQuery", 1),
        missing_nul("Query", "query string"),
        count("DataRow", "column value", -2),
        value("ReadyForQuery", "transaction status", 88),
        DecodeError::DataAfterEnd {
            message: "CancelRequest",
        },
        DecodeError::InvalidUtf8 { field: "value" },
    ];
    for e in &all {
        check_display(e);
    }
    for c in cases() {
        check_display(&c.want);
    }
}

#[test]
fn display_names_the_message_and_field() {
    let s = truncated("DataRow", "column value").to_string();
    assert!(s.contains("DataRow") && s.contains("column value"), "{s}");
    let s = missing_nul("Query", "query string").to_string();
    assert!(s.contains("Query") && s.contains("query string"), "{s}");
    let s = value("ReadyForQuery", "transaction status", 88).to_string();
    assert!(
        s.contains("ReadyForQuery") && s.contains("transaction status") && s.contains("88"),
        "{s}"
    );
    let s = count("DataRow", "column value", -2).to_string();
    assert!(
        s.contains("DataRow") && s.contains("column value") && s.contains("-2"),
        "{s}"
    );
    let s = trailing("Sync", 3).to_string();
    assert!(s.contains("Sync") && s.contains('3'), "{s}");
    let s = DecodeError::TooLong {
        message: "Query",
        len: 2000,
        max: 1000,
    }
    .to_string();
    assert!(
        s.contains("Query") && s.contains("2000") && s.contains("1000"),
        "{s}"
    );
    assert_eq!(
        DecodeError::UnknownTag { tag: Tag(b'!') }.to_string(),
        "unknown message type '!'"
    );
}
