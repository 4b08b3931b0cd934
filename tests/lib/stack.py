"""stack.py - the real parts an integration test runs against, started on
this machine only and always stopped again (at exit, on failure, on SIGTERM
or SIGINT):

  * processes: start_process() in their own group, on_cleanup() hooks,
    wait_for(), free_port();
  * a private PostgreSQL 15 cluster in a temporary folder (Postgres: initdb
    as the `postgres` user when we are root, fsync off, a unix socket, no
    TCP, optionally pg_cron and the real pg_net preloaded), stopped and
    restarted on demand; migrated_cluster() migrates its database into the
    template that clone_database() copies, one database per scenario (a
    spare copy made ahead in the background, see keep_spares(), makes that
    a rename);
  * the real pg_net (PgNet) and a psql session kept open (PsqlSession);
  * the Notion API emulator (tests/emulator) on a loopback port;
  * the CLI (run_cli, migrate), the FastCGI responder under spawn-fcgi
    (Responder, respawn), and nginx in front of it: plain HTTP (Nginx) or
    production-shaped TLS with the repository's locations snippet (TlsNginx).

Talking to them is client.py's job. Standard library only.
"""

import atexit
import copy
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import client

SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("top_builddir") or SRCDIR
PG_BIN = "/usr/lib/postgresql/15/bin"

CLI = os.path.join(BUILDDIR, "cli", "notion-sync")
FCGI = os.path.join(BUILDDIR, "fcgi", "notion-sync-fcgi")
SQL_DIR = os.path.join(SRCDIR, "sql")
EMULATOR = os.path.join(SRCDIR, "tests", "emulator", "notion_emulator.py")

# --- processes and cleanup -------------------------------------------------

_cleanups = []


def run_cleanups(*_):
    """Run every registered cleanup now, last registered first (also done at
    exit, on SIGTERM/SIGINT, and by Tap.done())."""
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as exc:  # keep stopping the rest
            print(f"# cleanup failed: {exc}", file=sys.stderr)


def _on_signal(signum, _frame):
    run_cleanups()
    sys.exit(128 + signum)


_run_cleanups = run_cleanups
atexit.register(run_cleanups)
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


def stop_process(proc, grace=5.0):
    """Stop a process started with start_process now (SIGTERM to its group,
    SIGKILL after grace seconds); a no-op once it has ended."""
    _stop_process(proc, grace)


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
            # New WAL segments are not zero-filled first: a clone_database()
            # costs ~0.1 s instead of ~0.45 s, bulk syncs write faster.
            "wal_init_zero = off",
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
        code, out, _ = client.psql(self, "select 1", out="result")
        return code == 0 and out.strip() == "1"

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

    def psql(self, sql, db=None, check=True, **opts):
        """client.psql() on this cluster: by default the stdout rows as lists
        of strings; opts: out= ("text", "scalar", "json", "result"), user=."""
        return client.psql(self, sql, db=db, check=check, **opts)

    def raw(self, sql):
        """psql(sql, out="text"): one value, its exact text."""
        return client.psql(self, sql, out="text")

    def scalar(self, sql):
        """psql(sql, out="scalar"): the first field of the first row, or None."""
        return client.psql(self, sql, out="scalar")

    def clone(self, name, template=None, sql=None):
        """clone_database(self, name, template, sql)."""
        return clone_database(self, name, template, sql)

    def env(self):
        return {"DATABASE_URL": self.conninfo}


def migrated_cluster(spares=True, **kw):
    """A Postgres(**kw) whose own database is migrated: the template that
    clone_database() copies for each scenario. spares: keep_spares(pg) at
    once; False for a template the test completes first (its roles, users,
    registered databases), calling keep_spares(pg) when it is complete."""
    pg = Postgres(**kw)
    migrate(pg)
    pg.spares = False
    if spares:
        keep_spares(pg)
    return pg


def keep_spares(pg, template=None):
    """From now on clone_database(pg, ...) keeps one copy of each template
    it used made ahead, in the background, as database nsync_spare_N (a
    clone then costs a rename, not a CREATE DATABASE of 0.2-0.4 s on a busy
    host); the first copy of template (pg's own database by default), for
    the first scenario, is started now. A spare is a copy of its template
    as it was when the copy was made: call this once the template is
    complete."""
    pg.spares = True
    _prefetch_spare(pg, template or pg.dbname)


def _admin_psql(pg, commands):
    """psql on pg's `postgres` database running each command separately
    (not in one transaction: CREATE/DROP DATABASE); NOTICEs silenced."""
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.dir, "-U", pg.superuser,
            "-d", "postgres"]
    for c in commands:
        argv += ["-c", c]
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    return subprocess.run(argv, capture_output=True, text=True, env=env)


_spares = {}              # (cluster folder, template) -> {"ready": [names], "busy": bool}
_spares_cv = threading.Condition()
_spare_numbers = itertools.count(1)


def _make_spare(pg, template, entry):
    name = f"nsync_spare_{next(_spare_numbers)}"
    res = _admin_psql(pg, [f"create database {name} template {template}"])
    with _spares_cv:
        entry["busy"] = False
        if res.returncode == 0:
            entry["ready"].append(name)
        _spares_cv.notify_all()


def _take_spare(pg, template):
    """A ready copy of template (waiting for the one in the making), or None."""
    with _spares_cv:
        entry = _spares.setdefault((pg.dir, template), {"ready": [], "busy": False})
        while entry["busy"] and not entry["ready"]:
            _spares_cv.wait(60)
        return entry["ready"].pop() if entry["ready"] else None


def _prefetch_spare(pg, template):
    with _spares_cv:
        entry = _spares.setdefault((pg.dir, template), {"ready": [], "busy": False})
        if entry["busy"] or entry["ready"]:
            return
        entry["busy"] = True
    threading.Thread(target=_make_spare, args=(pg, template, entry), daemon=True).start()


def clone_database(pg, name, template=None, sql=None):
    """A copy of pg (a Postgres) bound to a new database `name` made from
    `template` (pg's own database, migrated, by default): copying a
    template costs a fraction of a second, migrating costs seconds (with
    pg.spares, see keep_spares(), a copy made ahead is renamed). An
    existing database `name` is dropped first; sql (e.g. a scenario's users)
    then runs in the new database, all in one psql process. PostgreSQL
    refuses to copy a database while any session is connected to it (a
    responder, pg_net's worker)."""
    template = template or pg.dbname
    db = copy.copy(pg)
    db.dbname = name
    db.conninfo = f"host={pg.dir} dbname={name} user={pg.superuser}"
    spares = getattr(pg, "spares", False)
    spare = _take_spare(pg, template) if spares else None
    commands = [f"drop database if exists {name}",
                f"alter database {spare} rename to {name}" if spare else
                f"create database {name} template {template}"]
    if sql:
        commands += [f"\\connect {name}", sql]
    res = _admin_psql(pg, commands)
    if res.returncode != 0:
        raise RuntimeError(f"cloning {name} failed: {res.stderr.strip()}\nSQL: {(sql or '')[:500]}")
    if spares and template not in ("template0", "template1"):
        _prefetch_spare(pg, template)
    return db


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
        rows = self.pg.psql("select pid, backend_type, application_name, datname, usename,"
                            " state from pg_stat_activity"
                            " where backend_type ilike '%pg_net%'", out="json")
        return rows[0] if rows else None

    def log_text(self):
        """The server log, where the worker writes."""
        return open(self.pg.log, errors="replace").read()

    def responses(self, where="true"):
        """Rows of net._http_response (id order) as dicts; headers is a dict."""
        return self.pg.psql(f"select * from net._http_response where {where} "
                            "order by id, created", out="json")

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
        return self.pg.psql("select id, method, url, headers, timeout_milliseconds,"
                            " convert_from(body, 'UTF8') as body"
                            f" from net.http_request_queue where {where} order by id",
                            out="json")

    def in_flight(self, request_id):
        """True while the worker holds request_id: its row is still in the
        queue but locked by the batch's delete."""
        rid = int(request_id)
        return (self.pg.scalar(f"select count(*) from net.http_request_queue where id = {rid}")
                == "1" and self.pg.scalar(
                    "select count(*) from (select id from net.http_request_queue "
                    f"where id = {rid} for update skip locked) r") == "0")


# --- one psql session kept open ---------------------------------------------

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


# --- the Notion emulator -------------------------------------------------

class PortFileServer:
    """A Python test double of Notion (tests/emulator, tests/replay,
    tests/hostile: see serving.py) started as `script --port 0 --port-file F
    --quiet args...`, on the loopback port it writes to F (.port, .url; a
    double that listens on more ports lists them all: .ports), .log.

    The constructor only starts the process: .port and .url wait for the
    port file when first read, so the double boots while the test goes on
    (start it before the PostgreSQL cluster)."""

    def __init__(self, script, args=(), name="server"):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"nsync-{name}-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self._port_file = os.path.join(self.dir, "port")
        self._ports = None
        argv = [sys.executable, script, "--port", "0", "--port-file", self._port_file, "--quiet"]
        self.log = open(os.path.join(self.dir, f"{name}.log"), "w")
        self.proc = start_process(argv + list(args), stdout=self.log, stderr=self.log)

    @property
    def ports(self):
        if self._ports is None:
            wait_for(lambda: os.path.exists(self._port_file) or self.proc.poll() is not None,
                     what=f"the {self.name} to listen")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: " + open(self.log.name).read()[-2000:])
            self._ports = tuple(int(p) for p in open(self._port_file).read().split())
        return self._ports

    @property
    def port(self):
        return self.ports[0]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


class Emulator(PortFileServer):
    """The Notion API emulator on a loopback port; .control() drives it."""

    def __init__(self, result_cap=None, cursor_ttl=None):
        args = []
        if result_cap:
            args += ["--result-cap", str(result_cap)]
        if cursor_ttl:
            args += ["--cursor-ttl", str(cursor_ttl)]
        super().__init__(EMULATOR, args, name="emulator")

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        resp = client.request(method, self.url + "/_emulator" + path, data,
                              {"Content-Type": "application/json"}, timeout=120)
        if resp.status >= 400:
            raise RuntimeError(f"emulator {method} {path}: {resp.status} {resp.raw[:500]!r}")
        if not resp.raw:
            return None
        # request() parsed it already; an answer that is no JSON raises here
        return json.loads(resp.raw) if isinstance(resp.body, str) else resp.body

    def make_database(self, title, token=None, count=0, seed=1, kind=None, sources=1,
                      **generate):
        """A database titled title (shared with token, when given) with
        `sources` data sources, and count pages (a list: one count per
        source) generated in each, of kind (the title by default), from seed
        plus the source's index; generate: more fields of /generate (e.g.
        created_start). Returns {"database_id", "data_source_ids"}."""
        spec = {"title": title, "data_sources": [{} for _ in range(sources)]}
        if token:
            spec["token"] = token
        db = self.control("POST", "/databases", spec)
        counts = count if isinstance(count, list) else [count] * sources
        for i, (ds, n) in enumerate(zip(db["data_source_ids"], counts)):
            if n:
                self.control("POST", "/generate", dict({"data_source_id": ds, "count": n,
                                                        "seed": seed + i, "kind": kind or title},
                                                       **generate))
        return db

    def trash(self, page_ids):
        """Move pages to the trash (as a user does in Notion)."""
        for pid in page_ids:
            self.control("POST", f"/pages/{pid}/trash", {})

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


def query_descending(request):
    """Whether a logged query request sorts descending."""
    return "descending" in json.dumps((request.get("body") or {}).get("sorts"))


def query_created_filter(request):
    """(operator, time) of a logged query request's created_time filter, or
    (None, None)."""
    f = (request.get("body") or {}).get("filter") or {}
    for op, value in (f.get("created_time") or {}).items():
        return op, value
    return None, None


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

    def __init__(self, env, processes=1, program=None):
        """program: what spawn-fcgi runs (FCGI, the built responder, by default)."""
        self.program = program or FCGI
        self.dir = tempfile.mkdtemp(prefix="nsync-fcgi-")
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "responder.log")
        self.log = open(self.log_path, "w")
        self.procs = []
        # Each spawn-fcgi -n binds its own socket; SO_REUSEPORT is not used,
        # so several processes share one socket through -F without -n.
        if processes == 1:
            argv = ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(self.port), "--",
                    self.program]
            self.procs.append(start_process(argv, env=env, stdout=self.log, stderr=self.log))
        else:
            pidfile = os.path.join(self.dir, "pids")
            argv = ["spawn-fcgi", "-a", "127.0.0.1", "-p", str(self.port), "-F", str(processes),
                    "-P", pidfile, "--", self.program]
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

    def stop(self):
        """stop_responder(self)."""
        stop_responder(self)


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


# The private nginx of a test: one worker in the foreground, its pid, logs
# and temporary files in {dir}; each configuration adds its http block.
NGINX_MAIN = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {worker_connections}; }}
"""

NGINX_PRIVATE_PATHS = """    client_body_temp_path {dir}/body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""

NGINX_CONF = NGINX_MAIN + """http {{
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


class _PrivateNginx:
    """What Nginx and TlsNginx share: a private folder (.dir, removed at
    exit) holding the configuration, the logs and nginx's stderr (.log);
    the process (.proc), stopped at exit or by stop()."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")

    def _start(self, ports, what):
        """Start nginx on self.conf; return once it listens on every port."""
        self.log = open(os.path.join(self.dir, "stderr.log"), "w")
        self.proc = start_process(["nginx", "-c", self.conf, "-p", self.dir], stdout=self.log,
                                  stderr=self.log)
        self._ports = [p for p in ports if p is not None]
        wait_for(self._listening, what=what)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + open(self.log.name).read())
        for port in self._ports:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    def stop(self):
        """Stop nginx now (its cleanup at exit is then a no-op)."""
        _stop_process(self.proc)

    def logs(self):
        """The text of nginx's access and error logs (and its stderr)."""
        text = ""
        for p in (self.access_log, self.error_log, self.log.name):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text


class Nginx(_PrivateNginx):
    """A plain-HTTP nginx on loopback passing every path to the responder
    (the production site config with TLS lives in nginx/)."""

    def __init__(self, fcgi_port, conf_template=NGINX_CONF, worker_connections=1024, **fmt):
        super().__init__("nsync-nginx-")
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(conf_template.format(dir=self.dir, port=self.port, fcgi_port=fcgi_port,
                                         worker_connections=worker_connections, **fmt))
        self._start([self.port], "nginx to listen")
        self.url = f"http://127.0.0.1:{self.port}"


# The production-shaped TLS server, the way nginx/notion-sync.conf and
# cli/quickstart.sh use it.

LOCATIONS_SNIPPET = os.path.join(SRCDIR, "nginx", "notion-sync-locations.conf")

TLS_NGINX_CONF = NGINX_MAIN + """http {{
    include /etc/nginx/mime.types;
""" + NGINX_PRIVATE_PATHS + """    # At http level: Debian's stock nginx.conf enables TLS 1.0/1.1 here.
    ssl_protocols {ssl_protocols};
    {ssl_ciphers}
    # The header-free access log of nginx/notion-sync.conf.
    log_format notion_sync '$remote_addr [$time_local] "$request_method $uri $server_protocol" '
                           '$status $body_bytes_sent $request_time "$http_user_agent"';
    access_log {dir}/access.log notion_sync;
    upstream notion_sync_responder {{ server {upstream}; }}
{limits}
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


class TlsNginx(_PrivateNginx):
    """nginx on loopback as production runs it: a TLS server (`listen ...
    ssl http2`, a self-signed certificate made afresh) that includes the
    repository's nginx/notion-sync-locations.conf, TLS 1.2/1.3 only at http
    level, the upstream notion_sync_responder and the limit_req zone
    notion_sync the snippet needs, the header-free access log of
    nginx/notion-sync.conf, and a plain-HTTP server that answers 301 to
    HTTPS. With pg_net_port=True also a plain-HTTP loopback server with the
    same snippet, at .pg_net_url, for pg_net (see TLS_NGINX_PG_NET_SERVER).

    The responder (fcgi_port) is a loopback port, or a unix socket given as
    "unix:/path". limits: http-level lines that define the zones notion_sync
    and notion_sync_webhooks instead of plain limit_req_zones (notion_sync at
    rate; e.g. nginx/notion-sync.conf's geo/map/limit_req_zone lines). cert: (certificate, key) files to serve instead
    of a fresh pair (making one costs a fraction of a second).

    .url (https://127.0.0.1:port), .http_url (the redirecting plain port),
    .cert (the CA file for clients), .ssl_context(), .request() (HTTPS, see
    client.request()), .logs() (access + error log text), .set_upstream(port)
    (point at another responder and reload), .stop(). ssl_protocols /
    ssl_ciphers / snippet / extra_http / worker_connections exist for
    negative controls and variants."""

    def __init__(self, fcgi_port, rate="10r/s", ssl_protocols="TLSv1.2 TLSv1.3",
                 ssl_ciphers=None, snippet=None, extra_http="", pg_net_port=False,
                 limits=None, worker_connections=1024, cert=None):
        super().__init__("nsync-tls-nginx-")
        self.https_port, self.http_port = free_port(), free_port()
        self.pg_net_port = free_port() if pg_net_port else None
        if cert:
            self.cert, self.key = (shutil.copy(path, os.path.join(self.dir, name))
                                   for path, name in zip(cert, ("cert.pem", "key.pem")))
        else:
            self.cert, self.key = make_self_signed_cert(self.dir)
        # The snippet includes fastcgi_params relative to the configuration.
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(self.dir, "fastcgi_params"))
        self._fmt = dict(dir=self.dir, https_port=self.https_port, http_port=self.http_port,
                         rate=rate, ssl_protocols=ssl_protocols,
                         ssl_ciphers=f"ssl_ciphers {ssl_ciphers};" if ssl_ciphers else "",
                         snippet=snippet or LOCATIONS_SNIPPET, extra_http=extra_http,
                         worker_connections=worker_connections,
                         limits=limits or "    limit_req_zone $binary_remote_addr "
                                          f"zone=notion_sync:1m rate={rate};\n"
                                          "    limit_req_zone $binary_remote_addr "
                                          "zone=notion_sync_webhooks:1m rate=200r/s;")
        self._fmt["pg_net_server"] = TLS_NGINX_PG_NET_SERVER.format(
            pg_net_port=self.pg_net_port, snippet=self._fmt["snippet"]) if pg_net_port else ""
        self._write_conf(fcgi_port)
        test = subprocess.run(["nginx", "-t", "-q", "-c", self.conf, "-p", self.dir],
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError("nginx -t failed: " + test.stderr)
        self._start([self.https_port, self.http_port, self.pg_net_port], "nginx (TLS) to listen")
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.pg_net_url = f"http://127.0.0.1:{self.pg_net_port}" if pg_net_port else None

    def _write_conf(self, fcgi_port):
        self.fcgi_port = fcgi_port
        upstream = fcgi_port if str(fcgi_port).startswith("unix:") else f"127.0.0.1:{fcgi_port}"
        with open(self.conf, "w") as f:
            f.write(TLS_NGINX_CONF.format(upstream=upstream, **self._fmt))

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
        return client.tls_context(self.cert, **kw)

    def request(self, method, path, body=None, headers=None, **kw):
        """client.request() against this server over HTTPS (timeout 60 s
        unless given): (status, HTTPMessage headers, JSON or text)."""
        kw.setdefault("context", self.ssl_context())
        kw.setdefault("timeout", 60)
        return client.request(method, self.url + path, body, headers, **kw)

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
    argv = ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(responder.port), "--",
            getattr(responder, "program", FCGI)]
    responder.procs = [start_process(argv, env=env, stdout=responder.log, stderr=responder.log)]
    wait_for(responder._listening, what="spawn-fcgi to listen again")

