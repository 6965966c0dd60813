/*
 * Load and check the public listener's TLS material with GnuTLS before the
 * daemon starts: the key must match the certificate and the priority string
 * must parse, so mistakes are startup errors naming the file, not failed
 * handshakes later. The key stays in sodium_malloc memory and is wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include "tls.h"

#define TLS_MAX_PEM (1024u * 1024u)

/* Read a whole PEM file into fresh memory (sodium_malloc when secret). */
static char *
read_pem(const char *path, int secret, size_t *len, char *err, size_t errsz)
{
	struct stat	 st;
	char		*data = NULL;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (size_t)st.st_size > TLS_MAX_PEM) {
		snprintf(err, errsz, "%s: not a regular file of 1 byte to 1 MiB", path);
		goto fail;
	}
	data = secret ? sodium_malloc((size_t)st.st_size + 1) : malloc((size_t)st.st_size + 1);
	if (data == NULL) {
		snprintf(err, errsz, "%s: out of memory", path);
		goto fail;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, data + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)st.st_size) {
		snprintf(err, errsz, "%s: short read", path);
		goto fail;
	}
	data[got] = '\0';
	*len = got;
	close(fd);
	return data;
fail:
	if (data != NULL) {
		if (secret)
			sodium_free(data);
		else
			free(data);
	}
	if (fd != -1)
		close(fd);
	return NULL;
}

static int
check_pair(const struct tls_material *m, const char *cert_path, const char *priorities,
    char *err, size_t errsz)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_priority_t	prio = NULL;
	gnutls_datum_t		cert = { (unsigned char *)m->cert, (unsigned)strlen(m->cert) };
	gnutls_datum_t		key = { (unsigned char *)m->key, (unsigned)m->key_len };
	const char		*where = NULL;
	int			 rc = -1, ret;

	if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0)
		goto fail;
	if ((ret = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM)) < 0) {
		snprintf(err, errsz, "%s: certificate and key do not load or match: %s",
		    cert_path, gnutls_strerror(ret));
		goto done;
	}
	if ((ret = gnutls_priority_init(&prio, priorities, &where)) < 0) {
		snprintf(err, errsz, "tls_priorities: %s near \"%.32s\"", gnutls_strerror(ret),
		    where != NULL ? where : "");
		goto done;
	}
	rc = 0;
	goto done;
fail:
	snprintf(err, errsz, "gnutls: %s", gnutls_strerror(ret));
done:
	if (prio != NULL)
		gnutls_priority_deinit(prio);
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	return rc;
}

int
tls_load(const char *cert_path, const char *key_path, const char *priorities,
    struct tls_material *out, char *err, size_t errsz)
{
	size_t len;

	memset(out, 0, sizeof(*out));
	if ((out->cert = read_pem(cert_path, 0, &len, err, errsz)) == NULL ||
	    (out->key = read_pem(key_path, 1, &out->key_len, err, errsz)) == NULL ||
	    check_pair(out, cert_path, priorities, err, errsz) == -1) {
		tls_release(out);
		return -1;
	}
	return 0;
}

void
tls_release(struct tls_material *m)
{
	free(m->cert);
	if (m->key != NULL)
		sodium_free(m->key);	/* sodium_free wipes before freeing */
	memset(m, 0, sizeof(*m));
}
