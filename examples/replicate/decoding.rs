//! pgoutput messages in, test_decoding's lines out: the output of `pg_recvlogical
//! --plugin=test_decoding -o skip-empty-xacts=1` (xids on, timestamps off) for the same
//! changes.
//!
//! What test_decoding prints, and how it is made from pgoutput:
//!
//! - `BEGIN xid` before the first change of a transaction and `COMMIT xid` after it, only
//!   around a transaction with a change (skip-empty-xacts). On PostgreSQL 17 and later a
//!   transactional logical message counts as a change (it opens BEGIN); before, it is printed
//!   without opening one.
//! - `table ns.name: INSERT: col[type]:value ...`, `UPDATE: [old-key: ... new-tuple:] ...`,
//!   `DELETE: ...` (the old row's non-null columns), `table a, b: TRUNCATE: restart_seqs
//!   cascade` or `(no-flags)`. Names are quoted as `quote_identifier` does, types are
//!   `format_type(oid, NULL)` (looked up by the caller), values quoted by the column's exact
//!   type OID, `null`, `unchanged-toast-datum`.
//! - `message: transactional: 0|1 prefix: P, sz: N content:` and the raw content. A
//!   non-transactional message is printed when it arrives, outside any transaction.
//! - Two-phase: `PREPARE TRANSACTION 'gid', txid N` after a prepared transaction with changes,
//!   `COMMIT PREPARED 'gid', txid N` and `ROLLBACK PREPARED 'gid', txid N` always.
//! - A streamed transaction is not printed until it ends: its changes are kept by the
//!   subtransaction they carry, a Stream Abort drops the subtransaction's (or, for the
//!   transaction itself, all of them), and Stream Commit or Stream Prepare prints the
//!   transaction as if it had not been streamed. So the output does not depend on `streaming`.

use std::collections::HashMap;

use pgproto::replication::pgoutput::{OldTuple, PgOutputMessage, Relation, TupleData, TupleValue};

use crate::names::{push_literal, quote_identifier, quote_literal, quote_qualified};

/// A column of a relation.
#[derive(Debug, Clone)]
struct Column {
    name: Vec<u8>,
    type_oid: u32,
}

/// A relation as its last Relation message described it.
#[derive(Debug, Clone)]
struct Rel {
    /// `ns.name`, quoted.
    qualified: Vec<u8>,
    columns: Vec<Column>,
}

/// A transaction being printed or kept.
#[derive(Debug, Default)]
struct Txn {
    xid: u32,
    /// Whether BEGIN was printed (or, for a kept stream, whether it has a change).
    wrote: bool,
}

/// A streamed transaction's changes so far: (subtransaction xid, line).
#[derive(Debug, Default)]
struct Stream {
    lines: Vec<(u32, Vec<u8>)>,
}

/// Turns pgoutput messages into test_decoding's lines.
#[derive(Debug)]
pub(crate) struct Printer {
    relations: HashMap<u32, Rel>,
    /// `format_type(oid, NULL)` of every type seen, from the caller.
    types: HashMap<u32, Vec<u8>>,
    /// The transaction open between Begin (or Begin Prepare) and its end.
    txn: Option<Txn>,
    /// Streamed transactions by xid.
    streams: HashMap<u32, Stream>,
    /// The transaction of the stream segment open now.
    segment: Option<u32>,
    /// Whether a transactional message opens BEGIN (PostgreSQL 17 and later).
    message_opens_begin: bool,
}

/// Why a message cannot be printed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrintError {
    /// A change to a relation no Relation message described.
    #[error("change to unknown relation {0}")]
    UnknownRelation(u32),
    /// A column type whose name was not looked up.
    #[error("unknown type {0}")]
    UnknownType(u32),
    /// A binary value (the `binary` option is not asked for).
    #[error("binary column value in relation {0}")]
    Binary(u32),
    /// A row with more values than the relation has columns.
    #[error("a row of relation {0} has more values than columns")]
    Columns(u32),
}

impl Printer {
    /// A printer for a server of major version `server_major`.
    pub(crate) fn new(server_major: u32) -> Self {
        Self {
            relations: HashMap::new(),
            types: HashMap::new(),
            txn: None,
            streams: HashMap::new(),
            segment: None,
            message_opens_begin: server_major >= 17,
        }
    }

    /// The column types of `r` whose names are not known yet.
    pub(crate) fn unknown_types(&self, r: &Relation<'_>) -> Vec<u32> {
        let mut v: Vec<u32> = r
            .columns()
            .map(|c| c.type_oid)
            .filter(|t| !self.types.contains_key(t))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Records type names (`format_type(oid, NULL)`).
    pub(crate) fn add_types(&mut self, names: impl IntoIterator<Item = (u32, Vec<u8>)>) {
        self.types.extend(names);
    }

    /// Handles one message; appends the lines to print (without newlines) to `out`.
    pub(crate) fn handle(
        &mut self,
        m: &PgOutputMessage<'_>,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), PrintError> {
        use PgOutputMessage as M;
        match m {
            M::Begin(b) => self.begin(b.xid()),
            M::BeginPrepare(p) => self.begin(p.xid()),
            M::Commit(_) => {
                if let Some(t) = self.txn.take().filter(|t| t.wrote) {
                    out.push(format!("COMMIT {}", t.xid).into_bytes());
                }
            }
            M::Prepare(p) => {
                if let Some(t) = self.txn.take().filter(|t| t.wrote) {
                    out.push(prepare_line(p.gid(), t.xid));
                }
            }
            M::CommitPrepared(p) => out.push(two_phase_line(b"COMMIT PREPARED ", p.gid(), p.xid())),
            M::RollbackPrepared(r) => {
                out.push(two_phase_line(b"ROLLBACK PREPARED ", r.gid(), r.xid()))
            }
            M::Relation(r) => {
                let columns = r
                    .columns()
                    .map(|c| Column {
                        name: c.name.to_vec(),
                        type_oid: c.type_oid,
                    })
                    .collect();
                self.relations.insert(
                    r.oid(),
                    Rel {
                        qualified: quote_qualified(r.namespace(), r.name()),
                        columns,
                    },
                );
            }
            M::Type(_) | M::Origin(_) => {}
            M::Insert(i) => {
                let mut line = self.table(i.relation())?;
                line.extend_from_slice(b" INSERT:");
                self.tuple(&mut line, i.relation(), i.new_tuple(), false)?;
                self.change(i.xid(), line, true, out);
            }
            M::Update(u) => {
                let mut line = self.table(u.relation())?;
                line.extend_from_slice(b" UPDATE:");
                if let Some(old) = u.old() {
                    line.extend_from_slice(b" old-key:");
                    self.tuple(&mut line, u.relation(), old_tuple(old), true)?;
                    line.extend_from_slice(b" new-tuple:");
                }
                self.tuple(&mut line, u.relation(), u.new_tuple(), false)?;
                self.change(u.xid(), line, true, out);
            }
            M::Delete(d) => {
                let mut line = self.table(d.relation())?;
                line.extend_from_slice(b" DELETE:");
                self.tuple(&mut line, d.relation(), old_tuple(d.old()), true)?;
                self.change(d.xid(), line, true, out);
            }
            M::Truncate(t) => {
                let mut line = b"table ".to_vec();
                for (i, oid) in t.relations().enumerate() {
                    if i > 0 {
                        line.extend_from_slice(b", ");
                    }
                    let rel = self
                        .relations
                        .get(&oid)
                        .ok_or(PrintError::UnknownRelation(oid))?;
                    line.extend_from_slice(&rel.qualified);
                }
                line.extend_from_slice(b": TRUNCATE:");
                if t.restart_identity() {
                    line.extend_from_slice(b" restart_seqs");
                }
                if t.cascade() {
                    line.extend_from_slice(b" cascade");
                }
                if !t.restart_identity() && !t.cascade() {
                    line.extend_from_slice(b" (no-flags)");
                }
                self.change(t.xid(), line, true, out);
            }
            M::Message(msg) => {
                let mut line = format!(
                    "message: transactional: {} prefix: ",
                    u8::from(msg.transactional())
                )
                .into_bytes();
                line.extend_from_slice(msg.prefix());
                line.extend_from_slice(
                    format!(", sz: {} content:", msg.content().len()).as_bytes(),
                );
                line.extend_from_slice(msg.content());
                if msg.transactional() {
                    let opens = self.message_opens_begin;
                    self.change(msg.xid(), line, opens, out);
                } else {
                    out.push(line);
                }
            }
            M::StreamStart(s) => {
                self.streams.entry(s.xid()).or_default();
                self.segment = Some(s.xid());
            }
            M::StreamStop => self.segment = None,
            M::StreamAbort(a) => {
                if a.subxid() == a.xid() {
                    self.streams.remove(&a.xid());
                } else if let Some(s) = self.streams.get_mut(&a.xid()) {
                    s.lines.retain(|(sub, _)| *sub != a.subxid());
                }
            }
            M::StreamCommit(c) => {
                let lines = self.streams.remove(&c.xid()).unwrap_or_default().lines;
                self.replay(c.xid(), lines, out, |xid| {
                    format!("COMMIT {xid}").into_bytes()
                });
            }
            M::StreamPrepare(p) => {
                let lines = self.streams.remove(&p.xid()).unwrap_or_default().lines;
                let gid = p.gid().to_vec();
                self.replay(p.xid(), lines, out, |xid| prepare_line(&gid, xid));
            }
            _ => {}
        }
        Ok(())
    }

    fn begin(&mut self, xid: u32) {
        self.txn = Some(Txn { xid, wrote: false });
    }

    /// A change line: kept when a stream segment is open, printed otherwise (after BEGIN, if
    /// `opens` and it is the first).
    fn change(&mut self, xid: Option<u32>, line: Vec<u8>, opens: bool, out: &mut Vec<Vec<u8>>) {
        if let Some(top) = self.segment {
            let sub = xid.unwrap_or(top);
            self.streams.entry(top).or_default().lines.push((sub, line));
            return;
        }
        if let Some(t) = self.txn.as_mut() {
            if opens && !t.wrote {
                out.push(format!("BEGIN {}", t.xid).into_bytes());
                t.wrote = true;
            }
        }
        out.push(line);
    }

    /// Prints a streamed transaction that ended, as if it had not been streamed.
    fn replay(
        &self,
        xid: u32,
        lines: Vec<(u32, Vec<u8>)>,
        out: &mut Vec<Vec<u8>>,
        end: impl FnOnce(u32) -> Vec<u8>,
    ) {
        let mut opened = false;
        for (_, line) in lines {
            let opens = !line.starts_with(b"message: ") || self.message_opens_begin;
            if opens && !opened {
                out.push(format!("BEGIN {xid}").into_bytes());
                opened = true;
            }
            out.push(line);
        }
        if opened {
            out.push(end(xid));
        }
    }

    /// `table ns.name:`
    fn table(&self, oid: u32) -> Result<Vec<u8>, PrintError> {
        let rel = self
            .relations
            .get(&oid)
            .ok_or(PrintError::UnknownRelation(oid))?;
        let mut line = b"table ".to_vec();
        line.extend_from_slice(&rel.qualified);
        line.push(b':');
        Ok(line)
    }

    /// ` col[type]:value` for each column (the non-null ones if `skip_nulls`).
    fn tuple(
        &self,
        line: &mut Vec<u8>,
        oid: u32,
        t: TupleData<'_>,
        skip_nulls: bool,
    ) -> Result<(), PrintError> {
        let rel = self
            .relations
            .get(&oid)
            .ok_or(PrintError::UnknownRelation(oid))?;
        if t.len() > rel.columns.len() {
            return Err(PrintError::Columns(oid));
        }
        for (v, c) in t.values().zip(&rel.columns) {
            if skip_nulls && v == TupleValue::Null {
                continue;
            }
            line.push(b' ');
            line.extend(quote_identifier(&c.name));
            line.push(b'[');
            line.extend_from_slice(
                self.types
                    .get(&c.type_oid)
                    .ok_or(PrintError::UnknownType(c.type_oid))?,
            );
            line.extend_from_slice(b"]:");
            match v {
                TupleValue::Null => line.extend_from_slice(b"null"),
                TupleValue::UnchangedToast => line.extend_from_slice(b"unchanged-toast-datum"),
                TupleValue::Text(text) => push_literal(line, c.type_oid, text),
                TupleValue::Binary(_) => return Err(PrintError::Binary(oid)),
            }
        }
        Ok(())
    }
}

fn old_tuple(o: OldTuple<'_>) -> TupleData<'_> {
    o.tuple()
}

fn prepare_line(gid: &[u8], xid: u32) -> Vec<u8> {
    two_phase_line(b"PREPARE TRANSACTION ", gid, xid)
}

fn two_phase_line(what: &[u8], gid: &[u8], xid: u32) -> Vec<u8> {
    let mut line = what.to_vec();
    line.extend(quote_literal(gid));
    line.extend_from_slice(format!(", txid {xid}").as_bytes());
    line
}
