"""The servers a newsflow cluster needs, started from Debian's packages and the dev group on
127.0.0.1, each as a child process with its files under one folder: PostgreSQL (Airflow's
metadata and the lake's catalog), Redis (Celery's broker) and an S3-compatible server (moto's,
in-memory: it stands in for S3 or MinIO). Used by `make cluster` (scripts/cluster.py) and the
tests (tests/postgres.py, tests/test_cluster.py).

PostgreSQL refuses to run as root, so as root its cluster belongs to the ``postgres`` user
(``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A PostgreSQL cluster in ``root`` on 127.0.0.1 (trust auth, user ``postgres``); kept
    between starts when ``root`` is kept."""

    def __init__(self, root: Path, port: int | None = None, bindir: Path | None = None) -> None:
        self.bindir = bindir or postgres_bin()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL's server binaries are missing: `make postgres`")
        self.root = Path(root)
        self.data = self.root / "data"
        self.port = port or free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
        return done

    def start(self) -> Postgres:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
            " -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        return self

    def database(self, name: str) -> str:
        """Database ``name``, created if missing; its libpq connection string."""
        exists = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-Atc",
            f"select 1 from pg_database where datname = '{name}'",
        )
        if exists.stdout.strip() != "1":
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"dbname={name} host=127.0.0.1 port={self.port} user=postgres"

    def drop_database(self, name: str) -> None:
        """Remove database ``name`` if it exists."""
        self._run(
            "dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "--if-exists", name
        )

    def sqlalchemy_url(self, name: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self, remove: bool = False) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    """Debian's redis-server on 127.0.0.1, nothing persisted."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise RuntimeError("redis-server is missing: `make redis` installs Debian's")
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        stop_process(self.proc)


class S3Server:
    """moto's S3 server in a process of its own (objects in memory), with ``bucket``."""

    KEY_ID, SECRET = "newsflow-cluster-key", "newsflow-cluster-secret"

    def __init__(self, root: Path, bucket: str, port: int | None = None) -> None:
        self.root = Path(root)
        self.bucket = bucket
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.KEY_ID,
            "AWS_SECRET_ACCESS_KEY": self.SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
        }

    def start(self) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "s3.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.proc, "the S3 server (moto)")
        create_bucket(self.bucket, self.env)
        return self

    def stop(self) -> None:
        stop_process(self.proc)


def create_bucket(bucket: str, env: dict[str, str]) -> None:
    """Create ``bucket`` on the S3-compatible service ``env`` points at, unless it exists."""
    from newsflow.staging import s3_filesystem
    from pyarrow import fs

    s3 = s3_filesystem(env, allow_bucket_creation=True)
    if s3.get_file_info(bucket).type == fs.FileType.NotFound:
        s3.create_dir(bucket)


def stop_process(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM ``proc``'s process group (it was started in a session of its own), then SIGKILL
    what is left after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
