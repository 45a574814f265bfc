"""The whole cycle against a real HTTP server on 127.0.0.1 and a real DuckDB file."""

from datetime import UTC, datetime, timedelta

import pytest
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.fetching.feedlist import FeedSpec, load_feed_file
from newsflow.fetching.urls import article_id, canonicalize
from newsflow.run.cycle import run_cycle

from tests.helpers import article_page, bundled_page, bundled_slugs, feed_file, rss, with_settings

SLUGS = bundled_slugs()


def serve_world(site):
    """A small news web: good and broken feeds, pages that work and pages that do not."""
    b = site.base_url
    site.routes.update(
        {
            "/robots.txt": Route(b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
            "/feeds/good.xml": Route(
                rss(
                    "Good Feed",
                    [
                        {"link": f"{b}/pages/a.html?utm_source=rss&utm_medium=feed",
                         "title": "Page A", "date": "Tue, 17 Feb 2026 18:55:33 +0500",
                         "categories": ["World", "Politics"]},
                        {"link": f"{b}/pages/moved.html", "title": "Moved page",
                         "date": "Tue, 17 Feb 2026 09:00:00 GMT"},
                        {"link": f"{b}/pages/missing.html", "title": "Missing page",
                         "date": "Tue, 17 Feb 2026 10:00:00 -0800",
                         "description": "The feed's own summary of the missing story."},
                        {"link": f"{b}/pages/empty.html", "title": "Empty page",
                         "date": "2026-02-17T12:00:00Z"},
                        {"link": f"{b}/private/secret.html", "title": "Robots says no",
                         "description": "Summary of a page robots.txt keeps us from."},
                    ],
                ),
                content_type="application/rss+xml",
            ),
            "/feeds/relative.xml": Route(
                rss("Relative", [{"link": "rel/story.html", "title": "Relative story",
                                  "date": "Mon, 16 Feb 2026 08:00:00 +0100"}]),
                content_type="application/rss+xml",
            ),
            "/feeds/nodates.xml": Route(
                rss("No dates", [{"link": f"{b}/pages/undated.html", "title": "Undated"},
                                 {"link": f"{b}/pages/a.html#comments", "title": "Dup of A"}]),
                content_type="text/xml",
            ),
            "/feeds/broken.xml": Route(b"oops", status=500, content_type="text/plain",
                                       conditional=False),
            "/pages/a.html": Route(bundled_page(SLUGS[0])),
            "/pages/moved.html": Route(b"", status=301, conditional=False,
                                       headers={"Location": "/pages/b.html"}),
            "/pages/b.html": Route(bundled_page(SLUGS[1])),
            "/pages/empty.html": Route(b"<html><body><div></div></body></html>"),
            "/feeds/rel/story.html": Route(bundled_page(SLUGS[2])),
            "/pages/undated.html": Route(article_page("Undated", [
                "This story has no date in its feed and none on its page either, so newsflow "
                "keeps its publication time unknown and records when it first saw the item."
                ] * 3)),
        }
    )  # fmt: skip
    return [
        FeedSpec(f"{b}/feeds/good.xml", "Good", ("test",), "en"),
        FeedSpec(f"{b}/feeds/relative.xml"),
        FeedSpec(f"{b}/feeds/nodates.xml"),
        FeedSpec(f"{b}/feeds/broken.xml", "Broken"),
    ]


def write_feeds(tmp_path, specs):
    return feed_file(specs, tmp_path / "feeds.yaml")


def counts(store):
    return {
        t: store.query(f"select count(*) from {t}")[1][0][0]
        for t in ("feeds", "articles", "feed_polls", "runs")
    }


def _world(site, settings, tmp_path):
    specs = serve_world(site)
    feeds_file = write_feeds(tmp_path, specs)
    store = Store(settings.database)
    summary = run_cycle(settings, store, feeds=load_feed_file(feeds_file))
    yield site, settings, store, summary, feeds_file
    store.close()


@pytest.fixture
def world(site, settings, tmp_path):
    yield from _world(site, settings, tmp_path)


@pytest.fixture
def tagged_world(site, tagged_settings, tmp_path):
    """``world`` with entities and topics tagged."""
    yield from _world(site, tagged_settings, tmp_path)


def article(store, url):
    rows = store.rows(
        "select * from articles where article_id = ?", [article_id(canonicalize(url))]
    )
    assert rows, f"no article for {url}"
    return rows[0]


def test_cycle_loads_every_new_item_with_its_status(world):
    site, settings, store, summary, _ = world
    b = site.base_url
    assert summary.polls.feeds == 4
    assert summary.polls.ok == 3 and summary.polls.failed == 1
    statuses = dict(store.query("select extraction_status, count(*) from articles group by 1")[1])
    assert statuses == {"ok": 4, "feed_content": 2, "failed": 1}
    assert summary.articles_loaded == 7

    a = article(store, f"{b}/pages/a.html")
    assert a["extraction_status"] == "ok" and a["word_count"] > 100
    assert a["canonical_url"] == f"{b}/pages/a.html"  # tracking parameters and fragment dropped
    # the link as the feed that carried it gave it (two feeds do; either may own it)
    assert a["url"] in (
        f"{b}/pages/a.html?utm_source=rss&utm_medium=feed",
        f"{b}/pages/a.html#comments",
    )
    assert a["feed_categories"] == ["World", "Politics"]
    assert a["content_hash"] and len(a["content_hash"]) == 64
    assert a["language"] == "en"

    moved = article(store, f"{b}/pages/moved.html")
    assert moved["extraction_status"] == "ok"
    assert moved["final_url"] == f"{b}/pages/b.html"

    missing = article(store, f"{b}/pages/missing.html")
    assert missing["extraction_status"] == "feed_content"
    assert missing["text"] == "The feed's own summary of the missing story."
    assert "404" in missing["extraction_error"]
    assert missing["http_status"] == 404

    empty = article(store, f"{b}/pages/empty.html")
    assert empty["extraction_status"] == "failed"
    assert empty["text"] is None and empty["word_count"] == 0
    assert empty["extraction_error"]

    robots = article(store, f"{b}/private/secret.html")
    assert robots["extraction_status"] == "feed_content"
    assert "robots.txt" in robots["extraction_error"]
    assert site.hits["/private/secret.html"] == 0


def test_dates_are_stored_in_utc_and_missing_dates_stay_null(world):
    site, settings, store, summary, _ = world
    b = site.base_url
    a = article(store, f"{b}/pages/a.html")
    assert a["published_at"] == datetime(2026, 2, 17, 13, 55, 33, tzinfo=UTC)
    missing = article(store, f"{b}/pages/missing.html")
    assert missing["published_at"] == datetime(2026, 2, 17, 18, 0, tzinfo=UTC)
    undated = article(store, f"{b}/pages/undated.html")
    assert undated["published_at"] is None
    assert abs(undated["first_seen_at"] - datetime.now(UTC)) < timedelta(minutes=5)


def test_relative_links_are_resolved_against_the_feed(world):
    site, settings, store, summary, _ = world
    rel = article(store, f"{site.base_url}/feeds/rel/story.html")
    assert rel["extraction_status"] == "ok"
    assert rel["url"] == f"{site.base_url}/feeds/rel/story.html"


def test_an_article_in_two_feeds_is_stored_once(world):
    site, settings, store, summary, _ = world
    n = store.query("select count(*) from articles where canonical_url like '%/pages/a.html'")[1]
    assert n[0][0] == 1
    # it was fetched once, too, under whichever link won
    assert (
        site.hits["/pages/a.html?utm_source=rss&utm_medium=feed"] + site.hits["/pages/a.html"] == 1
    )


def test_failed_feed_is_recorded_and_backs_off(world):
    site, settings, store, summary, _ = world
    poll = store.rows("select * from feed_polls where url like '%broken.xml'")[0]
    assert poll["outcome"] == "http_error" and poll["http_status"] == 500
    assert "500" in poll["error"]
    feed = store.rows("select * from feeds where url like '%broken.xml'")[0]
    assert feed["consecutive_failures"] == 1
    # the first failure waits twice the interval, not one interval
    wait = (feed["next_poll_at"] - feed["last_polled_at"]).total_seconds()
    assert wait == pytest.approx(2 * settings.poll_interval)
    good = store.rows("select * from feeds where url like '%good.xml'")[0]
    wait = (good["next_poll_at"] - good["last_polled_at"]).total_seconds()
    # A healthy feed waits its adaptive interval: its newest item is months old, so the
    # longest one, and the feed says why.
    assert wait == pytest.approx(good["poll_interval_s"])
    assert good["poll_interval_s"] == settings.max_poll_interval
    assert good["poll_interval_reason"].startswith("first poll; items about every")
    assert feed["poll_interval_reason"] == "backing off after 1 failed poll(s)"
    assert good["etag"] and good["last_modified"]
    assert good["title"] == "Good"  # the name from the feed list wins over the feed's title
    relative = store.rows("select * from feeds where url like '%relative.xml'")[0]
    assert relative["title"] == "Relative"  # no name given: the feed's own title


def test_second_cycle_changes_no_row_counts_and_304_costs_no_parsing(world):
    site, settings, store, summary, feeds_file = world
    before = counts(store)
    again = run_cycle(settings, store, feeds=load_feed_file(feeds_file), include_not_due=True)
    after = counts(store)
    assert again.articles_loaded == 0 and again.polls.items_new == 0
    assert again.polls.not_modified == 3
    assert {k: after[k] for k in ("feeds", "articles")} == {
        k: before[k] for k in ("feeds", "articles")
    }
    assert after["feed_polls"] == before["feed_polls"] + 4
    polls = store.rows(
        "select outcome, items_seen, http_status from feed_polls where run_id = ?", [again.run_id]
    )
    not_modified = [p for p in polls if p["outcome"] == "not_modified"]
    assert len(not_modified) == 3
    assert all(p["items_seen"] == 0 and p["http_status"] == 304 for p in not_modified)
    sent = [h for path, h in site.request_headers if path == "/feeds/good.xml"]
    assert "If-None-Match" in sent[-1]
    broken = store.rows("select consecutive_failures from feeds where url like '%broken.xml'")
    assert broken[0]["consecutive_failures"] == 2


def test_feeds_not_due_are_not_polled(world):
    site, settings, store, summary, feeds_file = world
    hits = site.hits["/feeds/good.xml"]
    again = run_cycle(settings, store, feeds=load_feed_file(feeds_file))
    assert again.feeds_due == 0
    assert site.hits["/feeds/good.xml"] == hits


def test_a_feed_due_seconds_after_the_run_starts_is_polled_now(world):
    # A 10-minute schedule against a 10-minute interval: the next run starts a few seconds
    # before the feed is due. Within NEWSFLOW_POLL_GRACE (60 s) it is polled now, not in 20 min.
    site, settings, store, summary, feeds_file = world
    soon = datetime.now(UTC) + timedelta(seconds=20)
    store.con.execute("update feeds set next_poll_at = ? where url like '%good.xml'", [soon])
    store.con.execute(
        "update feeds set next_poll_at = ? where url not like '%good.xml'",
        [soon + timedelta(minutes=10)],
    )
    hits = site.hits["/feeds/good.xml"]
    strict = run_cycle(
        with_settings(settings, poll_grace=0), store, feeds=load_feed_file(feeds_file)
    )
    assert strict.feeds_due == 0 and site.hits["/feeds/good.xml"] == hits
    again = run_cycle(settings, store, feeds=load_feed_file(feeds_file))
    assert settings.poll_grace == 60  # the default
    assert again.feeds_due == 1 and site.hits["/feeds/good.xml"] == hits + 1


def test_private_addresses_need_explicit_permission(site, settings, tmp_path):
    specs = serve_world(site)
    strict = with_settings(settings, allow_private=False)
    with Store(strict.database) as store:
        summary = run_cycle(strict, store, feeds=load_feed_file(write_feeds(tmp_path, specs)))
        polls = store.rows("select outcome, error from feed_polls")
        assert summary.polls.failed == 4 and summary.articles_loaded == 0
    assert {p["outcome"] for p in polls} == {"blocked"}
    assert all("127.0.0.1 is a loopback address" in p["error"] for p in polls)
    assert all("--allow-private" in p["error"] for p in polls)
    assert sum(site.hits.values()) == 0


def test_a_staged_run_left_by_a_crash_is_loaded_by_the_next_cycle(site, settings, tmp_path):
    from newsflow.fetching.poll import poll_feeds
    from newsflow.staging import RunDir

    specs = serve_world(site)
    with Store(settings.database) as store:
        store.upsert_feeds(specs)
        # Simulate a crash after polling: polls and items staged, nothing extracted or loaded.
        run = RunDir.create(settings.runs_dir, "cli")
        due = store.due_feeds(datetime.now(UTC))
        poll_feeds(due, settings, run, store.known_article_ids)
        assert counts(store)["articles"] == 0
        summary = run_cycle(settings, store)
        assert summary.resumed_runs == [run.run_id]
        assert summary.feeds_due == 0  # the resumed run already set the feeds' next poll
        assert counts(store)["articles"] == 7
        assert not run.path.exists()
        assert store.is_run_loaded(run.run_id)


def test_items_already_stored_are_not_fetched_again(site, settings, tmp_path):
    # A server without validators: every poll returns the whole feed again.
    b = site.base_url
    site.routes["/feeds/plain.xml"] = Route(
        rss("Plain", [{"link": f"{b}/pages/p{i}.html", "title": f"P{i}"} for i in range(3)]),
        content_type="application/rss+xml", conditional=False,
    )  # fmt: skip
    for i in range(3):
        site.routes[f"/pages/p{i}.html"] = Route(bundled_page(SLUGS[i]), conditional=False)
    with Store(settings.database) as store:
        first = run_cycle(settings, store, feeds=[FeedSpec(f"{b}/feeds/plain.xml")])
        second = run_cycle(settings, store, include_not_due=True)
        assert first.articles_loaded == 3
        assert second.polls.ok == 1 and second.polls.items_seen == 3
        assert second.polls.items_new == 0 and second.articles_loaded == 0
        assert counts(store)["articles"] == 3
        polls = store.rows("select items_seen, items_new from feed_polls order by polled_at")
        assert [(p["items_seen"], p["items_new"]) for p in polls] == [(3, 3), (3, 0)]
    assert all(site.hits[f"/pages/p{i}.html"] == 1 for i in range(3))


def test_staged_runs_belong_to_their_database(settings):
    other = with_settings(settings, catalog=settings.data_dir / "other.sqlite")
    assert settings.runs_dir != other.runs_dir
    assert settings.runs_dir.parent == other.runs_dir.parent == settings.data_dir / "runs"


def test_the_cycle_reports_each_steps_wall_and_cpu_time(tagged_world):
    site, settings, store, summary, _ = tagged_world
    timings = summary.timings
    assert list(timings) == ["plan", "poll", "fetch", "tag", "load"]
    assert sum(t["wall_s"] for t in timings.values()) <= summary.elapsed_s + 0.1
    assert timings["fetch"]["cpu_s"] > 0 and timings["tag"]["cpu_s"] > 0  # workers counted
    assert summary.as_dict()["timings"] == timings
