/*
 * store.h on SQLite, the WAL checkpointer: one thread with a connection of its
 * own copies the WAL back into the database file, so no request thread ever
 * waits for a checkpoint's fsync. Request connections run with
 * wal_autocheckpoint off and a WAL hook that wakes this thread.
 *
 * The bounds in store_sqlite.h come from bench/run, everything on one core:
 * rounds every 1000 frames cost ~8% more CPU per request than every 4000,
 * and every 12000 cost this thread a third less than every 4000 (7.6 vs
 * 11.5 us a webhook, +7% webhooks per CPU-second) once commits were
 * batched: more copies of the same hot pages, more fsyncs. 24000 saved
 * little more and made the batch thread slower. Starting the WAL over every
 * 16 or 64 MiB measured the same, and a WAL left to grow cost ~30%
 * (extending the file). Holding writers off is bounded by the disk's fsync:
 * 20 to 36 ms there while the database file's sync covered every page the
 * PASSIVE rounds had copied, 2 to 18 ms since that sync runs before the
 * gate is taken; starting over every 128 MiB rather than 64 halves how
 * often webhooks meet that wait (p99 19 -> 13-15 ms at 64 connections). A
 * lower CPU priority for this thread starves it under saturation, the WAL
 * then grows, and the eventual restart stalls longer.
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
#include "log.h"
#include "store_sqlite.h"

struct sq_ckpt {
	sqlite3		*db;
	pthread_mutex_t	*gate;		/* the store's write gate */
	pthread_t	 thread;
	pthread_mutex_t	 lock;		/* guards wake and stop */
	pthread_cond_t	 cond;
	bool		 wake, stop;
	atomic_bool	 pending;	/* a wake is on its way: hooks skip the lock */
	atomic_int	 seen;		/* WAL frames the last round copied up to */
	atomic_int	 frames;	/* WAL frames after the latest commit */
	int		 last_rc;	/* of the previous round, to log changes once */
	int64_t		 frame_bytes;	/* a WAL frame: 24-byte header + one page */
};

int
sq_ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sq_ckpt	*k = arg;
	int		 seen;

	(void)db;
	(void)name;
	if (k == NULL)
		return SQLITE_OK;
	atomic_store_explicit(&k->frames, frames, memory_order_relaxed);
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
 * fdatasync the database file through SQLite's own handle: a second fd of
 * ours would, once closed, drop this process's POSIX locks on the file.
 */
static int
db_sync(struct sq_ckpt *k)
{
	sqlite3_file	*f = NULL;
	int		 rc;

	rc = sqlite3_file_control(k->db, "main", SQLITE_FCNTL_FILE_POINTER, &f);
	if (rc == SQLITE_OK && (f == NULL || f->pMethods == NULL))
		rc = SQLITE_MISUSE;
	return rc == SQLITE_OK ? f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) : rc;
}

/*
 * PASSIVE copies what it can without holding writers off. Under steady load
 * a writer never finds the WAL fully copied, so it never starts the WAL
 * over: once it is past SQ_CKPT_RESTART_BYTES, PASSIVE runs again until
 * little is left that it has not copied, then a RESTART under the write gate
 * copies that little, syncs, and waits out readers: writers are held off for
 * about two small fsyncs, and the next commit writes from the start of the file.
 */
static void
ckpt_round(struct sq_ckpt *k)
{
	int	rc, nlog = 0, ncopied = 0;

	for (int i = 0;; i++) {
		rc = sqlite3_wal_checkpoint_v2(k->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
		ckpt_note(k, "passive", rc);
		atomic_store_explicit(&k->seen, nlog > 0 ? nlog : 0,
		    memory_order_relaxed);
		if (rc != SQLITE_OK ||
		    (int64_t)nlog * k->frame_bytes < SQ_CKPT_RESTART_BYTES)
			return;
		/* Commits made while it copied: catch up on them first. */
		if (atomic_load_explicit(&k->frames, memory_order_relaxed) -
		    ncopied <= SQ_CKPT_RESTART_LAG || i == SQ_CKPT_CATCHUP_ROUNDS)
			break;
	}
	/*
	 * PASSIVE never syncs the database file until it copies the whole WAL,
	 * which only happens below: sync what the rounds copied now, so the
	 * writers held off wait for the last few frames' sync, not for all.
	 */
	rc = db_sync(k);
	ckpt_note(k, "sync", rc);
	if (rc != SQLITE_OK)
		return;
	/* And copy what was committed meanwhile, still without the gate. */
	rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	ckpt_note(k, "passive", rc);
	if (sq_gate_lock(k->gate, SQ_CKPT_WAIT_MS) == -1)
		return;		/* a long transaction: next round */
	rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_RESTART,
	    NULL, NULL);
	pthread_mutex_unlock(k->gate);
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

/* Bytes in a WAL frame: a 24-byte header and a page of the database's size. */
static int
frame_bytes(sqlite3 *db, int64_t *out)
{
	sqlite3_stmt	*st = NULL;
	int		 rc = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0) + 24;
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int
sq_ckpt_start(const char *path, pthread_mutex_t *gate, struct sq_ckpt **out,
    char *err, size_t errsz)
{
	struct sq_ckpt		*k;
	sigset_t		 all, old;
	int			 rc;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	k->gate = gate;
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
	if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(k->db, SQ_CKPT_WAIT_MS) != SQLITE_OK ||
	    sqlite3_exec(k->db, sq_conn_pragmas, NULL, NULL, NULL) != SQLITE_OK ||
	    frame_bytes(k->db, &k->frame_bytes) == -1) {
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
