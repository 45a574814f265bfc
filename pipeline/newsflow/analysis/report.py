"""The HTML report of ``newsflow report``: one self-contained page of plotly charts.

``build_report(con, days, now)`` returns the page and ``write_report(con, path, days, now)``
writes it. The page needs no network: plotly.js is inlined once, there are no fonts or images
to fetch. The period is the ``days`` UTC days ending with the day of ``now`` (default: the
current time); an article's day is the UTC date of its publication, else of its first sight.

Charts, each followed by a sentence saying what it shows:

1. articles per day, stacked by each article's best topic (``no topic`` when untagged);
2. trending entities: entities whose share of the latest day's articles rose most against the
   7 days before (two-proportion z-score, computed in SQL); with too little history, the most
   mentioned entities of the period instead, and the title says so;
3. entity co-occurrence: pairs of entities named in the same article, as a matrix of the top 15;
4. feed health: per feed, the last poll's outcome, consecutive failures, items, last new item.

The connection is only read (any session time zone works: days are computed in UTC), every value
reaches SQL as a bound parameter, and every chart degrades to a "no data" note on an empty
database or a missing table.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from newsflow.db.store import HEALTHY_OUTCOMES

LOGGER = logging.getLogger(__name__)

DEFAULT_DAYS = 14
NO_TOPIC = "no topic"
# Trending: the latest day against the TREND_BASELINE_DAYS days before it. An entity must be in
# at least TREND_MIN_ARTICLES articles of the latest day, and the baseline must have articles on
# at least TREND_MIN_BASELINE_DAYS days, else the chart falls back to the most mentioned.
TREND_BASELINE_DAYS = 7
TREND_MIN_ARTICLES = 3
TREND_MIN_BASELINE_DAYS = 3
TOP_ENTITIES = 15
# Co-occurrence: each article's COOC_PER_ARTICLE most salient entities (bounds the pairs of long
# articles); a pair counts when seen together in at least COOC_MIN_ARTICLES articles.
COOC_PER_ARTICLE = 20
COOC_MIN_ARTICLES = 2
COOC_TOP_ENTITIES = 15
# Feed health: a feed is failing after this many failed polls in a row, silent when it brought
# items once but nothing new for SILENT_HOURS.
FAILING_AFTER = 3
SILENT_HOURS = 48

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
    "failing": "#f4a6a6",
    "erroring": "#fcd59b",
    "silent": "#fff3a8",
    "never polled": "#e3e3e3",
    "ok": "#bfe6bf",
    "removed": "#f0f0f0",
}
HEALTH_ORDER = list(HEALTH_COLOURS)

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# The article's UTC day, whatever the session time zone.
DAY_SQL = "cast(timezone('UTC', coalesce(a.published_at, a.first_seen_at)) as date)"


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    now: datetime
    days: int


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


def write_report(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the report of the last ``days`` days to ``path``; a summary of what it shows."""
    page, summary = _render(con, days, now)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = page.encode("utf-8")
    path.write_bytes(data)
    summary["path"] = str(path)
    summary["bytes"] = len(data)
    return summary


def build_report(
    con: duckdb.DuckDBPyConnection, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> str:
    """The report of the last ``days`` UTC days up to ``now`` as one self-contained HTML page."""
    return _render(con, days, now)[0]


# -- assembling the page -------------------------------------------------------------------------


def _render(
    con: duckdb.DuckDBPyConnection, days: int, now: datetime | None
) -> tuple[str, dict[str, Any]]:
    period = _period(days, now)
    totals = _totals(con, period)
    charts = [
        _topics_chart(con, period),
        _entities_chart(con, period),
        _cooccurrence_chart(con, period),
        _feeds_chart(con, period),
    ]
    summary: dict[str, Any] = {
        "database": totals["database"],
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "days": period.days,
        "articles": totals["articles_period"],
        "charts": {c.key: {"empty": c.empty, **c.summary} for c in charts},
    }
    return _page(period, totals, charts), summary


def _period(days: int, now: datetime | None) -> Period:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive whole number, not {days!r}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    else:
        now = now.astimezone(UTC)
    end = now.date()
    return Period(start=end - timedelta(days=days - 1), end=end, now=now, days=days)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read query; none when a table it reads does not exist (an older database)."""
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.CatalogException as exc:
        LOGGER.warning("report: %s", exc)
        return []


def _e(value: Any) -> str:
    """Text for plotly, which reads &, < and > as markup (and decodes &amp; &lt; &gt;)."""
    return html.escape("" if value is None else str(value), quote=False)


def _totals(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    db = _rows(con, "select path from duckdb_databases() where database_name = current_database()")
    articles = _rows(
        con,
        f"select count(*), count(*) filter (where {DAY_SQL} between ? and ?) from articles a",
        [period.start, period.end],
    )
    entities = _rows(
        con,
        f"""select count(distinct e.entity), count(distinct e.article_id)
            from article_entities e join articles a using (article_id)
            where {DAY_SQL} between ? and ?""",
        [period.start, period.end],
    )
    topics = _rows(
        con,
        f"""select count(distinct t.article_id)
            from article_topics t join articles a using (article_id)
            where {DAY_SQL} between ? and ?""",
        [period.start, period.end],
    )
    feeds = _rows(
        con,
        "select count(*) filter (where active),"
        " count(*) filter (where active and consecutive_failures >= ?) from feeds",
        [FAILING_AFTER],
    )
    runs = _rows(
        con,
        "select count(*), max(started_at), arg_max(status, started_at) from runs",
    )
    n_all, n_period = articles[0] if articles else (0, 0)
    return {
        "database": (db[0][0] if db and db[0][0] else ":memory:"),
        "articles_total": n_all or 0,
        "articles_period": n_period or 0,
        "entities_period": entities[0][0] if entities else 0,
        "articles_with_entities": entities[0][1] if entities else 0,
        "articles_with_topic": topics[0][0] if topics else 0,
        "feeds_active": feeds[0][0] if feeds else 0,
        "feeds_failing": feeds[0][1] if feeds else 0,
        "runs": runs[0][0] if runs else 0,
        "last_run_at": runs[0][1] if runs else None,
        "last_run_status": runs[0][2] if runs else None,
    }


def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def _fmt_age(hours: float | None) -> str:
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


def _topics_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    rows = _rows(
        con,
        f"""
        with period as (
            select a.article_id, {DAY_SQL} as day
            from articles a
            where {DAY_SQL} between ? and ?
        ),
        best as (
            select t.article_id, t.topic_code, t.topic
            from article_topics t semi join period p using (article_id)
            qualify row_number() over (
                partition by t.article_id order by t.score desc, t.topic_code) = 1
        )
        select p.day, coalesce(b.topic_code, '') as topic_code, coalesce(b.topic, ?) as topic,
               count(*) as articles
        from period p left join best b using (article_id)
        group by all
        order by p.day, topic_code
        """,
        [period.start, period.end, NO_TOPIC],
    )
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

TRENDING_SQL = f"""
with latest as (
    select max({DAY_SQL}) as day from articles a where {DAY_SQL} between $start and $end
),
scope as (
    select a.article_id, {DAY_SQL} = l.day as is_latest
    from articles a, latest l
    where {DAY_SQL} between l.day - cast($baseline_days as integer) and l.day
),
totals as (
    select count(*) filter (where is_latest) as n_latest,
           count(*) filter (where not is_latest) as n_base
    from scope
),
counts as (
    select e.entity, mode(e.label) as label,
           count(distinct e.article_id) filter (where s.is_latest) as latest,
           count(distinct e.article_id) filter (where not s.is_latest) as base
    from article_entities e join scope s using (article_id)
    group by e.entity
),
scored as (
    select c.entity, c.label, c.latest, t.n_latest, c.base, t.n_base,
           c.latest / t.n_latest as share_latest,
           c.base / t.n_base as share_base,
           (c.latest + c.base) / (t.n_latest + t.n_base) as pooled
    from counts c, totals t
    where t.n_base > 0 and c.latest >= $min_articles
)
select entity, label, latest, n_latest, base, n_base, share_latest, share_base,
       (share_latest - share_base)
           / sqrt(pooled * (1 - pooled) * (1.0 / n_latest + 1.0 / n_base) + 1e-12) as z
from scored
where share_latest > share_base
order by z desc, latest desc, entity
limit $top
"""

TRENDING_META_SQL = f"""
with latest as (
    select max({DAY_SQL}) as day from articles a where {DAY_SQL} between $start and $end
)
select l.day,
       count(*) filter (where {DAY_SQL} = l.day) as n_latest,
       count(*) filter (where {DAY_SQL} < l.day) as n_base,
       count(distinct {DAY_SQL}) filter (where {DAY_SQL} < l.day) as base_days
from latest l left join articles a
  on {DAY_SQL} between l.day - cast($baseline_days as integer) and l.day
group by l.day
"""

MOST_MENTIONED_SQL = f"""
select e.entity, mode(e.label) as label, count(distinct e.article_id) as articles,
       sum(e.mentions) as mentions
from article_entities e join articles a using (article_id)
where {DAY_SQL} between $start and $end
group by e.entity
order by articles desc, mentions desc, e.entity
limit $top
"""


def _entities_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    params = {
        "start": period.start,
        "end": period.end,
        "baseline_days": TREND_BASELINE_DAYS,
    }
    meta = _rows(con, TRENDING_META_SQL, params)
    latest, n_latest, n_base, base_days = meta[0] if meta else (None, 0, 0, 0)
    trending: list[tuple] = []
    if latest is not None and base_days >= TREND_MIN_BASELINE_DAYS:
        trending = _rows(
            con, TRENDING_SQL, {**params, "min_articles": TREND_MIN_ARTICLES, "top": TOP_ENTITIES}
        )
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
    rows = _rows(
        con, MOST_MENTIONED_SQL, {"start": period.start, "end": period.end, "top": TOP_ENTITIES}
    )
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

COOCCURRENCE_SQL = f"""
with period as (
    select a.article_id from articles a where {DAY_SQL} between $start and $end
),
ents as (
    select e.article_id, e.entity, max(e.salience) as salience
    from article_entities e semi join period p using (article_id)
    group by e.article_id, e.entity
    qualify row_number() over (
        partition by e.article_id order by max(e.salience) desc, e.entity) <= $per_article
),
pairs as (
    select x.entity as entity_a, y.entity as entity_b, count(*) as articles
    from ents x join ents y on x.article_id = y.article_id and x.entity < y.entity
    group by all
    having count(*) >= $min_articles
),
nodes as (
    select entity, sum(articles) as weight
    from (select entity_a as entity, articles from pairs
          union all select entity_b, articles from pairs)
    group by entity
    order by weight desc, entity
    limit $top
)
select p.entity_a, p.entity_b, p.articles,
       (select count(*) from pairs) as all_pairs
from pairs p
where p.entity_a in (select entity from nodes) and p.entity_b in (select entity from nodes)
order by p.articles desc, p.entity_a, p.entity_b
"""


def _cooccurrence_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    rows = _rows(
        con,
        COOCCURRENCE_SQL,
        {
            "start": period.start,
            "end": period.end,
            "per_article": COOC_PER_ARTICLE,
            "min_articles": COOC_MIN_ARTICLES,
            "top": COOC_TOP_ENTITIES,
        },
    )
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


# -- 4. feed health ------------------------------------------------------------------------------

FEEDS_SQL = """
select coalesce(f.title, f.url) as feed, f.active, f.last_polled_at, f.last_outcome,
       f.last_status, f.last_error, f.consecutive_failures, f.items_total,
       epoch(cast($as_of as timestamptz) - f.last_new_item_at) / 3600.0 as new_item_hours,
       epoch(cast($as_of as timestamptz) - f.last_polled_at) / 3600.0 as poll_hours
from feeds f
"""


def _health(active, polled_at, outcome, failures, items, new_item_hours) -> str:
    if not active:
        return "removed"
    if polled_at is None:
        return "never polled"
    if (failures or 0) >= FAILING_AFTER:
        return "failing"
    if outcome not in HEALTHY_OUTCOMES:
        return "erroring"
    if (items or 0) > 0 and (new_item_hours is None or new_item_hours > SILENT_HOURS):
        return "silent"
    return "ok"


def _feeds_chart(con: duckdb.DuckDBPyConnection, period: Period) -> Chart:
    # Ages are taken at the report's time, or at the latest poll when that is later (a report
    # of a past period, as of the demo database, still shows the feeds' current state).
    last_poll = _rows(con, "select max(last_polled_at) from feeds")
    as_of = period.now
    if last_poll and last_poll[0][0] is not None and last_poll[0][0] > as_of:
        as_of = last_poll[0][0]
    rows = _rows(con, FEEDS_SQL, {"as_of": as_of})
    title = "Feed health"
    text = (
        f"Each feed's state as of {_fmt_time(as_of)}: the outcome of its last poll, failed polls "
        f"in a row, items it brought in all, and how long since its last new item. Failing: "
        f"{FAILING_AFTER}+ failures in a row; erroring: the last poll failed; silent: nothing new "
        f"for {SILENT_HOURS} hours; worst first."
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
    for feed, active, polled, outcome, status, error, fails, items, new_h, poll_h in rows:
        health = _health(active, polled, outcome, fails, items, new_h)
        outcome_text = outcome or "–"
        if outcome and status is not None and outcome not in HEALTHY_OUTCOMES:
            outcome_text += f" ({status})"
        table.append(
            {
                "health": health,
                "feed": feed,
                "outcome": outcome_text,
                "polled": "never" if polled is None else f"{_fmt_age(poll_h)} ago",
                "failures": fails or 0,
                "items": items or 0,
                "new_item": "never" if new_h is None else f"{_fmt_age(new_h)} ago",
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
        f"{_fmt_time(totals['last_run_at'])} ({totals['last_run_status']})"
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
            _card(totals["feeds_failing"], f"feeds failing ({FAILING_AFTER}+ in a row)"),
            _card(totals["runs"], "ingest runs"),
        ]
    )
    meta = (
        f"Database <code>{html.escape(str(totals['database']))}</code> · "
        f"period {period.start:%a %d %b %Y} – {period.end:%a %d %b %Y} "
        f"({period.days} UTC day{'s' if period.days != 1 else ''}) · "
        f"{totals['articles_total']} articles in the database"
        + (f", {outside} outside the period" if outside else "")
        + f" · last run {html.escape(last_run)} · as of {_fmt_time(period.now)}"
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
