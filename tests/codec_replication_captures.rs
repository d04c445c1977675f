//! Recorded replication traffic (`tests/data/replication`, see its `MANIFEST.md`): every
//! CopyData of every replication COPY decodes by what its command says it carries and
//! re-encodes byte for byte; the `inspect` example lists the nested messages with `--check`,
//! in the fixed format, and fails on a damaged payload.

mod support;

use std::path::PathBuf;

use support::capture;
use support::replication_capture::{copy_sessions, Carried};

const PG18_LOGICAL: &str = "pg18_pgoutput_v4_streaming_parallel_two_phase_messages_binary-1";
const PG15_LOGICAL: &str = "pg15_pgoutput_v3_streaming_on_two_phase_messages_binary-1";
const PG18_PHYSICAL: &str = "pg18_receivewal-1";
const PG18_BACKUP: &str = "pg18_basebackup_blackhole-1";
const ALL: [&str; 4] = [PG18_LOGICAL, PG15_LOGICAL, PG18_PHYSICAL, PG18_BACKUP];

fn path(name: &str, side: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/replication")
        .join(format!("{name}.{side}"))
}

fn read(name: &str) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(path(name, "client")).unwrap(),
        std::fs::read(path(name, "server")).unwrap(),
    )
}

#[test]
fn every_capture_decodes_and_re_encodes() {
    for name in ALL {
        let (client, server) = read(name);
        let conn = capture::decode(&client, &server);
        assert_eq!(conn.client.end, capture::End::Complete, "{name}");
        assert_eq!(conn.server.end, capture::End::Complete, "{name}");
        conn.client.check(&client).unwrap();
        conn.server.check(&server).unwrap();
        let sessions = copy_sessions(&conn).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sessions.len(), 1, "{name}");
        let s = &sessions[0];
        let count = |n: &str| s.count(n);
        match name {
            PG18_LOGICAL | PG15_LOGICAL => {
                let Carried::Logical(o) = &s.carried else {
                    panic!("{name}: {}", s.query)
                };
                assert_eq!(o.proto_version(), if name == PG18_LOGICAL { 4 } else { 3 });
                for m in [
                    "Begin",
                    "Commit",
                    "Relation",
                    "Type",
                    "Insert",
                    "Update",
                    "Delete",
                    "Truncate",
                    "Message",
                    "StreamStart",
                    "StreamStop",
                    "StreamCommit",
                    "StreamAbort",
                    "BeginPrepare",
                    "Prepare",
                    "CommitPrepared",
                    "RollbackPrepared",
                    "StreamPrepare",
                ] {
                    assert!(count(m) > 0, "{name}: no {m}");
                }
                assert!(s.client.iter().all(|i| i.name == "StandbyStatusUpdate"));
            }
            PG18_PHYSICAL => {
                assert!(matches!(s.carried, Carried::Physical));
                assert!(count("XLogData") > 0);
            }
            _ => {
                assert!(matches!(s.carried, Carried::BaseBackup));
                assert_eq!(
                    s.inner_names(),
                    ["BackupNewArchive", "BackupProgress", "BackupManifest"]
                );
            }
        }
    }
}

/// Runs `inspect ARGS`; returns (status, stdout, stderr).
fn inspect(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = std::process::Command::new(support::examples::example("inspect"))
        .args(args)
        .output()
        .expect("run the inspect example");
    (
        out.status.code().expect("inspect was killed"),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        String::from_utf8(out.stderr).expect("UTF-8 errors"),
    )
}

/// The nested lines follow the CopyData they belong to, with its offset; four-space lines
/// follow an XLogData line.
fn check_layout(name: &str, listing: &str) -> Vec<String> {
    let mut last_copy: Option<(char, String)> = None;
    let mut last_nested = String::new();
    let mut nested = Vec::new();
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("    ") {
            assert!(
                last_nested.starts_with("XLogData"),
                "{name}: {line} after {last_nested}"
            );
            let (side, offset) = last_copy.clone().unwrap();
            assert!(
                rest.starts_with(&format!("{side} {offset} ")),
                "{name}: {line}"
            );
            nested.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("  ") {
            let (side, offset) = last_copy
                .clone()
                .unwrap_or_else(|| panic!("{name}: {line}"));
            let want = format!("{side} {offset} ");
            assert!(
                rest.starts_with(&want),
                "{name}: {line} does not start {want}"
            );
            last_nested = rest[want.len()..].to_string();
            nested.push(rest.to_string());
        } else {
            let mut parts = line.splitn(4, ' ');
            let (side, offset, msg) = (parts.next(), parts.next(), parts.next());
            last_copy = match (side, offset, msg) {
                (Some(s @ ("C" | "S")), Some(o), Some("CopyData")) => {
                    Some((s.chars().next().unwrap(), o.to_string()))
                }
                _ => None,
            };
            last_nested.clear();
        }
    }
    nested
}

#[test]
fn inspect_lists_the_nested_messages() {
    for name in ALL {
        let (c, s) = (path(name, "client"), path(name, "server"));
        let (status, out, err) = inspect(&["--check".as_ref(), c.as_os_str(), s.as_os_str()]);
        assert_eq!(status, 0, "{name}: {err}");
        let nested = check_layout(name, &out);
        let has = |prefix: &str| nested.iter().any(|l| l.contains(prefix));
        match name {
            PG18_LOGICAL => {
                assert!(has(" Relation public.kinds (oid "), "{name}");
                assert!(has(" Relation public.\"Mixed Case\" (oid "), "{name}");
                assert!(has(" Insert xid "), "streamed changes carry their xid");
                assert!(has(" StreamAbort xid ") && has(", abort 0/"), "{name}");
                assert!(has(" Truncate relations ") && has(", cascade"), "{name}");
                assert!(has("unchanged-toast"), "{name}");
                assert!(
                    has(" RollbackPrepared xid ") && has("gid \"gid'2\""),
                    "{name}"
                );
                assert!(has(" Message transactional, lsn "), "{name}");
                assert!(has("C ") && has(" StandbyStatusUpdate write "), "{name}");
                assert!(has(" PrimaryKeepalive end "), "{name}");
            }
            PG15_LOGICAL => {
                assert!(has(" StreamPrepare xid ") && has(" gid \"big\""), "{name}");
                assert!(!has(", abort 0/"), "no abort LSN before version 4");
            }
            PG18_PHYSICAL => assert!(has(" XLogData start 0/"), "{name}"),
            _ => {
                assert!(has(" BackupNewArchive \"base.tar\""), "{name}");
                assert!(has(" BackupProgress ") && has(" BackupManifest"), "{name}");
                // The end position right after CopyDone.
                let lines: Vec<&str> = out.lines().collect();
                let done = lines.iter().position(|l| l.contains(" CopyDone")).unwrap();
                assert!(lines[done + 1].contains(" RowDescription 2 fields: recptr, tli"));
            }
        }
    }
}

#[test]
fn inspect_fails_on_a_damaged_payload() {
    let (client, mut server) = read(PG18_PHYSICAL);
    // The first XLogData's type byte, 'w', becomes 'x': the frame still decodes, its payload
    // does not.
    let conn = capture::decode(&client, &server);
    let at = conn
        .server
        .messages
        .iter()
        .find(|d| d.message.name() == "CopyData" && server[d.offset + 5] == b'w')
        .unwrap()
        .offset;
    server[at + 5] = b'x';
    let dir = support::pg::base_dir().join(format!("pgproto-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, s) = (dir.join("c"), dir.join("s"));
    std::fs::write(&c, &client).unwrap();
    std::fs::write(&s, &server).unwrap();
    let (status, _, err) = inspect(&[c.as_os_str(), s.as_os_str()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(status, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: server stream at offset {at}: CopyData: unknown streaming replication \
             (primary) message type 'x'"
        )),
        "{err}"
    );
}
