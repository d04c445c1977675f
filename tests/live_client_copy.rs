//! Extended-protocol COPY through the `Client`, against a real PostgreSQL 18 that the test starts:
//! COPY FROM STDIN and COPY TO STDOUT started by an Execute, the Syncs the server ignores during
//! COPY FROM STDIN sent again after CopyDone or CopyFail, a COPY that fails while the client is
//! still sending, requests pipelined behind the copy; then the `client` example with `--extended`
//! run as a process beside `psql -X -At` on the same steps.
//!
//! Needs `bash scripts/install-test-deps.sh`; without it these tests fail and say so.

mod support;

// The driver re-exports what `live_client.rs` needs as well.
#[allow(unused_imports)]
#[path = "support/driver/mod.rs"]
mod driver;

use std::sync::OnceLock;

use driver::{connect, Conn};
use pgproto::{
    BackendMessage, Bind, Client, ClientEvent, RequestId, Target, TransactionStatus, UsageError,
};
use support::client_cli::{psql_at, run_cli};
use support::pg::{Cluster, PgVersion, TRUST_USER};

/// One PostgreSQL 18 for the whole file (the harness's watchdog stops it when the process ends).
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(PgVersion::V18))
}

fn conninfo() -> String {
    cluster().conninfo_with(TRUST_USER, "sslmode=disable")
}

/// A connection with an empty temporary table `t (a int, b text)`.
fn connected() -> Conn {
    let mut conn = connect(&conninfo()).unwrap_or_else(|e| panic!("connect: {e}"));
    conn.simple_query("CREATE TEMP TABLE t (a int, b text)")
        .unwrap();
    conn
}

/// Parse, Bind, Describe (portal) and Execute of `sql`, as libpq's `PQsendQueryParams` sends
/// them (without the Sync); returns the Execute's id.
fn execute(c: &mut Client, sql: &str) -> RequestId {
    execute_described(c, sql).1
}

/// [`execute`], returning the Describe's id too.
fn execute_described(c: &mut Client, sql: &str) -> (RequestId, RequestId) {
    c.parse("", sql, &[]).unwrap();
    let bind = Bind::new("", "", &[], &[], &[]).unwrap();
    c.bind(&bind).unwrap();
    let d = c.describe(Target::Portal, "").unwrap();
    (d, c.execute("", 0).unwrap())
}

/// A response in short: the message's name, with the tag of a CommandComplete, the SQLSTATE of
/// an ErrorResponse, the first column of a DataRow.
fn summary(message: &BackendMessage) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match message {
        BackendMessage::CommandComplete(c) => format!("CommandComplete {}", text(c.tag())),
        BackendMessage::ErrorResponse(f) => {
            format!("ErrorResponse {}", text(f.code().unwrap_or_default()))
        }
        BackendMessage::DataRow(r) => {
            format!(
                "DataRow {}",
                text(r.get(0).unwrap().unwrap().unwrap_or_default())
            )
        }
        other => other.name().to_string(),
    }
}

/// Reads responses (and skipped requests, as "Skipped") until `last` says stop; returns them.
fn until(conn: &mut Conn, mut last: impl FnMut(&str) -> bool) -> Vec<(RequestId, String)> {
    let mut got = Vec::new();
    loop {
        let item = match conn.next_event().unwrap() {
            ClientEvent::Response { request, message } => (request, summary(&message)),
            ClientEvent::Skipped { request } => (request, "Skipped".to_string()),
            _ => continue,
        };
        let stop = last(&item.1);
        got.push(item);
        if stop {
            return got;
        }
    }
}

/// Reads responses until `n` ReadyForQuery arrived; returns them, the first three answers of
/// Parse, Bind and Describe left out (ParseComplete, BindComplete, NoData).
fn until_ready(conn: &mut Conn, n: usize) -> Vec<(RequestId, String)> {
    let mut left = n;
    until(conn, |m| {
        left -= usize::from(m == "ReadyForQuery");
        left == 0
    })
    .into_iter()
    .filter(|(_, m)| !matches!(m.as_str(), "ParseComplete" | "BindComplete" | "NoData"))
    .collect()
}

fn s(text: &str) -> String {
    text.to_string()
}

#[test]
fn copy_from_stdin_through_execute_then_pipelined_requests() {
    let mut conn = connected();
    let c = conn.client_mut();
    c.query("BEGIN").unwrap();
    let e = execute(c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    conn.pump().unwrap();
    let got = until(&mut conn, |m| m == "CopyInResponse");
    assert_eq!(got.last(), Some(&(e, s("CopyInResponse"))), "{got:?}");
    let c = conn.client_mut();
    c.copy_data(b"1\tone\n").unwrap();
    c.copy_data(b"2\ttwo\n").unwrap();
    c.copy_done().unwrap();
    // Pipelined behind the copy, before any of its answers came.
    let q = c.query("SELECT count(*) FROM t").unwrap();
    let (d2, e2) = execute_described(c, "SELECT b FROM t ORDER BY a");
    let sync2 = c.sync().unwrap();
    conn.pump().unwrap();
    assert_eq!(
        until_ready(&mut conn, 3),
        [
            (e, s("CommandComplete COPY 2")),
            (sync, s("ReadyForQuery")),
            (q, s("RowDescription")),
            (q, s("DataRow 2")),
            (q, s("CommandComplete SELECT 1")),
            (q, s("ReadyForQuery")),
            (d2, s("RowDescription")),
            (e2, s("DataRow one")),
            (e2, s("DataRow two")),
            (e2, s("CommandComplete SELECT 2")),
            (sync2, s("ReadyForQuery")),
        ]
    );
    assert_eq!(conn.client().pending_requests(), 0);
    assert_eq!(
        conn.client().transaction_status(),
        Some(TransactionStatus::InTransaction)
    );
    conn.simple_query("COMMIT").unwrap();
    conn.terminate().unwrap();
}

#[test]
fn copy_fail_through_execute() {
    let mut conn = connected();
    let c = conn.client_mut();
    let e = execute(c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    conn.pump().unwrap();
    until(&mut conn, |m| m == "CopyInResponse");
    let c = conn.client_mut();
    c.copy_data(b"1\tone\n").unwrap();
    c.copy_fail("changed my mind").unwrap();
    conn.pump().unwrap();
    assert_eq!(
        until_ready(&mut conn, 1),
        [(e, s("ErrorResponse 57014")), (sync, s("ReadyForQuery"))]
    );
    assert_eq!(
        conn.simple_query("SELECT count(*) FROM t").unwrap()[0][0].as_deref(),
        Some("0")
    );
    conn.terminate().unwrap();
}

#[test]
fn a_copy_that_fails_while_the_client_is_sending() {
    let mut conn = connected();
    let c = conn.client_mut();
    let e = execute(c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    conn.pump().unwrap();
    until(&mut conn, |m| m == "CopyInResponse");
    // The second line is bad: the server fails the COPY without waiting for CopyDone.
    conn.client_mut()
        .copy_data(b"1\tok\nnot a number\tx\n")
        .unwrap();
    conn.pump().unwrap();
    let got = until(&mut conn, |m| m.starts_with("ErrorResponse"));
    assert_eq!(got, [(e, s("ErrorResponse 22P02"))]);
    // The COPY is over: the client sent the Sync again itself, and sends no more COPY data.
    assert!(matches!(
        conn.client_mut().copy_done(),
        Err(UsageError::NotAllowed { .. })
    ));
    assert_eq!(until_ready(&mut conn, 1), [(sync, s("ReadyForQuery"))]);
    assert_eq!(
        conn.simple_query("SELECT count(*) FROM t").unwrap()[0][0].as_deref(),
        Some("0")
    );
    conn.terminate().unwrap();
}

#[test]
fn syncs_behind_the_copy_are_each_answered() {
    let mut conn = connected();
    // No Sync behind the Execute (Flush instead): none is sent again; the application's own
    // Sync, sent after the copy, is answered.
    let c = conn.client_mut();
    let e = execute(c, "COPY t FROM STDIN");
    c.flush().unwrap();
    conn.pump().unwrap();
    until(&mut conn, |m| m == "CopyInResponse");
    let c = conn.client_mut();
    c.copy_data(b"1\tone\n").unwrap();
    c.copy_done().unwrap();
    c.flush().unwrap();
    assert_eq!(c.pending_sync_points(), 0);
    conn.pump().unwrap();
    let got = until(&mut conn, |m| m.starts_with("CommandComplete"));
    assert_eq!(got.last(), Some(&(e, s("CommandComplete COPY 1"))));
    let sync = conn.client_mut().sync().unwrap();
    conn.pump().unwrap();
    assert_eq!(until_ready(&mut conn, 1), [(sync, s("ReadyForQuery"))]);

    // Two Syncs behind the Execute: both were ignored, both are sent again.
    let c = conn.client_mut();
    let e = execute(c, "COPY t FROM STDIN");
    let (s1, s2) = (c.sync().unwrap(), c.sync().unwrap());
    conn.pump().unwrap();
    until(&mut conn, |m| m == "CopyInResponse");
    conn.client_mut().copy_done().unwrap();
    conn.pump().unwrap();
    assert_eq!(
        until_ready(&mut conn, 2),
        [
            (e, s("CommandComplete COPY 0")),
            (s1, s("ReadyForQuery")),
            (s2, s("ReadyForQuery")),
        ]
    );

    // A simple Query's COPY swallows a Sync behind it too.
    let c = conn.client_mut();
    let q = c.query("COPY t FROM STDIN").unwrap();
    let sync = c.sync().unwrap();
    conn.pump().unwrap();
    until(&mut conn, |m| m == "CopyInResponse");
    let c = conn.client_mut();
    c.copy_data(b"2\ttwo\n").unwrap();
    c.copy_done().unwrap();
    conn.pump().unwrap();
    assert_eq!(
        until_ready(&mut conn, 2),
        [
            (q, s("CommandComplete COPY 1")),
            (q, s("ReadyForQuery")),
            (sync, s("ReadyForQuery")),
        ]
    );
    assert_eq!(conn.client().pending_requests(), 0);
    assert_eq!(
        conn.simple_query("SELECT count(*) FROM t").unwrap()[0][0].as_deref(),
        Some("2")
    );
    conn.terminate().unwrap();
}

#[test]
fn copy_to_stdout_through_execute() {
    let mut conn = connected();
    conn.simple_query("INSERT INTO t VALUES (1, 'one'), (2, NULL)")
        .unwrap();
    let c = conn.client_mut();
    let e = execute(c, "COPY t TO STDOUT");
    let sync = c.sync().unwrap();
    let q = c.query("SELECT 'after'").unwrap();
    conn.pump().unwrap();
    assert_eq!(
        until_ready(&mut conn, 2),
        [
            (e, s("CopyOutResponse")),
            (e, s("CopyData")),
            (e, s("CopyData")),
            (e, s("CopyDone")),
            (e, s("CommandComplete COPY 2")),
            (sync, s("ReadyForQuery")),
            (q, s("RowDescription")),
            (q, s("DataRow after")),
            (q, s("CommandComplete SELECT 1")),
            (q, s("ReadyForQuery")),
        ]
    );
    conn.terminate().unwrap();
}

#[test]
fn the_example_with_extended_matches_psql() {
    let info = conninfo();
    // Statements after each COPY, a second COPY FROM STDIN (standard input is at its end by
    // then: it copies nothing), COPY inside a transaction.
    let script = [
        "CREATE TEMP TABLE t (a int, b text)",
        "COPY t FROM STDIN",
        "SELECT * FROM t ORDER BY a",
        "COPY t TO STDOUT",
        "COPY (SELECT a, b FROM t ORDER BY a DESC) TO STDOUT WITH (FORMAT csv)",
        "INSERT INTO t VALUES (3, 'z')",
        "BEGIN",
        "COPY t FROM STDIN",
        "COMMIT",
        "SELECT count(*), max(a) FROM t",
    ];
    let stdin = b"10\tten\n11\t\\N\n";
    let args: Vec<&str> = ["--extended", info.as_str()]
        .iter()
        .chain(&script)
        .copied()
        .collect();
    let ours = run_cli(&args, stdin);
    let theirs = psql_at(PgVersion::V18, &info, &script, stdin);
    assert_eq!(ours.stdout, theirs, "stderr: {}", ours.stderr);
    assert_eq!(
        theirs,
        "CREATE TABLE\nCOPY 2\n10|ten\n11|\n10\tten\n11\t\\N\n11,\n10,ten\nINSERT 0 1\nBEGIN\n\
         COPY 0\nCOMMIT\n3|11\n"
    );
    assert_eq!((ours.code, ours.stderr.as_str()), (0, ""));

    // A COPY that fails (a bad line): its error, nothing on standard output, and the
    // statements after it still run.
    let script = [
        "CREATE TEMP TABLE t (a int)",
        "COPY t FROM STDIN",
        "SELECT 'after'",
        "COPY t TO STDOUT",
        "SELECT count(*) FROM t",
    ];
    let stdin = b"1\nnot a number\n2\n";
    let args: Vec<&str> = ["--extended", info.as_str()]
        .iter()
        .chain(&script)
        .copied()
        .collect();
    let ours = run_cli(&args, stdin);
    let theirs = psql_at(PgVersion::V18, &info, &script, stdin);
    assert_eq!(ours.stdout, theirs, "stderr: {}", ours.stderr);
    assert_eq!(theirs, "CREATE TABLE\nafter\n0\n");
    assert_eq!(ours.code, 1);
    assert!(
        ours.stderr
            .starts_with("ERROR:  22P02: invalid input syntax for type integer"),
        "{}",
        ours.stderr
    );
}

/// What the documentation of `Client` warns about: a request other than Sync pipelined behind a
/// statement that turns into COPY FROM STDIN reaches PostgreSQL during the copy, which answers
/// ERROR 08P01, then FATAL 08P01, and closes the connection (libpq refuses COPY in pipeline mode;
/// the `client` example ends its pipelines after each COPY statement).
#[test]
fn a_request_pipelined_behind_copy_from_stdin_ends_the_session() {
    let mut conn = connected();
    let c = conn.client_mut();
    let e = execute(c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    let q = c.query("SELECT 1").unwrap();
    conn.pump().unwrap();
    let mut got = Vec::new();
    let end = loop {
        match conn.next_event() {
            Ok(ClientEvent::Response { request, message }) => {
                got.push((request, summary(&message)))
            }
            Ok(ClientEvent::Skipped { request }) => got.push((request, s("Skipped"))),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let got: Vec<_> = got
        .into_iter()
        .filter(|(_, m)| !matches!(m.as_str(), "ParseComplete" | "BindComplete" | "NoData"))
        .collect();
    assert_eq!(
        got,
        [
            (e, s("CopyInResponse")),
            (e, s("ErrorResponse 08P01")),
            (sync, s("ErrorResponse 08P01")),
        ],
        "{end}"
    );
    let driver::DriverError::Server(fatal) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        (fatal.severity.as_str(), fatal.code.as_str()),
        ("FATAL", "08P01")
    );
    let _ = q;
}
