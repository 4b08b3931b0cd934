/*
 * test_canonhash.c - unit tests for lib/canonhash.c (the content hash).
 *
 * Covers: the hash is 32 lowercase hex digits; key order does not matter
 * at any nesting level (including objects of more than 32 members, which
 * take the heap path); array order, values, types (1 vs "1"), null vs
 * missing and last_edited_time all matter; Notion-hosted file objects
 * ignore expiry_time and the query string of url, but not the path, and
 * nothing outside a "file" member is normalised. Known-answer tests
 * rebuild the canonical byte stream described in canonhash.c by hand
 * (tag byte, 32-bit little-endian length, bytes; '{' '}' '[' ']' 'n' 't'
 * 'f' bare) and hash it with OpenSSL's MD5 here in the test. Every hash of
 * a JSON text is made twice, from json-c's tree (nsync__content_hash_tree)
 * and from the scanner's tape (nsync__content_hash_scan), and the two must
 * be equal (tests/unit/test_pagescan.c compares them on many more pages).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "canonhash.h"
#include "pagescan.h"

static struct json_object *parse(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

/* The hash of a JSON text (properties) and last_edited, from json-c's tree;
 * the same hash from the scanner's tape of an answer holding it. */
static void hash_text(const char *props, const char *last_edited, char hex[NSYNC_HASH_HEX])
{
	static const char *const members[] = {"properties"};
	struct json_object *o = props ? parse(props) : NULL;
	char answer[4096], tape_hex[NSYNC_HASH_HEX];
	struct nsync_scan scan = {0};
	struct nsync_err err;
	int vouched = 0;

	memset(&err, 0, sizeof(err));
	assert_int_equal(nsync__content_hash_tree(o, last_edited, hex, &err), NSYNC_OK);
	json_object_put(o);
	assert_true((size_t)snprintf(answer, sizeof(answer), "{\"results\":[{\"properties\":%s}]}",
				     props ? props : "null") < sizeof(answer));
	assert_int_equal(nsync__scan_answer(&scan, answer, strlen(answer), members, 1), 1);
	assert_int_equal(nsync__content_hash_scan(&scan, scan.results[0].member[0], last_edited,
						  tape_hex, &vouched, &err),
			 NSYNC_OK);
	assert_true(vouched);
	assert_string_equal(tape_hex, hex);
	nsync__scan_free(&scan);
}

static void assert_same(const char *a, const char *b)
{
	char ha[NSYNC_HASH_HEX], hb[NSYNC_HASH_HEX];

	hash_text(a, "2026-01-01T00:00:00.000Z", ha);
	hash_text(b, "2026-01-01T00:00:00.000Z", hb);
	assert_string_equal(ha, hb);
}

static void assert_differ(const char *a, const char *b)
{
	char ha[NSYNC_HASH_HEX], hb[NSYNC_HASH_HEX];

	hash_text(a, "2026-01-01T00:00:00.000Z", ha);
	hash_text(b, "2026-01-01T00:00:00.000Z", hb);
	assert_string_not_equal(ha, hb);
}

/* --- an independent builder of the canonical stream --------------------- */

struct stream {
	unsigned char data[1024];
	size_t len;
};

static void put_raw(struct stream *s, const char *p)
{
	size_t n = strlen(p);

	assert_true(s->len + n <= sizeof(s->data));
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void put_tagged(struct stream *s, char tag, const char *p)
{
	size_t n = strlen(p);

	assert_true(s->len + 5 + n <= sizeof(s->data));
	s->data[s->len++] = (unsigned char)tag;
	s->data[s->len++] = (unsigned char)(n & 0xff);
	s->data[s->len++] = (unsigned char)((n >> 8) & 0xff);
	s->data[s->len++] = (unsigned char)((n >> 16) & 0xff);
	s->data[s->len++] = (unsigned char)((n >> 24) & 0xff);
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void md5_hex(const struct stream *s, char hex[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	assert_int_equal(EVP_Digest(s->data, s->len, md, &n, EVP_md5(), NULL), 1);
	assert_int_equal(n, 16);
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* One piece of the canonical stream: bytes as they are ('{' '}' '[' ']'
 * 'n' 't' 'f'), or a value behind its tag: k key, s string, i integer,
 * d double, e last_edited. */
struct piece {
	char tag; /* 0: bare bytes */
	const char *text;
};

/* clang-format-14 takes the braces of these initialisers for blocks. */
/* clang-format off */
#define BARE(p) {0, (p)}
#define KEY(p) {'k', (p)}
#define STR(p) {'s', (p)}
#define INT(p) {'i', (p)}
#define DBL(p) {'d', (p)}
#define EDITED(p) {'e', (p)}
/* clang-format on */

/* The MD5 (hex) of the stream made of the n pieces. */
static void pieces_md5_hex(const struct piece *pieces, size_t n, char hex[33])
{
	struct stream s = {{0}, 0};
	size_t i;

	for (i = 0; i < n; i++)
		if (pieces[i].tag)
			put_tagged(&s, pieces[i].tag, pieces[i].text);
		else
			put_raw(&s, pieces[i].text);
	md5_hex(&s, hex);
}

/* The hash of props (a JSON text) and last_edited is the MD5 of pieces. */
#define CHECK_KNOWN_ANSWER(props, last_edited, pieces)                                             \
	check_known_answer(props, last_edited, pieces, sizeof(pieces) / sizeof(pieces[0]))

static void check_known_answer(const char *props, const char *last_edited,
			       const struct piece *pieces, size_t n)
{
	char want[33], got[NSYNC_HASH_HEX];

	pieces_md5_hex(pieces, n, want);
	hash_text(props, last_edited, got);
	assert_string_equal(got, want);
}

/* --- tests --------------------------------------------------------------- */

static void hash_is_32_lowercase_hex(void **state)
{
	char hex[NSYNC_HASH_HEX];
	size_t i;

	(void)state;
	memset(hex, 'X', sizeof(hex));
	hash_text("{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[]}}", "x", hex);
	assert_int_equal(strlen(hex), 32);
	for (i = 0; i < 32; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	/* err may be NULL. */
	assert_int_equal(nsync__content_hash_tree(NULL, NULL, hex, NULL), NSYNC_OK);
	assert_int_equal(strlen(hex), 32);
}

/* The known-answer streams are laid out one object member a line. */
/* clang-format off */
static void known_answer_simple(void **state)
{
	/* {"a":1} at "t". */
	static const struct piece stream[] = {
		BARE("{"),
		KEY("a"), INT("1"),
		BARE("}"), EDITED("t"),
	};

	(void)state;
	CHECK_KNOWN_ANSWER("{\"a\":1}", "t", stream);
}

static void known_answer_all_types(void **state)
{
	/* Keys in arrival order z, b, a are visited sorted: a, b, z. */
	static const struct piece stream[] = {
		BARE("{"),
		KEY("a"), DBL("1.5"),
		KEY("b"), BARE("[tfn"), STR("x\xC3\xA9"), INT("-7"), BARE("{}]"),
		KEY("z"), STR(""),
		BARE("}"), EDITED("2026-07-27T13:47:00.000Z"),
	};

	(void)state;
	CHECK_KNOWN_ANSWER("{\"z\":\"\",\"b\":[true,false,null,\"x\\u00e9\",-7,{}],\"a\":1.5}",
			   "2026-07-27T13:47:00.000Z", stream);
}

static void known_answer_file_object(void **state)
{
	/* Inside the "file" object: expiry_time left out, url cut at '?'. */
	static const struct piece stream[] = {
		BARE("{"),
		KEY("file"), BARE("{"),
			KEY("url"), STR("https://h/a.png"),
		BARE("}"),
		KEY("type"), STR("file"),
		BARE("}"), EDITED(""),
	};

	(void)state;
	CHECK_KNOWN_ANSWER("{\"type\":\"file\",\"file\":{\"url\":\"https://h/a.png?sig=1\","
			   "\"expiry_time\":\"2026-01-01T01:00:00.000Z\"}}",
			   NULL, stream);
}
/* clang-format on */

static void known_answer_null_properties(void **state)
{
	static const struct piece stream[] = {BARE("n"), EDITED("")};
	char want[33], got[NSYNC_HASH_HEX], got2[NSYNC_HASH_HEX];

	(void)state;
	pieces_md5_hex(stream, sizeof(stream) / sizeof(stream[0]), want);
	/* properties NULL is hashed as null, last_edited NULL as "". */
	assert_int_equal(nsync__content_hash_tree(NULL, NULL, got, NULL), NSYNC_OK);
	assert_string_equal(got, want);
	assert_int_equal(nsync__content_hash_tree(NULL, "", got2, NULL), NSYNC_OK);
	assert_string_equal(got2, want);
}

static void key_order_does_not_matter(void **state)
{
	(void)state;
	assert_same("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}");
	/* Every nesting level reordered. */
	assert_same("{\"Status\":{\"id\":\"Z%3ClH\",\"type\":\"status\","
		    "\"status\":{\"id\":\"539f\","
		    "\"name\":\"In progress\",\"color\":\"blue\"}},"
		    "\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[{\"type\":\"text\","
		    "\"text\":{\"content\":\"Bug bash\",\"link\":null},\"plain_text\":\"Bug bash\","
		    "\"href\":null}]}}",
		    "{\"Name\":{\"title\":[{\"href\":null,\"plain_text\":\"Bug bash\",\"text\":{"
		    "\"link\":null,\"content\":\"Bug bash\"},\"type\":\"text\"}],"
		    "\"type\":\"title\","
		    "\"id\":\"title\"},"
		    "\"Status\":{\"status\":{\"color\":\"blue\",\"name\":\"In progress\",\"id\":"
		    "\"539f\"},\"type\":\"status\",\"id\":\"Z%3ClH\"}}");
}

static void values_matter(void **state)
{
	(void)state;
	assert_differ("{\"a\":1}", "{\"a\":2}");
	assert_differ("{\"a\":{\"b\":{\"c\":\"x\"}}}", "{\"a\":{\"b\":{\"c\":\"y\"}}}");
	assert_differ("{\"a\":1}", "{\"b\":1}");
	/* Types matter. */
	assert_differ("{\"a\":1}", "{\"a\":\"1\"}");
	assert_differ("{\"a\":true}", "{\"a\":\"t\"}");
	assert_differ("{\"a\":[]}", "{\"a\":{}}");
	/* null vs missing. */
	assert_differ("{\"a\":null}", "{}");
	assert_differ("{\"a\":1,\"b\":null}", "{\"a\":1}");
	/* Length prefixes keep boundaries apart. */
	assert_differ("{\"a\":\"bc\"}", "{\"ab\":\"c\"}");
	assert_differ("{\"a\":[\"b\",\"c\"]}", "{\"a\":[\"bc\"]}");
	assert_differ("{\"a\":[[],[]]}", "{\"a\":[[[]]]}");
	/* Strings are hashed by length, so an embedded NUL counts. */
	assert_differ("{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\"}");
}

static void array_order_matters(void **state)
{
	(void)state;
	assert_differ("{\"a\":[\"x\",\"y\"]}", "{\"a\":[\"y\",\"x\"]}");
	assert_differ("{\"a\":[{\"k\":1},{\"k\":2}]}", "{\"a\":[{\"k\":2},{\"k\":1}]}");
}

static void last_edited_time_matters(void **state)
{
	char a[NSYNC_HASH_HEX], b[NSYNC_HASH_HEX], c[NSYNC_HASH_HEX];

	(void)state;
	hash_text("{\"a\":1}", "2026-07-27T13:47:00.000Z", a);
	hash_text("{\"a\":1}", "2026-07-27T13:48:00.000Z", b);
	hash_text("{\"a\":1}", "2026-07-27T13:47:00.000Z", c);
	assert_string_not_equal(a, b);
	assert_string_equal(a, c);
}

#define S3 "https://prod-files-secure.s3.us-west-2.amazonaws.com/ws/f/"

static const char *files_page(char *out, size_t size, const char *url, const char *expiry)
{
	snprintf(out, size,
		 "{\"Portrait\":{\"id\":\"%%3AbC\",\"type\":\"files\","
		 "\"files\":[{\"name\":\"a.png\","
		 "\"type\":\"file\",\"file\":{\"url\":\"%s\",\"expiry_time\":\"%s\"}}]},"
		 "\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[]}}",
		 url, expiry);
	return out;
}

/* Compare, with check (assert_same or assert_differ), the hashes of two
 * files pages given by their file's url and expiry_time. */
static void compare_files_pages(void (*check)(const char *, const char *), const char *url_a,
				const char *expiry_a, const char *url_b, const char *expiry_b)
{
	char a[1024], b[1024];

	check(files_page(a, sizeof(a), url_a, expiry_a), files_page(b, sizeof(b), url_b, expiry_b));
}

static void notion_file_url_resigned_same_hash(void **state)
{
	(void)state;
	compare_files_pages(assert_same, S3 "a.png?X-Amz-Signature=aaa", "2026-01-01T01:00:00.000Z",
			    S3 "a.png?X-Amz-Signature=bbb", "2026-01-01T02:00:00.000Z");
	/* A file object without expiry_time hashes like one with it. */
	assert_same("{\"f\":{\"type\":\"file\",\"file\":{\"url\":\"" S3 "a.png?x=1\"}}}",
		    "{\"f\":{\"type\":\"file\",\"file\":{\"expiry_time\":"
		    "\"2030-01-01T00:00:00.000Z\",\"url\":\"" S3 "a.png?x=2\"}}}");
}

/* A user property that happens to be named "file" is not a Notion-hosted
 * file: a change in its URL's query string is a real change. */
static void property_named_file_keeps_query(void **state)
{
	(void)state;
	assert_differ("{\"file\":{\"id\":\"a\",\"type\":\"url\",\"url\":\"https://x.test/?v=1\"}}",
		      "{\"file\":{\"id\":\"a\",\"type\":\"url\",\"url\":\"https://x.test/?v=2\"}}");
	assert_differ("{\"p\":{\"file\":{\"url\":\"u?1\"}}}",
		      "{\"p\":{\"file\":{\"url\":\"u?2\"}}}");
}

static void notion_file_path_change_differs(void **state)
{
	const char *expiry = "2026-01-01T01:00:00.000Z";

	(void)state;
	compare_files_pages(assert_differ, S3 "a.png?X-Amz-Signature=aaa", expiry,
			    S3 "b.png?X-Amz-Signature=aaa", expiry);
	/* Other members of the file object still count. */
	assert_differ("{\"f\":{\"type\":\"file\",\"file\":{\"url\":\"u?1\",\"other\":1}}}",
		      "{\"f\":{\"type\":\"file\",\"file\":{\"url\":\"u?1\",\"other\":2}}}");
	/* The file's name (outside "file") still counts. */
	assert_differ("{\"f\":[{\"name\":\"a\",\"type\":\"file\",\"file\":{\"url\":\"u\"}}]}",
		      "{\"f\":[{\"name\":\"b\",\"type\":\"file\",\"file\":{\"url\":\"u\"}}]}");
}

static void external_url_not_normalised(void **state)
{
	(void)state;
	assert_differ("{\"B\":{\"type\":\"files\",\"files\":[{\"name\":\"x\",\"type\":\"external\","
		      "\"external\":{\"url\":\"https://example.com/a.pdf?v=1\"}}]}}",
		      "{\"B\":{\"type\":\"files\",\"files\":[{\"name\":\"x\",\"type\":\"external\","
		      "\"external\":{\"url\":\"https://example.com/a.pdf?v=2\"}}]}}");
	/* A url property and an expiry_time outside a file object count. */
	assert_differ("{\"Site\":{\"type\":\"url\",\"url\":\"https://a.example/?q=1\"}}",
		      "{\"Site\":{\"type\":\"url\",\"url\":\"https://a.example/?q=2\"}}");
	assert_differ("{\"x\":{\"expiry_time\":\"1\"}}", "{\"x\":{\"expiry_time\":\"2\"}}");
	/* Only the object directly under "file" is normalised, not deeper ones. */
	assert_differ("{\"file\":{\"inner\":{\"url\":\"u?1\"}}}",
		      "{\"file\":{\"inner\":{\"url\":\"u?2\"}}}");
}

/* Build {"k00":0,...,"k(n-1)":n-1} in ascending or descending key order. */
static struct json_object *many_keys(int n, int descending, int bump)
{
	struct json_object *o = json_object_new_object();
	int i;

	assert_non_null(o);
	for (i = 0; i < n; i++) {
		int k = descending ? n - 1 - i : i;
		char key[16];
		int value = k + (k == bump ? 1000 : 0);
		snprintf(key, sizeof(key), "k%02d", k);
		assert_int_equal(json_object_object_add(o, key, json_object_new_int(value)), 0);
	}
	return o;
}

static void many_keys_order_independent(void **state)
{
	struct json_object *asc = many_keys(40, 0, -1), *desc = many_keys(40, 1, -1);
	struct json_object *changed = many_keys(40, 1, 17), *wrap;
	char ha[NSYNC_HASH_HEX], hd[NSYNC_HASH_HEX], hc[NSYNC_HASH_HEX], hw1[NSYNC_HASH_HEX],
		hw2[NSYNC_HASH_HEX];

	(void)state;
	assert_int_equal(nsync__content_hash_tree(asc, "t", ha, NULL), NSYNC_OK);
	assert_int_equal(nsync__content_hash_tree(desc, "t", hd, NULL), NSYNC_OK);
	assert_int_equal(nsync__content_hash_tree(changed, "t", hc, NULL), NSYNC_OK);
	assert_string_equal(ha, hd);
	assert_string_not_equal(ha, hc);

	/* Nested below another object as well. */
	wrap = json_object_new_object();
	json_object_object_add(wrap, "inner", json_object_get(asc));
	assert_int_equal(nsync__content_hash_tree(wrap, "t", hw1, NULL), NSYNC_OK);
	json_object_put(wrap);
	wrap = json_object_new_object();
	json_object_object_add(wrap, "inner", json_object_get(desc));
	assert_int_equal(nsync__content_hash_tree(wrap, "t", hw2, NULL), NSYNC_OK);
	json_object_put(wrap);
	assert_string_equal(hw1, hw2);
	assert_string_not_equal(hw1, ha);

	json_object_put(asc);
	json_object_put(desc);
	json_object_put(changed);
}

/* A value longer than the hasher's internal 4 KiB chunk buffer. */
static void long_values(void **state)
{
	static char big[10001];
	struct json_object *a, *b;
	char ha[NSYNC_HASH_HEX], hb[NSYNC_HASH_HEX];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	a = json_object_new_object();
	json_object_object_add(a, "t", json_object_new_string(big));
	big[9999] = 'y';
	b = json_object_new_object();
	json_object_object_add(b, "t", json_object_new_string(big));
	assert_int_equal(nsync__content_hash_tree(a, "t", ha, NULL), NSYNC_OK);
	assert_int_equal(nsync__content_hash_tree(b, "t", hb, NULL), NSYNC_OK);
	assert_string_not_equal(ha, hb);
	json_object_put(a);
	json_object_put(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash_is_32_lowercase_hex),
		cmocka_unit_test(known_answer_simple),
		cmocka_unit_test(known_answer_all_types),
		cmocka_unit_test(known_answer_file_object),
		cmocka_unit_test(known_answer_null_properties),
		cmocka_unit_test(key_order_does_not_matter),
		cmocka_unit_test(values_matter),
		cmocka_unit_test(array_order_matters),
		cmocka_unit_test(last_edited_time_matters),
		cmocka_unit_test(notion_file_url_resigned_same_hash),
		cmocka_unit_test(notion_file_path_change_differs),
		cmocka_unit_test(property_named_file_keeps_query),
		cmocka_unit_test(external_url_not_normalised),
		cmocka_unit_test(many_keys_order_independent),
		cmocka_unit_test(long_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
