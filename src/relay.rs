//! Frame-level pass-through: what a proxy needs to move messages it does not decode.
//!
//! - [`FrameHeader::peek`] reads the type byte and length word of the next frame from its first
//!   five bytes, before the body has arrived.
//! - [`Relay`] cuts a byte stream into frames without decoding them: frames up to a size
//!   ([`Relay::with_whole_limit`], 64 KiB by default) are handed out whole, so that the
//!   application can read the small ones it cares about (ReadyForQuery, ErrorResponse,
//!   ParameterStatus); larger ones (a multi-megabyte DataRow or CopyData) are handed out in
//!   pieces as their bytes arrive, so that they can be forwarded before all of them has been
//!   received. The relay never holds more than the whole-frame limit plus one read.
//! - A [`FramePiece`] is the bytes exactly as received, type byte and length word included:
//!   writing the pieces out in order re-encodes the stream byte for byte. So does
//!   [`Encode`](crate::Encode) on a decoded [`Frame`](crate::Frame) or
//!   [`FrontendMessage`](crate::FrontendMessage).
//!
//! The type byte and the length word are checked as by the decoders ([`Limits`]): an unknown
//! type byte or a length out of range is an error before any of the body is buffered, and the
//! error is sticky.

use bytes::{Buf, BytesMut};

use crate::codec::Encode;
use crate::decoder::Frame;
use crate::error::{DecodeError, Tag};
use crate::limits::{Class, Limits};
use crate::message::backend::{name as backend_name, CLASS as BACKEND_CLASS};
use crate::message::frontend::{name as frontend_name, CLASS as FRONTEND_CLASS};

/// The type byte and length word that start every tagged frame.
///
/// ```
/// use pgproto::FrameHeader;
/// let h = FrameHeader::peek(b"Z\0\0\0\x05I").unwrap().unwrap();
/// assert_eq!((h.tag(), h.length_word(), h.frame_len(), h.body_len()), (b'Z', 5, 6, 1));
/// assert_eq!(FrameHeader::peek(b"Z\0\0").unwrap(), None); // not five bytes yet
/// assert!(FrameHeader::peek(b"Z\0\0\0\x03").is_err()); // a length word under 4
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    tag: u8,
    len: u32,
}

impl FrameHeader {
    /// The size of a header: one type byte, four bytes of length.
    pub const SIZE: usize = 5;

    /// The header at the start of `bytes`; `Ok(None)` when fewer than five bytes are there.
    ///
    /// Fails with [`DecodeError::InvalidLength`] when the length word is under 4 (it counts
    /// itself). The type byte and the length's upper bound are not checked here: see
    /// [`FrameHeader::check_backend`] and [`FrameHeader::check_frontend`].
    #[inline]
    pub fn peek(bytes: &[u8]) -> Result<Option<Self>, DecodeError> {
        let Some(h) = bytes.get(..Self::SIZE) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        if len < 4 {
            return Err(DecodeError::InvalidLength {
                message: "frame",
                len: len.into(),
            });
        }
        Ok(Some(Self {
            tag: h[0],
            len: len as u32,
        }))
    }

    /// The type byte.
    #[inline]
    pub fn tag(self) -> u8 {
        self.tag
    }

    /// The length word: the body's length plus the four bytes of the word itself.
    #[inline]
    pub fn length_word(self) -> u32 {
        self.len
    }

    /// The whole frame's length on the wire: type byte, length word and body.
    #[inline]
    pub fn frame_len(self) -> usize {
        self.len as usize + 1
    }

    /// The body's length.
    #[inline]
    pub fn body_len(self) -> usize {
        self.len as usize - 4
    }

    /// Checks the header as a frame a backend sends: a known type byte and a length within
    /// `limits`, as [`BackendDecoder`](crate::BackendDecoder) does.
    ///
    /// Fails with [`DecodeError::UnknownTag`] or [`DecodeError::TooLong`].
    pub fn check_backend(self, limits: &Limits) -> Result<(), DecodeError> {
        self.check(
            &BACKEND_CLASS,
            limits.backend(BACKEND_CLASS[self.tag as usize]),
            backend_name,
        )
    }

    /// Checks the header as a frame a frontend sends after start-up: a known type byte and a
    /// length within `limits`, as [`FrontendDecoder`](crate::FrontendDecoder) does.
    ///
    /// Fails with [`DecodeError::UnknownTag`] or [`DecodeError::TooLong`].
    pub fn check_frontend(self, limits: &Limits) -> Result<(), DecodeError> {
        self.check(
            &FRONTEND_CLASS,
            limits.frontend(FRONTEND_CLASS[self.tag as usize]),
            frontend_name,
        )
    }

    fn check(
        self,
        class: &[Class; 256],
        max: u32,
        name: fn(u8) -> &'static str,
    ) -> Result<(), DecodeError> {
        if class[self.tag as usize] == Class::Unknown {
            return Err(DecodeError::UnknownTag { tag: Tag(self.tag) });
        }
        if self.len > max {
            return Err(DecodeError::TooLong {
                message: name(self.tag),
                len: self.len.into(),
                max,
            });
        }
        Ok(())
    }
}

/// Some bytes of one frame, exactly as received: the whole frame, or a piece of a large one.
///
/// The first piece of a frame starts with its header; the pieces of a frame, written out in
/// order, are the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePiece<'a> {
    header: FrameHeader,
    offset: usize,
    bytes: &'a [u8],
}

impl<'a> FramePiece<'a> {
    /// `frame` as one whole piece: it must be exactly one frame (for example one built with
    /// [`Encode`](crate::Encode), to hand to [`Server::forward`](crate::Server::forward)).
    ///
    /// Fails with [`DecodeError::InvalidLength`] when `frame` is not exactly the length its
    /// header says, or shorter than a header.
    ///
    /// ```
    /// use pgproto::FramePiece;
    /// let p = FramePiece::whole(b"1\0\0\0\x04").unwrap(); // ParseComplete
    /// assert!(p.is_whole());
    /// assert_eq!(p.body(), Some(&b""[..]));
    /// assert!(FramePiece::whole(b"1\0\0\0\x05").is_err());
    /// ```
    pub fn whole(frame: &'a [u8]) -> Result<Self, DecodeError> {
        match FrameHeader::peek(frame)? {
            Some(header) if header.frame_len() == frame.len() => Ok(Self {
                header,
                offset: 0,
                bytes: frame,
            }),
            _ => Err(DecodeError::InvalidLength {
                message: "frame",
                len: frame.len().saturating_sub(1) as i64,
            }),
        }
    }

    /// The header of the frame this piece belongs to.
    #[inline]
    pub fn header(&self) -> FrameHeader {
        self.header
    }

    /// How many bytes of the frame (from its type byte) came before this piece.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes, as received.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether this piece starts the frame (it then starts with the header).
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Whether this piece ends the frame.
    #[inline]
    pub fn is_last(&self) -> bool {
        self.offset + self.bytes.len() == self.header.frame_len()
    }

    /// Whether this piece is the whole frame.
    #[inline]
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.bytes.len() == self.header.frame_len()
    }

    /// The body of a whole frame (after type byte and length word); `None` for a piece of one.
    #[inline]
    pub fn body(&self) -> Option<&'a [u8]> {
        if self.is_whole() {
            self.bytes.get(FrameHeader::SIZE..)
        } else {
            None
        }
    }
}

/// Which side sends the stream a [`Relay`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Backend,
    Frontend,
}

/// Cuts a stream of tagged frames into [`FramePiece`]s without decoding them: frame-level
/// pass-through, for a proxy that moves messages it does not decode.
///
/// Frames up to a size ([`Relay::with_whole_limit`], 64 KiB by default) are handed out whole,
/// once all of them has arrived, so that the application can read the small ones it cares
/// about (ReadyForQuery, ErrorResponse, ParameterStatus); larger ones (a multi-megabyte DataRow
/// or CopyData) are handed out in pieces as their bytes arrive, so that they can be forwarded
/// before all of them has been received. The relay holds no more than the whole-frame limit
/// plus one read. Pieces are the bytes as received: written out in order they re-encode the
/// stream byte for byte. The type byte and the length word are checked as the decoders check
/// them ([`Limits`]), before any of the body is buffered; errors are sticky.
///
/// ```
/// use pgproto::{FrameHeader, Limits, Relay};
///
/// // A 100,000-byte DataRow arrives in reads of 16 KiB; the relay hands out each read at once.
/// let mut frame = vec![b'D'];
/// frame.extend_from_slice(&100_000u32.to_be_bytes());
/// frame.extend_from_slice(&[0, 1, 0, 0, 0x86, 0x96]); // one column of 99,990 bytes
/// frame.resize(100_001, b'x');
/// assert_eq!(FrameHeader::peek(&frame).unwrap().unwrap().frame_len(), 100_001);
///
/// let mut relay = Relay::backend(Limits::default());
/// let mut forwarded = Vec::new();
/// for read in frame.chunks(16 * 1024) {
///     relay.receive(read);
///     while let Some(piece) = relay.next_piece().unwrap() {
///         assert_eq!(piece.header().tag(), b'D');
///         forwarded.extend_from_slice(piece.bytes()); // write it to the peer
///     }
///     assert!(relay.buffered_len() == 0); // nothing kept back
/// }
/// assert_eq!(forwarded, frame);
/// ```
///
/// Follows the crate's run loop: after every [`Relay::receive`], call [`Relay::next_piece`]
/// until it returns `Ok(None)`. A piece borrows the relay's buffer until the next call.
#[derive(Debug)]
pub struct Relay {
    buf: BytesMut,
    /// Bytes at the front of `buf` handed out by the last call, dropped by the next.
    lent: usize,
    peer: Peer,
    limits: Limits,
    whole_limit: usize,
    /// The frame being handed out in pieces, and how much of it has been.
    open: Option<(FrameHeader, usize)>,
    error: Option<DecodeError>,
}

impl Relay {
    /// The default [`Relay::with_whole_limit`]: 64 KiB, above every small message's limit, so
    /// that only RowDescription, DataRow, CopyData and the other large messages can come in
    /// pieces.
    pub const DEFAULT_WHOLE_LIMIT: usize = 64 * 1024;

    /// A relay for what a backend sends (after start-up).
    pub fn backend(limits: Limits) -> Self {
        Self::new(Peer::Backend, limits)
    }

    /// A relay for what a frontend sends after start-up (tagged frames only).
    pub fn frontend(limits: Limits) -> Self {
        Self::new(Peer::Frontend, limits)
    }

    fn new(peer: Peer, limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            lent: 0,
            peer,
            limits,
            whole_limit: Self::DEFAULT_WHOLE_LIMIT,
            open: None,
            error: None,
        }
    }

    /// Frames of at most `bytes` (type byte included) are handed out whole, once all of them
    /// has arrived; larger ones in pieces as their bytes arrive. At least the five bytes of a
    /// header.
    pub fn with_whole_limit(mut self, bytes: usize) -> Self {
        self.whole_limit = bytes.max(FrameHeader::SIZE);
        self
    }

    /// Appends received bytes (nothing, once an error has occurred).
    pub fn receive(&mut self, data: &[u8]) {
        self.release();
        if self.error.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received and not yet handed out.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.lent
    }

    /// Whether a frame is being handed out in pieces (its end has not been handed out yet).
    pub fn in_frame(&self) -> bool {
        self.open.is_some()
    }

    /// Frees the buffer's memory when it holds nothing not yet handed out.
    pub fn release_buffer(&mut self) {
        self.release();
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    #[inline]
    fn release(&mut self) {
        if self.lent > 0 {
            self.buf.advance(self.lent);
            self.lent = 0;
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf = BytesMut::new();
        self.lent = 0;
        self.open = None;
        self.error = Some(e.clone());
        e
    }

    /// The next piece: a whole frame, or the bytes of a large frame received so far; `Ok(None)`
    /// when more bytes are needed.
    ///
    /// Fails with [`DecodeError::UnknownTag`], [`DecodeError::InvalidLength`] or
    /// [`DecodeError::TooLong`] on a bad header, as the decoders do; the error is sticky:
    /// every later call returns it again.
    pub fn next_piece(&mut self) -> Result<Option<FramePiece<'_>>, DecodeError> {
        self.release();
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if let Some((header, offset)) = self.open {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let n = self.buf.len().min(header.frame_len() - offset);
            self.open = (offset + n < header.frame_len()).then_some((header, offset + n));
            self.lent = n;
            return Ok(Some(FramePiece {
                header,
                offset,
                bytes: &self.buf[..n],
            }));
        }
        let header = match FrameHeader::peek(&self.buf) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let checked = match self.peer {
            Peer::Backend => header.check_backend(&self.limits),
            Peer::Frontend => header.check_frontend(&self.limits),
        };
        if let Err(e) = checked {
            return Err(self.fail(e));
        }
        let total = header.frame_len();
        let n = if total <= self.whole_limit {
            if self.buf.len() < total {
                return Ok(None);
            }
            total
        } else {
            let n = self.buf.len().min(total);
            if n < total {
                self.open = Some((header, n));
            }
            n
        };
        self.lent = n;
        Ok(Some(FramePiece {
            header,
            offset: 0,
            bytes: &self.buf[..n],
        }))
    }
}

impl Encode for Frame {
    /// Writes the frame as it was received: type byte, length word, body.
    fn encode(&self, out: &mut BytesMut) {
        crate::codec::tagged(out, self.tag, self.body.len(), |o| {
            o.extend_from_slice(&self.body)
        });
    }

    fn encoded_len(&self) -> usize {
        FrameHeader::SIZE + self.body.len()
    }
}

/// Pieces of a frame for the crate's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{FrameHeader, FramePiece};

    /// The bytes `from..to` of `frame` as a piece.
    pub(crate) fn piece(frame: &[u8], from: usize, to: usize) -> FramePiece<'_> {
        FramePiece {
            header: FrameHeader::peek(frame).unwrap().unwrap(),
            offset: from,
            bytes: &frame[from..to],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// Every piece the relay hands out for `stream` fed in `chunk`-byte reads.
    fn pieces(relay: &mut Relay, stream: &[u8], chunk: usize) -> Vec<(u8, usize, Vec<u8>)> {
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            relay.receive(c);
            while let Some(p) = relay.next_piece().unwrap() {
                out.push((p.header().tag(), p.offset(), p.bytes().to_vec()));
            }
        }
        out
    }

    #[test]
    fn small_frames_whole_large_in_pieces() {
        let big = vec![7u8; 200];
        let mut stream = frame(b'Z', b"I");
        stream.extend(frame(b'D', &big));
        stream.extend(frame(b'C', b"SELECT 1\0"));
        for chunk in [1, 3, 5, 64, 1000] {
            let mut relay = Relay::backend(Limits::default()).with_whole_limit(100);
            let got = pieces(&mut relay, &stream, chunk);
            let joined: Vec<u8> = got.iter().flat_map(|p| p.2.clone()).collect();
            assert_eq!(joined, stream, "chunk {chunk}");
            // The small frames come whole, once.
            assert_eq!(got.iter().filter(|p| p.0 == b'Z').count(), 1);
            assert_eq!(got.iter().filter(|p| p.0 == b'C').count(), 1);
            // The large one in pieces no bigger than a read (plus nothing held back).
            let d: Vec<_> = got.iter().filter(|p| p.0 == b'D').collect();
            // (The first may hold the four header bytes that waited for the fifth.)
            assert!(d.iter().all(|p| p.2.len() <= chunk + 4));
            assert_eq!(d[0].1, 0);
            assert!(!relay.in_frame());
            assert_eq!(relay.buffered_len(), 0);
        }
    }

    #[test]
    fn whole_below_the_limit() {
        let stream = frame(b'D', &[1u8; 50]);
        let mut relay = Relay::backend(Limits::default());
        let got = pieces(&mut relay, &stream, 7);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, stream);
    }

    #[test]
    fn bad_headers_are_sticky_errors() {
        let mut relay = Relay::backend(Limits::default());
        relay.receive(b"\x01\0\0\0\x04");
        assert_eq!(
            relay.next_piece(),
            Err(DecodeError::UnknownTag { tag: Tag(1) })
        );
        relay.receive(b"Z\0\0\0\x05I");
        assert!(relay.next_piece().is_err());
        assert_eq!(relay.buffered_len(), 0);

        let mut relay = Relay::backend(Limits::default());
        relay.receive(b"Z\0\0\0\x03");
        assert!(matches!(
            relay.next_piece(),
            Err(DecodeError::InvalidLength { .. })
        ));

        // Over the per-type limit: refused on the header, nothing of the body waited for.
        let mut relay = Relay::backend(Limits::default());
        relay.receive(b"Z\0\x01\0\0");
        assert!(matches!(
            relay.next_piece(),
            Err(DecodeError::TooLong { .. })
        ));

        // A frontend relay knows frontend tags: 'Q' yes, 'Z' no.
        let mut relay = Relay::frontend(Limits::default());
        relay.receive(&frame(b'Q', b"SELECT 1\0"));
        assert_eq!(relay.next_piece().unwrap().unwrap().header().tag(), b'Q');
        relay.receive(&frame(b'Z', b"I"));
        assert!(relay.next_piece().is_err());
    }

    #[test]
    fn frame_reencodes_as_received() {
        let bytes = frame(b'T', b"\0\0");
        let mut dec = crate::BackendDecoder::new();
        dec.receive(&bytes);
        let f = dec.next_frame().unwrap().unwrap();
        let mut out = BytesMut::new();
        f.encode(&mut out);
        assert_eq!(&out[..], &bytes[..]);
        assert_eq!(f.encoded_len(), bytes.len());
    }

    #[test]
    fn piece_accessors() {
        let stream = frame(b'd', &[9u8; 20]);
        let mut relay = Relay::backend(Limits::default()).with_whole_limit(10);
        relay.receive(&stream[..8]);
        let p = relay.next_piece().unwrap().unwrap();
        assert!(p.is_first() && !p.is_last() && !p.is_whole());
        assert_eq!(p.body(), None);
        assert!(relay.in_frame());
        relay.receive(&stream[8..]);
        let p = relay.next_piece().unwrap().unwrap();
        assert!(!p.is_first() && p.is_last());
        assert_eq!(p.offset(), 8);
        assert_eq!(relay.next_piece().unwrap(), None);
    }
}
