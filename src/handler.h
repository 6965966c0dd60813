/*
 * The interface webhook handlers are written against. A handler sees only a
 * request that passed every guard: signed, from the configured account, with
 * a MessageSid claimed for it. It never chooses an HTTP status: it returns a
 * handler_result that the pipeline maps.
 */
#ifndef TWHOOKD_HANDLER_H
#define TWHOOKD_HANDLER_H

#include "app.h"
#include "request.h"
#include "store.h"

enum handler_result {
	HANDLER_OK = 0,		/* reply->body holds the TwiML */
	HANDLER_BAD_INPUT,	/* a required parameter is missing or malformed */
	HANDLER_UNAVAILABLE,	/* store failure: Twilio should retry */
};

struct handler {
	/* First delivery: do the work and finish the claim in the same transaction. */
	enum handler_result	(*run)(struct app *app, struct request *req,
				    struct reply *reply);
	/* A retry or replay of a finished webhook: the same answer, no side effect.
	 * NULL for routes that are not idempotent (status callbacks). */
	enum handler_result	(*replay)(struct app *app, struct request *req,
				    const struct store_claim *claim, struct reply *reply);
};

/*
 * A per-number limit for flow ("reset", "pin") keyed by the sender, written
 * to key (at least HANDLER_LIMIT_KEY_MAX bytes).
 */
#define HANDLER_LIMIT_KEY_MAX 48u
struct store_limit	handler_limit_per_number(const char *flow, const struct config_rate *rate,
			    const char *phone, char *key);
/* Log and count a webhook that a rate limit stopped. */
void			handler_note_limited(struct app *app, const struct request *req,
			    const char *flow, bool budget);

extern const struct handler handler_reset;
extern const struct handler handler_pin;
extern const struct handler handler_status;

#endif
