/*
 * handler_reset.c against a fake store (fake_store.h): a known number gets a
 * link whose token carries the id the store gave and whose secret's hash the
 * store keeps; an unknown number, a limited one and a replay past the window
 * get the unknown reply; a retry within it the same link; a store failure
 * is UNAVAILABLE with nothing to send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "config.h"
#include "fake_store.h"
#include "handler.h"
#include "secret.h"

#define ALICE		"+15550000001"
#define SID		"SM0123456789abcdef0123456789abcdef"
#define LINK		"https://app.example/r?t="
#define UNKNOWN		"If this number is registered, you will get a link."

static const char ini[] =
	"[server]\ntls = off\n"
	"[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	"auth_token_file = auth-token\npublic_url = https://sms.example.com\n"
	"[reset]\nlink = " LINK "{token}\nmessage = Reset: {link}\n"
	"unknown_reply = " UNKNOWN "\ntoken_ttl = 15m\nreplay_window = 60s\n"
	"[admin]\nlisten =\n";

struct fx {
	struct config		*cfg;
	struct fake_store	 store;
	struct app		 app;
	struct route		 route;
	struct request		 req;
	struct reply		 reply;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));
	struct buf	 errors = BUF_INIT;
	uint8_t		 bytes[SECRET_KEY_BYTES];

	if (f == NULL || (f->cfg = calloc(1, sizeof(*f->cfg))) == NULL ||
	    config_parse(ini, sizeof(ini) - 1, "t.ini", f->cfg, &errors) != 0) {
		fprintf(stderr, "%.*s", (int)errors.len, errors.data != NULL ? errors.data : "");
		return -1;
	}
	buf_free(&errors);
	fake_store_init(&f->store, ALICE, "alice");
	memset(bytes, 7, sizeof(bytes));
	if (secret_key_from_bytes(bytes, sizeof(bytes), &f->app.key) == -1)
		return -1;
	f->app.cfg = f->cfg;
	f->app.store = &f->store.base;
	f->route = (struct route){ .name = "reset", .handler = &handler_reset };
	f->req.route = &f->route;
	memcpy(f->req.message_sid, SID, sizeof(SID));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	request_release(&f->req);
	reply_release(&f->reply);
	secret_key_free(f->app.key);
	config_free(f->cfg);
	free(f);
	return 0;
}

static void
from(struct fx *f, const char *phone)
{
	assert_int_equal(form_add(&f->req.form, "From", 4, phone, strlen(phone)), 0);
}

/* The text of the reply's <Message>, NUL-terminated in out. */
static const char *
message(const struct fx *f, char *out, size_t outsz)
{
	const char *b = f->reply.body.data, *m, *e;

	assert_non_null(b);
	assert_non_null(m = strstr(b, "<Message>"));
	assert_non_null(e = strstr(m, "</Message>"));
	m += strlen("<Message>");
	snprintf(out, outsz, "%.*s", (int)(e - m), m);
	return out;
}

static void
test_known_number_gets_a_link(void **state)
{
	struct fx	*f = *state;
	char		 text[256];
	const char	*token;
	int64_t		 id;
	uint8_t		 secret[SECRET_RESET_BYTES], hash[SECRET_HASH_BYTES];
	int64_t		 before = (int64_t)time(NULL);

	f->store.token_id = 42;
	from(f, ALICE);
	assert_int_equal(handler_reset.run(&f->app, &f->req, &f->reply), HANDLER_OK);
	assert_int_equal(f->store.finishes, 1);
	assert_true(f->store.had_hash);
	assert_string_equal(f->store.finish_user, "alice");
	assert_true(f->store.expires_at >= before + 15 * 60 &&
	    f->store.expires_at <= f->store.now + 15 * 60);
	/* The link's token names the store's id; the store keeps its secret's hash. */
	message(f, text, sizeof(text));
	assert_non_null(token = strstr(text, LINK));
	token += strlen(LINK);
	assert_true(secret_reset_token_parse(f->app.key, token, strlen(token), &id, secret));
	assert_int_equal(id, 42);
	secret_hash(f->app.key, (const char *)secret, sizeof(secret), hash);
	assert_memory_equal(hash, f->store.hash, sizeof(hash));
	assert_int_equal(f->app.metrics.counter[METRIC_RESET_ISSUED], 1);
}

static void
test_unknown_and_limited_get_the_unknown_reply(void **state)
{
	struct fx	*f = *state;
	char		 text[256];

	from(f, "+15550009999");
	assert_int_equal(handler_reset.run(&f->app, &f->req, &f->reply), HANDLER_OK);
	assert_false(f->store.had_hash);
	assert_string_equal(message(f, text, sizeof(text)), UNKNOWN);
	assert_int_equal(f->app.metrics.counter[METRIC_RESET_UNKNOWN_NUMBER], 1);

	/* A limited request learns no more than an unknown number. */
	reply_release(&f->reply);
	form_free(&f->req.form);
	from(f, ALICE);
	f->store.limited_by = 0;
	assert_int_equal(handler_reset.run(&f->app, &f->req, &f->reply), HANDLER_OK);
	assert_string_equal(message(f, text, sizeof(text)), UNKNOWN);
	assert_int_equal(f->app.metrics.counter[METRIC_RESET_ISSUED], 0);
}

static void
test_store_failure_is_unavailable(void **state)
{
	struct fx *f = *state;

	from(f, ALICE);
	f->store.fail = -1;
	assert_int_equal(handler_reset.run(&f->app, &f->req, &f->reply), HANDLER_UNAVAILABLE);
	assert_int_equal(f->reply.body.len, 0);
}

static void
test_repeat_within_and_after_the_window(void **state)
{
	struct fx		*f = *state;
	struct store_claim	 claim = { .state = STORE_CLAIM_DONE, .id = 42 };
	enum handler_repeat	 repeat;
	char			 first[256], again[256];
	int64_t			 now = (int64_t)time(NULL);

	f->store.token_id = 42;
	from(f, ALICE);
	assert_int_equal(handler_reset.run(&f->app, &f->req, &f->reply), HANDLER_OK);
	message(f, first, sizeof(first));
	claim.outcome = f->store.outcome;
	claim.first_at = now;
	reply_release(&f->reply);
	assert_int_equal(handler_reset.replay(&f->app, &f->req, &claim, now + 59, &f->reply,
	    &repeat), HANDLER_OK);
	assert_int_equal(repeat, HANDLER_RETRY);
	assert_string_equal(message(f, again, sizeof(again)), first);
	reply_release(&f->reply);
	assert_int_equal(handler_reset.replay(&f->app, &f->req, &claim, now + 61, &f->reply,
	    &repeat), HANDLER_OK);
	assert_int_equal(repeat, HANDLER_REPLAY);
	assert_string_equal(message(f, again, sizeof(again)), UNKNOWN);
	assert_int_equal(f->store.finishes, 1);		/* no side effect on a repeat */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_known_number_gets_a_link),
		T(test_unknown_and_limited_get_the_unknown_reply),
		T(test_store_failure_is_unavailable),
		T(test_repeat_within_and_after_the_window),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
