/*
 * store.h on SQLite: one connection per thread (opened on first use, closed
 * when its thread exits or at store_close), statements prepared once per
 * connection, multi-statement changes in BEGIN IMMEDIATE transactions.
 * This file: connections, the statement table, users, purge.
 * Only bound parameters reach SQL; no log line carries a phone, token, PIN,
 * hash or message body.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clock.h"
#include "defaults.h"
#include "log.h"
#include "store_backend.h"
#include "store_sqlite.h"

/* Expired tokens and PINs linger a day so a late check hears "expired", not "unknown". */
#define EXPIRED_PURGE_GRACE	((int64_t)24 * 3600)
/* How far past now a stamp may lie and still hold back the purge of later rows. */
#define FUTURE_SLACK		((int64_t)24 * 3600)

/*
 * store_probe: with no failure since the last good probe, a commit within
 * PROBE_IDLE_MS proves enough, else it writes one small row. After a failure
 * it writes PROBE_RECOVER_PAD bytes, more than a whole batch of webhooks
 * writes (bench/run: about 6 KB each), so that a success means webhooks fit
 * again and not merely the probe.
 */
#define PROBE_IDLE_MS		5000
#define PROBE_RECOVER_PAD	(512 * 1024)

/* The webhooks.state column holds these values; the SQL below spells them 1 and 2. */
_Static_assert(STORE_CLAIM_RUNNING == 1 && STORE_CLAIM_DONE == 2, "claim states");

/*
 * Per connection. WAL with synchronous=FULL: COMMIT returns once the WAL is
 * on disk, so an answer that promised a side effect (a link, an SMS) leaves
 * only after its record survives a crash or a power loss; group commit
 * (batch.c) shares that fsync between the webhooks of a batch.
 * secure_delete zeroes freed content, so an erased SMS body (it holds a PIN)
 * does not linger in free pages of the database file. No connection
 * checkpoints after its own commits: the checkpointer thread does, so no
 * request waits for its fsync; journal_size_limit trims the WAL file when
 * it starts over.
 */
const char sq_conn_pragmas[] =
	"PRAGMA foreign_keys = ON;"
	"PRAGMA synchronous = FULL;"
	"PRAGMA secure_delete = ON;"
	"PRAGMA trusted_schema = OFF;"
	"PRAGMA wal_autocheckpoint = 0;"
	"PRAGMA journal_size_limit = 8388608;";
_Static_assert(SQ_WAL_LIMIT_BYTES == 8388608, "journal_size_limit above");

/*
 * All SQL of the backend. Outbox rows move pending -> sending -> sent |
 * failed | expired (store.h); retry and give-up only touch a row still in
 * flight, so a late answer from an expired lease never revives a sent one.
 */
static const struct {
	const char	*name;		/* in log lines */
	const char	*sql;
} stmts[ST_COUNT] = {
	[ST_BEGIN] = { "begin", "BEGIN IMMEDIATE" },
	[ST_COMMIT] = { "commit", "COMMIT" },
	[ST_ROLLBACK] = { "rollback", "ROLLBACK" },
	[ST_SAVEPOINT] = { "job begin", "SAVEPOINT job" },
	[ST_RELEASE] = { "job commit", "RELEASE job" },
	[ST_ROLLBACK_TO] = { "job rollback", "ROLLBACK TO job" },
	[ST_PROBE] = { "probe", "INSERT INTO health (id, checked_at, pad)"
	    " VALUES (1, ?1, zeroblob(?2)) ON CONFLICT (id) DO UPDATE SET"
	    " checked_at = excluded.checked_at, pad = excluded.pad" },
	[ST_USER_PUT] = { "user add", "INSERT INTO users (phone, user_id)"
	    " VALUES (?1, ?2) ON CONFLICT (phone)"
	    " DO UPDATE SET user_id = excluded.user_id" },
	[ST_USER_DELETE] = { "user remove", "DELETE FROM users WHERE phone = ?1" },
	[ST_USER_LIST] = { "user list",
	    "SELECT phone, user_id FROM users ORDER BY phone" },
	[ST_USER_GET] = { "user lookup",
	    "SELECT user_id FROM users WHERE phone = ?1" },
	[ST_CLAIM_INSERT] = { "claim", "INSERT INTO webhooks (route, key, state,"
	    " started_at) VALUES (?1, ?2, 1, ?3)"
	    " ON CONFLICT (route, key) DO NOTHING" },
	/* A fresh claim, never written as RUNNING: its record, done, in one write. */
	[ST_CLAIM_PUT_DONE] = { "claim finish", "INSERT INTO webhooks (route, key,"
	    " state, outcome, user_id, started_at, finished_at)"
	    " VALUES (?1, ?2, 2, ?3, ?4, ?5, ?6)" },
	[ST_CLAIM_GET] = { "claim", "SELECT state, outcome, user_id, started_at, id"
	    " FROM webhooks WHERE route = ?1 AND key = ?2" },
	[ST_CLAIM_TAKEOVER] = { "claim takeover", "UPDATE webhooks"
	    " SET started_at = ?3 WHERE route = ?1 AND key = ?2 AND state = 1" },
	[ST_CLAIM_RELEASE] = { "claim release", "DELETE FROM webhooks"
	    " WHERE route = ?1 AND key = ?2 AND state = 1" },
	[ST_CLAIM_FINISH] = { "claim finish", "UPDATE webhooks SET state = 2,"
	    " outcome = ?3, user_id = ?4, finished_at = ?5"
	    " WHERE route = ?1 AND key = ?2 AND state = 1 RETURNING id" },
	/* Fixed windows: one that ended (now >= start + window) counts as empty. */
	[ST_LIMIT_CHECK] = { "limit check", "SELECT ?2 < window_start + ?3"
	    " AND count >= ?4 FROM rate_limits WHERE key = ?1" },
	/* In an upsert every right-hand side reads the row as it was. */
	[ST_LIMIT_COUNT] = { "limit count", "INSERT INTO rate_limits"
	    " (key, window_start, count) VALUES (?1, ?2, 1)"
	    " ON CONFLICT (key) DO UPDATE SET"
	    " window_start = iif(?2 >= window_start + ?3, ?2, window_start),"
	    " count = iif(?2 >= window_start + ?3, 1, count + 1)" },
	[ST_TOKEN_INSERT] = { "token insert", "INSERT INTO reset_tokens"
	    " (id, hash, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)" },
	[ST_TOKEN_GET] = { "token redeem", "SELECT hash, user_id, expires_at,"
	    " used_at IS NOT NULL FROM reset_tokens WHERE id = ?1" },
	[ST_TOKEN_SPEND] = { "token redeem", "UPDATE reset_tokens SET used_at = ?2"
	    " WHERE id = ?1 AND used_at IS NULL" },
	[ST_PIN_PUT] = { "pin insert", "INSERT INTO pins (user_id, phone, hash,"
	    " expires_at, attempts, created_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)"
	    " ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone,"
	    " hash = excluded.hash, expires_at = excluded.expires_at,"
	    " attempts = 0, created_at = excluded.created_at" },
	/* Users sharing a phone: the PIN issued last is the one the phone holds. */
	[ST_PIN_GET] = { "pin verify", "SELECT rowid, user_id, hash, expires_at,"
	    " attempts FROM pins WHERE phone = ?1"
	    " ORDER BY created_at DESC, rowid DESC LIMIT 1" },
	[ST_PIN_DELETE] = { "pin verify", "DELETE FROM pins WHERE rowid = ?1" },
	[ST_PIN_WRONG] = { "pin verify",
	    "UPDATE pins SET attempts = attempts + 1 WHERE rowid = ?1" },
	[ST_OUTBOX_INSERT] = { "outbox insert", "INSERT INTO outbox (to_phone,"
	    " body, status, next_attempt_at, expires_at, created_at)"
	    " VALUES (?1, ?2, 'pending', ?3, ?4, ?3)" },
	[ST_OUTBOX_LEASE] = { "outbox lease", "UPDATE outbox SET"
	    " status = 'sending', attempts = attempts + 1, lease_until = ?2"
	    " WHERE id IN (SELECT id FROM outbox"
	    "  WHERE (status = 'pending' AND next_attempt_at <= ?1)"
	    "  OR (status = 'sending' AND lease_until < ?1)"
	    /* No ORDER BY: the outbox_due index already yields due rows oldest
	     * first, and a sort would read the whole backlog on every lease. */
	    "  LIMIT ?3)"
	    " RETURNING id, to_phone, body, attempts, expires_at" },
	[ST_OUTBOX_SENT] = { "outbox sent", "UPDATE outbox SET status = 'sent',"
	    " twilio_sid = ?2, sent_at = ?3, body = NULL, lease_until = NULL"
	    " WHERE id = ?1" },
	[ST_OUTBOX_RETRY] = { "outbox retry", "UPDATE outbox SET"
	    " status = 'pending', next_attempt_at = ?2, http_status = NULLIF(?3, 0),"
	    " error_code = NULLIF(?4, 0), lease_until = NULL"
	    " WHERE id = ?1 AND status IN ('pending', 'sending')" },
	[ST_OUTBOX_GIVE_UP] = { "outbox give up", "UPDATE outbox SET"
	    " status = iif(?2, 'expired', 'failed'), body = NULL,"
	    " http_status = NULLIF(?3, 0), error_code = NULLIF(?4, 0),"
	    " lease_until = NULL"
	    " WHERE id = ?1 AND status IN ('pending', 'sending')" },
	[ST_OUTBOX_SID_GET] = { "outbox delivery", "SELECT id, delivery_status"
	    " FROM outbox WHERE twilio_sid = ?1 ORDER BY id DESC LIMIT 1" },
	[ST_OUTBOX_DELIVERY] = { "outbox delivery", "UPDATE outbox SET"
	    " delivery_status = ?2, error_code = coalesce(NULLIF(?3, 0), error_code)"
	    " WHERE id = ?1" },
	[ST_OUTBOX_DEPTH] = { "outbox depth", "SELECT count(*) FROM outbox"
	    " WHERE status IN ('pending', 'sending')" },
	/*
	 * Ids follow arrival, so what is old is a prefix: delete the rows before
	 * the first one still to keep, found by walking from the oldest (no
	 * index on times to write at every insert). A row out of order (a clock
	 * step back, a takeover) keeps the rows after it longer, never the
	 * reverse; one stamped past ?2 (a clock that ran ahead) holds nothing
	 * back and goes with the prefix. Done or abandoned alike.
	 */
	[ST_PURGE_WEBHOOKS] = { "purge", "DELETE FROM webhooks WHERE id < coalesce("
	    "(SELECT id FROM webhooks WHERE started_at >= ?1 AND started_at <= ?2"
	    " ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM webhooks))" },
	[ST_PURGE_TOKENS] = { "purge", "DELETE FROM reset_tokens WHERE id < coalesce("
	    "(SELECT id FROM reset_tokens WHERE expires_at >= ?1 AND expires_at <= ?2"
	    " ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM reset_tokens))" },
	[ST_PURGE_PINS] = { "purge", "DELETE FROM pins WHERE expires_at < ?1" },
	[ST_PURGE_OUTBOX] = { "purge", "DELETE FROM outbox"
	    " WHERE status IN ('sent', 'failed', 'expired') AND created_at < ?1" },
	[ST_PURGE_LIMITS] = { "purge",
	    "DELETE FROM rate_limits WHERE window_start < ?1" },
};

/*
 * Lines a full disk or a lock held elsewhere repeats for every webhook:
 * each kind at most once a second (log.h), a statement's failures by
 * statement (kinds 0 to ST_COUNT - 1), so one burst shows as a few lines
 * with their counts rather than thousands.
 */
enum sq_log {
	SQ_LOG_OPEN = ST_COUNT,	/* a thread's connection cannot open */
	SQ_LOG_BATCH_GONE,	/* SQLite ended the batch's transaction itself */
	SQ_LOG_BATCH_FAILED,	/* a batch rolled back whole */
	SQ_LOG_COUNT
};

#define sq_log(s, kind, ...)	log_throttled(&(s)->log[kind], LOG_LEVEL_ERROR, __VA_ARGS__)

struct sq_store {
	struct store	 base;		/* first: what store.c holds */
	char		*path;
	pthread_key_t	 key;		/* this thread's struct conn */
	bool		 keyed;		/* key created */
	pthread_mutex_t	 lock;		/* guards conns */
	struct conn	*conns;		/* every open connection, for store_close */
	struct sq_ckpt	*ckpt;		/* NULL until the schema is in place */
	_Atomic int64_t	 committed_at;	/* CLOCK_MONOTONIC ms of the last commit */
	atomic_bool	 failing;	/* a write failed as no write should: see sq_fail */
	struct log_throttle log[SQ_LOG_COUNT];	/* by enum sq_log */
};

static struct sq_store *
sq_of(struct store *s)
{
	return (struct sq_store *)(void *)s;
}

static void
conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c);
}

static struct conn *
conn_open(const char *path, char *err, size_t errsz)
{
	struct conn	*c;
	/*
	 * No SQLITE_OPEN_CREATE: store_open created the file, and a thread that
	 * connects after it was deleted must fail, not start an empty store.
	 */
	const int	 flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
			    SQLITE_OPEN_NOFOLLOW;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK ||
	    sqlite3_extended_result_codes(c->db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    sqlite3_exec(c->db, sq_conn_pragmas, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return c;
fail:
	snprintf(err, errsz, "%s", c->db != NULL ? sqlite3_errmsg(c->db) :
	    "out of memory");
	conn_close(c);
	return NULL;
}

/* Forget c and close it (closing rolls back whatever it had open). */
static void
conn_detach(struct conn *c)
{
	struct sq_store	*s = c->store;

	pthread_mutex_lock(&s->lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->lock);
	conn_close(c);
}

/* pthread key destructor: the thread that owned c is exiting. */
static void
conn_thread_exit(void *arg)
{
	conn_detach(arg);
}

/*
 * This thread's connection, opened on first use, and again after one was
 * found broken (see sq_rollback). NULL with err set.
 */
static struct conn *
conn_attach(struct sq_store *s, char *err, size_t errsz)
{
	struct conn	*c;

	if ((c = pthread_getspecific(s->key)) != NULL) {
		if (!c->broken)
			return c;
		(void)pthread_setspecific(s->key, NULL);
		conn_detach(c);
	}
	if ((c = conn_open(s->path, err, errsz)) == NULL)
		return NULL;
	if (pthread_setspecific(s->key, c) != 0) {
		snprintf(err, errsz, "cannot attach a connection to this thread");
		conn_close(c);
		return NULL;
	}
	c->store = s;
	sqlite3_wal_hook(c->db, sq_ckpt_hook, s->ckpt);
	pthread_mutex_lock(&s->lock);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	pthread_mutex_unlock(&s->lock);
	return c;
}

struct conn *
sq_conn(struct store *s)
{
	struct conn	*c;
	char		 err[256];

	if ((c = conn_attach(sq_of(s), err, sizeof(err))) == NULL)
		sq_log(sq_of(s), SQ_LOG_OPEN, "store: open: %s", err);
	return c;
}

/* Errors that say the store cannot commit, not that one statement was wrong. */
static bool
cannot_commit(int code)
{
	switch (code & 0xff) {
	case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_READONLY: case SQLITE_BUSY:
	case SQLITE_LOCKED: case SQLITE_CANTOPEN: case SQLITE_CORRUPT: case SQLITE_NOTADB:
	case SQLITE_PROTOCOL: case SQLITE_NOMEM:
		return true;
	}
	return false;
}

/* The store stays failing until store_probe's recovery write succeeds. */
static void
mark_failing(struct sq_store *s)
{
	atomic_store_explicit(&s->failing, true, memory_order_relaxed);
}

int
sq_fail(struct conn *c, enum st id)
{
	sq_log(c->store, id, "store: %s: %s", stmts[id].name, sqlite3_errmsg(c->db));
	if (cannot_commit(sqlite3_extended_errcode(c->db)))
		mark_failing(c->store);
	return -1;
}

/*
 * Prepare statement id (once per connection) and bind its parameters; fmt
 * has a letter per parameter: 't' text (NULL binds NULL), 'i' int64_t,
 * 'h' a STORE_HASH_BYTES blob. Bound as SQLITE_STATIC: every caller resets
 * the statement (sq_reset) before its arguments go out of scope.
 */
static int
sq_vbind(struct conn *c, enum st id, const char *fmt, va_list ap)
{
	sqlite3_stmt	*st;
	int		 i, rc = SQLITE_OK;

	if (c->stmt[id] == NULL && sqlite3_prepare_v3(c->db, stmts[id].sql, -1,
	    SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL) != SQLITE_OK)
		return sq_fail(c, id);
	st = c->stmt[id];
	for (i = 1; rc == SQLITE_OK && *fmt != '\0'; fmt++, i++) {
		switch (*fmt) {
		case 't':
			rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1,
			    SQLITE_STATIC);
			break;
		case 'i':
			rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		case 'h':
			rc = sqlite3_bind_blob(st, i, va_arg(ap, const uint8_t *),
			    STORE_HASH_BYTES, SQLITE_STATIC);
			break;
		default:
			rc = SQLITE_MISUSE;
			break;
		}
	}
	return rc == SQLITE_OK ? 0 : sq_fail(c, id);
}

int
sq_bind(struct conn *c, enum st id, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = sq_vbind(c, id, fmt, ap);
	va_end(ap);
	return rc;
}

/* One step: 1 a row, 0 done, -1 error (logged). */
int
sq_step(struct conn *c, enum st id)
{
	sqlite3_stmt	*st = c->stmt[id];

	/*
	 * SQLite ended the batch's transaction itself (after an I/O error, say):
	 * a statement now would run, and commit, on its own.
	 */
	if (c->batch && sqlite3_get_autocommit(c->db)) {
		c->batch_failed = true;
		sq_log(c->store, SQ_LOG_BATCH_GONE, "store: %s: the batch's transaction"
		    " is gone", stmts[id].name);
		return -1;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		return 0;
	default:
		return sq_fail(c, id);
	}
}

/* Also ends the statement's read snapshot, which WAL checkpoints wait for. */
void
sq_reset(struct conn *c, enum st id)
{
	if (c->stmt[id] != NULL) {
		sqlite3_reset(c->stmt[id]);
		sqlite3_clear_bindings(c->stmt[id]);
	}
}

/* Bind, run to completion, reset. */
int
sq_exec(struct conn *c, enum st id, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = sq_vbind(c, id, fmt, ap);
	va_end(ap);
	if (rc == 0) {
		while ((rc = sq_step(c, id)) == 1)
			;
	}
	sq_reset(c, id);
	return rc;
}

/*
 * BEGIN IMMEDIATE takes SQLite's write lock up front (waiting up to the busy
 * timeout), so a transaction that reads then writes never fails with
 * SQLITE_BUSY_SNAPSHOT halfway. In a batch the write lock is already held:
 * a savepoint.
 */
int
sq_begin(struct conn *c)
{
	c->claim[0] = '\0';	/* store_claim sets it once its transaction is open */
	if (c->batch) {
		if (c->job || sqlite3_get_autocommit(c->db)) {
			c->batch_failed |= !c->job;
			sq_log(c->store, SQ_LOG_BATCH_GONE, "store: begin: the batch's"
			    " transaction is %s", c->job ? "busy with another job" : "gone");
			return -1;
		}
		if (sq_exec(c, ST_SAVEPOINT, "") == -1)
			return -1;
		c->job = true;
		return 0;
	}
	return sq_exec(c, ST_BEGIN, "");
}

int
sq_commit(struct conn *c)
{
	int	rc;

	c->claim[0] = '\0';
	if (c->batch) {
		/* Durable only when store_batch_end commits the batch. */
		if ((rc = sq_exec(c, ST_RELEASE, "")) == -1)
			sq_rollback(c);
		c->job = false;
		return rc;
	}
	rc = sq_exec(c, ST_COMMIT, "");
	if (rc == 0)
		atomic_store_explicit(&c->store->committed_at, clock_now_ms(), memory_order_relaxed);
	return rc;
}

void
sq_rollback(struct conn *c)
{
	c->claim[0] = '\0';
	if (c->batch) {
		/*
		 * Undo this job only; the batch's other jobs stand. When the undo
		 * fails, the job's writes would be committed with them: the whole
		 * batch fails instead.
		 */
		if (c->job && (sqlite3_get_autocommit(c->db) ||
		    sq_exec(c, ST_ROLLBACK_TO, "") == -1 || sq_exec(c, ST_RELEASE, "") == -1))
			c->batch_failed = true;
		c->job = false;
		return;
	}
	/* After SQLITE_FULL, IOERR or NOMEM SQLite may have rolled back already. */
	if (sqlite3_get_autocommit(c->db) || sq_exec(c, ST_ROLLBACK, "") == 0)
		return;
	/*
	 * A transaction that cannot be rolled back would hold the write lock
	 * and wedge every writer: this connection is closed instead (which
	 * rolls it back) and the thread's next call opens a fresh one.
	 */
	c->broken = true;
	sq_log(c->store, SQ_LOG_OPEN, "store: rollback failed: the connection is"
	    " closed and reopened");
}

bool
sq_in_txn(const struct conn *c)
{
	return c->batch ? c->job : !sqlite3_get_autocommit(c->db);
}

/*
 * Group commit: one BEGIN IMMEDIATE .. COMMIT around many webhooks, each in
 * a savepoint, so the write lock, the WAL append and its page writes are
 * paid once per batch instead of once per webhook.
 */
static int
sq_batch_begin(struct store *s)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (c->batch || sq_in_txn(c)) {
		log_error("store: batch: a transaction is already open on this thread");
		return -1;
	}
	/*
	 * Every webhook's reads and writes go through this one connection, and
	 * no other connection commits often enough to empty its cache: 8 MiB
	 * instead of 2 made the batch thread ~20% cheaper per webhook in
	 * bench/run (fewer preads), for 6.5 MiB more peak RSS.
	 */
	if (!c->batch_cache && sqlite3_exec(c->db, "PRAGMA cache_size = -8192",
	    NULL, NULL, NULL) == SQLITE_OK)
		c->batch_cache = true;
	if (sq_begin(c) == -1)
		return -1;
	c->batch = true;
	c->job = false;
	c->batch_failed = false;
	return 0;
}

static int
sq_batch_end(struct store *s)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL || !c->batch)
		return -1;
	if (c->job) {
		log_error("store: batch: a job left its savepoint open; rolled back");
		sq_rollback(c);
	}
	c->batch = false;
	/* SQLite ends the whole transaction itself after some errors. */
	if (sqlite3_get_autocommit(c->db)) {
		sq_log(sq_of(s), SQ_LOG_BATCH_FAILED, "store: batch: the transaction was rolled"
		    " back");
		return -1;
	}
	if (c->batch_failed) {
		sq_log(sq_of(s), SQ_LOG_BATCH_FAILED, "store: batch: a webhook's work could not be"
		    " undone alone; the whole batch is rolled back");
		sq_rollback(c);
		return -1;
	}
	if (sq_commit(c) == -1) {
		sq_rollback(c);
		return -1;
	}
	return 0;
}

/* Append text column col of the current row to b; NULL appends nothing. */
int
sq_text(struct conn *c, enum st id, int col, struct buf *b)
{
	sqlite3_stmt		*st = c->stmt[id];
	const unsigned char	*p;
	int			 n;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	if ((p = sqlite3_column_text(st, col)) == NULL)
		return sq_fail(c, id);
	n = sqlite3_column_bytes(st, col);
	if (buf_append(b, p, (size_t)n) == -1) {
		sq_log(c->store, id, "store: %s: out of memory", stmts[id].name);
		return -1;
	}
	return 0;
}

/*
 * Create the database file 0600 before SQLite does (it would use 0644 less
 * the umask); SQLite gives its -wal and -shm files the database's mode.
 */
static int
db_file_create(const char *path, char *err, size_t errsz)
{
	int	fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errsz, "%s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static void	sq_close(struct store *base);
static const struct store_ops sq_ops;

int
store_sqlite_open(const struct store_config *cfg, struct store **out, char *err,
    size_t errsz)
{
	const char	*path = cfg->path;
	struct sq_store	*s;
	struct conn	*c;
	char		 msg[256] = "out of memory";
	int		 rc = -1;

	*out = NULL;
	if ((s = malloc(sizeof(*s))) == NULL)
		goto done;
	*s = (struct sq_store){ .base = { &sq_ops }, .lock = PTHREAD_MUTEX_INITIALIZER };
	for (size_t i = 0; i < SQ_LOG_COUNT; i++)
		s->log[i] = (struct log_throttle)LOG_THROTTLE_INIT;
	if ((s->path = strdup(path)) == NULL ||
	    pthread_key_create(&s->key, conn_thread_exit) != 0)
		goto done;
	s->keyed = true;
	if (!sqlite3_threadsafe()) {
		snprintf(msg, sizeof(msg), "SQLite was built without thread support");
		goto done;
	}
	/* Opens this thread's connection, which then stays attached. */
	if (db_file_create(path, msg, sizeof(msg)) == -1 ||
	    (c = conn_attach(s, msg, sizeof(msg))) == NULL ||
	    sq_schema_migrate(c->db, msg, sizeof(msg)) == -1 ||
	    sq_ckpt_start(path, &s->ckpt, msg, sizeof(msg)) == -1)
		goto done;
	sqlite3_wal_hook(c->db, sq_ckpt_hook, s->ckpt);
	*out = &s->base;
	rc = 0;
done:
	if (rc == -1) {
		snprintf(err, errsz, "%s: %s", path, msg);
		sq_close(&s->base);
	}
	return rc;
}

/*
 * Closes every connection. The caller must have stopped (or joined) every
 * other thread that used s: a thread exiting concurrently would run its key
 * destructor against a store being freed.
 */
static void
sq_close(struct store *base)
{
	struct sq_store	*s = sq_of(base);
	struct conn	*c, *next;

	if (s == NULL)
		return;
	sq_ckpt_stop(s->ckpt);
	/* After this no destructor runs; stale per-thread values are never read. */
	if (s->keyed)
		pthread_key_delete(s->key);
	pthread_mutex_lock(&s->lock);
	c = s->conns;
	s->conns = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

static int
sq_probe(struct store *base, char *err, size_t errsz)
{
	struct sq_store	*s = sq_of(base);
	struct conn	*c;
	int		 moved = 0;
	bool		 failing;

	if ((c = sq_conn(base)) == NULL) {
		snprintf(err, errsz, "cannot open a connection to %s%s", s->path,
		    access(s->path, F_OK) == -1 && errno == ENOENT ?
		    ": it was removed since it was opened; restart twhookd" : "");
		return -1;
	}
	/* SQLite's own check: the file this connection has open is still at path. */
	if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
	    moved) {
		snprintf(err, errsz, "%s was removed or replaced since it was opened;"
		    " restart twhookd", s->path);
		return -1;
	}
	failing = atomic_load_explicit(&s->failing, memory_order_relaxed);
	if (!failing && clock_now_ms() - atomic_load_explicit(&s->committed_at,
	    memory_order_relaxed) < PROBE_IDLE_MS)
		return 0;
	if (sq_begin(c) == -1 || sq_exec(c, ST_PROBE, "ii", (int64_t)time(NULL),
	    (int64_t)(failing ? PROBE_RECOVER_PAD : 0)) == -1 || sq_commit(c) == -1) {
		snprintf(err, errsz, "%s: cannot commit: %s", s->path, sqlite3_errmsg(c->db));
		sq_rollback(c);		/* whatever is still open */
		mark_failing(s);
		return -1;
	}
	atomic_store_explicit(&s->failing, false, memory_order_relaxed);
	return 0;
}

static int
sq_user_add(struct store *s, const char *phone, const char *user_id)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	return sq_exec(c, ST_USER_PUT, "tt", phone, user_id);
}

static int
sq_user_add_many(struct store *s, const struct store_user *users, size_t n)
{
	struct conn	*c;
	size_t		 i;
	int		 rc = -1;

	if ((c = sq_conn(s)) == NULL || sq_begin(c) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (sq_exec(c, ST_USER_PUT, "tt", users[i].phone,
		    users[i].user_id) == -1)
			goto done;
	rc = sq_commit(c);
done:
	if (rc == -1)
		sq_rollback(c);
	return rc;
}

static int
sq_user_remove(struct store *s, const char *phone, bool *removed)
{
	struct conn	*c;

	*removed = false;
	if ((c = sq_conn(s)) == NULL ||
	    sq_exec(c, ST_USER_DELETE, "t", phone) == -1)
		return -1;
	*removed = sqlite3_changes(c->db) > 0;
	return 0;
}

static int
sq_user_list(struct store *s,
    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg)
{
	struct conn	*c;
	sqlite3_stmt	*st;
	int		 r, rc = -1;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (sq_bind(c, ST_USER_LIST, "") == -1)
		goto done;
	st = c->stmt[ST_USER_LIST];
	while ((r = sq_step(c, ST_USER_LIST)) == 1) {
		const unsigned char *phone = sqlite3_column_text(st, 0);
		const unsigned char *user_id = sqlite3_column_text(st, 1);

		if (phone == NULL || user_id == NULL) {
			r = sq_fail(c, ST_USER_LIST);	/* NOT NULL columns: out of memory */
			break;
		}
		if (cb(arg, (const char *)phone, (const char *)user_id) != 0) {
			r = 0;
			break;
		}
	}
	if (r == 0)
		rc = 0;
done:
	sq_reset(c, ST_USER_LIST);
	return rc;
}

static int
sq_user_lookup(struct store *s, const char *phone, struct buf *user_id,
    bool *found)
{
	struct conn	*c;
	int		 r, rc = -1;

	*found = false;
	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (sq_bind(c, ST_USER_GET, "t", phone) == -1 ||
	    (r = sq_step(c, ST_USER_GET)) == -1)
		goto done;
	if (r == 1 && sq_text(c, ST_USER_GET, 0, user_id) == -1)
		goto done;
	*found = r == 1;
	rc = 0;
done:
	sq_reset(c, ST_USER_GET);
	return rc;
}

static int
sq_purge(struct store *s, int64_t now, int64_t keep)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	/*
	 * Separate statements: each holds the write lock only briefly. A limit
	 * window never lasts longer than MAX_LIMIT_WINDOW, so an older start
	 * means an ended window, which counts as empty anyway.
	 */
	if (sq_exec(c, ST_PURGE_WEBHOOKS, "ii", now - keep, now + FUTURE_SLACK) == -1 ||
	    sq_exec(c, ST_PURGE_TOKENS, "ii", now - EXPIRED_PURGE_GRACE,
	    now + (int64_t)MAX_TOKEN_TTL + FUTURE_SLACK) == -1 ||
	    sq_exec(c, ST_PURGE_PINS, "i", now - EXPIRED_PURGE_GRACE) == -1 ||
	    sq_exec(c, ST_PURGE_OUTBOX, "i", now - keep) == -1 ||
	    sq_exec(c, ST_PURGE_LIMITS, "i",
	    now - (int64_t)MAX_LIMIT_WINDOW) == -1)
		return -1;
	return 0;
}


static const struct store_ops sq_ops = {
	.driver = "sqlite",
	.close = sq_close,
	.probe = sq_probe,
	.user_add = sq_user_add,
	.user_add_many = sq_user_add_many,
	.user_remove = sq_user_remove,
	.user_list = sq_user_list,
	.user_lookup = sq_user_lookup,
	.batch_begin = sq_batch_begin,
	.batch_end = sq_batch_end,
	.claim = sq_claim,
	.claim_release = sq_claim_release,
	.reset_finish = sq_reset_finish,
	.pin_finish = sq_pin_finish,
	.pin_verify = sq_pin_verify,
	.outbox_lease = sq_outbox_lease,
	.outbox_sent = sq_outbox_sent,
	.outbox_retry = sq_outbox_retry,
	.outbox_give_up = sq_outbox_give_up,
	.outbox_delivery = sq_outbox_delivery,
	.outbox_depth = sq_outbox_depth,
	.token_redeem = sq_token_redeem,
	.purge = sq_purge,
};
