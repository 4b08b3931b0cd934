"""pgnet.py - the pg_net stand-in for integration tests.

    import harness as h
    from pgnet import PgNet
    pg = h.Postgres()
    net = PgNet(pg)                        # schema net + the worker, stopped at exit
    rid = int(pg.scalar("select net.http_post('http://127.0.0.1:8080/x')"))
    row = net.wait_response(rid)           # the net._http_response row as a dict

PgNet applies tests/pgnet/pg_net_standin.sql to one database of a
harness.Postgres cluster and runs tests/pgnet/pgnet_worker.py against it
(see tests/pgnet/README for what differs from real pg_net). The worker is a
harness.start_process() child, so it is stopped at exit, also on failure.

Standard library only.
"""

import json
import os
import subprocess
import shutil
import sys
import tempfile

import harness as h

PGNET_DIR = os.path.join(h.SRCDIR, "tests", "pgnet")
STANDIN_SQL = os.path.join(PGNET_DIR, "pg_net_standin.sql")
WORKER = os.path.join(PGNET_DIR, "pgnet_worker.py")


class PgNet:
    """Schema net in pg's database dbname (default: pg.dbname) and a running
    worker. .log_path is the worker's log (quiet unless verbose=True)."""

    def __init__(self, pg, dbname=None, interval=0.1, ttl=None, batch_size=None,
                 verbose=False, start=True):
        self.pg = pg
        self.dbname = dbname or pg.dbname
        self.dir = tempfile.mkdtemp(prefix="nsync-pgnet-")
        h.on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.log_path = os.path.join(self.dir, "worker.log")
        self.interval = interval
        self.ttl = ttl
        self.batch_size = batch_size
        self.verbose = verbose
        self.proc = None
        self.apply_sql()
        if start:
            self.start()

    def apply_sql(self):
        """Run pg_net_standin.sql as the cluster's superuser (idempotent)."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg.dir,
             "-U", self.pg.superuser, "-d", self.dbname, "-f", STANDIN_SQL],
            capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"applying {STANDIN_SQL} failed: {out.stderr.strip()}")

    def start(self):
        """Start the worker and wait until it is connected."""
        argv = [sys.executable, WORKER, "--host", self.pg.dir, "--user", self.pg.superuser,
                "--dbname", self.dbname, "--interval", str(self.interval),
                "--log", self.log_path]
        if self.ttl is not None:
            argv += ["--ttl", str(self.ttl)]
        if self.batch_size is not None:
            argv += ["--batch-size", str(self.batch_size)]
        if not self.verbose:
            argv.append("--quiet")
        self.stderr = open(os.path.join(self.dir, "worker.stderr"), "w")
        self.proc = h.start_process(argv, stdout=self.stderr, stderr=self.stderr)
        h.wait_for(self._up, timeout=20, what="the pg_net stand-in worker to connect")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"pgnet_worker exited ({self.proc.returncode}): "
                               + self.log_text()[-2000:])
        return self.worker_is_up()

    def worker_is_up(self):
        """net.check_worker_is_up() succeeds."""
        try:
            self.pg.psql("select net.check_worker_is_up()", db=self.dbname)
            return True
        except RuntimeError:
            return False

    def stop(self, timeout=10):
        """SIGTERM the worker; returns its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_text(self):
        """The worker's log and stderr so far."""
        text = ""
        for name in ("worker.log", "worker.stderr"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                text += open(path, errors="replace").read()
        return text

    def _rows(self, sql):
        """Rows of sql as a list of dicts (one JSON value, read whole)."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.pg.dir,
             "-U", self.pg.superuser, "-d", self.dbname,
             "-c", f"select coalesce(json_agg(r), '[]') from ({sql}) r"],
            capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}\nSQL: {sql[:500]}")
        return json.loads(out.stdout)

    def responses(self, where="true"):
        """Rows of net._http_response (id order) as dicts; headers is a dict."""
        return self._rows(f"select * from net._http_response where {where} order by id, created")

    def response(self, request_id):
        """The response row of request_id, or None."""
        rows = self.responses(f"id = {int(request_id)}")
        return rows[0] if rows else None

    def wait_response(self, request_id, timeout=20.0):
        """Wait for request_id's response row and return it; TimeoutError
        (with the worker's log) when none comes."""
        found = {}

        def ready():
            found["row"] = self.response(request_id)
            return found["row"] is not None

        try:
            h.wait_for(ready, timeout=timeout, interval=0.05,
                       what=f"the pg_net response to request {request_id}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nworker log:\n{self.log_text()[-2000:]}") from None
        return found["row"]

    def queue(self):
        """Committed rows still in net.http_request_queue, as dicts."""
        return self._rows("select id, method, url, headers, timeout_milliseconds,"
                          " encode(body, 'escape') as body from net.http_request_queue"
                          " order by id")
