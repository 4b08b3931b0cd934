/*
 * auth.c - bearer secret and body signature checks in constant time (see
 * auth.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* Parse "t=<digits>,v1=<64 hex digits>" (hex in any case). */
static int parse_signature(const char *header, long long *t, char v1[FCGI_SIGNATURE_HEX])
{
	const char *p = header, *mac;
	long long value = 0;
	size_t digits = 0, i;

	if (!p || strncmp(p, "t=", 2) != 0)
		return 0;
	for (p += 2; *p >= '0' && *p <= '9' && digits < 12; p++, digits++)
		value = value * 10 + (*p - '0');
	if (digits == 0 || strncmp(p, ",v1=", 4) != 0)
		return 0;
	mac = p + 4;
	if (strlen(mac) != FCGI_SIGNATURE_HEX - 1)
		return 0;
	for (i = 0; i < FCGI_SIGNATURE_HEX - 1; i++) {
		char c = mac[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
		v1[i] = c;
	}
	v1[FCGI_SIGNATURE_HEX - 1] = '\0';
	*t = value;
	return 1;
}

/* HMAC-SHA256 of "<t>.<body>" keyed by secret, as lowercase hex. */
static int mac_hex(const char *secret, const char *t_text, const char *body, size_t len,
		   char out[FCGI_SIGNATURE_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0, i;
	size_t t_len = strlen(t_text);
	unsigned char *msg = malloc(t_len + 1 + len + 1);

	if (!msg)
		return 0;
	memcpy(msg, t_text, t_len);
	msg[t_len] = '.';
	if (len)
		memcpy(msg + t_len + 1, body, len);
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, t_len + 1 + len, mac, &mac_len) ||
	    mac_len != 32) {
		free(msg);
		return 0;
	}
	free(msg);
	for (i = 0; i < mac_len; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[2 * mac_len] = '\0';
	return 1;
}

enum fcgi_signature fcgi_signature_check(const struct fcgi_secrets *s, const char *header,
					 const char *body, size_t len, time_t now,
					 long long *signed_at, char v1[FCGI_SIGNATURE_HEX])
{
	char t_text[24], want[FCGI_SIGNATURE_HEX];
	long long t;
	size_t i;
	int ok = 0;

	if (!parse_signature(header, &t, v1))
		return FCGI_SIGNATURE_MALFORMED;
	if (t < (long long)now - FCGI_SIGNATURE_MAX_AGE ||
	    t > (long long)now + FCGI_SIGNATURE_MAX_SKEW)
		return FCGI_SIGNATURE_EXPIRED;
	*signed_at = t;
	if (!body)
		return FCGI_SIGNATURE_VALID;
	/* The digits exactly as sent: "t=007" signs "007". */
	snprintf(t_text, sizeof(t_text), "%.*s", (int)strcspn(header + 2, ","), header + 2);
	for (i = 0; i < s->n; i++)
		if (mac_hex(s->list[i], t_text, body, len, want))
			ok |= equal_constant_time(v1, FCGI_SIGNATURE_HEX - 1, want,
						  FCGI_SIGNATURE_HEX - 1);
	explicit_bzero(want, sizeof(want));
	return ok ? FCGI_SIGNATURE_VALID : FCGI_SIGNATURE_MISMATCH;
}

const char *fcgi_signature_problem(enum fcgi_signature result)
{
	switch (result) {
	case FCGI_SIGNATURE_VALID:
		return "valid";
	case FCGI_SIGNATURE_MALFORMED:
		return "X-Notion-Sync-Signature must be \"t=<unix seconds>,v1=<64 hex digits>\"";
	case FCGI_SIGNATURE_EXPIRED:
		return "the X-Notion-Sync-Signature is older than 5 minutes (or dated in the "
		       "future); "
		       "a new request must be signed";
	default:
		return "the X-Notion-Sync-Signature does not match the request body for any secret";
	}
}
