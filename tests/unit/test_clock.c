/*
 * clock.c: deadlines are normalized and lie ms ahead on the monotonic clock,
 * clock_now_ms reads the same clock, and a condition variable from
 * clock_cond_init times out at such a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "clock.h"

static int64_t
ns_of(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void
test_deadline(void **state)
{
	static const long	 cases[] = { 0, 1, 999, 1000, 1001, 1999, 15000 };
	struct timespec		 before, d, after;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clock_gettime(CLOCK_MONOTONIC, &before);
		d = clock_deadline(cases[i]);
		clock_gettime(CLOCK_MONOTONIC, &after);
		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		assert_true(ns_of(d) >= ns_of(before) + (int64_t)cases[i] * 1000000);
		assert_true(ns_of(d) <= ns_of(after) + (int64_t)cases[i] * 1000000);
	}
}

static void
test_cond_times_out(void **state)
{
	pthread_mutex_t	mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t	cv;
	struct timespec	d, now;
	int		rc = 0;

	(void)state;
	assert_int_equal(clock_cond_init(&cv), 0);
	d = clock_deadline(20);
	pthread_mutex_lock(&mu);
	while (rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&cv, &mu, &d);
	pthread_mutex_unlock(&mu);
	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_true(ns_of(now) >= ns_of(d));
	pthread_cond_destroy(&cv);
}

static void
test_now_ms(void **state)
{
	struct timespec	before, after;
	int64_t		ms;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &before);
	ms = clock_now_ms();
	clock_gettime(CLOCK_MONOTONIC, &after);
	assert_true(ms >= ns_of(before) / 1000000);
	assert_true(ms <= ns_of(after) / 1000000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_cond_times_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
