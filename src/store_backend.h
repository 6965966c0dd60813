/*
 * What a store backend provides: one table of operations with the semantics
 * store.h states, and the struct store every backend's own state begins
 * with. Only store.c and the backends include this.
 */
#ifndef TWHOOKD_STORE_BACKEND_H
#define TWHOOKD_STORE_BACKEND_H

#include "store.h"

struct store_ops {
	const char	*driver;	/* [store] driver */
	void	(*close)(struct store *s);
	int	(*probe)(struct store *s, char *err, size_t errsz);
	int	(*user_add)(struct store *s, const char *phone, const char *user_id);
	int	(*user_add_many)(struct store *s, const struct store_user *users, size_t n);
	int	(*user_remove)(struct store *s, const char *phone, bool *removed);
	int	(*user_list)(struct store *s,
		    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg);
	int	(*user_lookup)(struct store *s, const char *phone, struct buf *user_id,
		    bool *found);
	int	(*batch_begin)(struct store *s);
	int	(*batch_end)(struct store *s);
	int	(*claim)(struct store *s, const char *route, const char *key, int64_t now,
		    int64_t stale_after, struct store_claim *out);
	int	(*claim_release)(struct store *s, const char *route, const char *key);
	int	(*reset_finish)(struct store *s, const char *route, const char *key,
		    int outcome, const uint8_t *token_hash, const char *user_id,
		    int64_t expires_at, int64_t now, const struct store_limit *limits,
		    size_t nlimits, int *limited_by, int64_t *token_id);
	int	(*pin_finish)(struct store *s, const char *route, const char *key,
		    int outcome, const struct store_pin *pin, int64_t now,
		    const struct store_limit *limits, size_t nlimits, int *limited_by);
	int	(*pin_verify)(struct store *s, const char *phone,
		    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
		    enum store_pin_check *result, struct buf *user_id);
	int	(*outbox_lease)(struct store *s, int64_t now, int64_t lease,
		    struct store_outbox_msg *out, size_t max, size_t *n);
	int	(*outbox_sent)(struct store *s, int64_t id, const char *twilio_sid, int64_t now);
	int	(*outbox_retry)(struct store *s, int64_t id, int64_t next_attempt_at,
		    long http_status, int error_code);
	int	(*outbox_give_up)(struct store *s, int64_t id, bool expired, long http_status,
		    int error_code, int64_t now);
	int	(*outbox_delivery)(struct store *s, const char *twilio_sid, const char *status,
		    int error_code, bool *found);
	int	(*outbox_depth)(struct store *s, int64_t *depth);
	int	(*token_redeem)(struct store *s, int64_t id,
		    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
		    enum store_redeem *result, struct buf *user_id);
	int	(*purge)(struct store *s, int64_t now, int64_t keep);
};

/*
 * For store_outbox_delivery in every backend: a status callback's rank in
 * Twilio's order (0 unknown); a row's status only moves to a higher one.
 */
int	store_delivery_rank(const char *status);

/* The first member of every backend's store. */
struct store {
	const struct store_ops	*ops;
};

/* Each backend's open and check: store.h's contracts, cfg->driver already matched. */
__attribute__((warn_unused_result))
int	store_sqlite_open(const struct store_config *cfg, struct store **out, char *err,
	    size_t errsz);
__attribute__((warn_unused_result))
int	store_sqlite_check(const struct store_config *cfg, bool *missing, char *err,
	    size_t errsz);
__attribute__((warn_unused_result))
int	store_pg_open(const struct store_config *cfg, struct store **out, char *err,
	    size_t errsz);
__attribute__((warn_unused_result))
int	store_pg_check(const struct store_config *cfg, bool *missing, char *err,
	    size_t errsz);

#endif
