/*
 * store.h on SQLite, the WAL checkpointer: one thread with a connection of its
 * own copies the WAL back into the database file, so no request thread ever
 * waits for a checkpoint's fsync, and starts the WAL over often enough that
 * it stays small (store_sqlite.h gives the bounds). Request connections run
 * with wal_autocheckpoint off and a WAL hook that wakes this thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "clock.h"
#include "defaults.h"
#include "log.h"
#include "store_sqlite.h"

struct sq_ckpt {
	sqlite3		*db;
	pthread_t	 thread;
	pthread_mutex_t	 lock;		/* guards wake and stop */
	pthread_cond_t	 cond;
	bool		 wake, stop;
	atomic_bool	 pending;	/* a wake is on its way: hooks skip the lock */
	atomic_int	 seen;		/* WAL frames the last round copied up to */
	atomic_int	 frames;	/* WAL frames after the latest commit */
	atomic_int	 forced_at;	/* WAL frames when a committer last tried a restart */
	int		 last_rc;	/* of the previous round, to log changes once */
};

/*
 * Under steady load this thread's RESTART may never find the write lock
 * free (SQLite's lock has no queue, and the batch thread commits back to
 * back): past SQ_WAL_HARD_FRAMES the committer itself starts the WAL over,
 * right after its commit, waiting at most SQ_CKPT_WAIT_MS for readers, and
 * tries again only SQ_WAL_RETRY_FRAMES later if it could not. SQLite's own
 * autocheckpoint checkpoints from this hook the same way.
 */
static void
restart_here(struct sq_ckpt *k, sqlite3 *db, int frames)
{
	int forced = atomic_load_explicit(&k->forced_at, memory_order_relaxed);

	if (frames < SQ_WAL_HARD_FRAMES || (forced != 0 && frames < forced + SQ_WAL_RETRY_FRAMES))
		return;
	atomic_store_explicit(&k->forced_at, frames, memory_order_relaxed);
	(void)sqlite3_busy_timeout(db, SQ_CKPT_WAIT_MS);
	if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL) ==
	    SQLITE_OK) {
		atomic_store_explicit(&k->seen, 0, memory_order_relaxed);
		atomic_store_explicit(&k->forced_at, 0, memory_order_relaxed);
	}
	(void)sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
}

int
sq_ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sq_ckpt	*k = arg;
	int		 seen;

	(void)name;
	if (k == NULL)
		return SQLITE_OK;
	atomic_store_explicit(&k->frames, frames, memory_order_relaxed);
	restart_here(k, db, frames);
	/*
	 * frames counts the whole WAL, copied or not; under load it does not
	 * start over, so count from the last round (or from 0 when it did).
	 */
	seen = atomic_load_explicit(&k->seen, memory_order_relaxed);
	if (frames >= seen)
		frames -= seen;
	if (frames < SQ_CKPT_FRAMES ||
	    atomic_exchange_explicit(&k->pending, true, memory_order_acq_rel))
		return SQLITE_OK;
	pthread_mutex_lock(&k->lock);
	k->wake = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	return SQLITE_OK;	/* the commit itself succeeded whatever happens here */
}

/* Log a failing checkpoint once, and its recovery; SQLITE_BUSY is routine. */
static void
ckpt_note(struct sq_ckpt *k, const char *mode, int rc)
{
	if (rc == SQLITE_BUSY)
		rc = SQLITE_OK;
	if (rc != SQLITE_OK && k->last_rc == SQLITE_OK)
		log_error("store: checkpoint (%s): %s", mode, sqlite3_errmsg(k->db));
	else if (rc == SQLITE_OK && k->last_rc != SQLITE_OK)
		log_info("store: checkpoints work again");
	k->last_rc = rc;
}

/*
 * PASSIVE copies what it can without holding writers off. Under steady load
 * a writer never finds the WAL fully copied, so it never starts the WAL
 * over: past SQ_WAL_RESTART_FRAMES a RESTART copies what PASSIVE left (a
 * little), syncs the database file and waits out readers, writers held off
 * meanwhile (each wait bounded by SQ_CKPT_WAIT_MS: busy, it waits for the
 * next round); the next commit then writes from the start of the file.
 */
static void
ckpt_round(struct sq_ckpt *k)
{
	int	rc, nlog = 0;

	rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, NULL);
	ckpt_note(k, "passive", rc);
	atomic_store_explicit(&k->seen, nlog > 0 ? nlog : 0, memory_order_relaxed);
	if (rc != SQLITE_OK || nlog < SQ_WAL_RESTART_FRAMES)
		return;
	rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	ckpt_note(k, "restart", rc);
	if (rc == SQLITE_OK)
		atomic_store_explicit(&k->seen, 0, memory_order_relaxed);
}

static void *
ckpt_main(void *arg)
{
	struct sq_ckpt	*k = arg;
	struct timespec	 until;

	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		if (!k->wake) {
			until = clock_deadline(SQ_CKPT_INTERVAL_MS);
			(void)pthread_cond_timedwait(&k->cond, &k->lock, &until);
			if (k->stop)
				break;
		}
		k->wake = false;
		pthread_mutex_unlock(&k->lock);
		/* Cleared before the round: frames committed during it wake us again. */
		atomic_store_explicit(&k->pending, false, memory_order_release);
		ckpt_round(k);
		pthread_mutex_lock(&k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

static void
ckpt_free(struct sq_ckpt *k)
{
	sqlite3_close(k->db);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int
sq_ckpt_start(const char *path, struct sq_ckpt **out, char *err, size_t errsz)
{
	struct sq_ckpt		*k;
	sigset_t		 all, old;
	int			 rc;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	pthread_mutex_init(&k->lock, NULL);
	if (clock_cond_init(&k->cond) == -1) {
		pthread_mutex_destroy(&k->lock);
		free(k);
		snprintf(err, errsz, "checkpointer: cannot set up its condition variable");
		return -1;
	}
	atomic_init(&k->pending, false);
	atomic_init(&k->seen, 0);
	atomic_init(&k->frames, 0);
	atomic_init(&k->forced_at, 0);
	if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(k->db, SQ_CKPT_WAIT_MS) != SQLITE_OK ||
	    sqlite3_exec(k->db, sq_conn_pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "checkpointer: %s", k->db != NULL ?
		    sqlite3_errmsg(k->db) : "out of memory");
		ckpt_free(k);
		return -1;
	}
	/* Signals belong to the threads that wait for them, never to this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&k->thread, NULL, ckpt_main, k);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		(void)pthread_setname_np(k->thread, "checkpoint");
	if (rc != 0) {
		snprintf(err, errsz, "checkpointer: %s", strerror(rc));
		ckpt_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

void
sq_ckpt_stop(struct sq_ckpt *k)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	ckpt_free(k);
}
