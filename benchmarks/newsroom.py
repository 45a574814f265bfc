"""The newsroom simulator: a loopback HTTP server standing in for the news web, for benchmarks.

N feeds (RSS 2.0) across M hosts, K items each, every item a real article page: the pages of
``../shared/corpus/article-extraction-benchmark`` (with their ground-truth bodies) when present,
else the bundled pages of ``newsflow/demo/newsroom_data``. Pages are cycled; each copy carries its
number in ``<title>``, in ``<h1>`` and in one sentence at the start of the page's longest
paragraph, so that every article has its own URL, text and content hash.

Each host listens on its own loopback address (127.0.0.2, 127.0.0.3, ...; Linux routes all of
127/8 to loopback), so newsflow's per-host politeness sees M hosts. Every host serves
``/robots.txt`` (allow all), its feeds and its pages; answers carry ETag and Last-Modified and
conditional requests get 304; bodies go gzip-compressed (level 1, as nginx does by default) to
clients that ask. All bodies are rendered at start. The server is a minimal HTTP/1.1 keep-alive
server on asyncio in its own process, so that its CPU is measured apart from newsflow's.

    from benchmarks.newsroom import Simulator
    with Simulator(feeds=1000, hosts=50, items=5) as sim:
        sim.feed_urls, sim.article_urls, sim.truth(url), sim.html(url)
        sim.cpu_seconds(), sim.requests(), sim.advance(new_items=1)

Run it in the foreground to point newsflow at it (writes a feeds.yaml and prints its path):

    .venv/bin/python -m benchmarks.newsroom [--feeds 1000] [--hosts 50] [--items 5] [--latency 0.05]
    .venv/bin/python -m benchmarks.newsroom --check    # serve, fetch a few URLs (200, 304), stop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gzip
import hashlib
import html as htmllib
import importlib.machinery
import json
import multiprocessing
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from benchmarks.common import BUNDLED_PAGES, CORPUS, process_cpu_seconds, run_main

ROBOTS = b"User-agent: *\nAllow: /\n"
START_TIMEOUT = 600.0  # seconds the server process may take to render everything
# Copy markers go before these; the sentence goes at the start of the longest paragraph.
_TITLE_END = re.compile(rb"</title\s*>", re.IGNORECASE)
_H1_END = re.compile(rb"</h1\s*>", re.IGNORECASE)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_P_OPEN = re.compile(rb"<p(?:\s[^>]*)?>", re.IGNORECASE)
_P_CLOSE = re.compile(rb"</p\s*>", re.IGNORECASE)
_TEXT_RUN = re.compile(rb">([^<>]{80,})<")
_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")


Page = tuple[bytes, str | None]  # (html, ground-truth body or None)


def load_pages(corpus: Path = CORPUS) -> tuple[list[Page], str]:
    """The source pages, and where they came from."""
    truth_file = corpus / "ground-truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        pages = [
            (gzip.decompress((corpus / "html" / f"{key}.html.gz").read_bytes()), t["articleBody"])
            for key, t in sorted(truth.items())
        ]
        return pages, str(corpus)
    bundled = sorted(BUNDLED_PAGES.glob("*.html.gz"))
    return [(gzip.decompress(p.read_bytes()), None) for p in bundled], str(BUNDLED_PAGES)


def sentence(n: int) -> str:
    """The per-copy sentence woven into the page's longest paragraph."""
    return f"This is edition {n} of this report. "


@dataclass(frozen=True)
class _Source:
    """A source page with the places where a copy's markers go."""

    html: bytes
    truth: str | None
    title: str
    title_at: int  # byte offsets in html, -1 when the page has no such element
    h1_at: int
    para_at: int
    truth_at: int  # character offset in truth where the sentence goes

    @classmethod
    def prepare(cls, html: bytes, truth: str | None) -> _Source:
        m = _TITLE.search(html)
        raw_title = m.group(1).decode("utf-8", "replace") if m else ""
        title = _WS.sub(" ", htmllib.unescape(_TAG.sub("", raw_title))).strip() or "Untitled"
        title_end = _TITLE_END.search(html)
        h1_end = _H1_END.search(html)
        para_at, para_text = _longest_paragraph(html)
        return cls(
            html=html,
            truth=truth,
            title=title[:200],
            title_at=title_end.start() if title_end else -1,
            h1_at=h1_end.start() if h1_end else -1,
            para_at=para_at,
            truth_at=_find_in_truth(truth, para_text),
        )

    def render(self, n: int) -> bytes:
        inserts = [
            (self.title_at, f" (edition {n})".encode()),
            (self.h1_at, f" (edition {n})".encode()),
            (self.para_at, sentence(n).encode()),
        ]
        out, pos = [], 0
        for at, text in sorted(i for i in inserts if i[0] >= 0):
            out += [self.html[pos:at], text]
            pos = at
        out.append(self.html[pos:])
        return b"".join(out)

    def copy_truth(self, n: int) -> str | None:
        if self.truth is None:
            return None
        return self.truth[: self.truth_at] + sentence(n) + self.truth[self.truth_at :]


def _longest_paragraph(html: bytes) -> tuple[int, str]:
    """Where the text of the page's longest ``<p>`` starts, and that text (unescaped)."""
    best_at, best_text = -1, ""
    for m in _P_OPEN.finditer(html):
        close = _P_CLOSE.search(html, m.end())
        if close is None:
            break
        inner = html[m.end() : close.start()].decode("utf-8", "replace")
        text = _WS.sub(" ", htmllib.unescape(_TAG.sub("", inner))).strip()
        if len(text) > len(best_text):
            best_at, best_text = m.end(), text
    if best_at < 0:  # no paragraphs: the longest run of text between tags
        for m in _TEXT_RUN.finditer(html):
            text = _WS.sub(" ", htmllib.unescape(m.group(1).decode("utf-8", "replace"))).strip()
            if len(text) > len(best_text):
                best_at, best_text = m.start(1), text
    return best_at, best_text


def _find_in_truth(truth: str | None, paragraph: str) -> int:
    """Where ``paragraph`` starts in ``truth`` (whitespace-insensitive); 0 when not found."""
    words = paragraph.split()[:8]
    if not truth or not words:
        return 0
    m = re.search(r"\s+".join(re.escape(w) for w in words), truth)
    return m.start() if m else 0


@dataclass(frozen=True)
class Layout:
    """Where everything lives: hosts, feeds, articles. Pure arithmetic, the same in both
    processes. Article ``g * feeds + f`` is item ``g`` of feed ``f``; feed ``f`` is on host
    ``f % hosts``; article ``a`` shows source page ``a % sources`` with copy number ``a``."""

    feeds: int
    hosts: int
    items: int  # items each feed lists (the newest ones)
    sources: int
    started: float  # publication times count back from here

    def host_of(self, feed: int) -> int:
        return feed % self.hosts

    def feed_path(self, feed: int) -> str:
        return f"/feeds/{feed:05d}.xml"

    def article_path(self, feed: int, item: int) -> str:
        return f"/news/f{feed:05d}/{item:04d}.html"

    def article(self, feed: int, item: int) -> int:
        return item * self.feeds + feed

    def published(self, feed: int, item: int) -> float:
        # Items are a minute apart, the oldest a day before the start; never in the future.
        return min(time.time(), self.started - 86400 + 60 * item + feed % 60)


def _address(host: int) -> str:
    return f"127.0.0.{host + 2}"


def _feed_xml(layout: Layout, sources: list[_Source], feed: int, total: int, base: str) -> bytes:
    """RSS 2.0 of ``feed`` listing its newest ``layout.items`` of ``total`` items."""
    entries = []
    for item in range(total - 1, max(-1, total - 1 - layout.items), -1):
        a = layout.article(feed, item)
        src = sources[a % len(sources)]
        link = base + layout.article_path(feed, item)
        title = f"{src.title} (edition {a})"
        summary = f"{src.title}: edition {a} of this report."
        pub = email.utils.formatdate(layout.published(feed, item), usegmt=True)
        entries.append(
            f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="true">{escape(link)}</guid><pubDate>{pub}</pubDate>'
            f"<description>{escape(summary)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>Simulated feed {feed}</title><link>{escape(base)}/</link>"
        f"<description>newsroom simulator feed {feed}</description><language>en</language>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode("utf-8")


# -- the server process ----------------------------------------------------------------------


@dataclass
class _Resource:
    body: bytes  # as served without gzip (None-like b"" when only gz is kept)
    gz: bytes | None
    etag: bytes
    last_modified: bytes
    content_type: bytes

    @classmethod
    def make(cls, body: bytes, content_type: str, modified: float, compress: bool) -> _Resource:
        gz = gzip.compress(body, compresslevel=1, mtime=0) if compress else None
        return cls(
            body=b"" if gz is not None else body,
            gz=gz,
            etag=b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"',
            last_modified=email.utils.formatdate(modified, usegmt=True).encode(),
            content_type=content_type.encode(),
        )

    def plain(self) -> bytes:
        return self.body if self.gz is None else gzip.decompress(self.gz)


class _Site:
    """The server process's state: per-host route tables of pre-rendered resources."""

    def __init__(self, config: dict) -> None:
        self.layout: Layout = config["layout"]
        self.latency: float = config["latency"]
        self.compress: bool = config["gzip"]
        self.sources = [_Source.prepare(html, None) for html in config["pages"]]
        self.routes: list[dict[bytes, _Resource]] = [{} for _ in range(self.layout.hosts)]
        self.counts: Counter = Counter()
        self.total_items = self.layout.items
        self.bases: list[str] = []

    def render(self, bases: list[str], first_item: int = 0) -> None:
        lay = self.layout
        self.bases = bases
        for host in range(lay.hosts):
            robots = _Resource.make(ROBOTS, "text/plain; charset=utf-8", lay.started, False)
            self.routes[host][b"/robots.txt"] = robots
        for feed in range(lay.feeds):
            host = lay.host_of(feed)
            for item in range(first_item, self.total_items):
                a = lay.article(feed, item)
                body = self.sources[a % len(self.sources)].render(a)
                res = _Resource.make(
                    body, "text/html; charset=utf-8", lay.published(feed, item), self.compress
                )
                self.routes[host][lay.article_path(feed, item).encode()] = res
            xml = _feed_xml(lay, self.sources, feed, self.total_items, bases[host])
            modified = lay.published(feed, self.total_items - 1)
            self.routes[host][lay.feed_path(feed).encode()] = _Resource.make(
                xml, "application/rss+xml; charset=utf-8", modified, self.compress
            )

    def advance(self, new_items: int) -> None:
        first = self.total_items
        self.total_items += new_items
        self.render(self.bases, first)

    def respond(self, host: int, method: bytes, target: bytes, headers: dict) -> bytes:
        path = target.split(b"?", 1)[0]
        res = self.routes[host].get(path)
        if method not in (b"GET", b"HEAD"):
            return self._simple(405, b"Method Not Allowed")
        if res is None:
            return self._simple(404, b"Not Found")
        common = (
            b"ETag: " + res.etag + b"\r\nLast-Modified: " + res.last_modified + b"\r\n"
            b"Content-Type: " + res.content_type + b"\r\n"
        )
        if _not_modified(res, headers):
            self.counts[304] += 1
            return b"HTTP/1.1 304 Not Modified\r\n" + common + b"Content-Length: 0\r\n\r\n"
        if res.gz is not None and b"gzip" in headers.get(b"accept-encoding", b""):
            body, extra = res.gz, b"Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
        else:
            body, extra = res.plain(), b""
        self.counts[200] += 1
        head = b"HTTP/1.1 200 OK\r\n" + common + extra
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        return head if method == b"HEAD" else head + body

    def _simple(self, status: int, reason: bytes) -> bytes:
        self.counts[status] += 1
        return (
            f"HTTP/1.1 {status} ".encode() + reason + b"\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + str(len(reason)).encode() + b"\r\n\r\n" + reason
        )


def _not_modified(res: _Resource, headers: dict) -> bool:
    inm = headers.get(b"if-none-match")
    if inm is not None:
        tags = [t.strip().removeprefix(b"W/") for t in inm.split(b",")]
        return res.etag in tags or b"*" in tags
    ims = headers.get(b"if-modified-since")
    if ims is None:
        return False
    if ims == res.last_modified:
        return True
    try:
        since = email.utils.parsedate_to_datetime(ims.decode("latin-1")).timestamp()
        modified = email.utils.parsedate_to_datetime(res.last_modified.decode()).timestamp()
    except (TypeError, ValueError):
        return False
    return modified <= since


async def _handle(site: _Site, host: int, reader, writer) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target, version = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                key, sep, value = line.partition(b":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            if length:
                await reader.readexactly(length)
            if site.latency:
                await asyncio.sleep(site.latency)
            site.counts["total"] += 1
            writer.write(site.respond(host, method, target, headers))
            await writer.drain()
            connection = headers.get(b"connection", b"").lower()
            if connection == b"close" or (
                version.strip() == b"HTTP/1.0" and connection != b"keep-alive"
            ):
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _listen(site: _Site) -> list:
    """Start one listener per host; all on one port when it is free on every address."""
    hosts = site.layout.hosts
    for _attempt in range(5):
        servers: list = []
        try:
            port = 0
            for host in range(hosts):
                server = await asyncio.start_server(
                    lambda r, w, h=host: _handle(site, h, r, w), _address(host), port, backlog=512
                )
                port = server.sockets[0].getsockname()[1]
                servers.append(server)
            return servers
        except OSError:
            for server in servers:
                server.close()
    # Fall back to a port of its own for every host.
    return [
        await asyncio.start_server(
            lambda r, w, h=host: _handle(site, h, r, w), _address(host), 0, backlog=512
        )
        for host in range(hosts)
    ]


def _serve_process(conn, config: dict) -> None:
    """The server process: render, listen, answer control messages until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    site = _Site(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = await _listen(site)
        bases = [
            f"http://{_address(h)}:{s.sockets[0].getsockname()[1]}" for h, s in enumerate(servers)
        ]
        site.render(bases)
        stop = asyncio.Event()

        def control() -> None:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = ("stop",)
                if msg[0] == "stats":
                    conn.send({"counts": dict(site.counts)})
                elif msg[0] == "advance":
                    site.advance(msg[1])
                    conn.send("ok")
                else:
                    loop.call_soon_threadsafe(stop.set)
                    return

        conn.send(("ready", bases))
        threading.Thread(target=control, daemon=True).start()
        await stop.wait()
        for server in servers:
            server.close()

    asyncio.run(main())


# -- the parent's handle ---------------------------------------------------------------------


class Simulator:
    """The simulated news web, served by a child process. Use as a context manager."""

    def __init__(
        self,
        feeds: int = 1000,
        hosts: int = 50,
        items: int = 5,
        latency: float = 0.0,
        pages: list[Page] | None = None,
        gzip: bool = True,
    ) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError("hosts must be between 1 and 250 (127.0.0.2 ... 127.0.0.251)")
        if pages is None:
            pages, self.source = load_pages()
        else:
            self.source = "given pages"
        if not pages:
            raise ValueError("no pages to serve")
        self.sources = [_Source.prepare(html, truth) for html, truth in pages]
        self.layout = Layout(feeds, min(hosts, feeds), items, len(pages), time.time())
        self.latency = latency
        self.gzip = gzip
        self.total_items = items
        self.bases: list[str] = []
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()
        self._paths: dict[str, int] = {}  # article URL -> article number

    def start(self) -> Simulator:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        config = {
            "layout": self.layout,
            "latency": self.latency,
            "gzip": self.gzip,
            "pages": [s.html for s in self.sources],
        }
        self._proc = ctx.Process(target=_serve_process, args=(child, config), daemon=True)
        # The server needs nothing from __main__: do not make the child run the caller's script
        # or module again (a __spec__ named __main__ is the case multiprocessing skips).
        main = sys.modules.get("__main__")
        saved = getattr(main, "__spec__", None)
        if main is not None:
            main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        try:
            self._proc.start()
        finally:
            if main is not None:
                main.__spec__ = saved
        child.close()
        if not self._conn.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"newsroom simulator did not start within {START_TIMEOUT:g}s")
        _tag, self.bases = self._conn.recv()
        self._index_articles(0)
        return self

    def _index_articles(self, first_item: int) -> None:
        lay = self.layout
        for item in range(first_item, self.total_items):
            for feed in range(lay.feeds):
                url = self.bases[lay.host_of(feed)] + lay.article_path(feed, item)
                self._paths[url] = lay.article(feed, item)

    def stop(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()
        self._proc = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def feed_urls(self) -> list[str]:
        lay = self.layout
        return [self.bases[lay.host_of(f)] + lay.feed_path(f) for f in range(lay.feeds)]

    @property
    def article_urls(self) -> list[str]:
        """Every article page, in the order of their article numbers (newest items last)."""
        return sorted(self._paths, key=self._paths.get)

    def _source(self, url: str) -> tuple[_Source, int]:
        a = self._paths[url]
        return self.sources[a % len(self.sources)], a

    def truth(self, url: str) -> str | None:
        """The ground-truth body of the page behind ``url`` (None without ground truth)."""
        src, a = self._source(url)
        return src.copy_truth(a)

    def html(self, url: str) -> bytes:
        """The exact (uncompressed) bytes served for ``url``."""
        src, a = self._source(url)
        return src.render(a)

    def _ask(self, msg: tuple):
        with self._lock:
            self._conn.send(msg)
            return self._conn.recv()

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the server process has used so far, rendering included."""
        return process_cpu_seconds(self.pid)

    def requests(self) -> dict:
        """Requests answered so far: ``total`` and one count per status (200, 304, 404, ...)."""
        counts = self._ask(("stats",))["counts"]
        return {
            "total": counts.get("total", 0),
            **{k: v for k, v in counts.items() if k != "total"},
        }

    def advance(self, new_items: int = 0) -> None:
        """Publish ``new_items`` more items on every feed (feeds change, so do their ETags)."""
        if new_items <= 0:
            return
        self._ask(("advance", new_items))
        first = self.total_items
        self.total_items += new_items
        self._index_articles(first)


def feed_file(sim: Simulator, path: Path) -> Path:
    """Write a newsflow feeds.yaml listing the simulator's feeds."""
    lines = ["# newsroom simulator feeds (benchmarks/newsroom.py)", "feeds:"]
    for i, url in enumerate(sim.feed_urls):
        lines += [f"  - url: {url}", f"    name: Simulated feed {i}", "    language: en"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def self_check(sim: Simulator, n: int = 3) -> dict:
    """Fetch a few URLs with httpx: 200 with validators, then 304 for each validator, and a
    gzip body that decodes to ``sim.html``. Returns what was checked; raises on a mismatch."""
    import httpx

    checked = 0
    with httpx.Client(trust_env=False, timeout=10) as client:
        urls = sim.feed_urls[:n] + sim.article_urls[:n]
        robots = client.get(sim.bases[0] + "/robots.txt")
        assert robots.status_code == 200 and b"Allow: /" in robots.content, robots
        assert client.get(sim.bases[0] + "/nowhere").status_code == 404
        for url in urls:
            first = client.get(url, headers={"Accept-Encoding": "gzip"})
            assert first.status_code == 200, (url, first.status_code)
            assert first.headers.get("content-encoding") == ("gzip" if sim.gzip else None)
            etag, modified = first.headers["etag"], first.headers["last-modified"]
            if url in sim._paths:
                assert first.content == sim.html(url), url
            again = client.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304, (url, again.status_code)
            since = client.get(url, headers={"If-Modified-Since": modified})
            assert since.status_code == 304, (url, since.status_code)
            checked += 1
    return {"urls_checked": checked, "ok": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--items", type=int, default=5, help="items per feed")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--no-gzip", action="store_true", help="never compress bodies")
    parser.add_argument("--out", type=Path, help="where to write feeds.yaml (default: a temp dir)")
    parser.add_argument("--check", action="store_true", help="self-check, then stop")
    args = parser.parse_args()
    started = time.perf_counter()
    sim = Simulator(args.feeds, args.hosts, args.items, args.latency, gzip=not args.no_gzip)
    with sim:
        ready = time.perf_counter() - started
        out = args.out or Path(tempfile.mkdtemp(prefix="newsroom-")) / "feeds.yaml"
        feed_file(sim, out)
        print(
            f"serving {len(sim.feed_urls)} feeds, {len(sim.article_urls)} articles on "
            f"{sim.layout.hosts} hosts ({sim.bases[0]} ...) from {sim.source}; "
            f"ready in {ready:.1f}s, server CPU {sim.cpu_seconds():.1f}s"
        )
        for url in sim.feed_urls[:5]:
            print("  " + url)
        print(f"feeds file: {out}")
        if args.check:
            print(f"self-check: {self_check(sim)}; requests: {sim.requests()}")
            return 0
        print("Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print(f"requests: {sim.requests()}, server CPU {sim.cpu_seconds():.1f}s")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.newsroom")  # the server process finds its code by the module's name
