/*
 * stats.c - a run's statistics as a table made from NSYNC_STATS_FIELDS
 * (see stats.h), so that nothing else lists them again.
 */
#include <stddef.h>
#include <stdio.h>

#include "stats.h"

enum kind { LONG, DOUBLE };

struct field {
	const char *column;
	enum kind kind;
	size_t offset;
};

#define FIELD_ROW(member, column, type) {column, type, offsetof(struct nsync_stats, member)},
static const struct field fields[] = {NSYNC_STATS_FIELDS(FIELD_ROW)};
#undef FIELD_ROW

#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static long *long_at(const struct nsync_stats *st, size_t i)
{
	return (long *)((char *)st + fields[i].offset);
}

static double *double_at(const struct nsync_stats *st, size_t i)
{
	return (double *)((char *)st + fields[i].offset);
}

size_t nsync__stats_count(void)
{
	return N_FIELDS;
}

const char *nsync_stats_column(size_t i)
{
	return i < N_FIELDS ? fields[i].column : NULL;
}

void nsync__stats_add(struct nsync_stats *to, const struct nsync_stats *from)
{
	size_t i;

	for (i = 0; i < N_FIELDS; i++) {
		if (fields[i].kind == LONG)
			*long_at(to, i) += *long_at(from, i);
		else
			*double_at(to, i) += *double_at(from, i);
	}
}

void nsync__stats_to_json(struct json_object *obj, const struct nsync_stats *st)
{
	size_t i;

	for (i = 0; i < N_FIELDS; i++)
		json_object_object_add(obj, fields[i].column,
				       fields[i].kind == LONG
					       ? json_object_new_int64(*long_at(st, i))
					       : json_object_new_double(*double_at(st, i)));
}

void nsync__stats_param(const struct nsync_stats *st, size_t i, char *out, size_t size)
{
	if (fields[i].kind == LONG)
		snprintf(out, size, "%ld", *long_at(st, i));
	else
		snprintf(out, size, "%.3f", *double_at(st, i));
}

nsync_rc nsync__stats_to_log(struct nsync_buf *b, const struct nsync_stats *st)
{
	char value[32];
	size_t i;

	for (i = 0; i < N_FIELDS; i++) {
		nsync__stats_param(st, i, value, sizeof(value));
		if (nsync__buf_printf(b, " %s=%s", fields[i].column, value) != NSYNC_OK)
			return NSYNC_ERR_NOMEM;
	}
	return NSYNC_OK;
}

nsync_rc nsync__stats_set_sql(struct nsync_buf *b, int first_param)
{
	size_t i;

	for (i = 0; i < N_FIELDS; i++)
		if (nsync__buf_printf(b, "%s%s = $%d::%s", i ? ", " : "", fields[i].column,
				      first_param + (int)i,
				      fields[i].kind == LONG ? "integer" : "float8") != NSYNC_OK)
			return NSYNC_ERR_NOMEM;
	return NSYNC_OK;
}

nsync_rc nsync__stats_json_sql(struct nsync_buf *b)
{
	size_t i;

	for (i = 0; i < N_FIELDS; i++)
		if (nsync__buf_printf(b, ", '%s', %s", fields[i].column, fields[i].column) !=
		    NSYNC_OK)
			return NSYNC_ERR_NOMEM;
	return NSYNC_OK;
}
