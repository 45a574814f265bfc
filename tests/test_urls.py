import pytest
from newsflow.fetching.urls import InvalidURL, article_id, canonicalize, feed_id, validate_http_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # tracking parameters go, the rest is sorted
        (
            "https://www.bbc.co.uk/news/world-1?at_medium=RSS&at_campaign=KARANGA",
            "https://bbc.co.uk/news/world-1",
        ),
        (
            "https://example.com/a?utm_source=x&utm_medium=rss&id=7&b=2",
            "https://example.com/a?b=2&id=7",
        ),
        (
            "https://example.com/a?maca=en-rss&fbclid=abc&gclid=1&mc_cid=2&p=1",
            "https://example.com/a?p=1",
        ),
        # fragments, host case, www./m. variants, default ports
        ("HTTPS://WWW.Example.COM:443/Path#section", "https://example.com/Path"),
        ("http://m.example.com:80/story", "http://example.com/story"),
        ("https://mobile.example.com/story", "https://example.com/story"),
        ("https://www.com/x", "https://www.com/x"),  # not a variant: only a TLD would remain
        ("http://127.0.0.1:8080/a/", "http://127.0.0.1:8080/a/"),
        # dot segments and escapes of unreserved characters
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/%7Euser/%41", "https://example.com/~user/A"),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/path?", "https://example.com/path"),
        ("https://例え.jp/記事", "https://xn--r8jz45g.jp/%E8%A8%98%E4%BA%8B"),
    ],
)
def test_canonicalize(url, expected):
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("/news/1", "https://example.com/feeds/rss.xml", "https://example.com/news/1"),
        ("story.html", "https://example.com/feeds/rss.xml", "https://example.com/feeds/story.html"),
        ("//cdn.example.org/x", "https://example.com/rss", "https://cdn.example.org/x"),
        ("https://other.org/x", "https://example.com/rss", "https://other.org/x"),
    ],
)
def test_relative_links_resolve_against_the_feed(link, base, expected):
    assert canonicalize(link, base=base) == expected


def test_variants_of_one_article_share_an_id():
    variants = [
        "https://www.example.com/story?utm_source=rss",
        "https://example.com/story#comments",
        "https://m.example.com/story",
        "HTTPS://EXAMPLE.COM/story",
    ]
    ids = {article_id(canonicalize(u)) for u in variants}
    assert len(ids) == 1
    assert len(ids.pop()) == 32


def test_different_articles_have_different_ids():
    a = article_id(canonicalize("https://example.com/story?id=1"))
    b = article_id(canonicalize("https://example.com/story?id=2"))
    assert a != b


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "mailto:a@b.c",
        "http://",
        "https://exa mple.com/\x00",
        "http://example.com:99999/",
        "not a url",
    ],
)
def test_invalid_urls_are_refused(url):
    with pytest.raises(InvalidURL):
        validate_http_url(url)
    with pytest.raises(InvalidURL):
        canonicalize(url)


def test_feed_id_keeps_the_url_otherwise_as_given():
    # Feeds are identified by their URL as registered (case of scheme/host aside): a feed's
    # query string can select a different feed, so nothing is dropped.
    assert feed_id("https://Example.com/rss?cat=1") == feed_id("https://example.com/rss?cat=1")
    assert feed_id("https://example.com/rss?cat=1") != feed_id("https://example.com/rss?cat=2")
