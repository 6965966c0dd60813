/*
 * store.h on PostgreSQL, what webhooks and the PIN check do: idempotency
 * claims, the finish transactions that check and count rate limits before
 * issuing a reset token or a PIN with its SMS, token redeem and PIN verify,
 * each atomic across instances through row locks. None logs a phone,
 * token, PIN, hash or message body.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "store.h"
#include "store_pg.h"

/* Rounds of insert, read and takeover before a claim that keeps moving fails. */
#define CLAIM_ROUNDS	3

enum claim_step { CLAIM_AGAIN, CLAIM_OPEN, CLAIM_READ };

/*
 * One round: insert the RUNNING row (NEW, its transaction left open), or
 * read the row that is there. A stale RUNNING row is taken over (NEW); a
 * row gone between the insert and the read means another round.
 */
static int
claim_round(struct pg_conn *c, const char *route, const char *key, int64_t now,
    int64_t stale_after, struct store_claim *out, enum claim_step *step)
{
	PGresult	*r = NULL;
	int		 rc = -1;

	*step = CLAIM_AGAIN;
	if (pg_exec(c, PS_CLAIM_INSERT, &r, "tti", route, key, now) == -1)
		return -1;
	if (PQntuples(r) == 1) {
		*step = CLAIM_OPEN;
		rc = 0;
		goto done;
	}
	PQclear(r);
	if (pg_exec(c, PS_CLAIM_GET, &r, "tt", route, key) == -1)
		return -1;
	rc = 0;
	if (PQntuples(r) == 0)
		goto done;	/* released meanwhile: insert again */
	if (pg_int(r, 0, 0) == STORE_CLAIM_DONE) {
		out->state = STORE_CLAIM_DONE;
		out->outcome = (int)pg_int(r, 0, 1);
		out->first_at = pg_int(r, 0, 3);
		out->id = pg_int(r, 0, 4);
		*step = CLAIM_READ;
		rc = pg_text(c, PS_CLAIM_GET, r, 0, 2, &out->user_id);
		goto done;
	}
	if (pg_int(r, 0, 3) > now - stale_after) {
		out->state = STORE_CLAIM_RUNNING;
		*step = CLAIM_READ;
		goto done;
	}
	/* Running for longer than stale_after: its process died. */
	PQclear(r);
	if (pg_exec(c, PS_CLAIM_TAKEOVER, &r, "ttii", route, key, now,
	    now - stale_after) == -1)
		return -1;
	if (PQntuples(r) == 1)
		*step = CLAIM_OPEN;
done:
	PQclear(r);
	return rc;
}

/*
 * One transaction per new webhook: the claim's RUNNING row is inserted in
 * it and stays uncommitted until the finish marks it DONE, so no other
 * instance ever reads it RUNNING; a duplicate's insert waits for that
 * commit (up to statement_timeout) and then reads DONE. A process that dies
 * mid-webhook leaves nothing: its session's transaction rolls back.
 */
int
pg_claim(struct store *s, const char *route, const char *key, int64_t now,
    int64_t stale_after, struct store_claim *out)
{
	struct pg_conn	*c;
	enum claim_step	 step = CLAIM_AGAIN;
	int		 rc = -1;

	out->state = STORE_CLAIM_NEW;
	out->outcome = 0;
	out->id = 0;
	out->first_at = 0;
	buf_reset(&out->user_id);
	if ((c = pg_conn(s)) == NULL)
		return -1;
	if (pg_in_txn(c)) {
		/* A NEW claim neither finished nor released: a bug of ours. */
		log_error("store: claim: a previous claim left its transaction open;"
		    " rolled back");
		pg_rollback(c);
	}
	if (pg_begin(c) == -1)
		return -1;
	for (int i = 0; i < CLAIM_ROUNDS && step == CLAIM_AGAIN; i++)
		if (claim_round(c, route, key, now, stale_after, out, &step) == -1)
			goto done;
	if (step == CLAIM_AGAIN) {
		pg_fail_msg(c, PS_CLAIM_GET, "the record kept changing");
		goto done;
	}
	/* NEW: the transaction stays open until finish or release. */
	rc = step == CLAIM_OPEN ? 0 : pg_commit(c);
done:
	if (rc == -1) {
		pg_rollback(c);
		out->state = STORE_CLAIM_NEW;
		buf_reset(&out->user_id);
	}
	return rc;
}

int
pg_claim_release(struct store *s, const char *route, const char *key)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	if (pg_in_txn(c)) {
		/* The claim's own transaction: its RUNNING row goes with it. */
		pg_rollback(c);
		return pg_in_txn(c) ? -1 : 0;
	}
	/* Nothing open: only a committed RUNNING row can remain; DONE is kept. */
	return pg_exec(c, PS_CLAIM_RELEASE, NULL, "tt", route, key);
}

/* The transaction store_claim left open, or a new one. */
static struct pg_conn *
finish_begin(struct store *s)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return NULL;
	if (!pg_in_txn(c) && pg_begin(c) == -1)
		return NULL;
	return c;
}

/*
 * Lock each limit's window row in order (creating it empty), so that the
 * check and the count below are one step for every instance; stop at the
 * first exhausted one, *limited_by, and drop the empty rows made for it.
 */
static int
limits_check(struct pg_conn *c, const struct store_limit *limits, size_t n,
    int64_t now, int *limited_by)
{
	PGresult	*r;
	size_t		 i;

	*limited_by = -1;
	for (i = 0; i < n && *limited_by == -1; i++) {
		if (limits[i].limit == 0)
			continue;
		if (pg_exec(c, PS_LIMIT_LOCK, &r, "tiii", limits[i].key, now,
		    (int64_t)limits[i].window, (int64_t)limits[i].limit) == -1)
			return -1;
		if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
			*limited_by = (int)i;
		PQclear(r);
	}
	for (size_t j = 0; *limited_by >= 0 && j < i; j++)
		if (limits[j].limit > 0 && pg_exec(c, PS_LIMIT_UNDO, NULL, "t",
		    limits[j].key) == -1)
			return -1;
	return 0;
}

/* Count one event against every limit that is on (their rows are locked). */
static int
limits_count(struct pg_conn *c, const struct store_limit *limits, size_t n,
    int64_t now)
{
	for (size_t i = 0; i < n; i++)
		if (limits[i].limit > 0 && pg_exec(c, PS_LIMIT_COUNT, NULL, "tii",
		    limits[i].key, now, (int64_t)limits[i].window) == -1)
			return -1;
	return 0;
}

/*
 * The common part of a finish: check the limits, mark the claim DONE (with
 * STORE_OUTCOME_LIMITED when a limit is exhausted), count them when none
 * is. *id is the claim's record's.
 */
static int
finish_claim(struct pg_conn *c, const char *route, const char *key, int outcome,
    const char *user_id, int64_t now, const struct store_limit *limits,
    size_t nlimits, int *limited_by, int64_t *id)
{
	PGresult	*r;

	*id = 0;
	if (limits_check(c, limits, nlimits, now, limited_by) == -1)
		return -1;
	if (*limited_by >= 0)
		outcome = STORE_OUTCOME_LIMITED;
	if (pg_exec(c, PS_CLAIM_FINISH, &r, "ttiti", route, key, (int64_t)outcome,
	    user_id, now) == -1)
		return -1;
	if (PQntuples(r) == 1)
		*id = pg_int(r, 0, 0);
	PQclear(r);
	if (*id == 0)
		/*
		 * Released, purged, or taken over and finished by another run:
		 * the side effect belongs to that run, so insert nothing.
		 */
		return pg_fail_msg(c, PS_CLAIM_FINISH, "the claim is no longer running");
	return *limited_by >= 0 ? 0 : limits_count(c, limits, nlimits, now);
}

int
pg_reset_finish(struct store *s, const char *route, const char *key,
    int outcome, const uint8_t *token_hash, const char *user_id,
    int64_t expires_at, int64_t now, const struct store_limit *limits,
    size_t nlimits, int *limited_by, int64_t *token_id)
{
	struct pg_conn	*c;
	int64_t		 id;
	int		 rc = -1;

	*limited_by = -1;
	*token_id = 0;
	if ((c = finish_begin(s)) == NULL)
		return -1;
	if (finish_claim(c, route, key, outcome, user_id, now, limits, nlimits,
	    limited_by, &id) == -1)
		goto done;
	if (*limited_by == -1 && token_hash != NULL) {
		if (pg_exec(c, PS_TOKEN_INSERT, NULL, "ihtii", id, token_hash, user_id,
		    expires_at, now) == -1)
			goto done;
		*token_id = id;
	}
	rc = pg_commit(c);
done:
	if (rc == -1) {
		pg_rollback(c);
		*token_id = 0;
	}
	return rc;
}

int
pg_pin_finish(struct store *s, const char *route, const char *key,
    int outcome, const struct store_pin *pin, int64_t now,
    const struct store_limit *limits, size_t nlimits, int *limited_by)
{
	struct pg_conn	*c;
	int64_t		 id;
	int		 rc = -1;

	*limited_by = -1;
	if ((c = finish_begin(s)) == NULL)
		return -1;
	/* The outbox hands destinations out in a fixed-size field. */
	if (pin != NULL && strlen(pin->phone) >= PG_PHONE_SIZE) {
		pg_fail_msg(c, PS_PIN_PUT, "destination too long");
		goto done;
	}
	if (finish_claim(c, route, key, outcome, pin != NULL ? pin->user_id : NULL,
	    now, limits, nlimits, limited_by, &id) == -1)
		goto done;
	if (*limited_by == -1 && pin != NULL &&
	    (pg_exec(c, PS_PIN_PUT, NULL, "tthii",
	    pin->user_id, pin->phone, pin->hash, pin->expires_at, now) == -1 ||
	    pg_exec(c, PS_OUTBOX_INSERT, NULL, "ttii", pin->phone, pin->sms_body, now,
	    pin->expires_at) == -1))
		goto done;
	rc = pg_commit(c);
done:
	if (rc == -1)
		pg_rollback(c);
	return rc;
}

/* Judge token id's locked row against hash; on OK append its user_id. */
static int
token_judge(struct pg_conn *c, int64_t id, const uint8_t *hash, int64_t now,
    enum store_redeem *result, struct buf *user_id)
{
	PGresult	*r;
	int		 rc = 0;

	if (pg_exec(c, PS_TOKEN_GET, &r, "i", id) == -1)
		return -1;
	/* A wrong secret learns nothing of the row its id names. */
	if (PQntuples(r) != 1 || !pg_hash_equal(r, 0, 0, hash))
		*result = STORE_REDEEM_UNKNOWN;
	else if (strcmp(PQgetvalue(r, 0, 3), "t") == 0)
		*result = STORE_REDEEM_SPENT;
	else if (pg_int(r, 0, 2) <= now)
		*result = STORE_REDEEM_EXPIRED;
	else {
		*result = STORE_REDEEM_OK;
		rc = pg_text(c, PS_TOKEN_GET, r, 0, 1, user_id);
	}
	PQclear(r);
	return rc;
}

/*
 * Read (row-locked), judge and spend in one transaction: a concurrent
 * redeem on any instance waits for the lock, then reads the row spent.
 */
int
pg_token_redeem(struct store *s, int64_t id,
    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
    enum store_redeem *result, struct buf *user_id)
{
	struct pg_conn	*c;
	int		 rc = -1;

	*result = STORE_REDEEM_UNKNOWN;
	if (id <= 0)
		return 0;
	if ((c = pg_conn(s)) == NULL || pg_begin(c) == -1)
		return -1;
	if (token_judge(c, id, token_hash, now, result, user_id) == -1)
		goto done;
	if (*result == STORE_REDEEM_OK &&
	    pg_exec(c, PS_TOKEN_SPEND, NULL, "ii", id, now) == -1)
		goto done;
	rc = pg_commit(c);
done:
	if (rc == -1) {
		pg_rollback(c);
		*result = STORE_REDEEM_UNKNOWN;
	}
	return rc;
}

/*
 * Judge a guess against the newest PIN for phone (row-locked), appending
 * its user_id on OK; *owner gets the PIN's user, empty when there is none.
 */
static int
pin_judge(struct pg_conn *c, const char *phone, const uint8_t *hash,
    unsigned max_attempts, int64_t now, enum store_pin_check *result,
    struct buf *owner, struct buf *user_id)
{
	PGresult	*r;
	int		 rc = 0;

	*result = STORE_PIN_NONE;
	if (pg_exec(c, PS_PIN_GET, &r, "t", phone) == -1)
		return -1;
	if (PQntuples(r) != 1)
		goto done;
	if (pg_text(c, PS_PIN_GET, r, 0, 0, owner) == -1) {
		rc = -1;
		goto done;
	}
	if (pg_int(r, 0, 2) <= now)
		*result = STORE_PIN_NONE;	/* expired */
	else if (pg_int(r, 0, 3) >= (int64_t)max_attempts)
		*result = STORE_PIN_LOCKED;
	else if (pg_hash_equal(r, 0, 1, hash)) {
		*result = STORE_PIN_OK;
		rc = pg_text(c, PS_PIN_GET, r, 0, 0, user_id);
	} else
		*result = STORE_PIN_WRONG;
done:
	PQclear(r);
	return rc;
}

int
pg_pin_verify(struct store *s, const char *phone,
    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
    enum store_pin_check *result, struct buf *user_id)
{
	struct pg_conn	*c;
	struct buf	 owner = BUF_INIT;
	int		 rc = -1;

	*result = STORE_PIN_NONE;
	if ((c = pg_conn(s)) == NULL || pg_begin(c) == -1)
		return -1;
	if (pin_judge(c, phone, hash, max_attempts, now, result, &owner,
	    user_id) == -1)
		goto done;
	/* A PIN is spent by its right guess; an expired one is dropped. */
	if (owner.len > 0 && (*result == STORE_PIN_OK || *result == STORE_PIN_NONE) &&
	    pg_exec(c, PS_PIN_DELETE, NULL, "t", owner.data) == -1)
		goto done;
	if (*result == STORE_PIN_WRONG &&
	    pg_exec(c, PS_PIN_WRONG, NULL, "t", owner.data) == -1)
		goto done;
	rc = pg_commit(c);
done:
	if (rc == -1) {
		pg_rollback(c);
		*result = STORE_PIN_NONE;
	}
	buf_free(&owner);
	return rc;
}
