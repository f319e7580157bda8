#!/usr/bin/env python3
"""Loopback HTTP server for orchd's tests (stdlib only).

Usage: httpd.py [--tls CERT KEY]   (--tls: HTTPS with that certificate)

Binds 127.0.0.1 on an ephemeral port and prints "PORT\n" on stdout once it
listens.  Stops on SIGTERM, or when its stdin reaches EOF (so that it dies
with the test process that started it, even if that one could not clean
up).  Every request except /_stats/* is counted by
path (the path as the client sent it, so a proxied request is counted under
its absolute URL).

Routes:
  /bytes/N            200, N bytes of a fixed pattern, with Content-Length
  /chunked/N          200, N bytes of the same pattern, chunked (no length)
  /status/CODE        CODE with a short body
  /flaky/KEY/N/CODE   CODE for the first N requests of KEY, then /bytes/16
  /retry-after/KEY/S  429 with "Retry-After: S" the first time, then /bytes/16
  /slow/MS            waits MS milliseconds, then /bytes/16
  /redirect/N         302 to /redirect/N-1; /redirect/0 is /bytes/16
  /_stats/PATH        the number of requests seen for /PATH (text)
  http://HOST/PATH    (proxy form) served as /PATH, counted as /proxy:PATH
"""
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PATTERN = b"orchd-test-data\n"


def pattern(n):
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts = {}
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        raw = self.path
        path = urlsplit(raw).path if raw.startswith("http://") else raw.split("?")[0]
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "_stats":
            key = "/" + "/".join(parts[1:])
            with self.lock:
                n = self.counts.get(key, 0)
            self.send_body(200, str(n).encode())
            return
        with self.lock:
            self.counts[raw] = self.counts.get(raw, 0) + 1
            seen = self.counts[raw]
            if raw != path:
                # a proxied request is also counted as /proxy:PATH
                key = "/proxy:" + path
                self.counts[key] = self.counts.get(key, 0) + 1
        try:
            self.route(parts, seen)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, parts, seen):
        kind = parts[0] if parts else ""
        if kind == "bytes":
            self.send_body(200, pattern(int(parts[1])))
        elif kind == "chunked":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = pattern(n)
            for i in range(0, n, 4096):
                c = data[i:i + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "status":
            code = int(parts[1])
            self.send_body(code, b"status %d\n" % code)
        elif kind == "flaky":
            n, code = int(parts[2]), int(parts[3])
            if seen <= n:
                self.send_body(code, b"flaky\n")
            else:
                self.send_body(200, pattern(16))
        elif kind == "retry-after":
            if seen == 1:
                self.send_body(429, b"slow down\n", [("Retry-After", parts[2])])
            else:
                self.send_body(200, pattern(16))
        elif kind == "slow":
            time.sleep(int(parts[1]) / 1000.0)
            self.send_body(200, pattern(16))
        elif kind == "redirect":
            n = int(parts[1])
            if n <= 0:
                self.send_body(200, pattern(16))
            else:
                self.send_body(302, b"", [("Location", "/redirect/%d" % (n - 1))])
        else:
            self.send_body(404, b"not found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # clients that give up early (size caps, timeouts, cancellation)
        # reset their connections: expected, not worth a traceback
        pass


def watch_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
