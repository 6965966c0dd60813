/*
 * The key table and the value parsers it drives. One row per key: adding a
 * key means adding a row here, a field in struct config and a paragraph in
 * twhookd.ini(5). Values are checked whole: no sign, no spaces, no overflow,
 * no control characters, valid UTF-8; secrets are never echoed in messages.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <sodium.h>

#include "config_keys.h"
#include "defaults.h"
#include "log.h"
#include "phone.h"

/* Local limits: none of these bounds a request, so they stay out of defaults.h. */
#define ECHO			64	/* bytes of a bad value quoted back */

#define F(field)	offsetof(struct config, field)

const char *const config_sections[] = {
	"server", "twilio", "proxy", "store", "secrets", "reset", "pin", "limits",
	"admin", "log",
};

/* section, name, type, flags, field, secret target, min, max, default, string default, literal */
const struct config_key config_keys[] = {
	{ "server", "listen", KT_LISTEN, 0, F(listen), 0, 0, MAX_LISTEN_LEN, 0, DEFAULT_LISTEN, NULL },
	{ "server", "tls", KT_BOOL, 0, F(tls), 0, 0, 1, 1, NULL, NULL },
	{ "server", "tls_cert", KT_STRING, KF_PATH | KF_CRED_PATH, F(tls_cert), 0, 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "server", "tls_key", KT_STRING, KF_PATH | KF_CRED_PATH, F(tls_key), 0, 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "server", "tls_priorities", KT_STRING, 0, F(tls_priorities), 0, 0, MAX_PRIORITIES_LEN, 0, DEFAULT_TLS_PRIORITIES, NULL },
	{ "server", "threads", KT_UINT, 0, F(threads), 0, 0, MAX_THREADS, 0, NULL, NULL },
	{ "server", "max_connections", KT_UINT, 0, F(max_connections), 0, 1, MAX_CONNECTIONS_LIMIT, DEFAULT_MAX_CONNECTIONS, NULL, NULL },
	{ "server", "max_connections_per_ip", KT_UINT, 0, F(max_connections_per_ip), 0, 0, MAX_CONNECTIONS_LIMIT, DEFAULT_MAX_CONNECTIONS_PER_IP, NULL, NULL },
	{ "server", "request_timeout", KT_DURATION, 0, F(request_timeout), 0, 1, MAX_REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, NULL, NULL },
	{ "server", "idle_timeout", KT_DURATION, 0, F(idle_timeout), 0, 1, MAX_REQUEST_TIMEOUT, DEFAULT_IDLE_TIMEOUT, NULL, NULL },
	{ "server", "reuse_port", KT_BOOL, 0, F(reuse_port), 0, 0, 1, 0, NULL, NULL },
	{ "server", "max_body", KT_SIZE, 0, F(max_body), 0, MIN_BODY_LIMIT, MAX_BODY_LIMIT, DEFAULT_MAX_BODY, NULL, NULL },
	{ "server", "drain_delay", KT_DURATION, 0, F(drain_delay), 0, 0, MAX_DRAIN_DELAY, DEFAULT_DRAIN_DELAY, NULL, NULL },
	{ "server", "shutdown_timeout", KT_DURATION, 0, F(shutdown_timeout), 0, 1, MAX_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, NULL, NULL },

	{ "twilio", "account_sid", KT_SID, KF_REQUIRED, F(account_sid), 0, 0, ACCOUNT_SID_LEN, 0, NULL, "AC" },
	{ "twilio", "auth_token_file", KT_STRING, KF_SECRET_FILE, F(auth_token_file), F(auth_token), 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "twilio", "auth_token", KT_SECRET, KF_SECRET_INLINE, F(auth_token), 0, 0, MAX_SECRET_FILE, 0, NULL, NULL },
	{ "twilio", "secondary_auth_token_file", KT_STRING, KF_SECRET_FILE, F(secondary_auth_token_file), F(secondary_auth_token), 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "twilio", "secondary_auth_token", KT_SECRET, KF_SECRET_INLINE, F(secondary_auth_token), 0, 0, MAX_SECRET_FILE, 0, NULL, NULL },
	{ "twilio", "public_url", KT_URLS, KF_REQUIRED, F(public_url), 0, 0, MAX_PUBLIC_URL_LEN, 0, NULL, NULL },
	{ "twilio", "api_base_url", KT_HTTPS_URL, 0, F(api_base_url), 0, 0, MAX_PUBLIC_URL_LEN, 0, DEFAULT_API_BASE_URL, NULL },
	{ "twilio", "from_number", KT_PHONE, 0, F(from_number), 0, 0, 32, 0, NULL, NULL },
	{ "twilio", "messaging_service_sid", KT_SID, 0, F(messaging_service_sid), 0, 0, ACCOUNT_SID_LEN, 0, NULL, "MG" },
	{ "twilio", "api_key_sid", KT_SID, 0, F(api_key_sid), 0, 0, ACCOUNT_SID_LEN, 0, NULL, "SK" },
	{ "twilio", "api_key_secret_file", KT_STRING, KF_SECRET_FILE, F(api_key_secret_file), F(api_key_secret), 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "twilio", "api_key_secret", KT_SECRET, KF_SECRET_INLINE, F(api_key_secret), 0, 0, MAX_SECRET_FILE, 0, NULL, NULL },
	{ "twilio", "api_ca_file", KT_STRING, KF_PATH | KF_CRED_PATH, F(api_ca_file), 0, 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "twilio", "status_route", KT_ROUTE, 0, F(status_route), 0, 0, MAX_ROUTE_LEN, 0, DEFAULT_STATUS_ROUTE, NULL },

	{ "proxy", "trusted", KT_CIDRS, KF_EMPTY_OK, F(trusted), 0, 0, 0, 0, NULL, NULL },

	{ "store", "driver", KT_DRIVER, 0, F(store_driver), 0, 0, 32, 0, DEFAULT_STORE_DRIVER, NULL },
	{ "store", "path", KT_STRING, KF_PATH, F(store_path), 0, 0, MAX_PATH_VALUE, 0, DEFAULT_STORE_PATH, NULL },
	{ "store", "dsn_file", KT_STRING, KF_SECRET_FILE, F(store_dsn_file), F(store_dsn), 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "store", "dsn", KT_SECRET, KF_SECRET_INLINE, F(store_dsn), 0, 0, MAX_SECRET_FILE, 0, NULL, NULL },

	{ "secrets", "server_key_file", KT_STRING, KF_PATH, F(server_key_file), 0, 0, MAX_PATH_VALUE, 0, DEFAULT_SERVER_KEY_FILE, NULL },

	{ "reset", "route", KT_ROUTE, 0, F(reset_route), 0, 0, MAX_ROUTE_LEN, 0, DEFAULT_RESET_ROUTE, NULL },
	{ "reset", "link", KT_STRING, KF_REQUIRED, F(reset_link), 0, 0, MAX_TEMPLATE_LEN, 0, NULL, "{token}" },
	{ "reset", "message", KT_STRING, 0, F(reset_message), 0, 0, MAX_TEMPLATE_LEN, 0, DEFAULT_RESET_MESSAGE, "{link}" },
	{ "reset", "token_ttl", KT_DURATION, 0, F(reset_token_ttl), 0, MIN_TOKEN_TTL, MAX_TOKEN_TTL, DEFAULT_TOKEN_TTL, NULL, NULL },
	{ "reset", "unknown_reply", KT_STRING, KF_EMPTY_OK, F(reset_unknown_reply), 0, 0, MAX_TEMPLATE_LEN, 0, "", NULL },
	{ "reset", "replay_window", KT_DURATION, 0, F(reset_replay_window), 0, 0, MAX_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW, NULL, NULL },

	{ "pin", "route", KT_ROUTE, 0, F(pin_route), 0, 0, MAX_ROUTE_LEN, 0, DEFAULT_PIN_ROUTE, NULL },
	{ "pin", "digits", KT_UINT, 0, F(pin_digits), 0, MIN_PIN_DIGITS, MAX_PIN_DIGITS, DEFAULT_PIN_DIGITS, NULL, NULL },
	{ "pin", "ttl", KT_DURATION, 0, F(pin_ttl), 0, MIN_PIN_TTL, MAX_PIN_TTL, DEFAULT_PIN_TTL, NULL, NULL },
	{ "pin", "max_attempts", KT_UINT, 0, F(pin_max_attempts), 0, 1, MAX_PIN_MAX_ATTEMPTS, DEFAULT_PIN_MAX_ATTEMPTS, NULL, NULL },
	{ "pin", "message", KT_STRING, 0, F(pin_message), 0, 0, MAX_TEMPLATE_LEN, 0, DEFAULT_PIN_MESSAGE, "{pin}" },

	{ "limits", "reset_per_number", KT_RATE, 0, F(limit_reset_per_number), 0, 1, MAX_LIMIT_COUNT, DEFAULT_RESET_PER_NUMBER, NULL, NULL },
	{ "limits", "pin_per_number", KT_RATE, 0, F(limit_pin_per_number), 0, 1, MAX_LIMIT_COUNT, DEFAULT_PIN_PER_NUMBER, NULL, NULL },
	{ "limits", "outbound_budget", KT_RATE, 0, F(limit_outbound_budget), 0, 1, MAX_LIMIT_COUNT, DEFAULT_OUTBOUND_BUDGET, NULL, NULL },

	{ "admin", "listen", KT_LISTEN, KF_EMPTY_OK, F(admin_listen), 0, 0, MAX_LISTEN_LEN, 0, DEFAULT_ADMIN_LISTEN, NULL },
	{ "admin", "token_file", KT_STRING, KF_SECRET_FILE, F(admin_token_file), F(admin_token), 0, MAX_PATH_VALUE, 0, NULL, NULL },
	{ "admin", "token", KT_SECRET, KF_SECRET_INLINE, F(admin_token), 0, 0, MAX_SECRET_FILE, 0, NULL, NULL },

	{ "log", "level", KT_LOGLEVEL, 0, F(log_level), 0, 0, 0, LOG_LEVEL_INFO, NULL, NULL },
};

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) == CONFIG_NKEYS,
    "CONFIG_NKEYS does not match the key table");
_Static_assert(CONFIG_NKEYS <= CONFIG_MAX_KEYS, "struct config's key_line is too short");
_Static_assert(sizeof(config_sections) / sizeof(config_sections[0]) == CONFIG_NSECTIONS,
    "CONFIG_NSECTIONS does not match the section list");

struct unit {
	char			suffix;
	unsigned long long	mul;
};

static const struct unit no_units[] = { { 0, 0 } };
static const struct unit duration_units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 0, 0 },
};
static const struct unit size_units[] = {
	{ 'k', 1024 }, { 'K', 1024 }, { 'm', 1024 * 1024 }, { 'M', 1024 * 1024 }, { 0, 0 },
};

int
config_section_index(const char *section)
{
	for (size_t i = 0; i < CONFIG_NSECTIONS; i++)
		if (strcmp(config_sections[i], section) == 0)
			return (int)i;
	return -1;
}

int
config_key_index(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

__attribute__((format(printf, 3, 4)))
static int
fail(char *msg, size_t msgsz, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
	return -1;
}

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Templates end up in TwiML, which must be valid UTF-8 (XML 1.0 section 2.2). */
static bool
utf8_valid(const unsigned char *s)
{
	uint32_t	cp, min;
	size_t		n;

	while (*s != '\0') {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0) {
			n = 1, cp = *s & 0x1fu, min = 0x80;
		} else if ((*s & 0xf0) == 0xe0) {
			n = 2, cp = *s & 0x0fu, min = 0x800;
		} else if ((*s & 0xf8) == 0xf0) {
			n = 3, cp = *s & 0x07u, min = 0x10000;
		} else
			return false;
		for (size_t i = 1; i <= n; i++) {
			/* A NUL fails this test, so we never read past the end. */
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

/* Digits, then at most one unit letter. -1 not a number, -2 overflow. */
static int
scaled(const char *v, const struct unit *units, unsigned long long *out)
{
	unsigned long long	 n, mul = 1;
	char			*end;

	/* strtoull would accept leading spaces, '+' and '-' (and negate). */
	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno == ERANGE)
		return -2;
	if (*end != '\0') {
		while (units->suffix != 0 && units->suffix != *end)
			units++;
		if (units->suffix == 0 || end[1] != '\0')
			return -1;
		mul = units->mul;
	}
	if (n > ULLONG_MAX / mul)
		return -2;
	*out = n * mul;
	return 0;
}

/* A bound the way a user would write it: 600 -> "10m", 1048576 -> "1m". */
static void
fmt_bound(enum key_type type, unsigned long long v, char *out, size_t outsz)
{
	if (type == KT_DURATION && v != 0 && v % 3600 == 0)
		(void)snprintf(out, outsz, "%lluh", v / 3600);
	else if (type == KT_DURATION && v != 0 && v % 60 == 0)
		(void)snprintf(out, outsz, "%llum", v / 60);
	else if (type == KT_DURATION)
		(void)snprintf(out, outsz, "%llus", v);
	else if (type == KT_SIZE && v != 0 && v % (1024 * 1024) == 0)
		(void)snprintf(out, outsz, "%llum", v / (1024 * 1024));
	else if (type == KT_SIZE && v != 0 && v % 1024 == 0)
		(void)snprintf(out, outsz, "%lluk", v / 1024);
	else
		(void)snprintf(out, outsz, "%llu", v);
}

static int
parse_number(const struct config_key *k, const char *v, void *field,
    char *msg, size_t msgsz)
{
	unsigned long long	 n = 0;
	const struct unit	*units = no_units;
	const char		*what = "a whole number";
	char			 lo[32], hi[32];
	int			 rc;

	if (k->type == KT_DURATION) {
		units = duration_units;
		what = "a duration (such as 30s, 15m or 1h)";
	} else if (k->type == KT_SIZE) {
		units = size_units;
		what = "a size (such as 16k or 1m)";
	}
	if ((rc = scaled(v, units, &n)) == -1)
		return fail(msg, msgsz, "'%.*s' is not %s", ECHO, v, what);
	if (rc == -2 || n < k->min || n > k->max) {
		fmt_bound(k->type, k->min, lo, sizeof(lo));
		fmt_bound(k->type, k->max, hi, sizeof(hi));
		return fail(msg, msgsz, "'%.*s' is out of range (%s to %s)",
		    ECHO, v, lo, hi);
	}
	if (k->type == KT_SIZE)
		*(size_t *)field = (size_t)n;
	else
		*(unsigned *)field = (unsigned)n;
	return 0;
}

/*
 * "N/duration" (3/1h, 5/30m, 10/90s): at most N events per window; "off":
 * no limit, stored as count 0. "0/1h" is refused rather than read as off, so
 * that turning a limit off is always written out.
 */
static int
parse_rate(const struct config_key *k, const char *v, struct config_rate *field,
    char *msg, size_t msgsz)
{
	unsigned long long	 count, window = 0;
	char			*end, lo[32], hi[32];
	bool			 overflow;

	if (strcasecmp(v, "off") == 0) {
		field->count = 0;
		field->window = 0;
		return 0;
	}
	/* Digits up to the '/': strtoull alone would take a sign or spaces. */
	if (*v < '0' || *v > '9')
		goto bad;
	errno = 0;
	count = strtoull(v, &end, 10);
	overflow = errno == ERANGE;
	if (*end != '/' || scaled(end + 1, duration_units, &window) == -1)
		goto bad;
	if (overflow || count < k->min || count > k->max) {
		fmt_bound(KT_UINT, k->min, lo, sizeof(lo));
		fmt_bound(KT_UINT, k->max, hi, sizeof(hi));
		return fail(msg, msgsz, "'%.*s' is out of range (count %s to %s, "
		    "or off)", ECHO, v, lo, hi);
	}
	/* On overflow scaled() leaves window at 0: out of range too. */
	if (window < 1 || window > MAX_LIMIT_WINDOW) {
		fmt_bound(KT_DURATION, 1, lo, sizeof(lo));
		fmt_bound(KT_DURATION, MAX_LIMIT_WINDOW, hi, sizeof(hi));
		return fail(msg, msgsz, "'%.*s' is out of range (window %s to %s)",
		    ECHO, v, lo, hi);
	}
	field->count = (unsigned)count;
	field->window = (unsigned)window;
	return 0;
bad:
	return fail(msg, msgsz, "'%.*s' is not a rate (such as 3/1h or 10/90s) "
	    "or off", ECHO, v);
}

static int
parse_bool(const char *v, bool *field, char *msg, size_t msgsz)
{
	static const char *const yes[] = { "on", "yes", "true" };
	static const char *const no[] = { "off", "no", "false" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*field = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*field = false;
			return 0;
		}
	}
	return fail(msg, msgsz, "'%.*s' is not on or off", ECHO, v);
}

/* "addr" or "addr/prefix"; host bits are cleared so matching is one mask. */
static int
parse_cidr(const char *tok, struct config_cidr *c)
{
	char			 addr[INET6_ADDRSTRLEN + 1];
	const char		*slash = strchr(tok, '/');
	size_t			 alen = slash ? (size_t)(slash - tok) : strlen(tok);
	unsigned long long	 prefix;
	unsigned		 bits;

	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, tok, alen);
	addr[alen] = '\0';
	c->family = memchr(addr, ':', alen) ? AF_INET6 : AF_INET;
	bits = c->family == AF_INET6 ? 128 : 32;
	memset(c->addr, 0, sizeof(c->addr));
	if (inet_pton(c->family, addr, c->addr) != 1)
		return -1;
	prefix = bits;
	if (slash != NULL && (scaled(slash + 1, no_units, &prefix) != 0 ||
	    prefix > bits))
		return -1;
	c->prefix = (unsigned)prefix;
	for (unsigned i = 0; i < bits / 8; i++) {
		if (i * 8 >= prefix)
			c->addr[i] = 0;
		else if (prefix - i * 8 < 8)
			c->addr[i] &= (uint8_t)(0xffu << (8 - (prefix - i * 8)));
	}
	return 0;
}

static int
parse_cidrs(char *v, struct config *cfg, char *msg, size_t msgsz)
{
	struct config_cidr	*list = NULL;
	char			*tok, *save = NULL;
	size_t			 n = 0, count = 0;
	int			 rc = -1;

	for (const char *p = v; *p != '\0'; p++)
		if (*p != ',' && *p != ' ' && (p == v || p[-1] == ',' || p[-1] == ' '))
			count++;
	if (count > MAX_TRUSTED_CIDRS) {
		fail(msg, msgsz, "more than %u networks", MAX_TRUSTED_CIDRS);
		goto done;
	}
	if (count > 0 && (list = calloc(count, sizeof(*list))) == NULL) {
		fail(msg, msgsz, "out of memory");
		goto done;
	}
	for (tok = strtok_r(v, ", ", &save); tok != NULL && n < count;
	    tok = strtok_r(NULL, ", ", &save)) {
		if (parse_cidr(tok, &list[n]) == -1) {
			fail(msg, msgsz, "'%.*s' is not an IP address or CIDR network",
			    ECHO, tok);
			goto done;
		}
		n++;
	}
	free(cfg->trusted);
	cfg->trusted = list;
	cfg->trusted_count = n;
	list = NULL;
	rc = 0;
done:
	free(list);
	return rc;
}

/* Port: 1..65535, digits only. */
static int
check_port(const char *s, size_t len)
{
	unsigned long long	port = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		port = port * 10 + (unsigned)(s[i] - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -1;
}

/* An IP literal and a port: server.c binds it without a resolver. */
static int
check_listen(const char *v, char *msg, size_t msgsz)
{
	char		 host[INET6_ADDRSTRLEN + 1];
	const char	*h = v, *port;
	size_t		 hlen;
	int		 family = AF_INET;
	unsigned char	 tmp[16];

	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		h = v + 1;
		hlen = (size_t)(close - h);
		port = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strrchr(v, ':');
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - v);
		if (memchr(v, ':', hlen) != NULL)
			return fail(msg, msgsz, "'%.*s': an IPv6 address needs "
			    "brackets, as in [::1]:8443", ECHO, v);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (inet_pton(family, host, tmp) != 1)
		return fail(msg, msgsz, "'%.*s' is not an IP address (host "
		    "names are not resolved)", ECHO, host);
	if (check_port(port, strlen(port)) == -1)
		return fail(msg, msgsz, "'%.*s' is not a port (1 to 65535)",
		    ECHO, port);
	return 0;
bad:
	return fail(msg, msgsz, "'%.*s' is not address:port (such as "
	    "0.0.0.0:8443 or [::]:8443)", ECHO, v);
}

/* host[:port] or [v6][:port]; host names are letters, digits, '.', '-'. */
static int
check_authority(const char *a, size_t len)
{
	char		 v6[INET6_ADDRSTRLEN + 1];
	unsigned char	 tmp[16];
	const char	*colon;
	size_t		 hlen;

	if (a[0] == '[') {
		const char *close = memchr(a, ']', len);
		if (close == NULL || (size_t)(close - a - 1) >= sizeof(v6))
			return -1;
		hlen = (size_t)(close - a - 1);
		memcpy(v6, a + 1, hlen);
		v6[hlen] = '\0';
		if (inet_pton(AF_INET6, v6, tmp) != 1)
			return -1;
		hlen += 2;
	} else {
		colon = memchr(a, ':', len);
		hlen = colon ? (size_t)(colon - a) : len;
		if (hlen == 0)
			return -1;
		for (size_t i = 0; i < hlen; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", a[i]) == NULL)
				return -1;
	}
	if (hlen == len)
		return 0;
	if (a[hlen] != ':')
		return -1;
	return check_port(a + hlen + 1, len - hlen - 1);
}

/*
 * A base URL: scheme, host, optional port and path prefix. public_url holds
 * the bases Twilio signed, as configured in the Twilio console; the request-target
 * (path and query) is appended per request, so a query or fragment here could
 * never match; a trailing '/' is dropped because the target brings its own.
 * api_base_url is the same shape, https only: it carries our credentials.
 */
static int
check_url(char *v, bool https_only, char *msg, size_t msgsz)
{
	const char	*rest;
	size_t		 alen, len;

	if (strncmp(v, "https://", 8) == 0)
		rest = v + 8;
	else if (https_only)
		return fail(msg, msgsz, "'%.*s' must start with https://",
		    ECHO, v);
	else if (strncmp(v, "http://", 7) == 0)
		rest = v + 7;
	else
		return fail(msg, msgsz, "'%.*s' must start with https:// or "
		    "http://", ECHO, v);
	if (strpbrk(v, "?#") != NULL)
		return fail(msg, msgsz, "must not have a query or fragment: "
		    "each request's own path and query follow it");
	if (strchr(v, ' ') != NULL)
		return fail(msg, msgsz, "must not contain spaces");
	alen = strcspn(rest, "/");
	if (memchr(rest, '@', alen) != NULL)
		return fail(msg, msgsz, "must not contain user:password@");
	if (alen == 0 || check_authority(rest, alen) == -1)
		return fail(msg, msgsz, "'%.*s' has no valid host[:port]",
		    ECHO, v);
	len = strlen(v);
	while (len > (size_t)(rest - v) + alen && v[len - 1] == '/')
		v[--len] = '\0';
	return 0;
}

/* url without the scheme's default port: the form Twilio's port rules equate. */
static void
url_sans_default_port(const char *url, char *out, size_t outsz)
{
	const char	*rest = url + (strncmp(url, "https://", 8) == 0 ? 8 : 7);
	const char	*port = strncmp(url, "https://", 8) == 0 ? ":443" : ":80";
	size_t		 alen = strcspn(rest, "/"), plen = strlen(port);
	size_t		 head = (size_t)(rest - url) + alen;

	if (alen > plen && memcmp(rest + alen - plen, port, plen) == 0)
		head -= plen;
	(void)snprintf(out, outsz, "%.*s%s", (int)head, url, rest + alen);
}

/*
 * public_url: one base URL or a few, separated by spaces (a tab is a control
 * character, refused in any value), each checked as a base URL. The same URL
 * twice, or two that differ only by the scheme's default port (signature.c
 * tries both forms of each anyway), is a mistake that would only cost HMACs.
 */
static int
parse_urls(const struct config_key *k, char *v, struct config_urls *field,
    char *msg, size_t msgsz)
{
	struct config_urls	 urls = { .count = 0 };
	char			*tok, *save = NULL, a[MAX_PUBLIC_URL_LEN + 1],
				 b[MAX_PUBLIC_URL_LEN + 1];
	int			 rc = -1;

	for (tok = strtok_r(v, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		if (urls.count == MAX_PUBLIC_URLS) {
			fail(msg, msgsz, "more than %u URLs", MAX_PUBLIC_URLS);
			goto done;
		}
		if (strlen(tok) > k->max) {
			fail(msg, msgsz, "'%.*s...' is longer than %llu bytes", ECHO, tok, k->max);
			goto done;
		}
		if (check_url(tok, false, msg, msgsz) == -1)
			goto done;
		url_sans_default_port(tok, a, sizeof(a));
		for (size_t i = 0; i < urls.count; i++) {
			url_sans_default_port(urls.url[i], b, sizeof(b));
			if (strcmp(a, b) == 0) {
				fail(msg, msgsz, "'%.*s' is listed twice%s", ECHO, tok,
				    strcmp(tok, urls.url[i]) != 0 ?
				    " (with and without its default port)" : "");
				goto done;
			}
		}
		if ((urls.url[urls.count] = strdup(tok)) == NULL) {
			fail(msg, msgsz, "out of memory");
			goto done;
		}
		urls.count++;
	}
	if (urls.count == 0) {
		fail(msg, msgsz, "needs a value");
		goto done;
	}
	for (size_t i = 0; i < field->count; i++)
		free(field->url[i]);
	*field = urls;
	urls.count = 0;
	rc = 0;
done:
	for (size_t i = 0; i < urls.count; i++)
		free(urls.url[i]);
	return rc;
}

static int
check_route(const char *v, char *msg, size_t msgsz)
{
	if (v[0] != '/')
		return fail(msg, msgsz, "'%.*s' must start with '/'", ECHO, v);
	if (strpbrk(v, " ?#") != NULL)
		return fail(msg, msgsz, "'%.*s' must be a plain path: no spaces, "
		    "'?' or '#'", ECHO, v);
	return 0;
}

/*
 * Twilio SIDs are a two-letter type prefix and 32 hex digits, written in
 * lower case; AccountSid is compared byte for byte.
 */
static int
check_sid(const char *v, const char *prefix, char *msg, size_t msgsz)
{
	static const struct {
		const char	*prefix, *what;
	} kinds[] = {
		{ "AC", "an account SID" },
		{ "MG", "a messaging service SID" },
		{ "SK", "an API key SID" },
	};
	const char	*what = "a SID";

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].prefix, prefix) == 0)
			what = kinds[i].what;
	if (strlen(v) != ACCOUNT_SID_LEN || strncmp(v, prefix, 2) != 0 ||
	    strspn(v + 2, "0123456789abcdef") != ACCOUNT_SID_LEN - 2)
		return fail(msg, msgsz, "'%.*s' is not %s (%s and 32 lower-case "
		    "hex digits)", ECHO, v, what, prefix);
	return 0;
}

/* The sender of outbound SMS, as Twilio's Messages API takes it. */
static int
check_phone(const char *v, char *msg, size_t msgsz)
{
	if (!phone_is_e164(v, strlen(v)))
		return fail(msg, msgsz, "'%.*s' is not an E.164 number ('+' and "
		    "2 to 15 digits, such as +14155550100)", ECHO, v);
	return 0;
}

static int
check_driver(const char *v, char *msg, size_t msgsz)
{
	if (strcmp(v, "sqlite") == 0 || strcmp(v, "postgresql") == 0)
		return 0;
	return fail(msg, msgsz, "'%.*s' is not a store driver (use sqlite or "
	    "postgresql)", ECHO, v);
}

static int
parse_string(const struct config_key *k, char *v, char **field,
    char *msg, size_t msgsz)
{
	char	*copy;
	int	 rc = 0;

	if (strlen(v) > k->max)
		return fail(msg, msgsz, "longer than %llu bytes", k->max);
	if (k->type == KT_STRING && k->literal != NULL && strstr(v, k->literal) == NULL)
		return fail(msg, msgsz, "must contain %s", k->literal);
	if (k->type == KT_LISTEN && *v != '\0')
		rc = check_listen(v, msg, msgsz);
	else if (k->type == KT_HTTPS_URL)
		rc = check_url(v, true, msg, msgsz);
	else if (k->type == KT_ROUTE)
		rc = check_route(v, msg, msgsz);
	else if (k->type == KT_SID)
		rc = check_sid(v, k->literal, msg, msgsz);
	else if (k->type == KT_PHONE)
		rc = check_phone(v, msg, msgsz);
	else if (k->type == KT_DRIVER)
		rc = check_driver(v, msg, msgsz);
	if (rc == -1)
		return -1;
	if ((copy = strdup(v)) == NULL)
		return fail(msg, msgsz, "out of memory");
	free(*field);
	*field = copy;
	return 0;
}

static void
secret_clear(struct config_secret *s)
{
	if (s->data != NULL) {
		sodium_memzero(s->data, s->len);
		sodium_free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}

static int
parse_secret(const struct config_key *k, const char *v,
    struct config_secret *s, char *msg, size_t msgsz)
{
	size_t	 len = strlen(v);
	char	*p;

	if (len > k->max)
		return fail(msg, msgsz, "longer than %llu bytes", k->max);
	if ((p = sodium_malloc(len + 1)) == NULL)
		return fail(msg, msgsz, "out of memory");
	memcpy(p, v, len + 1);
	secret_clear(s);
	s->data = p;
	s->len = len;
	return 0;
}

int
config_value_parse(const struct config_key *k, char *v, struct config *cfg,
    char *msg, size_t msgsz)
{
	void		*field = (char *)cfg + k->offset;
	enum log_level	 level;

	if (has_control(v))
		return fail(msg, msgsz, "contains a control character");
	if (!utf8_valid((const unsigned char *)v))
		return fail(msg, msgsz, "is not valid UTF-8");
	if (*v == '\0' && !(k->flags & KF_EMPTY_OK))
		return fail(msg, msgsz, "needs a value");
	switch (k->type) {
	case KT_BOOL:
		return parse_bool(v, field, msg, msgsz);
	case KT_UINT:
	case KT_DURATION:
	case KT_SIZE:
		return parse_number(k, v, field, msg, msgsz);
	case KT_LOGLEVEL:
		if (log_level_parse(v, &level) == -1)
			return fail(msg, msgsz, "'%.*s' is not a log level "
			    "(debug, info, warn, error)", ECHO, v);
		*(enum log_level *)field = level;
		return 0;
	case KT_CIDRS:
		return parse_cidrs(v, cfg, msg, msgsz);
	case KT_URLS:
		return parse_urls(k, v, field, msg, msgsz);
	case KT_RATE:
		return parse_rate(k, v, field, msg, msgsz);
	case KT_SECRET:
		return parse_secret(k, v, field, msg, msgsz);
	default:
		return parse_string(k, v, field, msg, msgsz);
	}
}

int
config_defaults(struct config *cfg)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct config_key	*k = &config_keys[i];
		void			*field = (char *)cfg + k->offset;

		if (k->type == KT_BOOL)
			*(bool *)field = k->def != 0;
		else if (k->type == KT_UINT || k->type == KT_DURATION)
			*(unsigned *)field = (unsigned)k->def;
		else if (k->type == KT_SIZE)
			*(size_t *)field = (size_t)k->def;
		else if (k->type == KT_LOGLEVEL)
			*(enum log_level *)field = (enum log_level)k->def;
		else if (k->type == KT_RATE)
			*(struct config_rate *)field = (struct config_rate){
				.count = (unsigned)k->def,
				.window = DEFAULT_LIMIT_WINDOW,
			};
		else if (k->defstr != NULL) {
			char *s = strdup(k->defstr);
			if (s == NULL)
				return -1;
			*(char **)field = s;
		}
	}
	return 0;
}

void
config_value_free(const struct config_key *k, struct config *cfg)
{
	void	*field = (char *)cfg + k->offset;

	switch (k->type) {
	case KT_BOOL:
	case KT_UINT:
	case KT_DURATION:
	case KT_SIZE:
	case KT_LOGLEVEL:
	case KT_RATE:
		break;
	case KT_CIDRS:
		free(cfg->trusted);
		cfg->trusted = NULL;
		cfg->trusted_count = 0;
		break;
	case KT_SECRET:
		secret_clear(field);
		break;
	case KT_URLS: {
		struct config_urls *urls = field;

		for (size_t i = 0; i < urls->count; i++) {
			free(urls->url[i]);
			urls->url[i] = NULL;
		}
		urls->count = 0;
		break;
	}
	default:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	}
}
