"""Entity identity in the database: ``article_entities.entity_id`` and the tables ``entities``,
``entity_keys`` and ``entity_redirects`` (migration 011). The decisions are
``newsflow.enrich.identity``'s; this module gives them the corpus's counts and writes them.

* ``assign`` — inside a load (or a retag): the rows of these articles get their entity. A key
  seen before keeps its entity; a new key joins an existing entity when the identity rules say
  so (a new "Trump" joins a stored "Donald Trump"), else it starts one. Only new keys move:
  stored ones wait for maintenance. Its cost does not grow with the store: the keys' counts
  (``entity_key_counts``) and the entities' are moved by what these articles add and by what
  the rows they replaced took away (``note_removed``), never recounted over the corpus; the
  other lookups are bounded by the touched keys and by the articles' first day.
* ``resolve_all`` — maintenance (and the migration that introduced the tables): every key
  re-resolved over the whole corpus; an entity that merges into another leaves a redirect, so
  an ``entity_id`` an analyst wrote down stays valid. Maintenance runs it in steps that each
  commit (``resolve_in_steps``): a pass stopped midway is continued by the next.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import duckdb

from newsflow.config import fault_point
from newsflow.db import entity_counts as counts
from newsflow.db.engine import arrow, drop_temp, has_temp, one, transaction
from newsflow.enrich import identity

__all__ = ["assign", "resolve_all", "resolve_id", "resolve_in_steps"]

LOGGER = logging.getLogger(__name__)
CHUNK_DAYS = 30  # days of entity rows a full pass writes per transaction

_SEEN = counts.SEEN
_DAY = counts.DAY


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    source: str,
    cols: Sequence[str],
    since: datetime | None = None,
) -> int:
    """Insert entity rows (``cols`` of the relation ``source``) into article_entities with
    their article's day (migration 013); the articles are stored already, none first seen
    before ``since`` when it is given (then only that time's articles are read). Returns the
    count."""
    picked = ", ".join(f"s.{c}" for c in cols)
    bound = "" if since is None else " where a.first_seen_at >= ?"
    return one(
        con.execute(
            f"insert into article_entities ({', '.join(cols)}, day) select {picked}, {_DAY}"
            f" from {source} s join (select article_id, published_at, first_seen_at"
            f" from articles a{bound}) a using (article_id)",
            [] if since is None else [since],
        )
    )[0]


def since_day(con: duckdb.DuckDBPyConnection, ids_table: str, since: datetime | None = None) -> str:
    """A condition on ``article_entities`` that holds for every entity row of the articles in
    ``ids_table`` (a table with ``article_id``): their first day. Entity rows are stored in day
    order, so a statement scoped by article ids that adds it skips the files and row groups of
    older days instead of reading all rows: an UPDATE on the lake reads every column of what it
    scans (a load's update of its own rows read every entity row of the store). ``since``: none
    of these articles was first seen before it (a load knows it from its staged rows), so the
    lookup reads the articles of that time only, not every article's id."""
    bound = "" if since is None else " and a.first_seen_at >= ?"
    day = one(
        con.execute(
            f"select min({_DAY}) from articles a"
            f" where a.article_id in (select article_id from {ids_table}){bound}",
            [] if since is None else [since],
        )
    )[0]
    return f" and article_entities.day >= date '{day.isoformat()}'" if day else ""


def order_by_day(con: duckdb.DuckDBPyConnection) -> None:
    """Give every entity row its article's day and store the rows in the order of their days
    (what migration 013 does; ``newsflow migrate`` after copying a file store's rows)."""
    con.execute(
        "create or replace temp table entity_rows_by_day as"
        f" select e.* exclude (day), {_DAY} as day"
        " from article_entities e left join articles a using (article_id)"
    )
    try:
        con.execute("delete from article_entities")
        con.execute(
            "insert into article_entities"
            " select * from entity_rows_by_day order by day nulls first, article_id"
        )
    finally:
        drop_temp(con, "entity_rows_by_day")


def _fill_keys(con: duckdb.DuckDBPyConnection, scope: str = "") -> None:
    """Rows stored before migration 011, or staged by an older newsflow, get their key."""
    names = [
        r[0]
        for r in con.execute(
            f"select distinct entity from article_entities where entity_key is null {scope}"
        ).fetchall()
    ]
    if not names:
        return
    keys = [identity.entity_key(n) or n.casefold() for n in names]
    with arrow(con, "entity_key_map", entity=names, entity_key=keys):
        con.execute(
            "update article_entities set entity_key = m.entity_key from entity_key_map m"
            f" where article_entities.entity = m.entity and article_entities.entity_key is null"
            f" {scope.replace('article_id', 'article_entities.article_id')}"
        )


def _pairs(rows: Iterable[tuple]) -> list[tuple[str, str, int]]:
    """(alias key, key, articles) from (key, alias[, rows]) — an article paired the alias with
    the key; ``rows`` when the pairs were counted already."""
    tally: Counter = Counter()
    for key, alias, *n in rows:
        alias_key = identity.entity_key(alias)
        if alias_key and alias_key != key:
            tally[(alias_key, key)] += n[0] if n else 1
    return [(a, k, n) for (a, k), n in tally.items()]


def _known(con: duckdb.DuckDBPyConnection, keys: Iterable[str] | None = None) -> dict[str, str]:
    """The entity of each stored key (of ``keys``, or all)."""
    if keys is None:
        return dict(con.execute("select entity_key, entity_id from entity_keys").fetchall())
    with arrow(con, "known_keys", entity_key=sorted(set(keys))):
        return dict(
            con.execute(
                "select entity_key, entity_id from entity_keys"
                " where entity_key in (select entity_key from known_keys)"
            ).fetchall()
        )


def _fresh_ids(con: duckdb.DuckDBPyConnection, roots: list[str]) -> dict[str, str]:
    """A new entity id for each root, as ``_new_id`` gives them, looking up only the ids it
    proposes (not every id the store holds)."""
    chosen: dict[str, str] = {}
    tries = dict.fromkeys(roots, 0)
    while tries:
        proposed = {
            root: identity.entity_id(root if n == 0 else f"{root}\x00{n}")
            for root, n in tries.items()
        }
        with arrow(con, "proposed_ids", entity_id=sorted(set(proposed.values()))):
            taken = {
                r[0]
                for r in con.execute(
                    "select entity_id from proposed_ids where entity_id in"
                    " (select entity_id from entities union all select entity_id"
                    " from entity_redirects union all select entity_id from entity_keys)"
                ).fetchall()
            }
        again = {}
        for root, n in tries.items():
            eid = proposed[root]
            if eid in taken:
                again[root] = n + 1
            else:
                chosen[root] = eid
                taken.add(eid)
        tries = again
    return chosen


def _new_id(root: str, taken: set[str]) -> str:
    eid, n = identity.entity_id(root), 1
    while eid in taken:
        eid, n = identity.entity_id(f"{root}\x00{n}"), n + 1
    taken.add(eid)
    return eid


def assign(
    con: duckdb.DuckDBPyConnection, article_ids: Sequence[str], since: datetime | None = None
) -> int:
    """Give the entity rows of these articles their ``entity_id`` (inside the caller's
    transaction) and bring the counts of the touched keys and entities up to date: what
    these articles' rows add, less what the rows ``note_removed`` kept took away. ``since``:
    none of these articles was first seen before it (a load knows; else looked up). Returns
    how many new entities were created."""
    removed = has_temp(con, "removed_entity_rows")
    if not article_ids and not removed:
        return 0
    if not removed:
        counts.note_removed(con, "false")  # one shape for the statements below
    with arrow(con, "entity_articles", article_id=list(article_ids)):
        con.execute(
            "create or replace temp table assigned_ids as select article_id from entity_articles"
        )
    try:
        day = since_day(con, "assigned_ids", since) if article_ids else " and false"
        scope = "and article_id in (select article_id from assigned_ids)" + day
        _fill_keys(con, scope)
        rows = con.execute(
            f"select entity_key, aliases from article_entities where entity_key is not null {scope}"
        ).fetchall()
        counted = counts.has_counts(con)
        if counted:
            counts.add_key_delta(con, scope)
        known = _known(con, {k for k, _ in rows})
        new_keys = sorted({k for k, _ in rows} - set(known))
        created = 0
        if new_keys:
            created = _place_new_keys(con, new_keys, rows, known)
        con.execute(
            "update article_entities set entity_id = k.entity_id from entity_keys k"
            " where k.entity_key = article_entities.entity_key"
            " and article_entities.article_id in (select article_id from assigned_ids)"
            f" and article_entities.entity_id is distinct from k.entity_id{day}"
        )
        if counted:
            counts.move_entities(con, scope, since)
        else:  # a store before migration 015 (its migration counts everything next)
            touched = {
                r[0]
                for r in con.execute(
                    "select distinct entity_id from article_entities where entity_id is not null"
                    f" {scope} union select entity_id from removed_entity_rows"
                    " where entity_id is not null"
                ).fetchall()
            }
            _refresh(con, touched)
        return created
    finally:
        drop_temp(con, "assigned_ids", "removed_entity_rows", "key_delta", "entity_delta")


def _place_new_keys(
    con: duckdb.DuckDBPyConnection,
    new_keys: list[str],
    rows: list[tuple[str, list | None]],
    known: dict[str, str],
) -> int:
    """Resolve keys never seen before against themselves and the stored entities."""
    singles = sorted({k for k in new_keys if " " not in k})
    candidates = set(new_keys)
    if singles:
        with arrow(con, "single_keys", token=singles):
            candidates.update(
                r[0]
                for r in con.execute(
                    "select distinct k.entity_key from entity_keys k"
                    " where k.entity_key like '% %' and list_has_any("
                    " string_split(k.entity_key, ' '), (select list(token) from single_keys))"
                ).fetchall()
            )
    pairs = _pairs((key, alias) for key, aliases in rows for alias in aliases or ())
    candidates.update(k for _, k, _ in pairs)
    candidates.update(_places_named(con, [k for k in new_keys if ":" not in k]))
    stats = counts.stats(con, sorted(candidates))
    known = {**_known(con, candidates), **known}
    res = identity.resolve(stats, pairs, only=new_keys)
    groups: dict[str, list[str]] = defaultdict(list)
    for key in new_keys:
        if key in res.root:
            groups[res.root[key]].append(key)
    for root in list(groups):
        groups[root] = [k for k, r in res.root.items() if r == root]
    # Keys without a row in the stats (no article stored yet: cannot happen inside a load,
    # whose rows are inserted first) still get an entity of their own.
    alone = [k for k in new_keys if k not in res.root]
    fresh = _fresh_ids(
        con, [r for r, keys in groups.items() if not any(k in known for k in keys)] + alone
    )
    ids, how, created = [], [], 0
    out_keys = []
    for root, keys in groups.items():
        stored = [k for k in keys if k in known]
        if stored:
            eid = known[max(stored, key=lambda k: (stats[k].articles, k))]
        else:
            eid = fresh[root]
            created += 1
        for k in keys:
            if k in known:
                continue
            out_keys.append(k)
            ids.append(eid)
            how.append(res.how.get(k, "name"))
    for k in alone:
        out_keys.append(k)
        ids.append(fresh[k])
        how.append("name")
        created += 1
    with arrow(con, "new_entity_keys", entity_key=out_keys, entity_id=ids, resolved_by=how):
        con.execute("insert into entity_keys select * from new_entity_keys")
    return created


def _has_places(con: duckdb.DuckDBPyConnection) -> bool:
    return counts.has_table(con, "article_places")


def _places_named(con: duckdb.DuckDBPyConnection, keys: list[str]) -> set[str]:
    """The place keys of stored places whose name, as some article wrote it, is one of
    ``keys`` (the candidates of identity.resolve's place-name rule; it decides exactly)."""
    if not keys:
        return set()
    if counts.has_counts(con):
        sql = (
            "select distinct entity_key from entity_key_counts"
            " where name_key in (select entity_key from named_keys)"
        )
    elif _has_places(con):
        sql = (
            f"select distinct place_key from article_places where {counts.NAME_KEY}"
            " in (select entity_key from named_keys)"
        )
    else:
        return set()
    with arrow(con, "named_keys", entity_key=keys):
        return {r[0] for r in con.execute(sql).fetchall()}


def _refresh(con: duckdb.DuckDBPyConnection, entity_ids: set[str] | None) -> None:
    """Rewrite the ``entities`` rows of these ids (all when None) from their keys' counts and
    a count of their rows (maintenance, and a load into a store before migration 015)."""
    if entity_ids is not None and not entity_ids:
        return
    members: list[tuple[str, str, str]] = []
    if entity_ids is None:
        if not counts.has_counts(con):  # (else described reads the keys a batch at a time)
            members = con.execute(
                "select entity_id, entity_key, resolved_by from entity_keys"
            ).fetchall()
    else:
        with arrow(con, "refresh_ids", entity_id=sorted(entity_ids)):
            members = con.execute(
                "select entity_id, entity_key, resolved_by from entity_keys"
                " where entity_id in (select entity_id from refresh_ids)"
            ).fetchall()
    scope = "" if entity_ids is None else "where entity_id in (select entity_id from refresh_ids)"
    with (
        arrow(con, "refresh_ids", entity_id=sorted(entity_ids or ())),
        counts.described(con, members, every=entity_ids is None) as described,
    ):
        con.execute(f"delete from entities {scope}")
        if described:
            con.execute(
                f"""
                insert into entities
                select n.entity_id, n.entity_name, n.label, n.aliases,
                       c.first_seen_at, c.last_seen_at, c.articles, c.mentions
                from (
                    select entity_id, min(seen) as first_seen_at, max(seen) as last_seen_at,
                           count(*) as articles, sum(mentions) as mentions
                    from (
                        -- per article first: plain aggregates spill to disk under a memory
                        -- limit, where a count(distinct) holds each entity's articles
                        select e.entity_id, e.article_id, any_value({_SEEN}) as seen,
                               sum(e.mentions) as mentions
                        from article_entities e join articles a using (article_id)
                        where e.entity_id in (select entity_id from entity_names)
                        group by e.entity_id, e.article_id
                    ) group by entity_id
                ) c join entity_names n using (entity_id)
                """
            )


def resolve_in_steps(
    con: duckdb.DuckDBPyConnection, now: datetime | None = None, *, chunk_days: int = CHUNK_DAYS
) -> dict[str, int]:
    """``resolve_all`` as maintenance runs it: in transactions of its own, so that a pass
    stopped midway (killed, out of memory) keeps what it did and the next pass continues.
    First every key's entity (``entity_keys``, redirects), then the entity rows' ids
    ``chunk_days`` of articles at a time (logged as it goes), then the place rows' ids and
    the ``entities`` rows. Between the first step and the last, an entity row names the
    entity its key had or the one it now has, and ``entities`` still counts the old ones.
    A pass that follows a stopped one finds the keys settled and the rows it had not reached
    still to write: each step writes only what differs."""
    with transaction(con):
        result = resolve_all(con, now, rows=False)
    step = _Steps()
    chunks = _day_chunks(con, chunk_days)
    for i, (where, params) in enumerate(chunks, 1):
        with transaction(con):
            _write_rows(con, f" and article_entities.{where}", params)
        days = f"{params[0]} to {params[1]}" if params else "unknown"
        step.done("entity rows of the days %s written: chunk %d of %d", days, i, len(chunks))
        fault_point("resolve_chunk")
    with transaction(con):
        _finish(con, step)
    return result


def _day_chunks(con: duckdb.DuckDBPyConnection, days: int) -> list[tuple[str, list]]:
    """The entity rows' days in ranges of ``days`` (a filter and its parameters each), and the
    rows without a day."""
    first, last, undated = one(
        con.execute("select min(day), max(day), bool_or(day is null) from article_entities")
    )
    chunks: list[tuple[str, list]] = [("day is null", [])] if undated else []
    while first is not None and first <= last:
        end = min(first + timedelta(days=days - 1), last)
        chunks.append(("day between ? and ?", [first, end]))
        first = end + timedelta(days=1)
    return chunks


def _write_rows(con: duckdb.DuckDBPyConnection, where: str = "", params: Sequence = ()) -> None:
    """The entity rows (``where`` selects) get their key's entity, where it differs."""
    con.execute(
        "update article_entities set entity_id = k.entity_id from entity_keys k"
        " where k.entity_key = article_entities.entity_key"
        f" and article_entities.entity_id is distinct from k.entity_id{where}",
        list(params),
    )


def _finish(con: duckdb.DuckDBPyConnection, step: _Steps) -> None:
    """The last of a full pass: every entity's row rewritten, the place rows' ids."""
    _refresh(con, None)
    step.done("every entity's name, label, aliases and counts rewritten")
    if _has_places(con):  # (migration 011 resolves before 012 made the table)
        con.execute(
            "update article_places set entity_id = k.entity_id from entity_keys k"
            " where k.entity_key = article_places.place_key"
            " and article_places.entity_id is distinct from k.entity_id"
        )


def resolve_all(
    con: duckdb.DuckDBPyConnection,
    now: datetime | None = None,
    *,
    window_days: int | None = None,
    rows: bool = True,
) -> dict[str, int]:
    """Re-resolve every key over the whole corpus (inside the caller's transaction).

    An entity that is now part of another leaves a redirect to it; an id keeps its entity when
    the entity keeps most of its articles. Returns counts: keys, entities, merged (entities
    that became part of another), changed (keys whose entity changed). ``rows=False``: the
    keys and redirects only, the rows and ``entities`` left to ``resolve_in_steps``."""
    now = now or datetime.now(UTC)
    step = _Steps()
    _fill_keys(con)
    if counts.has_counts(con):
        counts.count_keys(con)  # exact again (first and last days only widen between two)
    stats = counts.summaries(con)
    step.done("%d keys counted over the corpus", len(stats))
    # Counted per (key, alias) by the database: the distinct pairs reach Python, not a row
    # per mention that has aliases.
    pairs = _pairs(
        con.execute(
            "select entity_key, alias, count(*) from (select entity_key, unnest(aliases) as alias"
            " from article_entities where entity_key is not null and len(aliases) > 0)"
            " group by all"
        ).fetchall()
    )
    res = identity.resolve(stats, pairs, window_days=window_days or identity.WINDOW_DAYS)
    known = _known(con)
    live_before = {r[0] for r in con.execute("select entity_id from entities").fetchall()}
    redirected = dict(
        con.execute("select entity_id, to_entity_id from entity_redirects").fetchall()
    )

    groups = res.groups()
    # Largest groups choose first: each takes the id held by most of its articles.
    size = {r: sum(stats[k].articles for k in keys) for r, keys in groups.items()}
    order = sorted(groups, key=size.__getitem__, reverse=True)  # (stable, as -size)
    taken: set[str] = set()
    # A new id is none that is or was an entity's: one set, kept up to date (a copy of the
    # taken ids made for each new id made resolving from scratch quadratic in the keys).
    unavailable = set(redirected) | live_before
    group_id: dict[str, str] = {}
    for root in order:
        votes: Counter = Counter()
        for k in groups[root]:
            if k in known:
                votes[known[k]] += stats[k].articles
        choice = next(
            (eid for eid, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
             if eid not in taken),
            None,
        )  # fmt: skip
        if choice is None:
            choice = _new_id(root, unavailable)
        taken.add(choice)
        unavailable.add(choice)
        group_id[root] = choice
    new_map = {k: group_id[res.root[k]] for k in stats}

    # Ids that are no longer an entity lead to where most of their articles went.
    went: dict[str, Counter] = defaultdict(Counter)
    for k, old in known.items():
        if k in new_map and new_map[k] != old:
            went[old][new_map[k]] += stats[k].articles
    live = set(group_id.values())
    redirects = {old: max(to, key=lambda t: (to[t], t)) for old, to in went.items()
                 if old not in live}  # fmt: skip
    for old, target in redirected.items():
        if old not in live and old not in redirects:
            redirects[old] = target
    # Follow chains (a -> b, b merged into c: a -> c); an id that is live again loses its
    # redirect.
    for old in list(redirects):
        seen, target = {old}, redirects[old]
        while target not in live and target in redirects and target not in seen:
            seen.add(target)
            target = redirects[target]
        redirects[old] = target
    redirects = {o: t for o, t in redirects.items() if t in live and o != t}

    changed = sum(1 for k in stats if known.get(k) != new_map[k])
    step.done("resolved into %d entities, %d keys change entity", len(live), changed)
    keys = sorted(new_map)
    con.execute("delete from entity_keys")
    with arrow(
        con,
        "resolved_keys",
        entity_key=keys,
        entity_id=[new_map[k] for k in keys],
        resolved_by=[res.how.get(k, "name") for k in keys],
    ):
        con.execute("insert into entity_keys select * from resolved_keys")
    if rows:
        _write_rows(con)
    con.execute("delete from entity_redirects")
    if redirects:
        olds = sorted(redirects)
        merged_at = [now] * len(olds)
        with arrow(
            con,
            "new_redirects",
            entity_id=olds,
            to_entity_id=[redirects[o] for o in olds],
        ):
            con.execute(
                "insert into entity_redirects select entity_id, to_entity_id, ? from new_redirects",
                [merged_at[0]],
            )
    step.done("keys' entities written, %d redirects", len(redirects))
    n_keys = len(keys)
    del stats, res, groups, size, known, new_map, went, keys  # (the refresh's memory)
    if rows:
        _finish(con, step)
    merged = len({o for o in redirects if o in live_before})  # this pass's merges
    result = {"keys": n_keys, "entities": len(live), "merged": merged, "changed": changed}
    LOGGER.info(
        "entities: %(keys)d keys resolved into %(entities)d entities; %(merged)d merged into"
        " another, %(changed)d keys changed entity",
        result,
    )
    return result


class _Steps:
    """Progress of a long pass, one log line per step with its seconds."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()

    def done(self, what: str, *args) -> None:
        now = time.perf_counter()
        LOGGER.info(f"entities: {what} (%.1f s)", *args, now - self.last)
        self.last = now


def resolve_id(con: duckdb.DuckDBPyConnection, entity_id: str) -> str | None:
    """The live entity an id stands for (itself, or where its redirects lead)."""
    row = con.execute(
        "select coalesce((select to_entity_id from entity_redirects where entity_id = $1),"
        " (select entity_id from entities where entity_id = $1))",
        [entity_id],
    ).fetchone()
    return row[0] if row else None
