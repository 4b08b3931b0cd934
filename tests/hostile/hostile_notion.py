#!/usr/bin/env python3
"""hostile_notion.py - a Notion API stand-in that misbehaves on purpose.

For ordinary requests it answers like Notion (2025-09-03 shapes, see
/work/shared/reference/notion-api.md appendices A, C, D and
tests/emulator/render.py):

  GET  /v1/databases/{id}                 database container with data_sources
  POST /v1/data_sources/{id}/query        list of page objects
  GET  /v1/pages/{id}/properties/{prop}   property item list

but each DATABASE ID selects one hostile behaviour (see CASES below): bad
JSON, endless or oversized bodies, duplicate members, invalid UTF-8,
redirects, wrong types, 429s with absurd Retry-After, endless or circular
property-item pagination, huge or broken titles, deep nesting. One database
("control") behaves well.

A second listener is the target of the redirects. It records every request
that reaches it (and whether it carried an Authorization header) and answers
like a well-behaved Notion, so a client that follows a redirect is seen to
"succeed" where it should have failed.

Usage:
  python3 tests/hostile/hostile_notion.py --token TOKEN [--port 0]
      [--port-file PATH] [--quiet]

Listens on 127.0.0.1 only. --port-file receives "MAIN_PORT REDIRECT_PORT\n"
(written atomically once both listen; removed on exit). SIGTERM/SIGINT stop it.

Control API on the main listener (no auth; never returns tokens):
  GET    /_hostile/cases     {name: {database_id, data_source_id, page_ids,
                              hostile_page_id, title}}
  GET    /_hostile/requests  {"requests": [{seq, listener, method, path, case,
                              auth: expected|absent|other, version, start_cursor,
                              status}]}
  DELETE /_hostile/requests  clear the log
  GET    /_hostile/health

Safety valves (so that a client without limits cannot hang a test run): the
endless body stops after 1 GiB, and endless/circular property pagination
ends (has_more false) after 2,000 requests for one page. Both are far beyond
what a correct client accepts (64 MiB, 100 requests).

Standard library only.
"""

import argparse
import email.utils
import json
import os
import sys
import threading
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import serving  # noqa: E402

VERSION = "2025-09-03"
MIB = 1 << 20
ENDLESS_LIMIT = 1 << 30          # the endless body gives up after 1 GiB
ITEMS_SAFETY = 2000              # endless item pagination gives up after this
USER_ID = "7775f3a3-893f-43fa-b625-460c61094c78"
PARENT_PAGE = "393abc1e-edcd-8104-9e45-de1cccb47ac5"
ANNOTATIONS = {"bold": False, "italic": False, "strikethrough": False, "underline": False,
               "code": False, "color": "default"}
# Invalid UTF-8: a lone 0xFF, an overlong '/', a UTF-16 surrogate encoded as
# UTF-8, a stray continuation byte and a sequence cut short.
BAD_BYTES = b"\xff\xc0\xaf\xed\xa0\x80\x80\xe2\x82"
BAD_MARK = "@@INVALID-UTF8@@"

# name -> (what it does, where). Order fixes the ids: never reorder, append.
CASES = [
    ("control", "well-behaved: 3 pages"),
    ("malformed_json", "query answer is not JSON (missing comma)"),
    ("truncated_json", "query answer cut at 60% (HTTP framing correct)"),
    ("endless_stream", "query answer streams bytes forever (chunked)"),
    ("oversized_valid", "query answer is valid JSON larger than 64 MiB"),
    ("dup_results", "query answer has two top-level \"results\""),
    ("dup_properties", "one result has two \"properties\""),
    ("non_utf8_text", "one page's title and text hold invalid UTF-8"),
    ("error_invalid_utf8", "400 validation_error whose message has invalid UTF-8"),
    ("error_long_multibyte", "400 validation_error whose message is 2,000 multibyte chars"),
    ("redirect_301", "GET database answers 301 to the redirect listener"),
    ("redirect_302", "GET database answers 302 to the redirect listener"),
    ("redirect_307", "query answers 307 to the redirect listener"),
    ("redirect_308", "query answers 308 to the redirect listener"),
    ("has_more_yes", "query answer has has_more \"yes\" (then a valid last page)"),
    ("results_object", "query answer has results {}"),
    ("results_101", "query answer has 101 results"),
    ("retry_after_huge", "query answers 429 Retry-After: 999999999"),
    ("retry_after_3600", "query answers 429 Retry-After: 3600"),
    ("retry_after_120", "query answers 429 Retry-After: 120"),
    ("items_endless", "a relation's property items never end (new cursor each time)"),
    ("items_repeat", "a relation's property items repeat one cursor"),
    ("title_2mib", "database title is 2 MiB of text"),
    ("title_invalid_utf8", "database title holds invalid UTF-8"),
    ("nested_200", "one of 4 pages has a property nested 200 levels deep"),
    ("big_valid", "query answer is a valid ~20 MiB body (under the limit)"),
    # 2,000 emoji after 0-3 ASCII characters: whatever byte limit a client cuts
    # the message at, one of the four puts the cut inside a character.
    ("error_emoji_0", "400 validation_error: 2,000 emoji"),
    ("error_emoji_1", "400 validation_error: 1 ASCII character, then 2,000 emoji"),
    ("error_emoji_2", "400 validation_error: 2 ASCII characters, then 2,000 emoji"),
    ("error_emoji_3", "400 validation_error: 3 ASCII characters, then 2,000 emoji"),
]
CASE_NAMES = [c[0] for c in CASES]


def ids_for(idx):
    db = "d0b0%04x-0000-4000-8000-%012x" % (idx, idx)
    ds = "d5d5%04x-0000-4000-8000-%012x" % (idx, idx)
    pages = ["a9a9%04x-%04x-4000-8000-%012x" % (idx, j, idx) for j in range(1, 102)]
    return db, ds, pages


def rid():
    return str(uuid.uuid4())


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def enc(obj):
    """UTF-8 JSON of obj; BAD_MARK inside strings becomes raw invalid bytes."""
    return dumps(obj).encode("utf-8").replace(BAD_MARK.encode(), BAD_BYTES)


def text_item(content):
    return {"type": "text", "text": {"content": content, "link": None},
            "annotations": ANNOTATIONS, "plain_text": content, "href": None}


def title_value(text):
    return {"id": "title", "type": "title", "title": [text_item(text)] if text else []}


def rich_value(pieces, prop_id="desc"):
    return {"id": prop_id, "type": "rich_text", "rich_text": [text_item(p) for p in pieces]}


def page_obj(case, j, title, extra=None):
    """Page j (0-based) of a case, shaped like appendix A."""
    db, ds, pages = case["database_id"], case["data_source_id"], case["page_ids"]
    pid = pages[j]
    props = {"Name": title_value(title)}
    if extra:
        props.update(extra)
    minute = "2026-07-27T13:%02d:00.000Z" % (j % 60)
    return {"object": "page", "id": pid, "created_time": minute, "last_edited_time": minute,
            "created_by": {"object": "user", "id": USER_ID},
            "last_edited_by": {"object": "user", "id": USER_ID},
            "cover": None, "icon": None,
            "parent": {"type": "data_source_id", "data_source_id": ds, "database_id": db},
            "in_trash": False, "is_archived": False, "is_locked": False,
            "properties": props,
            "url": "https://app.notion.com/p/" + pid.replace("-", ""), "public_url": None,
            "archived": False}


def list_envelope(results_json, next_cursor=None, has_more=False):
    """A query list answer around already-serialized result bytes."""
    tail = {"next_cursor": next_cursor, "has_more": has_more, "type": "page_or_data_source",
            "page_or_data_source": {}, "request_id": rid()}
    return (b'{"object":"list","results":[' + b",".join(results_json) + b"]," +
            dumps(tail)[1:].encode())


def normal_pages(case, n=3, start=0):
    return [enc(page_obj(case, j, "%s page %d" % (case["name"], j + 1)))
            for j in range(start, start + n)]


def notion_error(status, code, message, extra=None):
    body = {"object": "error", "status": status, "code": code, "message": message,
            "request_id": rid()}
    if extra:
        body.update(extra)
    return enc(body)


class World:
    """The cases with their ids, a request log, and cached big bodies."""

    def __init__(self, token):
        self.token = token
        self.cases = {}
        self.by_db = {}
        self.by_ds = {}
        self.by_page = {}
        for idx, (name, what) in enumerate(CASES, start=1):
            db, ds, pages = ids_for(idx)
            case = {"name": name, "what": what, "database_id": db, "data_source_id": ds,
                    "page_ids": pages[:3], "all_page_ids": pages, "hostile_page_id": None,
                    "title": "Characters"}
            self.cases[name] = case
            self.by_db[db] = case
            self.by_ds[ds] = case
            for p in pages:
                self.by_page[p] = case
        for name in ("items_endless", "items_repeat", "non_utf8_text", "dup_properties"):
            self.cases[name]["hostile_page_id"] = self.cases[name]["all_page_ids"][1]
        nested = self.cases["nested_200"]
        nested["page_ids"] = nested["all_page_ids"][:4]
        nested["hostile_page_id"] = nested["all_page_ids"][3]
        self.cases["results_101"]["page_ids"] = self.cases["results_101"]["all_page_ids"][:101]
        self.cases["big_valid"]["page_ids"] = self.cases["big_valid"]["all_page_ids"][:100]
        self.cases["oversized_valid"]["page_ids"] = \
            self.cases["oversized_valid"]["all_page_ids"][:100]
        self.cases["title_invalid_utf8"]["title"] = "Bad " + BAD_MARK + " title"
        self.cases["title_2mib"]["title"] = "(2 MiB of T)"
        self.lock = threading.Lock()
        self.log = []
        self.seq = 0
        self.item_requests = {}
        self._big = {}

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)
            return entry

    def count_items(self, page_id):
        with self.lock:
            n = self.item_requests.get(page_id, 0) + 1
            self.item_requests[page_id] = n
            return n

    def big_body(self, name, build):
        with self.lock:
            if name not in self._big:
                self._big[name] = build()
            return self._big[name]

    def public_cases(self):
        return {n: {k: c[k] for k in ("database_id", "data_source_id", "page_ids",
                                      "hostile_page_id", "title", "what")}
                for n, c in self.cases.items()}


class Response:
    def __init__(self, status, body=b"", headers=None, stream=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.stream = stream       # a callable(wfile) for the endless body


class Answered(Exception):
    """Raised with the answer when a request ends early (an unknown id)."""

    def __init__(self, resp):
        super().__init__(resp.status)
        self.resp = resp


# ---------------------------------------------------------------- answers

def database_answer(world, case):
    name = case["name"]
    if name == "title_2mib":
        # 1,049 rich text items of 2,000 characters: 2,098,000 characters of text.
        title = [text_item("T" * 2000) for _ in range(1049)]
    else:
        title = [text_item(case["title"])]
    db = {"object": "database", "id": case["database_id"], "title": title, "description": [],
          "parent": {"type": "page_id", "page_id": PARENT_PAGE},
          "is_inline": False, "in_trash": False, "is_locked": False,
          "created_time": "2026-07-04T09:08:57.778+00:00",
          "last_edited_time": "2026-07-04T09:08:57.778+00:00",
          "data_sources": [{"id": case["data_source_id"], "name": "Source of " + name}],
          "icon": None, "cover": None,
          "url": "https://app.notion.com/p/" + case["database_id"].replace("-", ""),
          "public_url": None, "archived": False, "request_id": rid()}
    if name == "title_2mib":
        return world.big_body("title_2mib", lambda: enc(db))
    return enc(db)


def endless_stream(case):
    pid = case["page_ids"][0]
    head = ('{"object":"list","results":[{"object":"page","id":"%s",'
            '"created_time":"2026-07-27T13:00:00.000Z","last_edited_time":'
            '"2026-07-27T13:00:00.000Z","properties":{"Name":{"id":"title","type":"title",'
            '"title":[' % pid).encode()
    item = enc(text_item("E" * 1000)) + b","
    chunk = item * (MIB // len(item))

    def write(wfile):
        sent = 0
        data = head
        while sent < ENDLESS_LIMIT:
            wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            sent += len(data)
            data = chunk
        wfile.write(b"0\r\n\r\n")
    return write


def big_pages_body(case, n_pages, items_per_page):
    piece = "x" * 2000
    results = [enc(page_obj(case, j, "big page %d" % (j + 1),
                            {"Description": rich_value([piece] * items_per_page)}))
               for j in range(n_pages)]
    return list_envelope(results)


def query_answer(world, case, body, listener):
    name = case["name"]
    cursor = body.get("start_cursor") if isinstance(body, dict) else None
    if listener == "redirect":
        return Response(200, list_envelope(normal_pages(case)))
    if name == "malformed_json":
        return Response(200, b'{"object":"list","results":[{"object":"page" "id":"' +
                        case["page_ids"][0].encode() + b'"}],"has_more":false}')
    if name == "truncated_json":
        full = list_envelope(normal_pages(case))
        return Response(200, full[:len(full) * 6 // 10])
    if name == "endless_stream":
        return Response(200, stream=endless_stream(case))
    if name == "oversized_valid":
        # 100 pages of 168 text items of 2,000 characters (twice: content and
        # plain_text): about 70 MB.
        return Response(200, world.big_body("oversized", lambda: big_pages_body(case, 100, 168)))
    if name == "big_valid":
        return Response(200, world.big_body("big_valid", lambda: big_pages_body(case, 100, 50)))
    if name == "dup_results":
        p = normal_pages(case)
        tail = dumps({"next_cursor": None, "has_more": False, "type": "page_or_data_source",
                      "page_or_data_source": {}, "request_id": rid()})[1:].encode()
        return Response(200, b'{"object":"list","results":[' + p[0] + b'],"results":[' +
                        p[1] + b"," + p[2] + b"]," + tail)
    if name == "dup_properties":
        p = normal_pages(case)
        dup = enc(page_obj(case, 1, "first properties"))
        second = dumps({"Name": title_value("second properties")}).encode()
        dup = dup[:-1] + b',"properties":' + second + b"}"
        return Response(200, list_envelope([p[0], dup, p[2]]))
    if name == "non_utf8_text":
        p = normal_pages(case)
        bad = enc(page_obj(case, 1, "bad " + BAD_MARK + " title",
                           {"Description": rich_value(["text " + BAD_MARK + " end"])}))
        return Response(200, list_envelope([p[0], bad, p[2]]))
    if name == "error_invalid_utf8":
        return Response(400, notion_error(400, "validation_error",
                                          "body failed validation: " + BAD_MARK + " is bad"))
    if name == "error_long_multibyte":
        chars = "é€😀"
        message = "".join(chars[i % 3] for i in range(2000))
        return Response(400, notion_error(400, "validation_error", message))
    if name.startswith("error_emoji_"):
        message = "x" * int(name[-1]) + "\U0001F600" * 2000
        return Response(400, notion_error(400, "validation_error", message))
    if name in ("redirect_307", "redirect_308"):
        return redirect(world, int(name[-3:]), "/v1/data_sources/%s/query" % case["data_source_id"])
    if name == "has_more_yes":
        if cursor:
            return Response(200, list_envelope(normal_pages(case, 1, 2)))
        tail = dumps({"next_cursor": "has-more-yes-cursor-2", "has_more": "yes",
                      "type": "page_or_data_source", "page_or_data_source": {},
                      "request_id": rid()})[1:].encode()
        return Response(200, b'{"object":"list","results":[' +
                        b",".join(normal_pages(case, 2)) + b"]," + tail)
    if name == "results_object":
        return Response(200, enc({"object": "list", "results": {}, "next_cursor": None,
                                  "has_more": False, "type": "page_or_data_source",
                                  "page_or_data_source": {}, "request_id": rid()}))
    if name == "results_101":
        return Response(200, list_envelope(normal_pages(case, 101)))
    if name.startswith("retry_after_"):
        after = {"retry_after_huge": "999999999", "retry_after_3600": "3600",
                 "retry_after_120": "120"}[name]
        return Response(429, notion_error(429, "rate_limited",
                                          "You have been rate limited. Please try again in a "
                                          "few minutes."), {"Retry-After": after})
    if name in ("items_endless", "items_repeat"):
        p = normal_pages(case)
        links = [{"id": "c0ffee00-0000-4000-8000-%012x" % k} for k in range(25)]
        hostile = enc(page_obj(case, 1, "many links", {
            "Links": {"id": "lnks", "type": "relation", "relation": links, "has_more": True}}))
        return Response(200, list_envelope([p[0], hostile, p[2]]))
    if name == "nested_200":
        deep = "[" * 200 + "]" * 200
        page = dumps(page_obj(case, 3, "deep page")).encode()
        marker = b'"Name":'
        value = (b'"Deep":{"id":"deep","type":"rich_text","rich_text":' + deep.encode() +
                 b"},")
        page = page.replace(marker, value + marker, 1)
        return Response(200, list_envelope(normal_pages(case, 3) + [page]))
    # control, non-hostile query of title cases, 30x GET cases served normally
    return Response(200, list_envelope(normal_pages(case)))


def property_items(world, case, page_id, prop_id, query):
    params = urllib.parse.parse_qs(query)
    cursor = (params.get("start_cursor") or [None])[0]
    name = case["name"]
    if name not in ("items_endless", "items_repeat") or page_id != case["hostile_page_id"] \
            or prop_id != "lnks":
        return Response(404, notion_error(404, "object_not_found",
                                          "Could not find property with ID: %s." % prop_id))
    n = world.count_items(page_id)
    base = n * 100
    results = [{"object": "property_item", "id": "lnks", "type": "relation",
                "relation": {"id": "c0ffee00-%04x-4000-8000-%012x" % (n % 0x10000, base + k)}}
               for k in range(100)]
    more = n < ITEMS_SAFETY
    if name == "items_endless":
        next_cursor = str(uuid.uuid5(uuid.NAMESPACE_URL, "endless-%d" % n)) if more else None
    else:
        next_cursor = "repeat-cursor-1" if more else None
    del cursor
    body = {"object": "list", "results": results, "next_cursor": next_cursor, "has_more": more,
            "type": "property_item",
            "property_item": {"id": "lnks", "next_url": None, "type": "relation",
                              "relation": {}},
            "request_id": rid()}
    return Response(200, enc(body))


def redirect(world, status, path):
    location = "http://127.0.0.1:%d%s" % (world.redirect_port, path)
    return Response(status, b"", {"Location": location})


# ---------------------------------------------------------------- HTTP

class Handler(serving.Handler):
    server_version = "hostile-notion"
    disable_nagle_algorithm = True
    timeout = 120

    def respond(self, path, query, raw):
        world = self.server.world
        listener = self.server.role
        if listener == "main" and path.startswith("/_hostile/"):
            return self._write(self._control(world, path))
        auth = self.headers.get("Authorization")
        entry = {"listener": listener, "method": self.command, "path": path,
                 "auth": ("absent" if auth is None else
                          "expected" if auth == "Bearer " + world.token else "other"),
                 "version": self.headers.get("Notion-Version"), "case": None,
                 "start_cursor": None, "status": None}
        try:
            resp = self._api(world, listener, path, query, raw, entry)
        except Answered as early:
            resp = early.resp
        except Exception as exc:   # a bug here: answer 500, keep serving
            sys.stderr.write("hostile_notion: %r\n" % (exc,))
            resp = Response(500, notion_error(500, "internal_server_error",
                                              "Unexpected error occurred."))
        entry["status"] = resp.status
        world.record(entry)
        self._write(resp)

    def _control(self, world, path):
        if path == "/_hostile/health":
            return Response(200, b'{"status":"ok"}')
        if path == "/_hostile/cases":
            return Response(200, enc(world.public_cases()))
        if path == "/_hostile/requests":
            if self.command == "DELETE":
                with world.lock:
                    world.log = []
                    world.item_requests = {}
                return Response(200, b'{"cleared":true}')
            with world.lock:
                return Response(200, enc({"requests": list(world.log)}))
        return Response(404, b'{"error":"no such control endpoint"}')

    def _api(self, world, listener, path, query, raw, entry):
        if entry["auth"] != "expected":
            return Response(401, notion_error(401, "unauthorized", "API token is invalid."))
        if not self.headers.get("Notion-Version"):
            return Response(400, notion_error(400, "missing_version",
                                              "Notion-Version header failed validation: "
                                              "Notion-Version header should be defined, "
                                              "instead was `undefined`."))
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v1", "databases"] and self.command == "GET":
            case = find_case(world.by_db, "database", parts[2], entry)
            if listener == "main" and case["name"] in ("redirect_301", "redirect_302"):
                return redirect(world, int(case["name"][-3:]), path)
            return Response(200, database_answer(world, case))
        if len(parts) == 4 and parts[:2] == ["v1", "data_sources"] and parts[3] == "query" \
                and self.command == "POST":
            case = find_case(world.by_ds, "data source", parts[2], entry)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return Response(400, notion_error(400, "invalid_json",
                                                  "Error parsing JSON body."))
            entry["start_cursor"] = body.get("start_cursor") if isinstance(body, dict) else None
            return query_answer(world, case, body, listener)
        if len(parts) == 5 and parts[:2] == ["v1", "pages"] and parts[3] == "properties" \
                and self.command == "GET":
            case = find_case(world.by_page, "page", parts[2], entry)
            params = urllib.parse.parse_qs(query)
            entry["start_cursor"] = (params.get("start_cursor") or [None])[0]
            return property_items(world, case, parts[2], urllib.parse.unquote(parts[4]), query)
        return Response(400, notion_error(400, "invalid_request_url", "Invalid request URL."))

    def _write(self, resp):
        headers = [("Date", email.utils.formatdate(usegmt=True)), ("x-notion-request-id", rid())]
        self.send_json(resp.status, resp.body, headers + list(resp.headers.items()), resp.stream)


def find_case(index, what, ident, entry):
    """The case whose id ident is (index: world.by_db, by_ds or by_page),
    noted in the log entry; an unknown id ends the request with Notion's 404."""
    case = index.get(ident)
    if not case:
        raise Answered(not_found(what, ident))
    entry["case"] = case["name"]
    return case


def not_found(what, ident):
    return Response(404, notion_error(
        404, "object_not_found",
        "Could not find %s with ID: %s. Make sure the relevant pages and databases are shared "
        "with your integration \"hostile\"." % (what, ident),
        {"additional_data": {"integration_id": "7775f3a3-893f-43fa-b625-460c61094c78"}}))


class Server(serving.Server):
    request_queue_size = 128

    def __init__(self, addr, world, role):
        self.world = world
        self.role = role
        super().__init__(addr, Handler)


def main(argv=None):
    ap = argparse.ArgumentParser(description="A hostile Notion API (loopback only).")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", required=True)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    world = World(args.token)
    main_srv = Server(("127.0.0.1", args.port), world, "main")
    redir_srv = Server(("127.0.0.1", 0), world, "redirect")
    world.redirect_port = redir_srv.server_address[1]
    port = main_srv.server_address[1]

    if not args.quiet:
        sys.stderr.write("hostile_notion listening on http://127.0.0.1:%d (redirect target "
                         "%d)\n" % (port, world.redirect_port))
    return serving.serve([main_srv, redir_srv], args.port_file,
                         announce="%d %d" % (port, world.redirect_port))


if __name__ == "__main__":
    sys.exit(main())
