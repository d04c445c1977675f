//! A `Client` and a `Server` of this crate talking to each other in memory (the shared `Pair` of
//! `tests/support/pair.rs`), through the public API only: start-up with each authentication
//! method, queries, a pipeline with an error, COPY; reads of any size; frames altered or dropped
//! in flight.

mod support;

use pgproto::auth::ScramVerifier;
use pgproto::{
    AuthError, AuthMethod, BackendMessage, Bind, Client, ClientConfig, ClientEvent, CopyResponse,
    Error, ErrorFields, FieldCode, FieldDescription, Format, FrontendMessage, ProtocolVersion,
    RowDescription, Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus,
};

use support::pair::{Altered, Direction};

type Pair = support::pair::Pair;

/// Drives the pair until nothing moves; returns the client's events of this drive and both
/// sides' errors.
fn drive(p: &mut Pair) -> (Vec<ClientEvent>, Option<Error>, Option<Error>) {
    p.drive();
    (
        p.take_client_events(),
        p.client_error.clone(),
        p.server_error.clone(),
    )
}

fn verifier() -> ScramVerifier {
    ScramVerifier::new("pw", b"0123456789abcdef", 4096).unwrap()
}

/// A pair that authenticates with `auth`, then answers with [`answer`], driven until settled.
fn startup(
    auth: ServerAuth,
    password: &str,
    max: ProtocolVersion,
) -> (Pair, Vec<ClientEvent>, Option<Error>, Option<Error>) {
    let mut config = ClientConfig::new("alice");
    config.password = Some(password.as_bytes().to_vec());
    config.max_protocol_version = max;
    let c = Client::new(config).unwrap();
    let s = Server::new(ServerConfig::default());
    let mut auth = Some(auth);
    let mut p = Pair::new(
        c,
        s,
        Box::new(move |s: &mut Server, e: &ServerEvent| {
            if let ServerEvent::Startup { .. } = e {
                s.authenticate(auth.take().unwrap()).unwrap();
            } else {
                answer(s, e);
            }
        }),
    );
    let (events, cerr, serr) = drive(&mut p);
    (p, events, cerr, serr)
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
        let (p, events, cerr, serr) = startup(auth.clone(), "pw", ProtocolVersion::V3_0);
        let (c, s) = (&p.client, &p.server);
        assert!(
            cerr.is_none() && serr.is_none(),
            "{method:?}: {cerr:?} {serr:?}"
        );
        assert!(events.contains(&ClientEvent::Authenticated { method }));
        assert!(c.is_ready() && s.is_ready());
        assert_eq!(c.backend_key(), s.backend_key());
        assert_eq!(c.parameter("session_authorization"), Some("alice"));
        if method != AuthMethod::None {
            let (p, _, cerr, serr) = startup(auth, "wrong", ProtocolVersion::V3_0);
            let c = &p.client;
            let Some(Error::Server(f)) = cerr else {
                panic!("{method:?}: {cerr:?}")
            };
            assert_eq!(f.code(), Some(&b"28P01"[..]), "{method:?}");
            assert!(matches!(serr, Some(Error::Auth(_))), "{serr:?}");
            assert!(!c.is_ready());
        }
    }
    // Unknown user: a doomed SCRAM exchange fails like a wrong password.
    let (_, _, cerr, serr) = startup(
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
    let (p, _, cerr, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_2);
    let (c, s) = (&p.client, &p.server);
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

/// The RowDescription of a one-column text result.
fn one_column() -> RowDescription {
    RowDescription::new(&[FieldDescription::new(b"n", 25)]).unwrap()
}

/// A tiny "database": `SELECT n` returns n; `FAIL` fails; `COPY IN` copies in.
fn answer(s: &mut Server, e: &ServerEvent) {
    let ServerEvent::Message(m) = e else { return };
    match m {
        FrontendMessage::Query(q) => {
            let sql = q.as_str().unwrap().to_string();
            if sql == "FAIL" {
                s.error_response(&ok_fields("boom")).unwrap();
            } else if sql == "COPY IN" {
                s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
                    .unwrap();
                return;
            } else {
                s.row_description(&one_column()).unwrap();
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
    let (mut p, _, _, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_0);
    let c = &mut p.client;
    let q1 = c.query("SELECT 7").unwrap();
    let q2 = c.query("FAIL").unwrap();
    let mut ids = Vec::new();
    for sql in ["SELECT 1", "FAIL", "SELECT 3"] {
        ids.push(c.parse("", sql, &[]).unwrap());
        let bind = Bind::new("", "", &[], &[], &[]).unwrap();
        ids.push(c.bind(&bind).unwrap());
        ids.push(c.execute("", 0).unwrap());
        ids.push(c.sync().unwrap());
    }
    let (events, cerr, serr) = drive(&mut p);
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
            (q1.get(), "RowDescription"),
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
    assert_eq!(
        p.server.discarded(),
        2,
        "the server discarded Bind and Execute"
    );

    // COPY FROM STDIN.
    let q = p.client.query("COPY IN").unwrap();
    let (events, _, _) = drive(&mut p);
    assert!(matches!(
        &events[..],
        [ClientEvent::Response {
            message: BackendMessage::CopyInResponse(_),
            ..
        }]
    ));
    p.client.copy_data(b"1\n").unwrap();
    p.client.copy_done().unwrap();
    let (events, cerr, serr) = drive(&mut p);
    assert!(cerr.is_none() && serr.is_none());
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| matches!(e, ClientEvent::Response { request, .. } if *request == q)));
    assert_eq!(p.client.transaction_status(), Some(TransactionStatus::Idle));
}

#[test]
fn a_malformed_message_gets_a_fatal_08p01() {
    let (p, _, _, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_0);
    let (mut c, mut s) = p.into_parts();
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

/// A pair that authenticates with SCRAM and answers with [`answer`], not yet driven.
fn scram_pair() -> Pair {
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pw".to_vec());
    let mut auth = Some(ServerAuth::Scram {
        verifier: Some(verifier()),
    });
    Pair::new(
        Client::new(config).unwrap(),
        Server::new(ServerConfig::default()),
        Box::new(move |s: &mut Server, e: &ServerEvent| {
            if let ServerEvent::Startup { .. } = e {
                s.authenticate(auth.take().unwrap()).unwrap();
            } else {
                answer(s, e);
            }
        }),
    )
}

#[test]
fn a_scram_proof_altered_in_flight_fails_on_both_sides() {
    let mut p = scram_pair();
    let mut altered = 0;
    for _ in 0..100 {
        let moved = p.transfer_altered(|dir, frame| {
            // The client-final-message: a SASLResponse ending with ",p=<proof>".
            let proof = frame.windows(3).rposition(|w| w == b",p=");
            match (dir, frame.first(), proof) {
                (Direction::ToServer, Some(b'p'), Some(at)) => {
                    altered += 1;
                    let mut f = frame.to_vec();
                    let i = at + 3;
                    f[i] = if f[i] == b'A' { b'B' } else { b'A' };
                    Altered::Replace(f)
                }
                _ => Altered::Keep,
            }
        });
        if !moved {
            break;
        }
    }
    assert_eq!(altered, 1, "the proof went by once");
    let Some(Error::Server(f)) = &p.client_error else {
        panic!("{:?}", p.client_error)
    };
    assert_eq!(f.code(), Some(&b"28P01"[..]));
    assert!(
        matches!(p.server_error, Some(Error::Auth(AuthError::Scram(_)))),
        "{:?}",
        p.server_error
    );
    assert!(!p.client.is_ready() && !p.server.is_ready());
}

#[test]
fn a_dropped_ready_for_query_leaves_the_request_pending() {
    let (mut p, _, _, _) = startup(ServerAuth::Trust, "", ProtocolVersion::V3_0);
    let q = p.client.query("SELECT 1").unwrap();
    let mut dropped = 0;
    while p.transfer_altered(|dir, frame| match (dir, frame.first()) {
        (Direction::ToClient, Some(b'Z')) => {
            dropped += 1;
            Altered::Drop
        }
        _ => Altered::Keep,
    }) {}
    assert_eq!(dropped, 1);
    assert!(p.healthy());
    assert_eq!(p.client.pending_requests(), 1, "still waiting for {q:?}");
    assert_eq!(
        p.take_client_events().len(),
        3,
        "RowDescription, DataRow, CommandComplete"
    );
}

#[test]
fn reads_of_any_size_give_the_same_events() {
    let run = |sizes: &[usize]| {
        let mut p = scram_pair();
        while p.transfer_chunked(sizes) {}
        p.client.query("SELECT 5").unwrap();
        p.client.parse("", "FAIL", &[]).unwrap();
        p.client.sync().unwrap();
        while p.transfer_chunked(sizes) {}
        assert!(
            p.healthy(),
            "{sizes:?}: {:?} {:?}",
            p.client_error,
            p.server_error
        );
        // The cancel key is random: leave it out.
        p.take_client_events()
            .into_iter()
            .filter(|e| !matches!(e, ClientEvent::BackendKeyData(_)))
            .collect::<Vec<_>>()
    };
    let whole = run(&[]);
    assert!(whole.len() > 10, "{whole:?}");
    for sizes in [&[1][..], &[2, 7], &[5, 1, 3]] {
        assert_eq!(run(sizes), whole, "{sizes:?}");
    }
}
