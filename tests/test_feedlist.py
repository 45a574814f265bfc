from pathlib import Path

import pytest
from newsflow.fetching.feedlist import (
    FeedFileError,
    FeedSpec,
    load_feed_file,
    parse_opml,
    parse_yaml,
    to_opml,
    to_yaml,
)

LISTS = Path(__file__).parent / "fixtures" / "feedlists"


def test_yaml_feed_list():
    feeds = load_feed_file(LISTS / "good.yaml")
    assert feeds == [
        FeedSpec("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC News - World",
                 ("world", "uk"), "en"),
        FeedSpec("https://www.aljazeera.com/xml/rss/all.xml", "Al Jazeera", ("world", "middle-east")),
        FeedSpec("https://www.npr.org/rss/rss.php?id=1004"),
    ]  # fmt: skip


def test_opml_feed_list_with_folders_as_tags():
    feeds = load_feed_file(LISTS / "good.opml")
    assert [f.url for f in feeds] == [
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        "https://www.aljazeera.com/xml/rss/all.xml",
        "https://www.dawn.com/feeds/world",
    ]
    assert feeds[0].tags == ("World",) and feeds[0].name == "BBC News - World"
    assert feeds[2].tags == ("pakistan", "south-asia") and feeds[2].language == "en"


@pytest.mark.parametrize("fmt", ["yaml", "opml"])
def test_export_round_trips(fmt, tmp_path):
    feeds = load_feed_file(LISTS / "good.yaml")
    rows = [{"url": f.url, "title": f.name, "tags": list(f.tags), "language": f.language}
            for f in feeds]  # fmt: skip
    path = tmp_path / f"out.{fmt}"
    path.write_text(to_yaml(rows) if fmt == "yaml" else to_opml(rows))
    assert load_feed_file(path) == feeds


@pytest.mark.parametrize(
    ("text", "entry", "problem"),
    [
        ("feeds: [", "line 1, column 9", "not valid YAML"),
        ("- url: https://a.example/rss", None, "a 'feeds' list at the top"),
        ("feeds: {url: x}", None, "'feeds' must be a list"),
        ("feeds:\n  - url: ftp://a.example/rss", "entry 1 (line 2)", "only http and https"),
        ("feeds:\n  - url: https://a.example/rss\n  - name: no url", "entry 2 (line 3)",
         "missing url"),
        ("feeds:\n  - url: 'not a url'", "entry 1", "invalid url"),
        ("feeds:\n  - {url: 'https://a.example/rss', lang: en}", "entry 1", "unknown key(s) lang"),
        ("feeds:\n  - {url: 'https://a.example/rss', language: english}", "entry 1",
         "language 'english'"),
        ("feeds:\n  - {url: 'https://a.example/rss', tags: {a: 1}}", "entry 1", "tags must be"),
        ("feeds:\n  - https://a.example/rss\n  - https://A.example/rss", "entry 2",
         "listed twice (also at entry 1"),
        ("feeds:\n  - 42", "entry 1", "expected a mapping with a url"),
    ],
)  # fmt: skip
def test_bad_yaml_names_file_entry_and_problem(tmp_path, text, entry, problem):
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    with pytest.raises(FeedFileError) as err:
        parse_yaml(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert problem in message
    if entry:
        assert entry in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"<opml><body><outline xmlUrl='https://a.example/rss'>", "not valid XML"),
        (b"<rss><channel/></rss>", "not an OPML file"),
        (b"<opml><head/></opml>", "no <body>"),
        (b"<opml><body><outline text='folder'/></body></opml>", "no feeds to import"),
        (b"<opml><body>\n<outline text='x' xmlUrl='javascript:alert(1)'/></body></opml>",
         "outline at line 2 (x): invalid url"),
    ],
)  # fmt: skip
def test_bad_opml_names_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "feeds.opml"
    path.write_bytes(text)
    with pytest.raises(FeedFileError) as err:
        parse_opml(path)
    assert str(err.value).startswith(str(path)) and problem in str(err.value)


def test_opml_entities_are_not_expanded(tmp_path):
    path = tmp_path / "evil.opml"
    path.write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<opml><body><outline text='&x;' xmlUrl='https://a.example/rss'/></body></opml>"
    )
    # lxml refuses the external entity instead of fetching it: a clear error, nothing read.
    with pytest.raises(FeedFileError, match="external entity"):
        parse_opml(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FeedFileError, match=r"nope\.yaml: file not found"):
        load_feed_file(tmp_path / "nope.yaml")
