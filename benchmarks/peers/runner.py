"""Download and parse pages with one tool, timed, and print one JSON object (for vs_peers.py).

Runs inside the tool's own interpreter: a peer's virtualenv (newspaper4k, news-please) or the
project's (newsflow). Reads a JSON job file; prints ``{"tool", "wall_s", "cpu_s", "pages":
[{"url", "ok", "wall_s", "text", "error"}], "blocked": [...]}``. Imports happen before the clock
starts. Peers work the way their documentation shows, one page after another in this one
process; newsflow runs its real ingest cycle on the feeds listing the same pages.

    python runner.py TOOL JOB.json [--cpus 0,1]

It runs by its path, never as ``-m benchmarks.peers.runner``: in a peer's interpreter the
checkout must not be on sys.path. (newsflow, in the project's interpreter, is installed there.)
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# tldextract (used by newspaper4k) fetches the public suffix list from the internet on first
# use; an empty URL list makes it use the snapshot it ships. Set before anything imports it.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
_TLD_CACHE = tempfile.mkdtemp(prefix="vs-peers-tld-")
atexit.register(shutil.rmtree, _TLD_CACHE, ignore_errors=True)
os.environ["TLDEXTRACT_CACHE"] = _TLD_CACHE
for _proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)  # loopback pages must not go through a proxy

BLOCKED: list[str] = []
PRELOAD = {
    "newspaper4k": ["newspaper"],
    "news-please": ["newsplease"],
    "newsflow": ["newsflow.run.cycle", "newsflow.db.store", "trafilatura"],
}


def _loopback_only(event: str, args: tuple) -> None:
    """Refuse (and record) any connection or name lookup that would leave the machine."""
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            BLOCKED.append(f"connect {address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"vs_peers: no network beyond loopback ({address[0]})")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host and not _is_loopback(host):
            BLOCKED.append(f"resolve {host}")
            raise OSError(f"vs_peers: no name lookups beyond loopback ({host})")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _page(url: str, started: float, text: str | None, error: str | None = None) -> dict:
    text = text or ""
    ok = error is None and bool(text.strip())
    return {
        "url": url,
        "ok": ok,
        "wall_s": time.perf_counter() - started,
        "text": text,
        "error": error if error else (None if ok else "no text"),
    }


def run_newspaper4k(job: dict) -> list[dict]:
    from newspaper import Article, Config

    config = Config()
    config.fetch_images = False  # image downloads would dominate its time
    config.request_timeout = 10
    pages = []
    for url in job["urls"]:
        started = time.perf_counter()
        try:
            article = Article(url, config=config)
            article.download()
            article.parse()  # no .nlp(): it needs NLTK data from the internet
            pages.append(_page(url, started, article.text))
        except Exception as exc:  # a failed page is a result, as in the library's own use
            pages.append(_page(url, started, None, f"{type(exc).__name__}: {exc}"))
    return pages


def run_news_please(job: dict) -> list[dict]:
    from newsplease import NewsPlease

    pages = []
    for url in job["urls"]:
        started = time.perf_counter()
        try:
            # Its own download path (requests, via SimpleCrawler), then its extractors.
            article = NewsPlease.from_url(url, request_args={"timeout": 10}, fetch_images=False)
            text = getattr(article, "maintext", None) if article else None
            pages.append(_page(url, started, text, None if article else "no article"))
        except Exception as exc:
            pages.append(_page(url, started, None, f"{type(exc).__name__}: {exc}"))
    return pages


def run_newsflow(job: dict) -> tuple[list[dict], dict]:
    """One ingest cycle on the job's feeds into a fresh database; texts read back from it."""
    from newsflow.config import Settings
    from newsflow.db.store import Store
    from newsflow.fetching.feedlist import FeedSpec
    from newsflow.run.cycle import run_cycle

    with tempfile.TemporaryDirectory(prefix="vs-peers-newsflow-") as tmp:
        settings = Settings(data_dir=Path(tmp), allow_private=True, per_host_delay=0.0,
                            tagging=False, extract_workers=job.get("workers", 0))  # fmt: skip
        feeds = [FeedSpec(url, f"feed {i}") for i, url in enumerate(job["feeds"])]
        with Store(settings.lake) as store:
            started = time.perf_counter()
            summary = run_cycle(settings, store, feeds=feeds)
            wall = time.perf_counter() - started
            rows = store.con.execute(
                "select url, extraction_status, extraction_error, text from articles"
            ).fetchall()
    by_url = {url: (status, error, text) for url, status, error, text in rows}
    pages = []
    for url in job["urls"]:
        status, error, text = by_url.get(url, ("missing", "not in the articles table", None))
        # What counts as newsflow's extraction: text of an 'ok' article (as extraction.py).
        page = _page(url, 0.0, text if status == "ok" else None, None if status == "ok" else
                     f"{status}: {error or ''}".strip())  # fmt: skip
        page["wall_s"] = None  # pages overlap in a cycle: only the total is meaningful
        pages.append(page)
    extra = {"cycle_wall_s": wall, "summary": summary.as_dict(), "rows": len(rows)}
    return pages, extra


def load_procs():
    """newsflow's process-tree CPU reader (pipeline/newsflow/procs.py, the standard library only),
    loaded from the checkout by its path: a peer's virtualenv has no newsflow, and the checkout
    must not go on sys.path there (its directories would shadow a peer's modules)."""
    path = Path(__file__).resolve().parents[2] / "pipeline" / "newsflow" / "procs.py"
    spec = importlib.util.spec_from_file_location("newsflow_procs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    tool, job_file = sys.argv[1], Path(sys.argv[2])
    if "--cpus" in sys.argv:
        cpus = {int(c) for c in sys.argv[sys.argv.index("--cpus") + 1].split(",")}
        os.sched_setaffinity(0, cpus)  # children inherit it
    job = json.loads(job_file.read_text(encoding="utf-8"))
    procs = load_procs()
    for module in PRELOAD[tool]:  # imports are not the tools' per-page cost
        importlib.import_module(module)
    sys.addaudithook(_loopback_only)
    runners = {
        "newspaper4k": run_newspaper4k,
        "news-please": run_news_please,
        "newsflow": run_newsflow,
    }
    out = sys.stdout
    # Libraries print; only the JSON goes to stdout.
    with contextlib.redirect_stdout(sys.stderr):
        # CPU of this process and of every process below it (newsflow's forkserver and workers)
        tree0, own0, wall0 = procs.tree_cpu_seconds(), time.process_time(), time.perf_counter()
        result = runners[tool](job)
        wall = time.perf_counter() - wall0
        cpu, own = procs.tree_cpu_seconds() - tree0, time.process_time() - own0
        pages, extra = result if isinstance(result, tuple) else (result, {})
    figures = {
        "tool": tool,
        "python": sys.version.split()[0],
        "cpus": sorted(os.sched_getaffinity(0)),
        "wall_s": extra.pop("cycle_wall_s", wall),
        "cpu_s": cpu,
        "children_cpu_s": cpu - own,
        "pages": pages,
        "blocked": BLOCKED,
        **extra,
    }
    out.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
