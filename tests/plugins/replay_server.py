#!/usr/bin/env python3
"""An HTTP server on 127.0.0.1 replaying recorded llama-server responses (tests/fixtures/remote/)
for the remote provider's tests. The first path segment picks the behaviour; the rest is the
endpoint the provider asked for (/infill or /v1/completions):

  /ok/...          200 with the recorded answer for the endpoint
  /error500/...    500 with llama-server's error body (context exceeded); also 401, 503
  /echo/...        400 whose error message repeats the request's Authorization header (a careless
                   proxy): the provider must not show it
  /slow/...        answers after 5 s (cancellation and timeout tests); the wait ends early when the
                   client goes away, which is logged as "client gone after N ms"
  /disconnect/...  reads the request and closes the connection without answering
  /badjson/...     200 with a body that is not JSON
  GET /last        the last request seen: {"path", "headers", "body"}

Prints "PORT <n>" on stdout when listening (port 0 = any free port), then serves until stdin
closes or it is killed. --tls CERT KEY serves HTTPS instead."""
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "remote")
last = {}


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/last":
            self.reply(200, json.dumps(last).encode())
        else:
            self.reply(404, b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        last.clear()
        last.update({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        scenario, _, endpoint = self.path.lstrip("/").partition("/")
        endpoint = "/" + endpoint
        answer = "infill_ok.json" if endpoint == "/infill" else "completions_ok.json"
        if scenario == "ok":
            self.reply(200, fixture(answer))
        elif scenario in ("error500", "error401", "error503"):
            code = int(scenario[5:])
            self.reply(code, fixture("error_%d.json" % code))
        elif scenario == "echo":
            msg = "bad request from %s" % self.headers.get("Authorization", "nobody")
            self.reply(400, json.dumps({"error": {"code": 400, "message": msg,
                                                  "type": "invalid_request_error"}}).encode())
        elif scenario == "slow":
            t0 = time.time()
            self.connection.settimeout(0.01)
            while time.time() - t0 < 5:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        sys.stderr.write("client gone after %d ms\n" % ((time.time() - t0) * 1000))
                        return
                except (socket.timeout, BlockingIOError):
                    pass
                except OSError:
                    return
            self.connection.settimeout(None)
            self.reply(200, fixture(answer))
        elif scenario == "disconnect":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif scenario == "badjson":
            self.reply(200, b"<html>502 Bad Gateway</html>")
        else:
            self.reply(404, b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}')


def main():
    port = 0
    tls = None
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--tls":
            tls = (args.pop(0), args.pop(0))
        else:
            port = int(a)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    # Serve until the test closes our stdin (or kills us).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
