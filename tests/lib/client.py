"""client.py - how an integration test talks to what stack.py started, and
how it reports.

  * request(): the one HTTP client, for http:// and https:// URLs alike,
    and for bytes sent exactly as they are (raw_request=); json_body() and
    is_error_body() for the responder's JSON;
  * fastcgi(): one request spoken to the responder directly, without nginx
    (its own answers, which nginx would replace), with cgi_params();
  * psql(): the one way to run SQL on a cluster (rows, text, one value,
    JSON rows, or the bare exit code/stdout/stderr, as any role);
  * Tap / note(): the TAP stream automake's tap-driver reads.

Nothing here starts a process that outlives its call (stack.py does that).
Standard library only.
"""

import email.parser
import http.client
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse


# --- HTTP ----------------------------------------------------------------

class Response(tuple):
    """(status, headers, body): unpacks as that 3-tuple. headers is an
    http.client.HTTPMessage (names case-insensitive); body is the parsed
    JSON or else the text. Also .seconds (the whole exchange) and .raw
    (raw_request=: every byte the server sent; otherwise the body bytes)."""

    def __new__(cls, status, headers, body, seconds, raw):
        self = super().__new__(cls, (status, headers, body))
        self.status, self.headers, self.body = status, headers, body
        self.seconds, self.raw = seconds, raw
        return self


def tls_context(cafile=None, minimum=None, maximum=None, ciphers=None, alpn=None):
    """A client SSLContext trusting cafile (the system store when None),
    hostname checked; TLS versions, ciphers and ALPN protocols optional."""
    ctx = ssl.create_default_context(cafile=cafile)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _decode(raw):
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def request(method, url, body=None, headers=None, timeout=600, context=None, cafile=None,
            source_address=None, encode_chunked=False, raw_request=None):
    """One HTTP/1.1 exchange with url (http or https; redirects are not
    followed; one connection, closed afterwards). Returns a Response.

    body: str or bytes. headers: a dict, or a list of (name, value) pairs
    sent exactly as given (repeated or unusual headers; Content-Length is
    added for a body, Transfer-Encoding with encode_chunked). https uses
    context, or a context trusting cafile.

    raw_request: bytes sent as the whole request instead (method, body and
    headers are then not used), for what http.client refuses to build;
    the answer is read until the server closes, status None when it is not
    an HTTP status line."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and context is None:
        context = tls_context(cafile)
    start = time.monotonic()
    if raw_request is not None:
        return _raw_exchange(parts, raw_request, context, timeout, start)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context,
                                           timeout=timeout, source_address=source_address)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout,
                                          source_address=source_address)
    try:
        data = body.encode() if isinstance(body, str) else body
        if isinstance(headers, list):
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if data is not None and not encode_chunked:
                conn.putheader("Content-Length", str(len(data)))
            elif encode_chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders(data, encode_chunked=encode_chunked)
        else:
            conn.request(method, path, data, headers or {}, encode_chunked=encode_chunked)
        resp = conn.getresponse()
        status, hdrs, raw = resp.status, resp.headers, resp.read()
    finally:
        conn.close()
    return Response(status, hdrs, _decode(raw), time.monotonic() - start, raw)


def _raw_exchange(parts, data, context, timeout, start):
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        if parts.scheme == "https":
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
        sock.sendall(data)
        raw = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            raw += chunk
    finally:
        sock.close()
    first = raw.split(b"\r\n", 1)[0].split()
    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
    head, _, payload = raw.partition(b"\r\n\r\n")
    fields = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
    try:
        hdrs = email.parser.BytesParser(_class=http.client.HTTPMessage).parsebytes(
            fields + b"\r\n\r\n", headersonly=True)
    except Exception:  # whatever the server sent, .raw still has it
        hdrs = http.client.HTTPMessage()
    return Response(status, hdrs, _decode(payload), time.monotonic() - start, raw)


def json_body(obj):
    """obj as the bytes of a JSON request body."""
    return json.dumps(obj).encode()


def is_error_body(js, code=None):
    """js is the responder's error answer: {"success": false, "error":
    {"code": a non-empty string (code, when given), "message": a string}}."""
    if not isinstance(js, dict) or js.get("success") is not False:
        return False
    e = js.get("error")
    if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not e["code"]:
        return False
    return isinstance(e.get("message"), str) and (code is None or e["code"] == code)


# --- FastCGI, to the responder directly ------------------------------------

FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 1, 3, 4, 5, 6
FCGI_MAX_CONTENT = 65535   # one record's content at most


def _fcgi_record(rtype, content):
    return struct.pack("!BBHHBx", 1, rtype, 1, len(content), 0) + content


def _fcgi_stream(rtype, data):
    """data in records of at most FCGI_MAX_CONTENT bytes, then the empty one
    that ends the stream."""
    return b"".join(_fcgi_record(rtype, data[i:i + FCGI_MAX_CONTENT])
                    for i in range(0, len(data), FCGI_MAX_CONTENT)) + _fcgi_record(rtype, b"")


def _fcgi_nv(name, value):
    def length(n):
        return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)
    name = name.encode()
    value = value.encode() if isinstance(value, str) else value
    return length(len(name)) + length(len(value)) + name + value


def cgi_params(method, path, **extra):
    """The CGI parameters of a request for path as nginx passes them (method,
    URIs, script name, protocol, client address), then extra (e.g.
    CONTENT_LENGTH, HTTP_AUTHORIZATION)."""
    return dict({"REQUEST_METHOD": method, "DOCUMENT_URI": path, "REQUEST_URI": path,
                 "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1",
                 "REMOTE_ADDR": "127.0.0.1"}, **extra)


def fastcgi(port, params, stdin=b"", timeout=30):
    """One FastCGI request (role responder) to 127.0.0.1:port: params (a
    dict, values str or bytes) and stdin, each in records of at most 64 KiB.
    Returns (status, headers with lower-case names, body bytes). Raises
    ConnectionError when the responder closes before its END_REQUEST, and
    socket.timeout when the whole exchange takes over timeout seconds."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_fcgi_record(FCGI_BEGIN, struct.pack("!HB5x", 1, 0))
                     + _fcgi_stream(FCGI_PARAMS, b"".join(_fcgi_nv(k, v)
                                                          for k, v in params.items()))
                     + _fcgi_stream(FCGI_STDIN, stdin))
        buf, stdout = b"", b""
        while True:
            while len(buf) < 8 or len(buf) < 8 + struct.unpack("!H", buf[4:6])[0] + buf[6]:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the responder closed the connection")
                buf += chunk
            _, rtype, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
            content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
            if rtype == FCGI_STDOUT:
                stdout += content
            elif rtype == FCGI_END:
                break
    head, _, body = stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(headers.get("status", "200").split()[0]), headers, body


# --- psql ------------------------------------------------------------------

PSQL_OUTPUTS = ("rows", "text", "scalar", "json", "result")


def psql(pg, sql, out="rows", db=None, user=None, check=True, env=None):
    """Run sql through psql on pg (a stack.Postgres or a clone of it), in
    pg's database unless db, as pg's superuser unless user.

    out: "rows"   - stdout rows as lists of strings ("|" between fields);
         "text"   - the exact stdout text, only its final newline removed;
         "scalar" - the first field of the first row, or None;
         "json"   - sql's rows as a list of dicts (sql is wrapped in json_agg);
         "result" - (exit code, stdout, stderr); never raises.
    check: raise RuntimeError when psql fails (else use what it printed)."""
    if out not in PSQL_OUTPUTS:
        raise ValueError(f"psql: out must be one of {PSQL_OUTPUTS}")
    if out == "json":
        sql = f"select coalesce(json_agg(r), '[]') from ({sql}) r"
    argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "|",
            "-h", pg.dir, "-U", user or pg.superuser, "-d", db or pg.dbname, "-c", sql]
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out == "result":
        return res.returncode, res.stdout, res.stderr
    if check and res.returncode != 0:
        raise RuntimeError(f"psql failed: {res.stderr.strip()}\nSQL: {sql[:500]}")
    if out == "text":
        return res.stdout[:-1] if res.stdout.endswith("\n") else res.stdout
    if out == "json":
        return json.loads(res.stdout)
    rows = [line.split("|") for line in res.stdout.splitlines() if line != ""]
    if out == "scalar":
        return rows[0][0] if rows else None
    return rows


# --- TAP -------------------------------------------------------------------

class Tap:
    """Minimal TAP producer: ok()/eq() print one line each; done() prints the
    plan, stops everything stack.py started and exits 1 when anything failed."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {desc}", flush=True)
        if not cond and detail is not None:
            for line in str(detail).splitlines()[:40]:
                print(f"#   {line}", flush=True)
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, f"got:  {got!r}\nwant: {want!r}")

    def skip(self, why, count=1):
        """count checks skipped (TAP "ok N # SKIP why")."""
        for _ in range(count):
            self.n += 1
            print(f"ok {self.n} # SKIP {why}", flush=True)

    def skip_all(self, why):
        print(f"1..0 # SKIP {why}", flush=True)
        sys.exit(0)

    def done(self):
        print(f"1..{self.n}", flush=True)
        import stack  # here, not at the top: stack imports this module
        stack.run_cleanups()
        sys.exit(1 if self.failed else 0)


def note(msg):
    """TAP diagnostics: each line of msg as a "# " comment."""
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)
