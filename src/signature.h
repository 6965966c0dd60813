/*
 * Twilio request signatures (X-Twilio-Signature), exactly as Twilio's own
 * helper libraries compute them: HMAC-SHA1 keyed with the auth token over the
 * URL followed by the form parameters sorted by name in byte order, base64.
 * Pure: no I/O, no logging, no globals. Never decodes, re-encodes or re-orders
 * the URL: it is signed exactly as given.
 */
#ifndef TWHOOKD_SIGNATURE_H
#define TWHOOKD_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "form.h"

#define SIGNATURE_SHA1_B64_LEN	28u	/* base64 of 20 bytes, with padding */
#define SIGNATURE_MAX_URL_VARIANTS 3u

enum signature_result {
	SIGNATURE_OK = 0,
	SIGNATURE_MISSING,		/* no header, or an empty one */
	SIGNATURE_MALFORMED,		/* header is not 28 base64 characters */
	SIGNATURE_MISMATCH,		/* no candidate URL x key matched */
	SIGNATURE_NO_BODY_HASH,		/* non-form body without bodySHA256 in the URL */
	SIGNATURE_BODY_HASH_MISMATCH,	/* bodySHA256 does not match the body */
	SIGNATURE_ERROR,		/* out of memory or a crypto library failure */
};

/* A key: an auth token's bytes (not NUL-terminated). */
struct signature_key {
	const uint8_t	*data;
	size_t		 len;
};

/*
 * The string Twilio signs: url, then for each name in byte order (memcmp,
 * shorter first on a common prefix) the name followed by its value; a repeated
 * name's values are sorted by bytes and exact duplicates dropped. params may
 * be NULL (nothing appended). Appends to out; 0 or -1 (no memory).
 */
__attribute__((warn_unused_result))
int	signature_string(const char *url, size_t url_len, const struct form *params,
	    struct buf *out);

/*
 * Base64 HMAC-SHA1 of signature_string(url, params) under key, written to out
 * as a NUL-terminated 28-character string. SIGNATURE_OK or SIGNATURE_ERROR.
 */
__attribute__((warn_unused_result))
enum signature_result	signature_compute(const char *url, size_t url_len,
			    const struct form *params, const struct signature_key *key,
			    char out[SIGNATURE_SHA1_B64_LEN + 1]);

/*
 * The URLs Twilio may have signed for url, as its libraries try them: the URL
 * as given, with its port removed (when it has one), with the scheme's default
 * port added (443 https, 80 http; when it has none). Duplicates are not
 * repeated. out[] must be zeroed buffers; returns how many were written
 * (1..3), or 0 when out of memory.
 */
size_t	signature_url_variants(const char *url, size_t url_len,
	    struct buf out[SIGNATURE_MAX_URL_VARIANTS]);

/* One URL Twilio may have signed (not NUL-terminated). */
struct signature_url {
	const char	*data;
	size_t		 len;
};

/* Everything signature_verify needs; the caller owns all memory. */
struct signature_check {
	const struct signature_url	*urls;		/* public URL + raw request-target, */
	size_t				 url_count;	/* one or more, tried in order */
	const struct form		*params;	/* decoded form body; NULL for a non-form body */
	const uint8_t			*body;		/* raw body (for bodySHA256 when params == NULL) */
	size_t				 body_len;
	const char			*header;	/* X-Twilio-Signature value, or NULL */
	size_t				 header_len;
	const struct signature_key	*keys;		/* primary, then secondary auth token */
	size_t				 key_count;
};

/*
 * Accept when any variant of any URL under any key matches the header,
 * compared in constant time (sodium_memcmp). The URLs are tried in order, and
 * all the variants and keys of one URL are tried before the next: at most
 * url_count * SIGNATURE_MAX_URL_VARIANTS * key_count HMACs, fewer when an
 * early URL matches. The URLs must differ only in what precedes the
 * request-target. For a non-form body (params == NULL) the URL must carry
 * bodySHA256 = lower-case hex SHA-256 of the body, and only the URL is
 * signed.
 */
__attribute__((warn_unused_result))
enum signature_result	signature_verify(const struct signature_check *c);

const char	*signature_result_str(enum signature_result r);

#endif
