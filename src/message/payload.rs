//! The bytes a message holds: borrowed from a receive buffer for as long as the buffer is not
//! touched, or shared (a reference-counted [`Bytes`]) for as long as the message lives.
//!
//! Every message type with a body keeps it in a [`Payload`], so one type serves both ways of
//! reading: a decoder lends `Message<'buf>` values that point into its buffer, and
//! `into_owned()` turns any of them into a `Message<'static>` that can be kept or queued.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

/// Bytes borrowed for `'a`, or shared and owned.
#[derive(Clone)]
pub(crate) enum Payload<'a> {
    /// Borrowed from a buffer.
    Borrowed(&'a [u8]),
    /// Owned, shared without a copy where possible.
    Shared(Bytes),
}

impl<'a> Payload<'a> {
    /// The bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Borrowed(b) => b,
            Self::Shared(b) => b,
        }
    }

    /// The bytes as a [`Bytes`]: shared if owned, copied if borrowed.
    #[inline]
    pub(crate) fn into_shared(self) -> Bytes {
        match self {
            Self::Borrowed(b) => Bytes::copy_from_slice(b),
            Self::Shared(b) => b,
        }
    }

    /// The same bytes, owned (copied if borrowed).
    #[inline]
    pub(crate) fn into_owned(self) -> Payload<'static> {
        Payload::Shared(self.into_shared())
    }

    /// The same bytes, borrowed from `self`.
    #[inline]
    pub(crate) fn borrow(&self) -> Payload<'_> {
        Payload::Borrowed(self.as_slice())
    }

    /// The bytes in `range` (a range the caller has checked lies within them).
    #[inline]
    pub(crate) fn slice(self, range: Range<usize>) -> Self {
        match self {
            Self::Borrowed(b) => Self::Borrowed(b.get(range).unwrap_or_default()),
            Self::Shared(b) if range.start == range.end => {
                drop(b);
                Self::Shared(Bytes::new())
            }
            Self::Shared(b) if range.end <= b.len() => Self::Shared(b.slice(range)),
            Self::Shared(_) => Self::Shared(Bytes::new()),
        }
    }

    /// The number of bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }
}

impl Default for Payload<'_> {
    fn default() -> Self {
        Self::Borrowed(&[])
    }
}

impl From<Bytes> for Payload<'_> {
    fn from(b: Bytes) -> Self {
        Self::Shared(b)
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(b: &'a [u8]) -> Self {
        Self::Borrowed(b)
    }
}

impl PartialEq for Payload<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload<'_> {}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `Bytes` prints: a byte string.
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}
