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
import sys


def worker_context() -> multiprocessing.context.BaseContext:
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    return multiprocessing.get_context("forkserver")
