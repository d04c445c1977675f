//! The small examples, run as processes against real peers: `minimal_server` under psql 15,
//! `async_client` against a PostgreSQL 15 cluster (beside the blocking `client` example, which
//! must print the same), and the SQLite `server` example refusing psql's `\d` clearly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use support::demo_server::{run, show, DemoServer};
use support::examples::example;
use support::pg::{psql, Cluster, PgVersion, MD5_USER, PASSWORD_USER, SCRAM_USER, TRUST_USER};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A child process killed (by its pid) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `psql -X -At -w -d CONNINFO -c SQL`, psql 15.
fn psql15(conninfo: &str, sql: &str) -> Output {
    let mut cmd = Command::new(psql(PgVersion::V15));
    cmd.args(["-X", "-A", "-t", "-w", "-d", conninfo, "-c", sql]);
    run(&mut cmd, "", 60)
}

#[test]
fn minimal_server_answers_psql_15() {
    let mut child = Command::new(example("minimal_server"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start minimal_server");
    let stdout = child.stdout.take().unwrap();
    let _server = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let (host, port) = addr.rsplit_once(':').unwrap();
    let conninfo = format!("host={host} port={port} user=anyone dbname=x sslmode=prefer");

    let out = psql15(&conninfo, "SELECT * FROM fruits");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stdout), "apple|red\nbanana|yellow\nlime|green\n");

    let out = psql15(&conninfo, "select * from vegetables;");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("ERROR:  relation \"vegetables\" does not exist"),
        "{}",
        show(&out)
    );
    // SQLSTATEs, with psql's verbose errors.
    let mut cmd = Command::new(psql(PgVersion::V15));
    cmd.args([
        "-X",
        "-At",
        "-w",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        &conninfo,
    ]);
    let out = run(
        &mut cmd,
        "SELECT * FROM nope;\nDROP TABLE fruits;\nSELECT * FROM fruits;\n",
        60,
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ERROR:  42P01: relation \"nope\""),
        "{stderr}"
    );
    assert!(stderr.contains("ERROR:  42601: syntax error"), "{stderr}");
    assert!(
        text(&out.stdout).ends_with("lime|green\n"),
        "{}",
        show(&out)
    );
}

#[test]
fn async_client_prints_what_the_blocking_client_prints() {
    let cluster = Cluster::start(PgVersion::V15);
    let sqls = [
        "SELECT 1, NULL, 'a|b', ''",
        "CREATE TEMP TABLE t (a int, b text)",
        "INSERT INTO t VALUES (1, NULL), (2, 'x')",
        "INSERT INTO t VALUES (3, 'y') RETURNING *",
        "SELECT * FROM t ORDER BY a",
        "SELECT 1 WHERE false",
        "SELECT 1; SELECT 2",
        "COPY t TO STDOUT",
        "SELECT 1/0",
        "DO $$BEGIN RAISE NOTICE 'hi'; END$$",
        "",
        "SELECT current_user",
    ];
    for user in [TRUST_USER, PASSWORD_USER, MD5_USER, SCRAM_USER] {
        let conninfo = cluster.conninfo(user);
        let ours = Command::new(example("async_client"))
            .arg(&conninfo)
            .args(sqls)
            .output()
            .expect("run async_client");
        let blocking = Command::new(example("client"))
            .arg(&conninfo)
            .args(sqls)
            .stdin(Stdio::null())
            .output()
            .expect("run client");
        assert_eq!(
            ours.status.code(),
            Some(1),
            "{}: {}",
            user.name,
            show(&ours)
        );
        assert_eq!(text(&ours.stdout), text(&blocking.stdout), "{}", user.name);
        assert_eq!(text(&ours.stderr), text(&blocking.stderr), "{}", user.name);
        assert!(
            text(&ours.stdout).ends_with(&format!("\n{}\n", user.name)),
            "{}",
            show(&ours)
        );
        assert_eq!(
            text(&ours.stderr),
            "ERROR:  22012: division by zero\nNOTICE:  hi\n"
        );
    }
    // A wrong password: exit 1, the server's error on stderr.
    let wrong = cluster
        .conninfo(SCRAM_USER)
        .replace("scram_user_pw", "nope");
    let out = Command::new(example("async_client"))
        .args([&wrong, "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("28P01"), "{}", show(&out));
}

#[test]
fn sqlite_server_refuses_psql_describe_clearly() {
    let server = DemoServer::start(&["--no-tls", "--auth", "trust"]);
    let ci = server.conninfo("sslmode=disable");
    let mut cmd = Command::new(psql(PgVersion::V15));
    cmd.args([
        "-X",
        "-w",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        &ci,
        "-c",
        "\\d",
    ]);
    let out = run(&mut cmd, "", 60);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(
            "ERROR:  0A000: pg_catalog is not available in this server (SQLite behind pgproto): \
             psql's \\d and similar commands are not supported"
        ),
        "{}",
        show(&out)
    );
    let out = psql15(&ci, "SELECT table_name FROM information_schema.tables");
    assert!(
        text(&out.stderr).contains("pg_catalog is not available"),
        "{}",
        show(&out)
    );
    // Ordinary SQL still works.
    let out = psql15(&ci, "SELECT 40 + 2");
    assert_eq!(text(&out.stdout), "42\n", "{}", show(&out));
}
