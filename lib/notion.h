/*
 * notion.h - the Notion endpoints the sync uses, over http.h:
 * retrieve a database (and its data sources), query a data source one page
 * of results at a time, and search. Knows the differences between API
 * versions (2022-06-28 queries databases, 2025-09-03 and later query data
 * sources). Each answer is parsed once: with json-c, or, for a query
 * answer read lean, by the scanner (pagescan.h) with json-c for its
 * envelope only.
 */
#ifndef NSYNC_NOTION_H
#define NSYNC_NOTION_H

#include <json-c/json.h>

#include "http.h"
#include "notionsync.h"

struct nsync_notion;

/* Most results Notion returns per list answer (page_size 100). */
#define NSYNC_PAGE_SIZE 100

/* Member of a query result that stands in for a page nesting deeper than
 * the parser reads; its value says why. Such a result has no properties. */
#define NSYNC_UNPARSED_MEMBER "nsync_unparsed"

/* Who a call is made for: the user's token, its pacer, the run's stats.
 * All borrowed. */
struct nsync_notion_ctx {
	const char *token;
	struct nsync_pacer *pacer;
	struct nsync_stats *stats;
};

/* nsync__json_string - the string member key of obj, borrowed from obj;
 * NULL when obj is NULL, or the member is absent or not a string. */
const char *nsync__json_string(struct json_object *obj, const char *key);

/* nsync__notion_new - a client for cfg (which must outlive it). */
struct nsync_notion *nsync__notion_new(const struct nsync_config *cfg, struct nsync_err *err);
void nsync__notion_free(struct nsync_notion *n);

/* nsync__notion_legacy - 1 when the configured version predates data
 * sources (2022-06-28): databases are queried directly. */
int nsync__notion_legacy(const struct nsync_notion *n);

struct nsync_database_info {
	char id[37];
	char *title; /* owned, plain text, "" if untitled */
	size_t n_sources;
	char (*sources)[37]; /* owned; data source ids, or the database id (legacy) */
};

/* nsync__notion_get_database - GET /v1/databases/{id}. Fills info (clear it
 * with nsync__database_info_clear even on failure); the title is cleaned to
 * valid UTF-8. NSYNC_ERR_NOT_FOUND when the database does not exist or is
 * not shared with the token; NSYNC_ERR_NO_DATA_SOURCES when it lists none
 * the token can read; NSYNC_ERR_PROTOCOL for a title over 1 MiB. Under
 * 2022-06-28 a refusal (400 validation_error) is classified by Notion's
 * error_type or by the database object under 2025-09-03 (one more request). */
nsync_rc nsync__notion_get_database(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				    const char *database_id, struct nsync_database_info *info,
				    struct nsync_err *err);
void nsync__database_info_clear(struct nsync_database_info *info);

/* The members of a query result found on the scanner's tape, in
 * struct nsync_scan_result's member[] and string[]. */
enum nsync_result_member {
	NSYNC_RESULT_ID,
	NSYNC_RESULT_CREATED,  /* created_time */
	NSYNC_RESULT_EDITED,   /* last_edited_time */
	NSYNC_RESULT_PROPS,    /* properties */
	NSYNC_RESULT_UNPARSED, /* NSYNC_UNPARSED_MEMBER, which only a stand-in should have */
	NSYNC_RESULT_MEMBERS
};

struct nsync_scan;

/* One page of query results. */
struct nsync_query_page {
	struct json_object *root;    /* owned: the parsed answer (its envelope only, when scan
					is set) */
	struct json_object *results; /* borrowed from root: the results array (empty when
					scan is set) */
	const char *raw;             /* borrowed: the answer's text, valid until the next call */
	size_t raw_len;
	const char *next_cursor; /* borrowed from root, NULL at the end */
	int has_more;
	int incomplete; /* request_status.type == "incomplete" (result cap hit) */
	/* borrowed: when set, the results are read from this tape (pagescan.h)
	 * instead; its nodes are valid, like raw, until the next call on the
	 * client, the strings of its results until the next query read lean */
	const struct nsync_scan *scan;
};

/* nsync__notion_query - POST one query for source_id (a data source, or a
 * database under 2022-06-28) with page_size 100, starting at cursor (NULL
 * for the first page). filter_json, if not NULL, is a JSON object text
 * placed as "filter"; sorts_json likewise as "sorts". Fills page (clear it
 * with nsync__query_page_clear). NSYNC_ERR_PROTOCOL if the answer is not a
 * list of at most 100 results with a boolean has_more. A result nesting
 * deeper than 128 levels is replaced by a stand-in holding only its id and
 * NSYNC_UNPARSED_MEMBER; the other results are parsed as usual. */
nsync_rc nsync__notion_query(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			     const char *source_id, const char *cursor, const char *filter_json,
			     const char *sorts_json, struct nsync_query_page *page,
			     struct nsync_err *err);
void nsync__query_page_clear(struct nsync_query_page *page);

/* nsync__notion_query_lean - the same query, its results not parsed by
 * json-c: page->scan holds them (and page->results is empty), unless the
 * scanner declined the answer (pagescan.h), which is then read as
 * nsync__notion_query reads it (page->scan NULL). Same failures. */
nsync_rc nsync__notion_query_lean(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				  const char *source_id, const char *cursor,
				  const char *filter_json, const char *sorts_json,
				  struct nsync_query_page *page, struct nsync_err *err);

/* nsync__query_page_result - result i of a page read lean (page->scan
 * set), parsed alone by json-c: for a result the tape is not used for, or
 * whose values are completed. A new object (put it), or NULL with err
 * filled. Call it before the next call on the client. */
struct json_object *nsync__query_page_result(struct nsync_notion *n,
					     const struct nsync_query_page *page, size_t i,
					     struct nsync_err *err);

/* nsync__notion_get_page - GET /v1/pages/{id}, filled in as a query page
 * of one result (page->results[0] is the page; raw, in a buffer of n,
 * stays valid until the next get_page on n), so that nsync__sync_pages
 * writes it exactly as a walk would. NSYNC_ERR_NOT_FOUND when Notion says
 * the page does not exist or is not shared; other failures as a query. */
nsync_rc nsync__notion_get_page(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				const char *page_id, struct nsync_query_page *page,
				struct nsync_err *err);

/* nsync__notion_workspace - GET /v1/users/me: the workspace id of the
 * token's bot (bot.workspace_id), dashed lowercase. NSYNC_ERR_PROTOCOL
 * when the answer has none. */
nsync_rc nsync__notion_workspace(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				 char workspace_id[37], struct nsync_err *err);

/* nsync__notion_property_items - GET one page of a paginated property value
 * (/v1/pages/{page_id}/properties/{property_id}, page_size 100), starting
 * at cursor (NULL for the first). property_id is the id the page object
 * gives (already URL-encoded by Notion); other unsafe bytes are encoded
 * here. Fills page as nsync__notion_query does: results are property_item
 * objects holding one element each. Counted in ctx->stats like any call. */
nsync_rc nsync__notion_property_items(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				      const char *page_id, const char *property_id,
				      const char *cursor, struct nsync_query_page *page,
				      struct nsync_err *err);

/* Called for each search result (a data_source object, or a database object
 * under 2022-06-28). result is borrowed for the call. Return NSYNC_OK to go
 * on; any other code stops the search and is returned. */
typedef nsync_rc (*nsync_search_fn)(void *data, struct json_object *result, struct nsync_err *err);

/* nsync__notion_search - POST /v1/search for data sources (databases under
 * 2022-06-28) whose title contains query, following every page of results. */
nsync_rc nsync__notion_search(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			      const char *query, nsync_search_fn fn, void *data,
			      struct nsync_err *err);

#endif
