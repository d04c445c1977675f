//! What the messages inside CopyData share: the [`Payload`] trait, fixed-size fields, and a
//! macro for the messages made only of them.

use bytes::{BufMut, BytesMut};

use crate::codec::reader::SliceReader;
use crate::codec::MAX_BODY;
use crate::error::{DecodeError, EncodeError};
use crate::replication::{Lsn, Timestamp};

/// A message carried inside a CopyData: a type byte and a body, with no length word of its own
/// (the CopyData frame gives the length).
///
/// Encoding cannot fail: constructors have checked that the message fits one CopyData.
///
/// ```
/// use bytes::BytesMut;
/// use pgproto::replication::{Lsn, Payload, StandbyStatusUpdate, Timestamp};
///
/// let reply = StandbyStatusUpdate::new(Lsn::new(8), Lsn::new(8), Lsn::new(8), Timestamp::EPOCH, false);
/// let mut out = BytesMut::new();
/// reply.encode_copy_data(&mut out); // a whole CopyData frame, ready to send
/// assert_eq!(&out[..6], b"d\0\0\0\x26r");
/// assert_eq!(out.len(), 5 + reply.payload_len());
/// ```
pub trait Payload {
    /// Appends the message (type byte and body) to `out`.
    fn encode_payload(&self, out: &mut BytesMut);

    /// The number of bytes [`Payload::encode_payload`] appends.
    fn payload_len(&self) -> usize;

    /// Appends a whole CopyData message (`d`, length word, payload) carrying this message.
    fn encode_copy_data(&self, out: &mut BytesMut) {
        let len = self.payload_len();
        out.reserve(5 + len);
        out.put_u8(b'd');
        // INVARIANT: constructors keep payloads within MAX_BODY.
        out.put_i32((len + 4) as i32);
        self.encode_payload(out);
    }
}

/// Checks that a payload of `len` bytes fits one CopyData.
pub(crate) fn check_payload(message: &'static str, len: usize) -> Result<(), EncodeError> {
    if len > MAX_BODY {
        Err(EncodeError::TooLong {
            message,
            len: len.saturating_add(5),
        })
    } else {
        Ok(())
    }
}

/// A fixed-size field of a message inside CopyData.
pub(crate) trait Field: Sized + Copy {
    /// Its size on the wire.
    const LEN: usize;
    /// Reads it.
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError>;
    /// Writes it.
    fn put(self, out: &mut BytesMut);
}

impl Field for Lsn {
    const LEN: usize = 8;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.u64(field).map(Self::new)
    }
    fn put(self, out: &mut BytesMut) {
        out.put_u64(self.as_u64());
    }
}

impl Field for Timestamp {
    const LEN: usize = 8;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.i64(field).map(Self::from_micros)
    }
    fn put(self, out: &mut BytesMut) {
        out.put_i64(self.as_micros());
    }
}

impl Field for u32 {
    const LEN: usize = 4;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.u32(field)
    }
    fn put(self, out: &mut BytesMut) {
        out.put_u32(self);
    }
}

impl Field for u64 {
    const LEN: usize = 8;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.u64(field)
    }
    fn put(self, out: &mut BytesMut) {
        out.put_u64(self);
    }
}

impl Field for i64 {
    const LEN: usize = 8;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.i64(field)
    }
    fn put(self, out: &mut BytesMut) {
        out.put_i64(self);
    }
}

/// A Byte1 that is 0 or 1; anything else is refused, so that decoding and encoding agree.
impl Field for bool {
    const LEN: usize = 1;
    fn read(r: &mut SliceReader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        match r.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(invalid(r.message(), field, v.into())),
        }
    }
    fn put(self, out: &mut BytesMut) {
        out.put_u8(self.into());
    }
}

/// [`DecodeError::InvalidValue`].
pub(crate) fn invalid(message: &'static str, field: &'static str, value: i64) -> DecodeError {
    DecodeError::InvalidValue {
        message,
        field,
        value,
    }
}

/// Reads an `Int8(0)` flags byte ("currently unused"), refusing any other value as PostgreSQL's
/// subscriber does.
pub(crate) fn zero_flags(r: &mut SliceReader<'_>) -> Result<(), DecodeError> {
    match r.u8("flags")? {
        0 => Ok(()),
        v => Err(invalid(r.message(), "flags", v.into())),
    }
}

/// Declares a message made of a type byte and fixed-size fields only: the struct, its
/// constructor and accessors, its decoding from a [`SliceReader`] placed after the type byte,
/// and [`Payload`]. With `zero_flags` the body starts with an `Int8(0)` flags byte.
macro_rules! fixed_message {
    (
        $(#[$doc:meta])*
        $name:ident, $tag:expr, $label:literal $(, $flags:ident)?;
        { $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $fname:literal, )* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            $( $field: $ty, )*
        }

        impl $name {
            /// The type byte.
            pub const TAG: u8 = $tag;

            #[doc = concat!("A ", $label, " message.")]
            #[allow(clippy::too_many_arguments, clippy::new_without_default)]
            pub const fn new($( $field: $ty ),*) -> Self {
                Self { $( $field ),* }
            }

            $(
                $(#[$fdoc])*
                pub const fn $field(&self) -> $ty {
                    self.$field
                }
            )*

            /// Reads the body after the type byte; fails on trailing bytes.
            #[allow(unused_mut, unused_variables)]
            pub(crate) fn read(
                mut r: $crate::codec::reader::SliceReader<'_>,
            ) -> Result<Self, $crate::error::DecodeError> {
                $( let _ = stringify!($flags); $crate::replication::wire::zero_flags(&mut r)?; )?
                let m = Self {
                    $( $field: <$ty as $crate::replication::wire::Field>::read(&mut r, $fname)?, )*
                };
                r.finish()?;
                Ok(m)
            }
        }

        impl $crate::replication::Payload for $name {
            fn encode_payload(&self, out: &mut ::bytes::BytesMut) {
                ::bytes::BufMut::put_u8(out, $tag);
                $( let _ = stringify!($flags); ::bytes::BufMut::put_u8(out, 0); )?
                $( $crate::replication::wire::Field::put(self.$field, out); )*
            }

            fn payload_len(&self) -> usize {
                1 $( + { let _ = stringify!($flags); 1 } )?
                    $( + <$ty as $crate::replication::wire::Field>::LEN )*
            }
        }
    };
}

/// Writes a NUL-terminated string.
pub(crate) fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}
