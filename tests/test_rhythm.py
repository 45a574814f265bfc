"""Adaptive polling (pipeline/newsflow/fetching/rhythm.py): a test per rule, the publisher's hints, and a
simulated week of three feeds against fixed 10-minute polling (benchmarks/polling_week.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from newsflow.config import ConfigError, Settings, load_settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.parse import parse_feed
from newsflow.fetching.rhythm import Hints, next_interval, parse_ttl, parse_update_period, rhythm
from newsflow.run.cycle import run_cycle

from benchmarks.polling_week import week
from tests.helpers import rss

S = Settings()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def every(seconds, n=10, newest_age=0.0):
    newest = NOW - timedelta(seconds=newest_age)
    return [newest - timedelta(seconds=seconds * i) for i in range(n)]


def interval(**kw):
    args = {"previous": 600.0, "first_poll": False, "items_seen": 10, "items_new": 0, "now": NOW}
    return next_interval(S, **{**args, **kw})


def test_rhythm_is_the_median_gap_stretched_to_a_quiet_feeds_silence():
    assert rhythm(every(3600), NOW) == 3600
    assert rhythm(every(3600, newest_age=5 * 86400), NOW) == 5 * 86400
    assert rhythm([NOW], NOW) is None and rhythm([], NOW) is None
    future = [NOW + timedelta(days=30), *every(1800)]
    assert rhythm(future, NOW) == 1800  # a date in the future is the publisher's mistake


def test_first_poll_takes_half_the_items_rhythm_or_the_default():
    value, why = interval(first_poll=True, previous=None, items_new=10, dates=every(7200))
    assert value == 3600 and why.startswith("first poll; items about every")
    value, why = interval(first_poll=True, previous=None, items_new=10)
    assert value == S.poll_interval and why == "first poll; default interval"


def test_every_item_new_polls_four_times_as_often():
    value, why = interval(previous=2400, items_seen=20, items_new=20)
    assert value == 600 and "some may have been missed" in why


def test_some_new_moves_halfway_towards_half_the_rhythm():
    value, why = interval(previous=3600, items_new=3, dates=every(3600 * 8))  # target 4 h
    assert value == pytest.approx((3600 * 3600 * 4) ** 0.5)  # 2 h: halfway in log terms
    assert why.startswith("3 new; items about every 8.0h")
    # Without dates: the time since the last poll per new item.
    value, _ = interval(previous=3600, items_new=2, since_last_poll=3600 * 4)
    assert value == pytest.approx((3600 * 3600) ** 0.5)


def test_nothing_new_polls_half_again_as_long():
    value, why = interval(previous=4000, items_new=0)
    assert value == 6000 and why == "nothing new"


def test_bounds_hold_whatever_the_feed_does():
    fast, why = interval(previous=400, items_seen=50, items_new=50, dates=every(10))
    assert fast == S.min_poll_interval and why.endswith("at the minimum")
    slow, why = interval(previous=80000, items_new=0)
    assert slow == S.max_poll_interval and why.endswith("at the maximum")


@pytest.mark.parametrize(
    ("hints", "floor", "name"),
    [
        (Hints(ttl=3600), 3600, "<ttl>"),
        (Hints(update_period=7200), 7200, "sy:updatePeriod"),
        (Hints(max_age=1800, ttl=900), 1800, "Cache-Control max-age"),
        (Hints(ttl=10 * 86400), S.max_poll_interval, "<ttl>"),  # within the caps
    ],
)
def test_publisher_hints_are_lower_bounds_within_the_caps(hints, floor, name):
    value, why = interval(previous=S.min_poll_interval, items_seen=5, items_new=5, hints=hints)
    assert value == floor and name in why
    # A hint below what the rhythm gives changes nothing.
    value, _ = interval(previous=80000, items_new=0, hints=Hints(ttl=60))
    assert value == S.max_poll_interval


@pytest.mark.parametrize(
    ("raw", "seconds"), [("60", 3600), (" 15 ", 900), ("0", None), ("-5", None), ("soon", None),
                         (None, None), ("nan", None)],
)  # fmt: skip
def test_ttl_is_minutes(raw, seconds):
    assert parse_ttl(raw) == seconds


@pytest.mark.parametrize(
    ("period", "frequency", "seconds"),
    [("hourly", "2", 1800), ("daily", None, 86400), ("Weekly", "x", 7 * 86400),
     ("sometimes", "2", None), (None, None, None), ("daily", "0", 86400)],
)  # fmt: skip
def test_update_period_and_frequency(period, frequency, seconds):
    assert parse_update_period(period, frequency) == seconds


def test_feeds_hints_reach_the_parse():
    body = rss(
        "Hinted",
        [{"link": "http://example.org/a", "title": "A"}],
        extra_channel="<ttl>120</ttl>",
    ).replace(
        b'<rss version="2.0">',
        b'<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">',
    )
    body = body.replace(b"<ttl>", b"<sy:updatePeriod>daily</sy:updatePeriod><ttl>")
    parsed = parse_feed(body, "http://example.org/feed")
    assert parsed.ttl_s == 7200 and parsed.update_period_s == 86400


def test_bounds_are_validated():
    with pytest.raises(ConfigError, match="min_poll_interval"):
        load_settings({"NEWSFLOW_MIN_POLL_INTERVAL": "7200", "NEWSFLOW_MAX_POLL_INTERVAL": "3600"})


def test_a_simulated_week_polls_less_and_misses_nothing():
    rows = {r["feed"]: r for r in week()}
    for name, r in rows.items():
        print(f"{name}: {r['fixed']} fixed, {r['adaptive']} adaptive")
    wire, column, dead = rows["hourly wire"], rows["daily column"], rows["dead feed"]
    # The wire pushes items out of its 9-minute window between two fixed polls; adaptive
    # polling follows it to the minimum interval and misses none.
    assert wire["fixed"]["missed"] > 0 and wire["adaptive"]["missed"] == 0
    assert column["adaptive"]["missed"] == 0 and column["adaptive"]["polls"] <= 20
    assert column["adaptive"]["mean_delay_s"] < 8 * 3600
    assert dead["adaptive"]["polls"] <= 10 < dead["fixed"]["polls"]


def test_a_cycle_stores_each_feeds_interval_and_honours_cache_control(site, settings):
    """Through a real poll: Cache-Control max-age on the response is a lower bound."""
    recent = [(datetime.now(UTC) - timedelta(minutes=2 * i)) for i in range(10)]
    items = [
        {
            "link": f"{site.base_url}/p{i}",
            "title": f"P{i}",
            "date": d.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        }
        for i, d in enumerate(recent)
    ]
    site.routes["/fast.xml"] = Route(rss("Fast", items), content_type="application/rss+xml")
    site.routes["/cached.xml"] = Route(
        rss("Cached", items[:3]),
        content_type="application/rss+xml",
        headers={"Cache-Control": "public, max-age=7200"},
    )
    settings = settings.with_overrides(tagging=False, respect_robots=False)
    with Store(settings.database) as store:
        run_cycle(
            settings,
            store,
            feeds=[FeedSpec(f"{site.base_url}/fast.xml"), FeedSpec(f"{site.base_url}/cached.xml")],
        )
        feeds = {r["url"].rsplit("/", 1)[1]: r for r in store.rows("select * from feeds")}
    assert feeds["fast.xml"]["poll_interval_s"] == settings.min_poll_interval
    assert feeds["cached.xml"]["poll_interval_s"] == 7200
    assert "Cache-Control max-age" in feeds["cached.xml"]["poll_interval_reason"]
    wait = feeds["cached.xml"]["next_poll_at"] - feeds["cached.xml"]["last_polled_at"]
    assert wait.total_seconds() == 7200
