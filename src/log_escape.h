/*
 * Log-safe text from request data, which whoever sends the request chooses:
 * every byte that could end a log line, start a terminal escape sequence,
 * split a field, forge a key=value pair or close a quote is written as \xHH.
 * Pure: no I/O, no allocation, no locale.
 */
#ifndef TWHOOKD_LOG_ESCAPE_H
#define TWHOOKD_LOG_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

enum log_escape_mode {
	/*
	 * A field value (ua="...", method=...): space is escaped too, so the
	 * value stays one token to every parser, quote-aware or not.
	 */
	LOG_ESCAPE_FIELD,
	/*
	 * Free text (a library's message): spaces kept for reading, '='
	 * escaped instead, so no word of it can pass for a key=value field.
	 */
	LOG_ESCAPE_TEXT,
};

/* Output bytes that always hold the escape of n input bytes, NUL included. */
#define LOG_ESCAPE_SIZE(n)	((n) * 4 + 1)

/*
 * Write src[0..len) into out (outsz bytes) escaped for mode, NUL-terminated.
 * Copied as they are: bytes 0x21-0x7e except '"' and backslash (and '=' in
 * TEXT mode), and space in TEXT mode. Everything else becomes \xHH (lower-case
 * hex): control bytes, DEL, and every byte >= 0x80, since terminals act on
 * C1 controls and UTF-8 can reorder a line (bidirectional overrides); a
 * non-ASCII user agent is rare enough to read escaped. src may hold NUL
 * bytes. When the escape does not fit, it stops at a whole character and
 * ends in "..."; outsz 0 writes nothing. Returns the length written.
 */
size_t	log_escape(const char *src, size_t len, enum log_escape_mode mode,
	    char *out, size_t outsz);

/*
 * True when s (NUL-terminated, may be NULL) is 1 to max bytes of ASCII
 * letters, digits and '-': the shape of Twilio's I-Twilio-Idempotency-Token,
 * safe to log as it is.
 */
bool	log_escape_is_token(const char *s, size_t max);

#endif
