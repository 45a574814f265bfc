"""Worker pools started from a host program whose __main__ must not run again (like the
`airflow` command a scheduled task runs under)."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import ROOT

HOST = textwrap.dedent(
    """
    import sys
    if __name__ != "__main__":
        # What `airflow`'s entry point does when a worker re-runs it: fail at import.
        raise SystemExit("host __main__ re-run in a worker")
    sys.path.insert(0, sys.argv[1])
    import asyncio
    from newsflow.config import Settings
    from newsflow.fetching.extract import ExtractorPool
    from newsflow.enrich.tag import TagPool

    import gzip
    from newsflow.demo.newsroom import DATA
    html = gzip.decompress(sorted((DATA / "articles").glob("*.html.gz"))[0].read_bytes())
    with ExtractorPool(2, 10.0) as pool:
        page = asyncio.run(pool.extract(html, "http://example.org/a"))
    print("extract", page.ok, page.error)
    articles = [{"article_id": f"{i:032d}", "title": "", "text": page.text or "", "language": "en",
                 "feed_categories": []} for i in range(8)]
    with TagPool(Settings(tag_workers=2)) as pool:
        rows = pool.tag(articles)
    print("tag", sorted({r["status"] for r in rows.tagging}), len(rows.entities))
    """
)


def test_pools_do_not_rerun_the_host_main(tmp_path):
    host = tmp_path / "host_program.py"
    host.write_text(HOST, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(host), str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["extract"].startswith("True")
    assert lines["tag"].startswith("['ok']")
    assert "re-run in a worker" not in done.stderr


# -- the CPU and memory of a process tree (newsflow.procs, benchmarks/common.py) -------------

# A child that burns about ``BURN`` CPU seconds, then forks a grandchild that burns as much, each
# touching ``MB`` MiB first (the grandchild shares them with its parent until it writes), and
# says "ready" once both have burnt; both live until its stdin closes.
TREE = textwrap.dedent(
    """
    import os, sys, time
    burn, size = float(sys.argv[1]), int(sys.argv[2]) << 20
    block = bytearray(size)
    for i in range(0, size, 4096):
        block[i] = 1  # every page resident
    def spin():
        end = time.process_time() + burn
        while time.process_time() < end:
            pass
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        spin()
        os.write(w, b"x")
        sys.stdin.read()
        os._exit(0)
    spin()
    os.read(r, 1)
    print(pid, flush=True)
    sys.stdin.read()
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    """
)
BURN = 0.5
MB = 64


def start_tree():
    proc = subprocess.Popen(
        [sys.executable, "-c", TREE, str(BURN), str(MB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchild = int(proc.stdout.readline())
    return proc, grandchild


def test_tree_cpu_counts_descendants_but_the_excluded():
    from newsflow.procs import descendants, process_cpu_seconds, tree_cpu_seconds

    proc, grandchild = start_tree()
    try:
        assert {proc.pid, grandchild} <= set(descendants(os.getpid()))
        child_cpu, grandchild_cpu = process_cpu_seconds(proc.pid), process_cpu_seconds(grandchild)
        assert child_cpu >= BURN * 0.9 and grandchild_cpu >= BURN * 0.9
        with_tree, without = tree_cpu_seconds(), tree_cpu_seconds(exclude={proc.pid})
        # Excluding the child leaves out its grandchild too; this process spins in between.
        assert with_tree - without >= (child_cpu + grandchild_cpu) * 0.95
    finally:
        proc.communicate("")
    # Reaped, the child's CPU (its grandchild's included) moves to this process's rusage.
    assert process_cpu_seconds(proc.pid) == 0.0
    assert tree_cpu_seconds() >= with_tree


def test_tree_memory_rss_counts_shared_pages_per_process_pss_once():
    from newsflow.procs import memory_bytes

    from benchmarks.common import TreeMemory

    proc, grandchild = start_tree()
    try:
        rss = {pid: memory_bytes(pid) for pid in (proc.pid, grandchild)}
        pss = {pid: memory_bytes(pid, pss=True) for pid in (proc.pid, grandchild)}
        block = MB << 20
        assert all(b >= block for b in rss.values()), rss
        # The block is shared by the two: each holds about half of it.
        assert all(block * 0.4 < b < block * 0.9 for b in pss.values()), pss
        with TreeMemory(proc.pid, pss_every=1, interval=0.01) as memory:
            time.sleep(0.2)
        assert memory.processes == 2
        assert memory.peak_rss >= 2 * block
        assert block * 0.9 < memory.peak_pss < block * 1.5
        assert set(memory.peak_split) == {proc.pid, grandchild}
        assert list(memory.split_mb()) == ["main", "child1"]
        assert all(mb >= MB for mb in memory.split_mb().values())
    finally:
        proc.communicate("")
    assert memory_bytes(proc.pid) == memory_bytes(proc.pid, pss=True) == 0


def test_procs_loads_without_site_packages():
    """benchmarks/peers/runner.py loads newsflow/procs.py by its path in a peer's virtualenv,
    where newsflow is not installed: it must need the standard library only."""
    code = textwrap.dedent(
        """
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("runner", sys.argv[1])
        runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(runner)
        assert "newsflow" not in sys.modules
        procs = runner.load_procs()
        print(procs.tree_cpu_seconds() > 0, procs.memory_bytes(procs.os.getpid()) > 0)
        """
    )
    runner = ROOT / "benchmarks" / "peers" / "runner.py"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(runner)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True"]


# A benchmark run as `python -m NAME`: its worker says which module its function came from, and
# a re-run of the benchmark in the worker (as __mp_main__) leaves a mark on stderr.
BENCH = textwrap.dedent(
    """
    import sys
    if __name__ == "__mp_main__":
        print("benchmark re-run in a worker", file=sys.stderr)

    def where():
        return __name__

    def main():
        from newsflow.procs import worker_context
        with worker_context().Pool(1) as pool:
            print(pool.apply(where))
        return 0

    if __name__ == "__main__":
        if sys.argv[1] == "run_main":
            from benchmarks.common import run_main
            run_main("bench_host")
        raise SystemExit(main())
    """
)


@pytest.mark.parametrize("entry", ["run_main", "plain"])
def test_run_main_keeps_workers_from_rerunning_the_benchmark(tmp_path, entry):
    (tmp_path / "bench_host.py").write_text(BENCH, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench_host", entry],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rerun = "benchmark re-run in a worker" in done.stderr
    if entry == "run_main":
        # The worker found the function by the module's name, and nothing ran again.
        assert (done.stdout.strip(), rerun) == ("bench_host", False)
    else:
        # What run_main prevents: every worker imports the benchmark again.
        assert (done.stdout.strip(), rerun) == ("__mp_main__", True)
