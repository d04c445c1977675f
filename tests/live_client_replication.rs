//! *live*: the `Client` on replication connections to PostgreSQL 18, through a small blocking
//! loop over a plain socket: the endings that used to fail it with "unexpected RowDescription
//! while in COPY" (the next timeline's result set after the CopyBoth of an older timeline, on a
//! promoted standby; BASE_BACKUP's end position right after its CopyDone), logical replication
//! with standby status updates sent at the application's request, and `IDENTIFY_SYSTEM`,
//! `TIMELINE_HISTORY` and `CREATE_REPLICATION_SLOT` results read with the crate's row types.

mod support;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pgproto::replication::pgoutput::{PgOutputDecoder, PgOutputMessage, PgOutputOptions};
use pgproto::replication::{
    BaseBackupMessage, CreatedSlot, IdentifySystem, Lsn, PrimaryMessage, ReplicationCommand,
    StandbyStatusUpdate, TimelinePosition, Timestamp,
};
use pgproto::{BackendMessage, Client, ClientConfig, ClientEvent};
use support::pg::{Cluster, PgVersion, DATABASE, REPL_USER};
use support::repl_workload::REPLICATION_CONF;

/// A `Client` on a blocking socket, events kept owned.
struct Session {
    client: Client,
    tcp: TcpStream,
    events: VecDeque<ClientEvent>,
}

impl Session {
    fn connect(cluster: &Cluster, replication: &str, database: Option<&str>) -> Self {
        let mut config = ClientConfig::new(REPL_USER.name);
        config.password = REPL_USER.password.map(|p| p.as_bytes().to_vec());
        config.replication = Some(replication.into());
        config.database = database.map(str::to_string);
        let tcp = TcpStream::connect(cluster.addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut s = Self {
            client: Client::new(config).unwrap(),
            tcp,
            events: VecDeque::new(),
        };
        loop {
            if let ClientEvent::Connected { .. } = s.next() {
                return s;
            }
        }
    }

    fn pump(&mut self) {
        while let Some(e) = self
            .client
            .poll_event()
            .expect("the client accepts the server")
        {
            self.events.push_back(e.into_owned());
        }
        while let Some(b) = self.client.poll_transmit() {
            self.tcp.write_all(&b).unwrap();
        }
    }

    fn next(&mut self) -> ClientEvent {
        loop {
            self.pump();
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            let mut buf = [0; 65536];
            let n = self.tcp.read(&mut buf).expect("read from the server");
            assert!(n > 0, "the server closed the connection");
            self.client.receive(&buf[..n]);
        }
    }

    /// The next response message.
    fn response(&mut self) -> BackendMessage<'static> {
        loop {
            match self.next() {
                ClientEvent::Response { message, .. } => return message,
                ClientEvent::UnsolicitedError(f) => panic!("{f:?}"),
                _ => {}
            }
        }
    }

    /// Sends `sql`; returns the response messages up to ReadyForQuery, or up to the first
    /// CopyBothResponse or CopyOutResponse (included).
    fn query(&mut self, sql: &str) -> Vec<BackendMessage<'static>> {
        self.client.query(sql).unwrap();
        self.until_ready_or_copy()
    }

    fn until_ready_or_copy(&mut self) -> Vec<BackendMessage<'static>> {
        let mut v = Vec::new();
        loop {
            let m = self.response();
            if let BackendMessage::ErrorResponse(f) = &m {
                panic!("server error: {f:?}");
            }
            let end = matches!(
                m,
                BackendMessage::ReadyForQuery(_)
                    | BackendMessage::CopyBothResponse(_)
                    | BackendMessage::CopyOutResponse(_)
            );
            v.push(m);
            if end {
                return v;
            }
        }
    }
}

/// The values of every DataRow among `messages`.
fn rows(messages: &[BackendMessage]) -> Vec<Vec<Option<Vec<u8>>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            BackendMessage::DataRow(r) => Some(
                r.columns()
                    .map(|v| v.unwrap().map(<[u8]>::to_vec))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn borrowed(row: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
    row.iter().map(|v| v.as_deref()).collect()
}

fn names(messages: &[BackendMessage]) -> Vec<&'static str> {
    messages.iter().map(BackendMessage::name).collect()
}

#[test]
fn older_timeline_ends_with_the_next_timeline() {
    let primary = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    let standby = primary.start_standby();
    // Some WAL after the standby's base backup, so that the switch lies inside a segment.
    primary.admin_sql("CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 1000);");
    let lsn = primary.admin_sql("SELECT pg_current_wal_lsn();");
    standby.wait_for_replay(lsn.trim());
    standby.promote();
    standby.admin_sql("INSERT INTO t VALUES (0);");

    let mut s = Session::connect(&standby, "true", None);
    let id = s.query("IDENTIFY_SYSTEM");
    let id = IdentifySystem::from_row(&borrowed(&rows(&id)[0])).unwrap();
    assert_eq!(id.timeline, 2);
    let history = s.query("TIMELINE_HISTORY 2");
    let content = rows(&history)[0][1].clone().unwrap();
    // "1\t0/3000000\tno recovery target specified"
    let switch: Lsn = String::from_utf8(content)
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    // Timeline 1 from the start of the segment of the switch: the standby sends it up to the
    // switch, then its CopyDone.
    let seg = 16u64 << 20;
    assert_ne!(switch.as_u64() % seg, 0, "{switch}");
    let from = Lsn::new(switch.as_u64() - switch.as_u64() % seg);
    let command = ReplicationCommand::StartPhysical {
        slot: None,
        start: from,
        timeline: Some(1),
    };
    let started = s.query(&command.to_string());
    assert_eq!(started.last().unwrap().name(), "CopyBothResponse");
    let mut end = from;
    loop {
        match s.response() {
            BackendMessage::CopyData(d) => {
                if let PrimaryMessage::XLogData(x) = PrimaryMessage::decode(d.data()).unwrap() {
                    assert_eq!(x.wal_start(), end, "contiguous WAL");
                    end = x.data_end();
                }
            }
            BackendMessage::CopyDone => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(end, switch, "timeline 1 is streamed up to the switch");
    s.client.copy_done().unwrap();
    // The next timeline's result set, two CommandCompletes, ReadyForQuery.
    let ending = s.until_ready_or_copy();
    let row = &rows(&ending)[0];
    let next = TimelinePosition::from_timeline_row(&borrowed(row)).unwrap();
    assert_eq!((next.timeline, next.lsn), (2, switch));
    assert_eq!(
        names(&ending),
        [
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    // The connection goes on.
    assert_eq!(
        names(&s.query("IDENTIFY_SYSTEM")).last(),
        Some(&"ReadyForQuery")
    );
}

#[test]
fn base_backup_ends_with_its_end_position() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    let mut s = Session::connect(&cluster, "true", None);
    let started = s.query("BASE_BACKUP (TARGET 'blackhole', CHECKPOINT 'fast', PROGRESS)");
    assert_eq!(started.last().unwrap().name(), "CopyOutResponse");
    let mut names_seen = Vec::new();
    loop {
        match s.response() {
            BackendMessage::CopyData(d) => {
                names_seen.push(BaseBackupMessage::decode(d.data()).unwrap().name())
            }
            BackendMessage::CopyDone => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(names_seen.contains(&"BackupProgress"), "{names_seen:?}");
    let ending = s.until_ready_or_copy();
    assert_eq!(names(&ending)[0], "RowDescription", "{:?}", names(&ending));
    let end = TimelinePosition::from_lsn_row(&borrowed(&rows(&ending)[0])).unwrap();
    assert_eq!(end.timeline, 1);
    assert!(end.lsn > Lsn::INVALID);
}

#[test]
fn logical_replication_with_status_updates() {
    let cluster = Cluster::start_with(PgVersion::V18, REPLICATION_CONF);
    cluster.admin_sql("CREATE TABLE t (a int PRIMARY KEY); CREATE PUBLICATION pub FOR ALL TABLES;");
    let mut s = Session::connect(&cluster, "database", Some(DATABASE));
    let created = s.query("CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput (SNAPSHOT 'nothing')");
    let slot = CreatedSlot::from_row(&borrowed(&rows(&created)[0])).unwrap();
    assert_eq!(slot.output_plugin.as_deref(), Some("pgoutput"));
    cluster.admin_sql("INSERT INTO t VALUES (1), (2);");
    let options = PgOutputOptions::new(1, ["pub"]).unwrap();
    let command = ReplicationCommand::StartLogical {
        slot: "s".into(),
        start: Lsn::INVALID,
        options: options
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v)))
            .collect(),
    };
    s.query(&command.to_string());
    let mut decoder = PgOutputDecoder::new(&options);
    let mut inserts = 0;
    let commit_end = loop {
        match s.response() {
            BackendMessage::CopyData(d) => match PrimaryMessage::decode(d.data()).unwrap() {
                PrimaryMessage::XLogData(x) => match decoder.decode(x.data()).unwrap() {
                    PgOutputMessage::Insert(_) => inserts += 1,
                    PgOutputMessage::Commit(c) => break c.end_lsn(),
                    _ => {}
                },
                PrimaryMessage::PrimaryKeepalive(_) => {}
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(inserts, 2);
    // Confirm the transaction, then end the stream.
    let update = StandbyStatusUpdate::new(
        commit_end,
        commit_end,
        Lsn::INVALID,
        Timestamp::from_system_time(std::time::SystemTime::now()),
        true,
    );
    s.client.copy_payload(&update).unwrap();
    s.pump();
    s.client.copy_done().unwrap();
    loop {
        match s.response() {
            BackendMessage::CopyDone => break,
            BackendMessage::CopyData(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let ending = s.until_ready_or_copy();
    assert_eq!(names(&ending).last(), Some(&"ReadyForQuery"));
    let confirmed = cluster
        .admin_sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's';");
    let confirmed: Lsn = confirmed.trim().parse().unwrap();
    assert!(confirmed >= commit_end, "{confirmed} < {commit_end}");
}
