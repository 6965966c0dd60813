/*
 * TLS material for the public listener: certificate chain and key read from
 * their files and checked with GnuTLS before the daemon starts, and the
 * priority string checked too, so a bad file is a startup error with a clear
 * message rather than a handshake failure later.
 */
#ifndef TWHOOKD_TLS_H
#define TWHOOKD_TLS_H

#include <stddef.h>

struct tls_material {
	char	*cert;		/* PEM, NUL-terminated */
	char	*key;		/* PEM in sodium_malloc memory */
	size_t	 key_len;
};

/* 0, or -1 with a message in err. */
__attribute__((warn_unused_result))
int	tls_load(const char *cert_path, const char *key_path, const char *priorities,
	    struct tls_material *out, char *err, size_t errsz);
/* Wipe the key and free; accepts a zeroed struct. */
void	tls_release(struct tls_material *m);

#endif
