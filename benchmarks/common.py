"""What the benchmarks share: where the repository and the corpus are, how a benchmark runs as a
module, and the CPU and memory of a process tree (newsflow.procs, read from /proc).

Every benchmark runs from the repository root with the project's Python, as a module:

    .venv/bin/python -m benchmarks.NAME [--help]
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import NoReturn

from newsflow.procs import descendants, memory_bytes, process_cpu_seconds, tree_cpu_seconds

__all__ = [
    "BUNDLED_PAGES",
    "CORPUS",
    "GROUND_TRUTH",
    "MB",
    "ROOT",
    "SHARED",
    "TreeMemory",
    "process_cpu_seconds",
    "run_main",
    "tree_cpu_seconds",
]

ROOT = Path(__file__).resolve().parents[1]
# Data shared by the checkouts of the project, beside this one (optional: without it the
# benchmarks that can fall back to the bundled sample pages do, the others say it is missing).
SHARED = ROOT.parent / "shared"
# The article-extraction benchmark (MIT, Scrapinghub): 181 pages with their true bodies.
CORPUS = SHARED / "corpus" / "article-extraction-benchmark"
GROUND_TRUTH = CORPUS / "ground-truth.json"
# The 50 pages of the sample newsroom newsflow ships (gzip-compressed HTML).
BUNDLED_PAGES = ROOT / "pipeline" / "newsflow" / "demo" / "newsroom_data" / "articles"
MB = 2**20


def run_json(what: str, code: str, *args: str, env: dict | None = None,
             timeout: float = 3600) -> dict:  # fmt: skip
    """Run ``code`` (a Python program printing one JSON object last) with ``args`` in a process
    of its own, from the project's root; its object. A failure raises naming ``what``."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def run_main(module: str) -> NoReturn:
    """Exit with ``module.main()``, ``module`` imported by its name: what a benchmark's
    ``if __name__ == "__main__"`` does.

    Under ``python -m benchmarks.NAME``, multiprocessing runs the benchmark again in every
    spawned or forkserver process (newsflow's extraction and tag workers, the simulator), as
    ``__mp_main__``: an import of the benchmark and all it imports in each worker, counted in
    the CPU and memory the benchmark measures. Marked as a ``__main__`` that must not run again
    (the case multiprocessing skips), it is not; and since ``main`` and everything it hands to
    a worker come from the module imported by name, a worker finds them by that name."""
    sys.modules["__main__"].__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    raise SystemExit(importlib.import_module(module).main())


class TreeMemory:
    """Peak memory of a process tree, sampled in a thread while the context is open.

    The tree: ``root`` (default: this process) and its live descendants, but ``exclude`` and
    theirs. Every ``interval`` seconds the RSS of its processes is summed (a page forked
    workers share with their parent counts once per process); the largest sum is kept with its
    split by process. Every ``pss_every``-th sample the PSS is summed too (shared pages divided
    among the sharers; reading smaps_rollup costs the sampling process CPU). Bytes."""

    def __init__(
        self,
        root: int | None = None,
        exclude: set[int] | frozenset = frozenset(),
        interval: float = 0.05,
        pss_every: int = 40,
    ) -> None:
        self.root = os.getpid() if root is None else root
        self.exclude = exclude
        self.interval = interval
        self.pss_every = pss_every
        self.peak_rss = self.peak_pss = 0
        self.peak_split: dict[int, int] = {}  # pid -> RSS at the peak
        self.processes = 0  # the most processes the tree had at once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def pids(self) -> list[int]:
        return [self.root, *descendants(self.root, self.exclude)]

    def sample(self, pss: bool = False) -> None:
        pids = self.pids()
        self.processes = max(self.processes, len(pids))
        split = {pid: memory_bytes(pid) for pid in pids}
        if sum(split.values()) > self.peak_rss:
            self.peak_rss, self.peak_split = sum(split.values()), split
        if pss:
            self.peak_pss = max(self.peak_pss, sum(memory_bytes(pid, pss=True) for pid in pids))

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.sample(pss=n % self.pss_every == 0)
            n += 1
            self._stop.wait(self.interval)

    def split_mb(self) -> dict[str, int]:
        """RSS (MB) by process at the peak: the root as ``main``, then the others (``child1``
        ...), largest first."""
        out = {"main": round(self.peak_split.get(self.root, 0) / MB)}
        others = sorted((b for pid, b in self.peak_split.items() if pid != self.root), reverse=True)
        out.update({f"child{i}": round(b / MB) for i, b in enumerate(others, 1)})
        return out

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
