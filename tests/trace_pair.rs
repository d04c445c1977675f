//! Both ends of one in-memory connection traced (`Client::set_tracer`, `Server::set_tracer`,
//! the `Pair` of `tests/support/pair.rs`): the client's trace and the server's trace are the same
//! lines in each direction, whatever the reads, from the SSLRequest (accepted here: the pair's
//! pretend TLS) through SCRAM, queries, an error, a row limit with PortalSuspended and COPY, to
//! Terminate.

mod support;

use std::sync::{Arc, Mutex};

use pgproto::auth::ScramVerifier;
use pgproto::trace::{TraceFlags, Tracer};
use pgproto::{
    Bind, Client, ClientConfig, CopyResponse, Encryption, ErrorFields, FieldCode, Format,
    FrontendMessage, Server, ServerAuth, ServerConfig, ServerEvent, TransactionStatus,
};

type Lines = Arc<Mutex<Vec<String>>>;

fn tracer() -> (Tracer, Lines) {
    let lines: Lines = Arc::default();
    let sink = Arc::clone(&lines);
    let t = Tracer::new(move |l: &[u8]| {
        sink.lock()
            .unwrap()
            .push(String::from_utf8_lossy(l).into_owned())
    })
    .with_flags(TraceFlags::SUPPRESS_TIMESTAMPS);
    (t, lines)
}

fn error(message: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, &b"ERROR"[..]),
        (FieldCode::Code, &b"XX000"[..]),
        (FieldCode::Message, message.as_bytes()),
    ])
    .unwrap()
}

/// The server's application: SSL accepted, SCRAM, then generic answers.
fn answer(s: &mut Server, e: &ServerEvent, auth: &mut Option<ServerAuth>) {
    match e {
        ServerEvent::SslRequest => {
            s.accept_ssl(true).unwrap();
            s.tls_established(None).unwrap();
        }
        ServerEvent::Startup { .. } => s.authenticate(auth.take().unwrap()).unwrap(),
        ServerEvent::Message(m) => match m {
            FrontendMessage::Query(q) if q.sql() == b"FAIL" => {
                s.error_response(&error("boom")).unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            FrontendMessage::Query(q) if q.sql() == b"COPY IN" => {
                s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
                    .unwrap();
            }
            FrontendMessage::Query(q) => {
                let field = |name: &'static [u8]| pgproto::FieldDescription::new(name, 25);
                let columns = [field(b"a"), field(b"b")];
                s.row_description(&pgproto::RowDescription::new(&columns).unwrap())
                    .unwrap();
                s.data_row(&[Some(q.sql()), None]).unwrap();
                s.command_complete("SELECT 1").unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            FrontendMessage::CopyData(_) => {}
            FrontendMessage::CopyDone => {
                s.command_complete("COPY 1").unwrap();
                s.ready_for_query(TransactionStatus::Idle).unwrap();
            }
            FrontendMessage::Parse(_) => s.parse_complete().unwrap(),
            FrontendMessage::Bind(_) => s.bind_complete().unwrap(),
            FrontendMessage::Execute(x) if x.max_rows() > 0 => {
                s.data_row(&[Some(b"\x00\x01\xff")]).unwrap();
                s.portal_suspended().unwrap();
            }
            FrontendMessage::Execute(_) => {
                s.data_row(&[Some(b"last")]).unwrap();
                s.command_complete("SELECT 2").unwrap();
            }
            FrontendMessage::Sync => s.ready_for_query(TransactionStatus::Idle).unwrap(),
            other => panic!("unexpected {other:?}"),
        },
        _ => {}
    }
}

/// One traced session with reads cut as `sizes` says; the client's and the server's lines.
fn session(sizes: &[usize]) -> (Vec<String>, Vec<String>) {
    let mut config = ClientConfig::new("alice");
    config.password = Some(b"pw".to_vec());
    config.encryption = Encryption::Ssl { required: true };
    let mut client = Client::new(config).unwrap();
    let mut server = Server::new(ServerConfig::default());
    let (t, client_lines) = tracer();
    client.set_tracer(t);
    let (t, server_lines) = tracer();
    server.set_tracer(t);
    let mut auth = Some(ServerAuth::Scram {
        verifier: Some(ScramVerifier::new("pw", b"0123456789abcdef", 4096).unwrap()),
    });
    let answerer: support::pair::Answerer =
        Box::new(move |s: &mut Server, e: &ServerEvent| answer(s, e, &mut auth));
    let mut p = support::pair::Pair::new(client, server, answerer);
    p.end_point = None;
    let settle = |p: &mut support::pair::Pair| {
        while p.transfer_chunked(sizes) {}
        assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
    };
    settle(&mut p);
    assert!(p.client.is_ready());
    p.client.query("SELECT 'a\tb'").unwrap();
    p.client.query("FAIL").unwrap();
    p.client.parse("", "SELECT x", &[23]).unwrap();
    let bind = Bind::new("", "", &[Format::Binary], &[Some(&[0, 0, 0, 7][..])], &[]).unwrap();
    p.client.bind(&bind).unwrap();
    p.client.execute("", 1).unwrap();
    p.client.execute("", 0).unwrap();
    p.client.sync().unwrap();
    settle(&mut p);
    p.client.query("COPY IN").unwrap();
    settle(&mut p);
    p.client.copy_data(b"1\tone\n").unwrap();
    p.client.copy_done().unwrap();
    settle(&mut p);
    p.client.terminate().unwrap();
    settle(&mut p);
    let c = client_lines.lock().unwrap().clone();
    let s = server_lines.lock().unwrap().clone();
    (c, s)
}

fn direction(lines: &[String], d: &str) -> Vec<String> {
    lines.iter().filter(|l| l.starts_with(d)).cloned().collect()
}

#[test]
fn both_ends_trace_the_same_lines_whatever_the_reads() {
    let (client, server) = session(&[]);
    for d in ["F\t", "B\t"] {
        assert_eq!(direction(&client, d), direction(&server, d), "{d}");
    }
    assert_eq!(client.len(), server.len());
    for want in [
        "F\t8\tSSLRequest\t 1234 5679",
        "B\t1\tSSLResponse\t S",
        "F\t20\tStartupMessage\t 3 0 \"user\" \"alice\"",
        "B\t8\tAuthenticationOk",
        "B\t5\tReadyForQuery\t I",
        "F\t17\tQuery\t \"SELECT 'a\tb'\"",
        "B\t26\tDataRow\t 2 12 'SELECT 'a\\x09b'' -1",
        "F\t22\tBind\t \"\" \"\" 1 1 1 4 '\\x00\\x00\\x00\\x07' 0",
        "F\t9\tExecute\t \"\" 1",
        "B\t13\tDataRow\t 1 3 '\\x00\\x01\\xff'",
        "B\t4\tPortalSuspended",
        "F\t10\tCopyData\t '1\\x09one\\x0a'",
        "F\t4\tCopyDone",
        "F\t4\tTerminate",
    ] {
        assert!(
            client.iter().any(|l| l == want),
            "{want:?} not in {client:#?}"
        );
    }
    // The `p` messages are named after the requests they answer, on both sides.
    for name in ["\tSASLInitialResponse\t", "\tSASLResponse\t"] {
        assert_eq!(client.iter().filter(|l| l.contains(name)).count(), 1);
        assert_eq!(server.iter().filter(|l| l.contains(name)).count(), 1);
    }
    // The SCRAM nonces and the cancel key are random: compare the rest with other reads.
    let stable = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| !l.contains("SASL") && !l.contains("BackendKeyData"))
            .cloned()
            .collect()
    };
    for sizes in [&[1][..], &[2, 7], &[5, 1, 3]] {
        let (c, s) = session(sizes);
        assert_eq!(stable(&c), stable(&client), "{sizes:?}");
        for d in ["F\t", "B\t"] {
            assert_eq!(direction(&c, d), direction(&s, d), "{sizes:?} {d}");
        }
    }
}
