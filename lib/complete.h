/*
 * complete.h - values Notion truncates in page objects, made whole.
 *
 * Page objects (query results too) carry at most 25 references per
 * property: a relation stops at 25 with "has_more": true, a people list at
 * 25 users, a title or rich text at 25 page/user/database mentions. The
 * complete value comes from GET /v1/pages/{id}/properties/{property_id},
 * one element per result, paginated. This module decides which values may
 * be cut and replaces them in place with the complete list.
 */
#ifndef NSYNC_COMPLETE_H
#define NSYNC_COMPLETE_H

#include <json-c/json.h>

#include "notion.h"
#include "notionsync.h"

/* Where Notion stops counting references in a page object. */
#define NSYNC_REFERENCE_LIMIT 25

/* nsync__value_may_be_truncated - 1 when this property value (an entry of
 * a page's "properties") may hold fewer references than the page has:
 * a relation with has_more true, a people list of at least 25 users, a
 * title or rich text with at least 25 mentions. 0 otherwise, including
 * for values of unexpected shape. */
int nsync__value_may_be_truncated(struct json_object *value);

/* nsync__props_may_be_truncated - 1 when any value of properties may be. */
int nsync__props_may_be_truncated(struct json_object *properties);

/* nsync__complete_props - replace every value of properties that may be
 * truncated with its complete list, fetched page by page. properties is
 * changed in place (relations get "has_more": false). *requests counts the
 * property requests made. On failure returns the Notion call's code
 * (NSYNC_ERR_NOTION*, NSYNC_ERR_NOT_FOUND, NSYNC_ERR_PROTOCOL) or
 * NSYNC_ERR_NOMEM, with err naming the property; values completed before
 * the failure stay completed, the failing one keeps its truncated list. */
nsync_rc nsync__complete_props(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
			       const char *page_id, struct json_object *properties, long *requests,
			       struct nsync_err *err);

#endif
