/*
 * Twilio Messages REST API client on libcurl (GnuTLS build). A struct
 * twilio_api is one multi handle driving a few easy handles ("slots") at
 * once, all reused so their TLS connections stay alive: a round of messages
 * goes out together and waits for its replies once, not one call after
 * another. HTTPS only, peer and host always verified, no redirects, every
 * call bounded by API_TOTAL_TIMEOUT. Logs nothing: the caller decides what a
 * reply means for the message. The POST body carries the PIN, so it is
 * wiped after use.
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
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "clock.h"
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

/* One call in flight: an easy handle and what it gathers. */
struct slot {
	const struct twilio_api		*api;
	CURL				*curl;
	char				 errbuf[CURL_ERROR_SIZE];
	struct buf			 body;		/* the POST form, wiped after the call */
	/* Per call: */
	struct buf			 reply;
	bool				 reply_truncated;
	unsigned			 retry_after;
	bool				 added;		/* to the multi handle */
	CURLcode			 cc;		/* how the transfer ended */
};

struct twilio_api {
	const struct twilio_api_config	*cfg;
	CURLM				*multi;
	struct curl_slist		*headers;
	char				*url;
	const char			*cainfo;	/* the CA file every slot uses, or NULL */
	const char			*capath;	/* the CA directory, or NULL */
	int				 ca_fd;		/* the combined CA file, or -1 */
	char				 ca_path[32];
	size_t				 nslots;
	struct slot			 slots[];
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
	struct slot	*sl = arg;
	size_t		 n = size * nmemb;

	if (n > REPLY_MAX - sl->reply.len) {
		sl->reply_truncated = true;
		return 0;
	}
	if (buf_append(&sl->reply, data, n) == -1)
		return 0;
	return n;
}

/* Remember Retry-After (RFC 9110 section 10.2.3); a new status line starts over. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	static const char	 name[] = "retry-after:";
	struct slot		*sl = arg;
	size_t			 n = size * nmemb;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		sl->retry_after = 0;
	else if (n >= sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
		sl->retry_after = twilio_api_retry_after(data + sizeof(name) - 1,
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
 * The CAs the API's certificate is checked against, chosen once for all the
 * slots: the system bundle, as one PEM file that GnuTLS parses once per
 * connection, with api_ca_file appended in an anonymous file when set. Left
 * to its default, Debian's libcurl-gnutls loads all of /etc/ssl/certs, each
 * certificate three times over (its file, its hash link, the bundle): 8 MiB
 * of peak RSS per connection in bench/run. Without a bundle, the directory
 * (and api_ca_file) as before.
 */
static int
resolve_ca(struct twilio_api *api, char *err, size_t errsz)
{
	const char	*extra = api->cfg->ca_file;
	bool		 has_extra = extra != NULL && extra[0] != '\0';

	if (access(TWILIO_API_SYSTEM_CABUNDLE, R_OK) == -1) {
		api->cainfo = has_extra ? extra : NULL;
		api->capath = TWILIO_API_SYSTEM_CAPATH;
		return 0;
	}
	api->capath = NULL;
	if (!has_extra) {
		api->cainfo = TWILIO_API_SYSTEM_CABUNDLE;
		return 0;
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
	api->cainfo = api->ca_path;
	return 0;
}

/* Options that hold for every call made with this slot. */
static int
setup_handle(const struct twilio_api *api, struct slot *sl)
{
	const struct twilio_api_config	*cfg = api->cfg;
	CURL				*c = sl->curl;
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
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, sl) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, sl) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, sl->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PRIVATE, sl) != CURLE_OK;
	if (api->cainfo != NULL)
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, api->cainfo) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CAPATH, api->capath) != CURLE_OK;
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
twilio_api_new(const struct twilio_api_config *cfg, size_t slots,
    struct twilio_api **out, char *err, size_t errsz)
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
	if (slots == 0 || slots > TWILIO_API_MAX_SLOTS) {
		snprintf(err, errsz, "%zu calls at once: want 1 to %u", slots,
		    TWILIO_API_MAX_SLOTS);
		return -1;
	}
	if ((api = calloc(1, sizeof(*api) + slots * sizeof(api->slots[0]))) == NULL)
		return -1;
	api->cfg = cfg;
	api->ca_fd = -1;
	api->nslots = slots;
	if ((api->multi = curl_multi_init()) == NULL)
		goto fail;
	/* Keep every slot's connection alive between rounds. */
	if (curl_multi_setopt(api->multi, CURLMOPT_MAXCONNECTS, (long)slots) != CURLM_OK)
		goto fail;
	/* An empty Expect: never wait for 100-continue. */
	if ((h = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		goto fail;
	api->headers = h;
	if ((h = curl_slist_append(api->headers, "Expect:")) == NULL)
		goto fail;
	api->headers = h;
	if (resolve_ca(api, err, errsz) == -1)
		goto fail;
	for (size_t i = 0; i < slots; i++) {
		struct slot *sl = &api->slots[i];

		sl->api = api;
		/* The reply to a 201 echoes the Body: one buffer, never realloc'd, wiped per call. */
		if (presize(&sl->reply, REPLY_MAX + 1) == -1 ||
		    (sl->curl = curl_easy_init()) == NULL)
			goto fail;
		if (api->url == NULL && (api->url = make_url(sl->curl, cfg)) == NULL)
			goto fail;
		if (setup_handle(api, sl) == -1)
			goto fail;
	}
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
	for (size_t i = 0; i < api->nslots; i++) {
		struct slot *sl = &api->slots[i];

		if (sl->curl != NULL) {
			if (sl->added)
				(void)curl_multi_remove_handle(api->multi, sl->curl);
			curl_easy_cleanup(sl->curl);
		}
		buf_free_secret(&sl->reply);
		buf_free_secret(&sl->body);
	}
	if (api->multi != NULL)
		curl_multi_cleanup(api->multi);
	curl_slist_free_all(api->headers);
	free(api->url);
	if (api->ca_fd != -1)
		close(api->ca_fd);
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
make_body(struct slot *sl, const struct twilio_message *msg, struct buf *body)
{
	const struct twilio_api_config	*cfg = sl->api->cfg;
	CURL				*c = sl->curl;
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
	if (add_field(c, body, "To", msg->to) == -1)
		return -1;
	/* Twilio: a Messaging Service picks the sender when one is configured. */
	if (cfg->messaging_service_sid != NULL && cfg->messaging_service_sid[0] != '\0') {
		if (add_field(c, body, "MessagingServiceSid",
		    cfg->messaging_service_sid) == -1)
			return -1;
	} else if (cfg->from_number != NULL) {
		if (add_field(c, body, "From", cfg->from_number) == -1)
			return -1;
	}
	if (add_field(c, body, "Body", msg->body) == -1)
		return -1;
	if (msg->validity_period > 0 &&
	    add_field(c, body, "ValidityPeriod", validity) == -1)
		return -1;
	if (msg->status_callback != NULL && msg->status_callback[0] != '\0' &&
	    add_field(c, body, "StatusCallback", msg->status_callback) == -1)
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
parse_reply(const struct slot *sl, struct twilio_result *res)
{
	json_t		*root, *v;
	json_error_t	 jerr;

	if (sl->reply.len == 0)
		return;
	if ((root = json_loadb(sl->reply.data, sl->reply.len, 0, &jerr)) == NULL)
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

/* Ready sl for msg and add it to the round; false (res filled) when it cannot go. */
static bool
slot_start(struct twilio_api *api, struct slot *sl, const struct twilio_message *msg,
    struct twilio_result *res)
{
	buf_reset(&sl->reply);
	sl->reply_truncated = false;
	sl->retry_after = 0;
	sl->errbuf[0] = '\0';
	sl->cc = CURLE_FAILED_INIT;	/* until curl says how it ended */
	/* Nothing is sent when any of this fails: retrying later is safe. */
	if (make_body(sl, msg, &sl->body) == -1) {
		copy_clean(res->detail, sizeof(res->detail), "out of memory");
		return false;
	}
	if (curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDS, sl->body.data) != CURLE_OK ||
	    curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDSIZE, (long)sl->body.len) != CURLE_OK ||
	    curl_multi_add_handle(api->multi, sl->curl) != CURLM_OK) {
		copy_clean(res->detail, sizeof(res->detail), "curl refused the request");
		return false;
	}
	sl->added = true;
	return true;
}

/* The call is over: judge it into res, then wipe what it held. */
static void
slot_finish(struct twilio_api *api, struct slot *sl, struct twilio_result *res)
{
	long	status = 0;

	if (sl->added) {
		/*
		 * A status line means Twilio answered, even when the transfer
		 * then failed (reply too long, timeout mid-body): classify by
		 * the status, so a 201 whose body was cut short is not sent twice.
		 */
		if (curl_easy_getinfo(sl->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
			status = 0;
		res->http_status = status;
		res->retry_after = sl->retry_after;
		res->outcome = twilio_api_classify(status != 0, status);
		parse_reply(sl, res);
		if (sl->cc != CURLE_OK && res->detail[0] == '\0')
			copy_clean(res->detail, sizeof(res->detail),
			    sl->errbuf[0] != '\0' ? sl->errbuf : curl_easy_strerror(sl->cc));
		(void)curl_multi_remove_handle(api->multi, sl->curl);
		sl->added = false;
	}
	/* Detach the body from the handle before it is wiped and freed. */
	(void)curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDS, NULL);
	(void)curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDSIZE, -1L);
	buf_free_secret(&sl->body);
	/* Twilio's 201 echoes the Body: wipe our copy of the reply (only what was
	 * written: the rest of the preallocated buffer never held anything). */
	if (sl->reply.data != NULL)
		sodium_memzero(sl->reply.data, sl->reply.len + 1 < sl->reply.cap ?
		    sl->reply.len + 1 : sl->reply.cap);
	buf_reset(&sl->reply);
}

/* Finish sl (the i-th call of the round) into res and hand it to done. */
static void
slot_done(struct twilio_api *api, struct slot *sl, struct twilio_result *res,
    twilio_done_fn done, void *arg)
{
	slot_finish(api, sl, res);
	done(arg, (size_t)(sl - api->slots), res);
}

/* Hand each transfer that ended to done; how many did. */
static size_t
collect_done(struct twilio_api *api, struct twilio_result *res, twilio_done_fn done,
    void *arg)
{
	CURLMsg		*m;
	struct slot	*sl;
	char		*priv;
	size_t		 ended = 0;
	int		 left;

	while ((m = curl_multi_info_read(api->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE || curl_easy_getinfo(m->easy_handle,
		    CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
			continue;
		sl = (struct slot *)(void *)priv;
		if (!sl->added)
			continue;
		sl->cc = m->data.result;
		slot_done(api, sl, &res[sl - api->slots], done, arg);
		ended++;
	}
	return ended;
}

void
twilio_api_send(struct twilio_api *api, const struct twilio_message *msgs, size_t n,
    twilio_done_fn done, void *arg)
{
	struct twilio_result	res[TWILIO_API_MAX_SLOTS], extra;
	int64_t			until = clock_now_ms() + API_CALL_DEADLINE * 1000, wait;
	int			running = 0;
	CURLMcode		mc = CURLM_OK;
	size_t			i, active = 0;
	const char		*why = NULL;

	for (i = 0; i < n; i++) {
		struct twilio_result *r = i < api->nslots ? &res[i] : &extra;

		memset(r, 0, sizeof(*r));
		r->outcome = TWILIO_RETRY;
		/* Past the slots, or refused before anything was sent: retry later. */
		if (i >= api->nslots) {
			copy_clean(r->detail, sizeof(r->detail), "not sent: no free slot");
			done(arg, i, r);
		} else if (slot_start(api, &api->slots[i], &msgs[i], r))
			active++;
		else
			slot_done(api, &api->slots[i], r, done, arg);
	}
	/* Each call ends within API_TOTAL_TIMEOUT (CURLOPT_TIMEOUT); the deadline bounds the loop. */
	while (active > 0) {
		if ((mc = curl_multi_perform(api->multi, &running)) != CURLM_OK) {
			why = curl_multi_strerror(mc);
			break;
		}
		active -= collect_done(api, res, done, arg);
		if (active == 0)
			break;
		if ((wait = until - clock_now_ms()) <= 0) {
			why = "no reply within the call deadline";
			break;
		}
		if ((mc = curl_multi_poll(api->multi, NULL, 0, wait < 1000 ? (int)wait : 1000,
		    NULL)) != CURLM_OK) {
			why = curl_multi_strerror(mc);
			break;
		}
	}
	/*
	 * Cut short: a call that has not ended is judged by the status it got,
	 * if any (a 201 whose body was still coming is sent); none is a retry.
	 */
	for (i = 0; i < n && i < api->nslots; i++) {
		struct slot *sl = &api->slots[i];

		if (!sl->added)
			continue;
		sl->cc = CURLE_OPERATION_TIMEDOUT;
		copy_clean(res[i].detail, sizeof(res[i].detail), why != NULL ? why : "cut short");
		slot_done(api, sl, &res[i], done, arg);
	}
}
