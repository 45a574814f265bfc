"""`make cluster`: newsflow's scaled-out shape on one machine, in the foreground.

    PostgreSQL      Airflow's metadata (database `airflow`) and the lake's catalog (`newsflow_lake`)
    Redis           Celery's broker
    S3 (moto)       the bucket: the lake's Parquet files and the runs' staged files
    Airflow 3       api-server (UI and execution API), scheduler, dag-processor, triggerer
    N workers       Celery workers, each with a data folder of its own that nothing else reads
                    and a name of its own (the task instance's host in the UI)

The workers share nothing but the catalog and the bucket, as on separate machines. moto keeps
its objects in memory: this is a rehearsal of the shape, not a place to keep data; with
CLUSTER_S3_ENDPOINT (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, CLUSTER_BUCKET) it uses a
real S3-compatible service instead. Everything lives under data/cluster/ (CLUSTER_ROOT);
Ctrl-C stops every process it started. The settings a client needs to read the store are
written to data/cluster/newsflow.env:

    set -a; source data/cluster/newsflow.env; set +a; .venv/bin/newsflow sql "select ..."

Used by the tests too (tests/test_cluster.py), on free ports under a temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.services import (  # noqa: E402
    Postgres,
    Redis,
    S3Server,
    create_bucket,
    free_port,
    stop_process,
    wait_for_port,
)

VENV_BIN = Path(sys.executable).parent

# The Airflow and newsflow settings every component gets, whatever runs it (this script, or
# docker-compose.yml, which a test checks against these names). {placeholders} are filled in
# by `Cluster.env`.
AIRFLOW_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "{metadata_url}",
    "AIRFLOW__CELERY__RESULT_BACKEND": "db+{metadata_url}",
    "AIRFLOW__CELERY__BROKER_URL": "{broker_url}",
    "AIRFLOW__CORE__FERNET_KEY": "{fernet_key}",
    "AIRFLOW__API_AUTH__JWT_SECRET": "{jwt_secret}",
    "AIRFLOW__API__SECRET_KEY": "{api_secret}",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "{api_url}/execution/",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "{paused}",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    "NEWSFLOW_CATALOG": "postgres:{catalog}",
    "NEWSFLOW_DATA_PATH": "s3://{bucket}/lake",
    "NEWSFLOW_RUNS_PATH": "s3://{bucket}/staged",
    "NEWSFLOW_SEARCH_PATH": "s3://{bucket}/search",
    "NEWSFLOW_FEEDS": "{feeds}",
}


class Cluster:
    def __init__(
        self,
        root: Path,
        *,
        workers: int = 2,
        api_port: int | None = None,
        feeds: Path,
        extra_env: dict[str, str] | None = None,
        paused: bool = False,
        concurrency: int = 2,
        postgres_root: Path | None = None,
        triggerer: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.workers = workers
        self.api_port = api_port or free_port()
        self.feeds = Path(feeds).absolute()
        self.extra_env = dict(extra_env or {})
        self.paused = paused
        self.concurrency = concurrency
        # PostgreSQL runs as its own user when started as root: its folder must be reachable
        # by that user (a test's temporary folder is not).
        self.postgres_root = postgres_root or self.root / "postgres"
        self.triggerer = triggerer  # no newsflow task defers: only for the user's own DAGs
        self.procs: dict[str, subprocess.Popen] = {}
        self.services: list = []
        self.bucket = os.environ.get("CLUSTER_BUCKET", "newsflow")
        self.s3_env: dict[str, str] = {}

    # -- settings ---------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        from cryptography.fernet import Fernet

        values = {
            "fernet_key": Fernet.generate_key().decode(),
            "jwt_secret": secrets.token_urlsafe(32),
            "api_secret": secrets.token_urlsafe(32),
        }
        path.write_text(json.dumps(values))
        path.chmod(0o600)
        return values

    def env(self, data_dir: Path) -> dict[str, str]:
        """The environment of one component whose own folder is ``data_dir``."""
        values = {
            "metadata_url": self.pg.sqlalchemy_url("airflow"),
            "broker_url": self.redis.url,
            "api_url": self.api_url,
            "paused": str(self.paused),
            "catalog": self.catalog,
            "bucket": self.bucket,
            "feeds": str(self.feeds),
            **self._secrets(),
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSFLOW_"))}
        env.update({k: v.format(**values) for k, v in AIRFLOW_SETTINGS.items()})
        env.update(self.s3_env)
        env.update(
            {
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_HOME": str(self.root / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                # One log folder on this machine, which the UI reads (with workers on other
                # machines: remote logging to the bucket, docs/operations.md).
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.root / "airflow" / "logs"),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                # One api-server process: enough for a UI and two workers on one machine.
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.root / "airflow" / "simple_auth_manager_passwords.json.generated"
                ),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "newsflow.procs.worker_name",
                # Its own folder: the search index's cache, the CLI's lock, its temp files.
                "NEWSFLOW_DATA_DIR": str(data_dir),
            }
        )
        env.update(self.extra_env)
        return env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client_env(self) -> dict[str, str]:
        """What a client needs to reach the store (written to newsflow.env)."""
        env = self.env(self.root / "client")
        keys = [
            "NEWSFLOW_CATALOG",
            "NEWSFLOW_DATA_PATH",
            "NEWSFLOW_SEARCH_PATH",
            "NEWSFLOW_DATA_DIR",
            *self.s3_env,
        ]
        return {k: env[k] for k in keys}

    # -- processes --------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def airflow_cli(self, *args: str, env: dict[str, str]) -> str:
        """`airflow ARGS` with ``env`` (a component's, `env()`); its output, or RuntimeError."""
        done = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.postgres_root)
        self.services.append(self.pg)
        self.pg.start()
        self.pg.database("airflow")
        if not os.environ.get("CLUSTER_S3_ENDPOINT"):
            # moto's bucket starts empty: a catalog kept from an earlier start would name
            # data files that are gone, so the lake starts afresh with it.
            self.pg.drop_database("newsflow_lake")
        self.catalog = self.pg.database("newsflow_lake")
        self.redis = Redis(self.root / "redis")
        self.services.append(self.redis)
        self.redis.start()
        endpoint = os.environ.get("CLUSTER_S3_ENDPOINT")
        if endpoint:
            self.s3_env = {
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
                "AWS_ENDPOINT_URL": endpoint,
            }
        else:
            s3 = S3Server(self.root / "s3", self.bucket)
            self.services.append(s3)
            s3.start()
            self.s3_env = s3.env
        create_bucket(self.bucket, self.s3_env)
        control = self.env(self.root / "control")
        self.airflow_cli("db", "migrate", env=control)
        self.airflow_cli(
            "pools", "set", "lake_writer", "1", "newsflow: the lake's single writer", env=control
        )
        airflow = str(VENV_BIN / "airflow")
        self._start("api-server", [airflow, "api-server"], control)
        for name in ("scheduler", "dag-processor", "triggerer"):
            if name != "triggerer" or self.triggerer:
                self._start(name, [airflow, name], control)
        for n in range(1, self.workers + 1):
            name = f"worker-{n}"
            env = self.env(self.root / "workers" / name)
            env["NEWSFLOW_WORKER_NAME"] = name
            self._start(
                name,
                [
                    airflow,
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"{name}@%h",
                    "--concurrency",
                    str(self.concurrency),
                    "--skip-serve-logs",
                    # no start-up handshake with the other workers (nothing to share)
                    "--without-mingle",
                    "--without-gossip",
                ],
                env,
            )
        wait_for_port(self.api_port, self.procs["api-server"], "the Airflow api-server", 180)
        self._wait_ready()
        env_file = self.root / "newsflow.env"
        env_file.write_text(
            "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.client_env().items())
        )
        env_file.chmod(0o600)
        return self

    def _wait_ready(self, timeout: float = 180) -> None:
        """Until the api-server answers its health check and every Celery worker has said it
        is ready (consuming from the broker): a run started before a worker is ready gets all
        its tasks on the others."""
        deadline = time.monotonic() + timeout
        waiting = ["api-server", *(f"worker-{n}" for n in range(1, self.workers + 1))]
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): {self.tail(name)}")
            if "api-server" in waiting:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5)
                    waiting.remove("api-server")
            for name in [w for w in waiting if w.startswith("worker-")]:
                log = self.root / "logs" / f"{name}.log"
                if log.exists() and re.search(
                    rf"\b{name}@\S+ ready\.", log.read_text(errors="replace")
                ):
                    waiting.remove(name)
            if not waiting:
                return
            time.sleep(1)
        raise RuntimeError(f"not ready within {timeout:g} s: {', '.join(waiting)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.root / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            stop_process(proc, timeout=30)
        for service in reversed(self.services):
            service.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C, and a TERM or HUP from whoever started it, stop everything it started.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    root = Path(os.environ.get("CLUSTER_ROOT", ROOT / "data" / "cluster"))
    workers = int(os.environ.get("CLUSTER_WORKERS", "2"))
    port = int(os.environ.get("CLUSTER_PORT", "8080"))
    newsroom = None
    feeds = os.environ.get("NEWSFLOW_FEEDS")
    extra: dict[str, str] = {}
    if not feeds:
        root.mkdir(parents=True, exist_ok=True)
        feeds_path = root / "newsroom-feeds.yaml"
        feeds_path.unlink(missing_ok=True)
        newsroom = subprocess.Popen(
            [
                str(VENV_BIN / "newsflow"),
                "newsroom",
                "--port",
                os.environ.get("NEWSROOM_PORT", "8765"),
                "--feeds-out",
                str(feeds_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(100):
            if feeds_path.exists() and feeds_path.stat().st_size:
                break
            time.sleep(0.1)
        else:
            stop_process(newsroom)
            print(
                f"make cluster: the sample newsroom did not start (port"
                f" {os.environ.get('NEWSROOM_PORT', '8765')} busy? NEWSROOM_PORT chooses"
                " another)",
                file=sys.stderr,
            )
            return 1
        feeds = str(feeds_path)
        extra = {"NEWSFLOW_ALLOW_PRIVATE": "1"}
    cluster = Cluster(root, workers=workers, api_port=port, feeds=Path(feeds), extra_env=extra)
    print("make cluster: a REHEARSAL of the scaled-out shape on one machine:", flush=True)
    if not os.environ.get("CLUSTER_S3_ENDPOINT"):
        print(
            "  the bucket is moto's in-memory S3 server: the lake's data files are LOST when"
            " it stops (CLUSTER_S3_ENDPOINT points it at a real S3-compatible service)"
        )
    try:
        cluster.start()
        print(
            f"\nAirflow UI:  {cluster.api_url}   (login admin, password in"
            f" {root}/airflow/simple_auth_manager_passwords.json.generated)\n"
            f"workers:     {workers} Celery workers (worker-1 ... worker-{workers}), each with"
            f" its own folder under {root}/workers/\n"
            f"store:       catalog {cluster.catalog}, files s3://{cluster.bucket}/lake\n"
            f"client:      set -a; source {root}/newsflow.env; set +a; .venv/bin/newsflow sql"
            f' "select count(*) from articles"\n'
            f"logs:        {root}/logs/\nCtrl-C stops everything.",
            flush=True,
        )
        while all(p.poll() is None for p in cluster.procs.values()):
            time.sleep(1)
        dead = [n for n, p in cluster.procs.items() if p.poll() is not None]
        print(f"make cluster: {', '.join(dead)} exited:\n{cluster.tail(dead[0])}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print("\nstopping the cluster", flush=True)
        cluster.stop()
        stop_process(newsroom)


if __name__ == "__main__":
    sys.exit(main())
