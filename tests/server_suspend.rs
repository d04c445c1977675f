//! `Server::suspend` and `SuspendedServer::resume`: a session suspended at every idle point
//! behaves exactly as one never suspended (same bytes out, same events, same answers accepted
//! and refused), suspension is refused whenever the session is not idle, and a suspended
//! session is small.

use std::sync::{Arc, Mutex};

use pgproto::trace::{TraceFlags, Tracer};
use pgproto::{
    ErrorFields, FieldDescription, FrontendMessage, RowDescription, Server, ServerAuth,
    ServerConfig, ServerEvent, SuspendedServer, TransactionStatus,
};

/// A frame: tag, length, body.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn query(sql: &str) -> Vec<u8> {
    frame(b'Q', &[sql.as_bytes(), b"\0"].concat())
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    frame(
        b'P',
        &[name.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat(),
    )
}

/// Bind of portal `portal` to statement `statement`, no parameters, text results.
fn bind(portal: &str, statement: &str) -> Vec<u8> {
    frame(
        b'B',
        &[
            portal.as_bytes(),
            b"\0",
            statement.as_bytes(),
            b"\0\0\0\0\0\0\0",
        ]
        .concat(),
    )
}

fn describe_portal(portal: &str) -> Vec<u8> {
    frame(b'D', &[b"P", portal.as_bytes(), b"\0"].concat())
}

fn execute(portal: &str) -> Vec<u8> {
    frame(b'E', &[portal.as_bytes(), b"\0\0\0\0\0"].concat())
}

fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

fn flush() -> Vec<u8> {
    frame(b'H', b"")
}

fn startup() -> Vec<u8> {
    let body = b"\0\x03\0\0user\0alice\0database\0shop\0\0";
    let mut f = (body.len() as u32 + 4).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// What one run saw: every transmitted byte string, every event and every answer's result,
/// in order.
#[derive(Debug, Default, PartialEq)]
struct Log(Vec<String>);

/// The application: answers each request as a tiny database would, the column count of the
/// rows chosen by the SQL (`two` sends rows of two columns where one was announced, which
/// the `Server` must refuse), statement `bad` failing at Bind.
struct App {
    status: TransactionStatus,
    /// Rows of the next Execute have this many columns.
    row_columns: usize,
}

impl App {
    fn answer(&mut self, s: &mut Server, event: &ServerEvent, log: &mut Log) {
        let one_column = RowDescription::new(&[FieldDescription::new(b"a", 25)]).unwrap();
        let row: Vec<Option<&[u8]>> = vec![Some(b"1"); self.row_columns];
        let mut results = Vec::new();
        match event {
            ServerEvent::Startup { .. } => results.push(s.authenticate(ServerAuth::Trust)),
            ServerEvent::Message(FrontendMessage::Query(q)) => {
                let sql = q.sql().to_vec();
                match &sql[..] {
                    b"BEGIN" => {
                        self.status = TransactionStatus::InTransaction;
                        results.push(s.command_complete("BEGIN"));
                    }
                    b"COMMIT" => {
                        self.status = TransactionStatus::Idle;
                        results.push(s.command_complete("COMMIT"));
                    }
                    b"FAIL" => {
                        if self.status == TransactionStatus::InTransaction {
                            self.status = TransactionStatus::Failed;
                        }
                        results.push(
                            s.error_response(&ErrorFields::simple("ERROR", "42000", "fails")),
                        );
                    }
                    _ => {
                        results.push(s.row_description(&one_column));
                        results.push(s.data_row(&[Some(b"1")]));
                        results.push(s.command_complete("SELECT 1"));
                    }
                }
                results.push(s.ready_for_query(self.status));
            }
            ServerEvent::Message(FrontendMessage::Parse(p)) => {
                self.row_columns = if p.query().ends_with(b"two") { 2 } else { 1 };
                results.push(s.parse_complete());
            }
            ServerEvent::Message(FrontendMessage::Bind(b)) => {
                if b.statement() == b"bad" {
                    results.push(s.error_response(&ErrorFields::simple("ERROR", "26000", "no")));
                } else {
                    results.push(s.bind_complete());
                }
            }
            ServerEvent::Message(FrontendMessage::Describe(_)) => {
                results.push(s.row_description(&one_column));
            }
            ServerEvent::Message(FrontendMessage::Execute(_)) => {
                results.push(s.data_row(&row));
                results.push(s.command_complete("SELECT 1"));
            }
            ServerEvent::Message(FrontendMessage::Sync) => {
                results.push(s.ready_for_query(self.status));
            }
            _ => {}
        }
        for r in results {
            log.0.push(format!("answer {r:?}"));
        }
    }
}

/// Where a run keeps its session between steps: active, or suspended.
#[allow(clippy::large_enum_variant)] // one value, moved once per step
enum Slot {
    Active(Server),
    Suspended(SuspendedServer),
}

/// Feeds `steps` one by one to a session, answering what it hands out; with `suspend`, the
/// session is suspended after every step where it is idle, and resumed before the next.
/// Returns the log, the trace lines and how many steps ended suspended.
fn run(steps: &[Vec<u8>], suspend: bool) -> (Log, Vec<Vec<u8>>, usize) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let mut config = ServerConfig::default();
    // The same cancel key in both runs.
    config.random = |b: &mut [u8]| {
        b.fill(7);
        true
    };
    let mut server = Server::new(config);
    server.set_tracer(
        Tracer::new(move |l: &[u8]| sink.lock().unwrap().push(l.to_vec()))
            .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS),
    );
    let mut slot = Slot::Active(server);
    let mut app = App {
        status: TransactionStatus::Idle,
        row_columns: 1,
    };
    let mut log = Log::default();
    let mut suspended = 0;
    for step in steps {
        let mut s = match slot {
            Slot::Active(s) => s,
            Slot::Suspended(idle) => idle.resume(),
        };
        s.receive(step);
        loop {
            match s.poll_event() {
                Ok(Some(event)) => {
                    let event = event.into_owned();
                    log.0.push(format!("event {event:?}"));
                    app.answer(&mut s, &event, &mut log);
                }
                Ok(None) => break,
                Err(e) => {
                    log.0.push(format!("error {e:?}"));
                    break;
                }
            }
        }
        while let Some(b) = s.poll_transmit() {
            log.0.push(format!("out {b:?}"));
        }
        log.0.push(format!(
            "status {:?} discarded {} in flight {}",
            s.transaction_status(),
            s.discarded(),
            s.in_flight()
        ));
        slot = if suspend {
            match s.suspend() {
                Ok(idle) => {
                    assert_eq!(idle.transaction_status(), app.status);
                    assert_eq!(idle.user(), "alice");
                    suspended += 1;
                    Slot::Suspended(idle)
                }
                Err(s) => Slot::Active(s),
            }
        } else {
            Slot::Active(s)
        };
    }
    let lines = lines.lock().unwrap().clone();
    (log, lines, suspended)
}

#[test]
fn a_session_suspended_at_every_idle_point_behaves_as_one_never_suspended() {
    let q = query("SELECT 1");
    let split = q.len() / 2;
    let steps: Vec<Vec<u8>> = vec![
        startup(),
        q.clone(),
        // A query in two pieces: not idle between them.
        q[..split].to_vec(),
        q[split..].to_vec(),
        query("BEGIN"),
        query("FAIL"),
        query("COMMIT"),
        // Extended query, unnamed statement and portal.
        [
            parse("", "SELECT 1"),
            bind("", ""),
            describe_portal(""),
            execute(""),
            sync(),
        ]
        .concat(),
        // An error at Bind: the Execute is skipped until the Sync, sent later.
        [parse("bad", "SELECT 1"), bind("", "bad"), execute("")].concat(),
        execute(""),
        sync(),
        // A Describe of a portal answered (Flush), the session idle, then its Execute: the
        // rows must still match the description, so the two-column row is refused.
        [
            parse("", "SELECT two"),
            bind("p", ""),
            describe_portal("p"),
            flush(),
        ]
        .concat(),
        [execute("p"), sync()].concat(),
        // The same with the unnamed portal, and rows that match.
        [
            parse("", "SELECT 1"),
            bind("", ""),
            describe_portal(""),
            flush(),
        ]
        .concat(),
        [execute(""), sync()].concat(),
        // A request answered partly: the Execute waits for its Sync's answer.
        [parse("", "SELECT 1"), bind("", ""), execute("")].concat(),
        sync(),
        frame(b'X', b""),
    ];
    let (plain, plain_trace, none) = run(&steps, false);
    let (suspending, trace, suspended) = run(&steps, true);
    assert_eq!(none, 0);
    assert_eq!(plain, suspending);
    assert_eq!(plain_trace, trace);
    // Idle after every step except the start-up (AuthenticationOk ... handed out, so idle
    // too), the first half of a frame, the error waiting for its Sync, and the Terminate.
    assert_eq!(suspended, steps.len() - 4, "{suspending:#?}");
    // The refused two-column row, in both runs.
    assert!(
        plain.0.iter().any(|l| l.contains("FieldCount")),
        "{plain:#?}"
    );
    assert!(plain.0.iter().any(|l| l.contains("InTransaction")));
    assert!(plain.0.iter().any(|l| l.contains("status Failed")));
}

#[test]
fn a_session_that_is_not_idle_is_not_suspended() {
    // Start-up: not ready.
    let s = Server::new(ServerConfig::default());
    let mut s = s.suspend().expect_err("in start-up");
    s.receive(&startup());
    let Some(ServerEvent::Startup { .. }) = s.poll_event().unwrap() else {
        panic!("no startup event")
    };
    s.authenticate(ServerAuth::Trust).unwrap();
    // The event that says so not polled yet.
    let mut s = s.suspend().expect_err("an event waiting");
    assert!(matches!(
        s.poll_event().unwrap(),
        Some(ServerEvent::Authenticated)
    ));
    // AuthenticationOk ... ReadyForQuery not handed out yet.
    let mut s = s.suspend().expect_err("output waiting");
    while s.poll_transmit().is_some() {}
    let s = s.suspend().expect("idle").resume();

    // Bytes received, not yet handed out.
    let mut s = s;
    s.receive(&query("SELECT 1"));
    let mut s = s.suspend().expect_err("a message not handed out");
    // Handed out, not answered.
    assert!(matches!(
        s.poll_event().unwrap(),
        Some(ServerEvent::Message(_))
    ));
    let mut s = s.suspend().expect_err("a request in flight");
    s.command_complete("SELECT 0").unwrap();
    s.ready_for_query(TransactionStatus::Idle).unwrap();
    while s.poll_transmit().is_some() {}
    let mut s = s.suspend().expect("idle again").resume();

    // End of file received.
    s.receive_eof();
    let _ = s.poll_event();
    s.suspend().expect_err("the client left");
}

#[test]
fn a_suspended_session_is_small() {
    let size = std::mem::size_of::<SuspendedServer>();
    assert!(size <= 128, "SuspendedServer is {size} bytes");
    assert!(size * 3 < std::mem::size_of::<Server>());
}
