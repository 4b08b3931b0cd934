/*
 * pageread.c - several pages read from Notion at once (see pageread.h).
 * The caller's thread reads too; the others are started for one batch and
 * joined before it returns, so nothing outlives the call.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pageread.h"

struct batch {
	pthread_mutex_t lock;
	const struct nsync_notion_ctx *ctx;
	struct nsync_page_read *reads;
	size_t n, next;
};

struct reader {
	struct batch *batch;
	struct nsync_notion *client;
};

/* Read one page; its answer's text is copied out of the client's buffer,
 * which the next read reuses. */
static void read_one(struct nsync_notion *client, const struct nsync_notion_ctx *ctx,
		     struct nsync_page_read *r)
{
	struct nsync_notion_ctx c = *ctx;

	c.stats = &r->stats;
	r->rc = nsync__notion_get_page(client, &c, r->page_id, &r->qp, &r->err);
	if (r->rc != NSYNC_OK || !r->qp.raw)
		return;
	r->raw = malloc(r->qp.raw_len + 1);
	if (!r->raw) {
		nsync__query_page_clear(&r->qp);
		r->rc = nsync__err(&r->err, NSYNC_ERR_NOMEM, "out of memory reading a page");
		return;
	}
	memcpy(r->raw, r->qp.raw, r->qp.raw_len);
	r->raw[r->qp.raw_len] = '\0';
	r->qp.raw = r->raw;
}

static void *read_pages(void *arg)
{
	struct reader *rd = arg;
	struct batch *b = rd->batch;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&b->lock);
		i = b->next < b->n ? b->next++ : b->n;
		pthread_mutex_unlock(&b->lock);
		if (i == b->n)
			return NULL;
		read_one(rd->client, b->ctx, &b->reads[i]);
	}
}

void nsync__pages_read(struct nsync_notion *const *clients, size_t n_clients,
		       const struct nsync_notion_ctx *ctx, struct nsync_page_read *reads, size_t n)
{
	struct reader readers[NSYNC_PAGE_READERS];
	pthread_t threads[NSYNC_PAGE_READERS];
	int started[NSYNC_PAGE_READERS] = {0};
	struct batch b;
	size_t i;

	for (i = 0; i < n; i++)
		reads[i].rc = NSYNC_ERR_NOMEM; /* until read */
	if (n_clients > NSYNC_PAGE_READERS)
		n_clients = NSYNC_PAGE_READERS;
	if (n_clients > n)
		n_clients = n;
	pthread_mutex_init(&b.lock, NULL);
	b.ctx = ctx;
	b.reads = reads;
	b.n = n;
	b.next = 0;
	for (i = 0; i < n_clients; i++) {
		readers[i].batch = &b;
		readers[i].client = clients[i];
	}
	/* Without a thread, the reads it would have made fall to the others. */
	for (i = 1; i < n_clients; i++)
		started[i] = clients[i] &&
			     pthread_create(&threads[i], NULL, read_pages, &readers[i]) == 0;
	if (n_clients)
		read_pages(&readers[0]);
	for (i = 1; i < n_clients; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&b.lock);
}

void nsync__page_read_clear(struct nsync_page_read *r)
{
	nsync__query_page_clear(&r->qp);
	free(r->raw);
	r->raw = NULL;
}
