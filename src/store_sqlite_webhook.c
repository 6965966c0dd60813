/*
 * store.h on SQLite, what webhooks and the PIN check do: idempotency claims,
 * the finish transactions that check and count rate limits before issuing a
 * reset token or a PIN with its SMS, token redeem and PIN verify. A new
 * webhook's claim, user lookup and finish are one transaction; none logs a
 * phone, token, PIN, hash or message body.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "store_sqlite.h"

/*
 * Read the claim's record: DONE or RUNNING, or NEW when it is stale (its
 * process died) or when there is none (*absent).
 */
static int
claim_read(struct conn *c, const char *route, const char *key, int64_t now,
    int64_t stale_after, struct store_claim *out, bool *absent)
{
	sqlite3_stmt	*st;
	int		 r, rc = -1;

	*absent = false;
	if (sq_bind(c, ST_CLAIM_GET, "tt", route, key) == -1 ||
	    (r = sq_step(c, ST_CLAIM_GET)) == -1)
		goto done;
	rc = 0;
	st = c->stmt[ST_CLAIM_GET];
	if (r == 0) {
		*absent = true;
		out->state = STORE_CLAIM_NEW;
	} else if (sqlite3_column_int(st, 0) == STORE_CLAIM_DONE) {
		out->state = STORE_CLAIM_DONE;
		out->outcome = sqlite3_column_int(st, 1);
		out->id = sqlite3_column_int64(st, 4);
		out->first_at = sqlite3_column_int64(st, 3);
		rc = sq_text(c, ST_CLAIM_GET, 2, &out->user_id);
	} else
		out->state = sqlite3_column_int64(st, 3) > now - stale_after ?
		    STORE_CLAIM_RUNNING : STORE_CLAIM_NEW;
done:
	sq_reset(c, ST_CLAIM_GET);
	return rc;
}

/*
 * One write transaction per new webhook: a NEW claim keeps its BEGIN
 * IMMEDIATE open, so the handler's user lookup and its finish share it.
 * Nobody can see or race it meanwhile, so a fresh claim writes no RUNNING
 * row at all: the connection remembers it, and the finish inserts the DONE
 * record in one write. A duplicate arriving meanwhile waits for the write
 * lock (busy_timeout, in this process and across processes) and then reads
 * DONE; it reads RUNNING only from a row committed by a process
 * that died mid-webhook (or by a backend that commits claims on their own).
 */
int
sq_claim(struct store *s, const char *route, const char *key, int64_t now,
    int64_t stale_after, struct store_claim *out)
{
	struct conn	*c;
	bool		 absent;
	int		 rc = -1;

	out->state = STORE_CLAIM_NEW;
	out->outcome = 0;
	out->id = 0;
	out->first_at = 0;
	buf_reset(&out->user_id);
	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (sq_in_txn(c)) {
		/* A NEW claim neither finished nor released: a bug of ours. */
		log_error("store: claim: a previous claim left its transaction open;"
		    " rolled back");
		sq_rollback(c);
	}
	if (sq_begin(c) == -1)
		return -1;
	if (claim_read(c, route, key, now, stale_after, out, &absent) == -1)
		goto done;
	if (absent) {
		/* Too long to remember: write the RUNNING row after all. */
		if (snprintf(c->claim, sizeof(c->claim), "%s%c%s", route, '\n', key) >=
		    (int)sizeof(c->claim)) {
			c->claim[0] = '\0';
			if (sq_exec(c, ST_CLAIM_INSERT, "tti", route, key, now) == -1)
				goto done;
		}
		c->claim_at = now;
	} else if (out->state == STORE_CLAIM_NEW && sq_exec(c, ST_CLAIM_TAKEOVER,
	    "tti", route, key, now) == -1)
		goto done;	/* running for longer than stale_after: its process died */
	/* NEW: the transaction stays open until finish or release. */
	rc = out->state == STORE_CLAIM_NEW ? 0 : sq_commit(c);
done:
	if (rc == -1)
		sq_rollback(c);
	return rc;
}

/* Is (route, key) the fresh claim whose transaction c has open? */
static bool
claim_is_fresh(const struct conn *c, const char *route, const char *key)
{
	size_t	n = strlen(route);

	return c->claim[0] != '\0' && strncmp(c->claim, route, n) == 0 &&
	    c->claim[n] == '\n' && strcmp(c->claim + n + 1, key) == 0;
}

int
sq_claim_release(struct store *s, const char *route, const char *key)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return -1;
	if (sq_in_txn(c)) {
		/* The claim's own transaction: its RUNNING row goes with it. */
		sq_rollback(c);
		return sq_in_txn(c) ? -1 : 0;
	}
	/*
	 * Nothing open: the finish already committed or rolled back. Only a
	 * committed RUNNING row can remain (none of ours); DONE is kept.
	 */
	return sq_exec(c, ST_CLAIM_RELEASE, "tt", route, key);
}

/*
 * Enter a finish transaction: the one store_claim left open, or a new one
 * when the caller holds none (finish then fails unless the claim is RUNNING).
 */
static struct conn *
finish_begin(struct store *s)
{
	struct conn	*c;

	if ((c = sq_conn(s)) == NULL)
		return NULL;
	if (!sq_in_txn(c) && sq_begin(c) == -1)
		return NULL;
	return c;
}

/*
 * Rate limits: is any of them exhausted at now? Every one is checked before
 * any is counted; *limited_by is the first exhausted index, else -1.
 */
static int
limits_check(struct conn *c, const struct store_limit *limits, size_t n,
    int64_t now, int *limited_by)
{
	int	r;

	*limited_by = -1;
	for (size_t i = 0; i < n && *limited_by == -1; i++) {
		if (limits[i].limit == 0)
			continue;
		if (sq_bind(c, ST_LIMIT_CHECK, "tiii", limits[i].key, now,
		    (int64_t)limits[i].window, (int64_t)limits[i].limit) == -1 ||
		    (r = sq_step(c, ST_LIMIT_CHECK)) == -1) {
			sq_reset(c, ST_LIMIT_CHECK);
			return -1;
		}
		if (r == 1 && sqlite3_column_int(c->stmt[ST_LIMIT_CHECK], 0))
			*limited_by = (int)i;
		sq_reset(c, ST_LIMIT_CHECK);
	}
	return 0;
}

/* Count one event against every limit that is on. */
static int
limits_count(struct conn *c, const struct store_limit *limits, size_t n,
    int64_t now)
{
	for (size_t i = 0; i < n; i++)
		if (limits[i].limit > 0 && sq_exec(c, ST_LIMIT_COUNT, "tii",
		    limits[i].key, now, (int64_t)limits[i].window) == -1)
			return -1;
	return 0;
}

/*
 * Mark the claim DONE: the fresh claim's record inserted whole, or a RUNNING
 * row updated. *id is the record's, 0 when no RUNNING row matched.
 */
static int
claim_put_done(struct conn *c, const char *route, const char *key, int outcome,
    const char *user_id, int64_t now, int64_t *id)
{
	int	r = -1;

	*id = 0;
	if (claim_is_fresh(c, route, key)) {
		if (sq_exec(c, ST_CLAIM_PUT_DONE, "ttitii", route, key, (int64_t)outcome,
		    user_id, c->claim_at, now) == -1)
			return -1;
		*id = sqlite3_last_insert_rowid(c->db);
		return 0;
	}
	if (sq_bind(c, ST_CLAIM_FINISH, "ttiti", route, key, (int64_t)outcome,
	    user_id, now) == -1 || (r = sq_step(c, ST_CLAIM_FINISH)) == -1)
		goto done;
	if (r == 1) {
		*id = sqlite3_column_int64(c->stmt[ST_CLAIM_FINISH], 0);
		r = sq_step(c, ST_CLAIM_FINISH);	/* completes the UPDATE */
	}
done:
	sq_reset(c, ST_CLAIM_FINISH);
	return r == -1 ? -1 : 0;
}

/*
 * The common part of a finish transaction, already begun: check the limits,
 * mark the claim DONE (with STORE_OUTCOME_LIMITED when a limit is
 * exhausted), and when none is, count them all. The caller then inserts its
 * side effect only when *limited_by is -1. *id is the claim's record's.
 */
static int
finish_claim(struct conn *c, const char *route, const char *key, int outcome,
    const char *user_id, int64_t now, const struct store_limit *limits,
    size_t nlimits, int *limited_by, int64_t *id)
{
	if (limits_check(c, limits, nlimits, now, limited_by) == -1)
		return -1;
	if (*limited_by >= 0)
		outcome = STORE_OUTCOME_LIMITED;
	if (claim_put_done(c, route, key, outcome, user_id, now, id) == -1)
		return -1;
	if (*id == 0) {
		/*
		 * Released, purged, or taken over and finished by another run:
		 * the side effect belongs to that run, so insert nothing.
		 */
		log_error("store: claim finish: the claim is no longer running");
		return -1;
	}
	return *limited_by >= 0 ? 0 : limits_count(c, limits, nlimits, now);
}

int
sq_reset_finish(struct store *s, const char *route, const char *key,
    int outcome, const uint8_t *token_hash, const char *user_id,
    int64_t expires_at, int64_t now, const struct store_limit *limits,
    size_t nlimits, int *limited_by, int64_t *token_id)
{
	struct conn	*c;
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
		if (sq_exec(c, ST_TOKEN_INSERT, "ihtii", id, token_hash, user_id,
		    expires_at, now) == -1)
			goto done;
		*token_id = id;
	}
	rc = sq_commit(c);
done:
	if (rc == -1) {
		sq_rollback(c);
		*token_id = 0;
	}
	return rc;
}

int
sq_pin_finish(struct store *s, const char *route, const char *key,
    int outcome, const struct store_pin *pin, int64_t now,
    const struct store_limit *limits, size_t nlimits, int *limited_by)
{
	struct conn	*c;
	int64_t		 id;
	int		 rc = -1;

	*limited_by = -1;
	if ((c = finish_begin(s)) == NULL)
		return -1;
	/* The outbox hands destinations out in a fixed-size field. */
	if (pin != NULL && strlen(pin->phone) >= SQ_PHONE_SIZE) {
		log_error("store: pin finish: destination longer than %zu bytes",
		    SQ_PHONE_SIZE - 1);
		goto done;
	}
	if (finish_claim(c, route, key, outcome, pin != NULL ? pin->user_id : NULL,
	    now, limits, nlimits, limited_by, &id) == -1)
		goto done;
	if (*limited_by == -1 && pin != NULL &&
	    (sq_exec(c, ST_PIN_PUT, "tthii", pin->user_id, pin->phone, pin->hash,
	    pin->expires_at, now) == -1 ||
	    sq_exec(c, ST_OUTBOX_INSERT, "ttii", pin->phone, pin->sms_body, now,
	    pin->expires_at) == -1))
		goto done;
	rc = sq_commit(c);
done:
	if (rc == -1)
		sq_rollback(c);
	return rc;
}

/* Column col of the current row is a hash equal to want, compared in constant time. */
static bool
hash_equal(sqlite3_stmt *st, int col, const uint8_t *want)
{
	const void	*p = sqlite3_column_blob(st, col);

	return p != NULL && sqlite3_column_bytes(st, col) == STORE_HASH_BYTES &&
	    sodium_memcmp(p, want, STORE_HASH_BYTES) == 0;
}

/* Judge token id's row against hash; on OK append its user_id. */
static int
token_judge(struct conn *c, int64_t id, const uint8_t *hash, int64_t now,
    enum store_redeem *result, struct buf *user_id)
{
	sqlite3_stmt	*st;
	int		 r, rc = -1;

	if (sq_bind(c, ST_TOKEN_GET, "i", id) == -1 ||
	    (r = sq_step(c, ST_TOKEN_GET)) == -1)
		goto done;
	rc = 0;
	st = c->stmt[ST_TOKEN_GET];
	/* A wrong secret learns nothing of the row its id names. */
	if (r == 0 || !hash_equal(st, 0, hash))
		*result = STORE_REDEEM_UNKNOWN;
	else if (sqlite3_column_int(st, 3))
		*result = STORE_REDEEM_SPENT;
	else if (sqlite3_column_int64(st, 2) <= now)
		*result = STORE_REDEEM_EXPIRED;
	else {
		*result = STORE_REDEEM_OK;
		rc = sq_text(c, ST_TOKEN_GET, 1, user_id);
	}
done:
	sq_reset(c, ST_TOKEN_GET);
	return rc;
}

int
sq_token_redeem(struct store *s, int64_t id,
    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
    enum store_redeem *result, struct buf *user_id)
{
	struct conn	*c;
	int		 rc = -1;

	*result = STORE_REDEEM_UNKNOWN;
	if ((c = sq_conn(s)) == NULL)
		return -1;
	/* Read, judge and spend in one write transaction: one caller gets OK. */
	if (sq_begin(c) == -1)
		return -1;
	if (token_judge(c, id, token_hash, now, result, user_id) == -1)
		goto done;
	if (*result == STORE_REDEEM_OK &&
	    sq_exec(c, ST_TOKEN_SPEND, "ii", id, now) == -1)
		goto done;
	rc = sq_commit(c);
done:
	if (rc == -1) {
		sq_rollback(c);
		*result = STORE_REDEEM_UNKNOWN;
	}
	return rc;
}

/*
 * Judge a guess against the newest PIN for phone, appending its user_id on
 * OK. *rowid is that PIN's row, 0 when the phone has none.
 */
static int
pin_judge(struct conn *c, const char *phone, const uint8_t *hash,
    unsigned max_attempts, int64_t now, enum store_pin_check *result,
    int64_t *rowid, struct buf *user_id)
{
	sqlite3_stmt	*st;
	int		 r, rc = -1;

	*rowid = 0;
	*result = STORE_PIN_NONE;
	if (sq_bind(c, ST_PIN_GET, "t", phone) == -1 ||
	    (r = sq_step(c, ST_PIN_GET)) == -1)
		goto done;
	rc = 0;
	if (r == 0)
		goto done;
	st = c->stmt[ST_PIN_GET];
	*rowid = sqlite3_column_int64(st, 0);
	if (sqlite3_column_int64(st, 3) <= now)
		*result = STORE_PIN_NONE;	/* expired */
	else if (sqlite3_column_int64(st, 4) >= (int64_t)max_attempts)
		*result = STORE_PIN_LOCKED;
	else if (hash_equal(st, 2, hash)) {
		*result = STORE_PIN_OK;
		rc = sq_text(c, ST_PIN_GET, 1, user_id);
	} else
		*result = STORE_PIN_WRONG;
done:
	sq_reset(c, ST_PIN_GET);
	return rc;
}

int
sq_pin_verify(struct store *s, const char *phone,
    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
    enum store_pin_check *result, struct buf *user_id)
{
	struct conn	*c;
	int64_t		 rowid;
	int		 rc = -1;

	*result = STORE_PIN_NONE;
	if ((c = sq_conn(s)) == NULL || sq_begin(c) == -1)
		return -1;
	if (pin_judge(c, phone, hash, max_attempts, now, result, &rowid,
	    user_id) == -1)
		goto done;
	/* A PIN is spent by its right guess; an expired one is dropped. */
	if ((*result == STORE_PIN_OK || (*result == STORE_PIN_NONE && rowid != 0)) &&
	    sq_exec(c, ST_PIN_DELETE, "i", rowid) == -1)
		goto done;
	if (*result == STORE_PIN_WRONG &&
	    sq_exec(c, ST_PIN_WRONG, "i", rowid) == -1)
		goto done;
	rc = sq_commit(c);
done:
	if (rc == -1) {
		sq_rollback(c);
		*result = STORE_PIN_NONE;
	}
	return rc;
}
