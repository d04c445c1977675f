//! TupleData: the column values of a row in an Insert, Update or Delete.

use bytes::{BufMut, BytesMut};

use crate::codec::check_value_len;
use crate::codec::reader::SliceReader;
use crate::error::{DecodeError, EncodeError};
use crate::replication::pgoutput::list::{Item, Iter, List};
use crate::replication::wire::invalid;

/// One column value of a [`TupleData`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TupleValue<'a> {
    /// NULL (`n`).
    Null,
    /// An unchanged TOASTed value, not sent (`u`): the column kept its old value.
    UnchangedToast,
    /// A value in text format (`t`).
    Text(&'a [u8]),
    /// A value in binary format (`b`), sent only when the `binary` option is on.
    Binary(&'a [u8]),
}

impl TupleValue<'_> {
    /// The kind byte: `n`, `u`, `t` or `b`.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Null => b'n',
            Self::UnchangedToast => b'u',
            Self::Text(_) => b't',
            Self::Binary(_) => b'b',
        }
    }
}

impl<'a> Item<'a> for TupleValue<'a> {
    const MIN_LEN: usize = 1;
    const MESSAGE: &'static str = "TupleData";

    fn read(r: &mut SliceReader<'a>) -> Result<Self, DecodeError> {
        let kind = r.u8("column kind")?;
        Ok(match kind {
            b'n' => Self::Null,
            b'u' => Self::UnchangedToast,
            b't' | b'b' => {
                let len = r.i32("column length")?;
                if len < 0 {
                    return Err(DecodeError::InvalidCount {
                        message: r.message(),
                        field: "column length",
                        count: len.into(),
                    });
                }
                let v = r.take(len as usize, "column value")?;
                if kind == b't' {
                    Self::Text(v)
                } else {
                    Self::Binary(v)
                }
            }
            other => return Err(invalid(r.message(), "column kind", other.into())),
        })
    }

    fn wire_len(&self) -> usize {
        match self {
            Self::Null | Self::UnchangedToast => 1,
            Self::Text(v) | Self::Binary(v) => 5 + v.len(),
        }
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u8(self.kind());
        if let Self::Text(v) | Self::Binary(v) = self {
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
    }
}

/// TupleData: the values of a row's published columns, in the order of the relation's columns.
///
/// ```
/// use pgproto::replication::pgoutput::{TupleData, TupleValue};
///
/// let values = [TupleValue::Text(b"1"), TupleValue::Null, TupleValue::UnchangedToast];
/// let row = TupleData::new(&values)?;
/// assert_eq!(row.len(), 3);
/// assert_eq!(row.values().nth(1), Some(TupleValue::Null));
/// # Ok::<(), pgproto::EncodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleData<'a> {
    values: List<'a, TupleValue<'a>>,
}

impl<'a> TupleData<'a> {
    /// A row of `values`. Fails with [`EncodeError::TooMany`] on more than 65,535 values, or
    /// [`EncodeError::OutOfRange`] when a value is longer than an Int32 length allows.
    pub fn new(values: &'a [TupleValue<'a>]) -> Result<Self, EncodeError> {
        crate::codec::check_count("tuple values", values.len())?;
        for v in values {
            if let TupleValue::Text(b) | TupleValue::Binary(b) = v {
                check_value_len("tuple value", b.len())?;
            }
        }
        Ok(Self {
            values: List::Items(values),
        })
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.values.len() == 0
    }

    /// The values in order.
    pub fn values(&self) -> Iter<'a, TupleValue<'a>> {
        self.values.iter()
    }

    /// Reads a TupleData (count and values); binary values are refused unless `binary`.
    pub(crate) fn read(
        r: &mut SliceReader<'a>,
        message: &'static str,
        binary: bool,
    ) -> Result<Self, DecodeError> {
        let count = r.u16("column count")?;
        let values = List::read(r, count.into(), "tuple values", |v| match v {
            TupleValue::Binary(_) if !binary => Err(DecodeError::NotAllowed {
                message,
                reason: "a binary column value, but the binary option is off",
            }),
            _ => Ok(()),
        })?;
        Ok(Self { values })
    }

    pub(crate) fn wire_len(&self) -> usize {
        2 + self.values.wire_len()
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        // INVARIANT: at most u16::MAX values (checked by `new`, or read with a u16 count).
        out.put_u16(self.values.len() as u16);
        self.values.put(out);
    }
}
