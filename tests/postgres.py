"""A real PostgreSQL cluster for the tests of the lake on a Postgres catalog.

Debian's server binaries (``make test`` installs the package ``postgresql``; no service runs):
``initdb`` into a temp dir, ``pg_ctl start`` on a free port of 127.0.0.1 with its socket in that
dir, one database per test, ``pg_ctl stop`` at the end of the session: scripts/services.py's
``Postgres``, which `make cluster` runs too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scripts.services import Postgres
from scripts.services import postgres_bin as server_bin

__all__ = ["Cluster", "server_bin"]


class Cluster(Postgres):
    def __init__(self, bindir: Path) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="newsflow-pg-")), bindir=bindir)
        self._count = 0

    def new_database(self) -> str:
        """A new, empty database; its libpq connection string."""
        self._count += 1
        return self.database(f"lake{self._count}")

    def stop(self, remove: bool = True) -> None:
        super().stop(remove=remove)
