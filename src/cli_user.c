/*
 * twhookd user: the operator's table of phone -> user id. Refuses any phone
 * that is not E.164 and any user id that is empty, too long or holds control
 * characters. An import is all or nothing: every bad line is reported as
 * FILE:LINE: message, and one bad line means nothing is written.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "cli.h"
#include "config.h"
#include "defaults.h"
#include "phone.h"
#include "store.h"

#define IMPORT_MAX_LINE	4096u	/* bytes; far above phone + MAX_USER_ID_LEN + quoting */
#define CSV_MAX_FIELDS	8	/* stored; more are counted, then refused */
#define E164_HINT	"a '+' and 2 to 15 digits, e.g. +15551234567"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: twhookd [-c FILE] user add PHONE USER_ID\n"
	    "       twhookd [-c FILE] user remove PHONE\n"
	    "       twhookd [-c FILE] user list\n"
	    "       twhookd [-c FILE] user import FILE.csv\n"
	    "PHONE is E.164 (" E164_HINT "); FILE.csv holds phone,user_id lines,\n"
	    "optionally under a header line. The store is [store] path of the config.\n");
}

/* True when id is acceptable; else why (a phrase) says what is wrong. */
static bool
user_id_ok(const char *id, char *why, size_t whysz)
{
	size_t	len = strlen(id);

	if (len == 0) {
		snprintf(why, whysz, "user id is empty");
		return false;
	}
	if (len > MAX_USER_ID_LEN) {
		snprintf(why, whysz, "user id is longer than %u bytes", MAX_USER_ID_LEN);
		return false;
	}
	/* It ends up in logs, admin replies and list output: no terminal tricks. */
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
			snprintf(why, whysz, "user id contains a control character");
			return false;
		}
	}
	return true;
}

/* Load the config and open its store. 0, or 1 after printing why not. */
static int
store_start(const char *config_path, struct config **cfg, struct store **s)
{
	struct buf	errors = BUF_INIT;
	char		err[512];
	int		rc = 1;

	*cfg = NULL;
	*s = NULL;
	/* config_load keeps secrets in sodium_malloc memory. */
	if (sodium_init() < 0) {
		fprintf(stderr, "twhookd: libsodium failed to initialise\n");
		return 1;
	}
	if (config_load(config_path, cfg, &errors) == -1) {
		if (errors.len > 0)
			fwrite(errors.data, 1, errors.len, stderr);
		goto done;
	}
	if (store_open(config_store(*cfg), s, err, sizeof(err)) == -1) {
		fprintf(stderr, "twhookd: store: %s\n", err);
		goto done;
	}
	rc = 0;
done:
	buf_free(&errors);
	if (rc != 0) {
		config_free(*cfg);
		*cfg = NULL;
	}
	return rc;
}

static void
store_stop(struct config *cfg, struct store *s)
{
	store_close(s);
	config_free(cfg);
}

static bool
phone_ok(const char *cmd, const char *phone)
{
	if (phone_is_e164(phone, strlen(phone)))
		return true;
	fprintf(stderr, "twhookd: user %s: %s is not an E.164 number (" E164_HINT ")\n",
	    cmd, phone);
	return false;
}

static int
user_add(const char *config_path, char **args)
{
	struct config	*cfg;
	struct store	*s;
	char		 why[64];
	int		 rc;

	if (!phone_ok("add", args[0]))
		return 1;
	if (!user_id_ok(args[1], why, sizeof(why))) {
		fprintf(stderr, "twhookd: user add: %s\n", why);
		return 1;
	}
	if (store_start(config_path, &cfg, &s) != 0)
		return 1;
	rc = store_user_add(s, args[0], args[1]) == 0 ? 0 : 1;
	store_stop(cfg, s);
	return rc;
}

static int
user_remove(const char *config_path, char **args)
{
	struct config	*cfg;
	struct store	*s;
	bool		 removed = false;
	int		 rc = 1;

	if (!phone_ok("remove", args[0]))
		return 1;
	if (store_start(config_path, &cfg, &s) != 0)
		return 1;
	if (store_user_remove(s, args[0], &removed) == 0) {
		if (removed)
			rc = 0;
		else
			fprintf(stderr, "twhookd: user remove: %s: no such user\n",
			    args[0]);
	}
	store_stop(cfg, s);
	return rc;
}

static int
print_user(void *arg, const char *phone, const char *user_id)
{
	(void)arg;
	return printf("%s %s\n", phone, user_id) < 0;
}

static int
user_list(const char *config_path, char **args)
{
	struct config	*cfg;
	struct store	*s;
	int		 rc = 1;

	(void)args;
	if (store_start(config_path, &cfg, &s) != 0)
		return 1;
	if (store_user_list(s, print_user, NULL) == 0) {
		if (fflush(stdout) == 0 && !ferror(stdout))
			rc = 0;
		else
			fprintf(stderr, "twhookd: user list: cannot write the list\n");
	}
	store_stop(cfg, s);
	return rc;
}

/* One accepted CSV line. */
struct row {
	char		*phone;
	char		*user_id;
	unsigned	 line;
};

struct import {
	const char	*file;
	struct row	*rows;
	size_t		 n, cap;
	unsigned	 errors;
	bool		 data_seen;	/* a non-blank line passed: no header any more */
};

__attribute__((format(printf, 3, 4)))
static void
line_error(struct import *im, unsigned line, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "%s:%u: ", im->file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	im->errors++;
}

/*
 * Split one CSV record (RFC 4180) in place: fields separated by ',', a field
 * may be "quoted" with "" standing for a quote; blanks around fields are
 * dropped. Returns the number of fields (storing at most max), or -1 when a
 * quote is unbalanced or followed by anything but a separator.
 */
static int
csv_split(char *line, char **fields, int max)
{
	char	*r = line, *w, *start, sep;
	int	 n = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		start = w = r;
		if (*r == '"') {
			for (r++; *r != '"' || r[1] == '"'; r++) {
				if (*r == '\0')
					return -1;
				if (*r == '"')
					r++;	/* "" is one quote */
				*w++ = *r;
			}
			for (r++; *r == ' ' || *r == '\t'; r++)
				;
			if (*r != ',' && *r != '\0')
				return -1;
		} else {
			for (; *r != ',' && *r != '\0'; r++)
				;
			for (w = r; w > start && (w[-1] == ' ' || w[-1] == '\t'); w--)
				;
		}
		sep = *r;
		*w = '\0';
		if (n < max)
			fields[n] = start;
		n++;
		if (sep == '\0')
			return n;
		r++;
	}
}

static int
row_add(struct import *im, const char *phone, const char *user_id, unsigned line)
{
	struct row	*p;
	size_t		 cap;

	if (im->n == im->cap) {
		cap = im->cap ? im->cap * 2 : 64;
		if ((p = reallocarray(im->rows, cap, sizeof(*p))) == NULL)
			return -1;
		im->rows = p;
		im->cap = cap;
	}
	p = &im->rows[im->n];
	p->line = line;
	p->phone = strdup(phone);
	p->user_id = strdup(user_id);
	if (p->phone == NULL || p->user_id == NULL) {
		free(p->phone);
		free(p->user_id);
		return -1;
	}
	im->n++;
	return 0;
}

/* Check one line (no newline) and keep it. -1 only when out of memory. */
static int
import_line(struct import *im, char *line, size_t len, unsigned lineno)
{
	char	*f[CSV_MAX_FIELDS], why[64];
	bool	 first;
	int	 n;

	if (strlen(line) != len) {
		line_error(im, lineno, "contains a NUL byte");
		return 0;
	}
	if (line[strspn(line, " \t")] == '\0')
		return 0;			/* blank */
	if ((n = csv_split(line, f, CSV_MAX_FIELDS)) == -1) {
		line_error(im, lineno, "unbalanced or misplaced '\"'");
		return 0;
	}
	/* A header is allowed as the first line with anything on it. */
	first = !im->data_seen;
	im->data_seen = true;
	if (first && !phone_is_e164(f[0], strlen(f[0])) &&
	    strncasecmp(f[0], "phone", 5) == 0)
		return 0;
	if (n != 2)
		line_error(im, lineno, "expected 2 fields (phone,user_id), found %d", n);
	else if (!phone_is_e164(f[0], strlen(f[0])))
		line_error(im, lineno, "phone is not E.164 (" E164_HINT ")");
	else if (!user_id_ok(f[1], why, sizeof(why)))
		line_error(im, lineno, "%s", why);
	else
		return row_add(im, f[0], f[1], lineno);
	return 0;
}

/* Read and check every line of im->file. -1 when it cannot be read at all. */
static int
import_read(struct import *im)
{
	FILE	*fp;
	char	*line = NULL;
	size_t	 sz = 0, len;
	ssize_t	 n;
	unsigned lineno = 0;
	int	 rc = -1;

	if ((fp = fopen(im->file, "re")) == NULL) {
		fprintf(stderr, "twhookd: user import: %s: %s\n", im->file,
		    strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &sz, fp)) != -1) {
		len = (size_t)n;
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		/* A UTF-8 byte order mark, as spreadsheets write it. */
		if (lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
			memmove(line, line + 3, (len -= 3) + 1);
		if (len > IMPORT_MAX_LINE)
			line_error(im, lineno, "line longer than %u bytes", IMPORT_MAX_LINE);
		else if (import_line(im, line, len, lineno) == -1) {
			fprintf(stderr, "twhookd: user import: out of memory\n");
			goto done;
		}
	}
	if (ferror(fp)) {
		fprintf(stderr, "twhookd: user import: %s: %s\n", im->file,
		    strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(line);
	fclose(fp);
	return rc;
}

static int
row_cmp(const void *a, const void *b)
{
	const struct row	*x = a, *y = b;
	int			 c = strcmp(x->phone, y->phone);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/*
 * One phone, one user id: a repeated line is dropped, a phone given two
 * different user ids is an error on each later line.
 */
static void
import_dedupe(struct import *im)
{
	size_t	i, keep = 0, first = 0;

	if (im->n == 0)
		return;
	qsort(im->rows, im->n, sizeof(*im->rows), row_cmp);
	for (i = 0; i < im->n; i++) {
		struct row *r = &im->rows[i];

		if (i > 0 && strcmp(r->phone, im->rows[first].phone) == 0) {
			if (strcmp(r->user_id, im->rows[first].user_id) != 0)
				line_error(im, r->line, "phone already given user "
				    "id %s on line %u", im->rows[first].user_id,
				    im->rows[first].line);
			free(r->phone);
			free(r->user_id);
			continue;
		}
		first = keep;
		im->rows[keep++] = *r;
	}
	im->n = keep;
}

static int
user_import(const char *config_path, char **args)
{
	struct import		 im = { .file = args[0] };
	struct store_user	*users = NULL;
	struct config		*cfg = NULL;
	struct store		*s = NULL;
	size_t			 i;
	int			 rc = 1;

	if (import_read(&im) == -1)
		goto done;
	import_dedupe(&im);
	if (im.errors > 0) {
		fprintf(stderr, "%s: %u bad line%s; nothing imported\n", im.file,
		    im.errors, im.errors == 1 ? "" : "s");
		goto done;
	}
	if ((users = calloc(im.n + 1, sizeof(*users))) == NULL) {
		fprintf(stderr, "twhookd: user import: out of memory\n");
		goto done;
	}
	for (i = 0; i < im.n; i++)
		users[i] = (struct store_user){ im.rows[i].phone, im.rows[i].user_id };
	if (store_start(config_path, &cfg, &s) != 0)
		goto done;
	if (store_user_add_many(s, users, im.n) == -1) {
		fprintf(stderr, "%s: nothing imported\n", im.file);
		goto done;
	}
	printf("%s: imported %zu user%s\n", im.file, im.n, im.n == 1 ? "" : "s");
	rc = 0;
done:
	store_stop(cfg, s);
	for (i = 0; i < im.n; i++) {
		free(im.rows[i].phone);
		free(im.rows[i].user_id);
	}
	free(im.rows);
	free(users);
	return rc;
}

/* The actions, their argument counts and handlers: the whole command. */
static const struct action {
	const char	*name;
	int		 nargs;
	int		(*run)(const char *config_path, char **args);
} actions[] = {
	{ "add", 2, user_add },
	{ "remove", 1, user_remove },
	{ "list", 0, user_list },
	{ "import", 1, user_import },
};

int
cli_user(int argc, char **argv, const char *config_path)
{
	int	next, exit_code;

	/* "user -c FILE list" as well as "-c FILE user list". */
	next = cli_options(argc, argv, &config_path, usage, &exit_code);
	if (exit_code >= 0)
		return exit_code;
	argc -= next;
	argv += next;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	/* "user add --help": argv[1] is never a valid phone, so no ambiguity. */
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (strcmp(argv[0], actions[i].name) != 0)
			continue;
		if (argc - 1 != actions[i].nargs) {
			fprintf(stderr, "twhookd: user %s: takes %d argument%s\n",
			    argv[0], actions[i].nargs, actions[i].nargs == 1 ? "" : "s");
			usage(stderr);
			return 2;
		}
		if (config_path == NULL) {
			fprintf(stderr, "twhookd: user: no configuration file (-c FILE)\n");
			return 2;
		}
		return actions[i].run(config_path, argv + 1);
	}
	fprintf(stderr, "twhookd: user: unknown action: %s\n", argv[0]);
	usage(stderr);
	return 2;
}
