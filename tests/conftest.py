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


@pytest.fixture(params=["sqlite", "postgres"])
def lake_settings(request, tmp_path, settings) -> Settings:
    """``settings`` on each kind of catalog: the embedded SQLite file, and a Postgres database
    of its own (data files in tmp_path, as on a shared filesystem)."""
    if request.param == "sqlite":
        return settings
    cluster = request.getfixturevalue("postgres_cluster")
    return replace(
        settings,
        catalog="postgres:" + cluster.new_database(),
        data_path=str(tmp_path / "lake-files"),
    )
