/*
 * libmicrohttpd listeners. Per-request state is created when the request line
 * arrives (URI log callback, which also keeps the raw request-target), the
 * headers are collected and counted on the first access callback, the body is
 * accumulated up to a cap in the middle calls, the reply is queued on the
 * last, and everything is freed in the completion callback.
 * Each TCP connection is admitted against the limits and carries a deadline
 * for its next whole request (conn_table.c) from accept to close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "conn_table.h"
#include "defaults.h"
#include "log.h"
#include "log_escape.h"
#include "public_url.h"
#include "server.h"

struct server {
	struct MHD_Daemon	*daemon;
	struct conn_table	*conns;
	struct server_hooks	 hooks;
	char			 name[16];
	bool			 tls;
	bool			 access_log;
	int			 nice;
	const struct config_cidr *exempt;
	size_t			 exempt_count;
	atomic_bool		 quiesced;	/* close new connections at accept */
	atomic_uint		 inflight;
	/* Request ids: a random start, then a counter (no getrandom call per request). */
	_Atomic uint64_t	 next_id;
};

/*
 * Lower this listener thread's priority once (Linux: a thread's own nice
 * value), so that under saturation the threads that finish work it admitted
 * (batch, outbox) run before it admits more. Failure only costs that.
 */
static void
thread_nice(int nice)
{
	static _Thread_local bool done;

	if (done || nice == 0)
		return;
	done = true;
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), nice);
}

/* What one request carries between callbacks. */
struct exchange {
	struct server		*srv;
	struct MHD_Connection	*conn;
	struct conn		*tcp;		/* its connection's entry, or NULL */
	struct request		 req;
	struct reply		 reply;
	bool			 begun;
	bool			 suspended;	/* the reply is being decided elsewhere */
};

static struct exchange *
exchange_of(struct request *req)
{
	return (struct exchange *)(void *)((char *)req - offsetof(struct exchange, req));
}

static void
exchange_free(struct exchange *x)
{
	if (x == NULL)
		return;
	request_release(&x->req);
	reply_release(&x->reply);
	free(x);
}

void
request_release(struct request *req)
{
	free(req->target);
	req->target = NULL;
	buf_free(&req->body);
	form_free(&req->form);
}

void
reply_release(struct reply *reply)
{
	buf_free_secret(&reply->body);	/* a reply may carry a reset link */
}

/* The connection-table entry that on_connection gave conn, or NULL. */
static struct conn *
tcp_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

/* Request line received: create the exchange and keep the raw target. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct server	*srv = cls;
	struct exchange	*x;
	uint64_t	 id;
	size_t		 len;

	(void)conn;
	thread_nice(srv->nice);
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	len = strnlen(uri, MAX_TARGET_LEN + 1);
	if ((x->req.target = strndup(uri, len)) == NULL) {
		free(x);
		return NULL;
	}
	x->srv = srv;
	x->tcp = tcp_of(conn);
	x->req.target_len = len;
	x->req.tls = srv->tls;
	x->req.reason = "ok";
	clock_gettime(CLOCK_MONOTONIC, &x->req.started);
	id = atomic_fetch_add(&srv->next_id, 1);
	snprintf(x->req.id, sizeof(x->req.id), "%016llx", (unsigned long long)id);
	atomic_fetch_add(&srv->inflight, 1);
	return x;
}

/* Content-Length must be plain decimal digits (RFC 9110, 8.6). */
static void
parse_content_length(struct request_headers *h, const char *v)
{
	uint64_t n = 0;

	if (*v == '\0')
		h->bad_content_length = true;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10) {
			h->bad_content_length = true;
			return;
		}
		n = n * 10 + (uint64_t)(*v - '0');
	}
	h->has_content_length = true;
	h->content_length = n;
}

/*
 * A header name must be an RFC 9110 token (5.1). libmicrohttpd 0.9.75 glues
 * an obs-fold continuation line onto the previous header's *name*
 * ("X-Twilio-Signature" + " abc=" -> "X-Twilio-Signatureabc="), so a name that
 * extends one of the headers we rely on is a folded line too.
 */
static bool
suspicious_name(const char *key)
{
	static const char *const watched[] = {
		"x-twilio-signature", "content-length", "transfer-encoding",
		"content-type", "host", "authorization",
	};
	const char *p;

	if (*key == '\0')
		return true;
	for (p = key; *p != '\0'; p++)
		if (strchr("!#$%&'*+-.^_`|~", *p) == NULL &&
		    !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z')))
			return true;
	for (size_t i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
		size_t n = strlen(watched[i]);
		if (strlen(key) > n && strncasecmp(key, watched[i], n) == 0)
			return true;
	}
	return false;
}

/*
 * With the sizes libmicrohttpd reports, a NUL inside a name or value shows
 * as a size past the C string, which every test below would stop at. (0.9.75
 * cuts a value at a NUL and reports the cut size, and refuses a NUL in a name
 * itself: there the NUL tests never fire; see twhookd(8), Request hygiene.)
 */
static enum MHD_Result
on_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
    const char *value, size_t value_size)
{
	struct request_headers *h = cls;

	(void)kind;
	if (value == NULL) {
		value = "";
		value_size = 0;
	}
	if (memchr(value, '\0', value_size) != NULL ||
	    memchr(value, '\r', value_size) != NULL ||
	    memchr(value, '\n', value_size) != NULL)
		h->bad_value = true;
	if (memchr(key, '\0', key_size) != NULL || suspicious_name(key))
		h->bad_name = true;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (h->content_length_count++ == 0)
			parse_content_length(h, value);
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		h->transfer_encoding_count++;
	} else if (strcasecmp(key, "X-Twilio-Signature") == 0) {
		if (h->signature_count++ == 0) {
			h->signature = value;
			h->signature_len = strlen(value);
		}
	} else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) {
		h->content_type = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
		if (h->host_count++ == 0)
			h->host = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0) {
		h->authorization = value;
	} else if (strcasecmp(key, "I-Twilio-Idempotency-Token") == 0) {
		h->idempotency_token = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_USER_AGENT) == 0) {
		h->user_agent = value;
	} else if (strcasecmp(key, "X-Forwarded-For") == 0) {
		h->forwarded_for = value;
	}
	return MHD_YES;
}

static void
read_request(struct MHD_Connection *conn, struct request *req, const char *method,
    const char *url)
{
	const union MHD_ConnectionInfo *ci;

	req->method = method;
	req->path = url;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		size_t len = ci->client_addr->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		memcpy(&req->peer, ci->client_addr, len);
	}
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, on_header, &req->h);
}

static struct MHD_Response *
response_new(const struct reply *reply)
{
	const char *data = reply->body.data != NULL ? reply->body.data : "";

#if MHD_VERSION >= 0x00097701
	return MHD_create_response_from_buffer_copy(reply->body.len, data);
#else
	return MHD_create_response_from_buffer(reply->body.len, (void *)(uintptr_t)data,
	    MHD_RESPMEM_MUST_COPY);
#endif
}

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct exchange *x)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	struct reply		*reply = &x->reply;

	if ((resp = response_new(reply)) == NULL)
		return MHD_NO;
	if (reply->content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
	if (reply->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
	if (reply->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	x->req.status = reply->status;
	ret = MHD_queue_response(conn, reply->status, resp);
	MHD_destroy_response(resp);
	/* The reply may hold a reset link: wipe it as soon as MHD has its copy. */
	reply_release(reply);
	return ret;
}

/* Keep body bytes up to the cap; past it, discard and remember. */
static void
take_body(struct exchange *x, const char *data, size_t size)
{
	struct request *req = &x->req;

	if (req->body_overflow)
		return;
	if (size > x->srv->hooks.max_body - req->body.len ||
	    buf_append(&req->body, data, size) == -1) {
		req->body_overflow = true;
		buf_free(&req->body);
	}
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct server	*srv = cls;
	struct exchange	*x = *con_cls;

	(void)version;
	if (x == NULL)
		return MHD_NO;		/* out of memory when the request began */
	if (x->suspended) {
		/* Resumed: another thread decided the reply. */
		x->suspended = false;
		return send_reply(conn, x);
	}
	if (!x->begun) {
		x->begun = true;
		x->conn = conn;
		read_request(conn, &x->req, method, url);
		srv->hooks.begin(srv->hooks.arg, &x->req, &x->reply);
		if (x->reply.status != 0) {
			conn_request_complete(x->tcp);
			/* Decided before the body: never read it, so never reuse the connection. */
			if (x->req.h.has_content_length || x->req.h.transfer_encoding_count > 0)
				x->reply.close = true;
			return send_reply(conn, x);
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		take_body(x, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* The whole request is here: no deadline while it is decided and answered. */
	conn_request_complete(x->tcp);
	srv->hooks.finish(srv->hooks.arg, &x->req, &x->reply);
	return x->suspended ? MHD_YES : send_reply(conn, x);
}

void
server_suspend(struct request *req)
{
	struct exchange *x = exchange_of(req);

	x->suspended = true;
	MHD_suspend_connection(x->conn);
}

void
server_resume(struct request *req)
{
	MHD_resume_connection(exchange_of(req)->conn);
}

static double
elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/*
 * One line per request. Every field is ours, checked (sid, from, client,
 * twilio_idem: a token of the shape Twilio sends, else "invalid") or escaped
 * (method, ua), so a request cannot end the line, color it or add a field.
 */
static void
log_access(const struct server *srv, struct MHD_Connection *conn,
    const struct request *req)
{
	const union MHD_ConnectionInfo	*ci;
	const struct sockaddr		*peer = NULL;
	const char			*client = req->client, *idem = req->h.idempotency_token;
	const char			*agent = req->h.user_agent;
	char				 addr[PUBLIC_URL_CLIENT_MAX], method[LOG_METHOD_MAX] = "-";
	char				 ua[LOG_UA_MAX + 2] = "-";	/* quoted */
	size_t				 n;

	if (client[0] == '\0') {
		/* Decided before the pipeline saw it: the peer, from the library if need be. */
		if (req->peer.ss_family != 0)
			peer = (const struct sockaddr *)&req->peer;
		else if ((ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CLIENT_ADDRESS)) != NULL)
			peer = ci->client_addr;
		public_url_client(peer, NULL, NULL, 0, addr);
		client = addr;
	}
	if (req->method != NULL)
		log_escape(req->method, strlen(req->method), LOG_ESCAPE_FIELD, method,
		    sizeof(method));
	if (agent != NULL) {
		n = log_escape(agent, strlen(agent), LOG_ESCAPE_FIELD, ua + 1, LOG_UA_MAX);
		ua[0] = ua[n + 1] = '"';
		ua[n + 2] = '\0';
	}
	if (idem != NULL && !log_escape_is_token(idem, LOG_IDEM_TOKEN_MAX))
		idem = "invalid";
	log_info("access %s id=%s client=%s method=%s route=%s status=%u reason=%s"
	    " ms=%.2f from=%s sid=%s twilio_idem=%s ua=%s", srv->name, req->id, client,
	    method, req->route_name != NULL ? req->route_name : "-", req->status,
	    req->reason, elapsed_ms(&req->started),
	    req->from_masked[0] != '\0' ? req->from_masked : "-",
	    req->message_sid[0] != '\0' ? req->message_sid : "-",
	    idem != NULL ? idem : "-", ua);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server	*srv = cls;
	struct exchange	*x = *con_cls;
	struct request	*req;

	if (x == NULL)
		return;
	req = &x->req;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status == 0)
		req->reason = conn_was_cut(x->tcp) ? "request_timeout" : "connection_closed";
	if (srv->access_log)
		log_access(srv, conn, req);
	if (srv->hooks.done != NULL)
		srv->hooks.done(srv->hooks.arg, req);
	/* Kept alive: the next request has request_timeout from now. */
	conn_answer_sent(srv->conns, x->tcp);
	exchange_free(x);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	/*
	 * One for every listener: a flood of broken handshakes or requests,
	 * which is what makes the library talk, costs a line a second.
	 */
	static struct log_throttle	 throttle = LOG_THROTTLE_INIT;
	struct server			*srv = cls;
	char				 msg[512], text[LOG_TEXT_MAX];
	size_t				 len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	/* Its messages can quote what a client sent. */
	log_escape(msg, len, LOG_ESCAPE_TEXT, text, sizeof(text));
	log_throttled(&throttle, LOG_LEVEL_WARN, "%s: libmicrohttpd: %s", srv->name, text);
}
#pragma GCC diagnostic pop

/* "a.b.c.d:port" or "[v6]:port" -> sockaddr. 0 or -1. */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	char		 host[INET6_ADDRSTRLEN + 1];
	const char	*colon, *h = spec;
	size_t		 hlen;
	char		*end;
	unsigned long	 port;

	if ((colon = strrchr(spec, ':')) == NULL)
		return -1;
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[') {
		if (hlen < 2 || spec[hlen - 1] != ']')
			return -1;
		h = spec + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

/*
 * Our own listening socket, so that a second daemon on the same address
 * fails here with a clear reason: SO_REUSEADDR only lets a restart bind past
 * TIME_WAIT; SO_REUSEPORT, which lets several sockets share the address, is
 * set only when asked for. -1 after logging why.
 */
static int
listen_socket(const struct server_options *opt)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 fd, on = 1;

	if (parse_listen(opt->listen, &ss) == -1) {
		log_warnx("%s: bad listen address: %s", opt->name, opt->listen);
		return -1;
	}
	len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("%s: socket", opt->name);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (opt->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)) {
		log_warn("%s: setsockopt", opt->name);
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) == -1) {
		if (errno == EADDRINUSE)
			log_warnx("%s: cannot listen on %s: the address is in use (another"
			    " twhookd, or another program, listens there)", opt->name, opt->listen);
		else
			log_warn("%s: cannot listen on %s", opt->name, opt->listen);
		goto fail;
	}
	if (listen(fd, SOMAXCONN) == -1) {
		log_warn("%s: listen on %s", opt->name, opt->listen);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Admission, before the library spends anything on the connection. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct server	*srv = cls;
	bool		 exempt;

	(void)addrlen;
	if (atomic_load_explicit(&srv->quiesced, memory_order_relaxed))
		return MHD_NO;
	exempt = public_url_trusted(addr, srv->exempt, srv->exempt_count);
	return conn_table_admit(srv->conns, addr, exempt) == CONN_ADMIT_OK ? MHD_YES : MHD_NO;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct server			*srv = cls;
	const union MHD_ConnectionInfo	*fd, *addr;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		conn_table_remove(srv->conns, *socket_context);
		*socket_context = NULL;
		return;
	}
	fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	*socket_context = fd == NULL ? NULL : conn_table_add(srv->conns,
	    addr != NULL ? addr->client_addr : NULL, fd->connect_fd);
}

/*
 * No MHD_USE_TURBO: in 0.9.75 it puts a new connection on the ready list
 * without adding it to the epoll set, and a TLS handshake that would block
 * never takes it off (only the HTTP reader clears read-readiness). A silent
 * TLS client then made its thread poll with timeout 0 forever, and its close
 * and its timeout went unseen.
 */
static unsigned
daemon_flags(const struct server_options *opt)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	if (opt->tls)
		flags |= MHD_USE_TLS;
	return flags;
}

int
server_start(const struct server_options *opt, const struct server_hooks *hooks,
    struct server **out)
{
	struct server		*srv = NULL;
	size_t			 n = 0;
	uint64_t		 seed;
	int			 fd = opt->listen_fd;
	struct MHD_OptionItem	 items[5] = {
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return -1;
	if (conn_table_new(opt->name, opt->max_connections, opt->max_connections_per_ip,
	    opt->request_timeout * 1000u, opt->metrics, &srv->conns) == -1)
		goto fail;
	if (fd < 0 && (fd = listen_socket(opt)) == -1)
		goto fail;
	srv->hooks = *hooks;
	snprintf(srv->name, sizeof(srv->name), "%s", opt->name);
	srv->tls = opt->tls;
	srv->access_log = opt->access_log;
	srv->nice = opt->nice;
	srv->exempt = opt->exempt;
	srv->exempt_count = opt->exempt_count;
	atomic_init(&srv->quiesced, false);
	atomic_init(&srv->inflight, 0);
	randombytes_buf(&seed, sizeof(seed));
	atomic_init(&srv->next_id, seed);
	/* One thread: the listener's own thread serves; a pool of one is refused. */
	if (opt->threads > 1)
		items[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, opt->threads, NULL };
	if (opt->tls) {
		items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)opt->tls_cert };
		items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)opt->tls_key };
		items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)opt->tls_priorities };
	}
	srv->daemon = MHD_start_daemon(daemon_flags(opt), 0, on_accept, srv,
	    on_access, srv,
	    /* First, so that libmicrohttpd reports even option errors through us. */
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_ARRAY, items,
	    /*
	     * A backstop only: on_accept refuses at max_connections and counts
	     * it, which the library's own limit (split across its threads, and
	     * enforced by leaving connections in the backlog) would not.
	     */
	    MHD_OPTION_CONNECTION_LIMIT, opt->max_connections + opt->max_connections / 2u + 16u,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	    MHD_OPTION_CONNECTION_TIMEOUT, opt->idle_timeout,
#if MHD_VERSION >= 0x00097701
	    MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1,
#else
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
#endif
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_END);
	if (srv->daemon == NULL) {
		/* The library closes the socket on most of its failure paths: not twice. */
		log_warnx("%s: cannot serve on %s (bad TLS material or too many threads?)",
		    opt->name, opt->listen_fd >= 0 ? "the inherited socket" : opt->listen);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	conn_table_free(srv->conns);
	free(srv);
	return -1;
}

/*
 * Not MHD_quiesce_daemon: in 0.9.75 it removes the listening socket from each
 * worker's epoll set while a worker at its connection limit may be removing
 * it too, and the loser of that race aborts the process.
 */
void
server_quiesce(struct server *srv)
{
	if (srv != NULL)
		atomic_store(&srv->quiesced, true);
}

unsigned
server_inflight(const struct server *srv)
{
	return srv == NULL ? 0 : atomic_load(&srv->inflight);
}

void
server_stop(struct server *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon != NULL)
		MHD_stop_daemon(srv->daemon);
	conn_table_free(srv->conns);
	free(srv);
}
