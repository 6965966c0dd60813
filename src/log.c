/*
 * Logging: one line per event on stderr, "<level>: message". Lines are
 * written with a single write(2) so threads never interleave within a line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static enum log_level threshold = LOG_LEVEL_INFO;

void
log_init(enum log_level level)
{
	threshold = level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	static const struct { const char *name; enum log_level level; } names[] = {
		{ "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO },
		{ "warn", LOG_LEVEL_WARN }, { "warning", LOG_LEVEL_WARN },
		{ "error", LOG_LEVEL_ERROR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -1;
}

int
log_enabled(enum log_level level)
{
	return level >= threshold;
}

static void
vlog(enum log_level level, const char *prefix, const char *suffix,
    const char *fmt, va_list ap)
{
	char	line[LOG_LINE_MAX];
	int	n, m;
	size_t	len;

	if (!log_enabled(level))
		return;
	n = snprintf(line, sizeof(line), "%s", prefix);
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	len = strnlen(line, sizeof(line) - 2);
	if (suffix != NULL) {
		int k = snprintf(line + len, sizeof(line) - 1 - len, ": %s", suffix);
		if (k > 0)
			len = strnlen(line, sizeof(line) - 2);
	}
	line[len++] = '\n';
	/* Best effort: nowhere to report a failed write of a log line. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

#define DEFINE_LOG(name, level, prefix)			\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	vlog(level, prefix, NULL, fmt, ap);		\
	va_end(ap);					\
}

DEFINE_LOG(log_debug, LOG_LEVEL_DEBUG, "debug: ")
DEFINE_LOG(log_info, LOG_LEVEL_INFO, "info: ")
DEFINE_LOG(log_warnx, LOG_LEVEL_WARN, "warning: ")
DEFINE_LOG(log_error, LOG_LEVEL_ERROR, "error: ")

void
log_warn(const char *fmt, ...)
{
	int	saved = errno;
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, "warning: ", strerror(saved), fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, "fatal: ", NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
