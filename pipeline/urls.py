"""URL identity: canonical article URLs, stable ids, and validation of URLs from users and feeds."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that identify a campaign or a click, never the document.
TRACKING_PARAMS = frozenset(
    {
        "maca",
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "ocid",
        "cmpid",
        "cmp",
        "smid",
        "smtyp",
        "ito",
        "xtor",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "hsctatracking",
        "oly_anon_id",
        "oly_enc_id",
        "rss",
        "rssfeed",
        "partner",
        "src",
        "ncid",
        "sr_share",
        "share",
        "taid",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "cid",
        "wt.mc_id",
        "wt_mc_id",
        "s_cid",
        "spm",
        "mbid",
        "ref_src",
        "ref_url",
        "feedtype",
        "feedname",
        "at_medium",
        "at_campaign",
    }
)
TRACKING_PREFIXES = ("utm_", "at_", "ns_", "pk_", "mtm_", "stm_", "vero_", "hmb_", "__twitter")

# Host prefixes that name the same site as the bare domain.
_HOST_VARIANTS = re.compile(r"^(?:www\d*|m|mobile|amp)\.(?=[^.]+\.[^.]+)")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class InvalidURL(ValueError):
    """A URL that newsflow cannot or will not fetch; the message says why."""


def is_tracking_param(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def _normalise_path(path: str) -> str:
    if not path:
        return "/"
    segments: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(segments) > 1:
                segments.pop()
        elif seg != ".":
            segments.append(seg)
    path = "/".join(segments)
    if not path.startswith("/"):
        path = "/" + path
    # Percent-decode only unreserved characters; keep reserved ones (e.g. %2F) as they are.
    return re.sub(
        r"%([0-9A-Fa-f]{2})",
        lambda m: (
            chr(int(m.group(1), 16))
            if chr(int(m.group(1), 16)) in _UNRESERVED
            else "%" + m.group(1).upper()
        ),
        quote(path, safe="/%:@!$&'()*+,;=-._~"),
    )


def _split_checked(url: str) -> tuple:
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL("empty URL")
    url = url.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidURL(f"URL contains control characters: {url[:200]!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {url[:200]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"only http and https URLs are allowed, got {url[:200]!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURL(f"URL has no host: {url[:200]!r}")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise InvalidURL(f"URL has an invalid international host name: {url[:200]!r}") from None
    return parts, scheme, host.lower(), port


def _netloc(scheme: str, host: str, port: int | None) -> str:
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return netloc


def validate_http_url(url: str) -> str:
    """Return the URL stripped, or raise InvalidURL when it is not an absolute http(s) URL."""
    _split_checked(url)
    return url.strip()


def canonicalize(url: str, base: str | None = None) -> str:
    """The canonical form of an article URL: the key for deduplication.

    Resolves ``url`` against ``base``; lowercases scheme and host; drops ``www.``/``m.``
    variants, default ports, fragments and tracking parameters; normalises the path and
    percent-escapes; sorts the remaining query parameters.
    """
    if base:
        url = urljoin(base.strip(), url.strip())
    parts, scheme, host, port = _split_checked(url)
    netloc = _netloc(scheme, _HOST_VARIANTS.sub("", host), port)
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    ]
    query = urlencode(sorted(query_pairs), doseq=True)
    return urlunsplit((scheme, netloc, _normalise_path(parts.path), query, ""))


def article_id(canonical_url: str) -> str:
    """Stable identity of an article: the first 128 bits of SHA-256 of its canonical URL."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


def feed_id(url: str) -> str:
    """Stable identity of a feed, from its URL with only scheme and host case normalised."""
    parts, scheme, host, port = _split_checked(url)
    norm = urlunsplit((scheme, _netloc(scheme, host, port), parts.path or "/", parts.query, ""))
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]
