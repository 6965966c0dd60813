/*
 * The outbox workers: each thread leases due SMS from the store and sends
 * them through its own twilio_api handle, away from the webhook threads.
 * Retryable failures come back with capped, jittered backoff until the PIN
 * expires; permanent ones are recorded. Never logs a message body or an
 * unmasked number.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "clock.h"
#include "defaults.h"
#include "log.h"
#include "outbox.h"
#include "phone.h"

/* Seconds a lease must still have after a call's timeout: the store write, clock steps. */
#define SEND_MARGIN		5
#define STORE_PAUSE_MS		1000	/* after a store error */
#define SENT_TRIES		3	/* recording "sent" is what prevents a second SMS */

_Static_assert(OUTBOX_LEASE >= API_CALL_DEADLINE + SEND_MARGIN + 2,
    "a lease must cover at least one whole round of API calls");
_Static_assert(OUTBOX_CALLS >= 1 && OUTBOX_CALLS <= TWILIO_API_MAX_SLOTS, "calls at once");
/* Twilio's ValidityPeriod accepts 1..14400 seconds (36000 on newer accounts). */
_Static_assert(OUTBOX_BATCH_MIN >= 1 && OUTBOX_BATCH_MIN <= OUTBOX_BATCH, "lease sizes");
_Static_assert(MAX_PIN_TTL <= 14400, "ValidityPeriod would exceed Twilio's range");

struct outbox;

struct worker {
	struct outbox		*ob;
	struct twilio_api	*api;
	pthread_t		 thread;
	bool			 started;
};

struct outbox {
	struct outbox_config	 cfg;		/* copied; the strings it points to outlive us */
	struct store		*store;
	struct metrics		*metrics;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* CLOCK_MONOTONIC */
	unsigned long		 wakeups;	/* bumped by outbox_notify, under mu */
	bool			 stop;		/* under mu */
	unsigned		 nworkers;
	struct worker		*workers;
};

uint64_t
outbox_backoff_ms(unsigned attempt, unsigned retry_after, uint32_t rnd)
{
	uint64_t	d = OUTBOX_BACKOFF_CAP_MS, half, wait, floor_ms;

	if (attempt < 1)
		attempt = 1;
	/* min(cap, base * 2^(attempt-1)), without overflowing the shift. */
	if (attempt - 1 < 32 &&
	    ((uint64_t)OUTBOX_BACKOFF_BASE_MS << (attempt - 1)) < d)
		d = (uint64_t)OUTBOX_BACKOFF_BASE_MS << (attempt - 1);
	/* "Equal jitter": half fixed, half uniform-ish from rnd. */
	half = d / 2;
	wait = half + (uint64_t)rnd % (half + 1);
	floor_ms = (uint64_t)retry_after * 1000u;
	return wait > floor_ms ? wait : floor_ms;
}

/*
 * Sleep up to ms, or until stop; with wake_on_notify also until the next
 * outbox_notify after the caller read *seen. Returns true when stopping.
 */
static bool
wait_ms(struct outbox *ob, unsigned long seen, bool wake_on_notify, long ms)
{
	struct timespec	deadline = clock_deadline(ms);
	bool		stop;
	int		rc = 0;

	pthread_mutex_lock(&ob->mu);
	while (!ob->stop && rc != ETIMEDOUT && !(wake_on_notify && ob->wakeups != seen))
		rc = pthread_cond_timedwait(&ob->cv, &ob->mu, &deadline);
	stop = ob->stop;
	pthread_mutex_unlock(&ob->mu);
	return stop;
}

static bool
stopping(struct outbox *ob, unsigned long *seen)
{
	bool	stop;

	pthread_mutex_lock(&ob->mu);
	stop = ob->stop;
	if (seen != NULL)
		*seen = ob->wakeups;
	pthread_mutex_unlock(&ob->mu);
	return stop;
}

/*
 * A worker's store write, run on the batch thread: the store's one writer,
 * so a worker never starves behind the webhooks' transactions, and its
 * commits ride along with theirs (batch.h).
 */
struct write_op {
	enum { OP_LEASE, OP_SENT, OP_RETRY, OP_GIVE_UP } kind;
	struct store		*store;
	int64_t			 id, now, next;
	const char		*sid;
	long			 http_status;
	int			 error_code;
	bool			 expired;
	struct store_outbox_msg	*msgs;
	size_t			 max, n;
	int			 rc;
};

static void
write_run(void *arg)
{
	struct write_op *op = arg;

	switch (op->kind) {
	case OP_LEASE:
		op->rc = store_outbox_lease(op->store, op->now, OUTBOX_LEASE, op->msgs,
		    op->max, &op->n);
		break;
	case OP_SENT:
		op->rc = store_outbox_sent(op->store, op->id, op->sid, op->now);
		break;
	case OP_RETRY:
		op->rc = store_outbox_retry(op->store, op->id, op->next, op->http_status,
		    op->error_code);
		break;
	case OP_GIVE_UP:
	default:
		op->rc = store_outbox_give_up(op->store, op->id, op->expired,
		    op->http_status, op->error_code, op->now);
		break;
	}
}

/* 0 once the write is committed; -1 after the store logged why. */
static int
write_exec(struct outbox *ob, struct write_op *op)
{
	op->store = ob->store;
	op->rc = -1;
	if (batch_call(ob->cfg.batch, write_run, op) == -1) {
		/* Leased, but the batch rolled back: nothing is leased after all. */
		if (op->kind == OP_LEASE && op->rc == 0)
			while (op->n > 0)
				buf_free_secret(&op->msgs[--op->n].body);
		return -1;
	}
	return op->rc;
}

static int
write_retry(struct outbox *ob, int64_t id, int64_t next, long http_status,
    int error_code)
{
	struct write_op op = { .kind = OP_RETRY, .id = id, .next = next,
	    .http_status = http_status, .error_code = error_code };

	return write_exec(ob, &op);
}

static int
write_give_up(struct outbox *ob, int64_t id, bool expired, long http_status,
    int error_code, int64_t now)
{
	struct write_op op = { .kind = OP_GIVE_UP, .id = id, .expired = expired,
	    .http_status = http_status, .error_code = error_code, .now = now };

	return write_exec(ob, &op);
}

static void
store_failed(struct outbox *ob, const char *what)
{
	/* The store logged the database error; this says what it cost. */
	log_warnx("outbox: store error while %s; pausing %d ms", what, STORE_PAUSE_MS);
	metrics_inc(ob->metrics, METRIC_STORE_ERRORS);
}

/* A "sent" on its way to the store: what its log line needs, and the write. */
struct sent_note {
	struct outbox	*ob;
	struct write_op	 op;
	unsigned	 tries;
	char		 sid[sizeof(((struct twilio_result *)NULL)->sid)];
	char		 masked[PHONE_MASK_MAX];
	unsigned	 attempts;
	long		 http_status;
};

static void	sent_post(struct sent_note *note);

static void
sent_run(void *arg)
{
	struct sent_note *note = arg;

	write_run(&note->op);
}

/*
 * The record's batch is over. A store error sends it to the next batch, a
 * few times, never retried here: this runs on the batch thread, which every
 * webhook waits for. Past that the message is sent again once its lease
 * runs out.
 */
static void
sent_after(void *arg, bool committed)
{
	struct sent_note	*note = arg;
	struct write_op		*op = &note->op;
	const char		*sid = note->sid[0] != '\0' ? note->sid : "-";

	if (committed && op->rc == 0)
		log_info("outbox: message %lld to %s: sent (attempt %u), http %ld, sid %s",
		    (long long)op->id, note->masked, note->attempts, note->http_status, sid);
	else {
		metrics_inc(note->ob->metrics, METRIC_STORE_ERRORS);
		if (note->tries < SENT_TRIES) {
			sent_post(note);
			return;
		}
		log_error("outbox: message %lld to %s: Twilio accepted it (sid %s) but the"
		    " store did not record it: it will be sent again when its lease runs out",
		    (long long)op->id, note->masked, sid);
	}
	free(note);
}

/* Into the next batch without waiting for it; here when memory is short. */
static void
sent_post(struct sent_note *note)
{
	note->tries++;
	note->op.rc = -1;
	if (batch_post(note->ob->cfg.batch, sent_run, sent_after, note) == 0)
		return;
	sent_run(note);
	sent_after(note, true);
}

/*
 * Twilio has it: that record is all that stands between us and a second
 * SMS, so it goes into the very next commit; the worker does not wait for
 * it and sends on.
 */
static void
record_sent(struct outbox *ob, const struct store_outbox_msg *m,
    const struct twilio_result *res, const char *masked)
{
	struct sent_note	*note;

	metrics_inc(ob->metrics, METRIC_SMS_SENT);
	if ((note = calloc(1, sizeof(*note))) == NULL) {
		log_error("outbox: message %lld to %s: out of memory recording it sent:"
		    " it will be sent again when its lease runs out", (long long)m->id, masked);
		return;
	}
	note->ob = ob;
	memcpy(note->sid, res->sid, sizeof(note->sid));
	note->sid[sizeof(note->sid) - 1] = '\0';
	snprintf(note->masked, sizeof(note->masked), "%s", masked);
	note->attempts = m->attempts;
	note->http_status = res->http_status;
	note->op = (struct write_op){ .kind = OP_SENT, .store = ob->store, .id = m->id,
	    .sid = note->sid, .now = (int64_t)time(NULL) };
	sent_post(note);
}

static void
record_retry(struct outbox *ob, const struct store_outbox_msg *m,
    const struct twilio_result *res, const char *masked, int64_t now)
{
	uint64_t	ms = outbox_backoff_ms(m->attempts, res->retry_after, randombytes_random());
	int64_t		next = now + (int64_t)((ms + 999) / 1000);

	metrics_inc(ob->metrics, METRIC_SMS_RETRIED);
	if (res->http_status == 0)	/* curl's words: no Twilio text, so no number in it */
		log_info("outbox: message %lld to %s: no reply (attempt %u): %s; retry in %llds",
		    (long long)m->id, masked, m->attempts, res->detail, (long long)(next - now));
	else if (res->http_status == 401)
		log_warnx("outbox: message %lld to %s: http 401, code %d (attempt %u): Twilio "
		    "refused our credentials, check [twilio] auth; retry in %llds",
		    (long long)m->id, masked, res->error_code, m->attempts,
		    (long long)(next - now));
	else
		log_info("outbox: message %lld to %s: http %ld, code %d (attempt %u); retry in %llds",
		    (long long)m->id, masked, res->http_status, res->error_code, m->attempts,
		    (long long)(next - now));
	if (write_retry(ob, m->id, next, res->http_status, res->error_code) == -1)
		store_failed(ob, "scheduling a retry");
}

static void
record_failed(struct outbox *ob, const struct store_outbox_msg *m,
    const struct twilio_result *res, const char *masked, int64_t now)
{
	metrics_inc(ob->metrics, METRIC_SMS_FAILED);
	/* Not res->detail: Twilio's message text may quote the whole number. */
	log_warnx("outbox: message %lld to %s: failed (attempt %u), http %ld, code %d",
	    (long long)m->id, masked, m->attempts, res->http_status, res->error_code);
	if (write_give_up(ob, m->id, false, res->http_status, res->error_code,
	    now) == -1)
		store_failed(ob, "recording a failure");
}

/* A round's message: the leased row and its masked destination for logs. */
struct sending {
	struct store_outbox_msg	*m;
	char			 masked[PHONE_MASK_MAX];
};

struct round {
	struct outbox	*ob;
	struct sending	*msgs;
};

/* twilio_api_send's done: record the call's outcome as soon as it has one. */
static void
round_done(void *arg, size_t i, const struct twilio_result *res)
{
	struct round	*r = arg;
	struct sending	*s = &r->msgs[i];
	int64_t		 now = (int64_t)time(NULL);

	switch (res->outcome) {
	case TWILIO_ACCEPTED:
		record_sent(r->ob, s->m, res, s->masked);
		break;
	case TWILIO_RETRY:
		record_retry(r->ob, s->m, res, s->masked, now);
		break;
	case TWILIO_PERMANENT:
	default:
		record_failed(r->ob, s->m, res, s->masked, now);
		break;
	}
}

/* Send a round of messages at once. */
static void
send_round(struct worker *w, struct sending *msgs, size_t n, int64_t now)
{
	struct outbox		*ob = w->ob;
	struct twilio_message	 tm[OUTBOX_CALLS];
	struct round		 r = { .ob = ob, .msgs = msgs };

	for (size_t i = 0; i < n; i++) {
		const struct store_outbox_msg *m = msgs[i].m;

		tm[i] = (struct twilio_message){
			.to = m->to,
			.body = m->body.data != NULL ? m->body.data : "",
			.validity_period = (unsigned)(m->expires_at - now),
			.status_callback = ob->cfg.status_callback,
		};
	}
	twilio_api_send(w->api, tm, n, round_done, &r);
}

/*
 * Deliver a leased batch in order, in rounds of up to OUTBOX_CALLS calls at
 * once. A round only starts while the lease still covers a whole call: past
 * that another worker may lease its messages and send them too, so the rest
 * go back to pending (their attempt count keeps the lease's increment).
 * Stopping hands the rest back the same way.
 */
static void
deliver(struct worker *w, struct store_outbox_msg *msgs, size_t n, int64_t leased_at)
{
	struct outbox	*ob = w->ob;
	struct sending	 round[OUTBOX_CALLS];
	bool		 hand_back = false;
	int64_t		 now;
	size_t		 i = 0, k;

	while (i < n) {
		now = (int64_t)time(NULL);
		if (!hand_back)
			hand_back = stopping(ob, NULL) || now + API_CALL_DEADLINE +
			    SEND_MARGIN > leased_at + OUTBOX_LEASE;
		for (k = 0; i < n && k < OUTBOX_CALLS; i++) {
			struct store_outbox_msg	*m = &msgs[i];
			char			 masked[PHONE_MASK_MAX];

			phone_mask(m->to, strnlen(m->to, sizeof(m->to)), masked);
			if (now >= m->expires_at) {
				metrics_inc(ob->metrics, METRIC_SMS_EXPIRED);
				log_info("outbox: message %lld to %s: expired unsent (attempt %u)",
				    (long long)m->id, masked, m->attempts);
				if (write_give_up(ob, m->id, true, 0, 0, now) == -1)
					store_failed(ob, "expiring a message");
			} else if (hand_back) {
				if (write_retry(ob, m->id, now, 0, 0) == -1)
					store_failed(ob, "returning a leased message");
			} else {
				round[k].m = m;
				memcpy(round[k++].masked, masked, sizeof(masked));
				continue;	/* its body is wiped once the round is over */
			}
			buf_free_secret(&m->body);
		}
		if (k > 0)
			send_round(w, round, k, now);
		while (k > 0)
			buf_free_secret(&round[--k].m->body);
	}
}

static void *
worker_main(void *arg)
{
	struct worker		*w = arg;
	struct outbox		*ob = w->ob;
	struct store_outbox_msg	 msgs[OUTBOX_BATCH];
	struct write_op		 op;
	unsigned long		 seen;
	size_t			 n, want = OUTBOX_BATCH_MIN;
	int64_t			 now;

	while (!stopping(ob, &seen)) {
		memset(msgs, 0, sizeof(msgs));
		now = (int64_t)time(NULL);
		op = (struct write_op){ .kind = OP_LEASE, .now = now, .msgs = msgs,
		    .max = want };
		/* On failure nothing is left filled. */
		if (write_exec(ob, &op) == -1) {
			store_failed(ob, "leasing messages");
			(void)wait_ms(ob, seen, false, STORE_PAUSE_MS);
			continue;
		}
		n = op.n < want ? op.n : want;
		/* Full: a backlog, so lease more next round; else back to the minimum. */
		if (n < want)
			want = OUTBOX_BATCH_MIN;
		else if (want < OUTBOX_BATCH)
			want = want * 2 < OUTBOX_BATCH ? want * 2 : OUTBOX_BATCH;
		if (n == 0) {
			(void)wait_ms(ob, seen, true, OUTBOX_POLL_MS);
			continue;
		}
		deliver(w, msgs, n, now);
	}
	return NULL;
}

void
outbox_notify(struct outbox *ob)
{
	if (ob == NULL)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->wakeups++;
	pthread_cond_signal(&ob->cv);
	pthread_mutex_unlock(&ob->mu);
}

static int
init_sync(struct outbox *ob)
{
	if (clock_cond_init(&ob->cv) == -1)
		return -1;
	if (pthread_mutex_init(&ob->mu, NULL) != 0) {
		pthread_cond_destroy(&ob->cv);
		return -1;
	}
	return 0;
}

int
outbox_start(const struct outbox_config *cfg, struct store *store,
    struct metrics *metrics, struct outbox **out)
{
	struct outbox	*ob;
	char		 msg[512];
	unsigned	 i;
	int		 err;

	*out = NULL;
	if (cfg->batch == NULL) {
		log_error("outbox: no batch to write through");
		return -1;
	}
	if (cfg->workers == 0 || cfg->workers > MAX_THREADS) {
		log_error("outbox: %u workers: want 1 to %u", cfg->workers, MAX_THREADS);
		return -1;
	}
	if ((ob = calloc(1, sizeof(*ob))) == NULL) {
		log_error("outbox: out of memory");
		return -1;
	}
	ob->cfg = *cfg;
	ob->store = store;
	ob->metrics = metrics;
	if (init_sync(ob) == -1) {
		log_error("outbox: cannot initialise its lock");
		free(ob);
		return -1;
	}
	if ((ob->workers = calloc(cfg->workers, sizeof(*ob->workers))) == NULL) {
		log_error("outbox: out of memory");
		goto fail;
	}
	ob->nworkers = cfg->workers;
	for (i = 0; i < ob->nworkers; i++) {
		struct worker	*w = &ob->workers[i];

		w->ob = ob;
		if (twilio_api_new(cfg->api, OUTBOX_CALLS, &w->api, msg, sizeof(msg)) == -1) {
			log_error("outbox: cannot set up the Twilio API client: %s", msg);
			goto fail;
		}
		if ((err = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
			errno = err;
			log_warn("outbox: pthread_create");
			goto fail;
		}
		w->started = true;
		(void)pthread_setname_np(w->thread, "outbox");
	}
	log_info("outbox: %u worker(s), up to %u calls at once each, sending through %s",
	    ob->nworkers, OUTBOX_CALLS, cfg->api->base_url);
	*out = ob;
	return 0;
fail:
	outbox_stop(ob);
	return -1;
}

void
outbox_stop(struct outbox *ob)
{
	unsigned	i;

	if (ob == NULL)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->stop = true;
	pthread_cond_broadcast(&ob->cv);
	pthread_mutex_unlock(&ob->mu);
	/* A worker inside twilio_api_send finishes its round: about API_TOTAL_TIMEOUT. */
	for (i = 0; i < ob->nworkers; i++)
		if (ob->workers[i].started)
			pthread_join(ob->workers[i].thread, NULL);
	for (i = 0; i < ob->nworkers; i++)
		twilio_api_free(ob->workers[i].api);
	free(ob->workers);
	pthread_cond_destroy(&ob->cv);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}
