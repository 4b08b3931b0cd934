/*
 * auth.c - bearer secret check in constant time (see auth.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

int fcgi_secrets_load(struct fcgi_secrets *s, const char *value)
{
	const char *p = value ? value : "";

	s->list = NULL;
	s->n = 0;
	while (*p) {
		const char *start, *end;
		char **grown;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == start)
			continue;
		grown = realloc(s->list, (s->n + 1) * sizeof(*grown));
		if (!grown)
			return -1;
		s->list = grown;
		s->list[s->n] = strndup(start, (size_t)(end - start));
		if (!s->list[s->n])
			return -1;
		s->n++;
	}
	return 0;
}

void fcgi_secrets_free(struct fcgi_secrets *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		explicit_bzero(s->list[i], strlen(s->list[i]));
		free(s->list[i]);
	}
	free(s->list);
	s->list = NULL;
	s->n = 0;
}

/* Compare without an early exit: the time taken depends only on the
 * lengths, never on the position of the first difference. */
static int equal_constant_time(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = (unsigned char)(alen != blen);
	size_t i;

	for (i = 0; i < alen; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)(i < blen ? b[i] : 0);
	return diff == 0;
}

int fcgi_authorized(const struct fcgi_secrets *s, const char *header)
{
	const char *given;
	size_t given_len, i;
	int ok = 0;

	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return 0;
	given = header + 7;
	while (*given == ' ')
		given++;
	given_len = strlen(given);
	/* Check every secret, so the time does not tell which one matched. */
	for (i = 0; i < s->n; i++)
		ok |= equal_constant_time(given, given_len, s->list[i], strlen(s->list[i]));
	return ok;
}
