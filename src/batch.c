/*
 * The batch thread: take what queued up (webhooks, and store calls from
 * other threads), run it in one store transaction, commit, resume every
 * request and wake every caller. A batch that cannot begin or commit answers
 * every webhook in it with the retryable failure (none of their records
 * exists) and tells every caller its write did not happen.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "defaults.h"
#include "log.h"

/* A batch_call waiting for its batch (on the caller's stack), or a batch_post's (on the heap). */
struct call {
	void		(*fn)(void *arg);
	void		(*after)(void *arg, bool committed);	/* batch_post only */
	void		*arg;
	struct call	*next;
	bool		 done;		/* under batch.mu */
	bool		 committed;
};

struct batch {
	struct store		*store;
	struct batch_ops	 ops;
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* work queued, or stopping */
	pthread_cond_t		 done_cv;	/* calls done */
	struct request		*head, *tail;	/* linked by request.batch_next */
	struct call		*calls, *calls_tail;
	bool			 stopping;
	bool			 joined;
};

/* Detach up to BATCH_MAX queued requests into jobs; how many. */
static size_t
take(struct batch *b, struct request **jobs)
{
	size_t n = 0;

	while (b->head != NULL && n < BATCH_MAX) {
		jobs[n] = b->head;
		b->head = b->head->batch_next;
		jobs[n++]->batch_next = NULL;
	}
	if (b->head == NULL)
		b->tail = NULL;
	return n;
}

static void
run_batch(struct batch *b, struct request **jobs, size_t n, struct call *calls)
{
	const struct batch_ops	*ops = &b->ops;
	struct call		*c, *next, *waiting = NULL, *posted = NULL;
	bool			 batched = store_batch_begin(b->store) == 0;
	bool			 committed = true;

	/*
	 * No transaction (the write lock stayed busy past the busy timeout, or
	 * the store is failing): every webhook gets the retryable failure at
	 * once rather than each waiting out the timeout again on its own.
	 */
	if (batched) {
		for (c = calls; c != NULL; c = c->next)
			c->fn(c->arg);
		for (size_t i = 0; i < n; i++)
			ops->run(ops->arg, jobs[i], jobs[i]->batch_reply);
	}
	if (!batched || store_batch_end(b->store) == -1) {
		committed = false;
		for (size_t i = 0; i < n; i++)
			ops->fail(ops->arg, jobs[i], jobs[i]->batch_reply);
	}
	for (size_t i = 0; i < n; i++)
		ops->resume(jobs[i]);
	/*
	 * Split before waking anyone: a waiting caller's node is on its stack,
	 * gone once it sees done. Waiting callers first: a posted write's after
	 * may take its time.
	 */
	for (c = calls; c != NULL; c = next) {
		next = c->next;
		if (c->after != NULL) {
			c->next = posted;
			posted = c;
		} else {
			c->next = waiting;
			waiting = c;
		}
	}
	if (waiting != NULL) {
		pthread_mutex_lock(&b->mu);
		for (c = waiting; c != NULL; c = next) {
			next = c->next;
			c->committed = committed;
			c->done = true;
		}
		pthread_cond_broadcast(&b->done_cv);
		pthread_mutex_unlock(&b->mu);
	}
	for (c = posted; c != NULL; c = next) {
		next = c->next;
		c->after(c->arg, committed);
		free(c);
	}
}

static void *
batch_main(void *arg)
{
	struct batch		*b = arg;
	struct request		*jobs[BATCH_MAX];
	struct sched_param	 sp;
	struct call		*calls;
	size_t			 n;

	/*
	 * SCHED_BATCH: a submit does not preempt the listener thread that made
	 * it, so on a busy core the webhooks of a whole event loop round queue
	 * up before this thread runs them in one commit.
	 */
	memset(&sp, 0, sizeof(sp));
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (b->head == NULL && b->calls == NULL && !b->stopping)
			pthread_cond_wait(&b->cv, &b->mu);
		n = take(b, jobs);
		calls = b->calls;
		b->calls = b->calls_tail = NULL;
		if (n == 0 && calls == NULL)
			break;		/* stopping, and nothing left */
		pthread_mutex_unlock(&b->mu);
		run_batch(b, jobs, n, calls);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

int
batch_start(struct store *store, const struct batch_ops *ops, struct batch **out)
{
	struct batch	*b;
	int		 err;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		log_error("batch: out of memory");
		return -1;
	}
	b->store = store;
	b->ops = *ops;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	pthread_cond_init(&b->done_cv, NULL);
	if ((err = pthread_create(&b->thread, NULL, batch_main, b)) != 0) {
		log_error("batch: cannot start its thread: %s", strerror(err));
		pthread_cond_destroy(&b->done_cv);
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
		free(b);
		return -1;
	}
	(void)pthread_setname_np(b->thread, "batch");
	*out = b;
	return 0;
}

void
batch_submit(struct batch *b, struct request *req, struct reply *reply)
{
	req->batch_next = NULL;
	req->batch_reply = reply;
	pthread_mutex_lock(&b->mu);
	if (b->stopping) {
		/* Shutting down: no batch thread to wait for. */
		pthread_mutex_unlock(&b->mu);
		b->ops.run(b->ops.arg, req, reply);
		b->ops.resume(req);
		return;
	}
	if (b->tail != NULL)
		b->tail->batch_next = req;
	else
		b->head = req;
	b->tail = req;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* Queue c, with b->mu held; false when stopping (nothing queued). */
static bool
call_queue(struct batch *b, struct call *c)
{
	if (b->stopping)
		return false;
	if (b->calls_tail != NULL)
		b->calls_tail->next = c;
	else
		b->calls = c;
	b->calls_tail = c;
	pthread_cond_signal(&b->cv);
	return true;
}

int
batch_call(struct batch *b, void (*fn)(void *arg), void *arg)
{
	struct call	c = { .fn = fn, .arg = arg };

	pthread_mutex_lock(&b->mu);
	if (!call_queue(b, &c)) {
		pthread_mutex_unlock(&b->mu);
		fn(arg);
		return 0;
	}
	while (!c.done)
		pthread_cond_wait(&b->done_cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	return c.committed ? 0 : -1;
}

int
batch_post(struct batch *b, void (*fn)(void *arg),
    void (*after)(void *arg, bool committed), void *arg)
{
	struct call	*c;
	bool		 queued;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	*c = (struct call){ .fn = fn, .after = after, .arg = arg };
	pthread_mutex_lock(&b->mu);
	queued = call_queue(b, c);
	pthread_mutex_unlock(&b->mu);
	if (!queued) {
		free(c);
		fn(arg);
		after(arg, true);
	}
	return 0;
}

void
batch_stop(struct batch *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&b->mu);
	b->stopping = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	if (!b->joined)
		pthread_join(b->thread, NULL);
	b->joined = true;
}

void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	batch_stop(b);
	pthread_cond_destroy(&b->done_cv);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
