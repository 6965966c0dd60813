#!/usr/bin/python3
"""Print tests/unit/signature_vectors.h: X-Twilio-Signature vectors computed
by Debian's python3-twilio (twilio.request_validator.RequestValidator), an
oracle nobody on this project wrote.

    /usr/bin/python3 tests/unit/gen_signature_vectors.py > tests/unit/signature_vectors.h

Form bodies are decoded with urllib.parse.parse_qsl, independently of our
form.c; the decoded pairs are emitted too so the C test can check form_parse.

Where the installed library cannot express DESIGN.md's rule, this script says
so next to the case:
- twilio 7.7.1's compute_signature takes a dict and does
  `for k, v in sorted(params.items()): s += k + v`: one value per name. For
  repeated names we hand it an object whose items() are the distinct
  (name, value) pairs: the library still sorts (by name, then value),
  concatenates, HMACs and encodes; only the duplicate-dropping is ours
  (DESIGN.md point 2, as twilio-node's `new Set(values).sort()`).
- validate() re-normalizes the URL through urlparse (see `validate_verdict`),
  and raises on a JSON body without bodySHA256. The expected result of every
  verify case is DESIGN.md's; python's verdict is recorded beside it.
"""

import hashlib
import sys
from urllib.parse import parse_qsl, urlencode, urlparse

from twilio.request_validator import RequestValidator, add_port, remove_port

TOKEN = "12345"
TOKEN2 = "secondary-token-67890"
BASE = "https://example.com/myapp.php?foo=1&bar=2"
EXAMPLE = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675310"),
           ("Digits", "1234"), ("From", "+14158675310"), ("To", "+18005551212")]


class Pairs:
    """A multi-valued params object for RequestValidator.compute_signature."""

    def __init__(self, pairs):
        self.pairs = list(dict.fromkeys(pairs))    # exact duplicates dropped

    def __bool__(self):
        return bool(self.pairs)

    def items(self):
        return list(self.pairs)


def sign(token, url, pairs):
    params = Pairs(pairs)
    if len({k for k, _ in pairs}) == len(pairs):
        params = dict(pairs)    # the plain dict path, exactly as documented
    return RequestValidator(token).compute_signature(url, params)


def cstr(s):
    """A C string literal for s (str as UTF-8, or bytes); None is NULL."""
    if s is None:
        return "NULL"
    b = s.encode("utf-8") if isinstance(s, str) else s
    out = []
    for c in b:
        if c in (0x22, 0x5C, 0x3F):     # " \ and ? (no trigraphs)
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\%03o" % c)    # octal: never swallows a next digit
    return '"' + "".join(out) + '"'


# --- signature_compute vectors: (label, token, url, body as POSTed) ------------
# body None: the pairs are urlencoded by urllib (WHATWG serializer, space '+').
SIGN_CASES = [
    ("twilio public example", TOKEN, BASE, None, EXAMPLE),
    ("no params", TOKEN, "https://example.com/sms", "", []),
    ("port 443 in url", TOKEN, "https://example.com:443/sms", None, EXAMPLE),
    ("port 8443 in url", TOKEN, "https://example.com:8443/sms", None, EXAMPLE),
    ("http port 80", TOKEN, "http://example.com:80/sms", None, EXAMPLE),
    ("http no port", TOKEN, "http://example.com/sms", None, EXAMPLE),
    ("query kept verbatim, unsorted, encoded", TOKEN,
     "https://example.com/sms?z=1&a=%2F+b&a=2", None, EXAMPLE),
    ("empty values kept", TOKEN, "https://example.com/sms",
     "Body=&From=%2B14155550100&MediaUrl0=&To=", None),
    ("plus and spaces", TOKEN, "https://example.com/sms",
     "Body=hello+world+%2B1&From=%2B14155550100&Sp+ace=a%20b", None),
    ("unicode, percent-encoded", TOKEN, "https://example.com/sms", None,
     [("Body", "caf\u00e9 \u2603 \U0001F600"), ("From", "+14155550100")]),
    ("unicode, raw utf-8 bytes in the body", TOKEN, "https://example.com/sms",
     "Body=\u00fcber+\u65e5\u672c&Name\u00e9=x", None),
    ("byte order, not locale order", TOKEN, "https://example.com/sms", None,
     [("a", "1"), ("B", "2"), ("_", "3"), ("Z", "4"), ("aa", "5")]),
    ("non-ascii names sort by code point", TOKEN, "https://example.com/sms", None,
     [("\u00e9", "1"), ("z", "2"), ("\u4e2d", "3"), ("E", "4")]),
    ("repeated name: values sorted", TOKEN, "https://example.com/sms", None,
     [("MediaUrl", "https://b"), ("A", "x"), ("MediaUrl", "https://a"),
      ("MediaUrl", "https://c")]),
    ("repeated name: exact duplicates dropped", TOKEN, "https://example.com/sms",
     None, [("N", "2"), ("N", "1"), ("N", "2"), ("M", "0"), ("N", "1")]),
    ("repeated name with empty value", TOKEN, "https://example.com/sms",
     "a=&a=x&a=", None),
    ("name prefix of another", TOKEN, "https://example.com/sms", None,
     [("ab", "c"), ("a", "z")]),
    ("name without =", TOKEN, "https://example.com/sms", "flag&To=1", None),
    ("empty segments skipped", TOKEN, "https://example.com/sms",
     "&&a=1&&b=2&", None),
    ("long token", "x" * 64, "https://example.com/sms", None, EXAMPLE),
    ("secondary token", TOKEN2, "https://example.com/sms", None, EXAMPLE),
    ("ipv6 host and port", TOKEN, "https://[2001:db8::1]:8443/sms", None,
     EXAMPLE),
]


def decode(body):
    return parse_qsl(body, keep_blank_values=True, encoding="utf-8",
                     errors="strict")


def sign_vectors():
    out = []
    for label, token, url, body, pairs in SIGN_CASES:
        if body is None:
            body = urlencode(pairs)
        else:
            pairs = decode(body)
        out.append((label, token, url, body, pairs, sign(token, url, pairs)))
    return out


# --- signature_verify vectors ------------------------------------------------------
JSON = '{"MessageSid":"SM0123","Body":"hi \u00e9"}'


def body_hash(body):
    h = RequestValidator(TOKEN).compute_hash(body)
    assert h == hashlib.sha256(body.encode("utf-8")).hexdigest()
    return h


def validate_verdict(url, params, header, tokens):
    """RequestValidator.validate over tokens; 'raises' when it cannot."""
    try:
        return any(RequestValidator(t).validate(url, params, header or "")
                   for t in tokens)
    except Exception as e:      # a JSON body without bodySHA256
        return "raises %s" % type(e).__name__


def flip(sig):
    return ("B" if sig[0] == "A" else "A") + sig[1:]


def verify_cases():
    form = urlencode(EXAMPLE)
    p = "https://example.com/sms?x=1"
    p443 = "https://example.com:443/sms?x=1"
    good = sign(TOKEN, p, EXAMPLE)
    jurl = "https://example.com/sms?x=1&bodySHA256=" + body_hash(JSON)
    jurl443 = jurl.replace("example.com/", "example.com:443/")
    jsig = sign(TOKEN, jurl, [])
    jupper = p + "&bodySHA256=" + body_hash(JSON).upper()
    # (label, request url, body, json, header, tokens, expected result)
    return [
        ("signed without port, request with :443", p443, form, 0, good,
         [TOKEN], "SIGNATURE_OK"),
        ("signed with :443, request without port", p, form, 0,
         sign(TOKEN, p443, EXAMPLE), [TOKEN], "SIGNATURE_OK"),
        ("signed with :8443, request with :8443",
         "https://example.com:8443/sms", form, 0,
         sign(TOKEN, "https://example.com:8443/sms", EXAMPLE), [TOKEN],
         "SIGNATURE_OK"),
        ("signed without port, request with :8443",
         "https://example.com:8443/sms", form, 0,
         sign(TOKEN, "https://example.com/sms", EXAMPLE), [TOKEN],
         "SIGNATURE_OK"),
        ("signed with :443, request with :8443",
         "https://example.com:8443/sms", form, 0,
         sign(TOKEN, "https://example.com:443/sms", EXAMPLE), [TOKEN],
         "SIGNATURE_MISMATCH"),
        ("http signed with :80, request without port", "http://example.com/sms",
         form, 0, sign(TOKEN, "http://example.com:80/sms", EXAMPLE), [TOKEN],
         "SIGNATURE_OK"),
        ("exact match", p, form, 0, good, [TOKEN], "SIGNATURE_OK"),
        ("secondary token accepted", p, form, 0, sign(TOKEN2, p, EXAMPLE),
         [TOKEN, TOKEN2], "SIGNATURE_OK"),
        ("secondary signature, primary only", p, form, 0,
         sign(TOKEN2, p, EXAMPLE), [TOKEN], "SIGNATURE_MISMATCH"),
        ("flipped byte", p, form, 0, flip(good), [TOKEN], "SIGNATURE_MISMATCH"),
        ("param changed", p, form.replace("Digits=1234", "Digits=1235"), 0, good,
         [TOKEN], "SIGNATURE_MISMATCH"),
        ("query changed", p.replace("x=1", "x=2"), form, 0, good, [TOKEN],
         "SIGNATURE_MISMATCH"),
        ("header one short", p, form, 0, good[:-1], [TOKEN],
         "SIGNATURE_MALFORMED"),
        ("header one long", p, form, 0, good + "=", [TOKEN],
         "SIGNATURE_MALFORMED"),
        ("header not base64", p, form, 0, good[:5] + "*" + good[6:], [TOKEN],
         "SIGNATURE_MALFORMED"),
        ("header missing", p, form, 0, None, [TOKEN], "SIGNATURE_MISSING"),
        ("header empty", p, form, 0, "", [TOKEN], "SIGNATURE_MISSING"),
        ("json with bodySHA256", jurl, JSON, 1, jsig, [TOKEN], "SIGNATURE_OK"),
        ("json with bodySHA256, request with :443", jurl443, JSON, 1, jsig,
         [TOKEN], "SIGNATURE_OK"),
        ("json body tampered", jurl, JSON.replace("hi", "ho"), 1, jsig, [TOKEN],
         "SIGNATURE_BODY_HASH_MISMATCH"),
        ("json without bodySHA256", p, JSON, 1, sign(TOKEN, p, []), [TOKEN],
         "SIGNATURE_NO_BODY_HASH"),
        ("json bodySHA256 upper-case hex", jupper, JSON, 1,
         sign(TOKEN, jupper, []), [TOKEN], "SIGNATURE_BODY_HASH_MISMATCH"),
        ("json wrong signature", jurl, JSON, 1, flip(jsig), [TOKEN],
         "SIGNATURE_MISMATCH"),
    ]


# URLs on which urlparse round-trips byte for byte, so python's add_port and
# remove_port are a fair oracle for signature_url_variants. (It does not on
# "HTTPS://H/p", "https://h/p?", "https://u:p@h:1/p" or "https://[::1]:443/p":
# those are pinned by hand in test_signature.c, DESIGN.md point 1.)
VARIANT_URLS = [
    "https://example.com/sms",
    "https://example.com:443/sms?a=1&b=%2F",
    "https://example.com:8443/sms",
    "http://example.com/sms",
    "http://example.com:80/sms?x",
    "https://example.com/p;x?a=%41",
    "https://example.com",
    "https://u:pw@example.com/sms",
]


def emit_variants():
    print("static const struct variant_vector variant_vectors[] = {")
    for url in VARIANT_URLS:
        pu = urlparse(url)
        assert pu.geturl() == url, url
        want = {add_port(pu), remove_port(pu)}
        assert url in want, url
        want.discard(url)
        print("\t{ %s, %s }," % (cstr(url), cstr(want.pop() if want else None)))
    print("};\n")


def emit_sign(vectors):
    print("static const struct sig_vector sig_vectors[] = {")
    for i, (label, token, url, body, pairs, sig) in enumerate(vectors):
        print("\t{ %s,\n\t  %s,\n\t  %s,\n\t  %s,\n\t  v%d_pairs, %d,\n\t  %s },"
              % (cstr(label), cstr(token), cstr(url), cstr(body), i, len(pairs),
                 cstr(sig)))
    print("};\n")


def emit_pairs(vectors):
    for i, v in enumerate(vectors):
        pairs = v[4] or [("", "")]      # no empty initializers in C17
        print("static const struct sig_pair v%d_pairs[] = {" % i)
        for k, val in pairs:
            print("\t{ %s, %s }," % (cstr(k), cstr(val)))
        print("};")
    print()


def emit_verify(cases):
    print("static const struct verify_vector verify_vectors[] = {")
    for label, url, body, json, header, tokens, want in cases:
        params = body if json else dict(decode(body))
        verdict = validate_verdict(url, params, header, tokens)
        toks = tokens + [None] * (2 - len(tokens))
        note = ""
        if isinstance(verdict, bool) and verdict != (want == "SIGNATURE_OK"):
            note = " (disagrees: DESIGN.md wins)"
        print("\t/* python3-twilio validate(): %s%s */" % (verdict, note))
        print("\t{ %s,\n\t  %s,\n\t  %s, %d,\n\t  %s,\n\t  { %s, %s }, %d,\n\t  %s },"
              % (cstr(label), cstr(url), cstr(body), json, cstr(header),
                 cstr(toks[0]), cstr(toks[1]), len(tokens), want))
    print("};")


def main():
    vectors = sign_vectors()
    assert vectors[0][5] == "L/OH5YylLD5NRKLltdqwSvS0BnU=", vectors[0][5]
    print("/* Generated by tests/unit/gen_signature_vectors.py with python3-twilio"
          " %s. Do not edit. */" % __import__("twilio").__version__)
    emit_pairs(vectors)
    emit_sign(vectors)
    emit_variants()
    emit_verify(verify_cases())
    return 0


if __name__ == "__main__":
    sys.exit(main())
