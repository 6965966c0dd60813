/*
 * bench/mhd_floor: the floor under twhookd's listener, for make bench.
 *
 * The same libmicrohttpd + GnuTLS listener twhookd runs (one epoll thread,
 * TURBO, suspend/resume allowed, the same TLS priorities and connection
 * options), reading each POST body whole and answering a fixed TwiML of
 * twhookd's size and headers. It validates and stores nothing:
 *
 *   static   answers from the request's last call, as a server with no
 *            store would
 *   handoff  suspends the request and lets a second thread resume it, as
 *            twhookd hands every webhook to its batch thread; the answer is
 *            then queued from the resumed call. What this adds over static
 *            is what the handoff alone costs, work aside
 *
 * usage: mhd_floor static|handoff PORT CERT KEY
 * TLS priorities, connection limit, memory and timeout are twhookd's.
 * Runs until SIGTERM or SIGINT, then exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "defaults.h"

/* As long as twhookd's reset answer: a 32-character token in the same link. */
static const char twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>"
    "Reset your password: https://example.com/reset?token="
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</Message></Response>";

struct exchange {
	struct MHD_Connection	*conn;
	struct exchange		*next;		/* on the handoff queue */
	bool			 suspended;
};

static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct exchange		*head, *tail;	/* in arrival order, as twhookd's */
	bool			 stopping;
} queue = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, false };

static bool handoff;

/* Resume whatever queued up, a batch at a time, like twhookd's batch thread. */
static void *
resumer_main(void *arg)
{
	struct sched_param	 sp;
	struct exchange		*x, *next;

	(void)arg;
	memset(&sp, 0, sizeof(sp));
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&queue.mu);
	for (;;) {
		while (queue.head == NULL && !queue.stopping)
			pthread_cond_wait(&queue.cv, &queue.mu);
		if (queue.head == NULL)
			break;
		x = queue.head;
		queue.head = queue.tail = NULL;
		pthread_mutex_unlock(&queue.mu);
		for (; x != NULL; x = next) {
			next = x->next;
			MHD_resume_connection(x->conn);
		}
		pthread_mutex_lock(&queue.mu);
	}
	pthread_mutex_unlock(&queue.mu);
	return NULL;
}

static enum MHD_Result
answer(struct MHD_Connection *conn)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;

	resp = MHD_create_response_from_buffer(sizeof(twiml) - 1, (void *)(uintptr_t)twiml,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/xml; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct exchange	*x = *con_cls;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	if (x == NULL) {
		if ((x = calloc(1, sizeof(*x))) == NULL)
			return MHD_NO;
		x->conn = conn;
		*con_cls = x;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;		/* read and dropped */
		return MHD_YES;
	}
	if (!handoff || x->suspended)
		return answer(conn);
	x->suspended = true;
	MHD_suspend_connection(conn);
	pthread_mutex_lock(&queue.mu);
	x->next = NULL;
	if (queue.tail != NULL)
		queue.tail->next = x;
	else
		queue.head = x;
	queue.tail = x;
	pthread_cond_signal(&queue.cv);
	pthread_mutex_unlock(&queue.mu);
	return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* The whole file, NUL-terminated, as MHD_OPTION_HTTPS_MEM_* want it. */
static char *
slurp(const char *path)
{
	FILE	*f;
	char	*p = NULL;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = calloc((size_t)n + 1, 1)) != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon	*d;
	pthread_t		 resumer;
	sigset_t		 sigs;
	char			*cert, *key, *end;
	unsigned long		 port;
	int			 sig;

	if (argc != 5 || (strcmp(argv[1], "static") != 0 && strcmp(argv[1], "handoff") != 0)) {
		fprintf(stderr, "usage: mhd_floor static|handoff PORT CERT KEY\n");
		return 2;
	}
	handoff = strcmp(argv[1], "handoff") == 0;
	errno = 0;
	port = strtoul(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535) {
		fprintf(stderr, "mhd_floor: bad port: %s\n", argv[2]);
		return 2;
	}
	if ((cert = slurp(argv[3])) == NULL || (key = slurp(argv[4])) == NULL) {
		fprintf(stderr, "mhd_floor: cannot read the certificate or key\n");
		return 1;
	}
	/* Signals are waited for below, never delivered to a server thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (handoff && pthread_create(&resumer, NULL, resumer_main, NULL) != 0) {
		fprintf(stderr, "mhd_floor: cannot start the resumer thread\n");
		return 1;
	}
	/* bench/run groups threads by name: this one stands where twhookd's batch thread does. */
	if (handoff)
		(void)pthread_setname_np(resumer, "batch");
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TLS, (uint16_t)port,
	    NULL, NULL, on_access, NULL,
	    MHD_OPTION_HTTPS_MEM_CERT, cert,
	    MHD_OPTION_HTTPS_MEM_KEY, key,
	    MHD_OPTION_HTTPS_PRIORITIES, DEFAULT_TLS_PRIORITIES,
	    MHD_OPTION_CONNECTION_LIMIT, DEFAULT_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	    MHD_OPTION_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
#if MHD_VERSION >= 0x00097701
	    MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1,
#else
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
#endif
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "mhd_floor: cannot listen on port %lu\n", port);
		return 1;
	}
	while (sigwait(&sigs, &sig) != 0)
		;
	MHD_stop_daemon(d);
	if (handoff) {
		pthread_mutex_lock(&queue.mu);
		queue.stopping = true;
		pthread_cond_signal(&queue.cv);
		pthread_mutex_unlock(&queue.mu);
		pthread_join(resumer, NULL);
	}
	free(cert);
	free(key);
	return 0;
}
