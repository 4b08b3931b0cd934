/*
 * route.c - routing and the handlers of the responder (see route.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "respond.h"
#include "route.h"

#define SYNC_PATH "/api/notion/sync-to-postgres"
#define RUNS_PATH "/api/notion/sync-runs/"
#define WEBHOOK_PATH "/api/notion/webhooks/"
#define METRICS_PATH "/metrics"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* nginx's auth_request subrequest (nginx/notion-sync-locations.conf). */
#define AUTH_PATH "/_notion_sync_auth"

void fcgi_request_path(FCGX_ParamArray envp, char *out, size_t size)
{
	const char *uri = FCGX_GetParam("DOCUMENT_URI", envp);
	size_t len;

	if (!uri || !*uri)
		uri = FCGX_GetParam("REQUEST_URI", envp);
	if (uri && *uri) {
		len = strcspn(uri, "?");
		snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), uri);
		return;
	}
	snprintf(out, size, "%s%s", FCGX_GetParam("SCRIPT_NAME", envp) ?: "",
		 FCGX_GetParam("PATH_INFO", envp) ?: "");
}

/* Read the whole body. Returns 0, or the HTTP status to answer with. */
static int read_body(FCGX_Request *req, char **body, size_t *len, const char **why)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	char *end;
	unsigned long n;
	int got;

	*body = NULL;
	*len = 0;
	if (!cl || !*cl)
		return 0;
	/* Digits only: strtoul would take " -1" as a huge number (413) and
	 * "+5" as 5. */
	if (strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 12) {
		*why = "Content-Length is not a number";
		return 400;
	}
	errno = 0;
	n = strtoul(cl, &end, 10);
	if (errno || *end) {
		*why = "Content-Length is not a number";
		return 400;
	}
	if (n > FCGI_MAX_BODY) {
		*why = "the request body is larger than 64 KiB";
		return 413;
	}
	*body = malloc(n + 1);
	if (!*body) {
		*why = "out of memory";
		return 500;
	}
	got = n ? FCGX_GetStr(*body, (int)n, req->in) : 0;
	if (got < 0 || (unsigned long)got != n) {
		free(*body);
		*body = NULL;
		*why = "the request body is shorter than its Content-Length";
		return 400;
	}
	(*body)[n] = '\0';
	*len = n;
	return 0;
}

static int handle_health(struct fcgi_app *app, FCGX_Request *req)
{
	struct nsync_err err;

	memset(&err, 0, sizeof(err));
	if (nsync_service_ping(app->svc, &err) != NSYNC_OK) {
		fprintf(stderr, "notion-sync-fcgi: health check: %s\n", err.msg);
		fcgi_send_json(req->out, 503, NULL,
			       "{\"success\":false,\"status\":\"unavailable\",\"error\":{\"code\":"
			       "\"database_unavailable\",\"message\":\"PostgreSQL does not "
			       "answer\"}}");
		return 503;
	}
	fcgi_send_json(req->out, 200, NULL, "{\"status\":\"ok\",\"postgres\":\"ok\"}");
	return 200;
}

static int unauthorized_because(FCGX_Request *req, const char *why)
{
	fcgi_send_error(req->out, 401, "unauthorized", why, 0, "WWW-Authenticate: Bearer\r\n");
	return 401;
}

static int unauthorized(FCGX_Request *req)
{
	return unauthorized_because(req, "a valid \"Authorization: Bearer <secret>\" header is "
					 "required");
}

/* The auth subrequest's refusal: nginx answers the client itself from its
 * own 401 page, so the reason travels in X-Notion-Sync-Auth-Error, already
 * escaped for the JSON string it is put in (auth_request_set). */
static int refused_to_nginx(FCGX_Request *req, const char *why)
{
	const char *reason = why;
	char header[400];
	size_t o = 0;

	o += (size_t)snprintf(header, sizeof(header), "X-Notion-Sync-Auth-Error: ");
	for (; *why && o + 40 < sizeof(header); why++) {
		if (*why == '"' || *why == '\\')
			header[o++] = '\\';
		header[o++] = *why;
	}
	snprintf(header + o, sizeof(header) - o, "\r\nWWW-Authenticate: Bearer\r\n");
	fcgi_send_error(req->out, 401, "unauthorized", reason, 0, header);
	return 401;
}

static const char *signature_header(FCGX_Request *req)
{
	return FCGX_GetParam("HTTP_X_NOTION_SYNC_SIGNATURE", req->envp);
}

/* Answer a library failure: its status, and no libpq internals. */
static int send_failure(FCGX_Request *req, nsync_rc rc, const struct nsync_err *err)
{
	int status = fcgi_status_for(rc);

	if (status == 500)
		fprintf(stderr, "notion-sync-fcgi: internal error: %s\n", err->msg);
	/* libpq's text names sockets and hosts: log it, answer plainly. */
	if (rc == NSYNC_ERR_DB)
		fprintf(stderr, "notion-sync-fcgi: %s\n", err->msg);
	fcgi_send_error(req->out, status, nsync_rc_name(rc),
			rc == NSYNC_ERR_DB ? "PostgreSQL is unavailable; see the server log"
					   : err->msg,
			err->run_id, NULL);
	return status;
}

/* Who is calling, for the run rows: pg_net sends "User-Agent: pg_net/<v>",
 * Vercel Cron "vercel-cron/<v>". */
static void set_trigger(FCGX_Request *req, struct nsync_request *sync_req, int is_get)
{
	const char *agent = FCGX_GetParam("HTTP_USER_AGENT", req->envp);
	const char *trigger = is_get ? "cron" : "http";

	if (agent && strncmp(agent, "pg_net/", 7) == 0)
		trigger = "pg_net";
	else if (agent && strncmp(agent, "vercel-cron/", 12) == 0)
		trigger = "vercel_cron";
	snprintf(sync_req->trigger, sizeof(sync_req->trigger), "%s", trigger);
}

/* POST: run now, or queue with "async": true. GET (cron webhooks, which
 * cannot send a body): queue every user. */
static int handle_sync(struct fcgi_app *app, FCGX_Request *req, int is_get)
{
	struct nsync_request sync_req;
	struct nsync_err err;
	char *body = NULL, *answer = NULL;
	const char *why = "";
	size_t len = 0;
	int status, bearer;
	nsync_rc rc;

	bearer = fcgi_authorized(&app->secrets, FCGX_GetParam("HTTP_AUTHORIZATION", req->envp));
	if (!bearer && !signature_header(req))
		return unauthorized(req);
	if (!is_get) {
		status = read_body(req, &body, &len, &why);
		if (status) {
			fcgi_send_error(req->out, status,
					status == 413 ? "payload_too_large" : "invalid_request",
					why, 0, NULL);
			return status;
		}
	}
	memset(&err, 0, sizeof(err));
	if (!bearer) {
		/* Signed by PostgreSQL: over the exact body, once. */
		char v1[FCGI_SIGNATURE_HEX];
		long long signed_at = 0;
		enum fcgi_signature check =
			fcgi_signature_check(&app->secrets, signature_header(req), body ? body : "",
					     len, time(NULL), &signed_at, v1);
		bool first = false;

		if (check != FCGI_SIGNATURE_VALID) {
			free(body);
			return unauthorized_because(req, fcgi_signature_problem(check));
		}
		rc = nsync_service_claim_signature(app->svc, v1, signed_at, &first, &err);
		if (rc != NSYNC_OK) {
			free(body);
			return send_failure(req, rc, &err);
		}
		if (!first) {
			free(body);
			fcgi_send_json(req->out, 202, NULL,
				       "{\"success\":true,\"status\":\"duplicate\",\"message\":"
				       "\"this signed "
				       "request was accepted before; nothing new was done\"}");
			return 202;
		}
	}
	rc = nsync_request_parse(body ? body : "", len, &sync_req, &err);
	free(body);
	if (rc != NSYNC_OK)
		return send_failure(req, rc, &err);
	set_trigger(req, &sync_req, is_get);
	if (is_get)
		sync_req.async = true;
	if (sync_req.async && !app->pool) {
		fcgi_send_error(req->out, 503, "configuration_error",
				"this responder runs no workers (NOTION_SYNC_WORKERS)", 0, NULL);
		return 503;
	}
	if (sync_req.async)
		rc = nsync_service_enqueue(app->svc, &sync_req, &answer, &err);
	else
		rc = nsync_service_run(app->svc, &sync_req, &answer, &err);
	if (rc != NSYNC_OK)
		return send_failure(req, rc, &err);
	status = sync_req.async ? 202 : 200;
	fcgi_send_json(req->out, status, NULL, answer);
	free(answer);
	if (sync_req.async)
		nsync_pool_wake(app->pool);
	return status;
}

/* GET /api/notion/sync-runs/{run_id}. */
static int handle_run_status(struct fcgi_app *app, FCGX_Request *req, const char *id_text)
{
	struct nsync_err err;
	char *answer = NULL, *end;
	long run_id;
	nsync_rc rc;

	if (!fcgi_authorized(&app->secrets, FCGX_GetParam("HTTP_AUTHORIZATION", req->envp)))
		return unauthorized(req);
	errno = 0;
	run_id = isdigit((unsigned char)id_text[0]) ? strtol(id_text, &end, 10) : 0;
	if (run_id <= 0 || errno || *end) {
		fcgi_send_error(req->out, 400, "invalid_request",
				"the run id must be a positive integer", 0, NULL);
		return 400;
	}
	memset(&err, 0, sizeof(err));
	rc = nsync_service_run_status(app->svc, run_id, &answer, &err);
	if (rc != NSYNC_OK)
		return send_failure(req, rc, &err);
	fcgi_send_json(req->out, 200, NULL, answer);
	free(answer);
	return 200;
}

/* GET /metrics: Prometheus text, computed from the run log now. */
static int handle_metrics(struct fcgi_app *app, FCGX_Request *req)
{
	struct nsync_err err;
	char *text = NULL;
	nsync_rc rc;

	if (!fcgi_authorized(&app->secrets, FCGX_GetParam("HTTP_AUTHORIZATION", req->envp)))
		return unauthorized(req);
	memset(&err, 0, sizeof(err));
	rc = nsync_service_metrics(app->svc, &text, &err);
	if (rc != NSYNC_OK)
		return send_failure(req, rc, &err);
	fcgi_send_text(req->out, 200, METRICS_TYPE, text);
	free(text);
	return 200;
}

/* POST /api/notion/webhooks/{key}: Notion's events. No bearer: the key
 * finds the subscription and the signature proves the sender. Neither the
 * body nor the signature is logged. */
static int handle_webhook(struct fcgi_app *app, FCGX_Request *req, const char *key)
{
	struct nsync_err err;
	char *body = NULL, *answer = NULL;
	const char *why = "";
	size_t len = 0;
	int status;
	bool wake = false;
	nsync_rc rc;

	status = read_body(req, &body, &len, &why);
	if (status) {
		fcgi_send_error(req->out, status,
				status == 413 ? "payload_too_large" : "invalid_request", why, 0,
				NULL);
		return status;
	}
	memset(&err, 0, sizeof(err));
	rc = nsync_webhook_receive(app->svc, key, body ? body : "", len,
				   FCGX_GetParam("HTTP_X_NOTION_SIGNATURE", req->envp), &status,
				   &answer, &wake, &err);
	free(body);
	if (rc != NSYNC_OK)
		return send_failure(req, rc, &err);
	fcgi_send_json(req->out, status, NULL, answer);
	free(answer);
	if (wake && app->pool)
		nsync_pool_wake(app->pool);
	return status;
}

int fcgi_handle(struct fcgi_app *app, FCGX_Request *req)
{
	char path[1024];
	const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);

	fcgi_request_path(req->envp, path, sizeof(path));
	if (!method)
		method = "GET";
	if (strcmp(path, "/healthz") == 0) {
		if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
			fcgi_send_error(req->out, 405, "method_not_allowed", "use GET", 0,
					"Allow: GET, HEAD\r\n");
			return 405;
		}
		return handle_health(app, req);
	}
	if (strcmp(path, SYNC_PATH) == 0) {
		if (strcmp(method, "POST") && strcmp(method, "GET")) {
			fcgi_send_error(req->out, 405, "method_not_allowed",
					"use POST (or GET from cron)", 0, "Allow: GET, POST\r\n");
			return 405;
		}
		return handle_sync(app, req, strcmp(method, "GET") == 0);
	}
	if (strcmp(path, AUTH_PATH) == 0) {
		/* The same constant-time check as the handlers; no body is read,
		 * so a signature is checked for its form and age here, and over
		 * the body by the handler. */
		if (!fcgi_authorized(&app->secrets,
				     FCGX_GetParam("HTTP_AUTHORIZATION", req->envp))) {
			char v1[FCGI_SIGNATURE_HEX];
			long long signed_at;
			enum fcgi_signature check;

			if (!signature_header(req))
				return unauthorized(req);
			check = fcgi_signature_check(&app->secrets, signature_header(req), NULL, 0,
						     time(NULL), &signed_at, v1);
			if (check != FCGI_SIGNATURE_VALID)
				return refused_to_nginx(req, fcgi_signature_problem(check));
		}
		FCGX_PutS("Status: 204 No Content\r\nCache-Control: no-store\r\n\r\n", req->out);
		return 204;
	}
	if (strncmp(path, RUNS_PATH, strlen(RUNS_PATH)) == 0) {
		if (strcmp(method, "GET")) {
			fcgi_send_error(req->out, 405, "method_not_allowed", "use GET", 0,
					"Allow: GET\r\n");
			return 405;
		}
		return handle_run_status(app, req, path + strlen(RUNS_PATH));
	}
	if (strncmp(path, WEBHOOK_PATH, strlen(WEBHOOK_PATH)) == 0) {
		if (strcmp(method, "POST")) {
			fcgi_send_error(req->out, 405, "method_not_allowed", "use POST", 0,
					"Allow: POST\r\n");
			return 405;
		}
		return handle_webhook(app, req, path + strlen(WEBHOOK_PATH));
	}
	if (strcmp(path, METRICS_PATH) == 0) {
		if (strcmp(method, "GET")) {
			fcgi_send_error(req->out, 405, "method_not_allowed", "use GET", 0,
					"Allow: GET\r\n");
			return 405;
		}
		return handle_metrics(app, req);
	}
	fcgi_send_error(req->out, 404, "not_found", "no such endpoint", 0, NULL);
	return 404;
}
