"""The report's charts: one function per chart, from the rows of ``data`` to a plotly figure
and the sentence under it. A chart with no rows is a "no data" figure that says why.

1. articles per day, stacked by each article's best topic (``no topic`` when untagged);
2. trending entities: entities whose share of the latest day's articles rose most against the
   7 days before (two-proportion z-score, ``trending_entities_on``); with too little history,
   the most mentioned entities of the period instead, and the title says so;
3. entity co-occurrence: pairs of entities named in the same article
   (``entity_pairs_between``), as a matrix of the top 15;
4. a world map of the countries the period's articles are about (``article_countries``),
   drawn from the embedded 1:110m outlines (``newsflow/data/world_110m.json``): nothing is
   fetched;
5. feed health: per feed, its status (``feed_health_at``), the last poll's outcome,
   consecutive failures, items, last new item.
"""

from __future__ import annotations

import functools
import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from newsflow.analysis.report import data
from newsflow.analysis.report.data import (
    COOC_MIN_ARTICLES,
    COOC_PER_ARTICLE,
    COOC_TOP_ENTITIES,
    NO_TOPIC,
    TOP_ENTITIES,
    TREND_BASELINE_DAYS,
    TREND_MIN_ARTICLES,
    TREND_MIN_BASELINE_DAYS,
    Period,
)
from newsflow.enrich.places import DATA as DATA_DIR

HEALTHY_OUTCOMES = ("ok", "not_modified")

# One colour per IPTC Media Topic (top level), so a topic keeps its colour from report to report.
TOPIC_COLOURS = {
    "medtop:01000000": "#9467bd",  # arts, culture, entertainment and media
    "medtop:02000000": "#8c564b",  # crime, law and justice
    "medtop:03000000": "#ff9896",  # disaster, accident and emergency incident
    "medtop:04000000": "#1f77b4",  # economy, business and finance
    "medtop:05000000": "#9edae5",  # education
    "medtop:06000000": "#2ca02c",  # environment
    "medtop:07000000": "#e377c2",  # health
    "medtop:08000000": "#dbdb8d",  # human interest
    "medtop:09000000": "#c49c94",  # labour
    "medtop:10000000": "#f7b6d2",  # lifestyle and leisure
    "medtop:11000000": "#ff7f0e",  # politics
    "medtop:12000000": "#c5b0d5",  # religion
    "medtop:13000000": "#17becf",  # science and technology
    "medtop:14000000": "#bcbd22",  # society
    "medtop:15000000": "#98df8a",  # sport
    "medtop:16000000": "#d62728",  # conflict, war and peace
    "medtop:17000000": "#aec7e8",  # weather
}
OTHER_TOPIC_COLOURS = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
NO_TOPIC_COLOUR = "#d0d0d0"
LABEL_COLOURS = {
    "PERSON": "#1f77b4",
    "ORG": "#ff7f0e",
    "GPE": "#2ca02c",
    "LOC": "#98df8a",
    "NORP": "#9467bd",
    "EVENT": "#d62728",
    "LAW": "#8c564b",
    "WORK_OF_ART": "#e377c2",
    "FAC": "#bcbd22",
    "PRODUCT": "#17becf",
}
HEALTH_COLOURS = {
    "dead": "#e88080",
    "failing": "#f4a6a6",
    "erroring": "#fcd59b",
    "never worked": "#f7c6a3",
    "silent": "#fff3a8",
    "never polled": "#e3e3e3",
    "ok": "#bfe6bf",
    "removed": "#f0f0f0",
}
HEALTH_ORDER = list(HEALTH_COLOURS)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


@dataclass
class Chart:
    """One section of the page: a figure (or a "no data" figure) and the text under it."""

    key: str
    title: str
    text: str
    figure: go.Figure
    empty: bool
    summary: dict[str, Any] = field(default_factory=dict)
    nodata: str = ""  # why the chart is empty


def _e(value: Any) -> str:
    """Text for plotly, which reads &, < and > as markup (and decodes &amp; &lt; &gt;)."""
    return html.escape("" if value is None else str(value), quote=False)


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def fmt_age(hours: float | None) -> str:
    if hours is None:
        return "never"
    if hours < 1:
        return f"{max(hours, 0) * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _layout(fig: go.Figure, height: int, **kwargs: Any) -> go.Figure:
    """The common layout. Titles are the page's headings (HTML wraps them, plotly does not)."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        font={"family": FONT, "size": 13, "color": "#222"},
        hoverlabel={"font": {"family": FONT}},
        **kwargs,
    )
    return fig


def _empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=f"No data: {_e(message)}",
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": "#777"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, 160, margin={"l": 20, "r": 20, "t": 20, "b": 20})


# -- 1. articles per day by topic ----------------------------------------------------------------


def _topic_colour(code: str, others: dict[str, str]) -> str:
    if code == "":
        return NO_TOPIC_COLOUR
    if code in TOPIC_COLOURS:
        return TOPIC_COLOURS[code]
    if code not in others:
        others[code] = OTHER_TOPIC_COLOURS[len(others) % len(OTHER_TOPIC_COLOURS)]
    return others[code]


def topics_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    rows = data.topics_by_day(con, period)
    title = "Articles per day by topic"
    text = (
        "Articles per UTC day (of publication, else of first sight), stacked by each article's "
        "best topic: its highest-scoring IPTC Media Topic from the topic tagger; articles the "
        f"tagger gave no topic are “{NO_TOPIC}”."
    )
    if not rows:
        return Chart(
            "topics",
            title,
            text,
            _empty_figure("no articles in the period"),
            True,
            {"articles": 0, "days": 0, "topics": 0},
            "no articles in the period",
        )
    per_topic: dict[tuple[str, str], dict[date, int]] = {}
    for day, code, topic, n in rows:
        per_topic.setdefault((code, topic), {})[day] = n
    # Largest topics at the bottom of each bar, "no topic" on top.
    order = sorted(per_topic, key=lambda k: (k[0] == "", -sum(per_topic[k].values()), k[1]))
    fig = go.Figure()
    others: dict[str, str] = {}
    for code, topic in order:
        days = sorted(per_topic[(code, topic)])
        fig.add_bar(
            x=[d.isoformat() for d in days],
            y=[per_topic[(code, topic)][d] for d in days],
            name=_e(topic),
            marker={"color": _topic_colour(code, others), "line": {"width": 0}},
            hovertemplate="%{x|%a %d %b %Y}<br>" + _e(topic) + ": %{y} articles<extra></extra>",
        )
    start = datetime.combine(period.start, datetime.min.time()) - timedelta(hours=12)
    end = datetime.combine(period.end, datetime.min.time()) + timedelta(hours=12)
    _layout(
        fig,
        460,
        barmode="stack",
        bargap=0.25,
        xaxis={
            "type": "date",
            "range": [start.isoformat(), end.isoformat()],
            "dtick": 86400000 * (1 if period.days <= 31 else 7),
            "tickformat": "%a<br>%d %b",
            "showgrid": False,
        },
        yaxis={"title": {"text": "articles"}, "rangemode": "tozero"},
        legend={"title": {"text": "topic"}, "traceorder": "normal", "font": {"size": 12}},
        margin={"l": 60, "r": 20, "t": 20, "b": 50},
    )
    n = sum(r[3] for r in rows)
    return Chart(
        "topics",
        f"{title}, {period.start:%d %b} – {period.end:%d %b %Y}",
        text,
        fig,
        False,
        {
            "articles": n,
            "days": len({r[0] for r in rows}),
            "topics": len({r[1] for r in rows if r[1]}),
            "no_topic": sum(r[3] for r in rows if not r[1]),
        },
    )


# -- 2. trending entities ------------------------------------------------------------------------


def entities_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    latest, n_latest, n_base, base_days = data.trending_baseline(con, period)
    trending: list[tuple] = []
    if latest is not None and base_days >= TREND_MIN_BASELINE_DAYS:
        trending = data.trending(con, period)
    if trending:
        return _trending_figure(trending, latest, n_latest, n_base)

    if latest is None:
        why = "no articles in the period"
    elif base_days < TREND_MIN_BASELINE_DAYS:
        why = (
            f"too little history for trends: the {TREND_BASELINE_DAYS} days before "
            f"{latest:%d %b} have articles on {base_days} day{'s' if base_days != 1 else ''}"
        )
    else:
        why = (
            f"no entity in {TREND_MIN_ARTICLES} or more articles of {latest:%d %b} "
            "rose above its baseline"
        )
    rows = data.most_mentioned(con, period)
    title = "Most mentioned entities"
    text = (
        f"Shown instead of trending entities ({why}): the {TOP_ENTITIES} entities named in the "
        "most articles of the period, coloured by entity type. Trending compares each entity's "
        f"share of the latest day's articles with its share over the {TREND_BASELINE_DAYS} days "
        f"before, once there are articles on at least {TREND_MIN_BASELINE_DAYS} of those days."
    )
    summary: dict[str, Any] = {"mode": "most_mentioned", "reason": why, "entities": len(rows)}
    if not rows:
        return Chart(
            "entities",
            title,
            text,
            _empty_figure("no entities in the period"),
            True,
            summary,
            "no entities in the period",
        )
    rows = rows[::-1]  # the most mentioned at the top
    fig = go.Figure()
    for label in sorted({r[1] for r in rows}):
        sel = [r for r in rows if r[1] == label]
        fig.add_bar(
            orientation="h",
            y=[_e(r[0]) for r in sel],
            x=[r[2] for r in sel],
            name=_e(label),
            marker={"color": LABEL_COLOURS.get(label, "#7f7f7f")},
            text=[r[2] for r in sel],
            textposition="outside",
            customdata=[[r[3]] for r in sel],
            hovertemplate="%{y} ("
            + _e(label)
            + ")<br>%{x} articles, %{customdata[0]} mentions<extra></extra>",
        )
    _layout(
        fig,
        max(320, 28 * len(rows) + 110),
        barmode="overlay",
        xaxis={"title": {"text": "articles"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": [_e(r[0]) for r in rows]},
        legend={"title": {"text": "type"}},
        margin={"l": 160, "r": 20, "t": 20, "b": 50},
    )
    title = f"{title}, {period.start:%d %b} – {period.end:%d %b %Y} ({why})"
    return Chart("entities", title, text, fig, False, summary)


def _trending_figure(rows: list[tuple], latest: date, n_latest: int, n_base: int) -> Chart:
    rows = rows[::-1]  # the strongest rise at the top
    names = [_e(r[0]) for r in rows]
    custom = [[_e(r[1]), r[2], r[3], r[4], r[5], r[8]] for r in rows]
    fig = go.Figure()
    fig.add_bar(
        orientation="h",
        y=names,
        x=[100 * r[7] for r in rows],
        name=f"{TREND_BASELINE_DAYS} days before ({n_base} articles)",
        marker={"color": "#b8c7d9"},
        customdata=custom,
        hovertemplate="%{y} (%{customdata[0]})<br>baseline: %{customdata[3]} of "
        "%{customdata[4]} articles (%{x:.1f}%)<extra></extra>",
    )
    fig.add_bar(
        orientation="h",
        y=names,
        x=[100 * r[6] for r in rows],
        name=f"{latest:%d %b} ({n_latest} articles)",
        marker={"color": "#d9534f"},
        customdata=custom,
        text=[f"{r[2]} of {r[3]} vs {r[4]} of {r[5]}" for r in rows],
        textposition="outside",
        hovertemplate="%{y} (%{customdata[0]})<br>latest day: %{customdata[1]} of "
        "%{customdata[2]} articles (%{x:.1f}%)<br>z = %{customdata[5]:.2f}<extra></extra>",
    )
    title = f"Trending entities on {latest:%d %b %Y} against the {TREND_BASELINE_DAYS} days before"
    _layout(
        fig,
        max(340, 44 * len(rows) + 120),
        barmode="group",
        bargap=0.25,
        xaxis={"title": {"text": "share of the day's articles (%)"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        margin={"l": 160, "r": 40, "t": 40, "b": 50},
    )
    text = (
        f"Entities whose share of the articles of {latest:%d %b %Y} (the latest day with "
        f"articles) rose most against their share over the {TREND_BASELINE_DAYS} days before, "
        "ranked by a two-proportion z-score (so a jump from 1 to 2 articles ranks below one "
        f"from 5 to 40); entities in fewer than {TREND_MIN_ARTICLES} articles of the day are "
        "left out."
    )
    summary = {"mode": "trending", "day": latest.isoformat(), "entities": len(rows)}
    return Chart("entities", title, text, fig, False, summary)


# -- 3. co-occurrence ----------------------------------------------------------------------------


def cooccurrence_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    rows = data.cooccurrence(con, period)
    title = "Entities named together"
    text = (
        f"How many articles of the period name both entities of a pair (each article's "
        f"{COOC_PER_ARTICLE} most salient entities; pairs seen together in at least "
        f"{COOC_MIN_ARTICLES} articles). At most {COOC_TOP_ENTITIES} entities: those with the most "
        "such co-occurrences, in order of their total; an empty cell is a pair seen together "
        "less often."
    )
    if not rows:
        return Chart(
            "cooccurrence",
            title,
            text,
            _empty_figure(f"no pair of entities in {COOC_MIN_ARTICLES}+ articles"),
            True,
            {"pairs": 0, "entities": 0},
            f"no pair of entities named together in {COOC_MIN_ARTICLES}+ articles",
        )
    weight: dict[str, int] = {}
    for a, b, n, _ in rows:
        weight[a] = weight.get(a, 0) + n
        weight[b] = weight.get(b, 0) + n
    names = sorted(weight, key=lambda k: (-weight[k], k))
    index = {name: i for i, name in enumerate(names)}
    z: list[list[int | None]] = [[None] * len(names) for _ in names]
    for a, b, n, _ in rows:
        z[index[a]][index[b]] = n
        z[index[b]][index[a]] = n
    labels = [_e(n) for n in names]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale="Blues",
            zmin=0,  # plotly uses zmin only with zmax
            zmax=max(r[2] for r in rows),
            xgap=2,
            ygap=2,
            texttemplate="%{z}",
            textfont={"size": 11},
            hoverongaps=False,
            showscale=False,
            hovertemplate="%{y} + %{x}<br>%{z} articles together<extra></extra>",
        )
    )
    side = 34 * len(names)
    _layout(
        fig,
        max(300, side + 160),
        xaxis={"tickangle": -40, "showgrid": False, "side": "bottom", "constrain": "domain"},
        yaxis={
            "autorange": "reversed",
            "showgrid": False,
            "scaleanchor": "x",
            "constrain": "domain",
        },
        margin={"l": 160, "r": 20, "t": 20, "b": 130},
        plot_bgcolor="#fafafa",
    )
    summary = {"pairs": rows[0][3], "pairs_shown": len(rows), "entities": len(names)}
    title = f"{title}: the top {len(names)} entities ({rows[0][3]} pairs in the period)"
    return Chart("cooccurrence", title, text, fig, False, summary)


# -- 5. feed health ------------------------------------------------------------------------------


def feeds_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    # Ages are taken at the report's time, or at the latest poll when that is later (a report
    # of a past period, as of the demo database, still shows the feeds' current state).
    as_of, rows = data.feeds(con, period)
    title = "Feed health"
    text = (
        f"Each feed's state as of {fmt_time(as_of)}: the outcome of its last poll, failed polls "
        f"in a row, items it brought in all, and how long since its last new item. Dead: the "
        f"last poll was a permanent error (404, 410, not a feed); failing: "
        f"{period.failing_after}+ failures in a row; erroring: the last poll failed; never "
        f"worked: {period.failing_after}+ polls and no item; silent: nothing new for "
        f"{period.silence_hours:g} hours; worst first."
    )
    if not rows:
        return Chart(
            "feeds",
            title,
            text,
            _empty_figure("no feeds registered"),
            True,
            {"feeds": 0},
            "no feeds registered",
        )
    table = []
    for feed, status_, polled, outcome, status, error, fails, items, new_h, poll_h in rows:
        health = status_.replace("_", " ")
        outcome_text = outcome or "–"
        if outcome and status is not None and outcome not in HEALTHY_OUTCOMES:
            outcome_text += f" ({status})"
        table.append(
            {
                "health": health,
                "feed": feed,
                "outcome": outcome_text,
                "polled": "never" if polled is None else f"{fmt_age(poll_h)} ago",
                "failures": fails or 0,
                "items": items or 0,
                "new_item": "never" if new_h is None else f"{fmt_age(new_h)} ago",
                "error": (error or "")[:80],
            }
        )
    table.sort(key=lambda r: (HEALTH_ORDER.index(r["health"]), -r["failures"], r["feed"].lower()))
    columns = [
        ("feed", "Feed", 3.2),
        ("health", "Health", 1.2),
        ("polled", "Last poll", 1.2),
        ("outcome", "Outcome", 1.4),
        ("failures", "Failures in a row", 1.1),
        ("items", "Items total", 1.0),
        ("new_item", "Last new item", 1.3),
        ("error", "Last error", 3.0),
    ]
    fills = [HEALTH_COLOURS[r["health"]] for r in table]
    fig = go.Figure(
        go.Table(
            columnwidth=[c[2] for c in columns],
            header={
                "values": [f"<b>{c[1]}</b>" for c in columns],
                "fill": {"color": "#eef1f5"},
                "align": "left",
                "height": 30,
                "font": {"size": 13},
            },
            cells={
                "values": [[_e(r[c[0]]) for r in table] for c in columns],
                "fill": {"color": [["white"] * len(table), fills] + [["white"] * len(table)] * 6},
                "align": ["left", "left", "right", "left", "right", "right", "right", "left"],
                "height": 26,
                "font": {"size": 12},
                "line": {"color": "#e5e5e5"},
            },
        )
    )
    counts = {h: sum(r["health"] == h for r in table) for h in HEALTH_ORDER}
    counts = {h: n for h, n in counts.items() if n}
    headline = ", ".join(f"{n} {h}" for h, n in counts.items())
    _layout(
        fig,
        min(720, 70 + 26 * len(table)),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    summary = {"feeds": len(table), **{h.replace(" ", "_"): n for h, n in counts.items()}}
    title = f"{title}: {len(table)} feed{'s' if len(table) != 1 else ''} ({headline})"
    return Chart("feeds", title, text, fig, False, summary)


# -- HTML ----------------------------------------------------------------------------------------


# -- 4. the world map of coverage ---------------------------------------------------------------

MAP_SCALE = "Blues"
MAP_EMPTY = "#eceff3"


@functools.cache
def world() -> dict:
    """The embedded world map: per ISO code, the outline as an SVG path (Equal Earth, 1000 wide)
    and the centre of its largest shape (scripts/world_map.py built it)."""
    return json.loads((DATA_DIR / "world_110m.json").read_text("utf-8"))


def map_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    rows = data.countries(con, period)
    title = f"Countries in the news, {period.start:%d %b} – {period.end:%d %b %Y}"
    w = world()
    shown = [r for r in rows if r[0] in w["countries"]]
    off_map = [r for r in rows if r[0] not in w["countries"]]
    top = ", ".join(f"{r[1]} {r[2]}" for r in rows[:8])
    text = (
        "Each article's countries of focus (table article_countries: the countries of the "
        "places it names, weighted by how prominent each is, and of the nationalities it "
        "names), counted over the period's articles; darker is more articles. "
        + (f"Most covered: {top}. " if rows else "")
        + (
            "Too small for the 1:110m map: "
            + ", ".join(f"{r[1]} {r[2]}" for r in off_map[:8])
            + ". "
            if off_map
            else ""
        )
        + "Outlines: Natural Earth (public domain), embedded in the page."
    )
    summary: dict[str, Any] = {"countries": len(rows), "top": rows[0][0] if rows else None}
    if not rows:
        why = "no article of the period names a place the gazetteer knows"
        return Chart("map", title, text, _empty_figure(why), True, summary, why)
    peak = max(r[2] for r in rows)

    def level(n: int) -> float:  # log scale: one article shows, the peak is darkest
        return 0.15 + 0.85 * math.log1p(n) / math.log1p(peak)

    ticks = sorted({1, *(round(peak**f) for f in (0.33, 0.66)), peak})
    count = {r[0]: r for r in rows}
    shapes = []
    for cc, c in w["countries"].items():
        r = count.get(cc)
        fill = sample_colorscale(MAP_SCALE, [level(r[2])])[0] if r else MAP_EMPTY
        shapes.append(
            {
                "type": "path",
                "path": c["path"],
                "fillcolor": fill,
                "line": {"color": "#ffffff", "width": 0.5},
                "layer": "below",
                "xref": "x",
                "yref": "y",
            }
        )
    fig = go.Figure()
    fig.add_scatter(
        x=[w["countries"][r[0]]["x"] for r in shown],
        y=[w["countries"][r[0]]["y"] for r in shown],
        mode="markers",
        marker={
            "size": 7,
            "color": [level(r[2]) for r in shown],
            "colorscale": MAP_SCALE,
            "cmin": 0,
            "cmax": 1,
            "opacity": 0.0,
            "showscale": True,
            "colorbar": {
                "title": {"text": "articles"},
                "thickness": 12,
                "len": 0.6,
                "tickvals": [level(n) for n in ticks],
                "ticktext": [str(n) for n in ticks],
            },
        },
        customdata=[[_e(r[1]), r[2], round(100 * r[3], 1)] for r in shown],
        hovertemplate="%{customdata[0]}<br>%{customdata[1]} articles"
        " (%{customdata[2]}% of those with a country)<extra></extra>",
        showlegend=False,
    )
    _layout(
        fig,
        520,
        shapes=shapes,
        xaxis={"visible": False, "range": [0, w["width"]], "fixedrange": True},
        yaxis={
            "visible": False,
            "range": [w["height"], 0],
            "scaleanchor": "x",
            "fixedrange": True,
        },
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="#ffffff",
    )
    return Chart("map", title, text, fig, False, summary)
