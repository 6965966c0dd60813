/*
 * Logging to stderr (journald adds time and unit). log_warn appends
 * strerror(errno), log_warnx does not; fatal exits and is only for setup.
 * Callers never pass tokens, PINs, auth tokens or unmasked phone numbers.
 */
#ifndef TWHOOKD_LOG_H
#define TWHOOKD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sys/types.h>

#include "config.h"

void	log_init(enum log_level level);
/*
 * Pure: does JOURNAL_STREAM's value env ("device:inode", or NULL) name the
 * file with dev and ino? 1 or 0. log_init asks it about stderr once.
 */
int	log_journal_stream(const char *env, dev_t dev, ino_t ino);
/* Parse "debug", "info", "warn", "error". 0 or -1. */
int	log_level_parse(const char *s, enum log_level *out);
int	log_enabled(enum log_level level);

void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn))
void	fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * One call site's rate limit, for a line that a full disk, a held lock or a
 * flood of connections would repeat for every request: at most one line per
 * LOG_THROTTLE_MS goes out, the others are counted, and the next line that
 * goes out ends in " (repeated N times)", N being the lines swallowed since
 * the one before it. The mutex guards the state only, never a write; when
 * pthread_mutex_lock fails, the line goes out unthrottled. Static storage or
 * a struct member, set with LOG_THROTTLE_INIT; no teardown.
 */
struct log_throttle_state {
	int64_t		last_ms;	/* CLOCK_MONOTONIC ms of the last line out */
	uint64_t	suppressed;	/* lines swallowed since */
	bool		started;	/* a line went out */
};
struct log_throttle {
	pthread_mutex_t			lock;
	struct log_throttle_state	st;
};
#define LOG_THROTTLE_INIT	{ PTHREAD_MUTEX_INITIALIZER, { 0, 0, false } }

/*
 * The decision alone, pure: may a line go out at now_ms, interval_ms after
 * the last one? If so *repeated gets the count swallowed before it and st
 * starts over; if not, st counts it.
 */
bool	log_throttle_pass(struct log_throttle_state *st, int64_t now_ms,
	    int64_t interval_ms, uint64_t *repeated);
/* A line at level, as log_info and the others write it, through t. */
void	log_throttled(struct log_throttle *t, enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
