//! The extended query protocol: Parse, Bind, Describe and Execute (Close and Sync are in
//! [`session`](crate::session)). Describe of a portal runs its statement, so that columns without
//! a declared type get the type of their values; Execute then sends the rows in the formats
//! Bind asked for, `max_rows` at a time.

use pgproto::{Bind, ErrorFields, Format, Server};
use rusqlite::types::Value;

use crate::command::Command;
use crate::exec::{tag, Outcome};
use crate::session::{
    aborted, classify, copy_response, describe, quoted_name, Prepared, Session, Tx, R,
};
use crate::sql;
use crate::values::{self, error, Cell, PgType};

/// A bound statement.
#[derive(Debug)]
pub(crate) struct Portal {
    stmt: Prepared,
    params: Vec<Value>,
    formats: Vec<Format>,
    result: Option<Outcome>,
    sent: usize,
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
            result: None,
            sent: 0,
            described: None,
        };
        self.portals.insert(b.portal().to_vec(), portal);
        Ok(())
    }

    pub(crate) fn describe_statement(&mut self, s: &mut Server, name: &[u8]) -> R {
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

    pub(crate) fn describe_portal(&mut self, s: &mut Server, name: &[u8]) -> R {
        let Some(mut portal) = self.portals.remove(name) else {
            return self.fail(s, &no_portal(name));
        };
        if portal.stmt.columns.is_empty() {
            self.portals.insert(name.to_vec(), portal);
            return s.no_data();
        }
        // The types of expression columns come from the values: run the statement now.
        if portal.result.is_none() {
            match self.execute(&portal.stmt, &portal.params) {
                Ok(o) => portal.result = Some(o),
                Err(f) => return self.fail(s, &f),
            }
        }
        let r = match &portal.result {
            Some(Outcome::Rows { columns, .. }) => {
                self.send_side(s)?;
                portal.described = Some(columns.iter().map(|(_, t)| *t).collect());
                s.row_description(&describe(columns, &portal.formats)?)
            }
            _ => s.no_data(),
        };
        self.portals.insert(name.to_vec(), portal);
        r
    }

    pub(crate) fn execute_portal(&mut self, s: &mut Server, name: &[u8], max_rows: i32) -> R {
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
        let outcome = match portal.result.take() {
            Some(o) => o,
            None => match self.execute(&portal.stmt, &portal.params) {
                Ok(o) => o,
                Err(f) => return self.fail(s, &f),
            },
        };
        self.send_side(s)?;
        match outcome {
            Outcome::Rows {
                columns,
                rows,
                verb,
            } => {
                let limit = if max_rows > 0 {
                    max_rows as usize
                } else {
                    usize::MAX
                };
                let end = portal.sent.saturating_add(limit).min(rows.len());
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
                for row in &rows[portal.sent..end] {
                    match encode_row(row, &types, &portal.formats) {
                        Ok(values) => {
                            let refs: Vec<Option<&[u8]>> =
                                values.iter().map(Option::as_deref).collect();
                            s.data_row(&refs)?;
                        }
                        Err(f) => return self.fail(s, &f),
                    }
                }
                let count = end - portal.sent;
                portal.sent = end;
                let more = end < rows.len();
                portal.result = Some(Outcome::Rows {
                    columns,
                    rows,
                    verb: verb.clone(),
                });
                self.portals.insert(name.to_vec(), portal);
                if more {
                    s.portal_suspended()
                } else {
                    s.command_complete(&tag(&verb, count))
                }
            }
            Outcome::Done(t) => s.command_complete(&t),
            Outcome::Empty => s.empty_query_response(),
            Outcome::CopyOut { columns, lines } => self.send_copy_out(s, columns, &lines),
            Outcome::CopyIn(mut copy) => {
                copy.extended = true;
                s.copy_in_response(&copy_response(copy.columns())?)?;
                self.copy = Some(copy);
                Ok(())
            }
        }
    }
}
