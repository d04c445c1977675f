//! The `client` example's command line run as a process, and `psql -X -At` run the same way,
//! for the tests that compare their outputs.

use std::process::{Command, Stdio};
use std::thread;

use super::pg::{self, PgVersion};

/// What a run of the `client` example gave.
pub(crate) struct CliRun {
    /// The exit code.
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Runs the `client` example (`cargo run --example client -- ARGS`) with `stdin` as input.
pub(crate) fn run_cli(args: &[&str], stdin: &[u8]) -> CliRun {
    let mut child = Command::new(super::examples::example("client"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the client example");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // Written from a thread: the example may answer before reading all of it.
    let writer = thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut input, &data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    CliRun {
        code: out.status.code().expect("the client example was killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// What `psql -X -A -t -c SQL -c SQL ...` prints on standard output for `sqls`, run with
/// `stdin` as input (COPY FROM STDIN reads it) and no `PG*` environment variable.
pub(crate) fn psql_at(version: PgVersion, conninfo: &str, sqls: &[&str], stdin: &[u8]) -> String {
    let mut cmd = Command::new(pg::psql(version));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.args(["-X", "-A", "-t", "-w", "-d", conninfo]);
    for sql in sqls {
        cmd.arg("-c").arg(sql);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}
