//! SQLite values seen as PostgreSQL values: the five types the server reports (int8, float8,
//! text, bytea, bool), their text and binary encodings, parameter decoding, COPY's text format,
//! and the ErrorResponse fields for SQLite's errors.

use pgproto::{ErrorFields, FieldCode, Format};
use rusqlite::types::{Value, ValueRef};

/// A PostgreSQL type the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgType {
    /// `bool` (OID 16).
    Bool,
    /// `bytea` (OID 17).
    Bytea,
    /// `int8` (OID 20).
    Int8,
    /// `text` (OID 25).
    Text,
    /// `float8` (OID 701).
    Float8,
}

impl PgType {
    /// The type's OID.
    pub(crate) fn oid(self) -> u32 {
        match self {
            Self::Bool => 16,
            Self::Bytea => 17,
            Self::Int8 => 20,
            Self::Text => 25,
            Self::Float8 => 701,
        }
    }

    /// `pg_type.typlen`.
    pub(crate) fn size(self) -> i16 {
        match self {
            Self::Bool => 1,
            Self::Int8 | Self::Float8 => 8,
            Self::Bytea | Self::Text => -1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bool => "boolean",
            Self::Bytea => "bytea",
            Self::Int8 => "bigint",
            Self::Text => "text",
            Self::Float8 => "double precision",
        }
    }

    /// The type for a declared SQLite column type, following SQLite's affinity rules; `None`
    /// when the column has no declared type or NUMERIC affinity (decided by the values).
    pub(crate) fn from_decl(decl: Option<&str>) -> Option<Self> {
        let d = decl?.to_ascii_uppercase();
        let has = |s: &str| d.contains(s);
        if has("BOOL") {
            Some(Self::Bool)
        } else if has("INT") {
            Some(Self::Int8)
        } else if has("CHAR") || has("CLOB") || has("TEXT") {
            Some(Self::Text)
        } else if has("BLOB") || has("BYTEA") {
            Some(Self::Bytea)
        } else if has("REAL") || has("FLOA") || has("DOUB") {
            Some(Self::Float8)
        } else if d.trim().is_empty() || has("NUM") || has("DEC") {
            None
        } else {
            // DATE, TIMESTAMP, JSON, UUID, ...: shown as text.
            Some(Self::Text)
        }
    }

    /// The type a value suggests (for columns without a declared type).
    pub(crate) fn of_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => None,
            Cell::Int(_) => Some(Self::Int8),
            Cell::Real(_) => Some(Self::Float8),
            Cell::Text(_) => Some(Self::Text),
            Cell::Blob(_) => Some(Self::Bytea),
        }
    }
}

/// A value read from SQLite (text kept as bytes: SQLite does not promise UTF-8).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(Vec<u8>),
    /// BLOB.
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Cell {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Int(i),
            ValueRef::Real(f) => Self::Real(f),
            ValueRef::Text(t) => Self::Text(t.to_vec()),
            ValueRef::Blob(b) => Self::Blob(b.to_vec()),
        }
    }
}

/// ErrorResponse or NoticeResponse fields.
pub(crate) fn fields(severity: &str, code: &str, message: &str) -> ErrorFields {
    let message = message.replace('\0', " ");
    ErrorFields::new([
        (FieldCode::Severity, severity),
        (FieldCode::SeverityNonLocalized, severity),
        (FieldCode::Code, code),
        (FieldCode::Message, message.as_str()),
    ])
    .unwrap_or_else(|_| {
        ErrorFields::new([(FieldCode::Code, "XX000")]).expect("a fixed field list encodes")
    })
}

/// An ERROR.
pub(crate) fn error(code: &str, message: &str) -> ErrorFields {
    fields("ERROR", code, message)
}

/// `f` with a CONTEXT (`W`) field added.
pub(crate) fn with_context(f: &ErrorFields, context: &str) -> ErrorFields {
    let context = context.replace('\0', " ");
    let mut all: Vec<(FieldCode, &[u8])> = f.iter().map(|x| (x.code, x.value)).collect();
    all.push((FieldCode::Where, context.as_bytes()));
    ErrorFields::new(all).unwrap_or_else(|_| f.clone())
}

fn bad_input(ty: PgType, text: &[u8]) -> ErrorFields {
    error(
        "22P02",
        &format!(
            "invalid input syntax for type {}: \"{}\"",
            ty.name(),
            String::from_utf8_lossy(text)
        ),
    )
}

/// PostgreSQL's float8 output: shortest round-trip digits, exponent outside 1e-4..1e15.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e15).contains(&abs) {
        let s = format!("{f:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
    }
    format!("{f}")
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + bytes.len() * 2);
    out.extend_from_slice(b"\\x");
    for b in bytes {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    out
}

/// The text format of a value shown as `ty`.
pub(crate) fn encode_text(cell: &Cell, ty: PgType) -> Option<Vec<u8>> {
    let bool_text = |b: bool| if b { b"t".to_vec() } else { b"f".to_vec() };
    Some(match (cell, ty) {
        (Cell::Null, _) => return None,
        (Cell::Int(i), PgType::Bool) => bool_text(*i != 0),
        (Cell::Int(i), _) => i.to_string().into_bytes(),
        (Cell::Real(f), PgType::Bool) => bool_text(*f != 0.0),
        (Cell::Real(f), _) => format_float(*f).into_bytes(),
        (Cell::Text(t), PgType::Bytea) => hex(t),
        (Cell::Text(t), _) => t.clone(),
        (Cell::Blob(b), _) => hex(b),
    })
}

fn parse_bool(text: &[u8]) -> Option<bool> {
    let s = std::str::from_utf8(text).ok()?.trim().to_ascii_lowercase();
    match s.as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

fn parse_float(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?.trim().to_ascii_lowercase();
    match s.as_str() {
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// bytea input: `\x` hex, or the escape format (`\\` and `\ooo`).
fn parse_bytea(text: &[u8]) -> Option<Vec<u8>> {
    if let Some(h) = text.strip_prefix(b"\\x") {
        let h: Vec<u8> = h
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if !h.len().is_multiple_of(2) {
            return None;
        }
        return h
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
            .collect();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
        } else if text.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = std::str::from_utf8(text.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(oct, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

/// The binary format of a value shown as `ty`.
pub(crate) fn encode_binary(cell: &Cell, ty: PgType) -> Result<Option<Vec<u8>>, ErrorFields> {
    let text_of = |c: &Cell| encode_text(c, PgType::Text).unwrap_or_default();
    Ok(Some(match ty {
        _ if *cell == Cell::Null => return Ok(None),
        PgType::Int8 => {
            let v = match cell {
                Cell::Int(i) => *i,
                Cell::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => *f as i64,
                Cell::Text(t) => parse_int(t).ok_or_else(|| bad_input(ty, t))?,
                other => return Err(bad_input(ty, &text_of(other))),
            };
            v.to_be_bytes().to_vec()
        }
        PgType::Float8 => {
            let v = match cell {
                Cell::Int(i) => *i as f64,
                Cell::Real(f) => *f,
                Cell::Text(t) => parse_float(t).ok_or_else(|| bad_input(ty, t))?,
                other => return Err(bad_input(ty, &text_of(other))),
            };
            v.to_be_bytes().to_vec()
        }
        PgType::Bool => {
            let v = match cell {
                Cell::Int(i) => *i != 0,
                Cell::Real(f) => *f != 0.0,
                Cell::Text(t) => parse_bool(t).ok_or_else(|| bad_input(ty, t))?,
                other => return Err(bad_input(ty, &text_of(other))),
            };
            vec![u8::from(v)]
        }
        PgType::Bytea => match cell {
            Cell::Blob(b) | Cell::Text(b) => b.clone(),
            other => text_of(other),
        },
        PgType::Text => text_of(cell),
    }))
}

/// Decodes a Bind parameter of type `oid` (0: unspecified) sent in `format`.
pub(crate) fn decode_param(
    value: Option<&[u8]>,
    format: Format,
    oid: u32,
    index: usize,
) -> Result<Value, ErrorFields> {
    let Some(v) = value else {
        return Ok(Value::Null);
    };
    let text = |v: &[u8]| {
        String::from_utf8(v.to_vec())
            .map_err(|_| error("22021", "invalid byte sequence for encoding \"UTF8\""))
    };
    if format == Format::Binary {
        let wrong = || {
            error(
                "22P03",
                &format!(
                    "incorrect binary data format in bind parameter {}",
                    index + 1
                ),
            )
        };
        let fixed = |n: usize| -> Result<&[u8], ErrorFields> {
            if v.len() == n {
                Ok(v)
            } else {
                Err(wrong())
            }
        };
        return Ok(match oid {
            16 => Value::Integer(i64::from(fixed(1)?[0] != 0)),
            21 => Value::Integer(
                i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| wrong())?).into(),
            ),
            23 => Value::Integer(
                i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).into(),
            ),
            26 => Value::Integer(
                u32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).into(),
            ),
            20 => Value::Integer(i64::from_be_bytes(
                fixed(8)?.try_into().map_err(|_| wrong())?,
            )),
            700 => {
                Value::Real(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong())?).into())
            }
            701 => Value::Real(f64::from_be_bytes(
                fixed(8)?.try_into().map_err(|_| wrong())?,
            )),
            17 => Value::Blob(v.to_vec()),
            0 | 19 | 25 | 705 | 1042 | 1043 => Value::Text(text(v)?),
            other => {
                return Err(error(
                    "0A000",
                    &format!("binary format for type OID {other} is not supported"),
                ))
            }
        });
    }
    Ok(match oid {
        20 | 21 | 23 | 26 => {
            Value::Integer(parse_int(v).ok_or_else(|| bad_input(PgType::Int8, v))?)
        }
        700 | 701 => Value::Real(parse_float(v).ok_or_else(|| bad_input(PgType::Float8, v))?),
        1700 => match parse_int(v) {
            Some(i) => Value::Integer(i),
            None => Value::Real(parse_float(v).ok_or_else(|| bad_input(PgType::Float8, v))?),
        },
        16 => Value::Integer(i64::from(
            parse_bool(v).ok_or_else(|| bad_input(PgType::Bool, v))?,
        )),
        17 => Value::Blob(parse_bytea(v).ok_or_else(|| bad_input(PgType::Bytea, v))?),
        _ => Value::Text(text(v)?),
    })
}

/// A COPY text field for a column of type `ty` (`None`: no declared type, kept as text).
pub(crate) fn copy_in_value(text: &[u8], ty: Option<PgType>) -> Result<Value, ErrorFields> {
    Ok(match ty {
        Some(PgType::Int8) => {
            Value::Integer(parse_int(text).ok_or_else(|| bad_input(PgType::Int8, text))?)
        }
        Some(PgType::Float8) => {
            Value::Real(parse_float(text).ok_or_else(|| bad_input(PgType::Float8, text))?)
        }
        Some(PgType::Bool) => Value::Integer(i64::from(
            parse_bool(text).ok_or_else(|| bad_input(PgType::Bool, text))?,
        )),
        Some(PgType::Bytea) => {
            Value::Blob(parse_bytea(text).ok_or_else(|| bad_input(PgType::Bytea, text))?)
        }
        Some(PgType::Text) | None => Value::Text(
            String::from_utf8(text.to_vec())
                .map_err(|_| error("22021", "invalid byte sequence for encoding \"UTF8\""))?,
        ),
    })
}

/// Appends one COPY text field: `null` for NULL, else the escaped text.
pub(crate) fn copy_out_field(out: &mut Vec<u8>, value: Option<&[u8]>, delim: u8, null: &str) {
    let Some(v) = value else {
        out.extend_from_slice(null.as_bytes());
        return;
    };
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            // Like PostgreSQL's COPY TO: these are escaped whatever the delimiter.
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ if b == delim => out.extend_from_slice(&[b'\\', b]),
            _ => out.push(b),
        }
    }
}

/// Splits one COPY text line (without its newline) into fields; `None` is NULL.
pub(crate) fn copy_in_fields(line: &[u8], delim: u8, null: &str) -> Vec<Option<Vec<u8>>> {
    line.split(|&b| b == delim)
        .fold(Vec::<Vec<u8>>::new(), |mut acc, part| {
            // A delimiter escaped by a backslash does not split.
            match acc.last_mut() {
                Some(prev) if ends_with_escape(prev) => {
                    prev.push(delim);
                    prev.extend_from_slice(part);
                }
                _ => acc.push(part.to_vec()),
            }
            acc
        })
        .into_iter()
        .map(|raw| (raw != null.as_bytes()).then(|| unescape(&raw)))
        .collect()
}

fn ends_with_escape(s: &[u8]) -> bool {
    s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' || i == raw.len() {
            out.push(b);
            continue;
        }
        let c = raw[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let end = (i + 2).min(raw.len());
                let n = raw[i..end]
                    .iter()
                    .take_while(|d| d.is_ascii_hexdigit())
                    .count();
                let digits = std::str::from_utf8(&raw[i..i + n]).unwrap_or("0");
                out.push(u8::from_str_radix(digits, 16).unwrap_or(0));
                i += n;
            }
            other => out.push(other),
        }
    }
    out
}

/// The PostgreSQL error for a SQLite error.
pub(crate) fn sqlite_error(e: &rusqlite::Error) -> ErrorFields {
    use rusqlite::ffi;
    use rusqlite::ErrorCode as C;
    let (code, msg) = match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            (code, msg.clone().unwrap_or_else(|| code.to_string()))
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => (error, msg.clone()),
        _ => return error("XX000", &e.to_string()),
    };
    let (state, text) = match code.code {
        C::ConstraintViolation => (
            match code.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "23505",
                ffi::SQLITE_CONSTRAINT_NOTNULL => "23502",
                ffi::SQLITE_CONSTRAINT_CHECK => "23514",
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "23503",
                _ => "23000",
            },
            msg,
        ),
        C::OperationInterrupted => ("57014", "canceling statement due to user request".into()),
        C::DatabaseBusy | C::DatabaseLocked => ("55P03", format!("could not obtain lock: {msg}")),
        C::ReadOnly => ("25006", msg),
        C::TooBig => ("54000", msg),
        C::TypeMismatch => ("42804", msg),
        C::DiskFull => ("53100", msg),
        C::OutOfMemory => ("53200", msg),
        _ => message_error(&msg),
    };
    error(state, &text)
}

/// SQLSTATE and PostgreSQL-style message for SQLite's generic errors, from their text.
fn message_error(msg: &str) -> (&'static str, String) {
    let after = |prefix: &str| msg.strip_prefix(prefix).map(str::trim);
    if msg == "canceling statement due to user request" {
        return ("57014", msg.into());
    }
    if let Some(t) = after("no such table:") {
        return ("42P01", format!("relation \"{t}\" does not exist"));
    }
    if let Some(c) = after("no such column:") {
        return ("42703", format!("column \"{c}\" does not exist"));
    }
    if let Some(f) = after("no such function:") {
        return ("42883", format!("function {f} does not exist"));
    }
    if let Some(f) = after("wrong number of arguments to function") {
        return (
            "42883",
            format!("function {f} does not exist (wrong number of arguments)"),
        );
    }
    if let Some(rest) = after("table") {
        if let Some(t) = rest.strip_suffix("already exists") {
            let name = t.trim().trim_matches('"');
            return ("42P07", format!("relation \"{name}\" already exists"));
        }
    }
    if msg.starts_with("index") && msg.ends_with("already exists") {
        return ("42P07", msg.into());
    }
    if let Some(i) = after("no such index:") {
        return ("42704", format!("index \"{i}\" does not exist"));
    }
    if let Some(near) = msg
        .strip_prefix("near \"")
        .and_then(|m| m.strip_suffix("\": syntax error"))
    {
        return ("42601", format!("syntax error at or near \"{near}\""));
    }
    if msg.contains("syntax error")
        || msg.contains("incomplete input")
        || msg.contains("unrecognized token")
    {
        return ("42601", msg.into());
    }
    if msg.starts_with("ambiguous column name") {
        return ("42702", msg.into());
    }
    if msg.starts_with("misuse of aggregate") {
        return ("42803", msg.into());
    }
    if msg.contains("within a transaction") {
        return ("25001", msg.into());
    }
    if msg.contains("values were supplied") || msg.contains("values for") && msg.contains("columns")
    {
        return ("42601", msg.into());
    }
    if msg.contains("has no column named") {
        return ("42703", msg.into());
    }
    ("XX000", msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e100), "1e+100");
        assert_eq!(format_float(1e-5), "1e-05");
        assert_eq!(format_float(-2.5e20), "-2.5e+20");
    }

    #[test]
    fn copy_text_round_trips() {
        let mut line = Vec::new();
        copy_out_field(&mut line, Some(b"a\tb\\c\nd"), b'\t', "\\N");
        line.push(b'\t');
        copy_out_field(&mut line, None, b'\t', "\\N");
        assert_eq!(line, b"a\\tb\\\\c\\nd\t\\N");
        let fields = copy_in_fields(&line, b'\t', "\\N");
        assert_eq!(fields, [Some(b"a\tb\\c\nd".to_vec()), None]);
        assert_eq!(copy_in_fields(b"a\\,b,c", b',', "\\N").len(), 2);
        assert_eq!(parse_bytea(b"\\x0aff"), Some(vec![10, 255]));
    }
}
