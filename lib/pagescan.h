/*
 * pagescan.h - a Notion list answer read without a json-c tree.
 *
 * Why: building and freeing a json-c tree for every page (an object, a hash
 * table and a copied string per member) was most of the CPU a sync spent
 * per page. nsync__scan_answer reads a list answer once into a flat array
 * of nodes ("the tape") held in memory that is reused from answer to
 * answer; the content hash (canonhash.h), the mapped columns (mapping.h)
 * and the truncation check read the tape. json-c still reads everything
 * else: requests, small answers, the envelope of a list answer (has_more,
 * next_cursor), error answers, and the pages the tape is not used for.
 *
 * The scanner vouches only for what it reads exactly as json-c does:
 *  - strict JSON (RFC 8259): no comments, single quotes, NaN or Infinity,
 *    trailing commas, upper-case literals or raw control characters in
 *    strings, all of which json-c accepts in its own ways;
 *  - nesting at most NSYNC_SCAN_MAX_DEPTH levels, far below json-c's 128;
 *  - one top-level "results" member, an array of objects.
 * For anything else it declines, and the caller reads the answer with
 * json-c as before. Strings are decoded as json-c decodes them (escapes;
 * \uXXXX and surrogate pairs to UTF-8; every other byte as it is, valid
 * UTF-8 or not). A result holding \u0000 or a lone surrogate escape is
 * marked odd: json-c's C strings (keys cut at the NUL, strcmp on values)
 * and its replacement of lone surrogates are not reproduced here, so such a
 * result is read with json-c.
 */
#ifndef NSYNC_PAGESCAN_H
#define NSYNC_PAGESCAN_H

#include <stddef.h>
#include <stdint.h>

#include "notionsync.h"

struct json_object;

/* Deepest nesting read, counting the answer object as 1 (a Notion page
 * nests about 8 levels). */
#define NSYNC_SCAN_MAX_DEPTH 64

/* Members of each result that nsync__scan_answer finds (at most). */
#define NSYNC_SCAN_MAX_MEMBERS 8

/* "No node": an absent member. */
#define NSYNC_NO_NODE UINT32_MAX

enum nsync_node_type {
	NSYNC_NODE_NULL,
	NSYNC_NODE_TRUE,
	NSYNC_NODE_FALSE,
	NSYNC_NODE_INT,    /* a number without fraction or exponent: json-c's int */
	NSYNC_NODE_DOUBLE, /* any other number: json-c's double */
	NSYNC_NODE_STRING,
	NSYNC_NODE_ARRAY,
	NSYNC_NODE_OBJECT
};

/* One value. An object's children are its members in text order, each a
 * key (a STRING node) followed by the value's nodes; an array's children
 * are its elements. */
struct nsync_node {
	const char *s; /* STRING: the decoded bytes (not NUL-terminated); INT,
			  DOUBLE: the number's text; ARRAY, OBJECT: its '[' or '{' */
	uint32_t len;  /* STRING, INT, DOUBLE: bytes at s; ARRAY: elements; OBJECT: members */
	uint32_t span; /* ARRAY, OBJECT: bytes of its JSON text, brackets included */
	uint32_t next; /* the node after this value and all of its children */
	uint8_t type;  /* enum nsync_node_type */
};

/* One element of "results". */
struct nsync_scan_result {
	uint32_t node;                           /* the result's OBJECT node */
	uint32_t member[NSYNC_SCAN_MAX_MEMBERS]; /* value node of each name asked for */
	/* The same value, NUL-terminated, when a string, else NULL: copies in
	 * the arena, valid until the next scan even once the text is gone. */
	const char *string[NSYNC_SCAN_MAX_MEMBERS];
	int twice;    /* one of the names asked for appears twice */
	int odd;      /* holds \u0000 or a lone surrogate escape: read it with json-c */
	int bad_utf8; /* a string holds bytes that are not UTF-8 (json-c keeps them) */
};

/* The tape of one answer, and the memory reused for the next. Zero it
 * before the first use; nsync__scan_free releases it. */
struct nsync_scan {
	struct nsync_node *nodes;
	size_t n_nodes, cap_nodes;
	char *arena; /* decoded strings that held escapes, NUL-terminated copies */
	size_t arena_used, arena_cap;
	struct nsync_scan_result *results;
	size_t n_results, cap_results;
	size_t results_off, results_len; /* the text of the "results" array */
};

/* nsync__scan_answer - read text (len bytes; a list answer) into s,
 * replacing what s held. members (n_members <= NSYNC_SCAN_MAX_MEMBERS) are
 * the member names found in each result. Returns 1 when read, 0 when the
 * scanner declines (see above; s then holds nothing usable), -1 when out of
 * memory. The nodes point into text: keep it while s is used. */
int nsync__scan_answer(struct nsync_scan *s, const char *text, size_t len,
		       const char *const *members, size_t n_members);

void nsync__scan_free(struct nsync_scan *s);

/* nsync__scan_get - the value node of member key of node obj (the last one
 * when repeated: json-c keeps the last), or NSYNC_NO_NODE when obj is not
 * an object or has no such member. */
uint32_t nsync__scan_get(const struct nsync_scan *s, uint32_t obj, const char *key);

/* nsync__scan_get_n - the same for a key of len bytes (may hold any byte). */
uint32_t nsync__scan_get_n(const struct nsync_scan *s, uint32_t obj, const char *key, size_t len);

/* nsync__scan_is_string - 1 when node v (may be NSYNC_NO_NODE) is the
 * string str exactly. */
int nsync__scan_is_string(const struct nsync_scan *s, uint32_t v, const char *str);

/* The value json-c gives a number node, in the type json-c keeps it:
 * an INT below 2^63 is an int64 (clamped at INT64_MIN, as strtoll clamps),
 * a larger one a uint64 (clamped at UINT64_MAX), a DOUBLE what strtod
 * reads. */
struct nsync_number {
	enum { NSYNC_NUM_INT64, NSYNC_NUM_UINT64, NSYNC_NUM_DOUBLE } kind;
	int64_t i;
	uint64_t u;
	double d;
};

/* nsync__scan_number - the number of node v (INT or DOUBLE). 0 when its
 * text is too long to read here (over 63 bytes: never in Notion's
 * answers), else 1. */
int nsync__scan_number(const struct nsync_scan *s, uint32_t v, struct nsync_number *out);

/* nsync__scan_tree - *out = node v as the json-c tree json-c's parser
 * builds from its text (NULL for JSON null), new (put it). For the
 * results of an answer, not odd, whose hash the tape vouched for (no key
 * twice; numbers under 64 bytes). 0 when out of memory. */
int nsync__scan_tree(const struct nsync_scan *s, uint32_t v, struct json_object **out);

/* nsync__scan_props_may_be_truncated - nsync__props_may_be_truncated
 * (complete.h) on the properties object at node props. */
int nsync__scan_props_may_be_truncated(const struct nsync_scan *s, uint32_t props);

/* Iterating, where obj is an OBJECT node and arr an ARRAY node:
 *   for (k = obj + 1, m = 0; m < s->nodes[obj].len; m++, k = s->nodes[k + 1].next)
 *       key k, value k + 1
 *   for (e = arr + 1, m = 0; m < s->nodes[arr].len; m++, e = s->nodes[e].next)
 *       element e */

#endif
