/*
 * stats.h - what is done with a run's statistics, all from the one list
 * NSYNC_STATS_FIELDS of notionsync.h: sums, JSON members, the log line and
 * the run row's SQL. A new counter is one line in that list plus a column.
 */
#ifndef NSYNC_STATS_H
#define NSYNC_STATS_H

#include <json-c/json.h>

#include "buf.h"
#include "notionsync.h"

/* How many statistics there are. */
size_t nsync__stats_count(void);

/* nsync__stats_add - add every field of from to to. */
void nsync__stats_add(struct nsync_stats *to, const struct nsync_stats *from);

/* nsync__stats_to_json - add one member per statistic to obj (a JSON
 * object). Allocation failures leave members out (json-c's way). */
void nsync__stats_to_json(struct json_object *obj, const struct nsync_stats *st);

/* nsync__stats_to_log - append " column=value" per statistic to b.
 * NSYNC_ERR_NOMEM when b is full. */
nsync_rc nsync__stats_to_log(struct nsync_buf *b, const struct nsync_stats *st);

/* nsync__stats_set_sql - append "column = $N::type, ..." for every
 * statistic, numbering parameters from first_param, to b. */
nsync_rc nsync__stats_set_sql(struct nsync_buf *b, int first_param);

/* nsync__stats_json_sql - append ", 'column', column" for every statistic
 * (arguments of json_build_object over a notion_sync_runs row) to b. */
nsync_rc nsync__stats_json_sql(struct nsync_buf *b);

/* nsync__stats_param - the i-th statistic of st as SQL parameter text in
 * out (size >= 32). */
void nsync__stats_param(const struct nsync_stats *st, size_t i, char *out, size_t size);

#endif
