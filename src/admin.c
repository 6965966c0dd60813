/*
 * The private admin API: the application redeems reset tokens here and
 * Prometheus scrapes metrics. Every route needs the bearer token, compared in
 * constant time over fixed-size hashes so not even its length leaks.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "admin.h"
#include "log.h"

enum admin_route { ADMIN_NONE, ADMIN_REDEEM, ADMIN_METRICS };

static const struct {
	const char		*method;
	const char		*path;
	enum admin_route	 route;
	const char		*name;
} admin_routes[] = {
	{ "POST", "/v1/reset-tokens/redeem", ADMIN_REDEEM, "redeem" },
	{ "GET", "/metrics", ADMIN_METRICS, "metrics" },
};

static void
answer_json(struct request *req, struct reply *reply, unsigned status,
    const char *reason, const char *key, const char *value)
{
	json_t	*obj = json_object();
	char	*text = NULL;

	req->reason = reason;
	reply->status = status;
	reply->content_type = "application/json";
	if (obj != NULL && json_object_set_new(obj, key, json_string(value)) == 0)
		text = json_dumps(obj, JSON_COMPACT);
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

void
admin_begin(void *arg, struct request *req, struct reply *reply)
{
	struct app	*app = arg;
	bool		 path_known = false;

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
	if (req->h.content_length_count > 1 || req->h.transfer_encoding_count > 0 ||
	    req->h.bad_content_length || req->h.bad_value || req->h.bad_name) {
		answer_error(req, reply, 400, "framing", "bad request framing");
		reply->close = true;
	} else if (!path_known) {
		answer_error(req, reply, 404, "no_route", "not found");
	} else if (!authorized(app, req->h.authorization)) {
		answer_error(req, reply, 401, "unauthorized", "bearer token required");
	} else if (req->route_id == ADMIN_NONE) {
		answer_error(req, reply, 405, "method", "method not allowed");
	} else if (req->h.has_content_length && req->h.content_length > MAX_ADMIN_BODY) {
		answer_error(req, reply, 413, "body_too_large", "body too large");
	}
}

static void
redeem(struct app *app, struct request *req, struct reply *reply)
{
	json_t			*root, *tok;
	json_error_t		 err;
	uint8_t			 hash[SECRET_HASH_BYTES];
	struct buf		 user = BUF_INIT;
	enum store_redeem	 res;

	root = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, &err);
	tok = json_is_object(root) ? json_object_get(root, "token") : NULL;
	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    json_string_length(tok) > 256) {
		answer_error(req, reply, 400, "bad_json", "expected {\"token\": \"...\"}");
		goto done;
	}
	secret_hash(app->key, json_string_value(tok), json_string_length(tok), hash);
	if (store_token_redeem(app->store, hash, (int64_t)time(NULL), &res, &user) == -1) {
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
	if (root != NULL) {
		/* The token's text lives in jansson's memory: wipe before freeing. */
		if (json_is_string(tok))
			sodium_memzero((void *)(uintptr_t)json_string_value(tok), json_string_length(tok));
		json_decref(root);
	}
	buf_free(&user);
}

void
admin_finish(void *arg, struct request *req, struct reply *reply)
{
	struct app *app = arg;

	if (req->body_overflow) {
		answer_error(req, reply, 413, "body_too_large", "body too large");
		return;
	}
	if (req->route_id == ADMIN_REDEEM) {
		redeem(app, req, reply);
		return;
	}
	reply->status = 200;
	reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (metrics_render(&app->metrics, &reply->body) == -1) {
		buf_free(&reply->body);
		reply->status = 500;
	}
}
