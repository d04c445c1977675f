//! The `Server` primitives a proxy needs, in memory against this crate's `Client`: the start-up
//! under the application's control (its own ParameterStatus, NOTICE, FATAL after
//! AuthenticationOk, its own cancel key, the configuration chosen once the StartupMessage is
//! known), requests in flight (a pipeline handed out as it arrives, answers checked against the
//! queue, what is skipped after an error, COPY), and answers forwarded as frames, whole or in
//! pieces.

use bytes::BytesMut;
use pgproto::{
    BackendKeyData, BackendMessage, Bind, Client, ClientConfig, ClientEvent, CopyResponse, Encode,
    Error, ErrorFields, Format, FramePiece, FrontendMessage, Limits, ProtocolVersion, Relay,
    Server, ServerAuth, ServerConfig, ServerEvent, StartupEnd, Target, TransactionStatus,
    UsageError,
};

/// Moves the client's bytes to the server.
fn to_server(c: &mut Client, s: &mut Server) {
    while let Some(b) = c.poll_transmit() {
        s.receive(&b);
    }
}

/// Moves the server's bytes to the client and returns the client's events (owned).
fn to_client(s: &mut Server, c: &mut Client) -> Result<Vec<ClientEvent>, Error> {
    while let Some(b) = s.poll_transmit() {
        c.receive(&b);
    }
    let mut out = Vec::new();
    while let Some(e) = c.poll_event()? {
        out.push(e.into_owned());
    }
    Ok(out)
}

/// Every event the server hands out now (owned).
fn server_events(s: &mut Server) -> Vec<ServerEvent> {
    let mut out = Vec::new();
    while let Some(e) = s.poll_event().unwrap() {
        out.push(e.into_owned());
    }
    out
}

fn app_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.startup_end = StartupEnd::Application;
    config
}

/// A client and a server through authentication (trust); `after_auth` runs at
/// `ServerEvent::Authenticated`. Returns the client's events.
fn start(
    client: &mut Client,
    server: &mut Server,
    mut after_auth: impl FnMut(&mut Server),
) -> Result<Vec<ClientEvent>, Error> {
    let mut events = Vec::new();
    for _ in 0..10 {
        to_server(client, server);
        while let Some(e) = server.poll_event().unwrap() {
            match e {
                ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust).unwrap(),
                ServerEvent::Authenticated => after_auth(server),
                other => panic!("unexpected {other:?}"),
            }
        }
        events.extend(to_client(server, client)?);
        if client.is_ready() {
            break;
        }
    }
    Ok(events)
}

#[test]
fn application_ends_the_startup_with_its_parameters_notice_and_key() {
    let mut cc = ClientConfig::new("alice");
    cc.max_protocol_version = ProtocolVersion::V3_2;
    let mut client = Client::new(cc).unwrap();
    let mut server = Server::new(app_config());
    let key = BackendKeyData::new(4242, [7u8; 256]).unwrap();
    let events = start(&mut client, &mut server, |s| {
        assert!(s.awaits_startup_end());
        // Nothing but AuthenticationOk so far.
        s.parameter_status("server_version", "18.1 (upstream)")
            .unwrap();
        s.notice(&ErrorFields::simple("NOTICE", "00000", "via a proxy"))
            .unwrap();
        // Not a query answer yet.
        assert!(s.ready_for_query(TransactionStatus::Idle).is_err());
        s.finish_startup(Some(key.clone())).unwrap();
    })
    .unwrap();
    assert_eq!(client.parameter("server_version"), Some("18.1 (upstream)"));
    // The machine sent none of its configured parameters.
    assert_eq!(client.parameter("DateStyle"), None);
    assert!(events
        .iter()
        .any(|e| matches!(e, ClientEvent::Notice(f) if f.message() == Some(&b"via a proxy"[..]))));
    assert_eq!(client.backend_key(), Some(&key));
    assert_eq!(server.backend_key(), Some(&key));
    assert!(server.is_ready() && !server.awaits_startup_end());
    // And the session works.
    client.query("SELECT 1").unwrap();
    to_server(&mut client, &mut server);
    assert!(matches!(
        server_events(&mut server)[..],
        [ServerEvent::Message(FrontendMessage::Query(_))]
    ));
}

#[test]
fn fatal_after_authentication_ok() {
    let mut client = Client::new(ClientConfig::new("alice")).unwrap();
    let mut server = Server::new(app_config());
    let result = start(&mut client, &mut server, |s| {
        s.reject(&ErrorFields::simple(
            "FATAL",
            "3D000",
            "database \"nope\" does not exist",
        ))
        .unwrap();
    });
    // The client authenticated, then got the FATAL error before ReadyForQuery.
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("3D000") || err.to_string().contains("nope"),
        "{err}"
    );
    assert!(!server.is_ready());
    assert_eq!(server.finish_startup(None), Err(UsageError::Closed));
}

#[test]
fn finish_startup_checks_the_key_against_the_version() {
    let mut client = Client::new(ClientConfig::new("alice")).unwrap(); // 3.0
    let mut server = Server::new(app_config());
    start(&mut client, &mut server, |s| {
        let long = BackendKeyData::new(1, [1u8; 32]).unwrap();
        assert!(matches!(
            s.finish_startup(Some(long)),
            Err(UsageError::Encode(_))
        ));
        assert!(s.awaits_startup_end()); // nothing changed
        s.finish_startup(None).unwrap(); // a random 4-byte key
    })
    .unwrap();
    assert_eq!(client.backend_key().unwrap().secret_key().len(), 4);
    assert!(matches!(
        server.finish_startup(None),
        Err(UsageError::NotAllowed { .. })
    ));
}

#[test]
fn configuration_chosen_once_the_startup_message_is_known() {
    let mut cc = ClientConfig::new("bob");
    cc.database = Some("shop".into());
    let mut client = Client::new(cc).unwrap();
    let mut server = Server::new(ServerConfig::default());
    to_server(&mut client, &mut server);
    let Some(ServerEvent::Startup { message, .. }) = server.poll_event().unwrap() else {
        panic!()
    };
    let db = message.param("database").unwrap().to_vec();
    let mut config = ServerConfig::default();
    config.set_parameter(
        "server_version",
        &format!("18.1 for {}", String::from_utf8_lossy(&db)),
    );
    config.limits = Limits {
        frontend_large: 100,
        ..Limits::default()
    };
    server.configure(config).unwrap();
    server.authenticate(ServerAuth::Trust).unwrap();
    // Once authentication began, the configuration is fixed.
    assert!(matches!(
        server.configure(ServerConfig::default()),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(
        server.poll_event().unwrap(),
        Some(ServerEvent::Authenticated)
    ));
    to_client(&mut server, &mut client).unwrap();
    assert_eq!(client.parameter("server_version"), Some("18.1 for shop"));
    // The new limits hold: a Query over 100 bytes is refused.
    client.query(&"x".repeat(200)).unwrap();
    to_server(&mut client, &mut server);
    assert!(server.poll_event().is_err());
}

fn pipelined_pair(depth: usize) -> (Client, Server) {
    let mut config = ServerConfig::default();
    config.pipeline_depth = depth;
    let mut client = Client::new(ClientConfig::new("alice")).unwrap();
    let mut server = Server::new(config);
    start(&mut client, &mut server, |_| {}).unwrap();
    (client, server)
}

fn bind(statement: &str) -> Bind<'static> {
    Bind::new("", statement, &[], &[], &[Format::Text]).unwrap()
}

/// A whole frame's bytes.
fn frame(m: &BackendMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    out.to_vec()
}

#[test]
fn a_pipeline_is_handed_out_before_any_answer() {
    let (mut client, mut server) = pipelined_pair(64);
    for i in 0..3 {
        client.parse(&format!("s{i}"), "SELECT 1", &[]).unwrap();
        client.bind(&bind(&format!("s{i}"))).unwrap();
        client.execute("", 0).unwrap();
        client.sync().unwrap();
    }
    to_server(&mut client, &mut server);
    let events = server_events(&mut server);
    assert_eq!(events.len(), 12);
    assert_eq!(server.in_flight(), 12);
    // Answers are checked against the front of the queue: a BindComplete now is refused.
    assert!(matches!(
        server.bind_complete(),
        Err(UsageError::NotAllowed { .. })
    ));
    for _ in 0..3 {
        server.parse_complete().unwrap();
        server
            .forward(&FramePiece::whole(b"2\0\0\0\x04").unwrap())
            .unwrap();
        server.data_row(&[Some(b"1")]).unwrap();
        server.command_complete("SELECT 1").unwrap();
        server
            .forward(&FramePiece::whole(b"Z\0\0\0\x05I").unwrap())
            .unwrap();
    }
    assert_eq!(server.in_flight(), 0);
    let events = to_client(&mut server, &mut client).unwrap();
    let rfq = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Response {
                    message: BackendMessage::ReadyForQuery(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(rfq, 3);
    assert_eq!(client.pending_requests(), 0);
}

#[test]
fn depth_bounds_what_is_handed_out() {
    let (mut client, mut server) = pipelined_pair(3);
    for _ in 0..4 {
        client.query("SELECT 1").unwrap();
    }
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 3);
    assert!(server.buffered_len() > 0); // the fourth waits in the buffer
    server.empty_query_response().unwrap();
    server.ready_for_query(TransactionStatus::Idle).unwrap();
    assert_eq!(server_events(&mut server).len(), 1);
    assert_eq!(server.in_flight(), 3);
}

#[test]
fn an_error_skips_what_was_handed_out_up_to_sync() {
    let (mut client, mut server) = pipelined_pair(64);
    client.bind(&bind("missing")).unwrap();
    client.execute("", 0).unwrap();
    client.describe(Target::Portal, "").unwrap();
    client.sync().unwrap();
    client.query("SELECT 2").unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 5);
    let error = frame(&BackendMessage::ErrorResponse(ErrorFields::simple(
        "ERROR",
        "26000",
        "prepared statement \"missing\" does not exist",
    )));
    server.forward(&FramePiece::whole(&error).unwrap()).unwrap();
    // Execute and Describe were skipped: the Sync is next, then the Query.
    assert_eq!(server.in_flight(), 2);
    assert!(server.command_complete("SELECT 1").is_err());
    server.ready_for_query(TransactionStatus::Idle).unwrap();
    server.empty_query_response().unwrap();
    server.ready_for_query(TransactionStatus::Idle).unwrap();
    let events = to_client(&mut server, &mut client).unwrap();
    let skipped = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Skipped { .. }))
        .count();
    assert_eq!(skipped, 2);
    assert_eq!(client.pending_requests(), 0);
}

#[test]
fn an_error_with_no_sync_in_flight_discards_what_comes_until_sync() {
    let (mut client, mut server) = pipelined_pair(64);
    client.bind(&bind("missing")).unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 1);
    server
        .error_response(&ErrorFields::simple("ERROR", "26000", "no such statement"))
        .unwrap();
    client.execute("", 0).unwrap();
    client.sync().unwrap();
    to_server(&mut client, &mut server);
    let events = server_events(&mut server);
    assert!(matches!(
        events[..],
        [ServerEvent::Message(FrontendMessage::Sync)]
    ));
    assert_eq!(server.discarded(), 1);
}

#[test]
fn copy_in_through_a_pipeline_ignores_the_syncs_sent_before_it() {
    let (mut client, mut server) = pipelined_pair(64);
    client.parse("", "COPY t FROM STDIN", &[]).unwrap();
    client.bind(&bind("")).unwrap();
    client.execute("", 0).unwrap();
    client.sync().unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 4);
    server.parse_complete().unwrap();
    server.bind_complete().unwrap();
    server
        .copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    // The Sync behind the Execute reaches a backend during COPY FROM STDIN: ignored.
    assert_eq!(server.in_flight(), 1);
    assert_eq!(server.discarded(), 1);
    let events = to_client(&mut server, &mut client).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        ClientEvent::Response {
            message: BackendMessage::CopyInResponse(_),
            ..
        }
    )));
    client.copy_data(b"1\n").unwrap();
    client.copy_done().unwrap();
    to_server(&mut client, &mut server);
    let events = server_events(&mut server);
    // CopyData, CopyDone, and the Sync the client sent again.
    assert_eq!(events.len(), 3, "{events:?}");
    server.command_complete("COPY 1").unwrap();
    server.ready_for_query(TransactionStatus::Idle).unwrap();
    to_client(&mut server, &mut client).unwrap();
    assert_eq!(client.pending_requests(), 0);
}

#[test]
fn a_large_frame_forwarded_in_pieces() {
    let (mut client, mut server) = pipelined_pair(4);
    client.query("SELECT big").unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 1);
    // RowDescription, a 5 MB DataRow, CommandComplete, ReadyForQuery, as an upstream sent them.
    let value = vec![b'x'; 5 << 20];
    let mut upstream = BytesMut::new();
    let field = pgproto::FieldDescription {
        name: b"big",
        table_oid: 0,
        column_id: 0,
        type_oid: 25,
        type_size: -1,
        type_modifier: -1,
        format: Format::Text,
    };
    pgproto::RowDescription::new(&[field])
        .unwrap()
        .encode(&mut upstream);
    pgproto::DataRow::encode_values(&mut upstream, &[Some(&value)]).unwrap();
    upstream.extend_from_slice(b"C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I");
    let mut relay = Relay::backend(Limits::default());
    let mut max_held = 0;
    let mut rows = 0;
    for read in upstream.chunks(64 * 1024) {
        relay.receive(read);
        while let Some(piece) = relay.next_piece().unwrap() {
            server.forward(&piece).unwrap();
            if server.is_forwarding() {
                // Mid-frame, nothing else may be sent.
                assert!(server.data_row(&[None]).is_err());
                assert!(server
                    .notice(&ErrorFields::simple("NOTICE", "00000", "x"))
                    .is_err());
                assert!(server
                    .fatal(&ErrorFields::simple("FATAL", "57P01", "x"))
                    .is_err());
            }
        }
        max_held = max_held.max(relay.buffered_len());
        while let Some(b) = server.poll_transmit() {
            max_held = max_held.max(b.len());
            client.receive(&b);
        }
        while let Some(e) = client.poll_event().unwrap() {
            if let ClientEvent::Response {
                message: pgproto::BackendMessage::DataRow(r),
                ..
            } = e
            {
                assert_eq!(r.columns().next().unwrap().unwrap().unwrap().len(), 5 << 20);
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 1);
    // The proxy's side held no more than a read at a time.
    assert!(max_held <= 64 * 1024 + 5, "{max_held}");
    assert_eq!(server.in_flight(), 0);
    // A piece that does not start a frame is refused.
    let row = frame(&BackendMessage::ReadyForQuery(TransactionStatus::Idle));
    let mut relay = Relay::backend(Limits::default()).with_whole_limit(5);
    relay.receive(&row[..5]);
    let first = relay.next_piece().unwrap().unwrap();
    assert!(first.is_first() && !first.is_last());
}

#[test]
fn forwarded_frames_are_checked() {
    let (mut client, mut server) = pipelined_pair(4);
    // Nothing in flight: an answer is refused, an asynchronous message is not.
    assert!(server
        .forward(&FramePiece::whole(b"1\0\0\0\x04").unwrap())
        .is_err());
    let status = frame(&BackendMessage::ParameterStatus(
        pgproto::ParameterStatus::new("TimeZone", "UTC").unwrap(),
    ));
    server
        .forward(&FramePiece::whole(&status).unwrap())
        .unwrap();
    // Not an answer at all.
    assert!(server
        .forward(&FramePiece::whole(b"K\0\0\0\x0c\0\0\0\x01\0\0\0\x02").unwrap())
        .is_err());
    // An ERROR while idle is refused; a FATAL closes.
    let error = frame(&BackendMessage::ErrorResponse(ErrorFields::simple(
        "ERROR", "XX000", "x",
    )));
    assert!(server.forward(&FramePiece::whole(&error).unwrap()).is_err());
    let fatal = frame(&BackendMessage::ErrorResponse(ErrorFields::simple(
        "FATAL",
        "57P01",
        "terminating connection due to administrator command",
    )));
    server.forward(&FramePiece::whole(&fatal).unwrap()).unwrap();
    assert_eq!(
        server.forward(&FramePiece::whole(&status).unwrap()),
        Err(UsageError::Closed)
    );
    let events = to_client(&mut server, &mut client);
    assert_eq!(client.parameter("TimeZone"), Some("UTC"));
    assert!(events.is_ok());
}

/// A Sync pipelined behind a Query that the application answers with CopyBothResponse: the
/// backend would read it during CopyBoth, where PostgreSQL's walsender ends the session with
/// FATAL 08P01. The `Server` had handed it out already; it ends the session at the
/// CopyBothResponse instead of leaving a Sync that nothing will answer.
#[test]
fn copy_both_through_a_pipeline_ends_the_session_on_what_was_sent_behind_it() {
    let (mut client, mut server) = pipelined_pair(64);
    client
        .query("START_REPLICATION SLOT s LOGICAL 0/0")
        .unwrap();
    client.sync().unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 2);
    server
        .copy_both_response(&CopyResponse::new(Format::Binary, &[]).unwrap())
        .unwrap();
    let err = server.poll_event().map(|e| e.map(|e| e.into_owned()));
    assert!(
        matches!(
            err,
            Err(Error::UnexpectedMessage {
                state: "in CopyBoth",
                message: "Sync"
            })
        ),
        "{err:?}"
    );
    let events = to_client(&mut server, &mut client).unwrap();
    let [ClientEvent::Response {
        message: BackendMessage::CopyBothResponse(_),
        ..
    }, ClientEvent::Response {
        message: BackendMessage::ErrorResponse(fatal),
        ..
    }] = &events[..]
    else {
        panic!("unexpected events: {events:?}");
    };
    assert_eq!(fatal.severity(), Some(&b"FATAL"[..]));
    assert_eq!(fatal.code(), Some(&b"08P01"[..]));
}

/// Without anything sent behind it, CopyBoth through a pipeline goes on as usual.
#[test]
fn copy_both_through_a_pipeline_with_nothing_behind_goes_on() {
    let (mut client, mut server) = pipelined_pair(64);
    client
        .query("START_REPLICATION SLOT s LOGICAL 0/0")
        .unwrap();
    to_server(&mut client, &mut server);
    assert_eq!(server_events(&mut server).len(), 1);
    server
        .copy_both_response(&CopyResponse::new(Format::Binary, &[]).unwrap())
        .unwrap();
    assert!(matches!(server.poll_event(), Ok(None)));
    server.copy_data(b"w").unwrap();
    let events = to_client(&mut server, &mut client).unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
}
