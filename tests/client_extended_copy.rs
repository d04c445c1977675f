//! COPY started by an extended-protocol Execute, against a scripted server: the `Client` sends
//! again, after its CopyDone or CopyFail, the Syncs that PostgreSQL ignores during COPY FROM
//! STDIN, and every request keeps its answers (pipelined requests after the copy, a COPY that
//! fails, CopyFail, COPY TO STDOUT). The same flows run against PostgreSQL 18 in
//! `live_client_copy.rs`, and between our `Client` and our `Server` at the end of this file.

mod support;

use pgproto::{
    BackendMessage, Client, CopyData, CopyResponse, Format, FrontendMessage, Server, ServerAuth,
    ServerConfig, ServerEvent, TransactionStatus, UsageError,
};
use support::pair::Pair;
use support::scripted_server::{
    complete, connected, data_row, drain, encode, error, extended, idle, names, ready, responses,
    row_description, sent,
};

fn copy_in() -> BackendMessage<'static> {
    BackendMessage::CopyInResponse(CopyResponse::new(Format::Text, &[Format::Text]).unwrap())
}

fn copy_out() -> BackendMessage<'static> {
    BackendMessage::CopyOutResponse(CopyResponse::new(Format::Text, &[Format::Text]).unwrap())
}

/// What PostgreSQL answers Parse, Bind and Describe (portal) of a COPY with.
fn prepared() -> Vec<BackendMessage<'static>> {
    vec![
        BackendMessage::ParseComplete,
        BackendMessage::BindComplete,
        BackendMessage::NoData,
    ]
}

#[test]
fn copy_done_sends_the_ignored_sync_again() {
    let (mut c, mut dec) = connected();
    let [p, b, d, e] = extended(&mut c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    assert_eq!(
        names(&sent(&mut c, &mut dec)),
        ["Parse", "Bind", "Describe", "Execute", "Sync"]
    );
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [
            (p, "ParseComplete"),
            (b, "BindComplete"),
            (d, "NoData"),
            (e, "CopyInResponse")
        ]
    );
    // The server ignored the Sync: it answers nothing until the copy is over.
    assert!(matches!(c.sync(), Err(UsageError::NotAllowed { .. })));
    c.copy_data(b"1\n").unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyData"]);
    c.copy_done().unwrap();
    // Pipelined right behind the copy, before its answers.
    let q = c.query("SELECT 1").unwrap();
    assert_eq!(
        names(&sent(&mut c, &mut dec)),
        ["CopyDone", "Sync", "Query"],
        "the Sync again, right after CopyDone"
    );
    assert_eq!(c.pending_sync_points(), 2);
    c.receive(&encode(&[
        complete("COPY 1"),
        idle(),
        row_description(1),
        data_row(1, b"1"),
        complete("SELECT 1"),
        idle(),
    ]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [
            (e, "CommandComplete"),
            (sync, "ReadyForQuery"),
            (q, "RowDescription"),
            (q, "DataRow"),
            (q, "CommandComplete"),
            (q, "ReadyForQuery"),
        ]
    );
    assert_eq!(c.pending_requests(), 0);
    assert!(sent(&mut c, &mut dec).is_empty());
}

#[test]
fn copy_fail_sends_the_ignored_sync_again() {
    let (mut c, mut dec) = connected();
    let [.., e] = extended(&mut c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    drain(&mut c);
    sent(&mut c, &mut dec);
    c.copy_fail("changed my mind").unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyFail", "Sync"]);
    // PostgreSQL: ERROR 57014 for the CopyFail, then ReadyForQuery for the Sync. Nothing is
    // skipped: the Sync is the next request.
    c.receive(&encode(&[error("57014"), idle()]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [(e, "ErrorResponse"), (sync, "ReadyForQuery")]
    );
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn an_error_while_the_client_sends_ends_the_copy_and_sends_the_sync() {
    let (mut c, mut dec) = connected();
    let [.., e] = extended(&mut c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    drain(&mut c);
    sent(&mut c, &mut dec);
    c.copy_data(b"not a number\n").unwrap();
    c.receive(&encode(&[error("22P02")]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(responses(&events), [(e, "ErrorResponse")]);
    // The copy is over on both sides: the Sync the server ignored goes out now, after the data
    // already queued, and no more COPY data is allowed.
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyData", "Sync"]);
    assert!(matches!(
        c.copy_data(b"more"),
        Err(UsageError::NotAllowed { .. })
    ));
    assert!(matches!(c.copy_done(), Err(UsageError::NotAllowed { .. })));
    let q = c.query("SELECT 1").unwrap();
    c.receive(&encode(&[idle(), complete("SELECT 0"), idle()]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [
            (sync, "ReadyForQuery"),
            (q, "CommandComplete"),
            (q, "ReadyForQuery")
        ]
    );

    // After CopyDone (the Sync already sent again), a late error sends nothing more.
    let [.., e] = extended(&mut c, "COPY t FROM STDIN");
    let sync = c.sync().unwrap();
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    drain(&mut c);
    c.copy_done().unwrap();
    sent(&mut c, &mut dec);
    c.receive(&encode(&[error("23505"), idle()]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [(e, "ErrorResponse"), (sync, "ReadyForQuery")]
    );
    assert!(sent(&mut c, &mut dec).is_empty());
}

#[test]
fn only_the_syncs_the_server_ignored_are_sent_again() {
    // Execute then Flush: no Sync to send again; the application's own comes later.
    let (mut c, mut dec) = connected();
    let [.., e] = extended(&mut c, "COPY t FROM STDIN");
    c.flush().unwrap();
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    drain(&mut c);
    sent(&mut c, &mut dec);
    c.copy_done().unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyDone"]);
    c.receive(&encode(&[complete("COPY 0")]));
    let (events, _) = drain(&mut c);
    assert_eq!(responses(&events), [(e, "CommandComplete")]);
    assert_eq!(c.pending_requests(), 0);
    let sync = c.sync().unwrap();
    c.receive(&encode(&[idle()]));
    let (events, _) = drain(&mut c);
    assert_eq!(responses(&events), [(sync, "ReadyForQuery")]);

    // Two Syncs behind the Execute: both ignored, both sent again, both answered.
    let [.., e] = extended(&mut c, "COPY t FROM STDIN");
    let (s1, s2) = (c.sync().unwrap(), c.sync().unwrap());
    let mut script = prepared();
    script.push(copy_in());
    c.receive(&encode(&script));
    drain(&mut c);
    sent(&mut c, &mut dec);
    c.copy_done().unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyDone", "Sync", "Sync"]);
    c.receive(&encode(&[complete("COPY 0"), idle(), idle()]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [
            (e, "CommandComplete"),
            (s1, "ReadyForQuery"),
            (s2, "ReadyForQuery")
        ]
    );

    // A simple Query's COPY swallows a Sync behind it too; two COPYs in one Query string: the
    // Sync sent again after the first is swallowed by the second, and sent again once more.
    let q = c.query("COPY t FROM STDIN; COPY u FROM STDIN").unwrap();
    let sync = c.sync().unwrap();
    c.receive(&encode(&[copy_in()]));
    drain(&mut c);
    sent(&mut c, &mut dec);
    c.copy_done().unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyDone", "Sync"]);
    c.receive(&encode(&[complete("COPY 0"), copy_in()]));
    drain(&mut c);
    c.copy_done().unwrap();
    assert_eq!(names(&sent(&mut c, &mut dec)), ["CopyDone", "Sync"]);
    c.receive(&encode(&[complete("COPY 0"), idle(), idle()]));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events),
        [
            (q, "CommandComplete"),
            (q, "ReadyForQuery"),
            (sync, "ReadyForQuery")
        ]
    );
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn copy_to_stdout_through_execute() {
    let (mut c, mut dec) = connected();
    let [.., e] = extended(&mut c, "COPY t TO STDOUT");
    let sync = c.sync().unwrap();
    sent(&mut c, &mut dec);
    let mut script = prepared();
    script.extend([
        copy_out(),
        BackendMessage::CopyData(CopyData::new(&b"1\n"[..]).unwrap()),
        BackendMessage::CopyDone,
        complete("COPY 1"),
        ready(TransactionStatus::Idle),
    ]);
    c.receive(&encode(&script));
    let (events, err) = drain(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        responses(&events)[3..],
        [
            (e, "CopyOutResponse"),
            (e, "CopyData"),
            (e, "CopyDone"),
            (e, "CommandComplete"),
            (sync, "ReadyForQuery"),
        ]
    );
    // Nothing was ignored: nothing is sent again.
    assert!(sent(&mut c, &mut dec).is_empty());
}

/// Our `Server` does what PostgreSQL does with an extended-protocol COPY FROM STDIN (it ignores
/// the Sync during the copy and counts it as discarded): our `Client` and `Server` in memory.
#[test]
fn our_client_and_our_server_agree() {
    let client = Client::new(pgproto::ClientConfig::new("alice")).unwrap();
    let server = Server::new(ServerConfig::default());
    let mut p = Pair::new(
        client,
        server,
        Box::new(|s: &mut Server, e: &ServerEvent| {
            let ServerEvent::Message(m) = e else {
                if let ServerEvent::Startup { .. } = e {
                    s.authenticate(ServerAuth::Trust).unwrap();
                }
                return;
            };
            match m {
                FrontendMessage::Parse(_) => s.parse_complete().unwrap(),
                FrontendMessage::Bind(_) => s.bind_complete().unwrap(),
                FrontendMessage::Describe(_) => s.no_data().unwrap(),
                FrontendMessage::Execute(_) => s
                    .copy_in_response(&CopyResponse::new(Format::Text, &[]).unwrap())
                    .unwrap(),
                FrontendMessage::CopyData(d) if d.data().starts_with(b"bad") => s
                    .error_response(&pgproto::ErrorFields::simple("ERROR", "22P02", "bad"))
                    .unwrap(),
                FrontendMessage::CopyData(_) => {}
                FrontendMessage::CopyDone => s.command_complete("COPY 1").unwrap(),
                FrontendMessage::CopyFail(_) => s
                    .error_response(&pgproto::ErrorFields::simple("ERROR", "57014", "failed"))
                    .unwrap(),
                FrontendMessage::Sync => s.ready_for_query(TransactionStatus::Idle).unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }),
    );
    p.drive();
    assert!(p.client.is_ready(), "{:?}", p.client_error);
    p.take_client_events();
    for ending in ["done", "fail", "bad"] {
        let discarded = p.server.discarded();
        let [.., e] = extended(&mut p.client, "COPY t FROM STDIN");
        let sync = p.client.sync().unwrap();
        p.drive();
        let copy_in_events = p.take_client_events();
        assert_eq!(
            responses(&copy_in_events).last(),
            Some(&(e, "CopyInResponse"))
        );
        match ending {
            "done" => {
                p.client.copy_data(b"1\n").unwrap();
                p.client.copy_done().unwrap();
            }
            "fail" => p.client.copy_fail("no").unwrap(),
            _ => p.client.copy_data(b"bad\n").unwrap(),
        }
        p.drive();
        assert!(p.healthy(), "{:?} {:?}", p.client_error, p.server_error);
        let first = if ending == "done" {
            "CommandComplete"
        } else {
            "ErrorResponse"
        };
        assert_eq!(
            responses(&p.take_client_events()),
            [(e, first), (sync, "ReadyForQuery")],
            "{ending}"
        );
        assert_eq!(p.client.pending_requests(), 0, "{ending}");
        assert!(p.server.is_ready(), "{ending}");
        // The Sync sent before the copy began was ignored during it.
        assert_eq!(p.server.discarded(), discarded + 1, "{ending}");
    }
}
