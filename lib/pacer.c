/*
 * pacer.c - per-token pacing shared by every thread (see pacer.h).
 *
 * A fixed hash table of buckets, each a list of pacers; one mutex guards
 * the table (taken once per request, for a few instructions) and each
 * pacer's slot. Nothing is ever freed: a pointer handed out stays valid.
 */
#include <pthread.h>
#include <stdlib.h>

#include "clock.h"
#include "fnv.h"
#include "pacer.h"

#define BUCKETS 1024

struct nsync_pacer {
	unsigned long token_hash;
	double next_at; /* monotonic seconds: the next free start slot */
	struct nsync_pacer *next;
};

static struct nsync_pacer *table[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

struct nsync_pacer *nsync__pacer_get(const char *token)
{
	unsigned long h = nsync__fnv1a(token ? token : "");
	struct nsync_pacer *p;

	pthread_mutex_lock(&table_lock);
	for (p = table[h % BUCKETS]; p && p->token_hash != h; p = p->next)
		;
	if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
		p->token_hash = h;
		p->next = table[h % BUCKETS];
		table[h % BUCKETS] = p;
	}
	pthread_mutex_unlock(&table_lock);
	return p;
}

double nsync__pacer_reserve(struct nsync_pacer *pacer, double rate)
{
	double now, slot;

	if (!pacer || rate <= 0)
		return 0;
	pthread_mutex_lock(&table_lock);
	now = nsync__monotonic();
	slot = pacer->next_at > now ? pacer->next_at : now;
	pacer->next_at = slot + 1.0 / rate;
	pthread_mutex_unlock(&table_lock);
	return slot;
}
