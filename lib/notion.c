/*
 * notion.c - Notion endpoints used by the sync (see notion.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "mapping.h"
#include "notion.h"
#include "text.h"

/* json-c's default depth (32) is too shallow for some rollup values. */
#define NOTION_JSON_DEPTH 128

struct nsync_notion {
	const struct nsync_config *cfg;
	struct nsync_http *http;
	json_tokener *tok;
	int legacy;
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
	free(n);
}

int nsync__notion_legacy(const struct nsync_notion *n)
{
	return n->legacy;
}

/* Parse a whole answer. Returns a new object (caller puts it) or NULL with
 * err set. */
static struct json_object *parse(struct nsync_notion *n, const char *text, size_t len,
				 const char *what, struct nsync_err *err)
{
	struct json_object *root;
	enum json_tokener_error jerr;

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
	}
	if (jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		nsync__err(err, NSYNC_ERR_PROTOCOL, "Notion's answer to %s is not a JSON object (%s)",
			   what, jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "wrong type");
		json_object_put(root);
		return NULL;
	}
	return root;
}

void nsync__database_info_clear(struct nsync_database_info *info)
{
	free(info->title);
	free(info->sources);
	memset(info, 0, sizeof(*info));
}

nsync_rc nsync__notion_get_database(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				    const char *database_id, struct nsync_database_info *info,
				    struct nsync_err *err)
{
	char path[96];
	const char *text;
	size_t len, i, count;
	struct json_object *root = NULL, *title, *sources;
	struct nsync_buf plain;
	nsync_rc rc;

	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%s", database_id);
	snprintf(path, sizeof(path), "/v1/databases/%s", database_id);
	rc = nsync__http_call(n->http, path, NULL, ctx->token, ctx->pacer, ctx->stats, &text,
			      &len, err);
	/* 2022-06-28 cannot read a database with several data sources: say
	 * which database, and what to change. */
	if (rc == NSYNC_ERR_NOTION && n->legacy && err && err->notion_status == 400 &&
	    strcmp(err->notion_code, "validation_error") == 0 && strstr(err->msg, "data source"))
		return nsync__err_prefix(err, "database %s has several data sources, which "
					 "Notion-Version %s cannot read; set NOTION_VERSION to "
					 "2025-09-03 or later", database_id, n->cfg->notion_version);
	if (rc != NSYNC_OK)
		return rc;
	root = parse(n, text, len, "retrieve database", err);
	if (!root)
		return NSYNC_ERR_PROTOCOL;

	nsync__buf_init(&plain, 1 << 20);
	if (json_object_object_get_ex(root, "title", &title))
		rc = nsync__rich_text_plain(&plain, title);
	info->title = nsync__buf_take(&plain);
	if (rc != NSYNC_OK || !info->title) {
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading a database title");
		goto out;
	}

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
	if (!json_object_object_get_ex(root, "data_sources", &sources) ||
	    !json_object_is_type(sources, json_type_array)) {
		rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
				"database %s has no data_sources list (is NOTION_VERSION %s right?)",
				database_id, n->cfg->notion_version);
		goto out;
	}
	count = json_object_array_length(sources);
	info->sources = calloc(count ? count : 1, sizeof(*info->sources));
	if (!info->sources) {
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		struct json_object *id;
		if (!json_object_object_get_ex(json_object_array_get_idx(sources, i), "id", &id) ||
		    nsync_normalize_id(json_object_get_string(id), info->sources[info->n_sources],
				       NULL) != NSYNC_OK) {
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
					"database %s lists a data source without a valid id", database_id);
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

/* Read the list envelope shared by query and search answers. */
static nsync_rc read_list(struct nsync_query_page *page, const char *what, struct nsync_err *err)
{
	struct json_object *v;

	if (!json_object_object_get_ex(page->root, "results", &page->results) ||
	    !json_object_is_type(page->results, json_type_array))
		return nsync__err(err, NSYNC_ERR_PROTOCOL, "Notion's answer to %s has no results list",
				  what);
	if (json_object_object_get_ex(page->root, "has_more", &v))
		page->has_more = json_object_get_boolean(v);
	if (json_object_object_get_ex(page->root, "next_cursor", &v) &&
	    json_object_is_type(v, json_type_string))
		page->next_cursor = json_object_get_string(v);
	if (page->has_more && !page->next_cursor)
		return nsync__err(err, NSYNC_ERR_PROTOCOL,
				  "Notion's answer to %s has more results but no next_cursor", what);
	if (json_object_object_get_ex(page->root, "request_status", &v) &&
	    json_object_object_get_ex(v, "type", &v) &&
	    strcmp(json_object_get_string(v), "incomplete") == 0)
		page->incomplete = 1;
	return NSYNC_OK;
}

nsync_rc nsync__notion_query(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			     const char *source_id, const char *cursor, const char *filter_json,
			     const char *sorts_json, struct nsync_query_page *page,
			     struct nsync_err *err)
{
	char path[112];
	struct nsync_buf body;
	nsync_rc rc;

	memset(page, 0, sizeof(*page));
	snprintf(path, sizeof(path), n->legacy ? "/v1/databases/%s/query" : "/v1/data_sources/%s/query",
		 source_id);
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
	rc = nsync__http_call(n->http, path, body.data, ctx->token, ctx->pacer, ctx->stats,
			      &page->raw, &page->raw_len, err);
	nsync__buf_free(&body);
	if (rc != NSYNC_OK)
		return rc;
	page->root = parse(n, page->raw, page->raw_len, "query", err);
	if (!page->root)
		return NSYNC_ERR_PROTOCOL;
	return read_list(page, "query", err);
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
	rc = nsync__http_call(n->http, path.data, NULL, ctx->token, ctx->pacer, ctx->stats,
			      &page->raw, &page->raw_len, err);
	nsync__buf_free(&path);
	if (rc != NSYNC_OK)
		return rc;
	page->root = parse(n, page->raw, page->raw_len, "retrieve a page property", err);
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
					       ",\"filter\":{\"property\":\"object\",\"value\":\"%s\"},"
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
		rc = nsync__http_call(n->http, "/v1/search", body.data, ctx->token, ctx->pacer,
				      ctx->stats, &page.raw, &page.raw_len, err);
		if (rc != NSYNC_OK)
			break;
		page.root = parse(n, page.raw, page.raw_len, "search", err);
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
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL, "Notion search did not end after 1000 pages");
	} while (rc == NSYNC_OK && cursor);
	if (rc != NSYNC_OK)
		nsync__query_page_clear(&page);
	free(cursor);
	nsync__buf_free(&body);
	return rc;
}
