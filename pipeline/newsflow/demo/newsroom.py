"""The sample newsroom: a small HTTP server on 127.0.0.1 serving bundled real feeds and pages.

It stands in for the news web when there is no internet (the demo, the Airflow DAG offline,
tests). It behaves like a decent publisher: ETag and Last-Modified with 304 answers, gzip when
asked, a robots.txt. ``SiteServer`` is the generic part, also used by the tests with their own
routes (errors, redirects, slow answers).
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from newsflow.fetching.feedlist import FeedSpec

DATA = Path(str(resources.files("newsflow.demo") / "newsroom_data"))
# All bundled content claims this modification time, so If-Modified-Since works across restarts.
PUBLISHED = email.utils.formatdate(1771372800, usegmt=True)  # 2026-02-18


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops the SYNs of a client that opens more connections
    # at once (the demo opens 8): each dropped one costs a 1 s retransmit.
    request_queue_size = 128


@dataclass
class Route:
    """What the server answers for one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = True  # send ETag/Last-Modified and answer 304 when they match
    gzipped: bool = False  # body is stored gzip-compressed
    delay: float = 0.0
    fail_first: int = 0  # answer 503 to the first this many requests (a transient failure)


class SiteServer:
    """A threaded HTTP server on 127.0.0.1 with a mutable route table. Use as a context manager."""

    def __init__(
        self, routes: dict[str, Route] | None = None, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.hits: Counter[str] = Counter()
        self.request_headers: list[tuple[str, dict]] = []
        # What politeness is judged by at the server: when each request started (monotonic
        # seconds) and the most requests it had in flight at once.
        self.starts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "newsflow-newsroom"

            def log_message(self, *args) -> None:  # keep the console quiet
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.starts.append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._serve(self)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        # Any 127.x.y.z address works on Linux's loopback: one server per address stands in
        # for one host of the news web.
        self.httpd = _Server((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        with self._lock:
            self.hits[path] += 1
            hit = self.hits[path]
            self.request_headers.append((path, dict(h.headers.items())))
        route = self.routes.get(path) or self.routes.get(path.split("?", 1)[0])
        if route is None:
            route = Route(b"not found", status=404, content_type="text/plain", conditional=False)
        elif hit <= route.fail_first:
            route = Route(b"busy", status=503, content_type="text/plain", conditional=False)
        if route.delay:
            time.sleep(route.delay)
        headers = {"Content-Type": route.content_type, **route.headers}
        body = route.body
        status = route.status
        if route.conditional and status == 200:
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            headers["ETag"] = etag
            headers["Last-Modified"] = PUBLISHED
            if h.headers.get("If-None-Match") == etag or (
                h.headers.get("If-None-Match") is None
                and h.headers.get("If-Modified-Since") == PUBLISHED
            ):
                status, body = 304, b""
        if route.gzipped and body:
            if "gzip" in h.headers.get("Accept-Encoding", ""):
                headers["Content-Encoding"] = "gzip"
            else:
                body = gzip.decompress(body)
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def start(self) -> SiteServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def manifest() -> dict:
    return json.loads((DATA / "MANIFEST.json").read_text(encoding="utf-8"))


def newsroom_routes(base_url: str) -> dict[str, Route]:
    """Routes of the bundled newsroom, with feed links pointing at ``base_url``."""
    routes = {
        "/robots.txt": Route(
            b"User-agent: *\nDisallow: /private/\n", content_type="text/plain; charset=utf-8"
        )
    }
    for feed in manifest()["feeds"]:
        xml = (DATA / feed["path"]).read_bytes().replace(b"{{BASE}}", base_url.encode())
        routes["/" + feed["path"]] = Route(xml, content_type="application/rss+xml; charset=utf-8")
    for page in sorted((DATA / "articles").glob("*.html.gz")):
        slug = page.name.removesuffix(".html.gz")
        routes[f"/articles/{slug}.html"] = Route(page.read_bytes(), gzipped=True)
    index = "".join(f'<li><a href="/{f["path"]}">{f["name"]}</a></li>' for f in manifest()["feeds"])
    routes["/"] = Route(
        f"<html><body><h1>newsflow sample newsroom</h1><ul>{index}</ul></body></html>".encode()
    )
    return routes


def newsroom_feeds(base_url: str) -> list[FeedSpec]:
    return [
        FeedSpec(
            url=f"{base_url}/{f['path']}",
            name=f["name"],
            tags=(*f["tags"], "demo"),
            language=f["language"],
        )
        for f in manifest()["feeds"]
    ]


class Newsroom(SiteServer):
    """The bundled sample newsroom."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(port=port, host=host)
        self.routes.update(newsroom_routes(self.base_url))

    @property
    def feeds(self) -> list[FeedSpec]:
        return newsroom_feeds(self.base_url)
