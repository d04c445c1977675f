//! Incremental framing and decoding of byte streams: [`BackendDecoder`] for what a server sends
//! (the client role's input) and [`FrontendDecoder`] for what a client sends (the server role's
//! input).
//!
//! Bytes may arrive split anywhere. A frame is decoded once it is whole; until then the decoder
//! waits. The type byte is checked as soon as it arrives and the length word as soon as it is
//! complete, against the limit for that type, so a hostile length is refused before its body is
//! buffered, and no memory is ever reserved from an unchecked length. Checking whether a frame is
//! complete costs O(1): nothing is rescanned.
//!
//! Errors are sticky: after one, every call returns it again, because the stream has lost its
//! framing.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::reader::Span;
use crate::error::{DecodeError, Tag};
use crate::limits::{Class, Limits};
use crate::message::backend::{name as backend_name, CLASS as BACKEND_CLASS};
use crate::message::backend::{tag as btag, BackendMessage};
use crate::message::common::ProtocolVersion;
use crate::message::frontend::{name as frontend_name, CLASS as FRONTEND_CLASS};
use crate::message::frontend::{tag as ftag, AuthResponseKind, FrontendMessage};
use crate::message::frontend::{Bind, Close, CopyData, CopyFail, Describe, Execute, Parse, Query};
use crate::message::layout::{
    empty_layout, text_layout, BindLayout, ExecuteLayout, ParseLayout, TargetLayout,
};
use crate::message::payload::Payload;
use crate::message::rows::DataRow;

/// A complete tagged frame: the type byte and the body after the length word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte.
    pub tag: u8,
    /// The body, without type byte or length word.
    pub body: Bytes,
}

/// The shared buffer and header logic of both decoders.
#[derive(Debug, Default)]
struct Buffer {
    buf: BytesMut,
    /// Bytes at the start of `buf` already decoded and handed out by reference (by consecutive
    /// `next_ref` calls), dropped by the next call that does anything else.
    lent: usize,
    error: Option<Box<DecodeError>>,
}

impl Buffer {
    /// Frees the buffer's memory if it holds no undecoded bytes.
    fn shrink(&mut self) {
        self.release();
        // Even with no room left, an empty view may share (and keep alive) the allocation of
        // a message handed out owned: it is dropped too.
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

    fn receive(&mut self, data: &[u8]) {
        self.release();
        if self.error.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf = BytesMut::new();
        self.lent = 0;
        self.error = Some(Box::new(e.clone()));
        e
    }

    /// Checks the header of the next tagged frame. Returns the total frame length (type byte
    /// included) once the whole frame is buffered.
    #[inline]
    fn tagged_len(
        &self,
        class_of: &[Class; 256],
        limit: impl Fn(Class) -> u32,
        name: fn(u8) -> &'static str,
    ) -> Result<Option<usize>, DecodeError> {
        let Some(&t) = self.buf.first() else {
            return Ok(None);
        };
        let class = class_of[t as usize];
        if class == Class::Unknown {
            return Err(DecodeError::UnknownTag { tag: Tag(t) });
        }
        let Some(h) = self.buf.get(1..5) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if len < 4 {
            return Err(DecodeError::InvalidLength {
                message: name(t),
                len: len.into(),
            });
        }
        let max = limit(class);
        if len as u32 > max {
            return Err(DecodeError::TooLong {
                message: name(t),
                len: len as u64,
                max,
            });
        }
        let total = len as usize + 1;
        Ok((self.buf.len() >= total).then_some(total))
    }

    /// The end (an offset in the buffer) and the body of the frame at offset `at`, if it has
    /// type `tag`, a valid length word of at most `max`, and is whole; otherwise `None`, and the
    /// caller's general path decides (and reports any error exactly as it would have).
    #[inline]
    fn whole_frame_at(&self, at: usize, tag: u8, max: u32) -> Option<(usize, &[u8])> {
        let rest = self.buf.get(at..)?;
        let (&[t, a, b, c, d], after) = rest.split_first_chunk::<5>()?;
        if t != tag {
            return None;
        }
        let len = i32::from_be_bytes([a, b, c, d]);
        if len < 4 || len as u32 > max {
            return None;
        }
        let body = after.get(..len as usize - 4)?;
        Some((at + 1 + len as usize, body))
    }

    fn split_frame(&mut self, total: usize) -> Frame {
        let mut f = self.buf.split_to(total);
        let tag = f[0];
        f.advance(5);
        Frame {
            tag,
            body: f.freeze(),
        }
    }
}

/// What a [`BackendDecoder`] expects the next byte to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Tagged,
    SslResponse,
    GssEncResponse,
}

/// Decodes the byte stream a backend sends.
///
/// ```
/// use pgproto::{BackendDecoder, BackendMessage, TransactionStatus};
///
/// let mut dec = BackendDecoder::new();
/// dec.receive(b"Z\0\0\0");
/// assert_eq!(dec.next().unwrap(), None); // incomplete: wait for more
/// dec.receive(b"\x05I");
/// assert_eq!(
///     dec.next().unwrap(),
///     Some(BackendMessage::ReadyForQuery(TransactionStatus::Idle))
/// );
/// ```
#[derive(Debug)]
pub struct BackendDecoder {
    inner: Buffer,
    limits: Limits,
    version: ProtocolVersion,
    expect: Expect,
}

impl Default for BackendDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a message read in place lies in a [`BackendDecoder`]'s buffer, once checked: what
/// [`BackendDecoder::view`] turns into a [`BackendMessage`]. Holding it borrows nothing, so a
/// state machine can act on it before it lends the message out.
#[derive(Debug)]
pub(crate) enum BackendLent {
    /// A DataRow whose columns lie at `at..end`.
    DataRow { at: usize, end: usize, count: u16 },
    /// A CopyData whose payload lies at `at..end`.
    CopyData { at: usize, end: usize },
    /// Any other message, decoded.
    Message(BackendMessage<'static>),
}

impl BackendLent {
    /// The type byte (0 for the single-byte answers to SSLRequest and GSSENCRequest).
    pub(crate) fn tag(&self) -> u8 {
        match self {
            Self::DataRow { .. } => btag::DATA_ROW,
            Self::CopyData { .. } => btag::COPY_DATA,
            Self::Message(m) => m.tag().unwrap_or(0),
        }
    }

    /// The message's name as in the PostgreSQL documentation.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Message(m) => m.name(),
            lent => backend_name(lent.tag()),
        }
    }
}

impl BackendDecoder {
    /// A decoder with the default [`Limits`], for protocol 3.0.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            inner: Buffer::default(),
            limits,
            version: ProtocolVersion::V3_0,
            expect: Expect::Tagged,
        }
    }

    /// Sets the protocol version in force. In 3.0 a BackendKeyData key must be exactly 4 bytes;
    /// from 3.2 on, 4 to 256.
    pub fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// The next byte answers an SSLRequest: `S` or `N` (or an ErrorResponse from a server
    /// that did not understand the request).
    pub fn expect_ssl_response(&mut self) {
        self.expect = Expect::SslResponse;
    }

    /// The next byte answers a GSSENCRequest: `G` or `N` (or an ErrorResponse).
    pub fn expect_gssenc_response(&mut self) {
        self.expect = Expect::GssEncResponse;
    }

    /// Appends bytes received from the server. Call [`BackendDecoder::next`] until it returns
    /// `Ok(None)` after every call to this.
    pub fn receive(&mut self, data: &[u8]) {
        self.inner.receive(data);
    }

    /// Frees the receive buffer's memory when it holds no undecoded bytes (an idle connection
    /// then keeps no buffer). Views lent by an earlier call end here.
    pub fn release_buffer(&mut self) {
        self.inner.shrink();
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.inner.buf.len() - self.inner.lent
    }

    /// The bytes buffered and not yet decoded.
    pub fn peek(&self) -> &[u8] {
        &self.inner.buf[self.inner.lent..]
    }

    /// Takes the bytes buffered but not yet decoded, for instance the start of a TLS handshake
    /// that arrived with the answer to SSLRequest.
    pub fn take_buffered(&mut self) -> Bytes {
        self.inner.release();
        self.inner.buf.split().freeze()
    }

    fn single_byte(&mut self) -> Option<Result<Option<BackendMessage<'static>>, DecodeError>> {
        let first = *self.inner.buf.first()?;
        let yes = match self.expect {
            Expect::Tagged => return None,
            Expect::SslResponse => b'S',
            Expect::GssEncResponse => b'G',
        };
        let accepted = match first {
            b if b == yes => true,
            b'N' => false,
            b'E' => {
                // A server that does not understand the request answers with an error.
                self.expect = Expect::Tagged;
                return None;
            }
            other => {
                return Some(Err(self
                    .inner
                    .fail(DecodeError::UnknownTag { tag: Tag(other) })));
            }
        };
        self.inner.buf.advance(1);
        let ssl = self.expect == Expect::SslResponse;
        self.expect = Expect::Tagged;
        Some(Ok(Some(if ssl {
            BackendMessage::SslResponse { accepted }
        } else {
            BackendMessage::GssEncResponse { accepted }
        })))
    }

    /// The next complete tagged frame, undecoded. The single-byte answers to SSLRequest and
    /// GSSENCRequest are not frames: while one is expected, use [`BackendDecoder::next`].
    ///
    /// Fails with [`DecodeError::UnknownTag`], [`DecodeError::InvalidLength`] or
    /// [`DecodeError::TooLong`] when the frame header is bad (a length over the [`Limits`] is
    /// too long); the error is sticky: every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        let limits = self.limits;
        match self
            .inner
            .tagged_len(&BACKEND_CLASS, |c| limits.backend(c), backend_name)
        {
            Ok(Some(total)) => Ok(Some(self.inner.split_frame(total))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.inner.fail(e)),
        }
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// Fails with a [`DecodeError`] when the frame header is bad (as in
    /// [`BackendDecoder::next_frame`]), the answer to SSLRequest or GSSENCRequest is an
    /// unexpected byte, or the body does not decode as its message; the error is sticky: every
    /// later call returns it again.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<BackendMessage<'static>>, DecodeError> {
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        if let Some(r) = self.single_byte() {
            return r;
        }
        let limits = self.limits;
        let total = match self
            .inner
            .tagged_len(&BACKEND_CLASS, |c| limits.backend(c), backend_name)
        {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.inner.fail(e)),
        };
        if self.inner.buf[0] == btag::DATA_ROW {
            // The hot path: check the row's count in place (as `DataRow::decode` does; the
            // values are checked as they are read), then share its column bytes as one slice:
            // one reference count per row, no decoding through a body reader.
            let count = match DataRow::check(&self.inner.buf[5..total]) {
                Ok(count) => count,
                Err(e) => return Err(self.inner.fail(e)),
            };
            self.inner.buf.advance(7);
            let raw = self.inner.buf.split_to(total - 7).freeze();
            return Ok(Some(BackendMessage::DataRow(DataRow::from_checked(
                count, raw,
            ))));
        }
        let f = self.inner.split_frame(total);
        BackendMessage::decode_payload(f.tag, Payload::Shared(f.body), self.version)
            .map(Some)
            .map_err(|e| self.inner.fail(e))
    }

    /// The next message if it is a whole DataRow (its frame and column count checked), as a view into the decoder's buffer
    /// valid until the next call on the decoder; otherwise `None`, and nothing is consumed.
    ///
    /// This is the fastest way through a result set: consecutive rows only move a cursor (no
    /// allocation, no reference count), and the answer is small enough to stay in registers.
    /// `None` does not say why: the next message may be of another type, incomplete, or
    /// malformed. Whatever it is, the next call to [`BackendDecoder::next_ref`] (or
    /// [`BackendDecoder::next`]) reports it, with exactly the error it would have reported
    /// without this call. Errors are sticky as ever: after one, this returns `None`.
    ///
    /// The intended loop drains rows with this and everything else with `next_ref`:
    ///
    /// ```
    /// use pgproto::{BackendDecoder, BackendMessage};
    ///
    /// let mut dec = BackendDecoder::new();
    /// // Two DataRows of one column each, then CommandComplete, split across two reads.
    /// let bytes = b"D\0\0\0\x0b\0\x01\0\0\0\x01aD\0\0\0\x0b\0\x01\0\0\0\x01bC\0\0\0\x0dSELECT 2\0";
    /// let (mut rows, mut done) = (Vec::new(), false);
    /// for chunk in bytes.chunks(20) {
    ///     dec.receive(chunk);
    ///     loop {
    ///         while let Some(row) = dec.next_data_row() {
    ///             rows.push(row.columns().next().unwrap().unwrap().unwrap().to_vec());
    ///         }
    ///         match dec.next_ref().unwrap() {
    ///             None => break, // wait for more bytes
    ///             Some(m) => done = matches!(m, BackendMessage::CommandComplete(_)),
    ///         }
    ///     }
    /// }
    /// assert_eq!(rows, [b"a", b"b"]);
    /// assert!(done);
    /// ```
    #[inline]
    pub fn next_data_row(&mut self) -> Option<DataRow<'_>> {
        let (at, end, count) = self.take_row()?;
        Some(self.row_view(at, end, count))
    }

    /// Lends the next message if it is a whole DataRow (its count checked) right after the bytes lent so far:
    /// returns where its columns lie and their count, and moves the cursor past it. `None` in
    /// every other case, for the general path to decide (and report any error exactly as it
    /// would have).
    #[inline]
    pub(crate) fn take_row(&mut self) -> Option<(usize, usize, u16)> {
        self.take_row_of(None)
    }

    /// [`BackendDecoder::take_row`], for a row of `columns` columns only when that is given: a
    /// row of another width is left in place, for the general path to report.
    #[inline]
    pub(crate) fn take_row_of(&mut self, columns: Option<u16>) -> Option<(usize, usize, u16)> {
        if self.inner.error.is_some() || self.expect != Expect::Tagged {
            return None;
        }
        let at = self.inner.lent;
        let max = self.limits.backend(BACKEND_CLASS[btag::DATA_ROW as usize]);
        let (head, rest) = self.inner.buf.get(at..)?.split_first_chunk::<5>()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        // A length below 6 (no room for the column count) or above the limit, another tag,
        // or a row not yet whole: the general path decides.
        if head[0] != btag::DATA_ROW || len > max || len < 6 {
            return None;
        }
        let body = rest.get(..len as usize - 4)?;
        let count = DataRow::check(body).ok()?;
        if columns.is_some_and(|n| n != count) {
            return None;
        }
        let end = at + 1 + len as usize;
        self.inner.lent = end;
        Some((at + 7, end, count))
    }

    /// The row [`BackendDecoder::take_row`] lent.
    #[inline]
    pub(crate) fn row_view(&self, at: usize, end: usize, count: u16) -> DataRow<'_> {
        DataRow::from_checked(count, &self.inner.buf[at..end])
    }

    /// Like [`BackendDecoder::next`], but DataRow and CopyData borrow the decoder's buffer,
    /// valid until the next call on the decoder: no allocation, no reference count, for the
    /// row-streaming hot path. [`BackendDecoder::next_data_row`] is faster still
    /// for runs of rows.
    ///
    /// Fails with the same errors, at the same points, as [`BackendDecoder::next`]; they are
    /// sticky too.
    #[inline]
    pub fn next_ref(&mut self) -> Result<Option<BackendMessage<'_>>, DecodeError> {
        // The hot path: a whole DataRow right after the bytes lent so far. Only the cursor
        // moves; the buffer itself advances past them all on the first other call.
        if let Some((at, end, count)) = self.take_row() {
            return Ok(Some(BackendMessage::DataRow(self.row_view(at, end, count))));
        }
        match self.advance()? {
            Some(lent) => Ok(Some(self.view(lent))),
            None => Ok(None),
        }
    }

    /// The view of a message [`BackendDecoder::advance`] checked: valid until the next call that
    /// takes `&mut self`.
    #[inline]
    pub(crate) fn view(&self, lent: BackendLent) -> BackendMessage<'_> {
        match lent {
            BackendLent::DataRow { at, end, count } => {
                BackendMessage::DataRow(self.row_view(at, end, count))
            }
            BackendLent::CopyData { at, end } => {
                BackendMessage::CopyData(CopyData::from_checked(&self.inner.buf[at..end]))
            }
            BackendLent::Message(m) => m,
        }
    }

    /// Checks the next message and says where it lies (DataRow, CopyData) or decodes it (the
    /// rest), without borrowing the buffer: the one decoding path behind
    /// [`BackendDecoder::next_ref`] and the client's state machine.
    pub(crate) fn advance(&mut self) -> Result<Option<BackendLent>, DecodeError> {
        if let Some((at, end, count)) = self.take_row() {
            return Ok(Some(BackendLent::DataRow { at, end, count }));
        }
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        if self.expect != Expect::Tagged {
            return self.next().map(|m| m.map(BackendLent::Message));
        }
        let limits = self.limits;
        let total = match self
            .inner
            .tagged_len(&BACKEND_CLASS, |c| limits.backend(c), backend_name)
        {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.inner.fail(e)),
        };
        match self.inner.buf[0] {
            btag::DATA_ROW => match DataRow::check(&self.inner.buf[5..total]) {
                Ok(count) => {
                    self.inner.lent = total;
                    Ok(Some(BackendLent::DataRow {
                        at: 7,
                        end: total,
                        count,
                    }))
                }
                Err(e) => Err(self.inner.fail(e)),
            },
            btag::COPY_DATA => {
                self.inner.lent = total;
                Ok(Some(BackendLent::CopyData { at: 5, end: total }))
            }
            _ => {
                let f = self.inner.split_frame(total);
                BackendMessage::decode_payload(f.tag, Payload::Shared(f.body), self.version)
                    .map(|m| Some(BackendLent::Message(m)))
                    .map_err(|e| self.inner.fail(e))
            }
        }
    }
}

/// Where a message read in place lies in a [`FrontendDecoder`]'s buffer (its body at
/// `at..end`) and where its fields lie in that body, once checked: what
/// [`FrontendDecoder::view`] turns into a [`FrontendMessage`]. Holding it borrows nothing.
#[derive(Debug)]
pub(crate) struct FrontendLent {
    at: usize,
    end: usize,
    pub(crate) layout: Layout,
}

/// The fields of a message read in place.
#[derive(Debug)]
pub(crate) enum Layout {
    Parse(ParseLayout),
    Bind(BindLayout),
    Describe(TargetLayout),
    Close(TargetLayout),
    Execute(ExecuteLayout),
    Sync,
    Flush,
    Query(Span),
    CopyData,
    CopyDone,
    CopyFail(Span),
    Terminate,
    /// Any other message, decoded.
    Message(Box<FrontendMessage<'static>>),
}

impl Layout {
    /// The type byte (0 for the untagged start-up packets).
    pub(crate) fn tag(&self) -> u8 {
        match self {
            Self::Parse(_) => ftag::PARSE,
            Self::Bind(_) => ftag::BIND,
            Self::Describe(_) => ftag::DESCRIBE,
            Self::Close(_) => ftag::CLOSE,
            Self::Execute(_) => ftag::EXECUTE,
            Self::Sync => ftag::SYNC,
            Self::Flush => ftag::FLUSH,
            Self::Query(_) => ftag::QUERY,
            Self::CopyData => ftag::COPY_DATA,
            Self::CopyDone => ftag::COPY_DONE,
            Self::CopyFail(_) => ftag::COPY_FAIL,
            Self::Terminate => ftag::TERMINATE,
            Self::Message(m) => m.tag().unwrap_or(0),
        }
    }

    /// The message's name as in the PostgreSQL documentation.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Message(m) => m.name(),
            lent => frontend_name(lent.tag()),
        }
    }
}

/// Where a [`FrontendDecoder`] is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Untagged start-up packets.
    Startup,
    /// Tagged messages.
    Normal,
    /// Nothing more may arrive (after a CancelRequest or an unsupported start-up packet).
    Ended(&'static str),
}

/// Decodes the byte stream a frontend sends, start-up packets first.
///
/// ```
/// use pgproto::{FrontendDecoder, FrontendMessage};
///
/// let mut dec = FrontendDecoder::new();
/// dec.receive(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // SSLRequest
/// assert_eq!(dec.next().unwrap(), Some(FrontendMessage::SslRequest));
/// ```
#[derive(Debug)]
pub struct FrontendDecoder {
    inner: Buffer,
    limits: Limits,
    phase: Phase,
    auth: Option<AuthResponseKind>,
    /// A tagged frame whose body does not decode is consumed and its error returned once,
    /// not kept (the `Server`, which recovers from it as PostgreSQL does).
    skip_malformed: bool,
}

impl Default for FrontendDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrontendDecoder {
    /// A decoder at the start of a connection (expecting a start-up packet), with default limits.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder at the start of a connection with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            inner: Buffer::default(),
            limits,
            phase: Phase::Startup,
            auth: None,
            skip_malformed: false,
        }
    }

    /// A decoder for a stream already past start-up (expecting tagged messages).
    pub fn after_startup(limits: Limits) -> Self {
        Self {
            phase: Phase::Normal,
            ..Self::with_limits(limits)
        }
    }

    /// Changes the limits for the frames not yet checked.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Says which message a `p` frame is from now on; `None` decodes it as
    /// [`FrontendMessage::UntypedAuthResponse`].
    pub fn expect_auth_response(&mut self, kind: Option<AuthResponseKind>) {
        self.auth = kind;
    }

    /// From now on, a tagged frame with a valid header whose body does not decode is skipped
    /// whole and its error returned without being kept: the next call goes on with the next
    /// frame. (Header errors stay sticky.)
    pub(crate) fn skip_malformed_bodies(&mut self) {
        self.skip_malformed = true;
    }

    /// Whether an error is kept (every later call returns it).
    pub(crate) fn is_failed(&self) -> bool {
        self.inner.error.is_some()
    }

    /// The error of a body that did not decode, the frame ending at `end` in the buffer.
    fn malformed_body(&mut self, end: usize, e: DecodeError) -> DecodeError {
        if self.skip_malformed {
            self.inner.lent = end;
            e
        } else {
            self.inner.fail(e)
        }
    }

    /// Whether the decoder still expects untagged start-up packets.
    pub fn in_startup(&self) -> bool {
        self.phase == Phase::Startup
    }

    /// Appends bytes received from the client. Call [`FrontendDecoder::next`] until it returns
    /// `Ok(None)` after every call to this.
    pub fn receive(&mut self, data: &[u8]) {
        self.inner.receive(data);
    }

    /// Frees the receive buffer's memory when it holds no undecoded bytes (an idle connection
    /// then keeps no buffer). Views lent by an earlier call end here.
    pub fn release_buffer(&mut self) {
        self.inner.shrink();
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.inner.buf.len() - self.inner.lent
    }

    /// The bytes buffered and not yet decoded.
    pub fn peek(&self) -> &[u8] {
        &self.inner.buf[self.inner.lent..]
    }

    /// Takes the bytes buffered but not yet decoded.
    pub fn take_buffered(&mut self) -> Bytes {
        self.inner.release();
        self.inner.buf.split().freeze()
    }

    fn startup_packet(&mut self) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
        let Some(h) = self.inner.buf.get(..4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if len < 8 {
            return Err(DecodeError::InvalidLength {
                message: "start-up packet",
                len: len.into(),
            });
        }
        if len as u32 > self.limits.startup {
            return Err(DecodeError::TooLong {
                message: "start-up packet",
                len: len as u64,
                max: self.limits.startup,
            });
        }
        if self.inner.buf.len() < len as usize {
            return Ok(None);
        }
        let packet = self.inner.buf.split_to(len as usize).freeze();
        let m = FrontendMessage::decode_startup(&packet)?;
        match &m {
            FrontendMessage::Startup(_) => self.phase = Phase::Normal,
            FrontendMessage::CancelRequest(_) => self.phase = Phase::Ended("CancelRequest"),
            FrontendMessage::UnsupportedStartup(_) => {
                self.phase = Phase::Ended("an unsupported start-up packet")
            }
            _ => {}
        }
        Ok(Some(m))
    }

    /// The next complete frame, undecoded; `None` while start-up packets are expected.
    ///
    /// Fails with [`DecodeError::UnknownTag`], [`DecodeError::InvalidLength`] or
    /// [`DecodeError::TooLong`] when the frame header is bad (a length over the [`Limits`] is
    /// too long); the error is sticky: every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        if self.phase != Phase::Normal {
            return Ok(None);
        }
        let limits = self.limits;
        match self
            .inner
            .tagged_len(&FRONTEND_CLASS, |c| limits.frontend(c), frontend_name)
        {
            Ok(Some(total)) => Ok(Some(self.inner.split_frame(total))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.inner.fail(e)),
        }
    }

    /// Like [`FrontendDecoder::next`], but the messages of an extended-query pipeline (Parse,
    /// Bind, Describe, Execute, Sync, Flush) and Query and CopyData borrow the decoder's buffer,
    /// valid until the next call on the decoder: no allocation, no reference count, and
    /// consecutive messages only move a cursor. Everything else, start-up packets included,
    /// comes owned.
    ///
    /// The same bytes give the same messages (compare with [`FrontendMessage::into_owned`]) and
    /// the same errors, at the same points, as [`FrontendDecoder::next`]; the two may be mixed.
    ///
    /// ```
    /// use pgproto::{FrontendDecoder, FrontendMessage, Limits};
    ///
    /// let mut dec = FrontendDecoder::after_startup(Limits::default());
    /// // Bind (unnamed portal, statement "s1", one text value "42"), Execute, Sync.
    /// dec.receive(b"B\0\0\0\x14\0s1\0\0\0\0\x01\0\0\0\x0242\0\0");
    /// dec.receive(b"E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04");
    /// let mut seen = Vec::new();
    /// while let Some(m) = dec.next_ref().unwrap() {
    ///     match &m {
    ///         FrontendMessage::Bind(b) => {
    ///             assert_eq!(b.statement(), b"s1");
    ///             assert_eq!(b.params().iter().collect::<Vec<_>>(), [Some(&b"42"[..])]);
    ///         }
    ///         FrontendMessage::Execute(e) => assert_eq!(e.max_rows(), 0),
    ///         _ => {}
    ///     }
    ///     seen.push(m.name());
    /// }
    /// assert_eq!(seen, ["Bind", "Execute", "Sync"]);
    /// ```
    #[inline]
    pub fn next_ref(&mut self) -> Result<Option<FrontendMessage<'_>>, DecodeError> {
        match self.advance()? {
            Some(lent) => Ok(Some(self.view(lent))),
            None => Ok(None),
        }
    }

    /// The view of a message [`FrontendDecoder::advance`] checked: valid until the next call
    /// that takes `&mut self`.
    #[inline]
    pub(crate) fn view(&self, lent: FrontendLent) -> FrontendMessage<'_> {
        let FrontendLent { at, end, layout } = lent;
        let body = || Payload::Borrowed(&self.inner.buf[at..end]);
        match layout {
            Layout::Parse(l) => FrontendMessage::Parse(Parse::from_parts(body(), l)),
            Layout::Bind(l) => FrontendMessage::Bind(Bind::from_parts(body(), l)),
            Layout::Describe(l) => FrontendMessage::Describe(Describe::from_parts(body(), l)),
            Layout::Close(l) => FrontendMessage::Close(Close::from_parts(body(), l)),
            Layout::Execute(l) => FrontendMessage::Execute(Execute::from_parts(body(), l)),
            Layout::Sync => FrontendMessage::Sync,
            Layout::Flush => FrontendMessage::Flush,
            Layout::Query(l) => {
                FrontendMessage::Query(Query::from_checked(body().slice(l.range())))
            }
            Layout::CopyData => FrontendMessage::CopyData(CopyData::from_checked(body())),
            Layout::CopyDone => FrontendMessage::CopyDone,
            Layout::CopyFail(l) => {
                FrontendMessage::CopyFail(CopyFail::from_checked(body().slice(l.range())))
            }
            Layout::Terminate => FrontendMessage::Terminate,
            Layout::Message(m) => *m,
        }
    }

    /// If the next frame is whole and its type is not one of `keep`, checks its header (type
    /// and length, as for any frame) and skips it without decoding its body, returning its type
    /// byte: how a backend discards messages until Sync after an error. `Ok(None)` when the
    /// next frame is incomplete or of a type in `keep` (then nothing is consumed).
    pub(crate) fn skip_unless(&mut self, keep: &[u8]) -> Result<Option<u8>, DecodeError> {
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        if self.phase != Phase::Normal {
            return Ok(None);
        }
        match self.inner.buf.first() {
            Some(t) if !keep.contains(t) => {}
            _ => return Ok(None),
        }
        let limits = self.limits;
        match self
            .inner
            .tagged_len(&FRONTEND_CLASS, |c| limits.frontend(c), frontend_name)
        {
            Ok(Some(total)) => {
                let t = self.inner.buf[0];
                self.inner.lent = total;
                Ok(Some(t))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.inner.fail(e)),
        }
    }

    /// The portal a lent Describe of a portal or Execute names; empty for anything else.
    #[inline]
    pub(crate) fn portal_of(&self, lent: &FrontendLent) -> &[u8] {
        let body = self.inner.buf.get(lent.at..lent.end).unwrap_or_default();
        match &lent.layout {
            Layout::Describe(l) if l.target == crate::Target::Portal => l.name.of(body),
            Layout::Execute(l) => l.portal.of(body),
            _ => b"",
        }
    }

    /// The server's fast path: lends the next message if it is a whole, well-formed message
    /// that starts a request (Parse, Bind, Describe, Close, Execute, Sync, Query) right after
    /// the bytes lent so far. `None` in every other case, with nothing consumed, for
    /// [`FrontendDecoder::advance`] to decide (and report any error exactly as it would have).
    ///
    /// Also returns where, in the buffer, the portal that a Describe of a portal or an Execute
    /// names lies (empty for the others), for [`FrontendDecoder::buffered_bytes`]: taken here,
    /// where the layout is at hand, so that the caller need not look into the descriptor.
    #[inline]
    pub(crate) fn advance_request(&mut self) -> Option<(FrontendLent, Range<usize>)> {
        if self.inner.error.is_some() || self.phase != Phase::Normal {
            return None;
        }
        let at = self.inner.lent;
        let tag = *self.inner.buf.get(at)?;
        if !matches!(
            tag,
            ftag::PARSE
                | ftag::BIND
                | ftag::DESCRIBE
                | ftag::CLOSE
                | ftag::EXECUTE
                | ftag::SYNC
                | ftag::QUERY
        ) {
            return None;
        }
        let max = self.limits.frontend(FRONTEND_CLASS[tag as usize]);
        let (end, body) = self.inner.whole_frame_at(at, tag, max)?;
        let mut portal = 0..0;
        let layout = match tag {
            ftag::PARSE => Layout::Parse(ParseLayout::read(body).ok()?),
            ftag::BIND => Layout::Bind(BindLayout::read(body).ok()?),
            ftag::DESCRIBE => {
                let l = TargetLayout::read(body, "Describe").ok()?;
                if l.target == crate::Target::Portal {
                    portal = l.name.range();
                }
                Layout::Describe(l)
            }
            ftag::CLOSE => Layout::Close(TargetLayout::read(body, "Close").ok()?),
            ftag::EXECUTE => {
                let l = ExecuteLayout::read(body).ok()?;
                portal = l.portal.range();
                Layout::Execute(l)
            }
            ftag::SYNC => {
                empty_layout(body, "Sync").ok()?;
                Layout::Sync
            }
            _ => Layout::Query(text_layout(body, "Query", "query string").ok()?),
        };
        self.inner.lent = end;
        let lent = FrontendLent {
            at: at + 5,
            end,
            layout,
        };
        Some((lent, at + 5 + portal.start..at + 5 + portal.end))
    }

    /// Bytes of the buffer, at positions [`FrontendDecoder::advance_request`] gave.
    #[inline]
    pub(crate) fn buffered_bytes(&self, range: Range<usize>) -> &[u8] {
        self.inner.buf.get(range).unwrap_or_default()
    }

    /// Checks the next message and says where its fields lie (the extended-query messages,
    /// Query, CopyData) or decodes it (the rest), without borrowing the buffer: the one decoding
    /// path behind [`FrontendDecoder::next_ref`] and the server's state machine.
    #[inline]
    pub(crate) fn advance(&mut self) -> Result<Option<FrontendLent>, DecodeError> {
        // The hot path: a whole frame of a lent type right after the bytes lent so far, with a
        // valid length word. Anything else (an unknown type, a bad length, an incomplete frame,
        // another message) takes the general path, which reports it as `next` does.
        //
        // Each arm checks the body into a layout (no borrow, so a failure can still clear the
        // buffer), then moves the cursor. The type byte is a constant in each arm, so its length
        // limit is too.
        macro_rules! lend {
            ($at:expr, $tag:expr, $read:expr, $layout:expr) => {{
                let max = self.limits.frontend(FRONTEND_CLASS[$tag as usize]);
                if let Some((end, body)) = self.inner.whole_frame_at($at, $tag, max) {
                    return match $read(body) {
                        Ok(layout) => {
                            self.inner.lent = end;
                            Ok(Some(FrontendLent {
                                at: $at + 5,
                                end,
                                layout: $layout(layout),
                            }))
                        }
                        Err(e) => Err(self.malformed_body(end, e)),
                    };
                }
            }};
        }
        if self.inner.error.is_none() && self.phase == Phase::Normal {
            let at = self.inner.lent;
            match self.inner.buf.get(at) {
                Some(&ftag::PARSE) => lend!(at, ftag::PARSE, ParseLayout::read, Layout::Parse),
                Some(&ftag::BIND) => lend!(at, ftag::BIND, BindLayout::read, Layout::Bind),
                Some(&ftag::DESCRIBE) => lend!(
                    at,
                    ftag::DESCRIBE,
                    |b| TargetLayout::read(b, "Describe"),
                    Layout::Describe
                ),
                Some(&ftag::CLOSE) => lend!(
                    at,
                    ftag::CLOSE,
                    |b| TargetLayout::read(b, "Close"),
                    Layout::Close
                ),
                Some(&ftag::EXECUTE) => {
                    lend!(at, ftag::EXECUTE, ExecuteLayout::read, Layout::Execute)
                }
                Some(&ftag::SYNC) => lend!(at, ftag::SYNC, |b| empty_layout(b, "Sync"), |()| {
                    Layout::Sync
                }),
                Some(&ftag::FLUSH) => lend!(at, ftag::FLUSH, |b| empty_layout(b, "Flush"), |()| {
                    Layout::Flush
                }),
                Some(&ftag::QUERY) => lend!(
                    at,
                    ftag::QUERY,
                    |b| text_layout(b, "Query", "query string"),
                    Layout::Query
                ),
                Some(&ftag::COPY_DATA) => {
                    lend!(at, ftag::COPY_DATA, |_| Ok::<(), DecodeError>(()), |()| {
                        Layout::CopyData
                    })
                }
                Some(&ftag::COPY_DONE) => {
                    lend!(at, ftag::COPY_DONE, |b| empty_layout(b, "CopyDone"), |()| {
                        Layout::CopyDone
                    })
                }
                Some(&ftag::COPY_FAIL) => lend!(
                    at,
                    ftag::COPY_FAIL,
                    |b| text_layout(b, "CopyFail", "error message"),
                    Layout::CopyFail
                ),
                Some(&ftag::TERMINATE) => lend!(
                    at,
                    ftag::TERMINATE,
                    |b| empty_layout(b, "Terminate"),
                    |()| Layout::Terminate
                ),
                _ => {}
            }
        }
        Ok(self.next()?.map(|m| FrontendLent {
            at: 0,
            end: 0,
            layout: Layout::Message(Box::new(m)),
        }))
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// Fails with a [`DecodeError`] when a start-up packet or frame header is bad, a body does
    /// not decode as its message, or bytes follow a CancelRequest or an unsupported start-up
    /// packet ([`DecodeError::DataAfterEnd`]); the error is sticky: every later call returns it
    /// again.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
        self.inner.release();
        if let Some(e) = &self.inner.error {
            return Err((**e).clone());
        }
        match self.phase {
            Phase::Startup => self.startup_packet().map_err(|e| self.inner.fail(e)),
            Phase::Ended(message) => {
                if self.inner.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(self.inner.fail(DecodeError::DataAfterEnd { message }))
                }
            }
            Phase::Normal => {
                let Some(f) = self.next_frame()? else {
                    return Ok(None);
                };
                // The frame is split off the buffer already.
                FrontendMessage::decode_payload(f.tag, Payload::Shared(f.body), self.auth)
                    .map(Some)
                    .map_err(|e| self.malformed_body(0, e))
            }
        }
    }
}
