/*
 * span.c - coverage of created_time by the spans of a split walk (see
 * span.h). A handful of spans (at most a few per walk): a sort by lower
 * bound and one sweep.
 */
#include <string.h>

#include "span.h"

#define MAX_SPANS 16

/* lo of a before lo of b: unbounded first, then by time, closed first. */
static int starts_before(const struct nsync_span *a, const struct nsync_span *b)
{
	int c;

	if (!a->lo || !b->lo)
		return !a->lo && b->lo;
	c = strcmp(a->lo, b->lo);
	return c < 0 || (c == 0 && a->lo_closed && !b->lo_closed);
}

int nsync__span_covers_all(const struct nsync_span *spans, size_t n, const char **gap)
{
	const struct nsync_span *order[MAX_SPANS];
	const char *reach = NULL; /* everything below is covered; NULL: nothing yet */
	int reach_closed = 0, started = 0;
	size_t i, j, m = n < MAX_SPANS ? n : MAX_SPANS;

	for (i = 0; i < m; i++) {
		for (j = i; j > 0 && starts_before(&spans[i], order[j - 1]); j--)
			order[j] = order[j - 1];
		order[j] = &spans[i];
	}
	for (i = 0; i < m; i++) {
		const struct nsync_span *s = order[i];
		int c;

		/* Joins what is covered: starts unbounded, or below the reach,
		 * or at it with the point itself covered by one of the two. */
		if (s->lo) {
			if (!started)
				break;
			c = strcmp(s->lo, reach);
			if (c > 0 || (c == 0 && !reach_closed && !s->lo_closed))
				break;
		}
		if (!s->hi)
			return 1;
		c = started ? strcmp(s->hi, reach) : 1;
		if (c > 0) {
			reach = s->hi;
			reach_closed = s->hi_closed;
		} else if (c == 0) {
			reach_closed |= s->hi_closed;
		}
		started = 1;
	}
	if (gap)
		*gap = started ? reach : "";
	return 0;
}

/* Whether a span of the n covers point itself (at), or the times just
 * above it (up) or just below it (down, neither at nor up). */
static int any_covers(const struct nsync_span *spans, size_t n, const char *point, int at, int up)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct nsync_span *s = &spans[i];
		int lo_c = s->lo ? strcmp(s->lo, point) : -1; /* unbounded: below */
		int hi_c = s->hi ? strcmp(s->hi, point) : 1;  /* unbounded: above */

		if (at ? (lo_c < 0 || (lo_c == 0 && s->lo_closed)) &&
				    (hi_c > 0 || (hi_c == 0 && s->hi_closed))
		    : up ? lo_c <= 0 && hi_c > 0
			 : lo_c < 0 && hi_c >= 0)
			return 1;
	}
	return 0;
}

int nsync__span_reaches(const struct nsync_span *spans, size_t n, const char *point, int ascending)
{
	size_t i;

	if (!point) {
		/* The very end opposite the start of this walk. */
		for (i = 0; i < n; i++)
			if (ascending ? !spans[i].lo : !spans[i].hi)
				return 1;
		return 0;
	}
	/* Pages at point and just past it were seen, by one span or two
	 * meeting there. */
	return any_covers(spans, n, point, 1, 0) && any_covers(spans, n, point, 0, ascending);
}
