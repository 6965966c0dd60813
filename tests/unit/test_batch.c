/*
 * batch.c against a real store: queued webhooks run in one transaction and
 * are resumed only after it commits; a store call waits for its batch; a
 * posted write learns whether its batch committed; a batch that cannot
 * begin fails every webhook and call in it; after batch_stop everything
 * runs inline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "batch.h"
#include "scratch_store.h"

#define ROUTE	"/sms/reset"
#define NREQ	5

struct fx {
	struct scratch_store	 ss;
	struct store	*s;
	struct batch	*b;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	unsigned	 resumed;	/* under mu */
	unsigned	 failed;
	bool		 committed_at_resume[NREQ];
	struct request	 reqs[NREQ];
	struct reply	 replies[NREQ];
};

/* Rows in webhooks, over a connection of the test's own (what is committed). */
static int
committed_rows(const struct fx *f)
{
	sqlite3		*h;
	sqlite3_stmt	*st;
	int		 n = -1;

	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM webhooks", -1, &st,
	    NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/* ops->run: claim and finish the request's MessageSid, as a handler would. */
static void
op_run(void *arg, struct request *req, struct reply *reply)
{
	struct fx		*f = arg;
	struct store_claim	 c = { .user_id = BUF_INIT };
	int			 limited_by;
	int64_t			 token_id;

	if (store_claim(f->s, ROUTE, req->message_sid, 1700000000, 60, &c) == 0 &&
	    c.state == STORE_CLAIM_NEW &&
	    store_reset_finish(f->s, ROUTE, req->message_sid, 0, NULL, NULL, 0,
	    1700000000, NULL, 0, &limited_by, &token_id) == 0)
		reply->status = 200;
	else
		reply->status = 500;
	buf_free(&c.user_id);
}

static void
op_fail(void *arg, struct request *req, struct reply *reply)
{
	struct fx *f = arg;

	(void)req;
	reply->status = 503;
	pthread_mutex_lock(&f->mu);
	f->failed++;
	pthread_mutex_unlock(&f->mu);
}

static struct fx *the_fx;	/* ops->resume gets only the request */

/* ops->resume: the reply must be final, and its record committed, by now. */
static void
resume_record(struct request *req)
{
	struct fx	*f = the_fx;
	size_t		 i = (size_t)(req - f->reqs);

	f->committed_at_resume[i] = f->replies[i].status != 200 ||
	    committed_rows(f) > 0;
	pthread_mutex_lock(&f->mu);
	f->resumed++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void
wait_resumed(struct fx *f, unsigned n)
{
	pthread_mutex_lock(&f->mu);
	while (f->resumed < n)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

static int
setup(void **state)
{
	struct fx		*f = calloc(1, sizeof(*f));
	struct batch_ops	 ops = { op_run, op_fail, resume_record, NULL };

	if (f == NULL)
		return -1;
	if (scratch_store_open(&f->ss, "test_batch", &f->s) == -1)
		return -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	for (size_t i = 0; i < NREQ; i++)
		snprintf(f->reqs[i].message_sid, sizeof(f->reqs[i].message_sid),
		    "SM%032zx", i);
	ops.arg = f;
	the_fx = f;
	if (batch_start(f->s, &ops, &f->b) == -1)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	batch_free(f->b);
	store_close(f->s);
	scratch_store_remove(&f->ss);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

static void
test_webhooks_resumed_after_commit(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < NREQ; i++)
		batch_submit(f->b, &f->reqs[i], &f->replies[i]);
	wait_resumed(f, NREQ);
	for (size_t i = 0; i < NREQ; i++) {
		assert_int_equal(f->replies[i].status, 200);
		assert_true(f->committed_at_resume[i]);
	}
	assert_int_equal(committed_rows(f), NREQ);
	assert_int_equal(f->failed, 0);
}

/* A store call from another thread: its write is committed when it returns. */
static void
call_add_user(void *arg)
{
	int *rc = arg;

	*rc = store_user_add(the_fx->s, "+15550000001", "alice");
}

struct post_result {
	int	rc;
	int	after_calls;
	bool	committed;
};

static void
post_add_user(void *arg)
{
	struct post_result *r = arg;

	r->rc = store_user_add(the_fx->s, "+15550000002", "bob");
}

static void
post_after(void *arg, bool committed)
{
	struct post_result *r = arg;

	r->after_calls++;
	r->committed = committed;
	pthread_mutex_lock(&the_fx->mu);
	pthread_cond_broadcast(&the_fx->cv);
	pthread_mutex_unlock(&the_fx->mu);
}

static void
test_call_and_post(void **state)
{
	struct fx		*f = *state;
	struct post_result	 r = { -1, 0, false };
	struct buf		 uid = BUF_INIT;
	bool			 found;
	int			 rc = -1;

	assert_int_equal(batch_call(f->b, call_add_user, &rc), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(store_user_lookup(f->s, "+15550000001", &uid, &found), 0);
	assert_true(found);
	assert_int_equal(batch_post(f->b, post_add_user, post_after, &r), 0);
	pthread_mutex_lock(&f->mu);
	while (r.after_calls == 0)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(r.rc, 0);
	assert_true(r.committed);
	assert_int_equal(r.after_calls, 1);
	buf_reset(&uid);
	assert_int_equal(store_user_lookup(f->s, "+15550000002", &uid, &found), 0);
	assert_true(found);
	buf_free(&uid);
}

/*
 * Another process holds the write lock past the busy timeout: the batch
 * cannot begin, so every webhook in it fails (503, retried by Twilio) and
 * a waiting call hears its write did not happen; nothing was written.
 */
static void
test_batch_that_cannot_begin_fails_all(void **state)
{
	struct fx	*f = *state;
	sqlite3		*h;
	int		 rc = -1;

	assert_int_equal(sqlite3_open_v2(f->ss.db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (size_t i = 0; i < 2; i++)
		batch_submit(f->b, &f->reqs[i], &f->replies[i]);
	assert_int_equal(batch_call(f->b, call_add_user, &rc), -1);
	wait_resumed(f, 2);
	assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(f->replies[0].status, 503);
	assert_int_equal(f->replies[1].status, 503);
	assert_int_equal(f->failed, 2);
	assert_int_equal(committed_rows(f), 0);
}

/* After batch_stop, submits, calls and posts run on the caller's thread. */
static void
test_after_stop_runs_inline(void **state)
{
	struct fx		*f = *state;
	struct post_result	 r = { -1, 0, false };
	int			 rc = -1;

	batch_stop(f->b);
	batch_submit(f->b, &f->reqs[0], &f->replies[0]);
	assert_int_equal(f->resumed, 1);	/* already, on this thread */
	assert_int_equal(f->replies[0].status, 200);
	assert_int_equal(batch_call(f->b, call_add_user, &rc), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(batch_post(f->b, post_add_user, post_after, &r), 0);
	assert_int_equal(r.after_calls, 1);
	assert_true(r.committed);
	assert_int_equal(committed_rows(f), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_webhooks_resumed_after_commit),
		T(test_call_and_post),
		T(test_batch_that_cannot_begin_fails_all),
		T(test_after_stop_runs_inline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
