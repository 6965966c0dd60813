/*
 * For unit tests of code written against store.h (the handlers): a store
 * backend that keeps one user, records what the finish calls were given and
 * answers with what the test set. It provides only the operations those
 * tests use; any other is a NULL pointer, so a call the test did not expect
 * crashes it.
 */
#ifndef TWHOOKD_TEST_FAKE_STORE_H
#define TWHOOKD_TEST_FAKE_STORE_H

#include <string.h>

#include "store_backend.h"

struct fake_store {
	struct store	 base;		/* first: what the code under test holds */
	const char	*phone;		/* the one registered user, or NULL */
	const char	*user_id;
	/* What the next reset_finish answers. */
	int		 fail;		/* -1: the store fails */
	int		 limited_by;
	int64_t		 token_id;
	/* What the last reset_finish was given. */
	int		 finishes;
	int		 outcome;
	bool		 had_hash;
	uint8_t		 hash[STORE_HASH_BYTES];
	char		 finish_user[64];
	int64_t		 expires_at, now;
};

static inline struct fake_store *
fake_of(struct store *s)
{
	return (struct fake_store *)(void *)s;
}

static inline int
fake_user_lookup(struct store *s, const char *phone, struct buf *user_id, bool *found)
{
	struct fake_store *f = fake_of(s);

	*found = f->phone != NULL && strcmp(phone, f->phone) == 0;
	return *found ? buf_append_str(user_id, f->user_id) : 0;
}

static inline int
fake_reset_finish(struct store *s, const char *route, const char *key, int outcome,
    const uint8_t *token_hash, const char *user_id, int64_t expires_at, int64_t now,
    const struct store_limit *limits, size_t nlimits, int *limited_by, int64_t *token_id)
{
	struct fake_store *f = fake_of(s);

	(void)route;
	(void)key;
	(void)limits;
	(void)nlimits;
	f->finishes++;
	f->outcome = outcome;
	f->had_hash = token_hash != NULL;
	if (token_hash != NULL)
		memcpy(f->hash, token_hash, STORE_HASH_BYTES);
	snprintf(f->finish_user, sizeof(f->finish_user), "%s", user_id != NULL ? user_id : "");
	f->expires_at = expires_at;
	f->now = now;
	if (f->fail == -1)
		return -1;
	*limited_by = f->limited_by;
	*token_id = token_hash != NULL && f->limited_by < 0 ? f->token_id : 0;
	return 0;
}

static const struct store_ops fake_ops = {
	.driver = "fake",
	.user_lookup = fake_user_lookup,
	.reset_finish = fake_reset_finish,
};

/* A fresh fake: one user (or none), finishes succeed with token id 1. */
static inline void
fake_store_init(struct fake_store *f, const char *phone, const char *user_id)
{
	memset(f, 0, sizeof(*f));
	f->base.ops = &fake_ops;
	f->phone = phone;
	f->user_id = user_id;
	f->limited_by = -1;
	f->token_id = 1;
}

#endif
