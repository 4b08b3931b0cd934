#!/usr/bin/env python3
"""test_signed.py - signed requests (X-Notion-Sync-Signature), end to end.

The stack: PostgreSQL 15 with the migrations, the Notion emulator with one
user and one database, notion-sync-fcgi under spawn-fcgi (one process,
NOTION_SYNC_WORKERS=1, connecting as a login role of notion_sync_service)
and nginx with the repository's nginx/notion-sync-locations.conf inside a
TLS server (harness.TlsNginx).

    X-Notion-Sync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

Checked: a signed async request is accepted once (a replay, also after a
restart of the responder, answers 202 "duplicate" and queues nothing);
the 5-minute / 60-second window; an altered body, a wrong secret,
malformed headers; hex in upper case; the digits of t signed as sent;
rotation (NOTION_SYNC_SECRET="new,old", then "new"); no signatures on the
status endpoint or /metrics; the bearer still works; every answer is JSON;
the messages of the responder itself (spoken FastCGI directly, since an
auth_request refusal is answered by nginx's own 401 page); no secret and
no signature in any log; and notion_sync_signature() in PostgreSQL makes
the very header Python and the responder compute (non-ASCII bodies and
jsonb_build_object(...)::text included), and only its owner may call it.
Prints TAP; the harness stops every process.

The TLS nginx and the responder are shared by every scenario; each scenario
runs on its own PostgreSQL database (a copy of a migrated template holding
the user and its database), the responder restarted onto it
(scenario.run; all by default, or some by name: test_signed.py window):
  accepted   a signed async request is accepted once, its replay is a duplicate;
  window     300 s back, 60 s ahead (nginx and the responder's own words);
  tamper     an altered body, a wrong secret;
  hexcase    hex in upper case, the digits of t signed as sent;
  malformed  malformed headers, OWS around the value;
  bearer_only  the status endpoint and /metrics take no signature;
  bearer     the bearer still works (a signed run of its own to look up);
  sql        notion_sync_signature() agrees with Python and C, owner only;
  rotation   "new,old", then "new" after a restart; a replay still a duplicate;
  hygiene    every answer so far is JSON, no secret or signature in any log
             (run alone: after the accepted scenario).
"""


import hashlib
import hmac
import json
import time

import harness as h
import scenario


SYNC = "/api/notion/sync-to-postgres"
RUNS = "/api/notion/sync-runs/"
NEW = "Signed-New-Secret-4b7e1c9d2aQx"
OLD = "Signed-Old-Secret-8f0a3d6e5bWz"
WRONG = "Signed-Wrong-Secret-1c2d3e4f5a"
TOKEN = "secret_signed_token_user_7d3a91"
U = "5e000000-0000-4000-8000-000000000001"
SVC_LOGIN = "nsync_signed_responder"
N_PAGES = 5
FINAL = ("success", "error", "skipped")

t = h.Tap()
STARTED = time.monotonic()

TEMPLATE = h.migrated_cluster(spares=False)   # spares once it holds the user, below
TEMPLATE.psql(f"create role {SVC_LOGIN} login in role notion_sync_service")
emu = h.Emulator()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "signed", "databases": []})
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
D = db["database_id"]
emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0], "count": N_PAGES,
                                  "seed": 11, "kind": "Characters"})
TEMPLATE.psql(f"insert into user_settings (user_id, notion_token) values ('{U}', '{TOKEN}')")
TEMPLATE.psql(f"insert into notion_databases (user_id, database_id, database_name) "
              f"values ('{U}', '{D}', 'Characters')")
h.keep_spares(TEMPLATE)


def env_of(db, secret):
    """The responder's environment on database db (a login role of notion_sync_service)."""
    return dict(h.base_env(db, emu, DATABASE_URL=f"host={db.dir} dbname={db.dbname} "
                                                 f"user={SVC_LOGIN}",
                           NOTION_SYNC_WORKERS=1), NOTION_SYNC_SECRET=secret)


# The responder never serves the template (a template must have no sessions): it
# starts on a copy, and each scenario restarts it onto its own copy.
pg = scenario.clone_database(TEMPLATE, "signed_idle")  # the running scenario's database
resp = h.Responder(env_of(pg, f"{NEW},{OLD}"))
nginx = h.TlsNginx(resp.port, rate="1000r/s")
h.note(f"stack up in {time.monotonic() - STARTED:.1f}s: {nginx.url}, responder 127.0.0.1:{resp.port}")

ANSWERS = []     # (label, status, content type, parsed body)
SIGNATURES = []  # every signature header value sent
SCENARIO_DBS = []  # every scenario's database, for the final drain

# --- helpers -------------------------------------------------------------------------------------

def sign(body, secret=NEW, ts=None, t_text=None):
    """The header value for body (bytes), signed at ts (now) with secret."""
    t_text = t_text if t_text is not None else str(int(time.time()) if ts is None else int(ts))
    mac = hmac.new(secret.encode(), t_text.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t_text},v1={mac}"


def verify(header, body, secret):
    """True when header is a valid signature of body by secret (Python's own check)."""
    try:
        t_part, v_part = header.split(",", 1)
        assert t_part.startswith("t=") and v_part.startswith("v1=")
        ts = t_part[2:]
        want = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, v_part[3:]) and abs(int(ts) - time.time()) < 30
    except (AssertionError, ValueError):
        return False


def body_of(**extra):
    return json.dumps(dict({"user_id": U, "database_id": D, "async": True}, **extra)).encode()


def call(method, path, body=None, signature=None, bearer=None, label=None, record=True):
    """One request through nginx; recorded in ANSWERS (and its signature in
    SIGNATURES) unless record=False (a scenario's own setup)."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Notion-Sync-Signature"] = signature
        if record:
            SIGNATURES.append(signature)
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    st, hd, js = nginx.request(method, path, body, headers, timeout=30)
    if record:
        ANSWERS.append((label or f"{method} {path}", st, hd.get("Content-Type", ""), js))
    return st, js


def post(body, signature, label, record=True):
    return call("POST", SYNC, body, signature, label=label, record=record)


def message(js):
    return ((js or {}).get("error") or {}).get("message", "") if isinstance(js, dict) else ""


def unauthorized(st, js):
    return (st == 401 and isinstance(js, dict) and js.get("success") is False
            and (js.get("error") or {}).get("code") == "unauthorized")


def accepted(st, js):
    """The run ids of a 202 "accepted" answer, or None."""
    if st != 202 or not isinstance(js, dict) or js.get("status") != "accepted":
        return None
    return [r.get("run_id") for r in js.get("runs") or []]


def duplicate(st, js):
    return (st == 202 and isinstance(js, dict) and js.get("success") is True
            and js.get("status") == "duplicate")


def runs_count():
    return int(pg.scalar("select count(*) from notion_sync_runs"))


def run_status(run_id):
    return pg.scalar(f"select status from notion_sync_runs where id = {int(run_id)}")


def wait_final(run_id, timeout=30.0):
    h.wait_for(lambda: run_status(run_id) in FINAL, timeout=timeout, interval=0.1,
               what=f"run {run_id} to finish")
    return run_status(run_id)


def lit(s):
    return "'" + s.replace("'", "''") + "'"


# Straight to the responder (FastCGI): its own answers, which nginx replaces
# with its 401 page when the auth_request subrequest refuses.
def fcgi(path, signature, body=b"", method="POST"):
    """(status, content type, parsed body) of one request straight to the responder."""
    params = h.cgi_params(method, path, CONTENT_TYPE="application/json",
                          CONTENT_LENGTH=str(len(body)), HTTP_X_NOTION_SYNC_SIGNATURE=signature)
    SIGNATURES.append(signature)
    st, hdrs, raw = h.fastcgi(resp.port, params, body, timeout=15)
    try:
        js = json.loads(raw)
    except ValueError:
        js = raw
    return st, hdrs.get("content-type", ""), js


def on_its_own_database(name, fn, secret=f"{NEW},{OLD}"):
    """fn on a fresh copy of the template, the responder restarted onto it."""
    def run():
        global pg
        pg = scenario.clone_database(TEMPLATE, f"signed_{name}")
        SCENARIO_DBS.append(pg)
        h.respawn(resp, env_of(pg, secret))
        fn()
        try:   # its async runs end before the responder moves on
            drain()
        except TimeoutError as exc:
            h.note(f"{name}: {exc}")
    return name, run


def first_signed_run(label):
    """Setup (not recorded): a signed async request and its finished run; (body,
    signature, run id)."""
    body = body_of()
    sig = sign(body)
    st, js = post(body, sig, label, record=False)
    ids = accepted(st, js)
    if not ids:
        raise RuntimeError(f"{label}: the signed request was not accepted: {st} {js}")
    wait_final(ids[0])
    return body, sig, ids[0]


def drain(timeout=30):
    h.wait_for(lambda: pg.scalar("select count(*) from notion_sync_runs where status in "
                                 "('queued', 'running')") == "0", timeout=timeout, interval=0.2,
               what="the queue to drain")


# --- accepted once -------------------------------------------------------------------------------

def accepted_once():
    h.note("--- a signed async request is accepted once")
    BODY1 = body_of()
    SIG1 = sign(BODY1)
    st, js = post(BODY1, SIG1, "signed async")
    ids = accepted(st, js)
    t.ok(ids is not None and len(ids) == 1 and isinstance(ids[0], int),
         'signed async POST -> 202 {"status":"accepted"} with one run', (st, js))
    RUN1 = ids[0] if ids else 0
    t.eq(runs_count(), 1, "exactly one run recorded")
    t.eq(wait_final(RUN1) if RUN1 else None, "success", "the run finishes with success")
    t.eq(pg.scalar(f"select pages_seen from notion_sync_runs where id = {RUN1 or 0}"), str(N_PAGES),
         f"the run saw the {N_PAGES} pages")
    t.eq(pg.scalar(f"select trigger from notion_sync_runs where id = {RUN1 or 0}"), "http",
         "its trigger is http (the User-Agent is not pg_net's)")
    seen = pg.psql("select signature from notion_sync_seen_signatures")
    t.eq(seen, [[SIG1.split("v1=")[1]]], "notion_sync_seen_signatures holds the MAC (v1) of it")

    st, js = post(BODY1, SIG1, "replay")
    t.ok(duplicate(st, js), 'the same request again -> 202 {"success":true,"status":"duplicate"}',
         (st, js))
    t.eq(runs_count(), 1, "the replay queued nothing")
    t.ok("runs" not in (js or {}), "the duplicate answer names no runs", js)


# --- the window ----------------------------------------------------------------------------------

def window():
    h.note("--- the window: 300 s back, 60 s ahead")
    # Offsets from the second of sending; the responder's clock may be one
    # second on, hence 62 (not 61) for "just past 60 s ahead".
    for label, offset, ok in (("400 s old", -400, False), ("301 s old", -301, False),
                              ("120 s ahead", 120, False), ("62 s ahead", 62, False),
                              ("290 s old", -290, True), ("50 s ahead", 50, True)):
        body = body_of(case=label)
        before = runs_count()
        st, js = post(body, sign(body, ts=int(time.time()) + offset), f"t {label}")
        if ok:
            t.ok(accepted(st, js) is not None, f"t {label} -> 202 accepted (inside the window)",
                 (st, js))
        else:
            t.ok(unauthorized(st, js), f"t {label} -> 401 JSON", (st, js))
            t.eq(runs_count(), before, f"t {label}: nothing queued")
    now = int(time.time())
    # The responder's own words (nginx answers an auth_request refusal with its page).
    body = body_of(case="direct old")
    st, ctype, js = fcgi(SYNC, sign(body, ts=now - 400), body)
    t.ok(st == 401 and "older than 5 minutes" in message(js) and ctype.startswith("application/json"),
         'the responder itself: t 400 s old -> 401 "... older than 5 minutes ..."', (st, ctype, js))
    st, ctype, js = fcgi(SYNC, sign(body, ts=now + 120), body)
    t.ok(st == 401 and "older than 5 minutes" in message(js),
         "the responder itself: t 120 s ahead -> 401 (the same message: dated in the future)",
         (st, js))
    st, ctype, js = fcgi("/_notion_sync_auth", sign(b"", ts=now - 400), b"", method="GET")
    t.ok(st == 401 and "older than 5 minutes" in message(js),
         "the auth_request subrequest refuses an old signature with that message too", (st, js))
    st, js = post(body, sign(body, ts=now - 400), "via nginx: message")
    # auth_request drops the subrequest's body: the responder passes the reason
    # on in a header that nginx's own 401 page uses (auth_request_set).
    t.ok(st == 401 and "older than 5 minutes" in message(js),
         "through nginx the 401 for an old signature says why", (st, js))


# --- body and secret -----------------------------------------------------------------------------

def tamper():
    h.note("--- altered body, wrong secret")
    body = body_of(case="altered")
    sig = sign(body)
    altered = body.replace(b'"altered"', b'"Altered"')
    assert len(altered) == len(body) and altered != body
    before = runs_count()
    seen_before = int(pg.scalar("select count(*) from notion_sync_seen_signatures"))
    st, js = post(altered, sig, "altered body")
    t.ok(unauthorized(st, js) and "does not match" in message(js),
         'body altered by one byte, the old signature -> 401 "... does not match ..."', (st, js))
    st, js = post(body + b" ", sig, "body + one space")
    t.ok(unauthorized(st, js) and "does not match" in message(js),
         "one trailing space added to the body -> 401 does not match", (st, js))
    st, js = post(body, sign(body, WRONG), "wrong secret")
    t.ok(unauthorized(st, js) and "does not match" in message(js),
         "signed with a secret the responder does not know -> 401 does not match", (st, js))
    st, js = post(body, sign(body, NEW + "x"), "secret + x")
    t.ok(unauthorized(st, js), "signed with the secret plus one character -> 401", (st, js))
    t.eq(runs_count(), before, "nothing queued by the refused requests")
    t.eq(int(pg.scalar("select count(*) from notion_sync_seen_signatures")), seen_before,
         "refused signatures are not remembered in notion_sync_seen_signatures")
    st, js = post(body, sig, "the untouched body afterwards")
    t.ok(accepted(st, js) is not None,
         "the untouched body with its signature is still accepted afterwards", (st, js))


# --- hex case, t as sent -------------------------------------------------------------------------

def hexcase():
    h.note("--- hex case, the digits of t as sent")
    body = body_of(case="upper")
    sig = sign(body)
    upper = sig.split(",v1=")[0] + ",v1=" + sig.split(",v1=")[1].upper()
    st, js = post(body, upper, "uppercase hex")
    t.ok(accepted(st, js) is not None, "v1 in upper-case hex -> 202 accepted", (st, js))
    st, js = post(body, sig, "lowercase replay of uppercase")
    t.ok(duplicate(st, js), "the same MAC again in lower case -> 202 duplicate (case does not "
         "make a new signature)", (st, js))
    body = body_of(case="leading zero")
    ts = str(int(time.time()))
    st, js = post(body, sign(body, t_text="0" + ts), "t with a leading zero, signed as sent")
    t.ok(accepted(st, js) is not None, "t=0<unix> signed over \"0<unix>.<body>\" -> 202", (st, js))
    mac = sign(body, t_text=ts).split("v1=")[1]
    st, js = post(body, f"t=00{ts},v1={mac}", "t with zeros, signed without")
    t.ok(unauthorized(st, js), "t=00<unix> with the MAC of \"<unix>.<body>\" -> 401 (t is signed "
         "as sent)", (st, js))


# --- malformed -----------------------------------------------------------------------------------

def malformed():
    h.note("--- malformed headers")
    body = body_of(case="malformed")
    good = sign(body)
    ts, mac = good[2:].split(",v1=")
    before = runs_count()
    for label, value in (("missing v1", f"t={ts}"),
                         ("missing t", f"v1={mac}"),
                         ("t not digits", f"t=abc,v1={mac}"),
                         ("t negative", f"t=-{ts},v1={mac}"),
                         ("t fractional", f"t={ts}.5,v1={mac}"),
                         ("63 hex digits", f"t={ts},v1={mac[:63]}"),
                         ("65 hex digits", f"t={ts},v1={mac}0"),
                         ("non-hex digit", f"t={ts},v1={mac[:63]}g"),
                         ("space after the comma", f"t={ts}, v1={mac}"),
                         ("space after =", f"t= {ts},v1={mac}"),
                         ("space before the comma", f"t={ts} ,v1={mac}"),
                         ("tab inside", f"t={ts},\tv1={mac}"),
                         ("fields swapped", f"v1={mac},t={ts}"),
                         ("v0 scheme", f"t={ts},v0={mac}"),
                         ("a second v1", f"t={ts},v1={mac},v1={mac}"),
                         ("upper-case T=", f"T={ts},V1={mac}"),
                         ("13 digits of t", f"t=0000000{ts}"[:15] + f",v1={mac}"),
                         ("empty", "")):
        st, js = post(body, value, f"malformed: {label}")
        t.ok(unauthorized(st, js), f"malformed ({label}) -> 401 JSON", (st, value, js))
    t.eq(runs_count(), before, "nothing queued by malformed headers")
    for label, value in (("missing v1", f"t={ts}"), ("63 hex digits", f"t={ts},v1={mac[:63]}"),
                         ("space after the comma", f"t={ts}, v1={mac}")):
        st, ctype, js = fcgi(SYNC, value, body)
        t.ok(st == 401 and "must be" in message(js) and ctype.startswith("application/json"),
             f'the responder itself: {label} -> 401 "... must be ..."', (st, js))
    st, js = post(body, good, "well-formed after the malformed ones")
    t.ok(accepted(st, js) is not None, "the well-formed signature is accepted afterwards", (st, js))
    # Spaces around the whole value are not part of it in HTTP (RFC 9110 OWS):
    # nginx strips them, so only the responder itself sees them.
    body = body_of(case="ows")
    good = sign(body)
    for label, value in (("a space before t", " " + good), ("a trailing space", good + " ")):
        st, ctype, js = fcgi(SYNC, value, body)
        t.ok(st == 401 and "must be" in message(js),
             f'the responder itself: {label} -> 401 "... must be ..."', (st, js))
    st, js = post(body, " " + good + " ", "OWS around the value")
    t.ok(accepted(st, js) is not None, "through nginx, spaces around the value (stripped as HTTP "
         "says) -> 202", (st, js))


# --- where signatures are not accepted -----------------------------------------------------------

def bearer_only():
    RUN1 = 1  # a run id as the first run of a fresh database has it
    h.note("--- status endpoint and /metrics: bearer only")
    for path in ("/metrics", RUNS + str(RUN1 or 1), RUNS + "999999"):
        st, js = call("GET", path, signature=sign(b""), label=f"signed GET {path}")
        t.ok(unauthorized(st, js), f"GET {path} with a fresh signature of the empty body -> 401",
             (st, js))
        st, ctype, js = fcgi(path, sign(b""), method="GET")
        t.ok(st == 401 and ctype.startswith("application/json"),
             f"GET {path} straight to the responder with a signature -> 401 JSON", (st, js))


# --- bearer --------------------------------------------------------------------------------------

def bearer():
    _, _, RUN1 = first_signed_run("bearer: a signed run to look up")
    h.note("--- the bearer still works")
    st, js = call("POST", SYNC, body_of(case="bearer"), bearer=NEW, label="bearer POST")
    t.ok(accepted(st, js) is not None, "POST with Authorization: Bearer <new> -> 202", (st, js))
    st, js = call("POST", SYNC, body_of(case="bearer"), bearer=NEW, label="bearer POST again")
    t.ok(accepted(st, js) is not None, "the same bearer request again -> 202 accepted (bearer "
         "requests are not deduplicated)", (st, js))
    st, js = call("POST", SYNC, body_of(case="bearer old"), bearer=OLD, label="bearer old")
    t.ok(accepted(st, js) is not None, "Bearer <old> (second in the rotation list) -> 202", (st, js))
    st, js = call("GET", RUNS + str(RUN1), bearer=NEW, label="bearer status")
    t.ok(st == 200 and isinstance(js, dict) and (js.get("run") or {}).get("status") == "success",
         "GET /api/notion/sync-runs/{id} with the bearer -> 200", (st, js))
    st, js = call("GET", "/metrics", bearer=NEW, label="bearer metrics")
    t.ok(st == 200 and isinstance(js, str) and "notion_sync" in js, "GET /metrics with the bearer "
         "-> 200 (Prometheus text)", st)
    st, js = call("POST", SYNC, body_of(case="bad bearer"), bearer=WRONG,
                  signature=sign(body_of(case="bad bearer")), label="wrong bearer + good signature")
    t.ok(accepted(st, js) is not None, "a wrong bearer next to a valid signature: the signature "
         "decides -> 202", (st, js))


# --- SQL: notion_sync_signature() ----------------------------------------------------------------

def sql():
    h.note("--- notion_sync_signature() in PostgreSQL agrees with Python and C")
    # psql writes and reads UTF-8: the body reaches SQL as the same characters.
    body_e = json.dumps({"user_id": U, "database_id": D, "async": True,
                         "note": "café é — ✓ 日本"}, ensure_ascii=False)
    hdr = pg.raw(f"select notion_sync_signature({lit(body_e)}, {lit(NEW)})")
    t.ok(verify(hdr, body_e.encode("utf-8"), NEW),
         "select notion_sync_signature(<body with é>, secret) verifies in Python over the UTF-8 "
         "bytes", hdr)
    t.ok(not verify(hdr, body_e.encode("latin-1", "replace"), NEW),
         "... and not over other bytes (it signs UTF-8)")
    st, js = post(body_e.encode("utf-8"), hdr, "SQL-signed é body")
    t.ok(accepted(st, js) is not None, "the responder accepts the request signed by SQL (é body)",
         (st, js))

    row = pg.psql(f"select b::text, notion_sync_signature(b::text, {lit(OLD)}) from "
                  f"(select jsonb_strip_nulls(jsonb_build_object('user_id', '{U}'::uuid, "
                  f"'database_id', '{D}'::uuid, 'database_name', 'Characters', 'async', true, "
                  f"'note', 'é ü ß')) as b) x")[0]
    jtext, jhdr = row[0], row[1]
    t.ok(": " in jtext and "é" in jtext, f"jsonb_build_object(...)::text is jsonb's spaced text: "
         f"{jtext}")
    t.ok(verify(jhdr, jtext.encode("utf-8"), OLD), "its SQL signature (secret <old>) verifies in "
         "Python", (jtext, jhdr))
    st, js = post(jtext.encode("utf-8"), jhdr, "SQL-signed jsonb body")
    t.ok(accepted(st, js) is not None, "the responder accepts the jsonb body signed by SQL with the "
         "old secret", (st, js))
    st, js = post(json.dumps(json.loads(jtext)).encode(), jhdr, "jsonb body re-serialised")
    t.ok(unauthorized(st, js), "the same JSON re-serialised by Python (other bytes) -> 401", (st, js))
    for role in ("notion_sync_service", "notion_sync_app", "notion_sync_scheduler", "public"):
        if role == "public":
            got = pg.scalar("select count(*) from pg_proc p, aclexplode(p.proacl) a where "
                            "p.proname = 'notion_sync_signature' and a.grantee = 0")
            t.eq(got, "0", "notion_sync_signature: nothing granted to PUBLIC")
            continue
        if pg.scalar(f"select count(*) from pg_roles where rolname = '{role}'") == "0":
            t.skip(f"role {role} does not exist")
            continue
        got = pg.scalar(f"select has_function_privilege('{role}', "
                        f"'notion_sync_signature(text, text)', 'execute')")
        t.eq(got, "f", f"{role} may not execute notion_sync_signature (owner only)")
    code, out, err = h.psql_as(pg, SVC_LOGIN, f"select notion_sync_signature('x', {lit(NEW)})")
    t.ok(code != 0 and "permission denied" in err, "the responder's login role gets permission "
         "denied calling it", (code, out, err))


# --- rotation ------------------------------------------------------------------------------------

def rotation():
    BODY1, SIG1, _ = first_signed_run("rotation: the request replayed after the restart")
    h.note("--- rotation: NOTION_SYNC_SECRET=\"new,old\", then \"new\"")
    b_new, b_old = body_of(case="rot new"), body_of(case="rot old")
    st, js = post(b_new, sign(b_new, NEW), "rotation: new")
    t.ok(accepted(st, js) is not None, "with \"new,old\": signed by new -> 202", (st, js))
    st, js = post(b_old, sign(b_old, OLD), "rotation: old")
    t.ok(accepted(st, js) is not None, "with \"new,old\": signed by old -> 202", (st, js))
    h.wait_for(lambda: pg.scalar("select count(*) from notion_sync_runs where status in "
                                 "('queued', 'running')") == "0", timeout=30, interval=0.2,
               what="the queue to drain")
    h.respawn(resp, env_of(pg, NEW))
    b_new, b_old = body_of(case="rot new 2"), body_of(case="rot old 2")
    st, js = post(b_old, sign(b_old, OLD), "after rotation: old")
    t.ok(unauthorized(st, js) and "does not match" in message(js),
         "old removed (NOTION_SYNC_SECRET=new): signed by old -> 401 does not match", (st, js))
    st, js = call("POST", SYNC, b_old, bearer=OLD, label="after rotation: bearer old")
    t.ok(unauthorized(st, js), "old removed: Bearer <old> -> 401", (st, js))
    st, js = post(b_new, sign(b_new, NEW), "after rotation: new")
    t.ok(accepted(st, js) is not None, "old removed: signed by new -> 202", (st, js))
    before = runs_count()
    st, js = post(BODY1, SIG1, "replay after restart")
    t.ok(duplicate(st, js), "the first request replayed after the responder restarted -> 202 "
         "duplicate (remembered in PostgreSQL)", (st, js))
    t.eq(runs_count(), before, "... and nothing queued")


# --- every answer JSON, the logs ---------------------------------------------------------------

def hygiene():
    if not ANSWERS:  # run alone: the accepted scenario's traffic to look at
        h.note("hygiene: run alone, so first the accepted scenario")
        on_its_own_database("accepted", accepted_once)[1]()

    # --- every answer JSON ---------------------------------------------------------------------------
    bad = [(lbl, st, ct) for lbl, st, ct, js in ANSWERS
           if lbl != "bearer metrics" and not (ct.startswith("application/json") and isinstance(js, dict))]
    t.ok(not bad, f"all {len(ANSWERS) - 1} answers (but /metrics' 200) are JSON objects with "
         "Content-Type application/json", bad)

    # --- logs ----------------------------------------------------------------------------------------
    h.wait_for(lambda: pg.scalar("select count(*) from notion_sync_runs where status in "
                                 "('queued', 'running')") == "0", timeout=30, interval=0.2,
               what="the queue to drain")
    logs = {"nginx": nginx.logs(), "responder": resp.log_text()}
    secrets = [NEW, OLD, WRONG, TOKEN]
    macs = sorted({s.split("v1=", 1)[1][:40] for s in SIGNATURES if "v1=" in s and
                   len(s.split("v1=", 1)[1]) >= 40}, key=str)
    for name, text in logs.items():
        found = [s for s in secrets if s in text or s.lower() in text.lower()]
        t.ok(not found, f"no secret or Notion token in the {name} logs ({len(text)} bytes)", found)
        leaked = [m for m in macs if m.lower() in text.lower()]
        t.ok(not leaked, f"none of the {len(macs)} signature values (v1) in the {name} logs",
             leaked[:3])
        t.ok("X-Notion-Sync-Signature".lower() not in text.lower() and "v1=" not in text,
             f"no signature header in the {name} logs")
    t.ok("request method=POST path=/api/notion/sync-to-postgres status=202" in logs["responder"],
         "(the responder log does hold the request lines)")
    t.ok(resp.alive(), "the responder is still running")
    h.note(f"done in {time.monotonic() - STARTED:.1f}s")


scenario.run(t, [on_its_own_database("accepted", accepted_once),
                 on_its_own_database("window", window),
                 on_its_own_database("tamper", tamper),
                 on_its_own_database("hexcase", hexcase),
                 on_its_own_database("malformed", malformed),
                 on_its_own_database("bearer_only", bearer_only),
                 on_its_own_database("bearer", bearer),
                 on_its_own_database("sql", sql),
                 on_its_own_database("rotation", rotation),
                 ("hygiene", hygiene)])
