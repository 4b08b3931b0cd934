/*
 * sync.c - the per-database sync pipeline (see sync.h).
 *
 * Cost per page is kept to one json-c parse of the Notion answer (shared by
 * all pages in it), one canonical hash walk, a hash-table probe, and, for
 * changed pages only, a copy of the raw properties text into the batch
 * document. No per-page round trip to PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonhash.h"
#include "error.h"
#include "jsonslice.h"
#include "pagemap.h"
#include "sync.h"
#include "text.h"

/* Most pages Notion returns per query answer. */
#define PAGE_SIZE 100
/* Cursors one walk may follow before we call it a loop (10,000 rows cap). */
#define MAX_CURSORS 1000
/* The batch document stays well below PostgreSQL's 1 GB limit. */
#define BATCH_LIMIT (256u << 20)

struct row {
	size_t off;        /* in batch text: the row's '{' */
	size_t len;
	uint8_t id[16];
};

struct walker {
	struct nsync_sync_job *job;
	char last_created[40];        /* created_time of the last result seen */
	long new_in_window;           /* pages not seen before in this window */
	struct nsync_stats *stats;
	struct nsync_pagemap map;
	struct nsync_buf batch;       /* "[row,row,..." (closed on flush) */
	struct row *rows;
	size_t n_rows, cap_rows;
	struct nsync_slice slices[PAGE_SIZE];
	long cleaned;                 /* pages whose text had to be repaired */
};

static void note_page_error(struct walker *w, const char *page_id, const struct nsync_err *e)
{
	struct nsync_sync_job *job = w->job;

	w->stats->page_errors++;
	if (!job->first_page_error[0])
		snprintf(job->first_page_error, sizeof(job->first_page_error), "page %.40s: %.200s",
			 page_id, e->msg);
	if (job->cfg->log) {
		char line[700];
		snprintf(line, sizeof(line), "page error user=%s database=%s page=%s: %s", job->user_id,
			 job->database_id, page_id, e->msg);
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
					 one.data, &w->stats->inserted, &w->stats->updated, &row_err);
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

/* Append one changed page to the batch document. */
static nsync_rc append_row(struct walker *w, const char *page_id, const uint8_t id[16],
			   const char *source_id, struct json_object *page,
			   struct json_object *props, const char *raw,
			   const struct nsync_slice *slice, const char *hash)
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
		rc = source_id ? nsync__buf_printf(b, "\"%s\"", source_id) : nsync__buf_adds(b, "null");
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
		rc = nsync__json_add_raw(b, raw + slice->off, slice->len, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '}');
	if (rc == NSYNC_OK)
		rc = add_row_meta(w, id, off);
	return rc;
}

/* Handle every page of one Notion answer. */
static nsync_rc take_page_of_results(struct walker *w, const char *source_id,
				     const struct nsync_query_page *qp, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	size_t i, count = json_object_array_length(qp->results);
	long sliced;
	nsync_rc rc;

	sliced = nsync__slice_results_member(qp->raw, qp->raw_len, "properties", w->slices, PAGE_SIZE);
	if (sliced < 0 || (size_t)sliced != count || count > PAGE_SIZE)
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's query answer for data source %s has %zu results that could "
				  "not be located in its text",
				  source_id, count);
	for (i = 0; i < count; i++) {
		struct json_object *page = json_object_array_get_idx(qp->results, i);
		struct json_object *props = NULL;
		const char *page_id = string_member(page, "id");
		const char *edited = string_member(page, "last_edited_time");
		char hash[NSYNC_HASH_HEX], norm[37];
		struct nsync_pagemap_slot *slot;
		struct nsync_err page_err;
		uint8_t id[16], digest[16];

		const char *created = string_member(page, "created_time");

		if (created)
			snprintf(w->last_created, sizeof(w->last_created), "%s", created);
		memset(&page_err, 0, sizeof(page_err));
		if (!page_id || nsync_normalize_id(page_id, norm, NULL) != NSYNC_OK ||
		    !nsync__hex_to_bytes(norm, id, 16) ||
		    !json_object_object_get_ex(page, "properties", &props) ||
		    !json_object_is_type(props, json_type_object) || w->slices[i].len == 0) {
			w->stats->pages_seen++;
			nsync__err(&page_err, NSYNC_ERR_PROTOCOL,
				   "result has no id or no properties (does the integration have "
				   "read-content capability?)");
			note_page_error(w, page_id ? page_id : "(no id)", &page_err);
			continue;
		}
		slot = nsync__pagemap_find(&w->map, id);
		if (slot && slot->seen)
			continue; /* repeated at a window boundary */
		w->stats->pages_seen++;
		w->new_in_window++;
		rc = nsync__content_hash(props, edited, hash, err);
		if (rc != NSYNC_OK)
			return rc;
		nsync__hex_to_bytes(hash, digest, 16); /* 32 hex digits: cannot fail */
		if (slot && !slot->queued && memcmp(slot->hash, digest, 16) == 0) {
			w->stats->unchanged++;
			slot->seen = 1;
			continue;
		}
		/* The same page twice in one batch would make the upsert fail
		 * ("cannot affect row a second time"): write the first one now. */
		if (slot && slot->queued && (rc = flush(w, err)) != NSYNC_OK)
			return rc;
		/* Under 2022-06-28 the "source" is the database itself. */
		rc = append_row(w, norm, id, nsync__notion_legacy(job->notion) ? NULL : source_id,
				page, props, qp->raw, &w->slices[i], hash);
		if (rc == NSYNC_OK) {
			slot = nsync__pagemap_set(&w->map, id, digest);
			if (slot)
				slot->queued = slot->seen = 1;
			else
				rc = NSYNC_ERR_NOMEM;
		}
		if (rc != NSYNC_OK)
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a batch");
		if (w->n_rows >= (size_t)job->cfg->batch_size && (rc = flush(w, err)) != NSYNC_OK)
			return rc;
	}
	return NSYNC_OK;
}

/* Sorted by created_time, which never changes, so that a query stopped by
 * Notion's result cap can go on from where it stopped. */
static const char sort_created[] = "[{\"timestamp\":\"created_time\",\"direction\":\"ascending\"}]";

/* Walk one window: one query (filter + sorts) followed cursor by cursor
 * until it ends. *capped is set when Notion stopped it at its result cap. */
static nsync_rc walk_window(struct walker *w, const char *source_id, const char *filter,
			    int *capped, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	unsigned long seen[64];
	unsigned long *cursors = seen;
	size_t n_cursors = 0, i;
	char *cursor = NULL;
	nsync_rc rc = NSYNC_OK;

	*capped = 0;
	for (;;) {
		struct nsync_query_page qp;
		unsigned long h;

		rc = nsync__notion_query(job->notion, &job->nctx, source_id, cursor, filter,
					 sort_created, &qp, err);
		if (rc == NSYNC_OK)
			rc = take_page_of_results(w, source_id, &qp, err);
		if (rc == NSYNC_OK && job->cfg->progress)
			job->cfg->progress(job->cfg->progress_data, job->kind->name, w->stats->pages_seen);
		free(cursor);
		cursor = NULL;
		if (rc == NSYNC_OK && qp.incomplete)
			*capped = 1;
		if (rc != NSYNC_OK || !qp.has_more || qp.incomplete) {
			nsync__query_page_clear(&qp);
			break;
		}
		/* A cursor seen before means Notion sends us round in circles. */
		h = nsync__token_hash(qp.next_cursor);
		for (i = 0; i < n_cursors && cursors[i] != h; i++)
			;
		if (i < n_cursors || n_cursors >= MAX_CURSORS) {
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
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
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
				nsync__query_page_clear(&qp);
				break;
			}
			memcpy(cursors, seen, sizeof(seen));
		}
		cursors[n_cursors++] = h;
		cursor = strdup(qp.next_cursor);
		nsync__query_page_clear(&qp);
		if (!cursor) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			break;
		}
	}
	if (cursors != seen)
		free(cursors);
	return rc;
}

/* Walk one data source completely. A query returns at most 10,000 rows
 * (then has_more is false and request_status says "incomplete"); the walk
 * then starts a new query on_or_after the last row's created_time, as
 * Notion's guide to large data sources says, and pages repeated at the
 * boundary are skipped by id. */
static nsync_rc walk_source(struct walker *w, const char *source_id, struct nsync_err *err)
{
	char filter[160], window_start[40] = "";
	int capped = 0;
	nsync_rc rc;

	for (;;) {
		if (window_start[0])
			snprintf(filter, sizeof(filter),
				 "{\"timestamp\":\"created_time\",\"created_time\":{\"on_or_after\":\"%s\"}}",
				 window_start);
		w->new_in_window = 0;
		w->last_created[0] = '\0';
		rc = walk_window(w, source_id, window_start[0] ? filter : NULL, &capped, err);
		if (rc != NSYNC_OK || !capped)
			return rc;
		/* No new page in a full window: more rows share one created_time
		 * than one query can return, and no filter can split them. */
		if (w->new_in_window == 0 || !w->last_created[0] ||
		    strcmp(w->last_created, window_start) == 0)
			return nsync__err(err, NSYNC_ERR_NOTION,
					  "data source %s has more pages created at %s than one Notion "
					  "query returns; it cannot be walked completely",
					  source_id, w->last_created[0] ? w->last_created : "one instant");
		if (strspn(w->last_created, "0123456789-:.TZ+") != strlen(w->last_created))
			return nsync__err(err, NSYNC_ERR_PROTOCOL,
					  "data source %s: a page has an unexpected created_time", source_id);
		memcpy(window_start, w->last_created, sizeof(window_start));
	}
}

nsync_rc nsync__sync_walk(struct nsync_sync_job *job, struct nsync_err *err)
{
	struct walker w;
	size_t i;
	nsync_rc rc;

	memset(&w, 0, sizeof(w));
	w.job = job;
	w.stats = job->nctx.stats;
	job->first_page_error[0] = '\0';
	nsync__pagemap_init(&w.map);
	nsync__buf_init(&w.batch, BATCH_LIMIT);

	rc = nsync__store_load_hashes(job->store, job->kind, job->user_id, job->database_id, &w.map,
				      err);
	for (i = 0; rc == NSYNC_OK && i < job->info->n_sources; i++)
		rc = walk_source(&w, job->info->sources[i], err);
	/* Write what was gathered even when the walk stopped early: those
	 * pages are correct, and the next run skips them by hash. */
	if (w.n_rows) {
		struct nsync_err flush_err;
		memset(&flush_err, 0, sizeof(flush_err));
		nsync_rc frc = flush(&w, rc == NSYNC_OK ? err : &flush_err);
		if (rc == NSYNC_OK)
			rc = frc;
	}
	nsync__pagemap_free(&w.map);
	nsync__buf_free(&w.batch);
	free(w.rows);
	return rc;
}
