//! A blocking PostgreSQL client on `std::net` and rustls, driving [`pgproto::Client`].
//!
//! ```text
//! cargo run --release --example client -- [--extended] [--verbose] [--trace FILE] "CONNINFO" "SQL" ["SQL" ...]
//! ```
//!
//! `CONNINFO` is a libpq keyword/value string (`host`, `port`, `user`, `password`, `dbname`,
//! `sslmode`, `sslrootcert`, `sslnegotiation`, `channel_binding`, `require_auth`,
//! `min_protocol_version`, `max_protocol_version`, `application_name`, `options`,
//! `connect_timeout`). Each SQL is sent as a simple Query; with `--extended`, each is sent as
//! Parse/Bind/Describe/Execute with its own Sync, pipelined: written before reading, in batches
//! that end after each statement starting with `COPY` (the server reads nothing but COPY data
//! until a COPY FROM STDIN ends). COPY FROM STDIN reads standard input, in both modes.
//!
//! The output is that of `psql -At`: one line per row, fields separated by `|`, NULL printed
//! as nothing, the command tag of statements that return no rows (`COPY n` after COPY FROM
//! STDIN), and COPY TO STDOUT's data as it came (without its tag); then, as psql, the
//! notifications that came with it (`Asynchronous notification "CHAN" received from server
//! process with PID N.`). A server error prints `ERROR:  <SQLSTATE>: <message>` to stderr
//! (over protocol 2.0, which has no SQLSTATE, the server's text: `ERROR:  <message>`); the
//! remaining statements still run and the command exits 1. Notices (`NOTICE:  <message>`,
//! `WARNING:  ...`) go to stderr as they arrive, before the results of their statement. A
//! connection error (the server closing, or breaking the protocol, for example a row that does
//! not match its RowDescription) prints `error: <what>` to stderr and exits 1 at once: nothing
//! of the result it interrupted is printed; a server that refuses the connection has its text
//! printed (`error: connection failed: FATAL:  ...`).
//!
//! Protocol 2.0 (PostgreSQL 6.4 to 13): `min_protocol_version=2.0 max_protocol_version=2.0`
//! sends the 2.0 StartupPacket at once; `min_protocol_version=2.0` alone falls back to 2.0 on a
//! new connection when the server refuses 3.x in 2.0's way, as libpq 13 did. `--extended` is
//! refused over 2.0, which has no extended query protocol. COPY FROM STDIN sends standard input
//! as it is, then the end-of-data line `\.`. With `--verbose`, once connected, it prints to
//! stderr:
//!
//! ```text
//! protocol 3.0            (or 3.2, or 2.0)
//! auth scram-sha-256      (trust, password, md5, scram-sha-256, scram-sha-256-plus)
//! tls on                  (or off)
//! cancel key 4 bytes
//! ```
//!
//! With `--trace FILE`, every message of the connection, both directions, from the first
//! start-up packet on, is written to `FILE` as libpq's `PQtrace` writes it (with timestamps, in
//! UTC; see `pgproto::trace`).
//!
//! The modules, one concern each: `conninfo.rs` parses the connection string, `tls.rs` sets up
//! rustls and checks the server's certificate as libpq's `sslmode` says, `conn.rs` is the
//! connection and its run loop (`Conn::pump`, the one place that polls the state machine's
//! events), `results.rs` holds errors and results, `trace.rs` the `--trace` file; this file is the
//! command line and the output.

mod conn;
mod conninfo;
mod results;
mod tls;
mod trace;

use std::io::{self, Read, Write};

use conn::connect;
use results::{
    io_err, DriverError, Notification, Outcome, ServerError, Statement, StatementResult,
};

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run_cli(
        &args,
        &mut io::stdin().lock(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    );
    std::process::exit(code);
}

const USAGE: &str = "usage: client [--extended] [--verbose] [--trace FILE] CONNINFO SQL [SQL ...]";

/// Prints a result as `psql -At` does: rows with `|` between fields and NULL as nothing, the
/// command tag of a command without rows (and of INSERT/UPDATE/DELETE/MERGE ... RETURNING),
/// COPY TO STDOUT data as it came.
fn print_result(r: &StatementResult, out: &mut dyn Write) -> io::Result<()> {
    if r.is_copy_out {
        return out.write_all(&r.copy_out);
    }
    if r.columns.is_some() {
        for row in &r.rows {
            if row.is_empty() {
                continue;
            }
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"|")?;
                }
                if let Some(v) = v {
                    out.write_all(v)?;
                }
            }
            out.write_all(b"\n")?;
        }
        let returning = r.tag.as_deref().is_some_and(|t| {
            ["INSERT", "UPDATE", "DELETE", "MERGE"]
                .iter()
                .any(|p| t.starts_with(p))
        });
        if !returning {
            return Ok(());
        }
    }
    match r.tag.as_deref() {
        Some(tag) if !tag.is_empty() => writeln!(out, "{tag}"),
        _ => Ok(()),
    }
}

fn print_outcome(
    o: &Outcome,
    notifications: Vec<Notification>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    for r in &o.results {
        print_result(r, out)?;
    }
    if let Some(e) = &o.error {
        writeln!(err, "{e}")?;
    }
    // As psql: after the statement's results.
    for n in notifications {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// The `client` example: `[--extended] [--verbose] CONNINFO SQL [SQL ...]`. Returns the exit
/// code: 0, 1 after a server error or a connection failure, 2 for a usage error.
fn run_cli(
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut extended = false;
    let mut verbose = false;
    let mut trace_path = None;
    let mut positional: Vec<&str> = Vec::new();
    let mut flags_done = false;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--extended" if !flags_done => extended = true,
            "--verbose" if !flags_done => verbose = true,
            "--trace" if !flags_done => {
                let Some(path) = args.next() else {
                    let _ = writeln!(stderr, "--trace needs a file\n{USAGE}");
                    return 2;
                };
                trace_path = Some(path.as_str());
            }
            "--" if !flags_done => flags_done = true,
            f if !flags_done && f.starts_with("--") => {
                let _ = writeln!(stderr, "unknown option {f}\n{USAGE}");
                return 2;
            }
            p => {
                flags_done = true;
                positional.push(p);
            }
        }
    }
    let Some((conninfo, sqls)) = positional.split_first() else {
        let _ = writeln!(stderr, "{USAGE}");
        return 2;
    };
    if sqls.is_empty() {
        let _ = writeln!(stderr, "{USAGE}");
        return 2;
    }
    let tracer = match trace_path.map(trace::file_tracer).transpose() {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot write the trace file: {e}");
            return 2;
        }
    };
    let mut conn = match connect(conninfo, tracer, Box::new(io::stderr())) {
        Ok(c) => c,
        Err(DriverError::Protocol(pgproto::Error::Server(f))) => {
            // The server's text (over protocol 2.0 as it sent it, without SQLSTATE).
            let _ = writeln!(
                stderr,
                "error: connection failed: {}",
                ServerError::from_fields(&f)
            );
            return 1;
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: connection failed: {e}");
            return 1;
        }
    };
    if verbose {
        for line in conn.verbose_lines() {
            let _ = writeln!(stderr, "{line}");
        }
    }
    let mut failed = false;
    let mut report = |o: &Outcome, notifications, out: &mut dyn Write, err: &mut dyn Write| {
        failed |= o.error.is_some();
        print_outcome(o, notifications, out, err)
    };
    let result: Result<(), DriverError> = (|| {
        if extended {
            let statements: Vec<Statement> = sqls.iter().map(|s| Statement::new(*s)).collect();
            conn.pipeline(&statements, stdin, &mut |o, notifications| {
                report(&o, notifications, stdout, stderr).map_err(io_err("write output"))
            })?;
        } else {
            for sql in sqls {
                let o = conn.query_with_input(sql, stdin)?;
                conn.flush_notices();
                let notifications = conn.take_notifications();
                report(&o, notifications, stdout, stderr).map_err(io_err("write output"))?;
            }
        }
        conn.terminate()
    })();
    let _ = stdout.flush();
    match result {
        Err(DriverError::Server(e)) => {
            let _ = writeln!(stderr, "{e}");
            1
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
        Ok(()) if failed => 1,
        Ok(()) => 0,
    }
}
