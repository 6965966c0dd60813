"""HTTP surface: statuses for size, media type, routes and methods; probes;
the admin listener's authentication and metrics; TLS versions."""

import json
import socket
import ssl

import pytest
import requests

from harness import ALICE, HTTP_TIMEOUT, token_from_twiml


@pytest.fixture(scope="module")
def small(module_daemon_factory):
    return module_daemon_factory.make(config={"server": {"max_body": "1k"}},
                                      users={ALICE: "alice"}, name="small")


# -------------------------------------------------------------- body and type

def test_body_over_max_body_is_413(small):
    p = small.params(ALICE)
    p["Body"] = "x" * 4096
    before = small.count_tokens()
    r = small.post_signed(p)
    assert r.status_code == 413, (r.status_code, r.text)
    assert small.count_tokens() == before


def test_serving_continues_after_413(small):
    p = small.params(ALICE)
    p["Body"] = "y" * 4096
    try:
        small.post_signed(p)
    except requests.ConnectionError:
        pass  # judged by the previous test; here only what follows matters
    assert small.get("/healthz").status_code == 200
    r = small.reset(ALICE)
    assert r.status_code == 200 and token_from_twiml(r), (r.status_code, r.text)


def test_body_under_max_body_accepted(small):
    p = small.params(ALICE)
    p["Body"] = "z" * 200
    r = small.post_signed(p)
    assert r.status_code == 200, (r.status_code, r.text)


@pytest.mark.parametrize("ctype", ["text/plain", "multipart/form-data; boundary=x",
                                   "application/xml"])
def test_other_content_type_is_415(live, ctype):
    p = live.params(ALICE)
    before = live.count_tokens()
    r = live.post_signed(p, headers={"Content-Type": ctype})
    assert r.status_code == 415, (r.status_code, r.text)
    assert live.count_tokens() == before


def test_missing_content_type_is_415(live):
    from urllib.parse import urlencode
    from harness import sign
    p = live.params(ALICE)
    body = urlencode(p).encode()
    sig = sign(live.auth_token, live.url(), p)
    # requests adds no Content-Type for a bytes body.
    r = requests.post(live.url(), data=body, verify=live.cert, timeout=HTTP_TIMEOUT,
                      headers={"X-Twilio-Signature": sig})
    assert "Content-Type" not in r.request.headers
    assert r.status_code == 415, (r.status_code, r.text)


def test_content_type_with_charset_accepted(live):
    r = live.post_signed(live.params(ALICE), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert r.status_code == 200, (r.status_code, r.text)


def test_malformed_form_body(live):
    # A bad %-escape is not a form Twilio sends.
    r = live.post_signed(live.params(ALICE), data="Body=%zz&From=%2B15550000001",
                         signature="A" * 27 + "=")
    assert r.status_code in (400, 403), (r.status_code, r.text)


# ------------------------------------------------------------ routes, methods

@pytest.mark.parametrize("method,path", [
    ("POST", "/nope"), ("GET", "/nope"), ("POST", "/sms/reset/x"),
    ("POST", "/SMS/RESET"), ("POST", "/v1/reset-tokens/redeem"), ("GET", "/metrics"),
])
def test_unknown_path_is_404(live, method, path):
    r = requests.request(method, live.url(path), data=b"a=b", verify=live.cert,
                         timeout=HTTP_TIMEOUT,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 404, (r.status_code, r.text)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(live, method):
    r = requests.request(method, live.url("/sms/reset"), verify=live.cert,
                         timeout=HTTP_TIMEOUT)
    assert r.status_code == 405, (r.status_code, r.text)
    allow = r.headers.get("Allow")
    if allow is not None:
        assert "POST" in allow


def test_healthz(live):
    r = live.get("/healthz")
    assert r.status_code == 200


def test_readyz(live):
    r = live.get("/readyz")
    assert r.status_code == 200


def test_post_healthz_not_allowed(live):
    r = requests.post(live.url("/healthz"), verify=live.cert, timeout=HTTP_TIMEOUT)
    assert r.status_code == 405, (r.status_code, r.text)


# ---------------------------------------------------------------------- admin

@pytest.mark.parametrize("auth", [
    None, "", "Bearer", "Bearer ", "Bearer wrong-token", "Basic YWRtaW46YWRtaW4=",
    "bearer-{token}", "Bearer {token}x", "Bearer {short}",
])
def test_redeem_requires_admin_bearer(live, auth):
    token = token_from_twiml(live.reset(ALICE))
    assert token
    if auth is None:
        r = live.redeem(token, bearer=False)
    else:
        value = auth.format(token=live.admin_token, short=live.admin_token[:-1])
        r = live.redeem(token, bearer=value) if value else \
            requests.post(live.admin_url("/v1/reset-tokens/redeem"),
                          data=json.dumps({"token": token}), timeout=HTTP_TIMEOUT,
                          headers={"Authorization": "",
                                   "Content-Type": "application/json"})
    assert r.status_code == 401, (r.status_code, r.text)
    assert "alice" not in r.text
    # The refused attempt did not spend the token.
    ok = live.redeem(token)
    assert ok.status_code == 200, (ok.status_code, ok.text)


def test_auth_token_is_not_an_admin_token(live):
    r = live.redeem("x", bearer=f"Bearer {live.auth_token}")
    assert r.status_code == 401


@pytest.mark.parametrize("raw", ["{", "not json", "[]", '"token"', '{"token": 5}',
                                 '{"tok": "abc"}', ""])
def test_redeem_malformed_json_is_400(live, raw):
    r = live.redeem(None, raw=raw)
    assert r.status_code == 400, (raw, r.status_code, r.text)


def test_redeem_oversized_body(live):
    raw = json.dumps({"token": "a" * 100_000})
    r = live.redeem(None, raw=raw)
    assert r.status_code in (400, 413), (r.status_code, r.text)


def test_metrics(live):
    live.reset(ALICE)
    r = live.admin_get("/metrics")
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/plain")
    lines = [l for l in r.text.splitlines() if l and not l.startswith("#")]
    assert any(l.startswith("twhookd_") for l in lines), r.text
    for l in lines:
        name, _, value = l.rpartition(" ")
        assert name, l
        float(value)


def test_metrics_carry_no_secrets(live):
    r = live.admin_get("/metrics")
    assert live.auth_token not in r.text
    assert live.admin_token not in r.text
    for t in live.issued_tokens:
        assert t not in r.text


# The token comes before the route: without it every path, known or not,
# answers the same 401, so the routes cannot be discovered.
@pytest.mark.parametrize("bearer", [False, "Bearer wrong-token"])
@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/nope"),                        # unknown path
    ("POST", "/v1/reset-tokens"),               # a prefix of a route
    ("GET", "/metrics"),                        # known route
    ("POST", "/v1/pins/verify"),                # known route
    ("GET", "/v1/pins/verify"),                 # known path, wrong method
])
def test_admin_token_before_route(live, bearer, method, path):
    headers = {"Authorization": bearer} if bearer else {}
    r = requests.request(method, live.admin_url(path), headers=headers,
                         timeout=HTTP_TIMEOUT)
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert r.json() == {"error": "bearer token required"}
    assert "Allow" not in r.headers


def test_admin_unknown_path_with_token_is_404(live):
    r = live.admin_get("/v1/nope")
    assert r.status_code == 404, (r.status_code, r.text)


def test_admin_wrong_method_with_token_is_405(live):
    r = requests.get(live.admin_url("/v1/pins/verify"), timeout=HTTP_TIMEOUT,
                     headers={"Authorization": f"Bearer {live.admin_token}"})
    assert r.status_code == 405, (r.status_code, r.text)
    assert r.headers.get("Allow") == "POST"


def test_admin_bad_framing_before_token(live):
    # Framing comes first: two Content-Length headers are 400 (and closed)
    # even without a token.
    with socket.create_connection(("127.0.0.1", live.admin_port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"POST /v1/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}")
        data, closed = b"", False
        for _ in range(100):
            try:
                chunk = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                closed = True
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert closed, "connection left open after bad framing"


def test_admin_does_not_serve_webhooks(live):
    r = requests.post(live.admin_url("/sms/reset"), data={"a": "b"},
                      headers={"Authorization": f"Bearer {live.admin_token}"},
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, (r.status_code, r.text)


# ------------------------------------------------------------------------ TLS

def _handshake(d, min_v, max_v, seclevel0=False):
    ctx = ssl.create_default_context(cafile=str(d.cert))
    ctx.minimum_version = min_v
    ctx.maximum_version = max_v
    if seclevel0:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.version()


@pytest.mark.parametrize("ver", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_13_accepted(live, ver):
    assert _handshake(live, ver, ver) == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                          ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[ver]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("ver", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_refused(live, ver):
    # The client can speak these (SECLEVEL=0); a refusal is the daemon's.
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        _handshake(live, ver, ver, seclevel0=True)
    assert live.get("/healthz").status_code == 200


def test_plain_http_on_tls_port_gets_no_answer(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as s:
        s.settimeout(3)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            data = b""
    assert not data.startswith(b"HTTP/1.1 200"), data
