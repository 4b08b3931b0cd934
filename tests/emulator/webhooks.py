"""Integration webhooks of the Notion emulator: subscriptions, events and their signed delivery.

A subscription (POST /_emulator/webhooks) belongs to one integration: one token (an internal
integration) or several (a public integration's OAuth tokens, one per installing workspace).
Creating it sends the verification handshake {"verification_token": "secret_..."} to its URL;
POST /_emulator/webhooks/{id}/verify with that token activates it (the operator pasting the
token into Notion's UI). Control mutations (control.py) then emit events through an Emitter;
each active subscription renders them for its API version, keeps those its tokens can read
and its event_types name, and queues them; `concurrency` worker threads of the subscription
POST them, signed, and retry failures with exponential backoff.

The endpoints, the events each control mutation emits, the envelope and the choices made
where Notion's documentation is silent are listed in notion_emulator.py. Here: the model.
  * Emitter: the events of one mutation; it renders them per subscription (api version,
    event_types, the tokens that can read the entity grouped by workspace) into Events.
  * Hub.enqueue: aggregation (open Events take merges until their window closes), delay,
    reorder batches and duplicates become Deliveries on the subscription's heap, ordered by
    (due time, tiebreak): the queue order, its reverse, or a seeded shuffle.
  * Hub._work (concurrency threads per subscription): pops due deliveries, renders the body
    for the attempt number, signs it, POSTs it with a kept-alive connection (Poster), logs
    the attempt and schedules the retry. One condition guards every subscription; control
    calls and workers never hold it across network I/O.
"""

import collections
import contextlib
import hashlib
import heapq
import hmac
import http.client
import ipaddress
import random
import re
import secrets
import socket
import ssl
import string
import threading
import time
import urllib.parse
import uuid

from common import ControlError, bool_member, dashed, dumps, int_member, iso_ms, norm_id

API_VERSIONS = {"2025-09-03": "2025", "2026-03-11": "2026", "2022-06-28": "2022"}

EVENT_TYPES = (
    "page.content_updated", "page.created", "page.deleted", "page.undeleted", "page.moved",
    "page.properties_updated", "page.locked", "page.unlocked",
    "page.transcription_block.transcript_deleted",
    "database.created", "database.deleted", "database.undeleted", "database.moved",
    "database.content_updated", "database.schema_updated",
    "data_source.content_updated", "data_source.schema_updated", "data_source.created",
    "data_source.deleted", "data_source.moved", "data_source.undeleted",
    "comment.created", "comment.updated", "comment.deleted",
    "file_upload.created", "file_upload.completed", "file_upload.expired",
    "file_upload.upload_failed", "view.created", "view.updated", "view.deleted")

AGGREGATED = frozenset((
    "page.properties_updated", "page.content_updated", "data_source.content_updated",
    "data_source.schema_updated", "database.content_updated", "database.schema_updated"))

OLD_FORMS = {"data_source.content_updated": "database.content_updated",
             "data_source.schema_updated": "database.schema_updated"}
"""2022-06-28 form of data source events (the others are not sent to such subscriptions)."""

MAX_ATTEMPTS = 8
LOG_LIMIT = 100000
USER_AGENT = "notion-api"

# ---------------------------------------------------------------- settings
# Each check(body, name, default) -> the validated value of a subscription setting.

def _ms(body, key, default):
    return int_member(body, key, 0, default)


def _url(body, key, default):
    url = body.get(key, default)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port   # a malformed port raises ValueError
        host = parts.hostname
        loopback = host == "localhost" or bool(host) and ipaddress.ip_address(host).is_loopback
    except (ValueError, TypeError, AttributeError):
        parts, loopback = None, False
    if not loopback or parts.scheme not in ("http", "https"):
        raise ControlError("url must be an http or https URL on a loopback host, not %r" % (url,))
    return url


def _event_types(body, key, default):
    types = body.get(key, default)
    if types is None:
        return None
    if not isinstance(types, list) or not all(t in EVENT_TYPES for t in types):
        raise ControlError("event_types must be a list of Notion event types (%s)"
                           % ", ".join(EVENT_TYPES))
    return frozenset(types)


def _cafile(body, key, default):
    path = body.get(key, default)
    if path is not None and not isinstance(path, str):
        raise ControlError("cafile must be a path")
    return path


SETTINGS = {  # name: (default, check); PATCH takes any of these, POST also CREATE_ONLY
    "url": (None, _url),
    "event_types": (None, _event_types),
    "delay_ms": (0, _ms),
    "aggregate_ms": (0, _ms),
    "retry_base_ms": (1000, _ms),
    "max_attempts": (MAX_ATTEMPTS, lambda b, k, d: int_member(b, k, 1, d, MAX_ATTEMPTS)),
    "timeout_ms": (10000, lambda b, k, d: int_member(b, k, 1, d)),
    "duplicates": (0, lambda b, k, d: int_member(b, k, 0, d, 100)),
    "reorder": (False, bool_member),
    "reorder_seed": (None, lambda b, k, d: int_member(b, k, -2 ** 63, d)),
    "paused": (False, bool_member),
    "insecure": (False, bool_member),
    "cafile": (None, _cafile),
}
CREATE_ONLY = ("token", "tokens", "api_version", "public", "concurrency")


def _ssl_context(url, insecure, cafile):
    if urllib.parse.urlsplit(url).scheme != "https":
        return None
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise ControlError("cannot use cafile %r: %s" % (cafile, e))
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def sign(token, body):
    """X-Notion-Signature value of a body sent with a verification token."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def _person(user_id):
    return {"id": user_id, "type": "person"}


# ---------------------------------------------------------------- events

class Event:
    """One event of one subscription for one workspace; its duplicate copies share it."""

    __slots__ = ("id", "timestamp", "workspace", "type", "authors", "accessible_by", "entity",
                 "data", "agg_key", "agg_until")

    def __init__(self, etype, entity, data, authors, timestamp, workspace, accessible_by=None):
        self.id = str(uuid.uuid4())
        self.type, self.entity, self.data, self.authors = etype, entity, data, authors
        self.timestamp, self.workspace, self.accessible_by = timestamp, workspace, accessible_by
        self.agg_key = self.agg_until = None

    def body(self, sub, attempt):
        d = {"id": self.id, "timestamp": iso_ms(self.timestamp), "workspace_id": self.workspace[0],
             "workspace_name": self.workspace[1], "subscription_id": sub.id,
             "integration_id": sub.integration_id, "type": self.type, "authors": self.authors}
        if self.accessible_by is not None:
            d["accessible_by"] = self.accessible_by
        d.update(attempt_number=attempt, api_version=sub.api_version, entity=self.entity,
                 data=self.data)
        return dumps(d).encode()

    def merge(self, later):
        """Fold a later event of the same type, entity and workspace into this one."""
        self.timestamp = max(self.timestamp, later.timestamp)
        self.authors = _merged(self.authors + later.authors)
        for key, value in later.data.items():
            mine = self.data.get(key)
            if key in ("updated_properties", "updated_blocks") and isinstance(mine, list):
                value = _merged(mine + value)
            self.data[key] = value


def _merged(items):
    """items (ids, or objects with an id) once each, in order of first appearance. A later
    schema change ({id, name, action}) of a property replaces the earlier one, except that a
    property created and then renamed stays "created"."""
    out = collections.OrderedDict()
    for x in items:
        key = x.get("id") if isinstance(x, dict) else x
        old = out.get(key)
        if isinstance(old, dict) and (old.get("action"), x.get("action")) == ("created", "updated"):
            x = dict(x, action="created")
        out[key] = x
    return list(out.values())


def _shape(kind, obj, etype, vkey, ws):
    """(type as sent, entity, data.parent) of an event for an API version, or None if that
    version has no such event."""
    if kind == "page":
        parent = {"id": dashed(obj.ds.db_id), "type": "database"}
        if vkey != "2022":
            parent["data_source_id"] = dashed(obj.ds.id)
        return etype, {"id": dashed(obj.id), "type": "page"}, parent
    if kind == "data_source" and vkey != "2022":
        return etype, {"id": dashed(obj.id), "type": "data_source"}, \
            {"id": dashed(obj.db_id), "type": "database"}
    if kind == "data_source":   # 2022-06-28: the old database form, if there is one
        etype, obj = OLD_FORMS.get(etype), ws.databases[obj.db_id]
        if etype is None:
            return None
    return etype, {"id": dashed(obj.id), "type": "database"}, \
        {"id": dashed(obj.parent_page_id), "type": "page"}


class Emitter:
    """The events of one control mutation at emulator time `now` (the caller holds the
    emulator lock). An Emitter without a hub (SILENT) drops everything."""

    def __init__(self, hub, ws, now):
        self.hub, self.ws, self.now = hub, ws, now
        self.mono = time.monotonic()

    def page(self, etype, page, **data):
        author = page.created_by if etype == "page.created" else page.edited_by
        self._emit("page", page, (page.ds.db_id, page.ds), etype, data, [_person(author)])

    def data_source(self, etype, ds, **data):
        self._emit("data_source", ds, (ds.db_id, ds), etype, data)

    def database(self, etype, db):
        self._emit("database", db, (db.id, None), etype, {})

    @contextlib.contextmanager
    def watch(self, page):
        """Emit what an edit of the page changed: page.properties_updated (the ids of the
        properties whose values changed), page.deleted/undeleted, page.locked/unlocked."""
        values, trashed, locked = dict(page.values), page.in_trash, page.is_locked
        yield
        gone = object()
        changed = [p.id for name, p in page.ds.props.items()
                   if page.values.get(name, gone) != values.get(name, gone)]
        if changed:
            self.page("page.properties_updated", page, updated_properties=changed)
        if page.in_trash != trashed:
            self.page("page.deleted" if page.in_trash else "page.undeleted", page)
        if page.is_locked != locked:
            self.page("page.locked" if page.is_locked else "page.unlocked", page)

    def _emit(self, kind, obj, scope, etype, data, authors=None):
        """authors None: the workspace's default user."""
        if self.hub is None or not self.hub.subs:
            return
        authors = authors or [_person(dashed(self.ws.default_user))]
        with self.hub.cond:
            for sub in self.hub.subs.values():
                if sub.state != "active":
                    continue
                shape = _shape(kind, obj, etype, sub.vkey, self.ws)
                if shape is None or not sub.wants(shape[0]):
                    continue
                for workspace, bots in sub.readers(self.ws, scope):
                    ev = Event(shape[0], shape[1], dict({"parent": shape[2]}, **data),
                               [dict(a) for a in authors], self.now, workspace,
                               [{"id": b, "type": "bot"} for b in bots] if sub.public else None)
                    self.hub.enqueue(sub, ev, self.mono)


SILENT = Emitter(None, None, 0)


# ---------------------------------------------------------------- subscriptions

class Delivery:
    """One copy of an event (or the handshake, event None) on its way, at attempt n."""

    __slots__ = ("event", "attempt")

    def __init__(self, event, attempt=1):
        self.event, self.attempt = event, attempt


class Subscription:
    def __init__(self, hub, tokens, integration_id, settings, api_version, public, concurrency):
        self.hub = hub
        self.id = str(uuid.uuid4())
        self.integration_id = integration_id
        self.tokens = tokens
        self.public = public
        self.api_version, self.vkey = api_version, API_VERSIONS[api_version]
        self.concurrency = concurrency
        self.verification_token = "secret_" + "".join(
            secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
        self.state = "pending"
        self.rng = random.Random(settings["reorder_seed"])
        self.queue = []            # heap of (due, tiebreak, seq, Delivery)
        self.seq = 0
        self.open = {}             # aggregation key -> Event still taking merges
        self.batch_close = float("-inf")
        self.in_flight = 0
        self.conns = set()         # connections of deliveries in flight (closed on stop)
        self.stopped = False
        self.log = []
        self.log_seq = 0
        self.counters = dict.fromkeys(("events", "aggregated", "delivered", "failed_attempts",
                                       "dropped"), 0)
        self.verification = {"attempts": 0, "delivered": False, "dropped": False}
        self.apply(settings)

    def apply(self, settings):
        """Take validated settings (caller holds the hub lock); nothing changes if the TLS
        settings do not work."""
        tls = ("url", "insecure", "cafile")
        if any(k in settings for k in tls):
            new = {k: settings.get(k, getattr(self, k, None)) for k in tls}
            self.ssl = _ssl_context(new["url"], new["insecure"], new["cafile"])
        was_paused = getattr(self, "paused", False)
        for k, v in settings.items():
            setattr(self, k, v)
        if "reorder_seed" in settings:
            self.rng = random.Random(self.reorder_seed)
        if was_paused and not self.paused:   # what was held is released as one batch
            now = time.monotonic()
            self.queue = [(max(e[0], now),) + e[1:] for e in self.queue]
            heapq.heapify(self.queue)

    def wants(self, etype):
        return self.event_types is None or etype in self.event_types

    def readers(self, ws, scope):
        """[((workspace id, name), [bot ids])] of the tokens that can read scope (db_id, ds)."""
        out = collections.OrderedDict()
        for t in self.tokens:
            tok = ws.tokens.get(t)
            if tok is not None and tok.can_read(*scope):
                bots = out.setdefault(tok.workspace(ws), [])
                if dashed(tok.bot_id) not in bots:
                    bots.append(dashed(tok.bot_id))
        return list(out.items())

    def push(self, delivery, due):
        self.seq += 1
        if not self.reorder:
            tiebreak = self.seq
        else:
            tiebreak = -self.seq if self.reorder_seed is None else self.rng.random()
        heapq.heappush(self.queue, (due, tiebreak, self.seq, delivery))

    def describe(self):
        d = {"subscription_id": self.id, "integration_id": self.integration_id,
             "state": self.state, "api_version": self.api_version, "public": self.public,
             "verification_token": self.verification_token, "concurrency": self.concurrency}
        for k in SETTINGS:
            v = getattr(self, k)
            d[k] = sorted(v) if isinstance(v, frozenset) else v
        d.update(self.counters)
        d.update(pending=len(self.queue), in_flight=self.in_flight,
                 held=len(self.queue) if self.paused else 0,
                 verification=dict(self.verification))
        return d

    def record(self, delivery, status, body, signature, sent_at, seconds):
        ev = delivery.event
        self.log_seq += 1
        self.log.append({"seq": self.log_seq, "kind": "verification" if ev is None else "event",
                         "event_id": ev and ev.id, "type": ev and ev.type,
                         "entity_id": ev and ev.entity.get("id"),
                         "attempt_number": delivery.attempt, "status": status,
                         "sent_at": sent_at, "duration_ms": round(seconds * 1000, 1),
                         "body": body.decode("utf-8", "replace"), "signature": signature})
        if len(self.log) > LOG_LIMIT:
            del self.log[:len(self.log) - LOG_LIMIT]

    def stop(self):
        self.stopped = True
        for conn in list(self.conns):
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)


class Poster:
    """A worker's HTTP(S) connection, kept alive between deliveries."""

    def __init__(self, sub):
        self.sub, self.conn, self.key = sub, None, None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def post(self, url, ctx, timeout, body, headers):
        """-> HTTP status, or "connect error: ..." when no answer came."""
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if ctx else 80)
        key = (parts.hostname, port, ctx, timeout)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        while True:
            reused = self.conn is not None and self.key == key
            if not reused:
                self.close()
                if ctx is None:
                    self.conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
                else:
                    self.conn = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                                            context=ctx)
                self.key = key
            conn = self.conn
            with self.sub.hub.cond:
                self.sub.conns.add(conn)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    self.close()
                return resp.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if not reused:   # a kept-alive connection the receiver closed: open another
                    return "connect error: %s" % (e or type(e).__name__)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                return "connect error: %s" % (e or type(e).__name__)
            finally:
                with self.sub.hub.cond:
                    self.sub.conns.discard(conn)


# ---------------------------------------------------------------- the hub

class Hub:
    """Every subscription of the emulator; one lock (and condition) guards them all."""

    def __init__(self):
        self.cond = threading.Condition()
        self.subs = {}

    def reset(self):
        with self.cond:
            for sub in self.subs.values():
                sub.stop()
            self.subs = {}
            self.cond.notify_all()

    def emitter(self, ws, now):
        return Emitter(self, ws, now)

    def get(self, sid):
        with self.cond:
            sub = self.subs.get(sid)
        if sub is None:
            raise ControlError("unknown subscription %r" % (sid,), 404)
        return sub

    def add(self, sub):
        with self.cond:
            self.subs[sub.id] = sub
            self.handshake(sub)
        for n in range(sub.concurrency):
            threading.Thread(target=self._work, args=(sub,), daemon=True,
                             name="webhook-%s-%d" % (sub.id[:8], n)).start()

    def remove(self, sub):
        with self.cond:
            self.subs.pop(sub.id, None)
            sub.stop()
            self.cond.notify_all()

    def handshake(self, sub):
        sub.push(Delivery(None), time.monotonic())
        self.cond.notify_all()

    def enqueue(self, sub, ev, mono):
        """Queue an event (or fold it into an open aggregate); caller holds the lock.
        Returns the id of the event it went into."""
        if sub.aggregate_ms and ev.type in AGGREGATED:
            key = (ev.type, ev.entity.get("id"), ev.workspace[0])
            first = sub.open.get(key)
            if first is not None and mono < first.agg_until:
                first.merge(ev)
                sub.counters["aggregated"] += 1
                return first.id
            ev.agg_key, ev.agg_until = key, mono + sub.aggregate_ms / 1000.0
            sub.open[key] = ev
            due = ev.agg_until + sub.delay_ms / 1000.0
        else:
            due = mono + sub.delay_ms / 1000.0
            if sub.reorder and mono <= sub.batch_close:
                due = sub.batch_close
            elif sub.reorder:
                sub.batch_close = due
        sub.counters["events"] += 1
        for _ in range(1 + sub.duplicates):
            sub.push(Delivery(ev), due)
        self.cond.notify_all()
        return ev.id

    def busy(self, subs):
        return sum(s.in_flight + (0 if s.paused else len(s.queue)) for s in subs)

    def drain(self, timeout, sid=None):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                subs = [s for s in self.subs.values() if sid is None or s.id == sid]
                left = deadline - time.monotonic()
                if not self.busy(subs) or left <= 0:
                    break
                self.cond.wait(left)
            out = {"drained": not self.busy(subs), "subscriptions": len(subs)}
            described = [s.describe() for s in subs]
            for k in ("pending", "in_flight", "held", "delivered", "failed_attempts", "dropped"):
                out[k] = sum(d[k] for d in described)
            return out

    # ------------------------------------------------------------ workers
    def _next(self, sub):
        """The next due delivery of sub (waits for it); None once sub is stopped."""
        while not sub.stopped:
            now = time.monotonic()
            if sub.queue and not sub.paused and sub.queue[0][0] <= now:
                delivery = heapq.heappop(sub.queue)[-1]
                ev = delivery.event
                if ev is not None and ev.agg_key is not None and sub.open.get(ev.agg_key) is ev:
                    del sub.open[ev.agg_key]
                return delivery
            wait = sub.queue[0][0] - now if sub.queue and not sub.paused else None
            self.cond.wait(wait)
        return None

    def _work(self, sub):
        poster = Poster(sub)
        try:
            while True:
                with self.cond:
                    delivery = self._next(sub)
                    if delivery is None:
                        return
                    ev = delivery.event
                    body = dumps({"verification_token": sub.verification_token}).encode() \
                        if ev is None else ev.body(sub, delivery.attempt)
                    signature = sign(sub.verification_token, body)
                    target = (sub.url, sub.ssl, sub.timeout_ms / 1000.0)
                    sub.in_flight += 1
                headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                           "X-Notion-Signature": signature}
                sent_at, t0 = iso_ms(time.time()), time.monotonic()
                status = poster.post(*target, body, headers)
                with self.cond:
                    sub.in_flight -= 1
                    if sub.stopped:
                        return
                    sub.record(delivery, status, body, signature, sent_at, time.monotonic() - t0)
                    self._settle(sub, delivery, isinstance(status, int) and 200 <= status < 300)
                    self.cond.notify_all()
        finally:
            poster.close()

    def _settle(self, sub, delivery, ok):
        """Count an attempt; schedule the next one after a failure (caller holds the lock)."""
        handshake = delivery.event is None
        if handshake:
            sub.verification["attempts"] += 1
            sub.verification["delivered"] |= ok
        elif ok:
            sub.counters["delivered"] += 1
        else:
            sub.counters["failed_attempts"] += 1
        if ok:
            return
        if delivery.attempt >= sub.max_attempts:
            if handshake:
                sub.verification["dropped"] = True
            else:
                sub.counters["dropped"] += 1
            return
        backoff = sub.retry_base_ms * 2 ** (delivery.attempt - 1) / 1000.0
        delivery.attempt += 1
        sub.push(delivery, time.monotonic() + backoff)


# ---------------------------------------------------------------- control API (self-locking)

def _settings(body, creating):
    allowed = set(SETTINGS) | set(CREATE_ONLY if creating else ())
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ControlError("unknown member(s) %s; a subscription takes %s"
                           % (", ".join(unknown), ", ".join(sorted(allowed))))
    if creating and body.get("url") is None:
        raise ControlError("url is required")
    return {k: check(body, k, default) for k, (default, check) in SETTINGS.items()
            if creating or k in body}


def create(emu, body, q):
    settings = _settings(body, True)
    tokens = body.get("tokens", [])
    if not isinstance(tokens, list):
        raise ControlError("tokens must be a list")
    tokens = ([body["token"]] if "token" in body else []) + tokens
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise ControlError("give token (a string) or tokens (a non-empty list of strings)")
    tokens = list(collections.OrderedDict.fromkeys(tokens))
    version = body.get("api_version", "2025-09-03")
    if version not in API_VERSIONS:
        raise ControlError("api_version must be one of %s" % ", ".join(API_VERSIONS))
    public = body.get("public", len(tokens) > 1)
    if not isinstance(public, bool):
        raise ControlError("public must be a boolean")
    concurrency = int_member(body, "concurrency", 1, 4, 16)
    with emu.lock:
        known = [emu.ws.tokens.get(t) for t in tokens]
        if None in known:
            raise ControlError("unknown token (create it with POST /_emulator/tokens first)", 404)
        if len({t.integration_id for t in known}) > 1:
            raise ControlError("the tokens of a subscription must belong to one integration "
                               "(the same integration_name)")
    sub = Subscription(emu.hooks, tokens, dashed(known[0].integration_id), settings, version,
                       public, concurrency)
    emu.hooks.add(sub)
    return {"subscription_id": sub.id, "integration_id": sub.integration_id, "state": sub.state}


def list_all(emu, body, q):
    with emu.hooks.cond:
        return {"subscriptions": [s.describe() for s in emu.hooks.subs.values()]}


def get(emu, body, q, sid):
    sub = emu.hooks.get(sid)
    with emu.hooks.cond:
        return sub.describe()


def patch(emu, body, q, sid):
    sub = emu.hooks.get(sid)
    settings = _settings(body, False)
    with emu.hooks.cond:
        if "url" in settings and settings["url"] != sub.url and sub.state != "pending":
            raise ControlError("the URL of a verified subscription cannot change (as in "
                               "Notion); delete it and create another", 409)
        sub.apply(settings)
        emu.hooks.cond.notify_all()
        return sub.describe()


def delete(emu, body, q, sid):
    emu.hooks.remove(emu.hooks.get(sid))
    return {"ok": True}


def verify(emu, body, q, sid):
    sub = emu.hooks.get(sid)
    with emu.hooks.cond:
        if body.get("verification_token") != sub.verification_token:
            raise ControlError("verification_token does not match this subscription's")
        sub.state = "active"
        return {"subscription_id": sub.id, "state": sub.state}


def resend(emu, body, q, sid):
    sub = emu.hooks.get(sid)
    with emu.hooks.cond:
        if sub.state != "pending":
            raise ControlError("the subscription is already verified", 409)
        emu.hooks.handshake(sub)
        return {"subscription_id": sub.id, "state": sub.state}


def deliveries(emu, body, q, sid):
    sub = emu.hooks.get(sid)
    since = int(q.get("since", "0") or 0)
    with emu.hooks.cond:
        return {"deliveries": [e for e in sub.log if e["seq"] > since]}


def inject(emu, body, q, sid):
    """An arbitrary event for this subscription, as given: no event_types filter, no access
    check; from the workspace of `token` (default: the subscription's first)."""
    sub = emu.hooks.get(sid)
    etype, entity, data = body.get("type"), body.get("entity"), body.get("data", {})
    if not isinstance(etype, str) or not etype:
        raise ControlError("type must be a non-empty string")
    if not isinstance(entity, dict) or not norm_id(entity.get("id")) \
            or not isinstance(entity.get("type"), str):
        raise ControlError("entity must be {id: a Notion id, type: a string}")
    if not isinstance(data, dict):
        raise ControlError("data must be an object")
    token = body.get("token", sub.tokens[0])
    if token not in sub.tokens:
        raise ControlError("token is not one of the subscription's")
    with emu.lock:
        tok = emu.ws.tokens.get(token)
        if tok is None:
            raise ControlError("unknown token", 404)
        workspace, bot = tok.workspace(emu.ws), dashed(tok.bot_id)
        authors = body.get("authors", [_person(dashed(emu.ws.default_user))])
        now = emu.clock.now()
    if not isinstance(authors, list) or not all(isinstance(a, dict) for a in authors):
        raise ControlError("authors must be a list of {id, type}")
    ev = Event(etype, {"id": dashed(norm_id(entity["id"])), "type": entity["type"]}, dict(data),
               authors, now, workspace, [{"id": bot, "type": "bot"}] if sub.public else None)
    with emu.hooks.cond:
        if sub.state != "active":
            raise ControlError("the subscription is not verified yet", 409)
        event_id = emu.hooks.enqueue(sub, ev, time.monotonic())
    return {"event_id": event_id, "aggregated": event_id != ev.id}


def drain(emu, body, q):
    timeout = int_member(body, "timeout_ms", 0, 10000, 600000)
    sid = body.get("subscription_id")
    if sid is not None:
        emu.hooks.get(sid)
    return emu.hooks.drain(timeout / 1000.0, sid)


def _rx(p):
    return re.compile("^/_emulator/webhooks" + p + "$")


ROUTES = [  # as control.ROUTES, but run without the emulator lock (they take what they need)
    (("POST",), _rx(""), create, False),
    (("GET",), _rx(""), list_all, False),
    (("POST",), _rx("/drain"), drain, False),
    (("GET",), _rx("/([^/]+)"), get, False),
    (("PATCH",), _rx("/([^/]+)"), patch, False),
    (("DELETE",), _rx("/([^/]+)"), delete, False),
    (("POST",), _rx("/([^/]+)/verify"), verify, False),
    (("POST",), _rx("/([^/]+)/resend"), resend, False),
    (("GET",), _rx("/([^/]+)/deliveries"), deliveries, False),
    (("POST",), _rx("/([^/]+)/events"), inject, False),
]
