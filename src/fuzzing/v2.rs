//! The protocol-2.0 decoders under the fuzzer: [`v2::BackendDecoder`] and
//! [`v2::FrontendDecoder`].
//!
//! Input layout of both: byte 0 chooses the context, byte 1 the chunk size (0 feeds the rest at
//! once), the rest is the stream. Checks, for every message decoded from the chunks: it
//! re-encodes to exactly the bytes at its place in the input (the running sum of
//! `encoded_len()` locates it) and `encoded_len()` agrees with `encode()`; the decoder holds
//! exactly the bytes not yet decoded, and never more than the limit in force allows for one
//! message; the same input fed whole gives the same messages and the same error (split
//! invariance); an error is returned again by every later call, even after more input.

use std::fmt::Debug;
use std::hint::black_box;

use super::check_frame;
use crate::v2::{BackendDecoder, BackendMessage, FrontendDecoder, FrontendMessage};
use crate::{DecodeError, Encode, Limits};

/// Limits small enough for the fuzzer to reach them (bit 1 of the context), or the defaults.
fn limits(ctx: u8) -> Limits {
    if ctx & 2 != 0 {
        Limits {
            startup: 400,
            frontend_small: 64,
            frontend_large: 200,
            frontend_auth: 40,
            backend_small: 64,
            backend_large: 200,
        }
    } else {
        Limits::default()
    }
}

/// The most bytes a decoder may hold: a message at its limit, its type byte, and one byte
/// more that shows it is too long.
fn bound(l: &Limits) -> usize {
    [
        l.startup,
        l.frontend_large,
        l.frontend_auth,
        l.backend_large,
        l.backend_small,
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as usize
        + 2
}

/// What a decoding of chunks gave: the messages and the error that ended it, if any.
type Outcome<M> = (Vec<M>, Option<DecodeError>);

/// A 2.0 decoder, seen uniformly.
trait Decoder {
    type Msg: Encode + Debug + PartialEq;
    fn receive(&mut self, data: &[u8]);
    fn next(&mut self) -> Result<Option<Self::Msg>, DecodeError>;
    fn buffered_len(&self) -> usize;
    /// What the other direction would have told the decoder after `m`.
    fn after(&mut self, m: &Self::Msg);
}

impl Decoder for BackendDecoder {
    type Msg = BackendMessage;
    fn receive(&mut self, data: &[u8]) {
        Self::receive(self, data);
    }
    fn next(&mut self) -> Result<Option<BackendMessage>, DecodeError> {
        Self::next(self)
    }
    fn buffered_len(&self) -> usize {
        Self::buffered_len(self)
    }
    fn after(&mut self, _: &BackendMessage) {}
}

/// A frontend decoder and the context's rules for telling it what the backend said: bit 2, a
/// password is asked for after the StartupPacket; a Query starting with `COPY` is a COPY FROM
/// STDIN.
struct Frontend {
    dec: FrontendDecoder,
    password: bool,
}

impl Decoder for Frontend {
    type Msg = FrontendMessage;
    fn receive(&mut self, data: &[u8]) {
        self.dec.receive(data);
    }
    fn next(&mut self) -> Result<Option<FrontendMessage>, DecodeError> {
        self.dec.next()
    }
    fn buffered_len(&self) -> usize {
        self.dec.buffered_len()
    }
    fn after(&mut self, m: &FrontendMessage) {
        match m {
            FrontendMessage::Startup(_) if self.password => self.dec.expect_password(),
            FrontendMessage::Query(q) if q.as_bytes().starts_with(b"COPY") => {
                self.dec.expect_copy_in()
            }
            _ => {}
        }
    }
}

/// Decodes `input` in chunks of `chunk` bytes, checking every message and the buffer.
fn decode<D: Decoder>(dec: &mut D, input: &[u8], chunk: usize, max: usize) -> Outcome<D::Msg> {
    let mut out = Vec::new();
    let (mut fed, mut done) = (0, 0);
    for piece in input.chunks(chunk) {
        dec.receive(black_box(piece));
        fed += piece.len();
        loop {
            match dec.next() {
                Ok(Some(m)) => {
                    done = check_frame(&m, input, done, fed);
                    dec.after(&m);
                    out.push(m);
                }
                Ok(None) => {
                    let held = dec.buffered_len();
                    assert_eq!(held, fed - done, "bytes lost or invented");
                    assert!(
                        held <= max,
                        "{held} bytes held, more than one message may be"
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.next(), Err(e.clone()), "the error is not sticky");
                    dec.receive(&input[fed..]);
                    assert_eq!(dec.next(), Err(e.clone()), "not sticky after more input");
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

/// Runs `make()`'s decoder over the input in chunks and whole, and compares.
fn run<D: Decoder>(data: &[u8], make: impl Fn(u8) -> D) {
    let [ctx, chunk, ref input @ ..] = *data else {
        return;
    };
    let max = bound(&limits(ctx));
    let chunk = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk.into()
    };
    let split = decode(&mut make(ctx), input, chunk, max);
    let whole = decode(&mut make(ctx), input, input.len().max(1), max);
    assert!(
        split == whole,
        "chunks of {chunk} gave {split:?}, whole {whole:?}"
    );
}

/// Context bit 0: expect the answer to SSLRequest first; bit 1: small limits.
pub(super) fn backend(data: &[u8]) {
    run(data, |ctx| {
        let mut dec = BackendDecoder::with_limits(limits(ctx));
        if ctx & 1 != 0 {
            dec.expect_ssl_response();
        }
        dec
    })
}

/// Context bit 0: start past the StartupPacket; bit 1: small limits; bit 2: a PasswordPacket
/// follows the StartupPacket (or comes first, past start-up).
pub(super) fn frontend(data: &[u8]) {
    run(data, |ctx| {
        let l = limits(ctx);
        let password = ctx & 4 != 0;
        let mut dec = if ctx & 1 != 0 {
            FrontendDecoder::after_startup(l)
        } else {
            FrontendDecoder::with_limits(l)
        };
        if password && ctx & 1 != 0 {
            dec.expect_password();
        }
        Frontend { dec, password }
    })
}
