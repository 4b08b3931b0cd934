#!/usr/bin/env python3
"""Self-test of the Notion emulator (stdlib only). Prints TAP; exit status 0 iff all pass.

Starts tests/emulator/notion_emulator.py on a free loopback port, exercises the main
behaviours through real HTTP, and always stops the emulator at the end. Webhook deliveries
go to receivers of this process on 127.0.0.1 (Receiver), which check every signature.
Usage: python3 tests/emulator/selftest.py [-v]
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "notion_emulator.py")
TOKEN = "test-token-not-a-secret-aaaa"
OTHER_TOKEN = "test-token-not-a-secret-bbbb"
PROOF_TOKEN = "test-token-not-a-secret-cccc"   # sees only the databases of the t_proof_* tests
V22, V25, V26 = "2022-06-28", "2025-09-03", "2026-03-11"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MINUTE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$")

DB_A = "a0000000-0000-4000-8000-00000000000a"      # single data source, 50 pages
DS_A = "a0000000-0000-4000-8000-0000000000d5"
DB_M = "b0000000-0000-4000-8000-00000000000b"      # two data sources
DB_U = "c0000000-0000-4000-8000-00000000000c"      # not shared with TOKEN
DB_G = "d0000000-0000-4000-8000-00000000000d"      # generated pages
DS_G = "d0000000-0000-4000-8000-0000000000d5"
DB_R = "f1000000-0000-4000-8000-00000000000f"      # "Characters": its data source gets revoked
DS_R = "f1000000-0000-4000-8000-0000000000d5"
DB_L = "f2000000-0000-4000-8000-00000000000f"      # "Worlds": created without data sources
DB_S = "f3000000-0000-4000-8000-00000000000f"      # "Stories": sources "Drafts", "Published"
DS_S1 = "f3000000-0000-4000-8000-0000000000d1"
DS_S2 = "f3000000-0000-4000-8000-0000000000d2"
DB_T = "f4000000-0000-4000-8000-00000000000f"      # title "Title" beside rich_text "Name"
DS_T = "f4000000-0000-4000-8000-0000000000d5"
MSG_NO_SOURCES = ("Database with ID %s does not contain any data sources accessible by this API "
                  "bot.")
MSG_MULTI = "Databases with multiple data sources are not supported in this API version."


class Fail(Exception):
    pass


class Skip(Exception):
    """The test cannot run here (reported as ok # SKIP)."""


def check(cond, msg, *details):
    if not cond:
        raise Fail(msg + "".join("\n" + str(d) for d in details))


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=h)
                resp = self.conn.getresponse()
                text = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(text) if ctype.startswith("application/json") else text
        return resp.status, resp, parsed

    def api(self, method, path, body=None, version=V25, token=TOKEN, headers=None, raw=None):
        h = {}
        if version is not None:
            h["Notion-Version"] = version
        if token is not None:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        return self.request(method, "/v1" + path, body, h, raw)

    def ctl(self, method, path, body=None):
        status, _, parsed = self.request(method, "/_emulator" + path, body)
        if status != 200:
            raise Fail("control %s %s -> %d %s" % (method, path, status, parsed))
        return parsed

    def query(self, ds, body=None, version=V25, qs=""):
        return self.api("POST", "/data_sources/%s/query%s" % (ds, qs), body or {}, version)

    def walk(self, ds, body=None, version=V25):
        """All result pages of a query chain -> (ids, responses)."""
        body = dict(body or {})
        ids, responses = [], []
        while True:
            status, _, d = self.query(ds, body, version)
            check(status == 200, "query failed", d)
            responses.append(d)
            ids.extend(r["id"] for r in d["results"])
            if not d["has_more"]:
                return ids, responses
            body["start_cursor"] = d["next_cursor"]


def rt(text):
    return {"type": "text", "text": {"content": text, "link": None}}


def expect_error(result, status, code, message=None):
    st, resp, d = result
    check(st == status, "expected HTTP %d, got %d" % (status, st), d)
    check(isinstance(d, dict) and d.get("object") == "error" and d.get("code") == code,
          "expected code %s" % code, d)
    check(d.get("status") == status, "status member", d)
    check(d.get("request_id") == resp.getheader("x-notion-request-id"), "request_id mismatch", d)
    if message is not None:
        check(d.get("message") == message, "message mismatch", "got:  " + repr(d.get("message")),
              "want: " + repr(message))
    return d


# ---------------------------------------------------------------- tests

def t_setup(c):
    c.ctl("POST", "/reset")
    c.ctl("POST", "/clock", {"now": "2026-07-01T12:00:10Z"})
    c.ctl("POST", "/databases", {"id": DB_A, "title": "Characters", "data_sources": [{"id": DS_A, "schema": {
        "Name": "title", "Description": "rich_text", "Done": "checkbox", "Count": "number",
        "Links": "relation", "Team": "people", "Files": "files"}}]})
    c.ctl("POST", "/databases", {"id": DB_M, "title": "Multi", "data_sources": [{"name": "One"}, {"name": "Two"}]})
    c.ctl("POST", "/databases", {"id": DB_U, "title": "Hidden"})
    c.ctl("POST", "/tokens", {"token": TOKEN, "integration_name": "sync-test", "databases": [DB_A, DB_M]})
    c.ctl("POST", "/tokens", {"token": OTHER_TOKEN, "integration_name": "other", "databases": [DB_U]})
    for i in range(50):
        c.ctl("POST", "/pages", {"data_source_id": DS_A, "id": "e0000000-0000-4000-8000-%012d" % i,
                                 "created_time": "2026-06-01T10:%02d:%02dZ" % (i // 3, (i % 3) * 15),
                                 "properties": {"Name": [rt("Character %d" % i)], "Done": i % 2 == 0,
                                                "Count": i}})
    st, _, d = c.api("GET", "/users/me")
    check(st == 200 and d["type"] == "bot" and d["name"] == "sync-test", "users/me", d)
    check(d["bot"]["workspace_limits"]["max_file_upload_size_in_bytes"] == 5242880, "bot shape", d)


def t_missing_version(c):
    r = c.api("GET", "/databases/" + DB_A, version=None)
    expect_error(r, 400, "missing_version", "Notion-Version header failed validation: Notion-Version "
                 "header should be defined, instead was undefined.")
    check(r[1].getheader("Content-Type") == "application/json; charset=utf-8", "content type")
    d = expect_error(c.api("GET", "/databases/" + DB_A, version="2021-05-13"), 400, "validation_error")
    check(d["message"].startswith("Notion-Version header failed validation:"), "bad version msg", d)


def t_unauthorized(c):
    for tok in ("nope", None):
        st, resp, d = c.api("GET", "/users/me", token=tok)
        check(st == 401, "401 expected", d)
        want = {"object": "error", "status": 401, "code": "unauthorized",
                "message": "API token is invalid.", "request_id": resp.getheader("x-notion-request-id")}
        check(d == want, "401 body", d)
        check(list(d) == list(want), "401 field order", list(d))


def t_not_found(c):
    missing = "00000000-0000-4000-8000-000000000000"
    d = expect_error(c.api("GET", "/databases/" + missing.replace("-", "")), 404, "object_not_found",
                     "Could not find database with ID: %s. Make sure the relevant pages and databases "
                     "are shared with your integration \"sync-test\"." % missing)
    check(UUID_RE.match(d["additional_data"]["integration_id"]), "integration_id", d)
    check(list(d) == ["object", "status", "code", "message", "additional_data", "request_id"],
          "error field order", list(d))
    expect_error(c.api("GET", "/databases/" + DB_U), 404, "object_not_found")   # not shared
    expect_error(c.api("GET", "/pages/" + missing), 404, "object_not_found",
                 "Could not find page with ID: %s. Make sure the relevant pages and databases are "
                 "shared with your integration \"sync-test\"." % missing)
    expect_error(c.query(DB_A), 404, "object_not_found")   # database id is not a data source id
    st, _, d = c.api("GET", "/databases/" + DB_A.replace("-", "").upper())
    check(st == 200 and d["id"] == DB_A, "undashed upper-case id accepted", d)


def t_bad_requests(c):
    expect_error(c.api("GET", "/nope"), 400, "invalid_request_url", "Invalid request URL.")
    expect_error(c.api("POST", "/databases/%s/query" % DB_A, {}), 400, "invalid_request_url")
    expect_error(c.api("GET", "/data_sources/%s" % DS_A, version=V22), 400, "invalid_request_url")
    expect_error(c.api("POST", "/data_sources/%s/query" % DS_A, raw=b"{nope"), 400, "invalid_json")
    d = expect_error(c.query(DS_A, {"bogus": 1}), 400, "validation_error")
    check("body.bogus should be not present" in d["message"], "unknown key message", d)
    expect_error(c.query(DS_A, {"page_size": 101}), 400, "validation_error")
    expect_error(c.query(DS_A, {"page_size": 0}), 400, "validation_error")
    expect_error(c.query(DS_A, {"filter": {"foo": 1}}), 400, "validation_error")
    expect_error(c.query(DS_A, {"sorts": [{"property": "Nope", "direction": "ascending"}]}), 400,
                 "validation_error")


def t_database_shapes(c):
    st, _, d = c.api("GET", "/databases/" + DB_A)
    check(st == 200 and d["object"] == "database" and "properties" not in d, "2025 container", d)
    check(d["data_sources"] == [{"id": DS_A, "name": "Characters"}], "data_sources", d["data_sources"])
    check(d["title"][0]["plain_text"] == "Characters" and d["archived"] is False, "title/archived", d)
    st, _, d = c.api("GET", "/databases/" + DB_A, version=V22)
    check(st == 200 and d["id"] == DB_A and d["properties"]["Name"]["type"] == "title", "2022 db", d)
    st, _, d = c.api("GET", "/databases/" + DB_A, version=V26)
    check(st == 200 and "archived" not in d and d["in_trash"] is False, "2026 db", d)
    st, _, d = c.api("GET", "/data_sources/" + DS_A)
    check(st == 200 and d["object"] == "data_source" and d["parent"] == {"type": "database_id", "database_id": DB_A},
          "data source", d)


def t_multi_source(c):
    for r in (c.api("GET", "/databases/" + DB_M, version=V22),
              c.api("POST", "/databases/%s/query" % DB_M, {}, version=V22)):
        d = expect_error(r, 400, "validation_error",
                         "Databases with multiple data sources are not supported in this API version.")
        ad = d["additional_data"]
        check(ad["error_type"] == "multiple_data_sources_for_database" and ad["database_id"] == DB_M
              and len(ad["child_data_source_ids"]) == 2 and ad["minimum_api_version"] == "2025-09-03",
              "additional_data", ad)
        check(all(isinstance(v, str) or all(isinstance(x, str) for x in v) for v in ad.values()),
              "additional_data values are strings", ad)
    st, _, d = c.api("GET", "/databases/" + DB_M)
    check(st == 200 and len(d["data_sources"]) == 2, "2025 lists both data sources", d)


def t_pagination(c):
    ids, responses = c.walk(DS_A, {"page_size": 7})
    check(len(responses) == 8 and len(ids) == 50 and len(set(ids)) == 50, "50 rows in 8 pages",
          [len(r["results"]) for r in responses])
    for r in responses[:-1]:
        check(r["has_more"] is True and UUID_RE.match(r["next_cursor"]), "cursor shape", r["next_cursor"])
    last = responses[-1]
    check(last["next_cursor"] is None and last["has_more"] is False, "end of chain")
    check(last["request_status"] == {"type": "complete"}, "complete status", last.get("request_status"))
    check(list(last)[:6] == ["object", "results", "next_cursor", "has_more", "type", "page_or_data_source"]
          and list(last)[-1] == "request_id", "envelope order", list(last))
    created = ["e0000000-0000-4000-8000-%012d" % i for i in range(50)]
    check(ids != created, "unsorted order is not creation order")
    check(c.walk(DS_A, {"page_size": 7})[0] == ids, "order is stable")


def t_cursor_errors(c):
    _, _, d = c.query(DS_A, {"page_size": 5})
    cur = d["next_cursor"]
    msg = "The start_cursor provided is invalid: %s" % cur
    expect_error(c.query(DS_A, {"page_size": 5, "start_cursor": cur,
                                "sorts": [{"timestamp": "created_time", "direction": "ascending"}]}),
                 400, "validation_error", msg)
    bogus = "11111111-2222-4333-8444-555555555555"
    expect_error(c.query(DS_A, {"start_cursor": bogus}), 400, "validation_error",
                 "The start_cursor provided is invalid: %s" % bogus)
    st, _, _ = c.query(DS_A, {"page_size": 5, "start_cursor": cur})
    check(st == 200, "same query with a different page_size may continue")
    c.ctl("POST", "/cursors/expire")
    expect_error(c.query(DS_A, {"page_size": 5, "start_cursor": cur}), 400, "validation_error", msg)
    c.ctl("POST", "/config", {"cursor_ttl": 60})
    _, _, d = c.query(DS_A, {"page_size": 5})
    c.ctl("POST", "/clock", {"advance_seconds": 61})
    expect_error(c.query(DS_A, {"page_size": 5, "start_cursor": d["next_cursor"]}), 400, "validation_error")
    c.ctl("POST", "/config", {"cursor_ttl": 600})
    # an expire_cursors fault expires every cursor just before the request it fires on
    c.ctl("POST", "/faults", {"faults": [{"path": "/query$", "kind": "expire_cursors", "skip": 1}]})
    try:
        st, _, d = c.query(DS_A, {"page_size": 5})
        check(st == 200, "expire_cursors fault skips the first query")
        cur = d["next_cursor"]
        expect_error(c.query(DS_A, {"page_size": 5, "start_cursor": cur}), 400, "validation_error",
                     "The start_cursor provided is invalid: %s" % cur)
        st, _, d = c.query(DS_A, {"page_size": 5})
        st2, _, _ = c.query(DS_A, {"page_size": 5, "start_cursor": d["next_cursor"]})
        check(st == 200 and st2 == 200, "expire_cursors fault fires once (count 1)", st, st2)
        fired = c.ctl("GET", "/faults")["faults"][0]["fired"]
        check(fired == 1, "expire_cursors fault counted", fired)
        log = c.ctl("GET", "/requests")["requests"]
        check(any(e["fault"] == "expire_cursors" and e["status"] == 400 for e in log),
              "expire_cursors fault in the request log")
    finally:
        c.ctl("DELETE", "/faults")


def t_result_cap(c):
    c.ctl("POST", "/config", {"result_cap": 20})
    try:
        ids, responses = c.walk(DS_A, {"page_size": 7})
        check(len(ids) == 20 and [len(r["results"]) for r in responses] == [7, 7, 6], "capped at 20",
              [len(r["results"]) for r in responses])
        last = responses[-1]
        check(last["has_more"] is False and last["next_cursor"] is None, "cap ends the chain")
        check(last["request_status"] == {"type": "incomplete",
                                         "incomplete_reason": "query_result_limit_reached"},
              "incomplete status", last.get("request_status"))
        check(responses[0]["request_status"] == {"type": "complete"}, "earlier pages complete")
        ids2, _ = c.walk(DS_A, {"page_size": 7, "filter": {"timestamp": "created_time", "created_time": {
            "on_or_after": "2026-06-01T10:05:00.000Z"}}})
        check(len(ids2) == 20 and not set(ids2) & set(ids[:0]), "new query window gets its own cap")
    finally:
        c.ctl("POST", "/config", {"result_cap": 10000})


def t_minute_rounding(c):
    pid = "e0000000-0000-4000-8000-000000000001"
    c.ctl("POST", "/clock", {"now": "2026-07-02T12:00:10Z"})
    p = c.ctl("PATCH", "/pages/" + pid, {"properties": {"Count": 100}})
    check(p["last_edited_time"] == "2026-07-02T12:00:00.000Z", "floored to minute", p["last_edited_time"])
    c.ctl("POST", "/clock", {"advance_seconds": 45})
    p = c.ctl("PATCH", "/pages/" + pid, {"properties": {"Count": 101}})
    check(p["last_edited_time"] == "2026-07-02T12:00:00.000Z", "same-minute edit keeps time", p)
    c.ctl("POST", "/clock", {"advance_seconds": 10})
    p = c.ctl("PATCH", "/pages/" + pid, {"touch": True})
    check(p["last_edited_time"] == "2026-07-02T12:01:00.000Z", "next minute moves it", p)
    _, _, d = c.query(DS_A)
    for r in d["results"]:
        check(MINUTE_RE.match(r["created_time"]) and MINUTE_RE.match(r["last_edited_time"]),
              "timestamp format", r["created_time"], r["last_edited_time"])


def t_filters_sorts(c):
    body = {"filter": {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": "2026-07-02T12:00:00.000Z"}},
            "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}]}
    ids, rs = c.walk(DS_A, body)
    check(ids == ["e0000000-0000-4000-8000-000000000001"], "last_edited filter", ids)
    body = {"sorts": [{"timestamp": "created_time", "direction": "ascending"}]}
    ids, rs = c.walk(DS_A, body)
    times = [r["created_time"] for d in rs for r in d["results"]]
    check(times == sorted(times), "ascending created_time")
    same = [i for i, r in zip(ids, (r for d in rs for r in d["results"]))
            if r["created_time"] == "2026-06-01T10:00:00.000Z"]
    check(len(same) == 3, "three rows share a minute", same)
    check(c.walk(DS_A, body)[0] == ids, "tie order deterministic")
    body = {"filter": {"or": [{"property": "Name", "title": {"contains": "character 1"}},
                              {"and": [{"property": "Done", "checkbox": {"equals": True}},
                                       {"property": "Count", "number": {"less_than": 4}}]}]}}
    ids, _ = c.walk(DS_A, body)
    want = {"e0000000-0000-4000-8000-%012d" % i for i in [0, 2, 1] + list(range(10, 20))}
    check(set(ids) == want, "compound filter", sorted(ids))
    deep = {"and": [{"or": [{"and": [{"property": "Done", "checkbox": {"equals": True}}]}]}]}
    expect_error(c.query(DS_A, {"filter": deep}), 400, "validation_error")
    ids, _ = c.walk(DS_A, {"sorts": [{"property": "Count", "direction": "descending"}], "page_size": 3})
    check(ids[0] == "e0000000-0000-4000-8000-000000000001", "property sort desc (Count=101 first)", ids[:3])


def t_trash(c):
    pid = "e0000000-0000-4000-8000-000000000007"
    c.ctl("POST", "/pages/%s/trash" % pid)
    ids, _ = c.walk(DS_A)
    check(pid not in ids and len(ids) == 49, "trashed page hidden")
    ids, _ = c.walk(DS_A, {"in_trash": True})
    check(ids == [pid], "in_trash true returns only trashed", ids)
    st, _, d = c.api("GET", "/pages/" + pid)
    check(st == 200 and d["in_trash"] is True and d["archived"] is True, "GET trashed page", d)
    c.ctl("POST", "/pages/%s/trash" % pid, {"in_trash": False})
    check(len(c.walk(DS_A)[0]) == 50, "restored")


def _heavy_page(c):
    users = ["f0000000-0000-4000-8000-%012d" % i for i in range(30)]
    rels = ["e1000000-0000-4000-8000-%012d" % i for i in range(40)]
    mentions = []
    for u in users:
        mentions.append({"type": "mention", "mention": {"type": "user", "user": {"object": "user", "id": u}}})
        mentions.append(rt(" and "))
    return c.ctl("POST", "/pages", {"data_source_id": DS_A, "id": "e2000000-0000-4000-8000-000000000001",
                                    "properties": {"Name": [rt("Heavy")], "Links": rels, "Team": users,
                                                   "Description": mentions}})


def t_truncation(c):
    truth = _heavy_page(c)
    check(len(truth["properties"]["Links"]["relation"]) == 40, "ground truth untruncated")
    pid = truth["id"]
    st, _, d = c.query(DS_A, {"filter": {"property": "Name", "title": {"equals": "Heavy"}}})
    st2, _, g = c.api("GET", "/pages/" + pid)
    for page in (d["results"][0], g):
        props = page["properties"]
        check(len(props["Links"]["relation"]) == 25 and props["Links"]["has_more"] is True, "relation cut")
        check(len(props["Team"]["people"]) == 25, "people cut")
        desc = props["Description"]["rich_text"]
        check(sum(1 for x in desc if x["type"] == "mention") == 25, "mentions cut to 25")
        check(sum(1 for x in desc if x["type"] == "text") == 30, "text items kept")
        check(props["Count"]["id"] and props["Done"]["checkbox"] is False, "schema props present")
    _, _, a = c.query(DS_A, {"page_size": 1, "filter": {"property": "Name", "title": {"equals": "Character 3"}}})
    check(a["results"][0]["properties"]["Links"] == {"id": a["results"][0]["properties"]["Links"]["id"],
                                                     "type": "relation", "relation": [], "has_more": False},
          "has_more false when not truncated", a["results"][0]["properties"]["Links"])


def t_property_items(c):
    pid = "e2000000-0000-4000-8000-000000000001"
    st, _, page = c.api("GET", "/pages/" + pid)
    links_id = page["properties"]["Links"]["id"]
    got, path = [], "/pages/%s/properties/%s?page_size=15" % (pid.replace("-", ""), links_id)
    pages = 0
    while True:
        st, _, d = c.api("GET", path)
        check(st == 200 and d["object"] == "list" and d["type"] == "property_item", "list shape", d)
        check(d["property_item"]["type"] == "relation" and d["property_item"]["relation"] == {}, "property_item", d)
        got.extend(r["relation"]["id"] for r in d["results"])
        pages += 1
        if not d["has_more"]:
            check(d["property_item"]["next_url"] is None, "no next_url at end")
            break
        check(d["property_item"]["next_url"].endswith("start_cursor=%s&page_size=15" % d["next_cursor"]), "next_url")
        path = "/pages/%s/properties/%s?page_size=15&start_cursor=%s" % (pid, links_id, d["next_cursor"])
    check(len(got) == 40 and len(set(got)) == 40 and pages == 3, "all 40 relations in 3 pages", len(got))
    st, _, d = c.api("GET", "/pages/%s/properties/Team" % pid)    # by name
    check(st == 200 and len(d["results"]) == 30 and d["results"][0]["people"]["object"] == "user", "people full")
    st, _, d = c.api("GET", "/pages/%s/properties/title" % pid)
    check(d["results"][0] == {"object": "property_item", "type": "title", "id": "title",
                              "title": d["results"][0]["title"]}, "title item", d["results"][0])
    st, _, d = c.api("GET", "/pages/%s/properties/Description" % pid)
    check(len(d["results"]) == 60, "rich_text full (30 mentions + 30 texts)", len(d["results"]))
    st, _, d = c.api("GET", "/pages/%s/properties/%s" % (pid, urllib.parse.quote(page["properties"]["Count"]["id"], safe="")))
    check(st == 200 and d["object"] == "property_item" and d["type"] == "number", "simple item", d)
    expect_error(c.api("GET", "/pages/%s/properties/nope" % pid), 404, "object_not_found")


def t_files_resigned(c):
    hosted = {"name": "portrait.png", "type": "file", "file": {"url": "https://prod-files-secure.s3.us-west-2.amazonaws.com/x/y/portrait.png"}}
    ext = {"name": "ref.pdf", "type": "external", "external": {"url": "https://example.com/ref.pdf"}}
    truth = c.ctl("POST", "/pages", {"data_source_id": DS_A, "properties": {"Name": "With files", "Files": [hosted, ext]},
                                     "cover": {"type": "file", "file": {"url": "x"}}})
    pid = truth["id"]
    c.ctl("POST", "/clock", {"advance_seconds": 1})
    _, _, a = c.api("GET", "/pages/" + pid)
    _, _, b = c.api("GET", "/pages/" + pid)
    fa, fb = a["properties"]["Files"]["files"], b["properties"]["Files"]["files"]
    check(fa[0]["type"] == "file" and fa[0]["name"] == "portrait.png", "hosted file item", fa[0])
    ua, ub = fa[0]["file"]["url"], fb[0]["file"]["url"]
    check(ua != ub and ua.split("?")[0] == ub.split("?")[0], "hosted URL re-signed", ua, ub)
    check(ua.startswith("https://prod-files-secure.s3.us-west-2.amazonaws.com/") and
          re.search(r"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=\d{8}T\d{6}Z&X-Amz-Expires=3600&X-Amz-Signature=[0-9a-f]{64}$", ua),
          "signed URL shape", ua)
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", fa[0]["file"]["expiry_time"]), "expiry_time", fa[0])
    check(fa[1] == fb[1] == ext, "external file stable", fa[1])
    check(a["cover"]["type"] == "file" and a["cover"]["file"]["url"] != b["cover"]["file"]["url"], "cover re-signed")
    _, _, q1 = c.query(DS_A, {"filter": {"property": "Name", "title": {"equals": "With files"}}})
    _, _, q2 = c.query(DS_A, {"filter": {"property": "Name", "title": {"equals": "With files"}}})
    check(q1["results"][0]["properties"]["Files"]["files"][0]["file"]["url"] !=
          q2["results"][0]["properties"]["Files"]["files"][0]["file"]["url"], "re-signed in query results")


def t_versions(c):
    _, _, d26 = c.query(DS_A, {"page_size": 2}, version=V26)
    _, _, d25 = c.query(DS_A, {"page_size": 2}, version=V25)
    check(all("archived" not in r for r in d26["results"]), "no archived in 2026-03-11")
    check(all(list(r)[-1] == "archived" and r["archived"] is False for r in d25["results"]), "archived last in 2025")
    want = ["object", "id", "created_time", "last_edited_time", "created_by", "last_edited_by", "cover",
            "icon", "parent", "in_trash", "is_archived", "is_locked", "properties", "url", "public_url", "archived"]
    check(list(d25["results"][0]) == want, "page field order", list(d25["results"][0]))
    check(d25["results"][0]["parent"] == {"type": "data_source_id", "data_source_id": DS_A, "database_id": DB_A},
          "2025 parent", d25["results"][0]["parent"])
    expect_error(c.query(DS_A, {"archived": False}, version=V26), 400, "validation_error")
    st, _, d22 = c.api("POST", "/databases/%s/query" % DB_A, {"page_size": 2}, version=V22)
    check(st == 200 and d22["type"] == "page_or_database" and "page_or_database" in d22, "2022 envelope", d22.get("type"))
    check(d22["results"][0]["parent"] == {"type": "database_id", "database_id": DB_A}, "2022 parent")


def t_text_split(c):
    long = "x" * 4500
    truth = c.ctl("POST", "/pages", {"data_source_id": DS_A, "properties": {"Name": "Long", "Description": long}})
    items = truth["properties"]["Description"]["rich_text"]
    check([len(i["text"]["content"]) for i in items] == [2000, 2000, 500], "split into 2000-char items")
    check(set(items[0]["annotations"]) == {"bold", "italic", "strikethrough", "underline", "code", "color"}
          and items[0]["plain_text"] == "x" * 2000 and items[0]["href"] is None, "full rich text item")


def t_filter_properties(c):
    for qs in ("?filter_properties[]=title&filter_properties[]=Done", "?filter_properties=title&filter_properties=Done"):
        _, _, d = c.query(DS_A, {"page_size": 3}, qs=qs)
        check(all(set(r["properties"]) == {"Name", "Done"} for r in d["results"]), "filter_properties " + qs,
              list(d["results"][0]["properties"]))


def t_share(c):
    pid = "e0000000-0000-4000-8000-000000000003"
    c.ctl("POST", "/share", {"token": TOKEN, "database_id": DB_A, "shared": False})
    try:
        expect_error(c.api("GET", "/pages/" + pid), 404, "object_not_found")
        expect_error(c.query(DS_A), 404, "object_not_found")
    finally:
        c.ctl("POST", "/share", {"token": TOKEN, "database_id": DB_A, "shared": True})
    st, _, _ = c.api("GET", "/pages/" + pid)
    check(st == 200, "visible again after re-share")


def t_search(c):
    st, _, d = c.api("POST", "/search", {"filter": {"property": "object", "value": "data_source"}})
    check(st == 200 and d["type"] == "page_or_data_source", "search envelope", d)
    objs = d["results"]
    check({o["object"] for o in objs} == {"data_source"} and len(objs) == 3, "3 data sources (A + 2 in M)",
          [o["id"] for o in objs])
    check(all(o["parent"]["type"] == "database_id" for o in objs), "ds parent")
    st, _, d = c.api("POST", "/search", {"query": "CHAR", "filter": {"property": "object", "value": "data_source"}})
    check([o["id"] for o in d["results"]] == [DS_A], "title match case-insensitive", d["results"])
    expect_error(c.api("POST", "/search", {"filter": {"property": "object", "value": "database"}}), 400, "validation_error")
    expect_error(c.api("POST", "/search", {"filter": {"property": "object", "value": "data_source"}}, version=V22),
                 400, "validation_error")
    st, _, d = c.api("POST", "/search", {"filter": {"property": "object", "value": "database"}}, version=V22)
    check(st == 200 and [o["id"] for o in d["results"]] == [DB_A] and d["type"] == "page_or_database",
          "2022 search: single-source databases only", d)
    ids, body, n = set(), {"query": "character", "filter": {"property": "object", "value": "page"}, "page_size": 20}, 0
    while True:
        st, _, d = c.api("POST", "/search", body)
        ids.update(r["id"] for r in d["results"])
        n += 1
        if not d["has_more"]:
            break
        body["start_cursor"] = d["next_cursor"]
    check(len(ids) == 50 and n == 3, "paginated page search", len(ids), n)


def t_faults(c):
    c.ctl("POST", "/faults", {"faults": [{"path": "/v1/users/me", "kind": "status", "status": 429, "retry_after": 7}]})
    r = c.api("GET", "/users/me")
    d = expect_error(r, 429, "rate_limited", "You have been rate limited. Please try again in a few minutes.")
    check(r[1].getheader("Retry-After") == "7", "Retry-After header", r[1].getheaders())
    check(c.api("GET", "/users/me")[0] == 200, "fault count 1")
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me$", "kind": "status", "status": 503, "every": 2, "count": 0}]})
    sts = [c.api("GET", "/users/me")[0] for _ in range(4)]
    check(sts == [200, 503, 200, 503], "every 2nd request fails", sts)
    c.ctl("DELETE", "/faults")
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me", "kind": "status", "status": 529, "skip": 1}]})
    sts = [c.api("GET", "/users/me")[0] for _ in range(3)]
    check(sts == [200, 529, 200], "skip 1 then fail once", sts)
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me", "kind": "html"}]})
    st, resp, body = c.api("GET", "/users/me")
    check(st == 502 and resp.getheader("cf-ray") and b"cloudflare" in body
          and resp.getheader("Content-Type").startswith("text/html"), "html 502", st)
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me", "kind": "slow", "delay_ms": 300}]})
    t0 = time.monotonic()
    st, _, _ = c.api("GET", "/users/me")
    check(st == 200 and time.monotonic() - t0 >= 0.29, "slow fault")
    c.ctl("DELETE", "/faults")


def t_reset_truncate(c):
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me", "kind": "reset"}]})
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    s.sendall(("GET /v1/users/me HTTP/1.1\r\nHost: x\r\nNotion-Version: %s\r\nAuthorization: Bearer %s\r\n\r\n"
               % (V25, TOKEN)).encode())
    try:
        data = s.recv(65536)
        outcome = "eof" if data == b"" else "data"
    except ConnectionResetError:
        outcome = "reset"
    s.close()
    check(outcome == "reset", "connection reset by peer", outcome)
    c.ctl("POST", "/faults", {"faults": [{"path": "/users/me", "kind": "truncate"}]})
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    conn.request("GET", "/v1/users/me", headers={"Notion-Version": V25, "Authorization": "Bearer " + TOKEN})
    resp = conn.getresponse()
    try:
        resp.read()
        raise Fail("truncated response was read completely")
    except http.client.IncompleteRead as e:
        check(len(e.partial) == int(resp.getheader("Content-Length")) // 2, "half the body", len(e.partial))
    conn.close()
    check(c.api("GET", "/users/me")[0] == 200, "emulator alive after reset/truncate")
    log = c.ctl("GET", "/requests")["requests"]
    check(any(e["fault"] == "reset" and e["status"] is None for e in log), "reset in log")


def t_rate_limit(c):
    c.ctl("POST", "/rate_limit", {"requests_per_second": 2, "burst": 2})
    try:
        res = [c.api("GET", "/users/me") for _ in range(6)]
        limited = [r for r in res if r[0] == 429]
        check(res[0][0] == 200 and res[1][0] == 200 and limited, "bucket of 2 then 429", [r[0] for r in res])
        expect_error(limited[0], 429, "rate_limited")
        check(limited[0][1].getheader("Retry-After") == "1", "Retry-After: 1")
        check(c.api("GET", "/users/me", token=OTHER_TOKEN)[0] == 200, "limit is per token")
        time.sleep(1.1)
        check(c.api("GET", "/users/me")[0] == 200, "refilled")
    finally:
        c.ctl("POST", "/rate_limit", {"requests_per_second": 0})


def t_log_stats(c):
    c.ctl("DELETE", "/requests")
    c.query(DS_A, {"page_size": 2})
    c.api("GET", "/users/me", token="nope")
    log = c.ctl("GET", "/requests")
    text = json.dumps(log)
    check(TOKEN not in text and "nope" not in text, "no tokens in the log")
    e = log["requests"][0]
    check(set(e) >= {"seq", "method", "path", "query", "notion_version", "token_ok", "body", "status"}
          and e["body"] == {"page_size": 2} and e["token_ok"] is True, "log entry", e)
    check(log["requests"][1]["token_ok"] is False and log["requests"][1]["status"] == 401, "401 logged")
    st = c.ctl("GET", "/stats")
    check(st["endpoints"]["POST /v1/data_sources/{id}/query"]["200"] >= 1, "stats", st)


def t_keepalive_control_errors(c):
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    for _ in range(20):
        conn.request("GET", "/v1/users/me", headers={"Notion-Version": V25, "Authorization": "Bearer " + TOKEN})
        r = conn.getresponse()
        r.read()
        check(r.status == 200 and r.getheader("Content-Length") and not r.will_close, "keep-alive")
    sock1 = conn.sock
    conn.request("GET", "/v1/users/me", headers={"Notion-Version": V25, "Authorization": "Bearer " + TOKEN})
    conn.getresponse().read()
    check(conn.sock is sock1, "same connection reused")
    conn.close()
    for method, path, raw in (("POST", "/_emulator/pages", b"{bad"), ("POST", "/_emulator/generate", b'{"data_source_id":"x"}'),
                              ("POST", "/_emulator/generate", json.dumps({"data_source_id": DS_A, "kind": "Nope", "count": 1}).encode()),
                              ("POST", "/_emulator/faults", b'{"faults":[{"kind":"boom"}]}'),
                              ("POST", "/_emulator/pages", json.dumps({"data_source_id": DS_A, "properties": {"Count": "NaN"}}).encode()),
                              ("GET", "/_emulator/nope", None)):
        st, _, d = c.request(method, path, raw=raw)
        check(st in (400, 404) and isinstance(d, dict) and "error" in d, "control error %s %s" % (method, path), st, d)
    check(c.ctl("GET", "/health")["ok"] is True, "alive")


def t_generate(c):
    c.ctl("POST", "/clock", {"real": True})
    c.ctl("POST", "/databases", {"id": DB_G, "title": "Characters G", "data_sources": [{"id": DS_G}], "token": TOKEN})
    t0 = time.monotonic()
    g = c.ctl("POST", "/generate", {"data_source_id": DS_G, "count": 20000, "seed": 42, "kind": "Characters"})
    dt = time.monotonic() - t0
    check(g["count"] == 20000 and dt < 10, "20,000 pages in %.2fs" % dt)
    sys.stdout.write("# generated 20000 pages in %.2fs (server %.2fs)\n" % (dt, g["seconds"]))
    # determinism: same seed into two fresh data sources -> same content
    a = c.ctl("POST", "/databases", {"title": "Det A"})["data_source_ids"][0]
    b = c.ctl("POST", "/databases", {"title": "Det B"})["data_source_ids"][0]
    for ds in (a, b):
        c.ctl("POST", "/generate", {"data_source_id": ds, "count": 30, "seed": 9, "kind": "Chat Sessions",
                                    "created_start": "2026-01-01T00:00:00Z"})
    pa = c.ctl("GET", "/pages?data_source_id=" + a)["results"]
    pb = c.ctl("GET", "/pages?data_source_id=" + b)["results"]

    def content(p):
        return [(k, v) for k, v in sorted(p["properties"].items())
                if k not in ("Related", "Attachments", "Notes")]
    check([content(p) for p in pa] == [content(p) for p in pb], "deterministic for a seed")
    check(any(len(p["properties"]["Raw Transcript"]["rich_text"]) >= 3 for p in pa), "long transcripts")
    st, _, d = c.query(DS_G)
    size = len(json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()) / len(d["results"])
    check(3000 <= size <= 5000, "about 3-4 KB per page (%.0f bytes)" % size)
    props = d["results"][0]["properties"]
    types = {v["type"] for v in props.values()}
    check(len(props) >= 20 and {"title", "rich_text", "files", "relation", "people", "formula", "rollup",
                                "unique_id", "status"} <= types, "mixed property types", sorted(types))
    check("Name" in props and "Description" in props, "Characters mapping")
    sys.stdout.write("# average page size in a query response: %.0f bytes, %d properties\n" % (size, len(props)))


def t_prerender(c):
    pre = c.ctl("POST", "/prerender", {"data_source_id": DS_G})
    check(pre["pages"] == 20000 and pre["responses"] == 100, "prerendered chain (cap 10,000)", pre)
    sys.stdout.write("# prerendered %d responses in %.2fs\n" % (pre["responses"], pre["seconds"]))
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    hdr = {"Notion-Version": V25, "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
    times, ids, body, first_urls, sizes = [], [], {}, [], []
    while True:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/data_sources/%s/query" % DS_G, body=json.dumps(body), headers=hdr)
        r = conn.getresponse()
        raw = r.read()
        times.append(time.perf_counter() - t0)
        d = json.loads(raw)
        check(d["request_id"] == r.getheader("x-notion-request-id"), "fresh request_id")
        sizes.append(len(raw))
        ids.extend(x["id"] for x in d["results"])
        if not d["has_more"]:
            break
        body = {"start_cursor": d["next_cursor"]}
    check(len(ids) == 10000 and len(set(ids)) == 10000, "cap 10,000 over prerendered chain", len(ids))
    check(d["request_status"]["type"] == "incomplete", "prerendered chain ends incomplete at the cap")
    med = statistics.median(times) * 1000
    sys.stdout.write("# prerendered query: median %.2f ms, p95 %.2f ms, %.0f KB per response (client-measured)\n"
                     % (med, sorted(times)[int(len(times) * 0.95)] * 1000, statistics.mean(sizes) / 1024))
    check(med < 10, "served in < 10 ms (median %.2f ms)" % med)
    urls = []
    for _ in range(2):
        conn.request("POST", "/v1/data_sources/%s/query" % DS_G, body="{}", headers=hdr)
        d = json.loads(conn.getresponse().read())
        urls.append(d["results"][0]["properties"]["Attachments"]["files"][0]["file"]["url"])
    check(urls[0] != urls[1], "prerendered responses still re-sign files")
    first = d["results"][0]["id"]
    c.ctl("PATCH", "/pages/" + first, {"properties": {"Name": "Edited after prerender"}})
    conn.request("POST", "/v1/data_sources/%s/query" % DS_G, body="{}", headers=hdr)
    d = json.loads(conn.getresponse().read())
    check(d["results"][0]["properties"]["Name"]["title"][0]["plain_text"] == "Edited after prerender",
          "edit invalidates the prerendered cache")
    conn.close()
    c.ctl("POST", "/prerender", {"data_source_id": DS_G})
    _, _, d = c.query(DS_G)
    old = d["next_cursor"]
    c.ctl("POST", "/cursors/expire")
    expect_error(c.query(DS_G, {"start_cursor": old}), 400, "validation_error")
    _, _, d = c.query(DS_G)
    st, _, d2 = c.query(DS_G, {"start_cursor": d["next_cursor"]})
    check(d["next_cursor"] != old and st == 200, "after /cursors/expire a fresh chain works")


# ---------------------------------------------------------------- proof gains (issue 9)

def _proof_setup(c):
    c.ctl("POST", "/tokens", {"token": PROOF_TOKEN, "integration_name": "proof-test",
                              "databases": []})
    c.ctl("POST", "/databases", {"id": DB_R, "title": "Characters", "token": PROOF_TOKEN,
                                 "data_sources": [{"id": DS_R, "pages": [
                                     {"id": "f1000000-0000-4000-8000-1000000000%02d" % i,
                                      "properties": {"Name": [rt("Hero %d" % i)]}}
                                     for i in range(3)]}]})
    c.ctl("POST", "/databases", {"id": DB_L, "title": "Worlds", "token": PROOF_TOKEN,
                                 "data_sources": []})


def _search(c, query, value, version=V25, token=PROOF_TOKEN):
    st, _, d = c.api("POST", "/search", {"query": query,
                                         "filter": {"property": "object", "value": value}},
                     version=version, token=token)
    check(st == 200, "search %r %s" % (query, value), d)
    return d["results"]


def _no_sources_error(c, r, db):
    d = expect_error(r, 400, "validation_error", MSG_NO_SOURCES % db)
    check("additional_data" not in d, "no additional_data (no error_type)", d)
    check(list(d) == ["object", "status", "code", "message", "request_id"], "field order", list(d))


def t_proof_no_sources(c):
    _proof_setup(c)
    page = "f1000000-0000-4000-8000-100000000001"
    st, _, d = c.api("GET", "/databases/" + DB_R, token=PROOF_TOKEN)
    check(st == 200 and d["data_sources"] == [{"id": DS_R, "name": "Characters"}], "before", d)
    r = c.ctl("POST", "/access", {"database_id": DB_R})
    r.pop("request_id", None)
    check(r == {"database_id": DB_R, "data_sources": [
        {"id": DS_R, "accessible": False, "in_search": False}]}, "/access answer", r)
    for v in (V25, V26):
        st, _, d = c.api("GET", "/databases/" + DB_R, version=v, token=PROOF_TOKEN)
        check(st == 200 and d["data_sources"] == [] and d["title"][0]["plain_text"] == "Characters",
              "%s: revoked database lists data_sources: []" % v, d)
    _no_sources_error(c, c.api("GET", "/databases/" + DB_R, version=V22, token=PROOF_TOKEN), DB_R)
    _no_sources_error(c, c.api("POST", "/databases/%s/query" % DB_R, {}, version=V22,
                               token=PROOF_TOKEN), DB_R)
    d = expect_error(c.api("GET", "/data_sources/" + DS_R, token=PROOF_TOKEN), 404,
                     "object_not_found")
    check('integration "proof-test"' in d["message"] and DS_R in d["message"], "404 names", d)
    expect_error(c.api("POST", "/data_sources/%s/query" % DS_R, {}, token=PROOF_TOKEN), 404,
                 "object_not_found")
    expect_error(c.api("GET", "/pages/" + page, token=PROOF_TOKEN), 404, "object_not_found")
    expect_error(c.api("GET", "/pages/%s/properties/title" % page, token=PROOF_TOKEN), 404,
                 "object_not_found")
    check(_search(c, "characters", "data_source") == [], "revoked source not found by search")
    check(_search(c, "hero", "page") == [], "pages of a revoked source not found by search")
    check(_search(c, "characters", "database", V22) == [], "2022 search: not listed")
    # a search index that still lists the revoked source
    c.ctl("POST", "/access", {"data_source_id": DS_R, "in_search": True})
    res = _search(c, "characters", "data_source")
    check([(o["id"], o["parent"]["database_id"]) for o in res] == [(DS_R, DB_R)],
          "in_search: search still returns the data source", res)
    st, _, d = c.api("GET", "/databases/" + DB_R, token=PROOF_TOKEN)
    check(st == 200 and d["data_sources"] == [], "in_search: GET still lists none", d)
    check([o["id"] for o in _search(c, "characters", "database", V22)] == [DB_R],
          "in_search: 2022 search still returns the database")
    _no_sources_error(c, c.api("GET", "/databases/" + DB_R, version=V22, token=PROOF_TOKEN), DB_R)
    # restored
    r = c.ctl("POST", "/access", {"database_id": DB_R, "accessible": True})
    check(r["data_sources"] == [{"id": DS_R, "accessible": True, "in_search": False}], "restore", r)
    st, _, d = c.api("GET", "/databases/" + DB_R, token=PROOF_TOKEN)
    check(st == 200 and d["data_sources"] == [{"id": DS_R, "name": "Characters"}], "listed again", d)
    st, _, d = c.api("POST", "/databases/%s/query" % DB_R, {}, version=V22, token=PROOF_TOKEN)
    check(st == 200 and len(d["results"]) == 3, "2022 query works again", d)
    st, _, d = c.api("GET", "/pages/" + page, token=PROOF_TOKEN)
    check(st == 200 and d["id"] == page, "page visible again", d)
    # a database created without data sources (a linked database)
    st, _, d = c.api("GET", "/databases/" + DB_L, token=PROOF_TOKEN)
    check(st == 200 and d["data_sources"] == [], "linked database lists no data sources", d)
    _no_sources_error(c, c.api("GET", "/databases/" + DB_L, version=V22, token=PROOF_TOKEN), DB_L)
    # control errors
    st, _, d = c.request("POST", "/_emulator/access", {"database_id": DB_U.replace("c", "9")})
    check(st == 404 and "error" in d, "unknown database -> 404", d)
    st, _, d = c.request("POST", "/_emulator/access", {"database_id": DB_R, "accessible": "no"})
    check(st == 400 and "boolean" in d["error"], "accessible must be a boolean", d)


def t_proof_partial_access(c):
    db = "f5000000-0000-4000-8000-00000000000f"
    r = c.ctl("POST", "/databases", {"id": db, "title": "Worlds", "token": PROOF_TOKEN,
                                     "data_sources": [{"name": "East"}, {"name": "West"}]})
    east, west = r["data_source_ids"]
    c.ctl("POST", "/pages", {"data_source_id": west, "properties": {"Name": [rt("westland")]}})
    expect_error(c.api("GET", "/databases/" + db, version=V22, token=PROOF_TOKEN), 400,
                 "validation_error", MSG_MULTI)
    c.ctl("POST", "/access", {"data_source_id": west})
    st, _, d = c.api("GET", "/databases/" + db, token=PROOF_TOKEN)
    check(st == 200 and d["data_sources"] == [{"id": east, "name": "East"}], "one source listed", d)
    expect_error(c.query(west), 404, "object_not_found")
    st, _, d = c.api("GET", "/databases/" + db, version=V22, token=PROOF_TOKEN)
    check(st == 200 and d["id"] == db, "2022: one accessible source -> a single-source database", d)
    check([o["id"] for o in _search(c, "worlds", "data_source")] == [east], "search: east only")
    check(_search(c, "westland", "page") == [], "pages of the revoked source hidden from search")
    c.ctl("POST", "/access", {"data_source_id": west, "accessible": True})
    st, _, d = c.api("GET", "/databases/" + db, token=PROOF_TOKEN)
    check([s["id"] for s in d["data_sources"]] == [east, west], "both listed again", d)
    check(len(_search(c, "westland", "page")) == 1, "page searchable again")


def t_proof_multi_names(c):
    c.ctl("POST", "/databases", {"id": DB_S, "title": "Stories", "token": PROOF_TOKEN,
                                 "data_sources": [{"id": DS_S1, "name": "Drafts"},
                                                  {"id": DS_S2, "name": "Published"}]})
    for r in (c.api("GET", "/databases/" + DB_S, version=V22, token=PROOF_TOKEN),
              c.api("POST", "/databases/%s/query" % DB_S, {}, version=V22, token=PROOF_TOKEN)):
        d = expect_error(r, 400, "validation_error", MSG_MULTI)
        check(d["additional_data"] == {"error_type": "multiple_data_sources_for_database",
                                       "database_id": DB_S,
                                       "child_data_source_ids": [DS_S1, DS_S2],
                                       "minimum_api_version": "2025-09-03"}, "additional_data", d)
    st, _, d = c.api("GET", "/databases/" + DB_S, token=PROOF_TOKEN)
    check(st == 200 and d["title"][0]["plain_text"] == "Stories" and d["data_sources"] ==
          [{"id": DS_S1, "name": "Drafts"}, {"id": DS_S2, "name": "Published"}],
          "2025: container titled Stories lists Drafts and Published", d)
    for ds, name in ((DS_S1, "Drafts"), (DS_S2, "Published")):
        st, _, d = c.api("GET", "/data_sources/" + ds, token=PROOF_TOKEN)
        check(st == 200 and d["title"][0]["plain_text"] == name, "data source title", d)


def t_proof_search_titles(c):
    res = _search(c, "stories", "data_source")
    check(sorted((o["id"], o["title"][0]["plain_text"], o["parent"]["database_id"]) for o in res)
          == [(DS_S1, "Drafts", DB_S), (DS_S2, "Published", DB_S)],
          "2025: query 'stories' (the database title) finds both sources, titled by their names",
          res)
    check(_search(c, "drafts", "data_source") == [], "2025: a data source name is not matched")
    check(_search(c, "Stories", "database", V22) == [], "2022: multi-source database not listed")
    check(_search(c, "stories", "data_source", V26) != [], "2026 like 2025")
    res = _search(c, "", "data_source")
    check(DS_S1 in [o["id"] for o in res], "empty query finds everything", res)
    st, _, d = c.api("POST", "/search", {"query": "characters", "filter": {
        "property": "object", "value": "database"}}, version=V22, token=PROOF_TOKEN)
    check(st == 200 and d["type"] == "page_or_database" and [o["id"] for o in d["results"]] ==
          [DB_R] and d["results"][0]["object"] == "database" and
          "Name" in d["results"][0]["properties"], "2022: database objects with their schema", d)


def t_proof_title_not_name(c):
    c.ctl("POST", "/databases", {"id": DB_T, "title": "Characters Extra", "token": PROOF_TOKEN,
                                 "data_sources": [{"id": DS_T, "schema": {
                                     "Name": "rich_text", "Title": "title"}}]})
    p = c.ctl("POST", "/pages", {"data_source_id": DS_T, "properties": {
        "Title": [rt("The real title")], "Name": [rt("only a rich text")]}})
    check(p["properties"]["Title"]["type"] == "title" and p["properties"]["Title"]["id"] == "title"
          and p["properties"]["Name"]["type"] == "rich_text", "ground truth types", p)
    st, _, d = c.api("GET", "/data_sources/" + DS_T, token=PROOF_TOKEN)
    check(st == 200 and d["properties"]["Title"]["type"] == "title" and
          d["properties"]["Name"]["type"] == "rich_text" and
          [v["type"] for v in d["properties"].values()].count("title") == 1,
          "schema: one title property, named Title; Name is rich_text", d["properties"])
    st, _, d = c.api("POST", "/data_sources/%s/query" % DS_T, {}, token=PROOF_TOKEN)
    got = d["results"][0]["properties"]
    check(got["Title"]["title"][0]["plain_text"] == "The real title" and
          got["Name"]["rich_text"][0]["plain_text"] == "only a rich text", "query values", got)
    check("The-real-title" in d["results"][0]["url"], "page url slug from the title property", d)
    check([o["id"] for o in _search(c, "real title", "page")] == [p["id"]],
          "page search matches the title property")
    check(_search(c, "only a rich", "page") == [], "page search ignores the rich_text Name")
    st, _, d = c.api("GET", "/databases/" + DB_T, version=V22, token=PROOF_TOKEN)
    check(st == 200 and d["properties"]["Title"]["id"] == "title", "2022 schema", d)


# ---------------------------------------------------------------- webhooks

HOOK_TOKEN = "test-token-not-a-secret-dddd"      # internal integration "hook-test"
DB_W = "a1000000-0000-4000-8000-00000000000a"     # Name title, Count number, Tag select
DS_W = "a1000000-0000-4000-8000-0000000000d5"
DB_W2 = "a2000000-0000-4000-8000-00000000000a"    # Title title, Count number, Tag rich_text
DS_W2 = "a2000000-0000-4000-8000-0000000000d5"
DB_WU = "a3000000-0000-4000-8000-00000000000a"    # not shared with HOOK_TOKEN
DS_WU = "a3000000-0000-4000-8000-0000000000d5"
DB_WG = "a4000000-0000-4000-8000-00000000000a"    # generated pages
DS_WG = "a4000000-0000-4000-8000-0000000000d5"
DB_WX = "a5000000-0000-4000-8000-00000000000a"    # created while subscribed
DS_WX = "a5000000-0000-4000-8000-0000000000d5"
OAUTH = [  # token, workspace id, workspace name, bot id: one public integration, two workspaces
    ("test-oauth-not-a-secret-1111", "b1000000-0000-4000-8000-000000000001", "Acme",
     "b1000000-0000-4000-8000-0000000000b1"),
    ("test-oauth-not-a-secret-2222", "b2000000-0000-4000-8000-000000000002", "Beta",
     "b2000000-0000-4000-8000-0000000000b2"),
    ("test-oauth-not-a-secret-3333", "b1000000-0000-4000-8000-000000000001", "Acme",
     "b1000000-0000-4000-8000-0000000000b3")]
MS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ENVELOPE = ["id", "timestamp", "workspace_id", "workspace_name", "subscription_id",
            "integration_id", "type", "authors", "attempt_number", "api_version", "entity", "data"]
RECEIVERS = []   # every receiver started, stopped at the end


class Receiver:
    """A webhook receiver on 127.0.0.1 (HTTP/1.1 keep-alive; HTTPS with an ssl context). It
    learns each path's verification token from the first handshake sent there and checks
    every request's X-Notion-Signature with it; it answers 200 unless fail() said otherwise."""

    def __init__(self, tls=None):
        self.cond = threading.Condition()
        self.requests = []   # {path, headers, body (bytes), json, signed, at (monotonic)}
        self.tokens = {}
        self.answers = {}    # path -> statuses to answer next
        self.conns = set()
        self.tls, self.port, self.server = tls, 0, None
        RECEIVERS.append(self)
        self.start()

    def start(self):
        """Listen (again, on the same port once it has one)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.cond:
                    receiver.conns.add(self.connection)

            def do_POST(self):
                status, delay = receiver.take(self)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, address: None   # a client gone: not a failure
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.server, self.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self):
        """Stop listening and drop open connections: the port refuses connections."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server = None
        with self.cond:
            conns, self.conns = list(self.conns), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http", self.port, path)

    def take(self, handler):
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        with self.cond:
            if isinstance(doc, dict) and list(doc) == ["verification_token"]:
                self.tokens.setdefault(handler.path, doc["verification_token"])
            token = self.tokens.get(handler.path)
            want = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest() \
                if token else ""
            self.requests.append({
                "path": handler.path, "headers": dict(handler.headers), "body": body, "json": doc,
                "at": time.monotonic(), "signed": bool(token) and hmac.compare_digest(
                    want, handler.headers.get("X-Notion-Signature", ""))})
            answers = self.answers.get(handler.path) or []
            answer = answers.pop(0) if answers else 200
            return answer if isinstance(answer, tuple) else (answer, 0)

    def fail(self, path, *statuses):
        """Answer the next requests to path with these statuses (or (status, seconds to wait
        before answering))."""
        with self.cond:
            self.answers[path] = list(statuses)

    def at(self, path):
        with self.cond:
            return [r for r in self.requests if r["path"] == path]

    def events(self, path):
        """The events (not handshakes) received at path, each checked to be signed."""
        got = [r for r in self.at(path) if "verification_token" not in (r["json"] or {})]
        check(all(r["signed"] for r in got), "every event signed with the path's token",
              [r["headers"] for r in got if not r["signed"]])
        return [r["json"] for r in got]


def _drain(c, timeout_ms=10000):
    d = c.ctl("POST", "/webhooks/drain", {"timeout_ms": timeout_ms})
    check(d["drained"] is True, "webhook deliveries drained", d)
    return d


def _subscribe(c, path, receiver=None, verify=True, **settings):
    """A subscription (HOOK_TOKEN unless tokens are given; concurrency 1, retry_base_ms 20)
    to path on the receiver, verified with the token its handshake brought."""
    receiver = receiver or c.rx
    body = {"url": receiver.url(path), "retry_base_ms": 20, "concurrency": 1}
    if "tokens" not in settings:
        body["token"] = HOOK_TOKEN
    body.update(settings)
    sid = c.ctl("POST", "/webhooks", body)["subscription_id"]
    if verify:
        _drain(c)
        check(path in receiver.tokens, "handshake received at " + path, receiver.at(path))
        d = c.ctl("POST", "/webhooks/%s/verify" % sid,
                  {"verification_token": receiver.tokens[path]})
        check(d["state"] == "active", "verified", d)
    return sid


def _hook_events(c, path, receiver=None):
    _drain(c)
    return (receiver or c.rx).events(path)


def _new_page(c, ds=DS_W, **props):
    return c.ctl("POST", "/pages", {"data_source_id": ds, "properties": props or {"Name": "row"}})


def t_hook_handshake(c):
    c.rx = Receiver()
    c.ctl("POST", "/clock", {"now": "2026-08-01T10:00:00Z"})
    tok = c.ctl("POST", "/tokens", {"token": HOOK_TOKEN, "integration_name": "hook-test"})
    for db, ds, title, schema in (
            (DB_W, DS_W, "Hooked", {"Name": "title", "Count": "number", "Tag": "select"}),
            (DB_W2, DS_W2, "Hooked Too", {"Title": "title", "Count": "number",
                                          "Tag": "rich_text"}),
            (DB_WU, DS_WU, "Hooked Hidden", {}), (DB_WG, DS_WG, "Hooked Generated", {})):
        c.ctl("POST", "/databases", {"id": db, "title": title, "data_sources": [
            {"id": ds, "schema": schema}], "token": None if db == DB_WU else HOOK_TOKEN})
    path = "/hook/handshake"
    s = c.ctl("POST", "/webhooks", {"url": c.rx.url(path), "token": HOOK_TOKEN})
    sid = s["subscription_id"]
    check(UUID_RE.match(sid) and s["state"] == "pending" and
          s["integration_id"] == tok["integration_id"], "create reply", s)
    _drain(c)
    [r] = c.rx.at(path)
    token = r["json"]["verification_token"]
    check(re.match(r"^secret_[A-Za-z0-9]{43}$", token) and r["body"] == json.dumps(
        {"verification_token": token}, separators=(",", ":")).encode(), "handshake body", r)
    check(r["signed"] and re.match(r"^sha256=[0-9a-f]{64}$", r["headers"]["X-Notion-Signature"]),
          "handshake signed with its own token", r["headers"])
    check(r["headers"]["Content-Type"] == "application/json" and
          r["headers"]["User-Agent"] == "notion-api", "handshake headers", r["headers"])
    d = c.ctl("GET", "/webhooks/" + sid)
    check(d["state"] == "pending" and d["verification"] == {
        "attempts": 1, "delivered": True, "dropped": False} and d["retry_base_ms"] == 1000 and
          d["max_attempts"] == 8 and d["concurrency"] == 4 and d["api_version"] == V25 and
          d["event_types"] is None and d["public"] is False, "settings and defaults", d)
    _new_page(c)
    _drain(c)
    check(len(c.rx.at(path)) == 1, "no event while pending", c.rx.at(path))
    c.ctl("POST", "/webhooks/%s/resend" % sid)
    _drain(c)
    check([x["body"] for x in c.rx.at(path)] == [r["body"]] * 2, "resend: the same token again")
    moved = path + "/moved"
    check(c.ctl("PATCH", "/webhooks/" + sid, {"url": c.rx.url(moved)})["url"] == c.rx.url(moved),
          "URL changes while pending")
    c.ctl("POST", "/webhooks/%s/resend" % sid)
    _drain(c)
    check(c.rx.tokens.get(moved) == token, "handshake at the new URL")
    st, _, d = c.request("POST", "/_emulator/webhooks/%s/verify" % sid,
                         {"verification_token": "secret_wrong"})
    check(st == 400 and "error" in d, "wrong verification token -> 400", st, d)
    d = c.ctl("POST", "/webhooks/%s/verify" % sid, {"verification_token": token})
    check(d == {"subscription_id": sid, "state": "active", "request_id": d["request_id"]},
          "verified", d)
    for method, sub, body in (("POST", "/resend", None), ("PATCH", "", {"url": c.rx.url(path)})):
        st, _, d = c.request(method, "/_emulator/webhooks/%s%s" % (sid, sub), body)
        check(st == 409, "%s %s after verification -> 409" % (method, sub or "url"), st, d)
    p = _new_page(c)
    [ev] = _hook_events(c, moved)
    check(ev["type"] == "page.created" and ev["entity"]["id"] == p["id"], "event once active", ev)
    c.ctl("DELETE", "/webhooks/" + sid)
    st, _, _ = c.request("GET", "/_emulator/webhooks/" + sid)
    check(st == 404, "deleted subscription -> 404", st)


def t_hook_control_errors(c):
    url = c.rx.url("/hook/errors")
    for body, status in (({"url": url}, 400),                                  # no token
                         ({"url": url, "token": "nope"}, 404),
                         ({"url": "http://192.0.2.1/x", "token": HOOK_TOKEN}, 400),
                         ({"url": "ftp://127.0.0.1/x", "token": HOOK_TOKEN}, 400),
                         ({"token": HOOK_TOKEN}, 400),
                         ({"url": url, "token": HOOK_TOKEN, "max_attempts": 9}, 400),
                         ({"url": url, "token": HOOK_TOKEN, "event_types": ["page.made"]}, 400),
                         ({"url": url, "token": HOOK_TOKEN, "api_version": V26 + "x"}, 400),
                         ({"url": url, "token": HOOK_TOKEN, "bogus": 1}, 400),
                         ({"url": url, "token": HOOK_TOKEN, "reorder": "yes"}, 400)):
        st, _, d = c.request("POST", "/_emulator/webhooks", body)
        check(st == status and "error" in d, "POST /webhooks %r -> %d" % (body, status), st, d)
    for method, path in (("GET", "/nope"), ("POST", "/nope/verify"), ("POST", "/nope/events")):
        st, _, d = c.request(method, "/_emulator/webhooks" + path, {})
        check(st == 404, "unknown subscription %s %s -> 404" % (method, path), st, d)
    st, _, d = c.request("POST", "/_emulator/pages", {"data_source_id": DS_W, "emit": "no"})
    check(st == 400 and "emit" in d["error"], "emit must be a boolean", d)


def t_hook_page_events(c):
    path = "/hook/pages"
    sid = _subscribe(c, path)
    _, _, me = c.api("GET", "/users/me", token=HOOK_TOKEN)
    p = _new_page(c, Name="Hooked", Count=1, Tag="a")
    pid, ids = p["id"], {n: v["id"] for n, v in p["properties"].items()}
    [ev] = _hook_events(c, path)
    check(list(ev) == ENVELOPE, "envelope members (internal integration: no accessible_by)",
          list(ev))
    check(UUID_RE.match(ev["id"]) and ev["timestamp"] == "2026-08-01T10:00:00.000Z" and
          MS_RE.match(ev["timestamp"]), "id and timestamp", ev)
    sub = c.ctl("GET", "/webhooks/" + sid)
    check(ev["workspace_id"] == me["bot"]["workspace_id"] and
          ev["workspace_name"] == me["bot"]["workspace_name"] and ev["subscription_id"] == sid and
          ev["integration_id"] == sub["integration_id"], "workspace and subscription", ev, me)
    check(ev["type"] == "page.created" and ev["attempt_number"] == 1 and
          ev["api_version"] == V25 and ev["authors"] == [{"id": p["created_by"]["id"],
                                                         "type": "person"}], "page.created", ev)
    check(ev["entity"] == {"id": pid, "type": "page"} and ev["data"] == {
        "parent": {"id": DB_W, "type": "database", "data_source_id": DS_W}}, "entity, parent", ev)
    block = "c1000000-0000-4000-8000-0000000000b1"
    editor = "c2000000-0000-4000-8000-0000000000e1"
    c.ctl("PATCH", "/pages/" + pid, {"properties": {"Count": 2, "Name": "Hooked"},
                                     "last_edited_by": editor})
    c.ctl("PATCH", "/pages/" + pid, {"properties": {"Count": 2}})          # no change: no event
    c.ctl("PATCH", "/pages/" + pid, {"in_trash": True})
    c.ctl("POST", "/pages/%s/trash" % pid, {"in_trash": False})
    c.ctl("PATCH", "/pages/" + pid, {"is_locked": True})
    c.ctl("PATCH", "/pages/" + pid, {"is_locked": False})
    c.ctl("POST", "/clock", {"advance_seconds": 120})
    content = c.ctl("POST", "/pages/%s/content" % pid, {"block_ids": [block]})
    c.ctl("PATCH", "/pages/" + pid, {"properties": {"Count": 3}, "emit": False})
    moved = c.ctl("POST", "/pages/%s/move" % pid, {"data_source_id": DS_W2})
    c.ctl("POST", "/pages/%s/trash" % pid, {"emit": False})
    c.ctl("DELETE", "/pages/" + pid)                                         # permanent: none
    evs = _hook_events(c, path)[1:]
    check([e["type"] for e in evs] == [
        "page.properties_updated", "page.deleted", "page.undeleted", "page.locked",
        "page.unlocked", "page.content_updated", "page.moved"], "page event types",
          [e["type"] for e in evs])
    check(all(e["entity"] == {"id": pid, "type": "page"} for e in evs) and
          len({e["id"] for e in evs}) == len(evs), "one entity, distinct event ids")
    check(evs[0]["data"] == {"parent": ev["data"]["parent"], "updated_properties": [ids["Count"]]}
          and evs[0]["authors"] == [{"id": editor, "type": "person"}],
          "properties_updated names the changed property, authored by the editor", evs[0])
    check(evs[5]["data"]["updated_blocks"] == [{"id": block, "type": "block"}] and
          content["last_edited_time"] == "2026-08-01T10:02:00.000Z" and
          content["updated_blocks"] == [{"id": block, "type": "block"}],
          "content_updated: blocks, last_edited_time moved", evs[5], content)
    check(evs[6]["data"]["parent"] == {"id": DB_W2, "type": "database", "data_source_id": DS_W2},
          "page.moved names the new parent", evs[6])
    props = moved["properties"]
    check(moved["parent"]["data_source_id"] == DS_W2 and
          props["Title"]["title"][0]["plain_text"] == "Hooked" and props["Count"]["number"] == 3
          and props["Tag"]["rich_text"] == [] and "Name" not in props,
          "move: title to the target's title, same name and type kept, the rest dropped", props)
    st, _, d = c.api("GET", "/pages/" + pid, token=HOOK_TOKEN)
    check(st == 404, "permanently deleted", d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_schema_events(c):
    path = "/hook/schema"
    sid = _subscribe(c, path)
    row = "a5000000-0000-4000-8000-0000000000e1"
    r = c.ctl("POST", "/databases", {"id": DB_WX, "title": "Hooked Later", "token": HOOK_TOKEN,
                                     "data_sources": [
                                         {"id": DS_WX, "name": "One", "schema": {
                                             "Name": "title", "Tag": "select", "Notes": "rich_text"},
                                          "pages": [{"id": row, "properties": {
                                              "Name": "row", "Tag": "t", "Notes": "kept"}}]},
                                         {"name": "Two"}]})
    extra = c.ctl("POST", "/data_sources", {"database_id": DB_WX, "name": "Three"})
    _, _, before = c.api("GET", "/data_sources/" + DS_WX, token=HOOK_TOKEN)
    edit = c.ctl("PATCH", "/data_sources/" + DS_WX, {
        "add": {"Score": "number"}, "rename": {"Notes": "Remarks"}, "remove": ["Tag"]})
    c.ctl("PATCH", "/data_sources/" + DS_WX, {"add": {"Quiet": "checkbox"}, "emit": False})
    evs = _hook_events(c, path)
    check([e["type"] for e in evs] == [
        "database.created", "data_source.created", "page.created", "data_source.created",
        "data_source.created", "data_source.schema_updated"], "types", [e["type"] for e in evs])
    check(evs[0]["entity"] == {"id": DB_WX, "type": "database"} and
          evs[0]["data"]["parent"]["type"] == "page", "database.created", evs[0])
    for e, ds in zip((evs[1], evs[3], evs[4]), [DS_WX, r["data_source_ids"][1],
                                               extra["data_source_id"]]):
        check(e["entity"] == {"id": ds, "type": "data_source"} and
              e["data"] == {"parent": {"id": DB_WX, "type": "database"}}, "data_source.created", e)
    changes = [{"id": before["properties"]["Tag"]["id"], "name": "Tag", "action": "deleted"},
               {"id": before["properties"]["Notes"]["id"], "name": "Remarks", "action": "updated"},
               {"id": edit["properties"]["Score"]["id"], "name": "Score", "action": "created"}]
    check(evs[5]["entity"] == {"id": DS_WX, "type": "data_source"} and
          evs[5]["data"] == {"parent": {"id": DB_WX, "type": "database"},
                             "updated_properties": changes} and
          edit["updated_properties"] == changes, "schema_updated", evs[5], edit)
    truth = c.ctl("GET", "/pages/" + row)["properties"]
    check(set(truth) == {"Name", "Remarks", "Score", "Quiet"} and
          truth["Remarks"]["rich_text"][0]["plain_text"] == "kept", "values follow the schema",
          truth)
    _, _, d = c.api("GET", "/data_sources/" + DS_WX, token=HOOK_TOKEN)
    check(set(d["properties"]) == {"Name", "Remarks", "Score", "Quiet"}, "API schema", d)
    for body in ({"remove": ["Name"]}, {"remove": ["Nope"]}, {"rename": {"Remarks": "Score"}},
                 {"add": {"Score": "number"}}, {"add": {"X": "bogus"}}, {"add": {"T": "title"}}):
        st, _, d = c.request("PATCH", "/_emulator/data_sources/" + DS_WX, body)
        check(st in (400, 404) and "error" in d, "bad schema edit %r" % body, st, d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_v2022(c):
    path = "/hook/v2022"
    sid = _subscribe(c, path, api_version=V22)
    p = _new_page(c)
    c.ctl("PATCH", "/data_sources/" + DS_W, {"add": {"Extra": "checkbox"}})
    c.ctl("POST", "/data_sources", {"database_id": DB_WX, "name": "Four"})   # no 2022 form
    db = c.ctl("POST", "/databases", {"title": "Old style", "token": HOOK_TOKEN})
    evs = _hook_events(c, path)
    check([e["type"] for e in evs] == ["page.created", "database.schema_updated",
                                       "database.created"], "2022 types", evs)
    check(evs[0]["api_version"] == V22 and evs[0]["entity"]["id"] == p["id"] and
          evs[0]["data"] == {"parent": {"id": DB_W, "type": "database"}}, "2022 page parent", evs[0])
    check(evs[1]["entity"] == {"id": DB_W, "type": "database"} and
          evs[1]["data"]["parent"]["type"] == "page" and
          [(x["name"], x["action"]) for x in evs[1]["data"]["updated_properties"]] ==
          [("Extra", "created")], "database.schema_updated with the database id", evs[1])
    check(evs[2]["entity"] == {"id": db["database_id"], "type": "database"}, "database.created")
    c.ctl("PATCH", "/webhooks/" + sid, {"event_types": ["database.schema_updated"]})
    _new_page(c)
    c.ctl("PATCH", "/data_sources/" + DS_W, {"remove": ["Extra"]})
    evs = _hook_events(c, path)[3:]
    check([(e["type"], e["data"]["updated_properties"][0]["action"]) for e in evs] ==
          [("database.schema_updated", "deleted")], "event_types filters the 2022 names", evs)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_filters(c):
    path = "/hook/filters"
    sid = _subscribe(c, path, event_types=["page.created"], concurrency=4)
    p = _new_page(c)
    c.ctl("PATCH", "/pages/" + p["id"], {"properties": {"Count": 7}})   # not subscribed
    _new_page(c, DS_WU)                                                  # not shared
    c.ctl("POST", "/access", {"data_source_id": DS_W})                   # access revoked
    _new_page(c)
    c.ctl("POST", "/access", {"data_source_id": DS_W, "accessible": True})
    c.ctl("POST", "/generate", {"data_source_id": DS_WG, "count": 5, "seed": 1})
    g = c.ctl("POST", "/generate", {"data_source_id": DS_WG, "count": 3, "seed": 2,
                                    "webhooks": True})
    c.ctl("POST", "/pages", {"data_source_id": DS_W, "properties": {"Name": "quiet"},
                             "emit": False})
    evs = _hook_events(c, path)
    check(sorted(e["entity"]["id"] for e in evs) == sorted([p["id"]] + g["page_ids"]) and
          {e["type"] for e in evs} == {"page.created"} and
          {e["data"]["parent"]["data_source_id"] for e in evs} == {DS_W, DS_WG},
          "only readable pages, subscribed types, generation only with webhooks: true", evs)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_oauth(c):
    for token, ws, name, bot in OAUTH:
        dbs = [DB_W, DB_W2] if name == "Beta" else [DB_W]
        r = c.ctl("POST", "/tokens", {"token": token, "integration_name": "public-app",
                                      "databases": dbs, "workspace_id": ws,
                                      "workspace_name": name, "bot_id": bot})
        check((r["workspace_id"], r["workspace_name"], r["bot_id"]) == (ws, name, bot),
              "token reply", r)
        _, _, me = c.api("GET", "/users/me", token=token)
        check(me["id"] == bot and me["bot"]["workspace_id"] == ws and
              me["bot"]["workspace_name"] == name, "users/me of an OAuth token", me)
    _, _, me = c.api("GET", "/users/me", token=HOOK_TOKEN)
    _, _, other = c.api("GET", "/users/me", token=TOKEN)
    check(me["bot"]["workspace_id"] == other["bot"]["workspace_id"] and
          me["bot"]["workspace_name"] == "Emulated Workspace", "defaults unchanged", me)
    path = "/hook/oauth"
    sid = _subscribe(c, path, tokens=[t[0] for t in OAUTH])
    check(c.ctl("GET", "/webhooks/" + sid)["public"] is True, "several tokens: public")
    p = _new_page(c)
    q = _new_page(c, DS_W2, Title="beta only")
    evs = _hook_events(c, path)
    got = sorted((e["entity"]["id"] == p["id"], e["workspace_id"], e["workspace_name"],
                  [a["id"] for a in e["accessible_by"]]) for e in evs)
    check(got == sorted([(True, OAUTH[0][1], "Acme", [OAUTH[0][3], OAUTH[2][3]]),
                         (True, OAUTH[1][1], "Beta", [OAUTH[1][3]]),
                         (False, OAUTH[1][1], "Beta", [OAUTH[1][3]])]),
          "one event per workspace that can read the page, accessible_by its bots", got)
    check(all(list(e) == ENVELOPE[:8] + ["accessible_by"] + ENVELOPE[8:] and
              {a["type"] for a in e["accessible_by"]} == {"bot"} for e in evs) and
          len({e["id"] for e in evs}) == 3 and len({e["integration_id"] for e in evs}) == 1 and
          {e["entity"]["id"] for e in evs} == {p["id"], q["id"]}, "public envelopes", evs)
    st, _, d = c.request("POST", "/_emulator/webhooks", {"url": c.rx.url(path),
                                                         "tokens": [OAUTH[0][0], HOOK_TOKEN]})
    check(st == 400 and "integration" in d["error"], "tokens of two integrations", st, d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_aggregate(c):
    path = "/hook/aggregate"
    sid = _subscribe(c, path, aggregate_ms=400)
    u1, u2 = "c3000000-0000-4000-8000-0000000000e1", "c3000000-0000-4000-8000-0000000000e2"
    c.ctl("POST", "/clock", {"now": "2026-08-02T09:00:00Z"})
    p, p2 = _new_page(c), _new_page(c)
    c.ctl("PATCH", "/pages/" + p["id"], {"properties": {"Count": 10}, "last_edited_by": u1})
    c.ctl("POST", "/clock", {"advance_seconds": 1.5})
    c.ctl("PATCH", "/pages/" + p["id"], {"properties": {"Tag": "x"}, "last_edited_by": u2})
    blocks = ["c4000000-0000-4000-8000-0000000000b%d" % i for i in (1, 2)]
    for b in blocks:
        c.ctl("POST", "/pages/%s/content" % p["id"], {"block_ids": [b]})
    c.ctl("PATCH", "/pages/" + p["id"], {"is_locked": True})
    c.ctl("PATCH", "/pages/" + p["id"], {"is_locked": False})
    c.ctl("PATCH", "/pages/" + p2["id"], {"properties": {"Count": 5}})
    evs = _hook_events(c, path)
    kinds = sorted((e["type"], e["entity"]["id"] == p["id"]) for e in evs)
    check(kinds == sorted([("page.created", True), ("page.created", False),
                           ("page.properties_updated", True), ("page.properties_updated", False),
                           ("page.content_updated", True), ("page.locked", True),
                           ("page.unlocked", True)]), "one event per entity and type", kinds)
    props = next(e for e in evs if e["type"] == "page.properties_updated" and
                 e["entity"]["id"] == p["id"])
    check(props["data"]["updated_properties"] == [p["properties"]["Count"]["id"],
                                                  p["properties"]["Tag"]["id"]] and
          props["authors"] == [{"id": u1, "type": "person"}, {"id": u2, "type": "person"}] and
          props["timestamp"] == "2026-08-02T09:00:01.500Z",
          "aggregated: union of properties, authors merged, latest timestamp", props)
    content = next(e for e in evs if e["type"] == "page.content_updated")
    check(content["data"]["updated_blocks"] == [{"id": b, "type": "block"} for b in blocks],
          "aggregated: union of blocks", content)
    d = c.ctl("GET", "/webhooks/" + sid)
    check(d["aggregated"] == 2 and d["events"] == 7 and d["delivered"] == 7, "counters", d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_duplicates(c):
    path = "/hook/duplicates"
    sid = _subscribe(c, path, duplicates=2, concurrency=4)
    _new_page(c)
    evs = _hook_events(c, path)
    check(len(evs) == 3 and all(e == evs[0] for e in evs), "the same event three times", evs)
    c.ctl("PATCH", "/webhooks/" + sid, {"duplicates": 0})
    _new_page(c)
    check(len(_hook_events(c, path)) == 4, "duplicates 0: once")
    d = c.ctl("GET", "/webhooks/" + sid)
    check(d["events"] == 2 and d["delivered"] == 4, "counters count copies as deliveries", d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_reorder(c):
    path = "/hook/reorder"
    sid = _subscribe(c, path, reorder=True, delay_ms=300)
    made = []
    for _ in range(3):
        made.append(_new_page(c)["id"])
        c.ctl("POST", "/clock", {"advance_seconds": 1})
    evs = _hook_events(c, path)
    check([e["entity"]["id"] for e in evs] == made[::-1], "a batch goes out newest first", evs)
    check([e["timestamp"] for e in evs] == sorted((e["timestamp"] for e in evs), reverse=True),
          "timestamps still tell the order", evs)
    c.ctl("PATCH", "/webhooks/" + sid, {"paused": True, "delay_ms": 0})
    made = [_new_page(c)["id"] for _ in range(3)]
    d = _drain(c)
    check(d["held"] == 3 and len(c.rx.events(path)) == 3, "paused: held, drain does not wait", d)
    c.ctl("PATCH", "/webhooks/" + sid, {"paused": False})
    evs = _hook_events(c, path)[3:]
    check([e["entity"]["id"] for e in evs] == made[::-1], "released held events newest first",
          [e["entity"]["id"] for e in evs], made)
    other = path + "/twin"
    twin = _subscribe(c, other)
    for s in (sid, twin):
        c.ctl("PATCH", "/webhooks/" + s, {"paused": True, "reorder": True, "reorder_seed": 7})
    made = [_new_page(c)["id"] for _ in range(6)]
    for s in (sid, twin):
        c.ctl("PATCH", "/webhooks/" + s, {"paused": False})
    a = [e["entity"]["id"] for e in _hook_events(c, path)[6:]]
    b = [e["entity"]["id"] for e in _hook_events(c, other)]
    check(sorted(a) == sorted(made) and a == b, "reorder_seed: the same shuffle for a seed", a, b)
    for s in (sid, twin):
        c.ctl("DELETE", "/webhooks/" + s)


def t_hook_retries(c):
    path = "/hook/retry"
    sid = _subscribe(c, path, retry_base_ms=50)
    c.rx.fail(path, 500, 503)
    p = _new_page(c)
    _drain(c)
    reqs = c.rx.at(path)[1:]
    docs = c.rx.events(path)
    check([d["attempt_number"] for d in docs] == [1, 2, 3] and len({d["id"] for d in docs}) == 1,
          "attempts 1, 2, 3 of one event", docs)
    gaps = [b["at"] - a["at"] for a, b in zip(reqs, reqs[1:])]
    check(gaps[0] >= 0.045 and gaps[1] >= 0.095, "backoff 50 ms * 2^(n-1)", gaps)
    log = [e for e in c.ctl("GET", "/webhooks/%s/deliveries" % sid)["deliveries"]
           if e["kind"] == "event"]
    check([(e["attempt_number"], e["status"]) for e in log] == [(1, 500), (2, 503), (3, 200)] and
          {(e["event_id"], e["type"], e["entity_id"]) for e in log} ==
          {(docs[0]["id"], "page.created", p["id"])}, "delivery log", log)
    check([e["body"].encode() for e in log] == [r["body"] for r in reqs] and
          [e["signature"] for e in log] == [r["headers"]["X-Notion-Signature"] for r in reqs] and
          all(MS_RE.match(e["sent_at"]) for e in log), "log bodies, signatures", log)
    since = log[1]["seq"]
    later = c.ctl("GET", "/webhooks/%s/deliveries?since=%d" % (sid, since))["deliveries"]
    check([e["seq"] for e in later] == [log[2]["seq"]], "?since", later)
    d = c.ctl("GET", "/webhooks/" + sid)
    check(d["failed_attempts"] == 2 and d["delivered"] == 1 and d["dropped"] == 0 and
          d["pending"] == 0, "counters", d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_receiver_down(c):
    rx = Receiver()
    path = "/hook/down"
    sid = _subscribe(c, path, receiver=rx, retry_base_ms=30)
    rx.stop()
    _new_page(c)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = c.ctl("GET", "/webhooks/%s/deliveries" % sid)["deliveries"][1:]
        if len(log) >= 2:
            break
        time.sleep(0.02)
    check(len(log) >= 2 and all(e["status"].startswith("connect error: ") for e in log),
          "connection errors while down", log)
    rx.start()
    [ev] = _hook_events(c, path, rx)
    log = c.ctl("GET", "/webhooks/%s/deliveries" % sid)["deliveries"][1:]
    check(ev["attempt_number"] == len(log) >= 3 and log[-1]["status"] == 200 and
          {e["event_id"] for e in log} == {ev["id"]}, "delivered once back up, same id", ev, log)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_timeout(c):
    path = "/hook/timeout"
    sid = _subscribe(c, path, timeout_ms=600, retry_base_ms=10)
    c.rx.fail(path, (200, 1.2))
    _new_page(c)
    time.sleep(0.1)
    t0 = time.monotonic()
    st, _, _ = c.api("GET", "/users/me", token=HOOK_TOKEN)
    check(st == 200 and time.monotonic() - t0 < 0.3 and
          c.ctl("GET", "/webhooks/" + sid)["in_flight"] == 1,
          "the API answers while a delivery hangs")
    evs = _hook_events(c, path)
    log = c.ctl("GET", "/webhooks/%s/deliveries" % sid)["deliveries"][1:]
    check([e["attempt_number"] for e in evs] == [1, 2] and
          [(e["attempt_number"], "timed out" in str(e["status"])) for e in log] ==
          [(1, True), (2, False)] and log[1]["status"] == 200,
          "no answer within timeout_ms: retried", log)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_give_up(c):
    path = "/hook/give-up"
    sid = _subscribe(c, path, max_attempts=3, retry_base_ms=10)
    c.rx.fail(path, *[500] * 5)
    _new_page(c)
    evs = _hook_events(c, path)
    d = c.ctl("GET", "/webhooks/" + sid)
    check([e["attempt_number"] for e in evs] == [1, 2, 3] and d["dropped"] == 1 and
          d["failed_attempts"] == 3 and d["delivered"] == 0 and d["pending"] == 0,
          "dropped after max_attempts", d)
    c.rx.fail(path)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_drain(c):
    path = "/hook/drain"
    sid = _subscribe(c, path, delay_ms=800)
    _new_page(c)
    t0 = time.monotonic()
    d = c.ctl("POST", "/webhooks/drain", {"timeout_ms": 100})
    dt = time.monotonic() - t0
    check(d["drained"] is False and d["pending"] == 1 and 0.09 <= dt < 1.0,
          "drain times out with 200 and drained: false", d, dt)
    d = c.ctl("POST", "/webhooks/drain", {"timeout_ms": 5000, "subscription_id": sid})
    check(d["drained"] is True and d["delivered"] == 1 and len(c.rx.events(path)) == 1 and
          time.monotonic() - t0 >= 0.75, "drain waits for the delay", d)
    c.ctl("DELETE", "/webhooks/" + sid)


def t_hook_inject(c):
    path = "/hook/inject"
    pending = c.ctl("POST", "/webhooks", {"url": c.rx.url(path + "/p"), "token": HOOK_TOKEN})
    st, _, d = c.request("POST", "/_emulator/webhooks/%s/events" % pending["subscription_id"],
                         {"type": "comment.created", "entity": {"id": DB_W, "type": "comment"}})
    check(st == 409, "no injection while pending", st, d)
    c.ctl("DELETE", "/webhooks/" + pending["subscription_id"])
    sid = _subscribe(c, path)
    comment, page = "c5000000-0000-4000-8000-0000000000c1", "c5000000-0000-4000-8000-0000000000a1"
    data = {"page_id": page, "parent": {"id": page, "type": "page"}}
    r1 = c.ctl("POST", "/webhooks/%s/events" % sid, {
        "type": "comment.created", "entity": {"id": comment.replace("-", ""), "type": "comment"},
        "data": data})
    r2 = c.ctl("POST", "/webhooks/%s/events" % sid, {"type": "page.sparkled",
                                                     "entity": {"id": page, "type": "page"}})
    evs = _hook_events(c, path)
    check([(e["id"], e["type"], e["entity"], e["data"]) for e in evs] ==
          [(r1["event_id"], "comment.created", {"id": comment, "type": "comment"}, data),
           (r2["event_id"], "page.sparkled", {"id": page, "type": "page"}, {})] and
          all(list(e) == ENVELOPE for e in evs), "injected events as given", evs)
    for body in ({"type": "x"}, {"entity": {"id": page, "type": "page"}},
                 {"type": "x", "entity": {"id": "nope", "type": "page"}},
                 {"type": "x", "entity": {"id": page, "type": "page"}, "token": TOKEN}):
        st, _, d = c.request("POST", "/_emulator/webhooks/%s/events" % sid, body)
        check(st == 400 and "error" in d, "bad injection %r" % body, st, d)
    c.ctl("DELETE", "/webhooks/" + sid)


def _self_signed(tmp):
    """(cert, key) files of a certificate for 127.0.0.1 made with openssl, or Skip."""
    if shutil.which("openssl") is None:
        raise Skip("no openssl to make a certificate")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True)
    if r.returncode != 0:
        raise Skip("openssl cannot make a certificate: %s" % r.stderr.decode()[-200:])
    return cert, key


def t_hook_https(c):
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(tmp)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        rx = Receiver(tls=ctx)
        path = "/hook/tls"
        sid = _subscribe(c, path, receiver=rx, cafile=cert)
        sid2 = _subscribe(c, path + "/insecure", receiver=rx, insecure=True)
        bad = c.ctl("POST", "/webhooks", {"url": rx.url(path + "/bad"), "token": HOOK_TOKEN,
                                          "max_attempts": 1})["subscription_id"]
        _new_page(c)
        check(len(_hook_events(c, path, rx)) == 1 and
              len(rx.events(path + "/insecure")) == 1, "delivered over TLS (cafile, insecure)")
        log = c.ctl("GET", "/webhooks/%s/deliveries" % bad)["deliveries"]
        check(len(log) == 1 and "CERTIFICATE_VERIFY_FAILED" in log[0]["status"] and
              not rx.at(path + "/bad"), "an unknown certificate is refused", log)
        st, _, d = c.request("POST", "/_emulator/webhooks", {
            "url": rx.url(path), "token": HOOK_TOKEN, "cafile": os.path.join(tmp, "none.pem")})
        check(st == 400 and "cafile" in d["error"], "missing cafile -> 400", st, d)
        for s in (sid, sid2, bad):
            c.ctl("DELETE", "/webhooks/" + s)
        rx.stop()


def t_hook_reset(c):
    path = "/hook/reset"
    sid = _subscribe(c, path, delay_ms=300)
    _new_page(c)
    c.ctl("POST", "/reset")
    time.sleep(0.5)
    check(c.rx.events(path) == [], "reset stops delivery", c.rx.events(path))
    st, _, _ = c.request("GET", "/_emulator/webhooks/" + sid)
    check(st == 404 and c.ctl("GET", "/webhooks")["subscriptions"] == [],
          "reset removes subscriptions", st)


TESTS = [
    ("setup workspace, users/me", t_setup),
    ("missing / unsupported Notion-Version", t_missing_version),
    ("401 unauthorized body", t_unauthorized),
    ("404 object_not_found text, ids with/without dashes", t_not_found),
    ("invalid_request_url, invalid_json, validation errors", t_bad_requests),
    ("database / data source shapes per version", t_database_shapes),
    ("multi-source database on 2022-06-28", t_multi_source),
    ("pagination with cursors and page_size", t_pagination),
    ("invalid, foreign, expired cursors", t_cursor_errors),
    ("result cap -> incomplete request_status", t_result_cap),
    ("timestamps rounded down to the minute", t_minute_rounding),
    ("timestamp/property filters and sorts", t_filters_sorts),
    ("trashed pages and in_trash", t_trash),
    ("25-reference truncation in query and GET page", t_truncation),
    ("property item endpoint returns full lists", t_property_items),
    ("Notion-hosted file URLs re-signed per response", t_files_resigned),
    ("archived absent on 2026-03-11, version envelopes", t_versions),
    ("rich text split at 2000 chars", t_text_split),
    ("filter_properties in both syntaxes", t_filter_properties),
    ("unshare hides pages, reshare restores", t_share),
    ("search per version", t_search),
    ("status/html/slow faults with Retry-After, skip, every", t_faults),
    ("reset and truncate faults", t_reset_truncate),
    ("token-bucket rate limiter", t_rate_limit),
    ("request log without tokens, stats", t_log_stats),
    ("keep-alive, control API bad input", t_keepalive_control_errors),
    ("generate 20,000 pages (timing, determinism, size)", t_generate),
    ("prerendered query chain", t_prerender),
    ("data_sources: [] (revoked access, linked database): GET, 2022 error, 404s, search",
     t_proof_no_sources),
    ("one of two data sources revoked, then restored", t_proof_partial_access),
    ("multi-source database whose source names differ from its title", t_proof_multi_names),
    ("search matches database titles; data sources titled by their own names",
     t_proof_search_titles),
    ("title property named Title beside a rich_text Name", t_proof_title_not_name),
    ("webhook handshake, verify, resend, URL change, delete", t_hook_handshake),
    ("webhook control errors", t_hook_control_errors),
    ("page events: created, properties, trash, lock, content, move; envelope", t_hook_page_events),
    ("database, data source and schema events; schema edits", t_hook_schema_events),
    ("2022-06-28 subscription: old parents and database forms", t_hook_v2022),
    ("event_types, unshared or revoked databases, generation, emit: false", t_hook_filters),
    ("OAuth tokens: users/me workspaces, one event per workspace", t_hook_oauth),
    ("aggregation within aggregate_ms", t_hook_aggregate),
    ("duplicates: the same event again", t_hook_duplicates),
    ("reorder: batches newest first, paused release, seeded shuffle", t_hook_reorder),
    ("retries after 500/503: attempt_number, backoff, delivery log", t_hook_retries),
    ("receiver down, then up: retried until delivered", t_hook_receiver_down),
    ("timeout_ms: a receiver that does not answer in time", t_hook_timeout),
    ("dropped after max_attempts", t_hook_give_up),
    ("drain: timeout and waiting for delayed events", t_hook_drain),
    ("injected events", t_hook_inject),
    ("https receivers: cafile, insecure, refused certificate", t_hook_https),
    ("reset stops webhook delivery and removes subscriptions", t_hook_reset),
]


def start_emulator(tmp):
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--port-file", port_file, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, int(f.read().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("emulator did not start: %s" % proc.stderr.read().decode(errors="replace")
                       if proc.poll() is not None else "emulator did not write its port file")


def stop_emulator(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def main():
    verbose = "-v" in sys.argv[1:]
    print("1..%d" % (len(TESTS) + 1))
    failed = 0
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc, port = start_emulator(tmp)
            c = Client(port)
            for n, (name, fn) in enumerate(TESTS, 1):
                t0 = time.monotonic()
                try:
                    fn(c)
                    print("ok %d - %s%s" % (n, name, " (%.2fs)" % (time.monotonic() - t0) if verbose else ""))
                except Skip as e:
                    print("ok %d - %s # SKIP %s" % (n, name, e))
                except Exception as e:
                    failed += 1
                    print("not ok %d - %s" % (n, name))
                    detail = str(e) if isinstance(e, Fail) else traceback.format_exc()
                    for line in detail.rstrip().splitlines():
                        print("#   " + line)
                sys.stdout.flush()
        except Exception:
            failed += 1
            for line in traceback.format_exc().rstrip().splitlines():
                print("#   " + line)
        finally:
            for receiver in RECEIVERS:
                receiver.stop()
            rc = stop_emulator(proc) if proc is not None else None
            stderr = proc.stderr.read().decode(errors="replace") if proc is not None else ""
            if rc == 0:
                print("ok %d - emulator exits cleanly on SIGTERM" % (len(TESTS) + 1))
            else:
                failed += 1
                print("not ok %d - emulator exits cleanly on SIGTERM (rc=%r)" % (len(TESTS) + 1, rc))
            if stderr.strip():
                print("# emulator stderr:")
                for line in stderr.rstrip().splitlines()[-40:]:
                    print("#   " + line)
    print("# %d passed, %d failed" % (len(TESTS) + 1 - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
