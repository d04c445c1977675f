//! The `Server` against a well-behaved client written by hand, in memory: direct TLS, protocol
//! version negotiation, CancelRequest, a SCRAM exchange that fails, and the query phase (the
//! discard-until-Sync rule, COPY FROM STDIN, Terminate and EOF). Every byte the "client" sends is
//! written by hand (`tests/support/scripted_client.rs`); what the server queues is decoded with
//! `BackendDecoder` and checked. Hostile and broken clients are in `server_hostile.rs`.

mod support;

use bytes::Bytes;
use pgproto::auth::{ChannelBinding, ScramClient, ScramVerifier};
use pgproto::{
    Authentication, BackendDecoder, BackendMessage, CopyResponse, DecodeError, Error, Format,
    FrontendMessage, ProtocolVersion, Server, ServerAuth, ServerConfig, ServerEvent,
    TransactionStatus, UsageError,
};
use support::scripted_client::*;

// ---------------------------------------------------------------------------------------------
// Encryption requests
// ---------------------------------------------------------------------------------------------

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
    // The newest version not above the request, as PostgreSQL 18 sends it: a 3.1 request goes
    // on as 3.1 (which behaves as 3.0).
    for (minor, newest, version) in [
        (1, 1, ProtocolVersion::V3_0),
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

    // 3.0, 3.1 or 3.2 without options: no negotiation (PostgreSQL 18 answers 3.1 with no
    // NegotiateProtocolVersion and a 4-byte key).
    for minor in [0, 1, 2] {
        let mut s = Server::new(ServerConfig::default());
        s.receive(&startup(3, minor, &[("user", "alice")]));
        assert!(drain(&mut s).1.is_none());
        s.authenticate(ServerAuth::Trust).unwrap();
        let mut dec = BackendDecoder::new();
        dec.set_protocol_version(ProtocolVersion::V3_2);
        let msgs = sent_with(&mut s, dec);
        assert_eq!(msgs[0], BackendMessage::Authentication(Authentication::Ok));
        let BackendMessage::BackendKeyData(k) = &msgs[msgs.len() - 2] else {
            panic!("{msgs:?}")
        };
        assert_eq!(
            k.secret_key().len(),
            if minor == 2 { 32 } else { 4 },
            "3.{minor}"
        );
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

    // Unlike the body of a discarded message, the Sync that ends it is decoded: a malformed one
    // is refused by the machine itself (ERROR 08P01, ReadyForQuery), which ends the discard.
    let mut s = ready();
    let mut bytes = execute();
    bytes.extend(frame(b'S', b"x"));
    s.receive(&bytes);
    drain(&mut s);
    s.error_response(&err_fields("34000")).unwrap();
    let (events, err) = drain(&mut s);
    assert!(err.is_none(), "{err:?}");
    assert!(
        matches!(events[..], [ServerEvent::Refused(_)]),
        "{events:?}"
    );
    let msgs = sent(&mut s);
    assert_eq!(
        msgs.last(),
        Some(&BackendMessage::ReadyForQuery(TransactionStatus::Idle))
    );
}

#[test]
fn flush_and_sync_during_copy_in_are_ignored() {
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
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
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    s.receive(&frame(b'f', &cstr("client gave up")));
    let (events, _) = drain(&mut s);
    assert!(matches!(message(&events[0]), FrontendMessage::CopyFail(_)));
    s.error_response(&err_fields("57014")).unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();

    // A Query in the middle of COPY FROM STDIN is a protocol violation (ERROR then FATAL:
    // server_hostile::another_message_during_copy_in_is_an_error_then_fatal).
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    sent(&mut s);
    s.receive(&query("SELECT 1"));
    let err = s.poll_event().unwrap_err();
    assert!(matches!(err, Error::UnexpectedMessage { .. }), "{err:?}");
    assert_eq!(err.sqlstate(), "08P01");
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

/// `poll_message` lends only a whole, valid message that starts a request while nothing else is
/// pending, and consumes nothing otherwise: `poll_event` then hands out the same messages.
#[test]
fn poll_message_lends_requests_only_when_idle() {
    let mut s = ready();
    s.receive(&[parse("SELECT 1"), flush(), bind(), sync()].concat());
    let Some(FrontendMessage::Parse(p)) = s.poll_message() else {
        panic!("no Parse");
    };
    assert_eq!(p.query(), b"SELECT 1");
    // The Parse is being answered: nothing more until it is.
    assert!(s.poll_message().is_none());
    assert_eq!(s.poll_event(), Ok(None));
    s.parse_complete().unwrap();
    // A Flush starts no request: it is poll_event's.
    assert!(s.poll_message().is_none());
    assert!(matches!(
        s.poll_event(),
        Ok(Some(ServerEvent::Message(FrontendMessage::Flush)))
    ));
    assert!(matches!(s.poll_message(), Some(FrontendMessage::Bind(_))));
    // An error answer starts the discard until Sync: the Sync then comes through poll_event.
    s.error_response(&err_fields("42P01")).unwrap();
    assert!(s.poll_message().is_none());
    assert!(matches!(
        s.poll_event(),
        Ok(Some(ServerEvent::Message(FrontendMessage::Sync)))
    ));
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    // A malformed request is left for poll_event, which answers it (ERROR 08P01 and
    // ReadyForQuery for a Sync) and reports it.
    s.receive(&frame(b'S', b"x"));
    assert!(s.poll_message().is_none());
    assert!(matches!(s.poll_event(), Ok(Some(ServerEvent::Refused(_)))));
}
