//! DataRows that do not match their announcement, from a scripted server: a DataRow before any
//! RowDescription, or with a column count other than the RowDescription's (or than the first
//! row's, for an Execute nothing described), fails the connection with
//! `Error::UnexpectedFieldCount`, which names both counts, as libpq refuses them. On the row fast
//! path and the general path alike; and the `client` example, run as a process against a
//! scripted server on a loopback socket, prints nothing of that result.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use bytes::BytesMut;
use pgproto::{
    Authentication, BackendMessage, Client, ClientEvent, Encode, Error, FrontendDecoder,
    FrontendMessage, RequestId, Target,
};
use support::client_cli::run_cli;
use support::scripted_server::{
    complete, connected, data_row, drain, encode, extended, idle, responses, row_description,
};

fn mismatch(expected: Option<u16>, received: u16) -> Error {
    Error::UnexpectedFieldCount { expected, received }
}

/// Feeds `script` to `c` and drains: the responses before the error, and the error.
fn run(
    c: &mut Client,
    script: &[BackendMessage],
) -> (Vec<(RequestId, &'static str)>, Option<Error>) {
    c.receive(&encode(script));
    let (events, err) = drain(c);
    if let Some(e) = &err {
        // Sticky, and nothing more is handed out.
        assert_eq!(
            c.poll_event().map(|e| e.map(ClientEvent::into_owned)),
            Err(e.clone())
        );
    }
    (responses(&events), err)
}

#[test]
fn the_error_names_both_counts() {
    assert_eq!(
        mismatch(Some(2), 3).to_string(),
        "unexpected field count in DataRow: 3, expected 2"
    );
    assert_eq!(
        mismatch(None, 1).to_string(),
        "unexpected field count in DataRow: 1, expected none (no RowDescription before it)"
    );
}

#[test]
fn a_query_needs_a_row_description_per_result_set() {
    // A DataRow first.
    let (mut c, _) = connected();
    let q = c.query("SELECT 1").unwrap();
    let (got, err) = run(&mut c, &[data_row(1, b"1"), complete("SELECT 1"), idle()]);
    assert_eq!(got, []);
    assert_eq!(err, Some(mismatch(None, 1)));
    assert!(!c.is_ready());

    // After the first result set's CommandComplete, the next needs its own.
    let (mut c, _) = connected();
    let q2 = c.query("SELECT 1; SELECT 2").unwrap();
    let (got, err) = run(
        &mut c,
        &[
            row_description(1),
            data_row(1, b"1"),
            complete("SELECT 1"),
            data_row(1, b"2"),
        ],
    );
    assert_eq!(
        got,
        [
            (q2, "RowDescription"),
            (q2, "DataRow"),
            (q2, "CommandComplete")
        ]
    );
    assert_eq!(err, Some(mismatch(None, 1)));
    let _ = q;
}

#[test]
fn a_row_of_another_count_fails_on_the_fast_path_too() {
    for split in [false, true] {
        let (mut c, _) = connected();
        let q = c.query("SELECT a, b FROM t").unwrap();
        let script = [
            row_description(2),
            data_row(2, b"x"),
            data_row(2, b"y"),
            data_row(3, b"z"),
            data_row(2, b"never"),
            complete("SELECT 4"),
            idle(),
        ];
        let (got, err) = if split {
            // Byte by byte: the same events, the same error.
            let bytes = encode(&script);
            let mut events = Vec::new();
            let mut err = None;
            for b in bytes.chunks(1) {
                c.receive(b);
                let (more, e) = drain(&mut c);
                events.extend(more);
                if e.is_some() {
                    err = e;
                    break;
                }
            }
            (responses(&events), err)
        } else {
            run(&mut c, &script)
        };
        assert_eq!(
            got,
            [(q, "RowDescription"), (q, "DataRow"), (q, "DataRow")],
            "split {split}"
        );
        assert_eq!(err, Some(mismatch(Some(2), 3)), "split {split}");
    }
}

#[test]
fn an_execute_follows_its_portal_describe() {
    // Bind, Describe, Execute: the Describe's RowDescription counts.
    let (mut c, _) = connected();
    let [_, _, d, e] = extended(&mut c, "SELECT 1, 2");
    c.sync().unwrap();
    let (got, err) = run(
        &mut c,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            row_description(2),
            data_row(2, b"1"),
            data_row(1, b"2"),
        ],
    );
    assert_eq!(got[2..], [(d, "RowDescription"), (e, "DataRow")]);
    assert_eq!(err, Some(mismatch(Some(2), 1)));

    // NoData: no row may come.
    let (mut c, _) = connected();
    extended(&mut c, "INSERT INTO t VALUES (1)");
    let (_, err) = run(
        &mut c,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            BackendMessage::NoData,
            data_row(1, b"1"),
        ],
    );
    assert_eq!(err, Some(mismatch(None, 1)));

    // A Describe of another portal says nothing about this Execute's rows: the first row sets
    // the count (as for an Execute with no Describe before it, tokio-postgres' way).
    let (mut c, _) = connected();
    c.describe(Target::Portal, "other").unwrap();
    let e = c.execute("", 0).unwrap();
    let (got, err) = run(
        &mut c,
        &[
            row_description(5),
            data_row(1, b"1"),
            data_row(1, b"2"),
            data_row(2, b"3"),
        ],
    );
    assert_eq!(got[1..], [(e, "DataRow"), (e, "DataRow")]);
    assert_eq!(err, Some(mismatch(Some(1), 2)));
}

#[test]
fn matching_rows_pass_and_the_count_is_per_request() {
    let (mut c, _) = connected();
    let q = c.query("SELECT a, b; SELECT c").unwrap();
    let e = c.execute("", 0).unwrap();
    c.sync().unwrap();
    let (got, err) = run(
        &mut c,
        &[
            row_description(2),
            data_row(2, b"1"),
            complete("SELECT 1"),
            row_description(1),
            data_row(1, b"2"),
            data_row(1, b"3"),
            complete("SELECT 2"),
            idle(),
            // The Execute's first row sets its own count.
            data_row(4, b"4"),
            data_row(4, b"5"),
            complete("SELECT 2"),
            idle(),
        ],
    );
    assert_eq!(err, None);
    assert_eq!(
        got.iter()
            .filter(|(r, m)| *r == q && *m == "DataRow")
            .count(),
        3
    );
    assert_eq!(
        got.iter()
            .filter(|(r, m)| *r == e && *m == "DataRow")
            .count(),
        2
    );
    assert_eq!(c.pending_requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// The `client` example against a scripted server
// ---------------------------------------------------------------------------------------------

/// Serves one connection on a loopback port: trusts the start-up, then answers each statement
/// (a simple Query, or Parse/Bind/Describe/Execute/Sync) from `answers`, in order: a
/// RowDescription of `columns` (none if `None`) and the rows, each of the given column count.
/// Returns the conninfo to reach it.
fn scripted_server(answers: Vec<(Option<usize>, Vec<usize>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        let mut dec = FrontendDecoder::new();
        let mut answers = answers.into_iter();
        let mut current = None;
        let mut buf = [0u8; 4096];
        loop {
            let n = match sock.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            dec.receive(&buf[..n]);
            let mut out = BytesMut::new();
            while let Ok(Some(m)) = dec.next() {
                let mut send =
                    |msgs: &[BackendMessage]| msgs.iter().for_each(|m| m.encode(&mut out));
                let describe = |a: &(Option<usize>, Vec<usize>)| a.0.map(row_description);
                let rows = |a: &(Option<usize>, Vec<usize>)| {
                    let mut v: Vec<BackendMessage<'static>> =
                        a.1.iter().map(|&n| data_row(n, b"v")).collect();
                    v.push(complete(&format!("SELECT {}", a.1.len())));
                    v
                };
                match m {
                    FrontendMessage::Startup(_) => {
                        send(&[BackendMessage::Authentication(Authentication::Ok), idle()])
                    }
                    FrontendMessage::Query(_) => {
                        let a = answers.next().expect("a scripted answer");
                        send(&describe(&a).into_iter().collect::<Vec<_>>());
                        send(&rows(&a));
                        send(&[idle()]);
                    }
                    FrontendMessage::Parse(_) => {
                        current = answers.next();
                        send(&[BackendMessage::ParseComplete]);
                    }
                    FrontendMessage::Bind(_) => send(&[BackendMessage::BindComplete]),
                    FrontendMessage::Describe(_) => {
                        let a = current.as_ref().expect("Parse first");
                        send(&[describe(a).unwrap_or(BackendMessage::NoData)]);
                    }
                    FrontendMessage::Execute(_) => {
                        send(&rows(current.as_ref().expect("Parse first")));
                    }
                    FrontendMessage::Sync => send(&[idle()]),
                    FrontendMessage::Terminate => return,
                    _ => {}
                }
            }
            if sock.write_all(&out).is_err() {
                return;
            }
        }
    });
    format!("host=127.0.0.1 port={port} user=alice sslmode=disable")
}

#[test]
fn the_example_prints_nothing_of_a_result_with_a_bad_row() {
    for extended in [false, true] {
        // A good result, then one whose third row has three columns where two were described.
        let info = scripted_server(vec![(Some(1), vec![1]), (Some(2), vec![2, 2, 3, 2])]);
        let mut args = vec![];
        if extended {
            args.push("--extended");
        }
        args.extend([info.as_str(), "SELECT 1", "SELECT a, b FROM t"]);
        let ours = run_cli(&args, b"");
        assert_eq!(
            (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
            (
                1,
                "v\n",
                "error: unexpected field count in DataRow: 3, expected 2\n"
            ),
            "extended {extended}"
        );

        // Rows without a RowDescription.
        let info = scripted_server(vec![(None, vec![1])]);
        let mut args = vec![];
        if extended {
            args.push("--extended");
        }
        args.extend([info.as_str(), "SELECT 1"]);
        let ours = run_cli(&args, b"");
        assert_eq!(
            (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
            (
                1,
                "",
                "error: unexpected field count in DataRow: 1, expected none (no RowDescription \
                 before it)\n"
            ),
            "extended {extended}"
        );
    }
}
