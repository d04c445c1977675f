//! A client written by hand, for tests of the `Server` alone: the bytes of start-up packets and
//! frontend messages, built here rather than by the crate's encoder, and helpers that drain the
//! server's events and decode what it queued.

use pgproto::auth::ScramVerifier;
use pgproto::{
    Authentication, BackendDecoder, BackendMessage, Error, ErrorFields, FieldCode, FrontendMessage,
    Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus, UsageError,
};

// ---------------------------------------------------------------------------------------------
// Hand-made frames
// ---------------------------------------------------------------------------------------------

/// A tagged frame: type byte, length word, body.
pub(crate) fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An untagged start-up packet: length word, 32-bit code, body.
pub(crate) fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32 + 8).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(crate) fn startup(major: u16, minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
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

pub(crate) fn alice() -> Vec<u8> {
    startup(3, 0, &[("user", "alice")])
}

pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
pub(crate) const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

pub(crate) fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub(crate) fn query(sql: &str) -> Vec<u8> {
    frame(b'Q', &cstr(sql))
}

/// Parse of the unnamed statement with no parameter types.
pub(crate) fn parse(sql: &str) -> Vec<u8> {
    let mut body = cstr("");
    body.extend_from_slice(&cstr(sql));
    body.extend_from_slice(&[0, 0]);
    frame(b'P', &body)
}

/// Bind of the unnamed portal to the unnamed statement, no parameters.
pub(crate) fn bind() -> Vec<u8> {
    frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0])
}

pub(crate) fn describe_portal() -> Vec<u8> {
    frame(b'D', b"P\0")
}

pub(crate) fn execute() -> Vec<u8> {
    frame(b'E', &[0, 0, 0, 0, 0])
}

pub(crate) fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

pub(crate) fn flush() -> Vec<u8> {
    frame(b'H', &[])
}

pub(crate) fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = cstr(mechanism);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    frame(b'p', &body)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Events until `Ok(None)` or an error.
pub(crate) fn drain(s: &mut Server) -> (Vec<ServerEvent>, Option<Error>) {
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
pub(crate) fn sent(s: &mut Server) -> Vec<BackendMessage<'static>> {
    sent_with(s, BackendDecoder::new())
}

pub(crate) fn sent_with(s: &mut Server, mut dec: BackendDecoder) -> Vec<BackendMessage<'static>> {
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
pub(crate) fn fatal(s: &mut Server, code: &str) -> ErrorFields {
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
pub(crate) fn assert_sticky(s: &mut Server, e: &Error) {
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

pub(crate) fn err_fields(code: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, "ERROR"),
        (FieldCode::Code, code),
        (FieldCode::Message, "it failed"),
    ])
    .unwrap()
}

/// A server past a trusting start-up, with its output drained.
pub(crate) fn ready_server(config: ServerConfig) -> Server {
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

pub(crate) fn ready() -> Server {
    ready_server(ServerConfig::default())
}

pub(crate) fn message(e: &ServerEvent) -> &FrontendMessage<'static> {
    match e {
        ServerEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

pub(crate) fn verifier() -> ScramVerifier {
    ScramVerifier::new("pencil", b"0123456789abcdef", 4096).unwrap()
}

/// A server that has sent AuthenticationSASL; with `tls`, over "TLS" with a certificate hash.
pub(crate) fn scram_server(verifier: Option<ScramVerifier>, tls: bool) -> (Server, Vec<u8>) {
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
