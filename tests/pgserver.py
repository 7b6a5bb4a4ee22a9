"""A throwaway PostgreSQL server for tests, started from the real server binaries.

``PostgresServer`` runs ``initdb`` on a fresh temporary directory, starts the server with
``pg_ctl`` on a free port of 127.0.0.1 (no TCP on other addresses, its Unix socket inside the
temporary directory) and stops it again, removing the directory.  The settings trade durability
for speed (``fsync=off`` and friends): the data only has to live as long as the test session.

PostgreSQL refuses to run as root.  When the tests run as root, the server runs as an
unprivileged user instead: ``$NAS_PG_USER`` if set, else an existing ``postgres`` or ``nasdb``
user, else a ``nasdb`` system user created with ``useradd``, else ``nobody``.  The temporary
directory is handed to that user and the binaries are started through ``runuser`` (or ``su``).
Run as any other user, the binaries run directly as that user.

Usage::

    with PostgresServer() as server:
        engine = sqlalchemy.create_engine(server.url)
        other_url = server.create_database("other")
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_pg_bin"]

REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")

# Settings for a fast, disposable server: no durability, no background noise.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "max_wal_size": "256MB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "off",
    "jit": "off",
    "log_min_messages": "warning",
}

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _has_all(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED_BINARIES)


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``.

    ``PATH`` is searched first (symbolic links are resolved, so a link in ``/usr/local/bin``
    leads to the real installation, where the three live beside ``psql`` and friends), then
    the Debian layout ``/usr/lib/postgresql/<version>/bin``, newest version first.
    """
    initdb = shutil.which("initdb")
    if initdb is not None:
        for candidate in (Path(initdb).resolve().parent, Path(initdb).parent):
            if _has_all(candidate):
                return candidate
    versions = glob.glob("/usr/lib/postgresql/*/bin")

    def version_key(path: str) -> tuple[int, ...]:
        digits = re.findall(r"\d+", Path(path).parent.name)
        return tuple(int(d) for d in digits)

    for directory in sorted(versions, key=version_key, reverse=True):
        if _has_all(Path(directory)):
            return Path(directory)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def server_user() -> str | None:
    """The user to run PostgreSQL as, or ``None`` to run it as the current user.

    Only root needs another user; see the module docstring for the order of choices.
    """
    if os.geteuid() != 0:
        return None
    chosen = os.environ.get("NAS_PG_USER")
    if chosen:
        if not _user_exists(chosen):
            raise RuntimeError(f"NAS_PG_USER={chosen!r} is not a user on this machine")
        return chosen
    for name in ("postgres", "nasdb"):
        if _user_exists(name):
            return name
    useradd = shutil.which("useradd")
    if useradd is not None:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "nasdb"],
            capture_output=True,
            check=False,
        )
        if _user_exists("nasdb"):
            return "nasdb"
    if _user_exists("nobody"):
        return "nobody"
    raise RuntimeError("running as root and found no unprivileged user to run PostgreSQL as")


class PostgresServer:
    """A temporary PostgreSQL server on 127.0.0.1, usable as a context manager.

    ``start()`` creates the cluster and one database, ``dbname``, whose SQLAlchemy URL is
    ``url``; ``create_database()`` adds more, for tests that need isolated databases.
    ``stop()`` stops the server and deletes every file it wrote.
    """

    def __init__(
        self,
        dbname: str = "nas",
        *,
        bin_dir: Path | None = None,
        user: str | None = None,
        settings: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or "
                "in /usr/lib/postgresql/*/bin; run .ci/install-postgres"
            )
        self.bin_dir: Path = found
        self.dbname = _check_name(dbname)
        self._user_override = user
        self.user: str | None = None
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.root: Path | None = None
        self._running = False

    # -- paths -----------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket (inside the temporary directory)."""
        return self._root() / "socket"

    @property
    def log_file(self) -> Path:
        """The server log written by ``pg_ctl -l``."""
        return self._root() / "server.log"

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self.root

    # -- URLs ------------------------------------------------------------------------------

    def url_for(self, dbname: str) -> str:
        """The SQLAlchemy (psycopg 3) URL of database ``dbname`` on this server."""
        if self.port is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database made by ``start()``."""
        return self.url_for(self.dbname)

    @property
    def dsn(self) -> str:
        """A libpq connection string for the ``postgres`` maintenance database."""
        return f"host={self.host} port={self.port} user=postgres dbname=postgres"

    # -- running binaries ------------------------------------------------------------------

    def _command(self, binary: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / binary), *args]
        if self.user is None:
            return argv
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", self.user, "--", *argv]
        return ["su", self.user, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, binary: str, *args: str, timeout: float = 120.0) -> str:
        """Run a PostgreSQL binary as the server user; its output, or RuntimeError."""
        try:
            done = subprocess.run(
                self._command(binary, *args),
                cwd=self._root(),  # the server user may not be able to enter our cwd
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"},
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(
                f"{binary} timed out after {timeout:g}s\n{self.log_tail()}"
            ) from error
        if done.returncode != 0:
            raise RuntimeError(
                f"{binary} {shlex.join(args)} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no server log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- server log ({self.log_file}) ---\n{tail}"

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and create ``dbname``; returns ``self``."""
        if self._running:
            return self
        self.user = self._user_override if self._user_override else server_user()
        atexit.register(self.stop)  # a safety net should the caller never reach stop()
        try:
            self._init_cluster()
            self._start_server()
            self._create(self.dbname)
        except BaseException:
            self.stop()
            raise
        return self

    def _init_cluster(self) -> None:
        # Not under pytest's tmp_path: that is private to the user running the tests.
        base = tempfile.gettempdir()
        if self.user is not None and not _reachable(Path(base)):
            base = "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="nas-pg-", dir=base))
        self.socket_dir.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )

    def restart(self, down_for: float = 0.0) -> None:
        """Restart the server as an administrator does (``pg_ctl stop -m fast``: clients see
        their connections drop, committed work is kept), stay down for ``down_for`` seconds,
        and start it again on the same port and data. Not ``-m immediate``: that is a crash,
        and with this server's ``synchronous_commit=off`` a crash loses the last commits."""
        if not self._running:
            raise RuntimeError("the PostgreSQL server has not been started")
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", timeout=60)
        time.sleep(down_for)
        self._start_server(attempts=1, port=self.port)

    def _start_server(self, attempts: int = 3, port: int | None = None) -> None:
        for attempt in range(attempts):
            self.port = port or free_port(self.host)
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c {shlex.quote(f'unix_socket_directories={self.socket_dir}')}",
                *(f"-c {shlex.quote(f'{key}={value}')}" for key, value in self.settings.items()),
            ]  # pg_ctl hands these to /bin/sh, hence the quoting
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "-l",
                    str(self.log_file),
                    "-o",
                    " ".join(options),
                    timeout=self.start_timeout + 30,
                )
            except RuntimeError:
                # Another process may have taken the port between probing and binding.
                lost_port = "could not bind" in self.log_tail(lines=200)
                if not lost_port or attempt == attempts - 1:
                    raise
                self._kill_postmaster()
                continue
            self._running = True
            return

    def _create(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                        sql.Identifier(name)
                    )
                )
        except psycopg.Error as error:
            raise RuntimeError(f"could not create database {name!r}: {error}") from error

    def create_database(self, name: str) -> str:
        """Create database ``name`` (lowercase letters, digits, _) and return its URL."""
        if not self._running:
            raise RuntimeError("the PostgreSQL server has not been started")
        self._create(_check_name(name))
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete its temporary directory."""
        if self.root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                try:
                    stop = ("stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
                    self._run("pg_ctl", *stop, timeout=60)
                except RuntimeError:
                    self._kill_postmaster()
        finally:
            self._running = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            atexit.unregister(self.stop)

    def _kill_postmaster(self) -> None:
        """Last resort when ``pg_ctl stop`` fails: SIGQUIT the postmaster, then SIGKILL."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                if not _alive(pid):
                    return
                time.sleep(0.05)

    @property
    def running(self) -> bool:
        """Whether ``start()`` succeeded and ``stop()`` has not been called since."""
        return self._running

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port {self.port}" if self._running else "stopped"
        return f"PostgresServer({self.dbname!r}, {state}, bin_dir={str(self.bin_dir)!r})"


def _check_name(name: str) -> str:
    if not _DB_NAME.match(name):
        raise ValueError(f"database name {name!r}: use lowercase letters, digits and _")
    return name


def _reachable(directory: Path) -> bool:
    """Whether every directory on the way to ``directory`` can be entered by anyone."""
    path = directory.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
