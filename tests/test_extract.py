"""`newsflow extract URL`: one page, fetched, extracted and tagged exactly as an ingest stores
it, and nothing stored. Real parts: a loopback HTTP server with the default politeness (one
host, a pause between its requests, robots.txt read), the real trafilatura and spaCy model."""

from __future__ import annotations

import json

import pytest
from newsflow.cli import main
from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run.cycle import run_cycle
from newsflow.run.extract_one import ExtractError, extract

from tests.helpers import bundled_page, bundled_slugs, rss

PAGES = ["sample-boat-strike", *bundled_slugs()[:10]]
COMPARED = ["title", "authors", "published_at", "language", "site_name", "description",
            "top_image", "keywords", "word_count", "extraction_status", "text"]  # fmt: skip


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, model_name):
    """The eleven pages through a feed whose items carry only links (so that the stored title,
    byline and date are the page's, as extract sees them), ingested with the defaults."""
    from newsflow.demo.newsroom import SiteServer

    with SiteServer() as site:
        for slug in PAGES:
            site.routes[f"/a/{slug}.html"] = Route(bundled_page(slug))
        items = [{"link": f"{site.base_url}/a/{slug}.html"} for slug in PAGES]
        site.routes["/feed.xml"] = Route(rss("Pages", items), content_type="application/rss+xml")
        settings = Settings(data_dir=tmp_path_factory.mktemp("extract"), allow_private=True)
        with Store(settings.lake) as store:
            run_cycle(settings, store, feeds=[FeedSpec(url=f"{site.base_url}/feed.xml")])
            stored = {r["url"]: r for r in store.rows("select * from articles")}
            entities = {}
            for aid, entity, label, mentions in store.query(
                "select article_id, entity, label, mentions from article_entities"
            )[1]:
                entities.setdefault(aid, set()).add((entity, label, mentions))
            topics = {}
            for aid, topic, score in store.query(
                "select article_id, topic, round(score, 6) from article_topics"
            )[1]:
                topics.setdefault(aid, set()).add((topic, score))
        extracted = {url: extract(url, settings) for url in stored}
        yield settings, site, stored, entities, topics, extracted


def test_extract_prints_what_ingesting_the_page_stores(ingested):
    _, _, stored, entities, topics, extracted = ingested
    assert len(stored) == len(PAGES)
    for url, row in stored.items():
        got = extracted[url]
        assert got["article_id"] == row["article_id"]
        assert {k: got[k] for k in COMPARED} == {k: row[k] for k in COMPARED}, url
        assert {(e["entity"], e["label"], e["mentions"]) for e in got["entities"]} == entities[
            row["article_id"]
        ]
        assert {(t["topic"], round(t["score"], 6)) for t in got["topics"]} == topics.get(
            row["article_id"], set()
        )
    sample = next(v for k, v in extracted.items() if "sample-boat-strike" in k)
    assert {"Nicolas Maduro", "Pete Hegseth"} <= {e["entity"] for e in sample["entities"]}


def test_extract_cli_json_and_text_and_its_errors(ingested, capsys, tmp_path, monkeypatch):
    settings, site, *_ = ingested
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "untouched"))
    url = f"{site.base_url}/a/sample-boat-strike.html"
    assert main(["extract", url, "--allow-private", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["extraction_status"] == "ok" and "Nicolas Maduro" in doc["text"]
    assert main(["extract", url, "--allow-private", "--no-tag"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"url                {url}" and "entities" not in out
    assert not (tmp_path / "untouched").exists()  # no store, no data folder
    # refused without --allow-private, a missing page, neither URL nor file: exit 1, named
    assert main(["extract", url]) == 1
    assert "loopback address (allow with --allow-private" in capsys.readouterr().err
    assert main(["extract", f"{site.base_url}/a/missing.html", "--allow-private"]) == 1
    assert "404" in capsys.readouterr().err
    assert main(["extract", "no-such-file.html"]) == 1
    assert "neither an http(s) URL nor a file" in capsys.readouterr().err
    page = tmp_path / "page.html"
    page.write_bytes(bundled_page("sample-boat-strike"))
    assert main(["extract", str(page), "--no-tag"]) == 0
    assert "Nicolas Maduro" in capsys.readouterr().out


def test_extract_raises_naming_the_page_when_there_is_none(ingested):
    settings, site, *_ = ingested
    with pytest.raises(ExtractError, match=r"missing\.html: page http_error"):
        extract(f"{site.base_url}/a/missing.html", settings)


@pytest.mark.slow  # the usual paths are tried one per politeness turn (~18 s)
def test_feeds_discover_finds_linked_feeds_then_the_usual_paths(capsys, site):
    feed = rss("Wire", [{"link": f"{site.base_url}/a.html", "title": "A"}])
    site.routes["/news/rss.xml"] = Route(feed, content_type="application/rss+xml")
    site.routes["/news/atom-broken.xml"] = Route(b"<html>not a feed</html>")
    site.routes["/"] = Route(
        b"<!doctype html><html><head><title>Site</title>"
        b'<link rel="alternate" type="application/rss+xml" href="/news/rss.xml">'
        b'<link rel="alternate" type="application/atom+xml" href="/news/atom-broken.xml">'
        b'<link rel="stylesheet" href="/s.css"></head><body>Hi</body></html>',
        content_type="text/html",
    )
    site.routes["/blog/post.html"] = Route(b"<html><head></head><body>A post</body></html>")
    site.routes["/feed"] = Route(feed, content_type="application/rss+xml")
    assert main(["feeds", "discover", f"{site.base_url}/", "--allow-private", "--format",
                 "json"]) == 0  # fmt: skip
    [found] = json.loads(capsys.readouterr().out)  # the broken one is checked and left out
    assert found == {"url": f"{site.base_url}/news/rss.xml", "title": "Wire", "items": 1,
                     "found_by": "<link rel=alternate>"}  # fmt: skip
    # a page that links none: the usual paths of its site
    assert main(["feeds", "discover", f"{site.base_url}/blog/post.html", "--allow-private"]) == 0
    out = capsys.readouterr().out
    assert f"{site.base_url}/feed " in out and "common path" in out
    assert f"add one with: newsflow feeds add {site.base_url}/feed" in out
    # a feed is its own answer; a dead page says why, exit 1
    assert main(["feeds", "discover", f"{site.base_url}/feed", "--allow-private"]) == 0
    assert "the URL itself" in capsys.readouterr().out
    assert main(["feeds", "discover", f"{site.base_url}/gone", "--allow-private"]) == 1
    assert "404" in capsys.readouterr().err
    assert main(["feeds", "discover", f"{site.base_url}/"]) == 1  # loopback, not allowed
    assert "--allow-private" in capsys.readouterr().err
