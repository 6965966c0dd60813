/*
 * store.h's one entry point per operation: pick the backend at open, then
 * hand every call to its table of operations (store_backend.h).
 */
#include <stdio.h>
#include <string.h>

#include "store_backend.h"

int
store_open(const struct store_config *cfg, struct store **out, char *err, size_t errsz)
{
	*out = NULL;
	if (strcmp(cfg->driver, "sqlite") == 0)
		return store_sqlite_open(cfg, out, err, errsz);
	if (strcmp(cfg->driver, "postgresql") == 0)
		return store_pg_open(cfg, out, err, errsz);
	snprintf(err, errsz, "unknown store driver %s", cfg->driver);
	return -1;
}

int
store_check(const struct store_config *cfg, bool *missing, char *err, size_t errsz)
{
	*missing = false;
	if (strcmp(cfg->driver, "sqlite") == 0)
		return store_sqlite_check(cfg, missing, err, errsz);
	if (strcmp(cfg->driver, "postgresql") == 0)
		return store_pg_check(cfg, missing, err, errsz);
	snprintf(err, errsz, "unknown store driver %s", cfg->driver);
	return -1;
}

/*
 * Twilio's outbound message statuses in the order a message moves through
 * them; callbacks can arrive out of order, so a status never replaces a
 * later one. The final ones share a rank: the first final word stands.
 * read (WhatsApp) can only follow delivered. Unknown statuses rank 0.
 */
int
store_delivery_rank(const char *status)
{
	static const struct {
		const char	*status;
		int		 rank;
	} ranks[] = {
		{ "accepted", 1 }, { "scheduled", 1 }, { "queued", 1 },
		{ "sending", 2 },
		{ "sent", 3 },
		{ "delivered", 4 }, { "undelivered", 4 }, { "failed", 4 },
		{ "canceled", 4 },
		{ "read", 5 },
	};

	if (status == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++)
		if (strcmp(status, ranks[i].status) == 0)
			return ranks[i].rank;
	return 0;
}

void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

int
store_probe(struct store *s, char *err, size_t errsz)
{
	return s->ops->probe(s, err, errsz);
}

int
store_user_add(struct store *s, const char *phone, const char *user_id)
{
	return s->ops->user_add(s, phone, user_id);
}

int
store_user_add_many(struct store *s, const struct store_user *users, size_t n)
{
	return s->ops->user_add_many(s, users, n);
}

int
store_user_remove(struct store *s, const char *phone, bool *removed)
{
	return s->ops->user_remove(s, phone, removed);
}

int
store_user_list(struct store *s,
    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg)
{
	return s->ops->user_list(s, cb, arg);
}

int
store_user_lookup(struct store *s, const char *phone, struct buf *user_id,
    bool *found)
{
	return s->ops->user_lookup(s, phone, user_id, found);
}

int
store_batch_begin(struct store *s)
{
	return s->ops->batch_begin(s);
}

int
store_batch_end(struct store *s)
{
	return s->ops->batch_end(s);
}

int
store_claim(struct store *s, const char *route, const char *key, int64_t now,
    int64_t stale_after, struct store_claim *out)
{
	return s->ops->claim(s, route, key, now, stale_after, out);
}

int
store_claim_release(struct store *s, const char *route, const char *key)
{
	return s->ops->claim_release(s, route, key);
}

int
store_reset_finish(struct store *s, const char *route, const char *key,
    int outcome, const uint8_t *token_hash, const char *user_id,
    int64_t expires_at, int64_t now, const struct store_limit *limits,
    size_t nlimits, int *limited_by, int64_t *token_id)
{
	return s->ops->reset_finish(s, route, key, outcome, token_hash, user_id,
	    expires_at, now, limits, nlimits, limited_by, token_id);
}

int
store_pin_finish(struct store *s, const char *route, const char *key,
    int outcome, const struct store_pin *pin, int64_t now,
    const struct store_limit *limits, size_t nlimits, int *limited_by)
{
	return s->ops->pin_finish(s, route, key, outcome, pin, now, limits,
	    nlimits, limited_by);
}

int
store_pin_verify(struct store *s, const char *phone,
    const uint8_t hash[STORE_HASH_BYTES], unsigned max_attempts, int64_t now,
    enum store_pin_check *result, struct buf *user_id)
{
	return s->ops->pin_verify(s, phone, hash, max_attempts, now, result,
	    user_id);
}

int
store_outbox_lease(struct store *s, int64_t now, int64_t lease,
    struct store_outbox_msg *out, size_t max, size_t *n)
{
	return s->ops->outbox_lease(s, now, lease, out, max, n);
}

int
store_outbox_sent(struct store *s, int64_t id, const char *twilio_sid, int64_t now)
{
	return s->ops->outbox_sent(s, id, twilio_sid, now);
}

int
store_outbox_retry(struct store *s, int64_t id, int64_t next_attempt_at,
    long http_status, int error_code)
{
	return s->ops->outbox_retry(s, id, next_attempt_at, http_status,
	    error_code);
}

int
store_outbox_give_up(struct store *s, int64_t id, bool expired, long http_status,
    int error_code, int64_t now)
{
	return s->ops->outbox_give_up(s, id, expired, http_status, error_code,
	    now);
}

int
store_outbox_delivery(struct store *s, const char *twilio_sid, const char *status,
    int error_code, bool *found)
{
	return s->ops->outbox_delivery(s, twilio_sid, status, error_code, found);
}

int
store_outbox_depth(struct store *s, int64_t *depth)
{
	return s->ops->outbox_depth(s, depth);
}

int
store_token_redeem(struct store *s, int64_t id,
    const uint8_t token_hash[STORE_HASH_BYTES], int64_t now,
    enum store_redeem *result, struct buf *user_id)
{
	return s->ops->token_redeem(s, id, token_hash, now, result, user_id);
}

int
store_purge(struct store *s, int64_t now, int64_t keep)
{
	return s->ops->purge(s, now, keep);
}
