/*
 * store.h on PostgreSQL, its connections: one per thread, opened on first
 * use and again, with a backoff, after the database went away; statements
 * prepared once per connection and run with bound parameters; every error
 * classified once (session lost, store cannot commit) and logged once per
 * call site. No log line carries the DSN or a value bound to a statement.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "defaults.h"
#include "log.h"
#include "store_pg.h"

#define STR_(x)	#x
#define STR(x)	STR_(x)

int64_t
pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
pg_mark_failing(struct pg_store *s)
{
	atomic_store_explicit(&s->failing, true, memory_order_relaxed);
}

/* Forget the session: the server has dropped it, or will. */
static void
conn_drop(struct pg_conn *c)
{
	if (c->db != NULL)
		PQfinish(c->db);
	c->db = NULL;
	c->broken = false;
	memset(c->prepared, 0, sizeof(c->prepared));
}

void
pg_conn_free(struct pg_conn *c)
{
	if (c == NULL)
		return;
	conn_drop(c);
	free(c);
}

/* pthread key destructor: the thread that owned c is exiting. */
void
pg_conn_thread_exit(void *arg)
{
	struct pg_conn	*c = arg;
	struct pg_store	*s = c->store;

	pthread_mutex_lock(&s->lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->lock);
	pg_conn_free(c);
}

/* This thread's struct pg_conn, made (not connected) on first use. */
struct pg_conn *
pg_conn_attach(struct pg_store *s)
{
	struct pg_conn	*c;

	if ((c = pthread_getspecific(s->key)) != NULL)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->store = s;
	c->backoff_ms = PG_RECONNECT_MIN_MS;
	if (pthread_setspecific(s->key, c) != 0) {
		free(c);
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	pthread_mutex_unlock(&s->lock);
	return c;
}

/* The first line of libpq's message for the connection, into c->error. */
static void
note_conn_error(struct pg_conn *c)
{
	const char	*m = c->db != NULL ? PQerrorMessage(c->db) : "out of memory";
	size_t		 n = strcspn(m, "\n");

	snprintf(c->error, sizeof(c->error), "%.*s", (int)n, *m != '\0' ? m :
	    "connection lost");
}

/* NOTICEs (such as CREATE TABLE IF NOT EXISTS skipping) are not errors: no line. */
static void
notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/*
 * Connect. Keywords are processed in order and a later one wins (libpq,
 * PQconnectdbParams with expand_dbname): twhookd's defaults come first, the
 * DSN, expanded from dbname, last, so whatever it sets stands. TLS to the
 * database (sslmode, sslrootcert, ...) is the DSN's alone.
 */
int
pg_conn_connect(struct pg_conn *c)
{
	static const char *const keys[] = {
		"connect_timeout", "application_name", "tcp_user_timeout",
		"keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "dbname", NULL,
	};
	const char	*values[] = {
		STR(PG_CONNECT_TIMEOUT), PG_APPLICATION_NAME, STR(PG_TCP_USER_TIMEOUT_MS),
		"1", STR(PG_KEEPALIVES_IDLE), STR(PG_KEEPALIVES_INTERVAL),
		STR(PG_KEEPALIVES_COUNT), c->store->dsn, NULL,
	};
	PGresult	*r;

	c->db = PQconnectdbParams(keys, values, 1);
	if (c->db == NULL || PQstatus(c->db) != CONNECTION_OK)
		goto fail;
	PQsetNoticeProcessor(c->db, notice_ignore, NULL);
	/* A constant, not a value: STORE_BUSY_TIMEOUT_MS's counterpart. */
	if (!c->store->dsn_timeout) {
		r = PQexec(c->db, "SET statement_timeout = " STR(PG_STATEMENT_TIMEOUT_MS));
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			PQclear(r);
			goto fail;
		}
		PQclear(r);
	}
	return 0;
fail:
	note_conn_error(c);
	conn_drop(c);
	return -1;
}

struct pg_conn *
pg_conn(struct store *base)
{
	struct pg_store	*s = (struct pg_store *)(void *)base;
	struct pg_conn	*c;
	uint64_t	 recovery;
	int64_t		 now;

	if ((c = pg_conn_attach(s)) == NULL) {
		pg_log(s, PG_LOG_CONNECT, "store: open: out of memory");
		return NULL;
	}
	if (c->db != NULL && !c->broken && PQstatus(c->db) == CONNECTION_OK)
		return c;
	/* A new session mid-batch would commit each later job on its own. */
	if (c->batch) {
		c->batch_failed = true;
		return NULL;
	}
	if (c->db != NULL) {
		conn_drop(c);
		c->retry_at = 0;	/* lost just now: try again at once */
		c->backoff_ms = PG_RECONNECT_MIN_MS;
	}
	now = pg_now_ms();
	recovery = atomic_load_explicit(&s->recovery, memory_order_relaxed);
	if (recovery != c->recovery) {
		/* Another thread's probe committed: the database is back. */
		c->recovery = recovery;
		c->retry_at = 0;
		c->backoff_ms = PG_RECONNECT_MIN_MS;
	}
	if (now < c->retry_at) {
		pg_log(s, PG_LOG_WAITING, "store: not connected to the database;"
		    " next try in %lld ms", (long long)(c->retry_at - now));
		pg_mark_failing(s);
		return NULL;
	}
	if (pg_conn_connect(c) == -1) {
		c->retry_at = now + c->backoff_ms;
		c->backoff_ms = c->backoff_ms * 2 > PG_RECONNECT_MAX_MS ?
		    PG_RECONNECT_MAX_MS : c->backoff_ms * 2;
		pg_log(s, PG_LOG_CONNECT, "store: cannot connect to the database: %s;"
		    " next try in %u ms", c->error, (unsigned)(c->retry_at - now));
		pg_mark_failing(s);
		return NULL;
	}
	c->retry_at = 0;
	c->backoff_ms = PG_RECONNECT_MIN_MS;
	return c;
}

/* SQLSTATE classes that say the session is gone: reconnect. */
static bool
session_lost(const char *state)
{
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/*
 * Errors that say the store cannot commit, not that one statement was
 * wrong: a lost connection (08, 57P0x), no resources (53: 53100 disk full),
 * a read-only server (25006), a lock or statement timeout (55P03, 57014),
 * an I/O error (58).
 */
static bool
cannot_commit(const char *state)
{
	return session_lost(state) || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "57P0", 4) == 0 || strncmp(state, "58", 2) == 0 ||
	    strcmp(state, "25006") == 0 || strcmp(state, "55P03") == 0 ||
	    strcmp(state, "57014") == 0;
}

/* Note what r (NULL: no answer) says about the connection and the store; -1. */
static int
fail_result(struct pg_conn *c, enum pst id, const PGresult *r)
{
	const char	*state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char	*msg = r != NULL ?
			    PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	/* The primary message names constraints, never values (those are in DETAIL). */
	if (msg != NULL)
		snprintf(c->error, sizeof(c->error), "%s (SQLSTATE %s)", msg,
		    state != NULL ? state : "none");
	else
		note_conn_error(c);
	if (state == NULL || PQstatus(c->db) != CONNECTION_OK || session_lost(state))
		c->broken = true;
	if (state == NULL || c->broken || cannot_commit(state))
		pg_mark_failing(c->store);
	pg_log(c->store, id, "store: %s: %s", pg_stmts[id].name, c->error);
	return -1;
}

int
pg_fail_msg(struct pg_conn *c, enum pst id, const char *msg)
{
	snprintf(c->error, sizeof(c->error), "%s", msg);
	pg_log(c->store, id, "store: %s: %s", pg_stmts[id].name, msg);
	return -1;
}

/* Prepare statement id on this connection, once. */
static int
prepare(struct pg_conn *c, enum pst id)
{
	char		 name[16];
	PGresult	*r;
	int		 rc;

	if (c->prepared[id])
		return 0;
	snprintf(name, sizeof(name), "tw%d", (int)id);
	r = PQprepare(c->db, name, pg_stmts[id].sql, 0, NULL);
	rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : fail_result(c, id, r);
	PQclear(r);
	c->prepared[id] = rc == 0;
	return rc;
}

/* Run prepared statement id with n bound parameters. */
static int
exec_params(struct pg_conn *c, enum pst id, int n, const char *const *vals,
    const int *lens, const int *fmts, PGresult **res)
{
	char		 name[16];
	PGresult	*r;

	if (prepare(c, id) == -1)
		return -1;
	snprintf(name, sizeof(name), "tw%d", (int)id);
	r = PQexecPrepared(c->db, name, n, vals, lens, fmts, 0);
	switch (PQresultStatus(r)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		if (res != NULL)
			*res = r;
		else
			PQclear(r);
		return 0;
	default:
		fail_result(c, id, r);
		PQclear(r);
		return -1;
	}
}

/*
 * In a batch, a statement outside any job (an outbox write the batch
 * thread runs for another thread) gets a savepoint of its own: in
 * PostgreSQL a failed statement aborts the whole transaction, and one
 * write must not take the batch's webhooks down with it.
 */
static int
exec_guarded(struct pg_conn *c, enum pst id, int n, const char *const *vals,
    const int *lens, const int *fmts, PGresult **res)
{
	int	rc;

	if (!c->batch || c->job || id < PS_PROBE)
		return exec_params(c, id, n, vals, lens, fmts, res);
	if (exec_params(c, PS_SAVEPOINT, 0, NULL, NULL, NULL, NULL) == -1) {
		c->batch_failed = true;
		return -1;
	}
	rc = exec_params(c, id, n, vals, lens, fmts, res);
	if (rc == -1 && exec_params(c, PS_ROLLBACK_TO, 0, NULL, NULL, NULL, NULL) == -1)
		c->batch_failed = true;
	if (exec_params(c, PS_RELEASE, 0, NULL, NULL, NULL, NULL) == -1) {
		c->batch_failed = true;
		rc = -1;
	}
	if (rc == -1 && res != NULL) {
		PQclear(*res);
		*res = NULL;
	}
	return rc;
}

int
pg_exec(struct pg_conn *c, enum pst id, PGresult **res, const char *fmt, ...)
{
	const char	*vals[PG_MAX_PARAMS];
	int		 lens[PG_MAX_PARAMS], fmts[PG_MAX_PARAMS];
	char		 nums[PG_MAX_PARAMS][24];
	va_list		 ap;
	int		 n = 0;

	if (res != NULL)
		*res = NULL;
	if (c->db == NULL || c->broken)
		return pg_fail_msg(c, id, "the connection was lost");
	va_start(ap, fmt);
	for (; *fmt != '\0' && n < PG_MAX_PARAMS; fmt++, n++) {
		lens[n] = 0;
		fmts[n] = 0;
		switch (*fmt) {
		case 't':
			vals[n] = va_arg(ap, const char *);
			break;
		case 'i':
			snprintf(nums[n], sizeof(nums[n]), "%lld",
			    (long long)va_arg(ap, int64_t));
			vals[n] = nums[n];
			break;
		case 'h':
		default:
			/* bytea, sent binary: exactly the hash's bytes. */
			vals[n] = (const char *)va_arg(ap, const uint8_t *);
			lens[n] = STORE_HASH_BYTES;
			fmts[n] = 1;
			break;
		}
	}
	va_end(ap);
	return exec_guarded(c, id, n, vals, lens, fmts, res);
}

int64_t
pg_changed(PGresult *res)
{
	return strtoll(PQcmdTuples(res), NULL, 10);
}

int64_t
pg_int(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int
pg_text(struct pg_conn *c, enum pst id, const PGresult *res, int row, int col,
    struct buf *b)
{
	if (PQgetisnull(res, row, col))
		return 0;
	if (buf_append(b, PQgetvalue(res, row, col),
	    (size_t)PQgetlength(res, row, col)) == -1)
		return pg_fail_msg(c, id, "out of memory");
	return 0;
}

/* bytea in text form: "\x" and two hex digits a byte. */
bool
pg_hash_equal(const PGresult *res, int row, int col,
    const uint8_t want[STORE_HASH_BYTES])
{
	uint8_t		 got[STORE_HASH_BYTES];
	const char	*v;
	size_t		 n = 0;
	bool		 eq;

	if (PQgetisnull(res, row, col) ||
	    PQgetlength(res, row, col) != 2 + 2 * (int)STORE_HASH_BYTES)
		return false;
	v = PQgetvalue(res, row, col);
	if (v[0] != '\\' || v[1] != 'x' || sodium_hex2bin(got, sizeof(got), v + 2,
	    2 * STORE_HASH_BYTES, NULL, &n, NULL) != 0 || n != STORE_HASH_BYTES)
		return false;
	eq = sodium_memcmp(got, want, STORE_HASH_BYTES) == 0;
	sodium_memzero(got, sizeof(got));
	return eq;
}
