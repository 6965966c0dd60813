/*
 * twhookd sign / verify: the operator's view of X-Twilio-Signature, computed
 * by the same form_parse and signature_* code the daemon runs. Refuses to
 * guess: no auth token, a form given twice, or a body and a form together is
 * a usage error. The auth token lives in sodium_malloc memory, wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "cli.h"
#include "defaults.h"
#include "form.h"
#include "signature.h"

#define EXIT_VALID	0
#define EXIT_FAIL	1	/* sign: could not sign; verify: invalid */
#define EXIT_USAGE	2
#define BODY_HASH_NAME	"bodySHA256"
#define SHA256_HEX_LEN	(crypto_hash_sha256_BYTES * 2)

struct opts {
	int		 verify;
	const char	*url;
	const char	*token_file;
	const char	*form_file;
	const char	*body_file;
	const char	*signature;
	int		 curl;
	char		**kv;		/* KEY=VALUE arguments */
	int		 nkv;
};

/* What is signed, assembled from the options. */
struct request {
	struct buf	 url;		/* --url; sign adds bodySHA256 for --body-file */
	struct form	 form;
	char		*body;		/* content of --form-file or --body-file */
	size_t		 body_len;
	int		 json;		/* --body-file: only the URL is signed */
	struct buf	 post;		/* KEY=VALUE arguments, urlencoded (for --curl) */
};

static void
usage(FILE *out, int verify)
{
	if (verify)
		fprintf(out,
		    "usage: twhookd verify --url URL --signature SIG [--auth-token-file F]\n"
		    "                      [--form-file F | KEY=VALUE ...] [--body-file F]\n"
		    "exit 0 valid, 1 invalid (reason on stderr), 2 usage or input error\n");
	else
		fprintf(out,
		    "usage: twhookd sign --url URL [--auth-token-file F]\n"
		    "                    [--form-file F | KEY=VALUE ...] [--body-file F] [--curl]\n"
		    "prints the X-Twilio-Signature Twilio would send; --curl prints a curl command\n");
	fprintf(out,
	    "The auth token is read from --auth-token-file (trailing whitespace\n"
	    "stripped), else from $TWILIO_AUTH_TOKEN. --form-file holds the raw\n"
	    "urlencoded body as POSTed; KEY=VALUE arguments are raw, unencoded values.\n"
	    "--body-file is a non-form (JSON) body: only the URL is signed, and it\n"
	    "must carry " BODY_HASH_NAME " (sign appends it when the URL lacks it).\n");
}

static int
usage_error(const struct opts *o, const char *msg)
{
	fprintf(stderr, "twhookd %s: %s\n", o->verify ? "verify" : "sign", msg);
	usage(stderr, o->verify);
	return EXIT_USAGE;
}

/* Options into o. -1: go on; otherwise the exit code (after --help or an error). */
static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "auth-token-file", required_argument, NULL, 't' },
		{ "form-file", required_argument, NULL, 'f' },
		{ "body-file", required_argument, NULL, 'b' },
		{ "signature", required_argument, NULL, 's' },
		{ "curl", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch;

	optind = 0;	/* GNU getopt: full re-initialisation after main's pass */
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u': o->url = optarg; break;
		case 't': o->token_file = optarg; break;
		case 'f': o->form_file = optarg; break;
		case 'b': o->body_file = optarg; break;
		case 's': o->signature = optarg; break;
		case 'c': o->curl = 1; break;
		case 'h':
			usage(stdout, o->verify);
			return EXIT_VALID;
		default:
			usage(stderr, o->verify);
			return EXIT_USAGE;
		}
	}
	o->kv = argv + optind;
	o->nkv = argc - optind;
	if (o->url == NULL || o->url[0] == '\0')
		return usage_error(o, "--url is required");
	if (o->verify && o->signature == NULL)
		return usage_error(o, "--signature is required");
	if ((o->verify && o->curl) || (!o->verify && o->signature != NULL))
		return usage_error(o, o->verify ? "--curl is for sign" :
		    "--signature is for verify");
	if (o->form_file != NULL && o->nkv > 0)
		return usage_error(o, "give --form-file or KEY=VALUE arguments, not both");
	if (o->body_file != NULL && (o->form_file != NULL || o->nkv > 0))
		return usage_error(o, "--body-file is a non-form body: no form with it");
	return -1;
}

/* Read all of path into dst (cap bytes). 0, or -1 after saying why. */
static int
read_path(const char *path, char *dst, size_t cap, size_t *len)
{
	ssize_t	n;
	int	fd, rc = -1;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "twhookd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, dst + *len, cap - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "twhookd: %s: %s\n", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		if ((*len += (size_t)n) == cap) {
			fprintf(stderr, "twhookd: %s: larger than %zu bytes\n", path,
			    cap - 1);
			goto done;
		}
	}
	rc = 0;
done:
	close(fd);
	return rc;
}

/*
 * The auth token, into sodium_malloc memory (*tok, *len): from the file, else
 * $TWILIO_AUTH_TOKEN. -1 when there is none: the caller's usage error.
 */
static int
load_token(const struct opts *o, char **tok, size_t *len)
{
	const char	*env;

	*len = 0;
	if ((*tok = sodium_malloc(MAX_SECRET_FILE + 1)) == NULL)
		return -1;
	if (o->token_file != NULL) {
		if (read_path(o->token_file, *tok, MAX_SECRET_FILE + 1, len) == -1)
			return -1;
	} else if ((env = getenv("TWILIO_AUTH_TOKEN")) != NULL) {
		if ((*len = strlen(env)) > MAX_SECRET_FILE)
			return -1;
		memcpy(*tok, env, *len);
	}
	/* Files written by echo or an editor end in a newline: not the token's. */
	while (*len > 0 && strchr(" \t\r\n", (*tok)[*len - 1]) != NULL)
		(*len)--;
	return *len > 0 ? 0 : -1;
}

static int
no_token(const struct opts *o)
{
	return usage_error(o, o->token_file != NULL ?
	    "the --auth-token-file is unreadable, too large or empty" :
	    "no auth token: give --auth-token-file or set TWILIO_AUTH_TOKEN");
}

static void
token_free(char *tok)
{
	if (tok == NULL)
		return;
	sodium_memzero(tok, MAX_SECRET_FILE + 1);
	sodium_free(tok);
}

/* WHATWG application/x-www-form-urlencoded serializer: space '+', else %XX. */
static int
urlencode(struct buf *out, const char *s, size_t len)
{
	static const char	hex[] = "0123456789ABCDEF";
	unsigned char		c;
	char			esc[3] = { '%', 0, 0 };
	size_t			i;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '*' || c == '-' || c == '.' ||
		    c == '_') {
			if (buf_append(out, s + i, 1) == -1)
				return -1;
		} else if (c == ' ') {
			if (buf_append(out, "+", 1) == -1)
				return -1;
		} else {
			esc[1] = hex[c >> 4];
			esc[2] = hex[c & 15];
			if (buf_append(out, esc, 3) == -1)
				return -1;
		}
	}
	return 0;
}

/* KEY=VALUE arguments: raw values into the form, encoded into the POST body. */
static int
add_kv(const struct opts *o, struct request *r)
{
	const char	*kv, *eq;
	int		 i;

	for (i = 0; i < o->nkv; i++) {
		kv = o->kv[i];
		if ((eq = strchr(kv, '=')) == NULL) {
			usage_error(o, "arguments must be KEY=VALUE");
			return EXIT_USAGE;
		}
		if (form_add(&r->form, kv, (size_t)(eq - kv), eq + 1,
		    strlen(eq + 1)) == -1 ||
		    (i > 0 && buf_append(&r->post, "&", 1) == -1) ||
		    urlencode(&r->post, kv, (size_t)(eq - kv)) == -1 ||
		    buf_append(&r->post, "=", 1) == -1 ||
		    urlencode(&r->post, eq + 1, strlen(eq + 1)) == -1) {
			fprintf(stderr, "twhookd: out of memory\n");
			return EXIT_FAIL;
		}
	}
	return 0;
}

/* The first bodySHA256 value in url's query (raw), or NULL. */
static const char *
url_body_hash(const char *url, size_t *len)
{
	const char	*p = strchr(url, '?'), *end;

	while (p != NULL) {
		p++;
		end = p + strcspn(p, "&#");
		if (strncmp(p, BODY_HASH_NAME "=", sizeof(BODY_HASH_NAME)) == 0) {
			p += sizeof(BODY_HASH_NAME);
			*len = (size_t)(end - p);
			return p;
		}
		p = *end == '&' ? end : NULL;
	}
	return NULL;
}

/*
 * sign --body-file: the URL Twilio signs carries the body's lower-case hex
 * SHA-256. Appended when the URL lacks it; when present it must be this body's.
 */
static int
add_body_hash(const struct opts *o, struct request *r)
{
	uint8_t		 md[crypto_hash_sha256_BYTES];
	char		 hex[SHA256_HEX_LEN + 1];
	const char	*have;
	size_t		 have_len = 0;
	char		 last = r->url.len > 0 ? r->url.data[r->url.len - 1] : 0;

	crypto_hash_sha256(md, (const uint8_t *)r->body, r->body_len);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	if ((have = url_body_hash(o->url, &have_len)) != NULL) {
		if (have_len == SHA256_HEX_LEN && memcmp(have, hex, have_len) == 0)
			return 0;
		fprintf(stderr, "twhookd: sign: --url has " BODY_HASH_NAME
		    " %.*s, the body's is %s\n", (int)have_len, have, hex);
		return EXIT_USAGE;
	}
	if ((last != '?' && last != '&' && buf_append_str(&r->url,
	    strchr(o->url, '?') != NULL ? "&" : "?") == -1) ||
	    buf_printf(&r->url, BODY_HASH_NAME "=%s", hex) == -1) {
		fprintf(stderr, "twhookd: out of memory\n");
		return EXIT_FAIL;
	}
	return 0;
}

/* The form or body to sign, from files or arguments. 0 or an exit code. */
static int
load_request(const struct opts *o, struct request *r, int fail)
{
	const char		*path = o->form_file ? o->form_file : o->body_file;
	enum form_result	 fr;

	if (buf_append_str(&r->url, o->url) == -1)
		return EXIT_FAIL;
	if (path != NULL) {
		if ((r->body = malloc(MAX_BODY_LIMIT + 1)) == NULL ||
		    read_path(path, r->body, MAX_BODY_LIMIT + 1, &r->body_len) == -1)
			return fail;
	}
	if (o->body_file != NULL) {
		r->json = 1;
		return o->verify ? 0 : add_body_hash(o, r);
	}
	if (o->form_file != NULL) {
		fr = form_parse(r->body, r->body_len, MAX_FORM_PAIRS, &r->form);
		if (fr != FORM_OK) {
			fprintf(stderr, "twhookd: %s: %s\n", path, form_result_str(fr));
			return fail;
		}
		return 0;
	}
	return add_kv(o, r);
}

static void
request_free(struct request *r)
{
	buf_free(&r->url);
	buf_free(&r->post);
	form_free(&r->form);
	free(r->body);
}

/* Append s as one shell word: single quotes, each ' as '\''. */
static int
shell_quote(struct buf *out, const char *s)
{
	const char	*q;

	if (buf_append(out, "'", 1) == -1)
		return -1;
	while ((q = strchr(s, '\'')) != NULL) {
		if (buf_append(out, s, (size_t)(q - s)) == -1 ||
		    buf_append_str(out, "'\\''") == -1)
			return -1;
		s = q + 1;
	}
	return buf_append_str(out, s) == -1 ? -1 : buf_append(out, "'", 1);
}

/* A curl command that POSTs what was signed, as Twilio would. */
static int
print_curl(const struct opts *o, const struct request *r, const char *sig)
{
	struct buf	 c = BUF_INIT, data = BUF_INIT;
	const char	*file = o->form_file ? o->form_file : o->body_file;
	int		 rc = -1;

	if ((file != NULL ? buf_printf(&data, "@%s", file) :
	    buf_append(&data, r->post.data != NULL ? r->post.data : "",
	    r->post.len)) == -1)
		goto done;
	if (buf_printf(&c, "curl -sS -H 'X-Twilio-Signature: %s' -H ", sig) == -1 ||
	    shell_quote(&c, r->json ? "Content-Type: application/json" :
	    "Content-Type: application/x-www-form-urlencoded") == -1 ||
	    buf_append_str(&c, " --data-binary ") == -1 ||
	    shell_quote(&c, data.data) == -1 ||
	    buf_append(&c, " ", 1) == -1 ||
	    shell_quote(&c, r->url.data) == -1 ||
	    buf_append(&c, "\n", 1) == -1)
		goto done;
	rc = fputs(c.data, stdout) == EOF ? -1 : 0;
done:
	buf_free(&c);
	buf_free(&data);
	return rc;
}

int
cli_sign(int argc, char **argv)
{
	struct opts		o = { .verify = 0 };
	struct request		r = { BUF_INIT, FORM_INIT, NULL, 0, 0, BUF_INIT };
	struct signature_key	key;
	char			sig[SIGNATURE_SHA1_B64_LEN + 1], *tok = NULL;
	size_t			toklen;
	int			rc;

	if (sodium_init() < 0) {
		fprintf(stderr, "twhookd: libsodium failed to initialise\n");
		return EXIT_FAIL;
	}
	if ((rc = parse_opts(argc, argv, &o)) != -1)
		return rc;
	if (load_token(&o, &tok, &toklen) == -1) {
		rc = no_token(&o);
		goto done;
	}
	if ((rc = load_request(&o, &r, EXIT_FAIL)) != 0)
		goto done;
	key.data = (const uint8_t *)tok;
	key.len = toklen;
	rc = EXIT_FAIL;
	if (signature_compute(r.url.data, r.url.len, r.json ? NULL : &r.form,
	    &key, sig) != SIGNATURE_OK) {
		fprintf(stderr, "twhookd: sign: %s\n",
		    signature_result_str(SIGNATURE_ERROR));
		goto done;
	}
	if (r.json && !o.curl)
		fprintf(stderr, "signed URL: %s\n", r.url.data);
	if (o.curl ? print_curl(&o, &r, sig) == 0 : printf("%s\n", sig) > 0)
		rc = EXIT_VALID;
done:
	token_free(tok);
	request_free(&r);
	return rc;
}

/* Explain an invalid signature: the class, and what we expected for this URL. */
static void
explain(const struct request *r, const struct signature_key *key,
    enum signature_result res)
{
	uint8_t	md[crypto_hash_sha256_BYTES];
	char	sig[SIGNATURE_SHA1_B64_LEN + 1], hex[SHA256_HEX_LEN + 1];

	fprintf(stderr, "invalid: %s\n", signature_result_str(res));
	if (signature_compute(r->url.data, r->url.len, r->json ? NULL : &r->form,
	    key, sig) == SIGNATURE_OK)
		fprintf(stderr, "expected for %s: %s\n", r->url.data, sig);
	if (r->json) {
		crypto_hash_sha256(md, (const uint8_t *)r->body, r->body_len);
		sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
		fprintf(stderr, "body SHA-256: %s\n", hex);
	}
}

int
cli_verify(int argc, char **argv)
{
	struct opts		o = { .verify = 1 };
	struct request		r = { BUF_INIT, FORM_INIT, NULL, 0, 0, BUF_INIT };
	struct signature_key	key;
	struct signature_url	url;
	struct signature_check	c;
	enum signature_result	res;
	char			*tok = NULL;
	size_t			 toklen;
	int			 rc;

	if (sodium_init() < 0) {
		fprintf(stderr, "twhookd: libsodium failed to initialise\n");
		return EXIT_USAGE;
	}
	if ((rc = parse_opts(argc, argv, &o)) != -1)
		return rc;
	if (load_token(&o, &tok, &toklen) == -1) {
		rc = no_token(&o);
		goto done;
	}
	/* Exit 1 means "not valid" only: unreadable input is exit 2. */
	if ((rc = load_request(&o, &r, EXIT_USAGE)) != 0)
		goto done;
	key.data = (const uint8_t *)tok;
	key.len = toklen;
	memset(&c, 0, sizeof(c));
	url = (struct signature_url){ r.url.data, r.url.len };
	c.urls = &url;
	c.url_count = 1;
	c.params = r.json ? NULL : &r.form;
	c.body = (const uint8_t *)r.body;
	c.body_len = r.body_len;
	c.header = o.signature;
	c.header_len = strlen(o.signature);
	c.keys = &key;
	c.key_count = 1;
	if ((res = signature_verify(&c)) == SIGNATURE_OK) {
		printf("valid\n");
		rc = EXIT_VALID;
	} else {
		explain(&r, &key, res);
		rc = EXIT_FAIL;
	}
done:
	token_free(tok);
	request_free(&r);
	return rc;
}
