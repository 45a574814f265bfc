"""A newcomer's first hour on real feeds: five real snapshots (../shared/corpus/real-feeds)
served on 127.0.0.1 with the defaults a user gets (politeness on, robots.txt honoured), their
article links pointing at a closed loopback port, so every page fails and what gets stored is
the feeds' own text. Skipped when the corpus is absent."""

from __future__ import annotations

import re

import feedparser
import pytest
from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route, SiteServer
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.parse import html_to_text, richest
from newsflow.fetching.urls import article_id, canonicalize
from newsflow.run.cycle import run_cycle

from tests.helpers import SHARED_CORPUS

FEEDS = [  # (file, what it shows)
    "elpais-english.rss.xml",  # a caption first, the whole article in content:encoded
    "nytimes-world.rss.xml",  # a caption (media:description) shorter than the summary
    "abc-australia-topstories.rss.xml",  # language en-AU, captions
    "kottke.atom.xml",  # character references in titles
    "guardian-us-2018.rss.xml",  # HTML in descriptions
]
ROOT = SHARED_CORPUS / "real-feeds"
UNDECODED = re.compile(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


@pytest.fixture(scope="module")
def first_hour(tmp_path_factory, model_name):
    if not all((ROOT / f).exists() for f in FEEDS):
        pytest.skip(f"corpus not available: {ROOT}")
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
    # article_id -> (feed file, its summary, the longest text the item carries)
    summaries: dict[str, tuple[str, str | None, str | None]] = {}
    with SiteServer() as site:
        specs = []
        for name in FEEDS:
            body = (ROOT / name).read_bytes()
            # every article link, on any host, now points at the closed port
            body = re.sub(
                rb"https?://(www\.)?[a-z0-9.-]+\.(com|org|net|au)(?=/)", closed.encode(), body
            )
            for entry in feedparser.parse(body).entries:
                link = entry.get("link")
                if link:
                    aid = article_id(canonicalize(link))
                    bodies = [html_to_text(c.get("value")) for c in entry.get("content") or []]
                    summary = html_to_text(entry.get("summary"))
                    summaries[aid] = (name, summary, richest(*bodies, summary))
            site.routes[f"/{name}"] = Route(body, content_type="application/xml")
            specs.append(FeedSpec(url=f"{site.base_url}/{name}"))
        settings = Settings(data_dir=tmp_path_factory.mktemp("first-hour"), allow_private=True)
        with Store(settings.lake) as store:
            summary = run_cycle(settings, store, feeds=specs)
            rows = store.con.execute(
                "select a.article_id, a.title, a.text, a.language, a.extraction_status,"
                " f.url, f.language, t.status, t.reason"
                " from articles a join feeds f using (feed_id)"
                " left join article_tagging t on t.article_id = a.article_id"
                " and t.kind = 'entities'"
            ).fetchall()
    return summary, rows, summaries


def test_every_stored_fallback_is_at_least_the_items_own_summary(first_hour):
    _, rows, summaries = first_hour
    assert len(rows) > 200
    shorter = [
        (summaries[aid][0], len(text or ""), len(summaries[aid][1]))
        for aid, _, text, *_ in rows
        if aid in summaries and summaries[aid][1] and len(text or "") < len(summaries[aid][1])
    ]
    assert shorter == []
    assert all(status == "feed_content" for *_, status, _, _, _, _ in rows if status)
    # The longest body each item carries is what is stored (El País: content:encoded, not the
    # caption that comes first; 50 of its 56 items stored a caption before).
    assert [aid for aid, _, text, *_ in rows if text != summaries[aid][2]] == []
    elpais = [len(text) for _, _, text, _, _, url, *_ in rows if "elpais" in url]
    assert len(elpais) == 56 and sorted(elpais)[len(elpais) // 2] > 500


def test_english_feeds_get_entities_whatever_their_language_tag_says(first_hour):
    _, rows, _ = first_hour
    untagged = [
        (url.rsplit("/", 1)[-1], language, feed_language, reason)
        for _, _, _, language, _, url, feed_language, status, reason in rows
        if status != "ok"
    ]
    assert untagged == []
    assert {lang for _, _, _, lang, *_ in rows} == {"en"}


def test_no_title_keeps_an_undecoded_character_reference(first_hour):
    _, rows, _ = first_hour
    assert [title for _, title, *_ in rows if title and UNDECODED.search(title)] == []


def test_a_scripted_first_hour_every_message_names_the_cause_and_the_way_out(
    tmp_path, capsys, monkeypatch, model_name
):
    """The README's path on the five real feeds, with a newcomer's mistakes: exit codes, and
    each message naming what is wrong and what to do."""
    import json

    from newsflow.cli import main

    if not all((ROOT / f).exists() for f in FEEDS):
        pytest.skip(f"corpus not available: {ROOT}")
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NEWSFLOW_ALLOW_PRIVATE", raising=False)

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    with SiteServer() as site:
        for name in FEEDS:
            body = re.sub(rb"https?://(www\.)?[a-z0-9.-]+\.(com|org|net|au)(?=/)",
                          b"http://127.0.0.1:9", (ROOT / name).read_bytes())  # fmt: skip
            site.routes[f"/{name}"] = Route(body, content_type="application/xml")
        site.routes["/front.html"] = Route(b"<!doctype html><html><body>News</body></html>",
                                           content_type="text/html")  # fmt: skip
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text("feeds:\n" + "".join(f"  - {site.base_url}/{n}\n" for n in FEEDS))
        # 1. loopback without permission: every feed refused, the way out named
        code, out, _ = run("ingest", "--feeds", str(feeds))
        assert code == 0 and "5 failed" in out
        assert out.count("allow with --allow-private or NEWSFLOW_ALLOW_PRIVATE=1") == 5
        # 2. allowed now, but the feeds are in backoff: said, with --all
        code, out, _ = run("ingest", "--feeds", str(feeds), "--allow-private")
        assert code == 0 and "in backoff after failed polls" in out and "--all" in out
        # 3. polled now: pages fail (their links lead nowhere), the feeds' texts are kept
        code, out, _ = run("ingest", "--feeds", str(feeds), "--allow-private", "--all")
        assert code == 0 and "from feed content" in out
        loaded = int(re.search(r"articles\s+(\d+) loaded", out).group(1))
        assert loaded > 200
        # 4. status: machine-readable, and why the pages failed, per feed
        code, out, _ = run("status", "--format", "json")
        doc = json.loads(out)
        assert code == 0 and len(doc["feeds"]) == 5
        assert all(f["pages_failed_7d"] > 0 and f["page_error"].startswith("robots.txt")
                   for f in doc["feeds"])  # fmt: skip
        # 5. a feed removed from the file is deactivated, and the run says so
        feeds.write_text(feeds.read_text().replace(f"  - {site.base_url}/{FEEDS[-1]}\n", ""))
        code, out, _ = run("ingest", "--feeds", str(feeds), "--allow-private")
        assert code == 0 and "1 feed(s) not in the feed list deactivated" in out
        assert "--keep-unlisted keeps them" in out
        # 6. a web page given as a feed: its poll says so and names feeds discover
        page = tmp_path / "page.yaml"
        page.write_text(f"feeds:\n  - {site.base_url}/front.html\n")
        code, out, _ = run("ingest", "--feeds", str(page), "--allow-private", "--keep-unlisted")
        assert code == 0 and "not a feed but a web page" in out
        assert f"newsflow feeds discover {site.base_url}/front.html" in out
    # 7. sql writes nothing: refused, exit 2, the way to save a result named
    code, _, err = run("sql", f"copy articles to '{tmp_path / 'x.csv'}'")
    assert code == 2 and "read-only" in err and "--format csv" in err
    assert not (tmp_path / "x.csv").exists()
    code, out, _ = run("sql", "select count(*) as n from articles", "--format", "json")
    assert code == 0 and json.loads(out) == [{"n": loaded}]
