/*
 * public_url.c: every configured base followed by the raw target, those the
 * Host header names (case-insensitively, with or without the scheme's default
 * port) first, a Host never adding or building a URL; and public_url_client,
 * the client address an access line shows: the peer, unless it is a trusted
 * proxy, then X-Forwarded-For walked from the right past trusted proxies,
 * each element an address literal or the whole header ignored. Table-driven.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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


#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* 127.0.0.0/8, 10.0.0.0/8 and fd00::/8: loopback and two proxy networks. */
static const struct config_cidr trusted[] = {
	{ AF_INET, { 127 }, 8 },
	{ AF_INET, { 10 }, 8 },
	{ AF_INET6, { 0xfd }, 8 },
};

struct client_case {
	const char	*peer;		/* address literal; NULL: no peer */
	const char	*xff;		/* X-Forwarded-For; NULL: none */
	bool		 trust;		/* use the trusted networks, else none */
	const char	*want;
};

static const struct client_case client_cases[] = {
	/* No proxy: the peer, whatever the header says. */
	{ "127.0.0.1", NULL, false, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7", false, "127.0.0.1" },
	{ "192.0.2.1", "203.0.113.7", true, "192.0.2.1" },	/* peer not trusted */
	{ "::1", NULL, false, "::1" },
	{ "2001:db8::5", "203.0.113.7", false, "2001:db8::5" },
	/* A trusted proxy: the right-most element it vouches for. */
	{ "127.0.0.1", "203.0.113.7", true, "203.0.113.7" },
	{ "127.0.0.1", "198.51.100.1, 203.0.113.7", true, "203.0.113.7" },
	{ "127.0.0.1", "203.0.113.7, 10.0.0.2", true, "203.0.113.7" },
	{ "127.0.0.1", "198.51.100.9,203.0.113.7,10.1.2.3,10.0.0.2", true, "203.0.113.7" },
	{ "127.0.0.1", " \t203.0.113.7 \t", true, "203.0.113.7" },
	{ "127.0.0.1", "2001:db8::1", true, "2001:db8::1" },
	{ "127.0.0.1", "2001:DB8:0:0::1", true, "2001:db8::1" },	/* printed anew */
	{ "127.0.0.1", "::ffff:203.0.113.7", true, "203.0.113.7" },
	{ "127.0.0.1", "203.0.113.7, fd12::1", true, "203.0.113.7" },
	/* Every element trusted: the left-most, what the first proxy saw. */
	{ "127.0.0.1", "10.0.0.3, 10.0.0.2", true, "10.0.0.3" },
	{ "10.9.9.9", "127.0.0.1", true, "127.0.0.1" },
	/* What a client wrote to the left of the first untrusted element is never read. */
	{ "127.0.0.1", "garbage, 203.0.113.7", true, "203.0.113.7" },
	{ "127.0.0.1", "\x1b[31m, 203.0.113.7", true, "203.0.113.7" },
	/* Anything else where an address should be: the peer, never the header. */
	{ "127.0.0.1", "garbage", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7, garbage", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7, 10.0.0.2, x", true, "127.0.0.1" },
	{ "127.0.0.1", "garbage, 10.0.0.2", true, "127.0.0.1" },
	{ "127.0.0.1", "", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7,", true, "127.0.0.1" },
	{ "127.0.0.1", ",203.0.113.7", true, "203.0.113.7" },
	{ "127.0.0.1", "10.0.0.2,,10.0.0.3", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7:443", true, "127.0.0.1" },
	{ "127.0.0.1", "[2001:db8::1]", true, "127.0.0.1" },
	{ "127.0.0.1", "fe80::1%eth0", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.7 status=200", true, "127.0.0.1" },
	{ "127.0.0.1", "\x1b[31m203.0.113.7", true, "127.0.0.1" },
	{ "127.0.0.1", "203.0.113.007", true, "127.0.0.1" },
	{ "127.0.0.1", "0000:0000:0000:0000:0000:0000:0000:0000:0000:0001", true, "127.0.0.1" },
	{ "127.0.0.1", "unknown", true, "127.0.0.1" },
	/* An IPv4 peer on a dual-stack socket: trusted as IPv4, printed as IPv4. */
	{ "::ffff:127.0.0.1", "203.0.113.7", true, "203.0.113.7" },
	{ "::ffff:127.0.0.1", NULL, false, "127.0.0.1" },
	{ "fd00::1", "203.0.113.7", true, "203.0.113.7" },
	{ NULL, "203.0.113.7", true, "-" },
};

static void
make_peer(const char *lit, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, lit, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, lit, &s6->sin6_addr), 1);
	s6->sin6_family = AF_INET6;
}

static void
test_client(void **state)
{
	struct sockaddr_storage	ss;
	char			out[PUBLIC_URL_CLIENT_MAX];

	(void)state;
	for (size_t i = 0; i < NELEM(client_cases); i++) {
		const struct client_case *c = &client_cases[i];

		if (c->peer != NULL)
			make_peer(c->peer, &ss);
		memset(out, 'Z', sizeof(out));
		public_url_client(c->peer != NULL ? (const struct sockaddr *)&ss : NULL,
		    c->xff, c->trust ? trusted : NULL, c->trust ? NELEM(trusted) : 0, out);
		if (strcmp(out, c->want) != 0)
			fail_msg("case %zu (peer %s, X-Forwarded-For \"%s\"): want %s, got %s",
			    i, c->peer ? c->peer : "none", c->xff ? c->xff : "(none)",
			    c->want, out);
	}
}

/* A peer of another family (a Unix socket, say) has no address to show. */
static void
test_client_other_family(void **state)
{
	struct sockaddr_storage	ss;
	char			out[PUBLIC_URL_CLIENT_MAX];

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	public_url_client((const struct sockaddr *)&ss, "203.0.113.7", trusted,
	    NELEM(trusted), out);
	assert_string_equal(out, "-");
	ss.ss_family = 0;
	public_url_client((const struct sockaddr *)&ss, NULL, NULL, 0, out);
	assert_string_equal(out, "-");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_host_length),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
