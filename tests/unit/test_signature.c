/*
 * signature.c against vectors computed by python3-twilio (signature_vectors.h,
 * made by gen_signature_vectors.py), never by our own code; plus hand tables
 * for what that library normalizes away (DESIGN.md "Twilio's signature").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "form.h"
#include "signature.h"

struct sig_pair {
	const char	*name;
	const char	*value;
};

struct sig_vector {
	const char		*label;
	const char		*token;
	const char		*url;
	const char		*body;		/* urlencoded, as POSTed */
	const struct sig_pair	*pairs;		/* python's parse_qsl of body */
	size_t			 npairs;
	const char		*sig;
};

struct verify_vector {
	const char		*label;
	const char		*url;
	const char		*body;
	int			 json;
	const char		*header;
	const char		*tokens[2];
	size_t			 ntokens;
	enum signature_result	 want;
};

struct variant_vector {
	const char	*url;
	const char	*other;		/* the variant besides url itself, or NULL */
};

#include "signature_vectors.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static struct signature_key
key_of(const char *token)
{
	struct signature_key	k = { (const uint8_t *)token, strlen(token) };

	return k;
}

/* form_parse agrees with python's parse_qsl, and the signature with python's. */
static void
test_compute_from_body(void **state)
{
	char	out[SIGNATURE_SHA1_B64_LEN + 1];
	size_t	i, j;

	(void)state;
	for (i = 0; i < NELEM(sig_vectors); i++) {
		const struct sig_vector	*v = &sig_vectors[i];
		struct signature_key	 k = key_of(v->token);
		struct form		 f = FORM_INIT;

		print_message("%s\n", v->label);
		assert_int_equal(form_parse(v->body, strlen(v->body), 64, &f),
		    FORM_OK);
		assert_int_equal(f.count, v->npairs);
		for (j = 0; j < f.count; j++) {
			assert_string_equal(f.pairs[j].name, v->pairs[j].name);
			assert_string_equal(f.pairs[j].value, v->pairs[j].value);
		}
		assert_int_equal(signature_compute(v->url, strlen(v->url), &f, &k,
		    out), SIGNATURE_OK);
		assert_string_equal(out, v->sig);
		form_free(&f);
	}
}

/* Built with form_add, in arrival order and reversed: order never matters. */
static void
test_compute_from_pairs(void **state)
{
	char	out[SIGNATURE_SHA1_B64_LEN + 1];
	size_t	i, j, n;

	(void)state;
	for (i = 0; i < NELEM(sig_vectors); i++) {
		const struct sig_vector	*v = &sig_vectors[i];
		struct signature_key	 k = key_of(v->token);
		struct form		 fwd = FORM_INIT, rev = FORM_INIT;
		const struct sig_pair	*p;

		print_message("%s\n", v->label);
		for (j = 0, n = v->npairs; j < n; j++) {
			p = &v->pairs[j];
			assert_int_equal(form_add(&fwd, p->name, strlen(p->name),
			    p->value, strlen(p->value)), 0);
			p = &v->pairs[n - 1 - j];
			assert_int_equal(form_add(&rev, p->name, strlen(p->name),
			    p->value, strlen(p->value)), 0);
		}
		assert_int_equal(signature_compute(v->url, strlen(v->url), &fwd, &k,
		    out), SIGNATURE_OK);
		assert_string_equal(out, v->sig);
		assert_int_equal(signature_compute(v->url, strlen(v->url), &rev, &k,
		    out), SIGNATURE_OK);
		assert_string_equal(out, v->sig);
		form_free(&fwd);
		form_free(&rev);
	}
}

static void
test_verify(void **state)
{
	size_t	i, j;

	(void)state;
	for (i = 0; i < NELEM(verify_vectors); i++) {
		const struct verify_vector	*v = &verify_vectors[i];
		struct signature_key		 keys[2];
		struct form			 f = FORM_INIT;
		struct signature_check		 c;
		struct signature_url		 u = { v->url, strlen(v->url) };

		print_message("%s\n", v->label);
		for (j = 0; j < v->ntokens; j++)
			keys[j] = key_of(v->tokens[j]);
		memset(&c, 0, sizeof(c));
		c.urls = &u;
		c.url_count = 1;
		if (v->json) {
			c.body = (const uint8_t *)v->body;
			c.body_len = strlen(v->body);
		} else {
			assert_int_equal(form_parse(v->body, strlen(v->body), 64, &f),
			    FORM_OK);
			c.params = &f;
		}
		c.header = v->header;
		c.header_len = v->header != NULL ? strlen(v->header) : 0;
		c.keys = keys;
		c.key_count = v->ntokens;
		assert_int_equal(signature_verify(&c), v->want);
		form_free(&f);
	}
}

/* Variants agree with python's add_port/remove_port where urlparse is exact. */
static void
test_variants_python(void **state)
{
	size_t	i, j, n;

	(void)state;
	for (i = 0; i < NELEM(variant_vectors); i++) {
		const struct variant_vector	*v = &variant_vectors[i];
		struct buf			 out[SIGNATURE_MAX_URL_VARIANTS];

		print_message("%s\n", v->url);
		memset(out, 0, sizeof(out));
		n = signature_url_variants(v->url, strlen(v->url), out);
		assert_int_equal(n, v->other != NULL ? 2 : 1);
		assert_string_equal(out[0].data, v->url);
		if (v->other != NULL)
			assert_string_equal(out[1].data, v->other);
		for (j = 0; j < n; j++)
			buf_free(&out[j]);
	}
}

struct variant_case {
	const char	*url;
	const char	*other;
};

/* Where python's urlparse would normalize: the URL is kept byte for byte. */
static const struct variant_case variant_cases[] = {
	{ "HTTPS://Example.COM/sms", "HTTPS://Example.COM:443/sms" },
	{ "https://h/p?", "https://h:443/p?" },
	{ "https://h/p?a=1#", "https://h:443/p?a=1#" },
	{ "https://u:pw@h:8443/p", "https://u:pw@h/p" },
	{ "https://[2001:db8::1]:443/p", "https://[2001:db8::1]/p" },
	{ "https://[2001:db8::1]/p", "https://[2001:db8::1]:443/p" },
	{ "https://h?x=1", "https://h:443?x=1" },
	{ "https://h/p?next=http://x:8080/", "https://h:443/p?next=http://x:8080/" },
	{ "https://h:/p", "https://h/p" },
	{ "https://h:abc/p", NULL },		/* not a port: nothing to vary */
	{ "https://[::1/p", NULL },
	{ "ftp://h/p", NULL },			/* no default port we know */
	{ "/sms?a=1", NULL },
	{ "", NULL },
	{ "1http://h/p", NULL },
};

static void
test_variants_exact(void **state)
{
	size_t	i, j, n;

	(void)state;
	for (i = 0; i < NELEM(variant_cases); i++) {
		const struct variant_case	*v = &variant_cases[i];
		struct buf			 out[SIGNATURE_MAX_URL_VARIANTS];

		print_message("%s\n", v->url);
		memset(out, 0, sizeof(out));
		n = signature_url_variants(v->url, strlen(v->url), out);
		assert_int_equal(n, v->other != NULL ? 2 : 1);
		assert_memory_equal(out[0].data, v->url, strlen(v->url) + 1);
		if (v->other != NULL)
			assert_string_equal(out[1].data, v->other);
		for (j = 0; j < n; j++)
			buf_free(&out[j]);
	}
}

struct string_case {
	const char	*label;
	const char	*body;	/* NULL: params == NULL */
	const char	*want;	/* after the URL "U" */
};

/* DESIGN.md point 2, spelled out: name order, then values, duplicates once. */
static const struct string_case string_cases[] = {
	{ "no params", NULL, "U" },
	{ "empty form", "", "U" },
	{ "names by bytes", "b=1&B=2&_=3&a=4", "UB2_3a4b1" },
	{ "values of a name sorted", "n=b&n=a&n=c", "Unanbnc" },
	{ "exact duplicates once", "n=a&n=b&n=a&n=a", "Unanb" },
	{ "same value, other names kept", "x=1&y=1", "Ux1y1" },
	{ "by name, not joined name+value", "ab=c&a=z", "Uazabc" },
	{ "shorter name first", "aa=1&a=2", "Ua2aa1" },
	{ "empty value sorts first", "n=x&n=", "Unnx" },
	{ "high bytes after ascii", "%C3%A9=1&z=2", "Uz2\xc3\xa9" "1" },
};

static void
test_string(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(string_cases); i++) {
		const struct string_case	*c = &string_cases[i];
		struct form			 f = FORM_INIT;
		struct buf			 s = BUF_INIT;

		print_message("%s\n", c->label);
		if (c->body != NULL)
			assert_int_equal(form_parse(c->body, strlen(c->body), 64,
			    &f), FORM_OK);
		assert_int_equal(signature_string("U", 1, c->body != NULL ? &f :
		    NULL, &s), 0);
		assert_int_equal(s.len, strlen(c->want));
		assert_memory_equal(s.data, c->want, s.len);
		buf_free(&s);
		form_free(&f);
	}
}

/* Verification refuses before any HMAC when the inputs cannot match. */
static void
test_verify_edges(void **state)
{
	const struct sig_vector	*v = &sig_vectors[0];
	struct signature_key	 k = key_of(v->token);
	struct form		 f = FORM_INIT;
	struct signature_check	 c;
	struct signature_url	 u = { v->url, strlen(v->url) };

	(void)state;
	assert_int_equal(form_parse(v->body, strlen(v->body), 64, &f), FORM_OK);
	memset(&c, 0, sizeof(c));
	c.urls = &u;
	c.url_count = 1;
	c.params = &f;
	c.header = v->sig;
	c.header_len = strlen(v->sig);
	c.keys = &k;
	c.key_count = 1;
	assert_int_equal(signature_verify(&c), SIGNATURE_OK);
	/* The length is authoritative, not a NUL. */
	c.header_len--;
	assert_int_equal(signature_verify(&c), SIGNATURE_MALFORMED);
	c.header_len++;
	c.key_count = 0;
	assert_int_equal(signature_verify(&c), SIGNATURE_ERROR);
	c.key_count = 1;
	c.url_count = 0;
	assert_int_equal(signature_verify(&c), SIGNATURE_ERROR);
	c.url_count = 1;
	/* A trailing byte of the URL is part of what is signed. */
	u.len--;
	assert_int_equal(signature_verify(&c), SIGNATURE_MISMATCH);
	u.len++;
	form_free(&f);
}

/*
 * Several URLs: the signature of any one of them, in any position, passes;
 * one of a URL not in the list does not, whatever the others are.
 */
static void
test_verify_url_list(void **state)
{
	const struct sig_vector	*v = &sig_vectors[0];
	struct signature_key	 k = key_of(v->token);
	struct form		 f = FORM_INIT;
	struct signature_check	 c;
	struct signature_url	 urls[4] = {
		{ "https://a.example/x", 19 }, { "https://b.example:8443/y", 24 },
		{ v->url, strlen(v->url) }, { "http://c.example", 16 },
	};

	(void)state;
	assert_int_equal(form_parse(v->body, strlen(v->body), 64, &f), FORM_OK);
	memset(&c, 0, sizeof(c));
	c.params = &f;
	c.header = v->sig;
	c.header_len = strlen(v->sig);
	c.keys = &k;
	c.key_count = 1;
	for (size_t first = 0; first < 4; first++) {
		c.urls = &urls[first];
		c.url_count = 4 - first;
		assert_int_equal(signature_verify(&c), first <= 2 ?
		    SIGNATURE_OK : SIGNATURE_MISMATCH);
	}
	c.urls = urls;
	c.url_count = 2;
	assert_int_equal(signature_verify(&c), SIGNATURE_MISMATCH);
	form_free(&f);
}

static void
test_result_str(void **state)
{
	static const enum signature_result all[] = { SIGNATURE_OK,
	    SIGNATURE_MISSING, SIGNATURE_MALFORMED, SIGNATURE_MISMATCH,
	    SIGNATURE_NO_BODY_HASH, SIGNATURE_BODY_HASH_MISMATCH,
	    SIGNATURE_ERROR };
	size_t	i, j;

	(void)state;
	for (i = 0; i < NELEM(all); i++) {
		assert_non_null(signature_result_str(all[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(signature_result_str(all[i]),
			    signature_result_str(all[j]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compute_from_body),
		cmocka_unit_test(test_compute_from_pairs),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_variants_python),
		cmocka_unit_test(test_variants_exact),
		cmocka_unit_test(test_string),
		cmocka_unit_test(test_verify_edges),
		cmocka_unit_test(test_verify_url_list),
		cmocka_unit_test(test_result_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
