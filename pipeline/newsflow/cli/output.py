"""What the command line prints: tables (text, CSV, JSON), the progress line, the summary of a
cycle, and ``UsageError`` (bad input: exit 2)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from datetime import date, datetime
from decimal import Decimal


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


# -- output helpers ---------------------------------------------------------------------------


def _cell(value, width: int | None = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, list | tuple):
        text = ", ".join(map(str, value))
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, r)) for r in rows], default=json_default, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v, width=None) for v in row])
        return buf.getvalue().rstrip("\n")
    return format_table(columns, rows)


class ProgressLine:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        label = {
            "poll": "polling feeds",
            "fetch": "fetching articles",
            "tag": "tagging batches",
            "retag": "re-tagging articles",
        }.get(stage, stage)
        sys.stderr.write(f"\r\033[K{label}: {done}/{total}")
        if done == total:
            sys.stderr.write("\r\033[K")
        sys.stderr.flush()


# -- commands ---------------------------------------------------------------------------------


def _at(when) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "unknown"


def why_nothing_polled(w: dict) -> str:
    """The line a run that polled no feed prints: which feeds wait, until when, and why."""
    if not w["active"]:
        return (
            "nothing polled: no active feed (add some: `newsflow feeds add URL`,"
            " or `newsflow ingest --feeds FILE`)"
        )
    parts = []
    if w["not_due"]:
        parts.append(f"{w['not_due']} not due until {_at(w['next_due_at'])} or later")
    if w["backoff"]:
        parts.append(
            f"{w['backoff']} in backoff after failed polls until {_at(w['backoff_until'])} or"
            f" later (last error: {(w['backoff_error'] or '?')[:200]})"
        )
    return (
        f"nothing polled: none of the {w['active']} active feed(s) is due ({'; '.join(parts)});"
        " `newsflow ingest --all` polls them now"
    )


def summary_text(s: dict) -> str:
    f, a = s["feeds"], s["articles"]
    lines = [f"run {s['run_id']}  ({s['elapsed_s']:.1f}s)"]
    if s["resumed_runs"]:
        lines.append(f"  resumed   {len(s['resumed_runs'])} interrupted run(s) and loaded them")
    if s["feeds_registered"]:
        lines.append(f"  registry  {s['feeds_registered']} new feed(s) registered")
    if gone := s.get("feeds_deactivated"):
        lines.append(
            f"  registry  {len(gone)} feed(s) not in the feed list deactivated"
            f" ({', '.join(gone[:3])}{', ...' if len(gone) > 3 else ''}); --keep-unlisted keeps"
            " them"
        )
    lines.append(
        f"  feeds     {f['feeds']} polled: {f['ok']} ok, {f['not_modified']} not modified, "
        f"{f['failed']} failed"
    )
    lines.append(f"  items     {f['items_new']} new of {f['items_seen']} seen")
    lines.append(
        f"  articles  {s['articles_loaded']} loaded: {a['ok']} extracted, "
        f"{a['feed_content']} from feed content, {a['failed']} failed"
    )
    if s.get("articles_upgraded"):
        lines.append(
            f"  upgraded  {s['articles_upgraded']} stored article(s) whose page came at a later "
            "attempt (same article_id)"
        )
    if a.get("pages_pending") or a.get("pages_retry") or s.get("pages_requeued"):
        lines.append(
            f"  frontier  {s.get('pages_requeued', 0)} page(s) from the queue; "
            f"{a.get('pages_pending', 0)} left pending by the fetch budget, "
            f"{a.get('pages_retry', 0)} to retry; longest queue wait {a.get('max_queued_s', 0)}s"
        )
    for host in s.get("pages_waiting") or []:
        retry = (
            f", {host['retrying']} retrying (next {host['next_retry_at']:%Y-%m-%d %H:%M})"
            if host["retrying"]
            else ""
        )
        lines.append(f"  waiting   {host['host']}: {host['pending']} pending{retry}")
    t = s.get("tagging") or {}
    if t.get("articles"):
        problems = [f"{t[k]} {k}" for k in ("skipped", "failed") if t[k]]
        lines.append(
            f"  tags      {t['entities']} entities, {t['topics']} topics for {t['articles']} "
            f"articles" + (f" ({', '.join(problems)}; see article_tagging)" if problems else "")
        )
    timings = s.get("timings") or {}
    if any(t["wall_s"] >= 0.05 for t in timings.values()):
        steps = ", ".join(
            f"{n} {t['wall_s']:.1f}s" for n, t in timings.items() if t["wall_s"] >= 0.05
        )
        cpu = sum(t["cpu_s"] for t in timings.values())
        lines.append(f"  time      {steps}; {cpu:.1f}s of CPU in all")
    if w := s.get("waiting_feeds"):
        lines.append("  " + why_nothing_polled(w))
    elif s["articles_loaded"] == 0 and not s["resumed_runs"] and not s.get("articles_upgraded"):
        lines.append("  nothing new since the last run")
    for failure in s["failed_feeds"]:
        lines.append(f"  failed    {failure['url']}: {failure['outcome']} {failure['error'] or ''}")
    return "\n".join(lines)
