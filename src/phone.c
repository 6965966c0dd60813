/*
 * Phone numbers: the E.164 shape check that guards every store key, and the
 * masked form that is all a log line ever shows. Pure; no I/O, no locale
 * (isdigit would accept other digits under some locales).
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "phone.h"

#define E164_MIN_DIGITS	2
#define E164_MAX_DIGITS	15	/* ITU-T E.164, section 6.1 */
#define MASK_KEEP_HEAD	2
#define MASK_KEEP_TAIL	4
#define MASK_MIN_LEN	8	/* shorter: keeping 6 characters would reveal most of it */

bool
phone_is_e164(const char *s, size_t len)
{
	size_t	i;

	if (s == NULL || len < 1 + E164_MIN_DIGITS || len > 1 + E164_MAX_DIGITS)
		return false;
	if (s[0] != '+' || s[1] == '0')
		return false;
	for (i = 1; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

void
phone_mask(const char *s, size_t len, char out[PHONE_MASK_MAX])
{
	size_t	i, n;

	n = len < PHONE_MASK_MAX - 1 ? len : PHONE_MASK_MAX - 1;
	memset(out, '*', n);
	out[n] = '\0';
	if (!phone_is_e164(s, len) || len < MASK_MIN_LEN)
		return;
	/* An E.164 number is at most 16 characters, so it fits unshortened. */
	for (i = 0; i < MASK_KEEP_HEAD; i++)
		out[i] = s[i];
	for (i = len - MASK_KEEP_TAIL; i < len; i++)
		out[i] = s[i];
}
