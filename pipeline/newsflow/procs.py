"""Worker processes for CPU stages (extraction, tagging, feed parsing).

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
    _adopt_celery_process()
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    return multiprocessing.get_context("forkserver")


def _adopt_celery_process() -> None:
    """Under a Celery worker's prefork pool, Airflow forks the task's process from a pool
    process of billiard (Celery's fork of multiprocessing), which multiprocessing then sees
    as its current process: a daemon, so multiprocessing refuses it any child ("daemonic
    processes are not allowed to have children"), with billiard's authentication key, which
    multiprocessing cannot hand to a forkserver ("Pickling an AuthenticationString object
    is disallowed"). newsflow ends its own workers (pools shut down, stragglers killed:
    ``descendants``), so its task process is made an ordinary parent, with the same key."""
    current = multiprocessing.current_process()
    config = current._config  # type: ignore[attr-defined]
    if config.get("daemon"):
        config["daemon"] = False
    ours = multiprocessing.process.AuthenticationString  # type: ignore[attr-defined]
    key = config.get("authkey")
    if key is not None and type(key) is not ours:
        config["authkey"] = ours(bytes(key))


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


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) used so far by the live process ``pid`` and by the children
    it has reaped (/proc/PID/stat); 0.0 once it has ended, or where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[11:15]: utime, stime, cutime, cstime (stat fields 14-17)
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(exclude: set[int] | frozenset = frozenset()) -> float:
    """CPU seconds used so far by this process and every process below it (but ``exclude`` and
    theirs): the workers of the forkserver are its children, not ours, so each live descendant
    counts its own time and that of the children it has reaped; ours that we reaped come from
    getrusage."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    # One that ended meanwhile counts 0: its time is in its parent's reaped children.
    return total + sum(process_cpu_seconds(pid) for pid in descendants(os.getpid(), exclude))


def memory_bytes(pid: int, pss: bool = False) -> int:
    """Memory of the live process ``pid``, in bytes: its resident set (/proc/PID/statm), or with
    ``pss`` its proportional share of it (/proc/PID/smaps_rollup: a page that n processes share
    counts 1/n in each, so the shares of a process tree add up to the memory it holds); 0 once
    it has ended, or where there is no /proc."""
    try:
        if not pss:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        pass
    return 0


def worker_name() -> str:
    """This process's name as Airflow shows it (``[core] hostname_callable =
    newsflow.procs.worker_name``): ``NEWSFLOW_WORKER_NAME`` when set (`make cluster` names each
    Celery worker on one machine), else the machine's name as Airflow's default gives it."""
    import socket

    return os.environ.get("NEWSFLOW_WORKER_NAME") or socket.getfqdn()
