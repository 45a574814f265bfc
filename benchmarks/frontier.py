"""A realistic, unkind newsroom for the crawl frontier, and its benchmark.

The shape of a first run against real outlets: 40 hosts (127.0.0.2 ... 127.0.0.41, one
loopback address each, so per-host politeness sees 40 hosts), 300 feeds, one host carrying 400
new pages and the others a few each. About 10% of the pages fail transiently at first (503 with
and without Retry-After, a connection reset, a few that answer only after the read timeout) and
then work; about 3% are gone for good (404, 410). The servers run in a child process and count,
per host, the requests in flight (the most at once) and when each request started.

    from benchmarks.frontier import FlakyNewsroom
    with FlakyNewsroom(big_pages=400) as room:
        room.feeds            # FeedSpecs for newsflow
        room.pages            # {url: kind}: ok, transient kinds, 404, 410
        room.stats()          # {host: {"max_in_flight": n, "starts": [...]}}

Run as a benchmark (newsflow's default settings, politeness on), it ingests cycle after cycle
until every page is settled and prints the cycles and wall time that took, the highest request
rate any host saw, the most requests any host had in flight, and the CPU per page:

    .venv/bin/python -m benchmarks.frontier [--big-pages 400] [--budget 480] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import html
import itertools
import json
import multiprocessing
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsflow.fetching.feedlist import FeedSpec

from benchmarks.common import BUNDLED_PAGES, process_cpu_seconds, run_main, tree_cpu_seconds

TRANSIENT_KINDS = ("503", "503-retry-after", "reset")
SLOW_ANSWER_S = 25.0  # past the default read timeout (20 s): the client gives up first


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs (a 1 s retransmit each)


def _address(host: int) -> str:
    return f"127.0.0.{host + 2}"


def _layout(hosts: int, feeds: int, big_pages: int, seed: int, slow_pages: int = 3) -> dict:
    """Which host serves which feeds and pages, and what each page does."""
    rng = random.Random(seed)
    pages: dict[int, list[str]] = {0: [f"/news/{i:04d}.html" for i in range(big_pages)]}
    for h in range(1, hosts):
        pages[h] = [f"/story/{i}.html" for i in range(rng.randint(2, 6))]
    big_feeds = 10
    feeds_of: dict[int, list[str]] = {0: [f"/feeds/{i}.xml" for i in range(big_feeds)]}
    small = [f"/feeds/{i}.xml" for i in range(feeds - big_feeds)]
    for h in range(1, hosts):
        feeds_of[h] = []
    for i, path in enumerate(small):
        feeds_of[1 + i % (hosts - 1)].append(path)
    items: dict[tuple[int, str], list[str]] = {}
    for h, paths in feeds_of.items():
        for i, path in enumerate(paths):
            if h == 0:  # the big host's pages, split over its feeds
                items[(h, path)] = pages[0][i :: len(paths)]
            else:  # a small host's feeds overlap: each carries most of its pages
                items[(h, path)] = [p for j, p in enumerate(pages[h]) if (i + j) % 4 != 3]
    kinds: dict[tuple[int, str], tuple[str, int]] = {}  # page -> (kind, failures before ok)
    every = [(h, p) for h, ps in pages.items() for p in ps]
    rng.shuffle(every)
    n_transient = round(len(every) * 0.10)
    n_permanent = round(len(every) * 0.03)
    slow = [hp for hp in every if hp[0] != 0][: min(slow_pages, n_transient)]  # small hosts
    rest = [hp for hp in every if hp not in slow]
    for hp in slow:
        kinds[hp] = ("slow", 1)
    flaky = rest[: n_transient - len(slow)]
    for i, hp in enumerate(flaky):
        kinds[hp] = (TRANSIENT_KINDS[i % len(TRANSIENT_KINDS)], 1 + i % 2)
    for i, hp in enumerate(rest[len(flaky) : len(flaky) + n_permanent]):
        kinds[hp] = ("404" if i % 2 else "410", 0)
    return {"pages": pages, "feeds": feeds_of, "items": items, "kinds": kinds}


def _rss(host: int, base: str, path: str, layout: dict, now: float) -> bytes:
    parts = []
    for j, page in enumerate(layout["items"][(host, path)]):
        when = datetime.fromtimestamp(now - 600 * (j + 1), UTC)
        teaser = (
            f"Teaser of {page} on host {host}: what the story says in two sentences, so the "
            "feed's own text stands in for the page until it arrives."
        )
        parts.append(
            f"<item><title>Story {page} of host {host}</title><link>{base}{page}</link>"
            f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} +0000</pubDate>"
            f"<description>{html.escape(teaser)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Host {host} {path}</title><link>{base}/</link>{''.join(parts)}</channel></rss>"
    ).encode()


def _serve(
    conn, hosts: int, feeds: int, big_pages: int, seed: int, slow_pages: int, latency: float
) -> None:
    """The child process: one threaded server per host address, until told to stop. Each page
    is answered after ``latency`` seconds."""
    layout = _layout(hosts, feeds, big_pages, seed, slow_pages)
    bodies = [gzip.decompress(p.read_bytes()) for p in sorted(BUNDLED_PAGES.glob("*.html.gz"))]
    lock = threading.Lock()
    in_flight = [0] * hosts
    max_in_flight = [0] * hosts
    starts: list[list[float]] = [[] for _ in range(hosts)]
    hits: dict[tuple[int, str], int] = {}
    now = time.time()
    servers = []

    def handler_for(host: int, base_box: list):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    in_flight[host] += 1
                    max_in_flight[host] = max(max_in_flight[host], in_flight[host])
                    starts[host].append(time.monotonic())
                    key = (host, self.path)
                    hits[key] = hits.get(key, 0) + 1
                    hit = hits[key]
                try:
                    self._answer(hit)
                finally:
                    with lock:
                        in_flight[host] -= 1

            def _answer(self, hit: int) -> None:
                path = self.path
                if path == "/robots.txt":
                    return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain")
                if (host, path) in layout["items"]:
                    return self._send(
                        200, _rss(host, base_box[0], path, layout, now), "application/rss+xml"
                    )
                if path not in layout["pages"][host]:
                    return self._send(404, b"not found", "text/plain")
                kind, failures = layout["kinds"].get((host, path), ("ok", 0))
                if latency:
                    time.sleep(latency)
                if kind in ("404", "410"):
                    return self._send(int(kind), b"gone", "text/plain")
                if hit <= failures:
                    if kind == "503":
                        return self._send(503, b"busy", "text/plain")
                    if kind == "503-retry-after":
                        return self._send(503, b"busy", "text/plain", {"Retry-After": "1"})
                    if kind == "reset":
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.close_connection = True
                        self.connection.close()
                        return None
                    if kind == "slow":
                        time.sleep(SLOW_ANSWER_S)
                n = int("".join(c for c in path if c.isdigit()) or 0) + 7 * host
                return self._send(200, bodies[n % len(bodies)], "text/html; charset=utf-8")

            def _send(self, status, body, ctype, headers=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    for host in range(hosts):
        box: list = [""]
        server = _Server((_address(host), 0), handler_for(host, box))
        server.daemon_threads = True
        server.handle_error = lambda *a: None  # resets and abandoned requests are the point
        box[0] = f"http://{_address(host)}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, box[0]))
    conn.send([base for _, base in servers])
    while True:
        msg = conn.recv()
        if msg == "stats":
            with lock:
                conn.send(
                    {
                        _address(h): {"max_in_flight": max_in_flight[h], "starts": starts[h][:]}
                        for h in range(hosts)
                    }
                )
        else:
            break
    for server, _ in servers:
        server.shutdown()
        server.server_close()
    conn.send("stopped")


class FlakyNewsroom:
    """The newsroom above, served by a child process while the context is open."""

    def __init__(
        self,
        hosts: int = 40,
        feeds: int = 300,
        big_pages: int = 400,
        seed: int = 7,
        slow_pages: int = 3,
        latency: float = 0.0,
    ) -> None:
        self.args = (hosts, feeds, big_pages, seed, slow_pages)
        self.layout = _layout(*self.args)
        self.latency = latency
        self.bases: list[str] = []

    def __enter__(self) -> FlakyNewsroom:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, *self.args, self.latency), daemon=True)
        self._proc.start()
        self.bases = self._conn.recv()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._conn.send("stop")
            self._conn.recv()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()

    @property
    def feeds(self) -> list[FeedSpec]:
        return [
            FeedSpec(f"{self.bases[h]}{path}", f"host {h} {path}")
            for h, paths in self.layout["feeds"].items()
            for path in paths
        ]

    @property
    def pages(self) -> dict[str, str]:
        """Every page URL some feed carries, and what it does: ok, a transient kind, 404, 410."""
        carried = {(h, p) for (h, _), ps in self.layout["items"].items() for p in ps}
        return {
            f"{self.bases[h]}{p}": self.layout["kinds"].get((h, p), ("ok", 0))[0]
            for h, p in sorted(carried)
        }

    def host_pages(self, host: int) -> list[str]:
        return [u for u in self.pages if u.startswith(self.bases[host] + "/")]

    def stats(self) -> dict:
        self._conn.send("stats")
        return self._conn.recv()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds the server process has used so far."""
        return process_cpu_seconds(self.pid)


def fetch_task(settings, run_path: str, batches: list[str]) -> list:
    """What one Airflow worker does: the fetch_extract task of each batch, in its own process
    (run it in a process pool: per-host spacing is shared within a process, not across)."""
    from newsflow.run import tasks

    return [tasks.fetch_extract(settings, run_path, b) for b in batches]


def max_rate(starts: list[float]) -> float:
    """The most requests that started within any one second (a sliding window)."""
    best = 0
    for i, t in enumerate(starts):
        j = i
        while j < len(starts) and starts[j] - t < 1.0:
            j += 1
        best = max(best, j - i)
    return float(best)


def min_gap(starts: list[float]) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(sorted(starts))]
    return min(gaps) if gaps else None


def advance_clock(store, seconds: float) -> None:
    """Let ``seconds`` pass for the fetch queue: its retries become due (the test and the
    benchmark do not sleep through the default backoff of minutes to hours)."""
    store.con.execute(
        "update page_fetches set next_attempt_at = next_attempt_at - to_seconds(?)"
        " where next_attempt_at is not null",
        [seconds],
    )


def settle(settings, store, feeds, *, max_cycles: int = 12, log=print) -> list[dict]:
    """Ingest cycle after cycle (feeds registered by the first) until no page waits in the
    queue; between cycles the clock moves past every retry's backoff."""
    from newsflow.run.cycle import run_cycle

    cycles = []
    for n in range(1, max_cycles + 1):
        summary = run_cycle(settings, store, feeds=feeds if n == 1 else None)
        waiting = store.pending_pages()
        cycles.append({"summary": summary.as_dict(), "waiting": waiting})
        a = summary.articles
        log(
            f"cycle {n}: {summary.articles_loaded} new, {summary.articles_upgraded} upgraded; "
            f"{a.pages_pending} left pending, {a.pages_retry} to retry "
            f"({summary.elapsed_s:.0f}s)"
        )
        if not waiting:
            break
        advance_clock(store, settings.fetch_retry_max_delay)
    return cycles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-pages", type=int, default=400)
    parser.add_argument("--budget", type=float, help="fetch budget, s (default: newsflow's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from newsflow.config import load_settings
    from newsflow.db.store import Store

    settings = load_settings().with_overrides(allow_private=True, fetch_budget=args.budget)
    with tempfile.TemporaryDirectory() as tmp, FlakyNewsroom(big_pages=args.big_pages) as room:
        settings = settings.with_overrides(data_dir=Path(tmp))
        server_before = room.cpu_seconds()
        before = tree_cpu_seconds(exclude={room.pid})  # newsflow's processes, not the server
        started = time.monotonic()
        with Store(settings.lake) as store:
            cycles = settle(settings, store, room.feeds, log=lambda m: print(m, file=sys.stderr))
            wall = time.monotonic() - started
            rows = store.rows(
                "select extraction_status, count(*) as n from articles group by 1 order by 1"
            )
            fetches = store.rows(
                "select state, count(*) as n, max(attempts) as max_attempts"
                " from page_fetches group by 1 order by 1"
            )
        cpu = tree_cpu_seconds(exclude={room.pid}) - before
        stats = room.stats()
        server_cpu = room.cpu_seconds() - server_before
        pages = room.pages
    big = _address(0)
    result = {
        "hosts": len(stats),
        "feeds": len(room.feeds),
        "pages": len(pages),
        "big_host_pages": args.big_pages,
        "fetch_budget_s": settings.fetch_budget,
        "cycles": len(cycles),
        "wall_s": round(wall, 1),
        "articles": {r["extraction_status"]: r["n"] for r in rows},
        "page_fetches": fetches,
        "max_requests_per_host_per_s": max(max_rate(s["starts"]) for s in stats.values()),
        "big_host_avg_requests_per_s": round(
            (len(stats[big]["starts"]) - 1)
            / max(1e-9, max(stats[big]["starts"]) - min(stats[big]["starts"])),
            2,
        ),
        "min_gap_between_requests_to_a_host_s": round(
            min(g for s in stats.values() if (g := min_gap(s["starts"])) is not None), 3
        ),
        "max_in_flight_per_host": max(s["max_in_flight"] for s in stats.values()),
        "cpu_per_page_ms": round(1000 * cpu / len(pages), 1),
        "server_cpu_s": round(server_cpu, 1),
        "small_hosts_done_in_first_cycle": all(
            w["pending"] == 0 for w in cycles[0]["waiting"] if w["host"] != big
        ),
    }
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0
    print(
        f"{result['pages']} pages ({args.big_pages} on one host) from {result['feeds']} feeds on "
        f"{result['hosts']} hosts, default politeness, fetch budget {settings.fetch_budget:g}s"
    )
    print(f"  settled in {result['cycles']} cycles, {result['wall_s']} s of wall time")
    print(f"  articles: {result['articles']}")
    print(f"  small hosts done in the first cycle: {result['small_hosts_done_in_first_cycle']}")
    print(f"  page_fetches: {[(f['state'], f['n'], f['max_attempts']) for f in fetches]}")
    print(
        f"  per host: at most {result['max_requests_per_host_per_s']:g} request(s) started in "
        f"any second, {result['max_in_flight_per_host']} in flight at once; shortest gap "
        f"{result['min_gap_between_requests_to_a_host_s']} s; big host "
        f"{result['big_host_avg_requests_per_s']} requests/s on average"
    )
    print(
        f"  CPU: {result['cpu_per_page_ms']} ms per page (newsflow, extraction and tagging "
        f"included); the server used {result['server_cpu_s']} s apart"
    )
    return 0


if __name__ == "__main__":
    run_main("benchmarks.frontier")
