/*
 * The durable outbox worker: threads that lease due SMS from the store and
 * deliver them with twilio_api, outside the webhook threads. Retries network
 * errors, 429 and 5xx with capped exponential backoff and jitter; records
 * permanent errors; erases a message's text once Twilio has it.
 */
#ifndef TWHOOKD_OUTBOX_H
#define TWHOOKD_OUTBOX_H

#include <stdint.h>

#include "batch.h"
#include "metrics.h"
#include "store.h"
#include "twilio_api.h"

struct outbox;

struct outbox_config {
	const struct twilio_api_config	*api;
	const char			*status_callback;	/* URL, or NULL */
	unsigned			 workers;
	/* The workers' store writes run in its batches (required). */
	struct batch			*batch;
};

/*
 * Start the workers; their store writes go through cfg->batch. Rows a dead
 * process left "sending" are leased again once their lease runs out.
 * 0, or -1 after logging.
 */
__attribute__((warn_unused_result))
int	outbox_start(const struct outbox_config *cfg, struct store *store,
	    struct metrics *metrics, struct outbox **out);
/* Wake the workers: a webhook just committed a message. Cheap; any thread. */
void	outbox_notify(struct outbox *ob);
/* Let each worker finish its current call, join them, free. Accepts NULL. */
void	outbox_stop(struct outbox *ob);

/*
 * Pure: milliseconds to wait before attempt number `attempt` + 1 after a
 * retryable failure: OUTBOX_BACKOFF_BASE_MS * 2^(attempt-1), capped at
 * OUTBOX_BACKOFF_CAP_MS, with "equal jitter" (half fixed, half random from
 * rnd), and never less than retry_after seconds.
 */
uint64_t	outbox_backoff_ms(unsigned attempt, unsigned retry_after, uint32_t rnd);

#endif
