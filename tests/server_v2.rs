//! The `Server` over protocol 2.0: a 2.0 client's bytes written by hand, and our own `Client`
//! over 2.0 in memory. The application gives the same answers as over 3.0; the bytes on the
//! wire are PostgreSQL 13's (CursorResponse before RowDescription, AsciiRow, errors as
//! `SEVERITY:  message\n`, no ParameterStatus...). The live tests with libpq 13 are in
//! `live_v2_server.rs`.

use bytes::BytesMut;
use pgproto::v2::{PasswordPacket, StartupPacket, COPY_END};
use pgproto::{
    Client, ClientConfig, ClientEvent, CopyResponse, Encode, Error, ErrorFields, FieldCode,
    FieldDescription, Format, FrontendMessage, FunctionCall, ProtocolVersion, RowDescription,
    Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus, UsageError,
};

fn v2_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.min_protocol_version = ProtocolVersion::V2_0;
    c
}

fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    StartupPacket::new(ProtocolVersion::V2_0, database, user, "")
        .unwrap()
        .encode(&mut out);
    out.to_vec()
}

/// Drains events (made owned) until `Ok(None)` or an error.
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

fn sent(s: &mut Server) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

/// A 2.0 server session past start-up (trust), its start-up bytes checked.
fn connected() -> Server {
    let mut s = Server::new(v2_config());
    s.receive(&startup_packet("alice", ""));
    let (events, err) = drain(&mut s);
    assert_eq!(err, None);
    let [ServerEvent::Startup { message, version }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(*version, ProtocolVersion::V2_0);
    assert_eq!(message.param("user"), Some(&b"alice"[..]));
    assert_eq!(
        message.param("database"),
        Some(&b"alice"[..]),
        "the user's name"
    );
    assert_eq!(s.user(), "alice");
    s.authenticate(ServerAuth::Trust).unwrap();
    let (events, err) = drain(&mut s);
    assert_eq!((events, err), (vec![ServerEvent::Authenticated], None));
    let bytes = sent(&mut s);
    // AuthenticationOk, BackendKeyData (pid, 4-byte key), ReadyForQuery: no ParameterStatus.
    assert_eq!(bytes.len(), 5 + 9 + 1, "{bytes:?}");
    assert_eq!(&bytes[..6], b"R\0\0\0\0K");
    assert_eq!(bytes.last(), Some(&b'Z'));
    let key = s.backend_key().unwrap();
    assert_eq!(&bytes[6..10], key.process_id().to_be_bytes());
    assert_eq!(&bytes[10..14], key.secret_key());
    assert!(s.is_ready());
    assert_eq!(s.protocol_version(), ProtocolVersion::V2_0);
    s
}

fn field(
    name: &'static [u8],
    type_oid: u32,
    type_size: i16,
    format: Format,
) -> FieldDescription<'static> {
    FieldDescription {
        name,
        table_oid: 0,
        column_id: 0,
        type_oid,
        type_size,
        type_modifier: -1,
        format,
    }
}

/// The next event, which must be a Query; its text.
fn next_query(s: &mut Server) -> Vec<u8> {
    match s.poll_event().unwrap() {
        Some(ServerEvent::Message(FrontendMessage::Query(q))) => q.sql().to_vec(),
        other => panic!("{:?}", other.map(ServerEvent::into_owned)),
    }
}

#[test]
fn a_query_answered_as_postgresql_13_answers_it() {
    let mut s = connected();
    s.receive(b"Qselect 1 as a, null::int as b, 'x'::text;select 2\0");
    assert_eq!(
        next_query(&mut s),
        b"select 1 as a, null::int as b, 'x'::text;select 2"
    );
    assert_eq!(s.poll_event().unwrap(), None, "one request at a time");
    let d = RowDescription::new(&[
        field(b"a", 23, 4, Format::Text),
        field(b"b", 23, 4, Format::Text),
        field(b"text", 25, -1, Format::Text),
    ])
    .unwrap();
    s.row_description(&d).unwrap();
    s.data_row(&[Some(b"1"), None, Some(b"x")]).unwrap();
    s.command_complete("SELECT 1").unwrap();
    s.row_description(&RowDescription::new(&[field(b"?column?", 23, 4, Format::Text)]).unwrap())
        .unwrap();
    s.data_row(&[Some(b"2")]).unwrap();
    s.command_complete("SELECT 1").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    // Byte for byte what PostgreSQL 13.23 sent for this query.
    assert_eq!(
        sent(&mut s),
        b"Pblank\0T\0\x03a\0\0\0\0\x17\0\x04\xff\xff\xff\xffb\0\0\0\0\x17\0\x04\xff\xff\xff\xff\
text\0\0\0\0\x19\xff\xff\xff\xff\xff\xffD\xa0\0\0\0\x051\0\0\0\x05xCSELECT 1\0Pblank\0T\0\x01?column?\
\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\0\0\0\x052CSELECT 1\0Z"
    );
    // Answers the 2.0 table does not allow are refused, and nothing is sent.
    assert!(matches!(
        s.data_row(&[None]),
        Err(UsageError::NotAllowed { .. })
    ));
    s.receive(b"Q\0");
    assert_eq!(next_query(&mut s), b"");
    assert!(s.data_row(&[None]).is_err(), "a row without a description");
    assert!(s.ready_for_query(TransactionStatus::Idle).is_ok());
    assert_eq!(sent(&mut s), b"Z");
    s.receive(b"Qx\0");
    next_query(&mut s);
    s.empty_query_response().unwrap();
    for refused in [
        s.parse_complete(),
        s.bind_complete(),
        s.no_data(),
        s.portal_suspended(),
        s.copy_both_response(&CopyResponse::new(Format::Text, &[]).unwrap()),
        s.copy_in_response(&CopyResponse::new(Format::Binary, &[]).unwrap()),
    ] {
        assert!(
            matches!(refused, Err(UsageError::NotAllowed { .. })),
            "{refused:?}"
        );
    }
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(sent(&mut s), b"I\0Z");
}

#[test]
fn errors_notices_notifications_in_2_0_form() {
    let mut s = connected();
    s.receive(b"Qselect * from nonexist\0");
    next_query(&mut s);
    let e = ErrorFields::new([
        (FieldCode::Severity, "ERROR"),
        (FieldCode::Code, "42P01"),
        (FieldCode::Message, "relation \"nonexist\" does not exist"),
        (FieldCode::Position, "15"),
    ])
    .unwrap();
    s.notice(&ErrorFields::simple("NOTICE", "00000", "hi 1"))
        .unwrap();
    s.error_response(&e).unwrap();
    assert!(
        s.command_complete("SELECT 1").is_err(),
        "only ReadyForQuery after an error"
    );
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    s.notification(77, "chan", "payload").unwrap();
    s.parameter_status("TimeZone", "UTC").unwrap();
    assert_eq!(
        sent(&mut s),
        b"NNOTICE:  hi 1\n\0EERROR:  relation \"nonexist\" does not exist at character 15\n\0Z\
A\0\0\0\x4dchan\0"
    );
    // A plain ERROR with nothing to answer is refused; a FATAL ends the session.
    assert!(s
        .error_response(&ErrorFields::simple("ERROR", "XX000", "x"))
        .is_err());
    s.fatal(&ErrorFields::simple(
        "FATAL",
        "57P01",
        "terminating connection due to administrator command",
    ))
    .unwrap();
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  terminating connection due to administrator command\n\0"
    );
    assert!(!s.is_ready());
}

#[test]
fn copy_both_ways() {
    let mut s = connected();
    let text = CopyResponse::new(Format::Text, &[]).unwrap();
    s.receive(b"Qcopy t to stdout\0");
    next_query(&mut s);
    s.copy_out_response(&text).unwrap();
    s.copy_data(b"1\ta\n").unwrap();
    s.copy_data(b"2\t\\N").unwrap();
    s.copy_done().unwrap();
    s.command_complete("COPY 2").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(sent(&mut s), b"H1\ta\n2\t\\N\n\\.\nCCOPY 2\0Z");

    s.receive(b"Qcopy t from stdin\0");
    next_query(&mut s);
    s.copy_in_response(&text).unwrap();
    assert_eq!(sent(&mut s), b"G");
    s.receive(b"3\tc\n4\t\\N\n\\.\nQselect 1\0");
    let (events, err) = drain(&mut s);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            ServerEvent::Message(FrontendMessage::CopyData(
                pgproto::CopyData::new(bytes::Bytes::from_static(b"3\tc\n")).unwrap()
            )),
            ServerEvent::Message(FrontendMessage::CopyData(
                pgproto::CopyData::new(bytes::Bytes::from_static(b"4\t\\N\n")).unwrap()
            )),
            ServerEvent::Message(FrontendMessage::CopyDone),
        ]
    );
    s.command_complete("COPY 2").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(next_query(&mut s), b"select 1", "the Query after the data");

    // An error in COPY FROM STDIN before the client's `\.`: as PostgreSQL 13, FATAL and the end.
    let mut s = connected();
    s.receive(b"Qcopy t from stdin\0");
    next_query(&mut s);
    s.copy_in_response(&text).unwrap();
    s.receive(b"x\n");
    drain(&mut s);
    s.error_response(&ErrorFields::simple(
        "ERROR",
        "22P02",
        "invalid input syntax for type integer: \"x\"",
    ))
    .unwrap();
    assert_eq!(
        sent(&mut s),
        [
            &b"G"[..],
            b"EERROR:  invalid input syntax for type integer: \"x\"\n\0",
            b"EFATAL:  terminating connection because protocol synchronization was lost\n\0"
        ]
        .concat()
    );
    assert!(s.ready_for_query(TransactionStatus::Idle).is_err());
}

#[test]
fn function_calls_and_terminate() {
    let mut s = connected();
    s.receive(b"F\0\0\0\x05\x25\0\0\0\x02\0\0\0\x04abcd\xff\xff\xff\xff");
    let (events, err) = drain(&mut s);
    assert_eq!(err, None);
    let binary = &[Format::Binary];
    assert_eq!(
        events,
        [ServerEvent::Message(FrontendMessage::FunctionCall(
            FunctionCall::new(1317, binary, &[Some(&b"abcd"[..]), None], Format::Binary).unwrap()
        ))]
    );
    s.function_call_response(Some(&4i32.to_be_bytes())).unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    s.receive(b"F\0\0\0\0\x01\0\0\0\0");
    drain(&mut s);
    s.function_call_response(None).unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(sent(&mut s), b"VG\0\0\0\x04\0\0\0\x040ZV0Z");
    s.receive(b"X");
    let (events, err) = drain(&mut s);
    assert_eq!((events, err), (vec![ServerEvent::Terminate], None));
}

fn password_session(auth: ServerAuth) -> (Server, Vec<u8>) {
    let mut s = Server::new(v2_config());
    s.receive(&startup_packet("alice", "shop"));
    drain(&mut s);
    s.authenticate(auth).unwrap();
    let request = sent(&mut s);
    (s, request)
}

#[test]
fn passwords_and_refusals() {
    let stored = pgproto::auth::md5::stored_hash("alice", "secret");
    // Cleartext.
    let (mut s, request) = password_session(ServerAuth::Password {
        stored: Some(stored.clone()),
    });
    assert_eq!(request, b"R\0\0\0\x03");
    let mut p = BytesMut::new();
    PasswordPacket::new("secret").unwrap().encode(&mut p);
    s.receive(&p);
    let (events, err) = drain(&mut s);
    assert_eq!((events, err), (vec![ServerEvent::Authenticated], None));
    // MD5.
    let (mut s, request) = password_session(ServerAuth::Md5 {
        stored: Some(stored.clone()),
    });
    assert_eq!(&request[..5], b"R\0\0\0\x05");
    let salt = [request[5], request[6], request[7], request[8]];
    let mut p = BytesMut::new();
    PasswordPacket::new(pgproto::auth::md5::password_hash("alice", "secret", salt))
        .unwrap()
        .encode(&mut p);
    s.receive(&p);
    assert_eq!(drain(&mut s).0, [ServerEvent::Authenticated]);
    // A wrong password: PostgreSQL's FATAL, in 2.0's form.
    let (mut s, _) = password_session(ServerAuth::Password {
        stored: Some(stored),
    });
    let mut p = BytesMut::new();
    PasswordPacket::new("wrong").unwrap().encode(&mut p);
    s.receive(&p);
    assert!(matches!(drain(&mut s).1, Some(Error::Auth(_))));
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  password authentication failed for user \"alice\"\n\0"
    );
    // SCRAM cannot be done over 2.0: PostgreSQL 13's FATAL.
    let (mut s, request) = password_session(ServerAuth::Scram { verifier: None });
    assert_eq!(
        request,
        b"EFATAL:  SASL authentication is not supported in protocol version 2\n\0"
    );
    assert!(drain(&mut s).1.is_some());
    // reject: the application's FATAL, in 2.0's form.
    let mut s = Server::new(v2_config());
    s.receive(&startup_packet("alice", "nodb"));
    drain(&mut s);
    s.reject(&ErrorFields::simple(
        "FATAL",
        "3D000",
        "database \"nodb\" does not exist",
    ))
    .unwrap();
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  database \"nodb\" does not exist\n\0"
    );
    // No user name.
    let mut s = Server::new(v2_config());
    s.receive(&startup_packet("", "x"));
    assert!(matches!(drain(&mut s).1, Some(Error::Auth(_))));
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  no PostgreSQL user name specified in startup packet\n\0"
    );
}

#[test]
fn which_versions_a_server_accepts() {
    // By default (as PostgreSQL 14 and later), a 2.0 StartupPacket gets the old-style error.
    let mut s = Server::new(ServerConfig::default());
    s.receive(&startup_packet("alice", ""));
    assert!(matches!(
        drain(&mut s).1,
        Some(Error::UnsupportedProtocol { .. })
    ));
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.2\n\0"
    );
    // Told to behave as a server older than 7.4: a 3.0 StartupMessage gets the old-style error
    // (which makes libpq 13 fall back), after an SSLRequest answered as usual.
    let mut config = v2_config();
    config.max_protocol_version = ProtocolVersion::V2_0;
    let mut s = Server::new(config.clone());
    s.receive(b"\0\0\0\x08\x04\xd2\x16\x2f");
    assert_eq!(drain(&mut s).0, [ServerEvent::SslRequest]);
    s.accept_ssl(false).unwrap();
    assert_eq!(sent(&mut s), b"N");
    s.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    assert!(matches!(
        drain(&mut s).1,
        Some(Error::UnsupportedProtocol { .. })
    ));
    assert_eq!(
        sent(&mut s),
        b"EFATAL:  unsupported frontend protocol 3.0: server supports 2.0 to 2.0\n\0"
    );
    // ... and serves a 2.0 StartupPacket.
    let mut s = Server::new(config);
    s.receive(&startup_packet("alice", ""));
    assert!(matches!(drain(&mut s).0[..], [ServerEvent::Startup { .. }]));
    // A short one is zero-filled, as PostgreSQL 13 reads it: here the database field and the
    // user's first bytes.
    let mut short = (75u32).to_be_bytes().to_vec();
    short.extend_from_slice(&[0, 2, 0, 0]);
    short.extend_from_slice(&[0; 64]);
    short.extend_from_slice(b"bob");
    let mut s = Server::new(v2_config());
    s.receive(&short);
    let events = drain(&mut s).0;
    let [ServerEvent::Startup { message, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(message.param("user"), Some(&b"bob"[..]));
}

#[test]
fn protocol_violations_end_the_session_in_2_0_form() {
    // Parse is not a 2.0 message.
    let mut s = connected();
    s.receive(b"P\0select 1\0\0\0");
    assert!(matches!(drain(&mut s).1, Some(Error::Decode(_))));
    let bytes = sent(&mut s);
    assert!(
        bytes.starts_with(b"EFATAL:  invalid message from peer"),
        "{bytes:?}"
    );
    assert_eq!(bytes.last(), Some(&0));
    // A Query whose string never ends, past the limit.
    let mut config = v2_config();
    config.limits.frontend_large = 100;
    let mut s = Server::new(config);
    s.receive(&startup_packet("alice", ""));
    drain(&mut s);
    s.authenticate(ServerAuth::Trust).unwrap();
    drain(&mut s);
    s.receive(&[b'Q'; 200]);
    assert!(matches!(
        drain(&mut s).1,
        Some(Error::Decode(pgproto::DecodeError::TooLong { .. }))
    ));
    assert!(s.buffered_len() <= 101);
}

/// Moves bytes both ways until neither side has anything to say; returns the client's events.
fn drive(
    c: &mut Client,
    s: &mut Server,
    answer: &mut dyn FnMut(&mut Server, ServerEvent),
) -> Vec<ClientEvent> {
    let mut client_events = Vec::new();
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(b) = c.poll_transmit() {
            s.receive(&b);
            moved = true;
        }
        loop {
            let e = match s.poll_event() {
                Ok(Some(e)) => e.into_owned(),
                Ok(None) => break,
                Err(e) => panic!("server: {e}"),
            };
            moved = true;
            answer(s, e);
        }
        while let Some(b) = s.poll_transmit() {
            c.receive(&b);
            moved = true;
        }
        loop {
            match c.poll_event() {
                Ok(Some(e)) => {
                    moved = true;
                    client_events.push(e.into_owned())
                }
                Ok(None) => break,
                Err(e) => panic!("client: {e}"),
            }
        }
        if !moved {
            return client_events;
        }
    }
    panic!("the pair never settled");
}

/// A small application: trust, and each Query answered by its text.
fn app(s: &mut Server, e: ServerEvent) {
    let text = CopyResponse::new(Format::Text, &[]).unwrap();
    match e {
        ServerEvent::Startup { .. } => s.authenticate(ServerAuth::Trust).unwrap(),
        ServerEvent::Authenticated => {}
        ServerEvent::Message(FrontendMessage::Query(q)) => {
            match q.sql() {
                b"rows" => {
                    s.row_description(
                        &RowDescription::new(&[
                            field(b"n", 23, 4, Format::Text),
                            field(b"t", 25, -1, Format::Text),
                        ])
                        .unwrap(),
                    )
                    .unwrap();
                    s.data_row(&[Some(b"1"), None]).unwrap();
                    s.data_row(&[Some(b"2"), Some(b"two")]).unwrap();
                    s.command_complete("SELECT 2").unwrap();
                }
                b"fail" => s
                    .error_response(&ErrorFields::simple("ERROR", "22012", "division by zero"))
                    .unwrap(),
                b"out" => {
                    s.copy_out_response(&text).unwrap();
                    s.copy_data(b"a\n").unwrap();
                    s.copy_done().unwrap();
                    s.command_complete("COPY 1").unwrap();
                }
                b"in" => return s.copy_in_response(&text).unwrap(),
                b"notify" => {
                    s.command_complete("NOTIFY").unwrap();
                    s.notification(7, "chan", "dropped").unwrap();
                }
                other => s.command_complete(&String::from_utf8_lossy(other)).unwrap(),
            }
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        ServerEvent::Message(FrontendMessage::CopyData(_)) => {}
        ServerEvent::Message(FrontendMessage::CopyDone) => {
            s.command_complete("COPY 2").unwrap();
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        ServerEvent::Message(FrontendMessage::FunctionCall(f)) => {
            let arg = f
                .args()
                .iter()
                .next()
                .flatten()
                .map(<[u8]>::len)
                .unwrap_or(0);
            s.function_call_response(Some(&(arg as i32).to_be_bytes()))
                .unwrap();
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_client_and_server_over_2_0() {
    let mut config = ClientConfig::new("alice");
    config.min_protocol_version = ProtocolVersion::V2_0;
    config.max_protocol_version = ProtocolVersion::V2_0;
    let mut c = Client::new(config).unwrap();
    let mut s = Server::new(v2_config());
    let events = drive(&mut c, &mut s, &mut app);
    assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
    assert_eq!(c.backend_key(), s.backend_key());
    let ids = [
        c.query("rows").unwrap(),
        c.query("fail").unwrap(),
        c.query("out").unwrap(),
        c.query("notify").unwrap(),
    ];
    let events = drive(&mut c, &mut s, &mut app);
    let names = |id| {
        events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Response { request, message } if *request == id => {
                    Some(message.name())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(ids[0]),
        [
            "RowDescription",
            "DataRow",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    assert_eq!(names(ids[1]), ["ErrorResponse", "ReadyForQuery"]);
    assert_eq!(
        names(ids[2]),
        [
            "CopyOutResponse",
            "CopyData",
            "CopyDone",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    assert_eq!(names(ids[3]), ["CommandComplete", "ReadyForQuery"]);
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Notification(n) if n.channel() == b"chan" && n.payload().is_empty())));
    // COPY FROM STDIN.
    let id = c.query("in").unwrap();
    drive(&mut c, &mut s, &mut app);
    c.copy_data(b"1\n2").unwrap();
    c.copy_done().unwrap();
    let events = drive(&mut c, &mut s, &mut app);
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Response { request, message: pgproto::BackendMessage::CommandComplete(t) } if *request == id && t.tag() == b"COPY 2")));
    // A function call.
    let call =
        FunctionCall::new(1, &[Format::Binary], &[Some(&b"abc"[..])], Format::Binary).unwrap();
    c.function_call(&call).unwrap();
    let events = drive(&mut c, &mut s, &mut app);
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Response { message: pgproto::BackendMessage::FunctionCallResponse(Some(v)), .. } if v[..] == 3i32.to_be_bytes())));
    assert_eq!(c.pending_requests(), 0);
    assert_eq!(COPY_END, b"\\.\n");
}

#[test]
fn our_client_falls_back_against_a_2_0_only_server() {
    let mut config = ClientConfig::new("alice");
    config.min_protocol_version = ProtocolVersion::V2_0;
    config.max_protocol_version = ProtocolVersion::V3_2;
    let mut c = Client::new(config).unwrap();
    let mut server_config = v2_config();
    server_config.max_protocol_version = ProtocolVersion::V2_0;
    let mut s = Server::new(server_config.clone());
    // The 3.2 StartupMessage gets the old-style error; the client falls back. (The server's
    // error is its own, expected: drive it by hand.)
    while let Some(b) = c.poll_transmit() {
        s.receive(&b);
    }
    assert!(s.poll_event().is_err());
    while let Some(b) = s.poll_transmit() {
        c.receive(&b);
    }
    c.receive_eof();
    let (events, err) = {
        let mut v = Vec::new();
        let err = loop {
            match c.poll_event() {
                Ok(Some(e)) => v.push(e.into_owned()),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        (v, err)
    };
    assert_eq!(err, None);
    assert!(
        matches!(events[..], [ClientEvent::FallbackToV2 { .. }]),
        "{events:?}"
    );
    // A new connection: a new server machine.
    let mut s = Server::new(server_config);
    c.reconnected().unwrap();
    let events = drive(&mut c, &mut s, &mut app);
    assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
    assert_eq!(c.protocol_version(), ProtocolVersion::V2_0);
    let id = c.query("rows").unwrap();
    let events = drive(&mut c, &mut s, &mut app);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Response { request, .. } if *request == id))
            .count(),
        5
    );
}

mod arbitrary_input {
    //! No input makes a 2.0 `Server` panic; every message it hands out can be answered; an
    //! error is sticky, and answers are then refused.

    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Answers whatever comes, as a generic application would.
    fn answer(s: &mut Server, e: ServerEvent) {
        let text = CopyResponse::new(Format::Text, &[]).unwrap();
        match e {
            ServerEvent::Message(FrontendMessage::Query(q)) => {
                if q.sql().starts_with(b"copy") {
                    s.copy_in_response(&text).unwrap();
                } else {
                    s.command_complete("SELECT 0").unwrap();
                    s.ready_for_query(TransactionStatus::Idle).unwrap();
                }
            }
            ServerEvent::Message(FrontendMessage::FunctionCall(_)) => {
                s.function_call_response(None).unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            ServerEvent::Message(FrontendMessage::CopyDone) => {
                s.command_complete("COPY 0").unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_bytes_after_start_up(
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"Qcopy t from stdin\0"[..]),
                Just(&b"F\0\0\0\0\x01\0\0\0\x01"[..]),
                Just(&b"Qselect 1\0"[..]),
            ],
            bytes in vec(any::<u8>(), 0..200),
            chunk in 1usize..20,
        ) {
            let mut s = connected();
            let input = [prefix, &bytes[..]].concat();
            let mut fed = 0;
            for piece in input.chunks(chunk) {
                s.receive(piece);
                fed += piece.len();
                prop_assert!(s.buffered_len() <= fed);
                loop {
                    match s.poll_event() {
                        Ok(Some(e)) => {
                            let e = e.into_owned();
                            answer(&mut s, e);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            prop_assert_eq!(s.poll_event().map(|e| e.map(ServerEvent::into_owned)), Err(e.clone()));
                            s.receive(b"more");
                            prop_assert_eq!(s.poll_event().map(|e| e.map(ServerEvent::into_owned)), Err(e));
                            prop_assert!(s.ready_for_query(TransactionStatus::Idle).is_err());
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}
