"""Article extraction: page HTML to text and metadata with trafilatura, bounded in time.

Extraction is CPU work, so it runs in worker processes (one per core by default). Each page is
bounded twice: an alarm inside the worker interrupts trafilatura after ``timeout`` seconds, and
the parent abandons a page (and replaces the pool) if a worker stops answering altogether.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import re
import signal
import threading
from dataclasses import dataclass

from newsflow.procs import worker_context

LOGGER = logging.getLogger(__name__)

MIN_WORDS = 25  # less than this is a teaser, a paywall or a consent page, not an article
_LANG_ATTR = re.compile(rb"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)
_WORD = re.compile(r"\w+")
# Elements that do not break a line: text on either side of their tags belongs to one line, so
# two of their text nodes with nothing between them are glued (see _space_glued_nodes).
_INLINE = frozenset(
    "a abbr b bdi bdo big cite code data del dfn em font i img ins kbd label mark nobr q s samp"
    " small span strong sub sup time tt u var wbr".split()
)
_NOT_TEXT = frozenset({"script", "style", "noscript", "template"})


class ExtractionTimeout(BaseException):
    """Raised by the alarm. A BaseException, so the broad ``except Exception`` blocks inside
    trafilatura and htmldate cannot swallow it."""


@dataclass
class Extracted:
    ok: bool
    text: str | None = None
    title: str | None = None
    authors: list[str] | None = None
    date: str | None = None  # YYYY-MM-DD as found on the page
    site_name: str | None = None
    language: str | None = None
    description: str | None = None  # the page's meta description (og:description)
    top_image: str | None = None  # its lead image (og:image)
    keywords: list[str] | None = None  # its keywords, tags and categories
    error: str | None = None


def word_count(text: str | None) -> int:
    return len(_WORD.findall(text)) if text else 0


@functools.lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(
    text: str | None, html: bytes | None = None, title: str | None = None
) -> str | None:
    """ISO 639-1 code of the text's language (with its title, when given, as more evidence);
    the page's ``<html lang>`` when the text says too little. The identifier is less sure of a
    short text, so one of 20 to 200 characters (a feed item's line or two) needs a probability of
    0.5, a longer one 0.8 (kottke.org's "Fun word search game from Slate: Pears. (I love any
    Boggle-esque sort of game. Got 433 today.)", title included, scores 0.80 for English)."""
    sample = " ".join(t for t in (title, text) if t)
    if len(sample) >= 20:
        lang, prob = _language_identifier().classify(sample[:5000])
        if prob >= (0.8 if len(sample) >= 200 else 0.5):
            return lang
    if html:
        m = _LANG_ATTR.search(html[:20000])
        if m:
            return m.group(1).decode("ascii").lower()[:2]
    return None


def _split_authors(author: str | None) -> list[str]:
    if not author:
        return []
    return [a.strip() for a in re.split(r";|\|", author) if a.strip()][:20]


def extract_page(html: bytes, url: str | None = None, timeout: float = 20.0) -> Extracted:
    """Extract one page. Never raises: a failure is an ``Extracted`` with ``ok=False``."""
    import trafilatura

    use_alarm = timeout > 0 and threading.current_thread() is threading.main_thread()
    armed = [use_alarm]
    if use_alarm:

        def _expired(signum, frame):
            if armed[0]:
                raise ExtractionTimeout

        previous = signal.signal(signal.SIGALRM, _expired)
        # Re-arm every 0.1 s after the first expiry, in case one lands where it cannot be raised.
        signal.setitimer(signal.ITIMER_REAL, timeout, 0.1)
    try:
        try:
            # fast=True skips trafilatura's fallback extractors (readability, jusText): on the
            # benchmark pages a quarter less CPU and no loss (F1 0.962 against 0.960 with them;
            # benchmarks/extraction.py).
            tree = trafilatura.load_html(html)
            if tree is not None:
                _space_glued_nodes(tree)
            doc = trafilatura.bare_extraction(
                tree if tree is not None else html,
                url=url,
                include_comments=False,
                with_metadata=True,
                fast=True,
            )
        finally:
            # Disarmed before anything else runs: a re-armed expiry landing in the handlers
            # below (or here, before the flag) must not escape as an exception.
            armed[0] = False
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except ExtractionTimeout:
        return Extracted(ok=False, error=f"extraction exceeded {timeout:g}s")
    except Exception as exc:  # a bad document is data, not a crash
        LOGGER.info("extraction failed for %s: %r", url, exc)
        return Extracted(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, previous)

    assert not isinstance(doc, dict)  # a Document: bare_extraction's as_dict is off
    if doc is None or not (doc.text or "").strip():
        return Extracted(
            ok=False, error="no article text found", language=detect_language(None, html)
        )
    text = (doc.text or "").replace("\x00", "").strip()
    words = word_count(text)
    result = Extracted(
        ok=words >= MIN_WORDS,
        text=text,
        title=(doc.title or None),
        authors=_split_authors(doc.author),
        date=doc.date or None,
        site_name=doc.sitename or None,
        language=detect_language(text, html),
        description=doc.description or None,
        top_image=doc.image or None,
        keywords=_keywords(doc.tags, doc.categories),
    )
    if not result.ok:
        result.error = f"extracted text too short ({words} words)"
    return result


def _space_glued_nodes(tree) -> int:
    """Put a space between two text nodes that a page wrote with nothing between them and that
    read as two words: a lower-case letter, inline tags, then an upper-case letter ("Kristi
    Noem</a><span>Kristi Lynn Noem</a><a>South Dakota" is otherwise extracted as "Kristi
    NoemKristi Lynn NoemSouth Dakota", and tagged as such). A drop cap ("<b>T</b>he") or a
    possessive after a link ("</a>'s") is left alone; a block tag already breaks the line.
    Returns the number of spaces put in."""
    from lxml import etree

    added = 0
    last = ""  # the last character of text so far, "" after a block boundary
    skip = 0  # depth inside script/style
    for event, el in etree.iterwalk(tree, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else None
        if tag is None:  # comment or processing instruction: only its tail is text
            if event == "end":
                continue
            attr, piece = "tail", el.tail
        elif event == "start":
            if tag in _NOT_TEXT:
                skip += 1
            if tag not in _INLINE:
                last = ""
            if skip:
                continue
            attr, piece = "text", el.text
        else:
            if tag in _NOT_TEXT:
                skip -= 1
            if tag not in _INLINE:
                last = ""
            if skip:
                continue
            attr, piece = "tail", el.tail
        if not piece:
            continue
        if last.islower() and piece[0].isupper():
            setattr(el, attr, " " + piece)
            added += 1
        last = piece[-1]
    return added


def _keywords(*lists) -> list[str]:
    """A page's keywords, tags and categories, each once, in order."""
    seen: dict[str, None] = {}
    for values in lists:
        for value in values or []:
            value = " ".join(str(value).split())
            if value and value.lower() not in {k.lower() for k in seen}:
                seen[value] = None
    return list(seen)[:50]


def _ready() -> bool:
    return True


def _worker_init() -> None:
    # Workers ignore Ctrl-C: the parent decides when to stop them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import trafilatura  # noqa: F401  (import once per worker, not once per page)

    _language_identifier()


class ExtractorPool:
    """A process pool for ``extract_page`` whose stuck workers are replaced, not waited for."""

    def __init__(self, workers: int = 0, timeout: float = 20.0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self._ctx = worker_context()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self._ctx, initializer=_worker_init
        )
        # Start every worker now, in the caller's thread. Started on demand, each would start
        # inside the fetch's event loop and stall it (the first by a second or so, while the
        # forkserver comes up), delaying requests that had already taken their host's turn:
        # the next request of that host then reached the server too soon after them.
        for future in [pool.submit(_ready) for _ in range(self.workers)]:
            future.result()
        return pool

    async def extract(self, html: bytes, url: str) -> Extracted:
        loop = asyncio.get_running_loop()
        pool = self._pool
        future = loop.run_in_executor(pool, extract_page, html, url, self.timeout)
        try:
            # The worker's own alarm fires first; this only catches a worker that hangs in C.
            return await asyncio.wait_for(future, self.timeout * 2 + 10)
        except TimeoutError:
            LOGGER.warning("extraction worker stuck on %s; replacing the pool", url)
            self._replace(pool)
            return Extracted(
                ok=False, error=f"extraction worker did not answer in {self.timeout:g}s"
            )
        except concurrent.futures.process.BrokenProcessPool as exc:
            self._replace(pool)
            return Extracted(ok=False, error=f"extraction worker died: {exc}"[:500])

    def _replace(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        if self._pool is not pool:
            return
        self._pool = self._new_pool()
        for proc in list((pool._processes or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
