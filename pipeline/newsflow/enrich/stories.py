"""Story clusters: near-duplicate articles across outlets share one ``story_id``.

A wire story runs in dozens of outlets with small edits: a changed word here and there, the
outlet's own intro line and footer, the last paragraphs cut. Analysts count it once. (Articles
with the same canonical URL already merge into one article; this is about different URLs.)

Method
------
1. ``normalise``: NFKC, casefold, apostrophes dropped ("we’d" -> "wed"), every other
   punctuation mark a word break. Han and kana characters are one word each (Japanese and
   Chinese do not put spaces between words), so CJK texts are fingerprinted too.
2. Shingles: every run of ``SHINGLE_WORDS`` = 2 consecutive words (word bigrams), as a set.
   Why 2: at a Jaccard threshold t, one edited word destroys k shingles of each side, so a copy
   keeps J >= t only while under (1 - t) / ((1 + t) k) of its words are edited: at t = 0.8,
   5.6% for k = 2, 3.7% for k = 3, 2.2% for k = 5. A wire rewrite that changes 1-3 words per
   paragraph edits 4-5% (3.8% of the words changed or deleted, plus insertions). On the
   benchmark (``benchmarks/stories.py --sweep``, 181 real articles), such copies reach 0.8
   for 79% of the articles at k = 2, 37% at k = 3, 7% at k = 5, and all kinds of copies
   together 57% / 43% / 36%. The other side is different articles: the closest pairs of the
   corpus stay under 0.22 at k = 2 (0.17 at 3), two articles with the same outlet's
   boilerplate under 0.25, and a templated article with every name and number swapped
   (>= 8% of its words) under 0.8 except one of 139 (0.81; 0.74 at k = 3); word sets
   (k = 1) merge 23 of those. k = 2 is the most edit-tolerant size that keeps different
   stories apart; k = 3 is the cautious choice if templated articles (results, market
   reports) dominate a feed list.
3. MinHash (``signature``): each shingle is a stable 64-bit hash (blake2b of each word, a
   polynomial over its word hashes, a splitmix64 finaliser); ``num_perm`` = 128 hash
   functions h_i(x) = ((a_i * x + b_i) mod 2**64) >> 32 (multiply-shift, a_i odd) map it to
   32 bits, and slot i of the signature keeps the minimum over the text's shingles. a_i, b_i
   come from blake2b of a fixed label, never from a random generator or Python's ``hash()``:
   signatures are identical across processes, machines, runs and numpy versions, so stored
   ones stay comparable. The signature is 128 little-endian uint32 = 512 bytes. Texts with
   fewer than ``MIN_WORDS`` = 30 words get no signature (None): a teaser or a caption is too
   short to tell a copy from a coincidence, and such an article never joins a story by content.
4. ``similarity``: the share of equal slots estimates the Jaccard resemblance of the two
   shingle sets (standard error sqrt(J(1-J)/128): 0.035 at J = 0.8).
5. LSH (``band_keys``): the 128 slots are cut into ``BANDS`` = 16 bands of ``ROWS`` = 8; each
   band is hashed with its index into a signed 64-bit key (a DuckDB BIGINT). Two articles
   become candidates when they share any key; the probability is 1 - (1 - J**8)**16:

       J      0.3     0.4     0.5     0.6     0.7     0.75    0.8     0.85    0.9
       P      0.001   0.010   0.061   0.237   0.613   0.815   0.947   0.994   1.000

   so pairs at J >= 0.8 are found with probability >= 0.95 (>= 0.99 from 0.85), and pairs
   at J <= 0.5 rarely (6%, and each such candidate is then rejected by verification).
   (32 x 4 would reach 0.87 at J = 0.5, i.e. many candidates to verify; 8 x 16 only 0.20 at
   J = 0.8, i.e. lost copies.)
6. ``assign_stories``: candidates are verified with ``similarity >= threshold`` (0.8), and
   matches are grouped with union-find; a story's id is the ``article_id`` of its earliest
   member, its first source. Stories only grow: a stored article's ``story_id`` never changes.
   Hence the order matters: when two copies were stored as two stories before the article
   bridging them arrived, they stay two (the bridge joins the closer one).

Quality (``benchmarks/stories.py``: 181 real articles, 1,629 same-story pairs of an article and
an edited copy, 796 pairs of different articles): precision 1.000, recall 0.570 (F1 0.726)
for ``similarity >= 0.8``; the LSH path loses one pair of those (recall 0.569). Copies with one
kind of edit are found at 77-91%; combinations (edits + another outlet's boilerplate, edits +
a removed paragraph) at 40-52%; everything at once (J about 0.6) at 2%: by the definition of
Jaccard >= 0.8, they are not near-identical any more. A signature costs 0.6 ms per article
(0.8 ms per 1,000 words).

Changing ``SHINGLE_WORDS``, ``MIN_WORDS``, ``num_perm`` or the hash labels changes every
signature (stored signatures must then be recomputed); changing ``BANDS`` x ``ROWS`` only
changes the band keys.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

import numpy as np

SHINGLE_WORDS = 2  # k: words per shingle (why: the module docstring)
MIN_WORDS = 30  # fewer words than this: no signature
NUM_PERM = 128  # MinHash slots
BANDS = 16  # LSH bands x rows = NUM_PERM
ROWS = 8
THRESHOLD = 0.8  # estimated Jaccard from which two articles are one story
# A new article looks for its story among the stored articles of this many days before it (a
# wire copy runs within hours or days; the lookup then reads those days' bands, not all).
STORY_WINDOW_DAYS = 30

_SLOT = np.dtype("<u4")
_CHUNK = 2048  # shingles hashed at a time: bounds memory for very long texts
_MIX = np.uint64(0x100000001B3)  # odd multiplier of the polynomial over word hashes
_APOSTROPHES = re.compile(r"['’ʼ`´]")
# Han (with extension A and compatibility ideographs), hiragana and katakana: one word each.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str | None) -> list[str]:
    """The words of ``text``: NFKC, casefolded, without punctuation (CJK: one per character)."""
    if not text:
        return []
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _APOSTROPHES.sub("", text)
    text = _CJK.sub(r" \g<0> ", text)
    return _WORD.findall(text)


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(words: list[str], k: int = SHINGLE_WORDS) -> np.ndarray:
    """The distinct stable 64-bit hashes of the ``k``-word shingles of ``words`` (sorted)."""
    count = len(words) - k + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(w, len(vocab)) for w in words]
    table = np.fromiter((_word_hash(w) for w in vocab), dtype=np.uint64, count=len(vocab))
    word_hashes = table[np.asarray(ids, dtype=np.intp)]
    h = np.zeros(count, dtype=np.uint64)
    for j in range(k):
        h = h * _MIX + word_hashes[j : j + count]  # wraps modulo 2**64
    return np.unique(_splitmix64(h))


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the ``num_perm`` multiply-shift hash functions, from fixed labels."""
    a = np.empty(num_perm, dtype=np.uint64)
    b = np.empty(num_perm, dtype=np.uint64)
    for i in range(num_perm):
        digest = hashlib.blake2b(b"newsflow.stories.minhash.%d" % i, digest_size=16).digest()
        a[i] = int.from_bytes(digest[:8], "little") | 1
        b[i] = int.from_bytes(digest[8:], "little")
    a.flags.writeable = b.flags.writeable = False
    return a, b


def signature(text: str | None, num_perm: int = NUM_PERM) -> bytes | None:
    """MinHash signature of ``text``'s word-bigram shingles: ``num_perm`` little-endian uint32.

    None when the text has fewer than ``MIN_WORDS`` words (too short to fingerprint).
    """
    if num_perm <= 0:
        raise ValueError("num_perm must be positive")
    words = normalise(text)
    if len(words) < MIN_WORDS:
        return None
    shingles = shingle_hashes(words, SHINGLE_WORDS)
    a, b = _permutations(num_perm)
    mins = np.full(num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), _CHUNK):
        block = shingles[start : start + _CHUNK, None]
        np.minimum(mins, ((block * a + b) >> np.uint64(32)).min(axis=0), out=mins)
    return mins.astype(_SLOT).tobytes()


def _slots(sig: bytes) -> np.ndarray:
    if not sig or len(sig) % _SLOT.itemsize:
        raise ValueError(f"not a signature: {len(sig or b'')} bytes")
    return np.frombuffer(sig, dtype=_SLOT)


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard resemblance of two signatures: the share of equal slots."""
    x, y = _slots(a), _slots(b)
    if len(x) != len(y):
        raise ValueError(f"signatures of {len(x)} and {len(y)} slots")
    return np.count_nonzero(x == y) / len(x)


def band_keys(sig: bytes, bands: int = BANDS, rows: int = ROWS) -> list[int]:
    """LSH keys of a signature: one signed 64-bit int per band (bands x rows = its slots).

    Key i hashes band i's ``rows`` slots together with i, so equal slot values in different
    bands never collide. Two signatures share a key with probability 1 - (1 - J**rows)**bands
    (16 x 8: 0.947 at J = 0.8, 0.061 at J = 0.5; the table is in the module docstring).
    """
    slots = len(_slots(sig))
    if bands <= 0 or rows <= 0 or bands * rows != slots:
        raise ValueError(f"{bands} bands x {rows} rows do not cut {slots} slots")
    width = rows * _SLOT.itemsize
    keys = []
    for i in range(bands):
        band = i.to_bytes(2, "little") + sig[i * width : (i + 1) * width]
        digest = hashlib.blake2b(band, digest_size=8, person=b"nf-story").digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: str, y: str) -> str:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[ry] = rx
        return rx


def _first(seen_at: datetime | None, article_id: str) -> tuple:
    """Sort key: earliest ``seen_at`` first (unknown last), then ``article_id``."""
    return (seen_at is None, seen_at, article_id)


def assign_stories(
    new: list[dict],
    lookup: Callable[[list[int]], Iterable[dict]],
    threshold: float = THRESHOLD,
    bands: int = BANDS,
    rows: int = ROWS,
) -> dict[str, str]:
    """``story_id`` of every article of ``new``: ``{article_id: story_id}``.

    ``new`` items: ``article_id``, ``signature`` (bytes or None) and ``seen_at`` (published_at,
    else first_seen_at). ``lookup(keys)`` returns the stored articles that share any of the
    band ``keys`` (it is called once, with the keys of the whole batch), each with
    ``article_id``, ``story_id``, ``signature`` and ``seen_at``.

    Rules:
    - a candidate is a match when ``similarity >= threshold``;
    - an article matching stored articles joins their story; when it matches several stories,
      the one whose matching member is most similar, ties to the earliest story (by the
      earliest ``seen_at`` among its returned members, then ``story_id``);
    - new articles matching each other share a story (union-find over the batch matches,
      most similar pairs first); through a batch match, an article without a stored match
      joins its neighbour's stored story, but two stored stories are never merged;
    - a story of new articles only takes the ``article_id`` of its earliest member (by
      ``seen_at``, then ``article_id``);
    - an article without a signature or without a match is its own story (its ``article_id``);
    - stories only grow: a stored article's ``story_id`` never changes. An item of ``new``
      that ``lookup`` returns with a ``story_id`` keeps it; a stored candidate without one
      counts as a story of its own (its ``article_id``).
    """
    items: dict[str, dict] = {}
    for item in new:
        items.setdefault(item["article_id"], item)
    result = {aid: aid for aid in items}

    keys: dict[str, list[int]] = {}
    for aid, item in items.items():
        sig = item.get("signature")
        if sig:
            keys[aid] = band_keys(sig, bands, rows)
    wanted = sorted({k for ks in keys.values() for k in ks})
    if not wanted:
        return result

    # Stored candidates, by band key; an item of `new` that is already stored keeps its story.
    stored: dict[str, dict] = {}
    for cand in lookup(wanted):
        aid = cand["article_id"]
        if aid in items:
            if cand.get("story_id"):
                result[aid] = cand["story_id"]
                keys.pop(aid, None)
                stored[aid] = cand
            continue
        stored.setdefault(aid, cand)
    wanted_set = set(wanted)
    stored_by_key: dict[int, list[dict]] = defaultdict(list)
    story_first: dict[str, tuple] = {}
    for aid, cand in stored.items():
        sig = cand.get("signature")
        if not sig or len(sig) != bands * rows * _SLOT.itemsize:
            continue
        story = cand.get("story_id") or aid
        key = _first(cand.get("seen_at"), story)
        if story not in story_first or key < story_first[story]:
            story_first[story] = key
        for k in band_keys(sig, bands, rows):
            if k in wanted_set:
                stored_by_key[k].append(cand)

    uf = _UnionFind()
    story_of_root: dict[str, str] = {}  # union-find root -> stored story of its component

    # 1. Each new article with stored matches joins the best of their stories.
    chosen: dict[bytes, str | None] = {}  # signature -> story: verbatim copies decide once
    for aid, ks in keys.items():
        sig = items[aid]["signature"]
        if sig in chosen:
            if (story_id := chosen[sig]) is not None:
                story_of_root[uf.find(aid)] = story_id
            continue
        chosen[sig] = None
        seen: set[str] = set()
        best: dict[str, float] = {}  # story -> similarity of its most similar member
        for k in ks:
            for cand in stored_by_key.get(k, ()):
                if cand["article_id"] in seen:
                    continue
                seen.add(cand["article_id"])
                sim = similarity(sig, cand["signature"])
                if sim >= threshold:
                    story = cand.get("story_id") or cand["article_id"]
                    best[story] = max(sim, best.get(story, 0.0))
        if best:
            chosen[sig] = story_id = min(best, key=lambda s: (-best[s], story_first[s]))
            story_of_root[uf.find(aid)] = story_id

    # 2. Batch matches, most similar first; never two stored stories in one component.
    # Verbatim copies (equal signatures) link to the first of them, which alone is compared.
    pending = set(keys)
    edges: list[tuple[float, str, str]] = []
    first_of: dict[bytes, str] = {}
    by_key: dict[int, list[str]] = defaultdict(list)
    for aid in sorted(keys):
        rep = first_of.setdefault(items[aid]["signature"], aid)
        if rep != aid:
            edges.append((-1.0, rep, aid))
            continue
        for k in keys[aid]:
            by_key[k].append(aid)
    pairs: set[tuple[str, str]] = set()
    for members in by_key.values():
        for i, x in enumerate(members):
            for y in members[i + 1 :]:
                pairs.add((x, y))
    for x, y in pairs:
        sim = similarity(items[x]["signature"], items[y]["signature"])
        if sim >= threshold:
            edges.append((-sim, x, y))
    for _, x, y in sorted(edges):
        rx, ry = uf.find(x), uf.find(y)
        if rx == ry:
            continue
        sx, sy = story_of_root.get(rx), story_of_root.get(ry)
        if sx and sy:
            continue
        root = uf.union(rx, ry)
        story_of_root.pop(rx, None)
        story_of_root.pop(ry, None)
        if story := sx or sy:
            story_of_root[root] = story

    # 3. Story ids: the stored story of the component, else its earliest new member.
    components: dict[str, list[str]] = defaultdict(list)
    for aid in pending:
        components[uf.find(aid)].append(aid)
    for root, members in components.items():
        story = story_of_root.get(root)
        if story is None:
            story = min(members, key=lambda m: _first(items[m].get("seen_at"), m))
        for aid in members:
            result[aid] = story
    return result
