/*
 * The URL Twilio signed: the configured public_url, or scheme and host from
 * the request (X-Forwarded-Proto/-Host only from a trusted proxy), followed
 * by the raw request-target exactly as it arrived; and the client address
 * logs show (X-Forwarded-For only from a trusted proxy). Pure.
 */
#ifndef TWHOOKD_PUBLIC_URL_H
#define TWHOOKD_PUBLIC_URL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"

enum public_url_result {
	PUBLIC_URL_OK = 0,
	PUBLIC_URL_NO_HOST,	/* no public_url and no usable Host header */
	PUBLIC_URL_BAD_HEADER,	/* Host or X-Forwarded-* with characters no host has */
	PUBLIC_URL_TOO_LONG,
	PUBLIC_URL_NOMEM,
};

struct public_url_input {
	const char		*public_url;	/* from config, or NULL */
	bool			 tls;		/* the listener's own scheme */
	const struct sockaddr	*peer;
	const struct config_cidr *trusted;
	size_t			 trusted_count;
	const char		*host;		/* Host header, or NULL */
	const char		*forwarded_proto;
	const char		*forwarded_host;
	const char		*target;	/* raw request-target */
	size_t			 target_len;
};

__attribute__((warn_unused_result))
enum public_url_result	public_url_build(const struct public_url_input *in,
			    struct buf *out);
/* True when addr falls in one of the CIDRs. */
bool	public_url_trusted(const struct sockaddr *addr, const struct config_cidr *cidrs,
	    size_t count);
const char *public_url_result_str(enum public_url_result r);

/* Room for any address public_url_client writes, NUL included. */
#define PUBLIC_URL_CLIENT_MAX	INET6_ADDRSTRLEN
/*
 * The client's address for logs, numeric, into out: the TCP peer; or, when
 * the peer is in trusted, the right-most element of forwarded_for
 * (X-Forwarded-For, may be NULL) that is not itself in trusted, walking
 * left past trusted proxies (all of them trusted: the left-most). Each
 * element walked must be an IPv4 or IPv6 literal (inet_pton), with optional
 * blanks around it; at the first that is not (a port, a name, garbage, an
 * empty element), the peer. The address is printed anew, never copied from
 * the header; an IPv4-mapped IPv6 address prints as IPv4. "-" when peer is
 * NULL or neither IPv4 nor IPv6.
 */
void	public_url_client(const struct sockaddr *peer, const char *forwarded_for,
	    const struct config_cidr *trusted, size_t count,
	    char out[PUBLIC_URL_CLIENT_MAX]);

#endif
