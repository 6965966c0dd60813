/*
 * outbox.c: the retry schedule. Capped exponential backoff with "equal
 * jitter" (half fixed, half random), never shorter than Retry-After.
 * Table-driven; the worker threads are exercised by the integration tests.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "defaults.h"
#include "outbox.h"

struct backoff_case {
	unsigned	 attempt;
	unsigned	 retry_after;
	uint32_t	 rnd;
	uint64_t	 want;
};

/* Base 1 s, cap 5 min: d = min(300000, 1000 * 2^(attempt-1)); d/2 + rnd % (d/2 + 1). */
static const struct backoff_case backoff_cases[] = {
	{ 1, 0, 0, 500 },
	{ 2, 0, 0, 1000 },
	{ 3, 0, 0, 2000 },
	{ 4, 0, 0, 4000 },
	{ 9, 0, 0, 128000 },
	{ 10, 0, 0, 150000 },		/* 512 s capped at 300 s */
	{ 0, 0, 0, 500 },		/* attempt 0 is treated as the first */
	{ 40, 0, 0, 150000 },		/* 2^39 s: no overflow, capped */
	{ UINT_MAX, 0, 0, 150000 },
	{ 1, 0, 500, 1000 },		/* rnd % 501 = 500: the whole of d */
	{ 1, 0, 501, 500 },
	{ 1, 0, UINT32_MAX, 506 },	/* 4294967295 % 501 = 6 */
	{ 2, 0, UINT32_MAX, 1619 },
	{ 3, 0, UINT32_MAX, 2885 },
	{ 9, 0, UINT32_MAX, 149741 },
	{ 10, 0, UINT32_MAX, 288663 },
	{ 1, 120, 0, 120000 },		/* Retry-After wins when larger */
	{ 1, 120, UINT32_MAX, 120000 },
	{ 10, 120, UINT32_MAX, 288663 },/* backoff wins when larger */
	{ 5, 1, 0, 8000 },
	{ 5, 8, 0, 8000 },		/* equal: either */
	{ 5, 9, 0, 9000 },
	{ 1, OUTBOX_MAX_RETRY_AFTER, 0, OUTBOX_MAX_RETRY_AFTER * 1000ull },
	{ 1, UINT_MAX, 0, UINT_MAX * 1000ull },	/* no 32-bit overflow */
};

static void
test_backoff_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(backoff_cases) / sizeof(backoff_cases[0]); i++) {
		const struct backoff_case *c = &backoff_cases[i];
		uint64_t got = outbox_backoff_ms(c->attempt, c->retry_after, c->rnd);

		if (got != c->want)
			fail_msg("case %zu (attempt %u, retry_after %u, rnd %u): got %llu, want %llu",
			    i, c->attempt, c->retry_after, c->rnd,
			    (unsigned long long)got, (unsigned long long)c->want);
	}
}

/* For every attempt: d/2 <= wait <= d, d doubling up to the cap, bounds monotone. */
static void
test_backoff_bounds(void **state)
{
	static const uint32_t	rnds[] = { 0, 1, 7, 12345, 1u << 31, UINT32_MAX - 1, UINT32_MAX };
	uint64_t		prev_lo = 0, prev_hi = 0, d;

	(void)state;
	for (unsigned a = 1; a <= 64; a++) {
		d = a - 1 < 20 ? (uint64_t)OUTBOX_BACKOFF_BASE_MS << (a - 1) : UINT64_MAX;
		if (d > OUTBOX_BACKOFF_CAP_MS)
			d = OUTBOX_BACKOFF_CAP_MS;
		uint64_t lo = outbox_backoff_ms(a, 0, 0);
		uint64_t hi = outbox_backoff_ms(a, 0, (uint32_t)(d / 2));

		assert_int_equal(lo, d / 2);
		assert_int_equal(hi, d / 2 + d / 2);
		assert_true(lo >= prev_lo);
		assert_true(hi >= prev_hi);
		assert_true(hi <= OUTBOX_BACKOFF_CAP_MS);
		for (size_t r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
			uint64_t w = outbox_backoff_ms(a, 0, rnds[r]);

			if (w < lo || w > hi)
				fail_msg("attempt %u rnd %u: %llu outside [%llu, %llu]", a,
				    rnds[r], (unsigned long long)w,
				    (unsigned long long)lo, (unsigned long long)hi);
		}
		prev_lo = lo;
		prev_hi = hi;
	}
	assert_int_equal(prev_lo, OUTBOX_BACKOFF_CAP_MS / 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_table),
		cmocka_unit_test(test_backoff_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
