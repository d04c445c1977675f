//! Criterion benchmarks of `pgproto`'s codec beside its peer crates, on identical bytes fed the
//! same way in the same run.
//!
//! * `datarow_stream_narrow` and `datarow_stream_mixed`: a backend result stream
//!   (RowDescription, 10,000 DataRows of 10 text columns, CommandComplete, ReadyForQuery) cut in
//!   8 KiB reads, each read appended whole by every contender: pgproto (the `next_data_row` +
//!   `next_ref` loop, `next_ref` alone, and `next`), `postgres-protocol`, and a bare framing loop
//!   (the upper bound). Narrow rows hold 5 to 12 byte values; mixed rows hold NULLs (one value in
//!   8), values of 0 to 47 bytes and, one value in 40, 800 to 1,300 bytes. Every contender walks
//!   every column of every row and must produce the same checksum.
//! * `frontend_stream`: 1,000 batches of Parse/Bind/Describe/Execute/Sync in 8 KiB reads,
//!   decoded by pgproto (`next_ref` and `next`) and by `pgwire`; every contender reads every
//!   name, the query, the parameter types, the format counts and every parameter value.
//! * `encode`: 1,000 Bind+Execute+Sync groups (varied parameters, some NULL) into one buffer,
//!   pgproto vs `postgres-protocol`; 1,000 DataRows (the first rows of the narrow and the mixed
//!   fixtures) into one buffer, pgproto vs `pgwire`'s `DataRowEncoder`. Outputs must be equal.
//!
//! Run with `cargo bench --bench codec`. After the criterion groups, a table of ratios from
//! interleaved rounds (each contender's fastest) is printed, which is far steadier on a shared
//! machine than comparing criterion means; `cargo bench --bench codec -- ratios` prints only that
//! table.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, Throughput};
use fallible_iterator::FallibleIterator;
use pgproto::{
    BackendDecoder, BackendMessage, Bind, DataRow, Encode, Execute, FrontendDecoder,
    FrontendMessage, Limits,
};

use common::{
    backend_stream, bind_params, frontend_stream, interleaved, mixed_rows, narrow_rows, Lcg, Row,
    Sum, BATCHES, CHUNK,
};

/// Rows (or Bind+Execute+Sync groups) per timed encoding call.
const ENCODED: usize = 1_000;

// ---------------------------------------------------------------------------------------------
// The backend-stream contenders. Each counts messages and walks every column of every row.

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
                        s.column(c.unwrap().map(<[u8]>::len));
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
                Ok(Some(BackendMessage::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.unwrap().map(<[u8]>::len));
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
                    s.column(c.unwrap().map(<[u8]>::len));
                }
            }
            match dec.next_ref() {
                Ok(Some(BackendMessage::DataRow(row))) => {
                    s.messages += 1;
                    s.rows += 1;
                    for c in row.columns() {
                        s.column(c.unwrap().map(<[u8]>::len));
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
            if let BackendMessage::DataRow(row) = m {
                s.rows += 1;
                for c in row.columns() {
                    s.column(c.unwrap().map(<[u8]>::len));
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

/// The upper bound: reassemble frames across chunks in a plain `Vec` (each chunk appended
/// whole), read tag and length, walk the column lengths of DataRows without any validation, and
/// skip.
fn framing_only(chunks: &[&[u8]]) -> Sum {
    let mut s = Sum::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0;
    for chunk in chunks {
        buf.drain(..pos);
        pos = 0;
        buf.extend_from_slice(chunk);
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

/// What a contender must report for a stream of `rows`.
fn expected(rows: &[Row]) -> Sum {
    Sum {
        messages: rows.len() as u64 + 3,
        rows: rows.len() as u64,
        bytes: rows
            .iter()
            .flatten()
            .flatten()
            .map(|v| v.len() as u64)
            .sum(),
        nulls: rows.iter().flatten().filter(|v| v.is_none()).count() as u64,
        written: 0,
    }
}

type StreamContender = fn(&[&[u8]]) -> Sum;

/// The contenders on both backend streams.
const DATAROW_CONTENDERS: [(&str, StreamContender); 5] = [
    ("pgproto_next_data_row", pgproto_next_data_row),
    ("pgproto_next", pgproto_next),
    ("pgproto_next_ref", pgproto_next_ref),
    ("postgres_protocol", postgres_protocol_parse),
    ("framing_only", framing_only),
];

/// The contenders on the narrow stream only: the `while let ... unwrap()` idiom.
const DATAROW_UNWRAP_CONTENDERS: [(&str, StreamContender); 2] = [
    ("pgproto_next_ref_while_let_unwrap", pgproto_next_ref_unwrap),
    (
        "postgres_protocol_while_let_unwrap",
        postgres_protocol_parse_unwrap,
    ),
];

fn datarow_stream(c: &mut Criterion, name: &str, rows: &[Row], unwrap_idiom: bool) {
    let stream = backend_stream(rows);
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    let expected = expected(rows);
    let extra: &[(&str, StreamContender)] = if unwrap_idiom {
        &DATAROW_UNWRAP_CONTENDERS
    } else {
        &[]
    };
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    for (name, f) in DATAROW_CONTENDERS.iter().chain(extra) {
        assert_eq!(f(&chunks), expected, "{name}");
        g.bench_function(*name, |b| b.iter(|| f(black_box(&chunks))));
    }
    g.finish();
}

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
    use FrontendMessage as M;
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

/// pgwire's decoding context once start-up is over (no SSLRequest or StartupMessage expected).
fn pgwire_after_startup() -> pgwire::messages::DecodeContext {
    use pgwire::messages::{DecodeContext, ProtocolVersion};
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    ctx
}

fn pgwire_frontend(chunks: &[&[u8]]) -> Sum {
    use pgwire::messages::PgWireFrontendMessage as M;
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len) as u64;
    let mut s = Sum::default();
    let ctx = pgwire_after_startup();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let m = M::decode(&mut buf, &ctx);
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
// Encoding: `ENCODED` messages into one buffer, reused (cleared) between timed calls.

/// A Bind+Execute+Sync group: the statement and its three parameters.
type BindGroup<'a> = (&'a str, [Option<&'a [u8]>; 3]);

/// The owned fixtures of the encoders.
struct EncodeFixtures {
    binds: Vec<(String, [Option<Vec<u8>>; 3])>,
    narrow: Vec<Row>,
    mixed: Vec<Row>,
}

impl EncodeFixtures {
    /// The frontend stream's statements and parameters (the text one NULL one time in 7), and the
    /// first `ENCODED` rows of the narrow and the mixed fixtures.
    fn new() -> Self {
        let mut g = Lcg(0xf00d);
        let binds = (0..ENCODED)
            .map(|i| {
                let [a, b, c] = bind_params(&mut g, i);
                (
                    format!("stmt_{}", i % 16),
                    [Some(a), (i % 7 != 3).then_some(b), Some(c)],
                )
            })
            .collect();
        let first = |mut rows: Vec<Row>| {
            rows.truncate(ENCODED);
            rows
        };
        Self {
            binds,
            narrow: first(narrow_rows()),
            mixed: first(mixed_rows()),
        }
    }

    fn bind_groups(&self) -> Vec<BindGroup<'_>> {
        self.binds
            .iter()
            .map(|(s, p)| (s.as_str(), [0, 1, 2].map(|i| p[i].as_deref())))
            .collect()
    }
}

/// Column values as pgproto takes them.
fn byte_views(rows: &[Row]) -> Vec<Vec<Option<&[u8]>>> {
    rows.iter()
        .map(|r| r.iter().map(Option::as_deref).collect())
        .collect()
}

/// Column values as pgwire's `DataRowEncoder` takes text (the fixtures are ASCII).
fn str_views(rows: &[Row]) -> Vec<Vec<Option<&str>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.as_deref().map(|v| std::str::from_utf8(v).unwrap()))
                .collect()
        })
        .collect()
}

/// pgproto from values: the direct encoders, which check like the constructors but build no
/// message.
fn pgproto_binds(out: &mut BytesMut, groups: &[BindGroup<'_>]) {
    for (statement, params) in groups {
        Bind::encode_values(out, "", statement, &[], params, &[]).unwrap();
        Execute::encode_values(out, "", 0).unwrap();
        FrontendMessage::Sync.encode(out);
    }
}

/// pgproto by building the messages first (constructors, then `Encode`).
fn pgproto_binds_construct(out: &mut BytesMut, groups: &[BindGroup<'_>]) {
    for (statement, params) in groups {
        Bind::new("", statement, &[], &params[..], &[])
            .unwrap()
            .encode(out);
        Execute::new("", 0).unwrap().encode(out);
        FrontendMessage::Sync.encode(out);
    }
}

/// pgproto from messages built beforehand.
fn pgproto_binds_prebuilt(out: &mut BytesMut, prebuilt: &[(Bind, Execute)]) {
    for (bind, execute) in prebuilt {
        bind.encode(out);
        execute.encode(out);
        FrontendMessage::Sync.encode(out);
    }
}

fn postgres_protocol_binds(out: &mut BytesMut, groups: &[BindGroup<'_>]) {
    use postgres_protocol::message::frontend;
    use postgres_protocol::IsNull;
    for (statement, params) in groups {
        frontend::bind(
            "",
            statement,
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
}

fn pgproto_data_rows(out: &mut BytesMut, rows: &[Vec<Option<&[u8]>>]) {
    for row in rows {
        DataRow::encode_values(out, row).unwrap();
    }
}

fn pgproto_data_rows_construct(out: &mut BytesMut, rows: &[Vec<Option<&[u8]>>]) {
    for row in rows {
        DataRow::new(row.iter().copied()).unwrap().encode(out);
    }
}

/// pgwire's encoder for rows of `COLUMNS` text columns in text format, as a pgwire server
/// builds its rows.
fn pgwire_row_encoder() -> pgwire::api::results::DataRowEncoder {
    use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
    use pgwire::api::Type;
    let fields = (0..common::COLUMNS)
        .map(|i| {
            FieldInfo::new(
                format!("column_{i}"),
                None,
                None,
                Type::TEXT,
                FieldFormat::Text,
            )
        })
        .collect();
    DataRowEncoder::new(Arc::new(fields))
}

/// pgwire's way from values to DataRows: `DataRowEncoder::encode_field` per value, `take_row`,
/// then the message's `encode`.
fn pgwire_data_rows(
    out: &mut BytesMut,
    encoder: &mut pgwire::api::results::DataRowEncoder,
    rows: &[Vec<Option<&str>>],
) {
    use pgwire::messages::Message;
    for row in rows {
        for v in row {
            encoder.encode_field(v).unwrap();
        }
        encoder.take_row().encode(out).unwrap();
    }
}

/// Runs `f` into a cleared `out`.
fn into(out: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
    out.clear();
    f(out);
    black_box(&*out);
}

fn encode(c: &mut Criterion) {
    let fx = EncodeFixtures::new();
    let groups = fx.bind_groups();
    let prebuilt: Vec<(Bind, Execute)> = groups
        .iter()
        .map(|(statement, params)| {
            let bind = Bind::new("", statement, &[], &params[..], &[]).unwrap();
            (bind, Execute::new("", 0).unwrap())
        })
        .collect();
    let mut out = BytesMut::new();
    let mut peer = BytesMut::new();

    into(&mut peer, |o| postgres_protocol_binds(o, &groups));
    into(&mut out, |o| pgproto_binds(o, &groups));
    assert_eq!(out, peer);
    into(&mut out, |o| pgproto_binds_construct(o, &groups));
    assert_eq!(out, peer);
    into(&mut out, |o| pgproto_binds_prebuilt(o, &prebuilt));
    assert_eq!(out, peer);

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(ENCODED as u64));
    g.bench_function("bind_execute_sync/pgproto_encode_values", |b| {
        b.iter(|| into(&mut out, |o| pgproto_binds(o, black_box(&groups))))
    });
    g.bench_function("bind_execute_sync/pgproto_construct_and_encode", |b| {
        b.iter(|| into(&mut out, |o| pgproto_binds_construct(o, black_box(&groups))))
    });
    g.bench_function("bind_execute_sync/pgproto_prebuilt_encode", |b| {
        b.iter(|| {
            into(&mut out, |o| {
                pgproto_binds_prebuilt(o, black_box(&prebuilt))
            })
        })
    });
    g.bench_function("bind_execute_sync/postgres_protocol", |b| {
        b.iter(|| {
            into(&mut peer, |o| {
                postgres_protocol_binds(o, black_box(&groups))
            })
        })
    });

    let mut encoder = pgwire_row_encoder();
    for (name, rows) in [("narrow", &fx.narrow), ("mixed", &fx.mixed)] {
        let bytes = byte_views(rows);
        let strs = str_views(rows);
        into(&mut out, |o| pgproto_data_rows(o, &bytes));
        into(&mut peer, |o| pgwire_data_rows(o, &mut encoder, &strs));
        assert_eq!(out, peer);
        into(&mut out, |o| pgproto_data_rows_construct(o, &bytes));
        assert_eq!(out, peer);
        g.bench_function(format!("data_row_{name}/pgproto_encode_values"), |b| {
            b.iter(|| into(&mut out, |o| pgproto_data_rows(o, black_box(&bytes))))
        });
        g.bench_function(format!("data_row_{name}/pgproto_new_and_encode"), |b| {
            b.iter(|| {
                into(&mut out, |o| {
                    pgproto_data_rows_construct(o, black_box(&bytes))
                })
            })
        });
        g.bench_function(format!("data_row_{name}/pgwire_data_row_encoder"), |b| {
            b.iter(|| {
                into(&mut peer, |o| {
                    pgwire_data_rows(o, &mut encoder, black_box(&strs))
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The ratio table: interleaved rounds, each contender's fastest (see `common::interleaved`).

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

/// Times stream contenders against each other on `chunks`.
fn stream_ratios(
    title: &str,
    contenders: &[(&str, StreamContender)],
    chunks: &[&[u8]],
    base: usize,
) {
    let mut fs: Vec<Box<dyn FnMut() + '_>> = contenders
        .iter()
        .map(|&(_, f)| {
            Box::new(move || {
                black_box(f(black_box(chunks)));
            }) as Box<dyn FnMut()>
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as _).collect();
    let t = interleaved(100, 5, &mut refs);
    let names: Vec<&str> = contenders.iter().map(|c| c.0).collect();
    print_ratios(title, &names, &t, 1.0, base);
}

fn ratios() {
    let narrow = narrow_rows();
    let stream = backend_stream(&narrow);
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    let all: Vec<(&str, StreamContender)> = DATAROW_CONTENDERS
        .iter()
        .chain(&DATAROW_UNWRAP_CONTENDERS)
        .copied()
        .collect();
    stream_ratios("datarow_stream_narrow, per stream", &all, &chunks, 3);

    let mixed = mixed_rows();
    let stream = backend_stream(&mixed);
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    stream_ratios(
        "datarow_stream_mixed, per stream",
        &DATAROW_CONTENDERS,
        &chunks,
        3,
    );

    let stream = frontend_stream();
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    stream_ratios(
        "frontend_stream, per stream",
        &[
            ("pgproto_next_ref", pgproto_frontend_next_ref),
            ("pgproto_next", pgproto_frontend),
            ("pgwire", pgwire_frontend),
        ],
        &chunks,
        2,
    );

    let fx = EncodeFixtures::new();
    let groups = fx.bind_groups();
    let prebuilt: Vec<(Bind, Execute)> = groups
        .iter()
        .map(|(statement, params)| {
            let bind = Bind::new("", statement, &[], &params[..], &[]).unwrap();
            (bind, Execute::new("", 0).unwrap())
        })
        .collect();
    let mut outs: [BytesMut; 4] = std::array::from_fn(|_| BytesMut::new());
    let [o1, o2, o3, o4] = &mut outs;
    let t = interleaved(
        150,
        10,
        &mut [
            &mut || into(o1, |o| pgproto_binds(o, black_box(&groups))),
            &mut || into(o2, |o| postgres_protocol_binds(o, black_box(&groups))),
            &mut || into(o3, |o| pgproto_binds_prebuilt(o, black_box(&prebuilt))),
            &mut || into(o4, |o| pgproto_binds_construct(o, black_box(&groups))),
        ],
    );
    print_ratios(
        "encode 1,000 Bind+Execute+Sync, per group",
        &[
            "bind_execute_sync/pgproto_encode_values",
            "bind_execute_sync/postgres_protocol",
            "bind_execute_sync/pgproto_prebuilt_encode",
            "bind_execute_sync/pgproto_construct",
        ],
        &t,
        ENCODED as f64,
        1,
    );

    for (name, rows) in [("narrow", &fx.narrow), ("mixed", &fx.mixed)] {
        let bytes = byte_views(rows);
        let strs = str_views(rows);
        let mut encoder = pgwire_row_encoder();
        let [o1, o2, o3, _] = &mut outs;
        let t = interleaved(
            150,
            10,
            &mut [
                &mut || into(o1, |o| pgproto_data_rows(o, black_box(&bytes))),
                &mut || into(o2, |o| pgwire_data_rows(o, &mut encoder, black_box(&strs))),
                &mut || into(o3, |o| pgproto_data_rows_construct(o, black_box(&bytes))),
            ],
        );
        print_ratios(
            &format!("encode 1,000 {name} DataRows, per row"),
            &[
                "data_row/pgproto_encode_values",
                "data_row/pgwire_data_row_encoder",
                "data_row/pgproto_new_and_encode",
            ],
            &t,
            ENCODED as f64,
            1,
        );
    }
}

/// Whether to print the ratio table: under `cargo bench` with no filter, or the filter `ratios`.
fn want_ratios() -> bool {
    let filters = common::filters();
    common::is_bench() && (filters.is_empty() || filters.iter().any(|f| f == "ratios"))
}

/// Runs one contender of the narrow DataRow stream alone, `PASSES` times (default 200), for an
/// instruction profiler: `valgrind --tool=callgrind target/release/deps/codec-* only=NAME`, NAME
/// one of the `datarow_stream_narrow` contenders (`pgproto_next_data_row`, `framing_only`,
/// `postgres_protocol`, ...) or of the frontend stream's (`pgproto_frontend_next_ref`,
/// `pgproto_frontend_next`, `pgwire_frontend`). The fixtures' set-up is counted too: run with
/// `PASSES=0` for its cost.
fn only(who: &str) {
    let passes: usize = std::env::var("PASSES").map_or(200, |p| p.parse().unwrap());
    let frontend: [(&str, StreamContender); 3] = [
        ("pgproto_frontend_next_ref", pgproto_frontend_next_ref),
        ("pgproto_frontend_next", pgproto_frontend),
        ("pgwire_frontend", pgwire_frontend),
    ];
    let (stream, f) = if let Some(&(_, f)) = frontend.iter().find(|c| c.0 == who) {
        (frontend_stream(), f)
    } else if let Some(&(_, f)) = DATAROW_CONTENDERS
        .iter()
        .chain(&DATAROW_UNWRAP_CONTENDERS)
        .find(|c| c.0 == who)
    {
        (backend_stream(&narrow_rows()), f)
    } else {
        panic!("only=NAME: a datarow_stream_narrow contender, or pgproto_frontend_next_ref, pgproto_frontend_next, pgwire_frontend");
    };
    let chunks: Vec<&[u8]> = stream.chunks(CHUNK).collect();
    let mut rows = 0;
    for _ in 0..passes {
        rows += black_box(f(black_box(&chunks))).rows;
    }
    println!("{who}: {passes} passes, {rows} rows");
}

fn main() {
    if let Some(who) = common::filters()
        .iter()
        .find_map(|f| f.strip_prefix("only="))
    {
        only(who);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    datarow_stream(&mut c, "datarow_stream_narrow", &narrow_rows(), true);
    datarow_stream(&mut c, "datarow_stream_mixed", &mixed_rows(), false);
    frontend_stream_group(&mut c);
    encode(&mut c);
    c.final_summary();
    if want_ratios() {
        ratios();
    }
}
