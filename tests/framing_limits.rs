//! Length limits and hostile headers: an unknown tag is refused on its first byte, a bad length
//! as soon as its four bytes are in, before any body; an allowed but huge length reserves
//! nothing; every class of message gets its own limit, and custom limits are honoured.

mod common;

use bytes::BytesMut;
use common::{frame, startup_packet, Body};
use pgproto::{
    backend_tag, frontend_tag, BackendDecoder, BackendMessage, DecodeError, Encode,
    FrontendDecoder, FrontendMessage, Limits, ProtocolVersion, Query, StartupMessage, Tag,
    LARGE_MESSAGE_LIMIT,
};

fn header(tag: u8, len: i32) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&len.to_be_bytes());
    v
}

/// Feeds `bytes` one at a time to a backend decoder; every call before the last byte must
/// return `Ok(None)`. Returns what the call after the last byte returned.
fn backend_bytewise(
    d: &mut BackendDecoder,
    bytes: &[u8],
) -> Result<Option<BackendMessage<'static>>, DecodeError> {
    let (last, init) = bytes.split_last().unwrap();
    for b in init {
        d.receive(&[*b]);
        assert_eq!(d.next(), Ok(None), "early result before byte {last:#04x}");
    }
    d.receive(&[*last]);
    d.next()
}

fn frontend_bytewise(
    d: &mut FrontendDecoder,
    bytes: &[u8],
) -> Result<Option<FrontendMessage<'static>>, DecodeError> {
    let (last, init) = bytes.split_last().unwrap();
    for b in init {
        d.receive(&[*b]);
        assert_eq!(d.next(), Ok(None));
    }
    d.receive(&[*last]);
    d.next()
}

fn too_long(message: &'static str, len: i32, max: u32) -> DecodeError {
    DecodeError::TooLong {
        message,
        len: len as u64,
        max,
    }
}

fn fe() -> FrontendDecoder {
    FrontendDecoder::after_startup(Limits::default())
}

const BACKEND_TAGS: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";
// libpq's long types, plus ParameterDescription (65,535 parameters make it 262,142 bytes).
const BACKEND_LARGE: &[u8] = b"TDdVENAt";
const FRONTEND_TAGS: &[u8] = b"BCdcfDEHFPpQSX";
const FRONTEND_LARGE: &[u8] = b"QPBdF";

#[test]
fn defaults_are_postgresql_s() {
    let l = Limits::default();
    assert_eq!(LARGE_MESSAGE_LIMIT, 0x3fff_fffe);
    assert_eq!(l.startup, 10_000);
    assert_eq!(l.frontend_small, 10_000);
    assert_eq!(l.frontend_large, LARGE_MESSAGE_LIMIT);
    assert_eq!(l.frontend_auth, 65_535);
    assert_eq!(l.backend_small, 30_000);
    assert_eq!(l.backend_large, LARGE_MESSAGE_LIMIT);
}

// ---------------------------------------------------------------------------------------------
// Refused on arrival, before any body
// ---------------------------------------------------------------------------------------------

#[test]
fn one_gib_header_fails_on_its_fifth_byte() {
    let want = too_long("ReadyForQuery", 0x4000_0000, 30_000);
    let bytes = header(b'Z', 0x4000_0000);
    let mut d = BackendDecoder::new();
    assert_eq!(backend_bytewise(&mut d, &bytes), Err(want.clone()));
    // Sticky, and through every entry point.
    assert_eq!(d.next(), Err(want.clone()));
    assert_eq!(d.next_frame(), Err(want.clone()));
    assert!(matches!(d.next_ref(), Err(e) if e == want));

    // The same through next_frame and next_ref alone.
    let mut d = BackendDecoder::new();
    d.receive(&bytes[..4]);
    assert_eq!(d.next_frame(), Ok(None));
    d.receive(&bytes[4..]);
    assert_eq!(d.next_frame(), Err(want.clone()));
    let mut d = BackendDecoder::new();
    d.receive(&bytes[..4]);
    assert!(matches!(d.next_ref(), Ok(None)));
    d.receive(&bytes[4..]);
    assert!(matches!(d.next_ref(), Err(e) if e == want));

    // Large messages are refused just above their own limit.
    let mut d = BackendDecoder::new();
    assert_eq!(
        backend_bytewise(&mut d, &header(b'D', 0x3fff_ffff)),
        Err(too_long("DataRow", 0x3fff_ffff, LARGE_MESSAGE_LIMIT))
    );
    let mut d = BackendDecoder::new();
    assert_eq!(
        backend_bytewise(&mut d, &header(b'D', i32::MAX)),
        Err(too_long("DataRow", i32::MAX, LARGE_MESSAGE_LIMIT))
    );

    // Frontend: a small message and a large one.
    let mut d = fe();
    assert_eq!(
        frontend_bytewise(&mut d, &header(b'S', 0x4000_0000)),
        Err(too_long("Sync", 0x4000_0000, 10_000))
    );
    let mut d = fe();
    assert_eq!(
        frontend_bytewise(&mut d, &header(b'Q', 0x4000_0000)),
        Err(too_long("Query", 0x4000_0000, LARGE_MESSAGE_LIMIT))
    );
    let mut d = fe();
    assert_eq!(
        frontend_bytewise(&mut d, &header(b'p', 0x4000_0000)),
        Err(too_long("authentication response", 0x4000_0000, 65_535))
    );
}

#[test]
fn length_below_four_fails_on_its_fifth_byte() {
    for len in [3, 0, -1, i32::MIN] {
        let want = DecodeError::InvalidLength {
            message: "ReadyForQuery",
            len: len.into(),
        };
        let mut d = BackendDecoder::new();
        assert_eq!(
            backend_bytewise(&mut d, &header(b'Z', len)),
            Err(want.clone())
        );
        assert_eq!(d.next(), Err(want));

        let want = DecodeError::InvalidLength {
            message: "Query",
            len: len.into(),
        };
        let mut d = fe();
        assert_eq!(
            frontend_bytewise(&mut d, &header(b'Q', len)),
            Err(want.clone())
        );
        assert_eq!(d.next(), Err(want));
    }
    // Exactly 4 is an empty body: fine for a message that has one.
    let mut d = BackendDecoder::new();
    assert_eq!(
        backend_bytewise(&mut d, &header(b'n', 4)),
        Ok(Some(BackendMessage::NoData))
    );
}

#[test]
fn every_unknown_tag_fails_on_its_first_byte() {
    for b in 0..=255u8 {
        let mut d = BackendDecoder::new();
        d.receive(&[b]);
        if BACKEND_TAGS.contains(&b) {
            assert_eq!(d.next(), Ok(None), "backend tag {}", Tag(b));
        } else {
            let want = DecodeError::UnknownTag { tag: Tag(b) };
            assert_eq!(d.next(), Err(want.clone()), "backend byte {}", Tag(b));
            assert_eq!(d.next(), Err(want.clone()));
            let mut d = BackendDecoder::new();
            d.receive(&[b]);
            assert_eq!(d.next_frame(), Err(want.clone()));
            let mut d = BackendDecoder::new();
            d.receive(&[b]);
            assert!(matches!(d.next_ref(), Err(e) if e == want));
        }

        let mut d = fe();
        d.receive(&[b]);
        if FRONTEND_TAGS.contains(&b) {
            assert_eq!(d.next(), Ok(None), "frontend tag {}", Tag(b));
        } else {
            let want = DecodeError::UnknownTag { tag: Tag(b) };
            assert_eq!(d.next(), Err(want.clone()), "frontend byte {}", Tag(b));
            assert_eq!(d.next(), Err(want));
        }
    }
}

#[test]
fn the_public_tag_constants_match_the_class_tables() {
    use backend_tag as b;
    use frontend_tag as f;
    let backend = [
        b::AUTHENTICATION,
        b::BACKEND_KEY_DATA,
        b::BIND_COMPLETE,
        b::CLOSE_COMPLETE,
        b::COMMAND_COMPLETE,
        b::COPY_DATA,
        b::COPY_DONE,
        b::COPY_IN_RESPONSE,
        b::COPY_OUT_RESPONSE,
        b::COPY_BOTH_RESPONSE,
        b::DATA_ROW,
        b::EMPTY_QUERY_RESPONSE,
        b::ERROR_RESPONSE,
        b::FUNCTION_CALL_RESPONSE,
        b::NEGOTIATE_PROTOCOL_VERSION,
        b::NO_DATA,
        b::NOTICE_RESPONSE,
        b::NOTIFICATION_RESPONSE,
        b::PARAMETER_DESCRIPTION,
        b::PARAMETER_STATUS,
        b::PARSE_COMPLETE,
        b::PORTAL_SUSPENDED,
        b::READY_FOR_QUERY,
        b::ROW_DESCRIPTION,
    ];
    let mut sorted = backend.to_vec();
    sorted.sort_unstable();
    let mut want = BACKEND_TAGS.to_vec();
    want.sort_unstable();
    assert_eq!(sorted, want);
    let frontend = [
        f::BIND,
        f::CLOSE,
        f::COPY_DATA,
        f::COPY_DONE,
        f::COPY_FAIL,
        f::DESCRIBE,
        f::EXECUTE,
        f::FLUSH,
        f::FUNCTION_CALL,
        f::PARSE,
        f::PASSWORD,
        f::QUERY,
        f::SYNC,
        f::TERMINATE,
    ];
    let mut sorted = frontend.to_vec();
    sorted.sort_unstable();
    let mut want = FRONTEND_TAGS.to_vec();
    want.sort_unstable();
    assert_eq!(sorted, want);
}

#[test]
fn startup_packet_lengths_fail_on_their_fourth_byte() {
    for len in [7, 4, 0, -1, i32::MIN] {
        let mut d = FrontendDecoder::new();
        let want = DecodeError::InvalidLength {
            message: "start-up packet",
            len: len.into(),
        };
        assert_eq!(
            frontend_bytewise(&mut d, &len.to_be_bytes()),
            Err(want.clone())
        );
        assert_eq!(d.next(), Err(want));
    }
    for len in [10_001, 0x4000_0000, i32::MAX] {
        let mut d = FrontendDecoder::new();
        let want = too_long("start-up packet", len, 10_000);
        assert_eq!(
            frontend_bytewise(&mut d, &len.to_be_bytes()),
            Err(want.clone())
        );
        assert_eq!(d.next(), Err(want));
    }
    // After SSLRequest the decoder is still in start-up, with the same limits.
    let mut d = FrontendDecoder::new();
    d.receive(&startup_packet(pgproto::SSL_REQUEST_CODE, &[]));
    assert_eq!(d.next(), Ok(Some(FrontendMessage::SslRequest)));
    assert!(d.in_startup());
    assert_eq!(
        frontend_bytewise(&mut d, &10_001i32.to_be_bytes()),
        Err(too_long("start-up packet", 10_001, 10_000))
    );
}

#[test]
fn startup_packet_of_exactly_10000_bytes_is_accepted() {
    // 8 (length, version) + "user\0" (5) + value + NUL (1) + terminator (1) = 10,000.
    let value = "v".repeat(10_000 - 8 - 5 - 1 - 1);
    let m = StartupMessage::new(ProtocolVersion::V3_0, [("user", value.as_str())]).unwrap();
    assert_eq!(m.encoded_len(), 10_000);
    let mut out = BytesMut::new();
    m.encode(&mut out);
    let mut d = FrontendDecoder::new();
    d.receive(&out);
    assert_eq!(d.next(), Ok(Some(FrontendMessage::Startup(m.clone()))));

    // One byte more is refused.
    let value = "v".repeat(10_000 - 8 - 5 - 1 - 1 + 1);
    let m = StartupMessage::new(ProtocolVersion::V3_0, [("user", value.as_str())]).unwrap();
    let mut out = BytesMut::new();
    m.encode(&mut out);
    let mut d = FrontendDecoder::new();
    d.receive(&out);
    assert_eq!(d.next(), Err(too_long("start-up packet", 10_001, 10_000)));
}

// ---------------------------------------------------------------------------------------------
// One limit per class
// ---------------------------------------------------------------------------------------------

#[test]
fn backend_classes_small_30000_large_1gib() {
    for &t in BACKEND_TAGS {
        let mut d = BackendDecoder::new();
        d.receive(&header(t, 30_000));
        assert_eq!(d.next(), Ok(None), "{} at 30,000", Tag(t));
        let mut d = BackendDecoder::new();
        d.receive(&header(t, 30_001));
        if BACKEND_LARGE.contains(&t) {
            assert_eq!(d.next(), Ok(None), "{} at 30,001", Tag(t));
            let mut d = BackendDecoder::new();
            d.receive(&header(t, LARGE_MESSAGE_LIMIT as i32));
            assert_eq!(d.next(), Ok(None), "{} at the large limit", Tag(t));
        } else {
            assert!(
                matches!(
                    d.next(),
                    Err(DecodeError::TooLong {
                        len: 30_001,
                        max: 30_000,
                        ..
                    })
                ),
                "{} at 30,001",
                Tag(t)
            );
        }
    }
}

#[test]
fn frontend_classes_small_10000_auth_65535_large_1gib() {
    for &t in FRONTEND_TAGS {
        let mut d = fe();
        d.receive(&header(t, 10_000));
        assert_eq!(d.next(), Ok(None), "{} at 10,000", Tag(t));
        let mut d = fe();
        d.receive(&header(t, 10_001));
        let r = d.next();
        if FRONTEND_LARGE.contains(&t) || t == b'p' {
            assert_eq!(r, Ok(None), "{} at 10,001", Tag(t));
        } else {
            assert!(
                matches!(
                    r,
                    Err(DecodeError::TooLong {
                        len: 10_001,
                        max: 10_000,
                        ..
                    })
                ),
                "{} at 10,001: {r:?}",
                Tag(t)
            );
        }
    }
}

#[test]
fn per_class_limits_with_whole_messages() {
    // Sync over 10,000: refused.
    let mut d = fe();
    d.receive(&frame(b'S', &vec![0; 20_000 - 4]));
    assert_eq!(d.next(), Err(too_long("Sync", 20_000, 10_000)));

    // A 20,000-byte Query: fine.
    let q = Query::new("x".repeat(20_000 - 4 - 1)).unwrap();
    let mut out = BytesMut::new();
    q.encode(&mut out);
    assert_eq!(out.len(), 20_001);
    let mut d = fe();
    d.receive(&out);
    assert_eq!(d.next(), Ok(Some(FrontendMessage::Query(q))));
    assert_eq!(d.next(), Ok(None));

    // Backend CommandComplete of 40,000: refused (libpq's 30,000).
    let mut d = BackendDecoder::new();
    d.receive(&frame(
        b'C',
        &Body::new().cstr(&vec![b'x'; 40_000 - 5]).build(),
    ));
    assert_eq!(d.next(), Err(too_long("CommandComplete", 40_000, 30_000)));

    // A CommandComplete of exactly 30,000: fine.
    let mut d = BackendDecoder::new();
    d.receive(&frame(
        b'C',
        &Body::new().cstr(&vec![b'x'; 30_000 - 5]).build(),
    ));
    assert!(matches!(
        d.next(),
        Ok(Some(BackendMessage::CommandComplete(_)))
    ));

    // Backend DataRow of 40,000: fine.
    let v = vec![b'y'; 40_000 - 4 - 2 - 4];
    let body = Body::new().i16(1).nullable(Some(&v)).build();
    assert_eq!(body.len() + 4, 40_000);
    let mut d = BackendDecoder::new();
    d.receive(&frame(b'D', &body));
    let Ok(Some(BackendMessage::DataRow(row))) = d.next() else {
        panic!("DataRow of 40,000 bytes refused");
    };
    assert_eq!(row.get(0), Some(Ok(Some(&v[..]))));

    // 'p' up to 65,535.
    let mut d = fe();
    d.receive(&frame(b'p', &vec![1; 65_535 - 4]));
    assert!(matches!(
        d.next(),
        Ok(Some(FrontendMessage::UntypedAuthResponse(_)))
    ));
    let mut d = fe();
    d.receive(&frame(b'p', &vec![1; 65_536 - 4]));
    assert_eq!(
        d.next(),
        Err(too_long("authentication response", 65_536, 65_535))
    );
}

// ---------------------------------------------------------------------------------------------
// Custom limits
// ---------------------------------------------------------------------------------------------

#[test]
fn custom_limits_are_honoured() {
    let limits = Limits {
        frontend_large: 1000,
        ..Limits::default()
    };
    let q = |len: usize| {
        let mut out = BytesMut::new();
        Query::new("x".repeat(len - 5)).unwrap().encode(&mut out);
        out
    };
    let mut d = FrontendDecoder::after_startup(limits);
    d.receive(&q(2000));
    assert_eq!(d.next(), Err(too_long("Query", 2000, 1000)));
    let mut d = FrontendDecoder::after_startup(limits);
    d.receive(&q(1000));
    assert!(matches!(d.next(), Ok(Some(FrontendMessage::Query(_)))));
    // The other classes keep their defaults.
    let mut d = FrontendDecoder::after_startup(limits);
    d.receive(&header(b'S', 10_001));
    assert_eq!(d.next(), Err(too_long("Sync", 10_001, 10_000)));

    // Every field of Limits is used for its own class, and only for it.
    let tight = Limits {
        startup: 100,
        frontend_small: 200,
        frontend_large: 300,
        frontend_auth: 400,
        backend_small: 500,
        backend_large: 600,
    };
    let fe_case = |t: u8, max: u32, name: &'static str| {
        let mut d = FrontendDecoder::after_startup(tight);
        d.receive(&header(t, max as i32));
        assert_eq!(d.next(), Ok(None), "{name} at {max}");
        let mut d = FrontendDecoder::after_startup(tight);
        d.receive(&header(t, max as i32 + 1));
        assert_eq!(d.next(), Err(too_long(name, max as i32 + 1, max)));
    };
    fe_case(b'S', 200, "Sync");
    fe_case(b'B', 300, "Bind");
    fe_case(b'p', 400, "authentication response");
    let be_case = |t: u8, max: u32, name: &'static str| {
        let mut d = BackendDecoder::with_limits(tight);
        d.receive(&header(t, max as i32));
        assert_eq!(d.next(), Ok(None), "{name} at {max}");
        let mut d = BackendDecoder::with_limits(tight);
        d.receive(&header(t, max as i32 + 1));
        assert_eq!(d.next(), Err(too_long(name, max as i32 + 1, max)));
    };
    be_case(b'Z', 500, "ReadyForQuery");
    be_case(b'T', 600, "RowDescription");
    let mut d = FrontendDecoder::with_limits(tight);
    d.receive(&100i32.to_be_bytes());
    assert_eq!(d.next(), Ok(None));
    let mut d = FrontendDecoder::with_limits(tight);
    d.receive(&101i32.to_be_bytes());
    assert_eq!(d.next(), Err(too_long("start-up packet", 101, 100)));
}

// ---------------------------------------------------------------------------------------------
// A huge but allowed length reserves nothing
// ---------------------------------------------------------------------------------------------

/// Feeds a DataRow header claiming 0x3ffffffe bytes, then 1 MB in 8 KiB chunks: the decoder
/// holds exactly what it was given and keeps waiting.
fn huge_data_row_scenario() {
    let mut d = BackendDecoder::new();
    let mut head = header(b'D', LARGE_MESSAGE_LIMIT as i32);
    head.extend_from_slice(&[0, 1, 0x3f, 0xff, 0xff, 0xf4]); // one column of 0x3ffffff4 bytes
    d.receive(&head);
    assert_eq!(d.next(), Ok(None));
    assert_eq!(d.buffered_len(), head.len());
    let chunk = vec![0xab; 8192];
    let mut fed = head.len();
    while fed < 1_000_000 {
        d.receive(&chunk);
        fed += chunk.len();
        assert_eq!(d.buffered_len(), fed);
        assert_eq!(d.next(), Ok(None));
        assert!(matches!(d.next_ref(), Ok(None)));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.buffered_len(), fed);
    }
    // Nothing was lost either: the bytes are all still there.
    let rest = d.take_buffered();
    assert_eq!(rest.len(), fed);
    assert_eq!(&rest[..head.len()], &head[..]);
}

/// This process's peak virtual memory, in KiB.
#[cfg(target_os = "linux")]
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A counting `#[global_allocator]` would need `unsafe impl GlobalAlloc`, which the crate's
/// `forbid(unsafe_code)` lint refuses in every target. So memory is bounded from the outside:
/// this test runs `huge_length_child` in a child process under an address-space limit of
/// 256 MiB (`ulimit -v`), where reserving 1 GiB fails and aborts, and the child also checks its
/// own peak virtual memory grows by less than 16 MiB.
#[cfg(target_os = "linux")]
#[test]
fn huge_allowed_length_reserves_nothing() {
    // In this process: the behaviour, and a loose bound (other test threads may map malloc
    // arenas of 64 MiB while this runs; a 1 GiB reservation would still show).
    let before = vm_peak_kib();
    huge_data_row_scenario();
    let grown = vm_peak_kib() - before;
    assert!(
        grown < 512 * 1024,
        "peak virtual memory grew by {grown} KiB"
    );

    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 262144 && exec "$0" "$@""#)
        .arg(&exe)
        .args([
            "huge_length_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Run by `huge_allowed_length_reserves_nothing` in a child process with limited address space.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run in a child process by huge_allowed_length_reserves_nothing"]
fn huge_length_child() {
    // Warm up this thread's allocator so that its arena is already mapped.
    let warm: Vec<Vec<u8>> = (0..64).map(|i| vec![0u8; 64 * i]).collect();
    drop(warm);
    let before = vm_peak_kib();
    huge_data_row_scenario();
    let grown = vm_peak_kib() - before;
    assert!(
        grown < 16 * 1024,
        "peak virtual memory grew by {grown} KiB feeding 1 MB"
    );
}
