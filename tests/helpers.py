"""Helpers the tests share: paths, corpus access, small feed and page builders.

Imported as ``from tests.helpers import ...`` (fixtures stay in conftest.py, which pytest loads
by itself; importing conftest as a module loads it a second time)."""

from __future__ import annotations

import gzip
import html
from dataclasses import replace
from pathlib import Path

import pytest
from newsflow.config import Settings
from newsflow.demo.newsroom import DATA as NEWSROOM_DATA

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_dir(name: str) -> Path:
    """A folder of ../shared/corpus, or skip the test when the corpus is absent."""
    path = SHARED_CORPUS / name
    if not path.is_dir():
        pytest.skip(f"corpus not available: {path}")
    return path


def rss(title: str, items: list[dict], extra_channel: str = "") -> bytes:
    """A small RSS 2.0 document; each item dict has link and optional title, date, description."""
    parts = []
    for item in items:
        fields = [f"<link>{html.escape(item['link'])}</link>"]
        if "title" in item:
            fields.append(f"<title>{html.escape(item['title'])}</title>")
        if "date" in item:
            fields.append(f"<pubDate>{item['date']}</pubDate>")
        if "description" in item:
            fields.append(f"<description>{html.escape(item['description'])}</description>")
        for cat in item.get("categories", []):
            fields.append(f"<category>{html.escape(cat)}</category>")
        parts.append("<item>" + "".join(fields) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{html.escape(title)}</title><link>http://example.org/</link>{extra_channel}"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


def article_page(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title></head><body><nav><a href='/'>Home</a></nav><article><h1>{html.escape(title)}"
        f"</h1>{body}</article><footer>Contact us</footer></body></html>"
    ).encode()


def bundled_page(slug: str) -> bytes:
    """A real article page from the bundled sample newsroom."""
    return gzip.decompress((NEWSROOM_DATA / "articles" / f"{slug}.html.gz").read_bytes())


def bundled_slugs() -> list[str]:
    return sorted(p.name.removesuffix(".html.gz") for p in (NEWSROOM_DATA / "articles").iterdir())


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)


def entity_count_errors(store) -> dict[str, list]:
    """What the kept counts (``entity_key_counts``, ``entities``: moved by each load and
    retag, migration 015) say differently from a count of the entity rows: articles and
    mentions exact, first and last day/sighting at least as wide. Empty when they agree."""
    keys = store.query(
        """
        with counted as (
            select entity_key, entity, label, count(distinct article_id) as articles,
                   sum(mentions) as mentions, min(day) as first_day, max(day) as last_day
            from article_entities where entity_key is not null group by all)
        select coalesce(c.entity_key, k.entity_key), coalesce(c.entity, k.entity),
               c.articles, k.articles, c.mentions, k.mentions
        from counted c full join entity_key_counts k
          on k.entity_key = c.entity_key and k.entity = c.entity and k.label = c.label
        where c.articles is distinct from k.articles or c.mentions is distinct from k.mentions
           or k.first_day > c.first_day or k.last_day < c.last_day
        """
    )[1]
    entities = store.query(
        """
        with counted as (
            select e.entity_id, count(distinct e.article_id) as articles,
                   sum(e.mentions) as mentions,
                   min(coalesce(a.published_at, a.first_seen_at)) as first_seen,
                   max(coalesce(a.published_at, a.first_seen_at)) as last_seen
            from article_entities e join articles a using (article_id)
            where e.entity_id is not null group by 1)
        select coalesce(c.entity_id, n.entity_id), c.articles, n.articles, c.mentions, n.mentions
        from counted c full join entities n using (entity_id)
        where c.articles is distinct from n.articles or c.mentions is distinct from n.mentions
           or n.first_seen_at > c.first_seen or n.last_seen_at < c.last_seen
        """
    )[1]
    return {k: v for k, v in (("keys", keys), ("entities", entities)) if v}


def feed_file(specs, path: Path) -> Path:
    """The feed list of ``specs`` (FeedSpecs), written to ``path`` as a user's feeds.yaml."""
    from newsflow.fetching.feedlist import to_yaml

    path.write_text(to_yaml([{"url": s.url, "title": s.name} for s in specs]), encoding="utf-8")
    return path
