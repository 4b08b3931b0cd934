/*
 * discover.h - finding a user's databases when none are registered: one
 * Notion search per kind (Characters, Worlds, Stories, Chat Sessions),
 * then each candidate database read, because search answers data sources
 * whose own names may differ from their database's title. A kind whose
 * title names exactly one database with readable data sources is
 * registered. The one meaning of what else is found, for every path (the
 * synchronous answer and the queued discovery run alike): several
 * databases with one kind's title are a duplicate_title problem, a
 * database listing no readable data source a no_data_sources problem;
 * neither is registered, and the other kinds go on.
 */
#ifndef NSYNC_DISCOVER_H
#define NSYNC_DISCOVER_H

#include "service.h"

/* Most distinct databases remembered per kind title (more are counted). */
#define NSYNC_MAX_CANDIDATES 8

/* The databases whose title is one kind's, as discovery found them. */
struct nsync_candidates {
	const struct nsync_kind *kind;
	size_t n; /* distinct databases with that title */
	char ids[NSYNC_MAX_CANDIDATES][37];
	size_t n_empty; /* of those, listing no readable data source */
	char empty[NSYNC_MAX_CANDIDATES][37];
};

struct nsync_discovery {
	struct nsync_candidates kinds[4];
	size_t n_kinds;
};

/* nsync__discover - find and register user_id's databases (see above),
 * counting requests in stats. d receives every kind found. Fails with
 * NSYNC_ERR_NOT_FOUND when no database has a kind's title, or with the
 * Notion/PostgreSQL error that stopped it. */
nsync_rc nsync__discover(struct nsync_service *svc, const char *user_id, struct nsync_stats *stats,
			 struct nsync_discovery *d, struct nsync_err *err);

/* nsync__discovery_problem - NSYNC_OK, or the first problem of d
 * (NSYNC_ERR_DUPLICATE, NSYNC_ERR_NO_DATA_SOURCES) with its sentence in msg. */
nsync_rc nsync__discovery_problem(const struct nsync_discovery *d, char *msg, size_t size);

/* The sentences of those problems, for one kind (and its i-th empty one). */
void nsync__duplicate_message(const struct nsync_candidates *c, char *out, size_t size);
void nsync__empty_message(const struct nsync_candidates *c, size_t i, char *out, size_t size);

#endif
