/*
 * test_error.c - unit tests for lib/error.c: the messages of struct
 * nsync_err end up in one-line logs, JSON answers and run rows, so they are
 * always one line of valid UTF-8, whatever Notion or libpq put in them, and
 * a message cut by the buffer never ends inside a character. Also the
 * stable names of result codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "text.h"

/* Independent check: every byte sequence of s is valid UTF-8 and no byte
 * is a control character. */
static void assert_clean_line(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;

	while (i < len) {
		size_t n = nsync__utf8_seq_len(p + i, len - i);
		assert_true(n > 0);
		assert_true(p[i] >= 0x20 && p[i] != 0x7f);
		i += n;
	}
}

static void invalid_bytes_become_question_marks(void **state)
{
	struct nsync_err err;

	(void)state;
	memset(&err, 0, sizeof(err));
	nsync__err(&err, NSYNC_ERR_NOTION, "Notion answered 400 validation_error: %s",
		   "bad \xff\xfe bytes \xc3( and \xed\xa0\x80 surrogate");
	assert_clean_line(err.msg);
	assert_string_equal(err.msg, "Notion answered 400 validation_error: bad ?? bytes ?( and "
				     "??? surrogate");
	assert_int_equal(err.code, NSYNC_ERR_NOTION);
}

static void valid_text_is_kept(void **state)
{
	struct nsync_err err;

	(void)state;
	nsync__err(&err, NSYNC_ERR_ARG, "Écrit «%s» 😀", "naïve");
	assert_string_equal(err.msg, "Écrit «naïve» 😀");
}

static void controls_fold_into_spaces(void **state)
{
	struct nsync_err err;

	(void)state;
	nsync__err(&err, NSYNC_ERR_DB, "PostgreSQL:\n\tFATAL:  x\r\n\x01y\x7f z  ");
	assert_string_equal(err.msg, "PostgreSQL: FATAL: x y z");
}

/* vsnprintf cuts at the buffer's end, in the middle of a character if
 * there is one: the partial character is dropped, never kept. */
static void cut_on_character_boundary(void **state)
{
	struct nsync_err err;
	char *long_text = malloc(4 * NSYNC_ERR_MSG_MAX + 1);
	size_t offset, i;

	(void)state;
	assert_non_null(long_text);
	for (offset = 0; offset < 4; offset++) {
		/* Shift the 4-byte characters so that each cut position occurs. */
		memset(long_text, 'a', offset);
		for (i = offset; i + 4 <= 4 * NSYNC_ERR_MSG_MAX; i += 4)
			memcpy(long_text + i, "\xf0\x9f\x98\x80", 4);
		long_text[i] = '\0';
		nsync__err(&err, NSYNC_ERR_NOTION, "%s", long_text);
		assert_clean_line(err.msg);
		assert_true(strlen(err.msg) >= NSYNC_ERR_MSG_MAX - 4);
		assert_true(strlen(err.msg) < NSYNC_ERR_MSG_MAX);
	}
	free(long_text);
}

static void prefix_stays_clean(void **state)
{
	struct nsync_err err;
	char big[NSYNC_ERR_MSG_MAX];

	(void)state;
	memset(big, 0, sizeof(big));
	for (size_t i = 0; i + 2 < sizeof(big) - 1; i += 2)
		memcpy(big + i, "\xc3\xa9", 2); /* é */
	nsync__err(&err, NSYNC_ERR_NOTION, "%s", big);
	assert_int_equal(nsync__err_prefix(&err, NSYNC_ERR_NOTION, "database %s", "x\xff"),
			 NSYNC_ERR_NOTION);
	/* The code survives a NULL err too (it used to become NSYNC_OK). */
	assert_int_equal(nsync__err_prefix(NULL, NSYNC_ERR_ARG, "user id"), NSYNC_ERR_ARG);
	assert_clean_line(err.msg);
	assert_true(strncmp(err.msg, "database x?: \xc3\xa9", 15) == 0);
}

static void code_names_are_stable(void **state)
{
	(void)state;
	assert_string_equal(nsync_rc_name(NSYNC_ERR_NO_DATA_SOURCES), "no_data_sources");
	assert_int_equal(NSYNC_ERR_NO_DATA_SOURCES, 13);
	assert_string_equal(nsync_rc_name(NSYNC_ERR_PROTOCOL), "notion_protocol_error");
	assert_string_equal(nsync_rc_name((nsync_rc)99), "unknown_error");
	for (int c = 0; c < NSYNC_ERR__COUNT; c++) {
		assert_non_null(nsync_rc_name((nsync_rc)c));
		assert_true(strlen(nsync_strerror((nsync_rc)c)) > 3);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(invalid_bytes_become_question_marks),
		cmocka_unit_test(valid_text_is_kept),
		cmocka_unit_test(controls_fold_into_spaces),
		cmocka_unit_test(cut_on_character_boundary),
		cmocka_unit_test(prefix_stays_clean),
		cmocka_unit_test(code_names_are_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
