//! The smallest useful server on `pgproto::Server`: blocking `std::net`, one thread per
//! connection, no TLS, trust authentication, and one table in memory.
//!
//! ```text
//! cargo run --example minimal_server -- [ADDR]        (default 127.0.0.1:5434)
//! psql "host=127.0.0.1 port=5434 user=anyone sslmode=disable" -c "SELECT * FROM fruits"
//! ```
//!
//! `SELECT * FROM fruits` (any case, optional `;`) returns three rows; an empty query gets
//! EmptyQueryResponse; any other `SELECT ... FROM x` is `42P01` (relation does not exist) and
//! anything else `42601` (syntax error). The extended protocol is refused with `0A000`.
//!
//! The run loop ([`serve`]) is the contract of the crate: after every input, drain
//! `poll_event` until it returns `Ok(None)`, answering each event, then drain `poll_transmit`
//! and write the bytes. [`answer`] is the only place that looks at events.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use pgproto::{
    ErrorFields, FieldCode, FieldDescription, Format, FrontendMessage, RowDescription, Server,
    ServerAuth, ServerConfig, ServerEvent, TransactionStatus,
};

/// The table: name and colour.
const FRUITS: [(&str, &str); 3] = [("apple", "red"), ("banana", "yellow"), ("lime", "green")];

fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:5434".into());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("minimal_server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    println!("listening on {local}");
    for socket in listener.incoming().flatten() {
        std::thread::spawn(move || {
            if let Err(e) = serve(socket) {
                eprintln!("minimal_server: connection: {e}");
            }
        });
    }
}

/// The run loop of one connection: read, feed, answer every event, write.
fn serve(mut socket: TcpStream) -> std::io::Result<()> {
    let mut server = Server::new(ServerConfig::default());
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            server.receive_eof();
        } else {
            server.receive(&buf[..n]);
        }
        let mut open = n > 0;
        loop {
            match server.poll_event() {
                Ok(Some(event)) => {
                    // Owned, so that `answer` can use the server while it reads the event.
                    let event = event.into_owned();
                    open &= answer(&mut server, event)
                }
                Ok(None) => break,
                // A protocol violation: a FATAL error is queued; send it and close.
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            socket.write_all(&bytes)?;
        }
        if !open {
            return Ok(());
        }
    }
}

/// Answers one event; `false` ends the connection.
fn answer(server: &mut Server, event: ServerEvent) -> bool {
    let done = match event {
        // No TLS here: answer `N`, the client goes on in plaintext (or gives up).
        ServerEvent::SslRequest => server.accept_ssl(false),
        ServerEvent::GssEncRequest => server.accept_gssenc(false),
        ServerEvent::Startup { .. } => server.authenticate(ServerAuth::Trust),
        // The parameters, cancel key and first ReadyForQuery are queued already.
        ServerEvent::Authenticated => Ok(()),
        ServerEvent::Message(FrontendMessage::Query(q)) => {
            // Not UTF-8: a syntax error like any other unknown text.
            let sql = q.as_str().unwrap_or("(invalid UTF-8)").to_string();
            query(server, &sql).and_then(|()| server.ready_for_query(TransactionStatus::Idle))
        }
        ServerEvent::Message(FrontendMessage::Sync) => {
            server.ready_for_query(TransactionStatus::Idle)
        }
        // Flush asks for nothing but the bytes already queued.
        ServerEvent::Message(FrontendMessage::Flush) => Ok(()),
        ServerEvent::Message(_) => server.error_response(&error(
            "0A000",
            "only simple queries are supported by this server",
        )),
        // Terminate, end of input, a CancelRequest, direct TLS: close.
        _ => return false,
    };
    done.is_ok()
}

/// Answers one simple Query (up to, not including, ReadyForQuery).
fn query(server: &mut Server, sql: &str) -> Result<(), pgproto::UsageError> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => server.empty_query_response(),
        ["select", "*", "from", "fruits"] => {
            let column = |name: &'static str| FieldDescription {
                name: name.as_bytes(),
                table_oid: 0,
                column_id: 0,
                type_oid: 25, // text
                type_size: -1,
                type_modifier: -1,
                format: Format::Text,
            };
            let description = RowDescription::new(&[column("name"), column("colour")])
                .expect("two fixed columns");
            server.row_description(&description)?;
            for (name, colour) in FRUITS {
                server.data_row(&[Some(name.as_bytes()), Some(colour.as_bytes())])?;
            }
            server.command_complete(&format!("SELECT {}", FRUITS.len()))
        }
        ["select", .., "from", table] => server.error_response(&error(
            "42P01",
            &format!("relation \"{table}\" does not exist"),
        )),
        _ => server.error_response(&error(
            "42601",
            "syntax error: this server only knows SELECT * FROM fruits",
        )),
    }
}

/// The fields of an ERROR.
fn error(code: &str, message: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, "ERROR"),
        (FieldCode::SeverityNonLocalized, "ERROR"),
        (FieldCode::Code, code),
        (FieldCode::Message, message),
    ])
    .expect("no NUL in these fields")
}
