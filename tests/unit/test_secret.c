/*
 * secret.c: reset tokens (length, alphabet, determinism, separation by sid
 * and key, the id carried and masked, parsing, pinned vectors), keyed
 * hashes, and the key file: created 0600, reloaded identical,
 * refused when too open, the wrong size or a symlink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "secret.h"

static const char *const sids[] = {
	"SM00000000000000000000000000000000",
	"SM00000000000000000000000000000001",
	"SMffffffffffffffffffffffffffffffff",
	"MM1234567890abcdef1234567890abcdef",
	"",
	"x",
};
#define NSIDS (sizeof(sids) / sizeof(sids[0]))

static struct secret_key *
key_filled(uint8_t fill)
{
	uint8_t			 bytes[SECRET_KEY_BYTES];
	struct secret_key	*key;

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(fill + i);
	assert_int_equal(secret_key_from_bytes(bytes, sizeof(bytes), &key), 0);
	return key;
}

/* The token for sid under record id. */
static void
token_id(const struct secret_key *key, const char *sid, int64_t id,
    char out[SECRET_TOKEN_LEN + 1])
{
	uint8_t	secret[SECRET_RESET_BYTES];

	secret_reset_secret(key, sid, strlen(sid), secret);
	secret_reset_token(key, id, secret, out);
}

static void
token(const struct secret_key *key, const char *sid, char out[SECRET_TOKEN_LEN + 1])
{
	token_id(key, sid, 1, out);
}

static void
test_key_from_bytes_size(void **state)
{
	uint8_t			 bytes[SECRET_KEY_BYTES + 1] = { 0 };
	struct secret_key	*key = (struct secret_key *)1;

	(void)state;
	assert_int_equal(secret_key_from_bytes(bytes, SECRET_KEY_BYTES - 1, &key), -1);
	assert_null(key);
	assert_int_equal(secret_key_from_bytes(bytes, SECRET_KEY_BYTES + 1, &key), -1);
	secret_key_free(NULL);
}

static void
test_token_shape(void **state)
{
	struct secret_key	*key = key_filled(0);
	char			 t[SECRET_TOKEN_LEN + 1];

	(void)state;
	for (size_t i = 0; i < NSIDS; i++) {
		token(key, sids[i], t);
		assert_int_equal(strlen(t), SECRET_TOKEN_LEN);
		assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_"), SECRET_TOKEN_LEN);
	}
	secret_key_free(key);
}

static void
test_token_deterministic_and_distinct(void **state)
{
	struct secret_key	*a = key_filled(0), *b = key_filled(1);
	char			 t[NSIDS][SECRET_TOKEN_LEN + 1], again[SECRET_TOKEN_LEN + 1];

	(void)state;
	for (size_t i = 0; i < NSIDS; i++) {
		token(a, sids[i], t[i]);
		token(a, sids[i], again);
		assert_string_equal(t[i], again);	/* a retry gets the same token */
		token(b, sids[i], again);
		assert_string_not_equal(t[i], again);	/* another key, another token */
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(t[i], t[j]);
	}
	secret_key_free(a);
	secret_key_free(b);
}

/*
 * Pinned outputs for key bytes 0..31, computed independently with Python's
 * hashlib: subkey = blake2b(b"", key=master, salt=LE64(id) + 8 zero bytes,
 * person=b"twhookd_" + 8 zero bytes), as crypto_kdf_derive_from_key does;
 * id 1 keys the secret (blake2b-128 of the sid), id 2 the hash (of the
 * secret's bytes),
 * id 3 (16 bytes) the id's permutation (4 Feistel rounds on the id's
 * 32-bit halves, big-endian, each XORing the first 4 bytes of SipHash-2-4 of
 * round byte, secret and half; the Python SipHash checked against the
 * reference vector of its paper). A change here invalidates every token in
 * flight and every hash in the store.
 */
static void
test_vectors(void **state)
{
	static const uint8_t	 want_hash[SECRET_HASH_BYTES] = {
		0x9d, 0x5b, 0x22, 0xf9, 0x7e, 0x34, 0x47, 0xce,
		0xa0, 0xa6, 0xe6, 0x82, 0x77, 0x60, 0x7e, 0x50,
		0xfb, 0xf6, 0xb8, 0xea, 0x60, 0x8b, 0x6a, 0x97,
		0xc3, 0x59, 0x54, 0xe1, 0x5e, 0x90, 0xac, 0xa0,
	};
	static const char	 sid[] = "SM00000000000000000000000000000000";
	struct secret_key	*key = key_filled(0);
	char			 t[SECRET_TOKEN_LEN + 1];
	uint8_t			 h[SECRET_HASH_BYTES], secret[SECRET_RESET_BYTES];

	(void)state;
	token_id(key, sid, 1, t);
	assert_string_equal(t, "mgcgoD-QVl9DgJ5SJThzliJRb7Y1v6UM");
	token_id(key, sid, 123456789, t);
	assert_string_equal(t, "yQRkUjqdw1ZDgJ5SJThzliJRb7Y1v6UM");
	secret_reset_secret(key, sid, strlen(sid), secret);
	secret_hash(key, (const char *)secret, sizeof(secret), h);
	assert_memory_equal(h, want_hash, sizeof(h));
	secret_key_free(key);
}

/* A token gives back the id and secret it was made of, under its key only. */
static void
test_token_parse(void **state)
{
	static const int64_t	 ids[] = { 1, 2, 255, 256, (int64_t)1 << 40, INT64_MAX };
	struct secret_key	*a = key_filled(0), *b = key_filled(1);
	char			 t[SECRET_TOKEN_LEN + 1], t2[SECRET_TOKEN_LEN + 1];
	uint8_t			 secret[SECRET_RESET_BYTES], got[SECRET_RESET_BYTES];
	int64_t			 id;

	(void)state;
	secret_reset_secret(a, sids[0], strlen(sids[0]), secret);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		secret_reset_token(a, ids[i], secret, t);
		assert_true(secret_reset_token_parse(a, t, strlen(t), &id, got));
		assert_int_equal(id, ids[i]);
		assert_memory_equal(got, secret, sizeof(got));
		/* Another key reads another id out of the same text. */
		if (secret_reset_token_parse(b, t, strlen(t), &id, got))
			assert_int_not_equal(id, ids[i]);
	}
	/*
	 * Consecutive records' tokens show unrelated id fields: the permutation
	 * keeps the count of webhooks out of the links...
	 */
	{
		size_t same = 0;

		token_id(a, sids[0], 1000, t);
		token_id(a, sids[1], 1001, t2);
		for (size_t i = 0; i < 10; i++)		/* 10 characters: 60 of the 64 id bits */
			same += t[i] == t2[i];
		assert_true(same < 4);
	}
	/* ...and an edited id field names an unrelated id, not a neighbour. */
	for (unsigned bit = 0; bit < 64; bit += 7) {
		uint8_t	raw[SECRET_TOKEN_BYTES];
		size_t	n;

		secret_reset_token(a, 1000, secret, t);
		assert_int_equal(sodium_base642bin(raw, sizeof(raw), t, strlen(t), NULL,
		    &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
		raw[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		sodium_bin2base64(t2, sizeof(t2), raw, sizeof(raw),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		if (secret_reset_token_parse(a, t2, strlen(t2), &id, got))
			assert_true(id < 1000 - 65536 || id > 1000 + 65536);
	}
	/* No id, or not one of ours. */
	secret_reset_token(a, 0, secret, t);
	assert_false(secret_reset_token_parse(a, t, strlen(t), &id, got));
	assert_int_equal(id, 0);
	secret_reset_token(a, -1, secret, t);
	assert_false(secret_reset_token_parse(a, t, strlen(t), &id, got));
	secret_reset_token(a, 7, secret, t);
	assert_false(secret_reset_token_parse(a, t, strlen(t) - 1, &id, got));
	assert_false(secret_reset_token_parse(a, "", 0, &id, got));
	for (size_t i = 0; i < SECRET_TOKEN_LEN; i += 5) {
		for (const char *bad = "+/=. "; *bad != '\0'; bad++) {
			memcpy(t2, t, sizeof(t2));
			t2[i] = *bad;
			assert_false(secret_reset_token_parse(a, t2, strlen(t2), &id, got));
		}
	}
	/* A 43-character token (the length of a 256-bit one) is not ours. */
	assert_false(secret_reset_token_parse(a, "ZbMUMAarHu4VmmVaRVlCxEhR6oKFQbvvV6GeAD5MM3c",
	    43, &id, got));
	secret_key_free(a);
	secret_key_free(b);
}

/* Every length, only digits; each position uniform, leading zeros included. */
static void
test_pin_new(void **state)
{
	char		pin[SECRET_PIN_MAX + 1];
	unsigned	seen[SECRET_PIN_MAX][10];
	const unsigned	draws = 20000;

	(void)state;
	for (unsigned d = 1; d <= SECRET_PIN_MAX; d++) {
		secret_pin_new(d, pin);
		assert_int_equal(strlen(pin), d);
		assert_int_equal(strspn(pin, "0123456789"), d);
	}
	secret_pin_new(SECRET_PIN_MAX + 5, pin);
	assert_int_equal(strlen(pin), SECRET_PIN_MAX);
	memset(seen, 0, sizeof(seen));
	for (unsigned n = 0; n < draws; n++) {
		secret_pin_new(SECRET_PIN_MAX, pin);
		for (unsigned p = 0; p < SECRET_PIN_MAX; p++)
			seen[p][pin[p] - '0']++;
	}
	/* 2000 expected per cell; 1700..2300 is over 6 standard deviations wide. */
	for (unsigned p = 0; p < SECRET_PIN_MAX; p++)
		for (unsigned v = 0; v < 10; v++)
			if (seen[p][v] < 1700 || seen[p][v] > 2300)
				fail_msg("position %u digit %u: %u of %u", p, v, seen[p][v], draws);
}

static void
test_hash(void **state)
{
	struct secret_key	*a = key_filled(0), *b = key_filled(1);
	char			 t[SECRET_TOKEN_LEN + 1];
	uint8_t			 raw[SECRET_TOKEN_BYTES], h[SECRET_HASH_BYTES];
	uint8_t			 h2[SECRET_HASH_BYTES];
	size_t			 rawlen;

	(void)state;
	for (size_t i = 0; i < NSIDS; i++) {
		token(a, sids[i], t);
		secret_hash(a, t, strlen(t), h);
		assert_memory_not_equal(h, t, sizeof(h));
		assert_int_equal(sodium_base642bin(raw, sizeof(raw), t, strlen(t),
		    NULL, &rawlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
		assert_int_equal(rawlen, sizeof(raw));
		assert_memory_not_equal(h, raw, sizeof(h));
		/* Separate subkeys: hashing the sid is not deriving its token. */
		secret_hash(a, sids[i], strlen(sids[i]), h2);
		assert_memory_not_equal(h2, raw, sizeof(h2));
		secret_hash(a, t, strlen(t), h2);
		assert_memory_equal(h, h2, sizeof(h));
		secret_hash(b, t, strlen(t), h2);
		assert_memory_not_equal(h, h2, sizeof(h));
		t[0] = t[0] == 'A' ? 'B' : 'A';
		secret_hash(a, t, strlen(t), h2);
		assert_memory_not_equal(h, h2, sizeof(h));
	}
	secret_key_free(a);
	secret_key_free(b);
}

/* Key files live in a fresh directory per test. */
struct dir {
	char	path[64];
	char	key[128];
};

static int
dir_setup(void **state)
{
	struct dir	*d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/test_secret.XXXXXX");
	if (mkdtemp(d->path) == NULL)
		return -1;
	snprintf(d->key, sizeof(d->key), "%s/server.key", d->path);
	*state = d;
	return 0;
}

static int
dir_teardown(void **state)
{
	struct dir	*d = *state;
	DIR		*dp;
	struct dirent	*e;
	char		 p[512];

	if ((dp = opendir(d->path)) != NULL) {
		while ((e = readdir(dp)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
			if (unlink(p) == -1)
				rmdir(p);
		}
		closedir(dp);
	}
	rmdir(d->path);
	free(d);
	return 0;
}

static void
write_file(const char *path, size_t len, mode_t mode)
{
	uint8_t	bytes[64] = { 0 };
	int	fd;

	unlink(path);
	assert_true((fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600)) != -1);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static size_t
dir_entries(const char *path)
{
	DIR	*dp = opendir(path);
	size_t	 n = 0;

	assert_non_null(dp);
	while (readdir(dp) != NULL)
		n++;
	closedir(dp);
	return n - 2;
}

static void
test_key_create_and_reload(void **state)
{
	struct dir		*d = *state;
	struct secret_key	*k1, *k2, *k3;
	char			 err[256], t1[SECRET_TOKEN_LEN + 1], t2[SECRET_TOKEN_LEN + 1];
	struct stat		 st;

	assert_int_equal(secret_key_load(d->key, false, &k1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, d->key));
	assert_int_equal(secret_key_load(d->key, true, &k1, err, sizeof(err)), 0);
	assert_int_equal(stat(d->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, SECRET_KEY_BYTES);
	assert_int_equal(dir_entries(d->path), 1);	/* no temporary left */

	assert_int_equal(secret_key_load(d->key, false, &k2, err, sizeof(err)), 0);
	assert_int_equal(secret_key_load(d->key, true, &k3, err, sizeof(err)), 0);
	token(k1, sids[0], t1);
	token(k2, sids[0], t2);
	assert_string_equal(t1, t2);
	token(k3, sids[0], t2);
	assert_string_equal(t1, t2);			/* create=true never overwrites */
	secret_key_free(k1);
	secret_key_free(k2);
	secret_key_free(k3);
}

struct file_case {
	size_t		 len;
	mode_t		 mode;
	const char	*err;		/* NULL: accepted */
};

static const struct file_case file_cases[] = {
	{ SECRET_KEY_BYTES, 0600, NULL },
	{ SECRET_KEY_BYTES, 0400, NULL },
	{ SECRET_KEY_BYTES, 0644, "chmod 600" },
	{ SECRET_KEY_BYTES, 0640, "chmod 600" },
	{ SECRET_KEY_BYTES, 0604, "chmod 600" },
	{ SECRET_KEY_BYTES, 0620, "chmod 600" },
	{ 0, 0600, "exactly 32" },
	{ SECRET_KEY_BYTES - 1, 0600, "exactly 32" },
	{ SECRET_KEY_BYTES + 1, 0600, "exactly 32" },
};

static void
test_key_file_checks(void **state)
{
	struct dir		*d = *state;
	struct secret_key	*key;
	char			 err[256];

	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		const struct file_case *c = &file_cases[i];

		write_file(d->key, c->len, c->mode);
		err[0] = '\0';
		/* create=true must not replace a bad file either */
		int rc = secret_key_load(d->key, true, &key, err, sizeof(err));
		if (c->err == NULL) {
			assert_int_equal(rc, 0);
			secret_key_free(key);
			continue;
		}
		assert_int_equal(rc, -1);
		assert_null(key);
		if (strstr(err, c->err) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, c->err);
	}
}

/* secret_key_check judges a file as secret_key_load does, and creates none. */
static void
test_key_check(void **state)
{
	struct dir	*d = *state;
	char		 err[256], path[200];
	bool		 missing;

	assert_int_equal(secret_key_check(d->key, &missing, err, sizeof(err)), 0);
	assert_true(missing);
	assert_int_equal(dir_entries(d->path), 0);	/* nothing created */
	snprintf(path, sizeof(path), "%s/no-such-dir/server.key", d->path);
	assert_int_equal(secret_key_check(path, &missing, err, sizeof(err)), -1);
	assert_true(missing);
	assert_non_null(strstr(err, "cannot be created"));
	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		const struct file_case *c = &file_cases[i];
		int rc;

		write_file(d->key, c->len, c->mode);
		err[0] = '\0';
		rc = secret_key_check(d->key, &missing, err, sizeof(err));
		assert_false(missing);
		if (c->err == NULL) {
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, -1);
		if (strstr(err, c->err) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, c->err);
	}
}

static void
test_key_refuses_symlink_and_dir(void **state)
{
	struct dir		*d = *state;
	struct secret_key	*key;
	char			 err[256], target[160];

	snprintf(target, sizeof(target), "%s/real.key", d->path);
	write_file(target, SECRET_KEY_BYTES, 0600);
	assert_int_equal(symlink(target, d->key), 0);
	assert_int_equal(secret_key_load(d->key, true, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	unlink(d->key);
	assert_int_equal(mkdir(d->key, 0700), 0);
	assert_int_equal(secret_key_load(d->key, true, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

#define RACERS 8

struct racer {
	const char		*path;
	pthread_barrier_t	*barrier;
	int			 rc;
	char			 token[SECRET_TOKEN_LEN + 1];
};

static void *
race_load(void *arg)
{
	struct racer		*r = arg;
	struct secret_key	*key;
	char			 err[256];

	pthread_barrier_wait(r->barrier);
	r->rc = secret_key_load(r->path, true, &key, err, sizeof(err));
	if (r->rc == 0) {
		uint8_t secret[SECRET_RESET_BYTES];

		secret_reset_secret(key, "SM1", 3, secret);
		secret_reset_token(key, 1, secret, r->token);
		secret_key_free(key);
	}
	return NULL;
}

/* Processes starting together: one key wins, everyone loads it. */
static void
test_key_create_race(void **state)
{
	struct dir		*d = *state;
	pthread_barrier_t	 barrier;
	pthread_t		 th[RACERS];
	struct racer		 r[RACERS];

	for (int round = 0; round < 20; round++) {
		unlink(d->key);
		pthread_barrier_init(&barrier, NULL, RACERS);
		for (int i = 0; i < RACERS; i++) {
			r[i] = (struct racer){ .path = d->key, .barrier = &barrier };
			assert_int_equal(pthread_create(&th[i], NULL, race_load, &r[i]), 0);
		}
		for (int i = 0; i < RACERS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&barrier);
		for (int i = 0; i < RACERS; i++) {
			assert_int_equal(r[i].rc, 0);
			assert_string_equal(r[i].token, r[0].token);
		}
		assert_int_equal(dir_entries(d->path), 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_from_bytes_size),
		cmocka_unit_test(test_token_shape),
		cmocka_unit_test(test_token_deterministic_and_distinct),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_token_parse),
		cmocka_unit_test(test_pin_new),
		cmocka_unit_test(test_hash),
		cmocka_unit_test_setup_teardown(test_key_create_and_reload, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_key_file_checks, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_key_check, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_key_refuses_symlink_and_dir, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_key_create_race, dir_setup, dir_teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
