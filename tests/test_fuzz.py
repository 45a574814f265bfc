"""Property-based fuzzing (Hypothesis) of what reads untrusted or hand-written text: the feed-file
parsers (YAML and OPML), the URL canonicaliser and validator, and the settings loader.

Every parser either returns a well-formed result or raises its one documented error
(FeedFileError, InvalidURL, ConfigError); anything else is a bug. The runs are derandomized
(the same examples on every run, so CI is deterministic) and use no example database.
"""

from __future__ import annotations

import math
import string
from dataclasses import fields
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import lxml.etree as etree
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from newsflow.config import ConfigError, Settings, env_var, load_settings
from newsflow.fetching.feedlist import (
    FeedFileError,
    FeedSpec,
    parse_opml,
    parse_yaml,
    to_opml,
    to_yaml,
)
from newsflow.fetching.urls import (
    MAX_URL_LENGTH,
    InvalidURL,
    article_id,
    canonicalize,
    feed_id,
    is_tracking_param,
    validate_http_url,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# The structured generators (trees, documents) cost more per example.
FUZZ_STRUCTURED = settings(FUZZ, max_examples=200)
LISTS = Path(__file__).parent / "fixtures" / "feedlists"
GOOD_YAML = (LISTS / "good.yaml").read_text()
GOOD_OPML = (LISTS / "good.opml").read_bytes()

# -- URL strategies -----------------------------------------------------------------------------

LABEL = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12).filter(
    lambda s: s[0] != "-" and s[-1] != "-"
)
UNICODE_LABEL = st.text(
    st.characters(categories=("Ll", "Lu", "Lo", "Nd"), exclude_characters=".。．｡"),
    min_size=1,
    max_size=8,
)
DOMAIN = st.builds(
    lambda prefix, labels, tld: ".".join([*prefix, *labels, tld]),
    st.lists(st.sampled_from(["www", "www2", "m", "mobile", "amp", "WWW"]), max_size=2),
    st.lists(st.one_of(LABEL, UNICODE_LABEL), min_size=1, max_size=3),
    st.sampled_from(["com", "org", "example", "co.uk", "jp", "xn--p1ai", "рф"]),
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(lambda ip: f"[{ip}]")
HOST = st.one_of(
    DOMAIN,
    DOMAIN.map(str.upper),
    IPV4,
    IPV6,
    st.sampled_from(["localhost", "a..b", "[::1", "[v1.x]", "[fe80::1%25eth0]", "xn--", "-a.b"]),
    st.text(max_size=12),  # anything at all
)
PORT = st.one_of(
    st.none(),
    st.integers(0, 70000).map(str),
    st.sampled_from(["80", "443", "", "-1", "0x50", "８０"]),
)
ESCAPE = st.builds(lambda b: f"%{b:02x}", st.integers(0, 255)) | st.builds(
    lambda b: f"%{b:02X}", st.integers(0, 255)
)
SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", "%2e", "%2E%2E", "%", "%%", "%zz", "a b", "~user", "é"]),
    st.text(max_size=8),
    st.lists(st.one_of(ESCAPE, st.text(string.ascii_letters, max_size=3)), max_size=4).map("".join),
)
PATH = st.lists(SEGMENT, max_size=5).map(lambda segs: "/" + "/".join(segs))
PRINTABLE = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="?#\u2028\u2029")
VALID_SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", "%2e", "%2E%2E", "%", "%%", "%zz", "a b", "~user", "é"]),
    st.text(PRINTABLE, max_size=8).filter(lambda s: "/" not in s),
    st.lists(st.one_of(ESCAPE, st.text(string.ascii_letters, max_size=3)), max_size=4).map("".join),
)
VALID_PATH = st.lists(VALID_SEGMENT, max_size=5).map(lambda segs: "/" + "/".join(segs))
TRACKING = st.sampled_from(
    ["utm_source", "utm_medium", "UTM_Campaign", "fbclid", "gclid", "at_medium", "maca", "ocid"]
)
PARAM_NAME = st.one_of(TRACKING, st.text(string.ascii_lowercase, min_size=1, max_size=5))
PARAM_VALUE = st.one_of(st.text(max_size=6), ESCAPE, st.just("a+b"))
QUERY = st.lists(st.tuples(PARAM_NAME, PARAM_VALUE), max_size=4).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)
VALID_QUERY = st.lists(
    st.tuples(PARAM_NAME, st.one_of(st.text(PRINTABLE, max_size=6), ESCAPE, st.just("a+b"))),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
STRUCTURED_URL = st.builds(
    lambda scheme, user, host, port, path, query, frag: (
        f"{scheme}://{user}{host}{'' if port is None else ':' + port}{path}"
        f"{'?' + query if query is not None else ''}{'#' + frag if frag is not None else ''}"
    ),
    st.sampled_from(["http", "https", "HTTP", "HtTpS", "ftp", "javascript", "file", ""]),
    st.sampled_from(["", "", "", "user@", "user:pw@", "@"]),
    HOST,
    PORT,
    PATH,
    st.none() | QUERY,
    st.none() | st.text(max_size=6),
)
ANY_URL = st.one_of(
    STRUCTURED_URL,
    st.text(max_size=40),
    st.text(max_size=30).map(lambda s: "http://" + s),
    st.builds(
        lambda pad, u: pad + u + pad, st.sampled_from([" ", "\t", "\n", "\u3000"]), STRUCTURED_URL
    ),
)
# URLs that should be valid: for the properties that need a canonical form to compare.
VALID_URL = st.builds(
    lambda scheme, host, port, path, query: (
        f"{scheme}://{host}{'' if port is None else ':' + str(port)}{path}"
        f"{'?' + query if query else ''}"
    ),
    st.sampled_from(["http", "https"]),
    st.one_of(DOMAIN, IPV4, IPV6),
    st.none() | st.integers(1, 65535),
    VALID_PATH,
    VALID_QUERY,
)


def _canonical_or_none(url: str, base: str | None = None) -> str | None:
    try:
        return canonicalize(url, base=base)
    except InvalidURL:
        return None


@FUZZ
@given(ANY_URL)
@example("http://[::1]evil/")  # urlsplit drops "evil": the host is not what it seems
@example("HTTP:// 0")  # a space in the host
@example("http://[v1.x]/")
def test_url_functions_raise_only_invalid_url(url):
    try:
        checked = validate_http_url(url)
    except InvalidURL:
        checked = None
    canonical = _canonical_or_none(url)
    if checked is not None:
        assert checked == url.strip()
        assert len(feed_id(url)) == 16
    if canonical is not None:
        # canonicalize accepts no URL that validation refuses
        assert checked is not None


@FUZZ
@given(ANY_URL)
@example("http://0.0.0.0/%2e")  # an escaped dot segment survived the first pass
@example("http://www.www.example.com/")  # one host prefix stripped per pass
@example("http://a.example/%%341")  # decoding "%34" made a new escape "%41"
@example("http://a.example/" + "é" * 3000)  # percent-encoding makes it 6 times longer
def test_canonical_url_is_a_fixed_point_and_a_valid_http_url(url):
    canonical = _canonical_or_none(url)
    if canonical is None:
        return
    assert canonicalize(canonical) == canonical
    assert validate_http_url(canonical) == canonical
    assert len(canonical) <= MAX_URL_LENGTH
    parts = urlsplit(canonical)
    assert parts.scheme in ("http", "https") and parts.hostname and not parts.fragment
    assert canonical.isascii() and " " not in canonical
    assert not any(is_tracking_param(k) for k, _ in parse_qsl(parts.query))
    assert len(article_id(canonical)) == 32


@FUZZ
@given(VALID_URL)
def test_structured_valid_urls_canonicalize(url):
    # Hosts from DOMAIN may still be refused (a Unicode label IDNA 2003 rejects); the rest are
    # ordinary URLs and must go through.
    canonical = _canonical_or_none(url)
    if canonical is None:
        with pytest.raises(InvalidURL, match=r"international host name|invalid host name"):
            canonicalize(url)
        return
    assert canonicalize(canonical) == canonical


@FUZZ
@given(
    url=VALID_URL,
    tracking=st.lists(st.tuples(TRACKING, st.text(string.ascii_letters, max_size=5)), max_size=3),
    fragment=st.none() | st.text(PRINTABLE, max_size=8),
    www=st.sampled_from(["", "www.", "m.", "WWW."]),
    upper=st.booleans(),
)
def test_article_id_is_stable_under_tracking_fragment_and_www(url, tracking, fragment, www, upper):
    base = _canonical_or_none(url)
    if base is None:
        return
    parts = urlsplit(base)
    host = parts.netloc
    if www and not host.startswith("[") and host.count(".") >= 1 and not _is_ipv4(host):
        host = www + host
    query = "&".join(filter(None, [parts.query, *(f"{k}={v}" for k, v in tracking)]))
    scheme = parts.scheme.upper() if upper else parts.scheme
    variant = f"{scheme}://{host.upper() if upper else host}{parts.path}"
    variant += f"?{query}" if query else ""
    variant += f"#{fragment}" if fragment is not None else ""
    assert article_id(canonicalize(variant)) == article_id(base)


def _is_ipv4(netloc: str) -> bool:
    host = netloc.rsplit(":", 1)[0]
    return all(p.isdigit() for p in host.split("."))


@FUZZ
@given(
    link=ANY_URL | PATH | st.sampled_from(["//[oops/", "//", "?", "#x", "../../.."]), base=ANY_URL
)
@example(link="//[", base="http://a.example/")  # urljoin raised ValueError
def test_links_resolved_against_any_base_raise_only_invalid_url(link, base):
    canonical = _canonical_or_none(link, base=base)
    if canonical is not None:
        assert canonicalize(canonical) == canonical


XML_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\n"), max_size=15
)

# -- YAML feed lists ------------------------------------------------------------------------------


def _check_specs(specs):
    assert isinstance(specs, list)
    ids = set()
    for spec in specs:
        assert isinstance(spec, FeedSpec)
        assert validate_http_url(spec.url) == spec.url
        assert spec.name is None or (isinstance(spec.name, str) and spec.name.strip())
        assert isinstance(spec.tags, tuple) and all(isinstance(t, str) and t for t in spec.tags)
        assert spec.language is None or spec.language == spec.language.lower()
        ids.add(feed_id(spec.url))
    assert len(ids) == len(specs)


def _yaml(text: str):
    try:
        specs = parse_yaml("fuzz.yaml", text)
    except FeedFileError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        return None
    _check_specs(specs)
    return specs


@FUZZ
@given(st.text(max_size=200))
@example("feeds: [https://a.example/x]\nfeeds: [https://a.example/y, https://a.example/z]")
@example("[" * 3000)  # RecursionError in the YAML composer
@example("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
         "feeds:\n  - {url: 'https://a.example/', tags: *d}\n")  # fmt: skip
def test_yaml_arbitrary_text(text):
    _yaml(text)


@FUZZ
@given(st.text(alphabet="feds:url-[]{},'\"&*!#|>? \n\t0123456789ahtp/.", max_size=120))
def test_yaml_text_from_yaml_syntax(text):
    _yaml("feeds:\n" + text)


@FUZZ
@given(
    st.data(),
    st.lists(
        st.tuples(
            st.integers(0, 400),
            st.sampled_from(["", " ", "\n", "-", ":", "'", "[", "&a", "*a", "\t"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_yaml_mutations_of_a_good_list(data, edits):
    text = GOOD_YAML
    for pos, insert in edits:
        pos = min(pos, len(text))
        cut = data.draw(st.integers(0, 3))
        text = text[:pos] + insert + text[pos + cut :]
    _yaml(text)


SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.dates(),
    ANY_URL,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
PLAUSIBLE_ENTRY = st.fixed_dictionaries(
    {"url": VALID_URL},
    optional={
        "name": st.text(max_size=12) | st.integers(),
        "tags": st.lists(st.text(max_size=8), max_size=3) | st.text(max_size=12),
        "language": st.sampled_from(["en", "EN", "pt_BR", "en-GB", "", None]),
    },
)
ENTRY = st.one_of(
    PLAUSIBLE_ENTRY,
    PLAUSIBLE_ENTRY,
    VALUE,
    ANY_URL,
    st.fixed_dictionaries(
        {"url": ANY_URL | VALUE},
        optional={
            "name": VALUE,
            "tags": VALUE | st.lists(st.text(max_size=10), max_size=4),
            "language": VALUE | st.sampled_from(["en", "EN", "pt_BR", "en-GB", "english", "no"]),
            "lang": VALUE,
        },
    ),
)


@FUZZ_STRUCTURED
@given(st.one_of(VALUE, st.fixed_dictionaries({"feeds": st.lists(ENTRY, max_size=5) | VALUE})))
def test_yaml_random_documents(document):
    text = yaml.safe_dump(document, allow_unicode=True)
    _yaml(text)


EXPORT_ROWS = st.lists(
    st.fixed_dictionaries(
        {"url": VALID_URL.map(str.strip)},  # the registry holds URLs stripped
        optional={
            "title": XML_TEXT,
            "tags": st.lists(st.text(string.ascii_letters, min_size=1, max_size=5), max_size=3),
            "language": st.sampled_from(["en", "de", "pt-br"]),
        },
    ),
    max_size=5,
)


@FUZZ_STRUCTURED
@given(EXPORT_ROWS)
def test_yaml_export_round_trips(rows):
    # What `newsflow feeds export` writes reads back as the same feeds (or, for rows that are
    # not a valid feed list, e.g. two URLs that are one feed, as a FeedFileError).
    specs = _yaml(to_yaml(rows))
    if specs is not None:
        assert [s.url for s in specs] == [r["url"] for r in rows]


# -- OPML feed lists ------------------------------------------------------------------------------


def _opml(data: bytes | str):
    try:
        specs = parse_opml("fuzz.opml", data)
    except FeedFileError as exc:
        assert str(exc).startswith("fuzz.opml: ")
        return None
    _check_specs(specs)
    return specs


@FUZZ
@given(st.binary(max_size=300))
def test_opml_arbitrary_bytes(data):
    _opml(data)


@FUZZ
@given(st.text(max_size=200))
@example("<opml><body><outline xmlUrl='https://a.example/'/></body></opml>")
def test_opml_arbitrary_text(text):
    _opml(text)
    _opml('<?xml version="1.0" encoding="UTF-8"?>' + text)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(GOOD_OPML)), st.binary(max_size=3), st.integers(0, 3)),
        min_size=1,
        max_size=4,
    )
)
def test_opml_mutations_of_a_good_file(edits):
    data = GOOD_OPML
    for pos, insert, cut in edits:
        data = data[:pos] + insert + data[pos + cut :]
    _opml(data)


def _xml_ok(text: str) -> bool:
    """Whether lxml can put ``text`` in an attribute (XML 1.0 characters only)."""
    return all(
        c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) > 0xFFFF
        for c in text
    )


ATTRS = st.dictionaries(
    st.sampled_from(
        ["xmlUrl", "xmlurl", "XMLURL", "text", "title", "type", "category", "language", "x"]
    ),
    st.one_of(
        XML_TEXT,
        VALID_URL,
        STRUCTURED_URL,
        st.sampled_from(["rss", "atom", "link", "en", "english", "/a,/b"]),
    ).filter(_xml_ok),
    max_size=4,
)
TAG = st.sampled_from(
    ["outline", "outline", "outline", "body", "head", "Outline", "{urn:x}outline"]
)
TREE = st.recursive(
    st.tuples(TAG, ATTRS, st.just([])),
    lambda children: st.tuples(TAG, ATTRS, st.lists(children, max_size=4)),
    max_leaves=10,
)


def _build(parent, node) -> None:
    tag, attrs, children = node
    el = etree.SubElement(parent, tag)
    for k, v in attrs.items():
        el.set(k, v)
    for child in children:
        _build(el, child)


@FUZZ_STRUCTURED
@given(
    root=st.sampled_from(["opml", "OPML", "{urn:x}opml", "rss"]),
    body=st.sampled_from(["body", "Body", "head", None]),
    tree=st.lists(TREE, max_size=3),
)
def test_opml_random_trees(root, body, tree):
    top = etree.Element(root)
    parent = etree.SubElement(top, body) if body else top
    for node in tree:
        _build(parent, node)
    _opml(etree.tostring(top, xml_declaration=True, encoding="UTF-8"))


@FUZZ_STRUCTURED
@given(EXPORT_ROWS)
def test_opml_export_round_trips(rows):
    for data in (to_opml(rows), to_opml(rows).encode()):
        specs = _opml(data)
        if specs is not None:
            assert [s.url for s in specs] == [r["url"] for r in rows]


# -- settings -------------------------------------------------------------------------------------

SETTING_VARS = [env_var(f.name) for f in fields(Settings)]


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(SETTING_VARS),
        st.one_of(
            st.text(max_size=12),
            st.integers().map(str),
            st.floats().map(str),
            st.sampled_from(["", " ", "true", "no", "0", "-1", "1e309", "nan", "~", "~nobody_x/y"]),
        ),
        max_size=4,
    )
)
@example({"NEWSFLOW_CONNECT_TIMEOUT": "nan"})
@example({"NEWSFLOW_CATALOG": "~nobody_x/y"})
@example({"NEWSFLOW_MAX_REDIRECTS": "-1"})
def test_settings_raise_only_config_error_naming_the_variable(environ):
    try:
        loaded = load_settings(environ)
    except ConfigError as exc:
        assert any(var in str(exc) for var in environ), str(exc)
        return
    for f in fields(Settings):
        value = getattr(loaded, f.name)
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, f.name
        elif isinstance(value, int) and not isinstance(value, bool):
            assert value >= 0, f.name
