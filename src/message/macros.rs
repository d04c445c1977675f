//! Macros that write the repetitive parts: the type bytes of one direction (declared once), and
//! the message types whose body is one string or one run of raw bytes.

/// Declares the type bytes of one direction once, in a table of `CONST = byte, "Name", Class;`
/// rows, and writes from it everything that depends on them: the public `tag` module of
/// constants, `name(byte)` (the message's name for error reports) and `CLASS` (each byte's size
/// class for the length limits, [`Class::Unknown`](crate::limits::Class) for bytes that start no
/// message).
macro_rules! type_bytes {
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

/// Writes a tagged frame of `body_len` bytes whose body the block writes, field by field, into
/// `$w` (an `impl BufMut`): a small frame through [`tagged_exact`](crate::codec::tagged_exact)
/// (reserved and filled once, then plain stores), a large one through
/// [`tagged`](crate::codec::tagged) (no fill before the copy of its large values).
macro_rules! tagged_fields {
    ($out:expr, $tag:expr, $body_len:expr, |$w:ident| $body:block) => {{
        let (out, tag, body_len): (&mut ::bytes::BytesMut, u8, usize) = ($out, $tag, $body_len);
        if body_len <= $crate::codec::SMALL_FRAME {
            $crate::codec::tagged_exact(out, tag, body_len, |$w| $body)
        } else {
            $crate::codec::tagged(out, tag, body_len, |$w| $body)
        }
    }};
}

macro_rules! text_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal, $field:ident, $field_label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $field: ::bytes::Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $label, " message; fails with")]
            /// [`EncodeError::InteriorNul`] if the text contains NUL, or
            /// [`EncodeError::TooLong`] if it does not fit one message.
            pub fn new(text: impl AsRef<[u8]>) -> Result<Self, $crate::error::EncodeError> {
                let t = text.as_ref();
                $crate::codec::check_cstr($field_label, t)?;
                $crate::codec::check_body($label, t.len() + 1)?;
                Ok(Self { $field: ::bytes::Bytes::copy_from_slice(t) })
            }

            #[doc = concat!("The ", $field_label, " as sent, without its NUL.")]
            pub fn $field(&self) -> &[u8] {
                &self.$field
            }

            #[doc = concat!("The ", $field_label, " as UTF-8; fails with")]
            /// [`DecodeError::InvalidUtf8`] if it is not.
            pub fn as_str(&self) -> Result<&str, $crate::error::DecodeError> {
                $crate::message::common::utf8($field_label, &self.$field)
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
            pub(crate) fn from_checked($field: ::bytes::Bytes) -> Self {
                Self { $field }
            }

            pub(crate) fn decode(body: &::bytes::Bytes) -> Result<Self, $crate::error::DecodeError> {
                let text = $crate::message::layout::text_layout(body, $label, $field_label)?;
                Ok(Self { $field: text.share(body) })
            }
        }

        impl $crate::codec::Encode for $name {
            fn encode(&self, out: &mut ::bytes::BytesMut) {
                $crate::codec::tagged(out, $tag, self.$field.len() + 1, |out| $crate::codec::put_cstr(out, &self.$field));
            }

            fn encoded_len(&self) -> usize {
                self.$field.len() + 6
            }
        }
    };
}

macro_rules! raw_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            data: ::bytes::Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $label, " message carrying `data`; fails with")]
            /// [`EncodeError::TooLong`] if it does not fit one message.
            pub fn new(data: impl Into<::bytes::Bytes>) -> Result<Self, $crate::error::EncodeError> {
                let data = data.into();
                $crate::codec::check_body($label, data.len())?;
                Ok(Self { data })
            }

            /// The payload.
            pub fn data(&self) -> &::bytes::Bytes {
                &self.data
            }

            /// A message of data already checked (length within limits).
            #[allow(dead_code)]
            pub(crate) fn from_checked(data: ::bytes::Bytes) -> Self {
                Self { data }
            }

            pub(crate) fn decode(body: &::bytes::Bytes) -> Self {
                Self { data: body.clone() }
            }
        }

        impl $crate::codec::Encode for $name {
            fn encode(&self, out: &mut ::bytes::BytesMut) {
                $crate::codec::tagged(out, $tag, self.data.len(), |out| ::bytes::BufMut::put_slice(out, &self.data));
            }

            fn encoded_len(&self) -> usize {
                self.data.len() + 5
            }
        }
    };
}
