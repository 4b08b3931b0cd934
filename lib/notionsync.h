/*
 * notionsync.h - public API of libnotionsync, the library that mirrors a
 * writer's Notion databases (Characters, Worlds, Stories, Chat Sessions)
 * into PostgreSQL sync tables.
 *
 * The FastCGI responder (fcgi/) and the command-line tool (cli/) are thin
 * front ends over this header: they parse a request, hand it to
 * nsync_service_run(), and print or send the JSON it returns.
 *
 * Conventions (see "Hacking" in README.md):
 *  - Every exported symbol starts with nsync_ / NSYNC_.
 *  - Fallible functions return nsync_rc and take `struct nsync_err *err` last;
 *    err may be NULL. On failure err->msg holds one sentence for a human,
 *    never a token or secret.
 *  - The library never prints and never exits; it reports through err and
 *    through the log callback in struct nsync_config.
 */
#ifndef NOTIONSYNC_H
#define NOTIONSYNC_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes. Stable: values are never renumbered, new ones go last. */
typedef enum nsync_rc {
	NSYNC_OK = 0,
	NSYNC_ERR_NOMEM = 1,       /* an allocation failed */
	NSYNC_ERR_ARG = 2,         /* the caller's input is invalid (body, id, flag) */
	NSYNC_ERR_NOT_FOUND = 3,   /* unknown user, or database not found/not shared in Notion */
	NSYNC_ERR_NOTION = 4,      /* Notion failed (error answer, or unreachable after retries) */
	NSYNC_ERR_NOTION_AUTH = 5, /* Notion rejected the user's token */
	NSYNC_ERR_PROTOCOL = 6,    /* Notion's answer did not have the documented shape */
	NSYNC_ERR_DB = 7,          /* PostgreSQL is unavailable or a statement failed */
	NSYNC_ERR_BUSY = 8,        /* this user's database is being synced right now */
	NSYNC_ERR_CONFIG = 9,      /* configuration missing or invalid */
	NSYNC_ERR_IO = 10,         /* a local file could not be read */
	NSYNC_ERR_INTERNAL = 11,   /* a bug: an invariant did not hold */
	NSYNC_ERR_DUPLICATE = 12,  /* discovery found two databases of one kind title */
	NSYNC_ERR_NO_DATA_SOURCES = 13, /* the database lists no data source the token can read */
	NSYNC_ERR__COUNT
} nsync_rc;

#define NSYNC_ERR_MSG_MAX 512

/* On every call that returns nsync_rc: ignoring a failure is a bug. */
#if defined(__GNUC__)
#define NSYNC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define NSYNC_MUST_CHECK
#endif

/* Error detail. Caller-owned, usually on the stack; always NUL-terminated. */
struct nsync_err {
	nsync_rc code;
	int notion_status;          /* HTTP status Notion answered, 0 if none */
	char notion_code[48];       /* Notion's error code ("validation_error"), or "" */
	char notion_error_type[64]; /* Notion's additional_data.error_type, or "" */
	char sqlstate[6];           /* PostgreSQL SQLSTATE when code is NSYNC_ERR_DB, or "" */
	long run_id;                /* with NSYNC_ERR_BUSY: the run holding the lock */
	char msg[NSYNC_ERR_MSG_MAX];
};

/* nsync_strerror - a static sentence describing code. Never NULL. */
const char *nsync_strerror(nsync_rc code);

/* nsync_rc_name - a static, stable machine name for code ("not_found"),
 * used as "code" in JSON error bodies. Never NULL. */
const char *nsync_rc_name(nsync_rc code);

/* nsync_error_json - the error body both front ends answer with:
 * {"success":false,"error":{"code":code_name,"message":message[,"run_id":N]}}
 * (run_id only when > 0). code_name is usually nsync_rc_name(). Returns a
 * new string the caller frees with free(), or NULL when out of memory. */
char *nsync_error_json(const char *code_name, const char *message, long run_id);

/* Log sink: one complete line, without a trailing newline. The line never
 * holds a token or secret. Called from the thread that runs the sync. */
typedef void (*nsync_log_fn)(void *data, const char *line);

/* Progress sink: called after each Notion response while a database syncs. */
typedef void (*nsync_progress_fn)(void *data, const char *database_name, long pages_seen);

/* Configuration. Strings are owned by the struct (nsync_config_clear frees
 * them). Fill it with nsync_config_from_env(), then adjust fields. */
struct nsync_config {
	char *database_url;      /* libpq URI/conninfo; NULL = libpq's PG* defaults */
	char *notion_api_url;    /* default "https://api.notion.com" */
	char *notion_version;    /* default "2025-09-03" */
	double rate_per_token;   /* Notion requests per second per token; 0 = unpaced */
	int batch_size;          /* rows per upsert statement */
	long connect_timeout_ms; /* per Notion request */
	long request_timeout_ms; /* per Notion request, whole transfer */
	int max_attempts;        /* per Notion request, first try included */
	double max_retry_wait;   /* seconds: cap on one wait (Retry-After or backoff) */
	double max_request_wait; /* seconds: cap on all waits of one request */
	double backoff_base;     /* seconds: first backoff step for 5xx and resets */
	double full_interval;    /* seconds between full walks of a data source; 0 = always */
	int workers;             /* worker threads draining the queue (nsync_pool); 0 = none */
	double stale_after;      /* seconds without heartbeat before a dead run is failed */
	nsync_log_fn log;        /* may be NULL */
	void *log_data;
	nsync_progress_fn progress; /* may be NULL */
	void *progress_data;
	int per_user; /* runs of one user a worker walks at once, sharing its token's pace */
	long split_walk_pages; /* full walks of sources this large go from both ends; 0 = never */
	int split_ranges;      /* created_time ranges a split walk is cut into at most (two
				  ends each, 2 × ranges − 1 threads); 1 = both ends only */
};

/* The most created_time ranges a split full walk is cut into. */
#define NSYNC_MAX_SPLIT_RANGES 4

/* nsync_config_from_env - defaults, then the environment: DATABASE_URL,
 * NOTION_API_URL, NOTION_VERSION, NOTION_RATE_LIMIT, NOTION_SYNC_BATCH_SIZE,
 * NOTION_TIMEOUT_MS, NOTION_CONNECT_TIMEOUT_MS, NOTION_MAX_ATTEMPTS,
 * NOTION_MAX_RETRY_WAIT, NOTION_BACKOFF_BASE, NOTION_SYNC_FULL_INTERVAL,
 * NOTION_SYNC_WORKERS, NOTION_SYNC_STALE_AFTER, NOTION_SYNC_PER_USER,
 * NOTION_SYNC_SPLIT_WALK, NOTION_SYNC_SPLIT_RANGES. Returns NSYNC_ERR_CONFIG naming the variable when a
 * value does not parse; cfg is then still usable (defaults) and must be
 * cleared by the caller either way. */
NSYNC_MUST_CHECK nsync_rc nsync_config_from_env(struct nsync_config *cfg, struct nsync_err *err);

/* nsync_config_clear - free the strings of cfg. Accepts a zeroed struct. */
void nsync_config_clear(struct nsync_config *cfg);

/* A sync request, from an HTTP body or CLI flags. Plain values, no heap. */
struct nsync_request {
	char user_id[37];        /* dashed lowercase UUID, or "" for every user */
	char database_id[37];    /* dashed lowercase UUID, or "" for every database */
	char database_name[129]; /* mapping hint ("Characters"), or "" */
	bool full;               /* walk every page (and delete what is gone), not only edits */
	bool async;              /* queue the runs and answer at once (nsync_service_enqueue) */
	char trigger[24];        /* who asked: "http", "cli", "cron", "pg_net" */
};

/* nsync_request_parse - parse the JSON body of a sync request
 * ({"user_id","database_id","database_name","full","async"}; every key
 * optional, null means absent). An empty body is an all-users request.
 * Returns NSYNC_ERR_ARG with a message naming the field for malformed JSON,
 * wrong types, nesting deeper than 8, or ids that are not UUIDs. */
NSYNC_MUST_CHECK nsync_rc nsync_request_parse(const char *body, size_t len,
					      struct nsync_request *req, struct nsync_err *err);

/* nsync_normalize_id - copy a Notion/PostgreSQL UUID given with or without
 * dashes, any case, into out as dashed lowercase. Returns NSYNC_ERR_ARG if
 * in is not a UUID. */
NSYNC_MUST_CHECK nsync_rc nsync_normalize_id(const char *in, char out[37], struct nsync_err *err);

/* The statistics of a sync, written once: X(member, column, type) where
 * column names both the notion_sync_runs column and the JSON member of the
 * answers, and type is LONG or DOUBLE. The struct, the totals, the JSON,
 * the log line and the run-row SQL are all made from this list (lib/stats.c),
 * and tests check the table's columns against it (nsync_stats_column). */
#define NSYNC_STATS_FIELDS(X)                                                                      \
	X(pages_seen, "pages_seen", LONG)               /* pages Notion returned */                \
	X(inserted, "inserted", LONG)                   /* rows added */                           \
	X(updated, "updated", LONG)                     /* rows whose content changed */           \
	X(unchanged, "unchanged", LONG)                 /* pages skipped by their hash */          \
	X(deleted, "deleted", LONG)                     /* rows removed after a complete walk */   \
	X(orphaned, "orphaned", LONG)                   /* rows kept: source no longer listed */   \
	X(page_errors, "page_errors", LONG)             /* pages not written */                    \
	X(notion_requests, "notion_requests", LONG)     /* every request, retries included */      \
	X(property_requests, "property_requests", LONG) /* fetches of truncated values */          \
	X(retries, "retries", LONG)                     /* waits before another attempt */         \
	X(connections, "connections", LONG)             /* connections libcurl opened */           \
	X(wait_seconds, "rate_limit_wait_seconds", DOUBLE) /* Retry-After and backoff */           \
	X(pacing_seconds, "pacing_wait_seconds", DOUBLE)   /* spacing to the per-token rate */

#define NSYNC_STAT_TYPE_LONG long
#define NSYNC_STAT_TYPE_DOUBLE double
#define NSYNC_STAT_MEMBER(member, column, type) NSYNC_STAT_TYPE_##type member;

/* Counts of one database sync, as stored in notion_sync_runs. */
struct nsync_stats {
	NSYNC_STATS_FIELDS(NSYNC_STAT_MEMBER)
};

/* nsync_stats_column - the run-row column (and JSON member) of the i-th
 * statistic, or NULL past the last. Static. */
const char *nsync_stats_column(size_t i);

struct nsync_service;

/* nsync_service_new - a service bound to one configuration: it owns one
 * PostgreSQL connection (opened lazily, reopened after failures) and one
 * HTTP client. Not thread-safe: use one service per thread. cfg is copied.
 * Returns NULL with err filled (NSYNC_ERR_NOMEM, NSYNC_ERR_CONFIG). */
struct nsync_service *nsync_service_new(const struct nsync_config *cfg, struct nsync_err *err);

/* nsync_service_free - close connections and free. Accepts NULL. */
void nsync_service_free(struct nsync_service *svc);

/* nsync_service_ping - NSYNC_OK when PostgreSQL answers, else NSYNC_ERR_DB. */
NSYNC_MUST_CHECK nsync_rc nsync_service_ping(struct nsync_service *svc, struct nsync_err *err);

/* nsync_service_run - run the syncs req asks for.
 *  user + database:   that database; *response_json holds
 *                     {"success":true,"synced_count":N,"database_name":...,...}.
 *                     A failure returns its code (NOT_FOUND, NOTION, DB, BUSY...).
 *  user only:         every registered database of the user (discovered with
 *                     Notion search and registered when none are); returns
 *                     NSYNC_OK with {"success":...,"results":[...]} in which a
 *                     failing database has "status":"error".
 *  database only:     that database for every user who registered it.
 *  neither:           every user with a token.
 * On success *response_json is a new NUL-terminated string the caller frees
 * with free(); on failure it is NULL and err is filled. */
NSYNC_MUST_CHECK nsync_rc nsync_service_run(struct nsync_service *svc,
					    const struct nsync_request *req, char **response_json,
					    struct nsync_err *err);

/* nsync_service_enqueue - the asynchronous form of nsync_service_run:
 * record the runs req asks for as queued (one per user and database; a
 * user with nothing registered gets one discovery run), reusing a run of
 * the same user and database that is still queued, and return at once.
 * Runs whose worker died are failed first (nsync_service_reap), so that a
 * new trigger re-runs them. *response_json is
 * {"success":true,"status":"accepted","runs":[{"run_id":N,"user_id",
 * "database_id","database_name"},...]}. Failures as nsync_service_run
 * (ARG, NOT_FOUND, DB). Workers (nsync_pool) do the work. */
NSYNC_MUST_CHECK nsync_rc nsync_service_enqueue(struct nsync_service *svc,
						const struct nsync_request *req,
						char **response_json, struct nsync_err *err);

/* nsync_service_work - claim the queued runs of one user that no other
 * worker holds and run them, one database after another, so that a
 * user's token is paced by one worker. *ran receives the runs processed;
 * 0 means nothing was waiting. worker names this worker in the run rows
 * (host:pid:thread). Returns NSYNC_ERR_DB when PostgreSQL is unreachable;
 * a failing sync is recorded in its run and is not an error here. */
NSYNC_MUST_CHECK nsync_rc nsync_service_work(struct nsync_service *svc, const char *worker,
					     long *ran, struct nsync_err *err);

/* nsync_service_reap - mark failed the runs still "running" whose worker
 * is gone: no session holds their lock and no heartbeat came for
 * cfg->stale_after seconds. *reaped (may be NULL) receives how many. */
NSYNC_MUST_CHECK nsync_rc nsync_service_reap(struct nsync_service *svc, long *reaped,
					     struct nsync_err *err);

/* nsync_service_run_status - {"success":true,"run":{...}} with the status
 * and statistics of one run. NSYNC_ERR_NOT_FOUND for an unknown id. */
NSYNC_MUST_CHECK nsync_rc nsync_service_run_status(struct nsync_service *svc, long run_id,
						   char **response_json, struct nsync_err *err);

/* nsync_service_metrics - the Prometheus text exposition (format 0.0.4)
 * of GET /metrics, computed now from notion_sync_runs and
 * notion_databases, and notion_webhook_stats: runs by status and trigger, the
 * sums of their counts and waits, the queue, and per enabled registered
 * database its last success time and last status. Every series is a
 * gauge (pruning history lowers the run figures). On success *text is a
 * new NUL-terminated string the caller frees with free(); on failure it
 * is NULL and err is filled: NSYNC_ERR_DB when PostgreSQL is unavailable
 * or a statement fails, NSYNC_ERR_NOMEM (also past 64 MiB of text). */
NSYNC_MUST_CHECK nsync_rc nsync_service_metrics(struct nsync_service *svc, char **text,
						struct nsync_err *err);

/* nsync_service_prune_orphans - remove the rows full walks keep as
 * orphaned: rows of the user's registered database whose data source the
 * database, read from Notion now, no longer lists. Holds the database's
 * lock meanwhile. *response_json is {"success":true,"deleted":N,
 * "data_sources":[...],...}. NSYNC_ERR_NO_DATA_SOURCES (nothing deleted)
 * when Notion lists none; NSYNC_ERR_CONFIG under 2022-06-28; NOT_FOUND,
 * BUSY, NOTION*, DB as for a sync. */
NSYNC_MUST_CHECK nsync_rc nsync_service_prune_orphans(struct nsync_service *svc,
						      const char *user_id, const char *database_id,
						      char **response_json, struct nsync_err *err);

/* nsync_service_claim_signature - remember the MAC of a signed request
 * (64 lowercase hex digits, made at signed_at, unix seconds) so that a
 * replay does nothing: *first is true the first time only. Entries older
 * than 10 minutes, past any signature's validity, are forgotten.
 * NSYNC_ERR_ARG for a malformed MAC, NSYNC_ERR_DB on failure. */
NSYNC_MUST_CHECK nsync_rc nsync_service_claim_signature(struct nsync_service *svc,
							const char *signature, long long signed_at,
							bool *first, struct nsync_err *err);

/* A pool of worker threads, each with its own service (one PostgreSQL
 * connection, one HTTP client), draining the queue of runs. */
struct nsync_pool;

/* nsync_pool_start - start cfg->workers threads (at least 1). Each polls
 * the queue every second, and at once after nsync_pool_wake; every ten
 * seconds one of them fails the runs of dead workers. With until_empty,
 * a thread leaves once it finds the queue empty (nsync_pool_join waits for
 * that); otherwise they run until nsync_pool_stop. name prefixes the
 * worker names in run rows. cfg is copied. NULL with err on failure
 * (NSYNC_ERR_NOMEM, NSYNC_ERR_INTERNAL when a thread cannot start). */
struct nsync_pool *nsync_pool_start(const struct nsync_config *cfg, const char *name,
				    bool until_empty, struct nsync_err *err);

/* nsync_pool_wake - tell the workers that runs were queued. */
void nsync_pool_wake(struct nsync_pool *pool);

/* nsync_pool_join - wait until every thread has left (until_empty pools). */
void nsync_pool_join(struct nsync_pool *pool);

/* nsync_pool_stop - let each worker finish its current run, then join and
 * free. Accepts NULL. */
void nsync_pool_stop(struct nsync_pool *pool);

/* nsync_service_last_stats - totals of the last nsync_service_run (summed
 * over its databases). Borrowed; valid until the next run. */
const struct nsync_stats *nsync_service_last_stats(const struct nsync_service *svc);

/* nsync_service_last_succeeded - true when the last nsync_service_run
 * succeeded for every database it covered (its answer's "success"). */
bool nsync_service_last_succeeded(const struct nsync_service *svc);

/* nsync_migrate - apply the numbered migrations NNN_name.sql found in sql_dir
 * that are not yet recorded in notion_sync_schema_migrations, in order, each
 * in its own transaction. *applied receives how many ran (may be NULL).
 * Running it twice is harmless. NSYNC_ERR_IO if sql_dir cannot be read,
 * NSYNC_ERR_DB naming the file if one fails (earlier ones stay applied). */
NSYNC_MUST_CHECK nsync_rc nsync_migrate(struct nsync_service *svc, const char *sql_dir,
					int *applied, struct nsync_err *err);

/* nsync_user_set_token - create or update a user's Notion token in
 * user_settings (oauth: notion_access_token, else notion_token). The token
 * is passed as a bound parameter and never logged. */
NSYNC_MUST_CHECK nsync_rc nsync_user_set_token(struct nsync_service *svc, const char *user_id,
					       const char *token, bool oauth,
					       struct nsync_err *err);

/* nsync_database_register - add or update one database in a user's
 * registry (notion_databases) under the given name ("Characters"). */
NSYNC_MUST_CHECK nsync_rc nsync_database_register(struct nsync_service *svc, const char *user_id,
						  const char *database_id,
						  const char *database_name, struct nsync_err *err);

/* Webhooks (README "Real-time sync (webhooks)"): Notion posts signed
 * events to /api/notion/webhooks/<key>; the responder stores them and the
 * workers turn them into page refreshes and syncs. */

/* nsync_webhook_create - record a subscription with a new random key (192
 * bits, URL-safe): for user_id's internal integration, or with user_id
 * NULL for the public integration that serves every OAuth user (events
 * routed by workspace). *response_json is {"success":true,"key":...,
 * "path":"/api/notion/webhooks/<key>","kind":"user"|"oauth",...}; free().
 * NSYNC_ERR_ARG for a bad id, NSYNC_ERR_NOT_FOUND for an unknown user. */
NSYNC_MUST_CHECK nsync_rc nsync_webhook_create(struct nsync_service *svc, const char *user_id,
					       char **response_json, struct nsync_err *err);

/* nsync_webhook_list - {"success":true,"subscriptions":[...]}: key, path,
 * kind, user, whether verified, times and backlog; never a token. */
NSYNC_MUST_CHECK nsync_rc nsync_webhook_list(struct nsync_service *svc, char **response_json,
					     struct nsync_err *err);

/* nsync_webhook_show - one subscription with its "verification_token"
 * (null until Notion's handshake came): the only call that returns it, for
 * the operator to paste into Notion. NSYNC_ERR_NOT_FOUND for a bad key. */
NSYNC_MUST_CHECK nsync_rc nsync_webhook_show(struct nsync_service *svc, const char *key,
					     char **response_json, struct nsync_err *err);

/* nsync_webhook_delete - remove a subscription and its events.
 * NSYNC_ERR_NOT_FOUND for an unknown key. */
NSYNC_MUST_CHECK nsync_rc nsync_webhook_delete(struct nsync_service *svc, const char *key,
					       struct nsync_err *err);

/* nsync_webhook_receive - one POST to /api/notion/webhooks/<key> with its
 * raw body and X-Notion-Signature (may be NULL). Sets *http_status and
 * *response_json (JSON, free()) for every answer: 404 unknown key; the
 * handshake ({"verification_token"}) stored once, 200; 401 for anything
 * else before that, and for a missing, malformed or wrong signature
 * (HMAC-SHA256 of the body keyed by the verification token, constant
 * time); 400 for a signed body that is not an event; 200 for an event
 * stored, duplicate (same id) or ignored (a type not synced). *wake (may
 * be NULL) is true when workers have new work. Returns NSYNC_ERR_DB or
 * NSYNC_ERR_NOMEM (then no answer is set) when the event could not be
 * stored: the caller answers 5xx and Notion retries. */
NSYNC_MUST_CHECK nsync_rc nsync_webhook_receive(struct nsync_service *svc, const char *key,
						const char *body, size_t len, const char *signature,
						int *http_status, char **response_json, bool *wake,
						struct nsync_err *err);

#ifdef __cplusplus
}
#endif
#endif /* NOTIONSYNC_H */
