"""In-memory workspace of the Notion emulator: tokens, databases, data sources, pages.

Page property values are stored *untruncated* in the shape Notion returns under the
property's type key (e.g. the list of rich text items of a title). Notion-hosted
files are stored as common.FileRef and signed afresh at render time.
All mutation goes through Workspace methods; callers hold the server lock.
"""

import collections
import urllib.parse

from common import (ControlError, FileRef, dashed, floor_minute, norm_id, parse_iso,
                    random_id, short_prop_id, stable_id, tie_hash)

TEXT_LIMIT = 2000  # Notion splits rich text into items of at most 2000 characters

ANNOTATIONS = {"bold": False, "italic": False, "strikethrough": False, "underline": False,
               "code": False, "color": "default"}

COMPUTED = ("created_time", "last_edited_time", "created_by", "last_edited_by")

PROPERTY_TYPES = (
    "title", "rich_text", "number", "select", "multi_select", "status", "date", "people",
    "files", "checkbox", "url", "email", "phone_number", "formula", "relation", "rollup",
    "created_time", "created_by", "last_edited_time", "last_edited_by", "unique_id",
    "verification", "button", "place")

COLORS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")


# ---------------------------------------------------------------- rich text

def text_item(content, link=None, annotations=None):
    """One rich text item of type text (content must be <= 2000 chars)."""
    return {"type": "text", "text": {"content": content, "link": {"url": link} if link else None},
            "annotations": annotations or ANNOTATIONS, "plain_text": content, "href": link}


def text_items(content, link=None, annotations=None):
    """Rich text items for a string, split into pieces of at most 2000 characters."""
    if content == "":
        return []
    return [text_item(content[i:i + TEXT_LIMIT], link, annotations)
            for i in range(0, len(content), TEXT_LIMIT)]


def _annotations(raw):
    if not raw:
        return ANNOTATIONS
    if not isinstance(raw, dict):
        raise ControlError("annotations must be an object")
    ann = dict(ANNOTATIONS)
    for k in ann:
        if k in raw:
            ann[k] = raw[k]
    return ann


def _mention(m):
    if not isinstance(m, dict):
        raise ControlError("mention must be an object")
    mtype = m.get("type") or next(iter(m), None)
    body = m.get(mtype)
    if mtype in ("user", "page", "database"):
        mid = norm_id(body.get("id") if isinstance(body, dict) else body)
        if not mid:
            raise ControlError("mention.%s needs a valid id" % mtype)
        inner = {"object": "user", "id": dashed(mid)} if mtype == "user" else {"id": dashed(mid)}
        if mtype == "user" and isinstance(body, dict):
            inner.update({k: v for k, v in body.items() if k not in ("object", "id")})
        return {"type": mtype, mtype: inner}
    if mtype == "date":
        return {"type": "date", "date": norm_date(body)}
    if mtype is None or not isinstance(body, (dict, str)):
        raise ControlError("unsupported mention %r" % (mtype,))
    return {"type": mtype, mtype: body}


def _rich_item(item):
    """Normalize one rich text item to the full response shape; returns a list (text may split)."""
    if isinstance(item, str):
        return text_items(item)
    if not isinstance(item, dict):
        raise ControlError("rich text items must be objects or strings")
    typ = item.get("type") or next((k for k in ("text", "mention", "equation") if k in item), None)
    ann = _annotations(item.get("annotations"))
    if typ == "text":
        t = item.get("text") or {}
        content = t.get("content", "")
        if not isinstance(content, str):
            raise ControlError("text.content must be a string")
        link = t.get("link")
        url = link.get("url") if isinstance(link, dict) else link
        return text_items(content, url, ann)
    if typ == "mention":
        m = _mention(item.get("mention"))
        mt = m["type"]
        if mt == "user":
            default_plain, default_href = "@" + m["user"].get("name", "Anonymous"), None
        elif mt in ("page", "database"):
            hexid = m[mt]["id"].replace("-", "")
            default_plain, default_href = "Untitled", "https://www.notion.so/" + hexid
        elif mt == "date":
            default_plain, default_href = m["date"]["start"], None
        else:
            default_plain, default_href = "", None
        return [{"type": "mention", "mention": m, "annotations": ann,
                 "plain_text": item.get("plain_text", default_plain),
                 "href": item.get("href", default_href)}]
    if typ == "equation":
        eq = item.get("equation") or {}
        expr = eq.get("expression", "") if isinstance(eq, dict) else str(eq)
        return [{"type": "equation", "equation": {"expression": expr}, "annotations": ann,
                 "plain_text": item.get("plain_text", expr), "href": item.get("href")}]
    raise ControlError("unsupported rich text item type %r" % (typ,))


def norm_rich_text(value):
    if value is None:
        return []
    if isinstance(value, str):
        return text_items(value)
    if not isinstance(value, list):
        raise ControlError("rich text must be a list of items or a string")
    out = []
    for item in value:
        out.extend(_rich_item(item))
    return out


def plain_text(items):
    return "".join(i["plain_text"] for i in items)


# ---------------------------------------------------------------- other value types

def norm_date(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = {"start": value}
    if not isinstance(value, dict) or not isinstance(value.get("start"), str):
        raise ControlError("date needs a start string")
    try:
        parse_iso(value["start"])
    except ValueError:
        raise ControlError("date.start is not ISO 8601: %r" % value["start"])
    return {"start": value["start"], "end": value.get("end"), "time_zone": value.get("time_zone")}


def _user(value):
    if isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict) or not norm_id(value.get("id")):
        raise ControlError("users need a valid id")
    out = {"object": value.get("object", "user"), "id": dashed(norm_id(value["id"]))}
    out.update({k: v for k, v in value.items() if k not in ("object", "id")})
    return out


def _number(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ControlError("number must be a number or null")
    return value


def _string(value):
    if value is not None and not isinstance(value, str):
        raise ControlError("value must be a string or null")
    return value


def _id_of(value, what, optional=False):
    """32-hex form of a Notion id given in a control request (None stays None if optional)."""
    if value is None and optional:
        return None
    h = norm_id(value)
    if not h:
        raise ControlError("invalid %s %r" % (what, value))
    return h


def _text(value, what):
    if not isinstance(value, str) or not value:
        raise ControlError("%s must be a non-empty string" % what)
    return value


def _list(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ControlError("value must be a list")
    return value


# ---------------------------------------------------------------- models

class PropSchema:
    """One property of a data source schema."""

    def __init__(self, pid, name, ptype, config):
        self.id = pid
        self.name = name
        self.type = ptype
        self.config = config
        self._chosen = {}   # name -> value dict returned for pages (shared, never mutated)

    def option(self, value):
        """Select/multi_select/status option {id,name,color} for a name or option object; adds new ones."""
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ControlError("%s option needs a name" % self.type)
        hit = self._chosen.get(value["name"])
        if hit is not None:
            return hit
        n = len(self.config["options"])
        if self.type == "status":
            oid = dashed(norm_id(value.get("id") or "") or stable_id(self.id, value["name"]))
        else:
            oid = value.get("id") or urllib.parse.unquote(short_prop_id(value["name"], n))
        opt = {"id": oid, "name": value["name"], "color": value.get("color") or COLORS[1 + n % 9],
               "description": None}
        self.config["options"].append(opt)
        if self.type == "status":
            self.config["groups"][0]["option_ids"].append(opt["id"])
        hit = self._chosen[opt["name"]] = {"id": opt["id"], "name": opt["name"], "color": opt["color"]}
        return hit


def default_config(ptype, name, ds):
    if ptype == "number":
        return {"format": "number"}
    if ptype in ("select", "multi_select"):
        return {"options": []}
    if ptype == "status":
        return {"options": [], "groups": [
            {"id": stable_id(ds.id, name, g), "name": g, "color": c, "option_ids": []}
            for g, c in (("To-do", "gray"), ("In progress", "blue"), ("Complete", "green"))]}
    if ptype == "formula":
        return {"expression": ""}
    if ptype == "relation":
        return {"database_id": dashed(ds.db_id), "data_source_id": dashed(ds.id),
                "type": "single_property", "single_property": {}}
    if ptype == "rollup":
        return {"function": "count", "rollup_property_name": "", "relation_property_name": "",
                "rollup_property_id": "", "relation_property_id": ""}
    if ptype == "unique_id":
        return {"prefix": None}
    return {}


class Token:
    """An integration's token. workspace_id/workspace_name None: the workspace's own (an
    OAuth token of a public integration names the workspace that installed it)."""

    def __init__(self, token, integration_name, databases, workspace_id=None,
                 workspace_name=None, bot_id=None):
        self.token = token
        self.name = integration_name
        self.integration_id = stable_id("integration", integration_name)
        self.bot_id = bot_id or stable_id("bot", integration_name, token)
        self.databases = set(databases)
        self.workspace_id = workspace_id
        self.workspace_name = workspace_name

    def workspace(self, ws):
        """(dashed id, name) of the workspace this token belongs to."""
        return dashed(self.workspace_id or ws.id), self.workspace_name or ws.name

    def can_read(self, db_id, ds=None):
        """Whether the token reaches database db_id (and data source ds of it, if given)."""
        return db_id in self.databases and (ds is None or ds.accessible)


class Database:
    def __init__(self, did, title, created, parent_page_id):
        self.id = did
        self.title = title
        self.created = created
        self.edited = created
        self.parent_page_id = parent_page_id
        self.ds_ids = []
        self.in_trash = False

    def accessible_ids(self, ws):
        """Ids of the data sources the API can reach (what GET lists as data_sources)."""
        return [i for i in self.ds_ids if ws.data_sources[i].accessible]

    def searchable_ids(self, ws):
        """Ids of the data sources search returns: the accessible ones, and those whose
        access was revoked while the search index still lists them (in_search)."""
        return [i for i in self.ds_ids
                if ws.data_sources[i].accessible or ws.data_sources[i].in_search]


class DataSource:
    def __init__(self, dsid, db_id, name, created):
        self.id = dsid
        self.db_id = db_id
        self.name = name
        self.created = created
        self.props = collections.OrderedDict()   # name -> PropSchema
        self.pages = {}                          # id -> Page (insertion order)
        self.generation = 0                      # bumped on every page change
        self.schema_version = 0                  # bumped on every schema change
        self.unique_counter = 0
        self.query_cache = collections.OrderedDict()
        self.prerender = None
        self.accessible = True      # False: the integration lost access (not listed, 404)
        self.in_search = False      # while not accessible: search still returns it (stale index)

    def title_prop(self):
        for p in self.props.values():
            if p.type == "title":
                return p
        return None

    def find_prop(self, key):
        """Property by name or id (URL-encoded or decoded)."""
        if not isinstance(key, str):
            return None
        if key in self.props:
            return self.props[key]
        for p in self.props.values():
            if key == p.id or key == urllib.parse.unquote(p.id):
                return p
        return None


class Page:
    __slots__ = ("id", "ds", "created", "edited", "created_by", "edited_by", "cover", "icon",
                 "in_trash", "is_archived", "is_locked", "values", "tie", "cache")

    def __init__(self, pid, ds, created, edited, user):
        self.id = pid
        self.ds = ds
        self.created = created
        self.edited = edited
        self.created_by = user
        self.edited_by = user
        self.cover = None
        self.icon = None
        self.in_trash = False
        self.is_archived = False
        self.is_locked = False
        self.values = {}
        self.tie = tie_hash(pid)
        self.cache = {}

    def title(self):
        tp = self.ds.title_prop()
        return plain_text(self.values.get(tp.name, [])) if tp else ""


# ---------------------------------------------------------------- workspace

class Workspace:
    def __init__(self, workspace_id=None, name="Emulated Workspace"):
        self.id = workspace_id or stable_id("workspace", name)
        self.name = name
        self.tokens = {}
        self.databases = {}
        self.data_sources = {}
        self.pages = {}
        self.default_user = stable_id("user", "owner")

    # -- tokens and sharing
    def set_token(self, token, integration_name, databases=(), workspace_id=None,
                  workspace_name=None, bot_id=None):
        _text(token, "token")
        _text(integration_name, "integration_name")
        if workspace_name is not None:
            _text(workspace_name, "workspace_name")
        ids = [_id_of(d, "database id") for d in databases or ()]
        self.tokens[token] = Token(
            token, integration_name, ids, _id_of(workspace_id, "workspace_id", True),
            workspace_name, _id_of(bot_id, "bot_id", True))
        return self.tokens[token]

    def share(self, token, database_id, shared=True):
        tok = self.tokens.get(token)
        if tok is None:
            raise ControlError("unknown token", 404)
        h = norm_id(database_id)
        if not h:
            raise ControlError("invalid database_id")
        (tok.databases.add if shared else tok.databases.discard)(h)

    def set_access(self, ds, accessible, in_search=False):
        """Grant or revoke the API's access to a data source (for every token). A revoked
        source is not listed by GET database, and it and its pages answer 404; in_search
        keeps it in search results (a search index that has not caught up)."""
        if not isinstance(accessible, bool) or not isinstance(in_search, bool):
            raise ControlError("accessible and in_search must be booleans")
        ds.accessible = accessible
        ds.in_search = in_search and not accessible
        self.touched(ds)

    # -- databases and data sources
    def create_database(self, spec, now):
        title = spec.get("title", "Untitled")
        if not isinstance(title, str):
            raise ControlError("title must be a string")
        did = self._new_id(spec.get("id"), self.databases)
        created = self._time(spec.get("created_time"), now)
        db = Database(did, title, created, stable_id("parent", did))
        self.databases[did] = db
        sources = spec.get("data_sources")
        if sources is None:
            sources = [{}]
        if not isinstance(sources, list):
            raise ControlError("data_sources must be a list")
        for s in sources:
            self.add_data_source(db, s, now)
        tok = spec.get("token")
        if tok is not None:
            self.share(tok, did, True)
        return db

    def add_data_source(self, db, spec, now):
        if not isinstance(spec, dict):
            raise ControlError("data source spec must be an object")
        dsid = self._new_id(spec.get("id"), self.data_sources)
        name = spec.get("name") or db.title
        ds = DataSource(dsid, db.id, name, self._time(spec.get("created_time"), now))
        self.data_sources[dsid] = ds
        db.ds_ids.append(dsid)
        self.set_access(ds, spec.get("accessible", True), spec.get("in_search", False))
        self.set_schema(ds, spec.get("schema") or {})
        if ds.title_prop() is None:     # Notion data sources always have one title property
            self.add_prop(ds, "Name", "title")
            ds.props.move_to_end("Name", last=False)
        return ds

    def set_schema(self, ds, schema):
        if not isinstance(schema, dict):
            raise ControlError("schema must be an object {name: type | {type, ...}}")
        for name, spec in schema.items():
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict):
                raise ControlError("schema entry %r must be a type name or object" % name)
            self.add_prop(ds, name, spec.get("type"), spec.get(spec.get("type")), spec.get("id"))

    def edit_schema(self, ds, add=None, rename=None, remove=None):
        """Remove, then rename, then add properties of a data source; everything is checked
        before anything changes. The title property can be renamed, not removed; new names
        must not be in use. Page values of removed properties vanish. Returns the changes
        as a webhook's updated_properties: [{id, name, action: created|updated|deleted}]."""
        add, rename, remove = add or {}, rename or {}, remove or []
        if not (isinstance(add, dict) and isinstance(rename, dict) and isinstance(remove, list)):
            raise ControlError("add and rename must be objects, remove a list of names")
        names = list(ds.props)
        for name in remove:
            if name not in ds.props:
                raise ControlError("no property %r to remove" % (name,), 404)
            if ds.props[name].type == "title":
                raise ControlError("the title property cannot be removed")
        names = [n for n in names if n not in remove]
        for old, new in rename.items():
            if old not in names:
                raise ControlError("no property %r to rename" % (old,), 404)
            taken = new in names or list(rename.values()).count(new) > 1
            if not isinstance(new, str) or not new or taken:
                raise ControlError("cannot rename %r to %r: give a new, unused name" % (old, new))
        names = [rename.get(n, n) for n in names]
        for name, spec in add.items():
            ptype = spec.get("type") if isinstance(spec, dict) else spec
            if name in names or ptype not in PROPERTY_TYPES or ptype == "title":
                raise ControlError("cannot add %r of type %r: give a new name and a type other "
                                   "than title" % (name, ptype))
        changes = []
        for name in remove:
            prop = ds.props.pop(name)
            for page in ds.pages.values():
                page.values.pop(name, None)
            changes.append({"id": prop.id, "name": name, "action": "deleted"})
        for old, new in rename.items():
            prop = ds.props[old]
            prop.name = new
            for page in ds.pages.values():
                if old in page.values:
                    page.values[new] = page.values.pop(old)
            changes.append({"id": prop.id, "name": new, "action": "updated"})
        ds.props = collections.OrderedDict((p.name, p) for p in ds.props.values())
        self.set_schema(ds, add)
        changes.extend({"id": ds.props[name].id, "name": name, "action": "created"} for name in add)
        ds.schema_version += 1
        for page in ds.pages.values():
            page.cache.clear()
        self.touched(ds)
        return changes

    def add_prop(self, ds, name, ptype, config=None, pid=None):
        if ptype not in PROPERTY_TYPES:
            raise ControlError("unknown property type %r for %r" % (ptype, name))
        if not isinstance(name, str) or not name:
            raise ControlError("property names must be non-empty strings")
        old = ds.props.get(name)
        if old is not None:
            if old.type != ptype:
                raise ControlError("property %r already exists with type %s" % (name, old.type))
            return old
        if ptype == "title":
            if ds.title_prop() is not None:
                raise ControlError("data source already has a title property")
            pid = "title"
        elif pid is None:
            salt = 0
            pid = short_prop_id(name)
            while pid == "title" or ds.find_prop(pid) is not None:
                salt += 1
                pid = short_prop_id(name, salt)
        cfg = default_config(ptype, name, ds)
        if isinstance(config, dict):
            cfg.update(config)
        prop = PropSchema(pid, name, ptype, cfg)
        if ptype in ("select", "multi_select", "status"):
            opts, cfg["options"] = cfg.get("options") or [], []
            for o in opts:
                prop.option(o)
        ds.props[name] = prop
        ds.schema_version += 1
        ds.generation += 1
        return prop

    # -- pages
    def add_page(self, ds, spec, now):
        if not isinstance(spec, dict):
            raise ControlError("page spec must be an object")
        pid = self._new_id(spec.get("id"), self.pages)
        created = self._time(spec.get("created_time"), now)
        edited = self._time(spec.get("last_edited_time"), created)
        page = Page(pid, ds, created, max(edited, created), self._user_id(spec.get("created_by")))
        if spec.get("last_edited_by") is not None:
            page.edited_by = self._user_id(spec["last_edited_by"])
        self._apply_meta(page, spec)
        self.set_values(page, spec.get("properties") or {})
        self._number(page)
        self.pages[pid] = page
        ds.pages[pid] = page
        self.touched(ds)
        return page

    def _number(self, page):
        """Give the page the next number of each unique_id property it has no number for."""
        ds = page.ds
        for p in ds.props.values():
            if p.type == "unique_id" and page.values.get(p.name, {}).get("number") is None:
                ds.unique_counter += 1
                page.values[p.name] = {"prefix": p.config.get("prefix"),
                                       "number": ds.unique_counter}

    def patch_page(self, page, spec, now):
        if not isinstance(spec, dict):
            raise ControlError("patch must be an object")
        self._apply_meta(page, spec)
        self.set_values(page, spec.get("properties") or {})
        if spec.get("last_edited_time") is not None:
            page.edited = self._time(spec["last_edited_time"], now)
        else:
            page.edited = floor_minute(now)
        if spec.get("last_edited_by") is not None:
            page.edited_by = self._user_id(spec["last_edited_by"])
        page.cache.clear()
        self.touched(page.ds)

    def move_page(self, page, target, now):
        """Move a page to another data source (of any database). The title goes to the
        target's title property; values of properties the target has with the same name and
        type carry over (select, multi_select and status options by name); the rest is
        dropped, and unique_id properties of the target number the page afresh."""
        source = page.ds
        if target is source:
            raise ControlError("the page is already in that data source")
        old_title, new_title = source.title_prop(), target.title_prop()
        kept = {}
        for name, value in page.values.items():
            prop = source.props.get(name)
            dest = new_title if prop is old_title else target.props.get(name)
            if prop is None or dest is None or dest.type != prop.type or dest.type == "unique_id":
                continue
            if dest.type in ("select", "status"):
                value = None if value is None else dest.option(value["name"])
            elif dest.type == "multi_select":
                value = [dest.option(o["name"]) for o in value]
            kept[dest.name] = value
        del source.pages[page.id]
        page.ds = target
        target.pages[page.id] = page
        page.values = kept
        self._number(page)
        page.edited = floor_minute(now)
        page.cache.clear()
        self.touched(source)
        self.touched(target)

    def delete_page(self, page):
        del self.pages[page.id]
        del page.ds.pages[page.id]
        self.touched(page.ds)

    def touched(self, ds):
        """Invalidate everything derived from a data source's pages."""
        ds.generation += 1
        ds.query_cache.clear()
        ds.prerender = None

    def set_values(self, page, props):
        if not isinstance(props, dict):
            raise ControlError("properties must be an object")
        ds = page.ds
        for key, value in props.items():
            prop = ds.find_prop(key)
            if prop is None:
                ptype = self._infer_type(value)
                if ptype is None:
                    raise ControlError("property %r is not in the schema; give it as {\"type\": ..., <type>: value}" % key)
                given = value.get("id")
                pid = given if isinstance(given, str) and given and ds.find_prop(given) is None else None
                prop = self.add_prop(ds, key, ptype, pid=pid)
            if prop.type in COMPUTED:
                continue
            raw = value
            if isinstance(value, dict) and (value.get("type") == prop.type or prop.type in value):
                raw = value.get(prop.type)
            page.values[prop.name] = self.normalize(prop, raw, value, page)
        page.cache.clear()

    # -- value normalization
    def normalize(self, prop, raw, whole, page):
        t = prop.type
        if t in ("title", "rich_text"):
            return norm_rich_text(raw)
        if t == "number":
            return _number(raw)
        if t in ("select", "status"):
            return None if raw is None else prop.option(raw)
        if t == "multi_select":
            return [prop.option(o) for o in _list(raw)]
        if t == "date":
            return norm_date(raw)
        if t == "people":
            return [_user(u) for u in _list(raw)]
        if t == "files":
            return [self._file(f, page) for f in _list(raw)]
        if t == "checkbox":
            if not isinstance(raw, bool):
                raise ControlError("checkbox must be true or false")
            return raw
        if t in ("url", "email", "phone_number"):
            return _string(raw)
        if t == "formula":
            return self._formula(raw)
        if t == "relation":
            out = []
            for r in _list(raw):
                h = norm_id(r.get("id") if isinstance(r, dict) else r)
                if not h:
                    raise ControlError("relation items need a valid id")
                out.append({"id": dashed(h)})
            return out
        if t == "rollup":
            return self._rollup(raw)
        if t == "unique_id":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return {"prefix": prop.config.get("prefix"), "number": raw}
            if not isinstance(raw, dict):
                raise ControlError("unique_id must be a number or {prefix, number}")
            return {"prefix": raw.get("prefix", prop.config.get("prefix")), "number": raw.get("number")}
        if t == "verification":
            if raw is None:
                return {"state": "unverified", "verified_by": None, "date": None}
            if not isinstance(raw, dict) or raw.get("state") not in ("unverified", "verified", "expired"):
                raise ControlError("verification needs state unverified|verified|expired")
            return {"state": raw["state"],
                    "verified_by": _user(raw["verified_by"]) if raw.get("verified_by") else None,
                    "date": norm_date(raw.get("date"))}
        if t == "button":
            return {}
        if t == "place":
            if raw is not None and not isinstance(raw, dict):
                raise ControlError("place must be an object or null")
            return raw
        raise ControlError("cannot store type %s" % t)

    def _formula(self, raw):
        if raw is None:
            return {"type": "string", "string": None}
        if not isinstance(raw, dict) or raw.get("type") not in ("string", "number", "boolean", "date"):
            raise ControlError("formula must be {type: string|number|boolean|date, <type>: value}")
        ft = raw["type"]
        v = raw.get(ft)
        if ft == "date":
            v = norm_date(v)
        return {"type": ft, ft: v}

    def _rollup(self, raw):
        if not isinstance(raw, dict) or raw.get("type") not in ("number", "date", "array", "incomplete", "unsupported"):
            raise ControlError("rollup must be {type: number|date|array|incomplete|unsupported, <type>: value, function}")
        rt = raw["type"]
        v = raw.get(rt, {} if rt in ("incomplete", "unsupported") else None)
        if rt == "array":
            v = _list(v)
        elif rt == "date":
            v = norm_date(v)
        return {"type": rt, rt: v, "function": raw.get("function", "count")}

    def _file(self, f, page):
        if isinstance(f, str):
            f = {"type": "external", "external": {"url": f}}
        if not isinstance(f, dict):
            raise ControlError("files items must be objects")
        name = f.get("name")
        if f.get("type") == "external" or "external" in f:
            url = (f.get("external") or {}).get("url")
            if not isinstance(url, str):
                raise ControlError("external file needs external.url")
            return {"name": name or url.rsplit("/", 1)[-1] or "file", "type": "external",
                    "external": {"url": url}}
        if f.get("type") == "file" or "file" in f:
            return self._file_ref((f.get("file") or {}), name, page, True)
        raise ControlError("files items must be of type file or external")

    def _file_ref(self, body, name, page, named):
        parsed = FileRef.parse_url(body.get("url")) if isinstance(body, dict) else None
        if parsed:
            file_id = parsed[1]
            name = name or parsed[2]
        else:
            file_id = norm_id(body.get("file_id", "")) if isinstance(body, dict) else None
            file_id = file_id or stable_id("file", page.id, name, len(page.values))
        return FileRef(name or "file", file_id, self.id, named)

    def _apply_meta(self, page, spec):
        for key in ("cover", "icon"):
            if key in spec:
                v = spec[key]
                if v is not None and not isinstance(v, dict):
                    raise ControlError("%s must be an object or null" % key)
                if v is not None and v.get("type") == "file":
                    v = self._file_ref(v.get("file") or {}, "%s.png" % key, page, False)
                setattr(page, key, v)
        for key in ("in_trash", "is_archived", "is_locked"):
            if key in spec:
                if not isinstance(spec[key], bool):
                    raise ControlError("%s must be a boolean" % key)
                setattr(page, key, spec[key])

    # -- helpers
    @staticmethod
    def _infer_type(value):
        if not isinstance(value, dict):
            return None
        if value.get("type") in PROPERTY_TYPES and value["type"] in value:
            return value["type"]
        keys = [k for k in value if k in PROPERTY_TYPES]
        return keys[0] if len(keys) == 1 else None

    @staticmethod
    def _new_id(given, taken):
        h = random_id() if given is None else _id_of(given, "id")
        if h in taken:
            raise ControlError("id %s already exists" % dashed(h), 409)
        return h

    @staticmethod
    def _time(value, default):
        if value is None:
            return floor_minute(default)
        try:
            return floor_minute(parse_iso(value)[0])
        except (ValueError, TypeError):
            raise ControlError("invalid ISO timestamp %r" % (value,))

    def _user_id(self, value):
        if value is None:
            return dashed(self.default_user)
        if isinstance(value, dict):
            value = value.get("id")
        h = norm_id(value)
        if not h:
            raise ControlError("invalid user id %r" % (value,))
        return dashed(h)
