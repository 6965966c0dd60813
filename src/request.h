/*
 * One HTTP request and its reply, independent of the HTTP library: server.c
 * fills a struct request, the pipeline (or the admin API) decides, server.c
 * sends the struct reply. Everything a request allocates hangs off it and is
 * freed by request_free.
 */
#ifndef TWHOOKD_REQUEST_H
#define TWHOOKD_REQUEST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "form.h"
#include "phone.h"

/* Headers the pipeline reads; pointers stay valid for the request's life. */
struct request_headers {
	const char	*content_type;
	const char	*host;			/* orders public_url's bases, never builds one */
	const char	*signature;		/* X-Twilio-Signature */
	size_t		 signature_len;
	const char	*authorization;
	const char	*idempotency_token;	/* I-Twilio-Idempotency-Token: logged only */
	const char	*user_agent;		/* logged only, escaped */
	/* The last X-Forwarded-For: a trusted proxy that adds its own header adds it last. */
	const char	*forwarded_for;
	bool		 has_content_length;
	uint64_t	 content_length;
	/* Counts for request hygiene: Twilio sends each of these at most once. */
	unsigned	 content_length_count;
	unsigned	 transfer_encoding_count;
	unsigned	 signature_count;
	unsigned	 host_count;
	bool		 bad_content_length;	/* not a plain decimal number */
	bool		 bad_value;		/* a header value with CR, LF or NUL */
	bool		 bad_name;		/* a NUL, not an RFC 9110 token, or a folded line glued on */
};

struct route;

struct request {
	char			 id[17];	/* random hex, for log correlation */
	struct timespec		 started;	/* CLOCK_MONOTONIC */
	const char		*method;
	const char		*path;		/* as decoded by the HTTP library */
	char			*target;	/* raw request-target as sent: path?query */
	size_t			 target_len;
	struct sockaddr_storage	 peer;
	bool			 tls;
	struct request_headers	 h;
	const struct route	*route;		/* public listener's matched route */
	int			 route_id;	/* admin listener's matched route */
	bool			 body_overflow;	/* more body than the cap: discarded */
	struct buf		 body;
	struct form		 form;

	/* Set as the request is decided, for the access log. */
	const char		*route_name;
	const char		*reason;	/* reason class: "ok", "signature_mismatch", ... */
	char			 client[INET6_ADDRSTRLEN];	/* "" = the peer (public_url_client) */
	unsigned		 status;
	char			 from_masked[PHONE_MASK_MAX];
	char			 message_sid[40];	/* not secret; "" when absent */

	/* Queued for the batch thread (batch.c). */
	struct request		*batch_next;
	struct reply		*batch_reply;
};

struct reply {
	unsigned	 status;	/* 0 = not decided yet */
	const char	*content_type;	/* NULL = no Content-Type */
	struct buf	 body;
	bool		 close;		/* answer, then close the connection */
	const char	*allow;		/* Allow header for 405 */
};

/* Free everything a request owns (not the struct itself). */
void	request_release(struct request *req);
void	reply_release(struct reply *reply);

#endif
