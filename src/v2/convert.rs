//! Between protocol 2.0 and the message family of 3.0.
//!
//! The [`Client`](crate::Client) hands a 2.0 server's answers to its application as the 3.0
//! messages that mean the same (so a driver works unchanged over either protocol), and the
//! [`Server`](crate::Server) sends its application's 3.0-style answers to a 2.0 client in their
//! 2.0 form. The functions here are those translations; they are public for proxies and tools.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::message::backend::{BackendMessage as Message3, CommandComplete, CopyResponse};
use crate::message::common::Format;
use crate::message::fields::{ErrorFields, FieldCode};
use crate::message::frontend::{CopyData, FunctionCall as FunctionCall3};
use crate::message::rows::{DataRow, RowDescription as Description3};
use crate::v2::backend::BackendMessage;
use crate::v2::common::Text;
use crate::v2::frontend::FunctionCall;
use crate::v2::rows::{FieldDescription, RowDescription};

/// The severities PostgreSQL writes in English (the `V` field of 3.0).
const SEVERITIES: [&str; 11] = [
    "PANIC", "FATAL", "ERROR", "WARNING", "NOTICE", "DEBUG", "INFO", "LOG", "DEBUG1", "DEBUG2",
    "DEBUG5",
];

/// The fields of a 2.0 ErrorResponse or NoticeResponse text, as PostgreSQL 7.4 to 13 write it
/// (`SEVERITY:  message`, a newline at the end): `S` is the severity (and `V` too when it is
/// one of PostgreSQL's English ones), `M` the rest without the final newline. A text without
/// that prefix is all `M`, with `S` and `V` `ERROR` (`NOTICE` for a notice). 2.0 has no
/// SQLSTATE: there is no `C`. A NUL cannot occur (the text ended at it on the wire).
///
/// ```
/// use pgproto::v2::error_fields;
///
/// let f = error_fields(b"ERROR:  division by zero\n", false);
/// assert_eq!(f.severity(), Some(&b"ERROR"[..]));
/// assert_eq!(f.message(), Some(&b"division by zero"[..]));
/// assert_eq!(f.code(), None);
/// let f = error_fields(b"the server is shutting down", true);
/// assert_eq!(f.severity(), Some(&b"NOTICE"[..]));
/// ```
pub fn error_fields(text: &[u8], notice: bool) -> ErrorFields {
    let text = trim_newlines(text);
    let (severity, message) = match split_severity(text) {
        Some((s, m)) => (s, m),
        None => (if notice { &b"NOTICE"[..] } else { b"ERROR" }, text),
    };
    let english = std::str::from_utf8(severity)
        .ok()
        .filter(|s| SEVERITIES.contains(s));
    let mut fields: Vec<(FieldCode, &[u8])> = vec![(FieldCode::Severity, severity)];
    if let Some(v) = english {
        fields.push((FieldCode::SeverityNonLocalized, v.as_bytes()));
    }
    fields.push((FieldCode::Message, message));
    // INVARIANT: no value holds NUL (the text came from a NUL-terminated string) and the text
    // is shorter than a message; `simple` covers the impossible case without panicking.
    ErrorFields::new(fields)
        .unwrap_or_else(|_| ErrorFields::simple("ERROR", "", &String::from_utf8_lossy(message)))
}

/// `SEVERITY:  ` at the start of a text, as `(severity, rest)`: a word of at most 20 bytes
/// without spaces, then a colon and two spaces.
fn split_severity(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', text.get(..text.len().min(21))?)?;
    let (sev, rest) = text.split_at(colon);
    let message = rest.strip_prefix(b":  ")?;
    if sev.is_empty() || sev.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some((sev, message))
}

fn trim_newlines(mut t: &[u8]) -> &[u8] {
    while let Some(rest) = t.strip_suffix(b"\n") {
        t = rest;
    }
    t
}

/// The 2.0 text of an error or notice, as PostgreSQL 7.4 to 13 write it: the severity
/// (`S`, else `V`, else `ERROR`), a colon and two spaces, the message, ` at character N` when
/// the fields carry a position, and a newline. The other fields have no place in 2.0.
///
/// ```
/// use pgproto::v2::error_text;
/// use pgproto::{ErrorFields, FieldCode};
///
/// let f = ErrorFields::new([
///     (FieldCode::Severity, "ERROR"),
///     (FieldCode::Code, "42P01"),
///     (FieldCode::Message, "relation \"t\" does not exist"),
///     (FieldCode::Position, "15"),
/// ])
/// .unwrap();
/// assert_eq!(
///     error_text(&f).as_bytes(),
///     b"ERROR:  relation \"t\" does not exist at character 15\n"
/// );
/// ```
pub fn error_text(fields: &ErrorFields) -> Text {
    let severity = fields
        .severity()
        .or_else(|| fields.severity_nonlocalized())
        .unwrap_or(b"ERROR");
    let mut t = Vec::with_capacity(severity.len() + 40);
    t.extend_from_slice(severity);
    t.extend_from_slice(b":  ");
    t.extend_from_slice(fields.message().unwrap_or(b"missing error text"));
    if let Some(p) = fields.get(FieldCode::Position) {
        t.extend_from_slice(b" at character ");
        t.extend_from_slice(p);
    }
    t.push(b'\n');
    // INVARIANT: field values hold no NUL (ErrorFields checks), and the text is shorter than
    // the fields it came from.
    Text::new(&t).unwrap_or_default()
}

/// A 2.0 RowDescription as 3.0 describes the same fields: no table OID or column number (0),
/// text format.
///
/// ```
/// use pgproto::v2::{row_description_v3, FieldDescription, RowDescription};
/// use pgproto::Format;
///
/// let d = RowDescription::new(&[FieldDescription {
///     name: b"n",
///     type_oid: 23,
///     type_size: 4,
///     type_modifier: -1,
/// }])
/// .unwrap();
/// let f = row_description_v3(&d);
/// let f = f.fields().next().unwrap();
/// assert_eq!((f.name, f.type_oid, f.table_oid, f.format), (&b"n"[..], 23, 0, Format::Text));
/// ```
pub fn row_description_v3(d: &RowDescription) -> Description3 {
    let mut raw = BytesMut::new();
    for f in d.fields() {
        // The name holds no NUL: it was read up to one, or checked when built.
        raw.put_slice(f.name);
        raw.put_u8(0);
        raw.put_u32(0);
        raw.put_i16(0);
        raw.put_u32(f.type_oid);
        raw.put_i16(f.type_size);
        raw.put_i32(f.type_modifier);
        raw.put_i16(Format::Text.code());
    }
    // INVARIANT: a 2.0 description has at most 65,535 fields, as a 3.0 one may.
    Description3::from_checked(d.len() as u16, raw.freeze())
}

/// A 3.0 RowDescription in the 2.0 layout (the table OID, column number and format dropped);
/// fails only as [`RowDescription::new`] does.
pub fn row_description_v2(d: &Description3) -> Result<RowDescription, EncodeError> {
    let fields: Vec<FieldDescription<'_>> = d
        .fields()
        .map(|f| FieldDescription {
            name: f.name,
            type_oid: f.type_oid,
            type_size: f.type_size,
            type_modifier: f.type_modifier,
        })
        .collect();
    RowDescription::new(&fields)
}

/// A 2.0 FunctionCall as 3.0 would carry it: every argument and the result in binary format.
pub fn function_call_v3(f: &FunctionCall) -> Result<FunctionCall3<'static>, EncodeError> {
    let args: Vec<Option<&[u8]>> = f.args().collect();
    FunctionCall3::new(f.function_oid(), &[Format::Binary], &args, Format::Binary)
}

/// What a Client hands out for a 2.0 answer to a request: the 3.0 message that means the same,
/// or `None` for CursorResponse, which has none.
pub(crate) fn response_v3(m: BackendMessage) -> Option<Message3<'static>> {
    use BackendMessage as B;
    Some(match m {
        B::RowDescription(d) => Message3::RowDescription(row_description_v3(&d)),
        B::AsciiRow(r) => Message3::DataRow(data_row(r.len(), r.columns())),
        B::BinaryRow(r) => Message3::DataRow(data_row(r.len(), r.columns())),
        B::CompletedResponse(t) => {
            Message3::CommandComplete(CommandComplete::from_checked(t.bytes().clone()))
        }
        B::EmptyQueryResponse => Message3::EmptyQueryResponse,
        B::ErrorResponse(t) => Message3::ErrorResponse(error_fields(t.as_bytes(), false)),
        B::CopyInResponse => Message3::CopyInResponse(text_copy()),
        B::CopyOutResponse => Message3::CopyOutResponse(text_copy()),
        B::CopyDataRow(l) => Message3::CopyData(CopyData::from_checked(l.bytes().clone())),
        B::CopyDataEnd => Message3::CopyDone,
        B::FunctionResultResponse(v) => Message3::FunctionCallResponse(Some(v.bytes().clone())),
        B::FunctionVoidResponse => Message3::FunctionCallResponse(None),
        B::ReadyForQuery => {
            Message3::ReadyForQuery(crate::message::common::TransactionStatus::Idle)
        }
        _ => return None,
    })
}

/// A CopyInResponse or CopyOutResponse of text data, as 2.0's COPY always is.
fn text_copy() -> CopyResponse {
    CopyResponse {
        format: Format::Text,
        column_formats: bytes::Bytes::new(),
    }
}

fn data_row<'a>(count: usize, values: impl Iterator<Item = Option<&'a [u8]>>) -> DataRow<'static> {
    let mut raw = BytesMut::new();
    for v in values {
        match v {
            // INVARIANT: a 2.0 value's length fits an Int32, as it did on the wire.
            Some(v) => {
                raw.put_i32(v.len() as i32);
                raw.put_slice(v);
            }
            None => raw.put_i32(-1),
        }
    }
    // INVARIANT: a 2.0 row has the field count of its RowDescription, at most 65,535.
    DataRow::from_checked(count as u16, raw.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_go_both_ways() {
        for text in [
            &b"ERROR:  relation \"x\" does not exist at character 15\n"[..],
            b"FATAL:  database \"nodb\" does not exist\n",
            b"NOTICE:  hi 1\n",
            b"FEHLER:  Division durch Null\n",
        ] {
            let f = error_fields(text, false);
            assert_eq!(error_text(&f).as_bytes(), text);
            assert_eq!(f.code(), None);
        }
        let f = error_fields(b"FEHLER:  x\n", false);
        assert_eq!(f.severity(), Some(&b"FEHLER"[..]));
        assert_eq!(f.get(FieldCode::SeverityNonLocalized), None);
        // No prefix: all message.
        let f = error_fields(b"no colon here\n", false);
        assert_eq!(f.severity(), Some(&b"ERROR"[..]));
        assert_eq!(f.message(), Some(&b"no colon here"[..]));
        let f = error_fields(b"a b:  c", true);
        assert_eq!(f.message(), Some(&b"a b:  c"[..]));
        assert_eq!(f.severity(), Some(&b"NOTICE"[..]));
    }
}
