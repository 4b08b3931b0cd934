/*
 * hookproto.c - the webhook signature check and event classes (see
 * hookproto.h).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "hookproto.h"
#include "pagemap.h"

static const struct {
	const char *type;
	enum nsync_event_class cls;
} event_types[] = {
	{"page.created", NSYNC_EVENT_PAGE},
	{"page.properties_updated", NSYNC_EVENT_PAGE},
	{"page.content_updated", NSYNC_EVENT_PAGE},
	{"page.undeleted", NSYNC_EVENT_PAGE},
	{"page.moved", NSYNC_EVENT_PAGE},
	{"page.deleted", NSYNC_EVENT_PAGE},
	{"data_source.schema_updated", NSYNC_EVENT_FULL},
	{"database.schema_updated", NSYNC_EVENT_FULL},
	{"data_source.content_updated", NSYNC_EVENT_SYNC},
	{"database.content_updated", NSYNC_EVENT_SYNC},
	{"data_source.created", NSYNC_EVENT_SYNC},
	{"data_source.undeleted", NSYNC_EVENT_SYNC},
	{"data_source.moved", NSYNC_EVENT_SYNC},
	{"database.created", NSYNC_EVENT_SYNC},
	{"database.undeleted", NSYNC_EVENT_SYNC},
	{"database.moved", NSYNC_EVENT_SYNC},
	{"data_source.deleted", NSYNC_EVENT_KEPT},
	{"database.deleted", NSYNC_EVENT_KEPT},
};

enum nsync_event_class nsync__event_class(const char *type)
{
	size_t i;

	for (i = 0; type && i < sizeof(event_types) / sizeof(event_types[0]); i++)
		if (strcmp(type, event_types[i].type) == 0)
			return event_types[i].cls;
	return NSYNC_EVENT_IGNORED;
}

enum nsync_webhook_signature nsync__webhook_signature(const char *header, const char *token,
						      const char *body, size_t len)
{
	unsigned char given[32], mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (!header || !*header)
		return NSYNC_SIGNATURE_MISSING;
	if (strncmp(header, "sha256=", 7) != 0 || strlen(header + 7) != 64)
		return NSYNC_SIGNATURE_MALFORMED;
	/* Exactly 64 characters, all hex digits (either case). */
	if (strspn(header + 7, "0123456789abcdefABCDEF") != 64 ||
	    !nsync__hex_to_bytes(header + 7, given, 32))
		return NSYNC_SIGNATURE_MALFORMED;
	if (!HMAC(EVP_sha256(), token, (int)strlen(token), (const unsigned char *)body, len, mac,
		  &mac_len) ||
	    mac_len != 32)
		return NSYNC_SIGNATURE_MISMATCH;
	return CRYPTO_memcmp(given, mac, 32) == 0 ? NSYNC_SIGNATURE_VALID
						  : NSYNC_SIGNATURE_MISMATCH;
}

const char *nsync__webhook_signature_problem(enum nsync_webhook_signature s)
{
	switch (s) {
	case NSYNC_SIGNATURE_VALID:
		return "the signature is valid";
	case NSYNC_SIGNATURE_MISSING:
		return "an X-Notion-Signature header is required";
	case NSYNC_SIGNATURE_MALFORMED:
		return "X-Notion-Signature must be \"sha256=\" followed by 64 hex digits";
	case NSYNC_SIGNATURE_MISMATCH:
		break;
	}
	return "X-Notion-Signature does not match the body";
}
