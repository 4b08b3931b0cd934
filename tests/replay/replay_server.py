#!/usr/bin/env python3
"""replay_server.py - a Notion API stand-in made only of REAL recorded answers.

Every answer body comes from responses that api.notion.com really sent:
tests/fixtures/notion-sdk-py/*.json, recorded by the Python SDK's VCR cassettes
(ramnes/notion-sdk-py, MIT; see SOURCE.md there), and
tests/fixtures/notion_ruby_mapping/*.json, curl answers kept by the Ruby library's
spec fixtures (hkob/notion_ruby_mapping, MIT; see SOURCE.md there). It is
independent evidence next to tests/emulator, which follows our own reading of the
docs. Python 3 standard library only.

Usage:
  python3 tests/replay/replay_server.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
      [--token TOKEN ...] [--fixtures DIR ...] [--quiet]

Loopback only. With --port 0 a free port is chosen; --port-file receives it (written
atomically once the socket listens, removed on exit). SIGTERM/SIGINT stop it.
--token may be repeated; without it no token is accepted until one is set through
the control API. Tokens are never logged, echoed or written anywhere.
--fixtures may be repeated (default: both corpus folders above).

Notion API served (Authorization: Bearer <token>, Notion-Version 2022-06-28 or
2025-09-03, paths under /v1):
  GET  /v1/databases/{id}               GET  /v1/data_sources/{id}
  POST /v1/data_sources/{id}/query      POST /v1/databases/{id}/query (2022-06-28)
  GET  /v1/pages/{id}                   GET  /v1/pages/{id}/properties/{property_id}
  POST /v1/search                       GET  /v1/users/me
Ids are accepted with or without dashes, in any case.

Request validation (what Notion checks before it answers):
  * Authorization must be "Bearer <an accepted token>", else 401: the RECORDED body
    {"object":"error","status":401,"code":"unauthorized","message":"API token is invalid.",...}
  * Notion-Version must be present, else 400 missing_version (message from Notion's
    status-codes documentation; not in the recordings). A version for which no
    recording exists answers 501 replay_no_recording (see below).
  * POST bodies must be JSON objects (400 invalid_json "Error parsing JSON body.",
    documented), with only the documented keys and types:
      data source query: filter (object), sorts (array of {property|timestamp,
        direction}), start_cursor (string), page_size (1..100), in_trash, archived
        (booleans), result_type ("page"|"data_source");
      2022-06-28 database query: the same without result_type;
      search: query (string), filter ({property:"object", value}), sort
        ({timestamp:"last_edited_time", direction}), start_cursor, page_size.
    Violations answer 400 validation_error with Notion's message format, e.g.
    "body failed validation: body.page_size should be ≤ `100`, instead was `101`." and
    "body failed validation: body.foo should be not present, instead was `1`." (this
    wording is Notion's, as quoted from real error answers in public code; the exact
    sentences are not in the ramnes recordings; one of the form, "path failed validation:
    path.page_id should be a valid uuid, instead was `"AAA"`.", is recorded in
    retrieve_page_wrong_format__42b81f32, under 2022-02-22, and is what this server answers
    for GET /v1/pages/AAA too). ?page_size on the property endpoint
    is checked the same way ("query failed validation: query.page_size ...").
  * Unknown /v1 paths and methods: the RECORDED 400 invalid_request_url body.
  * Unknown ids: 404 object_not_found in the RECORDED shape ("Could not find page with
    ID: <id>. Make sure the relevant pages and databases are shared with your
    integration "notion-sdk-py".", additional_data.integration_id); for databases and
    data sources the noun and the id are substituted (constructed from the recording),
    for pages the recorded body is used with the id substituted (verbatim for the
    recorded id 00000000-0000-0000-0000-000000000000).

What is served, and where it comes from (fixture file # interaction index):
  RECORDED, byte for byte:
    GET  database 14fa890e-c173-4ffa-80a2-fedb26fc2614 (2025-09-03)  test_databases_retrieve__245f2bf3 #2
    GET  database 16cabc1e-edcd-81ef-ad7e-ff26e0414536 (2022-06-28)  test_is_full_page_or_database__12e1f110 #3
    GET  data source 393abc1e-edcd-8179-9372-000bd163e729 (2025)     test_data_sources_retrieve__0e329fa2 #3
    GET  page 28399f72-bada-819a-92bb-dc160009c1d6 (2025)            test_pages_retrieve__245f2bf3 #1
    GET  page 16cabc1e-edcd-8158-98bf-e35e573522ba (2022)            test_is_full_page_or_database__12e1f110 #2
    GET  property title of 393abc1e-edcd-8138-85a7-fac7f6c92a45 (2025) test_pages_properties_retrieve__15196fc3 #1
    GET  property title of 16cabc1e-edcd-81a2-b461-e2e5e873b96c (2022) test_pages_properties_retrieve__12e1f110 #1
    POST query of the five data sources with recorded rows (2025), the unfiltered
         recorded query of each cassette: test_collect_all_data_source_rows #6,
         test_async_collect_all_data_source_rows #5, test_iterate_all_data_source_rows #6,
         test_async_iterate_all_data_source_rows #5, test_data_sources_query #3 (empty)
    POST query of database 0e35a186-7075-44d3-80b1-f0d4b69cf582 (2022)  test_databases_query__d6b5c1eb #2 (empty)
    POST search {} and search with a query that matches nothing (2025) test_collect_paginated_api__15196fc3 #0, #1
    GET  users/me (2025)                                             test_users_me__0e329fa2 #0
    notion_ruby_mapping (all 2025-09-03):
    GET  database c37a2c66-e3aa-4a0d-a447-73de3b80c253 "Sample table" retrieve_database_database__9846ab69
    POST query of data source 4f93db51-4e1d-4015-b07f-876e34c3b0b1, a chain of three pages
         (5 rows, 25 property types): query_data_source_limit_2__9846ab69 (no cursor),
         query_data_source_next_2__ff3d52d0 (start_cursor 6601e719-...),
         query_data_source_last_2__9846ab69 (start_cursor dcdc805c-...). Recorded with
         page_size 2; served for any page_size >= 2 (Notion would send the 5 rows at once
         for page_size 100; a walk that follows next_cursor ends with the same rows).
    GET  page b56cba96-82ab-46f2-866a-e7a9e590dff3 "A parent" (relation cut at 25,
         has_more true)                                         retrieve_page_with_many_relations__9846ab69
    GET  property %60%5B%3E%7B of b56cba96-... (26 items)      retrieve_property_relation_with_many_relations__9846ab69
    400 invalid_request_url, 401 unauthorized                        test_api_response_error__15196fc3 #0, #1
    404 object_not_found (page 00000000-...)                         test_build_request_error_integration__0e329fa2 #0
  CONSTRUCTED from recorded pieces (the recordings lack them; the sync needs them):
    GET database cef9c6ec-..., 2a405597-..., 612bdad7-..., 9f0d421e-..., c01e05c7-...
        (2025-09-03): the recorded POST /v1/databases answer of the same cassette (a
        database object; recorded POST and GET answers carry the same object, see
        test_databases_retrieve__245f2bf3 #1 vs #2), re-serialised compactly with its
        "data_sources" list replaced by the one data source whose rows were recorded
        (the one the cassette created with POST /v1/data_sources; {id, name = that data
        source's title}). Notion would also list the database's initial data source,
        whose rows were never recorded; it is left out.
    GET database 0e35a186-... (2022-06-28): the recorded POST /v1/databases answer,
        unchanged (2022 POST and GET answers are identical but for request_id:
        test_is_full_page_or_database__12e1f110 #1 vs #3).
    GET data source (2025) of the five data sources with rows: the recorded POST
        /v1/data_sources answer, unchanged (POST == GET: test_data_sources_retrieve #2 vs #3).
    GET page (2025) of every recorded row and of the cassettes' parent pages: the
        recorded POST /v1/pages answer, unchanged (POST == GET: test_pages_retrieve #0
        vs #1; row objects in query answers equal them minus request_id).
    404 bodies for ids nobody recorded, and the 400 validation bodies (see above).
    GET database db000000-0000-4000-8000-5a0c756ba0a7 (2025-09-03, an id made up here):
        the database of "A parent", whose data source 5a0c756b-... was never retrieved and
        whose database was never named (the page's parent has no database_id). Shaped like
        the recorded "Sample table" database: empty title, data_sources [5a0c756b-...], no
        times (unknown).
    POST query of data source 5a0c756b-a0a7-4799-906f-37e622ea502b (2025-09-03): the list
        envelope of query_data_source_last_2 (one page, has_more false) holding the
        recorded page "A parent" minus its request_id, with a fresh request_id.
  NOT RECORDED: 501 {"object":"error","status":501,"code":"replay_no_recording",...}
    (a code Notion never sends, so a test cannot mistake it for Notion): a Notion-Version
    without recordings, an object known only under the other version, a search or a
    query whose answer would differ from every recording (e.g. a search whose query
    matches a served title, a page_size smaller than the recorded page, a start_cursor
    the recordings never returned).
  Query answers ignore filter and sorts (the recordings hold one answer per data source,
  served in the recorded row order, whatever the sorts ask); a recording with several
  pages is served in order, each next start_cursor being the previous page's next_cursor
  (data source 4f93db51-... has three). Property-item requests for a page known only from
  a query answer answer 501 (none recorded).

Control API (JSON, no auth, paths under /_replay):
  GET    /_replay/health
  POST   /_replay/tokens   {"tokens": [..]}  replace the accepted tokens ([] = none)
  GET    /_replay/requests  {"requests": [{seq, method, path, query, notion_version,
                            auth: ok|missing|not_bearer|wrong_token, body, status,
                            served}]}   (never holds a token)
  DELETE /_replay/requests
  GET    /_replay/catalog   what is served and where each answer comes from
"""

import argparse
import glob
import json
import os
import re
import sys
import threading
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import serving  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = [os.path.join(HERE, "..", "fixtures", "notion-sdk-py"),
                    os.path.join(HERE, "..", "fixtures", "notion_ruby_mapping")]
# The made-up id of the database of the recorded page "A parent" (see the top comment).
MANY_RELATIONS_DB = "db000000-0000-4000-8000-5a0c756ba0a7"
VERSIONS = ("2022-06-28", "2025-09-03")
MSG_MISSING_VERSION = ("Notion-Version header failed validation: Notion-Version header should "
                       "be defined, instead was undefined.")
UUID_RX = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}$")


def norm_id(s):
    """Dashed lower-case UUID, or None."""
    if not s or not UUID_RX.match(s):
        return None
    h = s.replace("-", "").lower()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def plain(rich):
    return "".join(r.get("plain_text", "") for r in rich or [])


class Answer:
    def __init__(self, status, body, served):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.served = served


class ApiError(Exception):
    def __init__(self, answer):
        super().__init__(answer.served)
        self.answer = answer


# --- the workspace: built from the fixtures ------------------------------------------

class Workspace:
    """Answers keyed by (version, kind, id). Each value is (body str, provenance)."""

    # cassette stem -> the interaction index of its unfiltered query
    ROW_CASSETTES = {
        "test_collect_all_data_source_rows__2c927d46": 6,
        "test_async_collect_all_data_source_rows__2c927d46": 5,
        "test_iterate_all_data_source_rows__2c927d46": 6,
        "test_async_iterate_all_data_source_rows__e1f9389b": 5,
        "test_data_sources_query__245f2bf3": 3,
    }

    def __init__(self, fixtures):
        self.files = {}
        for folder in fixtures:
            for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
                stem = os.path.basename(path)[:-5]
                if stem in self.files:
                    raise SystemExit(f"replay_server: fixture {stem} twice")
                with open(path, encoding="utf-8") as f:
                    self.files[stem] = json.load(f)
        if not self.files:
            raise SystemExit(f"replay_server: no fixtures in {fixtures}")
        self.objects = {}   # (version, kind, id) -> (body, served)
        self.queries = {}   # (version, source id) -> [(body, served), ...] in cursor order
        self.props = {}     # (version, page id, property id) -> (body, served)
        self.titles = []    # every served database/data source/page title (for search)
        self.known_pages = set()  # (version, page id) of rows seen only in query answers
        self.errors = {}
        self._build()

    def inter(self, stem, i):
        it = self.files[stem]["interactions"][i]
        return it, f"{stem}#{i}"

    def _put(self, version, kind, oid, body, served):
        self.objects[(version, kind, norm_id(oid))] = (body, served)
        obj = json.loads(body)
        t = obj.get("title")
        if isinstance(t, list):
            self.titles.append(plain(t))
        for v in (obj.get("properties") or {}).values():
            if isinstance(v, dict) and v.get("type") == "title" and isinstance(v.get("title"), list):
                self.titles.append(plain(v["title"]))

    def _build(self):
        # Recorded GETs, verbatim.
        for stem, i in (("test_databases_retrieve__245f2bf3", 2),
                        ("test_is_full_page_or_database__12e1f110", 3),
                        ("test_data_sources_retrieve__0e329fa2", 3),
                        ("test_pages_retrieve__245f2bf3", 1),
                        ("test_is_full_page_or_database__12e1f110", 2)):
            it, served = self.inter(stem, i)
            kind, oid = it["path"].split("/")[2:4]
            self._put(it["notion_version"], kind, oid, it["response_body"], served)
        for stem in ("test_pages_properties_retrieve__15196fc3",
                     "test_pages_properties_retrieve__12e1f110"):
            it, served = self.inter(stem, 1)
            _, _, _, pid, _, prop = it["path"].split("/")
            self.props[(it["notion_version"], norm_id(pid), prop)] = (it["response_body"], served)

        # Databases with recorded rows (2025-09-03): constructed GET database,
        # GET data source and GET page from the recorded creation answers.
        for stem, qi in self.ROW_CASSETTES.items():
            inters = self.files[stem]["interactions"]
            db_it = next(it for it in inters if it["method"] == "POST" and it["path"] == "/v1/databases")
            ds_it = next(it for it in inters if it["method"] == "POST" and it["path"] == "/v1/data_sources")
            q_it = inters[qi]
            assert q_it["path"].endswith("/query") and q_it["status"] == 200, (stem, qi)
            db = json.loads(db_it["response_body"])
            ds = json.loads(ds_it["response_body"])
            assert q_it["path"] == f"/v1/data_sources/{ds['id']}/query", stem
            db["data_sources"] = [{"id": ds["id"], "name": plain(ds["title"])}]
            v = q_it["notion_version"]
            self._put(v, "databases", db["id"], compact(db),
                      f"constructed:{stem}#{db_it['index']} (data_sources := "
                      f"[{ds['id']}] from #{ds_it['index']})")
            self._put(v, "data_sources", ds["id"], ds_it["response_body"],
                      f"{stem}#{ds_it['index']} (POST /v1/data_sources answer served for GET)")
            self.queries[(v, norm_id(ds["id"]))] = [(q_it["response_body"], f"{stem}#{qi}")]
            for it in inters:
                if it["method"] == "POST" and it["path"] == "/v1/pages" and it["status"] == 200:
                    page = json.loads(it["response_body"])
                    self._put(v, "pages", page["id"], it["response_body"],
                              f"{stem}#{it['index']} (POST /v1/pages answer served for GET)")

        # 2022-06-28 database with a recorded (empty) query.
        stem = "test_databases_query__d6b5c1eb"
        inters = self.files[stem]["interactions"]
        self._put("2022-06-28", "databases", json.loads(inters[1]["response_body"])["id"],
                  inters[1]["response_body"],
                  f"{stem}#1 (POST /v1/databases answer served for GET)")
        q = inters[2]
        self.queries[("2022-06-28", norm_id(q["path"].split("/")[3]))] = [
            (q["response_body"], f"{stem}#2")]

        self._build_ruby_mapping()

        # Search, users/me, errors.
        it0, s0 = self.inter("test_collect_paginated_api__15196fc3", 0)
        it1, s1 = self.inter("test_collect_paginated_api__15196fc3", 1)
        self.search_all = (it0["response_body"], s0)
        self.search_none = (it1["response_body"], s1)
        it, s = self.inter("test_users_me__0e329fa2", 0)
        self.users_me = (it["response_body"], s)
        for key, stem, i in (("invalid_request_url", "test_api_response_error__15196fc3", 0),
                             ("unauthorized", "test_api_response_error__15196fc3", 1),
                             ("object_not_found", "test_build_request_error_integration__0e329fa2", 0)):
            it, s = self.inter(stem, i)
            self.errors[key] = (it["status"], it["response_body"], s)

    def _build_ruby_mapping(self):
        """hkob/notion_ruby_mapping answers (2025-09-03), see the top comment."""
        v = "2025-09-03"
        one = lambda stem: self.inter(stem, 0)  # noqa: E731
        it, served = one("retrieve_database_database__9846ab69")
        self._put(v, "databases", it["path"].split("/")[3], it["response_body"], served)
        chain = []
        for stem in ("query_data_source_limit_2__9846ab69", "query_data_source_next_2__ff3d52d0",
                     "query_data_source_last_2__9846ab69"):
            it, served = one(stem)
            start = json.loads(it["request_body"] or "{}").get("start_cursor")
            if chain:   # each page answers the previous page's next_cursor
                assert start == json.loads(chain[-1][0])["next_cursor"], stem
            chain.append((it["response_body"], served))
            for row in json.loads(it["response_body"])["results"]:
                self.known_pages.add((v, norm_id(row["id"])))
                self.titles.append(plain(row["properties"]["Title"]["title"]))
        self.queries[(v, norm_id(it["path"].split("/")[3]))] = chain
        it, served = one("retrieve_page_with_many_relations__9846ab69")
        page = json.loads(it["response_body"])
        self._put(v, "pages", page["id"], it["response_body"], served)
        pit, pserved = one("retrieve_property_relation_with_many_relations__9846ab69")
        _, _, _, pid, _, prop = pit["path"].split("/")
        assert norm_id(pid) == page["id"], pid
        self.props[(v, norm_id(pid), prop)] = (pit["response_body"], pserved)
        # Constructed: its database and its data source's query (see the top comment).
        ds = page["parent"]["data_source_id"]
        db = json.loads(self.inter("retrieve_database_database__9846ab69", 0)[0]["response_body"])
        for unknown in ("created_time", "last_edited_time", "is_inline"):
            del db[unknown]
        db.update(id=MANY_RELATIONS_DB, title=[], parent={"type": "workspace", "workspace": True},
                  data_sources=[{"id": ds, "name": ""}],
                  url="https://www.notion.so/" + MANY_RELATIONS_DB.replace("-", ""),
                  public_url=None, request_id=str(uuid.uuid4()))
        self._put(v, "databases", MANY_RELATIONS_DB, compact(db),
                  "constructed: the database of retrieve_page_with_many_relations__9846ab69 "
                  "(shape of retrieve_database_database__9846ab69)")
        row = dict(page)
        del row["request_id"]
        envelope = json.loads(self.inter("query_data_source_last_2__9846ab69", 0)[0]["response_body"])
        envelope.update(results=[row], request_id=str(uuid.uuid4()))
        assert envelope["has_more"] is False and envelope["next_cursor"] is None
        self.queries[(v, norm_id(ds))] = [(compact(envelope),
                                           "constructed: retrieve_page_with_many_relations__9846ab69 "
                                           "minus request_id in the envelope of "
                                           "query_data_source_last_2__9846ab69")]

    def known_elsewhere(self, version, kind, oid):
        return any(v != version and k == kind and i == oid for (v, k, i) in self.objects) or \
            (kind in ("databases", "data_sources") and
             any(v != version and i == oid for (v, i) in self.queries))

    def catalog(self):
        return {
            "objects": [{"notion_version": v, "kind": k, "id": i, "served": s}
                        for (v, k, i), (_, s) in sorted(self.objects.items())],
            "queries": [{"notion_version": v, "source_id": i, "pages": [s for _, s in chain]}
                        for (v, i), chain in sorted(self.queries.items())],
            "property_items": [{"notion_version": v, "page_id": p, "property": q, "served": s}
                               for (v, p, q), (_, s) in sorted(self.props.items())],
            "search": [self.search_all[1], self.search_none[1]],
            "users_me": self.users_me[1],
            "errors": {k: v[2] for k, v in self.errors.items()},
        }


# --- answers -----------------------------------------------------------------------

def recorded_error(ws, key):
    status, body, served = ws.errors[key]
    return Answer(status, body, served)


def validation_error(message):
    body = {"object": "error", "status": 400, "code": "validation_error", "message": message,
            "request_id": str(uuid.uuid4())}
    return ApiError(Answer(400, compact(body), "constructed:validation_error"))


def not_found(ws, noun, oid):
    """The recorded 404 with the object noun and id substituted."""
    status, body, served = ws.errors["object_not_found"]
    rec = json.loads(body)
    if noun == "page" and oid == "00000000-0000-0000-0000-000000000000":
        return ApiError(Answer(status, body, served))
    rec["message"] = rec["message"].replace(
        "page with ID: 00000000-0000-0000-0000-000000000000", f"{noun} with ID: {oid}")
    rec["request_id"] = str(uuid.uuid4())
    return ApiError(Answer(status, compact(rec), f"constructed:{served} ({noun} {oid})"))


def no_recording(why):
    body = {"object": "error", "status": 501, "code": "replay_no_recording",
            "message": f"replay server: no recording for this request ({why})"}
    return ApiError(Answer(501, compact(body), f"no_recording: {why}"))


def shown(value):
    return compact(value)


def check_keys(body, allowed, where="body"):
    for k, v in body.items():
        if k not in allowed:
            raise validation_error(f"{where} failed validation: {where}.{k} should be not present, "
                                   f"instead was `{shown(v)}`.")


def check_page_size(value, where="body"):
    if value is None:
        return 100
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(f"{where} failed validation: {where}.page_size should be a number, "
                               f"instead was `{shown(value)}`.")
    if value > 100:
        raise validation_error(f"{where} failed validation: {where}.page_size should be ≤ `100`, "
                               f"instead was `{value}`.")
    if value < 1:
        raise validation_error(f"{where} failed validation: {where}.page_size should be ≥ `1`, "
                               f"instead was `{value}`.")
    return value


def check_type(body, key, types, name):
    if key in body and not isinstance(body[key], types):
        raise validation_error(f"body failed validation: body.{key} should be {name}, "
                               f"instead was `{shown(body[key])}`.")


def check_query_body(body, version):
    allowed = ["filter", "sorts", "start_cursor", "page_size", "in_trash", "archived"]
    if version >= "2025-09-03":
        allowed.append("result_type")
    check_keys(body, allowed)
    check_type(body, "filter", dict, "an object")
    check_type(body, "sorts", list, "an array")
    check_type(body, "start_cursor", str, "a string")
    check_type(body, "in_trash", bool, "a boolean")
    check_type(body, "archived", bool, "a boolean")
    for i, s in enumerate(body.get("sorts") or []):
        if not isinstance(s, dict) or not (("property" in s) ^ ("timestamp" in s)) or \
                s.get("direction") not in ("ascending", "descending") or \
                set(s) - {"property", "timestamp", "direction"} or \
                ("timestamp" in s and s["timestamp"] not in ("created_time", "last_edited_time")):
            raise validation_error(f"body failed validation: body.sorts[{i}] should be a property "
                                   f"or timestamp sort, instead was `{shown(s)}`.")
    if "result_type" in body and body["result_type"] not in ("page", "data_source"):
        raise validation_error("body failed validation: body.result_type should be `\"page\"` or "
                               f"`\"data_source\"`, instead was `{shown(body['result_type'])}`.")
    return check_page_size(body.get("page_size"))


def serve_chain(chain, cursor, page_size, what):
    if cursor is None:
        idx = 0
    else:
        idx = None
        for i in range(1, len(chain)):
            if json.loads(chain[i - 1][0]).get("next_cursor") == cursor:
                idx = i
        if idx is None:
            raise no_recording(f"{what}: start_cursor {cursor!r} was never returned by the recordings")
    body, served = chain[idx]
    if len(json.loads(body).get("results", [])) > page_size:
        raise no_recording(f"{what}: page_size {page_size} is smaller than the recorded page")
    return Answer(200, body, served)


def api(ws, method, path, query, version, body):
    parts = path.strip("/").split("/")
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in query.split("&") if p)

    def json_body():
        if not body.strip():
            return {}
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(Answer(400, compact({"object": "error", "status": 400,
                                                 "code": "invalid_json",
                                                 "message": "Error parsing JSON body.",
                                                 "request_id": str(uuid.uuid4())}),
                                  "constructed:invalid_json"))
        if not isinstance(obj, dict):
            raise validation_error(f"body failed validation: body should be an object, "
                                   f"instead was `{shown(obj)}`.")
        return obj

    def obj(kind, noun, raw_id):
        oid = norm_id(raw_id)
        if oid is None:
            raise validation_error(f"path failed validation: path.{noun.replace(' ', '_')}_id should "
                                   f"be a valid uuid, instead was `{shown(raw_id)}`.")
        hit = ws.objects.get((version, kind, oid))
        if hit:
            return Answer(200, hit[0], hit[1])
        if ws.known_elsewhere(version, kind, oid):
            raise no_recording(f"{noun} {oid} was recorded only under another Notion-Version")
        raise not_found(ws, noun, oid)

    if len(parts) == 3 and parts[1] == "databases" and method == "GET":
        return obj("databases", "database", parts[2])
    if len(parts) == 3 and parts[1] == "data_sources" and method == "GET":
        if version < "2025-09-03":
            raise no_recording("data sources do not exist before 2025-09-03")
        return obj("data_sources", "data source", parts[2])
    if len(parts) == 3 and parts[1] == "pages" and method == "GET":
        return obj("pages", "page", parts[2])
    if len(parts) == 4 and parts[3] == "query" and method == "POST" and \
            parts[1] in ("databases", "data_sources"):
        legacy = parts[1] == "databases"
        if legacy != (version < "2025-09-03"):
            # 2025+ queries data sources, 2022-06-28 databases; nothing recorded across.
            raise no_recording(f"POST /v1/{parts[1]}/{{id}}/query under {version}")
        noun = "database" if legacy else "data source"
        oid = norm_id(parts[2])
        if oid is None:
            raise validation_error(f"path failed validation: path.{noun.replace(' ', '_')}_id should "
                                   f"be a valid uuid, instead was `{shown(parts[2])}`.")
        b = json_body()
        size = check_query_body(b, version)
        chain = ws.queries.get((version, oid))
        if chain is None:
            if ws.known_elsewhere(version, "databases" if legacy else "data_sources", oid) or \
                    (version, "databases" if legacy else "data_sources", oid) in ws.objects:
                raise no_recording(f"no query of {noun} {oid} was recorded under {version}")
            raise not_found(ws, noun, oid)
        return serve_chain(chain, b.get("start_cursor"), size, f"query {oid}")
    if len(parts) == 5 and parts[1] == "pages" and parts[3] == "properties" and method == "GET":
        pid = norm_id(parts[2])
        if pid is None:
            raise validation_error(f"path failed validation: path.page_id should be a valid uuid, "
                                   f"instead was `{shown(parts[2])}`.")
        check_keys(params, ["page_size", "start_cursor"], "query")
        if "page_size" in params:
            try:
                n = int(params["page_size"])
            except ValueError:
                n = params["page_size"]
            check_page_size(n, "query")
        hit = ws.props.get((version, pid, parts[4]))
        if hit:
            if params.get("start_cursor"):
                raise no_recording("property items: start_cursor was never returned by the recordings")
            return Answer(200, hit[0], hit[1])
        if (version, "pages", pid) in ws.objects or (version, pid) in ws.known_pages:
            raise no_recording(f"no property item of page {pid} was recorded")
        raise not_found(ws, "page", pid)
    if parts[1:] == ["search"] and method == "POST":
        b = json_body()
        check_keys(b, ["query", "filter", "sort", "start_cursor", "page_size"])
        check_type(b, "query", str, "a string")
        check_type(b, "start_cursor", str, "a string")
        size = check_page_size(b.get("page_size"))
        values = ("page", "data_source") if version >= "2025-09-03" else ("page", "database")
        f = b.get("filter")
        if f is not None and (not isinstance(f, dict) or f.get("property") != "object" or
                              f.get("value") not in values or set(f) - {"property", "value"}):
            raise validation_error(f"body failed validation: body.filter.value should be "
                                   f"`\"{values[0]}\"` or `\"{values[1]}\"`, instead was "
                                   f"`{shown((f or {}).get('value') if isinstance(f, dict) else f)}`.")
        s = b.get("sort")
        if s is not None and (not isinstance(s, dict) or s.get("timestamp") != "last_edited_time" or
                              s.get("direction") not in ("ascending", "descending")):
            raise validation_error(f"body failed validation: body.sort should be a last_edited_time "
                                   f"sort, instead was `{shown(s)}`.")
        if version != "2025-09-03":
            raise no_recording(f"no search was recorded under {version}")
        if b.get("start_cursor"):
            raise no_recording("search: start_cursor was never returned by the recordings")
        q = (b.get("query") or "").strip().lower()
        if not q and f is None:
            answer = ws.search_all
        elif q and not any(q in t.lower() for t in ws.titles):
            answer = ws.search_none     # nothing served matches: the recorded empty answer
        else:
            raise no_recording("search: the answer would differ from both recorded searches")
        if len(json.loads(answer[0])["results"]) > size:
            raise no_recording("search: page_size smaller than the recorded page")
        return Answer(200, answer[0], answer[1])
    if parts[1:] == ["users", "me"] and method == "GET":
        if version != "2025-09-03":
            raise no_recording(f"users/me was not recorded under {version}")
        return Answer(200, ws.users_me[0], ws.users_me[1])
    raise recorded(ws, "invalid_request_url")


def recorded(ws, key):
    return ApiError(recorded_error(ws, key))


# --- HTTP ---------------------------------------------------------------------------

class Handler(serving.Handler):
    server_version = "notion-replay"
    timeout = 60

    def respond(self, path, query, body):
        srv = self.server
        if path == "/_replay" or path.startswith("/_replay/"):
            status, out = self._control(path, body)
            return self.send_json(status, compact(out).encode())
        version = self.headers.get("Notion-Version")
        auth = self.headers.get("Authorization")
        if auth is None:
            auth_state = "missing"
        elif not auth.startswith("Bearer ") or not auth[7:].strip():
            auth_state = "not_bearer"
        elif auth[7:].strip() in srv.tokens:
            auth_state = "ok"
        else:
            auth_state = "wrong_token"
        try:
            if not path.startswith("/v1/"):
                raise recorded(srv.ws, "invalid_request_url")
            if auth_state != "ok":
                raise recorded(srv.ws, "unauthorized")
            if not version:
                raise ApiError(Answer(400, compact({
                    "object": "error", "status": 400, "code": "missing_version",
                    "message": MSG_MISSING_VERSION, "request_id": str(uuid.uuid4())}),
                    "constructed:missing_version"))
            if version not in VERSIONS:
                raise no_recording(f"Notion-Version {version}")
            answer = api(srv.ws, self.command, path, query, version, body)
        except ApiError as e:
            answer = e.answer
        except Exception as e:  # a bug here: say so, keep serving
            answer = Answer(500, compact({"object": "error", "status": 500,
                                          "code": "replay_server_bug", "message": repr(e)}),
                            "bug")
        try:
            logged_body = json.loads(body) if body.strip() else None
        except ValueError:
            logged_body = body[:200].decode("utf-8", "replace")
        srv.log(dict(method=self.command, path=path, query=query, notion_version=version,
                     auth=auth_state, body=logged_body, status=answer.status,
                     served=answer.served))
        hdrs = []
        try:
            rid = json.loads(answer.body).get("request_id")
            if rid:
                hdrs.append(("x-notion-request-id", rid))
        except ValueError:
            pass
        self.send_json(answer.status, answer.body, hdrs)
        if not srv.quiet:
            sys.stderr.write(f"{self.command} {path} -> {answer.status} ({answer.served})\n")

    def _control(self, path, body):
        srv = self.server
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"error": "invalid JSON"}
        if path == "/_replay/health" and self.command == "GET":
            return 200, {"status": "ok"}
        if path == "/_replay/tokens" and self.command == "POST":
            toks = data.get("tokens")
            if not isinstance(toks, list) or not all(isinstance(t, str) and t for t in toks):
                return 400, {"error": "tokens must be a list of non-empty strings"}
            srv.tokens = set(toks)
            return 200, {"tokens": len(toks)}
        if path == "/_replay/requests" and self.command == "GET":
            with srv.lock:
                return 200, {"requests": list(srv.requests)}
        if path == "/_replay/requests" and self.command == "DELETE":
            with srv.lock:
                srv.requests.clear()
            return 200, {"cleared": True}
        if path == "/_replay/catalog" and self.command == "GET":
            return 200, srv.ws.catalog()
        return 404, {"error": f"no control endpoint {self.command} {path}"}


class Server(serving.Server):
    def __init__(self, addr, ws, tokens, quiet):
        self.ws = ws
        self.tokens = set(tokens)
        self.quiet = quiet
        self.lock = threading.Lock()
        self.requests = []
        self.seq = 0
        super().__init__(addr, Handler)

    def log(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.requests.append(entry)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Replay recorded Notion API answers (loopback only).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", action="append", default=[])
    ap.add_argument("--fixtures", action="append", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        ap.error(f"refusing to listen on {args.host!r}: 127.0.0.1 only")
    ws = Workspace(args.fixtures or DEFAULT_FIXTURES)
    server = Server(("127.0.0.1", args.port), ws, args.token, args.quiet)

    return serving.serve([server], args.port_file, poll_interval=0.2)


if __name__ == "__main__":
    sys.exit(main())
