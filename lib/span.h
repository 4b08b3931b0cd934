/*
 * span.h - the created_time spans the ends of a split full walk have
 * walked, and what they prove. A walk split by created_time has ends that
 * go up (ascending, everything below their frontier seen) or down
 * (descending, everything above it seen) from where they started; the
 * walk has seen every page when the spans leave no point uncovered. Times
 * are Notion's ISO 8601 UTC strings of one format, so text order is time
 * order. Pure functions, no allocation.
 */
#ifndef NSYNC_SPAN_H
#define NSYNC_SPAN_H

#include <stddef.h>

/* One walked span; lo or hi NULL is unbounded (the data source's start or
 * end). A closed bound includes its point, an open one does not: an end
 * whose last page was created at t may not have seen every page created at
 * t yet. */
struct nsync_span {
	const char *lo, *hi;
	int lo_closed, hi_closed;
};

/* nsync__span_covers_all - 1 when the n spans together cover every point.
 * Otherwise 0, and *gap (when gap is not NULL) is the lowest point not
 * covered, or where the uncovered part starts ("" when nothing from the
 * start is covered); borrowed from spans. */
int nsync__span_covers_all(const struct nsync_span *spans, size_t n, const char **gap);

/* nsync__span_reaches - 1 when an end at point, going up (ascending) or
 * down, has reached what the n spans cover: they cover point and the
 * times just past it in that direction, so what lies ahead was walked. point NULL is an end
 * that has not moved from the data source's own end: the start for an
 * ascending one, the top for a descending one. */
int nsync__span_reaches(const struct nsync_span *spans, size_t n, const char *point, int ascending);

#endif
