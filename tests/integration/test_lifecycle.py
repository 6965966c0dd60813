"""Process lifecycle: SIGTERM ends the daemon with exit 0 and frees its ports;
state survives a restart; setup failures are fatal before ready."""

import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest
import requests

from harness import (ALICE, BIN, HTTP_TIMEOUT, READY_TIMEOUT, parse_status,
                     port_is_free, sign, token_from_twiml)
from urllib.parse import urlencode


def test_sigterm_exits_0_and_frees_ports(daemon_factory):
    d = daemon_factory.make(users={ALICE: "alice"}, name="term")
    assert d.reset(ALICE).status_code == 200
    assert d.stop() == 0
    assert port_is_free(d.port), "public port still bound after exit"
    assert port_is_free(d.admin_port), "admin port still bound after exit"


def test_serve_without_subcommand(daemon_factory):
    d = daemon_factory.make(start=False, name="nosub")
    d.start(argv=[str(BIN), "-c", str(d.cfg_path)])
    assert d.get("/healthz").status_code == 200
    assert d.stop() == 0


def test_server_key_created_private(daemon_factory):
    d = daemon_factory.make(name="key")
    st = d.server_key_path.stat()
    assert st.st_size == 32
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0, oct(st.st_mode)


def test_restart_keeps_state(daemon_factory):
    d = daemon_factory.make(users={ALICE: "alice"}, name="restart")
    p = d.params(ALICE)
    r1 = d.post_signed(p)
    token = token_from_twiml(r1)
    assert token, r1.text
    assert d.stop() == 0
    d.start()
    r2 = d.post_signed(p)          # a retry after a restart: same answer
    assert r2.content == r1.content
    assert d.count_tokens() == 1
    assert d.redeem(token).status_code == 200
    assert d.stop() == 0
    d.start()
    assert d.redeem(token).status_code == 410


def test_readyz_503_while_draining(daemon_factory):
    d = daemon_factory.make(config={"server": {"drain_delay": "2s"}}, name="drain")
    assert d.get("/readyz").status_code == 200
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    seen = []
    while time.monotonic() - t0 < 1.5 and d.running:
        try:
            seen.append(d.get("/readyz", timeout=(1, 1)).status_code)
        except requests.RequestException as e:
            seen.append(type(e).__name__)
        if 503 in seen:
            break
        time.sleep(0.1)
    assert 503 in seen, seen
    # /healthz still answers while draining: the process serves.
    assert d.get("/healthz", timeout=(1, 1)).status_code == 200
    assert d.wait() == 0


def test_sigterm_with_idle_connection(daemon_factory):
    d = daemon_factory.make(config={"server": {"shutdown_timeout": "3s"}}, name="idle")
    ctx = ssl.create_default_context(cafile=str(d.cert))
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            rc = d.wait(timeout=10)
            assert rc == 0
            assert time.monotonic() - t0 < 10


def test_sigterm_with_request_in_flight(daemon_factory):
    """Headers and half the body sent, then SIGTERM, then the rest: the
    request is answered and the daemon still exits 0."""
    d = daemon_factory.make(config={"server": {"shutdown_timeout": "5s"}},
                            users={ALICE: "alice"}, name="inflight")
    p = d.params(ALICE)
    body = urlencode(p).encode()
    sig = sign(d.auth_token, d.url(), p)
    head = (f"POST /sms/reset HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    ctx = ssl.create_default_context(cafile=str(d.cert))
    data = b""
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.settimeout(5)
            s.sendall(head + body[:20])
            time.sleep(0.3)
            d.signal(signal.SIGTERM)
            time.sleep(0.3)
            s.sendall(body[20:])
            deadline = time.monotonic() + 5
            for _ in range(100):
                if time.monotonic() > deadline:
                    break
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    assert d.wait() == 0
    assert parse_status(data) == 200, data[:300]
    assert b"token=" in data


def test_bad_config_fails_before_ready(daemon_factory):
    d = daemon_factory.make(start=False, name="badcfg")
    text = d.config_text().replace("[server]\n", "[server]\nbogus = 1\n", 1)
    d.cfg_path.write_text(text)
    r = subprocess.run([str(BIN), "serve", "-c", str(d.cfg_path)], capture_output=True,
                       text=True, timeout=READY_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert f"{d.cfg_path}:2:" in r.stderr, r.stderr


def test_port_in_use_fails_before_ready(daemon_factory):
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        d = daemon_factory.make(start=False, name="busy",
                                config={"server": {"listen": f"127.0.0.1:{port}"}})
        r = subprocess.run([str(BIN), "serve", "-c", str(d.cfg_path)],
                           capture_output=True, text=True, timeout=READY_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        assert r.returncode != 0
        assert r.stderr.strip()


def test_missing_tls_key_fails_before_ready(daemon_factory, tmp_path):
    d = daemon_factory.make(start=False, name="nokey",
                            config={"server": {"tls_key": str(tmp_path / "absent.pem")}})
    r = subprocess.run([str(BIN), "serve", "-c", str(d.cfg_path)], capture_output=True,
                       text=True, timeout=READY_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert r.stderr.strip()


def test_requests_after_sigterm_refused_or_answered(daemon_factory):
    """After exit nothing listens: a connection is refused, not hung."""
    d = daemon_factory.make(name="after")
    assert d.stop() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(d.url("/healthz"), verify=d.cert, timeout=HTTP_TIMEOUT)
