//! The example server (`cargo run --example server`) against real psql: psql 15 sessions with
//! queries, errors, notices, `\copy` both ways, LISTEN/NOTIFY between two psql processes,
//! failed transactions, cancel; TLS with `channel_binding=require` for psql 15 and 18 (18 also
//! with direct TLS and protocol 3.2); each `--auth` method and wrong passwords.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::demo_server::{run, show, DemoServer};
use support::pg::{psql, PgVersion};

/// `psql -X -w -d CONNINFO` plus `args`.
fn psql_cmd(version: PgVersion, conninfo: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(psql(version));
    cmd.args(["-X", "-w", "-d", conninfo]).args(args);
    cmd
}

fn psql15(conninfo: &str, args: &[&str], input: &str) -> Output {
    run(&mut psql_cmd(PgVersion::V15, conninfo, args), input, 60)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn psql_15_session_with_rows_errors_notices_copy_and_transactions() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require");
    let dir = std::env::temp_dir().join(format!("pgproto-demo-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.tsv");
    let script = format!(
        r#"\set VERBOSITY verbose
create table t (id integer primary key, name text, score real, ok boolean, data blob);
insert into t values (1, 'one', 1.5, true, x'0102'), (2, NULL, NULL, false, NULL);
select id, name, score, ok, data from t order by id;
select 'multi' as a \; select 40 + 2 as b;
select * from nope;
drop table if exists missing;
\copy t from stdin
3	three	3.25	t	\\x0a0b
4	\N	\N	f	\N
\.
\copy t to stdout
\copy (select id, name from t where id > 2 order by id) to '{file}'
begin;
insert into t (id, name) values (5, 'rolled back');
select bogus from t;
select 1;
commit;
select count(*) from t;
begin;
insert into t (id, name) values (6, 'kept');
commit;
select name from t where id = 6;
show TimeZone;
set application_name = 'demo test';
show application_name;
"#,
        file = file.display()
    );
    let out = psql15(&ci, &["-A", "-t"], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{}", show(&out));
    for expected in [
        "CREATE TABLE",
        "INSERT 0 2",
        "1|one|1.5|t|\\x0102",
        "2|||f|",
        "multi\n42",
        "COPY 2",
        "1\tone\t1.5\tt\t\\\\x0102\n2\t\\N\t\\N\tf\t\\N\n3\tthree\t3.25\tt\t\\\\x0a0b\n4\t\\N\t\\N\tf\t\\N\n",
        // COMMIT of a failed transaction rolls back.
        "BEGIN\nINSERT 0 1\nROLLBACK\n4\n",
        "BEGIN\nINSERT 0 1\nCOMMIT\nkept\n",
        "UTC",
        "SET\ndemo test",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{}", show(&out));
    }
    for expected in [
        "ERROR:  42P01: relation \"nope\" does not exist",
        "NOTICE:  00000: table \"missing\" does not exist, skipping",
        "ERROR:  42703: column \"bogus\" does not exist",
        "ERROR:  25P02: current transaction is aborted, commands ignored until end of transaction block",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in\n{}", show(&out));
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "3\tthree\n4\t\\N\n"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // One Query holding several statements, and an error exit status with ON_ERROR_STOP.
    let out = psql15(
        &ci,
        &["-A", "-t", "-c", "select 1; select 'two'; select 3.5"],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stdout), "1\ntwo\n3.5\n");
    let out = psql15(
        &ci,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "select 1 from",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("ERROR:  42601"),
        "{}",
        show(&out)
    );
    assert!(
        server.stderr().is_empty(),
        "server stderr: {}",
        server.stderr()
    );
}

#[test]
fn listen_notify_between_two_psql_processes() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require");
    let listener = {
        let ci = ci.clone();
        std::thread::spawn(move || psql15(&ci, &["-c", "LISTEN c; SELECT pg_sleep(3)"], ""))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let out = psql15(&ci, &["-c", "NOTIFY c, 'hi'"], "");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stdout), "NOTIFY\n");
    let out = listener.join().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stdout)
            .contains("Asynchronous notification \"c\" with payload \"hi\" received from server process with PID"),
        "{}",
        show(&out)
    );
}

#[test]
fn cancel_interrupts_a_running_statement() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require");
    let mut cmd = psql_cmd(
        PgVersion::V15,
        &ci,
        &["-v", "VERBOSITY=verbose", "-c", "SELECT pg_sleep(30)"],
    );
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let begun = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    // psql sends a CancelRequest on SIGINT.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "not cancelled: {}",
        show(&out)
    );
    assert!(
        text(&out.stderr).contains("ERROR:  57014: canceling statement due to user request"),
        "{}",
        show(&out)
    );
}

#[test]
fn tls_with_channel_binding_for_psql_15_and_18() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require channel_binding=require");
    let out = psql15(&ci, &["-c", "\\conninfo"], "");
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("SSL connection (protocol: TLSv1.3"),
        "{}",
        show(&out)
    );

    for extra in ["", "sslnegotiation=direct max_protocol_version=3.2"] {
        let ci = server.conninfo(&format!("sslmode=require channel_binding=require {extra}"));
        let out = run(
            &mut psql_cmd(PgVersion::V18, &ci, &["-A", "-t"]),
            "select $1 as x, $2::int8 + 1 \\bind hello 41 \\g\n\\conninfo\n",
            60,
        );
        assert!(out.status.success(), "psql 18 {extra}: {}", show(&out));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("hello|42"), "{}", show(&out));
        assert!(stdout.contains("ALPN|postgresql"), "{}", show(&out));
        if !extra.is_empty() {
            assert!(stdout.contains("Protocol Version|3.2"), "{}", show(&out));
        }
    }

    // Without TLS, sslmode=require fails.
    let plain = DemoServer::start(&["--no-tls"]);
    let out = psql15(&plain.conninfo("sslmode=require"), &["-c", "select 1"], "");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("does not support SSL"),
        "{}",
        show(&out)
    );
}

#[test]
fn every_auth_method_and_wrong_passwords() {
    for method in ["trust", "password", "md5", "scram"] {
        let server =
            DemoServer::start(&["--auth", method, "--user", "alice", "--password", "s3cret"]);
        let ok = psql15(
            &server.conninfo_as("alice", "s3cret", "sslmode=require"),
            &[
                "-A",
                "-t",
                "-c",
                "select current_setting('session_authorization')",
            ],
            "",
        );
        assert!(ok.status.success(), "{method}: {}", show(&ok));
        assert_eq!(text(&ok.stdout), "alice\n", "{method}");
        if method == "trust" {
            continue;
        }
        for (user, password) in [("alice", "wrong"), ("mallory", "s3cret")] {
            let out = psql15(
                &server.conninfo_as(user, password, "sslmode=disable"),
                &["-c", "select 1"],
                "",
            );
            assert_eq!(
                out.status.code(),
                Some(2),
                "{method} {user}: {}",
                show(&out)
            );
            assert!(
                text(&out.stderr).contains(&format!(
                    "password authentication failed for user \"{user}\""
                )),
                "{method} {user}: {}",
                show(&out)
            );
        }
    }
}

#[test]
fn readers_do_not_wait_for_an_open_write_transaction() {
    let server = DemoServer::start(&[]);
    let ci = server.conninfo("sslmode=require");
    let out = psql15(
        &ci,
        &[
            "-c",
            "create table w (v integer)",
            "-c",
            "insert into w values (1)",
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    let writer = {
        let ci = ci.clone();
        std::thread::spawn(move || {
            psql15(
                &ci,
                &["-A", "-t"],
                "begin;\ninsert into w values (2);\nselect pg_sleep(3);\ncommit;\n",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1000));
    let begun = Instant::now();
    let out = psql15(&ci, &["-A", "-t", "-c", "select count(*) from w"], "");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stdout), "1\n", "the uncommitted row is not seen");
    assert!(
        begun.elapsed() < Duration::from_millis(1500),
        "the reader waited"
    );
    let out = writer.join().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let out = psql15(&ci, &["-A", "-t", "-c", "select count(*) from w"], "");
    assert_eq!(text(&out.stdout), "2\n", "{}", show(&out));
}
