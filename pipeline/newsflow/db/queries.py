"""Read queries kept as files under ``sql/``, run by name: ``rows(con, "report/totals", params)``.

The SQL of the report (``sql/report/``) and the analysts' named queries (``sql/queries/``) live
in ``sql/`` beside the views they read; code outside this package asks for them by name and
never writes SQL text itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from newsflow.db.engine import sql_dir

LOGGER = logging.getLogger(__name__)


@functools.cache
def text(name: str) -> str:
    """The SQL of ``sql/<name>.sql`` (e.g. ``report/totals``)."""
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no query {name!r}: {path} does not exist")
    return path.read_text(encoding="utf-8")


def names(folder: str) -> list[str]:
    """The queries of ``sql/<folder>/``, by file name without ``.sql``."""
    return sorted(p.stem for p in Path(sql_dir(), folder).glob("*.sql"))


def rows(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping | Sequence | None = None,
    *,
    missing_ok: bool = False,
) -> list[tuple]:
    """The rows of query ``name``. With ``missing_ok``, a table, view or macro the query reads
    that does not exist (a database of an older schema, or none at all) gives no rows and a
    warning instead of an error."""
    try:
        return con.execute(text(name), params if params is not None else []).fetchall()
    except duckdb.CatalogException as exc:
        if not missing_ok:
            raise
        LOGGER.warning("%s: %s", name, exc)
        return []


def dicts(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping | Sequence | None = None
) -> list[dict]:
    """The rows of query ``name`` as dicts keyed by column name."""
    cur = con.execute(text(name), params if params is not None else [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
