/*
 * twilio_api.c: the pure parts. How a reply is classified (retry, accepted,
 * permanent) and how Retry-After is read (RFC 9110 section 10.2.3:
 * delta-seconds only here; an HTTP-date counts as absent). Table-driven.
 * Then the handle's bounds, and a round of calls that get no reply (a
 * loopback port with nothing listening): one outcome per message, once.
 * Replies are exercised by the integration tests' fake API.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "twilio_api.h"

struct classify_case {
	bool			 transport_ok;
	long			 status;
	enum twilio_outcome	 want;
};

static const struct classify_case classify_cases[] = {
	{ false, 0, TWILIO_RETRY },		/* no reply: connect, TLS, timeout */
	{ false, 200, TWILIO_RETRY },		/* transport failure wins */
	{ true, 0, TWILIO_RETRY },		/* "ok" but no status line */
	{ true, 200, TWILIO_ACCEPTED },
	{ true, 201, TWILIO_ACCEPTED },		/* what Twilio answers a create */
	{ true, 299, TWILIO_ACCEPTED },
	{ true, 400, TWILIO_PERMANENT },	/* 21211 invalid To, 21610 opted out */
	{ true, 401, TWILIO_RETRY },		/* credentials: ours, maybe rotating */
	{ true, 403, TWILIO_PERMANENT },
	{ true, 404, TWILIO_PERMANENT },
	{ true, 408, TWILIO_RETRY },
	{ true, 429, TWILIO_RETRY },		/* Twilio's concurrency limit */
	{ true, 499, TWILIO_PERMANENT },
	{ true, 500, TWILIO_RETRY },
	{ true, 502, TWILIO_RETRY },
	{ true, 503, TWILIO_RETRY },
	{ true, 599, TWILIO_RETRY },
	{ true, 100, TWILIO_RETRY },		/* not something Twilio ends on */
	{ true, 302, TWILIO_RETRY },		/* redirects are never followed */
};

static void
test_classify(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(classify_cases) / sizeof(classify_cases[0]); i++) {
		const struct classify_case *c = &classify_cases[i];
		enum twilio_outcome got = twilio_api_classify(c->transport_ok, c->status);

		if (got != c->want)
			fail_msg("case %zu (transport_ok %d, status %ld): got %d, want %d",
			    i, c->transport_ok, c->status, got, c->want);
	}
}

struct retry_after_case {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	unsigned	 cap;
	unsigned	 want;
};

static const struct retry_after_case retry_after_cases[] = {
	{ "1", 0, 3600, 1 },
	{ "120", 0, 3600, 120 },
	{ "0", 0, 3600, 0 },
	{ "  5", 0, 3600, 5 },			/* OWS before */
	{ "\t7 ", 0, 3600, 7 },			/* and after */
	{ " 30\r\n", 0, 3600, 30 },		/* a raw header line's end */
	{ "", 0, 3600, 0 },
	{ "   ", 0, 3600, 0 },
	{ "-1", 0, 3600, 0 },
	{ "+5", 0, 3600, 0 },
	{ "abc", 0, 3600, 0 },
	{ "5abc", 0, 3600, 0 },
	{ "5 5", 0, 3600, 0 },
	{ "1.5", 0, 3600, 0 },
	{ "0x10", 0, 3600, 0 },
	{ "Wed, 21 Oct 2015 07:28:00 GMT", 0, 3600, 0 },	/* HTTP-date: ignored */
	{ "3600", 0, 3600, 3600 },
	{ "3601", 0, 3600, 3600 },		/* capped */
	{ "86400", 0, 3600, 3600 },
	{ "4294967296", 0, 3600, 3600 },	/* 2^32 */
	{ "99999999999999999999999999999999", 0, 3600, 3600 },	/* overflows any integer */
	{ "99999999999999999999999999999999", 0, UINT_MAX, UINT_MAX },
	{ "000000000000000000000000000042", 0, 3600, 42 },
	{ "120", 2, 3600, 12 },			/* only len bytes count */
	{ "1\0" "2", 3, 3600, 0 },		/* NUL inside */
	{ "10", 0, 0, 0 },			/* cap 0 */
};

static void
test_retry_after(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(retry_after_cases) / sizeof(retry_after_cases[0]); i++) {
		const struct retry_after_case *c = &retry_after_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		unsigned got = twilio_api_retry_after(c->in, len, c->cap);

		if (got != c->want)
			fail_msg("case %zu (\"%s\", cap %u): got %u, want %u", i, c->in,
			    c->cap, got, c->want);
	}
	assert_int_equal(twilio_api_retry_after(NULL, 0, 3600), 0);
}

static const struct twilio_api_config cfg = {
	.base_url = "https://127.0.0.1:9",	/* loopback, nothing listening: refused */
	.account_sid = "AC00000000000000000000000000000000",
	.username = "AC00000000000000000000000000000000",
	.password = "not-a-secret",
	.from_number = "+15550000100",
};

static void
test_new_slots(void **state)
{
	struct twilio_api	*api = (struct twilio_api *)1;
	char			 err[256];

	(void)state;
	assert_int_equal(twilio_api_new(&cfg, 0, &api, err, sizeof(err)), -1);
	assert_null(api);
	assert_non_null(strstr(err, "calls at once"));
	assert_int_equal(twilio_api_new(&cfg, TWILIO_API_MAX_SLOTS + 1, &api, err,
	    sizeof(err)), -1);
	assert_int_equal(twilio_api_new(&cfg, TWILIO_API_MAX_SLOTS, &api, err,
	    sizeof(err)), 0);
	twilio_api_free(api);
}

struct outcomes {
	unsigned	calls[4];
	long		status[4];
	enum twilio_outcome outcome[4];
	char		detail[4][160];
};

static void
on_done(void *arg, size_t i, const struct twilio_result *res)
{
	struct outcomes *o = arg;

	assert_true(i < 4);
	o->calls[i]++;
	o->status[i] = res->http_status;
	o->outcome[i] = res->outcome;
	snprintf(o->detail[i], sizeof(o->detail[i]), "%s", res->detail);
}

/*
 * A round where no call gets a reply: each message has its outcome exactly
 * once, a retry with no status; the one past the slots is not sent at all.
 * The handle serves the next round as well.
 */
static void
test_send_round_without_replies(void **state)
{
	struct twilio_message	 msgs[3] = {
		{ .to = "+15550000001", .body = "code 1" },
		{ .to = "+15550000002", .body = "code 2", .validity_period = 60 },
		{ .to = "+15550000003", .body = "code 3" },
	};
	struct twilio_api	*api;
	struct outcomes		 o;
	char			 err[256];

	(void)state;
	assert_int_equal(twilio_api_new(&cfg, 2, &api, err, sizeof(err)), 0);
	for (int round = 0; round < 2; round++) {
		memset(&o, 0, sizeof(o));
		twilio_api_send(api, msgs, 3, on_done, &o);
		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(o.calls[i], 1);
			assert_int_equal(o.outcome[i], TWILIO_RETRY);
			assert_int_equal(o.status[i], 0);
			assert_true(o.detail[i][0] != '\0');
		}
		assert_non_null(strstr(o.detail[2], "not sent"));
	}
	twilio_api_free(api);
}

static int
setup(void **state)
{
	(void)state;
	return twilio_api_global_init();
}

static int
teardown(void **state)
{
	(void)state;
	twilio_api_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_new_slots),
		cmocka_unit_test(test_send_round_without_replies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
