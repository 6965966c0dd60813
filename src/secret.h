/*
 * Tokens and their keyed hashes (libsodium). The server key (32 random bytes,
 * kept in a 0600 file) derives a reset token's secret from a webhook's
 * MessageSid, so a retried webhook gets the same token without the token ever
 * being stored, and keys the hashes that are all the store ever sees.
 */
#ifndef TWHOOKD_SECRET_H
#define TWHOOKD_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECRET_KEY_BYTES	32u
#define SECRET_RESET_BYTES	16u	/* a reset token's secret: 128 bits */
#define SECRET_TOKEN_BYTES	(8u + SECRET_RESET_BYTES)	/* masked id, secret */
#define SECRET_TOKEN_LEN	32u	/* base64url, no padding */
#define SECRET_HASH_BYTES	32u

struct secret_key;	/* opaque; its bytes live in sodium_malloc memory */

/*
 * Load the server key from path; when the file is missing and create is true,
 * write SECRET_KEY_BYTES random bytes to it with mode 0600 (O_EXCL). A file of
 * the wrong size or readable by group/others is refused. 0, or -1 with a
 * message in err.
 */
__attribute__((warn_unused_result))
int	secret_key_load(const char *path, bool create, struct secret_key **out,
	    char *err, size_t errsz);
/*
 * What secret_key_load(path, true, ...) would make of path, changing nothing:
 * 0 when the key file is usable, or missing (*missing set) in a directory
 * where this user could create it; -1 with a message in err otherwise.
 */
__attribute__((warn_unused_result))
int	secret_key_check(const char *path, bool *missing, char *err, size_t errsz);
/* Build a key from raw bytes (tests). 0 or -1. */
__attribute__((warn_unused_result))
int	secret_key_from_bytes(const uint8_t *bytes, size_t len, struct secret_key **out);
/* Wipe and free; accepts NULL. */
void	secret_key_free(struct secret_key *key);

/*
 * A reset token's secret: a keyed BLAKE2b of the webhook's MessageSid under a
 * subkey of the server key. Deterministic, so a retry gets the same one;
 * unpredictable without the key. The store keeps its secret_hash.
 */
void	secret_reset_secret(const struct secret_key *key, const char *message_sid,
	    size_t len, uint8_t out[SECRET_RESET_BYTES]);
/*
 * The token: base64url (no padding) of the token's id (its row in the store)
 * through a keyed permutation of 64-bit values (tweaked by the secret), 8
 * bytes big-endian, then the secret. The id lets redeem find the row without
 * an index on hashes; the permutation keeps it (how many webhooks came
 * before) out of the link, and an edited id field names an unrelated row.
 * out receives SECRET_TOKEN_LEN characters and a NUL.
 */
void	secret_reset_token(const struct secret_key *key, int64_t id,
	    const uint8_t secret[SECRET_RESET_BYTES], char out[SECRET_TOKEN_LEN + 1]);
/*
 * Take a token apart: false unless it is SECRET_TOKEN_LEN characters of
 * base64url carrying an id > 0. A forged id only finds a row whose hash
 * the forged secret does not match.
 */
__attribute__((warn_unused_result))
bool	secret_reset_token_parse(const struct secret_key *key, const char *token,
	    size_t len, int64_t *id, uint8_t secret[SECRET_RESET_BYTES]);

/* Keyed hash (another subkey) of a token secret or PIN: what the store keeps. */
void	secret_hash(const struct secret_key *key, const char *token, size_t len,
	    uint8_t out[SECRET_HASH_BYTES]);

/* A uniform PIN of digits decimal digits (randombytes_uniform per digit). */
#define SECRET_PIN_MAX	10u
void	secret_pin_new(unsigned digits, char out[SECRET_PIN_MAX + 1]);
/* Keyed hash of a PIN bound to the phone it was sent to. */
void	secret_pin_hash(const struct secret_key *key, const char *phone,
	    const char *pin, size_t pin_len, uint8_t out[SECRET_HASH_BYTES]);

#endif
