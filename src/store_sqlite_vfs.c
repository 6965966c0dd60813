/*
 * store.h on SQLite, a thin VFS over "unix" that writes each commit's WAL
 * frames with one pwrite: SQLite writes a frame as two (header, then page),
 * so a commit of n pages costs 2n system calls, each dear in a VM. Appends
 * to the WAL are gathered in memory and written when the commit frame is
 * complete; anything else (reads, in-place rewrites, sync, truncate, size)
 * first writes out what is gathered, so SQLite always sees its own writes.
 * Every other file and method goes straight to "unix": the file format and
 * the locks are unchanged, and other processes share the database as before.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store_sqlite.h"

/*
 * The WAL format (sqlite.org/walformat.html): a 32-byte file header, its
 * salts at bytes 16-23, then frames of a 24-byte header and a page. A frame
 * header holds the page number, then the database size in pages (nonzero
 * only on a commit frame), then the file header's salts at bytes 8-15: new
 * salts, a new WAL generation written from the start of the file.
 */
#define WAL_HDR		32
#define WAL_HDR_SALT	16
#define WAL_FRAME_HDR	24
#define WAL_FRAME_SALT	8
#define WAL_WRITE_LOCK	0	/* its slot among the WAL index locks (xShmLock) */

struct vfile {
	sqlite3_file		 base;
	sqlite3_file		*real;		/* the "unix" file, right after this struct */
	bool			 wal;
	const char		*db;		/* the main database's name, as SQLite holds it */
	/* WAL files only: the gathered appends, file offset off .. off + len */
	unsigned char		*buf;
	size_t			 len;
	sqlite3_int64		 off;
	sqlite3_int64		 hi;		/* end of the furthest write in this generation */
	unsigned char		 salt[8];	/* of the generation this handle last wrote */
	bool			 commit_next;	/* the next append completes a commit frame */
};

/* seekAndWriteFd in SQLite's os_unix.c masks a write's length with 0x1ffff. */
_Static_assert(SQ_WAL_BATCH_BYTES <= 0x1ffff, "one unix write");

static sqlite3_vfs	*real_vfs;
/*
 * The one WAL file of this thread with gathered appends, if any: only while
 * this thread holds its database's write lock (v_shm_lock clears it).
 */
static _Thread_local struct vfile *pending;

static int
wal_flush(struct vfile *f)
{
	int	rc = SQLITE_OK;

	if (f->len > 0)
		rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
	f->len = 0;
	f->commit_next = false;
	if (pending == f)
		pending = NULL;
	return rc;
}

/*
 * SQLite appends a commit's frames in order, each as its header then its
 * page; within a transaction it may also rewrite a frame it wrote (a page
 * spilled early, then its checksums), below the furthest write of this
 * generation. Appends are gathered, the run written out once its commit
 * frame is whole; a rewrite first writes out the run, then goes directly.
 */
static int
wal_write(struct vfile *f, const void *p, int amt, sqlite3_int64 off)
{
	const unsigned char	*b = p;
	int			 rc;

	if (off == 0 && amt == WAL_HDR) {
		memcpy(f->salt, b + WAL_HDR_SALT, sizeof(f->salt));
		f->hi = 0;
	} else if (amt == WAL_FRAME_HDR &&
	    memcmp(f->salt, b + WAL_FRAME_SALT, sizeof(f->salt)) != 0) {
		/* Another connection started the WAL over, or our first write. */
		memcpy(f->salt, b + WAL_FRAME_SALT, sizeof(f->salt));
		f->hi = 0;
	}
	if (f->len > 0 && (off != f->off + (sqlite3_int64)f->len ||
	    f->len + (size_t)amt > SQ_WAL_BATCH_BYTES) &&
	    (rc = wal_flush(f)) != SQLITE_OK)
		return rc;
	if (off < f->hi)
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	f->hi = off + amt;
	if ((size_t)amt > SQ_WAL_BATCH_BYTES)
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	if (f->buf == NULL && (f->buf = sqlite3_malloc(SQ_WAL_BATCH_BYTES)) == NULL)
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	if (pending != NULL && pending != f && (rc = wal_flush(pending)) != SQLITE_OK)
		return rc;
	if (f->len == 0)
		f->off = off;
	memcpy(f->buf + f->len, p, (size_t)amt);
	f->len += (size_t)amt;
	pending = f;
	if (f->commit_next)
		return wal_flush(f);	/* the commit frame is whole: out it goes */
	f->commit_next = amt == WAL_FRAME_HDR && memcmp(b + 4, "\0\0\0\0", 4) != 0;
	return SQLITE_OK;
}

static int
v_close(sqlite3_file *file)
{
	struct vfile	*f = (struct vfile *)file;
	int		 rc = SQLITE_OK;

	if (f->wal)
		rc = wal_flush(f);
	sqlite3_free(f->buf);
	f->buf = NULL;
	if (f->real->pMethods != NULL) {
		int rc2 = f->real->pMethods->xClose(f->real);
		if (rc == SQLITE_OK)
			rc = rc2;
	}
	return rc;
}

/* Methods that must see the gathered appends first. */
#define FLUSHED(f) do {							\
	int rc_;							\
	if ((f)->wal && (f)->len > 0 && (rc_ = wal_flush(f)) != SQLITE_OK) \
		return rc_;						\
} while (0)

static int
v_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	return f->real->pMethods->xRead(f->real, p, amt, off);
}

static int
v_write(sqlite3_file *file, const void *p, int amt, sqlite3_int64 off)
{
	struct vfile	*f = (struct vfile *)file;

	if (f->wal)
		return wal_write(f, p, amt, off);
	return f->real->pMethods->xWrite(f->real, p, amt, off);
}

static int
v_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	if (f->hi > size)
		f->hi = size;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int
v_sync(sqlite3_file *file, int flags)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	return f->real->pMethods->xSync(f->real, flags);
}

static int
v_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	return f->real->pMethods->xFileSize(f->real, size);
}

static int
v_lock(sqlite3_file *file, int lock)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int
v_unlock(sqlite3_file *file, int lock)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int
v_check_reserved(sqlite3_file *file, int *out)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
v_file_control(sqlite3_file *file, int op, void *arg)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
v_sector_size(sqlite3_file *file)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int
v_device_characteristics(sqlite3_file *file)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int
v_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **p)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, p);
}

/* Is the WAL with gathered appends on this thread the one of database f? */
static bool
pending_for(const struct vfile *f)
{
	return pending != NULL && f->db != NULL && pending->db == f->db;
}

/*
 * Releasing the WAL write lock ends a write transaction. A commit wrote its
 * frames out already; anything still gathered belongs to one rolled back,
 * and is dropped (SQLite will write over those frames).
 */
static int
v_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct vfile	*f = (struct vfile *)file;
	int		 rc;

	rc = f->real->pMethods->xShmLock(f->real, offset, n, flags);
	if ((flags & SQLITE_SHM_UNLOCK) && offset <= WAL_WRITE_LOCK &&
	    WAL_WRITE_LOCK < offset + n && pending_for(f)) {
		pending->len = 0;
		pending->commit_next = false;
		pending = NULL;
	}
	return rc;
}

/*
 * SQLite calls this between writing the frames of a commit and publishing
 * them in the WAL index. wal_write has written them out when their commit
 * frame was whole, so nothing is gathered here; if something were, it must
 * reach the file before any reader can look for it, and a failure cannot be
 * reported from here: stop rather than let readers find frames that are not
 * there.
 */
static void
v_shm_barrier(sqlite3_file *file)
{
	struct vfile	*f = (struct vfile *)file;

	if (pending_for(f) && wal_flush(pending) != SQLITE_OK) {
		log_error("store: cannot write WAL frames about to be published:"
		    " stopping");
		abort();
	}
	f->real->pMethods->xShmBarrier(f->real);
}

static int
v_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

static int
v_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **p)
{
	struct vfile	*f = (struct vfile *)file;

	FLUSHED(f);
	return f->real->pMethods->xFetch(f->real, off, amt, p);
}

static int
v_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct vfile	*f = (struct vfile *)file;

	return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods v_methods = {
	3,
	v_close, v_read, v_write, v_truncate, v_sync, v_file_size,
	v_lock, v_unlock, v_check_reserved, v_file_control, v_sector_size,
	v_device_characteristics,
	v_shm_map, v_shm_lock, v_shm_barrier, v_shm_unmap,
	v_fetch, v_unfetch,
};

static int
v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
    int *out_flags)
{
	struct vfile	*f = (struct vfile *)file;
	int		 rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (f->real->pMethods == NULL)
		return rc;		/* nothing to close */
	if (rc != SQLITE_OK || f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
	}
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	/* Both names live in one block of the pager's: pointers compare. */
	if (f->wal)
		f->db = sqlite3_filename_database(name);
	else if (flags & SQLITE_OPEN_MAIN_DB)
		f->db = name;
	f->base.pMethods = &v_methods;
	return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int
v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *
v_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void
v_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	real_vfs->xDlError(real_vfs, n, out);
}

static void
(*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void
v_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs->xDlClose(real_vfs, h);
}

static int
v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int
v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int
v_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int
v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int
v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

/* Version 2: no system-call overrides through this VFS. */
static sqlite3_vfs v_vfs = {
	.iVersion = 2,
	.zName = SQ_VFS_NAME,
	.xOpen = v_open,
	.xDelete = v_delete,
	.xAccess = v_access,
	.xFullPathname = v_full_pathname,
	.xDlOpen = v_dl_open,
	.xDlError = v_dl_error,
	.xDlSym = v_dl_sym,
	.xDlClose = v_dl_close,
	.xRandomness = v_randomness,
	.xSleep = v_sleep,
	.xCurrentTime = v_current_time,
	.xGetLastError = v_last_error,
	.xCurrentTimeInt64 = v_current_time64,
};

static pthread_once_t	 v_once = PTHREAD_ONCE_INIT;
static int		 v_rc = SQLITE_ERROR;

static void
v_register(void)
{
	if ((real_vfs = sqlite3_vfs_find("unix")) == NULL || real_vfs->iVersion < 2)
		return;
	v_vfs.szOsFile = (int)sizeof(struct vfile) + real_vfs->szOsFile;
	v_vfs.mxPathname = real_vfs->mxPathname;
	v_rc = sqlite3_vfs_register(&v_vfs, 0);
}

int
sq_vfs_register(void)
{
	pthread_once(&v_once, v_register);
	return v_rc == SQLITE_OK ? 0 : -1;
}
