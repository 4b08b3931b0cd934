"""Shared helpers of the Notion emulator: ids, timestamps, errors, JSON, file refs.

Standard library only.
"""

import calendar
import datetime
import hashlib
import json
import os
import re
import urllib.parse

VERSIONS = {"2022-06-28": "2022", "2025-09-03": "2025", "2026-03-11": "2026"}
"""Supported Notion-Version values -> short version key used internally."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------- ids

def norm_id(value):
    """32 lowercase hex chars of a Notion id given with or without dashes, any case; None if invalid."""
    if not isinstance(value, str):
        return None
    h = value.replace("-", "").lower()
    return h if _HEX32.match(h) else None


def dashed(h):
    """Lowercase dashed UUID form of a 32-hex id."""
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def stable_id(*parts):
    """Deterministic v4-looking 32-hex id derived from parts."""
    b = bytearray(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def random_id():
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def tie_hash(h):
    """Deterministic pseudo-random ordering key for a page id (NOT creation order)."""
    return int.from_bytes(hashlib.blake2b(h.encode(), digest_size=8).digest(), "big")


def short_prop_id(name, salt=0):
    """Notion-like short, URL-encoded property id (e.g. 'Yc%3FJ') derived from the name."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789;:=?@[]{}<>^`|_~"
    digest = hashlib.sha256(("%s\x1f%d" % (name, salt)).encode()).digest()
    raw = "".join(alphabet[b % len(alphabet)] for b in digest[:4])
    return urllib.parse.quote(raw, safe="")


# ---------------------------------------------------------------- time

def floor_minute(ts):
    return int(ts) // 60 * 60


def iso_minute(ts):
    """YYYY-MM-DDTHH:MM:00.000Z (rounded DOWN to the minute), as Notion returns page timestamps."""
    t = datetime.datetime.fromtimestamp(int(ts) // 60 * 60, datetime.timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:00.000Z" % (t.year, t.month, t.day, t.hour, t.minute)


def iso_ms(ts):
    """YYYY-MM-DDTHH:MM:SS.mmmZ"""
    t = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def iso_db(ts):
    """Database/data-source timestamp style observed in 2025-09-03 traffic: ms precision, +00:00."""
    return iso_ms(ts)[:-1] + "+00:00"


def amz_date(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso(value):
    """Parse an ISO 8601 date or datetime -> (epoch seconds float, is_date_only). Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    v = value.strip()
    if _DATE_ONLY.match(v):
        d = datetime.date.fromisoformat(v)
        return float(calendar.timegm(d.timetuple())), True
    dt = datetime.datetime.fromisoformat(v.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp(), False


# ---------------------------------------------------------------- errors

class ApiError(Exception):
    """A Notion API error response."""

    def __init__(self, status, code, message, additional_data=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.additional_data = additional_data
        self.headers = headers or {}

    def body(self):
        d = {"object": "error", "status": self.status, "code": self.code, "message": self.message}
        if self.additional_data is not None:
            d["additional_data"] = self.additional_data
        return d


class ControlError(Exception):
    """An error of the /_emulator control API -> {"error": message}."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status
        self.message = message


def int_member(body, key, lo=0, default=None, hi=None):
    """body[key] (or default) as an integer in lo..hi of a control request; None stays None."""
    v = body.get(key, default)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo
                          or (hi is not None and v > hi)):
        raise ControlError("%s must be an integer %s" % (
            key, ">= %d" % lo if hi is None else "in %d..%d" % (lo, hi)))
    return v


def bool_member(body, key, default):
    """body[key] (or default) of a control request, which must be a boolean."""
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise ControlError("%s must be a boolean" % key)
    return v


def validation_error(message, additional_data=None):
    return ApiError(400, "validation_error", message, additional_data)


def json_object(raw, invalid, not_object):
    """A request body as a dict: {} when it is empty or blank; raises invalid() when it is
    not JSON and not_object(value) when it is JSON but not an object."""
    if not raw or not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid()
    if not isinstance(body, dict):
        raise not_object(body)
    return body


def jrepr(value, limit=200):
    """Value as Notion shows it inside backticks in validation messages."""
    s = json.dumps(value, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit] + "..."


# ---------------------------------------------------------------- json

def dumps(obj, default=None):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=default)


# ---------------------------------------------------------------- Notion-hosted files

S3_HOST = "https://prod-files-secure.s3.us-west-2.amazonaws.com/"


class FileRef:
    """A Notion-hosted file. Rendered with a freshly signed URL on every response.

    `named` is True for items of a files property ({"name","type":"file","file":{...}}),
    False for page cover/icon ({"type":"file","file":{...}}).
    """

    __slots__ = ("name", "file_id", "workspace_id", "named", "head")

    def __init__(self, name, file_id, workspace_id, named=True):
        self.name = name
        self.file_id = file_id
        self.workspace_id = workspace_id
        self.named = named
        url = "%s%s/%s/%s" % (S3_HOST, dashed(workspace_id), dashed(file_id),
                              urllib.parse.quote(name or "file", safe=""))
        prefix = ('{"name":%s,' % dumps(name)) if named else "{"
        self.head = (prefix + '"type":"file","file":{"url":"' + url +
                     "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=").encode()

    def __eq__(self, other):
        return isinstance(other, FileRef) and self.head == other.head

    def __hash__(self):
        return hash(self.head)

    @staticmethod
    def parse_url(url):
        """(workspace_id, file_id, name) from a prod-files-secure URL, or None."""
        if not isinstance(url, str) or not url.startswith(S3_HOST):
            return None
        path = url[len(S3_HOST):].split("?", 1)[0].split("/")
        if len(path) < 3 or not norm_id(path[0]) or not norm_id(path[1]):
            return None
        return norm_id(path[0]), norm_id(path[1]), urllib.parse.unquote(path[2])


class Signer:
    """Signs FileRefs for one response: same X-Amz-Date/expiry for the response, fresh signature per URL."""

    __slots__ = ("mid", "tail")

    def __init__(self, now):
        self.mid = (amz_date(now) + "&X-Amz-Expires=3600&X-Amz-Signature=").encode()
        self.tail = ('","expiry_time":"' + iso_ms(now + 3600) + '"}}').encode()

    def __call__(self, ref):
        return b"".join((ref.head, self.mid, os.urandom(32).hex().encode(), self.tail))

    def join(self, parts, suffix=b""):
        """bytes of parts (bytes and FileRefs) followed by suffix."""
        out = [p if p.__class__ is bytes else self(p) for p in parts]
        out.append(suffix)
        return b"".join(out)
