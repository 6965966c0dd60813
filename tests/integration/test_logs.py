"""Logging: one access line per request (status=, route=), and no secret ever
reaches the log: auth tokens, the admin token, reset tokens, full phone
numbers."""

import contextlib
import re
import socket
import time

import pytest
import requests

from harness import (ALICE, BOB, HTTP_TIMEOUT, LOG_WAIT, UNKNOWN, parse_status,
                     raw_exchange, token_from_twiml)


@pytest.fixture(scope="module")
def logd(module_daemon_factory):
    return _settled(module_daemon_factory.make(users={ALICE: "alice", BOB: "bob"},
                                               name="logs"))


def _settled(d):
    """d once the access line of its readiness probe is written: it lands
    after the answer, and must not be counted as a test's."""
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


# ----------------------------------------------- request data in the log line

def _new_access_lines(d, before, n=1):
    """Wait (bounded) for n access lines after the first before; return them."""
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline and len(d.access_lines()) < before + n:
        time.sleep(0.05)
    lines = d.access_lines()[before:]
    assert len(lines) >= n, f"no access line within {LOG_WAIT}s:\n{d.log_tail()}"
    return lines


def _fields(line):
    """An access line as {key: value}: split on spaces, as a naive reader
    would. Every key must be unique: a repeated one was forged."""
    words = line.split(" ")
    assert words[:3] == ["info:", "access", words[2]], line
    fields = {}
    for w in words[3:]:
        key, sep, value = w.partition("=")
        assert sep, f"a word that is not key=value: {w!r} in {line!r}"
        assert key not in fields, f"field {key} twice in {line!r}"
        fields[key] = value
    return fields


ACCESS_KEYS = ["id", "client", "method", "route", "status", "reason", "ms", "from",
               "sid", "twilio_idem", "ua"]
INJECTED = " status=200 reason=ok from=+15551234567"


def test_access_line_fields(logd):
    before = len(logd.access_lines())
    r = logd.reset(UNKNOWN, headers={"User-Agent": "TwilioProxy/1.1",
                                     "I-Twilio-Idempotency-Token": "0b3a4c5d-6e7f-4a8b"})
    assert r.status_code == 200, r.text
    f = _fields(_new_access_lines(logd, before)[0])
    assert list(f) == ACCESS_KEYS, f
    assert f["client"] == "127.0.0.1"
    assert (f["method"], f["route"], f["status"], f["reason"]) == ("POST", "reset", "200", "ok")
    assert f["twilio_idem"] == "0b3a4c5d-6e7f-4a8b"
    assert f["ua"] == '"TwilioProxy/1.1"'


@pytest.mark.parametrize("where", ["ua", "idem", "both"])
def test_injected_header_cannot_write_the_log(logd, where):
    # An unsigned request (403), so that a forged "status=200 reason=ok"
    # would contradict the real fields; with a terminal escape and bytes
    # that are not ASCII.
    evil = ("\x1b[31mred" + INJECTED + "\x1b[0m").encode() + b" \xc2\x9b\xff\xe2\x80\xae end\""
    headers = {}
    if where in ("ua", "both"):
        headers["User-Agent"] = evil
    if where in ("idem", "both"):
        headers["I-Twilio-Idempotency-Token"] = evil
    before = len(logd.access_lines())
    r = logd.post_signed(logd.params(ALICE), signature=False, headers=headers)
    assert r.status_code == 403, (r.status_code, r.text)
    line = _new_access_lines(logd, before)[0]
    f = _fields(line)
    assert list(f) == ACCESS_KEYS, line
    assert (f["status"], f["reason"], f["from"]) == ("403", "signature_missing", "-"), line
    if where in ("idem", "both"):
        assert f["twilio_idem"] == "invalid", line
    if where in ("ua", "both"):
        ua = f["ua"]
        assert ua.startswith('"') and ua.endswith('"') and '"' not in ua[1:-1], line
        assert ua.startswith('"\\x1b[31mred\\x20status=200'), line
    # Nothing but printable ASCII and line ends anywhere in the log.
    raw = logd.log_path.read_bytes()
    bad = sorted({b for b in raw if (b < 0x20 and b != 0x0a) or b >= 0x7f})
    assert not bad, f"log holds bytes {bad}"
    assert b" from=+15551234567" not in raw


def test_long_user_agent_is_cut(logd):
    before = len(logd.access_lines())
    r = logd.get("/healthz", headers={"User-Agent": "x" * 2000})
    assert r.status_code == 200
    ua = _fields(_new_access_lines(logd, before)[0])["ua"]
    assert ua.startswith('"xxx') and ua.endswith('..."'), ua
    assert len(ua) <= 128 + 2, len(ua)


def test_no_user_agent(logd):
    before = len(logd.access_lines())
    data, _ = raw_exchange(logd.port, logd.cert,
                           b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Connection: close\r\n\r\n")
    assert parse_status(data) == 200, data
    f = _fields(_new_access_lines(logd, before)[0])
    assert f["ua"] == "-" and f["twilio_idem"] == "-", f


@pytest.fixture(scope="module")
def proxied(module_daemon_factory):
    """The loopback peer is a trusted proxy."""
    return _settled(module_daemon_factory.make(
        config={"proxy": {"trusted": "127.0.0.0/8"}}, users={ALICE: "alice"},
        name="proxied"))


def _client_of(d, xff, path="/healthz"):
    before = len(d.access_lines())
    headers = {} if xff is None else {"X-Forwarded-For": xff}
    r = d.get(path, headers=headers)
    assert r.status_code == 200
    return _fields(_new_access_lines(d, before)[0])["client"]


def test_client_from_trusted_proxy(proxied):
    assert _client_of(proxied, "203.0.113.7") == "203.0.113.7"
    assert _client_of(proxied, "198.51.100.1, 203.0.113.7, 127.0.0.9") == "203.0.113.7"
    assert _client_of(proxied, "2001:db8::7") == "2001:db8::7"
    assert _client_of(proxied, None) == "127.0.0.1"


def test_client_from_trusted_proxy_on_a_webhook(proxied):
    before = len(proxied.access_lines())
    r = proxied.reset(ALICE, headers={"X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 200, r.text
    f = _fields(_new_access_lines(proxied, before)[0])
    assert (f["client"], f["route"], f["status"]) == ("203.0.113.7", "reset", "200"), f


@pytest.mark.parametrize("xff", ["garbage-203.0.113.99", "203.0.113.99:443",
                                 "203.0.113.99 status=200", "\x1b[31m203.0.113.99",
                                 "203.0.113.99, nonsense"])
def test_garbage_forwarded_for_never_echoed(proxied, xff):
    assert _client_of(proxied, xff) == "127.0.0.1"
    assert "203.0.113.99" not in proxied.log_text()
    assert "\x1b" not in proxied.log_text()


def test_forwarded_for_ignored_without_trust(logd):
    assert _client_of(logd, "203.0.113.8") == "127.0.0.1"
    assert "203.0.113.8" not in logd.log_text()


# ------------------------------------------------------- repeated lines

def _plain_http_to_tls(d):
    """One connection speaking plain HTTP to the TLS listener: libmicrohttpd
    logs a handshake error for it."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with contextlib.suppress(OSError):
            s.recv(100)


def _library_lines(d):
    return [l for l in d.log_text().splitlines() if "libmicrohttpd:" in l]


def test_library_messages_throttled(logd):
    before = len(_library_lines(logd))
    n = 100
    t0 = time.monotonic()
    for _ in range(n):
        _plain_http_to_tls(logd)
    elapsed = time.monotonic() - t0
    # The next one, past the throttle's second, goes out with the count.
    time.sleep(1.2)
    _plain_http_to_tls(logd)
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline and not (
            _library_lines(logd)[before:] and "(repeated" in _library_lines(logd)[-1]):
        time.sleep(0.05)
    lines = _library_lines(logd)[before:]
    assert 2 <= len(lines) <= elapsed + 3, "\n".join(lines)
    counts = [int(m.group(1)) for m in map(re.compile(r"\(repeated (\d+) times\)$").search, lines) if m]
    assert counts and sum(counts) + len(lines) <= n + 1, lines
    assert sum(counts) >= n // 2, lines


def test_journal_priorities(daemon_factory, monkeypatch):
    """When stderr is the journal (JOURNAL_STREAM names its device and inode)
    every line starts with its syslog priority; otherwise lines are plain."""
    d = daemon_factory.make(users={ALICE: "alice"}, start=False, name="journal")
    d.log_path.touch()
    st = d.log_path.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    d.start()
    assert d.reset(ALICE).status_code == 200
    assert d.post_signed(d.params(ALICE), token="0" * 32).status_code == 403
    assert d.stop() == 0
    lines = d.log_text().splitlines()
    assert lines and all(l[:3] in ("<3>", "<4>", "<6>", "<7>") for l in lines), lines[:5]
    assert any(l.startswith("<6>info: access public") for l in lines)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    d.start()
    assert d.stop() == 0
    tail = d.log_text().splitlines()[len(lines):]
    assert tail and not any(l.startswith("<") for l in tail), tail[:5]
