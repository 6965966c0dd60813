"""Logging: one access line per request (status=, route=), and no secret ever
reaches the log: auth tokens, the admin token, reset tokens, full phone
numbers."""

import time

import pytest
import requests

from harness import ALICE, BOB, HTTP_TIMEOUT, LOG_WAIT, UNKNOWN, token_from_twiml


@pytest.fixture(scope="module")
def logd(module_daemon_factory):
    d = module_daemon_factory.make(users={ALICE: "alice", BOB: "bob"}, name="logs")
    # The readiness probe's access line is written after its answer went out:
    # wait for it, so that it is not taken for a line of the first test.
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline and not d.access_lines():
        time.sleep(0.05)
    return d


def _req_reset(d):
    return d.reset(ALICE), 200


def _req_unknown(d):
    return d.reset(UNKNOWN), 200


def _req_forged(d):
    return d.post_signed(d.params(ALICE), token="0" * 32), 403


def _req_unsigned(d):
    return d.post_signed(d.params(ALICE), signature=False), 403


def _req_bad_sid(d):
    p = d.params(ALICE)
    del p["MessageSid"]
    return d.post_signed(p), 400


def _req_not_found(d):
    return requests.post(d.url("/nope"), verify=d.cert, timeout=HTTP_TIMEOUT), 404


def _req_method(d):
    return d.get("/sms/reset"), 405


def _req_media(d):
    return d.post_signed(d.params(ALICE), headers={"Content-Type": "text/plain"}), 415


def _req_healthz(d):
    return d.get("/healthz"), 200


def _req_readyz(d):
    return d.get("/readyz"), 200


KINDS = [_req_reset, _req_unknown, _req_forged, _req_unsigned, _req_bad_sid,
         _req_not_found, _req_method, _req_media, _req_healthz, _req_readyz]


@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__[5:] for k in KINDS])
def test_one_access_line_per_request(logd, kind):
    before = len(logd.access_lines())
    r, expected = kind(logd)
    assert r.status_code == expected, (r.status_code, r.text)
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline and len(logd.access_lines()) <= before:
        time.sleep(0.05)
    time.sleep(0.2)  # a second line for the same request would show up by now
    new = logd.access_lines()[before:]
    assert len(new) == 1, f"expected one access line, got {len(new)}:\n" + "\n".join(new)
    assert f"status={expected}" in new[0], new[0]
    assert "route=" in new[0], new[0]


def _traffic(d):
    """A bit of everything that could leak: tokens issued and redeemed,
    forgeries, unknown numbers, JSON, admin calls with good and bad bearers."""
    r = d.reset(ALICE)
    token = token_from_twiml(r)
    assert token, r.text
    assert d.redeem(token).status_code == 200
    assert d.redeem(token).status_code == 410
    assert d.redeem(token, bearer=f"Bearer {d.auth_token}").status_code == 401
    assert d.redeem(token, bearer="Bearer " + d.admin_token[:-2]).status_code == 401
    d.reset(BOB)                                    # issued, never redeemed
    d.post_signed(d.params(BOB))
    d.reset(UNKNOWN)
    d.post_signed(d.params(ALICE), token=d.secondary_token)
    d.post_signed(d.params(ALICE), token="0" * 32)   # forged
    d.post_signed(d.params(ALICE), signature=False)
    p = d.params(BOB)
    d.post_signed(dict(p, From=ALICE), sign_params=p)  # tampered From
    d.post_json({"AccountSid": d.account_sid, "MessageSid": "SM" + "d" * 32,
                 "From": ALICE, "To": "+15557654321", "Body": "RESET"})
    d.admin_get("/metrics")
    assert d.issued_tokens


def assert_log_clean(d):
    text = d.log_text()
    assert text.strip(), "empty log"
    for label, secret in d.secrets_in_log().items():
        assert secret not in text, f"log contains {label}"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_has_no_secrets(daemon_factory, level):
    d = daemon_factory.make(config={"log": {"level": level}},
                            users={ALICE: "alice", BOB: "bob"}, name=f"leak-{level}")
    _traffic(d)
    assert d.stop() == 0
    assert_log_clean(d)


def test_phone_numbers_masked_in_access_log(logd):
    before = len(logd.access_lines())
    logd.reset(ALICE)
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline and len(logd.access_lines()) <= before:
        time.sleep(0.05)
    new = "\n".join(logd.access_lines()[before:])
    assert ALICE not in new
    if "******" in new:
        assert "+1******0001" in new, new


def test_shared_daemon_log_has_no_secrets(live):
    assert_log_clean(live)


def test_module_daemon_log_has_no_secrets(logd):
    assert_log_clean(logd)
