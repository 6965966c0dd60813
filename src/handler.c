/*
 * What the webhook handlers share: how a repeat is judged, rate-limit keys,
 * and the log line and counter for a webhook a limit stopped. A limited
 * webhook gets the normal answer, so the sender learns nothing; only the
 * operator is told.
 */
#include <stdio.h>

#include "handler.h"
#include "log.h"

enum handler_repeat
handler_repeat_judge(int64_t first_at, int64_t now, unsigned window)
{
	/* now is a clock's, first_at a stored value: only now is moved, safely. */
	return first_at > now - (int64_t)window && first_at < now + (int64_t)window ?
	    HANDLER_RETRY : HANDLER_REPLAY;
}

struct store_limit
handler_limit_per_number(const char *flow, const struct config_rate *rate,
    const char *phone, char *key)
{
	snprintf(key, HANDLER_LIMIT_KEY_MAX, "%s:%s", flow, phone);
	return (struct store_limit){ key, rate->count, rate->window };
}

void
handler_note_limited(struct app *app, const struct request *req, const char *flow,
    bool budget)
{
	metrics_inc(&app->metrics, budget ? METRIC_LIMITED_BUDGET : METRIC_LIMITED_PER_NUMBER);
	log_warnx("%s: %s limit reached for %s (request %s): no side effect", flow,
	    budget ? "outbound_budget" : "per-number", req->from_masked, req->id);
}
