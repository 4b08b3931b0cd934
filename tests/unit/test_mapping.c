/*
 * test_mapping.c - unit tests for lib/mapping.c (with lib/text.c and
 * lib/buf.c).
 *
 * Covers: nsync__kind_find (case-insensitive, blanks trimmed, unknown ->
 * NULL) and the static data of the four kinds; for Characters, Worlds,
 * Stories and Chat Sessions, the exact JSON literals appended by
 * nsync__add_title, nsync__add_text and nsync__add_count on Notion-shaped
 * properties: description fallbacks (Description, Bio, Backstory; "" when
 * present but empty; null when absent), a transcript split into several
 * 2000-character rich-text items, Message Count (int, double truncated,
 * null, missing, out of range), the title fallback to the property of
 * type "title", the title cap (NSYNC_TITLE_MAX_CHARS characters and
 * NSYNC_TITLE_MAX_BYTES bytes, whole characters only, also after cleaning),
 * mention items (plain_text) and items without plain_text (text.content);
 * and nsync__plain_text on select, status, number, url and email values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "buf.h"
#include "mapping.h"
#include "text.h"

static struct json_object *parse(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

/* A Notion rich-text item of type text, as the API sends it. */
#define RT(s)                                                                                      \
	"{\"type\":\"text\",\"text\":{\"content\":\"" s "\",\"link\":null},\"annotations\":{"      \
	"\"bold\":false,\"italic\":false,\"strikethrough\":false,\"underline\":false,"             \
	"\"code\":false,\"color\":\"default\"},\"plain_text\":\"" s "\",\"href\":null}"
#define TITLE_PROP(name, s)                                                                        \
	"\"" name "\":{\"id\":\"title\",\"type\":\"title\",\"title\":[" RT(s) "]}"
#define TEXT_PROP(name, id, items)                                                                 \
	"\"" name "\":{\"id\":\"" id "\",\"type\":\"rich_text\",\"rich_text\":[" items "]}"

enum which { TITLE, TEXT, COUNT };

/* Append one column for kind and return the text (caller frees). */
static char *column(const char *kind_name, enum which w, struct json_object *props, long *cleaned)
{
	const struct nsync_kind *kind = nsync__kind_find(kind_name);
	struct nsync_buf b;
	nsync_rc rc = NSYNC_ERR_INTERNAL;
	char *s;

	assert_non_null(kind);
	nsync__buf_init(&b, 1 << 22);
	switch (w) {
	case TITLE:
		rc = nsync__add_title(&b, kind, props, cleaned);
		break;
	case TEXT:
		rc = nsync__add_text(&b, kind, props, cleaned);
		break;
	case COUNT:
		rc = nsync__add_count(&b, kind, props);
		break;
	}
	assert_int_equal(rc, NSYNC_OK);
	s = nsync__buf_take(&b);
	assert_non_null(s);
	return s;
}

static void check_column(const char *kind_name, enum which w, const char *props_text,
			 const char *want)
{
	struct json_object *props = parse(props_text);
	long cleaned = 0;
	char *got = column(kind_name, w, props, &cleaned);
	int same = strcmp(got, want) == 0;

	/* Free before asserting, so that a failure leaks nothing. */
	if (!same)
		print_error("got %s\nwant %s\n", got, want);
	free(got);
	json_object_put(props);
	assert_true(same);
	assert_int_equal(cleaned, 0);
}

/* "Other" is found by name but never by title, and it is the generic kind. */
static void generic_kind(void **state)
{
	const struct nsync_kind *other = nsync__kind_find("other");

	(void)state;
	assert_non_null(other);
	assert_ptr_equal(other, nsync__kind_generic());
	assert_true(other->generic);
	assert_string_equal(other->table, "notion_other_sync");
	assert_null(nsync__kind_for_title("Other"));
	assert_null(nsync__kind_for_title("My Cast"));
	assert_ptr_equal(nsync__kind_for_title(" stories "), nsync__kind_find("Stories"));
	assert_false(nsync__kind_find("Stories")->generic);
}

/* The static data of the four kinds, each found by its name in another
 * case or with blanks around it. */
static const struct kind_want {
	const char *lookup, *name, *table, *title_column, *text_column, *count_column, *count_prop;
} four_kinds[] = {
	{"Characters", "Characters", "notion_characters_sync", "name", "description", NULL, NULL},
	{" worlds ", "Worlds", "notion_worlds_sync", "name", "description", NULL, NULL},
	{"STORIES", "Stories", "notion_stories_sync", "title", "description", NULL, NULL},
	{"chat sessions", "Chat Sessions", "notion_chat_sessions_sync", "title", "transcript",
	 "message_count", "Message Count"},
};

/* Names that are no kind: near misses, other databases, blank and NULL. */
static const char *const not_kinds[] = {
	"Character", "Characterss", "Chat  Sessions", "ChatSessions", "Tasks", "", "   ", NULL,
};

/* got equals want, a string or NULL. */
static void assert_text_or_null(const char *got, const char *want)
{
	if (want)
		assert_string_equal(got, want);
	else
		assert_null(got);
}

static void kind_find(void **state)
{
	const struct nsync_kind *k;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(four_kinds) / sizeof(four_kinds[0]); i++) {
		const struct kind_want *w = &four_kinds[i];

		k = nsync__kind_find(w->lookup);
		assert_non_null(k);
		assert_string_equal(k->name, w->name);
		assert_string_equal(k->table, w->table);
		assert_string_equal(k->title_column, w->title_column);
		assert_string_equal(k->text_column, w->text_column);
		assert_text_or_null(k->count_column, w->count_column);
		assert_text_or_null(k->count_prop, w->count_prop);
	}
	k = nsync__kind_find("Characters");
	assert_ptr_equal(nsync__kind_find("characters"), k);
	assert_ptr_equal(nsync__kind_find("  CHARACTERS\t "), k);
	assert_ptr_equal(nsync__kind_find("\tcHaRaCtErS"), k);

	for (i = 0; i < sizeof(not_kinds) / sizeof(not_kinds[0]); i++)
		assert_null(nsync__kind_find(not_kinds[i]));
	assert_string_equal(nsync__kind_names(), "Characters, Worlds, Stories, Chat Sessions");
}

/* clang-format-14 garbles string literals pasted together with macros
 * (RT, TITLE_PROP, TEXT_PROP): these fixtures keep their hand layout. */
/* clang-format off */
/* A Characters page close to what Notion sends (the page object shape of Notion API 2025-09-03). */
static const char characters_page[] =
	"{" TITLE_PROP("Name", "Ada \\\"the Countess\\\" Lovelace") ","
	TEXT_PROP("Description", "HbZT", RT("Mathematician, ") "," RT("first programmer.")) ","
	TEXT_PROP("Bio", "b1", RT("not used")) ","
	"\"Age\":{\"id\":\"WPj%5E\",\"type\":\"number\",\"number\":36},"
	"\"Role\":{\"id\":\"Yc%3FJ\",\"type\":\"select\",\"select\":{\"id\":\"ou@_\","
	"\"name\":\"Protagonist\",\"color\":\"purple\"}},"
	"\"Portrait\":{\"id\":\"tJPS\",\"type\":\"files\",\"files\":[]}}";

static void characters_columns(void **state)
{
	(void)state;
	check_column("Characters", TITLE, characters_page, "\"Ada \\\"the Countess\\\" Lovelace\"");
	check_column("Characters", TEXT, characters_page,
		     "\"Mathematician, first programmer.\"");
	check_column("Characters", COUNT, characters_page, "null");
}

static void characters_description_fallbacks(void **state)
{
	(void)state;
	/* Description empty: Bio. */
	check_column("Characters", TEXT,
		     "{" TITLE_PROP("Name", "A") "," TEXT_PROP("Description", "d", "") ","
		     TEXT_PROP("Bio", "b", RT("Born in London.")) ","
		     TEXT_PROP("Backstory", "s", RT("unused")) "}",
		     "\"Born in London.\"");
	/* Description and Bio missing: Backstory. */
	check_column("Characters", TEXT,
		     "{" TITLE_PROP("Name", "A") ","
		     TEXT_PROP("Backstory", "s", RT("Once upon")) "}",
		     "\"Once upon\"");
	/* Description and Bio hold only empty pieces: Backstory. */
	check_column("Characters", TEXT,
		     "{" TEXT_PROP("Description", "d", RT("")) ","
		     TEXT_PROP("Bio", "b", RT("") "," RT("")) ","
		     TEXT_PROP("Backstory", "s", RT("x")) "}",
		     "\"x\"");
	/* Present but all empty: "". */
	check_column("Characters", TEXT,
		     "{" TITLE_PROP("Name", "A") "," TEXT_PROP("Description", "d", "") ","
		     TEXT_PROP("Backstory", "s", RT("")) "}",
		     "\"\"");
	check_column("Characters", TEXT, "{" TEXT_PROP("Bio", "b", "") "}", "\"\"");
	/* None present: null. */
	check_column("Characters", TEXT, "{" TITLE_PROP("Name", "A") "}", "null");
	check_column("Characters", TEXT, "{}", "null");
}

static void worlds_columns(void **state)
{
	static const char page[] =
		"{\"Era\":{\"id\":\"e\",\"type\":\"select\",\"select\":null},"
		TEXT_PROP("Concept/Premise", "c", RT("A world of\\nfloating islands\\t(tabs)")) ","
		TITLE_PROP("World Name", "Aerth\xC3\xA9") ","
		TEXT_PROP("Description", "d", RT("not the Worlds text column")) "}";

	(void)state;
	check_column("Worlds", TITLE, page, "\"Aerth\xC3\xA9\"");
	check_column("Worlds", TEXT, page, "\"A world of\\nfloating islands\\t(tabs)\"");
	check_column("Worlds", COUNT, page, "null");
	/* Worlds does not read Characters' fallbacks. */
	check_column("Worlds", TEXT, "{" TEXT_PROP("Bio", "b", RT("x")) "}", "null");
	check_column("Worlds", TEXT, "{" TEXT_PROP("Concept/Premise", "c", "") "}", "\"\"");
}

static void stories_columns(void **state)
{
	static const char page[] =
		"{" TITLE_PROP("Story Title", "The \\u00c9clair Affair") ","
		TEXT_PROP("Premise", "p", RT("Two rival ") "," RT("bakers.")) ","
		"\"Status\":{\"id\":\"Z%3ClH\",\"type\":\"status\",\"status\":{\"id\":\"539f\","
		"\"name\":\"Draft\",\"color\":\"blue\"}}}";

	(void)state;
	check_column("Stories", TITLE, page, "\"The \xC3\x89" "clair Affair\"");
	check_column("Stories", TEXT, page, "\"Two rival bakers.\"");
	check_column("Stories", COUNT, page, "null");
	check_column("Stories", TEXT, "{" TITLE_PROP("Story Title", "x") "}", "null");
}

/* Chat Sessions: a transcript longer than one rich-text item (Notion
 * splits text into items of at most 2000 characters). */
static void chat_sessions_transcript(void **state)
{
	struct json_object *props, *prop, *arr, *item, *text, *decoded;
	char *pieces[3], *want, *got;
	size_t sizes[3] = {2000, 2000, 1100}, i, j, total = 0;
	long cleaned = 0;

	(void)state;
	props = parse("{" TITLE_PROP("Session Title", "Session 7") ","
		      "\"Message Count\":{\"id\":\"mc\",\"type\":\"number\",\"number\":42}}");
	arr = json_object_new_array();
	for (i = 0; i < 3; i++) {
		pieces[i] = malloc(sizes[i] + 1);
		assert_non_null(pieces[i]);
		/* Each piece distinct, with line breaks and quotes to escape. */
		for (j = 0; j < sizes[i]; j++)
			if (j % 50 == 49)
				pieces[i][j] = '\n';
			else if (j % 50 == 10)
				pieces[i][j] = '"';
			else
				pieces[i][j] = (char)('A' + i + j % 7);
		pieces[i][sizes[i]] = '\0';
		item = json_object_new_object();
		text = json_object_new_object();
		json_object_object_add(text, "content", json_object_new_string(pieces[i]));
		json_object_object_add(item, "type", json_object_new_string("text"));
		json_object_object_add(item, "text", text);
		json_object_object_add(item, "plain_text", json_object_new_string(pieces[i]));
		json_object_array_add(arr, item);
		total += sizes[i];
	}
	prop = json_object_new_object();
	json_object_object_add(prop, "id", json_object_new_string("rt"));
	json_object_object_add(prop, "type", json_object_new_string("rich_text"));
	json_object_object_add(prop, "rich_text", arr);
	json_object_object_add(props, "Raw Transcript", prop);

	want = malloc(total + 1);
	assert_non_null(want);
	for (i = 0, j = 0; i < 3; j += sizes[i], i++)
		memcpy(want + j, pieces[i], sizes[i]);
	want[total] = '\0';
	assert_int_equal(total, 5100);

	got = column("Chat Sessions", TEXT, props, &cleaned);
	assert_int_equal(cleaned, 0);
	/* The literal decodes to the pieces joined in order. */
	decoded = parse(got);
	assert_true(json_object_is_type(decoded, json_type_string));
	assert_int_equal(json_object_get_string_len(decoded), total);
	assert_memory_equal(json_object_get_string(decoded), want, total);
	/* And it is escaped: one \n and one \" per 50 characters. */
	assert_int_equal(strlen(got), 2 + total + (40 + 40 + 22) + (40 + 40 + 22));
	json_object_put(decoded);
	free(got);

	got = column("Chat Sessions", TITLE, props, &cleaned);
	assert_string_equal(got, "\"Session 7\"");
	free(got);
	got = column("Chat Sessions", COUNT, props, &cleaned);
	assert_string_equal(got, "42");
	free(got);

	for (i = 0; i < 3; i++)
		free(pieces[i]);
	free(want);
	json_object_put(props);
}

#define COUNT_PAGE(v) "{\"Message Count\":{\"id\":\"mc\",\"type\":\"number\",\"number\":" v "}}"

static void message_count(void **state)
{
	(void)state;
	check_column("Chat Sessions", COUNT, COUNT_PAGE("12"), "12");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("0"), "0");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("12.7"), "12");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("-3"), "-3");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("2147483647"), "2147483647");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("null"), "null");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("1e12"), "null");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("1000000000000"), "null");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("2147483648"), "null");
	check_column("Chat Sessions", COUNT, COUNT_PAGE("\"12\""), "null");
	check_column("Chat Sessions", COUNT, "{}", "null");
	check_column("Chat Sessions", COUNT, "{\"Message Count\":null}", "null");
	check_column("Chat Sessions", COUNT, "{\"Messages\":{\"type\":\"number\",\"number\":5}}",
		     "null");
	/* Kinds without a count column: always null. */
	check_column("Characters", COUNT, COUNT_PAGE("12"), "null");
}

static void title_fallback_to_title_type(void **state)
{
	(void)state;
	/* "Name" missing: the property of type title ("Nom") is used. */
	check_column("Characters", TITLE,
		     "{" TEXT_PROP("Description", "d", RT("desc")) ","
		     TITLE_PROP("Nom", "Jeanne") "}",
		     "\"Jeanne\"");
	check_column("Stories", TITLE,
		     "{\"Premise\":{\"id\":\"p\",\"type\":\"rich_text\",\"rich_text\":[]},"
		     TITLE_PROP("Titre", "Le Conte") "}",
		     "\"Le Conte\"");
	/* By type, never by name: a rich_text called "Name" (or "World Name")
	 * beside the title property is not the title. */
	check_column("Characters", TITLE,
		     "{" TEXT_PROP("Name", "n", RT("wrong")) "," TITLE_PROP("Title", "right") "}",
		     "\"right\"");
	check_column("Worlds", TITLE,
		     "{" TEXT_PROP("World Name", "w", RT("wrong")) "," TITLE_PROP("Nom", "right") "}",
		     "\"right\"");
	check_column("Other", TITLE,
		     "{" TEXT_PROP("Name", "n", RT("wrong")) "," TITLE_PROP("Task", "right") "}",
		     "\"right\"");
	/* No title at all: "". */
	check_column("Characters", TITLE, "{" TEXT_PROP("Bio", "b", RT("x")) "}", "\"\"");
	check_column("Characters", TITLE, "{}", "\"\"");
	/* Title present but empty: "". */
	check_column("Characters", TITLE,
		     "{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[]}}", "\"\"");
}

/* A text column takes text types only; another type present gives "". */
static void text_column_types(void **state)
{
	(void)state;
	check_column("Characters", TEXT,
		     "{\"Description\":{\"id\":\"d\",\"type\":\"url\",\"url\":\"https://x.test/\"}}",
		     "\"https://x.test/\"");
	check_column("Characters", TEXT,
		     "{\"Description\":{\"id\":\"d\",\"type\":\"select\",\"select\":{\"name\":\"S\"}}}",
		     "\"\"");
	check_column("Characters", TEXT,
		     "{\"Description\":{\"id\":\"d\",\"type\":\"number\",\"number\":5}}", "\"\"");
	/* A select "Description" does not hide a rich_text "Bio". */
	check_column("Characters", TEXT,
		     "{\"Description\":{\"id\":\"d\",\"type\":\"select\",\"select\":{\"name\":\"S\"}},"
		     TEXT_PROP("Bio", "b", RT("bio")) "}",
		     "\"bio\"");
}
/* clang-format on */

/* Build a Characters page whose "Name" title holds nchars characters taken
 * in turn from cycle (each a UTF-8 string), split into rich-text items of
 * 2000 characters as Notion does, and check the title column: the longest
 * prefix of whole characters with at most max_chars characters and at most
 * max_bytes bytes (computed here independently). */
#define PAGE_START "{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":["
#define ITEM_START "{\"type\":\"text\",\"plain_text\":\""
#define ITEM_END "\"}"

static void check_title_cap(const char *const *cycle, size_t ncycle, size_t nchars,
			    size_t want_chars)
{
	struct nsync_buf page, want;
	struct json_object *props, *decoded;
	char *got;
	size_t i, nc;
	long cleaned = 0;

	nsync__buf_init(&page, 1 << 24);
	nsync__buf_init(&want, 1 << 22);
	assert_int_equal(nsync__buf_adds(&page, PAGE_START), NSYNC_OK);
	for (i = 0; i < nchars; i++) {
		if (i % 2000 == 0 && i > 0)
			assert_int_equal(nsync__buf_adds(&page, ITEM_END ","), NSYNC_OK);
		if (i % 2000 == 0)
			assert_int_equal(nsync__buf_adds(&page, ITEM_START), NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&page, cycle[i % ncycle]), NSYNC_OK);
		if (i < want_chars)
			assert_int_equal(nsync__buf_adds(&want, cycle[i % ncycle]), NSYNC_OK);
	}
	assert_int_equal(nsync__buf_adds(&page, ITEM_END "]}}"), NSYNC_OK);
	props = parse(page.data);

	got = column("Characters", TITLE, props, &cleaned);
	decoded = parse(got);
	assert_int_equal(json_object_get_string_len(decoded), want.len);
	assert_memory_equal(json_object_get_string(decoded), want.data, want.len);
	/* Count the characters of the result: bytes that are not 10xxxxxx. */
	for (i = 0, nc = 0; i < want.len; i++)
		if (((unsigned char)json_object_get_string(decoded)[i] & 0xC0) != 0x80)
			nc++;
	assert_int_equal(nc, want_chars);
	assert_true(nc <= NSYNC_TITLE_MAX_CHARS);
	assert_true(want.len <= NSYNC_TITLE_MAX_BYTES);
	assert_int_equal(cleaned, 0);
	json_object_put(decoded);
	free(got);

	/* The text column is not capped: the whole title as a description. */
	json_object_object_add(props, "Description",
			       json_object_get(json_object_object_get(props, "Name")));
	got = column("Characters", TEXT, props, &cleaned);
	decoded = parse(got);
	assert_int_equal(json_object_get_string_len(decoded),
			 page.len - strlen(PAGE_START) - strlen(ITEM_END "]}}") -
				 (nchars + 1999) / 2000 * strlen(ITEM_START) -
				 (nchars - 1) / 2000 * strlen(ITEM_END ","));
	json_object_put(decoded);
	free(got);

	json_object_put(props);
	nsync__buf_free(&page);
	nsync__buf_free(&want);
}

/* 70,000-character titles are cut at NSYNC_TITLE_MAX_CHARS characters or
 * NSYNC_TITLE_MAX_BYTES bytes, whichever comes first, never inside a
 * character. */
static void title_capped(void **state)
{
	static const char *const ascii[] = {"a", "b", "c"};
	static const char *const one_two[] = {"a", "\xC3\xA9"}; /* 1.5 bytes/char */
	static const char *const mixed[] = {"a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
	static const char *const emoji[] = {"\xF0\x9F\x98\x80", "\xF0\x9F\x8C\x8D"};

	(void)state;
	assert_int_equal(NSYNC_TITLE_MAX_CHARS, 1000);
	assert_int_equal(NSYNC_TITLE_MAX_BYTES, 2048);
	/* 1000 ASCII characters: the character cap. */
	check_title_cap(ascii, 3, 70000, 1000);
	/* "aé" repeated: 1000 characters are 1500 bytes, under the byte cap. */
	check_title_cap(one_two, 2, 70000, 1000);
	/* a é € 😀 repeated (10 bytes per 4 characters): 204 groups are 2040
	 * bytes, then a, é, € (2046 bytes); the emoji would cross 2048. */
	check_title_cap(mixed, 4, 70000, 204 * 4 + 3);
	/* 3000 emoji: 512 of 4 bytes fill exactly 2048 bytes. */
	check_title_cap(emoji, 2, 3000, 512);
	/* Short titles are untouched. */
	check_title_cap(mixed, 4, 99, 99);
}

/* The byte cap holds for the stored (cleaned) text too: invalid bytes
 * grow to 3-byte U+FFFD when cleaned, so a title of 1500 stray bytes must
 * still come out at most NSYNC_TITLE_MAX_BYTES long. */
static void title_cap_after_cleaning(void **state)
{
	struct json_object *props, *prop, *arr, *item, *decoded;
	char raw[1500];
	char *got;
	long cleaned = 0;
	size_t i, len;
	int only_fffd;

	(void)state;
	memset(raw, 0x80, sizeof(raw));
	item = json_object_new_object();
	json_object_object_add(item, "plain_text", json_object_new_string_len(raw, sizeof(raw)));
	arr = json_object_new_array();
	json_object_array_add(arr, item);
	prop = json_object_new_object();
	json_object_object_add(prop, "type", json_object_new_string("title"));
	json_object_object_add(prop, "title", arr);
	props = json_object_new_object();
	json_object_object_add(props, "Name", prop);

	got = column("Characters", TITLE, props, &cleaned);
	json_object_put(props);
	decoded = json_tokener_parse(got);
	free(got);
	assert_non_null(decoded);
	len = (size_t)json_object_get_string_len(decoded);
	/* Whatever is kept is U+FFFD only... */
	for (i = 0, only_fffd = len % 3 == 0; only_fffd && i < len; i += 3)
		only_fffd = memcmp(json_object_get_string(decoded) + i, "\xEF\xBF\xBD", 3) == 0;
	json_object_put(decoded);
	assert_int_equal(cleaned, 1);
	assert_true(only_fffd);
	/* ...and within the byte cap. */
	if (len > NSYNC_TITLE_MAX_BYTES)
		fail_msg("stored title is %zu bytes, cap is %d", len, NSYNC_TITLE_MAX_BYTES);
}

static void rich_text_items(void **state)
{
	(void)state;
	/* Mention and equation items: their plain_text (A2's "Notes"). */
	check_column("Characters", TEXT,
		     "{\"Description\":{\"id\":\"HbZT\",\"type\":\"rich_text\",\"rich_text\":["
		     "{\"type\":\"mention\",\"mention\":{\"type\":\"page\",\"page\":{\"id\":"
		     "\"dd456007-6c66-4bba-957e-ea501dcda3a6\"}},\"annotations\":{\"bold\":false},"
		     "\"plain_text\":\"Spec\","
		     "\"href\":\"https://www.notion.so/dd4560076c664bba957eea501dcda3a6\"},"
		     "{\"type\":\"equation\",\"equation\":{\"expression\":\"E=mc^2\"},"
		     "\"plain_text\":\" E=mc^2\",\"href\":null}]}}",
		     "\"Spec E=mc^2\"");
	/* plain_text wins over text.content. */
	check_column("Characters", TITLE,
		     "{\"Name\":{\"type\":\"title\",\"title\":[{\"type\":\"text\","
		     "\"text\":{\"content\":\"raw\"},\"plain_text\":\"plain\"}]}}",
		     "\"plain\"");
	/* An item without plain_text falls back to text.content. */
	check_column("Characters", TITLE,
		     "{\"Name\":{\"type\":\"title\",\"title\":[{\"type\":\"text\","
		     "\"text\":{\"content\":\"from \"}},{\"plain_text\":\"both\"}]}}",
		     "\"from both\"");
	/* Items with neither, or non-string values, add nothing. */
	check_column("Characters", TITLE,
		     "{\"Name\":{\"type\":\"title\",\"title\":[{\"type\":\"text\"},"
		     "{\"plain_text\":null},"
		     "{\"plain_text\":\"ok\"},{\"text\":{\"content\":5}}]}}",
		     "\"ok\"");
}

/* The text column uses the same fallback: a description made only of items
 * without plain_text (text.content only) is not empty. */
static void text_column_content_fallback(void **state)
{
	(void)state;
	check_column("Characters", TEXT,
		     "{\"Description\":{\"type\":\"rich_text\",\"rich_text\":[{\"type\":\"text\","
		     "\"text\":{\"content\":\"Hello\"}}]}}",
		     "\"Hello\"");
	check_column("Chat Sessions", TEXT,
		     "{\"Raw Transcript\":{\"type\":\"rich_text\","
		     "\"rich_text\":[{\"type\":\"text\","
		     "\"text\":{\"content\":\"User: hi\"}}]}}",
		     "\"User: hi\"");
}

static void text_is_cleaned(void **state)
{
	struct json_object *props;
	long cleaned = 5;
	char *got;

	(void)state;
	/* A NUL inside the text (\u0000 in Notion's JSON) is dropped and counted. */
	/* clang-format off */
	props = parse("{" TITLE_PROP("Name", "A\\u0000B") ","
		      TEXT_PROP("Bio", "b", RT("x\\u0000y")) "}");
	/* clang-format on */
	got = column("Characters", TITLE, props, &cleaned);
	assert_string_equal(got, "\"AB\"");
	assert_int_equal(cleaned, 6);
	free(got);
	got = column("Characters", TEXT, props, &cleaned);
	assert_string_equal(got, "\"xy\"");
	assert_int_equal(cleaned, 7);
	free(got);
	json_object_put(props);
}

static char *plain(const char *value_text)
{
	struct json_object *v = parse(value_text);
	struct nsync_buf b;

	nsync__buf_init(&b, 1 << 16);
	assert_int_equal(nsync__plain_text(&b, v), NSYNC_OK);
	json_object_put(v);
	return nsync__buf_take(&b);
}

static void check_plain(const char *value_text, const char *want)
{
	char *got = plain(value_text);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void plain_text_values(void **state)
{
	(void)state;
	check_plain("{\"id\":\"Yc%3FJ\",\"type\":\"select\",\"select\":{\"id\":\"ou@_\","
		    "\"name\":\"jQuery\",\"color\":\"purple\"}}",
		    "jQuery");
	check_plain("{\"id\":\"Z%3ClH\",\"type\":\"status\",\"status\":{\"id\":\"539f\","
		    "\"name\":\"In progress\",\"color\":\"blue\"}}",
		    "In progress");
	check_plain("{\"id\":\"WPj%5E\",\"type\":\"number\",\"number\":42}", "42");
	check_plain("{\"id\":\"WPj%5E\",\"type\":\"number\",\"number\":-2.5}", "-2.5");
	check_plain("{\"id\":\"bB\",\"type\":\"url\",\"url\":\"https://developers.notion.com/\"}",
		    "https://developers.notion.com/");
	check_plain("{\"id\":\"y\",\"type\":\"email\",\"email\":\"ada@makenotion.com\"}",
		    "ada@makenotion.com");
	check_plain("{\"id\":\"p\",\"type\":\"phone_number\",\"phone_number\":\"415-202-4776\"}",
		    "415-202-4776");
	check_plain("{\"type\":\"rich_text\",\"rich_text\":[" RT("a\\\"b") "," RT("\\\\c") "]}",
		    "a\"b\\c");
	/* Raw, not escaped. */
	check_plain("{\"type\":\"title\",\"title\":[{\"plain_text\":\"line\\nbreak\"}]}",
		    "line\nbreak");
	/* Empty or missing values add nothing. */
	check_plain("{\"type\":\"select\",\"select\":null}", "");
	check_plain("{\"type\":\"number\",\"number\":null}", "");
	check_plain("{\"type\":\"url\",\"url\":null}", "");
	check_plain("{\"type\":\"url\"}", "");
	check_plain("{\"url\":\"https://x\"}", "");
	check_plain("{}", "");
}

static void plain_text_appends(void **state)
{
	struct json_object *v = parse("{\"type\":\"select\",\"select\":{\"name\":\"B\"}}");
	struct nsync_buf b;

	(void)state;
	nsync__buf_init(&b, 64);
	assert_int_equal(nsync__buf_adds(&b, "A,"), NSYNC_OK);
	assert_int_equal(nsync__plain_text(&b, v), NSYNC_OK);
	assert_string_equal(b.data, "A,B");
	/* The buffer limit is reported. */
	nsync__buf_free(&b);
	nsync__buf_init(&b, 1);
	assert_int_equal(nsync__buf_adds(&b, "A"), NSYNC_OK);
	assert_int_equal(nsync__plain_text(&b, v), NSYNC_ERR_NOMEM);
	assert_string_equal(b.data, "A");
	nsync__buf_free(&b);
	json_object_put(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kind_find),
		cmocka_unit_test(generic_kind),
		cmocka_unit_test(characters_columns),
		cmocka_unit_test(characters_description_fallbacks),
		cmocka_unit_test(worlds_columns),
		cmocka_unit_test(stories_columns),
		cmocka_unit_test(chat_sessions_transcript),
		cmocka_unit_test(message_count),
		cmocka_unit_test(title_fallback_to_title_type),
		cmocka_unit_test(text_column_types),
		cmocka_unit_test(title_capped),
		cmocka_unit_test(title_cap_after_cleaning),
		cmocka_unit_test(rich_text_items),
		cmocka_unit_test(text_column_content_fallback),
		cmocka_unit_test(text_is_cleaned),
		cmocka_unit_test(plain_text_values),
		cmocka_unit_test(plain_text_appends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
