//! Re-encoding borrowed frontend messages: as received (a proxy passing a client's message on),
//! or with the prepared statement renamed (a transaction pooler giving each client's statements
//! names of its own on the upstream connection).

use bytes::{BufMut, BytesMut};

use crate::codec::{check_body, check_cstr, tagged, Encode};
use crate::error::EncodeError;
use crate::message::frontend::tag;
use crate::message::frontend_ref::{BindRef, CloseRef, DescribeRef, FrontendMessageRef, ParseRef};

impl Encode for FrontendMessageRef<'_> {
    /// Writes the message exactly as it was received.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::{Encode, FrontendDecoder, Limits};
    ///
    /// let bytes = b"B\0\0\0\x14\0s1\0\0\0\0\x01\0\0\0\x0242\0\0E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04";
    /// let mut dec = FrontendDecoder::after_startup(Limits::default());
    /// dec.receive(bytes);
    /// let mut out = BytesMut::new();
    /// while let Some(m) = dec.next_ref().unwrap() {
    ///     m.encode(&mut out);
    /// }
    /// assert_eq!(&out[..], &bytes[..]);
    /// ```
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Parse(p) => write_parse(out, p, p.name()),
            Self::Bind(b) => write_bind(out, b, b.statement()),
            Self::Describe(d) => write_target(out, tag::DESCRIBE, d.target().byte(), d.name()),
            Self::Close(c) => write_target(out, tag::CLOSE, c.target().byte(), c.name()),
            Self::Execute(e) => tagged(out, tag::EXECUTE, e.portal().len() + 5, |o| {
                o.put_slice(e.portal());
                o.put_u8(0);
                o.put_i32(e.max_rows());
            }),
            Self::Sync => out.put_slice(&[tag::SYNC, 0, 0, 0, 4]),
            Self::Flush => out.put_slice(&[tag::FLUSH, 0, 0, 0, 4]),
            Self::CopyDone => out.put_slice(&[tag::COPY_DONE, 0, 0, 0, 4]),
            Self::Terminate => out.put_slice(&[tag::TERMINATE, 0, 0, 0, 4]),
            Self::Query(sql) => write_cstr_frame(out, tag::QUERY, sql),
            Self::CopyFail(text) => write_cstr_frame(out, tag::COPY_FAIL, text),
            Self::CopyData(data) => tagged(out, tag::COPY_DATA, data.len(), |o| o.put_slice(data)),
            Self::Message(m) => m.encode(out),
        }
    }

    fn encoded_len(&self) -> usize {
        5 + match self {
            Self::Parse(p) => parse_body_len(p, p.name()),
            Self::Bind(b) => bind_body_len(b, b.statement()),
            Self::Describe(d) => d.name().len() + 2,
            Self::Close(c) => c.name().len() + 2,
            Self::Execute(e) => e.portal().len() + 5,
            Self::Sync | Self::Flush | Self::CopyDone | Self::Terminate => 0,
            Self::Query(text) | Self::CopyFail(text) => text.len() + 1,
            Self::CopyData(data) => data.len(),
            Self::Message(m) => return m.encoded_len(),
        }
    }
}

fn write_cstr_frame(out: &mut BytesMut, t: u8, text: &[u8]) {
    tagged(out, t, text.len() + 1, |o| {
        o.put_slice(text);
        o.put_u8(0);
    });
}

fn write_target(out: &mut BytesMut, t: u8, target: u8, name: &[u8]) {
    tagged(out, t, name.len() + 2, |o| {
        o.put_u8(target);
        o.put_slice(name);
        o.put_u8(0);
    });
}

fn parse_body_len(p: &ParseRef<'_>, name: &[u8]) -> usize {
    name.len() + 1 + p.query().len() + 1 + 2 + p.param_types_raw().len()
}

fn write_parse(out: &mut BytesMut, p: &ParseRef<'_>, name: &[u8]) {
    let types = p.param_types_raw();
    tagged(out, tag::PARSE, parse_body_len(p, name), |o| {
        o.put_slice(name);
        o.put_u8(0);
        o.put_slice(p.query());
        o.put_u8(0);
        // INVARIANT: the count was read from the message as an Int16.
        o.put_u16((types.len() / 4) as u16);
        o.put_slice(types);
    });
}

fn bind_body_len(b: &BindRef<'_>, statement: &[u8]) -> usize {
    b.portal().len()
        + 1
        + statement.len()
        + 1
        + 2
        + b.param_formats().raw().len()
        + 2
        + b.params().raw().len()
        + 2
        + b.result_formats().raw().len()
}

fn write_bind(out: &mut BytesMut, b: &BindRef<'_>, statement: &[u8]) {
    let formats = b.param_formats();
    let params = b.params();
    let results = b.result_formats();
    tagged(out, tag::BIND, bind_body_len(b, statement), |o| {
        o.put_slice(b.portal());
        o.put_u8(0);
        o.put_slice(statement);
        o.put_u8(0);
        // INVARIANT: each count was read from the message as an Int16.
        o.put_u16(formats.len() as u16);
        o.put_slice(formats.raw());
        o.put_u16(params.len() as u16);
        o.put_slice(params.raw());
        o.put_u16(results.len() as u16);
        o.put_slice(results.raw());
    });
}

impl ParseRef<'_> {
    /// Writes this Parse with the statement named `name` instead, everything else as received
    /// (how a transaction pooler gives a client's statement its own name upstream).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word; nothing is
    /// written then.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::ParseRef;
    ///
    /// let p = ParseRef::decode(b"P_0\0SELECT 1\0\0\0").unwrap();
    /// let mut out = BytesMut::new();
    /// p.encode_renamed(&mut out, b"pool_7").unwrap();
    /// assert_eq!(&out[..], b"P\0\0\0\x16pool_7\0SELECT 1\0\0\0");
    /// ```
    pub fn encode_renamed(&self, out: &mut BytesMut, name: &[u8]) -> Result<(), EncodeError> {
        check_cstr("statement name", name)?;
        check_body("Parse", parse_body_len(self, name))?;
        write_parse(out, self, name);
        Ok(())
    }
}

impl BindRef<'_> {
    /// Writes this Bind with its source statement named `statement` instead, everything else
    /// (the values included) as received.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `statement` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word; nothing is
    /// written then.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::BindRef;
    ///
    /// let b = BindRef::decode(b"\0P_0\0\0\0\0\x01\0\0\0\x0242\0\0").unwrap();
    /// let mut out = BytesMut::new();
    /// b.encode_renamed(&mut out, b"s1").unwrap();
    /// assert_eq!(&out[..], b"B\0\0\0\x14\0s1\0\0\0\0\x01\0\0\0\x0242\0\0");
    /// ```
    pub fn encode_renamed(&self, out: &mut BytesMut, statement: &[u8]) -> Result<(), EncodeError> {
        check_cstr("statement name", statement)?;
        check_body("Bind", bind_body_len(self, statement))?;
        write_bind(out, self, statement);
        Ok(())
    }
}

impl DescribeRef<'_> {
    /// Writes this Describe naming `name` instead (same target).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
    /// [`EncodeError::TooLong`] when it is too long for a message; nothing is written then.
    pub fn encode_renamed(&self, out: &mut BytesMut, name: &[u8]) -> Result<(), EncodeError> {
        check_cstr("name", name)?;
        check_body("Describe", name.len() + 2)?;
        write_target(out, tag::DESCRIBE, self.target().byte(), name);
        Ok(())
    }
}

impl CloseRef<'_> {
    /// Writes this Close naming `name` instead (same target).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
    /// [`EncodeError::TooLong`] when it is too long for a message; nothing is written then.
    pub fn encode_renamed(&self, out: &mut BytesMut, name: &[u8]) -> Result<(), EncodeError> {
        check_cstr("name", name)?;
        check_body("Close", name.len() + 2)?;
        write_target(out, tag::CLOSE, self.target().byte(), name);
        Ok(())
    }
}
