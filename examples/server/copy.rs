//! COPY in text format: `COPY table [(columns)] FROM STDIN` inserts the rows as they come,
//! `COPY table|(query) TO STDOUT` sends one CopyData per row as it reads them.

use pgproto::ErrorFields;
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::command::{quote_ident, CopySpec};
use crate::exec::{open_write_tx, sqlerr, Outcome};
use crate::rows::{Flow, RowSink};
use crate::session::{Session, Tx};
use crate::values::{self, error, Cell, PgType};

/// COPY FROM STDIN in progress.
#[derive(Debug)]
pub(crate) struct CopyIn {
    table: String,
    insert: String,
    names: Vec<String>,
    types: Vec<Option<PgType>>,
    delimiter: u8,
    null: String,
    buf: Vec<u8>,
    rows: u64,
    line: u64,
    ended: bool,
    /// Started by Execute (no Query to continue afterwards).
    pub(crate) extended: bool,
}

impl CopyIn {
    /// The number of columns.
    pub(crate) fn columns(&self) -> usize {
        self.names.len()
    }

    /// Inserts the complete lines of `data` (and what was left over before).
    pub(crate) fn feed(&mut self, db: &Connection, data: &[u8]) -> Result<(), ErrorFields> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(n) = memchr::memchr(b'\n', &self.buf[start..]) {
            let line = self.buf[start..start + n].to_vec();
            start += n + 1;
            self.insert_line(db, &line)?;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Inserts a last line without newline; the number of rows copied.
    pub(crate) fn finish(&mut self, db: &Connection) -> Result<u64, ErrorFields> {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.insert_line(db, &rest)?;
        }
        Ok(self.rows)
    }

    fn insert_line(&mut self, db: &Connection, line: &[u8]) -> Result<(), ErrorFields> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.ended {
            return Ok(());
        }
        self.line += 1;
        if line == b"\\." {
            self.ended = true;
            return Ok(());
        }
        let context = format!("COPY {}, line {}", self.table, self.line);
        let ctx = |f: ErrorFields| values::with_context(&f, &context);
        let fields = values::copy_in_fields(line, self.delimiter, &self.null);
        if fields.len() < self.names.len() {
            let missing = &self.names[fields.len()];
            return Err(ctx(error(
                "22P04",
                &format!("missing data for column \"{missing}\""),
            )));
        }
        if fields.len() > self.names.len() {
            return Err(ctx(error("22P04", "extra data after last expected column")));
        }
        let values = fields
            .iter()
            .zip(&self.types)
            .map(|(f, ty)| match f {
                Some(text) => values::copy_in_value(text, *ty),
                None => Ok(Value::Null),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(ctx)?;
        let mut stmt = db.prepare_cached(&self.insert).map_err(sqlerr)?;
        for (i, v) in values.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, v).map_err(sqlerr)?;
        }
        stmt.raw_execute().map_err(|e| ctx(sqlerr(e)))?;
        self.rows += 1;
        Ok(())
    }
}

impl Session {
    pub(crate) fn copy_in(&mut self, spec: &CopySpec) -> Result<Outcome, ErrorFields> {
        let table = spec.table.clone().unwrap_or_default();
        let cols = if spec.columns.is_empty() {
            "*".to_string()
        } else {
            spec.columns.join(", ")
        };
        let stmt = self
            .db
            .prepare(&format!("SELECT {cols} FROM {table}"))
            .map_err(sqlerr)?;
        let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let types = stmt
            .columns()
            .iter()
            .map(|c| PgType::from_decl(c.decl_type()))
            .collect();
        drop(stmt);
        let quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            quoted.join(", "),
            placeholders.join(", ")
        );
        // The whole COPY is one transaction.
        if self.tx == Tx::Idle {
            self.tx = Tx::Implicit;
        }
        open_write_tx(&self.db, self.tx)?;
        Ok(Outcome::CopyIn(CopyIn {
            table: table.trim_matches('"').to_string(),
            insert,
            names,
            types,
            delimiter: spec.delimiter,
            null: spec.null.clone(),
            buf: Vec::new(),
            rows: 0,
            line: 0,
            ended: false,
            extended: false,
        }))
    }

    /// COPY TO STDOUT: every row as one line, given to `sink` as it is read. A column
    /// without a declared type is shown as its first non-NULL value's type.
    pub(crate) fn copy_out(
        &mut self,
        spec: &CopySpec,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome, ErrorFields> {
        let query = match (&spec.query, &spec.table) {
            (Some(q), _) => q.clone(),
            (None, Some(t)) if spec.columns.is_empty() => format!("SELECT * FROM {t}"),
            (None, Some(t)) => format!("SELECT {} FROM {t}", spec.columns.join(", ")),
            (None, None) => return Err(error("42601", "COPY needs a table or a query")),
        };
        let mut stmt = self.db.prepare(&query).map_err(sqlerr)?;
        let n = stmt.column_count();
        let mut types: Vec<Option<PgType>> = stmt
            .columns()
            .iter()
            .map(|c| PgType::from_decl(c.decl_type()))
            .collect();
        sink.copy_begin(n, std::mem::take(&mut self.side))?;
        let mut rows = stmt.raw_query();
        let mut count = 0u64;
        let mut line = Vec::new();
        while let Some(row) = rows.next().map_err(sqlerr)? {
            line.clear();
            for (i, ty) in types.iter_mut().enumerate() {
                let cell = Cell::from(row.get_ref(i).map_err(sqlerr)?);
                if ty.is_none() {
                    *ty = PgType::of_cell(&cell);
                }
                if i > 0 {
                    line.push(spec.delimiter);
                }
                let text = values::encode_text(&cell, ty.unwrap_or(PgType::Text));
                values::copy_out_field(&mut line, text.as_deref(), spec.delimiter, &spec.null);
            }
            line.push(b'\n');
            count += 1;
            if sink.copy_line(&line)? == Flow::Stop {
                break;
            }
        }
        Ok(Outcome::CopyOut(count))
    }
}
