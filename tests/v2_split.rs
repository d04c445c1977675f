//! Protocol 2.0, split invariance: however a stream is cut into reads, down to one byte at a
//! time, the 2.0 decoders give the same messages as when it arrives whole, in linear time; an
//! error in the middle of a stream delivers everything before it, then the same error on every
//! later call.

mod common;
#[path = "common/v2.rs"]
mod v2s;

use std::time::{Duration, Instant};

use pgproto::v2::{BackendDecoder, BackendMessage, FrontendDecoder, FrontendMessage};
use pgproto::Limits;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;
use v2s::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Chunk sizes: small, medium or large reads, mixed.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        vec(1usize..=8, 1..40),
        vec(1usize..=300, 1..40),
        vec(prop_oneof![1usize..=3, 100usize..=5000], 1..40),
    ]
}

/// A byte that starts no 2.0 backend message.
fn not_backend_tag() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("a backend type byte", |b| !b"RKBCGHPDIEVNAZT".contains(b))
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn backend_streams_split_anywhere(s in backend_stream(16), sizes in chunk_sizes()) {
        let bytes = encode_all(&s.messages);
        let whole = decode_backend(&mut BackendDecoder::new(), &[&bytes], s.ssl);
        let split = decode_backend(&mut BackendDecoder::new(), &chunked(&bytes, &sizes), s.ssl);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.0, s.messages);
    }

    #[test]
    fn frontend_streams_split_anywhere(plan in frontend_stream(12), sizes in chunk_sizes()) {
        let bytes = encode_all(&plan);
        let whole = decode_frontend(&mut FrontendDecoder::new(), &[&bytes], &plan);
        let split = decode_frontend(&mut FrontendDecoder::new(), &chunked(&bytes, &sizes), &plan);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.0, plan);
    }

    #[test]
    fn an_error_delivers_what_came_before(
        s in backend_stream(8),
        bad in not_backend_tag(),
        tail in vec(any::<u8>(), 0..20),
        sizes in chunk_sizes(),
    ) {
        // A valid stream (never ending inside COPY), then a byte that starts no message.
        let messages = s.messages.clone();
        let mut bytes = encode_all(&messages);
        bytes.push(bad);
        bytes.extend_from_slice(&tail);
        let (got, err) = decode_backend(&mut BackendDecoder::new(), &chunked(&bytes, &sizes), s.ssl);
        prop_assert_eq!(&got, &messages);
        prop_assert!(err.is_some());
        // The same error as when the bytes come at once.
        let whole = decode_backend(&mut BackendDecoder::new(), &[&bytes], s.ssl);
        prop_assert_eq!(whole, (got, err));
    }
}

#[test]
fn a_message_too_long_fails_the_same_way_however_it_arrives() {
    let limits = Limits {
        backend_small: 30,
        backend_large: 40,
        ..Limits::default()
    };
    // Strings and lines whose end comes too late, or never.
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for (tag, n) in [(b'C', 30), (b'C', 31), (b'E', 40), (b'E', 41), (b'H', 41)] {
        let mut b = vec![tag];
        b.extend(std::iter::repeat_n(b'x', n));
        if tag == b'H' {
            b.push(b'\n');
        } else {
            b.push(0);
        }
        b.extend_from_slice(b"Z");
        cases.push(b);
    }
    for bytes in &cases {
        let whole = decode_backend(&mut BackendDecoder::with_limits(limits), &[bytes], false);
        for size in 1..bytes.len() {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            let split = decode_backend(&mut BackendDecoder::with_limits(limits), &chunks, false);
            assert_eq!(split, whole, "{bytes:?} in chunks of {size}");
        }
    }
    // A tag of 30 bytes (and its NUL) is over the small limit of 30; 29 is within it.
    let (_, err) = decode_backend(
        &mut BackendDecoder::with_limits(limits),
        &[&cases[0]],
        false,
    );
    assert_eq!(
        err,
        Some(pgproto::DecodeError::TooLong {
            message: "CompletedResponse",
            len: 31,
            max: 30
        })
    );
}

#[test]
fn every_prefix_of_a_session_waits_for_more() {
    // PostgreSQL 13's answer to a query, cut after every byte: never an error, never a message
    // before its last byte.
    let bytes =
        b"Pblank\0T\0\x02a\0\0\0\0\x17\0\x04\xff\xff\xff\xffb\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\
D\xc0\0\0\0\x051\0\0\0\x06xyB\x80\0\0\0\x01\x07CSELECT 2\0VG\0\0\0\x02ab0V0H1\n\\.\nCCOPY 1\0Z";
    let (all, err) = decode_backend(&mut BackendDecoder::new(), &[bytes], false);
    assert_eq!(err, None);
    assert_eq!(all.len(), 12);
    for cut in 0..bytes.len() {
        let (head, tail) = bytes.split_at(cut);
        let (a, e) = decode_backend(&mut BackendDecoder::new(), &[head], false);
        assert_eq!(e, None, "cut at {cut}");
        assert!(all.starts_with(&a) && a.len() < all.len(), "cut at {cut}");
        let both = decode_backend(&mut BackendDecoder::new(), &[head, tail], false);
        assert_eq!(both, (all.clone(), None), "cut at {cut}");
    }
}

/// Feeds `bytes` one at a time to a fresh backend decoder; returns the messages and the time.
fn one_at_a_time(bytes: &[u8], limits: Limits) -> (Vec<BackendMessage>, Duration) {
    let start = Instant::now();
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let (got, err) = decode_backend(&mut BackendDecoder::with_limits(limits), &chunks, false);
    assert_eq!(err, None);
    (got, start.elapsed())
}

#[test]
fn long_messages_one_byte_at_a_time_take_linear_time() {
    // Each arrival resumes the scan where the last one stopped. Rescanning from the start would
    // cost about n²/2 steps: 2·10¹⁰ for the string, 10⁹ for the row, far beyond the bound.
    let limits = Limits::default();
    let mut text = b"E".to_vec();
    text.extend(std::iter::repeat_n(b'x', 200_000));
    text.push(0);
    let (got, t) = one_at_a_time(&text, limits);
    assert_eq!(got.len(), 1);
    assert!(t < Duration::from_secs(20), "a 200 KB string took {t:?}");

    // A RowDescription of 20,000 fields and a row of 20,000 empty values.
    let n: u16 = 20_000;
    let mut row = b"T".to_vec();
    row.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        row.extend_from_slice(b"f\0\0\0\0\x19\xff\xff\xff\xff\xff\xff");
    }
    row.push(b'D');
    row.extend(std::iter::repeat_n(0xff, usize::from(n) / 8));
    for _ in 0..n {
        row.extend_from_slice(&4u32.to_be_bytes());
    }
    let (got, t) = one_at_a_time(&row, limits);
    assert_eq!(got.len(), 2);
    let BackendMessage::AsciiRow(r) = &got[1] else {
        panic!()
    };
    assert_eq!(r.columns().filter(|v| *v == Some(&[][..])).count(), 20_000);
    assert!(t < Duration::from_secs(20), "a 20,000-field row took {t:?}");

    // A Query of 200 KB to a frontend decoder.
    let mut q = b"Q".to_vec();
    q.extend(std::iter::repeat_n(b'y', 200_000));
    q.push(0);
    let start = Instant::now();
    let chunks: Vec<&[u8]> = q.chunks(1).collect();
    let (got, err) = decode_frontend(&mut FrontendDecoder::after_startup(limits), &chunks, &[]);
    assert_eq!((got.len(), err), (1, None));
    assert!(matches!(got[0], FrontendMessage::Query(_)));
    assert!(start.elapsed() < Duration::from_secs(20));
}
