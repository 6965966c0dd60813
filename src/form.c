/*
 * application/x-www-form-urlencoded parser, after the WHATWG URL standard
 * (section 5.1): split on '&', first '=' splits name from value, '+' is a
 * space, %XX a byte. Stricter than WHATWG where Twilio never needs leniency:
 * a malformed escape, %00 or a raw NUL refuses the whole body instead of
 * passing through.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* Hex digit value, or -1. */
static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode src[0..len) into dst (room for len + 1 bytes: decoding never grows).
 * *outlen gets the decoded length; dst is NUL-terminated.
 */
static enum form_result
decode(const char *src, size_t len, char *dst, size_t *outlen)
{
	size_t	i, n = 0;
	int	hi, lo;

	for (i = 0; i < len; i++) {
		if (src[i] == '+') {
			dst[n++] = ' ';		/* WHATWG: 0x2B becomes 0x20 */
			continue;
		}
		if (src[i] == '\0')
			return FORM_NUL_BYTE;	/* raw, like %00: names are C strings */
		if (src[i] != '%') {
			dst[n++] = src[i];
			continue;
		}
		if (len - i < 3 ||
		    (hi = hexval((unsigned char)src[i + 1])) == -1 ||
		    (lo = hexval((unsigned char)src[i + 2])) == -1)
			return FORM_BAD_ESCAPE;
		if (hi == 0 && lo == 0)
			return FORM_NUL_BYTE;	/* names and values are C strings */
		dst[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	dst[n] = '\0';
	*outlen = n;
	return FORM_OK;
}

/* Non-empty '&'-separated segments in body: the pair count, before allocating. */
static size_t
count_segments(const char *body, size_t len)
{
	const char	*p = body, *end = body + len, *amp;
	size_t		 n = 0;

	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		if (amp > p)
			n++;
		p = amp + 1;
	}
	return n;
}

/* Decode one segment into p, its name then its value at *dst; advance *dst. */
static enum form_result
add_segment(struct form_pair *p, const char *seg, size_t len, char **dst)
{
	const char		*eq = memchr(seg, '=', len);
	size_t			 nlen = eq != NULL ? (size_t)(eq - seg) : len;
	size_t			 vlen = eq != NULL ? len - nlen - 1 : 0;
	enum form_result	 r;

	p->name = *dst;
	if ((r = decode(seg, nlen, p->name, &p->name_len)) != FORM_OK)
		return r;
	p->value = p->name + p->name_len + 1;
	if ((r = decode(eq != NULL ? eq + 1 : "", vlen, p->value, &p->value_len)) != FORM_OK)
		return r;
	*dst = p->value + p->value_len + 1;
	return FORM_OK;
}

/*
 * One allocation for the whole form: the pair array, then every decoded
 * name and value with its NUL. Decoding never grows a string, and n
 * segments of a body of len bytes hold at most len bytes, so len + 2n
 * bytes of strings always suffice.
 */
enum form_result
form_parse(const char *body, size_t len, size_t max_pairs, struct form *out)
{
	const char		*p, *end, *amp;
	char			*dst;
	size_t			 n, i = 0;
	enum form_result	 r = FORM_OK;

	*out = (struct form)FORM_INIT;
	/* body may be NULL when len is 0: no pointer arithmetic before this. */
	if (len == 0 || (n = count_segments(body, len)) == 0)
		return FORM_OK;
	if (n > max_pairs)
		return FORM_TOO_MANY;
	if (n > (SIZE_MAX - len) / (sizeof(*out->pairs) + 2) ||
	    (out->block = malloc(n * sizeof(*out->pairs) + len + 2 * n)) == NULL)
		return FORM_NOMEM;
	out->pairs = out->block;
	dst = (char *)out->block + n * sizeof(*out->pairs);
	p = body;
	end = body + len;
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		/* "a=1&&b=2": WHATWG skips empty sequences. */
		if (amp > p) {
			if ((r = add_segment(&out->pairs[i], p, (size_t)(amp - p), &dst)) != FORM_OK)
				break;
			out->count = ++i;
		}
		p = amp + 1;
	}
	if (r != FORM_OK)
		form_free(out);
	return r;
}

const struct form_pair *
form_find(const struct form *f, const char *name)
{
	size_t	i, len = strlen(name);

	for (i = 0; i < f->count; i++) {
		if (f->pairs[i].name_len == len &&
		    memcmp(f->pairs[i].name, name, len) == 0)
			return &f->pairs[i];
	}
	return NULL;
}

int
form_add(struct form *f, const char *name, size_t name_len, const char *value,
    size_t value_len)
{
	struct form_pair	*pairs, *p;
	char			*mem;

	if (f->block != NULL || name_len > SIZE_MAX / 2 - 1 ||
	    value_len > SIZE_MAX / 2 - 1 || f->count >= SIZE_MAX / sizeof(*pairs) - 1)
		return -1;
	if ((mem = malloc(name_len + value_len + 2)) == NULL)
		return -1;
	pairs = realloc(f->pairs, (f->count + 1) * sizeof(*pairs));
	if (pairs == NULL) {
		free(mem);
		return -1;
	}
	f->pairs = pairs;
	p = &pairs[f->count++];
	/* One allocation per pair, value after the name's NUL. */
	p->name = mem;
	p->name_len = name_len;
	if (name_len > 0)
		memcpy(p->name, name, name_len);
	p->name[name_len] = '\0';
	p->value = mem + name_len + 1;
	p->value_len = value_len;
	if (value_len > 0)
		memcpy(p->value, value, value_len);
	p->value[value_len] = '\0';
	return 0;
}

void
form_free(struct form *f)
{
	if (f->block != NULL)
		free(f->block);		/* form_parse: pairs and strings in one */
	else {
		for (size_t i = 0; i < f->count; i++)
			free(f->pairs[i].name);
		free(f->pairs);
	}
	*f = (struct form)FORM_INIT;
}

const char *
form_result_str(enum form_result r)
{
	switch (r) {
	case FORM_OK:
		return "ok";
	case FORM_BAD_ESCAPE:
		return "malformed percent-escape";
	case FORM_NUL_BYTE:
		return "NUL byte (%00)";
	case FORM_TOO_MANY:
		return "too many pairs";
	case FORM_NOMEM:
		return "out of memory";
	}
	return "unknown";
}
