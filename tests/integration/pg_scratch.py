"""A scratch PostgreSQL cluster for the integration tests (scripts/pg-scratch),
one per session: a database per test, SQL through psql, and the server
stopped and started again (pg_ctl) for the outage tests. Loopback only;
every wait is bounded."""

import glob
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRATCH = REPO / "scripts" / "pg-scratch"
PG_TIMEOUT = 60             # seconds for pg-scratch, pg_ctl or psql


def _bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name))
    assert dirs, "no PostgreSQL server installed (scripts/install-deps)"
    return Path(dirs[-1])


class Cluster:
    """scripts/pg-scratch start; close() stops it and removes its directory."""

    def __init__(self):
        r = subprocess.run([str(SCRATCH), "start"], capture_output=True, text=True,
                           timeout=PG_TIMEOUT)
        assert r.returncode == 0, f"pg-scratch start failed: {r.stderr}"
        lines = r.stdout.split("\n")
        self.dir = Path(lines[0])
        self.dsn = lines[1]                     # the maintenance database
        self.port = int((self.dir / "port").read_text())
        self.bindir = _bindir()
        self._dbs = 0

    def close(self):
        subprocess.run([str(SCRATCH), "stop", str(self.dir)], capture_output=True,
                       timeout=PG_TIMEOUT)

    def _as_owner(self, argv):
        if os.getuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def pg_ctl(self, *args):
        r = subprocess.run(self._as_owner([str(self.bindir / "pg_ctl"), "-D",
                                           str(self.dir / "data"), "-w", "-t", "30",
                                           *args]),
                           capture_output=True, text=True, timeout=PG_TIMEOUT)
        assert r.returncode == 0, f"pg_ctl {args}: {r.stdout} {r.stderr}"

    def stop_server(self):
        self.pg_ctl("-m", "fast", "stop")

    def start_server(self):
        # As pg-scratch started it: same port, socket directory and limits.
        self.pg_ctl("-l", str(self.dir / "server.log"), "-o",
                    f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}"
                    " -c max_connections=200", "start")

    def psql(self, dsn, sql):
        """Rows of sql as lists of strings ('' for NULL)."""
        r = subprocess.run([str(self.bindir / "psql"), "-X", "-A", "-t", "-q",
                            "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
                           capture_output=True, text=True, timeout=PG_TIMEOUT)
        assert r.returncode == 0, f"psql {sql!r}: {r.stderr}"
        return [line.split("|") for line in r.stdout.splitlines() if line != ""]

    def create_db(self):
        """A fresh database; returns its DSN."""
        self._dbs += 1
        name = f"it_{os.getpid()}_{self._dbs}"
        self.psql(self.dsn, f"CREATE DATABASE {name}")
        # In a libpq string a later keyword wins.
        return f"{self.dsn} dbname={name}"
