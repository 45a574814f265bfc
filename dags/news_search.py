"""news_search: after each load that brought articles, the search index and the derived tables
(entity pairs behind entity_cooccurrence and named_together) brought up to date.

Scheduled on the ``newsflow_articles`` asset that ``news_ingest``'s ``announce`` emits, so it
runs after a load, not on a clock. A load rebuilds the search shard it appended to itself; this
DAG is for a large store (past NEWSFLOW_SEARCH_REBUILD_MAX_ARTICLES), where the load leaves the
derived tables and shard merges to the daily ``news_maintenance``: unpause it to keep them
current within one load instead of one day. It holds the writer pool while it works (about a
minute at 1M articles), so loads queue behind it.

Wiring only: the task calls one function of ``newsflow.run.tasks``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task
from newsflow_common import ARTICLES, DEFAULT_ARGS, WRITER_POOL, run_step, settings


@dag(
    dag_id="news_search",
    schedule=[ARTICLES],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "search"],
    description="After each load: search shards rebuilt and merged, derived tables recomputed",
    doc_md=__doc__,
)
def news_search():
    @task(pool=WRITER_POOL)
    def search_index() -> dict:
        """Rebuilds the stale search shards, merges sealed ones into segments, and recomputes
        the derived tables (entity pairs). Reads and writes the lake; a failure leaves the
        previous index and tables in place (the next run or news_maintenance redoes it)."""
        from newsflow.run import tasks

        return run_step(
            "bring the search index and the derived tables up to date",
            lambda: tasks.rebuild_search(settings()),
        ).as_dict()

    search_index()


DAG = news_search()
