/*
 * Startup in a fixed order (config, log, TLS, server key, store, routes,
 * listeners, READY=1), then a signal loop that purges old records hourly.
 * check-config runs the same loading and checks up to the routes, creating
 * and writing nothing.
 * SIGTERM: /readyz turns 503 for drain_delay so the load balancer moves
 * away, the listener stops accepting, requests in flight finish (up to
 * shutdown_timeout), and the process exits 0. Fatal errors only before ready.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "admin.h"
#include "batch.h"
#include "health.h"
#include "log.h"
#include "outbox.h"
#include "pipeline.h"
#include "serve.h"
#include "server.h"
#include "tls.h"

struct daemon_state {
	struct app		 app;
	struct config		*cfg;
	struct tls_material	 tls;
	struct twilio_api_config api;
	struct buf		 status_callback;
	bool			 curl_ready;
	struct server		*public;
	struct server		*admin;
	struct health		*health;
};

static void
public_done(void *arg, const struct request *req)
{
	struct app *app = arg;

	metrics_status(&app->metrics, req->status);
}

static void
print_errors(const struct buf *errors)
{
	if (errors->len > 0)
		fwrite(errors->data, 1, errors->len, stderr);
}

/* Each line of errors as an error log line (serve: the journal sees its priority). */
static void
log_errors(const struct buf *errors)
{
	const char	*p = errors->data, *end = p + errors->len, *nl;

	for (; p != NULL && p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		log_error("%.*s", (int)(nl - p), p);
	}
}

/*
 * The resources a config names, as serve needs them (check == false: the
 * server key created when missing, the store opened and migrated, the first
 * failure ends it) or as check-config looks at them (check == true: nothing
 * created or written, the store read-only, every failure reported, and a
 * missing key or store that serve would create noted in notes). Failures go
 * to errors as config_error lines. 0 or -1.
 */
static int
prepare_resources(struct daemon_state *st, bool check, struct buf *errors,
    struct buf *notes)
{
	static const char *const tls_keys[] = {
		[TLS_PART_CERT] = "tls_cert", [TLS_PART_KEY] = "tls_key",
		[TLS_PART_PRIORITIES] = "tls_priorities",
	};
	const struct config	*cfg = st->cfg;
	enum tls_part		 bad;
	char			 err[PATH_MAX + 256];
	bool			 missing = false;
	bool			 sqlite = strcmp(cfg->store_driver, "sqlite") == 0;
	const char		*store_key = sqlite ? "path" :
				    cfg->store_dsn_file != NULL ? "dsn_file" : "dsn";
	int			 r, rc = 0;

	/* TLS first: it only reads, so a serve that fails here created nothing. */
	if (cfg->tls && tls_load(cfg->tls_cert, cfg->tls_key, cfg->tls_priorities,
	    &st->tls, &bad, err, sizeof(err)) == -1) {
		(void)config_error(cfg, errors, "server", tls_keys[bad], "%s", err);
		if (!check)
			return -1;
		rc = -1;
	}
	r = check ? secret_key_check(cfg->server_key_file, &missing, err, sizeof(err)) :
	    secret_key_load(cfg->server_key_file, true, &st->app.key, err, sizeof(err));
	if (r == -1) {
		(void)config_error(cfg, errors, "secrets", "server_key_file", "%s", err);
		if (!check)
			return -1;
		rc = -1;
	} else if (missing) {
		(void)config_error(cfg, notes, "secrets", "server_key_file", "%s: not there"
		    " yet; serve will create it (mode 0600)", cfg->server_key_file);
	}
	missing = false;
	r = check ? store_check(config_store(cfg), &missing, err, sizeof(err)) :
	    store_open(config_store(cfg), &st->app.store, err, sizeof(err));
	if (r == -1) {
		(void)config_error(cfg, errors, "store", store_key, "%s", err);
		rc = -1;
	} else if (missing) {
		(void)config_error(cfg, notes, "store", store_key, "%s: not there yet;"
		    " serve will create it", sqlite ? cfg->store_path : "the schema");
	}
	return rc;
}

/*
 * Load and validate everything serve needs before it opens a listener: the
 * config, then what it names (prepare_resources). The one function behind
 * both serve and check-config, so that a configuration check-config passes
 * is one serve starts with.
 */
static int
serve_prepare(struct daemon_state *st, const char *config_path, bool check,
    struct buf *errors, struct buf *notes)
{
	if (config_load(config_path, &st->cfg, errors) == -1)
		return -1;
	st->app.cfg = st->cfg;
	if (!check)
		log_init(st->cfg->log_level);
	return prepare_resources(st, check, errors, notes);
}

int
serve_check_config(const char *config_path)
{
	struct daemon_state	 st;
	struct buf		 errors = BUF_INIT, notes = BUF_INIT;
	int			 rc = 1;

	memset(&st, 0, sizeof(st));
	if (sodium_init() < 0) {
		fprintf(stderr, "twhookd: libsodium failed to initialise\n");
		return 1;
	}
	if (serve_prepare(&st, config_path, true, &errors, &notes) == 0) {
		if (notes.len > 0)
			fwrite(notes.data, 1, notes.len, stdout);
		printf("%s: configuration OK\n", config_path);
		rc = 0;
	}
	print_errors(&errors);
	buf_free(&errors);
	buf_free(&notes);
	tls_release(&st.tls);
	config_free(st.cfg);
	return rc;
}

static int
setup_state(struct daemon_state *st, const char *config_path)
{
	struct buf	 errors = BUF_INIT;
	struct app	*app = &st->app;
	int		 rc = -1;

	if (serve_prepare(st, config_path, false, &errors, NULL) == -1) {
		/* Config errors come before logging is set up; the rest are logged. */
		if (st->cfg == NULL)
			print_errors(&errors);
		else
			log_errors(&errors);
		goto done;
	}
	atomic_init(&app->draining, false);
	app->tokens[app->token_count++] = (struct signature_key){
	    (const uint8_t *)st->cfg->auth_token.data, st->cfg->auth_token.len };
	if (st->cfg->secondary_auth_token.data != NULL)
		app->tokens[app->token_count++] = (struct signature_key){
		    (const uint8_t *)st->cfg->secondary_auth_token.data,
		    st->cfg->secondary_auth_token.len };
	rc = pipeline_init(app);
done:
	buf_free(&errors);
	return rc;
}

/* The PIN flow's sender: the outbox worker and its API client. */
static int
start_outbox(struct daemon_state *st)
{
	const struct config	*cfg = st->cfg;
	struct outbox_config	 ocfg = { &st->api, NULL, OUTBOX_WORKERS, st->app.batch };

	if (!config_sms_enabled(cfg)) {
		log_info("pin flow off: set [twilio] from_number or messaging_service_sid to enable it");
		return 0;
	}
	st->api = (struct twilio_api_config){
		.base_url = cfg->api_base_url, .account_sid = cfg->account_sid,
		/* Twilio recommends API keys in production; the auth token otherwise. */
		.username = cfg->api_key_sid != NULL ? cfg->api_key_sid : cfg->account_sid,
		.password = cfg->api_key_sid != NULL ? cfg->api_key_secret.data : cfg->auth_token.data,
		.from_number = cfg->from_number,
		.messaging_service_sid = cfg->messaging_service_sid,
		.ca_file = cfg->api_ca_file,
	};
	/* Status callbacks go to the first public URL: Twilio signs it like a webhook. */
	if (buf_append_str(&st->status_callback, cfg->public_url.url[0]) == -1 ||
	    buf_append_str(&st->status_callback, cfg->status_route) == -1)
		return -1;
	ocfg.status_callback = st->status_callback.data;
	if (twilio_api_global_init() == -1) {
		log_error("libcurl failed to initialise");
		return -1;
	}
	st->curl_ready = true;
	return outbox_start(&ocfg, st->app.store, &st->app.metrics, &st->app.outbox);
}

/* systemd socket activation: fd 3 is the public socket, fd 4 the admin one. */
static int
inherited_fd(int index)
{
	int n = sd_listen_fds(0);

	return n > index ? SD_LISTEN_FDS_START + index : -1;
}

static int
start_batch(struct daemon_state *st)
{
	const struct batch_ops ops = { pipeline_batch_run, pipeline_batch_fail, server_resume,
		&st->app };

	return batch_start(st->app.store, &ops, &st->app.batch);
}

/*
 * Each connection holds two descriptors (the library's socket and the
 * connection table's duplicate), and the soft limit is often 1024: raise it
 * towards the hard limit so max_connections is what really bounds them.
 */
static void
raise_fd_limit(unsigned connections)
{
	struct rlimit	rl;
	rlim_t		want = (rlim_t)connections * 2 + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < want)
		log_warnx("open files limited to %llu: fewer than max_connections connections"
		    " may open (raise LimitNOFILE to %llu)", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)want);
}

static int
start_listeners(struct daemon_state *st)
{
	const struct config	*cfg = st->cfg;
	struct server_options	 pub = {
		.name = "public", .listen = cfg->listen, .listen_fd = inherited_fd(0),
		.tls = cfg->tls, .tls_cert = st->tls.cert, .tls_key = st->tls.key,
		.tls_priorities = cfg->tls_priorities, .reuse_port = cfg->reuse_port,
		.threads = cfg->threads, .max_connections = cfg->max_connections,
		.max_connections_per_ip = cfg->max_connections_per_ip,
		.exempt = cfg->trusted, .exempt_count = cfg->trusted_count,
		.request_timeout = cfg->request_timeout, .idle_timeout = cfg->idle_timeout,
		.access_log = true, .nice = LISTENER_NICE, .metrics = &st->app.metrics,
	};
	struct server_options	 adm = {
		.name = "admin", .listen = cfg->admin_listen, .listen_fd = inherited_fd(1),
		.reuse_port = cfg->reuse_port, .threads = 1,
		.max_connections = ADMIN_MAX_CONNECTIONS,
		.request_timeout = cfg->request_timeout, .idle_timeout = cfg->idle_timeout,
		.access_log = true,
	};
	struct server_hooks	 pub_hooks = { pipeline_begin, pipeline_finish,
		public_done, &st->app, cfg->max_body };
	struct server_hooks	 adm_hooks = { admin_begin, admin_finish, NULL,
		&st->app, MAX_ADMIN_BODY };

	if (pub.threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		pub.threads = n > 0 && n <= (long)MAX_THREADS ? (unsigned)n : 1u;
	}
	raise_fd_limit(cfg->max_connections + ADMIN_MAX_CONNECTIONS);
	if (server_start(&pub, &pub_hooks, &st->public) == -1)
		return -1;
	if (cfg->admin_listen != NULL && cfg->admin_listen[0] != '\0' &&
	    server_start(&adm, &adm_hooks, &st->admin) == -1)
		return -1;
	log_info("twhookd %s: public listener on %s (%s, %u threads)%s%s", TWHOOKD_VERSION,
	    pub.listen_fd >= 0 ? "inherited socket" : cfg->listen,
	    cfg->tls ? "https" : "http behind a TLS proxy", pub.threads,
	    st->admin != NULL ? ", admin on " : "", st->admin != NULL ? cfg->admin_listen : "");
	return 0;
}

static void
purge(struct app *app)
{
	if (store_purge(app->store, (int64_t)time(NULL), IDEMPOTENCY_KEEP) == -1)
		metrics_inc(&app->metrics, METRIC_STORE_ERRORS);
}

/* Wait for SIGTERM/SIGINT, purging every PURGE_INTERVAL. */
static void
wait_for_stop(struct daemon_state *st, const sigset_t *set)
{
	struct timespec	timeout = { PURGE_INTERVAL, 0 };
	int		sig;

	for (;;) {
		sig = sigtimedwait(set, NULL, &timeout);
		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGHUP)
			log_warnx("SIGHUP: configuration reload is not supported; restart to apply changes");
		else if (sig == -1 && errno == EAGAIN)
			purge(&st->app);
	}
}

/* Let the load balancer notice /readyz, stop accepting, finish what runs. */
static void
drain(struct daemon_state *st)
{
	struct timespec	tick = { 0, 10 * 1000 * 1000 };
	long		ticks;

	atomic_store(&st->app.draining, true);
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	log_info("draining: readyz answers 503 for %us", st->cfg->drain_delay);
	sleep(st->cfg->drain_delay);
	server_quiesce(st->public);
	for (ticks = (long)st->cfg->shutdown_timeout * 100;
	    ticks > 0 && server_inflight(st->public) > 0; ticks--)
		nanosleep(&tick, NULL);
	if (server_inflight(st->public) > 0)
		log_warnx("shutdown_timeout: %u request(s) still in flight, closing them",
		    server_inflight(st->public));
}

static void
teardown(struct daemon_state *st)
{
	/* Answers what is queued; a webhook or store call still arriving then runs inline. */
	batch_stop(st->app.batch);
	server_stop(st->public);
	server_stop(st->admin);
	/* After the listeners: no webhook can enqueue any more. */
	outbox_stop(st->app.outbox);
	batch_free(st->app.batch);
	health_stop(st->health);
	if (st->curl_ready)
		twilio_api_global_cleanup();
	buf_free(&st->status_callback);
	store_close(st->app.store);
	secret_key_free(st->app.key);
	tls_release(&st->tls);
	config_free(st->cfg);
}

int
serve_run(const char *config_path)
{
	struct daemon_state	st;
	sigset_t		set;
	int			rc = 1;

	memset(&st, 0, sizeof(st));
	if (sodium_init() < 0) {
		fprintf(stderr, "twhookd: libsodium failed to initialise\n");
		return 1;
	}
	/* Block before any thread starts, so only sigtimedwait sees these. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (setup_state(&st, config_path) == -1 ||
	    health_start(st.app.store, &st.app.store_ready, &st.health) == -1 ||
	    start_batch(&st) == -1 || start_outbox(&st) == -1 || start_listeners(&st) == -1)
		goto done;
	purge(&st.app);
	sd_notify(0, "READY=1\nSTATUS=serving");
	wait_for_stop(&st, &set);
	drain(&st);
	log_info("stopped");
	rc = 0;
done:
	teardown(&st);
	return rc;
}
