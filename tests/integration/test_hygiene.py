"""Request hygiene over a raw TLS socket: ambiguous framing and duplicated or
folded headers get 400 and a closed connection, never a token.

Each request carries a correctly signed webhook from a registered number, so a
daemon that let the shape through would answer 200 with a reset token.
"""

from urllib.parse import parse_qsl, urlencode

import pytest

from harness import ALICE, parse_status, raw_exchange, sign


def signed_body(d):
    p = d.params(ALICE)
    sig = sign(d.auth_token, d.url(), p)
    return urlencode(p).encode(), sig


def chunked(body):
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def head(d, extra_lines):
    lines = [
        "POST /sms/reset HTTP/1.1",
        f"Host: 127.0.0.1:{d.port}",
        "Content-Type: application/x-www-form-urlencoded",
        *extra_lines,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def case_two_content_lengths(d):
    body, sig = signed_body(d)
    n = len(body)
    return head(d, [f"X-Twilio-Signature: {sig}", f"Content-Length: {n}",
                    f"Content-Length: {n}"]) + body


def case_two_different_content_lengths(d):
    body, sig = signed_body(d)
    n = len(body)
    return head(d, [f"X-Twilio-Signature: {sig}", f"Content-Length: {n}",
                    f"Content-Length: {n + 7}"]) + body + b"&Pad=xx"


def case_content_length_comma_list(d):
    body, sig = signed_body(d)
    n = len(body)
    return head(d, [f"X-Twilio-Signature: {sig}", f"Content-Length: {n}, {n}"]) + body


def case_content_length_and_chunked(d):
    body, sig = signed_body(d)
    c = chunked(body)
    return head(d, [f"X-Twilio-Signature: {sig}", f"Content-Length: {len(c)}",
                    "Transfer-Encoding: chunked"]) + c


def case_chunked_only(d):
    body, sig = signed_body(d)
    return head(d, [f"X-Twilio-Signature: {sig}", "Transfer-Encoding: chunked"]) + chunked(body)


def case_xchunked(d):
    body, sig = signed_body(d)
    return head(d, [f"X-Twilio-Signature: {sig}", "Transfer-Encoding: xchunked"]) + chunked(body)


def case_xchunked_with_length(d):
    body, sig = signed_body(d)
    return head(d, [f"X-Twilio-Signature: {sig}", "Transfer-Encoding: xchunked",
                    f"Content-Length: {len(body)}"]) + body


def case_folded_signature_split(d):
    # obs-fold (RFC 9112, 5.2): the signature continued on a line that starts with a space.
    body, sig = signed_body(d)
    return head(d, [f"X-Twilio-Signature: {sig[:14]}", f" {sig[14:]}",
                    f"Content-Length: {len(body)}"]) + body


def case_folded_signature_whole(d):
    # Empty first line, the whole valid signature on the continuation line:
    # unfolded, it is exactly the right value.
    body, sig = signed_body(d)
    return head(d, ["X-Twilio-Signature:", f" {sig}",
                    f"Content-Length: {len(body)}"]) + body


def case_two_signatures(d):
    body, sig = signed_body(d)
    return head(d, [f"X-Twilio-Signature: {sig}", f"X-Twilio-Signature: {sig}",
                    f"Content-Length: {len(body)}"]) + body


def case_two_signatures_secondary(d):
    body, _ = signed_body(d)
    p = dict(parse_qsl(body.decode()))
    s1 = sign(d.auth_token, d.url(), p)
    s2 = sign(d.secondary_token, d.url(), p)
    return head(d, [f"X-Twilio-Signature: {s1}", f"X-Twilio-Signature: {s2}",
                    f"Content-Length: {len(body)}"]) + body


def case_two_hosts(d):
    # RFC 9112, 3.2: exactly one Host. Both name the configured URL here.
    body, sig = signed_body(d)
    return head(d, [f"Host: 127.0.0.1:{d.port}", f"X-Twilio-Signature: {sig}",
                    f"Content-Length: {len(body)}"]) + body


def case_two_different_hosts(d):
    body, sig = signed_body(d)
    return head(d, ["Host: evil.example", f"X-Twilio-Signature: {sig}",
                    f"Content-Length: {len(body)}"]) + body


CASES = [
    case_two_content_lengths,
    case_two_different_content_lengths,
    case_content_length_comma_list,
    case_content_length_and_chunked,
    case_chunked_only,
    case_xchunked,
    case_xchunked_with_length,
    case_folded_signature_split,
    case_folded_signature_whole,
    case_two_signatures,
    case_two_signatures_secondary,
    case_two_hosts,
    case_two_different_hosts,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_ambiguous_request_refused(live, case):
    before = live.count_tokens()
    data, closed = raw_exchange(live.port, live.cert, case(live))
    status = parse_status(data)
    # The security property first: no token, whatever the status.
    assert b"token=" not in data, data[:300]
    assert live.count_tokens() == before, "a reset token was issued"
    assert status == 400, f"status {status}; response: {data[:300]!r}"
    assert closed, "connection left open after a 400 for ambiguous framing"
    assert live.get("/healthz").status_code == 200


def test_plain_request_over_raw_socket_works(live):
    """The raw client itself is sound: a clean request gets its 200."""
    body, sig = signed_body(live)
    req = head(live, [f"X-Twilio-Signature: {sig}", f"Content-Length: {len(body)}",
                      "Connection: close"]) + body
    data, closed = raw_exchange(live.port, live.cert, req)
    assert parse_status(data) == 200, data[:300]
    assert b"token=" in data


def test_header_value_with_bare_cr(live):
    body, sig = signed_body(live)
    req = head(live, [f"X-Twilio-Signature: {sig}", "X-Junk: a\rb",
                      f"Content-Length: {len(body)}"]) + body
    before = live.count_tokens()
    data, closed = raw_exchange(live.port, live.cert, req)
    assert parse_status(data) == 400, data[:300]
    assert live.count_tokens() == before
    assert live.get("/healthz").status_code == 200


def test_pipelined_second_request_not_smuggled(live):
    """A harmless first request followed, on the same connection, by a
    framing-confused second one: no token either way."""
    body, sig = signed_body(live)
    first = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n\r\n").encode()
    second = head(live, [f"X-Twilio-Signature: {sig}", f"Content-Length: {len(body)}",
                         "Transfer-Encoding: chunked"]) + chunked(body)
    before = live.count_tokens()
    data, closed = raw_exchange(live.port, live.cert, first + second)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert b"token=" not in data
    assert live.count_tokens() == before
    # Either the second request was refused, or never read (closed after the first).
    assert b" 400 " in data or (closed and data.count(b"HTTP/1.1 ") == 1), data[:600]


def test_request_target_at_the_limit_is_served(live):
    # The longest request-target twhookd takes (4096 bytes), signed over it,
    # with the headers Twilio sends: libmicrohttpd's per-connection memory
    # must hold them all.
    path = "/sms/reset?q="
    path += "a" * (4096 - len(path))
    twilio_headers = {
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
        "Cache-Control": "max-age=259200",
        "I-Twilio-Idempotency-Token": "7c5f0fbe-3bd7-4c3a-9a2f-0f1a2b3c4d5e",
        "X-Home-Region": "us1",
        "X-Twilio-Webhook-Retry": "1",
    }
    r = live.post_signed(live.params(ALICE), path=path, headers=twilio_headers)
    assert r.status_code == 200, r.text[:200]
    assert "token=" in r.text


def test_oversized_header_block_refused(live):
    # Past libmicrohttpd's per-connection memory (16 KiB): 431, and the
    # daemon goes on serving.
    body, sig = signed_body(live)
    req = (f"POST /sms/reset HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\n"
           f"X-Padding: {'p' * 20000}\r\n"
           f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    data, closed = raw_exchange(live.port, live.cert, req)
    assert parse_status(data) == 431, data[:300]
    assert closed
    assert live.get("/healthz").status_code == 200


def test_long_request_target(live):
    body, sig = signed_body(live)
    path = "/sms/reset?" + "a" * 5000
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\n"
           f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    data, closed = raw_exchange(live.port, live.cert, req)
    status = parse_status(data)
    assert status in (400, 414, 431), data[:300]
    assert live.get("/healthz").status_code == 200
