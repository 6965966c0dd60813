/*
 * The private admin API: the application redeems reset tokens and verifies
 * PINs here, and Prometheus scrapes metrics. Every route needs the bearer token, compared in
 * constant time over fixed-size hashes so not even its length leaks.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "admin.h"
#include "log.h"
#include "phone.h"

enum admin_route { ADMIN_NONE, ADMIN_REDEEM, ADMIN_PIN_VERIFY, ADMIN_METRICS };

static const struct {
	const char		*method;
	const char		*path;
	enum admin_route	 route;
	const char		*name;
} admin_routes[] = {
	{ "POST", "/v1/reset-tokens/redeem", ADMIN_REDEEM, "redeem" },
	{ "POST", "/v1/pins/verify", ADMIN_PIN_VERIFY, "pin_verify" },
	{ "GET", "/metrics", ADMIN_METRICS, "metrics" },
};

/* Send obj (consumed) as the JSON reply; wipe the text, which may name a user. */
static void
reply_json(struct request *req, struct reply *reply, unsigned status,
    const char *reason, json_t *obj)
{
	char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

	req->reason = reason;
	reply->status = status;
	reply->content_type = "application/json";
	buf_reset(&reply->body);
	if (text == NULL || buf_append_str(&reply->body, text) == -1 ||
	    buf_append_str(&reply->body, "\n") == -1) {
		reply->status = 500;
		buf_free(&reply->body);
	}
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	json_decref(obj);
}

static void
answer_json(struct request *req, struct reply *reply, unsigned status,
    const char *reason, const char *key, const char *value)
{
	reply_json(req, reply, status, reason, json_pack("{s:s}", key, value));
}

static void
answer_error(struct request *req, struct reply *reply, unsigned status,
    const char *reason, const char *message)
{
	answer_json(req, reply, status, reason, "error", message);
}

/* "Authorization: Bearer <token>" against admin.token_file. */
static bool
authorized(const struct app *app, const char *header)
{
	const struct config_secret *want = &app->cfg->admin_token;
	uint8_t	 a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
	bool	 ok;

	if (header == NULL || want->data == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	header += 7;
	crypto_generichash(a, sizeof(a), (const uint8_t *)header, strlen(header), NULL, 0);
	crypto_generichash(b, sizeof(b), (const uint8_t *)want->data, want->len, NULL, 0);
	ok = sodium_memcmp(a, b, sizeof(a)) == 0;
	sodium_memzero(a, sizeof(a));
	sodium_memzero(b, sizeof(b));
	return ok;
}

/*
 * Framing first (a request we cannot delimit is never read further), then the
 * token for every path, known or not, so that routes cannot be discovered
 * without it; only then the route (404 / 405) and the body size (413).
 */
void
admin_begin(void *arg, struct request *req, struct reply *reply)
{
	struct app	*app = arg;
	bool		 path_known = false;

	if (req->h.content_length_count > 1 || req->h.transfer_encoding_count > 0 ||
	    req->h.host_count > 1 || req->h.bad_content_length || req->h.bad_value ||
	    req->h.bad_name) {
		answer_error(req, reply, 400, "framing", "bad request framing");
		reply->close = true;
		return;
	}
	if (!authorized(app, req->h.authorization)) {
		answer_error(req, reply, 401, "unauthorized", "bearer token required");
		return;
	}
	for (size_t i = 0; i < sizeof(admin_routes) / sizeof(admin_routes[0]); i++) {
		if (strcmp(req->path, admin_routes[i].path) != 0)
			continue;
		path_known = true;
		req->route_name = admin_routes[i].name;
		if (strcmp(req->method, admin_routes[i].method) == 0)
			req->route_id = (int)admin_routes[i].route;
		else
			reply->allow = admin_routes[i].method;
	}
	if (!path_known)
		answer_error(req, reply, 404, "no_route", "not found");
	else if (req->route_id == ADMIN_NONE)
		answer_error(req, reply, 405, "method", "method not allowed");
	else if (req->h.has_content_length && req->h.content_length > MAX_ADMIN_BODY)
		answer_error(req, reply, 413, "body_too_large", "body too large");
}

/* The request body as a JSON object, or NULL. */
static json_t *
body_object(const struct request *req)
{
	json_error_t	 err;
	json_t		*root;

	root = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, &err);
	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* A secret member's text lives in jansson's memory: wipe it before the free. */
static void
wipe_string(json_t *v)
{
	if (json_is_string(v))
		sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
}

static void
redeem(struct app *app, struct request *req, struct reply *reply)
{
	json_t			*root = body_object(req);
	json_t			*tok = json_object_get(root, "token");
	uint8_t			 hash[SECRET_HASH_BYTES], secret[SECRET_RESET_BYTES];
	struct buf		 user = BUF_INIT;
	enum store_redeem	 res = STORE_REDEEM_UNKNOWN;
	int64_t			 id = 0;
	const char		*text;
	size_t			 len;
	bool			 ours = true;	/* shaped like a token we issue */

	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    json_string_length(tok) > 256) {
		answer_error(req, reply, 400, "bad_json", "expected {\"token\": \"...\"}");
		goto done;
	}
	text = json_string_value(tok);
	len = json_string_length(tok);
	if (secret_reset_token_parse(app->key, text, len, &id, secret))
		secret_hash(app->key, (const char *)secret, sizeof(secret), hash);
	else
		ours = false;		/* unknown without asking the store */
	if (ours && store_token_redeem(app->store, id, hash, (int64_t)time(NULL), &res,
	    &user) == -1) {
		metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
		answer_error(req, reply, 503, "store_error", "store unavailable");
		goto done;
	}
	metrics_inc(&app->metrics, res == STORE_REDEEM_OK ? METRIC_REDEEM_OK : METRIC_REDEEM_REFUSED);
	switch (res) {
	case STORE_REDEEM_OK:
		answer_json(req, reply, 200, "ok", "user", user.data != NULL ? user.data : "");
		break;
	case STORE_REDEEM_SPENT:
		answer_error(req, reply, 410, "token_spent", "token already used");
		break;
	case STORE_REDEEM_EXPIRED:
		answer_error(req, reply, 410, "token_expired", "token expired");
		break;
	case STORE_REDEEM_UNKNOWN:
	default:
		answer_error(req, reply, 404, "token_unknown", "unknown token");
		break;
	}
done:
	sodium_memzero(secret, sizeof(secret));
	wipe_string(tok);
	json_decref(root);
	buf_free(&user);
}

/* {"valid": false}, or {"valid": true, "user": ...}. */
static void
answer_valid(struct request *req, struct reply *reply, const char *reason,
    const char *user)
{
	json_t *obj = user != NULL ? json_pack("{s:b, s:s}", "valid", 1, "user", user) :
	    json_pack("{s:b}", "valid", 0);

	reply_json(req, reply, 200, reason, obj);
}

static void
pin_verify(struct app *app, struct request *req, struct reply *reply)
{
	static const struct { enum metric m; const char *reason; } results[] = {
		[STORE_PIN_OK] = { METRIC_PIN_VERIFY_OK, "ok" },
		[STORE_PIN_WRONG] = { METRIC_PIN_VERIFY_WRONG, "pin_wrong" },
		[STORE_PIN_LOCKED] = { METRIC_PIN_VERIFY_LOCKED, "pin_locked" },
		[STORE_PIN_NONE] = { METRIC_PIN_VERIFY_NONE, "pin_none" },
	};
	json_t			*root = body_object(req);
	json_t			*phone = json_object_get(root, "phone");
	json_t			*pin = json_object_get(root, "pin");
	uint8_t			 hash[SECRET_HASH_BYTES];
	struct buf		 user = BUF_INIT;
	enum store_pin_check	 res;

	if (!json_is_string(phone) || !json_is_string(pin) ||
	    !phone_is_e164(json_string_value(phone), json_string_length(phone)) ||
	    json_string_length(pin) == 0 || json_string_length(pin) > SECRET_PIN_MAX) {
		answer_error(req, reply, 400, "bad_json",
		    "expected {\"phone\": \"+E.164\", \"pin\": \"digits\"}");
		goto done;
	}
	phone_mask(json_string_value(phone), json_string_length(phone), req->from_masked);
	secret_pin_hash(app->key, json_string_value(phone), json_string_value(pin),
	    json_string_length(pin), hash);
	if (store_pin_verify(app->store, json_string_value(phone), hash,
	    app->cfg->pin_max_attempts, (int64_t)time(NULL), &res, &user) == -1) {
		metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
		answer_error(req, reply, 503, "store_error", "store unavailable");
		goto done;
	}
	metrics_inc(&app->metrics, results[res].m);
	answer_valid(req, reply, results[res].reason,
	    res == STORE_PIN_OK ? (user.data != NULL ? user.data : "") : NULL);
done:
	wipe_string(pin);
	json_decref(root);
	buf_free(&user);
}

static void
metrics_page(struct app *app, struct reply *reply)
{
	int64_t depth = -1;

	reply->status = 200;
	reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (store_outbox_depth(app->store, &depth) == -1)
		metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
	if (metrics_render(&app->metrics, &reply->body) == -1 ||
	    (depth >= 0 && buf_printf(&reply->body, "# HELP twhookd_outbox_queue_depth SMS"
	    " waiting to be delivered.\n# TYPE twhookd_outbox_queue_depth gauge\n"
	    "twhookd_outbox_queue_depth %lld\n", (long long)depth) == -1)) {
		buf_free(&reply->body);
		reply->status = 500;
	}
}

void
admin_finish(void *arg, struct request *req, struct reply *reply)
{
	struct app *app = arg;

	if (req->body_overflow) {
		answer_error(req, reply, 413, "body_too_large", "body too large");
		return;
	}
	switch (req->route_id) {
	case ADMIN_REDEEM:
		redeem(app, req, reply);
		break;
	case ADMIN_PIN_VERIFY:
		pin_verify(app, req, reply);
		break;
	default:
		metrics_page(app, reply);
		break;
	}
}
