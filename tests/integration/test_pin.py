"""The SMS PIN flow: a signed webhook from a registered number makes the
daemon text a fresh PIN to that number through the Twilio Messages API (a fake
one here); the admin API verifies it once. Unknown numbers, forgeries and
retries cause no SMS; the PIN never shows in a reply, the log or the store."""

import base64
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fake_twilio import (DEFAULT_MESSAGE, FROM_NUMBER, hang, outbox_rows, pin_config,
                         pin_of, wait_outbox)
from harness import (ALICE, BOB, CAROL, EMPTY_TWIML, UNKNOWN, new_account_sid,
                     new_message_sid, write_secret)

MG_SID = "MG" + "0123456789abcdef" * 2
SK_SID = "SK" + "fedcba9876543210" * 2
ALT_MESSAGE = "Example: your code is {pin}. It expires soon."
ALT_DIGITS = 10
ALT_TTL = 120


@pytest.fixture(scope="module")
def fake(module_fake_twilio_api):
    return module_fake_twilio_api


@pytest.fixture(scope="module")
def pind(module_daemon_factory, fake):
    """PIN flow on, from_number, max_attempts 3; alice, bob, carol registered."""
    return module_daemon_factory.make(
        config=pin_config(fake, pin={"max_attempts": "3"}),
        users={ALICE: "alice", BOB: "bob", CAROL: "carol"}, name="pin")


@pytest.fixture(scope="module")
def alt(module_daemon_factory, fake):
    """Messaging service, API key, 10-digit PINs, a custom message, route and
    TTL, debug logging."""
    d = module_daemon_factory.make(start=False, users={ALICE: "alice"}, name="pin-alt")
    d.api_key_secret = secrets.token_hex(16)
    write_secret(d.dir / "api_key_secret", d.api_key_secret)
    d.merge_config(pin_config(
        fake,
        twilio={"from_number": None, "messaging_service_sid": MG_SID,
                "api_key_sid": SK_SID,
                "api_key_secret_file": str(d.dir / "api_key_secret")},
        pin={"route": "/hooks/pin", "digits": str(ALT_DIGITS), "ttl": f"{ALT_TTL}s",
             "message": ALT_MESSAGE},
        log={"level": "debug"}))
    d.write_config()
    return d.start()


def one_sms(fake, n0, timeout=10.0):
    """Wait for exactly one new request after the first n0; return it."""
    reqs = fake.wait_for_requests(n0 + 1, timeout=timeout)
    return reqs[n0]


def request_pin(d, fake, phone=ALICE, **kw):
    """Send a PIN webhook from phone; return (reply, SMS request, PIN)."""
    n0 = fake.count()
    r = d.pin(phone, **kw)
    assert_empty_twiml(r)
    req = one_sms(fake, n0)
    pin = pin_of(req)
    d.issued_pins.add(pin)
    return r, req, pin


def assert_empty_twiml(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/xml"), r.headers
    assert r.text.strip() == EMPTY_TWIML, r.text


def other_pin(pin):
    return str((int(pin) + 1) % 10 ** len(pin)).zfill(len(pin))


def assert_valid(r, user):
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body.get("valid") is True and body.get("user") == user, body


def assert_invalid(r):
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body.get("valid") is False, body
    assert "user" not in body, body


# ------------------------------------------------------------------- the SMS

def test_pin_route_404_without_sender(live):
    # The shared daemon has neither from_number nor messaging_service_sid.
    r = live.pin(ALICE)
    assert r.status_code == 404, (r.status_code, r.text)


def test_known_number_gets_sms(pind, fake):
    r, req, pin = request_pin(pind, fake, ALICE)
    assert req.method == "POST"
    assert req.path == f"/2010-04-01/Accounts/{pind.account_sid}/Messages.json", req.path
    assert req.content_type.startswith("application/x-www-form-urlencoded"), req.content_type
    assert req.basic_auth() == (pind.account_sid, pind.auth_token)
    assert req.form["To"] == ALICE
    assert req.form["From"] == FROM_NUMBER
    assert "MessagingServiceSid" not in req.form
    assert req.form["Body"] == DEFAULT_MESSAGE.format(pin=pin)
    validity = req.form.get("ValidityPeriod", "")
    assert re.fullmatch(r"[1-9][0-9]*", validity), validity
    assert int(validity) <= 600            # default ttl 10m
    # public_url is always set: status callbacks go to the first one.
    assert req.form["StatusCallback"] == pind.url("/sms/status"), req.form
    assert pin not in r.text


def test_each_field_sent_once(pind, fake):
    _, req, _ = request_pin(pind, fake, BOB)
    for k, values in req.multi.items():
        assert len(values) == 1, (k, len(values))
    assert req.form["To"] == BOB


def test_json_webhook(pind, fake):
    n0 = fake.count()
    pind.phones.add(BOB)
    r = pind.post_json({"AccountSid": pind.account_sid, "MessageSid": new_message_sid(),
                        "From": BOB, "To": "+15557654321", "Body": "PIN"}, path="/sms/pin")
    assert_empty_twiml(r)
    req = one_sms(fake, n0)
    assert req.form["To"] == BOB
    pind.issued_pins.add(pin_of(req))


def test_unknown_number_looks_the_same(pind, fake):
    known, _, _ = request_pin(pind, fake, ALICE)
    n0 = fake.count()
    unknown = pind.pin(UNKNOWN)
    assert_empty_twiml(unknown)
    assert unknown.content == known.content
    assert unknown.headers.get("Content-Type") == known.headers.get("Content-Type")
    fake.assert_quiet(n0)


def test_no_sms_without_valid_signature(pind, fake):
    n0 = fake.count()
    forged = pind.pin(ALICE, token="0" * 32)
    unsigned = pind.pin(ALICE, signature=False)
    p = pind.params(BOB, body="PIN")
    tampered = pind.post_signed(dict(p, From=ALICE), path="/sms/pin", sign_params=p)
    foreign = pind.post_signed(dict(pind.params(ALICE, body="PIN"),
                                    AccountSid=new_account_sid()), path="/sms/pin")
    for r in (forged, unsigned, tampered, foreign):
        assert r.status_code == 403, (r.status_code, r.text)
        assert r.content == b""
    fake.assert_quiet(n0)


def test_same_webhook_twice_one_sms(pind, fake):
    n0 = fake.count()
    p = pind.params(CAROL, body="PIN")
    r1 = pind.post_signed(p, path="/sms/pin")
    req = one_sms(fake, n0)
    r2 = pind.post_signed(p, path="/sms/pin")
    r3 = pind.post_signed(p, path="/sms/pin", token=pind.secondary_token)
    assert_empty_twiml(r1)
    assert r1.content == r2.content == r3.content
    assert req.form["To"] == CAROL
    fake.assert_quiet(n0 + 1)


def test_replay_after_window_sends_nothing(pind, fake):
    # Within replay_window (60s by default) a repeat is Twilio's retry; once
    # the record is older, a replayed capture: the same empty answer, no SMS
    # either way, and the log and the counters tell the two apart.
    replays = "twhookd_webhook_replays_total"
    answered = pind.metric(replays, '{result="answered"}')
    refused = pind.metric(replays, '{result="refused"}')
    n0 = fake.count()
    queued = len(outbox_rows(pind))
    p = pind.params(CAROL, body="PIN")
    sid = p["MessageSid"]
    r1 = pind.post_signed(p, path="/sms/pin")
    one_sms(fake, n0)
    r2 = pind.post_signed(p, path="/sms/pin")
    with pind.db() as conn:
        assert conn.execute("UPDATE webhooks SET started_at = started_at - 61"
                            " WHERE route = 'pin' AND key = ?", (sid,)).rowcount == 1
        conn.commit()
    r3 = pind.post_signed(p, path="/sms/pin")
    r4 = pind.post_signed(p, path="/sms/pin", token=pind.secondary_token)
    for r in (r1, r2, r3, r4):
        assert_empty_twiml(r)
    assert pind.reasons(sid, 4) == ["ok", "retry", "replay", "replay"]
    assert pind.metric(replays, '{result="answered"}') == answered + 1
    assert pind.metric(replays, '{result="refused"}') == refused + 2
    fake.assert_quiet(n0 + 1)
    assert len(outbox_rows(pind)) == queued + 1


def test_concurrent_webhooks_one_sms_each(pind, fake):
    # Sent together, each twice: they share store commits, and each unique
    # webhook still queues exactly one SMS.
    n0 = fake.count()
    params = [pind.params(CAROL, body="PIN") for _ in range(12)]
    with ThreadPoolExecutor(max_workers=12) as ex:
        replies = list(ex.map(lambda p: pind.post_signed(p, path="/sms/pin"),
                              params + params))
    for r in replies:
        assert_empty_twiml(r)
    sent = fake.wait_for_requests(n0 + len(params))[n0:]
    assert all(req.form["To"] == CAROL for req in sent)
    fake.assert_quiet(n0 + len(params))


def test_webhook_answered_without_waiting_for_api(pind, fake):
    # The SMS goes out from the outbox, not from the webhook thread.
    fake.script(hang())
    try:
        n0 = fake.count()
        t0 = time.monotonic()
        r = pind.pin(ALICE)
        elapsed = time.monotonic() - t0
        assert_empty_twiml(r)
        req = one_sms(fake, n0)
        assert elapsed < 3.0, f"webhook took {elapsed:.1f}s while the API hung"
        # While the API call hangs the message counts in the queue depth.
        assert pind.metric("twhookd_outbox_queue_depth") == 1
    finally:
        fake.release()
    fake.wait_answered(req)
    wait_outbox(pind, lambda rows: rows and rows[-1]["status"] == "sent")
    fake.reset()


# -------------------------------------------------------------------- verify

def test_verify_once(pind, fake):
    _, _, pin = request_pin(pind, fake, ALICE)
    assert_valid(pind.verify_pin(ALICE, pin), "alice")
    assert_invalid(pind.verify_pin(ALICE, pin))


def test_verify_wrong_pin(pind, fake):
    _, _, pin = request_pin(pind, fake, BOB)
    assert_invalid(pind.verify_pin(BOB, other_pin(pin)))
    assert_valid(pind.verify_pin(BOB, pin), "bob")


def test_pin_bound_to_its_phone(pind, fake):
    _, _, pin = request_pin(pind, fake, ALICE)
    assert_invalid(pind.verify_pin(BOB, pin))
    assert_invalid(pind.verify_pin(UNKNOWN, pin))
    assert_valid(pind.verify_pin(ALICE, pin), "alice")


def test_locked_after_max_attempts(pind, fake):
    _, _, pin = request_pin(pind, fake, CAROL)
    for _ in range(3):                          # max_attempts = 3
        assert_invalid(pind.verify_pin(CAROL, other_pin(pin)))
    assert_invalid(pind.verify_pin(CAROL, pin))
    # A new PIN unlocks.
    _, _, pin2 = request_pin(pind, fake, CAROL)
    assert_valid(pind.verify_pin(CAROL, pin2), "carol")


def test_new_pin_replaces_old(pind, fake):
    _, _, pin1 = request_pin(pind, fake, ALICE)
    _, _, pin2 = request_pin(pind, fake, ALICE)
    if pin1 != pin2:                            # 1 in 10^6 they are equal
        assert_invalid(pind.verify_pin(ALICE, pin1))
    assert_valid(pind.verify_pin(ALICE, pin2), "alice")
    with pind.db() as conn:
        n = conn.execute("SELECT count(*) FROM pins WHERE phone = ?", (ALICE,)).fetchone()[0]
    assert n <= 1, n


def test_expired_pin_invalid(pind, fake):
    _, _, pin = request_pin(pind, fake, BOB)
    # ttl has a 60 s minimum: age the PIN in the store instead.
    with pind.db() as conn:
        conn.execute("UPDATE pins SET expires_at = ? WHERE phone = ?",
                     (int(time.time()) - 5, BOB))
        conn.commit()
    assert_invalid(pind.verify_pin(BOB, pin))


def test_verify_no_pin_issued(pind):
    assert_invalid(pind.verify_pin(UNKNOWN, "123456"))


@pytest.mark.parametrize("raw", [
    "not json", "", "[]", "{}", '{"phone": "+15550000001"}', '{"pin": "123456"}',
    '{"phone": 15550000001, "pin": "123456"}', '{"phone": "+15550000001", "pin": 123456}',
    '{"phone": "+15550000001", "pin": "123456"',
], ids=["text", "empty", "array", "object", "no-pin", "no-phone", "phone-number",
        "pin-number", "truncated"])
def test_verify_malformed_400(pind, raw):
    r = pind.verify_pin(None, None, raw=raw)
    assert r.status_code == 400, (raw, r.status_code, r.text)


@pytest.mark.parametrize("bearer", [False, "Bearer wrong", "Basic YWRtaW46YWRtaW4=",
                                    "{auth}"], ids=["none", "wrong", "basic", "auth-token"])
def test_verify_requires_bearer(pind, fake, bearer):
    _, _, pin = request_pin(pind, fake, ALICE)
    if bearer == "{auth}":
        bearer = f"Bearer {pind.auth_token}"
    r = pind.verify_pin(ALICE, pin, bearer=bearer)
    assert r.status_code == 401, (r.status_code, r.text)
    assert "alice" not in r.text
    # The refused call did not spend or count against the PIN.
    assert_valid(pind.verify_pin(ALICE, pin), "alice")


# --------------------------------------------------------------------- store

def test_pin_stored_only_as_hash(pind, fake):
    _, _, pin = request_pin(pind, fake, CAROL)
    wait_outbox(pind, lambda rows: rows and rows[-1]["status"] == "sent")
    with pind.db() as conn:
        rows = conn.execute("SELECT * FROM pins").fetchall()
    assert rows
    for row in rows:
        for col in row:
            if isinstance(col, str):
                assert pin not in col
            elif isinstance(col, bytes):
                assert pin.encode() not in col
    for row in outbox_rows(pind):
        if row["status"] == "sent":
            assert row["body"] is None, "SMS text kept after it was sent"
            assert row["sent_at"], row
            assert re.fullmatch(r"SM[0-9a-f]{32}", row["twilio_sid"] or ""), row


def test_outbox_row_matches_api_answer(pind, fake):
    _, req, _ = request_pin(pind, fake, BOB)
    fake.wait_answered(req)
    rows = wait_outbox(pind, lambda rows: any(r["twilio_sid"] == req.sid for r in rows))
    row = [r for r in rows if r["twilio_sid"] == req.sid][0]
    assert row["status"] == "sent", row
    assert row["to_phone"] == BOB
    assert row["attempts"] == 1
    assert row["http_status"] in (None, 201), row


def test_metrics(pind, fake):
    request_pin(pind, fake, ALICE)
    wait_outbox(pind, lambda rows: all(r["status"] == "sent" for r in rows))
    assert (pind.metric("twhookd_sms_total", '{result="sent"}') or 0) >= 1
    for result in ("retried", "failed", "expired"):
        assert pind.metric("twhookd_sms_total", f'{{result="{result}"}}') is not None, result
    deadline = time.monotonic() + 3
    while pind.metric("twhookd_outbox_queue_depth") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pind.metric("twhookd_outbox_queue_depth") == 0


# ------------------------------------------- messaging service, API key, log

def test_alt_sender_and_api_key(alt, fake):
    n0 = fake.count()
    r = alt.pin(ALICE, path="/hooks/pin")
    assert_empty_twiml(r)
    req = one_sms(fake, n0)
    pin = pin_of(req, ALT_MESSAGE, ALT_DIGITS)
    alt.issued_pins.add(pin)
    assert req.path == f"/2010-04-01/Accounts/{alt.account_sid}/Messages.json", req.path
    assert req.basic_auth() == (SK_SID, alt.api_key_secret)
    assert req.form["MessagingServiceSid"] == MG_SID
    assert "From" not in req.form
    assert req.form["To"] == ALICE
    assert 0 < int(req.form["ValidityPeriod"]) <= ALT_TTL
    assert_valid(alt.verify_pin(ALICE, pin), "alice")


def test_alt_default_route_not_served(alt, fake):
    n0 = fake.count()
    r = alt.pin(ALICE)                      # /sms/pin: route moved
    assert r.status_code == 404, (r.status_code, r.text)
    fake.assert_quiet(n0, wait=1.0)


def test_log_has_no_pin_or_secrets(alt, fake):
    for phone in (ALICE, UNKNOWN):
        n0 = fake.count()
        alt.pin(phone, path="/hooks/pin")
        if phone == ALICE:
            pin = pin_of(one_sms(fake, n0), ALT_MESSAGE, ALT_DIGITS)
            alt.issued_pins.add(pin)
            fake.wait_answered(fake.requests[n0])
            assert_invalid(alt.verify_pin(ALICE, other_pin(pin)))
            assert_valid(alt.verify_pin(ALICE, pin), "alice")
    alt.pin(ALICE, path="/hooks/pin", token="0" * 32)
    alt.admin_get("/metrics")
    wait_outbox(alt, lambda rows: rows and all(r["status"] == "sent" for r in rows))
    time.sleep(0.3)
    text = alt.log_text()
    assert text.strip(), "empty log"
    for pin in alt.issued_pins:
        assert not re.search(rf"(?<![0-9]){pin}(?![0-9])", text), "log contains a PIN"
    leaks = dict(alt.secrets_in_log())
    leaks["API key secret"] = alt.api_key_secret
    leaks["basic auth"] = base64.b64encode(f"{SK_SID}:{alt.api_key_secret}".encode()).decode()
    for label, secret in leaks.items():
        assert secret not in text, f"log contains {label}"


def test_pind_log_has_no_pin_or_secrets(pind):
    text = pind.log_text()
    for label, secret in pind.secrets_in_log().items():
        assert secret not in text, f"log contains {label}"
    # 6-digit PINs: only whole tokens between non-digits count, and only in
    # lines that are not pure timing noise.
    for pin in pind.issued_pins:
        for line in text.splitlines():
            if re.search(rf"(?<![0-9.:]){pin}(?![0-9])", line):
                pytest.fail(f"log line contains a PIN: {line}")


# -------------------------------------------------------------------- config

def _config_case(daemon_factory, fake, twilio=None, pin=None):
    d = daemon_factory.make(start=False, name="pin-cfg")
    write_secret(d.dir / "api_key_secret", "s" * 32)
    cfg = pin_config(fake, twilio=twilio, pin=pin)
    for keys in cfg.values():
        for k, v in keys.items():
            if isinstance(v, str):
                keys[k] = v.replace("{dir}", str(d.dir))
    d.merge_config(cfg)
    d.write_config()
    return d.cli("check-config")


@pytest.mark.parametrize("twilio,pin,key", [
    (None, {"digits": "3"}, "digits"),
    (None, {"digits": "11"}, "digits"),
    (None, {"ttl": "30s"}, "ttl"),
    (None, {"max_attempts": "0"}, "max_attempts"),
    (None, {"message": "Your code"}, "message"),
    (None, {"route": "sms/pin"}, "route"),
    ({"messaging_service_sid": MG_SID}, None, "messaging_service_sid"),
    ({"from_number": None, "messaging_service_sid": "MG1234"}, None, "messaging_service_sid"),
    ({"from_number": "5550000100"}, None, "from_number"),
    ({"api_key_sid": SK_SID}, None, "api_key"),
    ({"api_key_sid": "SK123", "api_key_secret_file": "{dir}/api_key_secret"}, None,
     "api_key_sid"),
    ({"api_base_url": "http://127.0.0.1:1"}, None, "api_base_url"),
], ids=["digits-3", "digits-11", "ttl-30s", "attempts-0", "no-placeholder", "route",
        "both-senders", "bad-mg", "bad-from", "key-no-secret", "bad-sk", "http-api"])
def test_check_config_refuses(daemon_factory, fake, twilio, pin, key):
    r = _config_case(daemon_factory, fake, twilio, pin)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(r"twhookd\.ini:\d+: ", r.stderr), r.stderr
    assert key in r.stderr, r.stderr


@pytest.mark.parametrize("twilio,pin", [
    (None, None),
    (None, {"digits": "4", "ttl": "60s", "max_attempts": "1", "message": "{pin}"}),
    (None, {"digits": "10", "ttl": "1h", "route": "/p", "message": "PIN {pin} ok"}),
    ({"from_number": None, "messaging_service_sid": MG_SID, "api_key_sid": SK_SID,
      "api_key_secret_file": "{dir}/api_key_secret", "status_route": "/s"}, None),
], ids=["defaults", "minimums", "maximums", "service-and-key"])
def test_check_config_accepts(daemon_factory, fake, twilio, pin):
    r = _config_case(daemon_factory, fake, twilio, pin)
    assert r.returncode == 0, (r.returncode, r.stderr)
