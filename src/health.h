/*
 * Store readiness: a thread that asks the store once a second whether it
 * can commit (store_probe) and publishes the answer in one flag, which
 * /readyz and the webhook routes read without touching the store. The flag
 * turns back to ready by itself when a probe succeeds again.
 */
#ifndef TWHOOKD_HEALTH_H
#define TWHOOKD_HEALTH_H

#include <stdatomic.h>

struct health;
struct store;

/*
 * Start the thread and wait for its first probe, so the flag is right
 * before the daemon reports ready. 0, or -1 after logging why.
 */
__attribute__((warn_unused_result))
int	health_start(struct store *store, atomic_bool *ready, struct health **out);
/* Stop the thread and free; accepts NULL. */
void	health_stop(struct health *h);

#endif
