"""Alerts that leave Airflow: a JSON POST to the webhook ``NEWSFLOW_ALERT_WEBHOOK`` names.

Used by the DAGs' failure notifier and by the deadline alert of ``news_ingest``. The body's
``text`` field is what Slack, Mattermost and most chat incoming webhooks display; the other
fields are for anything that reads JSON. Nothing is sent when no URL is set, and an alert that
cannot be delivered is logged at WARNING, never raised: it must not hide what it reports.
Light on purpose (no newsflow import): the DAG files import it when they are parsed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request

LOG = logging.getLogger("newsflow.alerts")
WEBHOOK = "NEWSFLOW_ALERT_WEBHOOK"


def webhook_url(url: str | None = None) -> str | None:
    return url or os.environ.get(WEBHOOK) or None


def post(url: str | None, body: dict) -> bool:
    """POST ``body`` as JSON to ``url`` (else the webhook setting); whether it was delivered."""
    url = webhook_url(url)
    if not url:
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except Exception as exc:  # an alert that cannot be sent must not hide what it reports
        LOG.warning("newsflow: could not post the alert to %s: %s", url, exc)
        return False


def deadline_body(context: dict | None) -> dict:
    """The alert of a DAG run that missed its deadline, from the context Airflow's triggerer
    passes (``dag_run``: the run as the REST API shows it; ``deadline``: its time)."""
    run = (context or {}).get("dag_run") or {}
    deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
    dag_id, run_id = run.get("dag_id"), run.get("dag_run_id") or run.get("run_id")
    queued = run.get("queued_at") or run.get("start_date")
    return {
        "text": (
            f"newsflow: {dag_id} run {run_id} has not finished by its deadline {deadline}"
            f" (queued at {queued}; state {run.get('state')}): a run is taking longer than"
            " the schedule's interval, so the next ones wait"
        ),
        "dag_id": dag_id,
        "run_id": run_id,
        "state": run.get("state"),
        "queued_at": queued,
        "deadline": deadline,
    }


async def deadline_missed(context: dict | None = None, url: str | None = None) -> bool:
    """The callback of ``news_ingest``'s deadline alert (run by Airflow's triggerer)."""
    body = deadline_body(context)
    LOG.warning("%s", body["text"])
    return await asyncio.to_thread(post, url, body)
