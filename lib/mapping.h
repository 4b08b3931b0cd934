/*
 * mapping.h - which Notion database goes to which sync table, and how a
 * page's properties become that table's columns (README.md, "The tables").
 */
#ifndef NSYNC_MAPPING_H
#define NSYNC_MAPPING_H

#include <stddef.h>

#include <json-c/json.h>

#include "buf.h"
#include "pagescan.h"

/* Longest title stored in the indexed title column: at most this many
 * characters and at most this many bytes, whichever is shorter. The full
 * title always stays in the properties jsonb. Why: a btree entry must fit
 * in a third of a page (~2.7 kB), so a 70,000-character title (or 1,000
 * emoji of 4 bytes) would make the upsert fail. */
#define NSYNC_TITLE_MAX_CHARS 1000
#define NSYNC_TITLE_MAX_BYTES 2048

/* One kind of database and its sync table. All strings are static. */
struct nsync_kind {
	const char *name;          /* "Characters": matched case-insensitively */
	const char *table;         /* "notion_characters_sync" */
	const char *title_column;  /* "name" or "title": the property of type title */
	const char *text_column;   /* "description"/"transcript" */
	const char *text_props[4]; /* first non-empty text-typed one wins, NULL-terminated */
	const char *count_column;  /* "message_count", or NULL */
	const char *count_prop;    /* "Message Count", or NULL */
	int generic;               /* 1 for "Other": never matched by title */
};

/* nsync__kind_find - the kind named name (case-insensitive, surrounding
 * blanks ignored), or NULL. "Other" finds the generic kind. Borrowed, static. */
const struct nsync_kind *nsync__kind_find(const char *name);

/* nsync__kind_for_title - the kind whose name is a database title: one of
 * one of Characters, Worlds, Stories, Chat Sessions, never the generic
 * one. NULL if none. */
const struct nsync_kind *nsync__kind_for_title(const char *title);

/* nsync__kind_at - the i-th of the four kinds discovery looks for (0..3),
 * or NULL past them. Static. */
const struct nsync_kind *nsync__kind_at(size_t i);

/* nsync__kind_generic - the "Other" kind (notion_other_sync): title and
 * properties, for databases that are none of the four. */
const struct nsync_kind *nsync__kind_generic(void);

/* nsync__kind_names - "Characters, Worlds, Stories, Chat Sessions" (static):
 * the titles discovery looks for. */
const char *nsync__kind_names(void);

/* nsync__kind_choices - every database_name a caller may give, the
 * generic "Other" included (static). */
const char *nsync__kind_choices(void);

/* The mapped columns of one page. Strings are built in the caller's buffer
 * as already-escaped JSON string literals, ready to be placed in the batch
 * document: no copy of the text is kept anywhere else. */
struct nsync_mapped {
	int has_count;
	double count;
};

/* nsync__add_title - append the page's title as a JSON string literal: the
 * plain text of the property whose type is "title", whatever its name;
 * capped at NSYNC_TITLE_MAX_CHARS characters and NSYNC_TITLE_MAX_BYTES. "" when there is none.
 * *cleaned counts text that had to be repaired. */
nsync_rc nsync__add_title(struct nsync_buf *b, const struct nsync_kind *kind,
			  struct json_object *properties, long *cleaned);

/* nsync__add_text - append the kind's text column as a JSON string literal:
 * the first of its named properties that is of a text type (rich_text,
 * title, url, email, phone_number) and not empty, all rich-text pieces
 * joined; "" when a named property is present but empty or of another
 * type; "null" when none is present. */
nsync_rc nsync__add_text(struct nsync_buf *b, const struct nsync_kind *kind,
			 struct json_object *properties, long *cleaned);

/* nsync__add_count - append the kind's number column as a JSON number, or
 * "null" when absent, empty or not a finite number. */
nsync_rc nsync__add_count(struct nsync_buf *b, const struct nsync_kind *kind,
			  struct json_object *properties);

/* Buffers the text columns of tape pages are built in, reused from page to
 * page: zero-initialise, release with nsync__text_scratch_free. */
struct nsync_text_scratch {
	struct nsync_buf joined; /* the pieces of a value's text, joined */
	struct nsync_buf clean;  /* the same, cleaned to storable UTF-8 */
};

void nsync__text_scratch_free(struct nsync_text_scratch *t);

/* nsync__add_title_scan, nsync__add_text_scan, nsync__add_count_scan - the
 * same columns from the properties object at node props of the scanner's
 * tape (pagescan.h), byte for byte what the functions above append for the
 * json-c tree of the same JSON. For a page whose hash the tape vouched for
 * (canonhash.h): no key appears twice in it. */
nsync_rc nsync__add_title_scan(struct nsync_buf *b, const struct nsync_scan *s, uint32_t props,
			       struct nsync_text_scratch *t, long *cleaned);
nsync_rc nsync__add_text_scan(struct nsync_buf *b, const struct nsync_kind *kind,
			      const struct nsync_scan *s, uint32_t props,
			      struct nsync_text_scratch *t, long *cleaned);
nsync_rc nsync__add_count_scan(struct nsync_buf *b, const struct nsync_kind *kind,
			       const struct nsync_scan *s, uint32_t props);

/* nsync__plain_text - append the plain text of a property value to b raw
 * (not escaped): title and rich_text pieces joined in order (plain_text, or
 * text.content when plain_text is missing), select/status names, numbers,
 * strings. Used by the mapping and by discovery (database titles). */
nsync_rc nsync__plain_text(struct nsync_buf *b, struct json_object *value);

/* nsync__rich_text_plain - append the plain text of a rich text array. */
nsync_rc nsync__rich_text_plain(struct nsync_buf *b, struct json_object *array);

#endif
