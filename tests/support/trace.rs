//! Comparing this crate's protocol traces with libpq's (`tests/trace_libpq.rs`,
//! `tests/live_trace.rs`).
//!
//! libpq 18.6 leaves out of its own trace what it does not parse as a message: AuthenticationOk
//! and, when authentication fails, the FATAL ErrorResponse that ends the connection. And after
//! AuthenticationMD5Password it prints a second line, `mismatched message length: consumed 8,
//! expected 12` (it leaves the salt unread), which this crate does not. [`compare`] allows
//! exactly these differences and no other.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One recorded psycopg session (`tests/data/trace_sessions.py`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// The file name stem: `NAME-1.client`, `NAME-1.server`, `NAME-1.libpq`.
    pub(crate) name: &'static str,
    /// Authentication fails (and libpq's trace ends before the FATAL error).
    pub(crate) auth_fails: bool,
}

/// The sessions `trace_sessions.py` records against PostgreSQL, in its order.
pub(crate) const SESSIONS: &[Session] = &[
    Session {
        name: "scram_prefer",
        auth_fails: false,
    },
    Session {
        name: "md5",
        auth_fails: false,
    },
    Session {
        name: "password",
        auth_fails: false,
    },
    Session {
        name: "trust_3_2",
        auth_fails: false,
    },
    Session {
        name: "bad_password",
        auth_fails: true,
    },
];

/// Where the recordings are kept.
pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/traces")
}

/// `dir/NAME-1.EXT`, read.
pub(crate) fn read(dir: &Path, session: &str, ext: &str) -> Vec<u8> {
    let path = dir.join(format!("{session}-1.{ext}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The lines of a trace, without their newlines.
pub(crate) fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    v
}

/// `lines` without what precedes `F` or `B` on each (a timestamp, a connection number): each
/// line is cut after the first `n` tabs.
pub(crate) fn strip_fields(lines: &[Vec<u8>], n: usize) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|l| {
            let mut rest = &l[..];
            for _ in 0..n {
                let at = rest
                    .iter()
                    .position(|&b| b == b'\t')
                    .unwrap_or_else(|| panic!("no tab in {:?}", String::from_utf8_lossy(l)));
                rest = &rest[at + 1..];
            }
            rest.to_vec()
        })
        .collect()
}

/// Runs `inspect --trace CLIENT SERVER` (the example, as a process) and returns its stdout
/// lines; panics unless it exits 0 with nothing on stderr but notes.
pub(crate) fn inspect_trace(client: &Path, server: &Path) -> Vec<Vec<u8>> {
    let out = Command::new(super::examples::example("inspect"))
        .arg("--trace")
        .arg(client)
        .arg(server)
        .output()
        .expect("run the inspect example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("error"),
        "inspect --trace {} failed ({}): {stderr}",
        client.display(),
        out.status
    );
    lines(&out.stdout)
}

fn show(l: &[u8]) -> String {
    String::from_utf8_lossy(l).into_owned()
}

fn direction(lines: &[Vec<u8>], d: u8) -> Vec<Vec<u8>> {
    lines
        .iter()
        .filter(|l| l.first() == Some(&d) && l.get(1) == Some(&b'\t'))
        .cloned()
        .collect()
}

/// The first difference between two lists of lines, for a failure message.
fn first_difference(what: &str, ours: &[Vec<u8>], libpq: &[Vec<u8>]) -> Option<String> {
    if ours == libpq {
        return None;
    }
    let i = ours
        .iter()
        .zip(libpq)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(libpq.len()));
    Some(format!(
        "{what}: line {i} differs ({} lines here, {} in libpq's trace)\n  here:  {:?}\n  libpq: {:?}",
        ours.len(),
        libpq.len(),
        ours.get(i).map(|l| show(l)),
        libpq.get(i).map(|l| show(l)),
    ))
}

/// Checks a trace of ours against libpq's trace of the same connection, direction by direction
/// (how the two directions interleave depends on timing), allowing only libpq's known
/// omissions (see the module documentation). `ours` and `libpq` are lines without timestamps.
pub(crate) fn compare(ours: &[Vec<u8>], libpq: &[Vec<u8>], auth_fails: bool) -> Result<(), String> {
    if let Some(l) = ours.iter().find(|l| !matches!(&l[..2], b"F\t" | b"B\t")) {
        return Err(format!("a line of ours is not a message: {:?}", show(l)));
    }
    let mut theirs = Vec::new();
    for (i, l) in libpq.iter().enumerate() {
        let md5_note = l == b"mismatched message length: consumed 8, expected 12"
            && i > 0
            && libpq[i - 1].ends_with(b"\tAuthenticationMD5Password");
        if md5_note {
            continue;
        }
        if l.len() < 2 || !matches!(&l[..2], b"F\t" | b"B\t") {
            return Err(format!(
                "libpq's trace has an unexpected line: {:?}",
                show(l)
            ));
        }
        theirs.push(l.clone());
    }
    let ok_line: &[u8] = b"B\t8\tAuthenticationOk";
    let oks = ours.iter().filter(|l| l[..] == *ok_line).count();
    let want_oks = usize::from(!auth_fails);
    if oks != want_oks {
        return Err(format!(
            "{oks} AuthenticationOk lines here, {want_oks} expected"
        ));
    }
    let ours_f = direction(ours, b'F');
    let mut ours_b: Vec<Vec<u8>> = direction(ours, b'B')
        .into_iter()
        .filter(|l| l[..] != *ok_line)
        .collect();
    if auth_fails {
        let last = ours_b.pop().unwrap_or_default();
        if !(last.starts_with(b"B\t") && show(&last).contains("\tErrorResponse\t S \"FATAL\"")) {
            return Err(format!(
                "the last backend line should be the FATAL ErrorResponse libpq does not trace: {:?}",
                show(&last)
            ));
        }
    }
    let theirs_f = direction(&theirs, b'F');
    let theirs_b = direction(&theirs, b'B');
    let mut problems = Vec::new();
    problems.extend(first_difference("frontend", &ours_f, &theirs_f));
    problems.extend(first_difference("backend", &ours_b, &theirs_b));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
