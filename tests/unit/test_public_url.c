/*
 * public_url.c: every configured base followed by the raw target, those the
 * Host header names (case-insensitively, with or without the scheme's default
 * port) first; a Host never adds or builds a URL. Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "public_url.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct order_case {
	const char	*label;
	const char	*bases[4];	/* NULL-terminated */
	const char	*host;		/* NULL: no Host header */
	const char	*want[4];	/* bases in the order tried */
};

static const struct order_case order_cases[] = {
	{ "one base, its Host", { "https://a.example" }, "a.example",
	  { "https://a.example" } },
	{ "one base, another Host: still tried, never replaced",
	  { "https://a.example" }, "evil.example", { "https://a.example" } },
	{ "one base, no Host", { "https://a.example" }, NULL, { "https://a.example" } },
	{ "the Host picks the second", { "https://a.example", "https://b.example" },
	  "b.example", { "https://b.example", "https://a.example" } },
	{ "case-insensitive", { "https://a.example", "https://B.Example" },
	  "b.EXAMPLE", { "https://B.Example", "https://a.example" } },
	{ "Host adds the default port", { "https://a.example", "https://b.example" },
	  "b.example:443", { "https://b.example", "https://a.example" } },
	{ "base has the default port", { "https://a.example", "https://b.example:443/x" },
	  "b.example", { "https://b.example:443/x", "https://a.example" } },
	{ "http's default port is 80", { "https://a.example", "http://b.example" },
	  "b.example:80", { "http://b.example", "https://a.example" } },
	{ "443 is not http's default", { "https://a.example", "http://b.example" },
	  "b.example:443", { "https://a.example", "http://b.example" } },
	{ "another port is another authority",
	  { "https://a.example", "https://b.example:8443" }, "b.example",
	  { "https://a.example", "https://b.example:8443" } },
	{ "the port must match", { "https://a.example", "https://b.example:8443" },
	  "b.example:8443", { "https://b.example:8443", "https://a.example" } },
	{ "two bases on one host: both first, in config order",
	  { "https://a.example", "https://b.example/one", "https://c.example",
	    "https://b.example/two" }, "b.example",
	  { "https://b.example/one", "https://b.example/two", "https://a.example",
	    "https://c.example" } },
	{ "IPv6 literal", { "https://a.example", "https://[::1]:8443" }, "[::1]:8443",
	  { "https://[::1]:8443", "https://a.example" } },
	{ "IPv6 literal, default port", { "https://a.example", "https://[::1]" }, "[::1]:443",
	  { "https://[::1]", "https://a.example" } },
	{ "a prefix of an authority is not it", { "https://a.example", "https://b.example" },
	  "b.exampl", { "https://a.example", "https://b.example" } },
	{ "an extension of an authority is not it",
	  { "https://a.example", "https://b.example" }, "b.example.evil",
	  { "https://a.example", "https://b.example" } },
	{ "Host with userinfo is not it", { "https://a.example", "https://b.example" },
	  "x@b.example", { "https://a.example", "https://b.example" } },
	{ "empty Host", { "https://a.example", "https://b.example" }, "",
	  { "https://a.example", "https://b.example" } },
};

static void
test_order(void **state)
{
	static const char target[] = "/sms/reset?x=1";

	(void)state;
	for (size_t i = 0; i < NELEM(order_cases); i++) {
		const struct order_case	*c = &order_cases[i];
		struct buf		 out[MAX_PUBLIC_URLS];
		char			*bases[4];
		struct public_url_input	 in;
		size_t			 n = 0, count = 0;

		print_message("%s\n", c->label);
		while (n < 4 && c->bases[n] != NULL) {
			bases[n] = (char *)(uintptr_t)c->bases[n];
			n++;
		}
		in = (struct public_url_input){
			.bases = bases, .base_count = n, .host = c->host,
			.host_len = c->host != NULL ? strlen(c->host) : 0,
			.target = target, .target_len = strlen(target),
		};
		memset(out, 0, sizeof(out));
		assert_int_equal(public_url_candidates(&in, out, &count), PUBLIC_URL_OK);
		assert_int_equal(count, n);
		for (size_t j = 0; j < n; j++) {
			char want[256];

			(void)snprintf(want, sizeof(want), "%s%s", c->want[j], target);
			assert_int_equal(out[j].len, strlen(want));
			assert_memory_equal(out[j].data, want, out[j].len);
			buf_free(&out[j]);
		}
	}
}

/* The Host is (pointer, length): bytes past host_len never count. */
static void
test_host_length(void **state)
{
	static char		 a[] = "https://a.example", b[] = "https://b.example";
	char			*bases[2] = { a, b };
	struct buf		 out[MAX_PUBLIC_URLS];
	struct public_url_input	 in = {
		.bases = bases, .base_count = 2, .host = "b.example:443junk",
		.host_len = 13, .target = "/", .target_len = 1,
	};
	size_t			 count;

	(void)state;
	memset(out, 0, sizeof(out));
	assert_int_equal(public_url_candidates(&in, out, &count), PUBLIC_URL_OK);
	assert_int_equal(count, 2);
	assert_string_equal(out[0].data, "https://b.example/");
	for (size_t i = 0; i < count; i++)
		buf_free(&out[i]);
}

static void
test_too_long(void **state)
{
	static char		 target[MAX_URL_LEN], a[] = "https://a.example";
	char			*bases[1] = { a };
	struct buf		 out[MAX_PUBLIC_URLS];
	struct public_url_input	 in = {
		.bases = bases, .base_count = 1, .target = target,
		.target_len = sizeof(target),
	};
	size_t			 count = 99;

	(void)state;
	memset(target, 'a', sizeof(target));
	memset(out, 0, sizeof(out));
	assert_int_equal(public_url_candidates(&in, out, &count), PUBLIC_URL_TOO_LONG);
	assert_int_equal(count, 0);
	assert_null(out[0].data);
	in.base_count = MAX_PUBLIC_URLS + 1;
	in.target_len = 1;
	assert_int_equal(public_url_candidates(&in, out, &count), PUBLIC_URL_TOO_LONG);
	assert_string_equal(public_url_result_str(PUBLIC_URL_TOO_LONG), "url_too_long");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_host_length),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
