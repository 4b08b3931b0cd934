/*
 * canonhash.c - canonical MD5 of a page's properties (see canonhash.h).
 *
 * The canonical stream is a tagged encoding, not JSON: every string is
 * length-prefixed so that no two different values encode alike.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "canonhash.h"
#include "error.h"
#include "pagescan.h"

/* Tokens are gathered in a buffer and fed to MD5 in chunks: one
 * EVP_DigestUpdate per token would cost more than the hashing itself. */
struct hasher {
	EVP_MD_CTX *md;
	unsigned char buf[16384];
	size_t used;
	int failed;
};

static void flush_to_md5(struct hasher *h)
{
	if (EVP_DigestUpdate(h->md, h->buf, h->used) != 1)
		h->failed = 1;
	h->used = 0;
}

/* Feed what does not fit in the buffer. */
static __attribute__((noinline)) void feed_full(struct hasher *h, const void *p, size_t n)
{
	flush_to_md5(h);
	if (n > sizeof(h->buf)) {
		if (EVP_DigestUpdate(h->md, p, n) != 1)
			h->failed = 1;
		return;
	}
	memcpy(h->buf, p, n);
	h->used = n;
}

static inline void feed(struct hasher *h, const void *p, size_t n)
{
	if (h->used + n > sizeof(h->buf)) {
		feed_full(h, p, n);
		return;
	}
	memcpy(h->buf + h->used, p, n);
	h->used += n;
}

static inline void feed_tagged(struct hasher *h, char tag, const char *s, size_t n)
{
	/* Little-endian on every host, so stored hashes do not depend on the CPU. */
	unsigned char head[5] = {(unsigned char)tag, (unsigned char)n, (unsigned char)(n >> 8),
				 (unsigned char)(n >> 16), (unsigned char)(n >> 24)};

	if (h->used + sizeof(head) + n <= sizeof(h->buf)) {
		/* The common case, in one step. */
		memcpy(h->buf + h->used, head, sizeof(head));
		memcpy(h->buf + h->used + sizeof(head), s, n);
		h->used += sizeof(head) + n;
		return;
	}
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

/* Hash the tape's object v: its members sorted by key, bytewise as
 * strcmp sorts them (keys hold no NUL: such results are not read here). */
struct key_ref {
	const char *key;
	uint32_t len;
	uint32_t val;
};

static inline int key_cmp(const struct key_ref *a, const struct key_ref *b)
{
	uint32_t n = a->len < b->len ? a->len : b->len;
	int c = n ? (unsigned char)a->key[0] - (unsigned char)b->key[0] : 0;

	if (c == 0 && n > 1)
		c = memcmp(a->key + 1, b->key + 1, n - 1);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cmp_key_ref(const void *a, const void *b)
{
	return key_cmp(a, b);
}

static int is_key(const struct key_ref *m, const char *key, size_t n)
{
	return m->len == n && memcmp(m->key, key, n) == 0;
}

/* What hashing a tape node gives: hashed, out of memory, or a value the
 * tape does not hash as json-c's tree would (a key twice, where json-c
 * keeps the last; a number too long to read). */
enum { NODE_HASHED = 1, NODE_NOMEM = 0, NODE_NOT_VOUCHED = -1 };

static int hash_node(struct hasher *h, const struct nsync_scan *s, uint32_t v, int is_file_object);

static int hash_members(struct hasher *h, const struct nsync_scan *s, uint32_t v,
			int is_file_object)
{
	struct key_ref stack_members[32];
	struct key_ref *members = stack_members;
	size_t n = s->nodes[v].len, i, j;
	uint32_t k;
	int holds_file = 0, rc = NODE_HASHED;

	if (n > sizeof(stack_members) / sizeof(stack_members[0])) {
		members = malloc(n * sizeof(*members));
		if (!members)
			return NODE_NOMEM;
	}
	for (k = v + 1, i = 0; i < n; i++, k = s->nodes[k + 1].next) {
		members[i].key = s->nodes[k].s;
		members[i].len = s->nodes[k].len;
		members[i].val = k + 1;
	}
	if (members != stack_members) {
		qsort(members, n, sizeof(*members), cmp_key_ref);
	} else {
		for (i = 1; i < n; i++) { /* a Notion object has a few members */
			struct key_ref m = members[i];
			for (j = i; j > 0 && key_cmp(&members[j - 1], &m) > 0; j--)
				members[j] = members[j - 1];
			members[j] = m;
		}
	}
	for (i = 1; i < n; i++)
		if (key_cmp(&members[i - 1], &members[i]) == 0) {
			rc = NODE_NOT_VOUCHED;
			goto out;
		}
	for (i = 0; i < n; i++)
		if (is_key(&members[i], "type", 4)) {
			holds_file = nsync__scan_is_string(s, members[i].val, "file");
			break;
		}

	feed(h, "{", 1);
	for (i = 0; i < n && rc == NODE_HASHED; i++) {
		const struct key_ref *m = &members[i];
		const struct nsync_node *val = &s->nodes[m->val];

		if (is_file_object && is_key(m, "expiry_time", 11))
			continue;
		feed_tagged(h, 'k', m->key, m->len);
		if (is_file_object && is_key(m, "url", 3) && val->type == NSYNC_NODE_STRING) {
			const char *q = memchr(val->s, '?', val->len);
			feed_tagged(h, 's', val->s, q ? (size_t)(q - val->s) : val->len);
			continue;
		}
		rc = hash_node(h, s, m->val, holds_file && is_key(m, "file", 4));
	}
	feed(h, "}", 1);
out:
	if (members != stack_members)
		free(members);
	return rc;
}

/* An integer as json-c's int64 prints it ("%lld"; values past int64 are
 * clamped, and json_object_get_int64 gives INT64_MAX for a larger uint64). */
static int hash_int(struct hasher *h, const struct nsync_scan *s, uint32_t v)
{
	const struct nsync_node *n = &s->nodes[v];
	struct nsync_number num;
	char text[24];

	/* Up to 18 digits the text is already what "%lld" prints (JSON has
	 * no leading zeros), but for "-0". */
	if (n->len <= 18 + (n->s[0] == '-')) {
		if (n->len == 2 && n->s[0] == '-' && n->s[1] == '0')
			feed_tagged(h, 'i', "0", 1);
		else
			feed_tagged(h, 'i', n->s, n->len);
		return NODE_HASHED;
	}
	if (!nsync__scan_number(s, v, &num))
		return NODE_NOT_VOUCHED;
	snprintf(text, sizeof(text), "%lld",
		 num.kind == NSYNC_NUM_UINT64 ? (long long)INT64_MAX : (long long)num.i);
	feed_tagged(h, 'i', text, strlen(text));
	return NODE_HASHED;
}

static int hash_node(struct hasher *h, const struct nsync_scan *s, uint32_t v, int is_file_object)
{
	const struct nsync_node *n = &s->nodes[v];
	struct nsync_number num;
	char text[40];
	uint32_t e, i;
	int rc;

	switch (n->type) {
	case NSYNC_NODE_NULL:
		feed(h, "n", 1);
		return NODE_HASHED;
	case NSYNC_NODE_TRUE:
		feed(h, "t", 1);
		return NODE_HASHED;
	case NSYNC_NODE_FALSE:
		feed(h, "f", 1);
		return NODE_HASHED;
	case NSYNC_NODE_INT:
		return hash_int(h, s, v);
	case NSYNC_NODE_DOUBLE:
		if (!nsync__scan_number(s, v, &num))
			return NODE_NOT_VOUCHED;
		snprintf(text, sizeof(text), "%.17g", num.d);
		feed_tagged(h, 'd', text, strlen(text));
		return NODE_HASHED;
	case NSYNC_NODE_STRING:
		feed_tagged(h, 's', n->s, n->len);
		return NODE_HASHED;
	case NSYNC_NODE_ARRAY:
		feed(h, "[", 1);
		for (e = v + 1, i = 0; i < n->len; i++, e = s->nodes[e].next)
			if ((rc = hash_node(h, s, e, 0)) != NODE_HASHED)
				return rc;
		feed(h, "]", 1);
		return NODE_HASHED;
	case NSYNC_NODE_OBJECT:
		return hash_members(h, s, v, is_file_object);
	}
	return NODE_NOMEM;
}

/* MD5, fetched from the provider once: EVP_md5() is fetched again on
 * every EVP_DigestInit_ex, which costs more than hashing a small page. */
static EVP_MD *md5_fetched;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void fetch_md5(void)
{
	md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
}

/* Begin a hash: NSYNC_OK, or NSYNC_ERR_NOMEM with err filled. */
static nsync_rc hasher_start(struct hasher *h, struct nsync_err *err)
{
	h->used = 0;
	h->failed = 0;
	h->md = EVP_MD_CTX_new();
	if (!h->md)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory hashing a page");
	pthread_once(&md5_once, fetch_md5);
	if (EVP_DigestInit_ex(h->md, md5_fetched ? md5_fetched : EVP_md5(), NULL) != 1)
		h->failed = 1;
	return NSYNC_OK;
}

/* End a hash begun by hasher_start with last_edited, and write it to hex. */
static nsync_rc hasher_finish(struct hasher *h, const char *last_edited, char hex[NSYNC_HASH_HEX],
			      struct nsync_err *err)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	int ok;

	feed_tagged(h, 'e', last_edited ? last_edited : "", last_edited ? strlen(last_edited) : 0);
	ok = !h->failed && EVP_DigestUpdate(h->md, h->buf, h->used) == 1 &&
	     EVP_DigestFinal_ex(h->md, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(h->md);
	if (!ok)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "libcrypto could not compute MD5");
	for (i = 0; i < 16; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[32] = '\0';
	return NSYNC_OK;
}

static nsync_rc out_of_memory(struct hasher *h, struct nsync_err *err)
{
	EVP_MD_CTX_free(h->md);
	return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory hashing a page");
}

nsync_rc nsync__content_hash_tree(struct json_object *properties, const char *last_edited,
				  char hex[NSYNC_HASH_HEX], struct nsync_err *err)
{
	struct hasher h;
	nsync_rc rc = hasher_start(&h, err);

	if (rc != NSYNC_OK)
		return rc;
	if (!hash_value(&h, properties, 0))
		return out_of_memory(&h, err);
	return hasher_finish(&h, last_edited, hex, err);
}

nsync_rc nsync__content_hash_scan(const struct nsync_scan *s, uint32_t props,
				  const char *last_edited, char hex[NSYNC_HASH_HEX], int *vouched,
				  struct nsync_err *err)
{
	struct hasher h;
	nsync_rc rc = hasher_start(&h, err);
	int hashed;

	*vouched = 1;
	if (rc != NSYNC_OK)
		return rc;
	if (props == NSYNC_NO_NODE)
		feed(&h, "n", 1);
	else if ((hashed = hash_node(&h, s, props, 0)) == NODE_NOMEM)
		return out_of_memory(&h, err);
	else if (hashed == NODE_NOT_VOUCHED) {
		EVP_MD_CTX_free(h.md);
		*vouched = 0;
		return NSYNC_OK;
	}
	return hasher_finish(&h, last_edited, hex, err);
}
