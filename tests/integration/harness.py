"""Helpers shared by the twhookd integration suite.

Everything here talks to the real binary on loopback only, and every wait is
bounded in count and in time. Signatures come from Twilio's own helper
library (python3-twilio's RequestValidator), never from twhookd's code.
"""

import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TWHOOKD_BIN", str(REPO / "build" / "release" / "twhookd")))

READY_TIMEOUT = 10.0        # seconds for /healthz to answer after start
STOP_TIMEOUT = 15.0         # seconds for SIGTERM to end the process
HTTP_TIMEOUT = (5, 10)      # connect, read
CLI_TIMEOUT = 20            # seconds for one CLI run
LOG_WAIT = 3.0              # seconds for a log line to show up

ALICE = "+15550000001"
BOB = "+15550000002"
CAROL = "+15550000003"
UNKNOWN = "+15550009999"
SERVICE = "+15557654321"    # the service's own number (To)

RESET_LINK = "https://app.example/reset?token={token}"
RESET_MESSAGE = "Reset: {link}"

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# The default test config turns every rate limit off so that tests keep their
# meaning (the daemon's own defaults allow 3 resets per number per hour);
# limit tests set [limits] explicitly.
LIMITS_OFF = {"reset_per_number": "off", "pin_per_number": "off",
              "outbound_budget": "off"}


# --------------------------------------------------------------------------
# Signing (the oracle)

def sign(token, url, params):
    """X-Twilio-Signature for url and a dict of decoded form params."""
    return RequestValidator(token).compute_signature(url, params)


def oracle_valid(token, url, params, signature):
    """Does Twilio's own library accept this signature for this URL?"""
    return RequestValidator(token).validate(url, params, signature)


def body_sha256(body_bytes):
    return hashlib.sha256(body_bytes).hexdigest()


def new_message_sid():
    return "SM" + secrets.token_hex(16)


def new_account_sid():
    return "AC" + secrets.token_hex(16)


def twilio_params(account_sid, from_, body="RESET", message_sid=None, to=SERVICE):
    """The form parameters Twilio posts for an incoming SMS."""
    sid = message_sid or new_message_sid()
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "94105",
        "SmsSid": sid,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": body,
        "FromCountry": "US",
        "To": to,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }


# --------------------------------------------------------------------------
# Small utilities

_used_ports = set()


def free_port():
    """A loopback TCP port nobody listens on right now (not handed out twice)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port found in 100 tries")


def port_is_free(port):
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, socket.timeout, OSError):
            pass
        else:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def write_secret(path, text, newline=False):
    path = Path(path)
    path.write_text(text + ("\n" if newline else ""))
    path.chmod(0o600)
    return path


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the daemon gets SIGKILL if pytest itself dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def run_cli(args, env=None, timeout=CLI_TIMEOUT, input_text=None):
    """Run twhookd with args; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.pop("TWILIO_AUTH_TOKEN", None)
    if env:
        full_env.update(env)
    return subprocess.run([str(BIN), *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=timeout,
                          env=full_env, input=input_text,
                          stdin=None if input_text is not None else subprocess.DEVNULL)


# --------------------------------------------------------------------------
# TwiML

def parse_twiml(resp):
    """(root element, message text or None) of a TwiML reply."""
    root = ET.fromstring(resp.content)
    assert root.tag == "Response", resp.text
    msgs = root.findall("Message")
    assert len(msgs) <= 1, resp.text
    return root, ((msgs[0].text or "") if msgs else None)


def token_from_twiml(resp):
    """The reset token carried by a TwiML reply's link, or None."""
    _, text = parse_twiml(resp)
    if text is None:
        return None
    idx = text.find("https://")
    if idx < 0:
        return None
    link = text[idx:].split()[0]
    values = parse_qs(urlparse(link).query).get("token")
    return values[0] if values else None


# --------------------------------------------------------------------------
# The daemon

_limits_supported = None


def _binary_knows_limits(sections, workdir):
    """Does this build accept a [limits] section? (Older builds refuse unknown
    sections; probed once per session with an otherwise valid config.)"""
    global _limits_supported
    if _limits_supported is None:
        probe = Path(workdir) / "probe-limits.ini"
        text = []
        for section, keys in {**sections, "limits": LIMITS_OFF}.items():
            text.append(f"[{section}]")
            text.extend(f"{k} = {v}" for k, v in keys.items())
        probe.write_text("\n".join(text) + "\n")
        probe.chmod(0o600)
        r = run_cli(["check-config", "-c", probe])
        _limits_supported = r.returncode == 0 or "limits" not in r.stderr
        probe.unlink()
    return _limits_supported

DEFAULT_SECTIONS = ("server", "twilio", "store", "secrets", "reset", "admin", "log")


class Daemon:
    """One twhookd process with its own config, store, key and tokens."""

    def __init__(self, workdir, cert, key, config=None, users=None,
                 secondary=True, name="twhookd"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert = str(cert)
        self.key = str(key)
        self.port = free_port()
        self.admin_port = free_port()
        self.auth_token = secrets.token_hex(16)
        self.secondary_token = secrets.token_hex(16) if secondary else None
        self.admin_token = secrets.token_urlsafe(32)
        self.account_sid = new_account_sid()
        self.cfg_path = self.dir / "twhookd.ini"
        self.db_path = self.dir / "twhookd.db"
        self.server_key_path = self.dir / "server.key"
        self.log_path = self.dir / "stderr.log"
        self.proc = None
        self.issued_tokens = set()
        self.issued_pins = set()
        self.phones = set()

        write_secret(self.dir / "auth_token", self.auth_token)
        if secondary:
            write_secret(self.dir / "secondary_auth_token", self.secondary_token)
        write_secret(self.dir / "admin_token", self.admin_token)

        self.sections = {
            "server": {
                "listen": f"127.0.0.1:{self.port}",
                "tls": "on",
                "tls_cert": self.cert,
                "tls_key": self.key,
                "drain_delay": "0s",
                "threads": "2",
            },
            "twilio": {
                "account_sid": self.account_sid,
                "auth_token_file": str(self.dir / "auth_token"),
                # The URL the suite's requests reach and sign; required.
                "public_url": f"https://127.0.0.1:{self.port}",
            },
            "store": {"path": str(self.db_path)},
            "secrets": {"server_key_file": str(self.server_key_path)},
            "reset": {"link": RESET_LINK, "message": RESET_MESSAGE},
            "admin": {
                "listen": f"127.0.0.1:{self.admin_port}",
                "token_file": str(self.dir / "admin_token"),
            },
            "log": {"level": "info"},
        }
        if secondary:
            self.sections["twilio"]["secondary_auth_token_file"] = \
                str(self.dir / "secondary_auth_token")
        if _binary_knows_limits(self.sections, self.dir):
            self.sections["limits"] = dict(LIMITS_OFF)
        self.merge_config(config)
        self.write_config()
        for phone, user in (users or {}).items():
            self.add_user(phone, user)

    # -- config and CLI ----------------------------------------------------

    def merge_config(self, config):
        """Merge {section: {key: value}} into the config (None removes a
        key); call write_config() (or start()) afterwards to apply."""
        for section, keys in (config or {}).items():
            sec = self.sections.setdefault(section, {})
            for k, v in keys.items():
                if v is None:
                    sec.pop(k, None)
                else:
                    sec[k] = v

    def config_text(self):
        out = []
        for section, keys in self.sections.items():
            out.append(f"[{section}]")
            out.extend(f"{k} = {v}" for k, v in keys.items())
            out.append("")
        return "\n".join(out)

    def write_config(self):
        self.cfg_path.write_text(self.config_text())
        self.cfg_path.chmod(0o600)

    def cli(self, *args, env=None, timeout=CLI_TIMEOUT):
        return run_cli(["-c", self.cfg_path, *args], env=env, timeout=timeout)

    def add_user(self, phone, user):
        r = self.cli("user", "add", phone, user)
        assert r.returncode == 0, f"user add failed: {r.returncode} {r.stderr}"
        self.phones.add(phone)

    def use_postgresql(self, dsn):
        """Switch the store to driver = postgresql, the DSN in a 0600
        dsn_file; before start() and before adding users."""
        write_secret(self.dir / "pg_dsn", dsn)
        self.merge_config({"store": {"driver": "postgresql", "path": None,
                                     "dsn_file": str(self.dir / "pg_dsn")}})
        self.write_config()

    # -- process -----------------------------------------------------------

    def start(self, argv=None):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        assert BIN.exists(), f"{BIN} does not exist"
        cmd = argv or [str(BIN), "serve", "-c", str(self.cfg_path)]
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("TWILIO_AUTH_TOKEN", None)
        env.pop("CREDENTIALS_DIRECTORY", None)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=self._log_file,
                                     env=env, preexec_fn=_die_with_parent)
        _all_procs.append(self.proc)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        logged = len(self.access_lines())
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"twhookd exited with {self.proc.returncode} before ready; "
                    f"log:\n{self.log_tail()}")
            try:
                r = requests.get(self.url("/healthz"), verify=self.cert, timeout=1)
                if r.status_code == 200:
                    self._wait_probe_logged(logged, deadline)
                    return
                last = f"status {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"twhookd not ready within {timeout}s ({last}); "
                             f"log:\n{self.log_tail()}")

    def _wait_probe_logged(self, logged, deadline):
        """The probe's access line is written once its answer has left: wait
        (bounded) for a line past the first `logged` ones, so a test counting
        log lines starts from a quiet log."""
        if self.sections.get("log", {}).get("level", "info") not in ("info", "debug"):
            return
        while time.monotonic() < deadline:
            if any("route=healthz" in l for l in self.access_lines()[logged:]):
                return
            time.sleep(0.02)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"twhookd still running {timeout}s after SIGTERM; "
                                 f"log:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM, wait (bounded); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait()
        self._log_file.close()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def crash(self):
        """SIGKILL (no cleanup in the daemon); start() then restarts it on
        the same config, store and ports."""
        assert self.running, "not running"
        self.kill()
        assert self.proc.poll() is not None, "still running after SIGKILL"
        self._log_file.close()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs --------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def access_lines(self):
        return [l for l in self.log_text().splitlines() if "status=" in l]

    def reasons(self, message_sid, n, timeout=LOG_WAIT):
        """The reason= of the access lines for message_sid, once there are n
        (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [w[len("reason="):] for l in self.access_lines()
                     if f" sid={message_sid} " in l
                     for w in l.split(" ") if w.startswith("reason=")]
            if len(found) >= n or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def secrets_in_log(self):
        """Every secret string the log must never contain, with a label."""
        out = {"auth token": self.auth_token, "admin token": self.admin_token}
        if self.secondary_token:
            out["secondary auth token"] = self.secondary_token
        for t in self.issued_tokens:
            out[f"reset token {t[:6]}..."] = t
        for p in self.phones:
            out[f"phone {p[:2]}...{p[-4:]}"] = p
            out[f"phone digits {p[:2]}...{p[-4:]}"] = p.lstrip("+")
            out[f"url-encoded phone {p[:2]}...{p[-4:]}"] = "%2B" + p.lstrip("+")
        return out

    # -- HTTP --------------------------------------------------------------

    def url(self, path="/sms/reset"):
        return f"https://127.0.0.1:{self.port}{path}"

    def admin_url(self, path):
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def params(self, from_=ALICE, **kw):
        self.phones.add(from_)
        return twilio_params(self.account_sid, from_, **kw)

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.get(self.url(path), verify=self.cert, **kw)

    def post_raw(self, path, data, headers=None, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.post(self.url(path), data=data, headers=headers or {},
                             verify=self.cert, **kw)

    def post_signed(self, params, path="/sms/reset", sign_url=None, token=None,
                    signature=None, headers=None, data=None, sign_params=None):
        """POST params (form-encoded) signed over sign_url (default: the URL
        requested) with token (default: the primary auth token).
        signature overrides the computed one (None = compute, "" = empty,
        False = no header). data overrides the body; sign_params the signed
        parameters."""
        url = self.url(path)
        if signature is None:
            signature = sign(token or self.auth_token, sign_url or url,
                             params if sign_params is None else sign_params)
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not False:
            h["X-Twilio-Signature"] = signature
        h.update(headers or {})
        body = urlencode(params) if data is None else data
        r = requests.post(url, data=body, headers=h, verify=self.cert,
                          timeout=HTTP_TIMEOUT)
        self.record_token(r)
        return r

    def record_token(self, resp):
        """Remember any reset token a reply carried (for the log checks)."""
        if resp.status_code == 200 and "token=" in resp.text:
            with contextlib.suppress(Exception):
                t = token_from_twiml(resp)
                if t:
                    self.issued_tokens.add(t)

    def reset(self, from_=ALICE, message_sid=None, **kw):
        """A correctly signed reset webhook; returns the response."""
        return self.post_signed(self.params(from_, message_sid=message_sid), **kw)

    def post_json(self, obj, path="/sms/reset", hash_of=None, token=None,
                  extra_query=""):
        body = json.dumps(obj).encode()
        digest = body_sha256(hash_of if hash_of is not None else body)
        url = self.url(f"{path}?{extra_query}bodySHA256={digest}")
        sig = sign(token or self.auth_token, url, {})
        r = requests.post(url, data=body, verify=self.cert, timeout=HTTP_TIMEOUT,
                          headers={"Content-Type": "application/json",
                                   "X-Twilio-Signature": sig})
        self.record_token(r)
        return r

    def pin(self, from_=ALICE, message_sid=None, path="/sms/pin", **kw):
        """A correctly signed PIN webhook; returns the response."""
        return self.post_signed(self.params(from_, body="PIN", message_sid=message_sid),
                                path=path, **kw)

    def verify_pin(self, phone, pin, bearer=True, raw=None):
        headers = {"Content-Type": "application/json"}
        if bearer is True:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        elif bearer:
            headers["Authorization"] = bearer
        data = raw if raw is not None else json.dumps({"phone": phone, "pin": pin})
        return requests.post(self.admin_url("/v1/pins/verify"), data=data,
                             headers=headers, timeout=HTTP_TIMEOUT)

    def metric(self, name, labels=""):
        """The value of one sample of GET /metrics (e.g. name
        "twhookd_sms_total", labels '{result="sent"}'), or None if absent."""
        r = self.admin_get("/metrics")
        assert r.status_code == 200, (r.status_code, r.text)
        return metric_value(r.text, name, labels)

    def redeem(self, token, bearer=True, raw=None):
        headers = {"Content-Type": "application/json"}
        if bearer is True:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        elif bearer:
            headers["Authorization"] = bearer
        data = raw if raw is not None else json.dumps({"token": token})
        return requests.post(self.admin_url("/v1/reset-tokens/redeem"), data=data,
                             headers=headers, timeout=HTTP_TIMEOUT)

    def admin_get(self, path, bearer=True):
        headers = {}
        if bearer is True:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        elif bearer:
            headers["Authorization"] = bearer
        return requests.get(self.admin_url(path), headers=headers, timeout=HTTP_TIMEOUT)

    # -- store -------------------------------------------------------------

    @contextlib.contextmanager
    def db(self):
        conn = sqlite3.connect(str(self.db_path), timeout=5)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            yield conn
        finally:
            conn.close()

    def count_tokens(self):
        with self.db() as conn:
            return conn.execute("SELECT count(*) FROM reset_tokens").fetchone()[0]


def metric_value(text, name, labels=""):
    """Value of the sample name+labels in Prometheus text, or None. Labels
    compare as a set, so their order does not matter."""
    want = _label_set(labels)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if "{" in series:
            n, _, rest = series.partition("{")
            lab = "{" + rest
        else:
            n, lab = series, ""
        if n == name and _label_set(lab) == want:
            return float(value)
    return None


def _label_set(labels):
    labels = labels.strip()
    if labels in ("", "{}"):
        return frozenset()
    return frozenset(p.strip() for p in labels.strip("{}").split(",") if p.strip())


_all_procs = []


def kill_leftovers():
    for p in _all_procs:
        if p.poll() is None:
            p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


# --------------------------------------------------------------------------
# Raw TLS requests (request hygiene)

def tls_context(cert):
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


def raw_exchange(port, cert, request_bytes, timeout=5.0, total=10.0):
    """Send bytes over TLS to 127.0.0.1:port and read until the server closes
    or the time runs out. Returns (data, closed) where closed is True when the
    server ended the connection (EOF, close_notify or reset)."""
    ctx = tls_context(cert)
    data = b""
    closed = False
    deadline = time.monotonic() + total
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.settimeout(timeout)
            try:
                s.sendall(request_bytes)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            for _ in range(1000):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                s.settimeout(min(timeout, remaining))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError,
                        BrokenPipeError):
                    closed = True
                    break
                except ssl.SSLError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                data += chunk
    return data, closed


def parse_status(data):
    """Status code of the first HTTP response in data, or None."""
    if not data.startswith(b"HTTP/"):
        return None
    try:
        return int(data.split(b"\r\n", 1)[0].split()[1])
    except (IndexError, ValueError):
        return None
