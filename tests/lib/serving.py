"""serving.py - how the test doubles of Notion (tests/emulator,
tests/replay, tests/hostile) run: stop cleanly on SIGTERM/SIGINT, publish
the port they listen on through a port file (written atomically, so a
reader never sees half a number), serve until stopped, and remove the port
file again if it is still theirs.

Handler and Server are the HTTP plumbing the doubles share: every method
goes to one place with the path, query and body (read by Content-Length;
400 for one that cannot be read), a JSON answer is written in one piece (or
chunked, for a body that streams), and a client that went away is not
reported as an error.

Standard library only.
"""

import http
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reason(status):
    """The reason phrase of an HTTP status ("Error" for one HTTP does not name)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Handler(BaseHTTPRequestHandler):
    """A request handler that reads every request, whatever its method, and
    hands it to self.respond(path, query, body); it keeps no per-request log
    of its own."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path, _, query = self.path.partition("?")
        try:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n > 0 else b""
        except (ValueError, OSError):
            self.close_connection = True
            return self.send_json(400, b'{"error":"bad request body"}')
        self.respond(path, query, body)

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def log_message(self, fmt, *args):
        pass

    def respond(self, path, query, body):
        """Answer the request (self.command, self.headers): with send_json."""
        raise NotImplementedError

    def send_json(self, status, body, headers=(), stream=None):
        """Answer status with the JSON bytes body and headers ((name, value)
        pairs). With stream (a callable given the output file) the body is
        what stream writes, chunked, and the connection closes after it. A
        client gone away closes the connection and is not an error."""
        head = ["HTTP/1.1 %d %s" % (status, reason(status)),
                "Content-Type: application/json; charset=utf-8"]
        head.extend("%s: %s" % kv for kv in headers)
        if stream:
            head.append("Transfer-Encoding: chunked")
            self.close_connection = True
        else:
            head.append("Content-Length: %d" % len(body))
        if self.close_connection:
            head.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            if stream:
                stream(self.wfile)
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    """A threaded server (daemon threads) that stays quiet about clients
    that went away."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def serve(servers, port_file=None, announce=None, poll_interval=0.25):
    """Serve servers[0] in this thread and the others in daemon threads
    until a signal stops them all. announce (the port file's text, e.g.
    "8080" or "8080 8081") defaults to servers[0]'s port. Returns 0."""
    main = servers[0]
    text = announce if announce is not None else str(main.server_address[1])

    def stop(_signum, _frame):
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": poll_interval},
                         daemon=True).start()
    if port_file:
        tmp = "%s.tmp.%d" % (port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, port_file)
    try:
        main.serve_forever(poll_interval=poll_interval)
    finally:
        for s in servers:
            s.server_close()
        if port_file:
            try:
                with open(port_file) as f:
                    if f.read().strip() == text:
                        os.unlink(port_file)
            except OSError:
                pass
    return 0
