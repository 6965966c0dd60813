"""The SMS password-reset flow: TwiML reply, unknown numbers, idempotency
(retries and replays keyed by MessageSid), JSON webhooks, redemption."""

import base64
import json
import math
import re
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from harness import (ALICE, BOB, CAROL, HTTP_TIMEOUT, UNKNOWN, body_sha256,
                     new_message_sid, oracle_valid, parse_twiml, sign,
                     token_from_twiml)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,}$")  # base64url, >= 128 bits


def reset_token(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/xml"), r.headers
    token = token_from_twiml(r)
    assert token, r.text
    assert TOKEN_RE.match(token), token
    return token


# ------------------------------------------------------------------- the flow

def test_registered_number_gets_reset_link(live):
    r = live.reset(ALICE)
    token = reset_token(r)
    root, text = parse_twiml(r)
    assert text == f"Reset: https://app.example/reset?token={token}"
    assert [c.tag for c in root] == ["Message"]


def test_redeem_once(live):
    token = reset_token(live.reset(ALICE))
    r = live.redeem(token)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json() == {"user": "alice"} or r.json().get("user") == "alice"
    r = live.redeem(token)
    assert r.status_code == 410, (r.status_code, r.text)
    assert "alice" not in r.text


def test_token_belongs_to_sender(live):
    token = reset_token(live.reset(BOB))
    r = live.redeem(token)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "bob"


def test_each_message_gets_its_own_token(live):
    before = live.count_tokens()
    t1 = reset_token(live.reset(ALICE))
    t2 = reset_token(live.reset(ALICE))
    assert t1 != t2
    assert live.count_tokens() == before + 2


def test_token_stored_only_as_hash(live):
    token = reset_token(live.reset(ALICE))
    with live.db() as conn:
        rows = conn.execute("SELECT * FROM reset_tokens").fetchall()
    for row in rows:
        for col in row:
            if isinstance(col, str):
                assert token not in col
            elif isinstance(col, bytes):
                assert token.encode() not in col
    for suffix in ("", "-wal"):
        path = live.db_path.with_name(live.db_path.name + suffix)
        if path.exists():
            assert token.encode() not in path.read_bytes(), f"token in {path.name}"


def test_redeem_unknown_token(live):
    # 32 characters parse as a token with an id; anything else is no token
    # of ours. All unknown.
    for forged in ("A" * 32, "A" * 43, "A" * 31, "A" * 44, "!" * 32):
        r = live.redeem(forged)
        assert r.status_code == 404, (forged, r.status_code, r.text)


def test_token_carries_id_and_secret(live):
    """A token is 24 bytes in base64url: a masked record id, then 128 bits of
    secret. Changing either half finds nothing, however the record stands; the
    real token still redeems afterwards."""
    token = reset_token(live.reset(ALICE))
    assert len(token) == 32, token
    base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for i in (0, 5, 10, 11, 20, 31):
        c = "A" if token[i] != "A" else "B"
        forged = token[:i] + c + token[i + 1:]
        r = live.redeem(forged)
        assert r.status_code == 404, (i, r.status_code, r.text)
    r = live.redeem(token)
    assert r.status_code == 200, (r.status_code, r.text)
    # Spent now: a forged secret on its id is still unknown, not "spent".
    r = live.redeem(token[:20] + ("A" if token[20] != "A" else "B") + token[21:])
    assert r.status_code == 404, (r.status_code, r.text)
    assert live.redeem(token).status_code == 410


def test_tokens_do_not_count_webhooks(live):
    """Consecutive links show unrelated leading characters: the record id in
    a token is masked, so a user cannot read the service's volume off it."""
    t1 = reset_token(live.reset(ALICE))
    t2 = reset_token(live.reset(ALICE))
    same = sum(a == b for a, b in zip(t1[:10], t2[:10]))
    assert same < 4, (t1, t2)


def test_redeem_empty_token(live):
    r = live.redeem("")
    assert r.status_code in (400, 404), (r.status_code, r.text)


# ------------------------------------------------------------ unknown numbers

def test_unknown_number_empty_response(live):
    before = live.count_tokens()
    r = live.reset(UNKNOWN)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/xml")
    root, text = parse_twiml(r)
    assert text is None and len(root) == 0, r.text
    assert "token" not in r.text
    assert live.count_tokens() == before


def test_unknown_number_replay_same_answer(live):
    p = live.params(UNKNOWN)
    r1 = live.post_signed(p)
    r2 = live.post_signed(p)
    assert r1.status_code == r2.status_code == 200
    assert r1.content == r2.content


@pytest.fixture(scope="module")
def custom(module_daemon_factory):
    """unknown_reply set, and a link and message that need XML escaping."""
    return module_daemon_factory.make(
        config={"reset": {
            "link": "https://app.example/reset?token={token}&src=sms",
            "message": "Reset <now> & \"quickly\": {link}",
            "unknown_reply": "If this number is registered, you will get a link.",
        }},
        users={ALICE: "alice"}, name="custom")


def test_unknown_number_reply(custom):
    before = custom.count_tokens()
    r = custom.reset(UNKNOWN)
    assert r.status_code == 200, (r.status_code, r.text)
    _, text = parse_twiml(r)
    assert text == "If this number is registered, you will get a link."
    assert "token" not in r.text
    assert custom.count_tokens() == before


def test_known_and_unknown_look_alike(custom):
    known = custom.reset(ALICE)
    unknown = custom.reset(UNKNOWN)
    assert known.status_code == unknown.status_code == 200
    assert known.headers.get("Content-Type") == unknown.headers.get("Content-Type")


def test_twiml_is_xml_escaped(custom):
    r = custom.reset(ALICE)
    assert r.status_code == 200, r.text
    raw = r.text
    assert "&amp;src=sms" in raw, raw
    assert "&lt;now&gt;" in raw, raw
    assert "<now>" not in raw
    _, text = parse_twiml(r)
    assert text.startswith('Reset <now> & "quickly": https://app.example/reset?token=')
    link = text.split(": ", 1)[1]
    q = parse_qs(urlparse(link).query)
    assert q["src"] == ["sms"]
    assert TOKEN_RE.match(q["token"][0])
    custom.issued_tokens.add(q["token"][0])
    rd = custom.redeem(q["token"][0])
    assert rd.status_code == 200 and rd.json()["user"] == "alice", rd.text


# ---------------------------------------------------------------- idempotency

def test_retry_same_answer_one_token(live):
    p = live.params(ALICE)
    before = live.count_tokens()
    r1 = live.post_signed(p)
    r2 = live.post_signed(p)
    t1, t2 = reset_token(r1), reset_token(r2)
    assert t1 == t2
    assert r1.content == r2.content
    assert live.count_tokens() == before + 1
    assert live.redeem(t1).status_code == 200
    # A replay after redemption: same answer, still no second token, still spent.
    r3 = live.post_signed(p)
    assert r3.content == r1.content
    assert live.count_tokens() == before + 1
    assert live.redeem(t1).status_code == 410


def test_retry_with_fresh_idempotency_header(live):
    # I-Twilio-Idempotency-Token is not signed: it must not be the key.
    p = live.params(ALICE)
    before = live.count_tokens()
    r1 = live.post_signed(p, headers={"I-Twilio-Idempotency-Token": "one"})
    r2 = live.post_signed(p, headers={"I-Twilio-Idempotency-Token": "two"})
    assert reset_token(r1) == reset_token(r2)
    assert live.count_tokens() == before + 1


def test_retry_signed_with_secondary_token(live):
    p = live.params(ALICE)
    r1 = live.post_signed(p)
    r2 = live.post_signed(p, token=live.secondary_token)
    assert reset_token(r1) == reset_token(r2)


def test_concurrent_webhooks_one_token_each(live):
    # Webhooks arriving together share store commits (group commit): each
    # still gets its own link, its duplicate the same link, and every link
    # answered was committed before the answer left.
    params = [live.params(ALICE if i % 2 else BOB) for i in range(24)]
    before = live.count_tokens()
    with ThreadPoolExecutor(max_workers=16) as ex:
        replies = list(ex.map(live.post_signed, params + params))
    assert all(r.status_code == 200 for r in replies), [r.status_code for r in replies]
    first, again = replies[:len(params)], replies[len(params):]
    tokens = [reset_token(r) for r in first]
    assert [reset_token(r) for r in again] == tokens
    assert len(set(tokens)) == len(params)
    assert live.count_tokens() == before + len(params)
    for i, t in enumerate(tokens):
        rd = live.redeem(t)
        assert rd.status_code == 200, rd.text
        assert rd.json()["user"] == ("alice" if i % 2 else "bob")


def test_store_locked_gets_503_then_retry_succeeds(live):
    # Another process holds the store's write lock past the busy timeout:
    # the webhook is answered 503 (Twilio retries it) and leaves nothing
    # behind; the retry, once the lock is gone, gets its link.
    p = live.params(ALICE)
    before = live.count_tokens()
    conn = sqlite3.connect(str(live.db_path), timeout=5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        r = live.post_signed(p)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert r.status_code == 503, (r.status_code, r.text)
    assert "token" not in r.text
    assert live.count_tokens() == before
    token = reset_token(live.post_signed(p))
    assert live.count_tokens() == before + 1
    assert live.redeem(token).status_code == 200


def insert_running_claim(d, message_sid, route="reset"):
    """Put a webhook into the store as claimed and still running (state 1,
    just started: not stale), as a concurrent first delivery would."""
    with d.db() as conn:
        conn.execute("INSERT INTO webhooks (route, key, state, started_at)"
                     " VALUES (?, ?, 1, ?)", (route, message_sid, int(time.time())))
        conn.commit()


def test_duplicate_while_running_gets_503(live):
    p = live.params(ALICE)
    insert_running_claim(live, p["MessageSid"])
    before = live.count_tokens()
    r = live.post_signed(p)
    assert r.status_code == 503, (r.status_code, r.text)
    assert "token" not in r.text
    assert live.count_tokens() == before


def test_missing_message_sid_is_400(live):
    p = live.params(ALICE)
    del p["MessageSid"]
    before = live.count_tokens()
    r = live.post_signed(p)
    assert r.status_code == 400, (r.status_code, r.text)
    assert "token" not in r.text
    assert live.count_tokens() == before


def test_malformed_message_sid_is_400(live):
    p = live.params(ALICE, message_sid="SM" + "z" * 32)
    before = live.count_tokens()
    r = live.post_signed(p)
    assert r.status_code == 400, (r.status_code, r.text)
    assert live.count_tokens() == before


def test_unsigned_missing_sid_is_403_not_400(live):
    # Signature is checked first: an unsigned request learns nothing more.
    p = live.params(ALICE)
    del p["MessageSid"]
    r = live.post_signed(p, signature=False)
    assert r.status_code == 403


# ----------------------------------------------------------------------- JSON

def json_webhook(d, from_):
    d.phones.add(from_)
    return {"AccountSid": d.account_sid, "MessageSid": new_message_sid(),
            "From": from_, "To": "+15557654321", "Body": "RESET"}


def test_json_webhook_accepted(live):
    obj = json_webhook(live, ALICE)
    body = json.dumps(obj)
    url = live.url(f"/sms/reset?bodySHA256={body_sha256(body.encode())}")
    # The oracle agrees with the way this request is signed.
    assert oracle_valid(live.auth_token, url, body, sign(live.auth_token, url, {}))
    r = live.post_json(obj)
    token = reset_token(r)
    rd = live.redeem(token)
    assert rd.status_code == 200 and rd.json()["user"] == "alice"


def test_json_body_hash_mismatch(live):
    obj = json_webhook(live, ALICE)
    before = live.count_tokens()
    r = live.post_json(obj, hash_of=b'{"other": "body"}')
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.content == b""
    assert live.count_tokens() == before


def test_json_tampered_after_signing(live):
    obj = json_webhook(live, BOB)
    signed_body = json.dumps(obj).encode()
    url = live.url(f"/sms/reset?bodySHA256={body_sha256(signed_body)}")
    sig = sign(live.auth_token, url, {})
    sent = json.dumps(dict(obj, From=ALICE)).encode()
    before = live.count_tokens()
    r = requests.post(url, data=sent, verify=live.cert, timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json",
                               "X-Twilio-Signature": sig})
    assert r.status_code == 403, (r.status_code, r.text)
    assert live.count_tokens() == before


def test_json_without_body_hash(live):
    obj = json_webhook(live, ALICE)
    url = live.url("/sms/reset")
    sig = sign(live.auth_token, url, {})
    before = live.count_tokens()
    r = requests.post(url, data=json.dumps(obj), verify=live.cert, timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json",
                               "X-Twilio-Signature": sig})
    assert r.status_code == 403, (r.status_code, r.text)
    assert live.count_tokens() == before


def test_json_foreign_account(live):
    obj = dict(json_webhook(live, ALICE), AccountSid="AC" + "1" * 32)
    before = live.count_tokens()
    r = live.post_json(obj)
    assert r.status_code == 403, (r.status_code, r.text)
    assert live.count_tokens() == before


# -------------------------------------------------------------------- expiry

def test_expired_token_not_redeemable(daemon_factory):
    d = daemon_factory.make(users={CAROL: "carol"}, name="ttl")
    token = reset_token(d.reset(CAROL))
    # token_ttl has a 60 s minimum: age the token in the store instead.
    with d.db() as conn:
        conn.execute("UPDATE reset_tokens SET expires_at = ?", (int(time.time()) - 5,))
        conn.commit()
    r = d.redeem(token)
    assert r.status_code in (404, 410), (r.status_code, r.text)
    assert "carol" not in r.text


# -------------------------------------------------------------- replay window

UNKNOWN_REPLY = "If this number is registered, you will get a link."
REPLAYS = "twhookd_webhook_replays_total"


def replays(d):
    """(answered, refused) repeats so far."""
    return (d.metric(REPLAYS, '{result="answered"}'), d.metric(REPLAYS, '{result="refused"}'))


def age_record(d, message_sid, seconds, route="reset"):
    """Move a webhook's first arrival back in time, as if it came long ago."""
    with d.db() as conn:
        n = conn.execute("UPDATE webhooks SET started_at = started_at - ?"
                         " WHERE route = ? AND key = ?",
                         (seconds, route, message_sid)).rowcount
        conn.commit()
    assert n == 1, n


@pytest.fixture(scope="module")
def windowed(module_daemon_factory):
    """replay_window = 2s, and an unknown_reply that tells it from an empty answer."""
    return module_daemon_factory.make(
        config={"reset": {"replay_window": "2s", "unknown_reply": UNKNOWN_REPLY}},
        users={ALICE: "alice"}, name="windowed")


def test_replay_after_window_gets_no_link(windowed):
    d = windowed
    p = d.params(ALICE)
    sid = p["MessageSid"]
    before = d.count_tokens()
    answered, refused = replays(d)
    r1 = d.post_signed(p)
    first_done = time.time()
    token = reset_token(r1)
    # Twilio's retry, within the window: the same link, one token.
    r2 = d.post_signed(p)
    assert r2.content == r1.content
    assert d.count_tokens() == before + 1
    assert d.reasons(sid, 2) == ["ok", "retry"]
    assert replays(d) == (answered + 1, refused)
    # Past the window, counted in the store's whole seconds from the first
    # arrival (at most first_done): a replayed capture.
    time.sleep(max(0.0, math.floor(first_done) + 2 - time.time()) + 0.05)
    r3 = d.post_signed(p)
    assert r3.status_code == 200, (r3.status_code, r3.text)
    assert token_from_twiml(r3) is None and "token" not in r3.text, r3.text
    # What an unknown number gets, byte for byte.
    assert r3.content == d.reset(UNKNOWN).content
    _, text = parse_twiml(r3)
    assert text == UNKNOWN_REPLY
    assert d.reasons(sid, 3) == ["ok", "retry", "replay"]
    assert replays(d) == (answered + 1, refused + 1)
    # No side effect: no new token, and the one issued still redeems once.
    assert d.count_tokens() == before + 1
    rd = d.redeem(token)
    assert rd.status_code == 200 and rd.json()["user"] == "alice", rd.text
    assert d.redeem(token).status_code == 410
    r4 = d.post_signed(p, token=d.secondary_token)
    assert r4.content == r3.content
    assert d.count_tokens() == before + 1


def test_replay_of_unknown_number_looks_the_same(windowed):
    d = windowed
    p = d.params(UNKNOWN)
    r1 = d.post_signed(p)
    first_done = time.time()
    time.sleep(max(0.0, math.floor(first_done) + 2 - time.time()) + 0.05)
    r2 = d.post_signed(p)
    assert r1.status_code == r2.status_code == 200
    assert r1.content == r2.content
    assert d.reasons(p["MessageSid"], 2) == ["ok", "replay"]


def test_default_window_is_a_minute(live):
    # The default replay_window (60s) on the shared daemon: a retry gets the
    # link; once the record is a minute old, no link.
    p = live.params(ALICE)
    sid = p["MessageSid"]
    before = live.count_tokens()
    answered, refused = replays(live)
    token = reset_token(live.post_signed(p))
    assert reset_token(live.post_signed(p)) == token
    age_record(live, sid, 55)
    assert reset_token(live.post_signed(p)) == token
    age_record(live, sid, 6)
    r = live.post_signed(p)
    assert r.status_code == 200 and token_from_twiml(r) is None, r.text
    root, text = parse_twiml(r)
    assert text is None and len(root) == 0, r.text   # unknown_reply is empty here
    assert live.reasons(sid, 4) == ["ok", "retry", "retry", "replay"]
    assert replays(live) == (answered + 2, refused + 1)
    assert live.count_tokens() == before + 1
    assert live.redeem(token).status_code == 200


def test_window_zero_never_repeats_the_link(daemon_factory):
    d = daemon_factory.make(config={"reset": {"replay_window": "0"}},
                            users={ALICE: "alice"}, name="window0")
    p = d.params(ALICE)
    token = reset_token(d.post_signed(p))
    r = d.post_signed(p)
    assert r.status_code == 200 and token_from_twiml(r) is None, r.text
    assert d.reasons(p["MessageSid"], 2) == ["ok", "replay"]
    assert d.count_tokens() == 1
    assert d.redeem(token).status_code == 200
