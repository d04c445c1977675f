//! *live*: real replication traffic from PostgreSQL 15 and 18, recorded by a proxy between the
//! server and PostgreSQL's own tools, decoded with the crate's replication codec: pgoutput v1
//! to v4 under every option combination the server accepts (`pg_recvlogical --plugin=pgoutput`
//! with streaming off, on and parallel, two-phase, messages, binary, origin), physical streaming
//! (`pg_receivewal`: the WAL in the XLogData equals the segment file it wrote) and BASE_BACKUP
//! (`pg_basebackup -Ft`: the archive and manifest data equal the files it wrote). Every message
//! re-encodes to its bytes.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use pgproto::replication::pgoutput::{
    OldTuple, PgOutputMessage, PgOutputOptions, Streaming, TupleValue,
};
use pgproto::replication::{BaseBackupMessage, Lsn, PrimaryMessage};
use support::capture;
use support::pg::{client_bin, Cluster, PgVersion, REPL_USER};
use support::recorder::Recorder;
use support::repl_workload::{self as workload, REPLICATION_CONF};
use support::replication_capture::{copy_sessions, reparse, Carried, CopySession};

/// libpq connection string for the replication role through `port`.
fn conninfo(port: u16, dbname: Option<&str>) -> String {
    let mut s = format!(
        "host=127.0.0.1 port={port} user={} password={} sslmode=disable",
        REPL_USER.name,
        REPL_USER.password.unwrap()
    );
    if let Some(d) = dbname {
        s.push_str(&format!(" dbname={d}"));
    }
    s
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One way of asking pgoutput for the changes.
#[derive(Debug, Clone, Copy)]
struct Combo {
    version: u32,
    streaming: Streaming,
    two_phase: bool,
    messages: bool,
    binary: bool,
    origin_none: bool,
}

const fn combo(version: u32, streaming: Streaming, two_phase: bool) -> Combo {
    Combo {
        version,
        streaming,
        two_phase,
        messages: false,
        binary: false,
        origin_none: false,
    }
}

/// Every combination the server accepts that changes what is sent: each protocol version
/// PostgreSQL 15 (1 to 3) or 18 (1 to 4) knows, with streaming off, on and (18) parallel,
/// two-phase, messages and binary values.
fn combos(pg: PgVersion) -> Vec<Combo> {
    let mut v = vec![
        combo(1, Streaming::Off, false),
        Combo {
            messages: true,
            binary: true,
            ..combo(1, Streaming::Off, false)
        },
        Combo {
            messages: true,
            ..combo(2, Streaming::On, false)
        },
        combo(3, Streaming::Off, true),
        Combo {
            messages: true,
            binary: true,
            ..combo(3, Streaming::On, true)
        },
    ];
    if pg == PgVersion::V18 {
        v.push(Combo {
            messages: true,
            ..combo(4, Streaming::Parallel, false)
        });
        v.push(Combo {
            messages: true,
            binary: true,
            ..combo(4, Streaming::Parallel, true)
        });
        v.push(Combo {
            origin_none: true,
            ..combo(4, Streaming::On, false)
        });
    }
    v
}

/// `pg18_pgoutput_v4_parallel_two_phase_messages_binary` and the like.
fn capture_name(pg: PgVersion, c: Combo) -> String {
    let mut s = format!("pg{}_pgoutput_v{}", pg.major(), c.version);
    if c.streaming != Streaming::Off {
        s.push_str(&format!("_streaming_{}", c.streaming.as_str()));
    }
    for (on, what) in [
        (c.two_phase, "two_phase"),
        (c.messages, "messages"),
        (c.binary, "binary"),
        (c.origin_none, "origin_none"),
    ] {
        if on {
            s.push('_');
            s.push_str(what);
        }
    }
    s
}

fn plugin_options(c: Combo) -> Vec<String> {
    let mut o = vec![
        format!("proto_version={}", c.version),
        "publication_names=pub".to_string(),
    ];
    if c.streaming != Streaming::Off {
        o.push(format!("streaming={}", c.streaming.as_str()));
    }
    if c.two_phase {
        o.push("two_phase=on".into());
    }
    if c.messages {
        o.push("messages=on".into());
    }
    if c.binary {
        o.push("binary=on".into());
    }
    if c.origin_none {
        o.push("origin=none".into());
    }
    o
}

/// Replays the workload once, then streams it from one slot per combination through the
/// recording proxy, with `pg_recvlogical` of the same version as the server.
fn pgoutput_sessions(pg: PgVersion) -> Vec<(Combo, CopySession)> {
    let cluster = Cluster::start_with(pg, REPLICATION_CONF);
    workload::create_schema(&cluster);
    let combos = combos(pg);
    for (i, c) in combos.iter().enumerate() {
        workload::create_slot(&cluster, &format!("s{i}"), "pgoutput", c.two_phase);
    }
    let end = workload::run_workload(&cluster);
    let recvlogical = client_bin(pg, "pg_recvlogical");
    let mut out = Vec::new();
    for (i, c) in combos.iter().enumerate() {
        let rec = Recorder::start(cluster.addr());
        let mut cmd = Command::new(&recvlogical);
        cmd.args(["--start", "--no-loop", "-f", "/dev/null"])
            .arg(format!("--slot=s{i}"))
            .arg(format!("--endpos={end}"))
            .arg("-d")
            .arg(conninfo(rec.port(), Some(support::pg::DATABASE)));
        for o in plugin_options(*c) {
            cmd.arg("-o").arg(o);
        }
        run(&mut cmd, &format!("pg_recvlogical {c:?}"));
        let connections = rec.finish();
        keep_captures(&capture_name(pg, *c), &connections);
        let sessions: Vec<CopySession> = connections
            .iter()
            .flat_map(|(client, server)| {
                let conn = capture::decode(client, server);
                assert_eq!(conn.server.end, capture::End::Complete, "{c:?}");
                copy_sessions(&conn).unwrap_or_else(|e| panic!("{c:?}: {e}"))
            })
            .collect();
        assert_eq!(sessions.len(), 1, "{c:?}: one START_REPLICATION");
        out.push((*c, sessions.into_iter().next().unwrap()));
    }
    out
}

fn check_pgoutput(pg: PgVersion, c: Combo, s: &CopySession) {
    let Carried::Logical(options) = &s.carried else {
        panic!("{c:?}: not read as pgoutput: {}", s.query)
    };
    assert_eq!(options.proto_version(), c.version);
    assert_eq!(options.streaming(), c.streaming);
    let count = |name: &str| s.count(name);
    let mut counts = std::collections::BTreeMap::new();
    for n in s.inner_names() {
        *counts.entry(n).or_insert(0) += 1;
    }
    let ctx = format!("{pg} {c:?}: {counts:?}");
    for name in [
        "Begin", "Commit", "Relation", "Type", "Insert", "Update", "Delete", "Truncate",
    ] {
        assert!(count(name) > 0, "no {name}: {ctx}");
    }
    let streamed = c.streaming != Streaming::Off;
    for name in ["StreamStart", "StreamStop", "StreamCommit", "StreamAbort"] {
        assert_eq!(count(name) > 0, streamed, "{name}: {ctx}");
    }
    for name in [
        "BeginPrepare",
        "Prepare",
        "CommitPrepared",
        "RollbackPrepared",
    ] {
        assert_eq!(count(name) > 0, c.two_phase, "{name}: {ctx}");
    }
    assert_eq!(count("StreamPrepare") > 0, c.two_phase && streamed, "{ctx}");
    assert_eq!(count("Message") > 0, c.messages, "{ctx}");
    assert!(count("PrimaryKeepalive") > 0, "{ctx}");
    // The client's answers: standby status updates.
    assert!(
        s.client.iter().any(|i| i.name == "StandbyStatusUpdate"),
        "{ctx}"
    );

    let msgs = reparse(options, &s.server);
    let mut binary = false;
    let mut unchanged_toast = false;
    let mut old_key = false;
    let mut old_full = false;
    let mut abort_info = Vec::new();
    let mut transactional = (false, false);
    let mut truncate_flags = (false, false);
    let mut relations = std::collections::HashMap::new();
    let mut streamed_xids = 0;
    for m in &msgs {
        let mut values = |t: pgproto::replication::pgoutput::TupleData<'_>| {
            for v in t.values() {
                binary |= matches!(v, TupleValue::Binary(_));
                unchanged_toast |= v == TupleValue::UnchangedToast;
            }
        };
        match m {
            PgOutputMessage::Insert(i) => {
                values(i.new_tuple());
                streamed_xids += usize::from(i.xid().is_some());
            }
            PgOutputMessage::Update(u) => {
                values(u.new_tuple());
                match u.old() {
                    Some(OldTuple::Key(_)) => old_key = true,
                    Some(OldTuple::Full(_)) => old_full = true,
                    None => {}
                }
            }
            PgOutputMessage::Delete(d) => {
                values(d.old().tuple());
                old_key |= matches!(d.old(), OldTuple::Key(_));
            }
            PgOutputMessage::StreamAbort(a) => abort_info.push(a.abort().is_some()),
            PgOutputMessage::Message(m) => {
                if m.transactional() {
                    transactional.0 = true;
                } else {
                    transactional.1 = true;
                }
            }
            PgOutputMessage::Truncate(t) => {
                truncate_flags.0 |= t.cascade() && t.relation_count() == 2;
                truncate_flags.1 |= t.restart_identity();
            }
            PgOutputMessage::Relation(r) => {
                relations.insert(
                    r.name_str().unwrap().to_string(),
                    r.columns()
                        .map(|c| (c.name.to_vec(), c.key))
                        .collect::<Vec<_>>(),
                );
            }
            _ => {}
        }
    }
    assert_eq!(binary, c.binary, "binary values: {ctx}");
    assert!(unchanged_toast, "no unchanged TOAST value: {ctx}");
    assert!(
        old_key && old_full,
        "old key {old_key}, old row {old_full}: {ctx}"
    );
    assert!(truncate_flags.0 && truncate_flags.1, "{ctx}");
    if c.messages {
        assert!(transactional.0 && transactional.1, "{ctx}");
    }
    if streamed {
        assert!(streamed_xids > 0, "no change carried a stream xid: {ctx}");
        // A subtransaction rolled back inside a streamed transaction (PostgreSQL 15 also
        // streams the transaction rolled back as a whole; 17 and later skip a transaction
        // already known to be aborted).
        assert!(!abort_info.is_empty(), "{ctx}");
        let parallel = c.streaming == Streaming::Parallel;
        assert!(abort_info.iter().all(|a| *a == parallel), "{ctx}");
    }
    let kinds = &relations["kinds"];
    assert_eq!(kinds.len(), 21, "{ctx}");
    assert_eq!(kinds[0], (b"id".to_vec(), true));
    assert_eq!(kinds[18].0, b"Quoted Col");
    if pg == PgVersion::V18 {
        // The generated column is published.
        assert_eq!(
            relations["gen_t"],
            [(b"a".to_vec(), true), (b"b".to_vec(), false)],
            "{ctx}"
        );
    }
}

#[test]
fn pgoutput_traffic_from_postgresql_18() {
    for (c, s) in pgoutput_sessions(PgVersion::V18) {
        check_pgoutput(PgVersion::V18, c, &s);
    }
}

#[test]
fn pgoutput_traffic_from_postgresql_15() {
    for (c, s) in pgoutput_sessions(PgVersion::V15) {
        check_pgoutput(PgVersion::V15, c, &s);
    }
}

/// The options of a START_REPLICATION command written by `PgOutputOptions` parse back to the
/// same options.
#[test]
fn command_options_parse_back() {
    let o = PgOutputOptions::new(4, ["pub"])
        .unwrap()
        .with_streaming(Streaming::Parallel)
        .unwrap();
    let sql = format!(
        "START_REPLICATION SLOT \"s\" LOGICAL 0/0 ({})",
        o.to_command_options()
    );
    let Carried::Logical(back) = support::replication_capture::carried(&sql) else {
        panic!()
    };
    assert_eq!(back, o);
}

#[test]
fn physical_streaming_matches_pg_receivewal() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    // A fresh segment, a little WAL in it, then stream it.
    cluster.admin_sql("SELECT pg_switch_wal(); CREATE TABLE w (a int); INSERT INTO w SELECT generate_series(1, 100);");
    let end: Lsn = workload::current_lsn(&cluster).parse().unwrap();
    let dir = tempdir("receivewal");
    let rec = Recorder::start(cluster.addr());
    std::thread::scope(|scope| {
        // pg_receivewal stops at the first data past --endpos: write some once it streams,
        // rather than wait for the server's next record.
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            cluster.admin_sql("INSERT INTO w VALUES (0);");
        });
        run(
            Command::new(client_bin(PgVersion::V18, "pg_receivewal"))
                .arg("-D")
                .arg(&dir)
                .arg(format!("--endpos={end}"))
                .args(["--no-loop", "-n"])
                .arg("-d")
                .arg(conninfo(rec.port(), None)),
            "pg_receivewal",
        );
    });
    let connections = rec.finish();
    keep_captures("pg18_receivewal", &connections);
    let sessions: Vec<CopySession> = connections
        .iter()
        .flat_map(|(c, s)| copy_sessions(&capture::decode(c, s)).unwrap())
        .collect();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(matches!(s.carried, Carried::Physical), "{}", s.query);
    // Every XLogData's bytes are where pg_receivewal wrote them.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    let partial = std::fs::read(&files[0]).unwrap();
    assert!(files[0].to_string_lossy().ends_with(".partial"));
    let seg = partial.len() as u64;
    let mut streamed = 0;
    let mut last_end = Lsn::INVALID;
    for i in &s.server {
        if let PrimaryMessage::XLogData(x) = PrimaryMessage::decode(&i.bytes).unwrap() {
            let at = x.wal_start().segment_offset(seg).unwrap() as usize;
            assert_eq!(
                &partial[at..at + x.data().len()],
                x.data(),
                "{}",
                x.wal_start()
            );
            streamed += x.data().len();
            last_end = x.data_end();
        }
    }
    assert!(
        streamed > 0 && last_end >= end,
        "{streamed} bytes up to {last_end}, end {end}"
    );
    assert!(s.client.iter().any(|i| i.name == "StandbyStatusUpdate"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn base_backup_matches_pg_basebackup() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    let dir = tempdir("basebackup");
    let rec = Recorder::start(cluster.addr());
    run(
        Command::new(client_bin(PgVersion::V18, "pg_basebackup"))
            .arg("-D")
            .arg(&dir)
            .args(["-Ft", "-X", "none", "-c", "fast", "-P", "-d"])
            .arg(conninfo(rec.port(), None)),
        "pg_basebackup",
    );
    let connections = rec.finish();
    keep_captures("pg18_basebackup", &connections);
    let sessions: Vec<CopySession> = connections
        .iter()
        .flat_map(|(c, s)| {
            let conn = capture::decode(c, s);
            assert_eq!(conn.server.end, capture::End::Complete);
            copy_sessions(&conn).unwrap()
        })
        .collect();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(matches!(s.carried, Carried::BaseBackup), "{}", s.query);
    // Reassemble the archives and the manifest from the messages.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut progress = 0;
    for i in &s.server {
        match BaseBackupMessage::decode(&i.bytes).unwrap() {
            BaseBackupMessage::NewArchive(a) => {
                files.push((a.name_str().unwrap().to_string(), Vec::new()))
            }
            BaseBackupMessage::Manifest => files.push(("backup_manifest".into(), Vec::new())),
            BaseBackupMessage::Data(d) => files.last_mut().unwrap().1.extend_from_slice(d.data()),
            BaseBackupMessage::Progress(_) => progress += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(progress > 0);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["base.tar", "backup_manifest"]);
    for (name, data) in &files {
        let written = std::fs::read(Path::new(&dir).join(name)).unwrap();
        assert!(
            written == *data,
            "{name}: {} bytes streamed, {} written",
            data.len(),
            written.len()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `pg_basebackup --target=blackhole`: the server sends the CopyOut with progress reports only,
/// then the end position right after CopyDone (the ending the `Client` used to refuse). Small
/// enough to keep as a capture.
#[test]
fn base_backup_to_blackhole() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    let rec = Recorder::start(cluster.addr());
    run(
        Command::new(client_bin(PgVersion::V18, "pg_basebackup"))
            .args(["-t", "blackhole", "-X", "none", "-c", "fast", "-P", "-d"])
            .arg(conninfo(rec.port(), None)),
        "pg_basebackup --target=blackhole",
    );
    let connections = rec.finish();
    keep_captures("pg18_basebackup_blackhole", &connections);
    let conn = capture::decode(&connections[0].0, &connections[0].1);
    assert_eq!(conn.server.end, capture::End::Complete);
    let sessions = copy_sessions(&conn).unwrap();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(matches!(s.carried, Carried::BaseBackup), "{}", s.query);
    assert!(s.count("BackupProgress") > 0, "{:?}", s.inner_names());
    // After CopyDone: RowDescription (the end position), not CommandComplete.
    let names: Vec<&str> = conn
        .server
        .messages
        .iter()
        .map(|d| d.message.name())
        .collect();
    let done = names.iter().rposition(|n| *n == "CopyDone").unwrap();
    assert_eq!(names[done + 1], "RowDescription", "{:?}", &names[done..]);
}

/// With `PGPROTO_WRITE_REPLICATION_CAPTURES=DIR`, writes each recorded connection as
/// `DIR/NAME-N.client` and `DIR/NAME-N.server` (how the captures in
/// `tests/data/replication/` were made).
fn keep_captures(name: &str, connections: &[support::recorder::Recorded]) {
    let Some(dir) = std::env::var_os("PGPROTO_WRITE_REPLICATION_CAPTURES") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    for (i, (client, server)) in connections.iter().enumerate() {
        std::fs::write(dir.join(format!("{name}-{}.client", i + 1)), client).unwrap();
        std::fs::write(dir.join(format!("{name}-{}.server", i + 1)), server).unwrap();
    }
}

/// A fresh directory under the harness's base directory.
fn tempdir(what: &str) -> std::path::PathBuf {
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
