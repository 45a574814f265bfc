"""The polite, guarded HTTP client used for feeds, pages and robots.txt.

Every request: connect/read timeouts and a wall-clock deadline, a byte cap on the decoded body,
gzip/deflate decoded under that cap, redirects followed by hand (bounded, each hop re-checked),
an honest User-Agent, per-host concurrency and spacing, and Retry-After remembered per host.
Connections to loopback, private, link-local and metadata addresses are refused at connect time
(so DNS rebinding cannot slip past a check made earlier) unless private addresses are allowed.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import re
import socket
import threading
import time
import urllib.robotparser
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from newsflow.config import Settings
from newsflow.fetching.urls import InvalidURL, validate_http_url

LOGGER = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_TOKEN = "newsflow"


class BlockedAddressError(httpcore.ConnectError):
    """The host resolves only to addresses newsflow may not connect to."""


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why connecting to ``ip`` is refused by default, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "a reserved address (unspecified; it reaches this machine)"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself and connects only to an address the policy allows."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refused = []
        last_exc: Exception | None = None
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
            problem = None if self._allow_private else address_problem(ip)
            if problem:
                refused.append(f"{ip} is {problem}")
                continue
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_exc = exc
        if refused and last_exc is None:
            raise BlockedAddressError(
                f"refused to connect to {host}: {'; '.join(refused)}"
                " (allow with --allow-private or NEWSFLOW_ALLOW_PRIVATE=1)"
            )
        raise last_exc or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover - never used
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class FetchResult:
    """What one fetch produced. ``outcome`` is a short code; ``error`` explains a failure."""

    url: str
    final_url: str
    outcome: str  # ok, not_modified, http_error, blocked, too_large, timeout, network_error, ...
    status: int | None = None
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    retry_after: float | None = None
    error: str | None = None
    elapsed: float = 0.0  # from the call to the result: queue time included
    queued: float = 0.0  # of which waiting for the host's turn and a free slot, not sent yet
    redirects: int = 0
    max_age: float | None = None  # Cache-Control max-age of the response, seconds

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class BodyTooLarge(Exception):
    pass


# When each host may next be sent a request, for the whole process: the poll stage's client,
# the fetch stage's and the next cycle's keep one spacing between them (a client's own gates
# are asyncio objects of its event loop; this is only a time, shared under a thread lock).
_NEXT_START: dict[str, float] = {}
_NEXT_START_LOCK = threading.Lock()


@dataclass
class _HostGate:
    host: str
    semaphore: asyncio.Semaphore
    blocked_until: float = 0.0  # a Retry-After the host asked for
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def next_start(self) -> float:
        """Monotonic time before which no request of the host may start."""
        return _NEXT_START.get(self.host, 0.0)

    def try_start(self, now: float, delay: float) -> bool:
        """Take the host's turn if it has come (atomically, for clients in other threads)."""
        with _NEXT_START_LOCK:
            if max(_NEXT_START.get(self.host, 0.0), self.blocked_until) > now:
                return False
            _NEXT_START[self.host] = now + delay
            return True

    def started_at(self, now: float, delay: float) -> None:
        """A request of the host went out at ``now``: no other starts before ``now + delay``."""
        with _NEXT_START_LOCK:
            _NEXT_START[self.host] = max(_NEXT_START.get(self.host, 0.0), now + delay)

    def next_turn(self) -> float:
        return max(self.next_start, self.blocked_until)


def _validator(value: str | None) -> str | None:
    """An ETag or Last-Modified worth keeping: one that can be sent back as it came, printable
    ASCII of a sane length. (A non-ASCII one, which servers do send, cannot be encoded in the
    next request: kept, it would fail every later poll of the feed.)"""
    if value and len(value) <= 1024 and value.isascii() and value.isprintable():
        return value
    return None


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})", re.IGNORECASE)


def parse_max_age(value: str | None) -> float | None:
    """Seconds of ``Cache-Control: max-age`` (None when absent, or ``no-cache``/``no-store``)."""
    if not value or "no-store" in value.lower() or "no-cache" in value.lower():
        return None
    m = _MAX_AGE.search(value)
    return float(m.group(1)) if m else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class PoliteClient:
    """Async HTTP client with the guards above. Use as ``async with PoliteClient(s) as c``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        transport = httpx.AsyncHTTPTransport(retries=0)
        # The pool's backend is the one place every connection passes through.
        pool = transport._pool
        pool._network_backend = GuardedBackend(pool._network_backend, settings.allow_private)
        limits = httpx.Limits(
            max_connections=settings.max_concurrency,
            max_keepalive_connections=settings.max_concurrency,
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            limits=limits,
            timeout=httpx.Timeout(
                settings.read_timeout,
                connect=settings.connect_timeout,
                pool=settings.request_deadline,
            ),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
            trust_env=False,
        )
        self._global = asyncio.Semaphore(settings.max_concurrency)
        self._hosts: dict[str, _HostGate] = {}
        self._robots: dict[str, asyncio.Future] = {}

    async def __aenter__(self) -> PoliteClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self._http.aclose()

    def _gate(self, host: str) -> _HostGate:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(
                host, asyncio.Semaphore(self.settings.per_host_concurrency)
            )
        return gate

    def next_turn(self, host: str) -> float:
        """The monotonic time at which ``host`` may next be sent a request."""
        gate = self._hosts.get(host)
        return gate.next_turn() if gate else _NEXT_START.get(host, 0.0)

    async def _take_turn(self, gate: _HostGate) -> float | None:
        """Wait for the host's spacing and any Retry-After it asked for, then for a free global
        slot, which the caller then holds (release ``self._global``). The host's turn comes
        first: a request waiting on its host's spacing never holds a slot another host could
        use. The host's requests take their turns in the order they came (``gate.lock`` is a
        FIFO), and the spacing counts from the moment a request really starts.

        Returns the remaining wait instead of waiting when it exceeds ``max_retry_after``
        (no slot held): such a request is deferred to a later run rather than holding this
        one up.
        """
        async with gate.lock:
            while True:
                now = time.monotonic()
                if gate.blocked_until - now > self.settings.max_retry_after:
                    return gate.blocked_until - now
                turn = gate.next_turn()
                if turn > now:
                    await asyncio.sleep(turn - now)
                    continue
                await self._global.acquire()
                if gate.try_start(time.monotonic(), self.settings.per_host_delay):
                    return None
                # A client in another thread started a request to this host meanwhile.
                self._global.release()

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
    ) -> FetchResult:
        """GET ``url``; never raises for network or HTTP problems, reports them in the result."""
        started = time.monotonic()
        queued = [0.0]
        try:
            result = await self._fetch(url, max_bytes, etag, last_modified, accept, queued)
        except Exception as exc:  # a server this code did not foresee costs one fetch, no more
            LOGGER.warning("unexpected error fetching %s: %r", url, exc, exc_info=True)
            result = FetchResult(
                url, url, "network_error", error=f"unexpected {type(exc).__name__}: {exc}"[:500]
            )
        result.elapsed = time.monotonic() - started
        result.queued = queued[0]
        return result

    def _timeout_error(self, exc: httpx.TimeoutException) -> str:
        """What timed out, and after how long (httpx's own messages are often empty)."""
        s = self.settings
        what = {
            httpx.ConnectTimeout: f"no connection within {s.connect_timeout:g}s",
            httpx.ReadTimeout: f"no data from the server for {s.read_timeout:g}s",
            httpx.WriteTimeout: f"could not send the request within {s.read_timeout:g}s",
            httpx.PoolTimeout: f"no free connection within {s.request_deadline:g}s",
        }.get(type(exc), str(exc) or "timed out")
        return f"{type(exc).__name__}: {what}"

    async def _fetch(self, url, max_bytes, etag, last_modified, accept, queued) -> FetchResult:
        """Follow the redirects of ``url``; each hop waits its host's turn, then has
        ``request_deadline`` from the moment it is sent. ``queued[0]`` adds up the waits."""
        current = url
        seen = {url}
        for hop in range(self.settings.max_redirects + 1):
            try:
                validate_http_url(current)
            except InvalidURL as exc:
                return FetchResult(url, current, "invalid_url", error=str(exc), redirects=hop)
            headers = {"Accept": accept}
            if hop == 0 and _validator(etag):
                headers["If-None-Match"] = etag
            if hop == 0 and _validator(last_modified):
                headers["If-Modified-Since"] = last_modified
            host = urlsplit(current).hostname or ""
            gate = self._gate(host)
            waiting = time.monotonic()
            async with gate.semaphore:
                deferred = await self._take_turn(gate)
                queued[0] += time.monotonic() - waiting
                if deferred is not None:
                    return FetchResult(
                        url,
                        current,
                        "deferred",
                        retry_after=deferred,
                        error=f"{host} asked to retry after {deferred:.0f}s; deferred",
                    )
                try:
                    async with asyncio.timeout(self.settings.request_deadline):
                        result = await self._request(current, headers, max_bytes, gate)
                except TimeoutError:
                    return FetchResult(
                        url,
                        current,
                        "timeout",
                        error=f"no complete response within {self.settings.request_deadline:g}s"
                        " of sending the request",
                        redirects=hop,
                    )
                except httpx.TimeoutException as exc:
                    return FetchResult(url, current, "timeout", error=self._timeout_error(exc))
                except (httpx.InvalidURL, UnicodeError) as exc:
                    # httpx's stricter IDNA rules, here or in a redirect's Location (httpx
                    # parses that even when it does not follow it).
                    return FetchResult(
                        url,
                        current,
                        "invalid_url",
                        error=f"invalid URL in the request or its redirect: {exc}"[:500],
                        redirects=hop,
                    )
                except httpx.HTTPError as exc:
                    if isinstance(exc.__cause__, BlockedAddressError):
                        return FetchResult(url, current, "blocked", error=str(exc.__cause__))
                    return FetchResult(
                        url,
                        current,
                        "network_error",
                        error=f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__,
                    )
                except BodyTooLarge:
                    return FetchResult(
                        url,
                        current,
                        "too_large",
                        error=f"body exceeds the cap of {max_bytes} bytes",
                    )
                finally:
                    self._global.release()
            result.url, result.redirects = url, hop
            if result.status in (429, 503) and result.retry_after is not None:
                gate.blocked_until = max(
                    gate.blocked_until,
                    time.monotonic() + min(result.retry_after, self.settings.max_backoff),
                )
            if result.status in (301, 302, 303, 307, 308) and result.final_url != current:
                nxt = result.final_url
                if nxt in seen:
                    return FetchResult(
                        url,
                        nxt,
                        "redirect_loop",
                        status=result.status,
                        error=f"redirect loop at {nxt}",
                        redirects=hop,
                    )
                seen.add(nxt)
                current = nxt
                continue
            return result
        return FetchResult(
            url,
            current,
            "too_many_redirects",
            error=f"more than {self.settings.max_redirects} redirects",
        )

    async def _request(
        self, url: str, headers: dict, max_bytes: int, gate: _HostGate
    ) -> FetchResult:
        delay = self.settings.per_host_delay

        async def sent(event: str, info: dict) -> None:
            # The host's spacing counts from when the request really goes out: connecting, or
            # a busy event loop, can delay it past the moment it took its turn.
            if event.endswith("send_request_headers.started"):
                gate.started_at(time.monotonic(), delay)

        request = self._http.build_request("GET", url, headers=headers, extensions={"trace": sent})
        response = await self._http.send(request, stream=True)
        try:
            status = response.status_code
            h = response.headers
            result = FetchResult(
                url,
                url,
                "ok",
                status=status,
                etag=_validator(h.get("etag")),
                last_modified=_validator(h.get("last-modified")),
                content_type=h.get("content-type"),
                retry_after=parse_retry_after(h.get("retry-after")),
                max_age=parse_max_age(h.get("cache-control")),
            )
            if status in (301, 302, 303, 307, 308):
                location = h.get("location")
                if not location:
                    result.outcome, result.error = "http_error", f"HTTP {status} without Location"
                    return result
                result.final_url = urljoin(url, location.strip())
                return result
            if status == 304:
                result.outcome = "not_modified"
                return result
            if status >= 400 or status < 200:
                result.outcome = "http_error"
                result.error = f"HTTP {status} {response.reason_phrase}".strip()
                return result
            declared = h.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise BodyTooLarge
            result.body = await _read_capped(response, max_bytes)
            return result
        finally:
            await response.aclose()

    async def robots_allowed(self, url: str) -> tuple[bool, str | None]:
        """Whether robots.txt of the URL's origin lets newsflow fetch it (cached per origin).

        Follows RFC 9309: a missing robots.txt (4xx) allows everything; an unreachable one
        (5xx, network failure) disallows everything for this run.
        """
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        fut = self._robots.get(origin)
        if fut is None:
            fut = self._robots[origin] = asyncio.ensure_future(self._load_robots(origin))
        parser, problem = await fut
        if parser is None:
            return (problem is None), problem
        if parser.can_fetch(ROBOTS_TOKEN, url):
            return True, None
        return False, f"disallowed by {origin}/robots.txt"

    async def _load_robots(self, origin: str):
        res = await self.fetch(
            origin + "/robots.txt", max_bytes=ROBOTS_MAX_BYTES, accept="text/plain"
        )
        if res.ok:
            parser = urllib.robotparser.RobotFileParser()
            parser.parse(res.body.decode("utf-8", "replace").splitlines())
            return parser, None
        if res.outcome == "http_error" and res.status is not None and 400 <= res.status < 500:
            return None, None
        if res.outcome == "too_large":
            return None, None
        if res.outcome in ("blocked", "invalid_url"):
            # Not a robots.txt problem: the page's own host may not be fetched; say so.
            return None, f"page {res.outcome}: {res.error}"
        return None, f"robots.txt unavailable ({res.error or res.outcome}); not fetching pages"


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Read and decode the body, never holding more than ``max_bytes`` decoded bytes."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = None
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        if decoder is None:
            data = raw
        else:
            try:
                # max_length bounds the output of one call: a bomb cannot inflate past the cap.
                data = decoder.decompress(raw, max_bytes - size + 1)
            except zlib.error as exc:
                raise httpx.DecodingError(f"bad {encoding} body: {exc}") from None
            if decoder.unconsumed_tail:
                raise BodyTooLarge
        size += len(data)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(data)
    return b"".join(chunks)
