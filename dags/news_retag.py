"""news_retag: re-tag stored articles (manual, with params), the same function as
``newsflow retag``: each batch replaces one tagger's rows in one transaction.

Params: ``since`` (YYYY-MM-DD, empty for all) and ``tagger`` (``spacy``, ``iptc-lexicon``, or
empty for both).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task
from newsflow_common import DEFAULT_ARGS, WRITER_POOL, run_step, settings


@dag(
    dag_id="news_retag",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "tagging"],
    params={
        "since": Param("", type="string", description="YYYY-MM-DD; empty re-tags everything"),
        "tagger": Param("", type="string", description="spacy, iptc-lexicon, or empty for both"),
    },
    doc_md=__doc__,
)
def news_retag():
    @task(pool=WRITER_POOL)
    def retag() -> dict:
        from newsflow.run import tasks

        params = get_current_context()["params"]
        since, tagger = params.get("since") or None, params.get("tagger") or None
        return run_step(
            f"re-tag stored articles (since {since or 'the start'}, tagger {tagger or 'all'})",
            lambda: tasks.retag(settings(), since, tagger),
            lambda r: (
                f"{r['articles']} articles in {r['batches']} batches; rows replaced "
                f"{r['rows_replaced']}, written {r['rows_written']}"
            ),
        )

    retag()


DAG = news_retag()
