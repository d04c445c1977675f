//! The `Client` over protocol 2.0 against a scripted server: bytes PostgreSQL 13.23 sent a 2.0
//! client (recorded by hand), or written here. Start-up (trust, cleartext, MD5; crypt refused),
//! the answers handed out as 3.0 messages, the transaction status derived from tags, COPY both
//! ways, notices and notifications, function calls, the fallback after an old-style error, and
//! split invariance. The live tests against PostgreSQL 13 are in `live_v2_client.rs`.

use bytes::BytesMut;
use pgproto::v2::{FrontendDecoder as Frontend2, FrontendMessage as F2, StartupPacket, COPY_END};
use pgproto::{
    AuthError, AuthMethod, BackendMessage, Client, ClientConfig, ClientEvent, Encode, Encryption,
    Error, Format, FunctionCall, ProtocolVersion, RequestId, Target, TransactionStatus, UsageError,
};

/// PostgreSQL 13's start-up for a trusted user: AuthenticationOk, BackendKeyData, ReadyForQuery.
const READY: &[u8] = b"R\0\0\0\0K\0\0*V\x88\xcdO\xa3Z";

fn v2_config() -> ClientConfig {
    let mut c = ClientConfig::new("alice");
    c.database = Some("shop".into());
    c.min_protocol_version = ProtocolVersion::V2_0;
    c.max_protocol_version = ProtocolVersion::V2_0;
    c
}

/// Drains events until `Ok(None)` or an error.
fn drain(c: &mut Client) -> (Vec<ClientEvent>, Option<Error>) {
    let mut events = Vec::new();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => events.push(e.into_owned()),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Everything queued for the server.
fn sent(c: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

/// A 2.0 client connected to a trusting server.
fn connected() -> Client {
    let mut c = Client::new(v2_config()).unwrap();
    let first = sent(&mut c);
    let mut dec = Frontend2::new();
    dec.receive(&first);
    let Some(F2::Startup(p)) = dec.next().unwrap() else {
        panic!("{first:?}")
    };
    assert_eq!(first.len(), 296);
    assert_eq!((p.user(), p.database()), (&b"alice"[..], &b"shop"[..]));
    assert_eq!(p.version(), ProtocolVersion::V2_0);
    c.receive(READY);
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert!(matches!(
        events[..],
        [
            ClientEvent::Authenticated {
                method: AuthMethod::None
            },
            ClientEvent::BackendKeyData(_),
            ClientEvent::Connected {
                status: TransactionStatus::Idle
            }
        ]
    ));
    assert!(c.is_ready());
    assert_eq!(c.protocol_version(), ProtocolVersion::V2_0);
    assert_eq!(c.backend_key().unwrap().process_id(), 10838);
    assert_eq!(
        c.cancel_request().unwrap().secret_key(),
        [0x88, 0xcd, 0x4f, 0xa3]
    );
    c
}

/// The responses to `request` in `events`, by name.
fn responses(events: &[ClientEvent], request: RequestId) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                request: r,
                message,
            } if *r == request => Some(message.name()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_query_answered_by_postgresql_13() {
    let mut c = connected();
    let q = c
        .query("select 1 as a, null::int as b, 'x'::text;select 2")
        .unwrap();
    assert_eq!(
        sent(&mut c),
        b"Qselect 1 as a, null::int as b, 'x'::text;select 2\0"
    );
    c.receive(b"Pblank\0T\0\x03a\0\0\0\0\x17\0\x04\xff\xff\xff\xffb\0\0\0\0\x17\0\x04\xff\xff\xff\xff\
text\0\0\0\0\x19\xff\xff\xff\xff\xff\xffD\xa0\0\0\0\x051\0\0\0\x05xCSELECT 1\0Pblank\0T\0\x01?column?\
\0\0\0\0\x17\0\x04\xff\xff\xff\xffD\x80\0\0\0\x052CSELECT 1\0Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        responses(&events, q),
        [
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    let ClientEvent::Response {
        message: BackendMessage::RowDescription(d),
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    let f: Vec<_> = d
        .fields()
        .map(|f| (f.name, f.type_oid, f.type_size, f.format))
        .collect();
    assert_eq!(
        f,
        [
            (&b"a"[..], 23, 4, Format::Text),
            (b"b", 23, 4, Format::Text),
            (b"text", 25, -1, Format::Text)
        ]
    );
    let ClientEvent::Response {
        message: BackendMessage::DataRow(row),
        ..
    } = &events[1]
    else {
        panic!()
    };
    let values: Vec<_> = row.columns().map(Result::unwrap).collect();
    assert_eq!(values, [Some(&b"1"[..]), None, Some(&b"x"[..])]);
    assert!(matches!(
        events.last(),
        Some(ClientEvent::Response {
            message: BackendMessage::ReadyForQuery(TransactionStatus::Idle),
            ..
        })
    ));
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn errors_notices_notifications_and_the_transaction_status() {
    let mut c = connected();
    let q1 = c.query("begin").unwrap();
    let q2 = c.query("select 1/0").unwrap();
    let q3 = c.query("rollback").unwrap();
    let q4 = c.query("listen foo; notify foo").unwrap();
    assert_eq!(c.pending_requests(), 4);
    let bytes: &[u8] = b"CBEGIN\0ZEERROR:  division by zero\n\0ZCROLLBACK\0Z\
NNOTICE:  hi 1\n\0CLISTEN\0CNOTIFY\0A\0\0*Vfoo\0Z";
    c.receive(bytes);
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                message: BackendMessage::ReadyForQuery(s),
                ..
            } => Some(*s),
            _ => None,
        })
        .collect();
    use TransactionStatus::*;
    assert_eq!(statuses, [InTransaction, Failed, Idle, Idle]);
    assert_eq!(responses(&events, q2), ["ErrorResponse", "ReadyForQuery"]);
    let e = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Response {
                request,
                message: BackendMessage::ErrorResponse(f),
            } if *request == q2 => Some(f.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(e.severity(), Some(&b"ERROR"[..]));
    assert_eq!(e.message(), Some(&b"division by zero"[..]));
    assert_eq!(e.code(), None);
    let notice = events.iter().find_map(|e| match e {
        ClientEvent::Notice(f) => Some(f.clone()),
        _ => None,
    });
    assert_eq!(notice.unwrap().message(), Some(&b"hi 1"[..]));
    let n = events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (n.process_id(), n.channel(), n.payload()),
        (10838, &b"foo"[..], &b""[..])
    );
    assert_eq!(
        responses(&events, q4),
        ["CommandComplete", "CommandComplete", "ReadyForQuery"]
    );
    assert_eq!(responses(&events, q1), ["CommandComplete", "ReadyForQuery"]);
    assert_eq!(responses(&events, q3), ["CommandComplete", "ReadyForQuery"]);
    assert_eq!(c.transaction_status(), Some(Idle));
}

#[test]
fn copy_out_and_in() {
    let mut c = connected();
    let out = c.query("copy t to stdout").unwrap();
    c.receive(b"H1\ta\n2\t\\N\n\\.\nCCOPY 2\0Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        responses(&events, out),
        [
            "CopyOutResponse",
            "CopyData",
            "CopyData",
            "CopyDone",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    let data: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                message: BackendMessage::CopyData(d),
                ..
            } => Some(d.data().to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(data, b"1\ta\n2\t\\N\n");

    let copy_in = c.query("copy t from stdin").unwrap();
    sent(&mut c);
    assert!(c.copy_data(b"x").is_err(), "before CopyInResponse");
    c.receive(b"G");
    let (events, _) = drain(&mut c);
    assert_eq!(responses(&events, copy_in), ["CopyInResponse"]);
    assert!(c.query("select 1").is_err(), "during COPY FROM STDIN");
    assert!(c.copy_fail("no").is_err(), "2.0 has no CopyFail");
    c.copy_data(b"3\tc\n4\t").unwrap();
    c.copy_data(b"\\N").unwrap();
    c.copy_done().unwrap();
    // The last line ended by the client, then the end marker.
    assert_eq!(sent(&mut c), [&b"3\tc\n4\t\\N\n"[..], COPY_END].concat());
    assert!(c.copy_done().is_err());
    c.receive(b"CCOPY 2\0Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        responses(&events, copy_in),
        ["CommandComplete", "ReadyForQuery"]
    );
}

#[test]
fn a_copy_failing_either_way() {
    // COPY TO STDOUT failing mid-stream: PostgreSQL ends the data with two newlines and `\.`,
    // then sends the error.
    let mut c = connected();
    let q = c
        .query("copy (select 1/(2-generate_series(1,3))) to stdout")
        .unwrap();
    c.receive(b"H1\n\n\n\\.\nEERROR:  division by zero\n\0Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        responses(&events, q),
        [
            "CopyOutResponse",
            "CopyData",
            "CopyData",
            "CopyData",
            "CopyDone",
            "ErrorResponse",
            "ReadyForQuery"
        ]
    );
    // COPY FROM STDIN failing after the client's `\.`: the error, then ReadyForQuery.
    let q = c.query("copy t from stdin").unwrap();
    c.receive(b"G");
    drain(&mut c);
    c.copy_data(b"1\n").unwrap();
    c.copy_done().unwrap();
    c.receive(b"EERROR:  deferred check failed\n\0Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(responses(&events, q), ["ErrorResponse", "ReadyForQuery"]);

    // COPY FROM STDIN failing: the error, then the FATAL one, then the end.
    let q = c.query("copy t from stdin").unwrap();
    c.receive(b"G");
    drain(&mut c);
    c.copy_data(b"x\n").unwrap();
    c.receive(
        b"EERROR:  invalid input syntax for type integer: \"x\"\n\0\
EFATAL:  terminating connection because protocol synchronization was lost\n\0",
    );
    c.receive_eof();
    let (events, err) = drain(&mut c);
    assert_eq!(responses(&events, q), ["ErrorResponse", "ErrorResponse"]);
    assert!(c.copy_data(b"3\n").is_err(), "the data stream is over");
    assert!(matches!(err, Some(Error::UnexpectedEof { .. })), "{err:?}");
}

#[test]
fn function_calls_are_binary() {
    let mut c = connected();
    let binary = &[Format::Binary];
    let call = FunctionCall::new(1317, binary, &[Some(&b"abcd"[..])], Format::Binary).unwrap();
    let id = c.function_call(&call).unwrap();
    assert_eq!(sent(&mut c), b"F\0\0\0\x05\x25\0\0\0\x01\0\0\0\x04abcd");
    c.receive(b"VG\0\0\0\x04\0\0\0\x040Z");
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        responses(&events, id),
        ["FunctionCallResponse", "ReadyForQuery"]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        ClientEvent::Response { message: BackendMessage::FunctionCallResponse(Some(v)), .. } if v[..] == [0, 0, 0, 4]
    )));
    // Text arguments cannot be sent over 2.0.
    let text = FunctionCall::new(1317, &[], &[Some(&b"abcd"[..])], Format::Binary).unwrap();
    assert!(matches!(
        c.function_call(&text),
        Err(UsageError::NotAllowed { .. })
    ));
    // The extended protocol does not exist in 2.0.
    assert!(matches!(c.sync(), Err(UsageError::NotAllowed { .. })));
    assert!(matches!(
        c.parse("", "select 1", &[]),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(
        c.describe(Target::Portal, ""),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(c.flush(), Err(UsageError::NotAllowed { .. })));
    c.terminate().unwrap();
    assert_eq!(sent(&mut c), b"X");
    c.receive_eof();
    let (events, err) = drain(&mut c);
    assert_eq!((events, err), (vec![ClientEvent::Closed], None));
}

fn password_session(request: &[u8]) -> (Client, Vec<u8>) {
    let mut config = v2_config();
    config.password = Some(b"secret".to_vec());
    let mut c = Client::new(config).unwrap();
    sent(&mut c);
    c.receive(request);
    let (_, err) = drain(&mut c);
    assert_eq!(err, None);
    let packet = sent(&mut c);
    (c, packet)
}

#[test]
fn cleartext_and_md5_passwords_crypt_refused() {
    let (mut c, packet) = password_session(b"R\0\0\0\x03");
    assert_eq!(packet, b"\0\0\0\x0bsecret\0");
    c.receive(READY);
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert!(events.contains(&ClientEvent::Authenticated {
        method: AuthMethod::Password
    }));

    let (mut c, packet) = password_session(b"R\0\0\0\x05\x01\x02\x03\x04");
    let hash = pgproto::auth::md5::password_hash("alice", "secret", [1, 2, 3, 4]);
    let mut want = ((hash.len() + 5) as u32).to_be_bytes().to_vec();
    want.extend_from_slice(hash.as_bytes());
    want.push(0);
    assert_eq!(packet, want);
    c.receive(READY);
    assert_eq!(c.auth_method(), None, "not yet authenticated");
    drain(&mut c);
    assert_eq!(c.auth_method(), Some(AuthMethod::Md5));

    let mut c = Client::new(v2_config()).unwrap();
    sent(&mut c);
    c.receive(b"R\0\0\0\x04ab");
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::Auth(AuthError::Unsupported { method })) if method.starts_with("crypt")
        ),
        "{err:?}"
    );

    // A server's FATAL at start-up, in 2.0's format.
    let mut c = Client::new(v2_config()).unwrap();
    c.receive(b"R\0\0\0\0EFATAL:  database \"shop\" does not exist\n\0");
    let (_, err) = drain(&mut c);
    let Some(Error::Server(f)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.severity(), Some(&b"FATAL"[..]));
    assert_eq!(f.message(), Some(&b"database \"shop\" does not exist"[..]));
}

#[test]
fn ssl_is_asked_first() {
    let mut config = v2_config();
    config.encryption = Encryption::Ssl { required: false };
    let mut c = Client::new(config).unwrap();
    assert_eq!(sent(&mut c), b"\0\0\0\x08\x04\xd2\x16\x2f");
    c.receive(b"N");
    let (events, err) = drain(&mut c);
    assert_eq!(
        (events, err),
        (vec![ClientEvent::SslResponse { accepted: false }], None)
    );
    assert_eq!(sent(&mut c).len(), 296);

    let mut config = v2_config();
    config.encryption = Encryption::Ssl { required: true };
    let mut c = Client::new(config).unwrap();
    sent(&mut c);
    c.receive(b"S");
    let (events, err) = drain(&mut c);
    assert_eq!(
        (events, err),
        (vec![ClientEvent::SslResponse { accepted: true }], None)
    );
    c.tls_established(None).unwrap();
    assert!(c.is_tls());
    assert_eq!(sent(&mut c).len(), 296);

    // GSSAPI encryption and direct TLS do not exist in 2.0.
    let mut config = v2_config();
    config.encryption = Encryption::DirectSsl;
    assert!(Client::new(config).is_err());
}

#[test]
fn fallback_after_an_old_style_error() {
    let mut config = v2_config();
    config.max_protocol_version = ProtocolVersion::V3_0;
    let mut c = Client::new(config.clone()).unwrap();
    let first = sent(&mut c);
    assert_eq!(&first[4..8], [0, 3, 0, 0], "a 3.0 StartupMessage first");
    let text = b"EFATAL:  unsupported frontend protocol 3.0: server supports 2.0 to 2.0\n\0";
    c.receive(text);
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [ClientEvent::FallbackToV2 {
            message: "FATAL:  unsupported frontend protocol 3.0: server supports 2.0 to 2.0".into()
        }]
    );
    assert_eq!(c.protocol_version(), ProtocolVersion::V2_0);
    assert!(sent(&mut c).is_empty(), "nothing before the new connection");
    assert!(c.query("select 1").is_err());
    c.reconnected().unwrap();
    assert!(c.reconnected().is_err(), "only once");
    let packet = sent(&mut c);
    let mut want = BytesMut::new();
    StartupPacket::new(ProtocolVersion::V2_0, "shop", "alice", "")
        .unwrap()
        .encode(&mut want);
    assert_eq!(packet, want);
    c.receive(READY);
    let (events, err) = drain(&mut c);
    assert_eq!(err, None);
    assert_eq!(events.len(), 3);
    assert!(c.is_ready());

    // Without a minimum of 2.0, the same answer fails the connection.
    config.min_protocol_version = ProtocolVersion::V3_0;
    let mut c = Client::new(config).unwrap();
    c.receive(text);
    let (_, err) = drain(&mut c);
    assert!(matches!(err, Some(Error::LegacyServer { .. })), "{err:?}");
    // A maximum of 2.0 needs a minimum of 2.0.
    let mut config = v2_config();
    config.min_protocol_version = ProtocolVersion::V3_0;
    assert!(Client::new(config).is_err());
}

#[test]
fn protocol_violations_fail_the_connection() {
    // A row before any RowDescription.
    let mut c = connected();
    c.query("select 1").unwrap();
    c.receive(b"D\x80\0\0\0\x051");
    let (_, err) = drain(&mut c);
    assert!(matches!(err, Some(Error::Decode(_))), "{err:?}");
    // A row after CompletedResponse (the description was the last statement's).
    let mut c = connected();
    c.query("select 1").unwrap();
    c.receive(b"T\0\x01a\0\0\0\0\x17\0\x04\xff\xff\xff\xffCSELECT 0\0D\x80\0\0\0\x051");
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "AsciiRow",
                ..
            })
        ),
        "{err:?}"
    );
    // A FunctionResultResponse to a Query; a ReadyForQuery with nothing asked.
    let mut c = connected();
    c.query("select 1").unwrap();
    c.receive(b"V0");
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::UnexpectedMessage { .. })
    ));
    let mut c = connected();
    c.receive(b"Z");
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::UnexpectedMessage { .. })
    ));
    // A 3.0 message.
    let mut c = connected();
    c.query("select 1").unwrap();
    c.receive(b"1");
    assert!(matches!(drain(&mut c).1, Some(Error::Decode(_))));
}

#[test]
fn the_same_events_however_the_bytes_arrive() {
    let session: &[u8] = b"R\0\0\0\0K\0\0*V\x88\xcdO\xa3ZPblank\0T\0\x02a\0\0\0\0\x17\0\x04\xff\xff\xff\xff\
b\0\0\0\0\x19\xff\xff\xff\xff\xff\xffD\xc0\0\0\0\x051\0\0\0\x06xyCSELECT 1\0NNOTICE:  n\n\0ZH1\n\\.\nCCOPY 1\0Z\
A\0\0\0\x07chan\0EERROR:  boom\n\0ZVG\0\0\0\x02ab0Z";
    // The start-up, then the answers to three queries and a function call sent once ready.
    let (startup, answers) = session.split_at(READY.len());
    let run = |sizes: usize| {
        let mut c = Client::new(v2_config()).unwrap();
        sent(&mut c);
        let mut all = Vec::new();
        for part in [startup, answers] {
            for chunk in part.chunks(sizes) {
                c.receive(chunk);
                let (events, err) = drain(&mut c);
                assert_eq!(err, None);
                all.extend(events);
            }
            if part == startup {
                c.query("q1").unwrap();
                c.query("q2").unwrap();
                c.query("q3").unwrap();
                let binary = &[Format::Binary];
                let call = FunctionCall::new(1, binary, &[None], Format::Binary).unwrap();
                c.function_call(&call).unwrap();
            }
        }
        assert_eq!(c.pending_requests(), 0);
        all
    };
    let whole = run(session.len());
    assert_eq!(whole.len(), 18, "{whole:?}");
    for size in [1, 2, 3, 7, 13] {
        assert_eq!(run(size), whole, "chunks of {size}");
    }
}

mod arbitrary_input {
    //! No input makes a 2.0 `Client` panic; an error is sticky, and commands are then refused.

    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_bytes_after_a_query(
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"Pblank\0T\0\x02a\0\0\0\0\x17\0\x04\xff\xff\xff\xffb\0\0\0\0\x19\xff\xff\xff\xff\xff\xff"[..]),
                Just(&b"H1\n"[..]),
                Just(&b"G"[..]),
            ],
            bytes in vec(any::<u8>(), 0..200),
            chunk in 1usize..20,
        ) {
            let mut c = connected();
            c.query("q").unwrap();
            sent(&mut c);
            let input = [prefix, &bytes[..]].concat();
            let mut fed = 0;
            for piece in input.chunks(chunk) {
                c.receive(piece);
                fed += piece.len();
                prop_assert!(c.buffered_len() <= fed);
                match drain(&mut c) {
                    (_, None) => {
                        // Poke the machine as an application would.
                        let _ = c.copy_data(b"x\n");
                        let _ = c.query("again");
                    }
                    (_, Some(e)) => {
                        prop_assert_eq!(c.poll_event().map(|e| e.map(ClientEvent::into_owned)), Err(e.clone()));
                        c.receive(b"more");
                        c.receive_eof();
                        prop_assert_eq!(c.poll_event().map(|e| e.map(ClientEvent::into_owned)), Err(e));
                        prop_assert!(c.query("x").is_err());
                        return Ok(());
                    }
                }
            }
            c.receive_eof();
            let _ = drain(&mut c);
        }
    }
}
