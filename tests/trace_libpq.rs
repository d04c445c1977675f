//! Protocol traces (`pgproto::trace`) against libpq 18.6's own, on the sessions recorded in
//! `tests/data/traces` (psycopg 3.3.9 with libpq 18.6 against PostgreSQL 18, with libpq's
//! trace on; see `tests/data/MANIFEST.md`).
//!
//! - `inspect --trace` on the recorded byte streams gives libpq's lines, line for line in each
//!   direction, but for what libpq does not trace (AuthenticationOk, the FATAL error that ends a
//!   failed authentication) and its extra line after AuthenticationMD5Password.
//! - A `Client` fed the recorded server stream, and a `Server` fed the recorded client stream,
//!   trace what libpq traced of the messages they share with it.
//!
//! No server is started: the live counterpart, on fresh recordings, is `tests/live_trace.rs`.

mod support;

use std::sync::{Arc, Mutex};

use pgproto::trace::{TraceFlags, Tracer};
use pgproto::{
    Client, ClientConfig, ClientEvent, Encryption, FieldDescription, Format, FrontendMessage,
    ProtocolVersion, RowDescription, Server, ServerAuth, ServerConfig, ServerEvent,
    TransactionStatus,
};
use support::trace::{compare, data_dir, inspect_trace, lines, read, SESSIONS};

#[test]
fn inspect_trace_gives_libpqs_lines() {
    let dir = data_dir();
    for s in SESSIONS {
        let ours = inspect_trace(
            &dir.join(format!("{}-1.client", s.name)),
            &dir.join(format!("{}-1.server", s.name)),
        );
        let libpq = lines(&read(&dir, s.name, "libpq"));
        assert!(libpq.len() > 3, "{}: libpq's trace is empty", s.name);
        if let Err(e) = compare(&ours, &libpq, s.auth_fails) {
            panic!("session {}: {e}", s.name);
        }
    }
}

#[test]
fn the_recordings_cover_what_the_trace_must_render() {
    let dir = data_dir();
    let all: Vec<String> = SESSIONS
        .iter()
        .flat_map(|s| lines(&read(&dir, s.name, "libpq")))
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    for name in [
        "SSLRequest",
        "SSLResponse",
        "StartupMessage",
        "AuthenticationSASL",
        "SASLInitialResponse",
        "SASLResponse",
        "AuthenticationMD5Password",
        "AuthenticationCleartextPassword",
        "PasswordMessage",
        "BackendKeyData",
        "Query",
        "EmptyQueryResponse",
        "Parse",
        "Bind",
        "Describe",
        "Execute",
        "Sync",
        "Flush",
        "Close",
        "CloseComplete",
        "ParameterDescription",
        "NoData",
        "ErrorResponse",
        "NoticeResponse",
        "NotificationResponse",
        "CopyInResponse",
        "CopyOutResponse",
        "CopyData",
        "CopyDone",
        "CopyFail",
        "Terminate",
    ] {
        assert!(
            all.iter().any(|l| l.split('\t').nth(2) == Some(name)),
            "no {name} in the recordings"
        );
    }
    // Binary parameters and results, a NULL, a 32-byte cancel key of protocol 3.2.
    assert!(all
        .iter()
        .any(|l| l.starts_with("F\t") && l.contains("\tBind\t") && l.ends_with(" 1 1")));
    assert!(all
        .iter()
        .any(|l| l.contains("\tDataRow\t") && l.contains(" -1")));
    assert!(all.iter().any(|l| l.starts_with("B\t40\tBackendKeyData\t")));
}

#[test]
fn the_comparison_finds_any_other_difference() {
    let dir = data_dir();
    let s = SESSIONS[0];
    let ours = inspect_trace(
        &dir.join(format!("{}-1.client", s.name)),
        &dir.join(format!("{}-1.server", s.name)),
    );
    let libpq = lines(&read(&dir, s.name, "libpq"));
    assert!(compare(&ours, &libpq, false).is_ok());
    // One byte changed, one line dropped, AuthenticationOk missing, a failure not expected.
    let mut changed = ours.clone();
    let last = changed.len() - 2;
    changed[last].push(b'x');
    assert!(compare(&changed, &libpq, false).is_err());
    let mut dropped = ours.clone();
    dropped.remove(5);
    assert!(compare(&dropped, &libpq, false).is_err());
    let no_ok: Vec<Vec<u8>> = ours
        .iter()
        .filter(|l| !l.ends_with(b"AuthenticationOk"))
        .cloned()
        .collect();
    assert!(compare(&no_ok, &libpq, false).is_err());
    assert!(compare(&ours, &libpq, true).is_err());
}

/// A sink keeping the lines.
fn collecting_tracer() -> (Tracer, Arc<Mutex<Vec<Vec<u8>>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let tracer = Tracer::new(move |l: &[u8]| sink.lock().unwrap().push(l.to_vec()))
        .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS);
    (tracer, lines)
}

/// The offset just after the first ReadyForQuery of a server stream (after the one-byte SSL
/// answer at its start, if `ssl`), or the stream's end.
fn after_first_ready(stream: &[u8], ssl: bool) -> usize {
    let mut at = usize::from(ssl);
    while let Some(h) = stream.get(at..at + 5) {
        let end = at + 1 + u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        if h[0] == b'Z' {
            return end;
        }
        at = end;
    }
    stream.len()
}

/// The client nonce libpq used, from its SASLInitialResponse line.
fn client_nonce(libpq: &[Vec<u8>]) -> Option<String> {
    let line = libpq
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .find(|l| l.contains("\tSASLInitialResponse\t"))?;
    let at = line.find("r=")? + 2;
    Some(line[at..].trim_end_matches('\'').to_owned())
}

fn drain(client: &mut Client) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    // An error (the failed authentication) ends the events too.
    while let Ok(Some(e)) = client.poll_event() {
        events.push(e.into_owned());
    }
    while client.poll_transmit().is_some() {}
    events
}

#[test]
fn a_client_fed_the_recorded_server_traces_as_libpq() {
    let dir = data_dir();
    // (session, user, password, newest protocol, SSLRequest first, only the start-up)
    let cases = [
        (
            "md5",
            "md5_user",
            Some("md5_user_pw"),
            ProtocolVersion::V3_0,
            false,
            false,
        ),
        (
            "password",
            "password_user",
            Some("password_user_pw"),
            ProtocolVersion::V3_0,
            false,
            false,
        ),
        (
            "trust_3_2",
            "trust_user",
            None,
            ProtocolVersion::V3_2,
            false,
            false,
        ),
        (
            "bad_password",
            "scram_user",
            Some("wrong"),
            ProtocolVersion::V3_0,
            false,
            false,
        ),
        (
            "scram_prefer",
            "scram_user",
            Some("scram_user_pw"),
            ProtocolVersion::V3_0,
            true,
            true,
        ),
    ];
    for (name, user, password, version, ssl, startup_only) in cases {
        let server = read(&dir, name, "server");
        let mut libpq = lines(&read(&dir, name, "libpq"));
        let mut config = ClientConfig::new(user);
        config.database = Some("pgproto".into());
        config.password = password.map(|p| p.as_bytes().to_vec());
        config.max_protocol_version = version;
        config.scram_nonce = client_nonce(&libpq);
        if ssl {
            config.encryption = Encryption::Ssl { required: false };
        }
        let mut client = Client::new(config).expect("client");
        let (tracer, traced) = collecting_tracer();
        client.set_tracer(tracer);
        drain(&mut client);
        let split = after_first_ready(&server, ssl);
        client.receive(&server[..split]);
        let events = drain(&mut client);
        let connected = events
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected { .. }));
        let auth_fails = name == "bad_password";
        assert_eq!(connected, !auth_fails, "{name}: {events:?}");
        if startup_only {
            let first_ready = libpq
                .iter()
                .position(|l| l.starts_with(b"B\t5\tReadyForQuery"))
                .expect("a ReadyForQuery");
            libpq.truncate(first_ready + 1);
        } else if connected {
            client.query("SELECT current_user").expect("query");
            drain(&mut client);
            client.receive(&server[split..]);
            drain(&mut client);
            client.terminate().expect("terminate");
            drain(&mut client);
        }
        let ours = traced.lock().unwrap().clone();
        if let Err(e) = compare(&ours, &libpq, auth_fails) {
            panic!("session {name}, the Client's own trace: {e}");
        }
    }
}

/// Splits a client stream without SSLRequest into its start-up packet and tagged frames.
fn client_frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let first = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
    frames.push(&stream[..first]);
    let mut at = first;
    while let Some(h) = stream.get(at..at + 5) {
        let end = at + 1 + u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        frames.push(&stream[at..end]);
        at = end;
    }
    frames
}

#[test]
fn a_server_fed_the_recorded_client_traces_its_messages_as_libpq() {
    let dir = data_dir();
    let cases = [
        ("trust_3_2", ServerAuth::Trust, "trust_user"),
        (
            "password",
            ServerAuth::Password {
                stored: Some(pgproto::auth::md5::stored_hash(
                    "password_user",
                    "password_user_pw",
                )),
            },
            "password_user",
        ),
    ];
    for (name, auth, user) in cases {
        let client = read(&dir, name, "client");
        let libpq = lines(&read(&dir, name, "libpq"));
        let mut server = Server::new(ServerConfig::default());
        let (tracer, traced) = collecting_tracer();
        server.set_tracer(tracer);
        let mut auth = Some(auth);
        // One message at a time, as the client sent them: each after the server's answer to
        // the one before (a `p` is named after the request the server sent).
        for frame in client_frames(&client) {
            server.receive(frame);
            while let Some(event) = server.poll_event().expect("server event") {
                match event {
                    ServerEvent::Startup { message, .. } => {
                        assert_eq!(message.param("user"), Some(user.as_bytes()));
                        server
                            .authenticate(auth.take().expect("one start-up"))
                            .unwrap();
                    }
                    ServerEvent::Message(FrontendMessage::Query(_)) => {
                        let column = FieldDescription {
                            name: b"current_user",
                            table_oid: 0,
                            column_id: 0,
                            type_oid: 19,
                            type_size: 64,
                            type_modifier: -1,
                            format: Format::Text,
                        };
                        server
                            .row_description(&RowDescription::new(&[column]).unwrap())
                            .unwrap();
                        server.data_row(&[Some(user.as_bytes())]).unwrap();
                        server.command_complete("SELECT 1").unwrap();
                        server.ready_for_query(TransactionStatus::Idle).unwrap();
                    }
                    _ => {}
                }
            }
            while server.poll_transmit().is_some() {}
        }
        let ours = traced.lock().unwrap().clone();
        let pick = |v: &[Vec<u8>]| -> Vec<String> {
            v.iter()
                .filter(|l| l.starts_with(b"F\t"))
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        };
        assert_eq!(pick(&ours), pick(&libpq), "session {name}: frontend lines");
        // The server's own messages: its start-up answers, the query's, one line each.
        let backend: Vec<String> = ours
            .iter()
            .filter(|l| l.starts_with(b"B\t"))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert!(backend.contains(&"B\t8\tAuthenticationOk".to_owned()));
        assert!(
            backend.contains(&"B\t20\tDataRow\t 1 10 'trust_user'".to_owned())
                || name != "trust_3_2"
        );
        assert!(
            backend
                .iter()
                .any(|l| l.starts_with("B\t40\tBackendKeyData\t"))
                || name != "trust_3_2"
        );
    }
}

/// Runs `inspect --trace` on two byte strings; returns its exit code, stdout and stderr.
fn inspect_bytes(client: &[u8], server: &[u8]) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("pgproto-trace-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, s) = (dir.join("c"), dir.join("s"));
    std::fs::write(&c, client).unwrap();
    std::fs::write(&s, server).unwrap();
    let out = std::process::Command::new(support::examples::example("inspect"))
        .arg("--trace")
        .arg(&c)
        .arg(&s)
        .output()
        .expect("run the inspect example");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_trace_stops_where_encryption_begins_and_fails_on_a_cut_message() {
    // SSLRequest accepted: the rest of both files is TLS.
    let (code, out, err) = inspect_bytes(
        b"\0\0\0\x08\x04\xd2\x16\x2f\x16\x03\x01\x02\x00abc",
        b"S\x16\x03\x03\x00\x10xyz",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "F\t8\tSSLRequest\t 1234 5679\nB\t1\tSSLResponse\t S\n");
    assert!(err.contains("TLS begins at offset 8"), "{err}");
    // A server stream cut inside its second message: the lines before it, then exit 1.
    let (code, out, err) = inspect_bytes(
        b"\0\0\0\x10\0\x03\0\0user\0u\0\0",
        b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05",
    );
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "F\t16\tStartupMessage\t 3 0 \"user\" \"u\"\nB\t8\tAuthenticationOk\n"
    );
    assert!(err.contains("cut off"), "{err}");
}
