/*
 * Twilio Messages REST API client (libcurl, GnuTLS build): one handle per
 * outbox worker, sending a round of messages at once over keep-alive
 * connections, HTTPS only, peer verification always on. Only this module
 * includes curl. The classification of replies is pure and unit-tested; the
 * client never logs message bodies.
 */
#ifndef TWHOOKD_TWILIO_API_H
#define TWHOOKD_TWILIO_API_H

#include <stdbool.h>
#include <stddef.h>

struct twilio_api;

struct twilio_api_config {
	const char	*base_url;		/* e.g. https://api.twilio.com */
	const char	*account_sid;
	const char	*username;		/* API key SID, or the account SID */
	const char	*password;		/* API key secret, or the auth token */
	const char	*from_number;		/* one of from_number ... */
	const char	*messaging_service_sid;	/* ... or messaging_service_sid */
	const char	*ca_file;		/* extra CA, or NULL */
};

struct twilio_message {
	const char	*to;
	const char	*body;
	unsigned	 validity_period;	/* seconds; 0 = leave out */
	const char	*status_callback;	/* URL, or NULL */
};

enum twilio_outcome {
	TWILIO_ACCEPTED = 0,	/* 2xx: Twilio queued it */
	TWILIO_RETRY,		/* network error, timeout, 429, 5xx, 401: try again later */
	TWILIO_PERMANENT,	/* other 4xx (21211 invalid number, 21610 unsubscribed, ...) */
};

struct twilio_result {
	enum twilio_outcome	 outcome;
	long			 http_status;	/* 0 when no reply */
	int			 error_code;	/* Twilio's "code", 0 when none */
	unsigned		 retry_after;	/* seconds from Retry-After, 0 when none */
	char			 sid[40];	/* Twilio's MessageSid when accepted */
	char			 detail[160];	/* curl error or Twilio "message"; never the body */
};

/* Call once before any thread starts (curl_global_init). 0 or -1. */
__attribute__((warn_unused_result))
int	twilio_api_global_init(void);
void	twilio_api_global_cleanup(void);

#define TWILIO_API_MAX_SLOTS	64u

/*
 * A client making up to slots (at most TWILIO_API_MAX_SLOTS) calls at once,
 * each on a connection kept alive between rounds. The config strings must
 * outlive the handle. 0, or -1 with the reason in err.
 */
__attribute__((warn_unused_result))
int	twilio_api_new(const struct twilio_api_config *cfg, size_t slots,
	    struct twilio_api **out, char *err, size_t errsz);
void	twilio_api_free(struct twilio_api *api);

/* One call of a round has its outcome: msgs[i]'s, valid during the call only. */
typedef void (*twilio_done_fn)(void *arg, size_t i, const struct twilio_result *res);
/*
 * POST {base}/2010-04-01/Accounts/{sid}/Messages.json for msgs[0..n), all
 * at once, calling done for each as soon as it ends (so a caller records a
 * send Twilio accepted without waiting for the slowest call of the round).
 * Returns once every message had its done: within API_CALL_DEADLINE seconds.
 * Past the handle's slots, messages are not sent and come back TWILIO_RETRY.
 */
void	twilio_api_send(struct twilio_api *api, const struct twilio_message *msgs,
	    size_t n, twilio_done_fn done, void *arg);

/*
 * Pure: classify a reply. transport_ok false means no HTTP reply at all
 * (connect failure, TLS failure, timeout).
 */
enum twilio_outcome	twilio_api_classify(bool transport_ok, long http_status);
/* Pure: parse a Retry-After value (delta-seconds only), capped. 0 when absent or bad. */
unsigned		twilio_api_retry_after(const char *value, size_t len, unsigned cap);

#endif
