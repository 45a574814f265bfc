"""A page's title without the site's name: "Best tech gadgets of 2019 | ZDNet" is stored as
"Best tech gadgets of 2019".

Pages (and feeds that copy them) end their titles with the site's name, often after its
sections ("... | World | News | Express.co.uk"). Left in, the suffix is read as an entity of
every article of the site ("More - IGN" ORG), splits the same story's titles across sites and
fills the report's titles with noise. A segment is taken for the site's name when it is spelt
like the page's ``og:site_name`` or the URL's domain ("The New York Times" for "NYTimes" and
nytimes.com, "TheHill" for "The Hill"); only then are the section names before it dropped too.
A title that is nothing but the site's name is kept as it is.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

# A separator is spaced on both sides ("Sentra - Auto News"), so hyphenated words and
# "Star Wars Jedi: Fallen Order" are never split.
_SEPARATOR = re.compile(r"(\s+[-–—|:·•»/]\s+|\s*\|\s*)")
_DOMAIN_END = re.compile(
    r"\.(?:com|net|org|info|co|ca|in|au|uk|us|de|fr|es|it|ie|nz|tv|io)(?:\.[a-z]{2})?$", re.I
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
# Second-level labels under a country code: the site's own label comes before them.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"})
MAX_SITE_WORDS = 6
# Section names a site puts between the title and its name; dropped only after the name is.
SECTIONS = frozenset(
    """news world opinion opinions editorial editorials comment commentary analysis sport sports
    business politics tech technology science entertainment culture lifestyle life health us uk
    local national international nation money markets economy travel music film movies tv
    television books arts style food blog blogs review reviews features video videos live
    latest breaking column columns letters media environment education football soccer
    cricket tennis""".split()
) | {
    "world news",
    "us news",
    "uk news",
    "india news",
    "breaking news",
    "latest news",
    "top stories",
    "op-ed",
    "the latest",
}


def _compact(name: str) -> str:
    """Letters and digits only, lower case, without accents, a leading "the" and a domain
    ending: "The Hill" and "TheHill" are both "hill", "Express.co.uk" is "express"."""
    name = _DOMAIN_END.sub("", name.strip())
    name = unicodedata.normalize("NFKD", name.casefold())
    name = _NOT_ALNUM.sub("", "".join(c for c in name if not unicodedata.combining(c)))
    return name[3:] if name.startswith("the") and len(name) > 5 else name


def _domain_label(url: str | None) -> str | None:
    """The registrable label of the URL's host: "cbssports" for www.cbssports.com, "express"
    for www.express.co.uk; None for an address or a single-label host."""
    if not url:
        return None
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = [label for label in host.split(".") if label and label != "www"]
    if len(labels) < 2:
        return None
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return labels[-3]
    return labels[-2]


def _is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(c in letters for c in short)


def _names_site(segment: str, names: list[str], exact: bool = False) -> bool:
    """Whether ``segment`` is spelt like one of the site's ``names`` (compacted); ``exact``
    for a title's first segment, where a headline's first words could look like a name."""
    if len(segment.split()) > MAX_SITE_WORDS:
        return False
    seg = _compact(segment)
    if len(seg) < 2:
        return False
    for name in names:
        if seg == name:
            return True
        if exact:
            continue
        if len(name) >= 4 and seg.startswith(name):
            return True  # "Sputnik International" for "SputnikInt"
        if len(seg) >= 6 and name.startswith(seg):
            return True  # "Inexhibit" for "Inexhibit magazine"
        if (
            len(name) >= 4
            and seg[0] == name[0]
            and len(seg) <= 3 * len(name)
            and _is_subsequence(name, seg)
        ):
            return True  # "The New York Times" / "NYTimes", "Live Science" / livescience.com
    return False


def strip_site_name(
    title: str | None, site_name: str | None = None, url: str | None = None
) -> str | None:
    """``title`` without a leading or trailing site name (and the section names next to it)."""
    if not title:
        return title
    names = [
        n for n in (_compact(site_name or ""), _compact(_domain_label(url) or "")) if len(n) >= 2
    ]
    if not names:
        return title
    parts = _SEPARATOR.split(title)  # text, separator, text, ...
    segments, separators = parts[0::2], parts[1::2]
    if len(segments) < 2:
        return title
    start, end = 0, len(segments)
    matched = False
    while end - start > 1 and _names_site(segments[end - 1], names):
        end -= 1
        matched = True
    if matched:
        while end - start > 1 and segments[end - 1].strip().casefold() in SECTIONS:
            end -= 1
    if end - start > 1 and _names_site(segments[start], names, exact=True):
        start += 1
    if (start, end) == (0, len(segments)):
        return title
    kept = [segments[start]]
    for i in range(start + 1, end):
        kept += [separators[i - 1], segments[i]]
    return "".join(kept).strip() or title
