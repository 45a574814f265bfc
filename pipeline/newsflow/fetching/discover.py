"""Finding a site's feeds from one of its pages (``newsflow feeds discover URL``).

What feed readers do: the page's ``<link rel="alternate">`` to RSS, Atom or JSON Feed; when
it names none, the paths feeds usually live at on its site (``/feed``, ``/rss.xml``, ...).
Every candidate is fetched with the polite client (robots.txt, private addresses refused
unless allowed, one host's requests spaced) and kept only when it parses as a feed with
items, with its title and how many items it has. A URL that is a feed already is its own
answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.html

from newsflow.config import Settings
from newsflow.fetching.client import PoliteClient
from newsflow.fetching.parse import parse_feed
from newsflow.fetching.poll import FEED_ACCEPT

FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
}
# Where feeds usually are when a page does not say (WordPress, Blogger, Hugo, Jekyll, Ghost).
COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml",
                "/feeds/posts/default", "/feed/")  # fmt: skip


class DiscoveryError(RuntimeError):
    """The page itself could not be fetched; the message says why."""


@dataclass
class FoundFeed:
    url: str
    title: str | None
    items: int
    how: str  # "the URL itself", "<link rel=alternate>", "common path"


def linked_feeds(html: bytes, base: str) -> list[str]:
    """The feed URLs a page's ``<link rel="alternate">`` elements name, absolute, in order."""
    try:
        doc = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    found: dict[str, None] = {}
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = urljoin(base, href)
            if urlsplit(url).scheme in ("http", "https"):
                found[url] = None
    return list(found)


async def _get(client: PoliteClient, url: str, settings: Settings, accept: str):
    if settings.respect_robots:
        allowed, why = await client.robots_allowed(url)
        if not allowed:
            return None, why
    res = await client.fetch(url, max_bytes=settings.max_feed_bytes, accept=accept)
    if not res.ok:
        return None, f"{res.outcome}: {res.error}" if res.error else res.outcome
    return res, None


async def _discover(url: str, settings: Settings) -> list[FoundFeed]:
    async with PoliteClient(settings) as client:
        page, why = await _get(client, url, settings, "text/html, " + FEED_ACCEPT)
        if page is None:
            raise DiscoveryError(f"{url}: {why}")
        itself = parse_feed(page.body, page.final_url, page.content_type)
        if itself.usable and itself.items:
            return [FoundFeed(page.final_url, itself.title, len(itself.items), "the URL itself")]
        candidates = [(u, "<link rel=alternate>") for u in linked_feeds(page.body, page.final_url)]
        if not candidates:
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.final_url))
            candidates = [(origin + path, "common path") for path in COMMON_PATHS]
        found: dict[str, FoundFeed] = {}
        for candidate, how in candidates:
            res, _ = await _get(client, candidate, settings, FEED_ACCEPT)
            if res is None:
                continue
            parsed = parse_feed(res.body, res.final_url, res.content_type)
            if parsed.usable and parsed.items and res.final_url not in found:
                found[res.final_url] = FoundFeed(
                    res.final_url, parsed.title, len(parsed.items), how
                )
        return list(found.values())


def discover(url: str, settings: Settings) -> list[FoundFeed]:
    """The feeds of the site of ``url`` (see the module's doc); raises DiscoveryError when the
    page cannot be fetched."""
    return asyncio.run(_discover(url, settings))
