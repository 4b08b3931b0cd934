/*
 * canonhash.h - the content hash that decides whether a page changed.
 *
 * MD5 over the page's properties plus its last_edited_time (README.md, "The
 * tables"), computed over a canonical form so that the hash changes only
 * when the content does:
 *  - object keys are visited in sorted order (Notion does not promise key
 *    order, and json-c keeps arrival order);
 *  - Notion-hosted file URLs are re-signed on every request: in a file
 *    object {"type":"file","file":{"url","expiry_time"}}, "expiry_time" is
 *    left out and "url" counts only up to its query string.
 * The hash walks the page as it was read: the scanner's tape of a query
 * answer (pagescan.h), or json-c's tree (a page fetched alone, a page the
 * scanner leaves to json-c, a page whose values were completed). Both
 * walks feed MD5 the same bytes for the same JSON; no serialisation.
 *
 * The canonical stream is a tagged encoding, not JSON (see canonhash.c):
 * an object is '{', for each member in sorted key order 'k' + key and its
 * value, then '}'; an array '[' its elements ']'; a string 's', an
 * integer 'i' (json-c's int64, "%lld"), a double 'd' ("%.17g"); null, true
 * and false 'n', 't', 'f'; then 'e' + last_edited_time. Tagged pieces
 * carry a 32-bit little-endian length.
 */
#ifndef NSYNC_CANONHASH_H
#define NSYNC_CANONHASH_H

#include <json-c/json.h>

#include "notionsync.h"
#include "pagescan.h"

#define NSYNC_HASH_HEX 33 /* 32 hex digits + NUL */

/* nsync__content_hash_tree - write the lowercase hex MD5 of (properties,
 * last_edited_time) to hex. properties may be NULL (hashed as null),
 * last_edited may be NULL (hashed as ""). NSYNC_ERR_NOMEM or
 * NSYNC_ERR_INTERNAL (libcrypto failure) with err filled. */
nsync_rc nsync__content_hash_tree(struct json_object *properties, const char *last_edited,
				  char hex[NSYNC_HASH_HEX], struct nsync_err *err);

/* nsync__content_hash_scan - the same hash of the properties at node props
 * of the tape s (NSYNC_NO_NODE: hashed as null). Where the tape cannot give
 * json-c's hash (an object with a key twice, of which json-c keeps the
 * last; a number of over 63 characters) *vouched is 0 and hex is not
 * written: hash the page's json-c tree instead. */
nsync_rc nsync__content_hash_scan(const struct nsync_scan *s, uint32_t props,
				  const char *last_edited, char hex[NSYNC_HASH_HEX], int *vouched,
				  struct nsync_err *err);

#endif
