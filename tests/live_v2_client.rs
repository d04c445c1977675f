//! *live*: the `Client` over protocol 2.0 against a real 2.0 server, PostgreSQL 13.23 (the last
//! release that speaks it), through the blocking test driver (`tests/support/driver/`): trust,
//! cleartext and MD5 authentication (SCRAM refused by the server, as 2.0 cannot carry it), TLS,
//! queries of several statements, rows with NULLs, errors and notices, the transaction status
//! derived from tags, COPY in and out (and failing), LISTEN/NOTIFY, function calls, cancel.
//!
//! Needs `bash scripts/install-test-deps.sh` (PostgreSQL 13 from npm); without it these tests
//! fail and say so.

mod support;

#[path = "support/driver/mod.rs"]
mod driver;

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use driver::{connect, Conn, DriverError};
use pgproto::{AuthMethod, ClientEvent, Format, FunctionCall, ProtocolVersion, TransactionStatus};
use support::client_cli::run_cli;
use support::pg::{Cluster, PgVersion, User, MD5_USER, PASSWORD_USER, SCRAM_USER, TRUST_USER};

/// One PostgreSQL 13 cluster for every test here. (Statics are not dropped: the harness's
/// watchdog stops the server when the test process exits.)
fn pg13() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(PgVersion::V13))
}

/// A 2.0 connection string for `user` (plus `extra`).
fn v2_info(user: User, extra: &str) -> String {
    pg13().conninfo_with(
        user,
        &format!("sslmode=disable min_protocol_version=2.0 max_protocol_version=2.0 {extra}"),
    )
}

fn v2(user: User) -> Conn {
    connect(&v2_info(user, "")).unwrap_or_else(|e| panic!("2.0 as {}: {e}", user.name))
}

fn text(rows: Vec<Vec<Option<String>>>) -> Vec<Vec<Option<String>>> {
    rows
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn every_password_method_over_2_0() {
    for (user, method) in [
        (TRUST_USER, AuthMethod::None),
        (PASSWORD_USER, AuthMethod::Password),
        (MD5_USER, AuthMethod::Md5),
    ] {
        let mut conn = v2(user);
        let c = conn.client();
        assert_eq!(c.protocol_version(), ProtocolVersion::V2_0);
        assert_eq!(c.auth_method(), Some(method), "{}", user.name);
        assert_eq!(c.backend_key().unwrap().secret_key().len(), 4);
        assert_eq!(c.transaction_status(), Some(TransactionStatus::Idle));
        assert_eq!(
            conn.verbose_lines(),
            [
                "protocol 2.0".to_string(),
                format!("auth {}", method.name()),
                "tls off".into(),
                "cancel key 4 bytes".into()
            ]
        );
        assert_eq!(
            conn.simple_query("select current_user").unwrap(),
            [[s(user.name)]]
        );
        conn.terminate().unwrap();
    }
    // A wrong password: the server's FATAL, in 2.0's format.
    let info = pg13().conninfo_with(
        User {
            password: Some("wrong"),
            ..MD5_USER
        },
        "sslmode=disable min_protocol_version=2.0 max_protocol_version=2.0",
    );
    match connect(&info) {
        Err(DriverError::Protocol(pgproto::Error::Server(f))) => {
            assert_eq!(f.severity(), Some(&b"FATAL"[..]));
            assert!(
                String::from_utf8_lossy(f.message().unwrap())
                    .contains("password authentication failed"),
                "{f:?}"
            );
            assert_eq!(f.code(), None, "2.0 has no SQLSTATE");
        }
        other => panic!("wrong password: {other:?}"),
    }
    // SCRAM cannot be carried by 2.0: PostgreSQL refuses it.
    match connect(&v2_info(SCRAM_USER, "")) {
        Err(DriverError::Protocol(pgproto::Error::Server(f))) => {
            let m = String::from_utf8_lossy(f.message().unwrap()).into_owned();
            assert!(m.contains("SASL authentication is not supported"), "{m}");
        }
        other => panic!("SCRAM over 2.0: {other:?}"),
    }
}

#[test]
fn tls_over_2_0() {
    let info = pg13().conninfo_with(
        TRUST_USER,
        "sslmode=require min_protocol_version=2.0 max_protocol_version=2.0",
    );
    let mut conn = connect(&info).unwrap();
    assert!(conn.client().is_tls());
    assert_eq!(conn.client().protocol_version(), ProtocolVersion::V2_0);
    assert_eq!(
        conn.simple_query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .unwrap(),
        [[s("t")]]
    );
}

#[test]
fn queries_rows_errors_notices() {
    let mut conn = v2(TRUST_USER);
    // Several statements, a NULL, an empty string, several types.
    let rows = conn
        .simple_query(
            "select 1 as a, null::int as b, ''::text as c; select 'x', 2.5::numeric, true",
        )
        .unwrap();
    assert_eq!(
        text(rows),
        [vec![s("1"), None, s("")], vec![s("x"), s("2.5"), s("t")]]
    );
    let out = conn
        .query("select 1; select * from no_such_table; select 3")
        .unwrap();
    assert_eq!(out.results.len(), 1, "the rest of the string is skipped");
    let e = out.error.unwrap();
    assert_eq!(e.severity, "ERROR");
    assert_eq!(e.code, "", "2.0 has no SQLSTATE");
    assert_eq!(
        e.message,
        "relation \"no_such_table\" does not exist at character 25"
    );
    // An empty query.
    let out = conn.query("  ").unwrap();
    assert_eq!((out.results.len(), out.error), (1, None));
    // A notice, and the command tag of a DO block.
    let out = conn
        .query("do $$ begin raise notice 'hello %', 42; end $$")
        .unwrap();
    assert_eq!(out.results[0].tag.as_deref(), Some("DO"));
    let notices = conn.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        (notices[0].severity.as_str(), notices[0].message.as_str()),
        ("NOTICE", "hello 42")
    );
    // libpq 13's start-up queries over 2.0.
    let rows = conn.simple_query("begin; select version(); end").unwrap();
    assert!(rows[0][0]
        .as_deref()
        .unwrap()
        .starts_with("PostgreSQL 13.23"));
    assert_eq!(
        conn.simple_query("select pg_client_encoding()").unwrap(),
        [[s("UTF8")]]
    );
}

#[test]
fn the_transaction_status_follows_the_tags() {
    let mut conn = v2(TRUST_USER);
    let status = |conn: &mut Conn, sql: &str| conn.query(sql).unwrap().status.unwrap();
    use TransactionStatus::*;
    assert_eq!(status(&mut conn, "begin"), InTransaction);
    assert_eq!(status(&mut conn, "select 1"), InTransaction);
    assert_eq!(status(&mut conn, "select 1/0"), Failed);
    assert_eq!(status(&mut conn, "select 1"), Failed);
    assert_eq!(
        status(&mut conn, "commit"),
        Idle,
        "COMMIT of a failed block is ROLLBACK"
    );
    assert_eq!(status(&mut conn, "start transaction"), InTransaction);
    assert_eq!(status(&mut conn, "rollback"), Idle);
    assert_eq!(status(&mut conn, "begin; commit; begin"), InTransaction);
    assert_eq!(status(&mut conn, "end"), Idle);
    assert_eq!(conn.client().transaction_status(), Some(Idle));
}

#[test]
fn copy_in_and_out() {
    let mut conn = v2(TRUST_USER);
    conn.simple_query("create temp table t (a int, b text)")
        .unwrap();
    // A last line without its newline: the client ends it before `\.`.
    assert_eq!(
        conn.copy_in("copy t from stdin", b"1\tone\n2\t\\N\n3\tthree")
            .unwrap(),
        3
    );
    assert_eq!(
        conn.copy_out("copy t to stdout").unwrap(),
        b"1\tone\n2\t\\N\n3\tthree\n"
    );
    assert_eq!(
        conn.copy_out("copy (select 1 where false) to stdout")
            .unwrap(),
        b""
    );
    // COPY TO STDOUT failing mid-way: the data ends (the driver drops a failed statement's
    // partial result), then the error, and the session goes on.
    let out = conn
        .query("copy (select 1/(2-generate_series(1,3))) to stdout")
        .unwrap();
    assert!(out.results.is_empty());
    assert_eq!(out.error.unwrap().message, "division by zero");
    assert_eq!(
        conn.simple_query("select count(*) from t").unwrap(),
        [[s("3")]]
    );
    // COPY FROM STDIN failing: PostgreSQL ends the connection (2.0 cannot resynchronise).
    let r = conn.copy_in("copy t from stdin", b"x\n");
    match r {
        Err(DriverError::Server(e)) => {
            assert_eq!(e.severity, "FATAL");
            assert_eq!(
                e.message,
                "terminating connection because protocol synchronization was lost"
            );
        }
        other => panic!("a failing COPY FROM STDIN: {other:?}"),
    }
}

#[test]
fn notifications_and_function_calls() {
    let mut conn = v2(TRUST_USER);
    let pid = conn.backend_pid().unwrap();
    conn.simple_query("listen chan").unwrap();
    conn.simple_query("notify chan, 'the payload is dropped'")
        .unwrap();
    let n = conn
        .wait_for_notification(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(
        (n.process_id, n.channel.as_str(), n.payload.as_str()),
        (pid, "chan", "")
    );
    // From another session.
    let mut other = v2(PASSWORD_USER);
    other.simple_query("notify chan").unwrap();
    let n = conn
        .wait_for_notification(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(n.process_id, other.backend_pid().unwrap());

    // length(text) is OID 1317; int4pl is OID 177.
    let binary = || &[Format::Binary];
    for (oid, args, want) in [
        (
            1317,
            vec![Some(&b"abcd"[..])],
            Some(4i32.to_be_bytes().to_vec()),
        ),
        (
            177,
            vec![
                Some(&2i32.to_be_bytes()[..]),
                Some(&40i32.to_be_bytes()[..]),
            ],
            Some(42i32.to_be_bytes().to_vec()),
        ),
        // A strict function given NULL returns NULL: FunctionVoidResponse.
        (1317, vec![None], None),
    ] {
        let call = FunctionCall::new(oid, binary(), &args, Format::Binary).unwrap();
        let id = conn.client_mut().function_call(&call).unwrap();
        conn.pump().unwrap();
        let mut result = None;
        loop {
            match conn.next_event().unwrap() {
                ClientEvent::Response {
                    request,
                    message: pgproto::BackendMessage::FunctionCallResponse(v),
                } if request == id => result = Some(v.map(|v| v.to_vec())),
                ClientEvent::Response {
                    request,
                    message: pgproto::BackendMessage::ReadyForQuery(_),
                } if request == id => break,
                ClientEvent::Response { message, .. } => panic!("{message:?}"),
                _ => {}
            }
        }
        assert_eq!(result, Some(want), "function {oid}");
    }
    // An error in a function call.
    let call = FunctionCall::new(0, binary(), &[None::<&[u8]>], Format::Binary).unwrap();
    let id = conn.client_mut().function_call(&call).unwrap();
    conn.pump().unwrap();
    let mut names = Vec::new();
    loop {
        if let ClientEvent::Response { request, message } = conn.next_event().unwrap() {
            assert_eq!(request, id);
            names.push(message.name());
            if matches!(message, pgproto::BackendMessage::ReadyForQuery(_)) {
                break;
            }
        }
    }
    assert_eq!(names, ["ErrorResponse", "ReadyForQuery"]);
}

#[test]
fn cancel_over_2_0() {
    let mut conn = v2(TRUST_USER);
    let canceller = conn.canceller().unwrap();
    let started = Instant::now();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        canceller.cancel()
    });
    let out = conn.query("select pg_sleep(30)").unwrap();
    t.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        out.error.unwrap().message,
        "canceling statement due to user request"
    );
    assert_eq!(conn.simple_query("select 'after'").unwrap(), [[s("after")]]);
}

// ---------------------------------------------------------------------------------------------
// The `client` example over 2.0, beside psql 15 over 3.0 against the same server
// ---------------------------------------------------------------------------------------------

/// Replaces the PID in psql's notification lines, which differs between sessions.
fn without_pids(out: &str) -> String {
    out.lines()
        .map(|l| match l.rfind("with PID ") {
            Some(i) if l.starts_with("Asynchronous notification") => {
                format!("{}with PID N.", &l[..i])
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_client_example_over_2_0_prints_what_psql_prints() {
    let sqls = [
        "create temp table cli_t (a int, b text)",
        "select 1 as a, null::int as b, 'x'::text, 2.5::numeric, true",
        "select * from generate_series(1, 3) g; select 'two statements'",
        "copy cli_t from stdin",
        "copy cli_t to stdout",
        "insert into cli_t values (4, 'four') returning a",
        "update cli_t set b = upper(b)",
        "select a, b from cli_t order by a",
        "begin; delete from cli_t where a > 2; commit",
        "listen chan; notify chan",
        "",
    ];
    let stdin = b"1\tone\n2\t\\N\n3\tthree";
    let psql = psql_at_13(&sqls, stdin);
    let info = v2_info(TRUST_USER, "");
    let mut args = vec![info.as_str()];
    args.extend(sqls);
    let ours = run_cli(&args, stdin);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    assert_eq!(ours.stderr, "");
    assert_eq!(without_pids(&ours.stdout), without_pids(&psql));
    assert!(
        psql.contains("Asynchronous notification \"chan\" received"),
        "{psql}"
    );
    assert!(
        psql.contains("3\tTHREE\n") || psql.contains("3|THREE\n"),
        "{psql}"
    );
}

/// `psql -X -At` 15 over protocol 3.0 against the PostgreSQL 13 cluster.
fn psql_at_13(sqls: &[&str], stdin: &[u8]) -> String {
    let info = pg13().conninfo_with(TRUST_USER, "sslmode=disable");
    support::client_cli::psql_at(PgVersion::V15, &info, sqls, stdin)
}

#[test]
fn the_client_example_reports_over_2_0() {
    // --verbose, a notice, an error (no SQLSTATE in 2.0: the server's text), exit status 1.
    let info = v2_info(MD5_USER, "");
    let ours = run_cli(
        &[
            "--verbose",
            &info,
            "do $$ begin raise notice 'hello'; end $$",
            "select * from nope",
            "select 'still here'",
        ],
        b"",
    );
    assert_eq!(ours.code, 1);
    assert_eq!(ours.stdout, "DO\nstill here\n");
    assert_eq!(
        ours.stderr,
        "protocol 2.0\nauth md5\ntls off\ncancel key 4 bytes\nNOTICE:  hello\n\
ERROR:  relation \"nope\" does not exist at character 15\n"
    );
    // A refused connection: the server's text, nothing on stdout.
    let bad = pg13().conninfo_with(
        TRUST_USER,
        "sslmode=disable dbname=nodb min_protocol_version=2.0 max_protocol_version=2.0",
    );
    let ours = run_cli(&[&bad, "select 1"], b"");
    assert_eq!(ours.code, 1);
    assert_eq!(ours.stdout, "");
    assert_eq!(
        ours.stderr,
        "error: connection failed: FATAL:  database \"nodb\" does not exist\n"
    );
    // --extended does not exist in 2.0.
    let ours = run_cli(&["--extended", &info, "select 1"], b"");
    assert_eq!(ours.code, 1);
    assert!(ours.stderr.contains("protocol 2.0"), "{}", ours.stderr);
}
