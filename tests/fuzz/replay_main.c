/*
 * Replays a corpus without libFuzzer, so the normal (gcc) test run exercises
 * the fuzz targets: each file named on the command line, or each regular file
 * in a directory so named, is read whole and fed to LLVMFuzzerTestOneInput.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one file; the input gets an allocation of exactly its size (ASan sees over-reads). */
static int
replay_file(const char *path)
{
	struct buf	 b = BUF_INIT;
	char		 chunk[4096];
	uint8_t		*copy = NULL;
	FILE		*fp;
	size_t		 n;
	int		 rc = -1;

	if ((fp = fopen(path, "rb")) == NULL) {
		perror(path);
		goto done;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (buf_append(&b, chunk, n) == -1)
			goto done;
	if (ferror(fp) || (copy = malloc(b.len > 0 ? b.len : 1)) == NULL) {
		perror(path);
		goto done;
	}
	if (b.len > 0)
		memcpy(copy, b.data, b.len);
	LLVMFuzzerTestOneInput(copy, b.len);
	rc = 0;
done:
	if (fp != NULL)
		fclose(fp);
	free(copy);
	buf_free(&b);
	return rc;
}

/* A directory: every regular file in it, one level deep. */
static int
replay_dir(const char *path)
{
	struct buf	 p = BUF_INIT;
	struct dirent	*e;
	struct stat	 st;
	DIR		*d;
	int		 rc = 0;

	if ((d = opendir(path)) == NULL) {
		perror(path);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		buf_reset(&p);
		if (buf_printf(&p, "%s/%s", path, e->d_name) == -1 ||
		    stat(p.data, &st) == -1) {
			rc = -1;
			continue;
		}
		if (S_ISREG(st.st_mode) && replay_file(p.data) == -1)
			rc = -1;
	}
	closedir(d);
	buf_free(&p);
	return rc;
}

int
main(int argc, char **argv)
{
	struct stat	st;
	int		i, rc = 0, runs = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == -1) {
			perror(argv[i]);
			rc = 1;
		} else if (S_ISDIR(st.st_mode) ? replay_dir(argv[i]) == -1 :
		    replay_file(argv[i]) == -1)
			rc = 1;
		else
			runs++;
	}
	fprintf(stderr, "%s: %d path(s) replayed\n", argv[0], runs);
	return rc;
}
