//! What the `pair_borrowed` fuzz target found when the server's application tried wrong
//! answers: exchanges the `Server` accepted and the `Client` refused (or the reverse), each
//! decided against PostgreSQL 18 and libpq 18. A `Client` and a `Server` of this crate in
//! memory, moved by hand after a trusting start-up.

mod support;

use pgproto::{
    BackendMessage, Client, ClientConfig, ClientEvent, CopyResponse, Error, ErrorFields, FieldCode,
    Format, FrontendMessage, Server, ServerAuth, ServerConfig, ServerEvent,
};

use support::pair::Pair;

/// A client and a server connected with trust, idle.
fn connected() -> (Client, Server) {
    let c = Client::new(ClientConfig::new("alice")).unwrap();
    let s = Server::new(ServerConfig::default());
    let mut p = Pair::new(
        c,
        s,
        Box::new(|s: &mut Server, e: &ServerEvent| {
            if let ServerEvent::Startup { .. } = e {
                s.authenticate(ServerAuth::Trust).unwrap();
            }
        }),
    );
    p.drive();
    let (c, s) = p.into_parts();
    assert!(c.is_ready() && s.is_ready());
    (c, s)
}

/// Moves the client's bytes to the server; the server's events (owned).
fn to_server(c: &mut Client, s: &mut Server) -> Vec<ServerEvent> {
    while let Some(b) = c.poll_transmit() {
        s.receive(&b);
    }
    let mut events = Vec::new();
    while let Ok(Some(e)) = s.poll_event() {
        events.push(e.into_owned());
    }
    events
}

/// Moves the server's bytes to the client; the client's events (owned) and its error, if any.
fn to_client(s: &mut Server, c: &mut Client) -> (Vec<ClientEvent>, Option<Error>) {
    while let Some(b) = s.poll_transmit() {
        c.receive(&b);
    }
    let mut events = Vec::new();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => events.push(e.into_owned()),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

fn fields(severity: &str, code: &str) -> ErrorFields {
    ErrorFields::new([
        (FieldCode::Severity, severity),
        (FieldCode::Code, code),
        (FieldCode::Message, "test"),
    ])
    .unwrap()
}

fn code(f: &ErrorFields) -> &[u8] {
    f.code().unwrap()
}

/// Finding 1: a FATAL right after a Query's ERROR. The `Server` allows `fatal()` in any state,
/// and PostgreSQL sends a FATAL wherever the session ends (an administrator's
/// `pg_terminate_backend`, a shutdown); libpq hands it out as one more error result of the
/// query, then reports the closed connection. The `Client` failed with `UnexpectedMessage`
/// instead, and the FATAL's text was lost: it now hands it out as an `UnsolicitedError`.
#[test]
fn a_fatal_after_a_querys_error_reaches_the_application() {
    let (mut c, mut s) = connected();
    let q = c.query("SELECT 1/0").unwrap();
    let events = to_server(&mut c, &mut s);
    assert!(matches!(
        &events[..],
        [ServerEvent::Message(FrontendMessage::Query(_))]
    ));
    s.error_response(&fields("ERROR", "22012")).unwrap();
    s.fatal(&fields("FATAL", "57P01")).unwrap();
    let (events, err) = to_client(&mut s, &mut c);
    assert_eq!(err, None, "the client refused the FATAL");
    let [ClientEvent::Response {
        request,
        message: BackendMessage::ErrorResponse(error),
    }, ClientEvent::UnsolicitedError(fatal)] = &events[..]
    else {
        panic!("unexpected events: {events:?}");
    };
    assert_eq!(*request, q);
    assert_eq!(code(error), b"22012");
    assert_eq!(code(fatal), b"57P01");
    // Then the server closes: the client reports it.
    c.receive_eof();
    assert!(matches!(c.poll_event(), Err(Error::UnexpectedEof { .. })));
}

/// Finding 1, as PostgreSQL 18 itself produces it: a message pipelined behind a Query that
/// turns out to start COPY FROM STDIN gets ERROR 08P01 and then FATAL 08P01 (the `Server` does
/// the same). The client had no way to know; it must hand out both errors, not fail on the
/// second.
#[test]
fn error_then_fatal_for_a_message_pipelined_behind_copy_from_stdin() {
    let (mut c, mut s) = connected();
    let q = c.query("COPY t FROM STDIN").unwrap();
    let next = c.query("SELECT 1").unwrap();
    let events = to_server(&mut c, &mut s);
    assert_eq!(events.len(), 1, "the second Query waits: {events:?}");
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    // The second Query reaches the server during COPY FROM STDIN.
    assert!(matches!(
        s.poll_event(),
        Err(Error::UnexpectedMessage { .. })
    ));
    let (events, err) = to_client(&mut s, &mut c);
    assert_eq!(err, None, "the client refused the FATAL");
    let [ClientEvent::Response {
        request: r1,
        message: BackendMessage::CopyInResponse(_),
    }, ClientEvent::Response {
        request: r2,
        message: BackendMessage::ErrorResponse(error),
    }, ClientEvent::UnsolicitedError(fatal)] = &events[..]
    else {
        panic!("unexpected events: {events:?}");
    };
    assert_eq!((*r1, *r2), (q, q));
    assert_ne!(q, next);
    assert_eq!(error.severity(), Some(&b"ERROR"[..]));
    assert_eq!(code(error), b"08P01");
    assert_eq!(fatal.severity(), Some(&b"FATAL"[..]));
    assert_eq!(code(fatal), b"08P01");
}

/// An ERROR (not FATAL) where none may come is still a protocol violation.
#[test]
fn a_second_plain_error_is_still_refused() {
    let (mut c, mut s) = connected();
    c.query("SELECT 1/0").unwrap();
    to_server(&mut c, &mut s);
    s.error_response(&fields("ERROR", "22012")).unwrap();
    // The server refuses a second ERROR for the same Query.
    assert!(s.error_response(&fields("ERROR", "22012")).is_err());
    assert!(s.poll_transmit().is_some());
    c.receive(b"E\0\0\0\x13SERROR\0C22012\0\0");
    c.receive(b"E\0\0\0\x13SERROR\0C22012\0\0");
    let mut result = Ok(None);
    for _ in 0..3 {
        result = c.poll_event().map(|e| e.map(|e| e.into_owned()));
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(Error::UnexpectedMessage { .. })),
        "{result:?}"
    );
}

/// Finding 2: `error_response` with severity FATAL while no request was in flight on the
/// server's side was sent and the session went on. But the client may have pipelined requests
/// the server had not read yet: it takes the FATAL as the first one's answer (libpq does the
/// same), so the server's next answer reached a client that no longer expected it, and the
/// client failed ("unexpected RowDescription while idle"). PostgreSQL exits after a FATAL: the
/// `Server` now closes the connection then, as `fatal()` and a forwarded FATAL do.
#[test]
fn a_fatal_while_idle_ends_the_session() {
    let (mut c, mut s) = connected();
    let parse = c.parse("", "SELECT 1", &[]).unwrap();
    let describe = c.describe(pgproto::Target::Portal, "").unwrap();
    while let Some(b) = c.poll_transmit() {
        s.receive(&b);
    }
    // The server reads the Parse only, and answers it.
    assert!(matches!(
        s.poll_event().map(|e| e.map(|e| e.into_owned())),
        Ok(Some(ServerEvent::Message(FrontendMessage::Parse(_))))
    ));
    s.parse_complete().unwrap();
    assert_eq!(s.in_flight(), 0);
    // Nothing in flight on the server's side: a FATAL ends the session.
    s.error_response(&fields("FATAL", "57P01")).unwrap();
    assert!(!s.is_ready());
    assert!(
        matches!(s.poll_event(), Ok(None)),
        "the Describe is not handed out"
    );
    assert_eq!(
        s.row_description(&pgproto::RowDescription::new(&[]).unwrap()),
        Err(pgproto::UsageError::Closed)
    );
    let (events, err) = to_client(&mut s, &mut c);
    assert_eq!(err, None);
    let [ClientEvent::Response {
        request: r1,
        message: BackendMessage::ParseComplete,
    }, ClientEvent::Response {
        request: r2,
        message: BackendMessage::ErrorResponse(fatal),
    }] = &events[..]
    else {
        panic!("unexpected events: {events:?}");
    };
    assert_eq!((*r1, *r2), (parse, describe));
    assert_eq!(code(fatal), b"57P01");
}

/// Finding 3: a Sync the client pipelined behind a Query that the server answers with
/// CopyBothResponse. The `Server` ignored it, as a Sync during COPY FROM STDIN; but the
/// `Client` sends such Syncs again only after COPY FROM STDIN, so the Sync was never answered
/// and the next ReadyForQuery went to the wrong request, shifting every later answer.
/// PostgreSQL's walsender, the only server of CopyBoth, ends the session with FATAL 08P01 on
/// anything but CopyData, CopyDone or Terminate; the `Server` now does the same.
#[test]
fn a_sync_during_copy_both_ends_the_session() {
    let (mut c, mut s) = connected();
    let q = c.query("START_REPLICATION SLOT s LOGICAL 0/0").unwrap();
    c.sync().unwrap();
    let events = to_server(&mut c, &mut s);
    assert_eq!(events.len(), 1);
    s.copy_both_response(&CopyResponse::new(Format::Binary, &[]).unwrap())
        .unwrap();
    // The Sync, read during CopyBoth.
    let err = s.poll_event().map(|e| e.map(|e| e.into_owned()));
    assert!(
        matches!(err, Err(Error::UnexpectedMessage { .. })),
        "{err:?}"
    );
    let (events, err) = to_client(&mut s, &mut c);
    assert_eq!(err, None);
    let [ClientEvent::Response {
        request,
        message: BackendMessage::CopyBothResponse(_),
    }, ClientEvent::Response {
        message: BackendMessage::ErrorResponse(fatal),
        ..
    }] = &events[..]
    else {
        panic!("unexpected events: {events:?}");
    };
    assert_eq!(*request, q);
    assert_eq!(fatal.severity(), Some(&b"FATAL"[..]));
    assert_eq!(code(fatal), b"08P01");
}

/// A Sync pipelined behind a Query that starts COPY FROM STDIN is still ignored by the server
/// and sent again by the client after CopyDone: each request gets its answer.
#[test]
fn a_sync_during_copy_from_stdin_is_still_ignored() {
    let (mut c, mut s) = connected();
    let q = c.query("COPY t FROM STDIN").unwrap();
    let sync = c.sync().unwrap();
    to_server(&mut c, &mut s);
    s.copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
        .unwrap();
    assert!(matches!(s.poll_event(), Ok(None)), "the Sync is ignored");
    to_client(&mut s, &mut c);
    c.copy_done().unwrap();
    let events = to_server(&mut c, &mut s);
    assert!(
        matches!(
            &events[..],
            [ServerEvent::Message(FrontendMessage::CopyDone)]
        ),
        "{events:?}"
    );
    s.command_complete("COPY 0").unwrap();
    s.ready_for_query(pgproto::TransactionStatus::Idle).unwrap();
    // The Sync sent again.
    assert!(matches!(
        s.poll_event().map(|e| e.map(|e| e.into_owned())),
        Ok(Some(ServerEvent::Message(FrontendMessage::Sync)))
    ));
    s.ready_for_query(pgproto::TransactionStatus::Idle).unwrap();
    let (events, err) = to_client(&mut s, &mut c);
    assert_eq!(err, None);
    let answered: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { request, .. } => Some(*request),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [q, q, sync]);
    assert_eq!(c.pending_requests(), 0);
}
