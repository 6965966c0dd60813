/*
 * The open connections of one listener: admission against a total and a
 * per-address limit, and a deadline per connection that a reaper thread
 * enforces by shutting the socket down. Knows sockets, not HTTP: server.c
 * tells it when a connection opens, when a request is complete, when an
 * answer went out and when the connection closed.
 */
#ifndef TWHOOKD_CONN_TABLE_H
#define TWHOOKD_CONN_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct conn_table;
struct conn;

enum conn_admit {
	CONN_ADMIT_OK = 0,
	CONN_ADMIT_FULL,	/* max_total connections open */
	CONN_ADMIT_PER_IP,	/* max_per_ip open from this address */
};

struct metrics;

/*
 * max_per_ip 0 = no per-address limit (IPv6 addresses count by /64).
 * deadline_ms: how long a connection has to deliver one whole request, from
 * its accept or from its previous answer. Refusals and cuts are counted in
 * metrics (NULL: not counted). Starts the reaper thread. 0, or -1 after
 * logging why.
 */
__attribute__((warn_unused_result))
int	conn_table_new(const char *name, unsigned max_total, unsigned max_per_ip,
	    unsigned deadline_ms, struct metrics *metrics, struct conn_table **out);
/* Stop the reaper and free; every connection must have been removed. Accepts NULL. */
void	conn_table_free(struct conn_table *t);

/*
 * May a new connection from addr open? exempt: no per-address limit (a
 * trusted proxy). A refusal is counted and logged at most once a second.
 * Checked before the connection is added, so threads accepting at once may
 * overshoot a limit by one connection each.
 */
enum conn_admit conn_table_admit(struct conn_table *t, const struct sockaddr *addr,
	    bool exempt);
/*
 * A connection opened on socket fd (which stays the caller's: the table keeps
 * a duplicate to shut down). Its deadline starts now. NULL when out of
 * memory or descriptors: the connection then has no deadline but its idle
 * timeout.
 */
struct conn	*conn_table_add(struct conn_table *t, const struct sockaddr *addr, int fd);
/* The connection closed: forget it. Accepts NULL. */
void	conn_table_remove(struct conn_table *t, struct conn *c);
/* A whole request arrived: no deadline while it is answered. Accepts NULL. */
void	conn_request_complete(struct conn *c);
/* Its answer went out: the next request's deadline starts now. Accepts NULL. */
void	conn_answer_sent(struct conn_table *t, struct conn *c);
/* Did the reaper cut it at its deadline? false for NULL. */
bool	conn_was_cut(const struct conn *c);

#endif
