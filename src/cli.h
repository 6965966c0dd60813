/*
 * Subcommands other than serve. Each takes the subcommand's own argv
 * (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 failure (or "invalid" for verify), 2 usage error.
 */
#ifndef TWHOOKD_CLI_H
#define TWHOOKD_CLI_H

#include <stdio.h>

/*
 * Parse -c/--config FILE, -h/--help, -V/--version up to the first operand.
 * Returns the index of the first operand; *exit_code is -1 to go on, or the
 * exit code when the command is already done (help, version, bad option).
 */
int	cli_options(int argc, char **argv, const char **config,
	    void (*usage)(FILE *), int *exit_code);

/* twhookd sign --url URL [--auth-token-file F] [--form-file F | KEY=VALUE ...] [--body-file F] [--curl] */
int	cli_sign(int argc, char **argv);
/* twhookd verify --url URL --signature SIG [--auth-token-file F] [--form-file F | KEY=VALUE ...] [--body-file F] */
int	cli_verify(int argc, char **argv);
/* twhookd [-c FILE] user add PHONE USER_ID | remove PHONE | list | import FILE.csv */
int	cli_user(int argc, char **argv, const char *config_path);

#endif
