/*
 * The private admin API (loopback by default): bearer-token auth compared in
 * constant time, JSON in and out (jansson). Redeems reset tokens and serves
 * metrics.
 */
#ifndef TWHOOKD_ADMIN_H
#define TWHOOKD_ADMIN_H

#include "app.h"
#include "request.h"

/* server_hooks for the admin listener; arg is the struct app. */
void	admin_begin(void *arg, struct request *req, struct reply *reply);
void	admin_finish(void *arg, struct request *req, struct reply *reply);

#endif
