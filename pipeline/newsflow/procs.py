"""Worker processes for CPU stages (extraction, tagging).

Workers are started by a forkserver: fast, and safe in a process that has threads. By default
multiprocessing rebuilds the parent's ``__main__`` in every worker by running its file again.
When newsflow runs inside a host program, that file is the host's: under Airflow it is the
``airflow`` command, whose import configures Airflow and fails in a bare worker. newsflow's
workers only run ``pipeline`` functions and need nothing from ``__main__``, so before starting
them the main module is marked as one that must not be re-run (a ``__spec__`` named
``__main__``, the case multiprocessing already skips).
"""

from __future__ import annotations

import importlib.machinery
import multiprocessing
import os
import resource
import sys
from pathlib import Path


def worker_context() -> multiprocessing.context.BaseContext:
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    return multiprocessing.get_context("forkserver")


def descendants(pid: int, exclude: set[int] | frozenset = frozenset()) -> list[int]:
    """Live descendants of ``pid`` but ``exclude`` and theirs (Linux /proc; none elsewhere)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in exclude:
                    found.append(child)
                    todo.append(child)
    return found


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process and every process below it: the workers of the
    forkserver are its children, not ours, so each live descendant counts its own time and that
    of the children it has reaped; ours that we reaped come from getrusage."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile: its time is in its parent's reaped children
        # fields[11:15]: utime, stime, cutime, cstime (stat fields 14-17)
        total += sum(int(v) for v in fields[11:15]) / tick
    return total
