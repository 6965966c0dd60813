/* TwiML writer and message templates: escaping and placeholder expansion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "template.h"
#include "twiml.h"

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

static const struct {
	const char	*in;
	const char	*out;
} escapes[] = {
	{ "", "" },
	{ "plain text", "plain text" },
	{ "a&b", "a&amp;b" },
	{ "<Message>", "&lt;Message&gt;" },
	{ "\"quoted\" 'single'", "&quot;quoted&quot; &apos;single&apos;" },
	{ "https://x.test/r?token=abc&u=1", "https://x.test/r?token=abc&amp;u=1" },
	{ "&&&", "&amp;&amp;&amp;" },
	{ "caf\xc3\xa9 \xf0\x9f\x94\x91", "caf\xc3\xa9 \xf0\x9f\x94\x91" },
	{ "]]><Redirect>https://evil.test</Redirect>",
	  "]]&gt;&lt;Redirect&gt;https://evil.test&lt;/Redirect&gt;" },
};

static void
test_escape(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(twiml_escape(escapes[i].in, strlen(escapes[i].in), &b), 0);
		assert_int_equal(b.len, strlen(escapes[i].out));
		assert_memory_equal(b.len ? b.data : "", escapes[i].out, b.len);
		buf_free(&b);
	}
}

static void
test_documents(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(twiml_empty(&b), 0);
	assert_string_equal(b.data, DECL "<Response/>");
	buf_free(&b);
	assert_int_equal(twiml_message("Reset: <a&b>", 12, &b), 0);
	assert_string_equal(b.data, DECL "<Response><Message>Reset: &lt;a&amp;b&gt;</Message></Response>");
	buf_free(&b);
}

/* A NUL inside the text is copied, not a terminator: lengths rule. */
static void
test_length_carrying(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(twiml_escape("a\0<", 3, &b), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "a\0&lt;", 6);
	buf_free(&b);
}

static const struct {
	const char	*tpl;
	const char	*placeholder;
	const char	*value;
	const char	*out;
} templates[] = {
	{ "https://app.test/reset?token={token}", "{token}", "abc", "https://app.test/reset?token=abc" },
	{ "{token}", "{token}", "x", "x" },
	{ "no placeholder", "{token}", "x", "no placeholder" },
	{ "{token}/{token}", "{token}", "ab", "ab/ab" },
	{ "{link} {token} {other}", "{link}", "L", "L {token} {other}" },
	{ "{tok", "{token}", "x", "{tok" },
	{ "", "{link}", "x", "" },
	{ "value with {link} inside", "{link}", "{link}", "value with {link} inside" },
};

static void
test_template(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(template_expand(templates[i].tpl, templates[i].placeholder,
		    templates[i].value, strlen(templates[i].value), &b), 0);
		assert_string_equal(b.data, templates[i].out);
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_documents),
		cmocka_unit_test(test_length_carrying),
		cmocka_unit_test(test_template),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
