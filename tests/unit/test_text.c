/*
 * test_text.c - unit tests for lib/text.c and lib/buf.c.
 *
 * Covers: nsync__json_add_string (escaping of quotes, backslashes and
 * control characters; NUL bytes dropped; invalid UTF-8 replaced by U+FFFD;
 * valid multibyte UTF-8 kept byte-exact; the `cleaned` counter; output
 * always parses back with json-c to the expected text),
 * nsync__json_add_raw (\u0000 and lone surrogate escapes rewritten to
 * \ufffd, escaped backslashes not mistaken for escapes, raw invalid bytes
 * replaced, clean input copied byte-identical), nsync__utf8_prefix and
 * nsync__utf8_seq_len (character counting, never splitting a character),
 * and the size limit of struct nsync_buf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "buf.h"
#include "text.h"

#define FFFD "\xEF\xBF\xBD"

/* Run add (nsync__json_add_string or nsync__json_add_raw) on (in, in_len)
 * into an empty buffer and check the exact bytes produced (NUL-terminated)
 * and that the cleaned counter moved by want_cleaned. */
static void check_add(nsync_rc (*add)(struct nsync_buf *, const char *, size_t, long *),
		      const char *in, size_t in_len, const char *want, size_t want_len,
		      long want_cleaned)
{
	struct nsync_buf b;
	long cleaned = 10;

	nsync__buf_init(&b, 1 << 20);
	assert_int_equal(add(&b, in, in_len, &cleaned), NSYNC_OK);
	assert_int_equal(b.len, want_len);
	if (want_len > 0) {
		assert_non_null(b.data);
		assert_memory_equal(b.data, want, want_len);
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_int_equal(cleaned, 10 + want_cleaned);
	nsync__buf_free(&b);
}

/* The JSON text in b parsed by json-c in strict mode with UTF-8
 * validation; it must parse. The caller puts the result. */
static struct json_object *parse_strict(const struct nsync_buf *b)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	assert_non_null(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, b->data, (int)b->len + 1);
	assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
	json_tokener_free(tok);
	assert_non_null(o);
	return o;
}

/* Run nsync__json_add_string and check that json-c parses the output back
 * to a string equal to decoded (decoded_len bytes). */
static void check_roundtrip(const char *in, size_t in_len, const char *decoded, size_t decoded_len)
{
	struct nsync_buf b;
	struct json_object *o;

	nsync__buf_init(&b, 1 << 20);
	assert_int_equal(nsync__json_add_string(&b, in, in_len, NULL), NSYNC_OK);
	o = parse_strict(&b);
	assert_true(json_object_is_type(o, json_type_string));
	assert_int_equal(json_object_get_string_len(o), decoded_len);
	assert_memory_equal(json_object_get_string(o), decoded, decoded_len);
	json_object_put(o);
	nsync__buf_free(&b);
}

#define CHECK_STRING(in, want, cleaned)                                                            \
	check_add(nsync__json_add_string, in, sizeof(in) - 1, want, sizeof(want) - 1, cleaned)
#define CHECK_ROUNDTRIP(in, decoded)                                                               \
	check_roundtrip(in, sizeof(in) - 1, decoded, sizeof(decoded) - 1)

static void string_plain_ascii(void **state)
{
	(void)state;
	CHECK_STRING("Hello, world 123 ~!@#$%^&*()", "\"Hello, world 123 ~!@#$%^&*()\"", 0);
	CHECK_STRING("", "\"\"", 0);
	CHECK_ROUNDTRIP("Hello, world", "Hello, world");
}

static void string_escapes(void **state)
{
	(void)state;
	CHECK_STRING("say \"hi\"", "\"say \\\"hi\\\"\"", 0);
	CHECK_STRING("C:\\dir\\", "\"C:\\\\dir\\\\\"", 0);
	CHECK_STRING("a\nb\tc\rd", "\"a\\nb\\tc\\rd\"", 0);
	CHECK_STRING("/", "\"/\"", 0);
	CHECK_ROUNDTRIP("q\"b\\n\nt\t", "q\"b\\n\nt\t");
}

static void string_control_chars(void **state)
{
	(void)state;
	CHECK_STRING("\x01", "\"\\u0001\"", 0);
	CHECK_STRING("a\x08"
		     "b\x0c"
		     "c\x1f"
		     "d\x1b",
		     "\"a\\u0008b\\u000cc\\u001fd\\u001b\"", 0);
	CHECK_ROUNDTRIP("x\x01y\x1fz", "x\x01y\x1fz");
}

static void string_nul_dropped(void **state)
{
	struct nsync_buf b;
	long cleaned = 3;

	(void)state;
	/* Two NUL bytes: both dropped, the counter moves by one only. */
	CHECK_STRING("a\0b\0c", "\"abc\"", 1);
	CHECK_STRING("\0", "\"\"", 1);
	CHECK_ROUNDTRIP("\0x\0", "x");

	nsync__buf_init(&b, 1024);
	assert_int_equal(nsync__json_add_string(&b, "\0\0\0", 3, &cleaned), NSYNC_OK);
	assert_string_equal(b.data, "\"\"");
	assert_int_equal(cleaned, 4);
	/* cleaned may be NULL. */
	nsync__buf_reset(&b);
	assert_int_equal(nsync__json_add_string(&b, "a\0", 2, NULL), NSYNC_OK);
	assert_string_equal(b.data, "\"a\"");
	nsync__buf_free(&b);
}

static void string_invalid_utf8(void **state)
{
	(void)state;
	/* Lone continuation byte. */
	CHECK_STRING("x\x80y", "\"x" FFFD "y\"", 1);
	CHECK_ROUNDTRIP("x\x80y", "x" FFFD "y");
	/* 0xF5 can never start a sequence. */
	CHECK_STRING("\xF5", "\"" FFFD "\"", 1);
	CHECK_STRING("a\xFF"
		     "b",
		     "\"a" FFFD "b\"", 1);
	/* Overlong '/' (C0 AF): C0 is never valid, AF is a stray continuation. */
	CHECK_STRING("\xC0\xAF", "\"" FFFD FFFD "\"", 1);
	/* CESU-8 surrogate U+D800 (ED A0 80): ED A0 is not a valid prefix. */
	CHECK_STRING("s\xED\xA0\x80"
		     "e",
		     "\"s" FFFD FFFD FFFD "e\"", 1);
	CHECK_ROUNDTRIP("s\xED\xA0\x80"
			"e",
			"s" FFFD FFFD FFFD "e");
	/* Several problems in one string still count once. */
	CHECK_STRING("\x80\0\xF5", "\"" FFFD FFFD "\"", 1);
}

/* A truncated 3-byte sequence (E2 82 without its AC) may become one U+FFFD
 * (maximal subpart) or one per byte; either way nothing of it survives raw,
 * the text around it is kept, and the output is valid JSON. */
static void string_truncated_sequence(void **state)
{
	static const char *inputs[] = {"a\xE2\x82"
				       "b",
				       "a\xE2\x82"};
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct nsync_buf b;
		struct json_object *o;
		const char *s;
		size_t n, i;
		long cleaned = 0;
		int tail_b = k == 0;

		nsync__buf_init(&b, 1024);
		assert_int_equal(nsync__json_add_string(&b, inputs[k], strlen(inputs[k]), &cleaned),
				 NSYNC_OK);
		assert_int_equal(cleaned, 1);
		o = json_tokener_parse(b.data);
		assert_non_null(o);
		s = json_object_get_string(o);
		n = (size_t)json_object_get_string_len(o);
		assert_true(n >= 1 + 3 + (size_t)tail_b);
		assert_int_equal(s[0], 'a');
		if (tail_b)
			assert_int_equal(s[n - 1], 'b');
		assert_int_equal((n - 1 - (size_t)tail_b) % 3, 0);
		for (i = 1; i + 3 <= n - (size_t)tail_b; i += 3)
			assert_memory_equal(s + i, FFFD, 3);
		json_object_put(o);
		nsync__buf_free(&b);
	}
}

static void string_valid_multibyte(void **state)
{
	(void)state;
	/* é (2 bytes), € (3), 😀 (4), U+10FFFF (4), U+E000 (3, right after surrogates). */
#define MB "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEE\x80\x80"
	CHECK_STRING(MB, "\"" MB "\"", 0);
	CHECK_ROUNDTRIP(MB, MB);
#undef MB
	/* Just above U+10FFFF (F4 90 80 80) is invalid. */
	CHECK_STRING("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", 1);
}

/* A long mixed string: every byte value 0..255 once. The result must
 * parse with json-c's UTF-8 validation and contain no NUL. */
static void string_every_byte_is_valid_json(void **state)
{
	char in[256];
	struct nsync_buf b;
	struct json_object *o;
	long cleaned = 0;
	int i;

	(void)state;
	for (i = 0; i < 256; i++)
		in[i] = (char)i;
	nsync__buf_init(&b, 1 << 16);
	assert_int_equal(nsync__json_add_string(&b, in, sizeof(in), &cleaned), NSYNC_OK);
	assert_int_equal(cleaned, 1);
	o = parse_strict(&b);
	/* 127 ASCII characters 1..127 kept, NUL dropped, 128 bytes replaced. */
	assert_int_equal(json_object_get_string_len(o), 127 + 128 * 3);
	assert_memory_equal(json_object_get_string(o), in + 1, 127);
	assert_null(memchr(json_object_get_string(o), '\0', 127 + 128 * 3));
	json_object_put(o);
	nsync__buf_free(&b);
}

#define CHECK_RAW(in, want, cleaned)                                                               \
	check_add(nsync__json_add_raw, in, sizeof(in) - 1, want, sizeof(want) - 1, cleaned)

static void raw_nul_escape(void **state)
{
	(void)state;
	CHECK_RAW("{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\\ufffdy\"}", 1);
	CHECK_RAW("\"\\u0000\\u0000\"", "\"\\ufffd\\ufffd\"", 1);
}

static void raw_lone_surrogates(void **state)
{
	(void)state;
	CHECK_RAW("\"\\ud800\"", "\"\\ufffd\"", 1);
	CHECK_RAW("\"\\udc00\"", "\"\\ufffd\"", 1);
	CHECK_RAW("\"\\uD800\"", "\"\\ufffd\"", 1);
	/* High surrogate followed by an ordinary escape, not a low one. */
	CHECK_RAW("\"\\ud800\\u0041\"", "\"\\ufffd\\u0041\"", 1);
	/* Low before high is not a pair. */
	CHECK_RAW("\"\\udc00\\ud800\"", "\"\\ufffd\\ufffd\"", 1);
	/* A lone low surrogate right before a proper pair. */
	CHECK_RAW("\"\\udc00\\ud83d\\ude00\"", "\"\\ufffd\\ud83d\\ude00\"", 1);
}

static void raw_pairs_and_escapes_untouched(void **state)
{
	(void)state;
	CHECK_RAW("\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"", 0);
	CHECK_RAW("\"\\uD83D\\uDE00 \\u00e9 \\u20AC\"", "\"\\uD83D\\uDE00 \\u00e9 \\u20AC\"", 0);
	/* JSON text "\\u0000": an escaped backslash, then the letters u0000. */
	CHECK_RAW("\"\\\\u0000\"", "\"\\\\u0000\"", 0);
	/* "\\\\u0000": two escaped backslashes, then letters. */
	CHECK_RAW("\"\\\\\\\\u0000\"", "\"\\\\\\\\u0000\"", 0);
	/* "\\\u0000": an escaped backslash followed by a real \u0000 escape. */
	CHECK_RAW("\"\\\\\\u0000\"", "\"\\\\\\ufffd\"", 1);
	/* "\\ud800": escaped backslash then letters, not a surrogate. */
	CHECK_RAW("\"\\\\ud800\"", "\"\\\\ud800\"", 0);
	/* \" inside a string does not start anything. */
	CHECK_RAW("\"a\\\"\\u0000\"", "\"a\\\"\\ufffd\"", 1);
}

static void raw_invalid_bytes(void **state)
{
	(void)state;
	CHECK_RAW("{\"a\":\"x\x80y\"}", "{\"a\":\"x" FFFD "y\"}", 1);
	CHECK_RAW("\"\xED\xA0\x80\"", "\"" FFFD FFFD FFFD "\"", 1);
	CHECK_RAW("\"\xC0\xAF\xF5\"", "\"" FFFD FFFD FFFD "\"", 1);
	/* Valid multibyte text untouched. */
	CHECK_RAW("\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
		  "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"", 0);
}

static void raw_clean_input_identical(void **state)
{
	static const char props[] =
		"{\"Name\":{\"id\":\"title\",\"type\":\"title\",\"title\":[{\"type\":\"text\","
		"\"text\":{\"content\":\"Bug bash\",\"link\":null},\"annotations\":{\"bold\":false,"
		"\"italic\":false,\"strikethrough\":false,\"underline\":false,\"code\":false,"
		"\"color\":\"default\"},\"plain_text\":\"Bug bash\",\"href\":null}]},\n"
		" \"Count\":{\"id\":\"WPj%5E\",\"type\":\"number\",\"number\":42},\n"
		" \"Lang\":{\"id\":\"tC;=\",\"type\":\"multi_select\",\"multi_select\":[{\"name\":"
		"\"Caf\xC3\xA9 \\\"q\\\" \\\\ \\n \\/ \\u00e9\",\"color\":\"purple\"}]}}";
	struct nsync_buf b;
	long cleaned = 0;

	(void)state;
	CHECK_RAW(props, props, 0);

	/* Appends after existing content, keeps it. */
	nsync__buf_init(&b, 1 << 16);
	assert_int_equal(nsync__buf_adds(&b, "["), NSYNC_OK);
	assert_int_equal(nsync__json_add_raw(&b, "1", 1, &cleaned), NSYNC_OK);
	assert_int_equal(nsync__json_add_raw(&b, "", 0, &cleaned), NSYNC_OK);
	assert_string_equal(b.data, "[1");
	assert_int_equal(cleaned, 0);
	nsync__buf_free(&b);
}

/* What add_raw produces must be acceptable to a strict parser and must
 * not decode to U+0000 anywhere. */
static void raw_output_parses(void **state)
{
	static const char in[] = "{\"k\":[\"\\u0000\",\"\\ud800x\",\"\\udfff\",\"a\x80\"]}";
	struct nsync_buf b;
	struct json_object *o, *arr;
	size_t i;

	(void)state;
	nsync__buf_init(&b, 4096);
	assert_int_equal(nsync__json_add_raw(&b, in, sizeof(in) - 1, NULL), NSYNC_OK);
	assert_string_equal(b.data, "{\"k\":[\"\\ufffd\",\"\\ufffdx\",\"\\ufffd\",\"a" FFFD "\"]}");
	o = parse_strict(&b);
	assert_true(json_object_object_get_ex(o, "k", &arr));
	assert_int_equal(json_object_array_length(arr), 4);
	for (i = 0; i < 4; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		assert_null(memchr(json_object_get_string(s), '\0',
				   (size_t)json_object_get_string_len(s)));
	}
	assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 0)), FFFD);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 1)), FFFD "x");
	json_object_put(o);
	nsync__buf_free(&b);
}

static void utf8_prefix_counts_chars(void **state)
{
	/* a, é, €, 😀, b: 1 + 2 + 3 + 4 + 1 = 11 bytes, 5 characters. */
	static const char s[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
				"b";
	static const size_t want[] = {0, 1, 3, 6, 10, 11, 11};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++)
		assert_int_equal(nsync__utf8_prefix(s, 11, k), want[k]);
	assert_int_equal(nsync__utf8_prefix(s, 11, 1000), 11);
	assert_int_equal(nsync__utf8_prefix("", 0, 5), 0);
	/* Only len bytes are looked at. */
	assert_int_equal(nsync__utf8_prefix(s, 6, 10), 6);
}

static void utf8_prefix_never_splits(void **state)
{
	/* 300 times "é€😀" (9 bytes, 3 characters). */
	char s[2700];
	size_t i, k;

	(void)state;
	for (i = 0; i < 300; i++)
		memcpy(s + 9 * i, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9);
	for (k = 0; k <= 900; k++) {
		size_t n = nsync__utf8_prefix(s, sizeof(s), k);
		/* Character k starts at 9*(k/3) + {0,2,5}[k%3]. */
		static const size_t part[] = {0, 2, 5};
		assert_int_equal(n, 9 * (k / 3) + part[k % 3]);
	}
}

static void utf8_seq_len_table(void **state)
{
	(void)state;
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"A", 1), 1);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xC3\xA9", 2), 2);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xC3\xA9", 1), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xE2\x82\xAC", 3), 3);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xE2\x82\xAC", 2), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xF0\x9F\x98\x80", 4), 4);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xF0\x9F\x98\x80", 3), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xC1\xBF", 2), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xE0\x80\xAF", 3), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xED\x9F\xBF", 3), 3);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xED\xBF\xBF", 3), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xF0\x80\x80\x80", 4), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xF4\x90\x80\x80", 4), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\xF5\x80\x80\x80", 4), 0);
	assert_int_equal(nsync__utf8_seq_len((const unsigned char *)"\x80", 1), 0);
}

static void buf_limit(void **state)
{
	struct nsync_buf b;
	long cleaned = 0;

	(void)state;
	nsync__buf_init(&b, 8);
	assert_int_equal(nsync__buf_adds(&b, "12345"), NSYNC_OK);
	/* 5 + 4 > 8: refused, content unchanged. */
	assert_int_equal(nsync__buf_adds(&b, "6789"), NSYNC_ERR_NOMEM);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "12345");
	assert_int_equal(nsync__buf_printf(&b, "%d", 1234), NSYNC_ERR_NOMEM);
	assert_string_equal(b.data, "12345");
	/* Exactly the limit is allowed. */
	assert_int_equal(nsync__buf_printf(&b, "%s", "67"), NSYNC_OK);
	assert_int_equal(nsync__buf_addc(&b, '8'), NSYNC_OK);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(nsync__buf_addc(&b, '9'), NSYNC_ERR_NOMEM);
	assert_int_equal(nsync__buf_add(&b, "x", 1), NSYNC_ERR_NOMEM);
	assert_string_equal(b.data, "12345678");
	/* Adding nothing at the limit is fine. */
	assert_int_equal(nsync__buf_add(&b, "", 0), NSYNC_OK);
	assert_int_equal(b.len, 8);

	/* The JSON helpers report the limit too. */
	nsync__buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(nsync__json_add_string(&b, "abcdefghij", 10, &cleaned), NSYNC_ERR_NOMEM);
	assert_int_equal(nsync__json_add_raw(&b, "\"abcdefghij\"", 12, &cleaned), NSYNC_ERR_NOMEM);
	nsync__buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void buf_take_and_growth(void **state)
{
	struct nsync_buf b;
	char *p;
	size_t i;

	(void)state;
	nsync__buf_init(&b, 1 << 20);
	p = nsync__buf_take(&b);
	assert_non_null(p);
	assert_string_equal(p, "");
	free(p);

	for (i = 0; i < 10000; i++)
		assert_int_equal(nsync__buf_addc(&b, (char)('a' + i % 26)), NSYNC_OK);
	assert_int_equal(b.len, 10000);
	for (i = 0; i < 10000; i++)
		assert_int_equal(b.data[i], 'a' + i % 26);
	p = nsync__buf_take(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(strlen(p), 10000);
	free(p);
	nsync__buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(string_plain_ascii),
		cmocka_unit_test(string_escapes),
		cmocka_unit_test(string_control_chars),
		cmocka_unit_test(string_nul_dropped),
		cmocka_unit_test(string_invalid_utf8),
		cmocka_unit_test(string_truncated_sequence),
		cmocka_unit_test(string_valid_multibyte),
		cmocka_unit_test(string_every_byte_is_valid_json),
		cmocka_unit_test(raw_nul_escape),
		cmocka_unit_test(raw_lone_surrogates),
		cmocka_unit_test(raw_pairs_and_escapes_untouched),
		cmocka_unit_test(raw_invalid_bytes),
		cmocka_unit_test(raw_clean_input_identical),
		cmocka_unit_test(raw_output_parses),
		cmocka_unit_test(utf8_prefix_counts_chars),
		cmocka_unit_test(utf8_prefix_never_splits),
		cmocka_unit_test(utf8_seq_len_table),
		cmocka_unit_test(buf_limit),
		cmocka_unit_test(buf_take_and_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
