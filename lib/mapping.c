/*
 * mapping.c - the four kinds of database (and the generic one) and the extraction of
 * their columns from a page's properties (see mapping.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mapping.h"
#include "text.h"

static const struct nsync_kind kinds[] = {
	{"Characters",
	 "notion_characters_sync",
	 "name",
	 "description",
	 {"Description", "Bio", "Backstory", NULL},
	 NULL,
	 NULL,
	 0},
	{"Worlds",
	 "notion_worlds_sync",
	 "name",
	 "description",
	 {"Concept/Premise", NULL},
	 NULL,
	 NULL,
	 0},
	{"Stories",
	 "notion_stories_sync",
	 "title",
	 "description",
	 {"Premise", NULL},
	 NULL,
	 NULL,
	 0},
	{"Chat Sessions",
	 "notion_chat_sessions_sync",
	 "title",
	 "transcript",
	 {"Raw Transcript", NULL},
	 "message_count",
	 "Message Count",
	 0},
	/* Any other database: its title property and, if it has one, a Description. */
	{"Other",
	 "notion_other_sync",
	 "title",
	 "description",
	 {"Description", NULL},
	 NULL,
	 NULL,
	 1},
};
#define GENERIC_KIND (&kinds[sizeof(kinds) / sizeof(kinds[0]) - 1])

const struct nsync_kind *nsync__kind_find(const char *name)
{
	size_t i, len;

	if (!name)
		return NULL;
	while (*name == ' ' || *name == '\t')
		name++;
	len = strlen(name);
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == len && strncasecmp(kinds[i].name, name, len) == 0)
			return &kinds[i];
	return NULL;
}

const struct nsync_kind *nsync__kind_for_title(const char *title)
{
	const struct nsync_kind *kind = nsync__kind_find(title);

	return kind && !kind->generic ? kind : NULL;
}

const struct nsync_kind *nsync__kind_at(size_t i)
{
	return i < sizeof(kinds) / sizeof(kinds[0]) && !kinds[i].generic ? &kinds[i] : NULL;
}

const struct nsync_kind *nsync__kind_generic(void)
{
	return GENERIC_KIND;
}

const char *nsync__kind_names(void)
{
	return "Characters, Worlds, Stories, Chat Sessions";
}

const char *nsync__kind_choices(void)
{
	return "Characters, Worlds, Stories, Chat Sessions, Other";
}

nsync_rc nsync__rich_text_plain(struct nsync_buf *b, struct json_object *array)
{
	size_t i, n;

	if (!json_object_is_type(array, json_type_array))
		return NSYNC_OK;
	n = json_object_array_length(array);
	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(array, i);
		struct json_object *s = NULL, *text;
		nsync_rc rc;

		if (!json_object_object_get_ex(item, "plain_text", &s) &&
		    json_object_object_get_ex(item, "text", &text))
			json_object_object_get_ex(text, "content", &s);
		if (!json_object_is_type(s, json_type_string))
			continue;
		rc = nsync__buf_add(b, json_object_get_string(s),
				    (size_t)json_object_get_string_len(s));
		if (rc != NSYNC_OK)
			return rc;
	}
	return NSYNC_OK;
}

/* The "type" member of a property value, or "" when absent or not a string
 * (Notion always sends one; a malformed answer must not crash us). */
static const char *type_of(struct json_object *value)
{
	struct json_object *type;

	if (!json_object_object_get_ex(value, "type", &type) ||
	    !json_object_is_type(type, json_type_string))
		return "";
	return json_object_get_string(type);
}

nsync_rc nsync__plain_text(struct nsync_buf *b, struct json_object *value)
{
	struct json_object *inner, *name;
	const char *t = type_of(value);

	if (!*t || !json_object_object_get_ex(value, t, &inner))
		return NSYNC_OK;
	if (json_object_is_type(inner, json_type_array))
		return nsync__rich_text_plain(b, inner);
	if (json_object_is_type(inner, json_type_string))
		return nsync__buf_add(b, json_object_get_string(inner),
				      (size_t)json_object_get_string_len(inner));
	if (json_object_is_type(inner, json_type_object) &&
	    json_object_object_get_ex(inner, "name", &name) &&
	    json_object_is_type(name, json_type_string))
		return nsync__buf_adds(b, json_object_get_string(name));
	if (json_object_is_type(inner, json_type_int) ||
	    json_object_is_type(inner, json_type_double))
		return nsync__buf_adds(b, json_object_get_string(inner));
	return NSYNC_OK;
}

/* The value of the first property whose type is "title", or NULL. */
static struct json_object *find_title_property(struct json_object *properties)
{
	json_object_object_foreach(properties, key, val) {
		(void)key;
		if (strcmp(type_of(val), "title") == 0)
			return val;
	}
	return NULL;
}

/* Append text (len bytes: the plain text of a value, joined) as an escaped
 * JSON string literal, keeping at most max_chars characters and max_bytes
 * bytes (0 = no limit), never splitting a character. The text is cleaned
 * first (NUL dropped, invalid UTF-8 replaced), in clean, so that the caps
 * hold for what is stored. */
static nsync_rc add_literal(struct nsync_buf *b, const char *text, size_t len, size_t max_chars,
			    size_t max_bytes, struct nsync_buf *clean, long *cleaned)
{
	nsync_rc rc = nsync__utf8_clean(clean, text ? text : "", len, cleaned);

	if (rc == NSYNC_OK) {
		text = clean->data ? clean->data : "";
		len = clean->len;
		if (max_bytes && len > max_bytes) {
			len = max_bytes;
			while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
				len--; /* do not cut inside a character */
		}
		if (max_chars)
			len = nsync__utf8_prefix(text, len, max_chars);
		rc = nsync__json_add_string(b, text, len, NULL);
	}
	return rc;
}

/* The plain text of value as a JSON string literal (see add_literal).
 * Scratch buffers hold the joined text: rich text arrives in pieces of up
 * to 2000 characters. */
static nsync_rc add_text_literal(struct nsync_buf *b, struct json_object *value, size_t max_chars,
				 size_t max_bytes, long *cleaned)
{
	struct nsync_buf joined, clean;
	nsync_rc rc;

	nsync__buf_init(&joined, b->limit);
	nsync__buf_init(&clean, b->limit);
	rc = nsync__plain_text(&joined, value);
	if (rc == NSYNC_OK)
		rc = add_literal(b, joined.data, joined.len, max_chars, max_bytes, &clean, cleaned);
	nsync__buf_free(&joined);
	nsync__buf_free(&clean);
	return rc;
}

nsync_rc nsync__add_title(struct nsync_buf *b, const struct nsync_kind *kind,
			  struct json_object *properties, long *cleaned)
{
	/* By type, never by name: real databases have a rich_text "Name"
	 * beside a title called "Title". Every page has exactly one. */
	struct json_object *value = find_title_property(properties);

	(void)kind;
	if (!value)
		return nsync__buf_add(b, "\"\"", 2);
	return add_text_literal(b, value, NSYNC_TITLE_MAX_CHARS, NSYNC_TITLE_MAX_BYTES, cleaned);
}

/* The property types a text column takes: text, and strings. t is len
 * bytes. */
static int is_text_type(const char *t, size_t len)
{
	static const char *const types[] = {"rich_text", "title", "url", "email", "phone_number"};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i]) == len && memcmp(t, types[i], len) == 0)
			return 1;
	return 0;
}

/* True when the property value is of a text type and holds at least one
 * character of text. */
static int has_text(struct json_object *value)
{
	struct json_object *inner, *s, *text;
	const char *t = type_of(value);
	size_t i, n;

	if (!is_text_type(t, strlen(t)) || !json_object_object_get_ex(value, t, &inner))
		return 0;
	if (json_object_is_type(inner, json_type_string))
		return json_object_get_string_len(inner) > 0;
	if (!json_object_is_type(inner, json_type_array))
		return 0;
	n = json_object_array_length(inner);
	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(inner, i);
		/* Same fallback as nsync__rich_text_plain: plain_text, else text.content.
		 * json_object_object_get_ex sets s to NULL when the key is absent. */
		if (!json_object_object_get_ex(item, "plain_text", &s) &&
		    json_object_object_get_ex(item, "text", &text))
			json_object_object_get_ex(text, "content", &s);
		if (json_object_is_type(s, json_type_string) && json_object_get_string_len(s) > 0)
			return 1;
	}
	return 0;
}

nsync_rc nsync__add_text(struct nsync_buf *b, const struct nsync_kind *kind,
			 struct json_object *properties, long *cleaned)
{
	size_t i;

	for (i = 0; kind->text_props[i]; i++) {
		struct json_object *value;
		if (json_object_object_get_ex(properties, kind->text_props[i], &value) &&
		    has_text(value))
			return add_text_literal(b, value, 0, 0, cleaned);
	}
	/* Present but empty is "", absent is null. */
	for (i = 0; kind->text_props[i]; i++)
		if (json_object_object_get_ex(properties, kind->text_props[i], NULL))
			return nsync__buf_add(b, "\"\"", 2);
	return nsync__buf_add(b, "null", 4);
}

/* A count column: the number d as an integer, or null when it is not a
 * finite number that fits PostgreSQL's integer. */
static nsync_rc add_count_value(struct nsync_buf *b, double d)
{
	if (!isfinite(d) || d > 2147483647.0 || d < -2147483648.0)
		return nsync__buf_add(b, "null", 4);
	return nsync__buf_printf(b, "%.0f", trunc(d));
}

nsync_rc nsync__add_count(struct nsync_buf *b, const struct nsync_kind *kind,
			  struct json_object *properties)
{
	struct json_object *value, *number;

	if (!kind->count_prop || !json_object_object_get_ex(properties, kind->count_prop, &value) ||
	    !json_object_object_get_ex(value, "number", &number) ||
	    !(json_object_is_type(number, json_type_int) ||
	      json_object_is_type(number, json_type_double)))
		return nsync__buf_add(b, "null", 4);
	return add_count_value(b, json_object_get_double(number));
}

/* --- the same columns from the scanner's tape ---------------------------
 * Each function below is its json-c counterpart above read on nodes; a
 * json-c lookup of an absent member, or of one on what is not an object,
 * is NSYNC_NO_NODE here, and JSON null a NULL node. */

void nsync__text_scratch_free(struct nsync_text_scratch *t)
{
	nsync__buf_free(&t->joined);
	nsync__buf_free(&t->clean);
}

/* The "type" of a property value as (t, *len), or "" (type_of). */
static const char *scan_type_of(const struct nsync_scan *s, uint32_t value, size_t *len)
{
	uint32_t type = nsync__scan_get(s, value, "type");

	*len = 0;
	if (type == NSYNC_NO_NODE || s->nodes[type].type != NSYNC_NODE_STRING)
		return "";
	*len = s->nodes[type].len;
	return s->nodes[type].s;
}

/* A rich-text item's text: plain_text, else text.content (as
 * nsync__rich_text_plain takes it); NSYNC_NO_NODE when neither. */
static uint32_t scan_item_text(const struct nsync_scan *s, uint32_t item)
{
	uint32_t str = nsync__scan_get(s, item, "plain_text"), text;

	if (str == NSYNC_NO_NODE && (text = nsync__scan_get(s, item, "text")) != NSYNC_NO_NODE)
		str = nsync__scan_get(s, text, "content");
	return str;
}

static int is_string_node(const struct nsync_scan *s, uint32_t v)
{
	return v != NSYNC_NO_NODE && s->nodes[v].type == NSYNC_NODE_STRING;
}

static nsync_rc scan_rich_text_plain(struct nsync_buf *b, const struct nsync_scan *s, uint32_t arr)
{
	uint32_t e, m;
	nsync_rc rc = NSYNC_OK;

	for (e = arr + 1, m = 0; m < s->nodes[arr].len && rc == NSYNC_OK;
	     m++, e = s->nodes[e].next) {
		uint32_t str = scan_item_text(s, e);
		if (is_string_node(s, str))
			rc = nsync__buf_add(b, s->nodes[str].s, s->nodes[str].len);
	}
	return rc;
}

/* A number as json_object_get_string prints it: an integer in decimal, a
 * double as its text (json-c keeps the text it parsed). */
static nsync_rc scan_number_text(struct nsync_buf *b, const struct nsync_scan *s, uint32_t v)
{
	struct nsync_number num;

	if (s->nodes[v].type == NSYNC_NODE_DOUBLE)
		return nsync__buf_add(b, s->nodes[v].s, s->nodes[v].len);
	if (!nsync__scan_number(s, v, &num))
		return NSYNC_OK; /* over 63 digits: such a page is hashed, and so read, by json-c */
	if (num.kind == NSYNC_NUM_UINT64)
		return nsync__buf_printf(b, "%llu", (unsigned long long)num.u);
	return nsync__buf_printf(b, "%lld", (long long)num.i);
}

/* nsync__plain_text of node value. */
static nsync_rc scan_plain_text(struct nsync_buf *b, const struct nsync_scan *s, uint32_t value)
{
	size_t tlen;
	const char *t = scan_type_of(s, value, &tlen);
	uint32_t inner, name;

	if (!tlen || (inner = nsync__scan_get_n(s, value, t, tlen)) == NSYNC_NO_NODE)
		return NSYNC_OK;
	switch (s->nodes[inner].type) {
	case NSYNC_NODE_ARRAY:
		return scan_rich_text_plain(b, s, inner);
	case NSYNC_NODE_STRING:
		return nsync__buf_add(b, s->nodes[inner].s, s->nodes[inner].len);
	case NSYNC_NODE_OBJECT:
		name = nsync__scan_get(s, inner, "name");
		if (is_string_node(s, name))
			return nsync__buf_add(b, s->nodes[name].s, s->nodes[name].len);
		return NSYNC_OK;
	case NSYNC_NODE_INT:
	case NSYNC_NODE_DOUBLE:
		return scan_number_text(b, s, inner);
	default:
		return NSYNC_OK;
	}
}

static nsync_rc scan_text_literal(struct nsync_buf *b, const struct nsync_scan *s, uint32_t value,
				  size_t max_chars, size_t max_bytes, struct nsync_text_scratch *t,
				  long *cleaned)
{
	nsync_rc rc;

	nsync__buf_reset(&t->joined);
	nsync__buf_reset(&t->clean);
	t->joined.limit = t->clean.limit = b->limit;
	rc = scan_plain_text(&t->joined, s, value);
	if (rc == NSYNC_OK)
		rc = add_literal(b, t->joined.data, t->joined.len, max_chars, max_bytes, &t->clean,
				 cleaned);
	return rc;
}

nsync_rc nsync__add_title_scan(struct nsync_buf *b, const struct nsync_scan *s, uint32_t props,
			       struct nsync_text_scratch *t, long *cleaned)
{
	uint32_t k, m;

	for (k = props + 1, m = 0; m < s->nodes[props].len; m++, k = s->nodes[k + 1].next) {
		size_t tlen;
		const char *type = scan_type_of(s, k + 1, &tlen);
		if (tlen == 5 && memcmp(type, "title", 5) == 0)
			return scan_text_literal(b, s, k + 1, NSYNC_TITLE_MAX_CHARS,
						 NSYNC_TITLE_MAX_BYTES, t, cleaned);
	}
	return nsync__buf_add(b, "\"\"", 2);
}

/* has_text of node value. */
static int scan_has_text(const struct nsync_scan *s, uint32_t value)
{
	size_t tlen;
	const char *t = scan_type_of(s, value, &tlen);
	uint32_t inner, e, m;

	if (!is_text_type(t, tlen) ||
	    (inner = nsync__scan_get_n(s, value, t, tlen)) == NSYNC_NO_NODE)
		return 0;
	if (s->nodes[inner].type == NSYNC_NODE_STRING)
		return s->nodes[inner].len > 0;
	if (s->nodes[inner].type != NSYNC_NODE_ARRAY)
		return 0;
	for (e = inner + 1, m = 0; m < s->nodes[inner].len; m++, e = s->nodes[e].next) {
		uint32_t str = scan_item_text(s, e);
		if (is_string_node(s, str) && s->nodes[str].len > 0)
			return 1;
	}
	return 0;
}

nsync_rc nsync__add_text_scan(struct nsync_buf *b, const struct nsync_kind *kind,
			      const struct nsync_scan *s, uint32_t props,
			      struct nsync_text_scratch *t, long *cleaned)
{
	size_t i;

	for (i = 0; kind->text_props[i]; i++) {
		uint32_t value = nsync__scan_get(s, props, kind->text_props[i]);
		if (value != NSYNC_NO_NODE && scan_has_text(s, value))
			return scan_text_literal(b, s, value, 0, 0, t, cleaned);
	}
	for (i = 0; kind->text_props[i]; i++)
		if (nsync__scan_get(s, props, kind->text_props[i]) != NSYNC_NO_NODE)
			return nsync__buf_add(b, "\"\"", 2);
	return nsync__buf_add(b, "null", 4);
}

nsync_rc nsync__add_count_scan(struct nsync_buf *b, const struct nsync_kind *kind,
			       const struct nsync_scan *s, uint32_t props)
{
	struct nsync_number num;
	uint32_t number;

	if (!kind->count_prop)
		return nsync__buf_add(b, "null", 4);
	number = nsync__scan_get(s, nsync__scan_get(s, props, kind->count_prop), "number");
	if (number == NSYNC_NO_NODE ||
	    (s->nodes[number].type != NSYNC_NODE_INT &&
	     s->nodes[number].type != NSYNC_NODE_DOUBLE) ||
	    !nsync__scan_number(s, number, &num))
		return nsync__buf_add(b, "null", 4);
	return add_count_value(b, num.d);
}
