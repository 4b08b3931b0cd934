/*
 * config.c - defaults and environment variables for struct nsync_config.
 * The README's "Configuration" table documents the same variables.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "error.h"
#include "notionsync.h"

static nsync_rc set_string(char **field, const char *value, struct nsync_err *err)
{
	char *copy = strdup(value);

	if (!copy)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading the configuration");
	free(*field);
	*field = copy;
	return NSYNC_OK;
}

/* Parse a number from the environment within [min, max]; absent or empty
 * keeps *out. */
static nsync_rc env_number(const char *name, double min, double max, double *out,
			   struct nsync_err *err)
{
	const char *s = getenv(name);
	char *end;
	double v;

	if (!s || !*s)
		return NSYNC_OK;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return nsync__err(err, NSYNC_ERR_CONFIG, "%s must be a number from %g to %g", name,
				  min, max);
	*out = v;
	return NSYNC_OK;
}

nsync_rc nsync_config_from_env(struct nsync_config *cfg, struct nsync_err *err)
{
	const char *s;
	double batch = 200, timeout = 60000, connect = 10000, attempts = 6;
	double max_wait = 600, workers = 2, per_user = 2, split = 2000,
	       ranges = NSYNC_MAX_SPLIT_RANGES;
	nsync_rc rc;

	if (!cfg)
		return nsync__err(err, NSYNC_ERR_ARG,
				  "nsync_config_from_env: no configuration to fill");
	memset(cfg, 0, sizeof(*cfg));
	cfg->batch_size = (int)batch;
	cfg->request_timeout_ms = (long)timeout;
	cfg->connect_timeout_ms = (long)connect;
	cfg->max_attempts = (int)attempts;
	cfg->max_retry_wait = max_wait;
	cfg->rate_per_token = 3.0;
	cfg->max_request_wait = 900;
	cfg->backoff_base = 1.0;
	cfg->full_interval = 86400;
	cfg->workers = 2;
	cfg->per_user = 2;
	cfg->split_walk_pages = 2000;
	cfg->split_ranges = NSYNC_MAX_SPLIT_RANGES;
	cfg->stale_after = 120;
	if ((rc = set_string(&cfg->notion_api_url, "https://api.notion.com", err)) ||
	    (rc = set_string(&cfg->notion_version, "2025-09-03", err)))
		return rc;

	if ((s = getenv("DATABASE_URL")) && *s && (rc = set_string(&cfg->database_url, s, err)))
		return rc;
	if ((s = getenv("NOTION_API_URL")) && *s) {
		size_t len = strlen(s);
		if ((rc = set_string(&cfg->notion_api_url, s, err)))
			return rc;
		/* "https://api.notion.com/" and ".../" would give "//v1". */
		while (len > 1 && cfg->notion_api_url[len - 1] == '/')
			cfg->notion_api_url[--len] = '\0';
	}
	if ((s = getenv("NOTION_VERSION")) && *s) {
		if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
			return nsync__err(err, NSYNC_ERR_CONFIG,
					  "NOTION_VERSION must be a date such as 2025-09-03");
		if ((rc = set_string(&cfg->notion_version, s, err)))
			return rc;
	}
	if ((rc = env_number("NOTION_RATE_LIMIT", 0, 1000, &cfg->rate_per_token, err)) ||
	    (rc = env_number("NOTION_SYNC_BATCH_SIZE", 1, 5000, &batch, err)) ||
	    (rc = env_number("NOTION_TIMEOUT_MS", 100, 3600000, &timeout, err)) ||
	    (rc = env_number("NOTION_CONNECT_TIMEOUT_MS", 100, 600000, &connect, err)) ||
	    (rc = env_number("NOTION_MAX_ATTEMPTS", 1, 100, &attempts, err)) ||
	    (rc = env_number("NOTION_MAX_RETRY_WAIT", 0, 86400, &max_wait, err)) ||
	    (rc = env_number("NOTION_BACKOFF_BASE", 0, 60, &cfg->backoff_base, err)) ||
	    (rc = env_number("NOTION_SYNC_FULL_INTERVAL", 0, 366 * 86400.0, &cfg->full_interval,
			     err)) ||
	    (rc = env_number("NOTION_SYNC_WORKERS", 0, 256, &workers, err)) ||
	    (rc = env_number("NOTION_SYNC_STALE_AFTER", 1, 86400, &cfg->stale_after, err)) ||
	    (rc = env_number("NOTION_SYNC_PER_USER", 1, 16, &per_user, err)) ||
	    (rc = env_number("NOTION_SYNC_SPLIT_WALK", 0, 1e9, &split, err)) ||
	    (rc = env_number("NOTION_SYNC_SPLIT_RANGES", 1, NSYNC_MAX_SPLIT_RANGES, &ranges, err)))
		return rc;
	cfg->batch_size = (int)batch;
	cfg->request_timeout_ms = (long)timeout;
	cfg->connect_timeout_ms = (long)connect;
	cfg->max_attempts = (int)attempts;
	cfg->max_retry_wait = max_wait;
	cfg->workers = (int)workers;
	cfg->per_user = (int)per_user;
	cfg->split_walk_pages = (long)split;
	cfg->split_ranges = (int)ranges;
	if (cfg->max_request_wait < max_wait)
		cfg->max_request_wait = max_wait;
	return NSYNC_OK;
}

void nsync_config_clear(struct nsync_config *cfg)
{
	if (!cfg)
		return;
	nsync__secret_free(cfg->database_url); /* may hold a password */
	free(cfg->notion_api_url);
	free(cfg->notion_version);
	cfg->database_url = cfg->notion_api_url = cfg->notion_version = NULL;
}
