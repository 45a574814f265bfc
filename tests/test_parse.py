"""Feed parsing and dates: feedparser on bytes, problems reported in the result."""

import time
from datetime import UTC, datetime

import pytest
from newsflow.fetching.parse import html_to_text, language_code, parse_date, parse_feed, richest
from newsflow.fetching.titles import strip_site_name

from tests.helpers import rss

FEED = "https://news.example.com/feeds/world.xml"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 17 Feb 2026 18:55:33 +0500", datetime(2026, 2, 17, 13, 55, 33, tzinfo=UTC)),
        ("Tue, 17 Feb 2026 18:55:33 GMT", datetime(2026, 2, 17, 18, 55, 33, tzinfo=UTC)),
        ("Tue, 17 Feb 2026 22:00:00 -0800", datetime(2026, 2, 18, 6, 0, tzinfo=UTC)),
        ("Tue, 17 Feb 2026 18:55:33 EST", datetime(2026, 2, 17, 23, 55, 33, tzinfo=UTC)),
        ("2026-02-17T18:55:33+09:00", datetime(2026, 2, 17, 9, 55, 33, tzinfo=UTC)),
        ("not a date", None),
        ("Mon, 01 Jan 1900 00:00:00 GMT", None),  # implausibly old
        ("Fri, 01 Jan 2100 00:00:00 GMT", None),  # in the future
    ],
)
def test_item_dates_are_utc_or_none(date, expected):
    parsed = parse_feed(rss("T", [{"link": "/a", "date": date}]), FEED)
    assert parsed.items[0].published_at == expected


def test_parse_date_handles_empty_and_broken_structs():
    assert parse_date(None) is None
    assert parse_date(time.gmtime(0)) is None


def test_items_carry_resolved_links_text_and_categories():
    body = rss("World", [
        {"link": "/story/1?utm_source=rss", "title": "<b>Big</b> news &amp; more",
         "description": "<p>First <i>paragraph</i>.</p>", "categories": ["Politics", "Europe"]},
    ])  # fmt: skip
    parsed = parse_feed(body, FEED)
    assert parsed.usable and not parsed.malformed
    item = parsed.items[0]
    assert item.url == "https://news.example.com/story/1?utm_source=rss"
    assert item.canonical_url == "https://news.example.com/story/1"
    assert item.title == "Big news & more"
    assert item.summary == "First paragraph."
    assert item.categories == ["Politics", "Europe"]
    assert parsed.title == "World"


def test_items_without_links_are_skipped_and_said():
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            b"<item><title>no link</title></item>"
            b"<item><title>ok</title><link>https://a.example/x</link></item>"
            b"<item><link>javascript:alert(1)</link></item></channel></rss>")  # fmt: skip
    parsed = parse_feed(body, FEED)
    assert [i.url for i in parsed.items] == ["https://a.example/x"]
    assert "2 item(s) without a usable http(s) link skipped" in parsed.warning


def test_malformed_but_usable_feed_is_processed_and_flagged():
    body = rss("T", [{"link": "https://a.example/1", "title": "one"}]).replace(b"</channel>", b"")
    parsed = parse_feed(body, FEED)
    assert parsed.usable and parsed.malformed and parsed.warning
    assert len(parsed.items) == 1


@pytest.mark.parametrize(
    ("body", "ctype", "problem"),
    [
        (b"", "application/rss+xml", "empty response body"),
        (b"   \n", "application/rss+xml", "empty response body"),
        (b"<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>", "text/html",
         f"not a feed but a web page (text/html): `newsflow feeds discover {FEED}` lists"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", "not a usable feed"),
    ],
)  # fmt: skip
def test_unusable_documents_say_why(body, ctype, problem):
    parsed = parse_feed(body, FEED, ctype)
    assert not parsed.usable and problem in parsed.error


def test_entity_expansion_is_not_performed():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
              + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">'
                         % ((ord("a") + i + 1,) + (ord("a") + i,) * 10) for i in range(8))
              + b']><rss version="2.0"><channel><title>&i;</title>'
              b"<item><link>https://a.example/1</link><title>t</title></item></channel></rss>")  # fmt: skip
    started = time.monotonic()
    parsed = parse_feed(laughs, FEED)
    assert time.monotonic() - started < 2
    assert len(parsed.title or "") < 1000
    assert [i.url for i in parsed.items] == ["https://a.example/1"]


def test_items_beyond_the_cap_are_ignored_and_said():
    body = rss("T", [{"link": f"https://a.example/{i}"} for i in range(30)])
    parsed = parse_feed(body, FEED, max_items=10)
    assert len(parsed.items) == 10 and "20 item(s) beyond the cap" in parsed.warning


def test_html_to_text():
    assert html_to_text("<p>a <b>b</b></p>\n<p>c</p>") == "a b c"
    assert html_to_text("plain   text") == "plain text"
    assert html_to_text("  ") is None and html_to_text(None) is None


def test_character_references_are_decoded_without_any_tag():
    assert html_to_text("It&#8217;s here &amp; now") == "It\u2019s here & now"
    assert html_to_text("AT&T and R&D") == "AT&T and R&D"  # a bare ampersand stays
    # A feed that escapes its titles twice (kottke.org does): feedparser undoes one level.
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>K</title>'
        b"<item><title>Kottke&amp;#8217;s &amp;#8220;list&amp;#8221;</title>"
        b"<link>https://k.example/a</link></item></channel></rss>"
    )
    [item] = parse_feed(body, FEED).items
    assert item.title == "Kottke\u2019s \u201clist\u201d"


def test_json_feed():
    body = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "JSON News",
      "home_page_url": "https://news.example.com/", "language": "en",
      "items": [
        {"id": "1", "url": "/a?utm_source=json", "title": "First", "summary": "Sum",
         "content_html": "<p>Hello <b>world</b></p>", "date_published": "2026-02-17T10:00:00+02:00",
         "authors": [{"name": "Ann"}], "tags": ["x", "y"]},
        {"id": "https://news.example.com/b", "content_text": "Plain body"},
        {"id": "no-link"},
        "not an item"
      ]}"""
    parsed = parse_feed(body, FEED, "application/feed+json")
    assert parsed.usable and parsed.title == "JSON News" and parsed.language == "en"
    first, second = parsed.items
    assert first.canonical_url == "https://news.example.com/a"
    assert first.published_at == datetime(2026, 2, 17, 8, 0, tzinfo=UTC)
    assert first.content == "Hello world" and first.summary == "Sum"
    assert first.authors == ["Ann"] and first.categories == ["x", "y"]
    assert second.url == "https://news.example.com/b" and second.content == "Plain body"
    assert second.published_at is None
    assert "1 item(s) without a usable http(s) link skipped" in parsed.warning


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"title": "x", "items": []}', "without a JSON Feed version"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": 3}', "without an items list"),
    ],
)
def test_bad_json_feeds_say_why(body, problem):
    parsed = parse_feed(body, FEED, "application/json")
    assert not parsed.usable and problem in parsed.error


@pytest.mark.parametrize(
    ("tag", "code"),
    [("en-US", "en"), ("en_gb", "en"), ("EN", "en"), (" fr-CA ", "fr"), ("zh-Hant-TW", "zh"),
     ("x-klingon", None), ("", None), (None, None), ("English please", None)],
)  # fmt: skip
def test_language_tags_are_normalised_to_the_language_models_are_keyed_by(tag, code):
    assert language_code(tag) == code


def test_the_richest_body_of_an_item_wins_over_a_caption_that_comes_first():
    caption = "A protester holds a flag."
    article = "Some say they were simply unlucky. " * 20
    feed = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>T</title>'
        "<language>en-US</language><item><link>https://news.example.com/a</link>"
        f"<media:description>{caption}</media:description>"
        "<description>The summary, longer than the caption.</description>"
        f"<content:encoded><![CDATA[<p>{article}</p>]]></content:encoded></item>"
        "<item><link>https://news.example.com/b</link>"
        f"<media:description>{caption}</media:description>"
        "<description>The summary, longer than the caption.</description></item>"
        "</channel></rss>"
    ).encode()
    parsed = parse_feed(feed, "https://news.example.com/feed.xml")
    first, second = parsed.items
    assert parsed.language == "en"
    assert first.content == article.strip()
    # no full content: the summary is richer than the caption
    assert richest(second.content, second.summary) == "The summary, longer than the caption."


@pytest.mark.parametrize(
    ("title", "site", "url", "stored"),
    [
        # Real titles of the bundled sample newsroom, with the page's og:site_name.
        ("Best tech gadgets of 2019 | ZDNet", "ZDNet", None, "Best tech gadgets of 2019"),
        ("Opening Bell 11.18.19 - Dealbreaker", "Dealbreaker", None, "Opening Bell 11.18.19"),
        (
            "Opinion | Republicans Are Following Trump to Nowhere - The New York Times",
            "NYTimes",
            None,
            "Opinion | Republicans Are Following Trump to Nowhere",
        ),
        (
            "South Dakota governor doubles down on 'meth, we're on it' anti-drug campaign | TheHill",
            "The Hill",
            None,
            "South Dakota governor doubles down on 'meth, we're on it' anti-drug campaign",
        ),
        (
            "Hong Kong chaos: China deploys troops | World | News | Express.co.uk",
            None,
            "https://www.express.co.uk/news/world/1206313/hong-kong",
            "Hong Kong chaos: China deploys troops",
        ),
        (
            "The Guardian view on Hong Kong: a city on the brink | Editorial | Opinion | The Guardian",
            "The Guardian",
            None,
            "The Guardian view on Hong Kong: a city on the brink",
        ),
        (
            "Royal Self-Indicting Arrogance - Sputnik International",
            "SputnikInt",
            None,
            "Royal Self-Indicting Arrogance",
        ),
        (
            "Star Wars Jedi: Fallen Order review - shoots for the moon, lands among the stars - VG247",
            "VG247",
            None,
            "Star Wars Jedi: Fallen Order review - shoots for the moon, lands among the stars",
        ),
        (
            "Beijing tariff demands may expand US-China trade deal | Deccan Herald",
            None,
            "https://www.deccanherald.com/business/x.html",
            "Beijing tariff demands may expand US-China trade deal",
        ),
        ("BBC News - Brexit deal agreed", "BBC News", None, "Brexit deal agreed"),
        # Left alone: no site named, a section that is not after the site's name, a headline
        # whose first word is like the site's name, a title that is only the site's name, and
        # the sample newsroom's own address.
        (
            "All-new 2020 Sentra - Auto News",
            "AutoIndustriya.com",
            None,
            "All-new 2020 Sentra - Auto News",
        ),
        ("Trump - a profile", "Trump Times", None, "Trump - a profile"),
        ("Vox", "Vox", "https://www.vox.com/", "Vox"),
        ("Talks fail - Geneva", None, None, "Talks fail - Geneva"),
        ("Talks fail - 127", None, "http://127.0.0.1:8000/a", "Talks fail - 127"),
    ],
)
def test_titles_lose_the_site_name(title, site, url, stored):
    assert strip_site_name(title, site, url) == stored
