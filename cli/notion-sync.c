/*
 * notion-sync.c - the command-line front end: run the same syncs as the
 * HTTP endpoint and print the same JSON, apply migrations, store a user's
 * token, register a database.
 *
 * Exit codes: 0 success, 1 the sync (or a command) failed, 2 usage or
 * configuration error.
 */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "notionsync.h"

#ifndef NSYNC_SQL_DIR
#define NSYNC_SQL_DIR "/usr/local/share/notion-sync/sql"
#endif

static const char usage[] =
	"usage: notion-sync COMMAND [options]\n"
	"\n"
	"Commands:\n"
	"  sync      [--user ID] [--database ID] [--name NAME] [--full] [--quiet]\n"
	"            Sync Notion databases into PostgreSQL and print the JSON result.\n"
	"            --user and --database pick one database; --user alone every\n"
	"            database of that user; neither, every user with a token.\n"
	"  migrate   [--sql-dir DIR]   Apply the SQL migrations (safe to repeat).\n"
	"  set-token --user ID [--oauth]\n"
	"            Store a user's Notion token, read from NOTION_TOKEN or stdin.\n"
	"  register  --user ID --database ID --name NAME\n"
	"            Add a database to a user's registry (NAME: Characters, Worlds,\n"
	"            Stories, Chat Sessions).\n"
	"  prune-orphans --user ID --database ID\n"
	"            Delete the rows a full sync kept because their data source is no\n"
	"            longer listed by the database (reads the database from Notion).\n"
	"  worker    [--workers N] [--once]\n"
	"            Run queued (asynchronous) syncs with N threads (NOTION_SYNC_WORKERS,\n"
	"            default 2) until SIGTERM, or with --once until the queue is empty.\n"
	"  health    Check that PostgreSQL answers.\n"
	"\n"
	"Configuration comes from the environment (DATABASE_URL, NOTION_API_URL,\n"
	"NOTION_VERSION, NOTION_RATE_LIMIT, NOTION_SYNC_BATCH_SIZE, ...); see README.md.\n"
	"Exit status: 0 success, 1 failure, 2 usage or configuration error.\n";

static int show_progress;

static void log_line(void *data, const char *line)
{
	(void)data;
	if (show_progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "notion-sync: %s\n", line);
}

static void progress(void *data, const char *name, long pages)
{
	(void)data;
	if (show_progress)
		fprintf(stderr, "\r\033[K%s: %ld pages", name, pages);
}

static int fail_usage(const char *msg)
{
	fprintf(stderr, "notion-sync: %s\n\n%s", msg, usage);
	return 2;
}

/* Read a token from NOTION_TOKEN or the first line of stdin; never argv,
 * which other users can see in the process list. */
static char *read_token(void)
{
	const char *env = getenv("NOTION_TOKEN");
	char *line = NULL, *start, *end;
	size_t cap = 0;
	ssize_t n;

	if (env && *env)
		line = strdup(env);
	else {
		if (isatty(0))
			fprintf(stderr, "Notion token: ");
		n = getline(&line, &cap, stdin);
		if (n <= 0) {
			free(line);
			return NULL;
		}
	}
	if (!line)
		return NULL;
	/* Copy-paste brings blanks and line ends along; a token has none. */
	for (start = line; *start == ' ' || *start == '\t'; start++)
		;
	end = start + strcspn(start, "\r\n");
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	memmove(line, start, (size_t)(end - start) + 1);
	if (!*line) {
		free(line);
		return NULL;
	}
	return line;
}

/* Print a library failure as the endpoint would answer it (JSON on
 * stdout), with the sentence on stderr; return the exit status. */
static int print_failure(nsync_rc rc, const struct nsync_err *err, const char *command)
{
	char *answer = nsync_error_json(nsync_rc_name(rc), err->msg, err->run_id);

	if (answer)
		puts(answer);
	free(answer);
	fprintf(stderr, "notion-sync: %s%s%s\n", command ? command : "", command ? ": " : "",
		err->msg);
	return rc == NSYNC_ERR_ARG || rc == NSYNC_ERR_CONFIG ? 2 : 1;
}

static int cmd_sync(struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'u'},    {"database", required_argument, NULL, 'd'},
		{"name", required_argument, NULL, 'n'},    {"full", no_argument, NULL, 'f'},
		{"quiet", no_argument, NULL, 'q'},         {NULL, 0, NULL, 0}};
	struct nsync_request req;
	struct nsync_err err;
	char *answer = NULL;
	int c;
	nsync_rc rc;

	memset(&req, 0, sizeof(req));
	memset(&err, 0, sizeof(err));
	snprintf(req.trigger, sizeof(req.trigger), "cli");
	while ((c = getopt_long(argc, argv, "u:d:n:fq", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			if (nsync_normalize_id(optarg, req.user_id, &err) != NSYNC_OK)
				return fail_usage("--user is not a UUID");
			break;
		case 'd':
			if (nsync_normalize_id(optarg, req.database_id, &err) != NSYNC_OK)
				return fail_usage("--database is not a UUID");
			break;
		case 'n':
			if (strlen(optarg) >= sizeof(req.database_name))
				return fail_usage("--name is too long");
			snprintf(req.database_name, sizeof(req.database_name), "%s", optarg);
			break;
		case 'f':
			req.full = true;
			break;
		case 'q':
			show_progress = 0;
			break;
		default:
			return fail_usage("unknown option for sync");
		}
	}
	if (optind < argc)
		return fail_usage("unexpected argument");
	rc = nsync_service_run(svc, &req, &answer, &err);
	if (show_progress)
		fputs("\r\033[K", stderr);
	if (rc != NSYNC_OK)
		return print_failure(rc, &err, NULL);
	puts(answer);
	/* An all-databases run succeeds only when every database did. */
	c = strncmp(answer, "{\"success\":true", 15) == 0 ? 0 : 1;
	free(answer);
	return c;
}

/* Run queued syncs. Signals are blocked before the threads start so that
 * only sigwait() sees them. */
static int cmd_worker(struct nsync_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, 'w'}, {"once", no_argument, NULL, 'o'},
		{NULL, 0, NULL, 0}};
	struct nsync_pool *pool;
	struct nsync_err err;
	char host[64] = "", name[96], *end;
	sigset_t stop;
	int c, once = 0, sig;
	long n;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 256)
				return fail_usage("--workers must be a number from 1 to 256");
			cfg->workers = (int)n;
			break;
		case 'o':
			once = 1;
			break;
		default:
			return fail_usage("unknown option for worker");
		}
	}
	if (cfg->workers < 1)
		cfg->workers = 1;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	gethostname(host, sizeof(host) - 1);
	snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
	memset(&err, 0, sizeof(err));
	pool = nsync_pool_start(cfg, name, once, &err);
	if (!pool) {
		fprintf(stderr, "notion-sync: %s\n", err.msg);
		return 1;
	}
	if (once)
		nsync_pool_join(pool);
	else
		sigwait(&stop, &sig);
	nsync_pool_stop(pool);
	return 0;
}

static int cmd_migrate(struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {{"sql-dir", required_argument, NULL, 's'},
					     {NULL, 0, NULL, 0}};
	const char *dir = getenv("NOTION_SYNC_SQL_DIR");
	struct nsync_err err;
	int c, applied = 0;

	if (!dir || !*dir)
		dir = NSYNC_SQL_DIR;
	while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (c != 's')
			return fail_usage("unknown option for migrate");
		dir = optarg;
	}
	memset(&err, 0, sizeof(err));
	if (nsync_migrate(svc, dir, &applied, &err) != NSYNC_OK) {
		fprintf(stderr, "notion-sync: migrate: %s\n", err.msg);
		return err.code == NSYNC_ERR_IO ? 2 : 1;
	}
	printf("migrations applied: %d\n", applied);
	return 0;
}

static int cmd_set_token(struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
					     {"oauth", no_argument, NULL, 'o'},
					     {NULL, 0, NULL, 0}};
	const char *user = NULL;
	struct nsync_err err;
	char *token;
	int c, oauth = 0;
	nsync_rc rc;

	while ((c = getopt_long(argc, argv, "u:o", opts, NULL)) != -1) {
		if (c == 'u')
			user = optarg;
		else if (c == 'o')
			oauth = 1;
		else
			return fail_usage("unknown option for set-token");
	}
	if (!user)
		return fail_usage("set-token needs --user");
	token = read_token();
	if (!token)
		return fail_usage("no token: set NOTION_TOKEN or pass it on stdin");
	memset(&err, 0, sizeof(err));
	rc = nsync_user_set_token(svc, user, token, oauth, &err);
	explicit_bzero(token, strlen(token));
	free(token);
	if (rc != NSYNC_OK) {
		fprintf(stderr, "notion-sync: set-token: %s\n", err.msg);
		return rc == NSYNC_ERR_ARG ? 2 : 1;
	}
	printf("token stored for user %s\n", user);
	return 0;
}

static int cmd_register(struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
					     {"database", required_argument, NULL, 'd'},
					     {"name", required_argument, NULL, 'n'},
					     {NULL, 0, NULL, 0}};
	const char *user = NULL, *db = NULL, *name = NULL;
	struct nsync_err err;
	int c;
	nsync_rc rc;

	while ((c = getopt_long(argc, argv, "u:d:n:", opts, NULL)) != -1) {
		if (c == 'u')
			user = optarg;
		else if (c == 'd')
			db = optarg;
		else if (c == 'n')
			name = optarg;
		else
			return fail_usage("unknown option for register");
	}
	if (!user || !db || !name)
		return fail_usage("register needs --user, --database and --name");
	memset(&err, 0, sizeof(err));
	rc = nsync_database_register(svc, user, db, name, &err);
	if (rc != NSYNC_OK) {
		fprintf(stderr, "notion-sync: register: %s\n", err.msg);
		return rc == NSYNC_ERR_ARG ? 2 : 1;
	}
	printf("registered database %s as %s for user %s\n", db, name, user);
	return 0;
}

static int cmd_prune_orphans(struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
					     {"database", required_argument, NULL, 'd'},
					     {NULL, 0, NULL, 0}};
	const char *user = NULL, *db = NULL;
	struct nsync_err err;
	char *answer = NULL;
	int c;
	nsync_rc rc;

	while ((c = getopt_long(argc, argv, "u:d:", opts, NULL)) != -1) {
		if (c == 'u')
			user = optarg;
		else if (c == 'd')
			db = optarg;
		else
			return fail_usage("unknown option for prune-orphans");
	}
	if (!user || !db || optind < argc)
		return fail_usage("prune-orphans needs --user and --database");
	memset(&err, 0, sizeof(err));
	rc = nsync_service_prune_orphans(svc, user, db, &answer, &err);
	if (rc != NSYNC_OK)
		return print_failure(rc, &err, "prune-orphans");
	puts(answer);
	free(answer);
	return 0;
}

int main(int argc, char **argv)
{
	struct nsync_config cfg;
	struct nsync_service *svc;
	struct nsync_err err;
	const char *cmd;
	int status;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("notion-sync %s\n", PACKAGE_VERSION);
		return 0;
	}
	cmd = argv[1];
	if (strcmp(cmd, "sync") && strcmp(cmd, "migrate") && strcmp(cmd, "set-token") &&
	    strcmp(cmd, "register") && strcmp(cmd, "health") && strcmp(cmd, "worker") &&
	    strcmp(cmd, "prune-orphans"))
		return fail_usage("unknown command");

	memset(&err, 0, sizeof(err));
	if (nsync_config_from_env(&cfg, &err) != NSYNC_OK) {
		fprintf(stderr, "notion-sync: %s\n", err.msg);
		nsync_config_clear(&cfg);
		return 2;
	}
	show_progress = isatty(2);
	cfg.log = log_line;
	if (show_progress)
		cfg.progress = progress;
	curl_global_init(CURL_GLOBAL_ALL);
	svc = nsync_service_new(&cfg, &err);
	if (!svc) {
		fprintf(stderr, "notion-sync: %s\n", err.msg);
		nsync_config_clear(&cfg);
		curl_global_cleanup();
		return 2;
	}
	/* Subcommand options start after the command word. */
	optind = 1;
	argv[1] = argv[0];
	if (strcmp(cmd, "worker") == 0)
		status = cmd_worker(&cfg, argc - 1, argv + 1);
	else if (strcmp(cmd, "sync") == 0)
		status = cmd_sync(svc, argc - 1, argv + 1);
	else if (strcmp(cmd, "migrate") == 0)
		status = cmd_migrate(svc, argc - 1, argv + 1);
	else if (strcmp(cmd, "set-token") == 0)
		status = cmd_set_token(svc, argc - 1, argv + 1);
	else if (strcmp(cmd, "register") == 0)
		status = cmd_register(svc, argc - 1, argv + 1);
	else if (strcmp(cmd, "prune-orphans") == 0)
		status = cmd_prune_orphans(svc, argc - 1, argv + 1);
	else {
		status = nsync_service_ping(svc, &err) == NSYNC_OK ? 0 : 1;
		printf("%s\n", status ? err.msg : "PostgreSQL answers");
	}
	nsync_service_free(svc);
	nsync_config_clear(&cfg);
	curl_global_cleanup();
	return status;
}
