/*
 * error.c - result codes, their sentences and machine names, and the
 * helpers that fill struct nsync_err.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "text.h"

/* Indexed by nsync_rc; keep in the enum's order. */
static const struct {
	const char *name;
	const char *sentence;
} rc_text[NSYNC_ERR__COUNT] = {
	[NSYNC_OK] = {"ok", "Success."},
	[NSYNC_ERR_NOMEM] = {"out_of_memory", "Out of memory."},
	[NSYNC_ERR_ARG] = {"invalid_request", "The request is invalid."},
	[NSYNC_ERR_NOT_FOUND] = {"not_found", "Not found."},
	[NSYNC_ERR_NOTION] = {"notion_error", "Notion failed to answer the request."},
	[NSYNC_ERR_NOTION_AUTH] = {"notion_unauthorized", "Notion rejected the user's token."},
	[NSYNC_ERR_PROTOCOL] = {"notion_protocol_error",
				"Notion's answer had an unexpected shape."},
	[NSYNC_ERR_DB] = {"database_unavailable", "PostgreSQL is unavailable or failed."},
	[NSYNC_ERR_BUSY] = {"sync_in_progress", "This database is being synced right now."},
	[NSYNC_ERR_CONFIG] = {"configuration_error", "The configuration is missing or invalid."},
	[NSYNC_ERR_IO] = {"io_error", "A local file could not be read."},
	[NSYNC_ERR_INTERNAL] = {"internal_error", "Internal error."},
	[NSYNC_ERR_DUPLICATE] = {"duplicate_title",
				 "Two databases have the same title; register the one to sync."},
	[NSYNC_ERR_NO_DATA_SOURCES] =
		{"no_data_sources", "The database lists no data source the integration can read."},
};

const char *nsync_strerror(nsync_rc code)
{
	if ((int)code < 0 || code >= NSYNC_ERR__COUNT)
		return "Unknown error.";
	return rc_text[code].sentence;
}

const char *nsync_rc_name(nsync_rc code)
{
	if ((int)code < 0 || code >= NSYNC_ERR__COUNT)
		return "unknown_error";
	return rc_text[code].name;
}

/* 1 when the avail bytes at s are the valid start of a character that
 * needs more bytes than there are: what vsnprintf leaves when it cuts. */
static int cut_at_end(const unsigned char *s, size_t avail)
{
	size_t need = s[0] >= 0xF0 && s[0] <= 0xF4   ? 4
		      : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
		      : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
						     : 0;
	size_t i;

	if (need == 0 || avail >= need)
		return 0;
	for (i = 1; i < avail; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return 1;
}

/* Messages end up in one-line logs, JSON answers and run rows: fold line
 * breaks, tabs and other control characters (libpq's messages have them)
 * into single spaces, and keep the text valid UTF-8: a byte that starts
 * no valid sequence (Notion's message may hold raw bytes) becomes '?', and
 * a sequence cut by the buffer's end is dropped. */
static void one_line(char *msg)
{
	char *out = msg;
	const unsigned char *in = (const unsigned char *)msg;
	size_t avail = strlen(msg);
	int space = 0;

	while (avail > 0) {
		size_t n = *in < 0x80 ? 1 : nsync__utf8_seq_len(in, avail);

		if (*in < 0x20 || *in == ' ' || *in == 0x7f) {
			space = out != msg;
			in++;
			avail--;
			continue;
		}
		if (space)
			*out++ = ' ';
		space = 0;
		if (n == 0) {
			if (cut_at_end(in, avail))
				break;
			*out++ = '?';
			in++;
			avail--;
			continue;
		}
		memmove(out, in, n);
		out += n;
		in += n;
		avail -= n;
	}
	*out = '\0';
}

nsync_rc nsync__err(struct nsync_err *err, nsync_rc code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	one_line(err->msg);
	return code;
}

void nsync__err_clear(struct nsync_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

nsync_rc nsync__err_prefix(struct nsync_err *err, nsync_rc code, const char *fmt, ...)
{
	char joined[NSYNC_ERR_MSG_MAX + 256];
	size_t n;
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(joined, 256, fmt, ap);
	va_end(ap);
	n = strlen(joined);
	snprintf(joined + n, sizeof(joined) - n, ": %s", err->msg);
	memcpy(err->msg, joined, sizeof(err->msg) - 1);
	err->msg[sizeof(err->msg) - 1] = '\0';
	one_line(err->msg);
	return code;
}
