/*
 * test_pagemap.c - unit tests for lib/pagemap.c.
 *
 * Covers: put/get with dashed, undashed and uppercase spellings of one id
 * landing in the same slot; updating a hash keeps the count; 50,000
 * pseudo-random ids (deterministic generator) all found with their own
 * hashes after the table has grown many times; unknown ids -> NULL; an id
 * or hash that is not hex -> NULL with NSYNC_ERR_ARG and the map
 * unchanged; nsync__hex_to_bytes on exact, short, long, non-hex and dashed
 * input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pagemap.h"

#define ID_DASHED "3aaabc1e-edcd-81d4-9469-e53a3b401d3d"
#define ID_PLAIN "3aaabc1eedcd81d49469e53a3b401d3d"
#define ID_UPPER "3AAABC1E-EDCD-81D4-9469-E53A3B401D3D"
#define HASH_A "0123456789abcdef0123456789abcdef"
#define HASH_B "ffeeddccbbaa99887766554433221100"

static const uint8_t id_bytes[16] = {0x3a, 0xaa, 0xbc, 0x1e, 0xed, 0xcd, 0x81, 0xd4,
				     0x94, 0x69, 0xe5, 0x3a, 0x3b, 0x40, 0x1d, 0x3d};
static const uint8_t hash_a[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				   0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
static const uint8_t hash_b[16] = {0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88,
				   0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00};

static void put_get_spellings(void **state)
{
	struct nsync_pagemap m;
	struct nsync_pagemap_slot *s;
	nsync_rc rc = NSYNC_ERR_INTERNAL;

	(void)state;
	nsync__pagemap_init(&m);
	assert_null(nsync__pagemap_get(&m, ID_DASHED)); /* empty map */
	s = nsync__pagemap_put(&m, ID_DASHED, HASH_A, &rc);
	assert_non_null(s);
	assert_int_equal(rc, NSYNC_OK);
	assert_int_equal(m.count, 1);
	assert_int_equal(s->used, 1);
	assert_int_equal(s->queued, 0);
	assert_memory_equal(s->id, id_bytes, 16);
	assert_memory_equal(s->hash, hash_a, 16);

	assert_ptr_equal(nsync__pagemap_get(&m, ID_DASHED), s);
	assert_ptr_equal(nsync__pagemap_get(&m, ID_PLAIN), s);
	assert_ptr_equal(nsync__pagemap_get(&m, ID_UPPER), s);

	/* Putting another spelling updates the same slot. */
	assert_ptr_equal(nsync__pagemap_put(&m, ID_PLAIN, HASH_B, &rc), s);
	assert_int_equal(rc, NSYNC_OK);
	assert_int_equal(m.count, 1);
	assert_memory_equal(nsync__pagemap_get(&m, ID_UPPER)->hash, hash_b, 16);
	/* Uppercase hash text too. */
	assert_ptr_equal(nsync__pagemap_put(&m, ID_UPPER, "0123456789ABCDEF0123456789ABCDEF", &rc),
			 s);
	assert_int_equal(m.count, 1);
	assert_memory_equal(s->hash, hash_a, 16);
	nsync__pagemap_free(&m);
	assert_null(m.slots);
	assert_int_equal(m.count, 0);
	assert_null(nsync__pagemap_get(&m, ID_DASHED));
}

static void unknown_ids(void **state)
{
	struct nsync_pagemap m;
	nsync_rc rc;

	(void)state;
	nsync__pagemap_init(&m);
	assert_non_null(nsync__pagemap_put(&m, ID_DASHED, HASH_A, &rc));
	/* Differs in the last digit, in the first digit. */
	assert_null(nsync__pagemap_get(&m, "3aaabc1e-edcd-81d4-9469-e53a3b401d3e"));
	assert_null(nsync__pagemap_get(&m, "4aaabc1e-edcd-81d4-9469-e53a3b401d3d"));
	assert_null(nsync__pagemap_get(&m, "00000000000000000000000000000000"));
	/* Not an id at all. */
	assert_null(nsync__pagemap_get(&m, ""));
	assert_null(nsync__pagemap_get(&m, "3aaabc1e"));
	assert_null(nsync__pagemap_get(&m, ID_PLAIN "00"));
	nsync__pagemap_free(&m);
}

static void invalid_input(void **state)
{
	struct nsync_pagemap m;
	nsync_rc rc;
	static const char *const bad_ids[] = {
		"",
		"not-an-id",
		"3aaabc1eedcd81d49469e53a3b401d3",   /* 31 digits */
		"3aaabc1eedcd81d49469e53a3b401d3d0", /* 33 digits */
		"3aaabc1eedcd81d49469e53a3b401d3g",
		"3aaabc1e edcd81d49469e53a3b401d3d",
		"0x3aaabc1eedcd81d49469e53a3b401d",
	};
	static const char *const bad_hashes[] = {
		"",
		"0123456789abcdef0123456789abcde",
		"0123456789abcdef0123456789abcdef0",
		"0123456789abcdef0123456789abcdeZ",
		"d41d8cd98f00b204e9800998ecf8427e\n",
	};
	size_t i;

	(void)state;
	nsync__pagemap_init(&m);
	assert_non_null(nsync__pagemap_put(&m, ID_DASHED, HASH_A, &rc));
	for (i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		rc = NSYNC_OK;
		assert_null(nsync__pagemap_put(&m, bad_ids[i], HASH_B, &rc));
		assert_int_equal(rc, NSYNC_ERR_ARG);
	}
	for (i = 0; i < sizeof(bad_hashes) / sizeof(bad_hashes[0]); i++) {
		rc = NSYNC_OK;
		assert_null(nsync__pagemap_put(&m, ID_PLAIN, bad_hashes[i], &rc));
		assert_int_equal(rc, NSYNC_ERR_ARG);
	}
	/* Nothing changed. */
	assert_int_equal(m.count, 1);
	assert_memory_equal(nsync__pagemap_get(&m, ID_PLAIN)->hash, hash_a, 16);
	nsync__pagemap_free(&m);
}

/* splitmix64: a fixed sequence, so the test is repeatable. */
static uint64_t next_random(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void to_hex(const uint8_t *b, size_t n, int dashed, int upper, char *out)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (dashed && (i == 4 || i == 6 || i == 8 || i == 10))
			out[o++] = '-';
		out[o++] = digits[b[i] >> 4];
		out[o++] = digits[b[i] & 15];
	}
	out[o] = '\0';
}

#define MANY 50000

static void many_random_ids(void **state)
{
	struct nsync_pagemap m;
	uint8_t(*ids)[16], (*hashes)[16];
	uint64_t seed = 20260727;
	char id_text[40], hash_text[40];
	size_t i, j;
	nsync_rc rc;

	(void)state;
	ids = malloc(MANY * sizeof(*ids));
	hashes = malloc(MANY * sizeof(*hashes));
	assert_non_null(ids);
	assert_non_null(hashes);
	for (i = 0; i < MANY; i++) {
		uint64_t r[4];
		for (j = 0; j < 4; j++)
			r[j] = next_random(&seed);
		memcpy(ids[i], r, 16);
		memcpy(hashes[i], r + 2, 16);
		/* Half the ids share Notion-style prefixes (same first 8 bytes). */
		if (i % 2)
			memcpy(ids[i], "\x3a\xaa\xbc\x1e\xed\xcd\x81\xd4", 8);
	}

	nsync__pagemap_init(&m);
	for (i = 0; i < MANY; i++) {
		struct nsync_pagemap_slot *s;
		to_hex(ids[i], 16, i % 3 == 0, i % 5 == 0, id_text);
		to_hex(hashes[i], 16, 0, i % 7 == 0, hash_text);
		s = nsync__pagemap_put(&m, id_text, hash_text, &rc);
		assert_non_null(s);
		assert_int_equal(rc, NSYNC_OK);
		assert_int_equal(m.count, i + 1);
		/* Load stays under 3/4 and the capacity is a power of two. */
		assert_true(m.count * 4 <= m.cap * 3);
		assert_int_equal(m.cap & (m.cap - 1), 0);
	}
	assert_int_equal(m.count, MANY);

	/* Every id found, with its own hash, whatever the spelling. */
	for (i = 0; i < MANY; i++) {
		struct nsync_pagemap_slot *s;
		to_hex(ids[i], 16, i % 3 != 0, i % 2 == 0, id_text);
		s = nsync__pagemap_get(&m, id_text);
		assert_non_null(s);
		assert_memory_equal(s->id, ids[i], 16);
		assert_memory_equal(s->hash, hashes[i], 16);
	}

	/* Ids never inserted are not found (flip one bit of each). */
	for (i = 0; i < MANY; i += 97) {
		uint8_t other[16];
		memcpy(other, ids[i], 16);
		other[15] ^= 0x01;
		to_hex(other, 16, 1, 0, id_text);
		assert_null(nsync__pagemap_get(&m, id_text));
	}

	/* Updating all of them keeps the count. */
	for (i = 0; i < MANY; i += 3) {
		to_hex(ids[i], 16, 1, 0, id_text);
		assert_non_null(nsync__pagemap_put(&m, id_text, HASH_B, &rc));
	}
	assert_int_equal(m.count, MANY);
	for (i = 0; i < MANY; i++) {
		to_hex(ids[i], 16, 0, 0, id_text);
		assert_memory_equal(nsync__pagemap_get(&m, id_text)->hash,
				    i % 3 == 0 ? hash_b : hashes[i], 16);
	}

	nsync__pagemap_free(&m);
	free(ids);
	free(hashes);
}

static void hex_to_bytes(void **state)
{
	uint8_t out[4];

	(void)state;
	memset(out, 0, sizeof(out));
	assert_int_equal(nsync__hex_to_bytes("0a1B", out, 2), 1);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0x1b);
	assert_int_equal(nsync__hex_to_bytes("deadBEEF", out, 4), 1);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	/* Dashes are skipped wherever they are. */
	assert_int_equal(nsync__hex_to_bytes("-de-ad-be-ef", out, 4), 1);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	assert_int_equal(nsync__hex_to_bytes("12--34", out, 2), 1);
	assert_int_equal(out[0], 0x12);
	assert_int_equal(out[1], 0x34);
	/* Short. */
	assert_int_equal(nsync__hex_to_bytes("0a1", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("----", out, 2), 0);
	/* Long. */
	assert_int_equal(nsync__hex_to_bytes("0a1b2", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("0a1b2c", out, 2), 0);
	/* Not hex. */
	assert_int_equal(nsync__hex_to_bytes("0g1b", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("0x1b", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes(" 0a1b", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("0a1b ", out, 2), 0);
	assert_int_equal(nsync__hex_to_bytes("0a\x80"
					     "1",
					     out, 2),
			 0);
	/* n = 0 wants the empty string. */
	assert_int_equal(nsync__hex_to_bytes("", out, 0), 1);
	assert_int_equal(nsync__hex_to_bytes("0", out, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(put_get_spellings), cmocka_unit_test(unknown_ids),
		cmocka_unit_test(invalid_input),     cmocka_unit_test(many_random_ids),
		cmocka_unit_test(hex_to_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
