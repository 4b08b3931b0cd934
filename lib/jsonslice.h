/*
 * jsonslice.h - locate raw byte ranges inside a Notion list response.
 *
 * Why: each page's `properties` goes to PostgreSQL as jsonb. Re-serialising
 * the json-c tree of every page costs about as much as parsing it; copying
 * the bytes Notion sent costs almost nothing. json-c does not report
 * offsets, so this small scanner walks the same text once (no allocation,
 * no decoding) and records where results[i].properties starts and ends.
 * The scanner never reads outside the text and reports malformed input,
 * but it does not validate: call it on text json-c has parsed (or is about
 * to parse, element by element).
 */
#ifndef NSYNC_JSONSLICE_H
#define NSYNC_JSONSLICE_H

#include <stddef.h>

struct nsync_slice {
	size_t off; /* byte offset of the value's first character */
	size_t len; /* 0 if the member is absent */
};

/* Returned when a member appears twice where it is looked for: json-c
 * keeps the last, this scanner finds the first, so the two would disagree. */
#define NSYNC_SLICE_DUPLICATE (-2)

/* nsync__slice_results_member - for each element of the top-level
 * "results" array, store the slice of its member `key` in out[i] (up to
 * max elements). Returns the number of elements seen (which may exceed
 * max; the extra ones are not stored), -1 if the text is not an object
 * with a "results" array, NSYNC_SLICE_DUPLICATE if the answer has two
 * "results" or an element has key twice. */
long nsync__slice_results_member(const char *json, size_t len, const char *key,
				 struct nsync_slice *out, size_t max);

/* nsync__slice_results - the same, storing each whole element. */
long nsync__slice_results(const char *json, size_t len, struct nsync_slice *out, size_t max);

/* nsync__slice_member - the slice of member key of the object json.
 * Returns 1 found, 0 absent, -1 malformed, NSYNC_SLICE_DUPLICATE. */
int nsync__slice_member(const char *json, size_t len, const char *key, struct nsync_slice *out);

#endif
