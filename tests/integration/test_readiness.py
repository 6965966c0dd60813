"""Readiness that tells the truth: /readyz turns 503 while the store cannot
commit (its filesystem full, its write lock held by another process, its
file deleted) and webhooks get 503 meanwhile, so Twilio retries; it turns
200 again by itself once the store can commit, with the store intact. The
full filesystem is a small tmpfs the test mounts (the suite runs as root)."""

import contextlib
import errno
import sqlite3
import subprocess
import time

import pytest

from harness import ALICE, token_from_twiml

WAIT = 10.0     # seconds for readiness to change (probes run once a second)


def wait_readyz(d, status, timeout=WAIT):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = d.get("/readyz").status_code
        if last == status:
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"/readyz {last}, not {status}, after {timeout}s; "
                         f"log:\n{d.log_tail()}")


@contextlib.contextmanager
def small_tmpfs(path, size="4m"):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(path)], check=True, capture_output=True, timeout=10)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(path):
    """Write path until the filesystem is full; returns the file."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as f:
        for _ in range(4096):           # 256 MiB at most: far past any test tmpfs
            try:
                f.write(chunk)
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    return filler


def test_readyz_503_on_full_filesystem_then_200_after_space_freed(daemon_factory,
                                                                  tmp_path):
    with small_tmpfs(tmp_path / "store") as mnt:
        db = mnt / "twhookd.db"
        d = daemon_factory.make(config={"store": {"path": str(db)}}, start=False,
                                name="full")
        d.db_path = db
        d.add_user(ALICE, "alice")
        d.start()
        first = d.reset(ALICE)
        assert first.status_code == 200
        assert d.get("/readyz").status_code == 200

        filler = fill(mnt)
        # SQLite reuses the space its WAL already has: commits go on until
        # the store must grow. Webhooks until one cannot be stored.
        answered = 0
        for _ in range(2000):
            r = d.reset(ALICE)
            if r.status_code != 200:
                break
            answered += 1
        assert r.status_code == 503, (r.status_code, r.text)   # Twilio retries it
        wait_readyz(d, 503)
        assert d.reset(ALICE).status_code == 503
        assert "not ready" in d.log_text()

        filler.unlink()
        wait_readyz(d, 200)
        r = d.reset(ALICE)
        assert r.status_code == 200, r.text
        assert token_from_twiml(r)
        assert d.reset(ALICE, message_sid=None).status_code == 200
        assert d.stop() == 0
        with contextlib.closing(sqlite3.connect(str(db))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # Every webhook answered with a link has its token, and no other.
            assert conn.execute("SELECT count(*) FROM reset_tokens").fetchone()[0] \
                == answered + 3


def test_readyz_503_while_another_process_holds_the_write_lock(daemon_factory):
    d = daemon_factory.make(users={ALICE: "alice"}, name="locked")
    assert d.get("/readyz").status_code == 200
    holder = sqlite3.connect(str(d.db_path), timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # The probe waits out the store's busy timeout (5 s) before it fails.
        wait_readyz(d, 503, timeout=15)
        assert d.reset(ALICE).status_code == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_readyz(d, 200, timeout=15)
    assert d.reset(ALICE).status_code == 200


def test_deleted_database_is_reported_never_served(daemon_factory):
    d = daemon_factory.make(users={ALICE: "alice"}, name="deleted")
    assert d.reset(ALICE).status_code == 200
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            d.db_path.with_name(d.db_path.name + suffix).unlink()
    wait_readyz(d, 503)
    assert d.reset(ALICE).status_code == 503
    assert "removed or replaced" in d.log_text(), d.log_tail()
    time.sleep(1.5)                     # it stays so: no store to serve from
    assert d.get("/readyz").status_code == 503
    assert d.stop() == 0
