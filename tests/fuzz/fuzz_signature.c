/*
 * libFuzzer target for the signature module. The input is split on the first
 * two newlines into URL, X-Twilio-Signature header and body; the body is tried
 * as a form and as a JSON body. Checks: no crash, URL variants start with the
 * URL as given, and a signature we compute always verifies (round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "defaults.h"
#include "form.h"
#include "signature.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t	primary[] = "12345";
static const uint8_t	secondary[] = "secondary";

/* Cut p[0..*len) at the first '\n': returns the rest (or NULL), *len the head. */
static const char *
split(const char *p, size_t *len, size_t *rest_len)
{
	const char	*nl = *len > 0 ? memchr(p, '\n', *len) : NULL;

	if (nl == NULL) {
		*rest_len = 0;
		return NULL;
	}
	*rest_len = *len - (size_t)(nl - p) - 1;
	*len = (size_t)(nl - p);
	return nl + 1;
}

static void
check_variants(const char *url, size_t len)
{
	struct buf	v[SIGNATURE_MAX_URL_VARIANTS];
	size_t		n, i;

	memset(v, 0, sizeof(v));
	n = signature_url_variants(url, len, v);
	if (n == 0 || n > SIGNATURE_MAX_URL_VARIANTS || v[0].len != len ||
	    (len > 0 && memcmp(v[0].data, url, len) != 0))
		abort();
	for (i = 0; i < n; i++)
		buf_free(&v[i]);
}

/* Verify with the fuzzed header, then with one we computed: that one must pass. */
static void
check_verify(struct signature_check *c)
{
	struct signature_key	keys[2] = {
		{ primary, sizeof(primary) - 1 },
		{ secondary, sizeof(secondary) - 1 },
	};
	char			sig[SIGNATURE_SHA1_B64_LEN + 1];
	enum signature_result	r;

	c->keys = keys;
	c->key_count = 2;
	r = signature_verify(c);
	if (r == SIGNATURE_OK && c->header_len != SIGNATURE_SHA1_B64_LEN)
		abort();
	if (c->params == NULL)
		return;		/* a JSON body's hash cannot be forged by design */
	if (signature_compute(c->urls[0].data, c->urls[0].len, c->params, &keys[1], sig) !=
	    SIGNATURE_OK)
		abort();
	c->header = sig;
	c->header_len = SIGNATURE_SHA1_B64_LEN;
	if (signature_verify(c) != SIGNATURE_OK)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct signature_check	c;
	struct signature_url	u;
	struct form		f = FORM_INIT;
	const char		*url = (const char *)data, *hdr, *body = NULL;
	size_t			url_len = size, hdr_len = 0, body_len = 0;

	if ((hdr = split(url, &url_len, &hdr_len)) != NULL)
		body = split(hdr, &hdr_len, &body_len);
	check_variants(url, url_len);
	memset(&c, 0, sizeof(c));
	u = (struct signature_url){ url, url_len };
	c.urls = &u;
	c.url_count = 1;
	c.header = hdr;
	c.header_len = hdr_len;
	c.body = (const uint8_t *)body;
	c.body_len = body_len;
	check_verify(&c);		/* as a JSON body */
	if (form_parse(body, body_len, MAX_FORM_PAIRS, &f) == FORM_OK) {
		c.params = &f;
		c.header = hdr;
		c.header_len = hdr_len;
		check_verify(&c);
	}
	form_free(&f);
	return 0;
}
