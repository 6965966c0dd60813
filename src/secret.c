/*
 * Reset tokens and keyed hashes under the server key (libsodium). Subkeys
 * are derived once at load, one per purpose, so a token can never equal the
 * hash the store keeps. Refuses a key file that is not 0600-like,
 * not regular, a symlink, or not exactly SECRET_KEY_BYTES long.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "secret.h"

#define KDF_CONTEXT	"twhookd_"	/* crypto_kdf_CONTEXTBYTES characters */

/* Subkey ids: never reuse or renumber, tokens already issued depend on them. */
enum subkey_id {
	SUBKEY_RESET_TOKEN = 1,
	SUBKEY_HASH = 2,
	SUBKEY_TOKEN_ID = 3,
};

/* Lives in sodium_malloc memory (guard pages, mlock), read-only once built. */
struct secret_key {
	uint8_t	token_key[crypto_generichash_KEYBYTES];
	uint8_t	hash_key[crypto_generichash_KEYBYTES];
	uint8_t	id_key[crypto_shorthash_KEYBYTES];
};

_Static_assert(sizeof(KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context");
_Static_assert(SECRET_KEY_BYTES == crypto_kdf_KEYBYTES, "key size");
_Static_assert(SECRET_HASH_BYTES == crypto_generichash_BYTES, "hash size");
_Static_assert(sodium_base64_ENCODED_LEN(SECRET_TOKEN_BYTES,
    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == SECRET_TOKEN_LEN + 1, "token length");
_Static_assert(SECRET_RESET_BYTES >= crypto_generichash_BYTES_MIN, "secret size");

int
secret_key_from_bytes(const uint8_t *bytes, size_t len, struct secret_key **out)
{
	struct secret_key	*key;

	*out = NULL;
	if (len != SECRET_KEY_BYTES || sodium_init() < 0)
		return -1;
	if ((key = sodium_malloc(sizeof(*key))) == NULL)
		return -1;
	if (crypto_kdf_derive_from_key(key->token_key, sizeof(key->token_key),
	    SUBKEY_RESET_TOKEN, KDF_CONTEXT, bytes) != 0 ||
	    crypto_kdf_derive_from_key(key->hash_key, sizeof(key->hash_key),
	    SUBKEY_HASH, KDF_CONTEXT, bytes) != 0 ||
	    crypto_kdf_derive_from_key(key->id_key, sizeof(key->id_key),
	    SUBKEY_TOKEN_ID, KDF_CONTEXT, bytes) != 0) {
		secret_key_free(key);
		return -1;
	}
	/*
	 * Read-only rather than no-access: threads derive tokens concurrently,
	 * and toggling protection around each use would race between them.
	 */
	sodium_mprotect_readonly(key);
	*out = key;
	return 0;
}

void
secret_key_free(struct secret_key *key)
{
	if (key == NULL)
		return;
	sodium_mprotect_readwrite(key);
	sodium_memzero(key, sizeof(*key));
	sodium_free(key);
}

void
secret_reset_secret(const struct secret_key *key, const char *message_sid,
    size_t len, uint8_t out[SECRET_RESET_BYTES])
{
	crypto_generichash(out, SECRET_RESET_BYTES, (const unsigned char *)message_sid,
	    len, key->token_key, sizeof(key->token_key));
}

/*
 * The id in a token goes through a keyed permutation of 64-bit values: a
 * 4-round Feistel network whose round function is SipHash-2-4 (the id
 * subkey: a PRF made for short inputs, a fifth of a keyed BLAKE2b's cost
 * here) of the round, the token's secret and the half. A token's id field
 * then says nothing about the count of webhooks, and changing it lands on an
 * unrelated id rather than a neighbour of one's own.
 */
#define ID_ROUNDS	4

static uint32_t
id_round(const struct secret_key *key, const uint8_t secret[SECRET_RESET_BYTES],
    unsigned round, uint32_t half)
{
	uint8_t	msg[1 + SECRET_RESET_BYTES + 4], out[crypto_shorthash_BYTES];

	msg[0] = (uint8_t)round;
	memcpy(msg + 1, secret, SECRET_RESET_BYTES);
	for (size_t i = 0; i < 4; i++)
		msg[1 + SECRET_RESET_BYTES + i] = (uint8_t)(half >> (24 - 8 * i));
	crypto_shorthash(out, msg, sizeof(msg), key->id_key);
	sodium_memzero(msg, sizeof(msg));
	return (uint32_t)out[0] << 24 | (uint32_t)out[1] << 16 |
	    (uint32_t)out[2] << 8 | out[3];
}

static uint64_t
id_encrypt(const struct secret_key *key, const uint8_t secret[SECRET_RESET_BYTES],
    uint64_t v)
{
	uint32_t	l = (uint32_t)(v >> 32), r = (uint32_t)v, t;

	for (unsigned i = 0; i < ID_ROUNDS; i++) {
		t = r;
		r = l ^ id_round(key, secret, i, r);
		l = t;
	}
	return (uint64_t)l << 32 | r;
}

static uint64_t
id_decrypt(const struct secret_key *key, const uint8_t secret[SECRET_RESET_BYTES],
    uint64_t v)
{
	uint32_t	l = (uint32_t)(v >> 32), r = (uint32_t)v, t;

	for (unsigned i = ID_ROUNDS; i-- > 0;) {
		t = l;
		l = r ^ id_round(key, secret, i, l);
		r = t;
	}
	return (uint64_t)l << 32 | r;
}

void
secret_reset_token(const struct secret_key *key, int64_t id,
    const uint8_t secret[SECRET_RESET_BYTES], char out[SECRET_TOKEN_LEN + 1])
{
	uint8_t		raw[SECRET_TOKEN_BYTES];
	uint64_t	enc = id_encrypt(key, secret, (uint64_t)id);

	for (size_t i = 0; i < 8; i++)
		raw[i] = (uint8_t)(enc >> (56 - 8 * i));
	memcpy(raw + 8, secret, SECRET_RESET_BYTES);
	sodium_bin2base64(out, SECRET_TOKEN_LEN + 1, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

bool
secret_reset_token_parse(const struct secret_key *key, const char *token,
    size_t len, int64_t *id, uint8_t secret[SECRET_RESET_BYTES])
{
	uint8_t		raw[SECRET_TOKEN_BYTES];
	uint64_t	v = 0;
	size_t		n = 0;
	const char	*end = NULL;
	bool		ok;

	*id = 0;
	/* 32 characters carry exactly 24 bytes: no padding bits to be lax about. */
	ok = len == SECRET_TOKEN_LEN && sodium_base642bin(raw, sizeof(raw), token,
	    len, NULL, &n, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
	    n == sizeof(raw) && end == token + len;
	if (ok) {
		memcpy(secret, raw + 8, SECRET_RESET_BYTES);
		for (size_t i = 0; i < 8; i++)
			v = v << 8 | raw[i];
		v = id_decrypt(key, secret, v);
		ok = v > 0 && v <= INT64_MAX;
		*id = ok ? (int64_t)v : 0;
	}
	if (!ok)
		sodium_memzero(secret, SECRET_RESET_BYTES);
	sodium_memzero(raw, sizeof(raw));
	return ok;
}

void
secret_hash(const struct secret_key *key, const char *token, size_t len,
    uint8_t out[SECRET_HASH_BYTES])
{
	crypto_generichash(out, SECRET_HASH_BYTES, (const unsigned char *)token,
	    len, key->hash_key, sizeof(key->hash_key));
}

/* Read exactly SECRET_KEY_BYTES from path into raw. *missing when ENOENT. */
static int
key_read(const char *path, uint8_t *raw, bool *missing, char *err, size_t errsz)
{
	struct stat	st;
	size_t		got = 0;
	ssize_t		n;
	int		fd, rc = -1;

	*missing = false;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		*missing = errno == ENOENT;
		snprintf(err, errsz, "%s: %s", path, errno == ELOOP ?
		    "is a symbolic link (refused)" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		goto done;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, errsz, "%s: mode %04o lets group or others access the "
		    "server key; chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		goto done;
	}
	if (st.st_size != (off_t)SECRET_KEY_BYTES) {
		snprintf(err, errsz, "%s: is %lld bytes, a server key is exactly %u",
		    path, (long long)st.st_size, SECRET_KEY_BYTES);
		goto done;
	}
	while (got < SECRET_KEY_BYTES) {
		n = read(fd, raw + got, SECRET_KEY_BYTES - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errsz, "%s: %s", path,
			    n == 0 ? "shorter than its size (changed while read)" :
			    strerror(errno));
			goto done;
		}
		got += (size_t)n;
	}
	rc = 0;
done:
	close(fd);
	return rc;
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The directory holding path, into dir. 0, or -1 when it does not fit. */
static int
dir_of(const char *path, char *dir, size_t dirsz)
{
	char	*slash;

	if (snprintf(dir, dirsz, "%s", path) >= (int)dirsz)
		return -1;
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, dirsz, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

/* fsync the directory holding path, so the new name survives a power loss. */
static int
fsync_dir(const char *path)
{
	char	dir[PATH_MAX];
	int	fd, rc;

	if (dir_of(path, dir, sizeof(dir)) == -1)
		return -1;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	/* Some file systems cannot fsync a directory; nothing more to do there. */
	rc = fsync(fd) == -1 && errno != EINVAL ? -1 : 0;
	close(fd);
	return rc;
}

/*
 * Write a fresh key to a private temporary name, then link(2) it into place:
 * link fails with EEXIST instead of replacing, so when two processes start at
 * once exactly one key wins and nobody ever reads a half-written file.
 * 0 created (raw holds it), 1 another process created it first, -1 error.
 */
static int
key_create(const char *path, uint8_t *raw, char *err, size_t errsz)
{
	char	tmp[PATH_MAX], suffix[2 * 8 + 1];
	uint8_t	rnd[8];
	int	fd = -1, rc = -1;

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(suffix, sizeof(suffix), rnd, sizeof(rnd));
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, suffix) >= (int)sizeof(tmp)) {
		snprintf(err, errsz, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errsz, "%s: cannot create: %s", tmp, strerror(errno));
		return -1;
	}
	randombytes_buf(raw, SECRET_KEY_BYTES);
	/* Exactly 0600 whatever the umask, so key_read accepts it next start. */
	if (fchmod(fd, 0600) == -1 || write_all(fd, raw, SECRET_KEY_BYTES) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errsz, "%s: cannot write: %s", tmp, strerror(errno));
		goto done;
	}
	if (close(fd) == -1) {
		fd = -1;
		snprintf(err, errsz, "%s: cannot write: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (link(tmp, path) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = 1;
	else
		snprintf(err, errsz, "%s: cannot create: %s", path, strerror(errno));
done:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	if (rc == 0 && fsync_dir(path) == -1) {
		snprintf(err, errsz, "%s: cannot sync directory: %s", path,
		    strerror(errno));
		rc = -1;
	}
	if (rc != 0)
		sodium_memzero(raw, SECRET_KEY_BYTES);
	return rc;
}

int
secret_key_load(const char *path, bool create, struct secret_key **out,
    char *err, size_t errsz)
{
	uint8_t	*raw = NULL;
	bool	 missing;
	int	 rc = -1, r;

	*out = NULL;
	if (sodium_init() < 0 || (raw = sodium_malloc(SECRET_KEY_BYTES)) == NULL) {
		snprintf(err, errsz, "%s: cannot set up secure memory", path);
		return -1;
	}
	r = key_read(path, raw, &missing, err, errsz);
	/* r == 1: lost a creation race; the winner's key is complete, read it. */
	if (r == -1 && missing && create &&
	    (r = key_create(path, raw, err, errsz)) == 1)
		r = key_read(path, raw, &missing, err, errsz);
	if (r == -1)
		goto done;
	if (secret_key_from_bytes(raw, SECRET_KEY_BYTES, out) == -1) {
		snprintf(err, errsz, "%s: cannot set up secure memory", path);
		goto done;
	}
	rc = 0;
done:
	sodium_free(raw);	/* wipes it */
	return rc;
}

int
secret_key_check(const char *path, bool *missing, char *err, size_t errsz)
{
	char	 dir[PATH_MAX];
	uint8_t	*raw;
	int	 rc;

	*missing = false;
	if (sodium_init() < 0 || (raw = sodium_malloc(SECRET_KEY_BYTES)) == NULL) {
		snprintf(err, errsz, "%s: cannot set up secure memory", path);
		return -1;
	}
	rc = key_read(path, raw, missing, err, errsz);
	sodium_free(raw);	/* wipes it */
	if (rc == 0 || !*missing)
		return rc;
	/* What key_create needs: a directory this user can add a file to. */
	if (dir_of(path, dir, sizeof(dir)) == -1) {
		snprintf(err, errsz, "%s: path too long", path);
		return -1;
	}
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(err, errsz, "%s: does not exist, and cannot be created in "
		    "%s: %s", path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

void
secret_pin_new(unsigned digits, char out[SECRET_PIN_MAX + 1])
{
	unsigned	i = 0;

	if (digits > SECRET_PIN_MAX)
		digits = SECRET_PIN_MAX;
	/*
	 * randombytes_uniform: no modulo bias, every PIN equally likely. Up to
	 * nine digits a draw (10^9 < 2^32): one getrandom(2) for a PIN of
	 * ordinary length rather than one per digit.
	 */
	while (i < digits) {
		unsigned	k = digits - i < 9 ? digits - i : 9;
		uint32_t	bound = 1, v;

		for (unsigned j = 0; j < k; j++)
			bound *= 10;
		v = randombytes_uniform(bound);
		for (unsigned j = k; j-- > 0; v /= 10)
			out[i + j] = (char)('0' + v % 10);	/* leading zeros kept */
		i += k;
	}
	out[i] = '\0';
}

/*
 * "pin", NUL, phone, NUL, pin under the hash subkey: the NULs keep it apart
 * from token hashes (tokens never contain NUL) and bind the PIN to its phone.
 */
void
secret_pin_hash(const struct secret_key *key, const char *phone, const char *pin,
    size_t pin_len, uint8_t out[SECRET_HASH_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key->hash_key, sizeof(key->hash_key), SECRET_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)"pin", 4);
	crypto_generichash_update(&st, (const unsigned char *)phone, strlen(phone) + 1);
	crypto_generichash_update(&st, (const unsigned char *)pin, pin_len);
	crypto_generichash_final(&st, out, SECRET_HASH_BYTES);
	sodium_memzero(&st, sizeof(st));
}
