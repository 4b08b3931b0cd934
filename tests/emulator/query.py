"""Query semantics of the Notion emulator: filters, sorts, opaque cursors, result cap.

Pagination is keyset-based: a cursor remembers the sort key of the last row it handed
out and how many rows the query chain has returned so far (for the result cap).
Without sorts the order is a deterministic hash of the page id (Notion guarantees no
order); ties between equal sort values are broken the same way, never by creation order.
"""

import bisect
import collections
import functools
import uuid

from common import jrepr, norm_id, parse_iso, validation_error
from render import raw_value
from workspace import plain_text

MAX_FILTER_ITEMS = 100
QUERY_CACHE_SIZE = 16


# ---------------------------------------------------------------- cursors

CursorEntry = collections.namedtuple("CursorEntry", "fp last_key returned issued pinned")
CursorEntry.__doc__ = """Where a cursor stands: its query fingerprint, the sort key of the last row
handed out, how many rows the chain has returned, when it was issued, and whether it is
pinned (a prerendered chain's cursors never expire by age)."""


class Cursors:
    """Opaque uuid-format cursors -> (query fingerprint, position); expire after ttl seconds."""

    def __init__(self, ttl):
        self.ttl = ttl
        self.map = {}

    def issue(self, fp, last_key, returned, now, pinned=False):
        if len(self.map) > 200000:
            self.purge(now)
        c = str(uuid.uuid4())
        self.map[c] = CursorEntry(fp, last_key, returned, now, pinned)
        return c

    def lookup(self, cursor, fp, now):
        e = self.map.get(cursor) if isinstance(cursor, str) else None
        if e is None or e.fp != fp or (not e.pinned and now - e.issued > self.ttl):
            raise validation_error("The start_cursor provided is invalid: %s" % (cursor,))
        return e

    def purge(self, now):
        self.map = {c: e for c, e in self.map.items() if e.pinned or now - e.issued <= self.ttl}

    def expire_all(self):
        self.map.clear()


# ---------------------------------------------------------------- value extraction

def _text(prop, page):
    v = raw_value(prop, page)
    if isinstance(v, list):
        return plain_text(v)
    return v or ""


def _getter(prop):
    """Function page -> comparable filter value for the property's type."""
    t = prop.type
    if t in ("title", "rich_text", "url", "email", "phone_number"):
        return lambda p: _text(prop, p)
    if t in ("select", "status"):
        return lambda p: (raw_value(prop, p) or {}).get("name")
    if t == "multi_select":
        return lambda p: [o["name"] for o in raw_value(prop, p)]
    if t in ("people", "relation"):
        return lambda p: [o["id"] for o in raw_value(prop, p)]
    if t in ("created_by", "last_edited_by"):
        return lambda p: [raw_value(prop, p)["id"]]
    if t == "date":
        def date_start(p):
            v = raw_value(prop, p)
            return parse_iso(v["start"])[0] if v else None
        return date_start
    if t == "created_time":
        return lambda p: p.created
    if t == "last_edited_time":
        return lambda p: p.edited
    if t == "unique_id":
        return lambda p: raw_value(prop, p)["number"]
    if t == "files":
        return lambda p: raw_value(prop, p)
    return lambda p: raw_value(prop, p)


# ---------------------------------------------------------------- filters

FILTER_KEYS = {  # property type -> accepted filter keys
    "title": ("title", "rich_text"), "rich_text": ("rich_text", "title"),
    "url": ("url", "rich_text"), "email": ("email", "rich_text"),
    "phone_number": ("phone_number", "rich_text"), "number": ("number",),
    "checkbox": ("checkbox",), "select": ("select",), "status": ("status",),
    "multi_select": ("multi_select",), "date": ("date",),
    "created_time": ("created_time", "date"), "last_edited_time": ("last_edited_time", "date"),
    "people": ("people",), "created_by": ("created_by", "people"),
    "last_edited_by": ("last_edited_by", "people"), "relation": ("relation",),
    "unique_id": ("unique_id", "number"), "files": ("files",),
}

RELATIVE = {"past_week": (-7, 0), "past_month": (-30, 0), "past_year": (-365, 0),
            "next_week": (0, 7), "next_month": (0, 30), "next_year": (0, 365)}


def _op_one(cond, path, allowed):
    if not isinstance(cond, dict) or len(cond) != 1:
        raise validation_error("body failed validation: %s should be an object with exactly one "
                               "condition, instead was `%s`." % (path, jrepr(cond)))
    (op, val), = cond.items()
    if op not in allowed:
        raise validation_error("body failed validation: %s.%s is not a supported condition "
                               "(one of: %s)." % (path, op, ", ".join(allowed)))
    return op, val


def _need(val, types, path, what):
    if isinstance(val, bool) or not isinstance(val, types):
        raise validation_error("body failed validation: %s should be %s, instead was `%s`."
                               % (path, what, jrepr(val)))


def _existence(op, val, path):
    if val is not True:
        raise validation_error("body failed validation: %s.%s should be `true`, instead was `%s`."
                               % (path, op, jrepr(val)))


def _text_pred(get, cond, path):
    op, val = _op_one(cond, path, ("equals", "does_not_equal", "contains", "does_not_contain",
                                   "starts_with", "ends_with", "is_empty", "is_not_empty"))
    if op in ("is_empty", "is_not_empty"):
        _existence(op, val, path)
        return (lambda p: get(p) == "") if op == "is_empty" else (lambda p: get(p) != "")
    _need(val, str, "%s.%s" % (path, op), "a string")
    low = val.lower()
    return {
        "equals": lambda p: get(p) == val,
        "does_not_equal": lambda p: get(p) != val,
        "contains": lambda p: low in get(p).lower(),
        "does_not_contain": lambda p: low not in get(p).lower(),
        "starts_with": lambda p: get(p).lower().startswith(low),
        "ends_with": lambda p: get(p).lower().endswith(low),
    }[op]


def _number_pred(get, cond, path):
    op, val = _op_one(cond, path, ("equals", "does_not_equal", "greater_than", "less_than",
                                   "greater_than_or_equal_to", "less_than_or_equal_to",
                                   "is_empty", "is_not_empty"))
    if op in ("is_empty", "is_not_empty"):
        _existence(op, val, path)
        return (lambda p: get(p) is None) if op == "is_empty" else (lambda p: get(p) is not None)
    _need(val, (int, float), "%s.%s" % (path, op), "a number")
    cmp = {"equals": lambda a: a == val, "does_not_equal": lambda a: a != val,
           "greater_than": lambda a: a > val, "less_than": lambda a: a < val,
           "greater_than_or_equal_to": lambda a: a >= val,
           "less_than_or_equal_to": lambda a: a <= val}[op]
    if op == "does_not_equal":
        return lambda p: get(p) is None or cmp(get(p))
    return lambda p: get(p) is not None and cmp(get(p))


def _date_pred(get, cond, path, clock):
    """Date/timestamp conditions. A date-only value compares at day granularity (UTC)."""
    ops = ("equals", "before", "after", "on_or_before", "on_or_after", "is_empty", "is_not_empty",
           "this_week") + tuple(RELATIVE)
    op, val = _op_one(cond, path, ops)
    if op in ("is_empty", "is_not_empty"):
        _existence(op, val, path)
        return (lambda p: get(p) is None) if op == "is_empty" else (lambda p: get(p) is not None)
    if op in RELATIVE or op == "this_week":
        if val != {}:
            raise validation_error("body failed validation: %s.%s should be `{}`, instead was `%s`."
                                   % (path, op, jrepr(val)))
        now = clock()
        if op == "this_week":
            day = int(now) // 86400
            lo = (day - (day + 3) % 7) * 86400   # Monday 00:00 UTC
            hi = lo + 7 * 86400
        else:
            a, b = RELATIVE[op]
            lo, hi = now + a * 86400, now + b * 86400
        return lambda p: get(p) is not None and lo <= get(p) < hi
    try:
        ts, date_only = parse_iso(val)
    except (ValueError, TypeError):
        raise validation_error("body failed validation: %s.%s should be a valid ISO 8601 date "
                               "string, instead was `%s`." % (path, op, jrepr(val)))
    lo, hi = (ts, ts + 86400) if date_only else (ts, ts)
    test = {"equals": (lambda a: lo <= a < hi) if date_only else (lambda a: a == ts),
            "before": lambda a: a < lo,
            "after": (lambda a: a >= hi) if date_only else (lambda a: a > ts),
            "on_or_before": (lambda a: a < hi) if date_only else (lambda a: a <= ts),
            "on_or_after": lambda a: a >= lo}[op]
    return lambda p: get(p) is not None and test(get(p))


def _option_pred(get, cond, path):
    op, val = _op_one(cond, path, ("equals", "does_not_equal", "is_empty", "is_not_empty"))
    if op in ("is_empty", "is_not_empty"):
        _existence(op, val, path)
        return (lambda p: get(p) is None) if op == "is_empty" else (lambda p: get(p) is not None)
    _need(val, str, "%s.%s" % (path, op), "a string")
    return (lambda p: get(p) == val) if op == "equals" else (lambda p: get(p) != val)


def _contains_pred(get, cond, path, ids):
    op, val = _op_one(cond, path, ("contains", "does_not_contain", "is_empty", "is_not_empty"))
    if op in ("is_empty", "is_not_empty"):
        _existence(op, val, path)
        return (lambda p: not get(p)) if op == "is_empty" else (lambda p: bool(get(p)))
    _need(val, str, "%s.%s" % (path, op), "a string")
    if ids:
        h = norm_id(val)
        if not h:
            raise validation_error("body failed validation: %s.%s should be a valid uuid, instead "
                                   "was `%s`." % (path, op, jrepr(val)))
        val = "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
    return (lambda p: val in get(p)) if op == "contains" else (lambda p: val not in get(p))


def _checkbox_pred(get, cond, path):
    op, val = _op_one(cond, path, ("equals", "does_not_equal"))
    if not isinstance(val, bool):
        raise validation_error("body failed validation: %s.%s should be a boolean, instead was `%s`."
                               % (path, op, jrepr(val)))
    return (lambda p: get(p) == val) if op == "equals" else (lambda p: get(p) != val)


def _property_pred(f, ds, path, clock):
    name = f.get("property")
    prop = ds.find_prop(name)
    if prop is None:
        raise validation_error("Could not find property with name or id: %s" % (name,))
    keys = [k for k in f if k not in ("property", "type")]
    if len(keys) != 1:
        raise validation_error("body failed validation: %s should have exactly one condition "
                               "object, instead had `%s`." % (path, jrepr(keys)))
    key = keys[0]
    if key not in FILTER_KEYS.get(prop.type, ()):
        raise validation_error("body failed validation: %s filter type `%s` is not supported for "
                               "property \"%s\" of type %s." % (path, key, prop.name, prop.type))
    cond, sub, get, t = f[key], "%s.%s" % (path, key), _getter(prop), prop.type
    if t in ("title", "rich_text", "url", "email", "phone_number"):
        return _text_pred(get, cond, sub)
    if t in ("number", "unique_id"):
        return _number_pred(get, cond, sub)
    if t == "checkbox":
        return _checkbox_pred(get, cond, sub)
    if t in ("select", "status"):
        return _option_pred(get, cond, sub)
    if t == "multi_select":
        return _contains_pred(get, cond, sub, ids=False)
    if t in ("people", "relation", "created_by", "last_edited_by"):
        return _contains_pred(get, cond, sub, ids=True)
    if t in ("date", "created_time", "last_edited_time"):
        return _date_pred(get, cond, sub, clock)
    # files: existence only
    op, val = _op_one(cond, sub, ("is_empty", "is_not_empty"))
    _existence(op, val, sub)
    return (lambda p: not get(p)) if op == "is_empty" else (lambda p: bool(get(p)))


def compile_filter(f, ds, clock, path="body.filter", depth=0):
    """Validate a Notion filter and return a predicate page -> bool."""
    if not isinstance(f, dict):
        raise validation_error("body failed validation: %s should be an object, instead was `%s`."
                               % (path, jrepr(f)))
    if "and" in f or "or" in f:
        if len(f) != 1:
            raise validation_error("body failed validation: %s should have exactly one of `and`, "
                                   "`or`." % path)
        op = "and" if "and" in f else "or"
        items = f[op]
        if not isinstance(items, list):
            raise validation_error("body failed validation: %s.%s should be an array, instead was "
                                   "`%s`." % (path, op, jrepr(items)))
        if len(items) > MAX_FILTER_ITEMS:
            raise validation_error("body failed validation: %s.%s.length should be ≤ `100`, "
                                   "instead was `%d`." % (path, op, len(items)))
        if depth >= 2:
            raise validation_error("body failed validation: %s.%s: filters may be nested at most "
                                   "two levels deep." % (path, op))
        preds = [compile_filter(x, ds, clock, "%s.%s[%d]" % (path, op, i), depth + 1)
                 for i, x in enumerate(items)]
        if op == "and":
            return lambda p: all(q(p) for q in preds)
        return lambda p: any(q(p) for q in preds)
    if "timestamp" in f:
        ts = f["timestamp"]
        if ts not in ("created_time", "last_edited_time"):
            raise validation_error("body failed validation: %s.timestamp should be `\"created_time\"` "
                                   "or `\"last_edited_time\"`, instead was `%s`." % (path, jrepr(ts)))
        extra = [k for k in f if k not in ("timestamp", "type", ts)]
        if ts not in f or extra:
            raise validation_error("body failed validation: %s.%s should be defined, instead was "
                                   "`undefined`." % (path, ts))
        get = (lambda p: p.created) if ts == "created_time" else (lambda p: p.edited)
        return _date_pred(get, f[ts], "%s.%s" % (path, ts), clock)
    if "property" in f:
        return _property_pred(f, ds, path, clock)
    raise validation_error("body failed validation: %s should be a property filter, a timestamp "
                           "filter, or a compound filter (`and`/`or`), instead was `%s`."
                           % (path, jrepr(f)))


# ---------------------------------------------------------------- sorts

@functools.total_ordering
class Desc:
    """Reverses the order of a comparable value (descending sort component)."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return self.v == other.v

    def __lt__(self, other):
        return other.v < self.v


def _sort_value(prop):
    t = prop.type
    get = _getter(prop)
    if t in ("title", "rich_text", "url", "email", "phone_number", "select", "status"):
        def f(p):
            v = get(p)
            return (1, "") if not v else (0, v.casefold())
    elif t in ("multi_select", "people", "relation", "created_by", "last_edited_by"):
        def f(p):
            v = get(p)
            return (1, "") if not v else (0, ",".join(v).casefold())
    elif t == "checkbox":
        def f(p):
            return (0, bool(get(p)))
    elif t == "formula":
        def f(p):
            v = raw_value(prop, p)
            inner = v.get(v["type"])
            if inner is None:
                return (1, "")
            if v["type"] == "date":
                inner = inner["start"]
            return (0, (0, inner, "") if isinstance(inner, (int, float)) else (1, 0, str(inner)))
    elif t in ("rollup", "files", "verification", "button", "place"):
        def f(p):
            return (0, str(raw_value(prop, p)))
    else:  # number, date, times, unique_id
        def f(p):
            v = get(p)
            return (1, 0) if v is None else (0, v)
    return f


def compile_sorts(sorts, ds, path="body.sorts"):
    """Validate sorts; return key function page -> tuple (always ends with tie hash and id)."""
    if sorts is None:
        sorts = []
    if not isinstance(sorts, list):
        raise validation_error("body failed validation: %s should be an array, instead was `%s`."
                               % (path, jrepr(sorts)))
    comps = []
    for i, s in enumerate(sorts):
        sp = "%s[%d]" % (path, i)
        if not isinstance(s, dict):
            raise validation_error("body failed validation: %s should be an object, instead was "
                                   "`%s`." % (sp, jrepr(s)))
        direction = s.get("direction")
        if direction not in ("ascending", "descending"):
            raise validation_error("body failed validation: %s.direction should be `\"ascending\"` "
                                   "or `\"descending\"`, instead was `%s`." % (sp, jrepr(direction)))
        extra = [k for k in s if k not in ("direction", "timestamp", "property")]
        if extra or ("timestamp" in s) == ("property" in s):
            raise validation_error("body failed validation: %s should have either `property` or "
                                   "`timestamp`." % sp)
        if "timestamp" in s:
            if s["timestamp"] not in ("created_time", "last_edited_time"):
                raise validation_error("body failed validation: %s.timestamp should be "
                                       "`\"created_time\"` or `\"last_edited_time\"`, instead was "
                                       "`%s`." % (sp, jrepr(s["timestamp"])))
            attr = "created" if s["timestamp"] == "created_time" else "edited"
            if direction == "ascending":
                comps.append(lambda p, a=attr: getattr(p, a))
            else:
                comps.append(lambda p, a=attr: -getattr(p, a))
            continue
        prop = ds.find_prop(s["property"])
        if prop is None:
            raise validation_error("Could not find sort property with name or id: %s"
                                   % (s["property"],))
        f = _sort_value(prop)
        if direction == "ascending":
            comps.append(f)
        else:   # empty values stay last in both directions
            comps.append(lambda p, f=f: (lambda v: (v[0], Desc(v[1])))(f(p)))
    if not comps:
        return lambda p: (p.tie, p.id)
    return lambda p: tuple([c(p) for c in comps]) + (p.tie, p.id)


# ---------------------------------------------------------------- execution

class QuerySpec:
    """A validated query: fingerprint (filter+sorts+trash flag), predicate and sort key."""

    def __init__(self, fp, pred, key, cache_key=None):
        self.fp = fp
        self.pred = pred
        self.key = key
        self.cache_key = cache_key or fp


def matching(ds, spec):
    """(keys, pages) of all rows of the query in order; cached per data-source generation."""
    ck = (spec.cache_key, ds.generation)
    hit = ds.query_cache.get(ck)
    if hit is not None:
        ds.query_cache.move_to_end(ck)
        return hit
    key, pred = spec.key, spec.pred
    rows = sorted(((key(p), p) for p in ds.pages.values() if pred(p)), key=lambda kp: kp[0])
    hit = ([k for k, _ in rows], [p for _, p in rows])
    ds.query_cache[ck] = hit
    if len(ds.query_cache) > QUERY_CACHE_SIZE:
        ds.query_cache.popitem(last=False)
    return hit


def page_window(keys, items, entry, page_size, cap):
    """Select one response's rows.

    entry: CursorEntry of start_cursor or None. Returns (rows, last_key, returned_total, state)
    with state "more", "complete" or "capped".
    """
    start = bisect.bisect_right(keys, entry.last_key) if entry else 0
    returned = entry.returned if entry else 0
    take = max(0, min(page_size, cap - returned))
    rows = items[start:start + take]
    end = start + len(rows)
    total = returned + len(rows)
    if end >= len(items):
        state = "complete"
    elif total >= cap:
        state = "capped"
    else:
        state = "more"
    return rows, keys[end - 1] if rows else (entry.last_key if entry else None), total, state

