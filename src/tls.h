/*
 * TLS material for the public listener: certificate chain and key read from
 * their files and checked with GnuTLS before the daemon starts, and the
 * priority string checked too, so a bad file is a startup error with a clear
 * message rather than a handshake failure later. Used by serve and
 * check-config alike.
 */
#ifndef TWHOOKD_TLS_H
#define TWHOOKD_TLS_H

#include <stddef.h>

struct tls_material {
	char	*cert;		/* PEM, NUL-terminated */
	char	*key;		/* PEM in sodium_malloc memory */
	size_t	 key_len;
};

/* Which setting a tls_load failure is about. */
enum tls_part { TLS_PART_CERT, TLS_PART_KEY, TLS_PART_PRIORITIES };

/*
 * Read and check both files and the priorities: the chain must be PEM
 * certificates, the key a PEM private key without a passphrase, readable by
 * its owner only (no group or other bits), and the key must match the first
 * certificate. 0, or -1 with *bad set and a message in err naming the file.
 * Touches nothing on disk.
 */
__attribute__((warn_unused_result))
int	tls_load(const char *cert_path, const char *key_path, const char *priorities,
	    struct tls_material *out, enum tls_part *bad, char *err, size_t errsz);
/* Wipe the key and free; accepts a zeroed struct. */
void	tls_release(struct tls_material *m);

#endif
