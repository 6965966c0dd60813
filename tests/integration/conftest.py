"""Fixtures for the twhookd integration suite.

- tls_cert: a self-signed EC P-256 certificate for 127.0.0.1/localhost, made
  with the openssl CLI once per session.
- daemon: one shared twhookd (alice and bob registered) for tests that do not
  interfere with each other.
- daemon_factory / module_daemon_factory: start more daemons with their own
  config; each is stopped with SIGTERM at teardown and must exit 0.
- twhookd: run the CLI.
- twilio_ca / fake_twilio / module_fake_twilio: a throwaway CA and a fake
  Twilio Messages API (fake_twilio.py) for the PIN flow and the outbox.
- pg_cluster / pg_dsn: one scratch PostgreSQL cluster for the session
  (pg_scratch.py), and a fresh database in it for each test that asks.

Every test runs under a wall-clock limit (TEST_TIMEOUT) so a hung daemon can
never hang the suite.
"""

import signal
import subprocess

import pytest

import fake_twilio
import harness
import pg_scratch
from harness import ALICE, BOB, BIN, Daemon

TEST_TIMEOUT = 60  # seconds per test phase (setup, call, teardown)


class _TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _TestTimeout(f"test phase exceeded {TEST_TIMEOUT}s")


def _bounded(item_phase):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _bounded("setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _bounded("call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _bounded("teardown")


def pytest_sessionfinish(session, exitstatus):
    harness.kill_leftovers()


# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def twhookd_bin():
    if not BIN.exists():
        pytest.skip(f"twhookd binary not built: {BIN} (set TWHOOKD_BIN)")
    return BIN


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(cert path, key path): self-signed, EC P-256, SAN IP:127.0.0.1 and DNS:localhost."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return cert, key


class DaemonFactory:
    """Makes Daemon objects in fresh directories; stops them all at close()."""

    def __init__(self, tmp_path_factory, tls_cert, label):
        self._tmp = tmp_path_factory
        self._cert, self._key = tls_cert
        self._label = label
        self.daemons = []

    def make(self, config=None, users=None, start=True, secondary=True, name="d"):
        workdir = self._tmp.mktemp(f"{self._label}-{name}")
        d = Daemon(workdir, self._cert, self._key, config=config, users=users,
                   secondary=secondary, name=name)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    __call__ = make

    def close(self):
        problems = []
        for d in self.daemons:
            if d.proc is None:
                continue
            was_running = d.running
            try:
                rc = d.stop()
            except AssertionError as e:
                problems.append(f"{d.name}: {e}")
                continue
            if was_running and rc != 0:
                problems.append(f"{d.name}: exit code {rc} after SIGTERM, expected 0; "
                                f"log:\n{d.log_tail()}")
        if problems:
            raise AssertionError("\n".join(problems))


@pytest.fixture
def daemon_factory(twhookd_bin, tmp_path_factory, tls_cert):
    f = DaemonFactory(tmp_path_factory, tls_cert, "fn")
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="module")
def module_daemon_factory(twhookd_bin, tmp_path_factory, tls_cert):
    f = DaemonFactory(tmp_path_factory, tls_cert, "mod")
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def _session_factory(twhookd_bin, tmp_path_factory, tls_cert):
    f = DaemonFactory(tmp_path_factory, tls_cert, "session")
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def daemon(_session_factory):
    """The shared daemon: alice and bob registered, a secondary token set."""
    d = _session_factory.make(users={ALICE: "alice", BOB: "bob"}, name="shared")
    return d


@pytest.fixture
def live(daemon):
    """The shared daemon, checked alive before the test uses it."""
    assert daemon.running, f"shared daemon died; log:\n{daemon.log_tail()}"
    return daemon


@pytest.fixture
def twhookd(twhookd_bin):
    """Run the CLI: twhookd(*args, env=None) -> CompletedProcess."""
    return lambda *args, **kw: harness.run_cli(list(args), **kw)


@pytest.fixture(scope="session")
def twilio_ca(tmp_path_factory):
    """Paths of a throwaway CA and the fake API's certificate (IP:127.0.0.1)."""
    return fake_twilio.make_ca(tmp_path_factory.mktemp("twilio-ca"))


@pytest.fixture
def fake_twilio_api(twilio_ca):
    """A fresh fake Twilio Messages API for one test."""
    with fake_twilio.FakeTwilio(twilio_ca) as fake:
        yield fake


@pytest.fixture(scope="module")
def module_fake_twilio_api(twilio_ca):
    """A fake Twilio Messages API shared by one module's tests."""
    with fake_twilio.FakeTwilio(twilio_ca) as fake:
        yield fake


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's scratch PostgreSQL cluster, stopped at the end."""
    cluster = pg_scratch.Cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_dsn(pg_cluster):
    """A database of the test's own in the session cluster: its DSN."""
    return pg_cluster.create_db()
