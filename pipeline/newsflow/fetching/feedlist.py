"""Feed lists: YAML (``feeds: [{url, name, tags, language}]``) and OPML, in and out.

Parsing validates everything before anything is stored: a bad file raises ``FeedFileError``
naming the file, the entry and the problem, and the caller changes nothing.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

import lxml.etree as etree
import yaml

from newsflow.fetching.urls import InvalidURL, feed_id, validate_http_url

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_YAML_KEYS = {"url", "name", "tags", "language"}
_FEED_OUTLINE_TYPES = {"rss", "atom", "feed"}
MAX_FEED_FILE_BYTES = 20 * 1024 * 1024
MAX_NAME_CHARS = 1000
MAX_TAG_CHARS = 200
_BOOL_HINT = " (quote it: YAML reads yes/no/on/off/true/false unquoted as a boolean)"
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlist = _SHOW.maxdict = _SHOW.maxtuple = _SHOW.maxset = 5
_SHOW.maxlevel = 2


def _show(value) -> str:
    """A bounded repr for messages: a value from a file may be huge (or, with YAML aliases,
    a structure whose full repr is exponentially long)."""
    return _SHOW.repr(value)


def _kind(value) -> str:
    if value is None:
        return "nothing (null)"
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return kinds.get(type(value), type(value).__name__)


class FeedFileError(ValueError):
    """A feed list that cannot be used. ``str()`` names the file, the entry and the problem."""

    def __init__(self, path: Path | str, problem: str, entry: str | None = None) -> None:
        self.path, self.problem, self.entry = str(path), problem, entry
        where = f"{self.path}: {entry}: " if entry else f"{self.path}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class FeedSpec:
    url: str
    name: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    language: str | None = None


def _check_language(value, path, entry) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise FeedFileError(path, f"language {value!r} is not a language code{_BOOL_HINT}", entry)
    if not isinstance(value, str) or not _LANGUAGE.match(value.strip()):
        raise FeedFileError(
            path, f"language {_show(value)} is not a language code such as 'en'", entry
        )
    return value.strip().lower().replace("_", "-")


def _check_name(value, path, entry) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise FeedFileError(path, f"name must be text, got {value!r}{_BOOL_HINT}", entry)
    if not isinstance(value, str | int | float):
        raise FeedFileError(path, f"name must be text, got {_kind(value)}: {_show(value)}", entry)
    name = str(value).strip()
    if len(name) > MAX_NAME_CHARS:
        raise FeedFileError(
            path, f"name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}", entry
        )
    return name or None


def _check_tags(value, path, entry) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise FeedFileError(
            path, f"tags must be a list of strings, got {_kind(value)}: {_show(value)}", entry
        )
    tags = []
    for i, item in enumerate(value, 1):
        if isinstance(item, bool) or not isinstance(item, str | int):
            hint = _BOOL_HINT if isinstance(item, bool) else ""
            raise FeedFileError(
                path, f"tag {i} must be a string, got {_kind(item)}: {_show(item)}{hint}", entry
            )
        tag = str(item).strip()
        if len(tag) > MAX_TAG_CHARS:
            raise FeedFileError(
                path, f"tag {i} is {len(tag)} characters long; the limit is {MAX_TAG_CHARS}", entry
            )
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _check_url(value, path, entry) -> str:
    if not isinstance(value, str):
        raise FeedFileError(
            path, f"url must be a string, got {_kind(value)}: {_show(value)}", entry
        )
    try:
        return validate_http_url(value)
    except InvalidURL as exc:
        raise FeedFileError(path, f"invalid url: {exc}", entry) from None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dedupe(specs: list[FeedSpec], lines: list[str], path) -> list[FeedSpec]:
    seen: dict[str, str] = {}
    for spec, where in zip(specs, lines):
        fid = feed_id(spec.url)
        if fid in seen:
            raise FeedFileError(
                path, f"url {spec.url} is listed twice (also at {seen[fid]})", where
            )
        seen[fid] = where
    return specs


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FEED_FILE_BYTES:
            raise FeedFileError(path, f"file is {size} bytes; the limit is {MAX_FEED_FILE_BYTES}")
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedFileError(path, "file not found") from None
    except IsADirectoryError:
        raise FeedFileError(path, "is a directory, not a feed list") from None
    except OSError as exc:
        raise FeedFileError(path, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL in the path
        if isinstance(exc, FeedFileError):
            raise
        raise FeedFileError(path, f"cannot read: {exc}") from None


def _yaml_error(path, text: str, exc: yaml.YAMLError) -> FeedFileError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return FeedFileError(path, f"not valid YAML: {exc.reason}", f"line {line}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    return FeedFileError(path, f"not valid YAML: {problem}", where)


def _duplicate_key(node, path, where: str | None = None) -> None:
    """YAML keeps the last of two equal keys without a word; a feed list refuses them."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:str":
            if key.value in seen:
                at = f"line {key.start_mark.line + 1}"
                raise FeedFileError(
                    path, f"key {_show(key.value)} is given twice", f"{where} {at}" if where else at
                )
            seen.add(key.value)


def parse_yaml(path: Path | str, text: str | None = None) -> list[FeedSpec]:
    path = Path(path)
    if text is None:
        raw = _read(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedFileError(
                path, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None
    except RecursionError:
        raise FeedFileError(path, "not valid YAML: nested too deeply") from None
    if data is None:
        raise FeedFileError(path, "file is empty: expected a mapping with a 'feeds' list")
    if not isinstance(data, dict) or "feeds" not in data:
        hint = " (an OPML file? name it .opml)" if text.lstrip().startswith("<") else ""
        raise FeedFileError(
            path, f"expected a mapping with a 'feeds' list at the top, got {_kind(data)}{hint}"
        )
    _duplicate_key(root, path)
    feeds = data["feeds"]
    if not isinstance(feeds, list):
        raise FeedFileError(path, f"'feeds' must be a list, got {_kind(feeds)}")
    assert isinstance(root, yaml.MappingNode)  # a mapping, checked above
    nodes = next(
        (v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "feeds"),
        None,
    )
    if not isinstance(nodes, yaml.SequenceNode) or len(nodes.value) != len(feeds):
        nodes = None  # e.g. feeds from a merge key: entries are still named by number
    specs, wheres = [], []
    for i, entry in enumerate(feeds):
        node = nodes.value[i] if nodes is not None else None
        where = f"entry {i + 1}" + (f" (line {node.start_mark.line + 1})" if node else "")
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict):
            raise FeedFileError(
                path, f"expected a mapping with a url (or a url as text), got {_show(entry)}", where
            )
        _duplicate_key(node, path, where)
        unknown = sorted(set(map(str, entry)) - _YAML_KEYS)
        if unknown:
            raise FeedFileError(
                path,
                f"unknown key(s) {_short(', '.join(unknown))}; allowed: url, name, tags, language",
                where,
            )
        if "url" not in entry:
            raise FeedFileError(path, "missing url", where)
        url = _check_url(entry["url"], path, where)
        where = f"{where} url={_short(url)}"
        specs.append(
            FeedSpec(
                url=url,
                name=_check_name(entry.get("name"), path, where),
                tags=_check_tags(entry.get("tags"), path, where),
                language=_check_language(entry.get("language"), path, where),
            )
        )
        wheres.append(where)
    return _dedupe(specs, wheres, path)


def _local(node) -> str | None:
    """Lowercased local name of an element; None for comments, entities, PIs."""
    return etree.QName(node).localname.lower() if isinstance(node.tag, str) else None


def parse_opml(path: Path | str, data: bytes | str | None = None) -> list[FeedSpec]:
    """Feeds of an OPML file: every ``outline`` with an ``xmlUrl``; folders become tags."""
    path = Path(path)
    data = _read(path) if data is None else data
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else None
        raise FeedFileError(path, f"not valid XML: {exc.msg}", where) from None
    except etree.LxmlError as exc:
        raise FeedFileError(path, f"not valid XML: {exc}") from None
    if root is None or _local(root) != "opml":
        raise FeedFileError(path, "not an OPML file (the root element is not <opml>)")
    body = next((c for c in root if _local(c) == "body"), None)
    if body is None:
        raise FeedFileError(path, "OPML file has no <body>")
    specs, wheres = [], []

    def walk(node, folders: tuple[str, ...]) -> None:
        for child in node:
            if _local(child) != "outline":
                continue
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            label = (attrs.get("title") or attrs.get("text") or "").strip()
            url = attrs.get("xmlurl")
            where = f"outline at line {child.sourceline}" + (
                f" ({_short(label, 60)})" if label else ""
            )
            if url is None:
                kind = (attrs.get("type") or "").strip().lower()
                if kind in _FEED_OUTLINE_TYPES:
                    raise FeedFileError(path, f"outline of type {kind!r} has no xmlUrl", where)
                walk(child, (*folders, label) if label else folders)
                continue
            url = _check_url(url, path, where)
            categories = [
                c.strip("/ ") for c in (attrs.get("category") or "").split(",") if c.strip("/ ")
            ]
            specs.append(
                FeedSpec(
                    url=url,
                    name=_check_name(label, path, where) if label and label != url else None,
                    tags=_check_tags([*folders, *categories], path, where),
                    language=_check_language(attrs.get("language"), path, where),
                )
            )
            wheres.append(where)
            walk(child, folders)

    walk(body, ())
    if not specs:
        raise FeedFileError(path, "no <outline> with an xmlUrl attribute: no feeds to import")
    return _dedupe(specs, wheres, path)


def load_feed_file(path: Path | str) -> list[FeedSpec]:
    """Parse a feed list, choosing the format by extension (``.opml``/``.xml`` or YAML)."""
    path = Path(path)
    if path.suffix.lower() in (".opml", ".xml"):
        return parse_opml(path)
    return parse_yaml(path)


def to_yaml(feeds: list[dict]) -> str:
    entries = []
    for f in feeds:
        entry = {"url": f["url"]}
        if f.get("title"):
            entry["name"] = f["title"]
        if f.get("tags"):
            entry["tags"] = list(f["tags"])
        if f.get("language"):
            entry["language"] = f["language"]
        entries.append(entry)
    return yaml.safe_dump({"feeds": entries}, sort_keys=False, allow_unicode=True)


def to_opml(feeds: list[dict], title: str = "newsflow feeds") -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_escape(title)}</title></head>",
        "  <body>",
    ]
    for f in feeds:
        attrs = {"type": "rss", "text": f.get("title") or f["url"], "xmlUrl": f["url"]}
        if f.get("title"):
            attrs["title"] = f["title"]
        if f.get("tags"):
            attrs["category"] = ",".join(f["tags"])
        if f.get("language"):
            attrs["language"] = f["language"]
        rendered = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
