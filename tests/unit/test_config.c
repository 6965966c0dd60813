/*
 * config_parse and config_load: one table per behaviour. Every bad value is
 * checked against its exact "FILE:LINE: [section] key: message" line; the
 * config_load cases run in a mkdtemp directory with real files and modes.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "defaults.h"

#define NAME	"t.ini"

#define MINIMAL_HEAD \
	"[server]\n"							\
	"tls_cert = cert.pem\n"						\
	"tls_key = key.pem\n"						\
	"[twilio]\n"							\
	"account_sid = AC0123456789abcdef0123456789abcdef\n"		\
	"auth_token_file = auth-token\n"
#define MINIMAL_TAIL \
	"[reset]\n"							\
	"link = https://example.com/reset?token={token}\n"		\
	"[admin]\n"							\
	"token_file = admin-token\n"
/* Eleven lines; appended cases start on line 12. */
#define MINIMAL \
	MINIMAL_HEAD "public_url = https://sms.example.com\n" MINIMAL_TAIL
/* Ten lines, all but public_url: for cases that set it, from line 11. */
#define MINIMAL_NO_URL	MINIMAL_HEAD MINIMAL_TAIL

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Parse len bytes; the caller frees *cfg with config_free. */
static int
parse_n(const char *text, size_t len, struct config **cfg, struct buf *errs)
{
	*cfg = calloc(1, sizeof(**cfg));
	assert_non_null(*cfg);
	return config_parse(text, len, NAME, *cfg, errs);
}

static int
parse(const char *text, struct config **cfg, struct buf *errs)
{
	return parse_n(text, strlen(text), cfg, errs);
}

/* text must produce exactly the error lines in want ("" = valid). */
static void
expect_n(const char *text, size_t len, const char *want)
{
	struct buf	 errs = BUF_INIT;
	struct config	*cfg;
	int		 n, lines = 0;

	n = parse_n(text, len, &cfg, &errs);
	for (const char *p = want; *p != '\0'; p++)
		lines += *p == '\n';
	if (strcmp(errs.data ? errs.data : "", want) != 0 || n != lines)
		fail_msg("input:\n%s\nwant %d error(s):\n%sgot %d:\n%s", text,
		    lines, want, n, errs.data ? errs.data : "");
	config_free(cfg);
	buf_free(&errs);
}

static void
expect(const char *text, const char *want)
{
	expect_n(text, strlen(text), want);
}

static void
test_minimal_valid(void **state)
{
	(void)state;
	expect(MINIMAL, "");
}

static void
test_defaults(void **state)
{
	struct buf	 errs = BUF_INIT;
	struct config	*c;

	(void)state;
	assert_int_equal(parse(MINIMAL, &c, &errs), 0);
	assert_string_equal(c->path, NAME);
	assert_string_equal(c->listen, DEFAULT_LISTEN);
	assert_true(c->tls);
	assert_string_equal(c->tls_cert, "cert.pem");
	assert_string_equal(c->tls_key, "key.pem");
	assert_string_equal(c->tls_priorities, DEFAULT_TLS_PRIORITIES);
	assert_int_equal(c->threads, 0);
	assert_int_equal(c->max_connections, DEFAULT_MAX_CONNECTIONS);
	assert_int_equal(c->max_connections_per_ip, DEFAULT_MAX_CONNECTIONS_PER_IP);
	assert_int_equal(c->request_timeout, DEFAULT_REQUEST_TIMEOUT);
	assert_int_equal(c->idle_timeout, DEFAULT_IDLE_TIMEOUT);
	assert_false(c->reuse_port);
	assert_int_equal(c->max_body, DEFAULT_MAX_BODY);
	assert_int_equal(c->drain_delay, DEFAULT_DRAIN_DELAY);
	assert_int_equal(c->shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
	assert_string_equal(c->account_sid, "AC0123456789abcdef0123456789abcdef");
	assert_string_equal(c->auth_token_file, "auth-token");
	assert_null(c->auth_token.data);	/* files are read by config_load */
	assert_null(c->secondary_auth_token_file);
	assert_null(c->secondary_auth_token.data);
	assert_int_equal(c->public_url.count, 1);
	assert_string_equal(c->public_url.url[0], "https://sms.example.com");
	assert_string_equal(c->api_base_url, DEFAULT_API_BASE_URL);
	assert_null(c->from_number);
	assert_null(c->messaging_service_sid);
	assert_null(c->api_key_sid);
	assert_null(c->api_key_secret_file);
	assert_null(c->api_key_secret.data);
	assert_int_equal(c->api_key_secret.len, 0);
	assert_null(c->api_ca_file);
	assert_string_equal(c->status_route, DEFAULT_STATUS_ROUTE);
	assert_null(c->trusted);
	assert_int_equal(c->trusted_count, 0);
	assert_string_equal(c->store_driver, DEFAULT_STORE_DRIVER);
	assert_string_equal(c->store_path, DEFAULT_STORE_PATH);
	assert_string_equal(c->server_key_file, DEFAULT_SERVER_KEY_FILE);
	assert_string_equal(c->reset_route, DEFAULT_RESET_ROUTE);
	assert_string_equal(c->reset_link, "https://example.com/reset?token={token}");
	assert_string_equal(c->reset_message, DEFAULT_RESET_MESSAGE);
	assert_int_equal(c->reset_token_ttl, DEFAULT_TOKEN_TTL);
	assert_string_equal(c->reset_unknown_reply, "");
	assert_int_equal(c->reset_replay_window, DEFAULT_REPLAY_WINDOW);
	assert_int_equal(DEFAULT_REPLAY_WINDOW, 60);
	assert_string_equal(c->pin_route, DEFAULT_PIN_ROUTE);
	assert_int_equal(c->pin_digits, DEFAULT_PIN_DIGITS);
	assert_int_equal(c->pin_ttl, DEFAULT_PIN_TTL);
	assert_int_equal(c->pin_max_attempts, DEFAULT_PIN_MAX_ATTEMPTS);
	assert_string_equal(c->pin_message, DEFAULT_PIN_MESSAGE);
	assert_int_equal(c->limit_reset_per_number.count, DEFAULT_RESET_PER_NUMBER);
	assert_int_equal(c->limit_reset_per_number.window, DEFAULT_LIMIT_WINDOW);
	assert_int_equal(c->limit_pin_per_number.count, DEFAULT_PIN_PER_NUMBER);
	assert_int_equal(c->limit_pin_per_number.window, DEFAULT_LIMIT_WINDOW);
	assert_int_equal(c->limit_outbound_budget.count, DEFAULT_OUTBOUND_BUDGET);
	assert_int_equal(c->limit_outbound_budget.window, DEFAULT_LIMIT_WINDOW);
	assert_string_equal(c->admin_listen, DEFAULT_ADMIN_LISTEN);
	assert_string_equal(c->admin_token_file, "admin-token");
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	assert_int_equal(c->inline_secret_line, 0);
	config_free(c);
	buf_free(&errs);
}

/* Appended to MINIMAL: each line is an error at a known line number. */
static const struct {
	const char	*extra;
	const char	*want;
} bad_values[] = {
	{ "[server]\nthreads = 257\n", NAME ":13: [server] threads: '257' is out of range (0 to 256)\n" },
	{ "[server]\nthreads = -1\n", NAME ":13: [server] threads: '-1' is not a whole number\n" },
	{ "[server]\nthreads = +1\n", NAME ":13: [server] threads: '+1' is not a whole number\n" },
	{ "[server]\nthreads = 4x\n", NAME ":13: [server] threads: '4x' is not a whole number\n" },
	{ "[server]\nthreads = 0x10\n", NAME ":13: [server] threads: '0x10' is not a whole number\n" },
	{ "[server]\nthreads = 99999999999999999999999\n", NAME ":13: [server] threads: '99999999999999999999999' is out of range (0 to 256)\n" },
	{ "[server]\nmax_connections = 0\n", NAME ":13: [server] max_connections: '0' is out of range (1 to 65536)\n" },
	{ "[server]\nmax_connections_per_ip = 70000\n", NAME ":13: [server] max_connections_per_ip: '70000' is out of range (0 to 65536)\n" },
	{ "[server]\nrequest_timeout = 0\n", NAME ":13: [server] request_timeout: '0' is out of range (1s to 10m)\n" },
	{ "[server]\nrequest_timeout = 11m\n", NAME ":13: [server] request_timeout: '11m' is out of range (1s to 10m)\n" },
	{ "[server]\nrequest_timeout = 10x\n", NAME ":13: [server] request_timeout: '10x' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[server]\nrequest_timeout = 1h30m\n", NAME ":13: [server] request_timeout: '1h30m' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[server]\nrequest_timeout = s\n", NAME ":13: [server] request_timeout: 's' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[server]\nrequest_timeout = 18446744073709551615h\n", NAME ":13: [server] request_timeout: '18446744073709551615h' is out of range (1s to 10m)\n" },
	{ "[server]\nidle_timeout = 0\n", NAME ":13: [server] idle_timeout: '0' is out of range (1s to 10m)\n" },
	{ "[server]\nidle_timeout = 20s\n", NAME ":13: [server] idle_timeout: idle_timeout (20s) must not exceed request_timeout (10s)\n" },
	{ "[server]\nrequest_timeout = 3s\n", NAME ":13: [server] request_timeout: idle_timeout (5s) must not exceed request_timeout (3s)\n" },
	{ "[server]\nreuse_port = sometimes\n", NAME ":13: [server] reuse_port: 'sometimes' is not on or off\n" },
	{ "[server]\nmax_body = 512\n", NAME ":13: [server] max_body: '512' is out of range (1k to 1m)\n" },
	{ "[server]\nmax_body = 2m\n", NAME ":13: [server] max_body: '2m' is out of range (1k to 1m)\n" },
	{ "[server]\nmax_body = 16kb\n", NAME ":13: [server] max_body: '16kb' is not a size (such as 16k or 1m)\n" },
	{ "[server]\ndrain_delay = -5s\n", NAME ":13: [server] drain_delay: '-5s' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[server]\nshutdown_timeout = 2h\n", NAME ":13: [server] shutdown_timeout: '2h' is out of range (1s to 1h)\n" },
	{ "[server]\ntls = maybe\n", NAME ":13: [server] tls: 'maybe' is not on or off\n" },
	{ "[server]\nlisten = 127.0.0.1\n", NAME ":13: [server] listen: '127.0.0.1' is not address:port (such as 0.0.0.0:8443 or [::]:8443)\n" },
	{ "[server]\nlisten = localhost:8443\n", NAME ":13: [server] listen: 'localhost' is not an IP address (host names are not resolved)\n" },
	{ "[server]\nlisten = ::1:8443\n", NAME ":13: [server] listen: '::1:8443': an IPv6 address needs brackets, as in [::1]:8443\n" },
	{ "[server]\nlisten = 127.0.0.1:0\n", NAME ":13: [server] listen: '0' is not a port (1 to 65535)\n" },
	{ "[server]\nlisten = 127.0.0.1:65536\n", NAME ":13: [server] listen: '65536' is not a port (1 to 65535)\n" },
	{ "[server]\nlisten = [::1]8443\n", NAME ":13: [server] listen: '[::1]8443' is not address:port (such as 0.0.0.0:8443 or [::]:8443)\n" },
	{ "[server]\nlisten = [127.0.0.1]:8443\n", NAME ":13: [server] listen: '127.0.0.1' is not an IP address (host names are not resolved)\n" },
	{ "[server]\nlisten =\n", NAME ":13: [server] listen: needs a value\n" },
	{ "[server]\ntls_priorities = NORMAL\x01\n", NAME ":13: [server] tls_priorities: contains a control character\n" },
	{ "[twilio]\nsecondary_auth_token_file =\n", NAME ":13: [twilio] secondary_auth_token_file: needs a value\n" },
	{ "[proxy]\ntrusted = 10.0.0.0/33\n", NAME ":13: [proxy] trusted: '10.0.0.0/33' is not an IP address or CIDR network\n" },
	{ "[proxy]\ntrusted = 10.0.0.0/8, bogus\n", NAME ":13: [proxy] trusted: 'bogus' is not an IP address or CIDR network\n" },
	{ "[proxy]\ntrusted = ::1/129\n", NAME ":13: [proxy] trusted: '::1/129' is not an IP address or CIDR network\n" },
	{ "[proxy]\ntrusted = 10.0.0.1/\n", NAME ":13: [proxy] trusted: '10.0.0.1/' is not an IP address or CIDR network\n" },
	{ "[proxy]\ntrusted = 10.0.0.1/-1\n", NAME ":13: [proxy] trusted: '10.0.0.1/-1' is not an IP address or CIDR network\n" },
	{ "[proxy]\ntrusted = 10.0.0/8\n", NAME ":13: [proxy] trusted: '10.0.0/8' is not an IP address or CIDR network\n" },
	{ "[store]\ndriver = postgresql\n", NAME ":12: [store] dsn_file: required with driver = postgresql (or dsn inline)\n" },
	{ "[store]\ndriver = pg\n", NAME ":13: [store] driver: 'pg' is not a store driver (use sqlite or postgresql)\n" },
	{ "[store]\ndriver = mysql\n", NAME ":13: [store] driver: 'mysql' is not a store driver (use sqlite or postgresql)\n" },
	{ "[store]\ndriver = postgresql\ndsn_file = dsn\ndsn = host=db\n", NAME ":15: [store] dsn: set dsn_file or dsn, not both\n" },
	{ "[store]\ndriver = postgresql\npath = x.db\ndsn_file = dsn\n", NAME ":14: [store] path: for driver = sqlite only (postgresql takes dsn_file or dsn)\n" },
	{ "[store]\ndsn_file = dsn\n", NAME ":13: [store] dsn_file: for driver = postgresql only\n" },
	{ "[store]\ndriver = sqlite\ndsn = host=db\n", NAME ":14: [store] dsn: for driver = postgresql only\n" },
	{ "[store]\ndriver = postgresql\ndsn =\n", NAME ":14: [store] dsn: needs a value\n" },
	{ "[store]\npath =\n", NAME ":13: [store] path: needs a value\n" },
	{ "[secrets]\nserver_key_file =\n", NAME ":13: [secrets] server_key_file: needs a value\n" },
	{ "[reset]\nroute = sms/reset\n", NAME ":13: [reset] route: 'sms/reset' must start with '/'\n" },
	{ "[reset]\nroute = /sms/reset?x=1\n", NAME ":13: [reset] route: '/sms/reset?x=1' must be a plain path: no spaces, '?' or '#'\n" },
	{ "[reset]\nroute = /healthz\n", NAME ":13: [reset] route: /healthz is a built-in route\n" },
	{ "[reset]\nroute = /readyz\n", NAME ":13: [reset] route: /readyz is a built-in route\n" },
	{ "[reset]\nmessage = Hello\n", NAME ":13: [reset] message: must contain {link}\n" },
	{ "[reset]\ntoken_ttl = 30s\n", NAME ":13: [reset] token_ttl: '30s' is out of range (1m to 24h)\n" },
	{ "[reset]\ntoken_ttl = 25h\n", NAME ":13: [reset] token_ttl: '25h' is out of range (1m to 24h)\n" },
	{ "[reset]\nunknown_reply = \xff\xfe\n", NAME ":13: [reset] unknown_reply: is not valid UTF-8\n" },
	{ "[reset]\nunknown_reply = \xc0\xaf\n", NAME ":13: [reset] unknown_reply: is not valid UTF-8\n" },
	{ "[reset]\nunknown_reply = \xed\xa0\x80\n", NAME ":13: [reset] unknown_reply: is not valid UTF-8\n" },
	{ "[reset]\nunknown_reply = \xe2\x82\n", NAME ":13: [reset] unknown_reply: is not valid UTF-8\n" },
	{ "[reset]\nreplay_window = 61m\n", NAME ":13: [reset] replay_window: '61m' is out of range (0s to 1h)\n" },
	{ "[reset]\nreplay_window = 3601\n", NAME ":13: [reset] replay_window: '3601' is out of range (0s to 1h)\n" },
	{ "[reset]\nreplay_window = -1s\n", NAME ":13: [reset] replay_window: '-1s' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[reset]\nreplay_window = off\n", NAME ":13: [reset] replay_window: 'off' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[reset]\nreplay_window =\n", NAME ":13: [reset] replay_window: needs a value\n" },
	{ "[pin]\nreplay_window = 2s\n", NAME ":13: [pin] replay_window: unknown key\n" },
	{ "[admin]\nlisten = 0.0.0.0:8443\n", NAME ":13: [admin] listen: same address as [server] listen\n" },
	/* [twilio]: the Messages API. */
	{ "[twilio]\napi_base_url = http://api.twilio.com\n", NAME ":13: [twilio] api_base_url: 'http://api.twilio.com' must start with https://\n" },
	{ "[twilio]\napi_base_url = ftp://api.twilio.com\n", NAME ":13: [twilio] api_base_url: 'ftp://api.twilio.com' must start with https://\n" },
	{ "[twilio]\napi_base_url = api.twilio.com\n", NAME ":13: [twilio] api_base_url: 'api.twilio.com' must start with https://\n" },
	{ "[twilio]\napi_base_url = https://api.twilio.com/?x=1\n", NAME ":13: [twilio] api_base_url: must not have a query or fragment: each request's own path and query follow it\n" },
	{ "[twilio]\napi_base_url = https://api.twilio.com#f\n", NAME ":13: [twilio] api_base_url: must not have a query or fragment: each request's own path and query follow it\n" },
	{ "[twilio]\napi_base_url = https://\n", NAME ":13: [twilio] api_base_url: 'https://' has no valid host[:port]\n" },
	{ "[twilio]\napi_base_url = https://ac:tok@api.twilio.com\n", NAME ":13: [twilio] api_base_url: must not contain user:password@\n" },
	{ "[twilio]\napi_base_url = https://api.twilio.com:0\n", NAME ":13: [twilio] api_base_url: 'https://api.twilio.com:0' has no valid host[:port]\n" },
	{ "[twilio]\napi_base_url =\n", NAME ":13: [twilio] api_base_url: needs a value\n" },
	{ "[twilio]\nfrom_number = 14155550100\n", NAME ":13: [twilio] from_number: '14155550100' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +04155550100\n", NAME ":13: [twilio] from_number: '+04155550100' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +1\n", NAME ":13: [twilio] from_number: '+1' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +1234567890123456\n", NAME ":13: [twilio] from_number: '+1234567890123456' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +1 415 555 0100\n", NAME ":13: [twilio] from_number: '+1 415 555 0100' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +1-415-555-0100\n", NAME ":13: [twilio] from_number: '+1-415-555-0100' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = ++14155550100\n", NAME ":13: [twilio] from_number: '++14155550100' is not an E.164 number ('+' and 2 to 15 digits, such as +14155550100)\n" },
	{ "[twilio]\nfrom_number = +123456789012345678901234567890123\n", NAME ":13: [twilio] from_number: longer than 32 bytes\n" },
	{ "[twilio]\nfrom_number =\n", NAME ":13: [twilio] from_number: needs a value\n" },
	{ "[twilio]\nmessaging_service_sid = MG0123456789ABCDEF0123456789abcdef\n", NAME ":13: [twilio] messaging_service_sid: 'MG0123456789ABCDEF0123456789abcdef' is not a messaging service SID (MG and 32 lower-case hex digits)\n" },
	{ "[twilio]\nmessaging_service_sid = AC0123456789abcdef0123456789abcdef\n", NAME ":13: [twilio] messaging_service_sid: 'AC0123456789abcdef0123456789abcdef' is not a messaging service SID (MG and 32 lower-case hex digits)\n" },
	{ "[twilio]\nmessaging_service_sid = MG0123456789abcdef0123456789abcdef0\n", NAME ":13: [twilio] messaging_service_sid: longer than 34 bytes\n" },
	{ "[twilio]\nmessaging_service_sid = mg0123456789abcdef0123456789abcdef\n", NAME ":13: [twilio] messaging_service_sid: 'mg0123456789abcdef0123456789abcdef' is not a messaging service SID (MG and 32 lower-case hex digits)\n" },
	{ "[twilio]\napi_key_secret_file = k\napi_key_sid = SK0123\n", NAME ":14: [twilio] api_key_sid: 'SK0123' is not an API key SID (SK and 32 lower-case hex digits)\n" },
	{ "[twilio]\napi_key_secret_file = k\napi_key_sid = MG0123456789abcdef0123456789abcdef\n", NAME ":14: [twilio] api_key_sid: 'MG0123456789abcdef0123456789abcdef' is not an API key SID (SK and 32 lower-case hex digits)\n" },
	{ "[twilio]\napi_key_secret_file = k\napi_key_sid = SK0123456789abcdef0123456789abcdeg\n", NAME ":14: [twilio] api_key_sid: 'SK0123456789abcdef0123456789abcdeg' is not an API key SID (SK and 32 lower-case hex digits)\n" },
	{ "[twilio]\napi_key_sid = SK0123456789abcdef0123456789abcdef\napi_key_secret_file =\n", NAME ":14: [twilio] api_key_secret_file: needs a value\n" },
	{ "[twilio]\napi_key_sid = SK0123456789abcdef0123456789abcdef\napi_key_secret =\n", NAME ":14: [twilio] api_key_secret: needs a value\n" },
	{ "[twilio]\napi_ca_file =\n", NAME ":13: [twilio] api_ca_file: needs a value\n" },
	{ "[twilio]\nstatus_route = sms/status\n", NAME ":13: [twilio] status_route: 'sms/status' must start with '/'\n" },
	{ "[twilio]\nstatus_route = /sms/status#x\n", NAME ":13: [twilio] status_route: '/sms/status#x' must be a plain path: no spaces, '?' or '#'\n" },
	{ "[twilio]\nstatus_route = /healthz\n", NAME ":13: [twilio] status_route: /healthz is a built-in route\n" },
	{ "[twilio]\nstatus_route =\n", NAME ":13: [twilio] status_route: needs a value\n" },
	/* [twilio]: one sender; an API key only with its secret. */
	{ "[twilio]\nfrom_number = +14155550100\nmessaging_service_sid = MG0123456789abcdef0123456789abcdef\n", NAME ":14: [twilio] messaging_service_sid: set from_number or messaging_service_sid, not both\n" },
	{ "[twilio]\nmessaging_service_sid = MG0123456789abcdef0123456789abcdef\nfrom_number = +14155550100\n", NAME ":14: [twilio] from_number: set from_number or messaging_service_sid, not both\n" },
	{ "[twilio]\napi_key_sid = SK0123456789abcdef0123456789abcdef\n", NAME ":4: [twilio] api_key_secret_file: required with api_key_sid (or api_key_secret inline)\n" },
	{ "[twilio]\napi_key_sid = SK0123\n", NAME ":13: [twilio] api_key_sid: 'SK0123' is not an API key SID (SK and 32 lower-case hex digits)\n" NAME ":4: [twilio] api_key_secret_file: required with api_key_sid (or api_key_secret inline)\n" },
	{ "[twilio]\napi_key_secret_file = api-key-secret\n", NAME ":4: [twilio] api_key_sid: required with api_key_secret_file\n" },
	{ "[twilio]\napi_key_secret = s3cret\n", NAME ":4: [twilio] api_key_sid: required with api_key_secret\n" },
	{ "[twilio]\napi_key_sid = SK0123456789abcdef0123456789abcdef\napi_key_secret = s\napi_key_secret_file = f\n", NAME ":15: [twilio] api_key_secret_file: set api_key_secret_file or api_key_secret, not both\n" },
	/* [pin] */
	{ "[pin]\nroute = sms/pin\n", NAME ":13: [pin] route: 'sms/pin' must start with '/'\n" },
	{ "[pin]\nroute = /sms/pin?x\n", NAME ":13: [pin] route: '/sms/pin?x' must be a plain path: no spaces, '?' or '#'\n" },
	{ "[pin]\nroute = /readyz\n", NAME ":13: [pin] route: /readyz is a built-in route\n" },
	{ "[pin]\nroute =\n", NAME ":13: [pin] route: needs a value\n" },
	{ "[pin]\ndigits = 3\n", NAME ":13: [pin] digits: '3' is out of range (4 to 10)\n" },
	{ "[pin]\ndigits = 11\n", NAME ":13: [pin] digits: '11' is out of range (4 to 10)\n" },
	{ "[pin]\ndigits = six\n", NAME ":13: [pin] digits: 'six' is not a whole number\n" },
	{ "[pin]\nttl = 59s\n", NAME ":13: [pin] ttl: '59s' is out of range (1m to 1h)\n" },
	{ "[pin]\nttl = 61m\n", NAME ":13: [pin] ttl: '61m' is out of range (1m to 1h)\n" },
	{ "[pin]\nttl = 10 m\n", NAME ":13: [pin] ttl: '10 m' is not a duration (such as 30s, 15m or 1h)\n" },
	{ "[pin]\nmax_attempts = 0\n", NAME ":13: [pin] max_attempts: '0' is out of range (1 to 20)\n" },
	{ "[pin]\nmax_attempts = 21\n", NAME ":13: [pin] max_attempts: '21' is out of range (1 to 20)\n" },
	{ "[pin]\nmessage = Your code\n", NAME ":13: [pin] message: must contain {pin}\n" },
	{ "[pin]\nmessage = Your code {PIN}\n", NAME ":13: [pin] message: must contain {pin}\n" },
	{ "[pin]\nmessage =\n", NAME ":13: [pin] message: needs a value\n" },
	{ "[pin]\nmessage = {pin} \xff\n", NAME ":13: [pin] message: is not valid UTF-8\n" },
	{ "[pin]\nlink = {pin}\n", NAME ":13: [pin] link: unknown key\n" },
	/* Routes share the public listener: each its own. */
	{ "[pin]\nroute = /sms/reset\n", NAME ":13: [pin] route: same path as [reset] route\n" },
	{ "[reset]\nroute = /sms/pin\n", NAME ":13: [reset] route: same path as [pin] route\n" },
	{ "[twilio]\nstatus_route = /sms/pin\n", NAME ":13: [twilio] status_route: same path as [pin] route\n" },
	{ "[pin]\nroute = /sms/status\n", NAME ":13: [pin] route: same path as [twilio] status_route\n" },
	{ "[reset]\nroute = /x\n[pin]\nroute = /x\n", NAME ":15: [pin] route: same path as [reset] route\n" },
	{ "[pin]\nroute = /x\n[reset]\nroute = /x\n[twilio]\nstatus_route = /x\n",
	  NAME ":17: [twilio] status_route: same path as [reset] route\n"
	  NAME ":15: [reset] route: same path as [pin] route\n" },
	{ "[pin]\nroute = /healthz\n[reset]\nroute = /healthz\n",
	  NAME ":15: [reset] route: /healthz is a built-in route\n"
	  NAME ":13: [pin] route: /healthz is a built-in route\n" },
	/* [limits]: rates. */
	{ "[limits]\nreset_per_number = 3\n", NAME ":13: [limits] reset_per_number: '3' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3/\n", NAME ":13: [limits] reset_per_number: '3/' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = /1h\n", NAME ":13: [limits] reset_per_number: '/1h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3 / 1h\n", NAME ":13: [limits] reset_per_number: '3 / 1h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = -3/1h\n", NAME ":13: [limits] reset_per_number: '-3/1h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = +3/1h\n", NAME ":13: [limits] reset_per_number: '+3/1h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3/1d\n", NAME ":13: [limits] reset_per_number: '3/1d' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3/1h30m\n", NAME ":13: [limits] reset_per_number: '3/1h30m' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3/h\n", NAME ":13: [limits] reset_per_number: '3/h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3k/1h\n", NAME ":13: [limits] reset_per_number: '3k/1h' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 3/1h/2\n", NAME ":13: [limits] reset_per_number: '3/1h/2' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = none\n", NAME ":13: [limits] reset_per_number: 'none' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 0\n", NAME ":13: [limits] reset_per_number: '0' is not a rate (such as 3/1h or 10/90s) or off\n" },
	{ "[limits]\nreset_per_number = 123456789012345678901234/1h\n", NAME ":13: [limits] reset_per_number: '123456789012345678901234/1h' is out of range (count 1 to 1000000, or off)\n" },
	{ "[limits]\nreset_per_number =\n", NAME ":13: [limits] reset_per_number: needs a value\n" },
	{ "[limits]\npin_per_number = 0/1h\n", NAME ":13: [limits] pin_per_number: '0/1h' is out of range (count 1 to 1000000, or off)\n" },
	{ "[limits]\npin_per_number = 1000001/1h\n", NAME ":13: [limits] pin_per_number: '1000001/1h' is out of range (count 1 to 1000000, or off)\n" },
	{ "[limits]\npin_per_number = 99999999999999999999/1h\n", NAME ":13: [limits] pin_per_number: '99999999999999999999/1h' is out of range (count 1 to 1000000, or off)\n" },
	{ "[limits]\noutbound_budget = 5/0s\n", NAME ":13: [limits] outbound_budget: '5/0s' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/0\n", NAME ":13: [limits] outbound_budget: '5/0' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/169h\n", NAME ":13: [limits] outbound_budget: '5/169h' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/604801\n", NAME ":13: [limits] outbound_budget: '5/604801' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/18446744073709551615h\n", NAME ":13: [limits] outbound_budget: '5/18446744073709551615h' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/99999999999999999999\n", NAME ":13: [limits] outbound_budget: '5/99999999999999999999' is out of range (window 1s to 168h)\n" },
	{ "[limits]\noutbound_budget = 5/1h\noutbound_budget = off\n", NAME ":14: [limits] outbound_budget: duplicate key (first set on line 13)\n" },
	{ "[log]\nlevel = loud\n", NAME ":13: [log] level: 'loud' is not a log level (debug, info, warn, error)\n" },
	/* Structure. */
	{ "[server]\nport = 8443\n", NAME ":13: [server] port: unknown key\n" },
	{ "[server]\napi_base_url = x\n", NAME ":13: [server] api_base_url: unknown key\n" },
	{ "[limits]\nreset_per_number = 3/1h\nother = 1\n", NAME ":14: [limits] other: unknown key\n" },
	{ "[pins]\n", NAME ":12: [pins]: unknown section\n" },
	{ "[Server]\n", NAME ":12: [Server]: unknown section\n" },
	{ "[ server ]\n", NAME ":12: [ server ]: unknown section\n" },
	{ "[server\nthreads = 1\n", NAME ":12: section header without ']'\n" },
	{ "[server] junk\n", NAME ":12: unexpected text after ']'\n" },
	{ "[server]\ntls_cert = other.pem\n", NAME ":13: [server] tls_cert: duplicate key (first set on line 2)\n" },
	{ "[server]\nthreads = 2\nthreads = 2\n", NAME ":14: [server] threads: duplicate key (first set on line 13)\n" },
	{ "[server]\nthreads = 2\n  4\n", NAME ":14: indented line: continuation lines are not supported, put the value on one line\n" },
	{ "[server]\n\tthreads = 2\n", NAME ":13: indented line: continuation lines are not supported, put the value on one line\n" },
	{ "[server]\nthreads\n", NAME ":13: expected 'name = value'\n" },
	{ "[server]\nthreads 4 ; = 5\n", NAME ":13: expected 'name = value'\n" },
	{ "[server]\n= 4\n", NAME ":13: [server] : unknown key\n" },
};

static void
test_bad_values(void **state)
{
	char	text[4096];

	(void)state;
	for (size_t i = 0; i < NELEM(bad_values); i++) {
		int n = snprintf(text, sizeof(text), "%s%s", MINIMAL,
		    bad_values[i].extra);
		assert_true(n > 0 && (size_t)n < sizeof(text));
		expect(text, bad_values[i].want);
	}
}

/* Appended to MINIMAL_NO_URL: public_url, set on line 12. */
static const struct {
	const char	*extra;
	const char	*want;
} bad_urls[] = {
	{ "[twilio]\npublic_url = ftp://example.com\n", NAME ":12: [twilio] public_url: 'ftp://example.com' must start with https:// or http://\n" },
	{ "[twilio]\npublic_url = HTTPS://example.com\n", NAME ":12: [twilio] public_url: 'HTTPS://example.com' must start with https:// or http://\n" },
	{ "[twilio]\npublic_url = https://example.com/a?b=1\n", NAME ":12: [twilio] public_url: must not have a query or fragment: each request's own path and query follow it\n" },
	{ "[twilio]\npublic_url = https://example.com/#x\n", NAME ":12: [twilio] public_url: must not have a query or fragment: each request's own path and query follow it\n" },
	{ "[twilio]\npublic_url = https://\n", NAME ":12: [twilio] public_url: 'https://' has no valid host[:port]\n" },
	{ "[twilio]\npublic_url = https:///sms\n", NAME ":12: [twilio] public_url: 'https:///sms' has no valid host[:port]\n" },
	{ "[twilio]\npublic_url = https://user:pw@example.com\n", NAME ":12: [twilio] public_url: must not contain user:password@\n" },
	{ "[twilio]\npublic_url = https://example.com:99999\n", NAME ":12: [twilio] public_url: 'https://example.com:99999' has no valid host[:port]\n" },
	{ "[twilio]\npublic_url = https://exa_mple.com\n", NAME ":12: [twilio] public_url: 'https://exa_mple.com' has no valid host[:port]\n" },
	{ "[twilio]\npublic_url = https://[::1\n", NAME ":12: [twilio] public_url: 'https://[::1' has no valid host[:port]\n" },
	/* A list: separated by spaces or tabs, each URL checked on its own. */
	{ "[twilio]\npublic_url = https://a b.com\n", NAME ":12: [twilio] public_url: 'b.com' must start with https:// or http://\n" },
	{ "[twilio]\npublic_url = https://a.example  ftp://b.example\n", NAME ":12: [twilio] public_url: 'ftp://b.example' must start with https:// or http://\n" },
	{ "[twilio]\npublic_url = https://a.example\thttps://b.example\n", NAME ":12: [twilio] public_url: contains a control character\n" },
	{ "[twilio]\npublic_url = https://a.example https://a.example/\n", NAME ":12: [twilio] public_url: 'https://a.example' is listed twice\n" },
	{ "[twilio]\npublic_url = https://a.example/x https://b.example https://a.example/x\n", NAME ":12: [twilio] public_url: 'https://a.example/x' is listed twice\n" },
	{ "[twilio]\npublic_url = https://a.example https://a.example:443\n", NAME ":12: [twilio] public_url: 'https://a.example:443' is listed twice (with and without its default port)\n" },
	{ "[twilio]\npublic_url = http://a.example:80/p http://a.example/p\n", NAME ":12: [twilio] public_url: 'http://a.example/p' is listed twice (with and without its default port)\n" },
	{ "[twilio]\npublic_url = https://1.example https://2.example https://3.example https://4.example https://5.example https://6.example https://7.example https://8.example https://9.example\n", NAME ":12: [twilio] public_url: more than 8 URLs\n" },
	{ "[twilio]\npublic_url =\n", NAME ":12: [twilio] public_url: needs a value\n" },
};

static void
test_bad_urls(void **state)
{
	char	text[4096];

	(void)state;
	for (size_t i = 0; i < NELEM(bad_urls); i++) {
		int n = snprintf(text, sizeof(text), "%s%s", MINIMAL_NO_URL,
		    bad_urls[i].extra);
		assert_true(n > 0 && (size_t)n < sizeof(text));
		expect(text, bad_urls[i].want);
	}
	/* Required, and reported at its section's header. */
	expect(MINIMAL_NO_URL, NAME ":4: [twilio] public_url: required\n");
}

/* Whole files: missing keys, cross-key rules, keys outside sections. */
static const struct {
	const char	*text;
	const char	*want;
} whole_files[] = {
	/* Missing required keys: at the section header, or line 1. */
	{ "[server]\ntls_cert = c\ntls_key = k\n[twilio]\nauth_token_file = a\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":4: [twilio] account_sid: required\n"
	  NAME ":4: [twilio] public_url: required\n" },
	{ "[server]\ntls_cert = c\ntls_key = k\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":1: [twilio] account_sid: required\n"
	  NAME ":1: [twilio] public_url: required\n"
	  NAME ":1: [twilio] auth_token_file: required (or auth_token inline)\n" },
	{ "[server]\ntls_cert = c\ntls_key = k\n[twilio]\n"
	  "account_sid = AC0123456789abcdef0123456789abcdef\nauth_token_file = a\n"
	  "[reset]\nroute = /r\n[admin]\ntoken_file = t\n",
	  NAME ":4: [twilio] public_url: required\n"
	  NAME ":7: [reset] link: required\n" },
	{ "[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\n[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":1: [twilio] public_url: required\n"
	  NAME ":1: [server] tls_cert: required when tls = on\n"
	  NAME ":1: [server] tls_key: required when tls = on\n" },
	{ "[server]\ntls_key = k\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\n[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":3: [twilio] public_url: required\n"
	  NAME ":1: [server] tls_cert: required when tls = on\n" },
	/* public_url is required, whatever tls says; with tls = off, https only. */
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\n[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":3: [twilio] public_url: required\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = http://sms.example.com\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":6: [twilio] public_url: 'http://sms.example.com' must start with https:// when tls = off\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://a.example http://b.example https://c.example http://d.example\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n",
	  NAME ":6: [twilio] public_url: 'http://b.example' must start with https:// when tls = off\n"
	  NAME ":6: [twilio] public_url: 'http://d.example' must start with https:// when tls = off\n" },
	{ "[server]\ntls = on\ntls_cert = c\ntls_key = k\n[twilio]\n"
	  "account_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = http://b.example\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n", "" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://sms.example.com\n"
	  "[reset]\nlink = {token}\n[admin]\ntoken_file = t\n", "" },
	/* Account SID: AC + 32 lower-case hex. */
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789ABCDEF0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n"
	  "[reset]\nlink = {token}\n[admin]\nlisten =\n",
	  NAME ":4: [twilio] account_sid: 'AC0123456789ABCDEF0123456789abcdef' is not an account SID (AC and 32 lower-case hex digits)\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123\n"
	  "auth_token_file = a\npublic_url = https://x.example\n"
	  "[reset]\nlink = {token}\n[admin]\nlisten =\n",
	  NAME ":4: [twilio] account_sid: 'AC0123' is not an account SID (AC and 32 lower-case hex digits)\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = MG0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n"
	  "[reset]\nlink = {token}\n[admin]\nlisten =\n",
	  NAME ":4: [twilio] account_sid: 'MG0123456789abcdef0123456789abcdef' is not an account SID (AC and 32 lower-case hex digits)\n" },
	/* A secret from a file or inline, not both. */
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\nauth_token = b\npublic_url = https://x.example\n"
	  "[reset]\nlink = {token}\n[admin]\nlisten =\n",
	  NAME ":6: [twilio] auth_token: set auth_token_file or auth_token, not both\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "secondary_auth_token = b\nauth_token = a\nsecondary_auth_token_file = c\n"
	  "public_url = https://x.example\n[reset]\nlink = {token}\n[admin]\nlisten =\n",
	  NAME ":7: [twilio] secondary_auth_token_file: set secondary_auth_token_file or secondary_auth_token, not both\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token = a\npublic_url = https://x.example\n[reset]\nlink = {token}\n"
	  "[admin]\ntoken = x\ntoken_file = y\n",
	  NAME ":11: [admin] token_file: set token_file or token, not both\n" },
	/* The admin listener needs a token; listen = "" turns it off. */
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n[reset]\nlink = {token}\n",
	  NAME ":1: [admin] token_file: required while the admin listener is on (or token inline; an empty listen turns it off)\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n[reset]\nlink = {token}\n"
	  "[admin]\nlisten = 127.0.0.1:9999\n",
	  NAME ":9: [admin] token_file: required while the admin listener is on (or token inline; an empty listen turns it off)\n" },
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n[reset]\nlink = {token}\n"
	  "[admin]\nlisten =\n", "" },
	/* Templates need their placeholder. */
	{ "[server]\ntls = off\n[twilio]\naccount_sid = AC0123456789abcdef0123456789abcdef\n"
	  "auth_token_file = a\npublic_url = https://x.example\n[reset]\n"
	  "link = https://example.com/reset\n[admin]\nlisten =\n",
	  NAME ":8: [reset] link: must contain {token}\n" },
	/* Keys before any section. */
	{ "threads = 4\n" MINIMAL, NAME ":1: threads: key before any [section]\n" },
	/* Every error in one run, in file order, cross-key ones last. */
	{ "[server]\nthreads = lots\ntls = on\n[twilio]\naccount_sid = nope\n"
	  "[bogus]\nx = 1\n[reset]\nlink = no placeholder\n  indented\n"
	  "[admin]\nlisten = 1.2.3.4\n",
	  NAME ":2: [server] threads: 'lots' is not a whole number\n"
	  NAME ":5: [twilio] account_sid: 'nope' is not an account SID (AC and 32 lower-case hex digits)\n"
	  NAME ":6: [bogus]: unknown section\n"
	  NAME ":9: [reset] link: must contain {token}\n"
	  NAME ":10: indented line: continuation lines are not supported, put the value on one line\n"
	  NAME ":12: [admin] listen: '1.2.3.4' is not address:port (such as 0.0.0.0:8443 or [::]:8443)\n"
	  NAME ":4: [twilio] public_url: required\n"
	  NAME ":1: [server] tls_cert: required when tls = on\n"
	  NAME ":1: [server] tls_key: required when tls = on\n"
	  NAME ":4: [twilio] auth_token_file: required (or auth_token inline)\n" },
	/* Empty input: everything required is missing. */
	{ "",
	  NAME ":1: [twilio] account_sid: required\n"
	  NAME ":1: [twilio] public_url: required\n"
	  NAME ":1: [reset] link: required\n"
	  NAME ":1: [server] tls_cert: required when tls = on\n"
	  NAME ":1: [server] tls_key: required when tls = on\n"
	  NAME ":1: [twilio] auth_token_file: required (or auth_token inline)\n"
	  NAME ":1: [admin] token_file: required while the admin listener is on (or token inline; an empty listen turns it off)\n" },
};

static void
test_whole_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(whole_files); i++)
		expect(whole_files[i].text, whole_files[i].want);
}

static void
test_nul_byte(void **state)
{
	static const char text[] = MINIMAL "[server]\nthreads = 4\0 5\n";

	(void)state;
	expect_n(text, sizeof(text) - 1, NAME ":13: line contains a NUL byte\n");
}

static void
test_too_many_errors(void **state)
{
	struct buf	 text = BUF_INIT, errs = BUF_INIT;
	struct config	*cfg;
	int		 n;

	(void)state;
	assert_int_equal(buf_append_str(&text, MINIMAL "[server]\n"), 0);
	for (int i = 0; i < 150; i++)
		assert_int_equal(buf_append_str(&text, "bogus = 1\n"), 0);
	n = parse(text.data, &cfg, &errs);
	assert_int_equal(n, 150);	/* the count stays exact */
	/* Lines 13..162 are bad; the first 100 are listed. */
	assert_non_null(strstr(errs.data, NAME ":112: [server] bogus: unknown key\n"));
	assert_null(strstr(errs.data, NAME ":113:"));
	assert_non_null(strstr(errs.data, NAME ": too many errors; not listing more\n"));
	config_free(cfg);
	buf_free(&errs);
	buf_free(&text);
}

static void
test_too_large(void **state)
{
	struct config	*cfg;
	struct buf	 errs = BUF_INIT;
	size_t		 len = MAX_CONFIG_FILE + 1;
	char		*text = malloc(len);

	(void)state;
	assert_non_null(text);
	memset(text, '\n', len);
	assert_int_equal(parse_n(text, len, &cfg, &errs), 1);
	assert_string_equal(errs.data, NAME ": larger than 262144 bytes\n");
	config_free(cfg);
	buf_free(&errs);
	free(text);
}

/* Good values: appended to MINIMAL, then checked field by field. */
static struct config *
parse_ok(const char *extra)
{
	char		 text[8192];
	struct buf	 errs = BUF_INIT;
	struct config	*cfg;
	int		 n;

	n = snprintf(text, sizeof(text), "%s%s", MINIMAL, extra);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	if (parse(text, &cfg, &errs) != 0)
		fail_msg("%s\nunexpected errors:\n%s", extra, errs.data);
	buf_free(&errs);
	return cfg;
}

static const struct {
	const char	*value;
	unsigned	 seconds;
} durations[] = {
	{ "30", 30 }, { "30s", 30 }, { "5m", 300 }, { "600", 600 },
	{ "0", 0 }, { "0s", 0 }, { "10m", 600 }, { "007", 7 },
};

static const struct {
	const char	*value;
	size_t		 bytes;
} sizes[] = {
	{ "16k", 16384 }, { "16K", 16384 }, { "1m", 1048576 }, { "1M", 1048576 },
	{ "2048", 2048 }, { "1024", 1024 }, { "1k", 1024 },
};

static void
test_durations_sizes(void **state)
{
	char		 extra[128];
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(durations); i++) {
		(void)snprintf(extra, sizeof(extra), "[server]\ndrain_delay = %s\n",
		    durations[i].value);
		c = parse_ok(extra);
		assert_int_equal(c->drain_delay, durations[i].seconds);
		config_free(c);
	}
	for (size_t i = 0; i < NELEM(sizes); i++) {
		(void)snprintf(extra, sizeof(extra), "[server]\nmax_body = %s\n",
		    sizes[i].value);
		c = parse_ok(extra);
		assert_int_equal(c->max_body, sizes[i].bytes);
		config_free(c);
	}
	c = parse_ok("[server]\nshutdown_timeout = 1h\nrequest_timeout = 90s\n"
	    "idle_timeout = 90s\nreuse_port = on\n[reset]\ntoken_ttl = 24h\n");
	assert_int_equal(c->shutdown_timeout, 3600);
	assert_int_equal(c->request_timeout, 90);
	assert_int_equal(c->idle_timeout, 90);
	assert_true(c->reuse_port);
	assert_int_equal(c->reset_token_ttl, 86400);
	config_free(c);
}

/* [reset] replay_window: 0 (no repeat gets the link) up to an hour. */
static const struct {
	const char	*value;
	unsigned	 seconds;
} replay_windows[] = {
	{ "0", 0 }, { "0s", 0 }, { "1", 1 }, { "2s", 2 }, { "60s", 60 }, { "1m", 60 },
	{ "15m", 900 }, { "3600", 3600 }, { "1h", 3600 },
};

static void
test_replay_window(void **state)
{
	char		 extra[128];
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(replay_windows); i++) {
		(void)snprintf(extra, sizeof(extra), "[reset]\nreplay_window = %s\n",
		    replay_windows[i].value);
		c = parse_ok(extra);
		assert_int_equal(c->reset_replay_window, replay_windows[i].seconds);
		config_free(c);
	}
}

static const struct {
	const char	*value;
	bool		 on;
} bools[] = {
	{ "on", true }, { "off", false }, { "yes", true }, { "no", false },
	{ "true", true }, { "false", false }, { "ON", true }, { "Off", false },
};

static void
test_bools(void **state)
{
	char		 extra[128];
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(bools); i++) {
		(void)snprintf(extra, sizeof(extra), "[server]\ntls = %s\n",
		    bools[i].value);
		c = parse_ok(extra);
		assert_int_equal(c->tls, bools[i].on);
		config_free(c);
	}
}

static void
test_cidrs(void **state)
{
	static const uint8_t v4a[4] = { 10, 0, 0, 0 };
	static const uint8_t v4b[4] = { 192, 168, 0, 1 };
	static const uint8_t v4c[4] = { 172, 16, 0, 0 };
	static const uint8_t v6a[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const uint8_t v6b[16] = { [15] = 1 };
	static const uint8_t zero[16] = { 0 };
	struct config	*c;

	(void)state;
	c = parse_ok("[proxy]\ntrusted = 10.1.2.3/8, 192.168.0.1 "
	    "2001:db8:ffff::1/32,,::1  172.31.255.255/12 0.0.0.0/0\n");
	assert_int_equal(c->trusted_count, 6);
	assert_int_equal(c->trusted[0].family, AF_INET);
	assert_int_equal(c->trusted[0].prefix, 8);
	assert_memory_equal(c->trusted[0].addr, v4a, 4);
	assert_int_equal(c->trusted[1].prefix, 32);
	assert_memory_equal(c->trusted[1].addr, v4b, 4);
	assert_int_equal(c->trusted[2].family, AF_INET6);
	assert_int_equal(c->trusted[2].prefix, 32);
	assert_memory_equal(c->trusted[2].addr, v6a, 16);
	assert_int_equal(c->trusted[3].family, AF_INET6);
	assert_int_equal(c->trusted[3].prefix, 128);
	assert_memory_equal(c->trusted[3].addr, v6b, 16);
	assert_int_equal(c->trusted[4].prefix, 12);
	assert_memory_equal(c->trusted[4].addr, v4c, 4);
	assert_int_equal(c->trusted[5].prefix, 0);
	assert_memory_equal(c->trusted[5].addr, zero, 4);
	config_free(c);

	c = parse_ok("[proxy]\ntrusted =\n");
	assert_int_equal(c->trusted_count, 0);
	assert_null(c->trusted);
	config_free(c);
}

static const struct {
	const char	*value;
	size_t		 count;
	const char	*stored[MAX_PUBLIC_URLS];
} urls[] = {
	{ "https://sms.example.com", 1, { "https://sms.example.com" } },
	{ "https://sms.example.com/", 1, { "https://sms.example.com" } },
	{ "https://example.com:8443/hooks//", 1, { "https://example.com:8443/hooks" } },
	{ "http://[::1]:8080/", 1, { "http://[::1]:8080" } },
	{ "https://10.0.0.1", 1, { "https://10.0.0.1" } },
	/* A list keeps its order; same host, other port or path, is another URL. */
	{ "https://b.example/ https://a.example", 2, { "https://b.example", "https://a.example" } },
	{ "https://a.example   https://a.example:8443 https://a.example/x", 3,
	  { "https://a.example", "https://a.example:8443", "https://a.example/x" } },
	{ "https://A.example https://a.example", 2, { "https://A.example", "https://a.example" } },
	{ "https://1.example https://2.example https://3.example https://4.example "
	  "https://5.example https://6.example https://7.example https://8.example", 8,
	  { "https://1.example", "https://2.example", "https://3.example", "https://4.example",
	    "https://5.example", "https://6.example", "https://7.example", "https://8.example" } },
};

/* Good values on top of MINIMAL_NO_URL. */
static struct config *
parse_urls_ok(const char *value)
{
	char		 text[8192];
	struct buf	 errs = BUF_INIT;
	struct config	*cfg;
	int		 n;

	n = snprintf(text, sizeof(text), "%s[twilio]\npublic_url = %s\n",
	    MINIMAL_NO_URL, value);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	if (parse(text, &cfg, &errs) != 0)
		fail_msg("%s\nunexpected errors:\n%s", value, errs.data);
	buf_free(&errs);
	return cfg;
}

static void
test_public_url(void **state)
{
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(urls); i++) {
		c = parse_urls_ok(urls[i].value);
		assert_int_equal(c->public_url.count, urls[i].count);
		for (size_t j = 0; j < urls[i].count; j++)
			assert_string_equal(c->public_url.url[j], urls[i].stored[j]);
		config_free(c);
	}
}

static const struct {
	const char	*value;
	unsigned	 count, window;
} rates[] = {
	{ "3/1h", 3, 3600 }, { "1000/1h", 1000, 3600 }, { "5/30m", 5, 1800 },
	{ "10/90s", 10, 90 }, { "1/1", 1, 1 }, { "1/1s", 1, 1 },
	{ "7/60", 7, 60 }, { "007/010m", 7, 600 },
	{ "1000000/168h", 1000000, 604800 }, { "2/604800", 2, 604800 },
	{ "off", 0, 0 }, { "OFF", 0, 0 }, { "Off", 0, 0 },
};

static void
test_rates(void **state)
{
	char		 extra[128];
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(rates); i++) {
		(void)snprintf(extra, sizeof(extra), "[limits]\n"
		    "reset_per_number = %s\npin_per_number = %s ; note\n"
		    "outbound_budget: %s\n", rates[i].value, rates[i].value,
		    rates[i].value);
		c = parse_ok(extra);
		assert_int_equal(c->limit_reset_per_number.count, rates[i].count);
		assert_int_equal(c->limit_reset_per_number.window, rates[i].window);
		assert_int_equal(c->limit_pin_per_number.count, rates[i].count);
		assert_int_equal(c->limit_pin_per_number.window, rates[i].window);
		assert_int_equal(c->limit_outbound_budget.count, rates[i].count);
		assert_int_equal(c->limit_outbound_budget.window, rates[i].window);
		config_free(c);
	}
	/* Keys left out keep their defaults. */
	c = parse_ok("[limits]\npin_per_number = off\n");
	assert_int_equal(c->limit_pin_per_number.count, 0);
	assert_int_equal(c->limit_reset_per_number.count, DEFAULT_RESET_PER_NUMBER);
	assert_int_equal(c->limit_reset_per_number.window, DEFAULT_LIMIT_WINDOW);
	assert_int_equal(c->limit_outbound_budget.count, DEFAULT_OUTBOUND_BUDGET);
	config_free(c);
}

static const struct {
	const char	*value;
	const char	*stored;
} api_urls[] = {
	{ "https://api.twilio.com", "https://api.twilio.com" },
	{ "https://api.twilio.com/", "https://api.twilio.com" },
	{ "https://127.0.0.1:8444", "https://127.0.0.1:8444" },
	{ "https://[::1]:8444//", "https://[::1]:8444" },
	{ "https://twilio-proxy.example.com:443/twilio/", "https://twilio-proxy.example.com:443/twilio" },
};

static const struct {
	const char	*value;
} phones[] = {
	{ "+14155550100" }, { "+12" }, { "+123456789012345" }, { "+447700900123" },
};

/* [twilio] keys of the Messages API, accepted and stored as given. */
static void
test_twilio_api(void **state)
{
	char		 extra[256];
	struct config	*c;

	(void)state;
	for (size_t i = 0; i < NELEM(api_urls); i++) {
		(void)snprintf(extra, sizeof(extra), "[twilio]\napi_base_url = %s\n",
		    api_urls[i].value);
		c = parse_ok(extra);
		assert_string_equal(c->api_base_url, api_urls[i].stored);
		config_free(c);
	}
	for (size_t i = 0; i < NELEM(phones); i++) {
		(void)snprintf(extra, sizeof(extra), "[twilio]\nfrom_number = %s\n",
		    phones[i].value);
		c = parse_ok(extra);
		assert_string_equal(c->from_number, phones[i].value);
		assert_null(c->messaging_service_sid);
		config_free(c);
	}
	c = parse_ok("[twilio]\nmessaging_service_sid = MG0123456789abcdef0123456789abcdef\n"
	    "api_key_sid = SKfedcba9876543210fedcba9876543210\n"
	    "api_key_secret_file = api-key-secret\napi_ca_file = ca.pem\n"
	    "status_route = /hooks/status\n");
	assert_null(c->from_number);
	assert_string_equal(c->messaging_service_sid, "MG0123456789abcdef0123456789abcdef");
	assert_string_equal(c->api_key_sid, "SKfedcba9876543210fedcba9876543210");
	assert_string_equal(c->api_key_secret_file, "api-key-secret");
	assert_null(c->api_key_secret.data);	/* read by config_load */
	assert_string_equal(c->api_ca_file, "ca.pem");
	assert_string_equal(c->status_route, "/hooks/status");
	assert_int_equal(c->inline_secret_line, 0);
	config_free(c);

	/* Inline, the secret lands in sodium memory and counts as inline. */
	c = parse_ok("[twilio]\napi_key_secret = k3y ; comment\n"
	    "api_key_sid = SK0123456789abcdef0123456789abcdef\n");
	assert_string_equal(c->api_key_secret.data, "k3y");
	assert_int_equal(c->api_key_secret.len, 3);
	assert_null(c->api_key_secret_file);
	assert_int_equal(c->inline_secret_line, 13);
	config_free(c);

	/* No sender at all is valid: the daemon then leaves the PIN flow off. */
	c = parse_ok("[pin]\ndigits = 8\n");
	assert_null(c->from_number);
	assert_null(c->messaging_service_sid);
	config_free(c);
}

static void
test_pin(void **state)
{
	struct config	*c;
	char		 extra[4096], tpl[MAX_TEMPLATE_LEN + 1];

	(void)state;
	c = parse_ok("[pin]\nroute = /hooks/pin\ndigits = 4\nttl = 1m\n"
	    "max_attempts = 1\nmessage = Code: {pin} (valid 1 minute)\n");
	assert_string_equal(c->pin_route, "/hooks/pin");
	assert_int_equal(c->pin_digits, 4);
	assert_int_equal(c->pin_ttl, 60);
	assert_int_equal(c->pin_max_attempts, 1);
	assert_string_equal(c->pin_message, "Code: {pin} (valid 1 minute)");
	config_free(c);

	c = parse_ok("[pin]\ndigits = 10\nttl = 3600\nmax_attempts = 20\n"
	    "message = {pin}\n");
	assert_int_equal(c->pin_digits, 10);
	assert_int_equal(c->pin_ttl, 3600);
	assert_int_equal(c->pin_max_attempts, 20);
	assert_string_equal(c->pin_message, "{pin}");
	config_free(c);

	/* Routes may be anything distinct, whatever the section order. */
	c = parse_ok("[pin]\nroute = /a\n[reset]\nroute = /b\n"
	    "[twilio]\nstatus_route = /c\n");
	assert_string_equal(c->pin_route, "/a");
	assert_string_equal(c->reset_route, "/b");
	assert_string_equal(c->status_route, "/c");
	config_free(c);

	memset(tpl, 'x', sizeof(tpl) - 1);
	memcpy(tpl + 10, "{pin}", 5);
	tpl[MAX_TEMPLATE_LEN] = '\0';
	(void)snprintf(extra, sizeof(extra), "[pin]\nmessage = %s\n", tpl);
	c = parse_ok(extra);
	assert_int_equal(strlen(c->pin_message), MAX_TEMPLATE_LEN);
	config_free(c);
	(void)snprintf(extra, sizeof(extra), "%s[pin]\nmessage = %sx\n",
	    MINIMAL, tpl);
	expect(extra, NAME ":13: [pin] message: longer than 1024 bytes\n");
}

/* inih's syntax as we keep it: ':' separator, ';' comments, CRLF, BOM. */
static void
test_syntax(void **state)
{
	struct config	*c;
	struct buf	 errs = BUF_INIT;

	(void)state;
	c = parse_ok("; comment\n# comment\n   ; indented comment\n\n  \n"
	    "[server]   ; header comment\nthreads: 4 ; four\n"
	    "listen = [::1]:8443\n[reset]\nunknown_reply = a;b\n"
	    "message = Go: {link} #1\n[log]\nlevel = debug\n");
	assert_int_equal(c->threads, 4);
	assert_string_equal(c->listen, "[::1]:8443");
	assert_string_equal(c->reset_unknown_reply, "a;b");
	assert_string_equal(c->reset_message, "Go: {link} #1");
	assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
	config_free(c);

	c = parse_ok("[server]\r\nthreads = 8\r\n");
	assert_int_equal(c->threads, 8);
	config_free(c);

	assert_int_equal(parse("\xef\xbb\xbf" MINIMAL, &c, &errs), 0);
	config_free(c);
	buf_free(&errs);
}

/* Debian's inih cuts lines at 200 bytes; ours are taken whole. */
static void
test_long_lines(void **state)
{
	char		 extra[4096], tpl[MAX_TEMPLATE_LEN + 1];
	struct config	*c;

	(void)state;
	(void)snprintf(extra, sizeof(extra), "[server]\ntls_priorities = %s\n",
	    DEFAULT_TLS_PRIORITIES ":-VERS-TLS1.2");
	assert_true(strlen(extra) > 250);
	c = parse_ok(extra);
	assert_string_equal(c->tls_priorities, DEFAULT_TLS_PRIORITIES ":-VERS-TLS1.2");
	config_free(c);

	memset(tpl, 'x', sizeof(tpl) - 1);
	memcpy(tpl, "{link}", 6);
	tpl[MAX_TEMPLATE_LEN] = '\0';
	(void)snprintf(extra, sizeof(extra), "[reset]\nmessage = %s ; note\n", tpl);
	c = parse_ok(extra);
	assert_int_equal(strlen(c->reset_message), MAX_TEMPLATE_LEN);
	config_free(c);

	(void)snprintf(extra, sizeof(extra), "%s[reset]\nmessage = %sx\n",
	    MINIMAL, tpl);
	expect(extra, NAME ":13: [reset] message: longer than 1024 bytes\n");
}

static void
test_inline_secret_parse(void **state)
{
	struct config	*c;
	struct buf	 errs = BUF_INIT;

	(void)state;
	assert_int_equal(parse("[server]\ntls_cert = c\ntls_key = k\n[twilio]\n"
	    "account_sid = AC0123456789abcdef0123456789abcdef\n"
	    "auth_token = s3cret ; comment\nsecondary_auth_token = other\n"
	    "[reset]\nlink = {token}\n[admin]\ntoken = adm\n"
	    "[twilio]\npublic_url = https://x.example\n", &c, &errs), 0);
	assert_string_equal(c->auth_token.data, "s3cret");
	assert_int_equal(c->auth_token.len, 6);
	assert_string_equal(c->secondary_auth_token.data, "other");
	assert_string_equal(c->admin_token.data, "adm");
	assert_int_equal(c->inline_secret_line, 6);
	config_free(c);
	config_free(NULL);
	buf_free(&errs);
}

/*
 * The shipped configs must stay valid as the parser changes. Run from the
 * source tree (make does), or point TWHOOKD_SRCDIR at it.
 */
static void
test_shipped_configs(void **state)
{
	static const char *const files[] = { "conf/twhookd.ini", "conf/demo.ini" };
	const char	*top = getenv("TWHOOKD_SRCDIR");
	char		 path[PATH_MAX], text[64 * 1024];
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	FILE		*f;
	size_t		 n;

	(void)state;
	for (size_t i = 0; i < NELEM(files); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", top ? top : ".", files[i]);
		if ((f = fopen(path, "r")) == NULL)
			fail_msg("%s: not found (set TWHOOKD_SRCDIR)", path);
		n = fread(text, 1, sizeof(text), f);
		assert_int_equal(fclose(f), 0);
		assert_true(n < sizeof(text));
		if (parse_n(text, n, &c, &errs) != 0)
			fail_msg("%s", errs.data);
		assert_non_null(c->reset_link);
		config_free(c);
	}
	buf_free(&errs);
}

/* --- config_load: real files in a temporary directory --- */

struct tmp {
	char	dir[64];
	char	cred[64];
	char	ini[128];
};

static void
put(const char *dir, const char *name, const char *content, mode_t mode)
{
	char	 path[256];
	FILE	*f;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int
tmp_setup(void **state)
{
	struct tmp	*t = calloc(1, sizeof(*t));
	char		*real;

	if (t == NULL)
		return -1;
	(void)snprintf(t->dir, sizeof(t->dir), "/tmp/twhookd-cfg-XXXXXX");
	(void)snprintf(t->cred, sizeof(t->cred), "/tmp/twhookd-cred-XXXXXX");
	if (mkdtemp(t->dir) == NULL || mkdtemp(t->cred) == NULL)
		return -1;
	/* config_load reports paths from realpath(3): compare like with like. */
	if ((real = realpath(t->dir, NULL)) == NULL)
		return -1;
	(void)snprintf(t->dir, sizeof(t->dir), "%s", real);
	free(real);
	(void)snprintf(t->ini, sizeof(t->ini), "%s/t.ini", t->dir);
	unsetenv("CREDENTIALS_DIRECTORY");
	*state = t;
	return 0;
}

static void
rm_dir(const char *dir)
{
	static const char *const names[] = {
		"t.ini", "auth-token", "admin-token", "cert.pem", "big", "empty",
		"blank", "api-key-secret", "ca.pem", "pg-dsn",
	};
	char	path[256];

	for (size_t i = 0; i < NELEM(names); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		(void)unlink(path);
	}
	(void)rmdir(dir);
}

static int
tmp_teardown(void **state)
{
	struct tmp	*t = *state;

	unsetenv("CREDENTIALS_DIRECTORY");
	rm_dir(t->dir);
	rm_dir(t->cred);
	free(t);
	return 0;
}

static void
test_load_secret_files(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[256];

	put(t->dir, "t.ini", MINIMAL "[store]\npath = run/x.db\n", 0644);
	put(t->dir, "auth-token", "0123456789abcdef0123456789abcdef\n", 0600);
	put(t->dir, "admin-token", "adm1n \t\r\n\n", 0600);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->path, t->ini);
	assert_string_equal(c->auth_token.data, "0123456789abcdef0123456789abcdef");
	assert_int_equal(c->auth_token.len, 32);
	assert_string_equal(c->admin_token.data, "adm1n");
	assert_int_equal(c->admin_token.len, 5);
	assert_null(c->secondary_auth_token.data);
	(void)snprintf(want, sizeof(want), "%s/auth-token", t->dir);
	assert_string_equal(c->auth_token_file, want);
	(void)snprintf(want, sizeof(want), "%s/cert.pem", t->dir);
	assert_string_equal(c->tls_cert, want);
	(void)snprintf(want, sizeof(want), "%s/run/x.db", t->dir);
	assert_string_equal(c->store_path, want);
	assert_string_equal(c->server_key_file, DEFAULT_SERVER_KEY_FILE);
	config_free(c);
	buf_free(&errs);
}

static void
test_load_credentials_directory(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[256];

	put(t->dir, "t.ini", MINIMAL, 0644);
	put(t->dir, "auth-token", "from-config-dir\n", 0600);
	put(t->cred, "auth-token", "from-credentials\n", 0600);
	put(t->cred, "admin-token", "adm\n", 0600);
	put(t->cred, "cert.pem", "x\n", 0600);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", t->cred, 1), 0);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->auth_token.data, "from-credentials");
	/* TLS files: the credentials directory when there, else the config's. */
	(void)snprintf(want, sizeof(want), "%s/cert.pem", t->cred);
	assert_string_equal(c->tls_cert, want);
	(void)snprintf(want, sizeof(want), "%s/key.pem", t->dir);
	assert_string_equal(c->tls_key, want);
	config_free(c);

	/* A secret missing there is not looked for next to the config. */
	(void)snprintf(want, sizeof(want), "%s/admin-token", t->cred);
	assert_int_equal(unlink(want), 0);
	put(t->dir, "admin-token", "adm\n", 0600);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	assert_null(c);
	(void)snprintf(want, sizeof(want), "%s:11: [admin] token_file: "
	    "%s/admin-token: No such file or directory\n", t->ini, t->cred);
	assert_string_equal(errs.data, want);
	buf_free(&errs);
}

static const char inline_ini[] =
	"[server]\ntls_cert = c\ntls_key = k\n[twilio]\n"
	"account_sid = AC0123456789abcdef0123456789abcdef\n"
	"auth_token = s3cret\n[reset]\nlink = {token}\n[admin]\ntoken = adm\n"
	"[twilio]\npublic_url = https://x.example\n";

/*
 * [store] for PostgreSQL: the DSN from a secret file (looked up like the
 * other *_file secrets) or inline in a 0600 file; store_config carries it
 * and no path, and SQLite's carries a path and no DSN.
 */
static void
test_load_store_dsn(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[512];

	put(t->dir, "auth-token", "tok\n", 0600);
	put(t->dir, "admin-token", "adm\n", 0600);
	put(t->dir, "t.ini", MINIMAL "[store]\ndriver = postgresql\n"
	    "dsn_file = pg-dsn\n", 0644);
	put(t->dir, "pg-dsn", "host=127.0.0.1 password=pw dbname=x\n", 0600);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->store.driver, "postgresql");
	assert_string_equal(c->store.dsn, "host=127.0.0.1 password=pw dbname=x");
	assert_null(c->store.path);
	config_free(c);

	/* Under systemd the file is a credential. */
	put(t->cred, "pg-dsn", "postgresql://db/twhookd\n", 0600);
	put(t->cred, "auth-token", "tok\n", 0600);
	put(t->cred, "admin-token", "adm\n", 0600);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", t->cred, 1), 0);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->store.dsn, "postgresql://db/twhookd");
	config_free(c);
	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);

	/* Inline: only in a file nobody else can read. */
	put(t->dir, "t.ini", MINIMAL "[store]\ndriver = postgresql\n"
	    "dsn = host=db password=pw\n", 0644);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	(void)snprintf(want, sizeof(want), "%s:14: [store] dsn: inline secret "
	    "needs the config file to be mode 0600 or stricter\n", t->ini);
	assert_string_equal(errs.data, want);
	assert_null(strstr(errs.data, "pw"));
	buf_reset(&errs);
	assert_int_equal(chmod(t->ini, 0600), 0);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->store.dsn, "host=db password=pw");
	config_free(c);

	/* SQLite: a path, no DSN. */
	put(t->dir, "t.ini", MINIMAL "[store]\npath = /var/x.db\n", 0644);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->store.driver, "sqlite");
	assert_string_equal(c->store.path, "/var/x.db");
	assert_null(c->store.dsn);
	config_free(c);
	buf_free(&errs);
}

static void
test_load_inline_mode(void **state)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0610, 0601 };
	static const mode_t accepted[] = { 0600, 0400 };
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[512];

	(void)snprintf(want, sizeof(want),
	    "%s:6: [twilio] auth_token: inline secret needs the config file "
	    "to be mode 0600 or stricter\n"
	    "%s:10: [admin] token: inline secret needs the config file "
	    "to be mode 0600 or stricter\n", t->ini, t->ini);
	for (size_t i = 0; i < NELEM(refused); i++) {
		put(t->dir, "t.ini", inline_ini, refused[i]);
		assert_int_equal(config_load(t->ini, &c, &errs), -1);
		assert_string_equal(errs.data, want);
		buf_reset(&errs);
	}
	for (size_t i = 0; i < NELEM(accepted); i++) {
		put(t->dir, "t.ini", inline_ini, accepted[i]);
		if (config_load(t->ini, &c, &errs) != 0)
			fail_msg("mode %o: %s", (unsigned)accepted[i], errs.data);
		assert_string_equal(c->auth_token.data, "s3cret");
		assert_string_equal(c->admin_token.data, "adm");
		assert_int_equal(c->inline_secret_line, 6);
		config_free(c);
	}
	buf_free(&errs);
}

static void
test_load_bad_secrets(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[1024], text[1024], big[MAX_SECRET_FILE + 2];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(t->dir, "t.ini", "[server]\ntls_cert = c\ntls_key = k\n[twilio]\n"
	    "account_sid = AC0123456789abcdef0123456789abcdef\n"
	    "auth_token_file = empty\nsecondary_auth_token_file = big\n"
	    "[reset]\nlink = {token}\n[admin]\ntoken_file = blank\n"
	    "[twilio]\npublic_url = https://x.example\n", 0644);
	put(t->dir, "empty", "", 0600);
	put(t->dir, "big", big, 0600);
	put(t->dir, "blank", "two\nlines\n", 0600);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	(void)snprintf(want, sizeof(want),
	    "%s:6: [twilio] auth_token_file: %s/empty: is empty\n"
	    "%s:7: [twilio] secondary_auth_token_file: %s/big: larger than 4096 bytes\n"
	    "%s:11: [admin] token_file: %s/blank: must be one line of text\n",
	    t->ini, t->dir, t->ini, t->dir, t->ini, t->dir);
	assert_string_equal(errs.data, want);
	buf_reset(&errs);

	/* Only a newline: empty too. Absolute paths are used as given. */
	put(t->dir, "empty", "\n", 0600);
	put(t->dir, "auth-token", "tok", 0600);	/* no newline at all */
	put(t->dir, "admin-token", "adm", 0600);
	(void)snprintf(text, sizeof(text), "%s[twilio]\n"
	    "secondary_auth_token_file = %s/empty\n", MINIMAL, t->dir);
	put(t->dir, "t.ini", text, 0644);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	(void)snprintf(want, sizeof(want),
	    "%s:13: [twilio] secondary_auth_token_file: %s/empty: is empty\n",
	    t->ini, t->dir);
	assert_string_equal(errs.data, want);
	buf_free(&errs);
}

static void
test_load_missing_file(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[256];

	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	assert_null(c);
	(void)snprintf(want, sizeof(want), "%s: No such file or directory\n", t->ini);
	assert_string_equal(errs.data, want);
	buf_reset(&errs);

	assert_int_equal(config_load(t->dir, &c, &errs), -1);
	(void)snprintf(want, sizeof(want), "%s: not a regular file\n", t->dir);
	assert_string_equal(errs.data, want);
	buf_free(&errs);
}

/* The API key secret: a *_file secret like the auth token, or inline. */
static void
test_load_api_key_secret(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[512];

	put(t->dir, "t.ini", MINIMAL "[twilio]\n"
	    "api_key_sid = SK0123456789abcdef0123456789abcdef\n"
	    "api_key_secret_file = api-key-secret\napi_ca_file = ca.pem\n", 0644);
	put(t->dir, "auth-token", "tok\n", 0600);
	put(t->dir, "admin-token", "adm\n", 0600);
	put(t->dir, "api-key-secret", "k3yS3cret \n", 0600);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->api_key_secret.data, "k3yS3cret");
	assert_int_equal(c->api_key_secret.len, 9);
	(void)snprintf(want, sizeof(want), "%s/api-key-secret", t->dir);
	assert_string_equal(c->api_key_secret_file, want);
	(void)snprintf(want, sizeof(want), "%s/ca.pem", t->dir);
	assert_string_equal(c->api_ca_file, want);
	config_free(c);

	/*
	 * Under systemd: the secret from the credentials directory only, the
	 * CA from there when it is present.
	 */
	put(t->cred, "auth-token", "tok\n", 0600);
	put(t->cred, "admin-token", "adm\n", 0600);
	put(t->cred, "api-key-secret", "from-credentials\n", 0600);
	put(t->cred, "ca.pem", "x\n", 0600);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", t->cred, 1), 0);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->api_key_secret.data, "from-credentials");
	(void)snprintf(want, sizeof(want), "%s/ca.pem", t->cred);
	assert_string_equal(c->api_ca_file, want);
	config_free(c);
	unsetenv("CREDENTIALS_DIRECTORY");

	/* An empty secret file is an error at the key's line. */
	put(t->dir, "api-key-secret", "\n", 0600);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	assert_null(c);
	(void)snprintf(want, sizeof(want), "%s:14: [twilio] api_key_secret_file: "
	    "%s/api-key-secret: is empty\n", t->ini, t->dir);
	assert_string_equal(errs.data, want);
	buf_reset(&errs);

	/* Inline: only in a 0600 config file. */
	put(t->dir, "t.ini", MINIMAL "[twilio]\n"
	    "api_key_sid = SK0123456789abcdef0123456789abcdef\n"
	    "api_key_secret = inl1ne\n", 0640);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	(void)snprintf(want, sizeof(want), "%s:14: [twilio] api_key_secret: "
	    "inline secret needs the config file to be mode 0600 or stricter\n",
	    t->ini);
	assert_string_equal(errs.data, want);
	buf_reset(&errs);
	assert_int_equal(chmod(t->ini, 0600), 0);
	if (config_load(t->ini, &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_string_equal(c->api_key_secret.data, "inl1ne");
	assert_null(c->api_key_secret_file);
	assert_int_equal(c->inline_secret_line, 14);
	config_free(c);
	buf_free(&errs);
}

/* Parse errors and file errors are reported together. */
static void
test_load_all_errors(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 want[1024];

	put(t->dir, "t.ini", MINIMAL "[server]\nthreads = many\n"
	    "[twilio]\nsecondary_auth_token = x\n", 0644);
	put(t->dir, "auth-token", "tok\n", 0600);
	assert_int_equal(config_load(t->ini, &c, &errs), -1);
	(void)snprintf(want, sizeof(want),
	    "%s:13: [server] threads: 'many' is not a whole number\n"
	    "%s:15: [twilio] secondary_auth_token: inline secret needs the "
	    "config file to be mode 0600 or stricter\n"
	    "%s:11: [admin] token_file: %s/admin-token: No such file or directory\n",
	    t->ini, t->ini, t->ini, t->dir);
	assert_string_equal(errs.data, want);
	buf_free(&errs);
}

/* A relative config path: paths still come out absolute. */
static void
test_load_relative_path(void **state)
{
	struct tmp	*t = *state;
	struct config	*c;
	struct buf	 errs = BUF_INIT;
	char		 cwd[PATH_MAX], want[256];

	put(t->dir, "t.ini", MINIMAL, 0644);
	put(t->dir, "auth-token", "tok\n", 0600);
	put(t->dir, "admin-token", "adm\n", 0600);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t->dir), 0);
	if (config_load("t.ini", &c, &errs) != 0)
		fail_msg("%s", errs.data);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(c->path, "t.ini");
	(void)snprintf(want, sizeof(want), "%s/cert.pem", t->dir);
	assert_string_equal(c->tls_cert, want);
	config_free(c);
	buf_free(&errs);
}

/* Problems found after loading name the key's line, or none for a default. */
static void
test_config_error(void **state)
{
	struct buf	 errs = BUF_INIT, out = BUF_INIT;
	struct config	*c;

	(void)state;
	assert_int_equal(parse(MINIMAL "[store]\npath = /x/db\n", &c, &errs), 0);
	assert_int_equal(config_error(c, &out, "server", "tls_key", "%s: does not "
	    "match", "/k.pem"), 0);
	assert_int_equal(config_error(c, &out, "store", "path", "bad\x01path"), 0);
	assert_int_equal(config_error(c, &out, "secrets", "server_key_file", "mode"), 0);
	assert_string_equal(out.data,
	    NAME ":3: [server] tls_key: /k.pem: does not match\n"
	    NAME ":13: [store] path: bad?path\n"
	    NAME ": [secrets] server_key_file: mode\n");
	config_free(c);
	buf_free(&errs);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_valid),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_whole_files),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_durations_sizes),
		cmocka_unit_test(test_replay_window),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_cidrs),
		cmocka_unit_test(test_public_url),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_twilio_api),
		cmocka_unit_test(test_pin),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_inline_secret_parse),
		cmocka_unit_test(test_shipped_configs),
		cmocka_unit_test(test_config_error),
		cmocka_unit_test_setup_teardown(test_load_secret_files, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_credentials_directory, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_inline_mode, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_store_dsn, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_bad_secrets, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_missing_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_api_key_secret, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_all_errors, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_relative_path, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
