/*
 * auth.h - the responder's own bearer-secret check (nginx checks too; this
 * is the second line). Secrets come from NOTION_SYNC_SECRET, a
 * comma-separated list so that a secret can be rotated without downtime.
 */
#ifndef FCGI_AUTH_H
#define FCGI_AUTH_H

#include <stddef.h>

struct fcgi_secrets {
	char **list;    /* owned, each NUL-terminated */
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

#endif
