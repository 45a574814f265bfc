"""Rebuild the bundled sample newsroom (pipeline/newsflow/demo/newsroom_data) from ../shared/corpus.

Real feed snapshots, trimmed to a few items each, whose item links are pointed at real article
pages from the article-extraction benchmark (served by `newsflow newsroom`), plus the sample
article. Run from the repository root:  python scripts/build_newsroom.py
"""

from __future__ import annotations

import gzip
import html
import json
import re
import shutil
from pathlib import Path

import lxml.etree as etree
import lxml.html
from py3langid.langid import MODEL_FILE, LanguageIdentifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
OUT = ROOT / "pipeline" / "newsflow" / "demo" / "newsroom_data"
ITEMS_PER_FEED = 5
BASE = "{{BASE}}"

FEEDS = [  # file in real-feeds/, name, tags, language
    ("bbc-news-world.rss.xml", "BBC News - World", ["world", "uk"], "en"),
    ("aljazeera-all.rss.xml", "Al Jazeera", ["world", "middle-east"], "en"),
    ("nytimes-world.rss.xml", "New York Times - World", ["world", "us"], "en"),
    ("npr-world.rss.xml", "NPR - World", ["world", "us"], "en"),
    ("cbsnews-world.rss.xml", "CBS News - World", ["world", "us"], "en"),
    ("abc-australia-topstories.rss.xml", "ABC News Australia", ["australia"], "en"),
    ("dawn-world.rss.xml", "Dawn - World", ["world", "pakistan"], "en"),
    ("japantoday-world.rss.xml", "Japan Today - World", ["world", "japan"], "en"),
    ("foreignpolicy.rss.xml", "Foreign Policy", ["analysis"], "en"),
    ("guardian-us-2018.rss.xml", "The Guardian - US", ["us"], "en"),
]
SAMPLE_TITLE = (
    "US strike on boat in the Caribbean kills 11 as Washington escalates against Venezuela"
)


def english_pages() -> list[tuple[str, str, str]]:
    """(id, title, body) of benchmark pages whose body is English and of a decent length."""
    truth = json.loads((CORPUS / "article-extraction-benchmark" / "ground-truth.json").read_text())
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    pages = []
    for key in sorted(truth):
        body = truth[key]["articleBody"]
        if not 1500 <= len(body) <= 15000 or ident.classify(body[:3000])[0] != "en":
            continue
        raw = gzip.decompress(
            (CORPUS / "article-extraction-benchmark" / "html" / f"{key}.html.gz").read_bytes()
        )
        title = lxml.html.fromstring(raw).findtext(".//title") or ""
        title = re.sub(r"\s+", " ", title).strip()
        if title:
            pages.append((key, title, body))
    return pages


def teaser(body: str) -> str:
    text = re.sub(r"\s+", " ", body).strip()
    return text[:280].rsplit(" ", 1)[0] + "…"


def sample_page() -> tuple[str, bytes, str]:
    text = (SHARED / "samples" / "boat-strike-article.txt").read_text(encoding="utf-8")
    paras = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in text.splitlines() if p.strip())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(SAMPLE_TITLE)}</title>
<meta property="og:site_name" content="newsflow sample newsroom"></head>
<body><header><nav><a href="/">Home</a> | <a href="/world">World</a></nav></header>
<article><h1>{html.escape(SAMPLE_TITLE)}</h1>
{paras}
</article><footer>Sample article bundled with newsflow for the offline demo.</footer></body></html>
"""
    return "sample-boat-strike", page.encode("utf-8"), text


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "feeds").mkdir(parents=True)
    (OUT / "articles").mkdir()
    pages = iter(english_pages())
    manifest = {"feeds": [], "articles": {}}
    sample_slug, sample_html, sample_text = sample_page()
    (OUT / "articles" / f"{sample_slug}.html.gz").write_bytes(gzip.compress(sample_html, mtime=0))
    manifest["articles"][sample_slug] = {"source": "shared/samples/boat-strike-article.txt"}

    for index, (filename, name, tags, language) in enumerate(FEEDS):
        tree = etree.parse(
            str(CORPUS / "real-feeds" / filename), etree.XMLParser(resolve_entities=False)
        )
        channel = tree.find("channel")
        items = channel.findall("item")
        for extra in items[ITEMS_PER_FEED:]:
            channel.remove(extra)
        targets = []
        for n, item in enumerate(items[:ITEMS_PER_FEED]):
            if index == 0 and n == 0:
                slug, title, body = sample_slug, SAMPLE_TITLE, sample_text
            else:
                key, title, body = next(pages)
                slug = key[:16]
                src = CORPUS / "article-extraction-benchmark" / "html" / f"{key}.html.gz"
                data = gzip.compress(gzip.decompress(src.read_bytes()), mtime=0)
                (OUT / "articles" / f"{slug}.html.gz").write_bytes(data)
                manifest["articles"][slug] = {"benchmark_id": key}
            # The item keeps its real structure and date; its link, title and teaser are the page's.
            link = f"{BASE}/articles/{slug}.html?utm_source=rss&utm_medium=feed"
            for child in list(item):
                tag = etree.QName(child).localname
                if tag in (
                    "link",
                    "title",
                    "description",
                    "encoded",
                    "guid",
                    "thumbnail",
                    "content",
                    "group",
                ):
                    item.remove(child)
            for tag, value in (("title", title), ("link", link), ("description", teaser(body))):
                el = etree.SubElement(item, tag)
                el.text = value
            guid = etree.SubElement(item, "guid", isPermaLink="false")
            guid.text = f"newsflow-sample:{slug}"
            targets.append(slug)
        out = OUT / "feeds" / filename.replace(".rss.xml", ".xml")
        tree.write(str(out), xml_declaration=True, encoding="utf-8")
        manifest["feeds"].append(
            {
                "path": f"feeds/{out.name}",
                "name": name,
                "tags": tags,
                "language": language,
                "source": f"shared/corpus/real-feeds/{filename}",
                "articles": targets,
            }
        )
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    n_feeds, n_pages = len(manifest["feeds"]), len(manifest["articles"])
    print(f"wrote {n_feeds} feeds, {n_pages} pages, {size / 1e6:.2f} MB to {OUT}")


if __name__ == "__main__":
    main()
