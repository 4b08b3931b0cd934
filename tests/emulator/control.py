"""Control API of the Notion emulator (paths under /_emulator; no Notion auth).

control.handle(emu, method, path, query, body) -> (status, parts) where parts is an open
JSON object (see render.to_parts). See notion_emulator.py for the endpoint list.
Mutations report what they did to webhook subscriptions (webhooks.py) through an Emitter.
"""

import contextlib
import re
import time
import urllib.parse

import webhooks
from api import Fault
from common import (ControlError, bool_member, dashed, int_member, iso_minute, json_object,
                    norm_id, parse_iso, random_id)
from generator import generate as generate_pages
from render import open_object, page_parts, to_parts


class Parts(list):
    """Already rendered open-object parts (returned as is)."""


def _body(raw):
    return json_object(raw, lambda: ControlError("body is not valid JSON"),
                       lambda v: ControlError("body must be a JSON object"))


def _ds(emu, raw):
    h = norm_id(raw)
    ds = emu.ws.data_sources.get(h) if h else None
    if ds is None:
        raise ControlError("unknown data_source_id %r" % (raw,), 404)
    return ds


def _page(emu, raw):
    h = norm_id(urllib.parse.unquote(raw))
    page = emu.ws.pages.get(h) if h else None
    if page is None:
        raise ControlError("unknown page id %r" % (raw,), 404)
    return page


def _truth(page):
    """Ground truth page: 2025-09-03 shape, untruncated."""
    return page_parts(page, "2025", truncated=False)


def _events(emu, body):
    """The webhook events of a control mutation ("emit": false silences them)."""
    if not bool_member(body, "emit", True):
        return webhooks.SILENT
    return emu.hooks.emitter(emu.ws, emu.clock.now())


def _bulk_events(events, body):
    """Bulk generation passes page.created on only when asked to ("webhooks": true)."""
    return events if bool_member(body, "webhooks", False) else webhooks.SILENT


# ---------------------------------------------------------------- handlers (emu.lock held)

def reset(emu, body, q):
    emu.reset()
    return {"ok": True}


def health(emu, body, q):
    return {"ok": True}


def tokens(emu, body, q):
    tok = emu.ws.set_token(body.get("token"), body.get("integration_name"),
                           body.get("databases") or [], body.get("workspace_id"),
                           body.get("workspace_name"), body.get("bot_id"))
    workspace_id, workspace_name = tok.workspace(emu.ws)
    return {"ok": True, "integration_id": dashed(tok.integration_id), "bot_id": dashed(tok.bot_id),
            "workspace_id": workspace_id, "workspace_name": workspace_name,
            "databases": sorted(dashed(d) for d in tok.databases)}


def share(emu, body, q):
    emu.ws.share(body.get("token"), body.get("database_id"), bool_member(body, "shared", True))
    return {"ok": True}


def access(emu, body, q):
    """Grant or revoke the API's access to one data source ({data_source_id}) or to every
    data source of a database ({database_id}): {accessible: bool (default false),
    in_search: bool (default false; a revoked source search still returns)}."""
    if body.get("data_source_id") is not None:
        sources = [_ds(emu, body["data_source_id"])]
        db = emu.ws.databases[sources[0].db_id]
    else:
        h = norm_id(body.get("database_id"))
        db = emu.ws.databases.get(h) if h else None
        if db is None:
            raise ControlError("give a known data_source_id or database_id", 404)
        sources = [emu.ws.data_sources[i] for i in db.ds_ids]
    for ds in sources:
        emu.ws.set_access(ds, body.get("accessible", False), body.get("in_search", False))
    return {"database_id": dashed(db.id),
            "data_sources": [{"id": dashed(i), "accessible": emu.ws.data_sources[i].accessible,
                              "in_search": emu.ws.data_sources[i].in_search}
                             for i in db.ds_ids]}


def _fill_data_source(emu, ds, spec, events):
    """data_source.created, then the optional "pages" and "generate" members of a data
    source spec."""
    events.data_source("data_source.created", ds)
    now = emu.clock.now()
    for p in spec.get("pages") or []:
        events.page("page.created", emu.ws.add_page(ds, p, now))
    if spec.get("generate"):
        _generate(emu, ds, spec["generate"], _bulk_events(events, spec["generate"]))


def create_database(emu, body, q):
    if body.get("token") is not None and body["token"] not in emu.ws.tokens:
        raise ControlError("unknown token (create it with POST /_emulator/tokens first)", 404)
    events = _events(emu, body)
    db = emu.ws.create_database(body, emu.clock.now())
    events.database("database.created", db)
    specs = body.get("data_sources")
    for dsid, spec in zip(db.ds_ids, [{}] if specs is None else specs):
        _fill_data_source(emu, emu.ws.data_sources[dsid], spec, events)
    return {"database_id": dashed(db.id), "data_source_ids": [dashed(i) for i in db.ds_ids]}


def create_data_source(emu, body, q):
    h = norm_id(body.get("database_id"))
    db = emu.ws.databases.get(h) if h else None
    if db is None:
        raise ControlError("unknown database_id", 404)
    events = _events(emu, body)
    ds = emu.ws.add_data_source(db, body, emu.clock.now())
    _fill_data_source(emu, ds, body, events)
    return {"database_id": dashed(db.id), "data_source_id": dashed(ds.id)}


def edit_data_source(emu, body, q, raw):
    """Schema edit {add: {name: type | {type, ...}}, rename: {old: new}, remove: [names]}
    -> data_source.schema_updated with the changes."""
    ds = _ds(emu, urllib.parse.unquote(raw))
    events = _events(emu, body)
    changes = emu.ws.edit_schema(ds, body.get("add"), body.get("rename"), body.get("remove"))
    if changes:
        events.data_source("data_source.schema_updated", ds, updated_properties=changes)
    return {"data_source_id": dashed(ds.id), "updated_properties": changes,
            "properties": {name: {"id": p.id, "type": p.type} for name, p in ds.props.items()}}


def create_page(emu, body, q):
    ds = _ds(emu, body.get("data_source_id"))
    events = _events(emu, body)
    page = emu.ws.add_page(ds, body, emu.clock.now())
    events.page("page.created", page)
    return Parts(open_object(_truth(page)))


def list_pages(emu, body, q):
    include_trashed = q.get("include_trashed", "0") in ("1", "true")
    if q.get("data_source_id"):
        pages = list(_ds(emu, q["data_source_id"]).pages.values())
    else:
        pages = list(emu.ws.pages.values())
    pages = [p for p in pages if include_trashed or not p.in_trash]
    parts = Parts([b'{"object":"list","count":%d,"results":[' % len(pages)])
    for i, p in enumerate(pages):
        if i:
            parts.append(b",")
        parts.extend(_truth(p))
    parts.append(b"]")
    return parts


def get_page(emu, body, q, raw):
    return Parts(open_object(_truth(_page(emu, raw))))


def patch_page(emu, body, q, raw):
    page = _page(emu, raw)
    spec = dict(body)
    if spec.get("touch") is False and "last_edited_time" not in spec:
        spec["last_edited_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(page.edited))
    with _events(emu, body).watch(page):
        emu.ws.patch_page(page, spec, emu.clock.now())
    return Parts(open_object(_truth(page)))


def trash_page(emu, body, q, raw):
    page = _page(emu, raw)
    with _events(emu, body).watch(page):
        emu.ws.patch_page(page, {"in_trash": body.get("in_trash", True)}, emu.clock.now())
    return Parts(open_object(_truth(page)))


def page_content(emu, body, q, raw):
    """The page's content changed: last_edited_time moves as for an edit (last_edited_time
    and last_edited_by may be given); page.content_updated names block_ids (default: one
    new block id)."""
    page = _page(emu, raw)
    events = _events(emu, body)
    blocks = body.get("block_ids", [random_id()])
    if not isinstance(blocks, list) or not all(norm_id(b) for b in blocks):
        raise ControlError("block_ids must be a list of Notion ids")
    updated = [{"id": dashed(norm_id(b)), "type": "block"} for b in blocks]
    emu.ws.patch_page(page, {k: body[k] for k in ("last_edited_time", "last_edited_by")
                             if k in body}, emu.clock.now())
    events.page("page.content_updated", page, updated_blocks=updated)
    return {"page_id": dashed(page.id), "updated_blocks": updated,
            "last_edited_time": iso_minute(page.edited)}


def move_page(emu, body, q, raw):
    """Move the page to data source data_source_id (see Workspace.move_page) -> page.moved."""
    page = _page(emu, raw)
    target = _ds(emu, body.get("data_source_id"))
    events = _events(emu, body)
    emu.ws.move_page(page, target, emu.clock.now())
    events.page("page.moved", page)
    return Parts(open_object(_truth(page)))


def delete_page(emu, body, q, raw):
    emu.ws.delete_page(_page(emu, raw))
    return {"ok": True}


def _generate(emu, ds, body, events):
    start = body.get("created_start")
    if start is not None:
        try:
            start = parse_iso(start)[0]
        except (ValueError, TypeError):
            raise ControlError("created_start must be an ISO timestamp")
    t0 = time.monotonic()
    pages = generate_pages(emu.ws, ds, int_member(body, "count", 0, 0), body.get("seed", 0),
                           body.get("kind", "generic"), start,
                           int_member(body, "created_step_seconds", 0, 20), emu.clock.now())
    for page in pages:
        events.page("page.created", page)
    return {"data_source_id": dashed(ds.id), "count": len(pages),
            "page_ids": [dashed(p.id) for p in pages],
            "seconds": round(time.monotonic() - t0, 3)}


def generate(emu, body, q):
    ds = _ds(emu, body.get("data_source_id"))
    return _generate(emu, ds, body, _bulk_events(_events(emu, body), body))


def clock(emu, body, q):
    c = emu.clock
    if "now" in body:
        try:
            at = parse_iso(body["now"])[0]
        except (ValueError, TypeError):
            raise ControlError("now must be an ISO timestamp")
        if body.get("frozen", True):
            c.frozen, c.offset = at, 0.0
        else:
            c.frozen, c.offset = None, at - time.time()
    if "advance_seconds" in body:
        n = body["advance_seconds"]
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            raise ControlError("advance_seconds must be a number")
        if c.frozen is not None:
            c.frozen += n
        else:
            c.offset += n
    if body.get("real"):
        c.frozen, c.offset = None, 0.0
    return c.state()


def config(emu, body, q):
    cap = int_member(body, "result_cap", 1)
    ttl = int_member(body, "cursor_ttl", 0)
    latency = int_member(body, "latency_ms", 0)
    if cap is not None and cap != emu.cap:
        emu.cap = cap
        for ds in emu.ws.data_sources.values():
            ds.prerender = None
    if ttl is not None:
        emu.cursors.ttl = ttl
    if latency is not None:
        emu.latency_ms = latency
    return {"result_cap": emu.cap, "cursor_ttl": emu.cursors.ttl, "latency_ms": emu.latency_ms}


def expire_cursors(emu, body, q):
    # prerendered chains are dropped too: their first page names a now-invalid cursor
    return {"expired": emu.expire_cursors()}


def faults(emu, body, q, method):
    with emu.meta:
        if method == "DELETE":
            emu.faults = []
        elif method == "POST":
            specs = body.get("faults")
            if not isinstance(specs, list):
                raise ControlError("faults must be a list")
            emu.faults.extend(Fault(s) for s in specs)
        return {"faults": [f.describe() for f in emu.faults]}


def rate_limit(emu, body, q, method):
    with emu.meta:
        if method == "POST":
            rps = body.get("requests_per_second", 0)
            if isinstance(rps, bool) or not isinstance(rps, (int, float)) or rps < 0:
                raise ControlError("requests_per_second must be a number >= 0")
            burst = body.get("burst", max(1, int(rps)))
            if isinstance(burst, bool) or not isinstance(burst, (int, float)) or burst < 1:
                raise ControlError("burst must be a number >= 1")
            emu.rate = (float(rps), float(burst)) if rps > 0 else None
            emu.buckets = {}
        r = emu.rate
        return {"requests_per_second": r[0] if r else 0, "burst": r[1] if r else 0}


def requests(emu, body, q, method):
    with emu.meta:
        if method == "DELETE":
            emu.log = []
            return {"ok": True}
        since = int(q.get("since", "0") or 0)
        return {"requests": [e for e in emu.log if e["seq"] > since]}


def stats(emu, body, q):
    with emu.meta:
        total = sum(sum(v.values()) for v in emu.stats.values())
        return {"total": total, "endpoints": emu.stats}


def prerender(emu, body, q):
    ds = _ds(emu, body.get("data_source_id"))
    t0 = time.monotonic()
    pre = emu.prerender(ds)
    return {"data_source_id": dashed(ds.id), "pages": pre.pages,
            "responses": 1 + len(pre.by_cursor), "seconds": round(time.monotonic() - t0, 3)}


def _rx(p):
    return re.compile("^/_emulator" + p + "$")


ROUTES = [  # methods, regex, handler, pass_method
    (("POST",), _rx("/reset"), reset, False),
    (("GET",), _rx("/health"), health, False),
    (("POST",), _rx("/tokens"), tokens, False),
    (("POST",), _rx("/share"), share, False),
    (("POST",), _rx("/databases"), create_database, False),
    (("POST",), _rx("/data_sources"), create_data_source, False),
    (("PATCH",), _rx("/data_sources/([^/]+)"), edit_data_source, False),
    (("POST",), _rx("/access"), access, False),
    (("POST",), _rx("/pages"), create_page, False),
    (("GET",), _rx("/pages"), list_pages, False),
    (("GET",), _rx("/pages/([^/]+)"), get_page, False),
    (("PATCH",), _rx("/pages/([^/]+)"), patch_page, False),
    (("DELETE",), _rx("/pages/([^/]+)"), delete_page, False),
    (("POST",), _rx("/pages/([^/]+)/trash"), trash_page, False),
    (("POST",), _rx("/pages/([^/]+)/content"), page_content, False),
    (("POST",), _rx("/pages/([^/]+)/move"), move_page, False),
    (("POST",), _rx("/generate"), generate, False),
    (("GET", "POST"), _rx("/clock"), clock, False),
    (("GET", "POST"), _rx("/config"), config, False),
    (("POST",), _rx("/cursors/expire"), expire_cursors, False),
    (("GET", "POST", "DELETE"), _rx("/faults"), faults, True),
    (("GET", "POST"), _rx("/rate_limit"), rate_limit, True),
    (("GET", "DELETE"), _rx("/requests"), requests, True),
    (("GET",), _rx("/stats"), stats, False),
    (("POST",), _rx("/prerender"), prerender, False),
]


# The webhook routes lock what they need themselves: a drain waits for deliveries, and must
# not hold the emulator lock meanwhile.
ROUTED = [(r, True) for r in ROUTES] + [(r, False) for r in webhooks.ROUTES]


def handle(emu, method, path, query, raw):
    """Run one control request; returns (status, open parts)."""
    try:
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        path_known = False
        for (methods, rx, fn, pass_method), locked in ROUTED:
            m = rx.match(path)
            if m is None:
                continue
            path_known = True
            if method not in methods:
                continue  # another route may take this method on the same path
            body = _body(raw) if method in ("POST", "PATCH", "DELETE") else {}
            args = m.groups() + ((method,) if pass_method else ())
            with emu.lock if locked else contextlib.nullcontext():
                out = fn(emu, body, q, *args)
            return 200, out if isinstance(out, Parts) else open_object(to_parts(out))
        if path_known:
            raise ControlError("method %s not allowed on %s" % (method, path), 405)
        raise ControlError("unknown control endpoint %s %s" % (method, path), 404)
    except ControlError as e:
        return e.status, open_object(to_parts({"error": e.message}))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        return 400, open_object(to_parts({"error": "bad request: %s: %s" % (type(e).__name__, e)}))


def load_workspace(emu, spec):
    """Apply a --workspace JSON file: {"workspace":{id,name}, "clock":{...}, "config":{...},
    "databases":[<POST /_emulator/databases body>...], "tokens":[<POST /_emulator/tokens body>...]}."""
    if not isinstance(spec, dict):
        raise ControlError("workspace file must hold a JSON object")
    with emu.lock:
        w = spec.get("workspace") or {}
        if w:
            h = norm_id(w.get("id")) if w.get("id") else None
            emu.ws.id = h or emu.ws.id
            emu.ws.name = w.get("name", emu.ws.name)
        if spec.get("clock"):
            clock(emu, spec["clock"], {})
        if spec.get("config"):
            config(emu, spec["config"], {})
        for db in spec.get("databases") or []:
            create_database(emu, db, {})
        for tok in spec.get("tokens") or []:
            tokens(emu, tok, {})
