/*
 * Internal to the PostgreSQL backend, shared by store_pg.c (transactions,
 * batches, open, close, probe), store_pg_conn.c (connections, running
 * statements, errors), store_pg_sql.c (the statements), store_pg_schema.c,
 * store_pg_webhook.c (claims, limits, tokens, PINs), store_pg_outbox.c and
 * store_pg_user.c (users, purge). Nothing else includes this.
 */
#ifndef TWHOOKD_STORE_PG_H
#define TWHOOKD_STORE_PG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"
#include "log.h"
#include "store_backend.h"

/* Every statement, by id; store_pg.c holds their SQL in one table. Those
 * before PS_PROBE control transactions. */
enum pst {
	PS_BEGIN, PS_COMMIT, PS_ROLLBACK, PS_SAVEPOINT, PS_RELEASE, PS_ROLLBACK_TO,
	PS_PROBE,
	PS_USER_PUT, PS_USER_DELETE, PS_USER_LIST, PS_USER_GET,
	PS_CLAIM_INSERT, PS_CLAIM_GET, PS_CLAIM_TAKEOVER, PS_CLAIM_RELEASE,
	PS_CLAIM_FINISH, PS_LIMIT_LOCK, PS_LIMIT_COUNT, PS_LIMIT_UNDO,
	PS_TOKEN_INSERT, PS_TOKEN_GET, PS_TOKEN_SPEND,
	PS_PIN_PUT, PS_PIN_GET, PS_PIN_DELETE, PS_PIN_WRONG,
	PS_OUTBOX_INSERT, PS_OUTBOX_LEASE, PS_OUTBOX_SENT,
	PS_OUTBOX_RETRY, PS_OUTBOX_GIVE_UP, PS_OUTBOX_SID_GET,
	PS_OUTBOX_DELIVERY, PS_OUTBOX_DEPTH,
	PS_PURGE_WEBHOOKS, PS_PURGE_TOKENS, PS_PURGE_PINS,
	PS_PURGE_OUTBOX, PS_PURGE_LIMITS,
	PS_COUNT
};

#define PG_SCHEMA_VERSION	1	/* schema_version.version once migrated */
/* pg_advisory_xact_lock key the schema migration holds: "twhookd" in ASCII. */
#define PG_SCHEMA_LOCK_KEY	INT64_C(0x007477686f6f6b64)
#define PG_MAX_PARAMS		8	/* parameters of the longest statement */

/*
 * Bring the database to PG_SCHEMA_VERSION in one transaction holding the
 * schema advisory lock, so instances starting together migrate once. A
 * database written by a newer release is refused. 0, or -1 with err set.
 */
__attribute__((warn_unused_result))
int	pg_schema_migrate(PGconn *db, char *err, size_t errsz);
/*
 * What pg_schema_migrate would find, changing nothing: *missing when the
 * schema is absent or older (serve creates or migrates it), -1 when it is
 * newer than this build knows or cannot be read.
 */
__attribute__((warn_unused_result))
int	pg_schema_check(PGconn *db, bool *missing, char *err, size_t errsz);

/* Longest destination an outbox row may hold, its NUL included. */
#define PG_PHONE_SIZE	sizeof(((struct store_outbox_msg *)NULL)->to)

struct pg_store;

/* One thread's connection; only that thread uses it. */
struct pg_conn {
	PGconn		*db;		/* NULL while disconnected */
	bool		 prepared[PS_COUNT];
	struct pg_store	*store;
	struct pg_conn	*prev, *next;
	bool		 broken;	/* an error said the session is gone: reset */
	int64_t		 retry_at;	/* CLOCK_MONOTONIC ms of the next connect try */
	unsigned	 backoff_ms;	/* the wait after the next failed try */
	bool		 batch;		/* inside store_batch_begin .. store_batch_end */
	bool		 job;		/* in a batch: a job's savepoint is open */
	bool		 batch_failed;	/* the batch cannot commit as it is */
	uint64_t	 recovery;	/* the store's recovery count this backoff began at */
	char		 error[160];	/* the last error: SQLSTATE and primary message */
};

/* The SQL of statement id, and its name in log lines (store_pg_sql.c). */
struct pg_stmt {
	const char	*name;
	const char	*sql;
};
extern const struct pg_stmt pg_stmts[PS_COUNT];

/*
 * Lines a database that is down repeats for every webhook: each kind at
 * most once a second (log.h), a statement's failures by statement (kinds 0
 * to PS_COUNT - 1).
 */
enum pg_log {
	PG_LOG_CONNECT = PS_COUNT,	/* a thread cannot connect */
	PG_LOG_WAITING,			/* a call skipped: the reconnect backoff runs */
	PG_LOG_BATCH,			/* a batch rolled back whole */
	PG_LOG_TXN,			/* a transaction in the wrong state */
	PG_LOG_COUNT
};

#define pg_log(s, kind, ...)	log_throttled(&(s)->log[kind], LOG_LEVEL_ERROR, __VA_ARGS__)

/* The backend's state: what store.c holds, and what every connection shares. */
struct pg_store {
	struct store	 base;		/* first: what store.c holds */
	char		*dsn;		/* sodium_malloc: it may carry a password */
	bool		 dsn_timeout;	/* the DSN's options set statement_timeout */
	pthread_key_t	 key;		/* this thread's struct pg_conn */
	bool		 keyed;		/* key created */
	pthread_mutex_t	 lock;		/* guards conns */
	struct pg_conn	*conns;		/* every connection, for store_close */
	_Atomic int64_t	 committed_at;	/* CLOCK_MONOTONIC ms of the last commit */
	atomic_bool	 failing;	/* a write failed because the store cannot commit */
	_Atomic uint64_t recovery;	/* probes that committed after a failure */
	struct log_throttle log[PG_LOG_COUNT];	/* by enum pg_log */
};

/* CLOCK_MONOTONIC milliseconds. */
int64_t	pg_now_ms(void);
/* A write failed because the store cannot commit: store_probe fails until one commits. */
void	pg_mark_failing(struct pg_store *s);
/* This thread's struct pg_conn, made (not connected) on first use; NULL when out of memory. */
struct pg_conn	*pg_conn_attach(struct pg_store *s);
/* pthread key destructor: closes the connection of a thread that exits. */
void	pg_conn_thread_exit(void *arg);
/* Close c's session and free it; accepts NULL. */
void	pg_conn_free(struct pg_conn *c);
/* Connect c (twhookd's defaults, then the DSN's). 0, or -1 with c->error set. */
__attribute__((warn_unused_result))
int	pg_conn_connect(struct pg_conn *c);

/* This thread's connection, connected (reconnecting when due); NULL after logging. */
struct pg_conn	*pg_conn(struct store *s);

/*
 * Run statement id (prepared once per connection) with bound parameters;
 * fmt has a letter per parameter: 't' text (NULL binds NULL), 'i' int64_t,
 * 'h' a STORE_HASH_BYTES bytea. 0 with *res set (PQclear it) when res is
 * non-NULL, or -1 after logging once per call site and noting a lost
 * connection or a store that cannot commit.
 */
__attribute__((warn_unused_result))
int	pg_exec(struct pg_conn *c, enum pst id, PGresult **res, const char *fmt, ...);
/* Rows a command changed (PQcmdTuples), 0 when unsure. */
int64_t	pg_changed(PGresult *res);
/* Column col of row as an int64_t; 0 for NULL. */
int64_t	pg_int(const PGresult *res, int row, int col);
/* Append text column col of row to b; NULL appends nothing. -1 when out of memory (logged). */
__attribute__((warn_unused_result))
int	pg_text(struct pg_conn *c, enum pst id, const PGresult *res, int row, int col,
	    struct buf *b);
/* Is column col of row a bytea equal to want (sodium_memcmp)? */
bool	pg_hash_equal(const PGresult *res, int row, int col,
	    const uint8_t want[STORE_HASH_BYTES]);
/* Log a backend error of this statement once per call site; returns -1. */
int	pg_fail_msg(struct pg_conn *c, enum pst id, const char *msg);

/*
 * BEGIN (read committed), COMMIT, and a ROLLBACK that is safe on every
 * error path; inside a batch they open, release and roll back the job's
 * savepoint of the batch's transaction instead.
 */
__attribute__((warn_unused_result))
int	pg_begin(struct pg_conn *c);
__attribute__((warn_unused_result))
int	pg_commit(struct pg_conn *c);
void	pg_rollback(struct pg_conn *c);
/* Is a transaction of the caller's own open (in a batch: its savepoint)? */
bool	pg_in_txn(const struct pg_conn *c);

/* The operations the other files provide. */
int	pg_user_add(struct store *s, const char *phone, const char *user_id);
int	pg_user_add_many(struct store *s, const struct store_user *users, size_t n);
int	pg_user_remove(struct store *s, const char *phone, bool *removed);
int	pg_user_list(struct store *s,
	    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg);
int	pg_user_lookup(struct store *s, const char *phone, struct buf *user_id,
	    bool *found);
int	pg_purge(struct store *s, int64_t now, int64_t keep);
int	pg_claim(struct store *s, const char *route, const char *key, int64_t now,
	    int64_t stale_after, struct store_claim *out);
int	pg_claim_release(struct store *s, const char *route, const char *key);
int	pg_reset_finish(struct store *s, const char *route, const char *key,
	    int outcome, const uint8_t *token_hash, const char *user_id,
	    int64_t expires_at, int64_t now, const struct store_limit *limits,
	    size_t nlimits, int *limited_by, int64_t *token_id);
int	pg_pin_finish(struct store *s, const char *route, const char *key,
	    int outcome, const struct store_pin *pin, int64_t now,
	    const struct store_limit *limits, size_t nlimits, int *limited_by);
int	pg_pin_verify(struct store *s, const char *phone,
	    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
	    enum store_pin_check *result, struct buf *user_id);
int	pg_token_redeem(struct store *s, int64_t id,
	    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
	    enum store_redeem *result, struct buf *user_id);
int	pg_outbox_lease(struct store *s, int64_t now, int64_t lease,
	    struct store_outbox_msg *out, size_t max, size_t *n);
int	pg_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now);
int	pg_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
	    long http_status, int error_code);
int	pg_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
	    int error_code, int64_t now);
int	pg_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
	    int error_code, bool *found);
int	pg_outbox_depth(struct store *s, int64_t *depth);

#endif
