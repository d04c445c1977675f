//! Incremental decoders of protocol-2.0 byte streams: [`BackendDecoder`] for what a 2.0 server
//! sends, [`FrontendDecoder`] for what a 2.0 client sends.
//!
//! Bytes may arrive split anywhere; the messages that come out are the same. Where the protocol
//! itself decides how the next bytes are to be read, the decoder follows: a BackendDecoder
//! reads rows with the field count of the RowDescription before them and, after
//! CopyOutResponse, raw lines until `\.`. What only the other direction tells (a password is
//! due, a COPY FROM STDIN began) the caller says with [`FrontendDecoder::expect_password`] and
//! [`FrontendDecoder::expect_copy_in`].
//!
//! Errors are sticky: after one, every call returns it again.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{DecodeError, Tag};
use crate::limits::Limits;
use crate::message::startup::{CancelRequest, CANCEL_REQUEST_CODE, SSL_REQUEST_CODE};
use crate::v2::backend::{copy_line, BackendMessage};
use crate::v2::common::{ends_with_marker, CopyLine, COPY_END};
use crate::v2::frontend::{FrontendMessage, PasswordPacket, StartupPacket};
use crate::v2::scan::{self, Progress};

/// The buffer, scan progress and sticky error both decoders share.
#[derive(Debug, Default)]
struct Input {
    buf: BytesMut,
    progress: Progress,
    error: Option<DecodeError>,
}

impl Input {
    fn receive(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf = BytesMut::new();
        self.progress = Progress::default();
        self.error = Some(e.clone());
        e
    }

    /// The sticky error, if any; otherwise whether bytes are waiting.
    fn ready(&self) -> Result<bool, DecodeError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(!self.buf.is_empty()),
        }
    }

    /// Splits off the first `n` bytes, a whole message.
    fn take(&mut self, n: usize) -> Bytes {
        self.progress = Progress::default();
        self.buf.split_to(n).freeze()
    }

    fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

/// What a [`BackendDecoder`] expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendMode {
    Tagged,
    SslResponse,
    CopyOut,
}

/// Decodes the byte stream a protocol-2.0 backend sends.
///
/// The length limits are those of [`Limits`] for the same messages in 3.0, counted in bytes
/// after the type byte: rows, descriptions, errors, notices, notifications and function results
/// up to `backend_large`, a CopyDataRows line up to `backend_large`, the rest up to
/// `backend_small`. A string or line still without its end once past its limit fails at once,
/// so a stream without NULs cannot make the decoder buffer without bound.
///
/// ```
/// use pgproto::v2::{BackendDecoder, BackendMessage};
///
/// let mut dec = BackendDecoder::new();
/// // RowDescription (one int4 field "a"), an AsciiRow "1", split across two reads.
/// let bytes = b"T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\0\0\0\x051";
/// let (head, tail) = bytes.split_at(7);
/// dec.receive(head);
/// assert_eq!(dec.next().unwrap(), None); // incomplete: wait for more
/// dec.receive(tail);
/// assert!(matches!(dec.next().unwrap(), Some(BackendMessage::RowDescription(_))));
/// let Some(BackendMessage::AsciiRow(row)) = dec.next().unwrap() else { panic!() };
/// assert_eq!(row.get(0), Some(Some(&b"1"[..])));
/// ```
#[derive(Debug)]
pub struct BackendDecoder {
    input: Input,
    limits: Limits,
    mode: BackendMode,
    columns: Option<u16>,
}

impl Default for BackendDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BackendDecoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            input: Input::default(),
            limits,
            mode: BackendMode::Tagged,
            columns: None,
        }
    }

    /// The next byte answers an SSLRequest: `S` or `N` (or `E`, the error of a server that
    /// does not know the request). The 2.0 documentation says `Y`; servers send `S`, and libpq
    /// reads `S`.
    pub fn expect_ssl_response(&mut self) {
        self.mode = BackendMode::SslResponse;
    }

    /// Appends bytes received from the server. Call [`BackendDecoder::next`] until it returns
    /// `Ok(None)` after every call to this.
    pub fn receive(&mut self, data: &[u8]) {
        self.input.receive(data);
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.input.buf.len()
    }

    /// The bytes buffered and not yet decoded.
    pub fn peek(&self) -> &[u8] {
        &self.input.buf
    }

    /// Takes the bytes buffered but not yet decoded (for instance the start of a TLS handshake
    /// that came with the answer to SSLRequest).
    pub fn take_buffered(&mut self) -> Bytes {
        self.input.progress = Progress::default();
        self.input.buf.split().freeze()
    }

    /// Frees the receive buffer's memory when it holds no undecoded bytes.
    pub fn release_buffer(&mut self) {
        self.input.release();
    }

    /// The field count of the last RowDescription: how many fields the rows now have.
    pub fn columns(&self) -> Option<u16> {
        self.columns
    }

    /// Whether a CopyDataRows stream is being read (after CopyOutResponse, until `\.`).
    pub fn in_copy_out(&self) -> bool {
        self.mode == BackendMode::CopyOut
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// Fails with a [`DecodeError`] naming the message and field: an unknown type byte, a
    /// message over its limit, a row before any RowDescription, a count or length out of
    /// range, an authentication code 2.0 does not define...; the error is sticky.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<BackendMessage>, DecodeError> {
        if !self.input.ready()? {
            return Ok(None);
        }
        match self.step() {
            Ok(m) => Ok(m),
            Err(e) => Err(self.input.fail(e)),
        }
    }

    fn step(&mut self) -> Result<Option<BackendMessage>, DecodeError> {
        let first = self.input.buf[0];
        match self.mode {
            BackendMode::SslResponse if first != b'E' => {
                let accepted = match first {
                    b'S' => true,
                    b'N' => false,
                    other => return Err(DecodeError::UnknownTag { tag: Tag(other) }),
                };
                self.input.take(1);
                self.mode = BackendMode::Tagged;
                return Ok(Some(BackendMessage::SslResponse { accepted }));
            }
            BackendMode::SslResponse => self.mode = BackendMode::Tagged,
            BackendMode::CopyOut => {
                let max = self.limits.backend_large;
                let Some(n) = scan::line(&self.input.buf, &mut self.input.progress, max)? else {
                    return Ok(None);
                };
                let m = copy_line(self.input.take(n));
                if m == BackendMessage::CopyDataEnd {
                    self.mode = BackendMode::Tagged;
                }
                return Ok(Some(m));
            }
            BackendMode::Tagged => {}
        }
        let Some(n) = scan::backend_message(
            &self.input.buf,
            &mut self.input.progress,
            self.columns,
            &self.limits,
        )?
        else {
            return Ok(None);
        };
        let frame = self.input.take(n);
        let m = BackendMessage::decode(frame[0], &frame.slice(1..), self.columns)?;
        match &m {
            BackendMessage::RowDescription(d) => self.columns = u16::try_from(d.len()).ok(),
            BackendMessage::CopyOutResponse => self.mode = BackendMode::CopyOut,
            _ => {}
        }
        Ok(Some(m))
    }
}

/// What a [`FrontendDecoder`] expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrontendMode {
    Startup,
    Password,
    Tagged,
    CopyIn,
    Ended(&'static str),
}

/// Decodes the byte stream a protocol-2.0 frontend sends: start-up packets first (SSLRequest,
/// CancelRequest, StartupPacket), then tagged messages.
///
/// The limits are those of [`Limits`]: start-up packets up to `startup`, PasswordPacket up to
/// `frontend_auth`, Query, FunctionCall and each CopyDataRows line up to `frontend_large`
/// (bytes after the type byte).
///
/// ```
/// use pgproto::v2::{FrontendDecoder, FrontendMessage, StartupPacket, Text};
/// use pgproto::{Encode, ProtocolVersion};
/// use bytes::BytesMut;
///
/// let mut bytes = BytesMut::new();
/// StartupPacket::new(ProtocolVersion::V2_0, "", "alice", "").unwrap().encode(&mut bytes);
/// bytes.extend_from_slice(b"QSELECT 1\0");
/// let mut dec = FrontendDecoder::new();
/// dec.receive(&bytes);
/// let Some(FrontendMessage::Startup(p)) = dec.next().unwrap() else { panic!() };
/// assert_eq!(p.user(), b"alice");
/// assert_eq!(
///     dec.next().unwrap(),
///     Some(FrontendMessage::Query(Text::new("SELECT 1").unwrap()))
/// );
/// ```
#[derive(Debug)]
pub struct FrontendDecoder {
    input: Input,
    limits: Limits,
    mode: FrontendMode,
}

impl Default for FrontendDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrontendDecoder {
    /// A decoder at the start of a connection, with default limits.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder at the start of a connection with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            input: Input::default(),
            limits,
            mode: FrontendMode::Startup,
        }
    }

    /// A decoder for a stream already past its StartupPacket (expecting tagged messages).
    pub fn after_startup(limits: Limits) -> Self {
        Self {
            mode: FrontendMode::Tagged,
            ..Self::with_limits(limits)
        }
    }

    /// The next packet is a PasswordPacket: the server asked for a password.
    pub fn expect_password(&mut self) {
        self.mode = FrontendMode::Password;
    }

    /// The frontend now sends CopyDataRows, until `\.`: the server sent CopyInResponse.
    pub fn expect_copy_in(&mut self) {
        self.mode = FrontendMode::CopyIn;
    }

    /// Whether the decoder expects start-up packets.
    pub fn in_startup(&self) -> bool {
        self.mode == FrontendMode::Startup
    }

    /// Whether a CopyDataRows stream is being read.
    pub fn in_copy_in(&self) -> bool {
        self.mode == FrontendMode::CopyIn
    }

    /// Appends bytes received from the client. Call [`FrontendDecoder::next`] until it returns
    /// `Ok(None)` after every call to this.
    pub fn receive(&mut self, data: &[u8]) {
        self.input.receive(data);
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.input.buf.len()
    }

    /// The bytes buffered and not yet decoded.
    pub fn peek(&self) -> &[u8] {
        &self.input.buf
    }

    /// Takes the bytes buffered but not yet decoded.
    pub fn take_buffered(&mut self) -> Bytes {
        self.input.progress = Progress::default();
        self.input.buf.split().freeze()
    }

    /// Frees the receive buffer's memory when it holds no undecoded bytes.
    pub fn release_buffer(&mut self) {
        self.input.release();
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed.
    ///
    /// Fails with a [`DecodeError`] naming the message and field (an unknown type byte, a
    /// start-up packet that is not 2.0, a message over its limit, a negative count...), or
    /// [`DecodeError::DataAfterEnd`] for bytes after a CancelRequest; the error is sticky.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<FrontendMessage>, DecodeError> {
        if !self.input.ready()? {
            return Ok(None);
        }
        match self.step() {
            Ok(m) => Ok(m),
            Err(e) => Err(self.input.fail(e)),
        }
    }

    fn step(&mut self) -> Result<Option<FrontendMessage>, DecodeError> {
        match self.mode {
            FrontendMode::Startup => self.startup_packet(),
            FrontendMode::Password => {
                let max = self.limits.frontend_auth;
                let Some(n) = scan::packet(&self.input.buf, 5, max, "PasswordPacket")? else {
                    return Ok(None);
                };
                let p = PasswordPacket::decode(&self.input.take(n))?;
                self.mode = FrontendMode::Tagged;
                Ok(Some(FrontendMessage::Password(p)))
            }
            FrontendMode::CopyIn => {
                let max = self.limits.frontend_large;
                let Some(n) = scan::line(&self.input.buf, &mut self.input.progress, max)? else {
                    return Ok(None);
                };
                // The end marker may follow the last row on its line, as libpq sends data that
                // does not end with a newline: then that row comes first, without a newline.
                let marker_at = ends_with_marker(&self.input.buf[..n]).then(|| n - COPY_END.len());
                match marker_at {
                    Some(0) => {
                        self.input.take(n);
                        self.mode = FrontendMode::Tagged;
                        Ok(Some(FrontendMessage::CopyDataEnd))
                    }
                    Some(at) => Ok(Some(FrontendMessage::CopyDataRow(CopyLine::from_checked(
                        self.input.take(at),
                    )))),
                    None => Ok(Some(FrontendMessage::CopyDataRow(CopyLine::from_checked(
                        self.input.take(n),
                    )))),
                }
            }
            FrontendMode::Tagged => {
                let Some(n) = scan::frontend_message(
                    &self.input.buf,
                    &mut self.input.progress,
                    &self.limits,
                )?
                else {
                    return Ok(None);
                };
                let mut frame = self.input.take(n);
                let tag = frame[0];
                frame.advance(1);
                FrontendMessage::decode(tag, &frame).map(Some)
            }
            FrontendMode::Ended(message) => Err(DecodeError::DataAfterEnd { message }),
        }
    }

    fn startup_packet(&mut self) -> Result<Option<FrontendMessage>, DecodeError> {
        let max = self.limits.startup;
        let Some(n) = scan::packet(&self.input.buf, 8, max, "start-up packet")? else {
            return Ok(None);
        };
        let b = &self.input.buf;
        let code = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let exact = |len: usize, message| {
            if n == len {
                Ok(())
            } else {
                Err(DecodeError::InvalidLength {
                    message,
                    len: n as i64,
                })
            }
        };
        let m = match code {
            SSL_REQUEST_CODE => {
                exact(8, "SSLRequest")?;
                self.input.take(n);
                FrontendMessage::SslRequest
            }
            CANCEL_REQUEST_CODE => {
                exact(16, "CancelRequest")?;
                let c = CancelRequest::decode(&self.input.take(n))?;
                self.mode = FrontendMode::Ended("CancelRequest");
                FrontendMessage::CancelRequest(c)
            }
            c if c >> 16 == 2 => {
                let p = StartupPacket::decode(&self.input.take(n))?;
                self.mode = FrontendMode::Tagged;
                FrontendMessage::Startup(p)
            }
            other => {
                return Err(DecodeError::InvalidValue {
                    message: "start-up packet",
                    field: "protocol version",
                    value: other.into(),
                })
            }
        };
        Ok(Some(m))
    }
}
