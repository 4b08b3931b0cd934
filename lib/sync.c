/*
 * sync.c - the per-database sync pipeline (see sync.h).
 *
 * Cost per page is kept to one json-c parse of the Notion answer (shared by
 * all pages in it), one canonical hash walk, a hash-table probe, and, for
 * changed pages only, a copy of the raw properties text into the batch
 * document. No per-page round trip to PostgreSQL.
 *
 * Longer than most files on purpose: it is one pipeline (answers, pages,
 * batches, windows, cursors, deletions, watermarks) whose steps share the
 * walker's state; split, each part would need the whole struct anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonhash.h"
#include "complete.h"
#include "error.h"
#include "fnv.h"
#include "http.h"
#include "jsonslice.h"
#include "pagemap.h"
#include "sync.h"
#include "syncstate.h"
#include "text.h"
#include "upsert.h"

/* Most pages Notion returns per query answer. */
#define PAGE_SIZE NSYNC_PAGE_SIZE
/* Cursors one walk may follow before we call it a loop (10,000 rows cap). */
#define MAX_CURSORS 1000
/* The batch document stays well below PostgreSQL's 1 GB limit. */
#define BATCH_LIMIT (256u << 20)
/* Page ids per DELETE statement. */
#define DELETE_CHUNK 1000

struct row {
	size_t off; /* in batch text: the row's '{' */
	size_t len;
	uint8_t id[16];
};

/* A changed page whose values may be truncated: completed after the whole
 * answer is handled, because fetching them reuses the HTTP buffer that the
 * raw slices of the other pages point into. */
struct deferred {
	size_t index; /* in the answer's results */
	uint8_t id[16];
	char norm[37];
	char hash[NSYNC_HASH_HEX];
};

struct walker {
	struct nsync_sync_job *job;
	const char *sort_field; /* "created_time" (full) or "last_edited_time" */
	char last_value[40];    /* sort_field of the last result seen */
	char newest_edit[40];   /* newest last_edited_time seen in this source */
	long new_in_window;     /* pages not seen before in this window */
	int restarted;          /* this source's walk restarted after a bad cursor */
	long unidentified;      /* results without a usable id: deleting is unsafe */
	struct deferred deferred[PAGE_SIZE];
	size_t n_deferred;
	struct nsync_stats *stats;
	struct nsync_pagemap map;
	struct nsync_buf batch; /* "[row,row,..." (closed on flush) */
	struct row *rows;
	size_t n_rows, cap_rows;
	struct nsync_slice slices[PAGE_SIZE];
	long cleaned;          /* pages whose text had to be repaired */
	double last_heartbeat; /* monotonic seconds */
};

/* Heartbeat when one is due. Its failure stops the walk: the lock may be
 * gone, and nothing may be written without it. */
static nsync_rc beat(struct walker *w, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	double now = nsync__monotonic();

	if (!job->heartbeat || now - w->last_heartbeat < NSYNC_HEARTBEAT_EVERY)
		return NSYNC_OK;
	w->last_heartbeat = now;
	return job->heartbeat(job->heartbeat_data, err);
}

static nsync_rc flush(struct walker *w, struct nsync_err *err);

/* Let the priority lane run before the next request. The batch is written
 * first: a page this walk read earlier must not overwrite, later, the
 * newer state a webhook refresh writes now. */
static nsync_rc interject(struct walker *w, struct nsync_err *err)
{
	nsync_rc rc = flush(w, err);

	return rc == NSYNC_OK ? w->job->interject(w->job->interject_data, err) : rc;
}

static void note_page_error(struct walker *w, const char *page_id, const struct nsync_err *e)
{
	struct nsync_sync_job *job = w->job;

	w->stats->page_errors++;
	if (!job->first_page_error[0])
		snprintf(job->first_page_error, sizeof(job->first_page_error), "page %.40s: %.200s",
			 page_id, e->msg);
	if (job->cfg->log) {
		char line[700];
		snprintf(line, sizeof(line), "page error user=%s database=%s page=%s: %s",
			 job->user_id, job->database_id, page_id, e->msg);
		job->cfg->log(job->cfg->log_data, line);
	}
}

static void format_id(const uint8_t id[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[id[i] >> 4];
		out[o++] = hex[id[i] & 15];
	}
	out[o] = '\0';
}

static void unqueue_all(struct walker *w)
{
	size_t i;

	for (i = 0; i < w->n_rows; i++) {
		struct nsync_pagemap_slot *slot = nsync__pagemap_find(&w->map, w->rows[i].id);
		if (slot)
			slot->queued = 0;
	}
	w->n_rows = 0;
	nsync__buf_reset(&w->batch);
}

/* Write the pending batch. When the one statement fails on a live
 * connection, a row is at fault: retry row by row so that only the bad
 * pages are counted as errors. */
static nsync_rc flush(struct walker *w, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	struct nsync_err row_err;
	struct nsync_buf one;
	size_t i;
	nsync_rc rc;

	if (w->n_rows == 0)
		return NSYNC_OK;
	if (nsync__buf_addc(&w->batch, ']') != NSYNC_OK)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a batch");
	rc = nsync__store_upsert(job->store, job->kind, job->user_id, job->database_id,
				 w->batch.data, &w->stats->inserted, &w->stats->updated, err);
	if (rc == NSYNC_OK || !nsync__store_connection_ok(job->store)) {
		unqueue_all(w);
		return rc;
	}
	nsync__buf_init(&one, BATCH_LIMIT);
	for (i = 0; i < w->n_rows; i++) {
		const struct row *r = &w->rows[i];
		char id[37];

		nsync__buf_reset(&one);
		if (nsync__buf_addc(&one, '[') != NSYNC_OK ||
		    nsync__buf_add(&one, w->batch.data + r->off, r->len) != NSYNC_OK ||
		    nsync__buf_addc(&one, ']') != NSYNC_OK) {
			nsync__buf_free(&one);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory retrying a batch");
		}
		memset(&row_err, 0, sizeof(row_err));
		rc = nsync__store_upsert(job->store, job->kind, job->user_id, job->database_id,
					 one.data, &w->stats->inserted, &w->stats->updated,
					 &row_err);
		if (rc == NSYNC_OK)
			continue;
		if (!nsync__store_connection_ok(job->store)) {
			nsync__buf_free(&one);
			if (err)
				*err = row_err;
			unqueue_all(w);
			return rc;
		}
		format_id(r->id, id);
		note_page_error(w, id, &row_err);
	}
	nsync__buf_free(&one);
	unqueue_all(w);
	return NSYNC_OK;
}

static nsync_rc add_row_meta(struct walker *w, const uint8_t id[16], size_t off)
{
	if (w->n_rows == w->cap_rows) {
		size_t cap = w->cap_rows ? w->cap_rows * 2 : 256;
		struct row *grown = realloc(w->rows, cap * sizeof(*grown));
		if (!grown)
			return NSYNC_ERR_NOMEM;
		w->rows = grown;
		w->cap_rows = cap;
	}
	w->rows[w->n_rows].off = off;
	w->rows[w->n_rows].len = w->batch.len - off;
	memcpy(w->rows[w->n_rows].id, id, 16);
	w->n_rows++;
	return NSYNC_OK;
}

static const char *string_member(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Append one changed page to the batch document; props_text is the JSON
 * text of its properties (raw from Notion, or re-serialised after
 * completion). */
static nsync_rc append_row(struct walker *w, const char *page_id, const uint8_t id[16],
			   const char *source_id, struct json_object *page,
			   struct json_object *props, const char *props_text, size_t props_len,
			   const char *hash)
{
	struct nsync_buf *b = &w->batch;
	const struct nsync_kind *kind = w->job->kind;
	const char *created = string_member(page, "created_time");
	const char *edited = string_member(page, "last_edited_time");
	size_t off;
	nsync_rc rc;

	rc = nsync__buf_addc(b, w->n_rows ? ',' : '[');
	off = b->len;
	if (rc == NSYNC_OK)
		rc = nsync__buf_printf(b, "{\"p\":\"%s\",\"h\":\"%s\",\"s\":", page_id, hash);
	if (rc == NSYNC_OK)
		rc = source_id ? nsync__buf_printf(b, "\"%s\"", source_id)
			       : nsync__buf_adds(b, "null");
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"c\":");
	if (rc == NSYNC_OK)
		rc = created ? nsync__json_add_string(b, created, strlen(created), NULL)
			     : nsync__buf_adds(b, "null");
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"e\":");
	if (rc == NSYNC_OK)
		rc = edited ? nsync__json_add_string(b, edited, strlen(edited), NULL)
			    : nsync__buf_adds(b, "null");
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"n\":");
	if (rc == NSYNC_OK)
		rc = nsync__add_title(b, kind, props, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"x\":");
	if (rc == NSYNC_OK)
		rc = nsync__add_text(b, kind, props, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"m\":");
	if (rc == NSYNC_OK)
		rc = nsync__add_count(b, kind, props);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"props\":");
	if (rc == NSYNC_OK)
		rc = nsync__json_add_raw(b, props_text, props_len, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '}');
	if (rc == NSYNC_OK)
		rc = add_row_meta(w, id, off);
	return rc;
}

/* Queue one changed page for writing, flushing first if the same page is
 * already queued (one statement cannot update a row twice) and after when
 * the batch is full. */
static nsync_rc queue_page(struct walker *w, const char *norm, const uint8_t id[16],
			   const char *source_id, struct json_object *page,
			   struct json_object *props, const char *props_text, size_t props_len,
			   const char *hash, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	struct nsync_pagemap_slot *slot = nsync__pagemap_find(&w->map, id);
	uint8_t digest[16];
	nsync_rc rc;

	if (slot && slot->queued && (rc = flush(w, err)) != NSYNC_OK)
		return rc;
	/* Under 2022-06-28 the "source" is the database itself. */
	rc = append_row(w, norm, id, nsync__notion_legacy(job->notion) ? NULL : source_id, page,
			props, props_text, props_len, hash);
	if (rc == NSYNC_OK) {
		nsync__hex_to_bytes(hash, digest, 16); /* 32 hex digits: cannot fail */
		slot = nsync__pagemap_set(&w->map, id, digest);
		if (slot)
			slot->queued = slot->seen = 1;
		else
			rc = NSYNC_ERR_NOMEM;
	}
	if (rc != NSYNC_OK)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a batch");
	if (w->n_rows >= (size_t)job->cfg->batch_size)
		return flush(w, err);
	return NSYNC_OK;
}

/* Fetch the complete values of the deferred pages and queue them. A value
 * that cannot be fetched is a page error: the page is not written, so its
 * stored row (if any) keeps the old hash and the next sync tries again. */
static nsync_rc complete_deferred(struct walker *w, const char *source_id,
				  struct json_object *results, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	size_t i;
	nsync_rc rc;

	for (i = 0; i < w->n_deferred; i++) {
		const struct deferred *d = &w->deferred[i];
		struct json_object *page = json_object_array_get_idx(results, d->index), *props;
		struct nsync_err page_err;
		const char *text;

		json_object_object_get_ex(page, "properties", &props);
		memset(&page_err, 0, sizeof(page_err));
		rc = nsync__complete_props(job->notion, &job->nctx, d->norm, props,
					   &w->stats->property_requests, &page_err);
		if (rc == NSYNC_ERR_NOMEM || rc == NSYNC_ERR_NOTION_AUTH) {
			if (err)
				*err = page_err;
			return rc;
		}
		if (rc != NSYNC_OK) {
			note_page_error(w, d->norm, &page_err);
			continue;
		}
		text = json_object_to_json_string_ext(props,
						      JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!text)
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		rc = queue_page(w, d->norm, d->id, source_id, page, props, text, strlen(text),
				d->hash, err);
		if (rc == NSYNC_OK)
			rc = beat(w, err);
		if (rc != NSYNC_OK)
			return rc;
	}
	w->n_deferred = 0;
	return NSYNC_OK;
}

/* Handle every page of one Notion answer. */
static nsync_rc take_page_of_results(struct walker *w, const char *source_id,
				     const struct nsync_query_page *qp, struct nsync_err *err)
{
	size_t i, count = json_object_array_length(qp->results);
	long sliced;
	nsync_rc rc;

	sliced = nsync__slice_results_member(qp->raw, qp->raw_len, "properties", w->slices,
					     PAGE_SIZE);
	if (sliced == NSYNC_SLICE_DUPLICATE) {
		struct nsync_slice whole;
		int twice = nsync__slice_member(qp->raw, qp->raw_len, "results", &whole) ==
			    NSYNC_SLICE_DUPLICATE;
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's query answer for data source %s has %s twice; it was "
				  "not "
				  "used",
				  source_id,
				  twice ? "the member \"results\""
					: "a result with the member \"properties\"");
	}
	if (sliced < 0 || (size_t)sliced != count)
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's query answer for data source %s could not be read "
				  "consistently: its JSON has %zu results, its text %ld",
				  source_id, count, sliced);
	w->n_deferred = 0;
	for (i = 0; i < count; i++) {
		struct json_object *page = json_object_array_get_idx(qp->results, i);
		struct json_object *props = NULL;
		const char *page_id = string_member(page, "id");
		const char *edited = string_member(page, "last_edited_time");
		const char *sort_value = string_member(page, w->sort_field);
		char hash[NSYNC_HASH_HEX], norm[37];
		const char *why;
		struct nsync_pagemap_slot *slot;
		struct nsync_err page_err;
		uint8_t id[16], digest[16];

		if (sort_value)
			snprintf(w->last_value, sizeof(w->last_value), "%s", sort_value);
		/* Same format throughout (ISO 8601 UTC), so text order is time order. */
		if (edited && strcmp(edited, w->newest_edit) > 0)
			snprintf(w->newest_edit, sizeof(w->newest_edit), "%s", edited);
		memset(&page_err, 0, sizeof(page_err));
		if (json_object_object_get_ex(page, NSYNC_UNPARSED_MEMBER, NULL)) {
			/* Too deep to read: an error for this page alone. Seen, so
			 * its stored row (if any) is kept, never deleted. */
			w->stats->pages_seen++;
			if (!page_id || nsync_normalize_id(page_id, norm, NULL) != NSYNC_OK ||
			    !nsync__hex_to_bytes(norm, id, 16)) {
				w->unidentified++;
			} else if (!(slot = nsync__pagemap_find(&w->map, id))) {
				static const uint8_t never[16];
				if (!(slot = nsync__pagemap_set(&w->map, id, never)))
					return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
				slot->seen = 1;
			} else {
				slot->seen = 1;
			}
			why = string_member(page, NSYNC_UNPARSED_MEMBER);
			nsync__err(&page_err, NSYNC_ERR_PROTOCOL, "%s",
				   why ? why : "unreadable page");
			note_page_error(w, page_id ? page_id : "(no id)", &page_err);
			continue;
		}
		if (!page_id || nsync_normalize_id(page_id, norm, NULL) != NSYNC_OK ||
		    !nsync__hex_to_bytes(norm, id, 16) ||
		    !json_object_object_get_ex(page, "properties", &props) ||
		    !json_object_is_type(props, json_type_object) || w->slices[i].len == 0) {
			w->stats->pages_seen++;
			w->unidentified++;
			nsync__err(&page_err, NSYNC_ERR_PROTOCOL,
				   "result has no id or no properties (does the integration have "
				   "read-content capability?)");
			note_page_error(w, page_id ? page_id : "(no id)", &page_err);
			continue;
		}
		slot = nsync__pagemap_find(&w->map, id);
		if (slot && slot->seen)
			continue; /* repeated at a window boundary or after a restart */
		w->stats->pages_seen++;
		w->new_in_window++;
		rc = nsync__content_hash_tree(props, edited, hash, err);
		if (rc != NSYNC_OK)
			return rc;
		nsync__hex_to_bytes(hash, digest, 16); /* 32 hex digits: cannot fail */
		if (slot && !slot->queued && memcmp(slot->hash, digest, 16) == 0) {
			w->stats->unchanged++;
			slot->seen = 1;
			continue;
		}
		/* The hash is of the page as the query shows it (truncated or
		 * not), so an unchanged page never costs a property request. */
		if (nsync__props_may_be_truncated(props)) {
			struct deferred *d = &w->deferred[w->n_deferred++];
			static const uint8_t never[16];

			d->index = i;
			memcpy(d->id, id, 16);
			memcpy(d->norm, norm, sizeof(norm));
			memcpy(d->hash, hash, sizeof(hash));
			if (!slot && !(slot = nsync__pagemap_set(&w->map, id, never)))
				return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			slot->seen = 1;
			continue;
		}
		rc = queue_page(w, norm, id, source_id, page, props, qp->raw + w->slices[i].off,
				w->slices[i].len, hash, err);
		if (rc != NSYNC_OK)
			return rc;
	}
	return complete_deferred(w, source_id, qp->results, err);
}

/* 400 validation_error on a request that carried a start_cursor: the
 * cursor expired or became invalid. */
static int is_bad_cursor(const struct nsync_err *e)
{
	return e->code == NSYNC_ERR_NOTION && e->notion_status == 400 &&
	       strcmp(e->notion_code, "validation_error") == 0;
}

/* Walk one window: one query (filter + sorts) followed cursor by cursor
 * until it ends. *capped is set when Notion stopped it at its result cap.
 * A rejected cursor restarts the window once per data source; pages seen
 * before the restart are skipped by id. */
static nsync_rc walk_window(struct walker *w, const char *source_id, const char *filter,
			    const char *sorts, int *capped, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	unsigned long seen[64];
	unsigned long *cursors = seen;
	size_t n_cursors = 0, i;
	char *cursor = NULL;
	struct nsync_err qerr;
	nsync_rc rc = NSYNC_OK;

	*capped = 0;
	memset(&qerr, 0, sizeof(qerr));
	for (;;) {
		struct nsync_query_page qp;
		unsigned long h;

		rc = nsync__notion_query(job->notion, &job->nctx, source_id, cursor, filter, sorts,
					 &qp, &qerr);
		if (rc != NSYNC_OK && cursor && is_bad_cursor(&qerr)) {
			nsync__query_page_clear(&qp);
			free(cursor);
			cursor = NULL;
			if (w->restarted) {
				rc = nsync__err(
					&qerr, NSYNC_ERR_NOTION,
					"Notion rejected a query cursor of data source %s twice "
					"(expired or invalid); the walk stopped and nothing was "
					"deleted",
					source_id);
				break;
			}
			w->restarted = 1;
			n_cursors = 0;
			if (job->cfg->log) {
				char line[200];
				snprintf(line, sizeof(line),
					 "cursor rejected, restarting the walk of data source %s",
					 source_id);
				job->cfg->log(job->cfg->log_data, line);
			}
			continue;
		}
		if (rc == NSYNC_OK)
			rc = take_page_of_results(w, source_id, &qp, &qerr);
		if (rc == NSYNC_OK && job->cfg->progress)
			job->cfg->progress(job->cfg->progress_data, job->kind->name,
					   w->stats->pages_seen);
		if (rc == NSYNC_OK)
			rc = beat(w, &qerr);
		if (rc == NSYNC_OK && job->interject && qp.has_more && !qp.incomplete)
			rc = interject(w, &qerr);
		free(cursor);
		cursor = NULL;
		if (rc == NSYNC_OK && qp.incomplete)
			*capped = 1;
		if (rc != NSYNC_OK || !qp.has_more || qp.incomplete) {
			nsync__query_page_clear(&qp);
			break;
		}
		/* A cursor seen before means Notion sends us round in circles. */
		h = nsync__fnv1a(qp.next_cursor);
		for (i = 0; i < n_cursors && cursors[i] != h; i++)
			;
		if (i < n_cursors || n_cursors >= MAX_CURSORS) {
			rc = nsync__err(&qerr, NSYNC_ERR_PROTOCOL,
					"Notion returned a cursor it had returned before for data "
					"source %s; stopping instead of looping",
					source_id);
			nsync__query_page_clear(&qp);
			break;
		}
		if (n_cursors == sizeof(seen) / sizeof(seen[0]) && cursors == seen) {
			cursors = malloc(MAX_CURSORS * sizeof(*cursors));
			if (!cursors) {
				cursors = seen;
				rc = nsync__err(&qerr, NSYNC_ERR_NOMEM, "out of memory");
				nsync__query_page_clear(&qp);
				break;
			}
			memcpy(cursors, seen, sizeof(seen));
		}
		cursors[n_cursors++] = h;
		cursor = strdup(qp.next_cursor);
		nsync__query_page_clear(&qp);
		if (!cursor) {
			rc = nsync__err(&qerr, NSYNC_ERR_NOMEM, "out of memory");
			break;
		}
	}
	if (cursors != seen)
		free(cursors);
	if (rc != NSYNC_OK && err)
		*err = qerr;
	return rc;
}

/* Walk one data source completely, from `since` (sort field on_or_after;
 * "" for everything). A query returns at most 10,000 rows (then has_more
 * is false and request_status says "incomplete"); the walk then starts a
 * new query on_or_after the last row's value of the sort field, as
 * Notion documents for large data sources, and pages repeated at the
 * boundary are skipped by id. */
static nsync_rc walk_source(struct walker *w, const char *source_id, const char *since,
			    struct nsync_err *err)
{
	const char *field = w->sort_field;
	char filter[200], sorts[100], window_start[40];
	int capped = 0;
	nsync_rc rc;

	snprintf(sorts, sizeof(sorts), "[{\"timestamp\":\"%s\",\"direction\":\"ascending\"}]",
		 field);
	snprintf(window_start, sizeof(window_start), "%s", since);
	for (;;) {
		if (window_start[0])
			snprintf(filter, sizeof(filter),
				 "{\"timestamp\":\"%s\",\"%s\":{\"on_or_after\":\"%s\"}}", field,
				 field, window_start);
		w->new_in_window = 0;
		w->last_value[0] = '\0';
		rc = walk_window(w, source_id, window_start[0] ? filter : NULL, sorts, &capped,
				 err);
		if (rc != NSYNC_OK || !capped)
			return rc;
		/* No new page in a full window: more rows share one timestamp
		 * than one query can return, and no filter can split them. */
		if (w->new_in_window == 0 || !w->last_value[0] ||
		    strcmp(w->last_value, window_start) == 0)
			return nsync__err(
				err, NSYNC_ERR_NOTION,
				"data source %s has more pages %s at %s than one Notion "
				"query returns; it cannot be walked completely, so it was "
				"not synced in full and nothing was deleted",
				source_id,
				strcmp(field, "created_time") == 0 ? "created" : "last edited",
				w->last_value[0] ? w->last_value : "one instant");
		if (strspn(w->last_value, "0123456789-:.TZ+") != strlen(w->last_value))
			return nsync__err(err, NSYNC_ERR_PROTOCOL,
					  "data source %s: a page has an unexpected %s", source_id,
					  field);
		memcpy(window_start, w->last_value, sizeof(window_start));
	}
}

/* Delete the rows listed in ids ("{id,id,...") that belong to the data
 * sources in sources (NULL: any), and empty ids. */
static nsync_rc delete_listed(struct walker *w, struct nsync_buf *ids, const char *sources,
			      struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	nsync_rc rc;

	if (nsync__buf_addc(ids, '}') != NSYNC_OK)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory listing deleted pages");
	rc = nsync__store_delete_pages(job->store, job->kind, job->user_id, job->database_id,
				       ids->data, sources, &w->stats->deleted, &w->stats->orphaned,
				       err);
	nsync__buf_reset(ids);
	return rc;
}

/* After a complete full walk: delete the stored rows whose pages Notion
 * did not return (trashed, deleted, no longer shared), DELETE_CHUNK ids
 * per statement, but only rows of the data sources just walked; the
 * others are orphaned and kept (2022-06-28 walks the whole database). */
static nsync_rc delete_unseen(struct walker *w, struct nsync_err *err)
{
	const struct nsync_database_info *info = w->job->info;
	struct nsync_buf ids, sources;
	size_t i, listed = 0;
	nsync_rc rc = NSYNC_OK;

	nsync__buf_init(&ids, BATCH_LIMIT);
	nsync__buf_init(&sources, BATCH_LIMIT);
	for (i = 0; i < info->n_sources && rc == NSYNC_OK; i++)
		rc = nsync__buf_printf(&sources, "%c%s", i ? ',' : '{', info->sources[i]);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(&sources, '}');
	if (rc != NSYNC_OK)
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory listing data sources");
	for (i = 0; i < w->map.cap && rc == NSYNC_OK; i++) {
		const struct nsync_pagemap_slot *slot = &w->map.slots[i];
		char id[37];

		if (!slot->used || slot->seen)
			continue;
		format_id(slot->id, id);
		if (nsync__buf_addc(&ids, listed % DELETE_CHUNK ? ',' : '{') != NSYNC_OK ||
		    nsync__buf_adds(&ids, id) != NSYNC_OK)
			rc = nsync__err(err, NSYNC_ERR_NOMEM,
					"out of memory listing deleted pages");
		else if (++listed % DELETE_CHUNK == 0)
			rc = delete_listed(w, &ids,
					   nsync__notion_legacy(w->job->notion) ? NULL
										: sources.data,
					   err);
	}
	if (rc == NSYNC_OK && listed % DELETE_CHUNK)
		rc = delete_listed(w, &ids,
				   nsync__notion_legacy(w->job->notion) ? NULL : sources.data, err);
	nsync__buf_free(&ids);
	nsync__buf_free(&sources);
	return rc;
}

/* Decide full or incremental: full when asked, when the interval is 0, or
 * when any source has no state or is due for its periodic full walk. */
static int want_full(const struct nsync_sync_job *job, const struct nsync_source_state *states)
{
	size_t i;

	if (job->full_requested || job->cfg->full_interval <= 0)
		return 1;
	for (i = 0; i < job->info->n_sources; i++)
		if (!states[i].known || states[i].full_due)
			return 1;
	return 0;
}

/* Walk source i and record its state once its pages are written. */
static nsync_rc sync_source(struct walker *w, const char *source_id, const char *since, int full,
			    struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	long errors_before = w->stats->page_errors;
	int clean;
	nsync_rc rc;

	w->restarted = 0;
	w->newest_edit[0] = '\0';
	rc = walk_source(w, source_id, since, err);
	/* The watermark may move only once every page up to it is stored. */
	if (rc == NSYNC_OK)
		rc = flush(w, err);
	if (rc != NSYNC_OK)
		return rc;
	clean = w->stats->page_errors == errors_before;
	return nsync__state_save(job->store, job->user_id, job->database_id, source_id,
				 clean && w->newest_edit[0] ? w->newest_edit : NULL, full && clean,
				 err);
}

nsync_rc nsync__sync_pages(struct nsync_sync_job *job, const char *source_id,
			   const struct nsync_query_page *qp, struct nsync_err *err)
{
	struct walker *w = calloc(1, sizeof(*w));
	nsync_rc rc;

	if (!w)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	job->first_page_error[0] = '\0';
	w->job = job;
	w->stats = job->nctx.stats;
	w->sort_field = "last_edited_time";
	w->last_heartbeat = nsync__monotonic();
	nsync__pagemap_init(&w->map);
	nsync__buf_init(&w->batch, BATCH_LIMIT);
	rc = take_page_of_results(w, source_id, qp, err);
	if (rc == NSYNC_OK)
		rc = flush(w, err);
	nsync__pagemap_free(&w->map);
	nsync__buf_free(&w->batch);
	free(w->rows);
	free(w);
	return rc;
}

nsync_rc nsync__sync_walk(struct nsync_sync_job *job, struct nsync_err *err)
{
	struct nsync_source_state *states;
	struct walker *w;
	size_t i, n = job->info->n_sources;
	int full;
	nsync_rc rc;

	job->first_page_error[0] = '\0';
	job->mode = job->full_requested ? "full" : "incremental";
	/* The walker holds 100 slices and deferred pages: keep it off the stack. */
	w = calloc(1, sizeof(*w));
	states = calloc(n ? n : 1, sizeof(*states));
	if (!w || !states) {
		free(w);
		free(states);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	}
	w->job = job;
	w->stats = job->nctx.stats;
	w->last_heartbeat = nsync__monotonic();
	nsync__pagemap_init(&w->map);
	nsync__buf_init(&w->batch, BATCH_LIMIT);

	rc = nsync__store_load_hashes(job->store, job->kind, job->user_id, job->database_id,
				      &w->map, err);
	if (rc == NSYNC_OK)
		rc = nsync__state_load(job->store, job->user_id, job->database_id,
				       (const char(*)[37])job->info->sources, n,
				       job->cfg->full_interval, states, err);
	full = rc == NSYNC_OK && want_full(job, states);
	job->mode = full ? "full" : "incremental";
	w->sort_field = full ? "created_time" : "last_edited_time";
	for (i = 0; rc == NSYNC_OK && i < n; i++)
		rc = sync_source(w, job->info->sources[i], full ? "" : states[i].since, full, err);
	if (rc == NSYNC_OK && full && w->unidentified == 0)
		rc = delete_unseen(w, err);
	/* Write what was gathered even when the walk stopped early: those
	 * pages are correct, and the next run skips them by hash. */
	if (w->n_rows) {
		struct nsync_err flush_err;
		nsync_rc frc;

		memset(&flush_err, 0, sizeof(flush_err));
		frc = flush(w, rc == NSYNC_OK ? err : &flush_err);
		if (rc == NSYNC_OK)
			rc = frc;
	}
	nsync__pagemap_free(&w->map);
	nsync__buf_free(&w->batch);
	free(w->rows);
	free(w);
	free(states);
	return rc;
}
