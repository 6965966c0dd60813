/*
 * store.h on PostgreSQL, for several instances sharing one database: one
 * connection per thread (store_pg_conn.c), statements prepared once per
 * connection and run with bound parameters only (store_pg_sql.c), read
 * committed transactions. This file: transactions and batches, open,
 * close and probe. No log line carries the DSN, a phone, token, PIN, hash
 * or message body.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "defaults.h"
#include "log.h"
#include "store_backend.h"
#include "store_pg.h"

/*
 * store_probe: with no failure since the last good probe, a commit within
 * PROBE_IDLE_MS proves enough, else it commits one small row. After a
 * failure that row must commit too. SQLite pads that recovery write to a
 * batch's size because a small write can fit in pages its file already
 * has while a batch's cannot; PostgreSQL writes every commit to its WAL,
 * whose segments it allocates whole ahead of need, and a table that cannot
 * grow fails the webhook's own write, which marks the store failing again:
 * a plain probe commit is the same test a webhook's commit is.
 */
#define PROBE_IDLE_MS		5000

static struct pg_store *
pg_of(struct store *s)
{
	return (struct pg_store *)(void *)s;
}

static bool
txn_open(const struct pg_conn *c)
{
	PGTransactionStatusType	t;

	if (c->db == NULL)
		return false;
	t = PQtransactionStatus(c->db);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

bool
pg_in_txn(const struct pg_conn *c)
{
	return c->batch ? c->job : txn_open(c);
}

int
pg_begin(struct pg_conn *c)
{
	if (!c->batch)
		return pg_exec(c, PS_BEGIN, NULL, "");
	if (c->job || c->db == NULL || PQtransactionStatus(c->db) != PQTRANS_INTRANS) {
		c->batch_failed |= !c->job;
		pg_log(c->store, PG_LOG_TXN, "store: begin: the batch's transaction is %s",
		    c->job ? "busy with another job" : "gone");
		return -1;
	}
	if (pg_exec(c, PS_SAVEPOINT, NULL, "") == -1) {
		c->batch_failed = true;
		return -1;
	}
	c->job = true;
	return 0;
}

int
pg_commit(struct pg_conn *c)
{
	PGresult	*r;
	bool		 ok;

	if (c->batch) {
		/* Durable only when store_batch_end commits the batch. */
		if (pg_exec(c, PS_RELEASE, NULL, "") == -1) {
			pg_rollback(c);
			return -1;
		}
		c->job = false;
		return 0;
	}
	/* COMMIT of a failed transaction answers ROLLBACK, not an error. */
	if (c->db == NULL || PQtransactionStatus(c->db) != PQTRANS_INTRANS)
		return pg_fail_msg(c, PS_COMMIT, "the transaction had failed");
	if (pg_exec(c, PS_COMMIT, &r, "") == -1)
		return -1;
	ok = strcmp(PQcmdStatus(r), "COMMIT") == 0;
	PQclear(r);
	if (!ok)
		return pg_fail_msg(c, PS_COMMIT, "the transaction was rolled back");
	atomic_store_explicit(&c->store->committed_at, pg_now_ms(), memory_order_relaxed);
	return 0;
}

void
pg_rollback(struct pg_conn *c)
{
	if (c->batch) {
		/*
		 * Undo this job only; the batch's other jobs stand. When the undo
		 * fails, the job's writes would be committed with them: the whole
		 * batch fails instead.
		 */
		if (c->job && (!txn_open(c) ||
		    pg_exec(c, PS_ROLLBACK_TO, NULL, "") == -1 ||
		    pg_exec(c, PS_RELEASE, NULL, "") == -1))
			c->batch_failed = true;
		c->job = false;
		return;
	}
	/* A transaction that will not end here ends with its session. */
	if (txn_open(c) && pg_exec(c, PS_ROLLBACK, NULL, "") == -1)
		c->broken = true;
}

/*
 * Group commit: one transaction around many webhooks, each in a savepoint,
 * so their records cost one WAL flush. Row locks taken by a job (its claim,
 * its limit windows) are held until the batch commits; a deadlock with
 * another instance's batch fails the job it hits (40P01), not the batch.
 */
static int
pgs_batch_begin(struct store *s)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	if (c->batch || pg_in_txn(c)) {
		pg_log(c->store, PG_LOG_TXN, "store: batch: a transaction is already"
		    " open on this thread");
		return -1;
	}
	if (pg_begin(c) == -1)
		return -1;
	c->batch = true;
	c->job = false;
	c->batch_failed = false;
	return 0;
}

static int
pgs_batch_end(struct store *s)
{
	struct pg_conn	*c = pg_conn_attach(pg_of(s));

	if (c == NULL || !c->batch)
		return -1;
	if (c->job) {
		pg_log(c->store, PG_LOG_TXN, "store: batch: a job left its savepoint"
		    " open; rolled back");
		pg_rollback(c);
	}
	c->batch = false;
	if (c->batch_failed || c->broken || c->db == NULL ||
	    PQtransactionStatus(c->db) != PQTRANS_INTRANS) {
		pg_log(c->store, PG_LOG_BATCH, "store: batch: rolled back whole: %s",
		    c->error[0] != '\0' ? c->error : "its transaction failed");
		pg_rollback(c);
		return -1;
	}
	if (pg_commit(c) == -1) {
		pg_rollback(c);
		return -1;
	}
	return 0;
}

/* Read the DSN's own settings; never echo it (it may carry a password). */
static int
dsn_inspect(struct pg_store *s, char *err, size_t errsz)
{
	PQconninfoOption	*opts, *o;
	char			*msg = NULL;

	if ((opts = PQconninfoParse(s->dsn, &msg)) == NULL) {
		/* libpq's message may quote the string: say only where it failed. */
		PQfreemem(msg);
		snprintf(err, errsz, "[store] dsn is not a valid libpq connection"
		    " string or URI");
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val != NULL &&
		    strstr(o->val, "statement_timeout") != NULL)
			s->dsn_timeout = true;
	PQconninfoFree(opts);
	return 0;
}

static void	pgs_close(struct store *base);
static const struct store_ops pg_ops;

/*
 * A store for cfg with this thread's connection open; migrate: bring the
 * schema up to date, else only look at it (*missing as pg_schema_check).
 */
static int
pg_store_connect(const struct store_config *cfg, bool migrate, bool *missing,
    struct pg_store **out, char *err, size_t errsz)
{
	struct pg_store	*s;
	struct pg_conn	*c;
	size_t		 n;
	char		 msg[256] = "out of memory";
	int		 rc = -1;

	*out = NULL;
	if (cfg->dsn == NULL || cfg->dsn[0] == '\0') {
		snprintf(err, errsz, "postgresql: no [store] dsn or dsn_file");
		return -1;
	}
	if (sodium_init() < 0 || (s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "postgresql: out of memory");
		return -1;
	}
	s->base.ops = &pg_ops;
	pthread_mutex_init(&s->lock, NULL);
	for (size_t i = 0; i < PG_LOG_COUNT; i++)
		s->log[i] = (struct log_throttle)LOG_THROTTLE_INIT;
	n = strlen(cfg->dsn);
	if ((s->dsn = sodium_malloc(n + 1)) == NULL ||
	    pthread_key_create(&s->key, pg_conn_thread_exit) != 0)
		goto done;
	memcpy(s->dsn, cfg->dsn, n + 1);
	s->keyed = true;
	if (dsn_inspect(s, msg, sizeof(msg)) == -1)
		goto done;
	/* This thread's connection, which then stays attached. */
	if ((c = pg_conn_attach(s)) == NULL)
		goto done;
	if (pg_conn_connect(c) == -1) {
		snprintf(msg, sizeof(msg), "cannot connect: %s", c->error);
		goto done;
	}
	if ((migrate ? pg_schema_migrate(c->db, msg, sizeof(msg)) :
	    pg_schema_check(c->db, missing, msg, sizeof(msg))) == -1)
		goto done;
	*out = s;
	rc = 0;
done:
	if (rc == -1) {
		snprintf(err, errsz, "postgresql: %s", msg);
		pgs_close(&s->base);
	}
	return rc;
}

int
store_pg_open(const struct store_config *cfg, struct store **out, char *err,
    size_t errsz)
{
	struct pg_store *s;

	*out = NULL;
	if (pg_store_connect(cfg, true, NULL, &s, err, errsz) == -1)
		return -1;
	*out = &s->base;
	return 0;
}

int
store_pg_check(const struct store_config *cfg, bool *missing, char *err, size_t errsz)
{
	struct pg_store *s;

	if (pg_store_connect(cfg, false, missing, &s, err, errsz) == -1)
		return -1;
	pgs_close(&s->base);
	return 0;
}

/*
 * Closes every connection. The caller must have stopped (or joined) every
 * other thread that used s, as with the SQLite backend.
 */
static void
pgs_close(struct store *base)
{
	struct pg_store	*s = pg_of(base);
	struct pg_conn	*c, *next;

	if (s == NULL)
		return;
	if (s->keyed)
		pthread_key_delete(s->key);
	pthread_mutex_lock(&s->lock);
	c = s->conns;
	s->conns = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; c != NULL; c = next) {
		next = c->next;
		pg_conn_free(c);
	}
	pthread_mutex_destroy(&s->lock);
	if (s->dsn != NULL) {
		sodium_memzero(s->dsn, strlen(s->dsn));
		sodium_free(s->dsn);
	}
	free(s);
}

static int
pgs_probe(struct store *base, char *err, size_t errsz)
{
	struct pg_store	*s = pg_of(base);
	struct pg_conn	*c;
	bool		 failing;

	if ((c = pg_conn(base)) == NULL) {
		c = pg_conn_attach(s);
		snprintf(err, errsz, "cannot connect to the database: %s",
		    c != NULL && c->error[0] != '\0' ? c->error : "out of memory");
		return -1;
	}
	failing = atomic_load_explicit(&s->failing, memory_order_relaxed);
	if (!failing && pg_now_ms() - atomic_load_explicit(&s->committed_at,
	    memory_order_relaxed) < PROBE_IDLE_MS)
		return 0;
	if (pg_begin(c) == -1 || pg_exec(c, PS_PROBE, NULL, "i",
	    (int64_t)time(NULL)) == -1 || pg_commit(c) == -1) {
		snprintf(err, errsz, "cannot commit: %s", c->error);
		pg_rollback(c);
		pg_mark_failing(s);
		return -1;
	}
	if (failing) {
		atomic_store_explicit(&s->failing, false, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->recovery, 1, memory_order_relaxed);
	}
	return 0;
}

static const struct store_ops pg_ops = {
	.driver = "postgresql",
	.close = pgs_close,
	.probe = pgs_probe,
	.user_add = pg_user_add,
	.user_add_many = pg_user_add_many,
	.user_remove = pg_user_remove,
	.user_list = pg_user_list,
	.user_lookup = pg_user_lookup,
	.batch_begin = pgs_batch_begin,
	.batch_end = pgs_batch_end,
	.claim = pg_claim,
	.claim_release = pg_claim_release,
	.reset_finish = pg_reset_finish,
	.pin_finish = pg_pin_finish,
	.pin_verify = pg_pin_verify,
	.outbox_lease = pg_outbox_lease,
	.outbox_sent = pg_outbox_sent,
	.outbox_retry = pg_outbox_retry,
	.outbox_give_up = pg_outbox_give_up,
	.outbox_delivery = pg_outbox_delivery,
	.outbox_depth = pg_outbox_depth,
	.token_redeem = pg_token_redeem,
	.purge = pg_purge,
};
