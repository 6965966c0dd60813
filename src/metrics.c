/*
 * Counters for Prometheus. Relaxed atomics: counts need no ordering, and a
 * scrape that races an increment is off by one for one scrape at most.
 */
#include "metrics.h"

static const struct {
	const char	*name;
	const char	*labels;
	const char	*help;
} desc[METRIC_COUNT] = {
	[METRIC_REQUESTS_2XX] = { "twhookd_requests_total", "{class=\"2xx\"}", "Public requests answered, by status class." },
	[METRIC_REQUESTS_4XX] = { "twhookd_requests_total", "{class=\"4xx\"}", NULL },
	[METRIC_REQUESTS_5XX] = { "twhookd_requests_total", "{class=\"5xx\"}", NULL },
	[METRIC_SIGNATURE_MISSING] = { "twhookd_signature_failures_total", "{reason=\"missing\"}", "Webhooks refused by signature checks." },
	[METRIC_SIGNATURE_INVALID] = { "twhookd_signature_failures_total", "{reason=\"invalid\"}", NULL },
	[METRIC_SIGNATURE_WRONG_ACCOUNT] = { "twhookd_signature_failures_total", "{reason=\"wrong_account\"}", NULL },
	[METRIC_HYGIENE_REFUSED] = { "twhookd_framing_refused_total", "", "Requests refused for ambiguous framing." },
	[METRIC_WEBHOOK_REPLAYED] = { "twhookd_webhook_replays_total", "", "Webhooks answered from their idempotency record." },
	[METRIC_WEBHOOK_IN_PROGRESS] = { "twhookd_webhook_in_progress_total", "", "Duplicates refused with 503 while the first ran." },
	[METRIC_RESET_ISSUED] = { "twhookd_reset_tokens_issued_total", "", "Reset tokens issued." },
	[METRIC_RESET_UNKNOWN_NUMBER] = { "twhookd_reset_unknown_number_total", "", "Reset requests from unregistered numbers." },
	[METRIC_REDEEM_OK] = { "twhookd_reset_tokens_redeemed_total", "{result=\"ok\"}", "Reset token redemptions." },
	[METRIC_REDEEM_REFUSED] = { "twhookd_reset_tokens_redeemed_total", "{result=\"refused\"}", NULL },
	[METRIC_STORE_ERRORS] = { "twhookd_store_errors_total", "", "Store operations that failed." },
};

void
metrics_inc(struct metrics *m, enum metric which)
{
	atomic_fetch_add_explicit(&m->counter[which], 1, memory_order_relaxed);
}

void
metrics_status(struct metrics *m, unsigned status)
{
	if (status >= 500)
		metrics_inc(m, METRIC_REQUESTS_5XX);
	else if (status >= 400)
		metrics_inc(m, METRIC_REQUESTS_4XX);
	else if (status >= 200)
		metrics_inc(m, METRIC_REQUESTS_2XX);
}

int
metrics_render(struct metrics *m, struct buf *out)
{
	for (int i = 0; i < METRIC_COUNT; i++) {
		uint64_t v = atomic_load_explicit(&m->counter[i], memory_order_relaxed);

		if (desc[i].help != NULL &&
		    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", desc[i].name,
		    desc[i].help, desc[i].name) == -1)
			return -1;
		if (buf_printf(out, "%s%s %llu\n", desc[i].name, desc[i].labels,
		    (unsigned long long)v) == -1)
			return -1;
	}
	return 0;
}
