#!/usr/bin/env bash
# Regenerate the psycopg/libpq trace recordings in tests/data/traces/.
#
# The live test `fresh_psycopg_sessions_trace_as_libpq_does` (tests/live_trace.rs) starts a
# throw-away PostgreSQL 18 server (tests/support/pg.rs, ssl=off, on 127.0.0.1), records every
# session of tests/data/trace_sessions.py through tests/data/record_proxy.py with psycopg's
# libpq tracing on, checks `inspect --trace` against libpq's trace, and, with
# PGPROTO_WRITE_TRACES=1, copies the recordings here. It stops the server and removes its
# directory itself.
#
# Needs: bash scripts/install-test-deps.sh (PostgreSQL 18, the psycopg venv with libpq 18.6).
# Run from anywhere:   bash tests/data/regenerate_traces.sh

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PGPROTO_WRITE_TRACES=1 cargo test --test live_trace -- --exact fresh_psycopg_sessions_trace_as_libpq_does
ls -l tests/data/traces
