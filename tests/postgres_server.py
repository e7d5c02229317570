"""A throwaway PostgreSQL server for the tests of shared study storage (several workers, one database).

Debian's `postgresql` package (installed by `make postgres` where missing) provides the binaries; the server
runs on a free loopback port from a fresh folder in /tmp and is gone, folder and all, when the context exits.
PostgreSQL refuses to run as root, so under root every server command runs as the package's `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# Where Debian installs each major version's server binaries (not on PATH there).
DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"  # the OS user Debian's package creates, and the database superuser initdb makes
DATABASE = "finetext_test"
START_TIMEOUT_S = 60  # pg_ctl's wait for the server to accept connections; it starts in about a second


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its folder (data, log and unix socket), loopback port and test database."""

    folder: Path
    port: int
    database: str

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Optuna's RDBStorage takes (trust auth: no password)."""
        return f"postgresql+psycopg2://{SERVER_USER}@127.0.0.1:{self.port}/{self.database}"


def postgres_bin_dir() -> Path | None:
    """The newest Debian server install's bin folder, else the real folder of an `initdb` on PATH, else None."""
    debian = sorted(Path("/").glob(DEBIAN_BIN_DIRS.lstrip("/")), key=lambda d: _major_version(d.parent.name))
    installed = [d for d in debian if (d / "initdb").is_file()]
    if installed:
        return installed[-1]
    on_path = shutil.which("initdb")  # resolved: a symlink's folder (/usr/local/bin) may lack pg_ctl and createdb
    return Path(on_path).resolve().parent if on_path else None


def _major_version(name: str) -> int:
    """'15' -> 15, so 9 sorts before 15 (string order would not); folders that are not versions sort first."""
    return int(name) if name.isdigit() else -1


def require_postgres() -> Path:
    """The server's bin folder; skips only where it cannot be installed (not root, or no apt-get), and fails
    anywhere it can be or under CI, so the shared-storage tests never silently stop running."""
    bin_dir = postgres_bin_dir()
    running_as_root = os.geteuid() == 0
    if bin_dir is not None and (not running_as_root or _user_exists(SERVER_USER)):
        return bin_dir
    message = (f"PostgreSQL's server is not installed (no initdb in {DEBIAN_BIN_DIRS} or on PATH)"
               if bin_dir is None else f"PostgreSQL is installed but the `{SERVER_USER}` user it runs as is missing")
    installable = running_as_root and shutil.which("apt-get") is not None
    if installable:
        pytest.fail(f"{message}, though it can be here: run `make postgres` (apt-get install postgresql).")
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run the shared-storage tests: install Debian's postgresql package.")
    pytest.skip(f"{message} and cannot be installed here (needs root and apt-get)")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def postgres_server(bin_dir: Path, database: str = DATABASE) -> Iterator[PostgresServer]:
    """Starts a server with `database` created, yields it, then stops it and deletes its folder, also when
    the body raises."""
    # /tmp rather than pytest's tmp_path: the postgres user cannot enter root's 0700 /tmp/pytest-of-root, and a
    # short path keeps the unix socket's path within its 107-character limit.
    folder = Path(tempfile.mkdtemp(prefix="finetext-postgres-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, user=SERVER_USER, group=SERVER_USER)
        server = PostgresServer(folder=folder, port=_free_loopback_port(), database=database)
        _init_cluster(bin_dir, folder)
        _start(bin_dir, server)
        try:
            _run(bin_dir, folder, "createdb", "--host=127.0.0.1", f"--port={server.port}",
                 f"--username={SERVER_USER}", database)
            yield server
        finally:
            _run(bin_dir, folder, "pg_ctl", "stop", f"--pgdata={folder / 'data'}", "--mode=immediate", "--wait")
    finally:
        shutil.rmtree(folder)


def _free_loopback_port() -> int:
    """A port no one listens on now; another process could take it before the server binds it, which the start
    error would then say."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _init_cluster(bin_dir: Path, folder: Path) -> None:
    """A cluster whose superuser is `postgres`, with trust auth on the unix socket and loopback (a test server
    reachable from this machine only); --no-sync because it is thrown away."""
    _run(bin_dir, folder, "initdb", f"--pgdata={folder / 'data'}", f"--username={SERVER_USER}", "--auth=trust",
         "--encoding=UTF8", "--locale=C", "--no-sync")


def _start(bin_dir: Path, server: PostgresServer) -> None:
    """Listens on 127.0.0.1 only, with its socket in its own folder (not the system's /var/run/postgresql);
    --wait returns once it accepts connections, and a failure shows the server's log."""
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={server.folder}"
    log = server.folder / "server.log"
    try:
        _run(bin_dir, server.folder, "pg_ctl", "start", f"--pgdata={server.folder / 'data'}", f"--log={log}",
             f"--options={options}", "--wait", f"--timeout={START_TIMEOUT_S}")
    except subprocess.CalledProcessError as error:
        server_log = log.read_text() if log.is_file() else "(no log written)"
        raise RuntimeError(f"PostgreSQL did not start on port {server.port}:\n{server_log}") from error


def _run(bin_dir: Path, folder: Path, program: str, *args: str) -> None:
    """Runs a server program, as the postgres user when we are root (the server refuses root) and as ourselves
    otherwise; its output is kept for the error and never printed."""
    as_server_user = {"user": SERVER_USER, "group": SERVER_USER, "extra_groups": []} if os.geteuid() == 0 else {}
    env = {**os.environ, "HOME": str(folder), "LC_ALL": "C"}
    try:
        subprocess.run([str(bin_dir / program), *args], cwd=folder, env=env, check=True, capture_output=True,
                       text=True, **as_server_user)
    except subprocess.CalledProcessError as error:
        error.add_note(f"{program} said:\n{error.stdout}{error.stderr}")
        raise
