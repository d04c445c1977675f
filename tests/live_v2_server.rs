//! *live*: libpq 13 as a real protocol-2.0 client of our `Server`. A small C program
//! (`support/libpq_v2_client.c`, built here with Debian's libpq headers and linked against the
//! libpq 13 of the npm PostgreSQL 13 package) connects to the `server` example started with
//! `--max-protocol 2.0`: the example answers libpq's 3.0 start-up with an error in 2.0's format,
//! libpq falls back to 2.0 on a new connection (asking for SSL again only when it is required),
//! authenticates, runs its 2.0 start-up queries (`begin; select version(); end` to learn the
//! server version, then `select pg_client_encoding()`), then the program's steps: rows with
//! NULLs, errors, an empty
//! query, COPY both ways, a transaction (libpq derives its status from the tags), LISTEN/NOTIFY,
//! a function call (refused by the example), cancel. `PQprotocolVersion()` must be 2.
//!
//! Needs `bash scripts/install-test-deps.sh` (PostgreSQL 13 with libpq 13, libpq headers, a C
//! compiler); without it these tests fail and say so.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use support::demo_server::{run, show, DemoServer};
use support::pg::{libpq13_dir, INSTALL_COMMAND};

/// The C client, built once per test process.
fn client() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let lib = libpq13_dir();
        let header = PathBuf::from("/usr/include/postgresql/libpq-fe.h");
        assert!(
            header.is_file(),
            "libpq headers not found at {}: install the test dependencies with:\n\n    {INSTALL_COMMAND}\n",
            header.display()
        );
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/libpq_v2_client.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libpq_v2_client");
        let status = Command::new("cc")
            .args(["-O0", "-Wall", "-Werror", "-I/usr/include/postgresql"])
            .arg(&src)
            .arg(format!("-L{}", lib.display()))
            .arg("-l:libpq.so.5")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run cc ({e}): install the test dependencies with:\n\n    {INSTALL_COMMAND}\n")
            });
        assert!(status.success(), "building {} failed", src.display());
        out
    })
}

/// Runs the C client with `conninfo` and `steps`; its stdout.
fn libpq13(conninfo: &str, steps: &[&str]) -> (bool, String) {
    let out = run(Command::new(client()).arg(conninfo).args(steps), "", 60);
    (
        out.status.success(),
        String::from_utf8(out.stdout.clone()).unwrap_or_else(|_| show(&out)),
    )
}

/// The steps every authentication method runs, and what libpq 13 prints for them.
const STEPS: &[&str] = &[
    "q:select 1 as a, null, 'x', 2.5",
    "q:select 1; select 2",
    "q:select * from no_such_table",
    "q:",
    "q:create table t (a int, b text)",
    "in:copy t from stdin",
    "1\tone\n2\t\\N\n3\tthree",
    "q:copy t to stdout",
    "q:begin",
    "q:insert into t values (4, 'four')",
    "q:select count(*) from t",
    "q:select * from no_such_table",
    "q:select 1",
    "q:rollback",
    "q:select count(*) from t",
    "q:listen chan; notify chan",
    "fn:1317:abcd",
];

const EXPECTED: &str = "\
> q:select 1 as a, null, 'x', 2.5
1|[NULL]|x|2.5
tag SELECT 1
status idle
> q:select 1; select 2
1
tag SELECT 1
2
tag SELECT 1
status idle
> q:select * from no_such_table
error ERROR:  relation \"no_such_table\" does not exist
status idle
> q:
empty
status idle
> q:create table t (a int, b text)
tag CREATE TABLE
status idle
> in:copy t from stdin
tag COPY 3
status idle
> q:copy t to stdout
copy-out 1\tone
copy-out 2\t\\N
copy-out 3\tthree
tag COPY 3
status idle
> q:begin
tag BEGIN
status in-transaction
> q:insert into t values (4, 'four')
tag INSERT 0 1
status in-transaction
> q:select count(*) from t
4
tag SELECT 1
status in-transaction
> q:select * from no_such_table
error ERROR:  relation \"no_such_table\" does not exist
status failed
> q:select 1
error ERROR:  current transaction is aborted, commands ignored until end of transaction block
status failed
> q:rollback
tag ROLLBACK
status idle
> q:select count(*) from t
3
tag SELECT 1
status idle
> q:listen chan; notify chan
tag LISTEN
tag NOTIFY
notify chan from self
status idle
> fn:1317:abcd
fn-error ERROR:  the function call protocol is not supported
status idle
";

#[test]
fn libpq_13_falls_back_to_2_0_and_is_served() {
    for auth in ["md5", "password", "trust"] {
        let server = DemoServer::start(&["--max-protocol", "2.0", "--no-tls", "--auth", auth]);
        // sslmode=prefer (libpq's default): SSLRequest gets `N` on both connections.
        let (ok, out) = libpq13(&server.conninfo(""), STEPS);
        assert!(ok, "{auth}: {out}");
        assert_eq!(
            out,
            format!("protocol 2\nserver_version 15.0\n{EXPECTED}"),
            "--auth {auth}\n--- server stderr\n{}",
            server.stderr()
        );
    }
}

#[test]
fn libpq_13_cancels_and_fails_over_2_0() {
    let server = DemoServer::start(&["--max-protocol", "2.0", "--no-tls", "--auth", "md5"]);
    let (ok, out) = libpq13(
        &server.conninfo("sslmode=disable"),
        &["cancel:select pg_sleep(10)", "q:select 'after'"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "protocol 2\nserver_version 15.0\n\
> cancel:select pg_sleep(10)\nerror ERROR:  canceling statement due to user request\nstatus idle\n\
> q:select 'after'\nafter\ntag SELECT 1\nstatus idle\n"
    );
    // A wrong password: the server's FATAL, which libpq 13 prints after the old-style error
    // that made it fall back (it keeps both).
    let fallback =
        "connect FATAL:  unsupported frontend protocol 3.0: server supports 2.0 to 2.0\n\n";
    let (ok, out) = libpq13(&server.conninfo_as("demo", "wrong", "sslmode=disable"), &[]);
    assert!(!ok);
    assert_eq!(
        out.trim_end(),
        format!("{fallback}FATAL:  password authentication failed for user \"demo\"")
    );
    // SCRAM cannot be done over 2.0: PostgreSQL 13's FATAL.
    let scram = DemoServer::start(&["--max-protocol", "2.0", "--no-tls"]);
    let (ok, out) = libpq13(&scram.conninfo("sslmode=disable"), &[]);
    assert!(!ok);
    assert_eq!(
        out.trim_end(),
        format!("{fallback}FATAL:  SASL authentication is not supported in protocol version 2")
    );
}

#[test]
fn libpq_13_over_tls_and_without_the_flag() {
    // TLS on both connections of the fallback.
    let server = DemoServer::start(&["--max-protocol", "2.0", "--auth", "md5"]);
    let (ok, out) = libpq13(&server.conninfo("sslmode=require"), &["q:select 1"]);
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "protocol 2\nserver_version 15.0\n> q:select 1\n1\ntag SELECT 1\nstatus idle\n"
    );
    // Without --max-protocol the example speaks 3.0 to libpq 13 (and 2.0 to those who ask).
    let server = DemoServer::start(&["--no-tls", "--auth", "md5"]);
    let (ok, out) = libpq13(&server.conninfo(""), &["q:select 1"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("protocol 3\n"), "{out}");
}

#[test]
fn the_client_example_falls_back_as_libpq_13_does() {
    let server = DemoServer::start(&["--max-protocol", "2.0", "--no-tls", "--auth", "md5"]);
    // Allowed to fall back: a new connection with 2.0.
    let info = server.conninfo("min_protocol_version=2.0");
    let ours = support::client_cli::run_cli(
        &[
            "--verbose",
            &info,
            "select 1, null",
            "select nope from nothing",
        ],
        b"",
    );
    assert_eq!(ours.code, 1, "{}", ours.stderr);
    assert_eq!(ours.stdout, "1|\n");
    assert_eq!(
        ours.stderr,
        "protocol 2.0\nauth md5\ntls off\ncancel key 4 bytes\nERROR:  syntax error at or near \"nothing\"\n"
    );
    // Not allowed: the old-style error ends the connection.
    let ours = support::client_cli::run_cli(&[&server.conninfo(""), "select 1"], b"");
    assert_eq!(ours.code, 1);
    assert_eq!(ours.stdout, "");
    assert!(
        ours.stderr
            .contains("unsupported frontend protocol 3.0: server supports 2.0 to 2.0"),
        "{}",
        ours.stderr
    );
}
