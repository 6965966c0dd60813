#!/usr/bin/python3
"""Pre-sign N Twilio SMS webhooks (reset or PIN) for the benchmark.

Signatures come from python3-twilio's RequestValidator (Twilio's own helper),
never from twhookd. Every request has its own MessageSid ("SM" + 32 hex), so
a run that uses each line once never hits twhookd's replay path.

Output, compact so wrk's Lua script can stream it instead of holding
hundreds of MB of bodies:

    line 1:  TEMPLATE <form body with __SID__ and __FROM__ markers>
    then:    <MessageSid> <From digits, no '+'> <X-Twilio-Signature>

The body is the template with __SID__ -> MessageSid and __FROM__ -> digits
(the template already holds the url-encoded '+', "%2B"). Senders go round
robin over the users in a shuffled order (see main).

The texts say BODY (default "RESET"; the PIN run uses "PIN"), signed for URL.

usage: gen_requests.py OUT N USERS.csv AUTH_TOKEN ACCOUNT_SID URL [BODY]
"""

import multiprocessing
import os
import random
import sys
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

# The webhook's shape is the integration tests' own: one definition of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import twilio_params  # noqa: E402


def params(account_sid, sid, from_, body):
    return twilio_params(account_sid, from_, body=body, message_sid=sid)


_ctx = {}


def _init(token, account_sid, url, phones, body):
    _ctx.update(v=RequestValidator(token), sid=account_sid, url=url, phones=phones,
                body=body)


def _chunk(args):
    start, count = args
    v, url, acct, phones = _ctx["v"], _ctx["url"], _ctx["sid"], _ctx["phones"]
    body = _ctx["body"]
    rnd = os.urandom(16 * count)
    out = []
    for i in range(count):
        sid = "SM" + rnd[16 * i:16 * i + 16].hex()
        phone = phones[(start + i) % len(phones)]
        sig = v.compute_signature(url, params(acct, sid, phone, body))
        out.append(f"{sid} {phone[1:]} {sig}\n")
    return "".join(out)


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit(__doc__.strip().splitlines()[-1])
    out, n, users, token, account_sid, url = sys.argv[1:7]
    body = sys.argv[7] if len(sys.argv) == 8 else "RESET"
    n = int(n)
    phones = []
    with open(users) as f:
        for line in f:
            phone = line.split(",", 1)[0].strip()
            if phone.startswith("+"):
                phones.append(phone)
    if not phones:
        sys.exit("gen_requests: no users in " + users)
    # Senders in a shuffled round robin: request i comes from phones[i % U], so
    # a number texts again only after every other number has, and per-number
    # rate limits (a few resets per hour) are not hit while i < limit * U.
    random.shuffle(phones)

    template = urlencode(params(account_sid, "__SID__", "+__FROM__", body))
    assert template.count("__SID__") == 3 and template.count("__FROM__") == 1

    step = 5000
    jobs = [(s, min(step, n - s)) for s in range(0, n, step)]
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    with open(out, "w") as f:
        f.write("TEMPLATE " + template + "\n")
        with multiprocessing.Pool(workers, _init, (token, account_sid, url, phones, body)) as pool:
            for text in pool.imap(_chunk, jobs):
                f.write(text)


if __name__ == "__main__":
    main()
