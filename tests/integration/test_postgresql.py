"""driver = postgresql through the real binary: the CLI and check-config
against a database, and two daemons sharing one database as two instances
behind a load balancer do (the same account, auth token and server key):
one token for a webhook both receive at once, the same link for a retry on
the other instance, rate limits counted across them, a token redeemed
through both admin APIs once, an SMS the other instance delivers after the
first was killed mid-send, and both riding out a database restart. Each
test has a database of its own in the session's scratch cluster."""

import concurrent.futures
import threading
import time

import pytest

from fake_twilio import hang, pin_config, pin_of
from harness import ALICE, BOB, EMPTY_TWIML, new_message_sid, token_from_twiml

OUTAGE_WAIT = 15.0      # seconds for /readyz to notice the database is gone
RECOVER_WAIT = 45.0     # ...and to come back: the reconnect backoff caps at 30 s


def pg_daemon(factory, dsn, name, config=None, users=None, like=None):
    """A daemon on dsn, not started. like: another daemon whose account,
    auth token and server key it shares (instances of one service)."""
    d = factory.make(config=config, start=False, secondary=False, name=name)
    d.use_postgresql(dsn)
    if like is not None:
        d.account_sid = like.account_sid
        d.auth_token = like.auth_token
        d.merge_config({"twilio": {"account_sid": like.account_sid,
                                   "auth_token_file": like.sections["twilio"]["auth_token_file"]},
                        "secrets": {"server_key_file": str(like.server_key_path)}})
        d.write_config()
    for phone, user in (users or {}).items():
        d.add_user(phone, user)
    return d


def pair(factory, dsn, config=None, users=None):
    a = pg_daemon(factory, dsn, "pg-a", config=config, users=users)
    a.start()       # creates the server key b shares
    b = pg_daemon(factory, dsn, "pg-b", config=config, like=a)
    b.start()
    return a, b


def both(fn_a, fn_b):
    """Run two calls at the same moment; their results."""
    go = threading.Barrier(2)

    def run(fn):
        go.wait(timeout=10)
        return fn()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa, fb = ex.submit(run, fn_a), ex.submit(run, fn_b)
        return fa.result(timeout=30), fb.result(timeout=30)


def test_cli_and_check_config(daemon_factory, pg_dsn, pg_cluster):
    d = pg_daemon(daemon_factory, pg_dsn, "pg-cli")
    r = d.cli("check-config")
    assert r.returncode == 0, r.stderr
    d.add_user(BOB, "bob")
    d.add_user(ALICE, "alice")
    r = d.cli("user", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [ALICE, "alice", BOB, "bob"], r.stdout
    assert pg_cluster.psql(pg_dsn, "SELECT phone, user_id FROM users ORDER BY phone") == \
        [[ALICE, "alice"], [BOB, "bob"]]
    r = d.cli("user", "remove", BOB)
    assert r.returncode == 0, r.stderr
    assert pg_cluster.psql(pg_dsn, "SELECT count(*) FROM users") == [["1"]]
    # The DSN is a secret: never echoed, even when it does not work.
    d.use_postgresql("host=127.0.0.1 port=1 password=hunter2 connect_timeout=2")
    r = d.cli("user", "list")
    assert r.returncode != 0
    assert "hunter2" not in r.stderr + r.stdout, r.stderr
    # check-config connects too: a database it cannot reach fails it.
    r = d.cli("check-config")
    assert r.returncode == 1, (r.returncode, r.stdout)
    assert "[store] dsn_file" in r.stderr and "cannot connect" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout, r.stderr


def test_same_webhook_at_once_one_token(daemon_factory, pg_dsn, pg_cluster):
    a, b = pair(daemon_factory, pg_dsn, users={ALICE: "alice"})
    for _ in range(5):
        sid = new_message_sid()
        ra, rb = both(lambda: a.reset(ALICE, message_sid=sid),
                      lambda: b.reset(ALICE, message_sid=sid))
        assert {ra.status_code, rb.status_code} <= {200, 503}, (ra.status_code, rb.status_code)
        links = {token_from_twiml(r) for r in (ra, rb) if r.status_code == 200}
        assert len(links) == 1 and None not in links, (ra.text, rb.text)
    assert pg_cluster.psql(pg_dsn, "SELECT count(*) FROM reset_tokens") == [["5"]]
    assert pg_cluster.psql(pg_dsn, "SELECT count(*) FROM webhooks WHERE state = 2") == [["5"]]


def test_retry_on_other_instance_same_link(daemon_factory, pg_dsn, pg_cluster):
    a, b = pair(daemon_factory, pg_dsn, users={ALICE: "alice"})
    sid = new_message_sid()
    first = a.reset(ALICE, message_sid=sid)
    assert first.status_code == 200
    retry = b.reset(ALICE, message_sid=sid)
    assert retry.status_code == 200
    assert token_from_twiml(first) and token_from_twiml(retry) == token_from_twiml(first)
    assert pg_cluster.psql(pg_dsn, "SELECT count(*) FROM reset_tokens") == [["1"]]
    # The link works on either instance's admin API, once.
    r = b.redeem(token_from_twiml(first))
    assert r.status_code == 200 and r.json()["user"] == "alice", r.text
    assert a.redeem(token_from_twiml(first)).status_code == 410


def test_rate_limits_across_instances(daemon_factory, pg_dsn, pg_cluster):
    a, b = pair(daemon_factory, pg_dsn, users={ALICE: "alice", BOB: "bob"},
                config={"limits": {"reset_per_number": "3/1h"}})
    got = [token_from_twiml(d.reset(ALICE)) for d in (a, b, a, b, b)]
    assert all(got[:3]) and not any(got[3:]), got
    assert token_from_twiml(a.reset(BOB)), "another number was limited"
    assert pg_cluster.psql(pg_dsn, "SELECT count FROM rate_limits"
                           f" WHERE key = 'reset:{ALICE}'") == [["3"]]


def test_redeem_through_both_admin_apis_once(daemon_factory, pg_dsn):
    a, b = pair(daemon_factory, pg_dsn, users={ALICE: "alice"})
    for _ in range(5):
        token = token_from_twiml(a.reset(ALICE))
        assert token
        ra, rb = both(lambda: a.redeem(token), lambda: b.redeem(token))
        assert sorted([ra.status_code, rb.status_code]) == [200, 410], (ra.text, rb.text)


def test_pin_sent_by_one_verified_by_the_other(daemon_factory, pg_dsn, fake_twilio_api):
    fake = fake_twilio_api
    a, b = pair(daemon_factory, pg_dsn, config=pin_config(fake), users={ALICE: "alice"})
    r = a.pin(ALICE)
    assert r.status_code == 200, r.text
    req = fake.wait_for_requests(1)[0]
    fake.wait_answered(req)
    pin = pin_of(req)
    wrong = "0" * len(pin) if pin != "0" * len(pin) else "1" * len(pin)
    assert b.verify_pin(ALICE, wrong).json() == {"valid": False}
    ra, rb = both(lambda: a.verify_pin(ALICE, pin), lambda: b.verify_pin(ALICE, pin))
    valid = [x.json().get("valid") for x in (ra, rb)]
    assert sorted(valid) == [False, True], (ra.text, rb.text)
    fake.assert_quiet(1, wait=1.0)      # one SMS, whichever instance leased it


def wait_rows(cluster, dsn, sql, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.psql(dsn, sql)
        if predicate(rows):
            return rows
        assert time.monotonic() < deadline, f"{sql}: {rows}"
        time.sleep(0.2)


def test_killed_mid_send_other_instance_delivers(daemon_factory, pg_dsn, pg_cluster,
                                                 fake_twilio_api):
    fake = fake_twilio_api
    fake.script(hang())
    a = pg_daemon(daemon_factory, pg_dsn, "pg-a", config=pin_config(fake),
                  users={ALICE: "alice"})
    a.start()
    r = a.pin(ALICE)
    assert r.status_code == 200 and r.text.strip() == EMPTY_TWIML, r.text
    held = fake.wait_for_requests(1)[0]
    a.crash()       # SIGKILL: its lease stays behind
    b = pg_daemon(daemon_factory, pg_dsn, "pg-b", config=pin_config(fake), like=a)
    b.start()
    # Leased by the dead instance: nobody sends it until the lease runs out.
    time.sleep(1.0)
    assert fake.count() == 1
    pg_cluster.psql(pg_dsn, "UPDATE outbox SET lease_until ="
                    " extract(epoch FROM now())::bigint - 1 WHERE status = 'sending'")
    reqs = fake.wait_for_requests(2, timeout=15)
    assert reqs[1].form["Body"] == held.form["Body"]
    rows = wait_rows(pg_cluster, pg_dsn, "SELECT status, attempts, body IS NULL,"
                     " twilio_sid FROM outbox", lambda rows: rows and rows[0][0] == "sent")
    assert rows == [["sent", "2", "t", reqs[1].sid]], rows
    fake.release()


def readyz(d):
    try:
        return d.get("/readyz").status_code
    except Exception:       # noqa: BLE001 - a refused or reset connection
        return None


def wait_status(d, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        got = readyz(d)
        if got == want:
            return
        assert time.monotonic() < deadline, f"/readyz {got}, expected {want}"
        time.sleep(0.2)


def test_database_restart_503_then_recovers(daemon_factory, pg_dsn, pg_cluster):
    a, b = pair(daemon_factory, pg_dsn, users={ALICE: "alice"})
    answers = []            # (message sid, status, carries a link)
    errors = []
    stop = threading.Event()

    def load(d):
        while not stop.is_set() and len(answers) < 2000:
            sid = new_message_sid()
            try:
                r = d.reset(ALICE, message_sid=sid)
                link = r.status_code == 200 and token_from_twiml(r) is not None
                answers.append((sid, r.status_code, link))
            except Exception as e:   # noqa: BLE001 - counted as no answer
                errors.append(repr(e))
                answers.append((sid, None, False))
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(d,), daemon=True) for d in (a, b)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        pg_cluster.stop_server()
        try:
            wait_status(a, 503, OUTAGE_WAIT)
            wait_status(b, 503, OUTAGE_WAIT)
            during = len(answers)
            time.sleep(1.0)
            assert all(s != 200 for _, s, _ in answers[during:]), answers[during:]
        finally:
            pg_cluster.start_server()
        wait_status(a, 200, RECOVER_WAIT)
        wait_status(b, 200, RECOVER_WAIT)
        deadline = time.monotonic() + RECOVER_WAIT
        while not any(s == 200 for _, s, _ in answers[len(answers) - 4:]):
            assert time.monotonic() < deadline, answers[-10:]
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    statuses = {s for _, s, _ in answers}
    assert 503 in statuses and 200 in statuses, (statuses, errors[:3])
    # Never a 200 without its record: every link answered is in the database.
    ok = [sid for sid, s, link in answers if s == 200]
    assert all(link for _, s, link in answers if s == 200)
    rows = pg_cluster.psql(pg_dsn, "SELECT key FROM webhooks WHERE state = 2")
    done = {r[0] for r in rows}
    assert set(ok) <= done, set(ok) - done
    assert a.running and b.running
