/*
 * Timed waits on CLOCK_MONOTONIC, so a wall-clock step never stretches or
 * cuts them: a condition variable that times out on that clock, and the
 * deadline ms from now for it and for pthread_mutex_clocklock.
 */
#ifndef TWHOOKD_CLOCK_H
#define TWHOOKD_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init, its timed waits on CLOCK_MONOTONIC. 0 or -1. */
__attribute__((warn_unused_result))
int		clock_cond_init(pthread_cond_t *cv);
/* CLOCK_MONOTONIC now plus ms (>= 0). */
struct timespec	clock_deadline(long ms);
/* CLOCK_MONOTONIC now, in milliseconds. */
int64_t		clock_now_ms(void);

#endif
