"""Input validation: every invalid field of a feed list names the file, the entry and the problem
(exit code 2 from the CLI, nothing stored). Settings are tests/test_config.py's.

tests/test_feedlist.py has the first cases of each kind; this file covers every field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from newsflow.cli import main
from newsflow.fetching import feedlist
from newsflow.fetching.feedlist import (
    FeedFileError,
    FeedSpec,
    load_feed_file,
    parse_opml,
    parse_yaml,
)
from newsflow.fetching.urls import MAX_URL_LENGTH

LISTS = Path(__file__).parent / "fixtures" / "feedlists"
URL = "https://a.example/rss"


def yaml_error(tmp_path, text: str) -> str:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FeedFileError) as err:
        parse_yaml(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert err.value.path == str(path) and err.value.problem in message
    return message


def opml_error(tmp_path, data: bytes) -> str:
    path = tmp_path / "feeds.opml"
    path.write_bytes(data)
    with pytest.raises(FeedFileError) as err:
        parse_opml(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message


def one_entry(**fields_) -> str:
    """A feed list of one entry in YAML flow style, values written as given."""
    body = ", ".join(f"{k}: {v}" for k, v in fields_.items())
    return f"# feeds\nfeeds:\n  - {{{body}}}\n"


# -- YAML: each field of an entry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x"}, "missing url"),
        ({"url": "null"}, "url must be a string, got nothing (null)"),
        ({"url": "42"}, "url must be a string, got int: 42"),
        ({"url": "[a, b]"}, "url must be a string, got a list: ['a', 'b']"),
        ({"url": "{a: 1}"}, "url must be a string, got a mapping"),
        ({"url": "''"}, "invalid url: empty URL"),
        ({"url": "ftp://a.example/rss"}, "only http and https"),
        ({"url": "'javascript:alert(1)'"}, "only http and https"),
        ({"url": "file:///etc/passwd"}, "only http and https"),
        ({"url": "/relative/rss"}, "only http and https"),
        ({"url": "'https://'"}, "URL has no host"),
        ({"url": "'https://exa mple.com/rss'"}, "invalid host name 'exa mple.com'"),
        ({"url": "'https://a..example/rss'"}, "invalid host name"),
        ({"url": "'https://[::1/rss'"}, "malformed URL"),
        ({"url": "'https://[::1]evil.example/'"}, "bad host or port"),
        ({"url": "'https://a.example:99999/'"}, "malformed URL"),
        ({"url": "'https://a.example:0/'"}, "port 0"),
        ({"url": '"https://a.example/\\trss"'}, "control characters"),
        ({"url": f"https://a.example/{'x' * MAX_URL_LENGTH}"}, f"the limit is {MAX_URL_LENGTH}"),
    ],
)
def test_yaml_url(tmp_path, entry, problem):
    message = yaml_error(tmp_path, one_entry(**entry))
    assert "entry 1 (line 3)" in message and problem in message


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/rss", "http://localhost:8080/rss", "'http://[::1]/rss'"]
)
def test_yaml_private_urls_are_accepted_here_and_refused_at_connect_time(tmp_path, url):
    # The feed list is the operator's: whether an address may be fetched is decided when
    # connecting (after DNS, for every redirect), by the allow_private setting.
    path = tmp_path / "feeds.yaml"
    path.write_text(one_entry(url=url))
    assert parse_yaml(path) == [FeedSpec(url.strip("'"))]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("[a, b]", "name must be text, got a list"),
        ("{a: 1}", "name must be text, got a mapping"),
        ("yes", "name must be text, got True (quote it"),
        ("2024-01-01", "name must be text, got date"),
        ("x" * (feedlist.MAX_NAME_CHARS + 1), "name is 1001 characters long; the limit is 1000"),
    ],
)
def test_yaml_name(tmp_path, name, problem):
    message = yaml_error(tmp_path, one_entry(url=URL, name=name))
    assert f"entry 1 (line 3) url={URL}: {problem}" in message


@pytest.mark.parametrize(
    ("name", "expected"), [("'  BBC  '", "BBC"), ("2024", "2024"), ("''", None), ("null", None)]
)
def test_yaml_name_accepted(tmp_path, name, expected):
    path = tmp_path / "feeds.yaml"
    path.write_text(one_entry(url=URL, name=name))
    assert parse_yaml(path)[0].name == expected


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ("{a: 1}", "tags must be a list of strings, got a mapping: {'a': 1}"),
        ("5", "tags must be a list of strings, got int: 5"),
        ("[a, [b]]", "tag 2 must be a string, got a list: ['b']"),
        ("[a, 1.5]", "tag 2 must be a string, got float: 1.5"),
        ("[a, null]", "tag 2 must be a string, got nothing (null)"),
        ("[on]", "tag 1 must be a string, got bool: True (quote it"),
        (f"[{'t' * (feedlist.MAX_TAG_CHARS + 1)}]", "tag 1 is 201 characters long"),
    ],
)
def test_yaml_tags(tmp_path, tags, problem):
    message = yaml_error(tmp_path, one_entry(url=URL, tags=tags))
    assert f"entry 1 (line 3) url={URL}: {problem}" in message


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("'world, uk,, world'", ("world", "uk")),
        ("[world, 2024, ' uk ']", ("world", "2024", "uk")),
        ("[]", ()),
        ("null", ()),
    ],
)
def test_yaml_tags_accepted(tmp_path, tags, expected):
    path = tmp_path / "feeds.yaml"
    path.write_text(one_entry(url=URL, tags=tags))
    assert parse_yaml(path)[0].tags == expected


@pytest.mark.parametrize(
    ("language", "problem"),
    [
        ("english", "language 'english' is not a language code such as 'en'"),
        ("e", "language 'e' is not a language code"),
        ("en-", "language 'en-' is not a language code"),
        ("42", "language 42 is not a language code"),
        ("[en]", "language ['en'] is not a language code"),
        ("no", "language False is not a language code (quote it"),  # Norwegian, unquoted
    ],
)
def test_yaml_language(tmp_path, language, problem):
    message = yaml_error(tmp_path, one_entry(url=URL, language=language))
    assert f"entry 1 (line 3) url={URL}: {problem}" in message


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "en"), ("EN", "en"), ("pt_BR", "pt-br"), ("'no'", "no"), ("''", None), ("null", None)],
)
def test_yaml_language_accepted(tmp_path, language, expected):
    path = tmp_path / "feeds.yaml"
    path.write_text(one_entry(url=URL, language=language))
    assert parse_yaml(path)[0].language == expected


def test_yaml_unknown_keys_are_all_named(tmp_path):
    message = yaml_error(tmp_path, one_entry(url=URL, title="x", lang="en"))
    assert "entry 1 (line 3): unknown key(s) lang, title; allowed: url, name, tags, language" in (
        message
    )


def test_yaml_a_key_given_twice_in_an_entry(tmp_path):
    text = f"feeds:\n  - url: {URL}\n    name: A\n    url: https://b.example/rss\n"
    assert "entry 1 (line 2) line 4: key 'url' is given twice" in yaml_error(tmp_path, text)


def test_yaml_feeds_given_twice(tmp_path):
    text = f"feeds: [{URL}]\nfeeds: [https://b.example/rss, https://c.example/rss]\n"
    assert ": line 2: key 'feeds' is given twice" in yaml_error(tmp_path, text)


@pytest.mark.parametrize(
    ("second", "where"),
    [
        ("https://A.EXAMPLE/rss", "entry 3 (line 5) url=https://A.EXAMPLE/rss"),
        ("HTTPS://a.example/rss", "entry 3 (line 5) url=HTTPS://a.example/rss"),
    ],
)
def test_yaml_duplicate_urls_name_both_entries(tmp_path, second, where):
    text = f"feeds:\n  - {URL}\n  - https://b.example/rss\n\n  - {second}\n"
    message = yaml_error(tmp_path, text)
    assert f"{where}: url {second} is listed twice (also at entry 1 (line 2) url={URL})" in (
        message
    )


def test_yaml_urls_that_differ_in_path_or_query_are_different_feeds(tmp_path):
    path = tmp_path / "feeds.yaml"
    path.write_text(f"feeds: [{URL}, '{URL}?cat=1', '{URL}/']\n")
    assert len(parse_yaml(path)) == 3


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("42", "expected a mapping with a url (or a url as text), got 42"),
        ("[a, b]", "expected a mapping with a url (or a url as text), got ['a', 'b']"),
        ("null", "expected a mapping with a url (or a url as text), got None"),
    ],
)
def test_yaml_entry_that_is_no_mapping(tmp_path, entry, problem):
    message = yaml_error(tmp_path, f"feeds:\n  - {URL}\n  - {entry}\n")
    assert f"entry 2 (line 3): {problem}" in message


# -- YAML: the file as a whole --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("# only a comment\n\n", "file is empty"),
        (f"- {URL}\n", "expected a mapping with a 'feeds' list at the top, got a list"),
        ("just text\n", "expected a mapping with a 'feeds' list at the top, got text"),
        ("feed: []\n", "expected a mapping with a 'feeds' list at the top, got a mapping"),
        ("feeds:\n", "'feeds' must be a list, got nothing (null)"),
        (f"feeds: {URL}\n", "'feeds' must be a list, got text"),
        ("feeds: {url: x}\n", "'feeds' must be a list, got a mapping"),
        ("<opml><body/></opml>\n", "(an OPML file? name it .opml)"),
    ],
)
def test_yaml_top_level_shape(tmp_path, text, problem):
    assert problem in yaml_error(tmp_path, text)


def test_yaml_empty_feeds_list_is_valid(tmp_path):
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds: []\n")
    assert parse_yaml(path) == []


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("feeds: [\n", "line 2, column 1", "not valid YAML"),
        (f"feeds:\n  - url: {URL}\n   name: x\n", "line 3, column", "not valid YAML"),
        (f"feeds:\n\t- {URL}\n", "line 2, column 1", "found character '\\t'"),
        (f"feeds:\n  - url: {URL}\n  - url: 'open\n", "line 4", "not valid YAML"),
        (f"feeds:\n  - {URL}\n  - x\x01\n", "line 3", "special characters are not allowed"),
        ("feeds: *nowhere\n", "line 1, column 8", "found undefined alias"),
        ("feeds: !!python/object:os.system [ls]\n", "line 1, column 8", "could not determine"),
        ("[" * 5000, None, "not valid YAML: nested too deeply"),
    ],
)
def test_yaml_syntax_errors_name_the_line(tmp_path, text, where, problem):
    message = yaml_error(tmp_path, text)
    assert problem in message
    if where:
        assert f": {where}" in message


def test_yaml_not_utf8(tmp_path):
    path = tmp_path / "feeds.yaml"
    path.write_bytes(b"feeds:\n  - https://a.example/caf\xe9\n")
    with pytest.raises(
        FeedFileError, match=r"feeds\.yaml: not UTF-8 text \(invalid .* at byte 32\)"
    ):
        parse_yaml(path)


def test_yaml_alias_bomb_gives_a_short_message(tmp_path):
    # Nine levels of nine aliases: the repr of "tags" would be 9**9 items long.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines.append(f"feeds:\n  - {{url: '{URL}', tags: *a8}}")
    message = yaml_error(tmp_path, "\n".join(lines) + "\n")
    assert "tag 1 must be a string, got a list" in message and len(message) < 500


def test_yaml_entries_from_a_merge_key_are_numbered(tmp_path):
    text = f"base: &base\n  feeds: [{URL}, 5]\n<<: *base\n"
    assert "entry 2: expected a mapping" in yaml_error(tmp_path, text)


# -- files ----------------------------------------------------------------------------------------


def test_file_errors(tmp_path, monkeypatch):
    with pytest.raises(FeedFileError, match=r"nope\.opml: file not found"):
        load_feed_file(tmp_path / "nope.opml")
    with pytest.raises(FeedFileError, match="is a directory, not a feed list"):
        load_feed_file(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text(f"feeds: [{URL}]\n")
    monkeypatch.setattr(feedlist, "MAX_FEED_FILE_BYTES", 10)
    with pytest.raises(FeedFileError, match=r"big\.yaml: file is 31 bytes; the limit is 10"):
        load_feed_file(big)


def test_format_follows_the_extension(tmp_path):
    for name in ("feeds.opml", "feeds.OPML", "feeds.xml"):
        (tmp_path / name).write_bytes((LISTS / "good.opml").read_bytes())
        assert len(load_feed_file(tmp_path / name)) == 3
    for name in ("feeds.yaml", "feeds.yml", "feeds.txt", "feeds"):
        (tmp_path / name).write_bytes((LISTS / "good.yaml").read_bytes())
        assert len(load_feed_file(tmp_path / name)) == 3


# -- OPML ------------------------------------------------------------------------------------------


def outline(attrs: str) -> bytes:
    return f"<opml version='2.0'>\n<head/>\n<body>\n<outline {attrs}/>\n</body>\n</opml>".encode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "line 1: not valid XML: Document is empty"),
        (b"<opml><body>\n<outline xmlUrl='x'>\n</body></opml>", "line 3: not valid XML"),
        (b"<opml>\n<body>\n<outline xmlUrl='https://a.example/&'/>", "line 3: not valid XML"),
        (b"\xff\xfe<\x00o\x00", "not valid XML"),
        (b"<rss version='2.0'><channel/></rss>", "not an OPML file (the root element is not <opml>)"),
        (b"<opml><head><title>x</title></head></opml>", "OPML file has no <body>"),
        (b"<opml><body/></opml>", "no <outline> with an xmlUrl attribute: no feeds to import"),
        (b"<opml><body><outline text='News'><outline text='Empty folder'/></outline></body></opml>",
         "no feeds to import"),
        (b"<opml><body>" + b"<outline>" * 300 + b"</outline>" * 300 + b"</body></opml>",
         "not valid XML: Excessive depth"),
    ],
)  # fmt: skip
def test_opml_file_shape(tmp_path, data, problem):
    assert problem in opml_error(tmp_path, data)


@pytest.mark.parametrize(
    ("attrs", "problem"),
    [
        ("type='rss' text='BBC'", "outline at line 4 (BBC): outline of type 'rss' has no xmlUrl"),
        ("type='Atom'", "outline at line 4: outline of type 'atom' has no xmlUrl"),
        ("text='A' xmlUrl=''", "outline at line 4 (A): invalid url: empty URL"),
        ("text='A' xmlUrl='javascript:alert(1)'", "(A): invalid url: only http and https"),
        ("text='A' xmlUrl='https://a b/'", "(A): invalid url: URL has an invalid host name"),
        (f"text='A' xmlUrl='https://a.example/{'x' * MAX_URL_LENGTH}'",
         f"(A): invalid url: URL is {MAX_URL_LENGTH + 18} characters long"),
        (f"text='A' xmlUrl='{URL}' language='english'",
         "(A): language 'english' is not a language code"),
        (f"text='{'n' * 1001}' xmlUrl='{URL}'", "name is 1001 characters long"),
    ],
)  # fmt: skip
def test_opml_outline(tmp_path, attrs, problem):
    assert problem in opml_error(tmp_path, outline(attrs))


def test_opml_duplicate_urls_name_both_outlines(tmp_path):
    data = (
        f"<opml><body>\n<outline text='A' xmlUrl='{URL}'/>\n"
        f"<outline text='F'>\n<outline text='B' xmlUrl='https://A.example/rss'/></outline>"
        "</body></opml>"
    ).encode()
    message = opml_error(tmp_path, data)
    assert (
        "outline at line 4 (B): url https://A.example/rss is listed twice (also at outline at"
        in (message)
        and "line 2 (A)" in message
    )


def test_opml_outlines_without_xmlurl_are_folders(tmp_path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(
        b"<opml><body><outline text='Links' type='link' url='https://a.example/'/>"
        b"<outline text='World'><outline xmlUrl='https://a.example/rss'/></outline>"
        b"</body></opml>"
    )
    assert parse_opml(path) == [FeedSpec("https://a.example/rss", tags=("World",))]


def test_opml_with_a_namespace_is_read(tmp_path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(
        b"<o:opml xmlns:o='urn:x'><o:body><o:outline text='A' xmlUrl='https://a.example/rss'/>"
        b"</o:body></o:opml>"
    )
    assert parse_opml(path) == [FeedSpec("https://a.example/rss", name="A")]


def test_opml_text_with_an_encoding_declaration(tmp_path):
    data = '<?xml version="1.0" encoding="UTF-8"?><opml><body><outline xmlUrl="https://a.example/é"/></body></opml>'
    assert parse_opml(tmp_path / "x.opml", data) == [FeedSpec("https://a.example/é")]


def test_opml_entities_are_never_fetched(tmp_path):
    data = (
        b'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "http://127.0.0.1:9/opml.dtd">'
        b"<opml><body><outline xmlUrl='https://a.example/rss'/></body></opml>"
    )
    # No DTD is loaded (nothing listens on port 9: a fetch would fail the parse).
    assert parse_opml(tmp_path / "x.opml", data) == [FeedSpec("https://a.example/rss")]


# -- through the CLI: exit code 2, the message on stderr, nothing stored --------------------------

BAD_FILES = [
    ("bad.yaml", one_entry(url=URL, language="english"), "entry 1 (line 3)", "language 'english'"),
    ("bad.yaml", "feeds: [\n", "line 2, column 1", "not valid YAML"),
    ("bad.yaml", "", None, "file is empty"),
    ("bad.yaml", f"feeds: [{URL}, '{URL}']\n", "entry 2 (line 1)", "listed twice"),
    ("bad.opml", outline("type='rss' text='X'").decode(), "outline at line 4 (X)", "no xmlUrl"),
    ("bad.opml", "<opml><head/></opml>", None, "OPML file has no <body>"),
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("NEWSFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize("command", ["import", "ingest"])
@pytest.mark.parametrize(("name", "text", "entry", "problem"), BAD_FILES)
def test_cli_bad_feed_file_exits_2_and_stores_nothing(env, capsys, command, name, text, entry, problem):  # fmt: skip
    path = env / name
    path.write_text(text, encoding="utf-8")
    db = env / "db.sqlite"
    argv = (
        ["feeds", "import", str(path)] if command == "import" else ["ingest", "--feeds", str(path)]
    )
    assert main([*argv, "--catalog", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"newsflow: error: {path}: ") and problem in err
    if entry:
        assert entry in err
    assert not db.exists()


def test_cli_bad_setting_exits_2_naming_the_variable(env, capsys, monkeypatch):
    monkeypatch.setenv("NEWSFLOW_MAX_REDIRECTS", "five")
    assert (
        main(["ingest", "--feeds", str(LISTS / "good.yaml"), "--catalog", str(env / "x.db")]) == 2
    )
    assert "NEWSFLOW_MAX_REDIRECTS='five' is not a whole number" in capsys.readouterr().err


def test_cli_feeds_add_refuses_a_bad_url(env, capsys):
    assert main(["feeds", "add", "https://exa mple.com/rss", "--catalog", str(env / "x.db")]) == 2
    assert "invalid host name" in capsys.readouterr().err
