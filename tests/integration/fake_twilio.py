"""A fake Twilio Messages REST API for the integration suite.

An HTTPS server (http.server + ssl, one thread per connection) on 127.0.0.1
with a certificate signed by a throwaway CA made at test time with openssl.
It records every request (method, path, Authorization, parsed form, time) and
answers from a scriptable queue: 201 (a Twilio-shaped message resource), 500,
429 with Retry-After, 400 with a Twilio error code, "hang" (hold the
request until released, at most HANG_BOUND seconds) or "slow" (201 after a
fixed delay). The default is 201. It counts the requests it holds at once.

Every wait here is bounded; nothing listens beyond loopback.
"""

import base64
import json
import re
import secrets
import sqlite3
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

HANG_BOUND = 30.0           # seconds a "hang" holds a request at most
SOCKET_TIMEOUT = 10.0       # seconds for the TLS handshake and each read
QUIET_WAIT = 2.0            # seconds to wait before concluding "no request"
FROM_NUMBER = "+15550000100"


# --------------------------------------------------------------------------
# The throwaway CA and the server certificate

def make_ca(directory):
    """Create CA (cert, key) and a server (cert, key) for IP:127.0.0.1 in
    directory; returns a dict of paths: ca_cert, ca_key, cert, key."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = {n: d / f"{n}.pem" for n in ("ca_cert", "ca_key", "cert", "key", "csr")}
    ext = d / "server.ext"
    ext.write_text("basicConstraints = critical, CA:FALSE\n"
                   "keyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = serverAuth\n"
                   "subjectAltName = IP:127.0.0.1\n")

    def run(*args):
        subprocess.run(["openssl", *map(str, args)], check=True,
                       capture_output=True, timeout=30)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", p["ca_key"], "-out", p["ca_cert"], "-days", "2",
        "-subj", "/CN=twhookd test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", p["key"], "-out", p["csr"], "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", p["csr"], "-CA", p["ca_cert"], "-CAkey", p["ca_key"],
        "-CAcreateserial", "-out", p["cert"], "-days", "2", "-sha256",
        "-extfile", ext)
    p["ca_key"].chmod(0o600)
    p["key"].chmod(0o600)
    return {k: str(v) for k, v in p.items() if k != "csr"}


# --------------------------------------------------------------------------
# Scripted answers

class Answer:
    """One scripted answer: status, extra headers, JSON body (None = make a
    message resource), or hang (hold the request until released)."""

    def __init__(self, status=201, headers=None, body=None, hang=False, delay=0.0):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body
        self.hang = hang
        self.delay = min(delay, HANG_BOUND)

    def __repr__(self):
        return "HANG" if self.hang else f"Answer({self.status})"


def created():
    return Answer(201)


def server_error(status=500):
    return Answer(status, body={"code": 20500, "message": "Internal Server Error",
                                "status": status})


def too_many(retry_after=1):
    return Answer(429, headers={"Retry-After": str(retry_after)},
                  body={"code": 20429, "message": "Too Many Requests", "status": 429})


def invalid_to():
    return Answer(400, body={"code": 21211, "message": "invalid To", "status": 400,
                             "more_info": "https://www.twilio.com/docs/errors/21211"})


def hang():
    return Answer(hang=True)


def slow(seconds):
    return Answer(201, delay=seconds)


class Request:
    """What the fake received."""

    def __init__(self, method, path, headers, raw):
        self.time = time.monotonic()
        self.method = method
        self.path = path
        self.headers = headers
        self.authorization = headers.get("Authorization")
        self.content_type = headers.get("Content-Type", "")
        self.raw = raw
        parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        self.multi = parsed
        self.form = {k: v[0] for k, v in parsed.items()}
        self.status = None      # what the fake answered
        self.sid = None         # the message SID it returned, on 201

    def basic_auth(self):
        """(user, password) from a Basic Authorization header, or None."""
        a = self.authorization or ""
        if not a.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(a[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, pw

    def __repr__(self):
        return f"<{self.method} {self.path} -> {self.status} To={self.form.get('To')!r}>"


# --------------------------------------------------------------------------
# The server

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"

    def log_message(self, fmt, *args):       # quiet
        pass

    def _handle(self):
        fake = self.server.fake
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        raw = self.rfile.read(min(n, 1 << 20)) if n > 0 else b""
        req = Request(self.command, self.path, dict(self.headers.items()), raw)
        answer = fake._record(req)
        if answer.hang:
            fake._release.wait(HANG_BOUND)
            answer = created()
        elif answer.delay > 0:
            time.sleep(answer.delay)
        self._answer(fake, req, answer)

    def _answer(self, fake, req, answer):
        body = answer.body
        if answer.status == 201 and body is None:
            req.sid = "SM" + secrets.token_hex(16)
            body = fake.message_resource(req)
        req.status = answer.status
        data = json.dumps(body if body is not None else {}).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass        # the client went away (e.g. it was killed mid-request)
        with fake._cond:
            fake._in_flight -= 1
            fake._cond.notify_all()

    do_POST = _handle
    do_GET = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, fake, ctx):
        self.fake = fake
        self.ctx = ctx
        super().__init__(addr, _Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow client never blocks accept().
        request.settimeout(SOCKET_TIMEOUT)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


class FakeTwilio:
    """The fake Messages API. Use as a context manager or call close()."""

    def __init__(self, ca):
        self.ca = ca
        self.ca_file = ca["ca_cert"]
        self._cond = threading.Condition()
        self._requests = []
        self._script = []
        self._in_flight = 0         # requests received and not yet answered
        self.max_in_flight = 0
        self._release = threading.Event()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(ca["cert"], ca["key"])
        self._server = _Server(("127.0.0.1", 0), self, ctx)
        self.port = self._server.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="fake-twilio", daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- scripting -------------------------------------------------------

    def script(self, *answers):
        """Queue answers for the next requests (after those already queued);
        once the queue is empty every request gets 201."""
        with self._cond:
            self._script.extend(answers)

    def release(self):
        """Let every held ("hang") request go (it gets 201), and any later
        "hang" pass at once."""
        self._release.set()

    def reset(self):
        """Forget the script and re-arm hang; keep the recorded requests."""
        with self._cond:
            self._script.clear()
        self._release.clear()

    def _record(self, req):
        with self._cond:
            self._requests.append(req)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            answer = self._script.pop(0) if self._script else created()
            self._cond.notify_all()
        return answer

    def message_resource(self, req):
        f = req.form
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        account = req.path.split("/")[3] if req.path.count("/") >= 4 else None
        return {
            "sid": req.sid, "status": "queued", "account_sid": account,
            "to": f.get("To"), "from": f.get("From"),
            "messaging_service_sid": f.get("MessagingServiceSid"),
            "body": f.get("Body"), "num_segments": "1", "num_media": "0",
            "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": now, "date_updated": now, "date_sent": None,
            "price": None, "price_unit": "USD", "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{req.sid}.json",
        }

    # -- inspection ------------------------------------------------------

    @property
    def requests(self):
        with self._cond:
            return list(self._requests)

    def count(self):
        with self._cond:
            return len(self._requests)

    def wait_for_requests(self, n, timeout=10.0):
        """Block until at least n requests arrived (bounded); returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"fake Twilio got {len(self._requests)} requests within "
                        f"{timeout}s, expected {n}: {self._requests}")
                self._cond.wait(remaining)
            return list(self._requests)

    def wait_answered(self, req, timeout=10.0):
        """Block until the fake has answered req (bounded)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while req.status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"fake Twilio did not answer {req} in {timeout}s")
                self._cond.wait(remaining)
        return req

    def assert_quiet(self, count, wait=QUIET_WAIT):
        """No request beyond the first count ones arrives within wait seconds."""
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                if len(self._requests) > count:
                    raise AssertionError(
                        f"unexpected request(s) to the fake Twilio: {self._requests[count:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


# --------------------------------------------------------------------------
# Daemon configuration for the PIN flow

def pin_config(fake, twilio=None, pin=None, limits=None, **sections):
    """Config sections (for DaemonFactory.make) that enable the PIN flow
    against fake: from_number, api_base_url, api_ca_file, plus overrides."""
    cfg = {"twilio": {"api_base_url": fake.base_url, "api_ca_file": fake.ca_file,
                      "from_number": FROM_NUMBER}}
    cfg["twilio"].update(twilio or {})
    if pin:
        cfg["pin"] = dict(pin)
    if limits:
        cfg["limits"] = dict(limits)
    for name, keys in sections.items():
        cfg.setdefault(name, {}).update(keys)
    return cfg


# --------------------------------------------------------------------------
# Reading what the daemon sent and stored

DEFAULT_MESSAGE = "Your verification code is {pin}"


def pin_of(req, message=DEFAULT_MESSAGE, digits=6):
    """The PIN carried by the SMS body of req, checked against the message
    template and the number of digits; AssertionError otherwise."""
    body = req.form.get("Body", "")
    before, _, after = message.partition("{pin}")
    pattern = re.escape(before) + r"(\d+)" + re.escape(after)
    m = re.fullmatch(pattern, body)
    assert m, f"SMS body {body!r} does not match {message!r}"
    pin = m.group(1)
    assert len(pin) == digits, f"PIN has {len(pin)} digits, expected {digits}"
    return pin


def outbox_rows(d, where="1=1", args=()):
    """Rows of the daemon's outbox table as dicts, oldest first."""
    with d.db() as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(
            f"SELECT * FROM outbox WHERE {where} ORDER BY id", args).fetchall()]


def wait_outbox(d, predicate, timeout=10.0, where="1=1", args=()):
    """Poll the outbox (bounded) until predicate(rows) holds; returns the rows."""
    deadline = time.monotonic() + timeout
    rows = []
    while True:
        rows = outbox_rows(d, where, args)
        if predicate(rows):
            return rows
        if time.monotonic() >= deadline:
            raise AssertionError(f"outbox did not reach the expected state in "
                                 f"{timeout}s: {[_safe_row(r) for r in rows]}")
        time.sleep(0.1)


def _safe_row(row):
    return {k: v for k, v in row.items() if k != "body"}
