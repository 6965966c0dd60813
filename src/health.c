/*
 * The readiness thread. A probe that fails turns the flag off and is logged
 * once with its reason; while it keeps failing the store's own error lines
 * say more. The first probe that succeeds again turns it back on.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "clock.h"
#include "defaults.h"
#include "health.h"
#include "log.h"
#include "store.h"

struct health {
	struct store	*store;
	atomic_bool	*ready;
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	bool		 stopping;	/* under mu */
	bool		 started;	/* under mu: the first probe is done */
};

static void
probe(struct health *h)
{
	char	err[512];
	bool	was = atomic_load(h->ready);

	if (store_probe(h->store, err, sizeof(err)) == 0) {
		if (!was)
			log_info("store: commits again: ready");
		atomic_store(h->ready, true);
		return;
	}
	if (was)
		log_error("store: %s: not ready (/readyz and webhooks answer 503)", err);
	atomic_store(h->ready, false);
}

static void *
health_main(void *arg)
{
	struct health	*h = arg;
	struct timespec	 until;

	/* First, so this thread's connection is open before anything can move the file. */
	probe(h);
	pthread_mutex_lock(&h->mu);
	h->started = true;
	pthread_cond_broadcast(&h->cv);
	while (!h->stopping) {
		until = clock_deadline(HEALTH_INTERVAL_MS);
		if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0 && h->stopping)
			break;
		pthread_mutex_unlock(&h->mu);
		probe(h);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int
health_start(struct store *store, atomic_bool *ready, struct health **out)
{
	struct health *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_error("health: out of memory");
		return -1;
	}
	h->store = store;
	h->ready = ready;
	pthread_mutex_init(&h->mu, NULL);
	if (clock_cond_init(&h->cv) == -1)
		goto fail;
	atomic_store(ready, true);	/* so that a first failure is logged */
	if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		goto fail;
	}
	pthread_mutex_lock(&h->mu);
	while (!h->started)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	*out = h;
	return 0;
fail:
	log_error("health: cannot start the readiness thread");
	pthread_mutex_destroy(&h->mu);
	free(h);
	return -1;
}

void
health_stop(struct health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
