/*
 * Persistence behind one interface: users, idempotency records, reset tokens.
 * store_sqlite.c implements it (WAL, one connection per thread); a PostgreSQL
 * backend will sit beside it. Every call is safe from any thread. Times are
 * Unix seconds supplied by the caller. Functions return 0, or -1 after logging
 * the database error once.
 */
#ifndef TWHOOKD_STORE_H
#define TWHOOKD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define STORE_HASH_BYTES 32u

struct store;

/* Open (creating or migrating the schema). -1 with a message in err. */
__attribute__((warn_unused_result))
int	store_open(const char *path, struct store **out, char *err, size_t errsz);
/* Close every connection; accepts NULL. */
void	store_close(struct store *s);
/* Cheap liveness check for /readyz. */
__attribute__((warn_unused_result))
int	store_ping(struct store *s);

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
/* *found false when the phone has no user; user_id is appended to. */
__attribute__((warn_unused_result))
int	store_user_lookup(struct store *s, const char *phone, struct buf *user_id,
	    bool *found);

/*
 * Idempotency. A webhook is claimed by (route, key) before its handler runs.
 * NEW: the caller owns it and must finish or release it. RUNNING: another
 * request holds it (answer 503). DONE: answer from outcome/user_id.
 * A RUNNING claim older than stale_after seconds is taken over as NEW.
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
};
__attribute__((warn_unused_result))
int	store_claim(struct store *s, const char *route, const char *key, int64_t now,
	    int64_t stale_after, struct store_claim *out);
/* Drop a NEW claim the handler could not finish (the retry will run again). */
__attribute__((warn_unused_result))
int	store_claim_release(struct store *s, const char *route, const char *key);

/*
 * Finish a reset claim in one transaction: when token_hash is non-NULL insert
 * the token (user_id, expires_at), then mark the claim DONE with outcome.
 */
__attribute__((warn_unused_result))
int	store_reset_finish(struct store *s, const char *route, const char *key,
	    int outcome, const uint8_t *token_hash, const char *user_id,
	    int64_t expires_at, int64_t now);

enum store_redeem {
	STORE_REDEEM_OK = 0,	/* user_id set; the token is now spent */
	STORE_REDEEM_UNKNOWN,
	STORE_REDEEM_SPENT,
	STORE_REDEEM_EXPIRED,
};
/* Spend a token by its hash, atomically: only one caller ever gets OK. */
__attribute__((warn_unused_result))
int	store_token_redeem(struct store *s, const uint8_t token_hash[STORE_HASH_BYTES],
	    int64_t now, enum store_redeem *result, struct buf *user_id);

/* Delete idempotency records older than keep seconds and long-expired tokens. */
__attribute__((warn_unused_result))
int	store_purge(struct store *s, int64_t now, int64_t keep);

#endif
