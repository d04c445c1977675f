//! Row-shaped backend messages: RowDescription, DataRow and ParameterDescription.
//!
//! RowDescription and ParameterDescription are checked once when decoded; a DataRow's frame
//! and column count are checked when it is decoded and its values as they are read. Everything
//! is read through borrowing iterators that allocate nothing.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::reader::Reader;
use crate::codec::{check_body, check_count, check_cstr, put_cstr, tagged, Encode};
use crate::error::{DecodeError, EncodeError};
use crate::message::common::{put_values, values_raw, Format};
use crate::message::payload::Payload;

/// The bytes of each field after its name: table OID, column number, type OID, type size,
/// type modifier, format code.
const FIELD_FIXED: usize = 4 + 2 + 4 + 2 + 4 + 2;

/// One field of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// The field (column) name.
    pub name: &'a [u8],
    /// The OID of the table the column belongs to, or 0.
    pub table_oid: u32,
    /// The column's attribute number in that table, or 0.
    pub column_id: i16,
    /// The OID of the field's data type.
    pub type_oid: u32,
    /// The data type size (`pg_type.typlen`); negative for variable-width types.
    pub type_size: i16,
    /// The type modifier (`pg_attribute.atttypmod`).
    pub type_modifier: i32,
    /// The format the values will come in.
    pub format: Format,
}

impl<'a> FieldDescription<'a> {
    /// A text-format column named `name` of type `type_oid` that belongs to no table, with the
    /// size and modifier of a variable-width type (-1): what a server sends for a computed
    /// column. Set the other fields with struct update syntax where they differ.
    ///
    /// ```
    /// use pgproto::FieldDescription;
    /// let n = FieldDescription { type_size: 4, ..FieldDescription::new(b"n", 23) };
    /// assert_eq!((n.name, n.type_oid, n.type_size, n.type_modifier), (&b"n"[..], 23, 4, -1));
    /// ```
    pub const fn new(name: &'a [u8], type_oid: u32) -> Self {
        Self {
            name,
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_size: -1,
            type_modifier: -1,
            format: Format::Text,
        }
    }
}

/// RowDescription (`T`): the fields of the rows that follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription {
    count: u16,
    raw: Bytes,
}

impl RowDescription {
    /// The backend type byte.
    pub const TAG: u8 = b'T';

    /// A RowDescription of the given fields.
    ///
    /// Fails with [`EncodeError::TooMany`] on more than 65,535 fields,
    /// [`EncodeError::InteriorNul`] when a name contains NUL, or [`EncodeError::TooLong`] when
    /// the message would not fit its length word.
    ///
    /// ```
    /// use pgproto::{FieldDescription, Format, RowDescription};
    /// let d = RowDescription::new(&[FieldDescription {
    ///     name: b"id",
    ///     table_oid: 0,
    ///     column_id: 0,
    ///     type_oid: 23,
    ///     type_size: 4,
    ///     type_modifier: -1,
    ///     format: Format::Text,
    /// }])
    /// .unwrap();
    /// assert_eq!(d.fields().next().unwrap().name, b"id");
    /// ```
    pub fn new(fields: &[FieldDescription<'_>]) -> Result<Self, EncodeError> {
        let count = check_count("fields", fields.len())?;
        let mut b = BytesMut::new();
        for f in fields {
            check_cstr("field name", f.name)?;
            put_cstr(&mut b, f.name);
            b.put_u32(f.table_oid);
            b.put_i16(f.column_id);
            b.put_u32(f.type_oid);
            b.put_i16(f.type_size);
            b.put_i32(f.type_modifier);
            b.put_i16(f.format.code());
        }
        check_body("RowDescription", b.len() + 2)?;
        Ok(Self {
            count,
            raw: b.freeze(),
        })
    }

    /// A description of `count` fields laid out in `raw` as on the wire (after the count),
    /// built by a caller that checked them.
    pub(crate) fn from_checked(count: u16, raw: Bytes) -> Self {
        Self { count, raw }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The fields in order.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            rest: &self.raw,
            left: self.count,
        }
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "RowDescription");
        let count = r.u16("field count")?;
        r.ensure_count(count as usize, FIELD_FIXED + 1, "fields")?;
        let start = r.position();
        for _ in 0..count {
            r.cstr_slice("field name")?;
            let fixed = r.take(FIELD_FIXED, "field")?;
            let code = i16::from_be_bytes([fixed[16], fixed[17]]);
            if Format::from_code(code).is_none() {
                return Err(DecodeError::InvalidValue {
                    message: "RowDescription",
                    field: "format",
                    value: code.into(),
                });
            }
        }
        let raw = r.slice_between(start, r.position());
        r.finish()?;
        Ok(Self { count, raw })
    }
}

impl Encode for RowDescription {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, Self::TAG, self.raw.len() + 2, |out| {
            out.put_u16(self.count);
            out.put_slice(&self.raw);
        });
    }

    fn encoded_len(&self) -> usize {
        self.raw.len() + 7
    }
}

/// An iterator over the fields of a RowDescription.
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
        // INVARIANT: checked at decode or construction; `get` keeps this panic-free anyway.
        let end = memchr::memchr(0, self.rest)?;
        let name = &self.rest[..end];
        let f = self.rest.get(end + 1..end + 1 + FIELD_FIXED)?;
        self.rest = &self.rest[end + 1 + FIELD_FIXED..];
        self.left -= 1;
        Some(FieldDescription {
            name,
            table_oid: u32::from_be_bytes([f[0], f[1], f[2], f[3]]),
            column_id: i16::from_be_bytes([f[4], f[5]]),
            type_oid: u32::from_be_bytes([f[6], f[7], f[8], f[9]]),
            type_size: i16::from_be_bytes([f[10], f[11]]),
            type_modifier: i32::from_be_bytes([f[12], f[13], f[14], f[15]]),
            format: if f[17] == 1 {
                Format::Binary
            } else {
                Format::Text
            },
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Fields<'_> {}

/// DataRow (`D`): one row of column values, `None` for NULL: borrowed from a decoder's buffer
/// (`DataRow<'buf>`, what [`BackendDecoder::next_data_row`](crate::BackendDecoder::next_data_row)
/// and [`Client::poll_row`](crate::Client::poll_row) lend, valid until their next call) or owned
/// (`DataRow<'static>`).
///
/// A DataRow is checked when it is decoded only as far as its frame and column count; each
/// column value is checked as [`DataRow::columns`] hands it out (see [`Columns`]), so a row is
/// validated once, by the one pass that reads it, and a proxy that forwards rows unread pays
/// nothing for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow<'a> {
    count: u16,
    raw: Payload<'a>,
}

impl<'a> DataRow<'a> {
    /// The backend type byte.
    pub const TAG: u8 = b'D';

    /// A row of the given values; fails with [`EncodeError::TooMany`] on more than 65,535
    /// values, or [`EncodeError::OutOfRange`] / [`EncodeError::TooLong`] when the row would not
    /// fit a message.
    ///
    /// ```
    /// use pgproto::DataRow;
    /// let row = DataRow::new([Some(&b"1"[..]), None]).unwrap();
    /// let columns: Result<Vec<_>, _> = row.columns().collect();
    /// assert_eq!(columns.unwrap(), [Some(&b"1"[..]), None]);
    /// ```
    pub fn new<'v, I>(values: I) -> Result<DataRow<'static>, EncodeError>
    where
        I: IntoIterator<Item = Option<&'v [u8]>>,
    {
        let (count, raw) = values_raw(values)?;
        check_body("DataRow", 2 + raw.len())?;
        Ok(DataRow {
            count,
            raw: raw.into(),
        })
    }

    /// Appends a DataRow of `values` to `out` directly, without building a [`DataRow`] first:
    /// the fast path for a server producing rows.
    ///
    /// Fails with [`EncodeError::TooMany`] on more than 65,535 values, or
    /// [`EncodeError::TooLong`] when the row would not fit its length word; on error nothing is
    /// written.
    pub fn encode_values(out: &mut BytesMut, values: &[Option<&[u8]>]) -> Result<(), EncodeError> {
        let count = check_count("values", values.len())?;
        let body = 2 + values
            .iter()
            .map(|v| 4 + v.map_or(0, <[u8]>::len))
            .sum::<usize>();
        check_body("DataRow", body)?;
        tagged(out, Self::TAG, body, |out| {
            put_values(out, count, values);
        });
        Ok(())
    }

    /// A row of a DataRow body (the bytes after the length word), borrowing it, checked as far
    /// as its column count.
    ///
    /// Fails with [`DecodeError::Truncated`] when the body is shorter than the column count,
    /// or [`DecodeError::InvalidCount`] when the count needs more bytes than the body has
    /// (four per value at least). The values are checked by [`DataRow::columns`].
    ///
    /// ```
    /// use pgproto::{DataRow, DecodeError};
    ///
    /// let row = DataRow::decode(b"\0\x02\0\0\0\x011\xff\xff\xff\xff").unwrap();
    /// let columns: Vec<_> = row.columns().collect::<Result<_, _>>().unwrap();
    /// assert_eq!(columns, [Some(&b"1"[..]), None]);
    ///
    /// // One value announced, whose length runs past the end: the column says so.
    /// let row = DataRow::decode(b"\0\x01\0\0\0\x09abc").unwrap();
    /// assert!(matches!(row.columns().next(), Some(Err(DecodeError::Truncated { .. }))));
    /// ```
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_payload(body.into())
    }

    pub(crate) fn decode_payload(body: Payload<'a>) -> Result<Self, DecodeError> {
        let count = Self::check(body.as_slice())?;
        let len = body.len();
        Ok(Self {
            count,
            raw: body.slice(2..len),
        })
    }

    /// A row of `count` values in `raw` (the bytes after the column count), which
    /// [`DataRow::check`] has accepted.
    #[inline]
    pub(crate) fn from_checked(count: u16, raw: impl Into<Payload<'a>>) -> Self {
        Self {
            count,
            raw: raw.into(),
        }
    }

    /// Checks a DataRow body as far as its column count and returns the count: the count is
    /// there and its values could fit (a count that cannot is refused before anything is read,
    /// as pgwire's `ensure_count`).
    #[inline]
    pub(crate) fn check(body: &[u8]) -> Result<u16, DecodeError> {
        let Some((head, raw)) = body.split_first_chunk::<2>() else {
            return Err(DecodeError::Truncated {
                message: "DataRow",
                field: "column count",
            });
        };
        let count = u16::from_be_bytes(*head);
        if count as usize * 4 > raw.len() {
            return Err(DecodeError::InvalidCount {
                message: "DataRow",
                field: "column value",
                count: count.into(),
            });
        }
        Ok(count)
    }

    /// The number of columns the row announces.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the row announces no columns.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The column values in order (`None` is NULL), each checked as it is handed out: see
    /// [`Columns`].
    #[inline]
    pub fn columns(&self) -> Columns<'_> {
        Columns::new(self.raw.as_slice(), self.count)
    }

    /// The value of column `index` (`None` inside is NULL); `None` when the row has fewer
    /// columns, and an error when a value up to it is malformed.
    pub fn get(&self, index: usize) -> Option<Result<Option<&[u8]>, DecodeError>> {
        self.columns().nth(index)
    }

    /// The bytes after the column count: each value's length word and bytes, as received.
    #[inline]
    pub fn raw(&self) -> &[u8] {
        self.raw.as_slice()
    }

    /// The row, owned: borrowed column bytes are copied (unchecked, as they were).
    pub fn into_owned(self) -> DataRow<'static> {
        DataRow {
            count: self.count,
            raw: self.raw.into_owned(),
        }
    }

    /// The row, borrowed from `self`.
    pub fn as_borrowed(&self) -> DataRow<'_> {
        DataRow {
            count: self.count,
            raw: self.raw.borrow(),
        }
    }
}

impl Encode for DataRow<'_> {
    fn encode(&self, out: &mut BytesMut) {
        let raw = self.raw.as_slice();
        tagged(out, Self::TAG, 2 + raw.len(), |out| {
            out.put_u16(self.count);
            out.put_slice(raw);
        });
    }

    fn encoded_len(&self) -> usize {
        self.raw.len() + 7
    }
}

/// The column values of a [`DataRow`], checked as they are handed out: each
/// item is a value (`None` for NULL) or the error that makes the row malformed, after which
/// the iterator ends. A value's length word must be -1 (NULL) or fit the bytes left
/// ([`DecodeError::Truncated`], [`DecodeError::InvalidCount`] for a negative length other
/// than -1); bytes left after the announced columns are one last item,
/// [`DecodeError::TrailingBytes`]. Reading every column of a row is thus the whole check of
/// it, done once, in the pass that reads it (libpq fails the result for such a row and keeps
/// the connection; so can the application, since the row's frame was whole).
///
/// ```
/// use pgproto::{DataRow, DecodeError};
///
/// let row = DataRow::new([Some(&b"42"[..]), None]).unwrap();
/// for column in row.columns() {
///     match column? {
///         Some(value) => assert_eq!(value, b"42"),
///         None => {} // NULL
///     }
/// }
/// # Ok::<(), DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Columns<'a> {
    #[inline]
    fn new(raw: &'a [u8], count: u16) -> Self {
        Self {
            rest: raw,
            left: count,
        }
    }

    /// Names what is wrong at the current value, and ends the iteration.
    #[cold]
    fn malformed(&mut self) -> DecodeError {
        let (message, field) = ("DataRow", "column value");
        let e = match self.rest.first_chunk::<4>().map(|h| i32::from_be_bytes(*h)) {
            Some(len) if len < -1 => DecodeError::InvalidCount {
                message,
                field,
                count: len.into(),
            },
            _ => DecodeError::Truncated { message, field },
        };
        self.rest = &[];
        self.left = 0;
        e
    }
}

impl<'a> Iterator for Columns<'a> {
    type Item = Result<Option<&'a [u8]>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.rest.is_empty() {
                return None;
            }
            let extra = self.rest.len();
            self.rest = &[];
            return Some(Err(DecodeError::TrailingBytes {
                message: "DataRow",
                extra,
            }));
        }
        if let Some((head, tail)) = self.rest.split_first_chunk::<4>() {
            let len = i32::from_be_bytes(*head);
            // A negative length, read as unsigned, never fits: NULL takes the second branch.
            if let Some((value, rest)) = tail.split_at_checked(len as u32 as usize) {
                self.rest = rest;
                self.left -= 1;
                return Some(Ok(Some(value)));
            }
            if len == -1 {
                self.rest = tail;
                self.left -= 1;
                return Some(Ok(None));
            }
        }
        Some(Err(self.malformed()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.left as usize;
        (left.min(1), Some(left + 1))
    }
}

impl std::iter::FusedIterator for Columns<'_> {}

/// ParameterDescription (`t`): the type OIDs of a prepared statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDescription {
    raw: Bytes,
}

impl ParameterDescription {
    /// The backend type byte.
    pub const TAG: u8 = b't';

    /// A ParameterDescription of the given type OIDs; fails with [`EncodeError::TooMany`] on
    /// more than 65,535.
    pub fn new(types: &[u32]) -> Result<Self, EncodeError> {
        check_count("parameter types", types.len())?;
        let mut b = BytesMut::with_capacity(types.len() * 4);
        for t in types {
            b.put_u32(*t);
        }
        Ok(Self { raw: b.freeze() })
    }

    /// The parameter type OIDs.
    pub fn types(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "ParameterDescription");
        let n = r.u16("parameter count")? as usize;
        r.ensure_count(n, 4, "parameter types")?;
        let raw = r.bytes(n * 4, "parameter types")?;
        r.finish()?;
        Ok(Self { raw })
    }
}

impl Encode for ParameterDescription {
    fn encode(&self, out: &mut BytesMut) {
        tagged(out, Self::TAG, self.raw.len() + 2, |out| {
            out.put_u16((self.raw.len() / 4) as u16);
            out.put_slice(&self.raw);
        });
    }

    fn encoded_len(&self) -> usize {
        self.raw.len() + 7
    }
}
