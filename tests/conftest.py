"""Shared fixtures: settings for a temp data folder, a real HTTP server on 127.0.0.1.

Helpers (paths, feed and page builders) live in tests/helpers.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from newsflow.config import Settings
from newsflow.demo.newsroom import SiteServer


@pytest.fixture
def settings(tmp_path) -> Settings:
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
        tag_workers=1,  # tag in the test process: the spaCy model loads once per session
    )


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
