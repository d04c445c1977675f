//! Unit tests of the trace module: the formatter against lines libpq 18.6's own `fe-trace.c`
//! printed for the same bytes (its object file fed these frames; see `tests/README.md`), and
//! the tracer's framing.

use std::sync::{Arc, Mutex};

use super::*;
use crate::AuthResponseKind;

const F: Direction = Direction::Frontend;
const B: Direction = Direction::Backend;

type Case = (
    bool,
    Direction,
    &'static [u8],
    Option<AuthResponseKind>,
    &'static [&'static [u8]],
);

/// Tagged messages: (regress mode, direction, frame, what a `p` answers, libpq's lines).
const TAGGED: &[Case] = &[
    // a query string raw: tab and UTF-8 bytes as they are (plain)
    (false, F, b"Q\x00\x00\x00\x17select 'a\tb', '\xc3\xa9'\x00", None, &[b"F\t23\tQuery\t \"select 'a\tb', '\xc3\xa9'\""]),
    // a query string raw: tab and UTF-8 bytes as they are (regress)
    (true, F, b"Q\x00\x00\x00\x17select 'a\tb', '\xc3\xa9'\x00", None, &[b"F\t23\tQuery\t \"select 'a\tb', '\xc3\xa9'\""]),
    // Sync: no tab after the name (plain)
    (false, F, b"S\x00\x00\x00\x04", None, &[b"F\t4\tSync"]),
    // Sync: no tab after the name (regress)
    (true, F, b"S\x00\x00\x00\x04", None, &[b"F\t4\tSync"]),
    // ParseComplete (plain)
    (false, B, b"1\x00\x00\x00\x04", None, &[b"B\t4\tParseComplete"]),
    // ParseComplete (regress)
    (true, B, b"1\x00\x00\x00\x04", None, &[b"B\t4\tParseComplete"]),
    // RowDescription: a type size of -1 prints as 65535 (plain)
    (false, B, b"T\x00\x00\x009\x00\x02?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00bytea\x00\x00\x00@\x00\x00\x02\x00\x00\x00\x11\xff\xff\xff\xff\xff\xff\x00\x01", None, &[b"B\t57\tRowDescription\t 2 \"?column?\" 0 0 23 4 -1 0 \"bytea\" 16384 2 17 65535 -1 1"]),
    // RowDescription: a type size of -1 prints as 65535 (regress)
    (true, B, b"T\x00\x00\x009\x00\x02?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00bytea\x00\x00\x00@\x00\x00\x02\x00\x00\x00\x11\xff\xff\xff\xff\xff\xff\x00\x01", None, &[b"B\t57\tRowDescription\t 2 \"?column?\" NNNN 0 NNNN 4 -1 0 \"bytea\" NNNN 2 NNNN 65535 -1 1"]),
    // DataRow: 0x20-0x7e as they are, the rest as lowercase \xNN, NULL as -1 (plain)
    (false, B, b"D\x00\x00\x00\x1b\x00\x03\x00\x00\x00\x05a\\ ~\x7f\xff\xff\xff\xff\x00\x00\x00\x04\x00\x80\x1f\xff", None, &[b"B\t27\tDataRow\t 3 5 'a\\ ~\\x7f' -1 4 '\\x00\\x80\\x1f\\xff'"]),
    // DataRow: 0x20-0x7e as they are, the rest as lowercase \xNN, NULL as -1 (regress)
    (true, B, b"D\x00\x00\x00\x1b\x00\x03\x00\x00\x00\x05a\\ ~\x7f\xff\xff\xff\xff\x00\x00\x00\x04\x00\x80\x1f\xff", None, &[b"B\t27\tDataRow\t 3 5 'a\\ ~\\x7f' -1 4 '\\x00\\x80\\x1f\\xff'"]),
    // Bind with text and binary parameters (plain)
    (false, F, b"B\x00\x00\x00\x1fp\x00s\x00\x00\x02\x00\x00\x00\x01\x00\x02\x00\x00\x00\x017\x00\x00\x00\x02\x00\x05\x00\x01\x00\x01", None, &[b"F\t31\tBind\t \"p\" \"s\" 2 0 1 2 1 '7' 2 '\\x00\\x05' 1 1"]),
    // Bind with text and binary parameters (regress)
    (true, F, b"B\x00\x00\x00\x1fp\x00s\x00\x00\x02\x00\x00\x00\x01\x00\x02\x00\x00\x00\x017\x00\x00\x00\x02\x00\x05\x00\x01\x00\x01", None, &[b"F\t31\tBind\t \"p\" \"s\" 2 0 1 2 1 '7' 2 '\\x00\\x05' 1 1"]),
    // Parse with parameter types (plain)
    (false, F, b"P\x00\x00\x00\x19\x00select $1\x00\x00\x02\x00\x00\x00\x17\x00\x00\x00\x00", None, &[b"F\t25\tParse\t \"\" \"select $1\" 2 23 0"]),
    // Parse with parameter types (regress)
    (true, F, b"P\x00\x00\x00\x19\x00select $1\x00\x00\x02\x00\x00\x00\x17\x00\x00\x00\x00", None, &[b"F\t25\tParse\t \"\" \"select $1\" 2 NNNN NNNN"]),
    // Describe portal (plain)
    (false, F, b"D\x00\x00\x00\x06P\x00", None, &[b"F\t6\tDescribe\t P \"\""]),
    // Describe portal (regress)
    (true, F, b"D\x00\x00\x00\x06P\x00", None, &[b"F\t6\tDescribe\t P \"\""]),
    // Execute with a row limit (plain)
    (false, F, b"E\x00\x00\x00\t\x00\x00\x00\x00\x02", None, &[b"F\t9\tExecute\t \"\" 2"]),
    // Execute with a row limit (regress)
    (true, F, b"E\x00\x00\x00\t\x00\x00\x00\x00\x02", None, &[b"F\t9\tExecute\t \"\" 2"]),
    // Close statement (plain)
    (false, F, b"C\x00\x00\x00\x08Sst\x00", None, &[b"F\t8\tClose\t S \"st\""]),
    // Close statement (regress)
    (true, F, b"C\x00\x00\x00\x08Sst\x00", None, &[b"F\t8\tClose\t S \"st\""]),
    // Flush (plain)
    (false, F, b"H\x00\x00\x00\x04", None, &[b"F\t4\tFlush"]),
    // Flush (regress)
    (true, F, b"H\x00\x00\x00\x04", None, &[b"F\t4\tFlush"]),
    // CopyOutResponse (plain)
    (false, B, b"H\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00", None, &[b"B\t11\tCopyOutResponse\t \\x00 2 0 0"]),
    // CopyOutResponse (regress)
    (true, B, b"H\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00", None, &[b"B\t11\tCopyOutResponse\t \\x00 2 0 0"]),
    // CopyInResponse, binary: the format byte as \x01 (plain)
    (false, B, b"G\x00\x00\x00\t\x01\x00\x01\x00\x01", None, &[b"B\t9\tCopyInResponse\t \\x01 1 1"]),
    // CopyInResponse, binary: the format byte as \x01 (regress)
    (true, B, b"G\x00\x00\x00\t\x01\x00\x01\x00\x01", None, &[b"B\t9\tCopyInResponse\t \\x01 1 1"]),
    // CopyBothResponse: every Int16, the count too (plain)
    (false, B, b"W\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00", None, &[b"B\t11\tCopyBothResponse\t \\x00 2 0 0"]),
    // CopyBothResponse: every Int16, the count too (regress)
    (true, B, b"W\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00", None, &[b"B\t11\tCopyBothResponse\t \\x00 2 0 0"]),
    // CopyData (plain)
    (false, F, b"d\x00\x00\x00\n1\tone\n", None, &[b"F\t10\tCopyData\t '1\\x09one\\x0a'"]),
    // CopyData (regress)
    (true, F, b"d\x00\x00\x00\n1\tone\n", None, &[b"F\t10\tCopyData\t 'BBBB'"]),
    // CopyDone (plain)
    (false, F, b"c\x00\x00\x00\x04", None, &[b"F\t4\tCopyDone"]),
    // CopyDone (regress)
    (true, F, b"c\x00\x00\x00\x04", None, &[b"F\t4\tCopyDone"]),
    // CopyFail (plain)
    (false, F, b"f\x00\x00\x00\x07no\x00", None, &[b"F\t7\tCopyFail\t \"no\""]),
    // CopyFail (regress)
    (true, F, b"f\x00\x00\x00\x07no\x00", None, &[b"F\t7\tCopyFail\t \"no\""]),
    // CommandComplete (plain)
    (false, B, b"C\x00\x00\x00\x0dSELECT 1\x00", None, &[b"B\t13\tCommandComplete\t \"SELECT 1\""]),
    // CommandComplete (regress)
    (true, B, b"C\x00\x00\x00\x0dSELECT 1\x00", None, &[b"B\t13\tCommandComplete\t \"SELECT 1\""]),
    // EmptyQueryResponse (plain)
    (false, B, b"I\x00\x00\x00\x04", None, &[b"B\t4\tEmptyQueryResponse"]),
    // EmptyQueryResponse (regress)
    (true, B, b"I\x00\x00\x00\x04", None, &[b"B\t4\tEmptyQueryResponse"]),
    // PortalSuspended (plain)
    (false, B, b"s\x00\x00\x00\x04", None, &[b"B\t4\tPortalSuspended"]),
    // PortalSuspended (regress)
    (true, B, b"s\x00\x00\x00\x04", None, &[b"B\t4\tPortalSuspended"]),
    // NoData (plain)
    (false, B, b"n\x00\x00\x00\x04", None, &[b"B\t4\tNoData"]),
    // NoData (regress)
    (true, B, b"n\x00\x00\x00\x04", None, &[b"B\t4\tNoData"]),
    // CloseComplete (plain)
    (false, B, b"3\x00\x00\x00\x04", None, &[b"B\t4\tCloseComplete"]),
    // CloseComplete (regress)
    (true, B, b"3\x00\x00\x00\x04", None, &[b"B\t4\tCloseComplete"]),
    // BindComplete (plain)
    (false, B, b"2\x00\x00\x00\x04", None, &[b"B\t4\tBindComplete"]),
    // BindComplete (regress)
    (true, B, b"2\x00\x00\x00\x04", None, &[b"B\t4\tBindComplete"]),
    // ParameterDescription (plain)
    (false, B, b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19", None, &[b"B\t14\tParameterDescription\t 2 23 25"]),
    // ParameterDescription (regress)
    (true, B, b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19", None, &[b"B\t14\tParameterDescription\t 2 NNNN NNNN"]),
    // ParameterStatus (plain)
    (false, B, b"S\x00\x00\x00\x15TimeZone\x00Etc/UTC\x00", None, &[b"B\t21\tParameterStatus\t \"TimeZone\" \"Etc/UTC\""]),
    // ParameterStatus (regress)
    (true, B, b"S\x00\x00\x00\x15TimeZone\x00Etc/UTC\x00", None, &[b"B\t21\tParameterStatus\t \"TimeZone\" \"Etc/UTC\""]),
    // ErrorResponse: the final NUL as \x00 (plain)
    (false, B, b"E\x00\x00\x00ASERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00Fint.c\x00L842\x00Rint4div\x00\x00", None, &[b"B\t65\tErrorResponse\t S \"ERROR\" V \"ERROR\" C \"22012\" M \"division by zero\" F \"int.c\" L \"842\" R \"int4div\" \\x00"]),
    // ErrorResponse: the final NUL as \x00 (regress)
    (true, B, b"E\x00\x00\x00ASERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00Fint.c\x00L842\x00Rint4div\x00\x00", None, &[b"B\tNN\tErrorResponse\t S \"ERROR\" V \"ERROR\" C \"22012\" M \"division by zero\" F \"SSSS\" L \"SSSS\" R \"SSSS\" \\x00"]),
    // NoticeResponse (plain)
    (false, B, b"N\x00\x00\x00\x11SNOTICE\x00Mhi\x00\x00", None, &[b"B\t17\tNoticeResponse\t S \"NOTICE\" M \"hi\" \\x00"]),
    // NoticeResponse (regress)
    (true, B, b"N\x00\x00\x00\x11SNOTICE\x00Mhi\x00\x00", None, &[b"B\tNN\tNoticeResponse\t S \"NOTICE\" M \"hi\" \\x00"]),
    // NotificationResponse (plain)
    (false, B, b"A\x00\x00\x00\x15\x00\x00\x10\x92chan\x00payload\x00", None, &[b"B\t21\tNotificationResponse\t 4242 \"chan\" \"payload\""]),
    // NotificationResponse (regress)
    (true, B, b"A\x00\x00\x00\x15\x00\x00\x10\x92chan\x00payload\x00", None, &[b"B\t21\tNotificationResponse\t NNNN \"chan\" \"payload\""]),
    // ReadyForQuery (plain)
    (false, B, b"Z\x00\x00\x00\x05T", None, &[b"B\t5\tReadyForQuery\t T"]),
    // ReadyForQuery (regress)
    (true, B, b"Z\x00\x00\x00\x05T", None, &[b"B\t5\tReadyForQuery\t T"]),
    // BackendKeyData: a 4-byte key as quoted bytes (libpq 18.6) (plain)
    (false, B, b"K\x00\x00\x00\x0c\x00\x00I}\xfb\xad\\\xed", None, &[b"B\t12\tBackendKeyData\t 18813 '\\xfb\\xad\\\\xed'"]),
    // BackendKeyData: a 4-byte key as quoted bytes (libpq 18.6) (regress)
    (true, B, b"K\x00\x00\x00\x0c\x00\x00I}\xfb\xad\\\xed", None, &[b"B\t12\tBackendKeyData\t NNNN 'BBBB'"]),
    // BackendKeyData: a 32-byte key of protocol 3.2 (plain)
    (false, B, b"K\x00\x00\x00(\x00\x00\x00\x07\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=", None, &[b"B\t40\tBackendKeyData\t 7 '\\x1e\\x1f !\"#$%&'()*+,-./0123456789:;<='"]),
    // BackendKeyData: a 32-byte key of protocol 3.2 (regress)
    (true, B, b"K\x00\x00\x00(\x00\x00\x00\x07\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=", None, &[b"B\t40\tBackendKeyData\t NNNN 'BBBB'"]),
    // AuthenticationOk (plain)
    (false, B, b"R\x00\x00\x00\x08\x00\x00\x00\x00", None, &[b"B\t8\tAuthenticationOk"]),
    // AuthenticationOk (regress)
    (true, B, b"R\x00\x00\x00\x08\x00\x00\x00\x00", None, &[b"B\t8\tAuthenticationOk"]),
    // AuthenticationCleartextPassword (plain)
    (false, B, b"R\x00\x00\x00\x08\x00\x00\x00\x03", None, &[b"B\t8\tAuthenticationCleartextPassword"]),
    // AuthenticationCleartextPassword (regress)
    (true, B, b"R\x00\x00\x00\x08\x00\x00\x00\x03", None, &[b"B\t8\tAuthenticationCleartextPassword"]),
    // AuthenticationSASL: the mechanisms and the empty string ending them (plain)
    (false, B, b"R\x00\x00\x00*\x00\x00\x00\nSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00", None, &[b"B\t42\tAuthenticationSASL\t \"SCRAM-SHA-256-PLUS\" \"SCRAM-SHA-256\" \"\""]),
    // AuthenticationSASL: the mechanisms and the empty string ending them (regress)
    (true, B, b"R\x00\x00\x00*\x00\x00\x00\nSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00", None, &[b"B\t42\tAuthenticationSASL\t \"SCRAM-SHA-256-PLUS\" \"SCRAM-SHA-256\" \"\""]),
    // AuthenticationSASLContinue (plain)
    (false, B, b"R\x00\x00\x00\x1a\x00\x00\x00\x0br=abc,s=x==,i=4096", None, &[b"B\t26\tAuthenticationSASLContinue\t 'r=abc,s=x==,i=4096'"]),
    // AuthenticationSASLContinue (regress)
    (true, B, b"R\x00\x00\x00\x1a\x00\x00\x00\x0br=abc,s=x==,i=4096", None, &[b"B\t26\tAuthenticationSASLContinue\t 'BBBB'"]),
    // AuthenticationSASLFinal (plain)
    (false, B, b"R\x00\x00\x00\x0e\x00\x00\x00\x0cv=sig=", None, &[b"B\t14\tAuthenticationSASLFinal\t 'v=sig='"]),
    // AuthenticationSASLFinal (regress)
    (true, B, b"R\x00\x00\x00\x0e\x00\x00\x00\x0cv=sig=", None, &[b"B\t14\tAuthenticationSASLFinal\t 'BBBB'"]),
    // AuthenticationGSS (plain)
    (false, B, b"R\x00\x00\x00\x08\x00\x00\x00\x07", None, &[b"B\t8\tAuthenticationGSS"]),
    // AuthenticationGSS (regress)
    (true, B, b"R\x00\x00\x00\x08\x00\x00\x00\x07", None, &[b"B\t8\tAuthenticationGSS"]),
    // AuthenticationGSSContinue (plain)
    (false, B, b"R\x00\x00\x00\n\x00\x00\x00\x08`\x01", None, &[b"B\t10\tAuthenticationGSSContinue\t '`\\x01'"]),
    // AuthenticationGSSContinue (regress)
    (true, B, b"R\x00\x00\x00\n\x00\x00\x00\x08`\x01", None, &[b"B\t10\tAuthenticationGSSContinue\t 'BBBB'"]),
    // AuthenticationSSPI (plain)
    (false, B, b"R\x00\x00\x00\x08\x00\x00\x00\t", None, &[b"B\t8\tAuthenticationSSPI"]),
    // AuthenticationSSPI (regress)
    (true, B, b"R\x00\x00\x00\x08\x00\x00\x00\t", None, &[b"B\t8\tAuthenticationSSPI"]),
    // an unknown authentication request (plain)
    (false, B, b"R\x00\x00\x00\x08\x00\x00\x00*", None, &[b"B\t8\tUnknown authentication message 42"]),
    // an unknown authentication request (regress)
    (true, B, b"R\x00\x00\x00\x08\x00\x00\x00*", None, &[b"B\t8\tUnknown authentication message 42"]),
    // PasswordMessage (plain)
    (false, F, b"p\x00\x00\x00\x0bsecret\x00", Some(AuthResponseKind::Password), &[b"F\t11\tPasswordMessage\t \"secret\""]),
    // PasswordMessage (regress)
    (true, F, b"p\x00\x00\x00\x0bsecret\x00", Some(AuthResponseKind::Password), &[b"F\t11\tPasswordMessage\t \"secret\""]),
    // SASLInitialResponse (plain)
    (false, F, b"p\x00\x00\x00\x1eSCRAM-SHA-256\x00\x00\x00\x00\x08n,,n=,r=", Some(AuthResponseKind::SaslInitial), &[b"F\t30\tSASLInitialResponse\t \"SCRAM-SHA-256\" 8 'n,,n=,r='"]),
    // SASLInitialResponse (regress)
    (true, F, b"p\x00\x00\x00\x1eSCRAM-SHA-256\x00\x00\x00\x00\x08n,,n=,r=", Some(AuthResponseKind::SaslInitial), &[b"F\t30\tSASLInitialResponse\t \"SCRAM-SHA-256\" 8 'BBBB'"]),
    // SASLInitialResponse without data (plain)
    (false, F, b"p\x00\x00\x00\x16SCRAM-SHA-256\x00\xff\xff\xff\xff", Some(AuthResponseKind::SaslInitial), &[b"F\t22\tSASLInitialResponse\t \"SCRAM-SHA-256\" -1"]),
    // SASLInitialResponse without data (regress)
    (true, F, b"p\x00\x00\x00\x16SCRAM-SHA-256\x00\xff\xff\xff\xff", Some(AuthResponseKind::SaslInitial), &[b"F\t22\tSASLInitialResponse\t \"SCRAM-SHA-256\" -1"]),
    // SASLResponse (plain)
    (false, F, b"p\x00\x00\x00\x0ec=biws,p=x", Some(AuthResponseKind::Sasl), &[b"F\t14\tSASLResponse\t 'c=biws,p=x'"]),
    // SASLResponse (regress)
    (true, F, b"p\x00\x00\x00\x0ec=biws,p=x", Some(AuthResponseKind::Sasl), &[b"F\t14\tSASLResponse\t 'BBBB'"]),
    // GSSResponse (plain)
    (false, F, b"p\x00\x00\x00\x06`\x82", Some(AuthResponseKind::Gss), &[b"F\t6\tGSSResponse\t '`\\x82'"]),
    // GSSResponse (regress)
    (true, F, b"p\x00\x00\x00\x06`\x82", Some(AuthResponseKind::Gss), &[b"F\t6\tGSSResponse\t 'BBBB'"]),
    // FunctionCall (plain)
    (false, F, b"F\x00\x00\x00\x1c\x00\x00\x03\xba\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff\x00\x01", None, &[b"F\t28\tFunctionCall\t 954 1 1 2 4 '\\x00\\x00\\x00\\x07' -1 1"]),
    // FunctionCall (regress)
    (true, F, b"F\x00\x00\x00\x1c\x00\x00\x03\xba\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff\x00\x01", None, &[b"F\t28\tFunctionCall\t NNNN 1 1 2 4 '\\x00\\x00\\x00\\x07' -1 1"]),
    // FunctionCallResponse (plain)
    (false, B, b"V\x00\x00\x00\x0b\x00\x00\x00\x03a\x00b", None, &[b"B\t11\tFunctionCallResponse\t 3 'a\\x00b'"]),
    // FunctionCallResponse (regress)
    (true, B, b"V\x00\x00\x00\x0b\x00\x00\x00\x03a\x00b", None, &[b"B\t11\tFunctionCallResponse\t 3 'a\\x00b'"]),
    // FunctionCallResponse NULL (plain)
    (false, B, b"V\x00\x00\x00\x08\xff\xff\xff\xff", None, &[b"B\t8\tFunctionCallResponse\t -1"]),
    // FunctionCallResponse NULL (regress)
    (true, B, b"V\x00\x00\x00\x08\xff\xff\xff\xff", None, &[b"B\t8\tFunctionCallResponse\t -1"]),
    // NegotiateProtocolVersion with an option (plain)
    (false, B, b"v\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x01_pq_.x\x00", None, &[b"B\t19\tNegotiateProtocolVersion\t 196608 1 \"_pq_.x\""]),
    // NegotiateProtocolVersion with an option (regress)
    (true, B, b"v\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x01_pq_.x\x00", None, &[b"B\t19\tNegotiateProtocolVersion\t 196608 1 \"_pq_.x\""]),
    // Terminate (plain)
    (false, F, b"X\x00\x00\x00\x04", None, &[b"F\t4\tTerminate"]),
    // Terminate (regress)
    (true, F, b"X\x00\x00\x00\x04", None, &[b"F\t4\tTerminate"]),
    // an unknown type byte (plain)
    (false, B, b"x\x00\x00\x00\x04", None, &[b"B\t4\tUnknown message: 78"]),
    // an unknown type byte (regress)
    (true, B, b"x\x00\x00\x00\x04", None, &[b"B\t4\tUnknown message: 78"]),
    // an unknown type byte above 0x7f prints sign-extended, as libpq (plain)
    (false, B, b"\x80\x00\x00\x00\x04", None, &[b"B\t4\tUnknown message: ffffff80"]),
    // an unknown type byte above 0x7f prints sign-extended, as libpq (regress)
    (true, B, b"\x80\x00\x00\x00\x04", None, &[b"B\t4\tUnknown message: ffffff80"]),
    // a body longer than its fields: libpq's second line (plain)
    (false, B, b"Z\x00\x00\x00\x06I!", None, &[b"B\t6\tReadyForQuery\t I", b"mismatched message length: consumed 5, expected 6"]),
    // a body longer than its fields: libpq's second line (regress)
    (true, B, b"Z\x00\x00\x00\x06I!", None, &[b"B\t6\tReadyForQuery\t I", b"mismatched message length: consumed 5, expected 6"]),
];

/// A start-up packet: (regress mode, packet, libpq's lines).
type UntaggedCase = (bool, &'static [u8], &'static [&'static [u8]]);

/// Start-up packets.
const UNTAGGED: &[UntaggedCase] = &[
    // StartupMessage: values raw, never hidden (plain)
    (false, b"\x00\x00\x001\x00\x03\x00\x00user\x00alice\x00database\x00app\x00options\x00-c a=\xc3\xa9\x00\x00", &[b"F\t49\tStartupMessage\t 3 0 \"user\" \"alice\" \"database\" \"app\" \"options\" \"-c a=\xc3\xa9\""]),
    // StartupMessage: values raw, never hidden (regress)
    (true, b"\x00\x00\x001\x00\x03\x00\x00user\x00alice\x00database\x00app\x00options\x00-c a=\xc3\xa9\x00\x00", &[b"F\t49\tStartupMessage\t 3 0 \"user\" \"alice\" \"database\" \"app\" \"options\" \"-c a=\xc3\xa9\""]),
    // StartupMessage asking for protocol 3.2 (plain)
    (false, b"\x00\x00\x00\x10\x00\x03\x00\x02user\x00u\x00\x00", &[b"F\t16\tStartupMessage\t 3 2 \"user\" \"u\""]),
    // StartupMessage asking for protocol 3.2 (regress)
    (true, b"\x00\x00\x00\x10\x00\x03\x00\x02user\x00u\x00\x00", &[b"F\t16\tStartupMessage\t 3 2 \"user\" \"u\""]),
    // SSLRequest (plain)
    (false, b"\x00\x00\x00\x08\x04\xd2\x16/", &[b"F\t8\tSSLRequest\t 1234 5679"]),
    // SSLRequest (regress)
    (true, b"\x00\x00\x00\x08\x04\xd2\x16/", &[b"F\t8\tSSLRequest\t 1234 5679"]),
    // GSSENCRequest (plain)
    (false, b"\x00\x00\x00\x08\x04\xd2\x160", &[b"F\t8\tGSSENCRequest\t 1234 5680"]),
    // GSSENCRequest (regress)
    (true, b"\x00\x00\x00\x08\x04\xd2\x160", &[b"F\t8\tGSSENCRequest\t 1234 5680"]),
    // CancelRequest: the key as quoted bytes (plain)
    (false, b"\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x10\x92\x01\\a\xff", &[b"F\t16\tCancelRequest\t 1234 5678 4242 '\\x01\\a\\xff'"]),
    // CancelRequest: the key as quoted bytes (regress)
    (true, b"\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x10\x92\x01\\a\xff", &[b"F\t16\tCancelRequest\t 1234 5678 NNNN 'BBBB'"]),
    // CancelRequest with a 32-byte key (plain)
    (false, b"\x00\x00\x00,\x04\xd2\x16.\x00\x00\x10\x92pqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f", &[b"F\t44\tCancelRequest\t 1234 5678 4242 'pqrstuvwxyz{|}~\\x7f\\x80\\x81\\x82\\x83\\x84\\x85\\x86\\x87\\x88\\x89\\x8a\\x8b\\x8c\\x8d\\x8e\\x8f'"]),
    // CancelRequest with a 32-byte key (regress)
    (true, b"\x00\x00\x00,\x04\xd2\x16.\x00\x00\x10\x92pqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f", &[b"F\t44\tCancelRequest\t 1234 5678 NNNN 'BBBB'"]),
    // a packet shorter than 8 bytes (plain)
    (false, b"\x00\x00\x00\x06\x00\x03", &[b"F\t6\tUnknown message"]),
    // a packet shorter than 8 bytes (regress)
    (true, b"\x00\x00\x00\x06\x00\x03", &[b"F\t6\tUnknown message"]),
];

fn flags(regress: bool) -> TraceFlags {
    if regress {
        TraceFlags::REGRESS_MODE
    } else {
        TraceFlags::empty()
    }
}

fn show(lines: &[Vec<u8>]) -> String {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn tagged_messages_render_as_libpq_18_6() {
    for &(regress, direction, frame, auth, expected) in TAGGED {
        let mut line = Vec::new();
        let extra = Formatter::new(flags(regress)).message(&mut line, direction, frame, auth);
        let mut got = vec![line];
        got.extend(extra.map(|m| m.to_string().into_bytes()));
        let want: Vec<Vec<u8>> = expected.iter().map(|l| l.to_vec()).collect();
        assert_eq!(
            show(&got),
            show(&want),
            "frame {frame:?}, regress {regress}"
        );
        assert_eq!(got, want);
    }
}

#[test]
fn startup_packets_render_as_libpq_18_6() {
    for &(regress, packet, expected) in UNTAGGED {
        let mut line = Vec::new();
        Formatter::new(flags(regress)).startup_packet(&mut line, packet);
        assert_eq!(show(&[line.clone()]), show(&[expected[0].to_vec()]));
        assert_eq!(expected.len(), 1);
    }
}

#[test]
fn encryption_answers_render_as_libpq_18_6() {
    let f = Formatter::new(TraceFlags::empty());
    let mut line = Vec::new();
    f.ssl_response(&mut line, b'S');
    assert_eq!(line, b"B\t1\tSSLResponse\t S");
    line.clear();
    f.gssenc_response(&mut line, b'N');
    assert_eq!(line, b"B\t1\tGSSENCResponse\t N");
}

#[test]
fn md5_request_keeps_to_one_line() {
    // libpq 18.6 adds "mismatched message length: consumed 8, expected 12" here.
    let mut line = Vec::new();
    let extra = Formatter::new(TraceFlags::empty()).message(
        &mut line,
        B,
        b"R\0\0\0\x0c\0\0\0\x05salt",
        None,
    );
    assert_eq!(line, b"B\t12\tAuthenticationMD5Password");
    assert_eq!(extra, None);
}

#[test]
fn malformed_messages_stop_at_their_end() {
    let f = Formatter::new(TraceFlags::empty());
    // A string without its NUL.
    let mut line = Vec::new();
    let extra = f.message(&mut line, F, b"Q\0\0\0\x07abc", None);
    assert_eq!(line, b"F\t7\tQuery\t");
    assert_eq!(
        extra,
        Some(LengthMismatch {
            consumed: 8,
            expected: 7
        })
    );
    // DataRow claiming 65,535 columns in 6 bytes: stops at the end, no panic.
    line.clear();
    let extra = f.message(&mut line, B, b"D\0\0\0\x0a\xff\xff\0\0\0\x01", None);
    assert_eq!(line, b"B\t10\tDataRow\t 65535 1 '".to_vec());
    assert_eq!(
        extra,
        Some(LengthMismatch {
            consumed: 11,
            expected: 10
        })
    );
    // A negative value length other than -1.
    line.clear();
    let extra = f.message(&mut line, B, b"V\0\0\0\x08\xff\xff\xff\xfe", None);
    assert_eq!(line, b"B\t8\tFunctionCallResponse\t -2 ''");
    assert_eq!(
        extra,
        Some(LengthMismatch {
            consumed: 6,
            expected: 8
        })
    );
    // Every prefix of every sample frame: no panic, and the line starts as the whole one.
    for &(regress, direction, frame, auth, _) in TAGGED {
        for cut in 0..frame.len() {
            let mut short = frame[..cut].to_vec();
            if cut >= 5 {
                // Make the length word agree with the cut, so this is malformed, not cut.
                let len = (cut - 1) as i32;
                short[1..5].copy_from_slice(&len.to_be_bytes());
            }
            let mut l = Vec::new();
            let _ = Formatter::new(flags(regress)).message(&mut l, direction, &short, auth);
        }
    }
}

#[test]
fn cut_frames_say_so() {
    let f = Formatter::new(TraceFlags::empty());
    let mut line = Vec::new();
    let extra = f.message(&mut line, F, b"d\0\0\0\x0cabc", None);
    assert_eq!(
        line,
        b"F\t12\tCopyData\t 'abc ... [cut: 8 of 13 bytes]".to_vec()
    );
    assert_eq!(extra, None);
}

/// A sink collecting lines, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

impl Lines {
    fn tracer(&self) -> Tracer {
        let lines = self.clone();
        Tracer::new(move |l: &[u8]| lines.0.lock().unwrap().push(l.to_vec()))
            .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS)
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }
}

/// A SCRAM start-up, both directions, in the order they happen.
const SESSION: &[(Direction, &[u8])] = &[
    (F, b"\0\0\0\x08\x04\xd2\x16\x2f"),
    (B, b"N"),
    (F, b"\0\0\0\x12\0\x03\0\0user\0bob\0\0"),
    (B, b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"),
    (F, b"p\0\0\0\x1bSCRAM-SHA-256\0\0\0\0\x05n,,n="),
    (B, b"R\0\0\0\x0b\0\0\0\x0br=x"),
    (F, b"p\0\0\0\x07c=y"),
    (B, b"R\0\0\0\x0b\0\0\0\x0cv=z"),
    (B, b"R\0\0\0\x08\0\0\0\0"),
    (B, b"K\0\0\0\x0c\0\0\0\x07abcd"),
    (B, b"Z\0\0\0\x05I"),
    (F, b"Q\0\0\0\x0dSELECT 1\0"),
    (B, b"E\0\0\0\x0cSERROR\0\0"),
    (F, b"X\0\0\0\x04"),
];

const SESSION_TRACE: &[&str] = &[
    "F\t8\tSSLRequest\t 1234 5679",
    "B\t1\tSSLResponse\t N",
    "F\t18\tStartupMessage\t 3 0 \"user\" \"bob\"",
    "B\t23\tAuthenticationSASL\t \"SCRAM-SHA-256\" \"\"",
    "F\t27\tSASLInitialResponse\t \"SCRAM-SHA-256\" 5 'n,,n='",
    "B\t11\tAuthenticationSASLContinue\t 'r=x'",
    "F\t7\tSASLResponse\t 'c=y'",
    "B\t11\tAuthenticationSASLFinal\t 'v=z'",
    "B\t8\tAuthenticationOk",
    "B\t12\tBackendKeyData\t 7 'abcd'",
    "B\t5\tReadyForQuery\t I",
    "F\t13\tQuery\t \"SELECT 1\"",
    "B\t12\tErrorResponse\t S \"ERROR\" \\x00",
    "F\t4\tTerminate",
];

#[test]
fn tracer_names_each_message_once_whatever_the_chunking() {
    for chunk in [1, 2, 3, 7, 1000] {
        let lines = Lines::default();
        let mut t = lines.tracer();
        for (direction, bytes) in SESSION {
            for piece in bytes.chunks(chunk) {
                t.feed(*direction, piece);
            }
        }
        assert_eq!(lines.take(), SESSION_TRACE, "chunks of {chunk}");
    }
}

#[test]
fn tracer_reads_accepted_encryption_and_error_answers() {
    let lines = Lines::default();
    let mut t = lines.tracer();
    t.frontend(b"\0\0\0\x08\x04\xd2\x16\x30"); // GSSENCRequest
    t.backend(b"G");
    t.frontend(b"\0\0\0\x08\x04\xd2\x16\x2f"); // SSLRequest (after GSS, as a test)
    t.backend(b"E\0\0\0\x0cSFATAL\0\0"); // an old server's answer
    assert_eq!(
        lines.take(),
        [
            "F\t8\tGSSENCRequest\t 1234 5680",
            "B\t1\tGSSENCResponse\t G",
            "F\t8\tSSLRequest\t 1234 5679",
            "B\t12\tErrorResponse\t S \"FATAL\" \\x00",
        ]
    );
}

#[test]
fn tracer_ends_a_direction_it_cannot_frame() {
    let lines = Lines::default();
    let mut t = lines.tracer();
    t.frontend(b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x01abcd"); // CancelRequest
    t.frontend(b"more bytes are not traced");
    t.backend(b"Z\0\0\0\x02garbage");
    t.backend(b"Z\0\0\0\x05I");
    assert_eq!(
        lines.take(),
        [
            "F\t16\tCancelRequest\t 1234 5678 1 'abcd'",
            "B\t2\tinvalid length word: the rest of this direction is not traced",
        ]
    );
}

#[test]
fn an_encryption_request_does_not_revive_a_direction_that_ended() {
    // Found by the trace fuzz target: the backend's unframeable bytes ended its direction with a
    // frame half counted, and a later SSLRequest set it to expect an answer again, resuming
    // that count (an arithmetic overflow, a panic with overflow checks on).
    let lines = Lines::default();
    let mut t = lines.tracer();
    t.backend(b"Z\0\0\0\x02");
    t.frontend(b"\0\0\0\x08\x04\xd2\x16\x2f"); // SSLRequest
    t.backend(b"SZ\0\0\0\x05I");
    t.frontend(b"\0\0\0\x08\x04\xd2\x16\x30"); // GSSENCRequest
    t.backend(b"G");
    assert_eq!(
        lines.take(),
        [
            "B\t2\tinvalid length word: the rest of this direction is not traced",
            "F\t8\tSSLRequest\t 1234 5679",
            "F\t8\tGSSENCRequest\t 1234 5680",
        ]
    );
}

#[test]
fn tracer_keeps_at_most_max_message_len_bytes() {
    let lines = Lines::default();
    let mut t = lines.tracer().with_max_message_len(16);
    t.resume(false, None);
    let mut copy = b"d\0\x01\0\x04".to_vec();
    copy.extend(std::iter::repeat_n(b'x', 0x1_0000));
    for piece in copy.chunks(1000) {
        t.frontend(piece);
        assert!(t.buffer_capacity() <= 1000);
    }
    t.frontend(b"c\0\0\0\x04");
    assert_eq!(
        lines.take(),
        [
            "F\t65540\tCopyData\t 'xxxxxxxxxxx ... [cut: 16 of 65541 bytes]",
            "F\t4\tCopyDone"
        ]
    );
}

#[test]
fn tracer_writes_the_sinks_time_unless_suppressed() {
    struct Clocked(Arc<Mutex<Vec<String>>>);
    impl TraceSink for Clocked {
        fn line(&mut self, line: &[u8]) {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(line).into_owned());
        }
        fn now(&mut self) -> Option<Timestamp> {
            Some(Timestamp::new(1_738_326_896, 5))
        }
    }
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut t = Tracer::new(Clocked(Arc::clone(&out)));
    t.backend(b"Z\0\0\0\x05I");
    t.set_flags(TraceFlags::SUPPRESS_TIMESTAMPS);
    t.backend(b"Z\0\0\0\x05I");
    assert_eq!(
        *out.lock().unwrap(),
        [
            "2025-01-31 12:34:56.000005\tB\t5\tReadyForQuery\t I",
            "B\t5\tReadyForQuery\t I"
        ]
    );
}

#[test]
fn timestamps_cover_the_calendar() {
    assert_eq!(
        Timestamp::new(0, 0).to_string(),
        "1970-01-01 00:00:00.000000"
    );
    assert_eq!(
        Timestamp::new(951_782_400, 0).to_string(),
        "2000-02-29 00:00:00.000000"
    );
    assert_eq!(
        Timestamp::new(-1, 999_999).to_string(),
        "1969-12-31 23:59:59.999999"
    );
    assert_eq!(
        Timestamp::new(0, 0).with_utc_offset(-3600).to_string(),
        "1969-12-31 23:00:00.000000"
    );
    let _ = Timestamp::new(i64::MAX, 2_000_000).to_string();
    let _ = Timestamp::new(i64::MIN, 0).to_string();
}

mod arbitrary_input {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever both peers send, in whatever chunks: no panic, every line is one line of
        /// output (no newline of our own inside), and memory stays within the cap.
        #[test]
        fn tracer_survives_any_bytes(
            chunks in prop::collection::vec(
                (any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)),
                0..40,
            ),
            max in 5usize..200,
            regress in any::<bool>(),
            mid_session in any::<bool>(),
        ) {
            let lines = Lines::default();
            let mut t = lines
                .tracer()
                .with_max_message_len(max)
                .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS | flags(regress));
            if mid_session {
                t.resume(false, None);
            }
            for (frontend, bytes) in &chunks {
                t.feed(if *frontend { F } else { B }, bytes);
                prop_assert!(t.buffer_capacity() <= 2 * max);
            }
            t.release_buffers();
            prop_assert!(lines.take().iter().all(|l| l.starts_with("F\t")
                || l.starts_with("B\t")
                || l.starts_with("mismatched message length: ")));
        }

        /// Any frame, whole or cut, through the formatter: no panic.
        #[test]
        fn formatter_survives_any_frame(
            frame in prop::collection::vec(any::<u8>(), 0..80),
            frontend in any::<bool>(),
            regress in any::<bool>(),
            auth in 0u8..5,
        ) {
            let auth = match auth {
                0 => None,
                1 => Some(AuthResponseKind::Password),
                2 => Some(AuthResponseKind::SaslInitial),
                3 => Some(AuthResponseKind::Sasl),
                _ => Some(AuthResponseKind::Gss),
            };
            let f = Formatter::new(flags(regress));
            let mut line = Vec::new();
            let _ = f.message(&mut line, if frontend { F } else { B }, &frame, auth);
            line.clear();
            f.startup_packet(&mut line, &frame);
        }
    }
}
