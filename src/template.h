/*
 * Message templates: replace every "{name}" placeholder with a value.
 * Pure. Used for [reset] link ({token}) and message ({link}).
 */
#ifndef TWHOOKD_TEMPLATE_H
#define TWHOOKD_TEMPLATE_H

#include <stddef.h>

#include "buf.h"

/*
 * Append tpl to out with each occurrence of placeholder (e.g. "{token}")
 * replaced by value[0..value_len). 0 or -1 (no memory).
 */
__attribute__((warn_unused_result))
int	template_expand(const char *tpl, const char *placeholder,
	    const char *value, size_t value_len, struct buf *out);

#endif
