//! DataRows that do not match their announcement, from a scripted server: a DataRow before any
//! RowDescription, or with a column count other than the RowDescription's (or than the first
//! row's, for an Execute nothing described), fails the connection with
//! `Error::UnexpectedFieldCount`, which names both counts, as libpq refuses them. On the row fast
//! path and the general path alike.

mod support;

use pgproto::{BackendMessage, Client, ClientEvent, Error, RequestId, Target};
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
