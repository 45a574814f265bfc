"""File locks between processes: one class for the store's writer lock (beside a SQLite catalog)
and the ingest lock of a runs folder.

``flock`` on a file: the kernel drops it when its holder closes the descriptor or dies, however
it dies, so a crash never leaves a stale lock behind. The file holds the holder's pid, for the
messages of those who wait.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

try:
    import fcntl
except ImportError:  # not a POSIX system: nothing is locked
    fcntl = None  # type: ignore[assignment]


def lock_retry_delays(wait: float) -> Iterator[None]:
    """Wait for a lock another process holds, for up to ``wait`` seconds: each step sleeps,
    then yields for one more attempt. Exponential from 0.1 s to 2 s, with jitter so that
    waiting processes do not retry in step; exhausted once the time is up."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(delay * random.uniform(0.5, 1.5), left))
        delay = min(delay * 2, 2.0)
        yield


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; True when this one holds it now."""
        if self._fd is not None:
            return True
        if fcntl is None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire_within(self, wait: float) -> bool:
        """Take the lock, waiting up to ``wait`` seconds for the process that holds it (see
        ``lock_retry_delays``); True when this one holds it now."""
        return self.try_acquire() or any(self.try_acquire() for _ in lock_retry_delays(wait))

    def holder(self) -> str:
        """Who holds the lock, as the messages name it: ``pid N``, or ``a process``."""
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "a process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
