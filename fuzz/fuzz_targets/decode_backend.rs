//! Arbitrary bytes through [`BackendDecoder`], fed in chunks, read both with `next()` and with
//! `next_ref()`.
//!
//! Input layout: byte 0 chooses the context (bits 0-1: 1 expects an SSLRequest answer, 2 a
//! GSSENCRequest answer, otherwise tagged messages; bit 2: protocol 3.2 instead of 3.0), byte 1
//! the chunk size (0 means everything at once), the rest is the stream a server sent.
//!
//! Two decoders get the same chunks in lockstep. Checks, for every message: the `next()` one
//! re-encodes to exactly the bytes of its frame (the running sum of `encoded_len()` locates each
//! frame in the input), `next_ref()` yields the same message (DataRow columns and CopyData bytes
//! equal), and both decoders hold exactly the bytes not yet decoded. On an error: both fail the
//! same way, and keep failing the same way, even after more input arrives (errors are sticky).
#![no_main]

use std::fmt::Debug;
use std::hint::black_box;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgproto::{
    BackendDecoder, BackendMessage, BackendMessageRef, DecodeError, Encode, ProtocolVersion,
};

fn decoder(ctx: u8) -> BackendDecoder {
    let mut dec = BackendDecoder::new();
    match ctx & 3 {
        1 => dec.expect_ssl_response(),
        2 => dec.expect_gssenc_response(),
        _ => {}
    }
    if ctx & 4 != 0 {
        dec.set_protocol_version(ProtocolVersion::V3_2);
    }
    dec
}

/// What one lockstep call on both decoders gave.
enum Step {
    Message(usize),
    NeedMore,
    Failed(DecodeError),
}

fuzz_target!(|data: &[u8]| {
    let [ctx, chunk, ref input @ ..] = *data else {
        return;
    };
    let mut owned = decoder(ctx);
    let mut by_ref = decoder(ctx);
    let chunk = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk as usize
    };

    // `fed`: bytes given to the decoders; `done`: bytes of the frames decoded so far.
    let mut fed = 0;
    let mut done = 0;
    for piece in input.chunks(chunk) {
        owned.receive(black_box(piece));
        by_ref.receive(black_box(piece));
        fed += piece.len();
        loop {
            let step = match (owned.next(), by_ref.next_ref()) {
                (Ok(Some(msg)), Ok(Some(r))) => {
                    let end = check_frame(&msg, input, done, fed);
                    same(&msg, &r);
                    black_box((msg, r));
                    Step::Message(end)
                }
                (Ok(None), Ok(None)) => Step::NeedMore,
                (Err(a), Err(b)) => {
                    assert_eq!(a, b, "next() and next_ref() fail differently");
                    Step::Failed(a)
                }
                (a, b) => panic!("next() gave {a:?} but next_ref() gave {b:?}"),
            };
            match step {
                Step::Message(end) => done = end,
                Step::NeedMore => {
                    assert_eq!(
                        owned.buffered_len(),
                        fed - done,
                        "next(): bytes lost or invented"
                    );
                    assert_eq!(
                        by_ref.buffered_len(),
                        fed - done,
                        "next_ref(): bytes lost or invented"
                    );
                    break;
                }
                Step::Failed(e) => {
                    assert_eq!(owned.next(), Err(e.clone()), "next() error is not sticky");
                    assert_eq!(
                        by_ref.next_ref().err(),
                        Some(e.clone()),
                        "next_ref() error is not sticky"
                    );
                    owned.receive(&input[fed..]);
                    by_ref.receive(&input[fed..]);
                    assert_eq!(
                        owned.next(),
                        Err(e.clone()),
                        "next() error is not sticky after more input"
                    );
                    assert_eq!(
                        by_ref.next_ref().err(),
                        Some(e),
                        "next_ref() error is not sticky after more input"
                    );
                    return;
                }
            }
        }
    }
});

/// Checks that the borrowed view is the same message as the owned one.
fn same(msg: &BackendMessage, r: &BackendMessageRef<'_>) {
    match (msg, r) {
        (BackendMessage::DataRow(row), BackendMessageRef::DataRow(view)) => {
            assert_eq!(row.len(), view.len(), "DataRow column counts differ");
            assert!(
                row.columns().eq(view.columns()),
                "DataRow columns differ: {row:?} vs {view:?}"
            );
        }
        (BackendMessage::CopyData(c), BackendMessageRef::CopyData(view)) => {
            assert_eq!(&c.data()[..], *view, "CopyData bytes differ");
        }
        (BackendMessage::DataRow(_) | BackendMessage::CopyData(_), _) => {
            panic!("next() gave {msg:?} but next_ref() did not lend it: {r:?}")
        }
        (_, BackendMessageRef::Message(m)) => {
            assert_eq!(msg, m, "next() and next_ref() differ")
        }
        _ => panic!("next() gave {msg:?} but next_ref() gave {r:?}"),
    }
}

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
