"""A simulated week of adaptive polling (newsflow.fetching.rhythm) against fixed 10-min polling.

Three feeds: an hourly wire (100 items an hour, a window of its newest 15 items, so an item
stays in the feed for 9 minutes), a daily column (one item a day at 08:00 UTC, window 10) and
a dead feed (its 10 items are months old; it answers 304). Each poll sees the feed's window at
that moment; an item that left the window before any poll saw it is missed. Prints polls per
feed, items missed and the mean delay from publication to the poll that saw the item.

    .venv/bin/python -m benchmarks.polling_week
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from newsflow.config import Settings
from newsflow.fetching.rhythm import next_interval

from benchmarks.common import run_main

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class SimFeed:
    name: str
    published: tuple[datetime, ...]  # every item's time, oldest first
    window: int  # the feed shows its newest this many items


def wire() -> SimFeed:
    step = timedelta(seconds=36)  # 100 an hour
    n = int(WEEK / step) + 200
    return SimFeed("hourly wire", tuple(START - 200 * step + i * step for i in range(n)), 15)


def daily() -> SimFeed:
    days = [START + timedelta(days=d, hours=8) for d in range(-10, 8)]
    return SimFeed("daily column", tuple(days), 10)


def dead() -> SimFeed:
    return SimFeed("dead feed", tuple(START - timedelta(days=90 + d) for d in range(10, 0, -1)), 10)


def simulate(feed: SimFeed, settings: Settings, adaptive: bool) -> dict:
    """Poll ``feed`` for a week; polls, items missed, mean delay (s) of the items seen."""
    seen: set[datetime] = set()
    delays: list[float] = []
    polls = 0
    now = START
    interval: float | None = None
    last_poll: datetime | None = None
    while now < START + WEEK:
        visible = [t for t in feed.published if t <= now][-feed.window :]
        new = [t for t in visible if t not in seen]
        polls += 1
        for t in new:
            if t >= START:
                delays.append((now - t).total_seconds())
        seen.update(new)
        if adaptive:
            interval, _ = next_interval(
                settings,
                previous=interval,
                first_poll=last_poll is None,
                items_seen=len(visible),
                items_new=len(new),
                dates=visible,
                since_last_poll=(now - last_poll).total_seconds() if last_poll else None,
                now=now,
            )
        else:
            interval = settings.poll_interval
        last_poll = now
        now += timedelta(seconds=interval)
    week = [t for t in feed.published if START <= t < START + WEEK]
    missed = sum(1 for t in week if t not in seen and t <= last_poll)
    return {
        "polls": polls,
        "items": len(week),
        "missed": missed,
        "mean_delay_s": sum(delays) / len(delays) if delays else None,
    }


def week(settings: Settings | None = None) -> list[dict]:
    settings = settings or Settings()
    rows = []
    for feed in (wire(), daily(), dead()):
        fixed = simulate(feed, settings, adaptive=False)
        adaptive = simulate(feed, settings, adaptive=True)
        rows.append({"feed": feed.name, "fixed": fixed, "adaptive": adaptive})
    return rows


def _delay(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.1f} h"


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help
    rows = week()
    print("a simulated week: fixed 10-minute polling against adaptive polling (defaults)")
    print(f"{'feed':<14} {'items':>5}   {'polls':>13} {'missed':>13} {'mean delay':>19}")
    print(f"{'':<14} {'':>5}   {'fixed/adapt.':>13} {'fixed/adapt.':>13} {'fixed/adaptive':>19}")
    for r in rows:
        f, a = r["fixed"], r["adaptive"]
        print(
            f"{r['feed']:<14} {f['items']:>5}   {f['polls']:>6}/{a['polls']:<6} "
            f"{f['missed']:>6}/{a['missed']:<6} "
            f"{_delay(f['mean_delay_s']):>9}/{_delay(a['mean_delay_s']):<9}"
        )
    total_f = sum(r["fixed"]["polls"] for r in rows)
    total_a = sum(r["adaptive"]["polls"] for r in rows)
    print(f"all polls: {total_f} fixed, {total_a} adaptive ({total_a / total_f:.2f}x)")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.polling_week")
