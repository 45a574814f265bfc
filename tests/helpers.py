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
