/*
 * store.h on SQLite, the schema: its tables and the migrations between
 * versions, run in one transaction at store_open. A database written by a
 * newer release is refused, never touched. store_sqlite_check looks at a
 * database read-only, for check-config.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "defaults.h"
#include "store_backend.h"
#include "store_sqlite.h"

/*
 * Schema 1. Integration tests read these tables: keep their names and
 * columns.
 * - users and rate_limits are WITHOUT ROWID tables clustered on their key:
 *   one b-tree each instead of a table plus its key's index.
 * - webhooks gets an id in arrival order, never reused (AUTOINCREMENT from
 *   1), so a webhook appends rather than scattering an insert over a
 *   b-tree; one unique index serves the idempotency lookup, and purge walks
 *   ids. A reset token's id is its webhook record's, which the token
 *   carries: reset_tokens needs no index on hashes.
 * - outbox: twilio_sid is indexed but not UNIQUE, so recording a send
 *   Twilio already accepted never fails (the row would be sent again when
 *   its lease ran out).
 * - health: the one row store_probe rewrites to prove the store can commit.
 */
static const char schema_v1[] =
	"CREATE TABLE users ("
	"  phone TEXT PRIMARY KEY NOT NULL,"
	"  user_id TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE webhooks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  route TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  state INTEGER NOT NULL,"		/* 1 running, 2 done */
	"  outcome INTEGER,"
	"  user_id TEXT,"
	"  started_at INTEGER NOT NULL,"
	"  finished_at INTEGER);"
	"CREATE UNIQUE INDEX webhooks_key ON webhooks (route, key);"
	"CREATE TABLE reset_tokens ("
	"  id INTEGER PRIMARY KEY,"		/* the issuing webhook record's */
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  user_id TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  used_at INTEGER,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE pins ("
	"  user_id TEXT PRIMARY KEY NOT NULL,"
	"  phone TEXT NOT NULL,"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  expires_at INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX pins_phone ON pins (phone, created_at);"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  to_phone TEXT NOT NULL,"
	"  body TEXT,"				/* NULL once erased */
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('pending', 'sending', 'sent', 'failed', 'expired')),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at INTEGER NOT NULL,"
	"  lease_until INTEGER,"
	"  expires_at INTEGER NOT NULL,"
	"  twilio_sid TEXT,"
	"  http_status INTEGER,"
	"  error_code INTEGER,"
	"  delivery_status TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  sent_at INTEGER);"
	"CREATE INDEX outbox_due ON outbox (status, next_attempt_at);"
	"CREATE INDEX outbox_sid ON outbox (twilio_sid) WHERE twilio_sid IS NOT NULL;"
	"CREATE TABLE rate_limits ("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  window_start INTEGER NOT NULL,"
	"  count INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE health ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  checked_at INTEGER NOT NULL,"
	"  pad BLOB NOT NULL);";

/*
 * migrations[v] takes a database from user_version v to v + 1; a new one
 * walks them all, so it ends with exactly the schema of a migrated one. The
 * next schema change appends schema_v2 here.
 */
static const char *const migrations[SQ_SCHEMA_VERSION] = {
	schema_v1,
};

/* Single-row PRAGMA for the schema code, which reports into err. */
static int
pragma_get(sqlite3 *db, const char *sql, char *text, size_t textsz, int *num,
    char *err, size_t errsz)
{
	sqlite3_stmt		*st = NULL;
	const unsigned char	*p;
	int			 rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errsz, "%s: %s", sql, sqlite3_errmsg(db));
		goto done;
	}
	if (text != NULL) {
		p = sqlite3_column_text(st, 0);
		snprintf(text, textsz, "%s", p != NULL ? (const char *)p : "");
	}
	if (num != NULL)
		*num = sqlite3_column_int(st, 0);
	rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

static int
exec_sql(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errsz, "schema: %s", sqlite3_errmsg(db));
	return -1;
}

int
sq_schema_migrate(sqlite3 *db, char *err, size_t errsz)
{
	char	mode[16], sql[64];
	int	version, v, rc = -1;

	/* Persistent in the file; readers then never block the writer. */
	if (pragma_get(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), NULL,
	    err, errsz) == -1)
		return -1;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errsz, "cannot use WAL (journal_mode is %s)", mode);
		return -1;
	}
	if (exec_sql(db, "BEGIN IMMEDIATE", err, errsz) == -1 ||
	    pragma_get(db, "PRAGMA user_version", NULL, 0, &version,
	    err, errsz) == -1)
		goto done;
	if (version < 0 || version > SQ_SCHEMA_VERSION) {
		snprintf(err, errsz, "schema version %d is not one this twhookd "
		    "knows (at most %d): written by a newer release?", version,
		    SQ_SCHEMA_VERSION);
		goto done;
	}
	for (v = version; v < SQ_SCHEMA_VERSION; v++)
		if (exec_sql(db, migrations[v], err, errsz) == -1)
			goto done;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SQ_SCHEMA_VERSION);
	if (exec_sql(db, sql, err, errsz) == -1 ||
	    exec_sql(db, "COMMIT", err, errsz) == -1)
		goto done;
	rc = 0;
done:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}


/* Can this user create files in the directory holding path (the -wal, -shm)? */
static int
dir_writable(const char *path, char *dir, size_t dirsz, char *err, size_t errsz)
{
	char	*slash;

	if (snprintf(dir, dirsz, "%s", path) >= (int)dirsz) {
		snprintf(err, errsz, "path too long");
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, dirsz, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(err, errsz, "cannot create files in %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * "file:" URI for path (RFC 3986 percent-encoding, as sqlite3_open_v2 with
 * SQLITE_OPEN_URI reads it), then query. 0, or -1 when it does not fit.
 */
static int
file_uri(const char *path, const char *query, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		  n = 0;

	if (outsz < 6)
		return -1;
	memcpy(out, "file:", 5);
	n = 5;
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/-._~", *p) != NULL;

		if (n + 4 > outsz)
			return -1;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n + strlen(query) + 1 > outsz)
		return -1;
	memcpy(out + n, query, strlen(query) + 1);
	return 0;
}

/*
 * Read-only: a database another twhookd is serving from must not be migrated
 * or checkpointed by a configuration check. A read-only connection to a WAL
 * database still creates the -wal and -shm files when they are missing
 * (sqlite.org/wal.html, "Read-Only Databases"), unless the database is opened
 * immutable. Without a -wal file every commit is in the database file itself
 * (the last connection to close checkpointed it), so immutable reads the
 * truth; with one, the -shm is there too and nothing new is created.
 */
static int
schema_check(const char *path, char *err, size_t errsz)
{
	char	 uri[3 * PATH_MAX + 32], wal[PATH_MAX + 8];
	sqlite3	*db = NULL;
	int	 version = 0, rc = -1;
	bool	 has_wal;

	if (snprintf(wal, sizeof(wal), "%s-wal", path) >= (int)sizeof(wal) ||
	    file_uri(path, (has_wal = access(wal, F_OK) == 0) ? "?mode=ro" :
	    "?mode=ro&immutable=1", uri, sizeof(uri)) == -1) {
		snprintf(err, errsz, "path too long");
		return -1;
	}
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
	    SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s", db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto done;
	}
	(void)sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	if (pragma_get(db, "PRAGMA user_version", NULL, 0, &version, err, errsz) == -1)
		goto done;
	if (version < 0 || version > SQ_SCHEMA_VERSION) {
		snprintf(err, errsz, "schema version %d is not one this twhookd "
		    "knows (at most %d): written by a newer release?", version,
		    SQ_SCHEMA_VERSION);
		goto done;
	}
	rc = 0;
done:
	sqlite3_close(db);
	return rc;
}

int
store_sqlite_check(const struct store_config *cfg, bool *missing, char *err, size_t errsz)
{
	const char	*path = cfg->path;
	struct stat	st;
	char		dir[PATH_MAX], msg[PATH_MAX + 128];
	int		rc = -1;

	*missing = false;
	if (lstat(path, &st) == -1) {
		if (errno != ENOENT) {
			snprintf(msg, sizeof(msg), "%s", strerror(errno));
			goto done;
		}
		*missing = true;
		if (dir_writable(path, dir, sizeof(dir), msg, sizeof(msg)) == -1)
			goto done;
		return 0;
	}
	if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
		snprintf(msg, sizeof(msg), "%s", S_ISLNK(st.st_mode) ?
		    "is a symbolic link (refused)" : "not a regular file");
		goto done;
	}
	if (access(path, R_OK | W_OK) == -1) {
		snprintf(msg, sizeof(msg), "serve must read and write it: %s",
		    strerror(errno));
		goto done;
	}
	if (dir_writable(path, dir, sizeof(dir), msg, sizeof(msg)) == -1 ||
	    schema_check(path, msg, sizeof(msg)) == -1)
		goto done;
	rc = 0;
done:
	if (rc == -1)
		snprintf(err, errsz, "%s: %s", path, msg);
	return rc;
}
