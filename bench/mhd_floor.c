/*
 * bench/mhd_floor: twhookd's libmicrohttpd + GnuTLS listener with nothing
 * behind it, the floor make bench measures twhookd against. "static" answers
 * a fixed TwiML from the request's last call; "handoff" first suspends it and
 * lets a second thread resume it, as twhookd hands webhooks to its batch
 * thread. A bench tool, so it includes microhttpd.h itself (src/: server.c only).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

struct floor {
	bool			 handoff;
	pthread_t		 resumer;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct exchange		*head, *tail;	/* in arrival order, as twhookd's */
	bool			 stopping;	/* answer inline: no resumer any more */
};

/* Detach up to BATCH_MAX queued requests, as twhookd's batch thread takes them. */
static struct exchange *
take(struct floor *f)
{
	struct exchange	*first = f->head, *last = first;

	for (unsigned n = 1; n < BATCH_MAX && last->next != NULL; n++)
		last = last->next;
	if ((f->head = last->next) == NULL)
		f->tail = NULL;
	last->next = NULL;
	return first;
}

/* Resume what queued up, a batch at a time, outside the lock as twhookd's work runs. */
static void *
resumer_main(void *arg)
{
	struct floor		*f = arg;
	struct sched_param	 sp;
	struct exchange		*x, *next;

	memset(&sp, 0, sizeof(sp));
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (f->head == NULL && !f->stopping)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->head == NULL)
			break;		/* stopping, and the queue is empty */
		x = take(f);
		pthread_mutex_unlock(&f->mu);
		for (; x != NULL; x = next) {
			next = x->next;		/* x may be freed once resumed */
			MHD_resume_connection(x->conn);
		}
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
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

/* Queue x for the resumer; false when it is stopping (answer inline then). */
static bool
hand_off(struct floor *f, struct exchange *x)
{
	pthread_mutex_lock(&f->mu);
	if (f->stopping) {
		pthread_mutex_unlock(&f->mu);
		return false;
	}
	x->suspended = true;
	MHD_suspend_connection(x->conn);
	x->next = NULL;
	if (f->tail != NULL)
		f->tail->next = x;
	else
		f->head = x;
	f->tail = x;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return true;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static _Thread_local bool	 niced;
	struct floor			*f = cls;
	struct exchange			*x = *con_cls;

	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	if (!niced) {
		/* As twhookd's listener threads run. */
		niced = true;
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), LISTENER_NICE);
	}
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
	if (!f->handoff || x->suspended || !hand_off(f, x))
		return answer(conn);
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

/* The whole file, NUL-terminated, as MHD_OPTION_HTTPS_MEM_* want it; NULL and errno. */
static char *
slurp(const char *path)
{
	FILE	*fp;
	char	*p = NULL;
	long	 n;
	int	 saved;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
	    (p = calloc((size_t)n + 1, 1)) != NULL && fread(p, 1, (size_t)n, fp) != (size_t)n) {
		free(p);
		p = NULL;
		errno = EIO;
	}
	saved = errno;
	fclose(fp);
	errno = saved;
	return p;
}

static bool
number(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char	*end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out >= lo && *out <= hi;
}

int
main(int argc, char **argv)
{
	struct floor		 f = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct MHD_Daemon	*d;
	struct sockaddr_in	 sin;
	struct MHD_OptionItem	 pool[2] = {
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
	};
	sigset_t		 sigs;
	char			*pem[2] = { NULL, NULL };
	unsigned long		 port, threads;
	int			 sig, rc = 1;

	if (argc != 6 || (strcmp(argv[1], "static") != 0 && strcmp(argv[1], "handoff") != 0) ||
	    !number(argv[2], 1, 65535, &port) || !number(argv[5], 1, MAX_THREADS, &threads)) {
		fprintf(stderr, "usage: mhd_floor static|handoff PORT CERT KEY THREADS\n");
		return 2;
	}
	f.handoff = strcmp(argv[1], "handoff") == 0;
	for (int i = 0; i < 2; i++)
		if ((pem[i] = slurp(argv[3 + i])) == NULL) {
			fprintf(stderr, "mhd_floor: %s: %s\n", argv[3 + i], strerror(errno));
			goto done;
		}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* As twhookd: one thread serves unless told more (a pool of one is refused). */
	if (threads > 1)
		pool[0] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL };
	/* As twhookd: a peer gone mid-answer is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM and SIGINT are waited for below, never delivered to a server thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (f.handoff) {
		if (pthread_create(&f.resumer, NULL, resumer_main, &f) != 0) {
			fprintf(stderr, "mhd_floor: cannot start the resumer thread\n");
			goto done;
		}
		/* bench/run groups threads by name: this one stands where twhookd's batch does. */
		(void)pthread_setname_np(f.resumer, "batch");
	}
	/* As twhookd's listener: no MHD_USE_TURBO (src/server.c says why). */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TLS, 0,
	    NULL, NULL, on_access, &f,
	    MHD_OPTION_SOCK_ADDR, &sin,
	    MHD_OPTION_ARRAY, pool,
	    MHD_OPTION_HTTPS_MEM_CERT, pem[0],
	    MHD_OPTION_HTTPS_MEM_KEY, pem[1],
	    MHD_OPTION_HTTPS_PRIORITIES, DEFAULT_TLS_PRIORITIES,
	    MHD_OPTION_CONNECTION_LIMIT, DEFAULT_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	    MHD_OPTION_CONNECTION_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
#if MHD_VERSION >= 0x00097701
	    MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1,
#else
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
#endif
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_END);
	if (d == NULL)
		fprintf(stderr, "mhd_floor: cannot listen on 127.0.0.1:%lu\n", port);
	else {
		while (sigwait(&sigs, &sig) != 0)
			;
		rc = 0;
	}
	/*
	 * The resumer first: it resumes all it holds before it exits, and the
	 * listener answers inline from then on, so libmicrohttpd is never
	 * stopped with a connection suspended (it aborts then).
	 */
	if (f.handoff) {
		pthread_mutex_lock(&f.mu);
		f.stopping = true;
		pthread_cond_signal(&f.cv);
		pthread_mutex_unlock(&f.mu);
		pthread_join(f.resumer, NULL);
	}
	if (d != NULL)
		MHD_stop_daemon(d);
done:
	free(pem[0]);
	free(pem[1]);
	return rc;
}
