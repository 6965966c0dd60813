/*
 * store.h on PostgreSQL, the outbox worker's side, shared by every
 * instance: lease due messages with FOR UPDATE SKIP LOCKED (never one row
 * to two workers; a lease that ran out is anyone's), record what Twilio
 * answered, erase a body once sent or abandoned, apply status callbacks in
 * order. Rows are inserted by store_pin_finish. No log line carries a
 * destination or a body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "store_backend.h"
#include "store_pg.h"

/* Copy leased row i (id, to_phone, body, attempts, expires_at) into m. */
static int
lease_row(struct pg_conn *c, const PGresult *r, int i, struct store_outbox_msg *m)
{
	size_t	n = (size_t)PQgetlength(r, i, 1);

	*m = (struct store_outbox_msg){ .id = pg_int(r, i, 0) };
	m->attempts = (unsigned)pg_int(r, i, 3);
	m->expires_at = pg_int(r, i, 4);
	/* store_pin_finish refuses longer ones; an empty To fails at Twilio. */
	if (n < sizeof(m->to))
		memcpy(m->to, PQgetvalue(r, i, 1), n + 1);
	else
		log_error("store: outbox lease: message %lld: destination too long",
		    (long long)m->id);
	return pg_text(c, PS_OUTBOX_LEASE, r, i, 2, &m->body);
}

static int
by_id(const void *a, const void *b)
{
	const struct store_outbox_msg *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/*
 * One UPDATE picks and marks the rows, committed before this returns (in
 * a batch: with the batch, which the caller waits for). RETURNING has no
 * order of its own: the rows are sorted oldest first here.
 */
int
pg_outbox_lease(struct store *s, int64_t now, int64_t lease,
    struct store_outbox_msg *out, size_t max, size_t *n)
{
	struct pg_conn	*c;
	PGresult	*r = NULL;
	size_t		 i = 0;
	int		 rows, rc = -1;

	*n = 0;
	if (max == 0)
		return 0;
	if ((c = pg_conn(s)) == NULL || pg_begin(c) == -1)
		return -1;
	if (pg_exec(c, PS_OUTBOX_LEASE, &r, "iii", now, now + lease, (int64_t)max) == -1)
		goto done;
	if ((rows = PQntuples(r)) < 0 || (size_t)rows > max) {
		pg_fail_msg(c, PS_OUTBOX_LEASE, "more rows than asked for");
		goto done;
	}
	for (; i < (size_t)rows; i++)
		if (lease_row(c, r, (int)i, &out[i]) == -1) {
			i++;
			goto done;
		}
	if (pg_commit(c) == -1)
		goto done;
	qsort(out, i, sizeof(out[0]), by_id);
	*n = i;
	rc = 0;
done:
	PQclear(r);
	if (rc == -1) {
		pg_rollback(c);
		while (i > 0)
			buf_free_secret(&out[--i].body);
	}
	return rc;
}

int
pg_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	return pg_exec(c, PS_OUTBOX_SENT, NULL, "iti", id, twilio_sid, now);
}

int
pg_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
    long http_status, int error_code)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	return pg_exec(c, PS_OUTBOX_RETRY, NULL, "iiii", id, next_attempt_at,
	    (int64_t)http_status, (int64_t)error_code);
}

int
pg_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
    int error_code, int64_t now)
{
	struct pg_conn	*c;

	(void)now;	/* the schema keeps no time of giving up */
	if ((c = pg_conn(s)) == NULL)
		return -1;
	return pg_exec(c, PS_OUTBOX_GIVE_UP, NULL, "iiii", id, (int64_t)expired,
	    (int64_t)http_status, (int64_t)error_code);
}

/* Read (row-locked) then write in one transaction: racing callbacks are ordered. */
int
pg_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
    int error_code, bool *found)
{
	struct pg_conn	*c;
	PGresult	*r;
	int64_t		 id = 0;
	bool		 later = false;
	int		 rc = -1;

	*found = false;
	if ((c = pg_conn(s)) == NULL || pg_begin(c) == -1)
		return -1;
	if (pg_exec(c, PS_OUTBOX_SID_GET, &r, "t", twilio_sid) == -1)
		goto done;
	if (PQntuples(r) == 1) {
		*found = true;
		id = pg_int(r, 0, 0);
		later = store_delivery_rank(status) > store_delivery_rank(PQgetisnull(r, 0, 1) ?
		    NULL : PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	if (later && pg_exec(c, PS_OUTBOX_DELIVERY, NULL, "iti", id, status,
	    (int64_t)error_code) == -1)
		goto done;
	rc = pg_commit(c);
done:
	if (rc == -1) {
		pg_rollback(c);
		*found = false;
	}
	return rc;
}

int
pg_outbox_depth(struct store *s, int64_t *depth)
{
	struct pg_conn	*c;
	PGresult	*r;
	int		 rc = -1;

	*depth = 0;
	if ((c = pg_conn(s)) == NULL ||
	    pg_exec(c, PS_OUTBOX_DEPTH, &r, "") == -1)
		return -1;
	if (PQntuples(r) == 1) {
		*depth = pg_int(r, 0, 0);
		rc = 0;
	} else
		pg_fail_msg(c, PS_OUTBOX_DEPTH, "count returned no row");
	PQclear(r);
	return rc;
}
