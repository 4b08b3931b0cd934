/*
 * discover.c - finding a user's databases by title (see discover.h).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "credentials.h"
#include "discover.h"
#include "error.h"
#include "mapping.h"
#include "pacer.h"

/* Most databases one kind's search may name before discovery stops
 * reading them: each costs a request. */
#define MAX_LOOKUPS 50

/* The database ids one search named, without repeats. */
struct search_hits {
	const struct nsync_kind *kind;
	int legacy;
	size_t n;
	char ids[MAX_LOOKUPS][37];
};

/* One search result: a data source (its database is parent.database_id;
 * its own name does not matter), or under 2022-06-28 a database, whose
 * title can be compared at once. */
static nsync_rc search_hit(void *data, struct json_object *result, struct nsync_err *err)
{
	struct search_hits *h = data;
	struct json_object *parent, *v;
	const char *db = NULL;
	char id[37];
	size_t i;

	if (h->legacy) {
		struct json_object *title = NULL;
		struct nsync_buf plain;
		int match;

		json_object_object_get_ex(result, "title", &title);
		nsync__buf_init(&plain, 1 << 16);
		if (nsync__rich_text_plain(&plain, title) != NSYNC_OK && !plain.over_limit) {
			nsync__buf_free(&plain);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		match = nsync__kind_for_title(plain.data ? plain.data : "") == h->kind;
		nsync__buf_free(&plain);
		if (!match)
			return NSYNC_OK;
		if (json_object_object_get_ex(result, "id", &v) &&
		    json_object_is_type(v, json_type_string))
			db = json_object_get_string(v);
	} else if (json_object_object_get_ex(result, "parent", &parent) &&
		   json_object_object_get_ex(parent, "database_id", &v) &&
		   json_object_is_type(v, json_type_string)) {
		db = json_object_get_string(v);
	}
	if (!db || nsync_normalize_id(db, id, NULL) != NSYNC_OK)
		return NSYNC_OK;
	for (i = 0; i < h->n && strcmp(h->ids[i], id) != 0; i++)
		;
	if (i == h->n && h->n < MAX_LOOKUPS)
		memcpy(h->ids[h->n++], id, sizeof(id));
	return NSYNC_OK;
}

static void remember(char (*list)[37], size_t *n, const char *id)
{
	if (*n < NSYNC_MAX_CANDIDATES)
		memcpy(list[*n], id, 37);
	(*n)++;
}

/* Find the databases titled kind->name: search (which matches database
 * titles), then read each database named, since under 2025-09-03 results
 * are data sources whose names may differ from their database's title. */
static nsync_rc find_kind(struct nsync_service *svc, const struct nsync_notion_ctx *ctx,
			  const struct nsync_kind *kind, struct nsync_candidates *c,
			  struct nsync_err *err)
{
	struct search_hits *hits = calloc(1, sizeof(*hits));
	size_t i;
	nsync_rc rc;

	if (!hits)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	hits->kind = kind;
	hits->legacy = nsync__notion_legacy(svc->notion);
	rc = nsync__notion_search(svc->notion, ctx, kind->name, search_hit, hits, err);
	for (i = 0; rc == NSYNC_OK && i < hits->n; i++) {
		struct nsync_database_info info;
		struct nsync_err db_err;
		nsync_rc db_rc;

		memset(&db_err, 0, sizeof(db_err));
		db_rc = nsync__notion_get_database(svc->notion, ctx, hits->ids[i], &info, &db_err);
		if (db_rc == NSYNC_ERR_NOMEM || db_rc == NSYNC_ERR_NOTION_AUTH) {
			if (err)
				*err = db_err;
			rc = db_rc;
		} else if (info.title && nsync__kind_for_title(info.title) != kind) {
			/* Another title that merely contains the kind's name. */
		} else if (db_rc == NSYNC_ERR_NO_DATA_SOURCES) {
			remember(c->empty, &c->n_empty, hits->ids[i]);
		} else if (db_rc == NSYNC_OK || (hits->legacy && db_rc == NSYNC_ERR_NOTION)) {
			/* A 2022-06-28 refusal of a multi-source database is said
			 * by its sync, with the advice. */
			remember(c->ids, &c->n, hits->ids[i]);
		}
		nsync__database_info_clear(&info);
	}
	free(hits);
	return rc;
}

/* Find a user's databases and register each kind whose title names exactly
 * one database with readable data sources. Kinds with several databases
 * are left in d (n > 1) for the caller to report: syncing both into one
 * table would merge two unrelated databases, picking one would be a guess.
 * Databases listing no readable data source are left in d too (n_empty):
 * registering one would sync an empty table. */
nsync_rc nsync__discover(struct nsync_service *svc, const char *user_id, struct nsync_stats *stats,
			 struct nsync_discovery *d, struct nsync_err *err)
{
	struct nsync_notion_ctx ctx;
	const struct nsync_kind *kind;
	char *token = NULL;
	size_t i, found = 0;
	nsync_rc rc;

	memset(d, 0, sizeof(*d));
	rc = nsync__store_user_token(&svc->store, user_id, &token, NULL, err);
	if (rc != NSYNC_OK)
		return rc;
	ctx.token = token;
	ctx.pacer = nsync__pacer_get(token);
	ctx.stats = stats;
	for (i = 0; rc == NSYNC_OK && (kind = nsync__kind_at(i)) != NULL; i++) {
		struct nsync_candidates *c = &d->kinds[d->n_kinds];
		rc = find_kind(svc, &ctx, kind, c, err);
		if (rc == NSYNC_OK && (c->n || c->n_empty))
			d->n_kinds++;
	}
	nsync__secret_free(token);
	for (i = 0; rc == NSYNC_OK && i < d->n_kinds; i++) {
		found += d->kinds[i].n;
		if (d->kinds[i].n != 1)
			continue;
		rc = nsync__store_register(&svc->store, user_id, d->kinds[i].ids[0],
					   d->kinds[i].kind->name, d->kinds[i].kind->name, err);
	}
	if (rc == NSYNC_OK && found == 0 && d->n_kinds == 0)
		rc = nsync__err(err, NSYNC_ERR_NOT_FOUND,
				"no database titled %s is shared with user %s's integration",
				nsync__kind_names(), user_id);
	return rc;
}

/* The sentence for a database of a kind's title that lists no data source. */
void nsync__empty_message(const struct nsync_candidates *c, size_t i, char *out, size_t size)
{
	snprintf(out, size,
		 "database %s titled \"%s\" lists no data source the integration can read (a "
		 "linked database, or its data sources are not shared with the integration); it "
		 "was not registered",
		 c->empty[i], c->kind->name);
}

/* The sentence for a kind title that several databases share (c->n > 1). */
void nsync__duplicate_message(const struct nsync_candidates *c, char *out, size_t size)
{
	snprintf(out, size,
		 "%zu databases titled \"%s\" are shared with the integration (%s, %s%s); none was "
		 "synced: register the one to sync (notion-sync register) or give its database_id",
		 c->n, c->kind->name, c->ids[0], c->ids[1], c->n > 2 ? ", ..." : "");
}

nsync_rc nsync__discovery_problem(const struct nsync_discovery *d, char *msg, size_t size)
{
	size_t i;

	for (i = 0; i < d->n_kinds; i++) {
		if (d->kinds[i].n > 1) {
			nsync__duplicate_message(&d->kinds[i], msg, size);
			return NSYNC_ERR_DUPLICATE;
		}
		if (d->kinds[i].n_empty) {
			nsync__empty_message(&d->kinds[i], 0, msg, size);
			return NSYNC_ERR_NO_DATA_SOURCES;
		}
	}
	return NSYNC_OK;
}
