"""harness.py - the real parts the integration tests run against.

Starts, on this machine only, and always stops again (also on failure or a
signal):
  * a private PostgreSQL 15 cluster in a temporary folder: initdb as the
    `postgres` user when we are root (PostgreSQL refuses root), fsync off,
    no TCP (a unix socket in the folder), optionally pg_cron and the real
    pg_net (cli/build-pg-net.sh installs it) preloaded;
  * the Notion API emulator (tests/emulator) on a loopback port;
  * the FastCGI responder under spawn-fcgi, and nginx in front of it;
and offers a TAP reporter for automake's tap-driver.

Standard library only.
"""

import atexit
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("top_builddir") or SRCDIR
PG_BIN = "/usr/lib/postgresql/15/bin"

CLI = os.path.join(BUILDDIR, "cli", "notion-sync")
FCGI = os.path.join(BUILDDIR, "fcgi", "notion-sync-fcgi")
SQL_DIR = os.path.join(SRCDIR, "sql")
EMULATOR = os.path.join(SRCDIR, "tests", "emulator", "notion_emulator.py")

_cleanups = []


def _run_cleanups(*_):
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as exc:  # keep stopping the rest
            print(f"# cleanup failed: {exc}", file=sys.stderr)


def _on_signal(signum, _frame):
    _run_cleanups()
    sys.exit(128 + signum)


atexit.register(_run_cleanups)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def on_cleanup(fn):
    """Run fn at exit (last registered runs first)."""
    _cleanups.append(fn)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def _stop_process(proc, grace=5.0):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_process(argv, env=None, stdout=None, stderr=None, **kw):
    """Start argv in its own process group, stopped at exit."""
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr,
                            start_new_session=True, **kw)
    on_cleanup(lambda: _stop_process(proc))
    return proc


# --- TAP -------------------------------------------------------------------

class Tap:
    """Minimal TAP producer: ok()/eq() print one line each; done() prints the
    plan and exits 1 when anything failed."""

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
        _run_cleanups()
        sys.exit(1 if self.failed else 0)


def note(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


# --- PostgreSQL ----------------------------------------------------------

class Postgres:
    """A throwaway PostgreSQL 15 cluster. Use .conninfo or .env()."""

    def __init__(self, cron=False, dbname="notion_sync", extra_conf=(), pg_net=False):
        """cron: preload pg_cron for dbname. pg_net: preload the real pg_net
        with pg_net.database_name = dbname (its background worker serves that
        database once `create extension pg_net` ran there: see PgNet; other
        pg_net.* settings through extra_conf)."""
        self.dir = tempfile.mkdtemp(prefix="nsync-pg-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.data = os.path.join(self.dir, "data")
        self.dbname = dbname
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.superuser = "postgres"
        else:
            self.superuser = pwd.getpwuid(os.geteuid()).pw_name
        os.chmod(self.dir, 0o755)
        self._pg(["initdb", "-A", "trust", "--no-sync", "-E", "UTF8",
                  "--locale=C", "-U", self.superuser, "-D", self.data])
        conf = [
            "fsync = off", "synchronous_commit = off", "full_page_writes = off",
            "listen_addresses = ''", f"unix_socket_directories = '{self.dir}'",
            "max_connections = 100", "shared_buffers = 128MB",
            "log_min_messages = warning", "timezone = 'UTC'",
        ]
        preload = (["pg_cron"] if cron else []) + (["pg_net"] if pg_net else [])
        if preload:
            conf.append(f"shared_preload_libraries = '{','.join(preload)}'")
        if cron:
            conf += [f"cron.database_name = '{dbname}'",
                     f"cron.host = '{self.dir}'"]
        if pg_net:
            # Until dbname exists (created below) the worker fails to connect
            # and is restarted every second: one FATAL line each in the log.
            conf += [f"pg_net.database_name = '{dbname}'"]
        conf += list(extra_conf)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        self.log = os.path.join(self.dir, "postgres.log")
        self._pg(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])
        on_cleanup(self.stop)
        self.psql(f"create database {dbname}", db="postgres")
        self.conninfo = f"host={self.dir} dbname={dbname} user={self.superuser}"

    def _pg(self, argv):
        cmd = [os.path.join(PG_BIN, argv[0])] + argv[1:]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.dir)

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._pg(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
            except subprocess.CalledProcessError:
                pass

    # Stopping and starting the same cluster (same data, same socket folder,
    # same conninfo) while clients hold sessions. The cleanup registered in
    # __init__ (stop) still stops whatever server runs at exit. Note that with
    # the default synchronous_commit = off, an immediate stop may lose the
    # last ~0.6 s of commits; tests that count rows across a restart pass
    # extra_conf=["synchronous_commit = on"].

    def running(self):
        """True while a postmaster of this cluster runs (its pid file exists)."""
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def accepts_connections(self):
        """True when a new session can run a query right now."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-h", self.dir, "-U", self.superuser,
             "-d", self.dbname, "-c", "select 1"],
            capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() == "1"

    def stop_server(self):
        """Stop the server at once (pg_ctl stop -m immediate): every session
        is cut without a goodbye, as in a crash; the next start runs crash
        recovery. Returns the seconds it took; a no-op when it is not running."""
        start = time.monotonic()
        if self.running():
            self._pg(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "60", "stop"])
        return time.monotonic() - start

    def start_server(self, timeout=60.0):
        """Start the stopped server again on the same data and socket folder
        (its log continued), and wait until it accepts connections. Returns
        the seconds it took."""
        start = time.monotonic()
        if not self.running():
            self._pg(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t",
                      str(int(timeout)), "start"])
        wait_for(self.accepts_connections, timeout=timeout, interval=0.05,
                 what="PostgreSQL to accept connections again")
        return time.monotonic() - start

    def restart(self, timeout=60.0):
        """pg_ctl restart -m immediate, done as stop -m immediate + start so
        that the server keeps its log file (pg_ctl restart would hand the
        new postmaster pg_ctl's own stdout). Waits until the server accepts
        connections again; returns the seconds it took."""
        start = time.monotonic()
        self.stop_server()
        self.start_server(timeout)
        return time.monotonic() - start

    def psql(self, sql, db=None, check=True):
        """Run SQL; return stdout rows as lists of strings (unaligned, | separated)."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "|",
             "-h", self.dir, "-U", self.superuser, "-d", db or self.dbname, "-c", sql],
            capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}\nSQL: {sql[:500]}")
        return [line.split("|") for line in out.stdout.splitlines() if line != ""]

    def raw(self, sql):
        """Run SQL returning one value; the exact text, newlines included."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.dir, "-U", self.superuser, "-d", self.dbname, "-c", sql],
            capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}\nSQL: {sql[:500]}")
        return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout

    def scalar(self, sql):
        rows = self.psql(sql)
        return rows[0][0] if rows else None

    def env(self):
        return {"DATABASE_URL": self.conninfo}


# --- the real pg_net ------------------------------------------------------
# Built from ../shared/vendor/pg_net by cli/build-pg-net.sh (.ci/run runs it
# with --required). It runs one background worker per cluster, serving the
# database named by pg_net.database_name; requests leave only after the
# calling transaction commits, one batch (up to pg_net.batch_size = 200) at a
# time: the worker deletes the batch's rows from net.http_request_queue,
# waits for every answer (or timeout) of the batch, inserts the rows of
# net._http_response and commits, all in one transaction. No retries.

PG_NET_SO = "/usr/lib/postgresql/15/lib/pg_net.so"
PG_NET_CONTROL = "/usr/share/postgresql/15/extension/pg_net.control"


def pg_net_missing():
    """None when the real pg_net is installed into PostgreSQL 15, else why not."""
    for path in (PG_NET_SO, PG_NET_CONTROL):
        if not os.path.isfile(path):
            return f"pg_net is not installed ({path} is missing; run cli/build-pg-net.sh)"
    return None


def require_pg_net(tap):
    """Skip the whole test when pg_net is not installed, or, when
    NOTION_SYNC_PG_NET=required (as .ci/run sets it), bail out: there the
    tests must run against the real pg_net."""
    why = pg_net_missing()
    if why is None:
        return
    if os.environ.get("NOTION_SYNC_PG_NET") == "required":
        print(f"Bail out! {why} (NOTION_SYNC_PG_NET=required)", flush=True)
        sys.exit(1)
    tap.skip_all(why)


class PgNet:
    """The real pg_net in pg's database (a Postgres(pg_net=True) cluster):
    `create extension pg_net` (unless create=False: already done), then wait
    until its background worker runs. Its messages go to the server log
    (log_text()). Reading helpers use the superuser."""

    def __init__(self, pg, create=True, timeout=30.0):
        self.pg = pg
        if create:
            pg.psql("create extension if not exists pg_net")
        pg.psql(f"set statement_timeout = '{int(timeout)}s'; select net.wait_until_running()")
        wait_for(self.worker_is_up, timeout=timeout, what="the pg_net background worker")

    def worker_is_up(self):
        """net.check_worker_is_up() succeeds (a pg_net backend is in pg_stat_activity)."""
        try:
            self.pg.psql("select net.check_worker_is_up()")
            return True
        except RuntimeError:
            return False

    def worker(self):
        """The worker's pg_stat_activity row (pid, backend_type, application_name,
        datname, usename, state), or None."""
        rows = json_rows(self.pg, "select pid, backend_type, application_name, datname, usename,"
                                  " state from pg_stat_activity"
                                  " where backend_type ilike '%pg_net%'")
        return rows[0] if rows else None

    def log_text(self):
        """The server log, where the worker writes."""
        return open(self.pg.log, errors="replace").read()

    def responses(self, where="true"):
        """Rows of net._http_response (id order) as dicts; headers is a dict."""
        return json_rows(self.pg, f"select * from net._http_response where {where} "
                                  "order by id, created")

    def response(self, request_id):
        """The response row of request_id, or None."""
        rows = self.responses(f"id = {int(request_id)}")
        return rows[0] if rows else None

    def wait_response(self, request_id, timeout=20.0):
        """Wait for request_id's response row and return it; TimeoutError
        (with the end of the server log) when none comes."""
        found = {}

        def ready():
            found["row"] = self.response(request_id)
            return found["row"] is not None

        try:
            wait_for(ready, timeout=timeout, interval=0.05,
                     what=f"the pg_net response to request {request_id}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nserver log:\n{self.log_text()[-2000:]}") from None
        return found["row"]

    def queue(self, where="true"):
        """Rows of net.http_request_queue as this session sees them: committed
        requests not yet taken, and those of the batch in flight (the
        worker's delete commits with the batch's responses)."""
        return json_rows(self.pg, "select id, method, url, headers, timeout_milliseconds,"
                                  " convert_from(body, 'UTF8') as body"
                                  f" from net.http_request_queue where {where} order by id")

    def in_flight(self, request_id):
        """True while the worker holds request_id: its row is still in the
        queue but locked by the batch's delete."""
        rid = int(request_id)
        return (self.pg.scalar(f"select count(*) from net.http_request_queue where id = {rid}")
                == "1" and self.pg.scalar(
                    "select count(*) from (select id from net.http_request_queue "
                    f"where id = {rid} for update skip locked) r") == "0")


# --- the Notion emulator -------------------------------------------------

class Emulator:
    """The Notion API emulator on a loopback port; .control() drives it."""

    def __init__(self, result_cap=None, cursor_ttl=None):
        self.dir = tempfile.mkdtemp(prefix="nsync-emu-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        port_file = os.path.join(self.dir, "port")
        argv = [sys.executable, EMULATOR, "--port", "0", "--port-file", port_file, "--quiet"]
        if result_cap:
            argv += ["--result-cap", str(result_cap)]
        if cursor_ttl:
            argv += ["--cursor-ttl", str(cursor_ttl)]
        self.log = open(os.path.join(self.dir, "emulator.log"), "w")
        self.proc = start_process(argv, stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(port_file) or self.proc.poll() is not None,
                 what="the emulator to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("emulator exited: " + open(self.log.name).read()[-2000:])
        self.port = int(open(port_file).read().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_emulator" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"emulator {method} {path}: {exc.code} {exc.read()[:500]!r}")
        return json.loads(raw) if raw else None

    def requests(self):
        """The emulator's log of /v1 calls (never holds tokens)."""
        return self.control("GET", "/requests")["requests"]

    def clear_requests(self):
        self.control("DELETE", "/requests")

    def access(self, database_id=None, data_source_id=None, accessible=False, in_search=False):
        """Revoke (accessible=False) or restore the API's access to every data source of
        a database, or to one data source (POST /_emulator/access): a revoked source is
        no longer listed by GET database, it and its pages answer 404, and search still
        returns it only with in_search=True (a stale search index)."""
        body = {"accessible": accessible, "in_search": in_search}
        if data_source_id is not None:
            body["data_source_id"] = data_source_id
        else:
            body["database_id"] = database_id
        return self.control("POST", "/access", body)


# --- running the CLI -----------------------------------------------------

def base_env(pg, emulator, **extra):
    env = dict(os.environ)
    env.update(pg.env())
    env["NOTION_API_URL"] = emulator.url
    env.setdefault("NOTION_RATE_LIMIT", "0")
    env.setdefault("NOTION_BACKOFF_BASE", "0.05")
    env.pop("NOTION_VERSION", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, env, input_text=None, timeout=600):
    """Run the CLI; returns (exit code, parsed JSON or None, stdout, stderr)."""
    out = subprocess.run([CLI] + list(args), env=env, capture_output=True, text=True,
                         input=input_text, timeout=timeout)
    parsed = None
    try:
        parsed = json.loads(out.stdout) if out.stdout.strip().startswith("{") else None
    except json.JSONDecodeError:
        pass
    return out.returncode, parsed, out.stdout, out.stderr


def migrate(pg):
    code, _, out, err = run_cli(["migrate", "--sql-dir", SQL_DIR], pg_env(pg))
    if code != 0:
        raise RuntimeError(f"migrate failed ({code}): {out}{err}")


def pg_env(pg):
    env = dict(os.environ)
    env.update(pg.env())
    return env


# --- spawn-fcgi and nginx ------------------------------------------------

class Responder:
    """notion-sync-fcgi under spawn-fcgi on a loopback port (-n: the
    responder runs in the foreground, so we own its process)."""

    def __init__(self, env, processes=1):
        self.dir = tempfile.mkdtemp(prefix="nsync-fcgi-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "responder.log")
        self.log = open(self.log_path, "w")
        self.procs = []
        # Each spawn-fcgi -n binds its own socket; SO_REUSEPORT is not used,
        # so several processes share one socket through -F without -n.
        if processes == 1:
            argv = ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(self.port), "--", FCGI]
            self.procs.append(start_process(argv, env=env, stdout=self.log, stderr=self.log))
        else:
            pidfile = os.path.join(self.dir, "pids")
            argv = ["spawn-fcgi", "-a", "127.0.0.1", "-p", str(self.port), "-F", str(processes),
                    "-P", pidfile, "--", FCGI]
            subprocess.run(argv, env=env, check=True, stdout=self.log, stderr=self.log)
            pids = [int(p) for p in open(pidfile).read().split()]
            for pid in pids:
                on_cleanup(lambda pid=pid: _kill_pid(pid))
            self.pids = pids
        wait_for(self._listening, what="spawn-fcgi to listen")

    def _listening(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def alive(self):
        if self.procs:
            return all(p.poll() is None for p in self.procs)
        return all(pid_running(p) for p in self.pids)

    def log_text(self):
        self.log.flush()
        return open(self.log_path, errors="replace").read()


def pid_running(pid):
    """True while pid exists and is not a zombie: a responder forked by
    spawn-fcgi -F is not our child, and until init reaps it a dead one still
    answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _kill_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not pid_running(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# The private nginx of a test: pid, logs and temporary files in {dir}.
NGINX_PRIVATE_PATHS = """    client_body_temp_path {dir}/body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
""" + NGINX_PRIVATE_PATHS + """    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1m;
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_read_timeout 600s;
            fastcgi_pass 127.0.0.1:{fcgi_port};
        }}
    }}
}}
"""


class Nginx:
    """A plain-HTTP nginx on loopback passing every path to the responder
    (the production site config with TLS lives in nginx/)."""

    def __init__(self, fcgi_port, conf_template=NGINX_CONF, **fmt):
        self.dir = tempfile.mkdtemp(prefix="nsync-nginx-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(conf_template.format(dir=self.dir, port=self.port, fcgi_port=fcgi_port, **fmt))
        self.log = open(os.path.join(self.dir, "stderr.log"), "w")
        self.proc = start_process(["nginx", "-c", conf, "-p", self.dir], stdout=self.log,
                                  stderr=self.log)
        wait_for(self._listening, what="nginx to listen")
        self.url = f"http://127.0.0.1:{self.port}"

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + open(self.log.name).read())
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0


def http(method, url, body=None, headers=None, timeout=600):
    """One HTTP request; returns (status, headers dict, parsed JSON or raw text)."""
    data = body if isinstance(body, (bytes, type(None))) else body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, hdrs, json.loads(text)
    except json.JSONDecodeError:
        return status, hdrs, text


# --- Notion ground truth, as the sync sees it ------------------------------

KINDS = {
    # kind: (table, title column, title property, text column, text properties)
    "Characters": ("notion_characters_sync", "name", "Name", "description",
                   ["Description", "Bio", "Backstory"]),
    "Worlds": ("notion_worlds_sync", "name", "World Name", "description", ["Concept/Premise"]),
    "Stories": ("notion_stories_sync", "title", "Story Title", "description", ["Premise"]),
    "Chat Sessions": ("notion_chat_sessions_sync", "title", "Session Title", "transcript",
                      ["Raw Transcript"]),
}
TITLE_MAX_CHARS = 1000
TITLE_MAX_BYTES = 2048


def cap_title(s):
    """The indexed title column keeps <= 1000 characters and <= 2048 bytes."""
    s = s[:TITLE_MAX_CHARS]
    while len(s.encode("utf-8", "surrogatepass")) > TITLE_MAX_BYTES:
        s = s[:-1]
    return s


def notion_query_all(emu, token, source_id, version="2025-09-03"):
    """Every page of a data source (a database under 2022-06-28), exactly as
    the query endpoint returns them, following cursors."""
    pages, cursor = [], None
    path = (f"/v1/databases/{source_id}/query" if version < "2025-09-03"
            else f"/v1/data_sources/{source_id}/query")
    while True:
        body = {"page_size": 100}
        if cursor:
            body["start_cursor"] = cursor
        status, _, answer = http("POST", emu.url + path, json.dumps(body), {
            "Authorization": f"Bearer {token}", "Notion-Version": version,
            "Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"query {source_id}: {status} {answer}")
        pages += answer["results"]
        if not answer["has_more"]:
            return pages
        cursor = answer["next_cursor"]


def plain_text(value):
    """Plain text of a title/rich_text property value (pieces joined)."""
    if not value:
        return None
    items = value.get(value.get("type"), [])
    if not isinstance(items, list):
        return None
    return "".join(i.get("plain_text", i.get("text", {}).get("content", "")) for i in items)


TEXT_TYPES = ("rich_text", "title", "url", "email", "phone_number")


def text_value(value):
    """What a text column takes from a property: the text of a text-typed
    value (rich text joined, or the string), None for other types."""
    if not value or value.get("type") not in TEXT_TYPES:
        return None
    inner = value.get(value["type"])
    if isinstance(inner, str):
        return inner
    return plain_text(value)


def clean_text(s):
    """What the sync stores for text: NUL removed; a lone UTF-16 surrogate
    (json-c already decodes it as U+FFFD) becomes U+FFFD."""
    if s is None:
        return None
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s.replace("\x00", ""))


def expected_columns(kind, props):
    """The mapped columns of the design guide, computed independently of the C code."""
    table, title_col, _title_prop, text_col, text_props = KINDS[kind]
    # The title column is the property of type title, whatever its name.
    title_value = next((v for v in props.values() if v.get("type") == "title"), None)
    title = cap_title(clean_text(plain_text(title_value) or ""))
    text = None
    present = [p for p in text_props if p in props]
    for p in text_props:
        t = text_value(props.get(p))
        if t:
            text = clean_text(t)
            break
    if text is None and present:
        text = ""
    cols = {title_col: title, text_col: text}
    if kind == "Chat Sessions":
        n = (props.get("Message Count") or {}).get("number")
        cols["message_count"] = int(n) if isinstance(n, (int, float)) and abs(n) < 2**31 else None
    return cols


def normalize_files(value):
    """Drop what Notion re-signs on every request (file URL query, expiry)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "file" and isinstance(v, dict):
                v = {fk: (fv.split("?")[0] if fk == "url" and isinstance(fv, str) else fv)
                     for fk, fv in v.items() if fk != "expiry_time"}
            out[k] = normalize_files(v)
        return out
    if isinstance(value, list):
        return [normalize_files(v) for v in value]
    return value


def table_rows(pg, table, user_id, extra_cols=()):
    """{page_id: row dict} of one user's rows in a sync table."""
    title_col = "name" if table in ("notion_characters_sync", "notion_worlds_sync") else "title"
    text_col = "transcript" if table == "notion_chat_sessions_sync" else "description"
    cols = ["notion_page_id", "notion_database_id", "coalesce(notion_data_source_id::text,'')",
            title_col, f"{text_col} is null", f"coalesce({text_col}, '')",
            "properties::text", "content_hash", "updated_at::text", "xmin::text",
            "to_char(notion_created_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')",
            "to_char(notion_last_edited_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"]
    cols += list(extra_cols)
    sql = (f"select json_agg(json_build_array({', '.join(cols)})) from {table} "
           f"where user_id = '{user_id}'")
    raw = pg.raw(sql)
    rows = {}
    for r in json.loads(raw) if raw else []:
        rows[r[0]] = {
            "database_id": r[1], "data_source_id": r[2] or None, title_col: r[3],
            text_col: None if r[4] else r[5], "properties": json.loads(r[6]),
            "content_hash": r[7], "updated_at": r[8], "xmin": r[9],
            "created_time": r[10], "last_edited_time": r[11], "extra": r[12:],
        }
    return rows


def write_counters(pg, tables):
    """Rows inserted, updated and deleted in tables since the cluster started."""
    names = ", ".join(f"'{t}'" for t in tables)
    row = pg.psql(f"select coalesce(sum(n_tup_ins),0), coalesce(sum(n_tup_upd),0), "
                  f"coalesce(sum(n_tup_del),0) from pg_stat_user_tables where relname in ({names})")
    return tuple(int(x) for x in row[0])


REFERENCE_LIMIT = 25


def may_be_truncated(value):
    """True when Notion may have cut this property value at 25 references
    (the sync then fetches the complete value): a relation with has_more,
    people with >= 25 users, title/rich_text with >= 25 mentions."""
    t = value.get("type")
    inner = value.get(t)
    if not isinstance(inner, list):
        return False
    if t == "relation":
        return bool(value.get("has_more"))
    if t == "people":
        return len(inner) >= REFERENCE_LIMIT
    if t in ("title", "rich_text"):
        refs = sum(1 for i in inner if i.get("type") == "mention" and
                   (i.get("mention") or {}).get("type") in ("page", "user", "database", "data_source"))
        return refs >= REFERENCE_LIMIT
    return False


def completed_properties(emu, page):
    """The properties the sync stores for a page from a query answer: values
    that may be truncated are replaced by the emulator's complete ground
    truth (relations then say has_more: false)."""
    props = dict(page["properties"])
    cut = [name for name, v in props.items() if may_be_truncated(v)]
    if not cut:
        return props
    truth = emu.control("GET", f"/pages/{page['id']}")["properties"]
    for name in cut:
        value = dict(props[name])
        value[value["type"]] = truth[name][truth[name]["type"]]
        if value["type"] == "relation":
            value["has_more"] = False
        props[name] = value
    return props


# --- helpers for the asynchronous and scheduling tests ----------------------

def timed_http(method, url, body=None, headers=None, timeout=600):
    """http() and the seconds it took: (seconds, status, headers, body)."""
    start = time.monotonic()
    status, hdrs, answer = http(method, url, body, headers, timeout)
    return time.monotonic() - start, status, hdrs, answer


def json_rows(pg, sql, db=None):
    """The rows of sql as a list of dicts (one JSON value, read whole)."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", pg.dir,
         "-U", pg.superuser, "-d", db or pg.dbname,
         "-c", f"select coalesce(json_agg(r), '[]') from ({sql}) r"],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}\nSQL: {sql[:500]}")
    return json.loads(out.stdout)


def psql_as(pg, user, sql, db=None):
    """Run sql as another role of the cluster (trust authentication on the
    socket). Returns (exit code, stdout, stderr); never raises for SQL errors."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "|",
         "-h", pg.dir, "-U", user, "-d", db or pg.dbname, "-c", sql],
        capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


class PsqlSession:
    """One psql session fed statement by statement, so that a transaction can
    stay open while the test looks at the database from other sessions.
    psql runs each statement as soon as its line arrives; the output is read
    by finish()."""

    def __init__(self, pg, user=None, db=None, appname="nsync-test-session"):
        self.pg = pg
        self.appname = appname
        env = dict(os.environ, PGAPPNAME=appname)
        self.proc = start_process(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "|",
             "-h", pg.dir, "-U", user or pg.superuser, "-d", db or pg.dbname],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

    def send(self, sql):
        self.proc.stdin.write(sql.rstrip() + "\n")
        self.proc.stdin.flush()

    def state(self):
        """(state, last query) of this session in pg_stat_activity, or None."""
        rows = self.pg.psql("select state, query from pg_stat_activity where application_name = "
                            f"'{self.appname}'")
        return tuple(rows[0][:2]) if rows else None

    def wait_state(self, state, query_part="", timeout=20.0):
        """Wait until the session is in state (e.g. 'idle in transaction') after
        a statement containing query_part."""
        def ready():
            s = self.state()
            return s is not None and s[0] == state and query_part in s[1]
        wait_for(ready, timeout=timeout, what=f"session {self.appname} to be {state}")

    def finish(self, timeout=60):
        """Close the input; returns (exit code, stdout, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


# --- nginx over TLS with the repository's locations snippet (issue 5) ------
# Appended for tests/integration/test_security.py; reusable by any test that
# wants the production shape: nginx/notion-sync-locations.conf inside a TLS
# server, the way nginx/notion-sync.conf and cli/quickstart.sh use it.

import http.client as _httpclient  # noqa: E402  (keeps the name http for http())
import urllib.parse  # noqa: E402
import ssl  # noqa: E402

LOCATIONS_SNIPPET = os.path.join(SRCDIR, "nginx", "notion-sync-locations.conf")

TLS_NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
""" + NGINX_PRIVATE_PATHS + """    # At http level: Debian's stock nginx.conf enables TLS 1.0/1.1 here.
    ssl_protocols {ssl_protocols};
    {ssl_ciphers}
    # The header-free access log of nginx/notion-sync.conf.
    log_format notion_sync '$remote_addr [$time_local] "$request_method $uri $server_protocol" '
                           '$status $body_bytes_sent $request_time "$http_user_agent"';
    access_log {dir}/access.log notion_sync;
    upstream notion_sync_responder {{ server 127.0.0.1:{fcgi_port}; }}
    limit_req_zone $binary_remote_addr zone=notion_sync:1m rate={rate};
    {extra_http}
    server {{
        listen 127.0.0.1:{http_port};
        server_name localhost;
        return 301 https://$host:{https_port}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl http2;
        server_name localhost;
        ssl_certificate     {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        ssl_session_cache   shared:notion_sync_ssl:1m;
        server_tokens off;
        include {snippet};
    }}
{pg_net_server}}}
"""

# pg_net's libcurl trusts only the system CA store, so it cannot verify a
# test's self-signed certificate: TlsNginx(pg_net_port=True) adds this
# plain-HTTP loopback server with the same snippet for it.
TLS_NGINX_PG_NET_SERVER = """    server {{
        listen 127.0.0.1:{pg_net_port};
        server_name localhost;
        server_tokens off;
        include {snippet};
    }}
"""


def make_self_signed_cert(directory, cn="localhost"):
    """A fresh self-signed certificate (RSA 2048, SAN localhost and
    127.0.0.1) in directory; returns (cert path, key path)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.chmod(key, 0o600)
    return cert, key


class TlsNginx:
    """nginx on loopback as production runs it: a TLS server (`listen ...
    ssl http2`, a self-signed certificate made afresh) that includes the
    repository's nginx/notion-sync-locations.conf, TLS 1.2/1.3 only at http
    level, the upstream notion_sync_responder and the limit_req zone
    notion_sync the snippet needs, the header-free access log of
    nginx/notion-sync.conf, and a plain-HTTP server that answers 301 to
    HTTPS. With pg_net_port=True also a plain-HTTP loopback server with the
    same snippet, at .pg_net_url, for pg_net (see TLS_NGINX_PG_NET_SERVER).

    .url (https://127.0.0.1:port), .http_url (the redirecting plain port),
    .cert (the CA file for clients), .ssl_context(), .request() (HTTPS, see
    https()), .logs() (access + error log text), .set_upstream(port)
    (point at another responder and reload). ssl_protocols / ssl_ciphers /
    snippet / extra_http exist for negative controls and variants."""

    def __init__(self, fcgi_port, rate="10r/s", ssl_protocols="TLSv1.2 TLSv1.3",
                 ssl_ciphers=None, snippet=None, extra_http="", pg_net_port=False):
        self.dir = tempfile.mkdtemp(prefix="nsync-tls-nginx-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        os.chmod(self.dir, 0o755)
        self.https_port, self.http_port = free_port(), free_port()
        self.pg_net_port = free_port() if pg_net_port else None
        self.cert, self.key = make_self_signed_cert(self.dir)
        # The snippet includes fastcgi_params relative to the configuration.
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(self.dir, "fastcgi_params"))
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self._fmt = dict(dir=self.dir, https_port=self.https_port, http_port=self.http_port,
                         rate=rate, ssl_protocols=ssl_protocols,
                         ssl_ciphers=f"ssl_ciphers {ssl_ciphers};" if ssl_ciphers else "",
                         snippet=snippet or LOCATIONS_SNIPPET, extra_http=extra_http)
        self._fmt["pg_net_server"] = TLS_NGINX_PG_NET_SERVER.format(
            pg_net_port=self.pg_net_port, snippet=self._fmt["snippet"]) if pg_net_port else ""
        self._write_conf(fcgi_port)
        self.log = open(os.path.join(self.dir, "stderr.log"), "w")
        test = subprocess.run(["nginx", "-t", "-q", "-c", self.conf, "-p", self.dir],
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError("nginx -t failed: " + test.stderr)
        self.proc = start_process(["nginx", "-c", self.conf, "-p", self.dir], stdout=self.log,
                                  stderr=self.log)
        wait_for(self._listening, what="nginx (TLS) to listen")
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.pg_net_url = f"http://127.0.0.1:{self.pg_net_port}" if pg_net_port else None

    def _write_conf(self, fcgi_port):
        self.fcgi_port = fcgi_port
        with open(self.conf, "w") as f:
            f.write(TLS_NGINX_CONF.format(fcgi_port=fcgi_port, **self._fmt))

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + open(self.log.name).read())
        for port in (self.https_port, self.http_port, self.pg_net_port):
            if port is None:
                continue
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    def _worker_pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def set_upstream(self, fcgi_port, timeout=20.0):
        """Point notion_sync_responder at another port and reload nginx
        (SIGHUP); returns once the old worker has gone and a new one runs."""
        old = set(self._worker_pids())
        self._write_conf(fcgi_port)
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_for(lambda: (lambda now: bool(now) and not (set(now) & old))(self._worker_pids()),
                 timeout=timeout, what="nginx to reload")

    def ssl_context(self, **kw):
        return tls_client_context(self.cert, **kw)

    def request(self, method, path, body=None, headers=None, **kw):
        """https() against this server: (status, HTTPMessage headers, JSON or text)."""
        kw.setdefault("context", self.ssl_context())
        return https(method, self.url + path, body, headers, **kw)

    def logs(self):
        """The text of nginx's access and error logs (and its stderr)."""
        text = ""
        for p in (self.access_log, self.error_log, self.log.name):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text


def tls_client_context(cafile, minimum=None, maximum=None, ciphers=None, alpn=None):
    """A client SSLContext trusting cafile (hostname checked)."""
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


def https(method, url, body=None, headers=None, context=None, cafile=None, timeout=60,
          source_address=None, encode_chunked=False):
    """One HTTP or HTTPS request with http.client (no redirects followed).
    headers: a dict, or a list of (name, value) pairs to send repeated or
    unusual headers as they are. Returns (status, _httpclient.HTTPMessage,
    parsed JSON or the text)."""
    parts = urllib.parse.urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        if context is None:
            context = tls_client_context(cafile)
        conn = _httpclient.HTTPSConnection(parts.hostname, parts.port, context=context,
                                           timeout=timeout, source_address=source_address)
    else:
        conn = _httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout,
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
    text = raw.decode("utf-8", "replace")
    try:
        return status, hdrs, json.loads(text)
    except json.JSONDecodeError:
        return status, hdrs, text


def stop_responder(responder):
    """Stop a single-process Responder (SIGTERM, then SIGKILL after 5 s)."""
    if not responder.procs:
        raise ValueError("stop_responder: only for Responder(processes=1)")
    for proc in responder.procs:
        _stop_process(proc)


def respawn(responder, env):
    """Restart a single-process Responder (spawn-fcgi -n) with env on the
    same port, its log continued: stop the running process (if it still
    runs), start a new one."""
    stop_responder(responder)
    argv = ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(responder.port), "--", FCGI]
    responder.procs = [start_process(argv, env=env, stdout=responder.log, stderr=responder.log)]
    wait_for(responder._listening, what="spawn-fcgi to listen again")


def https_raw(url, data, context=None, cafile=None, timeout=30):
    """Send data (bytes: a whole request, as it is) to url's host and port,
    over TLS for https; read until the server closes. Returns (status or
    None, raw response bytes). For requests http.client refuses to build
    (bytes that are not ASCII in the request line, broken framing)."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        if parts.scheme == "https":
            if context is None:
                context = tls_client_context(cafile)
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
    return status, raw


def stop_process(proc, grace=5.0):
    """Stop a process started with start_process now (SIGTERM to its group,
    SIGKILL after grace seconds); a no-op once it has ended."""
    _stop_process(proc, grace)
