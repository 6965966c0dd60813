/*
 * The configuration key table: every section and key twhookd accepts, with
 * its type, bounds, default and flags, plus the value parsers it drives.
 * Private to config.c (and tests); pure: no I/O, no logging.
 */
#ifndef TWHOOKD_CONFIG_KEYS_H
#define TWHOOKD_CONFIG_KEYS_H

#include <stddef.h>

#include "config.h"

enum key_type {
	KT_STRING,		/* free text (paths, templates, priorities) */
	KT_BOOL,		/* on/off yes/no true/false */
	KT_UINT,		/* decimal, bounds min..max */
	KT_DURATION,		/* "30", "30s", "15m", "1h" -> seconds */
	KT_SIZE,		/* "16384", "16k", "1m" -> bytes */
	KT_LOGLEVEL,		/* log_level_parse() */
	KT_CIDRS,		/* [proxy] trusted */
	KT_LISTEN,		/* "a.b.c.d:port" or "[v6]:port" */
	KT_URLS,		/* public_url: 1..MAX_PUBLIC_URLS http:// or https:// bases */
	KT_HTTPS_URL,		/* api_base_url: https:// base only */
	KT_ROUTE,		/* "/path" */
	KT_SID,			/* `literal` (two letters) + 32 lower-case hex */
	KT_PHONE,		/* E.164: '+' and 2..15 digits, first not 0 */
	KT_RATE,		/* "N/duration" or "off" -> struct config_rate */
	KT_DRIVER,		/* store driver name */
	KT_SECRET,		/* inline secret -> struct config_secret */
};

#define KF_REQUIRED	0x01	/* must appear in the file */
#define KF_EMPTY_OK	0x02	/* "" is a meaningful value, not a mistake */
#define KF_SECRET_FILE	0x04	/* names a file holding the secret at `target` */
#define KF_SECRET_INLINE 0x08	/* the secret itself: needs a 0600 config file */
#define KF_PATH		0x10	/* relative path: resolved against the config dir */
#define KF_CRED_PATH	0x20	/* ...or found in $CREDENTIALS_DIRECTORY first */

struct config_key {
	const char	*section;
	const char	*name;
	enum key_type	 type;
	unsigned	 flags;
	size_t		 offset;	/* field in struct config */
	size_t		 target;	/* KF_SECRET_FILE: its struct config_secret */
	unsigned long long min, max;	/* numbers, rate counts: bounds; strings: max bytes */
	unsigned long long def;		/* numeric default; KT_RATE: count per DEFAULT_LIMIT_WINDOW */
	const char	*defstr;	/* string default; NULL = unset */
	const char	*literal;	/* KT_STRING: the "{field}" a template must contain;
					   KT_SID: the SID's prefix ("AC", "MG", "SK") */
};

/* Table sizes; config_keys.c asserts they match its tables. */
#define CONFIG_NKEYS		52
#define CONFIG_NSECTIONS	10

extern const struct config_key	config_keys[CONFIG_NKEYS];
extern const char *const	config_sections[CONFIG_NSECTIONS];

/* Index into config_sections, or -1. */
int	config_section_index(const char *section);
/* Index into config_keys, or -1. */
int	config_key_index(const char *section, const char *name);

/* Apply every key's default to a zeroed cfg. 0, or -1 when out of memory. */
__attribute__((warn_unused_result))
int	config_defaults(struct config *cfg);

/*
 * Parse value (writable, NUL-terminated) for key k into cfg, replacing the
 * default. 0, or -1 with a one-line reason in msg (never echoing a secret).
 * KT_SECRET values go to sodium_malloc memory: call sodium_init() first.
 */
__attribute__((warn_unused_result))
int	config_value_parse(const struct config_key *k, char *value,
	    struct config *cfg, char *msg, size_t msgsz);

/* Free one key's storage in cfg (wiping secrets); safe on defaults and NULL. */
void	config_value_free(const struct config_key *k, struct config *cfg);

#endif
