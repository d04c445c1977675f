//! Real protocol-2.0 traffic (tests/data/captures/v2, recorded by
//! `tests/data/regenerate_v2.sh`, see tests/data/MANIFEST.md): our `client` example over 2.0
//! against PostgreSQL 13.23, and libpq 13 falling back to 2.0 against the `server` example.
//! Every pair decodes and re-encodes byte for byte through the `inspect` example (`--check`),
//! the facts each capture was recorded for hold, and the `Client` replays PostgreSQL 13's side
//! of a session without a complaint.

mod support;

use std::path::PathBuf;
use std::process::Command;

use pgproto::v2::{BackendDecoder, BackendMessage as B2, FrontendDecoder, FrontendMessage as F2};
use pgproto::{BackendMessage, Client, ClientConfig, ClientEvent, ProtocolVersion};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures/v2")
}

fn read(name: &str, ext: &str) -> Vec<u8> {
    let p = dir().join(format!("{name}.{ext}"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

const PAIRS: [&str; 4] = [
    "v2_client_pg13-1",
    "v2_client_pg13_password-1",
    "v2_libpq13_fallback-1",
    "v2_libpq13_fallback-2",
];

#[test]
fn every_capture_is_listed_here() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".client").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, PAIRS);
}

#[test]
fn inspect_decodes_and_re_encodes_every_capture() {
    let inspect = support::examples::example("inspect");
    for name in PAIRS {
        let c = dir().join(format!("{name}.client"));
        let s = dir().join(format!("{name}.server"));
        let out = Command::new(&inspect)
            .arg("--check")
            .arg(&c)
            .arg(&s)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}:\n{stdout}\n{stderr}");
        let summary = stdout.lines().last().unwrap();
        let (cl, sl) = (read(name, "client").len(), read(name, "server").len());
        assert!(
            summary.contains(&format!(" {cl} bytes; server:"))
                && summary.ends_with(&format!(" {sl} bytes")),
            "{name}: not every byte decoded: {summary}"
        );
        let note = if name == "v2_libpq13_fallback-1" {
            "note: a 3.x start-up refused with an error in protocol 2.0's format\n"
        } else {
            "note: protocol 2.0 (a 2.0 StartupPacket)\n"
        };
        assert_eq!(stderr, note, "{name}");
    }
}

/// The server's messages of a 2.0 capture, and the client's (a password after the start-up,
/// COPY data after a `copy ... from stdin` Query).
fn decode(name: &str) -> (Vec<F2>, Vec<B2>) {
    let mut s = BackendDecoder::new();
    s.receive(&read(name, "server"));
    let mut server = Vec::new();
    while let Some(m) = s.next().unwrap() {
        server.push(m);
    }
    let password = server.iter().any(|m| {
        matches!(
            m,
            B2::Authentication(
                pgproto::v2::Authentication::Md5Password { .. }
                    | pgproto::v2::Authentication::CleartextPassword
            )
        )
    });
    let mut c = FrontendDecoder::new();
    c.receive(&read(name, "client"));
    let mut client = Vec::new();
    while let Some(m) = c.next().unwrap() {
        if matches!(m, F2::Startup(_)) && password {
            c.expect_password();
        }
        if let F2::Query(q) = &m {
            if q.as_bytes().starts_with(b"copy t from stdin") {
                c.expect_copy_in();
            }
        }
        client.push(m);
    }
    assert_eq!(c.buffered_len(), 0, "{name}");
    (client, server)
}

#[test]
fn what_each_capture_shows() {
    let (client, server) = decode("v2_client_pg13-1");
    let names: Vec<_> = server.iter().map(B2::name).collect();
    assert_eq!(
        names[..4],
        [
            "AuthenticationMD5Password",
            "AuthenticationOk",
            "BackendKeyData",
            "ReadyForQuery"
        ]
    );
    for want in [
        "CursorResponse",
        "AsciiRow",
        "CopyInResponse",
        "CopyOutResponse",
        "CopyDataRows",
        "CopyDataRows end marker",
        "NoticeResponse",
        "NotificationResponse",
        "EmptyQueryResponse",
        "ErrorResponse",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    assert!(server
        .iter()
        .any(|m| matches!(m, B2::AsciiRow(r) if r.columns().any(|v| v.is_none()))));
    assert!(matches!(client.last(), Some(F2::Terminate)));
    assert_eq!(
        client
            .iter()
            .filter(|m| matches!(m, F2::CopyDataRow(_)))
            .count(),
        3,
        "the client example ends the last row before `\\.`"
    );

    let (_, server) = decode("v2_client_pg13_password-1");
    assert!(matches!(
        server[0],
        B2::Authentication(pgproto::v2::Authentication::CleartextPassword)
    ));

    // libpq 13's first connection: SSLRequest refused, the 3.0 start-up refused in 2.0's
    // format (no length word after `E`).
    let s1 = read("v2_libpq13_fallback-1", "server");
    assert_eq!(s1[0], b'N');
    assert!(s1[1..].starts_with(b"EFATAL:  unsupported frontend protocol 3.0"));
    assert_eq!(s1.last(), Some(&0));
    // The second: a 2.0 StartupPacket (no SSLRequest: refused once), libpq's start-up queries,
    // and COPY
    // data whose last row has no newline (the end marker follows it on its line).
    let c2 = read("v2_libpq13_fallback-2", "client");
    assert_eq!(&c2[4..8], [0, 2, 0, 0]);
    let (client, _) = decode("v2_libpq13_fallback-2");
    let queries: Vec<_> = client
        .iter()
        .filter_map(|m| match m {
            F2::Query(q) => Some(q.as_str().unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert!(
        queries.contains(&"begin; select version(); end".to_owned()),
        "{queries:?}"
    );
    assert!(queries.contains(&"select pg_client_encoding()".to_owned()));
    assert!(client
        .iter()
        .any(|m| matches!(m, F2::CopyDataRow(l) if l.is_last() && l.as_bytes() == b"3\tthree")));
    assert!(client
        .iter()
        .any(|m| matches!(m, F2::FunctionCall(f) if f.function_oid() == 1317)));
}

#[test]
fn the_client_replays_postgresql_13s_side() {
    // The same requests as the capture, then PostgreSQL 13's recorded answers.
    let (client, _) = decode("v2_client_pg13-1");
    let mut config = ClientConfig::new("md5_user");
    config.database = Some("pgproto".into());
    config.password = Some(b"md5_pass".to_vec());
    config.min_protocol_version = ProtocolVersion::V2_0;
    config.max_protocol_version = ProtocolVersion::V2_0;
    let mut c = Client::new(config).unwrap();
    let server = read("v2_client_pg13-1", "server");
    // Start-up: everything up to the first ReadyForQuery (the 24th byte).
    c.receive(&server[..24]);
    let mut events = Vec::new();
    while let Some(e) = c.poll_event().unwrap() {
        events.push(e.into_owned());
    }
    assert!(matches!(events.last(), Some(ClientEvent::Connected { .. })));
    let mut copy = Vec::new();
    for m in &client {
        match m {
            F2::Query(q) => {
                c.query(q.as_str().unwrap()).unwrap();
            }
            F2::CopyDataRow(l) => copy.extend_from_slice(l.as_bytes()),
            _ => {}
        }
    }
    // The answers, a byte at a time; the COPY data once the server asks for it.
    let mut answered = 0;
    for b in server[24..].chunks(1) {
        c.receive(b);
        while let Some(e) = c.poll_event().unwrap() {
            match e.into_owned() {
                ClientEvent::Response {
                    message: BackendMessage::CopyInResponse(_),
                    ..
                } => {
                    c.copy_data(&copy).unwrap();
                    c.copy_done().unwrap();
                }
                ClientEvent::Response {
                    message: BackendMessage::ReadyForQuery(_),
                    ..
                } => answered += 1,
                _ => {}
            }
        }
    }
    assert_eq!(answered, 11);
    assert_eq!(c.pending_requests(), 0);
}
