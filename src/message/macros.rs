//! Macros that write the repetitive parts: the type bytes of one direction (declared once), and
//! the message types whose body is one string or one run of raw bytes.

/// Declares the type bytes of one direction once, in a table of `CONST = byte, "Name", Class;`
/// rows, and writes from it everything that depends on them: the public `tag` module of
/// constants, `name(byte)` (the message's name for error reports) and `CLASS` (each byte's size
/// class for the length limits, [`Class::Unknown`](crate::limits::Class) for bytes that start no
/// message).
///
/// With `enum Name;` after `mod tag;`, a row may also say which variant of that enum its byte
/// decodes to: `=> Variant(Type)` (decoded by `Type::decode_payload`) or `=> Variant` (an empty
/// body); the table then also writes `decode_declared`, the decode dispatch for those rows.
macro_rules! type_bytes {
    (
        $(#[$module_doc:meta])*
        mod tag;
        enum $enum:ident;
        $( $(#[$doc:meta])* $constant:ident = $byte:literal, $name:literal, $class:ident
            $(=> $variant:ident $(($ty:ident))?)?; )*
    ) => {
        type_bytes! {
            $(#[$module_doc])*
            mod tag;
            $( $(#[$doc])* $constant = $byte, $name, $class; )*
        }

        /// Decodes a body by its type byte, for the bytes whose row in the table names their
        /// message; for the others (decoded by hand, or no message at all) the body comes back
        /// untouched as the error.
        #[inline]
        pub(crate) fn decode_declared(
            t: u8,
            body: $crate::message::payload::Payload<'_>,
        ) -> Result<
            Result<$enum<'_>, $crate::error::DecodeError>,
            $crate::message::payload::Payload<'_>,
        > {
            $( type_bytes!(@arm $enum, t, body, $byte, $name $(=> $variant $(($ty))?)?); )*
            Err(body)
        }
    };
    (@arm $enum:ident, $t:ident, $body:ident, $byte:literal, $name:literal => $variant:ident($ty:ident)) => {
        if $t == $byte {
            return Ok($ty::decode_payload($body).map($enum::$variant));
        }
    };
    (@arm $enum:ident, $t:ident, $body:ident, $byte:literal, $name:literal => $variant:ident) => {
        if $t == $byte {
            return Ok(
                $crate::message::layout::empty_layout($body.as_slice(), $name).map(|()| $enum::$variant),
            );
        }
    };
    (@arm $enum:ident, $t:ident, $body:ident, $byte:literal, $name:literal) => {};
    (
        $(#[$module_doc:meta])*
        mod tag;
        $( $(#[$doc:meta])* $constant:ident = $byte:literal, $name:literal, $class:ident; )*
    ) => {
        $(#[$module_doc])*
        pub mod tag {
            $( $(#[$doc])* pub const $constant: u8 = $byte; )*
        }

        /// The name of the message a type byte starts, for error reports.
        pub(crate) fn name(t: u8) -> &'static str {
            match t {
                $( $byte => $name, )*
                _ => "message",
            }
        }

        /// The size class of every type byte.
        pub(crate) const CLASS: [$crate::limits::Class; 256] = {
            let mut t = [$crate::limits::Class::Unknown; 256];
            $( t[$byte as usize] = $crate::limits::Class::$class; )*
            t
        };
    };
}

/// Writes a message whose body is one NUL-terminated string (Query, CopyFail, PasswordMessage):
/// the text kept without its NUL, borrowed or owned.
macro_rules! text_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal, $field:ident, $field_label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<'a> {
            $field: $crate::message::payload::Payload<'a>,
        }

        impl<'a> $name<'a> {
            #[doc = concat!("A ", $label, " message; fails with")]
            /// [`EncodeError::InteriorNul`] if the text contains NUL, or
            /// [`EncodeError::TooLong`] if it does not fit one message.
            pub fn new(text: impl AsRef<[u8]>) -> Result<$name<'static>, $crate::error::EncodeError> {
                let t = text.as_ref();
                $crate::codec::check_cstr($field_label, t)?;
                $crate::codec::check_body($label, t.len() + 1)?;
                Ok($name { $field: ::bytes::Bytes::copy_from_slice(t).into() })
            }

            #[doc = concat!("The ", $field_label, " as sent, without its NUL.")]
            #[inline]
            pub fn $field(&self) -> &[u8] {
                self.$field.as_slice()
            }

            #[doc = concat!("The ", $field_label, " as UTF-8; fails with")]
            /// [`DecodeError::InvalidUtf8`] if it is not.
            pub fn as_str(&self) -> Result<&str, $crate::error::DecodeError> {
                $crate::message::common::utf8($field_label, self.$field.as_slice())
            }

            /// The message, owned: borrowed text is copied.
            pub fn into_owned(self) -> $name<'static> {
                $name { $field: self.$field.into_owned() }
            }

            /// The message, borrowed from `self`.
            pub fn as_borrowed(&self) -> $name<'_> {
                $name { $field: self.$field.borrow() }
            }

            #[doc = concat!("Appends a ", $label, " of `text` to `out` directly, without building a")]
            #[doc = concat!("[`", stringify!($name), "`] first: the same checks as [`", stringify!($name), "::new`], and on error nothing is")]
            /// written.
            #[inline]
            pub fn encode_str(out: &mut ::bytes::BytesMut, text: &str) -> Result<(), $crate::error::EncodeError> {
                let t = text.as_bytes();
                $crate::codec::check_cstr($field_label, t)?;
                $crate::codec::check_body($label, t.len() + 1)?;
                $crate::codec::tagged(out, $tag, t.len() + 1, |out| $crate::codec::put_cstr(out, t));
                Ok(())
            }

            /// A message of text already checked (no NUL, length within limits).
            #[allow(dead_code)]
            #[inline]
            pub(crate) fn from_checked($field: impl Into<$crate::message::payload::Payload<'a>>) -> Self {
                Self { $field: $field.into() }
            }

            #[doc = concat!("Checks a ", $label, " body (the bytes after the length word), borrowing it.")]
            pub fn decode(body: &'a [u8]) -> Result<Self, $crate::error::DecodeError> {
                Self::decode_payload(body.into())
            }

            #[inline]
            pub(crate) fn decode_payload(body: $crate::message::payload::Payload<'a>) -> Result<Self, $crate::error::DecodeError> {
                let text = $crate::message::layout::text_layout(body.as_slice(), $label, $field_label)?;
                Ok(Self { $field: body.slice(text.range()) })
            }
        }

        impl $crate::codec::Encode for $name<'_> {
            fn encode(&self, out: &mut ::bytes::BytesMut) {
                let t = self.$field.as_slice();
                $crate::codec::tagged(out, $tag, t.len() + 1, |out| $crate::codec::put_cstr(out, t));
            }

            fn encoded_len(&self) -> usize {
                self.$field.len() + 6
            }
        }
    };
}

/// Writes a message whose body is raw bytes (CopyData, SASLResponse, GSSResponse), borrowed or
/// owned.
macro_rules! raw_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<'a> {
            data: $crate::message::payload::Payload<'a>,
        }

        impl<'a> $name<'a> {
            #[doc = concat!("A ", $label, " message carrying `data`; fails with")]
            /// [`EncodeError::TooLong`] if it does not fit one message.
            pub fn new(data: impl Into<::bytes::Bytes>) -> Result<$name<'static>, $crate::error::EncodeError> {
                let data = data.into();
                $crate::codec::check_body($label, data.len())?;
                Ok($name { data: data.into() })
            }

            /// A message borrowing `data` (which must fit one message: it is not checked).
            #[inline]
            pub fn borrowed(data: &'a [u8]) -> Self {
                Self { data: data.into() }
            }

            /// The payload.
            #[inline]
            pub fn data(&self) -> &[u8] {
                self.data.as_slice()
            }

            /// The payload as [`Bytes`](::bytes::Bytes): shared if the message is owned, copied if
            /// it is borrowed.
            pub fn into_data(self) -> ::bytes::Bytes {
                self.data.into_shared()
            }

            /// The message, owned: a borrowed payload is copied.
            pub fn into_owned(self) -> $name<'static> {
                $name { data: self.data.into_owned() }
            }

            /// The message, borrowed from `self`.
            pub fn as_borrowed(&self) -> $name<'_> {
                $name { data: self.data.borrow() }
            }

            /// A message of data already checked (length within limits).
            #[allow(dead_code)]
            #[inline]
            pub(crate) fn from_checked(data: impl Into<$crate::message::payload::Payload<'a>>) -> Self {
                Self { data: data.into() }
            }

            #[allow(dead_code)]
            #[inline]
            pub(crate) fn decode_payload(body: $crate::message::payload::Payload<'a>) -> Result<Self, $crate::error::DecodeError> {
                Ok(Self { data: body })
            }
        }

        impl $crate::codec::Encode for $name<'_> {
            fn encode(&self, out: &mut ::bytes::BytesMut) {
                let d = self.data.as_slice();
                $crate::codec::tagged(out, $tag, d.len(), |out| ::bytes::BufMut::put_slice(out, d));
            }

            fn encoded_len(&self) -> usize {
                self.data.len() + 5
            }
        }
    };
}

/// Declares a message kept as its body (borrowed or owned) and where its fields lie, and writes
/// what every such message has: decoding by its layout reader `$read` (`decode`, which borrows,
/// and `decode_payload`), `into_owned`, `as_borrowed`, `body`, building from a body an encoder
/// just wrote (`built`), and encoding by copying the body.
macro_rules! body_message {
    ($(#[$doc:meta])* $name:ident, $label:literal, $layout:ty, $tag:expr, $read:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<'a> {
            body: $crate::message::payload::Payload<'a>,
            layout: $layout,
        }

        impl<'a> $name<'a> {
            #[doc = concat!("Checks a ", $label, " body (the bytes after the length word), borrowing it; fails")]
            /// with the [`DecodeError`](crate::DecodeError) of a malformed body.
            pub fn decode(body: &'a [u8]) -> Result<Self, $crate::error::DecodeError> {
                Self::decode_payload(body.into())
            }

            #[inline]
            pub(crate) fn decode_payload(
                body: $crate::message::payload::Payload<'a>,
            ) -> Result<Self, $crate::error::DecodeError> {
                let layout = ($read)(body.as_slice())?;
                Ok(Self { body, layout })
            }

            /// The message of a body an encoder of this module just wrote.
            #[allow(dead_code)]
            fn built(body: ::bytes::Bytes) -> Result<$name<'static>, $crate::error::EncodeError> {
                let layout = $crate::codec::read_back($label, ($read)(&body[..]))?;
                Ok($name { body: body.into(), layout })
            }

            /// The message, owned: a borrowed body is copied out of the buffer it points into.
            pub fn into_owned(self) -> $name<'static> {
                $name {
                    body: self.body.into_owned(),
                    layout: self.layout,
                }
            }

            /// The message, borrowed from `self`.
            pub fn as_borrowed(&self) -> $name<'_> {
                $name {
                    body: self.body.borrow(),
                    layout: self.layout,
                }
            }

            /// The message's body as on the wire (after the length word).
            pub fn body(&self) -> &[u8] {
                self.body.as_slice()
            }

            #[allow(dead_code)]
            #[inline]
            pub(crate) fn from_parts(body: $crate::message::payload::Payload<'a>, layout: $layout) -> Self {
                Self { body, layout }
            }
        }

        impl $crate::codec::Encode for $name<'_> {
            #[inline]
            fn encode(&self, out: &mut ::bytes::BytesMut) {
                let body = self.body.as_slice();
                $crate::codec::tagged(out, $tag, body.len(), |out| ::bytes::BufMut::put_slice(out, body));
            }

            fn encoded_len(&self) -> usize {
                5 + self.body.len()
            }
        }
    };
}
