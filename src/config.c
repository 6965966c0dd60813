/*
 * Configuration: inih finds names, our line reader counts lines and refuses
 * what inih would accept silently (indented continuations, NUL bytes), the
 * key table (config_keys.c) types values, cross-key rules run last. Errors
 * are "FILE:LINE: [section] key: message", all in one run.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "config.h"
#include "config_keys.h"
#include "defaults.h"

#define MAX_ERRORS	100	/* lines listed; the count returned stays exact */
#define SEC_NONE	(-1)	/* before the first [section] */
#define SEC_BAD		(-2)	/* under an unknown or broken header: already reported */

struct parse_ctx {
	const char	*file;			/* for messages */
	struct config	*cfg;
	struct buf	*errors;
	unsigned	 nerr;

	const char	*text;			/* the whole input */
	size_t		 len, pos;
	unsigned	 lineno;		/* line last read */
	const char	*line;			/* that line: no BOM, no newline, */
	size_t		 linelen;		/* no trailing whitespace */
	unsigned	 pending;		/* key line inih has not handled yet */

	int		 section;		/* index in config_sections, SEC_* */
	unsigned	 section_line[CONFIG_NSECTIONS];	/* first header */
	unsigned	 key_line[CONFIG_NKEYS];		/* 0 = default */
	bool		 key_bad[CONFIG_NKEYS];			/* set, refused */
};

/* Where relative paths are looked up. */
struct file_ref {
	const char	*confdir;		/* absolute directory of the config */
	const char	*creddir;		/* $CREDENTIALS_DIRECTORY or NULL */
};

__attribute__((format(printf, 5, 6)))
static void
err(struct parse_ctx *ctx, unsigned line, const char *section,
    const char *key, const char *fmt, ...)
{
	char	msg[512], where[160] = "";
	va_list	ap;
	int	rc;

	/* Out of memory in buf_printf: the count still says "invalid". */
	if (++ctx->nerr > MAX_ERRORS) {
		if (ctx->nerr == MAX_ERRORS + 1) {
			rc = buf_printf(ctx->errors, "%s: too many errors; not "
			    "listing more\n", ctx->file);
			(void)rc;
		}
		return;
	}
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (section != NULL && key != NULL)
		(void)snprintf(where, sizeof(where), "[%.64s] %.64s: ", section, key);
	else if (section != NULL)
		(void)snprintf(where, sizeof(where), "[%.64s]: ", section);
	else if (key != NULL)
		(void)snprintf(where, sizeof(where), "%.64s: ", key);
	/* Names and values come from the file: keep terminals safe. */
	for (char *p = where; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (line == 0)
		rc = buf_printf(ctx->errors, "%s: %s%s\n", ctx->file, where, msg);
	else
		rc = buf_printf(ctx->errors, "%s:%u: %s%s\n", ctx->file, line,
		    where, msg);
	(void)rc;
}

static void
ctx_init(struct parse_ctx *ctx, const char *file, struct config *cfg,
    struct buf *errors)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->file = file;
	ctx->cfg = cfg;
	ctx->errors = errors;
	ctx->section = SEC_NONE;
}

/* The line before was a key line, but inih found no '=' or ':' in it. */
static void
check_pending(struct parse_ctx *ctx)
{
	if (ctx->pending == 0)
		return;
	err(ctx, ctx->pending, NULL, NULL, "expected 'name = value'");
	ctx->pending = 0;
}

static void
section_header(struct parse_ctx *ctx)
{
	const char	*end = ctx->line + ctx->linelen;
	const char	*name = ctx->line + 1, *close, *rest;
	char		 buf[64];
	size_t		 n;
	int		 idx;

	ctx->section = SEC_BAD;
	if ((close = memchr(name, ']', (size_t)(end - name))) == NULL) {
		err(ctx, ctx->lineno, NULL, NULL, "section header without ']'");
		return;
	}
	for (rest = close + 1; rest < end && isspace((unsigned char)*rest); rest++)
		;
	if (rest < end && *rest != ';' && *rest != '#') {
		err(ctx, ctx->lineno, NULL, NULL, "unexpected text after ']'");
		return;
	}
	n = (size_t)(close - name);
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;	/* too long to be known: report it cut */
	memcpy(buf, name, n);
	buf[n] = '\0';
	if ((idx = config_section_index(buf)) < 0) {
		err(ctx, ctx->lineno, buf, NULL, "unknown section");
		return;
	}
	ctx->section = idx;
	if (ctx->section_line[idx] == 0)
		ctx->section_line[idx] = ctx->lineno;
}

/*
 * Decide what inih sees of the current line: true for key lines. Blank and
 * comment lines reach it as blank; section headers are ours. Indented lines
 * are refused because inih would glue them to the previous value
 * (INI_ALLOW_MULTILINE), so a stray indent would change a value silently.
 */
static bool
classify_line(struct parse_ctx *ctx)
{
	const char	*p = ctx->line;
	size_t		 n = ctx->linelen, i = 0;

	if (n == 0)
		return false;
	if (memchr(p, '\0', n) != NULL) {
		err(ctx, ctx->lineno, NULL, NULL, "line contains a NUL byte");
		return false;
	}
	while (i < n && isspace((unsigned char)p[i]))
		i++;
	if (p[i] == ';' || p[i] == '#')
		return false;
	if (i > 0) {
		err(ctx, ctx->lineno, NULL, NULL, "indented line: continuation "
		    "lines are not supported, put the value on one line");
		return false;
	}
	if (p[0] == '[') {
		section_header(ctx);
		return false;
	}
	ctx->pending = ctx->lineno;
	return true;
}

/*
 * fgets-style reader for ini_parse_stream: exactly one input line per call,
 * so our line count is inih's. Debian's inih does not pass line numbers to
 * handlers (INI_HANDLER_LINENO=0), hence the count lives here.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct parse_ctx	*ctx = stream;
	const char		*p, *nl;
	size_t			 n, room;

	check_pending(ctx);
	if (ctx->pos >= ctx->len || num < 3)
		return NULL;
	p = ctx->text + ctx->pos;
	nl = memchr(p, '\n', ctx->len - ctx->pos);
	n = nl != NULL ? (size_t)(nl - p) : ctx->len - ctx->pos;
	ctx->pos += n + (nl != NULL);
	ctx->lineno++;
	if (ctx->lineno == 1 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;		/* UTF-8 byte order mark */
		n -= 3;
	}
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	ctx->line = p;
	ctx->linelen = n;
	str[0] = '\n';
	str[1] = '\0';
	if (classify_line(ctx)) {
		/*
		 * Debian's inih cuts lines at 200 bytes (INI_MAX_LINE); it only
		 * needs the name, the value is taken from our copy of the line.
		 */
		room = (size_t)num - 2;
		n = n < room ? n : room;
		memcpy(str, p, n);
		str[n] = '\n';
		str[n + 1] = '\0';
	}
	return str;
}

/*
 * The current line's value by inih's own rules (after the first '=' or ':',
 * up to a ';' that follows whitespace, trimmed), from the full line rather
 * than inih's 200-byte copy: templates and TLS priorities are longer.
 */
static char *
line_value(const struct parse_ctx *ctx)
{
	const char	*p = ctx->line, *end = p + ctx->linelen, *v, *c;

	while (p < end && *p != '=' && *p != ':')
		p++;
	v = p < end ? p + 1 : end;
	for (c = v; c < end; c++)
		if (*c == ';' && c > v && isspace((unsigned char)c[-1]))
			break;
	end = c;
	while (v < end && isspace((unsigned char)*v))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	return strndup(v, (size_t)(end - v));
}

static void
set_value(struct parse_ctx *ctx, int idx)
{
	const struct config_key	*k = &config_keys[idx];
	char			 msg[256];
	char			*v;

	if ((v = line_value(ctx)) == NULL) {
		err(ctx, ctx->lineno, k->section, k->name, "out of memory");
		ctx->key_bad[idx] = true;
		return;
	}
	if (config_value_parse(k, v, ctx->cfg, msg, sizeof(msg)) == -1) {
		err(ctx, ctx->lineno, k->section, k->name, "%s", msg);
		ctx->key_bad[idx] = true;
	}
	/* The copy may hold an inline secret. */
	sodium_memzero(v, strlen(v));
	free(v);
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx	*ctx = user;
	const char		*sec;
	int			 idx;

	/* inih's section and value are ours too, but cut at 200 bytes. */
	(void)section;
	(void)value;
	ctx->pending = 0;
	if (ctx->section == SEC_BAD)
		return 1;
	if (ctx->section == SEC_NONE) {
		err(ctx, ctx->lineno, NULL, name, "key before any [section]");
		return 1;
	}
	sec = config_sections[ctx->section];
	if ((idx = config_key_index(sec, name)) < 0) {
		err(ctx, ctx->lineno, sec, name, "unknown key");
		return 1;
	}
	if (ctx->key_line[idx] != 0) {
		err(ctx, ctx->lineno, sec, name, "duplicate key (first set on "
		    "line %u)", ctx->key_line[idx]);
		return 1;
	}
	ctx->key_line[idx] = ctx->lineno;
	set_value(ctx, idx);
	/* Always go on: we collect every error, inih would keep only the first. */
	return 1;
}

/* Index of a key the cross-key rules name; a typo here is our bug. */
static int
key_idx(const char *section, const char *name)
{
	int	idx = config_key_index(section, name);

	if (idx < 0)
		abort();
	return idx;
}

static bool
is_set(const struct parse_ctx *ctx, int idx)
{
	return ctx->key_line[idx] != 0;
}

/* Set or defaulted, and not refused: safe to look at its value. */
static bool
usable(const struct parse_ctx *ctx, int idx)
{
	return !ctx->key_bad[idx];
}

/* Where to report a missing key: its section's header, else line 1. */
static unsigned
missing_line(const struct parse_ctx *ctx, int idx)
{
	int	sec = config_section_index(config_keys[idx].section);

	return sec >= 0 && ctx->section_line[sec] != 0 ?
	    ctx->section_line[sec] : 1;
}

static void
missing(struct parse_ctx *ctx, int idx, const char *why)
{
	err(ctx, missing_line(ctx, idx), config_keys[idx].section,
	    config_keys[idx].name, "required%s", why);
}

static void
check_required(struct parse_ctx *ctx)
{
	for (int i = 0; i < (int)CONFIG_NKEYS; i++)
		if ((config_keys[i].flags & KF_REQUIRED) && !is_set(ctx, i))
			missing(ctx, i, "");
}

static void
check_tls(struct parse_ctx *ctx)
{
	const struct config	*cfg = ctx->cfg;
	int			 tls = key_idx("server", "tls");
	int			 cert = key_idx("server", "tls_cert");
	int			 tkey = key_idx("server", "tls_key");
	int			 url = key_idx("twilio", "public_url");

	if (!usable(ctx, tls))
		return;
	if (cfg->tls) {
		if (!is_set(ctx, cert))
			missing(ctx, cert, " when tls = on");
		if (!is_set(ctx, tkey))
			missing(ctx, tkey, " when tls = on");
		return;
	}
	/* Plain HTTP here means a proxy terminates TLS: Twilio must use https. */
	if (!is_set(ctx, url) || !usable(ctx, url))
		return;
	for (size_t i = 0; i < cfg->public_url.count; i++)
		if (strncmp(cfg->public_url.url[i], "https://", 8) != 0)
			err(ctx, ctx->key_line[url], "twilio", "public_url",
			    "'%.64s' must start with https:// when tls = off",
			    cfg->public_url.url[i]);
}

/* Two keys that exclude each other: reported at the later one. */
static bool
not_both(struct parse_ctx *ctx, const char *section, const char *a,
    const char *b)
{
	int	ia = key_idx(section, a), ib = key_idx(section, b), later;

	if (!is_set(ctx, ia) || !is_set(ctx, ib))
		return false;
	later = ctx->key_line[ia] > ctx->key_line[ib] ? ia : ib;
	err(ctx, ctx->key_line[later], section, config_keys[later].name,
	    "set %s or %s, not both", a, b);
	return true;
}

/* Each secret comes from a file or inline, never both. */
static void
check_secret_pair(struct parse_ctx *ctx, const char *section,
    const char *file, const char *inl, bool required, const char *why)
{
	int	f = key_idx(section, file), i = key_idx(section, inl);

	if (not_both(ctx, section, file, inl))
		return;
	if (required && !is_set(ctx, f) && !is_set(ctx, i))
		missing(ctx, f, why);
}

static void
check_secrets(struct parse_ctx *ctx)
{
	const struct config	*cfg = ctx->cfg;
	int			 admin = key_idx("admin", "listen");
	bool			 admin_on;

	admin_on = usable(ctx, admin) && cfg->admin_listen != NULL &&
	    cfg->admin_listen[0] != '\0';
	check_secret_pair(ctx, "twilio", "auth_token_file", "auth_token", true,
	    " (or auth_token inline)");
	check_secret_pair(ctx, "twilio", "secondary_auth_token_file",
	    "secondary_auth_token", false, "");
	check_secret_pair(ctx, "admin", "token_file", "token", admin_on,
	    " while the admin listener is on (or token inline; "
	    "an empty listen turns it off)");
	check_secret_pair(ctx, "twilio", "api_key_secret_file",
	    "api_key_secret", false, "");
}

/*
 * The Messages API: one sender (a number or a messaging service; neither
 * leaves the PIN flow off, which the daemon decides), and an API key only
 * with its secret (without one, the account SID and auth token are used).
 */
static void
check_twilio_api(struct parse_ctx *ctx)
{
	int	sid = key_idx("twilio", "api_key_sid");
	int	file = key_idx("twilio", "api_key_secret_file");
	int	inl = key_idx("twilio", "api_key_secret");

	(void)not_both(ctx, "twilio", "from_number", "messaging_service_sid");
	if (is_set(ctx, sid) && !is_set(ctx, file) && !is_set(ctx, inl))
		missing(ctx, file, " with api_key_sid (or api_key_secret inline)");
	else if (!is_set(ctx, sid) && (is_set(ctx, file) || is_set(ctx, inl)))
		missing(ctx, sid, is_set(ctx, file) ? " with api_key_secret_file" :
		    " with api_key_secret");
}

/* A route's value, or NULL when refused (already reported). */
static const char *
route_value(const struct parse_ctx *ctx, int idx)
{
	if (!usable(ctx, idx))
		return NULL;
	return *(char *const *)((const char *)ctx->cfg + config_keys[idx].offset);
}

/*
 * The webhook routes share the public listener: each must be its own, and
 * none may shadow the built-in probes. A clash is reported at the key the
 * file set last (defaults are distinct, so at least one was set).
 */
static void
check_routes(struct parse_ctx *ctx)
{
	/* Served on every listener without a signature: never a webhook. */
	static const char *const fixed[] = { "/healthz", "/readyz" };
	int		 idx[3];
	const char	*v[3];

	idx[0] = key_idx("twilio", "status_route");
	idx[1] = key_idx("reset", "route");
	idx[2] = key_idx("pin", "route");
	for (size_t i = 0; i < 3; i++) {
		const struct config_key *k = &config_keys[idx[i]];

		if ((v[i] = route_value(ctx, idx[i])) == NULL)
			continue;
		for (size_t j = 0; j < sizeof(fixed) / sizeof(fixed[0]); j++)
			if (strcmp(v[i], fixed[j]) == 0) {
				err(ctx, ctx->key_line[idx[i]] ?
				    ctx->key_line[idx[i]] : 1, k->section,
				    k->name, "%s is a built-in route", fixed[j]);
				v[i] = NULL;	/* one error per key */
				break;
			}
	}
	for (size_t i = 0; i < 3; i++)
		for (size_t j = i + 1; j < 3; j++) {
			int a = idx[i], b = idx[j], later, other;

			if (v[i] == NULL || v[j] == NULL || strcmp(v[i], v[j]) != 0)
				continue;
			later = ctx->key_line[a] > ctx->key_line[b] ? a : b;
			other = later == a ? b : a;
			err(ctx, ctx->key_line[later], config_keys[later].section,
			    config_keys[later].name, "same path as [%s] %s",
			    config_keys[other].section, config_keys[other].name);
			v[later == a ? i : j] = NULL;	/* one error per key */
		}
}

/* Silence between requests is cut first; a whole request has longer. */
static void
check_timeouts(struct parse_ctx *ctx)
{
	int	req = key_idx("server", "request_timeout");
	int	idle = key_idx("server", "idle_timeout");

	if (usable(ctx, req) && usable(ctx, idle) &&
	    ctx->cfg->idle_timeout > ctx->cfg->request_timeout)
		err(ctx, is_set(ctx, idle) ? ctx->key_line[idle] : ctx->key_line[req],
		    "server", is_set(ctx, idle) ? "idle_timeout" : "request_timeout",
		    "idle_timeout (%us) must not exceed request_timeout (%us)",
		    ctx->cfg->idle_timeout, ctx->cfg->request_timeout);
}

static void
check_listeners(struct parse_ctx *ctx)
{
	const struct config	*cfg = ctx->cfg;
	int			 pub = key_idx("server", "listen");
	int			 adm = key_idx("admin", "listen");

	if (!usable(ctx, pub) || !usable(ctx, adm) || cfg->listen == NULL ||
	    cfg->admin_listen == NULL)
		return;
	if (strcmp(cfg->listen, cfg->admin_listen) == 0)
		err(ctx, is_set(ctx, adm) ? ctx->key_line[adm] :
		    missing_line(ctx, adm), "admin", "listen",
		    "same address as [server] listen");
}

/*
 * [store]: sqlite takes a path; postgresql a DSN, from exactly one of
 * dsn_file (a secret file: a DSN may carry a password) and dsn.
 */
static void
check_store(struct parse_ctx *ctx)
{
	int	drv = key_idx("store", "driver");
	int	path = key_idx("store", "path");
	int	file = key_idx("store", "dsn_file");
	int	inl = key_idx("store", "dsn");

	if (!usable(ctx, drv))
		return;
	if (strcmp(ctx->cfg->store_driver, "postgresql") == 0) {
		if (is_set(ctx, path))
			err(ctx, ctx->key_line[path], "store", "path",
			    "for driver = sqlite only (postgresql takes dsn_file or dsn)");
		check_secret_pair(ctx, "store", "dsn_file", "dsn", true,
		    " with driver = postgresql (or dsn inline)");
		return;
	}
	for (int i = 0; i < 2; i++) {
		int k = i == 0 ? file : inl;

		if (is_set(ctx, k))
			err(ctx, ctx->key_line[k], "store", config_keys[k].name,
			    "for driver = postgresql only");
	}
}

/* The [store] section as store_open takes it; the DSN once its file is read. */
static void
store_config_fill(struct config *cfg)
{
	bool	pg = cfg->store_driver != NULL &&
		    strcmp(cfg->store_driver, "postgresql") == 0;

	cfg->store = (struct store_config){ cfg->store_driver,
	    pg ? NULL : cfg->store_path, pg ? cfg->store_dsn.data : NULL };
}

static void
note_inline_secrets(struct parse_ctx *ctx)
{
	for (int i = 0; i < (int)CONFIG_NKEYS; i++) {
		if (!(config_keys[i].flags & KF_SECRET_INLINE) || !is_set(ctx, i))
			continue;
		if (ctx->cfg->inline_secret_line == 0 ||
		    ctx->key_line[i] < ctx->cfg->inline_secret_line)
			ctx->cfg->inline_secret_line = ctx->key_line[i];
	}
}

/* Parse text into ctx->cfg (zeroed here); errors counted in ctx->nerr. */
static void
parse(struct parse_ctx *ctx, const char *text, size_t len)
{
	struct config	*cfg = ctx->cfg;
	int		 rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = ctx->file;
	ctx->text = text;
	ctx->len = len;
	if (len > MAX_CONFIG_FILE) {
		err(ctx, 0, NULL, NULL, "larger than %u bytes", MAX_CONFIG_FILE);
		return;
	}
	/* Inline secrets go to sodium_malloc memory; init is idempotent. */
	if (sodium_init() < 0 || config_defaults(cfg) == -1) {
		err(ctx, 0, NULL, NULL, "out of memory");
		return;
	}
	rc = ini_parse_stream(reader, ctx, handler, ctx);
	check_pending(ctx);
	if (rc != 0 && ctx->nerr == 0)
		err(ctx, rc > 0 ? (unsigned)rc : 0, NULL, NULL, "syntax error");
	check_required(ctx);
	check_tls(ctx);
	check_secrets(ctx);
	check_twilio_api(ctx);
	check_routes(ctx);
	check_listeners(ctx);
	check_timeouts(ctx);
	check_store(ctx);
	note_inline_secrets(ctx);
	store_config_fill(cfg);
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		cfg->key_line[i] = ctx->key_line[i];
}

int
config_parse(const char *text, size_t len, const char *filename,
    struct config *cfg, struct buf *errors)
{
	struct parse_ctx	ctx;

	ctx_init(&ctx, filename, cfg, errors);
	parse(&ctx, text, len);
	return ctx.nerr > INT_MAX ? INT_MAX : (int)ctx.nerr;
}

/* Read at most cap bytes; *n > cap - 1 tells the caller the file is too big. */
static int
read_all(int fd, char *buf, size_t cap, size_t *n)
{
	ssize_t	r;

	*n = 0;
	while (*n < cap) {
		r = read(fd, buf + *n, cap - *n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0)
			break;
		*n += (size_t)r;
	}
	return 0;
}

/* The config file itself; *st is kept for the inline-secret mode rule. */
static int
read_config(struct parse_ctx *ctx, char **text, size_t *len, struct stat *st)
{
	int	fd = -1, rc = -1;

	*text = NULL;
	if ((fd = open(ctx->file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
	    fstat(fd, st) == -1) {
		err(ctx, 0, NULL, NULL, "%s", strerror(errno));
		goto done;
	}
	if (!S_ISREG(st->st_mode)) {
		err(ctx, 0, NULL, NULL, "not a regular file");
		goto done;
	}
	if ((*text = malloc(MAX_CONFIG_FILE + 1)) == NULL ||
	    read_all(fd, *text, MAX_CONFIG_FILE + 1, len) == -1) {
		err(ctx, 0, NULL, NULL, "%s", strerror(errno));
		goto done;
	}
	if (*len > MAX_CONFIG_FILE) {
		err(ctx, 0, NULL, NULL, "larger than %u bytes", MAX_CONFIG_FILE);
		goto done;
	}
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Anyone who can read the config can read an inline secret: allow one only
 * when group and others have no access at all.
 */
static void
check_inline_mode(struct parse_ctx *ctx, const struct stat *st)
{
	if ((st->st_mode & (S_IRWXG | S_IRWXO)) == 0)
		return;
	for (int i = 0; i < (int)CONFIG_NKEYS; i++)
		if ((config_keys[i].flags & KF_SECRET_INLINE) && is_set(ctx, i))
			err(ctx, ctx->key_line[i], config_keys[i].section,
			    config_keys[i].name, "inline secret needs the config "
			    "file to be mode 0600 or stricter");
}

/* The secret is one line: trailing whitespace (the newline) is dropped. */
static int
read_secret(const char *path, struct config_secret *s, char *msg,
    size_t msgsz)
{
	char	*tmp = NULL;
	size_t	 n = 0;
	int	 fd = -1, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		(void)snprintf(msg, msgsz, "%s: %s", path, strerror(errno));
		goto done;
	}
	if ((tmp = sodium_malloc(MAX_SECRET_FILE + 1)) == NULL ||
	    read_all(fd, tmp, MAX_SECRET_FILE + 1, &n) == -1) {
		(void)snprintf(msg, msgsz, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (n > MAX_SECRET_FILE) {
		(void)snprintf(msg, msgsz, "%s: larger than %u bytes", path,
		    MAX_SECRET_FILE);
		goto done;
	}
	while (n > 0 && isspace((unsigned char)tmp[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f) {
			(void)snprintf(msg, msgsz, "%s: must be one line of "
			    "text", path);
			goto done;
		}
	}
	if (n == 0) {
		(void)snprintf(msg, msgsz, "%s: is empty", path);
		goto done;
	}
	if ((s->data = sodium_malloc(n + 1)) == NULL) {
		(void)snprintf(msg, msgsz, "out of memory");
		goto done;
	}
	memcpy(s->data, tmp, n);
	s->data[n] = '\0';
	s->len = n;
	rc = 0;
done:
	if (tmp != NULL) {
		sodium_memzero(tmp, MAX_SECRET_FILE + 1);
		sodium_free(tmp);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

static char *
join(const char *dir, const char *name)
{
	size_t	 dl = strlen(dir), nl = strlen(name);
	char	*p;

	if ((p = malloc(dl + nl + 2)) == NULL)
		return NULL;
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

/*
 * The directory a relative path in this key is looked up in. Secrets:
 * systemd's LoadCredential= directory when we run under it, else next to
 * the config. TLS files: the credentials directory if the file is there
 * (LoadCredential= is how keys get shipped), else next to the config.
 */
static const char *
base_dir(const struct config_key *k, const char *rel, const struct file_ref *ref)
{
	char		*p;
	bool		 found;

	if (ref->creddir == NULL)
		return ref->confdir;
	if (k->flags & KF_SECRET_FILE)
		return ref->creddir;
	if (!(k->flags & KF_CRED_PATH) || (p = join(ref->creddir, rel)) == NULL)
		return ref->confdir;
	found = access(p, F_OK) == 0;
	free(p);
	return found ? ref->creddir : ref->confdir;
}

/* Make key idx's path absolute and, for *_file secrets, read the secret. */
static void
resolve_key(struct parse_ctx *ctx, int idx, const struct file_ref *ref)
{
	const struct config_key	*k = &config_keys[idx];
	char			**field = (char **)((char *)ctx->cfg + k->offset);
	struct config_secret	*s;
	char			 msg[PATH_MAX + 128];
	char			*abs;

	if (*field == NULL || ctx->key_bad[idx])
		return;
	if ((*field)[0] != '/') {
		if ((abs = join(base_dir(k, *field, ref), *field)) == NULL) {
			err(ctx, ctx->key_line[idx], k->section, k->name,
			    "out of memory");
			return;
		}
		free(*field);
		*field = abs;
	}
	if (!(k->flags & KF_SECRET_FILE))
		return;
	s = (struct config_secret *)((char *)ctx->cfg + k->target);
	if (s->data != NULL)
		return;		/* given inline as well: already an error */
	if (read_secret(*field, s, msg, sizeof(msg)) == -1)
		err(ctx, ctx->key_line[idx], k->section, k->name, "%s", msg);
}

/* Absolute directory of the config file, so paths survive a chdir. */
static char *
config_dir(const char *path)
{
	const char	*slash = strrchr(path, '/');
	char		*dir, *abs;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return NULL;
	if ((abs = realpath(dir, NULL)) == NULL)
		return dir;
	free(dir);
	return abs;
}

static void
resolve_files(struct parse_ctx *ctx)
{
	struct file_ref	 ref;
	char		*confdir;

	if ((confdir = config_dir(ctx->file)) == NULL) {
		err(ctx, 0, NULL, NULL, "out of memory");
		return;
	}
	ref.confdir = confdir;
	ref.creddir = getenv("CREDENTIALS_DIRECTORY");
	if (ref.creddir != NULL && ref.creddir[0] == '\0')
		ref.creddir = NULL;
	for (int i = 0; i < (int)CONFIG_NKEYS; i++)
		if (config_keys[i].flags & (KF_PATH | KF_SECRET_FILE))
			resolve_key(ctx, i, &ref);
	free(confdir);
}

int
config_load(const char *path, struct config **out, struct buf *errors)
{
	struct parse_ctx	 ctx;
	struct config		*cfg = NULL;
	struct stat		 st;
	char			*text = NULL, *name;
	size_t			 len = 0, plen = strlen(path);
	int			 rc = -1;

	*out = NULL;
	ctx_init(&ctx, path, NULL, errors);
	/* The struct carries its own copy of the path: cfg->path stays valid. */
	if ((cfg = calloc(1, sizeof(*cfg) + plen + 1)) == NULL) {
		err(&ctx, 0, NULL, NULL, "out of memory");
		goto done;
	}
	name = (char *)(cfg + 1);
	memcpy(name, path, plen + 1);
	ctx_init(&ctx, name, cfg, errors);
	if (read_config(&ctx, &text, &len, &st) == -1)
		goto done;
	parse(&ctx, text, len);
	check_inline_mode(&ctx, &st);
	resolve_files(&ctx);
	store_config_fill(cfg);
	if (ctx.nerr == 0) {
		*out = cfg;
		cfg = NULL;
		rc = 0;
	}
done:
	if (text != NULL) {
		sodium_memzero(text, len);	/* it may hold inline secrets */
		free(text);
	}
	config_free(cfg);
	return rc;
}

int
config_error(const struct config *cfg, struct buf *errors, const char *section,
    const char *key, const char *fmt, ...)
{
	char	 msg[1024];
	int	 idx = config_key_index(section, key);
	unsigned line = idx >= 0 ? cfg->key_line[idx] : 0;
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Paths come from the file: keep terminals safe, as err() does. */
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (line == 0)
		return buf_printf(errors, "%s: [%s] %s: %s\n", cfg->path, section, key, msg);
	return buf_printf(errors, "%s:%u: [%s] %s: %s\n", cfg->path, line, section, key,
	    msg);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		config_value_free(&config_keys[i], cfg);
	free(cfg);
}
