"""harness.py - a FACADE: the names of the former single-file harness,
re-exported from the modules that now hold them, so that `import harness as
h` keeps working everywhere. New code may import the modules directly:

  stack.py   - processes and cleanup, PostgreSQL (template, clones),
               pg_net, the emulator, the CLI, the responder, nginx;
  client.py  - request() (HTTP/HTTPS/raw bytes), psql(), Tap, note();
  truth.py   - the Notion truth oracle (expected columns, ground truth,
               table rows, write counters);
  scenario.py - an integration file as named scenarios.

The old HTTP and psql variants are kept below as thin aliases of the one
client.request() and the one client.psql(), with their old return shapes.
Run a test file directly with PYTHONPATH=tests/lib (Makefile.am sets it).
"""

import http.client as _httpclient  # noqa: F401  (the old harness's private alias)
import time

import client
import stack
import truth
from client import *  # noqa: F401,F403
from stack import *  # noqa: F401,F403
from stack import _cleanups, _kill_pid, _on_signal, _run_cleanups, _stop_process  # noqa: F401
from truth import *  # noqa: F401,F403


# --- the old HTTP variants (client.request() with their return shapes) -----

def http(method, url, body=None, headers=None, timeout=600):
    """(status, headers as a plain dict, parsed JSON or text)."""
    st, hdrs, answer = client.request(method, url, body, headers, timeout=timeout)
    return st, dict(hdrs), answer


def https(method, url, body=None, headers=None, context=None, cafile=None, timeout=60,
          source_address=None, encode_chunked=False):
    """(status, http.client.HTTPMessage headers, parsed JSON or text)."""
    st, hdrs, answer = client.request(method, url, body, headers, timeout=timeout,
                                      context=context, cafile=cafile,
                                      source_address=source_address,
                                      encode_chunked=encode_chunked)
    return st, hdrs, answer


def timed_http(method, url, body=None, headers=None, timeout=600):
    """(seconds, status, headers dict, parsed JSON or text)."""
    start = time.monotonic()
    st, hdrs, answer = http(method, url, body, headers, timeout)
    return time.monotonic() - start, st, hdrs, answer


def https_raw(url, data, context=None, cafile=None, timeout=30):
    """data sent as it is: (status or None, every byte the server sent)."""
    resp = client.request(None, url, timeout=timeout, context=context, cafile=cafile,
                          raw_request=data)
    return resp.status, resp.raw


tls_client_context = client.tls_context


# --- the old psql variants (client.psql() with their return shapes) -------

def json_rows(pg, sql, db=None):
    """client.psql(pg, sql, out="json", db=db): the rows as dicts."""
    return client.psql(pg, sql, out="json", db=db)


def psql_as(pg, user, sql, db=None):
    """client.psql(pg, sql, out="result", user=user, db=db): (exit code,
    stdout, stderr); never raises."""
    return client.psql(pg, sql, out="result", user=user, db=db)

