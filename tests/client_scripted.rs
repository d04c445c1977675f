//! The client role against a scripted server: every byte the "server" sends is written here,
//! which is how a hostile or broken server is imitated. Honest exchanges use the crate's own
//! server-side SCRAM; the live tests against real PostgreSQL servers are in `live_client.rs`.

use bytes::{Bytes, BytesMut};
use pgproto::auth::{ScramServer, ScramVerifier};
use pgproto::{
    AuthError, AuthMethod, Authentication, BackendKeyData, BackendMessage, ChannelBindingPolicy,
    Client, ClientConfig, ClientEvent, CommandComplete, CopyResponse, DataRow, DecodeError, Encode,
    Encryption, Error, ErrorFields, FieldCode, Format, FrontendDecoder, FrontendMessage, Limits,
    NegotiateProtocolVersion, ParameterStatus, ProtocolVersion, RequireAuth, SaslMechanisms,
    Target, TransactionStatus, UsageError,
};

fn encode(msgs: &[BackendMessage]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
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

/// Everything the client has queued, decoded as frontend messages.
fn sent(c: &mut Client, dec: &mut FrontendDecoder) -> Vec<FrontendMessage<'static>> {
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        dec.receive(&b);
    }
    while let Some(m) = dec.next().unwrap() {
        out.push(m);
    }
    out
}

fn error(code: &str, severity: &str) -> BackendMessage<'static> {
    BackendMessage::ErrorResponse(
        ErrorFields::new([
            (FieldCode::Severity, severity),
            (FieldCode::Code, code),
            (FieldCode::Message, "boom"),
        ])
        .unwrap(),
    )
}

fn ready(s: TransactionStatus) -> BackendMessage<'static> {
    BackendMessage::ReadyForQuery(s)
}

fn after_auth() -> Vec<BackendMessage<'static>> {
    vec![
        BackendMessage::Authentication(Authentication::Ok),
        BackendMessage::ParameterStatus(ParameterStatus::new("server_version", "18.4").unwrap()),
        BackendMessage::BackendKeyData(BackendKeyData::new(4242, [1, 2, 3, 4]).unwrap()),
        ready(TransactionStatus::Idle),
    ]
}

/// A client connected to a trusting scripted server.
fn connected() -> (Client, FrontendDecoder) {
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    let mut dec = FrontendDecoder::new();
    let first = sent(&mut c, &mut dec);
    assert!(matches!(first[..], [FrontendMessage::Startup(_)]));
    c.receive(&encode(&after_auth()));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
    (c, dec)
}

fn scram_config() -> ClientConfig {
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pencil".to_vec());
    config.scram_nonce = Some("rOprNGfwEbeRWgbNEkqO".into());
    config
}

/// Runs a SCRAM exchange against `server` up to (not including) the server's final message.
/// Returns the client, the decoder and the server-final message the honest server would send.
fn scram_until_final(config: ClientConfig) -> (Client, FrontendDecoder, Vec<u8>, ScramServer) {
    let mut c = Client::new(config).unwrap();
    let mut dec = FrontendDecoder::new();
    sent(&mut c, &mut dec);
    let mechs = SaslMechanisms::new(["SCRAM-SHA-256"]).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Sasl(mechs),
    )]));
    assert!(drain(&mut c).1.is_none());
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::SaslInitial));
    let [FrontendMessage::SaslInitialResponse(init)] = &sent(&mut c, &mut dec)[..] else {
        panic!("expected SASLInitialResponse");
    };
    assert_eq!(init.mechanism(), b"SCRAM-SHA-256");
    let verifier = ScramVerifier::new("pencil", b"0123456789abcdef", 4096).unwrap();
    let mut server = ScramServer::new(verifier)
        .with_nonce("3rfcNHYJY1ZVvWVs7j")
        .unwrap();
    let server_first = server
        .handle_client_first(
            init.data().unwrap(),
            pgproto::auth::ScramMechanism::ScramSha256,
            None,
        )
        .unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::SaslContinue(Bytes::from(server_first)),
    )]));
    assert!(drain(&mut c).1.is_none());
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::Sasl));
    let [FrontendMessage::SaslResponse(resp)] = &sent(&mut c, &mut dec)[..] else {
        panic!("expected SASLResponse");
    };
    let server_final = server.handle_client_final(resp.data()).unwrap();
    dec.expect_auth_response(None);
    (c, dec, server_final, server)
}

#[test]
fn trust_start_up_records_parameters_and_key() {
    let (c, _) = connected();
    assert_eq!(c.parameter("server_version"), Some("18.4"));
    assert_eq!(c.backend_key().unwrap().process_id(), 4242);
    assert_eq!(c.auth_method(), Some(AuthMethod::None));
    assert_eq!(c.transaction_status(), Some(TransactionStatus::Idle));
    let cancel = c.cancel_request().unwrap();
    assert_eq!(cancel.secret_key(), [1, 2, 3, 4]);
}

#[test]
fn honest_scram_exchange_connects() {
    let (mut c, _, server_final, server) = scram_until_final(scram_config());
    let mut msgs = vec![BackendMessage::Authentication(Authentication::SaslFinal(
        Bytes::from(server_final),
    ))];
    msgs.extend(after_auth());
    c.receive(&encode(&msgs));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert!(server.is_complete());
    assert!(events.contains(&ClientEvent::Authenticated {
        method: AuthMethod::ScramSha256
    }));
    assert!(c.is_ready());
}

#[test]
fn forged_scram_server_signature_is_refused() {
    let (mut c, _, server_final, _) = scram_until_final(scram_config());
    // Flip one character of the signature.
    let mut forged = server_final.clone();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    c.receive(&encode(&[
        BackendMessage::Authentication(Authentication::SaslFinal(Bytes::from(forged))),
        BackendMessage::Authentication(Authentication::Ok),
    ]));
    let (_, err) = drain(&mut c);
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Scram(_)))),
        "{err:?}"
    );
    // Sticky.
    assert!(matches!(
        c.poll_event(),
        Err(Error::Auth(AuthError::Scram(_)))
    ));
    assert!(matches!(c.query("SELECT 1"), Err(UsageError::Closed)));
}

#[test]
fn authentication_ok_before_scram_finishes_is_refused() {
    let (mut c, _, _, _) = scram_until_final(scram_config());
    c.receive(&encode(&after_auth()));
    let (events, err) = drain(&mut c);
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Incomplete { .. }))),
        "{err:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { .. })));
}

fn scram_with_server_first(server_first: &str) -> Option<Error> {
    let mut c = Client::new(scram_config()).unwrap();
    let mechs = SaslMechanisms::new(["SCRAM-SHA-256"]).unwrap();
    c.receive(&encode(&[
        BackendMessage::Authentication(Authentication::Sasl(mechs)),
        BackendMessage::Authentication(Authentication::SaslContinue(Bytes::copy_from_slice(
            server_first.as_bytes(),
        ))),
    ]));
    drain(&mut c).1
}

#[test]
fn server_nonce_must_extend_ours() {
    let err = scram_with_server_first("r=someoneelse123,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096");
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Scram(_)))),
        "{err:?}"
    );
    let err = scram_with_server_first("r=rOprNGfwEbeRWgbNEkqO,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096");
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Scram(_)))),
        "a nonce not longer than ours: {err:?}"
    );
}

#[test]
fn absurd_iteration_count_is_refused() {
    let err = scram_with_server_first(
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=2000000000",
    );
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Scram(_)))),
        "{err:?}"
    );
    let err = scram_with_server_first("r=rOprNGfwEbeRWgbNEkqOxyz,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=0");
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Scram(_)))),
        "{err:?}"
    );
}

/// A scripted SCRAM server's first message with iteration count `i`, against a client built
/// from `config`: the error (if any) and the messages the client sent after its initial
/// response.
fn scram_iterations(
    config: ClientConfig,
    i: u32,
) -> (Option<Error>, Vec<FrontendMessage<'static>>) {
    let mut c = Client::new(config).unwrap();
    let mut dec = FrontendDecoder::new();
    sent(&mut c, &mut dec); // StartupMessage
    let mechs = SaslMechanisms::new(["SCRAM-SHA-256"]).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Sasl(mechs),
    )]));
    assert!(drain(&mut c).1.is_none());
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::SaslInitial));
    let FrontendMessage::SaslInitialResponse(first) = &sent(&mut c, &mut dec)[0] else {
        panic!("no SASLInitialResponse")
    };
    let first = String::from_utf8(first.data().unwrap().to_vec()).unwrap();
    let nonce = first.split("r=").nth(1).unwrap().to_string();
    let server_first = format!("r={nonce}server,s=MDEyMzQ1Njc4OWFiY2RlZg==,i={i}");
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::SaslContinue(Bytes::from(server_first)),
    )]));
    let err = drain(&mut c).1;
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::Sasl));
    (err, sent(&mut c, &mut dec))
}

#[test]
fn a_cheap_iteration_count_is_refused_before_the_proof_is_sent() {
    // i=1 would make the proof cheap to brute-force offline: refused, nothing sent (libpq
    // would send the proof).
    let (err, after) = scram_iterations(scram_config(), 1);
    assert!(
        matches!(
            err,
            Some(Error::Auth(AuthError::Scram(
                pgproto::auth::ScramError::IterationCount {
                    count: 1,
                    min: 4096,
                    ..
                }
            )))
        ),
        "{err:?}"
    );
    assert!(after.is_empty(), "{after:?}");
    // RFC 7677's minimum, PostgreSQL's default, is accepted: the proof goes out.
    let (err, after) = scram_iterations(scram_config(), 4096);
    assert!(err.is_none(), "{err:?}");
    assert!(
        matches!(after[..], [FrontendMessage::SaslResponse(_)]),
        "{after:?}"
    );
    // A lower bound set by the application lets a low count through.
    let mut config = scram_config();
    config.min_scram_iterations = 1000;
    let (err, after) = scram_iterations(config, 1000);
    assert!(err.is_none(), "{err:?}");
    assert!(
        matches!(after[..], [FrontendMessage::SaslResponse(_)]),
        "{after:?}"
    );
    // The one default cap, in both places.
    assert_eq!(
        ClientConfig::new("a").max_scram_iterations,
        pgproto::auth::DEFAULT_MAX_ITERATIONS
    );
}

#[test]
fn bytes_after_ssl_accept_are_refused() {
    let mut config = ClientConfig::new("alice");
    config.encryption = Encryption::Ssl { required: true };
    let mut c = Client::new(config).unwrap();
    let first = c.poll_transmit().unwrap();
    assert_eq!(&first[..], &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    // 'S' followed by an injected plaintext message (CVE-2021-23222).
    let mut bytes = vec![b'S'];
    bytes.extend(encode(&[BackendMessage::Authentication(
        Authentication::Ok,
    )]));
    c.receive(&bytes);
    let (events, err) = drain(&mut c);
    assert!(events.is_empty());
    assert!(
        matches!(
            err,
            Some(Error::BufferedBeforeEncryption {
                what: "SSL",
                len: 9
            })
        ),
        "{err:?}"
    );
}

#[test]
fn ssl_accept_then_handshake_then_startup() {
    let mut config = ClientConfig::new("alice");
    config.encryption = Encryption::Ssl { required: true };
    let mut c = Client::new(config).unwrap();
    let _ = c.poll_transmit();
    c.receive(b"S");
    let (events, err) = drain(&mut c);
    assert!(err.is_none());
    assert_eq!(events, [ClientEvent::SslResponse { accepted: true }]);
    assert!(c.poll_transmit().is_none(), "nothing before the handshake");
    c.tls_established(Some(vec![7; 32])).unwrap();
    let mut dec = FrontendDecoder::new();
    assert!(matches!(
        sent(&mut c, &mut dec)[..],
        [FrontendMessage::Startup(_)]
    ));
    assert!(c.is_tls());
}

#[test]
fn ssl_refusals() {
    // Required: 'N' is fatal.
    let mut config = ClientConfig::new("alice");
    config.encryption = Encryption::Ssl { required: true };
    let mut c = Client::new(config.clone()).unwrap();
    c.receive(b"N");
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::EncryptionRefused { what: "SSL" })
    ));
    // Preferred: 'N' continues in plaintext.
    config.encryption = Encryption::Ssl { required: false };
    let mut c = Client::new(config.clone()).unwrap();
    let _ = c.poll_transmit();
    c.receive(b"N");
    let (events, err) = drain(&mut c);
    assert!(err.is_none());
    assert_eq!(events, [ClientEvent::SslResponse { accepted: false }]);
    let mut dec = FrontendDecoder::new();
    assert!(matches!(
        sent(&mut c, &mut dec)[..],
        [FrontendMessage::Startup(_)]
    ));
    // An ErrorResponse instead of an answer: reported without its text.
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&[error("XX000", "FATAL")]));
    let err = drain(&mut c).1.unwrap();
    assert_eq!(err, Error::EncryptionRequestRejected { what: "SSL" });
    assert!(!err.to_string().contains("boom"));
}

#[test]
fn negotiate_protocol_version_rules() {
    fn with(
        max: ProtocolVersion,
        n: NegotiateProtocolVersion,
        params: &[(&str, &str)],
    ) -> (Vec<ClientEvent>, Option<Error>) {
        let mut config = ClientConfig::new("alice");
        config.max_protocol_version = max;
        config.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut c = Client::new(config).unwrap();
        c.receive(&encode(&[BackendMessage::NegotiateProtocolVersion(n)]));
        drain(&mut c)
    }
    // The version field is a whole version word: major << 16 | minor.
    let npv = |minor: i32, opts: &[&str]| {
        NegotiateProtocolVersion::new(0x0003_0000 | minor, opts.iter()).unwrap()
    };
    // Above the request.
    let (_, err) = with(ProtocolVersion::V3_0, npv(2, &[]), &[]);
    assert!(
        matches!(err, Some(Error::ProtocolNegotiation { .. })),
        "{err:?}"
    );
    // 3.1 does not exist.
    let (_, err) = with(ProtocolVersion::V3_2, npv(1, &[]), &[]);
    assert!(
        matches!(err, Some(Error::ProtocolNegotiation { .. })),
        "{err:?}"
    );
    // An option that does not start with _pq_.
    let (_, err) = with(ProtocolVersion::V3_2, npv(0, &["search_path"]), &[]);
    assert!(
        matches!(err, Some(Error::ProtocolNegotiation { .. })),
        "{err:?}"
    );
    // A fair downgrade, with an unrecognised option we asked for.
    let (events, err) = with(
        ProtocolVersion::V3_2,
        npv(0, &["_pq_.x"]),
        &[("_pq_.x", "1")],
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events,
        [ClientEvent::ProtocolNegotiated {
            version: ProtocolVersion::V3_0,
            unrecognized: vec![Bytes::from_static(b"_pq_.x")]
        }]
    );
    // Below the minimum.
    let mut config = ClientConfig::new("alice");
    config.max_protocol_version = ProtocolVersion::V3_2;
    config.min_protocol_version = ProtocolVersion::V3_2;
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&[BackendMessage::NegotiateProtocolVersion(npv(
        0,
        &[],
    ))]));
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::ProtocolNegotiation { .. })
    ));
    // Twice.
    let mut config = ClientConfig::new("alice");
    config.max_protocol_version = ProtocolVersion::V3_2;
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&[
        BackendMessage::NegotiateProtocolVersion(npv(0, &[])),
        BackendMessage::NegotiateProtocolVersion(npv(0, &[])),
    ]));
    let (events, err) = drain(&mut c);
    assert_eq!(events.len(), 1, "the first is delivered before the error");
    assert!(matches!(err, Some(Error::ProtocolNegotiation { .. })));
}

/// What PostgreSQL 15 really answers a 3.2 StartupMessage (captured from a live server): the
/// version field is the version word 0x00030000, not a bare minor number. A bare minor (as the
/// documentation's "newest minor version" could be read) is refused, as libpq refuses it.
#[test]
fn negotiate_protocol_version_carries_a_version_word() {
    let start = || {
        let mut config = ClientConfig::new("alice");
        config.max_protocol_version = ProtocolVersion::V3_2;
        Client::new(config).unwrap()
    };
    let mut c = start();
    c.receive(b"v\0\0\0\x0c\0\x03\0\0\0\0\0\0");
    c.receive(&encode(&after_auth()));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events[0],
        ClientEvent::ProtocolNegotiated {
            version: ProtocolVersion::V3_0,
            unrecognized: vec![]
        }
    );
    assert_eq!(c.protocol_version(), ProtocolVersion::V3_0);
    for bare in [0, 2, 0x0002_0000, -1] {
        let mut c = start();
        c.receive(&encode(&[BackendMessage::NegotiateProtocolVersion(
            NegotiateProtocolVersion::new(bare, std::iter::empty::<&str>()).unwrap(),
        )]));
        assert!(
            matches!(drain(&mut c).1, Some(Error::ProtocolNegotiation { .. })),
            "{bare:#x}"
        );
    }
}

#[test]
fn oversized_cancel_key_is_refused() {
    let mut config = ClientConfig::new("alice");
    config.max_protocol_version = ProtocolVersion::V3_2;
    let mut c = Client::new(config).unwrap();
    // BackendKeyData with a 300-byte key, written by hand (the constructor refuses it).
    let mut bytes = encode(&[BackendMessage::Authentication(Authentication::Ok)]);
    bytes.push(b'K');
    bytes.extend_from_slice(&(4 + 4 + 300i32).to_be_bytes());
    bytes.extend_from_slice(&7i32.to_be_bytes());
    bytes.extend_from_slice(&[9; 300]);
    c.receive(&bytes);
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::Decode(DecodeError::InvalidLength {
                message: "BackendKeyData",
                ..
            }))
        ),
        "{err:?}"
    );
    // A 32-byte key is fine in 3.2 ...
    let mut config = ClientConfig::new("alice");
    config.max_protocol_version = ProtocolVersion::V3_2;
    let mut c = Client::new(config).unwrap();
    let mut msgs = vec![BackendMessage::Authentication(Authentication::Ok)];
    msgs.push(BackendMessage::BackendKeyData(
        BackendKeyData::new(7, [5; 32]).unwrap(),
    ));
    msgs.push(ready(TransactionStatus::Idle));
    c.receive(&encode(&msgs));
    assert!(drain(&mut c).1.is_none());
    assert_eq!(c.cancel_request().unwrap().secret_key().len(), 32);
    // ... but not in 3.0.
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    c.receive(&encode(&msgs));
    assert!(matches!(drain(&mut c).1, Some(Error::Decode(_))));
}

#[test]
fn require_auth_and_channel_binding_policies() {
    // require_auth=scram-sha-256: a cleartext request is refused before the password is sent.
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pw".to_vec());
    config.require_auth = "scram-sha-256".parse::<RequireAuth>().unwrap();
    let mut c = Client::new(config.clone()).unwrap();
    let _ = c.poll_transmit();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::CleartextPassword,
    )]));
    let err = drain(&mut c).1;
    assert!(
        matches!(
            err,
            Some(Error::Auth(AuthError::MethodNotAllowed {
                method: "password"
            }))
        ),
        "{err:?}"
    );
    assert!(c.poll_transmit().is_none(), "the password must not be sent");
    // ... and a server that skips authentication is refused.
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&after_auth()));
    let err = drain(&mut c).1;
    assert!(
        matches!(err, Some(Error::Auth(AuthError::Incomplete { .. }))),
        "{err:?}"
    );
    // require_auth=!md5.
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pw".to_vec());
    config.require_auth = "!md5".parse().unwrap();
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Md5Password { salt: [1, 2, 3, 4] },
    )]));
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::Auth(AuthError::MethodNotAllowed { method: "md5" }))
    ));
    // channel_binding=require: trust is refused ...
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pw".to_vec());
    config.channel_binding = ChannelBindingPolicy::Require;
    let mut c = Client::new(config.clone()).unwrap();
    c.receive(&encode(&after_auth()));
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::Auth(AuthError::Incomplete { .. }))
    ));
    // ... and so is SCRAM without PLUS.
    let mut c = Client::new(config).unwrap();
    let _ = c.poll_transmit();
    let mechs = SaslMechanisms::new(["SCRAM-SHA-256"]).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Sasl(mechs),
    )]));
    let err = drain(&mut c).1;
    assert!(
        matches!(
            err,
            Some(Error::Auth(AuthError::ChannelBindingUnavailable { .. }))
        ),
        "{err:?}"
    );
    assert!(c.poll_transmit().is_none());
}

#[test]
fn md5_and_cleartext_passwords_are_sent() {
    let mut config = ClientConfig::new("postgres");
    config.password = Some(b"postgres".to_vec());
    let mut c = Client::new(config.clone()).unwrap();
    let mut dec = FrontendDecoder::new();
    sent(&mut c, &mut dec);
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Md5Password { salt: [1, 2, 3, 4] },
    )]));
    assert!(drain(&mut c).1.is_none());
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::Password));
    let [FrontendMessage::PasswordMessage(p)] = &sent(&mut c, &mut dec)[..] else {
        panic!()
    };
    assert_eq!(
        p.password(),
        pgproto::auth::md5::password_hash("postgres", "postgres", [1, 2, 3, 4]).as_bytes()
    );
    // No password configured.
    config.password = None;
    let mut c = Client::new(config).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::CleartextPassword,
    )]));
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::Auth(AuthError::MissingPassword))
    ));
}

#[test]
fn start_up_errors_and_legacy_servers() {
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    c.receive(&encode(&[error("28P01", "FATAL")]));
    let err = drain(&mut c).1.unwrap();
    let Error::Server(f) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(f.code(), Some(&b"28P01"[..]));
    assert!(err.to_string().contains("28P01"));
    // A protocol-2.0 server's error: 'E' and text, no length word.
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    c.receive(b"EFATAL:  unsupported frontend protocol 3.0");
    assert!(drain(&mut c).1.is_none(), "waits for the NUL");
    c.receive(b"\n\0");
    let err = drain(&mut c).1;
    assert_eq!(
        err,
        Some(Error::LegacyServer {
            message: "FATAL:  unsupported frontend protocol 3.0".into()
        })
    );
    // Kerberos V5 is not supported.
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::KerberosV5,
    )]));
    assert!(matches!(
        drain(&mut c).1,
        Some(Error::Auth(AuthError::Unsupported { .. }))
    ));
}

#[test]
fn gss_tokens_pass_through() {
    let mut c = Client::new(ClientConfig::new("alice")).unwrap();
    let mut dec = FrontendDecoder::new();
    sent(&mut c, &mut dec);
    c.receive(&encode(&[BackendMessage::Authentication(
        Authentication::Gss,
    )]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none());
    assert_eq!(
        events,
        [ClientEvent::AuthenticationRequest(Authentication::Gss)]
    );
    let token = FrontendMessage::GssResponse(pgproto::GssResponse::new(&b"token"[..]).unwrap());
    c.send_auth_response(&token).unwrap();
    dec.expect_auth_response(Some(pgproto::AuthResponseKind::Gss));
    assert_eq!(sent(&mut c, &mut dec), [token]);
    c.receive(&encode(&after_auth()));
    let (events, err) = drain(&mut c);
    assert!(err.is_none());
    assert!(events.contains(&ClientEvent::Authenticated {
        method: AuthMethod::Gss
    }));
}

fn response(e: &ClientEvent) -> Option<(u64, &'static str)> {
    match e {
        ClientEvent::Response { request, message } => Some((request.get(), message.name())),
        ClientEvent::Skipped { request } => Some((request.get(), "Skipped")),
        _ => None,
    }
}

#[test]
fn pipelined_requests_are_matched_and_skipped_after_an_error() {
    let (mut c, mut dec) = connected();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(c.parse("", &format!("SELECT {i}"), &[]).unwrap());
        let bind = pgproto::Bind::new("", "", &[], &[], &[]).unwrap();
        ids.push(c.bind(&bind).unwrap());
        ids.push(c.execute("", 0).unwrap());
        ids.push(c.sync().unwrap());
    }
    assert_eq!(c.pending_sync_points(), 3);
    assert_eq!(sent(&mut c, &mut dec).len(), 12);
    let row = |v: &[u8]| BackendMessage::DataRow(DataRow::new([Some(v)]).unwrap());
    let done = || BackendMessage::CommandComplete(CommandComplete::new("SELECT 1").unwrap());
    c.receive(&encode(&[
        BackendMessage::ParseComplete,
        BackendMessage::BindComplete,
        row(b"0"),
        done(),
        ready(TransactionStatus::Idle),
        // The second segment fails at Parse: Bind and Execute are skipped.
        error("42601", "ERROR"),
        ready(TransactionStatus::Idle),
        BackendMessage::ParseComplete,
        BackendMessage::BindComplete,
        row(b"2"),
        done(),
        ready(TransactionStatus::Idle),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    let got: Vec<_> = events.iter().filter_map(response).collect();
    let id = |i: usize| ids[i].get();
    assert_eq!(
        got,
        [
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
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn requests_sent_after_an_unsynced_error_are_skipped_at_once() {
    let (mut c, _) = connected();
    let p = c.parse("s", "SELEC", &[]).unwrap();
    c.receive(&encode(&[error("42601", "ERROR")]));
    let (events, _) = drain(&mut c);
    assert_eq!(
        events.iter().filter_map(response).collect::<Vec<_>>(),
        [(p.get(), "ErrorResponse")]
    );
    let d = c.describe(Target::Statement, "s").unwrap();
    let (events, _) = drain(&mut c);
    assert_eq!(
        events.iter().filter_map(response).collect::<Vec<_>>(),
        [(d.get(), "Skipped")]
    );
    let s = c.sync().unwrap();
    c.receive(&encode(&[ready(TransactionStatus::Idle)]));
    let (events, _) = drain(&mut c);
    assert_eq!(
        events.iter().filter_map(response).collect::<Vec<_>>(),
        [(s.get(), "ReadyForQuery")]
    );
}

#[test]
fn simple_query_with_several_statements_an_error_and_async_messages() {
    let (mut c, _) = connected();
    let q = c.query("SELECT 1; SELECT 1/0; SELECT 2").unwrap();
    c.receive(&encode(&[
        BackendMessage::RowDescription(
            pgproto::RowDescription::new(&[pgproto::FieldDescription {
                name: b"x",
                table_oid: 0,
                column_id: 0,
                type_oid: 23,
                type_size: 4,
                type_modifier: -1,
                format: Format::Text,
            }])
            .unwrap(),
        ),
        BackendMessage::DataRow(DataRow::new([Some(&b"1"[..])]).unwrap()),
        BackendMessage::NoticeResponse(ErrorFields::new([(FieldCode::Message, "hi")]).unwrap()),
        BackendMessage::CommandComplete(CommandComplete::new("SELECT 1").unwrap()),
        BackendMessage::ParameterStatus(ParameterStatus::new("TimeZone", "UTC").unwrap()),
        error("22012", "ERROR"),
        ready(TransactionStatus::Idle),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Notice(_))));
    assert_eq!(c.parameter("TimeZone"), Some("UTC"));
    let got: Vec<_> = events.iter().filter_map(response).collect();
    let q = q.get();
    assert_eq!(
        got,
        [
            (q, "RowDescription"),
            (q, "DataRow"),
            (q, "CommandComplete"),
            (q, "ErrorResponse"),
            (q, "ReadyForQuery"),
        ]
    );
}

#[test]
fn copy_in_and_out() {
    let (mut c, mut dec) = connected();
    let q = c.query("COPY t FROM STDIN").unwrap();
    assert!(c.copy_data(b"x").is_err(), "not in COPY yet");
    let resp = CopyResponse::new(Format::Text, &[Format::Text]).unwrap();
    c.receive(&encode(&[BackendMessage::CopyInResponse(resp.clone())]));
    let (mut events, _) = drain(&mut c);
    assert!(matches!(
        c.query("SELECT 1"),
        Err(UsageError::NotAllowed { .. })
    ));
    c.copy_data(b"1\n").unwrap();
    c.copy_done().unwrap();
    let msgs = sent(&mut c, &mut dec);
    assert_eq!(msgs.len(), 3);
    assert!(matches!(msgs[2], FrontendMessage::CopyDone));
    c.receive(&encode(&[
        BackendMessage::CommandComplete(CommandComplete::new("COPY 1").unwrap()),
        ready(TransactionStatus::Idle),
    ]));
    let (more, err) = drain(&mut c);
    events.extend(more);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events.iter().filter_map(response).collect::<Vec<_>>(),
        [
            (q.get(), "CopyInResponse"),
            (q.get(), "CommandComplete"),
            (q.get(), "ReadyForQuery")
        ]
    );
    // COPY TO STDOUT.
    let q = c.query("COPY t TO STDOUT").unwrap();
    c.receive(&encode(&[
        BackendMessage::CopyOutResponse(resp),
        BackendMessage::CopyData(pgproto::CopyData::new(&b"1\n"[..]).unwrap()),
        BackendMessage::CopyDone,
        BackendMessage::CommandComplete(CommandComplete::new("COPY 1").unwrap()),
        ready(TransactionStatus::Idle),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.iter().filter_map(response).count(), 5);
    assert!(events.iter().all(|e| response(e).unwrap().0 == q.get()));
}

#[test]
fn eof_mid_query_and_after_terminate() {
    let (mut c, _) = connected();
    c.query("SELECT pg_sleep(10)").unwrap();
    c.receive_eof();
    assert!(matches!(drain(&mut c).1, Some(Error::UnexpectedEof { .. })));
    let (mut c, mut dec) = connected();
    c.terminate().unwrap();
    assert_eq!(sent(&mut c, &mut dec), [FrontendMessage::Terminate]);
    c.receive_eof();
    let (events, err) = drain(&mut c);
    assert!(err.is_none());
    assert_eq!(events, [ClientEvent::Closed]);
}

#[test]
fn a_message_out_of_place_is_a_protocol_violation() {
    let (mut c, _) = connected();
    c.receive(&encode(&[BackendMessage::BindComplete]));
    let err = drain(&mut c).1;
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "BindComplete",
                ..
            })
        ),
        "{err:?}"
    );
    // Events decoded before the error are still delivered.
    let (mut c, _) = connected();
    c.query("SELECT 1").unwrap();
    c.receive(&encode(&[
        BackendMessage::CommandComplete(CommandComplete::new("SELECT 0").unwrap()),
        BackendMessage::ParseComplete,
    ]));
    let (events, err) = drain(&mut c);
    assert_eq!(events.len(), 1);
    assert!(err.is_some());
}

#[test]
fn bytes_split_anywhere_give_the_same_events() {
    let script = {
        let mut v = encode(&after_auth());
        v.extend(encode(&[BackendMessage::DataRow(
            DataRow::new([Some(&b"abc"[..]), None]).unwrap(),
        )]));
        v
    };
    let run = |chunk: usize| {
        let mut c = Client::new(ClientConfig::new("alice")).unwrap();
        let mut all = Vec::new();
        for part in script.chunks(chunk) {
            c.receive(part);
            let (events, err) = drain(&mut c);
            all.extend(events);
            if let Some(e) = err {
                all.push(ClientEvent::UnsolicitedError(
                    ErrorFields::new([(FieldCode::Message, e.to_string())]).unwrap(),
                ));
                break;
            }
        }
        all
    };
    let whole = run(script.len());
    for chunk in [1, 2, 3, 7] {
        assert_eq!(run(chunk), whole, "chunk size {chunk}");
    }
}

#[test]
fn invalid_configurations_are_refused() {
    let mut config = ClientConfig::new("al\0ice");
    assert!(matches!(
        Client::new(config.clone()),
        Err(UsageError::Encode(_))
    ));
    config.user = "alice".into();
    config.max_protocol_version = ProtocolVersion { major: 3, minor: 1 };
    assert!(matches!(
        Client::new(config.clone()),
        Err(UsageError::InvalidConfig { .. })
    ));
    config.max_protocol_version = ProtocolVersion::V3_0;
    config.min_protocol_version = ProtocolVersion::V3_2;
    assert!(matches!(
        Client::new(config),
        Err(UsageError::InvalidConfig { .. })
    ));
    let _ = Limits::default();
}

#[test]
fn responses_follow_the_protocol_table() {
    use pgproto::{FieldDescription, ParameterDescription, RowDescription};
    let row_description = || {
        BackendMessage::RowDescription(
            RowDescription::new(&[FieldDescription::new(b"a", 25)]).unwrap(),
        )
    };
    // A statement Describe is answered by ParameterDescription, then RowDescription or NoData,
    // as PostgreSQL always does (src/protocol.rs); RowDescription first breaks the protocol.
    let (mut c, _) = connected();
    c.describe(Target::Statement, "s").unwrap();
    c.sync().unwrap();
    c.receive(&encode(&[row_description()]));
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "RowDescription",
                ..
            })
        ),
        "{err:?}"
    );

    let (mut c, _) = connected();
    let d2 = c.describe(Target::Statement, "s").unwrap();
    c.sync().unwrap();
    c.receive(&encode(&[
        BackendMessage::ParameterDescription(ParameterDescription::new(&[23]).unwrap()),
        row_description(),
        ready(TransactionStatus::Idle),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    let answered: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { request, message } => Some((*request, message.name())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answered[..2],
        [(d2, "ParameterDescription"), (d2, "RowDescription")]
    );

    // After an error in a simple Query only ReadyForQuery may follow: a CopyInResponse there
    // is a protocol violation (PostgreSQL skips the rest of the query string).
    let (mut c, _) = connected();
    c.query("SELECT 1/0; COPY t FROM STDIN").unwrap();
    c.receive(&encode(&[
        error("22012", "ERROR"),
        BackendMessage::CopyInResponse(CopyResponse::new(Format::Text, &[]).unwrap()),
    ]));
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "CopyInResponse",
                ..
            })
        ),
        "{err:?}"
    );

    // A FunctionCall gets one result (or one error), then ReadyForQuery; a second result is a
    // protocol violation.
    let (mut c, _) = connected();
    let call = pgproto::FunctionCall::new(1, &[], &[Some(&b"x"[..])], Format::Text).unwrap();
    c.function_call(&call).unwrap();
    c.receive(&encode(&[
        BackendMessage::FunctionCallResponse(Some(Bytes::from_static(b"1"))),
        BackendMessage::FunctionCallResponse(Some(Bytes::from_static(b"2"))),
    ]));
    let (_, err) = drain(&mut c);
    assert!(
        matches!(
            err,
            Some(Error::UnexpectedMessage {
                message: "FunctionCallResponse",
                ..
            })
        ),
        "{err:?}"
    );
}

/// A DataRow whose values do not match its frame is handed out like any other: reading its
/// columns gives the error (values are checked as they are read), and since the frame itself
/// was whole the session carries on, as libpq (which fails that result) does.
#[test]
fn a_malformed_row_fails_when_read_and_the_session_carries_on() {
    let (mut c, _) = connected();
    let q = c.query("SELECT v FROM t").unwrap();
    let v = pgproto::FieldDescription::new(b"v", 25);
    let mut bytes = encode(&[BackendMessage::RowDescription(
        pgproto::RowDescription::new(&[v]).unwrap(),
    )]);
    // One column announced; its length (9) runs past the frame's 3 bytes.
    bytes.extend_from_slice(b"D\0\0\0\x0d\0\x01\0\0\0\x09abc");
    bytes.extend_from_slice(b"D\0\0\0\x0b\0\x01\0\0\0\x01b");
    bytes.extend_from_slice(&encode(&[
        BackendMessage::CommandComplete(CommandComplete::new("SELECT 2").unwrap()),
        ready(TransactionStatus::Idle),
    ]));
    c.receive(&bytes);
    let mut rows = Vec::new();
    let mut done = false;
    while let Some(event) = c.poll_event().unwrap() {
        match event {
            ClientEvent::Response {
                request,
                message: BackendMessage::DataRow(row),
            } => {
                assert_eq!(request, q);
                rows.push(row.columns().collect::<Result<Vec<_>, _>>().map(|v| {
                    v.into_iter()
                        .map(|c| c.map(<[u8]>::to_vec))
                        .collect::<Vec<_>>()
                }));
            }
            ClientEvent::Response {
                message: BackendMessage::ReadyForQuery(_),
                ..
            } => done = true,
            _ => {}
        }
    }
    assert_eq!(
        rows,
        [
            Err(DecodeError::Truncated {
                message: "DataRow",
                field: "column value"
            }),
            Ok(vec![Some(b"b".to_vec())]),
        ]
    );
    assert!(done);
    assert!(c.is_ready());
}

/// `poll_row` hands out only what `poll_event` would hand out as a row, without consuming
/// anything else: a row of another width than announced stays for `poll_event` to report, and
/// nothing comes before the RowDescription has been handed out.
#[test]
fn poll_row_lends_announced_rows_only() {
    let (mut c, _) = connected();
    let q = c.query("SELECT v FROM t").unwrap();
    let mut bytes = encode(&[BackendMessage::RowDescription(
        pgproto::RowDescription::new(&[pgproto::FieldDescription::new(b"v", 25)]).unwrap(),
    )]);
    bytes.extend_from_slice(b"D\0\0\0\x0b\0\x01\0\0\0\x01a");
    bytes.extend_from_slice(b"D\0\0\0\x0b\0\x01\0\0\0\x01b");
    bytes.extend_from_slice(b"D\0\0\0\x0e\0\x02\xff\xff\xff\xff\xff\xff\xff\xff");
    c.receive(&bytes);
    // The RowDescription comes first, through poll_event.
    assert!(c.poll_row().is_none());
    let Some(ClientEvent::Response { request, message }) = c.poll_event().unwrap() else {
        panic!("no RowDescription");
    };
    assert_eq!(request, q);
    assert!(matches!(message, BackendMessage::RowDescription(_)));
    let mut values = Vec::new();
    while let Some((request, row)) = c.poll_row() {
        assert_eq!(request, q);
        values.push(row.columns().next().unwrap().unwrap().unwrap().to_vec());
    }
    assert_eq!(values, [b"a".to_vec(), b"b".to_vec()]);
    // The two-column row is left for poll_event, which fails the connection on it.
    assert_eq!(
        c.poll_event(),
        Err(Error::UnexpectedFieldCount {
            expected: Some(1),
            received: 2
        })
    );
    assert!(c.poll_row().is_none());
}
