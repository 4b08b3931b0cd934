/*
 * error.h - filling struct nsync_err at the point of failure.
 *
 * Every failure in lib/ is one line: `return nsync__err(err, CODE, fmt, ...)`.
 * Symbols with a double underscore are internal: the shared library exports
 * only ^nsync_[a-z] (see Makefile.am).
 */
#ifndef NSYNC_ERROR_H
#define NSYNC_ERROR_H

#include "notionsync.h"

/* nsync__err - set err->code and a printf-style message, return code.
 * err may be NULL. Other fields of err are left alone, so a caller can fill
 * notion_status or sqlstate before or after. */
nsync_rc nsync__err(struct nsync_err *err, nsync_rc code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* nsync__err_clear - reset err to "no error". err may be NULL. */
void nsync__err_clear(struct nsync_err *err);

/* nsync__err_prefix - prepend "prefix: " to err->msg (truncating the end)
 * and set err->code to code. Returns code, also when err is NULL. */
nsync_rc nsync__err_prefix(struct nsync_err *err, nsync_rc code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* NSYNC__REQUIRE - the contract of every public call: a bad argument is
 * NSYNC_ERR_ARG, reported also when err is NULL. For functions with a
 * `struct nsync_err *err` in scope that return nsync_rc. */
#define NSYNC__REQUIRE(cond)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return nsync__err(err, NSYNC_ERR_ARG, "%s: %s is required", __func__,      \
					  #cond);                                                  \
	} while (0)

#endif
