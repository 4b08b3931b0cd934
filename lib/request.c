/*
 * request.c - parsing a sync request body and normalising Notion ids
 * (declared in notionsync.h). Everything a caller sends is checked here,
 * before any database or Notion work starts.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "notionsync.h"
#include "text.h"

/* Bodies are tiny; anything nested deeper than this is not a sync request. */
#define REQUEST_JSON_DEPTH 8

nsync_rc nsync_normalize_id(const char *in, char out[37], struct nsync_err *err)
{
	static const char hex[] = "0123456789abcdef";
	char digits[32];
	size_t n = 0, i, o = 0;

	if (!in || !out)
		return nsync__err(err, NSYNC_ERR_ARG, "id is missing");
	for (i = 0; in[i]; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '-')
			continue;
		if (!isxdigit(c) || n == 32)
			return nsync__err(err, NSYNC_ERR_ARG,
					  "not a UUID (32 hexadecimal digits, dashes optional)");
		digits[n++] = hex[isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10)];
	}
	if (n != 32)
		return nsync__err(err, NSYNC_ERR_ARG,
				  "not a UUID (32 hexadecimal digits, dashes optional)");
	for (i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[o++] = '-';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	return NSYNC_OK;
}

/* 1 when s (len bytes) is valid UTF-8 without NUL. json-c's own check
 * only looks at the byte structure and lets surrogates and overlong forms
 * through, which PostgreSQL would then refuse. */
static int valid_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] == 0)
			return 0;
		n = nsync__utf8_seq_len(p + i, len - i);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

/* Read an optional string member into out (size bytes). Absent or null
 * leaves out empty; *present tells an empty string from absence. */
static nsync_rc get_string(struct json_object *root, const char *key, char *out, size_t size,
			   int *present, struct nsync_err *err)
{
	struct json_object *v;

	out[0] = '\0';
	*present = 0;
	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
		return NSYNC_OK;
	if (!json_object_is_type(v, json_type_string))
		return nsync__err(err, NSYNC_ERR_ARG, "\"%s\" must be a string", key);
	if ((size_t)json_object_get_string_len(v) >= size)
		return nsync__err(err, NSYNC_ERR_ARG, "\"%s\" is too long (at most %zu characters)",
				  key, size - 1);
	if (!valid_utf8(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
		return nsync__err(err, NSYNC_ERR_ARG, "\"%s\" is not valid UTF-8 text", key);
	*present = 1;
	snprintf(out, size, "%s", json_object_get_string(v));
	return NSYNC_OK;
}

static nsync_rc get_bool(struct json_object *root, const char *key, bool *out,
			 struct nsync_err *err)
{
	struct json_object *v;

	*out = false;
	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
		return NSYNC_OK;
	if (!json_object_is_type(v, json_type_boolean))
		return nsync__err(err, NSYNC_ERR_ARG, "\"%s\" must be true or false", key);
	*out = json_object_get_boolean(v);
	return NSYNC_OK;
}

/* Normalise an id member in place; the message names the field. An empty
 * string is not "absent" (that is null or no member): it must not widen
 * the request to every user or every database. */
static nsync_rc check_id(char *id, int present, const char *key, struct nsync_err *err)
{
	char norm[37];

	if (!present)
		return NSYNC_OK;
	if (nsync_normalize_id(id, norm, err) != NSYNC_OK)
		return nsync__err(err, NSYNC_ERR_ARG,
				  "\"%s\" is not a UUID (32 hexadecimal digits, "
				  "dashes optional)",
				  key);
	memcpy(id, norm, sizeof(norm));
	return NSYNC_OK;
}

nsync_rc nsync_request_parse(const char *body, size_t len, struct nsync_request *req,
			     struct nsync_err *err)
{
	struct json_tokener *tok;
	struct json_object *root = NULL;
	int has_user = 0, has_db = 0, has_name = 0;
	enum json_tokener_error jerr;
	size_t i;
	nsync_rc rc = NSYNC_OK;

	if (!req || (!body && len))
		return nsync__err(err, NSYNC_ERR_ARG,
				  "nsync_request_parse: a request and a body are "
				  "required");
	memset(req, 0, sizeof(*req));
	for (i = 0; i < len && isspace((unsigned char)body[i]); i++)
		;
	if (i == len)
		return NSYNC_OK; /* no body: every user, every database */
	if (len > 0x7fffffff)
		return nsync__err(err, NSYNC_ERR_ARG, "request body is too large");
	tok = json_tokener_new_ex(REQUEST_JSON_DEPTH);
	if (!tok)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory parsing the request");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
	}
	if (jerr == json_tokener_success) {
		/* Trailing garbage after the object is malformed too. */
		size_t end = json_tokener_get_parse_end(tok);
		for (; end < len && isspace((unsigned char)body[end]); end++)
			;
		if (end < len)
			jerr = json_tokener_error_parse_unexpected;
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success) {
		json_object_put(root);
		return nsync__err(err, NSYNC_ERR_ARG, "request body is not valid JSON: %s",
				  json_tokener_error_desc(jerr));
	}
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return nsync__err(err, NSYNC_ERR_ARG, "request body must be a JSON object");
	}
	if ((rc = get_string(root, "user_id", req->user_id, sizeof(req->user_id), &has_user,
			     err)) ||
	    (rc = check_id(req->user_id, has_user, "user_id", err)) ||
	    (rc = get_string(root, "database_id", req->database_id, sizeof(req->database_id),
			     &has_db, err)) ||
	    (rc = check_id(req->database_id, has_db, "database_id", err)) ||
	    (rc = get_string(root, "database_name", req->database_name, sizeof(req->database_name),
			     &has_name, err)) ||
	    (rc = get_bool(root, "full", &req->full, err)) ||
	    (rc = get_bool(root, "async", &req->async, err)))
		memset(req, 0, sizeof(*req));
	json_object_put(root);
	return rc;
}
