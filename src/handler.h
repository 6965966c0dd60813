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

/* A repeat of a finished webhook, judged by the time since its first arrival. */
enum handler_repeat {
	HANDLER_RETRY = 0,	/* within [reset] replay_window: the first answer again */
	HANDLER_REPLAY,		/* later: an answer that carries nothing of value */
};

struct handler {
	/* First delivery: do the work and finish the claim in the same transaction. */
	enum handler_result	(*run)(struct app *app, struct request *req,
				    struct reply *reply);
	/*
	 * A repeat of a finished webhook, at now (Unix seconds): never a side
	 * effect. *repeat says how it was judged (handler_repeat_judge): a
	 * retry gets the first answer, a replay the answer an unknown number
	 * gets. NULL for routes that are not idempotent (status callbacks).
	 */
	enum handler_result	(*replay)(struct app *app, struct request *req,
				    const struct store_claim *claim, int64_t now,
				    struct reply *reply, enum handler_repeat *repeat);
};

/*
 * Pure: a repeat at now of a webhook that first arrived at first_at is a
 * retry when it comes less than window seconds after it, or less than
 * window before it (a clock stepped back, or instances whose clocks
 * disagree); otherwise, and always with window 0, a replay.
 */
enum handler_repeat	handler_repeat_judge(int64_t first_at, int64_t now,
			    unsigned window);

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
