#!/usr/bin/env python3
"""test_webhooks.py - Notion webhooks end to end: nginx (the production
locations, TLS) -> spawn-fcgi -> notion-sync-fcgi (request thread and
workers) -> the Notion emulator -> PostgreSQL 15.

Most events here are signed by the test itself, byte for byte as Notion
does (HMAC-SHA256 of the raw body keyed by the verification token, the
SDK's recipe); in the delivery scenario the emulator delivers them
(tests/emulator/webhooks.py).

Scenarios:
  subscriptions  CLI webhook create --user / --oauth (key >= 128 bits,
                 URL-safe, the path), list (no secret), show (the token once
                 verified), delete; usage errors and unknown users/keys;
  handshake      unknown key 404; an event before verification 401; the
                 handshake stored once (a second one keeps the first token);
                 a wrongly signed handshake 401; GET 405; bodies over 64 KiB
                 413; all answers JSON;
  signatures     the SDK's vectors through nginx (lower- and upper-case hex;
                 no prefix, wrong length, non-hex, tampered body, wrong token:
                 401), replay of a stored event is a duplicate and does
                 nothing new, a signed body that is no event 400, a type that
                 is not synced recorded as ignored;
  pages          every page event converges to the emulator's truth: edit,
                 create, trash (deleted), restore, delete-then-undelete
                 delivered out of order, five events for one page (one GET),
                 moved to a database nobody registered (row removed), a page
                 of an unregistered database (no Notion request), a page gone
                 while its database is readable (row deleted) and while it is
                 not (row kept); a rejected token fails the events;
  databases      schema_updated queues a full walk, content_updated and the
                 deprecated database.* forms an incremental sync, a new data
                 source a sync, data_source.deleted deletes nothing; events
                 for unregistered databases are ignored without a request;
  lane           edits delivered during a split full walk of the same token
                 are read between the walk's requests, one after another:
                 the walk's other ends hold back while the lane runs;
  restart        events stored while no worker runs (a responder without
                 workers, then SIGKILLed) are processed by the next responder;
  oauth          an OAuth subscription routes events by workspace_id to the
                 OAuth user whose workspace a sync recorded (users/me);
                 another workspace's event is recorded as ignored;
  visible        outcomes and lag in notion_webhook_events, the view
                 notion_webhook_stats, /metrics' webhook series; pruning
                 forgets old finished events, never pending ones;
  delivery       the emulator delivers: its subscription's handshake reaches
                 the endpoint, the token shown by the CLI verifies it, and
                 edits, creations, trash, restores, content changes, moves
                 in and out and a schema change made through its admin API,
                 delivered with duplicates, reordering and aggregation,
                 converge to its truth; deliveries refused while the
                 responder is down are retried and arrive after it is back;
  hygiene        no verification token, signature or event body in any log.
Prints TAP; every process is stopped by the harness's cleanups.
"""

import hashlib
import hmac
import json
import os
import re
import signal
import time
import uuid

import harness as h
import scenario

SECRET = "webhooks-test-bearer-5c1f7e20aa"
HOOKS = "/api/notion/webhooks/"
VERIFY = "secret_verification_token_for_tests_8d2b"

t = h.Tap()
TEMPLATE = h.migrated_cluster()
emu = h.Emulator()
LOGS = []   # (name, text getter) of every responder and nginx
SCOPE = []  # the running scenario's stacks


def sign(body, token=VERIFY):
    data = body if isinstance(body, bytes) else body.encode()
    return "sha256=" + hmac.new(token.encode(), data, hashlib.sha256).hexdigest()


def event(type_, entity_id, entity_type="page", parent=None, eid=None, workspace=None,
          data=None):
    body = {"id": eid or str(uuid.uuid4()), "timestamp": "2026-12-03T10:00:00.000Z",
            "workspace_id": workspace or "00000000-0000-4000-8000-00000000aaaa",
            "workspace_name": "Emulated Workspace", "subscription_id": str(uuid.uuid4()),
            "integration_id": str(uuid.uuid4()), "type": type_,
            "authors": [{"id": str(uuid.uuid4()), "type": "person"}], "attempt_number": 1,
            "api_version": "2025-09-03", "entity": {"id": entity_id, "type": entity_type},
            "data": dict(data or {})}
    if parent:
        body["data"]["parent"] = parent
    return body


class Stack:
    """One responder process behind the production nginx locations (TLS)."""

    def __init__(self, pg, name, workers=2, **extra):
        env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=workers,
                         **extra)
        self.responder = h.Responder(env, processes=1)
        self.nginx = h.TlsNginx(self.responder.port, rate="100r/s")
        LOGS.append((name + " responder", self.responder.log_text))
        LOGS.append((name + " nginx", self.nginx.logs))
        SCOPE.append(self)

    def post(self, key, body, signature="sign", token=VERIFY, headers=None):
        """POST raw bytes (or a dict, serialised once) to the key's path;
        signature "sign" signs them with token, None sends none."""
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
        raw = raw.encode() if isinstance(raw, str) else raw
        hdrs = {"Content-Type": "application/json", "User-Agent": "notion-api"}
        if signature == "sign":
            hdrs["X-Notion-Signature"] = sign(raw, token)
        elif signature is not None:
            hdrs["X-Notion-Signature"] = signature
        hdrs.update(headers or {})
        st, _, js = self.nginx.request("POST", HOOKS + key, raw, hdrs)
        return st, js

    def stop(self):
        h.stop_responder(self.responder)
        h.stop_process(self.nginx.proc)


def cli(pg, *args, env_extra=None):
    env = h.base_env(pg, emu, **(env_extra or {}))
    return h.run_cli(list(args), env)


def q(pg, sql):
    return pg.scalar(sql)


def rows(pg, sql):
    return h.json_rows(pg, sql)


def wait(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def is_error(js, code):
    return isinstance(js, dict) and js.get("success") is False and \
        isinstance(js.get("error"), dict) and js["error"].get("code") == code


class World:
    """A scenario's user: its token in the emulator and in user_settings, a
    Characters database with pages, registered and synced once."""

    def __init__(self, pg, tag, pages=5, oauth=False, workspace=None):
        self.pg = pg
        self.user = str(uuid.uuid4())
        self.token = f"secret_webhooks_{tag}_{uuid.uuid4().hex[:8]}"
        spec = {"token": self.token, "integration_name": "hooks-" + tag, "databases": []}
        if workspace:
            spec["workspace_id"] = workspace
        emu.control("POST", "/tokens", spec)
        self.db = emu.control("POST", "/databases", {
            "title": "Characters", "token": self.token,
            "data_sources": [{"schema": {"Name": "title", "Description": "rich_text"}}]})
        self.database = self.db["database_id"]
        self.source = self.db["data_source_ids"][0]
        self.pages = [self.add_page(f"Person {i}", emit=False) for i in range(pages)]
        column = "notion_access_token" if oauth else "notion_token"
        pg.psql(f"insert into user_settings (user_id, {column}) values ('{self.user}',"
                f" '{self.token}')")
        pg.psql("insert into notion_databases (user_id, database_id, database_name) values"
                f" ('{self.user}', '{self.database}', 'Characters')")
        code, js, out, err = cli(pg, "sync", "--user", self.user, "--database", self.database,
                                 "--quiet")
        if code != 0:
            raise RuntimeError(f"first sync failed: {out}{err}")

    def add_page(self, name, emit=True, source=None):
        page = emu.control("POST", "/pages", {"data_source_id": source or self.source,
                                              "properties": {"Name": name,
                                                             "Description": name + " bio"},
                                              "emit": emit})
        return page["id"]

    def row(self, page):
        got = rows(self.pg, "select name, description, notion_database_id::text as db"
                            " from notion_characters_sync where user_id = "
                            f"'{self.user}' and notion_page_id = '{page}'")
        return got[0] if got else None

    def truth_name(self, page):
        p = emu.control("GET", f"/pages/{page}")
        return "".join(x["plain_text"] for x in p["properties"]["Name"]["title"])

    def subscribe(self, stack):
        code, js, out, err = cli(self.pg, "webhook", "create", "--user", self.user)
        if code != 0:
            raise RuntimeError(f"webhook create failed: {out}{err}")
        key = js["key"]
        st, js = stack.post(key, {"verification_token": VERIFY})
        if st != 200:
            raise RuntimeError(f"handshake failed: {st} {js}")
        return key

    def page_parent(self, source=None, database=None):
        return {"id": database or self.database, "type": "database",
                "data_source_id": source or self.source}


def events_of(pg, where="true"):
    return rows(pg, "select event_id::text, type, status, outcome, entity_id::text"
                    f" from notion_webhook_events where {where} order by id")


def settled(pg, n=None):
    """Wait until nothing is pending (and at least n events exist)."""
    def done():
        pending = int(q(pg, "select count(*) from notion_webhook_events where status ="
                            " 'received'"))
        total = int(q(pg, "select count(*) from notion_webhook_events"))
        return pending == 0 and (n is None or total >= n)
    return wait(done, 30, "events processed")


# ============================================================ subscriptions
def subscriptions(pg):
    w = World(pg, "subs", pages=1)
    code, js, out, err = cli(pg, "webhook", "create", "--user", w.user)
    t.eq(code, 0, "webhook create --user exits 0")
    key = js and js.get("key")
    t.ok(isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]{22,}", key or "") is not None
         and len(key) * 6 >= 128, "the key is URL-safe and carries at least 128 bits", js)
    t.eq(js and js.get("path"), HOOKS + (key or ""), "the answer names the path to give Notion")
    t.eq(js and (js.get("kind"), js.get("user_id"), js.get("verified")),
         ("user", w.user, False), "a user subscription, not verified yet")
    code, js2, _, _ = cli(pg, "webhook", "create", "--oauth")
    t.eq((code, js2 and js2.get("kind"), js2 and js2.get("user_id")), (0, "oauth", None),
         "webhook create --oauth records the public integration's subscription")
    t.ok(js2 and js2.get("key") != key, "every key is new")
    pg.psql(f"update notion_webhook_subscriptions set verification_token = '{VERIFY}'"
            f" where key = '{key}'")
    code, listed, out, _ = cli(pg, "webhook", "list")
    t.eq(code, 0, "webhook list exits 0")
    keys = [s.get("key") for s in (listed or {}).get("subscriptions", [])]
    t.eq(sorted(keys), sorted([key, js2.get("key")]), "list shows both subscriptions")
    t.ok(VERIFY not in out and "verification_token" not in out,
         "list never shows a verification token", out)
    code, shown, out, _ = cli(pg, "webhook", "show", key)
    t.eq((code, shown and shown.get("verification_token"), shown and shown.get("verified")),
         (0, VERIFY, True), "show prints the verification token (the one place)")
    code, shown, _, _ = cli(pg, "webhook", "show", js2["key"])
    t.ok(code == 0 and shown.get("verification_token") is None,
         "show: null until Notion's handshake came")
    code, _, _, err = cli(pg, "webhook", "show", "nope-nope-nope-nope-nope-nope")
    t.eq(code, 1, "show of an unknown key exits 1")
    code, _, _, err = cli(pg, "webhook", "create", "--user", str(uuid.uuid4()))
    t.ok(code == 1 and "set-token" in err, "create for an unknown user exits 1 and says why", err)
    for args in (["webhook"], ["webhook", "create"], ["webhook", "create", "--oauth", "--user",
                                                     w.user], ["webhook", "frob"]):
        code, _, _, err = cli(pg, *args)
        t.eq(code, 2, f"`{' '.join(args)}` is a usage error (exit 2)")
    code, _, _, _ = cli(pg, "webhook", "create", "--user", "not-a-uuid")
    t.eq(code, 2, "create with a malformed user id exits 2")
    code, js, _, _ = cli(pg, "webhook", "delete", key)
    t.eq((code, js), (0, {"success": True, "deleted": True}), "delete removes a subscription")
    code, _, _, _ = cli(pg, "webhook", "delete", key)
    t.eq(code, 1, "deleting it again exits 1 (unknown key)")
    t.eq(q(pg, f"select count(*) from notion_webhook_subscriptions where key = '{key}'"), "0",
         "the row is gone")
    rc, out, err = h.client.psql(pg, "set role notion_sync_app; select verification_token from"
                                     " notion_webhook_subscriptions", out="result", check=False)
    t.ok(rc != 0 and "permission denied" in err,
         "the application role cannot read verification tokens", err)
    rc, out, err = h.client.psql(pg, "set role notion_sync_service; select count(*) from"
                                     " notion_webhook_subscriptions", out="result", check=False)
    t.ok(rc == 0, "the service role can (it verifies signatures)", err)


# ================================================================ handshake
def handshake(pg):
    w = World(pg, "hand", pages=1)
    stack = Stack(pg, "handshake")
    _, js, _, _ = cli(pg, "webhook", "create", "--user", w.user)
    key = js["key"]
    st, js = stack.post("A" * 32, {"verification_token": VERIFY})
    t.ok(st == 404 and is_error(js, "not_found"), "an unknown key is 404 (JSON)", (st, js))
    st, js = stack.post("short", {"verification_token": VERIFY})
    t.ok(st == 404 and isinstance(js, dict), "a path that cannot be a key is 404 (nginx, JSON)",
         (st, js))
    ev = event("page.created", w.pages[0], parent=w.page_parent())
    st, js = stack.post(key, ev)
    t.ok(st == 401 and is_error(js, "unauthorized") and "not verified" in js["error"]["message"],
         "an event before the handshake is 401", (st, js))
    st, js = stack.post(key, {"verification_token": VERIFY}, signature="sha256=" + "0" * 64)
    t.ok(st == 401 and is_error(js, "unauthorized"), "a handshake with a wrong signature is 401",
         (st, js))
    t.eq(q(pg, f"select verification_token is null from notion_webhook_subscriptions"
               f" where key = '{key}'"), "t", "... and stores nothing")
    st, js = stack.post(key, {"verification_token": VERIFY})
    t.ok(st == 200 and js == {"success": True, "status": "verification_token_stored"},
         "the signed handshake is stored: 200", (st, js))
    st, js = stack.post(key, {"verification_token": "secret_someone_else"}, token="secret_someone_else")
    t.ok(st == 200 and js.get("status") == "already_verified",
         "a second handshake is answered 200 and ...", (st, js))
    _, shown, _, _ = cli(pg, "webhook", "show", key)
    t.eq(shown.get("verification_token"), VERIFY, "... keeps the first token")
    st, js = stack.post(key, {"verification_token": VERIFY}, signature=None)
    t.eq((st, js.get("status")), (200, "already_verified"),
         "an unsigned handshake (nothing to check it against yet) is accepted too")
    st, _, js = stack.nginx.request("GET", HOOKS + key)
    t.ok(st == 405 and isinstance(js, dict), "GET is 405 (JSON)", (st, js))
    big = json.dumps({"verification_token": VERIFY, "pad": "x" * 70000})
    st, js = stack.post(key, big)
    t.ok(st == 413 and isinstance(js, dict), "a body over 64 KiB is 413 (JSON)", (st, js))
    st, js = stack.post(key, b"\xff\xfe not json")
    t.ok(st == 400 and is_error(js, "invalid_request"),
         "signed bytes that are not JSON: 400, nothing stored", (st, js))


# =============================================================== signatures
def signatures(pg):
    w = World(pg, "sig", pages=2)
    stack = Stack(pg, "signatures", workers=0)
    key = w.subscribe(stack)
    vectors = json.load(open(os.path.join(h.SRCDIR, "tests", "fixtures", "notion-sdk-js",
                                          "webhook-signatures.json")))["cases"]
    # One subscription per token of the SDK's cases, verified with that
    # token: the cases' bytes and headers are then sent exactly as recorded.
    keys = {}
    for case in vectors:
        if case["token"] not in keys:
            _, js, _, _ = cli(pg, "webhook", "create", "--user", w.user)
            keys[case["token"]] = js["key"]
            stack.post(js["key"], {"verification_token": case["token"]}, signature=None)
    for case in vectors:
        st, js = stack.post(keys[case["token"]], case["body"], signature=case["signature"])
        if case["valid"]:
            # Accepted: stored, or refused as no event (their ids are not UUIDs).
            t.ok(st in (200, 400) and not is_error(js, "unauthorized"),
                 f"SDK case '{case['name']}': the signature is accepted", (st, js))
        else:
            t.ok(st == 401 and is_error(js, "unauthorized"),
                 f"SDK case '{case['name']}': 401", (st, js))
    ev = event("page.properties_updated", w.pages[0], parent=w.page_parent())
    raw = json.dumps(ev, separators=(",", ":"))
    start = time.monotonic()
    st, js = stack.post(key, raw)
    took = time.monotonic() - start
    t.ok(st == 200 and js == {"success": True, "status": "stored"}, "a valid event: 200 stored",
         (st, js))
    h.note(f"a stored event was answered in {took * 1000:.1f} ms through nginx and TLS")
    st, js = stack.post(key, raw, signature=sign(raw).upper().replace("SHA256=", "sha256="))
    t.eq((st, js.get("status")), (200, "duplicate"),
         "the same event again (upper-case hex): 200 duplicate")
    t.eq(q(pg, f"select count(*) from notion_webhook_events where event_id = '{ev['id']}'"), "1",
         "a replayed event is stored once")
    tampered = raw.replace("properties_updated", "deleted")
    st, js = stack.post(key, tampered, signature=sign(raw))
    t.ok(st == 401 and "does not match" in js["error"]["message"],
         "a tampered body is 401", (st, js))
    pretty = json.dumps(ev, indent=2)
    st, js = stack.post(key, pretty, signature=sign(raw))
    t.eq(st, 401, "the same event re-serialised is another body: 401")
    for bad, why in (("sha256=" + "a" * 63, "63 hex digits"), ("sha256=" + "a" * 65, "65"),
                     ("sha256:" + sign(raw)[7:], "another prefix"), (sign(raw)[7:], "no prefix"),
                     ("sha256=" + "z" * 64, "non-hex")):
        st, js = stack.post(key, raw, signature=bad)
        t.ok(st == 401 and "64 hex digits" in js["error"]["message"],
             f"a malformed signature ({why}) is 401 and says so", (st, js))
    st, js = stack.post(key, raw, signature=None)
    t.ok(st == 401 and "required" in js["error"]["message"], "no signature is 401", (st, js))
    st, js = stack.post(key, "[1,2,3]")
    t.ok(st == 400 and is_error(js, "invalid_request"), "a signed body that is no object: 400",
         (st, js))
    st, js = stack.post(key, {"type": "page.created"})
    t.ok(st == 400 and is_error(js, "invalid_request"), "an event without an id: 400", (st, js))
    st, js = stack.post(key, event("comment.created", str(uuid.uuid4()), "comment"))
    t.eq((st, js.get("status")), (200, "ignored"), "a comment event: 200, recorded as ignored")
    t.eq(q(pg, "select outcome from notion_webhook_events where type = 'comment.created'"),
         "event type comment.created is not synced", "... with the reason")
    t.eq(q(pg, "select count(*) from notion_webhook_events where status = 'received'"), "1",
         "one event waits for a worker (this responder runs none)")


# ==================================================================== pages
def pages(pg):
    w = World(pg, "pages", pages=6)
    other = emu.control("POST", "/databases", {
        "title": "Notes", "token": w.token,
        "data_sources": [{"schema": {"Name": "title", "Description": "rich_text"}}]})
    stack = Stack(pg, "pages")
    key = w.subscribe(stack)

    def deliver(type_, page, parent="own", **kw):
        par = w.page_parent() if parent == "own" else parent
        st, js = stack.post(key, event(type_, page, parent=par, **kw))
        if st != 200:
            raise RuntimeError(f"delivery refused: {st} {js}")
        return js

    # An edit.
    p0 = w.pages[0]
    emu.control("PATCH", f"/pages/{p0}", {"properties": {"Name": "Renamed Zero"}})
    emu.clear_requests()
    deliver("page.properties_updated", p0)
    t.ok(wait(lambda: (w.row(p0) or {}).get("name") == "Renamed Zero"),
         "page.properties_updated: the rename reaches PostgreSQL", w.row(p0))
    settled(pg)
    gets = [r for r in emu.requests() if r["method"] == "GET"]
    t.eq(len(gets), 1, "one Notion request for one edited page")
    t.eq(q(pg, f"select status || ': ' || outcome from notion_webhook_events where entity_id ="
               f" '{p0}'"), "processed: row updated in notion_characters_sync",
         "the event is recorded as processed, with what was done")
    # Content edited (the page's blocks): the row follows the page's edit time.
    emu.control("PATCH", f"/pages/{p0}", {"properties": {"Description": "Rewritten bio"}})
    deliver("page.content_updated", p0, data={"updated_blocks": [{"id": str(uuid.uuid4()),
                                                                  "type": "block"}]})
    t.ok(wait(lambda: (w.row(p0) or {}).get("description") == "Rewritten bio"),
         "page.content_updated: the row is read again and follows", w.row(p0))
    # A new page.
    p_new = w.add_page("Newcomer")
    deliver("page.created", p_new)
    t.ok(wait(lambda: (w.row(p_new) or {}).get("name") == "Newcomer"),
         "page.created: the row is inserted")
    # Trash, then restore delivered first: converges to restored.
    p1 = w.pages[1]
    emu.control("POST", f"/pages/{p1}/trash", {})
    emu.control("PATCH", f"/pages/{p1}", {"in_trash": False})
    ev_del = event("page.deleted", p1, parent=w.page_parent())
    ev_undel = event("page.undeleted", p1, parent=w.page_parent())
    stack.post(key, ev_undel)
    stack.post(key, ev_del)
    settled(pg)
    t.ok(w.row(p1) is not None, "page.deleted delivered after a later page.undeleted: the row"
         " stays (Notion shows the page restored)")
    # Trash for real.
    p2 = w.pages[2]
    emu.control("POST", f"/pages/{p2}/trash", {})
    deliver("page.deleted", p2)
    t.ok(wait(lambda: w.row(p2) is None), "page.deleted (in_trash): the row is deleted")
    t.ok("in the trash" in q(pg, f"select outcome from notion_webhook_events where entity_id ="
                                 f" '{p2}'"), "... because Notion shows it in the trash")
    # A page.deleted for a page Notion still shows: kept and refreshed.
    p3 = w.pages[3]
    deliver("page.deleted", p3)
    settled(pg)
    t.ok(w.row(p3) is not None, "page.deleted for a page Notion does not show trashed: kept")
    # Many events for one page: one fetch.
    emu.control("PATCH", f"/pages/{p3}", {"properties": {"Name": "Busy Three"}})
    # Five events stored while no worker can take the user (its lock is held here).
    lock = h.PsqlSession(pg)
    lock.send(f"select pg_advisory_lock(notion_sync_user_lock_key('{w.user}'));")
    lock.wait_state("idle", "pg_advisory_lock")  # held: no worker can take the user now
    for _ in range(5):
        deliver("page.properties_updated", p3)
    emu.clear_requests()
    lock.send(f"select pg_advisory_unlock(notion_sync_user_lock_key('{w.user}'));")
    lock.finish()
    t.ok(wait(lambda: (w.row(p3) or {}).get("name") == "Busy Three"),
         "five events for one page: the row converges")
    settled(pg)
    gets = [r for r in emu.requests() if r["method"] == "GET"]
    t.eq(len(gets), 1, "five events waiting together for one page cost one GET")
    # Moved to a database nobody registered: row removed.
    p4 = w.pages[4]
    emu.control("POST", f"/pages/{p4}/move", {"data_source_id": other["data_source_ids"][0]})
    deliver("page.moved", p4, parent={"id": other["database_id"], "type": "database",
                                      "data_source_id": other["data_source_ids"][0]})
    t.ok(wait(lambda: w.row(p4) is None), "page.moved out of the registered database: row removed")
    # A page of an unregistered database: no Notion request.
    stranger = emu.control("POST", "/pages", {"data_source_id": other["data_source_ids"][0],
                                              "properties": {"Name": "Stranger"}})["id"]
    emu.clear_requests()
    deliver("page.created", stranger, parent={"id": other["database_id"], "type": "database",
                                              "data_source_id": other["data_source_ids"][0]})
    settled(pg)
    t.eq(len(emu.requests()), 0, "an event whose parent is not registered costs no request")
    t.eq(q(pg, f"select status from notion_webhook_events where entity_id = '{stranger}'"),
         "ignored", "... and is recorded as ignored")
    # Gone (404) while the database is readable: deleted.
    p5 = w.pages[5]
    emu.control("DELETE", f"/pages/{p5}")
    deliver("page.deleted", p5)
    t.ok(wait(lambda: w.row(p5) is None), "a page gone while its database is readable: deleted",
         events_of(pg, f"entity_id = '{p5}'"))
    # Gone while the database is not readable: kept.
    keep = w.add_page("Keeper", emit=False)
    cli(pg, "sync", "--user", w.user, "--database", w.database, "--quiet")
    t.ok(w.row(keep) is not None, "(a new page synced by polling)")
    emu.access(database_id=w.database, accessible=False)
    deliver("page.deleted", keep)
    settled(pg)
    t.ok(w.row(keep) is not None, "page unreadable and database unreadable: the row is kept")
    t.ok("row kept" in q(pg, f"select outcome from notion_webhook_events where entity_id ="
                             f" '{keep}'"), "... and the outcome says why")
    emu.access(database_id=w.database, accessible=True)
    # Everything agrees with the truth.
    truth = h.ground_truth(emu, w.db)
    stored = {r["id"]: r["name"] for r in rows(pg, "select notion_page_id::text as id, name from"
                                                   f" notion_characters_sync where user_id ="
                                                   f" '{w.user}'")}
    want = {pid: "".join(x["plain_text"] for x in p["properties"]["Name"]["title"])
            for pid, (_, p) in truth.items()}
    t.eq(stored, want, "the table equals the emulator's truth after every event type")
    # A rejected token fails the events.
    pg.psql(f"update user_settings set notion_token = 'secret_rejected' where user_id ="
            f" '{w.user}'")
    deliver("page.properties_updated", w.pages[0])
    settled(pg)
    t.ok(q(pg, "select status || ' ' || outcome from notion_webhook_events order by id desc"
               " limit 1").startswith("failed Notion rejected the token"),
         "a rejected token: the event is failed with the reason")


# ================================================================ databases
def databases(pg):
    w = World(pg, "dbs", pages=2)
    stack = Stack(pg, "databases")
    key = w.subscribe(stack)

    def runs():
        return rows(pg, "select id, trigger, status, mode from notion_sync_runs where trigger ="
                        " 'webhook' order by id")

    stack.post(key, event("data_source.schema_updated", w.source, "data_source",
                          parent={"id": w.database, "type": "database"},
                          data={"updated_properties": [{"id": "x", "name": "Age",
                                                        "action": "created"}]}))
    t.ok(wait(lambda: any(r["status"] == "success" for r in runs())),
         "data_source.schema_updated: a run with trigger webhook ...", runs())
    t.eq([r["mode"] for r in runs()], ["full"], "... that is a full walk")
    stack.post(key, event("data_source.content_updated", w.source, "data_source",
                          parent={"id": w.database, "type": "database"}))
    t.ok(wait(lambda: len(runs()) == 2 and runs()[1]["status"] == "success"),
         "data_source.content_updated: another run", runs())
    t.eq(runs()[-1]["mode"], "incremental", "... incremental")
    stack.post(key, event("database.content_updated", w.database, "database"))
    t.ok(wait(lambda: len(runs()) == 3 and runs()[2]["status"] == "success"),
         "the deprecated database.content_updated: a run too", runs())
    stack.post(key, event("data_source.content_updated", w.source, "data_source"))
    t.ok(wait(lambda: len(runs()) == 4 and runs()[3]["status"] == "success"),
         "a data source event without its database: found through the sync state", runs())
    # A new data source in the registered database: a sync brings its pages.
    added = emu.control("POST", "/data_sources", {"database_id": w.database, "name": "More",
                                                  "schema": {"Name": "title"}, "emit": False})
    extra = emu.control("POST", "/pages", {"data_source_id": added["data_source_id"],
                                           "properties": {"Name": "From the new source"},
                                           "emit": False})["id"]
    stack.post(key, event("data_source.created", added["data_source_id"], "data_source",
                          parent={"id": w.database, "type": "database"}))
    t.ok(wait(lambda: w.row(extra) is not None),
         "data_source.created in a registered database: its pages arrive", runs())
    before = int(q(pg, f"select count(*) from notion_characters_sync where user_id = '{w.user}'"))
    stack.post(key, event("data_source.deleted", w.source, "data_source",
                          parent={"id": w.database, "type": "database"}))
    settled(pg)
    t.eq(int(q(pg, f"select count(*) from notion_characters_sync where user_id = '{w.user}'")),
         before, "data_source.deleted deletes nothing")
    other = str(uuid.uuid4())
    emu.clear_requests()
    stack.post(key, event("data_source.schema_updated", str(uuid.uuid4()), "data_source",
                          parent={"id": other, "type": "database"}))
    settled(pg)
    t.eq(len(runs()), 5, "an unregistered database's event queues nothing")
    t.eq(len(emu.requests()), 0, "... and asks Notion nothing")


# ================================================================== restart
def lane(pg):
    """Edits delivered during a split full walk of the same token: the
    worker's priority lane reads them between the walk's requests, and
    the walk's other ends hold back meanwhile, so the page reads follow one
    another instead of each queueing behind every end's next query."""
    w = World(pg, "lane", pages=12)
    stories = emu.control("POST", "/databases", {"title": "Stories", "token": w.token})
    emu.control("POST", "/generate", {"data_source_id": stories["data_source_ids"][0],
                                      "count": 10000, "seed": 5, "kind": "Stories"})
    emu.control("POST", "/prerender", {"data_source_id": stories["data_source_ids"][0]})
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values"
            f" ('{w.user}', '{stories['database_id']}', 'Stories')")
    code, js, out, err = cli(pg, "sync", "--user", w.user, "--database",
                             stories["database_id"], "--quiet")
    t.ok(code == 0 and js.get("inserted") == 10000, "the Stories database is synced once",
         out + err)
    # 150 ms answers against 50 ms spacing: the walk splits in two ranges,
    # four ends.
    stack = Stack(pg, "lane", NOTION_RATE_LIMIT=20, NOTION_SYNC_SPLIT_RANGES=2)
    key = w.subscribe(stack)
    for i, page in enumerate(w.pages):
        emu.control("PATCH", f"/pages/{page}", {"properties": {"Name": f"Lane {i}"}})
    emu.clear_requests()
    emu.control("POST", "/config", {"latency_ms": 150})
    try:
        st, _, js = stack.nginx.request(
            "POST", "/api/notion/sync-to-postgres",
            json.dumps({"user_id": w.user, "database_id": stories["database_id"],
                        "full": True, "async": True}),
            {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
        t.ok(st == 202, "the full walk is queued", js)
        queries = lambda: [r for r in emu.requests() if r["path"].endswith("/query")]  # noqa
        wait(lambda: sum(h.query_descending(r) for r in queries()) >= 6,
             what="the walk to split")
        for page in w.pages:
            st, js = stack.post(key, event("page.properties_updated", page,
                                           parent=w.page_parent()))
            if st != 200:
                raise RuntimeError(f"delivery refused: {st} {js}")
        settled(pg, len(w.pages))
        t.ok(wait(lambda: all((w.row(p) or {}).get("name") == f"Lane {i}"
                              for i, p in enumerate(w.pages))),
             "every edit reaches PostgreSQL during the walk")
        log = emu.requests()
        gets = [i for i, r in enumerate(log) if r["method"] == "GET" and
                any(r["path"].endswith(p) for p in w.pages)]
        spans = sorted((log[i]["received"], log[i]["answered"]) for i in gets)
        overlap = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
        between = sorted(sum(1 for r in log[a + 1:b] if r["path"].endswith("/query"))
                         for a, b in zip(gets, gets[1:]))
        # Then a stream of edits, one every 100 ms: while the lane has work
        # the walk goes on with the walker's requests alone.
        emu.clear_requests()
        for i, page in enumerate(w.pages * 2):
            emu.control("PATCH", f"/pages/{page}", {"properties": {"Name": f"Stream {i}"}})
            st, js = stack.post(key, event("page.properties_updated", page,
                                           parent=w.page_parent()))
            time.sleep(0.1)
        settled(pg)
        log = emu.requests()
        reads = [i for i, r in enumerate(log) if r["method"] == "GET"]
        during = [r for r in log[reads[0]:reads[-1]] if r["path"].endswith("/query")]
        others = [r for r in during if h.query_descending(r) or
                  h.query_created_filter(r)[0] == "after"]
        walked = wait(lambda: q(pg, "select status from notion_sync_runs where database_id ="
                                    f" '{stories['database_id']}' and trigger <> 'cli' order"
                                    " by id desc limit 1") == "success", 120, "the walk")
    finally:
        emu.control("POST", "/config", {"latency_ms": 0})
    t.eq(len(gets), len(w.pages), "one page read per edit")
    print("# between", between, "during the stream:", len(during), "queries,", len(others),
          "by other ends")
    t.ok(len(during) >= 4 and len(others) * 2 <= len(during) - len(others) + 4,
         "while the lane has work, the walk's other ends hold back: the walker's own queries"
         " go on, few of theirs", (len(during), len(others)))
    t.ok(between[len(between) // 2] == 0, "the burst's page reads follow one another, no"
         " query of the walk between most of them", between)
    t.ok(overlap >= 2, "the lane reads several pages at once (two or more reads in flight together)",
         overlap)
    t.ok(walked, "the walk then completes")


def restart(pg):
    w = World(pg, "restart", pages=3)
    quiet = Stack(pg, "restart-quiet", workers=0)
    key = w.subscribe(quiet)
    for i, page in enumerate(w.pages):
        emu.control("PATCH", f"/pages/{page}", {"properties": {"Name": f"After restart {i}"}})
        quiet.post(key, event("page.properties_updated", page, parent=w.page_parent()))
    t.eq(q(pg, "select count(*) from notion_webhook_events where status = 'received'"), "3",
         "three events stored, none processed (no worker)")
    os.kill(quiet.responder.procs[0].pid, signal.SIGKILL)
    quiet.responder.procs[0].wait()
    SCOPE.remove(quiet)
    h.stop_process(quiet.nginx.proc)
    Stack(pg, "restart-again")
    t.ok(wait(lambda: all((w.row(p) or {}).get("name") == f"After restart {i}"
                          for i, p in enumerate(w.pages))),
         "after the responder was killed, the next one processes the stored events")


# ==================================================================== oauth
def oauth(pg):
    workspace = str(uuid.uuid4())
    w = World(pg, "oauth", pages=2, oauth=True, workspace=workspace)
    t.eq(q(pg, f"select notion_workspace_id::text from user_settings where user_id ="
               f" '{w.user}'"), workspace, "a sync records the OAuth user's workspace (users/me)")

    def settings_reads():
        return int(q(pg, "select seq_scan + coalesce(idx_scan, 0) from pg_stat_user_tables"
                         " where relname = 'user_settings'"))
    before = settings_reads()
    cli(pg, "sync", "--user", w.user, "--database", w.database, "--quiet")
    # The request's check of the user's token and the run's read of it (which
    # also tells whether the workspace is still to be recorded): no third
    # statement per database synced. The CLI's backend flushes its counts
    # when it exits.
    t.eq(settings_reads() - before, 2, "a sync reads user_settings twice, the workspace check"
         " folded into the token read")
    pg.psql("insert into notion_sync_runs (user_id, database_id, database_name, trigger, status,"
            f" queued_at, full_walk) values ('{w.user}', '{w.database}', 'Characters', 'http',"
            " 'queued', now(), false)")
    before = settings_reads()
    code, _, out, err = cli(pg, "worker", "--once", "--workers", "1")
    # The run's token read only: a worker's turns that find no webhook event
    # due do not read the token for them.
    t.ok(code == 0 and settings_reads() - before == 1, "a queued run with no event due reads"
         " user_settings once", (code, settings_reads() - before, err[-300:]))
    stack = Stack(pg, "oauth")
    _, js, _, _ = cli(pg, "webhook", "create", "--oauth")
    key = js["key"]
    stack.post(key, {"verification_token": VERIFY})
    emu.control("PATCH", f"/pages/{w.pages[0]}", {"properties": {"Name": "Routed"}})
    st, js = stack.post(key, event("page.properties_updated", w.pages[0],
                                   parent=w.page_parent(), workspace=workspace))
    t.eq((st, js.get("status")), (200, "stored"), "an event of the user's workspace is stored")
    t.ok(wait(lambda: (w.row(w.pages[0]) or {}).get("name") == "Routed"),
         "... routed to that user and written")
    st, js = stack.post(key, event("page.properties_updated", w.pages[1],
                                   parent=w.page_parent(), workspace=str(uuid.uuid4())))
    t.eq((st, js.get("status")), (200, "ignored"), "another workspace's event: 200, ignored")
    t.ok("no user" in q(pg, "select outcome from notion_webhook_events where user_id is null"),
         "... with the reason")


# ================================================================== visible
def visible(pg):
    w = World(pg, "visible", pages=3)
    stack = Stack(pg, "visible")
    key = w.subscribe(stack)
    for page in w.pages:
        emu.control("PATCH", f"/pages/{page}", {"properties": {"Name": "Seen " + page[:4]}})
        stack.post(key, event("page.properties_updated", page, parent=w.page_parent()))
    settled(pg, 3)
    stats = rows(pg, "select * from notion_webhook_stats")[0]
    t.eq((stats["backlog"], stats["processed"]), (0, 3), "notion_webhook_stats: backlog and count")
    t.ok(0 <= stats["lag_p50_seconds"] <= stats["lag_p95_seconds"] <= stats["lag_max_seconds"],
         "... lag p50 <= p95 <= max", stats)
    h.note(f"lag received -> row written: p50 {stats['lag_p50_seconds']:.3f} s,"
           f" p95 {stats['lag_p95_seconds']:.3f} s")
    st, _, text = stack.nginx.request("GET", "/metrics",
                                      headers={"Authorization": f"Bearer {SECRET}"})
    t.eq(st, 200, "/metrics answers")
    for series in ("notion_sync_webhook_backlog 0", 'notion_sync_webhook_events{outcome="processed"} 3',
                   'notion_sync_webhook_lag_seconds{quantile="0.95"}',
                   "notion_sync_webhook_oldest_pending_seconds 0"):
        t.ok(series in text, f"/metrics has {series}", text[-800:])
    pg.psql("update notion_webhook_events set received_at = now() - interval '40 days'")
    pg.psql("insert into notion_webhook_events (subscription_key, event_id, user_id, type,"
            f" received_at) values ('{key}', gen_random_uuid(), '{w.user}', 'page.created',"
            " now() - interval '40 days')")
    pg.psql("update notion_webhook_events set status = 'received' where type = 'page.created'")
    lock = h.PsqlSession(pg)
    lock.send(f"select pg_advisory_lock(notion_sync_user_lock_key('{w.user}'));")
    lock.wait_state("idle", "pg_advisory_lock")
    pg.psql("select prune_notion_sync_history()")
    t.eq(q(pg, "select string_agg(status, ',') from notion_webhook_events"), "received",
         "pruning forgets old finished events and keeps the pending one")
    lock.send(f"select pg_advisory_unlock(notion_sync_user_lock_key('{w.user}'));")
    lock.finish()


# ================================================================= delivery
def delivery(pg):
    w = World(pg, "delivery", pages=6)
    second = emu.control("POST", "/databases", {
        "title": "Characters", "token": w.token,
        "data_sources": [{"schema": {"Name": "title", "Description": "rich_text"}}]})
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values"
            f" ('{w.user}', '{second['database_id']}', 'Characters')")
    outside = emu.control("POST", "/databases", {
        "title": "Drafts", "token": w.token,
        "data_sources": [{"schema": {"Name": "title", "Description": "rich_text"}}]})
    stack = Stack(pg, "delivery")
    _, made, _, _ = cli(pg, "webhook", "create", "--user", w.user)
    sub = emu.control("POST", "/webhooks", {"url": stack.nginx.url + made["path"],
                                            "token": w.token, "cafile": stack.nginx.cert,
                                            "duplicates": 1, "reorder": True,
                                            "aggregate_ms": 300, "retry_base_ms": 200})
    sid = sub["subscription_id"]
    shown = {}
    t.ok(wait(lambda: (shown.update(cli(pg, "webhook", "show", made["key"])[1] or {}) or
                       shown.get("verification_token"))),
         "the emulator's handshake reaches the endpoint and its token is stored")
    emu.control("POST", f"/webhooks/{sid}/verify",
                {"verification_token": shown.get("verification_token")})
    t.eq(emu.control("GET", f"/webhooks/{sid}")["state"], "active",
         "the token `webhook show` printed verifies the subscription in Notion")
    p = w.pages
    emu.control("PATCH", f"/pages/{p[0]}", {"properties": {"Name": "Delivered Zero"}})
    emu.control("PATCH", f"/pages/{p[0]}", {"properties": {"Description": "twice in a row"}})
    w.add_page("Delivered New")
    emu.control("POST", f"/pages/{p[1]}/trash", {})
    emu.control("POST", f"/pages/{p[2]}/trash", {})
    emu.control("PATCH", f"/pages/{p[2]}", {"in_trash": False})
    emu.control("POST", f"/pages/{p[3]}/content", {})
    emu.control("POST", f"/pages/{p[4]}/move", {"data_source_id": second["data_source_ids"][0]})
    emu.control("POST", f"/pages/{p[5]}/move", {"data_source_id": outside["data_source_ids"][0]})
    emu.control("PATCH", f"/data_sources/{w.source}", {"add": {"Age": "number"}})
    emu.control("POST", "/webhooks/drain", {"timeout_ms": 20000})
    settled(pg)
    h.wait_for(lambda: pg.scalar("select count(*) from notion_sync_runs where status in"
                                 " ('queued', 'running')") == "0", timeout=60,
               what="the walk the schema change queued")

    def table():
        return {r["id"]: (r["name"], r["db"]) for r in rows(
            pg, "select notion_page_id::text as id, name, notion_database_id::text as db from"
                f" notion_characters_sync where user_id = '{w.user}'")}

    def truth():
        out = {}
        for db in (w.db, second):
            for pid, (_, page) in h.ground_truth(emu, db).items():
                out[pid] = ("".join(x["plain_text"] for x in page["properties"]["Name"]["title"]),
                            db["database_id"])
        return out
    t.eq(table(), truth(), "every change converges to the emulator's truth (rows, names,"
         " databases), with duplicates, reordering and aggregation on")
    stats = emu.control("GET", f"/webhooks/{sid}")
    t.ok(stats["delivered"] > stats["events"] - stats.get("aggregated", 0),
         "(the emulator did deliver duplicates)", stats)
    dups = int(q(pg, "select count(*) from notion_webhook_events"))
    t.ok(dups <= stats["events"], "a duplicate delivery is stored once", (dups, stats))
    t.ok(int(q(pg, "select count(*) from notion_sync_runs where trigger = 'webhook' and mode ="
                   " 'full'")) >= 1, "the schema change queued a full walk")
    # The endpoint is down: Notion retries; the next responder takes the events.
    SCOPE.remove(stack)
    h.stop_responder(stack.responder)
    emu.control("PATCH", f"/pages/{p[0]}", {"properties": {"Name": "While Down"}})
    t.ok(wait(lambda: any(d["kind"] == "event" and d["status"] != 200 for d in emu.control(
        "GET", f"/webhooks/{sid}/deliveries")["deliveries"]), 20),
        "a delivery while the responder is down fails (nginx answers 502)")
    env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=2)
    again = h.Responder(env, processes=1)
    stack.responder = again
    SCOPE.append(stack)
    LOGS.append(("delivery again responder", again.log_text))
    stack.nginx.set_upstream(again.port)
    t.ok(wait(lambda: (w.row(p[0]) or {}).get("name") == "While Down", 30),
         "the retried delivery arrives once the responder is back, and is written")
    attempts = [d["attempt_number"] for d in emu.control("GET", f"/webhooks/{sid}/deliveries")[
        "deliveries"] if d["kind"] == "event" and d["entity_id"] == p[0]]
    t.ok(max(attempts) >= 2, "... on a later attempt of the same event", attempts)


# ================================================================== hygiene
def hygiene():
    texts = [(name, get()) for name, get in LOGS]
    for name, text in texts:
        t.ok(VERIFY not in text and "sha256=" not in text and '"verification_token"' not in text
             and '"entity"' not in text, f"{name} log holds no token, signature or event body")


scenario.run(t, [scenario.on_own_database(TEMPLATE, "hooks", n, f, SCOPE) for n, f in [
    ("subscriptions", subscriptions), ("handshake", handshake), ("signatures", signatures),
    ("pages", pages), ("databases", databases), ("lane", lane), ("restart", restart),
    ("oauth", oauth),
    ("visible", visible), ("delivery", delivery)]] + [("hygiene", hygiene)])
