"""The bucket unreachable for a while, under the tasks of an Airflow run whose staged files
live there (NEWSFLOW_RUNS_PATH=s3://…): the task that needs it fails with an error naming the
bucket, nothing staged or stored is lost, and its retry once the bucket is back succeeds."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run import tasks
from newsflow.staging import BucketUnreachable

from scripts.services import free_port
from tests.helpers import bundled_page, bundled_slugs, feed_file, rss
from tests.s3 import BUCKET


def test_a_task_fails_naming_the_unreachable_bucket_and_its_retry_succeeds(
    tmp_path, site, settings, s3_server, monkeypatch
):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    slugs = bundled_slugs()
    items = [{"link": f"{site.base_url}/p{i}.html", "title": f"Story {i}"} for i in range(3)]
    site.routes["/feed.xml"] = Route(rss("Wire", items), content_type="application/rss+xml")
    for i in range(3):
        site.routes[f"/p{i}.html"] = Route(bundled_page(slugs[i]))
    settings = replace(
        settings,
        runs_path=f"s3://{BUCKET}/{tmp_path.name}/staged",
        feeds_file=feed_file([FeedSpec(f"{site.base_url}/feed.xml")], tmp_path / "feeds.yaml"),
    )
    plan = tasks.plan(settings, "manual__outage")
    (batch,) = plan.poll_batches
    tasks.poll(settings, plan.run, batch)
    (articles,) = tasks.plan_articles(settings, plan.run)
    staged = sorted(k for k in s3_server.keys(tmp_path.name) if not k.endswith("/"))

    with monkeypatch.context() as outage:  # the bucket's service unreachable
        outage.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        started = time.monotonic()
        with pytest.raises(BucketUnreachable) as failed:
            tasks.fetch_extract(settings, plan.run, articles)
        took = time.monotonic() - started
    # the run's folder in the bucket is named, with what the client said
    assert str(failed.value).startswith(f"s3://{BUCKET}/{tmp_path.name}/staged/"), failed.value
    assert "the bucket cannot be reached" in str(failed.value)
    assert took < 30  # fails within seconds; Airflow's retry waits, not the task
    assert sorted(k for k in s3_server.keys(tmp_path.name) if not k.endswith("/")) == staged

    tasks.fetch_extract(settings, plan.run, articles)  # the retry, the bucket back
    # and the load, whose staged files are unreachable at first: nothing stored, then all
    with monkeypatch.context() as outage:
        outage.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        with pytest.raises(BucketUnreachable):
            tasks.load(settings, plan.run)
    assert not (settings.data_dir / "newsflow.sqlite").exists() or count(settings) == (0, 0)
    loaded = tasks.load(settings, plan.run)
    assert loaded.articles_loaded == 3 and count(settings) == (3, 3)


def count(settings) -> tuple[int, int]:
    with Store(settings.lake, read_only=True) as store:
        return store.con.execute("select count(*), count(distinct url) from articles").fetchone()
