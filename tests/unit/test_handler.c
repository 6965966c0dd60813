/*
 * handler.c: how a repeat of a finished webhook is judged, from the time of
 * its first arrival, the time now and [reset] replay_window. Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "handler.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define T0		1700000000

static const struct {
	int64_t			 first_at;
	int64_t			 now;
	unsigned		 window;
	enum handler_repeat	 want;
} repeat_cases[] = {
	/* Within the window: Twilio's retry, the first answer again. */
	{ T0, T0, 60, HANDLER_RETRY },
	{ T0, T0 + 1, 60, HANDLER_RETRY },
	{ T0, T0 + 15, 60, HANDLER_RETRY },		/* Twilio's last retry, at most */
	{ T0, T0 + 59, 60, HANDLER_RETRY },
	/* From the window's end on: a replay. */
	{ T0, T0 + 60, 60, HANDLER_REPLAY },
	{ T0, T0 + 3600, 60, HANDLER_REPLAY },
	{ T0, T0 + 30 * 86400, 60, HANDLER_REPLAY },	/* the record's whole life */
	{ T0, T0 + 1, 2, HANDLER_RETRY },
	{ T0, T0 + 2, 2, HANDLER_REPLAY },
	{ T0, T0 + 3599, 3600, HANDLER_RETRY },
	{ T0, T0 + 3600, 3600, HANDLER_REPLAY },
	/* 0: no repeat is answered with the first answer, not even at once. */
	{ T0, T0, 0, HANDLER_REPLAY },
	{ T0, T0 + 1, 0, HANDLER_REPLAY },
	{ T0, T0 - 1, 0, HANDLER_REPLAY },
	/* A first arrival stamped ahead of now (clock stepped back, another
	 * instance's clock): within the window either side only. */
	{ T0, T0 - 1, 60, HANDLER_RETRY },
	{ T0, T0 - 59, 60, HANDLER_RETRY },
	{ T0, T0 - 60, 60, HANDLER_REPLAY },
	{ T0, T0 - 86400, 60, HANDLER_REPLAY },
	/* A stamp far from any clock is never a retry. */
	{ 0, T0, 3600, HANDLER_REPLAY },
	{ INT64_MAX, T0, 3600, HANDLER_REPLAY },
	{ INT64_MIN, T0, 3600, HANDLER_REPLAY },
};

static void
test_repeat_judge(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(repeat_cases); i++) {
		enum handler_repeat got = handler_repeat_judge(repeat_cases[i].first_at,
		    repeat_cases[i].now, repeat_cases[i].window);

		if (got != repeat_cases[i].want)
			fail_msg("case %zu: first %lld, now %lld, window %u: want %s", i,
			    (long long)repeat_cases[i].first_at, (long long)repeat_cases[i].now,
			    repeat_cases[i].window,
			    repeat_cases[i].want == HANDLER_RETRY ? "retry" : "replay");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeat_judge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
