"""``newsflow extract URL``: one page through the same stages as an ingest, stored nowhere.

The page is fetched by the polite client with the user's settings (robots.txt honoured,
private addresses refused unless allowed), extracted by trafilatura and turned into the row
an ingest would store (``fetching.fetch.article_row``), then tagged by the configured taggers
(spaCy entities, IPTC topics): what ``extract`` prints is what ingesting the page stores.
A local HTML file is read instead of fetched.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from newsflow.config import Settings
from newsflow.enrich.tag import TAG_INPUT_COLUMNS, Tagger
from newsflow.fetching.client import PoliteClient
from newsflow.fetching.extract import extract_page
from newsflow.fetching.fetch import article_row, fetch_page
from newsflow.fetching.urls import InvalidURL, article_id, canonicalize, validate_http_url


class ExtractError(RuntimeError):
    """The page could not be had at all (refused, unreachable, not HTML, not a file); the
    message says which and why."""


FIELDS = (
    "title",
    "authors",
    "published_at",
    "language",
    "site_name",
    "description",
    "top_image",
    "keywords",
    "word_count",
    "extraction_status",
    "extraction_error",
)


def _item(url: str) -> dict:
    canonical = canonicalize(url)
    return {
        "article_id": article_id(canonical), "feed_id": None, "url": url,
        "canonical_url": canonical, "guid": None, "title": None, "authors": [],
        "categories": [], "summary": None, "content": None, "published_at": None,
        "first_seen_at": datetime.now(UTC), "feed_language": None,
    }  # fmt: skip


async def _fetch(url: str, settings: Settings):
    async with PoliteClient(settings) as client:
        return await fetch_page({"url": url}, client, settings)


def extract(target: str, settings: Settings, *, tag: bool = True) -> dict:
    """The article ``target`` (an http(s) URL, or an HTML file's path) would be stored as,
    with its entities and topics; raises ExtractError when there is no page to extract."""
    path = Path(target)
    if "://" not in target and path.is_file():
        html, url, final_url, status = path.read_bytes(), str(path), None, None
        item = _item(f"http://localhost/{path.name}")  # an id for the file, as for a page
    else:
        try:
            url = validate_http_url(target)
        except InvalidURL as exc:
            raise ExtractError(f"{target!r} is neither an http(s) URL nor a file: {exc}") from None
        page = asyncio.run(_fetch(url, settings))
        if page.problem:
            raise ExtractError(f"{url}: {page.problem}")
        html, final_url, status = page.res.body, page.res.final_url, page.res.status
        item = _item(url)
    extracted = extract_page(html, final_url or item["url"], settings.extract_timeout)
    row = article_row(item, final_url, status, extracted, None if extracted.ok else extracted.error)
    out = {"url": url, "final_url": final_url, "article_id": item["article_id"]}
    out |= {k: row.get(k) for k in FIELDS}
    out["text"] = row.get("text")
    out["entities"], out["topics"] = [], []
    if tag and settings.tagging and out["text"]:
        article = {k: row.get(k) for k in TAG_INPUT_COLUMNS}
        article["feed_categories"] = article["feed_categories"] or []
        rows = Tagger.from_settings(settings).tag([article])
        out["entities"] = [
            {k: e[k] for k in ("entity", "label", "mentions", "salience")} for e in rows.entities
        ]
        out["topics"] = [{k: t[k] for k in ("topic", "score")} for t in rows.topics]
        out["tagging"] = [{k: t[k] for k in ("kind", "status", "reason")} for t in rows.tagging]
    return out
