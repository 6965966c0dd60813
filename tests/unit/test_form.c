/*
 * form.c against the WHATWG application/x-www-form-urlencoded parser
 * (section 5.1), plus our refusals: malformed escapes, %00, too many pairs.
 * One table per behaviour.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "form.h"

#define MAXP	8

struct pair {
	const char	*name;
	const char	*value;
};

struct ok_case {
	const char	*label;
	const char	*body;
	size_t		 len;		/* 0: strlen(body) */
	size_t		 max_pairs;
	size_t		 count;
	struct pair	 want[MAXP];
};

static const struct ok_case ok_cases[] = {
	{ "empty body", "", 0, 8, 0, { { NULL, NULL } } },
	{ "one pair", "a=1", 0, 8, 1, { { "a", "1" } } },
	{ "plus is space", "Body=hello+world", 0, 8, 1,
	  { { "Body", "hello world" } } },
	{ "plus in name", "a+b=c", 0, 8, 1, { { "a b", "c" } } },
	{ "%XX escapes, either case", "k=%41%62%2f%2F", 0, 8, 1,
	  { { "k", "Ab//" } } },
	{ "%2B is a literal plus", "From=%2B14155550100", 0, 8, 1,
	  { { "From", "+14155550100" } } },
	{ "%20 and + both space", "a=%20+", 0, 8, 1, { { "a", "  " } } },
	{ "escaped = and & stay data", "a%3Db=c%26d", 0, 8, 1,
	  { { "a=b", "c&d" } } },
	{ "only first = splits", "a=b=c", 0, 8, 1, { { "a", "b=c" } } },
	{ "duplicates kept in order", "n=2&n=1&n=2", 0, 8, 3,
	  { { "n", "2" }, { "n", "1" }, { "n", "2" } } },
	{ "empty values kept", "a=&b=&c=x", 0, 8, 3,
	  { { "a", "" }, { "b", "" }, { "c", "x" } } },
	{ "empty name kept", "=v", 0, 8, 1, { { "", "v" } } },
	{ "lone = is an empty pair", "=", 0, 8, 1, { { "", "" } } },
	{ "empty segments skipped", "&&a=1&&&b=2&", 0, 8, 2,
	  { { "a", "1" }, { "b", "2" } } },
	{ "only ampersands", "&&&", 0, 8, 0, { { NULL, NULL } } },
	{ "no = is name, empty value", "a&b=1", 0, 8, 2,
	  { { "a", "" }, { "b", "1" } } },
	{ "raw utf-8 passed through", "n\xc3\xa9=\xe2\x98\x83", 0, 8, 1,
	  { { "n\xc3\xa9", "\xe2\x98\x83" } } },
	{ "encoded utf-8 decoded to bytes", "Body=caf%C3%A9", 0, 8, 1,
	  { { "Body", "caf\xc3\xa9" } } },
	{ "non-utf-8 bytes passed through", "b=%FF%FE\x80", 0, 8, 1,
	  { { "b", "\xff\xfe\x80" } } },
	{ "length bounds the body", "a=1&b=2", 3, 8, 1, { { "a", "1" } } },
	{ "escape at the very end", "a=%41", 0, 8, 1, { { "a", "A" } } },
	{ "exactly max_pairs", "a&b&c", 0, 3, 3,
	  { { "a", "" }, { "b", "" }, { "c", "" } } },
	{ "empty segments do not count", "a&&&b", 0, 2, 2,
	  { { "a", "" }, { "b", "" } } },
};

struct err_case {
	const char		*label;
	const char		*body;
	size_t			 len;	/* 0: strlen(body) */
	size_t			 max_pairs;
	enum form_result	 want;
};

static const struct err_case err_cases[] = {
	{ "lone %", "a=%", 0, 8, FORM_BAD_ESCAPE },
	{ "% and one digit", "a=%4", 0, 8, FORM_BAD_ESCAPE },
	{ "% and non-hex", "a=%GZ", 0, 8, FORM_BAD_ESCAPE },
	{ "% and one hex then non-hex", "a=%4G", 0, 8, FORM_BAD_ESCAPE },
	{ "bad escape in name", "%zz=1", 0, 8, FORM_BAD_ESCAPE },
	{ "bad escape in a later pair", "a=1&b=2&c=%", 0, 8, FORM_BAD_ESCAPE },
	{ "escape cut by length", "a=%41", 4, 8, FORM_BAD_ESCAPE },
	{ "%00 in value", "a=x%00y", 0, 8, FORM_NUL_BYTE },
	{ "%00 in name", "%00=1", 0, 8, FORM_NUL_BYTE },
	{ "raw NUL in value", "a=x\0y", 5, 8, FORM_NUL_BYTE },
	{ "raw NUL in name", "\0=1", 3, 8, FORM_NUL_BYTE },
	{ "more than max_pairs", "a&b&c", 0, 2, FORM_TOO_MANY },
	{ "max_pairs zero", "a=1", 0, 0, FORM_TOO_MANY },
};

static size_t
case_len(const char *body, size_t len)
{
	return len != 0 ? len : strlen(body);
}

static void
test_parse_ok(void **state)
{
	size_t	i, j;

	(void)state;
	for (i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case	*c = &ok_cases[i];
		struct form		 f = FORM_INIT;

		print_message("%s\n", c->label);
		assert_int_equal(form_parse(c->body, case_len(c->body, c->len),
		    c->max_pairs, &f), FORM_OK);
		assert_int_equal(f.count, c->count);
		for (j = 0; j < c->count; j++) {
			assert_int_equal(f.pairs[j].name_len, strlen(c->want[j].name));
			assert_memory_equal(f.pairs[j].name, c->want[j].name,
			    f.pairs[j].name_len + 1);
			assert_int_equal(f.pairs[j].value_len, strlen(c->want[j].value));
			assert_memory_equal(f.pairs[j].value, c->want[j].value,
			    f.pairs[j].value_len + 1);
		}
		form_free(&f);
		assert_null(f.pairs);
		assert_int_equal(f.count, 0);
	}
}

static void
test_parse_errors(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case	*c = &err_cases[i];
		struct form		 f = FORM_INIT;

		print_message("%s\n", c->label);
		assert_int_equal(form_parse(c->body, case_len(c->body, c->len),
		    c->max_pairs, &f), c->want);
		/* Refused input leaves nothing behind. */
		assert_null(f.pairs);
		assert_int_equal(f.count, 0);
		form_free(&f);
	}
}

static void
test_parse_null_empty(void **state)
{
	struct form	f = FORM_INIT;

	(void)state;
	assert_int_equal(form_parse(NULL, 0, 8, &f), FORM_OK);
	assert_int_equal(f.count, 0);
	form_free(&f);
}

/* Input is (pointer, length): bytes past len, even a missing NUL, are not read. */
static void
test_parse_not_nul_terminated(void **state)
{
	const char	raw[] = { 'a', '=', '%', '4', '1' };
	struct form	f = FORM_INIT;

	(void)state;
	assert_int_equal(form_parse(raw, sizeof(raw), 8, &f), FORM_OK);
	assert_int_equal(f.count, 1);
	assert_string_equal(f.pairs[0].value, "A");
	form_free(&f);
}

struct find_case {
	const char	*name;
	const char	*want;	/* value of the first match, NULL if none */
};

static const struct find_case find_cases[] = {
	{ "From", "+1" },
	{ "To", "x" },		/* first of two */
	{ "T", NULL },		/* a prefix is not a match */
	{ "Tox", NULL },
	{ "", "empty" },
	{ "from", NULL },	/* names are case-sensitive */
};

static void
test_find(void **state)
{
	static const char	 body[] = "From=%2B1&To=x&To=y&=empty";
	struct form		 f = FORM_INIT;
	const struct form_pair	*p;
	size_t			 i;

	(void)state;
	assert_int_equal(form_parse(body, sizeof(body) - 1, 8, &f), FORM_OK);
	for (i = 0; i < sizeof(find_cases) / sizeof(find_cases[0]); i++) {
		print_message("find \"%s\"\n", find_cases[i].name);
		p = form_find(&f, find_cases[i].name);
		if (find_cases[i].want == NULL)
			assert_null(p);
		else {
			assert_non_null(p);
			assert_string_equal(p->value, find_cases[i].want);
		}
	}
	form_free(&f);
}

static void
test_add(void **state)
{
	struct form	f = FORM_INIT;

	(void)state;
	assert_int_equal(form_add(&f, "a", 1, "1", 1), 0);
	assert_int_equal(form_add(&f, "", 0, "", 0), 0);
	/* Lengths are authoritative: only "bc" of "bcd" is copied. */
	assert_int_equal(form_add(&f, "bcd", 2, "xyz", 3), 0);
	assert_int_equal(f.count, 3);
	assert_string_equal(f.pairs[0].name, "a");
	assert_string_equal(f.pairs[1].value, "");
	assert_string_equal(f.pairs[2].name, "bc");
	assert_int_equal(f.pairs[2].name_len, 2);
	assert_string_equal(f.pairs[2].value, "xyz");
	assert_ptr_equal(form_find(&f, "bc"), &f.pairs[2]);
	form_free(&f);
	form_free(&f);		/* FORM_INIT again: freeing twice is harmless */
	/* A parsed form is one packed allocation: it takes no more pairs. */
	assert_int_equal(form_parse("a=1&b", 5, MAXP, &f), FORM_OK);
	assert_int_equal(form_add(&f, "c", 1, "3", 1), -1);
	assert_int_equal(f.count, 2);
	assert_string_equal(f.pairs[1].name, "b");
	form_free(&f);
	assert_null(f.pairs);
	assert_int_equal(form_add(&f, "c", 1, "3", 1), 0);	/* freed: FORM_INIT */
	form_free(&f);
}

static void
test_result_str(void **state)
{
	static const enum form_result all[] = { FORM_OK, FORM_BAD_ESCAPE,
	    FORM_NUL_BYTE, FORM_TOO_MANY, FORM_NOMEM };
	size_t	i, j;

	(void)state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_non_null(form_result_str(all[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(form_result_str(all[i]),
			    form_result_str(all[j]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_null_empty),
		cmocka_unit_test(test_parse_not_nul_terminated),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_result_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
