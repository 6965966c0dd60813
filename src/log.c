/*
 * Logging: one line per event on stderr, "<level>: message", and when stderr
 * is the journal (JOURNAL_STREAM names its device and inode) each line starts
 * with its syslog priority, "<3>error: ...", which journald strips and
 * records. Lines are written with a single write(2) so threads never
 * interleave within a line. log_throttled keeps a call site that repeats
 * itself to a line a second.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "defaults.h"
#include "log.h"

#define LOG_LINE_MAX 2048

static enum log_level threshold = LOG_LEVEL_INFO;
/* stderr is the journal: -1 not asked yet, else 0 or 1. Set once, at startup. */
static int journal = -1;

int
log_journal_stream(const char *env, dev_t dev, ino_t ino)
{
	unsigned long long	d, i;
	char			tail;

	/* systemd.exec(5): "device:inode", both decimal. */
	if (env == NULL || sscanf(env, "%llu:%llu%c", &d, &i, &tail) != 2)
		return 0;
	return d == (unsigned long long)dev && i == (unsigned long long)ino;
}

static bool
to_journal(void)
{
	struct stat st;

	if (journal == -1)
		journal = fstat(STDERR_FILENO, &st) == 0 &&
		    log_journal_stream(getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
	return journal == 1;
}

void
log_init(enum log_level level)
{
	threshold = level;
	(void)to_journal();
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

static const char *const prefixes[] = {
	[LOG_LEVEL_DEBUG] = "debug: ", [LOG_LEVEL_INFO] = "info: ",
	[LOG_LEVEL_WARN] = "warning: ", [LOG_LEVEL_ERROR] = "error: ",
};
/* sd-daemon(3)'s SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR. */
static const char *const priorities[] = {
	[LOG_LEVEL_DEBUG] = "<7>", [LOG_LEVEL_INFO] = "<6>",
	[LOG_LEVEL_WARN] = "<4>", [LOG_LEVEL_ERROR] = "<3>",
};

/* suffix: ": suffix" appended (strerror); repeated > 0: the throttle's count. */
static void
vlog(enum log_level level, const char *prefix, const char *suffix,
    uint64_t repeated, const char *fmt, va_list ap)
{
	char	line[LOG_LINE_MAX];
	int	n, m;
	size_t	len;

	if (!log_enabled(level))
		return;
	n = snprintf(line, sizeof(line), "%s%s", to_journal() ? priorities[level] : "",
	    prefix);
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	len = strnlen(line, sizeof(line) - 2);
	if (suffix != NULL &&
	    snprintf(line + len, sizeof(line) - 1 - len, ": %s", suffix) > 0)
		len = strnlen(line, sizeof(line) - 2);
	if (repeated > 0 && snprintf(line + len, sizeof(line) - 1 - len,
	    " (repeated %llu times)", (unsigned long long)repeated) > 0)
		len = strnlen(line, sizeof(line) - 2);
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
	vlog(level, prefix, NULL, 0, fmt, ap);		\
	va_end(ap);					\
}

DEFINE_LOG(log_debug, LOG_LEVEL_DEBUG, prefixes[LOG_LEVEL_DEBUG])
DEFINE_LOG(log_info, LOG_LEVEL_INFO, prefixes[LOG_LEVEL_INFO])
DEFINE_LOG(log_warnx, LOG_LEVEL_WARN, prefixes[LOG_LEVEL_WARN])
DEFINE_LOG(log_error, LOG_LEVEL_ERROR, prefixes[LOG_LEVEL_ERROR])

void
log_warn(const char *fmt, ...)
{
	int	saved = errno;
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, "warning: ", strerror(saved), 0, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, "fatal: ", NULL, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

bool
log_throttle_pass(struct log_throttle_state *st, int64_t now_ms, int64_t interval_ms,
    uint64_t *repeated)
{
	if (st->started && now_ms - st->last_ms < interval_ms) {
		st->suppressed++;
		return false;
	}
	*repeated = st->suppressed;
	st->suppressed = 0;
	st->last_ms = now_ms;
	st->started = true;
	return true;
}

void
log_throttled(struct log_throttle *t, enum log_level level, const char *fmt, ...)
{
	uint64_t	repeated = 0;
	bool		pass = true;
	va_list		ap;

	if (!log_enabled(level))
		return;
	if (pthread_mutex_lock(&t->lock) == 0) {
		pass = log_throttle_pass(&t->st, clock_now_ms(), LOG_THROTTLE_MS, &repeated);
		pthread_mutex_unlock(&t->lock);
	}
	if (!pass)
		return;
	va_start(ap, fmt);
	vlog(level, prefixes[level], NULL, repeated, fmt, ap);
	va_end(ap);
}
