//! A replication client on `std::net` and rustls, driving [`pgproto::Client`] on replication
//! connections.
//!
//! ```text
//! cargo run --release --example replicate -- logical "CONNINFO" --slot NAME [--create-slot] [--temporary]
//!       --publication NAME [--publication NAME ...] [--proto-version 1|2|3|4] [--streaming off|on|parallel]
//!       [--two-phase] [--messages] [--origin any|none] [--start LSN] --end LSN
//! cargo run --release --example replicate -- physical "CONNINFO" --dir DIR [--slot NAME] [--start LSN] --end LSN
//! cargo run --release --example replicate -- basebackup "CONNINFO" --dir DIR
//! ```
//!
//! `CONNINFO` is a libpq keyword/value string (`host`, `port`, `user`, `password`, `dbname`,
//! `sslmode` and the others the `client` example reads); the example adds `replication`
//! itself (`database` for `logical`, `true` for the others, which need no `dbname`).
//!
//! - `logical` streams pgoutput from a logical slot and prints the changes exactly as
//!   `pg_recvlogical --plugin=test_decoding -o skip-empty-xacts=1 --start --endpos=LSN -f -`
//!   prints them for the same changes (see `decoding.rs`); types come from a catalog query on a
//!   second, normal connection with the same connection string. `--create-slot` makes a
//!   persistent pgoutput slot (temporary with `--temporary`, then streamed on the same
//!   connection), with two-phase decoding for `--two-phase`. The pgoutput options are sent as
//!   given, so that the server judges them: a refusal prints the server's error and exits 1
//!   with nothing on stdout. See `logical.rs` for `--end` and the status updates.
//! - `physical` writes WAL as `pg_receivewal -D DIR --endpos LSN` does (`physical.rs`).
//! - `basebackup` writes `base.tar` (and one tar per tablespace) and `backup_manifest` as
//!   `pg_basebackup -Ft -X none -D DIR` does (`basebackup.rs`); PostgreSQL 18's
//!   `pg_verifybackup -n DIR` accepts it.
//!
//! Errors go to stderr (`replicate: ...`, or the server's `ERROR:  SQLSTATE: message`) and the
//! exit status is 1; bad usage exits 2. The connection and its run loop are `conn.rs`
//! (`Conn::pump` is the one place that polls the state machine's events).

#[path = "../client/conninfo.rs"]
mod conninfo;
// The client example's result types are not all used here.
#[allow(dead_code)]
#[path = "../client/results.rs"]
mod results;
// Not every helper of the client example's TLS layer is used here.
#[allow(dead_code)]
#[path = "../client/tls.rs"]
mod tls;

mod basebackup;
mod conn;
mod decoding;
mod logical;
mod names;
mod physical;

use std::path::PathBuf;

use pgproto::replication::Lsn;

use results::DriverError;

const USAGE: &str = "usage:
  replicate logical \"CONNINFO\" --slot NAME [--create-slot] [--temporary] --publication NAME [--publication NAME ...]
        [--proto-version 1|2|3|4] [--streaming off|on|parallel] [--two-phase] [--messages] [--origin any|none]
        [--start LSN] --end LSN
  replicate physical \"CONNINFO\" --dir DIR [--slot NAME] [--start LSN] --end LSN
  replicate basebackup \"CONNINFO\" --dir DIR";

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The command line.
    #[error("{0}")]
    Usage(String),
    /// The connection or the server.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Writing the output.
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// Anything else.
    #[error("{0}")]
    Message(String),
}

impl From<pgproto::UsageError> for Failure {
    fn from(e: pgproto::UsageError) -> Self {
        Self::Driver(DriverError::Usage(e))
    }
}

/// The command line, one option at a time.
struct Opts {
    args: std::vec::IntoIter<String>,
}

impl Opts {
    fn value(&mut self, flag: &str) -> Result<String, Failure> {
        self.args
            .next()
            .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
    }

    fn lsn(&mut self, flag: &str) -> Result<Lsn, Failure> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| Failure::Usage(format!("{flag}: invalid LSN {v:?}")))
    }
}

fn parse(argv: Vec<String>) -> Result<Command, Failure> {
    let mut it = argv.into_iter();
    let command = it
        .next()
        .ok_or_else(|| Failure::Usage("no command".into()))?;
    let conninfo = it
        .next()
        .ok_or_else(|| Failure::Usage("no connection string".into()))?;
    let mut o = Opts { args: it };
    let unknown = |f: &str| Failure::Usage(format!("unknown option {f} for {command}"));
    match command.as_str() {
        "logical" => {
            let mut a = logical::Args {
                conninfo,
                ..Default::default()
            };
            let mut end = None;
            while let Some(flag) = o.args.next() {
                match flag.as_str() {
                    "--slot" => a.slot = o.value(&flag)?,
                    "--create-slot" => a.create_slot = true,
                    "--temporary" => a.temporary = true,
                    "--publication" => a.publications.push(o.value(&flag)?),
                    "--proto-version" => {
                        let v = o.value(&flag)?;
                        if !["1", "2", "3", "4"].contains(&v.as_str()) {
                            return Err(Failure::Usage(format!("--proto-version: {v}")));
                        }
                        a.proto_version = Some(v);
                    }
                    "--streaming" => {
                        let v = o.value(&flag)?;
                        if !["off", "on", "parallel"].contains(&v.as_str()) {
                            return Err(Failure::Usage(format!("--streaming: {v}")));
                        }
                        a.streaming = Some(v);
                    }
                    "--two-phase" => a.two_phase = true,
                    "--messages" => a.messages = true,
                    "--origin" => {
                        let v = o.value(&flag)?;
                        if !["any", "none"].contains(&v.as_str()) {
                            return Err(Failure::Usage(format!("--origin: {v}")));
                        }
                        a.origin = Some(v);
                    }
                    "--start" => a.start = o.lsn(&flag)?,
                    "--end" => end = Some(o.lsn(&flag)?),
                    f => return Err(unknown(f)),
                }
            }
            if a.slot.is_empty() || a.publications.is_empty() {
                return Err(Failure::Usage(
                    "logical needs --slot and --publication".into(),
                ));
            }
            if a.temporary && !a.create_slot {
                return Err(Failure::Usage("--temporary needs --create-slot".into()));
            }
            a.end = end.ok_or_else(|| Failure::Usage("logical needs --end".into()))?;
            Ok(Command::Logical(a))
        }
        "physical" => {
            let mut a = physical::Args {
                conninfo,
                ..Default::default()
            };
            let mut end = None;
            while let Some(flag) = o.args.next() {
                match flag.as_str() {
                    "--dir" => a.dir = PathBuf::from(o.value(&flag)?),
                    "--slot" => a.slot = Some(o.value(&flag)?),
                    "--start" => a.start = Some(o.lsn(&flag)?),
                    "--end" => end = Some(o.lsn(&flag)?),
                    f => return Err(unknown(f)),
                }
            }
            if a.dir.as_os_str().is_empty() {
                return Err(Failure::Usage("physical needs --dir".into()));
            }
            a.end = end.ok_or_else(|| Failure::Usage("physical needs --end".into()))?;
            Ok(Command::Physical(a))
        }
        "basebackup" => {
            let mut a = basebackup::Args {
                conninfo,
                ..Default::default()
            };
            while let Some(flag) = o.args.next() {
                match flag.as_str() {
                    "--dir" => a.dir = PathBuf::from(o.value(&flag)?),
                    f => return Err(unknown(f)),
                }
            }
            if a.dir.as_os_str().is_empty() {
                return Err(Failure::Usage("basebackup needs --dir".into()));
            }
            Ok(Command::BaseBackup(a))
        }
        other => Err(Failure::Usage(format!("unknown command {other}"))),
    }
}

enum Command {
    Logical(logical::Args),
    Physical(physical::Args),
    BaseBackup(basebackup::Args),
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let result = parse(argv).and_then(|c| match c {
        Command::Logical(a) => logical::run(&a),
        Command::Physical(a) => physical::run(&a),
        Command::BaseBackup(a) => basebackup::run(&a),
    });
    match result {
        Ok(()) => {}
        Err(Failure::Usage(m)) => {
            eprintln!("replicate: {m}\n{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Driver(DriverError::Server(e))) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("replicate: {e}");
            std::process::exit(1);
        }
    }
}
