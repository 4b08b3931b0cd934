/*
 * notion.c - Notion endpoints used by the sync (see notion.h).
 *
 * Over 500 lines because each endpoint's answer is checked here, where its
 * shape is known (the depth fallback, the data-source rules of each API
 * version, the list envelope); the callers get only checked values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "jsonslice.h"
#include "mapping.h"
#include "notion.h"
#include "pagescan.h"
#include "text.h"

/* json-c's default depth (32) is too shallow for some rollup values. */
#define NOTION_JSON_DEPTH 128

struct nsync_notion {
	const struct nsync_config *cfg;
	struct nsync_http *http;
	json_tokener *tok;
	int legacy;
	struct nsync_buf envelope; /* a fetched page as a list of one (get_page) */
	struct nsync_scan scan;    /* the tape of the last query answer read lean */
};

struct nsync_notion *nsync__notion_new(const struct nsync_config *cfg, struct nsync_err *err)
{
	struct nsync_notion *n = calloc(1, sizeof(*n));

	if (!n) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory creating the Notion client");
		return NULL;
	}
	n->cfg = cfg;
	n->legacy = strcmp(cfg->notion_version, "2025-09-03") < 0;
	nsync__buf_init(&n->envelope, NSYNC_HTTP_MAX_BODY + 64);
	n->tok = json_tokener_new_ex(NOTION_JSON_DEPTH);
	n->http = nsync__http_new(cfg, err);
	if (!n->tok || !n->http) {
		if (!n->tok)
			nsync__err(err, NSYNC_ERR_NOMEM, "out of memory creating the JSON parser");
		nsync__notion_free(n);
		return NULL;
	}
	return n;
}

void nsync__notion_free(struct nsync_notion *n)
{
	if (!n)
		return;
	nsync__http_free(n->http);
	if (n->tok)
		json_tokener_free(n->tok);
	nsync__buf_free(&n->envelope);
	nsync__scan_free(&n->scan);
	free(n);
}

const char *nsync__json_string(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int nsync__notion_legacy(const struct nsync_notion *n)
{
	return n->legacy;
}

/* Most bytes of a database title's plain text. */
#define TITLE_MAX (1u << 20)

/* Parse a whole answer. Returns a new object (caller puts it) or NULL with
 * err set; *depth_exceeded (may be NULL) tells that nesting was the cause. */
static struct json_object *parse(struct nsync_notion *n, const char *text, size_t len,
				 const char *what, int *depth_exceeded, struct nsync_err *err)
{
	struct json_object *root;
	enum json_tokener_error jerr;

	if (depth_exceeded)
		*depth_exceeded = 0;
	if (len > 0x7fffffff) {
		nsync__err(err, NSYNC_ERR_PROTOCOL, "Notion's answer to %s is too large", what);
		return NULL;
	}
	json_tokener_reset(n->tok);
	root = json_tokener_parse_ex(n->tok, text, (int)len);
	jerr = json_tokener_get_error(n->tok);
	if (jerr == json_tokener_continue) {
		/* A bare value without a terminator: feed the end. */
		root = json_tokener_parse_ex(n->tok, "", 1);
		jerr = json_tokener_get_error(n->tok);
	} else if (jerr == json_tokener_success) {
		size_t end = json_tokener_get_parse_end(n->tok);
		/* Two objects, or an object and garbage: not one answer. */
		if (end < len && strspn(text + end, " \t\r\n") != len - end) {
			json_object_put(root);
			nsync__err(err, NSYNC_ERR_PROTOCOL,
				   "Notion's answer to %s has text after its JSON object", what);
			return NULL;
		}
	}
	if (jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		if (depth_exceeded)
			*depth_exceeded = jerr == json_tokener_error_depth;
		nsync__err(err, NSYNC_ERR_PROTOCOL,
			   "Notion's answer to %s is not a JSON object (%s)", what,
			   jerr != json_tokener_success ? json_tokener_error_desc(jerr)
							: "wrong type");
		json_object_put(root);
		return NULL;
	}
	return root;
}

/* A stand-in for a result that nests deeper than NOTION_JSON_DEPTH:
 * {"object":"page","id":..., NSYNC_UNPARSED_MEMBER: why}. The walker turns
 * it into a page error for that page alone. */
static struct json_object *unparsed_result(const char *raw, size_t len)
{
	struct json_object *stand_in = json_object_new_object();
	struct nsync_slice id;
	char norm[37];

	if (!stand_in)
		return NULL;
	json_object_object_add(stand_in, "object", json_object_new_string("page"));
	/* The id is a plain string member; the nesting is further in. */
	if (nsync__slice_member(raw, len, "id", &id) == 1 && id.len == 38 && raw[id.off] == '"') {
		char quoted[37];
		memcpy(quoted, raw + id.off + 1, 36);
		quoted[36] = '\0';
		if (nsync_normalize_id(quoted, norm, NULL) == NSYNC_OK)
			json_object_object_add(stand_in, "id", json_object_new_string(norm));
	}
	json_object_object_add(stand_in, NSYNC_UNPARSED_MEMBER,
			       json_object_new_string("the page's JSON nests deeper than "
						      "notion-sync reads (128 levels)"));
	return stand_in;
}

/* Parse a list answer whose results may nest too deeply: parse the
 * envelope with an empty results list, then each result on its own. */
static struct json_object *parse_results_apart(struct nsync_notion *n, const char *text, size_t len,
					       const char *what, struct nsync_err *err)
{
	struct nsync_slice elems[NSYNC_PAGE_SIZE + 1], results;
	struct json_object *root = NULL, *list;
	struct nsync_buf envelope;
	long count, i;
	int deep;

	count = nsync__slice_results(text, len, elems, NSYNC_PAGE_SIZE + 1);
	if (count < 0 || count > NSYNC_PAGE_SIZE ||
	    nsync__slice_member(text, len, "results", &results) != 1) {
		nsync__err(err, NSYNC_ERR_PROTOCOL,
			   "Notion's answer to %s nests deeper than 128 levels outside its results",
			   what);
		return NULL;
	}
	nsync__buf_init(&envelope, len + 3);
	if (nsync__buf_add(&envelope, text, results.off) != NSYNC_OK ||
	    nsync__buf_adds(&envelope, "[]") != NSYNC_OK ||
	    nsync__buf_add(&envelope, text + results.off + results.len,
			   len - results.off - results.len) != NSYNC_OK) {
		nsync__buf_free(&envelope);
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading Notion's answer");
		return NULL;
	}
	root = parse(n, envelope.data, envelope.len, what, NULL, err);
	nsync__buf_free(&envelope);
	if (!root)
		return NULL;
	list = json_object_new_array();
	json_object_object_add(root, "results", list);
	for (i = 0; i < count; i++) {
		struct json_object *elem =
			parse(n, text + elems[i].off, elems[i].len, what, &deep, err);
		if (!elem && deep)
			elem = unparsed_result(text + elems[i].off, elems[i].len);
		if (!elem) {
			json_object_put(root);
			return NULL;
		}
		json_object_array_add(list, elem);
	}
	nsync__err_clear(err);
	return root;
}

void nsync__database_info_clear(struct nsync_database_info *info)
{
	free(info->title);
	free(info->sources);
	memset(info, 0, sizeof(*info));
}

static nsync_rc multi_source_error(const struct nsync_notion *n, const char *database_id,
				   size_t count, struct nsync_err *err)
{
	char how_many[32] = "";

	if (count)
		snprintf(how_many, sizeof(how_many), " (%zu)", count);
	nsync__err(err, NSYNC_ERR_NOTION,
		   "database %s has multiple data sources%s, which Notion-Version %s cannot read; "
		   "set NOTION_VERSION to 2025-09-03 or later",
		   database_id, how_many, n->cfg->notion_version);
	return NSYNC_ERR_NOTION;
}

static nsync_rc no_sources_error(const char *database_id, struct nsync_err *err)
{
	return nsync__err(err, NSYNC_ERR_NO_DATA_SOURCES,
			  "database %s lists no data source the integration can read (a linked "
			  "database, or its data sources are no longer shared with the "
			  "integration); nothing was synced or deleted",
			  database_id);
}

/* The data_sources list of a database answer, or NULL. */
static struct json_object *sources_of(struct json_object *root)
{
	struct json_object *sources;

	if (!json_object_object_get_ex(root, "data_sources", &sources) ||
	    !json_object_is_type(sources, json_type_array))
		return NULL;
	return sources;
}

/* 2022-06-28 answered 400 validation_error to GET /v1/databases/{id}. The
 * code alone does not tell why: a database with several data sources, or
 * one with none the integration can read (a linked database) both answer
 * so. Notion's additional_data.error_type tells the first; otherwise the
 * database object under 2025-09-03 tells (one more request). When neither
 * tells, err keeps Notion's own message, with no advice of ours. */
static nsync_rc classify_legacy_refusal(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
					const char *database_id, const char *path,
					struct nsync_err *err)
{
	struct json_object *root, *sources;
	struct nsync_err probe;
	const char *text;
	size_t len, count;
	nsync_rc rc;

	if (strcmp(err->notion_error_type, "multiple_data_sources_for_database") == 0)
		return multi_source_error(n, database_id, 0, err);
	memset(&probe, 0, sizeof(probe));
	rc = nsync__http_call(n->http, path, NULL, "2025-09-03", ctx->token, ctx->pacer, ctx->stats,
			      &text, &len, &probe);
	if (rc != NSYNC_OK)
		return err->code;
	root = parse(n, text, len, "retrieve database", NULL, &probe);
	sources = root ? sources_of(root) : NULL;
	count = sources ? json_object_array_length(sources) : 1;
	json_object_put(root);
	if (count == 0)
		return no_sources_error(database_id, err);
	if (count > 1)
		return multi_source_error(n, database_id, count, err);
	return err->code;
}

/* The plain text of a rich-text array, cleaned to valid UTF-8, capped at
 * TITLE_MAX bytes. *out is new (free()). */
static nsync_rc title_text(struct json_object *title, const char *database_id, char **out,
			   struct nsync_err *err)
{
	struct nsync_buf plain, clean;
	nsync_rc rc;

	*out = NULL;
	nsync__buf_init(&plain, TITLE_MAX);
	nsync__buf_init(&clean, TITLE_MAX * 2);
	rc = nsync__rich_text_plain(&plain, title);
	if (rc == NSYNC_OK)
		rc = nsync__utf8_clean(&clean, plain.data ? plain.data : "", plain.len, NULL);
	if (rc == NSYNC_OK && !(*out = nsync__buf_take(&clean)))
		rc = NSYNC_ERR_NOMEM;
	if (rc != NSYNC_OK)
		rc = plain.over_limit
			     ? nsync__err(err, NSYNC_ERR_PROTOCOL,
					  "the title of database %s is longer than %u KiB of text, "
					  "which is no Notion title",
					  database_id, TITLE_MAX >> 10)
			     : nsync__err(err, NSYNC_ERR_NOMEM,
					  "out of memory reading a database title");
	nsync__buf_free(&plain);
	nsync__buf_free(&clean);
	return rc;
}

nsync_rc nsync__notion_get_database(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				    const char *database_id, struct nsync_database_info *info,
				    struct nsync_err *err)
{
	char path[96];
	const char *text;
	size_t len, i, count;
	struct json_object *root = NULL, *title = NULL, *sources;
	nsync_rc rc;

	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%s", database_id);
	snprintf(path, sizeof(path), "/v1/databases/%s", database_id);
	rc = nsync__http_call(n->http, path, NULL, NULL, ctx->token, ctx->pacer, ctx->stats, &text,
			      &len, err);
	if (rc == NSYNC_ERR_NOTION && n->legacy && err && err->notion_status == 400 &&
	    strcmp(err->notion_code, "validation_error") == 0)
		return classify_legacy_refusal(n, ctx, database_id, path, err);
	if (rc != NSYNC_OK)
		return rc;
	root = parse(n, text, len, "retrieve database", NULL, err);
	if (!root)
		return NSYNC_ERR_PROTOCOL;

	json_object_object_get_ex(root, "title", &title);
	rc = title_text(title, database_id, &info->title, err);
	if (rc != NSYNC_OK)
		goto out;

	if (n->legacy) {
		info->sources = calloc(1, sizeof(*info->sources));
		if (!info->sources) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(info->sources[0], database_id, 37);
		info->n_sources = 1;
		goto out;
	}
	if (!(sources = sources_of(root))) {
		rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
				"database %s has no data_sources list (is NOTION_VERSION %s "
				"right?)",
				database_id, n->cfg->notion_version);
		goto out;
	}
	count = json_object_array_length(sources);
	if (count == 0) {
		rc = no_sources_error(database_id, err);
		goto out;
	}
	info->sources = calloc(count, sizeof(*info->sources));
	if (!info->sources) {
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		struct json_object *id;
		if (!json_object_object_get_ex(json_object_array_get_idx(sources, i), "id", &id) ||
		    !json_object_is_type(id, json_type_string) ||
		    nsync_normalize_id(json_object_get_string(id), info->sources[info->n_sources],
				       NULL) != NSYNC_OK) {
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
					"database %s lists a data source without a valid id",
					database_id);
			goto out;
		}
		info->n_sources++;
	}
out:
	json_object_put(root);
	return rc;
}

void nsync__query_page_clear(struct nsync_query_page *page)
{
	json_object_put(page->root);
	memset(page, 0, sizeof(*page));
}

/* Read the list envelope shared by query, property-item and search answers. */
static nsync_rc read_list(struct nsync_query_page *page, const char *what, struct nsync_err *err)
{
	struct json_object *v;
	size_t count;

	if (!json_object_object_get_ex(page->root, "results", &page->results))
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's answer to %s has no \"results\" member", what);
	if (!json_object_is_type(page->results, json_type_array))
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's answer to %s has a \"results\" member that is not a "
				  "list",
				  what);
	count = json_object_array_length(page->results);
	if (count > NSYNC_PAGE_SIZE)
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's answer to %s has %zu results, more than the %d asked "
				  "for",
				  what, count, NSYNC_PAGE_SIZE);
	if (json_object_object_get_ex(page->root, "has_more", &v) && v) {
		if (!json_object_is_type(v, json_type_boolean))
			return nsync__err(err, NSYNC_ERR_PROTOCOL,
					  "Notion's answer to %s has a \"has_more\" that is "
					  "neither "
					  "true nor false",
					  what);
		page->has_more = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(page->root, "next_cursor", &v) &&
	    json_object_is_type(v, json_type_string))
		page->next_cursor = json_object_get_string(v);
	if (page->has_more && (!page->next_cursor || !*page->next_cursor))
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's answer to %s has more results but no next_cursor",
				  what);
	if (json_object_object_get_ex(page->root, "request_status", &v) &&
	    json_object_object_get_ex(v, "type", &v) && json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "incomplete") == 0)
		page->incomplete = 1;
	return NSYNC_OK;
}

/* Read a query answer with json-c: the whole tree, or, when a result nests
 * too deeply, the envelope and each result on its own. */
static nsync_rc read_tree(struct nsync_notion *n, struct nsync_query_page *page, const char *what,
			  struct nsync_err *err)
{
	int deep;

	page->root = parse(n, page->raw, page->raw_len, what, &deep, err);
	/* One page nesting too deeply must not hide the others. */
	if (!page->root && deep)
		page->root = parse_results_apart(n, page->raw, page->raw_len, what, err);
	if (!page->root)
		return err && err->code ? err->code : NSYNC_ERR_PROTOCOL;
	return read_list(page, what, err);
}

/* Parse the envelope of a list answer: its text with the results array,
 * from off for len bytes, read as []. Fed to json-c in three pieces, so
 * nothing is copied. NULL when json-c does not read it as an object. */
static struct json_object *parse_envelope(struct nsync_notion *n, const char *text, size_t len,
					  size_t off, size_t results_len)
{
	struct json_object *root = NULL;
	const char *const pieces[] = {text, "[]", text + off + results_len};
	const size_t sizes[] = {off, 2, len - off - results_len};
	size_t i;

	json_tokener_reset(n->tok);
	for (i = 0; i < 3 && !root; i++) {
		root = json_tokener_parse_ex(n->tok, pieces[i], (int)sizes[i]);
		if (!root && json_tokener_get_error(n->tok) != json_tokener_continue)
			return NULL;
	}
	if (root && !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return NULL;
	}
	return root;
}

/* The members of a query result the walk reads (enum nsync_result_member). */
static const char *const result_members[NSYNC_RESULT_MEMBERS] = {"id", "created_time",
								 "last_edited_time", "properties",
								 NSYNC_UNPARSED_MEMBER};

/* Read a query answer lean: the scanner's tape for the results, json-c
 * for the envelope only. An answer the scanner declines, or one with more
 * results than asked for or a result with a member read twice, is read as
 * a tree, which reports what is wrong with it as it always did. */
static nsync_rc read_lean(struct nsync_notion *n, struct nsync_query_page *page, const char *what,
			  struct nsync_err *err)
{
	struct nsync_scan *scan = &n->scan;
	int read = nsync__scan_answer(scan, page->raw, page->raw_len, result_members,
				      NSYNC_RESULT_MEMBERS);
	size_t i;

	if (read < 0)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading Notion's answer");
	for (i = 0; read && i < scan->n_results; i++)
		read = !scan->results[i].twice;
	if (read && scan->n_results <= NSYNC_PAGE_SIZE)
		page->root = parse_envelope(n, page->raw, page->raw_len, scan->results_off,
					    scan->results_len);
	if (!page->root)
		return read_tree(n, page, what, err);
	page->scan = scan;
	return read_list(page, what, err);
}

static nsync_rc query(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
		      const char *source_id, const char *cursor, const char *filter_json,
		      const char *sorts_json, int lean, struct nsync_query_page *page,
		      struct nsync_err *err)
{
	char path[112];
	struct nsync_buf body;
	nsync_rc rc;

	memset(page, 0, sizeof(*page));
	snprintf(path, sizeof(path),
		 n->legacy ? "/v1/databases/%s/query" : "/v1/data_sources/%s/query", source_id);
	nsync__buf_init(&body, 1 << 20);
	rc = nsync__buf_adds(&body, "{\"page_size\":100");
	if (rc == NSYNC_OK && cursor) {
		rc = nsync__buf_adds(&body, ",\"start_cursor\":");
		if (rc == NSYNC_OK)
			rc = nsync__json_add_string(&body, cursor, strlen(cursor), NULL);
	}
	if (rc == NSYNC_OK && filter_json)
		rc = nsync__buf_printf(&body, ",\"filter\":%s", filter_json);
	if (rc == NSYNC_OK && sorts_json)
		rc = nsync__buf_printf(&body, ",\"sorts\":%s", sorts_json);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(&body, '}');
	if (rc != NSYNC_OK) {
		nsync__buf_free(&body);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a query");
	}
	rc = nsync__http_call(n->http, path, body.data, NULL, ctx->token, ctx->pacer, ctx->stats,
			      &page->raw, &page->raw_len, err);
	nsync__buf_free(&body);
	if (rc != NSYNC_OK)
		return rc;
	return lean ? read_lean(n, page, "query", err) : read_tree(n, page, "query", err);
}

nsync_rc nsync__notion_query(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			     const char *source_id, const char *cursor, const char *filter_json,
			     const char *sorts_json, struct nsync_query_page *page,
			     struct nsync_err *err)
{
	return query(n, ctx, source_id, cursor, filter_json, sorts_json, 0, page, err);
}

nsync_rc nsync__notion_query_lean(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				  const char *source_id, const char *cursor,
				  const char *filter_json, const char *sorts_json,
				  struct nsync_query_page *page, struct nsync_err *err)
{
	return query(n, ctx, source_id, cursor, filter_json, sorts_json, 1, page, err);
}

struct json_object *nsync__query_page_result(struct nsync_notion *n,
					     const struct nsync_query_page *page, size_t i,
					     struct nsync_err *err)
{
	const struct nsync_node *node = &page->scan->nodes[page->scan->results[i].node];

	return parse(n, node->s, node->span, "query", NULL, err);
}

nsync_rc nsync__notion_get_page(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				const char *page_id, struct nsync_query_page *page,
				struct nsync_err *err)
{
	static const char head[] = "{\"object\":\"list\",\"results\":[";
	static const char tail[] = "],\"has_more\":false}";
	char path[96];
	const char *text;
	size_t len;
	nsync_rc rc;

	memset(page, 0, sizeof(*page));
	snprintf(path, sizeof(path), "/v1/pages/%s", page_id);
	rc = nsync__http_call(n->http, path, NULL, NULL, ctx->token, ctx->pacer, ctx->stats, &text,
			      &len, err);
	if (rc != NSYNC_OK)
		return rc;
	/* The page as the one result of a list, so that the walk's slicing,
	 * hashing and completion apply unchanged. */
	nsync__buf_reset(&n->envelope);
	if (nsync__buf_add(&n->envelope, head, sizeof(head) - 1) != NSYNC_OK ||
	    nsync__buf_add(&n->envelope, text, len) != NSYNC_OK ||
	    nsync__buf_add(&n->envelope, tail, sizeof(tail) - 1) != NSYNC_OK)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading a page");
	page->raw = n->envelope.data;
	page->raw_len = n->envelope.len;
	rc = read_tree(n, page, "retrieve page", err);
	if (rc == NSYNC_OK &&
	    (json_object_array_length(page->results) != 1 ||
	     !json_object_is_type(json_object_array_get_idx(page->results, 0), json_type_object)))
		rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
				"Notion's answer to retrieve page %s is not one page object",
				page_id);
	return rc;
}

nsync_rc nsync__notion_workspace(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				 char workspace_id[37], struct nsync_err *err)
{
	const char *text;
	size_t len;
	struct json_object *root, *bot, *ws;
	nsync_rc rc;

	workspace_id[0] = '\0';
	rc = nsync__http_call(n->http, "/v1/users/me", NULL, NULL, ctx->token, ctx->pacer,
			      ctx->stats, &text, &len, err);
	if (rc != NSYNC_OK)
		return rc;
	root = parse(n, text, len, "users/me", NULL, err);
	if (!root)
		return NSYNC_ERR_PROTOCOL;
	if (!json_object_object_get_ex(root, "bot", &bot) ||
	    !json_object_object_get_ex(bot, "workspace_id", &ws) ||
	    !json_object_is_type(ws, json_type_string) ||
	    nsync_normalize_id(json_object_get_string(ws), workspace_id, NULL) != NSYNC_OK)
		rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
				"Notion's answer to users/me has no bot.workspace_id");
	json_object_put(root);
	return rc;
}

/* Append s to b percent-encoded, leaving unreserved bytes and existing
 * escapes ('%') as they are. */
static nsync_rc add_url_part(struct nsync_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	nsync_rc rc = NSYNC_OK;

	for (; *s && rc == NSYNC_OK; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || c == '%')
			rc = nsync__buf_addc(b, (char)c);
		else
			rc = nsync__buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
	return rc;
}

nsync_rc nsync__notion_property_items(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				      const char *page_id, const char *property_id,
				      const char *cursor, struct nsync_query_page *page,
				      struct nsync_err *err)
{
	struct nsync_buf path;
	nsync_rc rc;

	memset(page, 0, sizeof(*page));
	nsync__buf_init(&path, 1 << 16);
	rc = nsync__buf_printf(&path, "/v1/pages/%s/properties/", page_id);
	if (rc == NSYNC_OK)
		rc = add_url_part(&path, property_id);
	if (rc == NSYNC_OK)
		rc = nsync__buf_adds(&path, "?page_size=100");
	if (rc == NSYNC_OK && cursor) {
		rc = nsync__buf_adds(&path, "&start_cursor=");
		if (rc == NSYNC_OK)
			rc = add_url_part(&path, cursor);
	}
	if (rc != NSYNC_OK) {
		nsync__buf_free(&path);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a request");
	}
	rc = nsync__http_call(n->http, path.data, NULL, NULL, ctx->token, ctx->pacer, ctx->stats,
			      &page->raw, &page->raw_len, err);
	nsync__buf_free(&path);
	if (rc != NSYNC_OK)
		return rc;
	page->root = parse(n, page->raw, page->raw_len, "retrieve a page property", NULL, err);
	if (!page->root)
		return NSYNC_ERR_PROTOCOL;
	return read_list(page, "retrieve a page property", err);
}

nsync_rc nsync__notion_search(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			      const char *query, nsync_search_fn fn, void *data,
			      struct nsync_err *err)
{
	struct nsync_query_page page;
	struct nsync_buf body;
	char *cursor = NULL;
	int pages = 0;
	nsync_rc rc = NSYNC_OK;

	nsync__buf_init(&body, 1 << 20);
	do {
		size_t i, count;

		nsync__buf_reset(&body);
		memset(&page, 0, sizeof(page));
		rc = nsync__buf_adds(&body, "{\"query\":");
		if (rc == NSYNC_OK)
			rc = nsync__json_add_string(&body, query, strlen(query), NULL);
		if (rc == NSYNC_OK)
			rc = nsync__buf_printf(&body,
					       ",\"filter\":{\"property\":\"object\",\"value\":\"%"
					       "s\"},"
					       "\"page_size\":100",
					       n->legacy ? "database" : "data_source");
		if (rc == NSYNC_OK && cursor) {
			rc = nsync__buf_adds(&body, ",\"start_cursor\":");
			if (rc == NSYNC_OK)
				rc = nsync__json_add_string(&body, cursor, strlen(cursor), NULL);
		}
		if (rc == NSYNC_OK)
			rc = nsync__buf_addc(&body, '}');
		if (rc != NSYNC_OK) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a search");
			break;
		}
		rc = nsync__http_call(n->http, "/v1/search", body.data, NULL, ctx->token,
				      ctx->pacer, ctx->stats, &page.raw, &page.raw_len, err);
		if (rc != NSYNC_OK)
			break;
		page.root = parse(n, page.raw, page.raw_len, "search", NULL, err);
		if (!page.root) {
			rc = NSYNC_ERR_PROTOCOL;
			break;
		}
		rc = read_list(&page, "search", err);
		count = rc == NSYNC_OK ? json_object_array_length(page.results) : 0;
		for (i = 0; i < count && rc == NSYNC_OK; i++)
			rc = fn(data, json_object_array_get_idx(page.results, i), err);
		free(cursor);
		cursor = NULL;
		if (rc == NSYNC_OK && page.has_more) {
			cursor = strdup(page.next_cursor);
			if (!cursor)
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		nsync__query_page_clear(&page);
		/* A search that never ends is a Notion bug; do not loop forever. */
		if (rc == NSYNC_OK && cursor && ++pages > 1000)
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
					"Notion search did not end after 1000 pages");
	} while (rc == NSYNC_OK && cursor);
	if (rc != NSYNC_OK)
		nsync__query_page_clear(&page);
	free(cursor);
	nsync__buf_free(&body);
	return rc;
}
