/*
 * conn_table.c: admission against the total and the per-address limit (IPv4
 * and v4-mapped IPv6 count as one address, IPv6 by /64, exempt peers pass),
 * refusals counted, and the reaper shutting down a connection whose deadline
 * passed, never one whose request is complete.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "conn_table.h"
#include "metrics.h"

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* A connected pair: the table gets one end, the test watches the other. */
static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* Does the peer of a shut-down end read EOF within ms? */
static bool
peer_sees_eof(int fd, int ms)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	char		c;

	return poll(&pfd, 1, ms) == 1 && read(fd, &c, 1) == 0;
}

static void
test_per_ip_limit(void **state)
{
	static const struct {
		const char	*first, *other;
		bool		 same;	/* counted as one address */
	} cases[] = {
		{ "192.0.2.1", "192.0.2.1", true },
		{ "192.0.2.1", "::ffff:192.0.2.1", true },
		{ "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true },	/* same /64 */
		{ "2001:db8:1:2::1", "2001:db8:1:3::1", false },
		{ "192.0.2.1", "192.0.2.2", false },
	};
	struct metrics		 m;
	struct conn_table	*t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage	 a = addr(cases[i].first), b = addr(cases[i].other);
		struct conn		*c[2];
		int			 sv[2][2];

		memset(&m, 0, sizeof(m));
		assert_int_equal(conn_table_new("test", 100, 2, 60000, &m, &t), 0);
		for (int k = 0; k < 2; k++) {
			pair(sv[k]);
			assert_int_equal(conn_table_admit(t, SA(a), false), CONN_ADMIT_OK);
			assert_non_null(c[k] = conn_table_add(t, SA(a), sv[k][0]));
		}
		assert_int_equal(conn_table_admit(t, SA(b), false),
		    cases[i].same ? CONN_ADMIT_PER_IP : CONN_ADMIT_OK);
		/* A trusted proxy is never limited per address. */
		assert_int_equal(conn_table_admit(t, SA(b), true), CONN_ADMIT_OK);
		assert_int_equal(m.counter[METRIC_CONN_REFUSED_PER_IP], cases[i].same ? 1 : 0);
		conn_table_remove(t, c[0]);
		assert_int_equal(conn_table_admit(t, SA(b), false), CONN_ADMIT_OK);
		conn_table_remove(t, c[1]);
		conn_table_free(t);
		for (int k = 0; k < 2; k++) {
			close(sv[k][0]);
			close(sv[k][1]);
		}
	}
}

static void
test_total_limit(void **state)
{
	struct metrics		 m;
	struct conn_table	*t;
	struct sockaddr_storage	 a = addr("198.51.100.7");
	struct conn		*c[3];
	int			 sv[3][2];

	(void)state;
	memset(&m, 0, sizeof(m));
	assert_int_equal(conn_table_new("test", 3, 0, 60000, &m, &t), 0);
	for (int k = 0; k < 3; k++) {
		pair(sv[k]);
		assert_int_equal(conn_table_admit(t, SA(a), false), CONN_ADMIT_OK);
		assert_non_null(c[k] = conn_table_add(t, SA(a), sv[k][0]));
	}
	/* Exempt or not, the total holds. */
	assert_int_equal(conn_table_admit(t, SA(a), true), CONN_ADMIT_FULL);
	assert_int_equal(conn_table_admit(t, SA(a), false), CONN_ADMIT_FULL);
	assert_int_equal(m.counter[METRIC_CONN_REFUSED_FULL], 2);
	conn_table_remove(t, c[1]);
	assert_int_equal(conn_table_admit(t, SA(a), false), CONN_ADMIT_OK);
	/* Connections still open at free are released with the table. */
	conn_table_free(t);
	for (int k = 0; k < 3; k++) {
		close(sv[k][0]);
		close(sv[k][1]);
	}
}

static void
test_deadline_cuts_only_incomplete_requests(void **state)
{
	struct metrics		 m;
	struct conn_table	*t;
	struct sockaddr_storage	 a = addr("203.0.113.9");
	struct conn		*late, *done;
	int			 sv1[2], sv2[2];

	(void)state;
	memset(&m, 0, sizeof(m));
	assert_int_equal(conn_table_new("test", 10, 0, 100, &m, &t), 0);
	pair(sv1);
	pair(sv2);
	assert_non_null(late = conn_table_add(t, SA(a), sv1[0]));
	assert_non_null(done = conn_table_add(t, SA(a), sv2[0]));
	conn_request_complete(done);
	/* The reaper ticks every 250 ms: cut well within 2 s. */
	assert_true(peer_sees_eof(sv1[1], 2000));
	assert_true(conn_was_cut(late));
	assert_false(conn_was_cut(done));
	assert_false(peer_sees_eof(sv2[1], 400));
	assert_int_equal(m.counter[METRIC_CONN_DEADLINE], 1);
	/* An answer re-arms it: the next request has the deadline again. */
	conn_answer_sent(t, done);
	assert_true(peer_sees_eof(sv2[1], 2000));
	assert_true(conn_was_cut(done));
	conn_table_remove(t, late);
	conn_table_remove(t, done);
	conn_table_free(t);
	close(sv1[0]);
	close(sv1[1]);
	close(sv2[0]);
	close(sv2[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_ip_limit),
		cmocka_unit_test(test_total_limit),
		cmocka_unit_test(test_deadline_cuts_only_incomplete_requests),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
