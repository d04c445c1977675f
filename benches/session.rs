//! Benchmarks of what applications embed: the `Client` and `Server` state machines, beside the
//! peer crates' decoders and encoders doing the same work on the same bytes.
//!
//! * `session_client`: a connected `pgproto::Client` sends a Query and receives its result,
//!   RowDescription + 10,000 DataRows of 10 short text columns + CommandComplete + ReadyForQuery,
//!   in 8 KiB reads; the application drains `poll_event` after each read and walks every column
//!   of every row. Peer: `postgres-protocol`'s `frontend::query` and a `backend::Message::parse`
//!   loop over a `BytesMut` fed the same reads, walking every column with `DataRowBody::ranges`.
//! * `session_server`: a connected `pgproto::Server` receives 1,000 batches of
//!   Parse/Bind/Describe(portal)/Execute/Sync in 8 KiB reads; the application reads every field of
//!   every message and answers each (ParseComplete, BindComplete, NoData, CommandComplete,
//!   ReadyForQuery), draining `poll_transmit` after each read. Peer: `pgwire`'s
//!   `PgWireFrontendMessage::decode` on the same reads, the same answers encoded as
//!   `PgWireBackendMessage`s into a `BytesMut`.
//!
//! Every contender returns a checksum of what it read and how many bytes it wrote; they must all
//! agree before anything is timed. The connection (and each peer's buffers) lives across passes,
//! as in a long-lived connection: one Query or one pipeline per pass.
//!
//! `cargo bench --bench session` runs the criterion groups, then prints the ratios;
//! `cargo bench --bench session -- ratios` prints only the ratios (peer time / pgproto time, from
//! the fastest of interleaved rounds; above 1: pgproto is faster).

mod common;

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use fallible_iterator::FallibleIterator;
use pgproto::{
    BackendMessage, Client, ClientConfig, ClientEvent, Format, FrontendMessage, Server, ServerAuth,
    ServerConfig, ServerEvent, Target, TransactionStatus,
};

use common::{
    backend_stream, bind_params, frontend_stream, interleaved, narrow_rows, Lcg, Sum, BATCHES,
    CHUNK, COLUMNS, QUERY, ROWS,
};

/// The query the client sends each pass.
const SQL: &str = "SELECT column_0, column_1, column_2, column_3, column_4, column_5, column_6, column_7, column_8, column_9 FROM wide";
/// The server's answer to each Execute.
const TAG: &str = "SELECT 0";

// ---------------------------------------------------------------------------------------------
// pgproto's contenders: the only code here that touches `poll_event`'s events.

/// One Query and its result through a connected client; the checksum of what it read and wrote.
fn pgproto_client_pass(client: &mut Client, reads: &[&[u8]]) -> u64 {
    let mut s = Sum::default();
    client.query(SQL).unwrap();
    while let Some(bytes) = client.poll_transmit() {
        s.written += bytes.len() as u64;
    }
    for read in reads {
        client.receive(read);
        // The intended loop: rows through `poll_row`, everything else through `poll_event`.
        loop {
            while let Some((_, row)) = client.poll_row() {
                s.messages += 1;
                s.rows += 1;
                for c in row.columns() {
                    s.column(c.unwrap().map(<[u8]>::len));
                }
            }
            let Some(event) = client.poll_event().unwrap() else {
                break;
            };
            let ClientEvent::Response { message, .. } = event else {
                panic!("unexpected event");
            };
            s.messages += 1;
            match message {
                BackendMessage::DataRow(row) => {
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.unwrap().map(<[u8]>::len));
                    }
                }
                BackendMessage::RowDescription(d) => {
                    for f in d.fields() {
                        s.bytes += f.name.len() as u64 + u64::from(f.type_oid);
                    }
                }
                BackendMessage::CommandComplete(c) => s.bytes += c.tag().len() as u64,
                BackendMessage::ReadyForQuery(status) => s.bytes += u64::from(status.byte()),
                _ => panic!("unexpected message"),
            }
        }
    }
    s.checksum()
}

/// One pipeline of Parse/Bind/Describe/Execute/Sync batches through a connected server, every
/// field read and every message answered; the checksum of what it read and wrote.
fn pgproto_server_pass(server: &mut Server, reads: &[&[u8]]) -> u64 {
    use FrontendMessage as M;
    let mut s = Sum::default();
    // Reads every field of `message` and answers it (the same for both polls).
    macro_rules! answer {
        ($message:expr) => {
            s.messages += 1;
            match $message {
                M::Parse(p) => {
                    s.bytes += (p.name().len() + p.query().len()) as u64;
                    s.bytes += p.param_types().map(u64::from).sum::<u64>();
                    server.parse_complete().unwrap();
                }
                M::Bind(b) => {
                    s.rows += 1;
                    s.bytes += (b.portal().len() + b.statement().len()) as u64;
                    let formats = b.param_formats().iter().chain(b.result_formats().iter());
                    s.bytes += formats
                        .map(|f| 1 + u64::from(f == Format::Binary))
                        .sum::<u64>();
                    for v in b.params().iter() {
                        s.column(v.map(<[u8]>::len));
                    }
                    server.bind_complete().unwrap();
                }
                M::Describe(d) => {
                    s.bytes += u64::from(d.target() == Target::Portal) + d.name().len() as u64;
                    server.no_data().unwrap();
                }
                M::Execute(e) => {
                    s.bytes += e.portal().len() as u64 + e.max_rows() as u64;
                    server.command_complete(TAG).unwrap();
                }
                M::Sync => server.ready_for_query(TransactionStatus::Idle).unwrap(),
                _ => panic!("unexpected message"),
            }
        };
    }
    for read in reads {
        server.receive(read);
        // The intended loop: requests through `poll_message`, the rest through `poll_event`.
        loop {
            while let Some(message) = server.poll_message() {
                answer!(message);
            }
            let Some(event) = server.poll_event().unwrap() else {
                break;
            };
            let ServerEvent::Message(message) = event else {
                panic!("unexpected event");
            };
            answer!(message);
        }
        while let Some(bytes) = server.poll_transmit() {
            s.written += bytes.len() as u64;
        }
    }
    s.checksum()
}

/// A client past start-up (a trusting server: AuthenticationOk, ReadyForQuery).
fn connected_client() -> Client {
    let mut client = Client::new(ClientConfig::new("alice")).unwrap();
    while client.poll_transmit().is_some() {}
    client.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
    while client.poll_event().unwrap().is_some() {}
    assert!(client.is_ready());
    client
}

/// A server past start-up: a StartupMessage for "alice", trusted.
fn connected_server() -> Server {
    let mut server = Server::new(ServerConfig::default());
    server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    assert!(server.poll_event().unwrap().is_some()); // Startup
    server.authenticate(ServerAuth::Trust).unwrap();
    while server.poll_event().unwrap().is_some() {}
    while server.poll_transmit().is_some() {}
    assert!(server.is_ready());
    server
}

// ---------------------------------------------------------------------------------------------
// The peers, doing the same work with their own APIs. `buf` is the connection's read buffer,
// kept across passes like the machines' own.

fn postgres_protocol_client_pass(buf: &mut BytesMut, reads: &[&[u8]]) -> u64 {
    use postgres_protocol::message::{backend::Message, frontend};
    let mut s = Sum::default();
    let mut out = BytesMut::new();
    frontend::query(SQL, &mut out).unwrap();
    s.written += out.len() as u64;
    for read in reads {
        buf.extend_from_slice(read);
        while let Some(m) = Message::parse(buf).unwrap() {
            s.messages += 1;
            match m {
                Message::DataRow(row) => {
                    s.rows += 1;
                    let mut ranges = row.ranges();
                    while let Some(r) = ranges.next().unwrap() {
                        s.column(r.map(|r| r.len()));
                    }
                }
                Message::RowDescription(d) => {
                    let mut fields = d.fields();
                    while let Some(f) = fields.next().unwrap() {
                        s.bytes += f.name().len() as u64 + u64::from(f.type_oid());
                    }
                }
                Message::CommandComplete(c) => s.bytes += c.tag().unwrap().len() as u64,
                Message::ReadyForQuery(r) => s.bytes += u64::from(r.status()),
                _ => panic!("unexpected message"),
            }
        }
    }
    s.checksum()
}

/// pgwire's decoding context once start-up is over (no SSLRequest or StartupMessage expected).
fn pgwire_after_startup() -> pgwire::messages::DecodeContext {
    use pgwire::messages::{DecodeContext, ProtocolVersion};
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    ctx
}

fn pgwire_server_pass(buf: &mut BytesMut, out: &mut BytesMut, reads: &[&[u8]]) -> u64 {
    use pgwire::messages::data::NoData;
    use pgwire::messages::extendedquery::{BindComplete, ParseComplete};
    use pgwire::messages::response::{CommandComplete, ReadyForQuery, TransactionStatus};
    use pgwire::messages::{PgWireBackendMessage as B, PgWireFrontendMessage as M};
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len) as u64;
    let ctx = pgwire_after_startup();
    let mut s = Sum::default();
    for read in reads {
        buf.extend_from_slice(read);
        while let Some(m) = M::decode(buf, &ctx).unwrap() {
            s.messages += 1;
            let answer = match m {
                M::Parse(p) => {
                    s.bytes += len(&p.name) + p.query.len() as u64;
                    s.bytes += p.type_oids.iter().copied().map(u64::from).sum::<u64>();
                    B::ParseComplete(ParseComplete::new())
                }
                M::Bind(b) => {
                    s.rows += 1;
                    s.bytes += len(&b.portal_name) + len(&b.statement_name);
                    let formats = b.parameter_format_codes.iter();
                    let formats = formats.chain(&b.result_column_format_codes);
                    s.bytes += formats.map(|&f| 1 + u64::from(f == 1)).sum::<u64>();
                    for v in &b.parameters {
                        s.column(v.as_ref().map(|v| v.len()));
                    }
                    B::BindComplete(BindComplete::new())
                }
                M::Describe(d) => {
                    s.bytes += u64::from(d.target_type == b'P') + len(&d.name);
                    B::NoData(NoData::new())
                }
                M::Execute(e) => {
                    s.bytes += len(&e.name) + e.max_rows as u64;
                    B::CommandComplete(CommandComplete::new(TAG.to_owned()))
                }
                M::Sync(_) => B::ReadyForQuery(ReadyForQuery::new(TransactionStatus::Idle)),
                _ => panic!("unexpected message"),
            };
            answer.encode(out).unwrap();
        }
        s.written += out.len() as u64;
        out.clear();
    }
    s.checksum()
}

// ---------------------------------------------------------------------------------------------
// The fixtures and what every contender must report on them, computed from the fixtures alone.

struct Fixtures {
    client_stream: Vec<u8>,
    client_expected: u64,
    server_stream: Vec<u8>,
    server_expected: u64,
}

impl Fixtures {
    fn new() -> Self {
        let rows = narrow_rows();
        let client_stream = backend_stream(&rows);
        let client_expected = Sum {
            messages: ROWS as u64 + 3,
            rows: ROWS as u64,
            bytes: rows
                .iter()
                .flatten()
                .flatten()
                .map(|v| v.len() as u64)
                .sum::<u64>()
                + (0..COLUMNS)
                    .map(|i| format!("column_{i}").len() as u64 + 25)
                    .sum::<u64>()
                + format!("SELECT {ROWS}").len() as u64
                + u64::from(b'I'),
            nulls: 0,
            written: 1 + 4 + SQL.len() as u64 + 1,
        }
        .checksum();

        let mut g = Lcg(0xf00d);
        let mut server = Sum {
            messages: BATCHES as u64 * 5,
            rows: BATCHES as u64,
            // ParseComplete, BindComplete, NoData, CommandComplete, ReadyForQuery.
            written: BATCHES as u64 * (5 + 5 + 5 + (1 + 4 + TAG.len() as u64 + 1) + 6),
            ..Sum::default()
        };
        for i in 0..BATCHES {
            let name = format!("stmt_{}", i % 16).len() as u64;
            let params: u64 = bind_params(&mut g, i).iter().map(|p| p.len() as u64).sum();
            server.bytes += name + QUERY.len() as u64 + 20 + 25 + 1184; // Parse
            server.bytes += name + params; // Bind
            server.bytes += 1; // Describe (portal)
        }
        Self {
            client_stream,
            client_expected,
            server_stream: frontend_stream(),
            server_expected: server.checksum(),
        }
    }
}

fn chunks(stream: &[u8]) -> Vec<&[u8]> {
    stream.chunks(CHUNK).collect()
}

/// Checks that every contender reports the same checksum, the one expected (twice each, so
/// that the state kept across passes is checked too).
fn check(fx: &Fixtures) {
    let reads = chunks(&fx.client_stream);
    let mut client = connected_client();
    let mut buf = BytesMut::new();
    for _ in 0..2 {
        assert_eq!(pgproto_client_pass(&mut client, &reads), fx.client_expected);
        let peer = postgres_protocol_client_pass(&mut buf, &reads);
        assert_eq!(peer, fx.client_expected);
    }
    let reads = chunks(&fx.server_stream);
    let mut server = connected_server();
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    for _ in 0..2 {
        assert_eq!(pgproto_server_pass(&mut server, &reads), fx.server_expected);
        let peer = pgwire_server_pass(&mut buf, &mut out, &reads);
        assert_eq!(peer, fx.server_expected);
    }
}

fn criterion_groups(c: &mut Criterion, fx: &Fixtures) {
    let reads = chunks(&fx.client_stream);
    let mut g = c.benchmark_group("session_client");
    g.throughput(Throughput::Bytes(fx.client_stream.len() as u64));
    let mut client = connected_client();
    g.bench_function("pgproto_client", |b| {
        b.iter(|| pgproto_client_pass(&mut client, black_box(&reads)))
    });
    let mut buf = BytesMut::new();
    g.bench_function("postgres_protocol", |b| {
        b.iter(|| postgres_protocol_client_pass(&mut buf, black_box(&reads)))
    });
    g.finish();

    let reads = chunks(&fx.server_stream);
    let mut g = c.benchmark_group("session_server");
    g.throughput(Throughput::Bytes(fx.server_stream.len() as u64));
    let mut server = connected_server();
    g.bench_function("pgproto_server", |b| {
        b.iter(|| pgproto_server_pass(&mut server, black_box(&reads)))
    });
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    g.bench_function("pgwire", |b| {
        b.iter(|| pgwire_server_pass(&mut buf, &mut out, black_box(&reads)))
    });
    g.finish();
}

/// Prints both contenders' fastest pass and the ratio line.
fn print_ratio(line: &str, names: [&str; 2], t: &[Duration]) {
    for (name, t) in names.iter().zip(t) {
        println!("  {name:20} {:>9.1} us per pass", t.as_secs_f64() * 1e6);
    }
    println!("{line}: {:.2}x", t[1].as_secs_f64() / t[0].as_secs_f64());
}

fn ratios(fx: &Fixtures) {
    println!("\nSessions, fastest of interleaved rounds (ratio = peer time / pgproto time)");
    let reads = chunks(&fx.client_stream);
    let mut client = connected_client();
    let mut buf = BytesMut::new();
    let t = interleaved(
        60,
        5,
        &mut [
            &mut || {
                black_box(pgproto_client_pass(&mut client, black_box(&reads)));
            },
            &mut || {
                black_box(postgres_protocol_client_pass(&mut buf, black_box(&reads)));
            },
        ],
    );
    print_ratio(
        "client session vs postgres-protocol",
        ["pgproto Client", "postgres-protocol"],
        &t,
    );

    let reads = chunks(&fx.server_stream);
    let mut server = connected_server();
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    let t = interleaved(
        100,
        5,
        &mut [
            &mut || {
                black_box(pgproto_server_pass(&mut server, black_box(&reads)));
            },
            &mut || {
                black_box(pgwire_server_pass(&mut buf, &mut out, black_box(&reads)));
            },
        ],
    );
    print_ratio("server session vs pgwire", ["pgproto Server", "pgwire"], &t);
}

/// Runs one contender alone, `PASSES` times (default 200), for an instruction profiler:
/// `valgrind --tool=callgrind target/release/deps/session-* only=client` (or `only=postgres-protocol`,
/// `only=server`, `only=pgwire`).
fn only(fx: &Fixtures, who: &str) {
    let passes: usize = std::env::var("PASSES").map_or(200, |p| p.parse().unwrap());
    let client_reads = chunks(&fx.client_stream);
    let server_reads = chunks(&fx.server_stream);
    let mut sum = 0;
    match who {
        "client" => {
            let mut client = connected_client();
            for _ in 0..passes {
                sum += pgproto_client_pass(&mut client, black_box(&client_reads));
            }
        }
        "postgres-protocol" => {
            let mut buf = BytesMut::new();
            for _ in 0..passes {
                sum += postgres_protocol_client_pass(&mut buf, black_box(&client_reads));
            }
        }
        "server" => {
            let mut server = connected_server();
            for _ in 0..passes {
                sum += pgproto_server_pass(&mut server, black_box(&server_reads));
            }
        }
        "pgwire" => {
            let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
            for _ in 0..passes {
                sum += pgwire_server_pass(&mut buf, &mut out, black_box(&server_reads));
            }
        }
        _ => panic!("only=client|postgres-protocol|server|pgwire"),
    }
    println!("{who}: {passes} passes, checksum {sum}");
}

fn main() {
    let fx = Fixtures::new();
    check(&fx);
    let filters = common::filters();
    let ratios_only = filters.iter().any(|f| f == "ratios");
    if let Some(who) = filters.iter().find_map(|f| f.strip_prefix("only=")) {
        only(&fx, who);
        return;
    }
    if !ratios_only {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20)
            .configure_from_args();
        criterion_groups(&mut c, &fx);
        c.final_summary();
    }
    if ratios_only || (common::is_bench() && filters.is_empty()) {
        ratios(&fx);
    }
}
