/*
 * Placeholder substitution for message templates. Only the one named
 * placeholder is replaced; any other braces are copied as written.
 */
#include <string.h>

#include "template.h"

int
template_expand(const char *tpl, const char *placeholder, const char *value,
    size_t value_len, struct buf *out)
{
	size_t		 plen = strlen(placeholder);
	const char	*p = tpl, *hit;

	while (plen > 0 && (hit = strstr(p, placeholder)) != NULL) {
		if (buf_append(out, p, (size_t)(hit - p)) == -1 ||
		    buf_append(out, value, value_len) == -1)
			return -1;
		p = hit + plen;
	}
	return buf_append_str(out, p);
}
