"""What the newsflow DAGs share: default arguments, settings, the articles asset, task logging.

Nothing here reads a file, the network or the database at import time; the environment
variables read below fall back to defaults when unset or invalid (the tasks validate
settings again and fail with a clear message).
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta

from airflow.sdk import Asset
from airflow.sdk.bases.notifier import BaseNotifier

LOG = logging.getLogger("newsflow.dag")

# The articles table, as an Airflow asset: each load emits an event with row counts.
ARTICLES = Asset(name="newsflow_articles", uri="newsflow://lake/articles")
# The lake's single writer: every task that writes the store runs in this pool of one slot
# (`make airflow` and docker-compose's airflow-init create it). Its name before 0.2 was
# `duckdb_writer`: NEWSFLOW_WRITER_POOL=duckdb_writer keeps a deployment on that pool for one
# more release, with a warning in every DAG parse.
OLD_WRITER_POOL = "duckdb_writer"
WRITER_POOL = os.environ.get("NEWSFLOW_WRITER_POOL") or "lake_writer"
if WRITER_POOL == OLD_WRITER_POOL:
    LOG.warning(
        "newsflow: the writer pool %r is now named 'lake_writer'; create it (airflow pools set"
        " lake_writer 1 'newsflow: the lake's single writer') and unset NEWSFLOW_WRITER_POOL:"
        " the old name is honoured until the next release",
        OLD_WRITER_POOL,
    )


def env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ[name])
    except (KeyError, ValueError):
        return default
    return value if value >= 0 else default


DEFAULT_ARGS = {
    "owner": "newsflow",
    "retries": int(env_number("NEWSFLOW_TASK_RETRIES", 3)),
    "retry_delay": timedelta(seconds=env_number("NEWSFLOW_RETRY_DELAY_SECONDS", 60)),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}


def settings():
    """newsflow settings: NEWSFLOW_* variables, overridden by the Airflow Variable
    ``newsflow_settings`` (a JSON object of NEWSFLOW_* names and values) when it exists."""
    from airflow.sdk import Variable
    from newsflow.config import ConfigError
    from newsflow.run.tasks import settings_from

    raw = Variable.get("newsflow_settings", default=None)
    try:
        overrides = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ConfigError(f"Airflow Variable newsflow_settings is not JSON: {exc}") from None
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError("Airflow Variable newsflow_settings must be a JSON object")
    return settings_from(overrides)


def run_step(what: str, fn, summary=None):
    """Run ``fn()`` between a first log line saying what is about to happen and a last one
    saying what happened (counts, failures, elapsed), so the task log tells the story: the
    result's own ``summary()`` (newsflow's typed results), else ``summary(result)``, else the
    result as JSON."""
    LOG.info("newsflow: about to %s", what)
    started = time.monotonic()
    try:
        result = fn()
    except Exception as exc:
        LOG.error(
            "newsflow: failed to %s after %.1fs: %s: %s",
            what,
            time.monotonic() - started,
            type(exc).__name__,
            exc,
        )
        raise
    if summary is not None:
        text = summary(result)
    elif hasattr(result, "summary"):
        text = result.summary()
    else:
        text = json.dumps(result, default=str)
    LOG.info("newsflow: did %s in %.1fs: %s", what, time.monotonic() - started, text)
    return result


class WebhookNotifier(BaseNotifier):
    """Posts a task failure as JSON to the webhook ``NEWSFLOW_ALERT_WEBHOOK`` names (read when
    it fires, so setting it needs no DAG change); nothing is sent when it is unset. The body is
    ``{"text": ..., "dag_id", "task_id", "run_id", "try_number", "error", "log_url"}``: the
    ``text`` field is what Slack, Mattermost and most chat incoming webhooks display."""

    def __init__(self, url: str | None = None):
        super().__init__()
        self.url = url

    def notify(self, context) -> None:
        from newsflow.run import alerts

        ti = context.get("ti") or context.get("task_instance")
        error = str(context.get("exception") or "")
        run_id = context.get("run_id")
        dag_id = getattr(ti, "dag_id", None)
        task_id = getattr(ti, "task_id", None)
        alerts.post(
            self.url,
            {
                "text": f"newsflow: {dag_id}.{task_id} failed in run {run_id}: {error[:1500]}",
                "dag_id": dag_id,
                "task_id": task_id,
                "run_id": run_id,
                "try_number": getattr(ti, "try_number", None),
                "error": error[:8000],
                "log_url": getattr(ti, "log_url", None),
            },
        )


# On the tasks whose failure needs a person: load (nothing lands until it works) and
# feed_health (a feed died).
ALERT = WebhookNotifier()


def ingest_deadline(every: timedelta):
    """The deadline alert of ``news_ingest``: a run not finished ``NEWSFLOW_INGEST_DEADLINE_
    MINUTES`` (default: the schedule's interval; 0 turns it off) after it was queued posts to
    the webhook; the next run waits for it (``max_active_runs=1``), so an overrun is news
    arriving late."""
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    minutes = env_number("NEWSFLOW_INGEST_DEADLINE_MINUTES", every.total_seconds() / 60)
    if minutes <= 0:
        return None  # turned off (Airflow 3.3.2's dag.test() cannot run a DAG with one)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback("newsflow.run.alerts.deadline_missed"),
        name="news_ingest overran its interval",
    )
