//! The messages of the extended-query protocol a frontend sends: Parse, Bind, Describe, Close
//! and Execute.
//!
//! Each keeps its body as it stands on the wire (borrowed from a decoder's buffer, or owned) and
//! where its fields lie in it, found by the one check of [`crate::message::layout`]. The
//! accessors cut fields from the body; encoding copies the body; a constructor writes the body
//! with the same encoder as `encode_values` and reads it back.

use bytes::{BufMut, BytesMut};

use crate::codec::reader::Span;
use crate::codec::{
    check_body, check_count, check_cstr, frame_body, put_cstr, put_cstr_to, tagged, tagged_measured,
};
use crate::error::EncodeError;
use crate::message::common::{
    put_formats, put_values_checked, Format, FormatCodes, Target, Values,
};
use crate::message::frontend::tag;
use crate::message::layout::{BindLayout, ExecuteLayout, ParseLayout, TargetLayout};

body_message!(
    /// Parse: creates a prepared statement from a query string, optionally fixing parameter types.
    Parse,
    "Parse",
    ParseLayout,
    tag::PARSE,
    ParseLayout::read
);

impl<'a> Parse<'a> {
    /// A Parse message; `param_types` are type OIDs (0 leaves a type unspecified).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` or `query` contains NUL,
    /// [`EncodeError::TooMany`] on more than 65,535 types, or [`EncodeError::TooLong`] when the
    /// message would not fit its length word.
    ///
    /// ```
    /// use pgproto::Parse;
    /// let p = Parse::new("s1", "SELECT $1::int4", &[23]).unwrap();
    /// assert_eq!(p.param_types().collect::<Vec<_>>(), [23]);
    /// ```
    pub fn new(
        name: &str,
        query: &str,
        param_types: &[u32],
    ) -> Result<Parse<'static>, EncodeError> {
        let body = frame_body(
            8 + name.len() + query.len() + 4 * param_types.len(),
            |out| Parse::encode_values(out, name, query, param_types),
        )?;
        Parse::built(body)
    }

    /// The prepared statement's name (empty for the unnamed statement).
    #[inline]
    pub fn name(&self) -> &[u8] {
        self.layout.name.of(self.body.as_slice())
    }

    /// The query string.
    #[inline]
    pub fn query(&self) -> &[u8] {
        self.layout.query.of(self.body.as_slice())
    }

    /// The parameter type OIDs given.
    #[inline]
    pub fn param_types(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.param_types_raw()
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The parameter type OIDs' bytes on the wire, without their count.
    #[inline]
    pub(crate) fn param_types_raw(&self) -> &[u8] {
        self.layout.param_types.of(self.body.as_slice())
    }

    /// Appends a Parse of these values to `out`: the one way every Parse is written (what
    /// [`Parse::new`] builds on). The checks of [`Parse::new`]; on error nothing is written.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::{Encode, Parse};
    /// let mut out = BytesMut::new();
    /// Parse::encode_values(&mut out, "s1", "SELECT $1::int4", &[23]).unwrap();
    /// let mut want = BytesMut::new();
    /// Parse::new("s1", "SELECT $1::int4", &[23]).unwrap().encode(&mut want);
    /// assert_eq!(out, want);
    /// ```
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        name: &str,
        query: &str,
        param_types: &[u32],
    ) -> Result<(), EncodeError> {
        check_cstr("statement name", name.as_bytes())?;
        check_cstr("query string", query.as_bytes())?;
        let count = check_count("parameter types", param_types.len())?;
        let body = name.len() + query.len() + 4 + param_types.len() * 4;
        check_body("Parse", body)?;
        tagged(out, tag::PARSE, body, |out| {
            put_cstr_to(out, name.as_bytes());
            put_cstr_to(out, query.as_bytes());
            out.put_u16(count);
            for oid in param_types {
                out.put_u32(*oid);
            }
        });
        Ok(())
    }

    /// Writes this Parse with the statement named `name` instead, everything else as received
    /// (how a transaction pooler gives a client's statement its own name upstream).
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word; nothing is
    /// written then.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::Parse;
    ///
    /// let p = Parse::decode(b"P_0\0SELECT 1\0\0\0").unwrap();
    /// let mut out = BytesMut::new();
    /// p.encode_renamed(&mut out, b"pool_7").unwrap();
    /// assert_eq!(&out[..], b"P\0\0\0\x16pool_7\0SELECT 1\0\0\0");
    /// ```
    pub fn encode_renamed(&self, out: &mut BytesMut, name: &[u8]) -> Result<(), EncodeError> {
        let rest = after(self.body.as_slice(), self.layout.name);
        write_renamed(
            out,
            tag::PARSE,
            "Parse",
            "statement name",
            (&[], name, rest),
        )
    }
}

body_message!(
    /// Bind: creates a portal from a prepared statement and parameter values.
    Bind,
    "Bind",
    BindLayout,
    tag::BIND,
    BindLayout::read
);

impl<'a> Bind<'a> {
    /// A Bind message of these values (`None` is NULL), built by [`Bind::encode_values`].
    ///
    /// Fails as [`Bind::encode_values`] does.
    ///
    /// ```
    /// use pgproto::{Bind, Format};
    /// let b = Bind::new("", "s1", &[Format::Binary], &[Some(&[0, 0, 0, 7][..]), None], &[]).unwrap();
    /// assert_eq!(b.params().iter().collect::<Vec<_>>(), [Some(&[0, 0, 0, 7][..]), None]);
    /// ```
    pub fn new(
        portal: &str,
        statement: &str,
        param_formats: &[Format],
        params: &[Option<&[u8]>],
        result_formats: &[Format],
    ) -> Result<Bind<'static>, EncodeError> {
        let values: usize = params
            .iter()
            .fold(0, |n, v| n.saturating_add(4 + v.map_or(0, <[u8]>::len)));
        let fixed = 13 + portal.len() + statement.len();
        let formats = 2 * (param_formats.len() + result_formats.len());
        let body = frame_body(
            fixed.saturating_add(formats).saturating_add(values),
            |out| {
                Bind::encode_values(
                    out,
                    portal,
                    statement,
                    param_formats,
                    params,
                    result_formats,
                )
            },
        )?;
        Bind::built(body)
    }

    /// The destination portal (empty for the unnamed portal).
    #[inline]
    pub fn portal(&self) -> &[u8] {
        self.layout.portal().of(self.body.as_slice())
    }

    /// The source prepared statement (empty for the unnamed statement).
    #[inline]
    pub fn statement(&self) -> &[u8] {
        self.layout.statement().of(self.body.as_slice())
    }

    /// The parameter format codes.
    #[inline]
    pub fn param_formats(&self) -> FormatCodes<'_> {
        FormatCodes::from_checked(self.layout.param_formats().of(self.body.as_slice()))
    }

    /// The parameter values, read in place.
    #[inline]
    pub fn params(&self) -> Values<'_> {
        let body = self.body.as_slice();
        Values::from_checked(self.layout.param_count(body), self.layout.params().of(body))
    }

    /// The result-column format codes.
    #[inline]
    pub fn result_formats(&self) -> FormatCodes<'_> {
        let body = self.body.as_slice();
        FormatCodes::from_checked(self.layout.result_formats(body.len()).of(body))
    }

    /// Appends a Bind of these values to `out`: the one way a Bind is written, without building
    /// a [`Bind`] first. `None` is NULL.
    ///
    /// Fails with [`EncodeError::TooMany`] on more than 65,535 formats or values,
    /// [`EncodeError::OutOfRange`] when a value does not fit a message,
    /// [`EncodeError::InteriorNul`] when `portal` or `statement` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word; on error nothing
    /// is written.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::{Bind, Encode, Format};
    /// let mut out = BytesMut::new();
    /// let params = [Some(&[0, 0, 0, 7][..]), None];
    /// Bind::encode_values(&mut out, "", "s1", &[Format::Binary], &params, &[]).unwrap();
    /// let mut want = BytesMut::new();
    /// Bind::new("", "s1", &[Format::Binary], &params, &[]).unwrap().encode(&mut want);
    /// assert_eq!(out, want);
    /// ```
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        portal: &str,
        statement: &str,
        param_formats: &[Format],
        params: &[Option<&[u8]>],
        result_formats: &[Format],
    ) -> Result<(), EncodeError> {
        let param_format_count = check_count("formats", param_formats.len())?;
        let param_count = check_count("values", params.len())?;
        let result_format_count = check_count("formats", result_formats.len())?;
        check_cstr("portal name", portal.as_bytes())?;
        check_cstr("statement name", statement.as_bytes())?;
        // One pass: the values are checked as they are written, and the frame measured after.
        tagged_measured(out, tag::BIND, "Bind", |out| {
            put_cstr_to(out, portal.as_bytes());
            put_cstr_to(out, statement.as_bytes());
            put_formats(out, param_format_count, param_formats);
            put_values_checked(out, param_count, params)?;
            put_formats(out, result_format_count, result_formats);
            Ok(())
        })
    }

    /// Writes this Bind with its source statement named `statement` instead, everything else
    /// (the values included) as received.
    ///
    /// Fails with [`EncodeError::InteriorNul`] when `statement` contains NUL, or
    /// [`EncodeError::TooLong`] when the message would not fit its length word; nothing is
    /// written then.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use pgproto::Bind;
    ///
    /// let b = Bind::decode(b"\0P_0\0\0\0\0\x01\0\0\0\x0242\0\0").unwrap();
    /// let mut out = BytesMut::new();
    /// b.encode_renamed(&mut out, b"s1").unwrap();
    /// assert_eq!(&out[..], b"B\0\0\0\x14\0s1\0\0\0\0\x01\0\0\0\x0242\0\0");
    /// ```
    pub fn encode_renamed(&self, out: &mut BytesMut, statement: &[u8]) -> Result<(), EncodeError> {
        let body = self.body.as_slice();
        let portal = body
            .get(..self.layout.statement().range().start)
            .unwrap_or_default();
        let rest = after(body, self.layout.statement());
        write_renamed(
            out,
            tag::BIND,
            "Bind",
            "statement name",
            (portal, statement, rest),
        )
    }
}

/// Writes a message naming a statement or a portal (Describe, Close).
macro_rules! target_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal) => {
        body_message!(
            $(#[$doc])*
            $name,
            $label,
            TargetLayout,
            $tag,
            |b| TargetLayout::read(b, $label)
        );

        impl<'a> $name<'a> {
            #[doc = concat!("A ", $label, " of a prepared statement or portal.")]
            ///
            /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
            /// [`EncodeError::TooLong`] when the message would not fit its length word.
            pub fn new(target: Target, name: &str) -> Result<$name<'static>, EncodeError> {
                $name::built(frame_body(7 + name.len(), |out| {
                    $name::encode_values(out, target, name)
                })?)
            }

            #[doc = concat!("Writes this ", $label, " naming `name` instead (same target).")]
            ///
            /// Fails with [`EncodeError::InteriorNul`] when `name` contains NUL, or
            /// [`EncodeError::TooLong`] when it is too long for a message; nothing is written then.
            pub fn encode_renamed(&self, out: &mut BytesMut, name: &[u8]) -> Result<(), EncodeError> {
                write_renamed(out, $tag, $label, "name", (&[self.layout.target.byte()], name, &[]))
            }

            /// Whether a statement or a portal is meant.
            #[inline]
            pub fn target(&self) -> Target {
                self.layout.target
            }

            /// Its name (empty for the unnamed one).
            #[inline]
            pub fn name(&self) -> &[u8] {
                self.layout.name.of(self.body.as_slice())
            }

            #[doc = concat!("Appends a ", $label, " to `out`: the one way it is written. The checks of [`", stringify!($name), "::new`];")]
            /// on error nothing is written.
            #[inline]
            pub fn encode_values(out: &mut BytesMut, target: Target, name: &str) -> Result<(), EncodeError> {
                check_cstr("name", name.as_bytes())?;
                check_body($label, name.len() + 2)?;
                tagged(out, $tag, name.len() + 2, |out| {
                    out.put_u8(target.byte());
                    put_cstr(out, name.as_bytes());
                });
                Ok(())
            }
        }
    };
}

target_message!(
    /// Describe: asks for the description of a prepared statement or portal.
    Describe, tag::DESCRIBE, "Describe"
);
target_message!(
    /// Close: closes a prepared statement or portal.
    Close, tag::CLOSE, "Close"
);

body_message!(
    /// Execute: runs a portal, returning at most `max_rows` rows (0 for no limit).
    Execute,
    "Execute",
    ExecuteLayout,
    tag::EXECUTE,
    ExecuteLayout::read
);

impl<'a> Execute<'a> {
    /// An Execute message. Fails with [`EncodeError::InteriorNul`] when `portal` contains NUL,
    /// or [`EncodeError::TooLong`] when the message would not fit its length word.
    pub fn new(portal: &str, max_rows: i32) -> Result<Execute<'static>, EncodeError> {
        let body = frame_body(10 + portal.len(), |out| {
            Execute::encode_values(out, portal, max_rows)
        })?;
        Execute::built(body)
    }

    /// The portal (empty for the unnamed portal).
    #[inline]
    pub fn portal(&self) -> &[u8] {
        self.layout.portal.of(self.body.as_slice())
    }

    /// The row limit; 0 means none.
    #[inline]
    pub fn max_rows(&self) -> i32 {
        self.layout.max_rows
    }

    /// Appends an Execute to `out`: the one way it is written. The checks of [`Execute::new`];
    /// on error nothing is written.
    #[inline]
    pub fn encode_values(
        out: &mut BytesMut,
        portal: &str,
        max_rows: i32,
    ) -> Result<(), EncodeError> {
        let [a, b, c, d] = max_rows.to_be_bytes();
        if portal.is_empty() {
            // The unnamed portal, as drivers run nearly every statement: one store.
            out.put_slice(&[tag::EXECUTE, 0, 0, 0, 9, 0, a, b, c, d]);
            return Ok(());
        }
        check_cstr("portal name", portal.as_bytes())?;
        check_body("Execute", portal.len() + 5)?;
        tagged(out, tag::EXECUTE, portal.len() + 5, |out| {
            out.put_slice(portal.as_bytes());
            // The portal's NUL and the row limit, in one store.
            out.put_slice(&[0, a, b, c, d]);
        });
        Ok(())
    }
}

/// The bytes of `body` after the NUL that ends the string at `name`.
fn after(body: &[u8], name: Span) -> &[u8] {
    body.get(name.range().end + 1..).unwrap_or_default()
}

/// Writes a frame whose body is `head`, `name` and its NUL, then `rest` as received: a message
/// with one name changed. Fails as the constructors do; nothing is written then.
fn write_renamed(
    out: &mut BytesMut,
    t: u8,
    message: &'static str,
    field: &'static str,
    (head, name, rest): (&[u8], &[u8], &[u8]),
) -> Result<(), EncodeError> {
    check_cstr(field, name)?;
    let len = head.len() + name.len() + 1 + rest.len();
    check_body(message, len)?;
    tagged(out, t, len, |o| {
        o.put_slice(head);
        put_cstr(o, name);
        o.put_slice(rest);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Encode;
    use crate::error::DecodeError;
    use crate::message::frontend::FrontendMessage;

    fn body_of(m: &impl Encode) -> Vec<u8> {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        out[5..].to_vec()
    }

    #[test]
    fn decoded_messages_equal_constructed_ones() {
        let p = Parse::new("s1", "SELECT $1, $2", &[23, 25]).unwrap();
        let body = body_of(&p);
        let v = Parse::decode(&body).unwrap();
        assert_eq!(v.name(), b"s1");
        assert_eq!(v.query(), b"SELECT $1, $2");
        assert_eq!(v.param_types().collect::<Vec<_>>(), [23, 25]);
        assert_eq!(v.into_owned(), p);

        let b = Bind::new(
            "p",
            "s1",
            &[Format::Binary, Format::Text],
            &[Some(&[0, 0, 0, 7][..]), None],
            &[Format::Binary],
        )
        .unwrap();
        let body = body_of(&b);
        let v = Bind::decode(&body).unwrap();
        assert_eq!((v.portal(), v.statement()), (&b"p"[..], &b"s1"[..]));
        assert_eq!(
            v.param_formats().iter().collect::<Vec<_>>(),
            [Format::Binary, Format::Text]
        );
        assert_eq!(v.param_formats().for_index(1), Format::Text);
        assert_eq!(v.result_formats().for_index(5), Format::Binary);
        assert_eq!(
            v.params().into_iter().collect::<Vec<_>>(),
            [Some(&[0, 0, 0, 7][..]), None]
        );
        assert_eq!(v.params().raw(), b.params().raw());
        assert_eq!(v.into_owned(), b);

        let d = Describe::new(Target::Portal, "p").unwrap();
        let body = body_of(&d);
        let v = Describe::decode(&body).unwrap();
        assert_eq!((v.target(), v.name()), (Target::Portal, &b"p"[..]));
        assert_eq!(v, d);

        let e = Execute::new("p", 10).unwrap();
        let body = body_of(&e);
        let v = Execute::decode(&body).unwrap();
        assert_eq!((v.portal(), v.max_rows()), (&b"p"[..], 10));
        assert_eq!(v, e);
    }

    #[test]
    fn malformed_bodies_fail_as_the_frame_decoder_reports() {
        fn each(t: u8, body: &[u8]) -> Result<FrontendMessage<'_>, DecodeError> {
            Ok(match t {
                tag::PARSE => FrontendMessage::Parse(Parse::decode(body)?),
                tag::BIND => FrontendMessage::Bind(Bind::decode(body)?),
                tag::DESCRIBE => FrontendMessage::Describe(Describe::decode(body)?),
                _ => FrontendMessage::Execute(Execute::decode(body)?),
            })
        }
        let cases: [(u8, &[u8]); 7] = [
            (tag::PARSE, b"s1\0SELECT\0\0\x02\0\0\0\x17"),
            (tag::PARSE, b"s1\0SELECT"),
            (tag::BIND, b"\0s\0\0\x01\0\x02\0\0\0\0"),
            (tag::BIND, b"\0s\0\0\0\0\x01\0\0\0\x05ab\0\0"),
            (tag::DESCRIBE, b"X\0"),
            (tag::EXECUTE, b"\0\0\0"),
            (tag::EXECUTE, b"\0\0\0\0\0\0"),
        ];
        for (t, body) in cases {
            let whole = FrontendMessage::decode(t, body, None);
            assert!(whole.is_err(), "{body:?}");
            assert_eq!(each(t, body), whole, "{body:?}");
        }
    }
}
