"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, served on a free loopback port.

Install the server binaries with scripts/ensure-test-tools.sh.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

PG_ROOT = Path("/usr/lib/postgresql")
FALLBACK_USER = "sepsis-test"  # created by scripts/ensure-test-tools.sh when `postgres` is absent
SUPERUSER = "postgres"  # database role, independent of the OS user running the server
SETUP_HINT = "run scripts/ensure-test-tools.sh (as root) to install PostgreSQL"


def _version_key(bindir: Path) -> tuple[int, ...]:
    parts = bindir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


def find_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/*/bin with initdb; else wherever initdb is on PATH."""
    found = sorted((p.parent for p in PG_ROOT.glob("*/bin/initdb")), key=_version_key)
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def server_user() -> str | None:
    """OS user to run the server as: None means the current user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise LookupError(f"no unprivileged user (postgres or {FALLBACK_USER}) to run PostgreSQL")


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    if find_bindir() is None:
        return f"PostgreSQL server binaries not found; {SETUP_HINT}"
    try:
        server_user()
    except LookupError as exc:
        return f"{exc}; {SETUP_HINT}"
    return None


def _free_port() -> int:
    # Racy in theory (the port is released before the server binds it), fine for tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """`with PostgresCluster() as pg:` gives a running server with database `db`; see `.url`."""

    def __init__(self, db: str = "sepsis_test") -> None:
        bindir = find_bindir()
        if bindir is None:
            raise FileNotFoundError(f"PostgreSQL server binaries not found; {SETUP_HINT}")
        self.bindir = bindir
        self.db = db
        self.user = server_user()
        self.port = _free_port()
        # Under /tmp rather than pytest's 0700 tmp tree, so the server user can reach it.
        self.root = Path(tempfile.mkdtemp(prefix="sepsis-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._init()
            self.start()
            self._createdb(self.db)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _init(self) -> None:
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._server_cmd(
            "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # In the config file (not pg_ctl -o) so that start() after stop() needs no arguments.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Durability is pointless for throwaway data; these make writes much faster.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self) -> None:
        """Start the server (again); returns once it accepts connections."""
        self._server_cmd(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "start"
        )
        self.running = True

    def stop(self) -> None:
        """Stop the server, disconnecting clients (data is kept for start())."""
        self._server_cmd("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        self.running = False

    def close(self) -> None:
        """Stop the server if it runs and delete all of its files."""
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database."""
        return self.url_for(self.db)

    @property
    def dsn(self) -> str:
        """libpq/psycopg connection string of the default database."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{self.db}"

    def url_for(self, db: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its SQLAlchemy URL."""
        self._createdb(name)
        return self.url_for(name)

    def _createdb(self, name: str) -> None:
        # A client over TCP: needs no particular OS user.
        self._run([str(self.bindir / "createdb"), *self._conn_args(), name])

    def _conn_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]

    # -- processes -------------------------------------------------------------------------

    def _server_cmd(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        self._run(cmd)

    def _run(self, cmd: list[str]) -> None:
        # cwd: the server user may not be allowed into the caller's directory (e.g. /root).
        # PG* variables from the caller's shell must not redirect the tools elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                + (f"\nserver log (tail):\n{log}" if log else "")
            )
