/*
 * store.h on PostgreSQL: users (the phone to user id map `twhookd user`
 * edits) and purge. Statements are store_pg.c's; no log line carries a
 * phone or a user id.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "defaults.h"
#include "store.h"
#include "store_pg.h"

/* As the SQLite backend: expired tokens and PINs linger a day, so a late check hears "expired". */
#define EXPIRED_PURGE_GRACE	((int64_t)24 * 3600)
/* How far past now a stamp may lie and still hold back the purge of later rows. */
#define FUTURE_SLACK		((int64_t)24 * 3600)

int
pg_user_add(struct store *s, const char *phone, const char *user_id)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	return pg_exec(c, PS_USER_PUT, NULL, "tt", phone, user_id);
}

int
pg_user_add_many(struct store *s, const struct store_user *users, size_t n)
{
	struct pg_conn	*c;
	size_t		 i;
	int		 rc = -1;

	if ((c = pg_conn(s)) == NULL || pg_begin(c) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (pg_exec(c, PS_USER_PUT, NULL, "tt", users[i].phone,
		    users[i].user_id) == -1)
			goto done;
	rc = pg_commit(c);
done:
	if (rc == -1)
		pg_rollback(c);
	return rc;
}

int
pg_user_remove(struct store *s, const char *phone, bool *removed)
{
	struct pg_conn	*c;
	PGresult	*r;

	*removed = false;
	if ((c = pg_conn(s)) == NULL ||
	    pg_exec(c, PS_USER_DELETE, &r, "t", phone) == -1)
		return -1;
	*removed = pg_changed(r) > 0;
	PQclear(r);
	return 0;
}

/* The whole list in one result: twhookd user list is an operator's command. */
int
pg_user_list(struct store *s,
    int (*cb)(void *arg, const char *phone, const char *user_id), void *arg)
{
	struct pg_conn	*c;
	PGresult	*r;

	if ((c = pg_conn(s)) == NULL ||
	    pg_exec(c, PS_USER_LIST, &r, "") == -1)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		if (cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) != 0)
			break;
	PQclear(r);
	return 0;
}

int
pg_user_lookup(struct store *s, const char *phone, struct buf *user_id,
    bool *found)
{
	struct pg_conn	*c;
	PGresult	*r;
	int		 rc = 0;

	*found = false;
	if ((c = pg_conn(s)) == NULL ||
	    pg_exec(c, PS_USER_GET, &r, "t", phone) == -1)
		return -1;
	if (PQntuples(r) == 1) {
		rc = pg_text(c, PS_USER_GET, r, 0, 0, user_id);
		*found = rc == 0;
	}
	PQclear(r);
	return rc;
}

/*
 * Separate statements, each its own transaction, so none holds locks for
 * long; a limit window never lasts longer than MAX_LIMIT_WINDOW.
 */
int
pg_purge(struct store *s, int64_t now, int64_t keep)
{
	struct pg_conn	*c;

	if ((c = pg_conn(s)) == NULL)
		return -1;
	if (pg_exec(c, PS_PURGE_WEBHOOKS, NULL, "ii", now - keep, now + FUTURE_SLACK) == -1 ||
	    pg_exec(c, PS_PURGE_TOKENS, NULL, "ii", now - EXPIRED_PURGE_GRACE,
	    now + (int64_t)MAX_TOKEN_TTL + FUTURE_SLACK) == -1 ||
	    pg_exec(c, PS_PURGE_PINS, NULL, "i", now - EXPIRED_PURGE_GRACE) == -1 ||
	    pg_exec(c, PS_PURGE_OUTBOX, NULL, "i", now - keep) == -1 ||
	    pg_exec(c, PS_PURGE_LIMITS, NULL, "i", now - (int64_t)MAX_LIMIT_WINDOW) == -1)
		return -1;
	return 0;
}
