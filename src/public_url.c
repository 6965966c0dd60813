/*
 * Rebuild the URL Twilio signed (DESIGN: "Twilio's signature, precisely", 1):
 * a base (public_url, or scheme://host from the request) followed by the raw
 * request-target, never decoded or normalised. Forwarded headers count only
 * from a trusted proxy; otherwise a client could choose the URL we check.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "defaults.h"
#include "public_url.h"

const char *
public_url_result_str(enum public_url_result r)
{
	switch (r) {
	case PUBLIC_URL_OK:		return "ok";
	case PUBLIC_URL_NO_HOST:	return "no_host";
	case PUBLIC_URL_BAD_HEADER:	return "bad_host_header";
	case PUBLIC_URL_TOO_LONG:	return "url_too_long";
	case PUBLIC_URL_NOMEM:		return "nomem";
	}
	return "unknown";
}

static bool
prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

bool
public_url_trusted(const struct sockaddr *addr, const struct config_cidr *cidrs,
    size_t count)
{
	static const uint8_t v4mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
	uint8_t		 v4[4];
	const uint8_t	*v6 = NULL;
	bool		 is_v4 = false;

	if (addr == NULL)
		return false;
	if (addr->sa_family == AF_INET) {
		memcpy(v4, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
		is_v4 = true;
	} else if (addr->sa_family == AF_INET6) {
		v6 = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
		/* An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d. */
		if (memcmp(v6, v4mapped, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			is_v4 = true;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		const struct config_cidr *c = &cidrs[i];

		if (c->family == AF_INET && is_v4 && prefix_match(v4, c->addr, c->prefix))
			return true;
		if (c->family == AF_INET6 && v6 != NULL && prefix_match(v6, c->addr, c->prefix))
			return true;
	}
	return false;
}

/* One X-Forwarded-For element, blanks around it allowed, as an address. */
static bool
forwarded_addr(const char *s, size_t len, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)ss;
	char			 lit[INET6_ADDRSTRLEN];

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(lit))
		return false;
	memcpy(lit, s, len);
	lit[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, lit, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, lit, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

static void
addr_print(const struct sockaddr *sa, char out[PUBLIC_URL_CLIENT_MAX])
{
	static const uint8_t	 v4mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
	const uint8_t		*v6;

	out[0] = '-';
	out[1] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    out, PUBLIC_URL_CLIENT_MAX);
	} else if (sa->sa_family == AF_INET6) {
		v6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (memcmp(v6, v4mapped, sizeof(v4mapped)) == 0)
			inet_ntop(AF_INET, v6 + 12, out, PUBLIC_URL_CLIENT_MAX);
		else
			inet_ntop(AF_INET6, v6, out, PUBLIC_URL_CLIENT_MAX);
	}
}

/*
 * Each proxy appends the address it got the request from, so the right end
 * of the list is what our own proxies saw and the left end what the client
 * claims: believe elements only while the one to their right is trusted.
 */
void
public_url_client(const struct sockaddr *peer, const char *forwarded_for,
    const struct config_cidr *trusted, size_t count, char out[PUBLIC_URL_CLIENT_MAX])
{
	const struct sockaddr	*client = peer;
	struct sockaddr_storage	 hop;
	size_t			 start, end;

	if (forwarded_for != NULL && public_url_trusted(peer, trusted, count)) {
		end = strlen(forwarded_for);
		for (;;) {
			for (start = end; start > 0 && forwarded_for[start - 1] != ','; start--)
				;
			if (!forwarded_addr(forwarded_for + start, end - start, &hop)) {
				client = peer;
				break;
			}
			client = (const struct sockaddr *)&hop;
			if (start == 0 || !public_url_trusted(client, trusted, count))
				break;
			end = start - 1;
		}
	}
	addr_print(client, out);
}

/* Host[:port] as RFC 3986 reg-name / IPv4 / [IPv6]: no '/', '@', spaces or controls. */
static bool
valid_host(const char *h, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
		    c == '[' || c == ']' || c == '_'))
			return false;
	}
	return true;
}

/* The last element of a comma-separated forwarded list: the one our proxy added. */
static const char *
last_element(const char *v, size_t *len)
{
	const char *comma = strrchr(v, ',');

	if (comma != NULL)
		v = comma + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*len = strcspn(v, " \t");
	return v;
}

enum public_url_result
public_url_build(const struct public_url_input *in, struct buf *out)
{
	const char	*scheme = in->tls ? "https" : "http", *host = in->host;
	size_t		 host_len = host != NULL ? strlen(host) : 0;

	if (in->public_url != NULL && in->public_url[0] != '\0') {
		if (strlen(in->public_url) + in->target_len > MAX_URL_LEN)
			return PUBLIC_URL_TOO_LONG;
		if (buf_append_str(out, in->public_url) == -1 ||
		    buf_append(out, in->target, in->target_len) == -1)
			return PUBLIC_URL_NOMEM;
		return PUBLIC_URL_OK;
	}
	if (public_url_trusted(in->peer, in->trusted, in->trusted_count)) {
		size_t len;

		if (in->forwarded_proto != NULL) {
			const char *p = last_element(in->forwarded_proto, &len);
			if (len == 5 && strncmp(p, "https", 5) == 0)
				scheme = "https";
			else if (len == 4 && strncmp(p, "http", 4) == 0)
				scheme = "http";
			else
				return PUBLIC_URL_BAD_HEADER;
		}
		if (in->forwarded_host != NULL)
			host = last_element(in->forwarded_host, &host_len);
	}
	if (host == NULL)
		return PUBLIC_URL_NO_HOST;
	if (!valid_host(host, host_len))
		return PUBLIC_URL_BAD_HEADER;
	if (host_len + in->target_len + 8 > MAX_URL_LEN)
		return PUBLIC_URL_TOO_LONG;
	if (buf_append_str(out, scheme) == -1 || buf_append_str(out, "://") == -1 ||
	    buf_append(out, host, host_len) == -1 ||
	    buf_append(out, in->target, in->target_len) == -1)
		return PUBLIC_URL_NOMEM;
	return PUBLIC_URL_OK;
}
