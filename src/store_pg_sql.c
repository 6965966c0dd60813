/*
 * store.h on PostgreSQL, its SQL: every statement of the backend in one
 * table, prepared by name once per connection (store_pg_conn.c) and run
 * with bound parameters only; no statement is built from values.
 */
#include "store.h"
#include "store_pg.h"

/* The webhooks.state column holds these values; the SQL below spells them 1 and 2. */
_Static_assert(STORE_CLAIM_RUNNING == 1 && STORE_CLAIM_DONE == 2, "claim states");

/*
 * All SQL of the backend, PostgreSQL dialect. Parameters outside a column's
 * context carry a cast so that every statement prepares with fixed types.
 */
const struct pg_stmt pg_stmts[PS_COUNT] = {
	[PS_BEGIN] = { "begin", "BEGIN ISOLATION LEVEL READ COMMITTED" },
	[PS_COMMIT] = { "commit", "COMMIT" },
	[PS_ROLLBACK] = { "rollback", "ROLLBACK" },
	[PS_SAVEPOINT] = { "job begin", "SAVEPOINT job" },
	[PS_RELEASE] = { "job commit", "RELEASE SAVEPOINT job" },
	[PS_ROLLBACK_TO] = { "job rollback", "ROLLBACK TO SAVEPOINT job" },
	[PS_PROBE] = { "probe", "INSERT INTO health (id, checked_at, pad)"
	    " VALUES (1, $1, ''::bytea) ON CONFLICT (id) DO UPDATE SET"
	    " checked_at = excluded.checked_at, pad = excluded.pad" },
	[PS_USER_PUT] = { "user add", "INSERT INTO users (phone, user_id)"
	    " VALUES ($1, $2) ON CONFLICT (phone)"
	    " DO UPDATE SET user_id = excluded.user_id" },
	[PS_USER_DELETE] = { "user remove", "DELETE FROM users WHERE phone = $1" },
	/* The column's collation is "C": byte order, as SQLite sorts. */
	[PS_USER_LIST] = { "user list",
	    "SELECT phone, user_id FROM users ORDER BY phone" },
	[PS_USER_GET] = { "user lookup",
	    "SELECT user_id FROM users WHERE phone = $1" },
	/*
	 * Inside the claim's transaction: a concurrent duplicate's insert waits
	 * on the unique index until this one commits (then does nothing and
	 * reads DONE) or rolls back (then inserts and runs).
	 */
	[PS_CLAIM_INSERT] = { "claim", "INSERT INTO webhooks (route, key, state,"
	    " started_at) VALUES ($1, $2, 1, $3)"
	    " ON CONFLICT (route, key) DO NOTHING RETURNING id" },
	[PS_CLAIM_GET] = { "claim", "SELECT state, outcome, user_id, started_at, id"
	    " FROM webhooks WHERE route = $1 AND key = $2" },
	/* Row-locked: of two instances taking over, the second re-reads it fresh. */
	[PS_CLAIM_TAKEOVER] = { "claim takeover", "UPDATE webhooks"
	    " SET started_at = $3 WHERE route = $1 AND key = $2 AND state = 1"
	    " AND started_at <= $4::bigint RETURNING id" },
	[PS_CLAIM_RELEASE] = { "claim release", "DELETE FROM webhooks"
	    " WHERE route = $1 AND key = $2 AND state = 1" },
	[PS_CLAIM_FINISH] = { "claim finish", "UPDATE webhooks SET state = 2,"
	    " outcome = $3, user_id = $4, finished_at = $5"
	    " WHERE route = $1 AND key = $2 AND state = 1 RETURNING id" },
	/*
	 * Lock the window's row, creating it empty when there is none, so that
	 * a limit is checked and counted by one instance at a time, even on a
	 * key nobody used yet. Fixed windows: one that ended (now >= start +
	 * window) counts as empty.
	 */
	[PS_LIMIT_LOCK] = { "limit check", "INSERT INTO rate_limits"
	    " (key, window_start, count) VALUES ($1, $2, 0) ON CONFLICT (key)"
	    " DO UPDATE SET count = rate_limits.count"
	    " RETURNING $2::bigint < window_start + $3::bigint AND count >= $4::bigint" },
	/* Every right-hand side of an UPDATE reads the row as it was. */
	[PS_LIMIT_COUNT] = { "limit count", "UPDATE rate_limits SET"
	    " window_start = CASE WHEN $2::bigint >= window_start + $3::bigint"
	    "  THEN $2::bigint ELSE window_start END,"
	    " count = CASE WHEN $2::bigint >= window_start + $3::bigint"
	    "  THEN 1 ELSE count + 1 END WHERE key = $1" },
	/* A limited finish counts nothing: drop the empty rows its lock made. */
	[PS_LIMIT_UNDO] = { "limit check",
	    "DELETE FROM rate_limits WHERE key = $1 AND count = 0" },
	[PS_TOKEN_INSERT] = { "token insert", "INSERT INTO reset_tokens"
	    " (id, hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)" },
	/* Locked until the spend commits: a racing redeem then reads it spent. */
	[PS_TOKEN_GET] = { "token redeem", "SELECT hash, user_id, expires_at,"
	    " used_at IS NOT NULL FROM reset_tokens WHERE id = $1 FOR UPDATE" },
	[PS_TOKEN_SPEND] = { "token redeem", "UPDATE reset_tokens SET used_at = $2"
	    " WHERE id = $1 AND used_at IS NULL" },
	[PS_PIN_PUT] = { "pin insert", "INSERT INTO pins (user_id, phone, hash,"
	    " expires_at, attempts, created_at) VALUES ($1, $2, $3, $4, 0, $5)"
	    " ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone,"
	    " hash = excluded.hash, expires_at = excluded.expires_at,"
	    " attempts = 0, created_at = excluded.created_at" },
	/* Users sharing a phone: the PIN issued last is the one the phone holds. */
	[PS_PIN_GET] = { "pin verify", "SELECT user_id, hash, expires_at, attempts"
	    " FROM pins WHERE phone = $1"
	    " ORDER BY created_at DESC, user_id DESC LIMIT 1 FOR UPDATE" },
	[PS_PIN_DELETE] = { "pin verify", "DELETE FROM pins WHERE user_id = $1" },
	[PS_PIN_WRONG] = { "pin verify",
	    "UPDATE pins SET attempts = attempts + 1 WHERE user_id = $1" },
	[PS_OUTBOX_INSERT] = { "outbox insert", "INSERT INTO outbox (to_phone,"
	    " body, status, next_attempt_at, expires_at, created_at)"
	    " VALUES ($1, $2, 'pending', $3, $4, $3)" },
	/*
	 * The SKIP LOCKED queue: rows another instance is leasing right now are
	 * passed over, never waited for or leased twice; a row whose lease ran
	 * out is due again for anyone.
	 */
	[PS_OUTBOX_LEASE] = { "outbox lease", "UPDATE outbox SET"
	    " status = 'sending', attempts = attempts + 1, lease_until = $2"
	    " WHERE id IN (SELECT id FROM outbox"
	    "  WHERE status IN ('pending', 'sending')"
	    "  AND ((status = 'pending' AND next_attempt_at <= $1::bigint)"
	    "  OR (status = 'sending' AND lease_until < $1::bigint))"
	    "  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)"
	    " RETURNING id, to_phone, body, attempts, expires_at" },
	[PS_OUTBOX_SENT] = { "outbox sent", "UPDATE outbox SET status = 'sent',"
	    " twilio_sid = $2, sent_at = $3, body = NULL, lease_until = NULL"
	    " WHERE id = $1" },
	[PS_OUTBOX_RETRY] = { "outbox retry", "UPDATE outbox SET"
	    " status = 'pending', next_attempt_at = $2,"
	    " http_status = NULLIF($3::integer, 0),"
	    " error_code = NULLIF($4::integer, 0), lease_until = NULL"
	    " WHERE id = $1 AND status IN ('pending', 'sending')" },
	[PS_OUTBOX_GIVE_UP] = { "outbox give up", "UPDATE outbox SET"
	    " status = CASE WHEN $2::bigint <> 0 THEN 'expired' ELSE 'failed' END,"
	    " body = NULL, http_status = NULLIF($3::integer, 0),"
	    " error_code = NULLIF($4::integer, 0), lease_until = NULL"
	    " WHERE id = $1 AND status IN ('pending', 'sending')" },
	/* Locked: racing callbacks for one message are applied one after the other. */
	[PS_OUTBOX_SID_GET] = { "outbox delivery", "SELECT id, delivery_status"
	    " FROM outbox WHERE twilio_sid = $1 ORDER BY id DESC LIMIT 1 FOR UPDATE" },
	[PS_OUTBOX_DELIVERY] = { "outbox delivery", "UPDATE outbox SET"
	    " delivery_status = $2,"
	    " error_code = coalesce(NULLIF($3::integer, 0), error_code)"
	    " WHERE id = $1" },
	[PS_OUTBOX_DEPTH] = { "outbox depth", "SELECT count(*) FROM outbox"
	    " WHERE status IN ('pending', 'sending')" },
	/*
	 * Ids follow arrival, so what is old is a prefix, as in SQLite's purge:
	 * delete the rows before the first one still to keep.
	 */
	[PS_PURGE_WEBHOOKS] = { "purge", "DELETE FROM webhooks WHERE id < coalesce("
	    "(SELECT id FROM webhooks WHERE started_at >= $1::bigint"
	    " AND started_at <= $2::bigint ORDER BY id LIMIT 1),"
	    " (SELECT max(id) + 1 FROM webhooks))" },
	[PS_PURGE_TOKENS] = { "purge", "DELETE FROM reset_tokens WHERE id < coalesce("
	    "(SELECT id FROM reset_tokens WHERE expires_at >= $1::bigint"
	    " AND expires_at <= $2::bigint ORDER BY id LIMIT 1),"
	    " (SELECT max(id) + 1 FROM reset_tokens))" },
	[PS_PURGE_PINS] = { "purge", "DELETE FROM pins WHERE expires_at < $1" },
	[PS_PURGE_OUTBOX] = { "purge", "DELETE FROM outbox"
	    " WHERE status IN ('sent', 'failed', 'expired') AND created_at < $1" },
	[PS_PURGE_LIMITS] = { "purge",
	    "DELETE FROM rate_limits WHERE window_start < $1" },
};
