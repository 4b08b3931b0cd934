/*
 * pagemap.c - open-addressing map from page id to content hash (see
 * pagemap.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pagemap.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nsync__hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
	size_t i = 0;

	while (i < 2 * n) {
		int v;
		if (*hex == '-') {
			hex++;
			continue;
		}
		v = hexval(*hex++);
		if (v < 0)
			return 0;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
		i++;
	}
	return *hex == '\0';
}

void nsync__pagemap_init(struct nsync_pagemap *m)
{
	memset(m, 0, sizeof(*m));
}

void nsync__pagemap_free(struct nsync_pagemap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* Page ids are random UUIDs (v4) or time-ordered ones (Notion's own ids
 * share prefixes), so mix all 16 bytes. */
static size_t slot_of(const uint8_t id[16], size_t cap)
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	a ^= b * 0x9E3779B97F4A7C15ULL;
	a ^= a >> 29;
	a *= 0xBF58476D1CE4E5B9ULL;
	a ^= a >> 32;
	return (size_t)a & (cap - 1);
}

static struct nsync_pagemap_slot *find(const struct nsync_pagemap *m, const uint8_t id[16])
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		struct nsync_pagemap_slot *s = &m->slots[i];
		if (!s->used)
			return NULL;
		if (memcmp(s->id, id, 16) == 0)
			return s;
	}
}

static int grow(struct nsync_pagemap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024, i;
	struct nsync_pagemap_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return 0;
	for (i = 0; i < m->cap; i++) {
		size_t j;
		if (!m->slots[i].used)
			continue;
		for (j = slot_of(m->slots[i].id, cap); slots[j].used; j = (j + 1) & (cap - 1))
			;
		slots[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 1;
}

struct nsync_pagemap_slot *nsync__pagemap_set(struct nsync_pagemap *m, const uint8_t id[16],
					      const uint8_t hash[16])
{
	struct nsync_pagemap_slot *s = find(m, id);
	size_t i;

	if (!s) {
		/* Keep the load under 3/4 so probes stay short. */
		if ((m->count + 1) * 4 > m->cap * 3 && !grow(m))
			return NULL;
		for (i = slot_of(id, m->cap); m->slots[i].used; i = (i + 1) & (m->cap - 1))
			;
		s = &m->slots[i];
		s->used = 1;
		memcpy(s->id, id, 16);
		m->count++;
	}
	memcpy(s->hash, hash, 16);
	return s;
}

struct nsync_pagemap_slot *nsync__pagemap_find(const struct nsync_pagemap *m, const uint8_t id[16])
{
	return find(m, id);
}

struct nsync_pagemap_slot *nsync__pagemap_put(struct nsync_pagemap *m, const char *id,
					      const char *hash_hex, nsync_rc *rc)
{
	uint8_t key[16], hash[16];
	struct nsync_pagemap_slot *s;

	if (!nsync__hex_to_bytes(id, key, 16) || !nsync__hex_to_bytes(hash_hex, hash, 16)) {
		*rc = NSYNC_ERR_ARG;
		return NULL;
	}
	s = nsync__pagemap_set(m, key, hash);
	*rc = s ? NSYNC_OK : NSYNC_ERR_NOMEM;
	return s;
}

struct nsync_pagemap_slot *nsync__pagemap_get(const struct nsync_pagemap *m, const char *id)
{
	uint8_t key[16];

	if (!nsync__hex_to_bytes(id, key, 16))
		return NULL;
	return find(m, key);
}
