/*
 * log_escape.c: what request data may become in a log line. One table per
 * behaviour: the bytes that pass, the ones escaped in each mode, cuts that
 * never split an escape, and the idempotency token's shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log_escape.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct escape_case {
	const char		*in;
	size_t			 len;		/* 0: strlen(in) */
	enum log_escape_mode	 mode;
	size_t			 outsz;		/* 0: room for all of it */
	const char		*out;
};

#define F	LOG_ESCAPE_FIELD
#define T	LOG_ESCAPE_TEXT

static const struct escape_case escape_cases[] = {
	/* Printable ASCII that cannot end a field passes in both modes. */
	{ "TwilioProxy/1.1", 0, F, 0, "TwilioProxy/1.1" },
	{ "TwilioProxy/1.1", 0, T, 0, "TwilioProxy/1.1" },
	{ "a-b_c.d~e!#$%&'()*+,/:;<>?@[]^`{|}", 0, F, 0, "a-b_c.d~e!#$%&'()*+,/:;<>?@[]^`{|}" },
	{ "", 0, F, 0, "" },
	/* A field stays one token: space escaped, '=' harmless inside it. */
	{ "x status=200 reason=ok", 0, F, 0, "x\\x20status=200\\x20reason=ok" },
	/* Text keeps its spaces, and no word of it is a field. */
	{ "x status=200 reason=ok", 0, T, 0, "x status\\x3d200 reason\\x3dok" },
	/* Quotes and backslashes cannot close or fake a quoted value. */
	{ "a\"b", 0, F, 0, "a\\x22b" },
	{ "a\\x22b", 0, F, 0, "a\\x5cx22b" },
	{ "\" ua=\"", 0, T, 0, "\\x22 ua\\x3d\\x22" },
	/* Control bytes: line ends, terminal escapes, NUL, DEL. */
	{ "\x1b[31mred\x1b[0m", 0, F, 0, "\\x1b[31mred\\x1b[0m" },
	{ "a\r\nb", 0, F, 0, "a\\x0d\\x0ab" },
	{ "a\r\nb", 0, T, 0, "a\\x0d\\x0ab" },
	{ "\t", 0, T, 0, "\\x09" },
	{ "a\0b", 3, F, 0, "a\\x00b" },
	{ "\x7f", 0, F, 0, "\\x7f" },
	{ "\x01\x1f", 0, T, 0, "\\x01\\x1f" },
	/* Every byte >= 0x80: C1 controls, UTF-8, invalid UTF-8 alike. */
	{ "\x9b" "31m", 0, F, 0, "\\x9b31m" },
	{ "\xc2\x9b", 0, F, 0, "\\xc2\\x9b" },
	{ "caf\xc3\xa9", 0, T, 0, "caf\\xc3\\xa9" },
	{ "\xe2\x80\xae", 0, F, 0, "\\xe2\\x80\\xae" },	/* RIGHT-TO-LEFT OVERRIDE */
	{ "\xff\xfe", 0, F, 0, "\\xff\\xfe" },
	/* Only len bytes count. */
	{ "abcdef", 3, F, 0, "abc" },
	/* Cuts: the ellipsis replaces what does not fit, never half an escape. */
	{ "abcdefgh", 0, F, 9, "abcdefgh" },		/* exactly fits */
	{ "abcdefghi", 0, F, 9, "abcde..." },
	{ "ab\x1b" "cdef", 0, F, 9, "ab..." },		/* \x1b would not fit whole */
	{ "\x1b\x1b\x1b", 0, F, 13, "\\x1b\\x1b\\x1b" },
	{ "\x1b\x1b\x1b", 0, F, 12, "\\x1b\\x1b..." },
	{ "abcdef", 0, F, 4, "..." },
	{ "abcdef", 0, F, 3, ".." },
	{ "abcdef", 0, F, 1, "" },
};

static void
test_escape(void **state)
{
	char	out[256];

	(void)state;
	for (size_t i = 0; i < NELEM(escape_cases); i++) {
		const struct escape_case *c = &escape_cases[i];
		size_t	len = c->len ? c->len : strlen(c->in);
		size_t	outsz = c->outsz ? c->outsz : sizeof(out);
		size_t	n;

		memset(out, 'Z', sizeof(out));
		n = log_escape(c->in, len, c->mode, out, outsz);
		if (strcmp(out, c->out) != 0 || n != strlen(c->out))
			fail_msg("case %zu: want \"%s\", got \"%s\" (%zu)", i, c->out, out, n);
		/* Nothing written past outsz. */
		if (outsz < sizeof(out) && out[outsz] != 'Z')
			fail_msg("case %zu: wrote past %zu bytes", i, outsz);
	}
}

/* Whatever the input, the output holds only bytes a log line can carry. */
static void
test_every_byte(void **state)
{
	char	in[256], out[LOG_ESCAPE_SIZE(256)];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)i;
	for (int mode = LOG_ESCAPE_FIELD; mode <= LOG_ESCAPE_TEXT; mode++) {
		size_t n = log_escape(in, sizeof(in), (enum log_escape_mode)mode, out,
		    sizeof(out));

		assert_int_equal(n, strlen(out));
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)out[i];

			assert_true(c >= 0x20 && c < 0x7f);
			assert_true(c != '"');
			if (mode == LOG_ESCAPE_FIELD)
				assert_true(c != ' ');
			else
				assert_true(c != '=');
		}
		/* LOG_ESCAPE_SIZE is enough: nothing was cut. */
		assert_null(strstr(out, "..."));
	}
	assert_int_equal(log_escape("abc", 3, LOG_ESCAPE_FIELD, out, 0), 0);
}

struct token_case {
	const char	*in;
	size_t		 max;
	bool		 ok;
};

static const struct token_case token_cases[] = {
	{ "0b3a4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d", 64, true },
	{ "abcXYZ019-", 64, true },
	{ "a", 1, true },
	{ "ab", 1, false },			/* longer than max */
	{ "", 64, false },
	{ "one two", 64, false },
	{ "x status=200", 64, false },
	{ "tok\x1b[31m", 64, false },
	{ "tok\r", 64, false },
	{ "tok\xc3\xa9", 64, false },
	{ "a_b", 64, false },
	{ "a.b", 64, false },
	{ "a\"b", 64, false },
};

static void
test_token(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(token_cases); i++) {
		const struct token_case *c = &token_cases[i];

		if (log_escape_is_token(c->in, c->max) != c->ok)
			fail_msg("case %zu (\"%s\"): expected %s", i, c->in,
			    c->ok ? "a token" : "not a token");
	}
	assert_false(log_escape_is_token(NULL, 64));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
