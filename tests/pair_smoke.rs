//! A `Client` and a `Server` of this crate talking to each other in memory, through the public
//! API only: start-up with each authentication method, queries, a pipeline with an error, COPY.

use pgproto::auth::ScramVerifier;
use pgproto::{
    AuthError, AuthMethod, BackendMessage, Bind, Client, ClientConfig, ClientEvent, CopyResponse,
    Error, ErrorFields, FieldCode, Format, FormatCodes, FrontendMessage, ProtocolVersion, Server,
    ServerAuth, ServerConfig, ServerEvent, TransactionStatus, Values,
};

/// Moves bytes both ways until neither side has anything to send; returns the events of each.
fn drive(
    c: &mut Client,
    s: &mut Server,
    answer: &mut dyn FnMut(&mut Server, ServerEvent),
) -> (Vec<ClientEvent>, Option<Error>, Option<Error>) {
    let mut client_events = Vec::new();
    let (mut cerr, mut serr) = (None, None);
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(b) = c.poll_transmit() {
            s.receive(&b);
            moved = true;
        }
        loop {
            match s.poll_event() {
                Ok(Some(e)) => {
                    let e = e.into_owned();
                    answer(s, e)
                }
                Ok(None) => break,
                Err(e) => {
                    serr = Some(e);
                    break;
                }
            }
        }
        while let Some(b) = s.poll_transmit() {
            c.receive(&b);
            moved = true;
        }
        loop {
            match c.poll_event() {
                Ok(Some(e)) => client_events.push(e.into_owned()),
                Ok(None) => break,
                Err(e) => {
                    cerr = Some(e);
                    break;
                }
            }
        }
        if !moved {
            return (client_events, cerr, serr);
        }
    }
    panic!("did not settle");
}

fn verifier() -> ScramVerifier {
    ScramVerifier::new("pw", b"0123456789abcdef", 4096).unwrap()
}

fn startup(
    auth: ServerAuth,
    password: &str,
    max: ProtocolVersion,
) -> (
    Client,
    Server,
    Vec<ClientEvent>,
    Option<Error>,
    Option<Error>,
) {
    let mut config = ClientConfig::new("alice");
    config.password = Some(password.as_bytes().to_vec());
    config.max_protocol_version = max;
    let mut c = Client::new(config).unwrap();
    let mut s = Server::new(ServerConfig::default());
    let mut auth = Some(auth);
    let (events, cerr, serr) = drive(&mut c, &mut s, &mut |s, e| {
        if let ServerEvent::Startup { .. } = e {
            s.authenticate(auth.take().unwrap()).unwrap();
        }
    });
    (c, s, events, cerr, serr)
}

#[test]
fn every_password_method_connects_and_wrong_passwords_fail() {
    let md5 = pgproto::auth::md5::stored_hash("alice", "pw");
    let cases = [
        (ServerAuth::Trust, AuthMethod::None),
        (
            ServerAuth::Password {
                stored: Some(verifier().to_string()),
            },
            AuthMethod::Password,
        ),
        (
            ServerAuth::Md5 {
                stored: Some(md5.clone()),
            },
            AuthMethod::Md5,
        ),
        (
            ServerAuth::Scram {
                verifier: Some(verifier()),
            },
            AuthMethod::ScramSha256,
        ),
    ];
    for (auth, method) in cases {
        let (c, s, events, cerr, serr) = startup(auth.clone(), "pw", ProtocolVersion::V3_0);
        assert!(
            cerr.is_none() && serr.is_none(),
            "{method:?}: {cerr:?} {serr:?}"
        );
        assert!(events.contains(&ClientEvent::Authenticated { method }));
        assert!(c.is_ready() && s.is_ready());
        assert_eq!(c.backend_key(), s.backend_key());
        assert_eq!(c.parameter("session_authorization"), Some("alice"));
        if method != AuthMethod::None {
            let (c, _, _, cerr, serr) = startup(auth, "wrong", ProtocolVersion::V3_0);
            let Some(Error::Server(f)) = cerr else {
                panic!("{method:?}: {cerr:?}")
            };
            assert_eq!(f.code(), Some(&b"28P01"[..]), "{method:?}");
            assert!(matches!(serr, Some(Error::Auth(_))), "{serr:?}");
            assert!(!c.is_ready());
        }
    }
    // Unknown user: a doomed SCRAM exchange fails like a wrong password.
    let (_, _, _, cerr, serr) = startup(
        ServerAuth::Scram { verifier: None },
        "pw",
        ProtocolVersion::V3_0,
    );
    let Some(Error::Server(f)) = cerr else {
        panic!("{cerr:?}")
    };
    assert_eq!(f.code(), Some(&b"28P01"[..]));
    assert!(matches!(serr, Some(Error::Auth(AuthError::Scram(_)))));
}

#[test]
fn protocol_3_2_gets_a_32_byte_key() {
    let (c, s, _, cerr, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_2);
    assert!(cerr.is_none());
    assert_eq!(c.protocol_version(), ProtocolVersion::V3_2);
    assert_eq!(s.protocol_version(), ProtocolVersion::V3_2);
    assert_eq!(c.backend_key().unwrap().secret_key().len(), 32);
}

fn ok_fields(msg: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, "ERROR"),
        (FieldCode::Code, "42601"),
        (FieldCode::Message, msg),
    ])
    .unwrap()
}

/// A tiny "database": `SELECT n` returns n; `FAIL` fails; `COPY IN` copies in.
fn answer(s: &mut Server, e: ServerEvent) {
    let ServerEvent::Message(m) = e else { return };
    match m {
        FrontendMessage::Query(q) => {
            let sql = q.as_str().unwrap().to_string();
            if sql == "FAIL" {
                s.error_response(&ok_fields("boom")).unwrap();
            } else if sql == "COPY IN" {
                s.copy_in_response(&CopyResponse::new(Format::Text, FormatCodes::default()))
                    .unwrap();
                return;
            } else {
                s.data_row(&[Some(sql.as_bytes())]).unwrap();
                s.command_complete("SELECT 1").unwrap();
            }
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        FrontendMessage::CopyData(_) => {}
        FrontendMessage::CopyDone => {
            s.command_complete("COPY 1").unwrap();
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        FrontendMessage::Parse(p) => {
            if p.query() == b"FAIL" {
                s.error_response(&ok_fields("bad parse")).unwrap();
            } else {
                s.parse_complete().unwrap();
            }
        }
        FrontendMessage::Bind(_) => s.bind_complete().unwrap(),
        FrontendMessage::Execute(_) => {
            s.data_row(&[Some(b"x")]).unwrap();
            s.command_complete("SELECT 1").unwrap();
        }
        FrontendMessage::Sync => s.ready_for_query(TransactionStatus::Idle).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn queries_pipelines_and_copy() {
    let (mut c, mut s, _, _, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_0);
    let q1 = c.query("SELECT 7").unwrap();
    let q2 = c.query("FAIL").unwrap();
    let mut ids = Vec::new();
    for sql in ["SELECT 1", "FAIL", "SELECT 3"] {
        ids.push(c.parse("", sql, &[]).unwrap());
        let bind = Bind::new(
            "",
            "",
            FormatCodes::default(),
            Values::default(),
            FormatCodes::default(),
        )
        .unwrap();
        ids.push(c.bind(&bind).unwrap());
        ids.push(c.execute("", 0).unwrap());
        ids.push(c.sync().unwrap());
    }
    let (events, cerr, serr) = drive(&mut c, &mut s, &mut answer);
    assert!(cerr.is_none() && serr.is_none(), "{cerr:?} {serr:?}");
    let responses: Vec<(u64, &str)> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { request, message } => Some((request.get(), message.name())),
            ClientEvent::Skipped { request } => Some((request.get(), "Skipped")),
            _ => None,
        })
        .collect();
    let id = |i: usize| ids[i].get();
    assert_eq!(
        responses,
        [
            (q1.get(), "DataRow"),
            (q1.get(), "CommandComplete"),
            (q1.get(), "ReadyForQuery"),
            (q2.get(), "ErrorResponse"),
            (q2.get(), "ReadyForQuery"),
            (id(0), "ParseComplete"),
            (id(1), "BindComplete"),
            (id(2), "DataRow"),
            (id(2), "CommandComplete"),
            (id(3), "ReadyForQuery"),
            (id(4), "ErrorResponse"),
            (id(5), "Skipped"),
            (id(6), "Skipped"),
            (id(7), "ReadyForQuery"),
            (id(8), "ParseComplete"),
            (id(9), "BindComplete"),
            (id(10), "DataRow"),
            (id(10), "CommandComplete"),
            (id(11), "ReadyForQuery"),
        ]
    );
    assert_eq!(s.discarded(), 2, "the server discarded Bind and Execute");

    // COPY FROM STDIN.
    let q = c.query("COPY IN").unwrap();
    let (events, _, _) = drive(&mut c, &mut s, &mut answer);
    assert!(matches!(
        &events[..],
        [ClientEvent::Response {
            message: BackendMessage::CopyInResponse(_),
            ..
        }]
    ));
    c.copy_data(b"1\n").unwrap();
    c.copy_done().unwrap();
    let (events, cerr, serr) = drive(&mut c, &mut s, &mut answer);
    assert!(cerr.is_none() && serr.is_none());
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| matches!(e, ClientEvent::Response { request, .. } if *request == q)));
    assert_eq!(c.transaction_status(), Some(TransactionStatus::Idle));
}

#[test]
fn a_malformed_message_gets_a_fatal_08p01() {
    let (mut c, mut s, _, _, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_0);
    // An unknown message type.
    s.receive(b"?\0\0\0\x04");
    let err = s.poll_event().unwrap_err();
    assert_eq!(err.sqlstate(), "08P01");
    c.receive(&s.poll_transmit().unwrap());
    let Ok(Some(ClientEvent::UnsolicitedError(f))) = c.poll_event() else {
        panic!("the client sees the FATAL");
    };
    assert_eq!(f.code(), Some(&b"08P01"[..]));
    assert!(matches!(s.poll_event(), Err(Error::Decode(_))), "sticky");
}
