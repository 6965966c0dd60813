/*
 * store.h's contract, backend-neutral: the same cases run against a scratch
 * SQLite file and against a PostgreSQL database of their own (claims, stale
 * takeover, release, limits, redeem, PINs, the outbox, batches, purge,
 * users, probe). Then PostgreSQL across instances: two store handles (two
 * opens, as two daemons) and threads racing one claim, one token, one
 * limit and one outbox, and connections the server drops.
 * The PostgreSQL half needs TWHOOKD_TEST_PG_DSN (make unit starts a scratch
 * cluster and sets it); without it that half fails, it does not skip.
 * Raw SQL only plants what store.h cannot make (a dead process's RUNNING
 * record) or checks columns; the tables are the same on both engines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "scratch_store.h"
#include "store.h"

#define ROUTE		"/sms/reset"
#define STALE		60
#define T0		((int64_t)1700000000)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define RACERS		8	/* threads in each race, over two store handles */

enum engine { ENGINE_SQLITE, ENGINE_PG };

static enum engine	 engine;
static const char	*pg_base;	/* TWHOOKD_TEST_PG_DSN */
static unsigned		 pg_dbs;	/* databases made so far */

struct fx {
	struct scratch_store	 ss;		/* SQLite */
	char			 db[64];	/* PostgreSQL: the test's database */
	char			 dsn[512];
	struct store		*s;
};

/* A raw connection to the maintenance database or the test's. */
static PGconn *
pg_raw(const char *dsn)
{
	PGconn	*c = PQconnectdb(dsn);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	return c;
}

static void
pg_raw_exec(const char *dsn, const char *sql)
{
	PGconn		*c = pg_raw(dsn);
	PGresult	*r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static int
open_store(struct fx *f, struct store **out)
{
	const struct store_config cfg = { "postgresql", NULL, f->dsn };
	char	err[256];

	if (engine == ENGINE_SQLITE)
		return sqlite_store_open(f->ss.db, out, err, sizeof(err));
	if (store_open(&cfg, out, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));
	char		 sql[128];

	if (f == NULL)
		return -1;
	*state = f;
	if (engine == ENGINE_SQLITE)
		return scratch_store_open(&f->ss, "test_store_contract", &f->s);
	snprintf(f->db, sizeof(f->db), "contract_%d_%u", (int)getpid(), ++pg_dbs);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
	pg_raw_exec(pg_base, sql);
	/* In a libpq string a later keyword wins. */
	snprintf(f->dsn, sizeof(f->dsn), "%s dbname=%s", pg_base, f->db);
	return open_store(f, &f->s);
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		 sql[128];

	store_close(f->s);
	if (engine == ENGINE_SQLITE)
		scratch_store_remove(&f->ss);
	else {
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
		pg_raw_exec(pg_base, sql);
	}
	free(f);
	return 0;
}

/* Run sql on the test's database over a connection of its own. */
static void
db_exec(const struct fx *f, const char *sql)
{
	sqlite3	*h;

	if (engine == ENGINE_PG) {
		pg_raw_exec(f->dsn, sql);
		return;
	}
	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

/* The first column of the first row of sql: "NULL" for NULL, "" for none. */
static const char *
q(const struct fx *f, const char *sql, char out[256])
{
	sqlite3		*h;
	sqlite3_stmt	*st;
	PGconn		*c;
	PGresult	*r;

	out[0] = '\0';
	if (engine == ENGINE_PG) {
		c = pg_raw(f->dsn);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		if (PQntuples(r) > 0)
			snprintf(out, 256, "%s", PQgetisnull(r, 0, 0) ? "NULL" :
			    PQgetvalue(r, 0, 0));
		PQclear(r);
		PQfinish(c);
		return out;
	}
	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		snprintf(out, 256, "%s", t != NULL ? (const char *)t : "NULL");
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

#define assert_sql(f, sql, want) do {					\
	char	out_[256];						\
	assert_string_equal(q((f), (sql), out_), (want));		\
} while (0)

static void
hash_of(uint8_t h[STORE_HASH_BYTES], unsigned n)
{
	memset(h, 0x5a, STORE_HASH_BYTES);
	memcpy(h, &n, sizeof(n));
}

static struct store_claim
claim(struct store *s, const char *key, int64_t now)
{
	struct store_claim	c = { .user_id = BUF_INIT };

	assert_int_equal(store_claim(s, ROUTE, key, now, STALE, &c), 0);
	return c;
}

/* Claim key NEW and finish it with token n for user; the token's id. */
static int64_t
issue(struct store *s, const char *key, unsigned n, const char *user, int64_t now)
{
	struct store_claim	c = claim(s, key, now);
	uint8_t			h[STORE_HASH_BYTES];
	int64_t			id;
	int			lim;

	assert_int_equal(c.state, STORE_CLAIM_NEW);
	buf_free(&c.user_id);
	hash_of(h, n);
	assert_int_equal(store_reset_finish(s, ROUTE, key, 1, h, user, now + 900, now,
	    NULL, 0, &lim, &id), 0);
	assert_int_equal(lim, -1);
	assert_true(id > 0);
	return id;
}

/* Queue a PIN SMS for user through a claim of its own. */
static void
queue_pin(struct store *s, const char *key, const char *user, const char *phone,
    unsigned n, int64_t now)
{
	struct store_claim	c = { .user_id = BUF_INIT };
	uint8_t			h[STORE_HASH_BYTES];
	struct store_pin	p = { user, phone, h, now + 600, "Your code is 123456" };
	int			lim;

	assert_int_equal(store_claim(s, "/sms/pin", key, now, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	buf_free(&c.user_id);
	hash_of(h, n);
	assert_int_equal(store_pin_finish(s, "/sms/pin", key, 1, &p, now, NULL, 0,
	    &lim), 0);
}

static void
test_claim_new_then_done(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c;
	int64_t			 id1, id2;

	id1 = issue(f->s, "SMa", 1, "alice", T0);
	id2 = issue(f->s, "SMb", 2, "bob", T0 + 1);
	assert_true(id2 > id1);		/* arrival order */
	c = claim(f->s, "SMa", T0 + 5);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	assert_int_equal(c.outcome, 1);
	assert_int_equal(c.id, id1);
	assert_int_equal(c.first_at, T0);
	assert_string_equal(c.user_id.data, "alice");
	buf_free(&c.user_id);
	/* Another route, same key: its own record. */
	assert_int_equal(store_claim(f->s, "/sms/pin", "SMa", T0, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_claim_release(f->s, "/sms/pin", "SMa"), 0);
	buf_free(&c.user_id);
}

/* A process that died mid-webhook left its record RUNNING, committed. */
static void
test_claim_running_and_stale(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c;
	uint8_t			 h[STORE_HASH_BYTES];
	int64_t			 id;
	int			 lim;

	db_exec(f, "INSERT INTO webhooks (route, key, state, started_at)"
	    " VALUES ('/sms/reset', 'SMrun', 1, 1700000000)");
	c = claim(f->s, "SMrun", T0 + STALE - 1);
	assert_int_equal(c.state, STORE_CLAIM_RUNNING);
	c = claim(f->s, "SMrun", T0 + STALE);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	hash_of(h, 7);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SMrun", 3, h, "carol",
	    T0 + 999, T0 + STALE, NULL, 0, &lim, &id), 0);
	c = claim(f->s, "SMrun", T0 + 100);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	assert_int_equal(c.outcome, 3);
	assert_int_equal(c.id, id);
	assert_int_equal(c.first_at, T0 + STALE);	/* the takeover's */
	buf_free(&c.user_id);
}

static void
test_claim_release(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c;

	c = claim(f->s, "SMr", T0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SMr"), 0);
	assert_sql(f, "SELECT count(*) FROM webhooks", "0");
	c = claim(f->s, "SMr", T0 + 1);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SMr"), 0);
	/* A DONE record is never dropped. */
	(void)issue(f->s, "SMd", 1, "alice", T0);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SMd"), 0);
	c = claim(f->s, "SMd", T0 + 2);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	buf_free(&c.user_id);
	/* A finish without its claim fails and leaves nothing open. */
	{
		uint8_t	h[STORE_HASH_BYTES];
		int64_t	id;
		int	lim;

		hash_of(h, 9);
		assert_int_equal(store_reset_finish(f->s, ROUTE, "SMnone", 1, h, "x",
		    T0 + 900, T0, NULL, 0, &lim, &id), -1);
		assert_int_equal(id, 0);
		c = claim(f->s, "SMnone", T0);
		assert_int_equal(c.state, STORE_CLAIM_NEW);
		assert_int_equal(store_claim_release(f->s, ROUTE, "SMnone"), 0);
	}
}

struct limit_case {
	int64_t		 at;
	int		 limited_by;	/* -1: issued */
};

static void
test_limits(void **state)
{
	static const struct limit_case cases[] = {
		{ T0, -1 }, { T0 + 10, -1 }, { T0 + 20, 0 }, { T0 + 99, 0 },
		{ T0 + 100, -1 },	/* the window ended: a new one */
		{ T0 + 101, 1 },	/* the budget: 3 in 1000 s */
	};
	struct fx		*f = *state;
	struct store_limit	 lim[2] = { { "reset:+1555", 2, 100 },
				    { "outbound", 3, 1000 } };
	struct store_claim	 c;
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[16];
	int64_t			 id;
	int			 by;

	for (size_t i = 0; i < NELEM(cases); i++) {
		snprintf(key, sizeof(key), "SMl%zu", i);
		c = claim(f->s, key, cases[i].at);
		assert_int_equal(c.state, STORE_CLAIM_NEW);
		hash_of(h, (unsigned)i);
		assert_int_equal(store_reset_finish(f->s, ROUTE, key, 1, h, "alice",
		    cases[i].at + 900, cases[i].at, lim, 2, &by, &id), 0);
		assert_int_equal(by, cases[i].limited_by);
		assert_int_equal(id != 0, cases[i].limited_by == -1);
		c = claim(f->s, key, cases[i].at);
		assert_int_equal(c.state, STORE_CLAIM_DONE);
		assert_int_equal(c.outcome, cases[i].limited_by == -1 ? 1 :
		    STORE_OUTCOME_LIMITED);
		buf_free(&c.user_id);
	}
	/* Limited by the budget: the per-number window did not move. */
	assert_sql(f, "SELECT count FROM rate_limits WHERE key = 'reset:+1555'", "1");
	assert_sql(f, "SELECT count FROM rate_limits WHERE key = 'outbound'", "3");
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "3");
	/* A limit that is off counts nothing. */
	lim[0].limit = 0;
	c = claim(f->s, "SMoff", T0 + 103);
	hash_of(h, 99);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SMoff", 1, h, "alice",
	    T0 + 999, T0 + 103, lim, 1, &by, &id), 0);
	assert_int_equal(by, -1);
	buf_free(&c.user_id);
	/* Exhausted on a fresh key's neighbour: no row is left for the fresh one. */
	lim[0] = (struct store_limit){ "reset:+1666", 5, 100 };
	c = claim(f->s, "SMfresh", T0 + 104);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SMfresh", 1, h, "alice",
	    T0 + 999, T0 + 104, lim, 2, &by, &id), 0);
	assert_int_equal(by, 1);
	assert_sql(f, "SELECT count(*) FROM rate_limits WHERE key = 'reset:+1666'", "0");
	buf_free(&c.user_id);
}

static void
test_redeem(void **state)
{
	struct fx		*f = *state;
	uint8_t			 h[STORE_HASH_BYTES], wrong[STORE_HASH_BYTES];
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 r;
	int64_t			 id, id2;

	id = issue(f->s, "SMt", 1, "alice", T0);
	id2 = issue(f->s, "SMt2", 2, "bob", T0);
	hash_of(h, 1);
	hash_of(wrong, 2);
	assert_int_equal(store_token_redeem(f->s, id, wrong, T0 + 1, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	assert_int_equal(store_token_redeem(f->s, id + 1000, h, T0 + 1, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	assert_int_equal(store_token_redeem(f->s, id, h, T0 + 1, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_OK);
	assert_string_equal(uid.data, "alice");
	buf_reset(&uid);
	assert_int_equal(store_token_redeem(f->s, id, h, T0 + 2, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_SPENT);
	assert_int_equal(store_token_redeem(f->s, id, wrong, T0 + 2, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);	/* whatever the row's state */
	assert_int_equal(store_token_redeem(f->s, id2, wrong, T0 + 900, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_EXPIRED);
	assert_int_equal(store_token_redeem(f->s, id2, h, T0 + 900, &r, &uid), 0);
	assert_int_equal(r, STORE_REDEEM_UNKNOWN);
	assert_int_equal(uid.len, 0);
	buf_free(&uid);
}

struct pin_case {
	unsigned		 guess;
	int64_t			 at;
	enum store_pin_check	 want;
};

static void
test_pin_verify(void **state)
{
	static const struct pin_case cases[] = {
		{ 9, T0 + 1, STORE_PIN_WRONG }, { 9, T0 + 2, STORE_PIN_WRONG },
		{ 5, T0 + 3, STORE_PIN_OK },	/* spent */
		{ 5, T0 + 4, STORE_PIN_NONE },
	};
	static const struct pin_case locking[] = {
		{ 9, T0 + 1, STORE_PIN_WRONG }, { 9, T0 + 2, STORE_PIN_WRONG },
		{ 9, T0 + 3, STORE_PIN_WRONG },
		{ 6, T0 + 4, STORE_PIN_LOCKED },	/* right, but too late */
		{ 9, T0 + 5, STORE_PIN_LOCKED },
	};
	struct fx		*f = *state;
	uint8_t			 h[STORE_HASH_BYTES];
	struct buf		 uid = BUF_INIT;
	enum store_pin_check	 r;

	queue_pin(f->s, "SMp1", "alice", "+15550000001", 5, T0);
	for (size_t i = 0; i < NELEM(cases); i++) {
		hash_of(h, cases[i].guess);
		buf_reset(&uid);
		assert_int_equal(store_pin_verify(f->s, "+15550000001", h, 3,
		    cases[i].at, &r, &uid), 0);
		assert_int_equal(r, cases[i].want);
		if (r == STORE_PIN_OK)
			assert_string_equal(uid.data, "alice");
	}
	queue_pin(f->s, "SMp2", "bob", "+15550000002", 6, T0);
	for (size_t i = 0; i < NELEM(locking); i++) {
		hash_of(h, locking[i].guess);
		assert_int_equal(store_pin_verify(f->s, "+15550000002", h, 3,
		    locking[i].at, &r, &uid), 0);
		assert_int_equal(r, locking[i].want);
	}
	/* A new PIN replaces the dead one; an expired one is NONE. */
	queue_pin(f->s, "SMp3", "bob", "+15550000002", 7, T0 + 10);
	hash_of(h, 7);
	assert_int_equal(store_pin_verify(f->s, "+15550000002", h, 3, T0 + 610, &r,
	    &uid), 0);
	assert_int_equal(r, STORE_PIN_NONE);
	assert_int_equal(store_pin_verify(f->s, "+15550009999", h, 3, T0, &r, &uid), 0);
	assert_int_equal(r, STORE_PIN_NONE);
	buf_free(&uid);
}

static void
free_msgs(struct store_outbox_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_free_secret(&m[i].body);
}

static void
test_outbox(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[4];
	size_t			 n;
	int64_t			 depth;
	bool			 found;

	queue_pin(f->s, "SMo1", "alice", "+15550000001", 1, T0);
	queue_pin(f->s, "SMo2", "bob", "+15550000002", 2, T0 + 1);
	assert_int_equal(store_outbox_depth(f->s, &depth), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(store_outbox_lease(f->s, T0 + 1, 75, m, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_true(m[0].id < m[1].id);		/* oldest first */
	assert_string_equal(m[0].to, "+15550000001");
	assert_string_equal(m[0].body.data, "Your code is 123456");
	assert_int_equal(m[0].attempts, 1);
	assert_int_equal(m[0].expires_at, T0 + 600);
	free_msgs(m, n);
	/* Leased: nobody else gets them until the lease runs out. */
	assert_int_equal(store_outbox_lease(f->s, T0 + 2, 75, m, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_outbox_lease(f->s, T0 + 77, 75, m, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].attempts, 2);
	free_msgs(m, n);
	/* The first: sent; its body erased; callbacks only move forward. */
	assert_int_equal(store_outbox_sent(f->s, m[0].id, "SMsent1", T0 + 78), 0);
	assert_sql(f, "SELECT body IS NULL FROM outbox WHERE twilio_sid = 'SMsent1'",
	    engine == ENGINE_PG ? "t" : "1");
	assert_int_equal(store_outbox_delivery(f->s, "SMsent1", "delivered", 0, &found), 0);
	assert_true(found);
	assert_int_equal(store_outbox_delivery(f->s, "SMsent1", "sent", 0, &found), 0);
	assert_sql(f, "SELECT delivery_status FROM outbox WHERE twilio_sid = 'SMsent1'",
	    "delivered");
	assert_int_equal(store_outbox_delivery(f->s, "SMnope", "sent", 0, &found), 0);
	assert_false(found);
	/* The second: retried, then given up as expired. */
	assert_int_equal(store_outbox_lease(f->s, T0 + 200, 75, m, 4, &n), 0);
	assert_int_equal(n, 1);
	free_msgs(m, n);
	assert_int_equal(store_outbox_retry(f->s, m[0].id, T0 + 300, 503, 0), 0);
	assert_int_equal(store_outbox_lease(f->s, T0 + 299, 75, m, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_outbox_depth(f->s, &depth), 0);
	assert_int_equal(depth, 1);
	assert_int_equal(store_outbox_lease(f->s, T0 + 300, 75, m, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].attempts, 3);
	free_msgs(m, n);
	assert_int_equal(store_outbox_give_up(f->s, m[0].id, true, 0, 0, T0 + 301), 0);
	assert_int_equal(store_outbox_depth(f->s, &depth), 0);
	assert_int_equal(depth, 0);
	assert_sql(f, "SELECT status || ':' || coalesce(body, 'erased') FROM outbox"
	    " ORDER BY id DESC LIMIT 1", "expired:erased");
	/* A late retry from an expired lease never revives it. */
	assert_int_equal(store_outbox_retry(f->s, m[0].id, T0 + 400, 500, 0), 0);
	assert_sql(f, "SELECT status FROM outbox ORDER BY id DESC LIMIT 1", "expired");
}

/* Group commit: a job that fails is rolled back alone; the others commit. */
static void
test_batch(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c;
	struct store_pin	 p;
	uint8_t			 h[STORE_HASH_BYTES];
	int64_t			 id;
	int			 lim;

	hash_of(h, 1);
	assert_int_equal(store_batch_begin(f->s), 0);
	c = claim(f->s, "SMb1", T0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "SMb1", 1, h, "alice",
	    T0 + 900, T0, NULL, 0, &lim, &id), 0);
	c = claim(f->s, "SMb2", T0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	p = (struct store_pin){ "bob", "+1555000000000000000000000", h, T0 + 600, "x" };
	assert_int_equal(store_pin_finish(f->s, ROUTE, "SMb2", 1, &p, T0, NULL, 0,
	    &lim), -1);		/* a destination too long: this job fails */
	c = claim(f->s, "SMb3", T0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SMb3"), 0);
	assert_int_equal(store_batch_end(f->s), 0);
	c = claim(f->s, "SMb1", T0 + 1);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	assert_int_equal(c.id, id);
	buf_free(&c.user_id);
	for (size_t i = 0; i < 2; i++) {
		c = claim(f->s, i == 0 ? "SMb2" : "SMb3", T0 + 1);
		assert_int_equal(c.state, STORE_CLAIM_NEW);
		assert_int_equal(store_claim_release(f->s, ROUTE, i == 0 ? "SMb2" : "SMb3"), 0);
	}
	assert_sql(f, "SELECT count(*) FROM outbox", "0");
	buf_free(&c.user_id);
	/* A batch inside a batch is refused; the outer one still commits. */
	assert_int_equal(store_batch_begin(f->s), 0);
	assert_int_equal(store_batch_begin(f->s), -1);
	(void)issue(f->s, "SMb4", 4, "alice", T0);
	assert_int_equal(store_batch_end(f->s), 0);
	c = claim(f->s, "SMb4", T0 + 1);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	buf_free(&c.user_id);
}

static void
test_purge(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c;
	const int64_t		 keep = 30 * 86400;

	(void)issue(f->s, "SMold", 1, "alice", T0);
	queue_pin(f->s, "SMpin", "alice", "+15550000001", 1, T0);
	(void)issue(f->s, "SMnew", 2, "alice", T0 + keep);
	assert_int_equal(store_purge(f->s, T0 + keep + 10, keep), 0);
	c = claim(f->s, "SMold", T0 + keep + 11);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SMold"), 0);
	c = claim(f->s, "SMnew", T0 + keep + 11);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	buf_free(&c.user_id);
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "1");
	assert_sql(f, "SELECT count(*) FROM pins", "0");
	/* A pending message is never purged. */
	assert_sql(f, "SELECT count(*) FROM outbox", "1");
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
	struct fx		*f = *state;
	const struct store_user	 many[] = { { "+15550000003", "carol" },
				    { "+4915550000004", "dora" } };
	const struct store_user	 broken[] = { { "+15550000005", "erin" },
				    { "+15550000006", NULL } };
	struct listing		 l = { "", 0, 0 };
	struct buf		 uid = BUF_INIT;
	bool			 found, removed;

	assert_int_equal(store_user_add(f->s, "+15550000002", "bob"), 0);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	assert_int_equal(store_user_add(f->s, "+15550000002", "bobby"), 0);
	assert_int_equal(store_user_add_many(f->s, many, NELEM(many)), 0);
	assert_int_equal(store_user_add_many(f->s, broken, NELEM(broken)), -1);
	assert_int_equal(store_user_list(f->s, list_cb, &l), 0);
	assert_string_equal(l.text, "+15550000001 alice\n+15550000002 bobby\n"
	    "+15550000003 carol\n+4915550000004 dora\n");
	l = (struct listing){ "", 2, 0 };
	assert_int_equal(store_user_list(f->s, list_cb, &l), 0);
	assert_int_equal(l.calls, 2);
	assert_int_equal(store_user_lookup(f->s, "+15550000002", &uid, &found), 0);
	assert_true(found);
	assert_string_equal(uid.data, "bobby");
	assert_int_equal(store_user_lookup(f->s, "+15550000005", &uid, &found), 0);
	assert_false(found);	/* all or nothing */
	assert_int_equal(store_user_remove(f->s, "+15550000002", &removed), 0);
	assert_true(removed);
	assert_int_equal(store_user_remove(f->s, "+15550000002", &removed), 0);
	assert_false(removed);
	buf_free(&uid);
}

static void
test_probe(void **state)
{
	struct fx	*f = *state;
	char		 err[256];

	assert_int_equal(store_probe(f->s, err, sizeof(err)), 0);
	(void)issue(f->s, "SMpr", 1, "alice", T0);
	assert_int_equal(store_probe(f->s, err, sizeof(err)), 0);
}

/* --- PostgreSQL across instances --- */

struct race {
	struct store	*s[2];		/* two handles: two instances */
	pthread_barrier_t go;
	pthread_mutex_t	 mu;
	int64_t		 token_id;
	unsigned	 ok, done, running, other, failed;
	int64_t		 leased[64];
	size_t		 nleased;
};

static void
race_init(struct race *r, struct fx *f, unsigned threads)
{
	memset(r, 0, sizeof(*r));
	r->s[0] = f->s;
	assert_int_equal(open_store(f, &r->s[1]), 0);
	assert_int_equal(pthread_barrier_init(&r->go, NULL, threads), 0);
	assert_int_equal(pthread_mutex_init(&r->mu, NULL), 0);
}

struct racer {
	struct race	*r;
	unsigned	 i;
};

static void
race_run(struct race *r, void *(*fn)(void *), unsigned threads)
{
	pthread_t	t[RACERS];
	struct racer	arg[RACERS];

	assert_true(threads <= RACERS);
	for (unsigned i = 0; i < threads; i++) {
		arg[i].r = r;
		arg[i].i = i;
		assert_int_equal(pthread_create(&t[i], NULL, fn, &arg[i]), 0);
	}
	for (unsigned i = 0; i < threads; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&r->go);
	pthread_mutex_destroy(&r->mu);
	store_close(r->s[1]);
}

/* Every racer claims the same webhook; the one that gets NEW finishes it. */
static void *
claim_racer(void *arg)
{
	struct racer		*a = arg;
	struct store		*s = a->r->s[a->i % 2];
	struct store_claim	 c = { .user_id = BUF_INIT };
	uint8_t			 h[STORE_HASH_BYTES];
	int64_t			 id;
	int			 lim, rc;

	hash_of(h, 1);
	pthread_barrier_wait(&a->r->go);
	rc = store_claim(s, ROUTE, "SMrace", T0, STALE, &c);
	if (rc == 0 && c.state == STORE_CLAIM_NEW) {
		usleep(100 * 1000);	/* the others now wait on the claim */
		rc = store_reset_finish(s, ROUTE, "SMrace", 1, h, "alice", T0 + 900,
		    T0, NULL, 0, &lim, &id);
	}
	pthread_mutex_lock(&a->r->mu);
	if (rc == -1)
		a->r->failed++;
	else if (c.state == STORE_CLAIM_NEW) {
		a->r->ok++;
		a->r->token_id = id;
	} else if (c.state == STORE_CLAIM_DONE) {
		a->r->done++;
		if (c.id != a->r->token_id && a->r->token_id != 0)
			a->r->other++;
	} else
		a->r->running++;
	pthread_mutex_unlock(&a->r->mu);
	buf_free(&c.user_id);
	return NULL;
}

static void
test_pg_claim_race(void **state)
{
	struct fx	*f = *state;
	struct race	 r;

	race_init(&r, f, RACERS);
	race_run(&r, claim_racer, RACERS);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.done + r.running, RACERS - 1);
	assert_int_equal(r.other, 0);
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "1");
	assert_sql(f, "SELECT count(*) FROM webhooks", "1");
}

/* A dead process's stale claim, taken over by racers of both instances: once. */
static void
test_pg_takeover_race(void **state)
{
	struct fx	*f = *state;
	struct race	 r;

	db_exec(f, "INSERT INTO webhooks (route, key, state, started_at)"
	    " VALUES ('/sms/reset', 'SMrace', 1, 1699999000)");
	race_init(&r, f, RACERS);
	race_run(&r, claim_racer, RACERS);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.done + r.running, RACERS - 1);
	assert_int_equal(r.other, 0);
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "1");
	assert_sql(f, "SELECT started_at FROM webhooks", "1700000000");
}

static void *
redeem_racer(void *arg)
{
	struct racer		*a = arg;
	uint8_t			 h[STORE_HASH_BYTES];
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 res;
	int			 rc;

	hash_of(h, 1);
	pthread_barrier_wait(&a->r->go);
	rc = store_token_redeem(a->r->s[a->i % 2], a->r->token_id, h, T0 + 1, &res, &uid);
	pthread_mutex_lock(&a->r->mu);
	if (rc == -1)
		a->r->failed++;
	else if (res == STORE_REDEEM_OK)
		a->r->ok++;
	else if (res == STORE_REDEEM_SPENT)
		a->r->done++;
	else
		a->r->other++;
	pthread_mutex_unlock(&a->r->mu);
	buf_free(&uid);
	return NULL;
}

static void
test_pg_redeem_race(void **state)
{
	struct fx	*f = *state;
	struct race	 r;

	race_init(&r, f, RACERS);
	r.token_id = issue(f->s, "SMtok", 1, "alice", T0);
	race_run(&r, redeem_racer, RACERS);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.done, RACERS - 1);
}

/* Limit 1 on a key nobody used yet: exactly one finish gets through. */
static void *
limit_racer(void *arg)
{
	struct racer		*a = arg;
	struct store		*s = a->r->s[a->i % 2];
	struct store_limit	 lim = { "reset:+1777", 1, 3600 };
	struct store_claim	 c = { .user_id = BUF_INIT };
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[16];
	int64_t			 id = 0;
	int			 by = -1, rc;

	snprintf(key, sizeof(key), "SMlim%u", a->i);
	hash_of(h, a->i);
	pthread_barrier_wait(&a->r->go);
	rc = store_claim(s, ROUTE, key, T0, STALE, &c);
	if (rc == 0)
		rc = store_reset_finish(s, ROUTE, key, 1, h, "alice", T0 + 900, T0,
		    &lim, 1, &by, &id);
	pthread_mutex_lock(&a->r->mu);
	if (rc == -1)
		a->r->failed++;
	else if (by == -1)
		a->r->ok++;
	else
		a->r->done++;
	pthread_mutex_unlock(&a->r->mu);
	buf_free(&c.user_id);
	return NULL;
}

static void
test_pg_limit_race(void **state)
{
	struct fx	*f = *state;
	struct race	 r;

	race_init(&r, f, RACERS);
	race_run(&r, limit_racer, RACERS);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.done, RACERS - 1);
	assert_sql(f, "SELECT count FROM rate_limits WHERE key = 'reset:+1777'", "1");
}

/* Workers of both instances lease until the queue is empty. */
static void *
lease_racer(void *arg)
{
	struct racer		*a = arg;
	struct store		*s = a->r->s[a->i % 2];
	struct store_outbox_msg	 m[3];
	size_t			 n;

	pthread_barrier_wait(&a->r->go);
	for (int round = 0; round < 100; round++) {
		if (store_outbox_lease(s, T0 + 1, 75, m, NELEM(m), &n) == -1) {
			pthread_mutex_lock(&a->r->mu);
			a->r->failed++;
			pthread_mutex_unlock(&a->r->mu);
			break;
		}
		pthread_mutex_lock(&a->r->mu);
		for (size_t i = 0; i < n && a->r->nleased < NELEM(a->r->leased); i++)
			a->r->leased[a->r->nleased++] = m[i].id;
		pthread_mutex_unlock(&a->r->mu);
		free_msgs(m, n);
		if (n == 0)
			break;
	}
	return NULL;
}

static void
test_pg_lease_race(void **state)
{
	struct fx	*f = *state;
	struct race	 r;
	char		 key[16], user[16];

	for (unsigned i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "SMq%u", i);
		snprintf(user, sizeof(user), "u%u", i);
		queue_pin(f->s, key, user, "+15550000001", i, T0);
	}
	race_init(&r, f, RACERS);
	race_run(&r, lease_racer, RACERS);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.nleased, 40);
	for (size_t i = 0; i < r.nleased; i++)
		for (size_t j = i + 1; j < r.nleased; j++)
			assert_true(r.leased[i] != r.leased[j]);
	assert_sql(f, "SELECT count(*) FROM outbox WHERE attempts = 1"
	    " AND status = 'sending'", "40");
}

/*
 * Two instances' batches take two limit windows in opposite orders: the
 * server finds the deadlock (40P01) and fails one job; each batch still
 * commits its other work.
 */
struct deadlock_side {
	struct store		*s;
	pthread_barrier_t	*mid;
	const char		*first, *second;	/* limit keys, in order */
	const char		*tag;
	int			 rc[2], end;
};

static int
limited_finish(struct store *s, const char *key, const char *limit_key)
{
	struct store_limit	 lim = { limit_key, 100, 3600 };
	struct store_claim	 c = { .user_id = BUF_INIT };
	uint8_t			 h[STORE_HASH_BYTES];
	int64_t			 id;
	int			 by, rc;

	hash_of(h, 1);
	if ((rc = store_claim(s, ROUTE, key, T0, STALE, &c)) == 0)
		rc = store_reset_finish(s, ROUTE, key, 1, h, "alice", T0 + 900, T0,
		    &lim, 1, &by, &id);
	buf_free(&c.user_id);
	return rc;
}

static void *
deadlock_racer(void *arg)
{
	struct deadlock_side	*d = arg;
	char			 key[32];

	if (store_batch_begin(d->s) == -1) {
		d->end = -2;
		pthread_barrier_wait(d->mid);
		return NULL;
	}
	snprintf(key, sizeof(key), "SMdl-%s-1", d->tag);
	d->rc[0] = limited_finish(d->s, key, d->first);
	pthread_barrier_wait(d->mid);	/* both hold their first window */
	snprintf(key, sizeof(key), "SMdl-%s-2", d->tag);
	d->rc[1] = limited_finish(d->s, key, d->second);
	d->end = store_batch_end(d->s);
	return NULL;
}

static void
test_pg_deadlock_fails_one_job(void **state)
{
	struct fx		*f = *state;
	struct store		*s2;
	pthread_barrier_t	 mid;
	pthread_t		 t[2];
	struct deadlock_side	 d[2];

	assert_int_equal(open_store(f, &s2), 0);
	assert_int_equal(pthread_barrier_init(&mid, NULL, 2), 0);
	d[0] = (struct deadlock_side){ f->s, &mid, "k:a", "k:b", "a", { 0, 0 }, 0 };
	d[1] = (struct deadlock_side){ s2, &mid, "k:b", "k:a", "b", { 0, 0 }, 0 };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, deadlock_racer, &d[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&mid);
	store_close(s2);
	assert_int_equal(d[0].end, 0);
	assert_int_equal(d[1].end, 0);
	assert_int_equal(d[0].rc[0] + d[1].rc[0], 0);
	assert_int_equal(d[0].rc[1] + d[1].rc[1], -1);	/* exactly one victim */
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "3");
	assert_sql(f, "SELECT sum(count) FROM rate_limits", "3");
}

/*
 * The server drops every session (as a restart does): the next call on a
 * connection fails, the one after reconnects at once; the probe fails
 * until a write commits again.
 */
static void
test_pg_reconnect(void **state)
{
	struct fx	*f = *state;
	char		 sql[256], err[256];
	int		 rc;

	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	snprintf(sql, sizeof(sql), "SELECT count(pg_terminate_backend(pid))"
	    " FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()",
	    f->db);
	pg_raw_exec(f->dsn, sql);
	usleep(100 * 1000);
	rc = store_user_add(f->s, "+15550000002", "bob");
	if (rc == -1) {
		/* The probe now writes, on a fresh connection, and recovers. */
		assert_int_equal(store_user_add(f->s, "+15550000002", "bob"), 0);
	}
	assert_int_equal(store_probe(f->s, err, sizeof(err)), 0);
	(void)issue(f->s, "SMafter", 1, "alice", T0);
	assert_sql(f, "SELECT count(*) FROM users", "2");
}

/* A database written by a newer release is refused, and the DSN never echoed. */
static void
test_pg_open_errors(void **state)
{
	struct fx	*f = *state;
	struct store	*s = NULL;
	struct store_config cfg = { "postgresql", NULL, "host=127.0.0.1 password=hunter2 port" };
	char		 err[256];

	assert_int_equal(store_open(&cfg, &s, err, sizeof(err)), -1);
	assert_null(s);
	assert_null(strstr(err, "hunter2"));
	cfg.dsn = "host=127.0.0.1 port=1 password=hunter2 connect_timeout=2";
	assert_int_equal(store_open(&cfg, &s, err, sizeof(err)), -1);
	assert_null(strstr(err, "hunter2"));
	assert_non_null(strstr(err, "cannot connect"));
	db_exec(f, "UPDATE schema_version SET version = 99");
	cfg.dsn = f->dsn;
	assert_int_equal(store_open(&cfg, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "schema version 99"));
	db_exec(f, "UPDATE schema_version SET version = 1");
	assert_int_equal(store_open(&cfg, &s, err, sizeof(err)), 0);
	store_close(s);
	assert_sql(f, "SELECT count(*) FROM schema_version", "1");
}

/* Once the schema is in place, a role that may only read and write rows runs. */
static void
test_pg_dml_only_role(void **state)
{
	struct fx	*f = *state;
	struct store	*s = NULL;
	struct store_config cfg = { "postgresql", NULL, NULL };
	char		 sql[512], dsn[600], err[256];

	snprintf(sql, sizeof(sql), "CREATE ROLE %s_dml LOGIN;"
	    " REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
	    " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"
	    " TO %s_dml; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s_dml",
	    f->db, f->db, f->db);
	db_exec(f, sql);
	snprintf(dsn, sizeof(dsn), "%s user=%s_dml", f->dsn, f->db);
	cfg.dsn = dsn;
	if (store_open(&cfg, &s, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	(void)issue(s, "SMdml", 1, "alice", T0);
	assert_int_equal(store_user_add(s, "+15550000001", "alice"), 0);
	store_close(s);
	snprintf(sql, sizeof(sql), "DROP OWNED BY %s_dml; DROP ROLE %s_dml", f->db, f->db);
	db_exec(f, sql);
}

#define CONTRACT(t)	cmocka_unit_test_setup_teardown(t, setup, teardown)

static const struct CMUnitTest contract[] = {
	CONTRACT(test_claim_new_then_done),
	CONTRACT(test_claim_running_and_stale),
	CONTRACT(test_claim_release),
	CONTRACT(test_limits),
	CONTRACT(test_redeem),
	CONTRACT(test_pin_verify),
	CONTRACT(test_outbox),
	CONTRACT(test_batch),
	CONTRACT(test_purge),
	CONTRACT(test_users),
	CONTRACT(test_probe),
};

static const struct CMUnitTest pg_only[] = {
	CONTRACT(test_pg_claim_race),
	CONTRACT(test_pg_takeover_race),
	CONTRACT(test_pg_redeem_race),
	CONTRACT(test_pg_limit_race),
	CONTRACT(test_pg_lease_race),
	CONTRACT(test_pg_deadlock_fails_one_job),
	CONTRACT(test_pg_reconnect),
	CONTRACT(test_pg_open_errors),
	CONTRACT(test_pg_dml_only_role),
};

static int
use_sqlite(void **state)
{
	(void)state;
	engine = ENGINE_SQLITE;
	return 0;
}

static int
use_pg(void **state)
{
	(void)state;
	engine = ENGINE_PG;
	pg_base = getenv("TWHOOKD_TEST_PG_DSN");
	if (pg_base == NULL || pg_base[0] == '\0') {
		fprintf(stderr, "test_store_contract: TWHOOKD_TEST_PG_DSN is not set:"
		    " run it from make unit, which starts a scratch PostgreSQL"
		    " (scripts/pg-scratch start) and sets it\n");
		return -1;
	}
	return 0;
}

int
main(void)
{
	int	failed = 0;

	failed += cmocka_run_group_tests_name("contract on sqlite", contract,
	    use_sqlite, NULL);
	failed += cmocka_run_group_tests_name("contract on postgresql", contract,
	    use_pg, NULL);
	failed += cmocka_run_group_tests_name("postgresql across instances", pg_only,
	    use_pg, NULL);
	return failed;
}
