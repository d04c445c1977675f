//! A session after start-up: answers the simple and extended query protocols and COPY with
//! what [`exec`](crate::exec) computes, keeps prepared statements and portals, the transaction
//! status (`I`, `T`, `E`) and the notifications waiting to be delivered.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use pgproto::{
    CopyResponse, ErrorFields, FieldDescription, Format, FrontendMessage, RowDescription,
    StartupMessage, Target, TransactionStatus, UsageError,
};
use rusqlite::Connection;

use crate::backend::Wire;
use crate::command::{self, Command};
use crate::copy::CopyIn;
use crate::exec::{tag, Columns, DeclaredColumns, Outcome};
use crate::extended::Portal;
use crate::functions::{register_functions, released};
use crate::notify::{self, Mailbox, Notification};
use crate::rows::{Flow, RowSink};
use crate::settings::Setting;
use crate::sql;
use crate::values::{self, error, Cell, PgType};
use crate::Shared;

/// What answering a message returns: an error only for a bug of this server.
pub(crate) type R = Result<(), UsageError>;

/// Where the session is with transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tx {
    /// No transaction block.
    Idle,
    /// An implicit block: a multi-statement Query, or extended-protocol messages until Sync.
    Implicit,
    /// After BEGIN.
    Explicit,
    /// After an error in a BEGIN block: everything but ROLLBACK or COMMIT fails with 25P02.
    Failed,
}

/// A prepared statement.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// No statement at all (an empty query string).
    pub(crate) empty: bool,
    /// The statement as written.
    pub(crate) text: String,
    /// What it is.
    pub(crate) cmd: Command,
    /// For SQLite: the text with `?n` placeholders.
    pub(crate) sql: String,
    /// Parameter type OIDs (0: unspecified); one per parameter.
    pub(crate) param_types: Vec<u32>,
    /// The result columns known before running: name and declared type.
    pub(crate) columns: DeclaredColumns,
}

/// State shared with the SQL functions registered on the connection.
#[derive(Debug, Default)]
pub(crate) struct Local {
    /// Session parameters by lower-case name.
    pub(crate) settings: BTreeMap<String, Setting>,
    /// NOTIFYs of the current transaction, published at commit.
    outgoing: Vec<(String, String)>,
    /// Their size (see [`notify::size`]).
    outgoing_bytes: usize,
}

impl Local {
    /// Queues a NOTIFY of the current transaction, up to [`notify::TRANSACTION_BYTES`].
    pub(crate) fn queue_notify(&mut self, channel: &str, payload: &str) -> Result<(), String> {
        let bytes = notify::size(channel, payload);
        if self.outgoing_bytes + bytes > notify::TRANSACTION_BYTES {
            return Err("too many notifications in the NOTIFY queue".into());
        }
        self.outgoing_bytes += bytes;
        self.outgoing.push((channel.into(), payload.into()));
        Ok(())
    }

    /// How many NOTIFYs the transaction has queued.
    pub(crate) fn queued_notifies(&self) -> usize {
        self.outgoing.len()
    }

    /// Forgets the NOTIFYs queued after the first `n` (a statement that runs again).
    pub(crate) fn forget_notifies_after(&mut self, n: usize) {
        for (channel, payload) in self.outgoing.drain(n.min(self.outgoing.len())..) {
            self.outgoing_bytes -= notify::size(&channel, &payload);
        }
    }

    /// Takes the NOTIFYs of the transaction (to publish them, or to forget them).
    pub(crate) fn take_outgoing(&mut self) -> Vec<(String, String)> {
        self.outgoing_bytes = 0;
        std::mem::take(&mut self.outgoing)
    }
}

/// One client's session.
pub(crate) struct Session {
    pub(crate) db: Connection,
    pub(crate) pid: i32,
    pub(crate) shared: Arc<Shared>,
    pub(crate) local: Arc<Mutex<Local>>,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) tx: Tx,
    /// Statements now run inside an implicit transaction block.
    pub(crate) implicit: bool,
    /// NoticeResponse and ParameterStatus messages to send before the current result.
    pub(crate) side: Vec<Side>,
    pub(crate) listening: BTreeSet<String>,
    pub(crate) statements: HashMap<Vec<u8>, Prepared>,
    pub(crate) portals: HashMap<Vec<u8>, Portal>,
    /// This backend's own notifications, delivered with the others.
    pub(crate) incoming: VecDeque<Notification>,
    /// Notifications from other backends.
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) busy: bool,
    pub(crate) pending: VecDeque<String>,
    pub(crate) copy: Option<CopyIn>,
}

/// A message to send before a result.
#[derive(Debug)]
pub(crate) enum Side {
    /// NoticeResponse.
    Notice(ErrorFields),
    /// ParameterStatus.
    Parameter(String, String),
}

impl Tx {
    fn status(self) -> TransactionStatus {
        match self {
            Self::Idle | Self::Implicit => TransactionStatus::Idle,
            Self::Explicit => TransactionStatus::InTransaction,
            Self::Failed => TransactionStatus::Failed,
        }
    }
}

pub(crate) fn quoted_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl Session {
    /// A session for backend `pid` on `db`, with the StartupMessage's parameters applied.
    pub(crate) fn new(
        db: Connection,
        pid: i32,
        shared: Arc<Shared>,
        mailbox: Arc<Mailbox>,
        cancel: Arc<AtomicBool>,
        user: &str,
        startup: Option<StartupMessage>,
    ) -> rusqlite::Result<Self> {
        let local = Arc::new(Mutex::new(Local::default()));
        register_functions(&db, pid, &local, &cancel)?;
        let mut s = Self {
            db,
            pid,
            shared,
            local,
            cancel,
            tx: Tx::Idle,
            implicit: false,
            side: Vec::new(),
            listening: BTreeSet::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            incoming: VecDeque::new(),
            mailbox,
            busy: false,
            pending: VecDeque::new(),
            copy: None,
        };
        s.reset_settings(user);
        if let Some(m) = startup {
            for (k, v) in m.params() {
                let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) else {
                    continue;
                };
                if !matches!(k, "user" | "database" | "options" | "replication")
                    && !k.starts_with("_pq_.")
                {
                    let _ = s.set(k, Some(v));
                }
            }
            s.side.clear();
        }
        Ok(s)
    }

    /// Unregisters the backend (cancel key, LISTENs).
    pub(crate) fn close(mut self) {
        self.unlisten(None);
        self.shared
            .cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.pid);
        // Closing the connection drops its locks.
        drop(self);
        released();
    }

    /// Notifications from other backends came: delivered at once when idle, else before the
    /// next ReadyForQuery outside a transaction.
    pub(crate) fn wake(&mut self, s: &mut Wire) -> R {
        if !self.busy && self.tx == Tx::Idle {
            self.deliver(s)?;
        }
        Ok(())
    }

    /// Queues a notification from this backend to itself.
    pub(crate) fn notify_self(&mut self, channel: &str, payload: &str) {
        self.incoming.push_back(Notification {
            pid: self.pid,
            channel: channel.into(),
            payload: payload.into(),
        });
    }

    fn deliver(&mut self, s: &mut Wire) -> R {
        let mut incoming = std::mem::take(&mut self.incoming);
        incoming.extend(self.mailbox.take());
        for n in incoming {
            s.notification(n.pid, &n.channel, &n.payload)?;
            s.queued(notify::size(&n.channel, &n.payload));
        }
        Ok(())
    }

    /// Answers one frontend message.
    pub(crate) fn message(&mut self, s: &mut Wire, m: FrontendMessage) -> R {
        use FrontendMessage as F;
        match m {
            F::Query(q) => {
                self.busy = true;
                match q.as_str() {
                    Ok(sql) => self.query(s, sql),
                    Err(_) => {
                        s.error_response(&error(
                            "22021",
                            "invalid byte sequence for encoding \"UTF8\"",
                        ))?;
                        self.ready(s)
                    }
                }
            }
            F::Parse(p) => {
                self.extended();
                let name = p.name().to_vec();
                let types: Vec<u32> = p.param_types().collect();
                match self.parse(&name, p.query(), types) {
                    Ok(prepared) => {
                        self.statements.insert(name, prepared);
                        s.parse_complete()
                    }
                    Err(f) => self.fail(s, &f),
                }
            }
            F::Bind(b) => {
                self.extended();
                match self.bind(&b) {
                    Ok(()) => s.bind_complete(),
                    Err(f) => self.fail(s, &f),
                }
            }
            F::Describe(d) => {
                self.extended();
                match d.target() {
                    Target::Statement => self.describe_statement(s, d.name()),
                    Target::Portal => self.describe_portal(s, d.name()),
                }
            }
            F::Execute(e) => {
                self.extended();
                self.execute_portal(s, e.portal(), e.max_rows())
            }
            F::Close(c) => {
                self.extended();
                match c.target() {
                    Target::Statement => self.statements.remove(c.name()).map(|_| ()),
                    Target::Portal => self.portals.remove(c.name()).map(|_| ()),
                };
                s.close_complete()
            }
            F::Sync => {
                if let Err(f) = self.end_implicit() {
                    s.error_response(&f)?;
                }
                if self.tx == Tx::Idle {
                    self.portals.clear();
                }
                self.ready(s)
            }
            F::FunctionCall(_) => {
                self.busy = true;
                s.error_response(&error(
                    "0A000",
                    "the function call protocol is not supported",
                ))?;
                self.ready(s)
            }
            F::CopyData(d) => {
                let Some(copy) = &mut self.copy else {
                    return Ok(());
                };
                match copy.feed(&self.db, d.data()) {
                    Ok(()) => Ok(()),
                    Err(f) => self.copy_failed(s, &f),
                }
            }
            F::CopyDone => self.copy_done(s),
            F::CopyFail(f) => {
                let why = String::from_utf8_lossy(f.message()).into_owned();
                self.copy_failed(
                    s,
                    &error("57014", &format!("COPY from stdin failed: {why}")),
                )
            }
            _ => Ok(()),
        }
    }

    fn extended(&mut self) {
        self.busy = true;
        self.implicit = true;
    }

    /// ErrorResponse, and what an error does to the transaction.
    pub(crate) fn fail(&mut self, s: &mut Wire, f: &ErrorFields) -> R {
        self.send_side(s)?;
        s.error_response(f)?;
        self.abort();
        Ok(())
    }

    /// The state machine answered a malformed message with an error of its own: the error
    /// aborts the transaction as any other does.
    pub(crate) fn refused(&mut self) {
        self.abort();
    }

    /// An error: an implicit block rolls back, an explicit one becomes failed.
    fn abort(&mut self) {
        match self.tx {
            Tx::Implicit => {
                self.rollback();
                self.tx = Tx::Idle;
            }
            Tx::Explicit => self.tx = Tx::Failed,
            Tx::Idle | Tx::Failed => {}
        }
    }

    /// Rolls back SQLite's transaction, if one is open, and forgets pending NOTIFYs.
    pub(crate) fn rollback(&mut self) {
        if !self.db.is_autocommit() {
            let _ = self.db.execute_batch("ROLLBACK");
            released();
        }
        drop(self.lock().take_outgoing());
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits an implicit block at the end of a Query or at Sync.
    fn end_implicit(&mut self) -> Result<(), ErrorFields> {
        self.implicit = false;
        if self.tx != Tx::Implicit {
            return Ok(());
        }
        self.tx = Tx::Idle;
        self.commit()
    }

    pub(crate) fn send_side(&mut self, s: &mut Wire) -> R {
        send_sides(s, std::mem::take(&mut self.side))
    }

    /// ReadyForQuery, after delivering notifications if no transaction is open.
    fn ready(&mut self, s: &mut Wire) -> R {
        self.busy = false;
        self.implicit = false;
        if self.tx == Tx::Idle {
            self.deliver(s)?;
        }
        s.ready_for_query(self.tx.status())
    }

    // ---- simple query ----

    fn query(&mut self, s: &mut Wire, sql_text: &str) -> R {
        let statements = sql::split(sql_text);
        if statements.is_empty() {
            s.empty_query_response()?;
            return self.ready(s);
        }
        self.implicit = statements.len() > 1;
        self.pending = statements.into_iter().map(String::from).collect();
        self.run_pending(s)
    }

    /// Runs the rest of a Query's statements (after a COPY FROM STDIN, too).
    fn run_pending(&mut self, s: &mut Wire) -> R {
        while let Some(text) = self.pending.pop_front() {
            if s.is_gone() {
                // Nobody reads the answers any more: the connection ends.
                return Ok(());
            }
            let prepared = match self.prepare_simple(text) {
                Ok(p) => p,
                Err(f) => {
                    self.fail(s, &f)?;
                    self.pending.clear();
                    break;
                }
            };
            match self.execute(
                &prepared,
                &[],
                &mut Simple {
                    s,
                    types: Vec::new(),
                },
            ) {
                Ok(outcome) => {
                    self.send_side(s)?;
                    if self.send_simple(s, outcome)? {
                        // COPY FROM STDIN: the rest runs after CopyDone.
                        return Ok(());
                    }
                }
                Err(f) => {
                    self.fail(s, &f)?;
                    self.pending.clear();
                    break;
                }
            }
        }
        if let Err(f) = self.end_implicit() {
            s.error_response(&f)?;
        }
        self.ready(s)
    }

    fn prepare_simple(&mut self, text: String) -> Result<Prepared, ErrorFields> {
        let cmd = classify(&text)?;
        let (sql, params) = sql::translate_params(&text);
        if params > 0 && cmd == Command::Sql {
            return Err(error("42P02", &format!("there is no parameter ${params}")));
        }
        Ok(Prepared {
            empty: false,
            text,
            cmd,
            sql,
            param_types: Vec::new(),
            columns: Vec::new(),
        })
    }

    /// Sends a statement's result in the simple protocol; `true` when COPY FROM STDIN began.
    fn send_simple(&mut self, s: &mut Wire, outcome: Outcome) -> Result<bool, UsageError> {
        match outcome {
            Outcome::Done(t) => s.command_complete(&t)?,
            Outcome::Empty => s.empty_query_response()?,
            Outcome::Rows { verb, streamed } => s.command_complete(&tag(&verb, streamed.rows))?,
            Outcome::CopyOut(lines) => {
                s.copy_done()?;
                s.command_complete(&format!("COPY {lines}"))?;
            }
            Outcome::CopyIn(mut copy) => {
                copy.extended = false;
                s.copy_in_response(&copy_response(copy.columns())?)?;
                self.copy = Some(copy);
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn copy_done(&mut self, s: &mut Wire) -> R {
        let Some(mut copy) = self.copy.take() else {
            return Ok(());
        };
        match copy.finish(&self.db) {
            Ok(rows) => {
                s.command_complete(&format!("COPY {rows}"))?;
                if copy.extended {
                    Ok(())
                } else {
                    self.run_pending(s)
                }
            }
            Err(f) => {
                self.copy = Some(copy);
                self.copy_failed(s, &f)
            }
        }
    }

    fn copy_failed(&mut self, s: &mut Wire, f: &ErrorFields) -> R {
        let extended = self.copy.take().is_some_and(|c| c.extended);
        self.fail(s, f)?;
        if extended {
            return Ok(());
        }
        self.pending.clear();
        self.implicit = false;
        self.ready(s)
    }

    // ---- extended query ----

    /// Forgets prepared statements and portals (DISCARD ALL, DEALLOCATE ALL).
    pub(crate) fn forget_statements(&mut self) {
        self.statements.clear();
        self.portals.clear();
    }
}

pub(crate) fn classify(text: &str) -> Result<Command, ErrorFields> {
    command::classify(text).map_err(|m| match m.split_once(':') {
        Some((code, msg)) if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            error(code, msg)
        }
        _ => error("42601", &m),
    })
}

/// 25P02.
pub(crate) fn aborted() -> ErrorFields {
    error(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// A RowDescription of `columns` in `formats`.
pub(crate) fn describe(
    columns: &[(String, PgType)],
    formats: &[Format],
) -> Result<RowDescription, UsageError> {
    let fields: Vec<FieldDescription<'_>> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| FieldDescription {
            name: name.as_bytes(),
            table_oid: 0,
            column_id: 0,
            type_oid: ty.oid(),
            type_size: ty.size(),
            type_modifier: -1,
            format: formats.get(i).copied().unwrap_or(Format::Text),
        })
        .collect();
    Ok(RowDescription::new(&fields)?)
}

pub(crate) fn copy_response(columns: usize) -> Result<CopyResponse, UsageError> {
    Ok(CopyResponse::new(Format::Text, &vec![Format::Text; columns]).unwrap())
}

/// Sends NoticeResponse and ParameterStatus messages.
pub(crate) fn send_sides(s: &mut Wire, side: Vec<Side>) -> R {
    for side in side {
        match side {
            Side::Notice(f) => s.notice(&f)?,
            Side::Parameter(k, v) => s.parameter_status(&k, &v)?,
        }
        s.queued(128);
    }
    Ok(())
}

/// A bug of this server while sending a result, as an error for the client.
pub(crate) fn internal(e: UsageError) -> ErrorFields {
    error("XX000", &format!("internal error: {e}"))
}

/// Whether to go on sending: not once the client is gone.
pub(crate) fn flow(s: &Wire) -> Flow {
    if s.is_gone() {
        Flow::Stop
    } else {
        Flow::More
    }
}

/// Sends one DataRow and counts it for the output's flushing.
pub(crate) fn send_row(s: &mut Wire, values: &[Option<Vec<u8>>]) -> Result<Flow, ErrorFields> {
    let refs: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
    s.data_row(&refs).map_err(internal)?;
    s.queued(
        7 + values
            .iter()
            .map(|v| 4 + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>(),
    );
    Ok(flow(s))
}

/// CopyOutResponse, after the messages that come first.
pub(crate) fn send_copy_begin(
    s: &mut Wire,
    columns: usize,
    side: Vec<Side>,
) -> Result<(), ErrorFields> {
    send_sides(s, side).map_err(internal)?;
    s.copy_out_response(&copy_response(columns).map_err(internal)?)
        .map_err(internal)
}

/// One CopyData of COPY TO STDOUT.
pub(crate) fn send_copy_line(s: &mut Wire, line: &[u8]) -> Result<Flow, ErrorFields> {
    s.copy_data(line).map_err(internal)?;
    s.queued(5 + line.len());
    Ok(flow(s))
}

/// Sends a simple Query's results as they are read: RowDescription (text), DataRows, and
/// COPY TO STDOUT's data.
struct Simple<'a> {
    s: &'a mut Wire,
    types: Vec<PgType>,
}

impl RowSink for Simple<'_> {
    fn begin(&mut self, columns: &Columns, side: Vec<Side>) -> Result<Flow, ErrorFields> {
        send_sides(self.s, side).map_err(internal)?;
        self.types = columns.iter().map(|(_, t)| *t).collect();
        let formats = vec![Format::Text; columns.len()];
        let description = describe(columns, &formats).map_err(internal)?;
        self.s.row_description(&description).map_err(internal)?;
        Ok(flow(self.s))
    }

    fn row(&mut self, row: &[Cell]) -> Result<Flow, ErrorFields> {
        let values: Vec<Option<Vec<u8>>> = row
            .iter()
            .zip(&self.types)
            .map(|(c, ty)| values::encode_text(c, *ty))
            .collect();
        send_row(self.s, &values)
    }

    fn copy_begin(&mut self, columns: usize, side: Vec<Side>) -> Result<(), ErrorFields> {
        send_copy_begin(self.s, columns, side)
    }

    fn copy_line(&mut self, line: &[u8]) -> Result<Flow, ErrorFields> {
        send_copy_line(self.s, line)
    }
}
