/*
 * Group commit for webhooks. The listener threads hand every signed webhook
 * to one thread, which runs all that queued up meanwhile (at most
 * BATCH_MAX) inside one store transaction, a savepoint each, commits once,
 * and only then lets their answers go. Under load many
 * webhooks share a commit; alone, a webhook waits only for its own.
 */
#ifndef TWHOOKD_BATCH_H
#define TWHOOKD_BATCH_H

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
 * Run what is queued and join the thread; later submits run inline on the
 * caller's thread. Accepts NULL. batch_free then frees, once no listener
 * can submit any more.
 */
void	batch_stop(struct batch *b);
void	batch_free(struct batch *b);

#endif
