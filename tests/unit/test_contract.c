/*
 * test_contract.c - the public API's contract (lib/notionsync.h), through
 * the shared library as a caller links it: every call given bad arguments
 * fails with NSYNC_ERR_ARG (or NULL), also when err is NULL, and none
 * crashes. No PostgreSQL or Notion is needed: the service connects lazily,
 * and every call here is refused before it would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "notionsync.h"

static struct nsync_service *svc;
static struct nsync_config cfg;

static int setup(void **state)
{
	(void)state;
	if (nsync_config_from_env(&cfg, NULL) != NSYNC_OK)
		return -1;
	/* Nowhere: nothing in these tests may connect. */
	free(cfg.database_url);
	cfg.database_url = strdup("host=/nonexistent dbname=none connect_timeout=1");
	svc = nsync_service_new(&cfg, NULL);
	return svc ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	nsync_service_free(svc);
	nsync_config_clear(&cfg);
	return 0;
}

static void ids_and_requests(void **state)
{
	struct nsync_request req;
	char out[37];

	(void)state;
	assert_int_equal(nsync_normalize_id(NULL, out, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("not-a-uuid", out, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_normalize_id("0c0000000000400080000000000000ff", NULL, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_request_parse("{}", 2, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_request_parse(NULL, 5, &req, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_request_parse("{\"user_id\":1}", 13, &req, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_config_from_env(NULL, NULL), NSYNC_ERR_ARG);
	nsync_config_clear(NULL);
}

static void admin_calls(void **state)
{
	int applied = -1;

	(void)state;
	/* Today's bug: a bad id with a NULL err reported success. */
	assert_int_equal(nsync_user_set_token(svc, "not-a-uuid", "tok", false, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_user_set_token(svc, "0c000000-0000-4000-8000-000000000001", "",
					      false, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_user_set_token(NULL, "0c000000-0000-4000-8000-000000000001", "t",
					      false, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_database_register(svc, "bad", "0c000000-0000-4000-8000-000000000001",
						 "Characters", NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_database_register(svc, "0c000000-0000-4000-8000-000000000001", "bad",
						 "Characters", NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_database_register(svc, "0c000000-0000-4000-8000-000000000001",
						 "0c000000-0000-4000-8000-000000000002", "Nope",
						 NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_database_register(NULL, NULL, NULL, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_migrate(NULL, "sql", &applied, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_migrate(svc, NULL, &applied, NULL), NSYNC_ERR_ARG);
}

static void service_calls(void **state)
{
	struct nsync_request req;
	char *answer = (char *)"untouched";
	long n = 0;
	bool first = true;

	(void)state;
	memset(&req, 0, sizeof(req));
	assert_null(nsync_service_new(NULL, NULL));
	assert_int_equal(nsync_service_ping(NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_run(NULL, &req, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_run(svc, NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_run(svc, &req, NULL, NULL), NSYNC_ERR_ARG);
	/* An unknown database_name is refused before PostgreSQL is asked. */
	strcpy(req.database_name, "Nope");
	assert_int_equal(nsync_service_run(svc, &req, &answer, NULL), NSYNC_ERR_ARG);
	assert_null(answer);
	assert_int_equal(nsync_service_enqueue(svc, NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_enqueue(NULL, &req, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_work(svc, NULL, &n, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_work(svc, "w", NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_reap(NULL, &n, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_run_status(svc, 1, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_metrics(NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_metrics(svc, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_prune_orphans(svc, "bad", "bad", &answer, NULL),
			 NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_prune_orphans(svc, NULL, NULL, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_service_claim_signature(svc, "short", 1, &first, NULL),
			 NSYNC_ERR_ARG);
	assert_false(first);
	assert_int_equal(nsync_service_claim_signature(svc, NULL, 1, NULL, NULL), NSYNC_ERR_ARG);
	/* Webhooks: bad arguments before PostgreSQL is asked. */
	assert_int_equal(nsync_webhook_create(NULL, NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_create(svc, "not-a-uuid", &answer, NULL), NSYNC_ERR_ARG);
	assert_null(answer);
	assert_int_equal(nsync_webhook_create(svc, NULL, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_list(svc, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_list(NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_show(svc, NULL, &answer, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_show(svc, "k", NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_delete(svc, NULL, NULL), NSYNC_ERR_ARG);
	assert_int_equal(nsync_webhook_delete(NULL, "k", NULL), NSYNC_ERR_ARG);
	{
		int status = 0;
		assert_int_equal(nsync_webhook_receive(svc, NULL, "{}", 2, NULL, &status, &answer,
						       NULL, NULL),
				 NSYNC_ERR_ARG);
		assert_int_equal(nsync_webhook_receive(svc, "k", NULL, 2, NULL, &status, &answer,
						       NULL, NULL),
				 NSYNC_ERR_ARG);
		assert_int_equal(nsync_webhook_receive(svc, "k", "{}", 2, NULL, NULL, &answer, NULL,
						       NULL),
				 NSYNC_ERR_ARG);
		/* A key that cannot be one is answered 404 without PostgreSQL. */
		assert_int_equal(nsync_webhook_receive(svc, "bad key", "{}", 2, NULL, &status,
						       &answer, NULL, NULL),
				 NSYNC_OK);
		assert_int_equal(status, 404);
		assert_non_null(strstr(answer, "\"not_found\""));
		free(answer);
		answer = NULL;
	}
	assert_false(nsync_service_last_succeeded(NULL));
	assert_non_null(nsync_service_last_stats(NULL));
	nsync_service_free(NULL);
}

static void pools_and_strings(void **state)
{
	char *json;

	(void)state;
	assert_null(nsync_pool_start(NULL, "x", true, NULL));
	assert_null(nsync_pool_start(&cfg, NULL, true, NULL));
	nsync_pool_stop(NULL);
	json = nsync_error_json(NULL, NULL, 0);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"success\":false"));
	free(json);
	assert_non_null(nsync_strerror((nsync_rc)-1));
	assert_string_equal(nsync_rc_name((nsync_rc)1000), "unknown_error");
	assert_non_null(nsync_stats_column(0));
	assert_null(nsync_stats_column(1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids_and_requests),
		cmocka_unit_test(admin_calls),
		cmocka_unit_test(service_calls),
		cmocka_unit_test(pools_and_strings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
