"""Deterministic generator of realistic pages for the Notion emulator.

generate(ws, ds, count, seed, kind, created_start, step, now) adds `count` pages of
about 20 properties of mixed types (3-4 KB of JSON each as returned by the query
endpoint). The same (data source id, seed, kind, existing page count, times) always
yields the same pages. Kinds and their mapped properties:

  Characters     Name (title), Description (rich_text; ~20% empty with Bio or
                 Backstory filled instead), Bio, Backstory, Contact (email), Phone
  Worlds         World Name (title), Concept/Premise (rich_text), Location (place),
                 Source URL (url)
  Stories        Story Title (title), Premise (rich_text), Milestones (rollup array),
                 Source URL
  Chat Sessions  Session Title (title), Raw Transcript (rich_text; ~15% span 3-6
                 items of 2000 chars), Message Count (number)
  generic        Name (title), Description (rich_text), Milestones, Location, Run
                 (button), Verified (verification), Ready (formula boolean), Source URL,
                 Contact, Phone

Every kind also gets: Status, Tags, Category, Owner (people; ~1% > 25 users),
Attachments (files: a Notion-hosted file, sometimes also an external one), Published,
Rating, Due, Score (formula; number/string/boolean/date by kind), Related (relation;
~2% > 25 pages), Related Count (rollup number), Created,
Created By, Last Edited, Last Edited By, ID (unique_id), Notes (rich_text with
user/page/date mentions and equations; ~0.5% > 25 user mentions).
"""

import random
import time

from common import ControlError, FileRef, dashed, floor_minute, stable_id
from workspace import ANNOTATIONS, Page, text_item, text_items

WORDS = (
    "ancient amber archive ash aurora beacon bell blade bloom bridge brook cinder citadel "
    "clockwork cloud comet copper coral crown crystal dawn delta desert drift dune dusk echo "
    "ember emerald engine falcon fern fire flame forge fortress frost garden gate ghost glacier "
    "glass gold granite grove harbor harvest haven hollow horizon iron island ivory jade lantern "
    "legend light lotus lunar machine marble meadow mirror mist moon moss mountain night north "
    "oak oasis ocean onyx orbit orchid palace pearl pine prism quartz quiet raven reef river "
    "ruin rune sable sage salt sand sapphire scarlet shadow shore silver sky smoke solar song "
    "spire spring star steel stone storm summer sun swift temple thorn thunder tide timber "
    "tower trail valley velvet violet void wander whisper willow wind winter wolf wren zenith "
    "and the of a in with under beyond through across against"
).split()
FIRST = ("Ada Bram Cora Dax Elin Finn Gia Hugo Iris Jun Kael Lyra Milo Nia Orin Pia Quin Rhea "
         "Soren Tova Uma Vale Wren Xan Yara Zoë Élodie Björn").split()
LAST = ("Ashford Blackwood Crane Dunmore Everhart Fairweather Greystone Holloway Ironwood "
        "Kingsley Lockhart Moreau Nightingale Oakenshield Pemberton Quill Ravenscroft Sterling "
        "Thorne Underhill Vance Whitlock").split()

STATUS = ("Draft", "In progress", "Review", "Done")
TAGS = ("canon", "draft", "villain", "hero", "magic", "tech", "lore", "side-plot", "mystery",
        "romance", "comedy", "tragedy")
CATEGORIES = ("Primary", "Secondary", "Background", "Archived", "Idea")
EMOJI = ("🎭", "🌍", "📖", "💬", "🗡️", "🔮", "🐉", "⭐")

USER_POOL = 48
KINDS = ("Characters", "Worlds", "Stories", "Chat Sessions", "generic")

SCORE_TYPE = {"Characters": "number", "Worlds": "string", "Stories": "boolean",
              "Chat Sessions": "date", "generic": "number"}


def _head(kind):
    """Kind-specific (name, type) list; the first is the title, the second the main text."""
    return {
        "Characters": [("Name", "title"), ("Description", "rich_text"), ("Bio", "rich_text"),
                       ("Backstory", "rich_text"), ("Contact", "email"), ("Phone", "phone_number")],
        "Worlds": [("World Name", "title"), ("Concept/Premise", "rich_text"), ("Location", "place"),
                   ("Source URL", "url")],
        "Stories": [("Story Title", "title"), ("Premise", "rich_text"), ("Milestones", "rollup"),
                    ("Source URL", "url")],
        "Chat Sessions": [("Session Title", "title"), ("Raw Transcript", "rich_text"),
                          ("Message Count", "number")],
        "generic": [("Name", "title"), ("Description", "rich_text"), ("Milestones", "rollup"),
                    ("Location", "place"), ("Run", "button"), ("Verified", "verification"),
                    ("Ready", "formula"), ("Source URL", "url"), ("Contact", "email"),
                    ("Phone", "phone_number")],
    }[kind]


TAIL = [("Status", "status"), ("Tags", "multi_select"), ("Category", "select"),
        ("Owner", "people"), ("Attachments", "files"), ("Published", "checkbox"),
        ("Rating", "number"), ("Due", "date"), ("Score", "formula"), ("Related", "relation"),
        ("Related Count", "rollup"), ("Created", "created_time"), ("Created By", "created_by"),
        ("Last Edited", "last_edited_time"), ("Last Edited By", "last_edited_by"),
        ("ID", "unique_id"), ("Notes", "rich_text")]

PREFIX = {"Characters": "CHR", "Worlds": "WLD", "Stories": "STY", "Chat Sessions": "CHAT",
          "generic": "GEN"}


def _schema(ws, ds, kind):
    """Create the kind's properties on the data source (existing compatible ones are kept)."""
    props = {}
    for name, ptype in _head(kind) + TAIL:
        cfg = None
        if ptype == "status":
            cfg = {"options": list(STATUS)}
        elif ptype == "multi_select":
            cfg = {"options": list(TAGS)}
        elif ptype == "select":
            cfg = {"options": list(CATEGORIES)}
        elif ptype == "unique_id":
            cfg = {"prefix": PREFIX[kind]}
        elif ptype == "rollup":
            cfg = {"function": "show_original" if name == "Milestones" else "count",
                   "relation_property_name": "Related", "rollup_property_name": "Name"}
        elif ptype == "formula":
            cfg = {"expression": "prop(\"Rating\") * 2" if name == "Score" else "prop(\"Published\")"}
        existing = ds.props.get(name)
        if existing is not None and existing.type != ptype:
            raise ControlError("property %r exists with type %s, kind %s needs %s"
                               % (name, existing.type, kind, ptype))
        if ptype == "title" and existing is None and ds.title_prop() is not None:
            old = ds.title_prop()
            if ds.pages:
                raise ControlError("data source title property is %r, kind %s needs %r"
                                   % (old.name, kind, name))
            del ds.props[old.name]   # empty data source: replace the default title "Name"
        props[name] = ws.add_prop(ds, name, ptype, cfg)
    return props


class _Gen:
    """Per-call state: rng, users, ids and helpers producing normalized values."""

    def __init__(self, ws, ds, kind, seed, ids):
        self.ws, self.ds, self.kind = ws, ds, kind
        self.rng = random.Random(seed)
        self.users = [dashed(stable_id("user", i)) for i in range(USER_POOL)]
        self.user_names = ["%s %s" % (FIRST[i % len(FIRST)], LAST[i % len(LAST)])
                           for i in range(USER_POOL)]
        self.ids = ids

    def words(self, lo, hi):
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(lo, hi)))

    def sentence(self, lo=4, hi=10):
        s = self.words(lo, hi)
        return s[0].upper() + s[1:] + "."

    def paragraph(self, lo, hi):
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def person(self):
        r = self.rng
        return "%s %s" % (r.choice(FIRST), r.choice(LAST))

    def user_mention(self, i):
        return {"type": "mention", "mention": {"type": "user", "user": {"object": "user", "id": self.users[i]}},
                "annotations": ANNOTATIONS, "plain_text": "@" + self.user_names[i], "href": None}

    def page_mention(self, pid):
        return {"type": "mention", "mention": {"type": "page", "page": {"id": dashed(pid)}},
                "annotations": ANNOTATIONS, "plain_text": "Untitled", "href": "https://www.notion.so/" + pid}

    def notes(self, created):
        r = self.rng
        roll = r.random()
        if roll > 0.6:
            return []
        items = [text_item(self.sentence(3, 8))]
        if roll < 0.005:   # heavy: more than 25 user mentions
            for i in range(r.randint(26, 34)):
                items.append(self.user_mention(i % USER_POOL))
                items.append(text_item(", "))
            return items
        if roll < 0.2:
            items.append(self.user_mention(r.randrange(USER_POOL)))
            items.append(text_item(" please review"))
        if roll < 0.08:
            items.append(self.page_mention(r.choice(self.ids)))
        if r.random() < 0.08:
            day = floor_minute(created + r.randint(1, 60) * 86400)
            start = _date(day)
            items.append({"type": "mention", "mention": {"type": "date", "date": {"start": start, "end": None, "time_zone": None}},
                          "annotations": ANNOTATIONS, "plain_text": start, "href": None})
        if r.random() < 0.05:
            expr = r.choice(("E=mc^2", "a^2+b^2=c^2", "\\sum_{i=1}^{n} i"))
            items.append({"type": "equation", "equation": {"expression": expr},
                          "annotations": ANNOTATIONS, "plain_text": expr, "href": None})
        return items

    def transcript(self):
        r = self.rng
        n = r.randint(40, 110) if r.random() < 0.15 else r.randint(4, 10)
        lines = []
        for i in range(n):
            who = "User" if i % 2 == 0 else "Assistant"
            lines.append("%s: %s" % (who, self.sentence(6, 20)))
        return text_items("\n".join(lines)), n


def _date(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def generate(ws, ds, count, seed, kind, created_start, step, now):
    """Add `count` generated pages to ds; returns the list of new pages."""
    if kind not in KINDS:
        raise ControlError("kind must be one of %s" % ", ".join(KINDS))
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000000:
        raise ControlError("count must be an integer 0..1000000")
    if not isinstance(step, int) or step < 0:
        raise ControlError("created_step_seconds must be a non-negative integer")
    props = _schema(ws, ds, kind)
    base = len(ds.pages)
    ids = [stable_id("page", ds.id, seed, base + i) for i in range(count)]
    if any(i in ws.pages for i in ids):
        raise ControlError("generated ids collide with existing pages; use another seed", 409)
    if created_start is None:
        created_start = now - count * step
    g = _Gen(ws, ds, kind, seed, ids or [stable_id("page", ds.id, seed, "x")])
    r = g.rng
    title_name, text_name = _head(kind)[0][0], _head(kind)[1][0]
    status, tags, cat = props["Status"], props["Tags"], props["Category"]
    score_type = SCORE_TYPE[kind]
    pages = []
    for i, pid in enumerate(ids):
        created = floor_minute(created_start + i * step)
        age = max(0, now - created)
        edited = floor_minute(created + int(r.random() ** 3 * min(age, 30 * 86400)))
        user = g.users[r.randrange(5)]
        page = Page(pid, ds, created, max(created, edited), user)
        page.edited_by = g.users[r.randrange(5)]
        v = page.values
        # kind-specific head
        if kind == "Chat Sessions":
            v[title_name] = [text_item("Session %d: %s" % (base + i + 1, g.words(2, 5).title()))]
            v[text_name], v["Message Count"] = g.transcript()
        else:
            label = g.person() if kind == "Characters" else g.words(2, 4).title()
            v[title_name] = [text_item(label)]
            desc = g.paragraph(1, 2)
            if kind == "Characters":
                if r.random() < 0.2:
                    v[text_name] = []
                    v["Bio" if r.random() < 0.5 else "Backstory"] = text_items(g.paragraph(1, 3))
                elif r.random() < 0.7:
                    v[text_name] = text_items(desc)
                else:
                    v[text_name] = [text_item(desc[:len(desc) // 2], None, None),
                                    text_item(desc[len(desc) // 2:], None,
                                              dict(ANNOTATIONS, italic=True))]
            else:
                v[text_name] = text_items(desc)
        if "Location" in props:
            v["Location"] = {"lat": round(r.uniform(-60, 60), 6), "lon": round(r.uniform(-180, 180), 6),
                             "name": g.words(1, 2).title(), "address": None,
                             "aws_place_id": None, "google_place_id": None} if r.random() < 0.7 else None
        if "Milestones" in props:
            v["Milestones"] = {"type": "array", "array": [
                {"type": "number", "number": r.randint(1, 100)} for _ in range(r.randint(0, 4))],
                "function": "show_original"}
        if "Verified" in props:
            v["Verified"] = ({"state": "verified", "verified_by": {"object": "user", "id": g.users[0]},
                              "date": {"start": _date(created), "end": None, "time_zone": None}}
                             if r.random() < 0.3 else
                             {"state": "unverified", "verified_by": None, "date": None})
        if "Run" in props:
            v["Run"] = {}
        if "Ready" in props:
            v["Ready"] = {"type": "boolean", "boolean": r.random() < 0.5}
        # common tail
        v["Status"] = status.option(r.choice(STATUS))
        v["Tags"] = [tags.option(t) for t in r.sample(TAGS, r.randint(0, 2))]
        v["Category"] = cat.option(r.choice(CATEGORIES)) if r.random() < 0.9 else None
        heavy = r.random()
        owners = r.sample(range(USER_POOL), r.randint(26, 40) if heavy < 0.01 else r.randint(1, 2))
        v["Owner"] = [{"object": "user", "id": g.users[k]} for k in owners]
        files = [FileRef("asset-%d.png" % (base + i), stable_id("file", pid, 0), ws.id, True)]
        if r.random() < 0.2:
            files.append({"name": "reference.pdf", "type": "external",
                          "external": {"url": "https://example.com/ref/%d.pdf" % (base + i)}})
        v["Attachments"] = files
        v["Published"] = r.random() < 0.5
        if "Source URL" in props:
            v["Source URL"] = "https://example.com/%s/%d" % (kind.lower().replace(" ", "-"),
                                                             base + i) if r.random() < 0.8 else None
        if "Contact" in props:
            v["Contact"] = "%s@example.com" % g.person().split()[0].lower() if r.random() < 0.6 else None
            v["Phone"] = "+1-555-%04d" % r.randrange(10000) if r.random() < 0.4 else None
        v["Rating"] = round(r.uniform(0, 10), 1) if r.random() < 0.9 else None
        v["Due"] = {"start": _date(created + r.randint(1, 90) * 86400), "end": None,
                    "time_zone": None} if r.random() < 0.6 else None
        v["Score"] = _score(score_type, v, created)
        nrel = r.randint(26, 60) if 0.01 <= heavy < 0.03 else r.randint(0, 2)
        v["Related"] = [{"id": dashed(r.choice(g.ids))} for _ in range(nrel)]
        v["Related Count"] = {"type": "number", "number": min(nrel, 25), "function": "count"}
        ds.unique_counter += 1
        v["ID"] = {"prefix": PREFIX[kind], "number": ds.unique_counter}
        v["Notes"] = g.notes(created)
        if r.random() < 0.5:
            page.icon = {"type": "emoji", "emoji": r.choice(EMOJI)}
        cov = r.random()
        if cov < 0.1:
            page.cover = FileRef("cover.jpg", stable_id("cover", pid), ws.id, False)
        elif cov < 0.3:
            page.cover = {"type": "external",
                          "external": {"url": "https://images.example.com/covers/%d.jpg" % r.randrange(500)}}
        pages.append(page)
    for page in pages:
        ws.pages[page.id] = page
        ds.pages[page.id] = page
    ws.touched(ds)
    return pages


def _score(score_type, v, created):
    rating = v["Rating"]
    if score_type == "number":
        return {"type": "number", "number": None if rating is None else round(rating * 2, 1)}
    if score_type == "string":
        return {"type": "string", "string": "%s / %s" % (v["Status"]["name"], rating)}
    if score_type == "boolean":
        return {"type": "boolean", "boolean": bool(rating and rating > 5)}
    return {"type": "date", "date": {"start": _date(created + 7 * 86400), "end": None, "time_zone": None}}
