/*
 * Group commit for webhooks. The listener threads hand every signed webhook
 * to one thread, which runs all that queued up meanwhile (at most
 * BATCH_MAX) inside one store transaction, a savepoint each, commits once,
 * and only then lets their answers go. Under load many
 * webhooks share a commit; alone, a webhook waits only for its own.
 */
#ifndef TWHOOKD_BATCH_H
#define TWHOOKD_BATCH_H

#include <stdbool.h>

#include "request.h"
#include "store.h"

struct batch;

struct batch_ops {
	/* Run one webhook on the batch thread; it sets reply->status. */
	void	(*run)(void *arg, struct request *req, struct reply *reply);
	/* The batch did not commit: turn the reply into a retryable failure. */
	void	(*fail)(void *arg, struct request *req, struct reply *reply);
	/* The reply is decided and committed: let the listener send it. */
	void	(*resume)(struct request *req);
	void	*arg;
};

/* Start the batch thread. 0, or -1 after logging. */
__attribute__((warn_unused_result))
int	batch_start(struct store *store, const struct batch_ops *ops, struct batch **out);
/*
 * Queue a request its listener has suspended (server_suspend); the batch
 * calls ops->resume once its reply is decided and committed.
 */
void	batch_submit(struct batch *b, struct request *req, struct reply *reply);
/*
 * Run fn(arg) on the batch thread inside the next batch, for threads that
 * are not listeners (the outbox workers): the store then has one writer,
 * and their writes share the webhooks' commit. SQLite's write lock has no
 * queue: a worker polling it behind a busy batch thread starved (bench/run,
 * PIN route: 153 SMS sent a second for 7242 webhooks). Waits for the
 * commit: 0 when it committed, -1 when the batch rolled back (whatever fn
 * wrote is gone). After batch_stop, fn runs on the caller's thread (in its
 * own transactions).
 */
__attribute__((warn_unused_result))
int	batch_call(struct batch *b, void (*fn)(void *arg), void *arg);
/*
 * The same without waiting, for a write whose loss costs only a retry (the
 * outbox's "sent"): fn(arg) runs in the next batch, then after(arg,
 * committed) once it is over; after owns arg. After batch_stop both run
 * inline, committed true. -1 when out of memory: nothing queued or run.
 */
__attribute__((warn_unused_result))
int	batch_post(struct batch *b, void (*fn)(void *arg),
	    void (*after)(void *arg, bool committed), void *arg);
/*
 * Run what is queued and join the thread; later submits run inline on the
 * caller's thread. Accepts NULL. batch_free then frees, once no listener
 * can submit any more.
 */
void	batch_stop(struct batch *b);
void	batch_free(struct batch *b);

#endif
