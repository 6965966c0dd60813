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
	/* A retry or replay of a finished webhook: the same answer, no side effect. */
	enum handler_result	(*replay)(struct app *app, struct request *req,
				    const struct store_claim *claim, struct reply *reply);
};

extern const struct handler handler_reset;

#endif
