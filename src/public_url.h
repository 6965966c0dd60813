/*
 * The URLs Twilio may have signed: each configured [twilio] public_url
 * followed by the raw request-target exactly as it arrived. The Host header
 * may put the bases it names first; it never builds a URL, and a Host that
 * names none leaves every base to be tried (a load balancer may rewrite it).
 * Also the trusted-proxy test for peer addresses, and the client address
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
#include "defaults.h"

enum public_url_result {
	PUBLIC_URL_OK = 0,
	PUBLIC_URL_TOO_LONG,	/* a base and the target over MAX_URL_LEN */
	PUBLIC_URL_NOMEM,
};

struct public_url_input {
	char *const		*bases;		/* config's public_url, validated */
	size_t			 base_count;	/* 1..MAX_PUBLIC_URLS */
	const char		*host;		/* Host header (not NUL-terminated), or NULL */
	size_t			 host_len;
	const char		*target;	/* raw request-target */
	size_t			 target_len;
};

/*
 * Fill out[0..*count) (zeroed buffers) with base + target for every base:
 * first those whose authority the Host names (case-insensitively, with or
 * without the scheme's default port), then the rest, each group in config
 * order. On failure nothing is left allocated and *count is 0.
 */
__attribute__((warn_unused_result))
enum public_url_result	public_url_candidates(const struct public_url_input *in,
			    struct buf out[MAX_PUBLIC_URLS], size_t *count);
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
