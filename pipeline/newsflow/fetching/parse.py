"""Feed parsing: fetched bytes to items, with feedparser (which never does HTTP here)."""

from __future__ import annotations

import calendar
import contextlib
import html as htmllib
import json
import logging
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml.etree import ParserError

from newsflow.fetching.rhythm import parse_ttl, parse_update_period
from newsflow.fetching.urls import InvalidURL, article_id, canonicalize

LOGGER = logging.getLogger(__name__)

# Dates before this are typos or epoch defaults, not publication dates.
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=2)
MAX_TITLE_CHARS = 1000
MAX_FEED_TEXT_CHARS = 200_000
_WS = re.compile(r"\s+")
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_SUBSET_END = re.compile(rb"\]\s*>")
# Control characters (but tab and newlines) cannot be in an XML document, and in a title they
# can drive a terminal (escape sequences); NUL ends strings in C. None is kept from a feed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Lone surrogates (from JSON escapes such as "\\ud800") cannot be encoded as UTF-8 at all.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Numeric character references to what is no character (surrogates, beyond U+10FFFF): they make
# feedparser give up on the whole document, so each becomes U+FFFD before it parses.
_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]+)|0*([0-9]+));")


@dataclass
class FeedItem:
    article_id: str
    url: str
    canonical_url: str
    title: str | None
    summary: str | None
    content: str | None  # full text the feed itself carries (content:encoded), as plain text
    authors: list[str]
    categories: list[str]
    published_at: datetime | None
    guid: str | None


@dataclass
class ParsedFeed:
    items: list[FeedItem] = field(default_factory=list)
    title: str | None = None
    site_url: str | None = None
    language: str | None = None
    ttl_s: float | None = None  # the feed's <ttl>, in seconds
    update_period_s: float | None = None  # its sy:updatePeriod / sy:updateFrequency
    usable: bool = True
    malformed: bool = False
    warning: str | None = None  # why the feed is flagged as malformed, or what was skipped
    error: str | None = None  # why the feed is unusable


def html_to_text(html: str | None) -> str | None:
    """Plain text of an HTML fragment from a feed, whitespace collapsed, character references
    decoded (``&#8217;`` in a title with no tag at all, too); None when empty."""
    if not html or not html.strip():
        return None
    if "<" in html:
        with contextlib.suppress(ParserError, ValueError):
            html = lxml.html.fromstring(html).text_content()
    elif "&" in html:
        html = htmllib.unescape(html)
    text = _WS.sub(" ", html).strip()
    return text or None


_LANGUAGE_TAG = re.compile(r"\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*")


def language_code(tag: str | None) -> str | None:
    """The language of a BCP 47 tag, the way models are keyed: ``en-US``, ``en_gb``, ``EN``
    -> ``en``; None for what is not a language tag (empty, ``x-klingon``, prose)."""
    if not tag or not isinstance(tag, str):
        return None
    m = _LANGUAGE_TAG.fullmatch(tag)
    return m.group(1).lower() if m else None


def richest(*texts: str | None) -> str | None:
    """The longest of a feed item's bodies. An item often carries several (RSS
    ``content:encoded`` with the whole article, ``media:description`` with an image caption, a
    summary): the first one is often the caption, the longest is the article."""
    return max((t for t in texts if t), key=len, default=None)


def parse_date(struct) -> datetime | None:
    """UTC datetime from feedparser's UTC struct_time; None when absent or implausible."""
    if not struct:
        return None
    try:
        when = datetime.fromtimestamp(calendar.timegm(struct), tz=UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None
    if when < EARLIEST_DATE or when > datetime.now(UTC) + FUTURE_SLACK:
        return None
    return when


def clean_text(text: str | None) -> str | None:
    """``text`` without control characters, lone surrogates replaced by U+FFFD: what is left
    can be encoded, staged, stored and printed safely."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    # Clip before cleaning as well as after: a 5 MB title is not scanned for 5 MB.
    cleaned = clean_text(text[: limit * 2])
    return None if cleaned is None else cleaned[:limit]


def _strip_internal_subsets(body: bytes) -> bytes:
    """``body`` without the internal subsets of its DOCTYPEs (``<!DOCTYPE rss [ ... ]>``), in
    one pass: entity-expansion attacks live there, and feeds do not need them. (The regular
    expression this replaces took quadratic time on a body of unclosed DOCTYPEs.)"""
    out, copied, search = [], 0, 0
    next_open = next_close = -1
    while m := _DOCTYPE.search(body, search):
        # Where this DOCTYPE's subset would open and where the declaration ends, each searched
        # once: a later DOCTYPE reuses a position still ahead of it.
        if next_open < m.end():
            next_open = body.find(b"[", m.end())
        if next_close < m.end():
            next_close = body.find(b">", m.end())
        if next_open < 0:
            break  # no subset can open after here
        if 0 <= next_close < next_open:
            search = next_close + 1  # a DOCTYPE without a subset: kept as it is
            continue
        end = _SUBSET_END.search(body, next_open)
        if end is None:
            break  # an unclosed subset: nothing after it can close one either
        out.append(body[copied : m.start()])
        copied = search = end.end()
    if not out:
        return body
    out.append(body[copied:])
    return b"".join(out)


def _fix_char_refs(body: bytes) -> bytes:
    def fix(m: re.Match) -> bytes:
        digits = m.group(1) or m.group(2)
        if len(digits) > 8:  # beyond U+10FFFF whatever the digits (and int() is not asked)
            return b"&#xFFFD;"
        code = int(digits, 16) if m.group(1) is not None else int(digits)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return b"&#xFFFD;"
        return m.group(0)

    return _CHAR_REF.sub(fix, body)


def _short(value) -> str:
    """A name or a category: a short, clean, stripped string ("" for what is not a string)."""
    return (_clip(value, 200) or "").strip() if isinstance(value, str) else ""


def _authors(entry) -> list[str]:
    names = []
    for author in entry.get("authors") or []:
        name = _short(author.get("name")) if isinstance(author, dict) else ""
        if name and name not in names:
            names.append(name)
    if not names and entry.get("author"):
        name = _short(entry["author"])
        if name:
            names.append(name)
    return names


def _categories(entry) -> list[str]:
    cats = []
    for tag in entry.get("tags") or []:
        term = _short(tag.get("term") or tag.get("label")) if isinstance(tag, dict) else ""
        if term and term not in cats:
            cats.append(term)
    return cats


def _entry_link(entry) -> str | None:
    link = entry.get("link")
    if link:
        return link
    for candidate in entry.get("links") or []:
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            return candidate["href"]
    guid = entry.get("id")
    if guid and entry.get("guidislink", True) and str(guid).startswith(("http://", "https://")):
        return guid
    return None


def parse_feed(
    body: bytes, feed_url: str, content_type: str | None = None, max_items: int = 500
) -> ParsedFeed:
    """Parse a feed document. Never raises: problems are reported in the result."""
    try:
        return _parse_feed(body, feed_url, content_type, max_items)
    except Exception as exc:  # a document this code did not foresee is still only data
        LOGGER.warning("parsing %s failed: %r", feed_url, exc, exc_info=True)
        return ParsedFeed(usable=False, error=f"parser crashed: {type(exc).__name__}: {exc}"[:500])


def _parse_feed(body: bytes, feed_url: str, content_type: str | None, max_items: int) -> ParsedFeed:
    if not body.strip():
        return ParsedFeed(usable=False, error="empty response body")
    if body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _parse_json_feed(body, feed_url, max_items)
    # Internal DTD subsets are where entity-expansion attacks live; feeds do not need them.
    body = _fix_char_refs(_strip_internal_subsets(body))
    headers = {"content-location": feed_url}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(
            body, response_headers=headers, sanitize_html=True, resolve_relative_uris=True
        )
    except Exception as exc:  # feedparser promises not to raise; a bug there is still data
        LOGGER.warning("feedparser raised on %s: %r", feed_url, exc)
        return ParsedFeed(usable=False, error=f"parser crashed: {type(exc).__name__}: {exc}"[:500])

    meta = parsed.get("feed") or {}
    result = ParsedFeed(
        title=_clip(html_to_text(meta.get("title")), MAX_TITLE_CHARS),
        site_url=_clip(meta.get("link"), 2000),
        language=language_code(meta.get("language")),
        ttl_s=parse_ttl(meta.get("ttl")),
        update_period_s=parse_update_period(
            meta.get("sy_updateperiod"), meta.get("sy_updatefrequency")
        ),
    )
    entries = parsed.get("entries") or []
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        reason = f"{type(problem).__name__}: {problem}"[:500] if problem else "malformed feed"
        if not entries and not meta.get("title"):
            result.usable = False
            kind = (content_type or "").split(";")[0].strip() or "unknown type"
            head = body[:2000].lstrip().lower()
            if "html" in kind or head.startswith((b"<!doctype html", b"<html")):
                result.error = (
                    f"not a feed but a web page ({kind}): `newsflow feeds discover {feed_url}`"
                    " lists the feeds it links"
                )
            else:
                result.error = f"not a usable feed ({kind}): {reason}"
            return result
        # A wrong Content-Type is the server's mistake, not the document's: note it only.
        result.malformed = not isinstance(problem, feedparser.NonXMLContentType)
        result.warning = reason

    return _collect_items(result, entries, feed_url, max_items)


def _collect_items(result: ParsedFeed, entries: list, feed_url: str, max_items: int) -> ParsedFeed:
    """Turn feedparser-shaped entries into items: resolved, canonical, deduplicated."""
    skipped = 0
    seen: set[str] = set()
    for entry in entries[:max_items]:
        link = _entry_link(entry)
        try:
            if not link:
                raise InvalidURL("item has no link")
            canonical = canonicalize(link, base=feed_url)
            url = urljoin(feed_url, link.strip())
        except InvalidURL:
            skipped += 1
            continue
        aid = article_id(canonical)
        if aid in seen:
            continue
        seen.add(aid)
        bodies = [html_to_text(c.get("value")) for c in entry.get("content") or []]
        result.items.append(
            FeedItem(
                article_id=aid,
                url=url,
                canonical_url=canonical,
                title=_clip(html_to_text(entry.get("title")), MAX_TITLE_CHARS),
                summary=_clip(html_to_text(entry.get("summary")), MAX_FEED_TEXT_CHARS),
                content=_clip(richest(*bodies), MAX_FEED_TEXT_CHARS),
                authors=_authors(entry),
                categories=_categories(entry),
                # dict.get: FeedParserDict.get maps missing keys to others, with a warning.
                published_at=parse_date(
                    dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
                ),
                guid=_clip(entry.get("id"), 2000),
            )
        )
    notes = []
    if skipped:
        notes.append(f"{skipped} item(s) without a usable http(s) link skipped")
    if len(entries) > max_items:
        notes.append(f"{len(entries) - max_items} item(s) beyond the cap of {max_items} ignored")
    if notes:
        result.warning = "; ".join(filter(None, [result.warning, *notes]))
    return result


def _json_date(value) -> time.struct_time | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).timetuple()


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _parse_json_feed(body: bytes, feed_url: str, max_items: int) -> ParsedFeed:
    """JSON Feed 1.x (jsonfeed.org), which feedparser 6.0 does not read."""
    try:
        data = json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, UnicodeDecodeError) as exc:
        return ParsedFeed(usable=False, error=f"not a usable feed (invalid JSON: {exc})"[:500])
    except RecursionError:
        return ParsedFeed(usable=False, error="not a usable feed (JSON nested too deeply)")
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        return ParsedFeed(
            usable=False, error="not a usable feed (JSON without a JSON Feed version)"
        )
    items = data.get("items")
    if not isinstance(items, list):
        return ParsedFeed(usable=False, error="not a usable feed (JSON Feed without an items list)")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        authors = _list(item.get("authors")) or ([item["author"]] if item.get("author") else [])
        content = [item.get("content_html"), item.get("content_text")]
        entries.append(
            {
                "link": item.get("url") or item.get("external_url"),
                "id": str(item["id"]) if item.get("id") is not None else None,
                "title": item.get("title") if isinstance(item.get("title"), str) else None,
                "summary": item.get("summary") if isinstance(item.get("summary"), str) else None,
                "content": [{"value": c} for c in content if isinstance(c, str)],
                "authors": [a for a in authors if isinstance(a, dict)],
                "tags": [{"term": t} for t in _list(item.get("tags")) if isinstance(t, str)],
                "published_parsed": _json_date(item.get("date_published"))
                or _json_date(item.get("date_modified")),
            }
        )
    title = data.get("title") if isinstance(data.get("title"), str) else None
    home = data.get("home_page_url")
    language = data.get("language")
    result = ParsedFeed(
        title=_clip(html_to_text(title), MAX_TITLE_CHARS),
        site_url=_clip(home, 2000) if isinstance(home, str) else None,
        language=language_code(language),
    )
    return _collect_items(result, entries, feed_url, max_items)


def serve_parser(conn) -> None:
    """A parser process (``newsflow.fetching.poll.ParserPool``): parse each ``(body, feed_url,
    content_type, max_items)`` received on ``conn`` and send back the ``ParsedFeed``, until
    ``None`` arrives or the connection closes. The pool kills it when a parse takes too long."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(parse_feed(*job))
