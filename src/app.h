/*
 * The context every request sees: immutable config, the store, the server
 * key, the auth tokens as signature keys, the route table and counters.
 * Built once by serve.c and passed explicitly; never a global.
 */
#ifndef TWHOOKD_APP_H
#define TWHOOKD_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "defaults.h"
#include "metrics.h"
#include "secret.h"
#include "signature.h"
#include "store.h"

struct batch;
struct handler;
struct outbox;

/* One row of the route table: method and path -> what runs. */
struct route {
	const char		*name;		/* for logs and metrics */
	const char		*method;
	const char		*path;
	const struct handler	*handler;	/* a signed webhook's handler; NULL for probes */
	bool			 idempotent;	/* claim MessageSid: one execution per webhook */
	bool			 sms;		/* exists only when SMS can be sent (config_sms_enabled) */
	int			 probe;		/* health routes: PROBE_* */
};

enum { PROBE_NONE = 0, PROBE_HEALTH, PROBE_READY };

#define APP_MAX_ROUTES 8

struct app {
	const struct config	*cfg;
	struct store		*store;
	struct secret_key	*key;
	struct signature_key	 tokens[MAX_AUTH_TOKENS];
	size_t			 token_count;
	struct route		 routes[APP_MAX_ROUTES];
	size_t			 route_count;
	struct metrics		 metrics;
	struct outbox		*outbox;	/* NULL when the PIN flow is off */
	struct batch		*batch;		/* group commit: every signed webhook runs there */
	atomic_bool		 draining;	/* /readyz answers 503 */
	atomic_bool		 store_ready;	/* health.c: the store can commit */
};

#endif
