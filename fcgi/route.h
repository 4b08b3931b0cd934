/*
 * route.h - the responder's routes:
 *   POST /api/notion/sync-to-postgres     sync now, or queue ("async": true) -> 202
 *   GET  /api/notion/sync-to-postgres     cron webhooks (Vercel): queue every user -> 202
 *   GET  /api/notion/sync-runs/{run_id}   a run's status and statistics
 *   POST /api/notion/webhooks/{key}       Notion's webhook events (signed; no bearer)
 *   GET  /metrics                         Prometheus text (format 0.0.4), bearer required
 *   GET  /healthz                         liveness, no authentication
 *   any  /_notion_sync_auth               nginx auth_request: 204 or 401
 * Everything else is 404 (unknown path) or 405 (known path, wrong method).
 */
#ifndef FCGI_ROUTE_H
#define FCGI_ROUTE_H

#include <fcgiapp.h>

#include "auth.h"
#include "notionsync.h"

/* Largest request body accepted; the real body is about 150 bytes. */
#define FCGI_MAX_BODY (64 * 1024)

struct fcgi_app {
	struct nsync_service *svc; /* the request thread's service */
	struct nsync_pool *pool;   /* workers for queued runs; may be NULL */
	struct fcgi_secrets secrets;
};

/* fcgi_handle - answer one request completely. Returns the HTTP status
 * sent (for the access log line). Never fails: every problem becomes an
 * answer. */
int fcgi_handle(struct fcgi_app *app, FCGX_Request *req);

/* fcgi_request_path - the request path without its query string, copied
 * into out (size bytes): DOCUMENT_URI, else REQUEST_URI, else SCRIPT_NAME
 * plus PATH_INFO. */
void fcgi_request_path(FCGX_ParamArray envp, char *out, size_t size);

#endif
