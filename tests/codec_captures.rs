//! Real PostgreSQL 15 traffic (tests/data/captures, see tests/data/MANIFEST.md): every message of
//! every recorded connection decodes, with each stream interpreting the other as the protocol
//! requires, and re-encodes to exactly the bytes that were on the wire. Then specific facts about
//! each capture, and the `inspect` example's decoding module on truncated, corrupted and
//! synthetic input.

mod support;

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use pgproto::{
    Authentication, BackendKeyData, BackendMessage, CancelRequest, Encode, ErrorFields, FieldCode,
    Format, FrontendMessage, GssResponse, NegotiateProtocolVersion, ProtocolVersion,
    StartupMessage, Target, TransactionStatus,
};
use support::capture::{decode, Connection, End, Message, Stream};

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures")
}

/// The base names (`NAME-N`) of every `.client`/`.server` pair in the captures directory.
fn pairs() -> Vec<String> {
    let dir = captures_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".client").map(str::to_owned))
        .filter(|base| dir.join(format!("{base}.server")).is_file())
        .collect();
    names.sort();
    names
}

struct Capture {
    name: String,
    client: Vec<u8>,
    server: Vec<u8>,
    conn: Connection,
}

impl Capture {
    fn load(name: &str) -> Self {
        let read = |ext: &str| {
            let p = captures_dir().join(format!("{name}.{ext}"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
        };
        let (client, server) = (read("client"), read("server"));
        let conn = decode(&client, &server);
        Self {
            name: name.to_owned(),
            client,
            server,
            conn,
        }
    }

    fn c(&self) -> impl Iterator<Item = &FrontendMessage<'static>> + '_ {
        self.conn.client.messages.iter().map(|d| &d.message)
    }

    fn s(&self) -> impl Iterator<Item = &BackendMessage<'static>> + '_ {
        self.conn.server.messages.iter().map(|d| &d.message)
    }

    fn c_names(&self) -> Vec<&'static str> {
        self.c().map(FrontendMessage::name).collect()
    }

    fn s_names(&self) -> Vec<&'static str> {
        self.s().map(BackendMessage::name).collect()
    }

    fn errors(&self) -> Vec<&ErrorFields> {
        self.s()
            .filter_map(|m| match m {
                BackendMessage::ErrorResponse(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn notices(&self) -> Vec<&ErrorFields> {
        self.s()
            .filter_map(|m| match m {
                BackendMessage::NoticeResponse(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn auth(&self) -> Vec<&Authentication> {
        self.s()
            .filter_map(|m| match m {
                BackendMessage::Authentication(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    fn startup(&self) -> &StartupMessage {
        self.c()
            .find_map(|m| match m {
                FrontendMessage::Startup(s) => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{}: no StartupMessage", self.name))
    }
}

/// Checks one decoded stream against its file: complete, contiguous, and re-encoding byte for
/// byte, message by message and as a whole.
fn assert_reencodes<M: Message + std::fmt::Debug>(what: &str, stream: &Stream<M>, data: &[u8]) {
    assert_eq!(stream.end, End::Complete, "{what}: not completely decoded");
    assert_eq!(stream.len, data.len(), "{what}");
    assert!(!stream.messages.is_empty(), "{what}: no messages");
    let mut whole = BytesMut::new();
    let mut next = 0;
    for d in &stream.messages {
        assert_eq!(
            d.offset, next,
            "{what}: gap or overlap before offset {}",
            d.offset
        );
        let start = whole.len();
        d.message.encode(&mut whole);
        assert_eq!(
            &whole[start..],
            &data[d.offset..d.offset + d.len],
            "{what}: {} at offset {} re-encodes differently",
            d.message.name(),
            d.offset
        );
        assert_eq!(
            d.message.encoded_len(),
            d.len,
            "{what}: encoded_len at {}",
            d.offset
        );
        next = d.offset + d.len;
    }
    assert_eq!(next, data.len(), "{what}: messages do not cover the file");
    assert_eq!(&whole[..], data, "{what}: concatenated re-encoding differs");
    assert_eq!(stream.check(data), Ok(()), "{what}");
}

#[test]
fn every_capture_decodes_and_reencodes_byte_for_byte() {
    let names = pairs();
    assert!(
        names.len() >= 10,
        "expected at least 10 capture pairs in {}, found {}: {names:?}",
        captures_dir().display(),
        names.len()
    );
    for name in &names {
        let cap = Capture::load(name);
        assert_reencodes(&format!("{name}.client"), &cap.conn.client, &cap.client);
        assert_reencodes(&format!("{name}.server"), &cap.conn.server, &cap.server);

        // Every `p` message was typed by the authentication request it answers.
        assert!(
            !cap.c()
                .any(|m| matches!(m, FrontendMessage::UntypedAuthResponse(_))),
            "{name}: an authentication response matched no request"
        );
        // Every session runs in 3.0 (PostgreSQL 15), so every key is 4 bytes; only psql 18
        // asks for 3.2 and is negotiated down.
        let asked = if name.starts_with("psql18_protocol_3_2") {
            ProtocolVersion::V3_2
        } else {
            ProtocolVersion::V3_0
        };
        assert_eq!(cap.startup().version(), asked, "{name}");
        assert_eq!(cap.conn.version, ProtocolVersion::V3_0, "{name}");
        for m in cap.s() {
            if let BackendMessage::BackendKeyData(k) = m {
                assert_eq!(k.secret_key().len(), 4, "{name}");
                assert!(k.process_id() > 0, "{name}");
            }
        }
        assert_eq!(cap.startup().param("client_encoding"), Some(&b"UTF8"[..]));
    }
}

#[test]
fn sessions_end_as_expected() {
    for name in pairs() {
        let cap = Capture::load(&name);
        let failed_login = name.starts_with("psql_bad_password") || name.starts_with("fatal_");
        let last_c = cap.c().last().unwrap();
        let last_s = cap.s().last().unwrap();
        if failed_login {
            assert!(
                !matches!(last_c, FrontendMessage::Terminate),
                "{name}: a refused client sends no Terminate"
            );
            let BackendMessage::ErrorResponse(e) = last_s else {
                panic!("{name}: server ends with {}", last_s.name())
            };
            assert_eq!(e.severity_nonlocalized(), Some(&b"FATAL"[..]), "{name}");
        } else {
            assert_eq!(last_c, &FrontendMessage::Terminate, "{name}");
            assert_eq!(
                last_s,
                &BackendMessage::ReadyForQuery(TransactionStatus::Idle),
                "{name}"
            );
            assert!(cap.auth().contains(&&Authentication::Ok), "{name}");
            assert_eq!(
                cap.s()
                    .filter(|m| matches!(m, BackendMessage::BackendKeyData(_)))
                    .count(),
                1,
                "{name}"
            );
        }
    }
}

#[test]
fn psql_scram() {
    let cap = Capture::load("psql_scram-1");
    let auth = cap.auth();
    let Authentication::Sasl(mechs) = auth[0] else {
        panic!("first request is {}", auth[0].name())
    };
    assert!(mechs.contains("SCRAM-SHA-256"));
    assert!(matches!(auth[1], Authentication::SaslContinue(d) if d.starts_with(b"r=")));
    assert!(matches!(auth[2], Authentication::SaslFinal(d) if d.starts_with(b"v=")));
    assert_eq!(auth[3], &Authentication::Ok);
    assert_eq!(auth.len(), 4);

    let c: Vec<&FrontendMessage<'static>> = cap.c().collect();
    let FrontendMessage::SaslInitialResponse(first) = c[1] else {
        panic!("client's second message is {}", c[1].name())
    };
    assert_eq!(first.mechanism(), b"SCRAM-SHA-256");
    assert!(first.data().unwrap().starts_with(b"n,,n=,r="));
    let FrontendMessage::SaslResponse(last) = c[2] else {
        panic!("client's third message is {}", c[2].name())
    };
    assert!(last.data().starts_with(b"c=biws,r="));
    assert_eq!(
        cap.conn.client.messages[1].offset,
        cap.startup().encoded_len()
    );

    let s = cap.s_names();
    for expected in [
        "EmptyQueryResponse",
        "NoticeResponse",
        "CopyInResponse",
        "CopyOutResponse",
        "CopyData",
        "CopyDone",
        "RowDescription",
        "DataRow",
    ] {
        assert!(s.contains(&expected), "no {expected}");
    }
    let codes: Vec<&[u8]> = cap.errors().iter().filter_map(|e| e.code()).collect();
    assert_eq!(codes, [&b"22012"[..], b"22012", b"25P02", b"22P02"]);
    assert_eq!(cap.errors()[0].message(), Some(&b"division by zero"[..]));
    let notices: Vec<(&[u8], &[u8])> = cap
        .notices()
        .iter()
        .map(|n| {
            (
                n.severity_nonlocalized().unwrap(),
                n.get(FieldCode::Message).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        notices,
        [(&b"NOTICE"[..], &b"hello"[..]), (b"WARNING", b"careful")]
    );
    assert!(cap
        .s()
        .any(|m| m == &BackendMessage::ReadyForQuery(TransactionStatus::Failed)));
    // The 3-row SELECT has NULLs.
    assert!(cap.s().any(|m| matches!(m, BackendMessage::DataRow(r)
        if r.len() == 3 && r.columns().filter(|c| matches!(c, Ok(None))).count() == 2)));
    assert!(cap
        .s()
        .any(|m| matches!(m, BackendMessage::CommandComplete(t)
        if t.tag() == b"COPY 2" && t.rows() == Some(2))));
    assert!(cap
        .s()
        .any(|m| matches!(m, BackendMessage::ParameterStatus(p)
        if p.name() == b"application_name" && p.value() == b"pgproto_capture")));
    // Two statements in one Query: two result sets before one ReadyForQuery.
    assert!(cap.c().any(|m| matches!(m, FrontendMessage::Query(q)
        if q.sql() == b"SELECT 1 ; SELECT 'a', 'b';")));
    let first_rfq_after_auth = s
        .iter()
        .skip(1)
        .position(|n| *n == "ReadyForQuery")
        .unwrap()
        + 1;
    assert_eq!(
        &s[first_rfq_after_auth + 1..first_rfq_after_auth + 8],
        [
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery"
        ]
    );
    // Client-side COPY data and its end.
    assert!(cap.c().any(|m| matches!(m, FrontendMessage::CopyData(d)
        if d.data().starts_with(b"10\tten\t10.5\n"))));
    assert_eq!(
        cap.c()
            .filter(|m| matches!(m, FrontendMessage::CopyDone))
            .count(),
        2
    );
}

#[test]
fn psql_md5_and_cleartext_password() {
    let cap = Capture::load("psql_md5-1");
    assert!(matches!(cap.auth()[0], Authentication::Md5Password { .. }));
    let FrontendMessage::PasswordMessage(p) = cap.c().nth(1).unwrap() else {
        panic!("no PasswordMessage")
    };
    assert_eq!(p.password().len(), 35);
    assert!(p.password().starts_with(b"md5"));
    assert!(p.password()[3..].iter().all(u8::is_ascii_hexdigit));

    let cap = Capture::load("psql_password-1");
    assert_eq!(cap.auth()[0], &Authentication::CleartextPassword);
    assert!(cap
        .c()
        .any(|m| matches!(m, FrontendMessage::PasswordMessage(p)
        if p.password() == b"pw_pass")));

    let cap = Capture::load("psql_trust-1");
    assert_eq!(cap.auth(), [&Authentication::Ok]);
    assert_eq!(cap.c_names(), ["StartupMessage", "Query", "Terminate"]);
    assert!(cap.s().any(|m| matches!(m, BackendMessage::DataRow(r)
        if r.get(0) == Some(Ok(Some(&b"trust_user"[..]))))));
}

#[test]
fn listen_notify() {
    let listener = Capture::load("listen_notify-1");
    let notifier = Capture::load("listen_notify-2");
    let notifier_pid = notifier
        .s()
        .find_map(|m| match m {
            BackendMessage::BackendKeyData(k) => Some(k.process_id()),
            _ => None,
        })
        .unwrap();
    assert!(notifier.c().any(|m| matches!(m, FrontendMessage::Query(q)
        if q.sql() == b"NOTIFY c, 'payload'")));

    let s: Vec<&BackendMessage<'static>> = listener.s().collect();
    let i = s
        .iter()
        .position(|m| matches!(m, BackendMessage::NotificationResponse(_)))
        .expect("no NotificationResponse");
    let BackendMessage::NotificationResponse(n) = s[i] else {
        unreachable!()
    };
    assert_eq!(n.channel(), b"c");
    assert_eq!(n.payload(), b"payload");
    assert_eq!(n.process_id(), notifier_pid);
    // After pg_sleep's CommandComplete, before its ReadyForQuery.
    assert!(matches!(s[i - 1], BackendMessage::CommandComplete(t) if t.tag() == b"SELECT 1"));
    assert!(matches!(s[i + 1], BackendMessage::ReadyForQuery(_)));
    assert_eq!(
        s.iter()
            .filter(|m| matches!(m, BackendMessage::NotificationResponse(_)))
            .count(),
        1
    );
}

#[test]
fn pgbench_extended() {
    let cap = Capture::load("pgbench_extended-2");
    let c: Vec<&FrontendMessage<'static>> = cap.c().collect();
    let parses: Vec<_> = c
        .iter()
        .filter_map(|m| match m {
            FrontendMessage::Parse(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(parses.len() >= 7);
    assert!(parses.iter().all(|p| p.name().is_empty()));
    assert!(c.iter().any(|m| matches!(m, FrontendMessage::Bind(b)
        if b.params().len() == 3
            && b.params().iter().collect::<Vec<_>>() == [Some(&b"7"[..]), Some(b"21"), Some(b"abc")])));
    assert!(c.iter().any(|m| matches!(m, FrontendMessage::Describe(d)
        if d.target() == Target::Portal && d.name().is_empty())));
    // The pipeline: three Executes before one Sync.
    let executes_per_sync: Vec<usize> = c
        .split(|m| matches!(m, FrontendMessage::Sync))
        .map(|run| {
            run.iter()
                .filter(|m| matches!(m, FrontendMessage::Execute(_)))
                .count()
        })
        .collect();
    assert_eq!(executes_per_sync.iter().filter(|n| **n == 3).count(), 3);
    let s = cap.s_names();
    for expected in ["ParseComplete", "BindComplete", "NoData", "RowDescription"] {
        assert!(s.contains(&expected), "no {expected}");
    }
    assert!(cap
        .s()
        .any(|m| m == &BackendMessage::ReadyForQuery(TransactionStatus::InTransaction)));
    // The NULL column of the pipeline's last statement.
    assert!(cap.s().any(|m| matches!(m, BackendMessage::DataRow(r)
        if r.len() == 4 && r.get(3) == Some(Ok(None)) && r.get(2) == Some(Ok(Some(&b"abc"[..]))))));

    // Connection 1 is only the log-in check.
    let check = Capture::load("pgbench_extended-1");
    assert_eq!(
        check.c_names(),
        [
            "StartupMessage",
            "SASLInitialResponse",
            "SASLResponse",
            "Terminate"
        ]
    );
}

#[test]
fn pgbench_prepared() {
    let cap = Capture::load("pgbench_prepared-2");
    let names: Vec<String> = cap
        .c()
        .filter_map(|m| match m {
            FrontendMessage::Parse(p) => Some(String::from_utf8(p.name().to_vec()).unwrap()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..7).map(|i| format!("P_{i}")).collect();
    assert_eq!(names, expected);
    let binds: Vec<&[u8]> = cap
        .c()
        .filter_map(|m| match m {
            FrontendMessage::Bind(b) => Some(b.statement()),
            _ => None,
        })
        .collect();
    assert_eq!(binds.len(), 3 * 7);
    assert!(binds.iter().all(|s| s.starts_with(b"P_")));
    // Each statement is prepared once: later transactions send no Parse.
    let c: Vec<&FrontendMessage<'static>> = cap.c().collect();
    let last_parse = c
        .iter()
        .rposition(|m| matches!(m, FrontendMessage::Parse(_)))
        .unwrap();
    assert!(last_parse < c.len() / 2);
}

#[test]
fn psql_bad_password() {
    let cap = Capture::load("psql_bad_password-1");
    assert_eq!(
        cap.c_names(),
        ["StartupMessage", "SASLInitialResponse", "SASLResponse"]
    );
    assert_eq!(
        cap.s_names(),
        [
            "AuthenticationSASL",
            "AuthenticationSASLContinue",
            "ErrorResponse"
        ]
    );
    let e = cap.errors()[0];
    assert_eq!(e.code(), Some(&b"28P01"[..]));
    assert_eq!(e.severity_nonlocalized(), Some(&b"FATAL"[..]));
    assert!(e
        .message()
        .unwrap()
        .starts_with(b"password authentication failed"));
}

#[test]
fn fatal_unknown_db() {
    let cap = Capture::load("fatal_unknown_db-1");
    assert_eq!(cap.c_names(), ["StartupMessage"]);
    assert_eq!(cap.startup().param("database"), Some(&b"no_such_db"[..]));
    assert_eq!(cap.s_names(), ["AuthenticationOk", "ErrorResponse"]);
    let e = cap.errors()[0];
    assert_eq!(e.code(), Some(&b"3D000"[..]));
    assert_eq!(e.severity(), Some(&b"FATAL"[..]));
}

#[test]
fn psql_sslrequest_refused_then_plaintext() {
    let cap = Capture::load("psql_sslrequest-1");
    let (c, s) = (&cap.conn.client.messages, &cap.conn.server.messages);
    assert_eq!(c[0].message, FrontendMessage::SslRequest);
    assert_eq!((c[0].offset, c[0].len), (0, 8));
    assert_eq!(
        s[0].message,
        BackendMessage::SslResponse { accepted: false }
    );
    assert_eq!((s[0].offset, s[0].len), (0, 1));
    assert_eq!(cap.server[0], b'N');
    assert!(matches!(c[1].message, FrontendMessage::Startup(_)));
    assert_eq!(c[1].offset, 8);
    // Authentication goes on in plaintext right after the 'N'.
    assert_eq!(s[1].offset, 1);
    assert!(
        matches!(&s[1].message, BackendMessage::Authentication(Authentication::Sasl(m))
        if m.contains("SCRAM-SHA-256"))
    );
    assert_eq!(
        cap.c_names(),
        [
            "SSLRequest",
            "StartupMessage",
            "SASLInitialResponse",
            "SASLResponse",
            "Query",
            "Terminate"
        ]
    );
    assert_eq!(cap.conn.client.end, End::Complete);
    assert_eq!(cap.conn.server.end, End::Complete);
    assert_eq!(
        cap.c()
            .filter(|m| matches!(m, FrontendMessage::SslRequest))
            .count(),
        1
    );
}

#[test]
fn psql18_protocol_3_2_negotiated_down_by_15() {
    let cap = Capture::load("psql18_protocol_3_2-1");
    assert_eq!(cap.startup().version(), ProtocolVersion::V3_2);
    // PostgreSQL sends a whole version word, 3.0, not the bare minor the docs describe.
    let BackendMessage::NegotiateProtocolVersion(n) = cap.s().next().unwrap() else {
        panic!("{:?}", cap.s_names())
    };
    assert_eq!(n.newest_version_code(), 0x0003_0000);
    assert_eq!(n.newest_version(), ProtocolVersion::V3_0);
    assert_eq!(n.unrecognized_count(), 0);
    assert_eq!(&cap.server[..9], b"v\0\0\0\x0c\0\x03\0\0");
    // The session continues in 3.0: a 4-byte cancel key.
    assert_eq!(cap.conn.version, ProtocolVersion::V3_0);
    let key = cap
        .s()
        .find_map(|m| match m {
            BackendMessage::BackendKeyData(k) => Some(k),
            _ => None,
        })
        .unwrap();
    assert_eq!(key.secret_key().len(), 4);
    assert_eq!(cap.conn.server.end, End::Complete);
}

#[test]
fn psql_extended_query() {
    let cap = Capture::load("psql_extended_query-1");
    let c: Vec<&FrontendMessage<'static>> = cap.c().collect();
    assert!(matches!(c[1], FrontendMessage::Parse(p)
        if p.name().is_empty() && p.query().starts_with(b"SELECT $1::int AS n")
            && p.param_types().len() == 0));
    assert!(c.iter().any(|m| matches!(m, FrontendMessage::Describe(d)
        if d.target() == Target::Statement && d.name().is_empty())));
    let s: Vec<&BackendMessage<'static>> = cap.s().collect();
    let params: Vec<Vec<u32>> = s
        .iter()
        .filter_map(|m| match m {
            BackendMessage::ParameterDescription(p) => Some(p.types().collect()),
            _ => None,
        })
        .collect();
    assert_eq!(params, [vec![23, 25], vec![]]);
    let i = s
        .iter()
        .position(|m| matches!(m, BackendMessage::ParameterDescription(_)))
        .unwrap();
    let BackendMessage::RowDescription(rd) = s[i + 1] else {
        panic!("{} after ParameterDescription", s[i + 1].name())
    };
    let fields: Vec<(&[u8], u32)> = rd.fields().map(|f| (f.name, f.type_oid)).collect();
    assert_eq!(fields, [(&b"n"[..], 23), (b"s", 25), (b"t", 1184)]);
    assert!(rd.fields().all(|f| f.format == Format::Text));
    assert!(cap.s_names().contains(&"NoData"));
    assert!(cap.s_names().contains(&"ParseComplete"));
    let codes: Vec<&[u8]> = cap.errors().iter().filter_map(|e| e.code()).collect();
    assert_eq!(codes, [&b"42703"[..]]);
}

#[test]
fn psql_function_call() {
    let cap = Capture::load("psql_function_call-1");
    let calls: Vec<_> = cap
        .c()
        .filter_map(|m| match m {
            FrontendMessage::FunctionCall(f) => Some(f),
            _ => None,
        })
        .collect();
    assert!(calls.len() >= 8, "{} FunctionCalls", calls.len());
    assert!(calls.iter().all(|f| f.result_format() == Format::Binary));
    // lowrite(fd, data): the data, NUL included, as a binary argument.
    let data = b"large object\0data\n";
    assert!(calls
        .iter()
        .any(|f| f.args().iter().nth(1) == Some(Some(&data[..]))
            && f.arg_formats().iter().all(|x| x == Format::Binary)));
    let results: Vec<Option<&Bytes>> = cap
        .s()
        .filter_map(|m| match m {
            BackendMessage::FunctionCallResponse(v) => Some(v.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), calls.len());
    assert!(results.contains(&Some(&Bytes::from_static(data))));
    // loread at the end of the object: zero bytes, not NULL.
    assert!(results.contains(&Some(&Bytes::new())));
    // Each call is answered by FunctionCallResponse then ReadyForQuery (in a transaction).
    let s = cap.s_names();
    for (i, n) in s.iter().enumerate() {
        if *n == "FunctionCallResponse" {
            assert_eq!(s[i + 1], "ReadyForQuery");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The inspect example's command line

/// Runs the `inspect` example (`cargo run --example inspect -- ARGS`).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(support::examples::example("inspect"))
        .args(args)
        .output()
        .expect("run the inspect example");
    (
        out.status.code().expect("the inspect example was killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Every line the example prints for every capture is free of control characters (details are
/// escaped and cut), and every capture checks.
#[test]
fn inspect_details_have_no_control_characters() {
    for name in pairs() {
        let (code, out, err) = run(&[
            "--check",
            &path(&format!("{name}.client")),
            &path(&format!("{name}.server")),
        ]);
        assert_eq!(code, 0, "{name}: {err}");
        for line in out.lines() {
            assert!(
                !line.chars().any(char::is_control),
                "{name}: control character in {line:?}"
            );
        }
    }
}

fn path(name: &str) -> String {
    captures_dir().join(name).to_string_lossy().into_owned()
}

/// Writes `data` to a fresh temporary file and returns its path.
fn temp_file(tag: &str, data: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!(
        "pgproto-captures-test-{}-{tag}",
        std::process::id()
    ));
    std::fs::write(&p, data).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn inspect_lists_every_message() {
    let (code, out, err) = run(&[
        "--check",
        &path("psql_scram-1.client"),
        &path("psql_scram-1.server"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    let cap = Capture::load("psql_scram-1");
    let (nc, ns) = (
        cap.conn.client.messages.len(),
        cap.conn.server.messages.len(),
    );
    assert_eq!(lines.len(), nc + ns + 1);
    assert_eq!(
        *lines.last().unwrap(),
        format!(
            "client: {nc} messages, {} bytes; server: {ns} messages, {} bytes",
            cap.client.len(),
            cap.server.len()
        )
    );
    // All client lines, then all server lines, each `SIDE OFFSET NAME [DETAIL]`.
    for (i, line) in lines[..nc + ns].iter().enumerate() {
        let mut parts = line.splitn(4, ' ');
        let side = parts.next().unwrap();
        let offset: usize = parts.next().unwrap().parse().unwrap();
        let name = parts.next().unwrap();
        if i < nc {
            assert_eq!(side, "C");
            assert_eq!(offset, cap.conn.client.messages[i].offset);
            assert_eq!(name, cap.conn.client.messages[i].message.name());
        } else {
            assert_eq!(side, "S");
            assert_eq!(offset, cap.conn.server.messages[i - nc].offset);
            assert_eq!(name, cap.conn.server.messages[i - nc].message.name());
        }
    }
    assert!(lines[0].starts_with(
        "C 0 StartupMessage version 3.0 user=scram_user database=pgproto application_name=psql"
    ));
    assert!(lines.contains(&"S 0 AuthenticationSASL mechanisms SCRAM-SHA-256"));
    assert!(lines.contains(&"S 1045 ErrorResponse ERROR 22012 \"division by zero\""));
    assert!(lines.contains(&"S 747 EmptyQueryResponse"));
    assert!(lines.contains(&"C 249 Query \"SELECT 1 ; SELECT 'a', 'b';\""));

    let (code, out, err) = run(&[
        &path("psql_sslrequest-1.client"),
        &path("psql_sslrequest-1.server"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("C 0 SSLRequest\nC 8 StartupMessage "));
    assert!(out.contains("\nS 0 SSLResponse N (refused)\nS 1 AuthenticationSASL "));
}

#[test]
fn inspect_usage_and_unreadable_files() {
    assert_eq!(run(&[]).0, 2);
    assert_eq!(run(&["only-one"]).0, 2);
    assert_eq!(run(&["a", "b", "c"]).0, 2);
    let (code, _, err) = run(&["--bogus", "a", "b"]);
    assert_eq!(code, 2);
    assert!(err.contains("--bogus"));
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: inspect"));
    let missing = path("no-such-file.client");
    let (code, out, err) = run(&[&missing, &path("psql_trust-1.server")]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(err.contains("no-such-file.client"), "{err}");
}

#[test]
fn inspect_truncated_capture() {
    let server = std::fs::read(captures_dir().join("psql_scram-1.server")).unwrap();
    let cap = Capture::load("psql_scram-1");
    // Cut inside the last DataRow (offset 2148, 12 bytes).
    let last_row = &cap.conn.server.messages[cap.conn.server.messages.len() - 3];
    assert_eq!(last_row.message.name(), "DataRow");
    let cut = last_row.offset + 7;
    let file = temp_file("truncated.server", &server[..cut]);
    let client = path("psql_scram-1.client");

    let (code, out, err) = run(&["--check", &client, &file]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("server stream at offset {}", last_row.offset)),
        "{err}"
    );
    assert!(err.contains("cut off"), "{err}");
    assert!(err.contains("7 of 12 bytes"), "{err}");
    let n = cap.conn.server.messages.len() - 3;
    assert!(out.ends_with(&format!(
        "server: {n} messages, {} bytes\n",
        last_row.offset
    )));

    let (code, _, err) = run(&["--allow-truncated", "--check", &client, &file]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("note: "), "{err}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn every_truncation_of_a_capture() {
    for name in ["psql_scram-1", "psql_sslrequest-1"] {
        let cap = Capture::load(name);
        for (label, full, msgs) in [
            (
                "client",
                &cap.client,
                cap.conn
                    .client
                    .messages
                    .iter()
                    .map(|d| (d.offset, d.len))
                    .collect::<Vec<_>>(),
            ),
            (
                "server",
                &cap.server,
                cap.conn
                    .server
                    .messages
                    .iter()
                    .map(|d| (d.offset, d.len))
                    .collect(),
            ),
        ] {
            for cut in 0..full.len() {
                let conn = if label == "client" {
                    decode(&full[..cut], &cap.server)
                } else {
                    decode(&cap.client, &full[..cut])
                };
                let (end, count) = if label == "client" {
                    (&conn.client.end, conn.client.messages.len())
                } else {
                    (&conn.server.end, conn.server.messages.len())
                };
                // The message the cut falls in (or right after).
                let i = msgs.partition_point(|(o, _)| *o < cut);
                if i < msgs.len() && msgs[i].0 == cut || cut == 0 {
                    assert_eq!(end, &End::Complete, "{name}.{label} cut at {cut}");
                    assert_eq!(count, i, "{name}.{label} cut at {cut}");
                } else {
                    let (offset, len) = msgs[i - 1];
                    let have = cut - offset;
                    let need = if label == "client" && i == 1 && name == "psql_scram-1"
                        || label == "client" && i <= 2 && name == "psql_sslrequest-1"
                    {
                        // Untagged start-up packets: the length word comes first.
                        (have >= 4).then_some(len as u64)
                    } else {
                        (have >= 5).then_some(len as u64)
                    };
                    assert_eq!(
                        end,
                        &End::Truncated { offset, have, need },
                        "{name}.{label} cut at {cut}"
                    );
                    assert_eq!(count, i - 1, "{name}.{label} cut at {cut}");
                }
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_gives_errors_not_panics() {
    let conn = decode(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x01\x02garbage");
    assert!(
        matches!(conn.client.end, End::Error { offset: 0, .. }),
        "{:?}",
        conn.client.end
    );
    let End::Error { offset: 0, reason } = &conn.server.end else {
        panic!("{:?}", conn.server.end)
    };
    assert!(reason.contains("unknown message type"), "{reason}");

    let garbage = temp_file("garbage", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7");
    let (code, out, err) = run(&["--check", &garbage, &garbage]);
    assert_eq!(code, 1);
    assert!(err.contains("client stream at offset 0"), "{err}");
    assert!(err.contains("server stream at offset 0"), "{err}");
    assert_eq!(
        out,
        "client: 0 messages, 0 bytes; server: 0 messages, 0 bytes\n"
    );
    std::fs::remove_file(&garbage).unwrap();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let (nc, ns) = (rng.next() as usize % 300, rng.next() as usize % 300);
        let mut client = rng.bytes(nc);
        let mut server = rng.bytes(ns);
        // Often start with something plausible, to get past the first header.
        if round % 3 == 0 {
            let mut start = bytes_of(&[&FrontendMessage::SslRequest]);
            start.extend_from_slice(&client);
            client = start;
            server.insert(0, b"SNG"[(round / 3) % 3]);
        }
        let conn = decode(&client, &server);
        for (end, len) in [
            (&conn.client.end, client.len()),
            (&conn.server.end, server.len()),
        ] {
            match end {
                End::Complete => {}
                End::Encrypted { offset, .. }
                | End::Truncated { offset, .. }
                | End::Error { offset, .. } => assert!(*offset <= len),
            }
        }
        assert_eq!(conn.client.check(&client), Ok(()), "round {round}");
        assert_eq!(conn.server.check(&server), Ok(()), "round {round}");
        // The example describes what decoded without panicking (a few rounds: a process each).
        if round % 100 == 0 {
            let (c, s) = (temp_file("rc", &client), temp_file("rs", &server));
            let (code, out, err) = run(&["--check", "--allow-truncated", &c, &s]);
            assert!(code == 0 || code == 1, "round {round}: exit {code}: {err}");
            assert!(out.ends_with(" bytes\n"), "round {round}: {out}");
            assert!(!out.chars().any(|c| c.is_control() && c != '\n'));
            std::fs::remove_file(c).unwrap();
            std::fs::remove_file(s).unwrap();
        }
    }
}

/// Every single-byte corruption of a real capture: no panic, and whatever still decodes
/// re-encodes to the same bytes.
#[test]
fn corrupted_captures_never_panic_and_what_decodes_reencodes() {
    let mut rng = Rng(42);
    for name in ["psql_scram-1", "pgbench_extended-2", "psql_function_call-1"] {
        let cap = Capture::load(name);
        for side in 0..2 {
            let original = if side == 0 { &cap.client } else { &cap.server };
            for i in 0..original.len() {
                let mut bad = original.clone();
                bad[i] ^= (rng.next() as u8) | 1;
                let conn = if side == 0 {
                    decode(&bad, &cap.server)
                } else {
                    decode(&cap.client, &bad)
                };
                assert_eq!(
                    conn.client
                        .check(if side == 0 { &bad } else { &cap.client }),
                    Ok(())
                );
                assert_eq!(
                    conn.server
                        .check(if side == 1 { &bad } else { &cap.server }),
                    Ok(())
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic connections for what the captures do not show

fn bytes_of(messages: &[&dyn EncodeDyn]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode_dyn(&mut out);
    }
    out.to_vec()
}

trait EncodeDyn {
    fn encode_dyn(&self, out: &mut BytesMut);
}

impl<T: Encode> EncodeDyn for T {
    fn encode_dyn(&self, out: &mut BytesMut) {
        self.encode(out);
    }
}

fn startup(version: ProtocolVersion) -> FrontendMessage<'static> {
    FrontendMessage::Startup(StartupMessage::new(version, [("user", "u")]).unwrap())
}

#[test]
fn accepted_ssl_request_stops_both_streams_at_tls() {
    let mut client = bytes_of(&[&FrontendMessage::SslRequest]);
    client.extend_from_slice(b"\x16\x03\x01\x00\x05hello");
    let server = b"S\x16\x03\x03\x00\x02hi".to_vec();
    let conn = decode(&client, &server);
    assert_eq!(
        conn.client.end,
        End::Encrypted {
            offset: 8,
            what: "TLS"
        }
    );
    assert_eq!(
        conn.server.end,
        End::Encrypted {
            offset: 1,
            what: "TLS"
        }
    );
    assert_eq!(conn.client.messages.len(), 1);
    assert_eq!(
        conn.server.messages[0].message,
        BackendMessage::SslResponse { accepted: true }
    );

    let (c, s) = (
        temp_file("tls.client", &client),
        temp_file("tls.server", &server),
    );
    let (code, out, err) = run(&["--check", &c, &s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("client stream: TLS begins at offset 8"),
        "{err}"
    );
    assert!(
        err.contains("server stream: TLS begins at offset 1"),
        "{err}"
    );
    assert_eq!(
        out,
        "C 0 SSLRequest\nS 0 SSLResponse S (accepted)\n\
         client: 1 messages, 8 bytes; server: 1 messages, 1 bytes\n"
    );
    std::fs::remove_file(c).unwrap();
    std::fs::remove_file(s).unwrap();

    // Direct TLS (no SSLRequest at all).
    let conn = decode(b"\x16\x03\x01\x02\x00\x01", b"\x16\x03\x03\x00\x7a\x02");
    assert_eq!(
        conn.client.end,
        End::Encrypted {
            offset: 0,
            what: "TLS"
        }
    );
    assert_eq!(
        conn.server.end,
        End::Encrypted {
            offset: 0,
            what: "TLS"
        }
    );
}

#[test]
fn gssenc_then_ssl_refused_then_startup() {
    let client = bytes_of(&[
        &FrontendMessage::GssEncRequest,
        &FrontendMessage::SslRequest,
        &startup(ProtocolVersion::V3_0),
        &FrontendMessage::Terminate,
    ]);
    let mut server = b"NN".to_vec();
    server.extend(bytes_of(&[
        &BackendMessage::Authentication(Authentication::Ok),
        &BackendMessage::ReadyForQuery(TransactionStatus::Idle),
    ]));
    let conn = decode(&client, &server);
    assert_eq!(conn.client.end, End::Complete);
    assert_eq!(conn.server.end, End::Complete);
    let s: Vec<&BackendMessage<'static>> =
        conn.server.messages.iter().map(|d| &d.message).collect();
    assert_eq!(
        s[..2],
        [
            &BackendMessage::GssEncResponse { accepted: false },
            &BackendMessage::SslResponse { accepted: false }
        ]
    );
    assert_eq!(conn.client.check(&client), Ok(()));
    assert_eq!(conn.server.check(&server), Ok(()));

    // Accepted GSS encryption.
    let client = bytes_of(&[&FrontendMessage::GssEncRequest]);
    let conn = decode(
        &[client.clone(), b"\x00\x00\x00\x10token".to_vec()].concat(),
        b"G\x00",
    );
    assert_eq!(
        conn.client.end,
        End::Encrypted {
            offset: 8,
            what: "GSSAPI encryption"
        }
    );
    assert_eq!(
        conn.server.messages[0].message,
        BackendMessage::GssEncResponse { accepted: true }
    );

    // A server that does not know SSLRequest answers with an ErrorResponse.
    let err = BackendMessage::ErrorResponse(
        ErrorFields::new([
            (FieldCode::Severity, "FATAL"),
            (FieldCode::Code, "08P01"),
            (FieldCode::Message, "unsupported frontend protocol"),
        ])
        .unwrap(),
    );
    let conn = decode(
        &bytes_of(&[&FrontendMessage::SslRequest]),
        &bytes_of(&[&err]),
    );
    assert_eq!(conn.server.end, End::Complete);
    assert_eq!(conn.server.messages[0].message, err);
}

#[test]
fn protocol_version_decides_the_key_length() {
    let long_key = BackendMessage::BackendKeyData(BackendKeyData::new(7, [9u8; 32]).unwrap());
    let short_key = BackendMessage::BackendKeyData(BackendKeyData::new(7, [9u8; 4]).unwrap());
    let ok = BackendMessage::Authentication(Authentication::Ok);
    let rfq = BackendMessage::ReadyForQuery(TransactionStatus::Idle);

    // 3.2: a 32-byte key is fine.
    let c32 = bytes_of(&[&startup(ProtocolVersion::V3_2)]);
    let conn = decode(&c32, &bytes_of(&[&ok, &long_key, &rfq]));
    assert_eq!(conn.server.end, End::Complete);
    assert_eq!(conn.version, ProtocolVersion::V3_2);

    // 3.0: the same bytes are an error at the BackendKeyData.
    let c30 = bytes_of(&[&startup(ProtocolVersion::V3_0)]);
    let conn = decode(&c30, &bytes_of(&[&ok, &long_key, &rfq]));
    assert!(
        matches!(conn.server.end, End::Error { offset: 9, .. }),
        "{:?}",
        conn.server.end
    );

    // 3.2 asked, NegotiateProtocolVersion lowers it to 3.0: a 4-byte key only.
    let npv = BackendMessage::NegotiateProtocolVersion(
        NegotiateProtocolVersion::new(0x0003_0000, ["_pq_.x"]).unwrap(),
    );
    let conn = decode(&c32, &bytes_of(&[&npv, &ok, &short_key, &rfq]));
    assert_eq!(conn.server.end, End::Complete);
    assert_eq!(conn.version, ProtocolVersion::V3_0);
    assert_eq!(conn.requested_version, Some(ProtocolVersion::V3_2));
    let conn = decode(&c32, &bytes_of(&[&npv, &ok, &long_key, &rfq]));
    assert!(matches!(conn.server.end, End::Error { .. }));
}

#[test]
fn authentication_responses_are_typed_by_the_requests() {
    let client = bytes_of(&[
        &startup(ProtocolVersion::V3_0),
        &GssResponse::new(Bytes::from_static(b"tok1")).unwrap(),
        &GssResponse::new(Bytes::from_static(b"tok2")).unwrap(),
        &GssResponse::new(Bytes::from_static(b"extra")).unwrap(),
    ]);
    let server = bytes_of(&[
        &BackendMessage::Authentication(Authentication::Gss),
        &BackendMessage::Authentication(Authentication::GssContinue(Bytes::from_static(b"srv"))),
        &BackendMessage::Authentication(Authentication::Ok),
    ]);
    let conn = decode(&client, &server);
    let names: Vec<&str> = conn
        .client
        .messages
        .iter()
        .map(|d| d.message.name())
        .collect();
    // The third `p` answers no request: decoded untyped, still byte for byte.
    assert_eq!(
        names,
        [
            "StartupMessage",
            "GSSResponse",
            "GSSResponse",
            "AuthenticationResponse"
        ]
    );
    assert_eq!(conn.client.check(&client), Ok(()));
}

#[test]
fn cancel_request_connection() {
    let client = bytes_of(&[&FrontendMessage::CancelRequest(
        CancelRequest::new(1234, [1, 2, 3, 4]).unwrap(),
    )]);
    let conn = decode(&client, b"");
    assert_eq!(conn.client.end, End::Complete);
    assert_eq!(conn.server.end, End::Complete);
    assert_eq!(conn.client.messages.len(), 1);
    assert_eq!(conn.requested_version, None);

    // Nothing may follow a CancelRequest.
    let mut more = client.clone();
    more.extend(bytes_of(&[&FrontendMessage::Terminate]));
    let conn = decode(&more, b"");
    assert!(
        matches!(conn.client.end, End::Error { offset: 16, .. }),
        "{:?}",
        conn.client.end
    );
}
