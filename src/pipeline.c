/*
 * The public listener's guard chain. Each guard either passes or returns one
 * verdict; verdicts map to exactly one HTTP status in the table below, so the
 * security model reads top to bottom in pipeline_begin and pipeline_finish.
 * No handler, store write or outbound call runs before the signature passed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "batch.h"
#include "handler.h"
#include "log.h"
#include "pipeline.h"
#include "public_url.h"
#include "server.h"

enum verdict {
	V_OK = 0,
	V_NOT_FOUND,
	V_METHOD_NOT_ALLOWED,
	V_BAD_FRAMING,
	V_TARGET_TOO_LONG,
	V_TOO_LARGE,
	V_MEDIA_TYPE,
	V_BAD_BODY,
	V_FORBIDDEN,
	V_BAD_INPUT,
	V_IN_PROGRESS,
	V_UNAVAILABLE,
	V_NOT_READY,
	V_INTERNAL,
	V_COUNT
};

/* The one place a failure becomes a status. A 403 says nothing, by design. */
static const struct {
	unsigned	 status;
	bool		 close;		/* framing we cannot trust: drop the connection */
	const char	*body;
} verdicts[V_COUNT] = {
	[V_OK]			= { 200, false, NULL },
	[V_NOT_FOUND]		= { 404, false, "not found\n" },
	[V_METHOD_NOT_ALLOWED]	= { 405, false, "method not allowed\n" },
	[V_BAD_FRAMING]		= { 400, true,  "bad request framing\n" },
	[V_TARGET_TOO_LONG]	= { 414, true,  "request target too long\n" },
	[V_TOO_LARGE]		= { 413, true,  "payload too large\n" },
	[V_MEDIA_TYPE]		= { 415, true,  "unsupported media type\n" },
	[V_BAD_BODY]		= { 400, false, "malformed body\n" },
	[V_FORBIDDEN]		= { 403, false, "" },
	[V_BAD_INPUT]		= { 400, false, "missing or malformed parameter\n" },
	[V_IN_PROGRESS]		= { 503, false, "" },
	[V_UNAVAILABLE]		= { 503, false, "temporarily unavailable\n" },
	[V_NOT_READY]		= { 503, false, "not ready\n" },
	[V_INTERNAL]		= { 500, false, "internal error\n" },
};

enum media { MEDIA_OTHER, MEDIA_FORM, MEDIA_JSON };

static void
decide(struct request *req, struct reply *reply, enum verdict v, const char *reason)
{
	reply->status = verdicts[v].status;
	reply->close = verdicts[v].close;
	req->reason = reason;
	if (verdicts[v].body != NULL && verdicts[v].body[0] != '\0') {
		reply->content_type = "text/plain; charset=utf-8";
		buf_reset(&reply->body);
		if (buf_append_str(&reply->body, verdicts[v].body) == -1)
			buf_free(&reply->body);
	}
}

int
pipeline_init(struct app *app)
{
	const struct config	*cfg = app->cfg;
	const struct route	 table[] = {
		{ .name = "reset", .method = "POST", .path = cfg->reset_route,
		  .handler = &handler_reset, .idempotent = true },
		{ .name = "pin", .method = "POST", .path = cfg->pin_route,
		  .handler = &handler_pin, .idempotent = true, .sms = true },
		{ .name = "status", .method = "POST", .path = cfg->status_route,
		  .handler = &handler_status, .sms = true },
		{ .name = "healthz", .method = "GET", .path = "/healthz", .probe = PROBE_HEALTH },
		{ .name = "readyz", .method = "GET", .path = "/readyz", .probe = PROBE_READY },
	};
	bool			 sms = config_sms_enabled(cfg);

	_Static_assert(sizeof(table) / sizeof(table[0]) <= APP_MAX_ROUTES, "route table");
	app->route_count = 0;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].sms && !sms)
			continue;
		app->routes[app->route_count++] = table[i];
	}
	return 0;
}

/*
 * Request hygiene. Twilio sends one Content-Length, no Transfer-Encoding, one
 * X-Twilio-Signature and one Host; anything else is a request-smuggling shape
 * that libmicrohttpd 0.9.75 would otherwise accept (RFC 9112, 6.3).
 */
static enum verdict
guard_framing(const struct request *req, const char **reason)
{
	const struct request_headers *h = &req->h;

	*reason = "framing";
	if (h->content_length_count > 1 || h->bad_content_length)
		*reason = "framing_content_length";
	else if (h->transfer_encoding_count > 0)
		*reason = "framing_transfer_encoding";
	else if (h->signature_count > 1)
		*reason = "framing_duplicate_signature";
	else if (h->host_count > 1)
		*reason = "framing_duplicate_host";	/* RFC 9112, 3.2: exactly one */
	else if (h->bad_value)
		*reason = "framing_header_value";
	else if (h->bad_name)
		*reason = "framing_header_name";
	else if (req->target_len > MAX_TARGET_LEN)
		return *reason = "target_too_long", V_TARGET_TOO_LONG;
	else
		return V_OK;
	return V_BAD_FRAMING;
}

static enum verdict
guard_route(struct app *app, struct request *req, struct reply *reply)
{
	const struct route *path_match = NULL;

	for (size_t i = 0; i < app->route_count; i++) {
		const struct route *r = &app->routes[i];

		if (strcmp(req->path, r->path) != 0)
			continue;
		path_match = r;
		if (strcmp(req->method, r->method) == 0) {
			req->route = r;
			req->route_name = r->name;
			return V_OK;
		}
	}
	if (path_match != NULL) {
		req->route_name = path_match->name;
		reply->allow = path_match->method;
		return V_METHOD_NOT_ALLOWED;
	}
	return V_NOT_FOUND;
}

/* Media type of Content-Type, parameters ignored (RFC 9110, 8.3.1). */
static enum media
media_type(const char *ct)
{
	size_t len;

	if (ct == NULL)
		return MEDIA_OTHER;
	len = strcspn(ct, "; \t");
	if (len == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", len) == 0)
		return MEDIA_FORM;
	if (len == 16 && strncasecmp(ct, "application/json", len) == 0)
		return MEDIA_JSON;
	return MEDIA_OTHER;
}

static void
answer_probe(struct app *app, const struct route *r, struct request *req,
    struct reply *reply)
{
	/* Only readiness reads the store's health flag; /healthz says the process serves. */
	if (r->probe == PROBE_READY) {
		if (atomic_load(&app->draining)) {
			decide(req, reply, V_NOT_READY, "draining");
			return;
		}
		if (!atomic_load(&app->store_ready)) {
			decide(req, reply, V_NOT_READY, "store_not_ready");
			return;
		}
	}
	reply->status = 200;
	reply->content_type = "text/plain; charset=utf-8";
	if (buf_append_str(&reply->body, "ok\n") == -1)
		buf_free(&reply->body);
}

void
pipeline_begin(void *arg, struct request *req, struct reply *reply)
{
	struct app	*app = arg;
	const char	*reason = "ok";
	enum verdict	 v;

	/* For the access line: X-Forwarded-For counts only from a trusted proxy. */
	public_url_client((const struct sockaddr *)&req->peer, req->h.forwarded_for,
	    app->cfg->trusted, app->cfg->trusted_count, req->client);
	if ((v = guard_framing(req, &reason)) != V_OK) {
		metrics_inc(&app->metrics, METRIC_HYGIENE_REFUSED);
		decide(req, reply, v, reason);
	} else if ((v = guard_route(app, req, reply)) != V_OK) {
		decide(req, reply, v, v == V_NOT_FOUND ? "no_route" : "method");
	} else if (req->route->probe != PROBE_NONE) {
		answer_probe(app, req->route, req, reply);
	} else if (req->h.has_content_length && req->h.content_length > app->cfg->max_body) {
		decide(req, reply, V_TOO_LARGE, "body_too_large");
	} else if (media_type(req->h.content_type) == MEDIA_OTHER) {
		decide(req, reply, V_MEDIA_TYPE, "content_type");
	}
}

/* A JSON webhook's top-level string members, as form pairs for the handler. */
static enum verdict
json_to_form(struct request *req)
{
	const struct buf *body = &req->body;
	json_t		*root, *value;
	json_error_t	 err;
	const char	*key;
	enum verdict	 v = V_OK;

	root = json_loadb(body->data != NULL ? body->data : "", body->len,
	    JSON_REJECT_DUPLICATES, &err);
	if (root == NULL || !json_is_object(root) || json_object_size(root) > MAX_FORM_PAIRS) {
		json_decref(root);
		req->reason = "json_body";
		return V_BAD_BODY;
	}
	json_object_foreach(root, key, value) {
		if (!json_is_string(value))
			continue;
		if (form_add(&req->form, key, strlen(key), json_string_value(value),
		    json_string_length(value)) == -1) {
			v = V_INTERNAL;
			break;
		}
	}
	json_decref(root);
	return v;
}

/* Reason classes for the access log: one word each, never a secret. */
static const char *
signature_reason(enum signature_result r)
{
	switch (r) {
	case SIGNATURE_OK:			return "ok";
	case SIGNATURE_MISSING:			return "signature_missing";
	case SIGNATURE_MALFORMED:		return "signature_malformed";
	case SIGNATURE_MISMATCH:		return "signature_mismatch";
	case SIGNATURE_NO_BODY_HASH:		return "body_hash_missing";
	case SIGNATURE_BODY_HASH_MISMATCH:	return "body_hash_mismatch";
	case SIGNATURE_ERROR:			break;
	}
	return "signature_error";
}

/*
 * Verify X-Twilio-Signature over the URLs Twilio may have signed: every
 * configured public_url with the raw target, those the Host names first.
 */
static enum verdict
guard_signature(struct app *app, struct request *req, enum media media)
{
	const struct config		*cfg = app->cfg;
	struct buf			 url[MAX_PUBLIC_URLS];
	struct signature_url		 cand[MAX_PUBLIC_URLS];
	struct public_url_input		 in = {
		.bases = cfg->public_url.url, .base_count = cfg->public_url.count,
		.host = req->h.host, .host_len = req->h.host != NULL ? strlen(req->h.host) : 0,
		.target = req->target, .target_len = req->target_len,
	};
	struct signature_check		 check;
	enum public_url_result		 ur;
	enum signature_result		 sr;
	enum verdict			 v = V_OK;
	size_t				 n = 0;

	memset(url, 0, sizeof(url));
	if ((ur = public_url_candidates(&in, url, &n)) != PUBLIC_URL_OK) {
		req->reason = public_url_result_str(ur);
		v = ur == PUBLIC_URL_NOMEM ? V_INTERNAL : V_TARGET_TOO_LONG;
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		cand[i] = (struct signature_url){ url[i].data, url[i].len };
	check = (struct signature_check){
		.urls = cand, .url_count = n,
		.params = media == MEDIA_FORM ? &req->form : NULL,
		.body = (const uint8_t *)req->body.data, .body_len = req->body.len,
		.header = req->h.signature, .header_len = req->h.signature_len,
		.keys = app->tokens, .key_count = app->token_count,
	};
	if ((sr = signature_verify(&check)) != SIGNATURE_OK) {
		req->reason = signature_reason(sr);
		metrics_inc(&app->metrics, sr == SIGNATURE_MISSING ?
		    METRIC_SIGNATURE_MISSING : METRIC_SIGNATURE_INVALID);
		v = sr == SIGNATURE_ERROR ? V_INTERNAL : V_FORBIDDEN;
	}
done:
	for (size_t i = 0; i < n; i++)
		buf_free(&url[i]);
	return v;
}

/* A valid signature from another Twilio account is still not ours. */
static enum verdict
guard_account(struct app *app, struct request *req)
{
	const struct form_pair	*p = form_find(&req->form, "AccountSid");
	const char		*want = app->cfg->account_sid;

	if (p == NULL || p->value_len != strlen(want) ||
	    memcmp(p->value, want, p->value_len) != 0) {
		req->reason = "wrong_account";
		metrics_inc(&app->metrics, METRIC_SIGNATURE_WRONG_ACCOUNT);
		return V_FORBIDDEN;
	}
	return V_OK;
}

/* MessageSid: two letters and 32 lower-case hex digits ("SM...", "MM..."). */
static bool
valid_sid(const char *s, size_t len)
{
	if (len != 34 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
		return false;
	for (size_t i = 2; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Note what the access log may show: a masked From and the MessageSid. */
static enum verdict
guard_message_sid(struct request *req)
{
	const struct form_pair *from = form_find(&req->form, "From");
	const struct form_pair *sid = form_find(&req->form, "MessageSid");

	if (from != NULL)
		phone_mask(from->value, from->value_len, req->from_masked);
	if (sid == NULL || !valid_sid(sid->value, sid->value_len)) {
		req->reason = "message_sid";
		return V_BAD_INPUT;
	}
	memcpy(req->message_sid, sid->value, sid->value_len + 1);
	return V_OK;
}

static enum verdict
handler_verdict(enum handler_result r, struct request *req)
{
	switch (r) {
	case HANDLER_OK:
		return V_OK;
	case HANDLER_BAD_INPUT:
		req->reason = "bad_parameter";
		return V_BAD_INPUT;
	case HANDLER_UNAVAILABLE:
		req->reason = "store_error";
		return V_UNAVAILABLE;
	}
	return V_INTERNAL;
}

/*
 * Idempotency, keyed by the signed MessageSid: a finished webhook is answered
 * from its record (the first answer within [reset] replay_window of its
 * first arrival, one that carries nothing after it), one still running gets
 * 503 (Twilio retries), a new one runs its handler, which finishes the claim
 * in the handler's own transaction.
 */
static enum verdict
run_once(struct app *app, struct request *req, struct reply *reply)
{
	const struct handler	*h = req->route->handler;
	struct store_claim	 claim = { .user_id = BUF_INIT };
	enum handler_repeat	 repeat = HANDLER_REPLAY;
	enum handler_result	 r;
	int64_t			 now = (int64_t)time(NULL);
	enum verdict		 v;

	if (!req->route->idempotent)
		return handler_verdict(h->run(app, req, reply), req);
	if (store_claim(app->store, req->route->name, req->message_sid, now,
	    CLAIM_STALE_AFTER, &claim) == -1) {
		metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
		req->reason = "store_error";
		return V_UNAVAILABLE;
	}
	switch (claim.state) {
	case STORE_CLAIM_RUNNING:
		metrics_inc(&app->metrics, METRIC_WEBHOOK_IN_PROGRESS);
		req->reason = "in_progress";
		v = V_IN_PROGRESS;
		break;
	case STORE_CLAIM_DONE:
		/* Within the window Twilio's retry; after it a capture replayed. */
		r = h->replay(app, req, &claim, now, reply, &repeat);
		metrics_inc(&app->metrics, repeat == HANDLER_RETRY ?
		    METRIC_WEBHOOK_RETRY_ANSWERED : METRIC_WEBHOOK_REPLAY_REFUSED);
		req->reason = repeat == HANDLER_RETRY ? "retry" : "replay";
		v = handler_verdict(r, req);
		break;
	case STORE_CLAIM_NEW:
	default:
		v = handler_verdict(h->run(app, req, reply), req);
		if (v != V_OK &&
		    store_claim_release(app->store, req->route->name, req->message_sid) == -1)
			metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
		break;
	}
	buf_free(&claim.user_id);
	return v;
}

void
pipeline_finish(void *arg, struct request *req, struct reply *reply)
{
	struct app	*app = arg;
	enum media	 media = media_type(req->h.content_type);
	enum form_result fr;
	enum verdict	 v;

	if (req->body_overflow) {
		decide(req, reply, V_TOO_LARGE, "body_too_large");
		return;
	}
	if (media == MEDIA_FORM &&
	    (fr = form_parse(req->body.data != NULL ? req->body.data : "", req->body.len, MAX_FORM_PAIRS, &req->form)) != FORM_OK) {
		decide(req, reply, fr == FORM_NOMEM ? V_INTERNAL : V_BAD_BODY, "form_body");
		return;
	}
	if ((v = guard_signature(app, req, media)) != V_OK ||
	    (media == MEDIA_JSON && (v = json_to_form(req)) != V_OK) ||
	    (v = guard_account(app, req)) != V_OK ||
	    (v = guard_message_sid(req)) != V_OK) {
		decide(req, reply, v, req->reason);
		return;
	}
	/* Twilio retries a 503; a store that cannot commit would only fail it later. */
	if (!atomic_load(&app->store_ready)) {
		decide(req, reply, V_UNAVAILABLE, "store_not_ready");
		return;
	}
	/* Suspended first: the batch may answer before submit returns. */
	server_suspend(req);
	batch_submit(app->batch, req, reply);
}

/* The last step, on the batch thread: run the handler once, and answer. */
void
pipeline_batch_run(void *arg, struct request *req, struct reply *reply)
{
	enum verdict v;

	if ((v = run_once(arg, req, reply)) != V_OK) {
		decide(req, reply, v, req->reason);
		return;
	}
	reply->status = 200;
	reply->content_type = "text/xml; charset=utf-8";
}

void
pipeline_batch_fail(void *arg, struct request *req, struct reply *reply)
{
	struct app *app = arg;

	metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
	/* The reply may carry a link whose token was never stored. */
	buf_free_secret(&reply->body);
	reply->content_type = NULL;
	decide(req, reply, V_UNAVAILABLE, "store_error");
}
