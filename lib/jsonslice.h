/*
 * jsonslice.h - locate raw byte ranges inside a Notion list response.
 *
 * Why: each page's `properties` goes to PostgreSQL as jsonb. Re-serialising
 * the json-c tree of every page costs about as much as parsing it; copying
 * the bytes Notion sent costs almost nothing. json-c does not report
 * offsets, so this small scanner walks the same text once (no allocation,
 * no decoding) and records where results[i].properties starts and ends.
 * The scanner trusts that the text is valid JSON: call it only on text
 * json-c has already parsed.
 */
#ifndef NSYNC_JSONSLICE_H
#define NSYNC_JSONSLICE_H

#include <stddef.h>

struct nsync_slice {
	size_t off;   /* byte offset of the value's first character */
	size_t len;   /* 0 if the member is absent */
};

/* nsync__slice_results_member - for each element of the top-level
 * "results" array, store the slice of its member `key` in out[i] (up to
 * max elements). Returns the number of elements seen (which may exceed
 * max; the extra ones are not stored), or -1 if the text is not an object
 * with a "results" array. */
long nsync__slice_results_member(const char *json, size_t len, const char *key,
				 struct nsync_slice *out, size_t max);

#endif
