/*
 * log.c's throttle: which lines of a call site go out, and the count the
 * next one carries. The decision is driven with made-up timestamps, one
 * table per behaviour; log_throttled itself writes into a file in place of
 * stderr, on the real clock.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "defaults.h"
#include "log.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define INTERVAL	1000

struct step {
	int64_t		 now_ms;
	bool		 pass;
	uint64_t	 repeated;	/* when it passes */
};

static const struct {
	const char	*name;
	struct step	 steps[8];
	size_t		 n;
} sequences[] = {
	{ "the first line goes out", { { 5, true, 0 } }, 1 },
	{ "a clock at 0 is no different", { { 0, true, 0 }, { 999, false, 0 },
	  { 1000, true, 1 } }, 3 },
	{ "inside a second: swallowed, then counted", { { 100, true, 0 },
	  { 101, false, 0 }, { 600, false, 0 }, { 1099, false, 0 },
	  { 1100, true, 3 } }, 5 },
	{ "a quiet spell: nothing to count", { { 100, true, 0 }, { 5000, true, 0 },
	  { 9000, true, 0 } }, 3 },
	{ "the count goes with the next line, however late", { { 0, true, 0 },
	  { 10, false, 0 }, { 20, false, 0 }, { 3600000, true, 2 },
	  { 3600001, false, 0 }, { 3601000, true, 1 } }, 6 },
	{ "the window starts at the line that went out", { { 0, true, 0 },
	  { 900, false, 0 }, { 1000, true, 1 }, { 1900, false, 0 },
	  { 1999, false, 0 }, { 2000, true, 2 } }, 6 },
};

static void
test_pass_sequences(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(sequences); i++) {
		struct log_throttle_state st = { 0, 0, false };

		for (size_t j = 0; j < sequences[i].n; j++) {
			const struct step	*s = &sequences[i].steps[j];
			uint64_t		 repeated = 12345;
			bool			 pass;

			pass = log_throttle_pass(&st, s->now_ms, INTERVAL, &repeated);
			if (pass != s->pass || (pass && repeated != s->repeated))
				fail_msg("%s, step %zu (t=%lld): want %s %llu, got %s %llu",
				    sequences[i].name, j, (long long)s->now_ms,
				    s->pass ? "pass" : "swallow", (unsigned long long)s->repeated,
				    pass ? "pass" : "swallow", (unsigned long long)repeated);
		}
	}
}

/* A burst: an error every millisecond for ten seconds, as a full disk gives. */
static void
test_burst(void **state)
{
	struct log_throttle_state	st = { 0, 0, false };
	uint64_t			repeated, swallowed = 0;
	unsigned			lines = 0;

	(void)state;
	for (int64_t t = 50000; t < 60000; t++) {
		if (log_throttle_pass(&st, t, INTERVAL, &repeated)) {
			lines++;
			swallowed += repeated;
			if (lines > 1)
				assert_int_equal(repeated, INTERVAL - 1);
		}
	}
	assert_int_equal(lines, 10);
	/* Every call is either a line or counted by a later one, bar the last second's. */
	assert_int_equal(swallowed + lines + st.suppressed, 10000);
	assert_int_equal(st.suppressed, INTERVAL - 1);
}

/* Run fn with stderr going to a file; the text written, caller frees. */
static char *
capture(void (*fn)(void))
{
	char	 path[] = "/tmp/test_log.XXXXXX";
	int	 fd, saved;
	char	*text;
	off_t	 len;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	len = lseek(fd, 0, SEEK_END);
	assert_true(len >= 0);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(pread(fd, text, (size_t)len, 0), len);
	close(fd);
	return text;
}

static struct log_throttle site = LOG_THROTTLE_INIT;

static void
hammer(void)
{
	const struct timespec	 pause = { (LOG_THROTTLE_MS + 50) / 1000,
	    (LOG_THROTTLE_MS + 50) % 1000 * 1000000L };

	log_init(LOG_LEVEL_INFO);
	for (int i = 0; i < 1000; i++)
		log_throttled(&site, LOG_LEVEL_ERROR, "store: claim: %s", "disk full");
	/* Below the threshold: neither written nor counted. */
	for (int i = 0; i < 50; i++)
		log_throttled(&site, LOG_LEVEL_DEBUG, "store: claim: %s", "disk full");
	nanosleep(&pause, NULL);
	log_throttled(&site, LOG_LEVEL_WARN, "store: claim: %s", "disk full");
}

static void
test_throttled_lines(void **state)
{
	char	*text;

	(void)state;
	text = capture(hammer);
	assert_string_equal(text, "error: store: claim: disk full\n"
	    "warning: store: claim: disk full (repeated 999 times)\n");
	free(text);
}

/* JOURNAL_STREAM is "device:inode" in decimal; anything else is not the journal. */
static void
test_journal_stream(void **state)
{
	static const struct {
		const char	*env;
		int		 want;
	} cases[] = {
		{ "2049:131", 1 }, { "2049:132", 0 }, { "2048:131", 0 },
		{ NULL, 0 }, { "", 0 }, { "2049", 0 }, { "2049:131x", 0 },
		{ "2049:131:1", 0 }, { "x:131", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(log_journal_stream(cases[i].env, 2049, 131), cases[i].want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_sequences),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_throttled_lines),
		cmocka_unit_test(test_journal_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
