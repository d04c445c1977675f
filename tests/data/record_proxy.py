#!/usr/bin/env python3
"""Recording TCP proxy for capturing real PostgreSQL wire traffic.

This proxy sits between a real client (psql, pgbench, ...) and a real server.
It listens on 127.0.0.1 only, forwards every accepted connection to
127.0.0.1:<upstream port>, and stores exactly what each side sent, byte for
byte, in two files per connection:

    <outdir>/<prefix>-<n>.client   bytes the client sent to the server
    <outdir>/<prefix>-<n>.server   bytes the server sent to the client

where n counts accepted connections starting at 1, in accept order.

Bytes are written to the capture file *before* they are forwarded, so
anything the other peer has seen is already on disk.  Each direction is
handled by its own thread with blocking sockets, so a peer that stops
reading in one direction cannot stall the other one.

The proxy stops by itself when the stop file (--stop-file) appears, or on
SIGTERM / SIGINT.  When stopping it first refuses new connections, then gives
open connections up to --drain-seconds to finish normally (so a client's
final Terminate message, already sent but not yet read by us, still lands
in the file), and finally shuts down whatever is left.  Clients that reset
the connection abruptly are treated like an orderly close.

Only the Python 3 standard library is used.

Example:
    python3 record_proxy.py --listen-port 0 --upstream-port 5432 \
        --outdir captures --prefix psql_scram --ready-file /tmp/port \
        --stop-file /tmp/stop
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time

LOOPBACK = "127.0.0.1"


class Connection:
    """One proxied client connection and its two capture files."""

    def __init__(self, number, client_sock, upstream_sock, outdir, prefix):
        self.number = number
        self.client = client_sock
        self.upstream = upstream_sock
        base = os.path.join(outdir, "%s-%d" % (prefix, number))
        # Unbuffered binary files: every chunk hits the OS right away.
        self.client_file = open(base + ".client", "wb", buffering=0)
        self.server_file = open(base + ".server", "wb", buffering=0)
        self.threads = [
            threading.Thread(
                target=self._pump,
                args=(self.client, self.upstream, self.client_file),
                daemon=True,
            ),
            threading.Thread(
                target=self._pump,
                args=(self.upstream, self.client, self.server_file),
                daemon=True,
            ),
        ]
        self._lock = threading.Lock()
        self._open_directions = 2

    def start(self):
        for t in self.threads:
            t.start()

    def _pump(self, src, dst, capture):
        """Copy src -> dst until EOF or error, recording every byte."""
        try:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    # Reset by peer, or we shut the socket down while stopping.
                    data = b""
                if not data:
                    break
                capture.write(data)
                try:
                    dst.sendall(data)
                except OSError:
                    # The receiving side is gone; keep nothing more to do.
                    break
        finally:
            # Pass the end-of-stream on: the other peer sees a half-close,
            # just as it would without the proxy in between.
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._direction_done()

    def _direction_done(self):
        with self._lock:
            self._open_directions -= 1
            last = self._open_directions == 0
        if last:
            self._close_everything()

    def _close_everything(self):
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass
        for f in (self.client_file, self.server_file):
            try:
                f.close()
            except OSError:
                pass

    def finished(self):
        return not any(t.is_alive() for t in self.threads)

    def force_close(self):
        """Unblock both pump threads by shutting both sockets down."""
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self, timeout=None):
        for t in self.threads:
            t.join(timeout)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen-port", type=int, required=True,
                   help="port to listen on at 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--upstream-port", type=int, required=True,
                   help="server port at 127.0.0.1 to forward to")
    p.add_argument("--outdir", required=True, help="directory for capture files")
    p.add_argument("--prefix", required=True, help="capture name prefix")
    p.add_argument("--stop-file",
                   help="stop once this file exists (checked every 0.1 s)")
    p.add_argument("--ready-file",
                   help="once listening, write the actual port number here")
    p.add_argument("--drain-seconds", type=float, default=5.0,
                   help="when stopping, wait this long for open connections")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="safety net: stop by itself after this long")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, args.listen_port))
    listener.listen(16)
    # A short accept timeout lets the loop notice the stop conditions.
    listener.settimeout(0.1)
    port = listener.getsockname()[1]

    if args.ready_file:
        # Write to a temporary name and rename so readers never see half a file.
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)

    connections = []
    count = 0
    deadline = time.monotonic() + args.max_seconds

    while not stop.is_set():
        if args.stop_file and os.path.exists(args.stop_file):
            break
        if time.monotonic() > deadline:
            print("record_proxy: --max-seconds reached, stopping", file=sys.stderr)
            break
        try:
            client, _addr = listener.accept()
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                break
            raise
        client.settimeout(None)
        try:
            upstream = socket.create_connection((LOOPBACK, args.upstream_port))
        except OSError as e:
            print("record_proxy: cannot reach upstream: %s" % e, file=sys.stderr)
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        count += 1
        conn = Connection(count, client, upstream, args.outdir, args.prefix)
        connections.append(conn)
        conn.start()

    listener.close()

    # Let open connections end on their own first, then cut them off.
    drain_until = time.monotonic() + args.drain_seconds
    while time.monotonic() < drain_until and not all(c.finished() for c in connections):
        time.sleep(0.05)
    for c in connections:
        if not c.finished():
            print("record_proxy: connection %d still open, closing it" % c.number,
                  file=sys.stderr)
            c.force_close()
    for c in connections:
        c.join(2.0)

    print("record_proxy: %s: %d connection(s) recorded" % (args.prefix, count),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
