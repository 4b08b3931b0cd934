/*
 * canonhash.c - canonical MD5 of a page's properties (see canonhash.h).
 *
 * The canonical stream is a tagged encoding, not JSON: every string is
 * length-prefixed so that no two different values encode alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "canonhash.h"
#include "error.h"

/* Tokens are gathered in a small buffer and fed to MD5 in chunks: one
 * EVP_DigestUpdate per token would cost more than the hashing itself. */
struct hasher {
	EVP_MD_CTX *md;
	unsigned char buf[4096];
	size_t used;
	int failed;
};

static void feed(struct hasher *h, const void *p, size_t n)
{
	if (h->used + n > sizeof(h->buf)) {
		if (EVP_DigestUpdate(h->md, h->buf, h->used) != 1)
			h->failed = 1;
		h->used = 0;
		if (n > sizeof(h->buf)) {
			if (EVP_DigestUpdate(h->md, p, n) != 1)
				h->failed = 1;
			return;
		}
	}
	memcpy(h->buf + h->used, p, n);
	h->used += n;
}

static void feed_tagged(struct hasher *h, char tag, const char *s, size_t n)
{
	/* Little-endian on every host, so stored hashes do not depend on the CPU. */
	unsigned char head[5] = {(unsigned char)tag, (unsigned char)n, (unsigned char)(n >> 8),
				 (unsigned char)(n >> 16), (unsigned char)(n >> 24)};

	feed(h, head, sizeof(head));
	feed(h, s, n);
}

struct member {
	const char *key;
	struct json_object *val;
};

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct member *)a)->key, ((const struct member *)b)->key);
}

static int hash_value(struct hasher *h, struct json_object *v, int in_file_object);

static int hash_object(struct hasher *h, struct json_object *obj, int is_file_object)
{
	struct member stack_members[32];
	struct member *members = stack_members;
	size_t n = 0, count = (size_t)json_object_object_length(obj), i;
	struct json_object_iterator it, end;
	int holds_file = 0;

	if (count > sizeof(stack_members) / sizeof(stack_members[0])) {
		members = malloc(count * sizeof(*members));
		if (!members)
			return 0;
	}
	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	while (!json_object_iter_equal(&it, &end) && n < count) {
		members[n].key = json_object_iter_peek_name(&it);
		members[n].val = json_object_iter_peek_value(&it);
		n++;
		json_object_iter_next(&it);
	}
	if (n > 1)
		qsort(members, n, sizeof(*members), cmp_member);
	/* Only a real file object ({"type":"file","file":{url,expiry_time}})
	 * has a re-signed URL; a user property that happens to be called
	 * "file" keeps every byte of its value. */
	for (i = 0; i < n; i++)
		if (strcmp(members[i].key, "type") == 0) {
			holds_file = json_object_is_type(members[i].val, json_type_string) &&
				     strcmp(json_object_get_string(members[i].val), "file") == 0;
			break;
		}

	feed(h, "{", 1);
	for (i = 0; i < n; i++) {
		const char *key = members[i].key;
		struct json_object *val = members[i].val;

		if (is_file_object && strcmp(key, "expiry_time") == 0)
			continue; /* changes on every fetch */
		feed_tagged(h, 'k', key, strlen(key));
		if (is_file_object && strcmp(key, "url") == 0 &&
		    json_object_is_type(val, json_type_string)) {
			const char *url = json_object_get_string(val);
			const char *q = strchr(url, '?');
			/* The signature in the query string changes on every fetch. */
			feed_tagged(h, 's', url, q ? (size_t)(q - url) : strlen(url));
			continue;
		}
		if (!hash_value(h, val, holds_file && strcmp(key, "file") == 0))
			goto fail;
	}
	feed(h, "}", 1);
	if (members != stack_members)
		free(members);
	return 1;
fail:
	if (members != stack_members)
		free(members);
	return 0;
}

static int hash_value(struct hasher *h, struct json_object *v, int is_file_object)
{
	char num[40];
	size_t i, n;

	switch (json_object_get_type(v)) {
	case json_type_null:
		feed(h, "n", 1);
		return 1;
	case json_type_boolean:
		feed(h, json_object_get_boolean(v) ? "t" : "f", 1);
		return 1;
	case json_type_int:
		snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
		feed_tagged(h, 'i', num, strlen(num));
		return 1;
	case json_type_double:
		snprintf(num, sizeof(num), "%.17g", json_object_get_double(v));
		feed_tagged(h, 'd', num, strlen(num));
		return 1;
	case json_type_string:
		feed_tagged(h, 's', json_object_get_string(v),
			    (size_t)json_object_get_string_len(v));
		return 1;
	case json_type_array:
		n = json_object_array_length(v);
		feed(h, "[", 1);
		for (i = 0; i < n; i++)
			if (!hash_value(h, json_object_array_get_idx(v, i), 0))
				return 0;
		feed(h, "]", 1);
		return 1;
	case json_type_object:
		return hash_object(h, v, is_file_object);
	}
	return 0;
}

nsync_rc nsync__content_hash(struct json_object *properties, const char *last_edited,
			     char hex[NSYNC_HASH_HEX], struct nsync_err *err)
{
	static const char digits[] = "0123456789abcdef";
	struct hasher h;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	int ok;

	h.md = EVP_MD_CTX_new();
	h.used = 0;
	h.failed = 0;
	if (!h.md)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory hashing a page");
	ok = EVP_DigestInit_ex(h.md, EVP_md5(), NULL) == 1;
	if (ok) {
		ok = hash_value(&h, properties, 0);
		if (!ok) {
			EVP_MD_CTX_free(h.md);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory hashing a page");
		}
		feed_tagged(&h, 'e', last_edited ? last_edited : "",
			    last_edited ? strlen(last_edited) : 0);
		ok = !h.failed && EVP_DigestUpdate(h.md, h.buf, h.used) == 1 &&
		     EVP_DigestFinal_ex(h.md, md, &mdlen) == 1 && mdlen == 16;
	}
	EVP_MD_CTX_free(h.md);
	if (!ok)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "libcrypto could not compute MD5");
	for (i = 0; i < 16; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[32] = '\0';
	return NSYNC_OK;
}
