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
	[METRIC_WEBHOOK_RETRY_ANSWERED] = { "twhookd_webhook_replays_total", "{result=\"answered\"}", "Repeats of a finished webhook: answered again within replay_window, refused the first answer after it." },
	[METRIC_WEBHOOK_REPLAY_REFUSED] = { "twhookd_webhook_replays_total", "{result=\"refused\"}", NULL },
	[METRIC_WEBHOOK_IN_PROGRESS] = { "twhookd_webhook_in_progress_total", "", "Duplicates refused with 503 while another process held them." },
	[METRIC_RESET_ISSUED] = { "twhookd_reset_tokens_issued_total", "", "Reset tokens issued." },
	[METRIC_RESET_UNKNOWN_NUMBER] = { "twhookd_reset_unknown_number_total", "", "Reset requests from unregistered numbers." },
	[METRIC_REDEEM_OK] = { "twhookd_reset_tokens_redeemed_total", "{result=\"ok\"}", "Reset token redemptions." },
	[METRIC_REDEEM_REFUSED] = { "twhookd_reset_tokens_redeemed_total", "{result=\"refused\"}", NULL },
	[METRIC_STORE_ERRORS] = { "twhookd_store_errors_total", "", "Store operations that failed." },
	[METRIC_PIN_ISSUED] = { "twhookd_pins_issued_total", "", "PINs issued and queued for SMS." },
	[METRIC_PIN_UNKNOWN_NUMBER] = { "twhookd_pin_unknown_number_total", "", "PIN requests from unregistered numbers." },
	[METRIC_PIN_VERIFY_OK] = { "twhookd_pin_verifications_total", "{result=\"ok\"}", "PIN verifications by result." },
	[METRIC_PIN_VERIFY_WRONG] = { "twhookd_pin_verifications_total", "{result=\"wrong\"}", NULL },
	[METRIC_PIN_VERIFY_LOCKED] = { "twhookd_pin_verifications_total", "{result=\"locked\"}", NULL },
	[METRIC_PIN_VERIFY_NONE] = { "twhookd_pin_verifications_total", "{result=\"none\"}", NULL },
	[METRIC_LIMITED_PER_NUMBER] = { "twhookd_rate_limited_total", "{limit=\"per_number\"}", "Webhooks refused a side effect by a rate limit." },
	[METRIC_LIMITED_BUDGET] = { "twhookd_rate_limited_total", "{limit=\"outbound_budget\"}", NULL },
	[METRIC_SMS_SENT] = { "twhookd_sms_total", "{result=\"sent\"}", "Outbox deliveries by result." },
	[METRIC_SMS_RETRIED] = { "twhookd_sms_total", "{result=\"retried\"}", NULL },
	[METRIC_SMS_FAILED] = { "twhookd_sms_total", "{result=\"failed\"}", NULL },
	[METRIC_SMS_EXPIRED] = { "twhookd_sms_total", "{result=\"expired\"}", NULL },
	[METRIC_STATUS_CALLBACKS] = { "twhookd_status_callbacks_total", "", "Delivery status callbacks recorded." },
	[METRIC_CONN_REFUSED_FULL] = { "twhookd_connections_refused_total", "{limit=\"max_connections\"}", "Public connections closed at accept by a connection limit." },
	[METRIC_CONN_REFUSED_PER_IP] = { "twhookd_connections_refused_total", "{limit=\"per_ip\"}", NULL },
	[METRIC_CONN_DEADLINE] = { "twhookd_connections_timed_out_total", "", "Public connections closed for not delivering a whole request within request_timeout." },
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
