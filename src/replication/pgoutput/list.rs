//! Counted lists inside pgoutput messages (the values of a TupleData, the columns of a
//! Relation, the relations of a Truncate): either as received (checked once, then read in place)
//! or as given to a constructor (a borrowed slice), read through one iterator.

use std::fmt;

use bytes::BytesMut;

use crate::codec::reader::SliceReader;
use crate::error::DecodeError;

/// An item of a counted list.
pub(crate) trait Item<'a>: Copy {
    /// The fewest bytes an item takes on the wire.
    const MIN_LEN: usize;
    /// The message name used while reading items back (they were checked already).
    const MESSAGE: &'static str;
    /// Reads and checks one item.
    fn read(r: &mut SliceReader<'a>) -> Result<Self, DecodeError>;
    /// Its length on the wire.
    fn wire_len(&self) -> usize;
    /// Writes it.
    fn put(&self, out: &mut BytesMut);
}

/// A list as received or as given.
#[derive(Clone, Copy)]
pub(crate) enum List<'a, T> {
    /// `count` items, checked, in `raw`.
    Wire { count: u32, raw: &'a [u8] },
    /// Items given to a constructor.
    Items(&'a [T]),
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// Reads `count` items, checking each; `check` sees every item as it is read.
    pub(crate) fn read(
        r: &mut SliceReader<'a>,
        count: u32,
        field: &'static str,
        mut check: impl FnMut(&T) -> Result<(), DecodeError>,
    ) -> Result<Self, DecodeError> {
        r.ensure_count(count as usize, T::MIN_LEN, field)?;
        let start = r.position();
        let rest = r.peek_rest();
        for _ in 0..count {
            check(&T::read(r)?)?;
        }
        let raw = rest.get(..r.position() - start).unwrap_or_default();
        Ok(Self::Wire { count, raw })
    }

    /// The number of items.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Wire { count, .. } => *count as usize,
            Self::Items(items) => items.len(),
        }
    }

    /// The items' length on the wire (without the count).
    pub(crate) fn wire_len(&self) -> usize {
        match self {
            Self::Wire { raw, .. } => raw.len(),
            Self::Items(items) => items.iter().map(Item::wire_len).sum(),
        }
    }

    /// Writes the items (without the count).
    pub(crate) fn put(&self, out: &mut BytesMut) {
        match self {
            Self::Wire { raw, .. } => bytes::BufMut::put_slice(out, raw),
            Self::Items(items) => items.iter().for_each(|i| i.put(out)),
        }
    }

    /// The items in order.
    pub(crate) fn iter(&self) -> Iter<'a, T> {
        match *self {
            Self::Wire { count, raw } => Iter {
                inner: Inner::Wire {
                    r: SliceReader::new(raw, T::MESSAGE),
                    left: count,
                },
            },
            Self::Items(items) => Iter {
                inner: Inner::Items(items.iter()),
            },
        }
    }
}

impl<'a, T: Item<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a, T: Item<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: Item<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// An iterator over the items of a list in a pgoutput message (the values of a
/// [`TupleData`](super::TupleData), the columns of a [`Relation`](super::Relation), the
/// relations of a [`Truncate`](super::Truncate)). The items were checked when the message was
/// decoded or built, so reading them cannot fail.
#[derive(Clone)]
pub struct Iter<'a, T> {
    inner: Inner<'a, T>,
}

#[derive(Clone)]
enum Inner<'a, T> {
    Wire { r: SliceReader<'a>, left: u32 },
    Items(std::slice::Iter<'a, T>),
}

impl<'a, T: Item<'a>> Iterator for Iter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.inner {
            Inner::Wire { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // INVARIANT: every item was read successfully when the list was checked.
                T::read(r).ok()
            }
            Inner::Items(items) => items.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            Inner::Wire { left, .. } => *left as usize,
            Inner::Items(items) => items.len(),
        };
        (n, Some(n))
    }
}

impl<'a, T: Item<'a>> ExactSizeIterator for Iter<'a, T> {}

impl<'a, T: Item<'a> + fmt::Debug> fmt::Debug for Iter<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}
