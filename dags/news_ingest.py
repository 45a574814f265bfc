"""news_ingest: poll due feeds, fetch, extract and tag new articles, load them into the lake.

Wiring only: every task calls one function of ``newsflow.run.tasks``. All tasks of a DAG run
share one staged-files directory named after the run id; XCom carries batch names and counts,
never article text. ``load`` is the only task that writes the database (pool ``lake_writer``,
one slot); ``announce`` then emits the ``newsflow_articles`` asset with row counts, unless the
run loaded nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from newsflow_common import (
    ALERT,
    ARTICLES,
    DEFAULT_ARGS,
    WRITER_POOL,
    env_number,
    ingest_deadline,
    run_step,
    settings,
)

EVERY = timedelta(minutes=env_number("NEWSFLOW_INGEST_EVERY_MINUTES", 10) or 10)


def _label(prefix: str, batch: str, outcome: str = "") -> None:
    """The map index label in the grid: the batch, then (once it ran) what it did."""
    label = f"{prefix} {batch}" + (f" · {outcome}" if outcome else "")
    get_current_context()["batch_label"] = label


def _run(s) -> str:
    """This DAG run's staged-files directory."""
    from newsflow.run import tasks

    return str(tasks.staged_path(s, get_current_context()["run_id"]))


# The mapped tasks' docs in the UI (a mapped task does not take its function's docstring).
POLL_DOC = (
    "Polls one batch of feeds (conditional GET, politeness per host) and stages their polls and "
    "new items. A feed that fails is recorded, not raised: the label counts the failed feeds "
    "and the log names each at WARNING. A failure of the task itself is systemic (disk, "
    "settings)."
)
FETCH_EXTRACT_DOC = (
    "Fetches one batch of article pages and extracts their text (trafilatura). A page that "
    "fails keeps the feed's own text and goes to the fetch queue for a retry; the label counts "
    "extracted and failed pages."
)
TAG_DOC = (
    "Tags one batch's entities (spaCy) and topics (IPTC lexicon). An article that cannot be "
    "tagged gets a status row saying why, never a failed task."
)


@dag(
    dag_id="news_ingest",
    schedule=EVERY,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "ingest"],
    description="Poll due feeds, fetch and extract new articles, tag them, load them into the lake",
    doc_md=__doc__,
    deadline=ingest_deadline(EVERY),
)
def news_ingest():
    @task
    def plan() -> list[str]:
        """Reads the feed registry (and NEWSFLOW_FEEDS, whose new feeds are due now) and the
        fetch queue; writes the run's plan files. Returns the poll batches. A failure here means
        the database or the feed list cannot be read: the log names which."""
        from newsflow.run import tasks

        s = settings()
        run_id = get_current_context()["run_id"]
        result = run_step(
            "plan which feeds are due and split them into poll batches",
            lambda: tasks.plan(s, run_id),
        )
        return result.poll_batches

    @task(map_index_template="{{ batch_label }}", doc_md=POLL_DOC)
    def poll(batch: str) -> dict:
        from newsflow.run import tasks

        _label("feeds", batch)
        s = settings()
        result = run_step(f"poll feed batch {batch}", lambda: tasks.poll(s, _run(s), batch))
        if (label := result.label()) is not None:
            _label("feeds", batch, label)
        return result.as_dict()

    @task(trigger_rule="none_failed")
    def plan_articles() -> list[str]:
        """Splits the staged new items into article batches (reads staged files only)."""
        from newsflow.run import tasks

        s = settings()
        return run_step(
            "split the new items into article batches",
            lambda: tasks.plan_articles(s, _run(s)),
            lambda r: f"{len(r)} article batches",
        )

    @task(map_index_template="{{ batch_label }}", doc_md=FETCH_EXTRACT_DOC)
    def fetch_extract(batch: str) -> dict:
        from newsflow.run import tasks

        _label("pages", batch)
        s = settings()
        result = run_step(
            f"fetch and extract article batch {batch}",
            lambda: tasks.fetch_extract(s, _run(s), batch),
        )
        if (label := result.label()) is not None:
            _label("pages", batch, label)
        return result.as_dict()

    @task(map_index_template="{{ batch_label }}", doc_md=TAG_DOC)
    def tag(batch: str) -> dict:
        from newsflow.run import tasks

        _label("tag", batch)
        s = settings()
        result = run_step(
            f"tag entities and topics of article batch {batch}",
            lambda: tasks.tag(s, _run(s), batch),
        )
        if (label := result.label()) is not None:
            _label("tag", batch, label)
        return result.as_dict()

    @task(
        trigger_rule="none_failed",
        pool=WRITER_POOL,
        on_failure_callback=[ALERT],
    )
    def load() -> dict:
        """Loads the whole run into the lake in one transaction (the only writer, pool
        lake_writer): a run lands whole or not at all, and a retry loads nothing twice. A
        failure means the database is locked, full or unusable; the staged files wait."""
        from newsflow.run import tasks

        s = settings()
        result = run_step(
            "load the run into the lake in one transaction", lambda: tasks.load(s, _run(s))
        )
        return result.as_dict()

    @task(outlets=[ARTICLES])
    def announce(result: dict) -> dict:
        """Emits the newsflow_articles asset event for a run that loaded or upgraded articles,
        its extra carrying the counts, failed feeds and pages, and the Airflow run id; a run
        that loaded nothing is skipped, so consumers of the asset are not woken for nothing."""
        from newsflow.run.tasks import LoadedRun

        loaded = LoadedRun.from_dict(result)
        context = get_current_context()
        if not (loaded.articles_loaded or loaded.articles_upgraded):
            raise AirflowSkipException("the run loaded no article: no asset event")
        context["outlet_events"][ARTICLES].extra = loaded.asset_extra(context["run_id"])
        return {"articles_loaded": loaded.articles_loaded}

    polled = poll.expand(batch=plan())
    batches = plan_articles()
    polled >> batches
    fetched = fetch_extract.expand(batch=batches)
    tagged = tag.expand(batch=batches)
    fetched >> tagged
    loaded = load()
    tagged >> loaded
    announce(loaded)


DAG = news_ingest()
