#!/usr/bin/env python3
"""pgnet_worker.py - plays pg_net's background worker for tests/pgnet/pg_net_standin.sql.

pg_net (supabase/pg_net, v0.20.5) sends the HTTP requests queued in
net.http_request_queue from a background worker inside PostgreSQL. This
program does the same from outside, for tests, with the standard library
only. It keeps one `psql` session to one database (pg_net.database_name)
open, named 'pg_net 0.20.5 worker' in pg_stat_activity, and in a loop:

  * deletes responses older than pg_net.ttl (default 6 hours), at most
    pg_net.batch_size (default 200) rows at a time, as src/core.c does;
  * in one transaction: takes up to batch_size committed rows of the queue
    in id order (DELETE ... RETURNING, the statement of src/core.c), sends
    them all at once, each in its own thread, inserts one net._http_response
    row per request and commits. Rows of open or rolled-back transactions
    are never seen; if the worker dies mid-batch, the transaction rolls back
    and the rows are sent again later (as with real pg_net >= 0.19);
  * sleeps --interval seconds (pg_net sleeps until a commit wakes it).

Each request is sent as libcurl does it for pg_net (no retries, redirects
followed, total time bounded by timeout_milliseconds, 'User-Agent:
pg_net/0.20.5' appended to the headers), and recorded as pg_net records it:
status_code, headers, content_type and content for any answer;
timed_out = true and pg_net's detailed "Timeout of N ms reached. ..."
message on a timeout; libcurl's curl_easy_strerror() text (libcurl 7.88.1)
otherwise. See tests/pgnet/README for the differences from real pg_net.

Usage:
  pgnet_worker.py --host SOCKETDIR [--port N] --user U --dbname DB
                  [--interval 0.1] [--batch-size N] [--ttl '6 hours']
                  [--quiet] [--log FILE]
  pgnet_worker.py --conninfo 'host=... dbname=...' ...
SIGTERM or SIGINT stops it: a batch in flight is finished if it ends within
--stop-grace seconds, else rolled back (its requests stay queued).
Authorization header values and bearer secrets never reach the log.
"""

import argparse
import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque

VERSION = "0.20.5"
APP_NAME = f"pg_net {VERSION} worker"
USER_AGENT = f"pg_net/{VERSION}"
RESTART_CHANNEL = "pg_net_standin_restart"
MAX_REDIRECTS = 50
LEGAL_HEADER_NAME = re.compile(r"[^:\s][^:\r\n]*")  # what http.client can send
RESTART_DELAY = 1.0  # bgw_restart_time of pg_net's worker

# curl_easy_strerror() of libcurl 7.88.1 (Debian 12), as pg_net stores them.
E_UNSUPPORTED_PROTOCOL = "Unsupported protocol"
E_URL_MALFORMAT = "URL using bad/illegal format or missing URL"
E_COULDNT_RESOLVE_HOST = "Couldn't resolve host name"
E_COULDNT_CONNECT = "Couldn't connect to server"
E_WEIRD_SERVER_REPLY = "Weird server reply"
E_PARTIAL_FILE = "Transferred a partial file"
E_GOT_NOTHING = "Server returned nothing (no headers, no data)"
E_SEND_ERROR = "Failed sending data to the peer"
E_RECV_ERROR = "Failure when receiving data from the peer"
E_SSL_CONNECT_ERROR = "SSL connect error"
E_PEER_FAILED_VERIFICATION = "SSL peer certificate or SSH remote key was not OK"
E_TOO_MANY_REDIRECTS = "Number of redirects hit maximum amount"
E_BAD_TIMEOUT = "Could not curl_easy_setopt(CURLOPT_TIMEOUT_MS)"


# --- logging ------------------------------------------------------------------

_SECRET_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[^\s\"',;]+"), r"\1\2***"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"',}\r\n]+"), r"\1***"),
    (re.compile(r"(?i)(proxy-authorization[\"']?\s*[:=]\s*[\"']?)[^\"',}\r\n]+"), r"\1***"),
    (re.compile(r"(://[^/@\s:]*:)[^/@\s]*@"), r"\1***@"),
]


def mask(text):
    """text with Authorization values, bearer secrets and URL passwords masked."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Log:
    """Timestamped, masked log lines on stderr or appended to a file."""

    def __init__(self, path=None, quiet=False):
        self.quiet = quiet
        self.lock = threading.Lock()
        self.out = open(path, "a", buffering=1) if path else sys.stderr

    def _write(self, level, msg):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self.lock:
            for line in mask(str(msg)).splitlines() or [""]:
                self.out.write(f"{stamp} pgnet_worker {level}: {line}\n")
            self.out.flush()

    def info(self, msg):
        if not self.quiet:
            self._write("LOG", msg)

    def warning(self, msg):
        self._write("WARNING", msg)


# --- the psql session -----------------------------------------------------------

class PsqlError(Exception):
    """The psql session ended (an SQL error stops it: ON_ERROR_STOP)."""


class Session:
    """One long-lived `psql` process fed over stdin: the worker's connection.

    query() sends SQL followed by a marker SELECT and returns the output
    lines (unaligned, tuples only) that came before the marker. psql runs in
    its own session so that a signal to our process group does not kill it
    mid-transaction; if we die, it reads EOF and exits, rolling back.
    """

    def __init__(self, argv, log):
        env = dict(os.environ, PGAPPNAME=APP_NAME, PGCLIENTENCODING="UTF8")
        self.log = log
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.stderr = deque(maxlen=20)
        self.restart_requested = False
        self.n = 0
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr.append(line)
            self.log.warning(f"psql: {line}")

    def _error(self):
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.05)  # let the stderr thread catch the last lines
        detail = next((l for l in self.stderr if "ERROR" in l or "FATAL" in l), None)
        return PsqlError(detail or (self.stderr[-1] if self.stderr else "psql exited"))

    def query(self, sql):
        self.n += 1
        marker = f"pgnet-standin-mark-{self.n}"
        try:
            self.proc.stdin.write(f"{sql.rstrip()}\nselect '{marker}';\n".encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._error() from None
        lines = []
        while True:
            raw = self.proc.stdout.readline()
            if not raw:
                raise self._error()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line == marker:
                return lines
            if line.startswith(f'Asynchronous notification "{RESTART_CHANNEL}"'):
                self.restart_requested = True
                continue
            lines.append(line)

    def close(self, grace=5.0):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"\\q\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- one HTTP request, as libcurl sends it for pg_net ---------------------------------

class Failure(Exception):
    """A transfer failed without an answer; message is curl_easy_strerror()'s."""


class Timeout(Exception):
    """The transfer ran past timeout_milliseconds (CURLE_OPERATION_TIMEDOUT)."""


class Deadline:
    """CURLOPT_TIMEOUT_MS: one deadline for the whole transfer, redirects
    included. When it passes, the socket in use is shut down, which ends any
    blocking call on it. timeout_ms == 0 means no deadline (libcurl's 0)."""

    def __init__(self, timeout_ms):
        self.lock = threading.Lock()
        self.fired = False
        self.sock = None
        self.at = time.monotonic() + timeout_ms / 1000.0 if timeout_ms > 0 else None
        self.timer = None
        if self.at is not None:
            self.timer = threading.Timer(timeout_ms / 1000.0, self._fire)
            self.timer.daemon = True
            self.timer.start()

    def _fire(self):
        with self.lock:
            self.fired = True
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def attach(self, sock):
        with self.lock:
            self.sock = sock
            if self.fired:
                raise Timeout()

    def remaining(self):
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise Timeout()
        return left

    def expired(self):
        return self.fired or (self.at is not None and time.monotonic() >= self.at)

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()


class Timing:
    """CURLINFO_*_TIME equivalents, in seconds from the start (0 = not reached)."""

    def __init__(self):
        self.start = time.monotonic()
        self.namelookup = self.connect = self.appconnect = self.pretransfer = 0.0

    def now(self):
        return time.monotonic() - self.start


def timeout_message(timing, timeout_ms):
    """src/errors.c detailed_timeout_strerror(), from our timings."""
    total = timing.now()
    at_dns = timing.namelookup == 0 and timing.connect == 0
    at_handshake = timing.pretransfer == 0
    if at_dns:
        dns, handshake, http_time = total, 0.0, 0.0
    elif at_handshake:
        dns, handshake, http_time = timing.namelookup, total - timing.namelookup, 0.0
    else:
        dns = timing.namelookup
        handshake = (timing.connect - timing.namelookup) + (
            timing.appconnect - timing.connect if timing.appconnect > 0 else 0.0)
        http_time = total - timing.pretransfer
    return (f"Timeout of {timeout_ms} ms reached. Total time: {total * 1000:f} ms "
            f"(DNS time: {dns * 1000:f} ms, TCP/SSL handshake time: {handshake * 1000:f} ms, "
            f"HTTP Request/Response time: {http_time * 1000:f} ms)")


class RawHTTPConnection(http.client.HTTPConnection):
    """http.client on a socket we connected, sending the request line as
    UTF-8 bytes as libcurl does (http.client would insist on ASCII)."""

    def _encode_request(self, request):
        return request.encode("utf-8")


def resolve(host, port, deadline):
    """getaddrinfo() bounded by the deadline (it runs in a helper thread)."""
    box = {}

    def run():
        try:
            box["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise Timeout()
    if "error" in box:
        raise Failure(E_COULDNT_RESOLVE_HOST)
    return box["addrs"]


def open_socket(scheme, host, port, deadline, timing):
    """TCP (and TLS for https) connection to host:port, like libcurl's."""
    addrs = resolve(host, port, deadline)
    timing.namelookup = max(timing.now(), 1e-6)
    sock = None
    for family, kind, proto, _, addr in addrs:
        candidate = socket.socket(family, kind, proto)
        try:
            deadline.attach(candidate)
            candidate.settimeout(deadline.remaining())
            candidate.connect(addr)
            sock = candidate
            break
        except (Timeout, socket.timeout):
            candidate.close()
            raise Timeout() from None
        except OSError:
            candidate.close()
            if deadline.expired():
                raise Timeout() from None
    if sock is None:
        raise Failure(E_COULDNT_CONNECT)
    timing.connect = max(timing.now(), 1e-6)
    if scheme == "https":
        try:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
            deadline.attach(sock)
        except ssl.SSLCertVerificationError:
            raise Failure(E_PEER_FAILED_VERIFICATION) from None
        except (ssl.SSLError, OSError):
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_SSL_CONNECT_ERROR) from None
        timing.appconnect = max(timing.now(), 1e-6)
    return sock


def host_port(parts):
    """(host as written, bracketed if IPv6; port) of a split URL."""
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        inside, _, rest = hostport[1:].partition("]")
        host, port = f"[{inside}]", rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    default = 443 if parts.scheme == "https" else 80
    if not port:
        return host, default
    if not port.isdigit() or int(port) > 65535:
        raise Failure(E_URL_MALFORMAT)
    return host, int(port)


def request_headers(header_lines, url_parts, method, body):
    """The header lines libcurl sends: Host, Basic auth from the URL, Accept,
    then pg_net's list (\"name: value\" from the queue, then User-Agent), then
    Content-Length/Content-Type for a body. A custom header replaces the
    built-in one of its name; one with a blank value is not sent and
    suppresses the built-in one (libcurl's rules)."""
    custom, names = [], set()
    for line in header_lines:
        name, _, value = line.partition(":")
        names.add(name.strip().lower())
        if LEGAL_HEADER_NAME.fullmatch(name) and value.strip():
            custom.append((name, value.lstrip(" ")))
    built_in = []
    if "host" not in names:
        host, port = host_port(url_parts)
        default_port = 443 if url_parts.scheme == "https" else 80
        built_in.append(("Host", host if port == default_port else f"{host}:{port}"))
    if url_parts.username is not None and "authorization" not in names:
        cred = urllib.parse.unquote(url_parts.username) + ":" + urllib.parse.unquote(
            url_parts.password or "")
        built_in.append(("Authorization", "Basic " + base64.b64encode(cred.encode()).decode()))
    if "accept" not in names:
        built_in.append(("Accept", "*/*"))
    trailer = []
    if body is not None or method == "POST":
        if "content-length" not in names:
            trailer.append(("Content-Length", str(len(body or b""))))
        if "content-type" not in names:
            trailer.append(("Content-Type", "application/x-www-form-urlencoded"))
    return built_in + custom + trailer


def response_headers(message):
    """(headers dict, content_type) as pg_net builds them from
    curl_easy_nextheader(): names as sent, values trimmed, the last of
    duplicate names wins (jsonb); content_type is the first Content-Type."""
    headers, content_type = {}, None
    for name, value in message.items():
        name = name.encode("latin-1", "replace").decode("utf-8", "replace").replace("\x00", "")
        value = value.encode("latin-1", "replace").decode("utf-8", "replace")
        value = value.replace("\x00", "").strip()
        headers[name] = value
        if content_type is None and name.lower() == "content-type":
            content_type = value
    return headers, content_type


def one_exchange(url, method, body, header_lines, deadline, timing):
    """One HTTP/1.1 request/response; returns (status, message, body bytes)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Failure(E_UNSUPPORTED_PROTOCOL)
    host, port = host_port(parts)
    if not host:
        raise Failure(E_URL_MALFORMAT)
    host = host.strip("[]")
    sock = open_socket(parts.scheme, host, port, deadline, timing)
    conn = RawHTTPConnection(host, port)
    conn.sock = sock
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request_headers(header_lines, parts, method, body):
            conn.putheader(name.encode("utf-8"), value.encode("utf-8"))
        timing.pretransfer = max(timing.now(), 1e-6)
        sock.settimeout(deadline.remaining())
        try:
            conn.endheaders(body)
        except OSError:
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_SEND_ERROR) from None
        try:
            response = conn.getresponse()
            chunks = []
            while True:
                sock.settimeout(deadline.remaining())
                chunk = response.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            if deadline.fired:  # the shutdown may have cut the body short
                raise Timeout()
            if response.length:  # closed before Content-Length bytes came
                raise Failure(E_PARTIAL_FILE)
        except http.client.RemoteDisconnected:
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_GOT_NOTHING) from None
        except http.client.IncompleteRead:
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_PARTIAL_FILE) from None
        except http.client.HTTPException:
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_WEIRD_SERVER_REPLY) from None
        except (socket.timeout, OSError):
            if deadline.expired():
                raise Timeout() from None
            raise Failure(E_RECV_ERROR) from None
        return response.status, response.msg, b"".join(chunks)
    finally:
        conn.close()


def validate_headers(header_lines):
    """The rejection message of newer pg_net for a header with CR or LF
    (libcurl 7.88 would send it as is; http.client cannot)."""
    for line in header_lines:
        if "\r" in line or "\n" in line:
            name = re.split(r"[:\r\n]", line, maxsplit=1)[0]
            return f'header "{name}" contains a carriage return or line feed'
    return None


def perform(req):
    """Send one queued request; returns the values of its net._http_response row."""
    timeout_ms = req["timeout_milliseconds"]
    header_lines = [h for h in (req.get("headers") or []) if h is not None]
    header_lines.append(f"User-Agent: {USER_AGENT}")
    body = bytes.fromhex(req["body"]) if req.get("body") is not None else None
    if body is not None:
        body = body.split(b"\x00", 1)[0]  # pg_net passes the body as a C string
    if timeout_ms < 0:
        return failure(E_BAD_TIMEOUT)
    rejected = validate_headers(header_lines)
    if rejected:
        return failure(rejected)
    deadline, timing = Deadline(timeout_ms), Timing()
    try:
        return transfer(req["method"].upper(), req["url"], body, header_lines, deadline, timing)
    except Timeout:
        return timed_out(timing, timeout_ms)
    except Failure as exc:
        return failure(str(exc))
    except Exception as exc:  # a bug here must not kill the batch
        if deadline.expired():
            return timed_out(timing, timeout_ms)
        return failure(f"pgnet_worker: {type(exc).__name__}: {exc}")
    finally:
        deadline.cancel()


def transfer(method, url, body, header_lines, deadline, timing):
    """The request with libcurl's CURLOPT_FOLLOWLOCATION rules: 301/302/303
    drop the body and turn POST into GET (a CURLOPT_CUSTOMREQUEST method,
    GET or DELETE, stays), 307/308 repeat the request, and Authorization and
    Cookie are not sent once the scheme, host or port changed."""
    keep_method = method in ("GET", "DELETE")
    if "://" not in url:
        url = "http://" + url  # libcurl guesses http for a URL without scheme
    first = None
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, *host_port(parts))
        first = first or origin
        lines = header_lines
        if origin != first:
            lines = [h for h in header_lines
                     if h.partition(":")[0].strip().lower() not in ("authorization", "cookie")]
        status, message, content = one_exchange(url, method, body, lines, deadline, timing)
        location = message.get("Location")
        if status not in (301, 302, 303, 307, 308) or not location:
            headers, content_type = response_headers(message)
            return answer(status, headers, content_type, content)
        url = urllib.parse.urljoin(url, location.strip())
        if status in (301, 302, 303):
            body = None
            method = method if keep_method else "GET"
    raise Failure(E_TOO_MANY_REDIRECTS)


def timed_out(timing, timeout_ms):
    return {"status_code": None, "headers": None, "content_type": None, "content": None,
            "timed_out": True, "error_msg": timeout_message(timing, timeout_ms)}


def failure(message):
    return {"status_code": None, "headers": None, "content_type": None, "content": None,
            "timed_out": False, "error_msg": message}


def answer(status, headers, content_type, content):
    """An answer as pg_net stores it: content is the body as a C string,
    NULL when empty."""
    content = content.split(b"\x00", 1)[0]
    text = content.decode("utf-8", "replace") if content else None
    return {"status_code": status, "headers": headers, "content_type": content_type,
            "content": text, "timed_out": False, "error_msg": None}


# --- SQL ------------------------------------------------------------------------------

def sql_text(value):
    """A text literal that survives any content: convert_from(decode(hex))."""
    if value is None:
        return "null"
    return f"convert_from(decode('{value.encode('utf-8').hex()}', 'hex'), 'UTF8')"


def insert_sql(results):
    """One INSERT of the batch's responses (the columns of src/core.c)."""
    rows = []
    for req_id, r in results:
        headers = None if r["headers"] is None else json.dumps(r["headers"], ensure_ascii=False)
        rows.append("({}, {}, {}, {}, {}, {}, {})".format(
            int(req_id),
            "null" if r["status_code"] is None else int(r["status_code"]),
            sql_text(r["content"]),
            "null" if headers is None else sql_text(headers) + "::jsonb",
            sql_text(r["content_type"]),
            "true" if r["timed_out"] else "false",
            sql_text(r["error_msg"])))
    return ("insert into net._http_response"
            "(id, status_code, content, headers, content_type, timed_out, error_msg) values\n"
            + ",\n".join(rows) + ";")


def batch_sql(batch_size, ttl):
    """Expire old responses (own transaction), then BEGIN and dequeue a batch."""
    limit = (str(int(batch_size)) if batch_size is not None else
             "coalesce(nullif(current_setting('pg_net.batch_size', true), '')::int, 200)")
    interval = (sql_text(ttl) + "::interval" if ttl is not None else
                "coalesce(nullif(current_setting('pg_net.ttl', true), ''), '6 hours')::interval")
    return f"""
with rows as (
  select ctid from net._http_response
  where created < now() - {interval}
  order by created limit {limit}
), gone as (
  delete from net._http_response r using rows where r.ctid = rows.ctid returning 1
)
select 'expired ' || count(*) from gone;
begin;
with rows as (
  select id from net.http_request_queue order by id limit {limit}
)
delete from net.http_request_queue q
using rows where q.id = rows.id
returning json_build_object(
  'id', q.id, 'method', q.method, 'url', q.url,
  'timeout_milliseconds', q.timeout_milliseconds,
  'headers', array(select key || ': ' || value from jsonb_each_text(q.headers)),
  'body', encode(q.body, 'hex'))::text;"""


# --- the worker ----------------------------------------------------------------------

class Worker:
    """The loop: connect, serve batches, reconnect after errors or
    net.worker_restart(), stop on SIGTERM/SIGINT."""

    def __init__(self, args, log):
        self.args = args
        self.log = log
        self.stopping = False
        self.wake = threading.Event()
        self.session = None

    def psql_argv(self):
        a = self.args
        argv = [a.psql, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"]
        for flag, value in (("-h", a.host), ("-p", a.port), ("-U", a.user)):
            if value:
                argv += [flag, str(value)]
        argv += ["-d", a.conninfo or a.dbname or "postgres"]
        return argv

    def stop(self, signum, _frame):
        self.log.info(f"received signal {signum}, stopping")
        self.stopping = True
        self.wake.set()

    def sleep(self, seconds):
        self.wake.wait(seconds)
        self.wake.clear()

    def run(self):
        while not self.stopping:
            try:
                self.session = Session(self.psql_argv(), self.log)
                self.serve()
            except PsqlError as exc:
                if not self.stopping:
                    self.log.warning(f"database session ended: {exc}")
            except Exception as exc:  # a bug: restart, as the real worker does after an error
                self.log.warning(f"worker error, restarting: {type(exc).__name__}: {exc}")
            finally:
                if self.session is not None:
                    self.session.close()
                    self.session = None
            if not self.stopping:
                self.sleep(RESTART_DELAY)
        self.log.info("stopped")
        return 0

    def wait_for_schema(self):
        while not self.stopping:
            ready = self.session.query(
                "select to_regclass('net.http_request_queue') is not null"
                " and to_regclass('net._http_response') is not null;")
            if ready == ["t"]:
                return True
            self.log.info("waiting for the net schema (apply pg_net_standin.sql)")
            self.sleep(1.0)
        return False

    def serve(self):
        self.session.query(f"set client_min_messages = warning;\nlisten {RESTART_CHANNEL};")
        if not self.wait_for_schema():
            return
        self.log.info(f"connected as '{APP_NAME}'")
        while not self.stopping and not self.session.restart_requested:
            lines = self.session.query(batch_sql(self.args.batch_size, self.args.ttl))
            requests = [json.loads(l) for l in lines if l.startswith("{")]
            expired = next((int(l.split()[1]) for l in lines if l.startswith("expired ")), 0)
            if expired:
                self.log.info(f"deleted {expired} expired responses")
            if not requests:
                self.session.query("commit;")
                self.sleep(self.args.interval)
                continue
            if not self.send_batch(requests):
                return
            self.sleep(self.args.interval)
        if self.session.restart_requested:
            self.log.info("net.worker_restart() called: restarting")

    def send_batch(self, requests):
        """Send every request of the batch at once; record the outcomes and
        commit. Returns False when a stop forced a rollback."""
        results = {}
        threads = []
        for req in requests:
            thread = threading.Thread(target=self.run_one, args=(req, results), daemon=True)
            thread.start()
            threads.append(thread)
        stop_at = None
        while any(t.is_alive() for t in threads):
            if self.stopping:
                stop_at = stop_at or time.monotonic() + self.args.stop_grace
                if time.monotonic() >= stop_at:
                    self.log.warning(f"stopping: rolling back a batch of {len(requests)} "
                                     "requests still in flight (they stay queued)")
                    self.session.query("rollback;")
                    return False
            for t in threads:
                t.join(0.05)
        ordered = [(req["id"], results[req["id"]]) for req in requests]
        self.session.query(insert_sql(ordered) + "\ncommit;")
        return True

    def run_one(self, req, results):
        started = time.monotonic()
        if req["timeout_milliseconds"] < 0:
            self.log.warning(f"request {req['id']}: negative timeout_milliseconds; real pg_net's "
                             "worker fails the whole batch on it and retries it forever")
        try:
            outcome = perform(req)
        except Exception as exc:  # never leave a request without a response row
            outcome = failure(f"pgnet_worker: {type(exc).__name__}: {exc}")
        results[req["id"]] = outcome
        took = (time.monotonic() - started) * 1000
        what = (f"{outcome['status_code']}" if outcome["status_code"] is not None
                else f"error: {outcome['error_msg']}")
        self.log.info(f"request {req['id']} {req['method'].upper()} {req['url']} -> {what} "
                      f"({took:.0f} ms)")


def parse_args(argv):
    p = argparse.ArgumentParser(description="pg_net background worker stand-in (tests only)")
    p.add_argument("--host", help="server host or unix socket directory")
    p.add_argument("--port", type=int)
    p.add_argument("--user", help="database user (pg_net.username)")
    p.add_argument("--dbname", help="database to serve (pg_net.database_name)")
    p.add_argument("--conninfo", help="libpq conninfo or URI instead of --dbname")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between polls")
    p.add_argument("--batch-size", type=int, help="overrides pg_net.batch_size (200)")
    p.add_argument("--ttl", help="overrides pg_net.ttl ('6 hours')")
    p.add_argument("--stop-grace", type=float, default=3.0,
                   help="seconds a batch in flight may take to finish after SIGTERM")
    p.add_argument("--psql", default="psql", help="the psql program")
    p.add_argument("--quiet", action="store_true", help="log only warnings")
    p.add_argument("--log", help="append the log to this file instead of stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.log, args.quiet)
    worker = Worker(args, log)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
