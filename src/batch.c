/*
 * The batch thread: take the webhooks that queued up, run them in one store
 * transaction, commit, resume every request. A batch that cannot begin or
 * commit answers every webhook in it with the retryable failure (none of
 * their records exists).
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "defaults.h"
#include "log.h"

struct batch {
	struct store		*store;
	struct batch_ops	 ops;
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* work queued, or stopping */
	struct request		*head, *tail;	/* linked by request.batch_next */
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
run_batch(struct batch *b, struct request **jobs, size_t n)
{
	const struct batch_ops	*ops = &b->ops;
	bool			 batched = store_batch_begin(b->store) == 0;

	/*
	 * No transaction (the write lock stayed busy past the busy timeout, or
	 * the store is failing): every webhook gets the retryable failure at
	 * once rather than each waiting out the timeout again on its own.
	 */
	if (batched)
		for (size_t i = 0; i < n; i++)
			ops->run(ops->arg, jobs[i], jobs[i]->batch_reply);
	if (!batched || store_batch_end(b->store) == -1)
		for (size_t i = 0; i < n; i++)
			ops->fail(ops->arg, jobs[i], jobs[i]->batch_reply);
	for (size_t i = 0; i < n; i++)
		ops->resume(jobs[i]);
}

static void *
batch_main(void *arg)
{
	struct batch		*b = arg;
	struct request		*jobs[BATCH_MAX];
	struct sched_param	 sp;
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
		while (b->head == NULL && !b->stopping)
			pthread_cond_wait(&b->cv, &b->mu);
		if ((n = take(b, jobs)) == 0)
			break;		/* stopping, and nothing left */
		pthread_mutex_unlock(&b->mu);
		run_batch(b, jobs, n);
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
	if ((err = pthread_create(&b->thread, NULL, batch_main, b)) != 0) {
		log_error("batch: cannot start its thread: %s", strerror(err));
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
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
