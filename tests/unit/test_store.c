/*
 * The SQLite backend against store.h, each test on a fresh database in its
 * own mkdtemp directory: the schema and query plans, users, idempotency
 * claims (one transaction from claim to finish, stale takeover, racing
 * threads), rate limits, single-use tokens found by their record's id
 * (including a redeem race), PINs, the outbox (including racing leasers), purge by id, and a process
 * killed mid-load. Tables are also read over a separate connection, as the
 * integration tests do.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "scratch_store.h"
#include "store.h"

#define ROUTE	"/sms/reset"
#define STALE	60
#define T0	((int64_t)1700000000)

struct fx {
	struct scratch_store	 ss;
	struct store	*s;
	unsigned	 queued;	/* messages enqueue() made */
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (scratch_store_open(&f->ss, "test_store", &f->s) == -1)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	store_close(f->s);
	scratch_store_remove(&f->ss);
	free(f);
	return 0;
}

static void
hash_of(uint8_t h[STORE_HASH_BYTES], unsigned n)
{
	memset(h, 0, STORE_HASH_BYTES);
	memcpy(h, &n, sizeof(n));
}

/*
 * The first column of the first row of sql on db, over a connection of its
 * own: "NULL" for NULL, "" for no row. Returns out.
 */
static const char *
q(const char *db, const char *sql, char out[256])
{
	sqlite3		*h;
	sqlite3_stmt	*st;

	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	out[0] = '\0';
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
	assert_string_equal(q((f)->ss.db, (sql), out_), (want));		\
} while (0)

/* Run sql over a connection of its own, committed when it returns. */
static void
db_exec(const struct fx *f, const char *sql)
{
	sqlite3	*h;

	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

/* A RUNNING record as a process that died mid-webhook leaves it: committed. */
static void
running_row(const struct fx *f, const char *route, const char *key,
    int64_t started_at)
{
	char	sql[256];

	snprintf(sql, sizeof(sql), "INSERT INTO webhooks (route, key, state,"
	    " started_at) VALUES ('%s', '%s', 1, %lld)", route, key,
	    (long long)started_at);
	db_exec(f, sql);
}

/* Does a transaction of the store hold the write lock? Asked without waiting. */
static bool
write_locked(const struct fx *f)
{
	sqlite3	*h;
	int	 rc;

	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	else
		assert_int_equal(rc, SQLITE_BUSY);
	sqlite3_close(h);
	return rc == SQLITE_BUSY;
}

static void
test_open_file_private_and_reopen(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	struct buf	 uid = BUF_INIT;
	bool		 found;
	char		 err[256];

	assert_int_equal(stat(f->ss.db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(store_probe(f->s, err, sizeof(err)), 0);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	store_close(f->s);
	assert_int_equal(sqlite_store_open(f->ss.db, &f->s, err, sizeof(err)), 0);
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
	assert_int_equal(sqlite3_open(f->ss.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sqlite_store_open(f->ss.db, &f->s, err, sizeof(err)), -1);
	assert_null(f->s);
	assert_non_null(strstr(err, "schema version 99"));
	assert_non_null(strstr(err, f->ss.db));
}

static void
test_open_error(void **state)
{
	struct store	*s;
	char		 err[256];

	(void)state;
	assert_int_equal(sqlite_store_open("/nonexistent/dir/x.db", &s, err, sizeof(err)), -1);
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

/*
 * store_reset_finish on ROUTE without limits; *token_id (unless NULL) gets
 * the token's id, which is never 0 for a token that went in, and always 0
 * otherwise.
 */
static int
reset_finish(struct store *s, const char *key, int outcome, const uint8_t *hash,
    const char *user_id, int64_t expires_at, int64_t now, int64_t *token_id)
{
	int64_t	id = -42;
	int	limited_by = -2;
	int	rc;

	rc = store_reset_finish(s, ROUTE, key, outcome, hash, user_id, expires_at,
	    now, NULL, 0, &limited_by, &id);
	if (rc == 0)
		assert_int_equal(limited_by, -1);
	if (rc == 0 && hash != NULL)
		assert_int_not_equal(id, 0);
	else
		assert_int_equal(id, 0);
	if (token_id != NULL)
		*token_id = id;
	return rc;
}

#define TAIL	0x80000000u	/* hash n but for its last byte, for redeem */

/* Redeem token id with hash n at now: the result, uid its user's on OK. */
static enum store_redeem
redeem(struct store *s, int64_t id, unsigned n, int64_t now, struct buf *uid)
{
	enum store_redeem	r;
	uint8_t			h[STORE_HASH_BYTES];

	hash_of(h, n & ~TAIL);
	if (n & TAIL)
		h[STORE_HASH_BYTES - 1] ^= 1;	/* the whole hash is compared */
	buf_reset(uid);
	assert_int_equal(store_token_redeem(s, id, h, now, &r, uid), 0);
	/* A refusal says nothing of whose token it was. */
	if (r != STORE_REDEEM_OK)
		assert_int_equal(uid->len, 0);
	return r;
}

static void
test_claim_finish(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[160];
	int64_t			 id1, id2, id3;

	hash_of(h, 1);
	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(c.id, 0);
	assert_int_equal(reset_finish(f->s, "SM1", 7, h, "alice",
	    T0 + 900, T0 + 2, &id1), 0);
	assert_true(id1 > 0);
	claim(f->s, "SM1", T0 + 3, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 7);
	assert_string_equal(c.user_id.data, "alice");
	/* The token's id is its record's: a replay can answer the same link. */
	assert_int_equal(c.id, id1);
	/* The first arrival is the claim's now, not the finish's. */
	assert_int_equal(c.first_at, T0);
	/* A replay long after still gets the record, never a new run. */
	claim(f->s, "SM1", T0 + 86400, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 7);
	assert_int_equal(c.id, id1);
	assert_int_equal(c.first_at, T0);
	/* Same key on another route is another webhook. */
	assert_int_equal(store_claim(f->s, "/sms/pin", "SM1", T0, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	assert_int_equal(c.id, 0);
	assert_int_equal(store_claim_release(f->s, "/sms/pin", "SM1"), 0);

	/* Unknown number: DONE without user or token. */
	claim(f->s, "SM2", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM2", 3, NULL, NULL,
	    0, T0, &id2), 0);
	assert_int_equal(id2, 0);
	claim(f->s, "SM2", T0 + 1, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 3);
	assert_int_equal(c.user_id.len, 0);
	assert_int_equal(c.first_at, T0);
	/* It has a record all the same, after SM1's: ids follow arrival. */
	assert_true(c.id > id1);
	id2 = c.id;

	/*
	 * A key too long for the connection to remember its fresh claim: the
	 * RUNNING row is written, and the finish updates it. Its token gets
	 * that row's id just the same.
	 */
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	hash_of(h, 3);
	claim(f->s, key, T0 + 2, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, key, 7, h, "carol", T0 + 900, T0 + 2,
	    &id3), 0);
	assert_true(id3 > id2);
	claim(f->s, key, T0 + 3, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.id, id3);
	assert_int_equal(c.first_at, T0 + 2);
	assert_int_equal(redeem(f->s, id3, 3, T0 + 4, &uid), STORE_REDEEM_OK);
	assert_string_equal(uid.data, "carol");
	buf_free(&c.user_id);
	buf_free(&uid);
}

/*
 * A NEW claim holds its transaction through the user lookup to the finish:
 * nobody else sees the RUNNING row, the finish commits all of it at once,
 * and DONE or RUNNING answers leave nothing open.
 */
static void
test_claim_one_transaction(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	bool			 found;
	uint8_t			 h[STORE_HASH_BYTES];

	hash_of(h, 1);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	assert_false(write_locked(f));
	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	assert_true(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks", "0");
	assert_int_equal(store_user_lookup(f->s, "+15550000001", &uid, &found), 0);
	assert_true(found);
	assert_string_equal(uid.data, "alice");
	assert_true(write_locked(f));
	assert_int_equal(reset_finish(f->s, "SM1", 1, h, uid.data, T0 + 900, T0,
	    NULL), 0);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT state || ' ' || outcome || ' ' || user_id FROM webhooks",
	    "2 1 alice");
	assert_sql(f, "SELECT user_id FROM reset_tokens", "alice");
	/* Committed together, under one id. */
	assert_sql(f, "SELECT count(*) FROM reset_tokens JOIN webhooks USING (id)", "1");

	claim(f->s, "SM1", T0 + 1, STORE_CLAIM_DONE, &c);
	assert_false(write_locked(f));
	running_row(f, ROUTE, "SM2", T0);
	claim(f->s, "SM2", T0 + 1, STORE_CLAIM_RUNNING, &c);
	assert_false(write_locked(f));
	buf_free(&c.user_id);
	buf_free(&uid);
}

/*
 * Group commit: claims and finishes between store_batch_begin and
 * store_batch_end are savepoints of one transaction. Nothing is visible
 * to others before the end; a duplicate within the batch reads its
 * first delivery's record; a failing or released webhook undoes only its
 * own work; the end commits the rest at once.
 */
static void
test_batch_group_commit(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	uint8_t			 h1[STORE_HASH_BYTES], h2[STORE_HASH_BYTES];
	int64_t			 id1, id2;

	hash_of(h1, 1);
	hash_of(h2, 2);
	assert_int_equal(store_batch_end(f->s), -1);	/* none open */
	assert_int_equal(store_batch_begin(f->s), 0);
	assert_int_equal(store_batch_begin(f->s), -1);	/* no nesting */
	assert_true(write_locked(f));
	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM1", 1, h1, "alice", T0 + 900, T0,
	    &id1), 0);
	assert_true(id1 > 0);
	assert_true(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks", "0");
	/* The same webhook again in the same batch: its record, not a second run. */
	claim(f->s, "SM1", T0, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 1);
	assert_string_equal(c.user_id.data, "alice");
	assert_int_equal(c.id, id1);
	/* A finish that fails rolls back its own claim only. */
	claim(f->s, "SM2", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM3", 1, h2, "bob", T0 + 900, T0,
	    NULL), -1);
	/* A released claim leaves nothing either. */
	claim(f->s, "SM4", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM4"), 0);
	claim(f->s, "SM5", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM5", 3, NULL, NULL, 0, T0, NULL), 0);
	assert_int_equal(store_batch_end(f->s), 0);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT group_concat(key || ':' || state || ':' || outcome, ' ')"
	    " FROM (SELECT * FROM webhooks ORDER BY key)", "SM1:2:1 SM5:2:3");
	assert_sql(f, "SELECT group_concat(user_id) FROM reset_tokens", "alice");
	/* The token committed under the id the batch handed out. */
	assert_sql(f, "SELECT count(*) FROM reset_tokens JOIN webhooks USING (id)"
	    " WHERE key = 'SM1'", "1");
	/* Outside a batch, each webhook commits on its own again. */
	claim(f->s, "SM2", T0 + 1, STORE_CLAIM_NEW, &c);
	assert_true(write_locked(f));
	assert_int_equal(reset_finish(f->s, "SM2", 1, h2, "bob", T0 + 900, T0 + 1,
	    &id2), 0);
	assert_true(id2 > id1);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "2");
	/* A batch with a claim left open: rolled back at the end, the rest kept. */
	assert_int_equal(store_batch_begin(f->s), 0);
	claim(f->s, "SM6", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM6", 3, NULL, NULL, 0, T0, NULL), 0);
	claim(f->s, "SM7", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_batch_end(f->s), 0);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks WHERE key IN ('SM6', 'SM7')", "1");
	claim(f->s, "SM7", T0 + 1, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM7"), 0);
	buf_free(&c.user_id);
}

static void
test_finish_needs_running_claim(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	uint8_t			 h[STORE_HASH_BYTES];

	hash_of(h, 2);
	/* Never claimed: nothing written, no token (reset_finish checks id 0). */
	assert_int_equal(reset_finish(f->s, "SM9", 1, h, "alice",
	    T0 + 900, T0, NULL), -1);
	assert_sql(f, "SELECT count(*) FROM reset_tokens", "0");
	assert_int_equal(redeem(f->s, 1, 2, T0, &uid), STORE_REDEEM_UNKNOWN);
	assert_int_equal(redeem(f->s, 0, 2, T0, &uid), STORE_REDEEM_UNKNOWN);
	/* Finished twice: the second changes nothing. */
	claim(f->s, "SM9", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM9", 1, NULL, NULL,
	    0, T0, NULL), 0);
	assert_int_equal(reset_finish(f->s, "SM9", 2, h, "alice",
	    T0 + 900, T0, NULL), -1);
	claim(f->s, "SM9", T0, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 1);
	assert_true(c.id > 0);
	assert_int_equal(redeem(f->s, c.id, 2, T0, &uid), STORE_REDEEM_UNKNOWN);
	assert_false(write_locked(f));
	/*
	 * A finish that fails inside the claim's transaction (here: another
	 * key, so no RUNNING claim to finish) rolls all of it back, the claim
	 * too, and leaves nothing open: the retry runs from scratch.
	 */
	claim(f->s, "SM8", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM7", 1, h, "alice", T0 + 900, T0,
	    NULL), -1);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks WHERE key = 'SM8'", "0");
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM8"), 0);
	claim(f->s, "SM8", T0 + 1, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM8", 4, NULL, NULL, 0, T0 + 1, NULL), 0);
	claim(f->s, "SM8", T0 + 2, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 4);
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
	struct buf		 uid = BUF_INIT;
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[16];
	int64_t			 id;

	for (size_t i = 0; i < sizeof(stale_cases) / sizeof(stale_cases[0]); i++) {
		snprintf(key, sizeof(key), "SM%zu", i);
		running_row(f, ROUTE, key, T0);
		claim(f->s, key, T0 + stale_cases[i].age, stale_cases[i].want, &c);
		if (c.state == STORE_CLAIM_NEW)
			assert_int_equal(store_claim_release(f->s, ROUTE, key), 0);
		assert_false(write_locked(f));
	}
	/* A released takeover leaves the dead run's record: still stale. */
	claim(f->s, "SM3", T0 + STALE * 10 + 1, STORE_CLAIM_NEW, &c);
	/* A finished one is answered from its record like any other... */
	hash_of(h, 3);
	assert_int_equal(reset_finish(f->s, "SM3", 6, h, "alice", T0 + 900,
	    T0 + STALE * 10 + 1, &id), 0);
	claim(f->s, "SM3", T0 + STALE * 10 + 2, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.outcome, 6);
	/* The run that finished it is the takeover: its claim is the first arrival. */
	assert_int_equal(c.first_at, T0 + STALE * 10 + 1);
	/* ...and its token has the dead run's record's id: no second record. */
	assert_true(id > 0);
	assert_int_equal(c.id, id);
	assert_sql(f, "SELECT count(*) FROM reset_tokens JOIN webhooks USING (id)"
	    " WHERE key = 'SM3'", "1");
	assert_int_equal(redeem(f->s, id, 3, T0 + 2, &uid), STORE_REDEEM_OK);
	buf_free(&c.user_id);
	buf_free(&uid);
}

static void
test_claim_release(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };

	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	assert_true(write_locked(f));
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM1"), 0);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks", "0");
	claim(f->s, "SM1", T0 + 1, STORE_CLAIM_NEW, &c);
	/* Release never drops a finished record. */
	assert_int_equal(reset_finish(f->s, "SM1", 5, NULL, NULL,
	    0, T0 + 1, NULL), 0);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM1"), 0);
	claim(f->s, "SM1", T0 + 2, STORE_CLAIM_DONE, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "nothing"), 0);
	/* With no transaction open it deletes a committed RUNNING record. */
	running_row(f, ROUTE, "SM2", T0);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM2"), 0);
	claim(f->s, "SM2", T0 + 1, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "SM2"), 0);
	assert_false(write_locked(f));
	buf_free(&c.user_id);
}

/* Issue hash n's token to user through a webhook claimed at T0: its id. */
static int64_t
issue(struct store *s, const char *key, unsigned n, const char *user,
    int64_t expires_at)
{
	struct store_claim	c = { .user_id = BUF_INIT };
	uint8_t			h[STORE_HASH_BYTES];
	int64_t			id;

	hash_of(h, n);
	claim(s, key, T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(s, key, 1, h, user,
	    expires_at, T0, &id), 0);
	assert_true(id > 0);
	/* A replay reads the id back from the record, to answer the same link. */
	claim(s, key, T0 + 1, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.id, id);
	buf_free(&c.user_id);
	return id;
}

/* test_redeem's tokens, by index into its ids[]. */
enum { TOK_SM1, TOK_SM2, TOK_NONE, TOK_COUNT };

struct redeem_case {
	unsigned		 tok;
	unsigned		 hash;
	int64_t			 now;
	enum store_redeem	 want;
	const char		*user;
};

static const struct redeem_case redeem_cases[] = {
	{ TOK_SM1, 1, T0 + 10, STORE_REDEEM_OK, "alice" },
	{ TOK_SM1, 1, T0 + 11, STORE_REDEEM_SPENT, NULL },
	{ TOK_SM1, 1, T0 + 10000, STORE_REDEEM_SPENT, NULL },	/* spent beats expired */
	/* A wrong hash learns nothing of the row its id names, spent or not. */
	{ TOK_SM1, 2, T0 + 12, STORE_REDEEM_UNKNOWN, NULL },
	{ TOK_SM1, 1 | TAIL, T0 + 12, STORE_REDEEM_UNKNOWN, NULL },
	{ TOK_SM2, 1, T0 + 10, STORE_REDEEM_UNKNOWN, NULL },	/* another token's */
	{ TOK_SM2, 2 | TAIL, T0 + 10, STORE_REDEEM_UNKNOWN, NULL },
	{ TOK_SM2, 3, T0 + 900, STORE_REDEEM_UNKNOWN, NULL },	/* nor expired */
	{ TOK_SM2, 2, T0 + 900, STORE_REDEEM_EXPIRED, NULL },	/* expires_at is exclusive */
	{ TOK_SM2, 2, T0 + 899, STORE_REDEEM_OK, "bob" },	/* wrong guesses spent nothing */
	{ TOK_NONE, 2, T0 + 10, STORE_REDEEM_UNKNOWN, NULL },	/* never issued */
	{ TOK_NONE, 3, T0 + 10, STORE_REDEEM_UNKNOWN, NULL },
};

static void
test_redeem(void **state)
{
	struct fx		*f = *state;
	struct buf		 uid = BUF_INIT;
	enum store_redeem	 r;
	int64_t			 ids[TOK_COUNT] = { 0 };

	issue(f->s, "SM3", 3, "carol", T0 + 900);		/* only under wrong ids */
	ids[TOK_SM1] = issue(f->s, "SM1", 1, "alice", T0 + 900);
	ids[TOK_SM2] = issue(f->s, "SM2", 2, "bob", T0 + 900);
	assert_true(ids[TOK_SM2] > ids[TOK_SM1]);		/* in arrival order */
	ids[TOK_NONE] = ids[TOK_SM2] + 1;			/* the next: none yet */
	for (size_t i = 0; i < sizeof(redeem_cases) / sizeof(redeem_cases[0]); i++) {
		const struct redeem_case *rc = &redeem_cases[i];

		r = redeem(f->s, ids[rc->tok], rc->hash, rc->now, &uid);
		if (r != rc->want)
			fail_msg("case %zu: got %d, want %d", i, r, rc->want);
		if (rc->user != NULL)
			assert_string_equal(uid.data, rc->user);
		else
			assert_int_equal(uid.len, 0);
	}
	buf_free(&uid);
}

/*
 * Purge deletes by id, the order of arrival: every row before the first
 * one still to keep. A row out of order (older than one before it) stays,
 * and keeps the ones after it: purge may keep a row too long, never delete
 * one to keep.
 */
static void
test_purge(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	const int64_t		 keep = 30 * 86400, now = T0 + keep + 100;
	const int64_t		 later = now + 2 * keep;
	int64_t			 old, smt, late;

	old = issue(f->s, "old", 1, "alice", T0 + 900);		/* finished at T0 */
	running_row(f, ROUTE, "abandoned", T0);			/* never finished */
	claim(f->s, "recent", now - 50, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "recent", 1, NULL, NULL,
	    0, now - 50, NULL), 0);
	running_row(f, ROUTE, "running", now - 10);
	/* Both started at T0, but arrived after "recent". */
	smt = issue(f->s, "SMt", 2, "bob", now - 3600);		/* expired an hour ago */
	late = issue(f->s, "late", 3, "carol", T0 + 900);	/* long ago, after SMt's */
	assert_int_equal(store_purge(f->s, now, keep), 0);

	assert_sql(f, "SELECT group_concat(key) FROM"
	    " (SELECT key FROM webhooks ORDER BY id)", "recent,running,SMt,late");
	claim(f->s, "old", now, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "old"), 0);
	claim(f->s, "abandoned", now, STORE_CLAIM_NEW, &c);
	assert_int_equal(store_claim_release(f->s, ROUTE, "abandoned"), 0);
	claim(f->s, "recent", now, STORE_CLAIM_DONE, &c);
	claim(f->s, "running", now, STORE_CLAIM_RUNNING, &c);
	claim(f->s, "SMt", now, STORE_CLAIM_DONE, &c);
	assert_int_equal(c.id, smt);
	assert_int_equal(redeem(f->s, old, 1, now, &uid), STORE_REDEEM_UNKNOWN);
	assert_int_equal(redeem(f->s, smt, 2, now, &uid), STORE_REDEEM_EXPIRED);
	assert_int_equal(redeem(f->s, late, 3, now, &uid), STORE_REDEEM_EXPIRED);

	/* Once all is old, all goes; and ids are never handed out again. */
	assert_int_equal(store_purge(f->s, later, keep), 0);
	assert_sql(f, "SELECT (SELECT count(*) FROM webhooks) || ' ' ||"
	    " (SELECT count(*) FROM reset_tokens)", "0 0");
	assert_true(issue(f->s, "next", 4, "alice", later + 900) > late);
	assert_int_equal(redeem(f->s, late, 3, later, &uid), STORE_REDEEM_UNKNOWN);

	/*
	 * A row stamped days ahead (a clock that ran ahead) holds nothing back:
	 * the old row after it goes, and it with them. An hour ahead is within
	 * the slack and holds the rows after it, as any row to keep does.
	 */
	running_row(f, ROUTE, "ahead", later + 3 * 86400);
	running_row(f, ROUTE, "old2", later - keep - 10);
	running_row(f, ROUTE, "recent2", later - 10);
	assert_int_equal(store_purge(f->s, later, keep), 0);
	assert_sql(f, "SELECT group_concat(key) FROM (SELECT key FROM webhooks"
	    " WHERE key <> 'next' ORDER BY id)", "recent2");
	running_row(f, ROUTE, "soon", later + 3600);
	running_row(f, ROUTE, "old3", later - keep - 10);
	assert_int_equal(store_purge(f->s, later + keep + 100, keep), 0);
	assert_sql(f, "SELECT group_concat(key) FROM (SELECT key FROM webhooks"
	    " WHERE key <> 'next' ORDER BY id)", "soon,old3");
	buf_free(&c.user_id);
	buf_free(&uid);
}

#define THREADS	8
#define ROUNDS	25

struct racer {
	struct store		*s;
	pthread_barrier_t	*barrier;
	char			 key[16];
	int64_t			 id;		/* the token race_redeem spends */
	int			 rc;
	enum store_claim_state	 state;
	enum store_redeem	 redeem;
	char			 user[16];
};

/* Claim, and run the webhook as a handler does when the claim is NEW. */
static void *
race_claim(void *arg)
{
	struct racer		*r = arg;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	const struct timespec	 work = { 0, 200000 };
	bool			 found;
	int64_t			 tid;
	int			 by;

	pthread_barrier_wait(r->barrier);
	r->rc = store_claim(r->s, ROUTE, r->key, T0, STALE, &c);
	r->state = c.state;
	if (r->rc == 0 && c.state == STORE_CLAIM_NEW) {
		nanosleep(&work, NULL);		/* the others pile up on the lock */
		r->rc = store_user_lookup(r->s, "+15550000001", &uid, &found);
		if (r->rc == 0)
			r->rc = store_reset_finish(r->s, ROUTE, r->key, 9, NULL,
			    uid.data, 0, T0, NULL, 0, &by, &tid);
	} else if (c.state == STORE_CLAIM_DONE) {
		snprintf(r->user, sizeof(r->user), "%d %s", c.outcome,
		    c.user_id.data != NULL ? c.user_id.data : "");
	}
	buf_free(&c.user_id);
	buf_free(&uid);
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
	r->rc = store_token_redeem(r->s, r->id, h, T0 + 1, &r->redeem, &uid);
	snprintf(r->user, sizeof(r->user), "%s", uid.data != NULL ? uid.data : "");
	buf_free(&uid);
	return NULL;
}

/* THREADS threads, each with its own connection, released together. */
static void
race(struct store *s, void *(*fn)(void *), const char *key, int64_t id,
    struct racer *r)
{
	pthread_barrier_t	barrier;
	pthread_t		th[THREADS];

	pthread_barrier_init(&barrier, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct racer){ .s = s, .barrier = &barrier, .id = id, .rc = -2 };
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
	const int	 base = conns_on(f->ss.db);

	/* This thread's connection and the checkpointer's. */
	assert_int_equal(base, 2);
	assert_int_equal(store_user_add(f->s, "+15550000001", "alice"), 0);
	for (int round = 0; round < ROUNDS; round++) {
		int fresh = 0, done = 0;

		snprintf(key, sizeof(key), "SM%d", round);
		race(f->s, race_claim, key, 0, r);
		/* Exactly one ran it; every duplicate waited and got its record. */
		for (int i = 0; i < THREADS; i++) {
			assert_int_equal(r[i].rc, 0);
			fresh += r[i].state == STORE_CLAIM_NEW;
			if (r[i].state == STORE_CLAIM_DONE) {
				done++;
				assert_string_equal(r[i].user, "9 alice");
			}
		}
		assert_int_equal(fresh, 1);
		assert_int_equal(done, THREADS - 1);
		/* Each racer's connection closed when its thread exited. */
		assert_int_equal(conns_on(f->ss.db), base);
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
		race(f->s, race_redeem, key, issue(f->s, key, round, "alice",
		    T0 + 900), r);
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

/* Every table's columns in order (integration tests read them), and its key. */
static const struct {
	const char	*table;
	const char	*columns;
	bool		 without_rowid;
} tables[] = {
	{ "users", "phone,user_id", true },
	{ "webhooks", "id,route,key,state,outcome,user_id,started_at,finished_at",
	    false },
	{ "reset_tokens", "id,hash,user_id,expires_at,used_at,created_at", false },
	{ "pins", "user_id,phone,hash,expires_at,attempts,created_at", false },
	{ "outbox", "id,to_phone,body,status,attempts,next_attempt_at,lease_until,"
	    "expires_at,twilio_sid,http_status,error_code,delivery_status,"
	    "created_at,sent_at", false },
	{ "rate_limits", "key,window_start,count", true },
	{ "health", "id,checked_at,pad", false },
};

static void
check_schema(const char *db)
{
	char	sql[256], out[256];

	assert_string_equal(q(db, "PRAGMA user_version", out), "1");
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT group_concat(name, ',') FROM"
		    " (SELECT name FROM pragma_table_info('%s') ORDER BY cid)",
		    tables[i].table);
		assert_string_equal(q(db, sql, out), tables[i].columns);
		snprintf(sql, sizeof(sql), "SELECT wr FROM pragma_table_list"
		    " WHERE name = '%s' AND schema = 'main'", tables[i].table);
		assert_string_equal(q(db, sql, out),
		    tables[i].without_rowid ? "1" : "0");
	}
	/* Only the indexes a query uses (test_query_plans). */
	assert_string_equal(q(db, "SELECT group_concat(name, ',') FROM (SELECT name"
	    " FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"
	    " ORDER BY name)", out),
	    "outbox_due,outbox_sid,pins_phone,webhooks_key");
	/* One webhook per (route, key). */
	assert_string_equal(q(db, "SELECT \"unique\" || ' ' || (SELECT group_concat(name)"
	    " FROM pragma_index_info('webhooks_key')) FROM pragma_index_list('webhooks')"
	    " WHERE name = 'webhooks_key'", out), "1 route,key");
	/* sqlite_sequence is AUTOINCREMENT's: ids are never reused. */
	assert_string_equal(q(db, "SELECT count(*) FROM sqlite_sequence"
	    " WHERE name <> 'webhooks'", out), "0");
}

static void
test_schema(void **state)
{
	struct fx *f = *state;

	check_schema(f->ss.db);
}

/*
 * The WAL stays bounded under a stream of commits: the checkpointer starts
 * it over past 2000 frames and journal_size_limit trims it to 8 MiB, so
 * 6000 one-page commits (24 MiB of frames) never leave a WAL near that.
 */
static void
test_wal_bounded(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	char		 wal[192], phone[32];
	off_t		 largest = 0;

	snprintf(wal, sizeof(wal), "%s-wal", f->ss.db);
	for (int i = 0; i < 6000; i++) {
		snprintf(phone, sizeof(phone), "+1555%07d", i);
		assert_int_equal(store_user_add(f->s, phone, "u"), 0);
		if (i % 100 == 0 && stat(wal, &st) == 0 && st.st_size > largest)
			largest = st.st_size;
	}
	assert_true(largest > 0);
	assert_true(largest <= (off_t)16 * 1024 * 1024);
}

/*
 * The lookups the backend makes (as store_sqlite.c spells them) find rows by
 * a key or an index, and each index serves one of them. Nothing on a
 * webhook's path scans or sorts. The purges of webhooks and reset_tokens
 * walk ids from the oldest to the first row to keep (the rows they delete,
 * and one more); those of pins and rate_limits scan: small tables, once an
 * hour.
 */
static const struct {
	const char	*sql;
	const char	*plan;		/* a substring of the plan's detail */
	const char	*scan;		/* the one SCAN it may do, or NULL */
} query_plans[] = {
	{ "SELECT user_id FROM users WHERE phone = ?1",
	    "SEARCH users USING PRIMARY KEY (phone=?)", NULL },
	{ "SELECT state, outcome, user_id, started_at, id FROM webhooks"
	    " WHERE route = ?1 AND key = ?2",
	    "SEARCH webhooks USING INDEX webhooks_key (route=? AND key=?)", NULL },
	{ "UPDATE webhooks SET started_at = ?3 WHERE route = ?1 AND key = ?2"
	    " AND state = 1",
	    "SEARCH webhooks USING INDEX webhooks_key (route=? AND key=?)", NULL },
	{ "UPDATE webhooks SET state = 2, outcome = ?3, user_id = ?4,"
	    " finished_at = ?5 WHERE route = ?1 AND key = ?2 AND state = 1"
	    " RETURNING id",
	    "SEARCH webhooks USING INDEX webhooks_key (route=? AND key=?)", NULL },
	{ "DELETE FROM webhooks WHERE id < coalesce((SELECT id FROM webhooks"
	    " WHERE started_at >= ?1 ORDER BY id LIMIT 1),"
	    " (SELECT max(id) + 1 FROM webhooks))",
	    "SEARCH webhooks USING INTEGER PRIMARY KEY (rowid<?)", "SCAN webhooks" },
	{ "SELECT hash, user_id, expires_at, used_at IS NOT NULL FROM reset_tokens"
	    " WHERE id = ?1",
	    "SEARCH reset_tokens USING INTEGER PRIMARY KEY (rowid=?)", NULL },
	{ "UPDATE reset_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
	    "SEARCH reset_tokens USING INTEGER PRIMARY KEY (rowid=?)", NULL },
	{ "DELETE FROM reset_tokens WHERE id < coalesce((SELECT id FROM reset_tokens"
	    " WHERE expires_at >= ?1 ORDER BY id LIMIT 1),"
	    " (SELECT max(id) + 1 FROM reset_tokens))",
	    "SEARCH reset_tokens USING INTEGER PRIMARY KEY (rowid<?)",
	    "SCAN reset_tokens" },
	{ "SELECT count FROM rate_limits WHERE key = ?1",
	    "SEARCH rate_limits USING PRIMARY KEY (key=?)", NULL },
	{ "SELECT rowid FROM pins WHERE phone = ?1 ORDER BY created_at DESC, rowid DESC",
	    "INDEX pins_phone (phone=?)", NULL },
	{ "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1",
	    "INDEX outbox_due (status=? AND next_attempt_at<?)", NULL },
	{ "SELECT id FROM outbox WHERE twilio_sid = ?1",
	    "INDEX outbox_sid (twilio_sid=?)", NULL },
};

static void
test_query_plans(void **state)
{
	struct fx	*f = *state;
	sqlite3		*h;
	sqlite3_stmt	*st;
	char		 sql[512];

	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	for (size_t i = 0; i < sizeof(query_plans) / sizeof(query_plans[0]); i++) {
		const char	*want_scan = query_plans[i].scan;
		bool		 found = false;

		snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", query_plans[i].sql);
		if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(h));
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *detail = (const char *)sqlite3_column_text(st, 3);

			found |= strstr(detail, query_plans[i].plan) != NULL;
			/* A scan (even of an index) or a sort is a walk of a table. */
			if ((strncmp(detail, "SCAN ", 5) == 0 && (want_scan == NULL ||
			    strcmp(detail, want_scan) != 0)) ||
			    strstr(detail, "TEMP B-TREE") != NULL)
				fail_msg("%s: \"%s\" in its plan", query_plans[i].sql,
				    detail);
		}
		sqlite3_finalize(st);
		if (!found)
			fail_msg("%s: no \"%s\" in its plan", query_plans[i].sql,
			    query_plans[i].plan);
	}
	sqlite3_close(h);
}

static const struct store_limit limit_defs[] = {
	{ "reset:+15550000001", 2, 100 },	/* 0 */
	{ "outbound", 3, 1000 },		/* 1 */
	{ "reset:+15550000002", 2, 10000 },	/* 2 */
	{ "reset:+15550000003", 0, 100 },	/* 3: off */
};

struct limit_step {
	int64_t		 at;
	size_t		 n;
	unsigned	 use[2];	/* indexes into limit_defs */
	int		 want;		/* limited_by */
};

static const struct limit_step limit_steps[] = {
	{ T0, 2, { 0, 1 }, -1 },
	{ T0 + 10, 2, { 0, 1 }, -1 },
	{ T0 + 20, 2, { 0, 1 }, 0 },		/* 0 exhausted; 1 not counted */
	{ T0 + 99, 2, { 1, 0 }, 1 },		/* the index in this call */
	{ T0 + 100, 2, { 0, 1 }, -1 },		/* 0's window ended: restarts */
	{ T0 + 110, 2, { 2, 1 }, 1 },		/* 1 exhausted; 2 not counted */
	{ T0 + 120, 2, { 3, 2 }, -1 },		/* 2 starts here */
	{ T0 + 1000, 2, { 2, 1 }, -1 },		/* 1 restarts; 2 at 2 */
	{ T0 + 1001, 2, { 3, 2 }, 1 },
	{ T0 + 1002, 1, { 3 }, -1 },		/* off: never limited */
	{ T0 + 1003, 1, { 3 }, -1 },
	{ T0 + 1004, 1, { 3 }, -1 },
};

static void
test_limits(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	struct store_limit	 lim[2];
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[16];
	int			 by;
	int64_t			 tid, prev = 0;

	for (size_t i = 0; i < sizeof(limit_steps) / sizeof(limit_steps[0]); i++) {
		const struct limit_step *st = &limit_steps[i];

		for (size_t j = 0; j < st->n; j++)
			lim[j] = limit_defs[st->use[j]];
		snprintf(key, sizeof(key), "SM%zu", i);
		hash_of(h, 100 + (unsigned)i);
		claim(f->s, key, st->at, STORE_CLAIM_NEW, &c);
		assert_int_equal(store_reset_finish(f->s, ROUTE, key, 1, h, "alice",
		    T0 + 5000, st->at, lim, st->n, &by, &tid), 0);
		if (by != st->want)
			fail_msg("step %zu: limited_by %d, want %d", i, by, st->want);
		/* A limited webhook is answered from its record, and issued nothing. */
		claim(f->s, key, st->at + 1, STORE_CLAIM_DONE, &c);
		assert_int_equal(c.outcome, st->want >= 0 ? STORE_OUTCOME_LIMITED : 1);
		assert_int_equal(tid, st->want >= 0 ? 0 : c.id);
		/* Its record has an id all the same, in arrival order. */
		assert_true(c.id > prev);
		prev = c.id;
		assert_int_equal(redeem(f->s, c.id, 100 + (unsigned)i, T0 + 1, &uid),
		    st->want >= 0 ? STORE_REDEEM_UNKNOWN : STORE_REDEEM_OK);
	}
	assert_sql(f, "SELECT group_concat(key || ' ' || (window_start - 1700000000)"
	    " || ' ' || count, ',') FROM (SELECT * FROM rate_limits ORDER BY key)",
	    "outbound 1000 1,reset:+15550000001 100 1,reset:+15550000002 120 2");
	buf_free(&c.user_id);
	buf_free(&uid);
}

#define PIN_ROUTE	"/sms/pin"
#define PIN_TTL		600
#define MAX_ATTEMPTS	3u

/* Claim key on PIN_ROUTE and issue a PIN expiring PIN_TTL after now. */
static int
pin_issue(struct store *s, const char *key, const char *user, const char *phone,
    unsigned hash, int64_t now, const struct store_limit *lim, size_t nlim)
{
	struct store_claim	c = { .user_id = BUF_INIT };
	uint8_t			h[STORE_HASH_BYTES];
	char			body[32];
	struct store_pin	p = { user, phone, h, now + PIN_TTL, body };
	int			by = -2;

	hash_of(h, hash);
	snprintf(body, sizeof(body), "code %u", hash);
	assert_int_equal(store_claim(s, PIN_ROUTE, key, now, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	buf_free(&c.user_id);
	assert_int_equal(store_pin_finish(s, PIN_ROUTE, key, 1, &p, now, lim, nlim,
	    &by), 0);
	return by;
}

static enum store_pin_check
pin_check(struct store *s, const char *phone, unsigned hash, int64_t now,
    struct buf *uid)
{
	enum store_pin_check	r;
	uint8_t			h[STORE_HASH_BYTES];

	hash_of(h, hash);
	buf_reset(uid);
	assert_int_equal(store_pin_verify(s, phone, h, MAX_ATTEMPTS, now, &r, uid), 0);
	return r;
}

static void
test_pin_finish(void **state)
{
	struct fx		*f = *state;
	struct buf		 uid = BUF_INIT;
	const struct store_limit lim = { "pin:+15550000001", 3, 3600 };

	/* The PIN and its SMS, together. */
	assert_int_equal(pin_issue(f->s, "SM1", "alice", "+15550000001", 1, T0,
	    &lim, 1), -1);
	assert_sql(f, "SELECT user_id || ' ' || phone || ' ' || length(hash) || ' '"
	    " || (expires_at - created_at) || ' ' || attempts FROM pins",
	    "alice +15550000001 32 600 0");
	assert_sql(f, "SELECT id || ' ' || to_phone || ' ' || body || ' ' || status"
	    " || ' ' || attempts || ' ' || (next_attempt_at - created_at) || ' '"
	    " || (expires_at - created_at) || ' ' || (lease_until IS NULL) FROM outbox",
	    "1 +15550000001 code 1 pending 0 0 600 1");
	/* A new PIN replaces the old one and its wrong guesses. */
	assert_int_equal(pin_check(f->s, "+15550000001", 9, T0 + 1, &uid),
	    STORE_PIN_WRONG);
	assert_int_equal(pin_issue(f->s, "SM2", "alice", "+15550000001", 2, T0 + 60,
	    &lim, 1), -1);
	assert_sql(f, "SELECT count(*) || ' ' || max(attempts) || ' '"
	    " || max(created_at - 1700000000) FROM pins", "1 0 60");
	assert_sql(f, "SELECT count(*) FROM outbox", "2");
	assert_int_equal(pin_check(f->s, "+15550000001", 1, T0 + 61, &uid),
	    STORE_PIN_WRONG);
	assert_int_equal(pin_check(f->s, "+15550000001", 2, T0 + 62, &uid),
	    STORE_PIN_OK);
	buf_free(&uid);
}

static void
test_pin_finish_all_or_nothing(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	uint8_t			 h[STORE_HASH_BYTES];
	const struct store_pin	 nouser = { NULL, "+15550000001", h, T0 + 600, "x" };
	const struct store_pin	 toolong = { "alice", "+1555000000100000000000000", h,
	    T0 + 600, "x" };
	const struct store_limit lim = { "pin:+15550000001", 2, 3600 };
	int			 by;

	assert_int_equal(pin_issue(f->s, "SM1", "alice", "+15550000001", 1, T0,
	    &lim, 1), -1);
	/* A failing insert undoes the whole finish: claim, counter, rows. */
	hash_of(h, 3);
	assert_int_equal(store_claim(f->s, PIN_ROUTE, "SM3", T0, STALE, &c), 0);
	assert_int_equal(store_pin_finish(f->s, PIN_ROUTE, "SM3", 1, &nouser, T0,
	    &lim, 1, &by), -1);
	assert_false(write_locked(f));
	assert_int_equal(store_claim(f->s, PIN_ROUTE, "SM3", T0 + 1, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_NEW);
	/* So does a destination too long for the outbox, checked before any write. */
	assert_int_equal(store_pin_finish(f->s, PIN_ROUTE, "SM3", 1, &toolong, T0,
	    &lim, 1, &by), -1);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT count(*) FROM webhooks WHERE key = 'SM3'", "0");
	assert_sql(f, "SELECT count FROM rate_limits", "1");
	assert_sql(f, "SELECT count(*) FROM outbox", "1");
	/* Never claimed: nothing at all. */
	assert_int_equal(store_pin_finish(f->s, PIN_ROUTE, "SM9", 1, &nouser, T0,
	    &lim, 1, &by), -1);

	/* Limited: the claim is answered, nothing queued, nothing counted. */
	assert_int_equal(pin_issue(f->s, "SM4", "alice", "+15550000001", 4, T0 + 70,
	    &lim, 1), -1);
	assert_int_equal(pin_issue(f->s, "SM5", "alice", "+15550000001", 5, T0 + 80,
	    &lim, 1), 0);
	assert_sql(f, "SELECT count FROM rate_limits", "2");
	assert_sql(f, "SELECT count(*) || ' ' || max(body) FROM outbox", "2 code 4");
	assert_int_equal(pin_check(f->s, "+15550000001", 4, T0 + 81, &uid),
	    STORE_PIN_OK);
	assert_int_equal(store_claim(f->s, PIN_ROUTE, "SM5", T0 + 81, STALE, &c), 0);
	assert_int_equal(c.state, STORE_CLAIM_DONE);
	assert_int_equal(c.outcome, STORE_OUTCOME_LIMITED);
	/* No PIN (an unknown number): the claim is done, nothing queued. */
	assert_int_equal(store_claim(f->s, PIN_ROUTE, "SM6", T0, STALE, &c), 0);
	assert_int_equal(store_pin_finish(f->s, PIN_ROUTE, "SM6", 0, NULL, T0 + 90,
	    NULL, 0, &by), 0);
	assert_int_equal(by, -1);
	assert_sql(f, "SELECT count(*) FROM outbox", "2");
	buf_free(&c.user_id);
	buf_free(&uid);
}

struct verify_step {
	const char		*phone;
	unsigned		 hash;
	int64_t			 now;
	enum store_pin_check	 want;
	const char		*user;
};

static const struct verify_step verify_steps[] = {
	{ "+15550000001", 7, T0 + 1, STORE_PIN_OK, "alice" },
	{ "+15550000001", 7, T0 + 2, STORE_PIN_NONE, NULL },	/* spent */
	{ "+15550000002", 9, T0 + 1, STORE_PIN_WRONG, NULL },
	{ "+15550000002", 9, T0 + 1, STORE_PIN_WRONG, NULL },
	{ "+15550000002", 9, T0 + 1, STORE_PIN_WRONG, NULL },
	{ "+15550000002", 8, T0 + 2, STORE_PIN_LOCKED, NULL },	/* even right */
	{ "+15550000002", 9, T0 + 2, STORE_PIN_LOCKED, NULL },
	{ "+15550000003", 5, T0 + PIN_TTL, STORE_PIN_NONE, NULL },	/* expired */
	{ "+15550000003", 5, T0 + 1, STORE_PIN_NONE, NULL },	/* and dropped */
	/* Two users on one phone: the newest PIN answers, then the other. */
	{ "+15550000004", 10, T0 + 6, STORE_PIN_WRONG, NULL },
	{ "+15550000004", 11, T0 + 6, STORE_PIN_OK, "erin" },
	{ "+15550000004", 10, T0 + 7, STORE_PIN_OK, "dave" },
	{ "+15550000009", 1, T0, STORE_PIN_NONE, NULL },
};

static void
test_pin_verify(void **state)
{
	struct fx		*f = *state;
	struct buf		 uid = BUF_INIT;
	enum store_pin_check	 r;

	assert_int_equal(pin_issue(f->s, "SM1", "alice", "+15550000001", 7, T0, NULL, 0), -1);
	assert_int_equal(pin_issue(f->s, "SM2", "bob", "+15550000002", 8, T0, NULL, 0), -1);
	assert_int_equal(pin_issue(f->s, "SM3", "carol", "+15550000003", 5, T0, NULL, 0), -1);
	assert_int_equal(pin_issue(f->s, "SM4", "dave", "+15550000004", 10, T0, NULL, 0), -1);
	assert_int_equal(pin_issue(f->s, "SM5", "erin", "+15550000004", 11, T0 + 5, NULL, 0), -1);
	for (size_t i = 0; i < sizeof(verify_steps) / sizeof(verify_steps[0]); i++) {
		const struct verify_step *st = &verify_steps[i];

		r = pin_check(f->s, st->phone, st->hash, st->now, &uid);
		if (r != st->want)
			fail_msg("step %zu: got %d, want %d", i, r, st->want);
		if (st->user != NULL)
			assert_string_equal(uid.data, st->user);
		else
			assert_int_equal(uid.len, 0);
	}
	/* Locked guesses are not counted; a new PIN unlocks. */
	assert_sql(f, "SELECT group_concat(user_id || ' ' || attempts) FROM pins",
	    "bob 3");
	assert_int_equal(pin_issue(f->s, "SM6", "bob", "+15550000002", 12, T0 + 10,
	    NULL, 0), -1);
	assert_int_equal(pin_check(f->s, "+15550000002", 12, T0 + 11, &uid),
	    STORE_PIN_OK);
	assert_string_equal(uid.data, "bob");
	buf_free(&uid);
}

/*
 * Queue n messages at now, for users u<k> with "code <k>" to +1555100<k>,
 * k counting from 0 in each test: row id k + 1.
 */
static void
enqueue(struct fx *f, unsigned n, int64_t now)
{
	char	key[16], user[16], phone[16];

	for (unsigned i = 0; i < n; i++, f->queued++) {
		snprintf(key, sizeof(key), "Q%u", f->queued);
		snprintf(user, sizeof(user), "u%u", f->queued);
		snprintf(phone, sizeof(phone), "+1555100%04u", f->queued % 10000);
		assert_int_equal(pin_issue(f->s, key, user, phone, f->queued, now,
		    NULL, 0), -1);
	}
}

#define LEASE	30
#define MSGS	16

static size_t
lease(struct store *s, int64_t now, size_t max, struct store_outbox_msg *m)
{
	size_t	n = 99;

	assert_true(max <= MSGS);
	assert_int_equal(store_outbox_lease(s, now, LEASE, m, max, &n), 0);
	assert_true(n <= max);
	return n;
}

static void
msgs_free(struct store_outbox_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_free_secret(&m[i].body);
}

static int64_t
depth(struct store *s)
{
	int64_t	d = -1;

	assert_int_equal(store_outbox_depth(s, &d), 0);
	return d;
}

static int
msg_cmp(const void *a, const void *b)
{
	const struct store_outbox_msg *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static void
test_outbox_lease(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];
	size_t			 n;
	char			 want[32];

	enqueue(f, 3, T0);
	assert_int_equal(depth(f->s), 3);
	assert_int_equal(lease(f->s, T0 - 1, MSGS, m), 0);	/* not due yet */
	assert_int_equal(lease(f->s, T0, 0, m), 0);
	/* Oldest first, up to max. */
	n = lease(f->s, T0, 2, m);
	assert_int_equal(n, 2);
	qsort(m, n, sizeof(m[0]), msg_cmp);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(m[i].id, (int64_t)i + 1);
		assert_int_equal(m[i].attempts, 1);
		assert_int_equal(m[i].expires_at, T0 + PIN_TTL);
		assert_int_equal(strncmp(m[i].to, "+1555100", 8), 0);
		assert_int_equal(strlen(m[i].to), 12);
		assert_non_null(m[i].body.data);
		assert_int_equal(strncmp(m[i].body.data, "code ", 5), 0);
	}
	snprintf(want, sizeof(want), "code %u", (unsigned)atoi(m[1].to + 8));
	assert_string_equal(m[1].body.data, want);
	msgs_free(m, n);
	assert_sql(f, "SELECT group_concat(status || ' ' || (lease_until - 1700000000))"
	    " FROM (SELECT * FROM outbox WHERE id <= 2 ORDER BY id)",
	    "sending 30,sending 30");
	/* Leased rows are not due again while their lease holds. */
	assert_int_equal(lease(f->s, T0, MSGS, m), 1);
	assert_int_equal(m[0].id, 3);
	msgs_free(m, 1);
	assert_int_equal(lease(f->s, T0 + 5, MSGS, m), 0);
	assert_int_equal(depth(f->s), 3);
}

static void
test_outbox_sent(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];

	enqueue(f, 1, T0);
	assert_int_equal(lease(f->s, T0, MSGS, m), 1);
	msgs_free(m, 1);
	assert_int_equal(store_outbox_sent(f->s, m[0].id, "SM0123", T0 + 5), 0);
	assert_sql(f, "SELECT status || ' ' || twilio_sid || ' ' || (sent_at - 1700000000)"
	    " || ' ' || quote(body) || ' ' || quote(lease_until) FROM outbox",
	    "sent SM0123 5 NULL NULL");
	assert_int_equal(depth(f->s), 0);
	assert_int_equal(lease(f->s, T0 + 100000, MSGS, m), 0);
	/* A late answer from an expired lease never revives a sent row. */
	assert_int_equal(store_outbox_retry(f->s, m[0].id, T0, 503, 0), 0);
	assert_int_equal(store_outbox_give_up(f->s, m[0].id, false, 400, 21211, T0), 0);
	assert_sql(f, "SELECT status || ' ' || quote(http_status) FROM outbox",
	    "sent NULL");
}

static void
test_outbox_retry(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];

	enqueue(f, 1, T0);
	assert_int_equal(lease(f->s, T0, MSGS, m), 1);
	msgs_free(m, 1);
	assert_int_equal(store_outbox_retry(f->s, m[0].id, T0 + 100, 429, 20429), 0);
	assert_sql(f, "SELECT status || ' ' || (next_attempt_at - 1700000000) || ' '"
	    " || http_status || ' ' || error_code || ' ' || quote(lease_until)"
	    " || ' ' || body FROM outbox", "pending 100 429 20429 NULL code 0");
	assert_int_equal(depth(f->s), 1);
	assert_int_equal(lease(f->s, T0 + 99, MSGS, m), 0);
	assert_int_equal(lease(f->s, T0 + 100, MSGS, m), 1);
	assert_int_equal(m[0].attempts, 2);
	assert_string_equal(m[0].body.data, "code 0");
	msgs_free(m, 1);
	/* No HTTP status (a network error) and no error code are NULL. */
	assert_int_equal(store_outbox_retry(f->s, m[0].id, T0 + 200, 0, 0), 0);
	assert_sql(f, "SELECT quote(http_status) || ' ' || quote(error_code)"
	    " FROM outbox", "NULL NULL");
}

struct give_up_case {
	bool		 expired;
	long		 http_status;
	int		 error_code;
	const char	*want;
};

static const struct give_up_case give_up_cases[] = {
	{ false, 400, 21211, "failed 400 21211 NULL NULL" },
	{ true, 0, 0, "expired NULL NULL NULL NULL" },
	{ false, 404, 0, "failed 404 NULL NULL NULL" },
};

static void
test_outbox_give_up(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];
	char			 sql[256];

	for (size_t i = 0; i < sizeof(give_up_cases) / sizeof(give_up_cases[0]); i++) {
		const struct give_up_case *gc = &give_up_cases[i];

		enqueue(f, 1, T0);
		assert_int_equal(lease(f->s, T0, MSGS, m), 1);
		msgs_free(m, 1);
		assert_int_equal(depth(f->s), 1);
		assert_int_equal(store_outbox_give_up(f->s, m[0].id, gc->expired,
		    gc->http_status, gc->error_code, T0 + 1), 0);
		assert_int_equal(depth(f->s), 0);
		snprintf(sql, sizeof(sql), "SELECT status || ' ' || quote(http_status)"
		    " || ' ' || quote(error_code) || ' ' || quote(body) || ' '"
		    " || quote(lease_until) FROM outbox WHERE id = %lld",
		    (long long)m[0].id);
		assert_sql(f, sql, gc->want);
		assert_int_equal(lease(f->s, T0 + 100000, MSGS, m), 0);
	}
}

static void
test_outbox_lease_expiry_survives_restart(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];
	char			 err[256];

	enqueue(f, 2, T0);
	assert_int_equal(lease(f->s, T0, 1, m), 1);
	msgs_free(m, 1);
	/* The worker died holding row 1: it is due again once its lease ran out. */
	assert_int_equal(lease(f->s, T0 + LEASE, 1, m), 1);
	assert_int_equal(m[0].id, 2);
	msgs_free(m, 1);
	assert_int_equal(lease(f->s, T0 + LEASE + 1, MSGS, m), 1);
	assert_int_equal(m[0].id, 1);
	assert_int_equal(m[0].attempts, 2);
	assert_string_equal(m[0].body.data, "code 0");
	msgs_free(m, 1);
	/* A restart voids no lease: another instance may hold it. */
	store_close(f->s);
	assert_int_equal(sqlite_store_open(f->ss.db, &f->s, err, sizeof(err)), 0);
	assert_int_equal(depth(f->s), 2);
	assert_int_equal(lease(f->s, T0 + LEASE + 1, MSGS, m), 0);
	assert_int_equal(lease(f->s, T0 + 2 * LEASE + 2, MSGS, m), 2);
	qsort(m, 2, sizeof(m[0]), msg_cmp);
	assert_int_equal(m[0].attempts, 3);
	assert_int_equal(m[1].attempts, 2);
	msgs_free(m, 2);
}

struct delivery_step {
	const char	*sid;
	const char	*status;
	int		 error_code;
	bool		 found;
	const char	*want;		/* delivery_status error_code of sid */
};

static const struct delivery_step delivery_steps[] = {
	{ "SMa", "queued", 0, true, "queued NULL" },
	{ "SMa", "sent", 0, true, "sent NULL" },
	{ "SMa", "delivered", 0, true, "delivered NULL" },
	{ "SMa", "sent", 0, true, "delivered NULL" },		/* arrived late */
	{ "SMa", "queued", 0, true, "delivered NULL" },
	{ "SMa", "undelivered", 30003, true, "delivered NULL" },	/* first final wins */
	{ "SMa", "read", 0, true, "read NULL" },
	{ "SMa", "no-such-status", 0, true, "read NULL" },
	{ "SMb", "sent", 0, true, "sent NULL" },
	{ "SMb", "undelivered", 30003, true, "undelivered 30003" },
	{ "SMb", "delivered", 0, true, "undelivered 30003" },
	{ "SMx", "delivered", 0, false, NULL },
	{ "SMx", "no-such-status", 0, false, NULL },
};

static void
test_outbox_delivery(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];
	char			 sql[256];
	bool			 found;

	enqueue(f, 2, T0);
	assert_int_equal(lease(f->s, T0, MSGS, m), 2);
	msgs_free(m, 2);
	assert_int_equal(store_outbox_sent(f->s, 1, "SMa", T0 + 1), 0);
	assert_int_equal(store_outbox_sent(f->s, 2, "SMb", T0 + 1), 0);
	for (size_t i = 0; i < sizeof(delivery_steps) / sizeof(delivery_steps[0]); i++) {
		const struct delivery_step *st = &delivery_steps[i];

		found = !st->found;
		assert_int_equal(store_outbox_delivery(f->s, st->sid, st->status,
		    st->error_code, &found), 0);
		if (found != st->found)
			fail_msg("step %zu: found %d", i, found);
		if (st->want == NULL)
			continue;
		snprintf(sql, sizeof(sql), "SELECT delivery_status || ' ' ||"
		    " quote(error_code) FROM outbox WHERE twilio_sid = '%s'", st->sid);
		assert_sql(f, sql, st->want);
	}
}

#define LEASERS	4
#define QUEUED	200

struct leaser {
	struct store		*s;
	pthread_barrier_t	*barrier;
	int64_t			 ids[QUEUED];
	size_t			 n;
	int			 rc;
	bool			 body_ok;
};

static void *
race_lease(void *arg)
{
	struct leaser		*l = arg;
	struct store_outbox_msg	 m[7];
	size_t			 n;

	l->body_ok = true;
	pthread_barrier_wait(l->barrier);
	do {
		if ((l->rc = store_outbox_lease(l->s, T0, 60, m, 7, &n)) == -1)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			if (l->n < QUEUED)
				l->ids[l->n] = m[i].id;
			l->n++;
			l->body_ok &= m[i].body.data != NULL &&
			    strncmp(m[i].body.data, "code ", 5) == 0;
			buf_free_secret(&m[i].body);
		}
	} while (n > 0);
	return NULL;
}

static void
test_concurrent_lease(void **state)
{
	struct fx		*f = *state;
	static struct leaser	 l[LEASERS];
	pthread_barrier_t	 barrier;
	pthread_t		 th[LEASERS];
	unsigned char		 seen[QUEUED + 1] = { 0 };
	size_t			 total = 0;

	enqueue(f, QUEUED, T0);
	pthread_barrier_init(&barrier, NULL, LEASERS);
	for (int i = 0; i < LEASERS; i++) {
		l[i] = (struct leaser){ .s = f->s, .barrier = &barrier, .rc = -2 };
		assert_int_equal(pthread_create(&th[i], NULL, race_lease, &l[i]), 0);
	}
	for (int i = 0; i < LEASERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&barrier);
	for (int i = 0; i < LEASERS; i++) {
		assert_int_equal(l[i].rc, 0);
		assert_true(l[i].body_ok);
		total += l[i].n;
		for (size_t j = 0; j < l[i].n && j < QUEUED; j++) {
			assert_in_range(l[i].ids[j], 1, QUEUED);
			seen[l[i].ids[j]]++;
		}
	}
	assert_int_equal(total, QUEUED);
	for (size_t id = 1; id <= QUEUED; id++)
		if (seen[id] != 1)
			fail_msg("row %zu leased %u times", id, seen[id]);
	assert_int_equal(depth(f->s), QUEUED);
}

static void
test_purge_pins_outbox_limits(void **state)
{
	struct fx		*f = *state;
	struct store_outbox_msg	 m[MSGS];
	struct store_claim	 c = { .user_id = BUF_INIT };
	const int64_t		 keep = 30 * 86400, now = T0 + keep + 100;
	const struct store_limit old = { "old", 5, 100 }, recent = { "recent", 5, 100 };
	int			 by;
	int64_t			 tid;

	/* Rows 1 and 2 at T0, 3 and 4 an hour ago. */
	assert_int_equal(pin_issue(f->s, "P1", "alice", "+15550000001", 1, T0, &old, 1), -1);
	assert_int_equal(pin_issue(f->s, "P2", "bob", "+15550000002", 2, T0, NULL, 0), -1);
	assert_int_equal(pin_issue(f->s, "P3", "carol", "+15550000003", 3, now - 3600,
	    &recent, 1), -1);
	assert_int_equal(pin_issue(f->s, "P4", "dave", "+15550000004", 4, now - 3600,
	    NULL, 0), -1);
	assert_int_equal(lease(f->s, now, MSGS, m), 4);
	msgs_free(m, 4);
	assert_int_equal(store_outbox_sent(f->s, 2, "SM2", T0), 0);
	assert_int_equal(store_outbox_sent(f->s, 3, "SM3", now - 3000), 0);
	assert_int_equal(store_outbox_give_up(f->s, 4, false, 400, 0, now - 3000), 0);
	assert_int_equal(store_purge(f->s, now, keep), 0);

	/* Finished and old goes; in flight stays however old. */
	assert_sql(f, "SELECT group_concat(id) FROM (SELECT id FROM outbox ORDER BY id)",
	    "1,3,4");
	/* Expired for more than a day goes. */
	assert_sql(f, "SELECT group_concat(user_id) FROM"
	    " (SELECT user_id FROM pins ORDER BY user_id)", "carol,dave");
	assert_sql(f, "SELECT group_concat(key) FROM rate_limits", "recent");
	/* A purged window starts afresh. */
	assert_int_equal(store_claim(f->s, ROUTE, "R1", now, STALE, &c), 0);
	assert_int_equal(store_reset_finish(f->s, ROUTE, "R1", 1, NULL, NULL, 0, now,
	    &old, 1, &by, &tid), 0);
	assert_int_equal(by, -1);
	assert_int_equal(tid, 0);
	assert_sql(f, "SELECT count FROM rate_limits WHERE key = 'old'", "1");
	buf_free(&c.user_id);
}

/*
 * A NEW claim left open by a bug: the next claim on that thread rolls it
 * back (logging it) rather than nesting in it or holding the lock forever.
 */
static void
test_claim_heals_leaked_transaction(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 c = { .user_id = BUF_INIT };

	claim(f->s, "SM1", T0, STORE_CLAIM_NEW, &c);
	claim(f->s, "SM2", T0, STORE_CLAIM_NEW, &c);
	assert_int_equal(reset_finish(f->s, "SM2", 1, NULL, NULL, 0, T0, NULL), 0);
	assert_false(write_locked(f));
	assert_sql(f, "SELECT group_concat(key) FROM webhooks", "SM2");
	buf_free(&c.user_id);
}

#define CRASH_USERS	50000	/* one transaction larger than the page cache */
#define CRASH_WEBHOOKS	4000	/* past SQ_CKPT_RESTART_BYTES of WAL: it starts over */

struct crash_writer {
	struct store	*s;
	char		(*phones)[16];
	unsigned	 first;		/* webhooks first, first + 2, ... */
	int		 rc;
};

static void *
crash_webhooks(void *arg)
{
	struct crash_writer	*w = arg;
	struct store_claim	 c = { .user_id = BUF_INIT };
	struct buf		 uid = BUF_INIT;
	uint8_t			 h[STORE_HASH_BYTES];
	char			 key[16];
	bool			 found;
	int			 by;
	int64_t			 tid;

	w->rc = 0;
	for (unsigned i = w->first; i < CRASH_WEBHOOKS && w->rc == 0; i += 2) {
		snprintf(key, sizeof(key), "SM%u", i);
		hash_of(h, i);
		buf_reset(&uid);
		if (store_claim(w->s, ROUTE, key, T0, STALE, &c) == -1 ||
		    c.state != STORE_CLAIM_NEW ||
		    store_user_lookup(w->s, w->phones[i * 7 % CRASH_USERS], &uid,
		    &found) == -1 || !found ||
		    store_reset_finish(w->s, ROUTE, key, 1, h, uid.data, T0 + 900,
		    T0, NULL, 0, &by, &tid) == -1 || tid <= 0)
			w->rc = 3;
	}
	buf_free(&c.user_id);
	buf_free(&uid);
	return NULL;
}

/*
 * In a child: write, from two threads (two connections taking turns at
 * starting the WAL over), then die without closing anything. 0 when every
 * write committed.
 */
static int
crash_child(const char *db)
{
	struct store		*s;
	struct store_user	*u = calloc(CRASH_USERS, sizeof(*u));
	char			(*phones)[16] = calloc(CRASH_USERS, 16);
	struct crash_writer	 w[2];
	pthread_t		 th[2];
	char			 err[256];

	if (u == NULL || phones == NULL || sqlite_store_open(db, &s, err, sizeof(err)) == -1)
		return 1;
	for (unsigned i = 0; i < CRASH_USERS; i++) {
		snprintf(phones[i], 16, "+1555%07u", i);
		u[i] = (struct store_user){ phones[i], "user" };
	}
	if (store_user_add_many(s, u, CRASH_USERS) == -1)
		return 2;
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct crash_writer){ s, phones, i, -1 };
		if (pthread_create(&th[i], NULL, crash_webhooks, &w[i]) != 0)
			return 4;
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	return w[0].rc != 0 ? w[0].rc : w[1].rc;
}

/*
 * Every commit survives the process dying (synchronous=NORMAL), whatever the
 * checkpointer was doing, and the WAL written through the backend's VFS
 * (frames gathered per commit, restarts, a transaction spilling pages) is
 * one SQLite's own recovery accepts: opening the database afterwards
 * rebuilds the WAL index from the frames, checking every checksum.
 */
static void
test_wal_survives_kill(void **state)
{
	char	dir[64], db[128], wal[140], out[256];
	pid_t	pid;
	int	status;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/crash.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	assert_true((pid = fork()) != -1);
	if (pid == 0)
		_exit(crash_child(db));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(wal, F_OK), 0);		/* left behind, not checkpointed away */

	assert_string_equal(q(db, "PRAGMA integrity_check", out), "ok");
	assert_string_equal(q(db, "SELECT count(*) FROM users", out), "50000");
	assert_string_equal(q(db, "SELECT count(*) FROM webhooks WHERE state = 2"
	    " AND user_id = 'user'", out), "4000");
	assert_string_equal(q(db, "SELECT count(*) FROM reset_tokens", out), "4000");
	/* Each token under its record's id; ids 1..4000, none lost or reused. */
	assert_string_equal(q(db, "SELECT count(*) || ' ' || min(id) || ' ' || max(id)"
	    " FROM reset_tokens JOIN webhooks USING (id)", out), "4000 1 4000");
	unlink(db);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", db);
	unlink(wal);
	rmdir(dir);
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
		T(test_claim_one_transaction),
		T(test_batch_group_commit),
		T(test_finish_needs_running_claim),
		T(test_claim_stale_takeover),
		T(test_claim_release),
		T(test_claim_heals_leaked_transaction),
		T(test_redeem),
		T(test_purge),
		T(test_concurrent_claims),
		T(test_concurrent_redeem),
		T(test_schema),
		T(test_wal_bounded),
		T(test_query_plans),
		T(test_limits),
		T(test_pin_finish),
		T(test_pin_finish_all_or_nothing),
		T(test_pin_verify),
		T(test_outbox_lease),
		T(test_outbox_sent),
		T(test_outbox_retry),
		T(test_outbox_give_up),
		T(test_outbox_lease_expiry_survives_restart),
		T(test_outbox_delivery),
		T(test_concurrent_lease),
		T(test_purge_pins_outbox_limits),
		cmocka_unit_test(test_wal_survives_kill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
