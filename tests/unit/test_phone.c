/*
 * phone.c: the E.164 shape check (ITU-T E.164: '+', 2..15 digits, no leading
 * 0 country code) and the masked form logs use. Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "phone.h"

struct e164_case {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	bool		 valid;
};

static const struct e164_case e164_cases[] = {
	{ "+15550000001", 0, true },
	{ "+447700900123", 0, true },
	{ "+12", 0, true },			/* shortest: 2 digits */
	{ "+123456789012345", 0, true },	/* longest: 15 digits */
	{ "+1234567890123456", 0, false },	/* 16 digits */
	{ "+1", 0, false },
	{ "+", 0, false },
	{ "", 0, false },
	{ "15550000001", 0, false },		/* no '+' */
	{ "++15550000001", 0, false },
	{ "+05550000001", 0, false },		/* country codes never start with 0 */
	{ "+1 555 000 0001", 0, false },
	{ "+1-555-000-0001", 0, false },
	{ "+1555000000a", 0, false },
	{ "+1555000000\xd9\xa1", 0, false },	/* ARABIC-INDIC DIGIT ONE */
	{ "+15550000001junk", 12, true },	/* only len bytes count */
	{ "+1555\0" "0000001", 12, false },	/* NUL inside */
	{ " +15550000001", 0, false },
	{ "+15550000001\n", 0, false },
};

static void
test_e164(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(e164_cases) / sizeof(e164_cases[0]); i++) {
		const struct e164_case *c = &e164_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);

		if (phone_is_e164(c->in, len) != c->valid)
			fail_msg("case %zu (\"%s\"): expected %s", i, c->in,
			    c->valid ? "valid" : "invalid");
	}
	assert_false(phone_is_e164(NULL, 0));
}

struct mask_case {
	const char	*in;
	const char	*out;
};

static const struct mask_case mask_cases[] = {
	{ "+15550000001", "+1******0001" },
	{ "+447700900123", "+4*******0123" },
	{ "+123456789012345", "+1**********2345" },
	{ "+1234567", "+1**4567" },		/* 8 characters: shortest partly shown */
	{ "+123456", "*******" },		/* shorter: starred whole */
	{ "+12", "***" },
	{ "hello", "*****" },			/* not E.164: starred whole */
	{ "15550000001", "***********" },
	{ "", "" },
	{ "+1555000000123456789012345678901234567890", "***********************" },
};

static void
test_mask(void **state)
{
	char	out[PHONE_MASK_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++) {
		memset(out, 'x', sizeof(out));
		phone_mask(mask_cases[i].in, strlen(mask_cases[i].in), out);
		assert_string_equal(out, mask_cases[i].out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e164),
		cmocka_unit_test(test_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
