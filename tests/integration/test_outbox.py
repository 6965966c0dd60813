"""The durable outbox: PIN SMS are delivered outside the webhook, several
calls at once, retried on 5xx and 429 with backoff (honouring Retry-After),
given up on a permanent Twilio error, given up when the PIN has expired,
redelivered after a crash mid-send, and never sent to an API whose
certificate is not trusted."""

import time

import pytest

from fake_twilio import (created, hang, invalid_to, outbox_rows, pin_config, pin_of,
                         server_error, slow, too_many, wait_outbox)
from harness import ALICE, BOB, EMPTY_TWIML

RETRY_WAIT = 20.0       # seconds for 4 attempts with 1 s doubling backoff


@pytest.fixture
def fake(fake_twilio_api):
    return fake_twilio_api


@pytest.fixture
def od(daemon_factory, fake):
    return daemon_factory.make(config=pin_config(fake),
                               users={ALICE: "alice", BOB: "bob"}, name="outbox")


def send_pin(d, phone=ALICE, **kw):
    r = d.pin(phone, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.text.strip() == EMPTY_TWIML, r.text
    return r


def the_row(d):
    rows = outbox_rows(d)
    assert len(rows) == 1, rows
    return rows[0]


def assert_verifies(d, phone, pin, user):
    r = d.verify_pin(phone, pin)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json().get("valid") is True and r.json().get("user") == user, r.text


# ------------------------------------------------------------------- retries

def test_retries_5xx_and_429_then_sent(od, fake):
    fake.script(server_error(500), server_error(500), too_many(retry_after=1), created())
    send_pin(od)
    reqs = fake.wait_for_requests(4, timeout=RETRY_WAIT)
    fake.wait_answered(reqs[3])
    assert [q.status for q in reqs] == [500, 500, 429, 201], reqs
    # The same message every time: same recipient, same PIN.
    assert {q.form["To"] for q in reqs} == {ALICE}
    assert len({q.form["Body"] for q in reqs}) == 1
    validity = [int(q.form["ValidityPeriod"]) for q in reqs]
    assert all(0 < v <= 600 for v in validity), validity
    assert validity == sorted(validity, reverse=True), validity
    # Backoff happened, and Retry-After: 1 was honoured.
    gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:])]
    assert gaps[2] >= 0.8, gaps
    assert sum(gaps) >= 2.0, gaps
    row = wait_outbox(od, lambda rows: rows and rows[0]["status"] == "sent")[0]
    assert row["attempts"] == 4, row
    assert row["twilio_sid"] == reqs[3].sid
    assert row["body"] is None
    fake.assert_quiet(4, wait=1.5)
    assert_verifies(od, ALICE, pin_of(reqs[3]), "alice")
    assert (od.metric("twhookd_sms_total", '{result="retried"}') or 0) >= 3
    assert (od.metric("twhookd_sms_total", '{result="sent"}') or 0) == 1


def test_permanent_error_not_retried(od, fake):
    fake.script(invalid_to())
    send_pin(od)
    req = fake.wait_for_requests(1)[0]
    fake.wait_answered(req)
    row = wait_outbox(od, lambda rows: rows and rows[0]["status"] == "failed")[0]
    assert row["error_code"] == 21211, row
    assert row["http_status"] == 400, row
    assert row["twilio_sid"] is None
    assert row["body"] is None, "SMS text kept after giving up"
    fake.assert_quiet(1)
    assert the_row(od)["status"] == "failed"
    assert (od.metric("twhookd_sms_total", '{result="failed"}') or 0) >= 1
    # The queue is not stuck: the next message goes out.
    send_pin(od, BOB)
    assert fake.wait_for_requests(2)[1].form["To"] == BOB


def test_expired_message_given_up(od, fake):
    fake.script(*[server_error(503) for _ in range(10)])
    send_pin(od)
    fake.wait_for_requests(1)
    # ttl has a 60 s minimum: age the message in the store instead.
    with od.db() as conn:
        conn.execute("UPDATE outbox SET expires_at = ?", (int(time.time()) - 1,))
        conn.commit()
    row = wait_outbox(od, lambda rows: rows and rows[0]["status"] == "expired",
                      timeout=10)[0]
    assert row["body"] is None, "SMS text kept after expiry"
    n = fake.count()
    fake.assert_quiet(n)
    assert n <= 3, fake.requests
    assert (od.metric("twhookd_sms_total", '{result="expired"}') or 0) >= 1


# --------------------------------------------------------------------- crash

def test_crash_mid_send_redelivered(od, fake):
    fake.script(hang())
    p = od.params(ALICE, body="PIN")
    r1 = od.post_signed(p, path="/sms/pin")
    assert r1.status_code == 200 and r1.text.strip() == EMPTY_TWIML, r1.text
    first = fake.wait_for_requests(1)[0]
    od.crash()
    fake.release()                          # 201 from now on
    # Nothing resets leases at startup (another instance may hold them): the
    # row is sent again once its lease runs out, here made to have run out.
    with od.db() as conn:
        conn.execute("UPDATE outbox SET lease_until = unixepoch() - 1"
                     " WHERE status = 'sending'")
        conn.commit()
    od.start()
    reqs = fake.wait_for_requests(2, timeout=10)
    second = reqs[1]
    fake.wait_answered(second)
    assert second.status == 201
    assert second.form["To"] == ALICE
    assert second.form["Body"] == first.form["Body"]
    row = wait_outbox(od, lambda rows: rows and rows[0]["status"] == "sent")[0]
    assert row["twilio_sid"] == second.sid
    assert row["body"] is None
    # Twilio retrying the webhook after the restart: still one message.
    r2 = od.post_signed(p, path="/sms/pin")
    assert r2.content == r1.content
    fake.assert_quiet(2)
    assert len(outbox_rows(od)) == 1
    assert_verifies(od, ALICE, pin_of(second), "alice")


def test_hung_api_does_not_block_webhooks(od, fake):
    fake.script(hang())
    send_pin(od, ALICE)
    fake.wait_for_requests(1)
    t0 = time.monotonic()
    for _ in range(3):
        r = od.reset(BOB)
        assert r.status_code == 200, r.text
    send_pin(od, BOB)
    assert time.monotonic() - t0 < 5.0
    assert od.get("/readyz").status_code == 200
    fake.release()
    wait_outbox(od, lambda rows: len(rows) == 2 and all(r["status"] == "sent" for r in rows))


def test_calls_go_out_together(daemon_factory, fake):
    """A backlog goes out in rounds of concurrent calls, not one call per
    worker at a time: against a slow API (here 1.5 s a call) that is what
    keeps the outbox up with the webhooks."""
    phones = [f"+1555000{2000 + i}" for i in range(10)]
    d = daemon_factory.make(config=pin_config(fake), users={p: f"u{i}" for i, p in
                                                             enumerate(phones)},
                            name="outbox-rounds")
    # Both workers stuck on a call each while eight more PINs queue up.
    fake.script(hang(), hang(), *[slow(1.5)] * 8)
    send_pin(d, phones[0])
    fake.wait_for_requests(1)
    send_pin(d, phones[1])
    fake.wait_for_requests(2)
    for p in phones[2:]:
        send_pin(d, p)
    assert fake.count() == 2
    fake.release()
    fake.wait_for_requests(10, timeout=20.0)
    wait_outbox(d, lambda rows: len(rows) == 10 and all(r["status"] == "sent" for r in rows))
    # One call at a time per worker would hold at most 2; rounds hold more.
    assert fake.max_in_flight >= 3, fake.max_in_flight
    assert sorted(r.form["To"] for r in fake.requests) == sorted(phones)


def test_each_outcome_goes_to_its_message(daemon_factory, fake):
    """Calls that end differently in one round are each recorded on their own
    message: the one Twilio refused is failed, the one it took is sent."""
    phones = [f"+1555000{3000 + i}" for i in range(4)]
    d = daemon_factory.make(config=pin_config(fake), users={p: f"u{i}" for i, p in
                                                             enumerate(phones)},
                            name="outbox-outcomes")
    fake.script(hang(), hang(), slow(0.5), invalid_to())
    send_pin(d, phones[0])
    fake.wait_for_requests(1)
    send_pin(d, phones[1])
    fake.wait_for_requests(2)
    send_pin(d, phones[2])
    send_pin(d, phones[3])
    fake.release()
    rows = wait_outbox(d, lambda rows: len(rows) == 4 and
                       all(r["status"] in ("sent", "failed") for r in rows))
    answered = {r.form["To"]: r.status for r in fake.wait_for_requests(4)}
    assert sorted(answered.values()) == [201, 201, 201, 400], answered
    for row in rows:
        assert row["status"] == ("failed" if answered[row["to_phone"]] == 400 else "sent"), \
            (row["to_phone"], row["status"], answered)


# ------------------------------------------------------------- trust and TLS

def test_untrusted_api_certificate(daemon_factory, fake):
    # The CA given is not the one that signed the fake's certificate.
    d = daemon_factory.make(config=pin_config(fake, twilio={"api_ca_file": None}),
                            users={ALICE: "alice"}, name="untrusted", start=False)
    d.merge_config({"twilio": {"api_ca_file": d.cert}})
    d.write_config()
    d.start()
    send_pin(d)
    fake.assert_quiet(0, wait=2.5)
    row = the_row(d)
    assert row["status"] != "sent", row
    assert row["twilio_sid"] is None
