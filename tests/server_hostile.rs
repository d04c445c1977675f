//! A hostile (or merely broken) client against the `Server`, in memory. Every byte the "client"
//! sends is written by hand here; what the server queues is decoded with `BackendDecoder` and
//! checked, SQLSTATE included. Also the application's own misuse of the `Server` API, which must
//! return `UsageError` and change nothing.

use bytes::Bytes;
use pgproto::auth::{ChannelBinding, ScramClient, ScramVerifier};
use pgproto::{
    Authentication, BackendDecoder, BackendMessage, CopyResponse, DecodeError, Error, ErrorFields,
    FieldCode, Format, FormatCodes, FrontendMessage, Limits, ProtocolVersion, Server, ServerAuth,
    ServerConfig, ServerEvent, TransactionStatus, UsageError,
};

// ---------------------------------------------------------------------------------------------
// Hand-made frames
// ---------------------------------------------------------------------------------------------

/// A tagged frame: type byte, length word, body.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An untagged start-up packet: length word, 32-bit code, body.
fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32 + 8).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn startup(major: u16, minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    packet((u32::from(major) << 16) | u32::from(minor), &body)
}

fn alice() -> Vec<u8> {
    startup(3, 0, &[("user", "alice")])
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn query(sql: &str) -> Vec<u8> {
    frame(b'Q', &cstr(sql))
}

/// Parse of the unnamed statement with no parameter types.
fn parse(sql: &str) -> Vec<u8> {
    let mut body = cstr("");
    body.extend_from_slice(&cstr(sql));
    body.extend_from_slice(&[0, 0]);
    frame(b'P', &body)
}

/// Bind of the unnamed portal to the unnamed statement, no parameters.
fn bind() -> Vec<u8> {
    frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0])
}

fn describe_portal() -> Vec<u8> {
    frame(b'D', b"P\0")
}

fn execute() -> Vec<u8> {
    frame(b'E', &[0, 0, 0, 0, 0])
}

fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

fn flush() -> Vec<u8> {
    frame(b'H', &[])
}

fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = cstr(mechanism);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    frame(b'p', &body)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Events until `Ok(None)` or an error.
fn drain(s: &mut Server) -> (Vec<ServerEvent>, Option<Error>) {
    let mut events = Vec::new();
    loop {
        match s.poll_event() {
            Ok(Some(e)) => events.push(e.into_owned()),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Everything queued for the client, decoded. `ssl`: the first byte answers an SSLRequest.
fn sent(s: &mut Server) -> Vec<BackendMessage> {
    sent_with(s, BackendDecoder::new())
}

fn sent_with(s: &mut Server, mut dec: BackendDecoder) -> Vec<BackendMessage> {
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        dec.receive(&b);
    }
    while let Some(m) = dec.next().unwrap() {
        out.push(m);
    }
    assert_eq!(dec.buffered_len(), 0, "whole messages only");
    out
}

/// Asserts that the only thing queued is one FATAL ErrorResponse with `code`; returns it.
fn fatal(s: &mut Server, code: &str) -> ErrorFields {
    let msgs = sent(s);
    let [BackendMessage::ErrorResponse(f)] = &msgs[..] else {
        panic!("expected one ErrorResponse, got {msgs:?}");
    };
    assert_eq!(f.code(), Some(code.as_bytes()), "{f:?}");
    assert_eq!(f.severity(), Some(&b"FATAL"[..]));
    f.clone()
}

/// Asserts that the error is sticky: returned again, even after more input, and every answer
/// is refused.
fn assert_sticky(s: &mut Server, e: &Error) {
    assert_eq!(s.poll_event().as_ref(), Err(e));
    s.receive(&query("SELECT 1"));
    s.receive(&[0xff; 64]);
    assert_eq!(s.poll_event().as_ref(), Err(e));
    assert!(!s.is_ready());
    assert_eq!(
        s.ready_for_query(TransactionStatus::Idle),
        Err(UsageError::Closed)
    );
    assert_eq!(s.notice(&err_fields("01000")), Err(UsageError::Closed));
    assert!(s.poll_transmit().is_none(), "nothing more is queued");
}

fn err_fields(code: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, "ERROR"),
        (FieldCode::Code, code),
        (FieldCode::Message, "it failed"),
    ])
    .unwrap()
}

/// A server past a trusting start-up, with its output drained.
fn ready_server(config: ServerConfig) -> Server {
    let mut s = Server::new(config);
    s.receive(&alice());
    let (events, err) = drain(&mut s);
    assert!(err.is_none() && matches!(events[..], [ServerEvent::Startup { .. }]));
    s.authenticate(ServerAuth::Trust).unwrap();
    assert_eq!(drain(&mut s).0, [ServerEvent::Authenticated]);
    let msgs = sent(&mut s);
    assert_eq!(
        msgs.last(),
        Some(&BackendMessage::ReadyForQuery(TransactionStatus::Idle))
    );
    assert!(s.is_ready());
    s
}

fn ready() -> Server {
    ready_server(ServerConfig::default())
}

fn message(e: &ServerEvent) -> &FrontendMessage {
    match e {
        ServerEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_message_type_is_a_fatal_08p01_after_the_messages_before_it() {
    let mut s = ready();
    let mut bytes = query("SELECT 1");
    bytes.extend_from_slice(b"?\0\0\0\x04");
    s.receive(&bytes);
    // The Query decoded before the bad byte is still delivered, and answered.
    let (events, err) = drain(&mut s);
    assert!(err.is_none());
    assert!(matches!(message(&events[0]), FrontendMessage::Query(_)));
    s.command_complete("SELECT 0").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    let (events, err) = drain(&mut s);
    assert!(events.is_empty());
    let err = err.unwrap();
    assert_eq!(
        err,
        Error::Decode(DecodeError::UnknownTag {
            tag: pgproto::Tag(b'?')
        })
    );
    assert_eq!(err.sqlstate(), "08P01");
    let msgs = sent(&mut s);
    assert_eq!(
        msgs[..2],
        [
            BackendMessage::CommandComplete(pgproto::CommandComplete::new("SELECT 0").unwrap()),
            BackendMessage::ReadyForQuery(TransactionStatus::Idle)
        ]
    );
    let BackendMessage::ErrorResponse(f) = &msgs[2] else {
        panic!("{msgs:?}")
    };
    assert_eq!(f.code(), Some(&b"08P01"[..]));
    assert_eq!(f.severity(), Some(&b"FATAL"[..]));
    assert_eq!(msgs.len(), 3);
    assert_sticky(&mut s, &err);
}

#[test]
fn an_unknown_type_byte_fails_before_its_length_arrives() {
    let mut s = ready();
    s.receive(b"\x01");
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::Decode(DecodeError::UnknownTag { .. })));
    fatal(&mut s, "08P01");
    assert_sticky(&mut s, &err);
}

#[test]
fn a_length_over_the_limit_is_54000_before_the_body_arrives() {
    // Query may be up to 1 GiB - 2: one more is refused from the header alone.
    let mut s = ready();
    let mut header = vec![b'Q'];
    header.extend_from_slice(&0x3fff_ffffi32.to_be_bytes());
    s.receive(&header);
    let err = s.poll_event().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode(DecodeError::TooLong {
                message: "Query",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), "54000");
    fatal(&mut s, "54000");
    assert_sticky(&mut s, &err);
    assert!(s.take_buffered().is_empty(), "nothing kept");

    // A configured limit, and a small message (Sync may be up to 10,000 bytes).
    let mut config = ServerConfig::default();
    config.limits = Limits {
        frontend_large: 100,
        ..Limits::default()
    };
    let mut s = ready_server(config);
    s.receive(&query(&"x".repeat(95))); // length word 100: accepted
    assert!(matches!(drain(&mut s).0[..], [ServerEvent::Message(_)]));
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    sent(&mut s);
    s.receive(b"Q\0\0\0\x65"); // 101
    assert_eq!(s.poll_event().unwrap_err().sqlstate(), "54000");
    fatal(&mut s, "54000");

    let mut s = ready();
    s.receive(b"S\0\0\x27\x11"); // 10,001
    assert_eq!(s.poll_event().unwrap_err().sqlstate(), "54000");

    // A length below 4 is a protocol violation.
    let mut s = ready();
    s.receive(b"S\0\0\0\x03");
    let err = s.poll_event().unwrap_err();
    assert!(matches!(
        err,
        Error::Decode(DecodeError::InvalidLength { .. })
    ));
    fatal(&mut s, "08P01");
}

#[test]
fn a_startup_packet_over_10000_bytes_fails_before_its_body() {
    let mut s = Server::new(ServerConfig::default());
    s.receive(&10_001i32.to_be_bytes());
    let err = s.poll_event().unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::TooLong { max: 10_000, .. })),
        "{err:?}"
    );
    // The body that follows is not buffered.
    s.receive(&[b'x'; 10_001]);
    assert_eq!(s.poll_event(), Err(err));
    assert!(s.take_buffered().is_empty());

    // 10,000 exactly is accepted (here: a StartupMessage padded with a long option).
    let mut s = Server::new(ServerConfig::default());
    let pad = "x".repeat(10_000 - 23);
    let p = startup(3, 0, &[("user", "alice"), ("o", &pad)]);
    assert_eq!(p.len(), 10_000);
    s.receive(&p);
    assert!(matches!(
        drain(&mut s),
        (ref e, None) if matches!(e[..], [ServerEvent::Startup { .. }])
    ));

    // Shorter than 8 is refused too.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&[0, 0, 0, 7]);
    assert!(matches!(
        s.poll_event(),
        Err(Error::Decode(DecodeError::InvalidLength { .. }))
    ));
}

#[test]
fn a_startup_message_without_a_user_is_refused() {
    let mut s = Server::new(ServerConfig::default());
    s.receive(&startup(3, 0, &[("database", "x")]));
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "08P01");
    fatal(&mut s, "08P01");
}

// ---------------------------------------------------------------------------------------------
// Encryption requests
// ---------------------------------------------------------------------------------------------

#[test]
fn plaintext_buffered_behind_sslrequest_is_refused_when_tls_is_accepted() {
    // CVE-2021-23214: a man in the middle appends a StartupMessage to the client's SSLRequest.
    let mut s = Server::new(ServerConfig::default());
    let mut bytes = SSL_REQUEST.to_vec();
    bytes.extend_from_slice(&alice());
    s.receive(&bytes);
    assert_eq!(drain(&mut s), (vec![ServerEvent::SslRequest], None));
    s.accept_ssl(true).unwrap();
    let err = s.poll_event().unwrap_err();
    assert_eq!(
        err,
        Error::BufferedBeforeEncryption {
            what: "SSL",
            len: alice().len()
        }
    );
    assert_eq!(s.poll_event(), Err(err.clone()));
    assert_eq!(s.tls_established(None), Err(UsageError::Closed));
    assert_eq!(
        s.authenticate(ServerAuth::Trust),
        Err(UsageError::Closed),
        "the injected StartupMessage never becomes an event"
    );

    // Refusing is fine: the client continues in plaintext.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&bytes);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    let (events, err) = drain(&mut s);
    assert!(err.is_none());
    assert!(matches!(events[..], [ServerEvent::Startup { .. }]));
    let mut dec = BackendDecoder::new();
    dec.expect_ssl_response();
    assert_eq!(
        sent_with(&mut s, dec),
        [BackendMessage::SslResponse { accepted: false }]
    );

    // Bytes that arrive after 'S' but before the handshake completes are refused as well.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&SSL_REQUEST);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(true).unwrap();
    assert_eq!(s.poll_event(), Ok(None));
    s.receive(b"Q");
    assert_eq!(
        s.poll_event(),
        Ok(None),
        "nothing is decoded during the handshake"
    );
    s.tls_established(None).unwrap();
    assert_eq!(
        s.poll_event(),
        Err(Error::BufferedBeforeEncryption {
            what: "SSL",
            len: 1
        })
    );
}

#[test]
fn plaintext_buffered_behind_gssencrequest_is_refused_when_gss_is_accepted() {
    let mut s = Server::new(ServerConfig::default());
    let mut bytes = GSSENC_REQUEST.to_vec();
    bytes.extend_from_slice(&alice());
    s.receive(&bytes);
    assert_eq!(drain(&mut s), (vec![ServerEvent::GssEncRequest], None));
    s.accept_gssenc(true).unwrap();
    let err = s.poll_event().unwrap_err();
    assert_eq!(
        err,
        Error::BufferedBeforeEncryption {
            what: "GSSAPI",
            len: alice().len()
        }
    );
    assert_eq!(s.poll_event(), Err(err));
    assert_eq!(s.gss_established(), Err(UsageError::Closed));

    let mut s = Server::new(ServerConfig::default());
    s.receive(&GSSENC_REQUEST);
    assert_eq!(drain(&mut s).0, [ServerEvent::GssEncRequest]);
    s.accept_gssenc(true).unwrap();
    s.receive(&alice());
    s.gss_established().unwrap();
    assert!(matches!(
        s.poll_event(),
        Err(Error::BufferedBeforeEncryption { what: "GSSAPI", .. })
    ));
}

#[test]
fn a_second_sslrequest_is_a_protocol_violation() {
    let mut s = Server::new(ServerConfig::default());
    s.receive(&SSL_REQUEST);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    s.receive(&SSL_REQUEST);
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "08P01");
}

#[test]
fn a_tls_record_first_is_direct_tls() {
    let mut s = Server::new(ServerConfig::default());
    // The start of a TLS ClientHello record.
    let hello = [0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00];
    s.receive(&hello);
    assert_eq!(drain(&mut s), (vec![ServerEvent::DirectTls], None));
    assert_eq!(s.poll_event(), Ok(None), "waits for the handshake");
    assert_eq!(s.take_buffered(), Bytes::copy_from_slice(&hello));
    s.tls_established(Some(vec![7; 32])).unwrap();
    assert!(s.is_tls());
    // Then a StartupMessage, over TLS.
    s.receive(&alice());
    assert!(matches!(
        drain(&mut s),
        (ref e, None) if matches!(e[..], [ServerEvent::Startup { .. }])
    ));
    // Only the very first byte counts: 0x16 later is just a bad packet.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&SSL_REQUEST);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    s.receive(&hello);
    assert!(!matches!(s.poll_event(), Ok(Some(ServerEvent::DirectTls))));
}

// ---------------------------------------------------------------------------------------------
// Protocol versions
// ---------------------------------------------------------------------------------------------

#[test]
fn newer_minor_versions_and_unknown_options_are_negotiated() {
    for (minor, newest, version) in [
        (1, 0, ProtocolVersion::V3_0),
        (3, 2, ProtocolVersion::V3_2),
        (9999, 2, ProtocolVersion::V3_2),
    ] {
        let mut s = Server::new(ServerConfig::default());
        s.receive(&startup(
            3,
            minor,
            &[("user", "alice"), ("_pq_.frob", "on"), ("_pq_.x", "1")],
        ));
        let (events, err) = drain(&mut s);
        assert!(err.is_none(), "3.{minor}: {err:?}");
        let [ServerEvent::Startup {
            version: v,
            message,
        }] = &events[..]
        else {
            panic!("3.{minor}: {events:?}")
        };
        assert_eq!(*v, version, "3.{minor}");
        assert_eq!(message.version().minor, minor);
        // Start-up continues.
        s.authenticate(ServerAuth::Trust).unwrap();
        assert_eq!(drain(&mut s).0, [ServerEvent::Authenticated]);
        assert_eq!(s.protocol_version(), version);
        let mut dec = BackendDecoder::new();
        dec.set_protocol_version(version);
        let msgs = sent_with(&mut s, dec);
        let BackendMessage::NegotiateProtocolVersion(n) = &msgs[0] else {
            panic!("3.{minor}: {msgs:?}")
        };
        assert_eq!(n.newest_version_code(), 0x0003_0000 | newest, "3.{minor}");
        assert_eq!(
            n.unrecognized().collect::<Vec<_>>(),
            [&b"_pq_.frob"[..], &b"_pq_.x"[..]]
        );
        assert_eq!(msgs[1], BackendMessage::Authentication(Authentication::Ok));
        let BackendMessage::BackendKeyData(k) = &msgs[msgs.len() - 2] else {
            panic!("{msgs:?}")
        };
        let key_len = if version == ProtocolVersion::V3_2 {
            32
        } else {
            4
        };
        assert_eq!(k.secret_key().len(), key_len);
        assert!(s.is_ready());
    }

    // 3.0 or 3.2 without options: no negotiation.
    for minor in [0, 2] {
        let mut s = Server::new(ServerConfig::default());
        s.receive(&startup(3, minor, &[("user", "alice")]));
        assert!(drain(&mut s).1.is_none());
        s.authenticate(ServerAuth::Trust).unwrap();
        let mut dec = BackendDecoder::new();
        dec.set_protocol_version(ProtocolVersion::V3_2);
        let msgs = sent_with(&mut s, dec);
        assert_eq!(msgs[0], BackendMessage::Authentication(Authentication::Ok));
    }

    // A server configured for 3.0 negotiates a 3.2 client down.
    let mut config = ServerConfig::default();
    config.max_protocol_version = ProtocolVersion::V3_0;
    let mut s = Server::new(config);
    s.receive(&startup(3, 2, &[("user", "alice")]));
    assert!(drain(&mut s).1.is_none());
    s.authenticate(ServerAuth::Trust).unwrap();
    let msgs = sent(&mut s);
    let BackendMessage::NegotiateProtocolVersion(n) = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        (n.newest_version_code(), n.unrecognized_count()),
        (0x0003_0000, 0)
    );
    assert_eq!(s.protocol_version(), ProtocolVersion::V3_0);
}

#[test]
fn protocol_2_gets_the_old_error_format_and_the_connection_ends() {
    let mut s = Server::new(ServerConfig::default());
    s.receive(&startup(2, 0, &[("user", "alice")]));
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::UnsupportedProtocol { version } if version.major == 2));
    let mut bytes = Vec::new();
    while let Some(b) = s.poll_transmit() {
        bytes.extend_from_slice(&b);
    }
    // 'E', the text, a NUL: no length word, which a 2.0 client would not understand.
    assert_eq!(bytes[0], b'E');
    assert_eq!(bytes.last(), Some(&0));
    assert_eq!(memchr_count(&bytes, 0), 1, "one NUL, at the end: {bytes:?}");
    let text = std::str::from_utf8(&bytes[1..bytes.len() - 1]).unwrap();
    assert!(
        text.starts_with("FATAL:  unsupported frontend protocol 2.0"),
        "{text}"
    );
    assert!(text.is_ascii() && !text.is_empty());
    assert_sticky(&mut s, &err);
}

fn memchr_count(b: &[u8], c: u8) -> usize {
    b.iter().filter(|x| **x == c).count()
}

#[test]
fn protocol_4_gets_an_error_response() {
    let mut s = Server::new(ServerConfig::default());
    s.receive(&startup(4, 0, &[("user", "alice")]));
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::UnsupportedProtocol { version } if version.major == 4));
    let f = fatal(&mut s, "0A000");
    let text = f.message_str().unwrap();
    assert!(text.contains("4.0"), "{text}");
    assert_sticky(&mut s, &err);
}

// ---------------------------------------------------------------------------------------------
// CancelRequest
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_requests_with_short_and_long_keys() {
    for key in [vec![1, 2, 3, 4], (0..32).collect::<Vec<u8>>()] {
        let mut body = 4242i32.to_be_bytes().to_vec();
        body.extend_from_slice(&key);
        let bytes = packet(80_877_102, &body);
        // Split anywhere, the same event.
        for split in [1, 7, bytes.len()] {
            let mut s = Server::new(ServerConfig::default());
            for piece in bytes.chunks(split) {
                s.receive(piece);
            }
            let (events, err) = drain(&mut s);
            assert!(err.is_none(), "{err:?}");
            let [ServerEvent::CancelRequest(c)] = &events[..] else {
                panic!("{events:?}")
            };
            assert_eq!(c.process_id(), 4242);
            assert_eq!(c.secret_key(), &key[..]);
            assert!(!s.is_ready());
            assert!(s.poll_transmit().is_none(), "a cancel gets no answer");
            assert!(s.authenticate(ServerAuth::Trust).is_err());
            assert!(s.accept_ssl(true).is_err());
            // The client hangs up.
            s.receive_eof();
            assert_eq!(drain(&mut s), (vec![ServerEvent::Closed], None));
        }
        // Anything after it is an error, in the same read or a later one.
        let mut s = Server::new(ServerConfig::default());
        let mut more = bytes.clone();
        more.push(b'Q');
        s.receive(&more);
        let (events, err) = drain(&mut s);
        assert!(matches!(events[..], [ServerEvent::CancelRequest(_)]));
        assert!(
            matches!(err, Some(Error::Decode(DecodeError::DataAfterEnd { .. }))),
            "{err:?}"
        );
        let mut s = Server::new(ServerConfig::default());
        s.receive(&bytes);
        assert!(matches!(
            drain(&mut s),
            (ref e, None) if matches!(e[..], [ServerEvent::CancelRequest(_)])
        ));
        s.receive(b"\0");
        assert!(
            matches!(
                s.poll_event(),
                Err(Error::Decode(DecodeError::DataAfterEnd { .. }))
            ),
            "a byte after CancelRequest"
        );
        assert!(
            s.poll_transmit().is_none(),
            "no answer on a cancel connection, even to garbage"
        );
    }
    // Keys of 3 and 257 bytes are malformed.
    for len in [3, 257] {
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend(std::iter::repeat_n(9u8, len));
        let mut s = Server::new(ServerConfig::default());
        s.receive(&packet(80_877_102, &body));
        assert!(s.poll_event().is_err(), "key of {len} bytes");
    }
}

// ---------------------------------------------------------------------------------------------
// SCRAM
// ---------------------------------------------------------------------------------------------

fn verifier() -> ScramVerifier {
    ScramVerifier::new("pencil", b"0123456789abcdef", 4096).unwrap()
}

/// A server that has sent AuthenticationSASL; with `tls`, over "TLS" with a certificate hash.
fn scram_server(verifier: Option<ScramVerifier>, tls: bool) -> (Server, Vec<u8>) {
    let mut config = ServerConfig::default();
    config.mock_auth_iterations = 4096;
    let mut s = Server::new(config);
    if tls {
        s.receive(&SSL_REQUEST);
        assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
        s.accept_ssl(true).unwrap();
        s.tls_established(Some(vec![0xab; 32])).unwrap();
        let mut dec = BackendDecoder::new();
        dec.expect_ssl_response();
        assert_eq!(
            sent_with(&mut s, dec),
            [BackendMessage::SslResponse { accepted: true }]
        );
    }
    s.receive(&alice());
    assert!(matches!(drain(&mut s).0[..], [ServerEvent::Startup { .. }]));
    s.authenticate(ServerAuth::Scram { verifier }).unwrap();
    let msgs = sent(&mut s);
    let [BackendMessage::Authentication(Authentication::Sasl(m))] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    let names: Vec<Vec<u8>> = m.iter().map(<[u8]>::to_vec).collect();
    let expected: &[&[u8]] = if tls {
        &[b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"]
    } else {
        &[b"SCRAM-SHA-256"]
    };
    assert_eq!(names, expected);
    (s, Vec::new())
}

#[test]
fn gs2_flag_y_while_plus_was_offered_is_a_downgrade() {
    let (mut s, _) = scram_server(Some(verifier()), true);
    let mut c = ScramClient::new("pencil", ChannelBinding::SupportedButNotUsed);
    let first = c.client_first().unwrap();
    assert!(first.starts_with(b"y,,"));
    s.receive(&sasl_initial("SCRAM-SHA-256", &first));
    let err = s.poll_event().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth(pgproto::AuthError::Scram(
                pgproto::auth::ScramError::ChannelBindingDowngrade
            ))
        ),
        "{err:?}"
    );
    fatal(&mut s, "28000");
    assert_sticky(&mut s, &err);

    // Without TLS, 'y' is what a client that could bind sends to a server that cannot: fine.
    let (mut s, _) = scram_server(Some(verifier()), false);
    let mut c = ScramClient::new("pencil", ChannelBinding::SupportedButNotUsed);
    s.receive(&sasl_initial("SCRAM-SHA-256", &c.client_first().unwrap()));
    assert_eq!(drain(&mut s), (vec![], None));
    let msgs = sent(&mut s);
    assert!(matches!(
        msgs[..],
        [BackendMessage::Authentication(
            Authentication::SaslContinue(_)
        )]
    ));
}

#[test]
fn plus_when_not_offered_fails() {
    let (mut s, _) = scram_server(Some(verifier()), false);
    let mut c = ScramClient::new("pencil", ChannelBinding::TlsServerEndPoint(vec![0xab; 32]));
    s.receive(&sasl_initial(
        "SCRAM-SHA-256-PLUS",
        &c.client_first().unwrap(),
    ));
    let err = s.poll_event().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth(pgproto::AuthError::Scram(
                pgproto::auth::ScramError::MechanismNotOffered { .. }
            ))
        ),
        "{err:?}"
    );
    fatal(&mut s, "08P01");
    assert_sticky(&mut s, &err);

    // An unknown mechanism fails too.
    let (mut s, _) = scram_server(Some(verifier()), false);
    s.receive(&sasl_initial("SCRAM-SHA-1", b"n,,n=,r=abc"));
    assert!(s.poll_event().is_err());
    assert!(matches!(
        sent(&mut s)[..],
        [BackendMessage::ErrorResponse(_)]
    ));
}

/// Runs the whole exchange with `password`; returns the server-first-message and the bytes the
/// server queued after the client-final-message.
fn scram_exchange(verifier: Option<ScramVerifier>, password: &str) -> (Vec<u8>, Vec<u8>, Error) {
    let (mut s, _) = scram_server(verifier, false);
    let mut c = ScramClient::new(password, ChannelBinding::None)
        .with_nonce("fyko+d2lbbFgONRv9qkxdawL")
        .unwrap();
    s.receive(&sasl_initial("SCRAM-SHA-256", &c.client_first().unwrap()));
    assert_eq!(
        drain(&mut s),
        (vec![], None),
        "no failure at the first step"
    );
    let msgs = sent(&mut s);
    let [BackendMessage::Authentication(Authentication::SaslContinue(server_first))] = &msgs[..]
    else {
        panic!("{msgs:?}")
    };
    let client_final = c.handle_server_first(server_first).unwrap();
    s.receive(&frame(b'p', &client_final));
    let err = s.poll_event().unwrap_err();
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    assert_sticky(&mut s, &err);
    (server_first.to_vec(), out, err)
}

/// `r=...,s=...,i=...` split into its attributes.
fn attrs(server_first: &[u8]) -> Vec<(u8, usize, Vec<u8>)> {
    server_first
        .split(|b| *b == b',')
        .map(|a| (a[0], a.len(), a[2..].to_vec()))
        .collect()
}

#[test]
fn a_wrong_proof_is_28p01_and_an_unknown_user_fails_the_same_way() {
    let (first_wrong, fatal_wrong, err) = scram_exchange(Some(verifier()), "wrong");
    assert_eq!(err.sqlstate(), "28P01");
    let mut dec = BackendDecoder::new();
    dec.receive(&fatal_wrong);
    let Some(BackendMessage::ErrorResponse(f)) = dec.next().unwrap() else {
        panic!()
    };
    assert_eq!(f.code(), Some(&b"28P01"[..]));
    assert_eq!(f.severity(), Some(&b"FATAL"[..]));
    assert_eq!(dec.next().unwrap(), None);

    let (first_unknown, fatal_unknown, err) = scram_exchange(None, "pencil");
    assert_eq!(err.sqlstate(), "28P01");
    // The same bytes: nothing tells an unknown user from a wrong password.
    assert_eq!(fatal_unknown, fatal_wrong);
    // The server-first-messages have the same shape: nonce, salt and iteration count of the
    // same lengths, the same count.
    let (a, b) = (attrs(&first_wrong), attrs(&first_unknown));
    assert_eq!(a.len(), 3);
    assert_eq!(
        a.iter().map(|(k, l, _)| (*k, *l)).collect::<Vec<_>>(),
        b.iter().map(|(k, l, _)| (*k, *l)).collect::<Vec<_>>()
    );
    assert_eq!(a[2], b[2], "iteration count");

    // And the right password gets in.
    let (mut s, _) = scram_server(Some(verifier()), false);
    let mut c = ScramClient::new("pencil", ChannelBinding::None);
    s.receive(&sasl_initial("SCRAM-SHA-256", &c.client_first().unwrap()));
    assert!(drain(&mut s).1.is_none());
    let msgs = sent(&mut s);
    let [BackendMessage::Authentication(Authentication::SaslContinue(sf))] = &msgs[..] else {
        panic!()
    };
    s.receive(&frame(b'p', &c.handle_server_first(sf).unwrap()));
    assert_eq!(drain(&mut s), (vec![ServerEvent::Authenticated], None));
    let msgs = sent(&mut s);
    let BackendMessage::Authentication(Authentication::SaslFinal(v)) = &msgs[0] else {
        panic!("{msgs:?}")
    };
    c.handle_server_final(v).unwrap();
    assert_eq!(msgs[1], BackendMessage::Authentication(Authentication::Ok));
}

#[test]
fn a_password_message_during_scram_is_a_protocol_violation() {
    let (mut s, _) = scram_server(Some(verifier()), false);
    // A SASLResponse where the SASLInitialResponse belongs: the mechanism name is missing its
    // NUL, or the frame is otherwise malformed.
    s.receive(&frame(b'p', b"pencil"));
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "08P01", "{err:?}");
    fatal(&mut s, "08P01");
}

// ---------------------------------------------------------------------------------------------
// The query phase
// ---------------------------------------------------------------------------------------------

#[test]
fn after_an_extended_query_error_everything_until_sync_is_discarded() {
    let mut s = ready();
    let mut bytes = parse("SELEC 1");
    bytes.extend(bind());
    bytes.extend(describe_portal());
    bytes.extend(execute());
    bytes.extend(flush());
    bytes.extend(query("SELECT 2"));
    bytes.extend(frame(b'd', b"stray copy data"));
    bytes.extend(sync());
    bytes.extend(parse("SELECT 3"));
    s.receive(&bytes);
    let (events, err) = drain(&mut s);
    assert!(err.is_none());
    assert!(matches!(message(&events[0]), FrontendMessage::Parse(_)));
    assert_eq!(events.len(), 1, "one request at a time");
    s.error_response(&err_fields("42601")).unwrap();
    let (events, err) = drain(&mut s);
    assert!(err.is_none());
    assert_eq!(events, [ServerEvent::Message(FrontendMessage::Sync)]);
    assert_eq!(s.discarded(), 6);
    // The discarded messages cannot be answered.
    assert!(s.bind_complete().is_err());
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    // After Sync, messages are served again.
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::Parse(_)));
    s.parse_complete().unwrap();
    let msgs = sent(&mut s);
    assert!(matches!(msgs[0], BackendMessage::ErrorResponse(_)));
    assert_eq!(
        msgs[1..],
        [
            BackendMessage::ReadyForQuery(TransactionStatus::Idle),
            BackendMessage::ParseComplete
        ]
    );

    // An error in a simple Query discards nothing.
    let mut s = ready();
    let mut bytes = query("FAIL");
    bytes.extend(query("SELECT 1"));
    s.receive(&bytes);
    drain(&mut s);
    s.error_response(&err_fields("42601")).unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::Query(_)));
    assert_eq!(s.discarded(), 0);

    // Terminate still gets through while discarding.
    let mut s = ready();
    let mut bytes = execute();
    bytes.extend(execute());
    bytes.extend(frame(b'X', &[]));
    s.receive(&bytes);
    drain(&mut s);
    s.error_response(&err_fields("34000")).unwrap();
    assert_eq!(drain(&mut s), (vec![ServerEvent::Terminate], None));
    assert_eq!(s.discarded(), 1);
}

#[test]
fn messages_discarded_until_sync_are_skipped_by_their_header() {
    // As PostgreSQL: while discarding, a message's body is never parsed, so a malformed one
    // (or one that only a later state could accept) is skipped like any other.
    let mut s = ready();
    let mut bytes = execute();
    bytes.extend(frame(b'P', b"no NUL anywhere"));
    bytes.extend(frame(b'B', &[0xff; 3]));
    bytes.extend(frame(b'S', b"")); // Sync ends the discarding
    bytes.extend(query("SELECT 1"));
    s.receive(&bytes);
    drain(&mut s);
    s.error_response(&err_fields("34000")).unwrap();
    let (events, err) = drain(&mut s);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events, [ServerEvent::Message(FrontendMessage::Sync)]);
    assert_eq!(s.discarded(), 2);
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::Query(_)));

    // The header is still checked: an unknown type or an oversized length is fatal.
    for bad in [frame(b'?', b""), {
        let mut f = vec![b'P'];
        f.extend(0x7fff_0000u32.to_be_bytes());
        f
    }] {
        let mut s = ready();
        let mut bytes = execute();
        bytes.extend(bad);
        s.receive(&bytes);
        drain(&mut s);
        s.error_response(&err_fields("34000")).unwrap();
        let (_, err) = drain(&mut s);
        assert!(err.is_some());
    }

    // Unlike the body of a discarded message, the Sync that ends it must be well formed.
    let mut s = ready();
    let mut bytes = execute();
    bytes.extend(frame(b'S', b"x"));
    s.receive(&bytes);
    drain(&mut s);
    s.error_response(&err_fields("34000")).unwrap();
    let (_, err) = drain(&mut s);
    assert!(err.is_some());
}

#[test]
fn flush_and_sync_during_copy_in_are_ignored() {
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, FormatCodes::default()))
        .unwrap();
    let mut bytes = frame(b'd', b"1\n");
    bytes.extend(flush());
    bytes.extend(sync());
    bytes.extend(frame(b'd', b"2\n"));
    bytes.extend(frame(b'c', &[]));
    bytes.extend(sync());
    s.receive(&bytes);
    let (events, err) = drain(&mut s);
    assert!(err.is_none(), "{err:?}");
    let names: Vec<_> = events.iter().map(|e| message(e).name()).collect();
    assert_eq!(names, ["CopyData", "CopyData", "CopyDone"]);
    assert_eq!(s.discarded(), 2);
    s.command_complete("COPY 2").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    // The Sync after CopyDone is a real one.
    assert_eq!(
        drain(&mut s),
        (vec![ServerEvent::Message(FrontendMessage::Sync)], None)
    );

    // CopyFail ends the COPY as well; the application answers with an error.
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, FormatCodes::default()))
        .unwrap();
    s.receive(&frame(b'f', &cstr("client gave up")));
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::CopyFail(_)));
    s.error_response(&err_fields("57014")).unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();

    // A Query in the middle of COPY FROM STDIN is a protocol violation.
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, FormatCodes::default()))
        .unwrap();
    sent(&mut s);
    s.receive(&query("SELECT 1"));
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::UnexpectedMessage { .. }), "{err:?}");
    fatal(&mut s, "08P01");
}

#[test]
fn messages_that_belong_to_start_up_are_refused_later_and_vice_versa() {
    // A StartupMessage-shaped packet after start-up is read as tagged bytes: an unknown type.
    let mut s = ready();
    s.receive(&alice());
    assert_eq!(s.poll_event().unwrap_err().sqlstate(), "08P01");

    // A Query before authentication.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&alice());
    drain(&mut s);
    s.authenticate(ServerAuth::Password {
        stored: Some("md5".into()),
    })
    .unwrap();
    sent(&mut s);
    s.receive(&query("SELECT 1"));
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "08P01", "{err:?}");
    fatal(&mut s, "08P01");
}

#[test]
fn terminate_and_eof_produce_events() {
    let mut s = ready();
    s.receive(&frame(b'X', &[]));
    assert_eq!(drain(&mut s), (vec![ServerEvent::Terminate], None));
    assert!(!s.is_ready());
    assert_eq!(s.data_row(&[None]), Err(UsageError::Closed));

    let mut s = ready();
    s.receive_eof();
    assert_eq!(drain(&mut s), (vec![ServerEvent::Closed], None));
    assert_eq!(s.poll_event(), Ok(None));

    // EOF before any byte.
    let mut s = Server::new(ServerConfig::default());
    s.receive_eof();
    assert_eq!(drain(&mut s), (vec![ServerEvent::Closed], None));

    // EOF in the middle of a message is an error (08006), with nothing queued.
    let mut s = ready();
    s.receive(&query("SELECT 1")[..6]);
    s.receive_eof();
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::UnexpectedEof { .. }));
    assert_eq!(err.sqlstate(), "08006");
    assert!(s.poll_transmit().is_none());

    // EOF while a request is being answered: the answer still goes out, then the close.
    let mut s = ready();
    s.receive(&query("SELECT 1"));
    s.receive_eof();
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::Query(_)));
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(drain(&mut s), (vec![ServerEvent::Closed], None));

    // Terminate during start-up.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&alice());
    drain(&mut s);
    s.authenticate(ServerAuth::Md5 { stored: None }).unwrap();
    s.receive(&frame(b'X', &[]));
    assert_eq!(drain(&mut s), (vec![ServerEvent::Terminate], None));
}

// ---------------------------------------------------------------------------------------------
// Application misuse
// ---------------------------------------------------------------------------------------------

/// Calls an answer method and asserts that it was refused and queued nothing.
macro_rules! refused {
    ($s:ident . $($call:tt)+) => {{
        let r = $s.$($call)+;
        check_refused(&$s, r, line!());
    }};
}

fn check_refused(s: &Server, r: Result<(), UsageError>, line: u32) {
    assert!(
        matches!(r, Err(UsageError::NotAllowed { .. })),
        "line {line}: expected NotAllowed, got {r:?}"
    );
    assert!(
        !s.wants_write(),
        "line {line}: a refused answer queued bytes"
    );
}

#[test]
fn misuse_returns_usage_error_and_changes_nothing() {
    let rows = pgproto::RowDescription::new(&[]).unwrap();
    let copy = CopyResponse::new(Format::Text, FormatCodes::default());

    // Idle: no request to answer.
    let mut s = ready();
    refused!(s.data_row(&[Some(b"1")]));
    refused!(s.ready_for_query(TransactionStatus::Idle));
    refused!(s.parse_complete());
    refused!(s.command_complete("SELECT 1"));
    refused!(s.copy_in_response(&copy));
    refused!(s.copy_data(b"x"));
    refused!(s.authenticate(ServerAuth::Trust));
    refused!(s.accept_ssl(true));
    refused!(s.tls_established(None));
    // Asynchronous messages are fine when idle.
    s.notice(&err_fields("01000")).unwrap();
    s.parameter_status("TimeZone", "UTC").unwrap();
    sent(&mut s);
    assert!(s.is_ready());

    // Answering Bind.
    s.receive(&bind());
    assert!(matches!(
        message(&drain(&mut s).0[0]),
        FrontendMessage::Bind(_)
    ));
    refused!(s.parse_complete());
    refused!(s.row_description(&rows));
    refused!(s.no_data());
    refused!(s.data_row(&[]));
    refused!(s.ready_for_query(TransactionStatus::Idle));
    refused!(s.portal_suspended());
    refused!(s.function_call_response(None));
    refused!(s.copy_done());
    assert_eq!(s.poll_event(), Ok(None), "still waiting for the answer");
    s.bind_complete().unwrap();
    assert_eq!(sent(&mut s), [BackendMessage::BindComplete]);
    refused!(s.bind_complete());

    // ReadyForQuery twice.
    s.receive(&sync());
    drain(&mut s);
    s.ready_for_query(TransactionStatus::InTransaction).unwrap();
    assert_eq!(
        sent(&mut s),
        [BackendMessage::ReadyForQuery(
            TransactionStatus::InTransaction
        )]
    );
    refused!(s.ready_for_query(TransactionStatus::Idle));
    assert_eq!(s.transaction_status(), TransactionStatus::InTransaction);

    // Describe of a statement: ParameterDescription first, and only once.
    s.receive(&frame(b'D', b"S\0"));
    drain(&mut s);
    refused!(s.row_description(&rows));
    s.parameter_description(&[23]).unwrap();
    sent(&mut s);
    refused!(s.parameter_description(&[23]));
    s.no_data().unwrap();
    sent(&mut s);

    // COPY TO STDOUT: CommandComplete only after CopyDone; no CopyData after it.
    s.receive(&query("COPY t TO STDOUT"));
    drain(&mut s);
    s.copy_out_response(&copy).unwrap();
    sent(&mut s);
    refused!(s.copy_out_response(&copy));
    s.copy_data(b"1\n").unwrap();
    sent(&mut s);
    refused!(s.command_complete("COPY 1"));
    refused!(s.ready_for_query(TransactionStatus::Idle));
    s.copy_done().unwrap();
    sent(&mut s);
    refused!(s.copy_data(b"2\n"));
    refused!(s.copy_done());
    s.command_complete("COPY 1").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    sent(&mut s);

    // COPY FROM STDIN: CommandComplete only after the client's CopyDone.
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&copy).unwrap();
    sent(&mut s);
    refused!(s.command_complete("COPY 0"));
    refused!(s.copy_data(b"x"));
    s.receive(&frame(b'c', &[]));
    drain(&mut s);
    s.command_complete("COPY 0").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    sent(&mut s);

    // FunctionCall: one result, then ReadyForQuery.
    let mut fc = 1234u32.to_be_bytes().to_vec();
    fc.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    s.receive(&frame(b'F', &fc));
    assert!(matches!(
        message(&drain(&mut s).0[0]),
        FrontendMessage::FunctionCall(_)
    ));
    refused!(s.ready_for_query(TransactionStatus::Idle));
    s.function_call_response(Some(b"1")).unwrap();
    sent(&mut s);
    refused!(s.function_call_response(None));
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    sent(&mut s);
    assert!(s.is_ready());

    // During start-up: nothing of the query phase.
    let mut s = Server::new(ServerConfig::default());
    refused!(s.authenticate(ServerAuth::Trust));
    refused!(s.notice(&err_fields("01000")));
    refused!(s.parameter_status("a", "b"));
    refused!(s.error_response(&err_fields("XX000")));
    refused!(s.auth_succeeded());
    s.receive(&alice());
    drain(&mut s);
    refused!(s.accept_ssl(true));
    refused!(s.auth_continue(Authentication::Ok));
    s.authenticate(ServerAuth::Trust).unwrap();
    sent(&mut s);
    refused!(s.authenticate(ServerAuth::Trust));
    assert_eq!(drain(&mut s), (vec![ServerEvent::Authenticated], None));
    assert!(s.is_ready());

    // Invalid values are refused before anything is queued.
    let mut s = ready();
    s.receive(&query("SELECT 1"));
    drain(&mut s);
    assert!(matches!(
        s.command_complete("a\0b"),
        Err(UsageError::Encode(_))
    ));
    assert!(matches!(
        s.parameter_status("a\0", "b"),
        Err(UsageError::Encode(_))
    ));
    assert!(!s.wants_write());
    s.command_complete("SELECT 0").unwrap();
}
