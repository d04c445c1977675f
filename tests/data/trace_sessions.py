#!/usr/bin/env python3
"""Records psycopg sessions with libpq's own protocol trace beside the raw byte streams.

For each session below, this script starts record_proxy.py (beside this file) in front of a
PostgreSQL server on 127.0.0.1, connects to the proxy with psycopg (libpq 18), turns libpq's
tracing on before the first byte is sent (PQtrace on a PGconn from PQconnectStart, with
PQTRACE_SUPPRESS_TIMESTAMPS), runs the session's statements, and stops the proxy. Each session
leaves three files in --outdir:

    NAME-1.client   the bytes the client sent (record_proxy.py)
    NAME-1.server   the bytes the server sent (record_proxy.py)
    NAME-1.libpq    libpq's trace of the same connection

tests/trace_libpq.rs runs `inspect --trace` on the two streams and compares its lines with
libpq's. The server must run with ssl=off (the first session sends an SSLRequest, answered
with N) and have the test roles of tests/support/pg.rs. The session `demo_server` (only when
asked for with --session) is for the server example instead (`--no-tls`, user and password
`demo`).

Usage:
    trace_sessions.py --port PORT --outdir DIR [--session NAME ...]

Only the standard library and psycopg are used. Prints the libpq version it ran with.
"""

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg import pq

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "record_proxy.py")


def workload_main(conn):
    """Simple and extended queries, parameters, errors, notices, notifications, COPY, pipeline."""
    conn.autocommit = True
    # Simple query: two statements in one Query (two result sets), a NULL, non-ASCII text, a
    # tab and a newline inside a value.
    conn.execute("SELECT 1 AS one, NULL::text AS nothing; SELECT 'caf\u00e9', E'a\\tb\\nc'")
    # An empty query: EmptyQueryResponse.
    conn.pgconn.exec_(b"")
    # Extended query: text and binary parameters, text and binary results.
    conn.execute("SELECT %s::int + 1, %s::text", [41, "x"])
    conn.execute("SELECT %b::bytea, %b::int8", [b"\x00\x01\xfe\xff", 7], binary=True)
    conn.execute("SELECT %t::text", ["text param"])
    # Errors: a simple query and an extended one.
    for sql in ("SELECT 1/0", "SELECT no_such_column"):
        try:
            conn.execute(sql)
        except psycopg.Error:
            pass
    try:
        conn.execute("SELECT %s::int / 0", [1])
    except psycopg.Error:
        pass
    # Notices (NOTICE and WARNING).
    conn.execute("DO $$BEGIN RAISE NOTICE 'hello'; RAISE WARNING 'careful'; END$$")
    # A notification to ourselves: NotificationResponse before ReadyForQuery.
    conn.execute("LISTEN trace_channel")
    conn.execute("NOTIFY trace_channel, 'payload \u00e9'")
    conn.execute("UNLISTEN *")
    # Prepared statements: Parse with a name, Describe of the statement, a Close when the
    # cache evicts one.
    conn.prepared_max = 1
    conn.execute("SELECT %s::int * 2", [3], prepare=True)
    conn.execute("SELECT %s::text || 'y'", ["x"], prepare=True)
    conn.pgconn.prepare(b"stmt", b"SELECT $1::int, $2::text", [23, 25])
    conn.pgconn.describe_prepared(b"stmt")
    # COPY both ways, and a COPY the client aborts (CopyFail).
    conn.execute("CREATE TEMP TABLE t (id int, name text, score float8)")
    with conn.cursor() as cur:
        with cur.copy("COPY t FROM STDIN") as copy:
            copy.write_row([1, "one", 1.5])
            copy.write_row([2, None, None])
            copy.write_row([3, "tab\there", 3.25])
        with cur.copy("COPY t TO STDOUT") as copy:
            for _ in copy:
                pass
        with cur.copy("COPY (SELECT id FROM t ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
            for _ in copy:
                pass
        try:
            with cur.copy("COPY t FROM STDIN") as copy:
                copy.write_row([4, "four", 4.0])
                raise RuntimeError("abandoned")
        except (RuntimeError, psycopg.Error):
            pass
    # Pipeline mode: several statements before one Sync, one of them failing.
    try:
        with conn.pipeline():
            conn.execute("SELECT %s::int", [1])
            conn.execute("INSERT INTO t VALUES (%s, %s, %s)", [5, "five", 5.0])
            conn.execute("SELECT %s::int / 0", [2])
            conn.execute("SELECT %s::int", [3])
    except psycopg.Error:
        pass
    with conn.pipeline():
        conn.execute("SELECT count(*) FROM t")
        conn.execute("SELECT name FROM t WHERE id = %s", [3])
    # A transaction: ReadyForQuery T, then E after an error, then I.
    conn.autocommit = False
    conn.execute("SELECT 1")
    try:
        conn.execute("SELECT 1/0")
    except psycopg.Error:
        pass
    conn.rollback()
    conn.autocommit = True


def workload_demo(conn):
    """What the SQLite server example runs: queries, parameters, errors, NOTIFY, COPY, pipeline."""
    conn.autocommit = True
    conn.execute("SELECT 1 AS one, NULL AS missing, 'caf\u00e9' AS word")
    conn.pgconn.exec_(b"")
    conn.execute("SELECT %s::int8 + 1, %s::text", [41, "x"])
    conn.execute("SELECT %b::bytea, %b::int8", [b"\x00\x01\xfe\xff", 7], binary=True)
    try:
        conn.execute("SELEC 1")
    except psycopg.Error:
        pass
    conn.execute("LISTEN trace_channel")
    conn.execute("NOTIFY trace_channel, 'payload'")
    conn.execute("CREATE TABLE trace_t (id int8, name text)")
    with conn.cursor() as cur:
        with cur.copy("COPY trace_t FROM STDIN") as copy:
            copy.write_row([1, "one"])
            copy.write_row([2, None])
        with cur.copy("COPY trace_t TO STDOUT") as copy:
            for _ in copy:
                pass
    with conn.pipeline():
        conn.execute("SELECT %s::int8", [1])
        conn.execute("SELECT name FROM trace_t WHERE id = %s", [1])
    conn.execute("DROP TABLE trace_t")


def workload_short(conn):
    """One query."""
    conn.autocommit = True
    conn.execute("SELECT current_user")


# name -> (user, password, extra conninfo, workload, whether the connection succeeds)
SESSIONS = {
    "scram_prefer": ("scram_user", "scram_user_pw", "sslmode=prefer", workload_main, True),
    "md5": ("md5_user", "md5_user_pw", "sslmode=disable", workload_short, True),
    "password": ("password_user", "password_user_pw", "sslmode=disable", workload_short, True),
    "trust_3_2": (
        "trust_user",
        None,
        "sslmode=disable max_protocol_version=3.2",
        workload_short,
        True,
    ),
    "bad_password": ("scram_user", "wrong", "sslmode=disable", None, False),
    # Against the server example (cargo run --example server -- --no-tls), not PostgreSQL.
    "demo_server": ("demo", "demo", "sslmode=prefer", workload_demo, True),
}

# What --session all records: the sessions against PostgreSQL.
POSTGRES_SESSIONS = ["scram_prefer", "md5", "password", "trust_3_2", "bad_password"]


def start_proxy(port, outdir, prefix, tmp):
    ready = os.path.join(tmp, prefix + ".ready")
    stop = os.path.join(tmp, prefix + ".stop")
    proc = subprocess.Popen(
        [
            sys.executable,
            PROXY,
            "--listen-port", "0",
            "--upstream-port", str(port),
            "--outdir", outdir,
            "--prefix", prefix,
            "--ready-file", ready,
            "--stop-file", stop,
            "--drain-seconds", "5",
            "--max-seconds", "120",
        ]
    )
    deadline = time.monotonic() + 10
    while not os.path.exists(ready):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("record_proxy.py did not start")
        time.sleep(0.02)
    with open(ready) as f:
        listen = int(f.read().strip())
    return proc, stop, listen


def stop_proxy(proc, stop):
    open(stop, "w").close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def connect_traced(conninfo, trace_file):
    """A connection traced from its first byte: PQconnectStart, PQtrace, then the poll loop."""
    pgconn = pq.PGconn.connect_start(conninfo.encode())
    pgconn.trace(trace_file.fileno())
    pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
    deadline = time.monotonic() + 20
    while True:
        status = pgconn.connect_poll()
        if status == pq.PollingStatus.OK:
            return psycopg.Connection(pgconn)
        if status == pq.PollingStatus.FAILED:
            message = pgconn.get_error_message()
            pgconn.finish()
            return message
        if time.monotonic() > deadline:
            pgconn.finish()
            raise SystemExit("connection timed out")
        if status == pq.PollingStatus.READING:
            select.select([pgconn.socket], [], [], 1.0)
        else:
            select.select([], [pgconn.socket], [], 1.0)


def record(name, port, outdir, tmp):
    user, password, extra, workload, succeeds = SESSIONS[name]
    proc, stop, listen = start_proxy(port, outdir, name, tmp)
    try:
        conninfo = "host=127.0.0.1 port=%d dbname=pgproto user=%s gssencmode=disable %s" % (
            listen,
            user,
            extra,
        )
        if password is not None:
            conninfo += " password=%s" % password
        with open(os.path.join(outdir, name + "-1.libpq"), "wb") as trace:
            conn = connect_traced(conninfo, trace)
            if isinstance(conn, psycopg.Connection):
                if not succeeds:
                    raise SystemExit("%s: the connection unexpectedly succeeded" % name)
                try:
                    workload(conn)
                finally:
                    # Closing flushes libpq's trace file.
                    conn.close()
            elif succeeds:
                raise SystemExit("%s: connection failed: %s" % (name, conn))
    finally:
        stop_proxy(proc, stop)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
    p.add_argument("--outdir", required=True, help="where the files go")
    p.add_argument("--session", action="append", choices=sorted(SESSIONS),
                   help="record only these sessions (default: all)")
    args = p.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    # Leave no libpq settings from the caller's environment in play.
    for var in list(os.environ):
        if var.startswith("PG"):
            del os.environ[var]
    print("psycopg %s, libpq %d" % (psycopg.__version__, pq.version()))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.session or POSTGRES_SESSIONS:
            record(name, args.port, args.outdir, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
