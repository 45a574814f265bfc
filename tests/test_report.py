"""`newsflow report`: the HTML page, its SQL on a small database, and its charts drawn by headless
Chromium (Debian's chromium and chromium-driver; those tests skip when either is missing)."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from newsflow import connect
from newsflow.analysis.report import build_report, write_report
from newsflow.db import entities as entity_db
from newsflow.db import places as places_db
from newsflow.db.engine import transaction
from newsflow.db.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHARTS = ["topics", "entities", "cooccurrence", "map", "feeds"]
NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"

# -- a small database ----------------------------------------------------------------------------


def _feed(con, fid, title, *, outcome="ok", failures=0, items=5, new_item_hours=1.0, **kw):
    polled = kw.get("polled", NOW - timedelta(minutes=20))
    con.execute(
        "insert into feeds (feed_id, url, title, active, added_at, last_polled_at, last_status,"
        " last_outcome, last_error, consecutive_failures, last_new_item_at, items_total)"
        " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            fid,
            f"http://127.0.0.1:9/{fid}.xml",
            title,
            kw.get("active", True),
            NOW - timedelta(days=30),
            polled,
            kw.get("status", 200),
            outcome if polled else None,
            kw.get("error"),
            failures,
            None if new_item_hours is None else NOW - timedelta(hours=new_item_hours),
            items,
        ],
    )


def _article(con, aid, feed_id, when, *, published=True, topics=(), entities=()):
    con.execute(
        "insert into articles (article_id, feed_id, run_id, url, canonical_url, title,"
        " published_at, first_seen_at, loaded_at, extraction_status, text, word_count)"
        " values (?, ?, 'run1', ?, ?, ?, ?, ?, ?, 'ok', 'text', 1)",
        [
            aid,
            feed_id,
            f"http://127.0.0.1:9/{aid}",
            f"http://127.0.0.1:9/{aid}",
            f"Article {aid}",
            when if published else None,
            when,
            when,
        ],
    )
    for code, topic, score in topics:
        con.execute(
            "insert into article_topics (article_id, topic_code, topic, score, evidence, tagger)"
            " values (?, ?, ?, ?, [], 'test/1')",
            [aid, code, topic, score],
        )
    for i, (entity, label) in enumerate(entities):
        con.execute(  # with the article's day, as a load writes it (migration 013)
            "insert into article_entities (article_id, entity, label, mentions, salience,"
            " in_title, first_offset, tagger, day) select article_id, ?, ?, ?, ?, false, ?,"
            " 'test/1', cast(timezone('UTC', coalesce(a.published_at, a.first_seen_at)) as date)"
            " from articles a where article_id = ?",
            [entity, label, 2, round(1 - i / 10, 2), i, aid],
        )
    return aid


def _link(con, aids: list[str]) -> None:
    """Places and entity ids of the articles, as a load does them: once for all of them."""
    places_db.locate(con, aids)
    entity_db.assign(con, aids)
    places_db.link(con, aids)


POLITICS = ("medtop:11000000", "politics", 0.9)
ECONOMY = ("medtop:04000000", "economy, business and finance", 0.8)
SPORT = ("medtop:15000000", "sport", 0.7)


def make_db(path: Path, days: int = 10) -> Path:
    """`days` days of articles up to NOW: Acme Corp jumps on the last day, Jane Doe is steady,
    Springfield is everywhere; feeds in every state of health."""
    with Store(path) as store, transaction(store.con) as con:  # one commit, not hundreds
        _feed(con, "f1", "Daily Planet")
        _feed(
            con,
            "f2",
            "Gotham Gazette",
            outcome="timeout",
            failures=4,
            status=None,
            error="timed out",
        )
        _feed(con, "f3", "Metro Wire", outcome="http_error", failures=1, status=503, error="503")
        _feed(con, "f4", "Quiet Times", new_item_hours=24 * 5)
        _feed(con, "f5", "Fresh Feed", polled=None, items=0, new_item_hours=None)
        _feed(con, "f6", "Old Feed", active=False)
        n = 0
        aids = []
        for back in range(days - 1, -1, -1):
            day = NOW - timedelta(days=back)
            latest = back == 0
            for i in range(10 if latest else 6):
                n += 1
                ents = [("Springfield", "GPE")]
                if i < 2 or (latest and i < 3):
                    ents.append(("Jane Doe", "PERSON"))
                if (latest and i < 6) or (not latest and i == 0):
                    ents.append(("Acme Corp", "ORG"))
                if i % 3 == 1:
                    ents.append(("AT&T", "ORG"))
                if i == 5:
                    ents.append((HOSTILE, "PERSON"))
                if i == 4:
                    ents += [("Paris", "GPE"), ("France", "GPE")]
                topics = [POLITICS, ECONOMY, SPORT, ()][i % 4]
                aids.append(
                    _article(
                        con,
                        f"a{n:03d}",
                        f"f{1 + i % 4}",
                        day - timedelta(hours=i),
                        published=i != 3,  # some dated by first sight only
                        topics=[topics] if topics else [],
                        entities=ents,
                    )
                )
        # Outside the period: too old, and far in the future.
        aids.append(_article(con, "old", "f1", NOW - timedelta(days=400), topics=[POLITICS]))
        aids.append(_article(con, "future", "f1", NOW + timedelta(days=3), topics=[POLITICS]))
        _link(con, aids)
    return path


def open_ro(path: Path, tz: str = "UTC") -> duckdb.DuckDBPyConnection:
    con = connect(path)  # newsflow.connect: a read-only session on the lake
    con.execute("set TimeZone = ?", [tz])
    return con


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    """A filled store the tests only read (read-only sessions), built once."""
    return make_db(tmp_path_factory.mktemp("filled") / "news.sqlite")


@pytest.fixture
def empty(tmp_path) -> Path:
    path = tmp_path / "empty.sqlite"
    with Store(path):
        pass
    return path


# -- the page without a browser ------------------------------------------------------------------

SCRIPT_OR_STYLE_SRC = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.I
)


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not SCRIPT_OR_STYLE_SRC.search(page), SCRIPT_OR_STYLE_SRC.search(page)
    assert "@import" not in page and "@font-face" not in page
    # plotly.js is inlined exactly once (its banner), and no <script src=...> at all.
    assert page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)


def test_report_of_a_filled_database(filled, tmp_path):
    out = tmp_path / "out" / "report.html"
    with open_ro(filled) as con:
        summary = write_report(con, out, days=14, now=NOW)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert summary["bytes"] == out.stat().st_size
    assert summary["period"] == {"start": "2026-02-25", "end": "2026-03-10"}
    assert summary["articles"] == 9 * 6 + 10  # 9 days of 6, the last of 10; not old/future
    charts = summary["charts"]
    assert charts["topics"]["articles"] == 64 and charts["topics"]["days"] == 10
    assert charts["topics"]["topics"] == 3 and charts["topics"]["no_topic"] == 11
    assert charts["entities"]["mode"] == "trending" and charts["entities"]["day"] == "2026-03-10"
    assert charts["cooccurrence"]["entities"] >= 3 and charts["cooccurrence"]["pairs"] >= 3
    # Springfield (a US city) in every article, Paris and France in one a day.
    assert charts["map"] == {"empty": False, "countries": 2, "top": "US"}
    assert charts["feeds"] == {
        "empty": False,
        "feeds": 6,
        "failing": 1,
        "erroring": 1,
        "silent": 1,
        "never_polled": 1,
        "ok": 1,
        "removed": 1,
    }
    assert "Trending entities on 10 Mar 2026" in page
    assert "no data" not in page.lower()
    for key in CHARTS:
        assert f'id="chart-{key}"' in page
    # Data is escaped in the HTML and for plotly: no markup from an entity name gets through.
    assert HOSTILE not in page and "alert(1)" in page
    assert str(filled) in page


def test_trending_ranks_the_jump_first(filled):
    from newsflow.analysis.report import data

    with open_ro(filled) as con:
        rows = data.trending(con, data.period(14, NOW))
    entities = [r[0] for r in rows]
    # Acme Corp: 6 of 10 articles on the last day against 1 of 6 a day before; Jane Doe's share
    # stays at about a third and Springfield is in every article, so neither is trending.
    assert entities[0] == "Acme Corp"
    assert "Springfield" not in entities and "Jane Doe" not in entities
    acme = rows[0]
    assert acme[2:6] == (6, 10, 7, 42) and acme[8] > 2


def test_days_are_utc_whatever_the_session_time_zone(filled):
    with open_ro(filled) as utc, open_ro(filled, "Pacific/Kiritimati") as far:
        assert (
            build_report(utc, now=NOW).split("<main>")[1]
            == (build_report(far, now=NOW).split("<main>")[1])
        )


def test_short_history_falls_back_to_most_mentioned(tmp_path):
    path = make_db(tmp_path / "short.sqlite", days=2)
    out = tmp_path / "short.html"
    with open_ro(path) as con:
        summary = write_report(con, out, days=7, now=NOW)
    entities = summary["charts"]["entities"]
    assert entities["mode"] == "most_mentioned" and entities["entities"] > 0
    page = out.read_text(encoding="utf-8")
    assert "Most mentioned entities" in page
    assert "too little history for trends" in page


def test_empty_database_says_no_data(empty, tmp_path):
    out = tmp_path / "empty.html"
    with open_ro(empty) as con:
        summary = write_report(con, out, now=NOW)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert all(c["empty"] for c in summary["charts"].values())
    assert page.count('<p class="nodata">No data') == len(CHARTS)
    assert summary["articles"] == 0


def test_a_database_without_tables_still_reports(tmp_path):
    with duckdb.connect() as con:
        page = build_report(con, days=1)
    assert page.count('<p class="nodata">No data') == len(CHARTS)


def test_days_must_be_positive(empty):
    with open_ro(empty) as con, pytest.raises(ValueError):
        build_report(con, days=0)


# -- the page in headless Chromium ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(apt-get install -y --no-install-recommends chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="newsflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,2400",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def render(driver, page: Path) -> dict:
    """Load the page from file://; the <svg> count per chart, errors and fetched resources."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(page.resolve().as_uri())
    count_svgs = (
        "return Object.fromEntries([...document.querySelectorAll('.plotly-graph-div')]"
        ".map(d => [d.id, d.querySelectorAll('svg.main-svg').length]))"
    )
    WebDriverWait(driver, 20).until(
        lambda d: (
            len(d.execute_script(count_svgs)) == len(CHARTS)
            and all(n > 0 for n in d.execute_script(count_svgs).values())
        )
    )
    return {
        "svgs": driver.execute_script(count_svgs),
        "drawn": driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('.plotly-graph-div')]"
            ".map(d => [d.id, d.querySelectorAll('svg.main-svg *').length]))"
        ),
        "severe": [e for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        "resources": driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        ),
        "text": driver.execute_script("return document.body.innerText"),
    }


def test_charts_draw_in_chromium(browser, filled, tmp_path):
    out = tmp_path / "report.html"
    with open_ro(filled) as con:
        write_report(con, out, now=NOW)
    seen = render(browser, out)
    assert seen["severe"] == []
    assert set(seen["svgs"]) == {f"chart-{key}" for key in CHARTS}
    assert all(n > 0 for n in seen["svgs"].values())
    assert all(n > 20 for n in seen["drawn"].values()), seen["drawn"]  # more than empty axes
    # The world map: every country's outline drawn, from the page itself (nothing fetched),
    # the two countries of the database in colours of their own.
    fills = browser.execute_script(
        "return [...document.querySelectorAll('#chart-map .shapelayer path')]"
        ".map(p => p.style.fill)"
    )
    assert len(fills) >= 150
    assert len(set(fills)) == 3, set(fills)  # no coverage, and the US and France's shades
    assert not [r for r in seen["resources"] if not r.startswith("file:")]
    # Names the charts drew: an entity from the trending chart and a feed from the table.
    assert "Acme Corp" in seen["text"] and "Gotham Gazette" in seen["text"]
    assert HOSTILE in seen["text"]  # shown as text, never run as a script


def test_empty_report_draws_in_chromium(browser, empty, tmp_path):
    out = tmp_path / "empty.html"
    with open_ro(empty) as con:
        write_report(con, out, now=NOW)
    seen = render(browser, out)
    assert seen["severe"] == []
    assert all(n > 0 for n in seen["svgs"].values())
    assert seen["text"].count("No data") >= 2 * len(
        CHARTS
    )  # the note above each chart and inside it
    assert not [r for r in seen["resources"] if not r.startswith("file:")]
