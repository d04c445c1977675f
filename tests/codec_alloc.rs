//! Heap allocations on the row-streaming hot path, counted by an instrumented global allocator
//! (which only this test binary uses).
//!
//! A result stream of 10,000 DataRows is fed in 8 KiB chunks. After the first chunk (the warm-up:
//! the receive buffer reaches its working size), decoding every remaining row must allocate
//! nothing per row: `next_ref` at most a handful of times in total (buffer growth), and `next`
//! at most once per hundred rows. A decoder that allocated once per row would count 10,000. The
//! `next_data_row` loop and the frontend decoder's `next_ref` (on a Parse/Bind/Describe/Execute/
//! Sync pipeline) are held to the same bar as `next_ref`.

use std::alloc::System;
use std::sync::Mutex;

use pgproto::{BackendDecoder, BackendMessage};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counts are process-wide, so the tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// The most allocations a hot path may make over a whole stream after warm-up (buffer growth).
/// The counts are process-wide: the test harness's own thread also allocates while it reports
/// a finished test (about twenty were seen under load), so the bar leaves room for that; a path
/// that allocated once per message would count about 10,000.
const FEW: usize = 64;

const ROWS: usize = 10_000;
const COLUMNS: usize = 10;
const CHUNK: usize = 8 * 1024;

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

/// RowDescription, 10,000 DataRows of 10 text values of 5 to 12 bytes, CommandComplete,
/// ReadyForQuery.
fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    body.extend_from_slice(&(COLUMNS as u16).to_be_bytes());
    for i in 0..COLUMNS {
        body.extend_from_slice(format!("c{i}\0").as_bytes());
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff]);
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
    }
    frame(&mut out, b'T', &body);
    for r in 0..ROWS {
        body.clear();
        body.extend_from_slice(&(COLUMNS as u16).to_be_bytes());
        for c in 0..COLUMNS {
            let len = 5 + (r * 7 + c * 3) % 8;
            body.extend_from_slice(&(len as i32).to_be_bytes());
            body.extend(std::iter::repeat_n(b'a' + (c as u8), len));
        }
        frame(&mut out, b'D', &body);
    }
    frame(&mut out, b'C', format!("SELECT {ROWS}\0").as_bytes());
    frame(&mut out, b'Z', b"I");
    out
}

/// Allocations and reallocations since `region` began.
fn allocations(region: &Region<'_, System>) -> usize {
    let c = region.change();
    c.allocations + c.reallocations
}

#[test]
fn the_counter_sees_allocations() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new(GLOBAL);
    let v: Vec<Vec<u8>> = (0..100).map(|i| vec![0; i + 1]).collect();
    assert_eq!(v.len(), 100);
    assert!(allocations(&region) >= 100);
}

#[test]
fn next_ref_allocates_nothing_per_row() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stream = stream();
    let mut chunks = stream.chunks(CHUNK);
    let mut dec = BackendDecoder::new();
    let (mut rows, mut bytes) = (0, 0);
    let mut feed = |dec: &mut BackendDecoder, chunk: &[u8]| {
        dec.receive(chunk);
        while let Some(m) = dec.next_ref().unwrap() {
            if let BackendMessage::DataRow(row) = m {
                rows += 1;
                bytes += row
                    .columns()
                    .map(|c| c.unwrap().map_or(0, <[u8]>::len))
                    .sum::<usize>();
            }
        }
        rows
    };

    let warm = feed(&mut dec, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut dec, chunk);
    }
    let n = allocations(&region);

    assert_eq!(rows, ROWS);
    assert!(bytes > ROWS * COLUMNS * 5);
    println!(
        "next_ref: {n} allocations for {} rows after warm-up",
        ROWS - warm
    );
    assert!(
        n < FEW,
        "next_ref allocated {n} times for {} rows",
        ROWS - warm
    );
}

#[test]
fn next_allocates_nothing_per_row() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stream = stream();
    let mut chunks = stream.chunks(CHUNK);
    let mut dec = BackendDecoder::new();
    let (mut rows, mut bytes) = (0, 0);
    let mut feed = |dec: &mut BackendDecoder, chunk: &[u8]| {
        dec.receive(chunk);
        while let Some(m) = dec.next().unwrap() {
            if let BackendMessage::DataRow(row) = m {
                rows += 1;
                bytes += row
                    .columns()
                    .map(|c| c.unwrap().map_or(0, <[u8]>::len))
                    .sum::<usize>();
            }
        }
        rows
    };

    let warm = feed(&mut dec, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut dec, chunk);
    }
    let n = allocations(&region);

    assert_eq!(rows, ROWS);
    assert!(bytes > ROWS * COLUMNS * 5);
    println!(
        "next: {n} allocations for {} rows after warm-up",
        ROWS - warm
    );
    assert!(
        n < ROWS / 100,
        "next allocated {n} times for {} rows",
        ROWS - warm
    );
}

#[test]
fn next_data_row_allocates_nothing_per_row() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stream = stream();
    let mut chunks = stream.chunks(CHUNK);
    let mut dec = BackendDecoder::new();
    let (mut rows, mut bytes) = (0, 0);
    let mut feed = |dec: &mut BackendDecoder, chunk: &[u8]| {
        dec.receive(chunk);
        loop {
            while let Some(row) = dec.next_data_row() {
                rows += 1;
                bytes += row
                    .columns()
                    .map(|c| c.unwrap().map_or(0, <[u8]>::len))
                    .sum::<usize>();
            }
            match dec.next_ref().unwrap() {
                None => break,
                Some(BackendMessage::DataRow(_)) => rows += 1,
                Some(_) => {}
            }
        }
        rows
    };

    let warm = feed(&mut dec, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut dec, chunk);
    }
    let n = allocations(&region);

    assert_eq!(rows, ROWS);
    assert!(bytes > ROWS * COLUMNS * 5);
    println!(
        "next_data_row: {n} allocations for {} rows after warm-up",
        ROWS - warm
    );
    // CommandComplete and ReadyForQuery come owned (boxed): a few allocations in all.
    assert!(
        n < FEW,
        "next_data_row allocated {n} times for {} rows",
        ROWS - warm
    );
}

#[test]
fn frontend_next_ref_allocates_nothing_per_message() {
    use bytes::BytesMut;
    use pgproto::{Bind, Encode, Execute, FrontendDecoder, FrontendMessage, Limits, Parse};
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const BATCHES: usize = 2_000;
    let mut out = BytesMut::new();
    for i in 0..BATCHES {
        let name = format!("s{}", i % 16);
        Parse::encode_values(&mut out, &name, "SELECT $1::int8, $2", &[20, 25]).unwrap();
        let n = i.to_string();
        let params = [Some(n.as_bytes()), None];
        Bind::encode_values(&mut out, "", &name, &[], &params, &[]).unwrap();
        pgproto::Describe::encode_values(&mut out, pgproto::Target::Portal, "").unwrap();
        Execute::encode_values(&mut out, "", 0).unwrap();
        FrontendMessage::Sync.encode(&mut out);
    }
    let mut chunks = out.chunks(CHUNK);
    let mut dec = FrontendDecoder::after_startup(Limits::default());
    let (mut messages, mut values) = (0, 0);
    let mut feed = |dec: &mut FrontendDecoder, chunk: &[u8]| {
        dec.receive(chunk);
        while let Some(m) = dec.next_ref().unwrap() {
            messages += 1;
            if let FrontendMessage::Bind(b) = m {
                values += b.params().iter().flatten().count();
            }
        }
        messages
    };

    let warm = feed(&mut dec, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut dec, chunk);
    }
    let n = allocations(&region);

    assert_eq!(messages, BATCHES * 5);
    assert_eq!(values, BATCHES);
    println!(
        "frontend next_ref: {n} allocations for {} messages after warm-up",
        BATCHES * 5 - warm
    );
    assert!(
        n < FEW,
        "frontend next_ref allocated {n} times for {} messages",
        BATCHES * 5 - warm
    );
}

/// A `Client` after a trusting server's AuthenticationOk and ReadyForQuery.
fn connected_client() -> pgproto::Client {
    let mut c = pgproto::Client::new(pgproto::ClientConfig::new("alice")).unwrap();
    let _ = c.poll_transmit();
    c.receive(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
    while c.poll_event().unwrap().is_some() {}
    assert!(c.is_ready());
    c
}

#[test]
fn client_allocates_nothing_per_row() {
    use pgproto::ClientEvent;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stream = stream();
    let mut client = connected_client();
    let q = client.query("SELECT ...").unwrap();
    let _ = client.poll_transmit();
    let (mut rows, mut bytes, mut ready) = (0, 0, false);
    let mut feed = |client: &mut pgproto::Client, chunk: &[u8]| {
        client.receive(chunk);
        while let Some(e) = client.poll_event().unwrap() {
            match e {
                ClientEvent::Response {
                    request,
                    message: BackendMessage::DataRow(row),
                } => {
                    assert_eq!(request, q);
                    rows += 1;
                    bytes += row
                        .columns()
                        .map(|c| c.unwrap().map_or(0, <[u8]>::len))
                        .sum::<usize>();
                }
                ClientEvent::Response {
                    message: BackendMessage::ReadyForQuery(_),
                    ..
                } => ready = true,
                ClientEvent::Response { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        rows
    };
    let mut chunks = stream.chunks(CHUNK);
    let warm = feed(&mut client, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut client, chunk);
    }
    let n = allocations(&region);
    assert_eq!(rows, ROWS);
    assert!(ready);
    assert!(bytes > ROWS * COLUMNS * 5);
    println!(
        "Client: {n} allocations for {} rows after warm-up",
        ROWS - warm
    );
    assert!(
        n < FEW,
        "Client allocated {n} times for {} rows",
        ROWS - warm
    );
}

#[test]
fn server_allocates_nothing_per_message() {
    use bytes::BytesMut;
    use pgproto::{
        Bind, Encode, Execute, FrontendMessage, Parse, Server, ServerAuth, ServerConfig,
        ServerEvent, TransactionStatus,
    };
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const BATCHES: usize = 2_000;
    let mut out = BytesMut::new();
    for i in 0..BATCHES {
        let name = format!("s{}", i % 16);
        Parse::encode_values(&mut out, &name, "SELECT $1::int8, $2", &[20, 25]).unwrap();
        let n = i.to_string();
        let params = [Some(n.as_bytes()), None];
        Bind::encode_values(&mut out, "", &name, &[], &params, &[]).unwrap();
        pgproto::Describe::encode_values(&mut out, pgproto::Target::Portal, "").unwrap();
        Execute::encode_values(&mut out, "", 0).unwrap();
        FrontendMessage::Sync.encode(&mut out);
    }
    let mut server = Server::new(ServerConfig::default());
    server.receive(b"\0\0\0\x14\0\x03\0\0user\0alice\0\0");
    while let Some(e) = server.poll_event().unwrap() {
        if let ServerEvent::Startup { .. } = e {
            server.authenticate(ServerAuth::Trust).unwrap();
        }
    }
    let _ = server.poll_transmit();
    let (mut messages, mut values, mut sent) = (0, 0, 0);
    let mut feed = |server: &mut Server, chunk: &[u8]| {
        server.receive(chunk);
        while let Some(e) = server.poll_event().unwrap() {
            messages += 1;
            match e {
                ServerEvent::Message(FrontendMessage::Parse(_)) => server.parse_complete().unwrap(),
                ServerEvent::Message(FrontendMessage::Bind(b)) => {
                    values += b.params().iter().flatten().count();
                    server.bind_complete().unwrap()
                }
                ServerEvent::Message(FrontendMessage::Describe(_)) => server.no_data().unwrap(),
                ServerEvent::Message(FrontendMessage::Execute(_)) => {
                    server.command_complete("SELECT 0").unwrap()
                }
                ServerEvent::Message(FrontendMessage::Sync) => {
                    server.ready_for_query(TransactionStatus::Idle).unwrap()
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        while let Some(b) = server.poll_transmit() {
            sent += b.len();
        }
        messages
    };
    let mut chunks = out.chunks(CHUNK);
    let warm = feed(&mut server, chunks.next().unwrap());
    let region = Region::new(GLOBAL);
    for chunk in chunks {
        feed(&mut server, chunk);
    }
    let n = allocations(&region);
    assert_eq!(messages, BATCHES * 5);
    assert_eq!(values, BATCHES);
    assert!(sent >= BATCHES * (5 + 5 + 5 + 13 + 6));
    println!(
        "Server: {n} allocations for {} messages after warm-up",
        BATCHES * 5 - warm
    );
    assert!(
        n < FEW,
        "Server allocated {n} times for {} messages",
        BATCHES * 5 - warm
    );
}

/// Encoding from values into a warm buffer allocates nothing; a constructor makes one block per
/// message (its body, reserved at its size and kept without a copy), where it made several.
#[test]
fn encoders_allocate_nothing_and_constructors_once_per_message() {
    use bytes::BytesMut;
    use pgproto::{Bind, Encode, Execute, Format, FrontendMessage};
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const GROUPS: usize = 1_000;
    let values: Vec<String> = (0..GROUPS).map(|i| format!("value {i}")).collect();
    let group = |i: usize| {
        let params = [Some(values[i].as_bytes()), None, Some(&b"\0\0\0\x07"[..])];
        (format!("s{}", i % 16), params)
    };
    let groups: Vec<_> = (0..GROUPS).map(group).collect();

    let mut out = BytesMut::with_capacity(1 << 20);
    let region = Region::new(GLOBAL);
    for (statement, params) in &groups {
        Bind::encode_values(&mut out, "", statement, &[Format::Text], params, &[]).unwrap();
        Execute::encode_values(&mut out, "", 0).unwrap();
        FrontendMessage::Sync.encode(&mut out);
    }
    let n = allocations(&region);
    println!("encode_values: {n} allocations for {GROUPS} Bind+Execute+Sync");
    assert!(
        n < FEW,
        "encode_values allocated {n} times for {GROUPS} groups"
    );

    let region = Region::new(GLOBAL);
    let built: Vec<_> = groups
        .iter()
        .map(|(statement, params)| {
            let bind = Bind::new("", statement, &[Format::Text], params, &[]).unwrap();
            (bind, Execute::new("", 0).unwrap())
        })
        .collect();
    let n = allocations(&region);
    println!("constructors: {n} allocations for {GROUPS} Bind and Execute");
    // Two messages per group and the vector that holds them (grown about ten times).
    assert!(
        (2 * GROUPS..2 * GROUPS + FEW).contains(&n),
        "constructors allocated {n} times for {GROUPS} Bind and Execute"
    );
    let mut again = BytesMut::new();
    for (bind, execute) in &built {
        bind.encode(&mut again);
        execute.encode(&mut again);
        FrontendMessage::Sync.encode(&mut again);
    }
    assert_eq!(
        again, out,
        "built and encoded, or encoded from values: the same bytes"
    );
}
