/*
 * Open connections: counts per address and in all, and deadlines. The reaper
 * cuts a connection past its deadline with shutdown(2) on a duplicate of its
 * socket: the HTTP library then reads end-of-file and closes it itself, and
 * the duplicate keeps the socket ours until conn_table_remove, so a number
 * the library closed and the kernel reused is never shut down by mistake.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "conn_table.h"
#include "log.h"
#include "metrics.h"

#define REAPER_TICK_MS	250	/* deadline granularity */
#define MIN_BUCKETS	64u
#define MAX_BUCKETS	65536u

/* Connections from one address (an IPv6 /64: one subscriber's whole prefix). */
struct addr_count {
	struct addr_count	*next;
	uint8_t			 key[16];
	unsigned		 n;
};

struct conn {
	struct conn		*prev, *next;
	struct addr_count	*addr;
	int			 fd;		/* our duplicate of the socket */
	_Atomic int64_t		 deadline;	/* CLOCK_MONOTONIC ms, 0 = none */
	atomic_bool		 cut;		/* the reaper shut it down */
};

struct conn_table {
	char			 name[16];
	unsigned		 max_total, max_per_ip, deadline_ms;
	pthread_mutex_t		 mu;		/* everything below but the stats */
	pthread_cond_t		 cv;
	pthread_t		 reaper;
	bool			 stopping;
	struct conn		*head;
	unsigned		 open;
	struct addr_count	**buckets;
	size_t			 nbuckets;	/* a power of two */
	uint8_t			 hash_key[crypto_shorthash_KEYBYTES];
	/* One line a second at most for each, however many connections. */
	struct log_throttle	 full_log, per_ip_log, cut_log;
	struct metrics		*metrics;	/* or NULL */
};

/* IPv4 as ::ffff:a.b.c.d, so a dual-stack socket counts it once; IPv6 by /64. */
static bool
addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

		memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
		return true;
	}
	return false;
}

/* The count for key; with create, a new zero count when there is none. */
static struct addr_count **
addr_slot(struct conn_table *t, const uint8_t key[16])
{
	uint8_t			 h[crypto_shorthash_BYTES];
	uint64_t		 v;
	struct addr_count	**p;

	/* Keyed: peers cannot choose addresses that pile into one bucket. */
	crypto_shorthash(h, key, 16, t->hash_key);
	memcpy(&v, h, sizeof(v));
	for (p = &t->buckets[v & (t->nbuckets - 1)]; *p != NULL; p = &(*p)->next)
		if (memcmp((*p)->key, key, 16) == 0)
			break;
	return p;
}

static void
refused(struct conn_table *t, enum conn_admit why)
{
	if (t->metrics != NULL)
		metrics_inc(t->metrics, why == CONN_ADMIT_FULL ?
		    METRIC_CONN_REFUSED_FULL : METRIC_CONN_REFUSED_PER_IP);
	if (why == CONN_ADMIT_FULL)
		log_throttled(&t->full_log, LOG_LEVEL_WARN, "%s: max_connections (%u)"
		    " reached: refusing new connections", t->name, t->max_total);
	else
		log_throttled(&t->per_ip_log, LOG_LEVEL_WARN, "%s: max_connections_per_ip"
		    " (%u) reached by a peer: refusing its new connections", t->name,
		    t->max_per_ip);
}

enum conn_admit
conn_table_admit(struct conn_table *t, const struct sockaddr *addr, bool exempt)
{
	struct addr_count	**slot;
	uint8_t			 key[16];
	enum conn_admit		 v = CONN_ADMIT_OK;

	pthread_mutex_lock(&t->mu);
	if (t->open >= t->max_total)
		v = CONN_ADMIT_FULL;
	else if (!exempt && t->max_per_ip > 0 && addr_key(addr, key) &&
	    *(slot = addr_slot(t, key)) != NULL && (*slot)->n >= t->max_per_ip)
		v = CONN_ADMIT_PER_IP;
	if (v != CONN_ADMIT_OK)
		refused(t, v);
	pthread_mutex_unlock(&t->mu);
	return v;
}

struct conn *
conn_table_add(struct conn_table *t, const struct sockaddr *addr, int fd)
{
	struct conn		*c;
	struct addr_count	**slot;
	uint8_t			 key[16];

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(c);
		return NULL;
	}
	atomic_init(&c->deadline, clock_now_ms() + t->deadline_ms);
	atomic_init(&c->cut, false);
	pthread_mutex_lock(&t->mu);
	if (addr_key(addr, key)) {
		if (*(slot = addr_slot(t, key)) == NULL &&
		    (*slot = calloc(1, sizeof(**slot))) != NULL)
			memcpy((*slot)->key, key, 16);
		if ((c->addr = *slot) != NULL)
			c->addr->n++;
	}
	if ((c->next = t->head) != NULL)
		t->head->prev = c;
	t->head = c;
	t->open++;
	pthread_mutex_unlock(&t->mu);
	return c;
}

void
conn_table_remove(struct conn_table *t, struct conn *c)
{
	struct addr_count **slot;

	if (c == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		t->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	t->open--;
	if (c->addr != NULL && --c->addr->n == 0) {
		slot = addr_slot(t, c->addr->key);
		*slot = c->addr->next;
		free(c->addr);
	}
	pthread_mutex_unlock(&t->mu);
	close(c->fd);
	free(c);
}

void
conn_request_complete(struct conn *c)
{
	if (c != NULL)
		atomic_store_explicit(&c->deadline, 0, memory_order_relaxed);
}

void
conn_answer_sent(struct conn_table *t, struct conn *c)
{
	if (c != NULL)
		atomic_store_explicit(&c->deadline, clock_now_ms() + t->deadline_ms,
		    memory_order_relaxed);
}

bool
conn_was_cut(const struct conn *c)
{
	return c != NULL && atomic_load_explicit(&c->cut, memory_order_relaxed);
}

/* Cut what is overdue; the library closes each one when it reads EOF. */
static unsigned
reap(struct conn_table *t, int64_t now)
{
	unsigned n = 0;

	for (struct conn *c = t->head; c != NULL; c = c->next) {
		int64_t d = atomic_load_explicit(&c->deadline, memory_order_relaxed);

		if (d == 0 || d > now)
			continue;
		/* Only once; a failure means the peer already left. */
		atomic_store_explicit(&c->deadline, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cut, true, memory_order_relaxed);
		(void)shutdown(c->fd, SHUT_RDWR);
		if (t->metrics != NULL)
			metrics_inc(t->metrics, METRIC_CONN_DEADLINE);
		n++;
	}
	return n;
}

static void *
reaper_main(void *arg)
{
	struct conn_table	*t = arg;
	struct timespec		 until;
	unsigned		 cut;

	pthread_mutex_lock(&t->mu);
	while (!t->stopping) {
		until = clock_deadline(REAPER_TICK_MS);
		(void)pthread_cond_timedwait(&t->cv, &t->mu, &until);
		if ((cut = reap(t, clock_now_ms())) > 0)
			log_throttled(&t->cut_log, LOG_LEVEL_WARN, "%s: %u connection(s)"
			    " closed: no whole request within request_timeout (%ums)",
			    t->name, cut, t->deadline_ms);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int
conn_table_new(const char *name, unsigned max_total, unsigned max_per_ip,
    unsigned deadline_ms, struct metrics *metrics, struct conn_table **out)
{
	struct conn_table	*t;
	size_t			 n = MIN_BUCKETS;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	while (n < max_total && n < MAX_BUCKETS)
		n *= 2;
	if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL) {
		free(t);
		return -1;
	}
	t->nbuckets = n;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->max_total = max_total;
	t->max_per_ip = max_per_ip;
	t->deadline_ms = deadline_ms;
	t->metrics = metrics;
	t->full_log = t->per_ip_log = t->cut_log = (struct log_throttle)LOG_THROTTLE_INIT;
	randombytes_buf(t->hash_key, sizeof(t->hash_key));
	pthread_mutex_init(&t->mu, NULL);
	if (clock_cond_init(&t->cv) == -1) {
		log_warnx("%s: cannot create the connection reaper's condition variable", name);
		goto fail;
	}
	if (pthread_create(&t->reaper, NULL, reaper_main, t) != 0) {
		log_warnx("%s: cannot start the connection reaper thread", name);
		pthread_cond_destroy(&t->cv);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	pthread_mutex_destroy(&t->mu);
	free(t->buckets);
	free(t);
	return -1;
}

void
conn_table_free(struct conn_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->reaper, NULL);
	/* The library reported every close before it stopped; anything left is freed. */
	while (t->head != NULL)
		conn_table_remove(t, t->head);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t->buckets);
	free(t);
}
