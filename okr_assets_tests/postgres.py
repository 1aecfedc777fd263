"""A real PostgreSQL server for the tests: a throw-away cluster started from the installed
binaries, or the server named by ``OKR_TEST_POSTGRES_URL`` (a role allowed to create databases).

Each test that needs PostgreSQL gets its own fresh database, so tests never see each other's rows.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from okr_assets_tests.processes import free_port

USER = "okr_test"
PASSWORD = "okr_test"  # a throw-away local test cluster, listening on 127.0.0.1 only


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    admin_db: str = "postgres"
    datadir: Path | None = None  # set when the tests started the cluster themselves
    _options: str = ""  # the server options it was started with (for start after stop)

    def url(self, database: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def _admin(self) -> Any:  # a psycopg2 connection
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=self.admin_db)
        con.autocommit = True
        return con

    def create_database(self, prefix: str = "okr") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with contextlib.closing(self._admin()) as con, con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')  # name is ours: a prefix and hex digits
        return name

    def restart(self) -> None:
        """Restart a cluster the tests started (fast mode: open connections are cut)."""
        self._pg_ctl("restart")

    def stop(self) -> None:
        """Stop a cluster the tests started: the warehouse is down until ``start``."""
        self._pg_ctl("stop")

    def start(self) -> None:
        self._pg_ctl("start")

    def _pg_ctl(self, action: str) -> None:
        # The log file matters: without it the new server would hold our output pipe open. The
        # options are kept in the data folder (postmaster.opts) by the first start.
        if self.datadir is None:
            raise RuntimeError(f"cannot {action} a server given by OKR_TEST_POSTGRES_URL")
        argv = [str(_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                "-l", str(self.datadir.parent / "postgres.log"), "-w", "-t", "60", action]
        if action == "start":
            argv[argv.index("-m"):argv.index("-m") + 2] = ["-o", self._options]
        done = subprocess.run(_as_owner(argv), capture_output=True, text=True, timeout=90)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} failed: {done.stderr or done.stdout}")

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self._admin()) as con, con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
                       "(Debian: apt-get install postgresql) or set OKR_TEST_POSTGRES_URL")


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the 'postgres' system user."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root but there is no 'postgres' system user to own the "
                           "test cluster; set OKR_TEST_POSTGRES_URL instead") from exc
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Yield a running server: the one in OKR_TEST_POSTGRES_URL, else a fresh temporary cluster.

    The cluster lives in its own directory under the system temp dir, not under pytest's
    (whose 0700 parents the 'postgres' user cannot enter), and is deleted afterwards."""
    given = os.environ.get("OKR_TEST_POSTGRES_URL")
    if given:
        parts = urlsplit(given)
        yield PostgresServer(parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres",
                             parts.password or "", (parts.path or "/postgres").lstrip("/") or "postgres")
        return
    bindir = _bindir()
    workdir = Path(tempfile.mkdtemp(prefix="okr-test-postgres-"))
    datadir, pwfile, log = workdir / "data", workdir / "pwfile", workdir / "postgres.log"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(pwfile, "postgres")
    def run(argv: list[str]) -> None:
        done = subprocess.run(_as_owner(argv), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr or done.stdout}\n{tail}")

    run([str(bindir / "initdb"), "-D", str(datadir), "-U", USER, f"--pwfile={pwfile}",
         "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"])
    port = free_port()
    # Durability off: a test cluster is thrown away, and fsyncs would dominate the suite's time.
    options = (f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    run([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
    try:
        yield PostgresServer("127.0.0.1", port, USER, PASSWORD, datadir=datadir, _options=options)
    finally:
        with contextlib.suppress(Exception):
            run([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))
