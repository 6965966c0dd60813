/*
 * Phone numbers: E.164 validation and masking for logs. Pure.
 */
#ifndef TWHOOKD_PHONE_H
#define TWHOOKD_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#define PHONE_MASK_MAX	24u	/* room for any masked number plus NUL */

/* True when s[0..len) is "+" then 2..15 digits, the first not 0 (ITU-T E.164). */
bool	phone_is_e164(const char *s, size_t len);
/*
 * Write a log-safe form of s: the first two and last four characters kept,
 * the rest starred ("+15550000001" -> "+1******0001"). Short or non-E.164
 * input is starred whole. out must hold PHONE_MASK_MAX bytes.
 */
void	phone_mask(const char *s, size_t len, char out[PHONE_MASK_MAX]);

#endif
