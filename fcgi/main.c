/*
 * main.c - notion-sync-fcgi, the FastCGI responder: read the configuration,
 * start the worker threads that run queued (asynchronous) syncs, then
 * answer requests one at a time on the listening socket spawn-fcgi passes
 * as fd 0. Run several processes (spawn-fcgi -F N) for concurrency; they
 * coordinate through PostgreSQL (advisory locks, the run queue).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fcgiapp.h>

#include "notionsync.h"
#include "route.h"

static void log_line(void *data, const char *line)
{
	(void)data;
	fprintf(stderr, "notion-sync-fcgi[%ld]: %s\n", (long)getpid(), line);
}

/* Make request-supplied text safe for a one-line log: no control
 * characters, bounded length. */
static void printable(const char *in, char *out, size_t size)
{
	size_t i;

	for (i = 0; in && in[i] && i + 1 < size; i++)
		out[i] = (unsigned char)in[i] < 0x20 || (unsigned char)in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* Answer requests until the socket closes. */
static void serve(struct fcgi_app *app, FCGX_Request *req)
{
	while (FCGX_Accept_r(req) >= 0) {
		double start = now_ms();
		char raw_path[256], path[256], method[16], remote[64];
		int status;

		/* Copy what the log line needs: params die at FCGX_Finish_r. */
		fcgi_request_path(req->envp, raw_path, sizeof(raw_path));
		printable(raw_path, path, sizeof(path));
		printable(FCGX_GetParam("REQUEST_METHOD", req->envp), method, sizeof(method));
		printable(FCGX_GetParam("REMOTE_ADDR", req->envp), remote, sizeof(remote));
		status = fcgi_handle(app, req);
		fprintf(stderr,
			"notion-sync-fcgi[%ld]: request method=%s path=%s status=%d "
			"remote=%s duration_ms=%.0f\n",
			(long)getpid(), method, path, status, remote, now_ms() - start);
		FCGX_Finish_r(req);
	}
}

int main(int argc, char **argv)
{
	struct nsync_config cfg;
	struct nsync_err err;
	struct fcgi_app app;
	FCGX_Request req;
	const char *why = NULL;
	int curl_ready = 0, status = 2;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: spawn-fcgi [options] -- notion-sync-fcgi\n"
		       "FastCGI responder for POST /api/notion/sync-to-postgres and GET /healthz.\n"
		       "Configuration comes from the environment; NOTION_SYNC_SECRET is "
		       "required.\n");
		return 0;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	memset(&err, 0, sizeof(err));
	memset(&app, 0, sizeof(app));
	memset(&cfg, 0, sizeof(cfg));
	if (nsync_config_from_env(&cfg, &err) != NSYNC_OK) {
		why = err.msg;
		goto out;
	}
	if (fcgi_secrets_load(&app.secrets, getenv("NOTION_SYNC_SECRET")) != 0 ||
	    app.secrets.n == 0) {
		/* Refusing to start is clearer than answering 401 to everyone. */
		why = "NOTION_SYNC_SECRET is not set; refusing to start without a bearer secret";
		goto out;
	}
	cfg.log = log_line;
	if (curl_global_init(CURL_GLOBAL_ALL) != 0) {
		why = "libcurl failed to initialise";
		goto out;
	}
	curl_ready = 1;
	if (!(app.svc = nsync_service_new(&cfg, &err))) {
		why = err.msg;
		goto out;
	}
	if (cfg.workers > 0) {
		char host[64] = "", name[96];
		gethostname(host, sizeof(host) - 1);
		snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
		if (!(app.pool = nsync_pool_start(&cfg, name, false, &err))) {
			why = err.msg;
			goto out;
		}
	}
	nsync_config_clear(&cfg); /* copied by the service and the pool; may hold a password */
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
		why = "FastCGI initialisation failed";
		goto out;
	}
	serve(&app, &req);
	status = 0;
out:
	if (why)
		fprintf(stderr, "notion-sync-fcgi: %s\n", why);
	nsync_pool_stop(app.pool);
	nsync_service_free(app.svc);
	fcgi_secrets_free(&app.secrets);
	nsync_config_clear(&cfg);
	if (curl_ready)
		curl_global_cleanup();
	return status;
}
