//! The replication messages inside CopyData: which COPY a CopyData belongs to, what it carries,
//! and one line per message.
//!
//! The client stream tells what each COPY carries: the simple Query that started it is a
//! replication command (`START_REPLICATION ... PHYSICAL`, `START_REPLICATION ... LOGICAL` with
//! pgoutput's `proto_version` and options, or `BASE_BACKUP`), read with
//! [`ReplicationCommand::parse`]. On the server side, the k-th Query is the one answered until
//! the (k+1)-th ReadyForQuery (the first ends start-up); on the client side, a CopyData belongs
//! to the last Query before it. A CopyData of any other COPY is not looked into.
//!
//! After the line of each such CopyData, one line per replication message inside it, indented
//! by two spaces, `C|S <offset> <Name> <detail>` with the CopyData frame's offset; the
//! pgoutput message inside an XLogData gets a further line indented by four spaces. A payload
//! that does not decode is an error; with `--check`, each nested message is re-encoded from its
//! decoded value and compared with its bytes.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use pgproto::replication::pgoutput::{
    OldTuple, PgOutputDecoder, PgOutputMessage, PgOutputOptions, TupleData, TupleValue,
};
use pgproto::replication::{
    BaseBackupMessage, Lsn, Payload, PrimaryMessage, ReplicationCommand, StandbyMessage, Timestamp,
};
use pgproto::{BackendMessage, FrontendMessage};

use crate::streams::{bare, hex, plural, quote, word, Connection};

/// Characters of a value shown before it is cut.
const VALUE_MAX: usize = 20;
/// Values of a row shown before the rest is summarised.
const ROW_MAX: usize = 6;

/// What a COPY carries.
#[derive(Debug, Clone)]
enum Carried {
    Physical,
    /// pgoutput with these options.
    Pgoutput(PgOutputOptions),
    /// Another output plugin, or pgoutput options that do not parse: XLogData is not looked
    /// into.
    OtherPlugin,
    BaseBackup,
    Other,
}

fn carried(sql: &[u8]) -> Carried {
    let Ok(sql) = std::str::from_utf8(sql) else {
        return Carried::Other;
    };
    match ReplicationCommand::parse(sql) {
        Some(ReplicationCommand::StartPhysical { .. }) => Carried::Physical,
        Some(ReplicationCommand::StartLogical { options, .. }) => {
            match PgOutputOptions::from_pairs(
                options.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            ) {
                Ok(o) => Carried::Pgoutput(o),
                Err(_) => Carried::OtherPlugin,
            }
        }
        Some(ReplicationCommand::BaseBackup { .. }) => Carried::BaseBackup,
        _ => Carried::Other,
    }
}

/// The nested lines of every CopyData that carries replication messages, by the CopyData's
/// index in its stream, and the problems found.
#[derive(Debug, Default)]
pub(crate) struct Nested {
    /// Client message index -> lines.
    pub(crate) client: HashMap<usize, Vec<String>>,
    /// Server message index -> lines.
    pub(crate) server: HashMap<usize, Vec<String>>,
    /// (side, offset, reason) of each payload that does not decode or (with `check`)
    /// re-encode.
    pub(crate) errors: Vec<(&'static str, usize, String)>,
}

/// Decodes the replication messages of `conn`.
pub(crate) fn nested(conn: &Connection, check: bool) -> Nested {
    let mut n = Nested::default();
    // The client's Queries in order, and what its CopyData carry.
    let mut queries = Vec::new();
    let mut client_carried = Carried::Other;
    for (i, d) in conn.client.messages.iter().enumerate() {
        match &d.message {
            FrontendMessage::Query(q) => {
                client_carried = carried(q.sql());
                queries.push(client_carried.clone());
            }
            FrontendMessage::CopyData(c) => {
                if !matches!(
                    client_carried,
                    Carried::Physical | Carried::Pgoutput(_) | Carried::OtherPlugin
                ) {
                    continue;
                }
                let at = d.offset;
                match StandbyMessage::decode(c.data()) {
                    Ok(m) => {
                        n.client
                            .insert(i, vec![line(2, 'C', at, m.name(), &standby(&m))]);
                        same(&mut n.errors, "client", at, check, &m, c.data());
                    }
                    Err(e) => n.errors.push(("client", at, format!("CopyData: {e}"))),
                }
            }
            _ => {}
        }
    }
    // The server: the query being answered moves on at each ReadyForQuery.
    let mut ready = 0usize;
    let mut current = Carried::Other;
    let mut pg: Option<PgOutputDecoder> = None;
    for (i, d) in conn.server.messages.iter().enumerate() {
        match &d.message {
            BackendMessage::ReadyForQuery(_) => {
                ready += 1;
                current = Carried::Other;
                pg = None;
            }
            BackendMessage::CopyBothResponse(_) | BackendMessage::CopyOutResponse(_) => {
                current = ready
                    .checked_sub(1)
                    .and_then(|q| queries.get(q))
                    .cloned()
                    .unwrap_or(Carried::Other);
                pg = match &current {
                    Carried::Pgoutput(o) => Some(PgOutputDecoder::new(o)),
                    _ => None,
                };
            }
            BackendMessage::CopyData(c) => {
                let at = d.offset;
                let lines = match &current {
                    Carried::Physical | Carried::Pgoutput(_) | Carried::OtherPlugin => {
                        primary(&mut n.errors, at, check, c.data(), pg.as_mut())
                    }
                    Carried::BaseBackup => match BaseBackupMessage::decode(c.data()) {
                        Ok(m) => {
                            same(&mut n.errors, "server", at, check, &m, c.data());
                            vec![line(2, 'S', at, m.name(), &backup(&m))]
                        }
                        Err(e) => {
                            n.errors.push(("server", at, format!("CopyData: {e}")));
                            Vec::new()
                        }
                    },
                    Carried::Other => Vec::new(),
                };
                if !lines.is_empty() {
                    n.server.insert(i, lines);
                }
            }
            _ => {}
        }
    }
    n
}

/// The lines of one CopyData from the primary; problems go to `errors`.
fn primary(
    errors: &mut Vec<(&'static str, usize, String)>,
    at: usize,
    check: bool,
    data: &[u8],
    pg: Option<&mut PgOutputDecoder>,
) -> Vec<String> {
    let m = match PrimaryMessage::decode(data) {
        Ok(m) => m,
        Err(e) => {
            errors.push(("server", at, format!("CopyData: {e}")));
            return Vec::new();
        }
    };
    same(errors, "server", at, check, &m, data);
    let mut lines = vec![line(2, 'S', at, m.name(), &primary_detail(&m))];
    if let (PrimaryMessage::XLogData(x), Some(dec)) = (m, pg) {
        match dec.decode(x.data()) {
            Ok(p) => {
                same(errors, "server", at, check, &p, x.data());
                lines.push(line(4, 'S', at, p.name(), &pgoutput(&p)));
            }
            Err(e) => errors.push(("server", at, format!("XLogData: pgoutput: {e}"))),
        }
    }
    lines
}

/// With `check`, re-encodes `m` and compares it with `bytes`.
fn same(
    errors: &mut Vec<(&'static str, usize, String)>,
    side: &'static str,
    at: usize,
    check: bool,
    m: &impl Payload,
    bytes: &[u8],
) {
    if !check {
        return;
    }
    let mut out = BytesMut::new();
    m.encode_payload(&mut out);
    if out[..] != *bytes || m.payload_len() != bytes.len() {
        errors.push((
            side,
            at,
            format!(
                "a replication message in CopyData re-encodes to {} bytes that differ from its \
                 {} original bytes",
                out.len(),
                bytes.len()
            ),
        ));
    }
}

fn line(indent: usize, side: char, at: usize, name: &str, detail: &str) -> String {
    let pad = " ".repeat(indent);
    if detail.is_empty() {
        format!("{pad}{side} {at} {name}")
    } else {
        format!("{pad}{side} {at} {name} {detail}")
    }
}

fn lsn(l: Lsn) -> String {
    l.to_string()
}

fn time(t: Timestamp) -> String {
    t.to_string()
}

fn primary_detail(m: &PrimaryMessage<'_>) -> String {
    match m {
        PrimaryMessage::XLogData(x) => format!(
            "start {}, end {}, time {}, {}",
            lsn(x.wal_start()),
            lsn(x.wal_end()),
            time(x.send_time()),
            plural(x.data().len(), "byte", "bytes")
        ),
        PrimaryMessage::PrimaryKeepalive(k) => format!(
            "end {}, time {}{}",
            lsn(k.wal_end()),
            time(k.send_time()),
            if k.reply_requested() {
                ", reply requested"
            } else {
                ""
            }
        ),
        PrimaryMessage::PrimaryStatusUpdate(s) => format!(
            "write {}, oldest xid in commit {}, next xid {}, time {}",
            lsn(s.write_lsn()),
            s.oldest_xid_in_commit(),
            s.next_xid(),
            time(s.send_time())
        ),
        _ => String::new(),
    }
}

fn standby(m: &StandbyMessage) -> String {
    match m {
        StandbyMessage::StandbyStatusUpdate(u) => format!(
            "write {}, flush {}, apply {}, time {}{}",
            lsn(u.write()),
            lsn(u.flush()),
            lsn(u.apply()),
            time(u.send_time()),
            if u.reply_requested() {
                ", reply requested"
            } else {
                ""
            }
        ),
        StandbyMessage::HotStandbyFeedback(h) => format!(
            "xmin {}:{}, catalog xmin {}:{}, time {}",
            h.xmin_epoch(),
            h.xmin(),
            h.catalog_xmin_epoch(),
            h.catalog_xmin(),
            time(h.send_time())
        ),
        StandbyMessage::PrimaryStatusRequest(r) => format!("time {}", time(r.send_time())),
        _ => String::new(),
    }
}

fn backup(m: &BaseBackupMessage<'_>) -> String {
    match m {
        BaseBackupMessage::NewArchive(a) => {
            let mut s = quote(a.name(), 60);
            if !a.location().is_empty() {
                let _ = write!(s, ", location {}", quote(a.location(), 60));
            }
            s
        }
        BaseBackupMessage::Data(d) => plural(d.data().len(), "byte", "bytes"),
        BaseBackupMessage::Progress(n) => format!("{n} bytes done"),
        _ => String::new(),
    }
}

/// `xid N, ` when the message carries a streamed transaction's xid.
fn xid(x: Option<u32>) -> String {
    x.map_or_else(String::new, |x| format!("xid {x}, "))
}

fn tuple(t: TupleData<'_>) -> String {
    let mut items: Vec<String> = t
        .values()
        .take(ROW_MAX)
        .map(|v| match v {
            TupleValue::Null => "null".to_owned(),
            TupleValue::UnchangedToast => "unchanged-toast".to_owned(),
            TupleValue::Text(b) => quote(b, VALUE_MAX),
            TupleValue::Binary(b) => hex(b, VALUE_MAX / 2),
        })
        .collect();
    if t.len() > ROW_MAX {
        items.push(format!("... {} more", t.len() - ROW_MAX));
    }
    format!("({})", items.join(", "))
}

fn old(o: OldTuple<'_>) -> String {
    match o {
        OldTuple::Key(t) => format!("key {}", tuple(t)),
        OldTuple::Full(t) => format!("old {}", tuple(t)),
    }
}

fn pgoutput(m: &PgOutputMessage<'_>) -> String {
    use PgOutputMessage as M;
    match m {
        M::Begin(b) => format!(
            "xid {}, final {}, time {}",
            b.xid(),
            lsn(b.final_lsn()),
            time(b.commit_time())
        ),
        M::Message(m) => format!(
            "{}{}, lsn {}, prefix {}, {} {}",
            xid(m.xid()),
            if m.transactional() {
                "transactional"
            } else {
                "non-transactional"
            },
            lsn(m.lsn()),
            quote(m.prefix(), 40),
            plural(m.content().len(), "byte", "bytes"),
            quote(m.content(), 40)
        ),
        M::Commit(c) => format!(
            "commit {}, end {}, time {}",
            lsn(c.commit_lsn()),
            lsn(c.end_lsn()),
            time(c.commit_time())
        ),
        M::Origin(o) => format!("{} at {}", quote(o.name(), 40), lsn(o.commit_lsn())),
        M::Relation(r) => {
            let mut s = format!(
                "{}{}.{} (oid {}, replica identity {}):",
                xid(r.xid()),
                word(r.namespace(), 40),
                word(r.name(), 40),
                r.oid(),
                bare(&[r.replica_identity().byte()], 1)
            );
            let cols: Vec<String> = r
                .columns()
                .map(|c| {
                    let mut s = format!("{} type {}", word(c.name, 40), c.type_oid);
                    if c.type_modifier != -1 {
                        let _ = write!(s, "({})", c.type_modifier);
                    }
                    if c.key {
                        s.push_str(" key");
                    }
                    s
                })
                .collect();
            if cols.is_empty() {
                s.push_str(" no columns");
            } else {
                let _ = write!(s, " {}", cols.join(", "));
            }
            s
        }
        M::Type(t) => format!(
            "{}oid {} {}.{}",
            xid(t.xid()),
            t.oid(),
            word(t.namespace(), 40),
            word(t.name(), 40)
        ),
        M::Insert(i) => format!(
            "{}relation {}, new {}",
            xid(i.xid()),
            i.relation(),
            tuple(i.new_tuple())
        ),
        M::Update(u) => {
            let mut s = format!("{}relation {}, ", xid(u.xid()), u.relation());
            if let Some(o) = u.old() {
                let _ = write!(s, "{}, ", old(o));
            }
            let _ = write!(s, "new {}", tuple(u.new_tuple()));
            s
        }
        M::Delete(d) => format!(
            "{}relation {}, {}",
            xid(d.xid()),
            d.relation(),
            old(d.old())
        ),
        M::Truncate(t) => {
            let rels: Vec<String> = t.relations().map(|r| r.to_string()).collect();
            let mut s = format!(
                "{}{} {}",
                xid(t.xid()),
                if rels.len() == 1 {
                    "relation"
                } else {
                    "relations"
                },
                rels.join(",")
            );
            if t.cascade() {
                s.push_str(", cascade");
            }
            if t.restart_identity() {
                s.push_str(", restart identity");
            }
            s
        }
        M::StreamStart(s) => format!(
            "xid {}{}",
            s.xid(),
            if s.first_segment() {
                ", first segment"
            } else {
                ""
            }
        ),
        M::StreamCommit(c) => format!(
            "xid {}, commit {}, end {}, time {}",
            c.xid(),
            lsn(c.commit_lsn()),
            lsn(c.end_lsn()),
            time(c.commit_time())
        ),
        M::StreamAbort(a) => {
            let mut s = format!("xid {}, subxid {}", a.xid(), a.subxid());
            if let Some((l, t)) = a.abort() {
                let _ = write!(s, ", abort {} at {}", lsn(l), time(t));
            }
            s
        }
        M::BeginPrepare(p) | M::Prepare(p) | M::CommitPrepared(p) | M::StreamPrepare(p) => {
            format!(
                "xid {}, gid {}, lsn {}, end {}, time {}",
                p.xid(),
                quote(p.gid(), 40),
                lsn(p.lsn()),
                lsn(p.end_lsn()),
                time(p.time())
            )
        }
        M::RollbackPrepared(r) => format!(
            "xid {}, gid {}, prepare end {}, rollback end {}, prepared {}, rolled back {}",
            r.xid(),
            quote(r.gid(), 40),
            lsn(r.prepare_end_lsn()),
            lsn(r.rollback_end_lsn()),
            time(r.prepare_time()),
            time(r.rollback_time())
        ),
        _ => String::new(),
    }
}
