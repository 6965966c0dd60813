/*
 * What the subcommands share: the -c/-h/-V options, parsed the same way
 * before a subcommand and after serve, check-config and user.
 */
#include <getopt.h>

#include "cli.h"
#include "defaults.h"

int
cli_options(int argc, char **argv, const char **config, void (*usage)(FILE *),
    int *exit_code)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 1;
	*exit_code = -1;
	/* '+': stop at the first operand, which is the subcommand or its action. */
	while ((ch = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*config = optarg;
			break;
		case 'h':
			usage(stdout);
			*exit_code = 0;
			return optind;
		case 'V':
			printf("twhookd %s\n", TWHOOKD_VERSION);
			*exit_code = 0;
			return optind;
		default:
			usage(stderr);
			*exit_code = 2;
			return optind;
		}
	}
	return optind;
}
