//! What `benches/codec.rs` and `benches/session.rs` share: the fixtures (built by hand,
//! independently of every crate under test), the checksum the contenders must agree on, and the
//! interleaved fastest-of-rounds timing.

// Each bench uses a different part of this module.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The size of one read from the socket: every contender is fed the same 8 KiB pieces of a
/// stream, each appended whole.
pub(crate) const CHUNK: usize = 8 * 1024;
/// Rows in a backend result stream.
pub(crate) const ROWS: usize = 10_000;
/// Columns per row.
pub(crate) const COLUMNS: usize = 10;
/// Parse/Bind/Describe/Execute/Sync batches in a frontend stream.
pub(crate) const BATCHES: usize = 1_000;

/// One row: column values, `None` for NULL.
pub(crate) type Row = Vec<Option<Vec<u8>>>;

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// A deterministic generator of values.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A text value of `len` ASCII letters and digits.
    pub(crate) fn text(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }

    /// A short text value: 5 to 12 ASCII letters and digits.
    pub(crate) fn value(&mut self) -> Vec<u8> {
        let len = 5 + (self.next() % 8) as usize;
        self.text(len)
    }

    /// A value of a mixed row: NULL one time in 8, 800 to 1,300 bytes one time in 40, else 0
    /// to 47 bytes.
    pub(crate) fn mixed_value(&mut self) -> Option<Vec<u8>> {
        match self.next() % 40 {
            0..=4 => None,
            5 => {
                let len = 800 + (self.next() % 501) as usize;
                Some(self.text(len))
            }
            _ => {
                let len = (self.next() % 48) as usize;
                Some(self.text(len))
            }
        }
    }
}

/// Appends a tagged message.
pub(crate) fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

/// `ROWS` rows of `COLUMNS` short text values (the narrow best case).
pub(crate) fn narrow_rows() -> Vec<Row> {
    let mut g = Lcg(0x5eed);
    (0..ROWS)
        .map(|_| (0..COLUMNS).map(|_| Some(g.value())).collect())
        .collect()
}

/// `ROWS` rows of `COLUMNS` values with NULLs, varied lengths and some values of about 1 KiB.
pub(crate) fn mixed_rows() -> Vec<Row> {
    let mut g = Lcg(0xabcd);
    (0..ROWS)
        .map(|_| (0..COLUMNS).map(|_| g.mixed_value()).collect())
        .collect()
}

/// A result as a server sends it: RowDescription (`COLUMNS` text columns), a DataRow per row,
/// CommandComplete, ReadyForQuery.
pub(crate) fn backend_stream(rows: &[Row]) -> Vec<u8> {
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
            match v {
                Some(v) => {
                    body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    body.extend_from_slice(v);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        frame(&mut out, b'D', &body);
    }
    frame(
        &mut out,
        b'C',
        format!("SELECT {}\0", rows.len()).as_bytes(),
    );
    frame(&mut out, b'Z', b"I");
    out
}

/// The query of every Parse in the frontend stream.
pub(crate) const QUERY: &str =
    "SELECT id, name, email, created_at FROM accounts WHERE tenant_id = $1 AND status = $2 AND created_at > $3";

/// The parameters of the `i`th Bind: an id, a short text, a timestamp.
pub(crate) fn bind_params(g: &mut Lcg, i: usize) -> [Vec<u8>; 3] {
    [
        (1_000 + i).to_string().into_bytes(),
        g.value(),
        b"2024-01-01 00:00:00+00".to_vec(),
    ]
}

/// `BATCHES` batches of Parse (3 parameter types), Bind (3 text values), Describe (the unnamed
/// portal), Execute (no row limit) and Sync, as a client sends them.
pub(crate) fn frontend_stream() -> Vec<u8> {
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
        let params = bind_params(&mut g, i);
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
// The checksum.

/// What every contender must agree on: what it read (and, in the session bench, wrote).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sum {
    pub(crate) messages: u64,
    pub(crate) rows: u64,
    /// Column and parameter bytes, name and tag lengths, type OIDs, format codes...
    pub(crate) bytes: u64,
    pub(crate) nulls: u64,
    /// Bytes written (the session bench's answers).
    pub(crate) written: u64,
}

impl Sum {
    /// Counts a column or parameter value.
    #[inline]
    pub(crate) fn column(&mut self, value: Option<usize>) {
        match value {
            Some(len) => self.bytes += len as u64,
            None => self.nulls += 1,
        }
    }

    /// The checksum as one number.
    pub(crate) fn checksum(&self) -> u64 {
        [
            self.messages,
            self.rows,
            self.bytes,
            self.nulls,
            self.written,
        ]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &x| {
            (h ^ x).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// A noise-resistant ratio. On a shared machine criterion's means drift by tens of percent
// between runs, so the contenders are also timed in interleaved rounds and each one's fastest
// round is kept: the minimum is what the code costs when nothing else interferes, and
// interleaving exposes every contender to the same machine state.

/// The fastest of `rounds` timings of `f`.
pub(crate) fn fastest<R>(rounds: usize, mut f: impl FnMut() -> R) -> Duration {
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
/// Many short passes spread each contender's rounds over the whole run, so every one of them
/// meets the quiet moments of a machine shared with other builds.
pub(crate) fn interleaved(
    passes: usize,
    rounds: usize,
    fs: &mut [&mut dyn FnMut()],
) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; fs.len()];
    for _ in 0..passes {
        for (b, f) in best.iter_mut().zip(fs.iter_mut()) {
            *b = (*b).min(fastest(rounds, &mut **f));
        }
    }
    best
}

/// The filters given on the command line (arguments not starting with `-`).
pub(crate) fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// Whether the bench runs under `cargo bench` (not `cargo test --benches`).
pub(crate) fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}
