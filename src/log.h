/*
 * Logging to stderr (journald adds time and unit). log_warn appends
 * strerror(errno), log_warnx does not; fatal exits and is only for setup.
 * Callers never pass tokens, PINs, auth tokens or unmasked phone numbers.
 */
#ifndef TWHOOKD_LOG_H
#define TWHOOKD_LOG_H

#include "config.h"

void	log_init(enum log_level level);
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

#endif
