/*
 * Prometheus counters: a fixed set of lock-free atomics, rendered in the
 * text exposition format (version 0.0.4) by the admin API.
 */
#ifndef TWHOOKD_METRICS_H
#define TWHOOKD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

enum metric {
	METRIC_REQUESTS_2XX = 0,
	METRIC_REQUESTS_4XX,
	METRIC_REQUESTS_5XX,
	METRIC_SIGNATURE_MISSING,
	METRIC_SIGNATURE_INVALID,
	METRIC_SIGNATURE_WRONG_ACCOUNT,
	METRIC_HYGIENE_REFUSED,
	METRIC_WEBHOOK_RETRY_ANSWERED,
	METRIC_WEBHOOK_REPLAY_REFUSED,
	METRIC_WEBHOOK_IN_PROGRESS,
	METRIC_RESET_ISSUED,
	METRIC_RESET_UNKNOWN_NUMBER,
	METRIC_REDEEM_OK,
	METRIC_REDEEM_REFUSED,
	METRIC_STORE_ERRORS,
	METRIC_PIN_ISSUED,
	METRIC_PIN_UNKNOWN_NUMBER,
	METRIC_PIN_VERIFY_OK,
	METRIC_PIN_VERIFY_WRONG,
	METRIC_PIN_VERIFY_LOCKED,
	METRIC_PIN_VERIFY_NONE,
	METRIC_LIMITED_PER_NUMBER,
	METRIC_LIMITED_BUDGET,
	METRIC_SMS_SENT,
	METRIC_SMS_RETRIED,
	METRIC_SMS_FAILED,
	METRIC_SMS_EXPIRED,
	METRIC_STATUS_CALLBACKS,
	METRIC_CONN_REFUSED_FULL,
	METRIC_CONN_REFUSED_PER_IP,
	METRIC_CONN_DEADLINE,
	METRIC_COUNT
};

struct metrics {
	_Atomic uint64_t	 counter[METRIC_COUNT];
};

void	metrics_inc(struct metrics *m, enum metric which);
/* Count a finished request by status class. */
void	metrics_status(struct metrics *m, unsigned status);
/* Append the exposition text. 0 or -1 (no memory). */
__attribute__((warn_unused_result))
int	metrics_render(struct metrics *m, struct buf *out);

#endif
