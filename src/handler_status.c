/*
 * Delivery status callbacks for the SMS the outbox sent (StatusCallback).
 * Signed and checked like every webhook, but not idempotent by MessageSid:
 * Twilio calls once per status change with the same MessageSid, and the
 * store only ever moves a message's status forward, so repeats are harmless.
 */
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "log.h"
#include "log_escape.h"
#include "twiml.h"

static enum handler_result
status_run(struct app *app, struct request *req, struct reply *reply)
{
	const struct form_pair	*st = form_find(&req->form, "MessageStatus");
	const struct form_pair	*code = form_find(&req->form, "ErrorCode");
	bool			 found = false;
	long			 error_code = 0;

	if (st == NULL)
		st = form_find(&req->form, "SmsStatus");
	if (st == NULL || st->value_len == 0 || st->value_len > 32)
		return HANDLER_BAD_INPUT;
	if (code != NULL && code->value_len > 0 && code->value_len < 10) {
		char *end;
		error_code = strtol(code->value, &end, 10);
		if (*end != '\0' || error_code < 0)
			return HANDLER_BAD_INPUT;
	}
	if (store_outbox_delivery(app->store, req->message_sid, st->value,
	    (int)error_code, &found) == -1)
		return HANDLER_UNAVAILABLE;
	metrics_inc(&app->metrics, METRIC_STATUS_CALLBACKS);
	if (!found) {
		char status[LOG_ESCAPE_SIZE(32)];	/* value_len <= 32, checked above */

		log_escape(st->value, st->value_len, LOG_ESCAPE_FIELD, status, sizeof(status));
		log_info("status: %s for a message this store did not send", status);
	}
	return twiml_empty(&reply->body) == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
}

const struct handler handler_status = {
	.run = status_run,
	.replay = NULL,
};
