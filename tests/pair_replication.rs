//! A `Server` of this crate playing a walsender for a `Client` of this crate, in memory (the
//! shared `Pair`): logical replication with pgoutput streamed in XLogData (a plain and a
//! streamed transaction), keepalives answered with standby status updates, a physical stream on
//! an older timeline that ends with the next timeline's result set, and a BASE_BACKUP whose
//! CopyOut ends with the backup's end position: the endings a real walsender sends, accepted by
//! both machines, with every byte cut into reads of any size.

mod support;

use bytes::BytesMut;
use pgproto::replication::pgoutput::{
    Begin, Commit, Insert, PgOutputDecoder, PgOutputMessage, PgOutputOptions, Relation,
    RelationColumn, ReplicaIdentity, StreamCommit, StreamStart, Streaming, TupleData, TupleValue,
};
use pgproto::replication::{
    BackupData, BaseBackupMessage, IdentifySystem, Lsn, NewArchive, Payload, PrimaryKeepalive,
    PrimaryMessage, ReplicationCommand, StandbyMessage, StandbyStatusUpdate, TimelinePosition,
    Timestamp, XLogData,
};
use pgproto::{
    BackendMessage, Client, ClientConfig, ClientEvent, CopyResponse, FieldDescription, Format,
    FrontendMessage, RowDescription, Server, ServerAuth, ServerConfig, ServerEvent,
    TransactionStatus,
};
use support::pair::{Answer, Pair};

fn text_columns(names: &[&'static str]) -> RowDescription {
    let fields: Vec<_> = names
        .iter()
        .map(|n| FieldDescription {
            name: n.as_bytes(),
            table_oid: 0,
            column_id: 0,
            type_oid: 25,
            type_size: -1,
            type_modifier: -1,
            format: Format::Text,
        })
        .collect();
    RowDescription::new(&fields).unwrap()
}

fn copy_response() -> CopyResponse {
    CopyResponse::new(Format::Text, &[]).unwrap()
}

fn one_row(s: &mut Server, names: &[&'static str], values: &[Option<&[u8]>]) {
    s.row_description(&text_columns(names)).unwrap();
    s.data_row(values).unwrap();
    s.command_complete("SELECT 1").unwrap();
}

/// Sends `m` in an XLogData.
fn xlog(s: &mut Server, at: u64, m: &PgOutputMessage<'_>) {
    let mut data = BytesMut::new();
    m.encode_payload(&mut data);
    let x = XLogData::new(Lsn::new(at), Lsn::new(0x500), Timestamp::EPOCH, &data).unwrap();
    s.copy_payload(&x).unwrap();
}

/// The server's application: a small walsender.
#[derive(Default)]
struct Walsender {
    /// What the standby sent during CopyBoth.
    standby: Vec<StandbyMessage>,
    /// The command being streamed.
    streaming: Option<ReplicationCommand>,
}

impl Walsender {
    fn query(&mut self, s: &mut Server, sql: &str) {
        if sql == "IDENTIFY_SYSTEM" {
            s.row_description(&text_columns(&[
                "systemid", "timeline", "xlogpos", "dbname",
            ]))
            .unwrap();
            s.data_row(&[Some(b"7312"), Some(b"1"), Some(b"0/500"), Some(b"db")])
                .unwrap();
            s.command_complete("IDENTIFY_SYSTEM").unwrap();
            s.ready_for_query(TransactionStatus::Idle).unwrap();
            return;
        }
        let command = ReplicationCommand::parse(sql).expect("a replication command");
        match &command {
            ReplicationCommand::StartLogical { options, .. } => {
                let options = PgOutputOptions::from_pairs(
                    options.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
                )
                .unwrap();
                assert_eq!(options.streaming(), Streaming::On);
                s.copy_both_response(&copy_response()).unwrap();
                self.logical_changes(s);
                // Ask for an answer.
                let k = PrimaryKeepalive::new(Lsn::new(0x500), Timestamp::EPOCH, true);
                s.copy_payload(&k).unwrap();
            }
            ReplicationCommand::StartPhysical { timeline, .. } => {
                assert_eq!(*timeline, Some(1));
                s.copy_both_response(&copy_response()).unwrap();
                let x = XLogData::new(Lsn::new(0x100), Lsn::new(0x200), Timestamp::EPOCH, b"wal")
                    .unwrap();
                s.copy_payload(&x).unwrap();
                // The old timeline is over: the server ends its side first.
                s.copy_done().unwrap();
            }
            ReplicationCommand::BaseBackup { .. } => {
                one_row(s, &["recptr", "tli"], &[Some(b"0/2000028"), Some(b"1")]);
                one_row(
                    s,
                    &["spcoid", "spclocation", "size"],
                    &[None, None, Some(b"20")],
                );
                s.copy_out_response(&copy_response()).unwrap();
                for m in [
                    BaseBackupMessage::NewArchive(NewArchive::new(b"base.tar", b"").unwrap()),
                    BaseBackupMessage::Data(BackupData::new(b"tar bytes").unwrap()),
                    BaseBackupMessage::Progress(9),
                    BaseBackupMessage::Manifest,
                    BaseBackupMessage::Data(BackupData::new(b"{manifest}").unwrap()),
                ] {
                    s.copy_payload(&m).unwrap();
                }
                s.copy_done().unwrap();
                // The end position, right after CopyDone, as PostgreSQL sends it.
                one_row(s, &["recptr", "tli"], &[Some(b"0/2000100"), Some(b"1")]);
                s.command_complete("BASE_BACKUP").unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            other => panic!("{other:?}"),
        }
        self.streaming = Some(command);
    }

    fn logical_changes(&mut self, s: &mut Server) {
        let columns = [RelationColumn {
            key: true,
            name: b"id",
            type_oid: 23,
            type_modifier: -1,
        }];
        let one = [TupleValue::Text(b"1")];
        let two = [TupleValue::Text(b"2")];
        let rel = |xid| {
            Relation::new(
                xid,
                16384,
                b"public",
                b"t",
                ReplicaIdentity::Default,
                &columns,
            )
            .unwrap()
        };
        let insert = |xid, v| Insert::new(xid, 16384, TupleData::new(v).unwrap()).unwrap();
        let t = Timestamp::from_micros(1_000_000);
        let messages = [
            PgOutputMessage::Begin(Begin::new(Lsn::new(0x200), t, 740)),
            PgOutputMessage::Relation(rel(None)),
            PgOutputMessage::Insert(insert(None, &one)),
            PgOutputMessage::Commit(Commit::new(Lsn::new(0x200), Lsn::new(0x228), t)),
            PgOutputMessage::StreamStart(StreamStart::new(741, true)),
            PgOutputMessage::Relation(rel(Some(741))),
            PgOutputMessage::Insert(insert(Some(741), &two)),
            PgOutputMessage::StreamStop,
            PgOutputMessage::StreamCommit(StreamCommit::new(
                741,
                Lsn::new(0x400),
                Lsn::new(0x428),
                t,
            )),
        ];
        for (i, m) in messages.iter().enumerate() {
            xlog(s, 0x100 + i as u64, m);
        }
    }

    fn copy_done(&mut self, s: &mut Server) {
        match self.streaming.take() {
            Some(ReplicationCommand::StartLogical { .. }) => {
                s.copy_done().unwrap();
                // A walsender may still send CopyData after its CopyDone (libpq drops it).
                let k = PrimaryKeepalive::new(Lsn::new(0x500), Timestamp::EPOCH, false);
                s.copy_payload(&k).unwrap();
                s.command_complete("COPY 0").unwrap();
                s.command_complete("START_REPLICATION").unwrap();
            }
            Some(ReplicationCommand::StartPhysical { .. }) => {
                // Both sides are done: the next timeline, then the two CommandCompletes.
                one_row(
                    s,
                    &["next_tli", "next_tli_startpos"],
                    &[Some(b"2"), Some(b"0/200")],
                );
                s.command_complete("START_STREAMING").unwrap();
                s.command_complete("START_REPLICATION").unwrap();
            }
            other => panic!("CopyDone during {other:?}"),
        }
        s.ready_for_query(TransactionStatus::Idle).unwrap();
    }
}

impl Answer for Walsender {
    fn answer(&mut self, s: &mut Server, e: &ServerEvent) {
        match e {
            ServerEvent::Startup { message, .. } => {
                assert_eq!(message.param("replication"), Some(&b"database"[..]));
                s.authenticate(ServerAuth::Trust).unwrap();
            }
            ServerEvent::Message(FrontendMessage::Query(q)) => self.query(s, q.as_str().unwrap()),
            ServerEvent::Message(FrontendMessage::CopyData(d)) => {
                self.standby.push(StandbyMessage::decode(d.data()).unwrap())
            }
            ServerEvent::Message(FrontendMessage::CopyDone) => self.copy_done(s),
            _ => {}
        }
    }
}

/// The rows of a result, from owned client events.
fn rows(events: &[ClientEvent]) -> Vec<Vec<Option<Vec<u8>>>> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                message: BackendMessage::DataRow(r),
                ..
            } => Some(
                r.columns()
                    .map(|v| v.unwrap().map(<[u8]>::to_vec))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn copy_data(events: &[ClientEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                message: BackendMessage::CopyData(d),
                ..
            } => Some(d.data().to_vec()),
            _ => None,
        })
        .collect()
}

fn ready(events: &[ClientEvent]) -> bool {
    matches!(
        events.last(),
        Some(ClientEvent::Response {
            message: BackendMessage::ReadyForQuery(TransactionStatus::Idle),
            ..
        })
    )
}

fn pair(split: usize) -> Pair<Walsender> {
    let mut config = ClientConfig::new("standby");
    config.database = Some("db".into());
    config.replication = Some("database".into());
    let mut p = Pair::new(
        Client::new(config).unwrap(),
        Server::new(ServerConfig::default()),
        Walsender::default(),
    );
    p.split = Box::new(move |_, len| {
        let mut v = vec![split; len / split];
        if len % split != 0 {
            v.push(len % split);
        }
        v
    });
    p.drive();
    assert!(p.client.is_ready(), "{:?}", p.client_error);
    p.take_client_events();
    p
}

fn session(split: usize) {
    let mut p = pair(split);

    // IDENTIFY_SYSTEM's row.
    p.client.query("IDENTIFY_SYSTEM").unwrap();
    p.drive();
    let events = p.take_client_events();
    let row = &rows(&events)[0];
    let values: Vec<_> = row.iter().map(|v| v.as_deref()).collect();
    let id = IdentifySystem::from_row(&values).unwrap();
    assert_eq!((id.timeline, id.dbname.as_deref()), (1, Some("db")));

    // Logical replication: pgoutput in XLogData, a keepalive answered, CopyDone from the client.
    let options = PgOutputOptions::new(2, ["pub"])
        .unwrap()
        .with_streaming(Streaming::On)
        .unwrap();
    let start = ReplicationCommand::StartLogical {
        slot: "s".into(),
        start: Lsn::INVALID,
        options: options
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v)))
            .collect(),
    };
    p.client.query(&start.to_string()).unwrap();
    p.drive();
    let events = p.take_client_events();
    let mut decoder = PgOutputDecoder::new(&options);
    let mut names = Vec::new();
    let mut flushed = Lsn::INVALID;
    for d in copy_data(&events) {
        match PrimaryMessage::decode(&d).unwrap() {
            PrimaryMessage::XLogData(x) => {
                names.push(decoder.decode(x.data()).unwrap().name());
                flushed = x.data_end();
            }
            PrimaryMessage::PrimaryKeepalive(k) => {
                assert!(k.reply_requested());
                let reply =
                    StandbyStatusUpdate::new(flushed, flushed, flushed, Timestamp::EPOCH, false);
                p.client.copy_payload(&reply).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        names,
        [
            "Begin",
            "Relation",
            "Insert",
            "Commit",
            "StreamStart",
            "Relation",
            "Insert",
            "StreamStop",
            "StreamCommit"
        ]
    );
    p.client.copy_done().unwrap();
    p.drive();
    let events = p.take_client_events();
    assert!(ready(&events), "{events:?}");
    assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
    let [StandbyMessage::StandbyStatusUpdate(u)] = p.answer.standby[..] else {
        panic!("{:?}", p.answer.standby)
    };
    // The end of the last XLogData: a Stream Commit (30 bytes) at 0x108.
    assert_eq!(u.flush(), Lsn::new(0x108 + 30));

    // A physical stream on timeline 1, which the server ends; then the next timeline's row.
    p.client
        .query("START_REPLICATION SLOT \"p\" PHYSICAL 0/100 TIMELINE 1")
        .unwrap();
    p.drive();
    let events = p.take_client_events();
    assert!(events.iter().any(|e| matches!(
        e,
        ClientEvent::Response {
            message: BackendMessage::CopyDone,
            ..
        }
    )));
    p.client.copy_done().unwrap();
    p.drive();
    let events = p.take_client_events();
    assert!(ready(&events), "{events:?}");
    let row = &rows(&events)[0];
    let values: Vec<_> = row.iter().map(|v| v.as_deref()).collect();
    let next = TimelinePosition::from_timeline_row(&values).unwrap();
    assert_eq!((next.timeline, next.lsn), (2, Lsn::new(0x200)));

    // BASE_BACKUP: two result sets, the CopyOut, then the end position right after CopyDone.
    p.client
        .query("BASE_BACKUP (LABEL 'x', PROGRESS, MANIFEST 'yes')")
        .unwrap();
    p.drive();
    let events = p.take_client_events();
    assert!(ready(&events), "{events:?}");
    assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
    let names: Vec<_> = copy_data(&events)
        .iter()
        .map(|d| BaseBackupMessage::decode(d).unwrap().name())
        .collect();
    assert_eq!(
        names,
        [
            "BackupNewArchive",
            "BackupData",
            "BackupProgress",
            "BackupManifest",
            "BackupData"
        ]
    );
    let rows = rows(&events);
    assert_eq!(rows.len(), 3);
    let end: Vec<_> = rows[2].iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        TimelinePosition::from_lsn_row(&end).unwrap().lsn,
        Lsn::new(0x200_0100)
    );
}

#[test]
fn walsender_and_standby_in_memory() {
    session(1 << 20);
}

#[test]
fn walsender_and_standby_in_memory_one_byte_at_a_time() {
    session(1);
}

#[test]
fn reads_of_seven_bytes() {
    session(7);
}
