/*
 * TwiML writer. Escapes the five XML special characters (XML 1.0, 2.4) so
 * user-controlled text can never open an element; everything else is copied.
 */
#include <string.h>

#include "twiml.h"

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

int
twiml_escape(const char *text, size_t len, struct buf *out)
{
	size_t	start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *rep;

		switch (text[i]) {
		case '&':	rep = "&amp;"; break;
		case '<':	rep = "&lt;"; break;
		case '>':	rep = "&gt;"; break;
		case '"':	rep = "&quot;"; break;
		case '\'':	rep = "&apos;"; break;
		default:	continue;
		}
		if (buf_append(out, text + start, i - start) == -1 ||
		    buf_append_str(out, rep) == -1)
			return -1;
		start = i + 1;
	}
	return buf_append(out, text + start, len - start);
}

int
twiml_empty(struct buf *out)
{
	return buf_append_str(out, XML_DECL "<Response/>");
}

int
twiml_message(const char *text, size_t len, struct buf *out)
{
	if (buf_append_str(out, XML_DECL "<Response><Message>") == -1 ||
	    twiml_escape(text, len, out) == -1 ||
	    buf_append_str(out, "</Message></Response>") == -1)
		return -1;
	return 0;
}
