/*
 * SMS password reset: the sender's registered user gets a single-use link.
 * The token is its record's id and a secret derived from the server key and
 * the MessageSid, so a retry of the same webhook answers the same link
 * without the token ever being stored: the store keeps only its keyed hash.
 * An unknown sender gets the configured unknown_reply through the same
 * steps, so the answer says nothing about which numbers are registered;
 * so does a replay past [reset] replay_window.
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "handler.h"
#include "phone.h"
#include "template.h"
#include "twiml.h"

enum reset_outcome {
	RESET_UNKNOWN_NUMBER = 0,
	RESET_TOKEN_ISSUED = 1,
	/* STORE_OUTCOME_LIMITED: answered like an unknown number */
};

/* TwiML carrying the link for token. */
static int
render_link(const struct config *cfg, const char *token, struct reply *reply)
{
	struct buf	link = BUF_INIT, text = BUF_INIT;
	int		rc = -1;

	if (template_expand(cfg->reset_link, "{token}", token, strlen(token), &link) == -1 ||
	    template_expand(cfg->reset_message, "{link}", link.data, link.len, &text) == -1 ||
	    twiml_message(text.data, text.len, &reply->body) == -1)
		goto done;
	rc = 0;
done:
	buf_free_secret(&link);
	buf_free_secret(&text);
	return rc;
}

static int
render_unknown(const struct config *cfg, struct reply *reply)
{
	const char *text = cfg->reset_unknown_reply;

	if (text == NULL || text[0] == '\0')
		return twiml_empty(&reply->body);
	return twiml_message(text, strlen(text), &reply->body);
}

/* The link again, for a retry: the secret derived anew, the id from the record. */
static int
render_token_reply(struct app *app, const struct request *req, int64_t id,
    struct reply *reply)
{
	char	token[SECRET_TOKEN_LEN + 1];
	uint8_t	secret[SECRET_RESET_BYTES];
	int	rc;

	secret_reset_secret(app->key, req->message_sid, strlen(req->message_sid), secret);
	secret_reset_token(app->key, id, secret, token);
	sodium_memzero(secret, sizeof(secret));
	rc = render_link(app->cfg, token, reply);
	sodium_memzero(token, sizeof(token));
	return rc;
}

static enum handler_result
reset_run(struct app *app, struct request *req, struct reply *reply)
{
	const struct form_pair	*from = form_find(&req->form, "From");
	struct buf		 user = BUF_INIT;
	uint8_t			 hash[SECRET_HASH_BYTES], secret[SECRET_RESET_BYTES];
	char			 token[SECRET_TOKEN_LEN + 1], key[HANDLER_LIMIT_KEY_MAX];
	bool			 found = false, issued;
	int			 limited_by = -1;
	int64_t			 now = (int64_t)time(NULL), token_id = 0;
	enum handler_result	 res = HANDLER_UNAVAILABLE;
	struct store_limit	 limit;

	if (from == NULL)
		return HANDLER_BAD_INPUT;
	/* A sender that is not a phone number (short code, alphanumeric) has no account. */
	if (phone_is_e164(from->value, from->value_len) &&
	    store_user_lookup(app->store, from->value, &user, &found) == -1)
		goto done;
	limit = handler_limit_per_number("reset", &app->cfg->limit_reset_per_number,
	    from->value, key);
	if (found) {
		secret_reset_secret(app->key, req->message_sid, strlen(req->message_sid),
		    secret);
		secret_hash(app->key, (const char *)secret, sizeof(secret), hash);
	}
	/* Committed before the answer leaves: a link we sent is always redeemable. */
	if (store_reset_finish(app->store, req->route->name, req->message_sid,
	    found ? RESET_TOKEN_ISSUED : RESET_UNKNOWN_NUMBER, found ? hash : NULL,
	    found ? user.data : NULL, now + (int64_t)app->cfg->reset_token_ttl, now,
	    &limit, 1, &limited_by, &token_id) == -1)
		goto done;
	/* A limited request is answered like an unknown number: it learns nothing. */
	issued = found && limited_by < 0;
	if (issued)
		secret_reset_token(app->key, token_id, secret, token);
	if (limited_by >= 0)
		handler_note_limited(app, req, "reset", false);
	else
		metrics_inc(&app->metrics, found ? METRIC_RESET_ISSUED : METRIC_RESET_UNKNOWN_NUMBER);
	if (issued)
		res = render_link(app->cfg, token, reply) == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
	else
		res = render_unknown(app->cfg, reply) == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
done:
	sodium_memzero(token, sizeof(token));
	sodium_memzero(secret, sizeof(secret));
	buf_free(&user);
	return res;
}

/*
 * A retry gets the same link. A replay, once the window is past, is a
 * captured request: it gets what an unknown number gets, so a capture
 * stops being a live link; the token stays redeemable by its owner.
 */
static enum handler_result
reset_replay(struct app *app, struct request *req, const struct store_claim *claim,
    int64_t now, struct reply *reply, enum handler_repeat *repeat)
{
	int rc;

	*repeat = handler_repeat_judge(claim->first_at, now, app->cfg->reset_replay_window);
	if (*repeat == HANDLER_RETRY && claim->outcome == RESET_TOKEN_ISSUED)
		rc = render_token_reply(app, req, claim->id, reply);
	else
		rc = render_unknown(app->cfg, reply);
	return rc == 0 ? HANDLER_OK : HANDLER_UNAVAILABLE;
}

const struct handler handler_reset = {
	.run = reset_run,
	.replay = reset_replay,
};
