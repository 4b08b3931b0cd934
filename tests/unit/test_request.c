/*
 * test_request.c - unit tests for lib/request.c (nsync_request_parse,
 * nsync_normalize_id).
 *
 * Covers: the body the database trigger sends, ids normalised to dashed
 * lowercase (from undashed or uppercase input), empty/whitespace bodies
 * and {} as "everything", null members as absent, wrong member types,
 * malformed JSON (trailing comma, unterminated, trailing garbage), nesting
 * beyond the limit, invalid UTF-8 (broken structure, and CESU-8
 * surrogates / overlong / above U+10FFFF), ids that are not UUIDs, an over-long
 * database_name, the full/async booleans, a NUL inside a string, and
 * err == NULL. nsync_normalize_id on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "notionsync.h"

#define UID "5f0c9a7e-3b1d-4c2e-9a8f-1d2e3f4a5b6c"
#define DBID "cef9c6ec-31f8-44b0-8ab6-eaa5a7154c6f"

static nsync_rc parse_str(const char *body, struct nsync_request *req, struct nsync_err *err)
{
	memset(err, 0, sizeof(*err));
	return nsync_request_parse(body, strlen(body), req, err);
}

static void assert_empty(const struct nsync_request *req)
{
	assert_string_equal(req->user_id, "");
	assert_string_equal(req->database_id, "");
	assert_string_equal(req->database_name, "");
	assert_false(req->full);
	assert_false(req->async);
	assert_string_equal(req->trigger, "");
}

/* body must be refused with NSYNC_ERR_ARG, a message holding `field`
 * (NULL: any message), and an all-empty request. */
static void assert_refused(const char *body, size_t len, const char *field)
{
	struct nsync_request req;
	struct nsync_err err;

	memset(&err, 0, sizeof(err));
	memset(&req, 0x5A, sizeof(req));
	assert_int_equal(nsync_request_parse(body, len, &req, &err), NSYNC_ERR_ARG);
	assert_int_equal(err.code, NSYNC_ERR_ARG);
	assert_true(strlen(err.msg) > 0);
	if (field && !strstr(err.msg, field))
		fail_msg("message \"%s\" does not name \"%s\"", err.msg, field);
	assert_empty(&req);
	/* Also without err. */
	assert_int_equal(nsync_request_parse(body, len, &req, NULL), NSYNC_ERR_ARG);
}

#define REFUSED(body, field) assert_refused(body, sizeof(body) - 1, field)

static void seed_body(void **state)
{
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	assert_int_equal(parse_str("{\"database_id\":\"" DBID "\",\"database_name\":\"Characters\","
				   "\"user_id\":\"" UID "\"}",
				   &req, &err),
			 NSYNC_OK);
	assert_string_equal(req.user_id, UID);
	assert_string_equal(req.database_id, DBID);
	assert_string_equal(req.database_name, "Characters");
	assert_false(req.full);
	assert_false(req.async);
	assert_string_equal(req.trigger, "");
}

static void ids_normalised(void **state)
{
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	/* Undashed and uppercase: stored dashed lowercase. */
	assert_int_equal(parse_str("{\"user_id\":\"5F0C9A7E3B1D4C2E9A8F1D2E3F4A5B6C\","
				   "\"database_id\":\"cef9c6ec31f844b08ab6eaa5a7154c6f\"}",
				   &req, &err),
			 NSYNC_OK);
	assert_string_equal(req.user_id, UID);
	assert_string_equal(req.database_id, DBID);
	assert_string_equal(req.database_name, "");
	/* Dashed uppercase. */
	assert_int_equal(parse_str("{\"database_id\":\"CEF9C6EC-31F8-44B0-8AB6-EAA5A7154C6F\"}",
				   &req, &err),
			 NSYNC_OK);
	assert_string_equal(req.database_id, DBID);
	assert_string_equal(req.user_id, "");
}

static void empty_bodies(void **state)
{
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	memset(&req, 0x5A, sizeof(req));
	assert_int_equal(nsync_request_parse("", 0, &req, &err), NSYNC_OK);
	assert_empty(&req);
	memset(&req, 0x5A, sizeof(req));
	assert_int_equal(parse_str(" \r\n\t ", &req, &err), NSYNC_OK);
	assert_empty(&req);
	memset(&req, 0x5A, sizeof(req));
	assert_int_equal(parse_str("{}", &req, &err), NSYNC_OK);
	assert_empty(&req);
	memset(&req, 0x5A, sizeof(req));
	assert_int_equal(parse_str("  {  }\n", &req, &err), NSYNC_OK);
	assert_empty(&req);
	/* Only len bytes are read: "{}" followed by bytes beyond len. */
	assert_int_equal(nsync_request_parse("{}garbage", 2, &req, &err), NSYNC_OK);
	assert_empty(&req);
}

static void nulls_are_absent(void **state)
{
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	assert_int_equal(parse_str("{\"user_id\":null,\"database_id\":null,\"database_name\":null,"
				   "\"full\":null,\"async\":null}",
				   &req, &err),
			 NSYNC_OK);
	assert_empty(&req);
	assert_int_equal(parse_str("{\"user_id\":\"" UID "\",\"database_id\":null}", &req, &err),
			 NSYNC_OK);
	assert_string_equal(req.user_id, UID);
	assert_string_equal(req.database_id, "");
	/* Unknown members are ignored. */
	assert_int_equal(parse_str("{\"user_id\":\"" UID "\",\"extra\":[1,{\"a\":2}]}", &req, &err),
			 NSYNC_OK);
	assert_string_equal(req.user_id, UID);
}

static void booleans(void **state)
{
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	assert_int_equal(parse_str("{\"full\":true}", &req, &err), NSYNC_OK);
	assert_true(req.full);
	assert_false(req.async);
	assert_int_equal(parse_str("{\"async\":true,\"full\":false}", &req, &err), NSYNC_OK);
	assert_false(req.full);
	assert_true(req.async);
	assert_int_equal(parse_str("{\"async\":true,\"full\":true,\"user_id\":\"" UID "\"}", &req,
				   &err),
			 NSYNC_OK);
	assert_true(req.full);
	assert_true(req.async);
	assert_string_equal(req.user_id, UID);
}

static void wrong_types(void **state)
{
	(void)state;
	REFUSED("{\"user_id\":12345}", "user_id");
	REFUSED("{\"user_id\":true}", "user_id");
	REFUSED("{\"database_id\":[\"" DBID "\"]}", "database_id");
	REFUSED("{\"database_id\":{\"id\":\"" DBID "\"}}", "database_id");
	REFUSED("{\"database_name\":7}", "database_name");
	REFUSED("{\"full\":\"true\"}", "full");
	REFUSED("{\"full\":1}", "full");
	REFUSED("{\"async\":\"yes\"}", "async");
	REFUSED("{\"async\":0}", "async");
	/* The body itself must be an object. */
	REFUSED("[]", "object");
	REFUSED("[{\"user_id\":\"" UID "\"}]", "object");
	REFUSED("\"" UID "\"", "object");
	/* Top-level scalars: refused (the message may call them invalid JSON). */
	REFUSED("42", NULL);
	REFUSED("null", NULL);
	REFUSED("true", NULL);
}

static void malformed_json(void **state)
{
	(void)state;
	REFUSED("{\"user_id\":\"" UID "\",}", "JSON");
	REFUSED("{\"user_id\":\"" UID "\"", "JSON");
	REFUSED("{\"user_id\":\"" UID, "JSON");
	REFUSED("{", "JSON");
	REFUSED("{} x", "JSON");
	REFUSED("{}{}", "JSON");
	REFUSED("{} {\"full\":true}", "JSON");
	REFUSED("{'user_id':'x'}", "JSON");
	REFUSED("{user_id:1}", "JSON");
	REFUSED("}", "JSON");
	REFUSED("x", "JSON");
	REFUSED("{\"full\":tru}", "JSON");
}

static void deep_nesting(void **state)
{
	char body[1024];
	size_t i, n = 0;

	(void)state;
	/* {"x":[[[[...100 levels...]]]]} */
	n += (size_t)sprintf(body, "{\"x\":");
	for (i = 0; i < 100; i++)
		body[n++] = '[';
	for (i = 0; i < 100; i++)
		body[n++] = ']';
	body[n++] = '}';
	assert_refused(body, n, NULL);

	/* 100 nested objects. */
	n = 0;
	for (i = 0; i < 100; i++)
		n += (size_t)sprintf(body + n, "{\"a\":");
	body[n++] = '1';
	for (i = 0; i < 100; i++)
		body[n++] = '}';
	assert_true(n < sizeof(body));
	assert_refused(body, n, NULL);

	/* 8 nested containers ({ and 7 arrays) are accepted, 9 are not.
	 * (json-c counts a scalar leaf as a level too, so the innermost
	 * array is left empty here.) */
	{
		struct nsync_request req;
		struct nsync_err err;
		assert_int_equal(parse_str("{\"x\":[[[[[[[]]]]]]]}", &req, &err), NSYNC_OK);
		assert_int_equal(parse_str("{\"x\":[[[[1]]]],\"user_id\":\"" UID "\"}", &req, &err),
				 NSYNC_OK);
		assert_string_equal(req.user_id, UID);
	}
	REFUSED("{\"x\":[[[[[[[[]]]]]]]]}", NULL);
}

static void invalid_utf8(void **state)
{
	(void)state;
	/* Broken structure: a lead byte without its continuation, a stray
	 * continuation byte. */
	REFUSED("{\"database_name\":\"Charact\xC3\x28rs\"}", NULL);
	REFUSED("{\"database_name\":\"\x80\"}", NULL);
	REFUSED("{\"user_id\":\"\xFF\"}", NULL);
	/* Valid UTF-8 is fine. */
	{
		struct nsync_request req;
		struct nsync_err err;
		assert_int_equal(parse_str("{\"database_name\":\"Personnages \xC3\xA9t\xC3\xA9\"}",
					   &req, &err),
				 NSYNC_OK);
		assert_string_equal(req.database_name, "Personnages \xC3\xA9t\xC3\xA9");
	}
}

/* Well-formed lead/continuation structure but still not UTF-8: a UTF-16
 * surrogate in CESU-8 form, overlong encodings, a lead byte above U+10FFFF.
 * PostgreSQL rejects such text, so the request must be refused here. */
static void invalid_utf8_well_structured(void **state)
{
	(void)state;
	REFUSED("{\"database_name\":\"\xED\xA0\x80\"}", NULL);
	REFUSED("{\"database_name\":\"\xC0\xAF\"}", NULL);
	REFUSED("{\"database_name\":\"\xE0\x80\xAF\"}", NULL);
	REFUSED("{\"database_name\":\"\xF5\x80\x80\x80\"}", NULL);
}

static void nul_in_string(void **state)
{
	static const char body[] = "{\"database_name\":\"Char\\u0000acters\"}";

	(void)state;
	assert_refused(body, sizeof(body) - 1, "database_name");
}

static void ids_not_uuids(void **state)
{
	(void)state;
	REFUSED("{\"user_id\":\"../../etc/passwd\"}", "user_id");
	REFUSED("{\"database_id\":\"'; drop table x; --\"}", "database_id");
	/* 33 and 31 hex digits. */
	REFUSED("{\"user_id\":\"5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c0\"}", "user_id");
	REFUSED("{\"user_id\":\"5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6\"}", "user_id");
	/* Right length, one non-hex digit. */
	REFUSED("{\"database_id\":\"cef9c6ec-31f8-44b0-8ab6-eaa5a7154c6g\"}", "database_id");
	REFUSED("{\"database_id\":\"cef9c6ec 31f8 44b0 8ab6 eaa5a7154c6f\"}", "database_id");
	REFUSED("{\"database_id\":\"{cef9c6ec-31f8-44b0-8ab6-eaa5a7154c6f}\"}", "database_id");
	/* A good user_id does not save a bad database_id. */
	REFUSED("{\"user_id\":\"" UID "\",\"database_id\":\"x\"}", "database_id");
}

/* An empty string is not a UUID either ("null means absent", "" does not):
 * accepting it would silently widen a request to every user. */
static void empty_string_id_is_not_absent(void **state)
{
	(void)state;
	REFUSED("{\"user_id\":\"\"}", "user_id");
	REFUSED("{\"database_id\":\"\"}", "database_id");
}

static void database_name_length(void **state)
{
	char body[300], name[200];
	struct nsync_request req;
	struct nsync_err err;

	(void)state;
	memset(name, 'n', 128);
	name[128] = '\0';
	snprintf(body, sizeof(body), "{\"database_name\":\"%s\"}", name);
	assert_int_equal(parse_str(body, &req, &err), NSYNC_OK);
	assert_string_equal(req.database_name, name);
	assert_int_equal(strlen(req.database_name), 128);

	memset(name, 'n', 129);
	name[129] = '\0';
	snprintf(body, sizeof(body), "{\"database_name\":\"%s\"}", name);
	assert_refused(body, strlen(body), "database_name");
	/* Ids longer than a dashed UUID are refused, not truncated. */
	REFUSED("{\"user_id\":\"" UID "-0000\"}", "user_id");
}

static void err_may_be_null(void **state)
{
	static const char body[] = "{\"user_id\":\"" UID "\"}";
	struct nsync_request req;

	(void)state;
	assert_int_equal(nsync_request_parse(body, sizeof(body) - 1, &req, NULL), NSYNC_OK);
	assert_string_equal(req.user_id, UID);
	assert_int_equal(nsync_request_parse("{", 1, &req, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_request_parse("{\"user_id\":1}", 13, &req, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_request_parse("{\"user_id\":\"x\"}", 15, &req, NULL), NSYNC_ERR_ARG);
}

static void normalize_id(void **state)
{
	char out[37];
	struct nsync_err err;

	(void)state;
	memset(&err, 0, sizeof(err));
	assert_int_equal(nsync_normalize_id(UID, out, &err), NSYNC_OK);
	assert_string_equal(out, UID);
	assert_int_equal(nsync_normalize_id("5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c", out, &err),
			 NSYNC_OK);
	assert_string_equal(out, UID);
	assert_int_equal(nsync_normalize_id("5F0C9A7E-3B1D-4C2E-9A8F-1D2E3F4A5B6C", out, &err),
			 NSYNC_OK);
	assert_string_equal(out, UID);
	assert_int_equal(nsync_normalize_id("00000000000000000000000000000000", out, NULL),
			 NSYNC_OK);
	assert_string_equal(out, "00000000-0000-0000-0000-000000000000");
	assert_int_equal(nsync_normalize_id("ABCDEFabcdef0123456789ABCDEFabcd", out, NULL),
			 NSYNC_OK);
	assert_string_equal(out, "abcdefab-cdef-0123-4567-89abcdefabcd");

	assert_int_equal(nsync_normalize_id("", out, &err), NSYNC_ERR_ARG);
	assert_int_equal(err.code, NSYNC_ERR_ARG);
	assert_true(strlen(err.msg) > 0);
	assert_int_equal(nsync_normalize_id(NULL, out, &err), NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6", out, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c7", out, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6g", out, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("../../etc/passwd", out, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("0x0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c", out, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id(" 5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c", out, NULL),
			 NSYNC_ERR_ARG);
	/* A very long input stops at the 33rd digit without overflowing. */
	assert_int_equal(nsync_normalize_id("5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c5f0c9a7e3b1d4c2e"
					    "9a8f1d2e3f4a5b6c5f0c9a7e3b1d4c2e9a8f1d2e3f4a5b6c",
					    out, NULL),
			 NSYNC_ERR_ARG);
}

static void strerror_and_names(void **state)
{
	(void)state;
	assert_string_equal(nsync_rc_name(NSYNC_ERR_ARG), "invalid_request");
	assert_string_equal(nsync_rc_name(NSYNC_OK), "ok");
	assert_string_equal(nsync_rc_name(NSYNC_ERR__COUNT), "unknown_error");
	assert_string_equal(nsync_strerror(NSYNC_ERR_ARG), "The request is invalid.");
	assert_string_equal(nsync_strerror((nsync_rc)-1), "Unknown error.");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seed_body),
		cmocka_unit_test(ids_normalised),
		cmocka_unit_test(empty_bodies),
		cmocka_unit_test(nulls_are_absent),
		cmocka_unit_test(booleans),
		cmocka_unit_test(wrong_types),
		cmocka_unit_test(malformed_json),
		cmocka_unit_test(deep_nesting),
		cmocka_unit_test(invalid_utf8),
		cmocka_unit_test(invalid_utf8_well_structured),
		cmocka_unit_test(nul_in_string),
		cmocka_unit_test(ids_not_uuids),
		cmocka_unit_test(empty_string_id_is_not_absent),
		cmocka_unit_test(database_name_length),
		cmocka_unit_test(err_may_be_null),
		cmocka_unit_test(normalize_id),
		cmocka_unit_test(strerror_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
