#!/usr/bin/env python3
"""Notion REST API emulator for the notion-sync tests and benchmark (Python 3 stdlib only).

Faithful to /work/shared/reference/notion-api.md (the Notion API as of 2026) for what a
sync client sees: versions 2022-06-28 / 2025-09-03 / 2026-03-11, databases as containers
of data sources, the query endpoint with its 10,000-row cap, minute-rounded timestamps,
page and property value shapes, the 25-reference truncation and the property-item
endpoint, re-signed Notion-hosted file URLs, error bodies and codes, search, users/me,
and integration webhooks (signed event delivery driven by the control API).

Usage:
  python3 tests/emulator/notion_emulator.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
      [--workspace FILE.json] [--result-cap 10000] [--cursor-ttl 600] [--quiet]

Listens on loopback only. With --port 0 a free port is chosen; --port-file receives it
(written atomically, once the socket listens; removed on exit). SIGTERM/SIGINT stop it.

Notion API (Authorization: Bearer <token>, Notion-Version required; paths under /v1)
  GET  /databases/{id}                 container (2025+) or old database object (2022)
  POST /databases/{id}/query           2022-06-28 only
  GET  /data_sources/{id}              2025-09-03+
  POST /data_sources/{id}/query        2025-09-03+  (filter, sorts, start_cursor,
                                       page_size, in_trash, archived; ?filter_properties)
  GET  /pages/{id}                     (?filter_properties)
  GET  /pages/{id}/properties/{prop}   property item(s), paginated for title, rich_text,
                                       relation, people, rollup; full values
  POST /search                         query, filter {property:object,value}, sort, cursors
  GET  /users/me                       the token's bot user; bot.workspace_id/_name are
                                       the token's (POST /_emulator/tokens)
Every response carries x-notion-request-id and a top-level "request_id" in its JSON body.

Faithful details
  * missing Notion-Version -> 400 missing_version; other unsupported versions -> 400
    validation_error; unknown token -> 401 unauthorized; unknown or unshared id -> 404
    object_not_found with the integration name and additional_data.integration_id.
  * 2022-06-28 on a database with >= 2 accessible data sources -> 400 validation_error with
    additional_data.error_type "multiple_data_sources_for_database"; with none (a linked
    database, or sources the integration lost access to) -> 400 validation_error "Database
    with ID <id> does not contain any data sources accessible by this API bot." (no
    additional_data; this wording is not recorded in notion-api.md).
  * GET database (2025+) lists only the accessible data sources ("data_sources": [] when
    none); an inaccessible data source and its pages answer 404 object_not_found.
  * search: the query matches the DATABASE title (also for data_source results, whose
    title is the data source's own name); 2025+: one data_source object per data source,
    2022-06-28: database objects of databases with exactly one data source.
  * page timestamps are rounded down to the minute (YYYY-MM-DDTHH:MM:00.000Z); no sorts ->
    deterministic hash order (not creation order); equal sort values -> hash order too.
  * a query chain (same filter+sorts+in_trash) returns at most result_cap rows; the
    response reaching it has has_more false, next_cursor null and request_status
    {"type":"incomplete","incomplete_reason":"query_result_limit_reached"}.
  * cursors are opaque uuids bound to their query; wrong query, unknown, older than
    cursor_ttl (on the emulator clock) or expired via control -> 400 validation_error
    "The start_cursor provided is invalid: <cursor>".
  * page objects (query results and GET page): relation arrays cut to 25 with has_more,
    people cut to 25, title/rich_text keep at most 25 page/user/database mentions.
  * Notion-hosted files (files items of type "file", covers/icons of type "file") get a
    fresh X-Amz-Date/X-Amz-Signature/expiry_time on every response; external are stable.
  * "archived" is present for versions < 2026-03-11 and absent in 2026-03-11; it is also
    rejected as a query body key there.
  * in_trash:true returns only trashed pages; trashed pages are never returned otherwise.

Control API (JSON in/out, no auth; paths under /_emulator)
  POST   /reset                         empty workspace; faults, log, limits, clock, cap reset;
                                        webhook subscriptions stopped and removed
  GET    /health
  POST   /tokens     {token, integration_name, databases:[ids], workspace_id?, workspace_name?,
                      bot_id?}  create/replace a token -> {ok, integration_id, bot_id,
                      workspace_id, workspace_name, databases}; the workspace defaults to the
                      emulator's own, bot_id to one derived from integration_name and token.
                      Several tokens of one integration_name in different workspaces are the
                      OAuth installations of one public integration (same integration_id).
  POST   /share      {token, database_id, shared:bool}
  POST   /databases  {id?, title, data_sources?:[{id?, name?, schema?, pages?, generate?,
                      accessible?, in_search?}], token?}  -> {database_id, data_source_ids}
                      schema: {name: "type" | {type, <type>: config, id?}} (default Name: title)
                      data_sources defaults to one source named like the database; [] makes
                      a database without data sources (a linked database)
  POST   /data_sources {database_id, id?, name?, schema?, accessible?, in_search?}  add a
                      data source to a database
  POST   /access     {data_source_id | database_id, accessible?: false, in_search?: false}
                      revoke (or with accessible: true, restore) the API's access to one
                      data source or to every data source of a database, for all tokens:
                      GET database stops listing it, it and its pages answer 404, 2022-06-28
                      counts only accessible sources; in_search: search still returns the
                      revoked data source (a stale search index). -> {database_id,
                      data_sources:[{id, accessible, in_search}]}
  POST   /pages      {data_source_id, properties:{name: value}, id?, created_time?,
                      last_edited_time?, created_by?, cover?, icon?, in_trash?}
                      values as Notion returns them ({type, <type>: ...}, id optional) or the
                      bare <type> value for properties already in the schema; unknown
                      properties are added to the schema; text > 2000 chars is split.
  GET    /pages?data_source_id=&include_trashed=0|1   ground truth (2025 shape, untruncated)
  GET    /pages/{id}                    ground truth of one page
  PATCH  /pages/{id}  {properties?, in_trash?, is_archived?, is_locked?, cover?, icon?,
                      last_edited_time?, touch?}  last_edited_time := clock (minute-floored)
                      unless given, or unchanged with "touch": false
  POST   /pages/{id}/trash  {in_trash?: true}          DELETE /pages/{id}  (permanent)
  POST   /pages/{id}/content {block_ids?, last_edited_time?, last_edited_by?}  the page's
                      content changed: last_edited_time moves as for an edit ->
                      {page_id, updated_blocks:[{id, type:"block"}], last_edited_time};
                      block_ids defaults to one new id
  POST   /pages/{id}/move  {data_source_id}  move the page to another data source (of any
                      database): the title goes to the target's title property, values of
                      properties the target has with the same name and type carry over
                      (options by name), the rest is dropped; unique_id numbered afresh ->
                      ground truth page
  PATCH  /data_sources/{id}  {add?: {name: type | {type, <type>: config}}, rename?: {old: new},
                      remove?: [names]}  schema edit: removals, then renames, then additions,
                      all checked first; the title property can be renamed, not removed; new
                      names must be unused; page values of removed properties vanish ->
                      {data_source_id, updated_properties:[{id, name, action}],
                      properties: {name: {id, type}}}
  POST   /generate   {data_source_id, count, seed, kind: Characters|Worlds|Stories|
                      Chat Sessions|generic, created_start?, created_step_seconds? (20),
                      webhooks?: false}  page.created events only with webhooks: true (also
                      for a "generate" member of a data source spec)
  GET|POST /clock    {now: iso, frozen?: true} | {advance_seconds: n} | {real: true}
                      the clock drives edits, signing and cursor TTL (frozen when set)
  GET|POST /config   {result_cap?, cursor_ttl?, latency_ms?}
  POST   /cursors/expire                every cursor issued so far becomes invalid
  GET|POST|DELETE /faults  POST {faults:[{path: regex, method?, body?: regex on the request
                      body, kind: status|reset|slow|
                      html|truncate|expire_cursors, status?, retry_after?, delay_ms?, count?
                      (1; 0 = no limit), skip?, every?}]} appends; GET lists with seen/fired
                      counters.
                      Faults, latency and the rate limiter apply to /v1 requests only.
                      Rules are tried in order and the first that fires answers the request;
                      a rule counts (for skip/every) only matching requests that reach it,
                      i.e. not those already taken by an earlier rule.
                      status: Notion error body (429 rate_limited + Retry-After [1], 409, 500,
                      502, 503, 504, 529 service_overload; Retry-After also when retry_after
                      is given); reset: TCP RST, no answer; slow: sleep delay_ms, then answer;
                      html: Cloudflare HTML page (status, default 502) with cf-ray and no
                      x-notion-request-id; truncate: full headers, half the body, close;
                      expire_cursors: as POST /cursors/expire just before this request,
                      which is then answered normally (a start_cursor it carries gets the
                      real 400 "The start_cursor provided is invalid" answer), so a cursor
                      can be expired at an exact point of a walk.
  GET|POST /rate_limit {requests_per_second, burst}  (0 = off) token bucket per token
  GET|DELETE /requests  request log of /v1 calls (?since=seq), in the order answered, each
                      with its received and answered times (monotonic seconds); never
                      holds tokens
  GET    /stats                          counts per endpoint and status
  POST   /prerender  {data_source_id}    render the default query chain (2025-09-03, no
                      filter/sorts/filter_properties, page_size 100) once; such queries are
                      then served from memory (files still re-signed per response). Any edit
                      of the data source, a result_cap change or /cursors/expire drops the
                      cache; call /prerender again to rebuild (queries stay correct meanwhile).
Control errors: 400/404/405/409 {"error": "..."}.

Webhook events of control mutations (webhooks.py). Every mutation takes "emit": false to
send none. Events go to active subscriptions whose tokens can read the entity and whose
event_types take the type:
  POST /pages (and "pages" of a data source spec)  page.created
  PATCH /pages/{id}, POST /pages/{id}/trash  page.properties_updated (data.updated_properties:
                      ids of the properties whose values changed; none if nothing changed),
                      page.deleted / page.undeleted (in_trash changed), page.locked /
                      page.unlocked (is_locked changed); cover, icon, touch: no event
  POST /pages/{id}/content  page.content_updated (data.updated_blocks)
  POST /pages/{id}/move     page.moved (data.parent: the new one)
  DELETE /pages/{id}        none (a permanent deletion is not a trashing)
  POST /databases           database.created, then per data source data_source.created
                            (and page.created for its pages)
  POST /data_sources        data_source.created (data.parent {id: database, type: database})
  PATCH /data_sources/{id}  data_source.schema_updated (data.updated_properties: the changes)
  /share, /access, /tokens, /clock: none; data_source.content_updated is not emitted by any
  mutation (inject it with POST /webhooks/{id}/events).
Envelope: id, timestamp, workspace_id, workspace_name, subscription_id, integration_id, type,
authors [{id, type: "person"}], accessible_by (public subscriptions only), attempt_number,
api_version, entity {id, type}, data {parent, ...}.

Webhook control API (paths under /_emulator, as above; these calls do not hold the lock
the rest of the control API and /v1 share, so a drain blocks nothing)
  POST   /webhooks   {url, token | tokens:[...], event_types?: [...] (all), api_version?
                      ("2025-09-03"; "2022-06-28", "2026-03-11"), public? (more than one
                      token), delay_ms? (0), aggregate_ms? (0), duplicates? (0), reorder?
                      (false), reorder_seed? (null), paused? (false), retry_base_ms? (1000),
                      max_attempts? (8, at most 8), concurrency? (4, 1..16), timeout_ms?
                      (10000), insecure? (false), cafile? (null)}
                      -> {subscription_id, integration_id, state: "pending"}; the handshake
                      {"verification_token": "secret_..."} is POSTed (signed) at once and
                      retried like events. Unknown members -> 400; tokens must exist (404)
                      and belong to one integration (400).
  GET    /webhooks                    {subscriptions: [as GET /webhooks/{id}]}
  GET    /webhooks/{id}               settings, state, public, verification_token,
                      concurrency, and counters: events (made, after aggregation), aggregated
                      (merged into an earlier one), delivered (2xx deliveries, each duplicate
                      counted), failed_attempts, dropped (given up), pending (queued, held
                      included), in_flight, held (queued while paused), verification
                      {attempts, delivered, dropped}
  PATCH  /webhooks/{id}  {any POST setting but token(s), api_version, public, concurrency}
                      -> as GET; url only while pending (409 after)
  DELETE /webhooks/{id}               stop and remove it -> {ok}
  POST   /webhooks/{id}/verify  {verification_token}  -> {subscription_id, state: "active"};
                      400 when it does not match
  POST   /webhooks/{id}/resend        send the handshake again, same token -> {subscription_id,
                      state}; 409 once active
  GET    /webhooks/{id}/deliveries?since=seq  {deliveries: [{seq, kind: verification|event,
                      event_id, type, entity_id, attempt_number, status (HTTP status or
                      "connect error: ..."), sent_at, duration_ms, body (exact text sent),
                      signature}]} every attempt
  POST   /webhooks/{id}/events  {type, entity: {id, type}, data? ({}), authors?, token?}
                      inject an event as given (any type; no event_types filter, no access
                      check) from the workspace of token (default: the first) -> {event_id,
                      aggregated}; 409 while pending
  POST   /webhooks/drain  {timeout_ms? (10000), subscription_id?}  wait until nothing is
                      queued (held ones aside) or in flight -> {drained, subscriptions,
                      pending, in_flight, held, delivered, failed_attempts, dropped}; 200 with
                      drained: false on timeout
Delivery: POST with Content-Type: application/json, User-Agent: notion-api and
X-Notion-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the verification
token>; a 2xx ends it, anything else (or no answer within timeout_ms) is retried as attempt
n+1 (same event id) after retry_base_ms * 2^(n-1), up to max_attempts, then dropped.
Latency, faults and the rate limiter of /v1 do not apply. Choices where Notion is silent:
  * URLs: http or https on a loopback host only; https checks the certificate against cafile
    (default: the system CAs) unless insecure.
  * pending: events that happen before verify are not queued at all; url can change (and
    /resend works) only while pending, as in Notion; a queued handshake follows the new url.
  * who can read is decided when the event happens: the database shared with the token and
    the data source accessible (/access); page.moved is checked at the new place.
  * one event per distinct workspace of the subscription's tokens that can read the entity,
    each with its own id; a public subscription's events carry accessible_by: the bots of
    that workspace that can read it.
  * 2026-03-11 subscriptions get what 2025-09-03 ones get. 2022-06-28 ones get
    data_source.content_updated/schema_updated as database.content_updated/schema_updated
    (entity: the database; parent: its parent page), no data_source.created (no 2022 form),
    page parents without data_source_id; event_types filters the type as sent.
  * authors: the page's created_by for page.created, its last_edited_by after the edit for
    other page events, the workspace's default user otherwise; timestamp: the emulator clock
    at the mutation, in milliseconds (a frozen clock gives equal timestamps).
  * duplicates N (integer 0..100): each event is delivered N more times (same id), queued
    right after it, each copy retried on its own.
  * aggregate_ms: page.properties_updated, page.content_updated, data_source.content_updated
    and data_source.schema_updated (and their 2022 forms) of one type, entity and workspace
    happening within aggregate_ms of the first fold into it (latest timestamp, union of
    updated_properties / updated_blocks, a property created then renamed stays "created",
    authors merged); it goes out aggregate_ms + delay_ms after the first. Other types never.
  * reorder: an event opens a batch that closes delay_ms later; events happening before it
    closes are due with it (so may wait less than delay_ms; aggregated events keep their
    own time). A batch, and what paused held when unpaused, goes out newest first, or
    shuffled by random.Random(reorder_seed) when reorder_seed is set. Arrival order is
    deterministic only with concurrency 1.
  * paused holds every queued delivery, handshakes too; drain does not wait for held ones.
  * workers keep connections alive; a kept-alive connection the receiver closed is reopened
    once without counting an attempt. sent_at is wall-clock time; the log keeps the last
    100,000 attempts per subscription (counters stay exact). Reset, DELETE and shutdown
    stop the workers at once (in-flight connections are closed).
"""

import argparse
import email.utils
import ipaddress
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import serving  # noqa: E402

import control  # noqa: E402
from api import DEFAULT_CAP, DEFAULT_TTL, Emulator, Request, Response  # noqa: E402
from common import ApiError, ControlError  # noqa: E402

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 529: "Site is overloaded"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notion-emulator"
    disable_nagle_algorithm = True
    timeout = 300

    def do_GET(self):
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = do_GET

    def log_message(self, fmt, *args):   # the stock per-request log is replaced by _log_line
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(n) if n else b""

    def _dispatch(self):
        t0 = time.monotonic()
        emu = self.server.emu
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return self._write(Response(400, b'{"error":"bad request body"}'))
        try:
            if path == "/_emulator" or path.startswith("/_emulator/"):
                status, parts = control.handle(emu, self.command, path, query, body)
                resp = emu._json(status, parts, _rid())
            else:
                req = Request(self.command, path, query, self.headers, body,
                              self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])
                resp = emu.api(req)
        except Exception:   # a bug: answer 500 and keep serving
            traceback.print_exc()
            resp = emu._error(ApiError(500, "internal_server_error", "Unexpected error occurred."),
                              _rid())
        self._write(resp)
        if not self.server.quiet:
            sys.stderr.write("%s %s %s %s %.1fms\n" % (
                self.client_address[0], self.command, path,
                "reset" if resp.fault == "reset" else resp.status, (time.monotonic() - t0) * 1000))

    def _write(self, resp):
        if resp.fault == "reset":
            self.close_connection = True
            self.server.mark_reset(self.connection)
            return
        head = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Error")),
                "Date: " + email.utils.formatdate(usegmt=True),
                "Content-Type: " + resp.content_type,
                "Content-Length: %d" % len(resp.body)]
        head.extend("%s: %s" % kv for kv in resp.headers.items())
        body = resp.body
        if resp.fault == "truncate":
            self.close_connection = True
            body = body[:len(body) // 2]
        if self.close_connection:
            head.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True


def _rid():
    return str(uuid.uuid4())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, addr, emu, quiet):
        self.emu = emu
        self.quiet = quiet
        self._resets = set()
        self._resets_lock = threading.Lock()
        super().__init__(addr, Handler)

    def mark_reset(self, sock):
        with self._resets_lock:
            self._resets.add(sock)

    def shutdown_request(self, request):
        with self._resets_lock:
            reset = request in self._resets
            self._resets.discard(request)
        if reset:   # abortive close: the client sees a TCP RST, no response
            try:
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):   # client went away: not our problem
            return
        super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def _loopback(host):
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description="Notion REST API emulator (loopback only).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--workspace", help="JSON file with initial workspace (see control.load_workspace)")
    ap.add_argument("--result-cap", type=int, default=DEFAULT_CAP)
    ap.add_argument("--cursor-ttl", type=int, default=DEFAULT_TTL)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    host = _loopback(args.host)
    if host is None:
        ap.error("refusing to listen on non-loopback host %r" % args.host)
    if args.result_cap < 1 or args.cursor_ttl < 0:
        ap.error("--result-cap must be >= 1 and --cursor-ttl >= 0")

    emu = Emulator(args.result_cap, args.cursor_ttl)
    if args.workspace:
        try:
            with open(args.workspace, encoding="utf-8") as f:
                control.load_workspace(emu, json.load(f))
        except (OSError, ValueError, ControlError) as e:
            msg = e.message if isinstance(e, ControlError) else str(e)
            sys.stderr.write("notion_emulator: cannot load workspace %s: %s\n" % (args.workspace, msg))
            return 2

    cls = Server6 if ":" in host else Server
    server = cls((host, args.port), emu, args.quiet)
    port = server.server_address[1]

    if not args.quiet:
        sys.stderr.write("notion_emulator listening on http://%s:%d\n" % (host, port))
    try:
        return serving.serve([server], args.port_file)
    finally:
        emu.hooks.reset()   # stop webhook deliveries


if __name__ == "__main__":
    sys.exit(main())
