/*
 * test_jsonslice.c - unit tests for lib/jsonslice.c
 * (nsync__slice_results_member).
 *
 * Covers: on Notion-like list responses, each slice is exactly the text of
 * the element's own "properties" value (checked against the expected
 * substring and its offset), whatever the member order; strings holding
 * braces, brackets, \" and \\ and the word "properties", members named
 * like it ("x_properties"), nested "properties" deeper in an element, an
 * element without the member (len 0), a "results" key nested before the
 * top-level one, empty results, malformed input (-1) and more elements
 * than out[] can hold; duplicate "results" or "properties" members
 * (NSYNC_SLICE_DUPLICATE, because json-c keeps the last and the scanner
 * would take the first), whole elements (nsync__slice_results) and one
 * member of an object (nsync__slice_member).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "jsonslice.h"

/* Offset of the only occurrence of needle in hay; fails if absent or
 * present twice (so the expected offset is unambiguous). */
static size_t unique_offset(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);

	assert_non_null(p);
	assert_null(strstr(p + 1, needle));
	return (size_t)(p - hay);
}

/* Slice json and check each element against want[i] (NULL: absent). */
static void check_slices(const char *json, const char *const *want, size_t n)
{
	struct nsync_slice out[16];
	struct json_object *o;
	size_t i;
	long got;

	assert_true(n <= 16);
	/* The fixtures themselves must be valid JSON (the scanner's contract). */
	o = json_tokener_parse(json);
	assert_non_null(o);
	json_object_put(o);

	memset(out, 0xA5, sizeof(out));
	got = nsync__slice_results_member(json, strlen(json), "properties", out, 16);
	assert_int_equal(got, (long)n);
	for (i = 0; i < n; i++) {
		if (!want[i]) {
			assert_int_equal(out[i].len, 0);
			continue;
		}
		assert_int_equal(out[i].len, strlen(want[i]));
		assert_int_equal(out[i].off, unique_offset(json, want[i]));
		assert_memory_equal(json + out[i].off, want[i], out[i].len);
	}
}

#define P1 "{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[{\"plain_text\":\"Ada\"}]}}"
#define P2 "{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[{\"plain_text\":\"Bob\"}]}}"
#define P3 "{\"Count\":{\"id\":\"WPj%5E\",\"type\":\"number\",\"number\":42}}"

static void notion_list_basic(void **state)
{
	static const char json[] =
		"{\"object\":\"list\",\"results\":["
		"{\"object\":\"page\",\"id\":\"3aaabc1e-edcd-81d4-9469-e53a3b401d3d\","
		"\"created_time\":\"2026-07-27T13:47:00.000Z\","
		"\"parent\":{\"type\":\"data_source_id\"},"
		"\"properties\":" P1 ",\"url\":\"https://app.notion.com/p/row-2\","
		"\"archived\":false},"
		"{\"object\":\"page\",\"id\":\"3aaabc1e-edcd-81ff-ad83-e0bfc027dc47\","
		"\"properties\":" P2 ",\"url\":\"https://app.notion.com/p/row-1\"}"
		"],\"next_cursor\":null,\"has_more\":false}";
	static const char *const want[] = {P1, P2};

	(void)state;
	check_slices(json, want, 2);
}

static void key_order_varies(void **state)
{
	/* properties first, last, in the middle; whitespace everywhere. */
	static const char json[] =
		" {\n \"results\" : [\n"
		"  { \"properties\" : " P1 " , \"id\" : \"a\", \"archived\": true },\n"
		"  { \"id\": \"b\", \"icon\": null, \"properties\":\t" P2 "\n},\n"
		"  {\"id\":\"c\",\"properties\":" P3 ",\"in_trash\":false,"
		"\"cover\":{\"x\":[1,2]}}\n"
		" ] ,\"object\":\"list\"}\n";
	static const char *const want[] = {P1, P2, P3};

	(void)state;
	check_slices(json, want, 3);
}

static void tricky_strings(void **state)
{
	/* Values and keys hold braces, brackets, \" and \\ and the word
	 * "properties"; a member named "x_properties" comes first. */
#define T1                                                                                         \
	"{\"Name\":{\"type\":\"title\",\"title\":[{\"plain_text\":"                                \
	"\"}]} \\\"properties\\\": {[\"}]},"                                                       \
	"\"Path\":{\"type\":\"rich_text\",\"rich_text\":[{\"plain_text\":\"C:\\\\dir\\\\\"}]}}"
#define T2 "{\"Q\":{\"type\":\"url\",\"url\":\"\\\\\\\"}\"}}"
	static const char json[] =
		"{\"results\":["
		"{\"x_properties\":{\"a\":1},\"note\":\"\\\"properties\\\":{}\","
		"\"properties_x\":[\"properties\"],\"properties\":" T1 ",\"z\":\"]}\"},"
		"{\"id\":\"}{][\\\\\",\"\\\"properties\":1,\"properties\":" T2 "}"
		"]}";
	static const char *const want[] = {T1, T2};

	(void)state;
	check_slices(json, want, 2);
#undef T1
#undef T2
}

static void nested_properties_ignored(void **state)
{
	/* "properties" deeper inside an element (in parent, in a relation
	 * item) must not be taken for the element's own member. */
#define N1 "{\"Own\":{\"type\":\"number\",\"number\":1}}"
	static const char json[] =
		"{\"results\":["
		"{\"parent\":{\"properties\":{\"Wrong\":1}},\"rel\":[{\"properties\":{\"W2\":2}}],"
		"\"properties\":" N1 "},"
		"{\"parent\":{\"properties\":{\"Wrong3\":3}},\"id\":\"no-own-properties\"}"
		"]}";
	static const char *const want[] = {N1, NULL};

	(void)state;
	check_slices(json, want, 2);
#undef N1
}

static void element_without_properties(void **state)
{
	static const char json[] = "{\"results\":[{\"id\":\"a\"},{},{\"properties\":{}},"
				   "{\"properties\":null}]}";
	struct nsync_slice out[4];

	(void)state;
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(nsync__slice_results_member(json, strlen(json), "properties", out, 4), 4);
	assert_int_equal(out[0].len, 0);
	assert_int_equal(out[1].len, 0);
	assert_int_equal(out[2].len, 2);
	assert_memory_equal(json + out[2].off, "{}", 2);
	assert_int_equal(out[3].len, 4);
	assert_memory_equal(json + out[3].off, "null", 4);
}

static void top_level_results_only(void **state)
{
	/* A big "meta" object before the real results has its own
	 * "results" key (and properties) nested deeper. */
#define M1 "{\"Real\":{\"type\":\"checkbox\",\"checkbox\":true}}"
	static const char json[] =
		"{\"object\":\"list\",\"meta\":{\"a\":[1,2,{\"b\":\"c\"}],\"inner\":{\"results\":["
		"{\"properties\":{\"Fake\":1}},{\"properties\":{\"Fake\":2}},"
		"{\"properties\":{\"Fake\":3}}]},\"s\":\"\\\"results\\\":[\"},"
		"\"results\":[{\"properties\":" M1 "}],\"next_cursor\":\"abc\"}";
	static const char *const want[] = {M1};

	(void)state;
	check_slices(json, want, 1);
#undef M1
}

static void empty_results(void **state)
{
	struct nsync_slice out[2];
	static const char a[] = "{\"object\":\"list\",\"results\":[],\"next_cursor\":null,"
				"\"has_more\":false,\"type\":\"page_or_data_source\","
				"\"page_or_data_source\":{}}";
	static const char b[] = "{ \"results\" : [ \n ] }";

	(void)state;
	assert_int_equal(nsync__slice_results_member(a, strlen(a), "properties", out, 2), 0);
	assert_int_equal(nsync__slice_results_member(b, strlen(b), "properties", out, 2), 0);
	/* out may be NULL when max is 0. */
	assert_int_equal(nsync__slice_results_member(a, strlen(a), "properties", NULL, 0), 0);
}

static void malformed_input(void **state)
{
	static const char full[] = "{\"object\":\"list\",\"results\":[{\"id\":\"a\",\"properties\":"
				   "{\"N\":{\"t\":\"x\"}},\"url\":\"u\"},{\"properties\":{}}],"
				   "\"next_cursor\":null}";
	static const char *const bad[] = {
		"",
		"   ",
		"[]",
		"null",
		"\"results\"",
		"{}",
		"{\"object\":\"list\"}",
		"{\"object\":\"list\",\"next_cursor\":null}",
		"{\"results\":null}",
		"{\"results\":{}}",
		"{\"results\":\"[]\"}",
		"{\"results\":42}",
		"{\"results\":[1,2]}",
		"{\"results\":[\"x\"]}",
		"{\"results\":[{\"properties\":{\"a\":\"unterminated}]}",
		"{\"results\"",
		"{\"results\":",
		"{\"results\":[",
	};
	struct nsync_slice out[4];
	size_t i, cut, prefix_len;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(nsync__slice_results_member(bad[i], strlen(bad[i]), "properties",
							     out, 4),
				 -1);

	/* The whole text works... */
	assert_int_equal(nsync__slice_results_member(full, strlen(full), "properties", out, 4), 2);
	/* ...and every truncation that ends inside the results array fails.
	 * The array closes at the "]" before ",\"next_cursor\"". */
	prefix_len = (size_t)(strstr(full, "}],\"next_cursor\"") - full) + 1;
	for (cut = 0; cut <= prefix_len; cut++)
		assert_int_equal(nsync__slice_results_member(full, cut, "properties", out, 4), -1);
}

static void count_above_max(void **state)
{
	static const char json[] = "{\"results\":[{\"properties\":{\"i\":0}},"
				   "{\"properties\":{\"i\":1}},{\"properties\":{\"i\":2}},"
				   "{\"properties\":{\"i\":3}},{\"properties\":{\"i\":4}}]}";
	struct nsync_slice out[3];
	struct nsync_slice guard = {0x1234, 0x5678};
	struct {
		struct nsync_slice out[2];
		struct nsync_slice guard;
	} s;

	(void)state;
	s.guard = guard;
	assert_int_equal(nsync__slice_results_member(json, strlen(json), "properties", s.out, 2),
			 5);
	assert_int_equal(s.out[0].len, strlen("{\"i\":0}"));
	assert_memory_equal(json + s.out[0].off, "{\"i\":0}", s.out[0].len);
	assert_memory_equal(json + s.out[1].off, "{\"i\":1}", s.out[1].len);
	/* Nothing written past max. */
	assert_int_equal(s.guard.off, 0x1234);
	assert_int_equal(s.guard.len, 0x5678);

	assert_int_equal(nsync__slice_results_member(json, strlen(json), "properties", out, 3), 5);
	assert_memory_equal(json + out[2].off, "{\"i\":2}", 7);
	assert_int_equal(out[2].len, 7);
}

/* Other member names work too (the function is generic). */
static void other_key(void **state)
{
	static const char json[] = "{\"results\":[{\"id\":\"abc\",\"properties\":{\"id\":\"no\"}},"
				   "{\"properties\":{},\"id\":\"def\"}]}";
	struct nsync_slice out[2];

	(void)state;
	assert_int_equal(nsync__slice_results_member(json, strlen(json), "id", out, 2), 2);
	assert_int_equal(out[0].len, 5);
	assert_memory_equal(json + out[0].off, "\"abc\"", 5);
	assert_int_equal(out[0].off, unique_offset(json, "\"abc\""));
	assert_int_equal(out[1].len, 5);
	assert_int_equal(out[1].off, unique_offset(json, "\"def\""));
}

/* json-c keeps the last of two equal keys; the scanner must not quietly
 * take the first. Duplicates elsewhere (deeper, or other keys) are fine. */
static void duplicate_members(void **state)
{
	static const char two_results[] =
		"{\"results\":[{\"properties\":{\"a\":1}}],\"has_more\":false,"
		"\"results\":[{\"properties\":{\"b\":2}}]}";
	static const char two_props[] =
		"{\"results\":[{\"id\":\"x\",\"properties\":{\"a\":1},\"properties\":{\"b\":2}}]}";
	static const char deep_twice[] = "{\"results\":[{\"properties\":{\"a\":{\"k\":1,\"k\":2}},"
					 "\"id\":\"x\",\"id\":\"y\"}]}";
	struct nsync_slice out[4], one;

	(void)state;
	assert_int_equal(nsync__slice_results_member(two_results, strlen(two_results), "properties",
						     out, 4),
			 NSYNC_SLICE_DUPLICATE);
	assert_int_equal(nsync__slice_results_member(two_props, strlen(two_props), "properties",
						     out, 4),
			 NSYNC_SLICE_DUPLICATE);
	assert_int_equal(nsync__slice_member(two_results, strlen(two_results), "results", &one),
			 NSYNC_SLICE_DUPLICATE);
	assert_int_equal(nsync__slice_member(two_props, strlen(two_props), "results", &one), 1);
	assert_int_equal(nsync__slice_results_member(deep_twice, strlen(deep_twice), "properties",
						     out, 4),
			 1);
	assert_int_equal(nsync__slice_results(two_results, strlen(two_results), out, 4),
			 NSYNC_SLICE_DUPLICATE);
}

static void whole_elements(void **state)
{
	static const char json[] =
		"{\"object\":\"list\",\"results\":[ {\"id\":\"a\"} ,{\"id\":\"b\",\"x\":[1,{}]},3],"
		"\"has_more\":false}";
	struct nsync_slice out[2];

	(void)state;
	assert_int_equal(nsync__slice_results(json, strlen(json), out, 2), 3);
	assert_int_equal(out[0].len, strlen("{\"id\":\"a\"}"));
	assert_memory_equal(json + out[0].off, "{\"id\":\"a\"}", out[0].len);
	assert_memory_equal(json + out[1].off, "{\"id\":\"b\",\"x\":[1,{}]}", out[1].len);
	assert_int_equal(nsync__slice_results("[]", 2, out, 2), -1);
}

static void one_member(void **state)
{
	static const char json[] = "{\"a\":{\"id\":\"no\"},\"id\" : \"yes\",\"z\":[]}";
	struct nsync_slice s;

	(void)state;
	assert_int_equal(nsync__slice_member(json, strlen(json), "id", &s), 1);
	assert_int_equal(s.len, 5);
	assert_memory_equal(json + s.off, "\"yes\"", 5);
	assert_int_equal(nsync__slice_member(json, strlen(json), "missing", &s), 0);
	assert_int_equal(nsync__slice_member("{\"id\":", 6, "id", &s), -1);
	assert_int_equal(nsync__slice_member("{\"id\":1,\"id\":2}", 15, "id", &s),
			 NSYNC_SLICE_DUPLICATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(notion_list_basic),
		cmocka_unit_test(key_order_varies),
		cmocka_unit_test(tricky_strings),
		cmocka_unit_test(nested_properties_ignored),
		cmocka_unit_test(element_without_properties),
		cmocka_unit_test(top_level_results_only),
		cmocka_unit_test(empty_results),
		cmocka_unit_test(malformed_input),
		cmocka_unit_test(count_above_max),
		cmocka_unit_test(other_key),
		cmocka_unit_test(duplicate_members),
		cmocka_unit_test(whole_elements),
		cmocka_unit_test(one_member),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
