//! Running one statement: SQLite for SQL, the server itself for transactions, LISTEN/UNLISTEN/
//! NOTIFY, DEALLOCATE and DISCARD (SET/RESET/SHOW in [`settings`](crate::settings), COPY in
//! [`copy`](crate::copy)).

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use pgproto::ErrorFields;
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::command::{self, Command};
use crate::functions::released;
use crate::rows::{self, RowSink, Streamed};
use crate::session::{Prepared, Session, Side, Tx};
use crate::values::{error, fields, sqlite_error, PgType};

/// Result columns: name and the type the values are shown as.
pub(crate) type Columns = Vec<(String, PgType)>;

/// Result columns before running: name and declared type, if any.
pub(crate) type DeclaredColumns = Vec<(String, Option<PgType>)>;

/// What a statement produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A command tag.
    Done(String),
    /// An empty statement.
    Empty,
    /// Rows, given to the sink as they were read: the tag's verb, and how it went.
    Rows { verb: String, streamed: Streamed },
    /// COPY TO STDOUT, its lines given to the sink: how many.
    CopyOut(u64),
    /// COPY FROM STDIN: ready for data.
    CopyIn(crate::copy::CopyIn),
}

/// The tag of a statement that handled `n` rows.
pub(crate) fn tag(verb: &str, n: u64) -> String {
    match verb {
        "SELECT" => format!("SELECT {n}"),
        "INSERT" => format!("INSERT 0 {n}"),
        "UPDATE" | "DELETE" | "MERGE" | "COPY" | "FETCH" | "MOVE" => format!("{verb} {n}"),
        other => other.into(),
    }
}

/// Opens SQLite's transaction at the first write of a transaction block. Reads before it run
/// on their own (PostgreSQL's READ COMMITTED), so idle blocks hold no lock.
pub(crate) fn open_write_tx(db: &Connection, tx: Tx) -> Result<(), ErrorFields> {
    if matches!(tx, Tx::Implicit | Tx::Explicit) && db.is_autocommit() {
        db.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| sqlite_error(&e))?;
    }
    Ok(())
}

pub(crate) fn sqlerr(e: rusqlite::Error) -> ErrorFields {
    sqlite_error(&e)
}

impl Session {
    /// Runs one statement; its rows (and COPY TO's lines) go to `sink` as they are read.
    /// Notices and parameter changes go to `self.side`, or to the sink before the rows.
    pub(crate) fn execute(
        &mut self,
        p: &Prepared,
        params: &[Value],
        sink: &mut dyn RowSink,
    ) -> Result<Outcome, ErrorFields> {
        if p.empty {
            return Ok(Outcome::Empty);
        }
        if self.tx == Tx::Failed && !p.cmd.ends_failed_tx() {
            return Err(crate::session::aborted());
        }
        if self.implicit
            && self.tx == Tx::Idle
            && !matches!(p.cmd, Command::Begin | Command::Commit | Command::Rollback)
        {
            self.tx = Tx::Implicit;
        }
        self.cancel.store(false, Ordering::SeqCst);
        let mut result = self.run(p, params, sink);
        released();
        if result.is_err() && self.cancel.load(Ordering::SeqCst) {
            result = Err(error("57014", "canceling statement due to user request"));
        }
        match (&result, self.tx) {
            (Ok(_), Tx::Idle) => self.publish(),
            (Err(_), Tx::Idle) => drop(self.lock().take_outgoing()),
            _ => {}
        }
        result
    }

    fn warning(&mut self, code: &str, message: &str) {
        self.side
            .push(Side::Notice(fields("WARNING", code, message)));
    }

    fn run(
        &mut self,
        p: &Prepared,
        params: &[Value],
        sink: &mut dyn RowSink,
    ) -> Result<Outcome, ErrorFields> {
        let done = |t: &str| Ok(Outcome::Done(t.into()));
        match &p.cmd {
            Command::Begin => {
                match self.tx {
                    Tx::Explicit | Tx::Failed => {
                        self.warning("25001", "there is already a transaction in progress")
                    }
                    Tx::Idle | Tx::Implicit => self.tx = Tx::Explicit,
                }
                done("BEGIN")
            }
            Command::Commit => match self.tx {
                Tx::Explicit | Tx::Implicit => {
                    self.tx = Tx::Idle;
                    self.commit()?;
                    done("COMMIT")
                }
                Tx::Failed => {
                    self.rollback();
                    self.tx = Tx::Idle;
                    done("ROLLBACK")
                }
                Tx::Idle => {
                    self.warning("25P01", "there is no transaction in progress");
                    done("COMMIT")
                }
            },
            Command::Rollback => {
                if self.tx == Tx::Idle {
                    self.warning("25P01", "there is no transaction in progress");
                }
                self.rollback();
                self.tx = Tx::Idle;
                done("ROLLBACK")
            }
            Command::Savepoint => self.savepoint(p),
            Command::Set(name, value) => {
                self.set(name, value.as_deref())?;
                done("SET")
            }
            Command::SetNoop => done("SET"),
            Command::Reset(name) => {
                match name {
                    Some(n) => self.set(n, None)?,
                    None => self.reset_all(),
                }
                done("RESET")
            }
            Command::Show(name) => {
                let (columns, rows) = self.show(name.as_deref())?;
                let side = std::mem::take(&mut self.side);
                let streamed = rows::feed(&columns, &rows, side, sink)?;
                Ok(Outcome::Rows {
                    verb: "SHOW".into(),
                    streamed,
                })
            }
            Command::Listen(channel) => {
                self.listening.insert(channel.clone());
                self.shared
                    .channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(channel.clone())
                    .or_default()
                    .insert(self.pid, self.mailbox.clone());
                done("LISTEN")
            }
            Command::Unlisten(channel) => {
                self.unlisten(channel.as_deref());
                done("UNLISTEN")
            }
            Command::Notify(channel, payload) => {
                if payload.len() >= 8000 {
                    return Err(error("22023", "payload string too long"));
                }
                self.lock()
                    .queue_notify(channel, payload)
                    .map_err(|m| error("54000", &m))?;
                done("NOTIFY")
            }
            Command::Copy(spec) if spec.from => self.copy_in(spec),
            Command::Copy(spec) => self.copy_out(spec, sink),
            Command::Deallocate(Some(name)) => match self.statements.remove(name.as_bytes()) {
                Some(_) => done("DEALLOCATE"),
                None => Err(error(
                    "26000",
                    &format!("prepared statement \"{name}\" does not exist"),
                )),
            },
            Command::Deallocate(None) => {
                self.forget_statements();
                done("DEALLOCATE ALL")
            }
            Command::Discard => {
                if matches!(self.tx, Tx::Explicit | Tx::Failed) {
                    return Err(error(
                        "25001",
                        "DISCARD ALL cannot run inside a transaction block",
                    ));
                }
                self.forget_statements();
                self.unlisten(None);
                self.reset_all();
                done("DISCARD ALL")
            }
            Command::Sql => self.run_sql(p, params, sink),
        }
    }

    /// Commits SQLite's transaction if one is open, then publishes the NOTIFYs.
    pub(crate) fn commit(&mut self) -> Result<(), ErrorFields> {
        if !self.db.is_autocommit() {
            let committed = self.db.execute_batch("COMMIT");
            released();
            if let Err(e) = committed {
                self.rollback();
                return Err(sqlerr(e));
            }
        }
        self.publish();
        Ok(())
    }

    fn publish(&mut self) {
        let outgoing = self.lock().take_outgoing();
        for (channel, payload) in outgoing {
            if self.shared.publish(self.pid, &channel, &payload) {
                self.notify_self(&channel, &payload);
            }
        }
    }

    /// Stops listening on `channel`, or on all (`None`).
    pub(crate) fn unlisten(&mut self, channel: Option<&str>) {
        let gone: Vec<String> = match channel {
            Some(c) => self.listening.take(c).into_iter().collect(),
            None => std::mem::take(&mut self.listening).into_iter().collect(),
        };
        let mut channels = self
            .shared
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for c in gone {
            if let Some(listeners) = channels.get_mut(&c) {
                listeners.remove(&self.pid);
                if listeners.is_empty() {
                    channels.remove(&c);
                }
            }
        }
    }

    fn savepoint(&mut self, p: &Prepared) -> Result<Outcome, ErrorFields> {
        let verb = command::tag_verb(&p.text);
        let what = match verb.as_str() {
            "RELEASE" => "RELEASE SAVEPOINT",
            "ROLLBACK" => "ROLLBACK TO SAVEPOINT",
            _ => "SAVEPOINT",
        };
        if matches!(self.tx, Tx::Idle | Tx::Implicit) {
            return Err(error(
                "25P01",
                &format!("{what} can only be used in transaction blocks"),
            ));
        }
        if self.tx == Tx::Failed && verb != "ROLLBACK" {
            return Err(crate::session::aborted());
        }
        open_write_tx(&self.db, self.tx)?;
        self.db.execute_batch(&p.sql).map_err(sqlerr)?;
        if self.tx == Tx::Failed {
            self.tx = Tx::Explicit;
        }
        Ok(Outcome::Done(verb))
    }

    /// The parameter count and result columns of a statement, before running it.
    pub(crate) fn columns_of(
        &mut self,
        cmd: &Command,
        sql_text: &str,
    ) -> Result<(usize, DeclaredColumns), ErrorFields> {
        Ok(match cmd {
            Command::Sql => {
                let stmt = self.db.prepare_cached(sql_text).map_err(sqlerr)?;
                let columns = stmt
                    .columns()
                    .iter()
                    .map(|c| (c.name().to_string(), PgType::from_decl(c.decl_type())))
                    .collect();
                (stmt.parameter_count(), columns)
            }
            Command::Show(Some(name)) => {
                let local = self.lock();
                let shown = local
                    .settings
                    .get(&name.to_lowercase())
                    .map_or(name.as_str(), |s| &s.name);
                (0, vec![(shown.to_string(), Some(PgType::Text))])
            }
            Command::Show(None) => (
                0,
                ["name", "setting", "description"]
                    .iter()
                    .map(|c| ((*c).to_string(), Some(PgType::Text)))
                    .collect(),
            ),
            _ => (0, Vec::new()),
        })
    }

    fn existence_notice(&mut self, text: &str) {
        let Some((drop, kind, name)) = command::existence_clause(text) else {
            return;
        };
        let exists = self
            .db
            .query_row(
                "SELECT count(*) FROM (SELECT type, name FROM sqlite_schema \
                 UNION ALL SELECT type, name FROM sqlite_temp_schema) \
                 WHERE type = ?1 AND name = ?2 COLLATE NOCASE",
                [&kind, &name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .unwrap_or(false);
        let notice = match (drop, exists) {
            (true, false) => fields(
                "NOTICE",
                "00000",
                &format!("{kind} \"{name}\" does not exist, skipping"),
            ),
            (false, true) => fields(
                "NOTICE",
                "42P07",
                &format!("relation \"{name}\" already exists, skipping"),
            ),
            _ => return,
        };
        self.side.push(Side::Notice(notice));
    }

    fn run_sql(
        &mut self,
        p: &Prepared,
        params: &[Value],
        sink: &mut dyn RowSink,
    ) -> Result<Outcome, ErrorFields> {
        self.existence_notice(&p.text);
        let verb = command::tag_verb(&p.text);
        let mut stmt = self.db.prepare_cached(&p.sql).map_err(sqlerr)?;
        if !stmt.readonly() {
            open_write_tx(&self.db, self.tx)?;
        }
        let count = stmt.parameter_count();
        for (i, v) in params.iter().enumerate().take(count) {
            stmt.raw_bind_parameter(i + 1, v).map_err(sqlerr)?;
        }
        if stmt.column_count() == 0 {
            let changes = stmt.raw_execute().map_err(sqlerr)?;
            return Ok(Outcome::Done(tag(&verb, changes as u64)));
        }
        let side = std::mem::take(&mut self.side);
        let types = sink.types();
        let streamed = rows::stream(&mut stmt, types.as_deref(), side, sink)?;
        Ok(Outcome::Rows { verb, streamed })
    }

    /// Whether the statement only reads (it may run twice: for Describe and for Execute).
    pub(crate) fn readonly(&self, p: &Prepared) -> bool {
        match &p.cmd {
            Command::Sql => self
                .db
                .prepare_cached(&p.sql)
                .is_ok_and(|stmt| stmt.readonly()),
            Command::Show(_) => true,
            _ => false,
        }
    }
}
