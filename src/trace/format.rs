//! One message as one line of libpq 18's `PQtrace` output.
//!
//! The renderings follow libpq 18.6's `fe-trace.c` field by field: which fields each message
//! shows, in which form (`" %d"`, `" \"%s\""`, `" '...'"`), what regress mode hides, and the
//! quirks (16-bit integers unsigned, strings raw up to their NUL, a `p` message named after the
//! request it answers, an unknown type byte above 0x7f printed sign-extended). Where libpq would
//! read past the end of a malformed message, this stops at the end and says so; it never reads
//! outside the frame.

use std::fmt;
use std::io::Write as _;

use crate::message::frontend::AuthResponseKind;
use crate::message::startup::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};

use super::{Direction, TraceFlags};

/// libpq's second line for a message whose fields do not add up to its length word:
/// `mismatched message length: consumed N, expected M`.
///
/// libpq prints it after a message whose body holds more than its fields, and this formatter
/// does too (and after one whose fields run past its end, where libpq would read beyond the
/// message). Both counts exclude the type byte, as in libpq.
///
/// ```
/// use pgproto::trace::{Direction, Formatter, TraceFlags};
///
/// let mut line = Vec::new();
/// // ReadyForQuery with two bytes where one belongs.
/// let extra = Formatter::new(TraceFlags::empty())
///     .message(&mut line, Direction::Backend, b"Z\0\0\0\x06IX", None)
///     .unwrap();
/// assert_eq!(line, b"B\t6\tReadyForQuery\t I");
/// assert_eq!(extra.to_string(), "mismatched message length: consumed 5, expected 6");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// How many bytes the fields took (libpq's cursor).
    pub consumed: i64,
    /// What the length word says.
    pub expected: i64,
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mismatched message length: consumed {}, expected {}",
            self.consumed, self.expected
        )
    }
}

/// Renders single messages as libpq 18.6's `PQtrace` lines (without the timestamp, which the
/// [`Tracer`](super::Tracer) adds).
///
/// Each call appends one line, without its newline, to `out`. The only flag it looks at is
/// [`TraceFlags::REGRESS_MODE`].
///
/// ```
/// use pgproto::trace::{Direction, Formatter, TraceFlags};
///
/// let f = Formatter::new(TraceFlags::empty());
/// let mut line = Vec::new();
/// f.message(&mut line, Direction::Frontend, b"Q\0\0\0\x0dSELECT 1\0", None);
/// assert_eq!(line, b"F\t13\tQuery\t \"SELECT 1\"");
///
/// // A message without fields: no tab after its name.
/// line.clear();
/// f.message(&mut line, Direction::Frontend, b"S\0\0\0\x04", None);
/// assert_eq!(line, b"F\t4\tSync");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Formatter {
    regress: bool,
}

impl Formatter {
    /// A formatter; with [`TraceFlags::REGRESS_MODE`] it hides what changes between runs, as
    /// libpq 18.6's regress mode does (OIDs, process IDs and function OIDs as `NNNN`,
    /// authentication data, cancel keys and COPY data as `'BBBB'`, the file, line and routine of
    /// errors and notices as `"SSSS"` and their length as `NN`). Later libpq versions also hide
    /// ParameterStatus values and the StartupMessage's; 18.6 does not, nor does this.
    pub fn new(flags: TraceFlags) -> Self {
        Self {
            regress: flags.contains(TraceFlags::REGRESS_MODE),
        }
    }

    /// Appends the line of one tagged message: `frame` is the type byte, the length word and
    /// the body. `auth` names what a `p` message answers (PasswordMessage, SASLInitialResponse,
    /// SASLResponse or GSSResponse); without it a `p` message is an
    /// `UnknownAuthenticationResponse`, as in libpq.
    ///
    /// A frame shorter than its length word (cut by [`Tracer::max_message_len`]) is shown as far
    /// as it goes and ends in ` ... [cut: N of M bytes]`. Returns libpq's second line when the
    /// fields and the length word disagree.
    ///
    /// [`Tracer::max_message_len`]: super::Tracer::max_message_len
    ///
    /// ```
    /// use pgproto::trace::{Direction, Formatter, TraceFlags};
    /// use pgproto::AuthResponseKind;
    ///
    /// let mut line = Vec::new();
    /// let f = Formatter::new(TraceFlags::empty());
    /// f.message(&mut line, Direction::Frontend, b"p\0\0\0\x07pw\0", Some(AuthResponseKind::Password));
    /// assert_eq!(line, b"F\t7\tPasswordMessage\t \"pw\"");
    /// ```
    pub fn message(
        &self,
        out: &mut Vec<u8>,
        direction: Direction,
        frame: &[u8],
        auth: Option<AuthResponseKind>,
    ) -> Option<LengthMismatch> {
        let tag = frame.first().copied().unwrap_or(0);
        let length = frame
            .get(1..5)
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let frontend = direction == Direction::Frontend;
        out.push(direction.letter());
        out.push(b'\t');
        if self.regress && !frontend && matches!(tag, b'E' | b'N') {
            out.extend_from_slice(b"NN");
        } else {
            push_int(out, length.into());
        }
        out.push(b'\t');
        // libpq's cursor starts after the type byte and the length word.
        let declared = usize::try_from(length).unwrap_or(0) + 1;
        let end = frame.len().min(declared);
        let mut r = Fields {
            frame: &frame[..end],
            declared,
            pos: 5,
            out,
            regress: self.regress,
        };
        self.body(&mut r, tag, frontend, length, auth);
        let pos = r.pos;
        if end < declared {
            push_cut(out, end, declared);
            return None;
        }
        (pos != declared).then(|| LengthMismatch {
            consumed: pos as i64 - 1,
            expected: length.into(),
        })
    }

    /// Appends the line of an untagged start-up packet (StartupMessage, SSLRequest,
    /// GSSENCRequest, CancelRequest), which libpq always marks `F`. `packet` starts with the
    /// length word.
    ///
    /// ```
    /// use pgproto::trace::{Formatter, TraceFlags};
    ///
    /// let mut line = Vec::new();
    /// Formatter::new(TraceFlags::empty()).startup_packet(&mut line, b"\0\0\0\x08\x04\xd2\x16\x2f");
    /// assert_eq!(line, b"F\t8\tSSLRequest\t 1234 5679");
    /// ```
    pub fn startup_packet(&self, out: &mut Vec<u8>, packet: &[u8]) {
        let length = packet
            .get(..4)
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        out.extend_from_slice(b"F\t");
        push_int(out, length.into());
        out.push(b'\t');
        if length < 8 {
            out.extend_from_slice(b"Unknown message");
            return;
        }
        let declared = length as usize;
        let end = packet.len().min(declared);
        let mut r = Fields {
            frame: &packet[..end],
            declared,
            pos: 4,
            out,
            regress: self.regress,
        };
        let code = packet
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let _ = startup_body(&mut r, code, declared);
        if end < declared {
            push_cut(out, end, declared);
        }
        // libpq 18.6 does not compare an untagged packet's fields with its length.
    }

    /// Appends the line of the single byte a server answers SSLRequest with (`S`, `N`), as
    /// libpq prints it: `B	1	SSLResponse	 N`.
    pub fn ssl_response(&self, out: &mut Vec<u8>, answer: u8) {
        char_response(out, b"SSLResponse", answer);
    }

    /// Appends the line of the single byte a server answers GSSENCRequest with (`G`, `N`):
    /// `B	1	GSSENCResponse	 N`.
    pub fn gssenc_response(&self, out: &mut Vec<u8>, answer: u8) {
        char_response(out, b"GSSENCResponse", answer);
    }

    /// The fields of a tagged message, chosen by type byte as libpq does (by direction only
    /// where both directions use the byte).
    fn body(
        &self,
        r: &mut Fields<'_>,
        tag: u8,
        frontend: bool,
        length: i32,
        auth: Option<AuthResponseKind>,
    ) {
        let regress = self.regress;
        let _ = match (tag, frontend) {
            (b'1', _) => r.name(b"ParseComplete"),
            (b'2', _) => r.name(b"BindComplete"),
            (b'3', _) => r.name(b"CloseComplete"),
            (b'A', _) => r
                .named(b"NotificationResponse")
                .and_then(|r| r.int32(regress))
                .and_then(|_| r.string(false))
                .and_then(|_| r.string(false)),
            (b'B', _) => bind(r),
            (b'c', _) => r.name(b"CopyDone"),
            (b'C', true) => r
                .named(b"Close")
                .and_then(|r| r.byte1())
                .and_then(|_| r.string(false)),
            (b'C', false) => r.named(b"CommandComplete").and_then(|r| r.string(false)),
            (b'd', _) => r.named(b"CopyData").and_then(|r| r.rest(regress)),
            (b'D', true) => r
                .named(b"Describe")
                .and_then(|r| r.byte1())
                .and_then(|_| r.string(false)),
            (b'D', false) => data_row(r),
            (b'E', true) => r
                .named(b"Execute")
                .and_then(|r| r.string(false))
                .and_then(|_| r.int32(false).map(drop)),
            (b'E', false) => error_fields(r, b"ErrorResponse"),
            (b'f', _) => r.named(b"CopyFail").and_then(|r| r.string(false)),
            (b'p', _) => auth_response(r, auth),
            (b'F', _) => function_call(r),
            (b'G', _) => copy_response(r, b"CopyInResponse"),
            (b'H', true) => r.name(b"Flush"),
            (b'H', false) => copy_response(r, b"CopyOutResponse"),
            (b'I', _) => r.name(b"EmptyQueryResponse"),
            // libpq 18.6 shows the secret key as bytes (18.4 read it as one Int32).
            (b'K', _) => r
                .named(b"BackendKeyData")
                .and_then(|r| r.int32(regress))
                .and_then(|_| r.rest(regress)),
            (b'n', _) => r.name(b"NoData"),
            (b'N', _) => error_fields(r, b"NoticeResponse"),
            (b'P', _) => parse(r),
            (b'Q', _) => r.named(b"Query").and_then(|r| r.string(false)),
            (b'R', _) => authentication(r),
            (b's', _) => r.name(b"PortalSuspended"),
            (b'S', true) => r.name(b"Sync"),
            (b'S', false) => r
                .named(b"ParameterStatus")
                .and_then(|r| r.string(false))
                .and_then(|_| r.string(false)),
            (b't', _) => parameter_description(r),
            (b'T', _) => row_description(r),
            (b'v', _) => negotiate(r),
            (b'V', _) => r
                .named(b"FunctionCallResponse")
                .and_then(|r| r.value(false)),
            (b'W', _) => copy_both(r, length),
            (b'X', _) => r.name(b"Terminate"),
            (b'Z', _) => r.named(b"ReadyForQuery").and_then(|r| r.byte1()),
            _ => {
                // libpq prints the type byte with `%02x` from a `char`: sign-extended above 0x7f.
                r.out.extend_from_slice(b"Unknown message: ");
                if tag >= 0x80 {
                    r.out.extend_from_slice(b"ffffff");
                }
                push_hex(r.out, tag);
                Some(())
            }
        };
    }
}

/// The fields of the packets without type byte, in libpq's order of checks.
fn startup_body(r: &mut Fields<'_>, code: u32, length: usize) -> Option<()> {
    if code == CANCEL_REQUEST_CODE && length >= 16 {
        let regress = r.regress;
        r.named(b"CancelRequest")?;
        r.int16()?;
        r.int16()?;
        r.int32(regress)?;
        let key = length.saturating_sub(r.pos);
        r.nchar(key, regress)
    } else if code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE {
        let name: &[u8] = if code == SSL_REQUEST_CODE {
            b"SSLRequest"
        } else {
            b"GSSENCRequest"
        };
        r.named(name)?;
        r.int16()?;
        r.int16().map(drop)
    } else {
        r.named(b"StartupMessage")?;
        r.int16()?;
        r.int16()?;
        // Name and value pairs up to the terminating NUL; libpq 18.6 hides none of them.
        while *r.peek()? != 0 {
            r.string(false)?;
            r.string(false)?;
        }
        Some(())
    }
}

fn bind(r: &mut Fields<'_>) -> Option<()> {
    r.named(b"Bind")?;
    r.string(false)?;
    r.string(false)?;
    let formats = r.int16()?;
    for _ in 0..formats {
        r.int16()?;
    }
    let values = r.int16()?;
    for _ in 0..values {
        r.value(false)?;
    }
    let results = r.int16()?;
    for _ in 0..results {
        r.int16()?;
    }
    Some(())
}

fn data_row(r: &mut Fields<'_>) -> Option<()> {
    r.named(b"DataRow")?;
    let n = r.int16()?;
    for _ in 0..n {
        r.value(false)?;
    }
    Some(())
}

fn error_fields(r: &mut Fields<'_>, name: &[u8]) -> Option<()> {
    r.named(name)?;
    loop {
        let code = *r.peek()?;
        r.byte1()?;
        if code == 0 {
            return Some(());
        }
        // The file, line and routine change with the server's source.
        let hide = r.regress && matches!(code, b'F' | b'L' | b'R');
        r.string(hide)?;
    }
}

fn auth_response(r: &mut Fields<'_>, auth: Option<AuthResponseKind>) -> Option<()> {
    let regress = r.regress;
    match auth {
        Some(AuthResponseKind::Gss) => r.named(b"GSSResponse")?.rest(regress),
        Some(AuthResponseKind::Password) => r.named(b"PasswordMessage")?.string(false),
        Some(AuthResponseKind::SaslInitial) => {
            r.named(b"SASLInitialResponse")?;
            r.string(false)?;
            let len = r.int32(false)?;
            if len == -1 {
                return Some(());
            }
            r.nchar_signed(len, regress)
        }
        Some(AuthResponseKind::Sasl) => r.named(b"SASLResponse")?.rest(regress),
        None => r.name(b"UnknownAuthenticationResponse"),
    }
}

fn function_call(r: &mut Fields<'_>) -> Option<()> {
    let regress = r.regress;
    r.named(b"FunctionCall")?;
    r.int32(regress)?;
    let formats = r.int16()?;
    for _ in 0..formats {
        r.int16()?;
    }
    let args = r.int16()?;
    for _ in 0..args {
        r.value(false)?;
    }
    r.int16().map(drop)
}

fn copy_response(r: &mut Fields<'_>, name: &[u8]) -> Option<()> {
    r.named(name)?;
    r.byte1()?;
    let n = r.int16()?;
    for _ in 0..n {
        r.int16()?;
    }
    Some(())
}

/// CopyBothResponse: libpq prints every Int16 up to the end, its count included.
fn copy_both(r: &mut Fields<'_>, length: i32) -> Option<()> {
    r.named(b"CopyBothResponse")?;
    r.byte1()?;
    while (r.pos as i64) < i64::from(length) {
        r.int16()?;
    }
    Some(())
}

fn parse(r: &mut Fields<'_>) -> Option<()> {
    let regress = r.regress;
    r.named(b"Parse")?;
    r.string(false)?;
    r.string(false)?;
    let n = r.int16()?;
    for _ in 0..n {
        r.int32(regress)?;
    }
    Some(())
}

fn authentication(r: &mut Fields<'_>) -> Option<()> {
    let regress = r.regress;
    let code = r.take_int32()?;
    match code {
        0 => r.name(b"AuthenticationOk"),
        3 => r.name(b"AuthenticationCleartextPassword"),
        5 => {
            // libpq 18.6 leaves the 4-byte salt unread and then reports a length mismatch on a
            // second line; the salt is a field of the message, so it is consumed here and the
            // message keeps to one line.
            r.name(b"AuthenticationMD5Password")?;
            r.skip(4)
        }
        7 => r.name(b"AuthenticationGSS"),
        8 => r.named(b"AuthenticationGSSContinue")?.rest(regress),
        9 => r.name(b"AuthenticationSSPI"),
        10 => {
            r.named(b"AuthenticationSASL")?;
            while *r.peek()? != 0 {
                r.string(false)?;
            }
            // The empty string that ends the list.
            r.string(false)
        }
        11 => r.named(b"AuthenticationSASLContinue")?.rest(regress),
        12 => r.named(b"AuthenticationSASLFinal")?.rest(regress),
        other => {
            r.out.extend_from_slice(b"Unknown authentication message ");
            push_int(r.out, other.into());
            Some(())
        }
    }
}

fn parameter_description(r: &mut Fields<'_>) -> Option<()> {
    let regress = r.regress;
    r.named(b"ParameterDescription")?;
    let n = r.int16()?;
    for _ in 0..n {
        r.int32(regress)?;
    }
    Some(())
}

fn row_description(r: &mut Fields<'_>) -> Option<()> {
    let regress = r.regress;
    r.named(b"RowDescription")?;
    let n = r.int16()?;
    for _ in 0..n {
        r.string(false)?;
        r.int32(regress)?; // table OID
        r.int16()?; // column number
        r.int32(regress)?; // type OID
        r.int16()?; // type size
        r.int32(false)?; // type modifier
        r.int16()?; // format
    }
    Some(())
}

fn negotiate(r: &mut Fields<'_>) -> Option<()> {
    r.named(b"NegotiateProtocolVersion")?;
    r.int32(false)?;
    let n = r.int32(false)?;
    for _ in 0..n.max(0) {
        r.string(false)?;
    }
    Some(())
}

fn char_response(out: &mut Vec<u8>, name: &[u8], answer: u8) {
    out.extend_from_slice(b"B\t1\t");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\t ");
    // libpq prints the byte with `%c`, whatever it is.
    out.push(answer);
}

/// The marker at the end of a message cut by the tracer's length cap.
fn push_cut(out: &mut Vec<u8>, kept: usize, declared: usize) {
    out.extend_from_slice(b" ... [cut: ");
    push_int(out, kept as i64);
    out.extend_from_slice(b" of ");
    push_int(out, declared as i64);
    out.extend_from_slice(b" bytes]");
}

/// Writes `n` in decimal, as `%d` does.
fn push_int(out: &mut Vec<u8>, n: i64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// `%02x`.
fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// libpq's `isprint` in the C locale: what is printed as it is inside `'...'`.
fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// libpq's trace cursor over one frame. Every reader returns `None` once a field would run
/// past the end of the frame; the cursor then stands where libpq's would have stood after it.
struct Fields<'a> {
    /// The bytes of the frame at hand: all of it, or the part the tracer kept.
    frame: &'a [u8],
    /// The frame's whole length according to its length word.
    declared: usize,
    /// libpq's `logCursor`: the offset in the frame, type byte included.
    pos: usize,
    out: &'a mut Vec<u8>,
    regress: bool,
}

impl Fields<'_> {
    /// The message's name, when it has no fields.
    fn name(&mut self, name: &[u8]) -> Option<()> {
        self.out.extend_from_slice(name);
        Some(())
    }

    /// The message's name and the tab before its fields.
    fn named(&mut self, name: &[u8]) -> Option<&mut Self> {
        self.out.extend_from_slice(name);
        self.out.push(b'\t');
        Some(self)
    }

    fn stop(&mut self, need: usize) -> Option<()> {
        self.pos += need;
        None
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.frame.len().saturating_sub(self.pos) < n {
            self.stop(n)?;
        }
        let at = self.pos;
        self.pos += n;
        Some(&self.frame[at..at + n])
    }

    fn peek(&mut self) -> Option<&u8> {
        if self.pos >= self.frame.len() {
            self.stop(1)?;
        }
        self.frame.get(self.pos)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(drop)
    }

    /// `Byte1`: ` c`, or ` \xNN` when not printable (the NUL ending error fields included).
    fn byte1(&mut self) -> Option<()> {
        let b = self.take(1)?[0];
        self.out.push(b' ');
        if printable(b) {
            self.out.push(b);
        } else {
            self.out.extend_from_slice(b"\\x");
            push_hex(self.out, b);
        }
        Some(())
    }

    /// `Int16`, printed unsigned (libpq converts through `uint16`).
    fn int16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        let v = u16::from_be_bytes([b[0], b[1]]);
        self.out.push(b' ');
        push_int(self.out, v.into());
        Some(v)
    }

    fn take_int32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `Int32`, or ` NNNN` when hidden.
    fn int32(&mut self, hide: bool) -> Option<i32> {
        let v = self.take_int32()?;
        if hide {
            self.out.extend_from_slice(b" NNNN");
        } else {
            self.out.push(b' ');
            push_int(self.out, v.into());
        }
        Some(v)
    }

    /// A NUL-terminated string, raw between double quotes, or ` "SSSS"` when hidden.
    fn string(&mut self, hide: bool) -> Option<()> {
        let rest = &self.frame[self.pos.min(self.frame.len())..];
        let Some(n) = memchr::memchr(0, rest) else {
            let need = rest.len() + 1;
            return self.stop(need);
        };
        if hide {
            self.out.extend_from_slice(b" \"SSSS\"");
        } else {
            self.out.extend_from_slice(b" \"");
            self.out.extend_from_slice(&rest[..n]);
            self.out.push(b'"');
        }
        self.pos += n + 1;
        Some(())
    }

    /// A length-prefixed value: ` LEN`, then ` '...'` unless the length is -1 (NULL).
    fn value(&mut self, hide: bool) -> Option<()> {
        let len = self.int32(false)?;
        if len == -1 {
            return Some(());
        }
        self.nchar_signed(len, hide)
    }

    fn nchar_signed(&mut self, len: i32, hide: bool) -> Option<()> {
        let Ok(n) = usize::try_from(len) else {
            // libpq prints nothing between the quotes and steps its cursor back; the message
            // is malformed, and nothing after this can be trusted.
            self.out.extend_from_slice(b" ''");
            self.pos = self.pos.saturating_sub(len.unsigned_abs() as usize);
            return None;
        };
        self.nchar(n, hide)
    }

    /// Everything up to the end of the message as bytes.
    fn rest(&mut self, hide: bool) -> Option<()> {
        let n = self.declared.saturating_sub(self.pos);
        self.nchar(n, hide)
    }

    /// `len` bytes between single quotes: 0x20-0x7e as they are, every other byte as `\xNN`;
    /// ` 'BBBB'` when hidden. A cut frame shows what it has and no closing quote.
    fn nchar(&mut self, len: usize, hide: bool) -> Option<()> {
        let have = self.frame.len().saturating_sub(self.pos);
        if hide {
            self.out.extend_from_slice(b" 'BBBB'");
            if have < len {
                return self.stop(len);
            }
            self.pos += len;
            return Some(());
        }
        self.out.extend_from_slice(b" '");
        let shown = &self.frame[self.pos.min(self.frame.len())..][..have.min(len)];
        let mut from = 0;
        for (i, &b) in shown.iter().enumerate() {
            if !printable(b) {
                self.out.extend_from_slice(&shown[from..i]);
                self.out.extend_from_slice(b"\\x");
                push_hex(self.out, b);
                from = i + 1;
            }
        }
        self.out.extend_from_slice(&shown[from..]);
        if have < len {
            return self.stop(len);
        }
        self.out.push(b'\'');
        self.pos += len;
        Some(())
    }
}
