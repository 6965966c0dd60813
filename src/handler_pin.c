/*
 * SMS PIN: the sender's registered user gets a short-lived PIN by SMS. The
 * PIN, its keyed hash and the queued SMS are committed in one transaction
 * with the webhook's claim; the outbox worker delivers it, so no webhook
 * thread ever waits on Twilio's API. The answer is always an empty
 * <Response/>: it never carries the PIN, nor whether the number is known.
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "handler.h"
#include "outbox.h"
#include "phone.h"
#include "template.h"
#include "twiml.h"

enum pin_outcome {
	PIN_UNKNOWN_NUMBER = 0,
	PIN_QUEUED = 1,
	/* STORE_OUTCOME_LIMITED */
};

/* Commit the PIN and its SMS for user; *limited_by as store_pin_finish. */
static int
issue(struct app *app, struct request *req, const char *phone, const char *user,
    int64_t now, const struct store_limit *limits, int *limited_by)
{
	const struct config	*cfg = app->cfg;
	char			 pin[SECRET_PIN_MAX + 1];
	uint8_t			 hash[SECRET_HASH_BYTES];
	struct buf		 body = BUF_INIT;
	struct store_pin	 p;
	int			 rc = -1;

	secret_pin_new(cfg->pin_digits, pin);
	secret_pin_hash(app->key, phone, pin, strlen(pin), hash);
	if (template_expand(cfg->pin_message, "{pin}", pin, strlen(pin), &body) == -1)
		goto done;
	p = (struct store_pin){ user, phone, hash, now + (int64_t)cfg->pin_ttl, body.data };
	rc = store_pin_finish(app->store, req->route->name, req->message_sid, PIN_QUEUED,
	    &p, now, limits, 2, limited_by);
done:
	sodium_memzero(pin, sizeof(pin));
	sodium_memzero(hash, sizeof(hash));
	buf_free_secret(&body);
	return rc;
}

static enum handler_result
pin_run(struct app *app, struct request *req, struct reply *reply)
{
	const struct form_pair	*from = form_find(&req->form, "From");
	const struct config	*cfg = app->cfg;
	struct buf		 user = BUF_INIT;
	char			 key[HANDLER_LIMIT_KEY_MAX];
	bool			 found = false;
	int			 limited_by = -1, rc;
	int64_t			 now = (int64_t)time(NULL);
	enum handler_result	 res = HANDLER_UNAVAILABLE;
	struct store_limit	 limits[2];

	if (from == NULL)
		return HANDLER_BAD_INPUT;
	if (phone_is_e164(from->value, from->value_len) &&
	    store_user_lookup(app->store, from->value, &user, &found) == -1)
		goto done;
	limits[0] = handler_limit_per_number("pin", &cfg->limit_pin_per_number, from->value, key);
	limits[1] = (struct store_limit){ "outbound", cfg->limit_outbound_budget.count,
	    cfg->limit_outbound_budget.window };
	if (found)
		rc = issue(app, req, from->value, user.data, now, limits, &limited_by);
	else	/* Unknown numbers count against their own limit only: they send nothing. */
		rc = store_pin_finish(app->store, req->route->name, req->message_sid,
		    PIN_UNKNOWN_NUMBER, NULL, now, limits, 1, &limited_by);
	if (rc == -1)
		goto done;
	if (limited_by >= 0)
		handler_note_limited(app, req, "pin", limited_by == 1);
	else if (found) {
		metrics_inc(&app->metrics, METRIC_PIN_ISSUED);
		outbox_notify(app->outbox);
	} else
		metrics_inc(&app->metrics, METRIC_PIN_UNKNOWN_NUMBER);
	res = twiml_empty(&reply->body) == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
done:
	buf_free(&user);
	return res;
}

/*
 * Whatever happened the first time, the answer was an empty <Response/>,
 * and a repeat never queues an SMS: a retry and a replay (judged with
 * [reset] replay_window, for the log and the counters) get the same.
 */
static enum handler_result
pin_replay(struct app *app, struct request *req, const struct store_claim *claim,
    int64_t now, struct reply *reply, enum handler_repeat *repeat)
{
	(void)req;
	*repeat = handler_repeat_judge(claim->first_at, now, app->cfg->reset_replay_window);
	return twiml_empty(&reply->body) == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
}

const struct handler handler_pin = {
	.run = pin_run,
	.replay = pin_replay,
};
