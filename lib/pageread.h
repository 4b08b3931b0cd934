/*
 * pageread.h - several pages read from Notion at once. The webhook lane
 * reads each edited page with one GET; one at a time, each read waits out
 * Notion's latency in turn (2.5 reads a second at 400 ms, under the 3 a
 * token may send), and a steady stream of edits falls behind. So the lane
 * reads a few at once, each on its own client, all on the token's pacer.
 */
#ifndef NSYNC_PAGEREAD_H
#define NSYNC_PAGEREAD_H

#include "notion.h"
#include "notionsync.h"

/* Clients a service keeps for reading pages at once (its own included). */
#define NSYNC_PAGE_READERS 3

/* One page to read and what came of it. */
struct nsync_page_read {
	char page_id[37];           /* in */
	nsync_rc rc;                /* out: as nsync__notion_get_page */
	struct nsync_query_page qp; /* out, owned: its raw text is in raw */
	char *raw;                  /* owned copy of the answer's text */
	struct nsync_err err;       /* out, when rc is not NSYNC_OK */
	struct nsync_stats stats;   /* out: the requests and waits of this read */
};

/* nsync__pages_read - GET the n pages of reads, up to n_clients at once
 * (clients[i] used by one thread at a time; clients[0] by the caller's
 * thread), with ctx's token and pacer (ctx->stats is not used: each read
 * counts its own). Every read gets its rc; one that could not run (no
 * thread, no memory) is NSYNC_ERR_NOMEM. Free each with
 * nsync__page_read_clear. */
void nsync__pages_read(struct nsync_notion *const *clients, size_t n_clients,
		       const struct nsync_notion_ctx *ctx, struct nsync_page_read *reads, size_t n);

/* nsync__page_read_clear - free what a read holds; accepts a cleared one. */
void nsync__page_read_clear(struct nsync_page_read *r);

#endif
