//! Start-up keys sent twice: PostgreSQL 18 (started by the test) uses the last value of each,
//! and so must `StartupMessage::param` and `Server::user`, or a proxy that authenticates one
//! user and forwards the packet would log the client in as another upstream.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use pgproto::{
    Authentication, BackendDecoder, BackendMessage, Encode, FrontendMessage, ProtocolVersion,
    Server, ServerConfig, ServerEvent, StartupMessage,
};
use support::pg::{Cluster, PgVersion, DATABASE, TRUST_USER};

/// The first answer PostgreSQL gives to `packet`: AuthenticationOk, or the ErrorResponse.
fn postgres_answer(cluster: &Cluster, packet: &[u8]) -> BackendMessage<'static> {
    let mut socket = TcpStream::connect(cluster.addr()).expect("connect to PostgreSQL 18");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.write_all(packet).unwrap();
    let mut dec = BackendDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = dec.next().unwrap() {
            return m;
        }
        let n = socket.read(&mut buf).expect("an answer from PostgreSQL");
        assert!(n > 0, "PostgreSQL closed without an answer");
        dec.receive(&buf[..n]);
    }
}

/// The user our `Server` reports for `packet`.
fn our_user(packet: &[u8]) -> String {
    let mut server = Server::new(ServerConfig::default());
    server.receive(packet);
    match server.poll_event().unwrap() {
        Some(ServerEvent::Startup { message, .. }) => {
            assert_eq!(message.param("user"), Some(server.user().as_bytes()));
        }
        other => panic!("expected the StartupMessage, got {other:?}"),
    }
    server.user().to_string()
}

fn packet(users: [&str; 2]) -> Vec<u8> {
    let m = StartupMessage::new(
        ProtocolVersion::V3_0,
        [
            ("user", users[0]),
            ("database", DATABASE),
            ("user", users[1]),
        ],
    )
    .unwrap();
    let mut out = BytesMut::new();
    FrontendMessage::Startup(m).encode(&mut out);
    out.to_vec()
}

#[test]
fn the_last_value_of_a_repeated_startup_key_wins_as_in_postgresql() {
    let cluster = Cluster::start(PgVersion::V18);

    // No such role first, the trust user last: PostgreSQL logs in the trust user.
    let last_real = packet(["no_such_role", TRUST_USER.name]);
    assert_eq!(
        postgres_answer(&cluster, &last_real),
        BackendMessage::Authentication(Authentication::Ok)
    );
    assert_eq!(our_user(&last_real), TRUST_USER.name);

    // The other way round: PostgreSQL refuses the unknown role, named last.
    let last_unknown = packet([TRUST_USER.name, "no_such_role"]);
    match postgres_answer(&cluster, &last_unknown) {
        BackendMessage::ErrorResponse(f) => {
            assert_eq!(f.code(), Some(&b"28000"[..]), "{f:?}");
            let text = String::from_utf8_lossy(f.message().unwrap_or_default()).into_owned();
            assert!(text.contains("no_such_role"), "{text}");
        }
        other => panic!("expected an error for the unknown role, got {other:?}"),
    }
    assert_eq!(our_user(&last_unknown), "no_such_role");
}
