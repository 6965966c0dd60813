/*
 * twhookd: command line and subcommand dispatch. Everything the daemon does
 * lives behind serve.c; the operator tools behind cli_*.c.
 * Exit codes: 0 success, 1 failure (invalid config, invalid signature), 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "defaults.h"
#include "serve.h"

#define DEFAULT_CONFIG "/etc/twhookd/twhookd.ini"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: twhookd [-c FILE] [serve]\n"
	    "       twhookd check-config [-c FILE]\n"
	    "       twhookd sign --url URL [--auth-token-file F] [--form-file F | KEY=VALUE ...]\n"
	    "                    [--body-file F] [--curl]\n"
	    "       twhookd verify --url URL --signature SIG [--auth-token-file F]\n"
	    "                    [--form-file F | KEY=VALUE ...] [--body-file F]\n"
	    "       twhookd [-c FILE] user add PHONE USER_ID | remove PHONE | list | import FILE.csv\n"
	    "options: -c, --config FILE (default " DEFAULT_CONFIG "), -h, --help, -V, --version\n");
}

int
main(int argc, char **argv)
{
	const char	*config = DEFAULT_CONFIG, *cmd;
	int		 exit_now, next;

	next = cli_options(argc, argv, &config, usage, &exit_now);
	if (exit_now >= 0)
		return exit_now;
	argc -= next;
	argv += next;
	cmd = argc > 0 ? argv[0] : "serve";
	if (strcmp(cmd, "sign") == 0)
		return cli_sign(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cli_verify(argc, argv);
	if (strcmp(cmd, "user") == 0)
		return cli_user(argc, argv, config);
	if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "check-config") != 0) {
		fprintf(stderr, "twhookd: unknown command: %s\n", cmd);
		usage(stderr);
		return 2;
	}
	if (argc > 0) {
		next = cli_options(argc, argv, &config, usage, &exit_now);
		if (exit_now >= 0)
			return exit_now;
		if (next != argc) {
			fprintf(stderr, "twhookd: %s: unexpected argument: %s\n", cmd, argv[next]);
			return 2;
		}
	}
	if (strcmp(cmd, "check-config") == 0)
		return serve_check_config(config);
	return serve_run(config);
}
