/*
 * service.h - what the modules behind the public service share: the
 * service itself (configuration, PostgreSQL session, Notion client, one
 * pacer per token) and the pacer lookup. The public calls are in
 * notionsync.h; a request flows plan.h -> runner.h -> answer.h.
 */
#ifndef NSYNC_SERVICE_H
#define NSYNC_SERVICE_H

#include <stdbool.h>

#include "http.h"
#include "notion.h"
#include "notionsync.h"
#include "store.h"

struct nsync_service {
	struct nsync_config cfg; /* deep copy of the caller's */
	struct nsync_store store;
	struct nsync_notion *notion;
	struct nsync_pacer *pacers; /* one per token seen, by hash */
	size_t n_pacers;
	struct nsync_stats last; /* totals of the last run */
	bool last_ok;            /* every job of the last run succeeded */
};

/* nsync__config_copy - *copy = *cfg with copies of its strings, which copy
 * owns (nsync_config_clear frees them): what a service, and a pool of
 * them, keeps of its caller's configuration. NSYNC_ERR_NOMEM, and then copy
 * owns no string. */
nsync_rc nsync__config_copy(struct nsync_config *copy, const struct nsync_config *cfg,
			    struct nsync_err *err);

/* nsync__pacer_for - the pacer of token (kept by its hash), created on
 * first use. NULL only when out of memory: the requests then go unpaced. */
struct nsync_pacer *nsync__pacer_for(struct nsync_service *svc, const char *token);

#endif
