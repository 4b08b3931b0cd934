/*
 * test_hookproto.c - unit tests for lib/hookproto.c: the X-Notion-Signature
 * check against every case of Notion's JavaScript SDK tests (read from
 * tests/fixtures/notion-sdk-js/webhook-signatures.json), bodies changed
 * by one byte, lengths around 64 hex digits, and the event classes.
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
#include <openssl/hmac.h>

#include "hookproto.h"

static struct json_object *load_vectors(void)
{
	const char *top = getenv("top_srcdir");
	char path[4096];

	snprintf(path, sizeof(path), "%s/tests/fixtures/notion-sdk-js/webhook-signatures.json",
		 top ? top : ".");
	return json_object_from_file(path);
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static void test_sdk_vectors(void **state)
{
	struct json_object *doc = load_vectors(), *cases, *v;
	size_t i, n;

	(void)state;
	assert_non_null(doc);
	assert_true(json_object_object_get_ex(doc, "cases", &cases));
	n = json_object_array_length(cases);
	assert_true(n >= 10);
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(cases, i);
		const char *body = str(c, "body");
		enum nsync_webhook_signature got;
		int want;

		assert_true(json_object_object_get_ex(c, "valid", &v));
		want = json_object_get_boolean(v);
		got = nsync__webhook_signature(str(c, "signature"), str(c, "token"), body,
					       strlen(body));
		if ((got == NSYNC_SIGNATURE_VALID) != want)
			fail_msg("SDK case \"%s\": expected %s, got %d", str(c, "name"),
				 want ? "valid" : "refused", (int)got);
	}
	json_object_put(doc);
}

static void sign(const char *token, const char *body, size_t len, char out[72])
{
	unsigned char mac[32];
	unsigned int mac_len = 0;
	int i;

	HMAC(EVP_sha256(), token, (int)strlen(token), (const unsigned char *)body, len, mac,
	     &mac_len);
	strcpy(out, "sha256=");
	for (i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", mac[i]);
}

/* Every single-byte change of the body, and of the signature, is refused. */
static void test_tampering(void **state)
{
	const char *token = "secret_tamper_token";
	char body[] = "{\"id\":\"0f5c9a31-8a44-4a57-b8a5-2b6ad7a4f111\",\"type\":\"page.created\"}";
	char header[72];
	size_t i, len = strlen(body);

	(void)state;
	sign(token, body, len, header);
	assert_int_equal(nsync__webhook_signature(header, token, body, len), NSYNC_SIGNATURE_VALID);
	for (i = 0; i < len; i++) {
		body[i] ^= 1;
		assert_int_equal(nsync__webhook_signature(header, token, body, len),
				 NSYNC_SIGNATURE_MISMATCH);
		body[i] ^= 1;
	}
	/* A body cut short or with a byte more is another body. */
	assert_int_equal(nsync__webhook_signature(header, token, body, len - 1),
			 NSYNC_SIGNATURE_MISMATCH);
	for (i = 7; i < 71; i++) {
		char saved = header[i];
		header[i] = saved == '0' ? '1' : '0';
		assert_int_equal(nsync__webhook_signature(header, token, body, len),
				 NSYNC_SIGNATURE_MISMATCH);
		header[i] = saved;
	}
}

static void test_forms(void **state)
{
	const char *token = "secret_form_token", *body = "{}";
	char header[80], odd[96];

	(void)state;
	sign(token, body, 2, header);
	assert_int_equal(nsync__webhook_signature(NULL, token, body, 2), NSYNC_SIGNATURE_MISSING);
	assert_int_equal(nsync__webhook_signature("", token, body, 2), NSYNC_SIGNATURE_MISSING);
	/* 63 and 65 hex digits, another prefix, a space, a non-hex letter. */
	snprintf(odd, sizeof(odd), "%.70s", header);
	assert_int_equal(nsync__webhook_signature(odd, token, body, 2), NSYNC_SIGNATURE_MALFORMED);
	snprintf(odd, sizeof(odd), "%s0", header);
	assert_int_equal(nsync__webhook_signature(odd, token, body, 2), NSYNC_SIGNATURE_MALFORMED);
	snprintf(odd, sizeof(odd), "sha1=%s", header + 7);
	assert_int_equal(nsync__webhook_signature(odd, token, body, 2), NSYNC_SIGNATURE_MALFORMED);
	snprintf(odd, sizeof(odd), "sha256= %.63s", header + 7);
	assert_int_equal(nsync__webhook_signature(odd, token, body, 2), NSYNC_SIGNATURE_MALFORMED);
	snprintf(odd, sizeof(odd), "sha256=g%.63s", header + 8);
	assert_int_equal(nsync__webhook_signature(odd, token, body, 2), NSYNC_SIGNATURE_MALFORMED);
	assert_string_equal(nsync__webhook_signature_problem(NSYNC_SIGNATURE_MISMATCH),
			    "X-Notion-Signature does not match the body");
}

static void test_event_classes(void **state)
{
	static const struct {
		const char *type;
		enum nsync_event_class cls;
	} cases[] = {
		{"page.created", NSYNC_EVENT_PAGE},
		{"page.properties_updated", NSYNC_EVENT_PAGE},
		{"page.content_updated", NSYNC_EVENT_PAGE},
		{"page.undeleted", NSYNC_EVENT_PAGE},
		{"page.moved", NSYNC_EVENT_PAGE},
		{"page.deleted", NSYNC_EVENT_PAGE},
		{"data_source.schema_updated", NSYNC_EVENT_FULL},
		{"database.schema_updated", NSYNC_EVENT_FULL},
		{"data_source.content_updated", NSYNC_EVENT_SYNC},
		{"database.content_updated", NSYNC_EVENT_SYNC},
		{"data_source.created", NSYNC_EVENT_SYNC},
		{"data_source.deleted", NSYNC_EVENT_KEPT},
		{"database.deleted", NSYNC_EVENT_KEPT},
		{"page.locked", NSYNC_EVENT_IGNORED},
		{"comment.created", NSYNC_EVENT_IGNORED},
		{"file_upload.completed", NSYNC_EVENT_IGNORED},
		{"view.updated", NSYNC_EVENT_IGNORED},
		{"page.created ", NSYNC_EVENT_IGNORED},
		{"", NSYNC_EVENT_IGNORED},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (nsync__event_class(cases[i].type) != cases[i].cls)
			fail_msg("event type \"%s\": class %d, expected %d", cases[i].type,
				 (int)nsync__event_class(cases[i].type), (int)cases[i].cls);
	assert_int_equal(nsync__event_class(NULL), NSYNC_EVENT_IGNORED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sdk_vectors),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_event_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
