//! The example server (`cargo run --example server`, SQLite behind `pgproto::Server`) against
//! an unmodified psycopg 3.3.9 with its bundled libpq 18.6 (from `bash
//! scripts/install-test-deps.sh`): protocol 3.2 with a 32-byte cancel key, direct TLS
//! (`sslnegotiation=direct`), `channel_binding=require`, `require_auth`, queries with
//! parameters in text and binary, pipeline mode, COPY both ways and `cancel_safe()`.
//!
//! Each test runs one Python script with the venv's python; the script prints one line per
//! result, `KEY<TAB>JSON`, and the assertions are made here.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::demo_server::{run, show, DemoServer};
use support::pg::{venv_python, INSTALL_COMMAND};

/// Helpers every script starts with: `out(key, value)` prints one result line, and
/// `trace_connect(conninfo)` connects with libpq's trace on (libpq 18 traces the start-up
/// messages too) and returns the connection and the trace.
const PRELUDE: &str = r#"
import json, os, re, select, sys, tempfile, threading, time
import psycopg
from psycopg import pq

CONNINFO = sys.argv[1]

def out(key, value):
    print(key + "\t" + json.dumps(value), flush=True)

def trace_connect(conninfo):
    pg = pq.PGconn.connect_start(conninfo.encode())
    with tempfile.TemporaryFile("w+") as f:
        # libpq gets its own descriptor (its FILE is never closed); PQuntrace flushes it.
        pg.trace(os.dup(f.fileno()))
        pg.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        deadline = time.monotonic() + 30
        while True:
            status = pg.connect_poll()
            if status == pq.PollingStatus.OK:
                break
            if status == pq.PollingStatus.FAILED or time.monotonic() > deadline:
                pg.untrace()
                raise psycopg.OperationalError(pg.get_error_message().decode())
            if status == pq.PollingStatus.READING:
                select.select([pg.socket], [], [], 1)
            else:
                select.select([], [pg.socket], [], 1)
        pg.untrace()
        f.seek(0)
        return pg, f.read()

def key_data_length(trace):
    """The length field of the BackendKeyData line: 12 for a 4-byte key, 40 for 32 bytes."""
    for line in trace.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] == "B" and fields[2].startswith("BackendKeyData"):
            return int(fields[1])
    return None

def sleep_and_cancel(conn, query="SELECT pg_sleep(30)"):
    """Runs `query` in a thread and cancel_safe()s it until it ends (a cancel that arrives
    before the statement starts is lost, as with PostgreSQL). Returns the outcome."""
    result = {}
    def sleeper():
        try:
            conn.execute(query)
            result["error"] = None
        except psycopg.Error as e:
            result["error"] = [type(e).__name__, e.sqlstate]
    t = threading.Thread(target=sleeper)
    started = time.monotonic()
    t.start()
    time.sleep(0.3)
    while t.is_alive() and time.monotonic() - started < 60:
        conn.cancel_safe(timeout=10)
        t.join(0.5)
    t.join()
    result["seconds"] = time.monotonic() - started
    return result

out("versions", [psycopg.__version__, pq.version(), pq.__impl__])
"#;

/// Runs `script` (after [`PRELUDE`]) with the venv's python and `args` (the first is
/// `CONNINFO`); returns its results by key. Panics, with the output, if it fails.
fn python(args: &[&str], script: &str) -> BTreeMap<String, String> {
    let python = venv_python();
    let source = format!("{PRELUDE}\n{script}");
    let out = run(
        Command::new(&python).arg("-c").arg(&source).args(args),
        "",
        180,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'psycopg") || stderr.contains("couldn't import psycopg") {
        panic!(
            "psycopg is missing from {}.\nInstall the test dependencies (as root, from the crate root):\n\n    {INSTALL_COMMAND}\n\n{}",
            python.display(),
            show(&out)
        );
    }
    assert!(out.status.success(), "the script failed:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The venv is the one the install script makes: psycopg 3.3.9 with libpq 18.6.
    let versions = results.get("versions").map(String::as_str);
    assert_eq!(
        versions,
        Some(r#"["3.3.9", 180006, "binary"]"#),
        "unexpected psycopg/libpq; reinstall with {INSTALL_COMMAND}\n{}",
        show(&out)
    );
    results
}

/// The JSON text printed for `key`.
fn get<'a>(results: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    results
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("the script printed no {key:?}: {results:#?}"))
}

/// Asserts every `(key, json)` pair.
fn expect(results: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    for (key, json) in want {
        assert_eq!(get(results, key), *json, "{key}; all results: {results:#?}");
    }
}

/// The seconds a cancelled `pg_sleep(30)` ran, from a [`PRELUDE`] `sleep_and_cancel` result.
fn cancel_seconds(json: &str) -> f64 {
    let at = json.find("\"seconds\": ").expect("seconds") + "\"seconds\": ".len();
    json[at..]
        .trim_end_matches('}')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("seconds in {json}"))
}

#[test]
fn protocol_3_2_with_direct_tls_channel_binding_and_scram() {
    let server = DemoServer::start(&[]);
    let strict = "sslmode=require sslnegotiation=direct channel_binding=require \
                  require_auth=scram-sha-256 max_protocol_version=3.2";
    let script = r#"
# libpq's trace of the start-up: protocol 3.2 brings a 32-byte cancel key.
for name, extra in [("v32", " max_protocol_version=3.2"), ("v30", " max_protocol_version=3.0")]:
    pg, trace = trace_connect(CONNINFO + extra)
    out(name + "_full_protocol_version", pg.full_protocol_version)
    out(name + "_key_data_length", key_data_length(trace))
    offered = [l for l in trace.splitlines() if "\tAuthenticationSASL\t" in l]
    chosen = [l for l in trace.splitlines() if "\tSASLInitialResponse\t" in l]
    out(name + "_sasl", [re.findall(r'"([^"]*)"', offered[0]) if offered else None,
                         re.findall(r'"([^"]*)"', chosen[0])[:1] if chosen else None,
                         bool(chosen) and "p=tls-server-end-point," in chosen[0]])
    out(name + "_ssl", pg.ssl_in_use)
    pg.finish()

with psycopg.connect(CONNINFO, autocommit=True) as conn:
    info = conn.info
    out("full_protocol_version", info.full_protocol_version)
    out("ssl_in_use", conn.pgconn.ssl_in_use)
    out("used_password", conn.pgconn.used_password)
    out("pid_matches", int(conn.execute("SELECT pg_backend_pid()").fetchone()[0]) == info.backend_pid)
    out("user", [info.user, info.dbname, info.parameter_status("session_authorization")])
    out("server_version", info.parameter_status("server_version"))
    # cancel_safe() sends the 32-byte key (over direct TLS, as the connection was made).
    r = sleep_and_cancel(conn)
    out("cancel", r)
    out("after_cancel", conn.execute("SELECT 'still here'").fetchone()[0])
"#;
    let r = python(&[&server.conninfo(strict)], script);
    expect(
        &r,
        &[
            ("v32_full_protocol_version", "30002"),
            ("v32_key_data_length", "40"),
            ("v32_ssl", "true"),
            ("v30_full_protocol_version", "30000"),
            ("v30_key_data_length", "12"),
            ("v30_ssl", "true"),
            ("full_protocol_version", "30002"),
            ("ssl_in_use", "true"),
            ("used_password", "true"),
            ("pid_matches", "true"),
            ("user", r#"["demo", "demo", "demo"]"#),
            ("after_cancel", r#""still here""#),
        ],
    );
    // SCRAM-SHA-256-PLUS was offered and chosen, with tls-server-end-point channel binding.
    for v in ["v32", "v30"] {
        assert_eq!(
            get(&r, &format!("{v}_sasl")),
            r#"[["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", ""], ["SCRAM-SHA-256-PLUS"], true]"#,
            "{v}"
        );
    }
    assert!(get(&r, "server_version").contains("pgproto"));
    let cancel = get(&r, "cancel");
    assert!(
        cancel.contains(r#""error": ["QueryCanceled", "57014"]"#),
        "{cancel}"
    );
    assert!(cancel_seconds(cancel) < 10.0, "{cancel}");
}

#[test]
fn require_auth_channel_binding_and_wrong_passwords() {
    let scram = DemoServer::start(&[]);
    let md5 = DemoServer::start(&["--auth", "md5"]);
    let trust = DemoServer::start(&["--auth", "trust"]);
    let script = r#"
cases = json.loads(sys.argv[2])
for name, conninfo in cases:
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
            out(name, ["ok", conn.pgconn.ssl_in_use, conn.pgconn.used_password])
    except psycopg.OperationalError as e:
        out(name, ["error", str(e)])
"#;
    let tls = "sslmode=require";
    let cases: Vec<(&str, String)> = vec![
        (
            "scram_required",
            scram.conninfo("sslmode=require require_auth=scram-sha-256 channel_binding=require"),
        ),
        (
            "scram_plain_tcp",
            scram.conninfo("sslmode=disable require_auth=scram-sha-256"),
        ),
        (
            "scram_md5_required",
            scram.conninfo(&format!("{tls} require_auth=md5")),
        ),
        (
            "scram_not_scram",
            scram.conninfo(&format!("{tls} require_auth=!scram-sha-256")),
        ),
        (
            "scram_wrong_password",
            scram.conninfo_as("demo", "nope", tls),
        ),
        ("scram_unknown_user", scram.conninfo_as("who", "demo", tls)),
        (
            "md5_required",
            md5.conninfo(&format!("{tls} require_auth=md5")),
        ),
        (
            "md5_scram_required",
            md5.conninfo(&format!("{tls} require_auth=scram-sha-256")),
        ),
        (
            "md5_channel_binding",
            md5.conninfo(&format!("{tls} channel_binding=require")),
        ),
        ("md5_wrong_password", md5.conninfo_as("demo", "nope", tls)),
        (
            "trust_none",
            trust.conninfo(&format!("{tls} require_auth=none")),
        ),
        (
            "trust_scram_required",
            trust.conninfo(&format!("{tls} require_auth=scram-sha-256")),
        ),
    ];
    let json_cases = format!(
        "[{}]",
        cases
            .iter()
            .map(|(n, c)| format!(
                "[\"{n}\", \"{}\"]",
                c.replace('\\', "\\\\").replace('"', "\\\"")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = python(&["", &json_cases], script);
    expect(
        &r,
        &[
            ("scram_required", r#"["ok", true, true]"#),
            ("scram_plain_tcp", r#"["ok", false, true]"#),
            ("md5_required", r#"["ok", true, true]"#),
            ("trust_none", r#"["ok", true, false]"#),
        ],
    );
    // Refused by libpq itself, naming the reason.
    for (name, needle) in [
        ("scram_md5_required", "server requested SASL authentication"),
        (
            "scram_not_scram",
            "server requested SCRAM-SHA-256-PLUS authentication",
        ),
        ("md5_scram_required", "server requested a hashed password"),
        ("md5_channel_binding", "channel binding required"),
        (
            "trust_scram_required",
            "server did not complete authentication",
        ),
    ] {
        let v = get(&r, name);
        assert!(
            v.starts_with(r#"["error", "#) && v.contains(needle),
            "{name}: expected an error with {needle:?}, got {v}"
        );
    }
    // Refused by the server: 28P01's message.
    for name in [
        "scram_wrong_password",
        "scram_unknown_user",
        "md5_wrong_password",
    ] {
        let v = get(&r, name);
        assert!(
            v.contains("password authentication failed for user"),
            "{name}: {v}"
        );
    }
}

#[test]
fn parameters_pipeline_copy_and_cancel() {
    let server = DemoServer::start(&[]);
    let script = r#"
with psycopg.connect(CONNINFO, autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("CREATE TABLE t (id int8 PRIMARY KEY, f float8, s text, b bytea, ok bool)")
    # Client-side placeholders become $n: text-format parameters (%s) ...
    cur.execute("INSERT INTO t VALUES (%s, %s, %s, %s, %s)", (1, 2.5, "x", b"\x00\x01\xff", True))
    # ... binary ones (%b) ...
    cur.execute("INSERT INTO t VALUES (%b, %b, %b, %b, %b)",
                (2, -0.125, "h\u00e9llo \u2713", bytes(range(256)), False))
    # ... NULLs, big integers, and a statement prepared on the server after repeated use.
    for i in range(3, 13):
        cur.execute("INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                    (i * 10**15, None, None if i % 2 else f"s{i}", None, i % 3 == 0),
                    prepare=(i > 5))
    out("rowcount", cur.rowcount)
    # Results in text and in binary.
    for binary in (False, True):
        cur.execute("SELECT id, f, s, b, ok FROM t WHERE id < %s ORDER BY id", (3,), binary=binary)
        rows = [[r[0], r[1], r[2], r[3].hex(), r[4]] for r in cur.fetchall()]
        out("rows_binary" if binary else "rows_text", rows)
        out("types_binary" if binary else "types_text",
            [(d.name, d.type_code) for d in cur.description])
    cur.execute("SELECT count(*), count(s), sum(ok) FROM t WHERE id > %s", (2,))
    out("aggregates", [str(v) for v in cur.fetchone()])
    cur.execute("SELECT s FROM t WHERE s = %s", ("s4",))
    out("by_text", cur.fetchall())

    # Pipeline mode: 100 queries sent before the results are read.
    with conn.pipeline():
        curs = [conn.execute("SELECT %s::text || '!'", (str(i),)) for i in range(100)]
    out("pipeline", all(c.fetchone()[0] == f"{i}!" for i, c in enumerate(curs)))

    # An error and a failed transaction.
    try:
        cur.execute("SELECT * FROM nope")
    except psycopg.Error as e:
        out("missing_table", [type(e).__name__, e.sqlstate, e.diag.message_primary])
    conn.autocommit = False
    cur.execute("INSERT INTO t (id) VALUES (%s)", (100,))
    errors = []
    for sql in ("SELECT nope FROM t", "SELECT 1"):
        try:
            cur.execute(sql)
        except psycopg.Error as e:
            errors.append(e.sqlstate)
    out("failed_tx", [errors, conn.info.transaction_status.name])
    conn.rollback()
    conn.autocommit = True
    out("after_rollback", int(cur.execute("SELECT count(*) FROM t WHERE id = 100").fetchone()[0]))

    # COPY FROM STDIN: 5000 rows written by psycopg (text format), some with characters
    # that COPY escapes.
    cur.execute("CREATE TABLE c (id int8, name text, score float8, data bytea, flag bool)")
    rows = [(i, None if i % 7 == 0 else f"n\t{i}\\x\n", i / 4, bytes([i % 256, 0]), i % 2 == 0)
            for i in range(5000)]
    with cur.copy("COPY c (id, name, score, data, flag) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    out("copy_in", cur.rowcount)
    # COPY TO STDOUT, typed by set_types, must give the same rows back.
    got = []
    with cur.copy("COPY c TO STDOUT") as copy:
        copy.set_types(["int8", "text", "float8", "bytea", "bool"])
        for row in copy.rows():
            got.append(row)
    out("copy_out_count", len(got))
    out("copy_out_same", [tuple(r[:3]) + (bytes(r[3]), r[4]) for r in got] == rows)
    # And raw, for a query.
    data = b""
    with cur.copy("COPY (SELECT id, name FROM c WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
        for chunk in copy:
            data += bytes(chunk)
    out("copy_out_raw", data.decode())

    # cancel_safe() of a running pg_sleep.
    r = sleep_and_cancel(conn)
    out("cancel", r)
    out("after_cancel", int(conn.execute("SELECT count(*) FROM c").fetchone()[0]))
"#;
    let r = python(
        &[&server.conninfo("sslmode=require channel_binding=require")],
        script,
    );
    let all_bytes: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
    expect(
        &r,
        &[
            ("rowcount", "1"),
            (
                "rows_text",
                &format!(
                    r#"[[1, 2.5, "x", "0001ff", true], [2, -0.125, "h\u00e9llo \u2713", "{all_bytes}", false]]"#
                ),
            ),
            (
                "rows_binary",
                &format!(
                    r#"[[1, 2.5, "x", "0001ff", true], [2, -0.125, "h\u00e9llo \u2713", "{all_bytes}", false]]"#
                ),
            ),
            (
                "types_text",
                r#"[["id", 20], ["f", 701], ["s", 25], ["b", 17], ["ok", 16]]"#,
            ),
            (
                "types_binary",
                r#"[["id", 20], ["f", 701], ["s", 25], ["b", 17], ["ok", 16]]"#,
            ),
            ("aggregates", r#"["10", "5", "4"]"#),
            ("by_text", r#"[["s4"]]"#),
            ("pipeline", "true"),
            (
                "missing_table",
                r#"["UndefinedTable", "42P01", "relation \"nope\" does not exist"]"#,
            ),
            ("failed_tx", r#"[["42703", "25P02"], "INERROR"]"#),
            ("after_rollback", "0"),
            ("copy_in", "5000"),
            ("copy_out_count", "5000"),
            ("copy_out_same", "true"),
            (
                "copy_out_raw",
                r#""0\t\\N\n1\tn\\t1\\\\x\\n\n2\tn\\t2\\\\x\\n\n""#,
            ),
            ("after_cancel", "5000"),
        ],
    );
    let cancel = get(&r, "cancel");
    assert!(
        cancel.contains(r#""error": ["QueryCanceled", "57014"]"#),
        "{cancel}"
    );
    assert!(cancel_seconds(cancel) < 10.0, "{cancel}");
}
