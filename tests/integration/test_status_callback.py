"""Delivery status callbacks: with public_url set, each PIN SMS asks Twilio
to report to public_url + status_route; those callbacks are signed like any
webhook, recorded on the outbox row, only ever move the delivery status
forward, and are all processed (no idempotency dedupe on this route)."""

import pytest
import requests

from fake_twilio import FROM_NUMBER, outbox_rows, pin_config, wait_outbox
from harness import ALICE, BOB, EMPTY_TWIML, HTTP_TIMEOUT, new_account_sid, new_message_sid

PUBLIC = "https://sms.example.test"


@pytest.fixture(scope="module")
def fake(module_fake_twilio_api):
    return module_fake_twilio_api


@pytest.fixture(scope="module")
def sd(module_daemon_factory, fake):
    return module_daemon_factory.make(
        config=pin_config(fake, twilio={"public_url": PUBLIC}),
        users={ALICE: "alice", BOB: "bob"}, name="status")


def sent_sms(d, fake, phone=ALICE, route="/sms/pin"):
    """Send a PIN webhook (signed over the public URL); return the fake's
    request once it has answered 201, and the outbox row is 'sent'."""
    n0 = fake.count()
    r = d.pin(phone, path=route, sign_url=PUBLIC + route)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.text.strip() == EMPTY_TWIML, r.text
    req = fake.wait_for_requests(n0 + 1)[n0]
    fake.wait_answered(req)
    assert req.status == 201 and req.sid, req
    wait_outbox(d, lambda rows: len(rows) == 1 and rows[0]["status"] == "sent",
                timeout=5, where="twilio_sid = ?", args=(req.sid,))
    return req


def delivery(d, sid, column="delivery_status"):
    rows = outbox_rows(d, "twilio_sid = ?", (sid,))
    assert len(rows) == 1, (sid, len(rows))
    return rows[0][column]


def callback_params(d, req, status, **extra):
    """What Twilio posts to a StatusCallback URL."""
    p = {
        "AccountSid": d.account_sid,
        "ApiVersion": "2010-04-01",
        "From": FROM_NUMBER,
        "MessageSid": req.sid,
        "MessageStatus": status,
        "SmsSid": req.sid,
        "SmsStatus": status,
        "To": req.form["To"],
    }
    p.update(extra)
    return p


def callback(d, req, status, route="/sms/status", **kw):
    return d.post_signed(callback_params(d, req, status), path=route,
                         sign_url=PUBLIC + route, **kw)


# ---------------------------------------------------------------------------

def test_sms_asks_for_status_callback(sd, fake):
    req = sent_sms(sd, fake)
    assert req.form.get("StatusCallback") == PUBLIC + "/sms/status", req.form


def test_delivered_recorded_and_kept(sd, fake):
    req = sent_sms(sd, fake)
    r = callback(sd, req, "delivered")
    assert r.status_code == 200, (r.status_code, r.text)
    assert delivery(sd, req.sid) == "delivered"
    # A late "sent" (callbacks can arrive out of order) does not move it back.
    r = callback(sd, req, "sent")
    assert r.status_code == 200, (r.status_code, r.text)
    assert delivery(sd, req.sid) == "delivered"


def callbacks_seen(d):
    return d.metric("twhookd_status_callbacks_total") or 0


def test_every_callback_processed(sd, fake):
    req = sent_sms(sd, fake, BOB)
    n0 = callbacks_seen(sd)
    for status in ("queued", "sent", "sent"):
        r = callback(sd, req, status)
        assert r.status_code == 200, (status, r.status_code, r.text)
    assert delivery(sd, req.sid) == "sent"
    r = callback(sd, req, "delivered")
    assert r.status_code == 200, (r.status_code, r.text)
    assert delivery(sd, req.sid) == "delivered"
    # The very same callback again: processed (200), not refused as a duplicate.
    r = callback(sd, req, "delivered")
    assert r.status_code == 200, (r.status_code, r.text)
    assert callbacks_seen(sd) - n0 == 5


def test_undelivered_recorded(sd, fake):
    req = sent_sms(sd, fake)
    p = callback_params(sd, req, "undelivered", ErrorCode="30003")
    r = sd.post_signed(p, path="/sms/status", sign_url=PUBLIC + "/sms/status")
    assert r.status_code == 200, (r.status_code, r.text)
    assert delivery(sd, req.sid) == "undelivered"


def test_forged_callbacks_refused(sd, fake):
    req = sent_sms(sd, fake)
    before = delivery(sd, req.sid)
    assert before != "delivered"
    p = callback_params(sd, req, "delivered")
    url = PUBLIC + "/sms/status"
    foreign = dict(p, AccountSid=new_account_sid())
    attempts = [
        sd.post_signed(p, path="/sms/status", sign_url=url, token="0" * 32),
        sd.post_signed(p, path="/sms/status", signature=False),
        sd.post_signed(p, path="/sms/status"),          # signed for 127.0.0.1, not public_url
        sd.post_signed(p, path="/sms/status", sign_url=PUBLIC + "/sms/pin"),
        sd.post_signed(foreign, path="/sms/status", sign_url=url),
        sd.post_signed(dict(p, MessageStatus="failed"), path="/sms/status", sign_url=url,
                       sign_params=p),                  # tampered after signing
    ]
    for i, r in enumerate(attempts):
        assert r.status_code == 403, (i, r.status_code, r.text)
        assert r.content == b"", (i, r.text)
    assert delivery(sd, req.sid) == before
    # The genuine one still works afterwards.
    assert callback(sd, req, "delivered").status_code == 200
    assert delivery(sd, req.sid) == "delivered"


def test_callback_for_unknown_message(sd):
    fake_req = type("R", (), {"sid": new_message_sid(), "form": {"To": ALICE}})()
    r = callback(sd, fake_req, "delivered")
    assert r.status_code in (200, 204, 404), (r.status_code, r.text)
    assert outbox_rows(sd, "twilio_sid = ?", (fake_req.sid,)) == []


def test_status_route_method(sd):
    r = requests.get(sd.url("/sms/status"), verify=sd.cert, timeout=HTTP_TIMEOUT)
    assert r.status_code == 405, (r.status_code, r.text)


def test_status_callbacks_metric(sd, fake):
    req = sent_sms(sd, fake)
    n0 = callbacks_seen(sd)
    assert callback(sd, req, "delivered").status_code == 200
    assert callbacks_seen(sd) == n0 + 1
    assert sd.post_signed(callback_params(sd, req, "delivered"), path="/sms/status",
                          token="0" * 32).status_code == 403
    assert callbacks_seen(sd) == n0 + 1


def test_custom_status_route(daemon_factory, fake):
    d = daemon_factory.make(
        config=pin_config(fake, twilio={"public_url": PUBLIC, "status_route": "/hooks/status"}),
        users={ALICE: "alice"}, name="status-route")
    req = sent_sms(d, fake)
    assert req.form.get("StatusCallback") == PUBLIC + "/hooks/status", req.form
    r = callback(d, req, "delivered", route="/hooks/status")
    assert r.status_code == 200, (r.status_code, r.text)
    assert delivery(d, req.sid) == "delivered"
    r = callback(d, req, "delivered", route="/sms/status")
    assert r.status_code == 404, (r.status_code, r.text)
