/*
 * X-Twilio-Signature: the string to sign, HMAC-SHA1 (GnuTLS), base64 and
 * constant-time compare (libsodium), the port variants Twilio's libraries
 * try, and bodySHA256 for non-form bodies. Pure: no I/O, no logging. Never
 * normalizes the URL (DESIGN.md, "Twilio's signature, precisely", point 1).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <sodium.h>

#include "signature.h"

#define SHA1_LEN	20u
#define SHA256_HEX_LEN	(crypto_hash_sha256_BYTES * 2)
#define BODY_HASH_NAME	"bodySHA256"

/* Byte order, shorter first on a common prefix (memcmp, never strcoll). */
static int
bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int	c;

	if ((c = memcmp(a, b, alen < blen ? alen : blen)) != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* qsort over pair pointers: by name, then by value. */
static int
paircmp(const void *a, const void *b)
{
	const struct form_pair	*pa = *(const struct form_pair *const *)a;
	const struct form_pair	*pb = *(const struct form_pair *const *)b;
	int			 c;

	if ((c = bytecmp(pa->name, pa->name_len, pb->name, pb->name_len)) != 0)
		return c;
	return bytecmp(pa->value, pa->value_len, pb->value, pb->value_len);
}

/* The part after the URL: sorted names, each followed by its value(s). */
static int
params_string(const struct form *params, struct buf *out)
{
	const struct form_pair	**v = NULL, *prev = NULL;
	size_t			 i;
	int			 rc = -1;

	if (params == NULL || params->count == 0) {
		rc = 0;
		goto done;
	}
	if ((v = calloc(params->count, sizeof(*v))) == NULL)
		goto done;
	for (i = 0; i < params->count; i++)
		v[i] = &params->pairs[i];
	/*
	 * Sort by name, then a repeated name's values by bytes, and drop exact
	 * duplicates (DESIGN.md point 2; twilio-node: new Set(values).sort()).
	 * Comparing name first, not the joined name+value, keeps "a"="bc"
	 * before "ab"="c".
	 */
	qsort(v, params->count, sizeof(*v), paircmp);
	for (i = 0; i < params->count; i++) {
		if (prev != NULL && paircmp(&prev, &v[i]) == 0)
			continue;
		if (buf_append(out, v[i]->name, v[i]->name_len) == -1 ||
		    buf_append(out, v[i]->value, v[i]->value_len) == -1)
			goto done;
		prev = v[i];
	}
	rc = 0;
done:
	free(v);
	return rc;
}

int
signature_string(const char *url, size_t url_len, const struct form *params,
    struct buf *out)
{
	if (buf_append(out, url, url_len) == -1)
		return -1;
	return params_string(params, out);
}

/* Base64 (standard alphabet, padded) HMAC-SHA1 of data under key. */
static enum signature_result
hmac_b64(const char *data, size_t len, const struct signature_key *key,
    char out[SIGNATURE_SHA1_B64_LEN + 1])
{
	uint8_t	mac[SHA1_LEN];
	const void *k = key->len > 0 ? (const void *)key->data : "";

	if (gnutls_hmac_fast(GNUTLS_MAC_SHA1, k, key->len,
	    len > 0 ? (const void *)data : "", len, mac) < 0)
		return SIGNATURE_ERROR;
	sodium_bin2base64(out, SIGNATURE_SHA1_B64_LEN + 1, mac, sizeof(mac),
	    sodium_base64_VARIANT_ORIGINAL);
	return SIGNATURE_OK;
}

enum signature_result
signature_compute(const char *url, size_t url_len, const struct form *params,
    const struct signature_key *key, char out[SIGNATURE_SHA1_B64_LEN + 1])
{
	struct buf		s = BUF_INIT;
	enum signature_result	r = SIGNATURE_ERROR;

	out[0] = '\0';
	if (signature_string(url, url_len, params, &s) == -1)
		goto done;
	r = hmac_b64(s.data, s.len, key, out);
done:
	buf_free(&s);
	return r;
}

/* Length of the RFC 3986 scheme when url[0..len) starts "scheme://", else 0. */
static size_t
scheme_len(const char *url, size_t len)
{
	size_t	i;
	char	c;

	for (i = 0; i < len; i++) {
		c = url[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			continue;
		if (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' ||
		    c == '.'))
			continue;
		break;
	}
	if (i == 0 || len - i < 3 || memcmp(url + i, "://", 3) != 0)
		return 0;
	return i;
}

/*
 * Locate the port in the authority: *colon is the offset of ':' and *end
 * the offset just past the digits (*colon == *end when there is no port).
 * -1 when the URL has no authority or its port is not digits.
 */
static int
find_port(const char *url, size_t len, size_t *colon, size_t *end)
{
	size_t		 slen, a, host, i;
	const char	*at;

	if ((slen = scheme_len(url, len)) == 0)
		return -1;
	a = slen + 3;
	for (i = a; i < len && url[i] != '/' && url[i] != '?' && url[i] != '#'; i++)
		;
	/* Skip userinfo (last '@'), then an IPv6 literal's brackets. */
	host = a;
	while ((at = memchr(url + host, '@', i - host)) != NULL)
		host = (size_t)(at - url) + 1;
	if (host < i && url[host] == '[') {
		at = memchr(url + host, ']', i - host);
		if (at == NULL)
			return -1;
		host = (size_t)(at - url) + 1;
	}
	at = memchr(url + host, ':', i - host);
	*colon = *end = at != NULL ? (size_t)(at - url) : i;
	if (at == NULL)
		return 0;
	for (*end = *colon + 1; *end < i; (*end)++)
		if (url[*end] < '0' || url[*end] > '9')
			return -1;
	return 0;
}

/* The default port of the URL's scheme (Twilio's libraries: 443 https, 80 http). */
static const char *
default_port(const char *url, size_t len)
{
	size_t	slen = scheme_len(url, len);

	if (slen == 5 && strncasecmp(url, "https", 5) == 0)
		return ":443";
	if (slen == 4 && strncasecmp(url, "http", 4) == 0)
		return ":80";
	return NULL;
}

size_t
signature_url_variants(const char *url, size_t url_len,
    struct buf out[SIGNATURE_MAX_URL_VARIANTS])
{
	size_t		 n = 0, colon, end, i;
	const char	*port;
	int		 fail;

	fail = buf_append(&out[n++], url, url_len) == -1;
	if (!fail && find_port(url, url_len, &colon, &end) == 0) {
		if (colon < end) {
			/* As given, and with ":port" cut out. */
			fail = buf_append(&out[n], url, colon) == -1 ||
			    buf_append(&out[n], url + end, url_len - end) == -1;
			n++;
		} else if ((port = default_port(url, url_len)) != NULL) {
			/* As given, and with the scheme's default port added. */
			fail = buf_append(&out[n], url, colon) == -1 ||
			    buf_append_str(&out[n], port) == -1 ||
			    buf_append(&out[n], url + colon, url_len - colon) == -1;
			n++;
		}
	}
	if (fail) {
		for (i = 0; i < n; i++)
			buf_free(&out[i]);
		return 0;
	}
	return n;
}

/* The header must look like a Twilio signature: 28 base64 characters. */
static int
header_wellformed(const char *h, size_t len)
{
	size_t	i;
	char	c;

	if (len != SIGNATURE_SHA1_B64_LEN || h[len - 1] != '=')
		return 0;
	for (i = 0; i < len - 1; i++) {
		c = h[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return 0;
	}
	return 1;
}

/*
 * The first bodySHA256 value in the URL's query (as Twilio's libraries read
 * it: parse_qs()[0], searchParams.get()). NULL when absent.
 */
static const char *
body_hash_param(const char *url, size_t len, size_t *vlen)
{
	const char	*p, *end, *amp, *q = memchr(url, '?', len);
	size_t		 nlen = sizeof(BODY_HASH_NAME) - 1;

	if (q == NULL)
		return NULL;
	end = memchr(q, '#', len - (size_t)(q - url));
	if (end == NULL)
		end = url + len;
	for (p = q + 1; p < end; p = amp + 1) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		if ((size_t)(amp - p) > nlen && p[nlen] == '=' &&
		    memcmp(p, BODY_HASH_NAME, nlen) == 0) {
			*vlen = (size_t)(amp - p) - nlen - 1;
			return p + nlen + 1;
		}
	}
	return NULL;
}

/* The body's lower-case hex SHA-256 equals the URL's bodySHA256. */
static int
body_hash_matches(const char *want, size_t want_len, const uint8_t *body,
    size_t body_len)
{
	uint8_t	md[crypto_hash_sha256_BYTES];
	char	hex[SHA256_HEX_LEN + 1];

	if (want_len != SHA256_HEX_LEN)
		return 0;
	crypto_hash_sha256(md, body_len > 0 ? body : (const uint8_t *)"", body_len);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	return sodium_memcmp(hex, want, SHA256_HEX_LEN) == 0;
}

/* Does any variant of url under any key give the header? 1, 0, or -1 on error. */
static int
match_url(const struct signature_check *c, const struct signature_url *url,
    const struct buf *tail)
{
	struct buf	v[SIGNATURE_MAX_URL_VARIANTS], s = BUF_INIT;
	char		want[SIGNATURE_SHA1_B64_LEN + 1];
	size_t		n, i, k;
	int		match = 0, rc = -1;

	memset(v, 0, sizeof(v));
	if ((n = signature_url_variants(url->data, url->len, v)) == 0)
		goto done;
	for (i = 0; i < n; i++) {
		buf_reset(&s);
		if (buf_append(&s, v[i].data, v[i].len) == -1 ||
		    buf_append(&s, tail->data, tail->len) == -1)
			goto done;
		for (k = 0; k < c->key_count; k++) {
			if (hmac_b64(s.data, s.len, &c->keys[k], want) != SIGNATURE_OK)
				goto done;
			/* Every candidate is tried: the time does not tell which matched. */
			match |= sodium_memcmp(want, c->header,
			    SIGNATURE_SHA1_B64_LEN) == 0;
		}
	}
	rc = match;
done:
	for (i = 0; i < SIGNATURE_MAX_URL_VARIANTS; i++)
		buf_free(&v[i]);
	buf_free(&s);
	return rc;
}

/*
 * Any variant of any URL under any key matches: SIGNATURE_OK, else MISMATCH.
 * Stopping at the first URL that matches tells a client no more than it
 * knew: which URL it had signed.
 */
static enum signature_result
match_any(const struct signature_check *c)
{
	struct buf		tail = BUF_INIT;
	enum signature_result	r = SIGNATURE_ERROR;
	int			m = 0;

	/* The parameters are sorted once; only the URL differs between candidates. */
	if (params_string(c->params, &tail) == -1)
		goto done;
	for (size_t u = 0; u < c->url_count && m == 0; u++)
		if ((m = match_url(c, &c->urls[u], &tail)) == -1)
			goto done;
	r = m == 1 ? SIGNATURE_OK : SIGNATURE_MISMATCH;
done:
	buf_free(&tail);
	return r;
}

enum signature_result
signature_verify(const struct signature_check *c)
{
	const char		*hash = NULL;
	size_t			 hash_len = 0;
	enum signature_result	 r;

	if (c->header == NULL || c->header_len == 0)
		return SIGNATURE_MISSING;
	if (!header_wellformed(c->header, c->header_len))
		return SIGNATURE_MALFORMED;
	if (c->keys == NULL || c->key_count == 0 || c->urls == NULL || c->url_count == 0)
		return SIGNATURE_ERROR;
	/*
	 * A non-form body is covered only through bodySHA256 in the URL; every
	 * candidate carries the same request-target, hence the same query.
	 */
	if (c->params == NULL &&
	    (hash = body_hash_param(c->urls[0].data, c->urls[0].len, &hash_len)) == NULL)
		return SIGNATURE_NO_BODY_HASH;
	if ((r = match_any(c)) != SIGNATURE_OK)
		return r;
	/* Checked after the HMAC: a mismatch here means Twilio signed the URL. */
	if (c->params == NULL &&
	    !body_hash_matches(hash, hash_len, c->body, c->body_len))
		return SIGNATURE_BODY_HASH_MISMATCH;
	return SIGNATURE_OK;
}

const char *
signature_result_str(enum signature_result r)
{
	switch (r) {
	case SIGNATURE_OK:
		return "ok";
	case SIGNATURE_MISSING:
		return "missing signature";
	case SIGNATURE_MALFORMED:
		return "malformed signature";
	case SIGNATURE_MISMATCH:
		return "signature mismatch";
	case SIGNATURE_NO_BODY_HASH:
		return "no bodySHA256 for a non-form body";
	case SIGNATURE_BODY_HASH_MISMATCH:
		return "bodySHA256 mismatch";
	case SIGNATURE_ERROR:
		return "internal error";
	}
	return "unknown";
}
