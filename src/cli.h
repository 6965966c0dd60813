/*
 * Subcommands other than serve. Each takes the subcommand's own argv
 * (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 failure (or "invalid" for verify), 2 usage error.
 */
#ifndef TWHOOKD_CLI_H
#define TWHOOKD_CLI_H

/* twhookd sign --url URL [--auth-token-file F] [--form-file F | KEY=VALUE ...] [--body-file F] [--curl] */
int	cli_sign(int argc, char **argv);
/* twhookd verify --url URL --signature SIG [--auth-token-file F] [--form-file F | KEY=VALUE ...] [--body-file F] */
int	cli_verify(int argc, char **argv);
/* twhookd [-c FILE] user add PHONE USER_ID | remove PHONE | list | import FILE.csv */
int	cli_user(int argc, char **argv, const char *config_path);

#endif
