"""truth.py - the Notion truth oracle: what the sync must have stored,
computed from what Notion (the emulator) says, independently of the C code.

  * the mapping of the design guide: KINDS (and OTHER, the generic table),
    expected_columns(), plain_text(), text_value(), clean_text(),
    cap_title();
  * Notion's side: notion_query_all() (the query endpoint, as the sync sees
    it), ground_truth() (the emulator's untruncated pages), may_be_truncated()
    and completed_properties() (values cut at 25 references), and
    normalize_files() / same_properties() (what Notion re-signs on every
    request);
  * PostgreSQL's side: table_rows() (one user's rows of a sync table) and
    write_counters() (rows written since the cluster started);
  * the two compared: compare_rows() (rows against the ground truth).

Standard library only.
"""

import json

import client

# --- Notion ground truth, as the sync sees it ------------------------------

KINDS = {
    # kind: (table, title column, title property, text column, text properties)
    "Characters": ("notion_characters_sync", "name", "Name", "description",
                   ["Description", "Bio", "Backstory"]),
    "Worlds": ("notion_worlds_sync", "name", "World Name", "description", ["Concept/Premise"]),
    "Stories": ("notion_stories_sync", "title", "Story Title", "description", ["Premise"]),
    "Chat Sessions": ("notion_chat_sessions_sync", "title", "Session Title", "transcript",
                      ["Raw Transcript"]),
}
TITLE_MAX_CHARS = 1000
TITLE_MAX_BYTES = 2048
# Databases whose title is none of the four kinds (or registered as "Other").
OTHER = ("notion_other_sync", "title", None, "description", ["Description"])


def cap_title(s):
    """The indexed title column keeps <= 1000 characters and <= 2048 bytes."""
    s = s[:TITLE_MAX_CHARS]
    while len(s.encode("utf-8", "surrogatepass")) > TITLE_MAX_BYTES:
        s = s[:-1]
    return s


def notion_query_all(emu, token, source_id, version="2025-09-03"):
    """Every page of a data source (a database under 2022-06-28), exactly as
    the query endpoint returns them, following cursors."""
    pages, cursor = [], None
    path = (f"/v1/databases/{source_id}/query" if version < "2025-09-03"
            else f"/v1/data_sources/{source_id}/query")
    while True:
        body = {"page_size": 100}
        if cursor:
            body["start_cursor"] = cursor
        status, _, answer = client.request("POST", emu.url + path, json.dumps(body), {
            "Authorization": f"Bearer {token}", "Notion-Version": version,
            "Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"query {source_id}: {status} {answer}")
        pages += answer["results"]
        if not answer["has_more"]:
            return pages
        cursor = answer["next_cursor"]


def plain_text(value):
    """Plain text of a title/rich_text property value (pieces joined)."""
    if not value:
        return None
    items = value.get(value.get("type"), [])
    if not isinstance(items, list):
        return None
    return "".join(i.get("plain_text", i.get("text", {}).get("content", "")) for i in items)


TEXT_TYPES = ("rich_text", "title", "url", "email", "phone_number")


def text_value(value):
    """What a text column takes from a property: the text of a text-typed
    value (rich text joined, or the string), None for other types."""
    if not value or value.get("type") not in TEXT_TYPES:
        return None
    inner = value.get(value["type"])
    if isinstance(inner, str):
        return inner
    return plain_text(value)


def clean_text(s):
    """What the sync stores for text: NUL removed; a lone UTF-16 surrogate
    (json-c already decodes it as U+FFFD) becomes U+FFFD."""
    if s is None:
        return None
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s.replace("\x00", ""))


def kind_spec(kind):
    """(table, title column, title property, text column, text properties) of
    a kind, "Other" included (its title property is whichever has type title)."""
    return OTHER if kind == "Other" else KINDS[kind]


def table_of(kind):
    return kind_spec(kind)[0]


def expected_columns(kind, props):
    """The mapped columns of the design guide, computed independently of the C code."""
    table, title_col, _title_prop, text_col, text_props = kind_spec(kind)
    # The title column is the property of type title, whatever its name.
    title_value = next((v for v in props.values() if v.get("type") == "title"), None)
    title = cap_title(clean_text(plain_text(title_value) or ""))
    text = None
    present = [p for p in text_props if p in props]
    for p in text_props:
        t = text_value(props.get(p))
        if t:
            text = clean_text(t)
            break
    if text is None and present:
        text = ""
    cols = {title_col: title, text_col: text}
    if kind == "Chat Sessions":
        n = (props.get("Message Count") or {}).get("number")
        cols["message_count"] = int(n) if isinstance(n, (int, float)) and abs(n) < 2**31 else None
    return cols


def normalize_files(value):
    """Drop what Notion re-signs on every request (file URL query, expiry)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "file" and isinstance(v, dict):
                v = {fk: (fv.split("?")[0] if fk == "url" and isinstance(fv, str) else fv)
                     for fk, fv in v.items() if fk != "expiry_time"}
            out[k] = normalize_files(v) if isinstance(v, (dict, list)) else v
        return out
    if isinstance(value, list):
        return [normalize_files(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def same_properties(stored, notion):
    """stored == notion once what Notion re-signs is dropped (normalize_files)."""
    return stored == notion or normalize_files(stored) == normalize_files(notion)


def table_rows(pg, table, user_id, extra_cols=()):
    """{page_id: row dict} of one user's rows in a sync table."""
    title_col = "name" if table in ("notion_characters_sync", "notion_worlds_sync") else "title"
    text_col = "transcript" if table == "notion_chat_sessions_sync" else "description"
    cols = ["notion_page_id", "notion_database_id", "coalesce(notion_data_source_id::text,'')",
            title_col, f"{text_col} is null", f"coalesce({text_col}, '')",
            "properties::text", "content_hash", "updated_at::text", "xmin::text",
            "to_char(notion_created_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')",
            "to_char(notion_last_edited_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"]
    cols += list(extra_cols)
    sql = (f"select json_agg(json_build_array({', '.join(cols)})) from {table} "
           f"where user_id = '{user_id}'")
    raw = pg.psql(sql, out="text")
    rows = {}
    for r in json.loads(raw) if raw else []:
        rows[r[0]] = {
            "database_id": r[1], "data_source_id": r[2] or None, title_col: r[3],
            text_col: None if r[4] else r[5], "properties": json.loads(r[6]),
            "content_hash": r[7], "updated_at": r[8], "xmin": r[9],
            "created_time": r[10], "last_edited_time": r[11], "extra": r[12:],
        }
    return rows


def compare_rows(kind, rows, want, version="2025-09-03", times=False):
    """How one database's rows (table_rows(); for Chat Sessions with
    message_count as the extra column) differ from its ground truth want
    (ground_truth()): (missing page ids, extra page ids, mismatches). A
    mismatch is (page id, what, details...): the mapped columns, the
    properties (the names that differ), the data source (none before
    2025-09-03: version is the NOTION_VERSION synced with) and, with times,
    the created and last edited times."""
    missing = sorted(set(want) - set(rows))
    extra = sorted(set(rows) - set(want))
    bad = []
    for pid, (ds, page) in want.items():
        row = rows.get(pid)
        if row is None:
            continue
        cols = expected_columns(kind, page["properties"])
        got = {c: row[c] for c in cols if c in row}
        if kind == "Chat Sessions":
            got["message_count"] = int(row["extra"][0]) if row["extra"][0] is not None else None
        if got != cols:
            bad.append((pid, "columns", {k: str(v)[:80] for k, v in got.items()},
                        {k: str(v)[:80] for k, v in cols.items()}))
        if not same_properties(row["properties"], page["properties"]):
            diff = sorted(k for k in set(row["properties"]) | set(page["properties"])
                          if normalize_files(row["properties"].get(k)) !=
                          normalize_files(page["properties"].get(k)))
            bad.append((pid, "properties differ", diff))
        want_ds = ds if version >= "2025-09-03" else None
        if row["data_source_id"] != want_ds:
            bad.append((pid, "data source", row["data_source_id"], want_ds))
        if times and (row["created_time"], row["last_edited_time"]) != (
                page["created_time"][:19], page["last_edited_time"][:19]):
            bad.append((pid, "timestamps", row["created_time"], row["last_edited_time"]))
    return missing, extra, bad


def write_counters(pg, tables):
    """Rows inserted, updated and deleted in tables since the cluster started."""
    names = ", ".join(f"'{t}'" for t in tables)
    row = pg.psql(f"select coalesce(sum(n_tup_ins),0), coalesce(sum(n_tup_upd),0), "
                  f"coalesce(sum(n_tup_del),0) from pg_stat_user_tables where relname in ({names})")
    return tuple(int(x) for x in row[0])


REFERENCE_LIMIT = 25


def may_be_truncated(value):
    """True when Notion may have cut this property value at 25 references
    (the sync then fetches the complete value): a relation with has_more,
    people with >= 25 users, title/rich_text with >= 25 mentions."""
    t = value.get("type")
    inner = value.get(t)
    if not isinstance(inner, list):
        return False
    if t == "relation":
        return bool(value.get("has_more"))
    if t == "people":
        return len(inner) >= REFERENCE_LIMIT
    if t in ("title", "rich_text"):
        refs = sum(1 for i in inner if i.get("type") == "mention" and
                   (i.get("mention") or {}).get("type") in ("page", "user", "database", "data_source"))
        return refs >= REFERENCE_LIMIT
    return False


def completed_properties(emu, page):
    """The properties the sync stores for a page from a query answer: values
    that may be truncated are replaced by the emulator's complete ground
    truth (relations then say has_more: false)."""
    props = dict(page["properties"])
    cut = [name for name, v in props.items() if may_be_truncated(v)]
    if not cut:
        return props
    truth = emu.control("GET", f"/pages/{page['id']}")["properties"]
    for name in cut:
        value = dict(props[name])
        value[value["type"]] = truth[name][truth[name]["type"]]
        if value["type"] == "relation":
            value["has_more"] = False
        props[name] = value
    return props


# --- helpers for the asynchronous and scheduling tests ----------------------


def ground_truth(emu, db, sources=None):
    """{page_id: (data_source_id, page)} of an emulator database (as its
    POST /_emulator/databases answer) or of the given data sources of it:
    the untrashed pages with complete (untruncated) values."""
    out = {}
    for ds in sources or db["data_source_ids"]:
        for page in emu.control("GET", f"/pages?data_source_id={ds}")["results"]:
            out[page["id"]] = (ds, page)
    return out
