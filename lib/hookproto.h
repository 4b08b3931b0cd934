/*
 * hookproto.h - what a Notion webhook delivery means, without I/O: the
 * X-Notion-Signature check (HMAC-SHA256 of the raw body keyed by the
 * verification token) and the classes of event types a worker acts on.
 */
#ifndef NSYNC_HOOKPROTO_H
#define NSYNC_HOOKPROTO_H

#include <stddef.h>

/* How a worker treats an event type. */
enum nsync_event_class {
	NSYNC_EVENT_IGNORED, /* not about synced content (comments, files, views, ...) */
	NSYNC_EVENT_PAGE,    /* read the page and write or remove its row */
	NSYNC_EVENT_SYNC,    /* queue an incremental sync of the database */
	NSYNC_EVENT_FULL,    /* queue a full walk (the schema changed) */
	NSYNC_EVENT_KEPT,    /* a data source or database was deleted: rows are kept */
};

/* nsync__event_class - the class of a Notion event type ("page.created"). */
enum nsync_event_class nsync__event_class(const char *type);

/* Outcome of nsync__webhook_signature. */
enum nsync_webhook_signature {
	NSYNC_SIGNATURE_VALID,
	NSYNC_SIGNATURE_MISSING,   /* no X-Notion-Signature */
	NSYNC_SIGNATURE_MALFORMED, /* not "sha256=" and 64 hex digits */
	NSYNC_SIGNATURE_MISMATCH,  /* well formed, wrong MAC */
};

/* nsync__webhook_signature - check header ("sha256=<hex>", either case of
 * hex) against HMAC-SHA256 of body (len bytes) keyed by token, in
 * constant time. header may be NULL. */
enum nsync_webhook_signature nsync__webhook_signature(const char *header, const char *token,
						      const char *body, size_t len);

/* nsync__webhook_signature_problem - the sentence a 401 answer gives. Static. */
const char *nsync__webhook_signature_problem(enum nsync_webhook_signature s);

#endif
