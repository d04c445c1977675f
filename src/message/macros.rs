//! Macros that write the repetitive message types: a body that is one string, or one run of
//! raw bytes.

macro_rules! text_message {
    ($(#[$doc:meta])* $name:ident, $tag:expr, $label:literal, $field:ident, $field_label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $field: ::bytes::Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $label, " message; fails if the text contains NUL.")]
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

            #[doc = concat!("The ", $field_label, " as UTF-8.")]
            pub fn as_str(&self) -> Result<&str, $crate::error::DecodeError> {
                $crate::message::common::utf8($field_label, &self.$field)
            }

            pub(crate) fn decode(body: &::bytes::Bytes) -> Result<Self, $crate::error::DecodeError> {
                let mut r = $crate::codec::reader::Reader::new(body, $label);
                let $field = r.cstr($field_label)?;
                r.finish()?;
                Ok(Self { $field })
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
            #[doc = concat!("A ", $label, " message carrying `data`.")]
            pub fn new(data: impl Into<::bytes::Bytes>) -> Result<Self, $crate::error::EncodeError> {
                let data = data.into();
                $crate::codec::check_body($label, data.len())?;
                Ok(Self { data })
            }

            /// The payload.
            pub fn data(&self) -> &::bytes::Bytes {
                &self.data
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
