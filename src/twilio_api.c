/*
 * Twilio Messages REST API client on libcurl (GnuTLS build). One easy handle
 * per struct twilio_api, reused so the TLS connection stays alive. HTTPS
 * only, peer and host always verified, no redirects, every call bounded by
 * API_TOTAL_TIMEOUT. Logs nothing: the caller decides what a reply means for
 * the message. The POST body carries the PIN, so it is wiped after use.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "defaults.h"
#include "twilio_api.h"

#define REPLY_MAX	(64u * 1024u)	/* Twilio's replies are ~2 KiB */
/*
 * The system's CAs (ca-certificates): its bundle, and the directory as a
 * fallback where there is no bundle (Debian's libcurl-gnutls default).
 */
#ifndef TWILIO_API_SYSTEM_CABUNDLE
#define TWILIO_API_SYSTEM_CABUNDLE	"/etc/ssl/certs/ca-certificates.crt"
#endif
#ifndef TWILIO_API_SYSTEM_CAPATH
#define TWILIO_API_SYSTEM_CAPATH	"/etc/ssl/certs"
#endif

struct twilio_api {
	const struct twilio_api_config	*cfg;
	CURL				*curl;
	struct curl_slist		*headers;
	char				*url;
	int				 ca_fd;		/* the combined CA file, or -1 */
	char				 ca_path[32];
	char				 errbuf[CURL_ERROR_SIZE];
	/* Per call: */
	struct buf			 reply;
	bool				 reply_truncated;
	unsigned			 retry_after;
};

/* Allocate exactly cap bytes up front, so later appends never realloc. */
static int
presize(struct buf *b, size_t cap)
{
	if ((b->data = malloc(cap)) == NULL)
		return -1;
	b->cap = cap;
	b->len = 0;
	b->data[0] = '\0';
	return 0;
}

int
twilio_api_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
twilio_api_global_cleanup(void)
{
	curl_global_cleanup();
}

/* Keep at most REPLY_MAX bytes; past that, abort the transfer (the status is kept). */
static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct twilio_api	*api = arg;
	size_t			 n = size * nmemb;

	if (n > REPLY_MAX - api->reply.len) {
		api->reply_truncated = true;
		return 0;
	}
	if (buf_append(&api->reply, data, n) == -1)
		return 0;
	return n;
}

/* Remember Retry-After (RFC 9110 section 10.2.3); a new status line starts over. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	static const char	 name[] = "retry-after:";
	struct twilio_api	*api = arg;
	size_t			 n = size * nmemb;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		api->retry_after = 0;
	else if (n >= sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
		api->retry_after = twilio_api_retry_after(data + sizeof(name) - 1,
		    n - (sizeof(name) - 1), OUTBOX_MAX_RETRY_AFTER);
	return n;
}

enum twilio_outcome
twilio_api_classify(bool transport_ok, long http_status)
{
	/* No reply: Twilio may or may not have the message; the PIN's expiry bounds retries. */
	if (!transport_ok || http_status == 0)
		return TWILIO_RETRY;
	if (http_status >= 200 && http_status <= 299)
		return TWILIO_ACCEPTED;
	switch (http_status) {
	case 401:
		/*
		 * Our credentials, not the message: an API key being rotated or
		 * a secret file fixed and reloaded. Retrying until the PIN
		 * expires costs a few requests; giving up loses every PIN
		 * queued meanwhile. The outbox logs each 401 loudly enough.
		 */
	case 408:
	case 429:
		return TWILIO_RETRY;
	default:
		break;
	}
	if (http_status >= 400 && http_status <= 499)
		return TWILIO_PERMANENT;	/* 21211 bad number, 21610 opted out, ... */
	/* 5xx, and anything Twilio does not send (1xx, 3xx): retry until expiry. */
	return TWILIO_RETRY;
}

unsigned
twilio_api_retry_after(const char *value, size_t len, unsigned cap)
{
	size_t		i = 0, digits;
	uint64_t	v = 0;

	/* delta-seconds = 1*DIGIT, with optional whitespace around; HTTP-date ignored. */
	while (i < len && (value[i] == ' ' || value[i] == '\t'))
		i++;
	for (digits = 0; i < len && value[i] >= '0' && value[i] <= '9'; i++, digits++)
		if (v <= cap)
			v = v * 10 + (uint64_t)(value[i] - '0');
	while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == '\r' ||
	    value[i] == '\n'))
		i++;
	if (digits == 0 || i != len)
		return 0;
	return v > cap ? cap : (unsigned)v;
}

static int
set_https_only(CURL *c)
{
#if LIBCURL_VERSION_NUM >= 0x075500
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK)
		return -1;
#else
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS) != CURLE_OK)
		return -1;
#endif
	return 0;
}

/* Append the file at path to fd, then a newline; 0, or -1 with errno set. */
static int
append_file(int fd, const char *path)
{
	char	buf[8192];
	ssize_t	n;
	int	in, saved, rc = -1;

	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((n = read(in, buf, sizeof(buf))) > 0 || (n == -1 && errno == EINTR))
		if (n > 0 && write(fd, buf, (size_t)n) != n)
			goto done;
	rc = n == 0 && write(fd, "\n", 1) == 1 ? 0 : -1;
done:
	saved = errno;
	close(in);
	errno = saved;
	return rc;
}

/*
 * The CAs the API's certificate is checked against, as one PEM file that
 * GnuTLS parses once per connection: the system bundle, then api_ca_file
 * when set, joined in an anonymous file. Left to its default, Debian's
 * libcurl-gnutls loads all of /etc/ssl/certs, each certificate three times
 * over (its file, its hash link, the bundle): 8 MiB of peak RSS per outbox
 * worker in bench/run. Without a bundle, the directory as before.
 */
static int
set_ca(struct twilio_api *api, char *err, size_t errsz)
{
	const char	*extra = api->cfg->ca_file;
	CURL		*c = api->curl;
	int		 bad = 0;

	if (access(TWILIO_API_SYSTEM_CABUNDLE, R_OK) == -1) {
		if (extra != NULL && extra[0] != '\0')
			bad |= curl_easy_setopt(c, CURLOPT_CAINFO, extra) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_CAPATH, TWILIO_API_SYSTEM_CAPATH) != CURLE_OK;
		return bad ? -1 : 0;
	}
	if (extra == NULL || extra[0] == '\0') {
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, TWILIO_API_SYSTEM_CABUNDLE) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK;
		return bad ? -1 : 0;
	}
	if ((api->ca_fd = memfd_create("twhookd-ca", MFD_CLOEXEC)) == -1) {
		snprintf(err, errsz, "CA file: memfd_create: %s", strerror(errno));
		return -1;
	}
	if (append_file(api->ca_fd, TWILIO_API_SYSTEM_CABUNDLE) == -1 ||
	    append_file(api->ca_fd, extra) == -1) {
		snprintf(err, errsz, "CA file: reading %s or %s: %s",
		    TWILIO_API_SYSTEM_CABUNDLE, extra, strerror(errno));
		return -1;
	}
	/* Read again at each new connection, so it stays open with the handle. */
	snprintf(api->ca_path, sizeof(api->ca_path), "/proc/self/fd/%d", api->ca_fd);
	bad |= curl_easy_setopt(c, CURLOPT_CAINFO, api->ca_path) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK;
	return bad ? -1 : 0;
}

/* Options that hold for every call made with this handle. */
static int
setup_handle(struct twilio_api *api)
{
	const struct twilio_api_config	*cfg = api->cfg;
	CURL				*c = api->curl;
	int				 bad = 0;

	bad |= set_https_only(c);
	bad |= curl_easy_setopt(c, CURLOPT_URL, api->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, API_CONNECT_TIMEOUT) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT, API_TOTAL_TIMEOUT) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERNAME, cfg->username) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->password) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "twhookd/" TWHOOKD_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, api->headers) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, api) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, api) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, api->errbuf) != CURLE_OK;
	return bad ? -1 : 0;
}

/* {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json */
static char *
make_url(CURL *c, const struct twilio_api_config *cfg)
{
	struct buf	 url = BUF_INIT;
	size_t		 baselen = strlen(cfg->base_url);
	char		*sid;
	int		 bad;

	while (baselen > 0 && cfg->base_url[baselen - 1] == '/')
		baselen--;
	if ((sid = curl_easy_escape(c, cfg->account_sid, 0)) == NULL)
		return NULL;
	bad = buf_append(&url, cfg->base_url, baselen) == -1 ||
	    buf_printf(&url, "/2010-04-01/Accounts/%s/Messages.json", sid) == -1;
	curl_free(sid);
	if (bad) {
		buf_free(&url);
		return NULL;
	}
	return url.data;
}

int
twilio_api_new(const struct twilio_api_config *cfg, struct twilio_api **out,
    char *err, size_t errsz)
{
	struct twilio_api	*api;
	struct curl_slist	*h;

	*out = NULL;
	snprintf(err, errsz, "out of memory, or libcurl refused an option");
	if (cfg->base_url == NULL || cfg->account_sid == NULL || cfg->username == NULL ||
	    cfg->password == NULL) {
		snprintf(err, errsz, "incomplete configuration");
		return -1;
	}
	if ((api = calloc(1, sizeof(*api))) == NULL)
		return -1;
	api->cfg = cfg;
	api->ca_fd = -1;
	/* The reply to a 201 echoes the Body: one buffer, never realloc'd, wiped per call. */
	if (presize(&api->reply, REPLY_MAX + 1) == -1)
		goto fail;
	if ((api->curl = curl_easy_init()) == NULL)
		goto fail;
	/* An empty Expect: never wait for 100-continue. */
	if ((h = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		goto fail;
	api->headers = h;
	if ((h = curl_slist_append(api->headers, "Expect:")) == NULL)
		goto fail;
	api->headers = h;
	if ((api->url = make_url(api->curl, cfg)) == NULL || setup_handle(api) == -1 ||
	    set_ca(api, err, errsz) == -1)
		goto fail;
	*out = api;
	return 0;
fail:
	twilio_api_free(api);
	return -1;
}

void
twilio_api_free(struct twilio_api *api)
{
	if (api == NULL)
		return;
	if (api->curl != NULL)
		curl_easy_cleanup(api->curl);
	curl_slist_free_all(api->headers);
	free(api->url);
	if (api->ca_fd != -1)
		close(api->ca_fd);
	buf_free_secret(&api->reply);
	free(api);
}

/* Append "&name=value", value percent-encoded; the escaped copy is wiped too. */
static int
add_field(CURL *c, struct buf *body, const char *name, const char *value)
{
	char	*esc;
	int	 rc;

	if ((esc = curl_easy_escape(c, value, 0)) == NULL)
		return -1;
	rc = (body->len > 0 && buf_append(body, "&", 1) == -1) ||
	    buf_append_str(body, name) == -1 || buf_append(body, "=", 1) == -1 ||
	    buf_append_str(body, esc) == -1 ? -1 : 0;
	sodium_memzero(esc, strlen(esc));
	curl_free(esc);
	return rc;
}

/*
 * The form Twilio's Create Message endpoint takes. Sized before it is built
 * so the buffer holding the PIN is never realloc'd (which would leave copies).
 */
static int
make_body(struct twilio_api *api, const struct twilio_message *msg, struct buf *body)
{
	const struct twilio_api_config	*cfg = api->cfg;
	char				 validity[16];
	size_t				 need = 128;	/* names, '=', '&', NUL */

	/* Percent-encoding at most triples a value. */
	need += 3 * strlen(msg->to) + 3 * strlen(msg->body);
	if (cfg->messaging_service_sid != NULL && cfg->messaging_service_sid[0] != '\0')
		need += 3 * strlen(cfg->messaging_service_sid);
	else if (cfg->from_number != NULL)
		need += 3 * strlen(cfg->from_number);
	if (msg->status_callback != NULL)
		need += 3 * strlen(msg->status_callback);
	snprintf(validity, sizeof(validity), "%u", msg->validity_period);
	need += 3 * strlen(validity);
	if (presize(body, need) == -1)
		return -1;
	if (add_field(api->curl, body, "To", msg->to) == -1)
		return -1;
	/* Twilio: a Messaging Service picks the sender when one is configured. */
	if (cfg->messaging_service_sid != NULL && cfg->messaging_service_sid[0] != '\0') {
		if (add_field(api->curl, body, "MessagingServiceSid",
		    cfg->messaging_service_sid) == -1)
			return -1;
	} else if (cfg->from_number != NULL) {
		if (add_field(api->curl, body, "From", cfg->from_number) == -1)
			return -1;
	}
	if (add_field(api->curl, body, "Body", msg->body) == -1)
		return -1;
	if (msg->validity_period > 0 &&
	    add_field(api->curl, body, "ValidityPeriod", validity) == -1)
		return -1;
	if (msg->status_callback != NULL && msg->status_callback[0] != '\0' &&
	    add_field(api->curl, body, "StatusCallback", msg->status_callback) == -1)
		return -1;
	return 0;
}

/* Copy s into dst (size dstsz), truncated, control characters as spaces, trimmed. */
static void
copy_clean(char *dst, size_t dstsz, const char *s)
{
	size_t	i;

	for (i = 0; i + 1 < dstsz && s[i] != '\0'; i++)
		dst[i] = iscntrl((unsigned char)s[i]) ? ' ' : s[i];
	while (i > 0 && dst[i - 1] == ' ')
		i--;
	dst[i] = '\0';
}

/* 2xx: the MessageSid. Otherwise Twilio's {"code": N, "message": "..."}. */
static void
parse_reply(struct twilio_api *api, struct twilio_result *res)
{
	json_t		*root, *v;
	json_error_t	 jerr;

	if (api->reply.len == 0)
		return;
	if ((root = json_loadb(api->reply.data, api->reply.len, 0, &jerr)) == NULL)
		return;
	if (json_is_object(root)) {
		if (res->outcome == TWILIO_ACCEPTED) {
			v = json_object_get(root, "sid");
			if (json_is_string(v) && json_string_length(v) < sizeof(res->sid))
				copy_clean(res->sid, sizeof(res->sid), json_string_value(v));
		} else {
			v = json_object_get(root, "code");
			if (json_is_integer(v) && json_integer_value(v) >= 0 &&
			    json_integer_value(v) <= INT32_MAX)
				res->error_code = (int)json_integer_value(v);
			/* Twilio's message may quote the To number: the caller must not log it. */
			v = json_object_get(root, "message");
			if (json_is_string(v))
				copy_clean(res->detail, sizeof(res->detail), json_string_value(v));
		}
	}
	json_decref(root);
}

void
twilio_api_send(struct twilio_api *api, const struct twilio_message *msg,
    struct twilio_result *res)
{
	struct buf	 body = BUF_INIT;
	CURLcode	 cc;
	long		 status = 0;

	memset(res, 0, sizeof(*res));
	buf_reset(&api->reply);
	api->reply_truncated = false;
	api->retry_after = 0;
	api->errbuf[0] = '\0';

	if (make_body(api, msg, &body) == -1) {
		/* Nothing was sent: retrying later is safe. */
		res->outcome = TWILIO_RETRY;
		copy_clean(res->detail, sizeof(res->detail), "out of memory");
		goto done;
	}
	if (curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, body.data) != CURLE_OK ||
	    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE, (long)body.len) != CURLE_OK) {
		res->outcome = TWILIO_RETRY;
		copy_clean(res->detail, sizeof(res->detail), "curl refused the request body");
		goto done;
	}
	cc = curl_easy_perform(api->curl);
	/*
	 * A status line means Twilio answered, even when the transfer then
	 * failed (reply too long, timeout mid-body): classify by the status,
	 * so a 201 whose body was cut short is not sent twice.
	 */
	if (curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	res->http_status = status;
	res->retry_after = api->retry_after;
	res->outcome = twilio_api_classify(status != 0, status);
	parse_reply(api, res);
	if (cc != CURLE_OK && res->detail[0] == '\0')
		copy_clean(res->detail, sizeof(res->detail),
		    api->errbuf[0] != '\0' ? api->errbuf : curl_easy_strerror(cc));
done:
	/* Detach the body from the handle before it is wiped and freed. */
	(void)curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, NULL);
	(void)curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE, -1L);
	buf_free_secret(&body);
	/* Twilio's 201 echoes the Body: wipe our copy of the reply (only what was
	 * written: the rest of the preallocated buffer never held anything). */
	if (api->reply.data != NULL)
		sodium_memzero(api->reply.data, api->reply.len + 1 < api->reply.cap ?
		    api->reply.len + 1 : api->reply.cap);
	buf_reset(&api->reply);
}
