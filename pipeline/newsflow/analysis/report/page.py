"""The HTML report of ``newsflow report``: one self-contained page of plotly charts.

``build_report(con, days, now)`` returns the page and ``write_report(con, path, days, now)``
writes it. The page needs no network: plotly.js is inlined once, there are no fonts or images
to fetch. The period is the ``days`` UTC days ending with the day of ``now`` (default: the
current time); an article's day is the UTC date of its publication, else of its first sight.
What it shows comes from ``data`` (the queries) through ``charts`` (the figures); this module
lays out the page.

The connection is only read (any session time zone works: days are computed in UTC), every value
reaches SQL as a bound parameter, and every chart degrades to a "no data" note on an empty
database or a missing table.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import plotly.io as pio
from plotly.offline import get_plotlyjs

from newsflow.analysis.report import charts, data
from newsflow.analysis.report.charts import FONT, Chart, fmt_time
from newsflow.analysis.report.data import Period
from newsflow.config import Settings

DEFAULT_DAYS = 14
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}


def write_report(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Write the report of the last ``days`` days to ``path``; a summary of what it shows."""
    page, summary = _render(con, days, now, settings)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = page.encode("utf-8")
    path.write_bytes(data)
    summary["path"] = str(path)
    summary["bytes"] = len(data)
    return summary


def build_report(
    con: duckdb.DuckDBPyConnection,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> str:
    """The report of the last ``days`` UTC days up to ``now`` as one self-contained HTML page."""
    return _render(con, days, now, settings)[0]


def _render(
    con: duckdb.DuckDBPyConnection, days: int, now: datetime | None, settings: Settings | None
) -> tuple[str, dict[str, Any]]:
    period = data.period(days, now, settings)
    totals = data.totals(con, period)
    sections = [
        charts.topics_chart(con, period),
        charts.entities_chart(con, period),
        charts.cooccurrence_chart(con, period),
        charts.map_chart(con, period),
        charts.feeds_chart(con, period),
    ]
    summary: dict[str, Any] = {
        "database": totals["database"],
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "days": period.days,
        "articles": totals["articles_period"],
        "charts": {c.key: {"empty": c.empty, **c.summary} for c in sections},
    }
    return _page(period, totals, sections), summary


CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f8; color: #222;
       font-family: FONT; font-size: 15px; line-height: 1.45; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 40px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header .meta { color: #555; margin: 0 0 16px; }
header .meta code { background: #e8ebef; padding: 1px 5px; border-radius: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 20px; }
.card { background: white; border-radius: 8px; padding: 10px 16px; min-width: 150px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .n { font-size: 22px; font-weight: 600; }
.card .l { color: #666; font-size: 13px; }
section { background: white; border-radius: 8px; padding: 14px 16px 10px; margin-bottom: 20px;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { margin: 0 0 4px; font-size: 18px; }
section p.about { color: #555; margin: 6px 4px 4px; font-size: 14px; }
section p.nodata { color: #a33; font-weight: 600; margin: 4px; }
footer { color: #888; font-size: 12px; text-align: center; }
""".replace("FONT", FONT)


def _card(number: Any, label: str) -> str:
    return (
        f'<div class="card"><div class="n">{html.escape(str(number))}</div>'
        f'<div class="l">{html.escape(label)}</div></div>'
    )


def _section(chart: Chart) -> str:
    div = pio.to_html(
        chart.figure,
        config=PLOTLY_CONFIG,
        include_plotlyjs=False,
        full_html=False,
        div_id=f"chart-{chart.key}",
        default_height=f"{chart.figure.layout.height}px",
    )
    nodata = f'<p class="nodata">No data: {html.escape(chart.nodata)}.</p>' if chart.empty else ""
    return (
        f'<section id="{chart.key}"><h2>{html.escape(chart.title)}</h2>{nodata}\n'
        f'<div class="chart" data-chart="{chart.key}">{div}</div>\n'
        f'<p class="about">{html.escape(chart.text)}</p></section>'
    )


def _page(period: Period, totals: dict[str, Any], charts: list[Chart]) -> str:
    last_run = (
        f"{fmt_time(totals['last_run_at'])} ({totals['last_run_status']})"
        if totals["last_run_at"]
        else "none"
    )
    outside = totals["articles_total"] - totals["articles_period"]
    cards = "".join(
        [
            _card(totals["articles_period"], "articles in the period"),
            _card(totals["articles_with_topic"], "of them with a topic"),
            _card(totals["entities_period"], "distinct entities named"),
            _card(totals["feeds_active"], "active feeds"),
            _card(totals["feeds_failing"], f"feeds failing ({period.failing_after}+ in a row)"),
            _card(totals["runs"], "ingest runs"),
        ]
    )
    meta = (
        f"Database <code>{html.escape(str(totals['database']))}</code> · "
        f"period {period.start:%a %d %b %Y} – {period.end:%a %d %b %Y} "
        f"({period.days} UTC day{'s' if period.days != 1 else ''}) · "
        f"{totals['articles_total']} articles in the database"
        + (f", {outside} outside the period" if outside else "")
        + f" · last run {html.escape(last_run)} · as of {fmt_time(period.now)}"
    )
    sections = "\n".join(_section(c) for c in charts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>newsflow report {period.start.isoformat()} – {period.end.isoformat()}</title>
<style>{CSS}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script>{get_plotlyjs()}</script>
</head>
<body>
<main>
<header>
<h1>newsflow report</h1>
<p class="meta">{meta}</p>
<div class="cards">{cards}</div>
</header>
{sections}
<footer>newsflow · charts by plotly.js, inlined: this page needs no network.</footer>
</main>
</body>
</html>
"""
