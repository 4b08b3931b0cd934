/*
 * pagemap.h - the content hashes already stored for one database, keyed by
 * page id, read once at the start of a sync so that unchanged pages cost
 * no round trip to PostgreSQL.
 *
 * Compact on purpose (35 bytes a slot, open addressing, binary ids and
 * digests): 20,000 pages take about 1 MB, so memory stays flat as a
 * database grows.
 */
#ifndef NSYNC_PAGEMAP_H
#define NSYNC_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "notionsync.h"

struct nsync_pagemap_slot {
	uint8_t id[16];
	uint8_t hash[16];
	uint8_t used;
	uint8_t queued; /* in the batch not yet written */
	uint8_t seen;   /* returned by Notion in this walk (windows overlap) */
};

struct nsync_pagemap {
	struct nsync_pagemap_slot *slots; /* owned */
	size_t cap;                       /* power of two */
	size_t count;
};

/* nsync__pagemap_init - an empty map. */
void nsync__pagemap_init(struct nsync_pagemap *m);
void nsync__pagemap_free(struct nsync_pagemap *m);

/* nsync__pagemap_put - set the hash of page id (both as hex text: a dashed
 * or plain UUID, and 32 hex digits). Returns the slot, or NULL if the text
 * is not an id/hash (NSYNC_ERR_ARG) or memory ran out (NSYNC_ERR_NOMEM),
 * with *rc set. The pointer is valid until the next put. */
struct nsync_pagemap_slot *nsync__pagemap_put(struct nsync_pagemap *m, const char *id,
					      const char *hash_hex, nsync_rc *rc);

/* nsync__pagemap_set - the binary form of nsync__pagemap_put, for callers
 * that already hold the 16 id bytes and 16 digest bytes. NULL only when
 * memory runs out. */
struct nsync_pagemap_slot *nsync__pagemap_set(struct nsync_pagemap *m, const uint8_t id[16],
					      const uint8_t hash[16]);

/* nsync__pagemap_find - the slot of a binary page id, or NULL. */
struct nsync_pagemap_slot *nsync__pagemap_find(const struct nsync_pagemap *m, const uint8_t id[16]);

/* nsync__pagemap_get - the slot of page id, or NULL. */
struct nsync_pagemap_slot *nsync__pagemap_get(const struct nsync_pagemap *m, const char *id);

/* nsync__hex_to_bytes - parse 2*n hex digits (dashes skipped) into out.
 * Returns 1 on success, 0 if the text is not exactly that. */
int nsync__hex_to_bytes(const char *hex, uint8_t *out, size_t n);

#endif
