/*
 * store_sqlite.c against store.h, each test on a fresh database in its own
 * mkdtemp directory: users, idempotency claims (including stale takeover and
 * racing threads), single-use tokens (including a redeem race) and purge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

#define ROUTE	"/sms/reset"
#define STALE	60
#define T0	((int64_t)1700000000)

struct fx {
	char		 dir[64];
	char		 db[128];
	struct store	*s;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));
	char		 err[256];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/twhookd.db", f->dir);
	if (store_open(f->db, &f->s, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	DIR		*dp;
	struct dirent	*e;
	char		 p[512];

	store_close(f->s);
	if ((dp = opendir(f->dir)) != NULL) {
		while ((e = readdir(dp)) != NULL) {
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			if (e->d_name[0] != '.')
				unlink(p);
		}
		closedir(dp);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
hash_of(uint8_t h[STORE_HASH_BYTES], unsigned n)
{
	memset(h, 0, STORE_HASH_BYTES);
	memcpy(h, &n, sizeof(n));
}

static void
test_open_file_private_and_reopen(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	struct buf	 uid = BUF_INIT;
	bool		 found;
	char		 err[256];

	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(store_ping(f->s), 0);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	store_close(f->s);
	assert_int_equal(store_open(f->db, &f->s, err, sizeof(err)), 0);
	assert_int_equal(store_user_lookup(f->s, "+15550000001", &uid, &found), 0);
	assert_true(found);
	assert_string_equal(uid.data, "alice");
	buf_free(&uid);
}

static void
test_open_refuses_newer_schema(void **state)
{
	struct fx	*f = *state;
	sqlite3		*db;
	char		 err[256];

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->db, &f->s, err, sizeof(err)), -1);
	assert_null(f->s);
	assert_non_null(strstr(err, "schema version 99"));
	assert_non_null(strstr(err, f->db));
}

static void
test_open_error(void **state)
{
	struct store	*s;
	char		 err[256];

	(void)state;
	assert_int_equal(store_open("/nonexistent/dir/x.db", &s, err, sizeof(err)), -1);
	assert_null(s);
	assert_non_null(strstr(err, "/nonexistent/dir/x.db: "));
}

struct lookup_case {
	const char	*phone;
	const char	*user_id;	/* NULL: not found */
};

static void
check_lookups(struct store *s, const struct lookup_case *cases, size_t n)
{
	struct buf	uid = BUF_INIT;
	bool		found;

	for (size_t i = 0; i < n; i++) {
		buf_reset(&uid);
		assert_int_equal(store_user_lookup(s, cases[i].phone, &uid, &found), 0);
		assert_int_equal(found, cases[i].user_id != NULL);
		if (found)
			assert_string_equal(uid.data, cases[i].user_id);
	}
	buf_free(&uid);
}

struct listing {
	char	text[512];
	int	stop_after;	/* 0: never */
	int	calls;
};

static int
list_cb(void *arg, const char *phone, const char *user_id)
{
	struct listing	*l = arg;
	size_t		 n = strlen(l->text);

	snprintf(l->text + n, sizeof(l->text) - n, "%s %s\n", phone, user_id);
	return ++l->calls == l->stop_after;
}

static void
test_users(void **state)
{
	struct fx	*f = *state;
	struct listing	 l = { .stop_after = 0 };
	bool		 removed;
	static const struct lookup_case after[] = {
		{ "+15550000001", "alice" },
		{ "+15550000002", "bob2" },	/* add replaces */
		{ "+15550000003", NULL },	/* removed */
		{ "+15550000009", NULL },	/* never added */
	};

	assert_int_equal(store_user_add(f->s, "+15550000003", "carol"), 0);
	assert_int_equal(store_user_add(f->s, "+15550000002", "bob"), 0);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	assert_int_equal(store_user_add(f->s, "+15550000002", "bob2"), 0);
	assert_int_equal(store_user_remove(f->s, "+15550000003", &removed), 0);
	assert_true(removed);
	assert_int_equal(store_user_remove(f->s, "+15550000003", &removed), 0);
	assert_false(removed);
	check_lookups(f->s, after, sizeof(after) / sizeof(after[0]));

	assert_int_equal(store_user_list(f->s, list_cb, &l), 0);
	assert_string_equal(l.text, "+15550000001 alice\n+15550000002 bob2\n");
	l = (struct listing){ .stop_after = 1 };
	assert_int_equal(store_user_list(f->s, list_cb, &l), 0);
	assert_string_equal(l.text, "+15550000001 alice\n");
}

static void
test_users_add_many_atomic(void **state)
{
	struct fx	*f = *state;
	static const struct store_user good[] = {
		{ "+15550000001", "alice" }, { "+15550000002", "bob" },
	};
	static const struct store_user bad[] = {
		{ "+15550000001", "alice-new" }, { "+15550000003", "carol" },
		{ "+15550000004", NULL },	/* NOT NULL fails the batch */
	};
	static const struct lookup_case after[] = {
		{ "+15550000001", "alice" }, { "+15550000002", "bob" },
		{ "+15550000003", NULL }, { "+15550000004", NULL },
	};

	assert_int_equal(store_user_add_many(f->s, good, 2), 0);
	assert_int_equal(store_user_add_many(f->s, bad, 3), -1);
	check_lookups(f->s, after, sizeof(after) / sizeof(after[0]));
	/* The connection is usable after the rollback. */
	assert_int_equal(store_user_add_many(f->s, bad, 2), 0);
	assert_int_equal(store_user_add_many(f->s, NULL, 0), 0);
}

static void
claim(struct store *s, const char *key, int64_t now, enum store_claim_state want,
    struct store_claim *c)
{
	assert_int_equal(store_claim(s, ROUTE, key, now, STALE, c), 0);
	assert_int_equal(c->state, want);
}

static void
test_claim_finish(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	uint8_t			 h[STORE_HASH_BYTES];

	hash_of(h, 1);
	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	claim(f->s, "SM1", T0 + 1, STORE_CLAIM_RUNNING, &c);
	/* Same key on another route is another webhook. */
	assert_int_equal(store_claim(f->s, "/sms/pin", "SM1", T0, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM1", 7, h, "alice",
	    T0 + 900, T0 + 2), 0);
	claim(f->s, "SM1", T0 + 3, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 7);
	assert_string_equal(c.user_id.data, "alice");
	/* A replay long after still gets the record, never a new run. */
	claim(f->s, "SM1", T0 + 86400, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 7);

	/* Unknown number: DONE without user or token. */
	claim(f->s, "SM2", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM2", 3, NULL, NULL,
	    0, T0), 0);
	claim(f->s, "SM2", T0 + 1, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 3);
	assert_int_equal(c.user_id.len, 0);
	buf_free(&c.user_id);
}

static void
test_finish_needs_running_claim(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 r;
	uint8_t			 h[STORE_HASH_BYTES];

	hash_of(h, 2);
	/* Never claimed: nothing written, no token. */
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM9", 1, h, "alice",
	    T0 + 900, T0), -1);
	assert_int_equal(store_token_redeem(f->s, h, T0, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	/* Finished twice: the second changes nothing. */
	claim(f->s, "SM9", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM9", 1, NULL, NULL,
	    0, T0), 0);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM9", 2, h, "alice",
	    T0 + 900, T0), -1);
	claim(f->s, "SM9", T0, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 1);
	assert_int_equal(store_token_redeem(f->s, h, T0, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	buf_free(&c.user_id);
	buf_free(&uid);
}

struct stale_case {
	int64_t			 age;
	enum store_claim_state	 want;
};

static const struct stale_case stale_cases[] = {
	{ 0, STORE_CLAIM_RUNNING },
	{ STALE - 1, STORE_CLAIM_RUNNING },
	{ STALE, STORE_CLAIM_NEW },
	{ STALE * 10, STORE_CLAIM_NEW },
};

static void
test_claim_stale_takeover(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	char			 key[16];

	for (size_t i = 0; i < sizeof(stale_cases) / sizeof(stale_cases[0]); i++) {
		snprintf(key, sizeof(key), "SM%zu", i);
		claim(f->s, key, T0, STORE_CLAIM_NEW, &c);
		claim(f->s, key, T0 + stale_cases[i].age, stale_cases[i].want, &c);
	}
	/* A takeover restarts the clock: the next duplicate sees RUNNING. */
	claim(f->s, "SM3", T0 + STALE * 10 + 1, STORE_CLAIM_RUNNING, &c);
	buf_free(&c.user_id);
}

static void
test_claim_release(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };

	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM1"), 0);
	claim(f->s, "SM1", T0 + 1, STORE_CLAIM_NEW, &c);
	/* Release never drops a finished record. */
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SM1", 5, NULL, NULL,
	    0, T0 + 1), 0);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM1"), 0);
	claim(f->s, "SM1", T0 + 2, STORE_CLAIM_DONE, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "nothing"), 0);
	buf_free(&c.user_id);
}

static void
issue(struct store *s, const char *key, unsigned n, const char *user,
    int64_t expires_at)
{
	struct store_claim	c = { .user_id = BUF_INIT };
	uint8_t			h[STORE_HASH_BYTES];

	hash_of(h, n);
	claim(s, key, T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_reset_finish(s, ROUTE, key, 1, h, user,
	    expires_at, T0), 0);
	buf_free(&c.user_id);
}

struct redeem_case {
	unsigned		 hash;
	int64_t			 now;
	enum store_redeem	 want;
	const char		*user;
};

static const struct redeem_case redeem_cases[] = {
	{ 1, T0 + 10, STORE_REDEEM_OK, "alice" },
	{ 1, T0 + 11, STORE_REDEEM_SPENT, NULL },
	{ 1, T0 + 10000, STORE_REDEEM_SPENT, NULL },	/* spent beats expired */
	{ 2, T0 + 900, STORE_REDEEM_EXPIRED, NULL },	/* expires_at is exclusive */
	{ 2, T0 + 899, STORE_REDEEM_OK, "bob" },
	{ 3, T0 + 10, STORE_REDEEM_UNKNOWN, NULL },
};

static void
test_redeem(void **state)
{
	struct fx		*f = *state;
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 r;
	uint8_t			 h[STORE_HASH_BYTES];

	issue(f->s, "SM1", 1, "alice", T0 + 900);
	issue(f->s, "SM2", 2, "bob", T0 + 900);
	for (size_t i = 0; i < sizeof(redeem_cases) / sizeof(redeem_cases[0]); i++) {
		const struct redeem_case *rc = &redeem_cases[i];

		hash_of(h, rc->hash);
		buf_reset(&uid);
		assert_int_equal(store_token_redeem(f->s, h, rc->now, &r, &uid), 0);
		if (r != rc->want)
			fail_msg("case %zu: got %d, want %d", i, r, rc->want);
		if (rc->user != NULL)
			assert_string_equal(uid.data, rc->user);
		else
			assert_int_equal(uid.len, 0);
	}
	buf_free(&uid);
}

static void
test_purge(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 r;
	uint8_t			 h[STORE_HASH_BYTES];
	const int64_t		 keep = 30 * 86400, now = T0 + keep + 100;

	issue(f->s, "old", 1, "alice", T0 + 900);		/* finished at T0 */
	claim(f->s, "abandoned", T0, STORE_CLAIM_NEW, &c);	/* never finished */
	claim(f->s, "recent", now - 50, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "recent", 1, NULL, NULL,
	    0, now - 50), 0);
	claim(f->s, "running", now - 10, STORE_CLAIM_NEW, &c);
	issue(f->s, "SMt", 2, "bob", now - 3600);		/* expired an hour ago */
	assert_int_equal(store_purge(f->s, now, keep), 0);

	claim(f->s, "old", now, STORE_CLAIM_NEW, &c);
	claim(f->s, "abandoned", now, STORE_CLAIM_NEW, &c);
	claim(f->s, "recent", now, STORE_CLAIM_DONE, &c);
	claim(f->s, "running", now, STORE_CLAIM_RUNNING, &c);
	hash_of(h, 1);
	assert_int_equal(store_token_redeem(f->s, h, now, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	hash_of(h, 2);
	assert_int_equal(store_token_redeem(f->s, h, now, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_EXPIRED);
	buf_free(&c.user_id);
	buf_free(&uid);
}

#define THREADS	8
#define ROUNDS	25

struct racer {
	struct store		*s;
	pthread_barrier_t	*barrier;
	char			 key[16];
	int			 rc;
	enum store_claim_state	 state;
	enum store_redeem	 redeem;
	char			 user[16];
};

static void *
race_claim(void *arg)
{
	struct racer		*r = arg;
	struct store_claim	 c = { .user_id = BUF_INIT };

	pthread_barrier_wait(r->barrier);
	r->rc = store_claim(r->s, ROUTE, r->key, T0, STALE, &c);
	r->state = c.state;
	buf_free(&c.user_id);
	return NULL;
}

static void *
race_redeem(void *arg)
{
	struct racer	*r = arg;
	struct buf	 uid = BUF_INIT;
	uint8_t		 h[STORE_HASH_BYTES];

	hash_of(h, (unsigned)atoi(r->key + 2));
	pthread_barrier_wait(r->barrier);
	r->rc = store_token_redeem(r->s, h, T0 + 1, &r->redeem, &uid);
	snprintf(r->user, sizeof(r->user), "%s", uid.data != NULL ? uid.data : "");
	buf_free(&uid);
	return NULL;
}

/* THREADS threads, each with its own connection, released together. */
static void
race(struct store *s, void *(*fn)(void *), const char *key, struct racer *r)
{
	pthread_barrier_t	barrier;
	pthread_t		th[THREADS];

	pthread_barrier_init(&barrier, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct racer){ .s = s, .barrier = &barrier, .rc = -2 };
		snprintf(r[i].key, sizeof(r[i].key), "%s", key);
		assert_int_equal(pthread_create(&th[i], NULL, fn, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&barrier);
}

/*
 * Connections open on db, counted by their descriptors on its -wal file:
 * each connection has its own, closed with it. (Not the database file: the
 * unix VFS defers closing that one while other connections hold locks.)
 */
static int
conns_on(const char *db)
{
	DIR		*dp = opendir("/proc/self/fd");
	struct dirent	*e;
	char		 target[256];
	ssize_t		 n;
	int		 count = 0;
	char		 path[256];

	snprintf(path, sizeof(path), "%s-wal", db);
	assert_non_null(dp);
	while ((e = readdir(dp)) != NULL) {
		n = readlinkat(dirfd(dp), e->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		count += strcmp(target, path) == 0;
	}
	closedir(dp);
	return count;
}

static void
test_concurrent_claims(void **state)
{
	struct fx	*f = *state;
	struct racer	 r[THREADS];
	char		 key[16];

	assert_int_equal(conns_on(f->db), 1);	/* this thread's connection */
	for (int round = 0; round < ROUNDS; round++) {
		int fresh = 0, running = 0;

		snprintf(key, sizeof(key), "SM%d", round);
		race(f->s, race_claim, key, r);
		for (int i = 0; i < THREADS; i++) {
			assert_int_equal(r[i].rc, 0);
			fresh += r[i].state == STORE_CLAIM_NEW;
			running += r[i].state == STORE_CLAIM_RUNNING;
		}
		assert_int_equal(fresh, 1);
		assert_int_equal(running, THREADS - 1);
		/* Each racer's connection closed when its thread exited. */
		assert_int_equal(conns_on(f->db), 1);
	}
}

static void
test_concurrent_redeem(void **state)
{
	struct fx	*f = *state;
	struct racer	 r[THREADS];
	char		 key[16];

	for (unsigned round = 0; round < ROUNDS; round++) {
		int ok = 0, spent = 0;

		snprintf(key, sizeof(key), "SM%u", round);
		issue(f->s, key, round, "alice", T0 + 900);
		race(f->s, race_redeem, key, r);
		for (int i = 0; i < THREADS; i++) {
			assert_int_equal(r[i].rc, 0);
			if (r[i].redeem == STORE_REDEEM_OK) {
				ok++;
				assert_string_equal(r[i].user, "alice");
			} else {
				spent += r[i].redeem == STORE_REDEEM_SPENT;
				assert_string_equal(r[i].user, "");
			}
		}
		assert_int_equal(ok, 1);
		assert_int_equal(spent, THREADS - 1);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_file_private_and_reopen),
		T(test_open_refuses_newer_schema),
		cmocka_unit_test(test_open_error),
		T(test_users),
		T(test_users_add_many_atomic),
		T(test_claim_finish),
		T(test_finish_needs_running_claim),
		T(test_claim_stale_takeover),
		T(test_claim_release),
		T(test_redeem),
		T(test_purge),
		T(test_concurrent_claims),
		T(test_concurrent_redeem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
