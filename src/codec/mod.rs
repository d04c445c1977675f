//! Shared encoding and decoding machinery: the body [`Reader`](reader::Reader), the frame writer
//! and the constructor checks.
//!
//! Encoding follows PostgreSQL's `pqcomm.c` rule: a message is built whole (type byte, length
//! word, body) before the next one starts, so an output buffer never holds half a message.

pub(crate) mod reader;

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;

/// Types that append their complete wire form to a buffer.
///
/// Encoding cannot fail: every constructor has already checked that the value fits the wire
/// format (no interior NUL, counts within 16 bits, lengths within 32 bits).
///
/// ```
/// use bytes::BytesMut;
/// use pgproto::{Encode, Query};
///
/// let mut out = BytesMut::new();
/// Query::new("SELECT 1").unwrap().encode(&mut out);
/// assert_eq!(&out[..], b"Q\0\0\0\x0dSELECT 1\0");
/// ```
pub trait Encode {
    /// Appends the whole message, type byte and length word included, to `out`.
    fn encode(&self, out: &mut BytesMut);

    /// The number of bytes [`Encode::encode`] appends.
    fn encoded_len(&self) -> usize;
}

/// The body of the one frame `write` appends: how a constructor builds a message with the
/// encoder that writes it from borrowed values, the one encode path. `frame_len` is the frame's
/// expected size (header included), reserved up front up to 64 KiB; the body is the written
/// buffer itself past its header (one allocation, no copy).
pub(crate) fn frame_body(
    frame_len: usize,
    write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<bytes::Bytes, EncodeError> {
    let mut out = BytesMut::with_capacity(frame_len.min(1 << 16));
    write(&mut out)?;
    let mut body = out.freeze();
    let header = 5.min(body.len());
    bytes::Buf::advance(&mut body, header);
    Ok(body)
}

/// Reads back the layout of a body an encoder just wrote. It cannot fail (the encoder checked
/// every value first); if encoder and layout ever disagreed, the constructor fails instead of
/// building a message that reads wrong.
pub(crate) fn read_back<L>(
    message: &'static str,
    layout: Result<L, crate::error::DecodeError>,
) -> Result<L, EncodeError> {
    layout.map_err(|_| EncodeError::OutOfRange {
        field: message,
        reason: "the encoded body does not read back",
    })
}

/// The largest body a length word can describe (`i32::MAX` less the 4 bytes of the word).
pub(crate) const MAX_BODY: usize = i32::MAX as usize - 4;

/// Writes a tagged frame whose body is `body_len` bytes long, produced by `body`.
#[inline]
pub(crate) fn tagged(
    out: &mut BytesMut,
    tag: u8,
    body_len: usize,
    body: impl FnOnce(&mut BytesMut),
) {
    out.reserve(5 + body_len);
    out.put_slice(&header(tag, body_len));
    body(out);
}

/// The five bytes that start a tagged frame: the tag and the length word (which counts itself,
/// not the tag), written with one store where the caller puts them.
#[inline]
pub(crate) fn header(tag: u8, body_len: usize) -> [u8; 5] {
    // INVARIANT: callers keep body_len <= MAX_BODY, so the cast cannot truncate.
    let [a, b, c, d] = ((body_len + 4) as i32).to_be_bytes();
    [tag, a, b, c, d]
}

/// Writes a tagged frame whose body `body` appends straight to `out`, measured afterwards: the
/// length word is written as a placeholder and filled in once the body is written. One pass
/// over the fields, no length computed beforehand (Bind, whose values would otherwise be walked
/// twice).
///
/// When `body` fails, or the body turns out too long for the length word
/// ([`EncodeError::TooLong`]), `out` is left as it was.
#[inline]
pub(crate) fn tagged_measured(
    out: &mut BytesMut,
    tag: u8,
    message: &'static str,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_slice(&[tag, 0, 0, 0, 0]);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let body_len = out.len() - start - 5;
    if body_len > MAX_BODY {
        out.truncate(start);
        return Err(EncodeError::TooLong {
            message,
            len: body_len.saturating_add(5),
        });
    }
    // INVARIANT: body_len <= MAX_BODY, so the cast cannot truncate.
    out[start + 1..start + 5].copy_from_slice(&((body_len + 4) as i32).to_be_bytes());
    Ok(())
}

/// Writes a tagged frame with an empty body.
#[inline]
pub(crate) fn empty(out: &mut BytesMut, tag: u8) {
    out.put_slice(&[tag, 0, 0, 0, 4]);
}

/// Writes a string and its NUL terminator.
#[inline]
pub(crate) fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// Writes a string and its NUL terminator into any buffer; an empty string costs one store.
#[inline]
pub(crate) fn put_cstr_to(out: &mut impl BufMut, s: &[u8]) {
    if !s.is_empty() {
        out.put_slice(s);
    }
    out.put_u8(0);
}

/// Checks that a string field has no interior NUL.
#[inline]
pub(crate) fn check_cstr(field: &'static str, s: &[u8]) -> Result<(), EncodeError> {
    if contains_nul(s) {
        Err(EncodeError::InteriorNul { field })
    } else {
        Ok(())
    }
}

/// Whether `s` holds a NUL. Names are short: up to 16 bytes are read as two overlapping words
/// (no loop, no call); longer text goes to `memchr`.
#[inline]
fn contains_nul(s: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // The classic test for a zero byte in a word.
    let zero = |w: u64| w.wrapping_sub(LO) & !w & HI != 0;
    // Words padded with non-zero bytes where they are shorter than 8.
    const PAD: u64 = 0xffff_ffff_0000_0000;
    let short = |b: &[u8; 4]| PAD | u64::from(u32::from_le_bytes(*b));
    match s.len() {
        0..4 => s.contains(&0),
        4..8 => match (s.first_chunk::<4>(), s.last_chunk::<4>()) {
            (Some(a), Some(b)) => zero(short(a)) || zero(short(b)),
            _ => s.contains(&0),
        },
        8..=16 => match (s.first_chunk::<8>(), s.last_chunk::<8>()) {
            (Some(a), Some(b)) => zero(u64::from_le_bytes(*a)) || zero(u64::from_le_bytes(*b)),
            _ => s.contains(&0),
        },
        _ => memchr::memchr(0, s).is_some(),
    }
}

/// Checks that a list fits its 16-bit count.
pub(crate) fn check_count(field: &'static str, count: usize) -> Result<u16, EncodeError> {
    u16::try_from(count).map_err(|_| EncodeError::TooMany {
        field,
        count,
        max: u16::MAX as usize,
    })
}

/// Checks that a body fits the 32-bit length word.
pub(crate) fn check_body(message: &'static str, body_len: usize) -> Result<(), EncodeError> {
    if body_len > MAX_BODY {
        Err(EncodeError::TooLong {
            message,
            len: body_len.saturating_add(5),
        })
    } else {
        Ok(())
    }
}

/// Checks that a value fits an Int32 length prefix.
pub(crate) fn check_value_len(field: &'static str, len: usize) -> Result<(), EncodeError> {
    if len > MAX_BODY {
        Err(EncodeError::OutOfRange {
            field,
            reason: "longer than an Int32 length allows",
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_nul_finds_any_nul() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8 | 0x80).collect();
            assert!(!contains_nul(&clean), "{clean:?}");
            for at in 0..len {
                let mut s = clean.clone();
                s[at] = 0;
                assert!(contains_nul(&s), "{s:?}");
                // A 0x01 beside it (the word test's false-positive neighbour).
                let mut t: Vec<u8> = s.iter().map(|&b| b & 0x7f).collect();
                if at + 1 < len {
                    t[at + 1] = 1;
                }
                assert!(contains_nul(&t), "{t:?}");
            }
        }
    }

    #[test]
    fn a_measured_frame_gets_its_length_word_after_the_body() {
        let mut out = BytesMut::from(&b"xy"[..]);
        tagged_measured(&mut out, b'B', "Bind", |o| {
            o.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..], b"xyB\0\0\0\x07abc");
    }

    #[test]
    fn a_measured_frame_whose_body_fails_leaves_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let err = tagged_measured(&mut out, b'B', "Bind", |o| {
            o.put_slice(b"half of a body");
            Err(EncodeError::OutOfRange {
                field: "values",
                reason: "test",
            })
        })
        .unwrap_err();
        assert!(matches!(
            err,
            EncodeError::OutOfRange { reason: "test", .. }
        ));
        assert_eq!(&out[..], b"xy");
    }

    #[test]
    fn a_constructed_body_is_the_frame_past_its_header() {
        let body = frame_body(8, |o| {
            o.put_slice(&header(b'E', 3));
            o.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&body[..], b"abc");
        assert_eq!(header(b'E', 3), *b"E\0\0\0\x07");
    }
}
