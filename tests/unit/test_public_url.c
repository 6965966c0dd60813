/*
 * public_url_client: the client address an access line shows. The peer,
 * unless it is a trusted proxy; then X-Forwarded-For walked from the right
 * past trusted proxies, each element an address literal or the whole header
 * is ignored. Table-driven; the trusted networks are fixed below.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "public_url.h"

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
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
