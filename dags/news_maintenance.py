"""news_maintenance: daily retention of staged files, entity identity re-resolved over the
corpus, the full-text index (stale shards rebuilt,
sealed shards merged into segments) and the derived tables (which the ingest load stops
recomputing once the store is large), the lake's housekeeping (tidy_lake), and a feed-health
check that fails loudly, without retries (its verdict is deterministic), when a feed
is dead (404, 410, not a feed), failing, never brought an item, or went silent, or when no feed
is registered; a green run logs the whole feed table too.

Wiring only: each task calls one function of ``newsflow.run.tasks``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task
from newsflow_common import ALERT, DEFAULT_ARGS, WRITER_POOL, run_step, settings


@dag(
    dag_id="news_maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "maintenance"],
    description=(
        "Daily: staged-file retention, entity identity, search index, lake housekeeping,"
        " feed health check"
    ),
    doc_md=__doc__,
)
def news_maintenance():
    @task
    def retention() -> dict:
        """Removes staged run folders older than NEWSFLOW_STAGED_RETENTION_DAYS that are loaded
        or were abandoned; keeps any run still to load."""
        from newsflow.run import tasks

        return run_step(
            "remove staged run files past retention (loaded or abandoned runs only)",
            lambda: tasks.remove_stale_runs(settings()),
        ).as_dict()

    @task(pool=WRITER_POOL)
    def tidy_lake() -> dict:
        """Keeps the lake tidy: flushes the rows inlined in the catalog into Parquet, merges
        small files, expires snapshots past NEWSFLOW_SNAPSHOT_RETENTION_DAYS, deletes the files
        no snapshot needs and orphaned ones (a killed load's)."""
        from newsflow.run import tasks

        return run_step(
            "tidy the lake (flush, merge, expire snapshots, delete unneeded files)",
            lambda: tasks.tidy_lake(settings()),
        ).as_dict()

    @task(pool=WRITER_POOL)
    def entities() -> dict:
        """Re-resolves entity identity over the whole corpus: short forms and acronyms join
        the full names the evidence now points to; a merged entity's id redirects."""
        from newsflow.run import tasks

        return run_step(
            "re-resolve entities across articles",
            lambda: tasks.resolve_entities(settings()),
        ).as_dict()

    @task(pool=WRITER_POOL)
    def search_index() -> dict:
        """Rebuilds the stale search shards, merges sealed ones into segments, and recomputes
        the derived tables (entity pairs)."""
        from newsflow.run import tasks

        return run_step(
            "rebuild the full-text search index",
            lambda: tasks.rebuild_search(settings()),
        ).as_dict()

    @task(retries=0, on_failure_callback=[ALERT])
    def feed_health() -> dict:
        """Judges every active feed (view feed_health): fails, without retries, naming each feed
        that is dead, failing, never worked or silent, or when no feed is registered; logs the
        whole feed table either way."""
        from newsflow.run import tasks

        return run_step(
            "check that every active feed is alive and bringing items",
            lambda: tasks.check_feed_health(settings()),
        ).as_dict()

    retention() >> entities() >> search_index() >> tidy_lake() >> feed_health()


DAG = news_maintenance()
