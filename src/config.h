/*
 * Configuration: one ini file (inih) -> a validated, immutable struct config.
 * config_parse is pure (text in, struct and error lines out); config_load adds
 * the I/O: reading the file, checking its mode, reading *_file secrets.
 * Errors are "FILE:LINE: [section] key: message", all of them in one run.
 */
#ifndef TWHOOKD_CONFIG_H
#define TWHOOKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "defaults.h"
#include "store.h"

/* A secret's bytes in sodium_malloc memory; wiped and freed by config_free. */
struct config_secret {
	char	*data;		/* NULL when not configured; NUL-terminated */
	size_t	 len;
};

/* One trusted proxy network, parsed from [proxy] trusted. */
struct config_cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];	/* network address, host bits cleared */
	unsigned prefix;	/* prefix length in bits */
};

/* [twilio] public_url: the base URLs Twilio signs, as configured, in order. */
struct config_urls {
	char	*url[MAX_PUBLIC_URLS];	/* "https://sms.example.com", no trailing '/' */
	size_t	 count;			/* 1..MAX_PUBLIC_URLS once loaded */
};

/* A rate: at most count events per window seconds; count 0 = no limit ("off"). */
struct config_rate {
	unsigned count;
	unsigned window;
};

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Room for the line of every key in config_keys.c's table (asserted there). */
#define CONFIG_MAX_KEYS	64

struct config {
	const char	*path;			/* the file it came from */
	unsigned	 key_line[CONFIG_MAX_KEYS];	/* per config_keys[] row; 0 = default */

	/* [server] */
	char		*listen;		/* "host:port", "[v6]:port" */
	bool		 tls;
	char		*tls_cert;		/* path to PEM certificate chain */
	char		*tls_key;		/* path to PEM private key */
	char		*tls_priorities;	/* GnuTLS priority string */
	unsigned	 threads;		/* 0 = number of cores */
	unsigned	 max_connections;
	unsigned	 max_connections_per_ip;	/* 0 = off */
	unsigned	 request_timeout;	/* seconds for a whole request */
	unsigned	 idle_timeout;		/* seconds of silence on a connection */
	bool		 reuse_port;		/* SO_REUSEPORT on the listeners */
	size_t		 max_body;		/* bytes */
	unsigned	 drain_delay;		/* seconds */
	unsigned	 shutdown_timeout;	/* seconds */

	/* [twilio] */
	char		*account_sid;
	struct config_secret auth_token;		/* auth_token_file or auth_token */
	struct config_secret secondary_auth_token;	/* optional, during rotation */
	struct config_urls public_url;		/* required; the first is the status callback's base */
	char		*api_base_url;		/* Messages API base, https:// only */
	char		*from_number;		/* E.164 sender, or NULL */
	char		*messaging_service_sid;	/* "MG" + 32 hex, or NULL; one of the two for PINs */
	char		*api_key_sid;		/* "SK" + 32 hex, or NULL: then account SID + auth token */
	struct config_secret api_key_secret;	/* api_key_secret_file */
	char		*api_ca_file;		/* extra CA for the API's certificate, or NULL */
	char		*status_route;		/* StatusCallback route, signed like webhooks */

	/* [proxy] */
	struct config_cidr *trusted;
	size_t		 trusted_count;

	/* [store] */
	char		*store_driver;		/* "sqlite" or "postgresql" */
	char		*store_path;		/* sqlite */
	struct config_secret store_dsn;		/* postgresql: dsn_file or dsn */
	struct store_config store;		/* the above, for store_open */

	/* [secrets] */
	char		*server_key_file;	/* resolved path */

	/* [reset] */
	char		*reset_route;
	char		*reset_link;		/* contains {token} */
	char		*reset_message;		/* contains {link} */
	unsigned	 reset_token_ttl;	/* seconds */
	char		*reset_unknown_reply;	/* "" = empty <Response/> */
	unsigned	 reset_replay_window;	/* seconds; 0 = a repeat never gets the link */

	/* [pin] */
	char		*pin_route;
	unsigned	 pin_digits;
	unsigned	 pin_ttl;		/* seconds */
	unsigned	 pin_max_attempts;
	char		*pin_message;		/* contains {pin} */

	/* [limits] */
	struct config_rate limit_reset_per_number;
	struct config_rate limit_pin_per_number;
	struct config_rate limit_outbound_budget;

	/* [admin] */
	char		*admin_listen;		/* "" = admin listener off */
	struct config_secret admin_token;	/* token_file or token */

	/* [log] */
	enum log_level	 log_level;

	/* Secret sources as written; config_load reads them into the secrets above. */
	char		*auth_token_file;
	char		*secondary_auth_token_file;
	char		*admin_token_file;
	char		*api_key_secret_file;
	char		*store_dsn_file;
	unsigned	 inline_secret_line;	/* line of the first inline secret, 0 = none */
};

/*
 * Parse ini text (from file `filename`, used in messages) into cfg, applying
 * defaults. Secret keys are recorded but their files are not read (see
 * config_load). Appends one "FILE:LINE: ..." line per error to errors.
 * Returns the number of errors (0 = valid). Pure.
 */
__attribute__((warn_unused_result))
int	config_parse(const char *text, size_t len, const char *filename,
	    struct config *cfg, struct buf *errors);

/*
 * Read and parse path, refuse inline secrets unless the file is mode 0600 or
 * stricter, read every *_file secret (relative paths from
 * $CREDENTIALS_DIRECTORY when set, else from the config file's directory).
 * 0 with *out set, or -1 with errors filled.
 */
__attribute__((warn_unused_result))
int	config_load(const char *path, struct config **out, struct buf *errors);

/*
 * Report a problem found after loading, with what a key names (a file that
 * does not load, say): appends "FILE:LINE: [section] key: message" to errors,
 * LINE being where the file set the key, or "FILE: [section] key: message"
 * for a key left at its default. 0, or -1 when out of memory.
 */
__attribute__((format(printf, 5, 6)))
int	config_error(const struct config *cfg, struct buf *errors, const char *section,
	    const char *key, const char *fmt, ...);

/* The PIN flow and its status callbacks exist only with a sender for SMS. */
static inline bool
config_sms_enabled(const struct config *cfg)
{
	return cfg->from_number != NULL || cfg->messaging_service_sid != NULL;
}

/* The [store] section as store_open takes it. */
static inline const struct store_config *
config_store(const struct config *cfg)
{
	return &cfg->store;
}

/* Wipe secrets and free everything; accepts NULL. */
void	config_free(struct config *cfg);

#endif
