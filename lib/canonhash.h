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
 * The hash walks the json-c tree already parsed for the page: no second
 * parse and no serialisation.
 */
#ifndef NSYNC_CANONHASH_H
#define NSYNC_CANONHASH_H

#include <json-c/json.h>

#include "notionsync.h"

#define NSYNC_HASH_HEX 33 /* 32 hex digits + NUL */

/* nsync__content_hash - write the lowercase hex MD5 of (properties,
 * last_edited_time) to hex. properties may be NULL (hashed as null),
 * last_edited may be NULL (hashed as ""). NSYNC_ERR_NOMEM or
 * NSYNC_ERR_INTERNAL (libcrypto failure) with err filled. */
nsync_rc nsync__content_hash(struct json_object *properties, const char *last_edited,
			     char hex[NSYNC_HASH_HEX], struct nsync_err *err);

#endif
