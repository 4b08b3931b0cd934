/*
 * text.h - making text storable in PostgreSQL.
 *
 * Notion text can hold what PostgreSQL refuses: NUL characters (text and
 * jsonb reject U+0000) and lone UTF-16 surrogates (\ud800 escapes, or the
 * CESU bytes ED A0..BF a decoder may produce), which are not valid UTF-8.
 * These helpers clean such text on the way into a JSON document instead of
 * failing the page: NUL is dropped from text columns and becomes U+FFFD in
 * jsonb; every invalid sequence becomes U+FFFD.
 */
#ifndef NSYNC_TEXT_H
#define NSYNC_TEXT_H

#include <stddef.h>

#include "buf.h"

/* nsync__json_add_string - append s (len bytes, may hold NUL) as a quoted
 * JSON string: NUL bytes dropped, invalid UTF-8 replaced by U+FFFD, control
 * characters escaped. *cleaned (may be NULL) is incremented once if
 * anything was dropped or replaced. NSYNC_ERR_NOMEM on buffer failure. */
nsync_rc nsync__json_add_string(struct nsync_buf *b, const char *s, size_t len, long *cleaned);

/* nsync__json_add_raw - append a slice of JSON text that came from Notion,
 * rewriting what jsonb refuses: "\u0000" and lone surrogate escapes become
 * "\ufffd", invalid raw UTF-8 becomes U+FFFD. The slice is assumed to be
 * syntactically valid JSON (it was parsed before). */
nsync_rc nsync__json_add_raw(struct nsync_buf *b, const char *s, size_t len, long *cleaned);

/* nsync__hex4 - the value of the 4 hex digits at p (either case) into
 * *out, as a JSON \\u escape spells it: 1, or 0 when one is no hex digit. */
int nsync__hex4(const char *p, unsigned *out);

/* nsync__utf8_clean - append s (len bytes) to b as raw text (not JSON):
 * NUL bytes dropped, each invalid UTF-8 sequence replaced by U+FFFD.
 * *cleaned (may be NULL) is incremented once if anything changed. */
nsync_rc nsync__utf8_clean(struct nsync_buf *b, const char *s, size_t len, long *cleaned);

/* nsync__utf8_prefix - byte length of the longest prefix of s (len bytes)
 * holding at most max_chars UTF-8 characters, never splitting a character. */
size_t nsync__utf8_prefix(const char *s, size_t len, size_t max_chars);

/* nsync__utf8_seq_len - length (1..4) of the valid UTF-8 sequence at s
 * (at most avail bytes), or 0 if the bytes there are not valid UTF-8
 * (overlong, surrogate, out of range, truncated). */
size_t nsync__utf8_seq_len(const unsigned char *s, size_t avail);

#endif
