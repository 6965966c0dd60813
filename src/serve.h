/*
 * The daemon's life: load config and secrets, open the store, start the
 * listeners, report ready to systemd, then wait for signals and drain.
 */
#ifndef TWHOOKD_SERVE_H
#define TWHOOKD_SERVE_H

/* Run in the foreground until SIGTERM/SIGINT. Returns the exit code. */
int	serve_run(const char *config_path);
/* Load and validate only: errors on stderr. Returns the exit code. */
int	serve_check_config(const char *config_path);

#endif
