/*
 * store.h on SQLite, the outbox worker's side: lease due messages, record
 * what Twilio answered, erase a body once it is sent or abandoned, and
 * apply status callbacks in order. Rows are inserted by store_pin_finish.
 * No log line carries a destination or a body.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store_backend.h"
#include "store_sqlite.h"

/* Copy the current leased row (id, to_phone, body, attempts, expires_at) into m. */
static int
lease_row(struct conn *c, struct store_outbox_msg *m)
{
	sqlite3_stmt		*st = c->stmt[ST_OUTBOX_LEASE];
	const unsigned char	*to;

	*m = (struct store_outbox_msg){ .id = sqlite3_column_int64(st, 0) };
	m->attempts = (unsigned)sqlite3_column_int(st, 3);
	m->expires_at = sqlite3_column_int64(st, 4);
	if ((to = sqlite3_column_text(st, 1)) == NULL)
		return sq_fail(c, ST_OUTBOX_LEASE);	/* NOT NULL: out of memory */
	/* store_pin_finish refuses longer ones; an empty To fails at Twilio. */
	if ((size_t)sqlite3_column_bytes(st, 1) < sizeof(m->to))
		memcpy(m->to, to, (size_t)sqlite3_column_bytes(st, 1) + 1);
	else
		log_error("store: outbox lease: message %lld: destination too long",
		    (long long)m->id);
	return sq_text(c, ST_OUTBOX_LEASE, 2, &m->body);
}

/*
 * One UPDATE ... RETURNING picks and marks the rows under the write lock, so
 * two workers never lease the same row; the transaction lets a failure
 * halfway through the copy undo the lease.
 */
int
sq_outbox_lease(struct store *s, int64_t now, int64_t lease,
    struct store_outbox_msg *out, size_t max, size_t *n)
{
	struct conn	*c;
	size_t		 i = 0;
	int		 r, rc = -1;

	*n = 0;
	if (max == 0)
		return 0;
	if ((c = sq_conn(s)) == NULL || sq_begin(c) == -1)
		return -1;
	if (sq_bind(c, ST_OUTBOX_LEASE, "iii", now, now + lease, (int64_t)max) == -1)
		goto done;
	while ((r = sq_step(c, ST_OUTBOX_LEASE)) == 1) {
		if (i == max) {
			log_error("store: outbox lease: more rows than asked for");
			goto done;
		}
		if (lease_row(c, &out[i++]) == -1)
			goto done;
	}
	if (r == -1)
		goto done;
	/* COMMIT refuses while a write statement is still active. */
	sq_reset(c, ST_OUTBOX_LEASE);
	if (sq_commit(c) == -1)
		goto done;
	*n = i;
	rc = 0;
done:
	sq_reset(c, ST_OUTBOX_LEASE);
	if (rc == -1) {
		sq_rollback(c);
		while (i > 0)
			buf_free_secret(&out[--i].body);
	}
	return rc;
}

int
sq_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	return sq_exec(c, ST_OUTBOX_SENT, "iti", id, twilio_sid, now);
}

int
sq_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
    long http_status, int error_code)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	return sq_exec(c, ST_OUTBOX_RETRY, "iiii", id, next_attempt_at,
	    (int64_t)http_status, (int64_t)error_code);
}

int
sq_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
    int error_code, int64_t now)
{
	struct conn	*c;

	(void)now;	/* the schema keeps no time of giving up */
	if ((c = sq_conn(s)) == NULL)
		return -1;
	return sq_exec(c, ST_OUTBOX_GIVE_UP, "iiii", id, (int64_t)expired,
	    (int64_t)http_status, (int64_t)error_code);
}

/* Read then write in one IMMEDIATE transaction: racing callbacks are ordered. */
int
sq_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
    int error_code, bool *found)
{
	struct conn	*c;
	sqlite3_stmt	*st;
	int64_t		 id = 0;
	bool		 later = false;
	int		 r, rc = -1;

	*found = false;
	if ((c = sq_conn(s)) == NULL || sq_begin(c) == -1)
		return -1;
	if (sq_bind(c, ST_OUTBOX_SID_GET, "t", twilio_sid) == -1 ||
	    (r = sq_step(c, ST_OUTBOX_SID_GET)) == -1)
		goto done;
	if (r == 1) {
		st = c->stmt[ST_OUTBOX_SID_GET];
		*found = true;
		id = sqlite3_column_int64(st, 0);
		later = store_delivery_rank(status) >
		    store_delivery_rank((const char *)sqlite3_column_text(st, 1));
	}
	sq_reset(c, ST_OUTBOX_SID_GET);
	if (later && sq_exec(c, ST_OUTBOX_DELIVERY, "iti", id, status,
	    (int64_t)error_code) == -1)
		goto done;
	rc = sq_commit(c);
done:
	sq_reset(c, ST_OUTBOX_SID_GET);
	if (rc == -1) {
		sq_rollback(c);
		*found = false;
	}
	return rc;
}

int
sq_outbox_depth(struct store *s, int64_t *depth)
{
	struct conn	*c;
	int		 r, rc = -1;

	*depth = 0;
	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (sq_bind(c, ST_OUTBOX_DEPTH, "") == -1 ||
	    (r = sq_step(c, ST_OUTBOX_DEPTH)) == -1)
		goto done;
	if (r == 0) {
		log_error("store: outbox depth: count returned no row");
		goto done;
	}
	*depth = sqlite3_column_int64(c->stmt[ST_OUTBOX_DEPTH], 0);
	rc = 0;
done:
	sq_reset(c, ST_OUTBOX_DEPTH);
	return rc;
}
