#!/usr/bin/env python3
"""Self-test of the Notion emulator (stdlib only). Prints TAP; exit status 0 iff all pass.

Starts tests/emulator/notion_emulator.py on a free loopback port, exercises the main
behaviours through real HTTP, and always stops the emulator at the end.
Usage: python3 tests/emulator/selftest.py [-v]
"""

import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

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
