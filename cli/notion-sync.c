/*
 * notion-sync.c - the command-line front end: run the same syncs as the
 * HTTP endpoint and print the same JSON, apply migrations, store a user's
 * token, register a database, manage webhook subscriptions.
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

/* The commands, once: their usage lines are printed from this table. */
struct command {
	const char *name;
	const char *usage; /* options and what it does; lines after the first indented */
	int (*run)(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv);
};
static const struct command commands[];

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

static void print_usage(FILE *out);

static int fail_usage(const char *msg)
{
	fprintf(stderr, "notion-sync: %s\n\n", msg);
	print_usage(stderr);
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

static int cmd_sync(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	(void)cfg;
	static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
					     {"database", required_argument, NULL, 'd'},
					     {"name", required_argument, NULL, 'n'},
					     {"full", no_argument, NULL, 'f'},
					     {"quiet", no_argument, NULL, 'q'},
					     {NULL, 0, NULL, 0}};
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
	free(answer);
	/* An all-databases run succeeds only when every database did. */
	return nsync_service_last_succeeded(svc) ? 0 : 1;
}

/* Run queued syncs. Signals are blocked before the threads start so that
 * only sigwait() sees them. */
static int cmd_worker(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	(void)svc;
	static const struct option opts[] = {{"workers", required_argument, NULL, 'w'},
					     {"once", no_argument, NULL, 'o'},
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

static int cmd_migrate(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	(void)cfg;
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

static int cmd_set_token(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	(void)cfg;
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

static int cmd_register(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	(void)cfg;
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

static int cmd_prune_orphans(struct nsync_config *cfg, struct nsync_service *svc, int argc,
			     char **argv)
{
	(void)cfg;
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

static int cmd_health(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	struct nsync_err err;
	int status;

	(void)cfg;
	if (argc > 1)
		return fail_usage("health takes no arguments");
	memset(&err, 0, sizeof(err));
	status = nsync_service_ping(svc, &err) == NSYNC_OK ? 0 : 1;
	printf("%s\n", status ? err.msg : "PostgreSQL answers");
	return status;
}

/* The statistics' run-row columns, one per line (what tests compare with
 * the table). */
static int cmd_fields(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	const char *column;
	size_t i;

	(void)cfg;
	(void)svc;
	(void)argv;
	if (argc > 1)
		return fail_usage("fields takes no arguments");
	for (i = 0; (column = nsync_stats_column(i)) != NULL; i++)
		puts(column);
	return 0;
}

/* Print a JSON answer and free it; 0. */
static int print_answer(char *answer)
{
	puts(answer);
	free(answer);
	return 0;
}

/* webhook create --user ID | --oauth; list; show KEY; delete KEY. */
static int cmd_webhook(struct nsync_config *cfg, struct nsync_service *svc, int argc, char **argv)
{
	static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
					     {"oauth", no_argument, NULL, 'o'},
					     {NULL, 0, NULL, 0}};
	const char *what = argc > 1 ? argv[1] : "", *user = NULL;
	struct nsync_err err;
	char *answer = NULL;
	int c, oauth = 0;
	nsync_rc rc;

	(void)cfg;
	memset(&err, 0, sizeof(err));
	if (strcmp(what, "create") == 0) {
		optind = 2;
		while ((c = getopt_long(argc, argv, "u:o", opts, NULL)) != -1) {
			if (c == 'u')
				user = optarg;
			else if (c == 'o')
				oauth = 1;
			else
				return fail_usage("unknown option for webhook create");
		}
		if ((!user) == (!oauth) || optind < argc)
			return fail_usage(
				"webhook create needs --user ID or --oauth (one of them)");
		rc = nsync_webhook_create(svc, user, &answer, &err);
	} else if (strcmp(what, "list") == 0 && argc == 2) {
		rc = nsync_webhook_list(svc, &answer, &err);
	} else if (strcmp(what, "show") == 0 && argc == 3) {
		rc = nsync_webhook_show(svc, argv[2], &answer, &err);
	} else if (strcmp(what, "delete") == 0 && argc == 3) {
		rc = nsync_webhook_delete(svc, argv[2], &err);
		if (rc == NSYNC_OK)
			answer = strdup("{\"success\":true,\"deleted\":true}");
		if (rc == NSYNC_OK && !answer)
			return 1;
	} else {
		return fail_usage("webhook needs create --user ID | create --oauth | list | "
				  "show KEY | delete KEY");
	}
	if (rc != NSYNC_OK)
		return print_failure(rc, &err, "webhook");
	return print_answer(answer);
}

static const struct command commands[] = {
	{"sync",
	 "[--user ID] [--database ID] [--name NAME] [--full] [--quiet]\n"
	 "Sync Notion databases into PostgreSQL and print the JSON result.\n"
	 "--user and --database pick one database; --user alone every\n"
	 "database of that user; neither, every user with a token.",
	 cmd_sync},
	{"migrate", "[--sql-dir DIR]   Apply the SQL migrations (safe to repeat).", cmd_migrate},
	{"set-token",
	 "--user ID [--oauth]\n"
	 "Store a user's Notion token, read from NOTION_TOKEN or stdin.",
	 cmd_set_token},
	{"register",
	 "--user ID --database ID --name NAME\n"
	 "Add a database to a user's registry (NAME: Characters, Worlds,\n"
	 "Stories, Chat Sessions).",
	 cmd_register},
	{"prune-orphans",
	 "--user ID --database ID\n"
	 "Delete the rows a full sync kept because their data source is no\n"
	 "longer listed by the database (reads the database from Notion).",
	 cmd_prune_orphans},
	{"worker",
	 "[--workers N] [--once]\n"
	 "Run queued (asynchronous) syncs with N threads (NOTION_SYNC_WORKERS,\n"
	 "default 2) until SIGTERM, or with --once until the queue is empty.",
	 cmd_worker},
	{"webhook",
	 "create --user ID | create --oauth | list | show KEY | delete KEY\n"
	 "Notion webhook subscriptions: create prints the path to give Notion,\n"
	 "show the verification token Notion sent (to paste into Notion).",
	 cmd_webhook},
	{"health", "Check that PostgreSQL answers.", cmd_health},
	{"fields", "Print the statistics' columns of notion_sync_runs.", cmd_fields},
	{NULL, NULL, NULL},
};

static void print_usage(FILE *out)
{
	const struct command *c;

	fputs("usage: notion-sync COMMAND [options]\n\nCommands:\n", out);
	for (c = commands; c->name; c++) {
		const char *p = c->usage;
		fprintf(out, "  %-13s ", c->name);
		for (; *p; p++) {
			fputc(*p, out);
			if (*p == '\n')
				fputs("                ", out);
		}
		fputc('\n', out);
	}
	fputs("\nConfiguration comes from the environment (DATABASE_URL, NOTION_API_URL,\n"
	      "NOTION_VERSION, NOTION_RATE_LIMIT, NOTION_SYNC_BATCH_SIZE, ...); see README.md.\n"
	      "Exit status: 0 success, 1 failure, 2 usage or configuration error.\n",
	      out);
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	struct nsync_config cfg;
	struct nsync_service *svc = NULL;
	struct nsync_err err;
	int status = 2;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		print_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("notion-sync %s\n", PACKAGE_VERSION);
		return 0;
	}
	for (cmd = commands; cmd->name && strcmp(cmd->name, argv[1]) != 0; cmd++)
		;
	if (!cmd->name)
		return fail_usage("unknown command");

	memset(&err, 0, sizeof(err));
	memset(&cfg, 0, sizeof(cfg));
	curl_global_init(CURL_GLOBAL_ALL);
	if (nsync_config_from_env(&cfg, &err) != NSYNC_OK) {
		fprintf(stderr, "notion-sync: %s\n", err.msg);
		goto out;
	}
	show_progress = isatty(2);
	cfg.log = log_line;
	cfg.progress = show_progress ? progress : NULL;
	if (!(svc = nsync_service_new(&cfg, &err))) {
		fprintf(stderr, "notion-sync: %s\n", err.msg);
		goto out;
	}
	/* Subcommand options start after the command word. */
	optind = 1;
	argv[1] = argv[0];
	status = cmd->run(&cfg, svc, argc - 1, argv + 1);
out:
	nsync_service_free(svc);
	nsync_config_clear(&cfg);
	curl_global_cleanup();
	return status;
}
