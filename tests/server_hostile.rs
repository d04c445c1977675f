//! A hostile (or merely broken) client against the `Server`, in memory: oversized and unknown
//! frames, plaintext smuggled behind an encryption request, SCRAM downgrades and messages out of
//! phase. Every byte the "client" sends is written by hand (`tests/support/scripted_client.rs`);
//! what the server queues is decoded with `BackendDecoder` and checked, SQLSTATE included. Also
//! the application's own misuse of the `Server` API, which must return `UsageError` and change
//! nothing. The server's normal behaviour against a well-behaved scripted client is in
//! `server_scripted.rs`.

mod support;

use pgproto::auth::{ChannelBinding, ScramClient};
use pgproto::{
    Authentication, BackendDecoder, BackendMessage, CopyResponse, DecodeError, Error, Format,
    FrontendMessage, Limits, Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus,
    UsageError,
};
use support::scripted_client::*;

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
fn a_length_over_the_limit_is_54000_before_the_body_arrives_and_closes_silently() {
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
    // As PostgreSQL 18 ("invalid message length", logged only): nothing is sent.
    assert_eq!(sent(&mut s), []);
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
    assert_eq!(sent(&mut s), []);

    let mut s = ready();
    s.receive(b"S\0\0\x27\x11"); // 10,001
    assert_eq!(s.poll_event().unwrap_err().sqlstate(), "54000");

    // A length below 4 is a protocol violation, closed without a message too.
    let mut s = ready();
    s.receive(b"S\0\0\0\x03");
    let err = s.poll_event().unwrap_err();
    assert!(matches!(
        err,
        Error::Decode(DecodeError::InvalidLength { .. })
    ));
    assert_eq!(err.sqlstate(), "08P01");
    assert_eq!(sent(&mut s), []);
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
    // As PostgreSQL: FATAL 28000 "no PostgreSQL user name specified in startup packet".
    assert_eq!(err.sqlstate(), "28000");
    let f = fatal(&mut s, "28000");
    assert_eq!(
        f.message(),
        Some(&b"no PostgreSQL user name specified in startup packet"[..])
    );
}

#[test]
fn a_failed_random_source_fails_the_connection_before_anything_is_sent() {
    // Without entropy the cancel key would be guessable: no AuthenticationOk, a FATAL XX000.
    let mut config = ServerConfig::default();
    config.random = |_| false;
    let mut s = Server::new(config);
    s.receive(&alice());
    drain(&mut s);
    s.authenticate(ServerAuth::Trust).unwrap();
    let (events, err) = drain(&mut s);
    assert!(events.is_empty(), "{events:?}");
    assert!(matches!(err, Some(Error::Entropy { .. })), "{err:?}");
    fatal(&mut s, "XX000");
    assert!(s.backend_key().is_none());
    assert!(!s.is_ready());
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

    // Refused, the bytes are still unencrypted data after the SSL request: as PostgreSQL, `N`
    // then FATAL 08P01 ("received unencrypted data after SSL request"), and the injected
    // StartupMessage never becomes an event.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&bytes);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    let (events, err) = drain(&mut s);
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(
            err,
            Some(Error::BufferedBeforeEncryption { what: "SSL", .. })
        ),
        "{err:?}"
    );
    let mut dec = BackendDecoder::new();
    dec.expect_ssl_response();
    let msgs = sent_with(&mut s, dec);
    assert_eq!(msgs[0], BackendMessage::SslResponse { accepted: false });
    let BackendMessage::ErrorResponse(f) = &msgs[1] else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        (f.severity(), f.code()),
        (Some(&b"FATAL"[..]), Some(&b"08P01"[..]))
    );

    // A TLS ClientHello sent after the `N` arrived is read as a start-up packet whose length
    // is out of range: PostgreSQL only logs it and closes, sending nothing.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&SSL_REQUEST);
    drain(&mut s);
    s.accept_ssl(false).unwrap();
    let mut dec = BackendDecoder::new();
    dec.expect_ssl_response();
    assert_eq!(
        sent_with(&mut s, dec),
        [BackendMessage::SslResponse { accepted: false }]
    );
    s.receive(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
    let (_, err) = drain(&mut s);
    assert!(matches!(err, Some(Error::Decode(_))), "{err:?}");
    assert!(s.poll_transmit().is_none(), "nothing is sent");

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
fn a_second_sslrequest_is_refused_as_postgresql_does() {
    // PostgreSQL takes the second request's code for a protocol version: FATAL 0A000.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&SSL_REQUEST);
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    s.receive(&SSL_REQUEST);
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "0A000");
}

// ---------------------------------------------------------------------------------------------
// SCRAM
// ---------------------------------------------------------------------------------------------

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
// Messages out of phase
// ---------------------------------------------------------------------------------------------

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
    let copy = CopyResponse::new(Format::Text, &[]).unwrap();

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
    // Idle: an ERROR answers nothing (a client would pin it on its next request); a FATAL is
    // what a server sends before it closes.
    refused!(s.error_response(&err_fields("XX000")));
    s.error_response(&pgproto::ErrorFields::simple(
        "FATAL",
        "57P01",
        "terminating",
    ))
    .unwrap();
    assert!(matches!(
        &sent(&mut s)[..],
        [BackendMessage::ErrorResponse(_)]
    ));

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

#[test]
fn answers_follow_the_protocol_table() {
    use pgproto::{FieldDescription, RowDescription};
    let description = RowDescription::new(&[FieldDescription::new(b"a", 25)]).unwrap();
    // Describe of a statement: ParameterDescription first (as PostgreSQL), then RowDescription.
    let mut s = ready();
    s.receive(&frame(b'D', b"Ss\0"));
    let (events, err) = drain(&mut s);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 1);
    let before = s.wants_write();
    assert!(matches!(
        s.row_description(&description),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(s.no_data(), Err(UsageError::NotAllowed { .. })));
    assert_eq!(s.wants_write(), before, "a refused answer sends nothing");
    s.parameter_description(&[23]).unwrap();
    assert!(matches!(
        s.parameter_description(&[23]),
        Err(UsageError::NotAllowed { .. })
    ));
    s.row_description(&description).unwrap();
    // Answered: nothing more is allowed until the next message.
    assert!(matches!(s.no_data(), Err(UsageError::NotAllowed { .. })));

    // FunctionCall: one result, then ReadyForQuery; not two results, not ReadyForQuery first.
    let mut s = ready();
    s.receive(&frame(b'F', b"\0\0\0\x01\0\0\0\0\0\0"));
    let (events, err) = drain(&mut s);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 1);
    assert!(matches!(
        s.ready_for_query(TransactionStatus::Idle),
        Err(UsageError::NotAllowed { .. })
    ));
    s.function_call_response(Some(b"1")).unwrap();
    assert!(matches!(
        s.function_call_response(Some(b"2")),
        Err(UsageError::NotAllowed { .. })
    ));
    s.ready_for_query(TransactionStatus::Idle).unwrap();

    // After an error in a simple Query the rest of the query string is skipped: only
    // ReadyForQuery may follow (no COPY, no further result set).
    let mut s = ready();
    s.receive(&frame(b'Q', b"SELECT 1/0; COPY t FROM STDIN\0"));
    drain(&mut s);
    s.error_response(&err_fields("22012")).unwrap();
    assert!(matches!(
        s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap()),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(
        s.row_description(&description),
        Err(UsageError::NotAllowed { .. })
    ));
    s.ready_for_query(TransactionStatus::Idle).unwrap();
}

#[test]
fn encryption_requests_are_allowed_once_and_never_inside_encryption() {
    use pgproto::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
    let ssl = || packet(SSL_REQUEST_CODE, &[]);
    let gss = || packet(GSSENC_REQUEST_CODE, &[]);

    // The same request again after a refusal: FATAL 0A000 (PostgreSQL reads its code as an
    // unsupported protocol version), and the application never sees it.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&ssl());
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    let mut dec = BackendDecoder::new();
    dec.expect_ssl_response();
    assert_eq!(
        sent_with(&mut s, dec),
        [BackendMessage::SslResponse { accepted: false }]
    );
    s.receive(&ssl());
    let (events, err) = drain(&mut s);
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(err, Some(Error::UnsupportedProtocol { .. })),
        "{err:?}"
    );
    fatal(&mut s, "0A000");

    // After a refused GSSENCRequest, an SSLRequest is still offered to the application.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&gss());
    assert_eq!(drain(&mut s).0, [ServerEvent::GssEncRequest]);
    s.accept_gssenc(false).unwrap();
    s.receive(&ssl());
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);

    // Once TLS began through SSLRequest, neither request may come again.
    for again in [ssl(), gss()] {
        let mut s = Server::new(ServerConfig::default());
        s.receive(&ssl());
        drain(&mut s);
        s.accept_ssl(true).unwrap();
        s.tls_established(None).unwrap();
        s.receive(&again);
        let (events, err) = drain(&mut s);
        assert!(events.is_empty(), "{events:?}");
        assert!(
            matches!(err, Some(Error::UnsupportedProtocol { .. })),
            "{err:?}"
        );
    }

    // Inside direct TLS an SSLRequest is answered `N` by the machine and start-up goes on.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&[0x16, 3, 1]);
    assert_eq!(drain(&mut s).0, [ServerEvent::DirectTls]);
    let _ = s.take_buffered();
    s.tls_established(None).unwrap();
    s.receive(&ssl());
    let (events, err) = drain(&mut s);
    assert!(events.is_empty() && err.is_none(), "{events:?} {err:?}");
    let mut dec = BackendDecoder::new();
    dec.expect_ssl_response();
    assert_eq!(
        sent_with(&mut s, dec),
        [BackendMessage::SslResponse { accepted: false }]
    );
    s.receive(&alice());
    assert!(matches!(drain(&mut s).0[..], [ServerEvent::Startup { .. }]));

    // A CancelRequest whose key is 0, 3 or 257 bytes long: nothing is ever sent back.
    for key_len in [0usize, 3, 257] {
        let mut s = Server::new(ServerConfig::default());
        let mut body = 42i32.to_be_bytes().to_vec();
        body.extend(std::iter::repeat_n(7u8, key_len));
        s.receive(&packet(CANCEL_REQUEST_CODE, &body));
        let (events, err) = drain(&mut s);
        assert!(events.is_empty(), "{key_len}: {events:?}");
        assert!(err.is_some(), "{key_len}");
        assert!(s.poll_transmit().is_none(), "{key_len}: nothing sent");
    }
}

#[test]
fn another_message_during_copy_in_is_an_error_then_fatal() {
    // PostgreSQL 18 has read only the type byte: ERROR 08P01 for the message, then FATAL 08P01
    // (protocol synchronization lost), and the connection ends.
    let mut s = ready();
    s.receive(&query("COPY t FROM STDIN"));
    drain(&mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    sent(&mut s);
    let mut bytes = frame(b'd', b"1\n");
    bytes.extend(query("SELECT 1"));
    s.receive(&bytes);
    let (events, err) = drain(&mut s);
    assert_eq!(
        events.len(),
        1,
        "the CopyData before it still arrives: {events:?}"
    );
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "Query",
                ..
            })
        ),
        "{err:?}"
    );
    let msgs = sent(&mut s);
    let severities_and_codes: Vec<_> = msgs
        .iter()
        .map(|m| match m {
            BackendMessage::ErrorResponse(f) => (
                f.severity().unwrap_or_default().to_vec(),
                f.code().unwrap_or_default().to_vec(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        severities_and_codes,
        [
            (b"ERROR".to_vec(), b"08P01".to_vec()),
            (b"FATAL".to_vec(), b"08P01".to_vec())
        ]
    );
    assert!(!s.is_ready());
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies in the query phase
// ---------------------------------------------------------------------------------------------

#[test]
fn a_malformed_extended_query_message_is_an_error_then_discard_until_sync() {
    // As PostgreSQL 18: a Parse whose body does not decode gets ERROR 08P01 (not FATAL), and
    // everything up to Sync is skipped unparsed, malformed or not; the session goes on.
    for bad in [frame(b'P', b"abc"), frame(b'B', b"\0"), frame(b'H', b"x")] {
        let mut s = ready();
        let mut bytes = bad.clone();
        bytes.extend(frame(b'P', b"no nul here"));
        bytes.extend(execute());
        bytes.extend(sync());
        bytes.extend(query("SELECT 1"));
        s.receive(&bytes);
        let (events, err) = drain(&mut s);
        assert!(err.is_none(), "{bad:?}: {err:?}");
        // The application learns of the error (it aborts its transaction), then gets the Sync.
        assert!(
            matches!(
                events[..],
                [
                    ServerEvent::Refused(_),
                    ServerEvent::Message(FrontendMessage::Sync)
                ]
            ),
            "{bad:?}: {events:?}"
        );
        assert_eq!(s.discarded(), 3, "{bad:?}");
        s.ready_for_query(TransactionStatus::Idle).unwrap();
        let (events, err) = drain(&mut s);
        assert!(err.is_none());
        assert!(matches!(message(&events[0]), FrontendMessage::Query(_)));
        let msgs = sent(&mut s);
        let BackendMessage::ErrorResponse(f) = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!(f.severity(), Some(&b"ERROR"[..]));
        assert_eq!(f.code(), Some(&b"08P01"[..]));
        assert_eq!(
            msgs[1..],
            [BackendMessage::ReadyForQuery(TransactionStatus::Idle)]
        );
    }

    // A malformed simple Query or Sync: ERROR 08P01 and ReadyForQuery, as PostgreSQL 18; the
    // status is `E` inside a transaction block (the error aborted it), `I` outside; the
    // application is told, and the session goes on.
    for (status, after) in [
        (TransactionStatus::Idle, TransactionStatus::Idle),
        (TransactionStatus::InTransaction, TransactionStatus::Failed),
    ] {
        for bad in [frame(b'Q', b"no nul"), frame(b'S', b"x")] {
            let mut s = ready();
            s.receive(&query("BEGIN"));
            drain(&mut s);
            s.command_complete("BEGIN").unwrap();
            s.ready_for_query(status).unwrap();
            sent(&mut s);
            s.receive(&[bad.clone(), query("SELECT 1")].concat());
            let (events, err) = drain(&mut s);
            assert!(err.is_none(), "{bad:?}: {err:?}");
            assert!(
                matches!(
                    events[..],
                    [
                        ServerEvent::Refused(
                            DecodeError::MissingNul { .. } | DecodeError::TrailingBytes { .. }
                        ),
                        ServerEvent::Message(FrontendMessage::Query(_))
                    ]
                ),
                "{bad:?}: {events:?}"
            );
            let msgs = sent(&mut s);
            let BackendMessage::ErrorResponse(f) = &msgs[0] else {
                panic!("{msgs:?}")
            };
            assert_eq!(
                (f.severity(), f.code()),
                (Some(&b"ERROR"[..]), Some(&b"08P01"[..]))
            );
            assert_eq!(msgs[1..], [BackendMessage::ReadyForQuery(after)]);
            assert_eq!(s.transaction_status(), after);
        }
    }

    // Pipelining, with a request still being answered, a malformed message ends the
    // connection: its error may not cut into the answers.
    let mut config = ServerConfig::default();
    config.pipeline_depth = 4;
    let mut s = ready_server(config);
    s.receive(&[query("SELECT 1"), frame(b'Q', b"no nul")].concat());
    let (events, err) = drain(&mut s);
    assert!(matches!(err, Some(Error::Decode(_))), "{events:?} {err:?}");
}

/// The application's DataRows must have the column count the result announced, as the client
/// checks it (libpq refuses the others): a RowDescription in a Query, the answer to a Describe
/// of the portal just before an Execute, or else the result's first row. A refused row sends
/// nothing and changes nothing.
#[test]
fn data_rows_must_match_what_announced_them() {
    use pgproto::{FieldDescription, RowDescription};
    let two = RowDescription::new(&[FieldDescription::new(b"a", 25); 2]).unwrap();
    let field_count = |r: Result<(), UsageError>, expected: Option<u16>, received: u16| {
        assert_eq!(r, Err(UsageError::FieldCount { expected, received }));
    };

    // A Query: no row before the RowDescription, none of another width, none after the
    // result set's CommandComplete.
    let mut s = ready();
    s.receive(&query("SELECT a, b FROM t; SELECT 1"));
    drain(&mut s);
    field_count(s.data_row(&[Some(b"1")]), None, 1);
    s.row_description(&two).unwrap();
    field_count(s.data_row(&[Some(b"1")]), Some(2), 1);
    assert_eq!(sent(&mut s), [BackendMessage::RowDescription(two.clone())]);
    s.data_row(&[Some(b"1"), None]).unwrap();
    s.command_complete("SELECT 1").unwrap();
    field_count(s.data_row(&[Some(b"1"), None]), None, 2);
    s.ready_for_query(TransactionStatus::Idle).unwrap();

    // Bind, Describe (portal), Execute: the Describe's answer counts; NoData allows no row.
    for described in [Some(&two), None] {
        s.receive(&[bind(), describe_portal(), execute(), sync()].concat());
        drain(&mut s);
        s.bind_complete().unwrap();
        drain(&mut s);
        match described {
            Some(d) => s.row_description(d).unwrap(),
            None => s.no_data().unwrap(),
        }
        drain(&mut s);
        let expected = described.map(|_| 2);
        field_count(s.data_row(&[None, None, None]), expected, 3);
        if described.is_some() {
            s.data_row(&[None, None]).unwrap();
        }
        s.command_complete("SELECT 1").unwrap();
        drain(&mut s);
        s.ready_for_query(TransactionStatus::Idle).unwrap();
        sent(&mut s);
    }

    // An Execute with no Describe before it: the first row sets the width.
    s.receive(&[bind(), execute(), sync()].concat());
    drain(&mut s);
    s.bind_complete().unwrap();
    drain(&mut s);
    s.data_row(&[None, None, None]).unwrap();
    field_count(s.data_row(&[None]), Some(3), 1);
    s.data_row(&[Some(b"x"), None, None]).unwrap();
    s.command_complete("SELECT 2").unwrap();
}
