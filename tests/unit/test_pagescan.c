/*
 * test_pagescan.c - the scanner's tape against json-c's tree (lib/pagescan.c,
 * with lib/canonhash.c, lib/mapping.c, lib/complete.c, lib/jsonslice.c,
 * lib/text.c).
 *
 * The walk hashes and maps the pages of a query answer from the tape; the
 * stored hashes were made from json-c's tree. For every page compared here
 * the two must agree byte for byte: the content hash
 * (nsync__content_hash_scan vs nsync__content_hash_tree), the three mapped
 * columns of every kind with their count of repaired texts (nsync__add_*_scan
 * vs nsync__add_*), the truncation check, the json-c tree built from the
 * tape (nsync__scan_tree, printed and compared), the id/created_time/
 * last_edited_time strings and the raw slice of "properties" (vs
 * lib/jsonslice.c). A page the tape does not vouch for (a key twice) or
 * marks odd (\u0000, lone surrogates) is counted, and each test asserts how
 * many pages it compared in full, so that none passes by comparing nothing.
 *
 * Pages: every page and every other JSON object answered in the recorded
 * Notion cassettes of tests/fixtures/ (each object also hashed whole, as
 * if it were properties); adversarial properties (escapes, surrogate
 * pairs, invalid UTF-8, keys that sort differently bytewise than by
 * locale, numbers past int64 and uint64, -0, 1e400, 1e-400, doubles as
 * json-c keeps their text, deep nesting, objects of more than 32 members,
 * file objects, duplicate keys, truncated values); and what the scanner
 * must decline (not strict JSON, too deep, "results" twice). Run with a
 * directory argument, it compares every answer file in it instead
 * (tests/unit/test_pagescan_emulator.py passes the emulator's answers).
 */
#include <dirent.h>
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
#include "canonhash.h"
#include "complete.h"
#include "error.h"
#include "jsonslice.h"
#include "mapping.h"
#include "pagescan.h"

/* complete.c fetches values through this; never called here. */
nsync_rc nsync__notion_property_items(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				      const char *page_id, const char *property_id,
				      const char *cursor, struct nsync_query_page *page,
				      struct nsync_err *err)
{
	(void)n;
	(void)ctx;
	(void)page_id;
	(void)property_id;
	(void)cursor;
	(void)page;
	return nsync__err(err, NSYNC_ERR_INTERNAL, "not in this test");
}

void nsync__query_page_clear(struct nsync_query_page *page)
{
	(void)page;
}

/* The members notion.c asks the scanner for (enum nsync_result_member). */
static const char *const members[NSYNC_RESULT_MEMBERS] = {"id", "created_time", "last_edited_time",
							  "properties", NSYNC_UNPARSED_MEMBER};

/* What one comparison saw. */
struct tally {
	int answers;   /* answers read by both */
	int declined;  /* answers the scanner declined */
	int pages;     /* results compared in full */
	int odd;       /* results marked odd (left to json-c) */
	int twice;     /* results with a key twice (left to json-c) */
	int truncated; /* results compared whose properties may be truncated */
};

static struct nsync_scan scan;

/* json-c's parse, as notion.c makes it (depth 128). NULL when it fails. */
static struct json_object *tree_of(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(128);
	struct json_object *root;

	assert_non_null(tok);
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (root && json_tokener_get_parse_end(tok) < len &&
	    strspn(text + json_tokener_get_parse_end(tok), " \t\r\n") !=
		    len - json_tokener_get_parse_end(tok)) {
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tok);
	return root;
}

static void fail_with(const char *label, const char *what, const char *tree, const char *tape)
{
	print_error("%s: %s differs\n  json-c: %s\n  tape:   %s\n", label, what,
		    tree ? tree : "(null)", tape ? tape : "(null)");
	fail();
}

static void same_string(const char *label, const char *what, const char *tree, const char *tape)
{
	if ((tree == NULL) != (tape == NULL) || (tree && strcmp(tree, tape) != 0))
		fail_with(label, what, tree, tape);
}

static const char *string_member(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The three columns of kind, as the batch holds them, and the count of
 * repaired texts. */
static char *columns(const struct nsync_kind *kind, struct json_object *props, uint32_t props_node,
		     long *cleaned)
{
	static struct nsync_text_scratch text;
	struct nsync_buf b;
	nsync_rc rc;

	nsync__buf_init(&b, 1 << 26);
	*cleaned = 0;
	if (props) {
		rc = nsync__add_title(&b, kind, props, cleaned);
		assert_int_equal(nsync__buf_addc(&b, ','), NSYNC_OK);
		if (rc == NSYNC_OK)
			rc = nsync__add_text(&b, kind, props, cleaned);
		assert_int_equal(nsync__buf_addc(&b, ','), NSYNC_OK);
		if (rc == NSYNC_OK)
			rc = nsync__add_count(&b, kind, props);
	} else {
		rc = nsync__add_title_scan(&b, &scan, props_node, &text, cleaned);
		assert_int_equal(nsync__buf_addc(&b, ','), NSYNC_OK);
		if (rc == NSYNC_OK)
			rc = nsync__add_text_scan(&b, kind, &scan, props_node, &text, cleaned);
		assert_int_equal(nsync__buf_addc(&b, ','), NSYNC_OK);
		if (rc == NSYNC_OK)
			rc = nsync__add_count_scan(&b, kind, &scan, props_node);
	}
	assert_int_equal(rc, NSYNC_OK);
	return nsync__buf_take(&b);
}

/* The json-c tree built from node v is the one json-c's parser built:
 * equal, and printed the same. */
static void compare_trees(const char *label, struct json_object *value, uint32_t v)
{
	const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
	struct json_object *built = NULL;
	char *printed;

	assert_true(nsync__scan_tree(&scan, v, &built));
	printed = strdup(json_object_to_json_string_ext(built, flags));
	assert_non_null(printed);
	same_string(label, "tree printed", json_object_to_json_string_ext(value, flags), printed);
	if (!json_object_equal(value, built))
		fail_with(label, "tree", "", "");
	free(printed);
	json_object_put(built);
}

/* Hash (and, for an object, map) node v as properties: the tape against
 * the tree value. Returns 1 compared, 2 compared and may be truncated, 0
 * not vouched by the tape. */
static int compare_value(const char *label, struct json_object *value, uint32_t v,
			 const char *edited)
{
	char tree_hash[NSYNC_HASH_HEX], tape_hash[NSYNC_HASH_HEX];
	int vouched = -1;
	size_t k;

	assert_int_equal(nsync__content_hash_tree(value, edited, tree_hash, NULL), NSYNC_OK);
	assert_int_equal(nsync__content_hash_scan(&scan, v, edited, tape_hash, &vouched, NULL),
			 NSYNC_OK);
	if (!vouched)
		return 0;
	same_string(label, "content hash", tree_hash, tape_hash);
	if (v == NSYNC_NO_NODE || scan.nodes[v].type != NSYNC_NODE_OBJECT)
		return 1;
	compare_trees(label, value, v);
	for (k = 0; k < 5; k++) {
		const struct nsync_kind *kind = k < 4 ? nsync__kind_at(k) : nsync__kind_generic();
		long tree_cleaned, tape_cleaned;
		char *tree = columns(kind, value, 0, &tree_cleaned);
		char *tape = columns(kind, NULL, v, &tape_cleaned);
		char what[64];

		snprintf(what, sizeof(what), "columns of %s", kind->name);
		same_string(label, what, tree, tape);
		if (tree_cleaned != tape_cleaned)
			fail_with(label, "count of repaired texts", "", "");
		free(tree);
		free(tape);
	}
	if (nsync__props_may_be_truncated(value) != nsync__scan_props_may_be_truncated(&scan, v))
		fail_with(label, "truncation check", "", "");
	return nsync__props_may_be_truncated(value) ? 2 : 1;
}

/* Compare every result of the answer text (and, with whole, each result
 * hashed whole as well). Returns 1 when the scanner read it. */
static int compare_answer(const char *label, const char *text, size_t len, int whole,
			  struct tally *t)
{
	struct json_object *root = tree_of(text, len), *results = NULL;
	struct nsync_slice slices[128];
	int read = nsync__scan_answer(&scan, text, len, members, NSYNC_RESULT_MEMBERS);
	size_t i, n;
	long sliced;

	assert_int_not_equal(read, -1);
	if (!read) {
		t->declined++;
		json_object_put(root);
		return 0;
	}
	/* What the scanner reads, json-c reads too. */
	if (!root || !json_object_object_get_ex(root, "results", &results)) {
		print_error("%s: the scanner read what json-c does not\n", label);
		fail();
	}
	t->answers++;
	n = json_object_array_length(results);
	assert_int_equal(scan.n_results, n);
	sliced = nsync__slice_results_member(text, len, "properties", slices, 128);
	for (i = 0; i < n; i++) {
		const struct nsync_scan_result *r = &scan.results[i];
		struct json_object *page = json_object_array_get_idx(results, i), *props = NULL;
		uint32_t pn = r->member[NSYNC_RESULT_PROPS];
		char where[300];
		int compared;

		snprintf(where, sizeof(where), "%s, result %zu", label, i);
		if (r->odd) {
			t->odd++;
			continue;
		}
		if (r->twice) {
			t->twice++;
			continue;
		}
		same_string(where, "id", string_member(page, "id"), r->string[NSYNC_RESULT_ID]);
		same_string(where, "created_time", string_member(page, "created_time"),
			    r->string[NSYNC_RESULT_CREATED]);
		same_string(where, "last_edited_time", string_member(page, "last_edited_time"),
			    r->string[NSYNC_RESULT_EDITED]);
		json_object_object_get_ex(page, "properties", &props);
		if (pn != NSYNC_NO_NODE && scan.nodes[pn].type == NSYNC_NODE_OBJECT && i < 128 &&
		    sliced >= 0) {
			assert_int_equal(scan.nodes[pn].s - text, slices[i].off);
			assert_int_equal(scan.nodes[pn].span, slices[i].len);
		}
		compared = compare_value(where, props, pn, string_member(page, "last_edited_time"));
		if (compared == 2)
			t->truncated++;
		if (compared && whole)
			compared = compare_value(where, page, r->node, "t");
		if (compared)
			t->pages++;
		else
			t->twice++;
	}
	json_object_put(root);
	return 1;
}

/* {"object":"list","results":[{...,"properties":PROPS}],"has_more":false} */
static char *answer_with(const char *props)
{
	struct nsync_buf b;

	nsync__buf_init(&b, 1 << 26);
	assert_int_equal(
		nsync__buf_printf(&b,
				  "{\"object\":\"list\",\"results\":[{\"object\":\"page\",\"id\":"
				  "\"0c000000-0000-4000-8000-000000000001\",\"created_time\":"
				  "\"2026-01-01T00:00:00.000Z\",\"last_edited_time\":"
				  "\"2026-01-02T00:00:00.000Z\",\"properties\":%s}],"
				  "\"has_more\":false,\"next_cursor\":null}",
				  props),
		NSYNC_OK);
	return nsync__buf_take(&b);
}

/* props, as the one page of an answer: compared in full (or, with
 * expect_vouched 0, left to json-c). */
static void check_props(const char *props, int expect_vouched)
{
	char *answer = answer_with(props);
	struct tally t = {0, 0, 0, 0, 0, 0};

	assert_true(compare_answer(props, answer, strlen(answer), 1, &t));
	assert_int_equal(t.pages, expect_vouched ? 1 : 0);
	assert_int_equal(t.twice + t.odd, expect_vouched ? 0 : 1);
	free(answer);
}

/* --- the recorded Notion answers ----------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct nsync_buf b;
	char chunk[65536];
	size_t n;

	if (!f)
		return NULL;
	nsync__buf_init(&b, 1u << 30);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(nsync__buf_add(&b, chunk, n), NSYNC_OK);
	fclose(f);
	*len = b.len;
	return nsync__buf_take(&b);
}

/* Compare the recorded body: as the answer it is when it has results,
 * and wrapped as the one result of a list (every object answered). */
static void compare_body(const char *label, const char *body, struct tally *t)
{
	struct nsync_buf wrapped;

	if (strstr(body, "\"results\""))
		compare_answer(label, body, strlen(body), 1, t);
	nsync__buf_init(&wrapped, 1u << 30);
	assert_int_equal(nsync__buf_printf(&wrapped,
					   "{\"object\":\"list\",\"results\":[%s],"
					   "\"has_more\":false}",
					   body),
			 NSYNC_OK);
	if (body[strspn(body, " \t\r\n")] == '{')
		compare_answer(label, wrapped.data, wrapped.len, 1, t);
	nsync__buf_free(&wrapped);
}

static void compare_cassettes(const char *dir, struct tally *t)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", top ? top : ".", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		struct json_object *cassette, *interactions;
		size_t len, i;
		char *text;

		if (!strstr(e->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/tests/fixtures/%s/%s", top ? top : ".", dir,
			 e->d_name);
		text = read_file(path, &len);
		assert_non_null(text);
		cassette = tree_of(text, len);
		free(text);
		if (!json_object_object_get_ex(cassette, "interactions", &interactions)) {
			json_object_put(cassette);
			continue;
		}
		for (i = 0; i < json_object_array_length(interactions); i++) {
			const char *body = string_member(json_object_array_get_idx(interactions, i),
							 "response_body");
			char label[600];

			snprintf(label, sizeof(label), "%s #%zu", e->d_name, i);
			if (body)
				compare_body(label, body, t);
		}
		json_object_put(cassette);
	}
	closedir(d);
}

static void recorded_notion_answers(void **state)
{
	struct tally t = {0, 0, 0, 0, 0, 0};

	(void)state;
	compare_cassettes("notion-sdk-py", &t);
	compare_cassettes("notion_ruby_mapping", &t);
	print_message("# %d answers, %d results compared, %d declined\n", t.answers, t.pages,
		      t.declined);
	/* 55 pages, each twice (in its answer, and wrapped), and the 36
	 * other objects answered; nothing recorded is odd, repeats a key or
	 * is declined (the recorded error answers are objects too). */
	assert_true(t.pages >= 146);
	assert_int_equal(t.odd, 0);
	assert_int_equal(t.twice, 0);
	assert_int_equal(t.declined, 0);
}

/* --- adversarial properties ---------------------------------------------- */

#define RT(s)                                                                                      \
	"{\"type\":\"text\",\"text\":{\"content\":\"" s "\",\"link\":null},\"annotations\":{"      \
	"\"bold\":false,\"color\":\"default\"},\"plain_text\":\"" s "\",\"href\":null}"
#define TITLE(s) "\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[" RT(s) "]}"
#define TEXT(name, s) "\"" name "\":{\"id\":\"d\",\"type\":\"rich_text\",\"rich_text\":[" RT(s) "]}"

/* The tables of cases below are laid out by hand: clang-format-14 breaks
 * string literals joined with macros in awkward places. */
/* clang-format off */
static void escapes_and_unicode(void **state)
{
	static const char *const cases[] = {
		"{" TITLE("q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t") "," TEXT("Description", "x") "}",
		"{" TITLE("\\u00e9\\u00E9\\u20ac\\u0041\\u007f\\u0080\\u07ff\\u0800\\uffff") "}",
		/* Surrogate pairs, lower and upper case. */
		"{" TITLE("\\ud83d\\ude00 \\uD83D\\uDE00 \\udbff\\udfff \\ud800\\udc00") "}",
		/* Raw UTF-8, and bytes that are not UTF-8: json-c keeps them. */
		"{" TITLE("caf\xc3\xa9 \xf0\x9f\x98\x80") "," TEXT("Description", "\xff\xfe") "}",
		"{" TITLE("\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82") "," TEXT("Bio", "\x80") "}",
		/* An escaped control character, and one only escapes may carry. */
		"{" TITLE("\\u0001\\u001f") "," TEXT("Premise", "a\\u0009b") "}",
		/* Escaped keys: json-c decodes them. */
		"{\"N\\u0061me\":{\"id\":\"title\",\"typ\\u0065\":\"title\",\"title\":[]},"
		"\"Descr\\u0069ption\":{\"type\":\"rich_text\",\"rich_text\":[" RT("d") "]}}",
		"{\"\":{\"\":\"\"}}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_props(cases[i], 1);
}
/* clang-format on */

static void nul_and_lone_surrogates_are_left_to_json_c(void **state)
{
	static const char *const cases[] = {
		"{" TITLE("a\\u0000b") "}",
		"{\"Na\\u0000me\":{\"type\":\"title\",\"title\":[]}}",
		"{" TITLE("\\ud800") "}",
		"{" TITLE("\\udc00x") "}",
		"{" TITLE("\\ud800\\u0041") "}",
		"{" TITLE("\\ud83d\\ud83d") "}",
		"{" TITLE("\\ude00\\ud83d") "}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *answer = answer_with(cases[i]);
		assert_int_equal(nsync__scan_answer(&scan, answer, strlen(answer), members,
						    NSYNC_RESULT_MEMBERS),
				 1);
		assert_int_equal(scan.n_results, 1);
		assert_true(scan.results[0].odd);
		free(answer);
	}
}

/* Keys in an order where bytewise, ASCII-case and locale orders differ. */
static void keys_sort_bytewise(void **state)
{
	(void)state;
	check_props("{\"b\":1,\"B\":2,\"a\":3,\"_\":4,\"Z\":5,\"\xc3\xa9\":6,\"e\":7,\"aa\":8,"
		    "\"a b\":9,\"a-b\":10,\"ab\":11,\"\\u00e8\":12,\"\xef\xbc\xa1\":13,\"~\":14,"
		    "\"\":15,\"a\\u0001\":16,\"\x7f\":17}",
		    1);
	check_props("{\"z\":{\"b\":[{\"y\":1,\"x\":2}],\"a\":{\"d\":null,\"c\":true}}}", 1);
}

/* clang-format off */
static void numbers_as_json_c_keeps_them(void **state)
{
	static const char *const numbers[] = {
		"0", "-0", "7", "-7",
		/* Integers at and past int64 and uint64. */
		"123456789012345678", "-123456789012345678", "1234567890123456789",
		"-1234567890123456789", "9223372036854775807", "-9223372036854775808",
		"9223372036854775808", "-9223372036854775809", "12345678901234567890",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999",
		"-99999999999999999999999",
		/* Doubles, out of range too. */
		"0.0", "-0.0", "1.0", "1.50", "0.1", "1e2", "1E2", "1e+2", "1e-2", "-1.5e-3",
		"1.7976931348623157e308", "1e400", "-1e400", "1e-400", "5e-324",
		"2.2250738585072014e-308", "123456789.123456789", "0.30000000000000004", "1e22",
		"1e21", "100000000000000000000000.0",
		/* Around the count column's range. */
		"2147483647", "2147483648", "-2147483648", "-2147483649", "2147483647.9",
		"-2147483648.9", "3.99",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		const char *n = numbers[i];
		char props[1024];
		/* As a value, as the count column, as a title's own value (plain
		 * text of a number), as a text property's, as a relation's has_more. */
		snprintf(props, sizeof(props),
			 "{\"v\":[%s,{\"w\":%s}],"
			 "\"Message Count\":{\"id\":\"n\",\"type\":\"number\",\"number\":%s},"
			 "\"Name\":{\"type\":\"title\",\"title\":%s},"
			 "\"Description\":{\"type\":\"number\",\"number\":%s},"
			 "\"R\":{\"type\":\"relation\",\"relation\":[],\"has_more\":%s}}",
			 n, n, n, n, n, n);
		check_props(props, 1);
	}
}
/* clang-format on */

static void literals_and_empties(void **state)
{
	static const char *const has_more[] = {"true", "false", "null", "\"\"", "\"no\"", "{}",
					       "[]",   "[1]",   "0",    "1",    "0.0",    "-0"};
	size_t i;

	(void)state;
	check_props("{}", 1);
	check_props("{\"a\":[],\"b\":{},\"c\":\"\",\"d\":[[],[{}]],\"e\":[true,false,null]}", 1);
	/* One relation a page: the truncation check is of the whole page. */
	for (i = 0; i < sizeof(has_more) / sizeof(has_more[0]); i++) {
		char props[200];
		snprintf(props, sizeof(props),
			 "{\"R\":{\"type\":\"relation\",\"relation\":[],\"has_more\":%s}}",
			 has_more[i]);
		check_props(props, 1);
	}
	check_props("{\"Name\":null,\"Description\":null,\"Message Count\":null}", 1);
	check_props("{\"Message Count\":{\"number\":null},\"Description\":{\"type\":null}}", 1);
	check_props("{\"Message Count\":{\"number\":\"3\"},\"Name\":{\"type\":\"title\"}}", 1);
}

/* Pretty-printed text: every place JSON allows whitespace. */
static void whitespace(void **state)
{
	static const char answer[] =
		" \r\n\t{ \"object\" : \"list\" ,\n\t\"results\" : [\n  { \"id\" : "
		"\"0c000000-0000-4000-8000-000000000002\" , \"last_edited_time\"\t:\r"
		"\"2026-01-02T00:00:00.000Z\" ,\n \"properties\" : {\n \"Name\" : { \"type\" : "
		"\"title\" , \"title\" : [ { \"plain_text\" : \"x\" } , { } ] } ,\n \"n\" : [ 1 , "
		"-2.5 , true , false , null , { } , [ ] ] } }\n , { \"properties\" : { } }\n ] , "
		"\"has_more\" : false } \n\r\t ";
	struct tally t = {0, 0, 0, 0, 0, 0};

	(void)state;
	assert_true(compare_answer("whitespace", answer, strlen(answer), 1, &t));
	assert_int_equal(t.pages, 2);
}

static void deep_nesting(void **state)
{
	struct nsync_buf props;
	struct tally t = {0, 0, 0, 0, 0, 0};
	char *answer;
	int levels;

	(void)state;
	/* answer, results, result, properties: 4 levels before the value. */
	for (levels = 1; levels <= 70; levels++) {
		int i;
		nsync__buf_init(&props, 1 << 20);
		assert_int_equal(nsync__buf_adds(&props, "{\"d\":"), NSYNC_OK);
		for (i = 0; i < levels; i++)
			assert_int_equal(nsync__buf_adds(&props, i % 2 ? "[" : "{\"k\":"),
					 NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&props, "\"x\""), NSYNC_OK);
		for (i = levels - 1; i >= 0; i--)
			assert_int_equal(nsync__buf_adds(&props, i % 2 ? "]" : "}"), NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&props, "}"), NSYNC_OK);
		answer = answer_with(props.data);
		compare_answer("deep", answer, strlen(answer), 1, &t);
		free(answer);
		nsync__buf_free(&props);
	}
	/* Up to NSYNC_SCAN_MAX_DEPTH levels in all: read; deeper: declined. */
	assert_int_equal(t.pages, NSYNC_SCAN_MAX_DEPTH - 4);
	assert_int_equal(t.declined, 70 - (NSYNC_SCAN_MAX_DEPTH - 4));
}

static void large_objects(void **state)
{
	struct nsync_buf props;
	int i, n;

	(void)state;
	/* More members than the hash sorts on its stack, in descending order. */
	for (n = 31; n <= 100; n += 23) {
		nsync__buf_init(&props, 1 << 20);
		for (i = n; i > 0; i--)
			assert_int_equal(nsync__buf_printf(&props,
							   "%c\"k%03d\":{\"b\":%d,\"a\":[%d]}",
							   i == n ? '{' : ',', i, i, i),
					 NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&props, "}"), NSYNC_OK);
		check_props(props.data, 1);
		nsync__buf_free(&props);
	}
}

#define S3 "https://prod-files-secure.s3.us-west-2.amazonaws.com/ws/f/a.png"

/* clang-format off */
static void file_objects(void **state)
{
	(void)state;
	check_props("{\"F\":{\"type\":\"files\",\"files\":["
		    "{\"name\":\"a\",\"type\":\"file\","
		    "\"file\":{\"url\":\"" S3 "?X-Amz-Signature=1\",\"expiry_time\":\"2026\"}},"
		    "{\"name\":\"b\",\"type\":\"external\",\"external\":{\"url\":\"https://e/?v=1\"}},"
		    "{\"type\":\"file\",\"file\":{\"url\":\"no-query\"}},"
		    "{\"type\":\"file\",\"file\":{\"url\":3,\"expiry_time\":null}},"
		    "{\"type\":\"file\",\"file\":[{\"url\":\"u?1\"}]},"
		    "{\"type\":\"files\",\"file\":{\"url\":\"u?2\",\"expiry_time\":\"x\"}},"
		    "{\"type\":\"file\",\"file\":{\"url\":\"?\",\"inner\":{\"url\":\"u?3\"}}}]},"
		    "\"file\":{\"url\":\"u?4\",\"expiry_time\":\"y\"},"
		    "\"type\":\"file\"}",
		    1);
}
/* clang-format on */

/* Title, text and count columns over the shapes Notion sends and a few it
 * does not. */
/* clang-format off */
static void mapped_columns(void **state)
{
	(void)state;
	check_props("{\"Bio\":{\"type\":\"rich_text\",\"rich_text\":[]},"
		    "\"Backstory\":{\"type\":\"rich_text\",\"rich_text\":[" RT("back") "]},"
		    "\"Description\":{\"type\":\"rich_text\",\"rich_text\":[{\"plain_text\":\"\"}]},"
		    "\"T\":{\"type\":\"title\",\"title\":[{\"text\":{\"content\":\"no plain\"}},"
		    "{\"plain_text\":null,\"text\":{\"content\":\"skipped\"}},7,\"s\",null,"
		    "{\"text\":null},{\"text\":{\"content\":5}}," RT("end") "]},"
		    "\"Name\":{\"type\":\"title\",\"title\":[" RT("second title") "]}}",
		    1);
	check_props("{\"Description\":{\"type\":\"url\",\"url\":\"https://x\"},"
		    "\"Concept/Premise\":{\"type\":\"email\",\"email\":\"\"},"
		    "\"Premise\":{\"type\":\"phone_number\",\"phone_number\":\"+1\"},"
		    "\"Raw Transcript\":{\"type\":\"select\",\"select\":{\"name\":\"s\"}},"
		    "\"Message Count\":{\"type\":\"number\",\"number\":12.9}}",
		    1);
	check_props("{\"Name\":{\"type\":\"title\",\"title\":{\"name\":\"an object\"}}}", 1);
	check_props("{\"Name\":{\"type\":\"title\",\"title\":\"a string\"}}", 1);
	check_props("{\"Name\":{\"type\":\"title\",\"title\":{\"name\":7}}}", 1);
	check_props("{\"Name\":{\"type\":\"\",\"\":\"x\"},\"N\":{\"type\":\"title\",\"title\":true}}",
		    1);
	check_props("{\"Raw Transcript\":{\"type\":\"rich_text\",\"rich_text\":["
		    RT("a") "," RT("\\n b") "]},"
		    "\"Description\":{\"type\":\"title\",\"title\":[]},"
		    "\"Bio\":{\"type\":\"rich_text\",\"rich_text\":\"\"}}",
		    1);
}
/* clang-format on */

/* At and around Notion's 25 references. */
static void truncated_values(void **state)
{
	static const char *const mentioned[] = {"user", "page", "database", "data_source"};
	struct nsync_buf props;
	int n, i;

	(void)state;
	for (n = 24; n <= 26; n++) {
		nsync__buf_init(&props, 1 << 20);
		assert_int_equal(nsync__buf_adds(&props, "{\"P\":{\"id\":\"p\",\"type\":\"people\","
							 "\"people\":["),
				 NSYNC_OK);
		for (i = 0; i < n; i++)
			assert_int_equal(nsync__buf_printf(&props, "%s{\"object\":\"user\"}",
							   i ? "," : ""),
					 NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&props, "]},\"N\":{\"type\":\"rich_text\","
							 "\"rich_text\":["),
				 NSYNC_OK);
		for (i = 0; i < n; i++)
			assert_int_equal(nsync__buf_printf(&props,
							   "%s{\"type\":\"mention\",\"mention\":"
							   "{\"type\":\"%s\"}}",
							   i ? "," : "", mentioned[i % 4]),
					 NSYNC_OK);
		assert_int_equal(nsync__buf_adds(&props, "]}}"), NSYNC_OK);
		check_props(props.data, 1);
		nsync__buf_free(&props);
	}
	check_props("{\"R\":{\"type\":\"relation\",\"relation\":[{\"id\":\"a\"}],"
		    "\"has_more\":true}}",
		    1);
	check_props("{\"R\":{\"type\":\"relation\",\"relation\":{},\"has_more\":true}}", 1);
	check_props("{\"R\":{\"type\":\"relation\",\"has_more\":true}}", 1);
	check_props("{\"T\":{\"type\":\"title\",\"title\":[{\"type\":\"mention\",\"mention\":null},"
		    "{\"type\":\"mention\"},{\"mention\":{\"type\":\"user\"}}]}}",
		    1);
}

/* json-c keeps the last of a key given twice; the tape leaves such a page
 * to json-c, and so does notion.c for a result with one of its members
 * twice. */
static void duplicate_keys_are_left_to_json_c(void **state)
{
	static const char twice_results[] = "{\"results\":[],\"results\":[]}";
	static const char twice_props[] =
		"{\"results\":[{\"id\":\"a\",\"properties\":{},\"properties\":{\"a\":1}}]}";

	(void)state;
	check_props("{\"a\":1,\"a\":2}", 0);
	check_props("{\"a\":{\"k\":1,\"b\":2,\"k\":3}}", 0);
	check_props("{\"a\":[{\"k\":1,\"k\":1}]}", 0);
	assert_int_equal(nsync__scan_answer(&scan, twice_results, strlen(twice_results), members,
					    NSYNC_RESULT_MEMBERS),
			 0);
	assert_int_equal(nsync__scan_answer(&scan, twice_props, strlen(twice_props), members,
					    NSYNC_RESULT_MEMBERS),
			 1);
	assert_true(scan.results[0].twice);
}

/* Text json-c reads in its own way (or not at all): declined. */
/* clang-format off */
static void not_strict_json_is_declined(void **state)
{
	static const char *const props[] = {
		"{'a':1}", "{\"a\":'x'}", "{\"a\":1,}", "{\"a\":[1,]}", "{\"a\":NaN}",
		"{\"a\":Infinity}", "{\"a\":-Infinity}", "{\"a\":TRUE}", "{\"a\":Null}",
		"{\"a\":01}", "{\"a\":+1}", "{\"a\":.5}", "{\"a\":1.}", "{\"a\":1e}", "{\"a\":0x10}",
		"{\"a\":-}", "{\"a\":\"raw\ttab\"}", "{\"a\":\"raw\nnewline\"}", "{\"a\":\"\\x\"}",
		"{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}", "{/* c */\"a\":1}", "{\"a\":1 /* c */}",
		"{\"a\" 1}", "{\"a\":1 \"b\":2}", "{a:1}", "{\"a\":[1 2]}", "{\"a\":\"x\"\"y\"}",
		"{\"a\":truex}", "{\"a\":\v1}", "{\"a\":\f1}",
	};
	static const char *const answers[] = {
		"", " ", "[]", "{}", "{\"results\":{}}", "{\"results\":[1]}", "{\"results\":[[]]}",
		"{\"results\":[{}]} x", "{\"results\":[{}]}{}", "\xef\xbb\xbf{\"results\":[]}",
		"{\"results\":[{}]", "{\"results\":[{}],}", "{\"results\":[{\"a\":\"unterminated}]}",
	};
	struct tally t = {0, 0, 0, 0, 0, 0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
		char *answer = answer_with(props[i]);
		compare_answer(props[i], answer, strlen(answer), 1, &t);
		free(answer);
	}
	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		compare_answer(answers[i], answers[i], strlen(answers[i]), 1, &t);
	assert_int_equal(t.answers, 0);
	assert_int_equal(t.declined,
			 sizeof(props) / sizeof(props[0]) + sizeof(answers) / sizeof(answers[0]));
}
/* clang-format on */

/* Every element of "results" is recorded, with its members as json-c
 * gives them; a "results" deeper in is no list of results. */
static void results_and_members(void **state)
{
	static const char answer[] =
		"{\"meta\":{\"results\":[{\"id\":\"fake\"}]},\"results\":[{\"id\":\"a\\u0062c\","
		"\"created_time\":1,\"last_edited_time\":null,\"nsync_unparsed\":\"why\"},{},"
		"{\"properties\":[],\"id\":\"x\",\"id2\":\"y\"}],\"next_cursor\":\"c\"}";
	const struct nsync_scan_result *r;

	(void)state;
	assert_int_equal(nsync__scan_answer(&scan, answer, strlen(answer), members,
					    NSYNC_RESULT_MEMBERS),
			 1);
	assert_int_equal(scan.n_results, 3);
	r = &scan.results[0];
	assert_string_equal(r->string[NSYNC_RESULT_ID], "abc");
	assert_null(r->string[NSYNC_RESULT_CREATED]);
	assert_int_equal(scan.nodes[r->member[NSYNC_RESULT_CREATED]].type, NSYNC_NODE_INT);
	assert_int_equal(scan.nodes[r->member[NSYNC_RESULT_EDITED]].type, NSYNC_NODE_NULL);
	assert_string_equal(r->string[NSYNC_RESULT_UNPARSED], "why");
	assert_int_equal(r->member[NSYNC_RESULT_PROPS], NSYNC_NO_NODE);
	assert_int_equal(scan.results[1].member[NSYNC_RESULT_ID], NSYNC_NO_NODE);
	r = &scan.results[2];
	assert_string_equal(r->string[NSYNC_RESULT_ID], "x");
	assert_int_equal(scan.nodes[r->member[NSYNC_RESULT_PROPS]].type, NSYNC_NODE_ARRAY);
	assert_false(r->twice);
	/* The "results" text, for the envelope. */
	assert_int_equal(answer[scan.results_off], '[');
	assert_int_equal(answer[scan.results_off + scan.results_len - 1], ']');
	assert_int_equal(answer[scan.results_off + scan.results_len], ',');
}

/* --- answers from a directory -------------------------------------------- */

static const char *answers_dir;

static void answers_in_directory(void **state)
{
	struct tally t = {0, 0, 0, 0, 0, 0};
	char path[4096];
	struct dirent *e;
	DIR *d = opendir(answers_dir);
	int files = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t len;
		char *text;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", answers_dir, e->d_name);
		text = read_file(path, &len);
		assert_non_null(text);
		assert_true(compare_answer(e->d_name, text, len, 0, &t));
		files++;
		free(text);
	}
	closedir(d);
	print_message("# %d answers, %d pages compared, %d of them may be truncated\n", files,
		      t.pages, t.truncated);
	/* Every page of every answer, each vouched for by the tape. */
	assert_true(files > 0);
	assert_int_equal(t.declined + t.odd + t.twice, 0);
	assert_true(t.pages > 0);
}

static int teardown(void **state)
{
	(void)state;
	nsync__scan_free(&scan);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(recorded_notion_answers),
		cmocka_unit_test(escapes_and_unicode),
		cmocka_unit_test(nul_and_lone_surrogates_are_left_to_json_c),
		cmocka_unit_test(keys_sort_bytewise),
		cmocka_unit_test(numbers_as_json_c_keeps_them),
		cmocka_unit_test(literals_and_empties),
		cmocka_unit_test(whitespace),
		cmocka_unit_test(deep_nesting),
		cmocka_unit_test(large_objects),
		cmocka_unit_test(file_objects),
		cmocka_unit_test(mapped_columns),
		cmocka_unit_test(truncated_values),
		cmocka_unit_test(duplicate_keys_are_left_to_json_c),
		cmocka_unit_test(not_strict_json_is_declined),
		cmocka_unit_test(results_and_members),
	};
	const struct CMUnitTest from_directory[] = {
		cmocka_unit_test(answers_in_directory),
	};

	if (argc > 1) {
		answers_dir = argv[1];
		return cmocka_run_group_tests(from_directory, NULL, teardown);
	}
	return cmocka_run_group_tests(tests, NULL, teardown);
}
