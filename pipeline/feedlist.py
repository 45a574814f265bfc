"""Feed lists: YAML (``feeds: [{url, name, tags, language}]``) and OPML, in and out.

Parsing validates everything before anything is stored: a bad file raises ``FeedFileError``
naming the file, the entry and the problem, and the caller changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

import lxml.etree as etree
import yaml

from pipeline.urls import InvalidURL, feed_id, validate_http_url

_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_YAML_KEYS = {"url", "name", "tags", "language"}
MAX_FEED_FILE_BYTES = 20 * 1024 * 1024


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
    if not isinstance(value, str) or not _LANGUAGE.match(value.strip()):
        raise FeedFileError(path, f"language {value!r} is not a language code such as 'en'", entry)
    return value.strip().lower().replace("_", "-")


def _check_tags(value, path, entry) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str | int) for t in value):
        raise FeedFileError(path, f"tags must be a list of strings, got {value!r}", entry)
    tags = []
    for tag in (str(t).strip() for t in value):
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _check_url(value, path, entry) -> str:
    if not isinstance(value, str):
        raise FeedFileError(path, f"url must be a string, got {value!r}", entry)
    try:
        return validate_http_url(value)
    except InvalidURL as exc:
        raise FeedFileError(path, f"invalid url: {exc}", entry) from None


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
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise FeedFileError(path, f"not valid YAML: {problem}", where) from None
    if not isinstance(data, dict) or "feeds" not in data:
        raise FeedFileError(path, "expected a mapping with a 'feeds' list at the top")
    feeds = data["feeds"]
    if not isinstance(feeds, list):
        raise FeedFileError(path, f"'feeds' must be a list, got {type(feeds).__name__}")
    nodes = next((v for k, v in root.value if k.value == "feeds"), None)
    specs, wheres = [], []
    for i, entry in enumerate(feeds):
        line = nodes.value[i].start_mark.line + 1 if nodes is not None else None
        where = f"entry {i + 1}" + (f" (line {line})" if line else "")
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict):
            raise FeedFileError(path, f"expected a mapping with a url, got {entry!r}", where)
        unknown = sorted(set(map(str, entry)) - _YAML_KEYS)
        if unknown:
            raise FeedFileError(
                path,
                f"unknown key(s) {', '.join(unknown)}; allowed: url, name, tags, language",
                where,
            )
        if "url" not in entry:
            raise FeedFileError(path, "missing url", where)
        url = _check_url(entry["url"], path, where)
        where = f"{where} url={url}"
        name = entry.get("name")
        if name is not None and not isinstance(name, str | int | float):
            raise FeedFileError(path, f"name must be text, got {name!r}", where)
        specs.append(
            FeedSpec(
                url=url,
                name=str(name).strip() or None if name is not None else None,
                tags=_check_tags(entry.get("tags"), path, where),
                language=_check_language(entry.get("language"), path, where),
            )
        )
        wheres.append(where)
    return _dedupe(specs, wheres, path)


def parse_opml(path: Path | str, data: bytes | None = None) -> list[FeedSpec]:
    """Feeds of an OPML file: every ``outline`` with an ``xmlUrl``; folders become tags."""
    path = Path(path)
    data = _read(path) if data is None else data
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedFileError(path, f"not valid XML: {exc.msg}", f"line {exc.lineno}") from None
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise FeedFileError(path, "not an OPML file (the root element is not <opml>)")
    body = next((c for c in root if isinstance(c.tag, str) and c.tag.lower() == "body"), None)
    if body is None:
        raise FeedFileError(path, "OPML file has no <body>")
    specs, wheres = [], []

    def walk(node, folders: tuple[str, ...]) -> None:
        for child in node:
            if not isinstance(child.tag, str) or child.tag.lower() != "outline":
                continue
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            label = (attrs.get("title") or attrs.get("text") or "").strip()
            url = attrs.get("xmlurl")
            if url is None:
                walk(child, (*folders, label) if label else folders)
                continue
            where = f"outline at line {child.sourceline}" + (f" ({label})" if label else "")
            url = _check_url(url, path, where)
            categories = [
                c.strip("/ ") for c in (attrs.get("category") or "").split(",") if c.strip("/ ")
            ]
            specs.append(
                FeedSpec(
                    url=url,
                    name=label if label and label != url else None,
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
