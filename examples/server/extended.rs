//! The extended query protocol: Parse, Bind, Describe and Execute (Close and Sync are in
//! [`session`](crate::session)). Execute streams the rows in the formats Bind asked for.
//!
//! Describe of a portal needs the result's types, which SQLite knows only for columns with a
//! declared type: for the others it runs the statement and reads ahead. A result that ends
//! within the read-ahead, and the rows of a statement that writes (which must not run twice),
//! are kept for Execute (at most [`HELD_BYTES`](crate::rows::HELD_BYTES)); a longer read-only
//! result is run again by Execute, with the types Describe reported. Execute with a row limit
//! keeps the whole result and sends it `max_rows` at a time.

use pgproto::{Bind, ErrorFields, Format};
use rusqlite::types::Value;

use crate::backend::Wire;
use crate::command::{self, Command};
use crate::exec::{tag, Columns, Outcome};
use crate::rows::{Collect, Flow, RowSink};
use crate::session::{
    aborted, classify, copy_response, describe, internal, quoted_name, send_copy_begin,
    send_copy_line, send_row, send_sides, Prepared, Session, Side, Tx, R,
};
use crate::sql;
use crate::values::{self, error, Cell, PgType};

/// What a portal keeps between messages.
#[derive(Debug)]
enum Kept {
    /// Rows (`sent` of them sent already) and the tag's verb.
    Rows {
        rows: Vec<Vec<Cell>>,
        verb: String,
        sent: usize,
    },
    /// The tag of a statement without rows that Describe ran.
    Tag(String),
}

/// A bound statement.
#[derive(Debug)]
pub(crate) struct Portal {
    stmt: Prepared,
    params: Vec<Value>,
    formats: Vec<Format>,
    kept: Option<Kept>,
    /// Its rows were all sent: a later Execute sends none.
    done: bool,
    /// The column types given in answer to Describe (portal), if it came.
    described: Option<Vec<PgType>>,
}

fn no_statement(name: &[u8]) -> ErrorFields {
    if name.is_empty() {
        error("26000", "unnamed prepared statement does not exist")
    } else {
        error(
            "26000",
            &format!(
                "prepared statement \"{}\" does not exist",
                quoted_name(name)
            ),
        )
    }
}

fn no_portal(name: &[u8]) -> ErrorFields {
    error(
        "34000",
        &format!("portal \"{}\" does not exist", quoted_name(name)),
    )
}

fn encode_row(
    row: &[Cell],
    types: &[PgType],
    formats: &[Format],
) -> Result<Vec<Option<Vec<u8>>>, ErrorFields> {
    row.iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = types.get(i).copied().unwrap_or(PgType::Text);
            match formats.get(i).copied().unwrap_or(Format::Text) {
                Format::Binary => values::encode_binary(c, ty),
                _ => Ok(values::encode_text(c, ty)),
            }
        })
        .collect()
}

impl Session {
    pub(crate) fn parse(
        &mut self,
        name: &[u8],
        query: &[u8],
        mut types: Vec<u32>,
    ) -> Result<Prepared, ErrorFields> {
        let text = std::str::from_utf8(query)
            .map_err(|_| error("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        if !name.is_empty() && self.statements.contains_key(name) {
            return Err(error(
                "42P05",
                &format!(
                    "prepared statement \"{}\" already exists",
                    quoted_name(name)
                ),
            ));
        }
        let statements = sql::split(text);
        if statements.len() > 1 {
            return Err(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(text) = statements.first().map(|t| t.to_string()) else {
            return Ok(Prepared {
                empty: true,
                text: String::new(),
                cmd: Command::Sql,
                sql: String::new(),
                param_types: types,
                columns: Vec::new(),
            });
        };
        let cmd = classify(&text)?;
        if self.tx == Tx::Failed && !cmd.ends_failed_tx() {
            return Err(aborted());
        }
        let (sql, _) = sql::translate_params(&text);
        let (count, columns) = self.columns_of(&cmd, &sql)?;
        if types.len() < count {
            types.resize(count, 0);
        }
        Ok(Prepared {
            empty: false,
            text,
            cmd,
            sql,
            param_types: types,
            columns,
        })
    }

    pub(crate) fn bind(&mut self, b: &Bind) -> Result<(), ErrorFields> {
        let Some(stmt) = self.statements.get(b.statement()) else {
            return Err(no_statement(b.statement()));
        };
        if self.tx == Tx::Failed && !stmt.cmd.ends_failed_tx() {
            return Err(aborted());
        }
        let n = b.params().len();
        if n != stmt.param_types.len() {
            return Err(error(
                "08P01",
                &format!(
                    "bind message supplies {n} parameters, but prepared statement \"{}\" requires {}",
                    quoted_name(b.statement()),
                    stmt.param_types.len()
                ),
            ));
        }
        let pf = b.param_formats();
        if pf.len() > 1 && pf.len() != n {
            return Err(error(
                "08P01",
                &format!(
                    "bind message has {} parameter formats but {n} parameters",
                    pf.len()
                ),
            ));
        }
        let params = b
            .params()
            .iter()
            .enumerate()
            .map(|(i, v)| values::decode_param(v, pf.for_index(i), stmt.param_types[i], i))
            .collect::<Result<Vec<_>, _>>()?;
        let rf = b.result_formats();
        let ncols = stmt.columns.len();
        if rf.len() > 1 && rf.len() != ncols {
            return Err(error(
                "08P01",
                &format!(
                    "bind message has {} result formats but query has {ncols} columns",
                    rf.len()
                ),
            ));
        }
        let formats = (0..ncols).map(|i| rf.for_index(i)).collect();
        let portal = Portal {
            stmt: stmt.clone(),
            params,
            formats,
            kept: None,
            done: false,
            described: None,
        };
        self.portals.insert(b.portal().to_vec(), portal);
        Ok(())
    }

    pub(crate) fn describe_statement(&mut self, s: &mut Wire, name: &[u8]) -> R {
        let Some(stmt) = self.statements.get(name) else {
            return self.fail(s, &no_statement(name));
        };
        let types: Vec<u32> = stmt
            .param_types
            .iter()
            .map(|&t| if t == 0 { PgType::Text.oid() } else { t })
            .collect();
        let columns: Vec<(String, PgType)> = stmt
            .columns
            .iter()
            .map(|(n, t)| (n.clone(), t.unwrap_or(PgType::Text)))
            .collect();
        s.parameter_description(&types)?;
        if columns.is_empty() {
            s.no_data()
        } else {
            s.row_description(&describe(&columns, &vec![Format::Text; columns.len()])?)
        }
    }

    pub(crate) fn describe_portal(&mut self, s: &mut Wire, name: &[u8]) -> R {
        let Some(mut portal) = self.portals.remove(name) else {
            return self.fail(s, &no_portal(name));
        };
        if portal.stmt.columns.is_empty() {
            self.portals.insert(name.to_vec(), portal);
            return s.no_data();
        }
        let mut side = Vec::new();
        if portal.described.is_none() && portal.kept.is_none() {
            let declared: Option<Vec<PgType>> =
                portal.stmt.columns.iter().map(|(_, t)| *t).collect();
            if let Some(types) = declared {
                portal.described = Some(types);
            } else {
                // The types of expression columns come from the values: run the statement.
                let mut sink = if self.readonly(&portal.stmt) {
                    Collect::ahead()
                } else {
                    Collect::all()
                };
                let notifies = self.lock().queued_notifies();
                match self.execute(&portal.stmt, &portal.params, &mut sink) {
                    Ok(Outcome::Rows { verb, streamed }) => {
                        side = std::mem::take(&mut sink.side);
                        portal.described = sink
                            .columns
                            .as_ref()
                            .map(|c| c.iter().map(|(_, t)| *t).collect());
                        if streamed.complete {
                            portal.kept = Some(Kept::Rows {
                                rows: sink.rows,
                                verb,
                                sent: 0,
                            });
                        } else {
                            // Execute runs it again: its pg_notify calls count once.
                            self.lock().forget_notifies_after(notifies);
                        }
                    }
                    Ok(Outcome::Done(t)) => portal.kept = Some(Kept::Tag(t)),
                    Ok(_) => {}
                    Err(f) => return self.fail(s, &f),
                }
            }
        }
        side.append(&mut self.side);
        send_sides(s, side)?;
        let r = match &portal.described {
            Some(types) => {
                let columns: Columns = portal
                    .stmt
                    .columns
                    .iter()
                    .zip(types)
                    .map(|((n, _), t)| (n.clone(), *t))
                    .collect();
                s.row_description(&describe(&columns, &portal.formats)?)
            }
            None => s.no_data(),
        };
        self.portals.insert(name.to_vec(), portal);
        r
    }

    pub(crate) fn execute_portal(&mut self, s: &mut Wire, name: &[u8], max_rows: i32) -> R {
        let Some(mut portal) = self.portals.remove(name) else {
            return self.fail(s, &no_portal(name));
        };
        if portal.stmt.empty {
            self.portals.insert(name.to_vec(), portal);
            return s.empty_query_response();
        }
        if self.tx == Tx::Failed && !portal.stmt.cmd.ends_failed_tx() {
            return self.fail(s, &aborted());
        }
        // The types the client was told: by Describe (portal), else by the statement's
        // declared column types (what Describe of the statement says).
        let types: Vec<PgType> = portal.described.clone().unwrap_or_else(|| {
            portal
                .stmt
                .columns
                .iter()
                .map(|(_, t)| t.unwrap_or(PgType::Text))
                .collect()
        });
        if let Some(kept) = portal.kept.take() {
            return self.send_kept(s, name, portal, kept, &types, max_rows);
        }
        if portal.done {
            let verb = command::tag_verb(&portal.stmt.text);
            self.portals.insert(name.to_vec(), portal);
            return s.command_complete(&tag(&verb, 0));
        }
        let copy = matches!(portal.stmt.cmd, Command::Copy(_));
        if max_rows > 0 && !copy {
            // Fetched in parts: the rows are kept between the Executes.
            let mut sink = Collect::all();
            let outcome = match self.execute(&portal.stmt, &portal.params, &mut sink) {
                Ok(o) => o,
                Err(f) => return self.fail(s, &f),
            };
            let mut side = std::mem::take(&mut sink.side);
            side.append(&mut self.side);
            send_sides(s, side)?;
            let kept = match outcome {
                Outcome::Rows { verb, .. } => Kept::Rows {
                    rows: sink.rows,
                    verb,
                    sent: 0,
                },
                Outcome::Done(t) => Kept::Tag(t),
                _ => Kept::Tag(String::new()),
            };
            return self.send_kept(s, name, portal, kept, &types, max_rows);
        }
        let mut sink = Execute {
            s,
            types,
            formats: portal.formats.clone(),
        };
        let outcome = match self.execute(&portal.stmt, &portal.params, &mut sink) {
            Ok(o) => o,
            Err(f) => return self.fail(s, &f),
        };
        self.send_side(s)?;
        match outcome {
            Outcome::Rows { verb, streamed } => {
                portal.done = true;
                self.portals.insert(name.to_vec(), portal);
                s.command_complete(&tag(&verb, streamed.rows))
            }
            Outcome::Done(t) => s.command_complete(&t),
            Outcome::Empty => s.empty_query_response(),
            Outcome::CopyOut(lines) => {
                s.copy_done()?;
                s.command_complete(&format!("COPY {lines}"))
            }
            Outcome::CopyIn(mut copy) => {
                copy.extended = true;
                s.copy_in_response(&copy_response(copy.columns())?)?;
                self.copy = Some(copy);
                Ok(())
            }
        }
    }

    /// Sends (part of) what a portal kept.
    fn send_kept(
        &mut self,
        s: &mut Wire,
        name: &[u8],
        mut portal: Portal,
        kept: Kept,
        types: &[PgType],
        max_rows: i32,
    ) -> R {
        let (rows, verb, sent) = match kept {
            Kept::Rows { rows, verb, sent } => (rows, verb, sent),
            Kept::Tag(t) => return s.command_complete(&t),
        };
        let limit = if max_rows > 0 {
            max_rows as usize
        } else {
            usize::MAX
        };
        let end = sent.saturating_add(limit).min(rows.len());
        for row in &rows[sent..end] {
            if let Err(f) = encode_row(row, types, &portal.formats).and_then(|v| send_row(s, &v)) {
                return self.fail(s, &f);
            }
        }
        let count = (end - sent) as u64;
        let more = end < rows.len();
        portal.done = !more;
        if more {
            portal.kept = Some(Kept::Rows {
                rows,
                verb: verb.clone(),
                sent: end,
            });
        }
        self.portals.insert(name.to_vec(), portal);
        if more {
            s.portal_suspended()
        } else {
            s.command_complete(&tag(&verb, count))
        }
    }
}

/// Sends Execute's rows as they are read, in the types and formats the client was told.
struct Execute<'a> {
    s: &'a mut Wire,
    types: Vec<PgType>,
    formats: Vec<Format>,
}

impl RowSink for Execute<'_> {
    fn types(&self) -> Option<Vec<PgType>> {
        Some(self.types.clone())
    }

    fn begin(&mut self, _columns: &Columns, side: Vec<Side>) -> Result<Flow, ErrorFields> {
        send_sides(self.s, side).map_err(internal)?;
        Ok(crate::session::flow(self.s))
    }

    fn row(&mut self, row: &[Cell]) -> Result<Flow, ErrorFields> {
        let values = encode_row(row, &self.types, &self.formats)?;
        send_row(self.s, &values)
    }

    fn copy_begin(&mut self, columns: usize, side: Vec<Side>) -> Result<(), ErrorFields> {
        send_copy_begin(self.s, columns, side)
    }

    fn copy_line(&mut self, line: &[u8]) -> Result<Flow, ErrorFields> {
        send_copy_line(self.s, line)
    }
}
