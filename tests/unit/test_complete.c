/*
 * test_complete.c - unit tests for lib/complete.c: which property values
 * Notion may have cut at 25 references, and how the complete value
 * replaces the cut one.
 *
 * The property-item endpoint is replaced here by a function that serves
 * pages from a list of JSON texts, so that pagination, item shapes and
 * failures can be checked without a server; the real endpoint is covered
 * by tests/integration/test_complete.py against the emulator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "complete.h"
#include "error.h"

/* --- the endpoint, served from memory ------------------------------------ */

static const char *served[8]; /* answers, in order */
static int n_served, next_answer;
/* Instead of served: 1 answers with a new cursor forever, 2 with the same
 * cursor forever; calls counts the requests. */
static int endless, calls;
static char asked[8][256]; /* "page/property?cursor" of each call */

void nsync__query_page_clear(struct nsync_query_page *page)
{
	json_object_put(page->root);
	memset(page, 0, sizeof(*page));
}

nsync_rc nsync__notion_property_items(struct nsync_notion *n, const struct nsync_notion_ctx *ctx,
				      const char *page_id, const char *property_id,
				      const char *cursor, struct nsync_query_page *page,
				      struct nsync_err *err)
{
	struct json_object *v;

	(void)n;
	(void)ctx;
	memset(page, 0, sizeof(*page));
	calls++;
	if (endless) {
		char text[300];
		snprintf(text, sizeof(text),
			 "{\"object\":\"list\",\"results\":[{\"object\":\"property_item\","
			 "\"type\":\"relation\",\"relation\":{\"id\":\"r%d\"}}],\"has_more\":true,"
			 "\"next_cursor\":\"cursor-%d\"}",
			 calls, endless == 1 ? calls : 0);
		page->root = json_tokener_parse(text);
		json_object_object_get_ex(page->root, "results", &page->results);
		page->has_more = 1;
		page->next_cursor =
			json_object_get_string(json_object_object_get(page->root, "next_cursor"));
		return NSYNC_OK;
	}
	if (next_answer < 8)
		snprintf(asked[next_answer], sizeof(asked[0]), "%s/%s?%s", page_id, property_id,
			 cursor ? cursor : "");
	if (next_answer >= n_served)
		return nsync__err(err, NSYNC_ERR_NOT_FOUND, "no such property");
	page->root = json_tokener_parse(served[next_answer++]);
	json_object_object_get_ex(page->root, "results", &page->results);
	if (json_object_object_get_ex(page->root, "has_more", &v))
		page->has_more = json_object_get_boolean(v);
	if (json_object_object_get_ex(page->root, "next_cursor", &v) &&
	    json_object_is_type(v, json_type_string))
		page->next_cursor = json_object_get_string(v);
	return NSYNC_OK;
}

static int setup(void **state)
{
	(void)state;
	n_served = next_answer = 0;
	endless = calls = 0;
	memset(asked, 0, sizeof(asked));
	return 0;
}

/* --- helpers --------------------------------------------------------------- */

/* A relation value with n ids and the given has_more. */
static struct json_object *relation(int n, int has_more)
{
	struct json_object *v = json_object_new_object(), *list = json_object_new_array();
	char id[40];
	int i;

	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_new_object();
		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
		json_object_object_add(item, "id", json_object_new_string(id));
		json_object_array_add(list, item);
	}
	json_object_object_add(v, "id", json_object_new_string("rel%3A"));
	json_object_object_add(v, "type", json_object_new_string("relation"));
	json_object_object_add(v, "relation", list);
	json_object_object_add(v, "has_more", json_object_new_boolean(has_more));
	return v;
}

/* A people value with n users. */
static struct json_object *people(int n)
{
	struct json_object *v = json_object_new_object(), *list = json_object_new_array();
	int i;

	for (i = 0; i < n; i++) {
		struct json_object *u = json_object_new_object();
		json_object_object_add(u, "object", json_object_new_string("user"));
		json_object_object_add(u, "id", json_object_new_int(i));
		json_object_array_add(list, u);
	}
	json_object_object_add(v, "id", json_object_new_string("ppl"));
	json_object_object_add(v, "type", json_object_new_string("people"));
	json_object_object_add(v, "people", list);
	return v;
}

/* A rich_text (or title) value with `mentions` mentions of mention_type and
 * `texts` plain text pieces. */
static struct json_object *rich(const char *type, int mentions, const char *mention_type, int texts)
{
	struct json_object *v = json_object_new_object(), *list = json_object_new_array();
	int i;

	for (i = 0; i < mentions + texts; i++) {
		struct json_object *item = json_object_new_object();
		if (i < mentions) {
			struct json_object *m = json_object_new_object();
			json_object_object_add(m, "type", json_object_new_string(mention_type));
			json_object_object_add(item, "type", json_object_new_string("mention"));
			json_object_object_add(item, "mention", m);
		} else {
			json_object_object_add(item, "type", json_object_new_string("text"));
		}
		json_object_array_add(list, item);
	}
	json_object_object_add(v, "id", json_object_new_string("txt"));
	json_object_object_add(v, "type", json_object_new_string(type));
	json_object_object_add(v, type, list);
	return v;
}

static int truncated(struct json_object *v)
{
	int r = nsync__value_may_be_truncated(v);

	json_object_put(v);
	return r;
}

/* Properties holding the one value v under name. */
static struct json_object *props_of(const char *name, struct json_object *v)
{
	struct json_object *props = json_object_new_object();

	json_object_object_add(props, name, v);
	return props;
}

/* Complete props of page page_id, check the result code and return the
 * number of requests made (err holds the error). */
static long complete(const char *page_id, struct json_object *props, nsync_rc want,
		     struct nsync_err *err)
{
	long requests = 0;

	memset(err, 0, sizeof(*err));
	assert_int_equal(nsync__complete_props(NULL, NULL, page_id, props, &requests, err), want);
	return requests;
}

/* The list of the value of property name, by its type (relation, people). */
static struct json_object *value_list(struct json_object *props, const char *name, const char *type)
{
	struct json_object *v, *list;

	assert_true(json_object_object_get_ex(props, name, &v));
	assert_true(json_object_object_get_ex(v, type, &list));
	return list;
}

/* --- detection ---------------------------------------------------------------- */

static void relation_needs_has_more(void **state)
{
	(void)state;
	assert_true(truncated(relation(25, 1)));
	assert_false(truncated(relation(25, 0)));
	assert_false(truncated(relation(3, 0)));
	/* has_more is what counts, not the length. */
	assert_true(truncated(relation(0, 1)));
}

static void people_at_25(void **state)
{
	(void)state;
	assert_false(truncated(people(0)));
	assert_false(truncated(people(24)));
	assert_true(truncated(people(25)));
	assert_true(truncated(people(26)));
}

static void mentions_at_25(void **state)
{
	(void)state;
	assert_false(truncated(rich("rich_text", 24, "page", 100)));
	assert_true(truncated(rich("rich_text", 25, "page", 0)));
	assert_true(truncated(rich("title", 25, "user", 3)));
	assert_true(truncated(rich("rich_text", 30, "database", 0)));
	/* Dates and links are not references. */
	assert_false(truncated(rich("rich_text", 40, "date", 0)));
	assert_false(truncated(rich("rich_text", 40, "link_preview", 0)));
	/* Text alone never is. */
	assert_false(truncated(rich("title", 0, "page", 500)));
}

static void odd_shapes_are_not_truncated(void **state)
{
	struct json_object *v;

	(void)state;
	assert_false(nsync__value_may_be_truncated(NULL));
	assert_false(truncated(
		json_tokener_parse("{\"type\":\"relation\",\"relation\":{},\"has_more\":true}")));
	assert_false(truncated(json_tokener_parse("{\"type\":7,\"relation\":[]}")));
	assert_false(truncated(json_tokener_parse("{\"type\":\"number\",\"number\":3}")));
	v = json_tokener_parse("[1,2]");
	assert_false(nsync__props_may_be_truncated(v));
	json_object_put(v);
}

static void props_any(void **state)
{
	struct json_object *props = json_object_new_object();

	(void)state;
	json_object_object_add(props, "Name", rich("title", 0, "page", 1));
	json_object_object_add(props, "Cast", relation(5, 0));
	assert_false(nsync__props_may_be_truncated(props));
	json_object_object_add(props, "Team", people(25));
	assert_true(nsync__props_may_be_truncated(props));
	json_object_put(props);
}

/* --- completion ------------------------------------------------------------------ */

static void relation_completed_across_pages(void **state)
{
	struct json_object *props = props_of("Cast", relation(25, 1)), *list, *v;
	struct nsync_err err;

	(void)state;
	json_object_object_add(props, "Name", rich("title", 0, "page", 1));
	served[0] =
		"{\"object\":\"list\",\"results\":["
		"{\"object\":\"property_item\",\"type\":\"relation\",\"relation\":{\"id\":\"a\"}},"
		"{\"object\":\"property_item\",\"type\":\"relation\",\"relation\":{\"id\":\"b\"}}],"
		"\"has_more\":true,\"next_cursor\":\"c/1 2\"}";
	served[1] =
		"{\"object\":\"list\",\"results\":["
		"{\"object\":\"property_item\",\"type\":\"relation\",\"relation\":{\"id\":\"c\"}}],"
		"\"has_more\":false,\"next_cursor\":null}";
	n_served = 2;
	assert_int_equal(complete("p1", props, NSYNC_OK, &err), 2);
	assert_string_equal(asked[0], "p1/rel%3A?");
	assert_string_equal(asked[1], "p1/rel%3A?c/1 2");
	list = value_list(props, "Cast", "relation");
	assert_int_equal(json_object_array_length(list), 3);
	assert_string_equal(json_object_get_string(
				    json_object_object_get(json_object_array_get_idx(list, 2),
							   "id")),
			    "c");
	v = json_object_object_get(props, "Cast");
	assert_false(json_object_get_boolean(json_object_object_get(v, "has_more")));
	json_object_put(props);
}

static void people_completed(void **state)
{
	struct json_object *props = props_of("Team", people(25)), *v;
	struct nsync_err err;

	(void)state;
	served[0] =
		"{\"object\":\"list\",\"results\":["
		"{\"object\":\"property_item\",\"type\":\"people\",\"people\":{\"id\":\"u1\"}},"
		"{\"object\":\"property_item\",\"type\":\"people\",\"people\":{\"id\":\"u2\"}}],"
		"\"has_more\":false}";
	n_served = 1;
	assert_int_equal(complete("p", props, NSYNC_OK, &err), 1);
	assert_int_equal(json_object_array_length(value_list(props, "Team", "people")), 2);
	v = json_object_object_get(props, "Team");
	assert_null(json_object_object_get(v, "has_more"));
	json_object_put(props);
}

static void failure_keeps_the_cut_value(void **state)
{
	struct json_object *props = props_of("Cast", relation(25, 1));
	struct nsync_err err;

	(void)state;
	n_served = 0; /* the endpoint answers 404 */
	complete("p", props, NSYNC_ERR_NOT_FOUND, &err);
	assert_non_null(strstr(err.msg, "Cast"));
	assert_int_equal(json_object_array_length(value_list(props, "Cast", "relation")), 25);
	json_object_put(props);
}

static void wrong_item_type_is_a_protocol_error(void **state)
{
	struct json_object *props = props_of("Cast", relation(25, 1));
	struct nsync_err err;

	(void)state;
	served[0] = "{\"object\":\"list\",\"results\":[{\"type\":\"people\",\"people\":{}}],"
		    "\"has_more\":false}";
	n_served = 1;
	complete("p", props, NSYNC_ERR_PROTOCOL, &err);
	json_object_put(props);
}

static void no_property_id_is_a_protocol_error(void **state)
{
	struct json_object *v = relation(25, 1), *props;
	struct nsync_err err;

	(void)state;
	json_object_object_del(v, "id");
	props = props_of("Cast", v);
	assert_int_equal(complete("p", props, NSYNC_ERR_PROTOCOL, &err), 0);
	json_object_put(props);
}

/* An item list that never ends stops at the cap (100 requests), one that
 * repeats its cursor at once; both are errors for that value, and the
 * property keeps what the query showed. */
static void endless_items_are_capped(void **state)
{
	struct json_object *props = props_of("Cast", relation(25, 1));
	struct nsync_err err;

	(void)state;
	endless = 1;
	assert_int_equal(complete("p", props, NSYNC_ERR_PROTOCOL, &err), 100);
	assert_int_equal(calls, 100);
	assert_non_null(strstr(err.msg, "did not end after 100 requests"));
	assert_int_equal(json_object_array_length(value_list(props, "Cast", "relation")), 25);

	endless = 2;
	calls = 0;
	complete("p", props, NSYNC_ERR_PROTOCOL, &err);
	assert_int_equal(calls, 2);
	assert_non_null(strstr(err.msg, "returned before"));
	json_object_put(props);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(relation_needs_has_more, setup),
		cmocka_unit_test_setup(people_at_25, setup),
		cmocka_unit_test_setup(mentions_at_25, setup),
		cmocka_unit_test_setup(odd_shapes_are_not_truncated, setup),
		cmocka_unit_test_setup(props_any, setup),
		cmocka_unit_test_setup(relation_completed_across_pages, setup),
		cmocka_unit_test_setup(endless_items_are_capped, setup),
		cmocka_unit_test_setup(people_completed, setup),
		cmocka_unit_test_setup(failure_keeps_the_cut_value, setup),
		cmocka_unit_test_setup(wrong_item_type_is_a_protocol_error, setup),
		cmocka_unit_test_setup(no_property_id_is_a_protocol_error, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
