/*
 * answer.h - the third step: the JSON answer, made from the outcomes once
 * the work is done (nothing is rendered while syncing). The shapes are
 * those of README "The endpoint".
 */
#ifndef NSYNC_ANSWER_H
#define NSYNC_ANSWER_H

#include "runner.h"

/* A queued run, for the answer of an asynchronous request. */
struct nsync_queued {
	long run_id;
	char user_id[37];
	char database_id[37];    /* "" for a discovery */
	char database_name[129]; /* "" when not known yet */
};

/* Each returns NSYNC_OK with *out a new string (free()), or NSYNC_ERR_NOMEM. */

/* nsync__answer_one - {"success":true,"synced_count":N,...} for the one
 * successful outcome of a user + database request. */
nsync_rc nsync__answer_one(const struct nsync_outcome *o, char **out, struct nsync_err *err);

/* nsync__answer_all - {"success":all_ok,"results":[...]}: an entry per sync,
 * and for each discovery an entry per problem it found (or one for its
 * failure). */
nsync_rc nsync__answer_all(const struct nsync_outcome *os, size_t n, char **out,
			   struct nsync_err *err);

/* nsync__outcomes_ok - 1 when every job succeeded (a discovery that found a
 * duplicate or an empty database did not). */
int nsync__outcomes_ok(const struct nsync_outcome *os, size_t n);

/* nsync__answer_queued - {"success":true,"status":"accepted","runs":[...]}. */
nsync_rc nsync__answer_queued(const struct nsync_queued *runs, size_t n, char **out,
			      struct nsync_err *err);

/* nsync__answer_text - *out = a copy of the text of obj, which is put. */
nsync_rc nsync__answer_text(struct json_object *obj, char **out, struct nsync_err *err);

#endif
