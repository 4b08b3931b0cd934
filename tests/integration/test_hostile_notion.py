#!/usr/bin/env python3
"""test_hostile_notion.py - the real FastCGI responder (and the CLI) against
a Notion that misbehaves on purpose (tests/hostile/hostile_notion.py): bad
JSON, endless and oversized bodies, duplicate members, invalid UTF-8,
redirects, wrong types, absurd Retry-After, endless or circular property
pagination, huge and broken titles, deep nesting.

For every case: the exact HTTP status and error code of the contract, a body
that is valid UTF-8 JSON, the key words of the message, nothing wrong stored
(rows; the run row ends 'error' with a message, never 'running'), the
responder still alive, its peak RSS under a bound (printed), no request to
the redirect target and the token sent nowhere but the configured host, and
the well-behaved control database still syncing. Plus FastCGI
CONTENT_LENGTH " -1" and "+5".

Runs with the normal build and with an ASan/UBSan build
(top_builddir=/tmp/nsync-asan): ASAN_OPTIONS/UBSAN_OPTIONS write their
reports to a private folder, which must stay empty.

The responder is driven without nginx, by a small raw FastCGI client.
Prints TAP; every process is stopped by the harness's cleanups.

The hostile Notion, PostgreSQL and the responder (whose memory is measured
across cases) are shared; every scenario syncs as a user of its own (its own
user id in user_settings, the hostile Notion's one token), so that its rows
and run rows are its own (scenario.run; all by default, or some by name:
test_hostile_notion.py endless_stream cli_title_2mib). A responder found dead
at a scenario's start is restarted (and said so).
  healthz, control       the raw client; the well-behaved database syncs;
  <case>                 each case of the hostile Notion through the responder
                         (malformed_json ... title_2mib, non_utf8_text,
                         title_invalid_utf8, items_endless, items_repeat,
                         nested_200, big_valid), each followed by the control
                         database still syncing;
  content_length         FastCGI CONTENT_LENGTH " -1", "+5", "-0";
  cli_<case>             the CLI's sync of a case;
  sanitizers             the responder alive at the end; no sanitizer report
                         (run last: it stops the responder).
The summary table is printed at the end.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import harness as h
import scenario

HOSTILE = os.path.join(h.SRCDIR, "tests", "hostile", "hostile_notion.py")
SYNC = "/api/notion/sync-to-postgres"
SECRET = "test-bearer-secret-hostile-notion"
TOKEN = "secret_test_token_hostile_notion"
USER = "0d000000-0000-4000-8000-000000000001"   # the running scenario's user
TABLES = ["notion_characters_sync", "notion_worlds_sync", "notion_stories_sync",
          "notion_chat_sessions_sync", "notion_other_sync"]
MIB = 1 << 20
CASE_TIMEOUT = float(os.environ.get("HOSTILE_CASE_TIMEOUT", "25"))

t = h.Tap()
work = tempfile.mkdtemp(prefix="nsync-hostile-notion-")
h.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
san_dir = os.path.join(work, "sanitizer")
os.makedirs(san_dir)
os.chmod(work, 0o755)
os.chmod(san_dir, 0o777)

# --- the hostile Notion -------------------------------------------------------
hostile = h.PortFileServer(HOSTILE, ["--token", TOKEN], name="hostile-notion")
NOTION_URL = hostile.url   # its first port (the second serves its redirects)


def control(method, path):
    st, _, js = h.http(method, NOTION_URL + "/_hostile" + path, timeout=30)
    if st != 200:
        raise RuntimeError(f"hostile control {method} {path}: {st} {js!r}")
    return js


CASES = control("GET", "/cases")

# --- PostgreSQL and the responder ---------------------------------------------
pg = h.Postgres()
h.migrate(pg)


def user_of(n):
    """Scenario n's own user (holding the hostile Notion's one token)."""
    return f"0d000000-0000-4000-8000-{n:012d}"


def new_user(n):
    """Make scenario n's user the running one (inserted with the others, below)."""
    global USER
    USER = user_of(n)


env = h.base_env(pg, hostile, NOTION_SYNC_SECRET=SECRET)
# A wait cap of 60 s (the default is 600), so that Retry-After: 120 is beyond it.
env["NOTION_MAX_RETRY_WAIT"] = "60"
env["ASAN_OPTIONS"] = (f"log_path={san_dir}/asan:detect_leaks=1:halt_on_error=1:"
                       "abort_on_error=0:quarantine_size_mb=32:allocator_may_return_null=1")
env["UBSAN_OPTIONS"] = f"log_path={san_dir}/ubsan:print_stacktrace=1:halt_on_error=1"
env["LSAN_OPTIONS"] = f"log_path={san_dir}/lsan"

responder = h.Responder(env)


def responder_pid():
    return responder.procs[0].pid


def maps_of(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


h.wait_for(lambda: "notion-sync-fcgi" in os.readlink(f"/proc/{responder_pid()}/exe"),
           what="the responder to exec")
ASAN = "libasan" in maps_of(responder_pid())
RSS_BOUND = (400 if ASAN else 256) * MIB
h.note(f"responder pid {responder_pid()} exe {os.readlink(f'/proc/{responder_pid()}/exe')}; "
       f"ASan build: {ASAN}; RSS bound {RSS_BOUND // MIB} MiB")


# --- a raw FastCGI client -------------------------------------------------------

def fcgi_request(params, stdin=b"", timeout=CASE_TIMEOUT):
    """One FastCGI request to the responder (h.fastcgi); returns (status,
    headers dict (lower-case names), body bytes) or (None, {}, b"") on timeout."""
    try:
        return h.fastcgi(responder.port, params, stdin, timeout)
    except TimeoutError:
        return None, {}, b""


def fcgi_params(method="POST", path=SYNC, body=b"", content_length=None, auth=True):
    params = h.cgi_params(method, path, SERVER_NAME="localhost", SERVER_PORT="80",
                          GATEWAY_INTERFACE="CGI/1.1", CONTENT_TYPE="application/json",
                          CONTENT_LENGTH=str(len(body)) if content_length is None
                          else content_length)
    if auth:
        params["HTTP_AUTHORIZATION"] = "Bearer " + SECRET
    return params


# --- measuring the responder ----------------------------------------------------

def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pid):
    """Reset VmHWM to the current RSS (clear_refs 5); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Peak RSS of a process during a block: VmHWM (reset before) and VmRSS
    sampled every 5 ms, whichever is higher."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()
        self.hwm_ok = reset_hwm(pid)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS") * 1024)
            self.stop.wait(0.005)

    def finish(self):
        self.stop.set()
        self.thread.join()
        if self.hwm_ok:
            self.peak = max(self.peak, status_kib(self.pid, "VmHWM") * 1024)
        return self.peak


class ExecRssSampler(threading.Thread):
    """Peak RSS of a child once it runs `exe_part` (the CLI binary, after the
    libtool wrapper exec()ed it): VmHWM/VmRSS sampled every 5 ms until it
    exits. (wait4's ru_maxrss would report the forking test process's RSS.)"""

    def __init__(self, pid, exe_part):
        super().__init__(daemon=True)
        self.pid, self.exe_part, self.peak = pid, exe_part, 0
        self.stop = threading.Event()
        self.start()

    def run(self):
        while not self.stop.is_set():
            try:
                exe = os.readlink(f"/proc/{self.pid}/exe")
            except OSError:
                exe = ""
            if self.exe_part in exe:
                self.peak = max(self.peak, status_kib(self.pid, "VmHWM") * 1024,
                                status_kib(self.pid, "VmRSS") * 1024)
            self.stop.wait(0.005)


def valid_utf8(raw):
    try:
        raw.decode("utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


def parse_json_strict(raw):
    """(parsed, None) or (None, why) for bytes that must be UTF-8 JSON."""
    try:
        return json.loads(raw.decode("utf-8", errors="strict")), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc}; bytes {raw[max(0, exc.start - 40):exc.end + 40]!r}"
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc}; body {raw[:300]!r}"


# --- what PostgreSQL holds -------------------------------------------------------

def rows_of(database_id):
    """{page_id: (table, title text)} of every sync table's rows of one database."""
    out = {}
    for table in TABLES:
        col = "name" if table in ("notion_characters_sync", "notion_worlds_sync") else "title"
        for r in h.json_rows(pg, f"select notion_page_id::text as p, {col} as t from {table} "
                                 f"where notion_database_id = '{database_id}' "
                                 f"and user_id = '{USER}'"):
            out[r["p"]] = (table, r["t"])
    return out


def runs_after(run_floor, database_id):
    return h.json_rows(pg, "select id, status, error_message, finished_at, page_errors "
                           f"from notion_sync_runs where id > {run_floor} "
                           f"and database_id = '{database_id}' and user_id = '{USER}' "
                           "order by id")


def max_run_id():
    return int(pg.scalar("select coalesce(max(id), 0) from notion_sync_runs"))


# --- running one case through the responder --------------------------------------

REPORT = []          # (case, expected, got, peak MiB, seconds) for the summary
log_offset = [0]


def respawn_after_timeout(name):
    h.note(f"{name}: no answer within {CASE_TIMEOUT:.0f}s; restarting the responder")
    h.respawn(responder, env)
    h.wait_for(lambda: "notion-sync-fcgi" in os.readlink(f"/proc/{responder_pid()}/exe"),
               what="the responder to exec again")


def new_log_bytes():
    responder.log.flush()
    with open(responder.log_path, "rb") as f:
        f.seek(log_offset[0])
        data = f.read()
    log_offset[0] += len(data)
    return data


def sync_case(name, full=False):
    """POST the sync of case `name`; returns a dict of what happened."""
    case = CASES[name]
    control("DELETE", "/requests")
    floor = max_run_id()
    new_log_bytes()
    body = json.dumps({"user_id": USER, "database_id": case["database_id"],
                       **({"full": True} if full else {})}).encode()
    pid = responder_pid()
    sampler = RssSampler(pid)
    start = time.monotonic()
    status, headers, raw = fcgi_request(fcgi_params(body=body), body)
    seconds = time.monotonic() - start
    peak = sampler.finish()
    timed_out = status is None
    alive = responder.alive() and h.pid_running(pid)
    log = new_log_bytes()
    if timed_out:
        respawn_after_timeout(name)
    js, why = (None, "no answer (timeout)") if timed_out else parse_json_strict(raw)
    requests = control("GET", "/requests")["requests"]
    return {"name": name, "case": case, "status": status, "raw": raw, "js": js, "why": why,
            "seconds": seconds, "peak": peak, "alive": alive, "timed_out": timed_out,
            "runs": runs_after(floor, case["database_id"]), "rows": rows_of(case["database_id"]),
            "requests": requests, "log": log, "idle_rss": status_kib(responder_pid(), "VmRSS")}


def summary_of(r):
    js = r["js"] if isinstance(r["js"], dict) else {}
    if r["timed_out"]:
        return "TIMEOUT (no answer)"
    if js.get("success") is True:
        return (f"{r['status']} success page_errors={js.get('page_errors')} "
                f"warning={str(js.get('warning', ''))[:90]!r}")
    err = js.get("error") if isinstance(js.get("error"), dict) else {}
    return f"{r['status']} {err.get('code')} {str(err.get('message', r['why']))[:120]!r}"


def common_checks(r, expected):
    """Checks every case shares; prints the measurement line."""
    name = r["name"]
    peak_mib = r["peak"] / MIB
    h.note(f"{name}: {r['seconds']:.2f}s peak RSS {peak_mib:.1f} MiB, idle after "
           f"{r['idle_rss'] / 1024:.1f} MiB; answer: {summary_of(r)}")
    REPORT.append((name, expected, summary_of(r), peak_mib, r["seconds"]))
    if r["timed_out"]:
        # One failure, not a cascade: the restart left the run row 'running'
        # and there is no answer to look at.
        t.ok(False, f"{name}: answered within {CASE_TIMEOUT:.0f}s",
             f"no answer; the responder was restarted (expected {expected})")
        return False
    t.ok(r["js"] is not None, f"{name}: the answer body is valid UTF-8 JSON", r["why"])
    t.ok(r["alive"], f"{name}: the responder is still alive after the case",
         r["log"][-3000:].decode("utf-8", "replace"))
    t.ok(r["peak"] < RSS_BOUND,
         f"{name}: responder peak RSS {peak_mib:.0f} MiB < {RSS_BOUND // MIB} MiB")
    t.ok(valid_utf8(r["log"]), f"{name}: every responder log line is valid UTF-8",
         r["log"][-800:])
    redirected = [q for q in r["requests"] if q["listener"] != "main"]
    t.ok(not redirected, f"{name}: no request reached the redirect target", redirected)
    t.ok(all(q["auth"] == "expected" for q in r["requests"]),
         f"{name}: the token went only to the configured Notion host, as sent",
         [q for q in r["requests"] if q["auth"] != "expected"])
    t.ok(all(run["status"] != "running" for run in r["runs"]),
         f"{name}: no run row left 'running'", r["runs"])
    return True


def check_error(r, status, code, words, max_query_requests=None, max_seconds=None):
    name = r["name"]
    expected = f"{status} {code} {words}"
    if not common_checks(r, expected):
        return ""
    js = r["js"] if isinstance(r["js"], dict) else {}
    err = js.get("error") if isinstance(js.get("error"), dict) else {}
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    t.ok(r["status"] == status and js.get("success") is False and err.get("code") == code,
         f"{name}: answers {status} {code}", f"got {summary_of(r)}")
    missing = [w for w in words if w.lower() not in message.lower()]
    t.ok(message and not missing, f"{name}: the message names {words}",
         f"missing {missing} in {message!r}")
    t.eq(len(r["rows"]), 0, f"{name}: no row of this database stored")
    runs = r["runs"]
    run = runs[-1] if runs else {}
    t.ok(len(runs) == 1 and run.get("status") == "error" and run.get("finished_at")
         and (run.get("error_message") or "").strip(),
         f"{name}: its run row ended 'error' with a message", runs)
    if max_query_requests is not None:
        n = sum(1 for q in r["requests"] if q["path"].endswith("/query") or
                q["path"].startswith("/v1/databases/"))
        t.ok(n <= max_query_requests,
             f"{name}: at most {max_query_requests} Notion requests (not retried)",
             f"{n} requests: {[(q['method'], q['path'], q['status']) for q in r['requests']][:8]}")
    if max_seconds is not None:
        t.ok(r["seconds"] < max_seconds, f"{name}: fails at once (< {max_seconds:.0f}s)",
             f"{r['seconds']:.1f}s")
    return message


def check_success(r, expected_rows, page_errors=0):
    name = r["name"]
    if not common_checks(r, f"200 success page_errors={page_errors} rows={len(expected_rows)}"):
        return {}
    js = r["js"] if isinstance(r["js"], dict) else {}
    t.ok(r["status"] == 200 and js.get("success") is True, f"{name}: answers 200 success",
         f"got {summary_of(r)}")
    t.eq(js.get("page_errors"), page_errors, f"{name}: page_errors {page_errors}")
    if page_errors:
        t.ok(isinstance(js.get("warning"), str) and js["warning"],
             f"{name}: the answer carries a warning", js)
    t.eq(sorted(r["rows"]), sorted(expected_rows), f"{name}: exactly the expected rows stored")
    runs = r["runs"]
    t.ok(len(runs) == 1 and runs[0]["status"] == "success" and
         runs[0]["page_errors"] == page_errors,
         f"{name}: its run row ended 'success' with page_errors {page_errors}", runs)
    return js


def control_still_syncs(after):
    r = sync_case("control")
    js = r["js"] if isinstance(r["js"], dict) else {}
    ok = (r["status"] == 200 and js.get("success") is True and js.get("page_errors") == 0 and
          sorted(r["rows"]) == sorted(CASES["control"]["page_ids"]) and r["alive"])
    t.ok(ok, f"after {after}: the control database still syncs (200, 3 rows)",
         f"{summary_of(r)} rows={len(r['rows'])}")
    return status_kib(responder_pid(), "VmRSS")



def healthz():
    st, _, raw = fcgi_request(fcgi_params("GET", "/healthz", auth=False))
    t.eq(st, 200, "GET /healthz through the raw FastCGI client -> 200")


def control_case():
    r = sync_case("control")
    check_success(r, CASES["control"]["page_ids"])


ERROR_CASES = [
    # name, status, code, words, max Notion requests, max seconds
    ("malformed_json", 502, "notion_protocol_error", ["JSON"], None, None),
    ("truncated_json", 502, "notion_protocol_error", ["JSON"], None, None),
    ("endless_stream", 502, "notion_protocol_error", ["larger than 64 MiB"], 2, None),
    ("oversized_valid", 502, "notion_protocol_error", ["larger than 64 MiB"], 2, None),
    ("dup_results", 502, "notion_protocol_error", ["results", "twice"], None, None),
    ("dup_properties", 502, "notion_protocol_error", ["properties", "twice"], None, None),
    ("error_invalid_utf8", 502, "notion_error",
     ["validation_error", "body failed validation: ", " is bad"], None, None),
    ("error_long_multibyte", 502, "notion_error", ["validation_error"], None, None),
    ("error_emoji_0", 502, "notion_error", ["validation_error"], None, None),
    ("error_emoji_1", 502, "notion_error", ["validation_error"], None, None),
    ("error_emoji_2", 502, "notion_error", ["validation_error"], None, None),
    ("error_emoji_3", 502, "notion_error", ["validation_error"], None, None),
    ("redirect_301", 502, "notion_error", ["HTTP 301"], 1, None),
    ("redirect_302", 502, "notion_error", ["HTTP 302"], 1, None),
    ("redirect_307", 502, "notion_error", ["HTTP 307"], 2, None),
    ("redirect_308", 502, "notion_error", ["HTTP 308"], 2, None),
    ("has_more_yes", 502, "notion_protocol_error", ["has_more"], None, None),
    ("results_object", 502, "notion_protocol_error", ["results"], None, None),
    ("results_101", 502, "notion_protocol_error", ["more than the 100"], None, None),
    ("retry_after_huge", 502, "notion_protocol_error", ["Retry-After"], 2, 10),
    ("retry_after_3600", 502, "notion_error", ["Retry-After"], 2, 10),
    ("retry_after_120", 502, "notion_error", ["Retry-After"], 2, 10),
    ("title_2mib", 502, "notion_protocol_error", ["title"], 1, None),
]


def error_case(name, status, code, words, max_req, max_s):
    def run():
        idle_before = status_kib(responder_pid(), "VmRSS")
        r = sync_case(name)
        message = check_error(r, status, code, words, max_req, max_s)
        if name == "error_long_multibyte" or name.startswith("error_emoji_"):
            t.ok("\ufffd" not in message and any(c in message for c in "é€😀"),
                 f"{name}: Notion's message is quoted and cut on a character boundary",
                 repr(message[-200:]))
        idle_after = control_still_syncs(name)
        if name in ("endless_stream", "oversized_valid"):
            h.note(f"{name}: idle RSS before {idle_before / 1024:.1f} MiB, right after "
                   f"{r['idle_rss'] / 1024:.1f} MiB, after the next sync {idle_after / 1024:.1f} MiB")
            if not ASAN:   # ASan's allocator and quarantine keep freed memory resident
                t.ok(idle_after - idle_before < 16 * 1024,
                     f"{name}: the 64 MiB answer buffer is not kept (idle RSS after the next "
                     f"sync grew < 16 MiB)", f"{(idle_after - idle_before) / 1024:.1f} MiB")
    return name, run


# Invalid UTF-8 in page text: cleaned, stored, the sync succeeds.
def non_utf8_text():
    r = sync_case("non_utf8_text")
    check_success(r, CASES["non_utf8_text"]["page_ids"])
    bad = r["rows"].get(CASES["non_utf8_text"]["hostile_page_id"], (None, ""))[1] or ""
    t.ok(bad.startswith("bad ") and bad.endswith(" title") and "\ufffd" in bad and
         all(ord(c) < 128 or c == "\ufffd" for c in bad),
         "non_utf8_text: the invalid bytes of the title are stored as U+FFFD", repr(bad))
    desc = pg.scalar("select description from notion_characters_sync where notion_page_id = "
                     f"'{CASES['non_utf8_text']['hostile_page_id']}' and user_id = '{USER}'") or ""
    t.ok(desc.startswith("text ") and desc.endswith(" end") and "\ufffd" in desc,
         "non_utf8_text: ... and of its description", repr(desc))
    control_still_syncs("non_utf8_text")


# A database title with invalid UTF-8: cleaned, and the sync succeeds.
def title_invalid_utf8():
    r = sync_case("title_invalid_utf8")
    js = check_success(r, CASES["title_invalid_utf8"]["page_ids"])
    title = pg.scalar("select notion_title from notion_databases where database_id = "
                      f"'{CASES['title_invalid_utf8']['database_id']}' and user_id = '{USER}'") or ""
    t.ok(title.startswith("Bad ") and title.endswith(" title") and "\ufffd" in title,
         "title_invalid_utf8: the stored database title holds U+FFFD for the bad bytes",
         repr(title))
    control_still_syncs("title_invalid_utf8")


# Property-item pagination that never ends / repeats its cursor: a page error.
def items_case(name, max_items):
    def run():
        case = CASES[name]
        r = sync_case(name)
        good = [p for p in case["page_ids"] if p != case["hostile_page_id"]]
        js = check_success(r, good, page_errors=1)
        n_items = sum(1 for q in r["requests"] if "/properties/" in q["path"])
        t.ok(n_items <= max_items, f"{name}: at most {max_items} property-item requests",
             f"{n_items} requests")
        t.ok(case["hostile_page_id"] in str(js.get("warning", "")),
             f"{name}: the warning names the page", js.get("warning"))
        if name == "items_repeat":
            t.ok("cursor" in str(js.get("warning", "")).lower(),
                 f"{name}: the warning says the cursor repeated", js.get("warning"))
        h.note(f"{name}: {n_items} property-item requests")
        control_still_syncs(name)

    return name, run


# A page nested 200 levels deep among 3 normal pages: a page error for it only.
def nested_200():
    case = CASES["nested_200"]
    r = sync_case("nested_200")
    js = check_success(r, case["page_ids"][:3], page_errors=1)
    t.ok(case["hostile_page_id"] in str(js.get("warning", "")),
         "nested_200: the warning names the deep page", js.get("warning"))
    control_still_syncs("nested_200")


# A valid ~20 MiB answer (under the limit) syncs; syncing it again and again
# does not make the responder grow (idle RSS compared after the next small
# sync, as an answer buffer over 4 MiB is freed at the next Notion call).
def big_valid():
    r = sync_case("big_valid")
    check_success(r, CASES["big_valid"]["page_ids"])
    idle = [r["idle_rss"], control_still_syncs("big_valid")]
    for _ in range(3):
        r = sync_case("big_valid", full=True)
        js = r["js"] if isinstance(r["js"], dict) else {}
        t.ok(r["status"] == 200 and js.get("success") is True and js.get("unchanged") == 100,
             "big_valid again: 200 success, 100 unchanged", summary_of(r))
        idle.append(control_still_syncs("big_valid again"))
    h.note("big_valid: idle RSS after each big sync + control sync: " +
           ", ".join(f"{k / 1024:.1f}" for k in idle[1::1]) + " MiB")
    if not ASAN:
        t.ok(idle[-1] - idle[1] < 8 * 1024,
             "big_valid: three more ~20 MiB answers leave the idle RSS where the first left it "
             "(< 8 MiB growth)", f"{(idle[-1] - idle[1]) / 1024:.1f} MiB")


# --- FastCGI: CONTENT_LENGTH that is not a plain decimal number -----------------
def content_length():
    for cl, body in ((" -1", b""), ("+5", b"xxxxx"), ("-0", b"")):
        floor = max_run_id()
        st, _, raw = fcgi_request(fcgi_params(body=body, content_length=cl), body)
        js, why = parse_json_strict(raw) if st is not None else (None, "timeout")
        err = (js or {}).get("error") or {}
        t.ok(st == 400 and err.get("code") == "invalid_request" and
             "content-length" in str(err.get("message", "")).lower(),
             f"FastCGI CONTENT_LENGTH {cl!r} -> 400 invalid_request naming Content-Length",
             f"{st} {js or why!r}")
        t.eq(max_run_id(), floor, f"CONTENT_LENGTH {cl!r}: no sync run started")
        t.ok(responder.alive(), f"CONTENT_LENGTH {cl!r}: the responder is still alive")
        REPORT.append((f"fcgi CONTENT_LENGTH {cl!r}", "400 invalid_request",
                       f"{st} {err.get('code')} {str(err.get('message'))[:80]!r}", 0, 0))


# --- the CLI --------------------------------------------------------------------

def run_cli(name, extra=()):
    """The CLI's sync of a case: (exit code, stdout bytes, stderr bytes, peak RSS bytes)."""
    case = CASES[name]
    control("DELETE", "/requests")
    argv = [h.CLI, "sync", "--user", USER, "--database", case["database_id"]] + list(extra)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    h.on_cleanup(lambda: proc.poll() is None and proc.kill())
    out, err = [], []
    readers = [threading.Thread(target=lambda: out.append(proc.stdout.read())),
               threading.Thread(target=lambda: err.append(proc.stderr.read()))]
    for th in readers:
        th.start()
    sampler = ExecRssSampler(proc.pid, "/.libs/")
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    sampler.stop.set()
    sampler.join()
    for th in readers:
        th.join()
    return proc.returncode, out[0], err[0], sampler.peak


CLI_CASES = [
    # name, expect success?, code, words
    ("control", True, None, []),
    ("error_long_multibyte", False, "notion_error", ["validation_error"]),
    ("error_emoji_1", False, "notion_error", ["validation_error"]),
    ("error_emoji_2", False, "notion_error", ["validation_error"]),
    ("error_invalid_utf8", False, "notion_error", ["validation_error"]),
    ("endless_stream", False, "notion_protocol_error", ["larger than 64 MiB"]),
    ("title_2mib", False, "notion_protocol_error", ["title"]),
    ("dup_results", False, "notion_protocol_error", ["results", "twice"]),
    ("nested_200", True, None, []),
    ("items_repeat", True, None, []),
]


def cli_case(name, success, code, words):
    def run():
        floor = max_run_id()
        rc, out, err, maxrss = run_cli(name)
        js, why = parse_json_strict(out)
        h.note(f"CLI {name}: exit {rc}, peak RSS {maxrss / MIB:.1f} MiB, stdout "
               f"{out[:200].decode('utf-8', 'replace')!r}")
        t.ok(js is not None, f"CLI {name}: stdout is valid UTF-8 JSON", why)
        t.ok(valid_utf8(err), f"CLI {name}: stderr (the log) is valid UTF-8", err[-600:])
        t.ok(0 < maxrss < RSS_BOUND, f"CLI {name}: peak RSS {maxrss / MIB:.0f} MiB < "
             f"{RSS_BOUND // MIB} MiB")
        runs = runs_after(floor, CASES[name]["database_id"])
        js = js if isinstance(js, dict) else {}
        if success:
            t.ok(rc == 0 and js.get("success") is True, f"CLI {name}: exit 0, success",
                 f"exit {rc}: {out[-500:]!r} {err[-500:]!r}")
            t.ok(runs and runs[-1]["status"] == "success", f"CLI {name}: run row 'success'", runs)
            got = f"exit {rc} success={js.get('success')} page_errors={js.get('page_errors')}"
        else:
            e = js.get("error") if isinstance(js.get("error"), dict) else {}
            msg = str(e.get("message", ""))
            t.ok(rc != 0 and js.get("success") is False and e.get("code") == code,
                 f"CLI {name}: exit non-zero with {code}", f"exit {rc}: {out[-500:]!r}")
            t.ok(all(w.lower() in msg.lower() for w in words), f"CLI {name}: message names {words}",
                 msg)
            t.ok(len(runs) == 1 and runs[0]["status"] == "error" and
                 (runs[0]["error_message"] or "").strip(),
                 f"CLI {name}: run row ended 'error' with a message", runs)
            got = f"exit {rc} {e.get('code')} {msg[:100]!r}"
        REPORT.append((f"CLI {name}", "success" if success else f"exit!=0 {code} {words}", got,
                       maxrss / MIB, 0))
        t.ok(not [q for q in control("GET", "/requests")["requests"] if q["listener"] != "main" or
                  q["auth"] != "expected"],
             f"CLI {name}: the token went only to the configured host")
    return "cli_" + name, run


# --- sanitizers -----------------------------------------------------------------
def sanitizers():
    t.ok(responder.alive(), "the responder is alive at the end")
    h.stop_responder(responder)
    time.sleep(0.2)
    reports = []
    for fn in sorted(os.listdir(san_dir)):
        p = os.path.join(san_dir, fn)
        if os.path.getsize(p):
            reports.append((fn, open(p, errors="replace").read()))
    for fn, text in reports:
        h.note(f"--- {fn} ---")
        h.note(text[:6000])
    t.ok(not reports, f"no AddressSanitizer/UBSan/LSan report (ASan build: {ASAN})",
         "; ".join(fn for fn, _ in reports))


def summary():
    h.note("summary: case | expected | got | peak RSS MiB | seconds")
    for name, expected, got, peak, secs in REPORT:
        h.note(f"{name} | {expected} | {got} | {peak:.0f} | {secs:.1f}")


def own_user(n, name_fn):
    name, fn = name_fn

    def run():
        new_user(n)
        if not responder.alive():
            h.note(f"{name}: the responder is not running; restarting it")
            h.respawn(responder, env)
            h.wait_for(lambda: "notion-sync-fcgi" in os.readlink(f"/proc/{responder_pid()}/exe"),
                       what="the responder to exec again")
        fn()
    return name, run


SCENARIOS = ([("healthz", healthz), ("control", control_case)]
             + [error_case(*c) for c in ERROR_CASES]
             + [("non_utf8_text", non_utf8_text), ("title_invalid_utf8", title_invalid_utf8),
                items_case("items_endless", 101), items_case("items_repeat", 3),
                ("nested_200", nested_200), ("big_valid", big_valid),
                ("content_length", content_length)]
             + [cli_case(*c) for c in CLI_CASES])
# Every scenario's user at once (one statement, not one per scenario).
pg.psql("insert into user_settings (user_id, notion_token) values " + ", ".join(
    f"('{user_of(i + 1)}', '{TOKEN}')" for i in range(len(SCENARIOS))))
scenario.run(t, [own_user(i + 1, s) for i, s in enumerate(SCENARIOS)]
             + [("sanitizers", sanitizers)], after=summary)
