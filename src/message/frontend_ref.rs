//! Borrowed views of the frontend messages a server receives most: Parse, Bind, Describe,
//! Execute (and Sync, Flush, Query, CopyData), read in place from a decoder's buffer by
//! [`FrontendDecoder::next_ref`](crate::FrontendDecoder::next_ref).
//!
//! Each body is checked once, by a layout function of [`crate::message::layout`] that finds
//! where every field lies. The borrowed views here and the owned messages of
//! [`crate::message::frontend`] are both cut from that one layout, so the two can never disagree
//! on what is valid or on the error reported.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::message::common::{FormatCodesRef, Target, ValuesRef};
use crate::message::frontend::{
    tag, Bind, Close, CopyData, CopyFail, Describe, Execute, FrontendMessage, Parse, Query,
};
use crate::message::layout::{BindLayout, ExecuteLayout, ParseLayout, TargetLayout};

/// A frontend message read in place by
/// [`FrontendDecoder::next_ref`](crate::FrontendDecoder::next_ref): the messages of the
/// extended-query pipeline (and Query, CopyData) borrow the decoder's buffer until its next call;
/// the rest, start-up packets included, are owned.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessageRef<'a> {
    /// Parse, borrowed.
    Parse(ParseRef<'a>),
    /// Bind, borrowed.
    Bind(BindRef<'a>),
    /// Describe, borrowed.
    Describe(DescribeRef<'a>),
    /// Close, borrowed.
    Close(CloseRef<'a>),
    /// Execute, borrowed.
    Execute(ExecuteRef<'a>),
    /// Sync.
    Sync,
    /// Flush.
    Flush,
    /// Query: the query string, without its NUL.
    Query(&'a [u8]),
    /// CopyData: the payload.
    CopyData(&'a [u8]),
    /// CopyDone.
    CopyDone,
    /// CopyFail: the error message, without its NUL.
    CopyFail(&'a [u8]),
    /// Terminate.
    Terminate,
    /// Any other message (start-up packets, authentication responses, FunctionCall), owned and
    /// boxed: these are rare, and the box keeps this type small.
    Message(Box<FrontendMessage>),
}

impl FrontendMessageRef<'_> {
    /// An owned copy of the message, equal to what [`FrontendDecoder::next`] would have
    /// returned.
    ///
    /// [`FrontendDecoder::next`]: crate::FrontendDecoder::next
    pub fn to_owned(&self) -> FrontendMessage {
        match self {
            Self::Parse(m) => FrontendMessage::Parse(m.to_owned()),
            Self::Bind(m) => FrontendMessage::Bind(m.to_owned()),
            Self::Describe(m) => FrontendMessage::Describe(m.to_owned()),
            Self::Close(m) => FrontendMessage::Close(m.to_owned()),
            Self::Execute(m) => FrontendMessage::Execute(m.to_owned()),
            Self::Sync => FrontendMessage::Sync,
            Self::Flush => FrontendMessage::Flush,
            Self::Query(sql) => {
                FrontendMessage::Query(Query::from_checked(Bytes::copy_from_slice(sql)))
            }
            Self::CopyData(data) => {
                FrontendMessage::CopyData(CopyData::from_checked(Bytes::copy_from_slice(data)))
            }
            Self::CopyDone => FrontendMessage::CopyDone,
            Self::CopyFail(text) => {
                FrontendMessage::CopyFail(CopyFail::from_checked(Bytes::copy_from_slice(text)))
            }
            Self::Terminate => FrontendMessage::Terminate,
            Self::Message(m) => (**m).clone(),
        }
    }

    /// The message, owned: what [`FrontendDecoder::next`] would have returned.
    ///
    /// [`FrontendDecoder::next`]: crate::FrontendDecoder::next
    pub fn into_owned(self) -> FrontendMessage {
        match self {
            Self::Message(m) => *m,
            other => other.to_owned(),
        }
    }

    /// The message's name as in the PostgreSQL documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message(m) => m.name(),
            // Named by the type byte, as declared once in `tag`.
            lent => crate::message::frontend::name(lent.tag().unwrap_or(0)),
        }
    }

    /// The type byte, or `None` for the untagged start-up packets.
    pub fn tag(&self) -> Option<u8> {
        Some(match self {
            Self::Parse(_) => tag::PARSE,
            Self::Bind(_) => tag::BIND,
            Self::Describe(_) => tag::DESCRIBE,
            Self::Close(_) => tag::CLOSE,
            Self::Execute(_) => tag::EXECUTE,
            Self::Sync => tag::SYNC,
            Self::Flush => tag::FLUSH,
            Self::Query(_) => tag::QUERY,
            Self::CopyData(_) => tag::COPY_DATA,
            Self::CopyDone => tag::COPY_DONE,
            Self::CopyFail(_) => tag::COPY_FAIL,
            Self::Terminate => tag::TERMINATE,
            Self::Message(m) => return m.tag(),
        })
    }
}

/// Parse, borrowed: the accessors of [`Parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseRef<'a> {
    name: &'a [u8],
    query: &'a [u8],
    param_types: &'a [u8],
}

impl<'a> ParseRef<'a> {
    /// Checks a Parse body (the bytes after the length word) in place, with the errors of the
    /// owned decoder.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        ParseLayout::read(body).map(|l| Self::view(body, l))
    }

    #[inline]
    pub(crate) fn view(body: &'a [u8], l: ParseLayout) -> Self {
        Self {
            name: l.name.of(body),
            query: l.query.of(body),
            param_types: l.param_types.of(body),
        }
    }

    /// The prepared statement's name (empty for the unnamed statement).
    #[inline]
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The query string.
    #[inline]
    pub fn query(&self) -> &'a [u8] {
        self.query
    }

    /// The parameter type OIDs given.
    #[inline]
    pub fn param_types(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.param_types
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The parameter type OIDs' bytes on the wire, without their count.
    #[inline]
    pub(crate) fn param_types_raw(&self) -> &'a [u8] {
        self.param_types
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Parse {
        Parse {
            name: Bytes::copy_from_slice(self.name),
            query: Bytes::copy_from_slice(self.query),
            param_types: Bytes::copy_from_slice(self.param_types),
        }
    }
}

/// Bind, borrowed: the accessors of [`Bind`]; the values are read in place, without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindRef<'a> {
    portal: &'a [u8],
    statement: &'a [u8],
    param_formats: FormatCodesRef<'a>,
    params: ValuesRef<'a>,
    result_formats: FormatCodesRef<'a>,
}

impl<'a> BindRef<'a> {
    /// Checks a Bind body (the bytes after the length word) in place, with the errors of the
    /// owned decoder.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        BindLayout::read(body).map(|l| Self::view(body, l))
    }

    #[inline]
    pub(crate) fn view(body: &'a [u8], l: BindLayout) -> Self {
        Self {
            portal: l.portal.of(body),
            statement: l.statement.of(body),
            param_formats: FormatCodesRef::from_checked(l.param_formats.of(body)),
            params: ValuesRef::from_checked(l.param_count, l.params.of(body)),
            result_formats: FormatCodesRef::from_checked(l.result_formats.of(body)),
        }
    }

    /// The destination portal (empty for the unnamed portal).
    #[inline]
    pub fn portal(&self) -> &'a [u8] {
        self.portal
    }

    /// The source prepared statement (empty for the unnamed statement).
    #[inline]
    pub fn statement(&self) -> &'a [u8] {
        self.statement
    }

    /// The parameter format codes.
    #[inline]
    pub fn param_formats(&self) -> FormatCodesRef<'a> {
        self.param_formats
    }

    /// The parameter values.
    #[inline]
    pub fn params(&self) -> ValuesRef<'a> {
        self.params
    }

    /// The result-column format codes.
    #[inline]
    pub fn result_formats(&self) -> FormatCodesRef<'a> {
        self.result_formats
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Bind {
        Bind {
            portal: Bytes::copy_from_slice(self.portal),
            statement: Bytes::copy_from_slice(self.statement),
            param_formats: self.param_formats.to_owned(),
            params: self.params.to_owned(),
            result_formats: self.result_formats.to_owned(),
        }
    }
}

/// Writes the borrowed view of a message naming a statement or a portal (Describe, Close).
macro_rules! target_ref {
    ($(#[$doc:meta])* $name:ident, $owned:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a> {
            target: Target,
            name: &'a [u8],
        }

        impl<'a> $name<'a> {
            #[doc = concat!("Checks a ", $label, " body (the bytes after the length word) in place, with")]
            /// the errors of the owned decoder.
            pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
                TargetLayout::read(body, $label).map(|l| Self::view(body, l))
            }

            #[inline]
            pub(crate) fn view(body: &'a [u8], l: TargetLayout) -> Self {
                Self {
                    target: l.target,
                    name: l.name.of(body),
                }
            }

            /// Whether a statement or a portal is meant.
            #[inline]
            pub fn target(&self) -> Target {
                self.target
            }

            /// Its name (empty for the unnamed one).
            #[inline]
            pub fn name(&self) -> &'a [u8] {
                self.name
            }

            /// An owned copy.
            pub fn to_owned(&self) -> $owned {
                $owned {
                    target: self.target,
                    name: Bytes::copy_from_slice(self.name),
                }
            }
        }
    };
}

target_ref!(
    /// Describe, borrowed: the accessors of [`Describe`].
    DescribeRef,
    Describe,
    "Describe"
);
target_ref!(
    /// Close, borrowed: the accessors of [`Close`].
    CloseRef,
    Close,
    "Close"
);

/// Execute, borrowed: the accessors of [`Execute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteRef<'a> {
    portal: &'a [u8],
    max_rows: i32,
}

impl<'a> ExecuteRef<'a> {
    /// Checks an Execute body (the bytes after the length word) in place, with the errors of
    /// the owned decoder.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        ExecuteLayout::read(body).map(|l| Self::view(body, l))
    }

    #[inline]
    pub(crate) fn view(body: &'a [u8], l: ExecuteLayout) -> Self {
        Self {
            portal: l.portal.of(body),
            max_rows: l.max_rows,
        }
    }

    /// The portal (empty for the unnamed portal).
    #[inline]
    pub fn portal(&self) -> &'a [u8] {
        self.portal
    }

    /// The row limit; 0 means none.
    #[inline]
    pub fn max_rows(&self) -> i32 {
        self.max_rows
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Execute {
        Execute {
            portal: Bytes::copy_from_slice(self.portal),
            max_rows: self.max_rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Encode;
    use crate::message::common::Format;
    use crate::message::common::{FormatCodes, Values};
    use bytes::BytesMut;

    fn body_of(m: &impl Encode) -> Bytes {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        out.freeze().slice(5..)
    }

    #[test]
    fn views_agree_with_owned_messages() {
        let p = Parse::new("s1", "SELECT $1, $2", &[23, 25]).unwrap();
        let body = body_of(&p);
        let v = ParseRef::decode(&body).unwrap();
        assert_eq!(v.name(), b"s1");
        assert_eq!(v.query(), b"SELECT $1, $2");
        assert_eq!(v.param_types().collect::<Vec<_>>(), [23, 25]);
        assert_eq!(v.to_owned(), p);

        let b = Bind::new(
            "p",
            "s1",
            FormatCodes::new(&[Format::Binary, Format::Text]).unwrap(),
            Values::new([Some(&[0, 0, 0, 7][..]), None]).unwrap(),
            FormatCodes::new(&[Format::Binary]).unwrap(),
        )
        .unwrap();
        let body = body_of(&b);
        let v = BindRef::decode(&body).unwrap();
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
        assert_eq!(v.params().raw(), &b.params().raw()[..]);
        assert_eq!(v.to_owned(), b);

        let d = Describe::new(Target::Portal, "p").unwrap();
        let body = body_of(&d);
        let v = DescribeRef::decode(&body).unwrap();
        assert_eq!((v.target(), v.name()), (Target::Portal, &b"p"[..]));
        assert_eq!(v.to_owned(), d);

        let e = Execute::new("p", 10).unwrap();
        let body = body_of(&e);
        let v = ExecuteRef::decode(&body).unwrap();
        assert_eq!((v.portal(), v.max_rows()), (&b"p"[..], 10));
        assert_eq!(v.to_owned(), e);
    }

    #[test]
    fn views_fail_like_owned_messages() {
        fn by_ref(t: u8, body: &[u8]) -> Result<FrontendMessage, DecodeError> {
            Ok(match t {
                tag::PARSE => FrontendMessage::Parse(ParseRef::decode(body)?.to_owned()),
                tag::BIND => FrontendMessage::Bind(BindRef::decode(body)?.to_owned()),
                tag::DESCRIBE => FrontendMessage::Describe(DescribeRef::decode(body)?.to_owned()),
                _ => FrontendMessage::Execute(ExecuteRef::decode(body)?.to_owned()),
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
            let owned = FrontendMessage::decode(t, &Bytes::copy_from_slice(body), None);
            assert!(owned.is_err(), "{body:?}");
            assert_eq!(by_ref(t, body), owned, "{body:?}");
        }
    }
}
