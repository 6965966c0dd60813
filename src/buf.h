/*
 * Growable, length-carrying byte buffer. Always NUL-terminated after a
 * successful append so it can be handed to C-string APIs, but the length is
 * authoritative: content may hold NUL bytes. Pure: no I/O, no globals.
 */
#ifndef TWHOOKD_BUF_H
#define TWHOOKD_BUF_H

#include <stddef.h>

struct buf {
	char	*data;	/* NULL until the first append */
	size_t	 len;
	size_t	 cap;
};

#define BUF_INIT { NULL, 0, 0 }

/* Append len bytes. 0 on success, -1 when out of memory (buffer unchanged). */
__attribute__((warn_unused_result))
int	buf_append(struct buf *b, const void *data, size_t len);
/* Append a NUL-terminated string. */
__attribute__((warn_unused_result))
int	buf_append_str(struct buf *b, const char *s);
/* Append formatted text (vsnprintf semantics). */
__attribute__((warn_unused_result, format(printf, 2, 3)))
int	buf_printf(struct buf *b, const char *fmt, ...);
/* Forget the content, keep the allocation. */
void	buf_reset(struct buf *b);
/* Free the allocation; accepts a zeroed buffer. */
void	buf_free(struct buf *b);
/* Wipe (sodium_memzero) then free: for buffers that held secrets. */
void	buf_free_secret(struct buf *b);

#endif
