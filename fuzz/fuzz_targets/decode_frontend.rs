//! Arbitrary bytes through [`FrontendDecoder`], fed in chunks.
//!
//! Input layout: byte 0 chooses the context (bit 0: start-up phase or already past it; the rest,
//! modulo 5: which `AuthResponseKind` a `p` frame is, or none), byte 1 the chunk size (0 means
//! everything at once), the rest is the stream a client sent.
//!
//! Checks, for every message decoded: encoding it gives back exactly the bytes of its frame
//! (frames are consumed in order, so the running sum of `encoded_len()` locates each frame in the
//! input), and the decoder holds exactly the bytes not yet decoded. After an error: the same error
//! again, even after more input arrives (errors are sticky).
#![no_main]

use std::fmt::Debug;
use std::hint::black_box;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgproto::{AuthResponseKind, Encode, FrontendDecoder, FrontendMessage, Limits};

const KINDS: [AuthResponseKind; 4] = [
    AuthResponseKind::Password,
    AuthResponseKind::SaslInitial,
    AuthResponseKind::Sasl,
    AuthResponseKind::Gss,
];

fuzz_target!(|data: &[u8]| {
    let [ctx, chunk, ref input @ ..] = *data else {
        return;
    };
    let mut dec = if ctx & 1 == 0 {
        FrontendDecoder::new()
    } else {
        FrontendDecoder::after_startup(Limits::default())
    };
    let kind = match (ctx >> 1) % 5 {
        0 => None,
        k => Some(KINDS[k as usize - 1]),
    };
    dec.expect_auth_response(kind);
    let chunk = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk as usize
    };

    // `fed`: bytes given to the decoder; `done`: bytes of the frames decoded so far.
    let mut fed = 0;
    let mut done = 0;
    for piece in input.chunks(chunk) {
        dec.receive(black_box(piece));
        fed += piece.len();
        loop {
            match dec.next() {
                Ok(Some(msg)) => {
                    let end = check_frame(&msg, input, done, fed);
                    // A `p` frame decoded without its kind must re-encode the same way once the
                    // kind is known.
                    if let FrontendMessage::UntypedAuthResponse(ref m) = msg {
                        for k in KINDS {
                            if let Ok(typed) = m.decode_as(k) {
                                assert_eq!(check_frame(&typed, input, done, fed), end);
                            }
                        }
                    }
                    black_box(msg);
                    done = end;
                }
                Ok(None) => {
                    assert_eq!(
                        dec.buffered_len(),
                        fed - done,
                        "buffered bytes lost or invented"
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.next(), Err(e.clone()), "error is not sticky");
                    dec.receive(&input[fed..]);
                    assert_eq!(dec.next(), Err(e), "error is not sticky after more input");
                    return;
                }
            }
        }
    }
});

/// Checks that `msg` re-encodes to `input[done..done + encoded_len]`, inside the bytes fed so
/// far, and returns the end of its frame.
fn check_frame<M: Encode + Debug>(msg: &M, input: &[u8], done: usize, fed: usize) -> usize {
    let len = msg.encoded_len();
    let end = done + len;
    assert!(
        end <= fed,
        "{msg:?} claims {len} bytes at offset {done}, but only {fed} bytes were fed"
    );
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    assert_eq!(
        out.len(),
        len,
        "encoded_len() disagrees with encode() for {msg:?}"
    );
    assert!(
        out[..] == input[done..end],
        "re-encoding {msg:?} does not give its frame back:\n  frame: {:02x?}\n  again: {:02x?}",
        &input[done..end],
        &out[..]
    );
    end
}
