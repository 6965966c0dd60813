/*
 * Load and check the public listener's TLS material with GnuTLS before the
 * daemon starts: each file must parse, the key must match the certificate,
 * be readable by its owner only, and the priority string must parse, so
 * mistakes are startup (and check-config) errors naming the file, not failed
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
#include <gnutls/x509.h>
#include <sodium.h>

#include "tls.h"

#define TLS_MAX_PEM (1024u * 1024u)

/*
 * Read a whole PEM file into fresh memory (sodium_malloc when secret). A
 * secret file must be reachable by its owner only, the rule secret.c applies
 * to the server key: anyone else who can read it can impersonate the service.
 */
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
	if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, errsz, "%s: mode %04o lets group or others access the "
		    "TLS key; chmod 600 it", path, (unsigned)(st.st_mode & 07777));
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

/* The certificate chain parses on its own: at least one PEM certificate. */
static int
check_cert(const gnutls_datum_t *cert, const char *path, char *err, size_t errsz)
{
	gnutls_x509_crt_t	*crts = NULL;
	unsigned		 n = 0;
	int			 ret;

	ret = gnutls_x509_crt_list_import2(&crts, &n, cert, GNUTLS_X509_FMT_PEM, 0);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (ret < 0 || n == 0) {
		snprintf(err, errsz, "%s: not a PEM certificate chain: %s", path,
		    ret < 0 ? gnutls_strerror(ret) : "no certificate in it");
		return -1;
	}
	return 0;
}

/* The key parses on its own, so that a failure below is a mismatch. */
static int
check_key(const gnutls_datum_t *key, const char *path, char *err, size_t errsz)
{
	gnutls_x509_privkey_t	k = NULL;
	int			ret;

	if ((ret = gnutls_x509_privkey_init(&k)) >= 0)
		ret = gnutls_x509_privkey_import2(k, key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (k != NULL)
		gnutls_x509_privkey_deinit(k);
	if (ret < 0) {
		snprintf(err, errsz, "%s: not a PEM private key (or one with a "
		    "passphrase): %s", path, gnutls_strerror(ret));
		return -1;
	}
	return 0;
}

/*
 * Load both into throwaway credentials, as libmicrohttpd will: GnuTLS checks
 * there that the key belongs to the first certificate of the chain.
 */
static int
check_pair(const struct tls_material *m, const char *cert_path, const char *key_path,
    enum tls_part *bad, char *err, size_t errsz)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t		cert = { (unsigned char *)m->cert, (unsigned)strlen(m->cert) };
	gnutls_datum_t		key = { (unsigned char *)m->key, (unsigned)m->key_len };
	int			rc = -1, ret;

	*bad = TLS_PART_CERT;
	if (check_cert(&cert, cert_path, err, errsz) == -1)
		goto done;
	*bad = TLS_PART_KEY;
	if (check_key(&key, key_path, err, errsz) == -1)
		goto done;
	if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0) {
		*bad = TLS_PART_CERT;
		snprintf(err, errsz, "gnutls: %s", gnutls_strerror(ret));
		goto done;
	}
	ret = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		snprintf(err, errsz, "%s: does not match the certificate %s", key_path,
		    cert_path);
		goto done;
	}
	if (ret < 0) {
		*bad = TLS_PART_CERT;
		snprintf(err, errsz, "%s: certificate and key do not load together: %s",
		    cert_path, gnutls_strerror(ret));
		goto done;
	}
	rc = 0;
done:
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	return rc;
}

static int
check_priorities(const char *priorities, char *err, size_t errsz)
{
	gnutls_priority_t	 prio = NULL;
	const char		*where = NULL;
	int			 ret;

	if ((ret = gnutls_priority_init(&prio, priorities, &where)) < 0) {
		snprintf(err, errsz, "%s near \"%.32s\"", gnutls_strerror(ret),
		    where != NULL ? where : "");
		return -1;
	}
	gnutls_priority_deinit(prio);
	return 0;
}

int
tls_load(const char *cert_path, const char *key_path, const char *priorities,
    struct tls_material *out, enum tls_part *bad, char *err, size_t errsz)
{
	size_t len;

	memset(out, 0, sizeof(*out));
	*bad = TLS_PART_CERT;
	if ((out->cert = read_pem(cert_path, 0, &len, err, errsz)) == NULL)
		goto fail;
	*bad = TLS_PART_KEY;
	if ((out->key = read_pem(key_path, 1, &out->key_len, err, errsz)) == NULL ||
	    check_pair(out, cert_path, key_path, bad, err, errsz) == -1)
		goto fail;
	*bad = TLS_PART_PRIORITIES;
	if (check_priorities(priorities, err, errsz) == -1)
		goto fail;
	return 0;
fail:
	tls_release(out);
	return -1;
}

void
tls_release(struct tls_material *m)
{
	free(m->cert);
	if (m->key != NULL)
		sodium_free(m->key);	/* sodium_free wipes before freeing */
	memset(m, 0, sizeof(*m));
}
