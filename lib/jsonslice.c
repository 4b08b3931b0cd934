/*
 * jsonslice.c - a non-allocating JSON skipper used to find raw slices
 * (see jsonslice.h).
 */
#include <string.h>

#include "jsonslice.h"

struct cursor {
	const char *p;
	const char *end;
};

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
		c->p++;
}

/* Skip a string starting at the opening quote; leaves c->p after the
 * closing quote. Returns 0 on malformed input. */
static int skip_string(struct cursor *c)
{
	const char *p = c->p + 1;

	while (p < c->end) {
		const char *q = memchr(p, '"', (size_t)(c->end - p));
		const char *b;
		size_t backslashes = 0;

		if (!q)
			return 0;
		/* The quote ends the string unless an odd number of backslashes precede it. */
		for (b = q; b > p && b[-1] == '\\'; b--)
			backslashes++;
		if (backslashes % 2 == 0) {
			c->p = q + 1;
			return 1;
		}
		p = q + 1;
	}
	return 0;
}

/* Skip any value; leaves c->p just after it. Returns 0 on malformed input. */
static int skip_value(struct cursor *c)
{
	int depth = 0;

	skip_ws(c);
	if (c->p >= c->end)
		return 0;
	if (*c->p == '"')
		return skip_string(c);
	if (*c->p != '{' && *c->p != '[') {
		while (c->p < c->end && !strchr(",}] \n\r\t", *c->p))
			c->p++;
		return 1;
	}
	while (c->p < c->end) {
		char ch = *c->p;

		if (ch == '"') {
			if (!skip_string(c))
				return 0;
			continue;
		}
		if (ch == '{' || ch == '[')
			depth++;
		else if (ch == '}' || ch == ']') {
			if (--depth == 0) {
				c->p++;
				return 1;
			}
		}
		c->p++;
	}
	return 0;
}

/* Read an object key at c->p (a string) and compare it to key without
 * decoding escapes (Notion's member names here are plain ASCII). Leaves c->p
 * after the colon. Returns -1 on malformed input, 1 if equal, 0 if not. */
static int read_key(struct cursor *c, const char *key, size_t keylen)
{
	const char *start;
	int equal;

	skip_ws(c);
	if (c->p >= c->end || *c->p != '"')
		return -1;
	start = c->p + 1;
	if (!skip_string(c))
		return -1;
	equal = (size_t)(c->p - 1 - start) == keylen && memcmp(start, key, keylen) == 0;
	skip_ws(c);
	if (c->p >= c->end || *c->p != ':')
		return -1;
	c->p++;
	skip_ws(c);
	return equal;
}

/* Position c after '{' of an object; iterate members until key is found.
 * On success c->p is at the value of key. Returns 1 found, 0 absent (c->p
 * after the closing brace), -1 malformed. */
static int find_member(struct cursor *c, const char *key)
{
	size_t keylen = strlen(key);

	skip_ws(c);
	if (c->p >= c->end || *c->p != '{')
		return -1;
	c->p++;
	for (;;) {
		int eq;

		skip_ws(c);
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			return 0;
		}
		eq = read_key(c, key, keylen);
		if (eq < 0)
			return -1;
		if (eq)
			return 1;
		if (!skip_value(c))
			return -1;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',')
			c->p++;
	}
}

/* After a member value inside an object, skip the remaining members and
 * the closing brace. A member named key (keylen > 0) among them is a
 * duplicate. Returns 1, 0 on malformed input, -2 on a duplicate. */
static int finish_object(struct cursor *c, const char *key, size_t keylen)
{
	for (;;) {
		int eq;

		skip_ws(c);
		if (c->p >= c->end)
			return 0;
		if (*c->p == '}') {
			c->p++;
			return 1;
		}
		if (*c->p != ',')
			return 0;
		c->p++;
		eq = read_key(c, key, keylen);
		if (eq < 0)
			return 0;
		if (eq && keylen)
			return -2;
		if (!skip_value(c))
			return 0;
	}
}

/* Take the slice of the value at c->p (the value of key in an object) and
 * finish that object. Returns 1, -1 malformed, -2 key appears twice. */
static int take_member(struct cursor *c, const char *json, const char *key, struct nsync_slice *out)
{
	const char *start = c->p;
	int done;

	if (!skip_value(c))
		return -1;
	out->off = (size_t)(start - json);
	out->len = (size_t)(c->p - start);
	done = finish_object(c, key, strlen(key));
	return done == 1 ? 1 : done == -2 ? -2 : -1;
}

int nsync__slice_member(const char *json, size_t len, const char *key, struct nsync_slice *out)
{
	struct cursor c = {json, json + len};
	int found;

	out->off = out->len = 0;
	found = find_member(&c, key);
	if (found != 1)
		return found;
	return take_member(&c, json, key, out);
}

/* Walk the elements of the top-level "results" array: with key, store the
 * slice of each element's member key; without, each whole element. */
static long walk_results(const char *json, size_t len, const char *key, struct nsync_slice *out,
			 size_t max)
{
	struct cursor c = {json, json + len};
	long n = 0;
	int found;

	if (find_member(&c, "results") != 1)
		return -1;
	skip_ws(&c);
	if (c.p >= c.end || *c.p != '[')
		return -1;
	c.p++;
	for (;;) {
		struct nsync_slice s = {0, 0};

		skip_ws(&c);
		if (c.p >= c.end)
			return -1;
		if (*c.p == ']')
			break;
		if (!key) {
			const char *start = c.p;
			if (!skip_value(&c))
				return -1;
			s.off = (size_t)(start - json);
			s.len = (size_t)(c.p - start);
		} else {
			/* One pass per element: find the member, take its slice, skip the rest. */
			found = find_member(&c, key);
			if (found < 0)
				return -1;
			if (found && (found = take_member(&c, json, key, &s)) < 0)
				return found;
		}
		if ((size_t)n < max)
			out[n] = s;
		n++;
		skip_ws(&c);
		if (c.p < c.end && *c.p == ',')
			c.p++;
	}
	c.p++;
	/* A second "results" would be the one json-c keeps. */
	found = finish_object(&c, "results", 7);
	return found == 1 ? n : found == -2 ? -2 : -1;
}

long nsync__slice_results_member(const char *json, size_t len, const char *key,
				 struct nsync_slice *out, size_t max)
{
	return walk_results(json, len, key, out, max);
}

long nsync__slice_results(const char *json, size_t len, struct nsync_slice *out, size_t max)
{
	return walk_results(json, len, NULL, out, max);
}
