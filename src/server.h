/*
 * HTTP listeners on libmicrohttpd: the only module that knows the library.
 * It reads requests into struct request, enforces connection limits and
 * framing, calls its owner's two hooks and sends their struct reply.
 */
#ifndef TWHOOKD_SERVER_H
#define TWHOOKD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

struct config_cidr;
struct metrics;
struct server;

/* What a listener serves. Both hooks run on the listener's worker threads. */
struct server_hooks {
	/*
	 * Headers have arrived (no body read yet). Decide now by setting
	 * reply->status (the body is then never read), or leave it 0.
	 */
	void	(*begin)(void *arg, struct request *req, struct reply *reply);
	/*
	 * The whole body has arrived; must set reply->status, or call
	 * server_suspend and leave it 0 for another thread to set.
	 */
	void	(*finish)(void *arg, struct request *req, struct reply *reply);
	/* The reply went out (or the connection died): count it. May be NULL. */
	void	(*done)(void *arg, const struct request *req);
	void	*arg;
	size_t	 max_body;	/* body bytes kept; beyond it 413 */
};

struct server_options {
	const char	*name;		/* "public" or "admin", for logs */
	const char	*listen;	/* "host:port" or "[v6]:port" */
	int		 listen_fd;	/* an inherited socket (systemd), or -1 */
	bool		 tls;
	const char	*tls_cert;	/* PEM text when tls */
	const char	*tls_key;
	const char	*tls_priorities;
	bool		 reuse_port;	/* SO_REUSEPORT: share the address with others */
	unsigned	 threads;
	unsigned	 max_connections;
	unsigned	 max_connections_per_ip;	/* 0 = off */
	/* Peers exempt from the per-address limit: the trusted proxies. */
	const struct config_cidr *exempt;
	size_t		 exempt_count;
	unsigned	 request_timeout;	/* seconds for a whole request */
	unsigned	 idle_timeout;	/* seconds of silence */
	bool		 access_log;
	int		 nice;		/* added to the worker threads' nice value */
	struct metrics	*metrics;	/* connection refusals and cuts; or NULL */
};

/* Start listening. 0, or -1 after logging why. */
__attribute__((warn_unused_result))
int	server_start(const struct server_options *opt, const struct server_hooks *hooks,
	    struct server **out);
/*
 * Stop admitting connections: new ones are closed as soon as they are
 * accepted; open ones and the requests in flight go on.
 */
void	server_quiesce(struct server *srv);
/* Requests started but not yet completed. */
unsigned server_inflight(const struct server *srv);
/*
 * Answer later: from the finish hook, before req is handed to the thread
 * that will decide its reply and then call server_resume (from any thread).
 */
void	server_suspend(struct request *req);
void	server_resume(struct request *req);
/* Close everything and free; accepts NULL. */
void	server_stop(struct server *srv);

#endif
