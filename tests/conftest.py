"""Shared fixtures: settings for a temp data folder, a real HTTP server on 127.0.0.1.

Helpers (paths, feed and page builders) live in tests/helpers.py."""

from __future__ import annotations

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
