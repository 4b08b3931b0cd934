#!/usr/bin/env python3
"""selftest.py - checks the pg_net stand-in (tests/pgnet) against real PostgreSQL 15.

Starts a throwaway cluster (tests/lib/harness.py), applies
pg_net_standin.sql, runs pgnet_worker.py against it, and talks to a small
HTTP server in this process (127.0.0.1, a free port). Checks, with the
values platform.md §1 gives for pg_net v0.20.5: the signatures, defaults and
tables; http_post's request on the wire (method, jsonb body text,
Content-Type, User-Agent) and its response row; nothing sent before COMMIT
and nothing after ROLLBACK; one call and status 500 recorded for a 500
(no retries); timeout and refused-connection rows; http_get params;
http_delete with a body; the validation errors; URL checks and normal
forms against libcurl.so.4 itself (ctypes); a batch sent in parallel; ttl pruning;
worker_restart(); secrets kept out of the log; a clean stop.

Run: cd /work/main && top_srcdir=/work/main python3 tests/pgnet/selftest.py
Prints TAP; exit status 0 iff every check passed.
"""

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
import harness as h  # noqa: E402
from pgnet import PgNet  # noqa: E402

VERSION = "0.20.5"

# platform.md §1.1: name -> (arguments as pg_get_function_arguments() prints them, result)
SIGNATURES = {
    "http_get": ("url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT "
                 "'{}'::jsonb, timeout_milliseconds integer DEFAULT 5000", "bigint"),
    "http_post": ("url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, "
                  "headers jsonb DEFAULT '{\"Content-Type\": \"application/json\"}'::jsonb, "
                  "timeout_milliseconds integer DEFAULT 5000", "bigint"),
    "http_delete": ("url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT "
                    "'{}'::jsonb, timeout_milliseconds integer DEFAULT 5000, "
                    "body jsonb DEFAULT NULL::jsonb", "bigint"),
    "check_worker_is_up": ("", "void"),
    "worker_restart": ("", "boolean"),
    "wake": ("", "void"),
    "wait_until_running": ("", "void"),
    "http_collect_response": ("request_id bigint, async boolean DEFAULT true",
                              "net.http_response_result"),
}

# platform.md §1.2: table -> [(column, type, not null)]
COLUMNS = {
    "http_request_queue": [
        ("id", "bigint", True), ("method", "net.http_method", True), ("url", "text", True),
        ("headers", "jsonb", False), ("body", "bytea", False),
        ("timeout_milliseconds", "integer", True)],
    "_http_response": [
        ("id", "bigint", False), ("status_code", "integer", False),
        ("content_type", "text", False), ("headers", "jsonb", False),
        ("content", "text", False), ("timed_out", "boolean", False),
        ("error_msg", "text", False), ("created", "timestamp with time zone", True)],
}

# URLs whose verdict and normal form must match libcurl's URL API (libcurl.so.4)
URLS = [
    "", "not a url", "localhost:6666", "/malformed_url", "example.com/x", "//example.com/x",
    "http", "http:", "http:/", "http://", "http:///", "http:////h/", "http:example.com",
    "http:/example.com", "http:///h/x", "HtTpS://Example.COM", "foo://x", "ws://h/",
    "ftp://x", "file:///etc/passwd", "file://h/x", "file:/x", "ht_tp://x", "1http://x",
    "http://exa mple.com", "http://h!/", "http://h%41/", "http://h%20x/", "http://-h/",
    "http://host:99999/", "http://host:0/", "http://host:abc/", "http://h:065535/",
    "http://host:/", "http://h:8080:90/", "http://[::1]:8080/x", "http://[zz]/",
    "http://[::1/", "http://[::1]x/", "http://user:pw@host/x", "http://u@/", "http://u p@h/",
    "http://u:p w@h/", "http://h/p a", "http://h/?q=1 2", "http://h/#f g",
    "http://h/x y?q 1", "http://h:99999/x y", "http://h/p%20a", "http://h/?", "http://h?#",
    "http://h/a/./b/../../c", "http://h/a/b/../../..", "http://h/a/.", "http://h/.a/..b/...",
    "http://h//a//b", "http://h/a?b/../c", "https://example.com?x=1#frag", "http://h/é",
    "http://h/p'\"<>{}|\\^`", "http://127.0.0.1:5432",
]

TIMEOUT_RE = re.compile(
    r"^Timeout of (\d+) ms reached\. Total time: (\d+\.\d{6}) ms \(DNS time: (\d+\.\d{6}) ms, "
    r"TCP/SSL handshake time: (\d+\.\d{6}) ms, HTTP Request/Response time: (\d+\.\d{6}) ms\)$")


# --- a small HTTP server that records what it receives ----------------------------

class Recorder:
    """Requests the server received: dicts of method, path, headers, body."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, item):
        with self.lock:
            self.items.append(item)

    def to(self, path_prefix):
        with self.lock:
            return [r for r in self.items if r["path"].startswith(path_prefix)]


def make_handler(recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorder.add({"method": self.command, "path": self.path,
                          "headers": list(self.headers.items()), "body": body,
                          "at": time.monotonic()})
            status, payload, ctype = 200, b'{"ok": true}', "application/json"
            route = self.path.split("?")[0].split("/")
            if route[1] == "status":
                status, payload, ctype = int(route[2]), b"boom", "text/plain"
            elif route[1] == "slow":
                time.sleep(int(route[2]) / 1000.0)
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("X-Standin-Test", "yes")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout tests)

        do_GET = do_POST = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    return Handler


def start_server(recorder):
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(recorder))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    h.on_cleanup(server.server_close)
    h.on_cleanup(server.shutdown)
    return server


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- helpers ----------------------------------------------------------------------

def sql_error(pg, sql):
    """The first ERROR line (with SQLSTATE) psql prints for sql, or None."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
         "-h", pg.dir, "-U", pg.superuser, "-d", pg.dbname, "-c", sql],
        capture_output=True, text=True)
    if out.returncode == 0:
        return None
    return next((l for l in out.stderr.splitlines() if l.startswith("ERROR:")), out.stderr)


def header(item, name):
    """First value of header name in a recorded request, or None."""
    return next((v for k, v in item["headers"] if k.lower() == name.lower()), None)


def wait_calls(recorder, prefix, n=1, timeout=10):
    h.wait_for(lambda: len(recorder.to(prefix)) >= n, timeout=timeout,
               what=f"{n} request(s) to {prefix}")
    return recorder.to(prefix)


# --- the checks -------------------------------------------------------------------

def check_surface(t, pg):
    rows = pg.psql("select p.proname, pg_get_function_arguments(p.oid), "
                   "pg_get_function_result(p.oid) from pg_proc p "
                   "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'net'")
    found = {}
    for name, args, result in rows:
        found.setdefault(name, []).append((args, result))
    for name, want in SIGNATURES.items():
        t.eq(found.get(name), [want], f"signature of net.{name}")
    for table, want in COLUMNS.items():
        got = [(n, ty, nn == "t") for n, ty, nn in pg.psql(
            "select attname, format_type(atttypid, atttypmod), attnotnull from pg_attribute "
            f"where attrelid = 'net.{table}'::regclass and attnum > 0 and not attisdropped "
            "order by attnum")]
        t.eq(got, want, f"columns of net.{table}")
        t.eq(pg.scalar(f"select relpersistence from pg_class where oid = 'net.{table}'::regclass"),
             "u", f"net.{table} is UNLOGGED")
    t.eq(pg.scalar("select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid = "
                   "'net.http_request_queue'::regclass"),
         "nextval('net.http_request_queue_id_seq'::regclass)", "queue id is a bigserial")
    t.eq(pg.psql("select indexdef from pg_indexes where schemaname = 'net'"),
         [["CREATE INDEX _http_response_created_idx ON net._http_response USING btree "
           "(created)"]], "the only index is on _http_response(created)")


def check_post(t, pg, net, rec, base):
    rid = pg.scalar(f"""select net.http_post('{base}/post', '{{"b": 2, "a": 1}}')""")
    t.ok(rid is not None and rid.isdigit() and int(rid) > 0, f"http_post returns a request id ({rid})")
    calls = wait_calls(rec, "/post")
    got = calls[0]
    t.eq(got["method"], "POST", "the request arrives as a POST")
    t.eq(got["body"], b'{"a": 1, "b": 2}', "the body is the jsonb text of the body argument")
    t.eq(header(got, "Content-Type"), "application/json", "Content-Type: application/json")
    t.eq(header(got, "User-Agent"), f"pg_net/{VERSION}", f"User-Agent: pg_net/{VERSION}")
    row = net.wait_response(rid)
    t.eq((row["status_code"], row["content"], row["content_type"], row["timed_out"],
          row["error_msg"]), (200, '{"ok": true}', "application/json", False, None),
         "the response row holds status, content and content type")
    t.eq((row["headers"] or {}).get("X-Standin-Test"), "yes", "the response headers are recorded")
    t.eq(len(rec.to("/post")), 1, "exactly one request was sent")


def check_post_headers(t, pg, net, rec, base):
    rid = pg.scalar(f"""select net.http_post('{base}/auth', '{{}}', headers :=
        '{{"Authorization": "Bearer s3cret-token-xyz", "X-Key": "v"}}')""")
    got = wait_calls(rec, "/auth")[0]
    t.eq((header(got, "Content-Type"), header(got, "X-Key"), header(got, "Authorization")),
         ("application/json", "v", "Bearer s3cret-token-xyz"),
         "given headers are sent and Content-Type is added when missing")
    net.wait_response(rid)
    log = net.log_text()
    t.ok("/auth" in log and "s3cret-token-xyz" not in log,
         "the worker logs the request but never the bearer secret", log[-1500:])


def check_commit_semantics(t, pg, net, rec, base):
    held = h.start_process(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.dir, "-U", pg.superuser,
         "-d", pg.dbname, "-c",
         f"begin; select net.http_post('{base}/held'); select pg_sleep(1.5); commit;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    t.eq(len(rec.to("/held")), 0, "nothing is sent before COMMIT")
    t.eq(net.queue(), [], "an uncommitted request is not visible in the queue")
    held.wait(timeout=20)
    committed_at = time.monotonic()
    calls = wait_calls(rec, "/held")
    t.ok(len(calls) == 1 and calls[0]["at"] >= committed_at - 0.6,
         "the request is sent once, after COMMIT")

    pg.psql(f"begin; select net.http_post('{base}/rolledback'); rollback;")
    rid = int(pg.scalar(f"select net.http_post('{base}/after-rollback')"))
    net.wait_response(rid)
    time.sleep(1.0)
    t.eq(len(rec.to("/rolledback")), 0, "nothing is sent for a rolled back request")
    t.eq(net.response(rid - 1), None, "a rolled back request gets no response row")


def check_no_retry(t, pg, net, rec, base):
    rid = pg.scalar(f"select net.http_post('{base}/status/500')")
    row = net.wait_response(rid)
    t.eq((row["status_code"], row["content"], row["timed_out"], row["error_msg"]),
         (500, "boom", False, None), "a 500 answer is recorded as status_code 500")
    time.sleep(1.0)
    t.eq(len(rec.to("/status/500")), 1, "a 500 answer gets one call only (no retries)")
    t.eq(len(net.responses(f"id = {int(rid)}")), 1, "one response row for it")


def check_timeout(t, pg, net, rec, base):
    started = time.monotonic()
    rid = pg.scalar(f"select net.http_get('{base}/slow/2500', timeout_milliseconds := 500)")
    row = net.wait_response(rid)
    took = time.monotonic() - started
    t.eq((row["status_code"], row["content"], row["content_type"], row["timed_out"]),
         (None, None, None, True), "a slow server gives timed_out = true and no status")
    m = TIMEOUT_RE.match(row["error_msg"] or "")
    t.ok(m is not None, "error_msg is pg_net's detailed timeout message", row["error_msg"])
    if m:
        total, dns, handshake, http_time = (float(x) for x in m.groups()[1:])
        t.ok(m.group(1) == "500" and 500 <= total < 1500 and dns > 0 and http_time > 0
             and abs(dns + handshake + http_time - total) < 1.0,
             "the timeout message names 500 ms and adds up to the total time", row["error_msg"])
    t.ok(took < 2.3, f"the timeout ends the request before the server answers ({took:.2f} s)")


def check_parallel(t, pg, net, rec):
    """A batch is sent at once (pg_net's curl multi handle), and its
    responses appear together, when the batch commits."""
    started = time.monotonic()
    ids = [int(x[0]) for x in pg.psql(
        f"select net.http_get('{rec.base}/slow/600?n=' || i) from generate_series(1, 5) i")]
    rows = [net.wait_response(i) for i in ids]
    took = time.monotonic() - started
    t.ok(all(r["status_code"] == 200 for r in rows) and took < 2.0,
         f"5 requests of 0.6 s each in one batch take {took:.2f} s, not 3 s")
    created = {r["created"] for r in rows}
    t.eq(len(created), 1, "a batch's responses are inserted in one transaction")


def check_refused(t, pg, net, base):
    rid = pg.scalar(f"select net.http_get('http://127.0.0.1:{closed_port()}/x')")
    row = net.wait_response(rid)
    t.eq((row["status_code"], row["timed_out"], row["error_msg"], row["headers"]),
         (None, False, "Couldn't connect to server", None),
         "a refused connection records libcurl's error and no status")


def check_get_delete(t, pg, net, rec, base):
    rid = pg.scalar(f"""select net.http_get('{base}/get?x=1#frag',
        params := '{{"q": "a b&c/é", "n": 1}}', headers := '{{"Accept": "text/plain"}}')""")
    got = wait_calls(rec, "/get")[0]
    t.eq((got["method"], got["path"], got["body"]),
         ("GET", "/get?x=1&n=1&q=a%20b%26c%2F%C3%A9", b""),
         "http_get appends url-encoded params to the query")
    t.eq((header(got, "Accept"), header(got, "User-Agent")),
         ("text/plain", f"pg_net/{VERSION}"), "http_get sends its headers and the User-Agent")
    t.eq(net.wait_response(rid)["status_code"], 200, "http_get records the answer")

    rid = pg.scalar(f"""select net.http_delete('{base}/delete', body := '{{"x": 1}}')""")
    got = wait_calls(rec, "/delete")[0]
    t.eq((got["method"], got["body"]), ("DELETE", b'{"x": 1}'), "http_delete sends its body")
    t.eq(net.wait_response(rid)["status_code"], 200, "http_delete records the answer")


def check_validation(t, pg):
    cases = [
        (f"select net.http_post('http://127.0.0.1/', headers := "
         "'{\"Content-Type\": \"text/plain\"}')",
         'ERROR:  P0001: Content-Type header must be "application/json"'),
        ("select net.http_get('localhost:1')",
         'ERROR:  XX000: invalid URL "localhost:1": Unsupported URL scheme'),
        ("select net.http_get('/malformed_url')",
         'ERROR:  XX000: invalid URL "/malformed_url": Bad scheme'),
        ("select net.http_get('http://exa mple.com/')",
         'ERROR:  XX000: invalid URL "http://exa mple.com/": Bad hostname'),
        ("select net.http_get(null)",
         'ERROR:  23502: null value in column "url" of relation "http_request_queue" '
         'violates not-null constraint'),
        ("insert into net.http_request_queue(method, url, timeout_milliseconds) "
         "values ('PUT', 'http://127.0.0.1/', 1)",
         'ERROR:  23514: value for domain net.http_method violates check constraint '
         '"http_method_check"'),
    ]
    for sql, want in cases:
        t.eq(sql_error(pg, sql), want, f"error of: {sql[:60]}")
    t.eq(pg.scalar("select net._encode_url_with_params_array('HTTP://Example.com:0080/a/./b/../c?', "
                   "array['k=v'])"), "http://Example.com:80/a/c?k=v",
         "URLs are normalised as libcurl's URL API does")


def libcurl_url(curl, url):
    """What pg_net 0.20.x makes of url: curl_url_set() and curl_url_get()."""
    handle = curl.curl_url()
    try:
        rc = curl.curl_url_set(handle, 0, url.encode("utf-8"), 0)  # CURLUPART_URL
        if rc:
            return f'ERR invalid URL "{url}": {curl.curl_url_strerror(rc).decode()}'
        out = ctypes.c_char_p()
        curl.curl_url_get(handle, 0, ctypes.byref(out), 0)
        return "OK " + out.value.decode("utf-8", "replace")
    finally:
        curl.curl_url_cleanup(handle)


def check_urls_against_libcurl(t, pg):
    try:
        curl = ctypes.CDLL("libcurl.so.4")
    except OSError:
        t.ok(True, "URL checks agree with libcurl # SKIP libcurl.so.4 not found")
        return
    curl.curl_url.restype = ctypes.c_void_p
    curl.curl_url_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    curl.curl_url_get.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_char_p), ctypes.c_uint]
    curl.curl_url_strerror.restype = ctypes.c_char_p
    curl.curl_url_cleanup.argtypes = [ctypes.c_void_p]
    literals = ", ".join("'" + u.replace("'", "''") + "'" for u in URLS)
    got = json.loads(pg.raw(
        "create function pg_temp.try_url(u text) returns text language plpgsql as $$ begin "
        "return 'OK ' || net._encode_url_with_params_array(u, '{}'); "
        "exception when others then return 'ERR ' || sqlerrm; end $$; "
        f"select json_agg(pg_temp.try_url(u) order by i) from unnest(array[{literals}]) "
        "with ordinality as x(u, i)"))
    want = [libcurl_url(curl, u) for u in URLS]
    diff = [(u, g, w) for u, g, w in zip(URLS, got, want) if g != w]
    t.ok(len(got) == len(URLS) and not diff,
         f"URL checks and normal forms agree with libcurl on {len(URLS)} URLs", diff)


def check_collect(t, pg, net, base):
    rid = int(pg.scalar(f"select net.http_get('{base}/collect')"))
    net.wait_response(rid)
    t.eq(pg.psql(f"select (r).status, (r).message, ((r).response).status_code from "
                 f"(select net._http_collect_response({rid}) r) s"),
         [["SUCCESS", "ok", "200"]], "net._http_collect_response returns the response")
    err = sql_error(pg, f"select net.http_collect_response({rid})")
    t.ok(err is not None and "query has no destination for result data" in err,
         "deprecated net.http_collect_response fails as in pg_net 0.20.5", err)


def check_worker(t, pg, net, base):
    t.ok(net.worker_is_up(), "check_worker_is_up() passes while the worker runs")
    t.eq(sql_error(pg, "set statement_timeout = '5s'; select net.wait_until_running()"), None,
         "wait_until_running() returns while the worker runs")
    pg.psql("insert into net._http_response(id, created) values (-1, now() - interval '7 hours')")
    try:
        h.wait_for(lambda: net.response(-1) is None, timeout=5, what="ttl pruning")
        pruned = True
    except TimeoutError:
        pruned = False
    t.ok(pruned, "responses older than pg_net.ttl (6 hours) are deleted")
    t.eq(pg.scalar("select net.worker_restart()"), "t", "worker_restart() returns true")
    try:
        h.wait_for(lambda: "restarting" in net.log_text() and net.worker_is_up(), timeout=10,
                   what="the worker to restart")
        restarted = True
    except TimeoutError:
        restarted = False
    rid = pg.scalar(f"select net.http_get('{base}/after-restart')")
    t.ok(restarted and net.wait_response(rid)["status_code"] == 200,
         "after worker_restart() the worker reconnects and serves requests")


def check_stop(t, pg, net):
    t.eq(net.queue(), [], "the queue is empty: every request was taken")
    t.eq(net.stop(), 0, "SIGTERM stops the worker with status 0")
    try:
        h.wait_for(lambda: not net.worker_is_up(), timeout=5, what="the worker session to end")
        gone = True
    except TimeoutError:
        gone = False
    t.ok(gone, "its database session is gone (check_worker_is_up() raises)")


def run(t, name, fn, *args):
    try:
        fn(t, *args)
    except Exception:
        t.ok(False, f"{name} ran to the end", traceback.format_exc())


def main():
    t = h.Tap()
    pg = h.Postgres()
    net = PgNet(pg, verbose=True)
    rec = Recorder()
    server = start_server(rec)
    base = rec.base = f"http://127.0.0.1:{server.server_address[1]}"
    h.note(f"HTTP server at {base}; worker log {net.log_path}")

    run(t, "surface", check_surface, pg)
    run(t, "http_post", check_post, pg, net, rec, base)
    run(t, "http_post headers", check_post_headers, pg, net, rec, base)
    run(t, "commit/rollback", check_commit_semantics, pg, net, rec, base)
    run(t, "no retry", check_no_retry, pg, net, rec, base)
    run(t, "timeout", check_timeout, pg, net, rec, base)
    run(t, "parallel", check_parallel, pg, net, rec)
    run(t, "refused", check_refused, pg, net, base)
    run(t, "get/delete", check_get_delete, pg, net, rec, base)
    run(t, "validation", check_validation, pg)
    run(t, "libcurl URLs", check_urls_against_libcurl, pg)
    run(t, "collect", check_collect, pg, net, base)
    run(t, "worker", check_worker, pg, net, base)
    run(t, "stop", check_stop, pg, net)
    t.done()


if __name__ == "__main__":
    main()
