"""Rendering of Notion objects for a given API version key ("2022", "2025", "2026").

Objects are rendered to *parts*: a list of UTF-8 JSON pieces (bytes) and common.FileRef
objects. A FileRef stands for a whole Notion-hosted file object and is replaced by a
freshly signed one when the response is sent (common.Signer.join). Page parts are
cached per page (invalidated on edit or schema change), so the hot path of a query
is a join of cached strings plus one signature per hosted file.
"""

import os
import re

from common import FileRef, dashed, dumps, iso_db, iso_minute
from workspace import text_item

REFERENCE_LIMIT = 25  # page objects carry at most 25 references per property

_TOKEN = os.urandom(6).hex()
_SPLIT = re.compile(r'"\\u0000' + _TOKEN + r'(\d+)\\u0000"')


def to_parts(obj):
    """Serialize obj (which may contain FileRefs) to parts."""
    refs = []

    def default(o):
        if isinstance(o, FileRef):
            refs.append(o)
            return "\x00%s%d\x00" % (_TOKEN, len(refs) - 1)
        raise TypeError("cannot serialize %r" % type(o))

    s = dumps(obj, default)
    # A lone UTF-16 surrogate cannot be UTF-8; like JavaScript's JSON.stringify
    # (and so Notion), send it as a \udXXX escape inside the JSON string.
    if not refs:
        return [s.encode("utf-8", "backslashreplace")]
    pieces = _SPLIT.split(s)
    return [refs[int(p)] if i % 2 else p.encode("utf-8", "backslashreplace")
            for i, p in enumerate(pieces)]


def open_object(parts):
    """Drop the closing brace of a rendered object so more members (request_id) can follow."""
    last = parts[-1]
    assert last.__class__ is bytes and last.endswith(b"}")
    return parts[:-1] + [last[:-1]]


# ---------------------------------------------------------------- property values

def empty_value(prop, page):
    t = prop.type
    if t in ("title", "rich_text", "multi_select", "people", "files", "relation"):
        return []
    if t == "checkbox":
        return False
    if t == "formula":
        return {"type": "string", "string": None}
    if t == "rollup":
        return {"type": "number", "number": None, "function": prop.config.get("function", "count")}
    if t == "unique_id":
        return {"prefix": prop.config.get("prefix"), "number": None}
    if t == "verification":
        return {"state": "unverified", "verified_by": None, "date": None}
    if t == "button":
        return {}
    return None


def _truncate_mentions(items):
    """Keep at most 25 page/person/database mention items; text and other items stay."""
    refs = 0
    for it in items:
        if it["type"] == "mention" and it["mention"]["type"] in ("user", "page", "database"):
            refs += 1
    if refs <= REFERENCE_LIMIT:
        return items
    out, refs = [], 0
    for it in items:
        if it["type"] == "mention" and it["mention"]["type"] in ("user", "page", "database"):
            refs += 1
            if refs > REFERENCE_LIMIT:
                continue
        out.append(it)
    return out


def raw_value(prop, page):
    """Full (untruncated) value of a property of a page, computed types included."""
    t = prop.type
    if t == "created_time":
        return iso_minute(page.created)
    if t == "last_edited_time":
        return iso_minute(page.edited)
    if t == "created_by":
        return {"object": "user", "id": page.created_by}
    if t == "last_edited_by":
        return {"object": "user", "id": page.edited_by}
    v = page.values.get(prop.name)
    return empty_value(prop, page) if v is None and prop.name not in page.values else v


def prop_value(prop, page, truncated):
    """{"id","type",<type>: value} (+ relation has_more) as in a page object."""
    t = prop.type
    v = raw_value(prop, page)
    if t == "relation":
        more = truncated and len(v) > REFERENCE_LIMIT
        return {"id": prop.id, "type": t, t: v[:REFERENCE_LIMIT] if more else v, "has_more": more}
    if truncated:
        if t == "people" and len(v) > REFERENCE_LIMIT:
            v = v[:REFERENCE_LIMIT]
        elif t in ("title", "rich_text"):
            v = _truncate_mentions(v)
    return {"id": prop.id, "type": t, t: v}


# ---------------------------------------------------------------- pages

_SLUG = re.compile(r"[^0-9A-Za-z]+")


def page_url(page):
    slug = _SLUG.sub("-", page.title()).strip("-")[:60].strip("-")
    return "https://app.notion.com/p/%s%s" % (slug + "-" if slug else "", page.id)


def page_parent(page, vkey):
    if vkey == "2022":
        return {"type": "database_id", "database_id": dashed(page.ds.db_id)}
    return {"type": "data_source_id", "data_source_id": dashed(page.ds.id),
            "database_id": dashed(page.ds.db_id)}


def page_dict(page, vkey, truncated=True, only=None):
    props = {}
    for name, prop in page.ds.props.items():
        if only is None or name in only:
            props[name] = prop_value(prop, page, truncated)
    d = {"object": "page", "id": dashed(page.id),
         "created_time": iso_minute(page.created), "last_edited_time": iso_minute(page.edited),
         "created_by": {"object": "user", "id": page.created_by},
         "last_edited_by": {"object": "user", "id": page.edited_by},
         "cover": page.cover, "icon": page.icon, "parent": page_parent(page, vkey),
         "in_trash": page.in_trash, "is_archived": page.is_archived, "is_locked": page.is_locked,
         "properties": props, "url": page_url(page), "public_url": None}
    if vkey != "2026":
        d["archived"] = page.in_trash
    return d


def page_parts(page, vkey, truncated=True, only=None):
    """Cached parts of a page object (without request_id)."""
    if only is not None:
        return to_parts(page_dict(page, vkey, truncated, only))
    key = (vkey, truncated, page.ds.schema_version)
    parts = page.cache.get(key)
    if parts is None:
        parts = page.cache[key] = to_parts(page_dict(page, vkey, truncated))
    return parts


def restrict(ds, names_or_ids):
    """Set of property names selected by filter_properties (ids or names); unknown ones ignored."""
    out = set()
    for key in names_or_ids:
        prop = ds.find_prop(key)
        if prop is not None:
            out.add(prop.name)
    return out


# ---------------------------------------------------------------- databases, data sources, users

def rich_title(text):
    return [text_item(text)] if text else []


def schema(ds, vkey):
    out = {}
    for name, p in ds.props.items():
        d = {"id": p.id, "name": name}
        if vkey != "2022":
            d["description"] = None
        d["type"] = p.type
        d[p.type] = p.config
        out[name] = d
    return out


def database_obj(ws, db, vkey, ds=None):
    """GET /v1/databases/{id}: the 2025-09-03 container (data_sources: the accessible
    ones), or the pre-2025 database object with the schema of its one data source ds."""
    user = {"object": "user", "id": dashed(ws.default_user)}
    url = "https://app.notion.com/p/" + db.id
    if vkey == "2022":
        return {"object": "database", "id": dashed(db.id), "cover": None, "icon": None,
                "created_time": iso_minute(db.created), "created_by": user,
                "last_edited_by": user, "last_edited_time": iso_minute(db.edited),
                "title": rich_title(db.title), "description": [], "is_inline": False,
                "properties": schema(ds, vkey),
                "parent": {"type": "page_id", "page_id": dashed(db.parent_page_id)},
                "url": url, "public_url": None, "archived": db.in_trash, "in_trash": db.in_trash}
    d = {"object": "database", "id": dashed(db.id), "title": rich_title(db.title), "description": [],
         "parent": {"type": "page_id", "page_id": dashed(db.parent_page_id)},
         "is_inline": False, "in_trash": db.in_trash, "is_locked": False,
         "created_time": iso_db(db.created), "last_edited_time": iso_db(db.edited),
         "data_sources": [{"id": dashed(i), "name": ws.data_sources[i].name}
                          for i in db.accessible_ids(ws)],
         "icon": None, "cover": None, "url": url, "public_url": None}
    if vkey != "2026":
        d["archived"] = db.in_trash
    return d


def data_source_obj(ws, ds, vkey):
    db = ws.databases[ds.db_id]
    user = {"object": "user", "id": dashed(ws.default_user)}
    d = {"object": "data_source", "id": dashed(ds.id), "cover": None, "icon": None,
         "created_time": iso_db(ds.created), "created_by": user, "last_edited_by": user,
         "last_edited_time": iso_db(ds.created), "title": rich_title(ds.name), "description": [],
         "is_inline": False, "properties": schema(ds, vkey),
         "parent": {"type": "database_id", "database_id": dashed(db.id)},
         "database_parent": {"type": "page_id", "page_id": dashed(db.parent_page_id)},
         "url": "https://app.notion.com/p/" + db.id, "public_url": None, "in_trash": db.in_trash}
    if vkey != "2026":
        d["archived"] = db.in_trash
    return d


def bot_user(ws, tok):
    workspace_id, workspace_name = tok.workspace(ws)
    return {"object": "user", "id": dashed(tok.bot_id), "name": tok.name, "avatar_url": None,
            "type": "bot",
            "bot": {"owner": {"type": "workspace", "workspace": True},
                    "workspace_name": workspace_name, "workspace_id": workspace_id,
                    "workspace_limits": {"max_file_upload_size_in_bytes": 5242880}}}

