/*
 * http.c - libcurl client for the Notion API (see http.h).
 */
#include "config.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "buf.h"
#include "error.h"
#include "http.h"

struct nsync_http {
	CURL *curl;
	const struct nsync_config *cfg;
	struct nsync_retry_policy policy;
	struct nsync_buf body;
	char errbuf[CURL_ERROR_SIZE];
	unsigned long long rng; /* xorshift state for backoff jitter */
};

static double next_jitter(struct nsync_http *h)
{
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return (double)(h->rng >> 11) / 9007199254740992.0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct nsync_buf *b = userdata;
	size_t n = size * nmemb;

	/* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
	return nsync__buf_add(b, data, n) == NSYNC_OK ? n : 0;
}

struct nsync_http *nsync__http_new(const struct nsync_config *cfg, struct nsync_err *err)
{
	struct nsync_http *h = calloc(1, sizeof(*h));

	if (!h) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory creating the HTTP client");
		return NULL;
	}
	h->curl = curl_easy_init();
	if (!h->curl) {
		free(h);
		nsync__err(err, NSYNC_ERR_NOMEM, "libcurl could not create a handle");
		return NULL;
	}
	h->cfg = cfg;
	h->policy.max_attempts = cfg->max_attempts;
	h->policy.max_retry_wait = cfg->max_retry_wait;
	h->policy.max_request_wait = cfg->max_request_wait;
	h->policy.backoff_base = cfg->backoff_base;
	h->rng = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32) ^
		 (unsigned long long)(size_t)h;
	if (!h->rng)
		h->rng = 88172645463325252ULL;
	nsync__buf_init(&h->body, NSYNC_HTTP_MAX_BODY);

	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, cfg->request_timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "notion-sync/" PACKAGE_VERSION);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &h->body);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
	return h;
}

void nsync__http_free(struct nsync_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	nsync__buf_free(&h->body);
	free(h);
}

/* Transport failures worth another try: the network or the server hiccuped. */
static int transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/* A string member of obj, or "" when absent or not a string. */
static const char *string_or_empty(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* Fill err from a final non-2xx answer, using Notion's error body when it
 * has one ({"object":"error","code":...,"message":...,"additional_data":
 * {"error_type":...}}). The class comes from the status alone; callers that
 * need more look at err->notion_code and err->notion_error_type, never at
 * the message, which is Notion's English and quoted as it is. */
static nsync_rc notion_failure(long status, const char *body, size_t len, struct nsync_err *err)
{
	struct json_object *root = NULL, *extra;
	const char *code_s = "", *msg_s = "", *type_s = "";
	nsync_rc rc;

	if (len > 0 && len < 65536) {
		json_tokener *tok = json_tokener_new_ex(16);
		if (tok) {
			root = json_tokener_parse_ex(tok, body, (int)len);
			json_tokener_free(tok);
		}
		if (json_object_is_type(root, json_type_object)) {
			code_s = string_or_empty(root, "code");
			msg_s = string_or_empty(root, "message");
			if (json_object_object_get_ex(root, "additional_data", &extra) &&
			    json_object_is_type(extra, json_type_object))
				type_s = string_or_empty(extra, "error_type");
		}
	}
	if (status == 401 || status == 403)
		rc = NSYNC_ERR_NOTION_AUTH;
	else if (status == 404)
		rc = NSYNC_ERR_NOT_FOUND;
	else
		rc = NSYNC_ERR_NOTION;
	if (*code_s)
		nsync__err(err, rc, "Notion answered %ld %s: %s", status, code_s, msg_s);
	else
		nsync__err(err, rc, "Notion answered HTTP %ld without a Notion error body", status);
	if (err) {
		err->notion_status = (int)status;
		snprintf(err->notion_code, sizeof(err->notion_code), "%s", code_s);
		snprintf(err->notion_error_type, sizeof(err->notion_error_type), "%s", type_s);
	}
	json_object_put(root);
	return rc;
}

/* Longest Retry-After taken as a real instruction; more is not a wait
 * Notion means (its documented windows are a minute, its workspace limits
 * longer, never days). */
#define PLAUSIBLE_RETRY_AFTER 86400.0

/* A 429/529 whose Retry-After is beyond the wait cap ends the request:
 * say so precisely instead of quoting the rate-limit body. */
static nsync_rc wait_refused(const struct nsync_http *h, long status, double retry_after,
			     struct nsync_err *err)
{
	struct nsync_err answer;

	memset(&answer, 0, sizeof(answer));
	notion_failure(status, h->body.data, h->body.len, &answer);
	if (retry_after > PLAUSIBLE_RETRY_AFTER)
		nsync__err(&answer, NSYNC_ERR_PROTOCOL,
			   "Notion answered %ld %s with Retry-After: %.0f s, which is no plausible "
			   "wait (more than a day); the request was not retried",
			   status, answer.notion_code, retry_after);
	else
		nsync__err(&answer, NSYNC_ERR_NOTION,
			   "Notion answered %ld %s and asked to wait %.0f s (Retry-After), more "
			   "than "
			   "NOTION_MAX_RETRY_WAIT (%.0f s); the request was not retried, try again "
			   "later",
			   status, answer.notion_code, retry_after, h->policy.max_retry_wait);
	if (err)
		*err = answer;
	return answer.code;
}

/* Wait for this request's start slot. */
static void pace(struct nsync_pacer *pacer, double rate, struct nsync_stats *stats)
{
	double slot = nsync__pacer_reserve(pacer, rate);
	double wait = slot > 0 ? slot - nsync__monotonic() : 0;

	if (wait <= 0)
		return;
	nsync__sleep(wait);
	if (stats)
		stats->pacing_seconds += wait;
}

nsync_rc nsync__http_call(struct nsync_http *h, const char *path, const char *body,
			  const char *version_override, const char *token,
			  struct nsync_pacer *pacer, struct nsync_stats *stats, const char **resp,
			  size_t *resp_len, struct nsync_err *err)
{
	struct nsync_buf url, auth, version;
	struct curl_slist *headers = NULL, *tmp;
	struct nsync_attempt a;
	nsync_rc rc = NSYNC_OK;

	*resp = NULL;
	*resp_len = 0;
	/* The previous answer is no longer borrowed: an oversized one does not
	 * keep its memory for the life of the client. */
	if (h->body.cap > NSYNC_HTTP_KEEP_BODY) {
		nsync__buf_free(&h->body);
#ifdef __GLIBC__
		/* And the heap that parsing it grew, back to the system. */
		malloc_trim(0);
#endif
	}
	nsync__buf_init(&url, 8192);
	nsync__buf_init(&auth, 8192);
	nsync__buf_init(&version, 256);
	if (nsync__buf_adds(&url, h->cfg->notion_api_url) != NSYNC_OK ||
	    nsync__buf_adds(&url, path) != NSYNC_OK ||
	    nsync__buf_printf(&auth, "Authorization: Bearer %s", token) != NSYNC_OK ||
	    nsync__buf_printf(&version, "Notion-Version: %s",
			      version_override ? version_override : h->cfg->notion_version) !=
		    NSYNC_OK) {
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building a Notion request");
		goto out;
	}
	const char *lines[] = {auth.data, version.data, "Accept: application/json",
			       body ? "Content-Type: application/json" : NULL};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!lines[i])
			continue;
		tmp = curl_slist_append(headers, lines[i]);
		if (!tmp) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM,
					"out of memory building a Notion request");
			goto out;
		}
		headers = tmp;
	}
	curl_easy_setopt(h->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
	if (body) {
		curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
	}

	memset(&a, 0, sizeof(a));
	for (a.attempt = 1;; a.attempt++) {
		CURLcode cc;
		long status = 0, connects = 0;
		curl_off_t retry_after = -1;
		double delay;

		pace(pacer, h->cfg->rate_per_token, stats);
		nsync__buf_reset(&h->body);
		h->errbuf[0] = '\0';
		if (stats)
			stats->notion_requests++;
		cc = curl_easy_perform(h->curl);
		/* Includes libcurl's own silent resend of a request whose reused
		 * connection turned out dead: it opens a new one. */
		if (stats &&
		    curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
			stats->connections += connects;
		if (cc == CURLE_WRITE_ERROR && h->body.over_limit) {
			rc = nsync__err(err, NSYNC_ERR_PROTOCOL,
					"Notion's answer to %s %.200s is larger than %u MiB; it "
					"was not "
					"read",
					body ? "POST" : "GET", path, NSYNC_HTTP_MAX_BODY >> 20);
			break;
		}
		if (cc == CURLE_OK) {
			curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &retry_after);
			if (status >= 200 && status < 300) {
				*resp = h->body.data ? h->body.data : "";
				*resp_len = h->body.len;
				rc = NSYNC_OK;
				break;
			}
		}
		a.http_status = cc == CURLE_OK ? status : 0;
		a.transient_transport = cc != CURLE_OK && transient(cc);
		a.retry_after = retry_after >= 0 ? (double)retry_after : -1;
		delay = nsync__retry_delay(&h->policy, &a, next_jitter(h));
		if (delay < 0) {
			if (cc == CURLE_OK && (status == 429 || status == 529) &&
			    a.retry_after > h->policy.max_retry_wait) {
				rc = wait_refused(h, status, a.retry_after, err);
			} else if (cc != CURLE_OK) {
				rc = nsync__err(err, NSYNC_ERR_NOTION,
						"Notion could not be reached after %d attempt%s: "
						"%s",
						a.attempt, a.attempt == 1 ? "" : "s",
						h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
			} else {
				rc = notion_failure(status, h->body.data, h->body.len, err);
				if (a.attempt > 1)
					nsync__err_prefix(err, rc, "after %d attempts", a.attempt);
			}
			break;
		}
		if (stats) {
			stats->retries++;
			stats->wait_seconds += delay;
		}
		a.waited += delay;
		nsync__sleep(delay);
	}
out:
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	nsync__buf_free(&url);
	if (auth.data)
		explicit_bzero(auth.data, auth.cap); /* the token */
	nsync__buf_free(&auth);
	nsync__buf_free(&version);
	return rc;
}
