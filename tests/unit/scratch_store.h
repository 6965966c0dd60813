/*
 * For unit tests that need a real store: a fresh database in its own
 * mkdtemp directory, and its removal with every file SQLite left there.
 */
#ifndef TWHOOKD_TEST_SCRATCH_STORE_H
#define TWHOOKD_TEST_SCRATCH_STORE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store.h"

struct scratch_store {
	char		 dir[64];
	char		 db[128];	/* dir/twhookd.db */
};

/* store_open on the SQLite file path. */
static inline int
sqlite_store_open(const char *path, struct store **out, char *err, size_t errsz)
{
	const struct store_config cfg = { "sqlite", path, NULL };

	return store_open(&cfg, out, err, errsz);
}

/* Make the directory and open the store in it; 0, or -1 after printing why. */
static inline int
scratch_store_open(struct scratch_store *ss, const char *name, struct store **out)
{
	char	err[256];

	snprintf(ss->dir, sizeof(ss->dir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(ss->dir) == NULL)
		return -1;
	snprintf(ss->db, sizeof(ss->db), "%s/twhookd.db", ss->dir);
	if (sqlite_store_open(ss->db, out, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* Remove the directory and what is in it (the store already closed). */
static inline void
scratch_store_remove(const struct scratch_store *ss)
{
	DIR		*dp;
	struct dirent	*e;
	char		 p[512];

	if ((dp = opendir(ss->dir)) != NULL) {
		while ((e = readdir(dp)) != NULL) {
			snprintf(p, sizeof(p), "%s/%s", ss->dir, e->d_name);
			if (e->d_name[0] != '.')
				unlink(p);
		}
		closedir(dp);
	}
	rmdir(ss->dir);
}

#endif
