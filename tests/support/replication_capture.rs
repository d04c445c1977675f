//! What the CopyData of a recorded replication connection carry, for the tests that decode real
//! replication traffic: the Query that started each COPY (`START_REPLICATION ... PHYSICAL` or
//! `LOGICAL`, `BASE_BACKUP`) tells how to read its CopyData, as `inspect` does.
//!
//! Built on [`capture::decode`](super::capture::decode); uses the public API only.

use bytes::{Bytes, BytesMut};
use pgproto::replication::pgoutput::{PgOutputDecoder, PgOutputMessage, PgOutputOptions};
use pgproto::replication::{
    BaseBackupMessage, Payload, PrimaryMessage, ReplicationCommand, StandbyMessage,
};
use pgproto::{BackendMessage, FrontendMessage};

use super::capture::Connection;

/// What a COPY carries.
#[derive(Debug, Clone)]
pub(crate) enum Carried {
    /// `START_REPLICATION ... PHYSICAL`.
    Physical,
    /// `START_REPLICATION ... LOGICAL` with pgoutput.
    Logical(PgOutputOptions),
    /// `START_REPLICATION ... LOGICAL` with other plugin options.
    OtherPlugin,
    /// `BASE_BACKUP`.
    BaseBackup,
    /// Something else (COPY of a table, ...).
    Other,
}

/// What a Query's text says its COPY carries.
pub(crate) fn carried(sql: &str) -> Carried {
    match ReplicationCommand::parse(sql) {
        Some(ReplicationCommand::StartPhysical { .. }) => Carried::Physical,
        Some(ReplicationCommand::StartLogical { options, .. }) => {
            match PgOutputOptions::from_pairs(
                options.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            ) {
                Ok(o) => Carried::Logical(o),
                Err(_) => Carried::OtherPlugin,
            }
        }
        Some(ReplicationCommand::BaseBackup { .. }) => Carried::BaseBackup,
        _ => Carried::Other,
    }
}

/// A decoded replication message, owned: its name, the message re-encoded (checked equal to
/// the bytes it came from), and the decoded value's debug text.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The message's name (`XLogData`, `Insert`, `BackupData`...).
    pub(crate) name: &'static str,
    /// Its payload.
    pub(crate) bytes: Bytes,
    /// `{:?}` of the decoded message.
    pub(crate) debug: String,
    /// For XLogData, the pgoutput message inside it (logical replication).
    pub(crate) inner: Option<Box<Self>>,
}

/// The replication messages of one COPY.
#[derive(Debug, Clone)]
pub(crate) struct CopySession {
    /// The Query that started it.
    pub(crate) query: String,
    /// How its CopyData were read.
    pub(crate) carried: Carried,
    /// The server's messages in order.
    pub(crate) server: Vec<Item>,
    /// The client's messages in order.
    pub(crate) client: Vec<Item>,
}

impl CopySession {
    /// The names of the server's messages, with the pgoutput message inside each XLogData in
    /// its place (so `["XLogData", "Begin", ...]` reads as `Begin`, ...): the names of the
    /// innermost messages.
    pub(crate) fn inner_names(&self) -> Vec<&'static str> {
        self.server
            .iter()
            .map(|i| i.inner.as_ref().map_or(i.name, |inner| inner.name))
            .collect()
    }

    /// How many server messages (innermost) have `name`.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.inner_names().iter().filter(|n| **n == name).count()
    }

    /// The decoded pgoutput messages' debug texts.
    pub(crate) fn pgoutput(&self) -> impl Iterator<Item = &Item> {
        self.server.iter().filter_map(|i| i.inner.as_deref())
    }
}

fn item(name: &'static str, m: &impl Payload, bytes: &[u8], debug: String) -> Result<Item, String> {
    let mut out = BytesMut::new();
    m.encode_payload(&mut out);
    if out[..] != *bytes {
        return Err(format!("{name} re-encodes to other bytes: {debug}"));
    }
    if m.payload_len() != bytes.len() {
        return Err(format!(
            "{name}: payload_len() {} != {}",
            m.payload_len(),
            bytes.len()
        ));
    }
    Ok(Item {
        name,
        bytes: Bytes::copy_from_slice(bytes),
        debug,
        inner: None,
    })
}

/// Decodes the CopyData of every replication COPY of `conn`, checking that each message
/// re-encodes to its bytes. An error names the message that failed.
pub(crate) fn copy_sessions(conn: &Connection) -> Result<Vec<CopySession>, String> {
    // The client's Queries, and the CopyData it sent after each.
    let mut queries: Vec<(String, Vec<Bytes>)> = Vec::new();
    for d in &conn.client.messages {
        match &d.message {
            FrontendMessage::Query(q) => {
                queries.push((String::from_utf8_lossy(q.sql()).into_owned(), Vec::new()))
            }
            FrontendMessage::CopyData(c) => {
                if let Some((_, copies)) = queries.last_mut() {
                    copies.push(bytes::Bytes::copy_from_slice(c.data()));
                }
            }
            _ => {}
        }
    }
    // The server: ReadyForQuery ends start-up, then one Query each.
    let mut ready = 0usize;
    let mut sessions: Vec<CopySession> = Vec::new();
    let mut current: Option<usize> = None;
    let mut pg: Option<PgOutputDecoder> = None;
    for d in &conn.server.messages {
        match &d.message {
            BackendMessage::ReadyForQuery(_) => {
                ready += 1;
                current = None;
            }
            BackendMessage::CopyBothResponse(_) | BackendMessage::CopyOutResponse(_) => {
                let Some((sql, _)) = ready.checked_sub(1).and_then(|i| queries.get(i)) else {
                    return Err("a COPY before any Query".into());
                };
                let carried = carried(sql);
                pg = match &carried {
                    Carried::Logical(o) => Some(PgOutputDecoder::new(o)),
                    _ => None,
                };
                sessions.push(CopySession {
                    query: sql.clone(),
                    carried,
                    server: Vec::new(),
                    client: Vec::new(),
                });
                current = Some(sessions.len() - 1);
            }
            BackendMessage::CopyData(c) => {
                let Some(s) = current.and_then(|i| sessions.get_mut(i)) else {
                    continue;
                };
                let data = c.data();
                let at = d.offset;
                let fail = |e: pgproto::DecodeError| format!("server CopyData at {at}: {e}");
                let decoded = match &s.carried {
                    Carried::Physical | Carried::Logical(_) | Carried::OtherPlugin => {
                        let m = PrimaryMessage::decode(data).map_err(fail)?;
                        let mut it = item(m.name(), &m, data, format!("{m:?}"))?;
                        if let (PrimaryMessage::XLogData(x), Some(dec)) = (m, pg.as_mut()) {
                            let inner = dec.decode(x.data()).map_err(fail)?;
                            it.inner = Some(Box::new(item(
                                inner.name(),
                                &inner,
                                x.data(),
                                format!("{inner:?}"),
                            )?));
                        }
                        it
                    }
                    Carried::BaseBackup => {
                        let m = BaseBackupMessage::decode(data).map_err(fail)?;
                        item(m.name(), &m, data, format!("{m:?}"))?
                    }
                    Carried::Other => continue,
                };
                s.server.push(decoded);
            }
            _ => {}
        }
    }
    // The client's CopyData of each replication Query.
    let mut next = 0;
    for (sql, copies) in &queries {
        if copies.is_empty() {
            continue;
        }
        let Some(s) = sessions[next..].iter_mut().find(|s| s.query == *sql) else {
            return Err(format!("client CopyData after a Query with no COPY: {sql}"));
        };
        for c in copies {
            let m = StandbyMessage::decode(c).map_err(|e| format!("client CopyData: {e}"))?;
            s.client.push(item(m.name(), &m, c, format!("{m:?}"))?);
        }
        next += 1;
    }
    Ok(sessions)
}

/// The pgoutput messages of a session as the values tests look at: the decoded message, from
/// its re-encoded bytes and the session's options.
pub(crate) fn reparse<'a>(
    options: &PgOutputOptions,
    items: &'a [Item],
) -> Vec<PgOutputMessage<'a>> {
    let mut dec = PgOutputDecoder::new(options);
    items
        .iter()
        .filter_map(|i| i.inner.as_deref())
        .map(|i| dec.decode(&i.bytes).expect("decoded once already"))
        .collect()
}
