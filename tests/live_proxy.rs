//! *live*: the `proxy` example (transaction and session pooling on `pgproto`'s pooler
//! primitives) in front of a PostgreSQL 18 server the test starts, with psql 18 and pgbench 18,
//! and a pool smaller than the number of clients: queries, errors, COPY both ways, a database
//! that does not exist (FATAL 3D000 after AuthenticationOk), wrong passwords; `pgbench -i`, then
//! `-M simple`, `-M extended` and `-M prepared` with no failed transaction; 200 clients over a
//! pool of 3; an upstream connection killed in the middle of a transaction; session mode keeping
//! `SET` across transactions; COPY FROM STDIN failing while the client still sends, answered as
//! PostgreSQL answers it (side by side). (tokio-postgres and psycopg: `live_proxy_drivers.rs`.)

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::demo_server::run;
use support::pg::{pgbench, PgVersion};
use support::proxy::{ok, Fixture};

/// Runs pgbench 18 with `args` against the proxy (as demo, no TLS) and checks it processed
/// every transaction, none failed. Returns its output.
fn pgbench_ok(f: &Fixture, args: &[&str], expected: usize) -> String {
    let mut cmd = Command::new(pgbench(PgVersion::V18));
    cmd.args(args).arg(f.conninfo("sslmode=disable"));
    let out = run(&mut cmd, "", 300);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pgbench {args:?} failed:\n{text}\n--- proxy\n{}",
        f.stderr()
    );
    assert!(
        text.contains(&format!(
            "number of transactions actually processed: {expected}/{expected}"
        )),
        "pgbench {args:?}:\n{text}"
    );
    assert!(
        text.contains("number of failed transactions: 0 (0.000%)"),
        "pgbench {args:?}:\n{text}"
    );
    text
}

/// A raw protocol 3.0 connection to `addr`, logged in as `user` (trust) to the test database.
fn logged_in(addr: std::net::SocketAddr, user: &str) -> support::wire::Wire {
    use support::wire::{startup, Wire};
    let mut w = Wire::connect(addr);
    w.send(&startup(
        3,
        0,
        &[("user", user), ("database", support::pg::DATABASE)],
    ));
    w.answer();
    assert_eq!(
        w.tokens.last().map(String::as_str),
        Some("ReadyForQuery(I)"),
        "{:?}",
        w.tokens
    );
    w
}

#[test]
fn psql_queries_errors_copy_and_log_in_failures() {
    let f = Fixture::start(&["--pool-size", "2"]);
    // TLS with channel binding (SCRAM-SHA-256-PLUS against the proxy's certificate).
    let script = "
CREATE TABLE t (id int PRIMARY KEY, name text);
COPY t FROM STDIN;
1\tone
2\ttwo
\\.
BEGIN;
INSERT INTO t VALUES (3, 'three');
SELECT count(*) FROM t;
COMMIT;
COPY (SELECT id, name FROM t ORDER BY id) TO STDOUT;
SELECT current_setting('server_version_num')::int >= 180000;
";
    let out = f.psql("sslmode=require channel_binding=require", script);
    assert_eq!(
        ok(&out, "psql"),
        "3\n1\tone\n2\ttwo\n3\tthree\nt\n",
        "{}",
        f.stderr()
    );

    // An error in the middle: psql goes on (no ON_ERROR_STOP), the session too.
    let mut cmd = Command::new(support::pg::psql(PgVersion::V18));
    cmd.args(["-X", "-A", "-t", "-q", "-f", "-", "-d"])
        .arg(f.conninfo("sslmode=disable"));
    let out = run(
        &mut cmd,
        "SELECT 1/0;\nSELECT 'after';\nBEGIN;\nSELECT nope;\nSELECT 1;\nROLLBACK;\nSELECT 'end';\n",
        60,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("division by zero"), "{stderr}");
    assert!(
        stderr.contains("current transaction is aborted"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after\nend\n");

    // A database the proxy does not serve: FATAL 3D000 after authentication, as PostgreSQL.
    let mut cmd = Command::new(support::pg::psql(PgVersion::V18));
    cmd.args(["-X", "-c", "SELECT 1", "-d"]).arg(format!(
        "host={} port={} user=demo password=demo dbname=nope sslmode=disable",
        f.proxy.addr.ip(),
        f.proxy.addr.port()
    ));
    let out = run(&mut cmd, "", 60);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database \"nope\" does not exist"),
        "{stderr}"
    );

    // A wrong password.
    let mut cmd = Command::new(support::pg::psql(PgVersion::V18));
    cmd.args(["-X", "-c", "SELECT 1", "-d"]).arg(format!(
        "host={} port={} user=demo password=wrong dbname=pgproto sslmode=disable",
        f.proxy.addr.ip(),
        f.proxy.addr.port()
    ));
    let out = run(&mut cmd, "", 60);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );

    // The pool never went over its size.
    let n = f.cluster.admin_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'scram_user' AND backend_type = 'client backend'",
    );
    assert!(n.trim().parse::<u32>().unwrap() <= 2, "{n}");
}

#[test]
fn pgbench_in_every_query_mode_with_a_pool_smaller_than_the_clients() {
    let f = Fixture::start(&["--pool-size", "3"]);
    // Initialisation through the proxy: DDL, COPY FROM STDIN, VACUUM.
    let mut cmd = Command::new(pgbench(PgVersion::V18));
    cmd.args(["-i", "-s", "1", "-q"])
        .arg(f.conninfo("sslmode=disable"));
    let out = run(&mut cmd, "", 300);
    ok(&out, "pgbench -i");
    for mode in ["simple", "extended"] {
        pgbench_ok(
            &f,
            &["-n", "-M", mode, "-c", "8", "-j", "2", "-t", "25"],
            200,
        );
    }
    // Prepared: one thread per client (its first PQprepare blocks a whole thread).
    pgbench_ok(
        &f,
        &["-n", "-M", "prepared", "-c", "8", "-j", "8", "-t", "25"],
        200,
    );
    // Again, now that the statements exist on some connections and not others.
    pgbench_ok(
        &f,
        &["-n", "-M", "prepared", "-c", "5", "-j", "5", "-t", "40"],
        200,
    );
    let n = f.cluster.admin_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'scram_user' AND backend_type = 'client backend'",
    );
    assert!(n.trim().parse::<u32>().unwrap() <= 3, "{n}");
}

#[test]
fn two_hundred_clients_over_a_pool_of_three() {
    let f = Fixture::start(&["--pool-size", "3", "--auth", "trust"]);
    f.cluster
        .admin_sql("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0); GRANT ALL ON counter TO scram_user;");
    let dir = std::env::temp_dir().join(format!("pgproto-proxy-200-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("t.sql");
    std::fs::write(
        &script,
        "BEGIN;\nUPDATE counter SET n = n + 1;\nSELECT n FROM counter;\nEND;\n",
    )
    .unwrap();
    let script = script.to_string_lossy().into_owned();
    pgbench_ok(
        &f,
        &[
            "-n", "-M", "extended", "-c", "200", "-j", "4", "-t", "5", "-f", &script,
        ],
        1000,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(f.cluster.admin_sql("SELECT n FROM counter").trim(), "1000");
}

#[test]
fn an_upstream_connection_killed_mid_transaction() {
    let f = Fixture::start(&["--pool-size", "2"]);
    // A client inside a transaction, its upstream backend terminated from outside.
    let mut cmd = Command::new(support::pg::psql(PgVersion::V18));
    cmd.args(["-X", "-A", "-t", "-f", "-", "-d"])
        .arg(f.conninfo("sslmode=disable"));
    let admin = f.cluster.admin_conninfo(support::pg::DATABASE);
    let kill = format!(
        "BEGIN;\nSELECT 'in';\n\\! psql -X -q -d \"{admin}\" -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'scram_user' AND state LIKE 'idle in transaction%'\" >/dev/null\nSELECT 'after';\n"
    );
    let started = Instant::now();
    let out = run(
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                support::pg::PgVersion::V18.client_bindir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        &kill,
        60,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stderr.contains("server connection lost")
            || stderr.contains("terminating connection due to administrator command"),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("after\n"));
    // The proxy goes on with a fresh connection.
    let out = f.psql("sslmode=disable", "SELECT 'again';\n");
    assert_eq!(ok(&out, "psql after the kill"), "again\n");
}

#[test]
fn session_mode_keeps_set_across_transactions() {
    let f = Fixture::start(&["--pool-mode", "session", "--pool-size", "1"]);
    let out = f.psql(
        "sslmode=disable",
        "SET application_name = 'kept';\nBEGIN;\nSELECT 1;\nCOMMIT;\nSHOW application_name;\nPREPARE p AS SELECT 41 + 1;\nEXECUTE p;\n",
    );
    assert_eq!(ok(&out, "psql"), "1\nkept\n42\n");
    // The next client gets the connection reset (DISCARD ALL): no setting, no statement left.
    let out = f.psql(
        "sslmode=disable",
        "SHOW application_name;\nSELECT count(*) FROM pg_prepared_statements;\n",
    );
    assert_eq!(ok(&out, "psql"), "psql\n0\n");
}

#[test]
fn transaction_mode_releases_the_connection_between_transactions() {
    let f = Fixture::start(&["--pool-size", "1"]);
    // Two clients alternate on one upstream connection: each transaction sees its own
    // backend, and both see the same one (the pool has one).
    let a = f.psql(
        "sslmode=disable",
        "SELECT pg_backend_pid();\nBEGIN;\nSELECT pg_backend_pid();\nCOMMIT;\n",
    );
    let b = f.psql("sslmode=disable", "SELECT pg_backend_pid();\n");
    let a = ok(&a, "psql a");
    let pids: Vec<&str> = a.lines().collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(ok(&b, "psql b").trim(), pids[0]);
}

/// A tracked parameter one client changes with `SET` in transaction mode does not reach the
/// next client on the same upstream connection: each client keeps the values it was told at
/// log-in (PgBouncer's tracked parameters), and PostgreSQL reports nothing when a value does
/// not change, so the proxy sets the connection back before it serves the other client.
#[test]
fn transaction_mode_does_not_hand_one_clients_set_to_the_next() {
    let f = Fixture::start(&["--pool-size", "1"]);
    let before = f.psql("sslmode=disable", "SHOW TimeZone;\nSHOW DateStyle;\n");
    let before = ok(&before, "psql before").to_string();
    assert!(!before.contains("Asia/Tokyo"), "{before}");
    let a = f.psql(
        "sslmode=disable",
        "SET TimeZone = 'Asia/Tokyo';\nSET DateStyle = 'SQL, DMY';\nSHOW TimeZone;\nSHOW DateStyle;\n",
    );
    assert_eq!(ok(&a, "psql a"), "Asia/Tokyo\nSQL, DMY\n");
    // The next client on the one upstream connection sees the values it was told.
    let b = f.psql("sslmode=disable", "SHOW TimeZone;\nSHOW DateStyle;\n");
    assert_eq!(ok(&b, "psql b"), before);
}

/// An extended-query COPY FROM STDIN (unnamed statement: the proxy's quick path, which follows
/// the requests that end with a ReadyForQuery), the Sync sent behind the Execute before the COPY
/// began (the server ignores it), then the same with bad data (after the error the server skips
/// until the next Sync): each time the client gets every answer, and the one upstream
/// connection goes back to the pool and serves the next client.
#[test]
fn extended_query_copy_from_stdin_with_and_without_an_error() {
    use support::pg::DATABASE;
    use support::wire::{bind, copy_data, copy_done, execute, parse, query, startup, sync, Wire};

    let f = Fixture::start(&["--pool-size", "1", "--auth", "trust", "--no-tls"]);
    let created = f.psql("sslmode=disable user=demo", "CREATE TABLE ecopy (n int);\n");
    ok(&created, "psql");
    let mut w = logged_in(f.proxy.addr, "demo");
    let mut step = |w: &mut Wire, bytes: Vec<u8>| {
        w.tokens.clear();
        w.send(&bytes);
        w.answer();
        // The proxy sets the client's parameters on the connection again when another client
        // changed them (application_name): the client hears of it.
        w.tokens.retain(|t| t != "ParameterStatus*");
        w.tokens.join(" ")
    };
    let copy = [
        parse("", "COPY ecopy FROM STDIN", &[]),
        bind("", "", &[]),
        execute("", 0),
        sync(),
    ]
    .concat();
    let begun = "ParseComplete BindComplete CopyInResponse(format 0, 1 columns)";
    assert_eq!(step(&mut w, copy.clone()), begun);
    let done = step(&mut w, [copy_data(b"1\n2\n"), copy_done(), sync()].concat());
    assert_eq!(done, "CommandComplete(COPY) ReadyForQuery(I)");
    // Another client on the one connection, between the two COPYs (a connection the proxy
    // did not give back would leave it without an answer).
    let rows =
        "RowDescription(1 columns) DataRow(1 columns) CommandComplete(SELECT) ReadyForQuery(I)";
    let other = |step: &mut dyn FnMut(&mut Wire, Vec<u8>) -> String| {
        let mut o = Wire::connect(f.proxy.addr);
        o.send(&startup(3, 0, &[("user", "demo"), ("database", DATABASE)]));
        o.answer();
        step(&mut o, query("SELECT count(*) FROM ecopy"))
    };
    assert_eq!(other(&mut step), rows);
    assert_eq!(step(&mut w, copy.clone()), begun);
    let failed = step(
        &mut w,
        [copy_data(b"not a number\n"), copy_done(), sync()].concat(),
    );
    assert!(
        failed.starts_with("ErrorResponse(ERROR 22P02") && failed.ends_with("ReadyForQuery(I)"),
        "{failed}"
    );
    assert_eq!(step(&mut w, query("SELECT count(*) FROM ecopy")), rows);
    assert_eq!(other(&mut step), rows);
    // The error before the client's Sync was sent: until it is, the server skips what it gets,
    // and the connection serves no one else.
    assert_eq!(step(&mut w, copy), begun);
    let failed = step(&mut w, [copy_data(b"not a number\n"), copy_done()].concat());
    assert!(failed.starts_with("ErrorResponse(ERROR 22P02"), "{failed}");
    assert!(!failed.contains("ReadyForQuery"), "{failed}");
    let mut o = Wire::connect(f.proxy.addr);
    o.send(&startup(3, 0, &[("user", "demo"), ("database", DATABASE)]));
    o.answer();
    assert_eq!(step(&mut o, query("SELECT count(*) FROM ecopy")), "");
    assert_eq!(step(&mut w, sync()), "ReadyForQuery(I)");
    o.answer();
    o.tokens.retain(|t| t != "ParameterStatus*");
    assert_eq!(o.tokens.join(" "), rows);
}

/// A COPY FROM STDIN that fails while the client is still sending: PostgreSQL answers the bad
/// row at once and drops the CopyData, CopyDone and CopyFail that follow. Every step is sent
/// both straight to PostgreSQL and through the proxy (pool of 1, transaction mode, the other
/// client served on the one connection between the error and what trails it), and must get the
/// same answers both ways. Simple-query COPY, then extended-query COPY, the Sync behind the
/// Execute or among the data.
#[test]
fn copy_from_stdin_failing_while_the_client_still_sends() {
    use support::pg::TRUST_USER;
    use support::wire::{bind, copy_data, copy_done, copy_fail, execute, parse, query, sync, Wire};

    let f = Fixture::start(&["--pool-size", "1", "--auth", "trust", "--no-tls"]);
    let created = f.psql(
        "sslmode=disable user=demo",
        "CREATE TABLE fcopy (n int);\nGRANT ALL ON fcopy TO PUBLIC;\n",
    );
    ok(&created, "psql");
    let answer = |w: &mut Wire, bytes: &[u8]| {
        w.tokens.clear();
        w.send(bytes);
        w.answer();
        w.tokens.retain(|t| t != "ParameterStatus*");
        w.tokens.join(" ")
    };
    // The client and the other client, straight to PostgreSQL and through the proxy.
    let (mut pg, mut pg_other) = (
        logged_in(f.cluster.addr(), TRUST_USER.name),
        logged_in(f.cluster.addr(), TRUST_USER.name),
    );
    let (mut px, mut px_other) = (
        logged_in(f.proxy.addr, "demo"),
        logged_in(f.proxy.addr, "demo"),
    );
    let mut answers = Vec::new();
    let mut step = |other: bool, bytes: Vec<u8>| {
        let (pg, px) = if other {
            (&mut pg_other, &mut px_other)
        } else {
            (&mut pg, &mut px)
        };
        let direct = answer(pg, &bytes);
        let proxied = answer(px, &bytes);
        assert_eq!(proxied, direct, "after {answers:#?}\n{}", f.stderr());
        answers.push(direct);
    };
    let count = || query("SELECT count(*) FROM fcopy");
    // An extended-query COPY as libpq sends it, the Sync behind the Execute.
    let copy_as_libpq = || {
        [
            parse("", "COPY fcopy FROM STDIN", &[]),
            bind("", "", &[]),
            execute("", 0),
            sync(),
        ]
        .concat()
    };

    // Simple query: the error on the bad row, then more rows and CopyDone; then a query.
    step(false, query("COPY fcopy FROM STDIN"));
    step(false, copy_data(b"1\nnot a number\n"));
    step(false, [copy_data(b"2\n3\n"), copy_done()].concat());
    step(false, count());
    // Again, the other client served between the error and what trails it (a CopyFail).
    step(false, query("COPY fcopy FROM STDIN"));
    step(false, copy_data(b"1\nnot a number\n"));
    step(true, count());
    step(
        false,
        [copy_data(b"2\n"), copy_fail("client gave up")].concat(),
    );
    step(true, count());
    step(false, count());
    // Extended query as libpq sends it (the Sync behind the Execute, which the COPY reads and
    // ignores): the error on the bad row, then the server skips the rest of the data and
    // CopyDone until the client's next Sync.
    step(false, copy_as_libpq());
    step(false, copy_data(b"not a number\n"));
    step(false, [copy_data(b"4\n"), copy_done()].concat());
    step(false, sync());
    step(false, count());
    step(true, count());
    // The same with the Sync sent among the data, after the bad row: PostgreSQL had not read
    // it when the COPY failed, so it ends the skipping and gets its ReadyForQuery. The other
    // client is served next (the connection is not given to it: a fresh one is).
    step(false, copy_as_libpq());
    step(false, [copy_data(b"not a number\n"), sync()].concat());
    step(true, count());
    step(false, [copy_data(b"4\n"), copy_done()].concat());
    step(false, sync());
    step(false, count());
    step(true, count());
    // What PostgreSQL answered, for the record: the error at once, nothing for what trails it.
    let rows =
        "RowDescription(1 columns) DataRow(1 columns) CommandComplete(SELECT) ReadyForQuery(I)";
    assert!(
        answers[1].starts_with("ErrorResponse(ERROR 22P02"),
        "{answers:#?}"
    );
    assert_eq!(answers[2], "", "{answers:#?}");
    assert_eq!(answers[3], rows, "{answers:#?}");
}
