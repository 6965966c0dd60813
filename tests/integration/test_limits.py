"""Rate limits: PINs and resets per number, and the global outbound SMS
budget. An over-limit webhook still gets the ordinary 200 TwiML answer but
causes no side effect; duplicates and forgeries never count; limits survive
a restart; [limits] values are validated."""

import re

import pytest

from fake_twilio import pin_config
from harness import ALICE, BOB, CAROL, EMPTY_TWIML, LIMITS_OFF, parse_twiml, token_from_twiml


def assert_empty_twiml(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/xml"), r.headers
    assert r.text.strip() == EMPTY_TWIML, r.text


def limits(**kw):
    out = dict(LIMITS_OFF)
    out.update(kw)
    return out


def limited(d, limit):
    return d.metric("twhookd_rate_limited_total", f'{{limit="{limit}"}}') or 0


# ---------------------------------------------------------------------- PINs

def test_pin_per_number(daemon_factory, fake_twilio_api):
    fake = fake_twilio_api
    d = daemon_factory.make(config=pin_config(fake, limits=limits(pin_per_number="2/1h")),
                            users={ALICE: "alice", BOB: "bob"}, name="pin-limit")
    for _ in range(2):
        assert_empty_twiml(d.pin(ALICE))
    fake.wait_for_requests(2)
    p = d.params(ALICE, body="PIN")
    r3 = d.post_signed(p, path="/sms/pin")
    assert_empty_twiml(r3)
    # A retry of the refused webhook: the same answer, still nothing sent.
    assert d.post_signed(p, path="/sms/pin").content == r3.content
    # Another number has its own allowance.
    assert_empty_twiml(d.pin(BOB))
    reqs = fake.wait_for_requests(3)
    assert [q.form["To"] for q in reqs] == [ALICE, ALICE, BOB]
    fake.assert_quiet(3)
    assert limited(d, "per_number") >= 1
    assert limited(d, "outbound_budget") == 0


def test_duplicates_and_forgeries_do_not_count(daemon_factory, fake_twilio_api):
    fake = fake_twilio_api
    d = daemon_factory.make(config=pin_config(fake, limits=limits(pin_per_number="1/1h")),
                            users={ALICE: "alice"}, name="pin-limit-1")
    for _ in range(3):
        assert d.pin(ALICE, token="0" * 32).status_code == 403
    assert d.pin(ALICE, signature=False).status_code == 403
    p = d.params(ALICE, body="PIN")
    for _ in range(3):
        assert_empty_twiml(d.post_signed(p, path="/sms/pin"))
    fake.wait_for_requests(1)
    assert limited(d, "per_number") == 0
    assert_empty_twiml(d.pin(ALICE))        # the second distinct request: refused
    fake.assert_quiet(1)
    assert limited(d, "per_number") >= 1


def test_outbound_budget(daemon_factory, fake_twilio_api):
    fake = fake_twilio_api
    d = daemon_factory.make(config=pin_config(fake, limits=limits(outbound_budget="1/1h")),
                            users={ALICE: "alice", BOB: "bob"}, name="budget")
    assert_empty_twiml(d.pin(ALICE))
    assert fake.wait_for_requests(1)[0].form["To"] == ALICE
    assert_empty_twiml(d.pin(BOB))
    fake.assert_quiet(1)
    assert limited(d, "outbound_budget") >= 1
    with d.db() as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
        n = conn.execute("SELECT count(*) FROM pins WHERE phone = ?", (BOB,)).fetchone()[0]
    assert n == 0, "a PIN was stored that will never be sent"


# -------------------------------------------------------------------- resets

def test_reset_per_number(daemon_factory):
    d = daemon_factory.make(config={"limits": limits(reset_per_number="1/1h")},
                            users={ALICE: "alice", BOB: "bob"}, name="reset-limit")
    p1 = d.params(ALICE)
    r1 = d.post_signed(p1)
    t1 = token_from_twiml(r1)
    assert t1, r1.text
    r2 = d.reset(ALICE)
    assert r2.status_code == 200, r2.text
    _, text = parse_twiml(r2)
    assert text is None, r2.text
    assert "token" not in r2.text
    # The first webhook retried: the recorded answer, not a refusal.
    assert d.post_signed(p1).content == r1.content
    assert token_from_twiml(d.reset(BOB)), "another number was limited"
    assert d.count_tokens() == 2
    assert limited(d, "per_number") >= 1
    # The window is in the store: a restart does not reset it.
    assert d.stop() == 0
    d.start()
    r3 = d.reset(ALICE)
    assert r3.status_code == 200 and "token" not in r3.text, r3.text
    assert d.count_tokens() == 2


def test_reset_limit_with_unknown_reply(daemon_factory):
    reply = "If this number is registered, you will get a link."
    d = daemon_factory.make(config={"limits": limits(reset_per_number="1/1h"),
                                    "reset": {"unknown_reply": reply}},
                            users={ALICE: "alice"}, name="reset-limit-reply")
    assert token_from_twiml(d.reset(ALICE))
    r = d.reset(ALICE)
    assert r.status_code == 200, r.text
    _, text = parse_twiml(r)
    assert text in (None, reply), r.text
    assert "token" not in r.text


def test_default_reset_limit_is_3_per_hour(daemon_factory):
    d = daemon_factory.make(config={"limits": {k: None for k in LIMITS_OFF}},
                            users={CAROL: "carol"}, name="reset-default")
    assert "reset_per_number" not in d.config_text()
    tokens = [token_from_twiml(d.reset(CAROL)) for _ in range(4)]
    assert all(tokens[:3]), tokens
    assert tokens[3] is None
    assert d.count_tokens() == 3


# -------------------------------------------------------------------- config

@pytest.mark.parametrize("value", ["off", "1/1s", "10/30s", "5/1h", "1000/24h"])
def test_limit_values_accepted(daemon_factory, value):
    d = daemon_factory.make(start=False, config={"limits": limits(pin_per_number=value)},
                            name="lim-ok")
    r = d.cli("check-config")
    assert r.returncode == 0, (value, r.stderr)


@pytest.mark.parametrize("value", ["0/1h", "abc", "5", "5/", "/1h", "-1/1h", "5/0s",
                                   "5/1x", "5/1h/2", "on", "1.5/1h"])
def test_limit_values_refused(daemon_factory, value):
    d = daemon_factory.make(start=False, config={"limits": limits(outbound_budget=value)},
                            name="lim-bad")
    r = d.cli("check-config")
    assert r.returncode == 1, (value, r.returncode, r.stderr)
    assert re.search(r"twhookd\.ini:\d+: ", r.stderr), r.stderr
    assert "outbound_budget" in r.stderr, r.stderr


def test_unknown_limit_key_refused(daemon_factory):
    d = daemon_factory.make(start=False, config={"limits": {"per_ip": "5/1h"}},
                            name="lim-key")
    r = d.cli("check-config")
    assert r.returncode == 1, r.stderr
    assert "per_ip" in r.stderr, r.stderr
