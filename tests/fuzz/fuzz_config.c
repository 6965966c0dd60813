/*
 * libFuzzer target for the config parser: any bytes, any length. It must
 * never crash or leak, count exactly the error lines it writes, and accept
 * only configs that satisfy the rules the daemon relies on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "defaults.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME	"fuzz.ini"

/* Every error line is "fuzz.ini:..." and there are n of them (n <= 100). */
static void
check_errors(const struct buf *errs, int n)
{
	size_t	lines = 0;

	if ((n == 0) != (errs->len == 0))
		abort();
	for (size_t i = 0; i < errs->len; i++) {
		if ((i == 0 || errs->data[i - 1] == '\n') &&
		    strncmp(errs->data + i, NAME ":", strlen(NAME) + 1) != 0)
			abort();
		lines += errs->data[i] == '\n';
	}
	if (n <= 100 && lines != (size_t)n)
		abort();
}

/* What a valid config promises to the rest of the daemon. */
static void
check_valid(const struct config *c)
{
	if (c->account_sid == NULL || strlen(c->account_sid) != ACCOUNT_SID_LEN)
		abort();
	if (c->reset_link == NULL || strstr(c->reset_link, "{token}") == NULL)
		abort();
	if (c->reset_message == NULL || strstr(c->reset_message, "{link}") == NULL)
		abort();
	if (c->tls && (c->tls_cert == NULL || c->tls_key == NULL))
		abort();
	if (c->public_url.count == 0 || c->public_url.count > MAX_PUBLIC_URLS)
		abort();
	for (size_t i = 0; i < c->public_url.count; i++)
		if (c->public_url.url[i] == NULL || (!c->tls &&
		    strncmp(c->public_url.url[i], "https://", 8) != 0))
			abort();
	if (c->auth_token_file == NULL && c->auth_token.data == NULL)
		abort();
	if (c->max_body < MIN_BODY_LIMIT || c->max_body > MAX_BODY_LIMIT)
		abort();
	if (c->threads > MAX_THREADS || c->reset_route == NULL ||
	    c->reset_route[0] != '/')
		abort();
	for (size_t i = 0; i < c->trusted_count; i++)
		if (c->trusted[i].prefix > (c->trusted[i].family == AF_INET ? 32u : 128u))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	 errs = BUF_INIT;
	struct config	*cfg;
	int		 n;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return 0;
	n = config_parse((const char *)data, size, NAME, cfg, &errs);
	check_errors(&errs, n);
	if (n == 0)
		check_valid(cfg);
	config_free(cfg);
	buf_free(&errs);
	return 0;
}
