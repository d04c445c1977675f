//! `replicate logical`: pgoutput from a logical slot, printed as test_decoding prints it.
//!
//! Like `pg_recvlogical --start`: one replication connection (`replication=database`) that may
//! create the slot, then `START_REPLICATION SLOT ... LOGICAL` with pgoutput's options exactly
//! as given (the server judges them), and a second, normal connection for the catalog lookups
//! (`format_type(oid, NULL)` with an empty `search_path`, as the walsender of pg_recvlogical
//! has). Standby status updates go out as pg_recvlogical sends them: at the start, every 10
//! seconds, when the server asks, and on the way out, with the position of the last message
//! written as write and flush positions. `--end`: a message past it is not printed and ends the
//! run, as does a message at it (after printing) or a keepalive whose WAL end reaches it; the
//! last status update then confirms `--end`, so that a later run on the slot carries on.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use pgproto::replication::pgoutput::{PgOutputDecoder, PgOutputMessage, PgOutputOptions};
use pgproto::replication::{
    Lsn, PrimaryMessage, ReplicationCommand, StandbyStatusUpdate, Timestamp,
};

use crate::conn::{text, Conn, CopyEvent, Started};
use crate::conninfo::ConnInfo;
use crate::decoding::Printer;
use crate::names::quote_identifier;
use crate::results::DriverError;
use crate::Failure;

/// How often a status update goes out when nothing else prompts one (pg_recvlogical's
/// default `--status-interval`).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// The `logical` command line.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) conninfo: String,
    pub(crate) slot: String,
    pub(crate) create_slot: bool,
    pub(crate) temporary: bool,
    pub(crate) publications: Vec<String>,
    pub(crate) proto_version: Option<String>,
    pub(crate) streaming: Option<String>,
    pub(crate) two_phase: bool,
    pub(crate) messages: bool,
    pub(crate) origin: Option<String>,
    pub(crate) start: Lsn,
    pub(crate) end: Lsn,
}

impl Args {
    /// pgoutput's options, as sent: `proto_version` (by default the lowest that allows the
    /// other options), `publication_names`, and the options given.
    fn plugin_options(&self) -> Vec<(String, Option<String>)> {
        let version = self.proto_version.clone().unwrap_or_else(|| {
            let v = match (self.streaming.as_deref(), self.two_phase) {
                (Some("parallel"), _) => 4,
                (_, true) => 3,
                (Some("on"), _) => 2,
                _ => 1,
            };
            v.to_string()
        });
        let names = self
            .publications
            .iter()
            .map(|p| String::from_utf8_lossy(&quote_identifier(p.as_bytes())).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let mut o = vec![
            ("proto_version".to_string(), Some(version)),
            ("publication_names".to_string(), Some(names)),
        ];
        if let Some(s) = &self.streaming {
            o.push(("streaming".into(), Some(s.clone())));
        }
        if self.two_phase {
            o.push(("two_phase".into(), Some("on".into())));
        }
        if self.messages {
            o.push(("messages".into(), Some("on".into())));
        }
        if let Some(origin) = &self.origin {
            o.push(("origin".into(), Some(origin.clone())));
        }
        o
    }
}

/// Where the stream is: what was written, and when the last status update went out.
struct Progress {
    written: Lsn,
    last_status: Instant,
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn status(conn: &mut Conn, p: &mut Progress, at: Lsn) -> Result<(), DriverError> {
    let update = StandbyStatusUpdate::new(at, at, Lsn::INVALID, now(), false);
    conn.send(&update)?;
    p.last_status = Instant::now();
    Ok(())
}

/// Runs `replicate logical`.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let info = ConnInfo::parse(&args.conninfo)?;
    let mut repl = Conn::connect(&info, Some("database"))?;
    // The walsender of pg_recvlogical runs with an empty search_path; values whose text
    // depends on it (regclass...) come out the same.
    repl.query("SELECT pg_catalog.set_config('search_path', '', false)")?;
    let mut catalog = Conn::connect(&info, None)?;
    catalog.query("SET search_path = ''")?;

    if args.create_slot {
        let mut options = Vec::new();
        if args.two_phase {
            options.push("TWO_PHASE");
        }
        options.push("SNAPSHOT 'nothing'");
        repl.query(&format!(
            "CREATE_REPLICATION_SLOT {} {}LOGICAL pgoutput ({})",
            String::from_utf8_lossy(&quote_identifier(args.slot.as_bytes())),
            if args.temporary { "TEMPORARY " } else { "" },
            options.join(", ")
        ))?;
    }

    let plugin_options = args.plugin_options();
    let command = ReplicationCommand::StartLogical {
        slot: args.slot.clone(),
        start: args.start,
        options: plugin_options.clone(),
    };
    match repl.start(&command.to_string())? {
        Started::Copy(_) => {}
        Started::Done(_) => return Err(Failure::Message("the server started no COPY".into())),
    }
    // The server accepted the options: they are valid for it, so for the decoder too.
    let options = PgOutputOptions::from_pairs(
        plugin_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref())),
    )
    .map_err(|e| Failure::Message(format!("options the server accepted: {e}")))?;
    let mut decoder = PgOutputDecoder::new(&options);
    let mut printer = Printer::new(repl.server_major());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut p = Progress {
        written: Lsn::INVALID,
        last_status: Instant::now(),
    };
    status(&mut repl, &mut p, Lsn::INVALID)?;
    let end = args.end;
    let mut lines = Vec::new();
    loop {
        let wait = STATUS_INTERVAL.saturating_sub(p.last_status.elapsed());
        let data = match repl.copy_event(wait.max(Duration::from_millis(10)))? {
            CopyEvent::Idle => {
                let at = p.written;
                status(&mut repl, &mut p, at)?;
                continue;
            }
            CopyEvent::Done => {
                // The server ended the stream first.
                repl.copy_done()?;
                break;
            }
            CopyEvent::Data(d) => d,
        };
        match PrimaryMessage::decode(&data).map_err(|e| DriverError::Protocol(e.into()))? {
            PrimaryMessage::PrimaryKeepalive(k) => {
                if k.wal_end() >= end {
                    out.flush().map_err(Failure::Output)?;
                    stop(&mut repl, &mut p, end)?;
                    break;
                }
                if k.reply_requested() {
                    let at = p.written;
                    status(&mut repl, &mut p, at)?;
                }
            }
            PrimaryMessage::XLogData(x) => {
                let lsn = x.wal_start();
                if lsn > end {
                    out.flush().map_err(Failure::Output)?;
                    stop(&mut repl, &mut p, end)?;
                    break;
                }
                let m = decoder
                    .decode(x.data())
                    .map_err(|e| DriverError::Protocol(e.into()))?;
                if let PgOutputMessage::Relation(r) = &m {
                    let missing = printer.unknown_types(r);
                    if !missing.is_empty() {
                        printer.add_types(type_names(&mut catalog, &missing)?);
                    }
                }
                printer
                    .handle(&m, &mut lines)
                    .map_err(|e| Failure::Message(e.to_string()))?;
                for line in lines.drain(..) {
                    out.write_all(&line)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(Failure::Output)?;
                }
                out.flush().map_err(Failure::Output)?;
                p.written = p.written.max(lsn);
                if lsn == end {
                    stop(&mut repl, &mut p, end)?;
                    break;
                }
            }
            _ => {}
        }
    }
    // Whatever the server still sends before its CopyDone is past the end.
    loop {
        match repl.copy_event(Duration::from_secs(30))? {
            CopyEvent::Done => break,
            CopyEvent::Data(_) => {}
            CopyEvent::Idle => {
                return Err(Failure::Message("the server did not end the COPY".into()))
            }
        }
    }
    repl.finish()?;
    repl.terminate();
    catalog.terminate();
    Ok(())
}

/// Confirms `end` and ends the client's side of the COPY.
fn stop(conn: &mut Conn, p: &mut Progress, end: Lsn) -> Result<(), DriverError> {
    p.written = p.written.max(end);
    status(conn, p, end)?;
    conn.copy_done()
}

/// `format_type(oid, NULL)` of each type, on the catalog connection.
fn type_names(catalog: &mut Conn, oids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, DriverError> {
    let list = oids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sets = catalog.query(&format!(
        "SELECT t.oid, pg_catalog.format_type(t.oid, NULL) \
         FROM pg_catalog.unnest('{{{list}}}'::pg_catalog.oid[]) AS t(oid)"
    ))?;
    let mut names = Vec::new();
    for row in sets.into_iter().flatten() {
        let (Some(oid), Some(name)) = (text(&row, 0), row.get(1).cloned().flatten()) else {
            continue;
        };
        if let Ok(oid) = oid.parse() {
            names.push((oid, name));
        }
    }
    Ok(names)
}
