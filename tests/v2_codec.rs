//! Protocol 2.0, the codec: every message of both directions round-trips (`decode(encode(m)) ==
//! m` and `encode(decode(b)) == b`), PostgreSQL 13's own bytes decode, malformed input fails
//! with an error naming the message and the field, and sizes are bounded before the bytes
//! they announce are buffered.

mod common;
#[path = "common/v2.rs"]
mod v2s;

use pgproto::v2::{
    AsciiRow, BackendDecoder, BackendMessage, CopyLine, FrontendDecoder, FrontendMessage,
    FunctionCall, StartupPacket, Text,
};
use pgproto::{DecodeError, Encode, Limits, ProtocolVersion, Tag};
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

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn backend_streams_round_trip(s in backend_stream(12)) {
        let bytes = encode_all(&s.messages);
        let (got, err) = decode_backend(&mut BackendDecoder::new(), &[&bytes], s.ssl);
        prop_assert_eq!(err, None);
        prop_assert_eq!(&got, &s.messages);
        prop_assert_eq!(encode_all(&got), bytes);
    }

    #[test]
    fn frontend_streams_round_trip(plan in frontend_stream(10)) {
        let bytes = encode_all(&plan);
        let (got, err) = decode_frontend(&mut FrontendDecoder::new(), &[&bytes], &plan);
        prop_assert_eq!(err, None);
        prop_assert_eq!(&got, &plan);
        prop_assert_eq!(encode_all(&got), bytes);
    }

    #[test]
    fn encoded_len_is_exact(s in backend_stream(6), plan in frontend_stream(6)) {
        for m in &s.messages {
            prop_assert_eq!(encode_all(std::slice::from_ref(m)).len(), m.encoded_len());
        }
        for m in &plan {
            prop_assert_eq!(encode_all(std::slice::from_ref(m)).len(), m.encoded_len());
        }
    }
}

/// What PostgreSQL 13.23 sent a 2.0 client (recorded by hand): start-up, a query of two
/// statements with a NULL, an error, an empty query, COPY out and in, notifications, a notice,
/// a function call.
const PG13_BACKEND: &[u8] = b"R\0\0\0\0K\0\0*V\x88\xcdO\xa3Z\
Pblank\0T\0\x03a\0\0\0\0\x17\0\x04\xff\xff\xff\xffb\0\0\0\0\x17\0\x04\xff\xff\xff\xfftext\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\
D\xa0\0\0\0\x051\0\0\0\x05xCSELECT 1\0Pblank\0T\0\x01?column?\0\0\0\0\x17\0\x04\xff\xff\xff\xff\
D\x80\0\0\0\x052CSELECT 1\0Z\
EERROR:  relation \"nonexist\" does not exist at character 15\n\0Z\
I\0Z\
H1\ta\n2\t\\N\n\\.\nCCOPY 2\0Z\
GCCOPY 2\0Z\
CLISTEN\0CNOTIFY\0CNOTIFY\0A\0\0*Vfoo\0A\0\0*Vfoo\0Z\
NNOTICE:  hi 1\n\0CDO\0Z\
VG\0\0\0\x04\0\0\0\x040Z";

#[test]
fn postgresql_13_bytes_decode_and_re_encode() {
    let (got, err) = decode_backend(&mut BackendDecoder::new(), &[PG13_BACKEND], false);
    assert_eq!(err, None);
    let names: Vec<&str> = got.iter().map(BackendMessage::name).collect();
    assert_eq!(
        names[..8],
        [
            "AuthenticationOk",
            "BackendKeyData",
            "ReadyForQuery",
            "CursorResponse",
            "RowDescription",
            "AsciiRow",
            "CompletedResponse",
            "CursorResponse"
        ]
    );
    let BackendMessage::AsciiRow(row) = &got[5] else {
        panic!("{:?}", got[5])
    };
    assert_eq!(
        row.columns().collect::<Vec<_>>(),
        [Some(&b"1"[..]), None, Some(&b"x"[..])]
    );
    let BackendMessage::RowDescription(d) = &got[4] else {
        panic!()
    };
    let f: Vec<_> = d
        .fields()
        .map(|f| (f.name, f.type_oid, f.type_size))
        .collect();
    assert_eq!(f, [(&b"a"[..], 23, 4), (b"b", 23, 4), (b"text", 25, -1)]);
    assert!(got.contains(&BackendMessage::ErrorResponse(
        Text::new("ERROR:  relation \"nonexist\" does not exist at character 15\n").unwrap()
    )));
    let copy: Vec<_> = got
        .iter()
        .skip_while(|m| **m != BackendMessage::CopyOutResponse)
        .take(4)
        .cloned()
        .collect();
    assert_eq!(
        copy,
        [
            BackendMessage::CopyOutResponse,
            BackendMessage::CopyDataRow(CopyLine::new("1\ta\n").unwrap()),
            BackendMessage::CopyDataRow(CopyLine::new("2\t\\N\n").unwrap()),
            BackendMessage::CopyDataEnd,
        ]
    );
    assert!(matches!(got.last(), Some(BackendMessage::ReadyForQuery)));
    assert_eq!(encode_all(&got), PG13_BACKEND);
}

/// Decodes `bytes` whole with a backend decoder and returns the first error.
fn backend_error(bytes: &[u8], limits: Limits) -> DecodeError {
    let mut dec = BackendDecoder::with_limits(limits);
    let (_, err) = decode_backend(&mut dec, &[bytes], false);
    err.unwrap_or_else(|| panic!("no error for {bytes:?}"))
}

#[test]
fn malformed_backend_messages_name_message_and_field() {
    let d = Limits::default();
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (b"Q", DecodeError::UnknownTag { tag: Tag(b'Q') }),
        (b"\0", DecodeError::UnknownTag { tag: Tag(0) }),
        (
            b"R\0\0\0\x0a",
            DecodeError::InvalidValue {
                message: "Authentication",
                field: "authentication code",
                value: 10,
            },
        ),
        (
            b"D\x80\0\0\0\x051",
            DecodeError::MissingRowDescription {
                message: "AsciiRow",
            },
        ),
        (
            b"T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\0\0\0\x03",
            DecodeError::InvalidCount {
                message: "AsciiRow",
                field: "field length",
                count: 3,
            },
        ),
        (
            b"T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffB\x80\xff\xff\xff\xfe",
            DecodeError::InvalidCount {
                message: "BinaryRow",
                field: "field length",
                count: -2,
            },
        ),
        (
            b"VX",
            DecodeError::InvalidValue {
                message: "FunctionResultResponse",
                field: "result indicator",
                value: b'X'.into(),
            },
        ),
        (
            b"VG\xff\xff\xff\xff",
            DecodeError::InvalidCount {
                message: "FunctionResultResponse",
                field: "result length",
                count: -1,
            },
        ),
        (
            b"VG\0\0\0\x01xZ",
            DecodeError::InvalidValue {
                message: "FunctionResultResponse",
                field: "terminator",
                value: b'Z'.into(),
            },
        ),
        (
            b"Ix",
            DecodeError::InvalidValue {
                message: "EmptyQueryResponse",
                field: "unused string",
                value: b'x'.into(),
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(backend_error(bytes, d), want, "{bytes:?}");
        // The same error however the bytes arrive.
        let mut dec = BackendDecoder::new();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_backend(&mut dec, &chunks, false).1, Some(want));
    }
    // An SSL answer that is neither S nor N (nor an error).
    let mut dec = BackendDecoder::new();
    assert_eq!(
        decode_backend(&mut dec, &[b"Y"], true).1,
        Some(DecodeError::UnknownTag { tag: Tag(b'Y') })
    );
}

fn frontend_error(bytes: &[u8], dec: &mut FrontendDecoder) -> DecodeError {
    let (_, err) = decode_frontend(dec, &[bytes], &[]);
    err.unwrap_or_else(|| panic!("no error for {bytes:?}"))
}

fn after_startup() -> FrontendDecoder {
    FrontendDecoder::after_startup(Limits::default())
}

#[test]
fn malformed_frontend_messages_name_message_and_field() {
    let cases: Vec<(&[u8], DecodeError)> = vec![
        // Parse is a 3.0 message: PostgreSQL 13 ends a 2.0 session on it.
        (b"P", DecodeError::UnknownTag { tag: Tag(b'P') }),
        (
            b"F\0\0\0\x05\x25\xff\xff\xff\xff",
            DecodeError::InvalidCount {
                message: "FunctionCall",
                field: "argument count",
                count: -1,
            },
        ),
        (
            b"F\0\0\0\x05\x25\0\0\0\x01\xff\xff\xff\xfe",
            DecodeError::InvalidCount {
                message: "FunctionCall",
                field: "argument length",
                count: -2,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            frontend_error(bytes, &mut after_startup()),
            want,
            "{bytes:?}"
        );
    }

    let startup = |v: u32, len: usize| {
        let mut b = (len as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&v.to_be_bytes());
        b.resize(len, 0);
        b
    };
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            startup(0x0003_0000, 9),
            DecodeError::InvalidValue {
                message: "start-up packet",
                field: "protocol version",
                value: 0x0003_0000,
            },
        ),
        (
            startup(0x0002_0000, 100),
            DecodeError::InvalidLength {
                message: "StartupPacket",
                len: 100,
            },
        ),
        (
            startup(80_877_103, 12),
            DecodeError::InvalidLength {
                message: "SSLRequest",
                len: 12,
            },
        ),
        (
            startup(80_877_102, 20),
            DecodeError::InvalidLength {
                message: "CancelRequest",
                len: 20,
            },
        ),
        (
            b"\0\0\0\x07".to_vec(),
            DecodeError::InvalidLength {
                message: "start-up packet",
                len: 7,
            },
        ),
        (
            b"\0\0\x27\x11".to_vec(),
            DecodeError::TooLong {
                message: "start-up packet",
                len: 10_001,
                max: 10_000,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(frontend_error(&bytes, &mut FrontendDecoder::new()), want);
    }

    // Anything after a CancelRequest.
    let mut cancel = startup(80_877_102, 16);
    cancel.push(b'Q');
    assert_eq!(
        frontend_error(&cancel, &mut FrontendDecoder::new()),
        DecodeError::DataAfterEnd {
            message: "CancelRequest"
        }
    );

    // A PasswordPacket without its NUL, or too short to hold one.
    let mut dec = after_startup();
    dec.expect_password();
    assert_eq!(
        frontend_error(b"\0\0\0\x06ab", &mut dec),
        DecodeError::MissingNul {
            message: "PasswordPacket",
            field: "password"
        }
    );
    let mut dec = after_startup();
    dec.expect_password();
    assert_eq!(
        frontend_error(b"\0\0\0\x04", &mut dec),
        DecodeError::InvalidLength {
            message: "PasswordPacket",
            len: 4
        }
    );
}

/// Feeds `bytes` one at a time until the decoder fails; returns the error and the most bytes
/// it held.
fn fail_one_byte_at_a_time(
    bytes: &[u8],
    mut next: impl FnMut(&[u8]) -> (Result<(), DecodeError>, usize),
) -> (DecodeError, usize) {
    let mut held = 0;
    for b in bytes.chunks(1) {
        let (r, buffered) = next(b);
        held = held.max(buffered);
        if let Err(e) = r {
            return (e, held);
        }
    }
    panic!("no error after {} bytes", bytes.len());
}

fn drain_backend(dec: &mut BackendDecoder, b: &[u8]) -> (Result<(), DecodeError>, usize) {
    dec.receive(b);
    loop {
        match dec.next() {
            Ok(Some(_)) => {}
            Ok(None) => return (Ok(()), dec.buffered_len()),
            Err(e) => return (Err(e), dec.buffered_len()),
        }
    }
}

#[test]
fn backend_sizes_are_bounded_before_the_bytes_arrive() {
    let limits = Limits {
        backend_small: 20,
        backend_large: 100,
        ..Limits::default()
    };
    // A command tag that never ends: refused once past the small limit.
    let endless = [b"C".as_slice(), &[b'x'; 1000]].concat();
    let mut dec = BackendDecoder::with_limits(limits);
    let (e, held) = fail_one_byte_at_a_time(&endless, |b| drain_backend(&mut dec, b));
    assert_eq!(
        e,
        DecodeError::TooLong {
            message: "CompletedResponse",
            len: 21,
            max: 20
        }
    );
    assert!(held <= 21, "held {held} bytes");

    // An error text: the large limit.
    let endless = [b"E".as_slice(), &[b'x'; 1000]].concat();
    let mut dec = BackendDecoder::with_limits(limits);
    let (e, held) = fail_one_byte_at_a_time(&endless, |b| drain_backend(&mut dec, b));
    assert!(matches!(
        e,
        DecodeError::TooLong {
            message: "ErrorResponse",
            max: 100,
            ..
        }
    ));
    assert!(held <= 101, "held {held} bytes");

    // A row value whose length word announces 1 GiB: refused when the word is complete.
    let big = b"T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\x40\0\0\0";
    assert_eq!(
        backend_error(big, limits),
        DecodeError::TooLong {
            message: "AsciiRow",
            len: 1 + 0x4000_0000,
            max: 100
        }
    );
    // A COPY line without a newline.
    let endless = [b"H".as_slice(), &[b'x'; 1000]].concat();
    let mut dec = BackendDecoder::with_limits(limits);
    let (e, held) = fail_one_byte_at_a_time(&endless, |b| drain_backend(&mut dec, b));
    assert_eq!(
        e,
        DecodeError::TooLong {
            message: "CopyDataRows",
            len: 101,
            max: 100
        }
    );
    assert!(held <= 101, "held {held} bytes");
    // The limits in force are met exactly: a tag of 19 bytes and its NUL is 20.
    let mut ok = b"C".to_vec();
    ok.extend_from_slice(&[b'y'; 19]);
    ok.push(0);
    let mut dec = BackendDecoder::with_limits(limits);
    let (got, err) = decode_backend(&mut dec, &[&ok], false);
    assert_eq!((got.len(), err), (1, None));
}

#[test]
fn frontend_sizes_are_bounded_before_the_bytes_arrive() {
    let limits = Limits {
        frontend_large: 50,
        frontend_auth: 30,
        ..Limits::default()
    };
    for (start, message) in [(&b"Q"[..], "Query"), (&b"F"[..], "FunctionCall")] {
        let endless = [start, &[b'x'; 500]].concat();
        let mut dec = FrontendDecoder::after_startup(limits);
        let (e, held) = fail_one_byte_at_a_time(&endless, |b| {
            dec.receive(b);
            let r = loop {
                match dec.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            (r, dec.buffered_len())
        });
        assert_eq!(
            e,
            DecodeError::TooLong {
                message,
                len: 51,
                max: 50
            }
        );
        assert!(held <= 51);
    }
    // A function argument announcing more than the limit.
    let mut dec = FrontendDecoder::after_startup(limits);
    let call = b"F\0\0\0\x05\x25\0\0\0\x01\0\0\x10\0";
    assert_eq!(
        decode_frontend(&mut dec, &[call], &[]).1,
        Some(DecodeError::TooLong {
            message: "FunctionCall",
            len: 13 + 4096,
            max: 50
        })
    );
    // A PasswordPacket's length word over the limit.
    let mut dec = FrontendDecoder::after_startup(limits);
    dec.expect_password();
    assert_eq!(
        decode_frontend(&mut dec, &[b"\0\0\0\x1f"], &[]).1,
        Some(DecodeError::TooLong {
            message: "PasswordPacket",
            len: 31,
            max: 30
        })
    );
    // A COPY line that does not end.
    let mut dec = FrontendDecoder::after_startup(limits);
    dec.expect_copy_in();
    assert_eq!(
        decode_frontend(&mut dec, &[&[b'x'; 60]], &[]).1,
        Some(DecodeError::TooLong {
            message: "CopyDataRows",
            len: 51,
            max: 50
        })
    );
}

#[test]
fn the_end_marker_may_follow_the_last_row_on_its_line() {
    // libpq sends COPY data that does not end with a newline as it is, then `\.\n`: the
    // last row comes on its own, without a newline, then the end.
    let bytes: &[u8] = b"1\tone\n2\ttwo\\.\nX";
    let mut dec = FrontendDecoder::after_startup(Limits::default());
    dec.expect_copy_in();
    let (got, err) = decode_frontend(&mut dec, &[bytes], &[]);
    assert_eq!(err, None);
    assert_eq!(
        got,
        [
            FrontendMessage::CopyDataRow(CopyLine::new("1\tone\n").unwrap()),
            FrontendMessage::CopyDataRow(CopyLine::last("2\ttwo").unwrap()),
            FrontendMessage::CopyDataEnd,
            FrontendMessage::Terminate,
        ]
    );
    assert_eq!(encode_all(&got), bytes);
    // An escaped backslash before the period is data.
    let mut dec = FrontendDecoder::after_startup(Limits::default());
    dec.expect_copy_in();
    let (got, _) = decode_frontend(&mut dec, &[b"a\\\\.\n\\.\n"], &[]);
    assert_eq!(
        got,
        [
            FrontendMessage::CopyDataRow(CopyLine::new("a\\\\.\n").unwrap()),
            FrontendMessage::CopyDataEnd
        ]
    );
    assert!(CopyLine::last("ends with \\").is_err());
    assert!(CopyLine::last("").is_err());
}

#[test]
fn constructors_refuse_what_cannot_be_encoded() {
    assert!(Text::new("a\0").is_err());
    assert!(CopyLine::new("").is_err());
    assert!(StartupPacket::new(ProtocolVersion::V3_0, "", "u", "").is_err());
    assert!(StartupPacket::new(ProtocolVersion::V2_0, "", "u".repeat(33), "").is_err());
    // A field that fills its size exactly has no NUL, and reads back whole.
    let p = StartupPacket::new(ProtocolVersion::V2_0, "d".repeat(64), "u".repeat(32), "").unwrap();
    assert_eq!(p.user(), "u".repeat(32).as_bytes());
    assert_eq!(p.database(), "d".repeat(64).as_bytes());
    let bytes = encode_all(&[FrontendMessage::Startup(p.clone())]);
    let plan = [FrontendMessage::Startup(p)];
    assert_eq!(
        decode_frontend(&mut FrontendDecoder::new(), &[&bytes], &plan).0,
        plan
    );
    assert!(AsciiRow::new(&vec![None; 70_000]).is_err());
    assert_eq!(
        FunctionCall::new(1, &[None])
            .unwrap()
            .args()
            .collect::<Vec<_>>(),
        [None]
    );
}
