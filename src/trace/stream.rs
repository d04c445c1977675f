//! Cutting both directions of a connection into messages and tracing each one.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write as _;

use crate::message::frontend::AuthResponseKind;
use crate::message::startup::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};

use super::{Direction, Formatter, TraceFlags, TraceSink};

/// The default of [`Tracer::max_message_len`]: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 20;

/// Authentication requests remembered for the `p` messages that answer them. A peer cannot
/// make the tracer remember more; the oldest is dropped.
const AUTH_QUEUE: usize = 8;

/// A buffer larger than this is freed after its message instead of kept for the next one.
const KEEP_CAPACITY: usize = 64 * 1024;

/// How the next bytes of one direction are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Start-up packets without type byte (frontend, until the StartupMessage).
    Untagged,
    /// Type byte, length word, body.
    Tagged,
    /// One byte answering an SSLRequest (`true`) or a GSSENCRequest (`false`), then tagged.
    Answer { ssl: bool },
    /// Nothing more is traced in this direction (after a CancelRequest, or a length word that
    /// cannot be framed).
    Ended,
}

/// The message of one direction being read.
#[derive(Debug)]
struct Side {
    mode: Mode,
    /// The header and as much of the body as the cap allows.
    buf: Vec<u8>,
    /// The whole frame's length (header included), once the header is in; 0 before.
    total: usize,
    /// Bytes of the frame seen so far, kept or not.
    seen: usize,
}

impl Side {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            buf: Vec::new(),
            total: 0,
            seen: 0,
        }
    }

    fn header_len(&self) -> usize {
        if self.mode == Mode::Untagged {
            4
        } else {
            5
        }
    }

    /// Drops the finished frame, keeping a reasonably small buffer for the next one.
    fn reset(&mut self) {
        self.total = 0;
        self.seen = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// Traces both directions of one connection, message by message, in libpq's `PQtrace` format.
///
/// Feed it the bytes each side sends, in any chunks: [`Tracer::frontend`] for what the client
/// sends, [`Tracer::backend`] for what the server sends. It cuts each stream into messages (the
/// start-up packets without type byte, the one-byte answers to SSLRequest and GSSENCRequest,
/// then tagged messages) and gives the [`TraceSink`] one line per message as soon as the
/// message is complete. A `p` message is named after the authentication request it answers, so
/// the backend's request must be fed before the frontend's answer (which is the order they
/// happen in). Both machines drive one themselves ([`Client::set_tracer`],
/// [`Server::set_tracer`]).
///
/// Memory is bounded: each direction keeps at most [`Tracer::max_message_len`] bytes of the
/// message it is reading; the rest of a longer message is counted, not kept, and its line is
/// cut. A length word that cannot be a message's (below 4) ends that direction's trace with a
/// line saying so.
///
/// [`Client::set_tracer`]: crate::Client::set_tracer
/// [`Server::set_tracer`]: crate::Server::set_tracer
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use pgproto::trace::{TraceFlags, Tracer};
///
/// let out = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&out);
/// let mut tracer = Tracer::new(move |line: &[u8]| {
///     let mut out = sink.lock().unwrap();
///     out.extend_from_slice(line);
///     out.push(b'\n');
/// })
/// .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS);
///
/// tracer.frontend(b"\0\0\0\x08\x04\xd2\x16\x2f"); // SSLRequest
/// tracer.backend(b"N"); // refused
/// tracer.frontend(b"\0\0\0\x12\0\x03\0\0user\0bob\0\0"); // StartupMessage
/// tracer.backend(b"R\0\0\0\x08\0\0\0\x03"); // AuthenticationCleartextPassword
/// tracer.frontend(b"p\0\0\0\x07pw\0"); // its answer: a PasswordMessage
/// assert_eq!(
///     String::from_utf8(out.lock().unwrap().clone()).unwrap(),
///     "F\t8\tSSLRequest\t 1234 5679\n\
///      B\t1\tSSLResponse\t N\n\
///      F\t18\tStartupMessage\t 3 0 \"user\" \"bob\"\n\
///      B\t8\tAuthenticationCleartextPassword\n\
///      F\t7\tPasswordMessage\t \"pw\"\n"
/// );
/// ```
pub struct Tracer {
    flags: TraceFlags,
    formatter: Formatter,
    max: usize,
    sink: Box<dyn TraceSink + Send>,
    frontend: Side,
    backend: Side,
    /// What the next `p` messages answer, oldest first.
    auth: VecDeque<AuthResponseKind>,
    /// The line being written.
    line: Vec<u8>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("flags", &self.flags)
            .field("max_message_len", &self.max)
            .field("frontend", &self.frontend.mode)
            .field("backend", &self.backend.mode)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// A tracer for a connection from its first byte, writing lines to `sink`, with libpq's
    /// default flags (timestamps when the sink gives the time, nothing hidden).
    pub fn new(sink: impl TraceSink + Send + 'static) -> Self {
        Self {
            flags: TraceFlags::empty(),
            formatter: Formatter::new(TraceFlags::empty()),
            max: DEFAULT_MAX_MESSAGE_LEN,
            sink: Box::new(sink),
            frontend: Side::new(Mode::Untagged),
            backend: Side::new(Mode::Tagged),
            auth: VecDeque::new(),
            line: Vec::new(),
        }
    }

    /// The same tracer with these flags.
    pub fn with_flags(mut self, flags: TraceFlags) -> Self {
        self.set_flags(flags);
        self
    }

    /// Changes the flags from the next line on (libpq's `PQsetTraceFlags`).
    pub fn set_flags(&mut self, flags: TraceFlags) {
        self.flags = flags;
        self.formatter = Formatter::new(flags);
    }

    /// The flags in force.
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The same tracer keeping at most `len` bytes of a message (type byte and length word
    /// included, at least 5) per direction; a longer message's line shows the fields that fit
    /// and ends in ` ... [cut: KEPT of TOTAL bytes]` (both counts with the type byte).
    pub fn with_max_message_len(mut self, len: usize) -> Self {
        self.max = len.max(5);
        self
    }

    /// The most bytes of one message kept per direction.
    pub fn max_message_len(&self) -> usize {
        self.max
    }

    /// Bytes the frontend (the client) sent.
    pub fn frontend(&mut self, data: &[u8]) {
        self.feed(Direction::Frontend, data);
    }

    /// Bytes the backend (the server) sent.
    pub fn backend(&mut self, data: &[u8]) {
        self.feed(Direction::Backend, data);
    }

    /// Frees the memory of buffers that hold nothing.
    pub fn release_buffers(&mut self) {
        for side in [&mut self.frontend, &mut self.backend] {
            if side.buf.is_empty() {
                side.buf = Vec::new();
            }
        }
        self.line = Vec::new();
    }

    /// Starts the tracer in the middle of a connection: the frontend still sends start-up
    /// packets (`untagged`), and the backend's next byte answers an encryption request
    /// (`Some(true)` for SSLRequest, `Some(false)` for GSSENCRequest).
    pub(crate) fn resume(&mut self, untagged: bool, answer: Option<bool>) {
        self.frontend = Side::new(if untagged {
            Mode::Untagged
        } else {
            Mode::Tagged
        });
        self.backend = Side::new(match answer {
            Some(ssl) => Mode::Answer { ssl },
            None => Mode::Tagged,
        });
    }

    /// The memory held for the messages being read.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.frontend.buf.capacity() + self.backend.buf.capacity()
    }

    fn side(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Frontend => &mut self.frontend,
            Direction::Backend => &mut self.backend,
        }
    }

    /// Bytes `direction` sent.
    pub(crate) fn feed(&mut self, direction: Direction, mut data: &[u8]) {
        let max = self.max;
        while let Some(&first) = data.first() {
            let side = self.side(direction);
            match side.mode {
                Mode::Ended => return,
                Mode::Answer { ssl } => {
                    side.mode = Mode::Tagged;
                    // A server that does not know the request answers with an ErrorResponse,
                    // which is read as one.
                    if first != b'E' {
                        data = &data[1..];
                        self.answer(ssl, first);
                    }
                }
                Mode::Untagged | Mode::Tagged => {
                    let header = side.header_len();
                    if side.total == 0 {
                        side.buf.reserve_exact(header - side.buf.len());
                        let take = (header - side.buf.len()).min(data.len());
                        side.buf.extend_from_slice(&data[..take]);
                        side.seen += take;
                        data = &data[take..];
                        if side.buf.len() < header {
                            return;
                        }
                        let h = &side.buf[header - 4..header];
                        let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                        if len < 4 {
                            self.unframeable(direction, len);
                            return;
                        }
                        side.total = len as usize + header - 4;
                        // What will be kept of this frame, allocated once.
                        let keep = side.total.min(max);
                        side.buf.reserve_exact(keep.saturating_sub(side.buf.len()));
                    }
                    let take = (side.total - side.seen).min(data.len());
                    let keep = take.min(max.saturating_sub(side.buf.len()));
                    side.buf.extend_from_slice(&data[..keep]);
                    side.seen += take;
                    data = &data[take..];
                    if side.seen == side.total {
                        self.finish(direction);
                    }
                }
            }
        }
    }

    /// Traces the complete frame of `direction` and resets it.
    fn finish(&mut self, direction: Direction) {
        let side = self.side(direction);
        let frame = std::mem::take(&mut side.buf);
        let untagged = side.mode == Mode::Untagged;
        self.begin_line();
        if untagged {
            self.formatter.startup_packet(&mut self.line, &frame);
            self.emit();
            self.after_startup_packet(&frame);
        } else {
            let tag = frame[0];
            let auth = match (direction, tag) {
                (Direction::Frontend, b'p') => self.auth.pop_front(),
                _ => None,
            };
            let extra = self
                .formatter
                .message(&mut self.line, direction, &frame, auth);
            self.emit();
            if let Some(extra) = extra {
                self.line.clear();
                let _ = write!(self.line, "{extra}");
                self.emit();
            }
            if direction == Direction::Backend && tag == b'R' {
                self.remember_request(&frame);
            }
        }
        let side = self.side(direction);
        side.buf = frame;
        side.reset();
    }

    /// What a start-up packet means for the rest of the connection.
    fn after_startup_packet(&mut self, frame: &[u8]) {
        let code = frame
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match code {
            // A direction that could not be cut into messages stays untraced.
            Some(SSL_REQUEST_CODE) if self.backend.mode != Mode::Ended => {
                self.backend.mode = Mode::Answer { ssl: true };
            }
            Some(GSSENC_REQUEST_CODE) if self.backend.mode != Mode::Ended => {
                self.backend.mode = Mode::Answer { ssl: false };
            }
            Some(SSL_REQUEST_CODE | GSSENC_REQUEST_CODE) => {}
            Some(CANCEL_REQUEST_CODE) => self.frontend.mode = Mode::Ended,
            _ => self.frontend.mode = Mode::Tagged,
        }
    }

    /// Remembers what the answer to an authentication request will be.
    fn remember_request(&mut self, frame: &[u8]) {
        let Some(code) = frame
            .get(5..9)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        let kind = match code {
            3 | 5 => AuthResponseKind::Password,
            7..=9 => AuthResponseKind::Gss,
            10 => AuthResponseKind::SaslInitial,
            11 => AuthResponseKind::Sasl,
            _ => return,
        };
        if self.auth.len() == AUTH_QUEUE {
            self.auth.pop_front();
        }
        self.auth.push_back(kind);
    }

    fn answer(&mut self, ssl: bool, byte: u8) {
        self.begin_line();
        if ssl {
            self.formatter.ssl_response(&mut self.line, byte);
        } else {
            self.formatter.gssenc_response(&mut self.line, byte);
        }
        self.emit();
    }

    /// A length word below 4: the stream cannot be cut into messages any more.
    fn unframeable(&mut self, direction: Direction, len: i32) {
        self.begin_line();
        self.line.push(direction.letter());
        let _ = write!(
            self.line,
            "\t{len}\tinvalid length word: the rest of this direction is not traced"
        );
        self.emit();
        let side = self.side(direction);
        side.reset();
        side.mode = Mode::Ended;
        side.buf = Vec::new();
    }

    /// Clears the line and writes the timestamp, if there is one.
    fn begin_line(&mut self) {
        self.line.clear();
        if !self.flags.contains(TraceFlags::SUPPRESS_TIMESTAMPS) {
            if let Some(t) = self.sink.now() {
                let _ = write!(self.line, "{t}\t");
            }
        }
    }

    fn emit(&mut self) {
        self.sink.line(&self.line);
    }
}
