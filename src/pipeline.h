/*
 * The public listener's security model in one place: the route table and the
 * guard chain every webhook passes (hygiene, body cap, content type, form,
 * public URL, signature, account, idempotency, handler), each failure mapped
 * to exactly one HTTP status.
 */
#ifndef TWHOOKD_PIPELINE_H
#define TWHOOKD_PIPELINE_H

#include "app.h"
#include "request.h"

/* Fill app->routes from the config. 0, or -1 after logging. */
__attribute__((warn_unused_result))
int	pipeline_init(struct app *app);

/* server_hooks for the public listener; arg is the struct app. */
void	pipeline_begin(void *arg, struct request *req, struct reply *reply);
void	pipeline_finish(void *arg, struct request *req, struct reply *reply);
/*
 * batch_ops for app->batch (arg is the struct app): pipeline_finish hands
 * every signed webhook that passed the guards to the batch thread.
 */
void	pipeline_batch_run(void *arg, struct request *req, struct reply *reply);
void	pipeline_batch_fail(void *arg, struct request *req, struct reply *reply);

#endif
