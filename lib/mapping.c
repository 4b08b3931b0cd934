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

/* Append the plain text of value as an escaped JSON string literal, keeping
 * at most max_chars characters and max_bytes bytes (0 = no limit), never
 * splitting a character. The text is cleaned first (NUL dropped, invalid
 * UTF-8 replaced) so that the caps hold for what is stored. Scratch
 * buffers hold the joined text: rich text arrives in pieces of up to 2000
 * characters. */
static nsync_rc add_text_literal(struct nsync_buf *b, struct json_object *value, size_t max_chars,
				 size_t max_bytes, long *cleaned)
{
	struct nsync_buf joined, clean;
	size_t len;
	nsync_rc rc;

	nsync__buf_init(&joined, b->limit);
	nsync__buf_init(&clean, b->limit);
	rc = nsync__plain_text(&joined, value);
	if (rc == NSYNC_OK)
		rc = nsync__utf8_clean(&clean, joined.data ? joined.data : "", joined.len, cleaned);
	if (rc == NSYNC_OK) {
		const char *text = clean.data ? clean.data : "";
		len = clean.len;
		if (max_bytes && len > max_bytes) {
			len = max_bytes;
			while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
				len--; /* do not cut inside a character */
		}
		if (max_chars)
			len = nsync__utf8_prefix(text, len, max_chars);
		rc = nsync__json_add_string(b, text, len, NULL);
	}
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

/* The property types a text column takes: text, and strings. */
static int is_text_type(const char *t)
{
	static const char *const types[] = {"rich_text", "title", "url", "email", "phone_number"};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(t, types[i]) == 0)
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

	if (!is_text_type(t) || !json_object_object_get_ex(value, t, &inner))
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

nsync_rc nsync__add_count(struct nsync_buf *b, const struct nsync_kind *kind,
			  struct json_object *properties)
{
	struct json_object *value, *number;
	double d;

	if (!kind->count_prop || !json_object_object_get_ex(properties, kind->count_prop, &value) ||
	    !json_object_object_get_ex(value, "number", &number) ||
	    !(json_object_is_type(number, json_type_int) ||
	      json_object_is_type(number, json_type_double)))
		return nsync__buf_add(b, "null", 4);
	d = json_object_get_double(number);
	if (!isfinite(d) || d > 2147483647.0 || d < -2147483648.0)
		return nsync__buf_add(b, "null", 4);
	return nsync__buf_printf(b, "%.0f", trunc(d));
}
