//! Criterion benchmarks of `pgproto` beside its peer crates, on identical bytes in the same run.
//!
//! * `datarow_stream`: a backend result stream (RowDescription, 10,000 DataRows of 10 short text
//!   columns, CommandComplete, ReadyForQuery) fed in 8 KiB chunks, decoded by pgproto (the
//!   `next_data_row` + `next_ref` loop, `next_ref` alone, and `next`), by `postgres-protocol`, and
//!   by a bare framing loop (the upper bound). Every contender walks every column of every row and
//!   must produce the same checksum.
//! * `frontend_stream`: 1,000 batches of Parse/Bind/Describe/Execute/Sync fed in 8 KiB chunks,
//!   decoded by pgproto (`next_ref` and `next`) and by `pgwire`; every contender reads every name,
//!   the query, the parameter types, the format counts and every parameter value.
//! * `encode`: Bind+Execute+Sync (pgproto vs `postgres-protocol`) and DataRow (pgproto vs
//!   `pgwire`) from the same values into a reused buffer; pgproto also from prebuilt messages and
//!   by constructing messages first.
//!
//! Run with `cargo bench --bench codec -- --noplot`. After the criterion groups, a table of
//! ratios from interleaved rounds (each contender's fastest) is printed, which is far steadier on
//! a shared machine than comparing criterion means; `cargo bench --bench codec -- ratios` prints
//! only that table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, Throughput};
use fallible_iterator::FallibleIterator;
use pgproto::{
    BackendDecoder, BackendMessage, BackendMessageRef, Bind, DataRow, Encode, Execute, FormatCodes,
    FrontendDecoder, FrontendMessage, FrontendMessageRef, Limits, Values,
};

const CHUNK: usize = 8 * 1024;
const ROWS: usize = 10_000;
const COLUMNS: usize = 10;
const BATCHES: usize = 1_000;

// ---------------------------------------------------------------------------------------------
// Fixtures, built by hand (independently of every crate under test).

/// A deterministic generator of short text values.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A text value of 5 to 12 ASCII letters and digits.
    fn value(&mut self) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = 5 + (self.next() % 8) as usize;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

/// The rows of the backend stream, as column values.
fn rows() -> Vec<Vec<Vec<u8>>> {
    let mut g = Lcg(0x5eed);
    (0..ROWS)
        .map(|_| (0..COLUMNS).map(|_| g.value()).collect())
        .collect()
}

fn backend_stream(rows: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    body.extend_from_slice(&(COLUMNS as u16).to_be_bytes());
    for i in 0..COLUMNS {
        body.extend_from_slice(format!("column_{i}\0").as_bytes());
        body.extend_from_slice(&16_384u32.to_be_bytes()); // table OID
        body.extend_from_slice(&(i as i16 + 1).to_be_bytes()); // column number
        body.extend_from_slice(&25u32.to_be_bytes()); // text
        body.extend_from_slice(&(-1i16).to_be_bytes()); // varlena
        body.extend_from_slice(&(-1i32).to_be_bytes()); // no typmod
        body.extend_from_slice(&0i16.to_be_bytes()); // text format
    }
    frame(&mut out, b'T', &body);
    for row in rows {
        body.clear();
        body.extend_from_slice(&(row.len() as u16).to_be_bytes());
        for v in row {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v);
        }
        frame(&mut out, b'D', &body);
    }
    frame(&mut out, b'C', format!("SELECT {ROWS}\0").as_bytes());
    frame(&mut out, b'Z', b"I");
    out
}

const QUERY: &str =
    "SELECT id, name, email, created_at FROM accounts WHERE tenant_id = $1 AND status = $2 AND created_at > $3";

fn frontend_stream() -> Vec<u8> {
    let mut g = Lcg(0xf00d);
    let mut out = Vec::new();
    let mut body = Vec::new();
    for i in 0..BATCHES {
        let name = format!("stmt_{}", i % 16);
        // Parse: statement name, query, 3 parameter types (int8, text, timestamptz).
        body.clear();
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(QUERY.as_bytes());
        body.push(0);
        body.extend_from_slice(&3u16.to_be_bytes());
        for oid in [20u32, 25, 1184] {
            body.extend_from_slice(&oid.to_be_bytes());
        }
        frame(&mut out, b'P', &body);
        // Bind: unnamed portal, the statement, text params, 3 text values, text results.
        let params = [
            (1_000 + i).to_string().into_bytes(),
            g.value(),
            b"2024-01-01 00:00:00+00".to_vec(),
        ];
        body.clear();
        body.push(0);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&3u16.to_be_bytes());
        for p in &params {
            body.extend_from_slice(&(p.len() as i32).to_be_bytes());
            body.extend_from_slice(p);
        }
        body.extend_from_slice(&0u16.to_be_bytes());
        frame(&mut out, b'B', &body);
        frame(&mut out, b'D', b"P\0"); // Describe the unnamed portal
        frame(&mut out, b'E', b"\0\0\0\0\0"); // Execute it, no row limit
        frame(&mut out, b'S', b""); // Sync
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The backend-stream contenders. Each counts messages and walks every column of every row.

/// What every contender must agree on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sum {
    messages: u64,
    rows: u64,
    bytes: u64,
    nulls: u64,
}

impl Sum {
    #[inline]
    fn column(&mut self, value: Option<usize>) {
        match value {
            Some(len) => self.bytes += len as u64,
            None => self.nulls += 1,
        }
    }
}

// The `next_ref` and postgres-protocol contenders are also written with the
// `while let Some(m) = decoder.next().unwrap()` idiom, which moves the whole result out of its
// `Result` first. That once cost pgproto's `next_ref` half its speed (an 80-byte result moved
// through memory per message); since the rare messages are boxed in `BackendMessageRef` it costs
// little, and the row is there to keep it so.

fn pgproto_next(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut dec = BackendDecoder::new();
    for chunk in chunks {
        dec.receive(chunk);
        loop {
            match dec.next() {
                Ok(Some(BackendMessage::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.map(<[u8]>::len));
                    }
                }
                Ok(Some(_)) => s.messages += 1,
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    s
}

fn pgproto_next_ref(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut dec = BackendDecoder::new();
    for chunk in chunks {
        dec.receive(chunk);
        loop {
            match dec.next_ref() {
                Ok(Some(BackendMessageRef::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.map(<[u8]>::len));
                    }
                }
                Ok(Some(_)) => s.messages += 1,
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    s
}

/// The intended row loop: `next_data_row` while rows come, `next_ref` for everything else.
fn pgproto_next_data_row(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut dec = BackendDecoder::new();
    for chunk in chunks {
        dec.receive(chunk);
        loop {
            while let Some(row) = dec.next_data_row() {
                s.messages += 1;
                s.rows += 1;
                for c in row.columns() {
                    s.column(c.map(<[u8]>::len));
                }
            }
            match dec.next_ref() {
                Ok(Some(BackendMessageRef::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.map(<[u8]>::len));
                    }
                }
                Ok(Some(_)) => s.messages += 1,
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    s
}

fn postgres_protocol_parse(chunks: &[&[u8]]) -> Sum {
    use postgres_protocol::message::backend::Message;
    let mut s = Sum::default();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match Message::parse(&mut buf) {
                Ok(Some(Message::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    let mut ranges = row.ranges();
                    while let Some(r) = ranges.next().unwrap() {
                        s.column(r.map(|r| r.len()));
                    }
                }
                Ok(Some(_)) => s.messages += 1,
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    s
}

fn pgproto_next_ref_unwrap(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut dec = BackendDecoder::new();
    for chunk in chunks {
        dec.receive(chunk);
        while let Some(m) = dec.next_ref().unwrap() {
            s.messages += 1;
            if let BackendMessageRef::DataRow(row) = m {
                s.rows += 1;
                for c in row.columns() {
                    s.column(c.map(<[u8]>::len));
                }
            }
        }
    }
    s
}

fn postgres_protocol_parse_unwrap(chunks: &[&[u8]]) -> Sum {
    use postgres_protocol::message::backend::Message;
    let mut s = Sum::default();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(m) = Message::parse(&mut buf).unwrap() {
            s.messages += 1;
            if let Message::DataRow(row) = m {
                s.rows += 1;
                let mut ranges = row.ranges();
                while let Some(r) = ranges.next().unwrap() {
                    s.column(r.map(|r| r.len()));
                }
            }
        }
    }
    s
}

/// The upper bound: reassemble frames across chunks in a plain `Vec`, read tag and length, walk
/// the column lengths of DataRows without any validation, and skip. Chunks are appended in
/// 1 KiB pieces, as pgproto's `receive` does (glibc copies 2 KiB or more with `rep movsb`, which
/// is slow on this machine), so that this stays a bound on pgproto.
fn framing_only(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0;
    for chunk in chunks {
        buf.drain(..pos);
        pos = 0;
        for piece in chunk.chunks(1024) {
            buf.extend_from_slice(piece);
        }
        while let Some(h) = buf.get(pos..pos + 5) {
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            let Some(body) = buf.get(pos + 5..pos + 1 + len) else {
                break;
            };
            s.messages += 1;
            if h[0] == b'D' {
                s.rows += 1;
                let (count, mut rest) = body.split_at(2);
                for _ in 0..u16::from_be_bytes([count[0], count[1]]) {
                    let (n, tail) = rest.split_first_chunk::<4>().unwrap();
                    let n = i32::from_be_bytes(*n);
                    if n < 0 {
                        s.column(None);
                        rest = tail;
                    } else {
                        s.column(Some(n as usize));
                        rest = &tail[n as usize..];
                    }
                }
            }
            pos += 1 + len;
        }
    }
    s
}

fn datarow_stream(c: &mut Criterion) {
    let rows = rows();
    let stream = backend_stream(&rows);
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();

    let expected = Sum {
        messages: ROWS as u64 + 3,
        rows: ROWS as u64,
        bytes: rows.iter().flatten().map(|v| v.len() as u64).sum(),
        nulls: 0,
    };
    assert_eq!(pgproto_next_data_row(&chunks), expected);
    assert_eq!(pgproto_next(&chunks), expected);
    assert_eq!(pgproto_next_ref(&chunks), expected);
    assert_eq!(postgres_protocol_parse(&chunks), expected);
    assert_eq!(pgproto_next_ref_unwrap(&chunks), expected);
    assert_eq!(postgres_protocol_parse_unwrap(&chunks), expected);
    assert_eq!(framing_only(&chunks), expected);

    let mut g = c.benchmark_group("datarow_stream");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("pgproto_next_data_row", |b| {
        b.iter(|| pgproto_next_data_row(black_box(&chunks)))
    });
    g.bench_function("pgproto_next", |b| {
        b.iter(|| pgproto_next(black_box(&chunks)))
    });
    g.bench_function("pgproto_next_ref", |b| {
        b.iter(|| pgproto_next_ref(black_box(&chunks)))
    });
    g.bench_function("postgres_protocol", |b| {
        b.iter(|| postgres_protocol_parse(black_box(&chunks)))
    });
    g.bench_function("pgproto_next_ref_while_let_unwrap", |b| {
        b.iter(|| pgproto_next_ref_unwrap(black_box(&chunks)))
    });
    g.bench_function("postgres_protocol_while_let_unwrap", |b| {
        b.iter(|| postgres_protocol_parse_unwrap(black_box(&chunks)))
    });
    g.bench_function("framing_only", |b| {
        b.iter(|| framing_only(black_box(&chunks)))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The frontend-stream contenders. Each counts messages and reads every name, query and value.

fn pgproto_frontend(chunks: &[&[u8]]) -> Sum {
    use FrontendMessage as M;
    let mut s = Sum::default();
    let mut dec = FrontendDecoder::after_startup(Limits::default());
    for chunk in chunks {
        dec.receive(chunk);
        loop {
            let m = dec.next();
            match &m {
                Ok(Some(M::Parse(p))) => {
                    s.bytes += (p.name().len() + p.query().len()) as u64;
                    s.bytes += p.param_types().map(u64::from).sum::<u64>();
                }
                Ok(Some(M::Bind(b))) => {
                    s.rows += 1;
                    s.bytes += (b.portal().len() + b.statement().len()) as u64;
                    s.bytes += (b.param_formats().len() + b.result_formats().len()) as u64;
                    for v in b.params().iter() {
                        s.column(v.map(<[u8]>::len));
                    }
                }
                Ok(Some(M::Describe(d))) => s.bytes += d.name().len() as u64,
                Ok(Some(M::Execute(e))) => s.bytes += e.portal().len() as u64 + e.max_rows() as u64,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
            s.messages += 1;
        }
    }
    s
}

fn pgproto_frontend_next_ref(chunks: &[&[u8]]) -> Sum {
    use FrontendMessageRef as M;
    let mut s = Sum::default();
    let mut dec = FrontendDecoder::after_startup(Limits::default());
    for chunk in chunks {
        dec.receive(chunk);
        loop {
            match dec.next_ref() {
                Ok(Some(M::Parse(p))) => {
                    s.bytes += (p.name().len() + p.query().len()) as u64;
                    s.bytes += p.param_types().map(u64::from).sum::<u64>();
                }
                Ok(Some(M::Bind(b))) => {
                    s.rows += 1;
                    s.bytes += (b.portal().len() + b.statement().len()) as u64;
                    s.bytes += (b.param_formats().len() + b.result_formats().len()) as u64;
                    for v in b.params() {
                        s.column(v.map(<[u8]>::len));
                    }
                }
                Ok(Some(M::Describe(d))) => s.bytes += d.name().len() as u64,
                Ok(Some(M::Execute(e))) => s.bytes += e.portal().len() as u64 + e.max_rows() as u64,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
            s.messages += 1;
        }
    }
    s
}

fn pgwire_frontend(chunks: &[&[u8]]) -> Sum {
    use pgwire::messages::PgWireFrontendMessage as M;
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len) as u64;
    let mut s = Sum::default();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let m = M::decode(&mut buf);
            match &m {
                Ok(Some(M::Parse(p))) => {
                    s.bytes += len(&p.name) + p.query.len() as u64;
                    s.bytes += p.type_oids.iter().copied().map(u64::from).sum::<u64>();
                }
                Ok(Some(M::Bind(b))) => {
                    s.rows += 1;
                    s.bytes += len(&b.portal_name) + len(&b.statement_name);
                    s.bytes += (b.parameter_format_codes.len() + b.result_column_format_codes.len())
                        as u64;
                    for v in &b.parameters {
                        s.column(v.as_ref().map(|v| v.len()));
                    }
                }
                Ok(Some(M::Describe(d))) => s.bytes += len(&d.name),
                Ok(Some(M::Execute(e))) => s.bytes += len(&e.name) + e.max_rows as u64,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
            s.messages += 1;
        }
    }
    s
}

fn frontend_stream_group(c: &mut Criterion) {
    let stream = frontend_stream();
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();

    let ours = pgproto_frontend(&chunks);
    assert_eq!(ours.messages, BATCHES as u64 * 5);
    assert_eq!(ours.rows, BATCHES as u64);
    assert_eq!(pgproto_frontend_next_ref(&chunks), ours);
    assert_eq!(pgwire_frontend(&chunks), ours);

    let mut g = c.benchmark_group("frontend_stream");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("pgproto_next_ref", |b| {
        b.iter(|| pgproto_frontend_next_ref(black_box(&chunks)))
    });
    g.bench_function("pgproto_next", |b| {
        b.iter(|| pgproto_frontend(black_box(&chunks)))
    });
    g.bench_function("pgwire", |b| b.iter(|| pgwire_frontend(black_box(&chunks))));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Encoding into a reused buffer.

const STATEMENT: &str = "stmt_7";
const PARAMS: [Option<&[u8]>; 3] = [
    Some(b"1007"),
    Some(b"active"),
    Some(b"2024-01-01 00:00:00+00"),
];

/// pgproto from values: the direct encoders, which check like the constructors but build no
/// message.
fn pgproto_bind_execute_sync(out: &mut BytesMut, params: &[Option<&[u8]>]) {
    Bind::encode_values(out, "", STATEMENT, &[], params, &[]).unwrap();
    Execute::encode_values(out, "", 0).unwrap();
    FrontendMessage::Sync.encode(out);
}

/// pgproto by building the messages first (constructors, then `Encode`).
fn pgproto_bind_execute_sync_construct(out: &mut BytesMut, params: &[Option<&[u8]>]) {
    Bind::new(
        "",
        STATEMENT,
        FormatCodes::default(),
        Values::new(params.iter().copied()).unwrap(),
        FormatCodes::default(),
    )
    .unwrap()
    .encode(out);
    Execute::new("", 0).unwrap().encode(out);
    FrontendMessage::Sync.encode(out);
}

fn postgres_protocol_bind_execute_sync(out: &mut BytesMut, params: &[Option<&[u8]>]) {
    use postgres_protocol::message::frontend;
    use postgres_protocol::IsNull;
    frontend::bind(
        "",
        STATEMENT,
        std::iter::empty::<i16>(),
        params.iter().copied(),
        |v, out| {
            Ok(match v {
                Some(v) => {
                    out.put_slice(v);
                    IsNull::No
                }
                None => IsNull::Yes,
            })
        },
        std::iter::empty::<i16>(),
        out,
    )
    .map_err(|_| "bind")
    .unwrap();
    frontend::execute("", 0, out).unwrap();
    frontend::sync(out);
}

/// pgwire's way to a DataRow from values, as its `DataRowEncoder` does it: a fresh row buffer
/// (capacity 128) with each value's length word and bytes, then the message.
fn pgwire_data_row(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    use pgwire::messages::Message;
    let mut row = BytesMut::with_capacity(128);
    for v in values {
        match v {
            Some(v) => {
                row.put_i32(v.len() as i32);
                row.put_slice(v);
            }
            None => row.put_i32(-1),
        }
    }
    pgwire::messages::data::DataRow::new(row, values.len() as i16)
        .encode(out)
        .unwrap();
}

fn encode(c: &mut Criterion) {
    let mut out = BytesMut::with_capacity(4096);
    let mut peer = BytesMut::with_capacity(4096);

    // Bind + Execute + Sync.
    pgproto_bind_execute_sync(&mut out, &PARAMS);
    postgres_protocol_bind_execute_sync(&mut peer, &PARAMS);
    assert_eq!(out, peer);
    out.clear();
    pgproto_bind_execute_sync_construct(&mut out, &PARAMS);
    assert_eq!(out, peer);
    let prebuilt_bind = Bind::new(
        "",
        STATEMENT,
        FormatCodes::default(),
        Values::new(PARAMS).unwrap(),
        FormatCodes::default(),
    )
    .unwrap();
    let prebuilt_execute = Execute::new("", 0).unwrap();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("bind_execute_sync/pgproto_encode_values", |b| {
        b.iter(|| {
            out.clear();
            pgproto_bind_execute_sync(&mut out, black_box(&PARAMS));
            black_box(&out);
        })
    });
    g.bench_function("bind_execute_sync/pgproto_construct_and_encode", |b| {
        b.iter(|| {
            out.clear();
            pgproto_bind_execute_sync_construct(&mut out, black_box(&PARAMS));
            black_box(&out);
        })
    });
    g.bench_function("bind_execute_sync/pgproto_prebuilt_encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&prebuilt_bind).encode(&mut out);
            black_box(&prebuilt_execute).encode(&mut out);
            FrontendMessage::Sync.encode(&mut out);
            black_box(&out);
        })
    });
    g.bench_function("bind_execute_sync/postgres_protocol", |b| {
        b.iter(|| {
            peer.clear();
            postgres_protocol_bind_execute_sync(&mut peer, black_box(&PARAMS));
            black_box(&peer);
        })
    });

    // DataRow from the first row of the stream fixture.
    let row = rows().swap_remove(0);
    let values: Vec<Option<&[u8]>> = row.iter().map(|v| Some(&v[..])).collect();
    out.clear();
    peer.clear();
    DataRow::encode_values(&mut out, &values).unwrap();
    pgwire_data_row(&mut peer, &values);
    assert_eq!(out, peer);
    let prebuilt_row = DataRow::new(values.iter().copied()).unwrap();
    let prebuilt_pgwire_row = {
        let mut b = BytesMut::new();
        pgwire_data_row(&mut b, &values);
        pgwire::messages::data::DataRow::new(b.split_off(7), values.len() as i16)
    };
    peer.clear();
    pgwire::messages::Message::encode(&prebuilt_pgwire_row, &mut peer).unwrap();
    assert_eq!(out, peer);
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("data_row/pgproto_encode_values", |b| {
        b.iter(|| {
            out.clear();
            DataRow::encode_values(&mut out, black_box(&values)).unwrap();
            black_box(&out);
        })
    });
    g.bench_function("data_row/pgproto_new_and_encode", |b| {
        b.iter(|| {
            out.clear();
            DataRow::new(black_box(&values).iter().copied())
                .unwrap()
                .encode(&mut out);
            black_box(&out);
        })
    });
    g.bench_function("data_row/pgproto_prebuilt_encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&prebuilt_row).encode(&mut out);
            black_box(&out);
        })
    });
    g.bench_function("data_row/pgwire_prebuilt_encode", |b| {
        b.iter(|| {
            peer.clear();
            pgwire::messages::Message::encode(black_box(&prebuilt_pgwire_row), &mut peer).unwrap();
            black_box(&peer);
        })
    });
    g.bench_function("data_row/pgwire_build_and_encode", |b| {
        b.iter(|| {
            peer.clear();
            pgwire_data_row(&mut peer, black_box(&values));
            black_box(&peer);
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// A noise-resistant ratio table. On a shared machine criterion's means drift by tens of percent
// between runs, so after the criterion groups the contenders are also timed in interleaved
// rounds and each one's fastest round is kept: the minimum is what the code costs when nothing
// else interferes, and interleaving exposes every contender to the same machine state.

/// Keeps a checksum alive, so the work that produced it cannot be optimised away.
fn consume(s: Sum) {
    black_box(s);
}

/// The fastest of `rounds` timings of `f`.
fn fastest<R>(rounds: usize, mut f: impl FnMut() -> R) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Times each contender in `passes` interleaved passes of `rounds` rounds, keeping its fastest.
/// Many short passes spread each contender's rounds over the whole run (about 15 seconds), so
/// every one of them meets the quiet moments of a machine shared with other builds.
fn interleaved(passes: usize, rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; fs.len()];
    for _ in 0..passes {
        for (b, f) in best.iter_mut().zip(fs.iter_mut()) {
            *b = (*b).min(fastest(rounds, &mut **f));
        }
    }
    best
}

/// Prints each contender's time per unit (`per` units per timed call) and its ratio to the
/// contender at `baseline` (above 1: faster than the baseline).
fn print_ratios(title: &str, names: &[&str], times: &[Duration], per: f64, baseline: usize) {
    println!("\n{title} (fastest of interleaved rounds; ratio = baseline time / time)");
    for (name, t) in names.iter().zip(times) {
        let secs = t.as_secs_f64() / per;
        let (value, unit) = if secs >= 1e-5 {
            (secs * 1e6, "us")
        } else {
            (secs * 1e9, "ns")
        };
        println!(
            "  {name:40} {value:>9.1} {unit}  x{:.2}",
            times[baseline].as_secs_f64() / t.as_secs_f64()
        );
    }
}

fn ratios() {
    let rows = rows();
    let stream = backend_stream(&rows);
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    let t = interleaved(
        150,
        5,
        &mut [
            &mut || consume(black_box(pgproto_next_data_row(black_box(&chunks)))),
            &mut || consume(black_box(pgproto_next(black_box(&chunks)))),
            &mut || consume(black_box(pgproto_next_ref(black_box(&chunks)))),
            &mut || consume(black_box(postgres_protocol_parse(black_box(&chunks)))),
            &mut || consume(black_box(pgproto_next_ref_unwrap(black_box(&chunks)))),
            &mut || {
                consume(black_box(postgres_protocol_parse_unwrap(black_box(
                    &chunks,
                ))))
            },
            &mut || consume(black_box(framing_only(black_box(&chunks)))),
        ],
    );
    print_ratios(
        "datarow_stream, per stream",
        &[
            "pgproto_next_data_row",
            "pgproto_next",
            "pgproto_next_ref",
            "postgres_protocol",
            "pgproto_next_ref_while_let_unwrap",
            "postgres_protocol_while_let_unwrap",
            "framing_only",
        ],
        &t,
        1.0,
        3,
    );

    let stream = frontend_stream();
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    let t = interleaved(
        150,
        5,
        &mut [
            &mut || consume(black_box(pgproto_frontend_next_ref(black_box(&chunks)))),
            &mut || consume(black_box(pgproto_frontend(black_box(&chunks)))),
            &mut || consume(black_box(pgwire_frontend(black_box(&chunks)))),
        ],
    );
    print_ratios(
        "frontend_stream, per stream",
        &["pgproto_next_ref", "pgproto_next", "pgwire"],
        &t,
        1.0,
        2,
    );

    const BATCH: usize = 1_000;
    let mut outs: [BytesMut; 6] = std::array::from_fn(|_| BytesMut::with_capacity(4096));
    let [o1, o2, o3, o4, o5, o6] = &mut outs;
    let bind = Bind::new(
        "",
        STATEMENT,
        FormatCodes::default(),
        Values::new(PARAMS).unwrap(),
        FormatCodes::default(),
    )
    .unwrap();
    let execute = Execute::new("", 0).unwrap();
    let row = rows.into_iter().next().unwrap_or_default();
    let values: Vec<Option<&[u8]>> = row.iter().map(|v| Some(&v[..])).collect();
    let t = interleaved(
        150,
        10,
        &mut [
            &mut || {
                for _ in 0..BATCH {
                    o1.clear();
                    pgproto_bind_execute_sync(o1, black_box(&PARAMS));
                }
            },
            &mut || {
                for _ in 0..BATCH {
                    o2.clear();
                    postgres_protocol_bind_execute_sync(o2, black_box(&PARAMS));
                }
            },
            &mut || {
                for _ in 0..BATCH {
                    o5.clear();
                    black_box(&bind).encode(o5);
                    black_box(&execute).encode(o5);
                    FrontendMessage::Sync.encode(o5);
                }
            },
            &mut || {
                for _ in 0..BATCH {
                    o3.clear();
                    DataRow::encode_values(o3, black_box(&values)).unwrap();
                }
            },
            &mut || {
                for _ in 0..BATCH {
                    o4.clear();
                    pgwire_data_row(o4, black_box(&values));
                }
            },
            &mut || {
                for _ in 0..BATCH {
                    o6.clear();
                    pgproto_bind_execute_sync_construct(o6, black_box(&PARAMS));
                }
            },
        ],
    );
    print_ratios(
        "encode Bind+Execute+Sync, per group",
        &[
            "bind_execute_sync/pgproto_encode_values",
            "bind_execute_sync/postgres_protocol",
            "bind_execute_sync/pgproto_prebuilt_encode",
            "bind_execute_sync/pgproto_construct",
        ],
        &[t[0], t[1], t[2], t[5]],
        BATCH as f64,
        1,
    );
    print_ratios(
        "encode DataRow, per row",
        &[
            "data_row/pgproto_encode_values",
            "data_row/pgwire_build_and_encode",
        ],
        &t[3..5],
        BATCH as f64,
        1,
    );
}

/// Whether to print the ratio table: under `cargo bench` with no filter, or the filter `ratios`.
fn want_ratios() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    args.iter().any(|a| a == "--bench")
        && (filters.is_empty() || filters.iter().any(|f| f.as_str() == "ratios"))
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    datarow_stream(&mut c);
    frontend_stream_group(&mut c);
    encode(&mut c);
    c.final_summary();
    if want_ratios() {
        ratios();
    }
}
