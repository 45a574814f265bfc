"""Adaptive polling: each feed's interval between healthy polls follows its publishing rhythm.

A fixed interval is wrong both ways: a weekly blog polled every 10 minutes costs a thousand
requests a week, and a wire feed publishing 100 items an hour can push items out of its window
between two polls. After every healthy poll the next interval is chosen from what the poll saw:

- **every item new** (on a feed polled before): some may have been missed; a quarter of the
  interval, at most.
- **some new**: halfway (geometrically) from the current interval towards half the feed's
  rhythm (two polls per item it publishes): the rhythm is the median gap between its newest item
  dates or, without dates, the time since the last poll per new item. Halfway, so one burst or
  one lull does not swing it.
- **nothing new** (or 304 Not Modified): half again as long.
- **first poll**: half the rhythm of the item dates when there are some, else
  ``poll_interval``.

Then the bounds: never below ``min_poll_interval`` nor above ``max_poll_interval``; and the
publisher's own hints, ``<ttl>``, ``sy:updatePeriod``/``sy:updateFrequency`` and ``Cache-Control:
max-age``, are lower bounds within those. The result and its reason are stored on the feed
(``feeds.poll_interval_s``, ``poll_interval_reason``) and shown by ``newsflow status``. Failing
feeds do not come here: they back off exponentially from ``poll_interval`` (newsflow/db/store.py).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsflow.config import Settings

RHYTHM_ITEMS = 20  # the newest item dates that make a feed's rhythm
# sy:updatePeriod in seconds (the RSS 1.0 syndication module)
UPDATE_PERIODS = {
    "hourly": 3600.0,
    "daily": 86400.0,
    "weekly": 7 * 86400.0,
    "monthly": 30 * 86400.0,
    "yearly": 365 * 86400.0,
}


@dataclass(frozen=True)
class Hints:
    """What the publisher says about polling, each in seconds (None when it says nothing)."""

    ttl: float | None = None  # <ttl> (minutes in the feed)
    update_period: float | None = None  # sy:updatePeriod / sy:updateFrequency
    max_age: float | None = None  # Cache-Control: max-age of the response

    def floor(self) -> tuple[float, str] | None:
        """The largest hint and its name."""
        named = [
            (v, name)
            for v, name in (
                (self.ttl, "<ttl>"),
                (self.update_period, "sy:updatePeriod"),
                (self.max_age, "Cache-Control max-age"),
            )
            if v
        ]
        return max(named) if named else None


def parse_ttl(value) -> float | None:
    try:
        minutes = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes * 60 if math.isfinite(minutes) and minutes > 0 else None


def parse_update_period(period, frequency) -> float | None:
    seconds = UPDATE_PERIODS.get(str(period or "").strip().lower())
    if seconds is None:
        return None
    try:
        times = int(str(frequency).strip()) if frequency not in (None, "") else 1
    except ValueError:
        times = 1
    return seconds / max(1, times)


def rhythm(dates: Sequence[datetime | None], now: datetime) -> float | None:
    """Seconds between the feed's items: the median gap of its newest dates, stretched to the
    age of the newest item when the feed has gone quiet since; None with fewer than 2 dates."""
    recent = sorted({d for d in dates if d is not None and d <= now + timedelta(minutes=5)})
    recent = recent[-RHYTHM_ITEMS:]
    if len(recent) < 2:
        return None
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(recent)]
    gap = statistics.median(gaps)
    age = (now - recent[-1]).total_seconds()
    return max(gap, age, 1.0)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def next_interval(
    settings: Settings,
    *,
    previous: float | None,
    first_poll: bool,
    items_seen: int,
    items_new: int,
    dates: Sequence[datetime | None] = (),
    since_last_poll: float | None = None,
    hints: Hints = Hints(),
    now: datetime,
) -> tuple[float, str]:
    """The interval to the next poll of a feed whose poll just succeeded, and why."""
    current = previous or settings.poll_interval
    feed_rhythm = rhythm(dates, now)
    # Two polls per item the feed publishes: an item waits half its rhythm at most, on average
    # a quarter.
    target_rhythm = feed_rhythm / 2 if feed_rhythm is not None else None
    if first_poll:
        if target_rhythm is not None:
            interval = target_rhythm
            reason = f"first poll; items about every {_human(target_rhythm * 2)}"
        else:
            interval, reason = settings.poll_interval, "first poll; default interval"
    elif items_seen and items_new >= items_seen:
        interval = current / 4
        if target_rhythm is not None:
            interval = min(interval, target_rhythm)
        reason = f"all {items_seen} items new: some may have been missed"
    elif items_new > 0:
        if target_rhythm is not None:
            target, basis = target_rhythm, f"items about every {_human(target_rhythm * 2)}"
        elif since_last_poll:
            target = since_last_poll / items_new / 2
            basis = f"{items_new} new in {_human(since_last_poll)}"
        else:
            target, basis = current, f"{items_new} new"
        interval = math.sqrt(current * max(target, 1.0))
        reason = f"{items_new} new; {basis}"
    else:
        interval, reason = current * 1.5, "nothing new"
    low, high = settings.min_poll_interval, settings.max_poll_interval
    if interval < low:
        interval, reason = low, f"{reason}; at the minimum"
    elif interval > high:
        interval, reason = high, f"{reason}; at the maximum"
    floor = hints.floor()
    if floor and floor[0] > interval:
        interval = min(floor[0], high)
        reason = f"{reason}; the feed's {floor[1]} asks {_human(floor[0])}"
    return interval, reason
