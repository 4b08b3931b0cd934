/*
 * service.h - what the modules behind the public service share: the
 * service itself (configuration, PostgreSQL session, Notion client); the
 * pacers are the process's (pacer.h). The public calls are in
 * notionsync.h; a request flows plan.h -> runner.h -> answer.h.
 */
#ifndef NSYNC_SERVICE_H
#define NSYNC_SERVICE_H

#include <stdbool.h>

#include "http.h"
#include "notion.h"
#include "notionsync.h"
#include "pageread.h"
#include "store.h"

/* Most runs of one user a worker walks at once (NOTION_SYNC_PER_USER). */
#define NSYNC_MAX_PER_USER 16

struct nsync_service {
	struct nsync_config cfg; /* deep copy of the caller's */
	struct nsync_store store;
	struct nsync_notion *notion;
	struct nsync_service **lanes; /* services of a worker's concurrent runs (per_user) */
	/* more clients for the webhook lane's page reads (pageread.h), made
	   on first use; NULL until then */
	struct nsync_notion *readers[NSYNC_PAGE_READERS - 1];
	size_t n_lanes;
	struct nsync_stats last; /* totals of the last run */
	bool last_ok;            /* every job of the last run succeeded */
};

/* nsync__config_copy - *copy = *cfg with copies of its strings, which copy
 * owns (nsync_config_clear frees them): what a service, and a pool of
 * them, keeps of its caller's configuration. NSYNC_ERR_NOMEM, and then copy
 * owns no string. */
nsync_rc nsync__config_copy(struct nsync_config *copy, const struct nsync_config *cfg,
			    struct nsync_err *err);

#endif
