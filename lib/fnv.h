/*
 * fnv.h - FNV-1a, 64 bits: a token's pacer key and the cursors a walk has
 * followed (to notice a loop) are remembered by this hash, never as text.
 * Not for anything adversarial: collisions only cost a false "seen".
 */
#ifndef NSYNC_FNV_H
#define NSYNC_FNV_H

static inline unsigned long nsync__fnv1a(const char *s)
{
	unsigned long h = 1469598103934665603UL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211UL;
	}
	return h;
}

#endif
