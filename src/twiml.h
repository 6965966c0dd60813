/*
 * TwiML writer: builds <Response> documents with XML escaping (XML 1.0,
 * section 2.4). Pure: appends to a caller buffer, never logs.
 */
#ifndef TWHOOKD_TWIML_H
#define TWHOOKD_TWIML_H

#include <stddef.h>

#include "buf.h"

/* <?xml ...?><Response/>. 0 or -1 (no memory). */
__attribute__((warn_unused_result))
int	twiml_empty(struct buf *out);
/* <?xml ...?><Response><Message>text</Message></Response>, text escaped. */
__attribute__((warn_unused_result))
int	twiml_message(const char *text, size_t len, struct buf *out);
/* Append text with &, <, >, " and ' escaped; other bytes copied. */
__attribute__((warn_unused_result))
int	twiml_escape(const char *text, size_t len, struct buf *out);

#endif
