//! Where the fields of a frontend message body lie: the one check of each body, whose result a
//! message keeps beside its body (borrowed or owned) to cut its fields from.

use crate::codec::reader::{SliceReader, Span};
use crate::error::DecodeError;
use crate::message::common::{Format, FormatCodes, Target, Values};

/// Where the fields of a Parse body lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParseLayout {
    pub(crate) name: Span,
    pub(crate) query: Span,
    pub(crate) param_types: Span,
}

impl ParseLayout {
    #[inline]
    pub(crate) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, "Parse");
        let name = r.cstr_span("statement name")?;
        let query = r.cstr_span("query string")?;
        let n = r.u16("parameter type count")? as usize;
        r.ensure_count(n, 4, "parameter types")?;
        let param_types = r.take_span(n * 4, "parameter types")?;
        r.finish()?;
        Ok(Self {
            name,
            query,
            param_types,
        })
    }
}

/// Where the fields of a Bind body lie, as four offsets (the fields between them follow from
/// the wire layout): kept small because every decoded Bind carries it, and the size of a Bind
/// is the size of every frontend message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BindLayout {
    /// Where the statement name starts (the portal name and its NUL come before).
    statement: u32,
    /// Where the parameter format count starts (after the statement name's NUL).
    formats: u32,
    /// Where the parameter values start (after the parameter count).
    params: u32,
    /// Where the parameter values end (the result format count follows).
    params_end: u32,
}

impl BindLayout {
    #[inline]
    pub(crate) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, "Bind");
        r.cstr_span("portal name")?;
        let statement = r.position();
        r.cstr_span("statement name")?;
        let formats = r.position();
        FormatCodes::check(&mut r, "Bind", "parameter formats")?;
        let param_count = r.u16("parameter count")?;
        let params = Values::check_counted(&mut r, param_count, "Bind", "parameter values")?;
        FormatCodes::check(&mut r, "Bind", "result formats")?;
        r.finish()?;
        // INVARIANT: a body is at most i32::MAX bytes long, so offsets fit 32 bits.
        Ok(Self {
            statement: statement as u32,
            formats: formats as u32,
            params: params.range().start as u32,
            params_end: params.range().end as u32,
        })
    }

    /// The portal name (without its NUL).
    #[inline]
    pub(crate) fn portal(&self) -> Span {
        // INVARIANT (here and below): the offsets were read in order, each at least one
        // field's fixed size past the one before, so these subtractions cannot wrap.
        Span::between(0, self.statement - 1)
    }

    /// The statement name (without its NUL).
    #[inline]
    pub(crate) fn statement(&self) -> Span {
        Span::between(self.statement, self.formats - 1)
    }

    /// The parameter format codes (without their count).
    #[inline]
    pub(crate) fn param_formats(&self) -> Span {
        Span::between(self.formats + 2, self.params - 2)
    }

    /// How many parameter values there are: the count word just before them in `body`.
    #[inline]
    pub(crate) fn param_count(&self, body: &[u8]) -> u16 {
        let at = self.params as usize;
        at.checked_sub(2)
            .and_then(|start| body.get(start..at))
            .and_then(<[u8]>::first_chunk::<2>)
            .map_or(0, |c| u16::from_be_bytes(*c))
    }

    /// The parameter values (without their count).
    #[inline]
    pub(crate) fn params(&self) -> Span {
        Span::between(self.params, self.params_end)
    }

    /// The result format codes (without their count) of a body `body_len` bytes long.
    #[inline]
    pub(crate) fn result_formats(&self, body_len: usize) -> Span {
        Span::between(self.params_end + 2, body_len as u32)
    }
}

/// Where the fields of a Describe or Close body lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetLayout {
    pub(crate) target: Target,
    pub(crate) name: Span,
}

impl TargetLayout {
    #[inline]
    pub(crate) fn read(body: &[u8], message: &'static str) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, message);
        let target = Target::decode(&mut r, message)?;
        let name = r.cstr_span("name")?;
        r.finish()?;
        Ok(Self { target, name })
    }
}

/// Where the fields of an Execute body lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExecuteLayout {
    pub(crate) portal: Span,
    pub(crate) max_rows: i32,
}

impl ExecuteLayout {
    #[inline]
    pub(crate) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, "Execute");
        let portal = r.cstr_span("portal name")?;
        let max_rows = r.i32("row limit")?;
        r.finish()?;
        Ok(Self { portal, max_rows })
    }
}

/// Where the text of a body that is one NUL-terminated string lies (Query, CopyFail,
/// PasswordMessage).
#[inline]
pub(crate) fn text_layout(
    body: &[u8],
    message: &'static str,
    field: &'static str,
) -> Result<Span, DecodeError> {
    let mut r = SliceReader::new(body, message);
    let text = r.cstr_span(field)?;
    r.finish()?;
    Ok(text)
}

/// Checks that a body is empty, as Sync, Flush, CopyDone and Terminate require.
#[inline]
pub(crate) fn empty_layout(body: &[u8], message: &'static str) -> Result<(), DecodeError> {
    SliceReader::new(body, message).finish()
}

/// Where the fields of a SASLInitialResponse body lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SaslInitialLayout {
    pub(crate) mechanism: Span,
    pub(crate) data: Option<Span>,
}

impl SaslInitialLayout {
    #[inline]
    pub(crate) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, "SASLInitialResponse");
        let mechanism = r.cstr_span("mechanism")?;
        let at = r.position() + 4;
        let data = r.nullable("initial response")?.map(|_| r.span_from(at));
        r.finish()?;
        Ok(Self { mechanism, data })
    }
}

/// Where the fields of a FunctionCall body lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FunctionCallLayout {
    pub(crate) function: u32,
    pub(crate) arg_formats: Span,
    pub(crate) arg_count: u16,
    pub(crate) args: Span,
    pub(crate) result_format: Format,
}

impl FunctionCallLayout {
    #[inline]
    pub(crate) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = SliceReader::new(body, "FunctionCall");
        let function = r.u32("function OID")?;
        let arg_formats = FormatCodes::check(&mut r, "FunctionCall", "argument formats")?;
        let arg_count = r.u16("argument count")?;
        let args = Values::check_counted(&mut r, arg_count, "FunctionCall", "arguments")?;
        let code = r.i16("result format")?;
        let result_format = Format::from_code(code).ok_or(DecodeError::InvalidValue {
            message: "FunctionCall",
            field: "result format",
            value: code.into(),
        })?;
        r.finish()?;
        Ok(Self {
            function,
            arg_formats,
            arg_count,
            args,
            result_format,
        })
    }
}
