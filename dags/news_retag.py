"""news_retag: re-tag stored articles (manual, with params), the same function as
``newsflow retag``: each batch replaces one tagger's rows in one transaction.

Params, both optional (the form triggers with its defaults, which re-tag everything with both
taggers): ``since`` (a date; articles published, else first seen, since then) and ``tagger``
(``spacy`` for entities, ``iptc-lexicon`` or a plugin classifier's name for topics).
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
    description="On demand: re-tag stored articles, replacing one tagger's rows batch by batch",
    params={
        "since": Param(
            None,
            type=["null", "string"],
            format="date",
            description="only articles published (else first seen) since this day; empty: all",
        ),
        "tagger": Param(
            None,
            type=["null", "string"],
            examples=["spacy", "iptc-lexicon"],
            description="spacy (entities) or the topic classifier's name; empty: both",
        ),
    },
    doc_md=__doc__,
)
def news_retag():
    @task(pool=WRITER_POOL)
    def retag() -> dict:
        """Re-tags the stored articles the params choose; each batch replaces the tagger's rows
        in one transaction, so a failure leaves every article with its old or its new tags."""
        from newsflow.run import tasks

        params = get_current_context()["params"]
        since, tagger = params.get("since") or None, params.get("tagger") or None
        return run_step(
            f"re-tag stored articles (since {since or 'the start'}, tagger {tagger or 'all'})",
            lambda: tasks.retag(settings(), since, tagger),
        ).as_dict()

    retag()


DAG = news_retag()
