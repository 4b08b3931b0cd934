"""The Notion REST API side of the emulator (everything under /v1), independent of HTTP.

Emulator.api(request) -> Response. Also owns the emulator state shared with the
control API (control.py): workspace, cursors, clock, faults, rate limiter, request log.
"""

import json
import re
import threading
import time
import uuid

import webhooks
from common import (VERSIONS, ApiError, ControlError, Signer, dashed, dumps, iso_ms, jrepr,
                    json_object, norm_id, tie_hash, validation_error)
from query import Cursors, QuerySpec, compile_filter, compile_sorts, matching, page_window
from render import (bot_user, data_source_obj, database_obj, open_object,
                    page_parts, raw_value, restrict, to_parts)
from workspace import Workspace

DEFAULT_CAP = 10000
DEFAULT_TTL = 600
LOG_LIMIT = 100000

MSG_MISSING_VERSION = ("Notion-Version header failed validation: Notion-Version header should "
                       "be defined, instead was undefined.")
MSG_RATE_LIMITED = "You have been rate limited. Please try again in a few minutes."
MSG_MULTI_SOURCE = "Databases with multiple data sources are not supported in this API version."
# Not recorded in notion-api.md; the wording is the emulator's (see _single_source).
MSG_NO_SOURCES = ("Database with ID %s does not contain any data sources accessible by this "
                  "API bot.")

STATUS_ERRORS = {  # fault kind "status": HTTP status -> (code, message)
    400: ("invalid_request", "Unsupported request: emulated fault."),
    409: ("conflict_error", "Conflict occurred while saving. Please try again."),
    429: ("rate_limited", MSG_RATE_LIMITED),
    500: ("internal_server_error", "Unexpected error occurred."),
    502: ("bad_gateway", "Bad Gateway"),
    503: ("service_unavailable", "Notion is unavailable, please try again later."),
    504: ("gateway_timeout", "Gateway Timeout"),
    529: ("service_overload", "Notion is experiencing high load. Please try again later."),
}

CLOUDFLARE_HTML = (
    "<html>\r\n<head><title>%(s)d Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>%(s)d Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n")


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "host")

    def __init__(self, method, path, query, headers, body, host):
        self.method, self.path, self.query = method, path, query
        self.headers, self.body, self.host = headers, body, host


class Response:
    """status + body bytes + extra headers; fault is None, "reset" or "truncate"."""
    __slots__ = ("status", "body", "headers", "content_type", "fault")

    def __init__(self, status, body, headers=None, content_type="application/json; charset=utf-8",
                 fault=None):
        self.status, self.body, self.headers = status, body, headers or {}
        self.content_type, self.fault = content_type, fault


class Clock:
    """Emulator clock: real time (+offset) or frozen at a given instant."""

    def __init__(self):
        self.frozen = None
        self.offset = 0.0

    def now(self):
        return self.frozen if self.frozen is not None else time.time() + self.offset

    def state(self):
        return {"now": iso_ms(self.now()), "frozen": self.frozen is not None}


class Fault:
    KINDS = ("status", "reset", "slow", "html", "truncate", "expire_cursors")

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ControlError("each fault must be an object")
        try:
            self.regex = re.compile(spec.get("path", ".*"))
        except (re.error, TypeError) as e:
            raise ControlError("bad fault path regex: %s" % e)
        try:
            self.body = re.compile(spec["body"]) if "body" in spec else None
        except (re.error, TypeError) as e:
            raise ControlError("bad fault body regex: %s" % e)
        self.spec = spec
        self.method = spec.get("method")
        self.kind = spec.get("kind")
        if self.kind not in self.KINDS:
            raise ControlError("fault kind must be one of %s" % ", ".join(self.KINDS))
        self.status = spec.get("status", 429 if self.kind == "status" else 502)
        if self.kind == "status" and self.status not in STATUS_ERRORS:
            raise ControlError("fault status must be one of %s" % sorted(STATUS_ERRORS))
        ints = {}
        for k, default in (("retry_after", None), ("delay_ms", 0), ("count", 1), ("skip", 0),
                           ("every", 0)):
            v = spec.get(k, default)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ControlError("fault %s must be a non-negative integer" % k)
            ints[k] = v
        self.retry_after, self.delay_ms = ints["retry_after"], ints["delay_ms"]
        self.count, self.skip, self.every = ints["count"], ints["skip"], ints["every"]
        self.seen = 0
        self.fired = 0

    def matches(self, method, path, body=b""):
        if self.body is not None and not self.body.search(
                body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""):
            return False
        return (self.method is None or self.method.upper() == method) and self.regex.search(path)

    def fire(self):
        """Count one matching request; True if this one is affected."""
        n = self.seen
        self.seen += 1
        if n < self.skip or (self.count and self.fired >= self.count):
            return False
        if self.every and (n - self.skip + 1) % self.every:
            return False
        self.fired += 1
        return True

    def describe(self):
        d = dict(self.spec)
        d.update(seen=self.seen, fired=self.fired)
        return d


class Ctx:
    """Per-request context of a Notion API call."""

    def __init__(self, req, version, vkey, tok):
        self.req, self.version, self.vkey, self.tok = req, version, vkey, tok
        self.endpoint = "unknown"
        self.parsed = None
        self._body = None
        self.rate_ok = True       # decided on arrival (Emulator.api)

    def body(self):
        if self._body is None:
            self._body = parse_body(self.req.body)
        return self._body

    def params(self):
        from urllib.parse import parse_qsl
        return parse_qsl(self.req.query, keep_blank_values=True)

    def param(self, name):
        for k, v in self.params():
            if k == name:
                return v
        return None

    def filter_properties(self):
        vals = [v for k, v in self.params() if k in ("filter_properties", "filter_properties[]")]
        return vals or None


def parse_body(raw):
    return json_object(
        raw, lambda: ApiError(400, "invalid_json", "Error parsing JSON body."),
        lambda v: validation_error("body failed validation: body should be an object, instead "
                                   "was `%s`." % jrepr(v)))


def envelope(results, next_cursor, has_more, type_name, request_status=None, type_value="{}"):
    """Open (no closing brace) list envelope parts around rendered results."""
    parts = [b'{"object":"list","results":[']
    for i, r in enumerate(results):
        if i:
            parts.append(b",")
        parts.extend(r)
    tail = '],"next_cursor":%s,"has_more":%s,"type":"%s","%s":%s' % (
        dumps(next_cursor), "true" if has_more else "false", type_name, type_name, type_value)
    if request_status is not None:
        tail += ',"request_status":' + dumps(request_status)
    parts.append(tail.encode())
    return parts


def merge_parts(parts):
    """Merge adjacent bytes parts (fewer pieces on the hot path)."""
    out, buf = [], []
    for p in parts:
        if p.__class__ is bytes:
            buf.append(p)
        else:
            if buf:
                out.append(b"".join(buf))
                buf = []
            out.append(p)
    if buf:
        out.append(b"".join(buf))
    return out


class Prerender:
    """Rendered default query chain of one data source (2025-09-03, no filter/sorts, size 100)."""

    def __init__(self, first, by_cursor, pages):
        self.first, self.by_cursor, self.pages = first, by_cursor, pages


# ---------------------------------------------------------------- the emulator

class Emulator:
    def __init__(self, result_cap=DEFAULT_CAP, cursor_ttl=DEFAULT_TTL):
        self.lock = threading.RLock()     # workspace, cursors, caches
        self.meta = threading.Lock()      # faults, rate limiter, request log, stats
        self.default_cap = result_cap
        self.default_ttl = cursor_ttl
        self.hooks = webhooks.Hub()       # webhook subscriptions and their delivery threads
        self.reset()

    def reset(self):
        with self.lock, self.meta:
            self.hooks.reset()
            self.ws = Workspace()
            self.clock = Clock()
            self.cursors = Cursors(self.default_ttl)
            self.cap = self.default_cap
            self.latency_ms = 0
            self.faults = []
            self.rate = None            # (requests_per_second, burst)
            self.buckets = {}
            self.log = []
            self.seq = 0
            self.stats = {}

    # ------------------------------------------------------------ entry point
    def api(self, req):
        received = time.monotonic()
        rid = str(uuid.uuid4())
        version = req.headers.get("Notion-Version")
        token = _bearer(req.headers.get("Authorization"))
        with self.lock:
            tok = self.ws.tokens.get(token) if token else None
        fault = self._fault_for(req)
        if fault is not None and fault.kind == "expire_cursors":
            self.expire_cursors()   # then answered normally: a start_cursor now fails for real
        # Notion limits the requests a token *sends*: take the limiter's token
        # now, on arrival, not after the latency and "slow" delays below (a
        # slow answer must not make the next, well-spaced request look early).
        # Same conditions as before: a valid version and token, and no fault
        # that answers instead of the API.
        rate_ok = True
        if (tok is not None and VERSIONS.get(version) is not None
                and (fault is None or fault.kind not in ("status", "html", "reset"))):
            rate_ok = self._rate_ok(tok.token)
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        ctx = Ctx(req, version, VERSIONS.get(version), tok)
        ctx.rate_ok = rate_ok
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_ms / 1000.0)
            if fault is not None and fault.kind in ("status", "html", "reset"):
                resp = self._fault_response(fault, rid)
            else:
                resp = self._json(200, self._route(ctx), rid)
                if fault is not None and fault.kind == "truncate":
                    resp.fault = "truncate"
        except ApiError as e:
            resp = self._error(e, rid)
        self._record(req, ctx, tok is not None, resp, fault, received)
        return resp

    def _route(self, ctx):
        if ctx.version is None:
            raise ApiError(400, "missing_version", MSG_MISSING_VERSION)
        if ctx.vkey is None:
            raise validation_error(
                "Notion-Version header failed validation: Notion-Version header should be one of "
                "%s, instead was %s." % (", ".join('"%s"' % v for v in VERSIONS),
                                         json.dumps(ctx.version)))
        if ctx.tok is None:
            raise ApiError(401, "unauthorized", "API token is invalid.")
        if not ctx.rate_ok:
            raise ApiError(429, "rate_limited", MSG_RATE_LIMITED, headers={"Retry-After": "1"})
        for method, rx, name, handler, versions in ROUTES:
            m = rx.match(ctx.req.path)
            if m and method == ctx.req.method and ctx.vkey in versions:
                ctx.endpoint = "%s %s" % (method, name)
                return handler(self, ctx, *m.groups())
        raise ApiError(400, "invalid_request_url", "Invalid request URL.")

    def expire_cursors(self):
        """Invalidate every cursor issued so far (and the prerendered chains naming them);
        returns how many there were."""
        with self.lock:
            n = len(self.cursors.map)
            self.cursors.expire_all()
            for ds in self.ws.data_sources.values():
                ds.prerender = None
            return n

    # ------------------------------------------------------------ responses
    def _json(self, status, parts, rid, headers=None):
        """parts: an *open* object (list of bytes/FileRef without the closing brace)."""
        sep = b"" if parts[-1] == b"{" else b","
        body = Signer(self.clock.now()).join(parts, sep + b'"request_id":"' + rid.encode() + b'"}')
        h = {"x-notion-request-id": rid}
        if headers:
            h.update(headers)
        return Response(status, body, h)

    def _error(self, e, rid):
        return self._json(e.status, open_object([dumps(e.body()).encode()]), rid, e.headers)

    def _fault_response(self, fault, rid):
        if fault.kind == "reset":
            return Response(0, b"", fault="reset")
        if fault.kind == "html":
            body = (CLOUDFLARE_HTML % {"s": fault.status}).encode()
            return Response(fault.status, body, {"cf-ray": "%016x-SJC" % tie_hash(rid),
                                                 "Server": "cloudflare"},
                            content_type="text/html")
        code, msg = STATUS_ERRORS[fault.status]
        headers = {}
        if fault.status == 429 or fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 1)
        return self._error(ApiError(fault.status, code, msg, headers=headers), rid)

    # ------------------------------------------------------------ faults, rate limit, log
    def _fault_for(self, req):
        with self.meta:
            for f in self.faults:
                if f.matches(req.method, req.path, req.body) and f.fire():
                    return f
        return None

    def _rate_ok(self, token):
        with self.meta:
            if not self.rate:
                return True
            rate, burst = self.rate
            now = time.monotonic()
            level, last = self.buckets.get(token, (float(burst), now))
            level = min(float(burst), level + (now - last) * rate)
            if level >= 1.0:
                self.buckets[token] = (level - 1.0, now)
                return True
            self.buckets[token] = (level, now)
            return False

    def _record(self, req, ctx, token_ok, resp, fault, received):
        try:
            body = json.loads(req.body) if req.body and req.body.strip() else None
        except ValueError:
            body = None
        status = None if resp.fault == "reset" else resp.status
        with self.meta:
            self.seq += 1
            self.log.append({"seq": self.seq, "method": req.method, "path": req.path,
                             "query": req.query, "notion_version": ctx.version,
                             "token_ok": token_ok, "body": body, "status": status,
                             "fault": fault.kind if fault else None,
                             "received": received, "answered": time.monotonic()})
            if len(self.log) > LOG_LIMIT:
                del self.log[:len(self.log) - LOG_LIMIT]
            per = self.stats.setdefault(ctx.endpoint, {})
            key = "reset" if status is None else str(status)
            per[key] = per.get(key, 0) + 1

    # ------------------------------------------------------------ lookups (caller holds lock)
    def _not_found(self, ctx, kind, h):
        return ApiError(404, "object_not_found",
                        "Could not find %s with ID: %s. Make sure the relevant pages and databases "
                        "are shared with your integration \"%s\"." % (kind, dashed(h), ctx.tok.name),
                        {"integration_id": dashed(ctx.tok.integration_id)})

    @staticmethod
    def _path_id(raw, name):
        from urllib.parse import unquote
        h = norm_id(unquote(raw))
        if not h:
            raise validation_error("path failed validation: path.%s should be a valid uuid, instead "
                                   "was `%s`." % (name, json.dumps(unquote(raw))))
        return h

    def _database(self, ctx, raw):
        h = self._path_id(raw, "database_id")
        db = self.ws.databases.get(h)
        if db is None or not ctx.tok.can_read(h):
            raise self._not_found(ctx, "database", h)
        return db

    def _data_source(self, ctx, raw):
        h = self._path_id(raw, "data_source_id")
        ds = self.ws.data_sources.get(h)
        if ds is None or not ctx.tok.can_read(ds.db_id, ds):
            raise self._not_found(ctx, "data_source", h)
        return ds

    def _page(self, ctx, raw):
        h = self._path_id(raw, "page_id")
        page = self.ws.pages.get(h)
        if page is None or not ctx.tok.can_read(page.ds.db_id, page.ds):
            raise self._not_found(ctx, "page", h)
        return page

    def _single_source(self, db):
        """The one data source a 2022-06-28 database request works on. Counted as the bot
        sees the database: its accessible data sources. None reachable (a linked database,
        or sources the integration lost access to) -> 400 validation_error without
        additional_data; two or more -> the documented multi-source error."""
        ids = db.accessible_ids(self.ws)
        if not ids:
            raise validation_error(MSG_NO_SOURCES % dashed(db.id))
        if len(ids) > 1:
            raise validation_error(MSG_MULTI_SOURCE, {
                "error_type": "multiple_data_sources_for_database", "database_id": dashed(db.id),
                "child_data_source_ids": [dashed(i) for i in ids],
                "minimum_api_version": "2025-09-03"})
        return self.ws.data_sources[ids[0]]

    # ------------------------------------------------------------ endpoints
    def get_database(self, ctx, raw):
        with self.lock:
            db = self._database(ctx, raw)
            ds = self._single_source(db) if ctx.vkey == "2022" else None
            return open_object(to_parts(database_obj(self.ws, db, ctx.vkey, ds)))

    def get_data_source(self, ctx, raw):
        with self.lock:
            ds = self._data_source(ctx, raw)
            return open_object(to_parts(data_source_obj(self.ws, ds, ctx.vkey)))

    def query_database(self, ctx, raw):
        with self.lock:
            ds = self._single_source(self._database(ctx, raw))
        return self._query(ctx, ds)

    def query_data_source(self, ctx, raw):
        with self.lock:
            ds = self._data_source(ctx, raw)
        return self._query(ctx, ds)

    def get_page(self, ctx, raw):
        with self.lock:
            page = self._page(ctx, raw)
            fp = ctx.filter_properties()
            only = restrict(page.ds, fp) if fp else None
            return open_object(page_parts(page, ctx.vkey, True, only))

    def get_property(self, ctx, raw_page, raw_prop):
        from urllib.parse import unquote
        with self.lock:
            page = self._page(ctx, raw_page)
            prop = None
            for cand in (raw_prop, unquote(raw_prop), unquote(unquote(raw_prop))):
                prop = prop or page.ds.find_prop(cand)
            if prop is None:
                raise ApiError(404, "object_not_found",
                               "Could not find property with ID: %s." % unquote(raw_prop))
            t, value = prop.type, raw_value(prop, page)
            if t not in ("title", "rich_text", "relation", "people", "rollup"):
                return open_object(to_parts({"object": "property_item", "id": prop.id, "type": t,
                                             t: value}))
            size = _page_size(ctx.param("page_size"), "query.page_size")
            cursor = ctx.param("start_cursor")
            fp = ("prop", page.id, prop.id)
            now = self.clock.now()
            offset = self.cursors.lookup(cursor, fp, now).returned if cursor is not None else 0
            if t == "rollup":
                items = value["array"] if value["type"] == "array" else []
                summary = value
            else:
                items, summary = value, {}
            chunk = items[offset:offset + size]
            has_more = offset + size < len(items)
            next_cursor = self.cursors.issue(fp, None, offset + size, now) if has_more else None
        results = []
        for item in chunk:
            it = item.get("type") if t == "rollup" else t
            inner = item.get(it) if t == "rollup" else item
            results.append(to_parts({"object": "property_item", "type": it, "id": prop.id,
                                     it: inner}))
        next_url = None
        if has_more:
            next_url = "http://%s/v1/pages/%s/properties/%s?start_cursor=%s&page_size=%d" % (
                ctx.req.host, page.id, prop.id, next_cursor, size)
        item = dumps({"id": prop.id, "next_url": next_url, "type": t, t: summary})
        return envelope(results, next_cursor, has_more, "property_item", type_value=item)

    def search(self, ctx):
        body = ctx.body()
        _no_unknown_keys(body, ("query", "filter", "sort", "start_cursor", "page_size"))
        size = _page_size(body.get("page_size"), "body.page_size")
        q = body.get("query", "")
        if not isinstance(q, str):
            raise validation_error("body failed validation: body.query should be a string, instead "
                                   "was `%s`." % jrepr(q))
        kinds = self._search_kinds(ctx, body.get("filter"))
        direction = _search_direction(body.get("sort"))
        cursor = _cursor_param(body)
        fp = ("search", ctx.tok.bot_id, q.lower(), tuple(kinds), direction)
        with self.lock:
            now = self.clock.now()
            entry = self.cursors.lookup(cursor, fp, now) if cursor is not None else None
            rows = self._search_rows(ctx, q.lower(), kinds, direction)
            keys = [k for k, _ in rows]
            items = [obj for _, obj in rows]
            chosen, last_key, total, state = page_window(keys, items, entry, size, float("inf"))
            next_cursor = self.cursors.issue(fp, last_key, total, now) if state == "more" else None
            results = [page_parts(o, ctx.vkey) if kind == "page" else to_parts(o)
                       for kind, o in (self._search_render(ctx, x) for x in chosen)]
        t = "page_or_database" if ctx.vkey == "2022" else "page_or_data_source"
        return envelope(results, next_cursor, state == "more", t)

    def users_me(self, ctx):
        with self.lock:
            return open_object(to_parts(bot_user(self.ws, ctx.tok)))

    # ------------------------------------------------------------ query internals
    def _query(self, ctx, ds):
        body = ctx.body()
        allowed = ["filter", "sorts", "start_cursor", "page_size", "in_trash"]
        if ctx.vkey != "2026":
            allowed.append("archived")
        if ctx.vkey != "2022":
            allowed.append("result_type")
        _no_unknown_keys(body, allowed)
        size = _page_size(body.get("page_size"), "body.page_size")
        in_trash = body.get("in_trash", body.get("archived", False))
        if not isinstance(in_trash, bool):
            raise validation_error("body failed validation: body.in_trash should be a boolean, "
                                   "instead was `%s`." % jrepr(in_trash))
        cursor = _cursor_param(body)
        fprops = ctx.filter_properties()
        if (ctx.vkey == "2025" and not fprops and size == 100 and not in_trash
                and set(body) <= {"start_cursor", "page_size", "in_trash"}):
            served = self._serve_prerendered(ds, cursor)
            if served is not None:
                return served
        spec = self._spec(ds, body, in_trash)
        with self.lock:
            now = self.clock.now()
            entry = self.cursors.lookup(cursor, spec.fp, now) if cursor is not None else None
            keys, items = matching(ds, spec)
            only = restrict(ds, fprops) if fprops else None
            return self._query_page(ds, spec, keys, items, entry, size, ctx.vkey, only, now)[0]

    def _spec(self, ds, body, in_trash):
        used_clock = []

        def clock():
            used_clock.append(1)
            return self.clock.now()

        with self.lock:
            f = body.get("filter")
            pred = compile_filter(f, ds, clock) if f is not None else None
            key = compile_sorts(body.get("sorts"), ds)
        fp = ("query", ds.id, json.dumps(f, sort_keys=True) if f is not None else None,
              json.dumps(body.get("sorts"), sort_keys=True) if body.get("sorts") else None, in_trash)
        if pred is None:
            full = (lambda p: p.in_trash == in_trash)
        else:
            full = (lambda p: p.in_trash == in_trash and pred(p))
        cache_key = fp + ((int(self.clock.now()) // 60,) if used_clock else ())
        return QuerySpec(fp, full, key, cache_key)

    def _query_page(self, ds, spec, keys, items, entry, size, vkey, only, now, pinned=False):
        """Render one response of a query chain; returns (open parts, next cursor)."""
        rows, last_key, total, state = page_window(keys, items, entry, size, self.cap)
        next_cursor = None
        if state == "more":
            next_cursor = self.cursors.issue(spec.fp, last_key, total, now, pinned)
        status = {"type": "complete"} if state != "capped" else \
            {"type": "incomplete", "incomplete_reason": "query_result_limit_reached"}
        t = "page_or_database" if vkey == "2022" else "page_or_data_source"
        results = [page_parts(p, vkey, True, only) for p in rows]
        return envelope(results, next_cursor, state == "more", t, status), next_cursor

    def prerender(self, ds):
        """Render the default query chain of ds once (caller holds the lock)."""
        spec = self._spec(ds, {}, False)
        keys, items = matching(ds, spec)
        now = self.clock.now()
        first, by_cursor, cursor, entry = None, {}, None, None
        while True:
            parts, next_cursor = self._query_page(ds, spec, keys, items, entry, 100, "2025", None,
                                                  now, pinned=True)
            parts = merge_parts(parts)
            if cursor is None:
                first = parts
            else:
                by_cursor[cursor] = parts
            if next_cursor is None:
                break
            cursor, entry = next_cursor, self.cursors.map[next_cursor]
        ds.prerender = Prerender(first, by_cursor, len(items))
        return ds.prerender

    def _serve_prerendered(self, ds, cursor):
        with self.lock:
            pre = ds.prerender
            if pre is None:
                return None
            if cursor is None:
                return pre.first
            return pre.by_cursor.get(cursor)

    # ------------------------------------------------------------ search internals
    def _search_kinds(self, ctx, f):
        objects = ["page", "database" if ctx.vkey == "2022" else "data_source"]
        if f is None:
            return objects
        if not isinstance(f, dict) or f.get("property") != "object" or "value" not in f:
            raise validation_error("body failed validation: body.filter.property should be "
                                   "`\"object\"`, instead was `%s`." % jrepr(
                                       f.get("property") if isinstance(f, dict) else f))
        if f["value"] not in objects:
            raise validation_error("body failed validation: body.filter.value should be `\"%s\"` or "
                                   "`\"%s\"`, instead was `%s`." % (objects[0], objects[1],
                                                                   jrepr(f["value"])))
        return [f["value"]]

    def _search_rows(self, ctx, q, kinds, direction):
        sign = -1 if direction == "descending" else 1
        rows = []
        for db_id in ctx.tok.databases:
            db = self.ws.databases.get(db_id)
            if db is None:
                continue
            # The query matches the DATABASE title, also for data source results
            # (notion-api.md 1.1); a data source result carries its own name as title.
            found = self.ws.data_sources
            visible = db.searchable_ids(self.ws)
            if kinds != ["page"] and q in db.title.lower():
                if ctx.vkey == "2022":
                    if len(visible) == 1:
                        rows.append(((sign * db.edited, tie_hash(db.id), db.id),
                                     ("database", (db, found[visible[0]]))))
                else:
                    for dsid in visible:
                        rows.append(((sign * db.edited, tie_hash(dsid), dsid),
                                     ("data_source", found[dsid])))
            if "page" in kinds:
                for dsid in db.accessible_ids(self.ws):
                    for p in self.ws.data_sources[dsid].pages.values():
                        if not p.in_trash and (not q or q in p.title().lower()):
                            rows.append(((sign * p.edited, p.tie, p.id), ("page", p)))
        rows.sort(key=lambda r: r[0])
        return rows

    def _search_render(self, ctx, item):
        kind, obj = item
        if kind == "page":
            return "page", obj
        if kind == "database":
            return "database", database_obj(self.ws, obj[0], ctx.vkey, obj[1])
        return "data_source", data_source_obj(self.ws, obj, ctx.vkey)


# ---------------------------------------------------------------- helpers

def _bearer(value):
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _no_unknown_keys(body, allowed):
    for k, v in body.items():
        if k not in allowed:
            raise validation_error("body failed validation: body.%s should be not present, instead "
                                   "was `%s`." % (k, jrepr(v)))


def _page_size(value, path):
    if value is None:
        return 100
    if isinstance(value, str) and path.startswith("query."):
        try:
            value = int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error("%s failed validation: %s should be a number, instead was `%s`."
                               % (path.split(".")[0], path, jrepr(value)))
    if value > 100:
        raise validation_error("%s failed validation: %s should be ≤ `100`, instead was `%d`."
                               % (path.split(".")[0], path, value))
    if value < 1:
        raise validation_error("%s failed validation: %s should be ≥ `1`, instead was `%d`."
                               % (path.split(".")[0], path, value))
    return value


def _cursor_param(body):
    c = body.get("start_cursor")
    if c is not None and not isinstance(c, str):
        raise validation_error("body failed validation: body.start_cursor should be a string, "
                               "instead was `%s`." % jrepr(c))
    return c


def _search_direction(sort):
    if sort is None:
        return "descending"
    if (not isinstance(sort, dict) or sort.get("timestamp") != "last_edited_time"
            or sort.get("direction") not in ("ascending", "descending")):
        raise validation_error("body failed validation: body.sort should be `{\"timestamp\": "
                               "\"last_edited_time\", \"direction\": \"ascending\"|\"descending\"}`, "
                               "instead was `%s`." % jrepr(sort))
    return sort["direction"]


def _rx(pattern):
    return re.compile("^" + pattern + "$")


ALL, NEW, OLD = ("2022", "2025", "2026"), ("2025", "2026"), ("2022",)
ROUTES = [  # method, path regex, endpoint name, handler, versions
    ("GET", _rx(r"/v1/databases/([^/]+)"), "/v1/databases/{id}", Emulator.get_database, ALL),
    ("POST", _rx(r"/v1/databases/([^/]+)/query"), "/v1/databases/{id}/query",
     Emulator.query_database, OLD),
    ("GET", _rx(r"/v1/data_sources/([^/]+)"), "/v1/data_sources/{id}", Emulator.get_data_source, NEW),
    ("POST", _rx(r"/v1/data_sources/([^/]+)/query"), "/v1/data_sources/{id}/query",
     Emulator.query_data_source, NEW),
    ("GET", _rx(r"/v1/pages/([^/]+)"), "/v1/pages/{id}", Emulator.get_page, ALL),
    ("GET", _rx(r"/v1/pages/([^/]+)/properties/([^/]+)"), "/v1/pages/{id}/properties/{property_id}",
     Emulator.get_property, ALL),
    ("POST", _rx(r"/v1/search"), "/v1/search", Emulator.search, ALL),
    ("GET", _rx(r"/v1/users/me"), "/v1/users/me", Emulator.users_me, ALL),
]
