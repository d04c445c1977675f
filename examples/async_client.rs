//! An async client on tokio, driving `pgproto::Client`: connect, run each SQL as a simple
//! Query, print the results as `psql -X -At` does.
//!
//! ```text
//! cargo run --example async_client -- "CONNINFO" "SQL" ["SQL" ...]
//! ```
//!
//! `CONNINFO` is a libpq connection string (keyword/value pairs or a `postgresql://` URI, read
//! by `pgproto::conninfo` as libpq reads it) of `host` (default `127.0.0.1`), `port` (5432),
//! `user` (`$USER`), `password`, `dbname`, and `sslmode`, which must be `disable` (this example
//! has no TLS). Trust, cleartext, MD5 and SCRAM-SHA-256
//! authentication are done by the state machine with the password given.
//!
//! Output: one line per row, fields separated by `|`, NULL as nothing; the command tag of
//! statements without rows (and of INSERT/UPDATE/DELETE/MERGE ... RETURNING); COPY TO STDOUT
//! data as it comes. Errors go to stderr as `ERROR:  <SQLSTATE>: <message>` (the blocking
//! `client` example's format), notices as `NOTICE:  <message>`; the remaining statements still
//! run and the exit status is 1. COPY FROM STDIN is refused with CopyFail.
//!
//! [`Conn::next_event`] is the run loop and the only place that polls the state machine's
//! events; everything else reacts to the events it returns.

use std::io::Write;

use pgproto::conninfo::ConnInfo;
use pgproto::{
    BackendMessage, Client, ClientConfig, ClientEvent, Encryption, ErrorFields, RequestId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error>;

/// A connection: the state machine and its socket.
struct Conn {
    client: Client,
    socket: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Writes every byte the state machine has queued.
    async fn flush(&mut self) -> Result<(), BoxError> {
        while let Some(bytes) = self.client.poll_transmit() {
            self.socket.write_all(&bytes).await?;
        }
        Ok(())
    }

    /// The run loop: the next event, writing what is queued and reading from the server when
    /// the state machine has nothing to hand out.
    async fn next_event(&mut self) -> Result<ClientEvent, BoxError> {
        loop {
            if let Some(event) = self.client.poll_event()? {
                return Ok(event.into_owned());
            }
            self.flush().await?;
            let n = self.socket.read(&mut self.buf).await?;
            if n == 0 {
                self.client.receive_eof();
            } else {
                self.client.receive(&self.buf[..n]);
            }
        }
    }
}

/// The severity, SQLSTATE and message of an ErrorResponse or NoticeResponse.
fn describe(f: &ErrorFields) -> [String; 3] {
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let severity = text(f.severity_nonlocalized().or(f.severity()));
    [severity, text(f.code()), text(f.message())]
}

/// Reads the connection string with `pgproto::conninfo` (as libpq reads it: keyword/value or a
/// `postgresql://` URI) and keeps to what this example does: no TLS, so no `sslmode` but
/// `disable`, and nothing beyond host, port, user, password and dbname.
fn config(conninfo: &str) -> Result<(String, ClientConfig), BoxError> {
    let mut info = ConnInfo::parse(conninfo)?;
    for (key, value) in info.iter() {
        let supported = matches!(key, "host" | "port" | "user" | "password" | "dbname")
            || (key, value) == ("sslmode", "disable");
        if !supported {
            return Err(format!("unsupported connection option \"{key}={value}\"").into());
        }
    }
    if info.get("user").is_none() {
        info.set("user", std::env::var("USER").unwrap_or_default())?;
    }
    let host = info.get("host").unwrap_or("127.0.0.1");
    let port = info.get("port").unwrap_or("5432");
    let addr = format!("{host}:{port}");
    let mut config = info.client_config()?;
    config.encryption = Encryption::None;
    Ok((addr, config))
}

/// Runs one simple Query to its ReadyForQuery, printing as it goes; returns whether it failed.
async fn run_query(conn: &mut Conn, sql: &str, out: &mut impl Write) -> Result<bool, BoxError> {
    let id: RequestId = conn.client.query(sql)?;
    let (mut has_rows, mut failed) = (false, false);
    loop {
        let message = match conn.next_event().await? {
            ClientEvent::Response { request, message } if request == id => message,
            ClientEvent::Notice(f) => {
                let [severity, _, message] = describe(&f);
                eprintln!("{severity}:  {message}");
                continue;
            }
            ClientEvent::Closed => return Err("the server closed the connection".into()),
            _ => continue,
        };
        match message {
            // Rows follow (psql prints COPY TO STDOUT data without its tag, too).
            BackendMessage::RowDescription(_) | BackendMessage::CopyOutResponse(_) => {
                has_rows = true
            }
            BackendMessage::DataRow(row) => {
                // Each value is checked as it is read; NULL prints as nothing, as psql -At does.
                let fields = row.columns().collect::<Result<Vec<_>, _>>()?;
                let fields: Vec<&[u8]> =
                    fields.into_iter().map(Option::unwrap_or_default).collect();
                out.write_all(&fields.join(&b'|'))?;
                out.write_all(b"\n")?;
            }
            BackendMessage::CommandComplete(c) => {
                let tag = String::from_utf8_lossy(c.tag());
                let returning = ["INSERT", "UPDATE", "DELETE", "MERGE"]
                    .iter()
                    .any(|p| tag.starts_with(p));
                if (!has_rows || returning) && !tag.is_empty() {
                    writeln!(out, "{tag}")?;
                }
                has_rows = false;
            }
            BackendMessage::CopyData(d) => out.write_all(d.data())?,
            BackendMessage::CopyInResponse(_) => conn
                .client
                .copy_fail("COPY FROM STDIN is not supported here")?,
            BackendMessage::ErrorResponse(f) => {
                let [severity, code, message] = describe(&f);
                eprintln!("{severity}:  {code}: {message}");
                failed = true;
            }
            BackendMessage::ReadyForQuery(_) => return Ok(failed),
            _ => {}
        }
    }
}

async fn run(args: &[String]) -> Result<bool, BoxError> {
    let (addr, config) = config(&args[0])?;
    let mut conn = Conn {
        client: Client::new(config)?,
        socket: TcpStream::connect(&addr).await?,
        buf: vec![0; 64 * 1024],
    };
    conn.socket.set_nodelay(true)?;
    // Start-up: the state machine does authentication; wait until it says we are connected.
    loop {
        match conn.next_event().await? {
            ClientEvent::Connected { .. } => break,
            ClientEvent::AuthenticationRequest(a) => {
                return Err(format!("unsupported authentication request: {a:?}").into())
            }
            _ => {}
        }
    }
    let mut failed = false;
    let stdout = std::io::stdout();
    for sql in &args[1..] {
        let mut out = stdout.lock();
        failed |= run_query(&mut conn, sql, &mut out).await?;
        out.flush()?;
    }
    conn.client.terminate()?;
    conn.flush().await?;
    Ok(failed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: async_client CONNINFO SQL [SQL ...]");
        std::process::exit(2);
    }
    match run(&args).await {
        Ok(false) => {}
        Ok(true) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
