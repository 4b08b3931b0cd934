/*
 * complete.c - fetch the complete value of truncated properties (see
 * complete.h).
 */
#include <stdlib.h>
#include <string.h>

#include "complete.h"
#include "error.h"
#include "fnv.h"

/* What one property value may take before it is refused: 100 requests
 * of 100 items (10,000 references, far past what a writer's relation
 * holds) and 32 MiB of answers, so that an item list that never ends
 * costs bounded time and memory. */
#define MAX_ITEM_PAGES 100
#define MAX_ITEM_BYTES (32u << 20)

static const char *string_of(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Mentions of pages, users and databases: what Notion counts as references. */
static size_t count_references(struct json_object *rich_text)
{
	size_t i, n, refs = 0;

	n = json_object_array_length(rich_text);
	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(rich_text, i), *mention;
		const char *type = string_of(item, "type"), *what;

		if (!type || strcmp(type, "mention") != 0 ||
		    !json_object_object_get_ex(item, "mention", &mention))
			continue;
		what = string_of(mention, "type");
		if (what && (!strcmp(what, "page") || !strcmp(what, "user") ||
			     !strcmp(what, "database") || !strcmp(what, "data_source")))
			refs++;
	}
	return refs;
}

int nsync__value_may_be_truncated(struct json_object *value)
{
	struct json_object *inner, *more;
	const char *type = string_of(value, "type");

	if (!type || !json_object_object_get_ex(value, type, &inner) ||
	    !json_object_is_type(inner, json_type_array))
		return 0;
	if (!strcmp(type, "relation"))
		return json_object_object_get_ex(value, "has_more", &more) &&
		       json_object_get_boolean(more);
	if (!strcmp(type, "people"))
		return json_object_array_length(inner) >= NSYNC_REFERENCE_LIMIT;
	if (!strcmp(type, "title") || !strcmp(type, "rich_text"))
		return count_references(inner) >= NSYNC_REFERENCE_LIMIT;
	return 0;
}

int nsync__props_may_be_truncated(struct json_object *properties)
{
	if (!json_object_is_type(properties, json_type_object))
		return 0;
	json_object_object_foreach(properties, key, value) {
		(void)key;
		if (nsync__value_may_be_truncated(value))
			return 1;
	}
	return 0;
}

/* Fetch every item of one property into a new array (*out, owned by the
 * caller on success). */
static nsync_rc fetch_items(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			    const char *page_id, const char *property_id, const char *type,
			    struct json_object **out, long *requests, struct nsync_err *err)
{
	struct json_object *items = json_object_new_array();
	unsigned long seen[MAX_ITEM_PAGES];
	size_t bytes = 0;
	char *cursor = NULL;
	int pages = 0;
	nsync_rc rc = NSYNC_OK;

	if (!items)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	do {
		struct nsync_query_page page;
		size_t i, count;

		rc = nsync__notion_property_items(n, ctx, page_id, property_id, cursor, &page, err);
		(*requests)++;
		free(cursor);
		cursor = NULL;
		bytes += page.raw_len;
		if (rc == NSYNC_OK && bytes > MAX_ITEM_BYTES)
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
					"property %.40s of page %s took more than %u MiB of "
					"Notion's "
					"answers; it was not fetched further",
					property_id, page_id, MAX_ITEM_BYTES >> 20);
		count = rc == NSYNC_OK ? json_object_array_length(page.results) : 0;
		for (i = 0; i < count && rc == NSYNC_OK; i++) {
			struct json_object *item = json_object_array_get_idx(page.results, i),
					   *element;
			const char *item_type = string_of(item, "type");

			if (!item_type || strcmp(item_type, type) != 0 ||
			    !json_object_object_get_ex(item, type, &element))
				rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
						"Notion's property item is not of type %s", type);
			else if (json_object_array_add(items, json_object_get(element)) != 0)
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		if (rc == NSYNC_OK && page.has_more) {
			unsigned long h = nsync__fnv1a(page.next_cursor);
			int k;

			for (k = 0; k < pages && seen[k] != h; k++)
				;
			if (k < pages)
				rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
						"Notion returned a cursor it had returned before "
						"for property "
						"%.40s of page %s; stopping instead of looping",
						property_id, page_id);
			else if (pages + 1 >= MAX_ITEM_PAGES)
				rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
						"property %.40s of page %s did not end after %d "
						"requests "
						"(%d items); it was not fetched further",
						property_id, page_id, MAX_ITEM_PAGES,
						MAX_ITEM_PAGES * 100);
			else if (!(cursor = strdup(page.next_cursor)))
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			else
				seen[pages++] = h;
		}
		nsync__query_page_clear(&page);
	} while (rc == NSYNC_OK && cursor);
	free(cursor);
	if (rc != NSYNC_OK) {
		json_object_put(items);
		return rc;
	}
	*out = items;
	return NSYNC_OK;
}

nsync_rc nsync__complete_props(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			       const char *page_id, struct json_object *properties, long *requests,
			       struct nsync_err *err)
{
	json_object_object_foreach(properties, name, value) {
		struct json_object *items = NULL;
		const char *type = string_of(value, "type"), *id = string_of(value, "id");
		nsync_rc rc;

		if (!nsync__value_may_be_truncated(value))
			continue;
		if (!id || !*id)
			return nsync__err(err, NSYNC_ERR_PROTOCOL,
					  "property \"%.80s\" has no id to fetch its complete "
					  "value",
					  name);
		rc = fetch_items(n, ctx, page_id, id, type, &items, requests, err);
		if (rc != NSYNC_OK)
			return nsync__err_prefix(err, rc, "property \"%.80s\"", name);
		/* Replaces (and frees) the truncated list. */
		if (json_object_object_add(value, type, items) != 0) {
			json_object_put(items);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		if (!strcmp(type, "relation") &&
		    json_object_object_add(value, "has_more", json_object_new_boolean(0)) != 0)
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	}
	return NSYNC_OK;
}
