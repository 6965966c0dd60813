"""X-Twilio-Signature: what is accepted and every forgery that must not be.

Signatures come from python3-twilio's RequestValidator. A forged request is
one a registered number sent, so a daemon that let it through would answer
with a reset token: each 403 case also checks that no token was issued.
"""

from urllib.parse import quote, urlencode, urlsplit

import pytest

from harness import ALICE, BOB, SERVICE, oracle_valid, sign, token_from_twiml, twilio_params


def assert_forbidden(d, r, before):
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.content == b"", r.text
    assert "token=" not in r.text
    assert d.count_tokens() == before, "a reset token was issued for a forged request"


def assert_accepted(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/xml")
    assert token_from_twiml(r), r.text


# ---------------------------------------------------------------- acceptance

def test_valid_signature_accepted(live):
    assert_accepted(live.reset(ALICE))


def test_secondary_auth_token_accepted(live):
    assert_accepted(live.post_signed(live.params(BOB), token=live.secondary_token))


def test_query_string_is_signed(live):
    r = live.post_signed(live.params(ALICE), path="/sms/reset?x=1")
    assert_accepted(r)


def test_query_string_signed_exactly_as_sent(live):
    # Twilio signs the request-target as sent: never re-ordered or decoded.
    path = "/sms/reset?b=2&a=1&c=a%20b"
    assert_accepted(live.post_signed(live.params(ALICE), path=path))


@pytest.mark.parametrize("signed_path", [
    "/sms/reset?a=1&b=2",       # re-ordered
    "/sms/reset?b=2&a=1&c=a b",  # decoded
    "/sms/reset",               # query dropped
])
def test_query_string_altered_rejected(live, signed_path):
    before = live.count_tokens()
    r = live.post_signed(live.params(ALICE), path="/sms/reset?b=2&a=1&c=a%20b",
                         sign_url=live.url(signed_path))
    assert_forbidden(live, r, before)


def test_unsigned_query_added_rejected(live):
    before = live.count_tokens()
    r = live.post_signed(live.params(ALICE), path="/sms/reset?x=1",
                         sign_url=live.url("/sms/reset"))
    assert_forbidden(live, r, before)


def test_special_characters_in_params(live):
    # Decoded values are signed: '+', '&', '=', '%', spaces, UTF-8, empty
    # values; names sorted by bytes (upper case before lower case).
    p = live.params(ALICE)
    p["Body"] = "RESET + please & thanks = 100% é 🙂"
    p["ZZZ"] = "last upper"
    p["aaa"] = "first lower"
    p["Empty"] = ""
    p["MediaUrl0"] = "https://example.com/a?b=c&d=e"
    assert_accepted(live.post_signed(p))


def test_form_encoding_with_percent_escapes(live):
    # quote() style (%20) rather than '+' for spaces: same decoded params.
    p = live.params(ALICE)
    p["Body"] = "please reset my password"
    body = urlencode(p, quote_via=quote)
    assert "%20" in body
    assert_accepted(live.post_signed(p, data=body))


# ---------------------------------------------------------------- forgeries

def test_missing_signature(live):
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(live.params(ALICE), signature=False), before)


def test_empty_signature(live):
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(live.params(ALICE), signature=""), before)


@pytest.mark.parametrize("pos", [0, 13, 26])
def test_flipped_byte(live, pos):
    p = live.params(ALICE)
    sig = sign(live.auth_token, live.url(), p)
    c = sig[pos]
    flipped = sig[:pos] + ("A" if c != "A" else "B") + sig[pos + 1:]
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(p, signature=flipped), before)


@pytest.mark.parametrize("bad", [
    "not-a-signature",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" + "A",        # 29 chars
    "AAAAAAAAAAAAAAAAAAAAAAAAAAA",               # 27 chars
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!=",              # 28 chars, not base64
])
def test_malformed_signature(live, bad):
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(live.params(ALICE), signature=bad), before)


def test_signature_is_sha1_not_sha256(live):
    import base64
    import hashlib
    import hmac
    p = live.params(ALICE)
    s = live.url() + "".join(k + v for k, v in sorted(p.items()))
    sig256 = base64.b64encode(hmac.new(live.auth_token.encode(), s.encode(),
                                       hashlib.sha256).digest()).decode()
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(p, signature=sig256), before)


def test_wrong_token(live):
    before = live.count_tokens()
    r = live.post_signed(live.params(ALICE), token="0" * 32)
    assert_forbidden(live, r, before)


def test_admin_token_is_not_an_auth_token(live):
    before = live.count_tokens()
    r = live.post_signed(live.params(ALICE), token=live.admin_token)
    assert_forbidden(live, r, before)


def test_tampered_from(live):
    # Signed for bob's number, then From changed to alice's.
    signed = live.params(BOB)
    sent = dict(signed, From=ALICE)
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(sent, sign_params=signed), before)


def test_tampered_body(live):
    signed = live.params(ALICE, body="HELLO")
    sent = dict(signed, Body="RESET")
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(sent, sign_params=signed), before)


def test_extra_param(live):
    signed = live.params(ALICE)
    sent = dict(signed, Extra="1")
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(sent, sign_params=signed), before)


def test_removed_param(live):
    signed = live.params(ALICE)
    sent = dict(signed)
    del sent["FromCity"]
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(sent, sign_params=signed), before)


def test_repeated_param_not_signed(live):
    # A second From appended to a correctly signed body.
    p = live.params(BOB)
    body = urlencode(p) + "&" + urlencode({"From": ALICE})
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(p, data=body), before)


def test_foreign_account_sid(live):
    # Signed correctly with the right token, but for another account.
    p = twilio_params("AC" + "0" * 32, ALICE)
    before = live.count_tokens()
    assert_forbidden(live, live.post_signed(p), before)


def test_missing_account_sid(live):
    p = live.params(ALICE)
    del p["AccountSid"]
    before = live.count_tokens()
    r = live.post_signed(p)
    assert r.status_code in (400, 403), (r.status_code, r.text)
    assert "token=" not in r.text
    assert live.count_tokens() == before


def test_signature_for_other_route(live):
    # A signature made for /sms/pin does not open /sms/reset.
    p = live.params(ALICE)
    before = live.count_tokens()
    r = live.post_signed(p, sign_url=live.url("/sms/pin"))
    assert_forbidden(live, r, before)


def test_untrusted_forwarded_headers_ignored(live):
    # No [proxy] trusted: X-Forwarded-* from 127.0.0.1 must not change the URL.
    p = live.params(ALICE)
    before = live.count_tokens()
    r = live.post_signed(p, sign_url="http://evil.example/sms/reset",
                         headers={"X-Forwarded-Proto": "http",
                                  "X-Forwarded-Host": "evil.example"})
    assert_forbidden(live, r, before)
    # ... and they do not break a correctly signed request either.
    r = live.post_signed(live.params(ALICE),
                         headers={"X-Forwarded-Proto": "http",
                                  "X-Forwarded-Host": "evil.example"})
    assert_accepted(r)


# ------------------------------------------ the Host header never builds the URL

@pytest.mark.parametrize("signed_for", [
    "https://evil.example/sms/reset",
    "https://other-app.example:8443/sms/reset",
    "http://127.0.0.1:{port}/sms/reset",            # another scheme
    "https://127.0.0.1:{port}/other/sms/reset",     # another path prefix
])
@pytest.mark.parametrize("host", ["signed", "ours", "none"])
def test_url_not_configured_refused_whatever_the_host(live, signed_for, host):
    """A request signed for another app of the same account (a URL not in
    public_url) is refused, even with a Host naming the signed URL's host:
    the Host only picks among configured URLs."""
    url = signed_for.format(port=live.port)
    headers = {"signed": {"Host": urlsplit(url).netloc},
               "ours": {},
               "none": {"Host": ""}}[host]
    p = live.params(ALICE)
    sig = sign(live.auth_token, url, p)
    assert not oracle_valid(live.auth_token, live.url(), p, sig), \
        "test vector disagrees with the oracle"
    before = live.count_tokens()
    r = live.post_signed(p, signature=sig, headers=headers)
    assert_forbidden(live, r, before)


@pytest.mark.parametrize("host", [
    "lb-rewrote-this.internal",     # a load balancer set its own Host
    "127.0.0.1",                    # the port dropped
    "10.0.0.7:8443",
])
def test_host_matching_no_url_still_validates(live, host):
    """When the Host names no configured URL, every configured URL is tried:
    a load balancer that rewrites Host breaks nothing."""
    r = live.post_signed(live.params(ALICE), headers={"Host": host})
    assert_accepted(r)


# ------------------------------------------------ several configured URLs

URL_A = "https://sms-a.example.test"
URL_B = "https://sms-b.example.test:8443/app"


@pytest.fixture(scope="module")
def multi(module_daemon_factory):
    return module_daemon_factory.make(
        config={"twilio": {"public_url": f"{URL_A} {URL_B}/"}},
        users={ALICE: "alice"}, name="multi")


@pytest.mark.parametrize("base", [URL_A, URL_B])
@pytest.mark.parametrize("host", ["own", "other", "unrelated", "default"])
def test_each_configured_url_validates(multi, base, host):
    """Each URL of the list validates, whichever Host arrives: its own, the
    other configured one (a load balancer fronting both names), one naming
    neither, or the client's own (127.0.0.1:port)."""
    own = urlsplit(base).netloc
    other = urlsplit(URL_B if base == URL_A else URL_A).netloc
    headers = {"own": {"Host": own}, "other": {"Host": other},
               "unrelated": {"Host": "lb.internal"}, "default": {}}[host]
    p = multi.params(ALICE)
    sig = sign(multi.auth_token, base + "/sms/reset", p)
    assert_accepted(multi.post_signed(p, signature=sig, headers=headers))


def test_configured_url_with_default_port_variant(multi):
    # Twilio's add-port rule still holds for each URL of the list.
    p = multi.params(ALICE)
    sig = sign(multi.auth_token, "https://sms-a.example.test:443/sms/reset", p)
    assert_accepted(multi.post_signed(p, signature=sig,
                                      headers={"Host": "sms-a.example.test"}))


@pytest.mark.parametrize("signed_for", [
    "https://sms-c.example.test/sms/reset",               # not in the list
    "https://sms-b.example.test:8443/sms/reset",          # B without its prefix
    "https://sms-b.example.test:9443/app/sms/reset",      # B on another port
    "https://127.0.0.1:{port}/sms/reset",                 # the address it listens on
])
def test_url_outside_the_list_refused(multi, signed_for):
    url = signed_for.format(port=multi.port)
    p = multi.params(ALICE)
    sig = sign(multi.auth_token, url, p)
    for base in (URL_A, URL_B):
        assert not oracle_valid(multi.auth_token, base + "/sms/reset", p, sig), \
            "test vector disagrees with the oracle"
    before = multi.count_tokens()
    r = multi.post_signed(p, sign_url=url, headers={"Host": urlsplit(url).netloc})
    assert_forbidden(multi, r, before)


# ------------------------------------------- URL variants, judged by the oracle

@pytest.mark.parametrize("signed", [
    "https://127.0.0.1:{port}/sms/reset",
    "https://127.0.0.1/sms/reset",
    "https://127.0.0.1:443/sms/reset",
    "http://127.0.0.1:{port}/sms/reset",
    "https://localhost:{port}/sms/reset",
    "https://127.0.0.1:{port}/sms/reset/",
])
def test_url_variants_agree_with_twilio_library(live, signed):
    """Whatever URL the signature was made over, the daemon accepts exactly
    when RequestValidator.validate (which tries the URL with and without its
    port) accepts it for the URL the daemon was reached at."""
    p = live.params(ALICE)
    signed_url = signed.format(port=live.port)
    sig = sign(live.auth_token, signed_url, p)
    expected = oracle_valid(live.auth_token, live.url(), p, sig)
    before = live.count_tokens()
    r = live.post_signed(p, signature=sig)
    if expected:
        assert_accepted(r)
    else:
        assert_forbidden(live, r, before)


# ------------------------------------------------------------- public_url set

@pytest.fixture(scope="module")
def public(module_daemon_factory):
    return module_daemon_factory.make(
        config={"twilio": {"public_url": "https://sms.example.test"}},
        users={ALICE: "alice"}, name="public")


@pytest.mark.parametrize("signed,accepted", [
    ("https://sms.example.test/sms/reset", True),
    ("https://sms.example.test:443/sms/reset", True),   # Twilio's add-port rule
    ("https://sms.example.test:8443/sms/reset", False),
    ("http://sms.example.test/sms/reset", False),
    ("https://127.0.0.1:{port}/sms/reset", False),      # public_url wins over Host
    ("https://SMS.example.test/sms/reset", False),      # never lower-cased
])
def test_public_url(public, signed, accepted):
    p = public.params(ALICE)
    signed_url = signed.format(port=public.port)
    sig = sign(public.auth_token, signed_url, p)
    assert oracle_valid(public.auth_token, "https://sms.example.test/sms/reset",
                        p, sig) == accepted, "test vector disagrees with the oracle"
    before = public.count_tokens()
    r = public.post_signed(p, signature=sig)
    if accepted:
        assert_accepted(r)
    else:
        assert_forbidden(public, r, before)


def test_public_url_with_query(public):
    p = public.params(ALICE)
    r = public.post_signed(p, path="/sms/reset?x=1",
                           sign_url="https://sms.example.test/sms/reset?x=1")
    assert_accepted(r)


def test_public_url_ignores_host_header(public):
    p = public.params(ALICE)
    before = public.count_tokens()
    r = public.post_signed(p, sign_url="https://evil.example/sms/reset",
                           headers={"Host": "evil.example"})
    assert_forbidden(public, r, before)


def test_public_url_token_from_secondary(public):
    p = public.params(ALICE)
    r = public.post_signed(p, sign_url="https://sms.example.test/sms/reset",
                           token=public.secondary_token)
    assert_accepted(r)


# ------------------------------------------------------------ no secondary

def test_without_secondary_only_primary_accepted(module_daemon_factory):
    d = module_daemon_factory.make(users={ALICE: "alice"}, secondary=False,
                                   name="nosecondary")
    before = d.count_tokens()
    r = d.post_signed(d.params(ALICE), token="f" * 32)
    assert_forbidden(d, r, before)
    assert_accepted(d.reset(ALICE))


def test_oracle_sanity():
    # Twilio's public worked example, so the oracle itself is pinned.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310",
              "Digits": "1234", "From": "+14158675310", "To": "+18005551212"}
    assert sign("12345", "https://example.com/myapp.php?foo=1&bar=2", params) == \
        "L/OH5YylLD5NRKLltdqwSvS0BnU="
    assert SERVICE.startswith("+")
