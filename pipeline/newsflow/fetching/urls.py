"""URL identity: canonical article URLs, stable ids, and validation of URLs from users and feeds."""

from __future__ import annotations

import hashlib
import ipaddress
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
# Characters a path keeps as they are (RFC 3986 pchar and "/"); anything else is percent-encoded.
_PATH_SAFE = _UNRESERVED | frozenset("/:@!$&'()*+,;=")
_PATH_TOKEN = re.compile(r"%([0-9A-Fa-f]{2})|%|[^" + re.escape("".join(sorted(_PATH_SAFE))) + "]")
# A host name label once international names are in their ASCII (xn--) form. Looser than the
# DNS host name rules ("_" and a "-" at either end occur in real sites' names, and browsers
# accept them), strict enough to refuse spaces, "%", "*" and empty labels.
_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
# What may follow the userinfo in the authority: a host, or an IPv6 literal, and an optional port.
_BRACKETED = re.compile(r"^\[[^\[\]]+\](?::[0-9]*)?$")
# Longer URLs are refused: no news site needs them, and servers commonly cap a request line
# at 8 KiB.
MAX_URL_LENGTH = 8192


class InvalidURL(ValueError):
    """A URL that newsflow cannot or will not fetch; the message says why."""


def is_tracking_param(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def _normalise_escapes(path: str) -> str:
    """One pass over the path: escapes of unreserved characters are decoded, other escapes are
    uppercased, a ``%`` that starts no escape becomes ``%25`` and every character a path may
    not hold as it is is percent-encoded (UTF-8). The result is a fixed point of this function:
    no decoded character can combine with its neighbours into a new escape."""

    def token(m: re.Match) -> str:
        if m.group(1) is not None:
            char = chr(int(m.group(1), 16))
            return char if char in _UNRESERVED else "%" + m.group(1).upper()
        if m.group(0) == "%":
            return "%25"
        return quote(m.group(0), safe="")

    return _PATH_TOKEN.sub(token, path)


def _normalise_path(path: str) -> str:
    if not path:
        return "/"
    # Escapes first, so that an encoded dot segment ("%2E%2E") is removed like a plain one.
    path = _normalise_escapes(path)
    segments: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(segments) > 1:
                segments.pop()
        elif seg != ".":
            segments.append(seg)
    path = "/".join(segments)
    return path if path.startswith("/") else "/" + path


def _check_host(host: str, bracketed: bool, url: str) -> str:
    """The host in the form newsflow compares and fetches: lowercase ASCII, IPv6 compressed."""
    if bracketed:
        try:
            if "%" in host:
                raise ValueError("zone ids are not allowed")
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise InvalidURL(f"URL has an invalid IPv6 address: {url[:200]!r}") from None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise InvalidURL(f"URL has an invalid international host name: {url[:200]!r}") from None
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidURL(f"URL has an invalid host name {host[:100]!r}: {url[:200]!r}")
    for label in labels:
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise InvalidURL(
                    f"URL has an invalid international host name {host[:100]!r}: {url[:200]!r}"
                ) from None
    return host


def _split_checked(url: str) -> tuple:
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL("empty URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in url):
        raise InvalidURL(f"URL contains control characters or lone surrogates: {url[:200]!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {url[:200]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"only http and https URLs are allowed, got {url[:200]!r}")
    hostport = parts.netloc.rpartition("@")[2]
    bracketed = hostport.startswith("[")
    if (bracketed and not _BRACKETED.match(hostport)) or (not bracketed and "]" in hostport):
        # urlsplit would silently drop what follows "]" ("http://[::1]evil/").
        raise InvalidURL(f"malformed URL {url[:200]!r}: bad host or port")
    if port == 0:
        raise InvalidURL(f"URL has port 0: {url[:200]!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURL(f"URL has no host: {url[:200]!r}")
    return parts, scheme, _check_host(host, bracketed, url), port


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
        if not isinstance(url, str):
            raise InvalidURL("empty URL")
        try:
            url = urljoin(base.strip(), url.strip())
        except ValueError as exc:  # e.g. a link "//[oops/" that is no valid authority
            raise InvalidURL(f"malformed URL {url[:200]!r}: {exc}") from None
    parts, scheme, host, port = _split_checked(url)
    while True:  # "www.m.example.com" is example.com too, and canonical forms must be stable
        bare = _HOST_VARIANTS.sub("", host)
        if bare == host:
            break
        host = bare
    netloc = _netloc(scheme, host, port)
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    ]
    query = urlencode(sorted(query_pairs), doseq=True)
    canonical = urlunsplit((scheme, netloc, _normalise_path(parts.path), query, ""))
    if len(canonical) > MAX_URL_LENGTH:  # percent-encoding can make a URL up to 9 times longer
        raise InvalidURL(f"canonical URL is longer than {MAX_URL_LENGTH} characters")
    return canonical


def article_id(canonical_url: str) -> str:
    """Stable identity of an article: the first 128 bits of SHA-256 of its canonical URL."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


def feed_id(url: str) -> str:
    """Stable identity of a feed, from its URL with only scheme and host case normalised."""
    parts, scheme, host, port = _split_checked(url)
    norm = urlunsplit((scheme, _netloc(scheme, host, port), parts.path or "/", parts.query, ""))
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]
