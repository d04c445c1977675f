//! A blocking PostgreSQL client on `std::net` and rustls, driving [`pgproto::Client`].
//!
//! ```text
//! cargo run --release --example client -- [--extended] [--verbose] "CONNINFO" "SQL" ["SQL" ...]
//! ```
//!
//! `CONNINFO` is a libpq keyword/value string (`host`, `port`, `user`, `password`, `dbname`,
//! `sslmode`, `sslrootcert`, `sslnegotiation`, `channel_binding`, `require_auth`,
//! `min_protocol_version`, `max_protocol_version`, `application_name`, `options`,
//! `connect_timeout`). Each SQL is sent as a simple Query; with `--extended`, each is sent as
//! Parse/Bind/Describe/Execute with its own Sync, all pipelined before reading. COPY FROM STDIN
//! reads standard input (simple queries only).
//!
//! The output is that of `psql -At`: one line per row, fields separated by `|`, NULL printed
//! as nothing, and the command tag of statements that return no rows. A server error prints
//! `ERROR:  <SQLSTATE>: <message>` to stderr; the remaining statements still run and the
//! command exits 1. With `--verbose`, once connected, it prints to stderr:
//!
//! ```text
//! protocol 3.0            (or 3.2)
//! auth scram-sha-256      (trust, password, md5, scram-sha-256, scram-sha-256-plus)
//! tls on                  (or off)
//! cancel key 4 bytes
//! ```
//!
//! The driver itself is in `driver.rs`, shared with the live tests.

mod driver;

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = driver::run_cli(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
