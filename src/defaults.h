/*
 * Every default and hard limit of twhookd, in one place.
 * twhookd.ini(5) mirrors this file: change both together.
 */
#ifndef TWHOOKD_DEFAULTS_H
#define TWHOOKD_DEFAULTS_H

#define TWHOOKD_VERSION "0.1.0"

/* [server] */
#define DEFAULT_LISTEN                "0.0.0.0:8443"
#define DEFAULT_MAX_CONNECTIONS       1024u
/*
 * Per peer address (IPv6: per /64); 0 = off. Twilio spreads webhooks over
 * many addresses; behind a load balancer every connection comes from it,
 * which is why [proxy] trusted peers are exempt.
 */
#define DEFAULT_MAX_CONNECTIONS_PER_IP 64u
/* A whole request (head and body) within this, from accept or the previous answer. */
#define DEFAULT_REQUEST_TIMEOUT       10u          /* seconds */
/* Silence on a connection, between requests or within one. */
#define DEFAULT_IDLE_TIMEOUT          5u           /* seconds */
#define DEFAULT_MAX_BODY              (16u * 1024u)
#define DEFAULT_DRAIN_DELAY           5u           /* seconds */
#define DEFAULT_SHUTDOWN_TIMEOUT      20u          /* seconds */
/* TLS 1.2/1.3 only, ECDHE key exchange only (no RSA, DHE or FFDHE), AEAD ciphers only. */
#define DEFAULT_TLS_PRIORITIES \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:" \
	"-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:" \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%SERVER_PRECEDENCE"

/* [twilio] */
#define ACCOUNT_SID_LEN               34u          /* "AC" + 32 hex digits */

#define DEFAULT_API_BASE_URL          "https://api.twilio.com"
#define DEFAULT_STATUS_ROUTE          "/sms/status"
#define API_CONNECT_TIMEOUT           5L        /* seconds */
#define API_TOTAL_TIMEOUT             15L       /* seconds: one Messages API call */
/* Seconds twilio_api_send waits for a call at most, should curl's clock and ours disagree. */
#define API_CALL_DEADLINE             (API_TOTAL_TIMEOUT + 2)

/* [pin] */
#define DEFAULT_PIN_ROUTE             "/sms/pin"
#define DEFAULT_PIN_DIGITS            6u
#define MIN_PIN_DIGITS                4u
#define MAX_PIN_DIGITS                10u
#define DEFAULT_PIN_TTL               (10u * 60u)
#define MIN_PIN_TTL                   60u
#define MAX_PIN_TTL                   3600u
#define DEFAULT_PIN_MAX_ATTEMPTS      5u
#define MAX_PIN_MAX_ATTEMPTS          20u
#define DEFAULT_PIN_MESSAGE           "Your verification code is {pin}"

/* [limits]: count per window seconds */
#define DEFAULT_RESET_PER_NUMBER      3u
#define DEFAULT_PIN_PER_NUMBER        5u
#define DEFAULT_OUTBOUND_BUDGET       1000u
#define DEFAULT_LIMIT_WINDOW          3600u
#define MAX_LIMIT_COUNT               1000000u
#define MAX_LIMIT_WINDOW              (7u * 24u * 3600u)

/* Outbox: delivery outside the webhook threads. */
#define OUTBOX_WORKERS                2u        /* threads, each sending rounds of... */
#define OUTBOX_CALLS                  2u        /* ...up to this many API calls at once */
/*
 * Messages leased per round: OUTBOX_BATCH_MIN, doubling while each round
 * comes back full (a backlog) up to OUTBOX_BATCH, so a short burst spreads
 * over the workers and a deep queue costs few store round trips.
 */
#define OUTBOX_BATCH_MIN              4u
#define OUTBOX_BATCH                  32u
#define OUTBOX_POLL_MS                250       /* idle poll; enqueue also wakes workers */
/* Seconds a lease holds its rows: four rounds of calls that time out, then the rest go back. */
#define OUTBOX_LEASE                  (4 * API_TOTAL_TIMEOUT + 15)
#define OUTBOX_BACKOFF_BASE_MS        1000u
#define OUTBOX_BACKOFF_CAP_MS         (5u * 60u * 1000u)
#define OUTBOX_MAX_RETRY_AFTER        3600u     /* seconds of Retry-After we honour */

/* [store] */
#define DEFAULT_STORE_DRIVER          "sqlite"
#define DEFAULT_STORE_PATH            "/var/lib/twhookd/twhookd.db"
#define STORE_BUSY_TIMEOUT_MS         5000
/*
 * driver = postgresql: what twhookd sets on each connection unless the DSN
 * sets it (a DSN's own keyword wins; statement_timeout counts as set when
 * its options carry one). A lock wait, such as a duplicate webhook waiting
 * for the first one's commit, is bounded like SQLite's busy timeout.
 */
#define PG_CONNECT_TIMEOUT            5         /* seconds: connect_timeout */
#define PG_STATEMENT_TIMEOUT_MS       STORE_BUSY_TIMEOUT_MS   /* statement_timeout */
#define PG_TCP_USER_TIMEOUT_MS        10000     /* tcp_user_timeout: unacknowledged data */
#define PG_KEEPALIVES_IDLE            10        /* seconds: keepalives_idle... */
#define PG_KEEPALIVES_INTERVAL        2         /* ...keepalives_interval... */
#define PG_KEEPALIVES_COUNT           3         /* ...keepalives_count: a silent peer is dead */
#define PG_APPLICATION_NAME           "twhookd"
/*
 * A thread whose connection was lost tries again at once, then no more
 * often than every PG_RECONNECT_MIN_MS, doubling up to PG_RECONNECT_MAX_MS;
 * a store_probe that commits again lets every thread try at once.
 */
#define PG_RECONNECT_MIN_MS           1000
#define PG_RECONNECT_MAX_MS           30000

/* [secrets] */
#define DEFAULT_SERVER_KEY_FILE       "/var/lib/twhookd/server.key"

/* [reset] */
#define DEFAULT_RESET_ROUTE           "/sms/reset"
#define DEFAULT_RESET_MESSAGE         "Reset your password: {link}"
#define DEFAULT_TOKEN_TTL             (15u * 60u)  /* seconds */
/*
 * Seconds after a webhook's first arrival during which a repeat is a retry
 * and gets the first answer again (link included); later it is a replay:
 * no side effect, no link. Twilio's own retries of one webhook end within
 * 15 s of the first attempt (its #tt= total time, at most 15000 ms).
 */
#define DEFAULT_REPLAY_WINDOW         60u

/* [admin] */
#define DEFAULT_ADMIN_LISTEN          "127.0.0.1:9090"

/* Hard limits, enforced while reading input. */
#define MAX_BODY_LIMIT                (1024u * 1024u)   /* largest max_body accepted */
#define MIN_BODY_LIMIT                1024u
#define MAX_FORM_PAIRS                256u      /* Twilio sends ~40; more is not Twilio */
#define MAX_TARGET_LEN                4096u     /* raw request-target */
/*
 * libmicrohttpd's memory per connection: the request line and headers, then
 * the answer's headers (a request head past ~13-16 KiB, less with more
 * headers, gets 431; a request line too long for it 414). It zeroes all of
 * it after every request and keeps it resident while the connection lives:
 * 16 KiB instead of its default 32 took bench/run's peak RSS at 1000
 * connections from 69 to 51 MiB, CPU unchanged.
 */
#define CONNECTION_MEMORY             (16u * 1024u)
_Static_assert(MAX_TARGET_LEN + 2048u <= CONNECTION_MEMORY / 2,
    "room for a longest request-target and Twilio's headers, with margin");
#define MAX_URL_LEN                   8192u     /* public base + target */
#define MAX_SECRET_FILE               4096u     /* bytes read from a *_file */
#define MAX_CONFIG_FILE               (256u * 1024u)
#define MAX_TEMPLATE_LEN              1024u
#define MAX_USER_ID_LEN               256u
#define MAX_ADMIN_BODY                4096u
#define MAX_THREADS                   256u
#define ADMIN_MAX_CONNECTIONS         64u       /* the admin listener's max_connections */
#define FD_RESERVE                    256u      /* descriptors beyond two per connection */
#define MAX_AUTH_TOKENS               2u        /* primary + secondary during rotation */

/* Bounds on configuration values (twhookd.ini(5) lists them). */
#define MAX_CONNECTIONS_LIMIT	65536u	/* max_connections, max_connections_per_ip */
#define MAX_REQUEST_TIMEOUT	600u	/* seconds */
#define MAX_DRAIN_DELAY		600u	/* seconds */
#define MAX_SHUTDOWN_TIMEOUT	3600u	/* seconds */
#define MIN_TOKEN_TTL		60u	/* seconds */
#define MAX_TOKEN_TTL		(24u * 3600u)
#define MAX_REPLAY_WINDOW	3600u	/* seconds; 0 (no repeat answered with a link) is the minimum */
#define MAX_TRUSTED_CIDRS	256u
#define MAX_PATH_VALUE		4096u	/* PATH_MAX on Linux */
#define MAX_ROUTE_LEN		256u
#define MAX_PUBLIC_URL_LEN	2048u	/* leaves room for the target in MAX_URL_LEN */
/*
 * [twilio] public_url: webhook URLs one daemon answers for. A forged request
 * costs up to this many times 3 URL variants times MAX_AUTH_TOKENS HMACs.
 */
#define MAX_PUBLIC_URLS		8u
#define MAX_LISTEN_LEN		64u
#define MAX_PRIORITIES_LEN	1024u

/*
 * Log lines (twhookd(8), LOGGING): request data is escaped (log_escape.h)
 * and cut to these many bytes, escapes included; a cut ends in "...".
 */
#define LOG_UA_MAX                    128u      /* ua= of an access line, in its quotes */
#define LOG_METHOD_MAX                32u       /* method= of an access line */
#define LOG_TEXT_MAX                  1024u     /* a message of libmicrohttpd's */
/* I-Twilio-Idempotency-Token: logged when it is this short and of letters, digits, '-'. */
#define LOG_IDEM_TOKEN_MAX            64u
/* Lines an error repeats per request (store, libmicrohttpd): one per call site per... */
#define LOG_THROTTLE_MS               1000      /* ...this many ms (log.h) */

/* Idempotency: a webhook's record outlives Twilio's retries and any replay window. */
#define IDEMPOTENCY_KEEP              (30 * 24 * 3600)  /* seconds */
/* A claim still "running" after this long belongs to a crashed process: take it over. */
#define CLAIM_STALE_AFTER             60        /* seconds */
/*
 * Webhooks run in one store transaction at most (batch.c): bounds how long
 * other writers wait for the write lock.
 */
#define BATCH_MAX                     64u
/*
 * Nice added to the public listener's threads: on a saturated core the batch
 * thread and the outbox workers, which finish what the listener admitted,
 * preempt it, so the SMS queue stays flat instead of growing (bench/run,
 * PIN route on one core: at +2 the outbox sent 0.91x the webhook rate, at +5
 * 1.00x; the reset route's throughput did not move).
 */
#define LISTENER_NICE                 5
#define PURGE_INTERVAL                3600      /* seconds between store purges */
/* How often health.c asks the store whether it can commit (/readyz). */
#define HEALTH_INTERVAL_MS            1000

#endif
