/*
 * auth.h - the responder's own checks of who calls (nginx checks too; this
 * is the second line): a bearer secret (external cron, people), or a
 * short-lived signature of the request body made with that secret
 * (requests PostgreSQL sends through pg_net, whose queue any role can
 * read, so it must never hold the secret itself). Secrets come from
 * NOTION_SYNC_SECRET, a comma-separated list so that a secret can be
 * rotated without downtime.
 */
#ifndef FCGI_AUTH_H
#define FCGI_AUTH_H

#include <stddef.h>
#include <time.h>

struct fcgi_secrets {
	char **list; /* owned, each NUL-terminated */
	size_t n;
};

/* fcgi_secrets_load - split value on commas, trimming blanks and skipping
 * empty items. Returns 0 on success, -1 when out of memory. */
int fcgi_secrets_load(struct fcgi_secrets *s, const char *value);

/* fcgi_secrets_free - wipe and free. */
void fcgi_secrets_free(struct fcgi_secrets *s);

/* fcgi_authorized - 1 when header (the Authorization value, may be NULL)
 * is "Bearer <secret>" for one of the secrets. The scheme is matched
 * case-insensitively (RFC 7235), the secret exactly and in time that does
 * not depend on where it differs. */
int fcgi_authorized(const struct fcgi_secrets *s, const char *header);

/* How long a signature is valid, and how far in the future its time may
 * be (clock skew between the database host and this one). */
#define FCGI_SIGNATURE_MAX_AGE 300
#define FCGI_SIGNATURE_MAX_SKEW 60

/* The hex HMAC of a signature, NUL-terminated. */
#define FCGI_SIGNATURE_HEX 65

enum fcgi_signature {
	FCGI_SIGNATURE_VALID = 0,
	FCGI_SIGNATURE_MALFORMED, /* not "t=<unix>,v1=<64 hex digits>" */
	FCGI_SIGNATURE_EXPIRED,   /* older than FCGI_SIGNATURE_MAX_AGE, or from the future */
	FCGI_SIGNATURE_MISMATCH,  /* made with no known secret, or over another body */
};

/* fcgi_signature_check - check header, the value of
 * X-Notion-Sync-Signature ("t=<unix seconds>,v1=<hex>": HMAC-SHA256 keyed
 * by a secret over "<t>.<body>"), at time now. body NULL checks the form
 * and the age only (nginx's auth_request has no body; the handler checks
 * the rest). On VALID, *signed_at and v1 (FCGI_SIGNATURE_HEX bytes,
 * lowercase) receive the time and the MAC, to refuse a replay. Every
 * secret is tried in time that does not depend on which one matches. */
enum fcgi_signature fcgi_signature_check(const struct fcgi_secrets *s, const char *header,
					 const char *body, size_t len, time_t now,
					 long long *signed_at, char v1[FCGI_SIGNATURE_HEX]);

/* fcgi_signature_problem - a sentence for a check that failed. Static. */
const char *fcgi_signature_problem(enum fcgi_signature result);

#endif
