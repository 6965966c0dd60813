/*
 * Persistence behind one interface: users, idempotency records, reset tokens,
 * PINs, rate-limit windows and the SMS outbox. Two backends implement it
 * (store_backend.h): store_sqlite.c, one file for one instance, and
 * store_pg.c, a PostgreSQL database several instances share; nothing above
 * this header knows which one runs. Every call is safe from any thread, and
 * every guarantee below holds across instances sharing one database. Times
 * are Unix seconds supplied by the caller. Functions return 0, or -1 after
 * logging the database error once.
 */
#ifndef TWHOOKD_STORE_H
#define TWHOOKD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define STORE_HASH_BYTES 32u

struct store;

/* Which backend, and where: [store] in the configuration. */
struct store_config {
	const char	*driver;	/* "sqlite" or "postgresql" */
	const char	*path;		/* sqlite: the database file */
	const char	*dsn;		/* postgresql: a libpq connection string or URI */
};
/*
 * Open, creating or migrating the schema (instances starting together do not
 * race). -1 with a message in err (never the DSN's password).
 */
__attribute__((warn_unused_result))
int	store_open(const struct store_config *cfg, struct store **out, char *err,
	    size_t errsz);
/*
 * What store_open would make of cfg, changing nothing (check-config): for
 * SQLite an existing database is opened read-only, its schema must be one
 * this build knows, and this user must be able to write it and its
 * directory; a missing one (*missing set) needs a directory this user can
 * create it in. 0, or -1 with a message in err. Never logs.
 */
__attribute__((warn_unused_result))
int	store_check(const struct store_config *cfg, bool *missing, char *err,
	    size_t errsz);
/* Close every connection; accepts NULL. */
void	store_close(struct store *s);
/*
 * Can the store commit now? Fails when the database was removed or replaced
 * since store_open. Once any write failed because the store could not
 * commit (full, read-only, locked, the database gone, an I/O error), fails
 * until a probe write shows that a batch of webhooks can commit again (the
 * SQLite backend writes more than a batch does); otherwise a recent commit
 * suffices, else a small probe write must commit. May wait up to the busy
 * or statement timeout. 0, or -1 with the reason in err (no secret in it).
 */
__attribute__((warn_unused_result))
int	store_probe(struct store *s, char *err, size_t errsz);

/* Users: a phone (E.164, checked by the caller) maps to one user id. */
__attribute__((warn_unused_result))
int	store_user_add(struct store *s, const char *phone, const char *user_id);
struct store_user {
	const char	*phone;
	const char	*user_id;
};
/* Add or replace all users in one transaction: all or nothing. */
__attribute__((warn_unused_result))
int	store_user_add_many(struct store *s, const struct store_user *users, size_t n);
__attribute__((warn_unused_result))
int	store_user_remove(struct store *s, const char *phone, bool *removed);
/* Calls cb for each user in phone order; a non-zero return from cb stops. */
__attribute__((warn_unused_result))
int	store_user_list(struct store *s,
	    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg);
/*
 * *found false when the phone has no user; user_id is appended to. Between a
 * NEW store_claim and its finish it reads inside the claim's transaction.
 */
__attribute__((warn_unused_result))
int	store_user_lookup(struct store *s, const char *phone, struct buf *user_id,
	    bool *found);

/*
 * Group commit, for the thread that runs webhooks (batch.c): between
 * store_batch_begin and store_batch_end every transaction this thread opens
 * (a claim with its finish, a release) is a savepoint of one write
 * transaction, so "committed" in the calls below means "committed when the
 * batch is". A call that fails rolls back its own savepoint only.
 * store_batch_end commits; -1 means the whole batch was rolled back.
 */
__attribute__((warn_unused_result))
int	store_batch_begin(struct store *s);
__attribute__((warn_unused_result))
int	store_batch_end(struct store *s);

/*
 * Idempotency. A webhook is claimed by (route, key) before its handler runs.
 * NEW: the caller owns it and must finish or release it. RUNNING: a record
 * left by a process that died mid-webhook (answer 503). DONE: answer from
 * outcome/user_id, judging the repeat by first_at. A RUNNING claim older
 * than stale_after seconds is taken over as NEW.
 */
enum store_claim_state {
	STORE_CLAIM_NEW = 0,
	STORE_CLAIM_RUNNING,
	STORE_CLAIM_DONE,
};
struct store_claim {
	enum store_claim_state	 state;
	int			 outcome;	/* handler-defined, when DONE */
	struct buf		 user_id;	/* when DONE and a user was found; caller frees */
	int64_t			 id;		/* when DONE: the record's, its reset token's */
	/*
	 * When DONE: the webhook's first arrival, i.e. the now given to the
	 * store_claim call that returned NEW for the run that finished it (a
	 * takeover's, if a dead process's claim was taken over). Unix seconds.
	 */
	int64_t			 first_at;
};
/*
 * NEW leaves a write transaction open on the calling thread until
 * store_reset_finish, store_pin_finish or store_claim_release ends it; call
 * nothing else on the store in between except store_user_lookup, which reads
 * inside it. Claim, lookup and finish thus commit once, and a concurrent
 * duplicate waits for that commit (up to the busy timeout) and gets DONE,
 * never a second run. DONE and RUNNING return with no transaction open.
 * Across instances on one database the same holds: the claim's record and
 * the limit windows its finish counts stay locked until its transaction
 * (in a batch, the batch) commits, so a webhook of another instance that
 * needs them waits for that commit; two batches that wait on each other
 * fail one job, which answers 503 and is retried by Twilio.
 */
__attribute__((warn_unused_result))
int	store_claim(struct store *s, const char *route, const char *key, int64_t now,
	    int64_t stale_after, struct store_claim *out);
/*
 * Drop a NEW claim the handler could not finish (the retry will run again):
 * rolls back the claim's open transaction; with none open, deletes a RUNNING
 * record. A DONE record is never dropped.
 */
__attribute__((warn_unused_result))
int	store_claim_release(struct store *s, const char *route, const char *key);

/*
 * Rate limits, checked and counted inside a finish transaction: at most
 * limit events per fixed window of window seconds under key. limit 0 = off.
 * When any limit of a finish call is exhausted, nothing is inserted, no
 * counter moves, the claim is marked DONE with STORE_OUTCOME_LIMITED, and
 * *limited_by is that limit's index; otherwise *limited_by is -1.
 */
struct store_limit {
	const char	*key;		/* e.g. "reset:+15550000001", "outbound" */
	unsigned	 limit;
	unsigned	 window;	/* seconds */
};
#define STORE_OUTCOME_LIMITED (-1)

/*
 * Finish a reset claim, committing the transaction store_claim left open (or
 * in one of its own when none is): check and count limits, mark the claim
 * DONE with outcome, then when token_hash is non-NULL insert the token
 * (user_id, expires_at) under the record's id, which *token_id receives (0
 * when none was inserted). Records get ids in arrival order, never reused,
 * so tokens are appended, not scattered over an index. On -1 everything is
 * rolled back, the claim with it (as store_claim_release would), and no
 * transaction is left open.
 */
__attribute__((warn_unused_result))
int	store_reset_finish(struct store *s, const char *route, const char *key,
	    int outcome, const uint8_t *token_hash, const char *user_id,
	    int64_t expires_at, int64_t now, const struct store_limit *limits,
	    size_t nlimits, int *limited_by, int64_t *token_id);

/* A PIN to issue: replaces the user's active PIN, and queues its SMS. */
struct store_pin {
	const char	*user_id;
	const char	*phone;		/* E.164: where the SMS goes */
	const uint8_t	*hash;		/* STORE_HASH_BYTES keyed hash of the PIN */
	int64_t		 expires_at;
	const char	*sms_body;	/* the text with the PIN; erased once sent */
};
/*
 * Finish a PIN claim like store_reset_finish: check and count limits, then
 * when pin is non-NULL upsert the PIN and insert its outbox row (status
 * pending, due now), then mark the claim DONE with outcome; all or nothing.
 */
__attribute__((warn_unused_result))
int	store_pin_finish(struct store *s, const char *route, const char *key,
	    int outcome, const struct store_pin *pin, int64_t now,
	    const struct store_limit *limits, size_t nlimits, int *limited_by);

enum store_pin_check {
	STORE_PIN_OK = 0,	/* user_id set; the PIN is spent (deleted) */
	STORE_PIN_WRONG,	/* attempts counted */
	STORE_PIN_LOCKED,	/* max_attempts wrong guesses already: dead until replaced */
	STORE_PIN_NONE,		/* no PIN for this phone, or expired */
};
/*
 * Check a PIN by its keyed hash for phone, atomically, comparing hashes with
 * sodium_memcmp. A wrong guess increments attempts; once attempts reaches
 * max_attempts every later check (right or wrong) is LOCKED.
 */
__attribute__((warn_unused_result))
int	store_pin_verify(struct store *s, const char *phone,
	    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
	    enum store_pin_check *result, struct buf *user_id);

/*
 * The outbox: SMS accepted by a webhook, delivered by the outbox worker.
 * Row states: pending -> sending (leased) -> sent | failed | expired;
 * sending -> pending again on a retryable error. A lease that ran out (its
 * worker, or its whole instance, died mid-send) is taken by the next lease
 * of any instance: at-least-once delivery. No row is ever leased by two
 * workers at once, and nothing resets leases at startup.
 */
struct store_outbox_msg {
	int64_t		 id;
	char		 to[24];
	struct buf	 body;		/* caller frees with buf_free_secret */
	unsigned	 attempts;	/* including this one */
	int64_t		 expires_at;	/* the PIN's expiry: ValidityPeriod and give-up time */
};
/*
 * Lease up to max due rows (pending with next_attempt_at <= now, or sending
 * with lease_until < now), oldest first, skipping rows another worker is
 * leasing right now: mark them sending, attempts + 1, lease_until = now +
 * lease, committed before this returns. *n receives how many were written
 * to out[].
 */
__attribute__((warn_unused_result))
int	store_outbox_lease(struct store *s, int64_t now, int64_t lease,
	    struct store_outbox_msg *out, size_t max, size_t *n);
/* Twilio accepted it: status sent, its MessageSid kept, the body erased. */
__attribute__((warn_unused_result))
int	store_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now);
/* Retry later: status pending, next_attempt_at, last error kept (no secret in it). */
__attribute__((warn_unused_result))
int	store_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
	    long http_status, int error_code);
/* Give up: status failed (permanent API error) or expired; the body erased. */
__attribute__((warn_unused_result))
int	store_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
	    int error_code, int64_t now);
/*
 * Record a StatusCallback: delivery_status for the row with twilio_sid, only
 * moving forward (queued < sending < sent < delivered | undelivered | failed).
 */
__attribute__((warn_unused_result))
int	store_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
	    int error_code, bool *found);
/* Rows pending or sending: the queue depth gauge. */
__attribute__((warn_unused_result))
int	store_outbox_depth(struct store *s, int64_t *depth);

enum store_redeem {
	STORE_REDEEM_OK = 0,	/* user_id set; the token is now spent */
	STORE_REDEEM_UNKNOWN,
	STORE_REDEEM_SPENT,
	STORE_REDEEM_EXPIRED,
};
/*
 * Spend token id if its hash matches (sodium_memcmp), atomically: only one
 * caller ever gets OK. A hash that does not match is UNKNOWN, whatever the
 * row's state.
 */
__attribute__((warn_unused_result))
int	store_token_redeem(struct store *s, int64_t id,
	    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
	    enum store_redeem *result, struct buf *user_id);

/*
 * Delete idempotency records older than keep seconds, long-expired tokens and
 * PINs, finished outbox rows older than keep, and stale limit windows.
 */
__attribute__((warn_unused_result))
int	store_purge(struct store *s, int64_t now, int64_t keep);

#endif
