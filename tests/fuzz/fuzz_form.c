/*
 * libFuzzer target for form_parse: any bytes, any length. Checks what the
 * parser promises (C-string names and values, lengths that match, pairs
 * findable by name) and that it never reads past len or leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "defaults.h"
#include "form.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding never grows, and %00 is refused: each string is exactly its length. */
static void
check_pair(const struct form *f, const struct form_pair *p, size_t size)
{
	const struct form_pair	*q;

	if (p->name_len > size || p->value_len > size ||
	    strlen(p->name) != p->name_len || strlen(p->value) != p->value_len)
		abort();
	if ((q = form_find(f, p->name)) == NULL || q > p ||
	    strcmp(q->name, p->name) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form		f = FORM_INIT;
	enum form_result	r;
	size_t			i;

	r = form_parse((const char *)data, size, MAX_FORM_PAIRS, &f);
	if (r != FORM_OK) {
		/* A refused body leaves nothing behind. */
		if (f.pairs != NULL || f.count != 0)
			abort();
		return 0;
	}
	if (f.count > MAX_FORM_PAIRS || f.count > size)
		abort();
	for (i = 0; i < f.count; i++)
		check_pair(&f, &f.pairs[i], size);
	form_free(&f);
	return 0;
}
