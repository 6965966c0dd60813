/*
 * application/x-www-form-urlencoded parser (WHATWG URL standard, section 5.1):
 * '+' is a space, %XX a byte. Pure: no I/O, no globals, fuzzable.
 * Refuses malformed escapes, %00 and more than max_pairs pairs.
 */
#ifndef TWHOOKD_FORM_H
#define TWHOOKD_FORM_H

#include <stddef.h>

struct form_pair {
	char	*name;		/* decoded, NUL-terminated (no NUL inside: %00 is refused) */
	size_t	 name_len;
	char	*value;
	size_t	 value_len;
};

/* Pairs in the order they arrived; repeated names are all kept. */
struct form {
	struct form_pair	*pairs;
	size_t			 count;
	void			*block;		/* form_parse's one allocation, or NULL */
};

#define FORM_INIT { NULL, 0, NULL }

enum form_result {
	FORM_OK = 0,
	FORM_BAD_ESCAPE,	/* '%' not followed by two hex digits */
	FORM_NUL_BYTE,		/* %00 decodes to a NUL byte */
	FORM_TOO_MANY,		/* more than max_pairs pairs */
	FORM_NOMEM,
};

/*
 * Parse body[0..len) into out, which must be FORM_INIT or freed.
 * Empty segments ("a=1&&b=2") are skipped; a segment without '=' is a name
 * with an empty value. On any result but FORM_OK, out is left empty.
 */
__attribute__((warn_unused_result))
enum form_result	form_parse(const char *body, size_t len, size_t max_pairs,
			    struct form *out);
/* First pair named name (a C string), or NULL. */
const struct form_pair	*form_find(const struct form *f, const char *name);
/*
 * Append a copy of a pair (used to build a form from JSON or arguments).
 * 0, or -1: no memory, or f came from form_parse (its pairs are packed).
 */
__attribute__((warn_unused_result))
int			 form_add(struct form *f, const char *name, size_t name_len,
			    const char *value, size_t value_len);
/* Free all pairs; leaves *f as FORM_INIT. Accepts FORM_INIT. */
void			 form_free(struct form *f);
const char		*form_result_str(enum form_result r);

#endif
