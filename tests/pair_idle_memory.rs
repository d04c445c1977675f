//! The heap an idle connection's state machine keeps, measured with an instrumented global
//! allocator (only this test binary uses it). The design target is under 1 KiB once the buffers
//! are released (PgBouncer needs about 2 kB per connection).

use std::alloc::System;
use std::sync::{Arc, Mutex};

mod support;

use support::pair::Pair;

use pgproto::auth::ScramVerifier;
use pgproto::{
    Client, ClientConfig, FieldDescription, FrontendMessage, ProtocolVersion, RowDescription,
    Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counts are process-wide, so the tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

const TARGET: isize = 1024;

/// Heap bytes `value` owns: what dropping it frees.
fn heap_of<T>(value: T) -> isize {
    let region = Region::new(GLOBAL);
    drop(value);
    let c = region.change();
    c.bytes_deallocated as isize - c.bytes_allocated as isize - c.bytes_reallocated
}

fn connected_pair(
    auth: ServerAuth,
    version: ProtocolVersion,
    config: &Arc<ServerConfig>,
) -> (Client, Server) {
    let mut cc = ClientConfig::new("alice");
    cc.password = Some(b"pw".to_vec());
    cc.database = Some("shop".into());
    cc.application_name = Some("idle_memory".into());
    cc.max_protocol_version = version;
    let c = Client::new(cc).unwrap();
    let s = Server::new(Arc::clone(config));
    // A tiny database: authenticates once, answers every Query with one row.
    let mut auth = Some(auth);
    let mut p = Pair::new(c, s, move |s: &mut Server, e: &ServerEvent| match e {
        ServerEvent::Startup { .. } => s.authenticate(auth.take().unwrap()).unwrap(),
        ServerEvent::Message(FrontendMessage::Query(_)) => {
            let column = |name| FieldDescription::new(name, 25);
            let columns = RowDescription::new(&[column(b"a"), column(b"b")]).unwrap();
            s.row_description(&columns).unwrap();
            s.data_row(&[Some(b"1"), None]).unwrap();
            s.command_complete("SELECT 1").unwrap();
            s.ready_for_query(TransactionStatus::Idle).unwrap();
        }
        _ => {}
    });
    p.drive_bounded(100).unwrap();
    assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
    assert!(p.client.is_ready() && p.server.is_ready());
    p.client.query("SELECT 1").unwrap();
    p.drive_bounded(100).unwrap();
    assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
    assert_eq!(p.client.pending_requests(), 0);
    let (mut c, mut s) = p.into_parts();
    c.release_buffers();
    s.release_buffers();
    (c, s)
}

fn measure(auth: ServerAuth, version: ProtocolVersion) -> (isize, isize) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The configuration is shared by every connection of a server, so it is made outside.
    let config = Arc::new(ServerConfig::default());
    let (c, s) = connected_pair(auth, version, &config);
    (heap_of(c), heap_of(s))
}

#[test]
fn an_idle_connection_keeps_under_1_kib() {
    let verifier = ScramVerifier::new("pw", b"0123456789abcdef", 4096).unwrap();
    for (auth, version) in [
        (ServerAuth::Trust, ProtocolVersion::V3_0),
        (
            ServerAuth::Scram {
                verifier: Some(verifier),
            },
            ProtocolVersion::V3_2,
        ),
    ] {
        let name = format!("{auth:?}").chars().take(5).collect::<String>();
        let (client, server) = measure(auth, version);
        println!(
            "{name} {version}: heap of an idle Client {client} bytes (+{} inline), Server {server} bytes (+{} inline)",
            std::mem::size_of::<Client>(),
            std::mem::size_of::<Server>()
        );
        assert!(
            client < TARGET,
            "{name} {version}: an idle Client holds {client} bytes"
        );
        assert!(
            server < TARGET,
            "{name} {version}: an idle Server holds {server} bytes"
        );
        // A measurement that cannot see anything would pass too: the parameters alone take room.
        assert!(
            client > 100,
            "{name}: the measurement sees the client's parameters"
        );
    }
}
