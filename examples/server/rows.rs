//! Results as SQLite produces them: a statement's rows go to a [`RowSink`] one at a time, and
//! the sinks that send them (`session.rs`, `extended.rs`) pass the output on to the socket in
//! pieces, so no result is held whole and a client that does not read stops the statement
//! (it waits in [`Wire::queued`](crate::backend::Wire::queued)) instead of growing the server.
//!
//! A column without a declared type (an expression) is reported with the type of its first
//! non-NULL value among the first [`LOOKAHEAD_ROWS`] rows (or [`LOOKAHEAD_BYTES`]), which are
//! read before RowDescription is sent; text if they are all NULL.
//!
//! [`Collect`] is the one sink that keeps rows: for a portal fetched in parts (Execute with a
//! row limit) and for Describe of a portal, at most [`HELD_BYTES`].

use std::collections::VecDeque;

use pgproto::ErrorFields;
use rusqlite::Statement;

use crate::exec::{sqlerr, Columns};
use crate::session::Side;
use crate::values::{error, Cell, PgType};

/// Rows read ahead, at most, to find the types of columns without a declared type.
pub(crate) const LOOKAHEAD_ROWS: usize = 1000;

/// Bytes of values read ahead, at most, to find the types of columns without a declared type.
pub(crate) const LOOKAHEAD_BYTES: usize = 256 * 1024;

/// Bytes of rows a portal keeps at most (a result fetched in parts, or the RETURNING rows of a
/// data-modifying statement run by Describe); a larger one fails with 54000.
pub(crate) const HELD_BYTES: usize = 8 * 1024 * 1024;

/// Whether a sink wants more rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on.
    More,
    /// Stop reading (the client went away, or the sink has what it needs).
    Stop,
}

/// Where a statement's results go.
pub(crate) trait RowSink {
    /// The column types to report values as, if fixed already (what Describe told the
    /// client); `None` to find them (declared types, else read ahead).
    fn types(&self) -> Option<Vec<PgType>> {
        None
    }

    /// Before the first row (also when there is none): the columns with the types their values
    /// are shown as, and the messages to send before the result.
    fn begin(&mut self, columns: &Columns, side: Vec<Side>) -> Result<Flow, ErrorFields>;

    /// One row.
    fn row(&mut self, row: &[Cell]) -> Result<Flow, ErrorFields>;

    /// COPY TO STDOUT begins: the number of columns, the messages to send first.
    fn copy_begin(&mut self, _columns: usize, _side: Vec<Side>) -> Result<(), ErrorFields> {
        Err(error("0A000", "COPY cannot run here"))
    }

    /// One line of COPY TO STDOUT.
    fn copy_line(&mut self, _line: &[u8]) -> Result<Flow, ErrorFields> {
        Err(error("0A000", "COPY cannot run here"))
    }
}

/// How a statement's rows went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streamed {
    /// Rows given to the sink.
    pub(crate) rows: u64,
    /// Whether every row was read (the sink never said stop).
    pub(crate) complete: bool,
}

/// The memory a value is counted for.
pub(crate) fn cell_size(c: &Cell) -> usize {
    16 + match c {
        Cell::Text(b) | Cell::Blob(b) => b.len(),
        _ => 8,
    }
}

/// The memory a row is counted for.
pub(crate) fn row_size(row: &[Cell]) -> usize {
    24 + row.iter().map(cell_size).sum::<usize>()
}

fn read_row(row: &rusqlite::Row<'_>, n: usize, into: &mut Vec<Cell>) -> Result<(), ErrorFields> {
    into.clear();
    for i in 0..n {
        into.push(Cell::from(row.get_ref(i).map_err(sqlerr)?));
    }
    Ok(())
}

/// Reads the rows of `stmt` (its parameters bound) into `sink`. The column types are `types`
/// when given (what Describe told the client), else the declared ones, else found by reading
/// ahead. An error after some rows comes after them, as in PostgreSQL.
pub(crate) fn stream(
    stmt: &mut Statement<'_>,
    types: Option<&[PgType]>,
    side: Vec<Side>,
    sink: &mut dyn RowSink,
) -> Result<Streamed, ErrorFields> {
    let n = stmt.column_count();
    let declared: Vec<(String, Option<PgType>)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), PgType::from_decl(c.decl_type())))
        .collect();
    let mut query = stmt.raw_query();
    let mut ahead: VecDeque<Vec<Cell>> = VecDeque::new();
    let mut ended = false;
    let found: Vec<Option<PgType>> = match types {
        Some(t) => (0..n).map(|i| t.get(i).copied()).collect(),
        None => {
            let mut found: Vec<Option<PgType>> = declared.iter().map(|(_, t)| *t).collect();
            let mut bytes = 0;
            while found.iter().any(Option::is_none)
                && ahead.len() < LOOKAHEAD_ROWS
                && bytes < LOOKAHEAD_BYTES
            {
                let Some(row) = query.next().map_err(sqlerr)? else {
                    ended = true;
                    break;
                };
                let mut cells = Vec::with_capacity(n);
                read_row(row, n, &mut cells)?;
                for (slot, cell) in found.iter_mut().zip(&cells) {
                    if slot.is_none() {
                        *slot = PgType::of_cell(cell);
                    }
                }
                bytes += row_size(&cells);
                ahead.push_back(cells);
            }
            found
        }
    };
    let columns: Columns = declared
        .into_iter()
        .zip(found)
        .map(|((name, _), ty)| (name, ty.unwrap_or(PgType::Text)))
        .collect();
    let mut rows = 0u64;
    let stopped = Streamed {
        rows: 0,
        complete: false,
    };
    if sink.begin(&columns, side)? == Flow::Stop {
        return Ok(stopped);
    }
    while let Some(row) = ahead.pop_front() {
        rows += 1;
        if sink.row(&row)? == Flow::Stop {
            return Ok(Streamed { rows, ..stopped });
        }
    }
    if !ended {
        let mut cells = Vec::with_capacity(n);
        while let Some(row) = query.next().map_err(sqlerr)? {
            read_row(row, n, &mut cells)?;
            rows += 1;
            if sink.row(&cells)? == Flow::Stop {
                return Ok(Streamed { rows, ..stopped });
            }
        }
    }
    Ok(Streamed {
        rows,
        complete: true,
    })
}

/// Gives rows already in memory (SHOW's) to `sink`.
pub(crate) fn feed(
    columns: &Columns,
    rows: &[Vec<Cell>],
    side: Vec<Side>,
    sink: &mut dyn RowSink,
) -> Result<Streamed, ErrorFields> {
    let mut streamed = Streamed {
        rows: 0,
        complete: false,
    };
    if sink.begin(columns, side)? == Flow::Stop {
        return Ok(streamed);
    }
    for row in rows {
        streamed.rows += 1;
        if sink.row(row)? == Flow::Stop {
            return Ok(streamed);
        }
    }
    streamed.complete = true;
    Ok(streamed)
}

/// A sink that keeps the rows: at most [`HELD_BYTES`] (beyond: 54000), and with `ahead` it
/// stops once it holds more than the read-ahead (the statement is run again later).
#[derive(Debug, Default)]
pub(crate) struct Collect {
    /// Stop after this many bytes, if set.
    pub(crate) ahead: Option<usize>,
    /// The column types, once known.
    pub(crate) columns: Option<Columns>,
    /// The messages to send before the result.
    pub(crate) side: Vec<Side>,
    /// The rows.
    pub(crate) rows: Vec<Vec<Cell>>,
    bytes: usize,
}

impl Collect {
    /// A sink that keeps every row (up to [`HELD_BYTES`]).
    pub(crate) fn all() -> Self {
        Self::default()
    }

    /// A sink that stops after the read-ahead.
    pub(crate) fn ahead() -> Self {
        Self {
            ahead: Some(LOOKAHEAD_BYTES),
            ..Self::default()
        }
    }
}

impl RowSink for Collect {
    fn begin(&mut self, columns: &Columns, side: Vec<Side>) -> Result<Flow, ErrorFields> {
        self.columns = Some(columns.clone());
        self.side = side;
        Ok(Flow::More)
    }

    fn row(&mut self, row: &[Cell]) -> Result<Flow, ErrorFields> {
        self.bytes += row_size(row);
        if self
            .ahead
            .is_some_and(|a| self.bytes > a || self.rows.len() >= LOOKAHEAD_ROWS)
        {
            return Ok(Flow::Stop);
        }
        if self.bytes > HELD_BYTES {
            return Err(error(
                "54000",
                &format!(
                    "result too large to keep in a portal (over {} MiB): fetch it whole, \
                     with Execute and no row limit",
                    HELD_BYTES >> 20
                ),
            ));
        }
        self.rows.push(row.to_vec());
        Ok(Flow::More)
    }
}
