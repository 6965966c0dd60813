/*
 * The URLs Twilio may have signed (DESIGN: "Twilio's signature, precisely",
 * 1): each configured public_url followed by the raw request-target, never
 * decoded or normalised. The Host header only orders them, putting the bases
 * whose authority it names first; it never builds one, so a client cannot
 * choose the URL we check. Also: whether a peer is a trusted proxy. Pure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "defaults.h"
#include "public_url.h"

const char *
public_url_result_str(enum public_url_result r)
{
	switch (r) {
	case PUBLIC_URL_OK:		return "ok";
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

/*
 * Does the Host header name base's authority? Compared case-insensitively
 * (RFC 9110, 4.2.3: scheme and host are case-insensitive), and with or
 * without the scheme's default port, as RFC 9110, 4.2.1 makes them equal.
 */
static bool
host_names(const char *base, const char *host, size_t host_len)
{
	bool		 https = strncmp(base, "https://", 8) == 0;
	const char	*a = base + (https ? 8 : 7), *port = https ? ":443" : ":80";
	size_t		 alen = strcspn(a, "/"), plen = strlen(port);

	if (host_len == alen && strncasecmp(host, a, alen) == 0)
		return true;
	/* The base names the default port and the Host leaves it out... */
	if (alen > plen && host_len == alen - plen && memcmp(a + host_len, port, plen) == 0 &&
	    strncasecmp(host, a, host_len) == 0)
		return true;
	/* ...or the other way round (an IPv6 literal's last ':' is inside []). */
	return host_len == alen + plen && memcmp(host + alen, port, plen) == 0 &&
	    strncasecmp(host, a, alen) == 0;
}

static enum public_url_result
append(struct buf *out, const char *base, const struct public_url_input *in)
{
	if (strlen(base) + in->target_len > MAX_URL_LEN)
		return PUBLIC_URL_TOO_LONG;
	if (buf_append_str(out, base) == -1 ||
	    buf_append(out, in->target, in->target_len) == -1)
		return PUBLIC_URL_NOMEM;
	return PUBLIC_URL_OK;
}

enum public_url_result
public_url_candidates(const struct public_url_input *in,
    struct buf out[MAX_PUBLIC_URLS], size_t *count)
{
	bool			 first[MAX_PUBLIC_URLS];
	size_t			 n = 0, k;
	enum public_url_result	 r = PUBLIC_URL_OK;

	*count = 0;
	if (in->base_count > MAX_PUBLIC_URLS)
		return PUBLIC_URL_TOO_LONG;
	for (k = 0; k < in->base_count; k++)
		first[k] = in->host != NULL && host_names(in->bases[k], in->host, in->host_len);
	/* A stable partition: the bases the Host names, then the others. */
	for (int pass = 1; pass >= 0 && r == PUBLIC_URL_OK; pass--)
		for (k = 0; k < in->base_count && r == PUBLIC_URL_OK; k++)
			if (first[k] == (pass == 1))
				r = append(&out[n++], in->bases[k], in);
	if (r != PUBLIC_URL_OK) {
		for (k = 0; k < n; k++)
			buf_free(&out[k]);
		return r;
	}
	*count = n;
	return PUBLIC_URL_OK;
}
