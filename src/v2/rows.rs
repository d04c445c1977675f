//! The rows of protocol 2.0: RowDescription (2.0 layout) and the AsciiRow and BinaryRow that
//! follow it.
//!
//! A 2.0 row carries no field count: the RowDescription before it gives it. Its values follow a
//! bitmap with one bit per field, the most significant bit of the first byte for the first field,
//! set when the value is not NULL. Each value that is there has an Int32 length: in an AsciiRow
//! the length counts itself, in a BinaryRow it does not.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_count, check_cstr, check_value_len};
use crate::error::{DecodeError, EncodeError};

/// One field of a 2.0 [`RowDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// The field name.
    pub name: &'a [u8],
    /// The OID of the field's type.
    pub type_oid: u32,
    /// The type's size (`pg_type.typlen`; negative for variable width).
    pub type_size: i16,
    /// The type modifier (`pg_attribute.atttypmod`).
    pub type_modifier: i32,
}

/// RowDescription (`T`), 2.0 layout: a field count, then each field's name, type OID, type size
/// and type modifier (no table OID, column number or format code, unlike 3.0).
///
/// ```
/// use pgproto::v2::{FieldDescription, RowDescription};
///
/// let d = RowDescription::new(&[FieldDescription {
///     name: b"a",
///     type_oid: 23,
///     type_size: 4,
///     type_modifier: -1,
/// }])
/// .unwrap();
/// assert_eq!(d.len(), 1);
/// assert_eq!(d.fields().next().unwrap().name, b"a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription {
    count: u16,
    /// The body as on the wire: the count, then the fields.
    raw: Bytes,
}

impl RowDescription {
    /// A RowDescription of `fields`; fails with [`EncodeError::InteriorNul`] for a name with
    /// NUL or [`EncodeError::TooMany`] for more than 65,535 fields.
    pub fn new(fields: &[FieldDescription<'_>]) -> Result<Self, EncodeError> {
        let count = check_count("fields", fields.len())?;
        let mut raw =
            BytesMut::with_capacity(2 + fields.iter().map(|f| f.name.len() + 11).sum::<usize>());
        raw.put_u16(count);
        for f in fields {
            check_cstr("field name", f.name)?;
            raw.put_slice(f.name);
            raw.put_u8(0);
            raw.put_u32(f.type_oid);
            raw.put_i16(f.type_size);
            raw.put_i32(f.type_modifier);
        }
        Ok(Self {
            count,
            raw: raw.freeze(),
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.count.into()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The fields, in order.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            rest: self.raw.get(2..).unwrap_or_default(),
            left: self.count,
        }
    }

    /// The body as on the wire (after the type byte).
    pub(crate) fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "RowDescription");
        let count = r.u16("field count")?;
        r.ensure_count(count.into(), 11, "field count")?;
        for _ in 0..count {
            r.cstr_slice("field name")?;
            r.take(10, "field type")?;
        }
        r.finish()?;
        Ok(Self {
            count,
            raw: body.clone(),
        })
    }
}

/// The fields of a 2.0 [`RowDescription`], in order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Fields<'a> {
    type Item = FieldDescription<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        // INVARIANT: the body was checked when the description was built or decoded; `get`
        // keeps a broken one from panicking anyway.
        let nul = crate::codec::reader::find_nul(self.rest)?;
        let name = &self.rest[..nul];
        let t = self.rest.get(nul + 1..nul + 11)?;
        self.rest = &self.rest[nul + 11..];
        self.left -= 1;
        Some(FieldDescription {
            name,
            type_oid: u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
            type_size: i16::from_be_bytes([t[4], t[5]]),
            type_modifier: i32::from_be_bytes([t[6], t[7], t[8], t[9]]),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left.into(), Some(self.left.into()))
    }
}

impl ExactSizeIterator for Fields<'_> {}

/// The length of a row's null bitmap for `count` fields.
pub(crate) fn bitmap_len(count: u16) -> usize {
    usize::from(count).div_ceil(8)
}

/// Whether field `i` is present (not NULL) in `bitmap`.
#[inline]
pub(crate) fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

/// The body of a row (the bitmap, then the values as on the wire), built from values.
fn build(values: &[Option<&[u8]>], binary: bool) -> Result<(u16, Bytes), EncodeError> {
    let count = check_count("values", values.len())?;
    let mut len = bitmap_len(count);
    for v in values.iter().flatten() {
        check_value_len("value", v.len() + 4)?;
        len += 4 + v.len();
    }
    let mut raw = BytesMut::with_capacity(len);
    let mut bitmap = vec![0u8; bitmap_len(count)];
    for (i, v) in values.iter().enumerate() {
        if v.is_some() {
            bitmap[i / 8] |= 0x80 >> (i % 8);
        }
    }
    raw.put_slice(&bitmap);
    for v in values.iter().flatten() {
        // INVARIANT: checked above to fit an Int32 with its own 4 bytes.
        let n = if binary { v.len() } else { v.len() + 4 };
        raw.put_i32(n as i32);
        raw.put_slice(v);
    }
    Ok((count, raw.freeze()))
}

/// Checks a row body of `count` fields: the bitmap, then every value that is present, ending
/// exactly at the end.
pub(crate) fn check(
    body: &Bytes,
    count: u16,
    binary: bool,
    message: &'static str,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body, message);
    let bitmap = r.take(bitmap_len(count), "null bitmap")?;
    for i in 0..usize::from(count) {
        if !bit(bitmap, i) {
            continue;
        }
        let len = r.i32("field length")?;
        let n = value_len(len, binary).ok_or(DecodeError::InvalidCount {
            message,
            field: "field length",
            count: len.into(),
        })?;
        r.take(n, "field value")?;
    }
    r.finish()
}

/// The length of a value whose length word is `len`: less the word's own 4 bytes in an
/// AsciiRow; `None` if negative.
#[inline]
pub(crate) fn value_len(len: i32, binary: bool) -> Option<usize> {
    let n = if binary { len } else { len.checked_sub(4)? };
    usize::try_from(n).ok()
}

macro_rules! row_type {
    ($(#[$doc:meta])* $name:ident, $label:literal, $binary:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            count: u16,
            /// The body as on the wire: the bitmap, then the values.
            raw: Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $label, " of `values` (`None` is NULL); fails with")]
            /// [`EncodeError::TooMany`] for more than 65,535 values or
            /// [`EncodeError::OutOfRange`] for a value too long for its Int32 length.
            pub fn new(values: &[Option<&[u8]>]) -> Result<Self, EncodeError> {
                let (count, raw) = build(values, $binary)?;
                Ok(Self { count, raw })
            }

            /// The number of fields (given by the RowDescription before the row).
            pub fn len(&self) -> usize {
                self.count.into()
            }

            /// Whether the row has no fields.
            pub fn is_empty(&self) -> bool {
                self.count == 0
            }

            /// The values in order, `None` for NULL; checked when the row was decoded.
            pub fn columns(&self) -> RowValues<'_> {
                RowValues {
                    raw: &self.raw,
                    at: bitmap_len(self.count),
                    index: 0,
                    count: self.count,
                    binary: $binary,
                }
            }

            /// The value of field `index` (`Some(None)` for NULL), or `None` past the end.
            pub fn get(&self, index: usize) -> Option<Option<&[u8]>> {
                self.columns().nth(index)
            }

            /// The body as on the wire, after the type byte.
            pub fn raw(&self) -> &Bytes {
                &self.raw
            }

            pub(crate) fn decode(body: &Bytes, count: u16) -> Result<Self, DecodeError> {
                check(body, count, $binary, $label)?;
                Ok(Self { count, raw: body.clone() })
            }
        }
    };
}

row_type!(
    /// AsciiRow (`D`): one row of a result in text form. Each value's length word counts its
    /// own 4 bytes.
    ///
    /// ```
    /// use pgproto::v2::AsciiRow;
    ///
    /// let row = AsciiRow::new(&[Some(b"1"), None, Some(b"x")]).unwrap();
    /// assert_eq!(row.raw().as_ref(), b"\xa0\0\0\0\x051\0\0\0\x05x");
    /// assert_eq!(row.columns().collect::<Vec<_>>(), [Some(&b"1"[..]), None, Some(&b"x"[..])]);
    /// ```
    AsciiRow,
    "AsciiRow",
    false
);

row_type!(
    /// BinaryRow (`B`): one row of a binary cursor's result. Each value's length word counts
    /// only the value.
    ///
    /// ```
    /// use pgproto::v2::BinaryRow;
    ///
    /// let row = BinaryRow::new(&[Some(&[0, 0, 0, 7][..])]).unwrap();
    /// assert_eq!(row.raw().as_ref(), b"\x80\0\0\0\x04\0\0\0\x07");
    /// assert_eq!(row.get(0), Some(Some(&[0, 0, 0, 7][..])));
    /// ```
    BinaryRow,
    "BinaryRow",
    true
);

/// The values of an [`AsciiRow`] or a [`BinaryRow`], in order: `None` for NULL.
#[derive(Debug, Clone)]
pub struct RowValues<'a> {
    raw: &'a [u8],
    at: usize,
    index: u16,
    count: u16,
    binary: bool,
}

impl<'a> Iterator for RowValues<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let i = usize::from(self.index);
        self.index += 1;
        if !bit(self.raw, i) {
            return Some(None);
        }
        // INVARIANT: the row was checked when it was built or decoded; a broken one ends the
        // iteration instead of panicking.
        let h = self.raw.get(self.at..self.at + 4)?;
        let n = value_len(i32::from_be_bytes([h[0], h[1], h[2], h[3]]), self.binary)?;
        let v = self.raw.get(self.at + 4..self.at + 4 + n)?;
        self.at += 4 + n;
        Some(Some(v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.count - self.index);
        (0, Some(left))
    }
}
