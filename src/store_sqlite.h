/*
 * Internal to the SQLite backend, shared by store_sqlite.c (connections,
 * statements, transactions, users, purge), store_sqlite_schema.c,
 * store_sqlite_webhook.c (claims, limits, tokens, PINs),
 * store_sqlite_outbox.c and store_sqlite_checkpoint.c (the WAL
 * checkpointer). Nothing else includes this.
 */
#ifndef TWHOOKD_STORE_SQLITE_H
#define TWHOOKD_STORE_SQLITE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "buf.h"
#include "store.h"

/* Every statement, by id; store_sqlite.c holds their SQL in one table. */
enum st {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO,
	ST_PROBE,
	ST_USER_PUT, ST_USER_DELETE, ST_USER_LIST, ST_USER_GET,
	ST_CLAIM_INSERT, ST_CLAIM_PUT_DONE, ST_CLAIM_GET, ST_CLAIM_TAKEOVER, ST_CLAIM_RELEASE,
	ST_CLAIM_FINISH, ST_LIMIT_CHECK, ST_LIMIT_COUNT,
	ST_TOKEN_INSERT, ST_TOKEN_GET, ST_TOKEN_SPEND,
	ST_PIN_PUT, ST_PIN_GET, ST_PIN_DELETE, ST_PIN_WRONG,
	ST_OUTBOX_INSERT, ST_OUTBOX_LEASE, ST_OUTBOX_SENT,
	ST_OUTBOX_RETRY, ST_OUTBOX_GIVE_UP, ST_OUTBOX_SID_GET,
	ST_OUTBOX_DELIVERY, ST_OUTBOX_DEPTH,
	ST_PURGE_WEBHOOKS, ST_PURGE_TOKENS, ST_PURGE_PINS,
	ST_PURGE_OUTBOX, ST_PURGE_LIMITS,
	ST_COUNT
};

/*
 * WAL checkpoints run on a thread of their own (store_sqlite_checkpoint.c),
 * woken by a commit that leaves SQ_CKPT_FRAMES frames not yet copied, or
 * every SQ_CKPT_INTERVAL_MS. Each round copies what it can without holding
 * writers off (PASSIVE); once the WAL holds SQ_WAL_RESTART_FRAMES frames it
 * then copies the rest with writers held off and waits out readers
 * (RESTART, at most SQ_CKPT_WAIT_MS for each), so the next commit writes
 * the WAL from its start and journal_size_limit trims the file back to
 * SQ_WAL_LIMIT_BYTES. Should load keep the write lock from this thread, the
 * committer that takes the WAL past SQ_WAL_HARD_FRAMES starts it over
 * itself. With 4 KiB pages the WAL stays under about 16 MiB, beyond that
 * only while a reader holds a restart off.
 */
#define SQ_CKPT_FRAMES		1000
#define SQ_CKPT_INTERVAL_MS	1000
#define SQ_WAL_RESTART_FRAMES	2000
#define SQ_WAL_HARD_FRAMES	4000	/* the committer starts it over itself */
#define SQ_WAL_RETRY_FRAMES	256
#define SQ_WAL_LIMIT_BYTES	(8 * 1024 * 1024)
#define SQ_CKPT_WAIT_MS		20

#define SQ_SCHEMA_VERSION	1	/* PRAGMA user_version once migrated */

/* Switch to WAL and bring the schema to SQ_SCHEMA_VERSION, all or nothing. */
__attribute__((warn_unused_result))
int	sq_schema_migrate(sqlite3 *db, char *err, size_t errsz);

/* Run on every connection the backend opens. */
extern const char sq_conn_pragmas[];

struct sq_ckpt;
/* Open the checkpointer's connection and start its thread. -1 with err set. */
__attribute__((warn_unused_result))
int	sq_ckpt_start(const char *path, struct sq_ckpt **out,
	    char *err, size_t errsz);
/* Stop and join the thread, close its connection; accepts NULL. */
void	sq_ckpt_stop(struct sq_ckpt *k);
/* sqlite3_wal_hook callback for request connections; arg is the checkpointer or NULL. */
int	sq_ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames);

/* Longest destination an outbox row may hold, its NUL included. */
#define SQ_PHONE_SIZE	sizeof(((struct store_outbox_msg *)NULL)->to)

/* Longest "route\nkey" a connection remembers; longer claims write a RUNNING row. */
#define SQ_CLAIM_SIZE	96

/* One thread's connection; only that thread uses it, so SQLITE_OPEN_NOMUTEX. */
struct conn {
	sqlite3		*db;
	sqlite3_stmt	*stmt[ST_COUNT];	/* prepared on first use */
	struct sq_store	*store;
	struct conn	*prev, *next;
	bool		 broken;	/* a rollback failed: replace it (sq_rollback) */
	bool		 batch;		/* inside store_batch_begin .. store_batch_end */
	bool		 job;		/* in a batch: a job's savepoint is open */
	bool		 batch_failed;	/* its transaction ended, or a job's undo failed */
	bool		 batch_cache;	/* the batch connection's larger cache is set */
	/* The fresh NEW claim ("route\nkey") the open transaction is for, or "". */
	char		 claim[SQ_CLAIM_SIZE];
	int64_t		 claim_at;
};

/* This thread's connection, opened on first use; NULL after logging. */
struct sq_store;
struct conn	*sq_conn(struct store *s);

/* The operations store_sqlite_webhook.c and store_sqlite_outbox.c provide. */
int	sq_claim(struct store *s, const char *route, const char *key, int64_t now,
	    int64_t stale_after, struct store_claim *out);
int	sq_claim_release(struct store *s, const char *route, const char *key);
int	sq_reset_finish(struct store *s, const char *route, const char *key,
	    int outcome, const uint8_t *token_hash, const char *user_id,
	    int64_t expires_at, int64_t now, const struct store_limit *limits,
	    size_t nlimits, int *limited_by, int64_t *token_id);
int	sq_pin_finish(struct store *s, const char *route, const char *key,
	    int outcome, const struct store_pin *pin, int64_t now,
	    const struct store_limit *limits, size_t nlimits, int *limited_by);
int	sq_pin_verify(struct store *s, const char *phone,
	    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
	    enum store_pin_check *result, struct buf *user_id);
int	sq_token_redeem(struct store *s, int64_t id,
	    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
	    enum store_redeem *result, struct buf *user_id);
int	sq_outbox_lease(struct store *s, int64_t now, int64_t lease,
	    struct store_outbox_msg *out, size_t max, size_t *n);
int	sq_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now);
int	sq_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
	    long http_status, int error_code);
int	sq_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
	    int error_code, int64_t now);
int	sq_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
	    int error_code, bool *found);
int	sq_outbox_depth(struct store *s, int64_t *depth);
/* Log statement id's error once; returns -1. */
int	sq_fail(struct conn *c, enum st id);
/*
 * Prepare id (once per connection) and bind; fmt has a letter per parameter:
 * 't' text (NULL binds NULL), 'i' int64_t, 'h' a STORE_HASH_BYTES blob.
 * Bound SQLITE_STATIC: reset the statement before the arguments go away.
 */
__attribute__((warn_unused_result))
int	sq_bind(struct conn *c, enum st id, const char *fmt, ...);
/* One step: 1 a row, 0 done, -1 error (logged). */
__attribute__((warn_unused_result))
int	sq_step(struct conn *c, enum st id);
/* Reset and clear bindings; accepts a statement never prepared. */
void	sq_reset(struct conn *c, enum st id);
/* Bind, run to completion, reset. */
__attribute__((warn_unused_result))
int	sq_exec(struct conn *c, enum st id, const char *fmt, ...);
/* Append text column col of the current row to b; NULL appends nothing. */
__attribute__((warn_unused_result))
int	sq_text(struct conn *c, enum st id, int col, struct buf *b);
/*
 * BEGIN IMMEDIATE; COMMIT; and a ROLLBACK that is safe on every error path
 * (one that fails closes the connection, which the thread's next call
 * reopens). Inside a batch (store_batch_begin) the three open, release and
 * roll back a savepoint of the batch's transaction instead.
 */
__attribute__((warn_unused_result))
int	sq_begin(struct conn *c);
__attribute__((warn_unused_result))
int	sq_commit(struct conn *c);
void	sq_rollback(struct conn *c);
/* Is a transaction of the caller's own open (in a batch: its savepoint)? */
bool	sq_in_txn(const struct conn *c);

#endif
