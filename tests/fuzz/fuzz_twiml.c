/*
 * libFuzzer target: whatever bytes a user texts, the escaped TwiML text never
 * contains a raw '<', '>' or quote, so it can never open or close an element.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twiml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	out = BUF_INIT;

	if (twiml_escape((const char *)data, size, &out) == 0) {
		for (size_t i = 0; i < out.len; i++)
			if (out.data[i] == '<' || out.data[i] == '>' ||
			    out.data[i] == '"' || out.data[i] == '\'')
				abort();
		if (out.len < size)
			abort();
	}
	buf_free(&out);
	return 0;
}
