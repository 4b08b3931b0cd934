/*
 * http.h - the Notion HTTP client: one libcurl easy handle reused for every
 * request (keep-alive), timeouts, the retry policy of retry.h, per-token
 * pacing (pacer.h), and statistics. Tokens go only into the Authorization header;
 * they never reach an error message.
 */
#ifndef NSYNC_HTTP_H
#define NSYNC_HTTP_H

#include <stddef.h>

#include "clock.h"
#include "pacer.h"
#include "notionsync.h"
#include "retry.h"

/* Largest Notion answer accepted (decompressed). A 100-page query answer is
 * about 0.5 MB; anything near this limit is not a Notion answer. */
#define NSYNC_HTTP_MAX_BODY (64u * 1024 * 1024)
/* An answer buffer larger than this is freed before the next request. */
#define NSYNC_HTTP_KEEP_BODY (4u * 1024 * 1024)

struct nsync_http;

/* nsync__http_new - a client for cfg's Notion URL and version. cfg must
 * outlive the client. NULL with err on failure. */
struct nsync_http *nsync__http_new(const struct nsync_config *cfg, struct nsync_err *err);

/* nsync__http_free - accepts NULL. */
void nsync__http_free(struct nsync_http *h);

/* nsync__http_call - send one request (with retries) to cfg's base URL plus
 * path: a POST of body (JSON) when body is not NULL, else a GET, with
 * Notion-Version version_override (NULL: cfg's). pacer may be NULL.
 * stats (may be NULL) counts requests, retries, connections and seconds waited.
 * On a 2xx answer returns NSYNC_OK and *resp and *resp_len point to the body,
 * borrowed until the next call on h. On a final failure returns
 * NSYNC_ERR_NOTION_AUTH (401/403), NSYNC_ERR_NOT_FOUND (404),
 * NSYNC_ERR_NOTION (anything else, or transport failure after retries),
 * with err->notion_status, err->notion_code, err->notion_error_type and
 * Notion's message filled; NSYNC_ERR_PROTOCOL for an answer larger than
 * NSYNC_HTTP_MAX_BODY or an implausible Retry-After. */
nsync_rc nsync__http_call(struct nsync_http *h, const char *path, const char *body,
			  const char *version_override, const char *token,
			  struct nsync_pacer *pacer, struct nsync_stats *stats, const char **resp,
			  size_t *resp_len, struct nsync_err *err);

#endif
