/*
 * sync.c - the per-database sync pipeline (see sync.h).
 *
 * Cost per page is kept to one strict scan of the Notion answer into a
 * tape of reused memory (pagescan.h; json-c reads only its envelope), one
 * canonical hash walk over the tape, a hash-table probe, and, for changed
 * pages only, the mapped columns and a copy of the raw properties text
 * into the batch document. No per-page allocation on that path, and no
 * per-page round trip to PostgreSQL. Pages the tape is not used for (an
 * answer the scanner declined, a page fetched alone, a result holding what
 * json-c decodes its own way, values to complete) are read from json-c's
 * tree, with the same hash and columns.
 *
 * Longer than most files on purpose: it is one pipeline (answers read from
 * the tape or the tree, pages, batches, windows, cursors, the far end of a
 * two-ended walk, deletions, watermarks) whose steps share the walker's
 * state; split, each part would need the whole struct anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonhash.h"
#include "complete.h"
#include "error.h"
#include "farwalk.h"
#include "fnv.h"
#include "http.h"
#include "jsonslice.h"
#include "pagemap.h"
#include "pagescan.h"
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
	struct json_object *props;    /* its properties, to complete */
	struct json_object *own;      /* what to put after: props or the page holding them */
	const char *created, *edited; /* borrowed: from the tree, or the tape's copies */
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
	int by_created;         /* sort_field is created_time */
	struct deferred deferred[PAGE_SIZE];
	size_t n_deferred;
	struct nsync_stats *stats;
	struct nsync_pagemap map;
	struct nsync_buf batch; /* "[row,row,..." (closed on flush) */
	struct row *rows;
	size_t n_rows, cap_rows;
	struct nsync_slice slices[PAGE_SIZE]; /* of an answer read as a json-c tree */
	struct nsync_text_scratch text;       /* the text columns of tape pages */
	long cleaned;                         /* pages whose text had to be repaired */
	double last_heartbeat;                /* monotonic seconds */
	struct nsync_farwalk *far; /* the other ends of this source's split walk, or NULL */
	int met;                   /* the ends' spans cover every page: every page was seen */
	int parked;                /* our end reached another's span: nothing left to walk now */
	int may_split;             /* the walk may split (large full walk, not split yet) */
};

/* One result of an answer as the walker reads it: from the scanner's tape
 * (scan set), or from json-c's tree (page set). */
struct result {
	const char *id, *created, *edited; /* NULL when absent or not strings */
	int unparsed;                      /* a stand-in for a page too deep to read */
	const char *why;                   /* its reason */
	int has_props;                     /* "properties" is an object */
	const char *props_text;            /* its JSON text */
	size_t props_len;
	int storable; /* props_text is valid UTF-8 without escapes jsonb refuses */
	const struct nsync_scan *scan;
	uint32_t props_node;
	struct json_object *page, *props;
	struct json_object *own; /* page, when parsed for this result alone */
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

	int busy = 0;

	if (rc != NSYNC_OK)
		return rc;
	/* The lane first: the other ends of a split walk wait meanwhile, and
	 * while it has work, also until the next look (unless the walker
	 * itself waits for them: parked, they are all the walk there is). */
	if (w->far)
		nsync__farwalk_hold(w->far, 1);
	rc = w->job->interject(w->job->interject_data, &busy, err);
	if (w->far)
		nsync__farwalk_hold(w->far, busy && !w->parked);
	return rc;
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

/* Append a string member (NULL: null) to the batch. */
static nsync_rc add_string_or_null(struct nsync_buf *b, const char *s)
{
	return s ? nsync__json_add_string(b, s, strlen(s), NULL) : nsync__buf_adds(b, "null");
}

/* The mapped columns of r: from the tape or the tree. */
static nsync_rc add_columns(struct walker *w, const struct result *r)
{
	struct nsync_buf *b = &w->batch;
	const struct nsync_kind *kind = w->job->kind;
	nsync_rc rc = nsync__buf_adds(b, ",\"n\":");

	if (rc == NSYNC_OK)
		rc = r->scan ? nsync__add_title_scan(b, r->scan, r->props_node, &w->text,
						     &w->cleaned)
			     : nsync__add_title(b, kind, r->props, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"x\":");
	if (rc == NSYNC_OK)
		rc = r->scan ? nsync__add_text_scan(b, kind, r->scan, r->props_node, &w->text,
						    &w->cleaned)
			     : nsync__add_text(b, kind, r->props, &w->cleaned);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"m\":");
	if (rc == NSYNC_OK)
		rc = r->scan ? nsync__add_count_scan(b, kind, r->scan, r->props_node)
			     : nsync__add_count(b, kind, r->props);
	return rc;
}

/* Append one changed page to the batch document; r->props_text is the JSON
 * text of its properties (raw from Notion, or re-serialised after
 * completion). */
static nsync_rc append_row(struct walker *w, const char *page_id, const uint8_t id[16],
			   const char *source_id, const struct result *r, const char *hash)
{
	struct nsync_buf *b = &w->batch;
	size_t off;
	nsync_rc rc;

	rc = nsync__buf_addc(b, w->n_rows ? ',' : '[');
	off = b->len;
	/* Ids and hashes are plain ASCII: no escaping, and no printf per page. */
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, "{\"p\":\"");
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, page_id);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, "\",\"h\":\"");
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, hash);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, "\",\"s\":");
	if (rc == NSYNC_OK && source_id) {
		rc = nsync__buf_addc(b, '"');
		if (rc == NSYNC_OK)
			rc = nsync__buf_adds(b, source_id);
		if (rc == NSYNC_OK)
			rc = nsync__buf_addc(b, '"');
	} else if (rc == NSYNC_OK) {
		rc = nsync__buf_adds(b, "null");
	}
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"c\":");
	if (rc == NSYNC_OK)
		rc = add_string_or_null(b, r->created);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"e\":");
	if (rc == NSYNC_OK)
		rc = add_string_or_null(b, r->edited);
	if (rc == NSYNC_OK)
		rc = add_columns(w, r);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(b, ",\"props\":");
	if (rc == NSYNC_OK)
		rc = r->storable ? nsync__buf_add(b, r->props_text, r->props_len)
				 : nsync__json_add_raw(b, r->props_text, r->props_len, &w->cleaned);
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
			   const char *source_id, const struct result *r, const char *hash,
			   struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	struct nsync_pagemap_slot *slot = nsync__pagemap_find(&w->map, id);
	uint8_t digest[16];
	nsync_rc rc;

	if (slot && slot->queued && (rc = flush(w, err)) != NSYNC_OK)
		return rc;
	/* Under 2022-06-28 the "source" is the database itself. */
	rc = append_row(w, norm, id, nsync__notion_legacy(job->notion) ? NULL : source_id, r, hash);
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

/* r as read from json-c's tree page; props_text/props_len the text of its
 * properties, when found. */
static void result_of_tree(struct result *r, struct json_object *page, const char *props_text,
			   size_t props_len)
{
	memset(r, 0, sizeof(*r));
	r->page = page;
	r->id = string_member(page, "id");
	r->created = string_member(page, "created_time");
	r->edited = string_member(page, "last_edited_time");
	if (json_object_object_get_ex(page, NSYNC_UNPARSED_MEMBER, NULL)) {
		r->unparsed = 1;
		r->why = string_member(page, NSYNC_UNPARSED_MEMBER);
	}
	r->has_props = json_object_object_get_ex(page, "properties", &r->props) &&
		       json_object_is_type(r->props, json_type_object) && props_len > 0;
	r->props_text = props_text;
	r->props_len = props_len;
}

/* Result i of an answer read lean, parsed by json-c for itself. */
static nsync_rc result_parsed(struct walker *w, const struct nsync_query_page *qp, size_t i,
			      struct result *r, struct nsync_err *err)
{
	const struct nsync_scan *scan = qp->scan;
	uint32_t props = scan->results[i].member[NSYNC_RESULT_PROPS];
	struct json_object *page = nsync__query_page_result(w->job->notion, qp, i, err);

	if (!page)
		return err && err->code ? err->code : NSYNC_ERR_PROTOCOL;
	if (props != NSYNC_NO_NODE && scan->nodes[props].type == NSYNC_NODE_OBJECT)
		result_of_tree(r, page, scan->nodes[props].s, scan->nodes[props].span);
	else
		result_of_tree(r, page, NULL, 0);
	r->own = page;
	return NSYNC_OK;
}

/* Result i of the answer qp. */
static nsync_rc result_at(struct walker *w, const struct nsync_query_page *qp, size_t i,
			  struct result *r, struct nsync_err *err)
{
	const struct nsync_scan_result *sr;
	uint32_t props;

	if (!qp->scan) {
		result_of_tree(r, json_object_array_get_idx(qp->results, i),
			       qp->raw + w->slices[i].off, w->slices[i].len);
		return NSYNC_OK;
	}
	sr = &qp->scan->results[i];
	/* A member named as a stand-in's is json-c's to judge, as before. */
	if (sr->odd || sr->member[NSYNC_RESULT_UNPARSED] != NSYNC_NO_NODE)
		return result_parsed(w, qp, i, r, err);
	memset(r, 0, sizeof(*r));
	r->scan = qp->scan;
	r->id = sr->string[NSYNC_RESULT_ID];
	r->created = sr->string[NSYNC_RESULT_CREATED];
	r->edited = sr->string[NSYNC_RESULT_EDITED];
	props = r->props_node = sr->member[NSYNC_RESULT_PROPS];
	if (props != NSYNC_NO_NODE && qp->scan->nodes[props].type == NSYNC_NODE_OBJECT) {
		r->has_props = 1;
		r->props_text = qp->scan->nodes[props].s;
		r->props_len = qp->scan->nodes[props].span;
		/* Not odd: no \u0000 or lone surrogate, so nothing to repair
		 * unless a string is not UTF-8 (what nsync__json_add_raw fixes). */
		r->storable = !sr->bad_utf8;
	}
	return NSYNC_OK;
}

/* The content hash of r. A page whose hash the tape does not vouch for is
 * read again, by json-c, and hashed from its tree. */
static nsync_rc hash_result(struct walker *w, const struct nsync_query_page *qp, size_t i,
			    struct result *r, char hash[NSYNC_HASH_HEX], struct nsync_err *err)
{
	int vouched = 0;
	nsync_rc rc;

	if (r->scan) {
		rc = nsync__content_hash_scan(r->scan, r->props_node, r->edited, hash, &vouched,
					      err);
		if (rc != NSYNC_OK || vouched)
			return rc;
		if ((rc = result_parsed(w, qp, i, r, err)) != NSYNC_OK)
			return rc;
	}
	return nsync__content_hash_tree(r->props, r->edited, hash, err);
}

/* Fetch the complete values of the deferred pages and queue them. A value
 * that cannot be fetched is a page error: the page is not written, so its
 * stored row (if any) keeps the old hash and the next sync tries again. */
static nsync_rc complete_deferred(struct walker *w, const char *source_id, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	nsync_rc rc = NSYNC_OK;
	size_t i;

	for (i = 0; i < w->n_deferred && rc == NSYNC_OK; i++) {
		const struct deferred *d = &w->deferred[i];
		struct nsync_err page_err;
		struct result r;
		const char *text;

		memset(&r, 0, sizeof(r));
		r.props = d->props;
		r.created = d->created;
		r.edited = d->edited;
		memset(&page_err, 0, sizeof(page_err));
		rc = nsync__complete_props(job->notion, &job->nctx, d->norm, r.props,
					   &w->stats->property_requests, &page_err);
		if (rc == NSYNC_ERR_NOMEM || rc == NSYNC_ERR_NOTION_AUTH) {
			if (err)
				*err = page_err;
			break;
		}
		if (rc != NSYNC_OK) {
			note_page_error(w, d->norm, &page_err);
			rc = NSYNC_OK;
			continue;
		}
		text = json_object_to_json_string_ext(r.props,
						      JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!text) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			break;
		}
		r.props_text = text;
		r.props_len = strlen(text);
		rc = queue_page(w, d->norm, d->id, source_id, &r, d->hash, err);
		if (rc == NSYNC_OK)
			rc = beat(w, err);
	}
	for (i = 0; i < w->n_deferred; i++)
		json_object_put(w->deferred[i].own);
	w->n_deferred = 0;
	return rc;
}

/* Copy src to dst (size bytes), cut to fit: snprintf "%s" without printf. */
static void copy_capped(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Mark a page seen (inserting it with no hash when it is new): its stored
 * row, if any, is kept, never deleted. */
static nsync_rc mark_seen(struct walker *w, const uint8_t id[16])
{
	static const uint8_t never[16];
	struct nsync_pagemap_slot *slot = nsync__pagemap_find(&w->map, id);

	if (!slot && !(slot = nsync__pagemap_set(&w->map, id, never)))
		return NSYNC_ERR_NOMEM;
	slot->seen = 1;
	return NSYNC_OK;
}

/* Handle result i of an answer, read as r. */
static nsync_rc take_result(struct walker *w, const char *source_id,
			    const struct nsync_query_page *qp, size_t i, struct result *r,
			    struct nsync_err *err)
{
	const char *sort_value = w->by_created ? r->created : r->edited;
	char hash[NSYNC_HASH_HEX], norm[37];
	struct nsync_pagemap_slot *slot;
	struct nsync_err page_err;
	uint8_t id[16], digest[16];
	int identified;
	nsync_rc rc;

	if (sort_value)
		copy_capped(w->last_value, sizeof(w->last_value), sort_value);
	/* Same format throughout (ISO 8601 UTC), so text order is time order. */
	if (r->edited && strcmp(r->edited, w->newest_edit) > 0)
		copy_capped(w->newest_edit, sizeof(w->newest_edit), r->edited);
	memset(&page_err, 0, sizeof(page_err));
	identified = r->id && nsync_normalize_id(r->id, norm, NULL) == NSYNC_OK &&
		     nsync__hex_to_bytes(norm, id, 16);
	if (r->unparsed) {
		/* Too deep to read: an error for this page alone. Seen, so
		 * its stored row (if any) is kept, never deleted. */
		w->stats->pages_seen++;
		if (!identified)
			w->unidentified++;
		else if (mark_seen(w, id) != NSYNC_OK)
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		nsync__err(&page_err, NSYNC_ERR_PROTOCOL, "%s",
			   r->why ? r->why : "unreadable page");
		note_page_error(w, r->id ? r->id : "(no id)", &page_err);
		return NSYNC_OK;
	}
	if (!identified || !r->has_props) {
		w->stats->pages_seen++;
		w->unidentified++;
		nsync__err(&page_err, NSYNC_ERR_PROTOCOL,
			   "result has no id or no properties (does the integration have "
			   "read-content capability?)");
		note_page_error(w, r->id ? r->id : "(no id)", &page_err);
		return NSYNC_OK;
	}
	slot = nsync__pagemap_find(&w->map, id);
	if (slot && slot->seen)
		return NSYNC_OK; /* repeated at a window boundary or after a restart */
	w->stats->pages_seen++;
	w->new_in_window++;
	rc = hash_result(w, qp, i, r, hash, err);
	if (rc != NSYNC_OK)
		return rc;
	nsync__hex_to_bytes(hash, digest, 16); /* 32 hex digits: cannot fail */
	if (slot && !slot->queued && memcmp(slot->hash, digest, 16) == 0) {
		w->stats->unchanged++;
		slot->seen = 1;
		return NSYNC_OK;
	}
	/* The hash is of the page as the query shows it (truncated or
	 * not), so an unchanged page never costs a property request. The
	 * values are completed after the whole answer is handled, on a
	 * json-c tree of the properties made now: the property requests
	 * reuse the buffer the answer's text is in. */
	if (r->scan ? nsync__scan_props_may_be_truncated(r->scan, r->props_node)
		    : nsync__props_may_be_truncated(r->props)) {
		struct deferred *d = &w->deferred[w->n_deferred];

		/* The tape's strings are copies that outlive the answer's text;
		 * its properties become a json-c tree of their own. */
		d->created = r->created;
		d->edited = r->edited;
		if (!r->scan) {
			d->props = r->props;
			d->own = r->own;
			r->own = NULL;
		} else if (nsync__scan_tree(r->scan, r->props_node, &d->props)) {
			d->own = d->props;
		} else {
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		w->n_deferred++;
		memcpy(d->id, id, 16);
		memcpy(d->norm, norm, sizeof(norm));
		memcpy(d->hash, hash, sizeof(hash));
		if (mark_seen(w, id) != NSYNC_OK)
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		return NSYNC_OK;
	}
	return queue_page(w, norm, id, source_id, r, hash, err);
}

/* Check the answer read as a json-c tree against the raw slices of its
 * results' properties, which go to PostgreSQL as Notion sent them. */
static nsync_rc slice_tree(struct walker *w, const char *source_id,
			   const struct nsync_query_page *qp, struct nsync_err *err)
{
	size_t count = json_object_array_length(qp->results);
	long sliced = nsync__slice_results_member(qp->raw, qp->raw_len, "properties", w->slices,
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
	return NSYNC_OK;
}

/* Handle every page of one Notion answer. */
static nsync_rc take_page_of_results(struct walker *w, const char *source_id,
				     const struct nsync_query_page *qp, struct nsync_err *err)
{
	size_t i, count = qp->scan ? qp->scan->n_results : json_object_array_length(qp->results);
	nsync_rc rc = qp->scan ? NSYNC_OK : slice_tree(w, source_id, qp, err);

	w->n_deferred = 0;
	w->by_created = strcmp(w->sort_field, "created_time") == 0;
	for (i = 0; i < count && rc == NSYNC_OK; i++) {
		struct result r;

		memset(&r, 0, sizeof(r));
		rc = result_at(w, qp, i, &r, err);
		if (rc == NSYNC_OK)
			rc = take_result(w, source_id, qp, i, &r, err);
		json_object_put(r.own);
	}
	if (rc != NSYNC_OK) {
		for (i = 0; i < w->n_deferred; i++)
			json_object_put(w->deferred[i].own);
		w->n_deferred = 0;
		return rc;
	}
	return complete_deferred(w, source_id, err);
}

/* Take the other ends' answers that wait (the first after up to wait
 * seconds) and handle their pages like our own. The sort position and
 * window count of our own end are kept. */
static nsync_rc take_far(struct walker *w, const char *source_id, double wait,
			 struct nsync_err *err)
{
	struct nsync_query_page qp;
	char *raw, saved[sizeof(w->last_value)];
	long saved_new = w->new_in_window;
	nsync_rc rc = NSYNC_OK;

	memcpy(saved, w->last_value, sizeof(saved));
	while (rc == NSYNC_OK && nsync__farwalk_take(w->far, &qp, &raw, wait)) {
		rc = take_page_of_results(w, source_id, &qp, err);
		nsync__query_page_clear(&qp);
		free(raw);
		wait = 0;
	}
	memcpy(w->last_value, saved, sizeof(saved));
	w->new_in_window = saved_new;
	return rc;
}

/* After our answer: take the other ends' answers, and tell whether the
 * spans walked cover every page (met), or else whether ours reached
 * another end's (parked). The spans meet strictly: pages created at the
 * very instant where two ends met may be on either side. */
static nsync_rc meet_far(struct walker *w, const char *source_id, struct nsync_err *err)
{
	nsync_rc rc = take_far(w, source_id, 0, err);

	nsync__farwalk_near(w->far, w->last_value);
	if (rc == NSYNC_OK) {
		w->met = nsync__farwalk_covered(w->far);
		w->parked = !w->met && nsync__farwalk_parked(w->far);
	}
	return rc;
}

/* Parked: take the other ends' answers as they come, keeping the lock's
 * heartbeat and the priority lane going, until the spans cover every page
 * or no end is left walking (one failed: the walker walks its gap). */
static nsync_rc wait_far(struct walker *w, const char *source_id, struct nsync_err *err)
{
	struct nsync_sync_job *job = w->job;
	nsync_rc rc = NSYNC_OK;

	while (rc == NSYNC_OK && !w->met && nsync__farwalk_busy(w->far)) {
		rc = take_far(w, source_id, 1.0, err);
		if (rc == NSYNC_OK && job->cfg->progress)
			job->cfg->progress(job->cfg->progress_data, job->kind->name,
					   w->stats->pages_seen);
		if (rc == NSYNC_OK)
			rc = beat(w, err);
		if (rc == NSYNC_OK && job->interject)
			rc = interject(w, err);
		if (rc == NSYNC_OK)
			w->met = nsync__farwalk_covered(w->far);
	}
	return rc;
}

/* Split the walk of source_id whose first answer took latency seconds.
 * Requests in flight = latency × rate keep the pace busy; with a quarter
 * more ends than that (answers vary), two per range, the ranges cut at
 * quantiles of the created_time of the rows the last walks stored, at
 * least half of split_walk_pages rows a range. Without quantiles (the store could
 * not say) the walk still goes from both ends. */
static void split(struct walker *w, const char *source_id, double latency)
{
	struct nsync_sync_job *job = w->job;
	char pivots[NSYNC_FARWALK_MAX_RANGES - 1][NSYNC_FARWALK_TIME];
	long rows = (long)(w->map.count / job->info->n_sources);
	long ranges = (long)(1.25 * job->cfg->rate_per_token * latency / 2 + 0.999);
	size_t n_pivots = 0;
	struct nsync_err qerr;

	if (ranges > job->cfg->split_ranges)
		ranges = job->cfg->split_ranges;
	/* A range of fewer rows would spend much of its few requests where
	 * its ends meet. */
	if (ranges > 2 * rows / job->cfg->split_walk_pages)
		ranges = 2 * rows / job->cfg->split_walk_pages;
	memset(&qerr, 0, sizeof(qerr));
	if (ranges > 1 &&
	    nsync__store_created_quantiles(job->store, job->kind, job->user_id, job->database_id,
					   source_id, (int)ranges, pivots[0], sizeof(pivots[0]),
					   &n_pivots, &qerr) != NSYNC_OK)
		n_pivots = 0;
	w->far = nsync__farwalk_start(job->cfg, job->nctx.token, job->nctx.pacer, source_id,
				      (const char(*)[NSYNC_FARWALK_TIME])pivots, n_pivots);
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

		double asked = nsync__monotonic(), paced = w->stats->pacing_seconds;

		rc = nsync__notion_query_lean(job->notion, &job->nctx, source_id, cursor, filter,
					      sorts, &qp, &qerr);
		/* An answer slower than the pace's spacing (waits for the pace
		 * not counted) leaves the pace unused: the walk splits. */
		if (rc == NSYNC_OK && w->may_split && !w->far && job->cfg->rate_per_token > 0) {
			double latency =
				nsync__monotonic() - asked - (w->stats->pacing_seconds - paced);

			if (latency > 1.0 / job->cfg->rate_per_token)
				split(w, source_id, latency);
			w->may_split = 0;
		}
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
		if (rc == NSYNC_OK && w->far)
			rc = meet_far(w, source_id, &qerr);
		free(cursor);
		cursor = NULL;
		if (rc == NSYNC_OK && qp.incomplete)
			*capped = 1;
		if (rc != NSYNC_OK || w->met || w->parked || !qp.has_more || qp.incomplete) {
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
		if (rc == NSYNC_OK && w->parked)
			rc = wait_far(w, source_id, err);
		if (rc != NSYNC_OK || w->met)
			return rc;
		if (w->parked) {
			/* An end stopped short: walk on from the lowest page no
			 * span covers (pages seen twice are skipped by id). */
			w->parked = 0;
			nsync__farwalk_gap(w->far, window_start);
			continue;
		}
		if (!capped)
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
	w->met = 0;
	w->parked = 0;
	/* A large full walk may split (farwalk.h), sized by the rows the last
	 * walks stored; walk_window splits it once Notion's first answer shows
	 * its latency wasting the pace. */
	w->may_split = full && job->cfg->split_walk_pages > 0 && job->info->n_sources &&
		       (long)(w->map.count / job->info->n_sources) >= job->cfg->split_walk_pages;
	rc = walk_source(w, source_id, since, err);
	if (w->far) {
		/* What it sent after we finished is taken too: pages seen twice
		 * are skipped by id. */
		nsync__farwalk_stop(w->far, rc == NSYNC_OK ? 5.0 : 0);
		if (rc == NSYNC_OK)
			rc = take_far(w, source_id, 0, err);
		nsync__farwalk_free(w->far, w->stats);
		w->far = NULL;
	}
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

static void walker_free(struct walker *w)
{
	nsync__pagemap_free(&w->map);
	nsync__buf_free(&w->batch);
	nsync__text_scratch_free(&w->text);
	free(w->rows);
	free(w);
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
	walker_free(w);
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
	walker_free(w);
	free(states);
	return rc;
}
