/*
 * Escaping for log lines: a byte passes only when it is printable ASCII that
 * cannot end a field or a quote; everything else is written \xHH. It never
 * lets a byte through on the strength of its context, so one rule covers
 * headers, methods and the HTTP library's messages alike.
 */
#include <string.h>

#include "log_escape.h"

#define ELLIPSIS	"..."
#define ELLIPSIS_LEN	3

static bool
passes(unsigned char c, enum log_escape_mode mode)
{
	if (c == ' ')
		return mode == LOG_ESCAPE_TEXT;
	if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
		return false;
	return !(c == '=' && mode == LOG_ESCAPE_TEXT);
}

/* Bytes src[0..len) escaped: stops counting once past limit. */
static size_t
escaped_len(const unsigned char *src, size_t len, enum log_escape_mode mode,
    size_t limit)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n <= limit; i++)
		n += passes(src[i], mode) ? 1 : 4;
	return n;
}

size_t
log_escape(const char *src, size_t len, enum log_escape_mode mode, char *out,
    size_t outsz)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 room, pos = 0, i;
	bool			 cut;

	if (outsz == 0)
		return 0;
	room = outsz - 1;
	cut = escaped_len(s, len, mode, room) > room;
	/* Cut: keep room for the ellipsis, as much of it as outsz allows. */
	if (cut)
		room = room > ELLIPSIS_LEN ? room - ELLIPSIS_LEN : 0;
	for (i = 0; i < len; i++) {
		if (passes(s[i], mode)) {
			if (pos + 1 > room)
				break;
			out[pos++] = (char)s[i];
		} else {
			if (pos + 4 > room)
				break;
			out[pos++] = '\\';
			out[pos++] = 'x';
			out[pos++] = hex[s[i] >> 4];
			out[pos++] = hex[s[i] & 0x0f];
		}
	}
	if (cut) {
		size_t n = outsz - 1 - pos < ELLIPSIS_LEN ? outsz - 1 - pos : ELLIPSIS_LEN;
		memcpy(out + pos, ELLIPSIS, n);
		pos += n;
	}
	out[pos] = '\0';
	return pos;
}

bool
log_escape_is_token(const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= max || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || c == '-'))
			return false;
	}
	return true;
}
